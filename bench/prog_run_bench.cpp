// prog_run_bench: per-packet cost of the XDP program through
// BPF_PROG_TEST_RUN (repeat N, kernel-measured average), by rule count and
// rule mix, for a packet that hits and one that misses, beside a
// parse-and-drop floor and the original design, measured in the same run.
//   xdpfw_prog_run_bench [--quick] [--csv FILE]
// Environment knobs for investigation: XDPFW_BENCH_COUNTS=N (one rule count),
// XDPFW_BENCH_ROUNDS=N, XDPFW_BENCH_MIN=1 (minimum instead of median),
// XDPFW_BENCH_NOEVENTS=1 (unmatched-packet events off).
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "datapath.hpp"
#include "datapath/packet_builder.hpp"
#include "datapath/prog_runner.hpp"
#include "floor.skel.h"
#include "seed.skel.h"

using namespace xdpfw;
using namespace xdpfw::test;

namespace {

int g_repeat = 1000000;
int g_rounds = 5;

// Median over rounds of the kernel's average ns per run.
double ns_per_packet(int prog_fd, const std::vector<uint8_t>& frame) {
  std::vector<double> v;
  for (int i = 0; i < g_rounds; ++i) {
    RunResult r = run_xdp(prog_fd, frame, g_repeat);
    if (r.err) {
      std::fprintf(stderr, "BPF_PROG_TEST_RUN: %s\n", std::strerror(-r.err));
      std::exit(1);
    }
    v.push_back(r.duration_ns);
  }
  std::sort(v.begin(), v.end());
  return std::getenv("XDPFW_BENCH_MIN") ? v[0] : v[v.size() / 2];
}

std::array<uint8_t, 16> v4addr(uint32_t i) {
  return {198, static_cast<uint8_t>(18 + ((i >> 16) & 1)), static_cast<uint8_t>(i >> 8),
          static_cast<uint8_t>(i)};
}
std::array<uint8_t, 16> v6addr(uint32_t i) {
  return {0x20,
          0x01,
          0x0d,
          0xb8,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
          static_cast<uint8_t>(i >> 24),
          static_cast<uint8_t>(i >> 16),
          static_cast<uint8_t>(i >> 8),
          static_cast<uint8_t>(i)};
}
Prefix prefix(Family f, const std::array<uint8_t, 16>& a, uint8_t len) {
  Prefix p{f, a, len};
  for (unsigned i = 0, bits = len; i < 16; ++i) {
    unsigned keep = bits >= 8 ? 8 : bits;
    p.addr[i] &= static_cast<uint8_t>(0xff00u >> keep);
    bits -= keep;
  }
  return p;
}

struct Mix {
  const char* name;
  // Rule i of n; and a packet hitting rule i.
  std::function<Rule(uint32_t)> rule;
  std::function<PacketFields(uint32_t)> hit;
};

// A rule naming a whole 5-tuple, and the packet that hits it.
using AddrFn = std::array<uint8_t, 16> (*)(uint32_t);
uint16_t exact_sport(uint32_t i) {
  return static_cast<uint16_t>(1024 + i % 50000);
}
Rule exact_rule(Family f, AddrFn addr, uint32_t i) {
  Rule r;
  uint8_t len = f == Family::v4 ? 32 : 128;
  r.src = prefix(f, addr(i), len);
  r.dst = prefix(f, addr(~i), len);
  r.proto = proto_udp;
  r.sport = PortRange{exact_sport(i), exact_sport(i)};
  r.dport = PortRange{53, 53};
  return r;
}
PacketFields exact_packet(Family f, AddrFn addr, uint32_t i) {
  return PacketFields{f, addr(i), addr(~i), proto_udp, true, exact_sport(i), 53};
}

const PortRange mixed_ranges[] = {{22, 22},     {80, 80}, {443, 443},   {1024, 65535},
                                  {6000, 6010}, {53, 53}, {8000, 8999}, {123, 123}};

const Mix mixes[] = {
    {"exact 5-tuple v4", [](uint32_t i) { return exact_rule(Family::v4, v4addr, i); },
     [](uint32_t i) { return exact_packet(Family::v4, v4addr, i); }},
    {"/32 sources v4",
     [](uint32_t i) {
       Rule r;
       r.src = prefix(Family::v4, v4addr(i), 32);
       return r;
     },
     [](uint32_t i) {
       return PacketFields{Family::v4, v4addr(i), v4addr(7), proto_udp, true, 4000, 53};
     }},
    {"mixed prefixes+ranges v4",
     [](uint32_t i) {
       const uint8_t lens[] = {8, 16, 24, 32};
       Rule r;
       r.src = prefix(Family::v4, v4addr(i * 2654435761u), lens[i % 4]);
       if (i % 3 == 0) r.dst = prefix(Family::v4, v4addr(i), 24);
       r.proto = i % 2 ? proto_tcp : proto_udp;
       if (i % 5 != 0) r.dport = mixed_ranges[i % 8];
       return r;
     },
     [](uint32_t i) {
       return PacketFields{Family::v4,
                           v4addr(i * 2654435761u),
                           v4addr(i),
                           static_cast<uint8_t>(i % 2 ? proto_tcp : proto_udp),
                           true,
                           40000,
                           mixed_ranges[i % 8].lo};
     }},
    {"exact 5-tuple v6", [](uint32_t i) { return exact_rule(Family::v6, v6addr, i); },
     [](uint32_t i) { return exact_packet(Family::v6, v6addr, i); }},
};

struct Row {
  std::string program, mix, packet;
  uint32_t rules;
  double ns;
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string csv;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else if (!std::strcmp(argv[i], "--csv") && i + 1 < argc)
      csv = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--csv FILE]\n", argv[0]);
      return 2;
    }
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "prog_run_bench loads BPF programs: run it as root\n");
    return 1;
  }
  if (const char* r = std::getenv("XDPFW_BENCH_ROUNDS")) g_rounds = std::atoi(r);
  if (quick) {
    g_repeat = 200000;
    g_rounds = 3;
  }
  std::vector<Row> rows;

  // Baselines.
  floor_bpf* fl = floor_bpf__open_and_load();
  seed_bpf* sd = seed_bpf__open_and_load();
  if (!fl || !sd) {
    std::fprintf(stderr, "cannot load the baseline programs\n");
    return 1;
  }
  auto frame_of = [](const PacketFields& f) { return build_packet(PacketSpec{.f = f}); };
  PacketFields base = mixes[0].hit(1);
  double floor_ns = ns_per_packet(bpf_program__fd(fl->progs.floor_main), frame_of(base));
  std::fprintf(stderr, "  floor: %.1f ns\n", floor_ns);
  rows.push_back({"floor", "-", "any", 0, floor_ns});
  {
    struct {
      __u32 src_ip, dst_ip;
      __u16 src_port, dst_port;
      __u8 proto, pad[3];
    } key{};
    std::memcpy(&key.src_ip, base.src.data(), 4);
    std::memcpy(&key.dst_ip, base.dst.data(), 4);
    key.src_port = htons(base.sport);
    key.dst_port = htons(base.dport);
    key.proto = base.proto;
    struct {
      __u32 action;
      __u64 hits;
    } val{1, 0};
    bpf_map_update_elem(bpf_map__fd(sd->maps.seed_rules), &key, &val, BPF_ANY);
    rows.push_back({"seed design", "exact 5-tuple v4", "hit", 1,
                    ns_per_packet(bpf_program__fd(sd->progs.seed_main), frame_of(base))});
    std::fprintf(stderr, "  seed design: %.1f ns\n", rows.back().ns);
  }
  floor_bpf__destroy(fl);
  seed_bpf__destroy(sd);

  std::vector<uint32_t> counts = {1, 10, 100, 1000, 10000, 100000};
  if (quick) counts = {1, 1000, 100000};
  if (const char* only = std::getenv("XDPFW_BENCH_COUNTS")) counts = {uint32_t(std::atoi(only))};
  for (const Mix& mix : mixes) {
    Datapath dp;
    perf_buffer* pb = perf_buffer__new(dp.events_map_fd(), 8, nullptr, nullptr, nullptr, nullptr);
    if (!std::getenv("XDPFW_BENCH_NOEVENTS"))
      dp.set_event_limit(1000, 100);  // events on, as deployed
    for (uint32_t n : counts) {
      std::vector<Rule> rules;
      rules.reserve(n);
      for (uint32_t i = 0; i < n; ++i) {
        Rule r = mix.rule(i);
        r.id = i + 1;
        r.priority = 100;
        r.action = Action::drop;
        rules.push_back(r);
      }
      dp.apply(rules, Policy{});
      PacketFields hit = mix.hit(n / 2);
      PacketFields miss = hit;
      // No rule of any mix names GRE or these sources.
      miss.proto = 47;
      miss.has_l4 = false;
      if (miss.family == Family::v4)
        miss.src = {198, 19, 255, 254};
      else
        miss.src[8] = 0xff;
      int fd = dp.prog_fd();
      auto before = dp.stats();
      double hit_ns = ns_per_packet(fd, frame_of(hit));
      auto mid = dp.stats();
      double miss_ns = ns_per_packet(fd, frame_of(miss));
      auto after = dp.stats();
      if ((n && mid[XDPFW_STAT_MATCH_DROP] == before[XDPFW_STAT_MATCH_DROP]) ||
          after[XDPFW_STAT_MATCH_DROP] != mid[XDPFW_STAT_MATCH_DROP]) {
        std::fprintf(stderr, "%s at %u rules: the hit packet missed or the miss packet hit\n",
                     mix.name, n);
        return 1;
      }
      rows.push_back({"xdpfw", mix.name, "hit", n, hit_ns});
      rows.push_back({"xdpfw", mix.name, "miss", n, miss_ns});
      std::fprintf(stderr, "  %-26s %6u rules: hit %.1f ns, miss %.1f ns\n", mix.name, n, hit_ns,
                   miss_ns);
    }
    perf_buffer__free(pb);
  }

  double seed_ns = rows[1].ns;
  std::printf("\n| program | rule mix | packet | rules | ns/packet | x floor | x seed design |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|\n");
  for (const Row& r : rows)
    std::printf("| %s | %s | %s | %u | %.1f | %.2f | %.2f |\n", r.program.c_str(), r.mix.c_str(),
                r.packet.c_str(), r.rules, r.ns, r.ns / floor_ns, r.ns / seed_ns);
  std::printf("\nrepeat %d, median of %d rounds; kernel.bpf_stats_enabled should be 0\n", g_repeat,
              g_rounds);
  if (!csv.empty()) {
    std::ofstream o(csv);
    o << "program,mix,packet,rules,ns_per_packet,x_floor,x_seed\n";
    for (const Row& r : rows)
      o << r.program << ',' << r.mix << ',' << r.packet << ',' << r.rules << ',' << r.ns << ','
        << r.ns / floor_ns << ',' << r.ns / seed_ns << '\n';
  }
  return 0;
}
