// firewall_agent.hpp: the real xdpfw-host with libxdpfw.so, run inside a
// namespace the test created, with a config and rules file of the test's.
#pragma once

#include "e2e/netns.hpp"

namespace xdpfw::test {

struct FirewallAgent {
  FirewallAgent(const NetNs& ns, const std::string& section, const std::string& rules = "",
                const std::string& host_extra = "")
      : ns(ns), sock(dir / "xdpfw.sock") {
    write_file(dir / "rules.conf", rules);
    write_file(dir / "xdpfw.conf",
               "[host]\nsocket = " + sock.string() + "\n" + host_extra +
                   "\n[plugin.xdpfw]\nrules = " + (dir / "rules.conf").string() +
                   "\nlog-dir = " + log_dir().string() + "\n" + section + "\n");
  }
  void start() {
    host = std::make_unique<HostProcess>(
        dir,
        std::vector<std::string>{"--config", (dir / "xdpfw.conf").string(), "--plugin",
                                 XDPFW_PLUGIN},
        true, ns.exec_prefix());
    BOOST_TEST_REQUIRE(!host->exited(), host->log());
  }
  std::string ask(const std::string& cmd) { return socat(sock, cmd + "\n"); }
  fs::path log_dir() const { return dir / "log"; }
  fs::path log_file() const { return log_dir() / "firewall_log.json"; }

  const NetNs& ns;
  TempDir dir;
  fs::path sock;
  std::unique_ptr<HostProcess> host;
};

}  // namespace xdpfw::test
