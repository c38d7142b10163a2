// firewall.hpp: the firewall as the plugin runs it: the loaded datapath,
// the rules, the attach manager, and the text and JSON of its commands.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "attach_manager.hpp"
#include "datapath.hpp"
#include "firewall_config.hpp"
#include "rule_store.hpp"
#include "xdp_attacher.hpp"

namespace xdpfw {

struct CommandOutput {
  bool ok = true;
  std::string text;
};

class Firewall {
 public:
  using Log = AttachManager::Log;
  // Loads the program, reads the rules file and installs its rules; throws
  // with a message for the operator.
  Firewall(const FirewallConfig& cfg, Log log);
  ~Firewall();

  // Validates what reload would apply; throws with the reason.
  static void check(const FirewallConfig& cfg);
  void reload(const FirewallConfig& cfg);

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
  CommandOutput save(const std::string& path);
  CommandOutput show_config(bool json) const;
  CommandOutput show_metrics() const;

 private:
  // Installs list, then makes it the store's; errors leave both unchanged.
  void install(std::vector<Rule> list);

  FirewallConfig cfg_;
  Log log_;
  Datapath dp_;
  XdpAttacher attacher_;
  AttachManager attach_;
  RuleStore store_;
  std::string rules_file_text_;  // the rules file as last applied
};

}  // namespace xdpfw
