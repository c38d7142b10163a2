// firewall_service.cpp: see firewall_service.hpp.
#include "firewall_service.hpp"

#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <filesystem>

#include "rules_file.hpp"
#include "safe_files.hpp"

namespace xdpfw {
namespace {

std::vector<Rule> load_rules(const FirewallConfig& cfg) {
  RulesText src = read_rules_source(cfg.rules_file, cfg.rules_max_bytes);
  return parse_rules_text(src.path, src.text, true, &src);
}

bool declares(const FirewallConfig& cfg, std::string_view set) {
  return std::any_of(cfg.sets.begin(), cfg.sets.end(),
                     [&](const SetSpec& x) { return x.name == set; });
}

}  // namespace

uint64_t monotonic_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

void check_log_dir(const FirewallConfig& cfg) {
  std::error_code ec;
  if (!std::filesystem::exists(cfg.log_dir, ec)) make_private_dir(cfg.log_dir, 0750, "log-dir");
  std::string problem = private_dir_problem(cfg.log_dir, "log-dir");
  if (!problem.empty()) throw std::runtime_error(problem);
}

// What a reload does to the sets: the config's new declarations made, the
// changed ones configured, those whose line went removed (sets made with
// 'set create' are no config's: they stay).
struct FirewallService::SetPlan {
  std::vector<SetSpec> create, configure;
  std::vector<std::string> remove;
};

FirewallService::SetPlan FirewallService::plan_sets(const FirewallConfig& next) const {
  SetPlan plan;
  for (const SetSpec& spec : next.sets) {
    const AddressSets::Set* s = sets_.find(spec.name);
    if (!s) {
      plan.create.push_back(spec);
    } else if (s->spec != spec) {
      if (spec.max && spec.max < s->elems.size())
        throw SetError("set " + spec.name + ": max " + std::to_string(spec.max) + " is below the " +
                       std::to_string(s->elems.size()) + " elements it holds");
      plan.configure.push_back(spec);
    }
  }
  for (const SetSpec& old : cfg_.sets)
    if (!declares(next, old.name) && sets_.find(old.name)) plan.remove.push_back(old.name);
  return plan;
}

FirewallService::FirewallService(const FirewallConfig& cfg, Log log, FirewallParts parts)
    : cfg_(cfg),
      log_(std::move(log)),
      clock_(std::move(parts.clock)),
      // Parts without a lock (fakes): the state folder is locked here.
      lock_(parts.lock ? std::move(parts.lock) : std::make_unique<AgentLock>("", cfg.state_dir)),
      dp_(std::move(parts.datapath)),
      attacher_(std::move(parts.attacher)),
      attach_(*attacher_, cfg, log_),
      sets_(*dp_, clock_.sets),
      rules_state_(cfg.state_dir, "rules", log_),
      sets_state_(cfg.state_dir, "sets", log_),
      events_(*dp_, [this](int ifindex) { return ifname(ifindex); }),
      source_(log_, clock_.mono_ms, clock_.wall_ms) {
  check_log_dir(cfg_);
  // Precedence: the rule set of the previous run (pinned maps and the state
  // folder both found) wins; else the rules file. Pins of another layout
  // (an upgrade, another max-rules) were replaced: the rules still come
  // from the state, the counters start from zero.
  // The sets before the rules that name them: the state's (sets are data,
  // kept whatever the pins), then the config's declarations.
  restore_sets();
  SetPlan plan = plan_sets(cfg_);
  for (const SetSpec& s : plan.create) set_journal(AddressSets::journal_create(sets_.create(s)));
  for (const SetSpec& s : plan.configure) {
    sets_.configure(s);
    set_journal(AddressSets::journal_create(*sets_.find(s.name)));
  }
  sets_.sync();
  if (!dp_->replaced_pins().empty())
    log_(1, "the maps pinned in " + dp_->pin_dir() + " were made with another layout (" +
                dp_->replaced_pins() +
                "); replaced them: rule counters and statistics start from zero");
  if ((dp_->resumed() || !dp_->replaced_pins().empty()) && rules_state_.read_state()) {
    // As the journals: only a file the agent wrote (else: changed).
    source_.set_applied_text(rules_state_.read_own(state_file("rules-file.applied")).value_or(""));
    saved_rules_file_text_ = source_.applied_text();
    install(read_state());
    store_.raise_id_high_water(resumed_id_high_water_);
    log_(2, "resumed the previous run's " + std::to_string(store_.rules().size()) +
                (dp_->resumed() ? " rule(s) and counters" : " rule(s)"));
    // Rules files that changed while the agent was away win: a restart
    // must not keep a stale policy. Unreadable or refused: the resumed set
    // stays, and says so.
    try {
      RulesText src = read_rules_source(cfg_.rules_file, cfg_.rules_max_bytes);
      if (source_.changed(src)) {
        apply_source(src);
        log_(1, "rules: " + (cfg_.rules_file.empty() ? std::string("none") : cfg_.rules_file) +
                    " changed while the agent was stopped: applied " +
                    std::to_string(store_.rules().size()) + " rule(s) from it");
      } else {
        std::vector<unsigned> lines;
        source_.resumed(src, store_.parsed(src.path, src.text, &src, &lines), lines);
      }
    } catch (const std::exception& e) {
      source_.refused(e.what());
    }
  } else {
    RulesText src = read_rules_source(cfg_.rules_file, cfg_.rules_max_bytes);
    std::vector<unsigned> lines;
    auto list = parse_rules_text(src.path, src.text, true, &src, &lines);
    source_.applied(src, list, lines, false);
    install(std::move(list));
  }
  source_.configure(cfg_.rules_file, cfg_.watch_rules, cfg_.watch_delay_ms, cfg_.rules_max_bytes);
  open_log();
  dp_->events_fd();  // the event reader before any event is allowed
  dp_->set_event_limit(cfg_.event_rate, cfg_.event_burst);
  log_(2, std::to_string(store_.rules().size()) + " rule(s) installed" +
              (cfg_.rules_file.empty() ? "" : " from " + cfg_.rules_file));
  if (cfg_.include.empty())
    log_(1,
         "no interfaces configured ('interfaces =' in [plugin.xdpfw]): nothing is attached by "
         "itself; set interfaces, or 'attach IF'");
  if (std::string why = dp_->limits().no_ct; !why.empty())
    log_(1, "ct rules cannot be used: " + why);
  if (cfg_.policy.audit)
    log_(1, "audit = yes: drop verdicts are counted and logged as would-drop, and passed");
}

FirewallService::~FirewallService() {
  // Persistent: the pinned links keep filtering while the agent is away.
  if (!cfg_.persistent) {
    size_t n = attach_.detach_all();
    if (n)
      log_(1, "stopping: detached from " + std::to_string(n) +
                  " interface(s); their traffic now passes unfiltered until the agent is back "
                  "(persistent = yes keeps the filter through a stop)");
  } else {
    log_(2, "stopping: the pinned links keep filtering with the current rules (persistent)");
  }
}

// ---- the rules source ----

void FirewallService::apply_source(const RulesText& src) {
  std::vector<unsigned> lines;
  auto list = store_.parsed(src.path, src.text, &src, &lines);
  resolve(list, nullptr, &src, &lines);
  dp_->apply(list, cfg_.policy);  // all or nothing: throws with nothing changed
  source_.applied(src, list, lines, true);
  store_.commit(std::move(list));
  save_state();
  if (pending_) {
    pending_.reset();
    log_(1,
         "rule replace: the rules files changed while a replace was on trial: they are the "
         "rules now, nothing will be reverted");
  }
}

void FirewallService::settle() {
  uint64_t now = clock_.mono_ms();
  if (pending_ && now >= pending_->deadline_ms) {
    PendingRevert back = std::move(*pending_);
    pending_.reset();
    try {
      size_t n = back.rules.size();
      // A rule the trial removed counts from zero in the kernel again: what
      // it had counted is carried on here.
      std::vector<uint32_t> returning;
      for (const Rule& r : back.rules)
        if (!store_.find(r.id)) returning.push_back(r.id);
      install(std::move(back.rules));
      for (uint32_t id : returning) carried_[id] = back.counters[id];
      source_.set_origins(std::move(back.origins));
      log_(1, "rule replace: not confirmed in time: the previous " + std::to_string(n) +
                  " rule(s) are back");
    } catch (const std::exception& e) {
      log_(0, std::string("rule replace: not confirmed in time, and the previous rules could "
                          "not be installed again: ") +
                  e.what() + " (the new set stays)");
    }
  }
  if (auto src = source_.poll()) {
    try {
      apply_source(*src);
      log_(2, "rules: " + cfg_.rules_file + " changed: applied " +
                  std::to_string(store_.rules().size()) + " rule(s), run-time changes replaced");
    } catch (const std::exception& e) {
      source_.refused(e.what());
    }
  }
  try {
    dp_->settle();
  } catch (const std::exception& e) {
    log_(0, std::string("datapath: finishing the last change: ") + e.what() +
                " (the next change retries it)");
  }
  give_back_heap();
  try {
    sets_.reap();  // (no journal line: an expired element is not restored)
  } catch (const std::exception& e) {
    log_(0, std::string("address sets: reaping expired elements: ") + e.what() +
                " (the datapath ignores them: they have expired)");
  }
}

// The catch-up of a big replace (dp_->settle) frees its batches on a timer
// tick, long after the host trimmed the heap behind the answer: what they
// leave free below the mmap threshold stays in the RSS (4 MiB after 100,000
// rules) until something trims. Trimmed when the heap's free bytes grew by
// 4 MiB over their lowest since the last trim: mallinfo2 reads the free
// lists only, and a heap that stays fragmented is not trimmed every tick.
void FirewallService::give_back_heap() {
  size_t free_now = mallinfo2().fordblks;
  heap_free_low_ = std::min(heap_free_low_, free_now);
  if (free_now < heap_free_low_ + (size_t{4} << 20)) return;
  malloc_trim(0);
  heap_free_low_ = mallinfo2().fordblks;
}

std::unordered_map<uint32_t, RuleCounters> FirewallService::rule_counters() const {
  auto all = dp_->all_rule_counters();
  for (const auto& [id, c] : carried_) {
    if (!store_.find(id)) continue;
    all[id].packets += c.packets;
    all[id].bytes += c.bytes;
  }
  return all;
}

std::optional<FirewallService::Trial> FirewallService::trial() const {
  if (!pending_) return std::nullopt;
  uint64_t now = clock_.mono_ms();
  uint64_t left_ms = pending_->deadline_ms > now ? pending_->deadline_ms - now : 0;
  return Trial{pending_->rules.size(), (left_ms + 999) / 1000};
}

// ---- config: check and reload ----

void FirewallService::check(const FirewallConfig& cfg) {
  CompileLimits limits;
  limits.max_rules = cfg.max_rules;
  try {
    // Sets made at run time are not known here: a rules file names the
    // sets the config declares.
    auto rules = load_rules(cfg);
    for (Rule& r : rules)
      for (auto* ref : {&r.src_set, &r.dst_set})
        if (*ref) {
          auto it = std::find_if(cfg.sets.begin(), cfg.sets.end(),
                                 [&](const SetSpec& x) { return x.name == (*ref)->name; });
          if (it == cfg.sets.end())
            throw CompileError("rule " + format_rule(r) + ": no set '" + (*ref)->name +
                               "' declared in the config (set = " + (*ref)->name + ")");
          (*ref)->id = static_cast<uint16_t>(it - cfg.sets.begin() + 1);
        }
    compile_rules(rules, cfg.policy, limits);
  } catch (const CompileError& e) {
    throw std::runtime_error((cfg.rules_file.empty() ? "rules" : cfg.rules_file) + ": " + e.what());
  }
}

// What a reload applies: the new settings, except those read only at start.
FirewallConfig FirewallService::reloadable(const FirewallConfig& cfg) const {
  FirewallConfig next = cfg;
  next.max_rules = cfg_.max_rules;
  next.pin_root = cfg_.pin_root;
  next.persistent = cfg_.persistent;
  return next;
}

// As reload would do it, short of changing anything: the rules file read
// and compiled with the running limits (max-rules as running, not as the
// new file says, since it changes only at a restart), its set names
// resolved against the sets as the reload would leave them.
void FirewallService::check_reload(const FirewallConfig& cfg) const {
  FirewallConfig next = reloadable(cfg);
  std::error_code ec;
  if (std::filesystem::exists(next.log_dir, ec)) {
    std::string problem = private_dir_problem(next.log_dir, "log-dir");
    if (!problem.empty()) throw std::runtime_error(problem);
  }
  RulesText src = read_rules_source(next.rules_file, next.rules_max_bytes);
  try {
    SetPlan plan = plan_sets(next);
    std::vector<unsigned> lines;
    auto list = store_.parsed(src.path, src.text, &src, &lines);
    resolve(list, &plan, &src, &lines);
    compile_rules(list, next.policy, dp_->limits());
  } catch (const std::exception& e) {  // CompileError, RuleError, SetError
    std::string why = (next.rules_file.empty() ? "rules" : next.rules_file) + ": " + e.what();
    if (cfg.max_rules != cfg_.max_rules)
      why += " (max-rules stays " + std::to_string(cfg_.max_rules) + " until a restart; the new " +
             std::to_string(cfg.max_rules) + " is not in effect)";
    throw std::runtime_error(why);
  }
}

// The rules file replaces the run-time rules when it changed since it was
// last applied, or when force says so (the "reload" command); otherwise
// (SIGHUP, file unchanged) run-time changes are kept.
std::string FirewallService::reload(const FirewallConfig& cfg, bool force) {
  std::vector<std::string> notes;
  if (cfg.max_rules != cfg_.max_rules)
    notes.push_back("max-rules changed: that takes a restart (kept " +
                    std::to_string(cfg_.max_rules) + ")");
  if (cfg.pin_root != cfg_.pin_root || cfg.persistent != cfg_.persistent)
    notes.push_back("pin-root and persistent changes take a restart (kept the running ones)");
  FirewallConfig next = reloadable(cfg);
  RulesText src = read_rules_source(next.rules_file, next.rules_max_bytes);
  bool file_changed = source_.changed(src) || next.rules_file != cfg_.rules_file;
  bool from_file = file_changed || force;
  std::vector<unsigned> lines;
  std::vector<Rule> list =
      from_file ? store_.parsed(src.path, src.text, &src, &lines) : store_.rules();
  SetPlan plan = plan_sets(next);
  resolve(list, &plan, from_file ? &src : nullptr, &lines);  // every name known first
  // The new sets before the rules naming them; made back if the rules fail.
  std::vector<std::string> made;
  try {
    for (const SetSpec& s : plan.create) made.push_back(sets_.create(s).spec.name);
    resolve(list, &plan);
    dp_->apply(list, next.policy);  // all or nothing: throws with nothing changed
  } catch (...) {
    for (const std::string& name : made) sets_.destroy(name);
    throw;
  }
  for (const SetSpec& s : plan.configure) sets_.configure(s);
  for (const auto* specs : {&plan.create, &plan.configure})
    for (const SetSpec& s : *specs) set_journal(AddressSets::journal_create(*sets_.find(s.name)));
  for (const std::string& name : plan.remove) {
    size_t n = sets_.find(name)->elems.size();
    sets_.destroy(name);
    set_journal(AddressSets::journal_destroy(name));
    notes.push_back("set " + name + " removed with its " + std::to_string(n) +
                    " element(s): its 'set =' line is gone");
  }
  if (from_file) source_.applied(src, list, lines, false);
  store_.commit(std::move(list));
  std::string rules = std::to_string(store_.rules().size()) + " rule(s)";
  if (from_file) {
    rules += " applied from " + (next.rules_file.empty() ? "(no rules file)" : next.rules_file) +
             (file_changed ? " (rules file changed)" : " (re-applied)") +
             ", run-time changes replaced";
  } else {
    rules += " kept: the rules file is as last applied, run-time changes stay";
  }
  log_(2, rules);
  for (const std::string& n : notes) log_(1, n);
  bool new_log = next.log_path() != cfg_.log_path();
  if (new_log) check_log_dir(next);
  cfg_ = next;
  save_state();
  if (new_log) open_log();
  dp_->set_event_limit(cfg_.event_rate, cfg_.event_burst);
  attach_.reconfigure(cfg_);
  source_.configure(cfg_.rules_file, cfg_.watch_rules, cfg_.watch_delay_ms, cfg_.rules_max_bytes);
  for (const std::string& n : notes) rules += "\n" + n;
  return rules;
}

void FirewallService::install(std::vector<Rule> list) {
  resolve(list);
  dp_->apply(list, cfg_.policy);
  store_.commit(std::move(list));
  save_state();
}

// ---- the rules' state: rules.state and rules.journal ----

std::string FirewallService::state_file(const char* name) const {
  return cfg_.state_dir == "none" ? "" : cfg_.state_dir + "/" + name;
}

// One rule added or deleted: a line appended to rules.journal instead of
// the whole state rewritten (100,000 rules: tens of ms); the journal is folded
// into rules.state once it holds more than a tenth of the rules.
void FirewallService::journal(const std::string& line) {
  if (!rules_state_.append(line, std::max<size_t>(1000, store_.rules().size() / 10))) save_state();
}

// rules.state, then the journal's changes in order. A bad line ends the
// journal there (what follows it may depend on it).
std::vector<Rule> FirewallService::read_state() {
  std::string text = rules_state_.read_state().value_or("");
  std::vector<Rule> rules = parse_rules_text(rules_state_.state_path(), text);
  resumed_id_high_water_ = read_id_high_water(text);
  auto lines = rules_state_.read_journal();
  for (size_t n = 0; n < lines.size(); ++n) {
    try {
      resumed_id_high_water_ = std::max(resumed_id_high_water_, RuleStore::replay(rules, lines[n]));
    } catch (const std::exception& e) {
      log_(0, rules_state_.journal_path() + ":" + std::to_string(n + 1) + ": " + e.what() +
                  " (the rest is ignored)");
      break;
    }
  }
  return rules;
}

void FirewallService::save_state() {
  if (!rules_state_.enabled()) return;
  try {
    rules_state_.fold(store_.text(), store_.header());
    if (saved_rules_file_text_ != source_.applied_text()) {  // not on every rule add
      write_file_atomic(state_file("rules-file.applied"), source_.applied_text(), false, false,
                        0600, "state-dir");
      saved_rules_file_text_ = source_.applied_text();
    }
  } catch (const std::exception& e) {
    log_(0,
         std::string("state-dir: ") + e.what() + " (a restart would fall back to the rules file)");
  }
}

// ---- rule commands ----

// One rule in place: no copy of the set unless the datapath must recompile.
CommandOutput FirewallService::rule_add(Rule rule) {
  try {
    Rule added = store_.prepared(std::move(rule));
    resolve(added);
    // One bucket write where the rule fits in place; a recompile otherwise.
    if (!dp_->add_in_place(added)) dp_->apply(store_.with_added(added, nullptr), cfg_.policy);
    store_.insert(added);
    journal(RuleStore::journal_add(added));
    return {true, "id " + std::to_string(added.id)};
  } catch (const std::exception& e) {
    return command_error("rule add", e);
  }
}

CommandOutput FirewallService::rule_del(uint32_t id) {
  try {
    const Rule* gone = store_.find(id);
    if (!gone)
      return command_error(
          "rule del", RuleError("id: no rule " + std::to_string(id) + " ('rule list' shows them)"));
    if (!dp_->remove_in_place(*gone)) dp_->apply(store_.without(id), cfg_.policy);
    store_.erase(id);
    carried_.erase(id);
    journal(RuleStore::journal_del(id));
    return {true, "deleted " + std::to_string(id)};
  } catch (const std::exception& e) {
    return command_error("rule del", e);
  }
}

CommandOutput FirewallService::rule_flush() {
  size_t n = store_.rules().size();
  install({});
  malloc_trim(0);
  return {true, "flushed " + std::to_string(n) + " rule(s)"};
}

CommandOutput FirewallService::rule_replace(std::optional<uint64_t> confirm,
                                            const std::string& payload) {
  try {
    // (The host gives a big payload's memory back once it is answered.)
    auto list = store_.parsed("payload", payload);
    // An empty set is asked for in words: a payload cut at its first empty
    // line ('<<' without a tag) must not wipe every rule.
    if (list.empty())
      return {false,
              "rule replace: the payload holds no rule, nothing was changed (a '<<' payload "
              "ends at the first empty line: send files as 'rule replace <<END' ... 'END'; "
              "'rule flush' removes every rule)"};
    size_t n = list.size();
    // The set to revert to, only for a trial that has none yet: a copy of
    // 100,000 rules is 12 MiB held through the compile.
    const bool keeps_before = confirm && !pending_;
    std::vector<Rule> before = keeps_before ? store_.rules() : std::vector<Rule>{};
    auto counters = keeps_before ? rule_counters() : decltype(rule_counters()){};
    install(std::move(list));
    auto origins = source_.take_origins();
    if (!confirm) {
      pending_.reset();  // a plain replace is the operator's word
      return {true, "replaced: " + std::to_string(n) + " rule(s)"};
    }
    // A second confirm-replace before the first is confirmed keeps the
    // first's revert target: the set that ran before either.
    if (!pending_)
      pending_ = PendingRevert{std::move(before), std::move(origins), std::move(counters), 0};
    pending_->deadline_ms = clock_.mono_ms() + *confirm * 1000;
    log_(1, "rule replace: " + std::to_string(n) + " rule(s) on trial: 'rule confirm' within " +
                std::to_string(*confirm) + " s keeps them, else the previous " +
                std::to_string(pending_->rules.size()) + " rule(s) come back");
    return {true, "replaced: " + std::to_string(n) + " rule(s); send 'rule confirm' within " +
                      std::to_string(*confirm) + " s, or the previous " +
                      std::to_string(pending_->rules.size()) + " rule(s) come back"};
  } catch (const std::exception& e) {
    return command_error("rule replace", e);
  }
}

CommandOutput FirewallService::rule_confirm() {
  if (!pending_)
    return {false, "rule confirm: nothing to confirm (no 'rule replace confirm' is on trial)"};
  pending_.reset();
  log_(2, "rule confirm: the " + std::to_string(store_.rules().size()) + " rule(s) stay");
  return {true, "confirmed: the " + std::to_string(store_.rules().size()) + " rule(s) stay"};
}

CommandOutput FirewallService::rule_check(const std::string& payload) {
  try {
    auto list = store_.parsed("payload", payload);
    resolve(list);
    compile_rules(list, cfg_.policy, dp_->limits());
    return {true, "ok: " + std::to_string(list.size()) + " rule(s) would be installed"};
  } catch (const std::exception& e) {
    return command_error("rule check", e);
  }
}

// ---- address sets ----

void FirewallService::resolve(Rule& r, const SetPlan* plan) const {
  auto goes = [&](std::string_view name) {
    return plan && std::find(plan->remove.begin(), plan->remove.end(), name) != plan->remove.end();
  };
  auto made = [&](std::string_view name) {
    return plan && std::any_of(plan->create.begin(), plan->create.end(),
                               [&](const SetSpec& s) { return s.name == name; });
  };
  for (auto* ref : {&r.src_set, &r.dst_set}) {
    if (!*ref) continue;
    const std::string& name = (*ref)->name;
    std::string side = ref == &r.src_set ? "src" : "dst";
    if (goes(name))
      throw RuleError(side + ": set '" + name +
                      "' goes with this reload (its 'set =' line is gone)");
    if (const AddressSets::Set* s = sets_.find(name))
      (*ref)->id = s->id;
    else if (made(name))
      (*ref)->id = 1;  // made by the reload: resolved again once it is
    else
      throw RuleError(side + ": no set '" + name + "' (set create " + name + ", or 'set = " + name +
                      "' in the config)");
  }
}

void FirewallService::resolve(std::vector<Rule>& list, const SetPlan* plan, const RulesText* src,
                              const std::vector<unsigned>* lines) const {
  for (size_t i = 0; i < list.size(); ++i) {
    Rule& r = list[i];
    try {
      resolve(r, plan);
    } catch (const RuleError& e) {
      std::string where = src && lines && i < lines->size() ? src->where((*lines)[i]) + ": " : "";
      throw RuleError(where + "rule " + format_rule(r) + ": " + e.what());
    }
  }
}

}  // namespace xdpfw
