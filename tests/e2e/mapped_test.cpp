// IPv4 addresses in IPv6 sources, on the wire (docs/DATAPATH.md): an IPv6
// datagram from ::ffff:198.18.0.7, written by a packet socket of the peer
// (no socket can bind such a source), must not reach a dual-stack socket
// that would see it as 198.18.0.7 and slip past "src 198.18.0.7 action
// drop"; with mapped-ipv6 = pass it does. A duplicate address detection
// probe, from ::, still passes under the host firewall recipe.
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <netinet/ip6.h>
#include <netinet/udp.h>

#include <algorithm>

#include "e2e/traffic.hpp"

using namespace xdpfw::test;

namespace {

uint16_t checksum(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += uint32_t(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// An IPv6 UDP datagram SRC -> DST:PORT carrying TEXT, checksum and all.
std::vector<uint8_t> udp6_packet(const char* src, const char* dst, uint16_t port,
                                 const std::string& text) {
  std::vector<uint8_t> b(40 + 8 + text.size());
  ip6_hdr ip{};
  ip.ip6_flow = htonl(6u << 28);
  ip.ip6_plen = htons(static_cast<uint16_t>(8 + text.size()));
  ip.ip6_nxt = IPPROTO_UDP;
  ip.ip6_hlim = 64;
  inet_pton(AF_INET6, src, &ip.ip6_src);
  inet_pton(AF_INET6, dst, &ip.ip6_dst);
  udphdr uh{};
  uh.uh_sport = htons(40000);
  uh.uh_dport = htons(port);
  uh.uh_ulen = ip.ip6_plen;
  std::memcpy(b.data(), &ip, 40);
  std::memcpy(b.data() + 40, &uh, 8);
  std::memcpy(b.data() + 48, text.data(), text.size());
  // pseudo-header: addresses, upper-layer length, next header
  std::vector<uint8_t> pseudo(b.begin() + 8, b.begin() + 40);
  uint32_t len = 8 + text.size();
  for (int s : {24, 16, 8, 0}) pseudo.push_back(static_cast<uint8_t>(len >> s));
  pseudo.insert(pseudo.end(), {0, 0, 0, IPPROTO_UDP});
  pseudo.insert(pseudo.end(), b.begin() + 40, b.end());
  uint16_t sum = checksum(pseudo.data(), pseudo.size());
  if (sum == 0) sum = 0xffff;
  b[46] = static_cast<uint8_t>(sum >> 8);
  b[47] = static_cast<uint8_t>(sum);
  return b;
}

// Writes IPv6 packets onto the peer's veth, to the firewalled side's MAC:
// a packet socket, since no socket binds a mapped source.
struct Injector {
  explicit Injector(const Pair& p) : fd(p.peer_ns.socket_in(AF_PACKET, SOCK_DGRAM)) {
    BOOST_TEST_REQUIRE(fd >= 0);
    std::string mac = p.fw_ns.run("cat /sys/class/net/fwt0/address");
    to.sll_family = AF_PACKET;
    to.sll_protocol = htons(ETH_P_IPV6);
    to.sll_ifindex = p.peer_ns.ifindex("peer0");
    to.sll_halen = 6;
    BOOST_TEST_REQUIRE(std::sscanf(mac.c_str(), "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &to.sll_addr[0],
                                   &to.sll_addr[1], &to.sll_addr[2], &to.sll_addr[3],
                                   &to.sll_addr[4], &to.sll_addr[5]) == 6);
  }
  ~Injector() { close(fd); }
  void send(const std::vector<uint8_t>& packet) {
    BOOST_TEST_REQUIRE(sendto(fd, packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to),
                              sizeof to) == static_cast<ssize_t>(packet.size()));
  }
  int fd;
  sockaddr_ll to{};
};

// A dual-stack UDP socket (IPV6_V6ONLY off) on [::]:PORT in NS.
int dual_stack(const NetNs& ns, uint16_t port) {
  int fd = ns.socket_in(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK);
  int zero = 0;
  BOOST_TEST_REQUIRE(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) == 0);
  sockaddr_storage ss;
  socklen_t len = sockaddr_of(AF_INET6, "", port, ss);
  BOOST_TEST_REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0);
  return fd;
}

