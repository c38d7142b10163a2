// rules_file.hpp: reads a rules file: one rule per line in the rule grammar
// (rule.hpp), "#" comments. Ids and priorities absent from a line are
// assigned as the rule store does: ids count up, a rule without a priority
// goes after the rules before it.
#pragma once

#include <string>
#include <vector>

#include "rule.hpp"

namespace xdpfw {

inline constexpr uint32_t default_priority = 1000;

// Throws RuleError "NAME:LINE: field: what was wrong". assign_ids false:
// rules without an id keep id 0 (the rule store assigns them).
std::vector<Rule> parse_rules_text(const std::string& name, const std::string& text,
                                   bool assign_ids = true);

}  // namespace xdpfw
