// Restarts: after kill -9 the agent carries on with the same rules (run-time
// changes included) and counters; in persistent mode XDP stays attached
// while the agent is down and not one packet of a dropped flow leaks.
#include <bpf/bpf.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "e2e/traffic.hpp"
#include "xdpfw.h"

using namespace xdpfw::test;
using nlohmann::json;

namespace {
// n packets to the blocked port 5000, then n to the open 5001: once those
// are in, all were judged. Returns how many blocked ones got through.
int leaked(int tx, int blocked, int open_port, int n) {
  send_to(tx, AF_INET, "198.18.0.1", 5000, n);
  send_to(tx, AF_INET, "198.18.0.1", 5001, n);
  int got = 0;
  BOOST_TEST(wait_until([&] { return (got += drain(open_port)) >= n; }));
  return drain(blocked);
}
}  // namespace

BOOST_AUTO_TEST_SUITE(persistence)

BOOST_AUTO_TEST_CASE(single_changes_are_journaled_and_replayed) {
  // rule add and rule del append a line each instead of rewriting the whole
  // state; a restart replays them on top of rules.state, ignoring a line
  // torn by the crash; a replace folds the journal into the state.
  NetNs ns;
  FirewallAgent fw(ns, "", "id 1 proto udp dport 5000 action drop\n");
  fw.start();
  fs::path journal = fw.dir / "state" / "rules.journal";
  BOOST_TEST(fw.ask("rule add proto udp dport 5001 action drop") == "id 2\n\n");
  BOOST_TEST(fw.ask("rule add prio 5 proto tcp dport 22 action drop") == "id 3\n\n");
  BOOST_TEST(fw.ask("rule del 1") == "deleted 1\n\n");
  BOOST_TEST(read_file(journal) ==
             "add id 2 prio 1000 proto udp dport 5001 action drop\n"
             "add id 3 prio 5 proto tcp dport 22 action drop\ndel 1\n");
  BOOST_TEST(read_file(fw.dir / "state" / "rules.state").find("dport 5000") != std::string::npos);
  std::string before = fw.ask("rule list");
  fw.crash();
  std::ofstream(journal, std::ios::app) << "add id 9 prio 1 action dr";  // torn by the crash
  fw.start();
  BOOST_TEST(fw.ask("rule list") == before);
  // Ids are never given twice, across restarts too: rule 1 was deleted.
  BOOST_TEST(fw.ask("rule add proto udp dport 5003 action drop") == "id 4\n\n");
  BOOST_TEST(fw.ask("rule del 3") == "deleted 3\n\n");
  BOOST_TEST(fw.ask("rule del 4") == "deleted 4\n\n");
  fw.crash();
  fw.start();
  BOOST_TEST(fw.ask("rule add proto udp dport 5004 action drop") == "id 5\n\n");
  BOOST_TEST(fw.ask("rule replace <<E\nproto udp action pass\nE") == "replaced: 1 rule(s)\n\n");
  BOOST_TEST(read_file(journal).empty());
  BOOST_TEST(read_file(fw.dir / "state" / "rules.state").find("proto udp action pass") !=
             std::string::npos);
}

// The agent's state is only what it wrote: a journal another user owns, or
// a state file replaced by a symbolic link, is read as absent (logged), and
// the agent starts from its rules file.
BOOST_AUTO_TEST_CASE(state_files_the_agent_did_not_write_are_read_as_absent) {
  NetNs ns;
  FirewallAgent fw(ns, "", "proto udp dport 5000 action drop\n");
  fw.start();
  fs::path state = fw.dir / "state";
  BOOST_TEST(fw.ask("rule add proto udp dport 5001 action drop") == "id 2\n\n");
  std::string from_file = "id 1 prio 1000 proto udp dport 5000 action drop";
  fw.crash();
  // Readable by all: the owner test refuses it, also for an agent without
  // CAP_DAC_OVERRIDE (privilege.e2e_suites).
  BOOST_TEST_REQUIRE(chmod((state / "rules.journal").c_str(), 0644) == 0);
  BOOST_TEST_REQUIRE(chown((state / "rules.journal").c_str(), 65534, 65534) == 0);
  fw.start();
  std::string list = fw.ask("rule list");
  BOOST_TEST(list.find(from_file) == 0u, list);
  BOOST_TEST(list.find("dport 5001") == std::string::npos, list);
  BOOST_TEST(fw.log().find("rules.journal: owned by uid 65534, not by the agent's user") !=
                 std::string::npos,
             fw.log());

  BOOST_TEST(fw.ask("rule add proto udp dport 5002 action drop").find("id ") == 0u);
  fw.crash();
  fs::path planted = fw.dir / "planted.state";
  write_file(planted, "id 7 prio 1 action pass\n");
  fs::remove(state / "rules.state");
  fs::create_symlink(planted, state / "rules.state");
  fw.start();
  list = fw.ask("rule list");
  BOOST_TEST(list.find(from_file) == 0u, list);
  BOOST_TEST(list.find("id 7") == std::string::npos, list);
  BOOST_TEST(fw.log().find("rules.state: a symbolic link: refused") != std::string::npos, fw.log());
}

