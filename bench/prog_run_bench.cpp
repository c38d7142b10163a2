// prog_run_bench: per-packet cost of the XDP program through
// BPF_PROG_TEST_RUN (repeat N, kernel-measured average), by rule count and
// rule mix, for a packet that hits and one that misses, beside a
// parse-and-drop floor and the original design, measured in the same run:
// both baselines are measured again at every rule count, interleaved with
// xdpfw, so that drift of the machine shows in all three alike.
//   xdpfw_prog_run_bench [--quick] [--csv FILE] [--plot FILE]
// --plot writes "rules floor seed xdpfw" (ns/packet, exact 5-tuple v4 hit)
// for gnuplot, and FILE.mixes: per mix, hit and miss as ratios to the seed
// design beside them. Environment knobs for investigation: XDPFW_BENCH_COUNTS=N
// (one rule count), XDPFW_BENCH_SET_SIZE=N (one address set size),
// XDPFW_BENCH_ROUNDS=N, XDPFW_BENCH_MIN=1 (minimum instead of median),
// XDPFW_BENCH_NOEVENTS=1 (unmatched-packet events off).
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <sys/sysinfo.h>

#include <cmath>
#include <cstring>
#include <random>
#include <sstream>

#include "address_sets.hpp"
#include "bench_common.hpp"
#include "datapath.hpp"
#include "datapath/packet_builder.hpp"
#include "datapath/prog_runner.hpp"
#include "floor.skel.h"
#include "seed_baseline.hpp"

using namespace xdpfw;
using namespace xdpfw::bench;
using xdpfw::test::build_packet;
using xdpfw::test::PacketSpec;

