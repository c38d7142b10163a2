// Classification through the real program: every field for v4 and v6,
// wildcards, range edges, priority and id order, policies, atomic replace.
#include <boost/test/unit_test.hpp>

#include "datapath/fixture.hpp"

using namespace xdpfw;
using namespace xdpfw::test;

namespace {
// A packet and the rule that must match it (0: none, the default passes).
struct Case {
  PacketSpec p;
  uint32_t rule;
};

void check_cases(DatapathFixture& fx, const std::vector<Case>& cases) {
  for (const auto& c : cases) {
    uint64_t before = c.rule ? fx.hits(c.rule) : 0;
    BOOST_TEST_INFO(format_address(c.p.f.family, c.p.f.src)
                    << " -> " << format_address(c.p.f.family, c.p.f.dst) << " proto "
                    << int(c.p.f.proto) << " " << c.p.f.sport << "/" << c.p.f.dport);
    BOOST_TEST(fx.run(c.p) == (c.rule ? XDP_DROP : XDP_PASS));
    if (c.rule) BOOST_TEST(fx.hits(c.rule) == before + 1);
  }
}
}  // namespace

BOOST_AUTO_TEST_SUITE(classify)

BOOST_FIXTURE_TEST_CASE(seed_example_with_wildcards, DatapathFixture) {
  // The original design's example never matched: unnamed fields were zeros.
  install({"src 198.18.0.1 dport 8080 proto tcp action drop"});
  BOOST_TEST(run(tcp4(8080, 51234)) == XDP_DROP);
  BOOST_TEST(run(tcp4(8081, 51234)) == XDP_PASS);
  BOOST_TEST(hits(1) == 1u);
}

BOOST_FIXTURE_TEST_CASE(every_field_v4, DatapathFixture) {
  install({"prio 1 src 198.18.1.0/24 action drop", "prio 2 dst 198.19.0.7 action drop",
           "prio 3 proto 47 action drop", "prio 4 proto tcp sport 1000-1999 action drop",
           "prio 5 proto udp dport 53 action drop",
           "prio 6 proto icmp icmp-type 8 icmp-code 0 action drop"});
  auto pkt = [](const char* s, const char* d, uint8_t proto, uint16_t sp, uint16_t dp) {
    return PacketSpec{.f = fields4(s, d, proto, sp, dp)};
  };
  check_cases(*this, {
                         {pkt("198.18.1.77", "198.18.0.2", 6, 1, 2), 1},
                         {pkt("198.18.2.77", "198.18.0.2", 6, 1, 2), 0},
                         {pkt("198.18.0.1", "198.19.0.7", 17, 1, 2), 2},
                         {pkt("198.18.0.1", "198.19.0.8", 17, 1, 2), 0},
                         {pkt("198.18.0.1", "198.18.0.2", 47, 0, 0), 3},
                         {pkt("198.18.0.1", "198.18.0.2", 6, 999, 2), 0},
                         {pkt("198.18.0.1", "198.18.0.2", 6, 1000, 2), 4},
                         {pkt("198.18.0.1", "198.18.0.2", 6, 1999, 2), 4},
                         {pkt("198.18.0.1", "198.18.0.2", 6, 2000, 2), 0},
                         {pkt("198.18.0.1", "198.18.0.2", 17, 1000, 53), 5},
                         {pkt("198.18.0.1", "198.18.0.2", 6, 1, 53), 0},
                         {pkt("198.18.0.1", "198.18.0.2", 1, 8, 0), 6},
                         {pkt("198.18.0.1", "198.18.0.2", 1, 8, 1), 0},
                         {pkt("198.18.0.1", "198.18.0.2", 1, 0, 0), 0},
                     });
}

