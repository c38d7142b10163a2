// rule_compiler.cpp: rules -> TupleMerge tables, buckets, candidates and
// candidate masks (docs/DATAPATH.md, "Classifier").
#include "rule_compiler.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <functional>
#include <unordered_map>

#include "reference_classifier.hpp"
#include "rule_fields.hpp"

namespace xdpfw {

PackedBucket::PackedBucket(const Bucket& b) : more(b.more) {
  assign(b.ids, static_cast<uint8_t>(b.n));
}

PackedBucket::operator Bucket() const {
  Bucket b;
  b.n = n;
  b.more = more;
  std::copy(ids(), ids() + n, b.ids);
  return b;
}

void PackedBucket::assign(const uint32_t* ids, uint8_t count) {
  if (count > kInline) {
    auto* p = new uint32_t[count];
    std::copy(ids, ids + count, p);
    release();
    std::memcpy(w_, &p, sizeof p);
  } else {
    uint32_t tmp[kInline] = {};
    std::copy(ids, ids + count, tmp);
    release();
    std::memcpy(w_, tmp, sizeof w_);
  }
  n = count;
}

void PackedBucket::push_back(uint32_t id) {
  uint32_t all[XDPFW_BUCKET_SIZE];
  std::copy(ids(), ids() + n, all);
  all[n] = id;
  assign(all, static_cast<uint8_t>(n + 1));
}

namespace {

constexpr uint32_t kSpace = XDPFW_SUMMARY_SPACE;

// What a table hashes: two address prefix lengths, the protocol or not,
// and a prefix of each port (16: the exact port; a range lo-hi hashes the
// bits lo and hi share, so that rules of one port block share a key only
// with their block).
struct Tuple {
  uint8_t s = 0, d = 0;
  uint8_t flags = 0;  // enum xdpfw_table_flags; SPORT / DPORT set when sp / dp > 0
  uint8_t sp = 0, dp = 0;
  bool operator==(const Tuple&) const = default;
  // A rule of natural tuple n may sit in a table of tuple t.
  bool admits(const Tuple& n) const {
    return n.s >= s && n.d >= d && n.sp >= sp && n.dp >= dp && (flags & ~n.flags) == 0;
  }
};

uint16_t port_mask(uint8_t plen) {
  return plen == 0 ? 0 : static_cast<uint16_t>(0xffffu << (16 - plen));
}

std::string rule_name(const Rule& r) {
  return "rule " + std::to_string(r.id);
}

const char* family_name(int fam) {
  return fam == XDPFW_FAMILY_V4 ? "IPv4" : "IPv6";
}

void make_mask(uint8_t plen, uint32_t mask[4]) {
  for (int i = 0; i < 4; ++i) {
    int bits = std::clamp(int{plen} - 32 * i, 0, 32);
    uint32_t host = bits == 0 ? 0 : bits == 32 ? 0xffffffffu : ~(0xffffffffu >> bits);
    mask[i] = htonl(host);
  }
}

void masked(const std::array<uint8_t, 16>& a, const uint32_t mask[4], uint32_t* out, int words) {
  for (int i = 0; i < words; ++i) {
    uint32_t w;
    std::memcpy(&w, a.data() + 4 * i, 4);
    out[i] = w & mask[i];
  }
}

// The range a rule allows in a port field; nullopt: not constrained.
std::optional<PortRange> port_range(const Rule& r, bool dport) {
  const auto& ports = dport ? r.dport : r.sport;
  const auto& icmp = dport ? r.icmp_code : r.icmp_type;
  if (ports) return *ports;
  if (icmp) return PortRange{*icmp, *icmp};
  return std::nullopt;
}

// The bits every port of the rule's range shares (16: one port; 0: the
// range spans both halves of the port space, or no range).
uint8_t port_plen(const Rule& r, bool dport) {
  auto pr = port_range(r, dport);
  if (!pr) return 0;
  uint8_t n = 0;
  while (n < 16 && ((pr->lo ^ pr->hi) & (0x8000u >> n)) == 0) ++n;
  return n;
}

// The value a rule gives a hashed port field: its range's low end (masked
// by the table to the bits the range shares).
uint16_t port_key(const Rule& r, bool dport) {
  auto pr = port_range(r, dport);
  return pr ? pr->lo : 0;
}

Tuple with_port_flags(Tuple t) {
  t.flags &= ~(XDPFW_TABLE_SPORT | XDPFW_TABLE_DPORT);
  if (t.sp) t.flags |= XDPFW_TABLE_SPORT;
  if (t.dp) t.flags |= XDPFW_TABLE_DPORT;
  return t;
}

Tuple natural(const Rule& r) {
  Tuple t;
  t.s = r.src ? r.src->len : 0;
  t.d = r.dst ? r.dst->len : 0;
  if (r.proto) t.flags |= XDPFW_TABLE_PROTO;
  t.sp = port_plen(r, false);
  t.dp = port_plen(r, true);
  return with_port_flags(t);
}

// TupleMerge's relaxation (Daly et al.): a new table hashes a little less
// than the rule that opens it, so that rules of nearby shapes share it. IPv6
// lengths are taken relative to a /32 (sites are numbered below one), and
// coarser past the /64.
uint8_t round_down4(uint8_t l) {
  if (l == 32) return 28;
  if (l > 24) return l - 3;
  if (l > 16) return l - 2;
  if (l > 8) return l - 1;
  return l;
}
uint8_t round_down(uint8_t l, int fam) {
  if (fam == XDPFW_FAMILY_V4) return round_down4(l);
  if (l <= 32) return round_down4(l);
  if (l <= 64) return static_cast<uint8_t>(32 + round_down4(static_cast<uint8_t>(l - 32)));
  return static_cast<uint8_t>(64 + 2 * round_down4(static_cast<uint8_t>((l - 64) / 2)));
}
// Ports: an exact port stays exact (most port rules name one); a range's
// shared bits are rounded down to a multiple of 4.
uint8_t round_down_port(uint8_t l) {
  return l == 16 ? 16 : static_cast<uint8_t>(l & ~3u);
}
Tuple relaxed(Tuple t, int fam) {
  if (t.d > t.s + 4) {
    t.s = 0;
    t.sp = 0;
  } else if (t.s > t.d + 4) {
    t.d = 0;
    t.dp = 0;
  }
  t.s = round_down(t.s, fam);
  t.d = round_down(t.d, fam);
  t.sp = round_down_port(t.sp);
  t.dp = round_down_port(t.dp);
  return with_port_flags(t);
}

// A table's tuple as its header says it (port lengths from the masks the
// program uses).
Tuple table_tuple(const xdpfw_table& t) {
  return Tuple{t.src_plen, t.dst_plen, t.flags,
               static_cast<uint8_t>(__builtin_popcount(t.sport_mask)),
               static_cast<uint8_t>(__builtin_popcount(t.dport_mask))};
}

template <typename K>
void fill_key(K& k, uint8_t table, const Tuple& t, const uint32_t smask[4], const uint32_t dmask[4],
              const std::array<uint8_t, 16>& src, const std::array<uint8_t, 16>& dst, uint8_t proto,
              uint16_t sport, uint16_t dport) {
  constexpr int words = std::is_same_v<K, xdpfw_key4> ? 1 : 4;
  k = K{};
  k.table = table;
  k.proto = (t.flags & XDPFW_TABLE_PROTO) ? proto : 0;
  k.sport = sport & port_mask(t.sp);
  k.dport = dport & port_mask(t.dp);
  if constexpr (words == 1) {
    masked(src, smask, &k.src, 1);
    masked(dst, dmask, &k.dst, 1);
  } else {
    masked(src, smask, k.src, 4);
    masked(dst, dmask, k.dst, 4);
  }
}

void set_bit(xdpfw_tmask& m, uint32_t bit) {
  m.w[bit / 64] |= 1ull << (bit % 64);
}

// The summary value range of an address prefix: IPv4 bits 0-15, IPv6 bits
// 32-47. nullopt: every value.
std::optional<std::pair<uint32_t, uint32_t>> summary_range(const std::optional<Prefix>& p,
                                                           int fam) {
  if (!p) return std::nullopt;
  int first = fam == XDPFW_FAMILY_V4 ? 0 : 32;  // first bit of the window
  int fixed = std::clamp(int{p->len} - first, 0, 16);
  if (fixed == 0) return std::nullopt;
  uint32_t v = (uint32_t{p->addr[first / 8]} << 8) | p->addr[first / 8 + 1];
  uint32_t span = 1u << (16 - fixed);
  v &= ~(span - 1);
  return std::make_pair(v, v + span - 1);
}

// One family's TupleMerge structure while it is built.
template <typename K>
class FamilyBuilder {
 public:
  FamilyBuilder(int fam, const CompileLimits& limits) : fam_(fam), limits_(limits) {}

