// Rule changes in place (KernelDatapath::add_in_place / remove_in_place) against
// the loaded program: random sequences of adds and deletes on ClassBench
// sets; after the checked steps the structure passes the invariant check,
// matches a fresh compile's answers, and the XDP program's verdict and
// deciding rule agree with the reference on sampled headers.
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <thread>

#include "common/classbench.hpp"
#include "common/worst_case.hpp"
#include "datapath/fixture.hpp"
#include "support/util.hpp"

using namespace xdpfw;
using namespace xdpfw::test;

namespace {

void check_xdp(DatapathFixture& fx, const std::vector<Rule>& live,
               const std::vector<PacketFields>& sample, const std::string& what) {
  ReferenceClassifier ref(live, Action::pass);
  int bad = 0;
  for (const PacketFields& f : sample) {
    Verdict want = ref.classify(f);
    uint64_t before = want.rule_id ? fx.hits(*want.rule_id) : 0;
    uint32_t got = fx.run(PacketSpec{.f = f});
    bool ok = got == (want.action == Action::drop ? XDP_DROP : XDP_PASS) &&
              (!want.rule_id || fx.hits(*want.rule_id) == before + 1);
    if (!ok && ++bad <= 3)
      BOOST_ERROR(what << ": " << format_address(f.family, f.src) << " -> "
                       << format_address(f.family, f.dst) << " proto " << int(f.proto) << " "
                       << f.sport << "/" << f.dport << ": want rule "
                       << (want.rule_id ? int(*want.rule_id) : -1) << ", XDP returned " << got);
  }
}

void sequence(const std::string& set, size_t start, int steps, int check_every, size_t headers,
              uint64_t seed) {
  auto pool = load_classbench(classbench_path(set), {});
  std::mt19937_64 rng(seed);
  std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<Rule> live(pool.begin(), pool.begin() + std::min(start, pool.size()));
  std::vector<Rule> spare(pool.begin() + live.size(), pool.end());
  DatapathFixture fx;
  fx.dp.apply(live, Policy{});
  auto sample = classbench_headers(pool, headers, rng);
  int in_place = 0;
  for (int step = 1; step <= steps; ++step) {
    bool add = !spare.empty() && rng() % 2;
    if (add) {
      Rule r = spare.back();
      spare.pop_back();
      live.push_back(r);
      if (fx.dp.add_in_place(r))
        ++in_place;
      else
        fx.dp.apply(live, Policy{});
    } else {
      size_t i = rng() % live.size();
      Rule r = live[i];
      live.erase(live.begin() + i);
      spare.insert(spare.begin(), r);
      if (fx.dp.remove_in_place(r))
        ++in_place;
      else
        fx.dp.apply(live, Policy{});
    }
    if (step % check_every) continue;
    std::string what = set + " step " + std::to_string(step) + (add ? " (add)" : " (delete)");
    BOOST_TEST_INFO(what);
    BOOST_REQUIRE_EQUAL(check_invariants(fx.dp.compiled(), live), "");
    check_xdp(fx, live, sample, what);
  }
  BOOST_TEST_MESSAGE(set << ": " << steps << " steps from " << start << " rules, " << in_place
                         << " in place");
  BOOST_TEST(in_place > steps * 9 / 10);
  // Removed rules' counter slots come back once their grace period is over:
  // a fresh compile of the final list classifies the sample the same way.
  CompiledRuleset fresh = compile_rules(live, Policy{});
  for (const PacketFields& p : sample) {
    auto a = lookup_compiled(fx.dp.compiled(), p), b = lookup_compiled(fresh, p);
    BOOST_REQUIRE_EQUAL(a.has_value(), b.has_value());
    if (a) BOOST_REQUIRE_EQUAL(a->rule_id(), b->rule_id());
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(updates)

BOOST_AUTO_TEST_CASE(in_place_sequences_on_classbench) {
  sequence("acl1_1000", 500, sized(400, 100), 1, 60, 1);
  sequence("ipc1_10000", 9000, sized(300, 100), 10, 200, 2);
  sequence("fw1_100000", 100000, sized(300, 100), 100, sized(2000, 500), 3);
}

// The program reads a chain on past links that removals in place left short
// or empty, and finds rules added into them and into a new link.
BOOST_AUTO_TEST_CASE(chains_change_in_place_in_the_live_program) {
  DatapathFixture fx;
  std::vector<Rule> rs = worst_case_chain(Family::v6, 68), more = worst_case_chain(Family::v6, 100);
  fx.dp.apply(rs, Policy{});
  PacketSpec h{.f = worst_case_header(Family::v6)};
  BOOST_TEST(fx.run(h) == XDP_DROP);
  for (uint32_t id = 17; id <= 64; ++id) BOOST_TEST_REQUIRE(fx.dp.remove_in_place(rs[id - 1]));
  BOOST_TEST(fx.run(h) == XDP_DROP);  // rule 68, past three empty links
  BOOST_TEST(fx.hits(68) == 2u);
  BOOST_TEST_REQUIRE(fx.dp.remove_in_place(rs[67]));
  BOOST_TEST(fx.run(h) == XDP_PASS);
  // A rule that matches, after all the others: into the last link's room.
  Rule last = rs[67];
  last.id = 200;
  last.priority = 200;
  BOOST_TEST_REQUIRE(fx.dp.add_in_place(last));
  BOOST_TEST(fx.run(h) == XDP_DROP);
  BOOST_TEST(fx.hits(200) == 1u);
  std::vector<Rule> live(rs.begin(), rs.begin() + 16);
  live.insert(live.end(), rs.begin() + 64, rs.begin() + 67);
  live.push_back(last);
  // Past the end: the last link fills, then a new link. (Rule 100 would have
  // the match of rule 200 and beat it: not in place, not tried here.)
  for (uint32_t id = 69; id <= 99; ++id) {
    BOOST_TEST_INFO("rule " << id);
    BOOST_TEST_REQUIRE(fx.dp.add_in_place(more[id - 1]));
    live.push_back(more[id - 1]);
  }
  BOOST_TEST(check_invariants(fx.dp.compiled(), live) == "");
  BOOST_TEST(fx.run(h) == XDP_DROP);
  BOOST_TEST(fx.hits(200) == 2u);
}

BOOST_AUTO_TEST_CASE(in_place_add_is_one_bucket_write_in_the_live_slot) {
  // Packets see the new rule at once, and the old ones all along, without
  // a flip (the generation of the rule set does not move).
  DatapathFixture fx;
  auto rs = fx.install({"prio 10 src 198.18.0.1 proto udp dport 7000 action drop",
                        "prio 20 src 198.18.0.0/24 proto udp action pass"});
  uint64_t gen = fx.dp.generation();
  PacketSpec p = udp4(7001);
  BOOST_TEST(fx.run(p) == uint32_t(XDP_PASS));  // rule 2
  Rule r = parse_rule("id 3 prio 30 src 198.18.0.1 proto udp dport 7001 action drop");
  BOOST_TEST_REQUIRE(fx.dp.add_in_place(r));
  BOOST_TEST(fx.dp.generation() == gen);
  BOOST_TEST(fx.run(p) == uint32_t(XDP_PASS));  // rule 2 still wins (prio 20 < 30)
  BOOST_TEST_REQUIRE(fx.dp.remove_in_place(rs[1]));
  BOOST_TEST(fx.run(p) == uint32_t(XDP_DROP));  // now rule 3
  BOOST_TEST(fx.hits(3) == 1u);
  BOOST_TEST(!fx.dp.rule_counters(2).has_value());
  BOOST_TEST(fx.dp.generation() == gen);
}

// A recompile brings each slot from what it holds to the new set by writing
// the candidate records that changed, not most of them.
BOOST_AUTO_TEST_CASE(a_recompile_writes_only_the_records_that_changed) {
  DatapathFixture fx;
  std::vector<Rule> rules;
  for (uint32_t i = 1; i <= 300; ++i)
    rules.push_back(parse_rule("id " + std::to_string(i) + " prio " + std::to_string(i) +
                               " src 198.18." + std::to_string(i / 200) + "." +
                               std::to_string(i % 200) + " proto udp dport 7000 action drop"));
  // An apply finishes the previous one's catch-up (the other slot) first:
  // after three, both slots hold the set.
  for (int i = 0; i < 3; ++i) fx.dp.apply(rules, Policy{});
  uint64_t before = fx.dp.records_written();
  rules.push_back(parse_rule("id 301 prio 301 src 198.19.0.1 proto udp dport 7000 action drop"));
  for (int i = 0; i < 3; ++i) fx.dp.apply(rules, Policy{});
  // The new rule's record, once per slot.
  BOOST_TEST(fx.dp.records_written() - before == 2u);
  BOOST_TEST(fx.run(udp4(7000)) == uint32_t(XDP_DROP));
}

BOOST_AUTO_TEST_CASE(packets_see_the_old_set_or_the_new_one_while_changes_apply) {
  // A sender runs one packet over and over while rules that decide it are
  // added and removed in place (and, now and then, through a recompile and
  // flip). Every run must be decided by a rule of the old set or of the new
  // one: never by none (a half-written change would send it to the default
  // path), never twice.
  DatapathFixture fx;
  std::vector<Rule> base = fx.install({"prio 50 src 198.18.0.0/16 proto udp action pass",
                                       "prio 60 proto udp dport 7000 action drop"});
  // Noise in other tables and buckets, changed too.
  std::vector<Rule> extra;
  for (uint32_t i = 0; i < 200; ++i)
    extra.push_back(parse_rule(
        "id " + std::to_string(100 + i) + " prio " + std::to_string(10 + i % 80) + " src 198.19." +
        std::to_string(i) + ".0/24 proto tcp dport " + std::to_string(1000 + i) + " action drop"));
  Rule hot = parse_rule("id 50 prio 20 src 198.18.0.1 proto udp dport 7000 action drop");
  PacketSpec p = udp4(7000);
  auto frame = build_packet(p);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> runs{0};
  std::thread sender([&] {
    while (!stop) {
      // Many runs per call: each call swaps the XDP dispatcher (a grace period).
      RunResult r = run_xdp(fx.dp.prog_fd(), frame, 20000);
      if (r.err == 0) runs += 20000;
    }
  });
  std::vector<Rule> live = base;
  std::mt19937_64 rng(5);
  for (int round = 0; round < 300; ++round) {
    Rule change = rng() % 3 ? hot : extra[rng() % extra.size()];
    auto at =
        std::find_if(live.begin(), live.end(), [&](const Rule& r) { return r.id == change.id; });
    bool present = at != live.end();
    if (present)
      live.erase(at);
    else
      live.push_back(change);
    bool done = present ? fx.dp.remove_in_place(change) : fx.dp.add_in_place(change);
    if (!done || round % 50 == 0) fx.dp.apply(live, Policy{});
  }
  stop = true;
  sender.join();
  Stats s = fx.dp.stats();
  BOOST_TEST_MESSAGE(runs.load() << " packets while 300 changes applied");
  BOOST_TEST(runs.load() > 0u);
  BOOST_TEST(s[XDPFW_STAT_DEFAULT_PASS] + s[XDPFW_STAT_DEFAULT_DROP] == 0u);
  BOOST_TEST(s[XDPFW_STAT_MATCH_PASS] + s[XDPFW_STAT_MATCH_DROP] == runs.load());
}

BOOST_AUTO_TEST_SUITE_END()
