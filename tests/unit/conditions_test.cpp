// The fields that make a rule stateful or conditional (tcp-flags, ct, rate,
// burst, per, log, action audit): grammar, errors, the reference's
// semantics, and the compiled lookup agreeing with the reference on random
// sets, verdict, deciding rule and audit matches, with token buckets
// modelled (docs/DATAPATH.md, "Conditions").
#include <boost/test/unit_test.hpp>

#include <fstream>
#include <sstream>

#include "common/rule_gen.hpp"
#include "reference_classifier.hpp"
#include "rule_compiler.hpp"
#include "rules_file.hpp"

using namespace xdpfw;

namespace {

std::vector<Rule> numbered(std::initializer_list<const char*> texts) {
  std::vector<Rule> out;
  uint32_t id = 1;
  for (const char* t : texts) {
    Rule r = parse_rule(t);
    r.id = id++;
    if (!r.priority) r.priority = r.id;
    out.push_back(r);
  }
  return out;
}

PacketFields tcp(const std::string& src, uint8_t flags, uint8_t ct = ct_new) {
  PacketFields p;
  p.src = parse_prefix(src, "src").addr;
  p.dst = parse_prefix("198.18.0.1", "dst").addr;
  p.proto = proto_tcp;
  p.has_l4 = true;
  p.sport = 40000;
  p.dport = 22;
  p.tcp_flags = flags;
  p.ct = ct;
  return p;
}

constexpr uint8_t syn = 0x02, ack = 0x10;

}  // namespace

BOOST_AUTO_TEST_SUITE(conditions)

BOOST_AUTO_TEST_CASE(new_fields_parse_and_format_back) {
  Rule r =
      parse_rule("proto tcp tcp-flags syn,!ack rate 1000/s burst 100 per src/24 log action drop");
  BOOST_TEST(r.tcp_flags->set == syn);
  BOOST_TEST(r.tcp_flags->mask == (syn | ack));
  BOOST_TEST(r.rate->packets == 1000u);
  BOOST_TEST(r.rate->seconds == 1u);
  BOOST_TEST(r.rate->cost_ns() == 1000000u);
  BOOST_TEST(*r.burst == 100u);
  BOOST_TEST(*r.per == 24);
  BOOST_TEST(r.log);
  BOOST_TEST(format_rule(r) ==
             "proto tcp tcp-flags syn,!ack rate 1000/s burst 100 per src/24 log action drop");

  Rule c = parse_rule("ct established,related action pass");
  BOOST_TEST(*c.ct == (ct_established | ct_related));
  BOOST_TEST(format_rule(c) == "ct established,related action pass");
  BOOST_TEST(c.conditioned());

  Rule a = parse_rule("src 198.18.0.0/15 rate 5/min per src action audit");
  BOOST_TEST((a.action == Action::audit));
  BOOST_TEST(a.burst_packets() == 5u);  // default: one interval's worth
  BOOST_TEST(format_rule(a) == "src 198.18.0.0/15 rate 5/min per src action audit");
  BOOST_TEST(format_rule(parse_rule("rate 2/hour action drop")) == "rate 2/h action drop");
  BOOST_TEST(!parse_rule("proto tcp tcp-flags syn action drop").conditioned());
}

// Over the rate the rule decides; under it the packet takes a token and goes
// on; each source (per src) has its own bucket.
BOOST_AUTO_TEST_CASE(rate_rules_decide_only_over_their_rate) {
  auto rs = numbered({"proto tcp tcp-flags syn,!ack rate 1/h burst 2 per src action drop",
                      "proto tcp action pass"});
  ReferenceClassifier ref(rs, Action::drop);
  RateModel rates;
  for (int i = 0; i < 2; ++i) {
    Verdict v = ref.classify(tcp("198.18.0.7", syn), &rates);
    BOOST_TEST((v.action == Action::pass));
    BOOST_TEST(*v.rule_id == 2u);
  }
  Verdict over = ref.classify(tcp("198.18.0.7", syn), &rates);
  BOOST_TEST((over.action == Action::drop));
  BOOST_TEST(*over.rule_id == 1u);
  // not a SYN: the rate rule does not match, no token is taken
  BOOST_TEST(*ref.classify(tcp("198.18.0.7", syn | ack), &rates).rule_id == 2u);
  // another source, its own bucket
  BOOST_TEST(*ref.classify(tcp("198.18.0.8", syn), &rates).rule_id == 2u);

  // The compiled lookup, with buckets of its own, agrees.
  auto c = compile_rules(rs, Policy{Action::drop, Action::drop, false});
  RateModel own;
  std::vector<uint32_t> want = {2, 2, 1, 1};
  for (uint32_t w : want)
    BOOST_TEST(lookup_compiled(c, tcp("198.18.0.9", syn), nullptr, &own)->rule_id() == w);
}

