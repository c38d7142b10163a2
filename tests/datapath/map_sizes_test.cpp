// The maps are sized to what they hold (docs/DATAPATH.md, "Map sizes"):
// small with no rules, grown by a program with larger maps when rules or
// set elements arrive, shrunk when they go; rules, verdicts, counters and
// set elements carry over every resize.
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <string>

#include "datapath/fixture.hpp"

using namespace xdpfw;
using namespace xdpfw::test;

namespace {

std::vector<Rule> port_rules(uint32_t n) {
  std::vector<Rule> out = {parse_rule("id 1 prio 1 proto udp dport 53 action drop")};
  for (uint32_t i = 0; i < n; ++i)
    out.push_back(parse_rule("id " + std::to_string(10 + i) + " prio 5 src 198.18." +
                             std::to_string(i / 250) + "." + std::to_string(i % 250) +
                             " proto tcp dport 80 action drop"));
  return out;
}

PacketSpec tcp_from(uint32_t i) {
  return PacketSpec{
      .f = fields4(("198.18." + std::to_string(i / 250) + "." + std::to_string(i % 250)).c_str(),
                   "198.18.255.2", 6, 40000, 80)};
}

bool wait_until_events(KernelDatapath& dp, uint32_t& seen, uint32_t want) {
  for (int i = 0; i < 100 && seen < want; ++i) {
    dp.read_events([&](const xdpfw_event& e) { seen += e.kind == XDPFW_EVENT_UNMATCHED; });
    if (seen < want) usleep(10000);
  }
  return seen >= want;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(map_sizes)

// Idle, the maps take what the program's fixed maps take: no room for
// max-rules or max-set-elements up front.
BOOST_FIXTURE_TEST_CASE(an_idle_datapath_holds_little, DatapathFixture) {
  BOOST_TEST(dp.map_memory() < 8u << 20, dp.map_memory());
  BOOST_TEST(dp.capacity().counters < 1000u);
  BOOST_TEST(dp.capacity().summary_blocks == 0u);
  BOOST_TEST(dp.resizes() == 0u);
}

BOOST_FIXTURE_TEST_CASE(maps_grow_with_the_rules_and_shrink_when_they_go, DatapathFixture) {
  auto few = port_rules(0);
  dp.apply(few, Policy{});
  BOOST_TEST(run(udp4(53), 5) == XDP_DROP);
  uint64_t idle = dp.map_memory();
  dp.set_event_limit(1000, 1000);
  dp.events_fd();  // the perf buffer, opened before the resizes
  auto many = port_rules(5000);
  dp.apply(many, Policy{});
  BOOST_TEST(dp.resizes() >= 1u);
  BOOST_TEST(dp.capacity().counters >= 5001u);
  BOOST_TEST(dp.map_memory() > idle);
  BOOST_TEST(hits(1) == 5u);  // carried over the resize
  for (uint32_t i : {0u, 1234u, 4999u}) {
    BOOST_TEST(run(tcp_from(i)) == XDP_DROP);
    BOOST_TEST(hits(10 + i) == 1u);
  }
  BOOST_TEST(run(udp4(53)) == XDP_DROP);
  BOOST_TEST(hits(1) == 6u);
  // Gone again: the next settle shrinks them once both slots agree.
  uint64_t grown = dp.resizes();
  dp.apply(few, Policy{});
  dp.settle();
  for (int i = 0; i < 100 && dp.resizes() == grown; ++i) {
    usleep(20000);
    dp.settle();
  }
  BOOST_TEST(dp.resizes() == grown + 1);
  BOOST_TEST(dp.capacity().counters < 5001u);
  BOOST_TEST(run(udp4(53)) == XDP_DROP);
  BOOST_TEST(hits(1) == 7u);
  BOOST_TEST(run(tcp_from(1234)) == XDP_PASS);
  // Settled and small: nothing more to do.
  dp.settle();
  BOOST_TEST(dp.resizes() == grown + 1);
  // Events still reach the perf buffer opened before: the map is shared.
  dp.read_events([](const xdpfw_event&) {});
  uint32_t unmatched = 0;
  run(udp4(54), 3);
  BOOST_TEST(wait_until_events(dp, unmatched, 3));
}

// A replace by a set of other rules holds both sets' counter indexes until
// its catch-up; settle then renumbers them densely in maps sized for the
// set, each rule's counters moved with it.
BOOST_FIXTURE_TEST_CASE(scattered_counter_indexes_are_compacted, DatapathFixture) {
  auto a = port_rules(3000);
  dp.apply(a, Policy{});
  BOOST_TEST(run(udp4(53), 4) == XDP_DROP);
  std::vector<Rule> b = {a[0]};  // rule 1 stays
  for (uint32_t i = 0; i < 3000; ++i)
    b.push_back(parse_rule("id " + std::to_string(20000 + i) + " prio 5 dst 198.18." +
                           std::to_string(i / 250) + "." + std::to_string(i % 250) +
                           " proto udp dport 99 action drop"));
  dp.apply(b, Policy{});
  BOOST_TEST(run(PacketSpec{.f = fields4("198.18.255.1", "198.18.3.7", 17, 40000, 99)}, 2) ==
             XDP_DROP);
  uint32_t spread = dp.capacity().counters;
  BOOST_TEST(spread >= 6001u);  // both sets' indexes
  uint64_t before = dp.resizes();
  for (int i = 0; i < 100 && dp.resizes() == before; ++i) {
    usleep(20000);
    dp.settle();
  }
  BOOST_TEST(dp.resizes() == before + 1);
  BOOST_TEST(dp.capacity().counters < 4000u);
  BOOST_TEST(hits(1) == 4u);
  BOOST_TEST(hits(20000 + 757) == 2u);
  BOOST_TEST(run(udp4(53)) == XDP_DROP);
  BOOST_TEST(hits(1) == 5u);
  BOOST_TEST(run(PacketSpec{.f = fields4("198.18.255.1", "198.18.3.7", 17, 40000, 99)}) ==
             XDP_DROP);
  BOOST_TEST(hits(20000 + 757) == 3u);
  BOOST_TEST(run(tcp_from(1234)) == XDP_PASS);  // set a is gone
  // In sync and dense: nothing more to do; and in-place changes still fit.
  dp.settle();
  BOOST_TEST(dp.resizes() == before + 1);
  Rule extra = parse_rule("id 30000 prio 7 proto udp dport 4242 action drop");
  BOOST_TEST(dp.add_in_place(extra));
  BOOST_TEST(run(udp4(4242)) == XDP_DROP);
  BOOST_TEST(hits(30000) == 1u);
}

// In-place adds grow the maps too, without a recompile; adding and
// deleting the same rule in a loop does not resize each time.
BOOST_FIXTURE_TEST_CASE(rules_added_one_by_one_grow_the_maps, DatapathFixture) {
  auto base = port_rules(0);
  dp.apply(base, Policy{});
  uint32_t in_place = 0;
  for (uint32_t i = 0; i < 600; ++i) {
    Rule r = port_rules(i + 1).back();
    if (dp.add_in_place(r))
      ++in_place;
    else {
      base.push_back(r);
      dp.apply(base, Policy{});
      continue;
    }
    base.push_back(r);
  }
  BOOST_TEST(in_place > 500u);
  BOOST_TEST(dp.resizes() >= 1u);
  BOOST_TEST(dp.capacity().counters >= 601u);
  for (uint32_t i : {0u, 300u, 599u}) BOOST_TEST(run(tcp_from(i)) == XDP_DROP);
  Rule extra = port_rules(700).back();
  // The first may need room; the next ones reuse it.
  BOOST_TEST_REQUIRE(dp.add_in_place(extra));
  BOOST_TEST_REQUIRE(dp.remove_in_place(extra));
  dp.settle();
  uint64_t before = dp.resizes();
  for (int i = 0; i < 50; ++i) {
    BOOST_TEST_REQUIRE(dp.add_in_place(extra));
    BOOST_TEST_REQUIRE(dp.remove_in_place(extra));
    dp.settle();
  }
  BOOST_TEST(dp.resizes() == before);
}

// The hash of the sets' single addresses grows with them; elements keep
// their hits and timeouts.
BOOST_FIXTURE_TEST_CASE(set_hosts_grow_with_their_elements, DatapathFixture) {
  const uint32_t tag = 1 << 2;
  dp.switch_set_tag(1, tag);
  Rule r = parse_rule("id 4 prio 1 src @s proto udp dport 53 action drop");
  r.src_set->id = 1;
  dp.apply({r}, Policy{});
  auto host = [](uint32_t i) {
    return parse_prefix("198.18." + std::to_string(i / 250) + "." + std::to_string(i % 250), "src");
  };
  dp.write_element(tag, host(0), ~0ULL, true);
  auto from0 = PacketSpec{.f = fields4("198.18.0.0", "198.18.255.2", 17, 40000, 53)};
  BOOST_TEST(run(from0, 3) == XDP_DROP);
  uint32_t before = dp.capacity().set_hosts;
  for (uint32_t i = 1; i < 2000; ++i) dp.write_element(tag, host(i), ~0ULL, true);
  BOOST_TEST(dp.capacity().set_hosts > before);
  BOOST_TEST(dp.resizes() >= 1u);
  BOOST_TEST(dp.set_elements().size() == 2000u);
  BOOST_TEST(dp.element_hits(tag, host(0)) == 3u);
  BOOST_TEST(run(PacketSpec{.f = fields4("198.18.7.249", "198.18.255.2", 17, 40000, 53)}) ==
             XDP_DROP);
  BOOST_TEST(run(PacketSpec{.f = fields4("198.18.8.0", "198.18.255.2", 17, 40000, 53)}) ==
             XDP_PASS);
}

BOOST_AUTO_TEST_SUITE_END()
