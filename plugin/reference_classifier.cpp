// reference_classifier.cpp: the rule semantics as a linear scan (docs/DATAPATH.md,
// "Rule semantics").
#include "reference_classifier.hpp"

#include <algorithm>

namespace xdpfw {

bool rule_matches(const Rule& r, const PacketFields& p) {
  if (auto fam = r.family(); fam && *fam != p.family) return false;
  if (r.src && !r.src->contains(p.src)) return false;
  if (r.dst && !r.dst->contains(p.dst)) return false;
  if (r.proto && *r.proto != p.proto) return false;
  // Port and icmp constraints need the L4 header: non-first fragments never match them.
  bool needs_l4 = r.sport || r.dport || r.icmp_type || r.icmp_code;
  if (needs_l4 && !p.has_l4) return false;
  if (r.sport && (p.sport < r.sport->lo || p.sport > r.sport->hi)) return false;
  if (r.dport && (p.dport < r.dport->lo || p.dport > r.dport->hi)) return false;
  if (r.icmp_type && p.sport != *r.icmp_type) return false;
  if (r.icmp_code && p.dport != *r.icmp_code) return false;
  return true;
}

int rule_matches_readable(const Rule& r, const PacketFields& p) {
  if (p.readable == Readable::nothing) return 0;
  if (auto fam = r.family(); fam && *fam != p.family) return 0;
  if (r.src && !r.src->contains(p.src)) return 0;
  if (r.dst && !r.dst->contains(p.dst)) return 0;
  int found = 1;
  if (r.proto) {
    if (p.readable == Readable::no_proto)
      found = 2;
    else if (*r.proto != p.proto)
      return 0;
  }
  if (r.sport || r.dport || r.icmp_type || r.icmp_code) found = 2;
  return found;
}

ReferenceClassifier::ReferenceClassifier(std::vector<Rule> rules, Action default_action,
                                         Action malformed_action)
    : rules_(std::move(rules)),
      default_action_(default_action),
      malformed_action_(malformed_action) {
  std::sort(rules_.begin(), rules_.end(),
            [](const Rule& a, const Rule& b) { return a.order() < b.order(); });
}

Verdict ReferenceClassifier::classify(const PacketFields& p) const {
  if (p.readable != Readable::all) {
    for (const Rule& r : rules_)
      if (int m = rule_matches_readable(r, p))
        return m == 1 ? Verdict{*r.action, r.id} : Verdict{malformed_action_, std::nullopt};
    return Verdict{malformed_action_, std::nullopt};
  }
  for (const Rule& r : rules_)
    if (rule_matches(r, p)) return Verdict{*r.action, r.id};
  return Verdict{default_action_, std::nullopt};
}

}  // namespace xdpfw
