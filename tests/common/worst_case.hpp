// worst_case.hpp: rule sets built to make the classifier work hardest
// (docs/DATAPATH.md, "Limits and the worst case"), for the datapath tests
// and bench/classbench_bench.
#pragma once

#include <cstdint>
#include <vector>

#include "reference_classifier.hpp"
#include "rule.hpp"

namespace xdpfw::test {

// The header every worst-case set is built around: udp, sport 1000, dport
// 2000, 198.18.0.1 -> 198.19.0.1 or 2001:db8::1 -> 2001:db8:1::1.
PacketFields worst_case_header(Family fam);

// Rules that all sit in the header's bucket of their table and fail it only
// on a sport range that no table hashes (it spans the middle of the port
// space), 16 to a shape (a full bucket: the next shape opens a
// table), shapes from the longest prefixes down, until the set has `tables`
// tables for the family; then one rule of the worst priority, of the last
// shape, that matches the header. Classifying the header probes every table and scans a full
// bucket in each. Throws std::runtime_error if no such set exists.
std::vector<Rule> worst_case_tables(Family fam, uint32_t tables);

// `rules` rules under one key of one table (a bucket chain of rules / 16
// links), each failing the header on a sport range except the last.
std::vector<Rule> worst_case_chain(Family fam, uint32_t rules);

}  // namespace xdpfw::test
