// agent_bench: the real xdpfw-host with libxdpfw.so in a namespace of the
// benchmark's own, measured from outside the way an operator sees it:
//   flood    unmatched frames with logging on: datapath rate beside the
//            matched path, events written per second, suppressed, lost, CPU;
//   control  100,000 rules through one batch replace (beside nftables
//            loading a 100,000-element set), `rule add` round trips while the
//            datapath drops traffic (beside a no-op command on the same socket);
//   sets     set add/del over one pipelined connection, journal on, traffic
//            running, beside nftables' `nft -i` on a timeout set; one at a
//            time; a process per change (xdpfw-ctl beside nft);
//   hotplug  link created to XDP attached, one link at a time and a burst of
//            200 (beside the time the link creation itself took);
//   memory   agent RSS and kernel map memory with 100,000 rules (beside the
//            idle agent).
//   xdpfw_agent_bench [--quick] [--csv FILE] [flood|control|sets|hotplug|memory ...]
#include <arpa/inet.h>
#include <net/if.h>
#include <signal.h>
#include <cstring>

#include <atomic>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "bench_common.hpp"
#include "common/classbench.hpp"
#include "datapath/packet_builder.hpp"
#include "floor.skel.h"
#include "support/firewall_agent.hpp"
#include "veth_pair.hpp"

using namespace xdpfw;
using namespace xdpfw::bench;
namespace fs = std::filesystem;

