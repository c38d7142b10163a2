// The compiler: shapes, port classes, keep-best per key, limits with errors
// naming the rule, and agreement with the reference on random rule sets
// (run through the user-space copy of the XDP lookup).
#include <boost/test/unit_test.hpp>

#include "common/rule_gen.hpp"
#include "reference_classifier.hpp"
#include "rule_compiler.hpp"

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

BOOST_AUTO_TEST_CASE(one_shape_per_mask_signature) {
  auto c = compile_rules(rules({"src 198.18.0.1 action drop", "src 198.18.0.2 action drop",
                                "src 198.18.0.0/24 action pass", "proto tcp dport 22 action drop"}),
                         Policy{});
  BOOST_TEST(c.header.nshapes[XDPFW_FAMILY_V4] == 3u);  // /32, /24, proto+dport
  BOOST_TEST(c.header.nshapes[XDPFW_FAMILY_V6] == 1u);  // proto+dport matches v6 too
  BOOST_TEST(c.v4.size() == 4u);
  BOOST_TEST(c.v6.size() == 1u);
}

BOOST_AUTO_TEST_CASE(shapes_sorted_by_best_rule) {
  auto c = compile_rules(
      rules({"prio 50 src 198.18.0.1 action drop", "prio 10 src 198.18.0.0/24 action pass",
             "prio 30 src 198.18.0.2 action pass"}),
      Policy{});
  BOOST_TEST(c.header.nshapes[0] == 2u);
  BOOST_TEST(c.header.shapes[0][0].src_plen == 24);
  BOOST_TEST(c.header.shapes[0][1].src_plen == 32);
  BOOST_TEST(c.header.shapes[0][1].min_order == rule_order(30, 3));
}

BOOST_AUTO_TEST_CASE(port_classes_are_named_by_their_first_port) {
  auto c = compile_rules(
      rules({"proto tcp dport 1000-2000 action drop", "proto udp dport 1500 action pass"}),
      Policy{});
  const auto& t = c.port_class[XDPFW_FIELD_DPORT];
  BOOST_TEST(t[0] == 0u);
  BOOST_TEST(t[999] == 0u);
  BOOST_TEST(t[1000] == 1000u);
  BOOST_TEST(t[1499] == 1000u);
  BOOST_TEST(t[1500] == 1500u);
  BOOST_TEST(t[1501] == 1501u);
  BOOST_TEST(t[2000] == 1501u);
  // Ports no rule names share the class of the lowest of them (0 here).
  BOOST_TEST(t[2001] == 0u);
  BOOST_TEST(t[65535] == 0u);
  // tcp 1000-2000 spans classes 1000, 1500, 1501; udp 1500 one class; both families
  BOOST_TEST(c.v4.size() == 4u);
}

BOOST_AUTO_TEST_CASE(a_rule_on_a_new_port_renames_that_port_only) {
  auto before = compile_rules(rules({"proto udp dport 53 action pass"}), Policy{});
  auto after = compile_rules(
      rules({"proto udp dport 53 action pass", "proto udp dport 8080 action drop"}), Policy{});
  const auto& a = before.port_class[XDPFW_FIELD_DPORT];
  const auto& b = after.port_class[XDPFW_FIELD_DPORT];
  int changed = 0;
  for (size_t p = 0; p < a.size(); ++p) changed += a[p] != b[p];
  BOOST_TEST(changed == 1);
  BOOST_TEST(b[8080] == 8080u);
}

BOOST_AUTO_TEST_CASE(the_gap_class_is_never_a_named_class) {
  // Port 0 and 1 named: the gap takes the lowest unnamed port, 2.
  auto c = compile_rules(
      rules({"proto tcp dport 0-1 action drop", "proto tcp dport 5 action drop"}), Policy{});
  const auto& t = c.port_class[XDPFW_FIELD_DPORT];
  BOOST_TEST(t[0] == 0u);
  BOOST_TEST(t[1] == 0u);
  BOOST_TEST(t[2] == 2u);
  BOOST_TEST(t[4] == 2u);
  BOOST_TEST(t[5] == 5u);
  BOOST_TEST(t[6] == 2u);
  BOOST_TEST(t[65535] == 2u);
}

BOOST_AUTO_TEST_CASE(best_rule_kept_per_key) {
  auto c = compile_rules(
      rules({"id 9 prio 5 src 198.18.0.1 action pass", "id 4 prio 5 src 198.18.0.1 action drop"}),
      Policy{});
  BOOST_TEST(c.v4.size() == 1u);
  BOOST_TEST(c.v4.begin()->second.rule_id() == 4u);
}

