// The plugin's pure parts: its config section, the rules file, and the
// attach manager driven by link events against a fake attacher.
#include <boost/test/unit_test.hpp>
#include <set>

#include "attach_manager.hpp"
#include "common/fakes.hpp"
#include "firewall_config.hpp"
#include "rules_file.hpp"

using namespace xdpfw;

namespace {

using test::FakeAttacher;

FirewallConfig config(const std::string& include, const std::string& exclude = "lo") {
  return parse_firewall_config("x.conf", {{"interfaces", include, 1}, {"exclude", exclude, 2}});
}

std::string config_error(std::vector<ConfigLine> lines) {
  try {
    parse_firewall_config("x.conf", lines);
  } catch (const FirewallConfigError& e) {
    return e.what();
  }
  return "";
}

std::string rules_error(const std::string& text) {
  try {
    parse_rules_text("rules.conf", text);
  } catch (const RuleError& e) {
    return e.what();
  }
  return "";
}

using Change = AttachManager::Change;

}  // namespace

BOOST_AUTO_TEST_SUITE(firewall_plugin)

BOOST_AUTO_TEST_CASE(config_section) {
  auto c = parse_firewall_config("x.conf", {{"interfaces", "eth* veth*, ens1", 1},
                                            {"exclude", "veth-skip*", 2},
                                            {"mode", "generic", 3},
                                            {"takeover", "yes", 4},
                                            {"default-action", "drop", 5},
                                            {"max-rules", "1000", 6}});
  BOOST_TEST(c.include.size() == 3u);
  BOOST_TEST(c.selects("eth0"));
  BOOST_TEST(c.selects("ens1"));
  BOOST_TEST(!c.selects("ens2"));
  BOOST_TEST(!c.selects("veth-skip3"));
  BOOST_TEST((c.mode == AttachMode::generic));
  BOOST_TEST(c.takeover);
  BOOST_TEST((c.policy.default_action == Action::drop));
  BOOST_TEST(c.max_rules == 1000u);
  BOOST_TEST(!FirewallConfig{}.selects("eth0"));  // no patterns: nothing by itself
  BOOST_TEST(config_error({{"mode", "turbo", 4}}) ==
             "x.conf:4: mode: 'turbo' is not a mode (expected auto, native or generic)");
  BOOST_TEST(config_error({{"takeover", "maybe", 2}}) ==
             "x.conf:2: takeover: 'maybe' is not yes or no");
  BOOST_TEST(config_error({{"max-rules", "0", 3}}) ==
             "x.conf:3: max-rules: '0' is not a number 1-16777216");
  BOOST_TEST(config_error({{"colour", "red", 9}})
                 .find("x.conf:9: unknown key 'colour' in [plugin.xdpfw]") == 0u);
}

// rules-max-size: bytes, K or M, 1K to 1024M.
BOOST_AUTO_TEST_CASE(rules_max_size_key) {
  BOOST_TEST(FirewallConfig{}.rules_max_bytes == 16u << 20);
  for (auto [v, bytes] : {std::pair<const char*, uint64_t>{"4096", 4096},
                          {"2K", 2048},
                          {"64M", 64ull << 20},
                          {"1024m", 1ull << 30}})
    BOOST_TEST(parse_firewall_config("x.conf", {{"rules-max-size", v, 1}}).rules_max_bytes == bytes,
               v);
  for (const char* bad : {"0", "1023", "2G", "1025M", "-1", "lots"})
    BOOST_TEST(config_error({{"rules-max-size", bad, 7}}) ==
                   "x.conf:7: rules-max-size: '" + std::string(bad) +
                       "' is not a size from 1K to 1024M (N bytes, NK or NM)",
               bad);
}

// mapped-ipv6: IPv4-mapped and -compatible IPv6 sources dropped by default,
// passed to the rules on request (docs/DATAPATH.md).
BOOST_AUTO_TEST_CASE(mapped_ipv6_key) {
  BOOST_TEST((FirewallConfig{}.policy.mapped_ipv6 == Action::drop));
  BOOST_TEST((parse_firewall_config("x.conf", {{"mapped-ipv6", "pass", 1}}).policy.mapped_ipv6 ==
              Action::pass));
  BOOST_TEST((parse_firewall_config("x.conf", {{"mapped-ipv6", "drop", 1}}).policy.mapped_ipv6 ==
              Action::drop));
  BOOST_TEST(config_error({{"mapped-ipv6", "allow", 2}}) ==
             "x.conf:2: mapped-ipv6: 'allow' is not pass or drop");
}

