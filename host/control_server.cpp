// control_server.cpp: socket creation, the accept loop, the sessions' budget.
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
#include <tuple>

#include "log.hpp"

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

namespace xdpfw::host {

ControlServer::ControlServer(asio::io_context& io, Dispatch dispatch)
    : io_(io), dispatch_(std::move(dispatch)), acceptor_(io), accept_pause_(io) {}

void ControlServer::closed(std::shared_ptr<ControlSession> s, uint64_t stream) {
  if (stream) streams_.erase(stream);
  sessions_.erase(s);
}

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

std::string ControlServer::admit(ControlSession& s) {
  const ClientInfo& me = s.info();
  const ControlLimits& l = limits_;
  const size_t all = l.max_clients;
  const size_t ro_slots = all - admin_reserve(all), member_slots = all - root_reserve(all);
  const int level = rank(me);
  // A uid at its cap makes no room for itself: refused (with its level's
  // reason when its level's slots are all taken too).
  std::string over_cap;
  if (level < 2) {
    size_t mine = 0, cap = per_uid_cap(l);
    for (const auto& o : sessions_)
      mine += o.get() != &s && o->admitted() && o->info().uid == me.uid;
    if (mine >= cap)
      over_cap = "too many clients of uid " + std::to_string(me.uid) + " (limit " +
                 std::to_string(cap) + " per uid, max-clients-per-uid)";
  }
  for (;;) {
    size_t total = 0, read_only = 0, below_root = 0;
    for (const auto& o : sessions_) {
      if (o.get() == &s || !o->admitted()) continue;
      int k = rank(o->info());
      ++total;
      read_only += k == 0;
      below_root += k < 2;
    }
    std::string full;
    if (total >= all)
      full = "too many clients (limit " + std::to_string(all) + ")";
    else if (level == 0 && read_only >= ro_slots)
      full = "too many read-only clients (limit " + std::to_string(ro_slots) +
             "; the other slots are kept for administrators)";
    else if (level == 1 && below_root >= member_slots)
      full = "too many clients (limit " + std::to_string(member_slots) +
             " for the socket's group; the other " + std::to_string(all - member_slots) +
             " are kept for root)";
    if (full.empty()) return over_cap;
    if (!over_cap.empty()) return full;
    // Room is made by closing an idle client of this uid, else of the
    // lowest level, the longest idle first; never one above the newcomer.
    auto order = [&](const ControlSession& o) {
      return std::make_tuple(o.info().uid != me.uid, rank(o.info()), o.last_active());
    };
    std::shared_ptr<ControlSession> idlest;
    for (const auto& o : sessions_)
      if (o.get() != &s && o->idle() && rank(o->info()) <= level &&
          (!idlest || order(*o) < order(*idlest)))
        idlest = o;
    if (!idlest) return full;
    auto idle_s = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::steady_clock::now() - idlest->last_active())
                      .count();
    log_warn("control: " + full + ": closed idle client pid " + std::to_string(idlest->pid()) +
             " uid " + std::to_string(idlest->info().uid) + " (idle " + std::to_string(idle_s) +
             " s) to make room for client pid " + std::to_string(me.pid) + " uid " +
             std::to_string(me.uid));
    idlest->evict("closed to make room for a new client: " + full +
                  ", and this connection was the longest idle (" + std::to_string(idle_s) + " s)");
    if (idlest->admitted()) return full;  // (cannot happen: it was idle)
  }
}

size_t ControlServer::turned_away() const {
  size_t n = 0;
  for (const auto& s : sessions_) n += s->turned_away();
  return n;
}

ControlServer::Counts ControlServer::counts() const {
  Counts c;
  for (const auto& s : sessions_)
    if (s->admitted()) ++(s->admin() ? c.admins : c.read_only);
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

void ControlServer::apply_permissions(mode_t mode, gid_t gid, const std::string& at) {
  const std::string& file = at.empty() ? path_ : at;
  if (chown(file.c_str(), static_cast<uid_t>(-1), gid) != 0 || chmod(file.c_str(), mode) != 0)
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
  // The socket is bound, listening and given its group and mode under a
  // name of this process's, then linked to its path: a client that sees
  // the path can connect (no moment between bind and listen where it would
  // be refused), and link() fails if another agent took the path meanwhile.
  // A path too long for a suffix is bound in place.
  std::string at = path_ + "." + std::to_string(getpid());
  if (at.size() >= sizeof(sockaddr_un::sun_path)) at = path_;
  ::unlink(at.c_str());  // a crashed process of the same pid
  gid_t gid = resolve_group(group_);
  boost::system::error_code ec;
  acceptor_.open(stream(), ec);
  mode_t old = umask(0177);  // no window where the socket is open to others
  if (!ec) acceptor_.bind(stream::endpoint(at), ec);
  umask(old);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  std::string why = ec ? ec.message() : "";
  if (why.empty()) {
    try {
      apply_permissions(mode_, gid, at);
    } catch (const std::exception& e) {
      why = e.what();
    }
  }
  if (why.empty() && at != path_ && ::link(at.c_str(), path_.c_str()) != 0) {
    int err = errno;
    if ((err == EPERM || err == EOPNOTSUPP) && ::rename(at.c_str(), path_.c_str()) == 0)
      at = path_;  // a filesystem without hard links: renamed in place instead
    else
      why = err == EEXIST ? "another agent is listening on it; stop it first or use --socket"
                          : std::strerror(err);
  }
  if (at != path_) ::unlink(at.c_str());
  if (!why.empty()) {
    acceptor_.close();
    throw std::runtime_error("control socket " + path_ + ": " + why);
  }
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
      auto s = std::make_shared<ControlSession>(static_cast<SessionOwner&>(*this), std::move(sock));
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
