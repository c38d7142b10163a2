// fakes.hpp: stand-ins for the kernel in unit tests: a Datapath that keeps
// the rule set in memory (compiled for its errors, classified by the
// reference classifier), and an Attacher that remembers what it attached.
#pragma once

#include <sys/eventfd.h>
#include <unistd.h>

#include <set>
#include <string>
#include <unordered_map>
#include <vector>

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
    ++in_place;
    return true;
  }
  void settle() override {
    ++settles;
    if (fail_settle) throw DatapathError("wait for XDP readers (xdpfw_sync): Out of memory (fake)");
  }
  std::unordered_map<uint32_t, RuleCounters> all_rule_counters() const override { return counters; }
  Stats stats() const override { return stats_; }
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
  Verdict classify(const PacketFields& p) const {
    std::vector<Rule> sorted = rules_;
    return ReferenceClassifier(sorted, policy_.default_action, policy_.malformed_action)
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
