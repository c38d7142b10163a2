// event_log.cpp: see event_log.hpp.
#include "event_log.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "rule.hpp"

namespace xdpfw {

EventLog::EventLog(std::string path) : path_(std::move(path)) {
  open_file();
}

EventLog::~EventLog() {
  flush();
  if (fd_ >= 0) ::close(fd_);
}

bool EventLog::open_file() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    ++stats_.write_errors;
    last_error_ = "open " + path_ + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

void EventLog::reopen() {
  flush();
  ++stats_.reopens;
  open_file();
}

void EventLog::append(std::string line) {
  if (buf_.size() + line.size() + 1 > max_buffer) {
    ++stats_.dropped;
    return;
  }
  buf_ += line;
  buf_ += '\n';
  ++buffered_lines_;
}

void EventLog::flush() {
  if (buf_.empty()) return;
  // Deleted or moved away without a reopen? Then write to a new file.
  struct stat at_path {
  }, open_one{};
  if (fd_ < 0 || ::stat(path_.c_str(), &at_path) != 0 || ::fstat(fd_, &open_one) != 0 ||
      at_path.st_ino != open_one.st_ino || at_path.st_dev != open_one.st_dev)
    open_file();
  bool ok = fd_ >= 0;
  size_t off = 0;
  while (ok && off < buf_.size()) {
    ssize_t n = ::write(fd_, buf_.data() + off, buf_.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ++stats_.write_errors;
      last_error_ = "write " + path_ + ": " + std::strerror(n < 0 ? errno : ENOSPC);
      ok = false;
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (ok) {
    stats_.lines += buffered_lines_;
  } else {
    // What did not fit is gone; counted, so lines + dropped add up.
    size_t written_lines = 0;
    for (size_t i = 0; i < off; ++i) written_lines += buf_[i] == '\n';
    stats_.lines += written_lines;
    stats_.dropped += buffered_lines_ - written_lines;
  }
  buf_.clear();
  buffered_lines_ = 0;
}

std::string format_event(const xdpfw_event& ev, const std::string& ifname,
                         int64_t realtime_offset_ns) {
  int64_t ns = static_cast<int64_t>(ev.timestamp_ns) + realtime_offset_ns;
  std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[64];
  size_t len = std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(ts + len, sizeof ts - len, ".%09lldZ", static_cast<long long>(ns % 1000000000));

  Family fam = ev.family == XDPFW_FAMILY_V6 ? Family::v6 : Family::v4;
  std::array<uint8_t, 16> src{}, dst{};
  std::memcpy(src.data(), ev.src, 16);
  std::memcpy(dst.data(), ev.dst, 16);
  nlohmann::ordered_json j = {{"timestamp", ts},
                              {"interface", ifname},
                              {"ifindex", ev.ifindex},
                              {"family", fam == Family::v6 ? "ipv6" : "ipv4"},
                              {"src_ip", format_address(fam, src)},
                              {"dst_ip", format_address(fam, dst)},
                              {"proto", proto_name(ev.proto)}};
  bool ports = ev.flags & XDPFW_EVENT_HAS_PORTS;
  bool icmp = ev.proto == proto_icmp || ev.proto == proto_icmpv6;
  if (ports && icmp) {
    j["icmp_type"] = ev.sport;
    j["icmp_code"] = ev.dport;
  } else {
    j["src_port"] = ports ? nlohmann::ordered_json(ev.sport) : nlohmann::ordered_json(nullptr);
    j["dst_port"] = ports ? nlohmann::ordered_json(ev.dport) : nlohmann::ordered_json(nullptr);
  }
  j["tcp_flags"] = ev.tcp_flags;
  j["length"] = ev.pkt_len;
  j["fragment"] = (ev.flags & XDPFW_EVENT_FRAGMENT) != 0;
  // Names may hold any byte Linux allows; never fail on them.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace xdpfw
