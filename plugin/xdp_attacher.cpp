// xdp_attacher.cpp: see xdp_attacher.hpp.
#include "xdp_attacher.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace xdpfw {

XdpAttacher::XdpAttacher(int prog_fd, std::string links_dir, bool persistent)
    : prog_fd_(prog_fd), links_dir_(std::move(links_dir)), persistent_(persistent) {
  bpf_prog_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) == 0) prog_id_ = info.id;
}

XdpAttacher::~XdpAttacher() {
  for (auto& [idx, fd] : links_) close(fd);
}

std::string XdpAttacher::pin_path(int ifindex) const {
  return links_dir_ + "/if" + std::to_string(ifindex);
}

// A link pinned by an earlier run on this interface: take it over and point
// it at this program. Returns its fd, or -1.
int XdpAttacher::adopt(int ifindex, AttachOutcome& o) {
  if (links_dir_.empty()) return -1;
  std::string path = pin_path(ifindex);
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return -1;
  if (bpf_link_update(fd, prog_fd_, nullptr) != 0) {
    // A link of a device that is gone (the ifindex was reused): drop it.
    close(fd);
    unlink(path.c_str());
    return -1;
  }
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  bpf_xdp_query(ifindex, 0, &q);
  o.mode = q.attach_mode == XDP_ATTACHED_SKB ? "generic" : "native";
  if (!persistent_) unlink(path.c_str());  // from now on the process owns it
  return fd;
}

AttachOutcome XdpAttacher::attach(int ifindex, const std::string& name, AttachMode mode,
                                  bool takeover) {
  AttachOutcome o;
  if (links_.count(ifindex)) {
    o.ok = true;
    o.prog_id = prog_id_;
    return o;
  }
  if (int fd = adopt(ifindex, o); fd >= 0) {
    links_[ifindex] = fd;
    o.ok = true;
    o.prog_id = prog_id_;
    return o;
  }
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  if (bpf_xdp_query(ifindex, 0, &q) == 0 && q.prog_id && q.prog_id != prog_id_) {
    if (!takeover) {
      o.foreign_id = q.prog_id;
      o.error = "it carries another XDP program (id " + std::to_string(q.prog_id) +
                "); left alone (set takeover = yes to replace it)";
      return o;
    }
    // Programs attached through netlink can be detached; a bpf_link cannot
    // be broken from outside its owner, and the attach below says so.
    __u32 flags = q.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
    bpf_xdp_detach(ifindex, flags, nullptr);
  }
  auto try_attach = [&](__u32 flags) {
    LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = flags);
    errno = 0;
    return bpf_link_create(prog_fd_, ifindex, BPF_XDP, &lo);
  };
  int fd = -1;
  int native_err = 0;
  if (mode != AttachMode::generic) {
    fd = try_attach(XDP_FLAGS_DRV_MODE);
    native_err = fd < 0 ? errno : 0;
    if (fd >= 0) o.mode = "native";
  }
  if (fd < 0 && mode != AttachMode::native) {
    fd = try_attach(XDP_FLAGS_SKB_MODE);
    if (fd >= 0) {
      o.mode = "generic";
      if (mode == AttachMode::automatic)
        o.note =
            "native XDP refused (" + std::string(std::strerror(native_err)) + "): generic mode";
    }
  }
  if (fd < 0) {
    int err = errno;
    o.error = std::string("attach failed: ") + std::strerror(err);
    if (err == EBUSY || err == EEXIST) o.error += " (another XDP program holds " + name + ")";
    return o;
  }
  links_[ifindex] = fd;
  if (persistent_ && bpf_obj_pin(fd, pin_path(ifindex).c_str()) != 0)
    o.note += (o.note.empty() ? "" : "; ") + std::string("cannot pin the link at ") +
              pin_path(ifindex) + ": " + std::strerror(errno) + " (it will not outlive the agent)";
  o.ok = true;
  o.prog_id = prog_id_;
  return o;
}

std::vector<std::string> XdpAttacher::retarget(int prog_fd) {
  std::vector<std::string> failed;
  for (auto& [idx, fd] : links_)
    if (bpf_link_update(fd, prog_fd, nullptr) != 0)
      failed.push_back("ifindex " + std::to_string(idx) + ": " + std::strerror(errno));
  prog_fd_ = prog_fd;
  bpf_prog_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) == 0) prog_id_ = info.id;
  return failed;
}

void XdpAttacher::detach(int ifindex) {
  auto it = links_.find(ifindex);
  if (it == links_.end()) return;
  if (!links_dir_.empty()) unlink(pin_path(ifindex).c_str());
  close(it->second);  // the last reference: the kernel detaches the program
  links_.erase(it);
}

}  // namespace xdpfw
