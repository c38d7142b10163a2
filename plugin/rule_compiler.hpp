// rule_compiler.hpp: compiles a rule list into the TupleMerge form the XDP
// program reads (docs/DATAPATH.md): per family up to XDPFW_MAX_TABLES tables
// sorted by their best rule, hash buckets of at most XDPFW_BUCKET_SIZE
// candidate rules keyed by the fields a table hashes, one candidate record per
// rule, and the candidate masks (per protocol, per dport, per address
// summary) that tell a packet which tables are worth probing. Pure: no kernel
// involved, so it is unit-tested directly.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flat_map.hpp"
#include "rule.hpp"
#include "xdpfw.h"

namespace xdpfw {

class RateModel;
struct PacketFields;

struct Policy {
  Action default_action = Action::pass;    // no rule matched
  Action malformed_action = Action::drop;  // the parser could not read the packet
  bool audit = false;  // every drop verdict is counted, reported as "would drop", passed
  // An IPv4-mapped (::ffff:0:0/96) or IPv4-compatible (::/96 but :: and ::1)
  // IPv6 source: drop, before any rule sees it, or pass to the rules
  // (docs/DATAPATH.md, "IPv4 addresses in IPv6 sources").
  Action mapped_ipv6 = Action::drop;
  bool operator==(const Policy&) const = default;
};

struct CompileLimits {
  uint32_t max_rules = XDPFW_DEFAULT_MAX_RULES;
  uint32_t max_buckets_per_family = XDPFW_DEFAULT_MAX_ENTRIES / XDPFW_SLOTS;
  uint32_t max_tables = XDPFW_MAX_TABLES;  // per family, at most XDPFW_MAX_TABLES
  std::string no_ct;                       // why ct rules cannot be used; "": they can
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

// A bucket before user space maps rule ids to candidate indexes: rule ids,
// best (priority, id) first; more: the chain goes on at key.chain + 1.
struct Bucket {
  uint32_t n = 0;
  bool more = false;
  uint32_t ids[XDPFW_BUCKET_SIZE] = {};
  bool operator==(const Bucket& o) const {
    return n == o.n && more == o.more && std::equal(ids, ids + n, o.ids);
  }
};

// A bucket as a compiled set keeps it (most buckets of exact rules hold
// one rule): up to three ids inline, more in an array of their own; 16
// bytes instead of Bucket's 72. Converts to and from Bucket.
class PackedBucket {
 public:
  uint8_t n = 0;
  bool more = false;

  PackedBucket() = default;
  PackedBucket(const Bucket& b);  // NOLINT(google-explicit-constructor): as the map's value
  PackedBucket(const PackedBucket& o) : n(0), more(o.more) { assign(o.ids(), o.n); }
  PackedBucket(PackedBucket&& o) noexcept : n(o.n), more(o.more) {
    std::memcpy(w_, o.w_, sizeof w_);
    o.n = 0;
  }
  PackedBucket& operator=(const PackedBucket& o) {
    if (this != &o) {
      more = o.more;
      assign(o.ids(), o.n);
    }
    return *this;
  }
  PackedBucket& operator=(PackedBucket&& o) noexcept {
    if (this != &o) {
      release();
      n = o.n;
      more = o.more;
      std::memcpy(w_, o.w_, sizeof w_);
      o.n = 0;
    }
    return *this;
  }
  ~PackedBucket() { release(); }

  operator Bucket() const;  // NOLINT(google-explicit-constructor): the datapath reads Buckets
  const uint32_t* ids() const { return n <= kInline ? w_ : heap(); }
  void push_back(uint32_t id);  // at most XDPFW_BUCKET_SIZE
  bool operator==(const PackedBucket& o) const {
    return n == o.n && more == o.more && std::equal(ids(), ids() + n, o.ids());
  }

 private:
  static constexpr uint32_t kInline = 3;
  uint32_t* heap() const {
    uint32_t* p;
    std::memcpy(&p, w_, sizeof p);
    return p;
  }
  void release() {
    if (n > kInline) delete[] heap();
    n = 0;
  }
  void assign(const uint32_t* ids, uint8_t count);
  // n <= kInline: the ids; else the bytes of a pointer to n ids.
  uint32_t w_[kInline] = {};
};
static_assert(sizeof(PackedBucket) == 16);

template <typename K>
using BucketMap = FlatMap<K, PackedBucket, KeyHash<K>, KeyEq<K>>;

// Candidate records by rule id (xdpfw_cand: its counter field is filled in
// by the datapath, which owns the counter slots). Kept packed: address
// masks as prefix lengths (make_cand only makes prefix masks), the order in
// two 32-bit words, the rate fields of the few rate rules aside; 68 bytes an
// entry instead of a FlatMap's 120, 4.5 MiB less at 100,000 rules. Read as a
// map of xdpfw_cand: iterating gives (id, record) pairs by value, at() a
// record by value; a record is changed by erase and emplace.
class CandidateMap {
 public:
  using value_type = std::pair<uint32_t, xdpfw_cand>;
  struct Packed {
    uint32_t order[2];  // low, high
    uint32_t src[4], dst[4];
    uint16_t sport_lo, sport_hi, dport_lo, dport_hi;
    uint16_t flags, set_src, set_dst;
    uint8_t src_len, dst_len, proto, action, tcp_set, tcp_mask, ct, rate_plen;
    bool operator==(const Packed&) const = default;
  };
  struct Rate {
    uint64_t cost_ns, burst_ns;
    bool operator==(const Rate&) const = default;
  };
  using Entries = FlatMap<uint32_t, Packed>;

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = CandidateMap::value_type;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = value_type;
    // What -> points at: the record, unpacked, for as long as the expression.
    struct Arrow {
      value_type v;
      const value_type* operator->() const { return &v; }
    };
    const_iterator() = default;
    const_iterator(const CandidateMap* m, Entries::const_iterator it) : m_(m), it_(it) {}
    value_type operator*() const { return {it_->first, m_->unpack(it_->first, it_->second)}; }
    Arrow operator->() const { return Arrow{**this}; }
    const_iterator& operator++() {
      ++it_;
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator t = *this;
      ++it_;
      return t;
    }
    bool operator==(const const_iterator& o) const { return it_ == o.it_; }

