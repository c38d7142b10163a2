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

 private:
  FirewallConfig cfg_;
  Log log_;
  Datapath dp_;
  XdpAttacher attacher_;
  AttachManager attach_;
  std::vector<Rule> rules_;
};

}  // namespace xdpfw
