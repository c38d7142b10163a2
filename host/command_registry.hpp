// command_registry.hpp: the control commands of the host and its plugins.
// A command is one or more words ("show plugins"); the longest registered
// name that prefixes a request wins, the rest of the line is its argument.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xdpfw::host {

struct CommandResult {
  bool ok = true;
  std::string text;
  uint64_t stream = 0;  // the connection becomes this live stream
  bool close = false;   // the connection ends after this answer ("quit")
};

using CommandFn = std::function<CommandResult(std::string_view args, const std::string* payload)>;

struct Command {
  uint64_t id = 0;
  uint64_t owner = 0;  // 0: the host; else the plugin's id
  std::vector<std::string> words;
  std::string usage;
  bool mutates = false;
  CommandFn fn;
  std::string name() const;
};

class CommandRegistry {
 public:
  // Returns the id, or throws std::invalid_argument (empty or taken name).
  uint64_t add(uint64_t owner, std::string_view name, std::string usage, bool mutates,
               CommandFn fn);
  void remove_owner(uint64_t owner);
  // The command a line names, and the argument text after its name.
  std::optional<std::pair<const Command*, std::string_view>> find(std::string_view line) const;
  const std::vector<Command>& all() const { return commands_; }

 private:
  std::vector<Command> commands_;
  uint64_t next_id_ = 1;
};

}  // namespace xdpfw::host
