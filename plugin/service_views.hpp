// service_views.hpp: what the firewall shows, as functions over a const
// service: the "show" commands in text and JSON (service_views.cpp) and
// the Prometheus exposition (metrics_view.cpp). They read; they never
// change the service.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "firewall_service.hpp"

namespace xdpfw::views {

CommandOutput show_interfaces(const FirewallService& fw, bool json);
CommandOutput show_stats(const FirewallService& fw, bool json);
CommandOutput rule_list(const FirewallService& fw, bool json);
CommandOutput show_config(const FirewallService& fw, bool json);
// The rules file or directory, its watch, the last change on disk.
CommandOutput show_rules_source(const FirewallService& fw, bool json);
// One screen for "is this host all right": the rules and where they come
// from, a refused change on disk, a replace on trial and its time left,
// the interfaces, the sets.
CommandOutput show_status(const FirewallService& fw, bool json);
// Every set, or one set's elements (set: its name) with time left and hits.
CommandOutput set_list(const FirewallService& fw, const std::optional<std::string>& set, bool json);
CommandOutput show_metrics(const FirewallService& fw);

// Every counter of "show stats" and "show metrics", in order: name, value
// (the datapath's XDPFW_STATS first, then the agent's own).
std::vector<std::pair<std::string, uint64_t>> counters(const FirewallService& fw);

// The note "show interfaces" and the start log give when no interface
// pattern is configured.
extern const char* const no_interfaces_note;

}  // namespace xdpfw::views
