// firewall.cpp: see firewall.hpp.
#include "firewall.hpp"

#include <nlohmann/json.hpp>
#include <sstream>

#include "rules_file.hpp"

namespace xdpfw {
namespace {

DatapathOptions options(const FirewallConfig& cfg) {
  DatapathOptions o;
  o.max_rules = cfg.max_rules;
  return o;
}

std::vector<Rule> load_rules(const FirewallConfig& cfg) {
  return cfg.rules_file.empty() ? std::vector<Rule>{} : read_rules_file(cfg.rules_file);
}

std::string iso_time(std::time_t t) {
  char buf[32];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

const char* sticky_name(Interface::Sticky s) {
  switch (s) {
    case Interface::Sticky::attach: return "attach";
    case Interface::Sticky::detach: return "detach";
    case Interface::Sticky::none: break;
  }
  return "-";
}

std::string reply(const nlohmann::json& j) {
  return j.dump();
}

}  // namespace

Firewall::Firewall(const FirewallConfig& cfg, Log log)
    : cfg_(cfg),
      log_(std::move(log)),
      dp_(options(cfg)),
      attacher_(dp_.prog_fd()),
      attach_(attacher_, cfg, log_) {
  rules_ = load_rules(cfg_);
  dp_.apply(rules_, cfg_.policy);
  log_(2, std::to_string(rules_.size()) + " rule(s) installed" +
              (cfg_.rules_file.empty() ? "" : " from " + cfg_.rules_file));
}

Firewall::~Firewall() {
  attach_.detach_all();
}

void Firewall::check(const FirewallConfig& cfg) {
  CompileLimits limits;
  limits.max_rules = cfg.max_rules;
  try {
    compile_rules(load_rules(cfg), cfg.policy, limits);
  } catch (const CompileError& e) {
    throw std::runtime_error((cfg.rules_file.empty() ? "rules" : cfg.rules_file) + ": " + e.what());
  }
}

void Firewall::reload(const FirewallConfig& cfg) {
  if (cfg.max_rules != cfg_.max_rules)
    log_(1,
         "max-rules changed: that takes a restart (kept " + std::to_string(cfg_.max_rules) + ")");
  FirewallConfig next = cfg;
  next.max_rules = cfg_.max_rules;
  auto rules = load_rules(next);
  dp_.apply(rules, next.policy);
  rules_ = std::move(rules);
  cfg_ = next;
  attach_.reconfigure(cfg_);
}

void Firewall::on_link(AttachManager::Change change, int ifindex, const std::string& name,
                       const std::string& kind, bool up) {
  attach_.on_link(change, ifindex, name, kind, up);
}

CommandOutput Firewall::show_interfaces(bool json) const {
  nlohmann::json arr = nlohmann::json::array();
  std::ostringstream o;
  for (const auto& [idx, i] : attach_.interfaces()) {
    if (json) {
      arr.push_back({{"name", i.name},
                     {"ifindex", i.ifindex},
                     {"kind", i.kind},
                     {"up", i.up},
                     {"selected", i.selected},
                     {"manual", sticky_name(i.sticky)},
                     {"attached", i.attached},
                     {"mode", i.mode},
                     {"prog_id", i.prog_id},
                     {"since", iso_time(i.since)},
                     {"last_error", i.last_error}});
    } else {
      o << i.name << " ifindex " << i.ifindex << " kind " << (i.kind.empty() ? "-" : i.kind)
        << " selected " << (i.selected ? "yes" : "no") << " manual " << sticky_name(i.sticky)
        << " attached " << (i.attached ? "yes" : "no") << " mode "
        << (i.mode.empty() ? "-" : i.mode) << " prog " << i.prog_id << " since "
        << iso_time(i.since) << " error " << (i.last_error.empty() ? "-" : i.last_error) << "\n";
    }
  }
  return {true, json ? reply(arr) : o.str()};
}

CommandOutput Firewall::show_stats(bool json) const {
  Stats s = dp_.stats();
  nlohmann::json j = nlohmann::json::object();
  std::ostringstream o;
  for (int i = 0; i < XDPFW_STAT_MAX; ++i) {
    const char* name = stat_name(static_cast<xdpfw_stat>(i));
    if (json)
      j[name] = s.c[i];
    else
      o << name << " " << s.c[i] << "\n";
  }
  return {true, json ? reply(j) : o.str()};
}

CommandOutput Firewall::rule_list(bool json) const {
  auto counters = dp_.all_rule_counters();
  std::vector<const Rule*> sorted;
  for (const Rule& r : rules_) sorted.push_back(&r);
  std::sort(sorted.begin(), sorted.end(),
            [](const Rule* a, const Rule* b) { return a->order() < b->order(); });
  nlohmann::json arr = nlohmann::json::array();
  std::ostringstream o;
  for (const Rule* r : sorted) {
    RuleCounters c = counters.count(r->id) ? counters.at(r->id) : RuleCounters{};
    if (json)
      arr.push_back({{"id", r->id},
                     {"prio", *r->priority},
                     {"rule", format_rule(*r)},
                     {"packets", c.packets},
                     {"bytes", c.bytes}});
    else
      o << format_rule(*r) << " packets " << c.packets << " bytes " << c.bytes << "\n";
  }
  return {true, json ? reply(arr) : o.str()};
}

CommandOutput Firewall::force(const std::string& name, Interface::Sticky how) {
  if (name.empty() || name.find(' ') != std::string::npos)
    return {false, "expected one interface name"};
  bool exists = false;
  for (const auto& [idx, i] : attach_.interfaces()) exists |= i.name == name;
  auto err = attach_.force(name, how);
  if (err && !err->empty()) return {false, name + ": " + *err};
  if (!exists) return {true, "no interface " + name + " now; remembered for when it appears"};
  return {true, "ok"};
}

}  // namespace xdpfw
