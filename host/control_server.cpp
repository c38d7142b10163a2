// control_server.cpp: socket creation, accept loop, sessions.
#include "control_server.hpp"

#include <malloc.h>

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <stdexcept>

#include "log.hpp"

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

namespace xdpfw::host {

class ControlSession : public std::enable_shared_from_this<ControlSession> {
 public:
  ControlSession(ControlServer& server, stream::socket sock)
      : server_(server),
        sock_(std::move(sock)),
        idle_(server.io_),
        parser_(server.limits_.max_line, server.limits_.max_payload) {}

  void start() {
    info_ = identify_peer(sock_.native_handle(), server_.gid_);
    log_info("control: client pid " + std::to_string(info_.pid) + " uid " +
             std::to_string(info_.uid) + " gid " + std::to_string(info_.gid) +
             (info_.admin ? " connected" : " connected read-only"));
    const ControlLimits& l = server_.limits_;
    if (!info_.admin) parser_.set_limits(l.max_line, l.max_payload / 4);
    size_t ro_slots = l.max_clients - admin_reserve(l.max_clients);
    std::string refusal;
    if (server_.sessions_.size() > l.max_clients)
      refusal = "too many clients (limit " + std::to_string(l.max_clients) + ")";
    else if (!info_.admin && server_.counts().read_only > ro_slots)
      refusal = "too many read-only clients (limit " + std::to_string(ro_slots) +
                "; the other slots are kept for administrators)";
    if (!refusal.empty()) {
      log_warn("control: refusing client pid " + std::to_string(info_.pid) + ": " + refusal);
      send("ERR: " + refusal + "; try again later\n\n");
      closing_ = true;
      return;
    }
    arm_idle();
    read();
  }

  bool admin() const { return info_.admin; }
  size_t held() const { return held_; }
  pid_t pid() const { return info_.pid; }

  // A stream: queued while the client keeps up, dropped (1) beyond a
  // bounded backlog so that a slow watcher costs nobody else anything.
  int stream_write(std::string data) {
    if (closed_) return -1;
    if (queued_ + data.size() > stream_backlog) return 1;
    send(std::move(data));
    return closed_ ? -1 : 0;
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    if (stream_) server_.streams_.erase(stream_);
    boost::system::error_code ec;
    idle_.cancel();
    sock_.shutdown(stream::socket::shutdown_both, ec);
    sock_.close(ec);
    // Unread replies go now (the one being written stays until its handler
    // has run), and no more of its input will run.
    if (out_.size() > 1) out_.erase(out_.begin() + 1, out_.end());
    queued_ = 0;
    parser_ = RequestParser(0, 0);
    requests_.clear();
    queued_in_ = 0;
    recharge();
    server_.sessions_.erase(shared_from_this());
  }

 private:
  size_t max_output() const {
    return info_.admin ? server_.limits_.max_output : server_.limits_.max_output / 4;
  }

  // Tells the server what this session holds now.
  void recharge() {
    size_t now = closed_ ? 0 : queued_ + queued_in_ + parser_.buffered();
    ptrdiff_t delta = static_cast<ptrdiff_t>(now) - static_cast<ptrdiff_t>(held_);
    held_ = now;
    if (delta) server_.charge(delta);
  }

