// classbench_bench: per-packet cost of the XDP program on the ClassBench
// filter sets (acl1, fw1, ipc1 at 1,000, 10,000 and 100,000 filters, IPv4,
// and the 10,000 sets mapped into 2001:db8::/32), through BPF_PROG_TEST_RUN:
// mean over headers drawn from the set (hits at every depth and misses),
// tables probed (mean and p99, from the user-space copy of the lookup), and
// the time to compile and write the set. The original design at one exact
// rule is measured again beside every set: every ratio is to that figure of
// the same moment.
//   xdpfw_classbench_bench [--quick] [--csv FILE] [--plot FILE]
// --plot writes, per family, the mean against the rule count as a ratio to
// the seed design beside it (IPv4 sets), for bench/run.sh's plot.
#include <bpf/libbpf.h>

#include <algorithm>

#include "bench_common.hpp"
#include "common/classbench.hpp"
#include "common/worst_case.hpp"
#include "datapath.hpp"
#include "datapath/packet_builder.hpp"
#include "datapath/prog_runner.hpp"
#include "seed_baseline.hpp"

using namespace xdpfw;
using namespace xdpfw::bench;
using xdpfw::test::build_packet;
using xdpfw::test::PacketSpec;

namespace {

// Every BPF_PROG_TEST_RUN call swaps the XDP dispatcher in and out, an RCU
// grace period each (~20 ms here): few headers, many runs each.
int g_repeat = 10000;    // runs per header
size_t g_headers = 250;  // headers per set
int g_rounds = 1;

// Mean over the headers of the kernel's average ns per run; median of rounds.
double mean_ns(int fd, const std::vector<std::vector<uint8_t>>& frames) {
  std::vector<double> rounds;
  for (int r = 0; r < g_rounds; ++r) {
    double sum = 0;
    for (const auto& f : frames) {
      test::RunResult res = test::run_xdp(fd, f, g_repeat);
      if (res.err) die(std::string("BPF_PROG_TEST_RUN: ") + std::strerror(-res.err));
      sum += res.duration_ns;
    }
    rounds.push_back(sum / frames.size());
  }
  return median(rounds);
}

double seed_ns() {
  Seed seed(1);
  auto frame = build_packet(PacketSpec{.f = exact_v4_mix().hit(0)});
  std::vector<double> v;
  for (int i = 0; i < 3; ++i) v.push_back(test::run_xdp(seed.fd(), frame, 200000).duration_ns);
  return median(v);
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
  if (geteuid() != 0) die("classbench_bench loads BPF programs: run it as root");
  if (shell("sysctl -n kernel.bpf_stats_enabled 2>/dev/null").find('1') == 0)
    die("kernel.bpf_stats_enabled is 1: it adds tens of ns to every figure; set it to 0");
  if (quick) g_headers = 100;

  struct Case {
    std::string set;
    bool v6;
  };
  std::vector<Case> cases;
  for (const char* fam : {"acl1", "fw1", "ipc1"}) {
    for (const char* n : {"_1000", "_10000", "_100000"})
      if (!quick || std::strcmp(n, "_10000") == 0) cases.push_back({std::string(fam) + n, false});
    if (!quick) cases.push_back({std::string(fam) + "_10000", true});
  }

  Report rep;
  std::map<std::string, double> mean_of;
  std::map<std::string, std::vector<std::pair<size_t, double>>>
      plot_rows;  // family -> (rules, ratio)
  double empty_memory = double(KernelDatapath(DatapathOptions{}).map_memory());
  rep.add({"classbench", "no rules, kernel map memory", empty_memory / 1048576.0, "MiB", "", 0});
  double worst_10k = 0, worst_growth = 0, worst_v6 = 0, worst_load = 0, worst_add_p99 = 0;
  for (const Case& c : cases) {
    auto rules = test::load_classbench(test::classbench_path(c.set), {.v6 = c.v6});
    std::string name = c.set + (c.v6 ? " v6" : " v4");
    std::mt19937_64 rng(42);
    auto headers = test::classbench_headers(rules, g_headers, rng);
    std::vector<std::vector<uint8_t>> frames;
    for (const auto& h : headers) frames.push_back(build_packet(PacketSpec{.f = h}));

    DatapathOptions opts;
    KernelDatapath dp(opts);
    double t0 = now_s();
    dp.apply(rules, Policy{});
    double load_s = now_s() - t0;

    // Tables probed per header, from the same algorithm in user space.
    auto compiled = compile_rules(rules, Policy{});
    std::vector<double> probes;
    size_t hits = 0;
    for (const auto& h : headers) {
      uint32_t p = 0;
      hits += lookup_compiled(compiled, h, &p).has_value();
      probes.push_back(p);
    }
    int fam = c.v6 ? XDPFW_FAMILY_V6 : XDPFW_FAMILY_V4;
    double seed_before = seed_ns();
    double ns = mean_ns(dp.prog_fd(), frames);
    double seed_after = seed_ns();
    double seed_now = (seed_before + seed_after) / 2;
    double mean_probes = 0;
    for (double p : probes) mean_probes += p;
    mean_probes /= probes.size();
    std::string what = name + " (" + std::to_string(rules.size()) + " rules, " +
                       std::to_string(compiled.header.ntables[fam]) + " tables, " +
                       std::to_string(hits * 100 / headers.size()) + "% hits)";
    rep.add({"classbench", what + ", mean", ns, "ns", "seed design, 1 exact rule, beside it",
             ns / seed_now});
    rep.add({"classbench", name + ", tables probed, mean", mean_probes, "tables", "", 0});
    rep.add({"classbench", name + ", tables probed, p99", quantile(probes, 0.99), "tables", "", 0});
    rep.add({"classbench", name + ", compile and write", load_s * 1000, "ms", "", 0});
    rep.add({"classbench", name + ", kernel map memory", dp.map_memory() / 1048576.0, "MiB",
             "the same maps empty", double(dp.map_memory()) / empty_memory});
    mean_of[name] = ns;
    if (!c.v6)
      plot_rows[c.set.substr(0, c.set.find('_'))].emplace_back(rules.size(), ns / seed_now);
    if (c.set.find("_10000") != std::string::npos && !c.v6)
      worst_10k = std::max(worst_10k, ns / seed_now);
    if (c.set.find("_100000") != std::string::npos) {
      std::string small = c.set.substr(0, c.set.find('_')) + "_1000 v4";
      if (mean_of.count(small)) {
        double g = ns / mean_of[small];
        rep.add({"classbench", name + " against 1,000 of the same family", ns, "ns", small, g});
        worst_growth = std::max(worst_growth, g);
      }
      worst_load = std::max(worst_load, load_s);
    }
    if (c.set.find("_100000") != std::string::npos && !quick) {
      // Changes in place at this size, back to back: the last 1,000 rules
      // of a shuffled copy deleted one by one, then added back.
      std::vector<Rule> order = rules;
      std::shuffle(order.begin(), order.end(), rng);
      std::vector<double> del_ms, add_ms;
      size_t recompiled = 0;
      std::vector<Rule> live = rules;
      for (size_t i = 0; i < 1000; ++i) {
        const Rule& r = order[i];
        double t = now_s();
        if (!dp.remove_in_place(r)) {
          live.erase(std::find(live.begin(), live.end(), r));
          dp.apply(live, Policy{});
          ++recompiled;
        } else {
          live.erase(std::find(live.begin(), live.end(), r));
        }
        del_ms.push_back((now_s() - t) * 1000);
      }
      for (size_t i = 0; i < 1000; ++i) {
        const Rule& r = order[i];
        live.push_back(r);
        double t = now_s();
        if (!dp.add_in_place(r)) {
          dp.apply(live, Policy{});
          ++recompiled;
        }
        add_ms.push_back((now_s() - t) * 1000);
      }
      rep.add({"classbench", name + ", rule del in place, p50", median(del_ms), "ms", "", 0});
      rep.add(
          {"classbench", name + ", rule del in place, p99", quantile(del_ms, 0.99), "ms", "", 0});
      rep.add({"classbench", name + ", rule add in place, p50", median(add_ms), "ms", "", 0});
      rep.add(
          {"classbench", name + ", rule add in place, p99", quantile(add_ms, 0.99), "ms", "", 0});
      rep.add({"classbench", name + ", of 2,000 changes recompiled", double(recompiled), "changes",
               "", 0});
      worst_add_p99 = std::max({worst_add_p99, quantile(add_ms, 0.99), quantile(del_ms, 0.99)});
    }
    if (c.v6 && mean_of.count(c.set + " v4")) {
      double r = ns / mean_of[c.set + " v4"];
      rep.add({"classbench", name + " against v4", ns, "ns", c.set + " v4", r});
      worst_v6 = std::max(worst_v6, r);
    }
  }

  // The worst case built on purpose (tests/datapath/worst_case_test.cpp):
  // one header probing every table with a full bucket in each, and the
  // longest bucket chain, each hit by its last rule and missed.
  double worst_case = 0;
  for (Family fam : {Family::v4, Family::v6}) {
    const char* fname = fam == Family::v4 ? "v4" : "v6";
    const uint32_t chain = XDPFW_BUCKET_SIZE + XDPFW_MAX_CHAIN * XDPFW_BUCKET_SIZE;
    std::pair<std::string, std::vector<Rule>> sets[] = {
        {std::to_string(XDPFW_MAX_TABLES) + " tables probed",
         test::worst_case_tables(fam, XDPFW_MAX_TABLES)},
        {"a chain of " + std::to_string(chain) + " rules", test::worst_case_chain(fam, chain)}};
    for (auto& [what, rules] : sets) {
      KernelDatapath dp;
      dp.apply(rules, Policy{});
      PacketFields hit = test::worst_case_header(fam), miss = hit;
      miss.sport = 60000;
      std::vector<std::vector<uint8_t>> frames = {build_packet(PacketSpec{.f = hit}),
                                                  build_packet(PacketSpec{.f = miss})};
      double seed_before = seed_ns();
      double ns = mean_ns(dp.prog_fd(), frames);
      double seed_now = (seed_before + seed_ns()) / 2;
      rep.add({"worst case", std::string("crafted ") + fname + ", " + what + ", hit and miss", ns,
               "ns", "seed design, 1 exact rule, beside it", ns / seed_now});
      worst_case = std::max(worst_case, ns / seed_now);
    }
  }

  if (!plot.empty()) {  // one gnuplot block per family, as prog_run_bench's mixes
    std::FILE* f = std::fopen(plot.c_str(), "w");
    if (!f) die("cannot write " + plot);
    for (const auto& [fam, rows] : plot_rows) {
      std::fprintf(f, "\"ClassBench %s\" ratio\n", fam.c_str());
      for (const auto& [n, r] : rows) std::fprintf(f, "%zu %.3f\n", n, r);
      std::fprintf(f, "\n\n");
    }
    std::fclose(f);
  }

  rep.print_markdown("ClassBench sets, per-packet cost (BPF_PROG_TEST_RUN)");
  std::printf(
      "\n%zu headers per set (3/4 drawn inside a filter, 1/4 random), repeat %d each, "
      "median of %d rounds\n",
      g_headers, g_repeat, g_rounds);
  if (!csv.empty()) rep.append_csv(csv);
  std::printf(
      "\nSUMMARY classbench: 10,000-rule sets at most %.2fx the seed design's one-rule "
      "cost",
      worst_10k);
  if (!quick)
    std::printf(
        "; 100,000 at most %.2fx 1,000; IPv6 at most %.2fx IPv4; 100,000 loaded in at "
        "most %.2f s; rule add/del at 100,000 p99 at most %.2f ms",
        worst_growth, worst_v6, worst_load, worst_add_p99);
  std::printf("; crafted worst case at most %.2fx\n", worst_case);
  return 0;
}
