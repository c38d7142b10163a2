// veth_pair.hpp: the end-to-end rig of the benchmarks: a veth pair between
// two namespaces of the benchmark's own (tests/support), a generator on the
// sending side (generator.hpp: live frames where the kernel allows them, a
// packet socket otherwise), and the receiver's own counters to read what
// arrived.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <atomic>
#include <thread>

#include "bench_common.hpp"
#include "generator.hpp"

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
    gen_ = std::make_unique<Generator>(tx_, tx_if_);
  }
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;

  const NetNs& tx() const { return tx_; }
  const NetNs& rx() const { return rx_; }
  int rx_ifindex() const { return rx_if_; }

  // Sends FRAME N times out of the sending veth; returns the seconds it took.
  // (The kernel turns XDP_TX of a live-frame run into a redirect to the same
  // device: veth hands the frames to its peer, which takes them only when it
  // runs NAPI, that is with an XDP program or GRO on. The packet socket's
  // frames take the same way as skbs.)
  double send(const std::vector<uint8_t>& frame, uint64_t n) const { return gen_->send(frame, n); }
  const Generator& generator() const { return *gen_; }

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
  // Generator-bound: the receiver took (nearly) every frame offered and
  // (packet socket) hardly ever made the sender wait, so the rate is the
  // sender's, and the receiver's own limit is above it. The packet socket
  // loses nothing: a frame its device refuses (the peer's ring full) is
  // sent again, so a receiver that cannot keep up shows as refusals.
  struct Rate {
    double delivered_pps, offered_pps;
    double refused = 0;  // share of the frames sent that were refused once
    bool generator_bound() const { return delivered_pps >= 0.95 * offered_pps && refused < 0.01; }
  };
  Rate measure(const std::vector<uint8_t>& frame, const std::function<uint64_t()>& counter,
               double seconds, int rounds) const {
    uint64_t n = 100000;
    double probe = send(frame, n);
    n = static_cast<uint64_t>(std::clamp(n * seconds / std::max(probe, 1e-3), 1e4, 2e8));
    std::vector<double> got, offered, refused;
    for (int r = 0; r < rounds; ++r) {
      uint64_t c0 = counter(), r0 = gen_->refused();
      double t = send(frame, n);
      std::this_thread::sleep_for(std::chrono::milliseconds(30));  // the ring drains
      uint64_t c1 = counter();
      got.push_back(static_cast<double>(c1 - c0) / t);
      offered.push_back(static_cast<double>(n) / t);
      refused.push_back(static_cast<double>(gen_->refused() - r0) / static_cast<double>(n));
    }
    return {median(got), median(offered), median(refused)};
  }
  // How a rate was measured: "packet socket x2, offered 1.20 Mpps,
  // generator-bound".
  std::string note(const Rate& r) const {
    char b[80];
    std::snprintf(b, sizeof b, ", offered %.2f Mpps", r.offered_pps / 1e6);
    std::string s = gen_->name() + b;
    if (r.refused >= 0.001) {
      std::snprintf(b, sizeof b, ", %.1f%% refused once", 100 * r.refused);
      s += b;
    }
    return s + (r.generator_bound() ? ", generator-bound" : "");
  }

  // Frames sent in the background while alive, at PPS a second (0: as fast
  // as the generator goes, which takes one of this machine's two CPUs and
  // most of the other's receive work); says what it offered.
  class Load {
   public:
    Load(const VethPair& p, std::vector<uint8_t> frame, double pps)
        : t0_(now_s()), t_([this, &p, frame = std::move(frame), pps] {
            const uint64_t chunk = pps ? 10000 : 100000;
            try {
              for (double next = now_s(); !stop_;) {
                p.send(frame, chunk);
                sent_ += chunk;
                if (!pps) continue;
                next += static_cast<double>(chunk) / pps;
                double wait = next - now_s();
                if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
              }
            } catch (const std::exception& e) {
              error_ = e.what();
            }
          }) {}
    ~Load() { join(); }
    Load(const Load&) = delete;
    Load& operator=(const Load&) = delete;
    // Ends the traffic; returns the frames a second it offered, or throws
    // the generator's error.
    double stop() {
      join();
      if (!error_.empty()) throw std::runtime_error(error_);
      return offered_;
    }

   private:
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> sent_{0};
    double t0_, offered_ = 0;
    std::string error_;
    std::thread t_;
    void join() {
      if (!t_.joinable()) return;
      stop_ = true;
      t_.join();
      offered_ = static_cast<double>(sent_) / (now_s() - t0_);
    }
  };

  static constexpr const char* tx_dev = "xbt0";
  static constexpr const char* rx_dev = "xbr0";

 private:
  NetNs tx_, rx_;
  int tx_if_ = 0, rx_if_ = 0;
  std::unique_ptr<Generator> gen_;
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
