// rules_file.cpp: see rules_file.hpp.
#include "rules_file.hpp"

#include <algorithm>
#include <set>
#include <sstream>

namespace xdpfw {

std::vector<Rule> parse_rules_text(const std::string& name, const std::string& text,
                                   bool assign_ids) {
  std::vector<Rule> rules;
  std::set<uint32_t> ids;
  std::istringstream in(text);
  std::string line;
  unsigned lineno = 0;
  uint32_t next_id = 1;
  uint32_t last_prio = default_priority;
  while (std::getline(in, line)) {
    ++lineno;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      Rule r = parse_rule(line);
      if (!r.id && assign_ids) r.id = next_id;
      if (r.id && !ids.insert(r.id).second)
        throw RuleError("id: " + std::to_string(r.id) + " is used twice");
      next_id = std::max(next_id, r.id + 1);
      if (!r.priority) r.priority = last_prio;
      last_prio = std::max(last_prio, *r.priority);
      rules.push_back(r);
    } catch (const RuleError& e) {
      throw RuleError(name + ":" + std::to_string(lineno) + ": " + e.what());
    }
  }
  return rules;
}

}  // namespace xdpfw
