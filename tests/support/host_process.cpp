#include "support/host_process.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace xdpfw::test {

std::string socat(const fs::path& sock, const std::string& input, const std::string& as_user_prefix,
                  int* status) {
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

namespace {
int connect_unix(const fs::path& sock) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
  int err = errno;
  if (fd >= 0) close(fd);
  errno = err;
  return -1;
}
}  // namespace

RawClient::RawClient(const fs::path& sock) {
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
  connected = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

RawClient::~RawClient() {
  close(fd);
}

bool RawClient::read_until_closed(std::string& out, int seconds) {
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

Session::Session(const fs::path& sock) {
  int in[2], out[2];
  if (pipe(in) != 0) throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
  if (pipe(out) != 0) {
    close(in[0]);
    close(in[1]);
    throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
  }
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
  if (pid < 0) {
    close(to);
    close(from);
    throw std::runtime_error("fork: " + std::string(std::strerror(errno)));
  }
  fcntl(from, F_SETFL, O_NONBLOCK);
}

Session::~Session() {
  close(to);
  close(from);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

std::string Session::command(const std::string& line, int seconds) {
  std::string s = line + "\n";
  if (write(to, s.data(), s.size()) != ssize_t(s.size()))
    throw std::runtime_error("socat session: cannot send '" + line + "'");
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

bool Session::ended() {
  return wait_until([&] { return waitpid(pid, &status, WNOHANG) == pid; });
}

ControlConnection::ControlConnection(const fs::path& sock) : fd_(connect_unix(sock)) {
  if (fd_ < 0) throw std::runtime_error("connect " + sock.string() + ": " + std::strerror(errno));
}

ControlConnection::~ControlConnection() {
  close(fd_);
}

std::string ControlConnection::ask(const std::string& request) {
  for (size_t off = 0; off < request.size();) {
    ssize_t n = write(fd_, request.data() + off, request.size() - off);
    if (n <= 0) throw std::runtime_error("control write: " + std::string(std::strerror(errno)));
    off += static_cast<size_t>(n);
  }
  for (;;) {
    size_t end = buf_.find("\n\n");
    if (end == std::string::npos && buf_ == "\n") end = 0;
    if (end != std::string::npos) {
      std::string reply = buf_.substr(0, end + 1);
      buf_.erase(0, end + 2);
      return reply;
    }
    char b[65536];
    ssize_t n = read(fd_, b, sizeof b);
    if (n <= 0) throw std::runtime_error("control read: the agent closed the connection");
    buf_.append(b, static_cast<size_t>(n));
  }
}

void ControlConnection::pipeline(const std::vector<std::string>& requests,
                                 const std::function<void(size_t)>& on_sent,
                                 const std::function<void(size_t, const std::string&)>& on_reply) {
  std::string error;
  std::thread writer([&] {
    for (size_t i = 0; i < requests.size() && error.empty(); ++i) {
      on_sent(i);
      const std::string& r = requests[i];
      for (size_t off = 0; off < r.size();) {
        ssize_t n = write(fd_, r.data() + off, r.size() - off);
        if (n <= 0) {
          error = "control write: " + std::string(std::strerror(errno));
          return;
        }
        off += static_cast<size_t>(n);
      }
    }
  });
  try {
    for (size_t i = 0; i < requests.size(); ++i) on_reply(i, ask(""));
  } catch (...) {
    shutdown(fd_, SHUT_RDWR);  // the writer stops at its next write
    writer.join();
    throw;
  }
  writer.join();
  if (!error.empty()) throw std::runtime_error(error);
}

nlohmann::json ControlConnection::ask_json(const std::string& request) {
  std::string r = ask(request);
  if (r.rfind("ERR", 0) == 0) throw std::runtime_error(request + " -> " + r);
  return nlohmann::json::parse(r);
}

pid_t spawn_logged(std::vector<std::string> args, const fs::path& log, int deathsig) {
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork: " + std::string(std::strerror(errno)));
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

HostProcess::HostProcess(const TempDir& dir, std::vector<std::string> args, bool wait_ready,
                         const std::vector<std::string>& prefix)
    : HostProcess(dir, std::move(args), Options{.wait_ready = wait_ready, .prefix = prefix}) {}

HostProcess::HostProcess(const TempDir& dir, std::vector<std::string> args, const Options& o) {
  static int counter = 0;
  log_ = dir / ("host-" + std::to_string(counter++) + ".log");
  args.insert(args.begin(), XDPFW_HOST_BIN);
  args.insert(args.begin(), o.prefix.begin(), o.prefix.end());
  pid_ = spawn_logged(std::move(args), log_, o.deathsig);
  if (!o.wait_ready) return;
  auto ready = [&] {
    if (!o.ready_socket.empty()) return fs::exists(o.ready_socket);
    return log().find(" ready, ") != std::string::npos;
  };
  if (!wait_until([&] { return ready() || exited(); })) {
    std::string why = "xdpfw-host did not become ready:\n" + log();
    stop();  // the constructor does not finish: no destructor runs
    throw std::runtime_error(why);
  }
}

HostProcess::~HostProcess() {
  stop();
}

void HostProcess::stop() {
  if (pid_ > 0 && !exited()) {
    kill(pid_, SIGTERM);
    if (!wait_until([&] { return exited(); }, 10)) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status_, 0);
    }
    done_ = true;
  }
}

bool HostProcess::exited() {
  if (done_) return true;
  if (waitpid(pid_, &status_, WNOHANG) == pid_) done_ = true;
  return done_;
}

int HostProcess::exit_code() {
  wait_until([&] { return exited(); });
  return done_ && WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
}

void HostProcess::signal(int sig) {
  kill(pid_, sig);
}

std::string HostProcess::log() const {
  return read_file(log_);
}

}  // namespace xdpfw::test
