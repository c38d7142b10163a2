// The parser on every kind of frame: VLAN stacks, IPv4 options and
// fragments, IPv6 extension chains, every truncation length, and each
// malformed reason with its counter (docs/DATAPATH.md, "Parser").
#include <boost/test/unit_test.hpp>

#include "datapath/fixture.hpp"

using namespace xdpfw;
using namespace xdpfw::test;

BOOST_AUTO_TEST_SUITE(parse)

BOOST_FIXTURE_TEST_CASE(vlan_tags_zero_one_two, DatapathFixture) {
  install({"proto udp dport 53 action drop"});
  const std::vector<std::vector<uint16_t>> stacks = {
      {}, {0x8100}, {0x88a8}, {0x88a8, 0x8100}, {0x8100, 0x8100}};
  for (const auto& tags : stacks) {
    for (bool v6 : {false, true}) {
      PacketSpec hit = v6 ? udp6(53) : udp4(53);
      PacketSpec miss = v6 ? udp6(54) : udp4(54);
      hit.vlan_tpids = miss.vlan_tpids = tags;
      BOOST_TEST_INFO(tags.size() << " tags, v6=" << v6);
      BOOST_TEST(run(hit) == XDP_DROP);
      BOOST_TEST(run(miss) == XDP_PASS);
    }
  }
  BOOST_TEST(hits(1) == 10u);
}

BOOST_FIXTURE_TEST_CASE(three_vlan_tags_are_malformed, DatapathFixture) {
  install({"proto udp dport 53 action pass"});
  PacketSpec s = udp4(53);
  s.vlan_tpids = {0x88a8, 0x8100, 0x8100};
  BOOST_TEST(run(s) == XDP_DROP);  // malformed_action defaults to drop
  BOOST_TEST(stat(XDPFW_STAT_VLAN_TOO_DEEP) == 1u);
  BOOST_TEST(stat(XDPFW_STAT_MALFORMED_DROP) == 1u);
  BOOST_TEST(hits(1) == 0u);
}

BOOST_FIXTURE_TEST_CASE(ipv4_options_are_skipped_by_ihl, DatapathFixture) {
  // The option bytes read as dport 22 to a parser that ignores IHL.
  install({"proto udp dport 22 action drop", "proto udp dport 53 action drop"});
  for (unsigned opts = 0; opts <= 40; opts += 4) {
    PacketSpec s = udp4(53);
    s.ip_options = opts;
    BOOST_TEST_INFO("options " << opts);
    BOOST_TEST(run(s) == XDP_DROP);
    s.f.dport = 54;
    BOOST_TEST(run(s) == XDP_PASS);
  }
  BOOST_TEST(hits(1) == 0u);
  BOOST_TEST(hits(2) == 11u);
}

BOOST_FIXTURE_TEST_CASE(fragments_first_has_ports_others_do_not, DatapathFixture) {
  install({"prio 1 proto tcp dport 80 action drop", "prio 2 proto tcp action pass"},
          Policy{Action::drop, Action::drop});
  for (bool v6 : {false, true}) {
    PacketSpec first = v6 ? tcp6(80) : tcp4(80);
    first.frag = Frag::first;
    BOOST_TEST(run(first) == XDP_DROP);
    PacketSpec later = first;
    later.frag = Frag::non_first;  // its payload starts with what looks like port bytes
    later.payload = 40;
    BOOST_TEST(run(later) == XDP_PASS);
  }
  BOOST_TEST(hits(1) == 2u);
  BOOST_TEST(hits(2) == 2u);
  BOOST_TEST(stat(XDPFW_STAT_FRAGMENTS) == 2u);
}

BOOST_FIXTURE_TEST_CASE(ipv6_extension_chains, DatapathFixture) {
  install({"proto udp dport 53 action drop"});
  const std::vector<std::vector<uint8_t>> chains = {
      {0}, {43}, {60}, {51}, {0, 43, 60}, {0, 60, 43, 51, 60}, {60, 60, 60, 60, 60, 60, 60, 60}};
  for (const auto& chain : chains) {
    PacketSpec s = udp6(53);
    s.ext = chain;
    BOOST_TEST_INFO(chain.size() << " extension headers");
    BOOST_TEST(run(s) == XDP_DROP);
    s.f.dport = 54;
    BOOST_TEST(run(s) == XDP_PASS);
  }
  // Seven headers plus a fragment header: eight, still walked.
  PacketSpec s = udp6(53);
  s.ext = {60, 60, 60, 60, 60, 60, 60};
  s.frag = Frag::first;
  BOOST_TEST(run(s) == XDP_DROP);
  BOOST_TEST(hits(1) == chains.size() + 1);
}

BOOST_FIXTURE_TEST_CASE(ipv6_too_many_extension_headers, DatapathFixture) {
  install({"proto udp dport 53 action drop"}, Policy{Action::pass, Action::drop});
  PacketSpec s = udp6(54);
  s.ext = std::vector<uint8_t>(9, 60);
  BOOST_TEST(run(s) == XDP_DROP);
  BOOST_TEST(stat(XDPFW_STAT_IPV6_EXT_TOO_MANY) == 1u);
}

