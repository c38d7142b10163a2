// traffic.hpp: two namespaces joined by a veth, UDP sockets opened in them,
// datagrams sent and counted: real traffic for the end-to-end tests.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <boost/test/unit_test.hpp>

#include "support/firewall_agent.hpp"

namespace xdpfw::test {

// Two namespaces joined by a veth: fwt0 (the firewall side) and peer0.

struct Pair {
  NetNs fw_ns, peer_ns;
  Pair() {
    fw_ns.run("ip link add fwt0 type veth peer name peer0 netns " + peer_ns.name());
    fw_ns.run("ip addr add 198.18.0.1/24 dev fwt0");
    fw_ns.run("ip addr add 2001:db8::1/64 dev fwt0 nodad");
    fw_ns.run("ip link set fwt0 up");
    peer_ns.run("ip addr add 198.18.0.2/24 dev peer0");
    peer_ns.run("ip addr add 2001:db8::2/64 dev peer0 nodad");
    peer_ns.run("ip link set peer0 up");
  }
};

// An IPv4 or IPv6 socket address; addr "" is the wildcard.
inline socklen_t sockaddr_of(int family, const char* addr, uint16_t port, sockaddr_storage& ss) {
  ss = {};
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (*addr) inet_pton(AF_INET, addr, &a->sin_addr);
    return sizeof *a;
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  if (*addr) inet_pton(AF_INET6, addr, &a->sin6_addr);
  return sizeof *a;
}

inline int bound(const NetNs& ns, int family, uint16_t port) {
  int fd = ns.socket_in(family, SOCK_DGRAM | SOCK_NONBLOCK);
  int one = 1;
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  // Room for every datagram of the test before it drains the socket.
  int rcvbuf = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  sockaddr_storage ss;
  socklen_t len = sockaddr_of(family, "", port, ss);
  BOOST_TEST_REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0);
  return fd;
}

inline void send_to(int fd, int family, const char* addr, uint16_t port, int n) {
  sockaddr_storage ss;
  socklen_t len = sockaddr_of(family, addr, port, ss);
  for (int i = 0; i < n; ++i) {
    char msg[32];
    int l = std::snprintf(msg, sizeof msg, "packet %d", i);
    BOOST_TEST_REQUIRE(sendto(fd, msg, size_t(l), 0, reinterpret_cast<sockaddr*>(&ss), len) == l);
    if (i % 20 == 19) usleep(2000);  // below the veth XDP ring (256 frames)
  }
}

inline int drain(int fd) {
  int n = 0;
  char buf[2048];
  while (recv(fd, buf, sizeof buf, 0) >= 0) ++n;
  return n;
}

// A counter of `show stats json`.
inline uint64_t stat_of(FirewallAgent& fw, const char* name) {
  return nlohmann::json::parse(fw.ask("show stats json")).at(name).get<uint64_t>();
}

// Packets a rule counted, from `rule list json`; ~0 if there is no such
// rule (yet: a wait for a count goes on).
inline uint64_t rule_packets(FirewallAgent& fw, uint32_t id) {
  for (const nlohmann::json& r : nlohmann::json::parse(fw.ask("rule list json")))
    if (r.at("id").get<uint32_t>() == id) return r.at("packets").get<uint64_t>();
  return ~0ull;
}

// Sends one datagram at a time to DST:PORT until RX (bound to PORT) has one:
// neighbour discovery is done. Returns how many arrived.
inline int warm_up(int tx, int family, const char* dst, uint16_t port, int rx) {
  int warm = 0;
  BOOST_TEST_REQUIRE(wait_until([&] {
    send_to(tx, family, dst, port, 1);
    usleep(20000);
    warm += drain(rx);
    return warm > 0;
  }));
  return warm;
}

// How many of N datagrams from TX to 198.18.0.1:PORT reach RX (bound to
// PORT), waiting up to a second for them.
inline int delivered(int tx, int rx, int n, uint16_t port = 5000) {
  send_to(tx, AF_INET, "198.18.0.1", port, n);
  int got = 0;
  wait_until(
      [&] {
        got += drain(rx);
        return got >= n;
      },
      1);
  return got;
}

// A server of the test's (Prometheus, fail2ban), in a namespace, with its
// output in a file; stopped (TERM, then KILL) when the object goes, also on
// failure.
struct Child {
  Child(const NetNs& ns, std::vector<std::string> args, const fs::path& log) : log(log) {
    std::vector<std::string> prefix = ns.exec_prefix();
    args.insert(args.begin(), prefix.begin(), prefix.end());
    pid = spawn_logged(std::move(args), log, SIGKILL);
  }
  ~Child() {
    if (pid < 0) return;
    kill(pid, SIGTERM);
    if (!exited(20)) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  // True once it has exited by itself (reaped; status kept) within SECONDS.
  bool exited(int seconds) {
    if (pid < 0) return true;
    if (!wait_until([&] { return waitpid(pid, &status, WNOHANG) == pid; }, seconds)) return false;
    pid = -1;
    return true;
  }
  fs::path log;
  pid_t pid = -1;
  int status = 0;
};

// The JSON lines of an event log; throws on a line that does not parse.
inline std::vector<nlohmann::json> lines_of(const fs::path& file) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_file(file));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace xdpfw::test