 private:
  void arm_idle() {
    if (stream_) return;
    idle_.expires_after(std::chrono::seconds(server_.limits_.idle_timeout_s));
    idle_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->closed_) return;
      std::string idle = "idle for " + std::to_string(self->server_.limits_.idle_timeout_s) + " s";
      log_info("control: client pid " + std::to_string(self->info_.pid) + " " + idle + ": closed");
      // Told why, if its socket has room (never waiting for a client).
      if (self->out_.empty()) {
        std::string why = "ERR: " + idle + "; connection closed\n\n";
        (void)!::send(self->sock_.native_handle(), why.data(), why.size(),
                      MSG_DONTWAIT | MSG_NOSIGNAL);
      }
      self->close();
    });
  }

  void read() {
    sock_.async_read_some(asio::buffer(rbuf_),
                          [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                            self->on_read(ec, n);
                          });
  }

  void on_read(boost::system::error_code ec, size_t n) {
    if (closed_) return;
    if (draining_ && !ec) {
      // After a broken limit: discard what the client still sends, so
      // that it can read why, but only so much.
      drained_ += n;
      if (drained_ > drain_limit)
        close();
      else
        read();
      return;
    }
    if (ec) {
      if (stream_) {
        // A watcher that only closed its sending side keeps watching;
        // a reset or full close ends the stream.
        if (ec == asio::error::eof) return;
        close();
        return;
      }
      if (!draining_)
        if (auto last = parser_.finish()) queue(std::move(*last));
      eof_ = true;
      run_queued();
      return;
    }
    if (stream_) {  // anything a watcher sends ends its stream
      close();
      return;
    }
    arm_idle();
    std::vector<Request> reqs;
    broken_ = parser_.feed(std::string_view(rbuf_.data(), n), reqs);
    for (Request& r : reqs) queue(std::move(r));
    recharge();
    if (!closed_) run_queued();  // (closed: shed for the budget)
  }

  void queue(Request r) {
    queued_in_ += r.line.size() + (r.payload ? r.payload->size() : 0);
    requests_.push_back(std::move(r));
  }

  // One request per turn of the loop: a client that pipelines a hundred
  // slow commands delays the others by one command, not a hundred. Its
  // socket is read again only when all of them have run.
  void run_queued() {
    if (closed_) return;
    if (!requests_.empty() && !closing_ && !stream_) {
      Request r = std::move(requests_.front());
      requests_.pop_front();
      queued_in_ -= r.line.size() + (r.payload ? r.payload->size() : 0);
      handle(r);
      if (r.payload && r.payload->size() >= (1u << 20)) {  // 100,000 rules: give them back
        r = Request{};
        malloc_trim(0);
      }
      recharge();
      if (closed_) return;  // closed for not reading: nothing more of its input runs
      if (!requests_.empty() && !closing_ && !stream_) {
        asio::post(server_.io_, [self = shared_from_this()] { self->run_queued(); });
        return;
      }
    }
    requests_.clear();
    queued_in_ = 0;
    if (broken_) {
      log_warn("control: client pid " + std::to_string(info_.pid) + ": " + *broken_ + ": closed");
      send("ERR: " + *broken_ + "; connection closed\n\n");
      broken_.reset();
      draining_ = true;
    }
    if (closing_ || eof_) {
      maybe_close();
      return;
    }
    if (!closed_) read();
  }

  void handle(const Request& r) {
    if (stream_) return;
    if (r.error) {
      send("ERR: " + *r.error + "\n\n");
      return;
    }
    Reply reply = server_.dispatch_(r, info_);
    const ControlLimits& l = server_.limits_;
    size_t watcher_slots = l.max_clients - admin_reserve(l.max_clients);
    if (reply.stream && server_.streams_.size() >= watcher_slots) {
      // The plugin's next write to this stream fails and forgets it.
      send("ERR: too many live watchers (limit " + std::to_string(watcher_slots) +
           "; the other slots are kept for administrators); try again later\n\n");
      return;
    }
    send(std::move(reply.text));
    if (reply.close) closing_ = true;
    if (reply.stream && !closed_) {
      stream_ = reply.stream;
      server_.streams_[stream_] = shared_from_this();
      idle_.cancel();  // watchers may be quiet for as long as they like
    }
  }

  void send(std::string text) {
    if (closed_) return;
    queued_ += text.size();
    if (queued_ > max_output()) {
      log_warn("control: client pid " + std::to_string(info_.pid) + " does not read its replies (" +
               std::to_string(queued_) + " bytes unread): closed");
      close();
      return;
    }
    out_.push_back(std::move(text));
    recharge();
    if (closed_) return;  // shed for the budget
    if (out_.size() == 1) write();
  }

  void write() {
    asio::async_write(sock_, asio::buffer(out_.front()),
                      [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                        if (self->closed_) return;
                        if (ec) {
                          self->close();
                          return;
                        }
                        self->queued_ -= n;
                        self->recharge();
                        bool big = self->out_.front().size() >= (1u << 20);
                        self->out_.pop_front();
                        // A reply of megabytes (rule list of 100,000 rules)
                        // leaves its buffers free in the heap: give them back.
                        if (big) malloc_trim(0);
                        if (!self->out_.empty()) {
                          self->write();
                        } else if (self->draining_) {
                          boost::system::error_code ignored;
                          self->sock_.shutdown(stream::socket::shutdown_send, ignored);
                        } else {
                          self->maybe_close();
                        }
                      });
  }

  // After "quit", a broken limit or the client's end of input: close once
  // every reply is written.
  void maybe_close() {
    if ((closing_ || eof_) && out_.empty()) close();
  }

  ControlServer& server_;
  stream::socket sock_;
  asio::steady_timer idle_;
  RequestParser parser_;
  ClientInfo info_;
  std::array<char, 16384> rbuf_{};
  std::deque<std::string> out_;
  size_t queued_ = 0;
  bool eof_ = false, closing_ = false, closed_ = false, draining_ = false;
  uint64_t stream_ = 0;
  std::deque<Request> requests_;       // read, not yet run
  size_t queued_in_ = 0;               // their bytes
  std::optional<std::string> broken_;  // a limit broken by the input after them
  size_t held_ = 0;                    // charged to the server's budget
  static constexpr size_t stream_backlog = 1 << 20;
  size_t drained_ = 0;
  static constexpr size_t drain_limit = 16 << 20;
};

