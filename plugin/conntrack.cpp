// conntrack.cpp: see conntrack.hpp.
#include "conntrack.hpp"

#include <bpf/btf.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace xdpfw {
namespace {

constexpr const char* kfunc = "bpf_xdp_ct_lookup";

bool has_func(const btf* b) {
  return b && btf__find_by_name_kind(b, kfunc, BTF_KIND_FUNC) >= 0;
}

}  // namespace

std::string conntrack_unavailable() {
  btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux)
    return std::string("the kernel's BTF cannot be read (") + std::strerror(errno) +
           "): the bpf_xdp_ct_lookup kfunc cannot be found";
  bool found = has_func(vmlinux);
  if (!found && access("/sys/kernel/btf/nf_conntrack", R_OK) == 0) {
    btf* mod = btf__load_module_btf("nf_conntrack", vmlinux);
    found = has_func(mod);
    btf__free(mod);
  }
  btf__free(vmlinux);
  if (found) return "";
  return std::string("this kernel has no ") + kfunc +
         " kfunc (needs Linux 6.0+ with nf_conntrack built in or loaded: modprobe nf_conntrack, "
         "then restart the agent)";
}

void enable_conntrack() {
  // Created, then replaced whole: the same table whatever was there. A ct
  // expression is what makes the kernel track the namespace's connections;
  // the chain only counts invalid packets.
  static const std::string script =
      std::string("table ") + conntrack_table + " {}\n" + "delete table " + conntrack_table + "\n" +
      "table " + conntrack_table +
      " {\n"
      "  chain track {\n"
      "    type filter hook prerouting priority -300; policy accept;\n"
      "    ct state invalid counter comment \"xdpfw: ct rules need connection tracking\"\n"
      "  }\n"
      "}\n";
  const char* nft = "/usr/sbin/nft";
  if (access(nft, X_OK) != 0)
    throw std::runtime_error(std::string("ct: connection tracking must be enabled in this network "
                                         "namespace and ") +
                             nft + " is missing to do it (install nftables)");
  int in[2];
  if (pipe2(in, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("ct: pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  char* argv[] = {const_cast<char*>(nft), const_cast<char*>("-f"), const_cast<char*>("-"), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, nft, &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  if (rc != 0) {
    close(in[1]);
    throw std::runtime_error(std::string("ct: cannot run ") + nft + ": " + std::strerror(rc));
  }
  size_t off = 0;
  while (off < script.size()) {
    ssize_t n = write(in[1], script.data() + off, script.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  close(in[1]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(std::string("ct: ") + nft + " could not create table " +
                             conntrack_table +
                             " to enable connection tracking in this network namespace (exit " +
                             std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
}

}  // namespace xdpfw
