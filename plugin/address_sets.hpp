// address_sets.hpp: named sets of IPv4/IPv6 addresses and prefixes with
// timeouts (docs/CONTROL.md, "Address sets"), as rules reference them
// ("src @blocklist"). The sets live in the datapath's maps (xdpfw_sets,
// an LPM trie, and xdpfw_set_hosts, a hash for full-length addresses;
// bpf/xdpfw.h); this class keeps their mirror: it decides
// what each change writes (one element, plus the elements a shorter prefix
// covers when its expiry changes), answers membership as the datapath does
// (for the reference classifier), lists, reaps expired elements and gives
// the text that persists them.
//
// Expiry: an element's own time (its timeout from when it was added; none:
// never) and its effective time, the latest of its own and of every element
// of the set that covers it. The datapath's longest-prefix match returns
// one element, so that element carries the effective time: an expired /32
// never hides a live /16 around it, even before the agent reaps it.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "reference_classifier.hpp"
#include "rule.hpp"

namespace xdpfw {

class Datapath;

// A set command that cannot be done; the message says why. Nothing changed.
class SetError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr uint64_t never = ~0ULL;

// "30s", "10m", "1h", "2d", "1w" or plain seconds; "none", 0 or -1 (as
// fail2ban's <bantime> says "for ever"): no timeout.
// Throws SetError naming field.
uint64_t parse_duration(std::string_view text, std::string_view field);
std::string format_duration(uint64_t seconds);  // "1h30m", "0s"

// "NAME [timeout DUR] [max N]": a set as the config ("set =") and
// "set create" declare it.
struct SetSpec {
  std::string name;
  uint64_t timeout_s = 0;  // default timeout of its elements; 0: none
  uint32_t max = 0;        // elements; 0: as many as the datapath holds
  bool operator==(const SetSpec&) const = default;
};
SetSpec parse_set_spec(std::string_view text);
std::string format_set_spec(const SetSpec& s);

// One element of a "set load" payload: "ADDR[/LEN] [timeout DUR]".
struct SetItem {
  Prefix prefix;
  std::optional<uint64_t> timeout_s;  // none: the set's
};
// The payload's lines (comments with '#', empty lines allowed); throws
// SetError with the line number.
std::vector<SetItem> parse_set_items(std::string_view text);

// CLOCK_MONOTONIC_COARSE in ns: the clock of bpf_ktime_get_coarse_ns.
uint64_t monotonic_coarse_ns();
// CLOCK_REALTIME in ms: expiry times in the state files.
uint64_t realtime_ms();

// The clocks of the sets (tests give their own).
struct SetClock {
  std::function<uint64_t()> mono_ns = monotonic_coarse_ns;
  std::function<uint64_t()> real_ms = realtime_ms;
};

class AddressSets : public SetMembership {
 public:
  using Clock = SetClock;
  // An element's place: family, address (host bits zero), length. Sorted
  // so that the prefixes inside one follow it.
  struct Key {
    uint8_t fam = 0;
    std::array<uint8_t, 16> addr{};
    uint8_t len = 0;
    auto operator<=>(const Key&) const = default;
  };
  struct Element {
    uint64_t own = never;  // its own expiry (mono ns)
    uint64_t eff = never;  // the datapath's: the latest of its own and its covers'
  };
  struct Set {
    uint16_t id = 0;
    SetSpec spec;
    uint32_t gen = 0;  // which of the set's two tags is live
    std::map<Key, Element> elems;
    std::set<std::pair<uint64_t, Key>> expiring;      // (own, key) of elements with a timeout
    std::array<std::array<uint32_t, 129>, 2> lens{};  // elements per family and length
  };

  explicit AddressSets(Datapath& dp, Clock clock = {});

  // Creates a set (id: the one it had, when restored; 0: a free one).
  // Throws SetError: the name is taken, too many sets.
  const Set& create(const SetSpec& spec, uint16_t id = 0);
  // Changes an existing set's timeout and max (elements already in keep
  // their expiry; a lower max than the count is refused).
  void configure(const SetSpec& spec);
  void destroy(std::string_view name);
  // Adds or refreshes an element; timeout_s: none for the set's; 0: never
  // expires. Returns true when it was new.
  bool add(std::string_view name, const Prefix& p, std::optional<uint64_t> timeout_s);
  bool del(std::string_view name, const Prefix& p);  // false: not an element
  size_t flush(std::string_view name);
  // Replaces the set's elements with items, atomically for packets: the new
  // ones are written under the set's other tag, the tag switched, the old
  // ones erased.
  void load(std::string_view name, const std::vector<SetItem>& items);
  // Erases elements whose own time has passed; returns how many.
  size_t reap();

  const Set* find(std::string_view name) const;
  const Set* find(uint16_t id) const;
  const std::map<std::string, Set, std::less<>>& sets() const { return sets_; }
  uint64_t total() const { return total_; }
  uint64_t capacity() const { return capacity_; }
  uint64_t now() const { return clock_.mono_ns(); }

  // As the datapath answers it: the longest element covering addr, unexpired.
  bool contains(uint16_t set, Family f, const std::array<uint8_t, 16>& addr) const override;

  // Persistence: the sets as lines of the journal grammar ("create ...",
  // "add ..."), expiry as wall-clock ms; replay() applies such lines to the
  // mirror only (throws SetError with the reason), sync() then writes every
  // set to the datapath and clears what no set owns there.
  std::string snapshot() const;
  static std::string journal_create(const Set& s);
  std::string journal_add(const Set& s, const Key& k) const;
  static std::string journal_del(std::string_view set, const Prefix& p);
  static std::string journal_flush(std::string_view set);
  static std::string journal_destroy(std::string_view set);
  void replay(std::string_view line);
  void sync();

  static Key key_of(const Prefix& p);
  static Prefix prefix_of(const Key& k);
  // Element's remaining seconds (none: never), for listings.
  std::optional<uint64_t> remaining_s(const Element& e) const;

 private:
  Set& get(std::string_view name);
  static uint32_t tag(const Set& s, uint32_t gen) { return uint32_t{s.id} << 2 | gen << 1; }
  uint64_t expiry(const Set& s, std::optional<uint64_t> timeout_s) const;
  uint64_t cover_eff(const Set& s, const Key& k, bool inclusive) const;
  void write(Set& s, std::map<Key, Element>::iterator it, uint64_t eff, bool fresh);
  void refresh_below(Set& s, const Key& k);
  void erase(Set& s, std::map<Key, Element>::iterator it);
  void set_own(Set& s, std::map<Key, Element>::iterator it, uint64_t own);
  static void compute_eff(std::map<Key, Element>& elems);

  Datapath& dp_;
  Clock clock_;
  std::map<std::string, Set, std::less<>> sets_;
  std::map<uint16_t, std::string> by_id_;
  uint64_t total_ = 0;
  uint64_t capacity_ = 0;
  bool writing_ = true;  // false while replaying: the mirror only
};

}  // namespace xdpfw
