// host_process.hpp: the real xdpfw-host run as a child (log file, readiness,
// signals, stopped when the object goes, also when a test fails) and the
// ways to talk to its control socket: one-shot socat, a socat session, a
// raw client, and a kept-open connection of our own.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/util.hpp"

namespace xdpfw::test {

// One-shot socat session: input written, everything read until the agent
// closes. socat -t: after its input ends socat waits only 0.5 s for the
// rest of the reply by default, less than a big `rule list` may take.
std::string socat(const fs::path& sock, const std::string& input,
                  const std::string& as_user_prefix = "", int* status = nullptr);

// A raw client that connects and then does whatever the test says.
struct RawClient {
  explicit RawClient(const fs::path& sock);
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  // Reads until EOF or the deadline; true when the agent closed the connection.
  bool read_until_closed(std::string& out, int seconds);
  int fd = -1;
  bool connected = false;
};

// A real socat session, command by command.
struct Session {
  explicit Session(const fs::path& sock);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  // Sends one line and reads its reply, up to and including the empty line
  // (waiting up to seconds).
  std::string command(const std::string& line, int seconds = 20);
  bool ended();
  pid_t pid;
  int to = -1, from = -1, status = 0;
};

// One control connection of our own, kept open: a request (its lines, each
// ending in \n), then its reply up to the empty line that ends every reply
// (returned with one \n). Throws when the agent closes the connection.
class ControlConnection {
 public:
  explicit ControlConnection(const fs::path& sock);
  ~ControlConnection();
  ControlConnection(const ControlConnection&) = delete;
  ControlConnection& operator=(const ControlConnection&) = delete;
  std::string ask(const std::string& request);
  // The reply as JSON; an ERR reply throws.
  nlohmann::json ask_json(const std::string& request);
  // Every request sent by a thread of its own, one write each, while this
  // one reads the replies in order: on_sent(i) just before request i is
  // written, on_reply(i, reply) as its reply arrives (both on their thread).
  void pipeline(const std::vector<std::string>& requests,
                const std::function<void(size_t)>& on_sent,
                const std::function<void(size_t, const std::string&)>& on_reply);

 private:
  int fd_ = -1;
  std::string buf_;
};

// Forks and runs args (args[0] looked up in PATH) with stdout and stderr in
// log; the child gets deathsig if this process dies first.
pid_t spawn_logged(std::vector<std::string> args, const fs::path& log, int deathsig);

// The real xdpfw-host (XDPFW_HOST_BIN), started with args; its stdout and
// stderr go to a log file in DIR.
class HostProcess {
 public:
  struct Options {
    // Wait until it is ready (or has exited); std::runtime_error with its
    // log when neither happens in 20 s.
    bool wait_ready = true;
    // e.g. {"ip", "netns", "exec", NAME} to run it in a namespace.
    std::vector<std::string> prefix = {};
    // Ready means its log says " ready, "; with ready_socket set, that this
    // socket exists (an agent that logs only warnings says nothing when ready).
    fs::path ready_socket = {};
    // Sent to it if this process dies first.
    int deathsig = SIGTERM;
  };
  HostProcess(const TempDir& dir, std::vector<std::string> args, bool wait_ready = true,
              const std::vector<std::string>& prefix = {});
  HostProcess(const TempDir& dir, std::vector<std::string> args, const Options& o);
  // SIGTERM, then SIGKILL after 10 s.
  ~HostProcess();
  HostProcess(const HostProcess&) = delete;
  HostProcess& operator=(const HostProcess&) = delete;
  bool exited();
  // Exit code, waiting up to 20 s; -1 if still running or killed by a signal.
  int exit_code();
  void signal(int sig);
  std::string log() const;
  // The host's own pid (ip netns exec and setpriv exec it).
  pid_t pid() const { return pid_; }

 private:
  void stop();
  fs::path log_;
  pid_t pid_ = -1;
  int status_ = 0;
  bool done_ = false;
};

}  // namespace xdpfw::test
