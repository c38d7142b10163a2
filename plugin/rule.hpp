// rule.hpp: a firewall rule, its text grammar, and its validation.
// One grammar for the control socket, the rules file and the config
// (docs/CONTROL.md): "key value" pairs, e.g.
//   prio 10 src 198.18.0.0/15 proto tcp dport 1024-65535 action drop
#pragma once

#include <array>
#include <charconv>
#include <cstdint>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "text.hpp"

namespace xdpfw {

enum class Family : uint8_t { v4 = 0, v6 = 1 };
enum class Action : uint8_t { pass = 0, drop = 1, audit = 2 };

// An address prefix; IPv4 lives in the first 4 bytes of addr. Host bits are
// always zero (the parser masks them).
struct Prefix {
  Family family = Family::v4;
  std::array<uint8_t, 16> addr{};
  uint8_t len = 0;

  bool contains(const std::array<uint8_t, 16>& a) const;
  void clear_host_bits();  // the bits past len
  bool operator==(const Prefix&) const = default;
};

struct PortRange {
  uint16_t lo = 0;
  uint16_t hi = 0;
  bool full() const { return lo == 0 && hi == 65535; }
  bool operator==(const PortRange&) const = default;
};

inline constexpr uint8_t proto_icmp = 1;
inline constexpr uint8_t proto_tcp = 6;
inline constexpr uint8_t proto_udp = 17;
inline constexpr uint8_t proto_icmpv6 = 58;

// TCP flags a rule requires set (set) and unset (mask & ~set), e.g.
// "syn,!ack": set SYN, mask SYN|ACK.
struct TcpFlags {
  uint8_t set = 0;
  uint8_t mask = 0;
  bool operator==(const TcpFlags&) const = default;
};

// Connection states of "ct" (bits, as enum xdpfw_ct_state).
inline constexpr uint8_t ct_new = 1;
inline constexpr uint8_t ct_established = 2;
inline constexpr uint8_t ct_related = 4;

// "rate N/UNIT": N packets per `seconds`.
struct Rate {
  uint32_t packets = 0;
  uint32_t seconds = 1;  // 1 (s), 60 (min), 3600 (h), 86400 (day)
  bool operator==(const Rate&) const = default;
  uint64_t cost_ns() const { return uint64_t{seconds} * 1000000000ULL / packets; }
};

// "src @NAME" / "dst !@NAME": the address must (not) be in the named set
// (plugin/address_sets.hpp). id is the set's, filled in where the rule is
// installed (0: not yet resolved); it is not part of the rule's text.
// A set name as a rule holds it: interned, one copy per distinct name for
// the process's life (names are few and short), so that a rule carries 4
// bytes instead of a std::string's 32.
class SetName {
 public:
  SetName() = default;
  explicit SetName(std::string_view name);
  const std::string& str() const;
  operator const std::string&() const { return str(); }  // NOLINT(google-explicit-constructor)
  friend bool operator==(SetName a, SetName b) { return a.i_ == b.i_; }
  friend bool operator==(SetName a, std::string_view b) { return a.str() == b; }
  friend std::string operator+(const std::string& a, SetName b) { return a + b.str(); }
  friend std::string operator+(const char* a, SetName b) { return a + b.str(); }
  friend std::ostream& operator<<(std::ostream& o, SetName n) { return o << n.str(); }

 private:
  uint32_t i_ = 0;  // 0: ""
};

struct SetRef {
  SetName name;
  bool negate = false;
  uint16_t id = 0;
  bool operator==(const SetRef& o) const { return name == o.name && negate == o.negate; }
};

// A set name: 1-32 of [A-Za-z0-9_.-], starting with a letter or digit.
bool valid_set_name(std::string_view name);

// Order between rules: lower (priority, id) wins.
inline uint64_t rule_order(uint32_t priority, uint32_t id) {
  return (uint64_t{priority} << 32) | id;
}

// Members by alignment, widest first: 124 bytes (100,000 rules are held
// at least once; docs/ARCHITECTURE.md, "Agent memory").
struct Rule {
  uint32_t id = 0;                         // 0: not yet assigned
  std::optional<uint32_t> priority;        // absent: after the existing rules
  std::optional<Rate> rate;                // decides only over the rate
  std::optional<uint32_t> burst;           // packets; needs rate (default: N)
  std::optional<SetRef> src_set, dst_set;  // instead of src, dst
  std::optional<Prefix> src, dst;
  std::optional<PortRange> sport, dport;  // tcp/udp only
  std::optional<uint8_t> proto;
  std::optional<uint8_t> icmp_type, icmp_code;  // icmp/icmpv6 only
  std::optional<TcpFlags> tcp_flags;            // tcp only
  std::optional<uint8_t> ct;                    // ct_new | ct_established | ct_related
  std::optional<uint8_t> per;                   // rate per source /per (128: address)
  bool log = false;                             // its verdicts are reported
  std::optional<Action> action;

  // A rule that may match a packet without deciding it: ct, rate, audit,
  // an address set.
  bool conditioned() const { return ct || rate || action == Action::audit || src_set || dst_set; }
  // One whose packets need the per-packet state (xdpfw_ruleset.conditioned).
  bool stateful() const { return ct || rate || action == Action::audit; }
  // Needs the L4 header: ports, ICMP type/code, TCP flags, ct.
  bool needs_l4() const { return sport || dport || icmp_type || icmp_code || tcp_flags || ct; }
  uint32_t burst_packets() const { return burst.value_or(rate ? rate->packets : 0); }

  // The family the rule is limited to, if it names an address.
  std::optional<Family> family() const;
  uint64_t order() const { return rule_order(priority.value_or(0), id); }
  bool operator==(const Rule&) const = default;
};

// A rule that cannot be used. The message names the field and says what was
// expected, e.g. "dport: range 90-80 is reversed (expected lo-hi with lo <= hi)".
class RuleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses one rule line. Keys may carry a leading "--" (the flags of the
// seed firewall's `manager` CLI, which xdpfw-ctl keeps). Throws RuleError. The result is validated.
Rule parse_rule(std::string_view text);

// Checks the combination of fields; throws RuleError.
void validate_rule(const Rule& r);

// Canonical text form, parseable by parse_rule.
std::string format_rule(const Rule& r);
// What makes a rule the same rule: every field of the grammar's list
// (rule_fields.hpp) but its id, conditions and set names included. A rule
// read again (a reload, a change in rules.d, a reverted trial) whose
// identity equals a running rule's keeps that rule's id and counters.
std::string rule_identity(const Rule& r);

std::string format_prefix(const Prefix& p);
std::string format_address(Family f, const std::array<uint8_t, 16>& a);
Prefix parse_prefix(std::string_view text, std::string_view field);
std::string proto_name(uint8_t proto);
std::string action_name(Action a);
std::string format_tcp_flags(const TcpFlags& f);
std::string format_ct(uint8_t states);

// The words of a line of the grammars above (rules, set commands, state
// files): the host's one splitter (host/text.hpp).
using host::split_words;
// 'v', as error messages show a word.
std::string quote(std::string_view v);

// A decimal number from 0 to max, all of s, or nothing.
template <typename T>
std::optional<T> parse_uint(std::string_view s, T max) {
  uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v > max) return std::nullopt;
  return static_cast<T>(v);
}

}  // namespace xdpfw
