// event_pipeline.cpp: see event_pipeline.hpp.
#include "event_pipeline.hpp"

#include <ctime>

namespace xdpfw {
namespace {

int64_t realtime_minus_monotonic() {
  timespec rt{}, mono{};
  clock_gettime(CLOCK_REALTIME, &rt);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  return (int64_t(rt.tv_sec) - mono.tv_sec) * 1000000000 + (rt.tv_nsec - mono.tv_nsec);
}

}  // namespace

void WatcherHub::publish(const std::string& line) {
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    std::string out;
    if (it->dropped) out = "{\"dropped\":" + std::to_string(it->dropped) + "}\n";
    out += line + "\n";
    int rc = write_(it->stream, out);
    if (rc < 0) {
      it = watchers_.erase(it);
      continue;
    }
    if (rc == 1)
      ++it->dropped;
    else
      it->dropped = 0;
    ++it;
  }
}

EventPipeline::EventPipeline(Datapath& dp, std::function<std::string(int)> ifname)
    : dp_(dp), ifname_(std::move(ifname)) {}

void EventPipeline::open_log(const std::string& path) {
  if (log_) log_->flush();
  log_ = std::make_unique<EventLog>(path);
}

void EventPipeline::drain() {
  int64_t offset = realtime_minus_monotonic();
  lost_ += dp_.read_events([&](const xdpfw_event& ev) {
    std::string line = format_event(ev, ifname_(static_cast<int>(ev.ifindex)), offset);
    watchers_.publish(line);
    log_->append(std::move(line));
  });
  log_->flush();
}

}  // namespace xdpfw
