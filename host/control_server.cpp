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
    identify();
    if (server_.sessions_.size() > server_.limits_.max_clients) {
      log_warn("control: refusing client pid " + std::to_string(info_.pid) + ": " +
               std::to_string(server_.limits_.max_clients) + " clients already connected");
      send("ERR: too many clients (limit " + std::to_string(server_.limits_.max_clients) +
           "); try again later\n\n");
      closing_ = true;
      return;
    }
    arm_idle();
    read();
  }

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
    server_.sessions_.erase(shared_from_this());
  }

 private:
  void identify() {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(sock_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      info_.pid = cred.pid;
      info_.uid = cred.uid;
      info_.gid = cred.gid;
    }
    bool in_group = cred.gid == server_.gid_;
    gid_t groups[256];
    len = sizeof groups;
    if (!in_group &&
        getsockopt(sock_.native_handle(), SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
      for (size_t i = 0; i < len / sizeof(gid_t); ++i) in_group |= groups[i] == server_.gid_;
    info_.admin = cred.uid == 0 || cred.uid == geteuid() || in_group;
    log_info("control: client pid " + std::to_string(info_.pid) + " uid " +
             std::to_string(info_.uid) + " gid " + std::to_string(info_.gid) +
             (info_.admin ? " connected" : " connected read-only"));
  }

  void arm_idle() {
    if (stream_) return;
    idle_.expires_after(std::chrono::seconds(server_.limits_.idle_timeout_s));
    idle_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->closed_) return;
      log_info("control: client pid " + std::to_string(self->info_.pid) + " idle for " +
               std::to_string(self->server_.limits_.idle_timeout_s) + " s: closed");
      self->close();
    });
  }

  void read() {
    sock_.async_read_some(
        asio::buffer(rbuf_), [self = shared_from_this()](boost::system::error_code ec, size_t n) {
          if (self->closed_) return;
          if (self->draining_ && !ec) {
            // After a broken limit: discard what the client still sends, so
            // that it can read why, but only so much.
            self->drained_ += n;
            if (self->drained_ > drain_limit)
              self->close();
            else
              self->read();
            return;
          }
          if (ec) {
            if (self->stream_) {
              // A watcher that only closed its sending side keeps watching;
              // a reset or full close ends the stream.
              if (ec == asio::error::eof) return;
              self->close();
              return;
            }
            if (!self->draining_)
              if (auto last = self->parser_.finish()) self->handle(*last);
            self->eof_ = true;
            self->maybe_close();
            return;
          }
          if (self->stream_) {  // anything a watcher sends ends its stream
            self->close();
            return;
          }
          self->arm_idle();
          std::vector<Request> reqs;
          auto err = self->parser_.feed(std::string_view(self->rbuf_.data(), n), reqs);
          size_t payload_bytes = 0;
          for (const Request& r : reqs) {
            if (self->closing_) break;
            self->handle(r);
            payload_bytes += r.payload ? r.payload->size() : 0;
          }
          if (payload_bytes >= (1u << 20)) {  // a batch of 100,000 rules: give it back
            reqs.clear();
            malloc_trim(0);
          }
          if (err) {
            log_warn("control: client pid " + std::to_string(self->info_.pid) + ": " + *err +
                     ": closed");
            self->send("ERR: " + *err + "; connection closed\n\n");
            self->draining_ = true;
          }
          if (self->closing_) {
            self->maybe_close();
            return;
          }
          if (!self->closed_) self->read();
        });
  }

  void handle(const Request& r) {
    if (stream_) return;
    if (r.error) {
      send("ERR: " + *r.error + "\n\n");
      return;
    }
    Reply reply = server_.dispatch_(r, info_);
    send(std::move(reply.text));
    if (reply.close) closing_ = true;
    if (reply.stream && !closed_) {
      stream_ = reply.stream;
      server_.streams_[stream_] = shared_from_this();
      idle_.cancel();  // watchers may be quiet for as long as they like
    }
  }

  void send(std::string text) {
    queued_ += text.size();
    if (queued_ > server_.limits_.max_output) {
      log_warn("control: client pid " + std::to_string(info_.pid) + " does not read its replies (" +
               std::to_string(queued_) + " bytes unread): closed");
      close();
      return;
    }
    out_.push_back(std::move(text));
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
  static constexpr size_t stream_backlog = 1 << 20;
  size_t drained_ = 0;
  static constexpr size_t drain_limit = 16 << 20;
};

ControlServer::ControlServer(asio::io_context& io, Dispatch dispatch)
    : io_(io), dispatch_(std::move(dispatch)), acceptor_(io) {}

ControlServer::~ControlServer() {
  stop();
}

void ControlServer::apply_permissions() {
  gid_ = getegid();
  if (!group_.empty()) {
    group* g = getgrnam(group_.c_str());
    if (!g) throw std::runtime_error("socket-group: no group named '" + group_ + "'");
    gid_ = g->gr_gid;
  }
  if (chown(path_.c_str(), static_cast<uid_t>(-1), gid_) != 0 || chmod(path_.c_str(), mode_) != 0)
    throw std::runtime_error("control socket " + path_ +
                             ": cannot set its group and mode: " + std::strerror(errno));
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
  apply_permissions();
  log_info("control: listening on " + path_);
  accept();
}

void ControlServer::reconfigure(const HostConfig& cfg) {
  limits_ = cfg.limits;
  if (cfg.socket_mode != mode_ || cfg.socket_group != group_) {
    mode_ = cfg.socket_mode;
    group_ = cfg.socket_group;
    apply_permissions();
  }
}

void ControlServer::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, stream::socket sock) {
    if (!acceptor_.is_open()) return;
    if (!ec) {
      auto s = std::make_shared<ControlSession>(*this, std::move(sock));
      sessions_.insert(s);
      s->start();
    } else if (ec != asio::error::operation_aborted) {
      log_warn("control: accept: " + ec.message());
    }
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
  auto all = sessions_;
  for (auto& s : all) s->close();
  sessions_.clear();
  if (!path_.empty()) ::unlink(path_.c_str());
}

}  // namespace xdpfw::host
