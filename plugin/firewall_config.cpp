// firewall_config.cpp: see firewall_config.hpp.
#include "firewall_config.hpp"

#include <fnmatch.h>

#include <charconv>

namespace xdpfw {
namespace {

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ' ' || c == ',' || c == '\t') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::string where(const std::string& file, const ConfigLine& l) {
  return (file.empty() ? "<config>" : file) + ":" + std::to_string(l.line) + ": " + l.key + ": ";
}

Action parse_action(const std::string& file, const ConfigLine& l) {
  if (l.value == "pass") return Action::pass;
  if (l.value == "drop") return Action::drop;
  throw FirewallConfigError(where(file, l) + "'" + l.value + "' is not pass or drop");
}

bool parse_bool(const std::string& file, const ConfigLine& l) {
  if (l.value == "yes" || l.value == "true" || l.value == "on") return true;
  if (l.value == "no" || l.value == "false" || l.value == "off") return false;
  throw FirewallConfigError(where(file, l) + "'" + l.value + "' is not yes or no");
}

}  // namespace

const char* attach_mode_name(AttachMode m) {
  switch (m) {
    case AttachMode::automatic: return "auto";
    case AttachMode::native: return "native";
    case AttachMode::generic: return "generic";
  }
  return "?";
}

bool FirewallConfig::selects(const std::string& ifname) const {
  auto any = [&](const std::vector<std::string>& pats) {
    for (const auto& p : pats)
      if (fnmatch(p.c_str(), ifname.c_str(), 0) == 0) return true;
    return false;
  };
  return any(include) && !any(exclude);
}

FirewallConfig parse_firewall_config(const std::string& file,
                                     const std::vector<ConfigLine>& lines) {
  FirewallConfig c;
  for (const ConfigLine& l : lines) {
    if (l.key == "interfaces") {
      c.include = words(l.value);
    } else if (l.key == "exclude") {
      c.exclude = words(l.value);
    } else if (l.key == "mode") {
      if (l.value == "auto")
        c.mode = AttachMode::automatic;
      else if (l.value == "native")
        c.mode = AttachMode::native;
      else if (l.value == "generic")
        c.mode = AttachMode::generic;
      else
        throw FirewallConfigError(where(file, l) + "'" + l.value +
                                  "' is not a mode (expected auto, native or generic)");
    } else if (l.key == "takeover") {
      c.takeover = parse_bool(file, l);
    } else if (l.key == "rules") {
      c.rules_file = l.value;
    } else if (l.key == "default-action") {
      c.policy.default_action = parse_action(file, l);
    } else if (l.key == "malformed-action") {
      c.policy.malformed_action = parse_action(file, l);
    } else if (l.key == "log-dir") {
      if (l.value.empty() || l.value[0] != '/')
        throw FirewallConfigError(where(file, l) + "'" + l.value + "' is not an absolute path");
      c.log_dir = l.value;
    } else if (l.key == "pin-root" || l.key == "state-dir") {
      if (l.value != "none" && (l.value.empty() || l.value[0] != '/'))
        throw FirewallConfigError(where(file, l) + "'" + l.value +
                                  "' is not an absolute path or none");
      (l.key == "pin-root" ? c.pin_root : c.state_dir) = l.value;
    } else if (l.key == "persistent") {
      c.persistent = parse_bool(file, l);
    } else if (l.key == "log-file") {
      if (l.value.empty() || l.value.find('/') != std::string::npos)
        throw FirewallConfigError(where(file, l) + "'" + l.value +
                                  "' is not a file name (no '/'; the folder is log-dir)");
      c.log_file = l.value;
    } else if (l.key == "event-rate" || l.key == "event-burst") {
      uint64_t v = 0;
      auto [p, ec] = std::from_chars(l.value.data(), l.value.data() + l.value.size(), v);
      if (l.value.empty() || ec != std::errc() || p != l.value.data() + l.value.size() ||
          v > 100000000)
        throw FirewallConfigError(where(file, l) + "'" + l.value + "' is not a number 0-100000000");
      (l.key == "event-rate" ? c.event_rate : c.event_burst) = v;
    } else if (l.key == "max-rules") {
      uint32_t v = 0;
      auto [p, ec] = std::from_chars(l.value.data(), l.value.data() + l.value.size(), v);
      if (l.value.empty() || ec != std::errc() || p != l.value.data() + l.value.size() || v == 0 ||
          v > 16u << 20)
        throw FirewallConfigError(where(file, l) + "'" + l.value + "' is not a number 1-16777216");
      c.max_rules = v;
    } else {
      throw FirewallConfigError(
          (file.empty() ? "<config>" : file) + ":" + std::to_string(l.line) + ": unknown key '" +
          l.key +
          "' in [plugin.xdpfw] (expected interfaces, exclude, mode, takeover, rules, "
          "default-action, malformed-action, max-rules, log-dir, log-file, event-rate, "
          "event-burst)");
    }
  }
  return c;
}

}  // namespace xdpfw
