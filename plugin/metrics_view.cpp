// metrics_view.cpp: the Prometheus text exposition of the firewall's
// counters (service_views.hpp).
#include <algorithm>
#include <iterator>

#include "service_views.hpp"

namespace xdpfw::views {
namespace {

// The Prometheus family and label of each counter of "show stats": one list
// (XDPFW_STATS and the agent's own counters), two renderings. A counter
// added to the list gets a metric of its own name without a word here.
struct Metric {
  const char* family;
  std::string label;  // 'verdict="match_drop"', or none
};

Metric metric_of(const std::string& name, int stat) {
  auto in = [&](int first, int last) { return stat >= first && stat <= last; };
  if (in(XDPFW_STAT_MATCH_DROP, XDPFW_STAT_NON_IP))
    return {"xdpfw_verdicts_total", "verdict=\"" + name + "\""};
  if (in(XDPFW_STAT_FIRST_MALFORMED, XDPFW_STAT_LAST_MALFORMED))
    return {"xdpfw_malformed_total", "reason=\"" + name + "\""};
  if (in(XDPFW_STAT_PROBES_0, XDPFW_STAT_PROBES_17_PLUS))
    return {"xdpfw_tables_probed_total", "tables=\"" + name.substr(7) + "\""};
  if (in(XDPFW_STAT_EVENTS_SENT, XDPFW_STAT_EVENTS_FAILED) || name == "events_lost")
    return {"xdpfw_events_total", "outcome=\"" + name.substr(7) + "\""};
  if (in(XDPFW_STAT_CT_ESTABLISHED, XDPFW_STAT_CT_RELATED))
    return {"xdpfw_ct_found_total", "state=\"" + name.substr(3) + "\""};
  if (in(XDPFW_STAT_RATE_OVER, XDPFW_STAT_RATE_UNDER))
    return {"xdpfw_rate_total", "outcome=\"" + name.substr(5) + "\""};
  if (name == "log_dropped") return {"xdpfw_log_lines_dropped_total", ""};
  if (name == "log_write_errors") return {"xdpfw_log_errors_total", ""};
  if (name == "rules_source_applied" || name == "rules_source_refused")
    return {"xdpfw_rules_source_changes_total", "outcome=\"" + name.substr(13) + "\""};
  return {nullptr, ""};  // xdpfw_NAME_total
}

struct Family {
  const char* name;
  const char* type;
  const char* help;
};

constexpr Family families[] = {
    {"xdpfw_packets_total", "counter", "Packets seen by the XDP program."},
    {"xdpfw_bytes_total", "counter", "Bytes seen by the XDP program."},
    {"xdpfw_verdicts_total", "counter", "Packets by verdict and its cause."},
    {"xdpfw_fragments_total", "counter",
     "Non-first IP fragments seen (no L4 header: classified on addresses and protocol)."},
    {"xdpfw_malformed_total", "counter", "Malformed packets by reason."},
    {"xdpfw_events_total", "counter", "Packet events by outcome."},
    {"xdpfw_ct_lookups_total", "counter", "Conntrack lookups for ct rules."},
    {"xdpfw_ct_found_total", "counter", "Conntrack lookups that found a connection, by state."},
    {"xdpfw_rate_total", "counter",
     "Rate rules reached: over their rate (the rule decided) or under it (a token taken)."},
    {"xdpfw_audit_matches_total", "counter",
     "Packets an audit rule matched (would drop), passed on to the next rule."},
    {"xdpfw_audit_would_drop_total", "counter",
     "Drop verdicts passed because the agent runs with audit = yes."},
    {"xdpfw_set_lookups_total", "counter", "Address set lookups of rules naming a set."},
    {"xdpfw_set_members_total", "counter",
     "Address set lookups that found an unexpired element covering the address."},
    {"xdpfw_tables_probed_total", "counter",
     "Classified packets by the number of classifier tables they probed."},
    {"xdpfw_log_lines_total", "counter", "Event lines written to the log file."},
    {"xdpfw_log_lines_dropped_total", "counter",
     "Event lines not written: a failed write, a full buffer."},
    {"xdpfw_log_errors_total", "counter", "Failed opens and writes of the log file."},
    {"xdpfw_log_reopens_total", "counter", "Reopens of the log file (log reopen, SIGUSR1)."},
    {"xdpfw_rule_packets_total", "counter", "Packets matched per rule."},
    {"xdpfw_rule_bytes_total", "counter", "Bytes matched per rule."},
    {"xdpfw_interfaces_attached", "gauge", "Interfaces carrying the program."},
    {"xdpfw_rules", "gauge", "Rules installed."},
    {"xdpfw_rules_source_changes_total", "counter",
     "Changes of the rules file or directory applied by the agent, or refused (they did not "
     "compile: the running rules stayed)."},
    {"xdpfw_rules_source_refused", "gauge",
     "1 while the rules on disk are refused (the running rules are an older set)."},
};

// Prometheus' text format: a family's samples together, after its HELP
// and TYPE lines.
class Exposition {
 public:
  void add(const std::string& family, const std::string& label, uint64_t v) {
    auto it = std::find_if(order_.begin(), order_.end(),
                           [&](const auto& f) { return f.first == family; });
    if (it == order_.end()) it = order_.insert(order_.end(), {family, ""});
    it->second +=
        family + (label.empty() ? "" : "{" + label + "}") + " " + std::to_string(v) + "\n";
  }
  std::string text() const {
    std::string o;
    for (const auto& entry : order_) {
      const std::string& name = entry.first;
      const std::string& samples = entry.second;
      const Family* f = std::find_if(std::begin(families), std::end(families),
                                     [&](const Family& x) { return name == x.name; });
      bool known = f != std::end(families);
      o += "# HELP " + name + " " + (known ? f->help : "Counter " + name + ".") + "\n";
      o += "# TYPE " + name + " " + (known ? f->type : "counter") + "\n" + samples;
    }
    return o;
  }

 private:
  std::vector<std::pair<std::string, std::string>> order_;
};

}  // namespace

CommandOutput show_metrics(const FirewallService& fw) {
  Exposition e;
  auto all = counters(fw);
  for (size_t i = 0; i < all.size(); ++i) {
    const auto& [name, v] = all[i];
    Metric m = metric_of(name, i < XDPFW_STAT_MAX ? int(i) : -1);
    e.add(m.family ? m.family : "xdpfw_" + name + "_total", m.label, v);
  }
  auto per_rule = fw.rule_counters();
  for (const Rule& r : fw.store().rules())
    e.add("xdpfw_rule_packets_total", "id=\"" + std::to_string(r.id) + "\"",
          per_rule[r.id].packets);
  for (const Rule& r : fw.store().rules())
    e.add("xdpfw_rule_bytes_total", "id=\"" + std::to_string(r.id) + "\"", per_rule[r.id].bytes);
  size_t attached = 0;
  for (const auto& [idx, i] : fw.attachments().interfaces()) attached += i.attached;
  e.add("xdpfw_interfaces_attached", "", attached);
  e.add("xdpfw_rules", "", fw.store().rules().size());
  e.add("xdpfw_rules_source_refused", "", fw.source().status().result == "refused");
  return {true, e.text()};
}

}  // namespace xdpfw::views
