// event_log.hpp: unmatched-packet events as JSON Lines, appended to a file.
// Lines are buffered and written once per batch. A file that was rotated or
// deleted is reopened; a full disk or a vanished directory costs the lines of
// that batch (counted), never the datapath, and logging resumes when it can.
#pragma once

#include <cstdint>
#include <string>

#include "xdpfw.h"

namespace xdpfw {

struct EventLogStats {
  uint64_t lines = 0;         // written
  uint64_t dropped = 0;       // lost to write errors or a full buffer
  uint64_t write_errors = 0;  // failed opens and writes
  uint64_t reopens = 0;
};

class EventLog {
 public:
  explicit EventLog(std::string path);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  void append(std::string line);  // one line, without its newline
  void flush();
  void reopen();  // SIGUSR1, "log reopen": after logrotate moved the file

  const std::string& path() const { return path_; }
  const EventLogStats& stats() const { return stats_; }
  const std::string& last_error() const { return last_error_; }

 private:
  bool open_file();

  std::string path_;
  int fd_ = -1;
  std::string buf_;
  size_t buffered_lines_ = 0;
  EventLogStats stats_;
  std::string last_error_;
  static constexpr size_t max_buffer = 4 << 20;
};

// One event as a JSON object (no newline). ifname may be anything Linux
// allows (quotes too); realtime_offset_ns turns the event's CLOCK_MONOTONIC
// stamp into wall-clock time.
std::string format_event(const xdpfw_event& ev, const std::string& ifname,
                         int64_t realtime_offset_ns);

}  // namespace xdpfw
