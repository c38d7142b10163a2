// rule_compiler.hpp: compiles a rule list into the tuple-space form the XDP
// program reads (docs/DATAPATH.md): per family a list of mask shapes sorted by
// their best rule, two port-class tables, and hash entries keyed by masked
// packet fields. Pure: no kernel involved, so it is unit-tested directly.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rule.hpp"
#include "xdpfw.h"

namespace xdpfw {

struct Policy {
  Action default_action = Action::pass;    // no rule matched
  Action malformed_action = Action::drop;  // the parser could not read the packet
  bool operator==(const Policy&) const = default;
};

struct CompileLimits {
  uint32_t max_rules = XDPFW_DEFAULT_MAX_RULES;
  uint32_t max_entries_per_family = XDPFW_DEFAULT_MAX_ENTRIES / XDPFW_SLOTS;
  uint32_t max_shapes = XDPFW_MAX_SHAPES;
  uint32_t max_expansion_per_rule = XDPFW_MAX_EXPANSION_PER_RULE;
};

// A rule set that breaks a limit or is invalid; the message names the rule
// and the limit. Nothing was changed when this is thrown.
class CompileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Byte-wise hash and equality for the fixed-layout BPF keys.
template <typename K>
struct KeyHash {
  size_t operator()(const K& k) const {
    return std::hash<std::string_view>{}(
        std::string_view(reinterpret_cast<const char*>(&k), sizeof k));
  }
};
template <typename K>
struct KeyEq {
  bool operator()(const K& a, const K& b) const { return std::memcmp(&a, &b, sizeof a) == 0; }
};

// The value of one key, before user space maps rule ids to counter slots.
struct Entry {
  uint64_t order = 0;  // priority << 32 | rule id
  Action action = Action::pass;
  uint32_t rule_id() const { return static_cast<uint32_t>(order); }
  bool operator==(const Entry&) const = default;
};

template <typename K>
using EntryMap = std::unordered_map<K, Entry, KeyHash<K>, KeyEq<K>>;

struct CompiledRuleset {
  xdpfw_ruleset header{};               // generation 0; keys carry slot 0
  std::vector<uint32_t> port_class[2];  // per enum xdpfw_port_field: port -> class id
  EntryMap<xdpfw_key4> v4;
  EntryMap<xdpfw_key6> v6;
};

// Rules must carry ids (unique, non-zero) and priorities.
CompiledRuleset compile_rules(const std::vector<Rule>& rules, const Policy& policy,
                              const CompileLimits& limits = {});

// The classifier of the XDP program, run in user space over a compiled rule
// set. Lets unit tests check the compiler against the reference without root.
std::optional<Entry> lookup_compiled(const CompiledRuleset& c, const struct PacketFields& p);

}  // namespace xdpfw
