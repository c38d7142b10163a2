// fakes.hpp: stand-ins for the kernel in unit tests: a Datapath that keeps
// the rule set in memory (compiled for its errors, classified by the
// reference classifier), and an Attacher that remembers what it attached.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "address_sets.hpp"
#include "attach_manager.hpp"
#include "datapath.hpp"
#include "reference_classifier.hpp"

namespace xdpfw::test {

class FakeDatapath : public Datapath {
 public:
  FakeDatapath() : event_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~FakeDatapath() override { ::close(event_fd_); }

  bool resumed() const override { return resumed_; }
  const std::string& replaced_pins() const override { return replaced_; }
  const std::string& pin_dir() const override { return pin_dir_; }
  CompileLimits limits() const override { return limits_; }

  void apply(const std::vector<Rule>& rules, const Policy& policy) override {
    compile_rules(rules, policy, limits_);  // the same errors as the kernel's
    if (fail_next_apply) {
      fail_next_apply = false;
      throw DatapathError("update xdpfw_buckets_v4: Cannot allocate memory (fake)");
    }
    rules_ = rules;
    policy_ = policy;
    ++applies;
    // As the kernel's: a rule no longer there gives its counter slot back.
    std::erase_if(counters, [&](const auto& c) {
      return std::none_of(rules.begin(), rules.end(),
                          [&](const Rule& r) { return r.id == c.first; });
    });
  }
  bool add_in_place(const Rule& r) override {
    if (!fits_in_place) return false;
    if (r.ct && !limits_.no_ct.empty()) return false;  // as the kernel's: apply() says why
    rules_.push_back(r);
    ++in_place;
    return true;
  }
  bool remove_in_place(const Rule& r) override {
    if (!fits_in_place) return false;
    std::erase_if(rules_, [&](const Rule& x) { return x.id == r.id; });
    counters.erase(r.id);
    ++in_place;
    return true;
  }
  void settle() override {
    ++settles;
    if (fail_settle) throw DatapathError("wait for XDP readers (xdpfw_sync): Out of memory (fake)");
  }
  std::unordered_map<uint32_t, RuleCounters> all_rule_counters() const override { return counters; }
  Stats stats() const override { return stats_; }
  uint64_t max_set_elements() const override { return set_capacity; }
  void write_element(uint32_t tag, const Prefix& p, uint64_t expires_ns, bool fresh) override {
    if (fail_set_writes)
      throw DatapathError("write an element of xdpfw_sets: Out of memory (fake)");
    auto& e = elements[{tag, AddressSets::key_of(p)}];
    if (fresh) e.second = 0;
    e.first = expires_ns;
    ++element_writes;
  }
  void erase_element(uint32_t tag, const Prefix& p) override {
    elements.erase({tag, AddressSets::key_of(p)});
  }
  uint64_t element_hits(uint32_t tag, const Prefix& p) const override {
    auto it = elements.find({tag, AddressSets::key_of(p)});
    return it == elements.end() ? 0 : it->second.second;
  }
  uint32_t set_tag(uint16_t set) const override {
    auto it = tags.find(set);
    return it == tags.end() ? 0 : it->second;
  }
  void switch_set_tag(uint16_t set, uint32_t tag) override { tags[set] = tag; }
  std::vector<std::pair<uint32_t, Prefix>> set_elements() const override {
    std::vector<std::pair<uint32_t, Prefix>> out;
    for (const auto& [k, v] : elements) out.emplace_back(k.first, AddressSets::prefix_of(k.second));
    return out;
  }
  // As the program's lookup: the set's tag, the longest element under it.
  struct Membership : SetMembership {
    explicit Membership(const FakeDatapath* d) : dp(d) {}
    const FakeDatapath* dp;
    bool contains(uint16_t set, Family f, const std::array<uint8_t, 16>& a) const override {
      uint32_t tag = dp->set_tag(set);
      if (!tag) return false;
      for (int len = f == Family::v4 ? 32 : 128; len >= 0; --len) {
        Prefix p{f, a, static_cast<uint8_t>(len)};
        p.clear_host_bits();
        auto it = dp->elements.find({tag, AddressSets::key_of(p)});
        if (it != dp->elements.end()) return it->second.first > dp->clock();
      }
      return false;
    }
  };
  Membership membership() const { return Membership(this); }

  void set_event_limit(uint64_t rate, uint64_t burst) override {
    event_rate = rate;
    event_burst = burst;
  }
  int events_fd() override { return event_fd_; }
  uint64_t read_events(const std::function<void(const xdpfw_event&)>& each) override {
    uint64_t n;
    while (::read(event_fd_, &n, sizeof n) == sizeof n) {
    }
    std::vector<xdpfw_event> evs;
    evs.swap(pending_);
    for (const xdpfw_event& ev : evs) each(ev);
    return std::exchange(lost_, 0);
  }

  // What a test does to it.
  void send_event(const xdpfw_event& ev) {
    pending_.push_back(ev);
    uint64_t one = 1;
    (void)!::write(event_fd_, &one, sizeof one);
  }
  void lose_events(uint64_t n) { lost_ += n; }
  Verdict classify(PacketFields p) const {
    std::vector<Rule> sorted = rules_;
    Membership m = membership();
    if (!p.sets) p.sets = &m;
    return ReferenceClassifier(sorted, policy_.default_action, policy_.malformed_action,
                               policy_.mapped_ipv6)
        .classify(p);
  }
  const std::vector<Rule>& rules() const { return rules_; }
  const Policy& policy() const { return policy_; }

  bool resumed_ = false;
  std::string replaced_, pin_dir_ = "/fake/pins";
  CompileLimits limits_;
  bool fits_in_place = true;
  bool fail_next_apply = false;
  bool fail_settle = false;
  int applies = 0, in_place = 0, settles = 0;
  std::unordered_map<uint32_t, RuleCounters> counters;
  Stats stats_;
  uint64_t event_rate = 0, event_burst = 0;
  // Address sets: (tag, element) -> (expires_ns, hits), and each set's tag.
  std::map<std::pair<uint32_t, AddressSets::Key>, std::pair<uint64_t, uint64_t>> elements;
  std::map<uint16_t, uint32_t> tags;
  uint64_t set_capacity = 1000;
  bool fail_set_writes = false;
  int element_writes = 0;
  std::function<uint64_t()> clock = monotonic_coarse_ns;

 private:
  std::vector<Rule> rules_;
  Policy policy_;
  int event_fd_;
  std::vector<xdpfw_event> pending_;
  uint64_t lost_ = 0;
};

struct FakeAttacher : Attacher {
  AttachOutcome attach(int ifindex, const std::string&, AttachMode mode, bool takeover) override {
    AttachOutcome o;
    if (foreign.count(ifindex) && !takeover) {
      o.foreign_id = 99;
      o.error = "it carries another XDP program (id 99)";
      return o;
    }
    if (mode == AttachMode::native && no_native.count(ifindex)) {
      o.error = "attach failed: Operation not supported";
      return o;
    }
    attached.insert(ifindex);
    o.ok = true;
    o.mode = no_native.count(ifindex) ? "generic" : "native";
    o.prog_id = 7;
    return o;
  }
  void detach(int ifindex) override { attached.erase(ifindex); }
  std::set<int> attached, foreign, no_native;
};

}  // namespace xdpfw::test
