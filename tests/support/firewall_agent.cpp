#include "support/firewall_agent.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace xdpfw::test {

namespace {
bool accepts(const fs::path& sock) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock.c_str(), sizeof addr.sun_path - 1);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}
}  // namespace

FirewallAgent::FirewallAgent(const NetNs& ns, const std::string& section, const std::string& rules,
                             const std::string& host_extra)
    : ns(ns), sock(dir / "xdpfw.sock"), bpf(dir / "bpf") {
  write_file(dir / "rules.conf", rules);
  write_file(dir / "xdpfw.conf",
             "[host]\nsocket = " + sock.string() + "\n" + host_extra +
                 "\n[plugin.xdpfw]\nrules = " + (dir / "rules.conf").string() + "\nlog-dir = " +
                 log_dir().string() + "\npin-root = " + (dir / "bpf/xdpfw").string() +
                 "\nstate-dir = " + (dir / "state").string() + "\n" + section + "\n");
}

void FirewallAgent::start(const Start& how) {
  std::vector<std::string> prefix = ns.exec_prefix();
  std::string caps = how.caps;
  if (caps.empty() && std::getenv("XDPFW_TEST_AGENT_CAPS"))
    caps = std::getenv("XDPFW_TEST_AGENT_CAPS");
  if (!caps.empty())
    prefix.insert(prefix.end(), {"setpriv", "--bounding-set", caps, "--inh-caps", "-all"});
  host = std::make_unique<HostProcess>(
      dir,
      std::vector<std::string>{"--config", (dir / "xdpfw.conf").string(), "--plugin", XDPFW_PLUGIN},
      HostProcess::Options{.wait_ready = how.wait_ready,
                           .prefix = prefix,
                           .ready_socket = how.ready_by_socket ? sock : fs::path(),
                           .deathsig = how.deathsig});
  if (how.wait_ready && host->exited())
    throw std::runtime_error("xdpfw-host exited at start:\n" + host->log());
  // Ready by its socket: it also accepts a connection (an agent that died
  // after binding leaves the file behind).
  if (how.wait_ready && how.ready_by_socket &&
      (!wait_until([&] { return accepts(sock) || host->exited(); }) || host->exited()))
    throw std::runtime_error("xdpfw-host does not serve " + sock.string() +
                             (host->exited() ? " (it exited)" : "") + ":\n" + host->log());
}

void FirewallAgent::wait_attached(const std::string& ifname, int seconds) {
  if (!wait_until([&] { return ns.xdp_prog(ifname) != 0; }, seconds))
    throw std::runtime_error("the agent did not attach to " + ifname + " in " + ns.name() +
                             " within " + std::to_string(seconds) + " s:\n" + log());
}

void FirewallAgent::start_attached(const std::string& ifname, const std::string& caps) {
  start(caps);
  wait_attached(ifname);
}

void FirewallAgent::crash() {
  host->signal(SIGKILL);
  host->exit_code();
}

}  // namespace xdpfw::test
