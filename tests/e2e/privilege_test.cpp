// Least privilege: the agent works with the capabilities the systemd unit
// gives it (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_CHOWN) and nothing
// else, and without CAP_BPF it stops with a message that says why. (The
// control socket's group and read-only levels are in control_test.cpp; the
// privilege.e2e ctest entry runs the e2e suites with only these capabilities.)
#include "e2e/traffic.hpp"

using namespace xdpfw::test;

namespace {

const char* const unit_caps = "-all,+bpf,+perfmon,+net_admin,+chown";

uint64_t cap_eff(pid_t pid) {
  std::string st = read_file("/proc/" + std::to_string(pid) + "/status");
  size_t at = st.find("CapEff:");
  return std::stoull(st.substr(at + 7), nullptr, 16);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(privilege)

BOOST_AUTO_TEST_CASE(works_with_only_the_units_capabilities) {
  Pair p;
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*", "proto udp dport 5000 action drop\n");
  fw.start(unit_caps);
  // CAP_CHOWN 0, CAP_NET_ADMIN 12, CAP_PERFMON 38, CAP_BPF 39: exactly these.
  BOOST_TEST(cap_eff(fw.host->pid()) == ((1ull << 0) | (1ull << 12) | (1ull << 38) | (1ull << 39)));
  BOOST_TEST_REQUIRE(wait_until([&] { return p.fw_ns.xdp_prog("fwt0") != 0; }));
  BOOST_TEST(fw.ask("rule add proto udp dport 5002 action drop") == "id 2\n\n");
  int open_port = bound(p.fw_ns, AF_INET, 5001);
  int dropped_port = bound(p.fw_ns, AF_INET, 5000);
  int tx = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);
  int got = 0;
  BOOST_TEST_REQUIRE(wait_until([&] {
    send_to(tx, AF_INET, "198.18.0.1", 5001, 1);
    usleep(20000);
    return (got += drain(open_port)) > 0;
  }));
  send_to(tx, AF_INET, "198.18.0.1", 5000, 50);
  usleep(200000);
  BOOST_TEST(drain(dropped_port) == 0);
  // The event log and its stream work too (perf buffer: CAP_PERFMON).
  BOOST_TEST(fw.ask("show stats").find("events_sent") != std::string::npos);
  close(tx);
  close(open_port);
  close(dropped_port);
}

BOOST_AUTO_TEST_CASE(without_cap_bpf_it_says_why) {
  NetNs ns;
  FirewallAgent fw(ns, "");
  fw.start("-all,+perfmon,+net_admin,+chown", false);
  BOOST_TEST(fw.host->exit_code() != 0);
  std::string log = fw.host->log();
  BOOST_TEST(log.find("Operation not permitted") != std::string::npos, log);
  BOOST_TEST(log.find("CAP_BPF") != std::string::npos, log);
}

BOOST_AUTO_TEST_SUITE_END()
