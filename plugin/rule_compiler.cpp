// rule_compiler.cpp: rules -> shapes, port classes and hash entries.
#include "rule_compiler.hpp"

#include <arpa/inet.h>
#include <algorithm>

#include "reference_classifier.hpp"

namespace xdpfw {
namespace {

// Partition of 0..65535 into classes: every boundary of a constrained range
// starts a class, and a class is named by its first port, so that adding a
// boundary renames nothing else (updates stay small).
class PortClasses {
 public:
  void add(uint16_t lo, uint16_t hi) {
    starts_[lo] = true;
    if (hi < 65535) starts_[hi + 1] = true;
    ++cover_[lo];
    --cover_[hi + 1u];
  }
  // A class is named by its first port. Ports no rule names all share one
  // class, named by the lowest of them (usually 0): a rule on a new port
  // then renames that port alone, not the rest of the gap it falls in (a
  // gap's class is in no key, so which name it has does not matter, only
  // that no named class has it).
  void finish(std::vector<uint32_t>& table) {
    starts_[0] = true;
    table.assign(XDPFW_PORT_SPACE, 0);
    uint32_t cur = 0, gap = XDPFW_PORT_SPACE;
    int depth = 0;
    for (uint32_t p = 0; p < XDPFW_PORT_SPACE; ++p) {
      depth += cover_[p];
      if (starts_[p]) {
        cur = p;
        sorted_.push_back(static_cast<uint16_t>(p));
      }
      if (depth == 0 && gap == XDPFW_PORT_SPACE) gap = p;
      table[p] = depth ? cur : gap;
    }
  }
  // Class ids covering lo..hi, appended to out.
  void classes(uint16_t lo, uint16_t hi, std::vector<uint16_t>& out) const {
    auto it = std::upper_bound(sorted_.begin(), sorted_.end(), lo);
    out.push_back(*(it - 1));
    for (; it != sorted_.end() && *it <= hi; ++it) out.push_back(*it);
  }

