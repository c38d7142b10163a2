// metrics_server.hpp: the HTTP listener of [host] metrics-listen. It serves
// GET /metrics (HTTP/1.1, Boost.Beast) on the host's loop with what a
// collector returns; every other path is 404, every other method 405. Small
// requests only, a read timeout, a cap on connections: no client can stall
// the loop or grow memory beyond a bounded amount. What the metrics are is
// the collector's business (the host runs its "show metrics" commands).
#pragma once

#include <utility>  // before Asio (Boost 1.74 + g++ 12)

#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "host_config.hpp"

namespace xdpfw::host {

struct MetricsLimits {
  size_t max_header = 8 * 1024;            // request line and headers; over: 431, closed
  size_t max_body = 8 * 1024;              // a request body (none is needed); over: 413, closed
  std::chrono::seconds read_timeout{10};   // a whole request, also the idle time between them
  std::chrono::seconds write_timeout{60};  // a whole reply
  size_t max_connections = 64;             // more: closed as soon as accepted
};

// The text of a scrape, or ok = false (then a 500 with the text as reason).
struct Scrape {
  bool ok = true;
  std::string text;
};
using Collector = std::function<Scrape()>;

class MetricsServer {
 public:
  MetricsServer(boost::asio::io_context& io, Collector collect, MetricsLimits limits = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // A listening socket for addr, not accepting yet. Throws std::runtime_error
  // ("FILE:LINE: metrics-listen: cannot listen on ...: reason").
  using Listener = std::shared_ptr<boost::asio::ip::tcp::acceptor>;
  Listener listen(const ListenAddress& addr);
  // The listener a reload needs, opened before anything is applied: null
  // when nothing changes or the listener goes (next empty), or when next
  // has the running listener's port and a bind conflicts with it (then
  // serve() moves it, see there). Throws as listen() does.
  struct Prepared {
    std::optional<ListenAddress> next;
    Listener listener;  // null: to be bound by serve() (or none wanted)
  };
  Prepared prepare(const std::optional<ListenAddress>& next);
  // Serves on p: the old listener is closed (open connections are served
  // on). When p's listener is still to be bound (same port, conflicting
  // with the running one), the old one is closed first and bound again if
  // the new bind fails; then this throws and the old one serves on.
  void serve(Prepared p);
  // Closes the listener and every connection.
  void stop();

  const std::optional<ListenAddress>& address() const { return address_; }
  // The listener's own series (Prometheus text): connections open,
  // refused over the cap, requests answered by status code.
  std::string own_metrics() const;

  struct Shared;

 private:
  void accept();

  boost::asio::io_context& io_;
  std::shared_ptr<Shared> shared_;  // with the connections, which may outlive a listener
  std::optional<ListenAddress> address_;
  Listener acceptor_;
  boost::asio::steady_timer backoff_;
  std::chrono::steady_clock::time_point warned_{};
};

}  // namespace xdpfw::host