namespace {

bool g_quick = false;

std::vector<uint8_t> frame_of(const PacketFields& f) {
  return test::build_packet(test::PacketSpec{.f = f, .payload = 18});  // 64-byte frame
}

using test::ControlConnection;

// The agent as the benchmarks run it, in the receiving namespace: native
// mode, warnings only (so: ready once its socket exists), killed with the
// benchmark; the tests' agent otherwise (tests/support), with a private
// folder, log, state and bpf filesystem, stopped and cleaned up at the end.
struct BenchAgent : test::FirewallAgent {
  BenchAgent(const NetNs& ns, const std::string& plugin_section)
      : FirewallAgent(ns, "mode = native\n" + plugin_section, "", "log-level = warning\n") {
    start(Start{.ready_by_socket = true, .deathsig = SIGKILL});
  }
  // User plus system CPU seconds so far.
  double cpu_s() const {
    return static_cast<double>(test::cpu_ticks(pid())) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  // A line of /proc/PID/status in MiB (VmRSS, VmHWM).
  double status_mib(const std::string& key) const {
    return static_cast<double>(test::proc_status_kib(pid(), key + ":")) / 1024.0;
  }
  // VmRSS once it holds still: after a replace the agent answers first and
  // brings the other slot up to date after the grace period (its batches
  // are freed when it is done), so that a read 300 ms after the answer may
  // land in the middle of it. That transient counts in VmHWM; RSS here is
  // what the agent keeps. Unchanged for half a second, at most 10 s.
  double settled_rss_mib() const {
    double last = status_mib("VmRSS");
    for (int same = 0, i = 0; same < 5 && i < 100; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      double now = status_mib("VmRSS");
      same = now == last ? same + 1 : 0;
      last = now;
    }
    return last;
  }
  // Kernel memory of the BPF maps the agent holds.
  double map_mib() const {
    return static_cast<double>(test::bpf_map_bytes(pid())) / (1024.0 * 1024.0);
  }
};

size_t count_lines(const fs::path& p) {
  std::ifstream in(p);
  return static_cast<size_t>(
      std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
}

std::string rules_payload(const Mix& mix, uint32_t n) {
  std::string s;
  s.reserve(n * 80);
  for (uint32_t i = 0; i < n; ++i) {
    Rule r = mix.rule(i);
    r.action = Action::drop;
    s += format_rule(r) + "\n";
  }
  return s;
}

// Unmatched frames with logging on, beside the matched path on the same
// program. Both are dropped (default-action drop), so the difference is the
// unmatched path: every candidate table probed, the token bucket, the perf event.
// Twice: at the default event cap (1,000/s: the per-packet cost as
// deployed), and at 1,000,000/s (how many lines the agent writes, and what
// that costs the datapath and the agent's CPU).
void bench_flood(Report& rep) {
  VethPair pair;
  double seconds = g_quick ? 0.3 : 2.0;
  double ncpu = static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN));
  std::string summary;
  double offered = 0;  // by the unmatched flood
  for (uint64_t rate : {uint64_t{1000}, uint64_t{1000000}}) {
    uint64_t burst = rate / 10;
    std::string cap = ", event-rate " + std::to_string(rate);
    BenchAgent agent(pair.rx(),
                     "interfaces = " + std::string(VethPair::rx_dev) +
                         "\ndefault-action = drop\nevent-rate = " + std::to_string(rate) +
                         "\nevent-burst = " + std::to_string(burst));
    ControlConnection ctl(agent.sock);
    Rule r = exact_v4_mix().rule(0);
    r.action = Action::drop;
    if (ctl.ask("rule add " + format_rule(r) + "\n").rfind("ERR", 0) == 0) die("rule add");
    agent.wait_attached(VethPair::rx_dev);
    auto counter = [&] { return pair.rx_xdp_packets(); };
    auto matched = pair.measure(frame_of(exact_v4_mix().hit(0)), counter, seconds, 1);

    PacketFields miss = exact_v4_mix().hit(0);
    miss.dport = 9;  // no rule
    std::vector<uint8_t> frame = frame_of(miss);
    auto before = ctl.ask_json("show stats json\n");
    size_t lines0 = count_lines(agent.log_file());
    double cpu0 = agent.cpu_s(), t0 = now_s();
    auto unmatched = pair.measure(frame, counter, seconds, 1);
    offered = unmatched.offered_pps;
    double flood_s = now_s() - t0;
    double cpu = agent.cpu_s() - cpu0;
    // The agent drains its ring at least once a second: wait until the log stops growing.
    size_t lines1 = count_lines(agent.log_file());
    for (int i = 0; i < 50; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      size_t l = count_lines(agent.log_file());
      if (l == lines1 && i > 6) break;
      lines1 = l;
    }
    auto after = ctl.ask_json("show stats json\n");
    auto d = [&](const char* k) {
      return static_cast<double>(after[k].get<uint64_t>() - before[k].get<uint64_t>());
    };
    double written = static_cast<double>(lines1 - lines0);
    double cost = matched.delivered_pps / unmatched.delivered_pps;
    rep.add({"flood", "matched path (drop rule hit)" + cap, matched.delivered_pps / 1e6, "Mpps", "",
             0, pair.note(matched)});
    rep.add({"flood", "unmatched flood, logging on" + cap, unmatched.delivered_pps / 1e6, "Mpps",
             "matched path", unmatched.delivered_pps / matched.delivered_pps,
             pair.note(unmatched)});
    rep.add({"flood", "per-packet cost unmatched / matched" + cap, cost, "x", "", 0,
             matched.generator_bound() || unmatched.generator_bound()
                 ? "generator-bound: the cost is at least this"
                 : ""});
    rep.add({"flood", "events sent by the kernel" + cap, d("events_sent"), "events", "", 0});
    rep.add({"flood", "events suppressed (over the cap)" + cap, d("events_suppressed"), "events",
             "", 0});
    rep.add({"flood", "events failed (perf ring full; the agent reads them as lost)" + cap,
             d("events_failed"), "events", "", 0});
    rep.add({"flood", "log lines written" + cap, written, "lines", "events sent",
             written / std::max(1.0, d("events_sent"))});
    rep.add({"flood", "log lines per second of flood" + cap, written / flood_s, "lines/s", "", 0});
    // Each CPU has its own bucket of rate/CPUs (and burst/CPUs); the
    // generator's frames all arrive on one CPU.
    double cpu_cap = (static_cast<double>(rate) * flood_s + static_cast<double>(burst)) / ncpu;
    rep.add({"flood", "cap for one CPU over the flood" + cap, cpu_cap, "events", "", 0});
    rep.add({"flood", "events sent, share of that cap" + cap, 100.0 * d("events_sent") / cpu_cap,
             "%", "", 0});
    rep.add(
        {"flood", "agent CPU during the flood" + cap, 100.0 * cpu / flood_s, "% of a CPU", "", 0});
    char line[256];
    std::snprintf(line, sizeof line,
                  "%s cap %llu/s: unmatched %.2fx the matched cost%s, %.0f lines/s, %.0f failed, "
                  "agent CPU %.0f%%",
                  summary.empty() ? "" : ";", static_cast<unsigned long long>(rate), cost,
                  matched.generator_bound() ? " (generator-bound)" : "", written / flood_s,
                  d("events_failed"), 100.0 * cpu / flood_s);
    summary += line;
  }
  std::printf("SUMMARY flood: %s generator offering %.2f Mpps;%s\n",
              pair.generator().name().c_str(), offered / 1e6, summary.c_str());

