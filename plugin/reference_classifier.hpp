// reference_classifier.hpp: the semantics of a rule set, as a plain linear
// scan that is obviously correct. The XDP classifier must agree with it on
// every packet (tests/datapath/differential_test.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "rule.hpp"

namespace xdpfw {

// What the parser read of a malformed packet (docs/DATAPATH.md, "Parser"):
// everything (a well-formed packet), the addresses and protocol but not
// the L4 header, the addresses only, or nothing.
enum class Readable : uint8_t { all = 0, no_l4 = 1, no_proto = 2, nothing = 3 };

// Address set membership as the datapath answers it: an unexpired element
// covers the address (plugin/address_sets.hpp).
class SetMembership {
 public:
  virtual ~SetMembership() = default;
  virtual bool contains(uint16_t set, Family f, const std::array<uint8_t, 16>& addr) const = 0;
};

// What the parser extracted from an IP packet.
struct PacketFields {
  Family family = Family::v4;
  std::array<uint8_t, 16> src{}, dst{};  // IPv4 in the first 4 bytes
  uint8_t proto = 0;
  bool has_l4 = false;  // sport/dport (icmp: type/code) were read
  uint16_t sport = 0, dport = 0;
  uint8_t tcp_flags = 0;
  uint8_t ct = ct_new;                  // the connection state conntrack gives it (ct_*)
  Readable readable = Readable::all;    // other than all: a malformed packet
  const SetMembership* sets = nullptr;  // none: every set is empty
};

// Do a rule's set references (by set id; 0: none) hold for the packet?
bool sets_hold(uint16_t src_set, bool src_negate, uint16_t dst_set, bool dst_negate,
               const PacketFields& p);

// Token buckets of rate rules as a model: per rule id and source prefix,
// the tokens taken; a bucket is over its rate once `burst` are. No refill:
// valid for runs far shorter than the rate's interval (tests use N/h).
class RateModel {
 public:
  bool over(uint32_t rule, uint64_t burst, uint8_t per, const PacketFields& p) const;
  void take(uint32_t rule, uint8_t per, const PacketFields& p);

 private:
  using Key = std::pair<uint32_t, std::array<uint8_t, 16>>;
  static Key key(uint32_t rule, uint8_t per, const PacketFields& p);
  std::map<Key, uint64_t> taken_;
};

struct Verdict {
  Action action = Action::pass;
  // Absent: no rule decided (the default action, or for a malformed
  // packet the malformed action).
  std::optional<uint32_t> rule_id;
  // Audit rules that matched before the deciding rule, in order.
  std::vector<uint32_t> audits;
  // Dropped before any rule for its IPv4-mapped or -compatible IPv6 source
  // (mapped_ipv6_source; the datapath counts it as mapped_drop).
  bool mapped = false;
};

// An IPv6 packet whose source address was read and is IPv4-mapped
// (::ffff:0:0/96) or IPv4-compatible (::/96), but :: (the source of
// duplicate address detection) and ::1 (loopback): no such source belongs on
// the wire (docs/DATAPATH.md, "IPv4 addresses in IPv6 sources").
bool mapped_ipv6_source(const PacketFields& p);

// The stateless fields and ct; not rate or action.
bool rule_matches(const Rule& r, const PacketFields& p);

// For a malformed packet (p.readable other than all): 0 when a readable
// field of r does not match, 2 when they all match but r needs a field that
// could not be read, 1 when r matches on what was read.
int rule_matches_readable(const Rule& r, const PacketFields& p);

class ReferenceClassifier {
 public:
  // Rules must have ids and priorities assigned.
  ReferenceClassifier(std::vector<Rule> rules, Action default_action,
                      Action malformed_action = Action::drop, Action mapped_ipv6 = Action::drop);
  // A packet from a mapped_ipv6_source is dropped before any rule when
  // mapped_ipv6 is drop (malformed or not). A malformed packet: the first rule whose readable
  // fields match decides; the malformed action when that rule needs a field that could not be read,
  // when none matches, or when nothing was read. Rate rules: over their rate in `rates` (without
  // one: never), they decide; under it, they take a token and the next rule decides. Audit rules
  // never decide.
  Verdict classify(const PacketFields& p, RateModel* rates = nullptr) const;

 private:
  std::vector<Rule> rules_;  // sorted by (priority, id)
  Action default_action_;
  Action malformed_action_;
  Action mapped_ipv6_;
};

}  // namespace xdpfw