   private:
    const CandidateMap* m_ = nullptr;
    Entries::const_iterator it_;
  };
  using iterator = const_iterator;

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const_iterator begin() const { return {this, entries_.begin()}; }
  const_iterator end() const { return {this, entries_.end()}; }
  const_iterator find(uint32_t id) const { return {this, entries_.find(id)}; }
  size_t count(uint32_t id) const { return entries_.count(id); }
  bool contains(uint32_t id) const { return entries_.contains(id); }
  xdpfw_cand at(uint32_t id) const { return unpack(id, entries_.at(id)); }
  // at(id).order without unpacking the rest (the in-place planning's sort key).
  uint64_t order(uint32_t id) const {
    const Packed& p = entries_.at(id);
    return (uint64_t{p.order[1]} << 32) | p.order[0];
  }
  // False (nothing changed) when id has a record already.
  bool emplace(uint32_t id, const xdpfw_cand& c);
  size_t erase(uint32_t id) {
    rates_.erase(id);
    return entries_.erase(id);
  }
  void reserve(size_t n) { entries_.reserve(n); }
  void clear() {
    entries_.clear();
    rates_.clear();
  }
  bool operator==(const CandidateMap& o) const {
    return entries_ == o.entries_ && rates_ == o.rates_;
  }

 private:
  xdpfw_cand unpack(uint32_t id, const Packed& p) const;
  Entries entries_;
  FlatMap<uint32_t, Rate> rates_;  // rate rules only
};

// A rule's match fields, byte for byte: rules with equal keys are duplicates
// (only the best of them can ever decide a packet). The compiler's key, not
// the rule's identity (rule_identity, rule.hpp): a conditioned rule (ct,
// rate, audit, a set) carries its own id, so that it is never a duplicate.
// Per address: present, family, length, 16 address bytes; which of proto,
// ports, ICMP type/code and TCP flags are given, and their values; the id.
inline constexpr size_t match_key_bytes = 2 * (3 + 16) + 4 + 8 + 2 + 4;
using MatchKey = std::array<uint8_t, match_key_bytes>;
MatchKey match_key(const Rule& r);
struct MatchKeyHash {
  size_t operator()(const MatchKey& k) const {
    return std::hash<std::string_view>{}(
        std::string_view(reinterpret_cast<const char*>(k.data()), k.size()));
  }
};

// A family's candidate masks (XDPFW_SUMMARY_FIELDS x XDPFW_SUMMARY_SPACE,
// 3 MiB) in pages of 4 KiB, equal pages shared: most are all zero (exact
// rules) or all alike (a field every table of the family takes whole), so
// a family holds a few hundred KiB instead of 3 MiB. Reads as a vector;
// writes go through mut(), which copies a shared page first.
class SummaryMasks {
 public:
  static constexpr size_t kPage = 256;  // masks of 16 bytes
  bool empty() const { return pages_.empty(); }
  size_t size() const { return pages_.size() * kPage; }
  const xdpfw_tmask& operator[](size_t i) const { return (*pages_[i / kPage])[i % kPage]; }
  xdpfw_tmask& mut(size_t i);
  // n masks, all zero, in groups of `group` masks (a multiple of kPage)
  // that share no page with each other until share().
  void assign_zero(size_t n, size_t group);
  void clear() { pages_.clear(); }
  // ORs m into masks [first, first + n): each distinct page once, so
  // pages shared only inside the range stay shared.
  void or_range(size_t first, size_t n, const xdpfw_tmask& m);
  // Pages with equal contents become one.
  void share();
  // Distinct pages held, for tests and the docs' figures.
  size_t distinct_pages() const;

