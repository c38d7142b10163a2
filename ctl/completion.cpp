// completion.cpp: `xdpfw-ctl __complete`, the bash completion's answers,
// read from the verb table: verbs, each verb's options, option values, and
// each word's candidates (files, rule ids and set names from the agent).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "client.hpp"
#include "default_paths.hpp"
#include "verbs.hpp"

namespace xdpfw::ctl {
namespace {

struct Completion {
  bool files = false;
  std::string prefix;              // of the file names
  std::vector<std::string> words;  // the candidates, already matching
};

// The names the agent has: "id N ..." lines of rule list, "set NAME: ..."
// lines of set list. Nothing when it cannot be asked.
std::vector<std::string> agent_names(const std::string& sock, Values::Kind kind) {
  std::vector<std::string> out;
  auto reply = ask(sock, kind == Values::rule_id ? "rule list" : "set list");
  std::istringstream in(reply.value_or(""));
  for (std::string line; std::getline(in, line);) {
    std::istringstream w(line);
    std::string first, second;
    w >> first >> second;
    if (kind == Values::rule_id && first == "id") out.push_back(second);
    if (kind == Values::set_name && first == "set" && second.ends_with(":"))
      out.push_back(second.substr(0, second.size() - 1));
  }
  return out;
}

Completion complete_values(const Values& v, const std::string& cur, const std::string& sock) {
  Completion c;
  if (v.kind == Values::file) return {true, cur, {}};
  std::vector<std::string> names = v.kind == Values::words  ? v.list
                                   : v.kind == Values::none ? std::vector<std::string>{}
                                                            : agent_names(sock, v.kind);
  // A list value ("syn,!ack"): complete its last name, the rest kept.
  size_t comma = v.kind == Values::words ? cur.rfind(',') : std::string::npos;
  std::string head = comma == std::string::npos ? "" : cur.substr(0, comma + 1);
  std::string tail = cur.substr(head.size());
  if (!head.empty() && tail.starts_with("!")) head += "!", tail.erase(0, 1);
  for (const std::string& n : names)
    if (n.starts_with(tail)) c.words.push_back(head + n);
  return c;
}

Completion matching(const std::vector<std::string>& names, const std::string& cur) {
  Completion c;
  for (const std::string& n : names)
    if (n.starts_with(cur)) c.words.push_back(n);
  return c;
}

// Candidates for word `cword` of a line as bash splits it (COMP_WORDS: the
// program first, "--opt=value" in three words "--opt", "=", "value").
Completion complete(const std::vector<std::string>& comp, size_t cword) {
  std::string cur = cword < comp.size() ? comp[cword] : "";
  size_t end = cword;  // the words before the one completed
  if (cur == "=") {
    cur.clear();
  } else if (cword >= 2 && comp[cword - 1] == "=") {
    end = cword - 1;
  }
  Call line;
  const char* env = std::getenv("XDPFW_SOCKET");
  line.sock = env ? env : xdpfw::default_socket_path;
  const Flag* value_of = nullptr;  // the option whose value is completed
  bool ended = false;
  for (size_t i = 1; i < end && i < comp.size(); ++i) {
    const std::string& w = comp[i];
    value_of = nullptr;
    if (!ended && w == "--") {
      ended = true;
    } else if (!ended && w.size() > 1 && w[0] == '-') {
      const Flag* f = find_flag(w.substr(2));
      if (!f) continue;
      line.opts[f->name];
      if (f->value.empty()) continue;
      if (i + 1 < end && comp[i + 1] == "=") ++i;  // --opt=value
      if (i + 1 >= end) {
        value_of = f;
        continue;
      }
      line.opts[f->name] = comp[++i];
      if (f->name == "socket") line.sock = comp[i];
    } else if (w != "=") {
      line.words.push_back(w);
    }
  }
  if (value_of) return complete_values(value_of->values, cur, line.sock);

  const Verb* v = line.words.empty() ? nullptr : find_verb(line.words[0]);
  if (!ended && cur.starts_with("-")) {
    std::vector<std::string> names;
    for (const std::string& f : global_flags())
      if (!line.has(f)) names.push_back("--" + f);
    if (v)
      for (const std::string& f : v->flags)
        if (!line.has(f)) names.push_back("--" + f);
    return matching(names, cur);
  }
  if (line.words.empty()) {
    std::vector<std::string> names;
    for (const Verb& x : verbs()) names.push_back(x.name);
    return matching(names, cur);
  }
  if (!v) return {};
  size_t n = line.words.size() - 1;  // the verb's words before this one
  if (v->subs.empty())
    return n < v->places.size() ? complete_values(v->places[n], cur, line.sock) : Completion{};
  if (n == 0) {
    std::vector<std::string> names;
    for (const Sub& s : v->subs) names.push_back(s.name);
    return matching(names, cur);
  }
  auto s = std::find_if(v->subs.begin(), v->subs.end(),
                        [&](const Sub& x) { return x.name == line.words[1]; });
  if (s == v->subs.end()) return {};
  size_t k = n - 1;  // the subcommand's words before this one
  if (k < s->places.size()) return complete_values(s->places[k], cur, line.sock);
  std::vector<std::string> names;
  for (const auto& [kw, takes_value] : s->keywords) {
    if (line.words.back() == kw && takes_value) return {};  // its value
    if (std::find(line.words.begin() + 2, line.words.end(), kw) == line.words.end())
      names.push_back(kw);
  }
  return matching(names, cur);
}

}  // namespace

// `xdpfw-ctl __complete CWORD COMP_WORDS...`: "files" and the prefix, or
// "words" and the candidates, a line each.
int print_completion(const std::vector<std::string>& args) {
  if (args.size() < 2) return 0;
  size_t cword = std::strtoul(args[1].c_str(), nullptr, 10);
  Completion c = complete({args.begin() + 2, args.end()}, cword);
  std::printf(c.files ? "files\n%s\n" : "words\n", c.prefix.c_str());
  for (const std::string& w : c.words) std::printf("%s\n", w.c_str());
  return 0;
}

}  // namespace xdpfw::ctl
