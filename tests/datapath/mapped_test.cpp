// IPv4 addresses in IPv6 sources (docs/DATAPATH.md): an IPv4-mapped
// (::ffff:0:0/96) or IPv4-compatible (::/96) source is dropped before any
// rule sees it and counted as mapped_drop, unless mapped-ipv6 = pass; :: (the
// source of duplicate address detection) and ::1 are neither.
#include <boost/test/unit_test.hpp>

#include "datapath/fixture.hpp"

using namespace xdpfw;
using namespace xdpfw::test;

namespace {

PacketSpec udp_from(const char* src) {
  return PacketSpec{.f = fields6(src, "2001:db8::2", 17, 40000, 53)};
}

// A duplicate address detection probe: a neighbour solicitation (ICMPv6
// type 135) from the unspecified address (RFC 4862, 5.4.2).
PacketSpec dad_probe() {
  return PacketSpec{.f = fields6("::", "2001:db8::7", 58, 135, 0)};
}

Policy mapped_pass() {
  Policy p;
  p.mapped_ipv6 = Action::pass;
  return p;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(mapped_ipv6)

BOOST_FIXTURE_TEST_CASE(mapped_source_is_dropped_before_the_rules, DatapathFixture) {
  // no rules, default pass
  BOOST_TEST(run(udp_from("::ffff:198.18.0.7")) == XDP_DROP);
  BOOST_TEST(stat(XDPFW_STAT_MAPPED_DROP) == 1u);
  BOOST_TEST(stat(XDPFW_STAT_DEFAULT_PASS) == 0u);

  // a rule that passes everything never sees it
  install({"action pass"});
  BOOST_TEST(run(udp_from("::ffff:198.18.0.7")) == XDP_DROP);
  BOOST_TEST(stat(XDPFW_STAT_MAPPED_DROP) == 2u);
  BOOST_TEST(stat(XDPFW_STAT_MATCH_PASS) == 0u);
  BOOST_TEST(hits(1) == 0u);
  // nor does one that names the address
  install({"src ::ffff:198.18.0.7 action pass"});
  BOOST_TEST(run(udp_from("::ffff:198.18.0.7")) == XDP_DROP);
  BOOST_TEST(stat(XDPFW_STAT_MAPPED_DROP) == 3u);
  BOOST_TEST(hits(1) == 0u);
  // ::ffff:0.0.0.0 and ::ffff:255.255.255.255 are in the prefix too
  BOOST_TEST(run(udp_from("::ffff:0.0.0.0")) == XDP_DROP);
  BOOST_TEST(run(udp_from("::ffff:255.255.255.255")) == XDP_DROP);
  BOOST_TEST(stat(XDPFW_STAT_MAPPED_DROP) == 5u);
  BOOST_TEST(stat(XDPFW_STAT_PACKETS) == 5u);
}

BOOST_FIXTURE_TEST_CASE(compatible_source_is_dropped, DatapathFixture) {
  install({"action pass"});
  BOOST_TEST(run(udp_from("::198.18.0.7")) == XDP_DROP);
  BOOST_TEST(run(udp_from("::0.0.0.2")) == XDP_DROP);
  BOOST_TEST(stat(XDPFW_STAT_MAPPED_DROP) == 2u);
  BOOST_TEST(hits(1) == 0u);
}

// Only the source: a mapped destination, or a source that differs from the
// prefixes in any of their first 96 bits, is classified as usual.
BOOST_FIXTURE_TEST_CASE(other_sources_are_classified, DatapathFixture) {
  install({"src 2001:db8::7 action drop"});
  BOOST_TEST(run(udp_from("2001:db8::7")) == XDP_DROP);
  BOOST_TEST(run(udp_from("2001:db8::8")) == XDP_PASS);
  BOOST_TEST(run(PacketSpec{.f = fields6("2001:db8::8", "::ffff:198.18.0.7", 17, 1, 53)}) ==
             XDP_PASS);
  BOOST_TEST(run(udp_from("::fffe:198.18.0.7")) == XDP_PASS);   // bits 80-95 not ffff
  BOOST_TEST(run(udp_from("::1:0:198.18.0.7")) == XDP_PASS);    // bits 64-79 not 0
  BOOST_TEST(run(udp_from("0:0:1::198.18.0.7")) == XDP_PASS);   // bits 32-47 not 0
  BOOST_TEST(run(udp_from("1::ffff:198.18.0.7")) == XDP_PASS);  // bits 0-15 not 0
  BOOST_TEST(hits(1) == 1u);
  BOOST_TEST(stat(XDPFW_STAT_DEFAULT_PASS) == 6u);
  BOOST_TEST(stat(XDPFW_STAT_MAPPED_DROP) == 0u);
  // and IPv4 from the same address meets the rules
  install({"id 2 src 198.18.0.7 action drop"});
  BOOST_TEST(run(PacketSpec{.f = fields4("198.18.0.7", "198.18.0.1", 17, 1, 53)}) == XDP_DROP);
  BOOST_TEST(hits(2) == 1u);
}

// :: is the source of duplicate address detection (RFC 4862, 5.4.2), ::1
// the loopback (the kernel itself refuses it from any other interface).
BOOST_FIXTURE_TEST_CASE(unspecified_and_loopback_sources_pass, DatapathFixture) {
  install({"src 198.18.0.7 action drop"});
  BOOST_TEST(run(dad_probe()) == XDP_PASS);
  BOOST_TEST(run(udp_from("::1")) == XDP_PASS);
  BOOST_TEST(stat(XDPFW_STAT_MAPPED_DROP) == 0u);
  BOOST_TEST(stat(XDPFW_STAT_DEFAULT_PASS) == 2u);
  // they meet the rules: a default-drop host firewall's rule for them decides
  install({"proto icmpv6 icmp-type 135 action pass"}, Policy{Action::drop, Action::drop});
  BOOST_TEST(run(dad_probe()) == XDP_PASS);
  BOOST_TEST(hits(1) == 1u);
  BOOST_TEST(run(udp_from("::1")) == XDP_DROP);
  BOOST_TEST(stat(XDPFW_STAT_DEFAULT_DROP) == 1u);
  BOOST_TEST(stat(XDPFW_STAT_MAPPED_DROP) == 0u);
}

// mapped-ipv6 = pass: such a packet is classified like any IPv6 packet. An
// IPv6 rule naming the mapped address decides it; an IPv4 rule on the
// IPv4 address does not (the hazard the default closes).
BOOST_FIXTURE_TEST_CASE(mapped_pass_classifies_them, DatapathFixture) {
  install({"id 1 src 198.18.0.7 action drop", "id 2 src ::ffff:198.18.0.0/112 action drop"},
          mapped_pass());
  BOOST_TEST(run(udp_from("::ffff:198.18.0.7")) == XDP_DROP);
  BOOST_TEST(hits(2) == 1u);
  BOOST_TEST(run(udp_from("::ffff:198.19.0.7")) == XDP_PASS);  // outside rule 2
  BOOST_TEST(run(udp_from("::198.18.0.7")) == XDP_PASS);       // compatible: outside rule 2
  BOOST_TEST(hits(1) == 0u);
  BOOST_TEST(stat(XDPFW_STAT_MATCH_DROP) == 1u);
  BOOST_TEST(stat(XDPFW_STAT_DEFAULT_PASS) == 2u);
  BOOST_TEST(stat(XDPFW_STAT_MAPPED_DROP) == 0u);

  // back to drop: a policy change alone (the rule set unchanged) takes effect
  install({"id 1 src 198.18.0.7 action drop", "id 2 src ::ffff:198.18.0.0/112 action drop"});
  BOOST_TEST(run(udp_from("::ffff:198.19.0.7")) == XDP_DROP);
  BOOST_TEST(stat(XDPFW_STAT_MAPPED_DROP) == 1u);
}

// Encapsulated (VLAN tags, extension headers, a non-first fragment) or
// malformed once its addresses were read: still dropped for its source,
// the malformed reason counted as well.
BOOST_FIXTURE_TEST_CASE(mapped_source_in_any_frame, DatapathFixture) {
  install({"action pass"}, Policy{Action::pass, Action::pass});
  PacketSpec s = udp_from("::ffff:198.18.0.7");
  s.vlan_tpids = {0x88a8, 0x8100};
  s.ext = {0, 60};
  BOOST_TEST(run(s) == XDP_DROP);
  s.frag = Frag::non_first;
  BOOST_TEST(run(s) == XDP_DROP);
  BOOST_TEST(stat(XDPFW_STAT_MAPPED_DROP) == 2u);

  PacketSpec cut = udp_from("::198.18.0.7");
  auto frame = build_packet(cut);
  frame.pop_back();  // the payload length runs past the frame
  BOOST_TEST(run(frame) == XDP_DROP);
  BOOST_TEST(stat(XDPFW_STAT_IPV6_TRUNCATED) == 1u);
  BOOST_TEST(stat(XDPFW_STAT_MAPPED_DROP) == 3u);
  BOOST_TEST(stat(XDPFW_STAT_MALFORMED_PASS) == 0u);
  BOOST_TEST(stat(XDPFW_STAT_MATCH_PASS) == 0u);
  BOOST_TEST(hits(1) == 0u);
}

// audit = yes: counted as mapped_drop and audit_would_drop, passed.
BOOST_FIXTURE_TEST_CASE(audit_passes_what_it_would_drop, DatapathFixture) {
  Policy p;
  p.audit = true;
  install({}, p);
  BOOST_TEST(run(udp_from("::ffff:198.18.0.7")) == XDP_PASS);
  BOOST_TEST(stat(XDPFW_STAT_MAPPED_DROP) == 1u);
  BOOST_TEST(stat(XDPFW_STAT_AUDIT_WOULD_DROP) == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
