// firewall_service.cpp: see firewall_service.hpp.
#include "firewall_service.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "rules_file.hpp"
#include "safe_files.hpp"
#include "xdp_attacher.hpp"

namespace xdpfw {
namespace {

// A folder on a bpf filesystem for the pins; bpffs is mounted on
// /sys/fs/bpf (mode 0700) where it is missing (it is not mounted at boot
// everywhere). The pin folders are made 0700 and must be root's (or the
// agent user's) alone: whoever can write them can swap the live maps.
std::string prepare_pin_dir(const std::string& root, const char* sub) {
  if (root == "none") return "";
  auto on_bpffs = [](const std::string& p) {
    struct statfs st {};
    return statfs(p.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
  };
  if (root.rfind("/sys/fs/bpf", 0) == 0 && !on_bpffs("/sys/fs/bpf")) {
    std::error_code ec;
    std::filesystem::create_directories("/sys/fs/bpf", ec);
    if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") != 0)
      throw std::runtime_error(std::string("cannot mount bpffs on /sys/fs/bpf: ") +
                               std::strerror(errno));
  }
  std::string dir = root + "/" + sub;
  make_private_dir(root, 0700, "pin-root");
  make_private_dir(dir, 0700, "pin-root");
  if (!on_bpffs(dir))
    throw std::runtime_error("pin-root " + root +
                             " is not on a bpf filesystem (mount -t bpf bpf DIR, or set "
                             "pin-root = none)");
  return dir;
}

DatapathOptions options(const FirewallConfig& cfg) {
  DatapathOptions o;
  o.max_rules = cfg.max_rules;
  o.pin_dir = prepare_pin_dir(cfg.pin_root, "maps");
  o.event_burst = cfg.event_burst;
  o.enable_conntrack = true;
  o.max_set_elements = cfg.max_set_elements;
  return o;
}

std::vector<Rule> load_rules(const FirewallConfig& cfg) {
  RulesSource src = read_rules_source(cfg.rules_file);
  return parse_rules_text(src.path, src.text, true, &src);
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The rules watch's and the replace trial's clock (realtime_ms(),
// address_sets.hpp, is the wall clock of what is shown).
uint64_t monotonic_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

std::string utc_time(uint64_t wall_ms) {
  time_t t = static_cast<time_t>(wall_ms / 1000);
  tm u{};
  gmtime_r(&t, &u);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &u);
  return b;
}

CommandOutput fail(const std::string& what, const std::exception& e) {
  return {false, what + ": " + e.what()};
}

std::string iso_time(std::time_t t) {
  char buf[32];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

const char* manual_name(Interface::Manual s) {
  switch (s) {
    case Interface::Manual::attach: return "attach";
    case Interface::Manual::detach: return "detach";
    case Interface::Manual::none: break;
  }
  return "-";
}

std::string reply(const nlohmann::json& j) {
  return j.dump();
}

constexpr const char* no_interfaces_note =
    "no interfaces configured ('interfaces =' in [plugin.xdpfw]): nothing is attached by "
    "itself; set interfaces, or 'attach IF'";

}  // namespace

void check_log_dir(const FirewallConfig& cfg) {
  std::error_code ec;
  if (!std::filesystem::exists(cfg.log_dir, ec)) make_private_dir(cfg.log_dir, 0750, "log-dir");
  std::string problem = private_dir_problem(cfg.log_dir, "log-dir");
  if (!problem.empty()) throw std::runtime_error(problem);
}

FirewallParts kernel_parts(const FirewallConfig& cfg) {
  check_log_dir(cfg);
  FirewallParts p;
  // The lock before the maps are touched.
  p.lock = std::make_unique<AgentLock>(prepare_pin_dir(cfg.pin_root, "maps"), cfg.state_dir);
  auto dp = std::make_unique<KernelDatapath>(options(cfg));
  p.attacher = std::make_unique<XdpAttacher>(dp->prog_fd(), prepare_pin_dir(cfg.pin_root, "links"),
                                             cfg.persistent);
  p.datapath = std::move(dp);
  return p;
}

FirewallService::FirewallService(const FirewallConfig& cfg, Log log, FirewallParts parts)
    : cfg_(cfg),
      log_(std::move(log)),
      // Parts without a lock (fakes): the state folder is locked here.
      lock_(parts.lock ? std::move(parts.lock) : std::make_unique<AgentLock>("", cfg.state_dir)),
      dp_(std::move(parts.datapath)),
      attacher_(std::move(parts.attacher)),
      attach_(*attacher_, cfg, log_),
      sets_(*dp_),
      events_(*dp_, [this](int ifindex) { return ifname(ifindex); }) {
  check_log_dir(cfg_);
  // Precedence: the rule set of the previous run (pinned maps and the state
  // folder both found) wins; else the rules file. Pins of another layout
  // (an upgrade, another max-rules) were replaced: the rules still come
  // from the state, the counters start from zero.
  // The sets before the rules that name them: the state's (sets are data,
  // kept whatever the pins), then the config's declarations.
  restore_sets();
  declare_sets(cfg_);
  sets_.sync();
  std::string state = state_file("rules.state");
  if (!dp_->replaced_pins().empty())
    log_(1, "the maps pinned in " + dp_->pin_dir() + " were made with another layout (" +
                dp_->replaced_pins() +
                "); replaced them: rule counters and statistics start from zero");
  if ((dp_->resumed() || !dp_->replaced_pins().empty()) && !state.empty() &&
      std::filesystem::exists(state)) {
    rules_file_text_ = std::filesystem::exists(state_file("rules-file.applied"))
                           ? read_file_nofollow(state_file("rules-file.applied"))
                           : std::string();
    install(read_state());
    store_.raise_id_high_water(resumed_id_high_water_);
    log_(2, "resumed the previous run's " + std::to_string(store_.rules().size()) +
                (dp_->resumed() ? " rule(s) and counters" : " rule(s)"));
    // Rules files that changed while the agent was away win: a restart
    // must not keep a stale policy. Unreadable or refused: the resumed set
    // stays, and says so.
    try {
      RulesSource src = read_rules_source(cfg_.rules_file);
      if (src.text != rules_file_text_) {
        apply_source(src, cfg_);
        log_(1, "rules: " + (cfg_.rules_file.empty() ? std::string("none") : cfg_.rules_file) +
                    " changed while the agent was stopped: applied " +
                    std::to_string(store_.rules().size()) + " rule(s) from it");
      } else {
        std::vector<unsigned> lines;
        keep_origins(src, store_.parsed(src.path, src.text, &src, &lines), lines);
      }
    } catch (const std::exception& e) {
      source_refused(e.what());
    }
  } else {
    RulesSource src = read_rules_source(cfg_.rules_file);
    rules_file_text_ = src.text;
    std::vector<unsigned> lines;
    auto list = parse_rules_text(src.path, src.text, true, &src, &lines);
    keep_origins(src, list, lines);
    install(std::move(list));
    source_applied();
  }
  watch_rules();
  open_log();
  dp_->events_fd();  // the event reader before any event is allowed
  dp_->set_event_limit(cfg_.event_rate, cfg_.event_burst);
  log_(2, std::to_string(store_.rules().size()) + " rule(s) installed" +
              (cfg_.rules_file.empty() ? "" : " from " + cfg_.rules_file));
  if (cfg_.include.empty()) log_(1, no_interfaces_note);
  if (std::string why = dp_->limits().no_ct; !why.empty())
    log_(1, "ct rules cannot be used: " + why);
  if (cfg_.policy.audit)
    log_(1, "audit = yes: drop verdicts are counted and logged as would-drop, and passed");
}

FirewallService::~FirewallService() {
  if (set_journal_fd_ >= 0) ::close(set_journal_fd_);
  if (watch_fd_ >= 0) ::close(watch_fd_);
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

void FirewallService::open_log() {
  // A folder someone else can write is refused at start and on reload
  // (check_log_dir); one that vanished later costs counted lines only.
  std::error_code ec;
  std::filesystem::create_directories(cfg_.log_dir, ec);
  if (ec)
    log_(1, "log-dir " + cfg_.log_dir + ": " + ec.message() + " (events are counted, not written)");
  events_.open_log(cfg_.log_path());
  if (!events_.log().last_error().empty()) log_(1, events_.log().last_error());
}

// ---- the rules source ----

void FirewallService::keep_origins(const RulesSource& src, const std::vector<Rule>& list,
                                   const std::vector<unsigned>& lines) {
  origins_.clear();
  for (size_t i = 0; i < list.size() && i < lines.size(); ++i)
    origins_[list[i].id] = src.where(lines[i]);
  source_files_ = src.files();
}

void FirewallService::apply_source(const RulesSource& src, const FirewallConfig& cfg) {
  std::vector<unsigned> lines;
  auto list = store_.parsed(src.path, src.text, &src, &lines);
  resolve(list);
  dp_->apply(list, cfg.policy);  // all or nothing: throws with nothing changed
  keep_origins(src, list, lines);
  store_.commit(std::move(list));
  rules_file_text_ = src.text;
  save_state();
  if (pending_) {
    pending_.reset();
    log_(1,
         "rule replace: the rules files changed while a replace was on trial: they are the "
         "rules now, nothing will be reverted");
  }
  source_applied();
  ++source_status_.applied;
}

void FirewallService::source_applied() {
  source_status_.result = "applied";
  source_status_.message.clear();
  source_status_.at_ms = realtime_ms();
}

void FirewallService::source_refused(const std::string& why) {
  log_(0, "rules: " + why + " (refused: the running rules stay)");
  source_status_.result = "refused";
  source_status_.message = why;
  source_status_.at_ms = realtime_ms();
  ++source_status_.refused;
}

// One inotify watch on the rules directory, or on the rules file's folder
// (an editor or a config tool renames a new file over the old one; kubelet
// swaps a "..data" symlink): any event there makes the source be read
// again, and applied if it differs from what was applied last.
void FirewallService::watch_rules(bool retry) {
  if (watch_fd_ < 0) {
    watch_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (watch_fd_ < 0) {
      log_(1, std::string("rules: inotify: ") + std::strerror(errno) +
                  " (changes on disk are applied by reload only)");
      return;
    }
  }
  if (watch_wd_ >= 0) inotify_rm_watch(watch_fd_, watch_wd_);
  watch_wd_ = -1;
  watch_lost_ms_ = 0;
  if (!cfg_.watch_rules || cfg_.rules_file.empty()) return;
  std::string target = cfg_.rules_file;
  watch_name_.clear();
  if (!is_directory(target)) {
    watch_name_ = std::filesystem::path(target).filename().string();
    target = std::filesystem::path(target).parent_path().string();
    if (target.empty()) target = ".";
  }
  watch_wd_ = inotify_add_watch(watch_fd_, target.c_str(),
                                IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB |
                                    IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |
                                    IN_ONLYDIR);
  if (watch_wd_ < 0) {
    watch_lost_ms_ = monotonic_ms();
    if (!retry)
      log_(1, "rules: cannot watch " + target + ": " + std::strerror(errno) +
                  " (tried again every second; changes are applied by reload meanwhile)");
  } else if (retry) {
    log_(2, "rules: watching " + target + " again");
  }
}

void FirewallService::on_rules_event() {
  alignas(inotify_event) char buf[8192];
  bool any = false;
  for (;;) {
    ssize_t n = ::read(watch_fd_, buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      // In a rules file's folder, only that file and kubelet's "..data"
      // swap count (the folder may hold the config, the agent's own files).
      std::string_view name = ev->len ? std::string_view(ev->name) : std::string_view();
      if (watch_name_.empty() || name.empty() || name == watch_name_ || name.rfind("..", 0) == 0)
        any = true;
      // The watched folder itself went (removed, renamed): watched again
      // once it is back.
      if (ev->wd == watch_wd_ && (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))) {
        inotify_rm_watch(watch_fd_, watch_wd_);
        watch_wd_ = -1;
        watch_lost_ms_ = monotonic_ms();
      }
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
  if (any) dirty_ms_ = monotonic_ms();
}

void FirewallService::apply_watched() {
  dirty_ms_ = 0;
  RulesSource src;
  try {
    src = read_rules_source(cfg_.rules_file);
  } catch (const std::exception& e) {
    return source_refused(e.what());
  }
  if (src.text == rules_file_text_) {
    // Back to what runs (a refused edit undone): nothing to refuse now.
    if (source_status_.result == "refused") {
      source_status_.result = "applied";
      source_status_.message.clear();
    }
    return;
  }
  try {
    apply_source(src, cfg_);
    log_(2, "rules: " + cfg_.rules_file + " changed: applied " +
                std::to_string(store_.rules().size()) + " rule(s), run-time changes replaced");
  } catch (const std::exception& e) {
    source_refused(e.what());
  }
}

CommandOutput FirewallService::show_rules_source(bool json) const {
  bool dir = is_directory(cfg_.rules_file);
  nlohmann::json j = {{"path", cfg_.rules_file},
                      {"directory", dir},
                      {"files", source_files_},
                      {"watching", watch_wd_ >= 0},
                      {"watch_delay_ms", cfg_.watch_delay_ms},
                      {"result", source_status_.result},
                      {"message", source_status_.message},
                      {"at", source_status_.at_ms ? utc_time(source_status_.at_ms) : ""},
                      {"applied", source_status_.applied},
                      {"refused", source_status_.refused},
                      {"rules", store_.rules().size()}};
  if (json) return {true, j.dump()};
  std::ostringstream o;
  o << "source " << (cfg_.rules_file.empty() ? "none" : cfg_.rules_file)
    << (dir ? " (directory)" : "") << "\n";
  for (const std::string& f : source_files_) o << "file " << f << "\n";
  o << "watching " << (watch_wd_ >= 0 ? "yes" : "no") << " (delay " << cfg_.watch_delay_ms
    << " ms)\n";
  o << "last " << source_status_.result;
  if (source_status_.at_ms) o << " at " << utc_time(source_status_.at_ms);
  if (!source_status_.message.empty()) o << ": " << source_status_.message;
  o << "\napplied " << source_status_.applied << ", refused " << source_status_.refused
    << " change(s) on disk since the start\n";
  return {true, o.str()};
}

CommandOutput FirewallService::show_status(bool json) const {
  size_t selected = 0, attached = 0, errors = 0;
  for (const auto& [idx, i] : attach_.interfaces()) {
    selected += i.selected;
    attached += i.attached;
    errors += !i.last_error.empty();
  }
  uint64_t now = monotonic_ms();
  uint64_t left_ms = pending_ && pending_->deadline_ms > now ? pending_->deadline_ms - now : 0;
  uint64_t left_s = (left_ms + 999) / 1000;
  nlohmann::json j = {
      {"rules", store_.rules().size()},
      {"source",
       {{"path", cfg_.rules_file},
        {"result", source_status_.result},
        {"message", source_status_.message},
        {"at", source_status_.at_ms ? utc_time(source_status_.at_ms) : ""}}},
      {"trial",
       {{"on", pending_.has_value()},
        {"seconds_left", left_s},
        {"reverts_to", pending_ ? pending_->rules.size() : 0}}},
      {"interfaces", {{"selected", selected}, {"attached", attached}, {"errors", errors}}},
      {"sets", sets_.sets().size()}};
  if (json) return {true, j.dump()};
  std::ostringstream o;
  o << "rules " << store_.rules().size() << "\n";
  o << "source " << (cfg_.rules_file.empty() ? "none" : cfg_.rules_file);
  if (source_status_.result != "none") {
    o << ": " << source_status_.result;
    if (source_status_.at_ms) o << " at " << utc_time(source_status_.at_ms);
    if (source_status_.result == "refused")
      o << " (" << source_status_.message << "; the running rules stay)";
  }
  o << "\ntrial ";
  if (pending_)
    o << left_s << " s left: unless 'rule confirm', the previous " << pending_->rules.size()
      << " rule(s) come back";
  else
    o << "none";
  o << "\ninterfaces " << attached << " attached of " << selected << " selected, " << errors
    << " with an error\n";
  o << "sets " << sets_.sets().size() << "\n";
  return {true, o.str()};
}

CommandOutput FirewallService::rule_confirm() {
  if (!pending_)
    return {false, "rule confirm: nothing to confirm (no 'rule replace confirm' is on trial)"};
  pending_.reset();
  log_(2, "rule confirm: the " + std::to_string(store_.rules().size()) + " rule(s) stay");
  return {true, "confirmed: the " + std::to_string(store_.rules().size()) + " rule(s) stay"};
}

void FirewallService::settle() {
  uint64_t now = monotonic_ms();
  if (pending_ && now >= pending_->deadline_ms) {
    PendingRevert back = std::move(*pending_);
    pending_.reset();
    try {
      size_t n = back.rules.size();
      install(std::move(back.rules));
      origins_ = std::move(back.origins);
      log_(1, "rule replace: not confirmed in time: the previous " + std::to_string(n) +
                  " rule(s) are back");
    } catch (const std::exception& e) {
      log_(0, std::string("rule replace: not confirmed in time, and the previous rules could "
                          "not be installed again: ") +
                  e.what() + " (the new set stays)");
    }
  }
  if (watch_lost_ms_ && now - watch_lost_ms_ >= 1000 && cfg_.watch_rules) {
    watch_rules(true);
    if (watch_wd_ >= 0) dirty_ms_ = now;  // back: read what is there now
  }
  if (dirty_ms_ && now - dirty_ms_ >= cfg_.watch_delay_ms) apply_watched();
  try {
    dp_->settle();
  } catch (const std::exception& e) {
    log_(0, std::string("datapath: finishing the last change: ") + e.what() +
                " (the next change retries it)");
  }
  try {
    sets_.reap();  // (no journal line: an expired element is not restored)
  } catch (const std::exception& e) {
    log_(0, std::string("address sets: reaping expired elements: ") + e.what() +
                " (the datapath ignores them: they have expired)");
  }
}

std::string FirewallService::ifname(int ifindex) const {
  auto it = attach_.interfaces().find(ifindex);
  return it == attach_.interfaces().end() ? std::string() : it->second.name;
}

CommandOutput FirewallService::log_reopen() {
  events_.log().reopen();
  if (!events_.log().last_error().empty() && events_.log().stats().write_errors)
    return {true, "reopened " + events_.log().path() +
                      " (last error: " + events_.log().last_error() + ")"};
  return {true, "reopened " + events_.log().path()};
}

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
// new file says, since it changes only at a restart).
void FirewallService::check_reload(const FirewallConfig& cfg) const {
  FirewallConfig next = reloadable(cfg);
  std::error_code ec;
  if (std::filesystem::exists(next.log_dir, ec)) {
    std::string problem = private_dir_problem(next.log_dir, "log-dir");
    if (!problem.empty()) throw std::runtime_error(problem);
  }
  RulesSource src = read_rules_source(next.rules_file);
  try {
    auto list = store_.parsed(src.path, src.text, &src);
    for (Rule& r : list)
      for (auto* ref : {&r.src_set, &r.dst_set})
        if (*ref && std::any_of(next.sets.begin(), next.sets.end(),
                                [&](const SetSpec& x) { return x.name == (*ref)->name; }))
          (*ref)->id = sets_.find((*ref)->name) ? sets_.find((*ref)->name)->id : 1;
    resolve(list);
    compile_rules(list, next.policy, dp_->limits());
  } catch (const CompileError& e) {
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
  RulesSource src = read_rules_source(next.rules_file);
  const std::string& text = src.text;
  bool file_changed = text != rules_file_text_ || next.rules_file != cfg_.rules_file;
  bool from_file = file_changed || force;
  std::vector<unsigned> lines;
  std::vector<Rule> list =
      from_file ? store_.parsed(src.path, src.text, &src, &lines) : store_.rules();
  declare_sets(next);  // (new sets stay if the rules fail: they are empty)
  resolve(list);
  dp_->apply(list, next.policy);  // all or nothing: throws with nothing changed
  if (from_file) {
    keep_origins(src, list, lines);
    source_applied();
  }
  store_.commit(std::move(list));
  std::string rules = std::to_string(store_.rules().size()) + " rule(s)";
  if (from_file) {
    rules_file_text_ = text;
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
  watch_rules();
  for (const std::string& n : notes) rules += "\n" + n;
  return rules;
}

void FirewallService::install(std::vector<Rule> list) {
  resolve(list);
  dp_->apply(list, cfg_.policy);
  store_.commit(std::move(list));
  save_state();
}

// One rule added or deleted: a line appended to rules.journal instead of
// the whole state rewritten (100,000 rules: tens of ms); the journal is folded
// into rules.state once it holds more than a tenth of the rules.
void FirewallService::journal(const std::string& line) {
  if (cfg_.state_dir == "none") return;
  if (journal_lines_ >= std::max<size_t>(1000, store_.rules().size() / 10)) return save_state();
  std::string path = state_file("rules.journal");
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  std::string text = line + "\n";
  bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == ssize_t(text.size());
  int e = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) {
    log_(1, "state-dir: appending to " + path + ": " + std::strerror(e) +
                " (the whole state is written instead)");
    return save_state();
  }
  ++journal_lines_;
}

// rules.state, then the journal's changes in order ("add RULE", "del ID"),
// each idempotent: a journal already folded into the state (the agent died
// between the two writes) changes nothing. A torn last line is ignored.
std::vector<Rule> FirewallService::read_state() {
  std::string state = state_file("rules.state");
  std::string text = read_file_nofollow(state);
  std::vector<Rule> rules = parse_rules_text(state, text);
  resumed_id_high_water_ = read_id_high_water(text);
  std::string path = state_file("rules.journal");
  std::istringstream in(std::filesystem::exists(std::filesystem::symlink_status(path))
                            ? read_file_nofollow(path)
                            : std::string());
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline: cut by a crash
    ++n;
    try {
      if (line.rfind("add ", 0) == 0) {
        Rule r = parse_rule(line.substr(4));
        if (!r.id || !r.priority) throw RuleError("no id or priority");
        resumed_id_high_water_ = std::max(resumed_id_high_water_, r.id);
        if (std::none_of(rules.begin(), rules.end(), [&](const Rule& x) { return x.id == r.id; }))
          rules.push_back(r);
      } else if (line.rfind("del ", 0) == 0) {
        uint32_t id = static_cast<uint32_t>(std::stoul(line.substr(4)));
        std::erase_if(rules, [&](const Rule& x) { return x.id == id; });
      } else {
        throw RuleError("expected 'add RULE' or 'del ID'");
      }
    } catch (const std::exception& e) {
      log_(0, path + ":" + std::to_string(n) + ": " + e.what() + " (the rest is ignored)");
      break;
    }
  }
  journal_lines_ = n;
  return rules;
}

std::string FirewallService::state_file(const char* name) const {
  return cfg_.state_dir == "none" ? "" : cfg_.state_dir + "/" + name;
}

void FirewallService::save_state() {
  if (cfg_.state_dir == "none") return;
  try {
    // After every change, on the request path: no fsync (a few ms on this
    // kind of disk). The file survives the agent's crash; after a power
    // loss the pins are gone anyway and ext4 gives the old or the new file.
    store_.save(state_file("rules.state"), false, false);
    // The journal's changes are in the new state file now.
    // (Removed, not truncated: truncate would follow a planted symlink.)
    if (::unlink(state_file("rules.journal").c_str()) != 0 && errno != ENOENT)
      throw std::runtime_error("cannot empty " + state_file("rules.journal") + ": " +
                               std::strerror(errno));
    journal_lines_ = 0;
    if (saved_rules_file_text_ != rules_file_text_) {  // not on every rule add
      write_file_atomic(state_file("rules-file.applied"), rules_file_text_, false, false, 0600,
                        "state-dir");
      saved_rules_file_text_ = rules_file_text_;
    }
  } catch (const std::exception& e) {
    log_(0,
         std::string("state-dir: ") + e.what() + " (a restart would fall back to the rules file)");
  }
}

// One rule in place: no copy of the set unless the datapath must recompile.
CommandOutput FirewallService::rule_add(const std::string& spec) {
  try {
    Rule added = store_.prepared(parse_rule(spec));
    resolve(added);
    // One bucket write where the rule fits in place; a recompile otherwise.
    if (!dp_->add_in_place(added)) dp_->apply(store_.with_added(added, nullptr), cfg_.policy);
    store_.insert(added);
    journal("add " + format_rule(added));
    return {true, "id " + std::to_string(added.id)};
  } catch (const std::exception& e) {
    return fail("rule add", e);
  }
}

CommandOutput FirewallService::rule_del(const std::string& arg) {
  uint32_t id = 0;
  auto [p, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), id);
  if (arg.empty() || ec != std::errc() || p != arg.data() + arg.size() || id == 0)
    return {false, "rule del: '" + arg + "' is not a rule id (expected a number, see 'rule list')"};
  try {
    const Rule* gone = store_.find(id);
    if (!gone)
      return fail("rule del", RuleError("id: no rule " + arg + " ('rule list' shows them)"));
    if (!dp_->remove_in_place(*gone)) dp_->apply(store_.without(id), cfg_.policy);
    store_.erase(id);
    journal("del " + std::to_string(id));
    return {true, "deleted " + arg};
  } catch (const std::exception& e) {
    return fail("rule del", e);
  }
}

CommandOutput FirewallService::rule_flush() {
  size_t n = store_.rules().size();
  install({});
  malloc_trim(0);
  return {true, "flushed " + std::to_string(n) + " rule(s)"};
}

CommandOutput FirewallService::rule_replace(const std::string& args, const std::string* payload) {
  std::optional<uint64_t> confirm;
  if (!args.empty()) {
    auto w = split_words(args);
    if (w.size() == 2 && w[0] == "confirm") confirm = parse_uint<uint64_t>(w[1], 3600);
    if (!confirm || !*confirm)
      return {false,
              "rule replace: expected nothing or 'confirm SECONDS' (1-3600), got '" + args + "'"};
  }
  if (!payload)
    return {false,
            "rule replace: expects the new rules as a payload: 'rule replace <<END', one "
            "rule per line (comments and empty lines allowed), then a line 'END'"};
  try {
    // (The host gives a big payload's memory back once it is answered.)
    auto list = store_.parsed("payload", *payload);
    // An empty set is asked for in words: a payload cut at its first empty
    // line ('<<' without a tag) must not wipe every rule.
    if (list.empty())
      return {false,
              "rule replace: the payload holds no rule, nothing was changed (a '<<' payload "
              "ends at the first empty line: send files as 'rule replace <<END' ... 'END'; "
              "'rule flush' removes every rule)"};
    size_t n = list.size();
    std::vector<Rule> before = store_.rules();
    install(std::move(list));
    auto origins = std::move(origins_);
    origins_.clear();
    if (!confirm) {
      pending_.reset();  // a plain replace is the operator's word
      return {true, "replaced: " + std::to_string(n) + " rule(s)"};
    }
    // A second confirm-replace before the first is confirmed keeps the
    // first's revert target: the set that ran before either.
    if (!pending_) pending_ = PendingRevert{std::move(before), std::move(origins), 0};
    pending_->deadline_ms = monotonic_ms() + *confirm * 1000;
    log_(1, "rule replace: " + std::to_string(n) + " rule(s) on trial: 'rule confirm' within " +
                std::to_string(*confirm) + " s keeps them, else the previous " +
                std::to_string(pending_->rules.size()) + " rule(s) come back");
    return {true, "replaced: " + std::to_string(n) + " rule(s); send 'rule confirm' within " +
                      std::to_string(*confirm) + " s, or the previous " +
                      std::to_string(pending_->rules.size()) + " rule(s) come back"};
  } catch (const std::exception& e) {
    return fail("rule replace", e);
  }
}

CommandOutput FirewallService::rule_check(const std::string* payload) {
  if (!payload)
    return {false, "rule check: expects rules as a payload: 'rule check <<END' ... 'END'"};
  try {
    auto list = store_.parsed("payload", *payload);
    resolve(list);
    compile_rules(list, cfg_.policy, dp_->limits());
    return {true, "ok: " + std::to_string(list.size()) + " rule(s) would be installed"};
  } catch (const std::exception& e) {
    return fail("rule check", e);
  }
}

CommandOutput FirewallService::save(const std::string& arg) {
  if (arg == "-") return {true, store_.text()};  // the rule set in the file grammar
  std::string path = arg.empty() ? cfg_.rules_file : arg;
  if (path.empty()) return {false, "save: no rules file configured; give a path: save PATH"};
  if (is_directory(cfg_.rules_file) &&
      std::filesystem::path(path).lexically_normal() ==
          std::filesystem::path(cfg_.rules_file).lexically_normal())
    return {false, "save: the rules are the directory " + cfg_.rules_file +
                       ": its files are the policy and the agent does not write into it ('save -' "
                       "prints the running rules; 'save PATH' writes them to a file of the "
                       "state folder)"};
  // The agent runs as root and the socket's group may write: it writes only
  // its own files, the configured rules file or a file in its state folder.
  namespace fs = std::filesystem;
  if (path.front() != '/') return {false, "save: '" + path + "' is not an absolute path"};
  fs::path p = fs::path(path).lexically_normal();
  bool in_state = cfg_.state_dir != "none" && !cfg_.state_dir.empty() &&
                  p.parent_path() == fs::path(cfg_.state_dir).lexically_normal();
  if (p != fs::path(cfg_.rules_file).lexically_normal() && !in_state)
    return {false,
            "save: " + path + " is neither the rules file (" +
                (cfg_.rules_file.empty() ? std::string("none configured") : cfg_.rules_file) +
                ") nor a file in the state folder (" + cfg_.state_dir + ")"};
  try {
    store_.save(p.string());
  } catch (const std::exception& e) {
    return {false, e.what()};
  }
  if (path == cfg_.rules_file) {
    rules_file_text_ = read_rules_source(path).text;  // no longer "changed"
    save_state();
  }
  return {true, "saved " + std::to_string(store_.rules().size()) + " rule(s) to " + path};
}

CommandOutput FirewallService::show_config(bool json) const {
  nlohmann::json j = nlohmann::json::object();
  for (const ConfigKey& k : config_keys()) j[k.name] = k.show(cfg_);
  j["rule-count"] = store_.rules().size();
  if (json) return {true, j.dump()};
  std::ostringstream o;
  for (const auto& [k, v] : j.items()) {
    if (k == "set") {  // one line each: a declaration has spaces
      for (const auto& x : v) o << "set = " << x.get<std::string>() << "\n";
      continue;
    }
    o << k << " =";
    if (v.is_array()) {
      for (const auto& x : v) o << " " << x.get<std::string>();
    } else {
      o << " " << (v.is_string() ? v.get<std::string>() : v.dump());
    }
    o << "\n";
  }
  return {true, o.str()};
}

// The Prometheus family and label of each counter of "show stats": one list
// (XDPFW_STATS and the agent's own counters), two renderings. A counter
// added to the list gets a metric of its own name without a word here.
namespace {

struct Metric {
  const char* family;
  std::string label;  // 'verdict="match_drop"', or none
};

Metric metric_of(const std::string& name, int stat) {
  auto in = [&](int first, int last) { return stat >= first && stat <= last; };
  if (in(XDPFW_STAT_MATCH_DROP, XDPFW_STAT_NON_IP))
    return {"xdpfw_verdicts_total", "verdict=\"" + name + "\""};
  if (in(XDPFW_STAT_FIRST_MALFORMED, XDPFW_STAT_LAST_MALFORMED))
    return {"xdpfw_malformed_total", "reason=\"" + name + "\""};
  if (in(XDPFW_STAT_PROBES_0, XDPFW_STAT_PROBES_17_PLUS))
    return {"xdpfw_tables_probed_total", "tables=\"" + name.substr(7) + "\""};
  if (in(XDPFW_STAT_EVENTS_SENT, XDPFW_STAT_EVENTS_FAILED) || name == "events_lost")
    return {"xdpfw_events_total", "outcome=\"" + name.substr(7) + "\""};
  if (in(XDPFW_STAT_CT_ESTABLISHED, XDPFW_STAT_CT_RELATED))
    return {"xdpfw_ct_found_total", "state=\"" + name.substr(3) + "\""};
  if (in(XDPFW_STAT_RATE_OVER, XDPFW_STAT_RATE_UNDER))
    return {"xdpfw_rate_total", "outcome=\"" + name.substr(5) + "\""};
  if (name == "log_dropped") return {"xdpfw_log_lines_dropped_total", ""};
  if (name == "log_write_errors") return {"xdpfw_log_errors_total", ""};
  if (name == "rules_source_applied" || name == "rules_source_refused")
    return {"xdpfw_rules_source_changes_total", "outcome=\"" + name.substr(13) + "\""};
  return {nullptr, ""};  // xdpfw_NAME_total
}

struct Family {
  const char* name;
  const char* type;
  const char* help;
};

constexpr Family families[] = {
    {"xdpfw_packets_total", "counter", "Packets seen by the XDP program."},
    {"xdpfw_bytes_total", "counter", "Bytes seen by the XDP program."},
    {"xdpfw_verdicts_total", "counter", "Packets by verdict and its cause."},
    {"xdpfw_fragments_total", "counter",
     "Non-first IP fragments seen (no L4 header: classified on addresses and protocol)."},
    {"xdpfw_malformed_total", "counter", "Malformed packets by reason."},
    {"xdpfw_events_total", "counter", "Packet events by outcome."},
    {"xdpfw_ct_lookups_total", "counter", "Conntrack lookups for ct rules."},
    {"xdpfw_ct_found_total", "counter", "Conntrack lookups that found a connection, by state."},
    {"xdpfw_rate_total", "counter",
     "Rate rules reached: over their rate (the rule decided) or under it (a token taken)."},
    {"xdpfw_audit_matches_total", "counter",
     "Packets an audit rule matched (would drop), passed on to the next rule."},
    {"xdpfw_audit_would_drop_total", "counter",
     "Drop verdicts passed because the agent runs with audit = yes."},
    {"xdpfw_set_lookups_total", "counter", "Address set lookups of rules naming a set."},
    {"xdpfw_set_members_total", "counter",
     "Address set lookups that found an unexpired element covering the address."},
    {"xdpfw_tables_probed_total", "counter",
     "Classified packets by the number of classifier tables they probed."},
    {"xdpfw_log_lines_total", "counter", "Event lines written to the log file."},
    {"xdpfw_log_lines_dropped_total", "counter",
     "Event lines not written: a failed write, a full buffer."},
    {"xdpfw_log_errors_total", "counter", "Failed opens and writes of the log file."},
    {"xdpfw_log_reopens_total", "counter", "Reopens of the log file (log reopen, SIGUSR1)."},
    {"xdpfw_rule_packets_total", "counter", "Packets matched per rule."},
    {"xdpfw_rule_bytes_total", "counter", "Bytes matched per rule."},
    {"xdpfw_interfaces_attached", "gauge", "Interfaces carrying the program."},
    {"xdpfw_rules", "gauge", "Rules installed."},
    {"xdpfw_rules_source_changes_total", "counter",
     "Changes of the rules file or directory applied by the agent, or refused (they did not "
     "compile: the running rules stayed)."},
    {"xdpfw_rules_source_refused", "gauge",
     "1 while the rules on disk are refused (the running rules are an older set)."},
};

// Prometheus' text format: a family's samples together, after its HELP
// and TYPE lines.
class Exposition {
 public:
  void add(const std::string& family, const std::string& label, uint64_t v) {
    auto it = std::find_if(order_.begin(), order_.end(),
                           [&](const auto& f) { return f.first == family; });
    if (it == order_.end()) it = order_.insert(order_.end(), {family, ""});
    it->second +=
        family + (label.empty() ? "" : "{" + label + "}") + " " + std::to_string(v) + "\n";
  }
  std::string text() const {
    std::string o;
    for (const auto& entry : order_) {
      const std::string& name = entry.first;
      const std::string& samples = entry.second;
      const Family* f = std::find_if(std::begin(families), std::end(families),
                                     [&](const Family& x) { return name == x.name; });
      bool known = f != std::end(families);
      o += "# HELP " + name + " " + (known ? f->help : "Counter " + name + ".") + "\n";
      o += "# TYPE " + name + " " + (known ? f->type : "counter") + "\n" + samples;
    }
    return o;
  }

 private:
  std::vector<std::pair<std::string, std::string>> order_;
};

}  // namespace

std::vector<std::pair<std::string, uint64_t>> FirewallService::counters() const {
  Stats s = dp_->stats();
  std::vector<std::pair<std::string, uint64_t>> all;
  for (int i = 0; i < XDPFW_STAT_MAX; ++i)
    all.emplace_back(stat_name(static_cast<xdpfw_stat>(i)), s.c[i]);
  const EventLogStats& l = events_.log().stats();
  all.insert(all.end(), {{"events_lost", events_.lost()},
                         {"log_lines", l.lines},
                         {"log_dropped", l.dropped},
                         {"log_write_errors", l.write_errors},
                         {"log_reopens", l.reopens},
                         {"rules_source_applied", source_status_.applied},
                         {"rules_source_refused", source_status_.refused}});
  return all;
}

CommandOutput FirewallService::show_metrics() const {
  Exposition e;
  auto all = counters();
  for (size_t i = 0; i < all.size(); ++i) {
    const auto& [name, v] = all[i];
    Metric m = metric_of(name, i < XDPFW_STAT_MAX ? int(i) : -1);
    e.add(m.family ? m.family : "xdpfw_" + name + "_total", m.label, v);
  }
  auto per_rule = dp_->all_rule_counters();
  for (const Rule& r : store_.rules())
    e.add("xdpfw_rule_packets_total", "id=\"" + std::to_string(r.id) + "\"",
          per_rule[r.id].packets);
  for (const Rule& r : store_.rules())
    e.add("xdpfw_rule_bytes_total", "id=\"" + std::to_string(r.id) + "\"", per_rule[r.id].bytes);
  size_t attached = 0;
  for (const auto& [idx, i] : attach_.interfaces()) attached += i.attached;
  e.add("xdpfw_interfaces_attached", "", attached);
  e.add("xdpfw_rules", "", store_.rules().size());
  e.add("xdpfw_rules_source_refused", "", source_status_.result == "refused");
  return {true, e.text()};
}

void FirewallService::on_link(AttachManager::Change change, int ifindex, const std::string& name,
                              const std::string& kind, bool up) {
  attach_.on_link(change, ifindex, name, kind, up);
}

CommandOutput FirewallService::show_interfaces(bool json) const {
  nlohmann::json arr = nlohmann::json::array();
  std::ostringstream o;
  if (!json && cfg_.include.empty()) o << "# " << no_interfaces_note << "\n";
  for (const auto& [idx, i] : attach_.interfaces()) {
    if (json) {
      arr.push_back({{"name", i.name},
                     {"ifindex", i.ifindex},
                     {"kind", i.kind},
                     {"up", i.up},
                     {"selected", i.selected},
                     {"manual", manual_name(i.manual)},
                     {"attached", i.attached},
                     {"mode", i.mode},
                     {"prog_id", i.prog_id},
                     {"since", iso_time(i.since)},
                     {"last_error", i.last_error}});
    } else {
      o << i.name << " ifindex " << i.ifindex << " kind " << (i.kind.empty() ? "-" : i.kind)
        << " selected " << (i.selected ? "yes" : "no") << " manual " << manual_name(i.manual)
        << " attached " << (i.attached ? "yes" : "no") << " mode "
        << (i.mode.empty() ? "-" : i.mode) << " prog " << i.prog_id << " since "
        << iso_time(i.since) << " error " << (i.last_error.empty() ? "-" : i.last_error) << "\n";
    }
  }
  return {true, json ? reply(arr) : o.str()};
}

CommandOutput FirewallService::show_stats(bool json) const {
  auto all = counters();
  nlohmann::json j = nlohmann::json::object();
  std::ostringstream o;
  for (const auto& [name, v] : all) {
    if (json)
      j[name] = v;
    else
      o << name << " " << v << "\n";
  }
  return {true, json ? reply(j) : o.str()};
}

CommandOutput FirewallService::rule_list(bool json) const {
  auto counters = dp_->all_rule_counters();
  nlohmann::json arr = nlohmann::json::array();
  std::ostringstream o;
  for (const Rule& rule : store_.rules()) {  // in evaluation order
    const Rule* r = &rule;
    RuleCounters c = counters.count(r->id) ? counters.at(r->id) : RuleCounters{};
    auto origin = origins_.find(r->id);
    if (json) {
      arr.push_back({{"id", r->id},
                     {"prio", *r->priority},
                     {"rule", format_rule(*r)},
                     {"packets", c.packets},
                     {"bytes", c.bytes}});
      if (origin != origins_.end()) arr.back()["origin"] = origin->second;
    } else {
      o << format_rule(*r) << " packets " << c.packets << " bytes " << c.bytes;
      if (origin != origins_.end()) o << "  # " << origin->second;
      o << "\n";
    }
  }
  return {true, json ? reply(arr) : o.str()};
}

CommandOutput FirewallService::set_manual(const std::string& name, Interface::Manual how) {
  if (name.empty() || name.find(' ') != std::string::npos)
    return {false, "expected one interface name"};
  bool exists = false;
  for (const auto& [idx, i] : attach_.interfaces()) exists |= i.name == name;
  auto err = attach_.set_manual(name, how);
  if (err && !err->empty()) return {false, name + ": " + *err};
  if (!exists) return {true, "no interface " + name + " now; remembered for when it appears"};
  return {true, "ok"};
}

// ---- address sets ----

namespace {

std::vector<std::string> arg_words(const std::string& args) {
  std::vector<std::string> w;
  std::istringstream in(args);
  for (std::string x; in >> x;) w.push_back(x);
  return w;
}

std::string join_ids(const std::vector<uint32_t>& ids) {
  std::string s;
  for (uint32_t id : ids) s += (s.empty() ? "" : ", ") + std::to_string(id);
  return s;
}

}  // namespace

void FirewallService::resolve(Rule& r) const {
  for (auto* ref : {&r.src_set, &r.dst_set}) {
    if (!*ref) continue;
    const AddressSets::Set* s = sets_.find((*ref)->name);
    if (!s)
      throw RuleError(std::string(ref == &r.src_set ? "src" : "dst") + ": no set '" + (*ref)->name +
                      "' (set create " + (*ref)->name + ", or 'set = " + (*ref)->name +
                      "' in the config)");
    (*ref)->id = s->id;
  }
}

void FirewallService::resolve(std::vector<Rule>& list) const {
  for (Rule& r : list) {
    try {
      resolve(r);
    } catch (const RuleError& e) {
      throw RuleError("rule " + format_rule(r) + ": " + e.what());
    }
  }
}

std::vector<uint32_t> FirewallService::rules_using(std::string_view set) const {
  std::vector<uint32_t> ids;
  for (const Rule& r : store_.rules())
    if ((r.src_set && r.src_set->name == set) || (r.dst_set && r.dst_set->name == set))
      ids.push_back(r.id);
  return ids;
}

void FirewallService::declare_sets(const FirewallConfig& cfg) {
  for (const SetSpec& spec : cfg.sets) {
    const AddressSets::Set* s = sets_.find(spec.name);
    if (s && s->spec == spec) continue;
    if (s)
      sets_.configure(spec);
    else
      s = &sets_.create(spec);
    set_journal(AddressSets::journal_create(*sets_.find(spec.name)));
  }
}

void FirewallService::restore_sets() {
  if (cfg_.state_dir == "none") return;
  namespace fs = std::filesystem;
  size_t replayed = 0;
  for (const char* name : {"sets.state", "sets.journal"}) {
    std::string path = state_file(name);
    if (!fs::exists(fs::symlink_status(path))) continue;
    std::istringstream in(read_file_nofollow(path));
    std::string line;
    size_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (in.eof()) break;  // no newline: cut by a crash
      try {
        sets_.replay(line);
        ++replayed;
      } catch (const std::exception& e) {
        log_(0, path + ":" + std::to_string(n) + ": " + e.what() + " (line ignored)");
      }
    }
  }
  if (!replayed) return;
  save_sets();  // the journal folded in
  log_(2, "address sets: restored " + std::to_string(sets_.sets().size()) + " set(s), " +
              std::to_string(sets_.total()) + " element(s)");
}

void FirewallService::save_sets() {
  if (cfg_.state_dir == "none") return;
  try {
    write_file_atomic(state_file("sets.state"), sets_.snapshot(), false, false, 0600, "state-dir");
    if (set_journal_fd_ >= 0) ::close(set_journal_fd_);
    set_journal_fd_ = -1;
    if (::unlink(state_file("sets.journal").c_str()) != 0 && errno != ENOENT)
      throw std::runtime_error("cannot empty " + state_file("sets.journal") + ": " +
                               std::strerror(errno));
    set_journal_lines_ = 0;
  } catch (const std::exception& e) {
    log_(0, std::string("state-dir: ") + e.what() + " (a restart would lose set changes)");
  }
}

// One set change: a line appended to sets.journal (kept open: tens of
// thousands of changes a second), folded into sets.state once it holds more
// lines than the sets have elements (and at least 100,000).
void FirewallService::set_journal(const std::string& line) {
  if (cfg_.state_dir == "none") return;
  if (set_journal_lines_ >= std::max<uint64_t>(100000, sets_.total())) return save_sets();
  if (set_journal_fd_ < 0) {
    std::string path = state_file("sets.journal");
    set_journal_fd_ =
        ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (set_journal_fd_ < 0) {
      log_(1, "state-dir: opening " + path + ": " + std::strerror(errno) +
                  " (the whole set state is written instead)");
      return save_sets();
    }
  }
  std::string text = line + "\n";
  if (::write(set_journal_fd_, text.data(), text.size()) != ssize_t(text.size())) {
    log_(1, "state-dir: appending to " + state_file("sets.journal") + ": " + std::strerror(errno) +
                " (the whole set state is written instead)");
    return save_sets();
  }
  ++set_journal_lines_;
}

CommandOutput FirewallService::set_create(const std::string& args) {
  try {
    SetSpec spec = parse_set_spec(args);
    const AddressSets::Set& s = sets_.create(spec);
    set_journal(AddressSets::journal_create(s));
    return {true, "created set " + spec.name};
  } catch (const std::exception& e) {
    return fail("set create", e);
  }
}

CommandOutput FirewallService::set_add(const std::string& args) {
  auto w = arg_words(args);
  if (w.size() != 2 && !(w.size() == 4 && w[2] == "timeout"))
    return {false, "set add: expected NAME ADDR[/LEN] [timeout DUR], got '" + args + "'"};
  try {
    Prefix p = parse_prefix(w[1], "element");
    std::optional<uint64_t> timeout;
    if (w.size() == 4) timeout = parse_duration(w[3], "timeout");
    bool fresh = sets_.add(w[0], p, timeout);
    const AddressSets::Set& s = *sets_.find(w[0]);
    set_journal(sets_.journal_add(s, AddressSets::key_of(p)));
    return {true, fresh ? "added" : "updated"};
  } catch (const std::exception& e) {
    return fail("set add", e);
  }
}

CommandOutput FirewallService::set_del(const std::string& args) {
  auto w = arg_words(args);
  // "if-present": an absent element is not an error (fail2ban's unban can
  // come after the element's own timeout reaped it).
  bool if_present = w.size() == 3 && w[2] == "if-present";
  if (w.size() != 2 && !if_present)
    return {false, "set del: expected NAME ADDR[/LEN] [if-present], got '" + args + "'"};
  try {
    Prefix p = parse_prefix(w[1], "element");
    if (!sets_.del(w[0], p)) {
      if (if_present) return {true, "absent"};
      return {false, "set del: " + format_prefix(p) + " is not an element of " + w[0]};
    }
    set_journal("del " + w[0] + " " + format_prefix(p));
    return {true, "deleted"};
  } catch (const std::exception& e) {
    return fail("set del", e);
  }
}

CommandOutput FirewallService::set_flush(const std::string& args) {
  auto w = arg_words(args);
  if (w.size() != 1) return {false, "set flush: expected NAME"};
  try {
    size_t n = sets_.flush(w[0]);
    set_journal("flush " + w[0]);
    return {true, "flushed " + std::to_string(n) + " element(s)"};
  } catch (const std::exception& e) {
    return fail("set flush", e);
  }
}

CommandOutput FirewallService::set_load(const std::string& args, const std::string* payload) {
  auto w = arg_words(args);
  if (w.size() != 1 || !payload)
    return {false,
            "set load: expected NAME and the elements as a payload: 'set load NAME <<END', "
            "one ADDR[/LEN] [timeout DUR] per line, then 'END'"};
  try {
    auto items = parse_set_items(*payload);
    // An empty content is asked for in words (a '<<' payload ends at the
    // first empty line).
    if (items.empty())
      return {false, "set load: the payload holds no element, nothing was changed ('set flush " +
                         w[0] + "' empties the set)"};
    sets_.load(w[0], items);
    save_sets();
    return {true, "loaded " + std::to_string(sets_.find(w[0])->elems.size()) + " element(s) into " +
                      w[0]};
  } catch (const std::exception& e) {
    return fail("set load", e);
  }
}

CommandOutput FirewallService::set_destroy(const std::string& args) {
  auto w = arg_words(args);
  if (w.size() != 1) return {false, "set destroy: expected NAME"};
  if (!sets_.find(w[0])) return {false, "set destroy: no set '" + w[0] + "'"};
  if (auto ids = rules_using(w[0]); !ids.empty())
    return {false, "set destroy: set " + w[0] + " is used by rule(s) " + join_ids(ids) +
                       " (delete them first)"};
  try {
    sets_.destroy(w[0]);
    set_journal("destroy " + w[0]);
    bool declared = std::any_of(cfg_.sets.begin(), cfg_.sets.end(),
                                [&](const SetSpec& x) { return x.name == w[0]; });
    return {true,
            "destroyed set " + w[0] +
                (declared ? " (the config declares it: a reload or restart makes it anew)" : "")};
  } catch (const std::exception& e) {
    return fail("set destroy", e);
  }
}

CommandOutput FirewallService::set_list(const std::string& args) const {
  auto w = arg_words(args);
  bool json = !w.empty() && w.back() == "json";
  if (json) w.pop_back();
  if (w.size() > 1) return {false, "set list: expected [NAME] [json]"};
  auto summary = [&](const AddressSets::Set& s) {
    nlohmann::json j = {{"name", s.spec.name},
                        {"timeout", s.spec.timeout_s},
                        {"max", s.spec.max ? s.spec.max : sets_.capacity()},
                        {"elements", s.elems.size()},
                        {"rules", rules_using(s.spec.name)}};
    return j;
  };
  auto summary_text = [&](const AddressSets::Set& s) {
    auto ids = rules_using(s.spec.name);
    return "set " + s.spec.name + ": " + std::to_string(s.elems.size()) + " element(s)" +
           (s.spec.timeout_s ? ", timeout " + format_duration(s.spec.timeout_s) : "") +
           (s.spec.max ? ", max " + std::to_string(s.spec.max) : "") +
           (ids.empty() ? "" : ", used by rule(s) " + join_ids(ids)) + "\n";
  };
  if (w.empty()) {
    nlohmann::json arr = nlohmann::json::array();
    std::string text;
    for (const auto& [name, s] : sets_.sets()) {
      if (json)
        arr.push_back(summary(s));
      else
        text += summary_text(s);
    }
    return {true, json ? arr.dump() : text};
  }
  const AddressSets::Set* s = sets_.find(w[0]);
  if (!s) return {false, "set list: no set '" + w[0] + "' ('set list' shows them)"};
  uint32_t tag = dp_->set_tag(s->id);
  if (json) {
    nlohmann::json j = summary(*s);
    nlohmann::json members = nlohmann::json::array();
    for (const auto& [k, e] : s->elems) {
      auto left = sets_.remaining_s(e);
      members.push_back({{"element", format_prefix(AddressSets::prefix_of(k))},
                         {"expires", left ? nlohmann::json(*left) : nlohmann::json(nullptr)},
                         {"hits", dp_->element_hits(tag, AddressSets::prefix_of(k))}});
    }
    j["members"] = std::move(members);
    return {true, j.dump()};
  }
  std::string text = summary_text(*s);
  for (const auto& [k, e] : s->elems) {
    auto left = sets_.remaining_s(e);
    text += format_prefix(AddressSets::prefix_of(k)) +
            (left ? " expires " + format_duration(*left) : "") + " hits " +
            std::to_string(dp_->element_hits(tag, AddressSets::prefix_of(k))) + "\n";
  }
  return {true, text};
}

}  // namespace xdpfw
