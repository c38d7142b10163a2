// The compiler: tables, buckets, candidate masks, limits with errors naming
// the rule, and agreement with the reference on random and ClassBench rule
// sets (run through the user-space copy of the XDP lookup).
#include <arpa/inet.h>

#include <boost/test/unit_test.hpp>

#include "common/classbench.hpp"
#include "common/rule_gen.hpp"
#include "common/worst_case.hpp"
#include "reference_classifier.hpp"
#include "rule_compiler.hpp"
#include "support/util.hpp"

using namespace xdpfw;

namespace {
std::vector<Rule> rules(std::initializer_list<const char*> texts) {
  std::vector<Rule> out;
  uint32_t id = 1;
  for (const char* t : texts) {
    Rule r = parse_rule(t);
    if (!r.id) r.id = id;
    if (!r.priority) r.priority = 100;
    id = r.id + 1;
    out.push_back(r);
  }
  return out;
}
// What the program does with a lookup's result: for a malformed packet
// (p.readable), the malformed action unless the rule found matches on what
// was read.
Verdict verdict_of(const std::optional<LookupResult>& got, const PacketFields& p,
                   const Policy& pol) {
  if (p.readable != Readable::all && (!got || got->unreadable))
    return {pol.malformed_action, std::nullopt, {}};
  if (!got) return {pol.default_action, std::nullopt, {}};
  return {got->action, got->rule_id(), {}};
}

// The packet as its malformed variants: L4 header unreadable, and (IPv6)
// the protocol too.
std::vector<PacketFields> as_read(const PacketFields& p) {
  std::vector<PacketFields> out{p};
  PacketFields b = p;
  b.has_l4 = false;
  b.sport = b.dport = 0;
  b.readable = Readable::no_l4;
  out.push_back(b);
  if (p.family == Family::v6) {
    b.readable = Readable::no_proto;
    out.push_back(b);
  }
  b.readable = Readable::nothing;
  out.push_back(b);
  return out;
}

// c (and each of its views) decides p and its malformed variants as the
// reference does: verdict and deciding rule.
void expect_agrees(const CompiledRuleset& c, const ReferenceClassifier& ref, const PacketFields& p,
                   const Policy& pol = {}) {
  for (const PacketFields& q : as_read(p)) {
    Verdict want = ref.classify(q);
    Verdict got = verdict_of(lookup_compiled(c, q), q, pol);
    BOOST_TEST_INFO("readable " << int(q.readable));
    BOOST_REQUIRE_EQUAL(got.rule_id.has_value(), want.rule_id.has_value());
    if (got.rule_id) BOOST_REQUIRE_EQUAL(*got.rule_id, *want.rule_id);
    BOOST_REQUIRE(got.action == want.action);
  }
}

std::string compile_error(const std::vector<Rule>& rs, const CompileLimits& l = {}) {
  try {
    compile_rules(rs, Policy{}, l);
  } catch (const CompileError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

BOOST_AUTO_TEST_SUITE(rule_compiler)

BOOST_AUTO_TEST_CASE(nearby_shapes_share_a_table) {
  // /32, /30 and /29 sources fit one table hashed on /28 (TupleMerge's
  // relaxation of the first); a /24 needs a table of its own.
  auto c = compile_rules(rules({"src 198.18.0.1 action drop", "src 198.18.0.4/30 action drop",
                                "src 198.18.0.8/29 action pass", "src 198.18.1.0/24 action pass"}),
                         Policy{});
  BOOST_TEST(c.header.ntables[XDPFW_FAMILY_V4] == 2u);
  BOOST_TEST(c.header.ntables[XDPFW_FAMILY_V6] == 0u);
  BOOST_TEST(c.v4.size() == 2u);  // 198.18.0.0/28 holds three candidates
  BOOST_TEST(c.cands.size() == 4u);
}

BOOST_AUTO_TEST_CASE(tables_sorted_by_best_rule) {
  auto c = compile_rules(
      rules({"prio 50 src 198.18.0.1 action drop", "prio 10 proto tcp dport 22 action pass",
             "prio 30 src 198.18.0.2 action pass"}),
      Policy{});
  BOOST_TEST(c.header.ntables[0] == 2u);
  BOOST_TEST(c.header.tables[0][0].min_order == rule_order(10, 2));
  BOOST_TEST(c.header.tables[0][0].flags == (XDPFW_TABLE_PROTO | XDPFW_TABLE_DPORT));
  BOOST_TEST(c.header.tables[0][1].min_order == rule_order(30, 3));
}

BOOST_AUTO_TEST_CASE(full_bucket_opens_another_table) {
  // 20 rules equal on every hashed field (same addresses and protocol, port
  // ranges across the middle of the port space, which no table can hash):
  // 16 fill one bucket, the rest go to a second table.
  std::vector<Rule> rs;
  for (uint32_t i = 0; i < 20; ++i) {
    Rule r = parse_rule("src 198.18.0.1 dst 198.18.0.2 proto tcp action drop");
    r.dport = PortRange{static_cast<uint16_t>(32767 - i), static_cast<uint16_t>(32768 + i)};
    r.id = i + 1;
    r.priority = 100;
    rs.push_back(r);
  }
  auto c = compile_rules(rs, Policy{});
  BOOST_TEST(c.header.ntables[0] == 2u);
  size_t biggest = 0;
  for (const auto& [k, b] : c.v4) biggest = std::max<size_t>(biggest, b.n);
  BOOST_TEST(biggest == size_t{XDPFW_BUCKET_SIZE});
  for (int i = 0; i < 20; ++i) {
    PacketFields p;
    p.src = {198, 18, 0, 1};
    p.dst = {198, 18, 0, 2};
    p.proto = proto_tcp;
    p.has_l4 = true;
    p.dport = static_cast<uint16_t>(32767 - i);  // inside rule i+1's range, outside the ones before
    auto got = lookup_compiled(c, p);
    BOOST_TEST_REQUIRE(got.has_value());
    BOOST_TEST(got->rule_id() == uint32_t(i + 1));
  }
}

BOOST_AUTO_TEST_CASE(port_ranges_hash_the_bits_their_ends_share) {
  // 4,000 rules on one address pair, each a block of 16 ports: the tables
  // hash dport's top 12 bits, so each rule has a bucket of its own, where
  // unhashed ranges would have filled one chain of 4,000.
  std::vector<Rule> rs;
  for (uint32_t i = 0; i < 4000; ++i) {
    Rule r = parse_rule("src 198.18.0.1 dst 198.18.0.2 proto tcp action drop");
    uint16_t lo = static_cast<uint16_t>(1024 + 16 * i);
    r.dport = PortRange{lo, static_cast<uint16_t>(lo + 15)};
    r.id = i + 1;
    r.priority = 100;
    rs.push_back(r);
  }
  auto c = compile_rules(rs, Policy{});
  BOOST_TEST(check_invariants(c, rs) == "");
  size_t biggest = 0;
  for (const auto& [k, b] : c.v4) biggest = std::max<size_t>(biggest, b.n + (b.more ? 16 : 0));
  BOOST_TEST(biggest <= 2u);
  BOOST_TEST(c.header.tables[0][0].dport_mask == 0xfff0);
  ReferenceClassifier ref(rs, Action::pass);
  for (uint32_t i = 0; i < 4000; i += 37)
    for (uint16_t off : {0, 7, 15, 16}) {
      PacketFields p;
      p.src = {198, 18, 0, 1};
      p.dst = {198, 18, 0, 2};
      p.proto = proto_tcp;
      p.has_l4 = true;
      p.dport = static_cast<uint16_t>(1024 + 16 * i + off);
      uint32_t probes = 0;
      auto got = lookup_compiled(c, p, &probes);
      auto want = ref.classify(p);
      BOOST_TEST_REQUIRE(got.has_value() == want.rule_id.has_value());
      if (got) BOOST_TEST(got->rule_id() == *want.rule_id);
    }
}

BOOST_AUTO_TEST_CASE(candidate_masks_skip_tables_that_cannot_match) {
  // Two tables (the port rules share one); a UDP packet to port 53 from
  // 198.19.x can only match the first, and probes that alone.
  auto c = compile_rules(rules({"prio 1 src 198.18.0.0/16 proto tcp dport 22 action drop",
                                "prio 2 src 198.19.0.0/16 proto udp dport 53 action pass",
                                "prio 3 src 198.18.5.0/24 dst 198.18.9.0/24 action drop"}),
                         Policy{});
  BOOST_TEST(c.header.ntables[0] == 2u);
  BOOST_TEST(c.header.summaries[0] != 0);
  PacketFields p;
  p.src = {198, 19, 1, 1};
  p.dst = {198, 18, 9, 9};
  p.proto = proto_udp;
  p.has_l4 = true;
  p.sport = 5000;
  p.dport = 53;
  uint32_t probes = 99;
  auto got = lookup_compiled(c, p, &probes);
  BOOST_TEST_REQUIRE(got.has_value());
  BOOST_TEST(got->rule_id() == 2u);
  BOOST_TEST(probes == 1u);
  p.dport = 54;  // no table left: no probe at all
  BOOST_TEST(!lookup_compiled(c, p, &probes).has_value());
  BOOST_TEST(probes == 0u);
  p.has_l4 = false;  // a fragment: only the address-only table is a candidate
  p.src = {198, 18, 5, 1};
  got = lookup_compiled(c, p, &probes);
  BOOST_TEST_REQUIRE(got.has_value());
  BOOST_TEST(got->rule_id() == 3u);
  BOOST_TEST(probes == 1u);
}

BOOST_AUTO_TEST_CASE(policy_in_header) {
  auto c = compile_rules({}, Policy{Action::drop, Action::pass});
  BOOST_TEST(c.header.default_action == XDPFW_ACTION_DROP);
  BOOST_TEST(c.header.malformed_action == XDPFW_ACTION_PASS);
  BOOST_TEST(c.header.mapped_action == XDPFW_ACTION_DROP);  // by default
  Policy p;
  p.mapped_ipv6 = Action::pass;
  BOOST_TEST(compile_rules({}, p).header.mapped_action == XDPFW_ACTION_PASS);
}

BOOST_AUTO_TEST_CASE(limits_are_enforced_with_the_rule_named) {
  CompileLimits l;
  l.max_rules = 2;
  BOOST_TEST(compile_error(rules({"action drop", "action drop", "action drop"}), l) ==
             "3 rules exceed the limit of 2 rules");

  CompileLimits two;
  two.max_tables = 2;
  std::string err =
      compile_error(rules({"src 198.18.0.1 action drop", "src 198.18.0.0/16 action drop",
                           "src 198.18.0.0/8 action drop"}),
                    two);
  BOOST_TEST(err == "rule 3: needs a new IPv4 table beyond the limit of 2 tables per family");

  CompileLimits few;
  few.max_buckets_per_family = 3;
  err = compile_error(rules({"src 198.18.0.1 action drop", "src 198.18.0.17 action drop",
                             "src 198.18.0.33 action drop", "src 198.18.0.49 action drop"}),
                      few);
  BOOST_TEST(err.find("rule 4: the rule set needs more than 3 IPv4 hash buckets") == 0u);
}

BOOST_AUTO_TEST_CASE(every_prefix_length_and_both_families_in_one_set) {
  // 2 x (33 + 129) lengths, proto or not: far more shapes than tables.
  std::vector<Rule> rs;
  uint32_t id = 0;
  for (int fam = 0; fam < 2; ++fam)
    for (int len = 0; len <= (fam ? 128 : 32); ++len)
      for (int proto = 0; proto < 2; ++proto) {
        Rule r = parse_rule(std::string(fam ? "src 2001:db8::/" : "src 198.18.0.0/") +
                            std::to_string(len) + " action drop");
        if (proto) r.proto = proto_udp;
        r.id = ++id;
        r.priority = 1000 - static_cast<uint32_t>(len);  // longest first
        rs.push_back(r);
      }
  auto c = compile_rules(rs, Policy{});
  BOOST_TEST(c.header.ntables[0] < 40u);
  BOOST_TEST(c.header.ntables[1] < 80u);
  ReferenceClassifier ref(rs, Action::pass);
  test::RuleGen gen(7);
  for (int i = 0; i < 3000; ++i) {
    PacketFields p = gen.packet(rs);
    auto want = ref.classify(p);
    auto got = lookup_compiled(c, p);
    BOOST_REQUIRE_EQUAL(got.has_value(), want.rule_id.has_value());
    if (got) BOOST_REQUIRE_EQUAL(got->rule_id(), *want.rule_id);
  }
}

BOOST_AUTO_TEST_CASE(bad_rules_are_refused) {
  auto rs = rules({"action drop", "action pass"});
  rs[1].id = rs[0].id;
  BOOST_TEST(compile_error(rs) == "rule 1: id used twice");
  // What a rule's fields say together is checked where the rule is made
  // (parse_rule, validate_rule: unit.rule); the compiler checks what
  // depends on the set and the store.
  rs = rules({"action drop"});
  rs[0].priority.reset();
  BOOST_TEST(compile_error(rs) == "rule 1: no priority");
}

BOOST_AUTO_TEST_CASE(agrees_with_reference_on_random_sets) {
  for (uint64_t seed = 1; seed <= test::sized(30u, 10u); ++seed) {
    test::RuleGen gen(seed);
    auto rs = gen.rules({.rules = 50 + seed * 20, .templates = 4 + seed % 16});
    auto c = compile_rules(rs, Policy{});
    ReferenceClassifier ref(rs, Action::pass);
    for (int i = 0; i < test::sized(3000, 1000); ++i) {
      PacketFields p = gen.packet(rs);
      BOOST_TEST_INFO("seed " << seed << " packet " << i);
      expect_agrees(c, ref, p);
    }
  }
}

namespace {

// Random adds and deletes on a compiled set, in place where they fit and by
// a fresh compile where they do not; after every step the structure passes
// the invariant check and answers every sampled header exactly like the
// reference and a fresh compile of the same list.
void in_place_sequence(std::vector<Rule> pool, size_t start, int steps, int check_every,
                       size_t headers, uint64_t seed, bool mostly_in_place = true) {
  std::mt19937_64 rng(seed);
  std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<Rule> live(pool.begin(), pool.begin() + start);
  std::vector<Rule> spare(pool.begin() + start, pool.end());
  CompiledRuleset c = compile_rules(live, Policy{});
  auto sample = test::classbench_headers(pool, headers, rng);
  int in_place = 0, recompiled = 0;
  for (int step = 1; step <= steps; ++step) {
    bool add = live.empty() || (!spare.empty() && rng() % 2);
    if (add) {
      Rule r = spare.back();
      spare.pop_back();
      live.push_back(r);
      if (add_in_place(c, r)) {
        ++in_place;
      } else {
        c = compile_rules(live, Policy{});
        ++recompiled;
      }
    } else {
      size_t i = rng() % live.size();
      Rule r = live[i];
      live.erase(live.begin() + i);
      spare.insert(spare.begin(), r);
      if (remove_in_place(c, r)) {
        ++in_place;
      } else {
        c = compile_rules(live, Policy{});
        ++recompiled;
      }
    }
    if (step % check_every) continue;
    BOOST_TEST_INFO("step " << step << (add ? " (add)" : " (delete)"));
    BOOST_REQUIRE_EQUAL(check_invariants(c, live), "");
    CompiledRuleset fresh = compile_rules(live, Policy{});
    ReferenceClassifier ref(live, Action::pass);
    for (const PacketFields& p : sample) {
      expect_agrees(c, ref, p);
      expect_agrees(fresh, ref, p);
    }
  }
  BOOST_TEST_MESSAGE(steps << " steps from " << start << " rules: " << in_place << " in place, "
                           << recompiled << " recompiled");
  if (mostly_in_place) BOOST_TEST(in_place > steps * 9 / 10);  // the common case is in place
}

}  // namespace

BOOST_AUTO_TEST_CASE(in_place_changes_keep_the_structure_and_the_answers) {
  // ClassBench rules in random order (priorities stay the file's), IPv4 and
  // IPv6, and random sets with duplicates and both families.
  const int steps = test::sized(1000, 200);
  auto acl = test::load_classbench(test::classbench_path("acl1_1000"), {});
  in_place_sequence(acl, 500, steps, 1, 300, 1);
  auto ipc6 = test::load_classbench(test::classbench_path("ipc1_1000"), {.v6 = true});
  in_place_sequence(ipc6, 500, steps, 1, 300, 2);
  auto fw10k = test::load_classbench(test::classbench_path("fw1_10000"), {});
  in_place_sequence(fw10k, 9000, steps, 20, 500, 3);
  // Many duplicates and chains: shadowed duplicates and chain links change
  // in place too (it was 23% in place before they did).
  test::RuleGen gen(4);
  in_place_sequence(gen.rules({.rules = 1500, .templates = 12}), 1000, steps, 1, 300, 4);
}

BOOST_AUTO_TEST_CASE(in_place_refuses_what_would_reorder_and_keeps_duplicates_in_order) {
  auto rs = rules({"prio 10 src 198.18.0.1 action drop", "prio 20 src 198.18.0.2 action pass"});
  auto c = compile_rules(rs, Policy{});
  auto decides = [&](const char* src) {
    PacketFields p;
    p.src = parse_prefix(src, "src").addr;
    auto got = lookup_compiled(c, p);
    return got ? got->rule_id() : 0u;
  };
  Rule better = parse_rule("id 3 prio 5 src 198.18.0.3 action drop");
  BOOST_TEST(!add_in_place(c, better).has_value());  // would be its table's new best
  // Same match as rule 2 and better: it takes rule 2's place, one write,
  // its record first.
  Rule over = parse_rule("id 6 prio 15 src 198.18.0.2 action drop");
  auto swap = add_in_place(c, over);
  BOOST_TEST_REQUIRE(swap.has_value());
  BOOST_TEST(swap->v4.size() == 1u);
  BOOST_TEST(swap->cands == std::vector<uint32_t>{6});
  rs.push_back(over);
  BOOST_TEST(check_invariants(c, rs) == "");
  BOOST_TEST(decides("198.18.0.2") == 6u);
  // Same match, after both: it can never decide, nothing is written.
  Rule dup = parse_rule("id 4 prio 30 src 198.18.0.2 action drop");
  auto none = add_in_place(c, dup);
  BOOST_TEST_REQUIRE(none.has_value());
  BOOST_TEST((none->v4.empty() && none->v6.empty() && !none->header && none->cands.empty()));
  rs.push_back(dup);
  BOOST_TEST(check_invariants(c, rs) == "");
  // The placed one goes: the next of its duplicates (rule 2) takes its place.
  auto back = remove_in_place(c, over);
  BOOST_TEST_REQUIRE(back.has_value());
  BOOST_TEST(back->v4.size() == 1u);
  BOOST_TEST(back->cands == std::vector<uint32_t>{2});
  rs.erase(std::find(rs.begin(), rs.end(), over));
  BOOST_TEST(check_invariants(c, rs) == "");
  BOOST_TEST(decides("198.18.0.2") == 2u);
  auto gone = remove_in_place(c, dup);  // shadowed: nothing to write
  BOOST_TEST_REQUIRE(gone.has_value());
  BOOST_TEST((gone->v4.empty() && gone->v6.empty()));
  rs.pop_back();
  BOOST_TEST(check_invariants(c, rs) == "");
  Rule fits = parse_rule("id 5 prio 30 src 198.18.0.9 action drop");
  auto d = add_in_place(c, fits);
  BOOST_TEST_REQUIRE(d.has_value());
  BOOST_TEST(d->v4.size() == 1u);  // one bucket write, no v6 (an IPv4 rule)
  BOOST_TEST(d->v6.empty());
  rs.push_back(fits);
  BOOST_TEST(check_invariants(c, rs) == "");
  BOOST_TEST(remove_in_place(c, rs[0]).has_value());
  rs.erase(rs.begin());
  BOOST_TEST(check_invariants(c, rs) == "");
}

// Chains change in place too: a removal leaves its link short or empty (one
// write), an add goes where its place in the order has room or into a new
// link at the end (written before the link that points to it), and only an
// add into the middle of full links is refused.
BOOST_AUTO_TEST_CASE(chains_change_in_place) {
  // 16 in the relaxed table, then links of 16, 16, 16 and 4 in the rules'
  // own one (ids 1-68; the last one matches the header).
  std::vector<Rule> rs = test::worst_case_chain(Family::v4, 68);
  CompiledRuleset c = compile_rules(rs, Policy{});
  BOOST_TEST_REQUIRE(check_invariants(c, rs) == "");
  auto links = [&] {
    size_t n = 0;
    for (const auto& [k, b] : c.v4) n += k.chain > 0;
    return n;
  };
  BOOST_TEST(links() == 3u);
  PacketFields h = test::worst_case_header(Family::v4);
  auto decided = [&] {
    auto got = lookup_compiled(c, h);
    return got ? got->rule_id() : 0u;
  };
  BOOST_TEST(decided() == 68u);
  // Empty the second link (ids 33-48): one write each, the link stays.
  for (uint32_t id = 33; id <= 48; ++id) {
    auto d = remove_in_place(c, rs[id - 1]);
    BOOST_TEST_REQUIRE(d.has_value());
    BOOST_TEST(d->v4.size() == 1u);
  }
  std::vector<Rule> live;
  for (const Rule& r : rs)
    if (r.id < 33 || r.id > 48) live.push_back(r);
  BOOST_TEST_REQUIRE(check_invariants(c, live) == "");
  BOOST_TEST(links() == 3u);
  BOOST_TEST(decided() == 68u);  // read on past the empty link
  // Back into the empty link, in order.
  for (uint32_t id = 40; id <= 41; ++id) {
    BOOST_TEST_REQUIRE(add_in_place(c, rs[id - 1]).has_value());
    live.push_back(rs[id - 1]);
  }
  BOOST_TEST_REQUIRE(check_invariants(c, live) == "");
  // Past the end: the last link (4 rules) fills up, then a new link.
  for (uint32_t id = 69; id <= 90; ++id) {
    Rule r = test::worst_case_chain(Family::v4, 100)[id - 1];
    auto d = add_in_place(c, r);
    BOOST_TEST_REQUIRE(d.has_value());
    live.push_back(r);
    if (id == 81) {  // the 13th after 68: the last link is full, a new one
      BOOST_TEST_REQUIRE(d->v4.size() == 2u);
      BOOST_TEST(d->v4[0].first.chain == d->v4[1].first.chain + 1);  // new link first
      BOOST_TEST(d->v4[1].second->more);
    }
  }
  BOOST_TEST_REQUIRE(check_invariants(c, live) == "");
  BOOST_TEST(links() == 4u);
  BOOST_TEST(decided() == 68u);
  // Into the middle of a full link: refused, nothing changed.
  Rule middle = rs[4];
  middle.id = 1000;
  middle.priority = 5;  // between ids 5 and 6, in the relaxed table's full bucket
  middle.sport = PortRange{3000, 3001};
  BOOST_TEST(!add_in_place(c, middle).has_value());
  BOOST_TEST(check_invariants(c, live) == "");
}

BOOST_AUTO_TEST_CASE(agrees_with_reference_on_classbench_sets) {
  // Every shipped set up to 10,000 rules, IPv4 and mapped into 2001:db8::/32.
  for (const char* name :
       {"acl1_1000", "fw1_1000", "ipc1_1000", "acl1_10000", "fw1_10000", "ipc1_10000"})
    for (bool v6 : {false, true}) {
      auto rs = test::load_classbench(test::classbench_path(name), {.v6 = v6});
      auto c = compile_rules(rs, Policy{});
      ReferenceClassifier ref(rs, Action::pass);
      std::mt19937_64 rng(11);
      int fam = v6 ? XDPFW_FAMILY_V6 : XDPFW_FAMILY_V4;
      BOOST_TEST_MESSAGE(name << (v6 ? " v6: " : " v4: ") << rs.size() << " rules, "
                              << c.header.ntables[fam] << " tables, "
                              << (v6 ? c.v6.size() : c.v4.size()) << " buckets");
      for (const PacketFields& p : test::classbench_headers(rs, test::sized(20000, 3000), rng)) {
        BOOST_TEST_INFO(name << (v6 ? " v6 " : " v4 ") << format_address(p.family, p.src) << " -> "
                             << format_address(p.family, p.dst) << " proto " << int(p.proto) << " "
                             << p.sport << "/" << p.dport);
        expect_agrees(c, ref, p);
      }
    }
}

BOOST_AUTO_TEST_CASE(malformed_packets_are_decided_by_their_readable_fields) {
  // docs/DATAPATH.md, "Parser": the first rule whose readable fields match
  // decides; the malformed action when it needs one that was not read.
  auto rs =
      rules({"id 1 prio 1 proto tcp dport 22 action pass", "id 2 prio 2 src 198.18.0.7 action drop",
             "id 3 prio 3 src 2001:db8::7 proto udp action drop",
             "id 4 prio 4 dst 2001:db8::1 action pass"});
  Policy pol{Action::pass, Action::pass};
  auto c = compile_rules(rs, pol);
  ReferenceClassifier ref(rs, pol.default_action, pol.malformed_action);
  auto v4 = [](const char* src, uint8_t proto, Readable r) {
    PacketFields p;
    p.src = parse_prefix(src, "src").addr;
    p.dst = parse_prefix("198.18.0.1", "dst").addr;
    p.proto = proto;
    p.readable = r;
    return p;
  };
  auto v6 = [](const char* src, uint8_t proto, Readable r) {
    PacketFields p;
    p.family = Family::v6;
    p.src = parse_prefix(src, "src").addr;
    p.dst = parse_prefix("2001:db8::1", "dst").addr;
    p.proto = proto;
    p.readable = r;
    return p;
  };
  struct Case {
    PacketFields p;
    Action action;
    std::optional<uint32_t> rule;
  } cases[] = {
      // TCP without its header: rule 1 would need its port
      {v4("198.18.0.7", 6, Readable::no_l4), Action::pass, std::nullopt},
      // UDP without its header: rule 1 cannot match, the address rule decides
      {v4("198.18.0.7", 17, Readable::no_l4), Action::drop, 2u},
      {v4("198.18.0.8", 17, Readable::no_l4), Action::pass, std::nullopt},
      {v4("198.18.0.7", 17, Readable::nothing), Action::pass, std::nullopt},
      // IPv6 without its protocol: rule 1 needs it, whatever the address
      {v6("2001:db8::7", 17, Readable::no_proto), Action::pass, std::nullopt},
      // with it: rule 3 decides on address and protocol
      {v6("2001:db8::7", 17, Readable::no_l4), Action::drop, 3u},
      {v6("2001:db8::8", 17, Readable::no_l4), Action::pass, 4u},
  };
  for (const Case& k : cases) {
    Verdict want = ref.classify(k.p);
    BOOST_TEST((want.action == k.action));
    BOOST_TEST((want.rule_id == k.rule));
    Verdict got = verdict_of(lookup_compiled(c, k.p), k.p, pol);
    BOOST_TEST((got.action == k.action));
    BOOST_TEST((got.rule_id == k.rule));
  }
  BOOST_TEST(check_invariants(c, rs) == "");
}

// Records are kept packed (masks as prefix lengths, rate fields aside)
// and read back whole: check_invariants compares each with make_cand.
BOOST_AUTO_TEST_CASE(packed_records_read_back_whole) {
  auto rs = rules({"src 2001:db8:8000::/35 dst 2001:db8::/33 action drop",
                   "proto tcp tcp-flags syn,!ack rate 1000/s burst 100 per src/24 log action drop",
                   "src 198.18.0.1 proto udp sport 53 dport 1000-2000 action pass",
                   "src 2001:db8::1 proto icmpv6 action audit"});
  auto c = compile_rules(rs, Policy{});
  BOOST_TEST(check_invariants(c, rs) == "");
  xdpfw_cand rate = c.cands.at(2);
  BOOST_TEST(rate.rate_cost_ns == 1000000u);
  BOOST_TEST(rate.rate_plen == 24u);
  BOOST_TEST(rate.src_mask[0] == 0u);
  for (const auto& [id, r] : c.cands) BOOST_TEST((id == 2) == (r.rate_burst_ns != 0));
  // A rule that goes takes its rate fields with it.
  CandidateMap m = c.cands;
  m.erase(2);
  xdpfw_cand again = rate;
  again.flags = 0;
  again.rate_cost_ns = again.rate_burst_ns = 0;
  BOOST_TEST(m.emplace(2, again));
  BOOST_TEST(m.at(2).rate_cost_ns == 0u);
  BOOST_TEST(!m.emplace(2, again));  // one record per id
  // Only prefix masks pack.
  xdpfw_cand odd{};
  odd.src_mask[0] = htonl(0xff00ff00u);
  BOOST_CHECK_THROW(m.emplace(99, odd), std::logic_error);
}

// Summary pages: equal pages are one, and a write copies a shared page.
BOOST_AUTO_TEST_CASE(summary_pages_are_shared_and_copied_on_write) {
  std::vector<Rule> rs;
  for (uint32_t i = 0; i < 1000; ++i) {
    Rule r = parse_rule("src 198.18." + std::to_string(i / 250) + "." + std::to_string(i % 250) +
                        " proto tcp dport " + std::to_string(1000 + i) + " action drop");
    r.id = i + 1;
    r.priority = 100;
    rs.push_back(r);
  }
  rs.push_back(rules({"src 198.18.0.0/24 action pass"})[0]);
  rs.back().id = 2000;
  auto c = compile_rules(rs, Policy{});
  BOOST_TEST(check_invariants(c, rs) == "");
  const SummaryMasks& s = c.summary[XDPFW_FAMILY_V4];
  BOOST_REQUIRE(!s.empty());
  BOOST_TEST(s.size() == size_t{XDPFW_SUMMARY_FIELDS} * XDPFW_SUMMARY_SPACE);
  BOOST_TEST(s.distinct_pages() < 16u);  // of 768

  SummaryMasks t;
  t.assign_zero(4 * SummaryMasks::kPage, 2 * SummaryMasks::kPage);
  BOOST_TEST(t.distinct_pages() == 2u);
  t.mut(SummaryMasks::kPage + 3).w[0] = 1;
  BOOST_TEST(t.distinct_pages() == 3u);
  BOOST_TEST(t[3].w[0] == 0u);
  BOOST_TEST(t[SummaryMasks::kPage + 3].w[0] == 1u);
  xdpfw_tmask m{};
  m.w[1] = 4;
  t.or_range(2 * SummaryMasks::kPage, 2 * SummaryMasks::kPage, m);
  BOOST_TEST(t[3].w[1] == 0u);
  BOOST_TEST(t[3 * SummaryMasks::kPage].w[1] == 4u);
  SummaryMasks u = t;  // copies share pages; a write to one leaves the other
  u.mut(3).w[0] = 7;
  BOOST_TEST(t[3].w[0] == 0u);
  BOOST_TEST(u[3].w[0] == 7u);
  u.or_range(2 * SummaryMasks::kPage, SummaryMasks::kPage, xdpfw_tmask{{8, 0}});
  BOOST_TEST(t[2 * SummaryMasks::kPage].w[0] == 0u);
  BOOST_TEST(u[2 * SummaryMasks::kPage].w[0] == 8u);
  BOOST_TEST(u[3 * SummaryMasks::kPage].w[0] == 0u);  // outside the range: not ORed
  t.share();
  BOOST_TEST(t.distinct_pages() == 3u);  // zero, the one with a bit, the two ORed
}

BOOST_AUTO_TEST_SUITE_END()
