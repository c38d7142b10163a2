// command_registry.cpp: see command_registry.hpp.
#include "command_registry.hpp"

#include "text.hpp"

#include <algorithm>
#include <stdexcept>

namespace xdpfw::host {

std::string Command::name() const {
  std::string n;
  for (const auto& w : words) n += (n.empty() ? "" : " ") + w;
  return n;
}

uint64_t CommandRegistry::add(uint64_t owner, std::string_view name, std::string usage,
                              bool mutates, CommandFn fn) {
  std::vector<std::string> words;
  for (std::string_view w : split_words(name)) words.emplace_back(w);
  if (words.empty()) throw std::invalid_argument("a command needs a name");
  for (const auto& c : commands_)
    if (c.words == words)
      throw std::invalid_argument("command '" + c.name() + "' is already registered");
  Command c{next_id_++, owner, std::move(words), std::move(usage), mutates, std::move(fn)};
  commands_.push_back(std::move(c));
  std::sort(commands_.begin(), commands_.end(),
            [](const Command& a, const Command& b) { return a.name() < b.name(); });
  return next_id_ - 1;
}

void CommandRegistry::remove_owner(uint64_t owner) {
  std::erase_if(commands_, [&](const Command& c) { return c.owner == owner; });
}

std::optional<std::pair<const Command*, std::string_view>> CommandRegistry::find(
    std::string_view line) const {
  const Command* best = nullptr;
  size_t best_end = 0;
  for (const Command& c : commands_) {
    size_t pos = 0;
    bool ok = true;
    for (const auto& w : c.words) {
      while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t')) ++pos;
      if (line.substr(pos, w.size()) != w) {
        ok = false;
        break;
      }
      pos += w.size();
      if (pos < line.size() && line[pos] != ' ' && line[pos] != '\t') {
        ok = false;
        break;
      }
    }
    if (ok && (!best || c.words.size() > best->words.size())) {
      best = &c;
      best_end = pos;
    }
  }
  if (!best) return std::nullopt;
  std::string_view args = line.substr(best_end);
  while (!args.empty() && (args.front() == ' ' || args.front() == '\t')) args.remove_prefix(1);
  return std::make_pair(best, args);
}

}  // namespace xdpfw::host
