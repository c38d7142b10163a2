// Address sets with the real agent and real traffic between namespaces: a
// set of 100,000 prefixes loaded through xdpfw-ctl, traffic from inside one
// dropped and from outside passed; an element with a 2 s timeout stops
// matching by itself; a restart keeps the set and its remaining times; a
// set a rule names cannot be destroyed.
#include <chrono>
#include <thread>

#include "e2e/traffic.hpp"

using namespace xdpfw::test;
using nlohmann::json;

namespace {

// How many of n datagrams from the peer reach rx.
int delivered(int tx, int rx, int n) {
  send_to(tx, AF_INET, "198.18.0.1", 5000, n);
  int got = 0;
  wait_until(
      [&] {
        got += drain(rx);
        return got >= n;
      },
      1);
  return got;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(sets)

BOOST_AUTO_TEST_CASE(load_timeout_restart_and_destroy) {
  Pair p;
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*\nset = blocklist",
                   "prio 1 src @blocklist action drop\n");
  fw.start_attached("fwt0");
  int rx = bound(p.fw_ns, AF_INET, 5000);
  int tx = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);
  warm_up(tx, AF_INET, "198.18.0.1", 5000, rx);

  // 100,000 prefixes outside the test ranges' peer (10.0.0.0/8 split in /24s
  // and /32s), then the peer's own /24 among them.
  fs::path feed = fw.dir / "feed.txt";
  {
    std::ofstream out(feed);
    for (int i = 0; i < 99999; ++i)
      out << "10." << (i >> 16 & 255) << "." << (i >> 8 & 255) << "." << (i & 255)
          << (i % 2 ? "/32" : "") << "\n";
    out << "198.18.0.0/24\n";
  }
  std::string out = shell("timeout 60 " + std::string(XDPFW_CTL_BIN) + " --socket " +
                          fw.sock.string() + " set load blocklist " + feed.string());
  BOOST_TEST(out.find("loaded 100000 element(s) into blocklist") != std::string::npos, out);
  BOOST_TEST(delivered(tx, rx, 20) == 0);
  BOOST_TEST(fw.ask("set del blocklist 198.18.0.0/24").find("deleted") != std::string::npos);
  BOOST_TEST(delivered(tx, rx, 20) == 20);

  // An element with a 2 s timeout: dropped at once, passed again within the
  // slack (a clock tick) without the agent doing anything first.
  BOOST_TEST(fw.ask("set add blocklist 198.18.0.2 timeout 2s").find("added") != std::string::npos);
  BOOST_TEST(delivered(tx, rx, 10) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2300));
  BOOST_TEST(delivered(tx, rx, 10) == 10);

  // A restart keeps the set and its remaining times.
  std::string r = fw.ask("set add blocklist 198.18.0.2 timeout 1h");  // reaped by now, or not
  BOOST_TEST((r == "added\n\n" || r == "updated\n\n"), r);
  fw.crash();  // the journal, not a clean stop
  fw.start_attached("fwt0");
  auto j = json::parse(fw.ask("set list blocklist json"));
  BOOST_TEST(j.at("elements").get<int>() == 99999 + 1);
  bool found = false;
  for (const json& m : j.at("members"))
    if (m.at("element") == "198.18.0.2") {
      found = true;
      BOOST_TEST(m.at("expires").get<int>() > 3500);
    }
  BOOST_TEST(found);
  BOOST_TEST(delivered(tx, rx, 10) == 0);

  // A set a rule names cannot go; without the rule it can.
  BOOST_TEST(fw.ask("set destroy blocklist").find("is used by rule(s) 1") != std::string::npos);
  BOOST_TEST(fw.ask("rule del 1").find("deleted") != std::string::npos);
  BOOST_TEST(fw.ask("set destroy blocklist").find("destroyed set blocklist") != std::string::npos);
  BOOST_TEST(delivered(tx, rx, 10) == 10);
  for (int fd : {rx, tx}) close(fd);
}

BOOST_AUTO_TEST_SUITE_END()
