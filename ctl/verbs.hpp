// verbs.hpp: xdpfw-ctl's verbs as data (verbs.cpp holds the table):
// name, options, words, usage, what completes each word, what it sends.
// The usage text, the checks, the dispatch and the completion read it.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace xdpfw::ctl {

// What completes a word or an option's value: nothing (free text), names
// from a list, a file, or names the running agent has.
struct Values {
  enum Kind { none, words, file, rule_id, set_name } kind = none;
  std::vector<std::string> list;  // for words
};

struct Flag {
  std::string name;
  std::string value;  // what its value looks like; "": a flag without one
  Values values;
};

// A command line, parsed: options by name ("--json" is ("json", "")), the
// words with the verb first, and the socket it goes to.
struct Call {
  std::map<std::string, std::string> opts;
  std::vector<std::string> words;
  std::string sock;
  bool has(const std::string& o) const { return opts.count(o) != 0; }
  std::string json() const { return has("json") ? " json" : ""; }
};

// A subcommand (set create ...): its first words in their places, then
// keywords in any order, some with a value.
struct Sub {
  std::string name;
  size_t min, max;  // words after the subcommand
  std::vector<Values> places;
  std::vector<std::pair<std::string, bool>> keywords;  // (keyword, takes a value)
  std::string synopsis, help;
};

struct Verb {
  std::string name;
  std::vector<std::string> flags;  // besides the global ones
  size_t min_words, max_words;
  std::string words;                                      // what its words are, for messages
  std::vector<std::pair<std::string, std::string>> help;  // (synopsis, what it does)
  std::vector<Values> places;  // what completes its first, second... word
  std::vector<Sub> subs;       // its first word names one of these
  std::string sends;           // the agent's command, "--json" adding " json"; or:
  int (*run)(const Call&) = nullptr;
};

const std::vector<Verb>& verbs();
const Verb* find_verb(const std::string& name);
const Flag* find_flag(const std::string& name);
// The options every verb takes: socket, help, version.
const std::vector<std::string>& global_flags();

std::string usage();
// The command line, or a UsageError: options parsed, the socket chosen.
Call parse_line(const std::vector<std::string>& args);
// The verb, when the line's options and words are ones it takes; else a
// UsageError that says what it takes.
const Verb& check_line(const Call& line);

// `xdpfw-ctl __complete CWORD COMP_WORDS...` (completion.cpp).
int print_completion(const std::vector<std::string>& args);

}  // namespace xdpfw::ctl
