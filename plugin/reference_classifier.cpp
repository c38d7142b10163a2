// reference_classifier.cpp: linear-scan reference semantics (design brief §3).
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

ReferenceClassifier::ReferenceClassifier(std::vector<Rule> rules, Action default_action)
    : rules_(std::move(rules)), default_action_(default_action) {
  std::sort(rules_.begin(), rules_.end(),
            [](const Rule& a, const Rule& b) { return a.order() < b.order(); });
}

Verdict ReferenceClassifier::classify(const PacketFields& p) const {
  for (const Rule& r : rules_)
    if (rule_matches(r, p)) return Verdict{*r.action, r.id};
  return Verdict{default_action_, std::nullopt};
}

}  // namespace xdpfw
