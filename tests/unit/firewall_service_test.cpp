// The firewall service on fakes (no root, no kernel): rule commands reach
// the datapath whole or not at all, which rule set a restart installs
// (state folder, journal, rules file), and where packet events go (the log
// file and the live watchers).
#include <arpa/inet.h>

#include <boost/test/unit_test.hpp>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "commands.hpp"
#include "common/fakes.hpp"
#include "firewall_service.hpp"
#include "rule.hpp"
#include "service_views.hpp"
#include "support/util.hpp"

using namespace xdpfw;
using namespace xdpfw::test;

namespace {

const char* two_rules =
    "prio 10 src 198.18.0.0/24 proto tcp dport 22 action drop\n"
    "prio 20 proto udp dport 53 action pass\n";

// A service on fakes, with its folders in a private temporary folder; it
// can be stopped and started again on the same folders, as a restart.
struct Rig {
  TempDir dir;
  FakeDatapath* dp = nullptr;
  FakeAttacher* attacher = nullptr;
  std::vector<std::string> logged;
  std::unique_ptr<FirewallService> fw;
  std::string no_ct;  // the fake kernel lacks ct, saying this
  std::vector<ConfigLine> extra_config;
  std::string rules_path;     // "": rules.conf in dir
  uint64_t now_ms = 5000000;  // the service's monotonic clock: tests move it

  Rig() { write_file(dir / "rules.conf", two_rules); }

  FirewallConfig config(std::vector<ConfigLine> extra = {}) const {
    std::vector<ConfigLine> lines = {
        {"rules", rules_path.empty() ? (dir / "rules.conf").string() : rules_path, 1},
        {"log-dir", (dir / "log").string(), 2},
        {"state-dir", (dir / "state").string(), 3},
        {"pin-root", "none", 4},
        {"interfaces", "veth*", 5}};
    lines.insert(lines.end(), extra.begin(), extra.end());
    return parse_firewall_config("test.conf", lines);
  }

  // resumed: the fake says the kernel kept the previous run's maps.
  void start(bool resumed = false, const std::string& replaced = "") {
    fw.reset();
    auto d = std::make_unique<FakeDatapath>();
    auto a = std::make_unique<FakeAttacher>();
    d->resumed_ = resumed;
    d->replaced_ = replaced;
    d->limits_.no_ct = no_ct;
    dp = d.get();
    attacher = a.get();
    FirewallParts parts;
    parts.datapath = std::move(d);
    parts.attacher = std::move(a);
    parts.clock.mono_ms = [this] { return now_ms; };
    fw = std::make_unique<FirewallService>(
        config(extra_config), [this](int, const std::string& m) { logged.push_back(m); },
        std::move(parts));
  }

