// firewall_agent.hpp: the real xdpfw-host with libxdpfw.so (XDPFW_PLUGIN),
// run inside a namespace of the caller's, with a private folder: config,
// rules file, log, state, socket and a bpf filesystem for its pins, all
// removed (and the agent stopped) when the object goes.
#pragma once

#include <memory>
#include <string>

#include "support/host_process.hpp"
#include "support/netns.hpp"

namespace xdpfw::test {

struct FirewallAgent {
  // SECTION: lines of [plugin.xdpfw] (after rules, log-dir, pin-root and
  // state-dir, which point into the private folder); RULES: the rules file;
  // HOST_EXTRA: lines of [host] (after socket).
  FirewallAgent(const NetNs& ns, const std::string& section, const std::string& rules = "",
                const std::string& host_extra = "");
  FirewallAgent(const FirewallAgent&) = delete;
  FirewallAgent& operator=(const FirewallAgent&) = delete;

  struct Start {
    // The agent's capability bounding set as setpriv takes it (e.g.
    // "-all,+bpf"); default: $XDPFW_TEST_AGENT_CAPS, else unrestricted root.
    // The privilege label runs the e2e suites with only the documented set.
    std::string caps = {};
    // Wait until it is ready; std::runtime_error with its log when it is
    // not in 20 s or has exited.
    bool wait_ready = true;
    // Ready means its socket exists rather than its log saying so (for an
    // agent told to log only warnings).
    bool ready_by_socket = false;
    // Sent to the agent if this process dies first.
    int deathsig = SIGTERM;
  };
  void start(const Start& how);
  void start(const std::string& caps = "", bool wait_ready = true) {
    start(Start{.caps = caps, .wait_ready = wait_ready});
  }
  // Waits up to SECONDS until an XDP program is on IFNAME in the agent's
  // namespace; std::runtime_error with the agent's log if not.
  void wait_attached(const std::string& ifname, int seconds = 20);
  // start(), then wait_attached(IFNAME): the agent is up and filtering IFNAME.
  void start_attached(const std::string& ifname, const std::string& caps = "");

  // One command through socat, its whole reply.
  std::string ask(const std::string& cmd) { return socat(sock, cmd + "\n"); }
  fs::path log_dir() const { return dir / "log"; }
  fs::path log_file() const { return log_dir() / "firewall_log.json"; }
  // The agent's stdout and stderr.
  std::string log() const { return host ? host->log() : std::string(); }
  pid_t pid() const { return host ? host->pid() : -1; }

  // kill -9, as a crash would, and wait for the process to go.
  void crash();

  const NetNs& ns;
  TempDir dir;
  fs::path sock;
  BpfMount bpf;
  std::unique_ptr<HostProcess> host;
};

}  // namespace xdpfw::test
