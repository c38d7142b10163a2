// reference_classifier.cpp: the rule semantics as a linear scan (docs/DATAPATH.md,
// "Rule semantics").
#include "reference_classifier.hpp"

#include <algorithm>

namespace xdpfw {

namespace {

bool rule_sets_hold(const Rule& r, const PacketFields& p) {
  return sets_hold(r.src_set ? r.src_set->id : 0, r.src_set && r.src_set->negate,
                   r.dst_set ? r.dst_set->id : 0, r.dst_set && r.dst_set->negate, p);
}

}  // namespace

bool sets_hold(uint16_t src_set, bool src_negate, uint16_t dst_set, bool dst_negate,
               const PacketFields& p) {
  auto in = [&](uint16_t set, const std::array<uint8_t, 16>& a) {
    return p.sets && p.sets->contains(set, p.family, a);
  };
  if (src_set && in(src_set, p.src) == src_negate) return false;
  if (dst_set && in(dst_set, p.dst) == dst_negate) return false;
  return true;
}

bool rule_matches(const Rule& r, const PacketFields& p) {
  if (auto fam = r.family(); fam && *fam != p.family) return false;
  if (r.src && !r.src->contains(p.src)) return false;
  if (r.dst && !r.dst->contains(p.dst)) return false;
  if (!rule_sets_hold(r, p)) return false;
  if (r.proto && *r.proto != p.proto) return false;
  // Port and icmp constraints need the L4 header: non-first fragments never match them.
  // So do TCP flags and ct.
  if (r.needs_l4() && !p.has_l4) return false;
  if (r.sport && (p.sport < r.sport->lo || p.sport > r.sport->hi)) return false;
  if (r.dport && (p.dport < r.dport->lo || p.dport > r.dport->hi)) return false;
  if (r.icmp_type && p.sport != *r.icmp_type) return false;
  if (r.icmp_code && p.dport != *r.icmp_code) return false;
  if (r.tcp_flags && (p.tcp_flags & r.tcp_flags->mask) != r.tcp_flags->set) return false;
  if (r.ct && !(*r.ct & p.ct)) return false;
  return true;
}

RateModel::Key RateModel::key(uint32_t rule, uint8_t per, const PacketFields& p) {
  Prefix pf{p.family, p.src,
            static_cast<uint8_t>(std::min<unsigned>(per, p.family == Family::v4 ? 32 : 128))};
  pf.clear_host_bits();
  return {rule, pf.addr};
}

bool RateModel::over(uint32_t rule, uint64_t burst, uint8_t per, const PacketFields& p) const {
  auto it = taken_.find(key(rule, per, p));
  return it != taken_.end() && it->second >= burst;
}

void RateModel::take(uint32_t rule, uint8_t per, const PacketFields& p) {
  ++taken_[key(rule, per, p)];
}

int rule_matches_readable(const Rule& r, const PacketFields& p) {
  if (p.readable == Readable::nothing) return 0;
  if (auto fam = r.family(); fam && *fam != p.family) return 0;
  if (r.src && !r.src->contains(p.src)) return 0;
  if (r.dst && !r.dst->contains(p.dst)) return 0;
  if (!rule_sets_hold(r, p)) return 0;
  int found = 1;
  if (r.proto) {
    if (p.readable == Readable::no_proto)
      found = 2;
    else if (*r.proto != p.proto)
      return 0;
  }
  if (r.needs_l4()) found = 2;
  return found;
}

bool mapped_ipv6_source(const PacketFields& p) {
  if (p.family != Family::v6 || p.readable == Readable::nothing) return false;
  const auto& a = p.src;
  if (std::any_of(a.begin(), a.begin() + 10, [](uint8_t b) { return b != 0; })) return false;
  if (a[10] == 0xff && a[11] == 0xff) return true;  // ::ffff:a.b.c.d
  if (a[10] != 0 || a[11] != 0) return false;
  return a[12] != 0 || a[13] != 0 || a[14] != 0 || a[15] > 1;  // ::a.b.c.d, not :: or ::1
}

ReferenceClassifier::ReferenceClassifier(std::vector<Rule> rules, Action default_action,
                                         Action malformed_action, Action mapped_ipv6)
    : rules_(std::move(rules)),
      default_action_(default_action),
      malformed_action_(malformed_action),
      mapped_ipv6_(mapped_ipv6) {
  std::sort(rules_.begin(), rules_.end(),
            [](const Rule& a, const Rule& b) { return a.order() < b.order(); });
}

Verdict ReferenceClassifier::classify(const PacketFields& p, RateModel* rates) const {
  if (mapped_ipv6_ == Action::drop && mapped_ipv6_source(p))
    return {Action::drop, std::nullopt, {}, true};
  Verdict v{p.readable == Readable::all ? default_action_ : malformed_action_, std::nullopt, {}};
  for (const Rule& r : rules_) {
    if (p.readable != Readable::all) {
      int m = rule_matches_readable(r, p);
      if (m == 0 || (m == 2 && r.action == Action::audit)) continue;
      if (m == 2) return v;  // needs what was not read: the malformed action
    } else if (!rule_matches(r, p)) {
      continue;
    }
    if (r.rate) {  // under the rate: a token, and on to the next rule
      uint8_t per = r.per.value_or(0);
      if (!rates || !rates->over(r.id, r.burst_packets(), per, p)) {
        if (rates) rates->take(r.id, per, p);
        continue;
      }
    }
    if (r.action == Action::audit) {
      v.audits.push_back(r.id);
      continue;
    }
    v.action = *r.action;
    v.rule_id = r.id;
    return v;
  }
  return v;
}

}  // namespace xdpfw
