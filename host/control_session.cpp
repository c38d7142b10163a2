// control_session.cpp: see control_session.hpp.
#include "control_session.hpp"

#include <malloc.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "log.hpp"

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

namespace xdpfw::host {

ControlSession::ControlSession(SessionOwner& owner, stream::socket sock)
    : owner_(owner),
      sock_(std::move(sock)),
      idle_(owner.io()),
      parser_(owner.limits().max_line, owner.limits().max_payload) {}

void ControlSession::start() {
  info_ = identify_peer(sock_.native_handle(), owner_.socket_gid());
  log_info("control: client pid " + std::to_string(info_.pid) + " uid " +
           std::to_string(info_.uid) + " gid " + std::to_string(info_.gid) +
           (info_.admin ? " connected" : " connected read-only"));
  const ControlLimits& l = owner_.limits();
  if (!info_.admin) parser_.set_limits(l.max_line, l.max_payload / 4);
  std::string refusal = owner_.admit(*this);
  if (!refusal.empty()) {
    log_warn("control: refusing client pid " + std::to_string(info_.pid) + " uid " +
             std::to_string(info_.uid) + ": " + refusal);
    turn_away("ERR: " + refusal + "; try again later\n\n", owner_.turned_away() < max_turned_away);
    if (state_ == State::draining) read();
    return;
  }
  admitted_ = true;
  arm_idle();
  read();
}

bool ControlSession::idle() const {
  return admitted() && state_ == State::reading && !input_done_ && requests_.empty() &&
         out_.empty() && parser_.buffered() == 0 && !broken_;
}

void ControlSession::evict(const std::string& why) {
  if (!idle()) return;
  turn_away("ERR: " + why + "; connection closed\n\n", owner_.turned_away() < max_turned_away);
  // (An idle client's socket is being read: a draining one goes on so.)
}

void ControlSession::turn_away(std::string text, bool lingering) {
  admitted_ = false;
  idle_.cancel();
  requests_.clear();
  queued_in_ = 0;
  if (lingering) {
    state_ = State::draining;
    drained_ = 0;
  }
  send(std::move(text));
  if (state_ == State::closed) return;
  if (!lingering) {
    state_ = State::closing;
    maybe_close();
    return;
  }
  idle_.expires_after(turned_away_linger);
  idle_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->close();
  });
}

int ControlSession::stream_write(std::string data) {
  if (state_ != State::streaming) return -1;
  if (queued_ + data.size() > stream_backlog) return 1;
  send(std::move(data));
  return state_ == State::closed ? -1 : 0;
}

void ControlSession::close() {
  if (state_ == State::closed) return;
  state_ = State::closed;
  boost::system::error_code ec;
  idle_.cancel();
  sock_.shutdown(stream::socket::shutdown_both, ec);
  sock_.close(ec);
  // Unread replies go now (those being written stay until their handler
  // has run), and no more of its input will run.
  if (out_.size() > writing_)
    out_.erase(out_.begin() + static_cast<ptrdiff_t>(writing_), out_.end());
  unwritten_ = 0;
  queued_ = 0;
  parser_ = RequestParser(0, 0);
  requests_.clear();
  queued_in_ = 0;
  recharge();
  owner_.closed(shared_from_this(), stream_);
}

size_t ControlSession::max_output() const {
  return info_.admin ? owner_.limits().max_output : owner_.limits().max_output / 4;
}

void ControlSession::recharge() {
  size_t now = state_ == State::closed ? 0 : queued_ + queued_in_ + parser_.buffered();
  ptrdiff_t delta = static_cast<ptrdiff_t>(now) - static_cast<ptrdiff_t>(held_);
  held_ = now;
  if (delta) owner_.charge(delta);
}

void ControlSession::arm_idle() {
  if (state_ == State::streaming) return;
  idle_.expires_after(std::chrono::seconds(owner_.limits().idle_timeout_s));
  idle_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->state_ == State::closed) return;
    std::string idle = "idle for " + std::to_string(self->owner_.limits().idle_timeout_s) + " s";
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

void ControlSession::read() {
  sock_.async_read_some(asio::buffer(rbuf_),
                        [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                          self->on_read(ec, n);
                        });
}

void ControlSession::on_read(boost::system::error_code ec, size_t n) {
  if (state_ == State::closed) return;
  if (state_ == State::draining && !ec) {
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
    if (state_ == State::streaming) {
      // A watcher that only closed its sending side keeps watching;
      // a reset or full close ends the stream.
      if (ec == asio::error::eof) return;
      close();
      return;
    }
    if (state_ != State::draining)
      if (auto last = parser_.finish()) queue(std::move(*last));
    input_done_ = true;
    run_queued();
    return;
  }
  if (state_ == State::streaming) {  // anything a watcher sends ends its stream
    close();
    return;
  }
  arm_idle();
  last_active_ = std::chrono::steady_clock::now();
  std::vector<Request> reqs;
  broken_ = parser_.feed(std::string_view(rbuf_.data(), n), reqs);
  for (Request& r : reqs) queue(std::move(r));
  recharge();
  if (state_ != State::closed) run_queued();  // (closed: shed for the budget)
}

