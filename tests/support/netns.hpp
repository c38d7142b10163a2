// netns.hpp: network namespaces of a test or benchmark's own (unique names,
// deleted at the end, also on failure; those of runs killed before they
// could clean up are reaped), commands inside them, sockets opened in them,
// and the calling thread moved into one for a while.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xdpfw::test {

class NetNs {
 public:
  // Named xdpfw-t<pid>-<n>[-TAG], lo up.
  explicit NetNs(const std::string& tag = "");
  ~NetNs();
  NetNs(const NetNs&) = delete;
  NetNs& operator=(const NetNs&) = delete;
  const std::string& name() const { return name_; }
  // Runs "CMD" inside the namespace; it must succeed (std::runtime_error
  // with its output otherwise).
  std::string run(const std::string& cmd) const;
  // Namespaces of earlier runs that were killed before they could clean up
  // (their pid is gone). The first namespace of a process does it.
  static void reap_orphans();
  // {"ip", "netns", "exec", NAME}: to run a process in the namespace.
  std::vector<std::string> exec_prefix() const;

  // The id of the XDP program on a link, 0 if none; mode is "xdp" (native)
  // or "xdpgeneric". Read from the kernel through ip, not from the agent.
  uint32_t xdp_prog(const std::string& ifname, std::string* mode = nullptr) const;
  // How many links carry an XDP program.
  int xdp_links() const;
  int ifindex(const std::string& dev) const;
  // An ethtool -S counter of a device, 0 when absent.
  uint64_t ethtool_stat(const std::string& dev, const std::string& stat) const;
  // A socket created inside the namespace (it stays there).
  int socket_in(int domain, int type) const;

 private:
  std::string name_;
};

// While alive, this thread is in namespace NS (for calls that resolve
// ifindexes in the caller's namespace: XDP attach, live-frame test runs).
class InNs {
 public:
  explicit InNs(const NetNs& ns);
  ~InNs();
  InNs(const InNs&) = delete;
  InNs& operator=(const InNs&) = delete;

 private:
  int self_ = -1;
};

}  // namespace xdpfw::test
