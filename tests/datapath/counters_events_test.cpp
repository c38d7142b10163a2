// Counters exact after N runs; unmatched-packet events read back from the
// perf buffer with the right content; the in-kernel rate limit caps events
// and counts every packet it suppresses.
#include <bpf/libbpf.h>
#include <time.h>

#include <boost/test/unit_test.hpp>

#include "datapath/fixture.hpp"

using namespace xdpfw;
using namespace xdpfw::test;

namespace {

uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

// Collects events from the program's perf buffer.
struct EventReader {
  explicit EventReader(int map_fd) {
    pb =
        perf_buffer__new(map_fd, 64, &EventReader::on_sample, &EventReader::on_lost, this, nullptr);
    BOOST_TEST_REQUIRE(pb != nullptr, "perf_buffer__new failed");
  }
  ~EventReader() { perf_buffer__free(pb); }
  void drain() { BOOST_TEST_REQUIRE(perf_buffer__consume(pb) >= 0); }
  static void on_sample(void* self, int, void* data, __u32 size) {
    BOOST_TEST_REQUIRE(size >= sizeof(xdpfw_event));
    xdpfw_event ev;
    std::memcpy(&ev, data, sizeof ev);
    static_cast<EventReader*>(self)->events.push_back(ev);
  }
  static void on_lost(void* self, int, __u64 n) { static_cast<EventReader*>(self)->lost += n; }

