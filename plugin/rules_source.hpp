// rules_source.hpp: the rules file or directory (rules.d) as the agent
// follows it: where it is, an inotify watch on it (an editor's or a
// config tool's rename over the file, kubelet's "..data" swap), the delay
// before a change on disk is read, what was applied last and where each of
// its rules came from (FILE:LINE), and the outcome of the last change:
// applied, or refused with the reason (the running rules stay).
//
// It reads and remembers; the service decides: poll() hands it a changed
// source to apply, and it reports back with applied() or refused().
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rules_file.hpp"

namespace xdpfw {

class RulesSource {
 public:
  using Log = std::function<void(int level, const std::string&)>;
  using Clock = std::function<uint64_t()>;  // ms
  struct Status {
    std::string result = "none";  // applied, refused
    std::string message;
    uint64_t at_ms = 0;  // wall clock
    uint64_t applied = 0, refused = 0;
  };

  // mono_ms: the delay's clock; wall_ms: the status's time.
  RulesSource(Log log, Clock mono_ms, Clock wall_ms);
  ~RulesSource();
  RulesSource(const RulesSource&) = delete;
  RulesSource& operator=(const RulesSource&) = delete;

  // The config's rules, watch-rules and watch-delay; (re)arms the watch.
  void configure(const std::string& path, bool watch, uint64_t delay_ms,
                 uint64_t max_bytes = default_rules_max_bytes);
  const std::string& path() const { return path_; }
  bool directory() const;
  uint64_t delay_ms() const { return delay_ms_; }

  // The inotify descriptor for the loop (-1: inotify is unavailable);
  // on_event() when it is readable.
  int fd() const { return fd_; }
  bool watching() const { return wd_ >= 0; }
  void on_event();
  // The timer's turn: the watch armed again once its folder is back; the
  // source read once a change has settled for the delay. Returns it when
  // it differs from what was applied (the caller applies it and says
  // applied() or refused()); an unreadable source is refused here.
  std::optional<RulesText> poll();

  // A source was made the rules: its text, files and each rule's FILE:LINE
  // (list and lines as parse_rules_text gives them). counted: a change on
  // disk (the metrics count it), not the start.
  void applied(const RulesText& src, const std::vector<Rule>& list,
               const std::vector<unsigned>& lines, bool counted);
  // The rules resumed from the previous run are the source's as it is
  // (their FILE:LINE kept; the status stays as it was).
  void resumed(const RulesText& src, const std::vector<Rule>& list,
               const std::vector<unsigned>& lines);
  // A change on disk could not be applied: logged, shown, counted.
  void refused(const std::string& why);

  bool changed(const RulesText& src) const { return src.text != applied_text_; }
  const std::string& applied_text() const { return applied_text_; }
  void set_applied_text(std::string text) { applied_text_ = std::move(text); }
  const std::vector<std::string>& files() const { return files_; }
  const Status& status() const { return status_; }

  // Where each rule id was read; rules added at run time have none.
  const std::map<uint32_t, std::string>& origins() const { return origins_; }
  std::map<uint32_t, std::string> take_origins() { return std::exchange(origins_, {}); }
  void set_origins(std::map<uint32_t, std::string> o) { origins_ = std::move(o); }

 private:
  void watch(bool retry);

  Log log_;
  Clock mono_ms_, wall_ms_;
  std::string path_;
  uint64_t max_bytes_ = default_rules_max_bytes;
  bool watch_on_ = false;
  uint64_t delay_ms_ = 0;
  int fd_ = -1, wd_ = -1;
  std::string name_;       // a rules file's name in the watched folder; "": a directory
  uint64_t lost_ms_ = 0;   // when the watch went (the folder removed); 0: it is there
  uint64_t dirty_ms_ = 0;  // the last event not yet acted on; 0: none
  std::string applied_text_;
  std::vector<std::string> files_;
  std::map<uint32_t, std::string> origins_;
  Status status_;
};

}  // namespace xdpfw
