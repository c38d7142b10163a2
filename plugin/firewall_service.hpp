// firewall_service.hpp: the firewall's transactions. Each change (a rule
// command, a set command, a reload, a change of the rules on disk, a
// replace on trial and its revert) is parsed by the caller, resolved here
// (set names to set ids), applied to the Datapath whole or not at all,
// committed to the rule store or the sets, and journaled (StateJournal)
// so that a restart finds it. Restart precedence is decided here too.
//
// Its parts, each in a file of its own: the Datapath (the kernel's, from
// kernel_parts.hpp, or a fake in unit tests), the AttachManager over an
// Attacher, the RulesSource (the file or rules.d and its watch), the
// AddressSets, the EventPipeline. What the service shows is in
// service_views.hpp: functions over a const service. libxdpfw.so
// (xdpfw_plugin.cpp) parses the control commands and calls in here; unit
// tests drive it without root.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "address_sets.hpp"
#include "agent_lock.hpp"
#include "attach_manager.hpp"
#include "datapath.hpp"
#include "event_pipeline.hpp"
#include "firewall_config.hpp"
#include "rule_store.hpp"
#include "rules_source.hpp"
#include "state_journal.hpp"

namespace xdpfw {

struct CommandOutput {
  bool ok = true;
  std::string text;
  bool stream = false;  // the connection becomes a live stream
};

// A command's error answer: "WHAT: why".
inline CommandOutput command_error(const std::string& what, const std::exception& e) {
  return {false, what + ": " + e.what()};
}
// Rule ids as answers list them: "3, 7, 9".
inline std::string join_ids(const std::vector<uint32_t>& ids) {
  std::string s;
  for (uint32_t id : ids) s += (s.empty() ? "" : ", ") + std::to_string(id);
  return s;
}

// CLOCK_MONOTONIC in ms.
uint64_t monotonic_ms();

// The service's clocks; unit tests give their own.
struct ServiceClock {
  std::function<uint64_t()> mono_ms = monotonic_ms;  // trial deadlines, the watch's delay
  std::function<uint64_t()> wall_ms = realtime_ms;   // times shown
  SetClock sets;                                     // the sets' expiry
};

// What the service is built on; it owns them from then on.
struct FirewallParts {
  // Held for the service's life; null: the service locks the state folder.
  std::unique_ptr<AgentLock> lock;
  std::unique_ptr<Datapath> datapath;
  std::unique_ptr<Attacher> attacher;
  ServiceClock clock;
};

// The log folder is created if missing and must be root's alone (the agent
// appends to a file in it as root); throws with the reason.
void check_log_dir(const FirewallConfig& cfg);

class FirewallService {
 public:
  using Log = AttachManager::Log;
  // Installs the rule set of the previous run or the rules file's; throws
  // with a message for the operator.
  FirewallService(const FirewallConfig& cfg, Log log, FirewallParts parts);
  ~FirewallService();

  // Validates a config on its own (--check-config); throws with the reason.
  static void check(const FirewallConfig& cfg);
  // Validates what reload would apply to this running firewall; throws.
  void check_reload(const FirewallConfig& cfg) const;
  // Applies a new config whole (or throws having changed nothing); force:
  // the rules file even if unchanged. The config's sets ("set =") come and
  // go with it: new ones are made before the rules naming them, those whose
  // line is gone are removed with their elements once no rule names them;
  // sets made with 'set create' stay. Answers what was applied.
  std::string reload(const FirewallConfig& cfg, bool force = false);

  void on_link(AttachManager::Change change, int ifindex, const std::string& name,
               const std::string& kind, bool up);
  CommandOutput set_manual(const std::string& name, Interface::Manual how);

  // Run-time rule changes: each is installed whole or not at all.
  CommandOutput rule_add(Rule rule);
  CommandOutput rule_del(uint32_t id);
  CommandOutput rule_flush();
  // confirm: the new set reverts to the one before it unless rule_confirm()
  // comes within that many seconds (settle() reverts).
  CommandOutput rule_replace(std::optional<uint64_t> confirm, const std::string& payload);
  CommandOutput rule_confirm();
  // Compiles a payload as 'rule replace' would and reports; changes nothing.
  CommandOutput rule_check(const std::string& payload);
  CommandOutput save(const std::string& path);

  // Address sets (docs/CONTROL.md, "Address sets").
  CommandOutput set_create(const SetSpec& spec);
  CommandOutput set_add(const std::string& set, const Prefix& p, std::optional<uint64_t> timeout_s);
  // if_present: an absent element is not an error (fail2ban's unban can
  // come after the element's own timeout reaped it).
  CommandOutput set_del(const std::string& set, const Prefix& p, bool if_present);
  CommandOutput set_flush(const std::string& set);
  CommandOutput set_load(const std::string& set, const std::vector<SetItem>& items);
  CommandOutput set_destroy(const std::string& set);
  CommandOutput log_reopen();

