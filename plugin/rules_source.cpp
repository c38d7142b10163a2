// rules_source.cpp: see rules_source.hpp.
#include "rules_source.hpp"

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

namespace xdpfw {

RulesSource::RulesSource(Log log, Clock mono_ms, Clock wall_ms)
    : log_(std::move(log)), mono_ms_(std::move(mono_ms)), wall_ms_(std::move(wall_ms)) {}

RulesSource::~RulesSource() {
  if (fd_ >= 0) ::close(fd_);
}

bool RulesSource::directory() const {
  struct stat st {};
  return !path_.empty() && ::stat(path_.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void RulesSource::configure(const std::string& path, bool watch_on, uint64_t delay_ms,
                            uint64_t max_bytes) {
  path_ = path;
  max_bytes_ = max_bytes;
  watch_on_ = watch_on;
  delay_ms_ = delay_ms;
  watch(false);
}

// One inotify watch on the rules directory, or on the rules file's folder
// (an editor or a config tool renames a new file over the old one; kubelet
// swaps a "..data" symlink): any event there makes the source be read
// again, and applied if it differs from what was applied last.
void RulesSource::watch(bool retry) {
  if (fd_ < 0) {
    fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd_ < 0) {
      log_(1, std::string("rules: inotify: ") + std::strerror(errno) +
                  " (changes on disk are applied by reload only)");
      return;
    }
  }
  if (wd_ >= 0) inotify_rm_watch(fd_, wd_);
  wd_ = -1;
  lost_ms_ = 0;
  if (!watch_on_ || path_.empty()) return;
  std::string target = path_;
  name_.clear();
  if (!directory()) {
    name_ = std::filesystem::path(target).filename().string();
    target = std::filesystem::path(target).parent_path().string();
    if (target.empty()) target = ".";
  }
  wd_ = inotify_add_watch(fd_, target.c_str(),
                          IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB |
                              IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |
                              IN_ONLYDIR);
  if (wd_ < 0) {
    lost_ms_ = mono_ms_();
    if (!retry)
      log_(1, "rules: cannot watch " + target + ": " + std::strerror(errno) +
                  " (tried again every second; changes are applied by reload meanwhile)");
  } else if (retry) {
    log_(2, "rules: watching " + target + " again");
  }
}

void RulesSource::on_event() {
  alignas(inotify_event) char buf[8192];
  bool any = false;
  for (;;) {
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      // In a rules file's folder, only that file and kubelet's "..data"
      // swap count (the folder may hold the config, the agent's own files).
      std::string_view name = ev->len ? std::string_view(ev->name) : std::string_view();
      if (name_.empty() || name.empty() || name == name_ || name.rfind("..", 0) == 0) any = true;
      // The watched folder itself went (removed, renamed): watched again
      // once it is back.
      if (ev->wd == wd_ && (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))) {
        inotify_rm_watch(fd_, wd_);
        wd_ = -1;
        lost_ms_ = mono_ms_();
      }
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
  if (any) dirty_ms_ = mono_ms_();
}

std::optional<RulesText> RulesSource::poll() {
  uint64_t now = mono_ms_();
  if (lost_ms_ && now - lost_ms_ >= 1000 && watch_on_) {
    watch(true);
    if (wd_ >= 0) dirty_ms_ = now;  // back: read what is there now
  }
  if (!dirty_ms_ || now - dirty_ms_ < delay_ms_) return std::nullopt;
  dirty_ms_ = 0;
  RulesText src;
  try {
    src = read_rules_source(path_, max_bytes_);
  } catch (const std::exception& e) {
    refused(e.what());
    return std::nullopt;
  }
  if (!changed(src)) {
    // Back to what runs (a refused edit undone): nothing to refuse now.
    if (status_.result == "refused") {
      status_.result = "applied";
      status_.message.clear();
    }
    return std::nullopt;
  }
  return src;
}

void RulesSource::resumed(const RulesText& src, const std::vector<Rule>& list,
                          const std::vector<unsigned>& lines) {
  origins_.clear();
  for (size_t i = 0; i < list.size() && i < lines.size(); ++i)
    origins_[list[i].id] = src.where(lines[i]);
  files_ = src.files();
}

void RulesSource::applied(const RulesText& src, const std::vector<Rule>& list,
                          const std::vector<unsigned>& lines, bool counted) {
  resumed(src, list, lines);
  applied_text_ = src.text;
  status_.result = "applied";
  status_.message.clear();
  status_.at_ms = wall_ms_();
  status_.applied += counted;
}

void RulesSource::refused(const std::string& why) {
  log_(0, "rules: " + why + " (refused: the running rules stay)");
  status_.result = "refused";
  status_.message = why;
  status_.at_ms = wall_ms_();
  ++status_.refused;
}

}  // namespace xdpfw
