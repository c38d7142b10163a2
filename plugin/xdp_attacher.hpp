// xdp_attacher.hpp: attaches the XDP program with one bpf_link per
// interface. The links go away with the process (fail-open). Another
// program already on an interface is never replaced unless takeover is set.
#pragma once

#include <map>

#include "attach_manager.hpp"

namespace xdpfw {

class XdpAttacher : public Attacher {
 public:
  explicit XdpAttacher(int prog_fd);
  ~XdpAttacher() override;
  AttachOutcome attach(int ifindex, const std::string& name, AttachMode mode,
                       bool takeover) override;
  void detach(int ifindex) override;

 private:
  int prog_fd_;
  uint32_t prog_id_ = 0;
  std::map<int, int> links_;  // ifindex -> bpf_link fd
};

}  // namespace xdpfw
