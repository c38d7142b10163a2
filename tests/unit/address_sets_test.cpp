// Address sets without a kernel: the grammar (durations, declarations,
// payloads, "src @NAME" in rules), the mirror against the fake datapath's
// longest-prefix lookup and against the plain meaning (an address is a
// member while an unexpired element covers it) on random changes at random
// times, nested expiry, atomic loads, limits, persistence, and the set
// commands of the firewall service (docs/CONTROL.md, "Address sets").
#include <arpa/inet.h>

#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>
#include <random>

#include "address_sets.hpp"
#include "commands.hpp"
#include "common/fakes.hpp"
#include "firewall_service.hpp"
#include "rule_compiler.hpp"
#include "support/util.hpp"

using namespace xdpfw;
using namespace xdpfw::test;

namespace {

// A clock the test moves.
struct Time {
  uint64_t mono = 1000000000000ULL;  // ns
  uint64_t real = 1700000000000ULL;  // ms
  void pass(double seconds) {
    mono += static_cast<uint64_t>(seconds * 1e9);
    real += static_cast<uint64_t>(seconds * 1e3);
  }
  SetClock clock() {
    return {[this] { return mono; }, [this] { return real; }};
  }
};

struct SetsRig {
  Time t;
  FakeDatapath dp;
  std::unique_ptr<AddressSets> sets;
  SetsRig() {
    dp.clock = [this] { return t.mono; };
    dp.set_capacity = 100000;
    sets = std::make_unique<AddressSets>(dp, t.clock());
  }
  bool kernel_has(uint16_t id, const char* addr) const {
    Prefix p = parse_prefix(addr, "a");
    return dp.membership().contains(id, p.family, p.addr);
  }
  bool mirror_has(uint16_t id, const char* addr) const {
    Prefix p = parse_prefix(addr, "a");
    return sets->contains(id, p.family, p.addr);
  }
};

Prefix pfx(const char* s) {
  return parse_prefix(s, "test");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(address_sets)

BOOST_AUTO_TEST_CASE(grammar_and_its_errors) {
  BOOST_TEST(parse_duration("90", "t") == 90u);
  BOOST_TEST(parse_duration("10m", "t") == 600u);
  BOOST_TEST(parse_duration("2h", "t") == 7200u);
  BOOST_TEST(parse_duration("1d", "t") == 86400u);
  BOOST_TEST(parse_duration("none", "t") == 0u);
  BOOST_TEST(format_duration(3725) == "1h2m5s");
  for (const char* bad : {"", "m", "-5", "5x", "1.5h", "99999999999d"})
    BOOST_CHECK_THROW(parse_duration(bad, "timeout"), SetError);

  SetSpec s = parse_set_spec("blocklist timeout 1h max 1000");
  BOOST_TEST(s.name == "blocklist");
  BOOST_TEST(s.timeout_s == 3600u);
  BOOST_TEST(s.max == 1000u);
  BOOST_TEST(format_set_spec(s) == "blocklist timeout 1h max 1000");
  auto msg = [](const char* text) {
    try {
      parse_set_spec(text);
    } catch (const SetError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  BOOST_TEST(msg("") == "set: missing name (expected NAME [timeout DUR] [max N])");
  BOOST_TEST(msg("-x").find("is not a set name") != std::string::npos);
  BOOST_TEST(msg("a timeout") == "set a: timeout: missing value");
  BOOST_TEST(msg("a max 0").find("is not a number of elements") != std::string::npos);
  BOOST_TEST(msg("a timeout 1h timeout 2h") == "set a: timeout given twice");
  BOOST_TEST(msg("a size 3").find("is not a set option") != std::string::npos);

  auto items = parse_set_items("# feed\n198.18.0.0/15\n\n2001:db8::/32 timeout 10m # v6\n");
  BOOST_TEST(items.size() == 2u);
  BOOST_TEST(format_prefix(items[1].prefix) == "2001:db8::/32");
  BOOST_TEST(items[1].timeout_s.value() == 600u);
  BOOST_TEST(!items[0].timeout_s);
  try {
    parse_set_items("198.18.0.1\n198.18.0.300\n");
    BOOST_FAIL("no error");
  } catch (const SetError& e) {
    BOOST_TEST(std::string(e.what()).find("line 2: element: '198.18.0.300'") == 0);
  }

  // Rules name sets with @ (and !@ for "not in").
  Rule r = parse_rule("src @blocklist dst !@admins.v4 proto tcp dport 22 action drop");
  BOOST_TEST(r.src_set->name == "blocklist");
  BOOST_TEST(!r.src_set->negate);
  BOOST_TEST(r.dst_set->negate);
  BOOST_TEST(!r.src);
  BOOST_TEST(format_rule(r) == "src @blocklist dst !@admins.v4 proto tcp dport 22 action drop");
  BOOST_TEST((parse_rule(format_rule(r)) == r));
  for (const char* bad : {"src @ action drop", "src !blocklist action drop", "src @a/b action drop",
                          "dst !@ action drop"})
    BOOST_CHECK_THROW(parse_rule(bad), RuleError);
  BOOST_CHECK_THROW(parse_rule("src @a src 198.18.0.1 action drop"), RuleError);  // given twice
}

// An expired longer prefix never hides a live shorter one around it (nor
// the reverse), before any reaping: the element the longest match finds
// carries the latest expiry of those covering it.
BOOST_AUTO_TEST_CASE(nested_expiry_without_reaping) {
  SetsRig rig;
  uint16_t id = rig.sets->create({"b", 0, 0}).id;
  rig.sets->add("b", pfx("198.18.0.0/16"), 100);
  rig.sets->add("b", pfx("198.18.0.7"), 10);
  rig.t.pass(20);  // the /32 expired, the /16 lives
  BOOST_TEST(rig.kernel_has(id, "198.18.0.7"));
  BOOST_TEST(rig.mirror_has(id, "198.18.0.7"));
  rig.t.pass(100);  // both expired
  BOOST_TEST(!rig.kernel_has(id, "198.18.0.7"));
  BOOST_TEST(!rig.kernel_has(id, "198.18.5.5"));

  // The reverse: a long-lived /32 inside a short-lived /16.
  rig.sets->add("b", pfx("198.18.0.0/16"), 10);
  rig.sets->add("b", pfx("198.18.0.7"), 100);
  rig.t.pass(20);
  BOOST_TEST(rig.kernel_has(id, "198.18.0.7"));
  BOOST_TEST(!rig.kernel_has(id, "198.18.0.8"));
  // Deleting the cover gives the /32 back its own time; refreshing the
  // cover for longer lends it that.
  rig.sets->add("b", pfx("198.18.0.0/16"), 1000);
  rig.t.pass(200);
  BOOST_TEST(rig.kernel_has(id, "198.18.0.7"));  // its own 100 s are over; the /16 covers it
  BOOST_TEST(rig.sets->del("b", pfx("198.18.0.0/16")));
  BOOST_TEST(!rig.kernel_has(id, "198.18.0.7"));
  BOOST_TEST(rig.sets->reap() == 1u);  // the /32
  BOOST_TEST(rig.sets->total() == 0u);
  BOOST_TEST(rig.dp.elements.empty());
}

// Random adds, refreshes, deletes, flushes, reaps and loads of nested
// prefixes (both families) at random times: the fake datapath's lookup, the
// mirror's and the plain meaning agree on random addresses.
BOOST_AUTO_TEST_CASE(random_changes_agree_with_the_meaning) {
  SetsRig rig;
  std::mt19937 rng(20261204);
  uint16_t id = rig.sets->create({"r", 0, 0}).id;
  // The plain meaning, kept beside: element -> own expiry.
  std::map<AddressSets::Key, uint64_t> truth;
  auto random_prefix = [&] {
    Prefix p;
    p.family = rng() % 4 ? Family::v4 : Family::v6;
    // Addresses in a small space so that prefixes nest and collide.
    if (p.family == Family::v4) {
      p.addr = {198, 18, static_cast<uint8_t>(rng() % 4), static_cast<uint8_t>(rng() % 8)};
      p.len = static_cast<uint8_t>(std::vector<int>{8, 15, 16, 24, 30, 32}[rng() % 6]);
    } else {
      p.addr = {0x20, 0x01, 0x0d, 0xb8, 0, static_cast<uint8_t>(rng() % 4)};
      p.addr[15] = static_cast<uint8_t>(rng() % 8);
      p.len = static_cast<uint8_t>(std::vector<int>{32, 48, 64, 127, 128}[rng() % 5]);
    }
    p.clear_host_bits();
    return p;
  };
  auto meaning = [&](const Prefix& a) {
    for (const auto& [k, own] : truth)
      if (k.fam == static_cast<uint8_t>(a.family) && AddressSets::prefix_of(k).contains(a.addr) &&
          own > rig.t.mono)
        return true;
    return false;
  };
  int checked = 0, members = 0;
  for (int step = 0; step < 3000; ++step) {
    int op = rng() % 100;
    if (op < 55) {
      Prefix p = random_prefix();
      uint64_t timeout = rng() % 5 ? 1 + rng() % 60 : 0;  // some never expire
      rig.sets->add("r", p, timeout);
      truth[AddressSets::key_of(p)] = timeout ? rig.t.mono + timeout * 1000000000ULL : never;
    } else if (op < 75) {
      Prefix p = random_prefix();
      BOOST_TEST(rig.sets->del("r", p) == (truth.erase(AddressSets::key_of(p)) == 1));
    } else if (op < 77) {
      rig.sets->flush("r");
      truth.clear();
    } else if (op < 79) {
      std::vector<SetItem> items;
      truth.clear();
      for (int i = 0; i < 20; ++i) {
        SetItem it{random_prefix(), 1 + rng() % 60};
        items.push_back(it);
        truth[AddressSets::key_of(it.prefix)] = rig.t.mono + *it.timeout_s * 1000000000ULL;
      }
      rig.sets->load("r", items);
    } else if (op < 85) {
      rig.sets->reap();
      std::erase_if(truth, [&](const auto& kv) { return kv.second <= rig.t.mono; });
    } else {
      rig.t.pass((rng() % 4000) / 1000.0);
    }
    for (int q = 0; q < 4; ++q) {
      Prefix a = random_prefix();
      a.len = a.family == Family::v4 ? 32 : 128;
      bool want = meaning(a);
      bool kernel = rig.dp.membership().contains(id, a.family, a.addr);
      bool mirror = rig.sets->contains(id, a.family, a.addr);
      if (kernel != want || mirror != want) {
        BOOST_ERROR("step " << step << ": " << format_prefix(a) << " member " << want
                            << ", datapath says " << kernel << ", mirror " << mirror);
        return;
      }
      ++checked;
      members += want;
    }
    BOOST_TEST_REQUIRE(rig.dp.elements.size() == rig.sets->total());
  }
  BOOST_TEST(members > checked / 10);  // the check saw both answers
  BOOST_TEST(members < checked * 9 / 10);
}

BOOST_AUTO_TEST_CASE(load_switches_the_tag_and_limits_hold) {
  SetsRig rig;
  rig.dp.set_capacity = 10;  // read when the sets are made
  rig.sets = std::make_unique<AddressSets>(rig.dp, rig.t.clock());
  uint16_t id = rig.sets->create({"l", 0, 0}).id;
  rig.sets->add("l", pfx("198.18.0.1"), std::nullopt);
  uint32_t before = rig.dp.set_tag(id);
  rig.sets->load("l", {{pfx("198.18.0.2"), std::nullopt}, {pfx("198.18.0.3"), 5}});
  BOOST_TEST(rig.dp.set_tag(id) != before);
  BOOST_TEST(rig.dp.elements.size() == 2u);  // the old generation erased
  BOOST_TEST(!rig.kernel_has(id, "198.18.0.1"));
  BOOST_TEST(rig.kernel_has(id, "198.18.0.3"));
  // Old and new must fit together: 2 + 9 > 10 is refused, the old stays.
  std::vector<SetItem> nine;
  for (int i = 0; i < 9; ++i)
    nine.push_back({pfx(("198.18.1." + std::to_string(i)).c_str()), std::nullopt});
  BOOST_CHECK_THROW(rig.sets->load("l", nine), SetError);
  BOOST_TEST(rig.kernel_has(id, "198.18.0.2"));
  BOOST_TEST(rig.dp.elements.size() == 2u);
  // A write the datapath refuses leaves the old content whole.
  rig.dp.fail_set_writes = true;
  BOOST_CHECK_THROW(rig.sets->load("l", {{pfx("198.18.2.1"), std::nullopt}}), DatapathError);
  BOOST_CHECK_THROW(rig.sets->add("l", pfx("198.18.2.2"), std::nullopt), DatapathError);
  rig.dp.fail_set_writes = false;
  BOOST_TEST(rig.sets->total() == 2u);
  BOOST_TEST(rig.kernel_has(id, "198.18.0.2"));
  // max per set, and the sets' capacity.
  rig.sets->create({"small", 0, 1});
  rig.sets->add("small", pfx("198.18.3.1"), std::nullopt);
  BOOST_CHECK_THROW(rig.sets->add("small", pfx("198.18.3.2"), std::nullopt), SetError);
  BOOST_CHECK_THROW(rig.sets->create({"small", 0, 0}), SetError);
  BOOST_CHECK_THROW(rig.sets->add("nosuch", pfx("198.18.3.2"), std::nullopt), SetError);
  for (int i = 0; i < 7; ++i)
    rig.sets->add("l", pfx(("198.18.4." + std::to_string(i)).c_str()), std::nullopt);
  BOOST_CHECK_THROW(rig.sets->add("l", pfx("198.18.5.1"), std::nullopt), SetError);  // 10 held
  rig.sets->destroy("l");
  BOOST_TEST(rig.dp.set_tag(id) == 0u);
  BOOST_TEST(rig.sets->total() == 1u);
}

// The state text gives the sets back with their remaining times, whatever
// time passed meanwhile; elements that expired while away are gone.
BOOST_AUTO_TEST_CASE(snapshot_and_replay) {
  SetsRig rig;
  rig.sets->create({"s", 3600, 50});
  rig.sets->add("s", pfx("198.18.0.1"), std::nullopt);  // the set's hour
  rig.sets->add("s", pfx("198.18.0.2"), 30);
  rig.sets->add("s", pfx("2001:db8::/48"), 0);  // never
  std::string text = rig.sets->snapshot();

  SetsRig again;
  again.t.real = rig.t.real + 10000;  // 10 s later, another boot's monotonic clock
  again.t.mono = 5;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) again.sets->replay(line);
  again.sets->replay("del s 198.18.0.2");
  again.sets->sync();
  const auto* s = again.sets->find("s");
  BOOST_TEST(s->spec.timeout_s == 3600u);
  BOOST_TEST(s->spec.max == 50u);
  BOOST_TEST(s->elems.size() == 2u);
  auto left = again.sets->remaining_s(s->elems.at(AddressSets::key_of(pfx("198.18.0.1"))));
  BOOST_TEST(*left == 3590u);
  BOOST_TEST(!again.sets->remaining_s(s->elems.at(AddressSets::key_of(pfx("2001:db8::/48")))));
  BOOST_TEST(again.kernel_has(s->id, "2001:db8:0:0:1::1"));
  BOOST_TEST(again.dp.elements.size() == 2u);

  // sync() sweeps what no set owns (a set of an earlier run destroyed
  // meanwhile).
  again.dp.write_element(7 << 2, pfx("198.18.9.9"), never, true);
  again.dp.switch_set_tag(7, 7 << 2);
  again.sets->sync();
  BOOST_TEST(again.dp.elements.size() == 2u);
  BOOST_TEST(again.dp.set_tag(7) == 0u);
  for (const char* bad : {"create s id x timeout 0 max 0", "add s nonsense", "frobnicate s"})
    BOOST_CHECK_THROW(again.sets->replay(bad), std::exception);
}

// The set commands of the service, on fakes: rules that name sets decide
// by membership, a set in use cannot go, errors change nothing, and a
// restart gives the sets back (state folder) before the rules that need
// them.
namespace {

struct ServiceRig {
  TempDir dir;
  FakeDatapath* dp = nullptr;
  std::unique_ptr<FirewallService> fw;
  std::vector<std::string> logged;
  std::vector<ConfigLine> extra;

  ServiceRig() { write_file(dir / "rules.conf", "prio 50 src @cfg action drop\n"); }
  void start(bool resumed = false) {
    fw.reset();
    auto d = std::make_unique<FakeDatapath>();
    d->resumed_ = resumed;  // the rules of the state folder, not the file
    dp = d.get();
    FirewallParts parts;
    parts.datapath = std::move(d);
    parts.attacher = std::make_unique<FakeAttacher>();
    std::vector<ConfigLine> lines = {{"rules", (dir / "rules.conf").string(), 1},
                                     {"log-dir", (dir / "log").string(), 2},
                                     {"state-dir", (dir / "state").string(), 3},
                                     {"pin-root", "none", 4},
                                     {"set", "cfg timeout 1h", 5}};
    lines.insert(lines.end(), extra.begin(), extra.end());
    fw = std::make_unique<FirewallService>(
        parse_firewall_config("test.conf", lines),
        [this](int, const std::string& m) { logged.push_back(m); }, std::move(parts));
  }
  std::string verdict(const char* src, const char* dst = "198.19.0.1") const {
    PacketFields p;
    p.src = parse_prefix(src, "src").addr;
    p.dst = parse_prefix(dst, "dst").addr;
    p.proto = 17;
    p.has_l4 = true;
    p.sport = 5000;
    p.dport = 53;
    return action_name(dp->classify(p).action);
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(service_commands) {
  ServiceRig rig;
  rig.start();
  auto& fw = *rig.fw;
  // The config declares "cfg"; the rules file's rule names it.
  BOOST_TEST(run_command(fw, "set add", "cfg 198.18.0.9").text == "added");
  BOOST_TEST(rig.verdict("198.18.0.9") == "drop");
  BOOST_TEST(rig.verdict("198.18.0.10") == "pass");

  BOOST_TEST(run_command(fw, "set create", "blocklist timeout 10m").ok);
  BOOST_TEST(run_command(fw, "set create", "blocklist").text ==
             "set create: set 'blocklist' exists already");
  auto r = run_command(fw, "rule add", "prio 10 src @blocklist action drop");
  BOOST_TEST(r.ok, r.text);
  BOOST_TEST(run_command(fw, "rule add", "prio 11 src !@allow dst 198.19.0.2 action drop").text ==
             "rule add: src: no set 'allow' (set create allow, or 'set = allow' in the config)");
  BOOST_TEST(run_command(fw, "set create", "allow").ok);
  BOOST_TEST(run_command(fw, "rule add", "prio 11 src !@allow dst 198.19.0.2 action drop").ok);
  BOOST_TEST(run_command(fw, "set add", "allow 198.18.1.0/24").ok);
  BOOST_TEST(rig.verdict("198.18.1.5", "198.19.0.2") == "pass");  // in allow
  BOOST_TEST(rig.verdict("198.18.2.5", "198.19.0.2") == "drop");  // not in allow

  BOOST_TEST(run_command(fw, "set add", "blocklist 198.18.0.0/24").text == "added");
  BOOST_TEST(run_command(fw, "set add", "blocklist 198.18.0.0/24 timeout 1h").text == "updated");
  BOOST_TEST(rig.verdict("198.18.0.77") == "drop");
  BOOST_TEST(!run_command(fw, "set add", "blocklist 198.18.0.300").ok);
  BOOST_TEST(!run_command(fw, "set add", "blocklist").ok);
  BOOST_TEST(!run_command(fw, "set add", "nosuch 198.18.0.1").ok);
  BOOST_TEST(run_command(fw, "set del", "blocklist 198.18.0.0/24").text == "deleted");
  BOOST_TEST(rig.verdict("198.18.0.77") == "pass");
  BOOST_TEST(run_command(fw, "set del", "blocklist 198.18.0.0/24").text ==
             "set del: 198.18.0.0/24 is not an element of blocklist");
  // fail2ban's unban after the element's own timeout: not an error.
  BOOST_TEST(run_command(fw, "set del", "blocklist 198.18.0.0/24 if-present").text == "absent");
  BOOST_TEST(run_command(fw, "set del", "blocklist 198.18.0.0/24 if-present").ok);
  BOOST_TEST(!run_command(fw, "set del", "blocklist 198.18.0.0/24 whatever").ok);

  // load: a payload; an empty one is refused.
  BOOST_TEST(run_command(fw, "set load", "blocklist", nullptr).ok == false);
  std::string empty = "# nothing\n";
  BOOST_TEST(run_command(fw, "set load", "blocklist", &empty).text.find("holds no element") !=
             std::string::npos);
  std::string feed = "198.18.4.0/24\n198.18.5.5 timeout 30s\n2001:db8:1::/48\n";
  BOOST_TEST(run_command(fw, "set load", "blocklist", &feed).text ==
             "loaded 3 element(s) into blocklist");
  BOOST_TEST(rig.verdict("198.18.4.200") == "drop");
  std::string bad = "198.18.6.0/24\nnope\n";
  BOOST_TEST(run_command(fw, "set load", "blocklist", &bad).text ==
             "set load: line 2: element: 'nope' is not an IPv4 or IPv6 address (expected ADDR "
             "or ADDR/LEN)");
  BOOST_TEST(rig.verdict("198.18.4.200") == "drop");  // the old content stays

  // list, text and JSON.
  std::string list = run_command(fw, "set list", "").text;
  BOOST_TEST(list.find("set blocklist: 3 element(s), timeout 10m, used by rule(s) 2") !=
             std::string::npos);
  auto j = nlohmann::json::parse(run_command(fw, "set list", "blocklist json").text);
  BOOST_TEST(j["elements"] == 3);
  BOOST_TEST(j["members"].size() == 3u);
  BOOST_TEST(j["members"][0]["element"] == "198.18.4.0/24");
  BOOST_TEST(j["members"][0]["expires"].get<int>() > 590);
  BOOST_TEST(!run_command(fw, "set list", "nosuch").ok);

  // destroy: refused while a rule uses the set.
  BOOST_TEST(run_command(fw, "set destroy", "blocklist").text ==
             "set destroy: set blocklist is used by rule(s) 2 (delete them first)");
  BOOST_TEST(run_command(fw, "rule del", "2").ok);
  BOOST_TEST(run_command(fw, "set destroy", "blocklist").text == "destroyed set blocklist");
  BOOST_TEST(run_command(fw, "set flush", "allow").text == "flushed 1 element(s)");
  BOOST_TEST(rig.verdict("198.18.1.5", "198.19.0.2") == "drop");

  // A restart: sets, elements and remaining times come back from the state
  // folder before the rules that name them.
  BOOST_TEST(run_command(fw, "set add", "allow 198.18.1.0/24 timeout 2h").ok);
  rig.start(/*resumed=*/true);
  BOOST_TEST(rig.verdict("198.18.1.5", "198.19.0.2") == "pass");
  BOOST_TEST(rig.verdict("198.18.2.5", "198.19.0.2") == "drop");
  BOOST_TEST(rig.verdict("198.18.0.9") == "drop");
  BOOST_TEST(!rig.fw->sets().find("blocklist"));
  auto a = nlohmann::json::parse(run_command(*rig.fw, "set list", "allow json").text);
  BOOST_TEST(a["members"][0]["expires"].get<int>() > 7000);
  // The config's sets show in "show config", one line each.
  BOOST_TEST(run_command(*rig.fw, "show config", "").text.find("set = cfg timeout 1h\n") !=
             std::string::npos);
}

// A rules file naming a set the config does not declare fails the config
// check with the set's name.
BOOST_AUTO_TEST_CASE(config_check_knows_the_declared_sets) {
  TempDir dir;
  write_file(dir / "r.conf", "src @nope action drop\n");
  auto cfg =
      parse_firewall_config("t.conf", {{"rules", (dir / "r.conf").string(), 1}, {"set", "yes", 2}});
  try {
    FirewallService::check(cfg);
    BOOST_FAIL("no error");
  } catch (const std::exception& e) {
    BOOST_TEST(std::string(e.what()).find("no set 'nope' declared in the config") !=
               std::string::npos);
  }
  write_file(dir / "r.conf", "src @yes action drop\n");
  BOOST_CHECK_NO_THROW(FirewallService::check(cfg));
  BOOST_CHECK_THROW(parse_firewall_config("t.conf", {{"set", "a", 1}, {"set", "a timeout 1h", 2}}),
                    FirewallConfigError);
}

BOOST_AUTO_TEST_SUITE_END()