  // A SYN flood from one source against the per-source rate rule, beside
  // the same flood against an exact drop rule: what a rate rule costs on
  // the veth, and what passes (the budget: burst + rate x time).
  PacketFields syn = test::fields4("198.18.0.7", "198.18.0.1", proto_tcp, 40000, 22);
  std::vector<uint8_t> syn_frame = test::build_packet(test::PacketSpec{.f = syn, .payload = 6});
  VethPair::Rate rate_r{}, exact_r{};
  double passed = 0, budget = 0;
  for (const char* rule :
       {"src 198.18.0.7 proto tcp dport 22 action drop",
        "proto tcp tcp-flags syn,!ack rate 1000/s burst 100 per src action drop"}) {
    BenchAgent agent(pair.rx(), "interfaces = " + std::string(VethPair::rx_dev));
    ControlConnection ctl(agent.sock);
    if (ctl.ask("rule add " + std::string(rule) + "\n").rfind("ERR", 0) == 0) die("rule add");
    agent.wait_attached(VethPair::rx_dev);
    auto before = ctl.ask_json("show stats json\n");
    double t0 = now_s();
    auto r = pair.measure(
        syn_frame, [&] { return pair.rx_xdp_packets(); }, seconds, 1);
    double secs = now_s() - t0;
    auto after = ctl.ask_json("show stats json\n");
    bool is_rate = std::strstr(rule, "rate") != nullptr;
    (is_rate ? rate_r : exact_r) = r;
    if (is_rate) {
      passed = static_cast<double>(after["rate_under"].get<uint64_t>() -
                                   before["rate_under"].get<uint64_t>());
      budget = 100 + 1000 * secs;
    }
  }
  double rate_pps = rate_r.delivered_pps, exact_pps = exact_r.delivered_pps;
  rep.add({"syn flood", "SYN flood, exact drop rule", exact_pps / 1e6, "Mpps", "", 0,
           pair.note(exact_r)});
  rep.add({"syn flood", "SYN flood, rate 1000/s burst 100 per src rule", rate_pps / 1e6, "Mpps",
           "exact drop rule", rate_pps / exact_pps, pair.note(rate_r)});
  rep.add({"syn flood", "SYNs passed under the rate", passed, "packets",
           "budget (burst + rate x time)", passed / budget});
  std::printf(
      "SUMMARY syn flood: rate rule %.2f Mpps (%.2fx the exact rule), %.0f passed of a "
      "budget of %.0f\n",
      rate_pps / 1e6, rate_pps / exact_pps, passed, budget);
}

// 100,000 rules through one batch replace, beside nftables loading a
// 100,000-element set into a namespace of its own; then `rule add` round
// trips while the datapath drops traffic, beside `show version`.
void bench_control(Report& rep) {
  VethPair pair;
  BenchAgent agent(pair.rx(), "interfaces = " + std::string(VethPair::rx_dev));
  ControlConnection ctl(agent.sock);
  const uint32_t n = 100000;

  std::string payload = rules_payload(exact_v4_mix(), n);
  double t0 = now_s();
  std::string reply = ctl.ask("rule replace <<\n" + payload + "\n");
  double replace_s = now_s() - t0;
  if (reply.rfind("ERR", 0) == 0) die("rule replace: " + reply);

  std::string file = "/tmp/xdpfw-bench-nftset-" + std::to_string(getpid());
  {
    std::ofstream o(file);
    o << "table netdev xdpfwbench {\n  set blocklist {\n    type ipv4_addr\n    elements = {";
    char b[INET_ADDRSTRLEN];
    for (uint32_t i = 0; i < n; ++i)
      o << (i ? ", " : " ") << inet_ntop(AF_INET, sources_v4_mix().hit(i).src.data(), b, sizeof b);
    o << " }\n  }\n}\n";
  }
  t0 = now_s();
  pair.tx().run("nft -f " + file);
  double nft_s = now_s() - t0;
  std::remove(file.c_str());
  rep.add({"control", "rule replace, 100000 exact rules", replace_s, "s",
           "nft -f, 100000-element set", replace_s / nft_s});
  rep.add({"control", "nft -f, 100000-element set", nft_s, "s", "", 0});

  // Round trips of COUNT requests, GAP_MS apart (0: back to back).
  auto round_trips = [&](const std::string& what, int count, int gap_ms,
                         const std::function<std::string(int)>& req) {
    std::vector<double> ms;
    for (int i = 0; i < count; ++i) {
      std::string q = req(i);
      double s = now_s();
      std::string a = ctl.ask(q);
      ms.push_back((now_s() - s) * 1e3);
      if (a.rfind("ERR", 0) == 0) die(what + ": " + a);
      std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
    }
    return std::make_pair(quantile(ms, 0.5), quantile(ms, 0.99));
  };
  int count = g_quick ? 20 : 200;
  auto noop = round_trips("version", count, 0, [](int) { return std::string("version\n"); });
  // Each add is a new exact 5-tuple (addresses and ports no other rule has).
  auto add_new = [](int i) {
    Rule r = exact_v4_mix().rule(160000 + static_cast<uint32_t>(i));
    r.action = Action::drop;
    return "rule add " + format_rule(r) + "\n";
  };
  // One add every 50 ms, as an operator or a script reacting to events
  // would; and back to back, where each waits for the grace period its
  // predecessor started (docs/DATAPATH.md).
  // At 100,000 rules: 1,000 samples each (the target's p99 needs that many),
  // one every 10 ms.
  const int count_100k = g_quick ? 20 : 1000, gap_100k = 10;
  auto idle_100k =
      round_trips("rule add", count_100k, gap_100k, [&](int i) { return add_new(9000 + i); });
  // Traffic the datapath drops while rules change, as fast as the generator goes.
  std::vector<uint8_t> dropped_frame = frame_of(exact_v4_mix().hit(7));
  auto load = std::make_unique<VethPair::Load>(pair, dropped_frame, 0);
  auto at_100k =
      round_trips("rule add", count_100k, gap_100k, [&](int i) { return add_new(20000 + i); });
  double offered_100k = load->stop();
  ctl.ask("rule flush\n");
  ctl.ask("rule replace <<\n" + rules_payload(exact_v4_mix(), 1000) + "\n");
  auto idle_1k = round_trips("rule add", count, 50, [&](int i) { return add_new(8000 + i); });
  load = std::make_unique<VethPair::Load>(pair, dropped_frame, 0);
  auto at_1k = round_trips("rule add", count, 50, [&](int i) { return add_new(1000 + i); });
  auto burst_1k = round_trips("rule add", count, 0, [&](int i) { return add_new(5000 + i); });
  double offered_1k = load->stop();
  auto row = [&](const std::string& what, double v, double base, const char* base_name) {
    std::string note;
    if (what.find("under traffic") != std::string::npos) {
      char b[48];
      double offered = what.find("100000") != std::string::npos ? offered_100k : offered_1k;
      std::snprintf(b, sizeof b, ", offered %.2f Mpps", offered / 1e6);
      note = pair.generator().name() + b;
    }
    rep.add({"control", what, v, "ms", base_name, v / base, note});
  };
  rep.add({"control", "no-op command round trip p50 (version)", noop.first, "ms", "", 0});
  rep.add({"control", "no-op command round trip p99 (version)", noop.second, "ms", "", 0});
  row("rule add p50, 1000 rules, one per 50 ms, no traffic", idle_1k.first, noop.first,
      "no-op p50");
  row("rule add p99, 1000 rules, one per 50 ms, no traffic", idle_1k.second, noop.second,
      "no-op p99");
  const std::string at100k =
      "100000 rules, one per 10 ms, " + std::to_string(count_100k) + " samples, ";
  row("rule add p50, " + at100k + "no traffic", idle_100k.first, noop.first, "no-op p50");
  row("rule add p99, " + at100k + "no traffic", idle_100k.second, noop.second, "no-op p99");
  row("rule add p50, 1000 rules, one per 50 ms, under traffic", at_1k.first, noop.first,
      "no-op p50");
  row("rule add p99, 1000 rules, one per 50 ms, under traffic", at_1k.second, noop.second,
      "no-op p99");
  row("rule add p50, 1000 rules, back to back, under traffic", burst_1k.first, noop.first,
      "no-op p50");
  row("rule add p99, 1000 rules, back to back, under traffic", burst_1k.second, noop.second,
      "no-op p99");
  row("rule add p50, " + at100k + "under traffic", at_100k.first, noop.first, "no-op p50");
  row("rule add p99, " + at100k + "under traffic", at_100k.second, noop.second, "no-op p99");
  std::printf(
      "SUMMARY control: 100,000 rules replaced in %.2f s (nft set %.2f s); rule add at 1,000 "
      "rules p50 %.2f ms p99 %.2f ms (back to back p99 %.1f ms), p99 %.1f ms at 100,000; under "
      "traffic from the %s generator offering %.2f Mpps\n",
      replace_s, nft_s, at_1k.first, at_1k.second, burst_1k.second, at_100k.second,
      pair.generator().name().c_str(), offered_1k / 1e6);
}

// The address of change I (10.0.0.0/8, no other element has it).
std::string change_addr(uint32_t i) {
  return "10." + std::to_string(i >> 16 & 255) + "." + std::to_string(i >> 8 & 255) + "." +
         std::to_string(i & 255);
}

// Address sets: set add and del of N elements over one pipelined connection
// with the state journal on and traffic running at 1 Mpps (every frame a set
// lookup, dropped as a member; and again under a flood), beside nftables
// making the same changes to a
// `flags interval, timeout` set on a veth pair of its own with the same
// traffic, through one `nft -i` stream (a transaction per change) and as
// one `nft -f` batch; one change at a time (round trips beside a no-op);
// one process per change, as fail2ban runs its actions (xdpfw-ctl beside
// `nft add element`).
void bench_sets(Report& rep) {
  const uint32_t n = g_quick ? 20000 : 100000;
  const uint32_t nft_n = g_quick ? 300 : 10000;  // nft -i: 5-10 ms each on this kind
  const int procs = g_quick ? 50 : 200;
  VethPair pair;
  BenchAgent agent(pair.rx(),
                   "interfaces = " + std::string(VethPair::rx_dev) + "\nset = bench timeout 1h");
  ControlConnection ctl(agent.sock);
  auto must_ok = [](const std::string& what, const std::string& reply) {
    if (reply.rfind("ERR", 0) == 0) die(what + ": " + reply);
  };
  must_ok("rule add", ctl.ask("rule add prio 1 src @bench action drop\n"));
  must_ok("set add", ctl.ask("set add bench 198.18.0.7 timeout none\n"));
  PacketFields f = exact_v4_mix().hit(7);
  f.src = {198, 18, 0, 7};
  std::vector<uint8_t> frame = frame_of(f);
  auto member_hits = [&] {
    std::string r = ctl.ask("set list bench json\n");
    must_ok("set list", r);
    nlohmann::json j = nlohmann::json::parse(r);
    for (const nlohmann::json& m : j.at("members"))
      if (m.at("element") == "198.18.0.7") return m.at("hits").get<double>();
    die("set list: 198.18.0.7 is missing");
  };
  // Pipelined: N adds, then N dels; per change, the time from its write to
  // its reply (queueing included).
  auto pipelined = [&](const std::string& what, const std::function<std::string(uint32_t)>& req) {
    std::vector<std::string> reqs;
    for (uint32_t i = 0; i < n; ++i) reqs.push_back(req(i));
    std::vector<double> sent(n), lat(n);
    double t0 = now_s(), end = 0;
    ctl.pipeline(
        reqs, [&](size_t i) { sent[i] = now_s(); },
        [&](size_t i, const std::string& r) {
          end = now_s();
          if (r.rfind("ERR", 0) == 0) die(what + ": " + r);
          lat[i] = (end - sent[i]) * 1e3;
        });
    return std::make_tuple(n / (end - t0), quantile(lat, 0.5), quantile(lat, 0.99));
  };
  auto adds = [](uint32_t i) { return "set add bench " + change_addr(i) + " timeout 10m\n"; };
  auto dels = [](uint32_t i) { return "set del bench " + change_addr(i) + "\n"; };
  // Under a flood first (the generator's CPU is not the agent's).
  std::tuple<double, double, double> flood_add, flood_del;
  double flood_hits = member_hits(), flood_offered;
  {
    VethPair::Load traffic(pair, frame, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    flood_add = pipelined("set add", adds);
    flood_del = pipelined("set del", dels);
    flood_offered = traffic.stop();
  }
  if (member_hits() <= flood_hits) die("no frame found the set during the flood");
  const double pps = 1e6;
  double hits0 = member_hits();
  double t_traffic = now_s();
  std::tuple<double, double, double> add, del;
  std::pair<double, double> one_add, noop;
  double offered;
  {
    VethPair::Load traffic(pair, frame, pps);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    add = pipelined("set add", adds);
    del = pipelined("set del", dels);
    // One at a time.
    std::vector<double> a, v;
    for (int i = 0; i < procs; ++i) {
      double t = now_s();
      must_ok("set add", ctl.ask("set add bench " + change_addr(n + uint32_t(i)) + "\n"));
      a.push_back((now_s() - t) * 1e3);
      t = now_s();
      ctl.ask("version\n");
      v.push_back((now_s() - t) * 1e3);
    }
    one_add = {quantile(a, 0.5), quantile(a, 0.99)};
    noop = {quantile(v, 0.5), quantile(v, 0.99)};
    offered = traffic.stop();
  }
  double traffic_s = now_s() - t_traffic;
  double dropped = member_hits() - hits0;
  if (dropped <= 0) die("no frame found the set while it changed");
  fs::path journal = agent.dir / "state" / "sets.journal";
  bool journal_on = fs::exists(journal) || fs::exists(agent.dir / "state" / "sets.state");
  if (!journal_on) die("the agent wrote no set state");

  // A process per change (fail2ban's way): xdpfw-ctl beside nft.
  std::vector<double> ctl_proc;
  for (int i = 0; i < procs; ++i) {
    double t = now_s();
    std::string out =
        shell(std::string(XDPFW_CTL_BIN) + " --socket " + agent.sock.string() + " set add bench " +
              change_addr(2 * n + uint32_t(i)) + " timeout 600s 2>&1");
    ctl_proc.push_back((now_s() - t) * 1e3);
    if (out.find("added") == std::string::npos) die("xdpfw-ctl set add: " + out);
  }

  // nftables: the same frames on a pair of its own, dropped by a set rule.
  VethPair npair;
  Nft nft(npair,
          "  set s {\n    type ipv4_addr\n    flags interval, timeout\n    elements = { "
          "198.18.0.7 }\n  }\n",
          "    ip saddr @s counter name hits drop\n");
  auto nft_stream = [&](const std::string& cmds) {
    std::string file = "/tmp/xdpfw-bench-nft-i-" + std::to_string(getpid());
    std::ofstream(file) << cmds;
    double t = now_s();
    npair.rx().run("nft -i < " + file);
    double took = now_s() - t;
    std::remove(file.c_str());
    return took;
  };
  std::string nft_adds, nft_dels, batch;
  for (uint32_t i = 0; i < nft_n; ++i) {
    nft_adds += "add element netdev xdpfwbench s { " + change_addr(i) + " timeout 10m }\n";
    nft_dels += "delete element netdev xdpfwbench s { " + change_addr(i) + " }\n";
  }
  for (uint32_t i = 0; i < n; ++i)
    batch += "add element netdev xdpfwbench s { " + change_addr(i) + " timeout 10m }\n";
  uint64_t nft_hits0 = nft.hits();
  double nft_add_s, nft_del_s, nft_batch_s;
  std::vector<double> nft_proc;
  double nft_offered;
  {
    VethPair::Load traffic(npair, frame, pps);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    nft_add_s = nft_stream(nft_adds);
    nft_del_s = nft_stream(nft_dels);
    for (int i = 0; i < procs; ++i) {
      double t1 = now_s();
      npair.rx().run("nft add element netdev xdpfwbench s '{ " + change_addr(2 * n + uint32_t(i)) +
                     " timeout 600s }'");
      nft_proc.push_back((now_s() - t1) * 1e3);
    }
    // Last: the set then holds n elements, which every later nft command would fetch.
    std::string file = "/tmp/xdpfw-bench-nft-f-" + std::to_string(getpid());
    std::ofstream(file) << batch;
    double t = now_s();
    npair.rx().run("nft -f " + file);
    nft_batch_s = now_s() - t;
    std::remove(file.c_str());
    nft_offered = traffic.stop();
  }
  if (nft.hits() <= nft_hits0) die("no frame found the nft set while it changed");

  double nft_add = nft_n / nft_add_s, nft_del = nft_n / nft_del_s, nft_batch = n / nft_batch_s;
  // The traffic asked for is 1 Mpps; what the generator offered is the note.
  auto offered_note = [&](double pps) {
    char b[48];
    std::snprintf(b, sizeof b, ", offered %.2f Mpps", pps / 1e6);
    return pair.generator().name() + b;
  };
  std::string at = " (" + std::to_string(n) + ", journal on, traffic up to 1 Mpps)";
  rep.add({"sets", "set add, pipelined, changes/s" + at, std::get<0>(add), "/s",
           "nft -i add element", std::get<0>(add) / nft_add, offered_note(offered)});
  rep.add({"sets", "set del, pipelined, changes/s" + at, std::get<0>(del), "/s",
           "nft -i delete element", std::get<0>(del) / nft_del, offered_note(offered)});
  rep.add({"sets", "set add, pipelined, changes/s, under a flood", std::get<0>(flood_add), "/s",
           "traffic up to 1 Mpps", std::get<0>(flood_add) / std::get<0>(add),
           offered_note(flood_offered)});
  rep.add({"sets", "set del, pipelined, changes/s, under a flood", std::get<0>(flood_del), "/s",
           "traffic up to 1 Mpps", std::get<0>(flood_del) / std::get<0>(del),
           offered_note(flood_offered)});
  rep.add({"sets", "set add, pipelined, write to reply p50", std::get<1>(add), "ms", "", 0});
  rep.add({"sets", "set add, pipelined, write to reply p99", std::get<2>(add), "ms", "", 0});
  rep.add({"sets", "set del, pipelined, write to reply p50", std::get<1>(del), "ms", "", 0});
  rep.add({"sets", "set del, pipelined, write to reply p99", std::get<2>(del), "ms", "", 0});
  rep.add({"sets",
           "nft -i add element, changes/s (" + std::to_string(nft_n) + ", traffic up to 1 Mpps)",
           nft_add, "/s", "", 0, offered_note(nft_offered)});
  rep.add({"sets",
           "nft -i delete element, changes/s (" + std::to_string(nft_n) + ", traffic up to 1 Mpps)",
           nft_del, "/s", "", 0, offered_note(nft_offered)});
  rep.add({"sets", "nft -f, " + std::to_string(n) + " add element in one batch, elements/s",
           nft_batch, "/s", "", 0});
  rep.add({"sets", "set add, one at a time, round trip p50", one_add.first, "ms", "no-op p50",
           one_add.first / noop.first});
  rep.add({"sets", "set add, one at a time, round trip p99", one_add.second, "ms", "no-op p99",
           one_add.second / noop.second});
  rep.add({"sets", "xdpfw-ctl set add, a process per change, p50", quantile(ctl_proc, 0.5), "ms",
           "nft add element p50", quantile(ctl_proc, 0.5) / quantile(nft_proc, 0.5)});
  rep.add({"sets", "xdpfw-ctl set add, a process per change, p99", quantile(ctl_proc, 0.99), "ms",
           "nft add element p99", quantile(ctl_proc, 0.99) / quantile(nft_proc, 0.99)});
  rep.add(
      {"sets", "nft add element, a process per change, p50", quantile(nft_proc, 0.5), "ms", "", 0});
  rep.add({"sets", "nft add element, a process per change, p99", quantile(nft_proc, 0.99), "ms", "",
           0});
  rep.add({"sets", "frames dropped as set members meanwhile", dropped, "frames", "", 0});
  rep.add({"sets", "of them per second of traffic", dropped / traffic_s / 1e6, "Mpps", "", 0,
           offered_note(offered)});
  std::printf(
      "SUMMARY sets: %.0f set adds/s and %.0f dels/s pipelined (journal on, %.2f Mpps of set "
      "members dropped meanwhile, %s; nft -i %.0f and %.0f/s; under a flood %.0f and %.0f/s), "
      "pipelined p99 %.1f / %.1f ms; one at a time p99 %.2f ms; a process per change p50 %.1f ms "
      "(nft %.1f ms)\n",
      std::get<0>(add), std::get<0>(del), dropped / traffic_s / 1e6, offered_note(offered).c_str(),
      nft_add, nft_del, std::get<0>(flood_add), std::get<0>(flood_del), std::get<2>(add),
      std::get<2>(del), one_add.second, quantile(ctl_proc, 0.5), quantile(nft_proc, 0.5));
}

// Is XDP attached to DEV in the namespace we are in?
bool xdp_attached(const std::string& dev) {
  unsigned idx = if_nametoindex(dev.c_str());
  if (!idx) return false;
  LIBBPF_OPTS(bpf_xdp_query_opts, q);
  return bpf_xdp_query(static_cast<int>(idx), 0, &q) == 0 && q.prog_id != 0;
}

// Link created to XDP attached, single links and a burst, beside how long
// the creation itself took (ip -batch returning).
void bench_hotplug(Report& rep) {
  NetNs ns("hp");
  BenchAgent agent(ns, "interfaces = xbh*");
  ControlConnection ctl(agent.sock);
  auto batch = [&](const std::string& name, const std::string& text) {
    std::ofstream(name) << text;
    return "ip -n " + ns.name() + " -batch " + name;
  };
  std::string file = "/tmp/xdpfw-bench-batch-" + std::to_string(getpid());
  // Waits until every link of NAMES carries XDP; latency of each from T0 in ms.
  auto wait_attached = [&](const std::vector<std::string>& names, double t0) {
    std::vector<double> ms(names.size(), -1);
    InNs in(ns);
    size_t left = names.size();
    for (double until = now_s() + 10; left && now_s() < until;) {
      for (size_t i = 0; i < names.size(); ++i)
        if (ms[i] < 0 && xdp_attached(names[i])) {
          ms[i] = (now_s() - t0) * 1e3;
          --left;
        }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (left) die(std::to_string(left) + " links were not attached within 10 s");
    return ms;
  };
  int singles = g_quick ? 10 : 50;
  // The kernel's own share: the benchmark attaching a program itself to a
  // link it just created (a name the agent does not watch).
  std::vector<double> raw;
  {
    floor_bpf* fl = floor_bpf__open_and_load();
    if (!fl) die("cannot load the floor program");
    for (int i = 0; i < singles; ++i) {
      std::string name = "xbr" + std::to_string(i);
      must(batch(file, "link add " + name + " type veth peer name xbq" + std::to_string(i) +
                           "\nlink set " + name + " up\n"));
      {
        InNs in(ns);
        int idx = static_cast<int>(if_nametoindex(name.c_str()));
        double t0 = now_s();
        if (bpf_xdp_attach(idx, bpf_program__fd(fl->progs.floor_main), XDP_FLAGS_DRV_MODE, nullptr))
          die("attach to " + name);
        raw.push_back((now_s() - t0) * 1e3);
      }
      must(batch(file, "link del " + name + "\n"));
    }
    floor_bpf__destroy(fl);
  }
  std::vector<double> single, create;
  for (int i = 0; i < singles; ++i) {
    std::string name = "xbh" + std::to_string(i);
    std::string cmd = batch(file, "link add " + name + " type veth peer name xbp" +
                                      std::to_string(i) + "\nlink set " + name + " up\n");
    double t0 = now_s();
    must(cmd);
    create.push_back((now_s() - t0) * 1e3);
    single.push_back(wait_attached({name}, t0)[0]);
    must(batch(file, "link del " + name + "\n"));
  }
  std::string text, del;
  std::vector<std::string> names;
  for (int i = 0; i < 200; ++i) {
    names.push_back("xbh" + std::to_string(1000 + i));
    text += "link add " + names.back() + " type veth peer name xbp" + std::to_string(1000 + i) +
            "\nlink set " + names.back() + " up\n";
    del += "link del " + names.back() + "\n";
  }
  std::string cmd = batch(file, text);
  double t0 = now_s();
  must(cmd);
  double burst_create = (now_s() - t0) * 1e3;
  std::vector<double> burst = wait_attached(names, t0);
  must(batch(file, del));
  std::remove(file.c_str());
  double burst_all = *std::max_element(burst.begin(), burst.end());
  rep.add({"hotplug", "single link: created to attached p50", quantile(single, 0.5), "ms",
           "creation + kernel attach p50",
           quantile(single, 0.5) / (quantile(create, 0.5) + quantile(raw, 0.5))});
  rep.add({"hotplug", "single link: created to attached p99", quantile(single, 0.99), "ms",
           "creation + kernel attach p99",
           quantile(single, 0.99) / (quantile(create, 0.99) + quantile(raw, 0.99))});
  rep.add({"hotplug", "single link: creation itself p50 (ip)", quantile(create, 0.5), "ms", "", 0});
  rep.add({"hotplug", "single link: the kernel's XDP attach alone p50", quantile(raw, 0.5), "ms",
           "", 0});
  rep.add({"hotplug", "single link: the kernel's XDP attach alone p99", quantile(raw, 0.99), "ms",
           "", 0});
  rep.add({"hotplug", "burst of 200: all attached", burst_all, "ms", "creation of the 200",
           burst_all / burst_create});
  rep.add({"hotplug", "burst of 200: per-link p50", quantile(burst, 0.5), "ms", "", 0});
  rep.add({"hotplug", "burst of 200: per-link p99", quantile(burst, 0.99), "ms", "", 0});
  rep.add({"hotplug", "burst of 200: creation itself", burst_create, "ms", "", 0});
  std::printf(
      "SUMMARY hotplug: single link attached p50 %.1f ms p99 %.1f ms; burst of 200 all "
      "attached in %.0f ms (creating them took %.0f ms)\n",
      quantile(single, 0.5), quantile(single, 0.99), burst_all, burst_create);
}

// Until the agent's map memory stays the same for 200 ms (at most 5 s),
// then 300 ms more for the host to free the request.
void settle(const BenchAgent& a) {
  double last = -1;
  for (int i = 0; i < 25; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    double now = a.map_mib();
    if (now == last) break;
    last = now;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
}

// Agent RSS and the kernel memory of its maps, idle and with 100,000 rules.
void bench_memory(Report& rep) {
  NetNs ns("mem");
  BenchAgent agent(ns, "");
  ControlConnection ctl(agent.sock);
  ctl.ask("show stats\n");  // the plugin is up
  double idle_rss = agent.status_mib("VmRSS"), idle_maps = agent.map_mib();
  ctl.ask("rule replace <<\n" + rules_payload(exact_v4_mix(), 100000) + "\n");
  // The host frees the 8 MB request after answering, and the old slot is
  // written on a thread once its grace period is over: let both settle.
  settle(agent);
  double rss = agent.settled_rss_mib();
  ctl.ask("rule list\n");  // the largest reply the agent builds
  double rss_list = agent.status_mib("VmRSS"), hwm = agent.status_mib("VmHWM");
  double maps = agent.map_mib();
  rep.add({"memory", "agent RSS, idle", idle_rss, "MiB", "", 0});
  rep.add({"memory", "agent RSS, 100000 rules", rss, "MiB", "idle agent", rss / idle_rss});
  rep.add({"memory", "agent RSS, 100000 rules, after rule list", rss_list, "MiB", "idle agent",
           rss_list / idle_rss});
  rep.add(
      {"memory", "agent peak RSS (VmHWM), 100000 rules", hwm, "MiB", "idle agent", hwm / idle_rss});
  rep.add({"memory", "kernel map memory, idle", idle_maps, "MiB", "", 0});
  rep.add(
      {"memory", "kernel map memory, 100000 rules", maps, "MiB", "idle agent", maps / idle_maps});
  // The 100,000-rule ClassBench sets, each in an agent of its own (full runs
  // only: three more agents of 100,000 rules double the section's time).
  double cb_worst = 0;
  std::vector<std::string> sets;
  if (!g_quick) sets = {"acl1_100000", "fw1_100000", "ipc1_100000"};
  for (const std::string& set : sets) {
    NetNs cns("mem-" + set.substr(0, set.find('_')));
    BenchAgent a(cns, "");
    ControlConnection c(a.sock);
    c.ask("show stats\n");
    std::string payload;
    auto rules = test::load_classbench(test::classbench_path(set));
    for (Rule& r : rules) {
      r.id = 0;  // as an operator's file: ids are the agent's
      payload += format_rule(r) + "\n";
    }
    std::string reply = c.ask("rule replace <<\n" + payload + "\n");
    if (reply.rfind("ERR", 0) == 0) die(set + ": rule replace: " + reply);
    settle(a);
    double cb_rss = a.settled_rss_mib();
    rep.add({"memory", "agent peak RSS (VmHWM), " + set, a.status_mib("VmHWM"), "MiB", "idle agent",
             a.status_mib("VmHWM") / idle_rss});
    rep.add({"memory", "agent RSS, " + set + " (" + std::to_string(rules.size()) + " rules)",
             cb_rss, "MiB", "idle agent", cb_rss / idle_rss});
    rep.add({"memory", "kernel map memory, " + set, a.map_mib(), "MiB", "idle agent",
             a.map_mib() / idle_maps});
    cb_worst = std::max(cb_worst, cb_rss);
  }
  std::printf(
      "SUMMARY memory: agent RSS %.1f MiB (peak %.1f) with 100,000 rules, %.1f idle; kernel "
      "maps %.1f MiB",
      rss, hwm, idle_rss, maps);
  if (!sets.empty())
    std::printf("; at most %.1f MiB of RSS with a 100,000-rule ClassBench set", cb_worst);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string csv;
  std::vector<std::string> which;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick")
      g_quick = true;
    else if (a == "--csv" && i + 1 < argc)
      csv = argv[++i];
    else if (a == "flood" || a == "control" || a == "sets" || a == "hotplug" || a == "memory")
      which.push_back(a);
    else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--csv FILE] [flood|control|sets|hotplug|memory ...]\n",
                   argv[0]);
      return 2;
    }
  }
  if (geteuid() != 0) die("agent_bench runs the agent in namespaces: run it as root");
  if (which.empty()) which = {"flood", "control", "sets", "hotplug", "memory"};
  signal(SIGPIPE, SIG_IGN);
  const std::map<std::string, std::pair<const char*, void (*)(Report&)>> benches = {
      {"flood",
       {"Unmatched flood with logging on (agent attached, default-action drop)", bench_flood}},
      {"control", {"Control plane", bench_control}},
      {"sets", {"Address sets: changes while traffic runs", bench_sets}},
      {"hotplug", {"Hotplug: link created to XDP attached", bench_hotplug}},
      {"memory", {"Memory", bench_memory}},
  };
  // The rig (tests/support) throws: unwinding stops the agents and deletes
  // the namespaces before the benchmark exits.
  try {
    for (const std::string& w : which) {
      Report rep;
      std::fprintf(stderr, "%s:\n", w.c_str());
      benches.at(w).second(rep);
      rep.print_markdown(benches.at(w).first);
      if (!csv.empty()) rep.append_csv(csv);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    die(e.what());
  }
  return 0;
}
