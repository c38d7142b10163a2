// netns.hpp: network namespaces the test creates (unique names, deleted at
// the end, also on failure), commands inside them, and sockets opened in them.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>
#include <string>

#include "host/host_process.hpp"

namespace xdpfw::test {

class NetNs {
 public:
  NetNs() {
    static bool reaped = (reap_orphans(), true);
    (void)reaped;
    static int n = 0;
    name_ = "xdpfw-t" + std::to_string(getpid()) + "-" + std::to_string(n++);
    int st = 0;
    std::string out = shell("ip netns add " + name_ + " 2>&1", &st);
    BOOST_TEST_REQUIRE(st == 0, "ip netns add " << name_ << ": " << out);
    run("ip link set lo up");
  }
  ~NetNs() { shell("ip netns delete " + name_ + " 2>/dev/null"); }
  const std::string& name() const { return name_; }
  // Runs "CMD" inside the namespace; requires success.
  std::string run(const std::string& cmd) const {
    int st = 0;
    std::string out = shell("ip netns exec " + name_ + " " + cmd + " 2>&1", &st);
    BOOST_TEST_REQUIRE(st == 0, cmd << ": " << out);
    return out;
  }
  // Namespaces of earlier test runs that were killed before they could
  // clean up (their pid is gone).
  static void reap_orphans() {
    std::istringstream list(shell("ip netns list 2>/dev/null"));
    std::string line;
    std::regex ours("^xdpfw-t([0-9]+)-[0-9]+");
    while (std::getline(list, line)) {
      std::smatch m;
      if (std::regex_search(line, m, ours) && kill(std::stoi(m[1]), 0) != 0 && errno == ESRCH)
        shell("ip netns delete " + m[0].str() + " 2>/dev/null");
    }
  }
  std::vector<std::string> exec_prefix() const { return {"ip", "netns", "exec", name_}; }

  // The id of the XDP program on a link, 0 if none; mode is "xdp" (native)
  // or "xdpgeneric". Read from the kernel through ip, not from the agent.
  uint32_t xdp_prog(const std::string& ifname, std::string* mode = nullptr) const {
    std::string out = shell("ip -n " + name_ + " -o -d link show dev " + ifname + " 2>/dev/null");
    std::smatch m;
    if (mode && std::regex_search(out, m, std::regex(" (xdp|xdpgeneric|xdpdrv) "))) *mode = m[1];
    if (std::regex_search(out, m, std::regex("prog/xdp id ([0-9]+)")))
      return static_cast<uint32_t>(std::stoul(m[1]));
    return 0;
  }
  // How many links carry an XDP program.
  int xdp_links() const {
    std::string out = shell("ip -n " + name_ + " -o link show 2>/dev/null");
    int n = 0;
    for (size_t p = 0; (p = out.find("prog/xdp id", p)) != std::string::npos; ++p) ++n;
    return n;
  }
  // A socket created inside the namespace (it stays there).
  int socket_in(int domain, int type) const {
    int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int ns = open(("/var/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
    BOOST_TEST_REQUIRE((self >= 0 && ns >= 0));
    BOOST_TEST_REQUIRE(setns(ns, CLONE_NEWNET) == 0);
    int fd = socket(domain, type | SOCK_CLOEXEC, 0);
    BOOST_TEST_REQUIRE(setns(self, CLONE_NEWNET) == 0);
    close(self);
    close(ns);
    BOOST_TEST_REQUIRE(fd >= 0);
    return fd;
  }

 private:
  std::string name_;
};

}  // namespace xdpfw::test