BOOST_AUTO_TEST_CASE(second_agent_on_the_same_pins_is_refused) {
  // Another socket (as "another agent is listening" suggests), the same
  // pin-root and state-dir: the second agent must not take over the filter.
  NetNs ns;
  FirewallAgent fw(ns, "", "id 1 proto udp dport 5000 action drop\n");
  fw.start();
  std::string conf = read_file(fw.dir / "xdpfw.conf");
  std::string other_sock = (fw.dir / "second.sock").string();
  conf.replace(conf.find(fw.sock.string()), fw.sock.string().size(), other_sock);
  write_file(fw.dir / "second.conf", conf);
  HostProcess second(fw.dir,
                     {"--config", (fw.dir / "second.conf").string(), "--plugin", XDPFW_PLUGIN},
                     false, ns.exec_prefix());
  BOOST_TEST(second.exit_code() != 0);
  std::string log = second.log();
  BOOST_TEST(log.find("is in use by another agent (pid " + std::to_string(fw.host->pid())) !=
                 std::string::npos,
             log);
  // The first agent still serves, with its rules.
  BOOST_TEST(fw.ask("rule list").find("id 1 prio 1000 proto udp dport 5000 action drop") == 0u);
  // Once it is gone, a second agent may take over.
  fw.host->signal(SIGTERM);
  fw.host->exit_code();
  HostProcess third(fw.dir,
                    {"--config", (fw.dir / "second.conf").string(), "--plugin", XDPFW_PLUGIN}, true,
                    ns.exec_prefix());
  BOOST_TEST(!third.exited(), third.log());
}

BOOST_AUTO_TEST_CASE(kill_9_keeps_rules_and_counters) {
  Pair p;
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*", "id 1 proto udp dport 5000 action drop\n");
  fw.start_attached("fwt0");
  BOOST_TEST(fw.ask("rule add proto udp dport 5002 action drop") == "id 2\n\n");
  int open_port = bound(p.fw_ns, AF_INET, 5001);
  int tx = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);
  warm_up(tx, AF_INET, "198.18.0.1", 5001, open_port);
  send_to(tx, AF_INET, "198.18.0.1", 5000, 100);
  BOOST_TEST_REQUIRE(wait_until([&] { return rule_packets(fw, 1) == 100; }));
  // Traffic keeps flowing to the dropped port through the crash and restart.
  std::atomic<bool> flowing{true};
  int tx2 = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);
  std::thread sender([&] {
    while (flowing) {
      send_to(tx2, AF_INET, "198.18.0.1", 5000, 1);
      usleep(2000);
    }
  });
  usleep(200000);
  fw.crash();
  fw.start();
  flowing = false;
  sender.join();
  close(tx2);
  BOOST_TEST(fw.host->log().find("resumed the previous run's 2 rule(s)") != std::string::npos,
             fw.host->log());
  json after = json::parse(fw.ask("rule list json"));
  BOOST_TEST_REQUIRE(after.size() == 2u, after.dump());  // nothing lost, nothing doubled
  BOOST_TEST(after[0]["rule"] == "id 1 prio 1000 proto udp dport 5000 action drop");
  BOOST_TEST(after[1]["rule"] == "id 2 prio 1000 proto udp dport 5002 action drop");
  // The 100, and what the flow added before the crash, are still counted.
  BOOST_TEST(after[0]["packets"].get<uint64_t>() > 100u);
  BOOST_TEST_REQUIRE(wait_until([&] { return p.fw_ns.xdp_prog("fwt0") != 0; }));
  uint64_t now = rule_packets(fw, 1);
  send_to(tx, AF_INET, "198.18.0.1", 5000, 10);
  BOOST_TEST(wait_until([&] { return rule_packets(fw, 1) == now + 10; }));
  BOOST_TEST(fw.ask("rule add proto udp dport 5003 action drop") == "id 3\n\n");  // ids go on
  close(open_port);
  close(tx);
}

