// reference_classifier.hpp: the semantics of a rule set, as a plain linear
// scan that is obviously correct. The XDP classifier must agree with it on
// every packet (tests/datapath/differential_test.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "rule.hpp"

namespace xdpfw {

// What the parser extracted from a well-formed IP packet.
struct PacketFields {
  Family family = Family::v4;
  std::array<uint8_t, 16> src{}, dst{};  // IPv4 in the first 4 bytes
  uint8_t proto = 0;
  bool has_l4 = false;  // sport/dport (icmp: type/code) were read
  uint16_t sport = 0, dport = 0;
};

struct Verdict {
  Action action = Action::pass;
  std::optional<uint32_t> rule_id;  // absent: no rule matched (default action)
};

bool rule_matches(const Rule& r, const PacketFields& p);

class ReferenceClassifier {
 public:
  // Rules must have ids and priorities assigned.
  ReferenceClassifier(std::vector<Rule> rules, Action default_action);
  Verdict classify(const PacketFields& p) const;

 private:
  std::vector<Rule> rules_;  // sorted by (priority, id)
  Action default_action_;
};

}  // namespace xdpfw
