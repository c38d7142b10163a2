// rule_gen.hpp: random rule sets and packets for differential tests. Rule
// sets draw from a few "shape templates" (as real rule sets do) and from
// small address and port pools, so that random packets hit rules often.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "reference_classifier.hpp"
#include "rule.hpp"

namespace xdpfw::test {

struct GenOptions {
  size_t rules = 100;
  size_t templates = 12;  // distinct shape templates in the set
  bool wide = false;      // addresses from all of 198.18.0.0/15 and 2001:db8::/32
  // Some rules with tcp-flags, ct, log, "rate N/h" (no refill within a
  // test: RateModel's terms) and action audit.
  bool conditions = false;
};

class RuleGen {
 public:
  explicit RuleGen(uint64_t seed) : rng_(seed) {}
  std::vector<Rule> rules(const GenOptions& o);
  // A packet: mostly derived from one of the rules (inside or just outside
  // it), sometimes unrelated. TCP packets get random flags; ct is new.
  PacketFields packet(const std::vector<Rule>& rules);
  std::mt19937_64& rng() { return rng_; }

 private:
  struct Template {
    int family;            // 0 v4, 1 v6, 2 none
    int src_len, dst_len;  // -1: absent
    int proto;             // -1 absent, else number
    int sport, dport;      // 0 absent, 1 single, 2 range, 3 full
    bool icmp_type, icmp_code;
  };
  Template make_template();
  Rule from_template(const Template& t, uint32_t id);
  std::array<uint8_t, 16> pool_addr(int family);
  PortRange port_range(int kind);
  uint32_t uniform(uint32_t lo, uint32_t hi) {
    return std::uniform_int_distribution<uint32_t>(lo, hi)(rng_);
  }
  void add_conditions(Rule& r);
  std::mt19937_64 rng_;
  bool wide_ = false;
  bool conditions_ = false;
};

}  // namespace xdpfw::test
