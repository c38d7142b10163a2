// classbench.hpp: ClassBench filter sets (tests/data/classbench, from Taylor
// and Turner's generator on the acl1, fw1 and ipc1 seeds) as rule lists, and
// packet headers drawn from them: inside every filter (its corners and random
// points) and random ones, so that hits at every depth and misses are both
// exercised. Expected verdicts come from the reference classifier, never from
// the filter a header was drawn from.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "reference_classifier.hpp"
#include "rule.hpp"

namespace xdpfw::test {

struct ClassBenchOptions {
  bool v6 = false;    // map a.b.c.d/n to 2001:db8:ab:cd::/(32+n) (/0 stays any)
  uint64_t seed = 1;  // actions: 30% pass, 70% drop, drawn from this seed
  uint32_t first_id = 1;
};

// The sets shipped with the tests, e.g. "acl1_10000" (100,000-rule sets are
// gzip files; they are read through gzip -dc).
std::string classbench_path(const std::string& name);

// One rule per filter, in file order: id first_id + line, priority = line
// (the first filter that matches wins). Throws std::runtime_error naming the
// line of a filter it cannot read.
std::vector<Rule> load_classbench(const std::string& path, const ClassBenchOptions& o = {});

// n headers: three in four drawn inside a random rule (a corner or a random
// point of each field), the rest random over the whole space. Family as the
// rules' (v4 unless every rule with an address is v6).
std::vector<PacketFields> classbench_headers(const std::vector<Rule>& rules, size_t n,
                                             std::mt19937_64& rng);

}  // namespace xdpfw::test
