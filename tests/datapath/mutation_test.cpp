// Packet mutation: real frames (random fields and encapsulations from the
// packet builder) with their headers damaged the ways networks and
// attackers damage them (bytes and bits overwritten, lengths, IHL, data
// offsets, next headers, ethertypes set to other values, frames cut short or
// padded), run through the program with BPF_PROG_TEST_RUN. A byte-level
// reference parser written from the parser table of docs/DATAPATH.md says
// what the program must do with each: the verdict, the one counter among
// match/default/malformed/non_ip that moves, the malformed reason, and the
// rule the reference classifier picks (for a malformed packet, from the
// fields the parser could read).
// XDPFW_MUTATION_SEED=N reruns one seed.
#include <boost/test/unit_test.hpp>
#include <cstdlib>
#include <iomanip>
#include <sstream>

#include "common/rule_gen.hpp"
#include "datapath/fixture.hpp"

using namespace xdpfw;
using namespace xdpfw::test;

namespace {

// What docs/DATAPATH.md's parser table says a frame is.
struct Parsed {
  enum Kind { ip, non_ip, malformed } kind = ip;
  xdpfw_stat reason = XDPFW_STAT_MAX;  // for malformed
  PacketFields f;
};

uint16_t be16(const std::vector<uint8_t>& b, size_t off) {
  return static_cast<uint16_t>(b[off] << 8 | b[off + 1]);
}

Parsed bad(xdpfw_stat why) {
  Parsed p;
  p.kind = Parsed::malformed;
  p.reason = why;
  p.f.readable = Readable::nothing;
  return p;
}

// Malformed, with what was read so far (addresses, and the protocol or not).
Parsed bad(xdpfw_stat why, Parsed p, Readable what) {
  p.kind = Parsed::malformed;
  p.reason = why;
  p.f.readable = what;
  p.f.has_l4 = false;
  p.f.sport = p.f.dport = 0;
  if (what == Readable::no_proto) p.f.proto = 0;
  return p;
}

// L4 at OFF, the IP payload ending at END (<= frame size).
Parsed l4(const std::vector<uint8_t>& b, Parsed p, size_t off, size_t end) {
  uint8_t proto = p.f.proto;
  size_t need = proto == 6 ? 20 : proto == 17 ? 8 : (proto == 1 || proto == 58) ? 4 : 0;
  if (!need) return p;  // other protocols: addresses and protocol only
  if (off + need > end) return bad(XDPFW_STAT_L4_TRUNCATED, p, Readable::no_l4);
  if (proto == 6 && (b[off + 12] >> 4) < 5)
    return bad(XDPFW_STAT_L4_BAD_HEADER, p, Readable::no_l4);
  p.f.has_l4 = true;
  p.f.sport = (proto == 6 || proto == 17) ? be16(b, off) : b[off];
  p.f.dport = (proto == 6 || proto == 17) ? be16(b, off + 2) : b[off + 1];
  return p;
}

Parsed parse_frame(const std::vector<uint8_t>& b) {
  if (b.size() < 14) return bad(XDPFW_STAT_BAD_L2);
  size_t off = 14;
  uint16_t type = be16(b, 12);
  auto is_vlan = [](uint16_t t) { return t == 0x8100 || t == 0x88a8; };
  for (int tags = 0; is_vlan(type); ++tags) {
    if (tags == 2) return bad(XDPFW_STAT_VLAN_TOO_DEEP);
    if (off + 4 > b.size()) return bad(XDPFW_STAT_BAD_L2);
    type = be16(b, off + 2);
    off += 4;
  }
  Parsed p;
  if (type == 0x0800) {
    if (off + 20 > b.size()) return bad(XDPFW_STAT_IPV4_TRUNCATED);
    size_t ihl = (b[off] & 0xf) * 4u, total = be16(b, off + 2);
    if ((b[off] >> 4) != 4 || ihl < 20 || total < ihl) return bad(XDPFW_STAT_IPV4_BAD_HEADER);
    p.f.family = Family::v4;
    p.f.proto = b[off + 9];
    std::copy(b.begin() + off + 12, b.begin() + off + 16, p.f.src.begin());
    std::copy(b.begin() + off + 16, b.begin() + off + 20, p.f.dst.begin());
    if (off + total > b.size()) return bad(XDPFW_STAT_IPV4_TRUNCATED, p, Readable::no_l4);
    if (be16(b, off + 6) & 0x1fff) return p;  // non-first fragment: no L4
    return l4(b, p, off + ihl, off + total);
  }
  if (type != 0x86dd) {
    p.kind = Parsed::non_ip;
    return p;
  }
  if (off + 40 > b.size()) return bad(XDPFW_STAT_IPV6_TRUNCATED);
  if ((b[off] >> 4) != 6) return bad(XDPFW_STAT_IPV6_BAD_HEADER);
  size_t end = off + 40 + be16(b, off + 4);
  p.f.family = Family::v6;
  std::copy(b.begin() + off + 8, b.begin() + off + 24, p.f.src.begin());
  std::copy(b.begin() + off + 24, b.begin() + off + 40, p.f.dst.begin());
  if (end > b.size()) return bad(XDPFW_STAT_IPV6_TRUNCATED, p, Readable::no_proto);
  uint8_t next = b[off + 6];
  off += 40;
  for (int n = 0;; ++n) {
    bool ext = next == 0 || next == 43 || next == 44 || next == 51 || next == 60;
    if (!ext) {
      p.f.proto = next;
      return l4(b, p, off, end);
    }
    if (n == 8) return bad(XDPFW_STAT_IPV6_EXT_TOO_MANY, p, Readable::no_proto);
    if (next == 44) {  // fragment header: 8 bytes
      if (off + 8 > end) return bad(XDPFW_STAT_IPV6_EXT_TRUNCATED, p, Readable::no_proto);
      if (be16(b, off + 2) & ~7u) {  // offset > 0: no L4
        p.f.proto = b[off];
        return p;
      }
      next = b[off];
      off += 8;
      continue;
    }
    if (off + 2 > end) return bad(XDPFW_STAT_IPV6_EXT_TRUNCATED, p, Readable::no_proto);
    size_t len = next == 51 ? (b[off + 1] + 2u) * 4 : (b[off + 1] + 1u) * 8;
    if (off + len > end) return bad(XDPFW_STAT_IPV6_EXT_TRUNCATED, p, Readable::no_proto);
    next = b[off];
    off += len;
  }
}

// Damages the frame once; SPEC says where its headers are (an earlier
// mutation may have cut the frame: writes past its end are skipped).
void mutate(std::vector<uint8_t>& b, const PacketSpec& spec, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n ? static_cast<size_t>(rng() % n) : 0; };
  auto set = [&](size_t at, uint8_t v) {
    if (at < b.size()) b[at] = v;
  };
  size_t l3 = l3_offset(spec);
  size_t headers = std::min(b.size(), l3 + 120);
  const uint16_t ethertypes[] = {0x0800, 0x86dd, 0x8100, 0x88a8, 0x0806, 0x88cc};
  const uint8_t protos[] = {0, 43, 44, 51, 60, 6, 17, 1, 58, 59, 47, 50};
  switch (pick(10)) {
    case 0: set(pick(headers), static_cast<uint8_t>(rng())); break;
    case 1: set(pick(headers), b[pick(headers)] ^ static_cast<uint8_t>(1u << pick(8))); break;
    case 2: b.resize(14 + pick(b.size() - 13)); break;  // cut short (>= 14: the kernel's minimum)
    case 3: b.insert(b.end(), pick(40), 0); break;      // Ethernet padding
    case 4: {  // an ethertype: the outer one or a VLAN tag's inner one
      size_t at = spec.vlan_tpids.empty() || pick(2) ? 12 : 12 + 4 * spec.vlan_tpids.size();
      uint16_t t = ethertypes[pick(6)];
      set(at, static_cast<uint8_t>(t >> 8));
      set(at + 1, static_cast<uint8_t>(t));
      break;
    }
    case 5: set(l3, static_cast<uint8_t>(rng())); break;  // version/IHL, version/class
    case 6: {  // IPv4 total length / IPv6 payload length, near the truth or anywhere
      size_t at = l3 + (spec.f.family == Family::v4 ? 2 : 4);
      if (at + 2 > b.size()) break;
      uint16_t v = be16(b, at);
      v = pick(2) ? static_cast<uint16_t>(v + pick(17) - 8) : static_cast<uint16_t>(rng());
      set(at, static_cast<uint8_t>(v >> 8));
      set(at + 1, static_cast<uint8_t>(v));
      break;
    }
    case 7:  // IPv4 fragment field, IPv6 next header
      if (spec.f.family == Family::v4)
        set(l3 + 6 + pick(2), static_cast<uint8_t>(rng()));
      else
        set(l3 + 6, protos[pick(12)]);
      break;
    case 8: set(l3 + pick(120), protos[pick(12)]); break;  // a protocol / next-header byte
    default:  // extension header lengths, TCP data offset
      set(l3 + 20 + pick(80), static_cast<uint8_t>(pick(16) << 4 | pick(16)));
      break;
  }
}

