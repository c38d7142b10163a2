// The classifier's worst case through the real program: a header that is a
// candidate of every table (XDPFW_MAX_TABLES probes, a full bucket scanned
// in each) and the longest bucket chain the compiler builds, both decided
// right; one rule past the chain limit is refused with nothing changed.
// bench/classbench_bench measures what these cost (docs/DATAPATH.md).
#include <boost/test/unit_test.hpp>

#include "common/worst_case.hpp"
#include "datapath/fixture.hpp"
#include "rule_compiler.hpp"

using namespace xdpfw;
using namespace xdpfw::test;

namespace {
PacketSpec spec(const PacketFields& f) {
  return PacketSpec{.f = f};
}
int fam_index(Family f) {
  return f == Family::v4 ? XDPFW_FAMILY_V4 : XDPFW_FAMILY_V6;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(worst_case)

BOOST_FIXTURE_TEST_CASE(one_header_probes_every_table, DatapathFixture) {
  for (Family fam : {Family::v4, Family::v6}) {
    BOOST_TEST_CONTEXT(std::string(fam_index(fam) ? "IPv6" : "IPv4")) {
      std::vector<Rule> rules = worst_case_tables(fam, XDPFW_MAX_TABLES);
      CompiledRuleset c = compile_rules(rules, Policy{});
      BOOST_TEST(c.header.ntables[fam_index(fam)] == uint32_t{XDPFW_MAX_TABLES});
      PacketFields hit = worst_case_header(fam), miss = hit;
      miss.sport = 60000;  // no rule's sport range
      uint32_t probes = 0;
      auto want = lookup_compiled(c, hit, &probes);
      BOOST_TEST_REQUIRE(want.has_value());
      BOOST_TEST(want->rule_id() == rules.back().id);  // the worst rule decides
      BOOST_TEST(probes == uint32_t{XDPFW_MAX_TABLES});
      BOOST_TEST(!lookup_compiled(c, miss, &probes).has_value());
      BOOST_TEST(probes == uint32_t{XDPFW_MAX_TABLES});

      dp.apply(rules, Policy{});
      uint64_t deep = stat(XDPFW_STAT_PROBES_17_PLUS), before = hits(rules.back().id);
      BOOST_TEST(run(spec(hit)) == XDP_DROP);
      BOOST_TEST(hits(rules.back().id) == before + 1);
      BOOST_TEST(run(spec(miss)) == XDP_PASS);
      BOOST_TEST(stat(XDPFW_STAT_PROBES_17_PLUS) == deep + 2);
    }
  }
}

BOOST_FIXTURE_TEST_CASE(the_longest_chain_is_scanned_and_one_more_rule_refused, DatapathFixture) {
  // 16 rules fill the relaxed table's bucket; XDPFW_MAX_CHAIN links of 16
  // follow in the rules' own table.
  const uint32_t most = XDPFW_BUCKET_SIZE + XDPFW_MAX_CHAIN * XDPFW_BUCKET_SIZE;
  for (Family fam : {Family::v4, Family::v6}) {
    BOOST_TEST_CONTEXT(std::string(fam_index(fam) ? "IPv6" : "IPv4")) {
      std::vector<Rule> rules = worst_case_chain(fam, most);
      dp.apply(rules, Policy{});
      uint64_t before = hits(most);  // ids are the same in both rounds
      PacketFields h = worst_case_header(fam);
      BOOST_TEST(run(spec(h)) == XDP_DROP);
      BOOST_TEST(hits(most) == before + 1);
      h.sport = 60000;
      BOOST_TEST(run(spec(h)) == XDP_PASS);
      try {
        dp.apply(worst_case_chain(fam, most + 1), Policy{});
        BOOST_FAIL("a chain past the limit was accepted");
      } catch (const CompileError& e) {
        BOOST_TEST(std::string(e.what()).find("rule " + std::to_string(most + 1) +
                                              ": more than 4096 rules agree") == 0u,
                   e.what());
      }
      BOOST_TEST(run(spec(worst_case_header(fam))) == XDP_DROP);  // the old set stays
      BOOST_TEST(hits(most) == before + 2);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
