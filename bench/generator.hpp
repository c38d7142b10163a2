// generator.hpp: the traffic generators of the end-to-end benchmarks, both
// sending one frame N times out of a veth:
//   live    BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES running a
//           program that returns XDP_TX: the kernel itself makes the load,
//           without sockets or skbs. Some kernels refuse it (EPERM).
//   socket  AF_PACKET with a TX ring and PACKET_QDISC_BYPASS, one sender
//           thread per CPU, each with its own socket and ring: works on any
//           kernel. Each frame is an skb, so a sender offers fewer frames
//           than the live one, and the receiver copies each into a page of
//           its own before its XDP program runs.
// XDPFW_BENCH_GENERATOR=live|socket|auto (default auto: live where the
// kernel allows it, else socket) picks one; XDPFW_BENCH_SENDERS=N sets the
// socket sender's threads (default: the online CPUs). A generator that
// cannot send is an error, never a silent skip.
#pragma once

#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.hpp"
#include "gen_tx.skel.h"

namespace xdpfw::bench {

enum class GenKind { live, socket };

inline const char* gen_name(GenKind k) {
  return k == GenKind::live ? "live-frame" : "packet socket";
}

// What XDPFW_BENCH_GENERATOR asks for: live, socket, or nothing (auto).
inline std::optional<GenKind> gen_requested() {
  const char* v = std::getenv("XDPFW_BENCH_GENERATOR");
  if (!v || !*v || !std::strcmp(v, "auto")) return std::nullopt;
  if (!std::strcmp(v, "live")) return GenKind::live;
  if (!std::strcmp(v, "socket")) return GenKind::socket;
  throw std::runtime_error(std::string("XDPFW_BENCH_GENERATOR=") + v +
                           ": expected live, socket or auto");
}

// One packet socket with a TX ring, bound to a device in the namespace it
// was created in: frames are copied into the ring once, then each round
// marks every slot for sending and flushes the ring in one send().
class PacketRing {
 public:
  PacketRing(int fd, int ifindex) : fd_(fd) {
    int v = TPACKET_V2, one = 1;
    tpacket_req req{};
    req.tp_block_size = block_size;
    req.tp_block_nr = blocks;
    req.tp_frame_size = frame_size;
    req.tp_frame_nr = blocks * (block_size / frame_size);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = ifindex;
    if (setsockopt(fd_, SOL_PACKET, PACKET_VERSION, &v, sizeof v) ||
        setsockopt(fd_, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) ||
        setsockopt(fd_, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) ||
        bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof sll))
      fail("packet socket setup");
    ring_ =
        static_cast<uint8_t*>(mmap(nullptr, size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0));
    if (ring_ == MAP_FAILED) {
      ring_ = nullptr;
      fail("packet ring mmap");
    }
  }
  ~PacketRing() {
    if (ring_) munmap(ring_, size());
    close(fd_);
  }
  PacketRing(const PacketRing&) = delete;
  PacketRing& operator=(const PacketRing&) = delete;

  // Sends FRAME N times; returns N. A frame the device refuses (veth: its
  // peer's ring is full) stays marked and goes again: refused() counts them.
  uint64_t send(const std::vector<uint8_t>& frame, uint64_t n) {
    if (frame.size() > frame_size - data_off) throw std::runtime_error("frame too long");
    if (frame != loaded_) {
      for (uint32_t i = 0; i < slots; ++i)
        std::memcpy(slot(i) + data_off, frame.data(), frame.size());
      loaded_ = frame;
    }
    // The kernel sends from its own position in the ring onwards, slot after
    // slot, while they are marked: marking starts where the last send ended.
    uint64_t sent = 0;
    while (sent < n) {
      uint32_t k = static_cast<uint32_t>(std::min<uint64_t>(slots, n - sent));
      for (uint32_t i = 0; i < k; ++i) {
        auto* h = reinterpret_cast<tpacket2_hdr*>(slot((head_ + i) % slots));
        h->tp_len = static_cast<uint32_t>(frame.size());
        __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
      }
      // Blocking: returns once every marked slot went out and is free again.
      // ENOBUFS: the device refused a frame (veth: its peer's ring is full,
      // a drop as with any sender); the rest are still marked.
      while (::send(fd_, nullptr, 0, 0) < 0) {
        if (errno == ENOBUFS)
          ++refused_;
        else if (errno != EINTR)
          fail("packet socket send");
      }
      for (uint32_t i = 0; i < k; ++i) {
        auto* h = reinterpret_cast<tpacket2_hdr*>(slot((head_ + i) % slots));
        uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
        if (st != TP_STATUS_AVAILABLE)
          throw std::runtime_error("packet ring: slot " + std::to_string((head_ + i) % slots) +
                                   " not sent (status " + std::to_string(st) + ")");
      }
      head_ = (head_ + k) % slots;
      sent += k;
    }
    return sent;
  }

