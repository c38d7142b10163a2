// flat_map_test.cpp: FlatMap against std::unordered_map under random
// inserts and erases (the backward-shift erase and the move of the last
// entry are where it could go wrong), and PackedBucket's round trip.
#include <boost/test/unit_test.hpp>

#include <random>
#include <unordered_map>

#include "flat_map.hpp"
#include "rule_compiler.hpp"

using namespace xdpfw;

BOOST_AUTO_TEST_SUITE(flat_map)

BOOST_AUTO_TEST_CASE(agrees_with_unordered_map) {
  std::mt19937 rng(7);
  FlatMap<uint32_t, uint32_t> m;
  std::unordered_map<uint32_t, uint32_t> want;
  for (int i = 0; i < 200000; ++i) {
    uint32_t k = rng() % 5000;  // dense keys: long probe runs, many shifts
    if (rng() % 3 == 0) {
      BOOST_REQUIRE_EQUAL(m.erase(k), want.erase(k));
    } else {
      m[k] = static_cast<uint32_t>(i);
      want[k] = static_cast<uint32_t>(i);
    }
    if (i % 10000 == 0) {
      BOOST_REQUIRE_EQUAL(m.size(), want.size());
      for (const auto& [key, v] : want) BOOST_REQUIRE(m.find(key) != m.end() && m.at(key) == v);
      for (const auto& [key, v] : m) BOOST_REQUIRE(want.count(key) && want.at(key) == v);
    }
  }
  auto copy = m;
  BOOST_TEST((copy == m));
  copy.erase(copy.begin());
  BOOST_TEST(!(copy == m));
  BOOST_CHECK_THROW(m.at(999999), std::out_of_range);
  m.clear();
  BOOST_TEST(m.empty());
  BOOST_TEST(m.count(1) == 0u);
}

BOOST_AUTO_TEST_CASE(rekeyed_entries_are_found) {
  FlatMap<uint32_t, int> m;
  for (uint32_t i = 0; i < 1000; ++i) m.emplace(i, static_cast<int>(i));
  auto entries = m.release();
  BOOST_TEST(m.empty());
  for (auto& [k, v] : entries) k += 5000;
  m = FlatMap<uint32_t, int>::from_unique(std::move(entries));
  BOOST_TEST(m.size() == 1000u);
  BOOST_TEST(m.at(5999) == 999);
  BOOST_TEST(m.count(999) == 0u);
}

BOOST_AUTO_TEST_CASE(packed_buckets_hold_what_buckets_hold) {
  for (uint32_t n = 0; n <= XDPFW_BUCKET_SIZE; ++n) {
    Bucket b;
    b.more = n % 2;
    for (uint32_t j = 0; j < n; ++j) b.ids[b.n++] = 100 + j;
    PackedBucket p = b;
    BOOST_TEST((Bucket(p) == b));
    PackedBucket grown;
    for (uint32_t j = 0; j < n; ++j) grown.push_back(100 + j);
    grown.more = b.more;
    BOOST_TEST((grown == p));
    PackedBucket moved = std::move(grown), copied = moved;
    BOOST_TEST((copied == p));
    copied = Bucket{};
    BOOST_TEST(copied.n == 0);
  }
}

BOOST_AUTO_TEST_SUITE_END()
