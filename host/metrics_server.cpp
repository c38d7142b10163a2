// metrics_server.cpp: the listener, its connections, the HTTP exchange.
#include "metrics_server.hpp"

#include <array>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <set>
#include <sstream>
#include <stdexcept>

#include "log.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace xdpfw::host {

class HttpConnection;

// What the server and its connections share; a connection keeps it alive,
// so that a closed listener (a reload, the agent stopping) leaves nothing
// dangling behind a handler still queued.
struct MetricsServer::Shared {
  Collector collect;
  MetricsLimits limits;
  std::set<HttpConnection*> connections;
  uint64_t refused = 0;
  std::map<unsigned, uint64_t> answered;  // by status code
};

namespace {
constexpr const char* content_type = "text/plain; version=0.0.4; charset=utf-8";
constexpr size_t linger_limit = 64 * 1024;  // read and discarded after an error reply
constexpr std::chrono::seconds linger_time{2};

// listen()'s error, with the code prepare() looks at.
struct ListenError : std::runtime_error {
  ListenError(const std::string& what, boost::system::error_code ec)
      : std::runtime_error(what), code(ec) {}
  boost::system::error_code code;
};
}  // namespace

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(std::shared_ptr<MetricsServer::Shared> shared, tcp::socket sock)
      : shared_(std::move(shared)),
        stream_(std::move(sock)),
        buffer_(shared_->limits.max_header + shared_->limits.max_body + 1024) {
    shared_->connections.insert(this);
  }
  ~HttpConnection() { shared_->connections.erase(this); }

  void start() { read(); }

  void close() {
    closed_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();  // pending operations end with operation_aborted
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_->limits.max_header));
    parser_->body_limit(shared_->limits.max_body);
    stream_.expires_after(shared_->limits.read_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (closed_) return;
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
      return fail(
          http::status::request_header_fields_too_large,
          "request line and headers over " + std::to_string(shared_->limits.max_header) + " bytes");
    if (ec == http::error::body_limit)
      return fail(http::status::payload_too_large,
                  "request body over " + std::to_string(shared_->limits.max_body) + " bytes");
    if (ec && ec.category() == http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message)
      return fail(http::status::bad_request, "malformed request: " + ec.message());
    if (ec) {  // the client went, or the read timed out: nothing to say
      if (ec == beast::error::timeout) log_debug("metrics: a client sent no request in time");
      close();
      return;
    }
    respond(parser_->get());
  }

  void respond(const http::request<http::string_body>& req) {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(req.version());
    res->keep_alive(req.keep_alive());
    res->set(http::field::server, "xdpfw-host");
    std::string_view target(req.target().data(), req.target().size());
    std::string_view path = target.substr(0, target.find('?'));
    bool head = req.method() == http::verb::head;
    if (path != "/metrics") {
      res->result(http::status::not_found);
      res->set(http::field::content_type, "text/plain; charset=utf-8");
      res->body() = "not found: the metrics are at /metrics\n";
    } else if (req.method() != http::verb::get && !head) {
      res->result(http::status::method_not_allowed);
      res->set(http::field::allow, "GET, HEAD");
      res->set(http::field::content_type, "text/plain; charset=utf-8");
      res->body() = "method not allowed: GET or HEAD /metrics\n";
    } else {
      Scrape s;
      try {
        s = shared_->collect();
      } catch (const std::exception& e) {
        s = Scrape{false, e.what()};
      }
      if (s.ok) {
        res->result(http::status::ok);
        res->set(http::field::content_type, content_type);
      } else {
        log_warn("metrics: scrape failed: " + s.text);
        res->result(http::status::internal_server_error);
        res->set(http::field::content_type, "text/plain; charset=utf-8");
        s.text = "scrape failed: " + s.text + "\n";
      }
      res->body() = std::move(s.text);
    }
    res->prepare_payload();
    if (head) res->body().clear();  // Content-Length stays the GET's
    send(res);
  }

  // An error the connection does not survive: said, then closed.
  void fail(http::status status, const std::string& why) {
    log_debug("metrics: " + std::to_string(static_cast<unsigned>(status)) + ": " + why);
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    res->set(http::field::server, "xdpfw-host");
    res->set(http::field::content_type, "text/plain; charset=utf-8");
    res->keep_alive(false);
    res->body() = why + "\n";
    res->prepare_payload();
    send(res);
  }

  void send(const std::shared_ptr<http::response<http::string_body>>& res) {
    ++shared_->answered[res->result_int()];
    stream_.expires_after(shared_->limits.write_timeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        if (self->closed_) return;
                        if (ec) return self->close();
                        if (res->need_eof()) return self->linger();
                        self->read();
                      });
  }

  // The reply is out; the client may still be sending (the rest of an
  // oversized request). Closing with unread input would reset the
  // connection and could destroy the reply before the client reads it:
  // our side is shut, what still comes is read and dropped, a bounded
  // amount for a bounded time, then the socket is closed.
  void linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(linger_time);
    drain();
  }
  void drain() {
    stream_.async_read_some(asio::buffer(scratch_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (self->closed_) return;
                              self->drained_ += n;
                              if (ec || self->drained_ > linger_limit) return self->close();
                              self->drain();
                            });
  }

  std::shared_ptr<MetricsServer::Shared> shared_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::array<char, 4096> scratch_;
  size_t drained_ = 0;
  bool closed_ = false;
};

MetricsServer::MetricsServer(asio::io_context& io, Collector collect, MetricsLimits limits)
    : io_(io), shared_(std::make_shared<Shared>()), backoff_(io) {
  shared_->collect = std::move(collect);
  shared_->limits = limits;
}

