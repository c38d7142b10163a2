// event_log.cpp: see event_log.hpp.
#include "event_log.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <iterator>
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
  // The file it replaces (logrotate moved it away): a new file takes its
  // mode and group, so that who may read the log stays who could.
  struct stat was {};
  bool had = fd_ >= 0 && ::fstat(fd_, &was) == 0;
  if (fd_ >= 0) ::close(fd_);
  // Never through a symlink, never into a FIFO or device: only a regular
  // file of its own is appended to.
  constexpr int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
  fd_ = ::open(path_.c_str(), flags);
  bool created = false;
  if (fd_ < 0 && errno == ENOENT) {
    fd_ = ::open(path_.c_str(), flags | O_CREAT | O_EXCL, 0640);
    created = fd_ >= 0;
  }
  if (created) {
    // 0640 whatever the umask (the unit's is 0077), or the old file's.
    if (::fchmod(fd_, had ? (was.st_mode & 07777) : 0640) != 0 ||
        (had && ::fchown(fd_, static_cast<uid_t>(-1), was.st_gid) != 0))
      last_error_ = "chmod/chown " + path_ + ": " + std::strerror(errno);
  }
  struct stat st {};
  if (fd_ >= 0 && (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode))) {
    ::close(fd_);
    fd_ = -1;
    errno = EINVAL;
  }
  if (fd_ < 0) {
    ++stats_.write_errors;
    last_error_ = "open " + path_ + ": " +
                  (errno == ELOOP    ? std::string("a symbolic link: refused")
                   : errno == EINVAL ? std::string("not a regular file: refused")
                                     : std::string(std::strerror(errno)));
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
  if (fd_ < 0 || ::lstat(path_.c_str(), &at_path) != 0 || ::fstat(fd_, &open_one) != 0 ||
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

// One line per packet event, at up to hundreds of thousands a second:
// built by hand into one string. The timestamp's seconds part and the
// escaped interface name are kept from the previous event (they rarely
// change); the name goes through nlohmann's escaping once, as names may hold
// any byte Linux allows (invalid UTF-8 becomes U+FFFD, never an error).
std::string format_event(const xdpfw_event& ev, const std::string& ifname,
                         int64_t realtime_offset_ns) {
  thread_local std::time_t cached_secs = -1;
  thread_local char cached_ts[32];
  thread_local std::string cached_name = "\x01", cached_name_json;

  int64_t ns = static_cast<int64_t>(ev.timestamp_ns) + realtime_offset_ns;
  std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
  if (secs != cached_secs) {
    std::tm tm{};
    gmtime_r(&secs, &tm);
    std::strftime(cached_ts, sizeof cached_ts, "%Y-%m-%dT%H:%M:%S", &tm);
    cached_secs = secs;
  }
  if (ifname != cached_name) {
    cached_name = ifname;
    cached_name_json =
        nlohmann::json(ifname).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%09lldZ", static_cast<long long>(ns % 1000000000));

  bool v6 = ev.family == XDPFW_FAMILY_V6;
  char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
  inet_ntop(v6 ? AF_INET6 : AF_INET, ev.src, src, sizeof src);
  inet_ntop(v6 ? AF_INET6 : AF_INET, ev.dst, dst, sizeof dst);

  std::string o;
  o.reserve(320);
  auto num = [&o](uint64_t v) { o += std::to_string(v); };
  o += "{\"timestamp\":\"";
  o += cached_ts;
  o += frac;
  o += "\",\"interface\":";
  o += cached_name_json;
  o += ",\"ifindex\":";
  num(ev.ifindex);
  o += v6 ? ",\"family\":\"ipv6\",\"src_ip\":\"" : ",\"family\":\"ipv4\",\"src_ip\":\"";
  o += src;
  o += "\",\"dst_ip\":\"";
  o += dst;
  o += "\",\"proto\":\"";
  o += proto_name(ev.proto);
  o += '"';
  bool ports = ev.flags & XDPFW_EVENT_HAS_PORTS;
  bool icmp = ev.proto == proto_icmp || ev.proto == proto_icmpv6;
  if (ports && icmp) {
    o += ",\"icmp_type\":";
    num(ev.sport);
    o += ",\"icmp_code\":";
    num(ev.dport);
  } else if (ports) {
    o += ",\"src_port\":";
    num(ev.sport);
    o += ",\"dst_port\":";
    num(ev.dport);
  } else {
    o += ",\"src_port\":null,\"dst_port\":null";
  }
  o += ",\"tcp_flags\":";
  num(ev.tcp_flags);
  o += ",\"length\":";
  num(ev.pkt_len);
  o += (ev.flags & XDPFW_EVENT_FRAGMENT) ? ",\"fragment\":true" : ",\"fragment\":false";
  static constexpr const char* kinds[] = {"unmatched", "rule", "audit", "malformed"};
  static constexpr const char* verdicts[] = {"pass", "drop", "would-drop"};
  o += ",\"event\":\"";
  o += ev.kind < std::size(kinds) ? kinds[ev.kind] : "unknown";
  o += "\",\"verdict\":\"";
  o += ev.verdict < std::size(verdicts) ? verdicts[ev.verdict] : "unknown";
  o += '"';
  if (ev.kind == XDPFW_EVENT_RULE || ev.kind == XDPFW_EVENT_AUDIT) {
    o += ",\"rule\":";
    num(ev.rule);
  }
  o += '}';
  return o;
}

}  // namespace xdpfw
