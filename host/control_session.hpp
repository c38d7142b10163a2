// control_session.hpp: one client of the control socket: its requests read
// and answered in order within its limits, its replies written without ever
// waiting for it, and, after "show events", its live stream. The server
// that accepted it is reached through SessionOwner only.
#pragma once

#include <utility>  // before Asio (Boost 1.74 + g++ 12)

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "host_config.hpp"
#include "request_parser.hpp"

namespace xdpfw::host {

struct ClientInfo {
  pid_t pid = 0;
  uid_t uid = static_cast<uid_t>(-1);  // -1: the kernel did not say
  gid_t gid = static_cast<gid_t>(-1);
  bool admin = false;  // root, the agent's user, or in the socket's group
  bool root = false;   // root or the agent's user: may take every slot
};

// Who may take a slot from whom: read-only 0, group member 1, root (and
// the agent's user) 2.
inline int rank(const ClientInfo& c) {
  return c.root ? 2 : c.admin ? 1 : 0;
}

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

// Slots no group member may take, kept for root and the agent's user: a
// sixteenth of max-clients, at least one and at most 16. (Within the
// administrators' reserve: read-only clients cannot take them either.)
inline size_t root_reserve(size_t max_clients) {
  return max_clients < 2 ? 0 : std::clamp<size_t>(max_clients / 16, 1, 16);
}

// Clients one uid may hold (root and the agent's user excepted):
// max-clients-per-uid, never more than the slots a group member may take.
inline size_t per_uid_cap(const ControlLimits& l) {
  return std::min(l.max_clients_per_uid, l.max_clients - root_reserve(l.max_clients));
}

struct Reply {
  std::string text;     // complete, ending with the empty line
  bool close = false;   // "quit"
  uint64_t stream = 0;  // the connection becomes this stream (ABI 1.1)
};

using Dispatch = std::function<Reply(const Request&, const ClientInfo&)>;

class ControlSession;

// What a session needs of the server that accepted it.
class SessionOwner {
 public:
  virtual boost::asio::io_context& io() = 0;
  virtual const ControlLimits& limits() const = 0;
  virtual gid_t socket_gid() const = 0;
  // Whether a new session gets a slot: "" when it does (idle clients may
  // have been closed to make room), else why not.
  virtual std::string admit(ControlSession& s) = 0;
  virtual size_t watchers() const = 0;     // live streams now
  virtual size_t turned_away() const = 0;  // refused or evicted, not yet closed
  virtual Reply dispatch(const Request& r, const ClientInfo& c) = 0;
  // The bytes the session holds changed by delta (the server may close
  // the client holding the most, this one too).
  virtual void charge(ptrdiff_t delta) = 0;
  virtual void stream_opened(uint64_t id, std::shared_ptr<ControlSession> s) = 0;
  virtual void closed(std::shared_ptr<ControlSession> s, uint64_t stream) = 0;

 protected:
  ~SessionOwner() = default;
};

class ControlSession : public std::enable_shared_from_this<ControlSession> {
  using stream = boost::asio::local::stream_protocol;

 public:
  ControlSession(SessionOwner& owner, stream::socket sock);

  void start();

  bool admin() const { return info_.admin; }
  const ClientInfo& info() const { return info_; }
  size_t held() const { return held_; }
  pid_t pid() const { return info_.pid; }
  // Holds a slot: admitted and not yet closed or turned away.
  bool admitted() const { return admitted_ && state_ != State::closed; }
  // Turned away (refused or evicted), its input being drained before the
  // close: holds no slot, but a descriptor.
  bool turned_away() const { return !admitted_ && state_ != State::closed; }
  // Connected with nothing under way: no request read in part or waiting,
  // no reply unwritten, not a live stream. Such a client may be closed to
  // make room for a new one.
  bool idle() const;
  // When it last sent something or took a reply.
  std::chrono::steady_clock::time_point last_active() const { return last_active_; }
  // Closes an idle client to make room for a new one; WHY is its ERR line.
  void evict(const std::string& why);

  // A stream: queued while the client keeps up, dropped (1) beyond a
  // bounded backlog so that a slow watcher costs nobody else anything.
  int stream_write(std::string data);

  void close();

 private:
  // Where the connection is. Requests run in order while reading (and
  // while draining, for those read before the broken limit).
  enum class State {
    reading,    // requests are read and answered in order
    streaming,  // the connection carries a live stream; input from the client ends it
    draining,   // a limit was broken: the reason is written, further input discarded
    closing,    // after "quit" or a refusal: the replies are written, then it closes
    closed,
  };
  bool runs_requests() const { return state_ == State::reading || state_ == State::draining; }

  size_t max_output() const;
  // Tells the server what this session holds now.
  void recharge();
  void arm_idle();
  void read();

  void on_read(boost::system::error_code ec, size_t n);
  void queue(Request r);

  // One request per turn of the loop: a client that pipelines a hundred
  // slow commands delays the others by one command, not a hundred. Its
  // socket is read again only when all of them have run.
  void run_queued();
  void handle(const Request& r);
  // Replies to pipelined requests are gathered while more of them wait
  // (up to reply_batch bytes) and written together: one write, and one
  // wakeup of the client, for many replies.
  void send(std::string text);
  // Writes every reply not yet written, unless a write is under way.
  void flush();
  void write();

  // After "quit", a broken limit or the client's end of input: close once
  // every reply is written.
  void maybe_close();

  // Tells the client TEXT (an ERR reply) and takes its slot: its writing
  // side is shut once the text is written and its input read and discarded
  // (bounded) until it closes, so that a request it sends meanwhile never
  // meets a closed socket (EPIPE) and none is left unread at the close (a
  // reset). Past max_turned_away of them, it is closed once the text is
  // written.
  void turn_away(std::string text, bool lingering);

  SessionOwner& owner_;
  stream::socket sock_;
  boost::asio::steady_timer idle_;
  RequestParser parser_;
  ClientInfo info_;
  std::array<char, 16384> rbuf_{};
  std::deque<std::string> out_;  // replies: the first `writing_` are being written
  size_t writing_ = 0;
  size_t unwritten_ = 0;    // bytes of out_ no write has taken yet
  bool gathering_ = false;  // more requests wait: the replies wait for them
  static constexpr size_t reply_batch = 64 * 1024;
  size_t queued_ = 0;
  State state_ = State::reading;
  bool input_done_ = false;            // the client ended its input: the queued requests still run
  uint64_t stream_ = 0;                // its id while streaming
  std::deque<Request> requests_;       // read, not yet run
  size_t queued_in_ = 0;               // their bytes
  std::optional<std::string> broken_;  // a limit broken by the input after them
  size_t held_ = 0;                    // charged to the server's budget
  static constexpr size_t stream_backlog = 1 << 20;
  size_t drained_ = 0;
  static constexpr size_t drain_limit = 16 << 20;
  bool admitted_ = false;
  std::chrono::steady_clock::time_point last_active_ = std::chrono::steady_clock::now();

 public:
  // How long a turned-away client's input is drained at most, and how
  // many are drained at once.
  static constexpr std::chrono::seconds turned_away_linger{5};
  static constexpr size_t max_turned_away = 128;
};

}  // namespace xdpfw::host