// An audit rule never decides: the packet goes on as if it were absent, and
// the audit rules it matched on the way are reported.
BOOST_AUTO_TEST_CASE(audit_rules_report_and_let_the_next_rule_decide) {
  auto rs = numbered({"proto tcp dport 22 action audit", "src 198.18.0.0/15 action audit",
                      "proto tcp action pass", "src 198.18.0.0/15 action audit"});
  ReferenceClassifier ref(rs, Action::drop);
  Verdict v = ref.classify(tcp("198.18.0.7", syn));
  BOOST_TEST(*v.rule_id == 3u);
  BOOST_TEST(v.audits == (std::vector<uint32_t>{1, 2}), boost::test_tools::per_element());
  auto c = compile_rules(rs, Policy{Action::drop, Action::drop, false});
  std::vector<uint32_t> audits;
  BOOST_TEST(lookup_compiled(c, tcp("198.18.0.7", syn), nullptr, nullptr, &audits)->rule_id() ==
             3u);
  BOOST_TEST(audits == (std::vector<uint32_t>{1, 2}), boost::test_tools::per_element());
  // A malformed packet (no L4): the port rule cannot be checked; an audit
  // rule that needs it is skipped, not the malformed action.
  PacketFields m = tcp("198.18.0.7", syn);
  m.has_l4 = false;
  m.readable = Readable::no_l4;
  Verdict mv = ref.classify(m);
  BOOST_TEST(*mv.rule_id == 3u);
  BOOST_TEST(mv.audits == (std::vector<uint32_t>{2}), boost::test_tools::per_element());
  BOOST_TEST(lookup_compiled(c, m, nullptr, nullptr, &audits)->rule_id() == 3u);
  BOOST_TEST(audits == (std::vector<uint32_t>{2}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(ct_rules_match_the_connection_state) {
  auto rs =
      numbered({"ct established,related action pass", "proto tcp ct new dport 22 action pass"});
  ReferenceClassifier ref(rs, Action::drop);
  BOOST_TEST(*ref.classify(tcp("198.18.0.7", ack, ct_established)).rule_id == 1u);
  BOOST_TEST(*ref.classify(tcp("198.18.0.7", syn, ct_new)).rule_id == 2u);
  PacketFields other = tcp("198.18.0.7", syn, ct_new);
  other.dport = 80;
  BOOST_TEST(!ref.classify(other).rule_id.has_value());
  // a non-first fragment has no state to look up: ct rules never match it
  PacketFields frag = tcp("198.18.0.7", 0, ct_established);
  frag.has_l4 = false;
  BOOST_TEST(!ref.classify(frag).rule_id.has_value());
  auto c = compile_rules(rs, Policy{Action::drop, Action::drop, false});
  BOOST_TEST(c.header.ct[0] == 1);
  BOOST_TEST(c.header.ct[1] == 1);
  BOOST_TEST(lookup_compiled(c, tcp("198.18.0.7", ack, ct_established))->rule_id() == 1u);
  BOOST_TEST(!lookup_compiled(c, frag).has_value());
  // no ct rule: no lookup
  BOOST_TEST(compile_rules(numbered({"proto tcp action pass"}), Policy{}).header.ct[0] == 0);
}

// Conditioned rules are never duplicates: two equal rate rules each keep
// their own bucket, and an equal rule after a ct rule still decides what
// the ct rule lets through.
BOOST_AUTO_TEST_CASE(conditioned_rules_are_never_duplicates) {
  auto rs = numbered({"proto tcp ct established action drop", "proto tcp action pass"});
  auto c = compile_rules(rs, Policy{});
  BOOST_TEST(c.cands.size() == 2u);
  BOOST_TEST(lookup_compiled(c, tcp("198.18.0.7", syn, ct_new))->rule_id() == 2u);
  auto twice =
      numbered({"rate 1/h burst 1 action drop", "rate 1/h burst 1 action drop", "action pass"});
  auto c2 = compile_rules(twice, Policy{});
  RateModel rates;
  std::vector<uint32_t> want = {3, 1};  // both took a token, then the first is over
  for (uint32_t w : want)
    BOOST_TEST(lookup_compiled(c2, tcp("198.18.0.7", syn), nullptr, &rates)->rule_id() == w);
}

BOOST_AUTO_TEST_CASE(no_ct_support_refuses_ct_rules_with_the_reason) {
  CompileLimits l;
  l.no_ct = "this kernel has no bpf_xdp_ct_lookup kfunc";
  try {
    compile_rules(numbered({"ct established action pass"}), Policy{}, l);
    BOOST_FAIL("compiled");
  } catch (const CompileError& e) {
    BOOST_TEST(std::string(e.what()).find("ct: this kernel has no bpf_xdp_ct_lookup") !=
               std::string::npos);
  }
  BOOST_TEST(compile_rules(numbered({"proto tcp action pass"}), Policy{}, l).cands.size() == 1u);
}

// The compiled lookup (the XDP program's algorithm) against the reference
// on random sets with every new field, random TCP flags and ct states, token
// buckets on both sides: verdict, deciding rule and audit matches agree.
BOOST_AUTO_TEST_CASE(compiled_lookup_agrees_with_reference_on_random_sets) {
  uint64_t seed = std::random_device{}();
  BOOST_TEST_MESSAGE("seed " << seed);
  for (uint64_t k = 0; k < 30; ++k) {
    test::RuleGen gen(seed + k);
    auto rs = gen.rules({.rules = std::vector<size_t>{10, 50, 200}[k % 3],
                         .templates = 2 + k % 10,
                         .conditions = true});
    Policy pol{k & 1 ? Action::drop : Action::pass, Action::drop, false};
    auto c = compile_rules(rs, pol);
    BOOST_TEST_REQUIRE(check_invariants(c, rs) == "");
    ReferenceClassifier ref(rs, pol.default_action, pol.malformed_action);
    RateModel ref_rates, lookup_rates;
    for (int i = 0; i < 3000; ++i) {
      PacketFields p = gen.packet(rs);
      p.ct = static_cast<uint8_t>(1u << (gen.rng()() % 3));
      Verdict want = ref.classify(p, &ref_rates);
      std::vector<uint32_t> audits;
      auto got = lookup_compiled(c, p, nullptr, &lookup_rates, &audits);
      BOOST_TEST_INFO("seed " << seed + k << " packet " << i);
      BOOST_REQUIRE_EQUAL(got.has_value(), want.rule_id.has_value());
      if (got) BOOST_REQUIRE_EQUAL(got->rule_id(), *want.rule_id);
      // the program keeps four pending matches per packet
      if (want.audits.size() <= 4) BOOST_REQUIRE(audits == want.audits);
    }
  }
}

// The shipped host firewall (conf/recipes/host-firewall.rules) with
// default-action drop: replies and ICMP errors about the host's
// connections, neighbour discovery, DHCP and echo replies pass; a new
// connection is dropped and logged.
BOOST_AUTO_TEST_CASE(the_host_firewall_recipe_does_what_it_says) {
  std::ifstream in(XDPFW_RECIPE);
  BOOST_TEST_REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  auto rs = parse_rules_text("host-firewall.rules", text.str());
  auto c = compile_rules(rs, Policy{Action::drop, Action::drop, false});
  ReferenceClassifier ref(rs, Action::drop);
  auto decide = [&](const PacketFields& p) {
    Verdict v = ref.classify(p);
    auto got = lookup_compiled(c, p);
    BOOST_TEST(got.has_value() == v.rule_id.has_value());
    return v;
  };
  BOOST_TEST((decide(tcp("198.18.0.7", syn | ack, ct_established)).action == Action::pass));
  BOOST_TEST((decide(tcp("198.18.0.7", syn, ct_new)).action == Action::drop));
  BOOST_TEST(rs[*decide(tcp("198.18.0.7", syn, ct_new)).rule_id - 1].log);
  PacketFields other = tcp("198.18.0.7", ack, ct_new);  // not a SYN: the default
  BOOST_TEST(!decide(other).rule_id.has_value());
  auto icmp6 = [](uint8_t type) {
    PacketFields p;
    p.family = Family::v6;
    p.src = parse_prefix("2001:db8::2", "src").addr;
    p.dst = parse_prefix("2001:db8::1", "dst").addr;
    p.proto = proto_icmpv6;
    p.has_l4 = true;
    p.sport = type;
    return p;
  };
  for (uint8_t t : {133, 134, 135, 136, 137, 129})
    BOOST_TEST((decide(icmp6(t)).action == Action::pass), "icmpv6 type " << int(t));
  BOOST_TEST((decide(icmp6(128)).action == Action::drop));  // echo request: not let in
  PacketFields dhcp = tcp("198.18.0.7", 0);
  dhcp.proto = proto_udp;
  dhcp.sport = 67;
  dhcp.dport = 68;
  BOOST_TEST((decide(dhcp).action == Action::pass));
}

BOOST_AUTO_TEST_SUITE_END()