BOOST_FIXTURE_TEST_CASE(non_ip_passes_and_is_counted, DatapathFixture) {
  install({"action drop"}, Policy{Action::drop, Action::drop});
  PacketSpec arp = udp4(53);
  arp.ethertype = 0x0806;
  BOOST_TEST(run(arp) == XDP_PASS);
  BOOST_TEST(stat(XDPFW_STAT_NON_IP) == 1u);
  BOOST_TEST(hits(1) == 0u);
}

BOOST_FIXTURE_TEST_CASE(malformed_headers_each_reason, DatapathFixture) {
  // Rules that need ports: a malformed packet whose addresses were read
  // meets one of them first, which it cannot satisfy (malformed action).
  install({"proto udp dport 53 action pass", "proto tcp dport 80 action pass"},
          Policy{Action::pass, Action::drop});
  struct Case {
    const char* what;
    PacketSpec spec;
    size_t offset;  // from the L3 header; SIZE_MAX: none
    uint8_t value;
    xdpfw_stat reason;
  };
  auto l3 = [](const PacketSpec& s) { return l3_offset(s); };
  std::vector<Case> cases = {
      {"IPv4 version 5", udp4(53), 0, 0x55, XDPFW_STAT_IPV4_BAD_HEADER},
      {"IPv4 IHL 4", udp4(53), 0, 0x44, XDPFW_STAT_IPV4_BAD_HEADER},
      {"IPv4 total length 19", udp4(53), 3, 19, XDPFW_STAT_IPV4_BAD_HEADER},
      {"IPv4 total length past the frame", udp4(53), 2, 0x7f, XDPFW_STAT_IPV4_TRUNCATED},
      {"UDP cut by IPv4 total length", udp4(53), 3, 24, XDPFW_STAT_L4_TRUNCATED},
      {"TCP cut by IPv4 total length", tcp4(80), 3, 36, XDPFW_STAT_L4_TRUNCATED},
      {"TCP data offset 4", tcp4(80), 20 + 12, 0x40, XDPFW_STAT_L4_BAD_HEADER},
      {"IPv6 version 4", udp6(53), 0, 0x40, XDPFW_STAT_IPV6_BAD_HEADER},
      {"IPv6 payload past the frame", udp6(53), 4, 0x7f, XDPFW_STAT_IPV6_TRUNCATED},
      {"UDP cut by IPv6 payload length", udp6(53), 5, 4, XDPFW_STAT_L4_TRUNCATED},
  };
  PacketSpec ext = udp6(53);
  ext.ext = {60};
  cases.push_back(
      {"IPv6 option header past the payload", ext, 5, 8, XDPFW_STAT_IPV6_EXT_TRUNCATED});
  uint64_t malformed = 0;
  for (auto& c : cases) {
    auto frame = build_packet(c.spec);
    frame.at(l3(c.spec) + c.offset) = c.value;
    uint64_t before = stat(c.reason);
    BOOST_TEST_INFO(c.what);
    BOOST_TEST(run(frame) == XDP_DROP);
    BOOST_TEST(stat(c.reason) == before + 1);
    ++malformed;
  }
  BOOST_TEST(stat(XDPFW_STAT_MALFORMED_DROP) == malformed);
  BOOST_TEST(hits(1) == 0u);
  BOOST_TEST(hits(2) == 0u);
}

