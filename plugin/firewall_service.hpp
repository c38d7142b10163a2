// firewall_service.hpp: the firewall, built from parts that each own one
// thing: the rule store and its persistence (here), a Datapath (the
// kernel's, or a fake in unit tests), the attach manager over an Attacher,
// and the event pipeline. libxdpfw.so is a thin adapter from the plugin C
// ABI to this class; unit tests drive it without root.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "address_sets.hpp"
#include "agent_lock.hpp"
#include "attach_manager.hpp"
#include "datapath.hpp"
#include "event_pipeline.hpp"
#include "firewall_config.hpp"
#include "rule_store.hpp"

namespace xdpfw {

struct CommandOutput {
  bool ok = true;
  std::string text;
  bool stream = false;  // the connection becomes a live stream
};

// What the service is built on; it owns them from then on.
struct FirewallParts {
  // Held for the service's life; null: the service locks the state folder.
  std::unique_ptr<AgentLock> lock;
  std::unique_ptr<Datapath> datapath;
  std::unique_ptr<Attacher> attacher;
};

// The log folder is created if missing and must be root's alone (the agent
// appends to a file in it as root); throws with the reason.
void check_log_dir(const FirewallConfig& cfg);

// The kernel's parts for cfg: the log folder checked, bpffs mounted where it
// is missing, the pin folders locked, the program loaded (its maps resumed
// from the pins), and an attacher of bpf_links. Throws with a message for
// the operator.
FirewallParts kernel_parts(const FirewallConfig& cfg);

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
  // the rules file even if unchanged. Answers what was applied.
  std::string reload(const FirewallConfig& cfg, bool force = false);

  void on_link(AttachManager::Change change, int ifindex, const std::string& name,
               const std::string& kind, bool up);

  CommandOutput show_interfaces(bool json) const;
  CommandOutput show_stats(bool json) const;
  CommandOutput rule_list(bool json) const;
  CommandOutput set_manual(const std::string& name, Interface::Manual how);

  // Run-time rule changes: each is installed whole or not at all.
  CommandOutput rule_add(const std::string& spec);
  CommandOutput rule_del(const std::string& id);
  CommandOutput rule_flush();
  // args "confirm N": the new set reverts to the one before it unless
  // rule_confirm() comes within N seconds (settle() reverts).
  CommandOutput rule_replace(const std::string& args, const std::string* payload);
  CommandOutput rule_confirm();
  // Compiles a payload as 'rule replace' would and reports; changes nothing.
  CommandOutput rule_check(const std::string* payload);
  CommandOutput save(const std::string& path);
  CommandOutput show_config(bool json) const;

  // Address sets (docs/CONTROL.md, "Address sets").
  CommandOutput set_create(const std::string& args);
  CommandOutput set_add(const std::string& args);
  CommandOutput set_del(const std::string& args);
  CommandOutput set_flush(const std::string& args);
  CommandOutput set_list(const std::string& args) const;
  CommandOutput set_load(const std::string& args, const std::string* payload);
  CommandOutput set_destroy(const std::string& args);
  const AddressSets& sets() const { return sets_; }
  CommandOutput show_metrics() const;
  CommandOutput log_reopen();

  // Packet events: watch this fd on the loop and call on_events when it is
  // readable. watchers(): the live streams of "show events".
  int events_fd() { return dp_->events_fd(); }
  void on_events() { events_.drain(); }
  WatcherHub& watchers() { return events_.watchers(); }
  // Housekeeping the loop runs on a timer (Datapath::settle, expired set
  // elements reaped); an error is logged, and the next change meets it again.
  void settle();

  // The rules file or directory, watched (inotify) with watch-rules: a
  // change is applied by itself, all or nothing, watch-delay after the last
  // event (settle() looks); a rule set that does not compile is refused,
  // the running one stays, and "show rules-source" and the metrics say so.
  int rules_watch_fd() const { return watch_fd_; }
  void on_rules_event();
  CommandOutput show_rules_source(bool json) const;
  // One screen for "is this host all right": the rules and where they come
  // from, a refused change on disk, a replace on trial and its time left,
  // the interfaces, the sets.
  CommandOutput show_status(bool json) const;

 private:
  void watch_rules(bool retry = false);  // (re)arms the watch on cfg_.rules_file
  void apply_watched();
  // Parses, compiles and installs a source's rules (throws, changing
  // nothing); keeps where each rule comes from.
  void apply_source(const RulesSource& src, const FirewallConfig& cfg);
  void source_applied();  // the status after the rules on disk were applied
  void source_refused(const std::string& why);
  void keep_origins(const RulesSource& src, const std::vector<Rule>& list,
                    const std::vector<unsigned>& lines);
  FirewallConfig reloadable(const FirewallConfig& cfg) const;
  // Installs list, then makes it the store's; errors leave both unchanged.
  void install(std::vector<Rule> list);
  void open_log();
  std::string ifname(int ifindex) const;
  // Every counter of "show stats" and "show metrics", in order: name, value.
  std::vector<std::pair<std::string, uint64_t>> counters() const;
  void save_state();                      // the rule list, for a restart (also after kill -9)
  void journal(const std::string& line);  // one change, appended
  std::vector<Rule> read_state();
  std::string state_file(const char* name) const;
  // Set references of rules resolved to set ids; throws RuleError naming
  // a set that does not exist.
  void resolve(Rule& r) const;
  void resolve(std::vector<Rule>& list) const;
  std::vector<uint32_t> rules_using(std::string_view set) const;
  void declare_sets(const FirewallConfig& cfg);  // the config's "set =" lines
  void restore_sets();                           // sets.state and sets.journal
  void save_sets();                              // sets.state written whole
  void set_journal(const std::string& line);     // one set change, appended

  FirewallConfig cfg_;
  Log log_;
  std::unique_ptr<AgentLock> lock_;
  std::unique_ptr<Datapath> dp_;
  std::unique_ptr<Attacher> attacher_;
  AttachManager attach_;
  RuleStore store_;
  AddressSets sets_;
  int set_journal_fd_ = -1;
  size_t set_journal_lines_ = 0;
  size_t journal_lines_ = 0;
  uint32_t resumed_id_high_water_ = 0;                // from the state of the previous run
  std::string rules_file_text_;                       // the rules file as last applied
  std::optional<std::string> saved_rules_file_text_;  // as last written to state-dir
  EventPipeline events_;
  // The rules source: where each rule was read (id -> FILE:LINE), the watch
  // and what became of the last change on disk.
  std::map<uint32_t, std::string> origins_;
  // A "rule replace confirm" not confirmed yet: the set it replaced.
  struct PendingRevert {
    std::vector<Rule> rules;
    std::map<uint32_t, std::string> origins;
    uint64_t deadline_ms;  // monotonic
  };
  std::optional<PendingRevert> pending_;
  std::vector<std::string> source_files_;
  int watch_fd_ = -1, watch_wd_ = -1;
  std::string watch_name_;      // a rules file's name in the watched folder; "": a directory
  uint64_t watch_lost_ms_ = 0;  // when the watch went (the folder removed); 0: it is there
  uint64_t dirty_ms_ = 0;       // the last event not yet acted on; 0: none
  struct SourceStatus {
    std::string result = "none";  // applied, refused
    std::string message;
    uint64_t at_ms = 0;  // wall clock
    uint64_t applied = 0, refused = 0;
  } source_status_;
};

}  // namespace xdpfw
