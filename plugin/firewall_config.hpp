// firewall_config.hpp: the [plugin.xdpfw] section: which interfaces, how to
// attach, the rules file and the policies. Errors name file and line.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "address_sets.hpp"
#include "rule_compiler.hpp"
#include "rules_file.hpp"

namespace xdpfw {

class FirewallConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class AttachMode { automatic, native, generic };
const char* attach_mode_name(AttachMode m);

struct ConfigLine {
  std::string key, value;
  unsigned line = 0;
};

struct FirewallConfig {
  std::vector<std::string> include;  // glob patterns; none: attach nothing by itself
  std::vector<std::string> exclude = {"lo"};
  AttachMode mode = AttachMode::automatic;  // native, falling back to generic
  bool takeover = false;                    // replace another XDP program
  std::string rules_file;                   // "" : start with no rules; a file or a directory
  bool watch_rules = true;                  // changes on disk applied by themselves
  uint32_t watch_delay_ms = 200;            // after the last change seen
  uint64_t rules_max_bytes = default_rules_max_bytes;  // the whole rules source
  Policy policy;
  uint32_t max_rules = XDPFW_DEFAULT_MAX_RULES;
  uint64_t max_set_elements = XDPFW_DEFAULT_SET_ELEMENTS;  // all address sets together
  std::vector<SetSpec> sets;  // "set = NAME [timeout DUR] [max N]", one line each
  std::string log_dir = "/var/log/xdpfw";
  std::string log_file = "firewall_log.json";
  uint64_t event_rate = 1000;  // unmatched-packet events per second, all CPUs; 0: off
  uint64_t event_burst = 1000;
  std::string log_path() const { return log_dir + "/" + log_file; }
  // Maps (and, with persistent, links) are pinned under pin_root; "none"
  // turns pinning off. The rule list is kept in state_dir ("none": off).
  std::string pin_root = "/sys/fs/bpf/xdpfw";
  std::string state_dir = "/var/lib/xdpfw";
  bool persistent = false;  // XDP stays attached while the agent is down

  // Whether the patterns select this interface name.
  bool selects(const std::string& ifname) const;
};

// Throws FirewallConfigError naming file, line and key.
FirewallConfig parse_firewall_config(const std::string& file, const std::vector<ConfigLine>& lines);

// The keys of the section, each once: parsing, "show config" and the
// unknown-key message all read this list.
struct ConfigKey {
  const char* name;
  std::function<void(FirewallConfig&, const std::string& file, const ConfigLine&)> parse;
  std::function<nlohmann::json(const FirewallConfig&)> show;
};
const std::vector<ConfigKey>& config_keys();

}  // namespace xdpfw
