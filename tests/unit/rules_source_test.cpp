// Rules from a file or a directory (rules_file.hpp): which files of a
// directory count and in what order, where each line comes from, errors
// with FILE:LINE, priorities and ids across files.
#include <sys/stat.h>

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

namespace {
std::string refusal(const fs::path& p, uint64_t max = default_rules_max_bytes) {
  try {
    RulesText src = read_rules_source(p.string(), max);
    parse_rules_text(src.path, src.text, true, &src);
  } catch (const RuleError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

// Rules are root's input: a file or folder another user may write is
// refused with its path (a link is judged by its target); a folder above
// may be shared with the sticky bit, as /tmp.
BOOST_AUTO_TEST_CASE(sources_others_may_write_are_refused) {
  TempDir t;
  fs::path file = t / "fw.rules";
  write_file(file, "prio 0 action pass\n");
  fs::permissions(file, fs::perms(0644));
  BOOST_TEST(refusal(file) == "");
  fs::permissions(file, fs::perms(0666));
  BOOST_TEST(refusal(file) == "rules " + file.string() +
                                  " can be written by every user (mode 0666): refused (chmod "
                                  "go-w " +
                                  file.string() + ")");
  fs::permissions(file, fs::perms(0644));

  fs::path d = t / "rules.d";
  fs::create_directories(d);
  write_file(d / "10-a.rules", "proto tcp dport 22 action pass\n");
  fs::permissions(d, fs::perms(0755));
  BOOST_TEST(refusal(d) == "");
  fs::permissions(d, fs::perms(01777));  // even sticky: anyone may add a file
  BOOST_TEST(
      refusal(d).find("rules " + d.string() + " can be written by every user (mode 1777)") == 0u,
      refusal(d));
  fs::permissions(d, fs::perms(0755));
  // A link followed to a file in a folder others may write (no sticky bit).
  fs::path open_dir = t / "open";
  fs::create_directories(open_dir);
  write_file(open_dir / "x.rules", "proto tcp dport 23 action drop\n");
  fs::permissions(open_dir, fs::perms(0777));
  fs::create_symlink(open_dir / "x.rules", d / "20-x.rules");
  std::string why = refusal(d);
  BOOST_TEST(why.find("rules " + (d / "20-x.rules").string() + " (a link to " +
                      (open_dir / "x.rules").string() + "): the folder above it " +
                      open_dir.string() + " can be written by every user (mode 0777)") == 0u,
             why);
  fs::permissions(open_dir, fs::perms(01777));  // a sticky folder above is fine
  BOOST_TEST(refusal(d) == "");
}

// A file every user may read is quoted in errors; one they may not (a link
// to a root-only file) is not: its line number and size only.
BOOST_AUTO_TEST_CASE(text_of_files_others_cannot_read_is_not_quoted) {
  TempDir t;
  fs::path d = t / "rules.d";
  fs::create_directories(d);
  fs::path secret = t / "secret";
  std::string text = "root:$y$j9T$secretsecret:19000:0:99999:7:::";
  write_file(secret, text + "\n");
  fs::permissions(secret, fs::perms(0640));
  fs::create_symlink(secret, d / "95-x.rules");
  std::string why = refusal(d);
  BOOST_TEST(why == (d / "95-x.rules").string() + ":1: not a rule (" + std::to_string(text.size()) +
                        " bytes; the file is not readable by every user, so its text is not "
                        "shown)",
             why);
  BOOST_TEST(why.find("secret") == std::string::npos);
  fs::permissions(secret, fs::perms(0644));
  why = refusal(d);
  BOOST_TEST(why.find("'root:$y$j9T$secretsecret:19000:0:99999:7:::'") != std::string::npos, why);
  // Control bytes are shown, not passed on (a NUL cut the message before).
  fs::remove(d / "95-x.rules");
  write_file(d / "10-nul.rules", std::string("proto tcp dport 22\0x action drop\n", 33));
  why = refusal(d);
  BOOST_TEST(why.find("'22\\x00x'") != std::string::npos, why);
}

// rules-max-size: a file, or the files of a folder together, larger than
// the limit are refused after reading at most limit + 1 bytes (a sparse
// file of 1 GiB is not read whole).
BOOST_AUTO_TEST_CASE(sources_larger_than_the_limit_are_refused) {
  TempDir t;
  fs::path big = t / "big.rules";
  write_file(big, "");
  fs::resize_file(big, 1ull << 30);  // sparse
  BOOST_TEST(refusal(big) == big.string() +
                                 " is larger than rules-max-size (16777216 bytes): "
                                 "refused");
  fs::path d = t / "rules.d";
  fs::create_directories(d);
  std::string line = "proto tcp dport 22 action pass # " + std::string(570, '.') + "\n";
  write_file(d / "10-a.rules", line);
  write_file(d / "20-b.rules", line);
  BOOST_TEST(refusal(d, 2048) == "");
  BOOST_TEST(refusal(d, 1024) == d.string() +
                                     " (its files together, up to 20-b.rules) is larger than "
                                     "rules-max-size (1024 bytes): refused");
  // A FIFO is refused, not waited on.
  fs::path fifo = t / "fifo.rules";
  BOOST_TEST_REQUIRE(mkfifo(fifo.c_str(), 0644) == 0);
  BOOST_TEST(refusal(fifo) == fifo.string() + ": not a regular file: refused");
}

BOOST_AUTO_TEST_SUITE_END()
