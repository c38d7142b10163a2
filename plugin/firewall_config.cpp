// firewall_config.cpp: see firewall_config.hpp.
#include "firewall_config.hpp"

#include <fnmatch.h>

#include <algorithm>
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

// Each key once: how a line sets it, and how it is shown ("show config").
const std::vector<ConfigKey>& config_keys() {
  using C = FirewallConfig;
  using L = ConfigLine;
  using S = const std::string&;
  auto path = [](S file, const L& l, bool none_ok) {
    if ((none_ok && l.value == "none") || (!l.value.empty() && l.value[0] == '/')) return l.value;
    throw FirewallConfigError(where(file, l) + "'" + l.value + "' is not an absolute path" +
                              (none_ok ? " or none" : ""));
  };
  auto number = [](S file, const L& l, uint64_t lo, uint64_t hi) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(l.value.data(), l.value.data() + l.value.size(), v);
    if (l.value.empty() || ec != std::errc() || p != l.value.data() + l.value.size() || v < lo ||
        v > hi)
      throw FirewallConfigError(where(file, l) + "'" + l.value + "' is not a number " +
                                std::to_string(lo) + "-" + std::to_string(hi));
    return v;
  };
  static const std::vector<ConfigKey> keys = {
      {"interfaces", [](C& c, S, const L& l) { c.include = words(l.value); },
       [](const C& c) { return nlohmann::json(c.include); }},
      {"exclude", [](C& c, S, const L& l) { c.exclude = words(l.value); },
       [](const C& c) { return nlohmann::json(c.exclude); }},
      {"mode",
       [](C& c, S file, const L& l) {
         for (AttachMode m : {AttachMode::automatic, AttachMode::native, AttachMode::generic})
           if (l.value == attach_mode_name(m)) return void(c.mode = m);
         throw FirewallConfigError(where(file, l) + "'" + l.value +
                                   "' is not a mode (expected auto, native or generic)");
       },
       [](const C& c) { return nlohmann::json(attach_mode_name(c.mode)); }},
      {"takeover", [](C& c, S file, const L& l) { c.takeover = parse_bool(file, l); },
       [](const C& c) { return nlohmann::json(c.takeover); }},
      {"rules", [](C& c, S, const L& l) { c.rules_file = l.value; },
       [](const C& c) { return nlohmann::json(c.rules_file); }},
      {"watch-rules", [](C& c, S file, const L& l) { c.watch_rules = parse_bool(file, l); },
       [](const C& c) { return nlohmann::json(c.watch_rules); }},
      {"watch-delay",
       [number](C& c, S file, const L& l) {
         std::string v = l.value;
         if (v.size() > 2 && v.compare(v.size() - 2, 2, "ms") == 0) v.resize(v.size() - 2);
         L ms = l;
         ms.value = v;
         c.watch_delay_ms = static_cast<uint32_t>(number(file, ms, 0, 60000));
       },
       [](const C& c) { return nlohmann::json(std::to_string(c.watch_delay_ms) + "ms"); }},
      {"rules-max-size",
       [](C& c, S file, const L& l) {
         // N bytes, or NK / NM (KiB, MiB): 1K to 1024M.
         std::string v = l.value;
         uint64_t unit = 1;
         if (!v.empty() && (v.back() == 'K' || v.back() == 'k')) unit = 1024, v.pop_back();
         if (!v.empty() && (v.back() == 'M' || v.back() == 'm')) unit = 1u << 20, v.pop_back();
         auto n = parse_uint<uint64_t>(v, UINT64_MAX);
         if (!n || *n > (1ull << 30) / unit || *n * unit < 1024)
           throw FirewallConfigError(where(file, l) + "'" + l.value +
                                     "' is not a size from 1K to 1024M (N bytes, NK or NM)");
         c.rules_max_bytes = *n * unit;
       },
       [](const C& c) { return nlohmann::json(c.rules_max_bytes); }},
      {"default-action",
       [](C& c, S file, const L& l) { c.policy.default_action = parse_action(file, l); },
       [](const C& c) { return nlohmann::json(action_name(c.policy.default_action)); }},
      {"audit", [](C& c, S file, const L& l) { c.policy.audit = parse_bool(file, l); },
       [](const C& c) { return nlohmann::json(c.policy.audit); }},
      {"malformed-action",
       [](C& c, S file, const L& l) { c.policy.malformed_action = parse_action(file, l); },
       [](const C& c) { return nlohmann::json(action_name(c.policy.malformed_action)); }},
      {"mapped-ipv6",
       [](C& c, S file, const L& l) { c.policy.mapped_ipv6 = parse_action(file, l); },
       [](const C& c) { return nlohmann::json(action_name(c.policy.mapped_ipv6)); }},
      {"max-rules",
       [number](C& c, S file, const L& l) {
         c.max_rules = static_cast<uint32_t>(number(file, l, 1, 16u << 20));
       },
       [](const C& c) { return nlohmann::json(c.max_rules); }},
      {"max-set-elements",
       [number](C& c, S file, const L& l) { c.max_set_elements = number(file, l, 1, 1u << 31); },
       [](const C& c) { return nlohmann::json(c.max_set_elements); }},
      {"set",
       [](C& c, S file, const L& l) {
         SetSpec spec;
         try {
           spec = parse_set_spec(l.value);
         } catch (const SetError& e) {
           throw FirewallConfigError(where(file, l) + e.what());
         }
         for (const SetSpec& x : c.sets)
           if (x.name == spec.name)
             throw FirewallConfigError(where(file, l) + "set " + spec.name + " declared twice");
         c.sets.push_back(spec);
       },
       [](const C& c) {
         nlohmann::json j = nlohmann::json::array();
         for (const SetSpec& s : c.sets) j.push_back(format_set_spec(s));
         return j;
       }},
      {"log-dir", [path](C& c, S file, const L& l) { c.log_dir = path(file, l, false); },
       [](const C& c) { return nlohmann::json(c.log_dir); }},
      {"log-file",
       [](C& c, S file, const L& l) {
         if (l.value.empty() || l.value.find('/') != std::string::npos)
           throw FirewallConfigError(where(file, l) + "'" + l.value +
                                     "' is not a file name (no '/'; the folder is log-dir)");
         c.log_file = l.value;
       },
       [](const C& c) { return nlohmann::json(c.log_file); }},
      {"event-rate",
       [number](C& c, S file, const L& l) { c.event_rate = number(file, l, 0, 100000000); },
       [](const C& c) { return nlohmann::json(c.event_rate); }},
      {"event-burst",
       [number](C& c, S file, const L& l) { c.event_burst = number(file, l, 0, 100000000); },
       [](const C& c) { return nlohmann::json(c.event_burst); }},
      {"pin-root", [path](C& c, S file, const L& l) { c.pin_root = path(file, l, true); },
       [](const C& c) { return nlohmann::json(c.pin_root); }},
      {"state-dir", [path](C& c, S file, const L& l) { c.state_dir = path(file, l, true); },
       [](const C& c) { return nlohmann::json(c.state_dir); }},
      {"persistent", [](C& c, S file, const L& l) { c.persistent = parse_bool(file, l); },
       [](const C& c) { return nlohmann::json(c.persistent); }},
  };
  return keys;
}

FirewallConfig parse_firewall_config(const std::string& file,
                                     const std::vector<ConfigLine>& lines) {
  const auto& keys = config_keys();
  FirewallConfig c;
  for (const ConfigLine& l : lines) {
    auto key =
        std::find_if(keys.begin(), keys.end(), [&](const ConfigKey& k) { return l.key == k.name; });
    if (key == keys.end()) {
      std::string names;
      for (const ConfigKey& k : keys) names += (names.empty() ? "" : ", ") + std::string(k.name);
      throw FirewallConfigError((file.empty() ? "<config>" : file) + ":" + std::to_string(l.line) +
                                ": unknown key '" + l.key + "' in [plugin.xdpfw] (expected " +
                                names + ")");
    }
    key->parse(c, file, l);
  }
  return c;
}

}  // namespace xdpfw