namespace {

int g_repeat = 1000000;
int g_rounds = 5;

// Median (or minimum) over rounds of the kernel's average ns per run.
double ns_per_packet(int prog_fd, const std::vector<uint8_t>& frame) {
  std::vector<double> v;
  for (int i = 0; i < g_rounds; ++i) {
    test::RunResult r = test::run_xdp(prog_fd, frame, g_repeat);
    if (r.err) die(std::string("BPF_PROG_TEST_RUN: ") + std::strerror(-r.err));
    v.push_back(r.duration_ns);
  }
  return std::getenv("XDPFW_BENCH_MIN") ? *std::min_element(v.begin(), v.end()) : median(v);
}

std::vector<uint8_t> frame_of(const PacketFields& f) {
  return build_packet(PacketSpec{.f = f});
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string csv, plot;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else if (!std::strcmp(argv[i], "--csv") && i + 1 < argc)
      csv = argv[++i];
    else if (!std::strcmp(argv[i], "--plot") && i + 1 < argc)
      plot = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--csv FILE] [--plot FILE]\n", argv[0]);
      return 2;
    }
  }
  if (geteuid() != 0) die("prog_run_bench loads BPF programs: run it as root");
  if (shell("sysctl -n kernel.bpf_stats_enabled 2>/dev/null").find('1') == 0)
    die("kernel.bpf_stats_enabled is 1: it adds tens of ns to every figure; set it to 0");
  if (quick) {
    g_repeat = 200000;
    g_rounds = 3;
  }
  if (const char* r = std::getenv("XDPFW_BENCH_ROUNDS")) g_rounds = std::atoi(r);

  std::vector<uint32_t> counts = {1, 10, 100, 1000, 10000, 100000};
  struct sysinfo si {};
  sysinfo(&si);
  // A million exact rules take about 1 GiB of maps and user-space copies.
  bool million = !quick && uint64_t{si.totalram} * si.mem_unit >= (uint64_t{8} << 30);
  if (quick) counts = {1, 1000, 20000};
  if (const char* only = std::getenv("XDPFW_BENCH_COUNTS")) {
    counts = {uint32_t(std::atoi(only))};
    million = false;
  }

  Report rep;
  floor_bpf* fl = floor_bpf__open_and_load();
  if (!fl) die("cannot load the floor program");
  int floor_fd = bpf_program__fd(fl->progs.floor_main);
  PacketFields base = exact_v4_mix().hit(1);

  // Floor and the original design at one rule: the references of every ratio.
  double floor_ns = ns_per_packet(floor_fd, frame_of(base));
  double seed_ns = ns_per_packet(Seed(1).fd(), frame_of(exact_v4_mix().hit(0)));
  rep.add({"per-packet", "floor", floor_ns, "ns", "", 0});
  rep.add(
      {"per-packet", "seed design, 1 exact rule, hit", seed_ns, "ns", "floor", seed_ns / floor_ns});

  // What each condition costs: one rule set per case, a TCP SYN to port 22
  // from 198.18.0.7, beside the same rule without the condition.
  struct Case {
    const char* name;
    const char* rules;  // ids and priorities in order
    bool drop;          // the packet is dropped (else passed by the default)
  };
  const Case cases[] = {
      {"exact rule (no condition), hit", "src 198.18.0.7 proto tcp dport 22 action drop", true},
      {"tcp-flags syn,!ack rule, hit",
       "src 198.18.0.7 proto tcp dport 22 tcp-flags syn,!ack action drop", true},
      {"ct new rule, hit (conntrack lookup: not found)",
       "src 198.18.0.7 proto tcp dport 22 ct new action drop", true},
      {"ct established rule, not this packet, then default",
       "src 198.18.0.7 proto tcp dport 22 ct established action pass", false},
      {"rule set with a ct rule, packet decided by an exact rule",
       "src 198.18.0.7 proto tcp dport 22 action drop\nproto udp ct established action pass", true},
      {"rate rule over its rate (decides)",
       "src 198.18.0.7 proto tcp dport 22 rate 1/h burst 1 action drop", true},
      {"rate rule under its rate (a token, then default)",
       "src 198.18.0.7 proto tcp dport 22 rate 1000000000/s burst 1000000000 action drop", false},
      {"rate per src rule over its rate",
       "src 198.18.0.7 proto tcp dport 22 rate 1/h burst 1 per src action drop", true},
      {"audit rule, then default", "src 198.18.0.7 proto tcp dport 22 action audit", false},
  };
  PacketFields syn = test::fields4("198.18.0.7", "198.18.0.1", proto_tcp, 40000, 22);
  double exact_ns = 0;
  for (const Case& c : cases) {
    KernelDatapath dp;
    std::vector<Rule> rs;
    std::istringstream in(c.rules);
    for (std::string line; std::getline(in, line);) {
      Rule r = parse_rule(line);
      r.id = static_cast<uint32_t>(rs.size() + 1);
      r.priority = r.id;
      rs.push_back(r);
    }
    dp.apply(rs, Policy{});
    auto frame = test::build_packet(test::PacketSpec{.f = syn, .payload = 6});
    test::RunResult first =
        test::run_xdp(dp.prog_fd(), frame);  // a rate rule's one token goes here
    if (first.retval != (c.drop ? XDP_DROP : XDP_PASS) && std::strstr(c.name, "over") == nullptr)
      die(std::string(c.name) + ": unexpected verdict " + std::to_string(first.retval));
    double ns = ns_per_packet(dp.prog_fd(), frame);
    if (test::run_xdp(dp.prog_fd(), frame).retval != (c.drop ? XDP_DROP : XDP_PASS))
      die(std::string(c.name) + ": unexpected verdict");
    double floor_now = ns_per_packet(floor_fd, frame_of(base));
    if (!exact_ns) exact_ns = ns;
    rep.add({"conditions", c.name, ns, "ns", "exact rule", ns / exact_ns});
    rep.add({"conditions", std::string("floor beside: ") + c.name, floor_now, "ns", "", 0});
  }

  // A rule naming an address set (src @bench), its set holding 1, 100,000
  // and 1,000,000 elements, beside the exact rule and the floor measured
  // again at each size. Three shapes: random /32s and /24s (a quarter),
  // /32s only (a ban list), and /16s to /24s only (a network blocklist);
  // half with a timeout, the packet's source among them (its /32, or its
  // /24 in the third). A member is dropped; a non-member goes on to the
  // default.
  std::vector<uint32_t> set_sizes = {1, 100000, 1000000};
  if (quick) set_sizes = {1, 20000};
  if (const char* only = std::getenv("XDPFW_BENCH_SET_SIZE"))
    set_sizes = {uint32_t(std::atoi(only))};
  enum { mixed_shape, hosts_shape, nets_shape, shapes };
  double set_summary[shapes][2][3] = {};  // [shape][member, exact][size]
  for (int shape = 0; shape < shapes; ++shape) {
    for (size_t si = 0; si < set_sizes.size(); ++si) {
      uint32_t n = set_sizes[si];
      if (shape == hosts_shape && n == 1) continue;  // the same set as the mixed shape's
      KernelDatapath dp;
      AddressSets sets(dp);
      sets.create({"bench", 0, 0});
      std::mt19937 rng(n);
      Prefix member{Family::v4,
                    {198, 18, 0, uint8_t(shape == nets_shape ? 0 : 7)},
                    uint8_t(shape == nets_shape ? 24 : 32)};
      sets.add("bench", member, 0);
      while (sets.total() < n) {
        uint32_t a = rng();
        Prefix e{Family::v4,
                 {uint8_t(a >> 24), uint8_t(a >> 16), uint8_t(a >> 8), uint8_t(a)},
                 uint8_t(shape == nets_shape    ? 16 + rng() % 9
                         : shape == hosts_shape ? 32
                         : rng() % 4            ? 32
                                                : 24)};
        e.clear_host_bits();
        if (e.addr[0] == 198 && (e.addr[1] & 0xfe) == 18) continue;  // the packets' range
        sets.add("bench", e, rng() % 2 ? 0 : 3600);
      }
      Rule set_rule = parse_rule("src @bench proto tcp dport 22 action drop");
      set_rule.src_set->id = sets.find("bench")->id;
      set_rule.id = 1;
      set_rule.priority = 1;
      dp.apply({set_rule}, Policy{});
      PacketFields outside = syn;
      outside.src = {198, 18, 1, 9};  // outside the third shape's /24 too
      auto in_frame = test::build_packet(test::PacketSpec{.f = syn, .payload = 6});
      auto out_frame = test::build_packet(test::PacketSpec{.f = outside, .payload = 6});
      if (test::run_xdp(dp.prog_fd(), in_frame).retval != XDP_DROP ||
          test::run_xdp(dp.prog_fd(), out_frame).retval != XDP_PASS)
        die("set rule: unexpected verdict at " + std::to_string(n) + " elements");
      double in_ns = ns_per_packet(dp.prog_fd(), in_frame);
      double out_ns = ns_per_packet(dp.prog_fd(), out_frame);
      KernelDatapath exact_dp;
      Rule exact = parse_rule("src 198.18.0.7 proto tcp dport 22 action drop");
      exact.id = 1;
      exact.priority = 1;
      exact_dp.apply({exact}, Policy{});
      double exact_now = ns_per_packet(exact_dp.prog_fd(), in_frame);
      double floor_now = ns_per_packet(floor_fd, frame_of(base));
      std::string at = std::to_string(n) + (shape == hosts_shape  ? " /32(s)"
                                            : shape == nets_shape ? " /16-/24(s)"
                                                                  : " element(s)");
      rep.add({"sets", "set rule, " + at + ", member (drop)", in_ns, "ns", "exact rule beside it",
               in_ns / exact_now});
      rep.add({"sets", "set rule, " + at + ", not a member (default)", out_ns, "ns",
               "exact rule beside it", out_ns / exact_now});
      rep.add({"sets", "exact rule beside the set of " + at, exact_now, "ns", "floor beside it",
               exact_now / floor_now});
      rep.add({"sets", "floor beside the set of " + at, floor_now, "ns", "", 0});
      set_summary[shape][0][si] = in_ns;
      set_summary[shape][1][si] = exact_now;
      std::fprintf(stderr, "    (set of %u elements: %zu in the maps)\n", n,
                   dp.set_elements().size());
    }
  }

  double summary_1 = 0, summary_1k = 0, summary_top = 0;
  uint32_t summary_top_n = 0;
  std::FILE* plot_out = plot.empty() ? nullptr : std::fopen(plot.c_str(), "w");
  if (plot_out)
    std::fprintf(plot_out, "# rules floor_ns seed_ns xdpfw_ns (exact 5-tuple v4 hit)\n");
  // Every mix, hits and misses, as ratios to the seed design beside them:
  // one gnuplot data block per mix, its name in the block's first line.
  std::FILE* mixes_out = plot.empty() ? nullptr : std::fopen((plot + ".mixes").c_str(), "w");

  for (const Mix& mix : mixes()) {
    bool exact_v4 = &mix == &exact_v4_mix();
    if (quick && !exact_v4 && std::strcmp(mix.name, "mixed prefixes+ranges v4") != 0) continue;
    std::vector<uint32_t> mix_counts = counts;
    if (million && exact_v4) mix_counts.push_back(1000000);
    if (mixes_out) std::fprintf(mixes_out, "\"%s\" hit_ratio miss_ratio\n", mix.name);
    for (uint32_t n : mix_counts) {
      DatapathOptions opts;
      if (n > opts.max_rules) opts.max_rules = n + 1;
      // Two slots, each with the set and its two views of malformed
      // packets (an exact IPv6 set: about three buckets a rule).
      opts.max_entries = std::max<uint32_t>(opts.max_entries, 8 * n);
      KernelDatapath dp(opts);
      perf_buffer* pb = perf_buffer__new(dp.events_map_fd(), 8, nullptr, nullptr, nullptr, nullptr);
      if (!std::getenv("XDPFW_BENCH_NOEVENTS")) dp.set_event_limit(1000, 100);  // as deployed
      double t0 = now_s();
      dp.apply(make_rules(mix, n), Policy{});
      double load_s = now_s() - t0;
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
      if (mid[XDPFW_STAT_MATCH_DROP] == before[XDPFW_STAT_MATCH_DROP] ||
          after[XDPFW_STAT_MATCH_DROP] != mid[XDPFW_STAT_MATCH_DROP])
        die(std::string(mix.name) + " at " + std::to_string(n) +
            " rules: the hit packet missed or the miss packet hit");
      // Baselines again, beside this measurement: the original design holds
      // the same N rules when they are exact 5-tuples, one rule otherwise.
      double floor_now = ns_per_packet(floor_fd, frame_of(base));
      uint32_t seed_n = exact_v4 ? n : 1;
      double seed_now = ns_per_packet(Seed(seed_n).fd(), frame_of(exact_v4_mix().hit(seed_n / 2)));
      std::string at = std::string(mix.name) + ", " + std::to_string(n) + " rules";
      std::string beside = "seed design (" + std::to_string(seed_n) + " rules) beside it";
      rep.add({"per-packet", at + ", hit", hit_ns, "ns", beside, hit_ns / seed_now});
      rep.add({"per-packet", at + ", miss", miss_ns, "ns", beside, miss_ns / seed_now});
      if (mixes_out)
        std::fprintf(mixes_out, "%u %.3f %.3f\n", n, hit_ns / seed_now, miss_ns / seed_now);
      if (exact_v4) {
        rep.add({"per-packet", "seed design, " + std::to_string(n) + " exact rules, hit", seed_now,
                 "ns", "floor beside it", seed_now / floor_now});
        if (plot_out) std::fprintf(plot_out, "%u %.2f %.2f %.2f\n", n, floor_now, seed_now, hit_ns);
        if (n == 1) summary_1 = hit_ns / seed_now;
        if (n == 1000) summary_1k = hit_ns;
        if (n >= summary_top_n) {  // the largest count measured
          summary_top_n = n;
          summary_top = hit_ns;
        }
      }
      std::fprintf(stderr, "    (%s: %u rules compiled and written in %.2f s)\n", mix.name, n,
                   load_s);
      perf_buffer__free(pb);
    }
    if (mixes_out) std::fprintf(mixes_out, "\n\n");
  }
  if (mixes_out) std::fclose(mixes_out);
  floor_bpf__destroy(fl);
  if (plot_out) std::fclose(plot_out);

  rep.print_markdown("Per-packet cost, BPF_PROG_TEST_RUN");
  std::printf("\nrepeat %d, %s of %d rounds, kernel.bpf_stats_enabled 0\n", g_repeat,
              std::getenv("XDPFW_BENCH_MIN") ? "minimum" : "median", g_rounds);
  if (!csv.empty()) rep.append_csv(csv);
  std::printf(
      "\nSUMMARY per-packet: floor %.0f ns, seed design %.0f ns; xdpfw exact v4 hit: "
      "%.2fx the seed design at 1 rule, %.0f ns at 1,000 rules, %.0f ns at %u\n",
      floor_ns, seed_ns, summary_1, summary_1k, summary_top, summary_top_n);
  std::string sizes, member, hosts, nets, exact;
  for (size_t si = 0; si < set_sizes.size(); ++si) {
    const char* sep = si ? " / " : "";
    sizes += sep + std::to_string(set_sizes[si]);
    member += sep + std::to_string(std::lround(set_summary[0][0][si]));
    if (set_sizes[si] != 1)
      hosts += (hosts.empty() ? "" : " / ") +
               std::to_string(std::lround(set_summary[hosts_shape][0][si]));
    nets += sep + std::to_string(std::lround(set_summary[nets_shape][0][si]));
    exact += sep + std::to_string(std::lround(set_summary[0][1][si]));
  }
  std::printf(
      "SUMMARY set rules: a set rule's member hit %s ns at %s elements (/32s and /24s), %s ns "
      "with /32s only, %s ns with /16s to /24s only; the exact rule beside it %s ns\n",
      member.c_str(), sizes.c_str(), hosts.c_str(), nets.c_str(), exact.c_str());
  return 0;
}
