// rule_store.cpp: see rule_store.hpp.
#include "rule_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "rule_compiler.hpp"
#include "rules_file.hpp"
#include "safe_files.hpp"

namespace xdpfw {
namespace {
bool before(const Rule& a, const Rule& b) {
  return a.order() < b.order();
}
void sort_rules(std::vector<Rule>& rs) {
  if (!std::is_sorted(rs.begin(), rs.end(), before)) std::sort(rs.begin(), rs.end(), before);
}
}  // namespace

uint32_t read_id_high_water(const std::string& text) {
  const std::string tag = "\n# ids-used-up-to ";
  size_t at = text.find(tag);
  if (at == std::string::npos) return 0;
  try {
    return static_cast<uint32_t>(std::stoul(text.substr(at + tag.size())));
  } catch (const std::exception&) {
    return 0;
  }
}

// high_water_id_ covers every rule held now (commit and insert keep it so).
uint32_t RuleStore::next_id() const {
  return high_water_id_ + 1;
}

// "After the existing ones": the list is sorted by priority, so the last.
uint32_t RuleStore::last_priority() const {
  return rules_.empty() ? default_priority : std::max(default_priority, *rules_.back().priority);
}

Rule RuleStore::prepared(Rule r) const {
  if (r.id) {
    if (ids_.count(r.id))
      throw RuleError("id: " + std::to_string(r.id) + " is taken (rule del it first, or omit id)");
  } else {
    if (next_id() == 0) throw RuleError("id: no ids left");
    r.id = next_id();
  }
  if (!r.priority) r.priority = last_priority();
  return r;
}

std::vector<Rule> RuleStore::with_added(Rule r, uint32_t* id_out) const {
  r = prepared(std::move(r));
  std::vector<Rule> out;
  out.reserve(rules_.size() + 1);
  auto at = std::upper_bound(rules_.begin(), rules_.end(), r, before);
  out.insert(out.end(), rules_.begin(), at);
  out.push_back(r);
  out.insert(out.end(), at, rules_.end());
  if (id_out) *id_out = r.id;
  return out;
}

void RuleStore::insert(const Rule& r) {
  rules_.insert(std::upper_bound(rules_.begin(), rules_.end(), r, before), r);
  ids_.try_emplace(r.id);
  high_water_id_ = std::max(high_water_id_, r.id);
}

const Rule* RuleStore::find(uint32_t id) const {
  if (!ids_.count(id)) return nullptr;
  auto it = std::find_if(rules_.begin(), rules_.end(), [&](const Rule& r) { return r.id == id; });
  return it == rules_.end() ? nullptr : &*it;
}

void RuleStore::erase(uint32_t id) {
  auto it = std::find_if(rules_.begin(), rules_.end(), [&](const Rule& r) { return r.id == id; });
  if (it == rules_.end()) return;
  rules_.erase(it);
  ids_.erase(id);
}

std::vector<Rule> RuleStore::without(uint32_t id) const {
  std::vector<Rule> out = rules_;
  auto it = std::find_if(out.begin(), out.end(), [&](const Rule& r) { return r.id == id; });
  if (it == out.end())
    throw RuleError("id: no rule " + std::to_string(id) + " ('rule list' shows them)");
  out.erase(it);
  return out;
}

std::vector<Rule> RuleStore::parsed(const std::string& name, const std::string& text,
                                    const RulesText* source, std::vector<unsigned>* lines) const {
  std::vector<Rule> out = parse_rules_text(name, text, false, source, lines);
  // A rule without an id keeps the id of the running rule it equals
  // (rule_identity: every field but the id; its counters go on); any other
  // gets a new id, above every id ever used (ids never come back).
  std::unordered_set<uint32_t> taken;
  uint32_t fresh = next_id();
  for (const Rule& r : out)
    if (r.id) taken.insert(r.id);
  std::unordered_multimap<std::string, uint32_t> current;
  current.reserve(rules_.size());
  for (const Rule& r : rules_)
    if (!taken.count(r.id)) current.emplace(rule_identity(r), r.id);
  for (Rule& r : out) {
    if (r.id) continue;
    if (auto it = current.find(rule_identity(r)); it != current.end()) {
      r.id = it->second;
      current.erase(it);
      continue;
    }
    while (taken.count(fresh)) ++fresh;
    if (fresh == 0) throw RuleError(name + ": no ids left");
    r.id = fresh++;
  }
  return out;  // commit() sorts
}

void RuleStore::commit(std::vector<Rule> rules) {
  sort_rules(rules);
  rules_ = std::move(rules);
  ids_.clear();
  ids_.reserve(rules_.size());
  for (const Rule& r : rules_) {
    ids_.try_emplace(r.id);
    high_water_id_ = std::max(high_water_id_, r.id);
  }
}

std::string RuleStore::text() const {
  std::string o;
  o.reserve(rules_.size() * 96);
  for (const Rule& r : rules_) {
    o += format_rule(r);
    o += '\n';
  }
  return o;
}

std::string RuleStore::header() const {
  return "# written by xdpfw 'save'\n# ids-used-up-to " + std::to_string(id_high_water()) + "\n";
}

std::string RuleStore::journal_add(const Rule& r) {
  return "add " + format_rule(r);
}

std::string RuleStore::journal_del(uint32_t id) {
  return "del " + std::to_string(id);
}

uint32_t RuleStore::replay(std::vector<Rule>& rules, std::string_view line) {
  if (line.rfind("add ", 0) == 0) {
    Rule r = parse_rule(line.substr(4));
    if (!r.id || !r.priority) throw RuleError("no id or priority");
    if (std::none_of(rules.begin(), rules.end(), [&](const Rule& x) { return x.id == r.id; }))
      rules.push_back(r);
    return r.id;
  }
  if (line.rfind("del ", 0) == 0) {
    auto id = parse_uint<uint32_t>(line.substr(4), UINT32_MAX);
    if (!id) throw RuleError("del: expected a rule id");
    std::erase_if(rules, [&](const Rule& x) { return x.id == *id; });
    return *id;
  }
  throw RuleError("expected 'add RULE' or 'del ID'");
}

void RuleStore::save(const std::string& path, bool durable, bool backup) const {
  // The caller may be a less privileged client of a root agent.
  std::string body = header() + text();
  try {
    write_file_atomic(path, body, durable, backup, 0640, "save");
  } catch (const FileError& e) {
    throw RuleError(e.what());
  }
}

}  // namespace xdpfw
