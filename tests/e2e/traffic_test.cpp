// Real traffic through a veth from a peer namespace: a drop rule drops
// exactly the packets it names (the receiving socket gets none, the counters
// match), everything else passes; IPv4 and IPv6.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <nlohmann/json.hpp>

#include "e2e/firewall_agent.hpp"

using namespace xdpfw::test;

namespace {

struct Pair {
  NetNs fw_ns, peer_ns;
  Pair() {
    fw_ns.run("ip link add fwt0 type veth peer name peer0 netns " + peer_ns.name());
    fw_ns.run("ip addr add 198.18.0.1/24 dev fwt0");
    fw_ns.run("ip addr add 2001:db8::1/64 dev fwt0 nodad");
    fw_ns.run("ip link set fwt0 up");
    peer_ns.run("ip addr add 198.18.0.2/24 dev peer0");
    peer_ns.run("ip addr add 2001:db8::2/64 dev peer0 nodad");
    peer_ns.run("ip link set peer0 up");
  }
};

int bound(const NetNs& ns, int family, uint16_t port) {
  int fd = ns.socket_in(family, SOCK_DGRAM | SOCK_NONBLOCK);
  int one = 1;
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  // Room for every datagram of the test before it drains the socket.
  int rcvbuf = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    len = sizeof *a;
  }
  BOOST_TEST_REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0);
  return fd;
}

void send_to(int fd, int family, const char* addr, uint16_t port, int n) {
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, addr, &a->sin_addr);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, addr, &a->sin6_addr);
    len = sizeof *a;
  }
  for (int i = 0; i < n; ++i) {
    char msg[32];
    int l = std::snprintf(msg, sizeof msg, "packet %d", i);
    BOOST_TEST_REQUIRE(sendto(fd, msg, size_t(l), 0, reinterpret_cast<sockaddr*>(&ss), len) == l);
    if (i % 20 == 19) usleep(2000);  // below the veth XDP ring (256 frames)
  }
}

int drain(int fd) {
  int n = 0;
  char buf[2048];
  while (recv(fd, buf, sizeof buf, 0) >= 0) ++n;
  return n;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(traffic)

BOOST_AUTO_TEST_CASE(udp_drop_rule_v4_and_v6) {
  Pair p;
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*", "id 1 proto udp dport 5000 action drop\n");
  fw.start();
  BOOST_TEST_REQUIRE(wait_until([&] { return p.fw_ns.xdp_prog("fwt0") != 0; }), fw.host->log());
  const int n = 200;
  for (int family : {AF_INET, AF_INET6}) {
    const char* dst = family == AF_INET ? "198.18.0.1" : "2001:db8::1";
    BOOST_TEST_CONTEXT((family == AF_INET ? "IPv4" : "IPv6")) {
      int blocked = bound(p.fw_ns, family, 5000);
      int open_port = bound(p.fw_ns, family, 5001);
      int tx = p.peer_ns.socket_in(family, SOCK_DGRAM);
      // Warm up neighbour discovery (ARP/NDP pass the firewall).
      int warm = 0;
      BOOST_TEST_REQUIRE(wait_until([&] {
        send_to(tx, family, dst, 5001, 1);
        usleep(20000);
        warm += drain(open_port);
        return warm > 0;
      }));
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
  fw.start();
  BOOST_TEST_REQUIRE(wait_until([&] { return p.fw_ns.xdp_prog("fwt0") != 0; }));
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
