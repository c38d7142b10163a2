// live_bench: end-to-end packets per second on a veth pair between two
// namespaces, a generator sending (veth_pair.hpp: live frames where the
// kernel allows them, a packet socket otherwise; all of one run on the same
// one), the receiver's own counters saying what arrived. Receivers, in the same run: the
// parse-and-drop floor, the original design, xdpfw at 1, 1,000 and 10,000 exact rules, nftables
// netdev ingress with the same rules as a linear chain (the frame hits the last rule), a
// 100,000-source blocklist as an nftables set and as xdpfw /32 rules, and the ClassBench
// 10,000-rule sets in both (frames of the sets' own protocols, 18 bytes of payload).
//   xdpfw_live_bench [--quick] [--csv FILE]
#include <arpa/inet.h>

#include "bench_common.hpp"
#include "common/classbench.hpp"
#include "datapath.hpp"
#include "datapath/packet_builder.hpp"
#include "floor.skel.h"
#include "seed_baseline.hpp"
#include "veth_pair.hpp"

using namespace xdpfw;
using namespace xdpfw::bench;

namespace {

double g_seconds = 0.5;
int g_rounds = 3;

std::vector<uint8_t> frame_of(const PacketFields& f) {
  return test::build_packet(test::PacketSpec{.f = f, .payload = 18});  // 64-byte frame
}

std::string ip4(const std::array<uint8_t, 16>& a) {
  char b[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, a.data(), b, sizeof b);
  return b;
}

std::string nft_exact_rules(uint32_t n) {
  std::string s;
  for (uint32_t i = 0; i < n; ++i) {
    PacketFields f = exact_v4_mix().hit(i);
    s += "    ip saddr " + ip4(f.src) + " ip daddr " + ip4(f.dst) + " udp sport " +
         std::to_string(f.sport) + " udp dport " + std::to_string(f.dport) +
         " counter name hits drop\n";
  }
  return s;
}

std::string nft_source_set(uint32_t n) {
  std::string s = "  set blocklist {\n    type ipv4_addr\n    elements = {";
  for (uint32_t i = 0; i < n; ++i) s += (i ? ", " : " ") + ip4(sources_v4_mix().hit(i).src);
  return s + " }\n  }\n";
}

// A ClassBench set as nftables rules in the same order, each dropping, and
// a last rule that counts and drops what none matched: every frame that
// reached the hook is counted once.
std::string nft_classbench_rules(const std::vector<Rule>& rules) {
  auto prefix = [](const char* key, const std::optional<Prefix>& p) {
    return p && p->len ? std::string(" ip ") + key + " " + format_prefix(*p) : std::string();
  };
  auto range = [](const char* key, const std::optional<PortRange>& r) {
    if (!r || (r->lo == 0 && r->hi == 65535)) return std::string();
    return std::string(" th ") + key + " " + std::to_string(r->lo) +
           (r->lo == r->hi ? "" : "-" + std::to_string(r->hi));
  };
  std::string s;
  for (const Rule& r : rules) {
    s += "   " + prefix("saddr", r.src) + prefix("daddr", r.dst);
    if (r.proto) s += " meta l4proto " + std::to_string(*r.proto);
    s += range("sport", r.sport) + range("dport", r.dport) + " counter name hits drop\n";
  }
  return s + "    counter name hits drop\n";
}

// The measurements. The rig (tests/support) throws: the exception unwinds,
// deleting the namespaces, to main, which reports it.
int run(bool quick, const std::string& csv) {
  VethPair pair;
  Report rep;
  auto xdp_counter = [&] { return pair.rx_xdp_packets(); };
  auto rate = [&](const std::vector<uint8_t>& frame, const std::function<uint64_t()>& counter) {
    return pair.measure(frame, counter, g_seconds, g_rounds);
  };
  auto xdp_rate = [&](int prog_fd, const std::vector<uint8_t>& frame) {
    pair.attach_rx(prog_fd);
    auto r = rate(frame, xdp_counter);
    pair.attach_rx(-1);
    return r;
  };
  auto mpps = [](double pps) { return pps / 1e6; };
  // A ratio of two rates: when a side took every frame offered, its own
  // limit is higher than measured, and the ratio says which way it errs.
  auto ratio_note = [&](const VethPair::Rate& ours, const VethPair::Rate& theirs) {
    if (ours.generator_bound() && theirs.generator_bound())
      return std::string("both generator-bound: the ratio measures the sender");
    if (ours.generator_bound()) return std::string("xdpfw generator-bound: a lower bound");
    if (theirs.generator_bound()) return std::string("nftables generator-bound: an upper bound");
    return std::string();
  };

  // Baselines: floor and the original design (one exact rule, hit).
  std::vector<uint8_t> hit1 = frame_of(exact_v4_mix().hit(0));
  floor_bpf* fl = floor_bpf__open_and_load();
  if (!fl) die("cannot load the floor program");
  Seed seed(1);
  auto floor_r = xdp_rate(bpf_program__fd(fl->progs.floor_main), hit1);
  auto seed_r = xdp_rate(seed.fd(), hit1);
  floor_bpf__destroy(fl);
  rep.add({"e2e", "floor (parse and drop)", mpps(floor_r.delivered_pps), "Mpps", "", 0,
           pair.note(floor_r)});
  rep.add({"e2e", "generator offered, floor run", mpps(floor_r.offered_pps), "Mpps", "", 0,
           pair.generator().name()});
  rep.add({"e2e", "seed design, 1 rule", mpps(seed_r.delivered_pps), "Mpps", "floor",
           seed_r.delivered_pps / floor_r.delivered_pps, pair.note(seed_r)});

  std::vector<uint32_t> counts =
      quick ? std::vector<uint32_t>{1, 1000} : std::vector<uint32_t>{1, 1000, 10000};
  std::map<uint32_t, VethPair::Rate> xdpfw_r, nft_r;
  {
    KernelDatapath dp;
    for (uint32_t n : counts) {
      dp.apply(make_rules(exact_v4_mix(), n), Policy{});
      // The frame hits the last rule: the worst case of a linear chain.
      auto r = xdp_rate(dp.prog_fd(), frame_of(exact_v4_mix().hit(n - 1)));
      xdpfw_r[n] = r;
      rep.add({"e2e", "xdpfw, " + std::to_string(n) + " exact rules", mpps(r.delivered_pps), "Mpps",
               "floor", r.delivered_pps / floor_r.delivered_pps, pair.note(r)});
    }
  }
  std::vector<uint32_t> nft_counts = quick ? std::vector<uint32_t>{1} : counts;
  for (uint32_t n : nft_counts) {
    Nft nft(pair, "", nft_exact_rules(n));
    auto r = rate(frame_of(exact_v4_mix().hit(n - 1)), [&] { return nft.hits(); });
    nft_r[n] = r;
    rep.add({"e2e", "nftables linear chain, " + std::to_string(n) + " rules", mpps(r.delivered_pps),
             "Mpps", "floor", r.delivered_pps / floor_r.delivered_pps, pair.note(r)});
    rep.add({"e2e", "xdpfw vs nftables at " + std::to_string(n) + " rules",
             xdpfw_r[n].delivered_pps / r.delivered_pps, "x", "", 0, ratio_note(xdpfw_r[n], r)});
  }
  if (!quick) {
    const uint32_t n = 100000;
    std::vector<uint8_t> frame = frame_of(sources_v4_mix().hit(n - 1));
    VethPair::Rate set_r;
    {
      Nft nft(pair, nft_source_set(n), "    ip saddr @blocklist counter name hits drop\n");
      set_r = rate(frame, [&] { return nft.hits(); });
    }
    KernelDatapath dp;
    dp.apply(make_rules(sources_v4_mix(), n), Policy{});
    auto ours = xdp_rate(dp.prog_fd(), frame);
    rep.add({"e2e", "nftables set, 100000 sources", mpps(set_r.delivered_pps), "Mpps", "floor",
             set_r.delivered_pps / floor_r.delivered_pps, pair.note(set_r)});
    rep.add({"e2e", "xdpfw, 100000 /32 source rules", mpps(ours.delivered_pps), "Mpps", "floor",
             ours.delivered_pps / floor_r.delivered_pps, pair.note(ours)});
    rep.add({"e2e", "xdpfw vs nftables set at 100000 sources",
             ours.delivered_pps / set_r.delivered_pps, "x", "", 0, ratio_note(ours, set_r)});
  }

  // The ClassBench 10,000-rule sets, every rule dropping (default drop too),
  // against nftables holding the same rules: frames from headers drawn from
  // each set (hits at any depth and misses), the rate averaged over them.
  std::vector<std::string> cb_sets =
      quick ? std::vector<std::string>{} : std::vector<std::string>{"acl1", "fw1", "ipc1"};
  double cb_worst = 0;
  for (const std::string& fam : cb_sets) {
    std::string set = fam + "_10000";
    auto rules = test::load_classbench(test::classbench_path(set));
    for (Rule& r : rules) r.action = Action::drop;
    std::mt19937_64 rng(7);
    auto headers = test::classbench_headers(rules, 4, rng);  // nft takes ~40 s each
    // Rates averaged over the headers; generator-bound if every one was.
    VethPair::Rate ours{0, 0}, theirs{0, 0};
    auto add = [&](VethPair::Rate& sum, const VethPair::Rate& r) {
      sum.delivered_pps += r.delivered_pps / static_cast<double>(headers.size());
      sum.offered_pps += r.offered_pps / static_cast<double>(headers.size());
    };
    {
      KernelDatapath dp;
      dp.apply(rules, Policy{.default_action = Action::drop});
      for (const auto& h : headers) add(ours, xdp_rate(dp.prog_fd(), frame_of(h)));
    }
    {
      Nft nft(pair, "", nft_classbench_rules(rules));
      for (const auto& h : headers) add(theirs, rate(frame_of(h), [&] { return nft.hits(); }));
    }
    std::string what = set + " (" + std::to_string(rules.size()) + " rules)";
    double ratio = ours.delivered_pps / theirs.delivered_pps;
    rep.add({"e2e", "xdpfw, " + what, mpps(ours.delivered_pps), "Mpps", "floor",
             ours.delivered_pps / floor_r.delivered_pps, pair.note(ours)});
    rep.add({"e2e", "nftables linear chain, " + what, mpps(theirs.delivered_pps), "Mpps", "floor",
             theirs.delivered_pps / floor_r.delivered_pps, pair.note(theirs)});
    rep.add({"e2e", "xdpfw vs nftables, " + set, ratio, "x", "", 0, ratio_note(ours, theirs)});
    cb_worst = cb_worst == 0 ? ratio : std::min(cb_worst, ratio);
  }

  rep.print_markdown("End to end, veth between two namespaces, 64-byte UDP frames");
  std::printf(
      "\ngenerator: %s on the sending veth, %.2f s per run, median of %d runs; rates are frames "
      "counted by the receiver; generator-bound: the receiver took at least 95%% of the frames "
      "offered, so its own limit is above the figure\n",
      pair.generator().describe().c_str(), g_seconds, g_rounds);
  if (!csv.empty()) rep.append_csv(csv);
  std::string bound = ratio_note(xdpfw_r[1], nft_r[1]);
  std::printf(
      "\nSUMMARY e2e: %s generator offering %.2f Mpps; floor %.2f Mpps, seed design %.2f Mpps, "
      "xdpfw 1,000 rules %.2f Mpps (%.2fx floor), nftables 1 rule %.2f Mpps (xdpfw 1 rule %.1fx "
      "it%s)\n",
      pair.generator().name().c_str(), mpps(floor_r.offered_pps), mpps(floor_r.delivered_pps),
      mpps(seed_r.delivered_pps), mpps(xdpfw_r[1000].delivered_pps),
      xdpfw_r[1000].delivered_pps / floor_r.delivered_pps, mpps(nft_r[1].delivered_pps),
      xdpfw_r[1].delivered_pps / nft_r[1].delivered_pps,
      bound.empty() ? "" : ("; " + bound).c_str());
  if (!cb_sets.empty())
    std::printf("SUMMARY e2e classbench: 10,000-rule sets, xdpfw at least %.1fx nftables\n",
                cb_worst);
  return 0;
}

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
  if (geteuid() != 0) die("live_bench creates namespaces and loads BPF programs: run it as root");
  if (shell("command -v nft").empty()) die("nft is not installed (apt-get install nftables)");
  if (quick) {
    g_seconds = 0.15;
    g_rounds = 1;
  }
  try {
    return run(quick, csv);
  } catch (const std::exception& e) {
    die(e.what());
  }
}
