// Maps pinned on a bpf filesystem survive the process: a new Datapath finds
// them, the old rule set keeps filtering until the next apply, and rule
// counters carry on. A private bpffs per test, unmounted at the end.
#include <sys/mount.h>

#include <boost/test/unit_test.hpp>

#include "common/test_util.hpp"
#include "datapath/fixture.hpp"

using namespace xdpfw;
using namespace xdpfw::test;

namespace {
struct BpfFs {
  TempDir dir;
  fs::path root = dir / "bpf";
  BpfFs() {
    fs::create_directories(root);
    BOOST_TEST_REQUIRE(mount("bpf", root.c_str(), "bpf", 0, nullptr) == 0);
  }
  ~BpfFs() { umount2(root.c_str(), MNT_DETACH); }
};

std::vector<Rule> rules(std::initializer_list<const char*> texts) {
  std::vector<Rule> out;
  for (const char* t : texts) out.push_back(parse_rule(t));
  return out;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(persistence)

BOOST_AUTO_TEST_CASE(rules_and_counters_survive_the_process) {
  BpfFs fs;
  DatapathOptions o = require_root();
  o.pin_dir = fs.root.string();
  auto frame53 = build_packet(udp4(53)), frame54 = build_packet(udp4(54));
  {
    Datapath a(o);
    BOOST_TEST(!a.resumed());
    a.apply(rules({"id 4 prio 1 proto udp dport 53 action drop",
                   "id 9 prio 2 proto udp dport 54 action drop"}),
            Policy{});
    BOOST_TEST(run_xdp(a.prog_fd(), frame53, 5).retval == XDP_DROP);
    BOOST_TEST(run_xdp(a.prog_fd(), frame54, 2).retval == XDP_DROP);
  }  // the process's objects are gone; the pins are not
  Datapath b(o);
  BOOST_TEST(b.resumed());
  // Until its first apply, the old set filters.
  BOOST_TEST(run_xdp(b.prog_fd(), frame53).retval == XDP_DROP);
  BOOST_TEST(b.rule_counters(4).value().packets == 6u);
  BOOST_TEST(b.rule_counters(9).value().packets == 2u);
  BOOST_TEST(b.stats()[XDPFW_STAT_MATCH_DROP] == 8u);
  b.apply(rules({"id 4 prio 1 proto udp dport 53 action drop",
                 "id 10 prio 2 proto udp dport 55 action drop"}),
          Policy{});
  BOOST_TEST(b.rule_counters(4).value().packets == 6u);  // kept, not reset or doubled
  BOOST_TEST(b.rule_counters(10).value().packets == 0u);
  BOOST_TEST(run_xdp(b.prog_fd(), frame54).retval == XDP_PASS);
  BOOST_TEST(run_xdp(b.prog_fd(), build_packet(udp4(55))).retval == XDP_DROP);
  for (int i = 0; i < 3; ++i) {  // both slots rewritten right: flip a few times
    b.apply(rules({"id 4 prio 1 proto udp dport 53 action drop"}), Policy{});
    BOOST_TEST(run_xdp(b.prog_fd(), build_packet(udp4(55))).retval == XDP_PASS);
    b.apply(rules({"id 4 prio 1 proto udp dport 53 action pass"}), Policy{});
    BOOST_TEST(run_xdp(b.prog_fd(), frame53).retval == XDP_PASS);
  }
}

BOOST_AUTO_TEST_CASE(other_sizes_are_refused_with_advice) {
  BpfFs fs;
  DatapathOptions o = require_root();
  o.pin_dir = fs.root.string();
  { Datapath a(o); }
  o.max_rules = 1000;
  try {
    Datapath b(o);
    BOOST_FAIL("maps of another size were reused");
  } catch (const DatapathError& e) {
    BOOST_TEST(
        std::string(e.what()).find("cannot reuse the maps pinned in " + fs.root.string()) == 0u,
        e.what());
    BOOST_TEST(std::string(e.what()).find("rm -r") != std::string::npos);
  }
}

BOOST_AUTO_TEST_SUITE_END()
