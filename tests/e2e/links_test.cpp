// The firewall follows links as they come and go: the real host and plugin
// in a namespace of the test's, links made with ip, XDP checked with ip.
#include <boost/test/unit_test.hpp>

#include "support/firewall_agent.hpp"

using namespace xdpfw::test;

BOOST_AUTO_TEST_SUITE(links)

BOOST_AUTO_TEST_CASE(attach_detach_as_links_come_rename_and_go) {
  NetNs ns;
  ns.run("ip link add fwpre0 type veth peer name peerpre0");  // before the agent
  FirewallAgent fw(ns, "interfaces = fw*");
  fw.start_attached("fwpre0");
  uint32_t ours = ns.xdp_prog("fwpre0");

  ns.run("ip link add fwnew0 type veth peer name peernew0");
  ns.run("ip link add other0 type veth peer name other1");
  BOOST_TEST(wait_until([&] { return ns.xdp_prog("fwnew0") == ours; }));
  BOOST_TEST(wait_until(
      [&] { return fw.ask("show interfaces").find("other1 ifindex") != std::string::npos; }));
  BOOST_TEST(ns.xdp_prog("other0") == 0u);  // not selected: untouched
  BOOST_TEST(ns.xdp_prog("peernew0") == 0u);

  ns.run("ip link set other0 name fwren0");  // renamed into the pattern
  BOOST_TEST(wait_until([&] { return ns.xdp_prog("fwren0") == ours; }));
  ns.run("ip link set fwnew0 name out0");  // and out of it
  BOOST_TEST(wait_until([&] { return ns.xdp_prog("out0") == 0; }));

  std::string mode;
  ns.xdp_prog("fwpre0", &mode);
  BOOST_TEST(mode == "xdp");  // native on veth
  std::string shown = fw.ask("show interfaces");
  BOOST_TEST(shown.find("fwpre0 ifindex") != std::string::npos);
  BOOST_TEST(shown.find("selected yes manual - attached yes mode native prog " +
                        std::to_string(ours)) != std::string::npos,
             shown);

  ns.run("ip link delete fwpre0");
  BOOST_TEST(
      wait_until([&] { return fw.ask("show interfaces").find("fwpre0 ") == std::string::npos; }));
  BOOST_TEST(fw.host->log().find("interface fwpre0 (ifindex ") != std::string::npos);
  BOOST_TEST(fw.host->log().find("which the firewall was attached to, is gone") !=
             std::string::npos);

  fw.host->signal(SIGTERM);
  BOOST_TEST(fw.host->exit_code() == 0);
  BOOST_TEST(ns.xdp_links() == 0);  // default mode lets go on exit
  BOOST_TEST(fw.host->log().find("stopping: detached from 1 interface(s); their traffic now "
                                 "passes unfiltered") != std::string::npos,
             fw.host->log());
}

// With no interface patterns the agent attaches nothing, and says so at
// start and in 'show interfaces'.
BOOST_AUTO_TEST_CASE(no_interfaces_configured_is_said) {
  NetNs ns;
  ns.run("ip link add fwq0 type veth peer name fwq1");
  FirewallAgent fw(ns, "");
  fw.start();
  BOOST_TEST(wait_until(
      [&] { return fw.ask("show interfaces").find("fwq0 ifindex") != std::string::npos; }));
  std::string shown = fw.ask("show interfaces");
  BOOST_TEST(shown.find("# no interfaces configured ('interfaces =' in [plugin.xdpfw]): nothing "
                        "is attached by itself") == 0u,
             shown);
  BOOST_TEST(fw.host->log().find("no interfaces configured") != std::string::npos);
  BOOST_TEST(ns.xdp_prog("fwq0") == 0u);
  BOOST_TEST(fw.ask("show interfaces json").rfind("[", 0) == 0u);
}

BOOST_AUTO_TEST_CASE(manual_attach_and_detach) {
  NetNs ns;
  ns.run("ip link add fwm0 type veth peer name man0");
  FirewallAgent fw(ns, "interfaces = fw*");
  fw.start_attached("fwm0");
  BOOST_TEST(fw.ask("detach fwm0") == "ok\n\n");
  BOOST_TEST(ns.xdp_prog("fwm0") == 0u);
  BOOST_TEST(fw.ask("attach man0") == "ok\n\n");
  BOOST_TEST(ns.xdp_prog("man0") != 0u);
  ns.run("ip link set fwm0 down");  // an event does not undo a manual detach
  ns.run("ip link set fwm0 up");
  BOOST_TEST(wait_until(
      [&] { return fw.ask("show interfaces").find("fwm0 ifindex") != std::string::npos; }));
  BOOST_TEST(ns.xdp_prog("fwm0") == 0u);
  BOOST_TEST(fw.ask("show interfaces").find("manual detach attached no") != std::string::npos);
  BOOST_TEST(fw.ask("show interfaces").find("no interfaces configured") == std::string::npos);
  BOOST_TEST(fw.ask("auto fwm0") == "ok\n\n");
  BOOST_TEST(ns.xdp_prog("fwm0") != 0u);
  BOOST_TEST(fw.ask("attach") == "ERR: expected one interface name\n\n");
  BOOST_TEST(fw.ask("attach later0") ==
             "no interface later0 now; remembered for when it appears\n\n");
  ns.run("ip link add later0 type veth peer name laterp0");
  BOOST_TEST(wait_until([&] { return ns.xdp_prog("later0") != 0; }));
}

