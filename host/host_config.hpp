// host_config.hpp: the host's settings from the command line
// (Boost.Program_options) and the INI config file; the command line wins.
// Errors name the file and line.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "default_paths.hpp"
#include "log.hpp"

namespace xdpfw::host {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct IniEntry {
  std::string key, value;
  unsigned line = 0;
};

struct IniSection {
  std::string name;
  unsigned line = 0;
  std::vector<IniEntry> entries;
};

// "[section]" headers, "key = value" lines, "#" and ";" comments. Keys
// before any section belong to [host].
std::vector<IniSection> parse_ini(const std::string& path, std::string_view text);

struct ControlLimits {
  size_t max_line = 64 * 1024;
  size_t max_payload = 16 * 1024 * 1024;
  size_t max_clients = 1024;
  // Clients of one uid (root and the agent's own uid excepted); never more
  // than max_clients minus the slots kept for root (per_uid_cap()).
  size_t max_clients_per_uid = 64;
  unsigned idle_timeout_s = 300;
  size_t max_output = 64 * 1024 * 1024;  // unread reply bytes before a client is dropped
  // All clients together: unread replies plus input not yet run. Past it the
  // client holding the most is closed. Read-only clients get a quarter of
  // max_payload and max_output each.
  size_t max_memory = 256 * 1024 * 1024;
  bool operator==(const ControlLimits&) const = default;
};

// [host] metrics-listen: where the HTTP listener serves GET /metrics.
struct ListenAddress {
  std::string address;  // numeric IPv4 or IPv6 (without brackets)
  uint16_t port = 0;
  std::string where;         // "FILE:LINE: " of the key, for errors found later (bind)
  std::string text() const;  // "127.0.0.1:9477", "[::1]:9477"
  bool operator==(const ListenAddress& o) const { return address == o.address && port == o.port; }
};

// "127.0.0.1:9477", "[::1]:9477"; std::nullopt and an error otherwise.
std::optional<ListenAddress> parse_listen_address(std::string_view text, std::string& error);

struct HostConfig {
  std::string config_file;  // "" when none
  std::vector<std::string> plugins;
  std::string socket_path = default_socket_path;
  std::string socket_group;  // "" : the agent's own group
  mode_t socket_mode = 0660;
  LogLevel log_level = LogLevel::info;
  ControlLimits limits;
  size_t netlink_rcvbuf = 8 << 20;  // link monitor socket; tiny values force overflows (tests)
  std::optional<ListenAddress> metrics_listen;        // none: no HTTP listener (the default)
  std::map<std::string, IniSection> plugin_sections;  // [plugin.NAME] by NAME
};

struct CommandLine {
  enum class Action { run, help, version, check_config } action = Action::run;
  std::string help_text;
  std::optional<std::string> config_file;
  std::vector<std::string> plugins;
  std::optional<std::string> socket_path;
  std::optional<LogLevel> log_level;
};

inline constexpr const char* default_config_file = "/etc/xdpfw/xdpfw.conf";

// Throws ConfigError for unknown options and bad values.
CommandLine parse_command_line(int argc, const char* const* argv);

// Reads the config file named on the command line (or nothing) and applies
// the command line over it. Throws ConfigError ("FILE:LINE: ...").
HostConfig load_config(const CommandLine& cli);

// Applies one [host] section over cfg; exposed for tests.
void apply_host_section(HostConfig& cfg, const std::string& file, const IniSection& s);

}  // namespace xdpfw::host
