// service_io.cpp: the parts of FirewallService (firewall_service.hpp)
// that meet files and links rather than rule transactions: 'save', the
// event log, the interfaces.
#include <filesystem>

#include "firewall_service.hpp"
#include "rules_file.hpp"
#include "safe_files.hpp"

namespace xdpfw {

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

// 'save' writes the configured rules file or a file of STATE/saved/, and
// nothing else: the agent runs as root and the socket's group may ask, so
// none of the agent's own state files (rules.state, the journals,
// rules-file.applied, agent.lock) can ever be the target.
CommandOutput FirewallService::save(const std::string& arg) {
  if (arg == "-") return {true, store_.text()};  // the rule set in the file grammar
  namespace fs = std::filesystem;
  auto normal = [](const std::string& p) { return fs::path(p).lexically_normal(); };
  bool state = cfg_.state_dir != "none" && !cfg_.state_dir.empty();
  fs::path saved = state ? normal(cfg_.state_dir) / "saved" : fs::path();
  std::string saved_name = state ? saved.string() : "STATE-DIR/saved";
  std::string path;
  if (arg.empty() || (!cfg_.rules_file.empty() && normal(arg) == normal(cfg_.rules_file))) {
    if (cfg_.rules_file.empty())
      return {false, "save: no rules file configured; give a name: save NAME (written to " +
                         saved_name + "/NAME)"};
    if (source_.directory())
      return {false, "save: the rules are the directory " + cfg_.rules_file +
                         ": its files are the policy and the agent does not write into it ('save "
                         "-' prints the running rules; 'save NAME' writes them to " +
                         saved_name + "/NAME)"};
    path = cfg_.rules_file;
  } else {
    bool absolute = arg.front() == '/';
    fs::path p = absolute ? normal(arg) : fs::path(arg);
    std::string name = p.filename().string();
    if (absolute && (!state || p.parent_path() != saved))
      return {false,
              "save: " + arg + " is neither the rules file (" +
                  (cfg_.rules_file.empty() ? std::string("none configured") : cfg_.rules_file) +
                  ") nor a file of " + saved_name +
                  "/ (the agent's own state files are never a save target)"};
    bool plain = !name.empty() && name.size() <= 128 && name[0] != '.' &&
                 name.find_first_not_of(
                     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789._-") == std::string::npos;
    if (!plain || (!absolute && p != fs::path(name)))  // "a/b", "../x": not a name
      return {false, "save: '" + arg +
                         "' is not a file name (expected letters, digits, '.', '_' or '-', not "
                         "starting with '.'; or the rules file's path)"};
    if (!state) return {false, "save: state-dir is none: there is no saved/ folder to write to"};
    try {
      make_private_dir(saved.string(), 0700, "state-dir");
    } catch (const std::exception& e) {
      return {false, std::string("save: ") + e.what()};
    }
    path = (saved / name).string();
  }
  try {
    store_.save(path);
  } catch (const std::exception& e) {
    return {false, e.what()};
  }
  if (path == cfg_.rules_file) {
    source_.set_applied_text(
        read_rules_source(path, cfg_.rules_max_bytes).text);  // no longer "changed"
    save_state();
  }
  return {true, "saved " + std::to_string(store_.rules().size()) + " rule(s) to " + path};
}

void FirewallService::on_link(AttachManager::Change change, int ifindex, const std::string& name,
                              const std::string& kind, bool up) {
  attach_.on_link(change, ifindex, name, kind, up);
}

CommandOutput FirewallService::set_manual(const std::string& name, Interface::Manual how) {
  bool exists = false;
  for (const auto& [idx, i] : attach_.interfaces()) exists |= i.name == name;
  auto err = attach_.set_manual(name, how);
  if (err && !err->empty()) return {false, name + ": " + *err};
  if (!exists) return {true, "no interface " + name + " now; remembered for when it appears"};
  return {true, "ok"};
}

}  // namespace xdpfw
