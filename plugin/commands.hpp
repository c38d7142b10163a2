// commands.hpp: the firewall's control commands, one table: name, usage,
// flags, and a handler that parses the command's words and payload into
// the typed calls of the service (firewall_service.hpp) and its views
// (service_views.hpp). The plugin registers the table with the host;
// tests run commands through it as a client would send them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "firewall_service.hpp"

namespace xdpfw {

// args: the words after the command's name; payload: the '<<' block
// (null: none).
using CommandHandler = std::function<CommandOutput(FirewallService&, const std::string& args,
                                                   const std::string* payload)>;

struct CommandSpec {
  const char* name;
  const char* usage;
  uint32_t flags;  // XDPFW_CMD_* (host/xdpfw_plugin.h)
  CommandHandler fn;
  bool needs_streams = false;  // registered only where the host has them
};

// In the order 'help' lists them.
const std::vector<CommandSpec>& firewall_commands();

// The command called name, run as the host would run it (an unknown name
// is an error answer).
CommandOutput run_command(FirewallService& fw, std::string_view name, const std::string& args,
                          const std::string* payload = nullptr);

}  // namespace xdpfw
