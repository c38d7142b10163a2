// veth_pair.hpp: the end-to-end rig of the benchmarks: a veth pair between
// two namespaces of the benchmark's own (tests/support), the kernel's live-frame generator
// on the sending side, and the receiver's own counters to read what arrived.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <thread>

#include "bench_common.hpp"
#include "gen_tx.skel.h"

namespace xdpfw::bench {

class VethPair {
 public:
  VethPair() : tx_("tx"), rx_("rx") {
    must(std::string("ip link add ") + tx_dev + " netns " + tx_.name() + " type veth peer name " +
         rx_dev + " netns " + rx_.name());
    // IPv6 off on both ends: no ND/MLD chatter among the frames counted.
    for (const NetNs* ns : {&tx_, &rx_}) {
      ns->run("sysctl -qw net.ipv6.conf.all.disable_ipv6=1");
      ns->run("ip link set dev " + std::string(ns == &tx_ ? tx_dev : rx_dev) + " up");
    }
    // GRO on: the receiver runs NAPI also without an XDP program (nftables).
    rx_.run(std::string("ethtool -K ") + rx_dev + " gro on");
    tx_if_ = tx_.ifindex(tx_dev);
    rx_if_ = rx_.ifindex(rx_dev);
    gen_ = gen_tx_bpf__open_and_load();
    if (!gen_) die("cannot load the generator program");
  }
  ~VethPair() { gen_tx_bpf__destroy(gen_); }
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;

  const NetNs& tx() const { return tx_; }
  const NetNs& rx() const { return rx_; }
  int rx_ifindex() const { return rx_if_; }

  // Sends FRAME N times out of the sending veth; returns the seconds it took.
  // (The kernel turns XDP_TX of a live-frame run into a redirect to the same
  // device: veth hands the frames to its peer, which takes them only when it
  // runs NAPI, that is with an XDP program or GRO on.)
  double send(const std::vector<uint8_t>& frame, uint32_t n) const {
    InNs in(tx_);
    xdp_md ctx{};
    ctx.data_end = static_cast<__u32>(frame.size());
    ctx.ingress_ifindex = static_cast<__u32>(tx_if_);
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(),
                .data_size_in = static_cast<__u32>(frame.size()), .ctx_in = &ctx,
                .ctx_size_in = sizeof ctx, .repeat = static_cast<int>(n),
                .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
    double t0 = now_s();
    if (bpf_prog_test_run_opts(bpf_program__fd(gen_->progs.gen_tx), &o))
      die(std::string("live-frame generator: ") + std::strerror(errno));
    return now_s() - t0;
  }

  // Attaches PROG_FD (native XDP) to the receiving veth; -1 detaches.
  void attach_rx(int prog_fd) const {
    InNs in(rx_);
    int err = prog_fd < 0 ? bpf_xdp_detach(rx_if_, XDP_FLAGS_DRV_MODE, nullptr)
                          : bpf_xdp_attach(rx_if_, prog_fd, XDP_FLAGS_DRV_MODE, nullptr);
    if (err) die(std::string("XDP on the receiving veth: ") + std::strerror(-err));
  }
  // Frames the receiver's XDP program saw.
  uint64_t rx_xdp_packets() const { return rx_.ethtool_stat(rx_dev, "rx_queue_0_xdp_packets"); }

  // Delivered packets per second: frames counted by COUNTER on the receiving
  // side over the time the generator ran, median of ROUNDS runs of about
  // SECONDS each (the count is sized by a short probe run).
  struct Rate {
    double delivered_pps, offered_pps;
  };
  Rate measure(const std::vector<uint8_t>& frame, const std::function<uint64_t()>& counter,
               double seconds, int rounds) const {
    uint32_t n = 100000;
    double probe = send(frame, n);
    n = static_cast<uint32_t>(std::clamp(n * seconds / std::max(probe, 1e-3), 1e4, 2e8));
    std::vector<double> got, offered;
    for (int r = 0; r < rounds; ++r) {
      uint64_t c0 = counter();
      double t = send(frame, n);
      std::this_thread::sleep_for(std::chrono::milliseconds(30));  // the ring drains
      uint64_t c1 = counter();
      got.push_back(static_cast<double>(c1 - c0) / t);
      offered.push_back(n / t);
    }
    return {median(got), median(offered)};
  }

  static constexpr const char* tx_dev = "xbt0";
  static constexpr const char* rx_dev = "xbr0";

 private:
  NetNs tx_, rx_;
  int tx_if_ = 0, rx_if_ = 0;
  gen_tx_bpf* gen_ = nullptr;
};

// nftables on the receiving veth (netdev ingress, the earliest hook it has):
// RULES are the chain's rules, each ending in "counter name hits drop".
class Nft {
 public:
  Nft(const VethPair& pair, const std::string& sets, const std::string& rules) : pair_(pair) {
    std::string file = "/tmp/xdpfw-bench-nft-" + std::to_string(getpid());
    std::ofstream(file) << "table netdev xdpfwbench {\n  counter hits {}\n"
                        << sets << "  chain in {\n    type filter hook ingress device \""
                        << VethPair::rx_dev << "\" priority 0; policy accept;\n"
                        << rules << "  }\n}\n";
    pair_.rx().run("nft -f " + file);
    std::remove(file.c_str());
  }
  ~Nft() {
    shell("ip netns exec " + pair_.rx().name() + " nft delete table netdev xdpfwbench 2>/dev/null");
  }
  uint64_t hits() const {
    std::string out = pair_.rx().run("nft list counter netdev xdpfwbench hits");
    std::smatch m;
    if (!std::regex_search(out, m, std::regex("packets ([0-9]+)"))) die("nft counter: " + out);
    return std::stoull(m[1]);
  }

 private:
  const VethPair& pair_;
};

}  // namespace xdpfw::bench
