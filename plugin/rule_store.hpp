// rule_store.hpp: the rule set as the operator changes it: stable ids that
// are never reused, priorities assigned "after the existing ones", and
// every change computed as a whole new list first, so that a caller can
// install it all or nothing.
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "flat_map.hpp"
#include "rule.hpp"
#include "rules_file.hpp"

namespace xdpfw {

// The "# ids-used-up-to N" line of a file written by RuleStore::save; 0 if none.
uint32_t read_id_high_water(const std::string& text);

class RuleStore {
 public:
  // The list a change would produce, without changing the store.
  // Throw RuleError with what was wrong.
  std::vector<Rule> with_added(Rule r, uint32_t* id_out) const;
  std::vector<Rule> without(uint32_t id) const;

  // One rule at a time without copying the set (100,000 rules: a copy is
  // milliseconds): prepared() gives r its id and priority and checks them,
  // changing nothing; after the caller installed it, insert() adds it.
  // find() is the rule with that id, or null; erase() removes it.
  Rule prepared(Rule r) const;
  void insert(const Rule& r);
  const Rule* find(uint32_t id) const;
  void erase(uint32_t id);
  // A whole new set from rule lines ("line N: ..." errors); ids and
  // priorities absent from a line are assigned.
  // source, lines: as parse_rules_text (rules_file.hpp).
  std::vector<Rule> parsed(const std::string& name, const std::string& text,
                           const RulesText* source = nullptr,
                           std::vector<unsigned>* lines = nullptr) const;

  // Makes a list installed by the caller the store's content.
  void commit(std::vector<Rule> rules);
  const std::vector<Rule>& rules() const { return rules_; }
  // Ids up to this one have been given (save() writes it down as a comment
  // that read_id_high_water() finds); raise it after a restart so that the
  // ids of rules deleted before it never come back.
  uint32_t id_high_water() const { return high_water_id_; }
  void raise_id_high_water(uint32_t id) { high_water_id_ = std::max(high_water_id_, id); }

  // The set as rule lines, in order; parse_rules_text reads it back.
  std::string text() const;
  // The comment lines a saved file starts with: its writer and the id
  // high-water mark (read_id_high_water).
  std::string header() const;

  // The rules journal's lines (state_journal.hpp): "add RULE" (the rule
  // with its id and priority), "del ID". replay() applies one to rules,
  // idempotently (an add of an id present, a del of one absent: nothing),
  // and returns the id it names; throws RuleError.
  static std::string journal_add(const Rule& r);
  static std::string journal_del(uint32_t id);
  static uint32_t replay(std::vector<Rule>& rules, std::string_view line);
  // Writes text() to path atomically (a new file beside it, made with
  // O_EXCL under an unpredictable name, then renamed over it) with the old
  // file's mode and owner; refuses symbolic links and anything but a regular
  // file. durable: fsync before the rename, so that the file survives a power
  // loss too. backup: the replaced file stays as path.bak.
  void save(const std::string& path, bool durable = true, bool backup = true) const;

 private:
  uint32_t next_id() const;
  uint32_t last_priority() const;

  std::vector<Rule> rules_;      // sorted by (priority, id)
  FlatMap<uint32_t, bool> ids_;  // of rules_ (a set: the value is unused)
  uint32_t high_water_id_ = 0;   // every id ever given or held; never reused
};

}  // namespace xdpfw