 private:
  std::vector<bool> starts_ = std::vector<bool>(XDPFW_PORT_SPACE, false);
  std::vector<int> cover_ = std::vector<int>(XDPFW_PORT_SPACE + 1, 0);  // +1 at lo, -1 after hi
  std::vector<uint16_t> sorted_;
};

struct FieldRange {
  bool constrained = false;
  uint16_t lo = 0, hi = 65535;
};

// sport / icmp type, and dport / icmp code share a field each.
FieldRange field_range(const Rule& r, int field) {
  const auto& ports = field == XDPFW_FIELD_SPORT ? r.sport : r.dport;
  const auto& icmp = field == XDPFW_FIELD_SPORT ? r.icmp_type : r.icmp_code;
  if (ports && !ports->full()) return {true, ports->lo, ports->hi};
  if (icmp) return {true, *icmp, *icmp};
  return {};
}

void make_mask(uint8_t plen, uint32_t mask[4]) {
  for (int i = 0; i < 4; ++i) {
    int bits = std::clamp(int{plen} - 32 * i, 0, 32);
    uint32_t host = bits == 0 ? 0 : bits == 32 ? 0xffffffffu : ~(0xffffffffu >> bits);
    mask[i] = htonl(host);
  }
}

std::string rule_name(const Rule& r) {
  return "rule " + std::to_string(r.id);
}

const char* family_name(int fam) {
  return fam == XDPFW_FAMILY_V4 ? "IPv4" : "IPv6";
}

template <typename K>
void fill_key_head(K& k, const xdpfw_shape& s, uint8_t proto, uint16_t sc, uint16_t dc) {
  k.meta = static_cast<uint8_t>(s.flags << 1);
  k.proto = (s.flags & XDPFW_SHAPE_PROTO) ? proto : 0;
  k.src_plen = s.src_plen;
  k.dst_plen = s.dst_plen;
  k.sport_class = (s.flags & XDPFW_SHAPE_SPORT) ? sc : 0;
  k.dport_class = (s.flags & XDPFW_SHAPE_DPORT) ? dc : 0;
}

void masked(const std::array<uint8_t, 16>& a, const uint32_t mask[4], uint32_t* out, int words) {
  for (int i = 0; i < words; ++i) {
    uint32_t w;
    std::memcpy(&w, a.data() + 4 * i, 4);
    out[i] = w & mask[i];
  }
}

}  // namespace

CompiledRuleset compile_rules(const std::vector<Rule>& input, const Policy& policy,
                              const CompileLimits& limits) {
  if (input.size() > limits.max_rules)
    throw CompileError(std::to_string(input.size()) + " rules exceed the limit of " +
                       std::to_string(limits.max_rules) + " rules");
  std::vector<const Rule*> rules;
  rules.reserve(input.size());
  {
    std::unordered_map<uint32_t, bool> ids;
    for (const Rule& r : input) {
      if (r.id == 0) throw CompileError("a rule has no id");
      if (!r.priority) throw CompileError(rule_name(r) + ": no priority");
      try {
        validate_rule(r);
      } catch (const RuleError& e) {
        throw CompileError(rule_name(r) + ": " + e.what());
      }
      if (!ids.emplace(r.id, true).second) throw CompileError(rule_name(r) + ": id used twice");
      rules.push_back(&r);
    }
  }
  std::sort(rules.begin(), rules.end(),
            [](const Rule* a, const Rule* b) { return a->order() < b->order(); });

  CompiledRuleset out;
  out.header.default_action = static_cast<uint8_t>(policy.default_action);
  out.header.malformed_action = static_cast<uint8_t>(policy.malformed_action);

  PortClasses classes[2];
  for (const Rule* r : rules)
    for (int f = 0; f < 2; ++f)
      if (auto fr = field_range(*r, f); fr.constrained) classes[f].add(fr.lo, fr.hi);
  for (int f = 0; f < 2; ++f) classes[f].finish(out.port_class[f]);

  std::vector<xdpfw_shape> shapes[2];
  std::vector<uint16_t> sclasses, dclasses;
  for (const Rule* r : rules) {
    FieldRange fr[2] = {field_range(*r, XDPFW_FIELD_SPORT), field_range(*r, XDPFW_FIELD_DPORT)};
    uint8_t flags = 0;
    if (r->proto) flags |= XDPFW_SHAPE_PROTO;
    if (r->sport || r->dport || r->icmp_type || r->icmp_code) flags |= XDPFW_SHAPE_L4;
    if (fr[0].constrained) flags |= XDPFW_SHAPE_SPORT;
    if (fr[1].constrained) flags |= XDPFW_SHAPE_DPORT;

    sclasses.clear();
    dclasses.clear();
    if (fr[0].constrained)
      classes[0].classes(fr[0].lo, fr[0].hi, sclasses);
    else
      sclasses.push_back(0);
    if (fr[1].constrained)
      classes[1].classes(fr[1].lo, fr[1].hi, dclasses);
    else
      dclasses.push_back(0);
    uint64_t expansion = uint64_t{sclasses.size()} * dclasses.size();
    if (expansion > limits.max_expansion_per_rule)
      throw CompileError(rule_name(*r) + ": its port ranges expand to " +
                         std::to_string(expansion) + " entries (" +
                         std::to_string(sclasses.size()) + " sport x " +
                         std::to_string(dclasses.size()) + " dport classes), over the limit of " +
                         std::to_string(limits.max_expansion_per_rule) +
                         " per rule; split the rule or narrow its ranges");

    uint8_t src_plen = r->src ? r->src->len : 0;
    uint8_t dst_plen = r->dst ? r->dst->len : 0;
    Entry entry{r->order(), *r->action};
    for (int fam = 0; fam < 2; ++fam) {
      if (auto rf = r->family(); rf && static_cast<int>(*rf) != fam) continue;
      auto& list = shapes[fam];
      auto it = std::find_if(list.begin(), list.end(), [&](const xdpfw_shape& s) {
        return s.flags == flags && s.src_plen == src_plen && s.dst_plen == dst_plen;
      });
      if (it == list.end()) {
        if (list.size() >= limits.max_shapes)
          throw CompileError(rule_name(*r) + ": needs a new " + family_name(fam) +
                             " mask shape (src /" + std::to_string(src_plen) + ", dst /" +
                             std::to_string(dst_plen) + ", fields " + std::to_string(flags) +
                             ") beyond the limit of " + std::to_string(limits.max_shapes) +
                             " distinct shapes per family");
        xdpfw_shape s{};
        s.flags = flags;
        s.src_plen = src_plen;
        s.dst_plen = dst_plen;
        s.min_order = r->order();  // rules arrive best first
        make_mask(src_plen, s.src_mask);
        make_mask(dst_plen, s.dst_mask);
        list.push_back(s);
        it = list.end() - 1;
      }
      std::array<uint8_t, 16> zero{};
      const auto& sa = r->src ? r->src->addr : zero;
      const auto& da = r->dst ? r->dst->addr : zero;
      for (uint16_t sc : sclasses)
        for (uint16_t dc : dclasses) {
          // emplace keeps the first, best-ordered rule for a key
          if (fam == XDPFW_FAMILY_V4) {
            xdpfw_key4 k{};
            fill_key_head(k, *it, r->proto.value_or(0), sc, dc);
            masked(sa, it->src_mask, &k.src, 1);
            masked(da, it->dst_mask, &k.dst, 1);
            out.v4.emplace(k, entry);
          } else {
            xdpfw_key6 k{};
            fill_key_head(k, *it, r->proto.value_or(0), sc, dc);
            masked(sa, it->src_mask, k.src, 4);
            masked(da, it->dst_mask, k.dst, 4);
            out.v6.emplace(k, entry);
          }
        }
    }
    if (out.v4.size() > limits.max_entries_per_family ||
        out.v6.size() > limits.max_entries_per_family)
      throw CompileError(rule_name(*r) + ": the rule set needs more than " +
                         std::to_string(limits.max_entries_per_family) +
                         " hash entries per family (the map size set at load)");
  }
  for (int fam = 0; fam < 2; ++fam) {
    // stable: equal min_order cannot happen (ids are unique), but keep it deterministic
    std::stable_sort(
        shapes[fam].begin(), shapes[fam].end(),
        [](const xdpfw_shape& a, const xdpfw_shape& b) { return a.min_order < b.min_order; });
    out.header.nshapes[fam] = static_cast<uint32_t>(shapes[fam].size());
    std::copy(shapes[fam].begin(), shapes[fam].end(), out.header.shapes[fam]);
  }
  return out;
}

std::optional<Entry> lookup_compiled(const CompiledRuleset& c, const PacketFields& p) {
  int fam = static_cast<int>(p.family);
  uint16_t sc = p.has_l4 ? static_cast<uint16_t>(c.port_class[0][p.sport]) : 0;
  uint16_t dc = p.has_l4 ? static_cast<uint16_t>(c.port_class[1][p.dport]) : 0;
  std::optional<Entry> best;
  for (uint32_t i = 0; i < c.header.nshapes[fam]; ++i) {
    const xdpfw_shape& s = c.header.shapes[fam][i];
    if (best && best->order <= s.min_order) break;
    if ((s.flags & XDPFW_SHAPE_L4) && !p.has_l4) continue;
    const Entry* e = nullptr;
    if (fam == XDPFW_FAMILY_V4) {
      xdpfw_key4 k{};
      fill_key_head(k, s, p.proto, sc, dc);
      masked(p.src, s.src_mask, &k.src, 1);
      masked(p.dst, s.dst_mask, &k.dst, 1);
      if (auto it = c.v4.find(k); it != c.v4.end()) e = &it->second;
    } else {
      xdpfw_key6 k{};
      fill_key_head(k, s, p.proto, sc, dc);
      masked(p.src, s.src_mask, k.src, 4);
      masked(p.dst, s.dst_mask, k.dst, 4);
      if (auto it = c.v6.find(k); it != c.v6.end()) e = &it->second;
    }
    if (e && (!best || e->order < best->order)) best = *e;
  }
  return best;
}

}  // namespace xdpfw
