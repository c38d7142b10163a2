// packet_builder.hpp: crafted Ethernet frames for BPF_PROG_TEST_RUN, so a
// datapath test reads as "this packet, this rule set, this verdict".
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "reference_classifier.hpp"

namespace xdpfw::test {

enum class Frag { none, first, non_first };

struct PacketSpec {
  PacketFields f;                         // addresses, proto, ports (icmp: type/code)
  std::vector<uint16_t> vlan_tpids = {};  // outer first, e.g. {0x88a8, 0x8100}
  unsigned ip_options = 0;                // IPv4 option bytes, multiple of 4, <= 40
  std::vector<uint8_t> ext = {};          // IPv6 extension headers in order (0, 43, 60, 51)
  Frag frag = Frag::none;                 // IPv4 flags/offset, IPv6 fragment header last
  uint8_t tcp_flags = 0x02;               // SYN
  unsigned payload = 16;
  uint16_t ethertype = 0;  // 0: from the family
};

// A frame as described. For Frag::non_first no L4 header is written
// (f.has_l4 is ignored); the IPv4 option bytes spell port 22 on purpose.
std::vector<uint8_t> build_packet(const PacketSpec& s);

// Offsets into a built frame, for tests that corrupt a header.
size_t l3_offset(const PacketSpec& s);

// F in a random encapsulation: 0-2 VLAN tags, IPv4 options or IPv6
// extension headers, first fragments (non-first when F has no L4), TCP
// flags, payload size.
PacketSpec random_encapsulation(const PacketFields& f, std::mt19937_64& rng);

PacketFields fields4(const char* src, const char* dst, uint8_t proto, uint16_t sport = 0,
                     uint16_t dport = 0);
PacketFields fields6(const char* src, const char* dst, uint8_t proto, uint16_t sport = 0,
                     uint16_t dport = 0);

}  // namespace xdpfw::test