// The datagrams on FD, as "SOURCE TEXT" lines.
std::vector<std::string> received(int fd) {
  std::vector<std::string> out;
  char buf[2048], addr[INET6_ADDRSTRLEN];
  sockaddr_in6 from{};
  socklen_t len = sizeof from;
  for (ssize_t n;
       (n = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len)) >= 0;
       len = sizeof from) {
    inet_ntop(AF_INET6, &from.sin6_addr, addr, sizeof addr);
    out.push_back(std::string(addr) + " " + std::string(buf, size_t(n)));
  }
  return out;
}

// Sends the mapped datagram, then a marker from 2001:db8::2 behind it on
// the same path, until the marker arrives; returns what arrived.
std::vector<std::string> mapped_then_marker(const Pair& p, int rx) {
  std::vector<std::string> got;
  Injector out(p);
  BOOST_TEST_REQUIRE(wait_until([&] {
    out.send(udp6_packet("::ffff:198.18.0.7", "2001:db8::1", 5300, "mapped"));
    out.send(udp6_packet("2001:db8::2", "2001:db8::1", 5300, "marker"));
    usleep(20000);
    for (const std::string& s : received(rx)) got.push_back(s);
    return std::find(got.begin(), got.end(), "2001:db8::2 marker") != got.end();
  }));
  return got;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(mapped_ipv6)

BOOST_AUTO_TEST_CASE(mapped_source_never_reaches_a_dual_stack_socket) {
  Pair p;
  int rx = dual_stack(p.fw_ns, 5300);
  {
    FirewallAgent fw(p.fw_ns, "interfaces = fwt*", "id 1 src 198.18.0.7 action drop\n");
    fw.start_attached("fwt0");
    std::vector<std::string> got = mapped_then_marker(p, rx);
    for (const std::string& s : got) BOOST_TEST(s == "2001:db8::2 marker");
    BOOST_TEST(stat_of(fw, "mapped_drop") >= 1u);
    BOOST_TEST(rule_packets(fw, 1) == 0u);  // no rule saw it
  }
  // mapped-ipv6 = pass: the socket sees it as 198.18.0.7, the IPv4 rule
  // never did (what the default closes).
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*\nmapped-ipv6 = pass",
                   "id 1 src 198.18.0.7 action drop\n");
  fw.start_attached("fwt0");
  std::vector<std::string> got = mapped_then_marker(p, rx);
  BOOST_TEST(std::count(got.begin(), got.end(), "::ffff:198.18.0.7 mapped") >= 1);
  BOOST_TEST(stat_of(fw, "mapped_drop") == 0u);
  BOOST_TEST(rule_packets(fw, 1) == 0u);
  close(rx);
}

// The peer takes 2001:db8::1, which the firewalled side holds, with
// duplicate address detection: its neighbour solicitation from :: must
// reach the firewalled side for the answer to come back and the peer to
// mark the address dadfailed.
BOOST_AUTO_TEST_CASE(dad_probe_from_unspecified_passes_the_host_firewall) {
  Pair p;
  std::string recipe = read_file(XDPFW_SOURCE_DIR "/conf/recipes/host-firewall.rules");
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*\ndefault-action = drop", recipe);
  fw.start_attached("fwt0");
  p.peer_ns.run("sysctl -qw net.ipv6.conf.peer0.accept_dad=1");
  p.peer_ns.run("ip addr add 2001:db8::1/64 dev peer0");
  BOOST_TEST(wait_until(
                 [&] {
                   return p.peer_ns.run("ip -6 addr show dev peer0").find("dadfailed") !=
                          std::string::npos;
                 },
                 10),
             p.peer_ns.run("ip -6 addr show dev peer0") << fw.ask("show stats"));
  BOOST_TEST(stat_of(fw, "mapped_drop") == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
