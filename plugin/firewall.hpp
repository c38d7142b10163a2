// firewall.hpp: the firewall as the plugin runs it: the loaded datapath,
// the rules, the attach manager, and the text and JSON of its commands.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent_lock.hpp"
#include "attach_manager.hpp"
#include "datapath.hpp"
#include "event_log.hpp"
#include "firewall_config.hpp"
#include "rule_store.hpp"
#include "xdp_attacher.hpp"

struct perf_buffer;  // libbpf

namespace xdpfw {

struct CommandOutput {
  bool ok = true;
  std::string text;
  bool stream = false;  // the connection becomes a live stream
};

class Firewall {
 public:
  using Log = AttachManager::Log;
  // Loads the program, reads the rules file and installs its rules; throws
  // with a message for the operator.
  Firewall(const FirewallConfig& cfg, Log log);
  ~Firewall();

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
  CommandOutput force(const std::string& name, Interface::Sticky how);

  // Run-time rule changes: each is installed whole or not at all.
  CommandOutput rule_add(const std::string& spec);
  CommandOutput rule_del(const std::string& id);
  CommandOutput rule_flush();
  CommandOutput rule_replace(const std::string* payload);
  // Compiles a payload as 'rule replace' would and reports; changes nothing.
  CommandOutput rule_check(const std::string* payload);
  CommandOutput save(const std::string& path);
  CommandOutput show_config(bool json) const;
  CommandOutput show_metrics() const;
  CommandOutput log_reopen();

  // The perf buffer of unmatched-packet events: watch this fd on the loop
  // and call on_events when it is readable.
  int events_fd() const;
  void on_events();
  // Also hands every event line to sink (the live watchers), if set.
  void set_event_sink(std::function<void(const std::string&)> sink) { sink_ = std::move(sink); }

 private:
  FirewallConfig reloadable(const FirewallConfig& cfg) const;
  // Installs list, then makes it the store's; errors leave both unchanged.
  void install(std::vector<Rule> list);
  void open_log();
  void save_state();                      // the rule list, for a restart (also after kill -9)
  void journal(const std::string& line);  // one change, appended
  std::vector<Rule> read_state();
  std::string state_file(const char* name) const;
  static void on_sample(void* self, int cpu, void* data, unsigned size);
  static void on_lost(void* self, int cpu, unsigned long long n);

  FirewallConfig cfg_;
  Log log_;
  AgentLock lock_;  // before the maps are touched
  Datapath dp_;
  XdpAttacher attacher_;
  AttachManager attach_;
  RuleStore store_;
  size_t journal_lines_ = 0;
  uint32_t resumed_id_high_water_ = 0;                // from the state of the previous run
  std::string rules_file_text_;                       // the rules file as last applied
  std::optional<std::string> saved_rules_file_text_;  // as last written to state-dir
  std::unique_ptr<EventLog> log_file_;
  ::perf_buffer* events_ = nullptr;
  uint64_t events_lost_ = 0;  // overwritten in the perf ring before we read them
  int64_t realtime_offset_ns_ = 0;
  std::function<void(const std::string&)> sink_;
};

}  // namespace xdpfw