BOOST_AUTO_TEST_CASE(persistent_mode_never_leaks) {
  Pair p;
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*\npersistent = yes",
                   "id 1 proto udp dport 5000 action drop\n");
  fw.start_attached("fwt0");
  int blocked = bound(p.fw_ns, AF_INET, 5000), open_port = bound(p.fw_ns, AF_INET, 5001);
  int tx = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);
  warm_up(tx, AF_INET, "198.18.0.1", 5001, open_port);
  auto flow = [&](int n) { return leaked(tx, blocked, open_port, n); };
  BOOST_TEST(flow(50) == 0);
  fw.host->signal(SIGTERM);  // a clean stop ...
  BOOST_TEST(fw.host->exit_code() == 0);
  BOOST_TEST(p.fw_ns.xdp_prog("fwt0") != 0u);  // ... leaves XDP in place
  BOOST_TEST(flow(50) == 0);                   // and filtering while nobody runs
  fw.start();
  BOOST_TEST(wait_until([&] {
    return fw.ask("show interfaces")
               .find("fwt0 ifindex 2 kind veth selected yes manual - attached yes") !=
           std::string::npos;
  }));
  BOOST_TEST(flow(50) == 0);
  fw.crash();  // kill -9 too
  BOOST_TEST(flow(50) == 0);
  fw.start();
  BOOST_TEST(wait_until([&] { return rule_packets(fw, 1) == 200; }));  // every one counted
  BOOST_TEST(fw.ask("detach fwt0") == "ok\n\n");                       // let go for real
  BOOST_TEST(p.fw_ns.xdp_prog("fwt0") == 0u);
  close(blocked);
  close(open_port);
  close(tx);
}

