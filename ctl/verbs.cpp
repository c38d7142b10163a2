// verbs.cpp: xdpfw-ctl's verb table (verbs.hpp) and what reads it: the
// usage text, the line's parse and its checks.
#include "verbs.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "client.hpp"
#include "default_paths.hpp"
#include "rule_fields.hpp"

namespace xdpfw::ctl {
namespace {

Values words(const std::string& space_separated) {
  Values v{Values::words, {}};
  std::istringstream in(space_separated);
  for (std::string w; in >> w;) v.list.push_back(w);
  return v.list.empty() ? Values{} : v;
}

// Every option any verb takes; which verb takes which is in the table.
const std::vector<Flag> all_flags = [] {
  std::vector<Flag> f = {{"socket", "PATH", {Values::file, {}}},
                         {"help", "", {}},
                         {"version", "", {}},
                         {"json", "", {}},
                         {"append", "FILE", {Values::file, {}}},
                         {"confirm", "SECONDS", {}}};
  for (const auto& r : xdpfw::rule_field_names)
    if (std::string(r.name) != "id") f.push_back({r.name, r.value, words(r.words)});
  return f;
}();

// The rule grammar's fields but the id (the agent gives it), in its order.
std::vector<std::string> rule_flags() {
  std::vector<std::string> f;
  for (const auto& r : xdpfw::rule_field_names)
    if (std::string(r.name) != "id") f.push_back(r.name);
  return f;
}

// "add --action drop|pass|audit [--prio N] ...": the rule grammar's fields,
// wrapped at 80 columns.
std::string add_synopsis() {
  std::string out = "add --action drop|pass|audit", line = "  " + out;
  for (const auto& f : xdpfw::rule_field_names) {
    std::string name = f.name;
    if (name == "id" || name == "action") continue;
    std::string word = " [--" + name + (*f.value ? " " : "") + f.value + "]";
    if (line.size() + word.size() > 80) {
      out += "\n     ";
      line = "     ";
    }
    out += word;
    line += word;
  }
  return out;
}

std::string rule_from_flags(const Call& c) {
  if (!c.has("action")) throw UsageError("add: --action drop|pass|audit is required");
  std::string rule;
  for (const auto& f : xdpfw::rule_field_names) {
    std::string k = f.name;
    if (k == "id" || !c.has(k)) continue;
    rule += (rule.empty() ? "" : " ") + k;
    if (*f.value) rule += " " + c.opts.at(k);  // a flag (log) has no value
  }
  return rule;
}

const Values file{Values::file, {}}, rule_id{Values::rule_id, {}}, set_name{Values::set_name, {}},
    text{};

const std::vector<Sub> set_subs = {
    {"create",
     1,
     5,
     {text},
     {{"timeout", true}, {"max", true}},
     "set create NAME [timeout DUR] [max N]",
     "a new address set (DUR: 30s, 10m, 1h, 2d)"},
    {"add",
     2,
     4,
     {set_name, text},
     {{"timeout", true}},
     "set add NAME ADDR[/LEN] [timeout DUR]",
     "add an element (or refresh its timeout)"},
    {"del",
     2,
     3,
     {set_name, text},
     {{"if-present", false}},
     "set del NAME ADDR[/LEN] [if-present]",
     "remove an element (absent: an error\nunless if-present)"},
    {"load",
     2,
     2,
     {set_name, file},
     {},
     "set load NAME FILE",
     "replace the set's elements with FILE's at once"},
    {"flush", 1, 1, {set_name}, {}, "set flush NAME", "empty a set"},
    {"destroy", 1, 1, {set_name}, {}, "set destroy NAME", "remove a set no rule uses"},
    {"list", 0, 1, {set_name}, {}, "set list [NAME] [--json]", "the sets, or one set's elements"},
};

const std::vector<Verb> verb_table = {
    {"add",
     rule_flags(),
     0,
     0,
     "no word, only options",
     {{add_synopsis(), "add a rule, print its id"}},
     {},
     {},
     "",
     [](const Call& c) { return request(c.sock, {"rule add " + rule_from_flags(c)}); }},
    {"del",
     {},
     1,
     1,
     "one rule id",
     {{"del ID", "delete a rule"}},
     {rule_id},
     {},
     "",
     [](const Call& c) { return request(c.sock, {"rule del " + c.words[1]}); }},
    {"status",
     {"json"},
     0,
     0,
     "no word",
     {{"status [--json]",
       "rules and their source (a refused change), a replace\non trial and its time left, "
       "interfaces, sets; exit 4 while a rules change is\nrefused or an interface is in error"}},
     {},
     {},
     "",
     [](const Call& c) {
       // The status as asked, and its JSON form, not printed, for the exit
       // status: health checks act on it.
       std::vector<std::string> kept;
       int rc = request(c.sock, {"show status" + c.json(), "show status json"}, 1, &kept);
       if (rc != 0 || kept.size() != 1) return rc;
       auto j = nlohmann::json::parse(kept[0], nullptr, false);
       if (j.is_discarded()) return 0;
       bool refused = j.value("/source/result"_json_pointer, std::string()) == "refused";
       bool errors = j.value("/interfaces/errors"_json_pointer, 0) > 0;
       return refused || errors ? 4 : 0;
     }},
    {"list",
     {"json"},
     0,
     0,
     "no word",
     {{"list [--json]", "the rules with their counters"}},
     {},
     {},
     "rule list"},
    {"stats",
     {"json"},
     0,
     0,
     "no word",
     {{"stats [--json]", "packets by verdict and reason, events"}},
     {},
     {},
     "show stats"},
    {"interfaces",
     {"json"},
     0,
     0,
     "no word",
     {{"interfaces [--json]", "the links: selected, attached, mode, errors"}},
     {},
     {},
     "show interfaces"},
    {"monitor",
     {"append"},
     0,
     0,
     "no word",
     {{"monitor [--append FILE]", "unmatched-packet events, live, as JSON lines"}},
     {},
     {},
     "",
     [](const Call& c) { return monitor(c.sock, c.has("append") ? c.opts.at("append") : ""); }},
    {"replace",
     {"confirm"},
     1,
     1,
     "one rules file",
     {{"replace FILE", "replace every rule with FILE's, all or nothing"},
      {"replace --confirm SECONDS FILE",
       "the same, on trial: the previous rules come back\nunless 'confirm' follows within "
       "SECONDS"}},
     {file},
     {},
     "",
     [](const Call& c) {
       if (!c.has("confirm")) return request(c.sock, {with_file("rule replace", c.words[1])});
       const std::string& s = c.opts.at("confirm");
       if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
         throw UsageError("replace: --confirm takes a number of seconds, got '" + s + "'");
       return request(c.sock, {with_file("rule replace confirm " + s, c.words[1])});
     }},
    {"confirm",
     {},
     0,
     0,
     "no word",
     {{"confirm", "keep the rules of the last replace --confirm"}},
     {},
     {},
     "rule confirm"},
    {"check",
     {},
     1,
     1,
     "one rules file",
     {{"check FILE", "compile FILE's rules and report; nothing changes"}},
     {file},
     {},
     "",
     [](const Call& c) { return request(c.sock, {with_file("rule check", c.words[1])}); }},
    {"flush", {}, 0, 0, "no word", {{"flush", "delete every rule"}}, {}, {}, "rule flush"},
    {"save",
     {},
     0,
     1,
     "nothing, - or a NAME",
     {{"save [-|NAME]",
       "write the rules to the agent's rules file; -: print them;\nNAME: to STATE-DIR/saved/NAME"}},
     {words("-")},
     {},
     "",
     [](const Call& c) {
       return request(c.sock, {c.words.size() > 1 ? "save " + c.words[1] : "save"});
     }},
    {"reload",
     {},
     0,
     0,
     "no word",
     {{"reload", "have the agent re-read its config (as SIGHUP)"}},
     {},
     {},
     "reload"},
    {"set",
     {"json"},
     1,
     6,
     "create, add, del, load, flush, destroy or list, then its words",
     {},
     {},
     set_subs,
     "",
     [](const Call& c) {
       const std::string& sub = c.words[1];
       auto s = std::find_if(set_subs.begin(), set_subs.end(),
                             [&](const Sub& x) { return x.name == sub; });
       if (s == set_subs.end())
         throw UsageError("set: '" + sub +
                          "' is not a set command (expected create, add, del, load, flush, "
                          "destroy or list)");
       size_t n = c.words.size() - 2;
       if (n < s->min || n > s->max) throw UsageError("set " + sub + ": usage: " + s->synopsis);
       if (c.has("json") && sub != "list")
         throw UsageError("set " + sub + ": --json is for set list only");
       if (sub == "load") return request(c.sock, {with_file("set load " + c.words[2], c.words[3])});
       std::string line;
       for (const std::string& w : c.words) line += (line.empty() ? "" : " ") + w;
       return request(c.sock, {line + c.json()});
     }},
    {"raw",
     {},
     1,
     SIZE_MAX,
     "one or more quoted commands, e.g. raw 'show interfaces'",
     {{"raw 'COMMAND'...",
       "control commands, one per word, answered in order\n('raw help' lists them)"}},
     {words("help")},
     {},
     "",
     [](const Call& c) {
       std::vector<std::string> commands(c.words.begin() + 1, c.words.end());
       for (const std::string& w : commands)
         if (w.find_first_not_of(" \t\r\n") == std::string::npos)
           throw UsageError(
               "raw: an empty command (expected one or more quoted commands, e.g. "
               "raw 'show interfaces')");
       return request(c.sock, commands);
     }},
    {"help",
     {},
     0,
     0,
     "no word",
     {},
     {},
     {},
     "",
     [](const Call&) {
       std::fputs(usage().c_str(), stdout);
       return 0;
     }},
};

std::string verb_names() {
  std::string s;
  for (const Verb& v : verb_table) s += (s.empty() ? "" : ", ") + v.name;
  return s;
}

}  // namespace

const std::vector<Verb>& verbs() {
  return verb_table;
}

const Flag* find_flag(const std::string& name) {
  auto f = std::find_if(all_flags.begin(), all_flags.end(),
                        [&](const Flag& x) { return x.name == name; });
  return f == all_flags.end() ? nullptr : &*f;
}

const std::vector<std::string>& global_flags() {
  static const std::vector<std::string> f = {"socket", "help", "version"};
  return f;
}

const Verb* find_verb(const std::string& name) {
  auto v = std::find_if(verb_table.begin(), verb_table.end(),
                        [&](const Verb& x) { return x.name == name; });
  return v == verb_table.end() ? nullptr : &*v;
}

// "  SYNOPSIS   what it does", the text at column 38, continued lines
// indented to it.
std::string usage() {
  const size_t col = 38;
  std::string out =
      "usage: xdpfw-ctl [--socket PATH] COMMAND [ARGS]      (options may come anywhere)\n"
      "       xdpfw-ctl --help | --version\n";
  auto entry = [&](const std::string& synopsis, const std::string& help) {
    std::string line = "  " + synopsis;
    size_t last = line.rfind('\n');
    size_t width = line.size() - (last == std::string::npos ? 0 : last + 1);
    line += width + 2 <= col ? std::string(col - width, ' ') : "\n" + std::string(col, ' ');
    for (char ch : help) line += ch == '\n' ? "\n" + std::string(col, ' ') : std::string(1, ch);
    out += line + "\n";
  };
  for (const Verb& v : verb_table) {
    for (const auto& [synopsis, help] : v.help) entry(synopsis, help);
    for (const Sub& s : v.subs) entry(s.synopsis, s.help);
  }
  return out + "Socket: --socket PATH, else $XDPFW_SOCKET, else " + xdpfw::default_socket_path +
         ".\n"
         "Exit: 0 done; 1 the agent answered an error; 2 bad usage; 3 no agent reachable\n"
         "or the agent went away; 4 (status) a rules change refused or an interface in error.\n";
}

Call parse_line(const std::vector<std::string>& args) {
  Call l;
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    // "-" alone is a word (save -), and so is a negative number ("timeout
    // -1s", fail2ban's permanent ban).
    if (options_done || a.size() < 2 || a[0] != '-' || std::isdigit((unsigned char)a[1])) {
      l.words.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a == "-h") {
      l.opts["help"] = "";
      continue;
    }
    if (a[1] != '-') throw UsageError("unrecognised option '" + a + "'");
    size_t eq = a.find('=');
    std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const Flag* f = find_flag(name);
    if (!f) throw UsageError("unrecognised option '--" + name + "'");
    std::string value;
    if (!f->value.empty()) {
      if (eq != std::string::npos)
        value = a.substr(eq + 1);
      else if (i + 1 < args.size())
        value = args[++i];
      else
        throw UsageError("option '--" + name + "' needs a value");
    } else if (eq != std::string::npos) {
      throw UsageError("option '--" + name + "' takes no value");
    }
    if (!l.opts.emplace(name, value).second)
      throw UsageError("option '--" + name + "' given twice");
  }
  const char* env = std::getenv("XDPFW_SOCKET");
  l.sock = l.has("socket") ? l.opts["socket"] : env ? env : xdpfw::default_socket_path;
  return l;
}

const Verb& check_line(const Call& l) {
  const std::string& name = l.words[0];
  const Verb* v = find_verb(name);
  if (!v) throw UsageError("'" + name + "' is not a command (expected " + verb_names() + ")");
  for (const auto& [opt, value] : l.opts) {
    if (std::find(global_flags().begin(), global_flags().end(), opt) != global_flags().end())
      continue;
    if (std::find(v->flags.begin(), v->flags.end(), opt) != v->flags.end()) continue;
    std::string takes;
    for (const std::string& f : v->flags) takes += (takes.empty() ? "--" : ", --") + f;
    throw UsageError(name + ": unexpected option '--" + opt + "' (" + name + " takes " +
                     (takes.empty() ? "no option" : takes) + ")");
  }
  size_t n = l.words.size() - 1;
  if (n > v->max_words)
    throw UsageError(name + ": unexpected '" + l.words[1 + v->max_words] + "' (expected " +
                     v->words + ")");
  if (n < v->min_words) throw UsageError(name + ": expected " + v->words);
  return *v;
}

}  // namespace xdpfw::ctl