  // Rules arrive best (priority, id) first.
  void insert(const Rule& r) {
    Tuple nat = natural(r);
    for (size_t i = 0; i < tables_.size(); ++i) {
      if (!tables_[i].tuple.admits(nat)) continue;
      K k = key_of(i, r);
      auto it = counts_.find(k);
      if (it != counts_.end() && it->second >= XDPFW_BUCKET_SIZE) continue;
      add(i, k, r);
      return;
    }
    // Every table that admits the rule has a full bucket for it: open a
    // table with the relaxed tuple, or else the rule's own one (its keys are
    // more specific). Where both exist (rules that agree on every hashed
    // bit) or no table may be added, the bucket of the most specific table
    // that admits the rule grows a chain.
    Tuple t = relaxed(nat, fam_);
    auto find = [&](const Tuple& x) -> std::optional<size_t> {
      for (size_t i = 0; i < tables_.size(); ++i)
        if (tables_[i].tuple == x) return i;
      return std::nullopt;
    };
    if (find(t)) t = nat;
    std::optional<size_t> chain_to = find(t);
    if (!chain_to && tables_.size() >= limits_.max_tables) {
      int best = -1;
      for (size_t i = 0; i < tables_.size(); ++i) {
        const Tuple& x = tables_[i].tuple;
        int score = x.s + x.d + 8 * __builtin_popcount(x.flags);
        if (x.admits(nat) && score > best) best = score, chain_to = i;
      }
      if (!chain_to)
        throw CompileError(rule_name(r) + ": needs a new " + std::string(family_name(fam_)) +
                           " table beyond the limit of " + std::to_string(limits_.max_tables) +
                           " tables per family");
    }
    if (chain_to) {
      add(*chain_to, key_of(*chain_to, r), r);
      return;
    }
    Table tb;
    tb.tuple = t;
    make_mask(t.s, tb.smask);
    make_mask(t.d, tb.dmask);
    tables_.push_back(tb);
    size_t i = tables_.size() - 1;
    add(i, key_of(i, r), r);
  }

  // Tables sorted by their best rule, keys renumbered to match; header,
  // buckets and summaries written.
  void finish(xdpfw_ruleset& hdr, BucketMap<K>& out, SummaryMasks& summary, bool summaries) {
    size_t n = tables_.size();
    hdr.ntables[fam_] = static_cast<uint32_t>(n);
    if (n == 0) return;
    std::vector<uint32_t> order(n), rank(n);
    for (size_t i = 0; i < n; ++i) order[i] = static_cast<uint32_t>(i);
    std::sort(order.begin(), order.end(),
              [&](uint32_t a, uint32_t b) { return tables_[a].min_order < tables_[b].min_order; });
    for (size_t i = 0; i < n; ++i) rank[order[i]] = static_cast<uint32_t>(i);
    for (size_t i = 0; i < n; ++i) {
      const Table& tb = tables_[order[i]];
      xdpfw_table& t = hdr.tables[fam_][i];
      std::memcpy(t.src_mask, tb.smask, sizeof t.src_mask);
      std::memcpy(t.dst_mask, tb.dmask, sizeof t.dst_mask);
      t.min_order = tb.min_order;
      t.flags = tb.tuple.flags;
      t.src_plen = tb.tuple.s;
      t.dst_plen = tb.tuple.d;
      t.proto_mask = (t.flags & XDPFW_TABLE_PROTO) ? 0xff : 0;
      t.sport_mask = port_mask(tb.tuple.sp);
      t.dport_mask = port_mask(tb.tuple.dp);
    }
    // Renumbered where they lie: no second copy of the buckets.
    counts_.clear();
    counts_.shrink_to_fit();
    auto entries = buckets_.release();
    for (auto& [k, b] : entries) k.table = static_cast<uint8_t>(rank[k.table]);
    out = BucketMap<K>::from_unique(std::move(entries));

    // Candidate masks. Per table and field: every value, or the union of
    // its rules' ranges.
    if (summaries) summary.assign_zero(XDPFW_SUMMARY_FIELDS * kSpace, kSpace);
    xdpfw_tmask every[XDPFW_SUMMARY_FIELDS] = {};
    bool narrows[XDPFW_SUMMARY_FIELDS] = {};
    std::vector<std::pair<uint32_t, uint32_t>> ranges;
    for (size_t i = 0; i < n; ++i) {
      const Table& tb = tables_[order[i]];
      uint32_t bit = static_cast<uint32_t>(i);
      bool all_proto = false, all[XDPFW_SUMMARY_FIELDS] = {};
      for (const Rule* r : tb.rules) {
        if (!r->proto)
          all_proto = true;
        else
          set_bit(hdr.proto[fam_][*r->proto], bit);
        if (!(r->sport || r->dport || r->icmp_type || r->icmp_code)) set_bit(hdr.noport[fam_], bit);
        if (!port_range(*r, true)) all[XDPFW_SUMMARY_DPORT] = true;
        if (!summary_range(r->src, fam_)) all[XDPFW_SUMMARY_SRC] = true;
        if (!summary_range(r->dst, fam_)) all[XDPFW_SUMMARY_DST] = true;
      }
      if (all_proto)
        for (auto& m : hdr.proto[fam_]) set_bit(m, bit);
      if (!summaries) continue;
      for (int f = 0; f < XDPFW_SUMMARY_FIELDS; ++f) {
        if (all[f]) {
          set_bit(every[f], bit);
          continue;
        }
        narrows[f] = true;
        ranges.clear();
        for (const Rule* r : tb.rules) {
          if (f == XDPFW_SUMMARY_DPORT) {
            auto pr = *port_range(*r, true);
            ranges.emplace_back(pr.lo, pr.hi);
          } else {
            ranges.push_back(*summary_range(f == XDPFW_SUMMARY_SRC ? r->src : r->dst, fam_));
          }
        }
        std::sort(ranges.begin(), ranges.end());
        uint32_t next = 0;  // values below are set already
        for (auto [lo, hi] : ranges)
          for (uint32_t v = std::max(lo, next); v <= hi; ++v)
            set_bit(summary.mut(f * kSpace + v), bit), next = v + 1;
      }
    }
    for (int f = 0; f < XDPFW_SUMMARY_FIELDS && summaries; ++f) {
      summary.or_range(f * kSpace, kSpace, every[f]);
      // With one table, a probe costs less than reading the masks.
      if (narrows[f] && n > 1) hdr.summaries[fam_] |= static_cast<uint8_t>(1u << f);
    }
    if (summaries) summary.share();
  }

  size_t buckets() const { return buckets_.size(); }

 private:
  struct Table {
    Tuple tuple;
    uint32_t smask[4] = {}, dmask[4] = {};
    uint64_t min_order = ~0ull;
    std::vector<const Rule*> rules;
  };

  K key_of(size_t table, const Rule& r) const {
    static const std::array<uint8_t, 16> zero{};
    const Table& tb = tables_[table];
    K k;
    fill_key(k, static_cast<uint8_t>(table), tb.tuple, tb.smask, tb.dmask,
             r.src ? r.src->addr : zero, r.dst ? r.dst->addr : zero, r.proto.value_or(0),
             port_key(r, false), port_key(r, true));
    return k;
  }

  // Appends r to the chain under k (chain 0); rules arrive best first, so
  // the chain stays sorted.
  void add(size_t table, const K& k, const Rule& r) {
    uint32_t& count = counts_[k];
    uint32_t link = count / XDPFW_BUCKET_SIZE;
    if (link >= XDPFW_MAX_CHAIN)
      throw CompileError(rule_name(r) + ": more than " +
                         std::to_string(XDPFW_MAX_CHAIN * XDPFW_BUCKET_SIZE) +
                         " rules agree on the addresses, protocol and port bits that one " +
                         family_name(fam_) + " table hashes (limit of a bucket chain)");
    ++count;
    K key = k;
    key.chain = static_cast<uint8_t>(link);
    if (link > 0) {
      K prev = k;
      prev.chain = static_cast<uint8_t>(link - 1);
      buckets_[prev].more = true;
    }
    buckets_[key].push_back(r.id);
    Table& tb = tables_[table];
    tb.min_order = std::min(tb.min_order, r.order());
    tb.rules.push_back(&r);
    if (buckets_.size() > limits_.max_buckets_per_family)
      throw CompileError(rule_name(r) + ": the rule set needs more than " +
                         std::to_string(limits_.max_buckets_per_family) + " " + family_name(fam_) +
                         " hash buckets (the map size set at load)");
  }