  std::vector<std::string> rule_texts() const {
    std::vector<std::string> out;
    for (const Rule& r : dp->rules()) out.push_back(format_rule(r));
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string verdict(const PacketFields& p) const { return action_name(dp->classify(p).action); }

  bool logged_has(const std::string& s) const {
    return std::any_of(logged.begin(), logged.end(),
                       [&](const std::string& m) { return m.find(s) != std::string::npos; });
  }
};

PacketFields v4(const char* src, uint8_t proto, uint16_t dport) {
  PacketFields p;
  inet_pton(AF_INET, src, p.src.data());
  inet_pton(AF_INET, "198.19.0.1", p.dst.data());
  p.proto = proto;
  p.has_l4 = true;
  p.sport = 40000;
  p.dport = dport;
  return p;
}

xdpfw_event event(const char* src, uint16_t dport, uint32_t ifindex = 4) {
  xdpfw_event ev{};
  ev.ifindex = ifindex;
  ev.pkt_len = 60;
  ev.family = XDPFW_FAMILY_V4;
  ev.proto = 6;
  ev.flags = XDPFW_EVENT_HAS_PORTS;
  ev.sport = 40000;
  ev.dport = dport;
  inet_pton(AF_INET, src, &ev.src[0]);
  inet_pton(AF_INET, "198.19.0.1", &ev.dst[0]);
  return ev;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(firewall_service)

BOOST_AUTO_TEST_CASE(rule_add_and_del_reach_the_datapath_in_place) {
  Rig rig;
  rig.start();
  BOOST_TEST(rig.dp->rules().size() == 2u);
  BOOST_TEST(rig.verdict(v4("198.18.0.9", 6, 22)) == "drop");
  BOOST_TEST(rig.verdict(v4("198.18.0.9", 6, 80)) == "pass");

  CommandOutput out = run_command(*rig.fw, "rule add", "prio 5 proto tcp dport 80 action drop");
  BOOST_TEST(out.ok);
  BOOST_TEST(out.text == "id 3");
  BOOST_TEST(rig.dp->in_place == 1);
  BOOST_TEST(rig.dp->applies == 1);  // the start's only
  BOOST_TEST(rig.verdict(v4("198.18.0.9", 6, 80)) == "drop");
  BOOST_TEST(run_command(*rig.fw, "rule list", "")
                 .text.find("id 3 prio 5 proto tcp dport 80 action drop") != std::string::npos);

  out = run_command(*rig.fw, "rule del", "1");
  BOOST_TEST(out.ok);
  BOOST_TEST(rig.dp->rules().size() == 2u);
  BOOST_TEST(rig.verdict(v4("198.18.0.9", 6, 22)) == "pass");
  BOOST_TEST(run_command(*rig.fw, "rule list", "").text.find("id 1 ") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_change_that_does_not_fit_in_place_recompiles) {
  Rig rig;
  rig.start();
  rig.dp->fits_in_place = false;
  BOOST_TEST(run_command(*rig.fw, "rule add", "prio 5 proto tcp dport 80 action drop").ok);
  BOOST_TEST(rig.dp->applies == 2);
  BOOST_TEST(rig.dp->rules().size() == 3u);
  BOOST_TEST(run_command(*rig.fw, "rule del", "2").ok);
  BOOST_TEST(rig.dp->applies == 3);
  BOOST_TEST(rig.dp->rules().size() == 2u);
}

BOOST_AUTO_TEST_CASE(bad_commands_say_why_and_change_nothing) {
  Rig rig;
  rig.start();
  auto before = rig.rule_texts();
  std::string list = run_command(*rig.fw, "rule list", "").text;

  CommandOutput out = run_command(*rig.fw, "rule add", "proto tcp dport 99999 action drop");
  BOOST_TEST(!out.ok);
  BOOST_TEST(out.text.find("rule add: ") == 0u);
  BOOST_TEST(out.text.find("99999") != std::string::npos);
  out = run_command(*rig.fw, "rule del", "abc");
  BOOST_TEST(!out.ok);
  BOOST_TEST(out.text.find("is not a rule id") != std::string::npos);
  out = run_command(*rig.fw, "rule del", "99");
  BOOST_TEST(!out.ok);
  BOOST_TEST(out.text.find("no rule 99") != std::string::npos);
  out = run_command(*rig.fw, "rule replace", "", nullptr);
  BOOST_TEST(!out.ok);
  std::string empty = "# nothing\n";
  out = run_command(*rig.fw, "rule replace", "", &empty);
  BOOST_TEST(!out.ok);
  BOOST_TEST(out.text.find("holds no rule, nothing was changed") != std::string::npos);
  std::string bad = "proto tcp action drop\nproto bogus action drop\n";
  out = run_command(*rig.fw, "rule replace", "", &bad);
  BOOST_TEST(!out.ok);
  BOOST_TEST(out.text.find("payload:2") != std::string::npos);
  out = run_command(*rig.fw, "rule check", "", &bad);
  BOOST_TEST(!out.ok);

  // A datapath that fails: the store keeps the rules the kernel has.
  rig.dp->fail_next_apply = true;
  std::string good = "proto icmp action drop\n";
  out = run_command(*rig.fw, "rule replace", "", &good);
  BOOST_TEST(!out.ok);
  BOOST_TEST(out.text.find("Cannot allocate memory") != std::string::npos);

  BOOST_TEST(rig.rule_texts() == before);
  BOOST_TEST(run_command(*rig.fw, "rule list", "").text == list);
  BOOST_TEST(rig.dp->applies == 1);
}

BOOST_AUTO_TEST_CASE(replace_check_flush_and_save) {
  Rig rig;
  rig.start();
  std::string two = "proto icmp action drop\nprio 7 proto udp action drop\n";
  CommandOutput out = run_command(*rig.fw, "rule check", "", &two);
  BOOST_TEST(out.ok);
  BOOST_TEST(out.text == "ok: 2 rule(s) would be installed");
  BOOST_TEST(rig.dp->applies == 1);  // check changes nothing
  out = run_command(*rig.fw, "rule replace", "", &two);
  BOOST_TEST(out.ok);
  BOOST_TEST(out.text == "replaced: 2 rule(s)");
  BOOST_TEST(rig.verdict(v4("198.18.0.9", 17, 53)) == "drop");

  BOOST_TEST(run_command(*rig.fw, "save", "-").text ==
             "id 4 prio 7 proto udp action drop\nid 3 prio 1000 proto icmp action drop\n");
  out = run_command(*rig.fw, "save", (rig.dir / "elsewhere.rules").string());
  BOOST_TEST(!out.ok);
  BOOST_TEST(out.text.find("is neither the rules file") != std::string::npos);
  BOOST_TEST(!fs::exists(rig.dir / "elsewhere.rules"));
  BOOST_TEST(run_command(*rig.fw, "save", "").ok);  // the rules file
  BOOST_TEST(read_file(rig.dir / "rules.conf").find("proto icmp action drop") != std::string::npos);

  out = run_command(*rig.fw, "rule flush", "");
  BOOST_TEST(out.text == "flushed 2 rule(s)");
  BOOST_TEST(rig.dp->rules().empty());
}

// A restart: the previous run's rules (state folder and journal) win when
// the kernel kept the maps, or when it had them in another layout; after a
// reboot (no maps) the rules file decides.
BOOST_AUTO_TEST_CASE(restart_precedence) {
  Rig rig;
  rig.start();
  BOOST_TEST(run_command(*rig.fw, "rule add", "prio 5 proto tcp dport 80 action drop").ok);  // id 3
  BOOST_TEST(run_command(*rig.fw, "rule add", "prio 6 proto tcp dport 81 action drop").ok);  // id 4
  BOOST_TEST(run_command(*rig.fw, "rule del", "3").ok);
  BOOST_TEST(fs::exists(rig.dir / "state" / "rules.journal"));  // one line per change
  auto running = rig.rule_texts();
  BOOST_TEST(running.size() == 3u);

  rig.start(/*resumed=*/true);
  BOOST_TEST(rig.rule_texts() == running);
  BOOST_TEST(rig.logged_has("resumed the previous run's 3 rule(s) and counters"));
  // Ids are never reused, not even those of deleted rules.
  BOOST_TEST(run_command(*rig.fw, "rule add", "proto icmp action drop").text == "id 5");

  rig.start(/*resumed=*/false, "xdpfw_rule_counters has max_entries 1, this agent 1000");
  BOOST_TEST(rig.rule_texts().size() == 4u);
  BOOST_TEST(rig.logged_has("were made with another layout"));
  BOOST_TEST(rig.logged_has("resumed the previous run's 4 rule(s)"));

  rig.start(/*resumed=*/false);  // a reboot: nothing pinned
  BOOST_TEST(
      rig.rule_texts() ==
      (std::vector<std::string>{"id 1 prio 10 src 198.18.0.0/24 proto tcp dport 22 action drop",
                                "id 2 prio 20 proto udp dport 53 action pass"}));
}

// Reload: a changed rules file replaces run-time changes; an unchanged one
// keeps them, unless forced (the "reload" command).
BOOST_AUTO_TEST_CASE(reload_precedence) {
  Rig rig;
  rig.start();
  BOOST_TEST(run_command(*rig.fw, "rule add", "prio 5 proto tcp dport 80 action drop").ok);
  std::string r = rig.fw->reload(rig.config());
  BOOST_TEST(r.find("kept: the rules file is as last applied") != std::string::npos);
  BOOST_TEST(rig.dp->rules().size() == 3u);
  r = rig.fw->reload(rig.config(), /*force=*/true);
  BOOST_TEST(r.find("(re-applied), run-time changes replaced") != std::string::npos);
  BOOST_TEST(rig.dp->rules().size() == 2u);
  BOOST_TEST(run_command(*rig.fw, "rule add", "prio 5 proto tcp dport 80 action drop").ok);
  write_file(rig.dir / "rules.conf", "proto icmp action drop\n");
  r = rig.fw->reload(rig.config());
  BOOST_TEST(r.find("(rules file changed)") != std::string::npos);
  BOOST_TEST(rig.dp->rules().size() == 1u);

  // A file that does not compile: refused, the running set stays.
  write_file(rig.dir / "rules.conf", "proto icmp action drop\nproto tcp dport x action drop\n");
  BOOST_CHECK_THROW(rig.fw->check_reload(rig.config()), std::exception);
  BOOST_CHECK_THROW(rig.fw->reload(rig.config()), std::exception);
  BOOST_TEST(rig.dp->rules().size() == 1u);
}

// Every event becomes one JSON line in the log file and on every watcher;
// a watcher that cannot take a line is told how many it lost, one that is
// gone is dropped; lines lost in the kernel's ring are counted.
BOOST_AUTO_TEST_CASE(events_fan_out_to_the_log_and_the_watchers) {
  Rig rig;
  rig.start();
  rig.fw->on_link(AttachManager::Change::added, 4, "veth-a", "veth", true);
  BOOST_TEST(rig.attacher->attached.count(4) == 1u);

  std::map<uint64_t, std::string> got;
  std::map<uint64_t, int> answer = {{1, 0}, {2, 0}, {3, 0}};
  rig.fw->watchers().set_writer([&](uint64_t stream, const std::string& bytes) {
    if (answer[stream] == 0) got[stream] += bytes;
    return answer[stream];
  });
  for (uint64_t s : {1, 2, 3}) rig.fw->watchers().add(s);

  rig.dp->send_event(event("198.18.0.7", 22));
  rig.fw->on_events();
  answer[2] = 1;   // full: loses the next line
  answer[3] = -1;  // gone
  rig.dp->send_event(event("198.18.0.8", 23));
  rig.fw->on_events();
  BOOST_TEST(rig.fw->watchers().size() == 2u);
  answer[2] = 0;
  rig.dp->send_event(event("198.18.0.9", 24));
  rig.dp->lose_events(5);
  rig.fw->on_events();

  auto log = lines_of(read_file(rig.dir / "log" / "firewall_log.json"));
  BOOST_TEST_REQUIRE(log.size() == 3u);
  for (size_t i = 0; i < 3; ++i) {
    auto j = nlohmann::json::parse(log[i]);
    BOOST_TEST(j["src_ip"] == "198.18.0." + std::to_string(7 + i));
    BOOST_TEST(j["dst_port"] == 22 + i);
    BOOST_TEST(j["interface"] == "veth-a");
  }
  BOOST_TEST(lines_of(got[1]) == log);
  BOOST_TEST(lines_of(got[2]) == (std::vector<std::string>{log[0], "{\"dropped\":1}", log[2]}));
  BOOST_TEST(lines_of(got[3]) == (std::vector<std::string>{log[0]}));

  auto stats = nlohmann::json::parse(run_command(*rig.fw, "show stats", "json").text);
  BOOST_TEST(stats["events_lost"] == 5);
  BOOST_TEST(stats["log_lines"] == 3);
}

// "show stats" and "show metrics" render one list: every counter of one is a
// sample of the other with the same value, and every metric family has its
// own help text, once.
BOOST_AUTO_TEST_CASE(stats_and_metrics_show_the_same_counters) {
  Rig rig;
  rig.start();
  for (int i = 0; i < XDPFW_STAT_MAX; ++i) rig.dp->stats_.c[i] = 1000 + i;
  rig.dp->send_event(event("198.18.0.7", 22));
  rig.dp->lose_events(5);
  rig.fw->on_events();
  rig.fw->log_reopen();
  rig.dp->counters[1] = {11, 1100};

  auto stats = nlohmann::json::parse(run_command(*rig.fw, "show stats", "json").text);
  BOOST_TEST(stats.size() == size_t(XDPFW_STAT_MAX) + 7);
  for (int i = 0; i < XDPFW_STAT_MAX; ++i)
    BOOST_TEST(stats[stat_name(static_cast<xdpfw_stat>(i))] == 1000 + i);
  BOOST_TEST(stats["events_lost"] == 5);
  BOOST_TEST(stats["log_lines"] == 1);
  BOOST_TEST(stats["log_reopens"] == 1);
  BOOST_TEST(stats["rules_source_applied"] == 0);
  BOOST_TEST(stats["rules_source_refused"] == 0);
  std::multiset<uint64_t> want;
  for (const auto& [k, v] : stats.items()) want.insert(v.get<uint64_t>());

  std::multiset<uint64_t> got;
  std::map<std::string, int> helps, types;
  std::string last_family;
  std::set<std::string> finished;
  for (const std::string& l : lines_of(run_command(*rig.fw, "show metrics", "").text)) {
    std::istringstream in(l);
    std::string a, b, rest;
    in >> a >> b;
    std::getline(in, rest);
    if (a == "#") {
      (b == "HELP" ? helps : types)[rest.substr(1, rest.find(' ', 1) - 1)]++;
      BOOST_TEST(rest.find("Counter xdpfw_") == std::string::npos, l);  // a help of its own
      continue;
    }
    std::string family = a.substr(0, a.find('{'));
    if (family != last_family) {
      BOOST_TEST(!finished.count(family), family << " is split");
      finished.insert(last_family);
      last_family = family;
    }
    BOOST_TEST(helps[family] == 1, family);
    BOOST_TEST(types[family] == 1, family);
    if (family == "xdpfw_rule_packets_total" || family == "xdpfw_rule_bytes_total" ||
        family == "xdpfw_interfaces_attached" || family == "xdpfw_rules" ||
        family == "xdpfw_rules_source_refused")
      continue;
    got.insert(std::stoull(b));
  }
  BOOST_TEST(got == want);
  std::string metrics = run_command(*rig.fw, "show metrics", "").text;
  BOOST_TEST(metrics.find("xdpfw_rule_packets_total{id=\"1\"} 11\n") != std::string::npos);
  BOOST_TEST(metrics.find("xdpfw_verdicts_total{verdict=\"match_drop\"} 1002\n") !=
             std::string::npos);
  BOOST_TEST(metrics.find("xdpfw_events_total{outcome=\"lost\"} 5\n") != std::string::npos);
}

// rule replace confirm: a second replace on trial keeps the first one's
// revert target (the set before both); not confirmed, it comes back at the
// deadline; confirmed, nothing comes back; a plain replace ends a trial.
BOOST_AUTO_TEST_CASE(replace_on_trial_reverts_to_the_set_before_it) {
  Rig rig;
  rig.start();
  auto before = rig.rule_texts();
  std::string a = "proto icmp action drop\n", b = "proto udp dport 7 action drop\n";
  BOOST_TEST(!run_command(*rig.fw, "rule replace", "confirm", &a).ok);
  BOOST_TEST(!run_command(*rig.fw, "rule replace", "confirm 3601", &a).ok);
  BOOST_TEST(!run_command(*rig.fw, "rule confirm", "").ok);  // nothing on trial
  BOOST_TEST(run_command(*rig.fw, "rule replace", "confirm 1", &a)
                 .text.find("the previous 2 rule(s) come back") != std::string::npos);
  BOOST_TEST(run_command(*rig.fw, "rule replace", "confirm 1", &b)
                 .text.find("the previous 2 rule(s) come back") != std::string::npos);
  rig.fw->settle();  // not yet
  BOOST_TEST(rig.rule_texts().size() == 1u);
  rig.now_ms += 1100;  // the trial's second passes
  rig.fw->settle();
  BOOST_TEST(rig.rule_texts() == before);
  BOOST_TEST(!run_command(*rig.fw, "rule confirm", "").ok);

  BOOST_TEST(run_command(*rig.fw, "rule replace", "confirm 1", &a).ok);
  BOOST_TEST(run_command(*rig.fw, "rule confirm", "").text == "confirmed: the 1 rule(s) stay");
  rig.now_ms += 1100;  // the trial's second passes
  rig.fw->settle();
  BOOST_TEST(rig.rule_texts().size() == 1u);

  BOOST_TEST(run_command(*rig.fw, "rule replace", "confirm 1", &b).ok);
  BOOST_TEST(
      run_command(*rig.fw, "rule replace", "", &a).ok);  // the operator's word: the trial ends
  rig.now_ms += 1100;                                    // the trial's second passes
  rig.fw->settle();
  BOOST_TEST(rig.rule_texts().size() == 1u);
  BOOST_TEST(rig.rule_texts()[0].find("icmp") != std::string::npos);
}

// show status: the rules, the source's last outcome, a trial with its time
// left, the interfaces and the sets, in text and JSON alike.
BOOST_AUTO_TEST_CASE(status_is_one_screen) {
  Rig rig;
  rig.start();
  rig.fw->on_link(AttachManager::Change::added, 4, "veth-a", "veth", true);
  rig.fw->on_link(AttachManager::Change::added, 5, "eth0", "", true);  // not selected
  BOOST_TEST(run_command(*rig.fw, "set create", "web").ok);
  auto lines = lines_of(run_command(*rig.fw, "show status", "").text);
  BOOST_TEST_REQUIRE(lines.size() == 5u);
  BOOST_TEST(lines[0] == "rules 2");
  BOOST_TEST(lines[1].find("source " + (rig.dir / "rules.conf").string()) == 0u, lines[1]);
  BOOST_TEST(lines[1].find("refused") == std::string::npos, lines[1]);
  BOOST_TEST(lines[2] == "trial none");
  BOOST_TEST(lines[3] == "interfaces 1 attached of 1 selected, 0 with an error");
  BOOST_TEST(lines[4] == "sets 1");

  std::string one = "proto icmp action drop\n";
  BOOST_TEST(run_command(*rig.fw, "rule replace", "confirm 60", &one).ok);
  lines = lines_of(run_command(*rig.fw, "show status", "").text);
  BOOST_TEST(lines[0] == "rules 1");
  BOOST_TEST(lines[2] ==
             "trial 60 s left: unless 'rule confirm', the previous 2 rule(s) come back");
  auto j = nlohmann::json::parse(run_command(*rig.fw, "show status", "json").text);
  BOOST_TEST(j["rules"] == 1);
  BOOST_TEST(j["trial"]["on"] == true);
  BOOST_TEST(j["trial"]["seconds_left"] == 60);
  BOOST_TEST(j["trial"]["reverts_to"] == 2);
  BOOST_TEST(j["interfaces"]["selected"] == 1);
  BOOST_TEST(j["interfaces"]["attached"] == 1);
  BOOST_TEST(j["interfaces"]["errors"] == 0);
  BOOST_TEST(j["sets"] == 1);
  BOOST_TEST(j["source"]["path"] == (rig.dir / "rules.conf").string());
  BOOST_TEST(run_command(*rig.fw, "rule confirm", "").ok);
  BOOST_TEST(lines_of(run_command(*rig.fw, "show status", "").text)[2] == "trial none");
  BOOST_TEST(nlohmann::json::parse(
                 run_command(*rig.fw, "show status", "json").text)["trial"]["on"] == false);
}

// The config keys are one list: "show config" shows each of them (and
// nothing else but the rule count), what it shows parses back to the same
// settings, and the unknown-key message names each of them.
BOOST_AUTO_TEST_CASE(config_keys_are_one_list) {
  Rig rig;
  rig.extra_config = {{"set", "bl timeout 1h max 10", 9}};  // "set =": a line per set
  rig.start();
  std::set<std::string> names;
  for (const ConfigKey& k : config_keys()) names.insert(k.name);
  BOOST_TEST(names.size() == config_keys().size());

  auto shown = nlohmann::json::parse(run_command(*rig.fw, "show config", "json").text);
  std::set<std::string> keys;
  for (const auto& [k, v] : shown.items()) keys.insert(k);
  names.insert("rule-count");
  BOOST_TEST(keys == names);
  names.erase("rule-count");

  std::vector<ConfigLine> lines;
  unsigned n = 0;
  for (const std::string& l : lines_of(run_command(*rig.fw, "show config", "").text)) {
    std::string key = l.substr(0, l.find(" ="));
    std::string value = l.size() > key.size() + 3 ? l.substr(key.size() + 3) : "";
    if (key != "rule-count") lines.push_back({key, value, ++n});
  }
  BOOST_TEST(lines.size() == names.size());
  FirewallConfig back = parse_firewall_config("shown.conf", lines);
  for (const ConfigKey& k : config_keys()) BOOST_TEST(k.show(back) == shown[k.name], k.name);

  std::string why;
  try {
    parse_firewall_config("x.conf", {{"colour", "blue", 3}});
  } catch (const FirewallConfigError& e) {
    why = e.what();
  }
  BOOST_TEST(why.find("x.conf:3: unknown key 'colour'") == 0u, why);
  for (const std::string& name : names) BOOST_TEST(why.find(name) != std::string::npos, name);
}

// The loop's housekeeping: a datapath that cannot finish its last change
// is logged, never thrown into the loop, and commands keep working.
// A kernel without the conntrack kfunc: said at start, and every ct rule
// is refused with that reason, nothing changed; audit = yes reaches the
// datapath's policy and is said at start too.
BOOST_AUTO_TEST_CASE(ct_is_refused_with_the_kernels_reason_and_audit_reaches_the_datapath) {
  Rig rig;
  rig.no_ct = "this kernel has no bpf_xdp_ct_lookup kfunc (fake)";
  rig.extra_config = {{"audit", "yes", 9}};
  rig.start();
  BOOST_TEST(rig.logged_has("ct rules cannot be used: this kernel has no bpf_xdp_ct_lookup"));
  BOOST_TEST(rig.logged_has("audit = yes"));
  BOOST_TEST(rig.dp->policy().audit);
  CommandOutput out = run_command(*rig.fw, "rule add", "prio 1 ct established action pass");
  BOOST_TEST(!out.ok);
  BOOST_TEST(out.text.find("ct: this kernel has no bpf_xdp_ct_lookup kfunc") != std::string::npos,
             out.text);
  BOOST_TEST(rig.dp->rules().size() == 2u);
  BOOST_TEST(
      run_command(*rig.fw, "rule add", "prio 1 proto tcp tcp-flags syn,!ack rate 10/s action drop")
          .ok);
  BOOST_TEST(rig.dp->rules().size() == 3u);
}

BOOST_AUTO_TEST_CASE(settle_errors_are_logged_not_thrown) {
  Rig rig;
  rig.start();
  rig.fw->settle();
  BOOST_TEST(rig.dp->settles == 1);
  rig.dp->fail_settle = true;
  BOOST_CHECK_NO_THROW(rig.fw->settle());
  BOOST_TEST(rig.logged_has("datapath: finishing the last change: wait for XDP readers"));
  BOOST_TEST(run_command(*rig.fw, "rule add", "proto icmp action drop").ok);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(firewall_service)  // (reopened) reloads, sets and ids

std::string what_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// A reload (or SIGHUP: the same call without force) that declares a set
// and names it in the rules is checked and applied whole; a rule naming a
// set whose line goes is refused with nothing changed; the line and its
// rules going together remove the set and its elements, and say how many;
// a set made with 'set create' is no config's and stays; a reload whose
// rules fail takes the sets it made back.
BOOST_AUTO_TEST_CASE(a_reload_adds_and_removes_the_configs_sets) {
  Rig rig;
  rig.start();
  BOOST_TEST(run_command(*rig.fw, "set create", "runtime").ok);
  std::string with_admins = std::string(two_rules) + "prio 1 src @admins action drop\n";
  write_file(rig.dir / "rules.conf", with_admins);
  FirewallConfig declared = rig.config({{"set", "admins", 9}});
  BOOST_TEST(what_of([&] { rig.fw->check_reload(declared); }) == "");
  for (bool force : {false, true}) {
    rig.fw->reload(declared, force);
    BOOST_TEST(rig.dp->rules().size() == 3u);
    BOOST_TEST_REQUIRE(rig.fw->sets().find("admins"));
  }
  BOOST_TEST(run_command(*rig.fw, "set add", "admins 198.18.0.7").ok);
  BOOST_TEST(run_command(*rig.fw, "set add", "admins 198.18.0.8").ok);
  BOOST_TEST(rig.verdict(v4("198.18.0.7", 17, 9)) == "drop");
  BOOST_TEST(rig.verdict(v4("198.18.0.9", 17, 9)) == "pass");

  // The line goes, a rule still names the set: refused by check and by
  // reload alike, the set and its elements stay.
  std::string why = what_of([&] { rig.fw->check_reload(rig.config()); });
  BOOST_TEST(why.find("src: set 'admins' goes with this reload") != std::string::npos, why);
  BOOST_TEST(why.find((rig.dir / "rules.conf").string() + ":3: rule ") != std::string::npos,
             why);  // the rule's FILE:LINE
  write_file(rig.dir / "rules.conf",
             std::string(two_rules) + "\nprio 1 dst @nowhere action drop\n");
  why = what_of([&] { rig.fw->check_reload(declared); });
  BOOST_TEST(why.find((rig.dir / "rules.conf").string() + ":4: rule ") != std::string::npos, why);
  BOOST_TEST(why.find("dst: no set 'nowhere'") != std::string::npos, why);
  write_file(rig.dir / "rules.conf", with_admins);
  BOOST_CHECK_THROW(rig.fw->reload(rig.config()), std::exception);
  BOOST_TEST(rig.fw->sets().find("admins")->elems.size() == 2u);
  BOOST_TEST(rig.dp->rules().size() == 3u);

  // The line and the rule go together.
  write_file(rig.dir / "rules.conf", two_rules);
  std::string r = rig.fw->reload(rig.config());
  BOOST_TEST(r.find("set admins removed with its 2 element(s)") != std::string::npos, r);
  BOOST_TEST(rig.logged_has("set admins removed with its 2 element(s)"));
  BOOST_TEST(!rig.fw->sets().find("admins"));
  BOOST_TEST(rig.fw->sets().find("runtime"));
  BOOST_TEST(rig.dp->rules().size() == 2u);
  rig.start();  // and a restart does not bring it back
  BOOST_TEST(!rig.fw->sets().find("admins"));
  BOOST_TEST(rig.fw->sets().find("runtime"));

  // A reload whose rules the datapath refuses: the set it made is gone again.
  write_file(rig.dir / "rules.conf", with_admins);
  rig.dp->fail_next_apply = true;
  BOOST_CHECK_THROW(rig.fw->reload(declared), std::exception);
  BOOST_TEST(!rig.fw->sets().find("admins"));
  BOOST_TEST(rig.dp->rules().size() == 2u);
}

std::map<std::string, uint32_t> ids_by_rule(const FirewallService& fw) {
  std::map<std::string, uint32_t> out;
  for (const Rule& r : fw.store().rules()) out[rule_identity(r)] = r.id;
  return out;
}

// Rules that did not change keep their ids and counters: ct, rate, audit and
// set rules as well as plain ones, when a comment is added in rules.d, when
// lines move between its files, and when a reverted trial brings them back.
BOOST_AUTO_TEST_CASE(unchanged_rules_keep_their_ids_and_counters) {
  Rig rig;
  fs::path d = rig.dir / "rules.d";
  fs::create_directories(d);
  write_file(d / "10-base.rules",
             "proto tcp dport 22 ct new rate 10/s action drop\n"
             "src @blocked action drop\n"
             "proto udp dport 53 action audit\n"
             "proto tcp dport 80 action pass\n");
  write_file(d / "50-ssh.rules", "proto tcp dport 2222 action pass\n");
  rig.rules_path = d.string();
  rig.extra_config = {{"set", "blocked", 9}};
  rig.start();
  auto before = ids_by_rule(*rig.fw);
  BOOST_TEST_REQUIRE(before.size() == 5u);
  for (const auto& [text, id] : before) rig.dp->counters[id] = {id * 10ull, id * 1000ull};
  auto packets = [&](uint32_t id) {
    for (const auto& j : nlohmann::json::parse(run_command(*rig.fw, "rule list", "json").text))
      if (j["id"] == id) return j["packets"].get<uint64_t>();
    return ~uint64_t{0};
  };

  write_file(d / "50-ssh.rules", "proto tcp dport 2222 action pass\n# a comment\n");
  rig.fw->reload(rig.config(rig.extra_config));
  BOOST_TEST(ids_by_rule(*rig.fw) == before);
  // A line moved from one file to the other.
  write_file(d / "10-base.rules",
             "proto tcp dport 22 ct new rate 10/s action drop\n"
             "src @blocked action drop\n"
             "proto udp dport 53 action audit\n");
  write_file(d / "50-ssh.rules",
             "proto tcp dport 80 action pass\nproto tcp dport 2222 action pass\n");
  rig.fw->reload(rig.config(rig.extra_config));
  BOOST_TEST(ids_by_rule(*rig.fw) == before);
  for (const auto& [text, id] : before) BOOST_TEST(packets(id) == id * 10ull, text);

  // A trial that keeps one rule and drops the others, not confirmed.
  std::string trial = "proto tcp dport 80 action pass\nproto icmp action drop\n";
  BOOST_TEST(run_command(*rig.fw, "rule replace", "confirm 5", &trial).ok);
  uint32_t kept = before.at("prio 1000 proto tcp dport 80 action pass");
  BOOST_TEST(ids_by_rule(*rig.fw).at("prio 1000 proto tcp dport 80 action pass") == kept);
  rig.dp->counters[kept].packets += 3;  // traffic during the trial
  rig.now_ms += 5000;
  rig.fw->settle();
  BOOST_TEST(ids_by_rule(*rig.fw) == before);
  for (const auto& [text, id] : before)
    BOOST_TEST(packets(id) == id * 10ull + (id == kept ? 3 : 0), text);
  BOOST_TEST(views::show_metrics(*rig.fw).text.find(
                 "xdpfw_rule_packets_total{id=\"" + std::to_string(before.begin()->second) +
                 "\"} " + std::to_string(before.begin()->second * 10)) != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