// An upgrade whose maps differ (here: the previous layout's number in the
// pinned config): the new agent replaces the old pins by itself, keeps the rules of
// the previous run (run-time changes and ids included; counters restart),
// and in persistent mode the old program filters until the links move on.
BOOST_AUTO_TEST_CASE(pins_of_another_layout_are_replaced_without_a_gap) {
  Pair p;
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*\npersistent = yes",
                   "id 1 proto udp dport 5000 action drop\n");
  fw.start_attached("fwt0");
  BOOST_TEST(fw.ask("rule add proto udp dport 5002 action drop") == "id 2\n\n");
  int blocked = bound(p.fw_ns, AF_INET, 5000), open_port = bound(p.fw_ns, AF_INET, 5001);
  int tx = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);
  warm_up(tx, AF_INET, "198.18.0.1", 5001, open_port);
  auto flow = [&](int n) { return leaked(tx, blocked, open_port, n); };
  BOOST_TEST(flow(20) == 0);
  BOOST_TEST_REQUIRE(wait_until([&] { return rule_packets(fw, 1) == 20; }));
  fw.host->signal(SIGTERM);
  BOOST_TEST(fw.host->exit_code() == 0);
  {
    // The maps of the previous layout: its number in the pinned config.
    int fd = bpf_obj_get((fw.dir / "bpf/xdpfw/maps/xdpfw_config").c_str());
    BOOST_TEST_REQUIRE(fd >= 0);
    xdpfw_config c{};
    __u32 zero = 0;
    BOOST_TEST_REQUIRE(bpf_map_lookup_elem(fd, &zero, &c) == 0);
    c.layout = XDPFW_MAP_LAYOUT - 1;
    BOOST_TEST_REQUIRE(bpf_map_update_elem(fd, &zero, &c, BPF_ANY) == 0);
    close(fd);
  }
  // Packets all through the restart: none of the blocked port's gets in.
  std::atomic<bool> flowing{true};
  uint64_t sent = 0;
  int tx2 = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);
  std::thread sender([&] {
    while (flowing) {
      send_to(tx2, AF_INET, "198.18.0.1", 5000, 1);
      ++sent;
      usleep(1000);
    }
  });
  fw.start();
  BOOST_TEST(wait_until([&] {
    return fw.ask("show interfaces")
               .find("fwt0 ifindex 2 kind veth selected yes manual - attached yes") !=
           std::string::npos;
  }));
  usleep(100000);
  flowing = false;
  sender.join();
  close(tx2);
  BOOST_TEST(drain(blocked) == 0);
  std::string log = fw.host->log();
  BOOST_TEST(log.find("were made with another layout (xdpfw_") != std::string::npos, log);
  BOOST_TEST(log.find("resumed the previous run's 2 rule(s)") != std::string::npos, log);
  json after = json::parse(fw.ask("rule list json"));
  BOOST_TEST_REQUIRE(after.size() == 2u, after.dump());
  BOOST_TEST(after[0]["rule"] == "id 1 prio 1000 proto udp dport 5000 action drop");
  BOOST_TEST(after[1]["rule"] == "id 2 prio 1000 proto udp dport 5002 action drop");
  // The new maps counted from zero: at most the packets sent since the stop
  // (kept counters would hold the 20 before it as well).
  uint64_t now = rule_packets(fw, 1);
  BOOST_TEST(now <= sent);
  BOOST_TEST(flow(10) == 0);
  BOOST_TEST(wait_until([&] { return rule_packets(fw, 1) >= now + 10; }));
  BOOST_TEST(fw.ask("rule add proto udp dport 5003 action drop") == "id 3\n\n");  // ids go on
  BOOST_TEST(fw.ask("detach fwt0") == "ok\n\n");
  close(blocked);
  close(open_port);
  close(tx);
}

// The maps grow with a large replace and shrink once it is undone, each
// time under a program of their own that replaces the attached one: not one
// packet of a dropped flow gets through meanwhile, and its rule's counter
// goes on (docs/DATAPATH.md, "Map sizes").
BOOST_AUTO_TEST_CASE(maps_grow_and_shrink_without_a_gap) {
  Pair p;
  const std::string drop = "proto udp dport 5000 action drop\n";
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*", drop);
  fw.start_attached("fwt0");
  uint32_t small = p.fw_ns.xdp_prog("fwt0");
  BOOST_TEST_REQUIRE(small != 0u);
  int blocked = bound(p.fw_ns, AF_INET, 5000);
  std::atomic<bool> flowing{true};
  std::atomic<uint64_t> sent{0};
  int tx = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);
  std::thread sender([&] {
    while (flowing) {
      send_to(tx, AF_INET, "198.18.0.1", 5000, 1);
      ++sent;
      usleep(200);
    }
  });
  std::string many = drop;
  for (int i = 0; i < 6000; ++i)
    many += "src 198.19." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) +
            " action drop\n";
  BOOST_TEST(fw.ask("rule replace <<\n" + many) == "replaced: 6001 rule(s)\n\n");
  uint32_t grown = p.fw_ns.xdp_prog("fwt0");
  BOOST_TEST(grown != small);
  BOOST_TEST(fw.ask("show interfaces").find(" prog " + std::to_string(grown) + " ") !=
             std::string::npos);
  usleep(100000);
  BOOST_TEST(fw.ask("rule replace <<\n" + drop) == "replaced: 1 rule(s)\n\n");
  BOOST_TEST(wait_until([&] { return p.fw_ns.xdp_prog("fwt0") != grown; }));  // on a timer
  usleep(100000);
  flowing = false;
  sender.join();
  close(tx);
  BOOST_TEST(drain(blocked) == 0);
  // Every packet counted, up to a packet counted by the old program in the
  // instant its count is added to the new one's (docs/DATAPATH.md).
  BOOST_TEST(wait_until([&] { return rule_packets(fw, 1) + 2 >= sent; }), sent.load());
  BOOST_TEST(rule_packets(fw, 1) <= sent);
  close(blocked);
}

BOOST_AUTO_TEST_SUITE_END()
