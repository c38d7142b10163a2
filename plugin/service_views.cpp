// service_views.cpp: see service_views.hpp.
#include "service_views.hpp"

#include <nlohmann/json.hpp>
#include <sstream>

#include "utc_time.hpp"

namespace xdpfw::views {
namespace {

const char* manual_name(Interface::Manual s) {
  switch (s) {
    case Interface::Manual::attach: return "attach";
    case Interface::Manual::detach: return "detach";
    case Interface::Manual::none: break;
  }
  return "-";
}

std::string at(uint64_t wall_ms) {
  return wall_ms ? utc_time(static_cast<std::time_t>(wall_ms / 1000)) : "";
}

}  // namespace

const char* const no_interfaces_note =
    "no interfaces configured ('interfaces =' in [plugin.xdpfw]): nothing is attached by "
    "itself; set interfaces, or 'attach IF'";

std::vector<std::pair<std::string, uint64_t>> counters(const FirewallService& fw) {
  Stats s = fw.datapath().stats();
  std::vector<std::pair<std::string, uint64_t>> all;
  for (int i = 0; i < XDPFW_STAT_MAX; ++i)
    all.emplace_back(stat_name(static_cast<xdpfw_stat>(i)), s.c[i]);
  const EventLogStats& l = fw.events().log().stats();
  const RulesSource::Status& src = fw.source().status();
  all.insert(all.end(), {{"events_lost", fw.events().lost()},
                         {"log_lines", l.lines},
                         {"log_dropped", l.dropped},
                         {"log_write_errors", l.write_errors},
                         {"log_reopens", l.reopens},
                         {"rules_source_applied", src.applied},
                         {"rules_source_refused", src.refused}});
  return all;
}

CommandOutput show_interfaces(const FirewallService& fw, bool json) {
  nlohmann::json arr = nlohmann::json::array();
  std::ostringstream o;
  if (!json && fw.config().include.empty()) o << "# " << no_interfaces_note << "\n";
  for (const auto& [idx, i] : fw.attachments().interfaces()) {
    std::string since = utc_time(i.since);
    if (json) {
      arr.push_back({{"name", i.name},
                     {"ifindex", i.ifindex},
                     {"kind", i.kind},
                     {"up", i.up},
                     {"selected", i.selected},
                     {"manual", manual_name(i.manual)},
                     {"attached", i.attached},
                     {"mode", i.mode},
                     {"prog_id", fw.attachments().prog_id(i)},
                     {"since", since},
                     {"last_error", i.last_error}});
    } else {
      o << i.name << " ifindex " << i.ifindex << " kind " << (i.kind.empty() ? "-" : i.kind)
        << " selected " << (i.selected ? "yes" : "no") << " manual " << manual_name(i.manual)
        << " attached " << (i.attached ? "yes" : "no") << " mode "
        << (i.mode.empty() ? "-" : i.mode) << " prog " << fw.attachments().prog_id(i) << " since "
        << since << " error " << (i.last_error.empty() ? "-" : i.last_error) << "\n";
    }
  }
  return {true, json ? arr.dump() : o.str()};
}

CommandOutput show_stats(const FirewallService& fw, bool json) {
  nlohmann::json j = nlohmann::json::object();
  std::ostringstream o;
  for (const auto& [name, v] : counters(fw)) {
    if (json)
      j[name] = v;
    else
      o << name << " " << v << "\n";
  }
  return {true, json ? j.dump() : o.str()};
}

CommandOutput rule_list(const FirewallService& fw, bool json) {
  auto counters = fw.rule_counters();
  const auto& origins = fw.source().origins();
  nlohmann::json arr = nlohmann::json::array();
  std::ostringstream o;
  for (const Rule& r : fw.store().rules()) {  // in evaluation order
    auto c = counters.find(r.id);
    RuleCounters n = c == counters.end() ? RuleCounters{} : c->second;
    auto origin = origins.find(r.id);
    if (json) {
      arr.push_back({{"id", r.id},
                     {"prio", *r.priority},
                     {"rule", format_rule(r)},
                     {"packets", n.packets},
                     {"bytes", n.bytes}});
      if (origin != origins.end()) arr.back()["origin"] = origin->second;
    } else {
      o << format_rule(r) << " packets " << n.packets << " bytes " << n.bytes;
      if (origin != origins.end()) o << "  # " << origin->second;
      o << "\n";
    }
  }
  return {true, json ? arr.dump() : o.str()};
}

CommandOutput show_config(const FirewallService& fw, bool json) {
  nlohmann::json j = nlohmann::json::object();
  for (const ConfigKey& k : config_keys()) j[k.name] = k.show(fw.config());
  j["rule-count"] = fw.store().rules().size();
  if (json) return {true, j.dump()};
  std::ostringstream o;
  for (const auto& [k, v] : j.items()) {
    if (k == "set") {  // one line each: a declaration has spaces
      for (const auto& x : v) o << "set = " << x.get<std::string>() << "\n";
      continue;
    }
    o << k << " =";
    if (v.is_array()) {
      for (const auto& x : v) o << " " << x.get<std::string>();
    } else {
      o << " " << (v.is_string() ? v.get<std::string>() : v.dump());
    }
    o << "\n";
  }
  return {true, o.str()};
}

CommandOutput show_rules_source(const FirewallService& fw, bool json) {
  const RulesSource& src = fw.source();
  const RulesSource::Status& st = src.status();
  bool dir = src.directory();
  nlohmann::json j = {{"path", src.path()},
                      {"directory", dir},
                      {"files", src.files()},
                      {"watching", src.watching()},
                      {"watch_delay_ms", src.delay_ms()},
                      {"result", st.result},
                      {"message", st.message},
                      {"at", at(st.at_ms)},
                      {"applied", st.applied},
                      {"refused", st.refused},
                      {"rules", fw.store().rules().size()}};
  if (json) return {true, j.dump()};
  std::ostringstream o;
  o << "source " << (src.path().empty() ? "none" : src.path()) << (dir ? " (directory)" : "")
    << "\n";
  for (const std::string& f : src.files()) o << "file " << f << "\n";
  o << "watching " << (src.watching() ? "yes" : "no") << " (delay " << src.delay_ms() << " ms)\n";
  o << "last " << st.result;
  if (st.at_ms) o << " at " << at(st.at_ms);
  if (!st.message.empty()) o << ": " << st.message;
  o << "\napplied " << st.applied << ", refused " << st.refused
    << " change(s) on disk since the start\n";
  return {true, o.str()};
}

CommandOutput show_status(const FirewallService& fw, bool json) {
  size_t selected = 0, attached = 0, errors = 0;
  for (const auto& [idx, i] : fw.attachments().interfaces()) {
    selected += i.selected;
    attached += i.attached;
    errors += !i.last_error.empty();
  }
  auto trial = fw.trial();
  const RulesSource::Status& st = fw.source().status();
  const std::string& path = fw.source().path();
  size_t rules = fw.store().rules().size();
  nlohmann::json j = {
      {"rules", rules},
      {"source",
       {{"path", path}, {"result", st.result}, {"message", st.message}, {"at", at(st.at_ms)}}},
      {"trial",
       {{"on", trial.has_value()},
        {"seconds_left", trial ? trial->seconds_left : 0},
        {"reverts_to", trial ? trial->reverts_to : 0}}},
      {"interfaces", {{"selected", selected}, {"attached", attached}, {"errors", errors}}},
      {"sets", fw.sets().sets().size()}};
  if (json) return {true, j.dump()};
  std::ostringstream o;
  o << "rules " << rules << "\n";
  o << "source " << (path.empty() ? "none" : path);
  if (st.result != "none") {
    o << ": " << st.result;
    if (st.at_ms) o << " at " << at(st.at_ms);
    if (st.result == "refused") o << " (" << st.message << "; the running rules stay)";
  }
  o << "\ntrial ";
  if (trial)
    o << trial->seconds_left << " s left: unless 'rule confirm', the previous " << trial->reverts_to
      << " rule(s) come back";
  else
    o << "none";
  o << "\ninterfaces " << attached << " attached of " << selected << " selected, " << errors
    << " with an error\n";
  o << "sets " << fw.sets().sets().size() << "\n";
  return {true, o.str()};
}

CommandOutput set_list(const FirewallService& fw, const std::optional<std::string>& set,
                       bool json) {
  const AddressSets& sets = fw.sets();
  auto summary = [&](const AddressSets::Set& s) {
    return nlohmann::json{{"name", s.spec.name},
                          {"timeout", s.spec.timeout_s},
                          {"max", s.spec.max ? s.spec.max : sets.capacity()},
                          {"elements", s.elems.size()},
                          {"rules", fw.rules_using(s.spec.name)}};
  };
  auto summary_text = [&](const AddressSets::Set& s) {
    auto ids = fw.rules_using(s.spec.name);
    return "set " + s.spec.name + ": " + std::to_string(s.elems.size()) + " element(s)" +
           (s.spec.timeout_s ? ", timeout " + format_duration(s.spec.timeout_s) : "") +
           (s.spec.max ? ", max " + std::to_string(s.spec.max) : "") +
           (ids.empty() ? "" : ", used by rule(s) " + join_ids(ids)) + "\n";
  };
  if (!set) {
    nlohmann::json arr = nlohmann::json::array();
    std::string text;
    for (const auto& [name, s] : sets.sets()) {
      if (json)
        arr.push_back(summary(s));
      else
        text += summary_text(s);
    }
    return {true, json ? arr.dump() : text};
  }
  const AddressSets::Set* s = sets.find(*set);
  if (!s) return {false, "set list: no set '" + *set + "' ('set list' shows them)"};
  uint32_t tag = fw.datapath().set_tag(s->id);
  nlohmann::json members = nlohmann::json::array();
  std::string text = summary_text(*s);
  for (const auto& [k, e] : s->elems) {
    auto left = sets.remaining_s(e);
    Prefix p = AddressSets::prefix_of(k);
    uint64_t hits = fw.datapath().element_hits(tag, p);
    if (json)
      members.push_back({{"element", format_prefix(p)},
                         {"expires", left ? nlohmann::json(*left) : nlohmann::json(nullptr)},
                         {"hits", hits}});
    else
      text += format_prefix(p) + (left ? " expires " + format_duration(*left) : "") + " hits " +
              std::to_string(hits) + "\n";
  }
  if (!json) return {true, text};
  nlohmann::json j = summary(*s);
  j["members"] = std::move(members);
  return {true, j.dump()};
}

}  // namespace xdpfw::views
