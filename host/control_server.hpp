// control_server.hpp: the Unix control socket. One session per client on the
// host's loop; limits on line and payload size, clients, idle time and
// unread output, so that no client can stall the others or grow memory
// without bound. What a request means is the dispatcher's business.
#pragma once

#include <utility>  // before Asio (Boost 1.74 + g++ 12)

#include <sys/socket.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "host_config.hpp"
#include "request_parser.hpp"

namespace xdpfw::host {

struct ClientInfo {
  pid_t pid = 0;
  uid_t uid = static_cast<uid_t>(-1);  // -1: the kernel did not say
  gid_t gid = static_cast<gid_t>(-1);
  bool admin = false;  // root, the agent's user, or in the socket's group
};

// Who is on the other end of a Unix socket, from SO_PEERCRED and
// SO_PEERGROUPS. Whatever the kernel does not answer counts against the
// client: a failed query gives the read-only level, never root's.
using GetSockOpt = int (*)(int fd, int level, int name, void* value, socklen_t* len);
ClientInfo identify_peer(int fd, gid_t socket_gid, GetSockOpt get = ::getsockopt);

// Slots no read-only client and no watcher may take, so that an
// administrator always gets in: an eighth of max-clients, at least one.
inline size_t admin_reserve(size_t max_clients) {
  return max_clients < 2 ? 0 : std::max<size_t>(1, max_clients / 8);
}

struct Reply {
  std::string text;     // complete, ending with the empty line
  bool close = false;   // "quit"
  uint64_t stream = 0;  // the connection becomes this stream (ABI 1.1)
};

using Dispatch = std::function<Reply(const Request&, const ClientInfo&)>;

class ControlSession;

class ControlServer {
 public:
  ControlServer(boost::asio::io_context& io, Dispatch dispatch);
  ~ControlServer();

  // Creates the socket (refusing a live one, replacing a stale one) and
  // starts accepting. Throws std::runtime_error with the reason.
  void start(const HostConfig& cfg);
  // Closes the listener and every session; removes the socket file.
  void stop();
  // Throws ConfigError-like std::runtime_error when cfg could not be
  // applied (no such socket group); changes nothing.
  void check(const HostConfig& cfg) const;
  // Applies new limits (new sessions and existing ones) and socket mode/group.
  void reconfigure(const HostConfig& cfg);
  // Clients now, for the host's metrics.
  struct Counts {
    size_t admins = 0, read_only = 0, watchers = 0, held_bytes = 0;
  };
  Counts counts() const;
  // A line to every live stream (the host's audit lines); slow watchers
  // lose it as they lose their own lines.
  void broadcast(const std::string& line);
  // 0 queued, 1 dropped (slow reader), -1 no such stream.
  int stream_write(uint64_t id, std::string data);
  void stream_close(uint64_t id);

 private:
  friend class ControlSession;
  void accept();
  void apply_permissions(mode_t mode, gid_t gid);
  static gid_t resolve_group(const std::string& group);
  // Memory held for clients changed by delta; past max-memory the client
  // holding the most is closed.
  void charge(ptrdiff_t delta);
  void shed();

  boost::asio::io_context& io_;
  Dispatch dispatch_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::string path_;
  ControlLimits limits_;
  mode_t mode_ = 0660;
  std::string group_;
  gid_t gid_ = 0;
  std::set<std::shared_ptr<ControlSession>> sessions_;
  std::map<uint64_t, std::weak_ptr<ControlSession>> streams_;
  size_t held_ = 0;  // bytes of every session's unread output and pending input
  boost::asio::steady_timer accept_pause_;
  std::chrono::milliseconds accept_backoff_{0};
  std::chrono::steady_clock::time_point accept_warned_{};
};

}  // namespace xdpfw::host