std::string hex(const std::vector<uint8_t>& b) {
  std::ostringstream o;
  for (uint8_t c : b) o << std::hex << std::setw(2) << std::setfill('0') << int(c);
  return o.str();
}

const xdpfw_stat outcome_stats[] = {XDPFW_STAT_MATCH_DROP,     XDPFW_STAT_MATCH_PASS,
                                    XDPFW_STAT_DEFAULT_DROP,   XDPFW_STAT_DEFAULT_PASS,
                                    XDPFW_STAT_MALFORMED_DROP, XDPFW_STAT_MALFORMED_PASS,
                                    XDPFW_STAT_MAPPED_DROP,    XDPFW_STAT_NON_IP};

void run_seed(uint64_t seed, int frames) {
  RuleGen gen(seed);
  std::vector<Rule> rules = gen.rules({.rules = 300, .templates = 12});
  // Rules on addresses alone, last: a malformed packet can always be
  // decided by a rule (12 random templates may all need ports).
  for (const char* text : {"id 301 prio 5000 src 198.18.0.0/16 action drop",
                           "id 302 prio 5000 src 2001:db8::/34 action pass"})
    rules.push_back(parse_rule(text));
  Policy policy{(seed & 1) ? Action::drop : Action::pass, (seed & 2) ? Action::pass : Action::drop};
  DatapathFixture fx;
  fx.dp.apply(rules, policy);
  ReferenceClassifier ref(rules, policy.default_action, policy.malformed_action,
                          policy.mapped_ipv6);
  int bad = 0, malformed = 0, non_ip = 0, matched = 0, decided_malformed = 0;
  for (int i = 0; i < frames && bad < 5; ++i) {
    PacketSpec spec = random_encapsulation(gen.packet(rules), gen.rng());
    std::vector<uint8_t> frame = build_packet(spec);
    for (size_t m = 0, n = 1 + gen.rng()() % 3; m < n; ++m) mutate(frame, spec, gen.rng());
    Parsed want = parse_frame(frame);
    // The expected verdict, and the one outcome counter that must move.
    Action act;
    xdpfw_stat outcome;
    std::optional<uint32_t> rule;
    if (want.kind == Parsed::non_ip) {
      act = Action::pass;
      outcome = XDPFW_STAT_NON_IP;
      ++non_ip;
    } else if (want.kind == Parsed::malformed) {
      // decided by a rule on the fields read, or by the malformed action
      Verdict v = ref.classify(want.f);
      act = v.action;
      rule = v.rule_id;
      outcome = rule
                    ? (act == Action::drop ? XDPFW_STAT_MATCH_DROP : XDPFW_STAT_MATCH_PASS)
                    : (act == Action::drop ? XDPFW_STAT_MALFORMED_DROP : XDPFW_STAT_MALFORMED_PASS);
      if (v.mapped) outcome = XDPFW_STAT_MAPPED_DROP;  // its reason moves all the same
      ++malformed;
      decided_malformed += rule.has_value();
    } else {
      Verdict v = ref.classify(want.f);
      act = v.action;
      rule = v.rule_id;
      outcome = rule ? (act == Action::drop ? XDPFW_STAT_MATCH_DROP : XDPFW_STAT_MATCH_PASS)
                     : (act == Action::drop ? XDPFW_STAT_DEFAULT_DROP : XDPFW_STAT_DEFAULT_PASS);
      if (v.mapped) outcome = XDPFW_STAT_MAPPED_DROP;
      matched += rule.has_value();
    }
    Stats before = fx.dp.stats();
    uint64_t rule_before = rule ? fx.hits(*rule) : 0;
    RunResult r = run_xdp(fx.dp.prog_fd(), frame);
    BOOST_TEST_REQUIRE(r.err == 0);
    Stats after = fx.dp.stats();
    std::ostringstream why;
    if (r.retval != (act == Action::drop ? XDP_DROP : XDP_PASS))
      why << "verdict " << r.retval << " ";
    for (xdpfw_stat s : outcome_stats)
      if (after[s] - before[s] != (s == outcome ? 1u : 0u))
        why << "counter " << stat_name(s) << " moved " << after[s] - before[s] << " ";
    if (want.kind == Parsed::malformed && after[want.reason] - before[want.reason] != 1)
      why << "reason " << stat_name(want.reason) << " did not move ";
    if (rule && fx.hits(*rule) != rule_before + 1) why << "rule " << *rule << " not counted ";
    if (!why.str().empty()) {
      ++bad;
      BOOST_ERROR("seed " << seed << " frame " << i << ": " << why.str() << "(expected "
                          << stat_name(outcome) << ") frame " << hex(frame));
    }
  }
  BOOST_TEST_MESSAGE("seed " << seed << ": " << frames << " mutated frames, " << malformed
                             << " malformed (" << decided_malformed << " decided by a rule), "
                             << non_ip << " non-IP, " << matched << " matched a rule");
  // The mutations reach every outcome, or the test proves little.
  BOOST_TEST(malformed > frames / 20);
  BOOST_TEST(non_ip > 0);
  BOOST_TEST(matched > frames / 20);
  BOOST_TEST(decided_malformed > 0);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(mutation)

BOOST_AUTO_TEST_CASE(mutated_frames_agree_with_the_parser_table) {
  if (const char* s = std::getenv("XDPFW_MUTATION_SEED")) {
    run_seed(std::strtoull(s, nullptr, 10), 20000);
    return;
  }
  uint64_t base = std::random_device{}();
  for (uint64_t k = 0; k < 4; ++k) run_seed(base + k, 10000);
}

BOOST_AUTO_TEST_SUITE_END()
