// The rule store: ids never come back, and a replace keeps the id (and so
// the counters) of every rule it keeps unchanged.
#include <boost/test/unit_test.hpp>

#include <fstream>

#include "rule_store.hpp"
#include "state_journal.hpp"
#include "support/util.hpp"

using namespace xdpfw;
using namespace xdpfw::test;

namespace {
std::vector<std::string> texts(const std::vector<Rule>& rs) {
  std::vector<std::string> out;
  for (const Rule& r : rs) out.push_back(format_rule(r));
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(rule_store)

BOOST_AUTO_TEST_CASE(replace_keeps_ids_of_unchanged_rules_and_never_reuses_one) {
  RuleStore s;
  s.commit(s.parsed("a", "proto udp dport 123 action drop\nproto tcp dport 22 action drop\n"));
  BOOST_TEST(texts(s.rules()) ==
             (std::vector<std::string>{"id 1 prio 1000 proto udp dport 123 action drop",
                                       "id 2 prio 1000 proto tcp dport 22 action drop"}));
  // Rule 2 unchanged: keeps id 2. Rule 1 gone; the new rules get 3 and 4,
  // never 1 (its counters must not show up on another rule).
  s.commit(s.parsed("b",
                    "proto tcp dport 22 action drop\nproto tcp dport 80 action drop\n"
                    "proto udp dport 123 action pass\n"));
  BOOST_TEST(texts(s.rules()) ==
             (std::vector<std::string>{"id 2 prio 1000 proto tcp dport 22 action drop",
                                       "id 3 prio 1000 proto tcp dport 80 action drop",
                                       "id 4 prio 1000 proto udp dport 123 action pass"}));
  // Same match, other priority or action: a new rule. An explicit id wins.
  s.commit(s.parsed(
      "c", "prio 5 proto tcp dport 22 action drop\nid 9 proto tcp dport 80 action drop\n"));
  BOOST_TEST(texts(s.rules()) ==
             (std::vector<std::string>{"id 5 prio 5 proto tcp dport 22 action drop",
                                       "id 9 prio 1000 proto tcp dport 80 action drop"}));
  uint32_t id = 0;
  s.commit(s.with_added(parse_rule("proto icmp action pass"), &id));
  BOOST_TEST(id == 10u);
}

// One rule at a time: prepared() changes nothing, insert() keeps the order
// (priority, then id), erase() frees no id for reuse, a taken id is refused.
BOOST_AUTO_TEST_CASE(insert_and_erase_in_place) {
  RuleStore s;
  s.commit(
      s.parsed("a", "prio 10 proto tcp dport 22 action drop\nprio 3000 proto udp action pass\n"));
  Rule r = s.prepared(parse_rule("prio 20 proto icmp action drop"));
  BOOST_TEST(r.id == 3u);
  BOOST_TEST(s.rules().size() == 2u);  // not yet in
  s.insert(r);
  std::vector<uint32_t> order;
  for (const Rule& x : s.rules()) order.push_back(x.id);
  BOOST_TEST(order == (std::vector<uint32_t>{1, 3, 2}));
  BOOST_TEST(*s.prepared(parse_rule("proto tcp action pass")).priority == 3000u);  // after the last
  BOOST_CHECK_THROW(s.prepared(parse_rule("id 3 proto tcp action pass")), RuleError);
  BOOST_TEST(s.find(3) != nullptr);
  s.erase(3);
  BOOST_TEST(s.find(3) == nullptr);
  BOOST_TEST(s.rules().size() == 2u);
  BOOST_TEST(s.prepared(parse_rule("proto tcp action pass")).id == 4u);  // 3 never comes back
  BOOST_TEST(s.id_high_water() == 3u);
  Rule explicit_id = s.prepared(parse_rule("id 50 proto tcp action pass"));
  s.insert(explicit_id);
  BOOST_TEST(s.prepared(parse_rule("proto udp action pass")).id == 51u);
}

// The state journal both kinds of state use: the snapshot, then the
// journal's whole lines (a line cut by a crash left out), appends until the
// caller's threshold, a fold that empties the journal; "none" keeps nothing.
BOOST_AUTO_TEST_CASE(state_journal_appends_folds_and_drops_a_torn_tail) {
  TempDir t;
  std::vector<std::string> logged;
  auto log = [&](int, const std::string& m) { logged.push_back(m); };
  {
    StateJournal j(t.path.string(), "things", log);
    BOOST_TEST(!j.read_state());
    BOOST_TEST(j.read_journal().empty());
    BOOST_TEST(j.append("add 1", 2));
    BOOST_TEST(j.append("add 2", 2));
    BOOST_TEST(!j.append("add 3", 2));  // the caller folds now
    BOOST_TEST(j.lines() == 2u);
  }
  {
    std::ofstream(t / "things.journal", std::ios::app) << "add 3 cut by a cra";
    StateJournal j(t.path.string(), "things", log);
    std::vector<std::string> want = {"add 1", "add 2"};
    BOOST_TEST(j.read_journal() == want, boost::test_tools::per_element());
    BOOST_TEST(j.lines() == 2u);
    j.fold("snapshot 1\n", "# header\n");
    BOOST_TEST(*j.read_state() == "# header\nsnapshot 1\n");
    BOOST_TEST(!fs::exists(t / "things.journal"));
    BOOST_TEST(j.lines() == 0u);
    BOOST_TEST(j.append("add 4", 10));
    BOOST_TEST(j.read_journal() == std::vector<std::string>{"add 4"},
               boost::test_tools::per_element());
  }
  // A planted link is refused, not followed.
  fs::remove(t / "things.journal");
  fs::create_symlink(t / "elsewhere", t / "things.journal");
  StateJournal j(t.path.string(), "things", log);
  BOOST_TEST(!j.append("add 5", 10));
  BOOST_TEST(!fs::exists(t / "elsewhere"));
  BOOST_TEST(!logged.empty());
  StateJournal none("none", "things", log);
  BOOST_TEST(none.append("x", 0));
  BOOST_TEST(!none.read_state());
}

// A journal line of the rules: "add RULE", "del ID", applied idempotently.
BOOST_AUTO_TEST_CASE(rules_journal_lines_replay_idempotently) {
  std::vector<Rule> rules;
  Rule r = parse_rule("id 4 prio 10 proto tcp dport 22 action drop");
  BOOST_TEST(RuleStore::replay(rules, RuleStore::journal_add(r)) == 4u);
  BOOST_TEST(RuleStore::replay(rules, RuleStore::journal_add(r)) == 4u);
  BOOST_TEST(rules.size() == 1u);
  BOOST_TEST(RuleStore::replay(rules, RuleStore::journal_del(4)) == 4u);
  BOOST_TEST(RuleStore::replay(rules, RuleStore::journal_del(4)) == 4u);
  BOOST_TEST(rules.empty());
  BOOST_CHECK_THROW(RuleStore::replay(rules, "add proto tcp action drop"), RuleError);  // no id
  BOOST_CHECK_THROW(RuleStore::replay(rules, "del x"), RuleError);
  BOOST_CHECK_THROW(RuleStore::replay(rules, "move 4"), RuleError);
}

BOOST_AUTO_TEST_SUITE_END()