BOOST_AUTO_TEST_CASE(rules_file_assigns_ids_and_priorities) {
  auto rs = parse_rules_text(
      "rules.conf",
      "# blocklist\nsrc 198.18.0.1 action drop\n\nprio 10 proto udp dport 53 "
      "action pass  # dns\nid 9 dst 198.18.0.0/15 action drop\nproto tcp action pass\n");
  BOOST_TEST_REQUIRE(rs.size() == 4u);
  BOOST_TEST(rs[0].id == 1u);
  BOOST_TEST(*rs[0].priority == default_priority);
  BOOST_TEST(rs[1].id == 2u);
  BOOST_TEST(*rs[1].priority == 10u);
  BOOST_TEST(rs[2].id == 9u);
  BOOST_TEST(rs[3].id == 10u);
  BOOST_TEST(*rs[3].priority == default_priority);  // after the ones before it
  BOOST_TEST(rules_error("action drop\nproto tcp dport 90-80 action drop\n") ==
             "rules.conf:2: dport: range 90-80 is reversed (expected lo-hi with lo <= hi)");
  BOOST_TEST(rules_error("id 3 action drop\nid 3 action pass\n") ==
             "rules.conf:2: id: 3 is used twice");
}

BOOST_AUTO_TEST_CASE(attach_follows_links_patterns_and_renames) {
  FakeAttacher fake;
  std::vector<std::string> logs;
  AttachManager m(fake, config("veth*"), [&](int, const std::string& s) { logs.push_back(s); });
  m.on_link(Change::added, 1, "lo", "", true);
  m.on_link(Change::added, 2, "veth0", "veth", true);
  m.on_link(Change::added, 3, "eth0", "", true);
  BOOST_TEST((fake.attached == std::set<int>{2}));
  m.on_link(Change::changed, 3, "veth9", "", true);  // renamed into the pattern
  BOOST_TEST((fake.attached == std::set<int>{2, 3}));
  m.on_link(Change::changed, 2, "other0", "veth", true);  // renamed out
  BOOST_TEST((fake.attached == std::set<int>{3}));
  m.on_link(Change::removed, 3, "veth9", "", true);
  BOOST_TEST(fake.attached.empty());
  BOOST_TEST(m.interfaces().count(3) == 0u);
  m.reconfigure(config("other*"));
  BOOST_TEST((fake.attached == std::set<int>{2}));
  BOOST_TEST(m.interfaces().at(2).mode == "native");
}

BOOST_AUTO_TEST_CASE(foreign_programs_are_left_alone) {
  FakeAttacher fake;
  fake.foreign = {5};
  std::vector<std::string> logs;
  AttachManager m(fake, config("*"), [&](int, const std::string& s) { logs.push_back(s); });
  m.on_link(Change::added, 5, "veth5", "veth", true);
  BOOST_TEST(fake.attached.empty());
  BOOST_TEST(m.interfaces().at(5).last_error.find("another XDP program") != std::string::npos);
  BOOST_TEST(logs.size() == 1u);
  m.on_link(Change::changed, 5, "veth5", "veth", false);  // no repeated log for the same error
  BOOST_TEST(logs.size() == 1u);
  auto cfg = config("*");
  cfg.takeover = true;
  m.reconfigure(cfg);
  BOOST_TEST((fake.attached == std::set<int>{5}));
}

BOOST_AUTO_TEST_CASE(manual_control_is_sticky_by_name) {
  FakeAttacher fake;
  AttachManager m(fake, config("veth*"), [](int, const std::string&) {});
  m.on_link(Change::added, 2, "veth0", "veth", true);
  m.on_link(Change::added, 3, "eth0", "", true);
  BOOST_TEST(!m.set_manual("veth0", Interface::Manual::detach));
  BOOST_TEST(!m.set_manual("eth0", Interface::Manual::attach));
  BOOST_TEST((fake.attached == std::set<int>{3}));
  m.on_link(Change::changed, 2, "veth0", "veth", false);  // events do not undo it
  BOOST_TEST((fake.attached == std::set<int>{3}));
  m.on_link(Change::removed, 2, "veth0", "veth", false);  // re-created: still detached
  m.on_link(Change::added, 4, "veth0", "veth", true);
  BOOST_TEST((fake.attached == std::set<int>{3}));
  BOOST_TEST((m.interfaces().at(4).manual == Interface::Manual::detach));
  BOOST_TEST(!m.set_manual("veth0", Interface::Manual::none));  // back to the patterns
  BOOST_TEST((fake.attached == std::set<int>{3, 4}));
  BOOST_TEST(!m.set_manual("ghost0", Interface::Manual::attach));  // remembered for later
  m.on_link(Change::added, 8, "ghost0", "dummy", true);
  BOOST_TEST((fake.attached == std::set<int>{3, 4, 8}));
}

BOOST_AUTO_TEST_CASE(native_only_mode_reports_refusal) {
  FakeAttacher fake;
  fake.no_native = {6};
  auto cfg = config("*");
  cfg.mode = AttachMode::native;
  AttachManager m(fake, cfg, [](int, const std::string&) {});
  m.on_link(Change::added, 6, "bond0", "bond", true);
  BOOST_TEST(fake.attached.empty());
  BOOST_TEST(m.set_manual("bond0", Interface::Manual::attach).value_or("") ==
             "attach failed: Operation not supported");
}

BOOST_AUTO_TEST_SUITE_END()