// docs/DATAPATH.md, "Parser": a malformed packet is decided by the first rule
// whose readable fields match, unless that rule needs a field that could
// not be read; with malformed-action pass, an address rule still drops.
BOOST_FIXTURE_TEST_CASE(malformed_packets_meet_the_rules_they_can, DatapathFixture) {
  auto rs =
      install({"id 1 prio 1 dst 198.18.0.0/15 proto tcp dport 22 action pass",
               "id 2 prio 2 src 198.18.0.7 action drop", "id 3 prio 3 src 2001:db8::7 action drop"},
              Policy{Action::pass, Action::pass});
  auto cut = [](PacketSpec s, size_t offset, uint8_t value) {
    auto frame = build_packet(s);
    frame.at(l3_offset(s) + offset) = value;
    return frame;
  };
  PacketSpec udp = {.f = fields4("198.18.0.7", "198.18.0.1", 17, 1000, 53)};
  PacketSpec tcp = {.f = fields4("198.18.0.7", "198.18.0.1", 6, 1000, 22)};
  PacketSpec udp_other = {.f = fields4("198.18.0.8", "198.18.0.1", 17, 1000, 53)};
  PacketSpec v6 = {.f = fields6("2001:db8::7", "2001:db8::1", 17, 1000, 53)};
  v6.ext = {60};

  // UDP cut by the IPv4 total length: rule 1 is TCP's, rule 2 decides
  BOOST_TEST(run(cut(udp, 3, 24)) == XDP_DROP);
  BOOST_TEST(hits(2) == 1u);
  BOOST_TEST(stat(XDPFW_STAT_MATCH_DROP) == 1u);
  // total length past the frame: the header was read whole
  BOOST_TEST(run(cut(udp, 2, 0x7f)) == XDP_DROP);
  BOOST_TEST(hits(2) == 2u);
  // TCP with data offset 4: rule 1 would need its port
  BOOST_TEST(run(cut(tcp, 20 + 12, 0x40)) == XDP_PASS);
  BOOST_TEST(stat(XDPFW_STAT_MALFORMED_PASS) == 1u);
  BOOST_TEST(hits(1) == 0u);
  // no rule matches what was read
  BOOST_TEST(run(cut(udp_other, 3, 24)) == XDP_PASS);
  BOOST_TEST(stat(XDPFW_STAT_MALFORMED_PASS) == 2u);
  // IPv4 version 5: nothing was read
  BOOST_TEST(run(cut(udp, 0, 0x55)) == XDP_PASS);
  BOOST_TEST(stat(XDPFW_STAT_MALFORMED_PASS) == 3u);
  // IPv6 option header past the payload: addresses only; rule 1 is IPv4's
  BOOST_TEST(run(cut(v6, 5, 8)) == XDP_DROP);
  BOOST_TEST(hits(3) == 1u);
  BOOST_TEST(stat(XDPFW_STAT_IPV6_EXT_TRUNCATED) == 1u);
  BOOST_TEST(stat(XDPFW_STAT_MATCH_DROP) == 3u);
  BOOST_TEST(stat(XDPFW_STAT_DEFAULT_PASS) == 0u);

  // A rule removed in place is gone from the views too.
  BOOST_TEST(dp.remove_in_place(rs[1]));
  BOOST_TEST(run(cut(udp, 3, 24)) == XDP_PASS);
  BOOST_TEST(stat(XDPFW_STAT_MALFORMED_PASS) == 4u);
}

BOOST_FIXTURE_TEST_CASE(malformed_action_pass_is_honoured, DatapathFixture) {
  install({"action drop"}, Policy{Action::drop, Action::pass});
  PacketSpec s = udp4(53);
  s.vlan_tpids = {0x8100, 0x8100, 0x8100};
  BOOST_TEST(run(s) == XDP_PASS);
  BOOST_TEST(stat(XDPFW_STAT_MALFORMED_PASS) == 1u);
}

// Every length from 0 to the full frame: below 14 bytes the kernel refuses
// the run (no XDP frame is shorter than an Ethernet header); from there on
// every cut frame is malformed with one reason, and the full frame matches.
BOOST_FIXTURE_TEST_CASE(every_truncation_length, DatapathFixture) {
  install({"prio 1 proto tcp dport 80 action drop", "prio 2 proto udp dport 53 action drop",
           "prio 3 proto icmp icmp-type 8 action drop",
           "prio 4 proto icmpv6 icmp-type 128 action drop"},
          Policy{Action::pass, Action::pass});
  std::vector<PacketSpec> specs = {tcp4(80), udp4(53), tcp6(80), udp6(53)};
  specs.push_back(PacketSpec{.f = fields4("198.18.0.1", "198.18.0.2", 1, 8, 0)});
  specs.push_back(PacketSpec{.f = fields6("2001:db8::1", "2001:db8::2", 58, 128, 0)});
  PacketSpec deep = tcp6(80);
  deep.vlan_tpids = {0x88a8, 0x8100};
  deep.ext = {0, 43, 60};
  specs.push_back(deep);
  PacketSpec opts = udp4(53);
  opts.vlan_tpids = {0x8100};
  opts.ip_options = 12;
  specs.push_back(opts);
  for (auto& s : specs) s.payload = 0;  // cut right at the end of the headers too

  for (const auto& s : specs) {
    auto full = build_packet(s);
    for (size_t len = 0; len <= full.size(); ++len) {
      std::vector<uint8_t> cut(full.begin(), full.begin() + len);
      auto before = dp.stats();
      RunResult r = run_xdp(dp.prog_fd(), cut);
      BOOST_TEST_INFO("frame of " << full.size() << " bytes cut to " << len);
      if (len < 14) {
        BOOST_TEST(r.err == -EINVAL);
        continue;
      }
      BOOST_TEST_REQUIRE(r.err == 0);
      auto after = dp.stats();
      uint64_t reasons = 0;
      for (int i = XDPFW_STAT_FIRST_MALFORMED; i <= XDPFW_STAT_LAST_MALFORMED; ++i)
        reasons += after.c[i] - before.c[i];
      if (len < full.size()) {
        BOOST_TEST(r.retval == XDP_PASS);  // malformed_action pass
        BOOST_TEST(reasons == 1u);
        BOOST_TEST(after[XDPFW_STAT_MALFORMED_PASS] == before[XDPFW_STAT_MALFORMED_PASS] + 1);
      } else {
        BOOST_TEST(r.retval == XDP_DROP);
        BOOST_TEST(reasons == 0u);
        BOOST_TEST(after[XDPFW_STAT_MATCH_DROP] == before[XDPFW_STAT_MATCH_DROP] + 1);
      }
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