 private:
  static constexpr uint32_t frame_size = 2048, block_size = 1 << 16, blocks = 16;
  static constexpr uint32_t slots = blocks * (block_size / frame_size);
  static constexpr uint32_t data_off = TPACKET2_HDRLEN - sizeof(sockaddr_ll);
  size_t size() const { return size_t{block_size} * blocks; }
  uint8_t* slot(uint32_t i) const { return ring_ + size_t{i} * frame_size; }
  [[noreturn]] static void fail(const std::string& what) {
    throw std::runtime_error(what + ": " + std::strerror(errno));
  }
  int fd_;
  uint8_t* ring_ = nullptr;
  std::vector<uint8_t> loaded_;
  uint32_t head_ = 0;  // the slot the kernel sends next

 public:
  uint64_t refused() const { return refused_; }

 private:
  uint64_t refused_ = 0;  // frames the device refused (ENOBUFS)
};

// The generator of one sending device in namespace NS.
class Generator {
 public:
  Generator(const NetNs& ns, int ifindex) : ns_(ns), ifindex_(ifindex) {
    std::optional<GenKind> want = gen_requested();
    if (!want || *want == GenKind::live) {
      gen_ = gen_tx_bpf__open_and_load();
      if (!gen_) throw std::runtime_error("cannot load the generator program");
      // One frame tells whether the kernel allows live frames here.
      std::vector<uint8_t> probe(60, 0);
      int err = live_send(probe, 1);
      if (err == 0) {
        kind_ = GenKind::live;
        return;
      }
      gen_tx_bpf__destroy(gen_);
      gen_ = nullptr;
      if (want)
        throw std::runtime_error(std::string("live-frame generator: ") + std::strerror(err) +
                                 " (XDPFW_BENCH_GENERATOR=live; socket works on any kernel)");
      refused_ = std::strerror(err);
    }
    kind_ = GenKind::socket;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int senders = static_cast<int>(std::max(1L, cpus));
    if (const char* s = std::getenv("XDPFW_BENCH_SENDERS")) senders = std::max(1, std::atoi(s));
    for (int i = 0; i < senders; ++i)
      rings_.push_back(std::make_unique<PacketRing>(ns_.socket_in(AF_PACKET, SOCK_RAW), ifindex_));
  }
  ~Generator() {
    if (gen_) gen_tx_bpf__destroy(gen_);
  }
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  GenKind kind() const { return kind_; }
  // "live-frame" or "packet socket x2" (its senders).
  std::string name() const {
    std::string s = gen_name(kind_);
    if (kind_ == GenKind::socket) s += " x" + std::to_string(rings_.size());
    return s;
  }
  // The name, and why live frames were not used when auto chose a socket.
  std::string describe() const {
    return name() + (refused_.empty() ? "" : " (live frames refused: " + refused_ + ")");
  }

  // Frames the socket generator's device refused so far (each was sent
  // again: the socket generator loses none).
  uint64_t refused() const {
    uint64_t n = 0;
    for (const auto& r : rings_) n += r->refused();
    return n;
  }

  // Sends FRAME N times; returns the seconds it took.
  double send(const std::vector<uint8_t>& frame, uint64_t n) {
    double t0 = now_s();
    if (kind_ == GenKind::live) {
      for (uint64_t left = n; left;) {
        uint32_t k = static_cast<uint32_t>(std::min<uint64_t>(left, 1u << 30));
        if (int err = live_send(frame, k))
          throw std::runtime_error(std::string("live-frame generator: ") + std::strerror(err));
        left -= k;
      }
    } else if (rings_.size() == 1) {
      rings_[0]->send(frame, n);
    } else {
      // Each sender its share, on a thread of its own; the first error wins.
      std::vector<std::thread> ts;
      std::vector<std::string> errs(rings_.size());
      uint64_t share = n / rings_.size();
      for (size_t i = 0; i < rings_.size(); ++i) {
        uint64_t k = i + 1 == rings_.size() ? n - share * i : share;
        ts.emplace_back([&, i, k] {
          cpu_set_t cpus;  // sender I on CPU I
          CPU_ZERO(&cpus);
          CPU_SET(static_cast<int>(
                      i % static_cast<size_t>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)))),
                  &cpus);
          pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);
          try {
            rings_[i]->send(frame, k);
          } catch (const std::exception& e) {
            errs[i] = e.what();
          }
        });
      }
      for (std::thread& t : ts) t.join();
      for (const std::string& e : errs)
        if (!e.empty()) throw std::runtime_error("packet socket generator: " + e);
    }
    return now_s() - t0;
  }

 private:
  // BPF_PROG_TEST_RUN in live-frame mode: 0 or an errno.
  int live_send(const std::vector<uint8_t>& frame, uint32_t n) const {
    InNs in(ns_);
    xdp_md ctx{};
    ctx.data_end = static_cast<__u32>(frame.size());
    ctx.ingress_ifindex = static_cast<__u32>(ifindex_);
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(),
                .data_size_in = static_cast<__u32>(frame.size()), .ctx_in = &ctx,
                .ctx_size_in = sizeof ctx, .repeat = static_cast<int>(n),
                .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
    return bpf_prog_test_run_opts(bpf_program__fd(gen_->progs.gen_tx), &o) ? errno : 0;
  }

  const NetNs& ns_;
  int ifindex_;
  GenKind kind_ = GenKind::socket;
  std::string refused_;
  gen_tx_bpf* gen_ = nullptr;
  std::vector<std::unique_ptr<PacketRing>> rings_;
};

}  // namespace xdpfw::bench