  // Packet events: watch this fd on the loop and call on_events when it is
  // readable. watchers(): the live streams of "show events".
  int events_fd() { return dp_->events_fd(); }
  void on_events() { events_.drain(); }
  WatcherHub& watchers() { return events_.watchers(); }
  // Housekeeping the loop runs on a timer: a replace on trial reverted at
  // its deadline, a settled change of the rules on disk applied, the
  // datapath's catch-up (Datapath::settle), expired set elements reaped; an
  // error is logged, and the next change meets it again.
  void settle();

  // The rules file or directory, watched (inotify) with watch-rules: a
  // change is applied by itself, all or nothing, watch-delay after the last
  // event (settle() looks); a rule set that does not compile is refused,
  // the running one stays, and "show rules-source" and the metrics say so.
  int rules_watch_fd() const { return source_.fd(); }
  void on_rules_event() { source_.on_event(); }

  // What the views (service_views.hpp) read.
  const FirewallConfig& config() const { return cfg_; }
  const RuleStore& store() const { return store_; }
  const AddressSets& sets() const { return sets_; }
  const Datapath& datapath() const { return *dp_; }
  const AttachManager& attachments() const { return attach_; }
  const EventPipeline& events() const { return events_; }
  const RulesSource& source() const { return source_; }
  // A replace on trial: the rules it reverts to, the seconds left.
  struct Trial {
    size_t reverts_to = 0;
    uint64_t seconds_left = 0;
  };
  std::optional<Trial> trial() const;
  // Packets and bytes per rule id: the datapath's, plus what a rule brought
  // back by a reverted trial had counted before it (the kernel's count
  // restarted when the trial removed it).
  std::unordered_map<uint32_t, RuleCounters> rule_counters() const;
  // The ids of the rules naming a set.
  std::vector<uint32_t> rules_using(std::string_view set) const;

 private:
  struct SetPlan;
  // Parses, compiles and installs a source's rules (throws, changing
  // nothing); keeps where each rule comes from.
  void apply_source(const RulesText& src);
  FirewallConfig reloadable(const FirewallConfig& cfg) const;
  // Installs list, then makes it the store's; errors leave both unchanged.
  void install(std::vector<Rule> list);
  void open_log();
  std::string ifname(int ifindex) const;
  void save_state();                      // rules.state written whole, the journal emptied
  void journal(const std::string& line);  // one rule change, appended
  std::vector<Rule> read_state();
  std::string state_file(const char* name) const;
  // Set references of rules resolved to set ids (by plan: as a reload
  // would leave the sets); throws RuleError naming a rule and a set that
  // does not exist.
  void resolve(Rule& r, const SetPlan* plan = nullptr) const;
  // src, lines (as parse_rules_text gives them): the FILE:LINE of a rule
  // naming a missing set.
  void resolve(std::vector<Rule>& list, const SetPlan* plan = nullptr,
               const RulesText* src = nullptr, const std::vector<unsigned>* lines = nullptr) const;
  SetPlan plan_sets(const FirewallConfig& next) const;
  void restore_sets();                        // sets.state and sets.journal
  void save_sets();                           // sets.state written whole
  void set_journal(const std::string& line);  // one set change, appended

  FirewallConfig cfg_;
  Log log_;
  ServiceClock clock_;
  std::unique_ptr<AgentLock> lock_;
  std::unique_ptr<Datapath> dp_;
  std::unique_ptr<Attacher> attacher_;
  AttachManager attach_;
  RuleStore store_;
  AddressSets sets_;
  StateJournal rules_state_, sets_state_;
  uint32_t resumed_id_high_water_ = 0;                // from the state of the previous run
  std::optional<std::string> saved_rules_file_text_;  // as last written to state-dir
  EventPipeline events_;
  RulesSource source_;
  // A "rule replace confirm" not confirmed yet: the set it replaced.
  struct PendingRevert {
    std::vector<Rule> rules;
    std::map<uint32_t, std::string> origins;
    std::unordered_map<uint32_t, RuleCounters> counters;  // of rules, at the replace
    uint64_t deadline_ms;                                 // monotonic
  };
  std::optional<PendingRevert> pending_;
  std::unordered_map<uint32_t, RuleCounters> carried_;  // see rule_counters()
  void give_back_heap();      // malloc_trim when the heap holds much more free
  size_t heap_free_low_ = 0;  // free heap bytes: the lowest since the last trim
};

}  // namespace xdpfw
