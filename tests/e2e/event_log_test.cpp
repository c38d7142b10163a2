// The JSON event log of unmatched packets, with real traffic: every line
// parses back with the packet's fields; names are escaped; a flood is capped
// and accounted for; logrotate, a vanished folder and a full disk cost lines
// (counted), never filtering.
#include <sys/mount.h>

#include <regex>
#include <sstream>

#include "e2e/traffic.hpp"

using namespace xdpfw::test;
using nlohmann::json;

namespace {

// The agent has written, or counted as lost, every event the kernel sent.
bool all_sent_accounted(FirewallAgent& fw, json* stats = nullptr) {
  json s = json::parse(fw.ask("show stats json"));
  if (stats) *stats = s;
  return s["log_lines"].get<uint64_t>() + s["events_lost"].get<uint64_t>() +
             s["log_dropped"].get<uint64_t>() ==
         s["events_sent"].get<uint64_t>();
}

int sender(const NetNs& ns, int family, uint16_t sport) {
  int fd = ns.socket_in(family, SOCK_DGRAM);
  sockaddr_storage ss;
  socklen_t len = sockaddr_of(family, "", sport, ss);
  BOOST_TEST_REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0);
  return fd;
}

// Sends until the log holds a line for dst_port (neighbour discovery first).
void until_logged(FirewallAgent& fw, int tx, int family, const char* dst, uint16_t dport) {
  BOOST_TEST_REQUIRE(
      wait_until([&] {
        send_to(tx, family, dst, dport, 1);
        usleep(20000);
        return read_file(fw.log_file()).find("\"dst_port\":" + std::to_string(dport)) !=
               std::string::npos;
      }),
      fw.host->log());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(event_log)

BOOST_AUTO_TEST_CASE(lines_carry_the_packet_v4_v6_and_escaped_names) {
  Pair p;
  FirewallAgent fw(p.fw_ns, "interfaces = fw*\nevent-rate = 100000\nevent-burst = 100000");
  fw.start_attached("fwt0");
  int tx4 = sender(p.peer_ns, AF_INET, 4242), tx6 = sender(p.peer_ns, AF_INET6, 4243);
  until_logged(fw, tx4, AF_INET, "198.18.0.1", 7777);
  until_logged(fw, tx6, AF_INET6, "2001:db8::1", 7778);
  const std::regex stamp(
      "^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{9}Z$");
  int v4 = 0, v6 = 0;
  for (const json& j : lines_of(fw.log_file())) {
    if (j.value("dst_port", json()) == 7777) {  // ICMP events have no dst_port
      ++v4;
      BOOST_TEST(j["family"] == "ipv4");
      BOOST_TEST(j["src_ip"] == "198.18.0.2");
      BOOST_TEST(j["dst_ip"] == "198.18.0.1");
      BOOST_TEST(j["src_port"] == 4242);
      BOOST_TEST(j["proto"] == "udp");
      BOOST_TEST(j["interface"] == "fwt0");
      BOOST_TEST(j["tcp_flags"] == 0);
      BOOST_TEST(j["length"].get<int>() >= 42);
      BOOST_TEST(j["fragment"] == false);
      BOOST_TEST(std::regex_match(j["timestamp"].get<std::string>(), stamp), j["timestamp"]);
    } else if (j.value("dst_port", json()) == 7778) {
      ++v6;
      BOOST_TEST(j["family"] == "ipv6");
      BOOST_TEST(j["src_ip"] == "2001:db8::2");  // canonical text form
      BOOST_TEST(j["dst_ip"] == "2001:db8::1");
      BOOST_TEST(j["src_port"] == 4243);
    }
  }
  BOOST_TEST(v4 >= 1);
  BOOST_TEST(v6 >= 1);

  // Linux allows a double quote in a link name: the line must stay JSON.
  p.fw_ns.run("ip link set fwt0 down");
  p.fw_ns.run("ip link set fwt0 name 'fw\"q0'");
  p.fw_ns.run("ip link set 'fw\"q0' up");
  BOOST_TEST_REQUIRE(wait_until([&] { return p.fw_ns.xdp_prog("fw\\\"q0") != 0; }));
  until_logged(fw, tx4, AF_INET, "198.18.0.1", 7779);
  BOOST_TEST(read_file(fw.log_file()).find("\"interface\":\"fw\\\"q0\"") != std::string::npos);
  bool found = false;
  for (const json& j : lines_of(fw.log_file()))
    found |= j.value("dst_port", json()) == 7779 && j["interface"] == "fw\"q0";
  BOOST_TEST(found);
  close(tx4);
  close(tx6);
}

BOOST_AUTO_TEST_CASE(flood_is_capped_and_accounted_for) {
  Pair p;
  // No IPv6 chatter (neighbour discovery, MLD) from the peer: every
  // unmatched packet of this test is one it sent.
  p.peer_ns.run("sysctl -qw net.ipv6.conf.peer0.disable_ipv6=1");
  FirewallAgent fw(p.fw_ns, "interfaces = fw*\nevent-rate = 1000\nevent-burst = 200");
  fw.start_attached("fwt0");
  int tx = sender(p.peer_ns, AF_INET, 5555);
  until_logged(fw, tx, AF_INET, "198.18.0.1", 9000);
  uint64_t before = stat_of(fw, "default_pass");
  auto t0 = std::chrono::steady_clock::now();
  const int n = 100000;
  send_to(tx, AF_INET, "198.18.0.1", 9001, n);
  BOOST_TEST(wait_until([&] { return stat_of(fw, "default_pass") >= before + n; }, 60));
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  BOOST_TEST(stat_of(fw, "default_pass") == before + n);  // every packet reached the program
  json s;
  BOOST_TEST(wait_until([&] { return all_sent_accounted(fw, &s); }));
  uint64_t unmatched = s["default_pass"], sent = s["events_sent"];
  uint64_t suppressed = s["events_suppressed"], failed = s["events_failed"];
  BOOST_TEST(sent + suppressed + failed == unmatched);  // none silently lost
  BOOST_TEST(s["log_lines"].get<uint64_t>() + s["events_lost"].get<uint64_t>() + suppressed +
                 failed + s["log_dropped"].get<uint64_t>() ==
             unmatched);
  double cap = 200 + 1000 * elapsed + 4;
  BOOST_TEST_MESSAGE("flood of " << n << " in " << elapsed << " s: " << sent << " events, "
                                 << suppressed << " suppressed, cap " << cap);
  BOOST_TEST(double(sent) <= cap);
  BOOST_TEST(suppressed >= uint64_t(n) - uint64_t(cap));
  BOOST_TEST(lines_of(fw.log_file()).size() == s["log_lines"].get<uint64_t>());
  close(tx);
}

BOOST_AUTO_TEST_CASE(reopen_and_vanished_folder) {
  Pair p;
  FirewallAgent fw(p.fw_ns, "interfaces = fw*\nevent-rate = 100000\nevent-burst = 100000\n",
                   "id 1 proto udp dport 6000 action drop\n");
  mode_t mask = umask(077);  // the agent's, as the unit sets it
  fw.start_attached("fwt0");
  umask(mask);
  int tx = sender(p.peer_ns, AF_INET, 6001);
  until_logged(fw, tx, AF_INET, "198.18.0.1", 7001);

  // Made 0640 whatever the agent's umask (the unit's is 0077).
  struct stat st {};
  BOOST_TEST_REQUIRE(stat(fw.log_file().c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 07777) == 0640u);
  // An administrator's mode and group (chgrp adm) outlive a rotation.
  BOOST_TEST_REQUIRE(chmod(fw.log_file().c_str(), 0644) == 0);
  BOOST_TEST_REQUIRE(chown(fw.log_file().c_str(), 0, 65534) == 0);

  // logrotate: move the file, then "log reopen" (and SIGUSR1).
  fs::rename(fw.log_file(), fw.log_dir() / "old.json");
  BOOST_TEST(fw.ask("log reopen") == "reopened " + fw.log_file().string() + "\n\n");
  until_logged(fw, tx, AF_INET, "198.18.0.1", 7002);
  BOOST_TEST(read_file(fw.log_dir() / "old.json").find("7002") == std::string::npos);
  BOOST_TEST_REQUIRE(stat(fw.log_file().c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 07777) == 0644u);
  BOOST_TEST(st.st_gid == 65534u);
  fw.host->signal(SIGUSR1);
  BOOST_TEST(wait_until([&] { return stat_of(fw, "log_reopens") == 2; }));

  // The folder vanishes: lines are dropped and counted, filtering goes on.
  fs::remove_all(fw.log_dir());
  uint64_t drops = stat_of(fw, "match_drop");
  send_to(tx, AF_INET, "198.18.0.1", 7003, 20);
  send_to(tx, AF_INET, "198.18.0.1", 6000, 20);
  BOOST_TEST(wait_until([&] { return stat_of(fw, "log_write_errors") > 0; }));
  BOOST_TEST(wait_until([&] { return stat_of(fw, "match_drop") == drops + 20; }));
  BOOST_TEST(stat_of(fw, "log_dropped") >= 1u);
  fs::create_directories(fw.log_dir());  // and logging resumes by itself
  until_logged(fw, tx, AF_INET, "198.18.0.1", 7004);

  BOOST_TEST(!fw.host->exited());
  close(tx);
}

BOOST_AUTO_TEST_CASE(full_disk_costs_lines_not_filtering_and_logging_resumes) {
  Pair p;
  FirewallAgent fw(p.fw_ns, "interfaces = fw*\nevent-rate = 100000\nevent-burst = 100000\n",
                   "id 1 proto udp dport 6000 action drop\n");
  // A tiny tmpfs as the log folder, mounted before the agent starts: it
  // runs in a mount namespace of its own (ip netns exec) and sees the
  // mounts made before.
  fs::create_directories(fw.log_dir());
  BOOST_TEST_REQUIRE(mount("tmpfs", fw.log_dir().c_str(), "tmpfs", 0, "size=8k,mode=0750") == 0);
  struct Unmount {
    fs::path dir;
    ~Unmount() { umount2(dir.c_str(), MNT_DETACH); }
  } unmount{fw.log_dir()};
  fw.start_attached("fwt0");
  int tx = sender(p.peer_ns, AF_INET, 6002);
  until_logged(fw, tx, AF_INET, "198.18.0.1", 7005);
  uint64_t drops = stat_of(fw, "match_drop");
  for (int i = 0; i < 40; ++i) send_to(tx, AF_INET, "198.18.0.1", uint16_t(7100 + i), 10);
  send_to(tx, AF_INET, "198.18.0.1", 6000, 20);
  BOOST_TEST(wait_until([&] { return stat_of(fw, "log_write_errors") > 0; }));
  BOOST_TEST(wait_until([&] { return stat_of(fw, "match_drop") == drops + 20; }));
  json s = json::parse(fw.ask("show stats json"));
  BOOST_TEST(s["log_dropped"].get<uint64_t>() > 0u);
  BOOST_TEST(!fw.host->exited());
  // Every event the kernel sent is written or counted lost before the file is
  // emptied: a backlog still being written would fill it again (the CI's
  // sanitizer build once lost that race).
  BOOST_TEST_REQUIRE(wait_until([&] { return all_sent_accounted(fw); }));
  // Space again (the operator emptied the file): logging resumes by itself.
  fs::resize_file(fw.log_file(), 0);
  uint64_t lines = stat_of(fw, "log_lines");
  until_logged(fw, tx, AF_INET, "198.18.0.1", 7999);
  BOOST_TEST(stat_of(fw, "log_lines") > lines);
  close(tx);
}

BOOST_AUTO_TEST_SUITE_END()
