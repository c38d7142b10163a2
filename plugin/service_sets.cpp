// service_sets.cpp: the firewall's address-set commands and the sets'
// state (sets.state, sets.journal): part of FirewallService
// (firewall_service.hpp), apart from its rule transactions.
#include <algorithm>

#include "firewall_service.hpp"

namespace xdpfw {
std::vector<uint32_t> FirewallService::rules_using(std::string_view set) const {
  std::vector<uint32_t> ids;
  for (const Rule& r : store_.rules())
    if ((r.src_set && r.src_set->name == set) || (r.dst_set && r.dst_set->name == set))
      ids.push_back(r.id);
  return ids;
}

// sets.state, then sets.journal. A bad line is skipped (each names its set).
void FirewallService::restore_sets() {
  size_t replayed = 0;
  auto replay = [&](const std::string& path, size_t n, const std::string& line) {
    try {
      sets_.replay(line);
      ++replayed;
    } catch (const std::exception& e) {
      log_(0, path + ":" + std::to_string(n) + ": " + e.what() + " (line ignored)");
    }
  };
  if (auto text = sets_state_.read_state()) {
    size_t n = 0, pos = 0, nl;
    while ((nl = text->find('\n', pos)) != std::string::npos) {
      replay(sets_state_.state_path(), ++n, text->substr(pos, nl - pos));
      pos = nl + 1;
    }
  }
  auto lines = sets_state_.read_journal();
  for (size_t n = 0; n < lines.size(); ++n) replay(sets_state_.journal_path(), n + 1, lines[n]);
  if (!replayed) return;
  save_sets();  // the journal folded in
  log_(2, "address sets: restored " + std::to_string(sets_.sets().size()) + " set(s), " +
              std::to_string(sets_.total()) + " element(s)");
}

void FirewallService::save_sets() {
  try {
    sets_state_.fold(sets_.snapshot());
  } catch (const std::exception& e) {
    log_(0, std::string("state-dir: ") + e.what() + " (a restart would lose set changes)");
  }
}

// One set change: a line appended to sets.journal, folded into sets.state
// once it holds more lines than the sets have elements (and at least
// 100,000: tens of thousands of changes a second).
void FirewallService::set_journal(const std::string& line) {
  if (!sets_state_.append(line, std::max<uint64_t>(100000, sets_.total()))) save_sets();
}

CommandOutput FirewallService::set_create(const SetSpec& spec) {
  try {
    set_journal(AddressSets::journal_create(sets_.create(spec)));
    return {true, "created set " + spec.name};
  } catch (const std::exception& e) {
    return command_error("set create", e);
  }
}

CommandOutput FirewallService::set_add(const std::string& set, const Prefix& p,
                                       std::optional<uint64_t> timeout_s) {
  try {
    bool fresh = sets_.add(set, p, timeout_s);
    set_journal(sets_.journal_add(*sets_.find(set), AddressSets::key_of(p)));
    return {true, fresh ? "added" : "updated"};
  } catch (const std::exception& e) {
    return command_error("set add", e);
  }
}

CommandOutput FirewallService::set_del(const std::string& set, const Prefix& p, bool if_present) {
  try {
    if (!sets_.del(set, p)) {
      if (if_present) return {true, "absent"};
      return {false, "set del: " + format_prefix(p) + " is not an element of " + set};
    }
    set_journal(AddressSets::journal_del(set, p));
    return {true, "deleted"};
  } catch (const std::exception& e) {
    return command_error("set del", e);
  }
}

CommandOutput FirewallService::set_flush(const std::string& set) {
  try {
    size_t n = sets_.flush(set);
    set_journal(AddressSets::journal_flush(set));
    return {true, "flushed " + std::to_string(n) + " element(s)"};
  } catch (const std::exception& e) {
    return command_error("set flush", e);
  }
}

CommandOutput FirewallService::set_load(const std::string& set, const std::vector<SetItem>& items) {
  // An empty content is asked for in words (a '<<' payload ends at the
  // first empty line).
  if (items.empty())
    return {false, "set load: the payload holds no element, nothing was changed ('set flush " +
                       set + "' empties the set)"};
  try {
    sets_.load(set, items);
    save_sets();
    return {true,
            "loaded " + std::to_string(sets_.find(set)->elems.size()) + " element(s) into " + set};
  } catch (const std::exception& e) {
    return command_error("set load", e);
  }
}

CommandOutput FirewallService::set_destroy(const std::string& set) {
  if (!sets_.find(set)) return {false, "set destroy: no set '" + set + "'"};
  if (auto ids = rules_using(set); !ids.empty())
    return {false, "set destroy: set " + set + " is used by rule(s) " + join_ids(ids) +
                       " (delete them first)"};
  try {
    sets_.destroy(set);
    set_journal(AddressSets::journal_destroy(set));
    return {true, "destroyed set " + set +
                      (std::any_of(cfg_.sets.begin(), cfg_.sets.end(),
                                   [&](const SetSpec& x) { return x.name == set; })
                           ? " (the config declares it: a reload or restart makes "
                             "it anew)"
                           : "")};
  } catch (const std::exception& e) {
    return command_error("set destroy", e);
  }
}

}  // namespace xdpfw
