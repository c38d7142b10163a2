// Soak (label soak, not in the default run): XDPFW_SOAK_SECONDS (600 by
// default) of mixed traffic, rule churn and link churn against one agent.
// Its memory and descriptors stay flat, and the per-rule counters add up
// to the packets sent that match them.
//   ctest --test-dir build -L soak --output-on-failure
#include "e2e/traffic.hpp"

using namespace xdpfw::test;
using nlohmann::json;

namespace {

struct Sample {
  double t;
  long rss_kib, fds;
};

Sample sample(pid_t pid, double t) {
  std::string st = read_file("/proc/" + std::to_string(pid) + "/status");
  long rss = std::stol(st.substr(st.find("VmRSS:") + 6));
  long fds = std::distance(fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd"),
                           fs::directory_iterator{});
  return {t, rss, fds};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(soak)

BOOST_AUTO_TEST_CASE(ten_minutes_of_churn) {
  const char* env = std::getenv("XDPFW_SOAK_SECONDS");
  const double seconds = env ? std::atof(env) : 600;
  Pair p;
  p.peer_ns.run("sysctl -qw net.ipv6.conf.all.disable_ipv6=1");
  FirewallAgent fw(p.fw_ns, "interfaces = fwt* churn*\nevent-rate = 5000",
                   "id 1 proto udp dport 5000 action drop\n"
                   "id 2 proto udp dport 5003 action pass\n");
  fw.start_attached("fwt0");
  int open_port = bound(p.fw_ns, AF_INET, 5001);
  int pass_port = bound(p.fw_ns, AF_INET, 5003);
  int tx = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);
  uint64_t to_drop = 0, to_pass = 0, unmatched = 0;
  auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<Sample> samples;
  double next_sample = 0;
  for (int round = 0; elapsed() < seconds; ++round) {
    // Traffic: to the drop rule, the pass rule and unmatched (events).
    send_to(tx, AF_INET, "198.18.0.1", 5000, 20);
    send_to(tx, AF_INET, "198.18.0.1", 5003, 10);
    send_to(tx, AF_INET, "198.18.0.1", 5001, 5);
    to_drop += 20;
    to_pass += 10;
    unmatched += 5;
    drain(open_port);
    drain(pass_port);
    // Rule churn: one rule in, one out.
    std::string added = fw.ask("rule add src 198.19." + std::to_string(round % 250) +
                               ".0/24 proto tcp dport 1-1023 action drop");
    BOOST_TEST_REQUIRE(added.rfind("id ", 0) == 0u, added);
    BOOST_TEST_REQUIRE(fw.ask("rule del " + added.substr(3, added.find('\n') - 3)).find("ERR") ==
                       std::string::npos);
    // Link churn: a matching link comes and goes every 10 rounds.
    if (round % 10 == 0) {
      p.fw_ns.run("ip link add churn0 type veth peer name other0");
      p.fw_ns.run("ip link del churn0");
    }
    if (round % 50 == 0) fw.ask("show metrics");
    if (elapsed() >= next_sample) {
      samples.push_back(sample(fw.host->pid(), elapsed()));
      next_sample += seconds / 20;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  usleep(300000);
  samples.push_back(sample(fw.host->pid(), elapsed()));
  for (const Sample& s : samples)
    BOOST_TEST_MESSAGE("t " << int(s.t) << " s: RSS " << s.rss_kib << " KiB, fds " << s.fds);

  // Flat: after the first quarter (warm-up), RSS within 2 MiB, fds equal.
  const Sample& warm = samples[samples.size() / 4];
  const Sample& end = samples.back();
  BOOST_TEST(end.rss_kib <= warm.rss_kib + 2048, "RSS " << warm.rss_kib << " -> " << end.rss_kib);
  BOOST_TEST(end.fds == warm.fds);

  // Counters add up: every packet sent to a rule's port was counted by it.
  uint64_t r1 = 0, r2 = 0;
  for (const json& r : json::parse(fw.ask("rule list json"))) {
    if (r["id"] == 1) r1 = r["packets"];
    if (r["id"] == 2) r2 = r["packets"];
  }
  BOOST_TEST(r1 == to_drop);
  BOOST_TEST(r2 == to_pass);
  json stats = json::parse(fw.ask("show stats json"));
  BOOST_TEST(stats["match_drop"].get<uint64_t>() == to_drop);
  BOOST_TEST(stats["match_pass"].get<uint64_t>() == to_pass);
  BOOST_TEST(stats["events_sent"].get<uint64_t>() + stats["events_suppressed"].get<uint64_t>() +
                 stats["events_failed"].get<uint64_t>() ==
             stats["default_pass"].get<uint64_t>());
  BOOST_TEST(stats["default_pass"].get<uint64_t>() >= unmatched);
  BOOST_TEST_MESSAGE("sent " << to_drop << " to the drop rule, " << to_pass << " to the pass rule, "
                             << unmatched << " unmatched; " << samples.size() << " samples");
  close(tx);
  close(open_port);
  close(pass_port);
}

BOOST_AUTO_TEST_SUITE_END()