BOOST_AUTO_TEST_CASE(full_port_range_needs_l4_but_no_classes) {
  auto c = compile_rules(rules({"proto tcp dport 0-65535 action drop"}), Policy{});
  const auto& s = c.header.shapes[0][0];
  BOOST_TEST((s.flags & XDPFW_SHAPE_L4) != 0);
  BOOST_TEST((s.flags & XDPFW_SHAPE_DPORT) == 0);
  BOOST_TEST(c.v4.size() == 1u);
}

BOOST_AUTO_TEST_CASE(policy_is_in_the_header) {
  auto c = compile_rules({}, Policy{Action::drop, Action::pass});
  BOOST_TEST(c.header.default_action == XDPFW_ACTION_DROP);
  BOOST_TEST(c.header.malformed_action == XDPFW_ACTION_PASS);
}

BOOST_AUTO_TEST_CASE(limits_are_enforced_with_the_rule_named) {
  CompileLimits l;
  l.max_rules = 2;
  BOOST_TEST(compile_error(rules({"action drop", "action drop", "action drop"}), l) ==
             "3 rules exceed the limit of 2 rules");

  std::vector<Rule> many;
  for (int len = 0; len <= 32; ++len)
    for (int proto = 0; proto < 2; ++proto) {
      Rule r = parse_rule("src 198.18.0.0/" + std::to_string(len) + " action drop");
      if (proto) r.proto = proto_udp;
      r.id = static_cast<uint32_t>(many.size() + 1);
      r.priority = 1;
      many.push_back(r);
    }
  std::string err = compile_error(many);  // 66 shapes
  BOOST_TEST(err.find("rule 65: needs a new IPv4 mask shape") == 0u);
  BOOST_TEST(err.find("limit of 64 distinct shapes per family") != std::string::npos);

  std::vector<Rule> ports;
  for (int p = 1; p <= 300; ++p)
    ports.push_back(
        rules({("proto tcp dport " + std::to_string(p * 2) + " action pass").c_str()})[0]);
  for (size_t i = 0; i < ports.size(); ++i) ports[i].id = static_cast<uint32_t>(i + 1);
  Rule wide = parse_rule("id 999 prio 1 proto tcp sport 1-600 dport 1-600 action drop");
  ports.push_back(wide);
  // dport boundaries at 1, 2, 3, ..., 601: 1-600 spans 600 classes; sport 1-600 one class
  CompileLimits small;
  small.max_expansion_per_rule = 500;
  err = compile_error(ports, small);
  BOOST_TEST(err.find("rule 999: its port ranges expand to 600 entries (1 sport x 600 dport "
                      "classes), over the limit of 500 per rule") == 0u);

  CompileLimits few;
  few.max_entries_per_family = 3;
  err = compile_error(rules({"src 198.18.0.1 action drop", "src 198.18.0.2 action drop",
                             "src 198.18.0.3 action drop", "src 198.18.0.4 action drop"}),
                      few);
  BOOST_TEST(err.find("rule 4: the rule set needs more than 3 hash entries") == 0u);
}

BOOST_AUTO_TEST_CASE(bad_rules_are_refused) {
  auto rs = rules({"action drop", "action pass"});
  rs[1].id = rs[0].id;
  BOOST_TEST(compile_error(rs) == "rule 1: id used twice");
  rs = rules({"action drop"});
  rs[0].sport = PortRange{1, 2};
  BOOST_TEST(compile_error(rs) == "rule 1: sport: ports need 'proto tcp' or 'proto udp'");
  rs[0].sport.reset();
  rs[0].priority.reset();
  BOOST_TEST(compile_error(rs) == "rule 1: no priority");
}

BOOST_AUTO_TEST_CASE(agrees_with_reference_on_random_sets) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    test::RuleGen gen(seed);
    auto rs = gen.rules({.rules = 50 + seed * 20, .templates = 4 + seed % 16});
    auto c = compile_rules(rs, Policy{});
    ReferenceClassifier ref(rs, Action::pass);
    for (int i = 0; i < 3000; ++i) {
      PacketFields p = gen.packet(rs);
      auto want = ref.classify(p);
      auto got = lookup_compiled(c, p);
      BOOST_TEST_INFO("seed " << seed << " packet " << i);
      BOOST_REQUIRE_EQUAL(got.has_value(), want.rule_id.has_value());
      if (got) BOOST_REQUIRE_EQUAL(got->rule_id(), *want.rule_id);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