  perf_buffer* pb = nullptr;
  std::vector<xdpfw_event> events;
  uint64_t lost = 0;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(counters_events)

BOOST_FIXTURE_TEST_CASE(counters_exact_after_n_runs, DatapathFixture) {
  install({"proto udp dport 53 action drop", "proto tcp action pass"});
  auto frame = build_packet(udp4(53));
  run(frame, 1000);  // the kernel runs the program 1000 times on the frame
  run(build_packet(tcp6(1)), 7);
  run(build_packet(udp6(9)), 3);
  auto rc = dp.rule_counters(1).value();
  BOOST_TEST(rc.packets == 1000u);
  BOOST_TEST(rc.bytes == 1000u * frame.size());
  BOOST_TEST(hits(2) == 7u);
  Stats s = dp.stats();
  BOOST_TEST(s[XDPFW_STAT_PACKETS] == 1010u);
  BOOST_TEST(s[XDPFW_STAT_MATCH_DROP] == 1000u);
  BOOST_TEST(s[XDPFW_STAT_MATCH_PASS] == 7u);
  BOOST_TEST(s[XDPFW_STAT_DEFAULT_PASS] == 3u);
  BOOST_TEST(s[XDPFW_STAT_DEFAULT_DROP] == 0u);
  auto all = dp.all_rule_counters();
  BOOST_TEST(all.size() == 2u);
  BOOST_TEST(all.at(2).packets == 7u);
}

BOOST_FIXTURE_TEST_CASE(events_carry_the_packet, DatapathFixture) {
  install({"proto udp dport 53 action drop"});
  dp.set_event_limit(1000000, 1000000);
  EventReader reader(dp.events_map_fd());
  uint64_t t0 = monotonic_ns();
  PacketSpec v4 = tcp4(8080, 43210);
  v4.tcp_flags = 0x12;  // SYN+ACK
  auto f4 = build_packet(v4);
  PacketSpec v6 = udp6(5353, 5354);
  auto f6 = build_packet(v6);
  PacketSpec frag = udp6(1, 1);
  frag.frag = Frag::non_first;
  run(f4);
  run(f6);
  run(frag);
  run(udp4(53));  // matched: no event
  uint64_t t1 = monotonic_ns();
  reader.drain();
  BOOST_TEST_REQUIRE(reader.events.size() == 3u);
  BOOST_TEST(reader.lost == 0u);

  const xdpfw_event& a = reader.events[0];
  BOOST_TEST(a.family == XDPFW_FAMILY_V4);
  BOOST_TEST(a.proto == 6);
  BOOST_TEST(a.sport == 43210);
  BOOST_TEST(a.dport == 8080);
  BOOST_TEST(a.tcp_flags == 0x12);
  BOOST_TEST(a.flags == XDPFW_EVENT_HAS_PORTS);
  BOOST_TEST(a.ifindex == 1u);
  BOOST_TEST(a.pkt_len == f4.size());
  BOOST_TEST(std::memcmp(a.src, v4.f.src.data(), 4) == 0);
  BOOST_TEST(std::memcmp(a.dst, v4.f.dst.data(), 4) == 0);
  BOOST_TEST(a.timestamp_ns >= t0);
  BOOST_TEST(a.timestamp_ns <= t1);

  const xdpfw_event& b = reader.events[1];
  BOOST_TEST(b.family == XDPFW_FAMILY_V6);
  BOOST_TEST(b.proto == 17);
  BOOST_TEST(b.sport == 5354);
  BOOST_TEST(b.dport == 5353);
  BOOST_TEST(b.pkt_len == f6.size());
  BOOST_TEST(std::memcmp(b.src, v6.f.src.data(), 16) == 0);
  BOOST_TEST(std::memcmp(b.dst, v6.f.dst.data(), 16) == 0);

  const xdpfw_event& c = reader.events[2];
  BOOST_TEST(c.flags == XDPFW_EVENT_FRAGMENT);
  BOOST_TEST(c.proto == 17);

  BOOST_TEST(stat(XDPFW_STAT_EVENTS_SENT) == 3u);
  BOOST_TEST(stat(XDPFW_STAT_EVENTS_SUPPRESSED) == 0u);
}

BOOST_FIXTURE_TEST_CASE(rate_limit_caps_and_counts, DatapathFixture) {
  install({});
  const uint64_t rate = 100, burst = 20;  // per second and burst, over all CPUs
  dp.set_event_limit(rate, burst);
  EventReader reader(dp.events_map_fd());
  const int n = 5000;
  uint64_t t0 = monotonic_ns();
  run(udp4(9), n);  // one CPU runs them all
  double elapsed = double(monotonic_ns() - t0) / 1e9;
  reader.drain();

  uint64_t sent = stat(XDPFW_STAT_EVENTS_SENT);
  uint64_t suppressed = stat(XDPFW_STAT_EVENTS_SUPPRESSED);
  int ncpus = libbpf_num_possible_cpus();
  // One CPU holds burst/ncpus tokens and earns rate/ncpus per second.
  double cap = double(std::max<uint64_t>(1, burst / ncpus)) + elapsed * double(rate) / ncpus + 1;
  BOOST_TEST_MESSAGE("sent " << sent << " suppressed " << suppressed << " cap " << cap);
  BOOST_TEST(sent + suppressed == uint64_t(n));
  BOOST_TEST(sent >= 1u);
  BOOST_TEST(double(sent) <= cap);
  BOOST_TEST(reader.events.size() == sent);
  BOOST_TEST(stat(XDPFW_STAT_EVENTS_FAILED) == 0u);
}

BOOST_FIXTURE_TEST_CASE(events_off_sends_nothing, DatapathFixture) {
  install({});
  dp.set_event_limit(0, 0);
  EventReader reader(dp.events_map_fd());
  run(udp4(9), 100);
  reader.drain();
  BOOST_TEST(reader.events.empty());
  BOOST_TEST(stat(XDPFW_STAT_EVENTS_SENT) == 0u);
  BOOST_TEST(stat(XDPFW_STAT_EVENTS_SUPPRESSED) == 0u);
  BOOST_TEST(stat(XDPFW_STAT_DEFAULT_PASS) == 100u);
}

BOOST_FIXTURE_TEST_CASE(events_without_reader_are_counted_failed, DatapathFixture) {
  install({});
  dp.set_event_limit(1000000, 1000000);
  run(udp4(9), 10);  // no perf buffer open: the output fails
  BOOST_TEST(stat(XDPFW_STAT_EVENTS_FAILED) == 10u);
  BOOST_TEST(stat(XDPFW_STAT_EVENTS_SENT) == 0u);
}

BOOST_AUTO_TEST_CASE(tables_probed_histogram) {
  // Two tables that both admit a TCP packet to port 22 from 198.18.0.1: the
  // packet that matches neither probes both; a UDP packet probes none (the
  // protocol masks leave no table); a hit of the best table stops after it.
  DatapathFixture fx;
  fx.install({"prio 1 src 198.18.0.1 dst 198.18.0.9 proto tcp dport 22 action drop",
              "prio 2 src 198.18.0.0/24 proto tcp action pass"});
  auto count = [&](xdpfw_stat s) { return fx.stat(s); };
  uint64_t p0 = count(XDPFW_STAT_PROBES_0), p1 = count(XDPFW_STAT_PROBES_1),
           p2 = count(XDPFW_STAT_PROBES_2);
  PacketSpec miss = tcp4(22);
  miss.f.src = {198, 18, 1, 1};
  fx.run(miss, 3);
  BOOST_TEST(count(XDPFW_STAT_PROBES_2) == p2 + 3);
  fx.run(udp4(22));
  BOOST_TEST(count(XDPFW_STAT_PROBES_0) == p0 + 1);
  PacketSpec hit = tcp4(22);
  hit.f.dst = {198, 18, 0, 9};
  BOOST_TEST(fx.run(hit) == uint32_t(XDP_DROP));
  BOOST_TEST(count(XDPFW_STAT_PROBES_1) == p1 + 1);
  BOOST_TEST(count(XDPFW_STAT_PROBES_3_4) + count(XDPFW_STAT_PROBES_5_8) +
                 count(XDPFW_STAT_PROBES_9_16) + count(XDPFW_STAT_PROBES_17_PLUS) ==
             0u);
}

BOOST_AUTO_TEST_SUITE_END()
