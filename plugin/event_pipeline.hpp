// event_pipeline.hpp: where a packet event goes. The datapath's events are
// read, formatted once as a JSON line, and handed to two sinks: the log file
// and the watchers of "show events" (live streams).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "datapath.hpp"
#include "event_log.hpp"

namespace xdpfw {

// The live streams of "show events". A slow watcher loses lines and is
// told how many ({"dropped":N}) before the next line it gets.
class WatcherHub {
 public:
  // Writes bytes to a stream: 0 written, 1 not written (the stream's
  // buffer is full), negative: the stream is gone.
  using Write = std::function<int(uint64_t stream, const std::string& bytes)>;

  // Without a writer (a host without streams) there are no watchers.
  void set_writer(Write write) { write_ = std::move(write); }
  bool enabled() const { return static_cast<bool>(write_); }
  void add(uint64_t stream) { watchers_.push_back({stream}); }
  size_t size() const { return watchers_.size(); }
  void publish(const std::string& line);

 private:
  struct Watcher {
    uint64_t stream;
    uint64_t dropped = 0;  // not yet reported to it
  };
  Write write_;
  std::vector<Watcher> watchers_;
};

class EventPipeline {
 public:
  // ifname: the name of an interface by index ("" when unknown).
  EventPipeline(Datapath& dp, std::function<std::string(int ifindex)> ifname);

  // (Re)opens the log file at path; the old one is flushed first.
  void open_log(const std::string& path);
  EventLog& log() { return *log_; }
  const EventLog& log() const { return *log_; }
  WatcherHub& watchers() { return watchers_; }

  // Reads every waiting event into both sinks; one log write per call.
  void drain();
  // Events overwritten in the kernel's ring before they were read.
  uint64_t lost() const { return lost_; }

 private:
  Datapath& dp_;
  std::function<std::string(int)> ifname_;
  std::unique_ptr<EventLog> log_;
  WatcherHub watchers_;
  uint64_t lost_ = 0;
};

}  // namespace xdpfw
