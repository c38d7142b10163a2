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

#include "control_session.hpp"
#include "host_config.hpp"

namespace xdpfw::host {

class ControlServer : private SessionOwner {
 public:
  ControlServer(boost::asio::io_context& io, Dispatch dispatch);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

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
  // SessionOwner: what the sessions see of the server.
  boost::asio::io_context& io() override { return io_; }
  const ControlLimits& limits() const override { return limits_; }
  gid_t socket_gid() const override { return gid_; }
  // The slots: max-clients in all; read-only clients (and watchers) get
  // all but admin_reserve(), group members all but root_reserve(), and no
  // uid but root's (or the agent's) more than per_uid_cap(). A newcomer
  // over its uid's cap is refused; one that finds its slots taken first
  // closes idle clients (ControlSession::idle()) to make room: of its own
  // uid first, then of the lowest level, the longest idle first, never of
  // a level above its own.
  std::string admit(ControlSession& s) override;
  size_t watchers() const override { return streams_.size(); }
  size_t turned_away() const override;
  Reply dispatch(const Request& r, const ClientInfo& c) override { return dispatch_(r, c); }
  void charge(ptrdiff_t delta) override;
  void stream_opened(uint64_t id, std::shared_ptr<ControlSession> s) override { streams_[id] = s; }
  void closed(std::shared_ptr<ControlSession> s, uint64_t stream) override;

  void accept();
  // Of the socket at AT (default: its path).
  void apply_permissions(mode_t mode, gid_t gid, const std::string& at = "");
  static gid_t resolve_group(const std::string& group);
  // Past max-memory the client holding the most is closed.
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
