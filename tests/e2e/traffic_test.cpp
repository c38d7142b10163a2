// Real traffic through a veth from a peer namespace: a drop rule drops
// exactly the packets it names (the receiving socket gets none, the counters
// match), everything else passes; IPv4 and IPv6.
#include <nlohmann/json.hpp>

#include "e2e/traffic.hpp"

using namespace xdpfw::test;

BOOST_AUTO_TEST_SUITE(traffic)

BOOST_AUTO_TEST_CASE(udp_drop_rule_v4_and_v6) {
  Pair p;
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*", "id 1 proto udp dport 5000 action drop\n");
  fw.start_attached("fwt0");
  const int n = 200;
  for (int family : {AF_INET, AF_INET6}) {
    const char* dst = family == AF_INET ? "198.18.0.1" : "2001:db8::1";
    BOOST_TEST_CONTEXT((family == AF_INET ? "IPv4" : "IPv6")) {
      int blocked = bound(p.fw_ns, family, 5000);
      int open_port = bound(p.fw_ns, family, 5001);
      int tx = p.peer_ns.socket_in(family, SOCK_DGRAM);
      warm_up(tx, family, dst, 5001, open_port);  // ARP/NDP pass the firewall
      send_to(tx, family, dst, 5000, n);
      send_to(tx, family, dst, 5001, n);
      int got_open = 0;
      // The open port's packets came after the blocked port's on the same
      // queue: once they are all in, every blocked one has been judged.
      BOOST_TEST(wait_until([&] {
        got_open += drain(open_port);
        return got_open >= n;
      }));
      BOOST_TEST(got_open == n);
      BOOST_TEST(drain(blocked) == 0);
      close(blocked);
      close(open_port);
      close(tx);
    }
  }
  // Nothing was lost before the program saw it (the veth's XDP ring).
  std::string peer_stats = p.peer_ns.run("ip -s -s link show dev peer0");
  std::string fw_stats = p.fw_ns.run("ip -s -s link show dev fwt0");
  BOOST_TEST_MESSAGE("peer0:\n" << peer_stats << "fwt0:\n" << fw_stats);
  auto rules = nlohmann::json::parse(fw.ask("rule list json"));
  BOOST_TEST(rules.at(0).at("packets").get<uint64_t>() == uint64_t(2 * n));
  auto stats = nlohmann::json::parse(fw.ask("show stats json"));
  BOOST_TEST(stats.at("match_drop").get<uint64_t>() == uint64_t(2 * n));
  BOOST_TEST(stats.at("default_pass").get<uint64_t>() >= uint64_t(2 * n));
}

BOOST_AUTO_TEST_CASE(runtime_rule_changes_reach_traffic) {
  Pair p;
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*", "id 1 proto udp dport 5000 action drop\n");
  fw.start_attached("fwt0");
  int a = bound(p.fw_ns, AF_INET, 5000), b = bound(p.fw_ns, AF_INET, 5001);
  int tx = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);
  int warm = 0;
  BOOST_TEST_REQUIRE(wait_until([&] {
    send_to(tx, AF_INET, "198.18.0.1", 5001, 1);
    usleep(20000);
    return (warm += drain(b)) > 0;
  }));
  // Swap which port is blocked, through the control socket.
  BOOST_TEST(fw.ask("rule del 1") == "deleted 1\n\n");
  BOOST_TEST(fw.ask("rule add proto udp dport 5001 action drop") == "id 2\n\n");
  send_to(tx, AF_INET, "198.18.0.1", 5001, 50);
  send_to(tx, AF_INET, "198.18.0.1", 5000, 50);
  int got = 0;
  BOOST_TEST(wait_until([&] { return (got += drain(a)) >= 50; }));
  BOOST_TEST(got == 50);
  BOOST_TEST(drain(b) == 0);
  auto rules = nlohmann::json::parse(fw.ask("rule list json"));
  BOOST_TEST(rules.at(0).at("packets").get<uint64_t>() == 50u);
  close(a);
  close(b);
  close(tx);
}

BOOST_AUTO_TEST_SUITE_END()
