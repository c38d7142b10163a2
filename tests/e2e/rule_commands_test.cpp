// The firewall's rule commands over the real control socket: every command
// with good and bad input; after every bad one the rule set is unchanged.
#include <fcntl.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <thread>

#include <boost/test/unit_test.hpp>

#include "support/firewall_agent.hpp"

using namespace xdpfw::test;
using nlohmann::json;

namespace {

// (The rules file is not watched: these tests change it and say when it is
// read, SIGHUP or reload; e2e.rules_source tests the watch.)
struct Operated {
  NetNs ns;
  FirewallAgent fw{ns, "max-rules = 4\ndefault-action = pass\nwatch-rules = no",
                   "id 1 proto udp dport 53 action pass\n"};
  Operated() { fw.start(); }
  json rules() { return json::parse(fw.ask("rule list json")); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(rule_commands)

BOOST_AUTO_TEST_CASE(add_list_del_flush) {
  Operated o;
  BOOST_TEST(o.fw.ask("rule add src 198.18.0.0/15 proto tcp dport 1024-65535 action drop") ==
             "id 2\n\n");
  BOOST_TEST(o.fw.ask("rule add --src 198.18.0.1 --dport 8080 --proto tcp --action drop") ==
             "id 3\n\n");
  BOOST_TEST(o.fw.ask("rule add prio 5 dst 2001:db8::/32 action drop") == "id 4\n\n");
  json r = o.rules();
  BOOST_TEST_REQUIRE(r.size() == 4u);
  BOOST_TEST(r[0]["id"] == 4);  // prio 5 first
  BOOST_TEST(r[1]["rule"] == "id 1 prio 1000 proto udp dport 53 action pass");
  BOOST_TEST(r[3]["rule"] == "id 3 prio 1000 src 198.18.0.1 proto tcp dport 8080 action drop");
  std::string text = o.fw.ask("rule list");
  BOOST_TEST(text.find("id 4 prio 5 dst 2001:db8::/32 action drop packets 0 bytes 0\n") == 0u,
             text);
  BOOST_TEST(o.fw.ask("rule del 2") == "deleted 2\n\n");
  BOOST_TEST(o.rules().size() == 3u);
  // ids are never reused
  BOOST_TEST(o.fw.ask("rule add proto icmp action pass") == "id 5\n\n");
  BOOST_TEST(o.fw.ask("rule flush") == "flushed 4 rule(s)\n\n");
  BOOST_TEST(o.rules().empty());
}

BOOST_AUTO_TEST_CASE(bad_input_changes_nothing) {
  Operated o;
  o.fw.ask("rule add proto tcp dport 22 action drop");
  json before = o.rules();
  struct {
    const char* cmd;
    const char* expect;
  } cases[] = {
      {"rule add src 300.1.1.1 action drop",
       "ERR: rule add: src: '300.1.1.1' is not an IPv4 or IPv6 address"},
      {"rule add src 198.18.0.0/33 action drop",
       "ERR: rule add: src: prefix length '33' is out of range 0-32 for IPv4"},
      {"rule add src 198.18.0.1 dst 2001:db8::1 action drop",
       "ERR: rule add: dst: IPv6 address with an IPv4 src"},
      {"rule add proto tcp dport 90-80 action drop",
       "ERR: rule add: dport: range 90-80 is reversed"},
      {"rule add dport 80 action drop",
       "ERR: rule add: dport: ports need 'proto tcp' or 'proto udp'"},
      {"rule add proto icmp sport 1 action drop", "ERR: rule add: sport: ports need"},
      {"rule add proto gre action drop", "ERR: rule add: proto: 'gre' is not a protocol"},
      {"rule add proto tcp dport 22", "ERR: rule add: action: missing"},
      {"rule add proto tcp action reject", "ERR: rule add: action: 'reject' is not an action"},
      {"rule add colour red action drop", "ERR: rule add: 'colour' is not a rule field"},
      {"rule add", "ERR: rule add: rule: empty"},
      {"rule add id 2 action drop", "ERR: rule add: id: 2 is taken"},
      {"rule del 99", "ERR: rule del: id: no rule 99"},
      {"rule del x", "ERR: rule del: 'x' is not a rule id"},
      {"rule flush now", "ERR: rule flush: takes no argument"},
      {"rule replace", "ERR: rule replace: expects the new rules as a payload"},
  };
  for (const auto& c : cases) {
    std::string out = o.fw.ask(c.cmd);
    BOOST_TEST_INFO(c.cmd << " -> " << out);
    BOOST_TEST(out.find(c.expect) == 0u);
    BOOST_TEST(out.ends_with("\n\n"));
    BOOST_TEST(o.rules() == before);
  }
  // Over the limit (max-rules = 4): the fifth is refused, the four stay.
  o.fw.ask("rule add proto udp dport 1 action drop");
  o.fw.ask("rule add proto udp dport 2 action drop");
  before = o.rules();
  BOOST_TEST_REQUIRE(before.size() == 4u);
  BOOST_TEST(o.fw.ask("rule add proto udp dport 3 action drop") ==
             "ERR: rule add: 5 rules exceed the limit of 4 rules\n\n");
  BOOST_TEST(o.rules() == before);
}

BOOST_AUTO_TEST_CASE(replace_is_all_or_nothing) {
  Operated o;
  BOOST_TEST(o.fw.ask("rule replace <<\nsrc 198.18.0.1 action drop\n# comment\nprio 1 proto tcp "
                      "action pass\nid 7 dst 198.19.0.0/16 action drop\n\n") ==
             "replaced: 3 rule(s)\n\n");
  json before = o.rules();
  // New rules get new ids (the file's rule 1 is gone: id 1 is never given again).
  BOOST_TEST(before[0]["rule"] == "id 3 prio 1 proto tcp action pass");
  BOOST_TEST(o.fw.ask("rule replace <<\naction drop\nproto tcp dport 9-1 action drop\n\n") ==
             "ERR: rule replace: payload:2: dport: range 9-1 is reversed (expected lo-hi with lo "
             "<= hi)\n\n");
  BOOST_TEST(o.rules() == before);
  BOOST_TEST(o.fw.ask("rule replace <<\n1\n2\n3\n4\n5\n\n").find("ERR: rule replace:") == 0u);
  BOOST_TEST(o.rules() == before);
}

BOOST_AUTO_TEST_CASE(save_writes_the_rules_file_atomically) {
  Operated o;
  o.fw.ask("rule add prio 7 src 2001:db8::/48 proto tcp dport 443 action drop");
  fs::path rules = o.fw.dir / "rules.conf";
  std::string before = read_file(rules);
  chmod(rules.c_str(), 0604);
  BOOST_TEST(o.fw.ask("save") == "saved 2 rule(s) to " + rules.string() + "\n\n");
  std::string text = read_file(rules);
  BOOST_TEST(text.find("id 2 prio 7 src 2001:db8::/48 proto tcp dport 443 action drop\n") !=
                 std::string::npos,
             text);
  BOOST_TEST(text.find("id 1 prio 1000 proto udp dport 53 action pass\n") != std::string::npos);
  // The replaced file is kept as .bak; the new one has the old one's mode.
  BOOST_TEST(read_file(rules.string() + ".bak") == before);
  struct stat st {};
  BOOST_TEST_REQUIRE(stat(rules.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 07777) == 0604u);
  // A file of STATE/saved/, by its name or its path; the folder is made 0700.
  fs::path other = o.fw.dir / "state" / "saved" / "copy.rules";
  BOOST_TEST(o.fw.ask("save copy.rules") == "saved 2 rule(s) to " + other.string() + "\n\n");
  BOOST_TEST(read_file(other) == text);
  BOOST_TEST_REQUIRE(stat(other.parent_path().c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 07777) == 0700u);
  BOOST_TEST(o.fw.ask("save " + other.string()) == "saved 2 rule(s) to " + other.string() + "\n\n");
  // "save -" prints the set in the file grammar.
  std::string printed = o.fw.ask("save -");
  BOOST_TEST(text.find("# ids-used-up-to 2\n") != std::string::npos, text);
  BOOST_TEST(printed == text.substr(text.find("\nid ") + 1) + "\n", printed);
  int leftovers = 0;
  for (const auto& e : fs::directory_iterator(o.fw.dir.path))
    leftovers += e.path().filename().string().find(".xdpfw-save") != std::string::npos;
  BOOST_TEST(leftovers == 0);
}

BOOST_AUTO_TEST_CASE(save_writes_nothing_outside_its_own_files) {
  Operated o;
  fs::path outside = o.fw.dir / "victim";
  write_file(outside, "precious\n");
  fs::path state = o.fw.dir / "state", saved = state / "saved";
  fs::path link = saved / "link.rules";
  fs::create_directories(saved);
  fs::create_symlink(outside, link);
  fs::path folder = saved / "a-folder";
  fs::create_directories(folder);
  o.fw.ask("rule add proto tcp dport 22 action drop");  // the state files exist
  std::map<fs::path, std::string> own;                  // the agent's own files, as they are
  for (const auto& e : fs::directory_iterator(state))
    if (e.is_regular_file()) own[e.path()] = read_file(e.path());
  BOOST_TEST_REQUIRE(own.count(state / "rules.state"));
  BOOST_TEST_REQUIRE(own.count(state / "agent.lock"));
  struct {
    std::string cmd, expect;
  } cases[] = {
      {"save " + outside.string(), "ERR: save: " + outside.string() + " is neither the rules file"},
      {"save /etc/passwd", "ERR: save: /etc/passwd is neither the rules file"},
      {"save " + (saved / ".." / ".." / "victim").string(), "ERR: save: "},
      {"save ../victim", "ERR: save: '../victim' is not a file name"},
      {"save a/b", "ERR: save: 'a/b' is not a file name"},
      {"save .hidden", "ERR: save: '.hidden' is not a file name"},
      {"save " + link.string(), "ERR: save: " + link.string() + " is a symbolic link: refused"},
      {"save link.rules", "ERR: save: " + link.string() + " is a symbolic link: refused"},
      {"save " + folder.string(), "ERR: save: " + folder.string() + " is not a regular file"},
      // The agent's own state files, by path: never a target.
      {"save " + (state / "rules.state").string(),
       "ERR: save: " + (state / "rules.state").string() + " is neither the rules file"},
      {"save " + (state / "sets.journal").string(), "ERR: save: "},
      {"save " + (state / "rules-file.applied").string(), "ERR: save: "},
      {"save " + (state / "agent.lock").string(), "ERR: save: "},
      {"save " + (saved / ".." / "rules.state").string(), "ERR: save: "},
  };
  for (const auto& c : cases) {
    std::string out = o.fw.ask(c.cmd);
    BOOST_TEST_INFO(c.cmd << " -> " << out);
    BOOST_TEST(out.find(c.expect) == 0u);
  }
  BOOST_TEST(read_file(outside) == "precious\n");
  BOOST_TEST(fs::is_symlink(link));
  for (const auto& [path, text] : own) BOOST_TEST(read_file(path) == text, path);
}

BOOST_AUTO_TEST_CASE(counters_stay_with_their_rule_across_replace) {
  // The udp/53 rule counts 3 packets; a replace that keeps it (same match,
  // action, priority) keeps its id and counters; a new rule starts at zero
  // under a new id, never the id of a rule that counted before.
  Operated o;
  for (int i = 0; i < 3; ++i) o.fw.ask("rule add proto tcp dport 1 action drop");  // ids 2-4
  o.fw.ask("rule flush");
  o.fw.ask("rule replace <<E\nproto udp dport 53 action pass\nproto tcp dport 22 action drop\nE");
  json r = o.rules();
  BOOST_TEST_REQUIRE(r.size() == 2u);
  BOOST_TEST(r[0]["id"] == 5);
  BOOST_TEST(r[1]["id"] == 6);
  BOOST_TEST(o.fw.ask("rule replace <<E\nproto tcp dport 80 action drop\n"
                      "proto udp dport 53 action pass\nE") == "replaced: 2 rule(s)\n\n");
  r = o.rules();
  BOOST_TEST(r[0]["rule"] == "id 5 prio 1000 proto udp dport 53 action pass");
  BOOST_TEST(r[1]["rule"] == "id 7 prio 1000 proto tcp dport 80 action drop");
}

BOOST_AUTO_TEST_CASE(replace_takes_whole_files_and_refuses_an_empty_set) {
  Operated o;
  // A file with a header comment, blank lines and rules: a tagged payload
  // carries it whole.
  std::string file =
      "# site policy\n\nprio 10 proto tcp dport 22 action drop\n\n"
      "# dns\nproto udp dport 53 action pass\n";
  BOOST_TEST(o.fw.ask("rule replace <<END\n" + file + "END") == "replaced: 2 rule(s)\n\n");
  json before = o.rules();
  BOOST_TEST_REQUIRE(before.size() == 2u);
  // The same file after an untagged "<<": its payload ends at the first blank
  // line and holds no rule: refused, every rule kept (the rest of the file
  // then runs as commands and is refused too).
  std::string out = o.fw.ask("rule replace <<\n" + file);
  BOOST_TEST(out.find("ERR: rule replace: the payload holds no rule, nothing was changed") == 0u,
             out);
  BOOST_TEST(o.rules() == before);
  // check: compiled and reported, nothing changed.
  BOOST_TEST(o.fw.ask("rule check <<X\nproto tcp action drop\n\nproto udp action drop\nX") ==
             "ok: 2 rule(s) would be installed\n\n");
  BOOST_TEST(o.fw.ask("rule check <<X\nproto tcp action drop\nproto tcp dport 9-1 action drop\nX")
                 .find("ERR: rule check: payload:2: dport: range 9-1 is reversed") == 0u);
  BOOST_TEST(o.rules() == before);
  // rule flush is how a set is emptied.
  BOOST_TEST(o.fw.ask("rule flush") == "flushed 2 rule(s)\n\n");
  BOOST_TEST(o.rules().empty());
}

BOOST_AUTO_TEST_CASE(show_config_metrics_stats) {
  Operated o;
  json c = json::parse(o.fw.ask("show config json"));
  BOOST_TEST(c["max-rules"] == 4);
  BOOST_TEST(c["default-action"] == "pass");
  BOOST_TEST(c["rule-count"] == 1);
  BOOST_TEST(o.fw.ask("show config").find("max-rules = 4\n") != std::string::npos);
  std::string m = o.fw.ask("show metrics");
  BOOST_TEST(
      m.find("# TYPE xdpfw_packets_total counter\nxdpfw_packets_total 0\n") != std::string::npos,
      m);
  BOOST_TEST(m.find("xdpfw_rule_packets_total{id=\"1\"} 0\n") != std::string::npos);
  BOOST_TEST(m.find("xdpfw_malformed_total{reason=\"l4_truncated\"} 0\n") != std::string::npos);
  BOOST_TEST(m.find("xdpfw_rules 1\n") != std::string::npos);
  BOOST_TEST(m.find("xdpfw_tables_probed_total{tables=\"3_4\"} 0\n") != std::string::npos);
  BOOST_TEST(m.find("xdpfw_tables_probed_total{tables=\"17_plus\"} 0\n") != std::string::npos);
  json s = json::parse(o.fw.ask("show stats json"));
  BOOST_TEST(s.contains("events_suppressed"));
  BOOST_TEST(s.contains("probes_0"));
  BOOST_TEST(s.contains("probes_17_plus"));
  BOOST_TEST(o.fw.ask("show config yaml").find("ERR: show config: unexpected 'yaml'") == 0u);
}

BOOST_AUTO_TEST_CASE(rules_file_and_runtime_changes_on_reload) {
  Operated o;
  o.fw.ask("rule add proto tcp dport 22 action drop");
  o.fw.host->signal(SIGHUP);  // rules file unchanged: run-time rule kept
  BOOST_TEST(wait_until(
      [&] { return o.fw.host->log().find("reload: new config in effect") != std::string::npos; }));
  BOOST_TEST(o.rules().size() == 2u);
  write_file(o.fw.dir / "rules.conf", "proto udp dport 123 action drop\n");
  o.fw.host->signal(SIGHUP);  // changed: it replaces the run-time set
  BOOST_TEST(
      wait_until([&] { return o.fw.host->log().find("rules file changed") != std::string::npos; }));
  json r = o.rules();
  BOOST_TEST_REQUIRE(r.size() == 1u);
  BOOST_TEST(r[0]["rule"] == "id 3 prio 1000 proto udp dport 123 action drop");
  write_file(o.fw.dir / "rules.conf", "proto udp dport 1-0 action drop\n");  // bad: refused whole
  o.fw.host->signal(SIGHUP);
  BOOST_TEST(
      wait_until([&] { return o.fw.host->log().find("reload refused") != std::string::npos; }));
  BOOST_TEST(o.rules() == r);
}

// 'reload' applies the rules file also when it did not change: after
// 'rule flush' it brings the file's rules back (SIGHUP keeps run-time
// changes in that case), and answers what it did.
BOOST_AUTO_TEST_CASE(reload_after_flush_restores_the_rules_file) {
  Operated o;
  BOOST_TEST(o.fw.ask("rule flush") == "flushed 1 rule(s)\n\n");
  std::string answer = o.fw.ask("reload");
  BOOST_TEST(answer.find("reloaded " + (o.fw.dir / "xdpfw.conf").string() +
                         "\nxdpfw: 1 rule(s) applied from " + (o.fw.dir / "rules.conf").string() +
                         " (re-applied)") == 0u,
             answer);
  json r = o.rules();
  BOOST_TEST_REQUIRE(r.size() == 1u);
  BOOST_TEST(r[0]["rule"] == "id 1 prio 1000 proto udp dport 53 action pass");
}

// A reload is validated whole against the running agent, then applied
// whole, or refused whole: a new max-rules (which needs a restart) does
// not let a rules file over the running limit through, and the host keys
// given with it (log level, client limits) do not apply either.
BOOST_AUTO_TEST_CASE(refused_reload_changes_nothing) {
  Operated o;  // max-rules = 4
  std::string before_config = o.fw.ask("show config json");
  json before = o.rules();
  fs::path conf = o.fw.dir / "xdpfw.conf";
  std::string text = read_file(conf);
  std::string next = text;
  next.replace(next.find("[host]\n"), 7, "[host]\nlog-level = debug\nmax-clients = 1\n");
  next.replace(next.find("max-rules = 4"), 13, "max-rules = 1000");
  write_file(conf, next);
  write_file(o.fw.dir / "rules.conf",
             "proto udp dport 1 action drop\nproto udp dport 2 action drop\n"
             "proto udp dport 3 action drop\nproto udp dport 4 action drop\n"
             "proto udp dport 5 action drop\n");
  std::string refused = o.fw.ask("reload");
  BOOST_TEST(refused.find("ERR: reload refused, the running config stays: ") == 0u, refused);
  BOOST_TEST(refused.find("max-rules") != std::string::npos, refused);
  BOOST_TEST(o.fw.ask("show config json") == before_config);
  BOOST_TEST(o.rules() == before);
  Session a(o.fw.sock), b(o.fw.sock);  // max-clients = 1 did not apply
  BOOST_TEST(a.command("show stats").find("packets") != std::string::npos);
  BOOST_TEST(b.command("show stats").find("packets") != std::string::npos);
  BOOST_TEST(o.fw.host->log().find("control: pid") == std::string::npos);  // no debug lines
  BOOST_TEST(o.fw.ask("show reload").find("refused") != std::string::npos);
  // And the same through SIGHUP, which answers nobody: the log says it.
  o.fw.host->signal(SIGHUP);
  BOOST_TEST(wait_until([&] {
    std::string l = o.fw.host->log();
    return l.find("reload refused", l.find("reload refused") + 1) != std::string::npos;
  }));
  BOOST_TEST(o.rules() == before);
}

// Every state-changing command is recorded with the client's uid and pid,
// the command and the outcome: in the log and as a line to the watchers.
BOOST_AUTO_TEST_CASE(state_changes_are_audited) {
  Operated o;
  RawClient watcher(o.fw.sock);
  BOOST_TEST_REQUIRE(watcher.connected);
  std::string cmd = "show events\n";
  BOOST_TEST_REQUIRE(write(watcher.fd, cmd.data(), cmd.size()) == ssize_t(cmd.size()));
  BOOST_TEST_REQUIRE(wait_until([&] { return o.fw.ask("show stats").size() > 0; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the watch is registered
  BOOST_TEST(o.fw.ask("rule add proto tcp dport 22 action drop") == "id 2\n\n");
  BOOST_TEST(o.fw.ask("rule del 99").find("ERR: rule del") == 0u);
  o.fw.ask("rule list");  // read-only: not audited
  std::string log = o.fw.host->log();
  BOOST_TEST(log.find("audit: uid 0 pid ") != std::string::npos, log);
  BOOST_TEST(log.find(": rule add proto tcp dport 22 action drop: ok: id 2") != std::string::npos,
             log);
  BOOST_TEST(log.find(": rule del 99: refused: rule del: ") != std::string::npos, log);
  BOOST_TEST(log.find(": rule list:") == std::string::npos);
  std::string lines;
  BOOST_TEST(wait_until([&] {
    char buf[4096];
    fcntl(watcher.fd, F_SETFL, O_NONBLOCK);
    ssize_t n;
    while ((n = read(watcher.fd, buf, sizeof buf)) > 0) lines.append(buf, size_t(n));
    return lines.find("rule del 99") != std::string::npos;
  }));
  std::istringstream in(lines);
  std::string line;
  std::getline(in, line);
  json first = json::parse(line);
  BOOST_TEST(first["audit"]["uid"] == 0);
  BOOST_TEST(first["audit"]["command"] == "rule add proto tcp dport 22 action drop");
  BOOST_TEST(first["audit"]["ok"] == true);
  BOOST_TEST(first["audit"]["result"] == "id 2");
  BOOST_TEST(first["audit"]["pid"].get<int>() > 0);
}

BOOST_AUTO_TEST_SUITE_END()
