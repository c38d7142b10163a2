// Rules from a file or a directory (rules_file.hpp): which files of a
// directory count and in what order, where each line comes from, errors
// with FILE:LINE, priorities and ids across files.
#include <boost/test/unit_test.hpp>

#include "rules_file.hpp"
#include "rules_source.hpp"
#include "support/util.hpp"

using namespace xdpfw;
using namespace xdpfw::test;

BOOST_AUTO_TEST_SUITE(rules_source)

BOOST_AUTO_TEST_CASE(a_directory_is_its_rules_files_in_name_order) {
  TempDir t;
  fs::path d = t / "rules.d";
  fs::create_directories(d / "sub.rules");  // a folder: not a rules file
  fs::create_directories(d / "..2026_12_04");
  write_file(d / "20-b.rules", "proto udp dport 53 action pass\n\nprio 5 proto tcp action drop");
  write_file(d / "10-a.rules", "# first\nproto tcp dport 22 action pass\n");
  write_file(d / ".hidden.rules", "proto tcp dport 1 action drop\n");
  write_file(d / "notes.txt", "proto tcp dport 2 action drop\n");
  write_file(d / "..2026_12_04" / "c.rules", "proto tcp dport 3 action pass\n");
  fs::create_symlink("..2026_12_04/c.rules", d / "30-c.rules");  // followed

  RulesText src = read_rules_source(d.string());
  BOOST_TEST(src.directory);
  std::vector<std::string> want = {(d / "10-a.rules").string(), (d / "20-b.rules").string(),
                                   (d / "30-c.rules").string()};
  BOOST_TEST(src.files() == want, boost::test_tools::per_element());
  std::vector<unsigned> lines;
  auto rules = parse_rules_text(src.path, src.text, true, &src, &lines);
  BOOST_TEST_REQUIRE(rules.size() == 4u);
  BOOST_TEST(src.where(lines[0]) == (d / "10-a.rules").string() + ":2");
  BOOST_TEST(src.where(lines[1]) == (d / "20-b.rules").string() + ":1");
  BOOST_TEST(src.where(lines[2]) == (d / "20-b.rules").string() + ":3");  // no final newline
  BOOST_TEST(src.where(lines[3]) == (d / "30-c.rules").string() + ":1");
  // Priorities and ids go on across files as in one file.
  BOOST_TEST(*rules[0].priority == 1000u);
  BOOST_TEST(*rules[2].priority == 5u);
  BOOST_TEST(*rules[3].priority == 1000u);
  BOOST_TEST(rules[3].id == 4u);

  // A rename is a change, though no rule changed.
  fs::rename(d / "20-b.rules", d / "25-b.rules");
  BOOST_TEST(read_rules_source(d.string()).text != src.text);
}

BOOST_AUTO_TEST_CASE(errors_name_the_file_and_its_line) {
  TempDir t;
  write_file(t / "a.rules", "id 7 proto tcp action drop\n");
  write_file(t / "b.rules", "# b\nproto udp dport 70000 action drop\n");
  RulesText src = read_rules_source(t.path.string());
  try {
    parse_rules_text(src.path, src.text, true, &src);
    BOOST_FAIL("a port above 65535 was taken");
  } catch (const RuleError& e) {
    BOOST_TEST(std::string(e.what()).find((t / "b.rules").string() + ":2: dport") == 0u, e.what());
  }
  write_file(t / "b.rules", "# b\nid 7 proto udp action drop\n");
  src = read_rules_source(t.path.string());
  try {
    parse_rules_text(src.path, src.text, true, &src);
    BOOST_FAIL("an id used in two files was taken");
  } catch (const RuleError& e) {
    BOOST_TEST(std::string(e.what()) == (t / "b.rules").string() + ":2: id: 7 is used twice");
  }
  // A file stays a file; what cannot be read says so.
  RulesText one = read_rules_source((t / "a.rules").string());
  BOOST_TEST(!one.directory);
  BOOST_TEST(one.text == "id 7 proto tcp action drop\n");
  BOOST_TEST(one.where(1) == (t / "a.rules").string() + ":1");
  BOOST_CHECK_THROW(read_rules_source((t / "missing.rules").string()), RuleError);
  BOOST_TEST(read_rules_source("").text.empty());
  // An empty directory is an empty rule set.
  fs::create_directories(t / "empty");
  BOOST_TEST(read_rules_source((t / "empty").string()).text.empty());
}

// The watch, without root: an event in the watched folder is read once
// it has settled for the delay (the clock is the test's), applied or
// refused as the service says; a change undone is nothing to refuse;
// events of other files in a rules file's folder do not count.
BOOST_AUTO_TEST_CASE(the_watch_reads_a_settled_change) {
  TempDir t;
  fs::path file = t / "rules.conf";
  write_file(file, "proto tcp dport 22 action drop\n");
  uint64_t now = 1000;
  std::vector<std::string> logged;
  RulesSource src([&](int, const std::string& m) { logged.push_back(m); }, [&] { return now; },
                  [&] { return uint64_t(1765000000000); });
  src.configure(file.string(), true, 200);
  BOOST_TEST_REQUIRE(src.fd() >= 0);
  BOOST_TEST(src.watching());
  RulesText first = read_rules_source(file.string());
  src.applied(first, {}, {}, false);
  BOOST_TEST(src.status().result == "applied");
  BOOST_TEST(src.status().applied == 0u);

  write_file(t / "other.conf", "x\n");  // not the rules file
  src.on_event();
  now += 1000;
  BOOST_TEST(!src.poll());

  write_file(file, "proto tcp dport 23 action drop\n");
  src.on_event();
  now += 100;
  BOOST_TEST(!src.poll());  // not settled yet
  now += 100;
  auto changed = src.poll();
  BOOST_TEST_REQUIRE(changed.has_value());
  BOOST_TEST(changed->text == "proto tcp dport 23 action drop\n");
  src.refused("dport: no");
  BOOST_TEST(src.status().result == "refused");
  BOOST_TEST(src.status().refused == 1u);
  BOOST_TEST(logged.back().find("dport: no (refused: the running rules stay)") !=
             std::string::npos);

  write_file(file, "proto tcp dport 22 action drop\n");  // undone
  src.on_event();
  now += 200;
  BOOST_TEST(!src.poll());
  BOOST_TEST(src.status().result == "applied");

  write_file(file, "proto tcp dport 24 action drop\n");
  src.on_event();
  now += 200;
  changed = src.poll();
  BOOST_TEST_REQUIRE(changed.has_value());
  std::vector<Rule> list = parse_rules_text(changed->path, changed->text, true, &*changed);
  src.applied(*changed, list, {1}, true);
  BOOST_TEST(src.status().applied == 1u);
  BOOST_TEST(src.origins().at(list[0].id) == file.string() + ":1");
  BOOST_TEST(!src.changed(read_rules_source(file.string())));
}

BOOST_AUTO_TEST_SUITE_END()
