// packet_builder.cpp: see packet_builder.hpp.
#include "datapath/packet_builder.hpp"

#include <cstring>

namespace xdpfw::test {
namespace {

void put16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

bool l4_has_header(uint8_t proto) {
  return proto == 6 || proto == 17 || proto == 1 || proto == 58;
}

std::vector<uint8_t> l4_header(const PacketSpec& s) {
  std::vector<uint8_t> h;
  const PacketFields& f = s.f;
  if (f.proto == 6) {
    put16(h, f.sport);
    put16(h, f.dport);
    h.insert(h.end(), 8, 0);  // seq, ack
    h.push_back(5 << 4);      // data offset
    h.push_back(s.tcp_flags);
    put16(h, 512);
    h.insert(h.end(), 4, 0);
  } else if (f.proto == 17) {
    put16(h, f.sport);
    put16(h, f.dport);
    put16(h, static_cast<uint16_t>(8 + s.payload));
    put16(h, 0);
  } else if (f.proto == 1 || f.proto == 58) {
    h.push_back(static_cast<uint8_t>(f.sport));
    h.push_back(static_cast<uint8_t>(f.dport));
    h.insert(h.end(), 6, 0);
  }
  return h;
}

}  // namespace

size_t l3_offset(const PacketSpec& s) {
  return 14 + 4 * s.vlan_tpids.size();
}

std::vector<uint8_t> build_packet(const PacketSpec& s) {
  std::vector<uint8_t> b = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1};
  bool v6 = s.f.family == Family::v6;
  uint16_t l3type = s.ethertype ? s.ethertype : (v6 ? 0x86dd : 0x0800);
  for (size_t i = 0; i < s.vlan_tpids.size(); ++i) {
    put16(b, s.vlan_tpids[i]);
    put16(b, static_cast<uint16_t>(100 + i));  // TCI: VLAN id
  }
  put16(b, l3type);

  std::vector<uint8_t> l4;
  if (s.frag != Frag::non_first && l4_has_header(s.f.proto)) l4 = l4_header(s);
  std::vector<uint8_t> payload(s.payload, 0xab);

  if (!v6) {
    unsigned ihl = 20 + s.ip_options;
    uint16_t tot = static_cast<uint16_t>(ihl + l4.size() + payload.size());
    b.push_back(static_cast<uint8_t>(0x40 | (ihl / 4)));
    b.push_back(0);
    put16(b, tot);
    put16(b, 0x1234);
    uint16_t frag = s.frag == Frag::first ? 0x2000 : s.frag == Frag::non_first ? 185 : 0;
    put16(b, frag);
    b.push_back(64);
    b.push_back(s.f.proto);
    put16(b, 0);
    b.insert(b.end(), s.f.src.begin(), s.f.src.begin() + 4);
    b.insert(b.end(), s.f.dst.begin(), s.f.dst.begin() + 4);
    // Options: an unknown option (type 0x9e, copied) of the whole length whose
    // bytes read as ports 22/22 to a parser that ignores IHL.
    if (s.ip_options) {
      b.push_back(0x9e);
      b.push_back(static_cast<uint8_t>(s.ip_options));
      for (unsigned i = 2; i < s.ip_options; i += 2) put16(b, 22);
    }
  } else {
    std::vector<uint8_t> ext;
    std::vector<uint8_t> chain = s.ext;
    if (s.frag != Frag::none) chain.push_back(44);
    for (size_t i = 0; i < chain.size(); ++i) {
      uint8_t next = i + 1 < chain.size() ? chain[i + 1] : s.f.proto;
      uint8_t type = chain[i];
      if (type == 44) {
        ext.push_back(next);
        ext.push_back(0);
        put16(ext, s.frag == Frag::non_first ? static_cast<uint16_t>(185 << 3) : 1);  // M flag
        ext.insert(ext.end(), {0, 0, 0x12, 0x34});
      } else if (type == 51) {  // AH: (len + 2) * 4 = 16 bytes
        ext.push_back(next);
        ext.push_back(2);
        ext.insert(ext.end(), 14, 0);
      } else {  // hop-by-hop, routing, destination options: (len + 1) * 8 = 16 bytes
        ext.push_back(next);
        ext.push_back(1);
        ext.insert(ext.end(), {1, 12});  // PadN option of 12 bytes
        ext.insert(ext.end(), 12, 0);
      }
    }
    uint8_t first = chain.empty() ? s.f.proto : chain[0];
    uint16_t plen = static_cast<uint16_t>(ext.size() + l4.size() + payload.size());
    b.insert(b.end(), {0x60, 0, 0, 0});
    put16(b, plen);
    b.push_back(first);
    b.push_back(64);
    b.insert(b.end(), s.f.src.begin(), s.f.src.end());
    b.insert(b.end(), s.f.dst.begin(), s.f.dst.end());
    b.insert(b.end(), ext.begin(), ext.end());
  }
  b.insert(b.end(), l4.begin(), l4.end());
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

PacketFields fields4(const char* src, const char* dst, uint8_t proto, uint16_t sport,
                     uint16_t dport) {
  PacketFields p;
  p.family = Family::v4;
  p.src = parse_prefix(src, "src").addr;
  p.dst = parse_prefix(dst, "dst").addr;
  p.proto = proto;
  p.has_l4 = l4_has_header(proto);
  p.sport = sport;
  p.dport = dport;
  return p;
}

PacketFields fields6(const char* src, const char* dst, uint8_t proto, uint16_t sport,
                     uint16_t dport) {
  PacketFields p = fields4("0.0.0.0", "0.0.0.0", proto, sport, dport);
  p.family = Family::v6;
  p.src = parse_prefix(src, "src").addr;
  p.dst = parse_prefix(dst, "dst").addr;
  return p;
}

PacketSpec random_encapsulation(const PacketFields& f, std::mt19937_64& rng) {
  auto pick = [&](uint32_t n) { return static_cast<uint32_t>(rng() % n); };
  PacketSpec s{.f = f};
  switch (pick(4)) {
    case 1: s.vlan_tpids = {0x8100}; break;
    case 2: s.vlan_tpids = {0x88a8, 0x8100}; break;
    default: break;
  }
  if (!f.has_l4 && (f.proto == 6 || f.proto == 17 || f.proto == 1 || f.proto == 58))
    s.frag = Frag::non_first;
  else if (pick(8) == 0)
    s.frag = Frag::first;
  if (f.family == Family::v4) {
    s.ip_options = 4 * pick(11);
  } else {
    const uint8_t kinds[] = {0, 43, 60, 51};
    for (uint32_t i = 0, n = pick(4); i < n; ++i) s.ext.push_back(kinds[pick(4)]);
  }
  s.tcp_flags = static_cast<uint8_t>(pick(256));
  s.payload = pick(64);
  return s;
}

}  // namespace xdpfw::test
