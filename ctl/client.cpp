// client.cpp: xdpfw-ctl's side of the control socket (client.hpp).
#include "client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

namespace xdpfw::ctl {

namespace {

// A connected socket, or -1 with errno set.
int open_agent(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(a.sun_path, path.c_str(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int connect_agent(const std::string& path) {
  int fd = open_agent(path);
  if (fd >= 0) return fd;
  int e = errno;
  if (e == ENAMETOOLONG) {
    std::fprintf(stderr, "xdpfw-ctl: socket path too long: %s\n", path.c_str());
    std::exit(2);
  }
  if (e == ENOENT || e == ECONNREFUSED)
    std::fprintf(stderr,
                 "xdpfw-ctl: no agent listening on %s (is xdpfw-host running? --socket "
                 "or XDPFW_SOCKET name another socket)\n",
                 path.c_str());
  else if (e == EACCES || e == EPERM)
    std::fprintf(stderr,
                 "xdpfw-ctl: not allowed to use %s (%s): run as root or as a member "
                 "of the socket's group\n",
                 path.c_str(), std::strerror(e));
  else
    std::fprintf(stderr, "xdpfw-ctl: cannot connect to %s: %s\n", path.c_str(), std::strerror(e));
  std::exit(3);
}

void send_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::fprintf(stderr, "xdpfw-ctl: the agent went away: it closed the connection\n");
      std::exit(3);
    }
    off += size_t(n);
  }
}

}  // namespace

// An empty line between replies when there are several.
int request(const std::string& sock, const std::vector<std::string>& requests, size_t quiet,
            std::vector<std::string>* kept) {
  int fd = connect_agent(sock);
  std::string text;
  for (const std::string& r : requests) text += r + "\n";
  send_all(fd, text);
  shutdown(fd, SHUT_WR);
  std::string in;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // an error (a reset) ends the answer as EOF does
    in.append(buf, size_t(n));
  }
  close(fd);
  // Every reply ends with an empty line and holds none of its own.
  std::vector<std::string> replies;
  std::string current;
  size_t pos = 0, nl;
  while ((nl = in.find('\n', pos)) != std::string::npos) {
    if (nl == pos) {
      replies.push_back(current);
      current.clear();
    } else {
      current.append(in, pos, nl + 1 - pos);
    }
    pos = nl + 1;
  }
  current.append(in, pos);
  int rc = 0;
  bool printed = false;
  for (size_t i = 0; i < replies.size(); ++i) {
    const std::string& reply = replies[i];
    if (i + quiet >= requests.size() && kept) {
      kept->push_back(reply);
      continue;
    }
    if (reply.rfind("ERR", 0) == 0) {
      std::fprintf(stderr, "xdpfw-ctl: %s",
                   reply.substr(reply.rfind("ERR: ", 0) == 0 ? 5 : 0).c_str());
      rc = 1;
    } else {
      if (printed) std::fputs("\n", stdout);
      std::fputs(reply.c_str(), stdout);
      printed = true;
    }
  }
  if (!current.empty() || replies.size() < requests.size()) {
    // An ERR and then the close: the agent said why it closed (a refused
    // client, a limit), it did not go away.
    if (current.empty() && !replies.empty() && replies.back().rfind("ERR", 0) == 0) return 1;
    if (!current.empty()) std::fputs(current.c_str(), stdout);
    std::fflush(stdout);
    std::fprintf(stderr,
                 "xdpfw-ctl: the agent went away: it closed the connection after %zu of %zu "
                 "%s%s\n",
                 replies.size(), requests.size(), requests.size() == 1 ? "reply" : "replies",
                 current.empty() ? "" : " and part of the next");
    return 3;
  }
  return rc;
}

std::string with_file(const std::string& command, const std::string& file) {
  std::ifstream in(file);
  if (!in) throw UsageError("cannot read " + file + ": " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!text.empty() && text.back() != '\n') text.push_back('\n');
  std::string tag = "XDPFW_END";
  for (int i = 0; text.find(tag + "\n") != std::string::npos; ++i)
    tag = "XDPFW_END_" + std::to_string(i);
  return command + " <<" + tag + "\n" + text + tag;
}

namespace {
volatile sig_atomic_t g_stop = 0;
int g_wake[2] = {-1, -1};  // the signal handler writes here: poll wakes up
}  // namespace

int monitor(const std::string& sock, const std::string& append) {
  std::ofstream out;
  if (!append.empty()) {
    out.open(append, std::ios::app);
    if (!out) {
      std::fprintf(stderr, "xdpfw-ctl: cannot append to %s: %s\n", append.c_str(),
                   std::strerror(errno));
      return 1;
    }
  }
  if (pipe2(g_wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::fprintf(stderr, "xdpfw-ctl: pipe: %s\n", std::strerror(errno));
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = [](int) {
    int e = errno;
    g_stop = 1;
    [[maybe_unused]] ssize_t n = write(g_wake[1], "x", 1);
    errno = e;
  };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  int fd = connect_agent(sock);
  send_all(fd, "show events\n");  // the write side stays open: that keeps the stream
  std::string pending;
  char buf[65536];
  bool first = true;
  while (!g_stop) {
    pollfd p[2] = {{fd, POLLIN, 0}, {g_wake[0], POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "xdpfw-ctl: poll: %s\n", std::strerror(errno));
      return 1;
    }
    if (g_stop) break;
    if (!p[0].revents) continue;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the agent closed the stream (or reset it)
    pending.append(buf, size_t(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (first && line.rfind("ERR", 0) == 0) {
        std::fprintf(stderr, "xdpfw-ctl: %s\n",
                     line.substr(line.rfind("ERR: ", 0) == 0 ? 5 : 0).c_str());
        return 1;
      }
      first = false;
      if (line.empty()) continue;
      if (out.is_open())
        out << line << "\n" << std::flush;
      else
        std::printf("%s\n", line.c_str()), std::fflush(stdout);
    }
  }
  close(fd);
  if (g_stop) return 0;  // Ctrl-C or SIGTERM: the way to end it
  std::fprintf(stderr, "xdpfw-ctl: the agent went away: the event stream from %s ended\n",
               sock.c_str());
  return 3;
}

std::optional<std::string> ask(const std::string& sock, const std::string& line) {
  int fd = open_agent(sock);
  if (fd < 0) return std::nullopt;
  timeval t{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &t, sizeof t);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &t, sizeof t);
  std::string req = line + "\n", in;
  bool sent = send(fd, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size());
  shutdown(fd, SHUT_WR);
  char buf[65536];
  ssize_t n;
  while (sent && (n = read(fd, buf, sizeof buf)) > 0) in.append(buf, size_t(n));
  close(fd);
  // A whole reply ends with an empty line; a timeout leaves it short.
  if (!sent || in.rfind("ERR", 0) == 0 || in.size() < 2 || in.compare(in.size() - 2, 2, "\n\n"))
    return std::nullopt;
  return in;
}

}  // namespace xdpfw::ctl