void ControlSession::queue(Request r) {
  queued_in_ += r.line.size() + (r.payload ? r.payload->size() : 0);
  requests_.push_back(std::move(r));
}

void ControlSession::run_queued() {
  if (state_ == State::closed) return;
  if (!requests_.empty() && runs_requests()) {
    Request r = std::move(requests_.front());
    requests_.pop_front();
    queued_in_ -= r.line.size() + (r.payload ? r.payload->size() : 0);
    gathering_ = !requests_.empty();
    handle(r);
    gathering_ = false;
    if (r.payload && r.payload->size() >= (1u << 20)) {  // 100,000 rules: give them back
      r = Request{};
      malloc_trim(0);
    }
    recharge();
    if (state_ == State::closed) return;  // closed for not reading: nothing more runs
    if (!requests_.empty() && runs_requests()) {
      asio::post(owner_.io(), [self = shared_from_this()] { self->run_queued(); });
      return;
    }
  }
  requests_.clear();
  queued_in_ = 0;
  flush();
  if (broken_) {
    log_warn("control: client pid " + std::to_string(info_.pid) + ": " + *broken_ + ": closed");
    send("ERR: " + *broken_ + "; connection closed\n\n");
    broken_.reset();
    if (state_ != State::closed) state_ = State::draining;
  }
  if (state_ == State::closing || input_done_) {
    maybe_close();
    return;
  }
  if (state_ != State::closed) read();
}

void ControlSession::handle(const Request& r) {
  if (state_ == State::streaming) return;
  if (r.error) {
    send("ERR: " + *r.error + "\n\n");
    return;
  }
  Reply reply = owner_.dispatch(r, info_);
  const ControlLimits& l = owner_.limits();
  size_t watcher_slots = l.max_clients - admin_reserve(l.max_clients);
  if (reply.stream && owner_.watchers() >= watcher_slots) {
    // The plugin's next write to this stream fails and forgets it.
    send("ERR: too many live watchers (limit " + std::to_string(watcher_slots) +
         "; the other slots are kept for administrators); try again later\n\n");
    return;
  }
  send(std::move(reply.text));
  if (state_ == State::closed) return;
  if (reply.close) state_ = State::closing;
  if (reply.stream) {
    state_ = State::streaming;
    stream_ = reply.stream;
    owner_.stream_opened(stream_, shared_from_this());
    idle_.cancel();  // watchers may be quiet for as long as they like
  }
}

void ControlSession::send(std::string text) {
  if (state_ == State::closed) return;
  queued_ += text.size();
  if (queued_ > max_output()) {
    log_warn("control: client pid " + std::to_string(info_.pid) + " does not read its replies (" +
             std::to_string(queued_) + " bytes unread): closed");
    close();
    return;
  }
  unwritten_ += text.size();
  // Small replies not yet written join the last one: one buffer per write.
  if (out_.size() > writing_ && out_.back().size() + text.size() <= reply_batch)
    out_.back() += text;
  else
    out_.push_back(std::move(text));
  recharge();
  if (state_ == State::closed) return;  // shed for the budget
  if (!gathering_ || unwritten_ >= reply_batch) flush();
}

void ControlSession::flush() {
  if (!writing_ && unwritten_) write();
}

void ControlSession::write() {
  std::vector<asio::const_buffer> bufs;
  for (const std::string& s : out_) bufs.push_back(asio::buffer(s));
  writing_ = out_.size();
  unwritten_ = 0;
  asio::async_write(sock_, bufs,
                    [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                      if (self->state_ == State::closed) return;
                      if (ec) {
                        self->close();
                        return;
                      }
                      self->queued_ -= n;
                      self->last_active_ = std::chrono::steady_clock::now();
                      self->recharge();
                      bool big = false;
                      for (; self->writing_; --self->writing_) {
                        big |= self->out_.front().size() >= (1u << 20);
                        self->out_.pop_front();
                      }
                      // A reply of megabytes (rule list of 100,000 rules)
                      // leaves its buffers free in the heap: give them back.
                      if (big) malloc_trim(0);
                      if (!self->out_.empty()) {
                        self->write();
                      } else if (self->state_ == State::draining) {
                        boost::system::error_code ignored;
                        self->sock_.shutdown(stream::socket::shutdown_send, ignored);
                        if (self->input_done_) self->close();  // its input had ended already
                      } else {
                        self->maybe_close();
                      }
                    });
}

void ControlSession::maybe_close() {
  if ((state_ == State::closing || input_done_) && out_.empty()) close();
}

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
  info.root = cred.uid == 0 || cred.uid == geteuid();
  info.admin = info.root || in_group;
  return info;
}

}  // namespace xdpfw::host