BOOST_FIXTURE_TEST_CASE(every_field_v6, DatapathFixture) {
  install({"prio 1 src 2001:db8:1::/48 action drop", "prio 2 dst 2001:db8::7 action drop",
           "prio 3 proto 47 action drop", "prio 4 proto tcp sport 1000-1999 action drop",
           "prio 5 proto udp dport 53 action drop",
           "prio 6 proto icmpv6 icmp-type 128 action drop"});
  auto pkt = [](const char* s, const char* d, uint8_t proto, uint16_t sp, uint16_t dp) {
    return PacketSpec{.f = fields6(s, d, proto, sp, dp)};
  };
  check_cases(*this, {
                         {pkt("2001:db8:1:ffff::1", "2001:db8::2", 6, 1, 2), 1},
                         {pkt("2001:db8:2::1", "2001:db8::2", 6, 1, 2), 0},
                         {pkt("2001:db8::1", "2001:db8::7", 17, 1, 2), 2},
                         {pkt("2001:db8::1", "2001:db8::8", 17, 1, 2), 0},
                         {pkt("2001:db8::1", "2001:db8::2", 47, 0, 0), 3},
                         {pkt("2001:db8::1", "2001:db8::2", 6, 1000, 2), 4},
                         {pkt("2001:db8::1", "2001:db8::2", 6, 1999, 2), 4},
                         {pkt("2001:db8::1", "2001:db8::2", 6, 2000, 2), 0},
                         {pkt("2001:db8::1", "2001:db8::2", 17, 1, 53), 5},
                         {pkt("2001:db8::1", "2001:db8::2", 58, 128, 0), 6},
                         {pkt("2001:db8::1", "2001:db8::2", 58, 129, 0), 0},
                     });
}

BOOST_FIXTURE_TEST_CASE(families_do_not_mix, DatapathFixture) {
  install({"prio 1 src 0.0.0.0/0 action drop", "prio 2 proto udp action pass"},
          Policy{Action::drop, Action::drop});
  BOOST_TEST(run(udp4(1)) == XDP_DROP);
  BOOST_TEST(run(udp6(1)) == XDP_PASS);  // the v4 /0 rule does not match v6
  BOOST_TEST(hits(1) == 1u);
  BOOST_TEST(hits(2) == 1u);
}

BOOST_FIXTURE_TEST_CASE(priority_then_id_decides, DatapathFixture) {
  install({"id 10 prio 50 proto udp action drop", "id 11 prio 20 proto udp dport 53 action pass",
           "id 12 prio 20 src 198.18.0.1 action drop", "id 5 prio 20 dst 198.18.0.2 action drop"},
          Policy{Action::drop, Action::drop});
  // 53: rules 11 (20,11), 12 (20,12), 5 (20,5) and 10 (50,10) match; 5 wins.
  BOOST_TEST(run(udp4(53)) == XDP_DROP);
  BOOST_TEST(hits(5) == 1u);
  install({"id 10 prio 50 proto udp action drop", "id 11 prio 20 proto udp dport 53 action pass",
           "id 12 prio 20 src 198.18.0.1 action drop"},
          Policy{Action::drop, Action::drop});
  BOOST_TEST(run(udp4(53)) == XDP_PASS);  // now 11 (20,11) beats 12 (20,12)
  BOOST_TEST(run(udp6(53)) == XDP_PASS);
  BOOST_TEST(run(udp6(54)) == XDP_DROP);  // only 10
  BOOST_TEST(hits(11) == 2u);
  BOOST_TEST(hits(10) == 1u);
}

BOOST_FIXTURE_TEST_CASE(default_action_drop, DatapathFixture) {
  install({"proto udp dport 53 action pass"}, Policy{Action::drop, Action::drop});
  BOOST_TEST(run(udp4(53)) == XDP_PASS);
  BOOST_TEST(run(udp4(54)) == XDP_DROP);
  BOOST_TEST(run(tcp6(53)) == XDP_DROP);
  BOOST_TEST(stat(XDPFW_STAT_DEFAULT_DROP) == 2u);
  BOOST_TEST(stat(XDPFW_STAT_MATCH_PASS) == 1u);
}