ClientInfo identify_peer(int fd, gid_t socket_gid, GetSockOpt get) {
  ClientInfo info;  // uid/gid -1, not admin
  ucred cred{};
  socklen_t len = sizeof cred;
  if (get(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) {
    log_warn(std::string("control: SO_PEERCRED: ") + std::strerror(errno) +
             ": the client is served read-only");
    return info;
  }
  info.pid = cred.pid;
  info.uid = cred.uid;
  info.gid = cred.gid;
  bool in_group = cred.gid == socket_gid;
  if (!in_group) {
    std::vector<gid_t> groups(64);
    for (int tries = 0; tries < 4; ++tries) {
      len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
      if (get(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
        for (size_t i = 0; i < len / sizeof(gid_t) && i < groups.size(); ++i)
          in_group |= groups[i] == socket_gid;
        break;
      }
      if (errno != ERANGE || len <= groups.size() * sizeof(gid_t)) {
        log_warn(std::string("control: SO_PEERGROUPS: ") + std::strerror(errno) +
                 ": the client's groups are not counted");
        break;
      }
      groups.resize(len / sizeof(gid_t) + 1);  // the kernel said how many
    }
  }
  info.admin = cred.uid == 0 || cred.uid == geteuid() || in_group;
  return info;
}

ControlServer::ControlServer(asio::io_context& io, Dispatch dispatch)
    : io_(io), dispatch_(std::move(dispatch)), acceptor_(io), accept_pause_(io) {}

void ControlServer::charge(ptrdiff_t delta) {
  held_ = static_cast<size_t>(static_cast<ptrdiff_t>(held_) + delta);
  if (delta > 0 && held_ > limits_.max_memory) shed();
}

// The budget for all clients is spent: the one holding the most goes, the
// others (an administrator's "show stats" among them) keep being served.
void ControlServer::shed() {
  while (held_ > limits_.max_memory) {
    std::shared_ptr<ControlSession> big;
    for (const auto& s : sessions_)
      if (!big || s->held() > big->held()) big = s;
    if (!big || big->held() == 0) return;
    log_warn("control: clients hold " + std::to_string(held_ >> 20) + " MiB, over max-memory (" +
             std::to_string(limits_.max_memory >> 20) + " MiB): closed client pid " +
             std::to_string(big->pid()) + ", which held " + std::to_string(big->held()) + " bytes");
    big->close();
  }
}

ControlServer::Counts ControlServer::counts() const {
  Counts c;
  for (const auto& s : sessions_) ++(s->admin() ? c.admins : c.read_only);
  c.watchers = streams_.size();
  c.held_bytes = held_;
  return c;
}

ControlServer::~ControlServer() {
  stop();
}

gid_t ControlServer::resolve_group(const std::string& group) {
  if (group.empty()) return getegid();
  struct group* g = getgrnam(group.c_str());
  if (!g) throw std::runtime_error("socket-group: no group named '" + group + "'");
  return g->gr_gid;
}

void ControlServer::apply_permissions(mode_t mode, gid_t gid) {
  if (chown(path_.c_str(), static_cast<uid_t>(-1), gid) != 0 || chmod(path_.c_str(), mode) != 0)
    throw std::runtime_error("control socket " + path_ +
                             ": cannot set its group and mode: " + std::strerror(errno));
  mode_ = mode;
  gid_ = gid;
}

void ControlServer::start(const HostConfig& cfg) {
  path_ = cfg.socket_path;
  limits_ = cfg.limits;
  mode_ = cfg.socket_mode;
  group_ = cfg.socket_group;
  namespace fs = std::filesystem;
  std::error_code fec;
  fs::path dir = fs::path(path_).parent_path();
  if (!fs::exists(dir, fec)) {
    fs::create_directories(dir, fec);
    if (fec)
      throw std::runtime_error("control socket directory " + dir.string() + ": " + fec.message());
    chmod(dir.c_str(), 0755);
  }
  if (fs::exists(fs::symlink_status(path_, fec))) {
    // Someone listening? Then another agent owns it; else it is stale.
    stream::socket probe(io_);
    boost::system::error_code ec;
    probe.connect(stream::endpoint(path_), ec);
    if (!ec)
      throw std::runtime_error("control socket " + path_ +
                               ": another agent is listening on it; stop it first or use --socket");
    if (!fs::is_socket(fs::symlink_status(path_, fec)))
      throw std::runtime_error("control socket " + path_ + ": exists and is not a socket");
    log_info("control: replacing stale socket " + path_);
    fs::remove(path_, fec);
  }
  boost::system::error_code ec;
  acceptor_.open(stream(), ec);
  mode_t old = umask(0177);  // no window where the socket is open to others
  if (!ec) acceptor_.bind(stream::endpoint(path_), ec);
  umask(old);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    acceptor_.close();
    throw std::runtime_error("control socket " + path_ + ": " + ec.message());
  }
  apply_permissions(mode_, resolve_group(group_));
  acceptor_.non_blocking(true, ec);
  log_info("control: listening on " + path_);
  accept();
}

void ControlServer::check(const HostConfig& cfg) const {
  resolve_group(cfg.socket_group);
}

// The group is resolved and the socket changed before the limits: a
// failure leaves everything as it was.
void ControlServer::reconfigure(const HostConfig& cfg) {
  if (cfg.socket_mode != mode_ || cfg.socket_group != group_) {
    apply_permissions(cfg.socket_mode, resolve_group(cfg.socket_group));
    group_ = cfg.socket_group;
  }
  limits_ = cfg.limits;
}

void ControlServer::broadcast(const std::string& line) {
  auto ids = streams_;
  for (const auto& [id, s] : ids) stream_write(id, line);
}

void ControlServer::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, stream::socket sock) {
    if (!acceptor_.is_open() || ec == asio::error::operation_aborted) return;
    // Every connection already waiting is taken in this turn (up to 64):
    // one per turn would leave a newcomer, an administrator too, waiting
    // behind a full round of every busy client's requests per queued one.
    for (int taken = 0; !ec; ++taken) {
      accept_backoff_ = std::chrono::milliseconds(0);
      auto s = std::make_shared<ControlSession>(*this, std::move(sock));
      sessions_.insert(s);
      s->start();
      if (taken == 64) break;
      sock = stream::socket(io_);
      acceptor_.accept(sock, ec);  // non-blocking: would_block when none is left
    }
    if (ec == asio::error::no_descriptors || ec.value() == ENFILE ||
        ec == asio::error::no_buffer_space || ec == asio::error::no_memory) {
      // Out of descriptors or memory: the pending connection stays queued
      // and the listener stays readable, so accepting again at once would
      // spin. Pause, 50 ms doubling to 1 s, and warn once a minute.
      accept_backoff_ = std::clamp(accept_backoff_ * 2, std::chrono::milliseconds(50),
                                   std::chrono::milliseconds(1000));
      auto now = std::chrono::steady_clock::now();
      if (now - accept_warned_ > std::chrono::minutes(1)) {
        accept_warned_ = now;
        log_warn("control: accept: " + ec.message() + " (" + std::to_string(sessions_.size()) +
                 " clients): new connections wait; accept is retried after a pause doubling from "
                 "50 ms to 1 s");
      }
      accept_pause_.expires_after(accept_backoff_);
      accept_pause_.async_wait([this](boost::system::error_code e) {
        if (!e && acceptor_.is_open()) accept();
      });
      return;
    }
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again)
      log_warn("control: accept: " + ec.message());
    accept();
  });
}

int ControlServer::stream_write(uint64_t id, std::string data) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return -1;
  auto s = it->second.lock();
  if (!s) {
    streams_.erase(it);
    return -1;
  }
  return s->stream_write(std::move(data));
}

void ControlServer::stream_close(uint64_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  if (auto s = it->second.lock()) s->close();
  streams_.erase(id);
}

void ControlServer::stop() {
  if (!acceptor_.is_open()) return;
  boost::system::error_code ec;
  acceptor_.close(ec);
  accept_pause_.cancel();
  auto all = sessions_;
  for (auto& s : all) s->close();
  sessions_.clear();
  if (!path_.empty()) ::unlink(path_.c_str());
}

}  // namespace xdpfw::host