BOOST_AUTO_TEST_CASE(burst_of_200_links_also_after_overflow) {
  for (bool tiny : {false, true}) {
    BOOST_TEST_CONTEXT((tiny ? "receive buffer forced tiny" : "default receive buffer")) {
      NetNs ns;
      FirewallAgent fw(ns, "interfaces = fwb*", "", tiny ? "netlink-rcvbuf = 1" : "");
      fw.start();
      std::string batch;
      for (int i = 0; i < 200; ++i)
        batch += "link add fwb" + std::to_string(i) + " type veth peer name pb" +
                 std::to_string(i) + "\n";
      write_file(fw.dir / "batch", batch);
      int st = 0;
      shell("ip -n " + ns.name() + " -batch " + (fw.dir / "batch").string(), &st);
      BOOST_TEST_REQUIRE(st == 0);
      BOOST_TEST(wait_until([&] { return ns.xdp_links() == 200; }, 60), ns.xdp_links()
                                                                            << " of 200 attached\n"
                                                                            << fw.host->log());
      for (int i = 0; i < 200; i += 37) BOOST_TEST(ns.xdp_prog("fwb" + std::to_string(i)) != 0u);
      if (tiny)
        BOOST_TEST(fw.host->log().find("link events lost") != std::string::npos,
                   "no overflow happened: the test did not test the resync");
      // And gone again: the agent's view follows.
      batch.clear();
      for (int i = 0; i < 200; ++i) batch += "link delete fwb" + std::to_string(i) + "\n";
      write_file(fw.dir / "batch", batch);
      shell("ip -n " + ns.name() + " -batch " + (fw.dir / "batch").string(), &st);
      BOOST_TEST(wait_until(
          [&] { return fw.ask("show interfaces").find("fwb") == std::string::npos; }, 60));
    }
  }
}

BOOST_AUTO_TEST_CASE(modes_native_generic_and_auto_fallback) {
  // A bridge has no driver XDP: native refuses it, auto falls back to generic.
  NetNs ns;
  ns.run("ip link add fwbr0 type bridge");
  ns.run("ip link add fwv0 type veth peer name pv0");
  {
    FirewallAgent fw(ns, "interfaces = fw*\nmode = native");
    fw.start_attached("fwv0");
    BOOST_TEST(wait_until(
        [&] { return fw.ask("show interfaces").find("fwbr0 ifindex") != std::string::npos; }));
    BOOST_TEST(ns.xdp_prog("fwbr0") == 0u);
    BOOST_TEST(fw.ask("show interfaces").find("attached no mode - prog 0 since") !=
               std::string::npos);
    BOOST_TEST(fw.host->log().find("cannot attach to fwbr0: attach failed:") != std::string::npos,
               fw.host->log());
  }
  BOOST_TEST(wait_until([&] { return ns.xdp_links() == 0; }));
  {
    FirewallAgent fw(ns, "interfaces = fw*\nmode = auto");
    fw.start();
    std::string mode;
    BOOST_TEST(wait_until([&] { return ns.xdp_prog("fwbr0", &mode) != 0; }));
    BOOST_TEST(mode == "xdpgeneric");
    ns.xdp_prog("fwv0", &mode);
    BOOST_TEST(mode == "xdp");
    BOOST_TEST(fw.host->log().find("attached to fwbr0") != std::string::npos);
    BOOST_TEST(fw.host->log().find("native XDP refused") != std::string::npos, fw.host->log());
  }
  BOOST_TEST(wait_until([&] { return ns.xdp_links() == 0; }));
  {
    FirewallAgent fw(ns, "interfaces = fw*\nmode = generic");
    fw.start();
    std::string mode;
    BOOST_TEST(wait_until([&] { return ns.xdp_prog("fwv0", &mode) != 0; }));
    BOOST_TEST(mode == "xdpgeneric");
  }
}

BOOST_AUTO_TEST_CASE(foreign_program_is_not_clobbered) {
  NetNs ns;
  ns.run("ip link add fwf0 type veth peer name pf0");
  ns.run(std::string("ip link set dev fwf0 xdpgeneric obj ") + XDPFW_FOREIGN_OBJ + " sec xdp");
  uint32_t foreign = ns.xdp_prog("fwf0");
  BOOST_TEST_REQUIRE(foreign != 0u);
  FirewallAgent fw(ns, "interfaces = fw*");
  fw.start();
  BOOST_TEST(wait_until([&] {
    return fw.ask("show interfaces").find("another XDP program (id " + std::to_string(foreign)) !=
           std::string::npos;
  }));
  BOOST_TEST(ns.xdp_prog("fwf0") == foreign);
  BOOST_TEST(fw.host->log().find("cannot attach to fwf0") != std::string::npos);
  fw.host->signal(SIGTERM);
  BOOST_TEST(fw.host->exit_code() == 0);
  BOOST_TEST(ns.xdp_prog("fwf0") == foreign);  // still theirs after we left

  FirewallAgent taker(ns, "interfaces = fw*\ntakeover = yes");
  taker.start();
  BOOST_TEST(wait_until([&] {
               uint32_t id = ns.xdp_prog("fwf0");
               return id != 0 && id != foreign;
             }),
             taker.host->log());
  BOOST_TEST(taker.ask("show interfaces").find("fwf0 ifindex") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
