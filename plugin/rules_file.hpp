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
  };
  std::vector<Part> parts;
  // "FILE:LINE" of a line of text (1-based).
  std::string where(unsigned line) const;
  std::vector<std::string> files() const;
};

// An empty path: no rules. Throws RuleError: the path cannot be read, a
// file in the directory cannot be read.
RulesText read_rules_source(const std::string& path);

// Throws RuleError "NAME:LINE: field: what was wrong" (with a source: its
// FILE:LINE). assign_ids false: rules without an id keep id 0 (the rule
// store assigns them). lines: the line of each rule returned.
std::vector<Rule> parse_rules_text(const std::string& name, const std::string& text,
                                   bool assign_ids = true, const RulesText* source = nullptr,
                                   std::vector<unsigned>* lines = nullptr);

}  // namespace xdpfw