BOOST_FIXTURE_TEST_CASE(empty_rule_set_uses_policy, DatapathFixture) {
  BOOST_TEST(run(udp4(53)) == XDP_PASS);  // as loaded: empty set, default pass
  install({}, Policy{Action::drop, Action::drop});
  BOOST_TEST(run(udp4(53)) == XDP_DROP);
  BOOST_TEST(run(udp6(53)) == XDP_DROP);
}

BOOST_FIXTURE_TEST_CASE(replace_swaps_the_whole_set, DatapathFixture) {
  install({"id 1 proto udp dport 53 action drop", "id 2 proto udp dport 54 action drop"});
  BOOST_TEST(run(udp4(53)) == XDP_DROP);
  auto gen = dp.generation();
  install({"id 2 proto udp dport 54 action drop", "id 3 proto udp dport 55 action drop"});
  BOOST_TEST(dp.generation() == gen + 1);
  BOOST_TEST(run(udp4(53)) == XDP_PASS);
  BOOST_TEST(run(udp4(54)) == XDP_DROP);
  BOOST_TEST(run(udp4(55)) == XDP_DROP);
  BOOST_TEST(!dp.rule_counters(1).has_value());
  BOOST_TEST(hits(2) == 1u);  // a rule kept across the swap keeps its counters
  BOOST_TEST(hits(3) == 1u);
  // Many flips in a row keep both slots right.
  for (int i = 0; i < 5; ++i) {
    install({"id 7 proto udp dport 60-70 action drop"});
    BOOST_TEST(run(udp4(65)) == XDP_DROP);
    BOOST_TEST(run(udp4(54)) == XDP_PASS);
    install({"id 8 proto udp dport 54 action drop"});
    BOOST_TEST(run(udp4(65)) == XDP_PASS);
    BOOST_TEST(run(udp4(54)) == XDP_DROP);
  }
  // A reused counter slot starts at zero.
  BOOST_TEST(hits(8) == 1u);
}

BOOST_FIXTURE_TEST_CASE(bad_rule_set_changes_nothing, DatapathFixture) {
  install({"proto udp dport 53 action drop"});
  std::vector<Rule> bad = {parse_rule("id 1 prio 1 proto udp dport 53 action drop"),
                           parse_rule("id 1 prio 2 proto udp dport 54 action drop")};
  BOOST_CHECK_THROW(dp.apply(bad, Policy{}), CompileError);
  auto gen = dp.generation();
  BOOST_TEST(run(udp4(53)) == XDP_DROP);
  BOOST_TEST(run(udp4(54)) == XDP_PASS);
  BOOST_TEST(dp.generation() == gen);
}

BOOST_FIXTURE_TEST_CASE(hundred_thousand_rules, DatapathFixture) {
  std::vector<Rule> rs;
  for (uint32_t i = 0; i < 100000; ++i) {
    Rule r;
    r.id = i + 1;
    r.priority = 100;
    Prefix p;
    p.family = Family::v4;
    p.addr = {198, static_cast<uint8_t>(18 + (i >> 16)), static_cast<uint8_t>(i >> 8),
              static_cast<uint8_t>(i)};
    p.len = 32;
    r.src = p;
    r.action = Action::drop;
    rs.push_back(r);
  }
  dp.apply(rs, Policy{});
  for (uint32_t i : {0u, 1u, 65535u, 65536u, 99999u}) {
    PacketSpec s = udp4(1);
    s.f.src = rs[i].src->addr;
    BOOST_TEST(run(s) == XDP_DROP);
    BOOST_TEST(hits(i + 1) == 1u);
  }
  PacketSpec miss = udp4(1);
  miss.f.src = {198, 19, 255, 255};
  BOOST_TEST(run(miss) == XDP_PASS);
}

BOOST_AUTO_TEST_SUITE_END()