  int fam_;
  const CompileLimits& limits_;
  std::vector<Table> tables_;                          // in creation order; key.table = index here
  BucketMap<K> buckets_;                               // every link of every chain
  FlatMap<K, uint32_t, KeyHash<K>, KeyEq<K>> counts_;  // chain 0 key -> rules
};

xdpfw_cand make_cand(const Rule& r) {
  xdpfw_cand c{};
  c.order = r.order();
  static const std::array<uint8_t, 16> zero{};
  uint8_t slen = r.src ? r.src->len : 0, dlen = r.dst ? r.dst->len : 0;
  make_mask(slen, c.src_mask);
  make_mask(dlen, c.dst_mask);
  masked(r.src ? r.src->addr : zero, c.src_mask, c.src, 4);
  masked(r.dst ? r.dst->addr : zero, c.dst_mask, c.dst, 4);
  if (r.proto) {
    c.flags |= XDPFW_CAND_PROTO;
    c.proto = *r.proto;
  }
  c.sport_hi = c.dport_hi = 65535;
  if (r.needs_l4()) c.flags |= XDPFW_CAND_L4;
  if (auto s = port_range(r, false)) c.sport_lo = s->lo, c.sport_hi = s->hi;
  if (auto d = port_range(r, true)) c.dport_lo = d->lo, c.dport_hi = d->hi;
  if (r.tcp_flags) {
    c.flags |= XDPFW_CAND_TCP_FLAGS;
    c.tcp_set = r.tcp_flags->set;
    c.tcp_mask = r.tcp_flags->mask;
  }
  if (r.ct) {
    c.flags |= XDPFW_CAND_CT;
    c.ct = *r.ct;
  }
  if (r.rate) {
    c.flags |= XDPFW_CAND_RATE;
    c.rate_cost_ns = r.rate->cost_ns();
    c.rate_burst_ns = c.rate_cost_ns * r.burst_packets();
    c.rate_plen = r.per.value_or(0);
  }
  if (r.log) c.flags |= XDPFW_CAND_LOG;
  if (r.src_set || r.dst_set) {
    c.flags |= XDPFW_CAND_SET;
    if (r.src_set) {
      c.set_src = r.src_set->id;
      if (r.src_set->negate) c.flags |= XDPFW_CAND_SET_NEG_SRC;
    }
    if (r.dst_set) {
      c.set_dst = r.dst_set->id;
      if (r.dst_set->negate) c.flags |= XDPFW_CAND_SET_NEG_DST;
    }
  }
  c.action = static_cast<uint8_t>(*r.action);
  return c;
}

// Rules sorted best first, validated. A view has no summaries and no
// candidate records of its own (the set's serve it).
CompiledRuleset compile_sorted(const std::vector<const Rule*>& rules, const Policy& policy,
                               const CompileLimits& limits, bool view) {
  CompiledRuleset out;
  out.header.default_action = static_cast<uint8_t>(policy.default_action);
  out.header.malformed_action = static_cast<uint8_t>(policy.malformed_action);
  out.header.mapped_action = static_cast<uint8_t>(policy.mapped_ipv6);

  // A rule whose match fields equal a better rule's can never decide a
  // packet: it gets no place in the tables (it keeps its id and counters).
  std::vector<const Rule*> placed;
  placed.reserve(rules.size());
  out.matches.reserve(rules.size() + rules.size() / 8 + 16);  // as cands, below
  for (const Rule* r : rules) {
    MatchKey mk = match_key(*r);
    if (auto& m = out.matches[mk]; ++m.count == 1) {
      m.placed = r->id;
      placed.push_back(r);
    } else {
      out.shadowed[mk].emplace_back(r->order(),
                                    static_cast<uint8_t>(r->action.value_or(Action::drop)));
    }
  }
  FamilyBuilder<xdpfw_key4> v4(XDPFW_FAMILY_V4, limits);
  FamilyBuilder<xdpfw_key6> v6(XDPFW_FAMILY_V6, limits);
  for (const Rule* r : placed) {
    auto fam = r->family();
    if (!fam || *fam == Family::v4) v4.insert(*r);
    if (!fam || *fam == Family::v6) v6.insert(*r);
  }
  v4.finish(out.header, out.v4, out.summary[XDPFW_FAMILY_V4], !view);
  v6.finish(out.header, out.v6, out.summary[XDPFW_FAMILY_V6], !view);
  for (const Rule* r : placed) {
    if (r->stateful()) out.header.conditioned = 1;
    if (r->ct) {
      auto fam = r->family();
      if (!fam || *fam == Family::v4) out.header.ct[XDPFW_FAMILY_V4] = 1;
      if (!fam || *fam == Family::v6) out.header.ct[XDPFW_FAMILY_V6] = 1;
    }
  }
  if (view) return out;

  // Room for the rules added in place after this compile: the first of them
  // does not copy every record (capacity not written to is no RSS).
  out.cands.reserve(placed.size() + placed.size() / 8 + 16);
  for (const Rule* r : placed) out.cands.emplace(r->id, make_cand(*r));
  return out;
}

}  // namespace

// ---- CandidateMap: records packed ----

bool CandidateMap::emplace(uint32_t id, const xdpfw_cand& c) {
  if (entries_.contains(id)) return false;
  Packed p{};
  auto prefix_len = [](const uint32_t mask[4]) {
    int len = 0;
    for (int i = 0; i < 4; ++i) len += __builtin_popcount(mask[i]);
    uint32_t want[4];
    make_mask(static_cast<uint8_t>(len), want);
    if (std::memcmp(want, mask, sizeof want) != 0)
      throw std::logic_error("candidate record with a mask that is not a prefix");
    return static_cast<uint8_t>(len);
  };
  if (c.counter != 0) throw std::logic_error("candidate record with a counter index");
  p.order[0] = static_cast<uint32_t>(c.order);
  p.order[1] = static_cast<uint32_t>(c.order >> 32);
  std::memcpy(p.src, c.src, sizeof p.src);
  std::memcpy(p.dst, c.dst, sizeof p.dst);
  p.src_len = prefix_len(c.src_mask);
  p.dst_len = prefix_len(c.dst_mask);
  p.sport_lo = c.sport_lo, p.sport_hi = c.sport_hi;
  p.dport_lo = c.dport_lo, p.dport_hi = c.dport_hi;
  p.flags = c.flags, p.set_src = c.set_src, p.set_dst = c.set_dst;
  p.proto = c.proto, p.action = c.action, p.tcp_set = c.tcp_set, p.tcp_mask = c.tcp_mask;
  p.ct = c.ct, p.rate_plen = c.rate_plen;
  if (c.rate_cost_ns || c.rate_burst_ns) rates_.emplace(id, Rate{c.rate_cost_ns, c.rate_burst_ns});
  entries_.emplace(id, p);
  return true;
}

xdpfw_cand CandidateMap::unpack(uint32_t id, const Packed& p) const {
  xdpfw_cand c{};
  c.order = (uint64_t{p.order[1]} << 32) | p.order[0];
  std::memcpy(c.src, p.src, sizeof c.src);
  std::memcpy(c.dst, p.dst, sizeof c.dst);
  make_mask(p.src_len, c.src_mask);
  make_mask(p.dst_len, c.dst_mask);
  c.sport_lo = p.sport_lo, c.sport_hi = p.sport_hi;
  c.dport_lo = p.dport_lo, c.dport_hi = p.dport_hi;
  c.flags = p.flags, c.set_src = p.set_src, c.set_dst = p.set_dst;
  c.proto = p.proto, c.action = p.action, c.tcp_set = p.tcp_set, c.tcp_mask = p.tcp_mask;
  c.ct = p.ct, c.rate_plen = p.rate_plen;
  if (!rates_.empty())
    if (auto r = rates_.find(id); r != rates_.end()) {
      c.rate_cost_ns = r->second.cost_ns;
      c.rate_burst_ns = r->second.burst_ns;
    }
  return c;
}

// ---- SummaryMasks: pages shared ----

xdpfw_tmask& SummaryMasks::mut(size_t i) {
  std::shared_ptr<Page>& p = pages_[i / kPage];
  if (p.use_count() > 1) p = std::make_shared<Page>(*p);
  return (*p)[i % kPage];
}

void SummaryMasks::assign_zero(size_t n, size_t group) {
  pages_.clear();
  pages_.reserve(n / kPage);
  std::shared_ptr<Page> zero;
  for (size_t i = 0; i < n / kPage; ++i) {
    if (i % (group / kPage) == 0) zero = std::make_shared<Page>();
    pages_.push_back(zero);
  }
}

void SummaryMasks::or_range(size_t first, size_t n, const xdpfw_tmask& m) {
  bool any = false;
  for (uint64_t w : m.w) any |= w != 0;
  if (!any) return;
  const size_t lo = first / kPage, hi = (first + n) / kPage;
  // Each distinct page of the range once; one shared outside the range too
  // (another field, a copy of this object) is copied first.
  std::vector<std::pair<Page*, std::shared_ptr<Page>>> done;  // was, is
  for (size_t p = lo; p < hi; ++p) {
    Page* page = pages_[p].get();
    auto it =
        std::find_if(done.begin(), done.end(), [&](const auto& d) { return d.first == page; });
    if (it != done.end()) {
      pages_[p] = it->second;
      continue;
    }
    long inside = std::count_if(pages_.begin() + static_cast<long>(lo),
                                pages_.begin() + static_cast<long>(hi),
                                [&](const auto& q) { return q.get() == page; });
    std::shared_ptr<Page> now =
        pages_[p].use_count() > inside ? std::make_shared<Page>(*page) : pages_[p];
    for (xdpfw_tmask& t : *now)
      for (int w = 0; w < XDPFW_MASK_WORDS; ++w) t.w[w] |= m.w[w];
    done.emplace_back(page, now);
    pages_[p] = now;
  }
}

void SummaryMasks::share() {
  std::vector<std::shared_ptr<Page>*> seen;          // distinct pages so far
  FlatMap<uint64_t, std::vector<uint32_t>> by_hash;  // content hash -> indexes into seen
  for (auto& p : pages_) {
    uint64_t h = std::hash<std::string_view>{}(
        std::string_view(reinterpret_cast<const char*>(p->data()), sizeof(Page)));
    auto& same = by_hash[h];
    bool found = false;
    for (uint32_t s : same)
      if (seen[s]->get() == p.get() || std::memcmp(seen[s]->get(), p.get(), sizeof(Page)) == 0) {
        p = *seen[s];
        found = true;
        break;
      }
    if (!found) {
      same.push_back(static_cast<uint32_t>(seen.size()));
      seen.push_back(&p);
    }
  }
}

size_t SummaryMasks::distinct_pages() const {
  std::vector<const Page*> all;
  for (const auto& p : pages_) all.push_back(p.get());
  std::sort(all.begin(), all.end());
  return static_cast<size_t>(std::unique(all.begin(), all.end()) - all.begin());
}

CompiledRuleset compile_rules(const std::vector<Rule>& input, const Policy& policy,
                              const CompileLimits& limits) {
  if (input.size() > limits.max_rules)
    throw CompileError(std::to_string(input.size()) + " rules exceed the limit of " +
                       std::to_string(limits.max_rules) + " rules");
  if (!limits.no_ct.empty())
    for (const Rule& r : input)
      if (r.ct) throw CompileError(rule_name(r) + ": ct: " + limits.no_ct);
  for (const Rule& r : input)
    for (const auto* ref : {&r.src_set, &r.dst_set})
      if (*ref && !(*ref)->id)
        throw CompileError(rule_name(r) + ": " + (ref == &r.src_set ? "src" : "dst") +
                           ": no set '" + (*ref)->name +
                           "' (set create NAME, or 'set = NAME' in the config)");
  if (limits.max_tables > XDPFW_MAX_TABLES)
    throw CompileError("at most " + std::to_string(XDPFW_MAX_TABLES) + " tables per family");
  std::vector<const Rule*> rules;
  rules.reserve(input.size());
  {
    std::vector<uint32_t> ids;  // sorted: no hash set of 100,000 nodes
    ids.reserve(input.size());
    for (const Rule& r : input) {
      if (r.id == 0) throw CompileError("a rule has no id");
      if (!r.priority) throw CompileError(rule_name(r) + ": no priority");
      ids.push_back(r.id);
      rules.push_back(&r);
    }
    std::sort(ids.begin(), ids.end());
    if (auto twice = std::adjacent_find(ids.begin(), ids.end()); twice != ids.end())
      throw CompileError("rule " + std::to_string(*twice) + ": id used twice");
  }
  // The store keeps its list in this order: sorted here only when it is not.
  auto by_order = [](const Rule* a, const Rule* b) { return a->order() < b->order(); };
  if (!std::is_sorted(rules.begin(), rules.end(), by_order))
    std::sort(rules.begin(), rules.end(), by_order);

  CompiledRuleset out = compile_sorted(rules, policy, limits, false);
  // The views of malformed packets, from the same order.
  for (int v = XDPFW_READ_NO_L4; v <= XDPFW_READ_NO_PROTO; ++v) {
    std::vector<Rule> seen;
    seen.reserve(rules.size());
    for (const Rule* r : rules)
      if (auto p = project_rule(*r, v)) seen.push_back(std::move(*p));
    std::vector<const Rule*> order;
    order.reserve(seen.size());
    for (const Rule& r : seen) order.push_back(&r);
    out.views.push_back(compile_sorted(order, policy, limits, true));
  }
  // One map holds the buckets of the set and of its views.
  size_t n4 = out.v4.size(), n6 = out.v6.size();
  for (const CompiledRuleset& v : out.views) n4 += v.v4.size(), n6 += v.v6.size();
  if (std::max(n4, n6) > limits.max_buckets_per_family)
    throw CompileError("the rule set needs more than " +
                       std::to_string(limits.max_buckets_per_family) + " " +
                       family_name(n4 > n6 ? XDPFW_FAMILY_V4 : XDPFW_FAMILY_V6) +
                       " hash buckets with its views of malformed packets (the map size set at "
                       "load)");
  return out;
}

std::optional<Rule> project_rule(const Rule& r, int view) {
  if (view == XDPFW_READ_NO_PROTO && r.family() == Family::v4) return std::nullopt;
  Rule p = r;
  p.sport.reset();
  p.dport.reset();
  p.icmp_type.reset();
  p.icmp_code.reset();
  p.tcp_flags.reset();
  if (view == XDPFW_READ_NO_PROTO) p.proto.reset();
  return p;
}

namespace {

// As the program's cand_matches: 1 a match, 2 a match on what a malformed
// packet has but the rule needs more, 0 no match.
int cand_matches(const xdpfw_cand& c, const PacketFields& p) {
  for (int i = 0; i < 4; ++i) {
    uint32_t s, d;
    std::memcpy(&s, p.src.data() + 4 * i, 4);
    std::memcpy(&d, p.dst.data() + 4 * i, 4);
    if (((s ^ c.src[i]) & c.src_mask[i]) || ((d ^ c.dst[i]) & c.dst_mask[i])) return 0;
  }
  int found = 1;
  if (c.flags & XDPFW_CAND_PROTO) {
    if (p.readable == Readable::no_proto)
      found = 2;
    else if (p.proto != c.proto)
      return 0;
  }
  if (c.flags & XDPFW_CAND_L4) {
    if (p.readable != Readable::all) return 2;
    if (!p.has_l4) return 0;
    if (p.sport < c.sport_lo || p.sport > c.sport_hi) return 0;
    if (p.dport < c.dport_lo || p.dport > c.dport_hi) return 0;
  }
  if ((c.flags & XDPFW_CAND_TCP_FLAGS) && (p.tcp_flags & c.tcp_mask) != c.tcp_set) return 0;
  return found;
}

// A rule that matched without deciding, as the program keeps it.
struct Pending {
  uint64_t order;
  uint8_t rate_plen;  // a copy: the records are unpacked into temporaries
  bool token;         // else an audit match
};

}  // namespace

std::optional<LookupResult> lookup_compiled(const CompiledRuleset& set, const PacketFields& p,
                                            uint32_t* probes_out, RateModel* rates,
                                            std::vector<uint32_t>* audits) {
  if (probes_out) *probes_out = 0;
  if (audits) audits->clear();
  if (p.readable == Readable::nothing) return std::nullopt;
  const bool blind = p.readable != Readable::all;
  if (blind && set.views.size() < static_cast<size_t>(p.readable)) return std::nullopt;
  // A malformed packet: the tables and buckets of its view, the records of
  // the set.
  const CompiledRuleset& c = blind ? set.views[static_cast<size_t>(p.readable) - 1] : set;
  int fam = static_cast<int>(p.family);
  const xdpfw_ruleset& h = c.header;
  std::optional<LookupResult> best;
  std::vector<Pending> pending;
  uint32_t probes = 0;
  // The program's conditions on a candidate matched on its fields: true
  // when it decides.
  auto decides = [&](const xdpfw_cand& r, int found) {
    if ((r.flags & XDPFW_CAND_SET) && !sets_hold(r.set_src, r.flags & XDPFW_CAND_SET_NEG_SRC,
                                                 r.set_dst, r.flags & XDPFW_CAND_SET_NEG_DST, p))
      return false;
    if (found == 2) return r.action != XDPFW_ACTION_AUDIT;
    if ((r.flags & XDPFW_CAND_CT) && !(r.ct & p.ct)) return false;
    if (r.flags & XDPFW_CAND_RATE) {
      uint32_t id = static_cast<uint32_t>(r.order);
      if (!rates || !rates->over(id, r.rate_burst_ns / r.rate_cost_ns, r.rate_plen, p)) {
        pending.push_back({r.order, r.rate_plen, true});
        return false;
      }
    }
    if (r.action == XDPFW_ACTION_AUDIT) {
      pending.push_back({r.order, r.rate_plen, false});
      return false;
    }
    return true;
  };
  if (h.ntables[fam]) {
    xdpfw_tmask m = h.proto[fam][p.proto];
    auto narrow = [&](const xdpfw_tmask& t) {
      for (int w = 0; w < XDPFW_MASK_WORDS; ++w) m.w[w] &= t.w[w];
    };
    uint8_t use = h.summaries[fam];
    const auto& sum = c.summary[fam];
    auto top16 = [&](const std::array<uint8_t, 16>& a) {
      int at = fam == XDPFW_FAMILY_V4 ? 0 : 4;
      return (uint32_t{a[at]} << 8) | a[at + 1];
    };
    if (!p.has_l4 || blind)
      narrow(h.noport[fam]);
    else if (use & (1u << XDPFW_SUMMARY_DPORT))
      narrow(sum[XDPFW_SUMMARY_DPORT * kSpace + p.dport]);
    if (use & (1u << XDPFW_SUMMARY_SRC)) narrow(sum[XDPFW_SUMMARY_SRC * kSpace + top16(p.src)]);
    if (use & (1u << XDPFW_SUMMARY_DST)) narrow(sum[XDPFW_SUMMARY_DST * kSpace + top16(p.dst)]);

    for (uint32_t i = 0; i < XDPFW_MAX_TABLES; ++i) {
      if (!(m.w[i / 64] >> (i % 64) & 1)) continue;
      const xdpfw_table& t = h.tables[fam][i];
      if (best && best->order <= t.min_order) break;
      ++probes;
      Tuple tu = table_tuple(t);
      auto find_in = [&](const auto& map, auto k, uint8_t chain) -> const PackedBucket* {
        fill_key(k, static_cast<uint8_t>(i), tu, t.src_mask, t.dst_mask, p.src, p.dst, p.proto,
                 blind ? 0 : p.sport, blind ? 0 : p.dport);
        k.chain = chain;
        auto it = map.find(k);
        return it == map.end() ? nullptr : &it->second;
      };
      auto find_bucket = [&](uint8_t chain) {
        return fam == XDPFW_FAMILY_V4 ? find_in(c.v4, xdpfw_key4{}, chain)
                                      : find_in(c.v6, xdpfw_key6{}, chain);
      };
      bool done = false;
      for (uint32_t link = 0; link < XDPFW_MAX_CHAIN && !done; ++link) {
        const PackedBucket* b = find_bucket(static_cast<uint8_t>(link));
        if (!b) break;
        for (uint32_t j = 0; j < b->n && !done; ++j) {
          auto it = set.cands.find(b->ids()[j]);
          if (it == set.cands.end() || (best && it->second.order >= best->order)) {
            done = true;
          } else if (int found = cand_matches(it->second, p); found && decides(it->second, found)) {
            best = LookupResult{it->second.order, static_cast<Action>(it->second.action), 0,
                                found == 2};
            done = true;
          }
        }
        if (!b->more) break;
      }
    }
  }
  std::sort(pending.begin(), pending.end(),
            [](const Pending& a, const Pending& b) { return a.order < b.order; });
  for (const Pending& q : pending) {
    if (best && q.order >= best->order) continue;
    uint32_t id = static_cast<uint32_t>(q.order);
    if (q.token && rates)
      rates->take(id, q.rate_plen, p);
    else if (!q.token && audits)
      audits->push_back(id);
  }
  if (probes_out) *probes_out = probes;
  if (best) best->probes = probes;
  return best;
}

// Every field of the grammar (rule_fields.hpp) is either in match_key or
// decided elsewhere (action, log, ct, rate, burst, per: the candidate
// record; prio and id: the order). A field added there stops the build
// here until it is placed (docs/ARCHITECTURE.md, "Adding a rule field").
#define XDPFW_COUNT_FIELD(ident, name, value, words) +1
static_assert(0 XDPFW_RULE_FIELDS(XDPFW_COUNT_FIELD) == 16,
              "a rule field was added or removed: place it in match_key and project_rule, "
              "then count it here");
#undef XDPFW_COUNT_FIELD

MatchKey match_key(const Rule& r) {
  MatchKey k{};
  size_t at = 0;
  auto put = [&](const void* p, size_t n) {
    if (at + n > k.size())
      throw std::logic_error("match_key: the layout and match_key_bytes differ");
    std::memcpy(k.data() + at, p, n);
    at += n;
  };
  for (const auto* p : {&r.src, &r.dst}) {
    uint8_t present = p->has_value(), len = present ? (*p)->len : 0,
            fam = present ? static_cast<uint8_t>((*p)->family) : 0;
    put(&present, 1);
    put(&fam, 1);
    put(&len, 1);
    if (present)
      put((*p)->addr.data(), 16);
    else
      at += 16;
  }
  uint8_t flags = (r.proto ? 1 : 0) | (r.sport ? 2 : 0) | (r.dport ? 4 : 0) |
                  (r.icmp_type ? 8 : 0) | (r.icmp_code ? 16 : 0) | (r.tcp_flags ? 32 : 0);
  uint8_t proto = r.proto.value_or(0), it = r.icmp_type.value_or(0), ic = r.icmp_code.value_or(0);
  PortRange sp = r.sport.value_or(PortRange{}), dp = r.dport.value_or(PortRange{});
  put(&flags, 1);
  put(&proto, 1);
  put(&it, 1);
  put(&ic, 1);
  put(&sp.lo, 2);
  put(&sp.hi, 2);
  put(&dp.lo, 2);
  put(&dp.hi, 2);
  TcpFlags tf = r.tcp_flags.value_or(TcpFlags{});
  put(&tf.set, 1);
  put(&tf.mask, 1);
  // A rule that may match without deciding (ct, rate, audit) is never a
  // duplicate, nor hides one: its own id makes its key unique.
  uint32_t own = r.conditioned() ? r.id : 0;
  put(&own, 4);
  if (at != k.size()) throw std::logic_error("match_key: the layout and match_key_bytes differ");
  return k;
}

namespace {

template <typename K>
K rule_key(const xdpfw_table& t, uint32_t i, const Rule& r) {
  static const std::array<uint8_t, 16> zero{};
  K k;
  fill_key(k, static_cast<uint8_t>(i), table_tuple(t), t.src_mask, t.dst_mask,
           r.src ? r.src->addr : zero, r.dst ? r.dst->addr : zero, r.proto.value_or(0),
           port_key(r, false), port_key(r, true));
  return k;
}

// The value range of a rule in summary field f (every value when it does
// not constrain it).
std::pair<uint32_t, uint32_t> field_range(const Rule& r, int fam, int f) {
  if (f == XDPFW_SUMMARY_DPORT) {
    auto pr = port_range(r, true);
    return pr ? std::make_pair(uint32_t{pr->lo}, uint32_t{pr->hi}) : std::make_pair(0u, 65535u);
  }
  auto sr = summary_range(f == XDPFW_SUMMARY_SRC ? r.src : r.dst, fam);
  return sr ? *sr : std::make_pair(0u, 65535u);
}

bool has_bit(const xdpfw_tmask& m, uint32_t bit) {
  return (m.w[bit / 64] >> (bit % 64)) & 1;
}

bool needs_l4(const Rule& r) {
  return r.sport || r.dport || r.icmp_type || r.icmp_code;
}

// The family member of a compiled set or a delta (anything with v4 and v6)
// that holds keys of type K.
template <typename K, typename Set>  // Set: CompiledRuleset or CompiledDelta, const or not
auto& of_family(Set& c) {
  if constexpr (std::is_same_v<K, xdpfw_key4>)
    return c.v4;
  else
    return c.v6;
}

// The links of the chain under k (chain 0 first), as far as they go.
template <typename K>
std::vector<std::pair<K, const PackedBucket*>> chain_of(const BucketMap<K>& buckets, K k) {
  std::vector<std::pair<K, const PackedBucket*>> links;
  for (uint32_t link = 0; link < XDPFW_MAX_CHAIN; ++link) {
    k.chain = static_cast<uint8_t>(link);
    auto it = buckets.find(k);
    if (it == buckets.end()) break;
    links.emplace_back(k, &it->second);
    if (!it->second.more) break;
  }
  return links;
}

// Where a rule goes in a chain, as one or two bucket writes every packet
// sees whole: into the link that holds its place in the order when it has
// room, or at the end of the link before; past the end, into a new link
// written before the link that points to it. Empty: not in place (a full
// link would have to shift).
template <typename K>
std::vector<std::pair<K, Bucket>> plan_chain_insert(
    const CandidateMap& recs, const std::vector<std::pair<K, const PackedBucket*>>& links,
    const Rule& r, bool new_link) {
  auto order = [&](uint32_t id) { return recs.order(id); };
  auto with = [&](const PackedBucket& b) {
    Bucket nb = b;
    uint32_t at = nb.n;
    while (at > 0 && order(nb.ids[at - 1]) > r.order()) --at;
    std::copy_backward(nb.ids + at, nb.ids + nb.n, nb.ids + nb.n + 1);
    nb.ids[at] = r.id;
    ++nb.n;
    return nb;
  };
  size_t j = 0;  // the first link with a rule after r
  while (j < links.size() &&
         !std::any_of(links[j].second->ids(), links[j].second->ids() + links[j].second->n,
                      [&](uint32_t id) { return order(id) > r.order(); }))
    ++j;
  if (j == links.size()) {  // after every rule of the chain
    const auto& [k, last] = links.back();
    if (last->n < XDPFW_BUCKET_SIZE) return {{k, with(*last)}};
    if (!new_link || links.size() >= XDPFW_MAX_CHAIN) return {};
    K nk = k;
    nk.chain = static_cast<uint8_t>(links.size());
    Bucket nb;
    nb.ids[nb.n++] = r.id;
    Bucket prev = *last;
    prev.more = true;
    return {{nk, nb}, {k, prev}};  // the new link first
  }
  const auto& [k, b] = links[j];
  if (b->n < XDPFW_BUCKET_SIZE) return {{k, with(*b)}};
  // Full: r may still end the link before, if it goes before all of this one.
  if (j > 0 && order(b->ids()[0]) > r.order() && links[j - 1].second->n < XDPFW_BUCKET_SIZE)
    return {{links[j - 1].first, with(*links[j - 1].second)}};
  return {};
}

// The first table that admits r (and whose best rule r would not beat)
// with room for it in place; only when none has, a new link at the end of
// a chain.
template <typename K>
std::optional<std::pair<uint32_t, std::vector<std::pair<K, Bucket>>>> plan_add(
    const CompiledRuleset& c, const CandidateMap& recs, int fam, const Rule& r) {
  const BucketMap<K>& buckets = of_family<K>(c);
  Tuple nat = natural(r);
  for (bool new_link : {false, true})
    for (uint32_t i = 0; i < c.header.ntables[fam]; ++i) {
      const xdpfw_table& t = c.header.tables[fam][i];
      // A new best rule could put the table out of order: not in place.
      if (!table_tuple(t).admits(nat) || r.order() < t.min_order) continue;
      K k = rule_key<K>(t, i, r);
      auto links = chain_of(buckets, k);
      if (links.empty()) {
        Bucket b;
        b.ids[b.n++] = r.id;
        return std::make_pair(i, std::vector<std::pair<K, Bucket>>{{k, b}});
      }
      auto writes = plan_chain_insert(recs, links, r, new_link);
      if (!writes.empty()) return std::make_pair(i, std::move(writes));
    }
  return std::nullopt;
}

template <typename K>
void apply_add(CompiledRuleset& c, int fam, const Rule& r,
               const std::pair<uint32_t, std::vector<std::pair<K, Bucket>>>& p, CompiledDelta& d) {
  for (const auto& [k, b] : p.second) {
    of_family<K>(c)[k] = b;
    of_family<K>(d).emplace_back(k, b);
  }
  const uint32_t table = p.first;
  xdpfw_ruleset& h = c.header;
  auto set = [&](xdpfw_tmask& m) {
    if (has_bit(m, table)) return false;
    set_bit(m, table);
    return true;
  };
  if (r.proto) {
    d.header |= set(h.proto[fam][*r.proto]);
  } else {
    for (auto& m : h.proto[fam]) d.header |= set(m);
  }
  if (!needs_l4(r)) d.header |= set(h.noport[fam]);
  if (r.ct && !h.ct[fam]) {
    h.ct[fam] = 1;
    d.header = true;
  }
  if (r.stateful() && !h.conditioned) {
    h.conditioned = 1;
    d.header = true;
  }
  auto& sum = c.summary[fam];
  for (int f = 0; f < XDPFW_SUMMARY_FIELDS && !sum.empty(); ++f) {  // views have none
    auto [lo, hi] = field_range(r, fam, f);
    for (uint32_t v = lo; v <= hi; ++v)
      if (!has_bit(sum[f * kSpace + v], table)) {  // a shared page is copied only to change
        set_bit(sum.mut(f * kSpace + v), table);
        d.summary[fam].push_back(f * kSpace + v);
      }
  }
}

// One bucket write: the link that holds the rule, without it. Links of a
// chain keep their place (no shift): a link may be left short or empty, and
// the scan reads on while "more" says so. A lone bucket left empty goes.
template <typename K>
std::optional<std::pair<K, Bucket>> plan_remove(const CompiledRuleset& c, int fam, const Rule& r) {
  const BucketMap<K>& buckets = of_family<K>(c);
  Tuple nat = natural(r);
  for (uint32_t i = 0; i < c.header.ntables[fam]; ++i) {
    const xdpfw_table& t = c.header.tables[fam][i];
    if (!table_tuple(t).admits(nat)) continue;
    for (const auto& [k, b] : chain_of(buckets, rule_key<K>(t, i, r))) {
      const uint32_t* ids = b->ids();
      auto pos = std::find(ids, ids + b->n, r.id);
      if (pos == ids + b->n) continue;
      Bucket nb = *b;
      std::copy(pos + 1, ids + b->n, nb.ids + (pos - ids));
      --nb.n;
      nb.ids[nb.n] = 0;
      return std::make_pair(k, nb);
    }
  }
  return std::nullopt;  // not placed
}

// The link that holds the placed rule `was` of r's match (same keys as r),
// with `was` replaced by `now` at its place in the order: one write. Empty
// when `now` would beat its table's best rule.
template <typename K>
std::optional<std::pair<K, Bucket>> plan_swap(const CompiledRuleset& c, const CandidateMap& recs,
                                              int fam, const Rule& r, uint32_t was, uint32_t now,
                                              uint64_t now_order) {
  const BucketMap<K>& buckets = of_family<K>(c);
  Tuple nat = natural(r);
  auto order = [&](uint32_t id) { return id == now ? now_order : recs.order(id); };
  for (uint32_t i = 0; i < c.header.ntables[fam]; ++i) {
    const xdpfw_table& t = c.header.tables[fam][i];
    if (!table_tuple(t).admits(nat)) continue;
    auto links = chain_of(buckets, rule_key<K>(t, i, r));
    for (size_t j = 0; j < links.size(); ++j) {
      const auto& [k, b] = links[j];
      const uint32_t* ids = b->ids();
      auto pos = std::find(ids, ids + b->n, was);
      if (pos == ids + b->n) continue;
      if (now_order < t.min_order) return std::nullopt;
      Bucket nb = *b;
      nb.ids[pos - ids] = now;
      std::sort(nb.ids, nb.ids + nb.n, [&](uint32_t a, uint32_t x) { return order(a) < order(x); });
      // Still sorted along the chain: within this link's neighbours.
      if (j > 0 && links[j - 1].second->n &&
          order(links[j - 1].second->ids()[links[j - 1].second->n - 1]) > now_order)
        return std::nullopt;
      if (j + 1 < links.size() && links[j + 1].second->n &&
          order(links[j + 1].second->ids()[0]) < now_order)
        return std::nullopt;
      return std::make_pair(k, nb);
    }
  }
  return std::nullopt;
}

// Rule `id` with the match of r: r's record with that order and action.
xdpfw_cand cand_like(const Rule& r, uint64_t order, uint8_t action) {
  xdpfw_cand c = make_cand(r);
  c.order = order;
  c.action = action;
  return c;
}

bool in_family(const Rule& r, int fam) {
  auto f = r.family();
  return !f || static_cast<int>(*f) == fam;
}

}  // namespace

namespace {

// An in-place change planned on one rule set (the set or a view): applying
// it changes the set and returns its writes. Planned for the set and every
// view before any is applied, so that a change that does not fit one of
// them changes none. recs: the set's candidate records (a view has none of
// its own); read while planning only, as the set's commit changes them.
using Commit = std::function<CompiledDelta()>;

// The placed rule of r's match gives its bucket place to rule `now`
// (order and action in `me`): its record first, then one bucket write per
// family. The old placed rule's record goes. On an add it joins the
// duplicates of the match; on a removal the caller drops it.
std::optional<Commit> prepare_swap(CompiledRuleset& c, const CandidateMap& recs, const MatchKey& mk,
                                   const Rule& r, uint32_t now, std::pair<uint64_t, uint8_t> me) {
  uint32_t was = c.matches.at(mk).placed;
  std::optional<std::pair<xdpfw_key4, Bucket>> p4;
  std::optional<std::pair<xdpfw_key6, Bucket>> p6;
  if (in_family(r, XDPFW_FAMILY_V4) &&
      !(p4 = plan_swap<xdpfw_key4>(c, recs, XDPFW_FAMILY_V4, r, was, now, me.first)))
    return std::nullopt;
  if (in_family(r, XDPFW_FAMILY_V6) &&
      !(p6 = plan_swap<xdpfw_key6>(c, recs, XDPFW_FAMILY_V6, r, was, now, me.first)))
    return std::nullopt;
  const bool own = &recs == &c.cands;
  std::pair<uint64_t, uint8_t> old{recs.order(was), recs.at(was).action};
  return Commit([&c, mk, r, now, me, was, old, own, p4, p6] {
    CompiledRuleset::Match& mt = c.matches.at(mk);
    CompiledDelta d;
    if (own) {
      c.cands.erase(was);
      c.cands.emplace(now, cand_like(r, me.first, me.second));
      d.cands.push_back(now);
    }
    if (p4) {
      c.v4[p4->first] = p4->second;
      d.v4.emplace_back(p4->first, p4->second);
    }
    if (p6) {
      c.v6[p6->first] = p6->second;
      d.v6.emplace_back(p6->first, p6->second);
    }
    mt.placed = now;
    if (now == r.id && was != r.id) {  // an add: the old placed rule is shadowed now
      auto& others = c.shadowed[mk];
      others.insert(std::upper_bound(others.begin(), others.end(), old), old);
      ++mt.count;
    }
    return d;
  });
}

std::optional<Commit> prepare_add(CompiledRuleset& c, const CandidateMap& recs, const Rule& r) {
  if (recs.count(r.id)) return std::nullopt;
  MatchKey mk = match_key(r);
  std::pair<uint64_t, uint8_t> me{r.order(), static_cast<uint8_t>(r.action.value_or(Action::drop))};
  if (auto m = c.matches.find(mk); m != c.matches.end()) {
    if (recs.order(m->second.placed) < r.order())  // shadowed: nothing to write
      return Commit([&c, mk, me] {
        auto& others = c.shadowed[mk];
        others.insert(std::upper_bound(others.begin(), others.end(), me), me);
        ++c.matches.at(mk).count;
        return CompiledDelta{};
      });
    // Better than the placed rule: it takes that rule's place.
    return prepare_swap(c, recs, mk, r, r.id, me);
  }
  std::optional<std::pair<uint32_t, std::vector<std::pair<xdpfw_key4, Bucket>>>> p4;
  std::optional<std::pair<uint32_t, std::vector<std::pair<xdpfw_key6, Bucket>>>> p6;
  if (in_family(r, XDPFW_FAMILY_V4) && !(p4 = plan_add<xdpfw_key4>(c, recs, XDPFW_FAMILY_V4, r)))
    return std::nullopt;
  if (in_family(r, XDPFW_FAMILY_V6) && !(p6 = plan_add<xdpfw_key6>(c, recs, XDPFW_FAMILY_V6, r)))
    return std::nullopt;
  const bool own = &recs == &c.cands;
  return Commit([&c, mk, r, own, p4, p6] {
    CompiledDelta d;
    // The candidate first: the buckets' sorted insert above read the others'.
    if (own) {
      c.cands.emplace(r.id, make_cand(r));
      d.cands.push_back(r.id);
    }
    c.matches.emplace(mk, CompiledRuleset::Match{1, r.id});
    if (p4) apply_add(c, XDPFW_FAMILY_V4, r, *p4, d);
    if (p6) apply_add(c, XDPFW_FAMILY_V6, r, *p6, d);
    return d;
  });
}

std::optional<Commit> prepare_remove(CompiledRuleset& c, const CandidateMap& recs, const Rule& r) {
  MatchKey mk = match_key(r);
  auto m = c.matches.find(mk);
  if (m == c.matches.end()) return std::nullopt;
  const CompiledRuleset::Match& mt = m->second;
  if (mt.placed != r.id) {  // shadowed: in no bucket
    auto sh = c.shadowed.find(mk);
    if (sh == c.shadowed.end()) return std::nullopt;
    auto it = std::find_if(sh->second.begin(), sh->second.end(),
                           [&](const auto& o) { return o.first == r.order(); });
    if (it == sh->second.end()) return std::nullopt;
    return Commit([&c, mk, at = it - sh->second.begin()] {
      auto sh = c.shadowed.find(mk);
      sh->second.erase(sh->second.begin() + at);
      if (sh->second.empty()) c.shadowed.erase(sh);
      --c.matches.at(mk).count;
      return CompiledDelta{};
    });
  }
  if (!recs.count(r.id)) return std::nullopt;
  if (mt.count > 1) {  // the next of its duplicates takes its place
    auto sh = c.shadowed.find(mk);
    if (sh == c.shadowed.end() || sh->second.empty()) return std::nullopt;
    auto next = sh->second.front();
    auto swap = prepare_swap(c, recs, mk, r, static_cast<uint32_t>(next.first), next);
    if (!swap) return std::nullopt;
    return Commit([&c, mk, swap = std::move(*swap)] {
      CompiledDelta d = swap();
      auto sh = c.shadowed.find(mk);
      sh->second.erase(sh->second.begin());
      if (sh->second.empty()) c.shadowed.erase(sh);
      --c.matches.at(mk).count;
      return d;
    });
  }
  std::optional<std::pair<xdpfw_key4, Bucket>> p4;
  std::optional<std::pair<xdpfw_key6, Bucket>> p6;
  if (in_family(r, XDPFW_FAMILY_V4) && !(p4 = plan_remove<xdpfw_key4>(c, XDPFW_FAMILY_V4, r)))
    return std::nullopt;
  if (in_family(r, XDPFW_FAMILY_V6) && !(p6 = plan_remove<xdpfw_key6>(c, XDPFW_FAMILY_V6, r)))
    return std::nullopt;
  return Commit([&c, mk, id = r.id, p4, p6] {
    CompiledDelta d;
    auto apply = [&](auto& buckets, auto& delta, auto& plan) {
      if (plan->second.n == 0 && plan->first.chain == 0 && !plan->second.more) {
        buckets.erase(plan->first);
        delta.emplace_back(plan->first, std::nullopt);
      } else {
        buckets[plan->first] = plan->second;
        delta.emplace_back(plan->first, plan->second);
      }
    };
    if (p4) apply(c.v4, d.v4, p4);
    if (p6) apply(c.v6, d.v6, p6);
    c.cands.erase(id);  // a view has none
    c.matches.erase(mk);
    return d;
  });
}

// The change planned on the set and on each view (r projected), applied
// only when every one fits.
template <typename Prepare>
std::optional<CompiledDelta> in_place(CompiledRuleset& c, const Rule& r, Prepare prepare) {
  auto main = prepare(c, c.cands, r);
  if (!main) return std::nullopt;
  std::vector<std::optional<Commit>> views;
  for (size_t v = 0; v < c.views.size(); ++v) {
    auto seen = project_rule(r, static_cast<int>(v) + 1);
    if (!seen) {
      views.emplace_back(Commit([] { return CompiledDelta{}; }));
      continue;
    }
    views.push_back(prepare(c.views[v], c.cands, *seen));
    if (!views.back()) return std::nullopt;
  }
  CompiledDelta d = (*main)();
  for (auto& v : views) d.views.push_back((*v)());
  return d;
}

}  // namespace

std::optional<CompiledDelta> add_in_place(CompiledRuleset& c, const Rule& r) {
  return in_place(c, r, prepare_add);
}

std::optional<CompiledDelta> remove_in_place(CompiledRuleset& c, const Rule& r) {
  return in_place(c, r, prepare_remove);
}

namespace {

template <typename K>
std::string check_family(const CompiledRuleset& c, const CandidateMap& recs, int fam,
                         const std::vector<const Rule*>& placed) {
  const BucketMap<K>& buckets = of_family<K>(c);
  const xdpfw_ruleset& h = c.header;
  auto where = [&](const Rule& r) {
    return "rule " + std::to_string(r.id) + " (" + family_name(fam) + "): ";
  };
  for (uint32_t i = 1; i < h.ntables[fam]; ++i)
    if (h.tables[fam][i].min_order < h.tables[fam][i - 1].min_order)
      return std::string(family_name(fam)) + " table " + std::to_string(i) + " out of order";
  std::unordered_map<uint32_t, int> seen;
  for (const auto& [k, b] : buckets) {
    if (k.chain == 0) {  // sorted along the whole chain, short or empty links included
      uint64_t last = 0;
      for (const auto& [lk, lb] : chain_of(buckets, k))
        for (uint32_t j = 0; j < lb->n; ++j) {
          auto it = recs.find(lb->ids()[j]);
          if (it == recs.end()) continue;  // reported below
          if (it->second.order <= last && (lk.chain || j))
            return "a chain out of order at rule " + std::to_string(lb->ids()[j]);
          last = it->second.order;
        }
    }
    if (k.table >= h.ntables[fam]) return "a bucket of a table that does not exist";
    // Empty only as a link of a chain (a removal in place leaves it).
    if ((b.n == 0 && k.chain == 0 && !b.more) || b.n > XDPFW_BUCKET_SIZE)
      return "a bucket of " + std::to_string(b.n) + " rules";
    if (k.chain > 0) {
      K prev = k;
      prev.chain = static_cast<uint8_t>(k.chain - 1);
      auto it = buckets.find(prev);
      if (it == buckets.end() || !it->second.more) return "a chain link without its predecessor";
    }
    if (b.more) {
      K next = k;
      next.chain = static_cast<uint8_t>(k.chain + 1);
      auto it = buckets.find(next);
      if (it == buckets.end()) return "a chain that says more but ends";
      // Sorted across links too: this link's rules before the next one's.
      const uint32_t *ids = b.ids(), *next_ids = it->second.ids();
      if (b.n && it->second.n && recs.count(ids[b.n - 1]) && recs.count(next_ids[0]) &&
          recs.order(ids[b.n - 1]) >= recs.order(next_ids[0]))
        return "a chain out of order between links " + std::to_string(k.chain) + " and " +
               std::to_string(k.chain + 1);
    }
    const uint32_t* ids = b.ids();
    for (uint32_t j = 0; j < b.n; ++j) {
      ++seen[ids[j]];
      auto it = recs.find(ids[j]);
      if (it == recs.end()) return "rule " + std::to_string(ids[j]) + " in a bucket, no record";
      if (j > 0 && recs.order(ids[j - 1]) >= it->second.order)
        return "a bucket out of order at rule " + std::to_string(ids[j]);
    }
  }
  for (const Rule* r : placed) {
    if (!in_family(*r, fam)) continue;
    if (seen[r->id] != 1)
      return where(*r) + "in " + std::to_string(seen[r->id]) + " buckets, not exactly one";
    // Its own key in a table that admits it (chain link aside), and masks
    // that let a packet reach it.
    bool found = false;
    for (uint32_t i = 0; i < h.ntables[fam] && !found; ++i) {
      const xdpfw_table& t = h.tables[fam][i];
      if (!table_tuple(t).admits(natural(*r))) continue;
      K k = rule_key<K>(t, i, *r);
      for (uint32_t link = 0; link < XDPFW_MAX_CHAIN && !found; ++link) {
        k.chain = static_cast<uint8_t>(link);
        auto it = buckets.find(k);
        if (it == buckets.end()) break;
        const uint32_t* ids = it->second.ids();
        found = std::find(ids, ids + it->second.n, r->id) != ids + it->second.n;
      }
      if (!found) continue;
      if (r->order() < t.min_order) return where(*r) + "better than its table's min_order";
      if (!has_bit(h.proto[fam][r->proto.value_or(0)], i))
        return where(*r) + "its protocol's mask lacks its table";
      if (!needs_l4(*r) && !has_bit(h.noport[fam], i)) return where(*r) + "no-port mask lacks it";
      for (int f = 0; f < XDPFW_SUMMARY_FIELDS && !c.summary[fam].empty(); ++f) {
        auto [lo, hi] = field_range(*r, fam, f);
        for (uint32_t v : {lo, hi, lo + (hi - lo) / 2})
          if (!has_bit(c.summary[fam][f * kSpace + v], i))
            return where(*r) + "summary field " + std::to_string(f) + " lacks value " +
                   std::to_string(v);
      }
    }
    if (!found) return where(*r) + "not at its own key in a table that admits it";
  }
  for (const auto& [id, n] : seen)
    if (!recs.count(id)) return "rule " + std::to_string(id) + " in buckets, not placed";
  return "";
}

// One set or view: recs are the set's candidate records.
std::string check_set(const CompiledRuleset& c, const CandidateMap& recs,
                      const std::vector<Rule>& rules) {
  const bool own = &recs == &c.cands;
  std::vector<const Rule*> sorted;
  for (const Rule& r : rules) sorted.push_back(&r);
  std::sort(sorted.begin(), sorted.end(),
            [](const Rule* a, const Rule* b) { return a->order() < b->order(); });
  // Placed: exactly the best rule of each match key.
  FlatMap<MatchKey, CompiledRuleset::Match, MatchKeyHash> count;
  std::vector<const Rule*> placed;
  FlatMap<MatchKey, CompiledRuleset::Shadowed, MatchKeyHash> shadowed;
  for (const Rule* r : sorted) {
    MatchKey mk = match_key(*r);
    if (auto& m = count[mk]; ++m.count == 1) {
      m.placed = r->id;
      placed.push_back(r);
    } else {
      shadowed[mk].emplace_back(r->order(), static_cast<uint8_t>(r->action.value_or(Action::drop)));
    }
  }
  if (shadowed != c.shadowed) return "the duplicates kept differ from the rules";
  if (count != c.matches) return "match counts differ from the rules";
  if (!own && !c.cands.empty()) return "a view with records of its own";
  if (own && placed.size() != c.cands.size()) return "placed rules and candidate records differ";
  for (const Rule* r : placed) {
    auto it = recs.find(r->id);
    if (it == recs.end()) return "rule " + std::to_string(r->id) + " placed without a record";
    if (!own) continue;
    xdpfw_cand want = make_cand(*r);
    if (std::memcmp(&want, &it->second, sizeof want) != 0)
      return "rule " + std::to_string(r->id) + ": its record differs from the rule";
  }
  std::string e = check_family<xdpfw_key4>(c, recs, XDPFW_FAMILY_V4, placed);
  if (e.empty()) e = check_family<xdpfw_key6>(c, recs, XDPFW_FAMILY_V6, placed);
  return e;
}

}  // namespace

std::string check_invariants(const CompiledRuleset& c, const std::vector<Rule>& rules) {
  std::string e = check_set(c, c.cands, rules);
  if (!e.empty() || c.views.empty()) return e;
  if (c.views.size() != XDPFW_VIEWS - 1) return "views missing";
  for (size_t v = 0; v < c.views.size(); ++v) {
    std::vector<Rule> seen;
    for (const Rule& r : rules)
      if (auto p = project_rule(r, static_cast<int>(v) + 1)) seen.push_back(std::move(*p));
    if (!c.views[v].views.empty()) return "a view with views";
    e = check_set(c.views[v], c.cands, seen);
    if (!e.empty()) return "view " + std::to_string(v + 1) + ": " + e;
  }
  return "";
}

}  // namespace xdpfw
