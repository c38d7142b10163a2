// kernel_parts.cpp: see kernel_parts.hpp.
#include "kernel_parts.hpp"

#include <cstdio>

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "safe_files.hpp"
#include "xdp_attacher.hpp"

namespace xdpfw {
namespace {

// A folder on a bpf filesystem for the pins; bpffs is mounted on
// /sys/fs/bpf (mode 0700) where it is missing (it is not mounted at boot
// everywhere). The pin folders are made 0700 and must be root's (or the
// agent user's) alone: whoever can write them can swap the live maps.
std::string prepare_pin_dir(const std::string& root, const char* sub) {
  if (root == "none") return "";
  auto on_bpffs = [](const std::string& p) {
    struct statfs st {};
    return statfs(p.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
  };
  if (root.rfind("/sys/fs/bpf", 0) == 0 && !on_bpffs("/sys/fs/bpf")) {
    std::error_code ec;
    std::filesystem::create_directories("/sys/fs/bpf", ec);
    if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") != 0)
      throw std::runtime_error(std::string("cannot mount bpffs on /sys/fs/bpf: ") +
                               std::strerror(errno));
  }
  std::string dir = root + "/" + sub;
  make_private_dir(root, 0700, "pin-root");
  make_private_dir(dir, 0700, "pin-root");
  if (!on_bpffs(dir))
    throw std::runtime_error("pin-root " + root +
                             " is not on a bpf filesystem (mount -t bpf bpf DIR, or set "
                             "pin-root = none)");
  return dir;
}

DatapathOptions options(const FirewallConfig& cfg) {
  DatapathOptions o;
  o.max_rules = cfg.max_rules;
  o.pin_dir = prepare_pin_dir(cfg.pin_root, "maps");
  o.event_burst = cfg.event_burst;
  o.enable_conntrack = true;
  o.max_set_elements = cfg.max_set_elements;
  return o;
}

}  // namespace

FirewallParts kernel_parts(const FirewallConfig& cfg) {
  check_log_dir(cfg);
  FirewallParts p;
  // The lock before the maps are touched.
  p.lock = std::make_unique<AgentLock>(prepare_pin_dir(cfg.pin_root, "maps"), cfg.state_dir);
  auto dp = std::make_unique<KernelDatapath>(options(cfg));
  auto attacher = std::make_unique<XdpAttacher>(
      dp->prog_fd(), prepare_pin_dir(cfg.pin_root, "links"), cfg.persistent);
  // Resized maps come with a program of their own: the links follow it.
  dp->on_program_change([a = attacher.get()](int fd) {
    for (const std::string& why : a->retarget(fd))
      std::fprintf(stderr, "xdpfw: a link keeps the previous program (%s)\n", why.c_str());
  });
  p.attacher = std::move(attacher);
  p.datapath = std::move(dp);
  return p;
}

}  // namespace xdpfw
