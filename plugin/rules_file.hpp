// rules_file.hpp: reads rules: one rule per line in the rule grammar
// (rule.hpp), "#" comments. Ids and priorities absent from a line are
// assigned as the rule store does: ids count up, a rule without a priority
// goes after the rules before it.
//
// The rules come from a file or from a directory (rules.d): every "*.rules"
// file in it, in name order (byte order), makes one rule set, as if the
// files were one file; names starting with "." are skipped (kubelet's
// "..data" and its timestamped folders), symbolic links are followed.
#pragma once

#include <string>
#include <vector>

#include "rule.hpp"

namespace xdpfw {

inline constexpr uint32_t default_priority = 1000;

// The rules of a file or a directory, as one text, and where each of its
// lines comes from.
struct RulesText {
  std::string path;
  bool directory = false;
  // What is parsed, compared with what was applied last, and kept. A
  // directory's files each start with a "# file NAME" comment line, so
  // that a rename is a change.
  std::string text;
  struct Part {
    std::string file;     // its path
    unsigned first_line;  // the line of text where its line 1 is
    unsigned lines;
    bool world_readable;  // else its text is never quoted (errors, status, log)
  };
  std::vector<Part> parts;
  // "FILE:LINE" of a line of text (1-based).
  std::string where(unsigned line) const;
  std::vector<std::string> files() const;
  // Whether a line of text may be quoted: from a file every user may read.
  bool quotable(unsigned line) const;
};

// The default of rules-max-size: 16 MiB, the whole source (100,000 rules
// of a ClassBench set take about 9 MB in the file grammar).
inline constexpr uint64_t default_rules_max_bytes = 16ull << 20;

// An empty path: no rules. Throws RuleError: the path cannot be read, a
// file in the directory cannot be read, or cannot be trusted as root's
// input (trust_problem, safe_files.hpp: the file, its link's target and the
// folders above owned by root or the agent's user, none writable by other
// users unless on a read-only mount), or the files hold more than max_bytes
// (at most max_bytes + 1 of them are read).
RulesText read_rules_source(const std::string& path, uint64_t max_bytes = default_rules_max_bytes);

// Throws RuleError "NAME:LINE: field: what was wrong" (with a source: its
// FILE:LINE). assign_ids false: rules without an id keep id 0 (the rule
// store assigns them). lines: the line of each rule returned.
std::vector<Rule> parse_rules_text(const std::string& name, const std::string& text,
                                   bool assign_ids = true, const RulesText* source = nullptr,
                                   std::vector<unsigned>* lines = nullptr);

}  // namespace xdpfw
