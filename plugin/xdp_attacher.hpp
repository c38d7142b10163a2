// xdp_attacher.hpp: attaches the XDP program with one bpf_link per
// interface. The links go away with the process (fail-open). Another
// program already on an interface is never replaced unless takeover is set.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "attach_manager.hpp"

namespace xdpfw {

class XdpAttacher : public Attacher {
 public:
  // links_dir: where links are pinned ("" : nowhere). A link pinned there by
  // an earlier run is adopted and switched to this program (no gap). With
  // persistent, new links are pinned too and outlive the process.
  XdpAttacher(int prog_fd, std::string links_dir = "", bool persistent = false);
  ~XdpAttacher() override;  // closes its links; pinned ones stay attached
  AttachOutcome attach(int ifindex, const std::string& name, AttachMode mode,
                       bool takeover) override;
  void detach(int ifindex) override;
  // Moves every link to another program (the datapath's after its maps were
  // resized): one atomic switch per interface. Returns the interfaces whose
  // link refused, each with why (they keep the old program).
  std::vector<std::string> retarget(int prog_fd);
  uint32_t prog_id() const override { return prog_id_; }

 private:
  std::string pin_path(int ifindex) const;
  int adopt(int ifindex, AttachOutcome& o);

  int prog_fd_;
  std::string links_dir_;
  bool persistent_;
  uint32_t prog_id_ = 0;
  std::map<int, int> links_;  // ifindex -> bpf_link fd
};

}  // namespace xdpfw
