// host_process.hpp: runs the real xdpfw-host in a private temporary folder
// and drives it with real socat. Everything is removed and every process
// stopped when the objects go, also when a test fails.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include "common/test_util.hpp"

namespace xdpfw::test {

// One-shot socat session: input written, everything read until the agent
// closes. socat -t: after its input ends socat waits only 0.5 s for the
// rest of the reply by default, less than a big `rule list` may take.
inline std::string socat(const fs::path& sock, const std::string& input,
                         const std::string& as_user_prefix = "", int* status = nullptr) {
  static int n = 0;
  fs::path in =
      fs::path("/tmp") / ("xdpfw-socat-in-" + std::to_string(getpid()) + "-" + std::to_string(n++));
  write_file(in, input);
  chmod(in.c_str(), 0644);
  std::string out = shell(as_user_prefix + "timeout 30 socat -t 30 - UNIX-CONNECT:" + quote(sock) +
                              " < " + quote(in) + " 2>&1",
                          status);
  fs::remove(in);
  return out;
}

// A raw client that connects and then does whatever the test says.
struct RawClient {
  explicit RawClient(const fs::path& sock) {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
    connected = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawClient() { close(fd); }
  // Reads until EOF or the deadline; true when the agent closed the connection.
  bool read_until_closed(std::string& out, int seconds) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    char buf[4096];
    while (std::chrono::steady_clock::now() < end) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n == 0) return true;
      if (n > 0)
        out.append(buf, static_cast<size_t>(n));
      else if (errno != EAGAIN)
        return true;
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  int fd = -1;
  bool connected = false;
};

// A real socat session, command by command.
struct Session {
  explicit Session(const fs::path& sock) {
    int in[2], out[2];
    BOOST_TEST_REQUIRE(pipe(in) == 0);
    BOOST_TEST_REQUIRE(pipe(out) == 0);
    pid = fork();
    if (pid == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[1]);
      close(out[0]);
      execlp("socat", "socat", "-", ("UNIX-CONNECT:" + sock.string()).c_str(), nullptr);
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to = in[1];
    from = out[0];
    fcntl(from, F_SETFL, O_NONBLOCK);
  }
  ~Session() {
    close(to);
    close(from);
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  // Sends one line and reads its reply, up to and including the empty line
  // (waiting up to seconds).
  std::string command(const std::string& line, int seconds = 20) {
    std::string s = line + "\n";
    BOOST_TEST_REQUIRE(write(to, s.data(), s.size()) == ssize_t(s.size()));
    std::string reply;
    wait_until(
        [&] {
          char buf[4096];
          ssize_t n;
          while ((n = read(from, buf, sizeof buf)) > 0) reply.append(buf, size_t(n));
          return reply.ends_with("\n\n") || n == 0;
        },
        seconds);
    return reply;
  }
  bool ended() {
    return wait_until([&] { return waitpid(pid, &status, WNOHANG) == pid; });
  }
  pid_t pid;
  int to = -1, from = -1, status = 0;
};

// Forks and runs args (args[0] looked up in PATH) with stdout and stderr in
// log; the child gets deathsig if the test process dies first.
inline pid_t spawn_logged(std::vector<std::string> args, const fs::path& log, int deathsig) {
  pid_t pid = fork();
  BOOST_TEST_REQUIRE(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, deathsig);  // never outlive a killed test
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    dup2(fd, 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// The real xdpfw-host, started with args; stderr goes to a log file.
class HostProcess {
 public:
  // prefix: e.g. {"ip", "netns", "exec", NAME} to run it in a namespace.
  HostProcess(const TempDir& dir, std::vector<std::string> args, bool wait_ready = true,
              const std::vector<std::string>& prefix = {})
      : log_(dir / ("host-" + std::to_string(counter()++) + ".log")) {
    args.insert(args.begin(), XDPFW_HOST_BIN);
    args.insert(args.begin(), prefix.begin(), prefix.end());
    pid_ = spawn_logged(std::move(args), log_, SIGTERM);
    if (wait_ready)
      BOOST_TEST_REQUIRE(
          wait_until([&] { return log().find(" ready, ") != std::string::npos || exited(); }),
          "xdpfw-host did not become ready:\n"
              << log());
  }
  ~HostProcess() {
    if (pid_ > 0 && !exited()) {
      kill(pid_, SIGTERM);
      if (!wait_until([&] { return exited(); }, 10)) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status_, 0);
      }
    }
  }
  bool exited() {
    if (done_) return true;
    if (waitpid(pid_, &status_, WNOHANG) == pid_) done_ = true;
    return done_;
  }
  // Exit code, waiting up to 20 s; -1 if still running or killed by a signal.
  int exit_code() {
    wait_until([&] { return exited(); });
    return done_ && WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
  }
  void signal(int sig) { kill(pid_, sig); }
  std::string log() const { return read_file(log_); }
  pid_t pid() const { return pid_; }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  fs::path log_;
  pid_t pid_ = -1;
  int status_ = 0;
  bool done_ = false;
};

}  // namespace xdpfw::test
