// Address sets with the real agent and real traffic between namespaces: a
// set of 100,000 prefixes loaded through xdpfw-ctl, traffic from inside one
// dropped and from outside passed; an element with a 2 s timeout stops
// matching by itself; a restart keeps the set and its remaining times; a
// set a rule names cannot be destroyed. A real fail2ban (Debian's) bans and
// unbans through the shipped action.
#include <chrono>
#include <thread>

#include "e2e/traffic.hpp"

using namespace xdpfw::test;
using nlohmann::json;

namespace {

// A UDP socket in NS sending from ADDR.
int sending_from(const NetNs& ns, const char* addr) {
  int fd = ns.socket_in(AF_INET, SOCK_DGRAM);
  sockaddr_storage ss;
  socklen_t len = sockaddr_of(AF_INET, addr, 0, ss);
  BOOST_TEST_REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0);
  return fd;
}

// The set's elements, as 'set list NAME json' gives them: element -> seconds left.
std::map<std::string, int> members(FirewallAgent& fw, const std::string& set) {
  std::map<std::string, int> out;
  auto j = json::parse(fw.ask("set list " + set + " json"));
  for (const json& m : j.at("members"))
    out[m.at("element").get<std::string>()] =
        m.at("expires").is_number() ? m.at("expires").get<int>() : -1;
  return out;
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

// fail2ban 1.0 from Debian, a private server of the test's (its own config
// folder, socket, pid file, log; nothing read from /etc/fail2ban), with one
// jail on a log file the test writes and the shipped action
// (conf/fail2ban/action.d/xdpfw.conf) calling the real xdpfw-ctl.
BOOST_AUTO_TEST_CASE(fail2ban_bans_and_unbans_through_a_set) {
  Pair p;
  p.peer_ns.run("ip addr add 198.18.0.7/24 dev peer0");
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*\nset = f2b", "prio 1 src @f2b action drop\n");
  fw.start_attached("fwt0");
  int rx = bound(p.fw_ns, AF_INET, 5000);
  int other = p.peer_ns.socket_in(AF_INET, SOCK_DGRAM);  // from 198.18.0.2
  int attacker = sending_from(p.peer_ns, "198.18.0.7");
  warm_up(other, AF_INET, "198.18.0.1", 5000, rx);
  BOOST_TEST(delivered(attacker, rx, 10) == 10);

  TempDir t;
  fs::path conf = t / "conf", sock = t / "f2b.sock", auth = t / "auth.log";
  fs::create_directories(conf / "filter.d");
  fs::create_directories(conf / "action.d");
  fs::copy_file(XDPFW_SOURCE_DIR "/conf/fail2ban/action.d/xdpfw.conf",
                conf / "action.d" / "xdpfw.conf");
  write_file(conf / "fail2ban.conf",
             "[Definition]\nloglevel = INFO\nlogtarget = " + (t / "fail2ban.log").string() +
                 "\nsocket = " + sock.string() + "\npidfile = " + (t / "f2b.pid").string() +
                 "\ndbfile = :memory:\ndbpurgeage = 1d\nsyslogsocket = auto\nallowipv6 = auto\n");
  // ignoreself off: no lookups of this host's names; polling: the backends
  // that need python3-pyinotify or python3-systemd are not installed.
  write_file(conf / "jail.conf",
             "[DEFAULT]\nignoreself = false\nignoreip =\nusedns = no\nbackend = polling\n\n"
             "[xdpfw-test]\nenabled = true\nfilter = xdpfw-test\nlogpath = " +
                 auth.string() +
                 "\nmaxretry = 3\nfindtime = 600\nbantime = 600\n"
                 "action = xdpfw[setname=f2b, socketpath=\"" +
                 fw.sock.string() + "\", xdpfwctl=\"" + XDPFW_CTL_BIN +
                 "\"]\n\n"
                 // A jail of permanent bans (bantime = -1) into the same set.
                 "[xdpfw-forever]\nenabled = true\nfilter = xdpfw-test\nlogpath = " +
                 (t / "never.log").string() +
                 "\nmaxretry = 3\nfindtime = 600\nbantime = -1\n"
                 "action = xdpfw[setname=f2b, socketpath=\"" +
                 fw.sock.string() + "\", xdpfwctl=\"" + XDPFW_CTL_BIN + "\"]\n");
  // The lines carry no time stamp: fail2ban takes the time it reads them.
  write_file(conf / "filter.d" / "xdpfw-test.conf",
             "[Definition]\nfailregex = ^auth failure from <HOST>$\nignoreregex =\n"
             "datepattern = {NONE}\n");
  write_file(auth, "");
  write_file(t / "never.log", "");
  Child server(p.fw_ns,
               {"fail2ban-server", "-f", "-x", "-c", conf.string(), "-s", sock.string(), "-p",
                (t / "f2b.pid").string()},
               t / "server.out");
  auto client = [&](const std::string& args) {
    return shell("fail2ban-client -c " + quote(conf.string()) + " -s " + quote(sock.string()) +
                 " " + args + " 2>&1");
  };
  auto server_log = [&] { return read_file(t / "server.out") + read_file(t / "fail2ban.log"); };
  // Lines already in the file when the jail starts watching it are not
  // counted: write only once it has (status lists the jail earlier).
  BOOST_TEST_REQUIRE(wait_until(
                         [&] {
                           return read_file(t / "fail2ban.log").find("Jail 'xdpfw-test' started") !=
                                  std::string::npos;
                         },
                         30),
                     server_log());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto fail = [&](int n) {
    std::ofstream out(auth, std::ios::app);
    for (int i = 0; i < n; ++i) out << "auth failure from 198.18.0.7\n";
  };

  // Two failures: below maxretry (fail2ban polls the file every 2 s).
  fail(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  BOOST_TEST(client("get xdpfw-test banned 198.18.0.7") == "0\n");
  BOOST_TEST(members(fw, "f2b").empty());

  // The third: fail2ban reports the ban, the set holds the address for
  // fail2ban's bantime, and its traffic is dropped while other traffic passes.
  fail(1);
  BOOST_TEST(
      wait_until(
          [&] { return client("get xdpfw-test banip").find("198.18.0.7") != std::string::npos; },
          20),
      server_log());
  BOOST_TEST_REQUIRE(wait_until([&] { return members(fw, "f2b").count("198.18.0.7") > 0; }, 10),
                     server_log());
  int left = members(fw, "f2b").at("198.18.0.7");
  BOOST_TEST((left > 590 && left <= 600), left);
  BOOST_TEST(delivered(attacker, rx, 10) == 0);
  BOOST_TEST(delivered(other, rx, 10) == 10);

  // fail2ban's unban removes it.
  BOOST_TEST(client("set xdpfw-test unbanip 198.18.0.7") == "1\n");
  BOOST_TEST(wait_until([&] { return members(fw, "f2b").empty(); }, 10), server_log());
  BOOST_TEST(delivered(attacker, rx, 10) == 10);

  // An element gone before fail2ban unbans it (the set's own timeout, an
  // operator): the unban still succeeds (if-present), fail2ban logs no error.
  BOOST_TEST(client("set xdpfw-test banip 198.18.0.9") == "1\n");
  BOOST_TEST_REQUIRE(wait_until([&] { return members(fw, "f2b").count("198.18.0.9") > 0; }, 10),
                     server_log());
  BOOST_TEST(fw.ask("set del f2b 198.18.0.9") == "deleted\n\n");
  BOOST_TEST(client("set xdpfw-test unbanip 198.18.0.9") == "1\n");
  BOOST_TEST(wait_until(
      [&] { return read_file(t / "fail2ban.log").find("Unban 198.18.0.9") != std::string::npos; },
      10));

  // A permanent ban (bantime = -1: the action runs 'set add f2b IP timeout
  // -1s'): the element has no expiry, its traffic is dropped; unban removes it.
  BOOST_TEST(client("set xdpfw-forever banip 198.18.0.7") == "1\n");
  BOOST_TEST_REQUIRE(wait_until([&] { return members(fw, "f2b").count("198.18.0.7") > 0; }, 10),
                     server_log());
  BOOST_TEST(members(fw, "f2b").at("198.18.0.7") == -1);  // no expiry
  BOOST_TEST(delivered(attacker, rx, 10) == 0);
  BOOST_TEST(client("set xdpfw-forever unbanip 198.18.0.7") == "1\n");
  BOOST_TEST(wait_until([&] { return members(fw, "f2b").empty(); }, 10), server_log());

  // Stopping fail2ban unbans what it still bans.
  fail(3);
  BOOST_TEST_REQUIRE(wait_until([&] { return members(fw, "f2b").count("198.18.0.7") > 0; }, 20),
                     server_log());
  BOOST_TEST(client("stop").find("Shutdown successful") != std::string::npos);
  BOOST_TEST(server.exited(20));
  BOOST_TEST(members(fw, "f2b").empty());
  std::string log = read_file(t / "fail2ban.log");
  BOOST_TEST(log.find("ERROR") == std::string::npos, log);
  BOOST_TEST(log.find("failed") == std::string::npos, log);
  for (int fd : {rx, other, attacker}) close(fd);
}

// The fail2ban recipe done by reload instead of a restart: a 'set =' line
// and a rule naming it arrive together, by the reload command and by
// SIGHUP; both going together remove the set with its bans, and the log
// says how many; a set made with 'set create' is no config's and stays.
BOOST_AUTO_TEST_CASE(reload_and_sighup_add_and_remove_a_config_set) {
  Pair p;
  FirewallAgent fw(p.fw_ns, "interfaces = fwt*", "proto tcp dport 22 action pass\n");
  fw.start();
  fs::path conf = fw.dir / "xdpfw.conf";
  std::string base = read_file(conf);
  BOOST_TEST(fw.ask("set create manual").find("created set manual") == 0u);

  write_file(conf, base + "set = admins\n");
  write_file(fw.dir / "rules.conf",
             "proto tcp dport 22 action pass\nprio 1 src @admins action drop\n");
  std::string r = fw.ask("reload");
  BOOST_TEST(r.find("reloaded") == 0u, r);
  BOOST_TEST(fw.ask("set add admins 198.18.0.5").find("added") == 0u);
  BOOST_TEST(fw.ask("rule list").find("src @admins action drop") != std::string::npos);

  write_file(conf, base + "set = admins\nset = blocked timeout 1h\n");
  write_file(fw.dir / "rules.conf",
             "proto tcp dport 22 action pass\nprio 1 src @admins action drop\n"
             "prio 2 src @blocked action drop\n");
  fw.host->signal(SIGHUP);
  BOOST_TEST(
      wait_until([&] { return fw.ask("set list").find("set blocked") != std::string::npos; }));
  BOOST_TEST(wait_until(
      [&] { return fw.ask("rule list").find("src @blocked action drop") != std::string::npos; }));

  write_file(conf, base + "set = blocked timeout 1h\n");
  write_file(fw.dir / "rules.conf",
             "proto tcp dport 22 action pass\nprio 2 src @blocked action drop\n");
  fw.host->signal(SIGHUP);
  BOOST_TEST(wait_until([&] {
    return fw.log().find("set admins removed with its 1 element(s)") != std::string::npos;
  }));
  std::string sets = fw.ask("set list");
  BOOST_TEST(sets.find("set admins") == std::string::npos, sets);
  BOOST_TEST(sets.find("set manual") != std::string::npos, sets);
  BOOST_TEST(sets.find("set blocked") != std::string::npos, sets);
  BOOST_TEST(fw.log().find("reload refused") == std::string::npos, fw.log());
}

BOOST_AUTO_TEST_SUITE_END()