 private:
  using Page = std::array<xdpfw_tmask, kPage>;
  std::vector<std::shared_ptr<Page>> pages_;
};

struct CompiledRuleset {
  xdpfw_ruleset header{};    // generation 0
  BucketMap<xdpfw_key4> v4;  // keys carry slot 0
  BucketMap<xdpfw_key6> v6;
  CandidateMap cands;  // rules that can never win (duplicates) have none
  // Per match key: how many rules have it and the one placed (the best);
  // for keys with more than one, the others, best first (order and action),
  // to take its place.
  struct Match {
    uint32_t count = 0;
    uint32_t placed = 0;
    bool operator==(const Match&) const = default;
  };
  using Shadowed = std::vector<std::pair<uint64_t, uint8_t>>;
  FlatMap<MatchKey, Match, MatchKeyHash> matches;
  FlatMap<MatchKey, Shadowed, MatchKeyHash> shadowed;
  // Per family: XDPFW_SUMMARY_FIELDS x XDPFW_SUMMARY_SPACE masks, field-major;
  // empty when the family has no table (all zero), and in views.
  SummaryMasks summary[2];
  // The rule set's views of malformed packets, views[v - 1] for view v
  // (enum xdpfw_readable): every rule projected onto what such a packet
  // has (project_rule), compiled the same way, without summaries; its
  // buckets name rules by id like the set's own; a view has no candidate
  // records (cands) of its own: the set's serve it. Empty in a view.
  std::vector<CompiledRuleset> views;
};

// Rule r as view v (enum xdpfw_readable, 1 or 2) sees it: without its ports
// and ICMP type/code, and in view 2 without its protocol either. nullopt:
// not in the view (view 2 is IPv6's only; IPv4 always has its protocol).
std::optional<Rule> project_rule(const Rule& r, int view);

// The writes of an in-place change: buckets to write (nullopt: delete the
// key), summary entries (index field * XDPFW_SUMMARY_SPACE + value) whose
// mask gained bits, per family.
struct CompiledDelta {
  std::vector<std::pair<xdpfw_key4, std::optional<Bucket>>> v4;
  std::vector<std::pair<xdpfw_key6, std::optional<Bucket>>> v6;
  std::vector<uint32_t> summary[2];
  bool header = false;               // protocol or no-port masks gained bits
  std::vector<uint32_t> cands;       // rules whose records go first (new in a bucket)
  std::vector<CompiledDelta> views;  // the same change in each view (buckets, header)
};

// Adds one rule to c (and its views) in place, as a change every packet sees whole or not
// at all: into a bucket or chain link of a table that admits it where its
// place in the order has room, or as a new link at the end of a chain (the
// link written before the one that points to it); never as a table's new
// best rule (which could reorder the tables) or a duplicate. Returns
// nullopt, with c unchanged, when it does not fit: the caller then compiles
// the whole list. A rule whose match a better rule has already is only
// counted (an empty delta: it can never decide a packet); one better than
// the rule placed for its match takes that rule's place in its bucket. The
// rule must be valid, with id and priority.
std::optional<CompiledDelta> add_in_place(CompiledRuleset& c, const Rule& r);
// Removes one rule in place (one bucket write per family; a chain link may
// be left short or empty, never shifted; a placed rule with duplicates
// gives its place to the next of them, in the same write); a rule shadowed
// by a better one with the same match is only uncounted (an empty delta).
// Masks and a table's best order are left as they
// were: they only cost a probe.
std::optional<CompiledDelta> remove_in_place(CompiledRuleset& c, const Rule& r);

// Every placed rule is in exactly one bucket per family it applies to, at
// its own key of a table that admits it, buckets sorted and within their
// size, chains linked, tables sorted by a min_order no worse than their
// rules', masks covering every rule. Returns what is wrong, "" if nothing.
std::string check_invariants(const CompiledRuleset& c, const std::vector<Rule>& rules);

// Rules must carry ids (unique, non-zero) and priorities, and be valid:
// checked once where they were made (parse_rule, or validate_rule for a
// rule built in code), not again here. The checks that depend on the set
// (ids, sets resolved, limits) are the compiler's.
CompiledRuleset compile_rules(const std::vector<Rule>& rules, const Policy& policy,
                              const CompileLimits& limits = {});

struct LookupResult {
  uint64_t order = 0;  // priority << 32 | rule id
  Action action = Action::pass;
  uint32_t probes = 0;  // tables probed
  // Malformed packets: the rule's readable fields match, but it needs one
  // that could not be read (the malformed action decides).
  bool unreadable = false;
  uint32_t rule_id() const { return static_cast<uint32_t>(order); }
};

// The classifier of the XDP program, run in user space over a compiled rule
// set: same candidate masks, table order, early stop and bucket scan. Lets
// unit tests check the compiler against the reference without root. The
// result is empty when no rule matched; probes is set either way. A
// malformed packet (p.readable) is looked up in its view.
// Rate rules and audit rules as the program treats them, with `rates` as
// the buckets (none: never over the rate); audits: the audit rules that
// matched before the deciding rule, by id.
std::optional<LookupResult> lookup_compiled(const CompiledRuleset& c, const struct PacketFields& p,
                                            uint32_t* probes = nullptr, RateModel* rates = nullptr,
                                            std::vector<uint32_t>* audits = nullptr);

}  // namespace xdpfw
