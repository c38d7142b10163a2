// prog_runner.hpp: runs a loaded XDP program on one frame through the
// kernel's BPF_PROG_TEST_RUN.
#pragma once

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstdint>
#include <vector>

namespace xdpfw::test {

struct RunResult {
  int err = 0;          // 0, or -errno of the syscall
  uint32_t retval = 0;  // XDP_DROP, XDP_PASS, ...
  uint32_t duration_ns = 0;
};

inline RunResult run_xdp(int prog_fd, const std::vector<uint8_t>& frame, int repeat = 1,
                         uint32_t ifindex = 1) {
  xdp_md ctx{};
  ctx.data_end = static_cast<__u32>(frame.size());
  ctx.ingress_ifindex = ifindex;  // 1: lo, always there
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(),
              .data_size_in = static_cast<__u32>(frame.size()), .ctx_in = &ctx,
              .ctx_size_in = sizeof ctx, .repeat = repeat);
  RunResult r;
  errno = 0;
  if (bpf_prog_test_run_opts(prog_fd, &o) < 0) r.err = -errno;
  r.retval = o.retval;
  r.duration_ns = o.duration;
  return r;
}

}  // namespace xdpfw::test