MetricsServer::~MetricsServer() {
  stop();
}

MetricsServer::Listener MetricsServer::listen(const ListenAddress& addr) {
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(addr.address, ec);
  auto acc = std::make_shared<tcp::acceptor>(io_);
  tcp::endpoint ep(ip, addr.port);
  if (!ec) acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && ip.is_v6()) acc->set_option(asio::ip::v6_only(true), ec);  // [::] is IPv6 only
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (!ec) acc->non_blocking(true, ec);
  if (ec) {
    std::string hint;
    if (ec == asio::error::address_family_not_supported)
      hint =
          " (under systemd the unit must allow AF_INET and AF_INET6 in "
          "RestrictAddressFamilies: docs/CONTROL.md)";
    throw ListenError(
        addr.where + "metrics-listen: cannot listen on " + addr.text() + ": " + ec.message() + hint,
        ec);
  }
  return acc;
}

MetricsServer::Prepared MetricsServer::prepare(const std::optional<ListenAddress>& next) {
  Prepared p{next, nullptr};
  if (!next || (address_ && *next == *address_ && acceptor_)) return p;
  try {
    p.listener = listen(*next);
  } catch (const ListenError& e) {
    // Our own listener may hold the port ([::]:9477 after 127.0.0.1:9477):
    // serve() moves it once the reload is otherwise checked.
    if (!(e.code == asio::error::address_in_use && address_ && acceptor_ &&
          address_->port == next->port))
      throw;
  }
  return p;
}

void MetricsServer::serve(Prepared p) {
  if (p.next && address_ && *p.next == *address_ && acceptor_) {
    address_ = p.next;  // the same address (its FILE:LINE may have moved)
    return;
  }
  boost::system::error_code ec;
  if (p.next && !p.listener) {  // our own listener holds the port: moved
    Listener old = acceptor_;
    acceptor_.reset();
    if (old) old->close(ec);
    try {
      p.listener = listen(*p.next);
    } catch (const ListenError&) {
      try {
        acceptor_ = listen(*address_);
        accept();
      } catch (const std::exception& again) {
        log_error(std::string("metrics: the listener is lost: ") + again.what());
        address_.reset();
      }
      throw;
    }
  }
  if (acceptor_) acceptor_->close(ec);
  backoff_.cancel();
  acceptor_ = p.listener;
  address_ = p.next;
  if (acceptor_) {
    log_info("metrics: serving GET /metrics on http://" + address_->text() + "/metrics");
    accept();
  } else {
    log_info("metrics: no HTTP listener");
  }
}

void MetricsServer::stop() {
  boost::system::error_code ec;
  if (acceptor_) acceptor_->close(ec);
  acceptor_.reset();
  backoff_.cancel();
  auto open = shared_->connections;  // a connection leaves the set when it goes
  for (HttpConnection* c : open) c->close();
}

void MetricsServer::accept() {
  Listener acc = acceptor_;
  acc->async_accept([this, acc](boost::system::error_code ec, tcp::socket sock) {
    // (Checked in this order: after stop() or the server's end, acc is
    // closed and nothing of the server is touched.)
    if (ec == asio::error::operation_aborted || !acc->is_open() || acc != acceptor_) return;
    // Every connection already waiting is taken (up to 64 per turn).
    for (int taken = 0; !ec; ++taken) {
      if (shared_->connections.size() >= shared_->limits.max_connections) {
        ++shared_->refused;
        boost::system::error_code ignored;
        sock.close(ignored);
        auto now = std::chrono::steady_clock::now();
        if (now - warned_ > std::chrono::minutes(1)) {
          warned_ = now;
          log_warn("metrics: " + std::to_string(shared_->limits.max_connections) +
                   " connections open (the limit): closing new ones");
        }
      } else {
        std::make_shared<HttpConnection>(shared_, std::move(sock))->start();
      }
      if (taken == 64) break;
      sock = tcp::socket(io_);
      acc->accept(sock, ec);  // non-blocking: would_block when none is left
    }
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
      // Out of descriptors or memory: the connection stays queued; try
      // again a little later instead of spinning on a readable listener.
      log_debug("metrics: accept: " + ec.message());
      backoff_.expires_after(std::chrono::milliseconds(100));
      backoff_.async_wait([this, acc](boost::system::error_code e) {
        if (!e && acc == acceptor_) accept();
      });
      return;
    }
    accept();
  });
}

std::string MetricsServer::own_metrics() const {
  std::ostringstream o;
  o << "# HELP xdpfw_host_http_connections Open connections to the metrics listener.\n"
       "# TYPE xdpfw_host_http_connections gauge\n"
       "xdpfw_host_http_connections "
    << shared_->connections.size()
    << "\n# HELP xdpfw_host_http_connections_refused_total Connections to the metrics listener "
       "closed at once: the connection limit was reached.\n"
       "# TYPE xdpfw_host_http_connections_refused_total counter\n"
       "xdpfw_host_http_connections_refused_total "
    << shared_->refused
    << "\n# HELP xdpfw_host_http_responses_total Responses of the metrics listener by status "
       "code.\n# TYPE xdpfw_host_http_responses_total counter\n";
  std::map<unsigned, uint64_t> codes = shared_->answered;
  codes.emplace(200, 0);  // the family is never empty
  for (const auto& [code, n] : codes)
    o << "xdpfw_host_http_responses_total{code=\"" << code << "\"} " << n << "\n";
  return o.str();
}

}  // namespace xdpfw::host
