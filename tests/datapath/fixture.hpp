// fixture.hpp: a freshly loaded datapath per test, with helpers to install
// rules from text and run frames through BPF_PROG_TEST_RUN. Needs root.
#pragma once

#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <string>
#include <vector>

#include "datapath.hpp"
#include "datapath/packet_builder.hpp"
#include "datapath/prog_runner.hpp"

namespace xdpfw::test {

inline DatapathOptions require_root(DatapathOptions o = {}) {
  BOOST_TEST_REQUIRE(geteuid() == 0u, "datapath tests load BPF programs: run them as root");
  return o;
}

struct DatapathFixture {
  explicit DatapathFixture(const DatapathOptions& o = {}) : dp(require_root(o)) {}

  // Rules from text; ids count from 1 and priorities default to 100, as a
  // rule store would assign them.
  std::vector<Rule> install(std::initializer_list<std::string> texts, Policy policy = {}) {
    std::vector<Rule> rs;
    uint32_t next = 1;
    for (const auto& t : texts) {
      Rule r = parse_rule(t);
      if (!r.id) r.id = next;
      if (!r.priority) r.priority = 100;
      next = r.id + 1;
      rs.push_back(r);
    }
    dp.apply(rs, policy);
    return rs;
  }

  uint32_t run(const PacketSpec& s, int repeat = 1) { return run(build_packet(s), repeat); }
  uint32_t run(const std::vector<uint8_t>& frame, int repeat = 1) {
    RunResult r = run_xdp(dp.prog_fd(), frame, repeat);
    BOOST_TEST_REQUIRE(r.err == 0, "BPF_PROG_TEST_RUN failed: " << r.err);
    return r.retval;
  }
  uint64_t stat(xdpfw_stat s) { return dp.stats()[s]; }
  uint64_t hits(uint32_t id) { return dp.rule_counters(id).value().packets; }

  KernelDatapath dp;
};

inline PacketSpec udp4(uint16_t dport, uint16_t sport = 40000) {
  return PacketSpec{.f = fields4("198.18.0.1", "198.18.0.2", 17, sport, dport)};
}
inline PacketSpec udp6(uint16_t dport, uint16_t sport = 40000) {
  return PacketSpec{.f = fields6("2001:db8::1", "2001:db8::2", 17, sport, dport)};
}
inline PacketSpec tcp4(uint16_t dport, uint16_t sport = 40000) {
  return PacketSpec{.f = fields4("198.18.0.1", "198.18.0.2", 6, sport, dport)};
}
inline PacketSpec tcp6(uint16_t dport, uint16_t sport = 40000) {
  return PacketSpec{.f = fields6("2001:db8::1", "2001:db8::2", 6, sport, dport)};
}

}  // namespace xdpfw::test
