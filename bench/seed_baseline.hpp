// seed_baseline.hpp: the original design (the seed XDP firewall this project
// grew from, baselines/seed.bpf.c) as a baseline program, filled
// with the exact 5-tuple rules of the benchmarks' exact v4 mix.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "bench_common.hpp"
#include "seed.skel.h"

namespace xdpfw::bench {

// The original design, loaded with room for N exact rules (its own map
// holds 1,024), filled with rules 0..N-1 of the exact v4 mix.
class Seed {
  Seed(const Seed&) = delete;
  Seed& operator=(const Seed&) = delete;

 public:
  explicit Seed(uint32_t n) {
    skel_ = seed_bpf__open();
    if (!skel_) die("cannot open the seed program");
    bpf_map__set_max_entries(skel_->maps.seed_rules, std::max<uint32_t>(n, 1));
    if (seed_bpf__load(skel_)) die("cannot load the seed program");
    for (uint32_t i = 0; i < n; ++i) {
      PacketFields f = exact_v4_mix().hit(i);
      struct {
        __u32 src_ip, dst_ip;
        __u16 src_port, dst_port;
        __u8 proto, pad[3];
      } key{};
      std::memcpy(&key.src_ip, f.src.data(), 4);
      std::memcpy(&key.dst_ip, f.dst.data(), 4);
      key.src_port = htons(f.sport);
      key.dst_port = htons(f.dport);
      key.proto = f.proto;
      struct {
        __u32 action;
        __u64 hits;
      } val{1, 0};
      if (bpf_map_update_elem(bpf_map__fd(skel_->maps.seed_rules), &key, &val, BPF_ANY))
        die("seed rule " + std::to_string(i) + ": " + std::strerror(errno));
    }
  }
  ~Seed() { seed_bpf__destroy(skel_); }
  int fd() const { return bpf_program__fd(skel_->progs.seed_main); }

 private:
  seed_bpf* skel_;
};

}  // namespace xdpfw::bench
