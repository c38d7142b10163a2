// Maps pinned on a bpf filesystem survive the process: a new KernelDatapath finds
// them, the old rule set keeps filtering until the next apply, and rule
// counters carry on. A private bpffs per test, unmounted at the end.
#include <bpf/bpf.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstring>

#include "datapath/fixture.hpp"
#include "support/util.hpp"

using namespace xdpfw;
using namespace xdpfw::test;

namespace {
struct BpfFs {
  TempDir dir;
  BpfMount mount{dir / "bpf"};
  const fs::path& root = mount.path;
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
    KernelDatapath a(o);
    BOOST_TEST(!a.resumed());
    a.apply(rules({"id 4 prio 1 proto udp dport 53 action drop",
                   "id 9 prio 2 proto udp dport 54 action drop"}),
            Policy{});
    BOOST_TEST(run_xdp(a.prog_fd(), frame53, 5).retval == XDP_DROP);
    BOOST_TEST(run_xdp(a.prog_fd(), frame54, 2).retval == XDP_DROP);
  }  // the process's objects are gone; the pins are not
  KernelDatapath b(o);
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

// Maps resized to the rules (docs/DATAPATH.md, "Map sizes") are pinned in
// place of the old ones; the next run adopts their sizes and keeps rules
// and counters. Another max-rules is a limit, not a size: nothing replaced.
BOOST_AUTO_TEST_CASE(pins_of_resized_maps_are_adopted) {
  BpfFs fs;
  DatapathOptions o = require_root();
  o.pin_dir = fs.root.string();
  auto frame53 = build_packet(udp4(53));
  std::vector<Rule> many = rules({"id 4 prio 1 proto udp dport 53 action drop"});
  for (uint32_t i = 0; i < 2000; ++i)
    many.push_back(parse_rule("id " + std::to_string(100 + i) + " prio 5 proto tcp dport " +
                              std::to_string(1000 + i) + " action drop"));
  KernelDatapath::Capacity grown;
  {
    KernelDatapath a(o);
    a.apply(many, Policy{});
    BOOST_TEST(a.resizes() >= 1u);
    grown = a.capacity();
    BOOST_TEST(grown.counters >= 2001u);
    BOOST_TEST(run_xdp(a.prog_fd(), frame53, 3).retval == XDP_DROP);
  }
  o.max_rules = 5000;
  KernelDatapath b(o);
  BOOST_TEST(b.resumed());
  BOOST_TEST(b.replaced_pins() == "");
  BOOST_TEST((b.capacity() == grown));
  BOOST_TEST(b.rule_counters(4).value().packets == 3u);
  BOOST_TEST(run_xdp(b.prog_fd(), frame53).retval == XDP_DROP);
  b.apply(many, Policy{});
  BOOST_TEST(b.rule_counters(4).value().packets == 4u);
  BOOST_TEST(run_xdp(b.prog_fd(), build_packet(tcp4(2999))).retval == XDP_DROP);
}

// Same sizes, other meaning: the layout number in the config decides. A map
// missing beside the others (a layout that added one) is another layout too,
// and pins of maps this layout no longer has are removed with the others.
BOOST_AUTO_TEST_CASE(pins_of_another_layout_are_replaced) {
  BpfFs fs;
  DatapathOptions o = require_root();
  o.pin_dir = fs.root.string();
  { KernelDatapath a(o); }
  {
    int fd = bpf_obj_get((fs.root / "xdpfw_config").c_str());
    BOOST_TEST_REQUIRE(fd >= 0);
    xdpfw_config c{};
    __u32 zero = 0;
    BOOST_TEST_REQUIRE(bpf_map_lookup_elem(fd, &zero, &c) == 0);
    BOOST_TEST(c.layout == XDPFW_MAP_LAYOUT);
    c.layout = XDPFW_MAP_LAYOUT + 7;
    BOOST_TEST_REQUIRE(bpf_map_update_elem(fd, &zero, &c, BPF_ANY) == 0);
    close(fd);
  }
  // A pin only an older layout had: any map will do.
  int stale = bpf_obj_get((fs.root / "xdpfw_stats").c_str());
  BOOST_TEST_REQUIRE(stale >= 0);
  BOOST_TEST_REQUIRE(bpf_obj_pin(stale, (fs.root / "xdpfw_old_map").c_str()) == 0);
  close(stale);
  {
    KernelDatapath b(o);
    BOOST_TEST(!b.resumed());
    BOOST_TEST(b.replaced_pins() == "xdpfw_config has layout " +
                                        std::to_string(XDPFW_MAP_LAYOUT + 7) + ", this agent " +
                                        std::to_string(XDPFW_MAP_LAYOUT));
    BOOST_TEST(!fs::exists(fs.root / "xdpfw_old_map"));
    BOOST_TEST(fs::exists(fs.root / "xdpfw_config"));
  }
  BOOST_TEST_REQUIRE(unlink((fs.root / "xdpfw_summary").c_str()) == 0);
  KernelDatapath c(o);
  BOOST_TEST(!c.resumed());
  BOOST_TEST(c.replaced_pins() == "xdpfw_summary is missing");
  BOOST_TEST(fs::exists(fs.root / "xdpfw_summary"));
}

// Address set elements: a full-length address goes to the hash
// (xdpfw_set_hosts), a shorter prefix to the trie (xdpfw_sets); the program
// looks in the hash first, then in the trie, and both survive the process.
BOOST_AUTO_TEST_CASE(set_elements_survive_the_process_each_in_its_map) {
  BpfFs fs;
  DatapathOptions o = require_root();
  o.pin_dir = fs.root.string();
  const uint32_t tag = 1u << 2;  // set id 1, generation 0
  Prefix host = parse_prefix("198.18.0.1", "src"), net = parse_prefix("198.18.0.0/24", "src");
  Prefix host6 = parse_prefix("2001:db8::1", "src");
  auto from = [](const char* src, bool v6 = false) {
    return build_packet(PacketSpec{.f = v6 ? fields6(src, "2001:db8::2", 17, 40000, 53)
                                           : fields4(src, "198.18.0.2", 17, 40000, 53)});
  };
  Rule r4 = parse_rule("id 4 prio 1 src @s proto udp dport 53 action drop");
  r4.src_set->id = 1;
  auto entries = [&](const char* map) {
    int fd = bpf_obj_get((fs.root / map).c_str());
    BOOST_TEST_REQUIRE(fd >= 0);
    std::vector<uint32_t> lens;
    xdpfw_set_key k{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      lens.push_back(next.prefixlen - 32);
      k = next;
      prev = &k;
    }
    close(fd);
    std::sort(lens.begin(), lens.end());
    return lens;
  };
  {
    KernelDatapath a(o);
    a.switch_set_tag(1, tag);
    a.write_element(tag, host, ~0ULL, true);
    a.write_element(tag, host6, ~0ULL, true);
    a.write_element(tag, net, ~0ULL, true);
    a.apply({r4}, Policy{});
    BOOST_TEST(run_xdp(a.prog_fd(), from("198.18.0.1"), 3).retval == XDP_DROP);
    BOOST_TEST(run_xdp(a.prog_fd(), from("198.18.0.9")).retval == XDP_DROP);
    BOOST_TEST(run_xdp(a.prog_fd(), from("198.18.1.1")).retval == XDP_PASS);
    BOOST_TEST(run_xdp(a.prog_fd(), from("2001:db8::1", true)).retval == XDP_DROP);
    BOOST_TEST(run_xdp(a.prog_fd(), from("2001:db8::3", true)).retval == XDP_PASS);
    BOOST_TEST(a.element_hits(tag, host) == 3u);
    BOOST_TEST(a.element_hits(tag, net) == 1u);
  }
  BOOST_TEST(entries("xdpfw_set_hosts") == (std::vector<uint32_t>{32, 128}));
  BOOST_TEST(entries("xdpfw_sets") == (std::vector<uint32_t>{24}));
  KernelDatapath b(o);
  BOOST_TEST_REQUIRE(b.resumed());
  BOOST_TEST(b.set_elements().size() == 3u);
  BOOST_TEST(b.element_hits(tag, host) == 3u);
  BOOST_TEST(run_xdp(b.prog_fd(), from("198.18.0.1")).retval == XDP_DROP);
  b.write_element(tag, host, ~0ULL, false);  // a rewrite keeps its count
  BOOST_TEST(b.element_hits(tag, host) == 4u);
  // The host gone, its /24 still covers it (the trie, after a miss in the
  // hash); the /24 gone too, nothing does.
  b.erase_element(tag, host);
  BOOST_TEST(entries("xdpfw_set_hosts") == (std::vector<uint32_t>{128}));
  BOOST_TEST(run_xdp(b.prog_fd(), from("198.18.0.1")).retval == XDP_DROP);
  BOOST_TEST(b.element_hits(tag, net) == 2u);
  b.erase_element(tag, net);
  BOOST_TEST(run_xdp(b.prog_fd(), from("198.18.0.1")).retval == XDP_PASS);
  b.erase_element(tag, host6);
  BOOST_TEST(b.set_elements().empty());
  BOOST_TEST(run_xdp(b.prog_fd(), from("2001:db8::1", true)).retval == XDP_PASS);
}

// Beside a set's tag, xdpfw_set_tags says which maps hold its elements,
// per family (bpf/xdpfw.h, enum xdpfw_set_kinds): a lookup skips the others.
// The kinds follow each first and last element of a kind, a generation
// switch, a fresh write of an element already there, and a restart (counted
// from the pins). A kind missing would lose members (the verdicts); one too
// many would cost a lookup (the values).
BOOST_AUTO_TEST_CASE(set_kinds_follow_the_elements) {
  BpfFs fs;
  DatapathOptions o = require_root();
  o.pin_dir = fs.root.string();
  const uint32_t gen0 = 1u << 2, gen1 = gen0 | 2;  // set id 1, generations 0 and 1
  const uint32_t v4_hosts = XDPFW_SET_HOSTS, v4_nets = XDPFW_SET_PREFIXES,
                 v6_hosts = XDPFW_SET_HOSTS << XDPFW_SET_KINDS_V6,
                 v6_nets = XDPFW_SET_PREFIXES << XDPFW_SET_KINDS_V6;
  Prefix host = parse_prefix("198.18.1.1", "src"), net = parse_prefix("198.18.0.0/24", "src");
  Prefix host6 = parse_prefix("2001:db8::1", "src"), net6 = parse_prefix("2001:db8:1::/48", "src");
  auto verdict = [](const KernelDatapath& dp, const char* src) {
    bool v6 = std::strchr(src, ':') != nullptr;
    return run_xdp(dp.prog_fd(),
                   build_packet(PacketSpec{.f = v6 ? fields6(src, "2001:db8::2", 17, 40000, 53)
                                                   : fields4(src, "198.18.0.2", 17, 40000, 53)}))
        .retval;
  };
  auto value = [&] {
    int fd = bpf_obj_get((fs.root / "xdpfw_set_tags").c_str());
    BOOST_TEST_REQUIRE(fd >= 0);
    uint32_t key = 1, v = 0;
    BOOST_TEST_REQUIRE(bpf_map_lookup_elem(fd, &key, &v) == 0);
    close(fd);
    return v;
  };
  Rule r4 = parse_rule("id 4 prio 1 src @s proto udp dport 53 action drop");
  r4.src_set->id = 1;
  {
    KernelDatapath a(o);
    a.apply({r4}, Policy{});
    a.switch_set_tag(1, gen0);
    BOOST_TEST(value() == gen0);  // empty: no map to ask
    BOOST_TEST(verdict(a, "198.18.0.1") == XDP_PASS);
    a.write_element(gen0, net, ~0ULL, true);
    BOOST_TEST(value() == (gen0 | v4_nets));
    BOOST_TEST(verdict(a, "198.18.0.1") == XDP_DROP);
    a.write_element(gen0, host, ~0ULL, true);
    a.write_element(gen0, host, ~0ULL, true);  // again: one element, counted once
    a.write_element(gen0, host6, ~0ULL, true);
    BOOST_TEST(value() == (gen0 | v4_nets | v4_hosts | v6_hosts));
    BOOST_TEST(verdict(a, "198.18.1.1") == XDP_DROP);
    BOOST_TEST(verdict(a, "2001:db8::1") == XDP_DROP);
    a.erase_element(gen0, net);
    BOOST_TEST(value() == (gen0 | v4_hosts | v6_hosts));
    BOOST_TEST(verdict(a, "198.18.0.1") == XDP_PASS);
    BOOST_TEST(verdict(a, "198.18.1.1") == XDP_DROP);
    a.erase_element(gen0, host);
    a.erase_element(gen0, host);  // absent: nothing to count
    BOOST_TEST(value() == (gen0 | v6_hosts));
    BOOST_TEST(verdict(a, "198.18.1.1") == XDP_PASS);
    // The other generation, written while this one is live, changes
    // nothing until the switch.
    a.write_element(gen1, net6, ~0ULL, true);
    a.write_element(gen1, host, ~0ULL, true);
    BOOST_TEST(value() == (gen0 | v6_hosts));
    a.switch_set_tag(1, gen1);
    BOOST_TEST(value() == (gen1 | v6_nets | v4_hosts));
    BOOST_TEST(verdict(a, "2001:db8:1::7") == XDP_DROP);
    BOOST_TEST(verdict(a, "2001:db8::1") == XDP_PASS);
    BOOST_TEST(verdict(a, "198.18.1.1") == XDP_DROP);
    a.erase_element(gen0, host6);  // the old generation's: the live kinds stay
    BOOST_TEST(value() == (gen1 | v6_nets | v4_hosts));
  }
  // A new process counts what the pins hold: its first erase of the last
  // host clears the kind, and a fresh write of an element already there
  // counts nothing.
  KernelDatapath b(o);
  BOOST_TEST_REQUIRE(b.resumed());
  BOOST_TEST(b.set_tag(1) == gen1);
  b.write_element(gen1, net6, ~0ULL, true);
  b.erase_element(gen1, host);
  BOOST_TEST(value() == (gen1 | v6_nets));
  BOOST_TEST(verdict(b, "198.18.1.1") == XDP_PASS);
  BOOST_TEST(verdict(b, "2001:db8:1::7") == XDP_DROP);
  b.erase_element(gen1, net6);
  BOOST_TEST(value() == gen1);
  BOOST_TEST(verdict(b, "2001:db8:1::7") == XDP_PASS);
  b.switch_set_tag(1, 0);
  BOOST_TEST(value() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
