// commands.cpp: see commands.hpp.
#include "commands.hpp"

#include <optional>

#include "rule.hpp"
#include "service_views.hpp"
#include "xdpfw_plugin.h"

namespace xdpfw {
namespace {

// The commands' arguments are parsed here, into the typed calls of the
// service and its views; a word that does not parse is answered
// "COMMAND: what was wrong", and nothing is called.
using FS = FirewallService;
using Manual = Interface::Manual;
using Handler = CommandHandler;
using Words = std::vector<std::string_view>;

CommandOutput refuse(const char* name, const std::string& why) {
  return {false, std::string(name) + ": " + why};
}

// A handler of the words after the command's name; what it throws while
// parsing them is answered as the command's error.
CommandHandler parsed(const char* name,
                      std::function<CommandOutput(FS&, const Words&, const std::string*)> fn) {
  return [name, fn](FS& fw, const std::string& args, const std::string* payload) {
    try {
      return fn(fw, split_words(args), payload);
    } catch (const std::exception& e) {
      return refuse(name, e.what());
    }
  };
}

// A "show" command: "json" or nothing.
CommandHandler show(const char* name, CommandOutput (*view)(const FS&, bool)) {
  return parsed(name, [name, view](FS& fw, const Words& w, const std::string*) {
    if (w.empty() || (w.size() == 1 && w[0] == "json")) return view(fw, !w.empty());
    std::string got;
    for (std::string_view x : w) got += (got.empty() ? "" : " ") + std::string(x);
    return refuse(name, "unexpected '" + got + "' (expected nothing or 'json')");
  });
}

// A command that takes no argument.
CommandHandler bare(const char* name, CommandOutput (FS::*fn)()) {
  return parsed(name, [name, fn](FS& fw, const Words& w, const std::string*) {
    if (!w.empty()) return refuse(name, "takes no argument");
    return (fw.*fn)();
  });
}

// A command of one set's NAME.
CommandHandler named(const char* name, std::function<CommandOutput(FS&, const std::string&)> fn) {
  return parsed(name, [name, fn](FS& fw, const Words& w, const std::string*) {
    if (w.size() != 1) return refuse(name, "expected NAME");
    return fn(fw, std::string(w[0]));
  });
}

CommandHandler set_manual(Manual how) {
  return parsed("interface", [how](FS& fw, const Words& w, const std::string*) {
    if (w.size() != 1) return CommandOutput{false, "expected one interface name"};
    return fw.set_manual(std::string(w[0]), how);
  });
}

std::string joined(const std::string& args) {
  return "'" + args + "'";
}

// The firewall's commands: the host lists them in 'help' in this order.
const std::vector<CommandSpec> command_table = {
    {"show status",
     "[json]: rules, their source and a refused change, a replace on trial, interfaces, sets", 0,
     show("show status", views::show_status)},
    {"show interfaces", "[json]: links, whether they match, attached, mode, since, errors", 0,
     show("show interfaces", views::show_interfaces)},
    {"show stats", "[json]: packets by verdict and reason, events", 0,
     show("show stats", views::show_stats)},
    {"rule list", "[json]: the rules in order, with packets and bytes", 0,
     show("rule list", views::rule_list)},
    {"show config", "[json]: the firewall's settings in effect", 0,
     show("show config", views::show_config)},
    {"show rules-source", "[json]: the rules file or directory, its watch, the last change on disk",
     0, show("show rules-source", views::show_rules_source)},
    {"show metrics", "counters in the Prometheus text exposition format", 0,
     [](FS& fw, const std::string&, const std::string*) { return views::show_metrics(fw); }},
    {"attach", "IF: attach to IF and keep it so until 'auto IF' (manual)", XDPFW_CMD_MUTATES,
     set_manual(Manual::attach)},
    {"detach", "IF: detach from IF and keep it so until 'auto IF' (manual)", XDPFW_CMD_MUTATES,
     set_manual(Manual::detach)},
    {"auto", "IF: let the interface patterns decide for IF again", XDPFW_CMD_MUTATES,
     set_manual(Manual::none)},
    {"rule add", "SPEC: add a rule (e.g. 'proto tcp dport 22 action drop'); answers its id",
     XDPFW_CMD_MUTATES,
     [](FS& fw, const std::string& spec, const std::string*) {
       try {
         return fw.rule_add(parse_rule(spec));  // validated once, here
       } catch (const std::exception& e) {
         return refuse("rule add", e.what());
       }
     }},
    {"rule del", "ID: delete a rule", XDPFW_CMD_MUTATES,
     [](FS& fw, const std::string& arg, const std::string*) {
       auto id = parse_uint<uint32_t>(arg, UINT32_MAX);
       if (!id || !*id)
         return refuse("rule del",
                       joined(arg) + " is not a rule id (expected a number, see 'rule list')");
       return fw.rule_del(*id);
     }},
    {"rule flush", "delete every rule", XDPFW_CMD_MUTATES, bare("rule flush", &FS::rule_flush)},
    {"rule replace",
     "[confirm SECONDS] <<END RULES END: replace the whole set at once, all or nothing (an empty "
     "set is refused: use rule flush); with confirm, the previous set comes back unless 'rule "
     "confirm' arrives in time",
     XDPFW_CMD_MUTATES,
     [](FS& fw, const std::string& args, const std::string* payload) {
       std::optional<uint64_t> confirm;
       if (!args.empty()) {
         auto w = split_words(args);
         if (w.size() == 2 && w[0] == "confirm") confirm = parse_uint<uint64_t>(w[1], 3600);
         if (!confirm || !*confirm)
           return refuse("rule replace",
                         "expected nothing or 'confirm SECONDS' (1-3600), got " + joined(args));
       }
       if (!payload)
         return refuse("rule replace",
                       "expects the new rules as a payload: 'rule replace <<END', one rule per "
                       "line (comments and empty lines allowed), then a line 'END'");
       return fw.rule_replace(confirm, *payload);
     }},
    {"rule confirm", "keep the set of the last 'rule replace confirm'", XDPFW_CMD_MUTATES,
     bare("rule confirm", &FS::rule_confirm)},
    {"rule check", "<<END RULES END: compile the rules and report; nothing is changed", 0,
     [](FS& fw, const std::string&, const std::string* payload) {
       if (!payload)
         return refuse("rule check", "expects rules as a payload: 'rule check <<END' ... 'END'");
       return fw.rule_check(*payload);
     }},
    {"save",
     "[PATH|-]: write the rules to the rules file (or PATH in the state folder) atomically; "
     "-: print them",
     XDPFW_CMD_MUTATES,
     [](FS& fw, const std::string& a, const std::string*) { return fw.save(a); }},
    {"set create", "NAME [timeout DUR] [max N]: a new address set (DUR: 30s, 10m, 1h, 2d)",
     XDPFW_CMD_MUTATES,
     [](FS& fw, const std::string& args, const std::string*) {
       try {
         return fw.set_create(parse_set_spec(args));
       } catch (const std::exception& e) {
         return refuse("set create", e.what());
       }
     }},
    {"set add", "NAME ADDR[/LEN] [timeout DUR]: add an element, or refresh its timeout",
     XDPFW_CMD_MUTATES,
     parsed("set add",
            [](FS& fw, const Words& w, const std::string*) {
              if (w.size() != 2 && !(w.size() == 4 && w[2] == "timeout"))
                return refuse("set add", "expected NAME ADDR[/LEN] [timeout DUR]");
              std::optional<uint64_t> timeout;
              Prefix p = parse_prefix(w[1], "element");
              if (w.size() == 4) timeout = parse_duration(w[3], "timeout");
              return fw.set_add(std::string(w[0]), p, timeout);
            })},
    {"set del", "NAME ADDR[/LEN] [if-present]: remove an element", XDPFW_CMD_MUTATES,
     parsed("set del",
            [](FS& fw, const Words& w, const std::string*) {
              bool if_present = w.size() == 3 && w[2] == "if-present";
              if (w.size() != 2 && !if_present)
                return refuse("set del", "expected NAME ADDR[/LEN] [if-present]");
              return fw.set_del(std::string(w[0]), parse_prefix(w[1], "element"), if_present);
            })},
    {"set flush", "NAME: remove every element", XDPFW_CMD_MUTATES,
     named("set flush", [](FS& fw, const std::string& n) { return fw.set_flush(n); })},
    {"set load",
     "NAME <<END ELEMENTS END: replace the elements at once (one ADDR[/LEN] [timeout DUR] per "
     "line)",
     XDPFW_CMD_MUTATES,
     parsed("set load",
            [](FS& fw, const Words& w, const std::string* payload) {
              if (w.size() != 1 || !payload)
                return refuse("set load",
                              "expected NAME and the elements as a payload: 'set load NAME "
                              "<<END', one ADDR[/LEN] [timeout DUR] per line, then 'END'");
              return fw.set_load(std::string(w[0]), parse_set_items(*payload));
            })},
    {"set list", "[NAME] [json]: the sets, or one set's elements with time left and hits", 0,
     parsed("set list",
            [](FS& fw, const Words& words, const std::string*) {
              Words w = words;
              bool json = !w.empty() && w.back() == "json";
              if (json) w.pop_back();
              if (w.size() > 1) return refuse("set list", "expected [NAME] [json]");
              std::optional<std::string> set;
              if (!w.empty()) set = std::string(w[0]);
              return views::set_list(fw, set, json);
            })},
    {"set destroy", "NAME: remove a set no rule uses", XDPFW_CMD_MUTATES,
     named("set destroy", [](FS& fw, const std::string& n) { return fw.set_destroy(n); })},
    {"show events", "a live stream of unmatched-packet events (JSON lines) until you close", 0,
     [](FS&, const std::string& a, const std::string*) {
       if (!a.empty()) return CommandOutput{false, "show events: takes no argument"};
       return CommandOutput{true, "", true};
     },
     true},
    {"log reopen", "reopen the event log file (after logrotate moved it)", XDPFW_CMD_MUTATES,
     [](FS& fw, const std::string&, const std::string*) { return fw.log_reopen(); }},
};

}  // namespace

const std::vector<CommandSpec>& firewall_commands() {
  return command_table;
}

CommandOutput run_command(FirewallService& fw, std::string_view name, const std::string& args,
                          const std::string* payload) {
  for (const CommandSpec& c : command_table)
    if (name == c.name) return c.fn(fw, args, payload);
  return {false, "unknown command '" + std::string(name) + "'"};
}

}  // namespace xdpfw
