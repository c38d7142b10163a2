// worst_case.cpp: see worst_case.hpp.
#include "common/worst_case.hpp"

#include <stdexcept>
#include <string>

#include "rule_compiler.hpp"

namespace xdpfw::test {
namespace {

const char* src_of(Family fam) {
  return fam == Family::v4 ? "198.18.0.1" : "2001:db8::1";
}
const char* dst_of(Family fam) {
  return fam == Family::v4 ? "198.19.0.1" : "2001:db8:1::1";
}

// A rule around the header: its prefixes hold the header's addresses, and
// its sport range spans the middle of the port space, so that no table can
// hash it (ranges hash only the bits their ends share: none here). Range k
// (32767-k to 32768+k) misses the header's sport 1000; the range `hit`
// (999-40000) holds it.
Rule around(Family fam, int src_len, int dst_len, bool exact_dport, int k, uint32_t id) {
  std::string range =
      k < 0 ? "999-40000" : std::to_string(32767 - k) + "-" + std::to_string(32768 + k);
  std::string t = "id " + std::to_string(id) + " prio " + std::to_string(id) + " src " +
                  src_of(fam) + "/" + std::to_string(src_len) + " dst " + dst_of(fam) + "/" +
                  std::to_string(dst_len) + " proto udp sport " + range +
                  (exact_dport ? " dport 2000" : "") + " action drop";
  return parse_rule(t);
}
constexpr int hit = -1;

}  // namespace

PacketFields worst_case_header(Family fam) {
  PacketFields p;
  p.family = fam;
  p.src = parse_prefix(src_of(fam), "src").addr;
  p.dst = parse_prefix(dst_of(fam), "dst").addr;
  p.proto = 17;
  p.has_l4 = true;
  p.sport = 1000;
  p.dport = 2000;
  return p;
}

std::vector<Rule> worst_case_tables(Family fam, uint32_t tables) {
  const int max_len = fam == Family::v4 ? 32 : 128;
  const int f = fam == Family::v4 ? XDPFW_FAMILY_V4 : XDPFW_FAMILY_V6;
  std::vector<Rule> out;
  uint32_t id = 1;
  for (int s = max_len; s >= 0; --s)
    for (int d = max_len; d >= 0; --d)
      for (bool exact : {true, false}) {
        for (uint16_t k = 0; k < XDPFW_BUCKET_SIZE; ++k, ++id)
          out.push_back(around(fam, s, d, exact, k, id));
        uint32_t n = compile_rules(out, Policy{}).header.ntables[f];
        if (n > tables) throw std::runtime_error("worst_case_tables: overshot");
        if (n == tables) {  // the last shape once more, matching: no new table
          out.push_back(around(fam, s, d, exact, hit, id));
          return out;
        }
      }
  throw std::runtime_error("worst_case_tables: cannot reach " + std::to_string(tables));
}

std::vector<Rule> worst_case_chain(Family fam, uint32_t rules) {
  const int max_len = fam == Family::v4 ? 32 : 128;
  std::vector<Rule> out;
  for (uint32_t id = 1; id <= rules; ++id) {
    out.push_back(around(fam, max_len, max_len, true, id == rules ? hit : int(id), id));
  }
  return out;
}

}  // namespace xdpfw::test
