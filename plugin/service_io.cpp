// service_io.cpp: the parts of FirewallService (firewall_service.hpp)
// that meet files and links rather than rule transactions: 'save', the
// event log, the interfaces.
#include <filesystem>

#include "firewall_service.hpp"
#include "rules_file.hpp"

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

CommandOutput FirewallService::save(const std::string& arg) {
  if (arg == "-") return {true, store_.text()};  // the rule set in the file grammar
  std::string path = arg.empty() ? cfg_.rules_file : arg;
  if (path.empty()) return {false, "save: no rules file configured; give a path: save PATH"};
  namespace fs = std::filesystem;
  if (source_.directory() &&
      fs::path(path).lexically_normal() == fs::path(cfg_.rules_file).lexically_normal())
    return {false, "save: the rules are the directory " + cfg_.rules_file +
                       ": its files are the policy and the agent does not write into it ('save -' "
                       "prints the running rules; 'save PATH' writes them to a file of the "
                       "state folder)"};
  // The agent runs as root and the socket's group may write: it writes only
  // its own files, the configured rules file or a file in its state folder.
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
    source_.set_applied_text(read_rules_source(path).text);  // no longer "changed"
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
