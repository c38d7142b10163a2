// firewall_agent.hpp: the real xdpfw-host with libxdpfw.so, run inside a
// namespace the test created, with a config and rules file of the test's.
#pragma once

#include <sys/mount.h>

#include "e2e/netns.hpp"

namespace xdpfw::test {

// A private bpf filesystem for the agent's pins, unmounted (and so every pin
// released) at the end. Mounted before the agent starts: ip netns exec gives
// the agent a mount namespace copied at that moment.
struct BpfMount {
  explicit BpfMount(const fs::path& p) : path(p) {
    fs::create_directories(path);
    BOOST_TEST_REQUIRE(mount("bpf", path.c_str(), "bpf", 0, nullptr) == 0);
  }
  ~BpfMount() { umount2(path.c_str(), MNT_DETACH); }
  fs::path path;
};

struct FirewallAgent {
  FirewallAgent(const NetNs& ns, const std::string& section, const std::string& rules = "",
                const std::string& host_extra = "")
      : ns(ns), sock(dir / "xdpfw.sock"), bpf(dir / "bpf") {
    write_file(dir / "rules.conf", rules);
    write_file(dir / "xdpfw.conf",
               "[host]\nsocket = " + sock.string() + "\n" + host_extra +
                   "\n[plugin.xdpfw]\nrules = " + (dir / "rules.conf").string() + "\nlog-dir = " +
                   log_dir().string() + "\npin-root = " + (dir / "bpf/xdpfw").string() +
                   "\nstate-dir = " + (dir / "state").string() + "\n" + section + "\n");
  }
  // caps: the agent's capability bounding set as setpriv takes it (e.g.
  // "-all,+bpf"); default: $XDPFW_TEST_AGENT_CAPS, else unrestricted root.
  // The privilege label runs the e2e suites with only the documented set.
  void start(std::string caps = "", bool wait_ready = true) {
    std::vector<std::string> prefix = ns.exec_prefix();
    if (caps.empty() && std::getenv("XDPFW_TEST_AGENT_CAPS"))
      caps = std::getenv("XDPFW_TEST_AGENT_CAPS");
    if (!caps.empty())
      prefix.insert(prefix.end(), {"setpriv", "--bounding-set", caps, "--inh-caps", "-all"});
    host = std::make_unique<HostProcess>(
        dir,
        std::vector<std::string>{"--config", (dir / "xdpfw.conf").string(), "--plugin",
                                 XDPFW_PLUGIN},
        wait_ready, prefix);
    if (wait_ready) BOOST_TEST_REQUIRE(!host->exited(), host->log());
  }
  std::string ask(const std::string& cmd) { return socat(sock, cmd + "\n"); }
  fs::path log_dir() const { return dir / "log"; }
  fs::path log_file() const { return log_dir() / "firewall_log.json"; }

  // kill -9, as a crash would, and wait for the process to go.
  void crash() {
    host->signal(SIGKILL);
    host->exit_code();
  }

  const NetNs& ns;
  TempDir dir;
  fs::path sock;
  BpfMount bpf;
  std::unique_ptr<HostProcess> host;
};

}  // namespace xdpfw::test
