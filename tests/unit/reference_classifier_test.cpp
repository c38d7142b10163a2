// The reference classifier is the definition of the rule semantics (design
// brief §3); these cases pin that definition down.
#include <boost/test/unit_test.hpp>

#include "reference_classifier.hpp"

using namespace xdpfw;

namespace {
PacketFields pkt4(const char* src, const char* dst, uint8_t proto, int sport = -1, int dport = -1) {
  PacketFields p;
  p.family = Family::v4;
  p.src = parse_prefix(src, "src").addr;
  p.dst = parse_prefix(dst, "dst").addr;
  p.proto = proto;
  p.has_l4 = sport >= 0;
  p.sport = static_cast<uint16_t>(sport < 0 ? 0 : sport);
  p.dport = static_cast<uint16_t>(dport < 0 ? 0 : dport);
  return p;
}
PacketFields pkt6(const char* src, const char* dst, uint8_t proto, int sport, int dport) {
  PacketFields p = pkt4("0.0.0.0", "0.0.0.0", proto, sport, dport);
  p.family = Family::v6;
  p.src = parse_prefix(src, "src").addr;
  p.dst = parse_prefix(dst, "dst").addr;
  return p;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(reference_classifier)

BOOST_AUTO_TEST_CASE(seed_example_matches_with_wildcards) {
  ReferenceClassifier c({parse_rule("id 1 prio 0 src 127.0.0.1 dport 8080 proto tcp action drop")},
                        Action::pass);
  auto v = c.classify(pkt4("127.0.0.1", "127.0.0.1", proto_tcp, 43210, 8080));
  BOOST_TEST((v.action == Action::drop));
  BOOST_TEST(*v.rule_id == 1u);
  v = c.classify(pkt4("127.0.0.1", "127.0.0.1", proto_tcp, 43210, 8081));
  BOOST_TEST(!v.rule_id.has_value());
  BOOST_TEST((v.action == Action::pass));
}

BOOST_AUTO_TEST_CASE(first_match_by_priority_then_id) {
  ReferenceClassifier c(
      {parse_rule("id 5 prio 10 proto udp action pass"),
       parse_rule("id 3 prio 10 proto udp action drop"), parse_rule("id 1 prio 20 action pass")},
      Action::pass);
  auto v = c.classify(pkt4("198.18.0.1", "198.18.0.2", proto_udp, 1, 2));
  BOOST_TEST(*v.rule_id == 3u);
  v = c.classify(pkt4("198.18.0.1", "198.18.0.2", proto_tcp, 1, 2));
  BOOST_TEST(*v.rule_id == 1u);
}

BOOST_AUTO_TEST_CASE(families_do_not_mix) {
  ReferenceClassifier c({parse_rule("id 1 prio 0 src 198.18.0.0/15 action drop"),
                         parse_rule("id 2 prio 1 dst 2001:db8::/32 action drop"),
                         parse_rule("id 3 prio 2 proto tcp action pass")},
                        Action::pass);
  BOOST_TEST(*c.classify(pkt4("198.18.0.1", "198.18.0.2", proto_tcp, 1, 2)).rule_id == 1u);
  BOOST_TEST(*c.classify(pkt6("2001:db8::1", "2001:db8::2", proto_tcp, 1, 2)).rule_id == 2u);
  // An address-less rule matches both families.
  BOOST_TEST(*c.classify(pkt6("2001:db9::1", "2001:db9::2", proto_tcp, 1, 2)).rule_id == 3u);
  BOOST_TEST(*c.classify(pkt4("10.0.0.1", "10.0.0.2", proto_tcp, 1, 2)).rule_id == 3u);
}

BOOST_AUTO_TEST_CASE(range_edges) {
  ReferenceClassifier c({parse_rule("id 1 prio 0 proto tcp dport 1000-2000 action drop")},
                        Action::pass);
  for (auto [port, hit] :
       {std::pair{999, false}, {1000, true}, {1500, true}, {2000, true}, {2001, false}}) {
    BOOST_TEST(
        c.classify(pkt4("198.18.0.1", "198.18.0.2", proto_tcp, 5, port)).rule_id.has_value() ==
        hit);
  }
}

BOOST_AUTO_TEST_CASE(non_first_fragments_miss_port_rules) {
  ReferenceClassifier c({parse_rule("id 1 prio 0 proto udp dport 0-65535 action drop"),
                         parse_rule("id 2 prio 1 proto udp action pass")},
                        Action::drop);
  auto frag = pkt4("198.18.0.1", "198.18.0.2", proto_udp);  // no L4 header
  BOOST_TEST(*c.classify(frag).rule_id == 2u);
  BOOST_TEST(*c.classify(pkt4("198.18.0.1", "198.18.0.2", proto_udp, 1, 2)).rule_id == 1u);
}

BOOST_AUTO_TEST_CASE(icmp_type_and_code) {
  ReferenceClassifier c({parse_rule("id 1 prio 0 proto icmp icmp-type 8 icmp-code 0 action drop"),
                         parse_rule("id 2 prio 1 proto icmp icmp-type 3 action pass")},
                        Action::pass);
  BOOST_TEST(*c.classify(pkt4("198.18.0.1", "198.18.0.2", proto_icmp, 8, 0)).rule_id == 1u);
  BOOST_TEST(!c.classify(pkt4("198.18.0.1", "198.18.0.2", proto_icmp, 8, 1)).rule_id);
  BOOST_TEST(*c.classify(pkt4("198.18.0.1", "198.18.0.2", proto_icmp, 3, 13)).rule_id == 2u);
}

BOOST_AUTO_TEST_CASE(default_action_applies_when_nothing_matches) {
  ReferenceClassifier c({}, Action::drop);
  auto v = c.classify(pkt4("198.18.0.1", "198.18.0.2", proto_tcp, 1, 2));
  BOOST_TEST((v.action == Action::drop));
  BOOST_TEST(!v.rule_id);
}

// IPv4-mapped and -compatible IPv6 sources: dropped before any rule unless
// mapped-ipv6 is pass; ::, ::1 and other addresses are not such sources.
BOOST_AUTO_TEST_CASE(mapped_ipv6_sources_are_dropped_before_the_rules) {
  std::vector<Rule> rules = {parse_rule("id 1 prio 1 action pass")};
  ReferenceClassifier drop(rules, Action::pass);
  ReferenceClassifier pass(rules, Action::pass, Action::drop, Action::pass);
  for (const char* src : {"::ffff:198.18.0.7", "::ffff:0.0.0.0", "::198.18.0.7", "::0.0.0.2"}) {
    PacketFields p = pkt6(src, "2001:db8::1", proto_udp, 1, 2);
    BOOST_TEST_INFO(src);
    BOOST_TEST(mapped_ipv6_source(p));
    Verdict v = drop.classify(p);
    BOOST_TEST((v.action == Action::drop && v.mapped && !v.rule_id));
    p.readable = Readable::no_proto;  // malformed, its addresses read
    BOOST_TEST(drop.classify(p).mapped);
    p.readable = Readable::all;
    v = pass.classify(p);
    BOOST_TEST((!v.mapped && v.rule_id == 1u));
  }
  for (const char* src : {"::", "::1", "2001:db8::7", "::fffe:198.18.0.7", "1::198.18.0.7"}) {
    BOOST_TEST_INFO(src);
    PacketFields p = pkt6(src, "::ffff:198.18.0.7", proto_udp, 1, 2);
    BOOST_TEST(!mapped_ipv6_source(p));
    BOOST_TEST((drop.classify(p).rule_id == 1u));
  }
  PacketFields v4 = pkt4("0.0.0.0", "198.18.0.1", proto_udp, 1, 2);  // IPv4 never
  BOOST_TEST(!mapped_ipv6_source(v4));
}

BOOST_AUTO_TEST_SUITE_END()
