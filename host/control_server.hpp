// control_server.hpp: the Unix control socket. One session per client on the
// host's loop; limits on line and payload size, clients, idle time and
// unread output, so that no client can stall the others or grow memory
// without bound. What a request means is the dispatcher's business.
#pragma once

#include <utility>  // before Asio (Boost 1.74 + g++ 12)

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
  uid_t uid = 0;
  gid_t gid = 0;
  bool admin = false;  // root, the agent's user, or in the socket's group
};

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
  // Applies new limits (new sessions and existing ones) and socket mode/group.
  void reconfigure(const HostConfig& cfg);
  // 0 queued, 1 dropped (slow reader), -1 no such stream.
  int stream_write(uint64_t id, std::string data);
  void stream_close(uint64_t id);

 private:
  friend class ControlSession;
  void accept();
  void apply_permissions();

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
};

}  // namespace xdpfw::host
