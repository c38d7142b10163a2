// Rule grammar: parsing, canonical form, and an error naming the field for
// every malformed input.
#include <boost/test/unit_test.hpp>
#include <map>
#include <set>
#include <sstream>

#include "rule.hpp"
#include "rule_compiler.hpp"
#include "rule_fields.hpp"

using namespace xdpfw;

namespace {
std::string error_of(const std::string& text) {
  try {
    parse_rule(text);
  } catch (const RuleError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

BOOST_AUTO_TEST_SUITE(rule)

BOOST_AUTO_TEST_CASE(parses_every_field) {
  Rule r = parse_rule(
      "id 7 prio 10 src 198.18.0.0/15 dst 198.19.1.2 proto tcp sport 1024-65535 dport 80 "
      "action drop");
  BOOST_TEST(r.id == 7u);
  BOOST_TEST(*r.priority == 10u);
  BOOST_TEST(format_prefix(*r.src) == "198.18.0.0/15");
  BOOST_TEST(r.dst->len == 32);
  BOOST_TEST(*r.proto == proto_tcp);
  BOOST_TEST(r.sport->lo == 1024);
  BOOST_TEST(r.sport->hi == 65535);
  BOOST_TEST(r.dport->lo == 80);
  BOOST_TEST(r.dport->hi == 80);
  BOOST_TEST((*r.action == Action::drop));
}

BOOST_AUTO_TEST_CASE(absent_fields_stay_absent) {
  // The seed's own example: everything it does not name is a wildcard.
  Rule r = parse_rule("--src 127.0.0.1 --dport 8080 --proto tcp --action drop");
  BOOST_TEST(!r.dst.has_value());
  BOOST_TEST(!r.sport.has_value());
  BOOST_TEST(!r.priority.has_value());
  BOOST_TEST(r.id == 0u);
}

BOOST_AUTO_TEST_CASE(canonical_form_round_trips) {
  for (const char* text :
       {"id 1 prio 5 src 2001:db8::/32 proto icmpv6 icmp-type 128 icmp-code 0 action pass",
        "id 2 prio 0 dst 198.18.0.0/16 proto udp dport 53 action drop",
        "id 3 prio 4294967295 proto 47 action drop",
        "id 4 prio 1 src 2001:db8::1 dst 2001:db8::/64 proto tcp sport 1-2 action pass"}) {
    Rule r = parse_rule(text);
    BOOST_TEST(format_rule(r) == text);
    BOOST_TEST((parse_rule(format_rule(r)) == r));
  }
}

BOOST_AUTO_TEST_CASE(host_bits_are_cleared) {
  BOOST_TEST(format_prefix(*parse_rule("src 198.18.7.9/16 action drop").src) == "198.18.0.0/16");
  BOOST_TEST(format_prefix(*parse_rule("dst 2001:db8::ffff/120 action drop").dst) ==
             "2001:db8::ff00/120");
}

BOOST_AUTO_TEST_CASE(prefix_contains) {
  Prefix p = parse_prefix("198.18.0.0/15", "src");
  Prefix a = parse_prefix("198.19.255.255", "x");
  Prefix b = parse_prefix("198.20.0.0", "x");
  BOOST_TEST(p.contains(a.addr));
  BOOST_TEST(!p.contains(b.addr));
  Prefix any = parse_prefix("0.0.0.0/0", "src");
  BOOST_TEST(any.contains(b.addr));
}

BOOST_AUTO_TEST_CASE(errors_name_the_field) {
  struct Case {
    const char* text;
    const char* expect;
  } cases[] = {
      {"", "rule: empty"},
      {"src 300.1.1.1 action drop", "src: '300.1.1.1' is not an IPv4 or IPv6 address"},
      {"dst 198.18.0.0/33 action drop", "dst: prefix length '33' is out of range 0-32 for IPv4"},
      {"src 2001:db8::/129 action drop", "src: prefix length '129' is out of range 0-128 for IPv6"},
      {"src 198.18.0.0/x action drop", "src: prefix length 'x'"},
      {"src 198.18.0.1 dst 2001:db8::1 action drop", "dst: IPv6 address with an IPv4 src"},
      {"proto tcp dport 90-80 action drop", "dport: range 90-80 is reversed"},
      {"proto tcp dport 65536 action drop", "dport: '65536' is not a port"},
      {"proto tcp sport -1 action drop", "sport: '' is not a port"},
      {"dport 80 action drop", "dport: ports need 'proto tcp' or 'proto udp'"},
      {"proto icmp sport 80 action drop", "sport: ports need"},
      {"proto gre action drop", "proto: 'gre' is not a protocol"},
      {"proto 256 action drop", "proto: '256' is not a protocol"},
      {"proto tcp dport 80", "action: missing"},
      {"proto tcp action reject",
       "action: 'reject' is not an action (expected drop, pass or audit)"},
      {"proto tcp action", "action: missing value"},
      {"colour red action drop", "'colour' is not a rule field"},
      {"src 198.18.0.1 src 198.18.0.2 action drop", "src: given twice"},
      {"prio -3 action drop", "prio: '-3' is not a number"},
      {"id 0 action drop", "id: '0' is not a number 1-"},
      {"proto tcp icmp-type 8 action drop", "icmp-type: needs 'proto icmp'"},
      {"proto icmp icmp-code 1 action drop", "icmp-code: needs an icmp-type"},
      {"src 2001:db8::1 proto icmp action drop", "proto: icmp is IPv4's"},
      {"dst 198.18.0.1 proto icmpv6 action drop", "proto: icmpv6 is IPv6's"},
      // the stateful and conditional fields (tests/unit/conditions_test.cpp)
      {"tcp-flags syn action drop", "tcp-flags: needs 'proto tcp'"},
      {"proto tcp tcp-flags syn,bogus action drop", "tcp-flags: 'bogus' is not one of fin, syn"},
      {"proto tcp tcp-flags syn,!syn action drop", "tcp-flags: syn given twice"},
      {"proto tcp tcp-flags , action drop", "tcp-flags: '' is not one of"},
      {"ct open action pass", "ct: 'open' is not one of new, established, related"},
      {"ct !new action pass", "ct: '!new' is not one of"},
      {"proto 47 ct new action pass", "ct: needs proto tcp, udp, icmp or icmpv6"},
      {"burst 5 action drop", "burst: needs a rate"},
      {"per src action drop", "per: needs a rate"},
      {"rate 0/s action drop", "rate: '0/s' is not a rate"},
      {"rate 5/week action drop", "rate: '5/week' is not a rate"},
      {"rate 5 action drop", "rate: '5' is not a rate"},
      {"rate 5/s per dst action drop", "per: 'dst' is not a source"},
      {"rate 5/s per src/129 action drop", "per: 'src/129' is not a source"},
      {"src 198.18.0.0/15 rate 5/s per src/64 action drop", "per: src/64 is longer than an IPv4"},
      {"rate 1/day burst 4000000000 action drop", "burst: 4000000000 packets at 1/day"},
      {"action allow", "action: 'allow' is not an action (expected drop, pass or audit)"},
  };
  for (const auto& c : cases) {
    std::string err = error_of(c.text);
    BOOST_TEST_INFO("rule: '" << c.text << "' gave: '" << err << "'");
    BOOST_TEST(err.find(c.expect) == 0u);
  }
}

// The field list (rule_fields.hpp) is the grammar: the unknown-field error
// names each field, the canonical form writes them in the list's order, and
// each is refused when given twice.
BOOST_AUTO_TEST_CASE(the_field_list_is_the_grammar) {
  std::string why = error_of("colour blue action drop");
  std::string expected;
  for (const auto& f : rule_field_names)
    expected += (expected.empty() ? "" : ", ") + std::string(f.name);
  BOOST_TEST(why == "'colour' is not a rule field (expected " + expected + ")");

  std::map<std::string, std::string> value = {{"id", "7"},
                                              {"prio", "10"},
                                              {"src", "198.18.0.0/15"},
                                              {"dst", "198.19.1.2"},
                                              {"proto", "icmp"},
                                              {"sport", "1-2"},
                                              {"dport", "3"},
                                              {"icmp-type", "8"},
                                              {"icmp-code", "0"},
                                              {"tcp-flags", "syn,!ack"},
                                              {"ct", "new,related"},
                                              {"rate", "10/s"},
                                              {"burst", "5"},
                                              {"per", "src/24"},
                                              {"log", ""},
                                              {"action", "drop"}};
  auto word = [&](const std::string& name) {
    return value[name].empty() ? name : name + " " + value[name];
  };
  std::string text;
  for (const auto& f : rule_field_names) {
    BOOST_TEST_REQUIRE(value.count(f.name), f.name << " has no sample value in this test");
    std::string name = f.name;
    if (name == "sport" || name == "dport" || name == "tcp-flags") continue;  // not with icmp
    text += (text.empty() ? "" : " ") + word(name);
  }
  BOOST_TEST(format_rule(parse_rule(text)) == text);
  for (const auto& f : rule_field_names) {
    std::string twice = text + " " + word(f.name) + " " + word(f.name);
    BOOST_TEST(error_of(twice) == std::string(f.name) + ": given twice");
  }
}

// The names xdpfw-ctl completes for a field's value (rule_fields.hpp) are
// names the parser takes, and each is among those its error text offers.
BOOST_AUTO_TEST_CASE(the_completion_words_parse) {
  size_t offered = 0;
  for (const auto& f : rule_field_names) {
    std::string name = f.name;
    std::string before = name == "tcp-flags" ? "proto tcp " : name == "per" ? "rate 10/s " : "";
    std::string after = name == "action" ? "" : " action drop";
    std::istringstream words(f.words);
    for (std::string w; words >> w; ++offered) {
      std::string text = before + name + " " + w + after;
      BOOST_TEST(error_of(text).empty(), text << ": " << error_of(text));
      std::string why = error_of(before + name + " zzz" + after);
      BOOST_TEST(why.find(w) != std::string::npos, name << ": " << w << " | " << why);
    }
  }
  BOOST_TEST(offered == 19u);  // proto 4, tcp-flags 8, ct 3, per 1, action 3
}

// The rule's two keys see every field of the grammar: for each field, two
// rules differing in it alone have different identities (what keeps a
// rule's id across a reload), and, for a match field, different compiler
// keys (duplicate detection). A field added to rule_fields.hpp fails the
// census below until it has its pair here.
BOOST_AUTO_TEST_CASE(identity_and_match_key_see_every_field) {
  struct Pair {
    const char* field;
    const char* a;
    const char* b;
    bool match;  // a match field: the compiler's key differs too
  };
  const Pair pairs[] = {
      {"prio", "prio 1 proto tcp action drop", "prio 2 proto tcp action drop", false},
      {"src", "src 198.18.0.0/24 action drop", "src 198.18.1.0/24 action drop", true},
      {"src", "src 198.18.0.0/24 action drop", "src 198.18.0.0/25 action drop", true},
      {"src", "src @a action drop", "src @b action drop", false},
      {"src", "src @a action drop", "src !@a action drop", false},
      {"dst", "dst 2001:db8::/32 action drop", "dst 2001:db8::/48 action drop", true},
      {"dst", "dst @a action drop", "dst @b action drop", false},
      {"proto", "proto tcp action drop", "proto udp action drop", true},
      {"sport", "proto tcp sport 1 action drop", "proto tcp sport 1-2 action drop", true},
      {"dport", "proto tcp dport 1 action drop", "proto tcp dport 2 action drop", true},
      {"icmp-type", "proto icmp icmp-type 8 action drop", "proto icmp icmp-type 0 action drop",
       true},
      {"icmp-code", "proto icmp icmp-type 3 icmp-code 1 action drop",
       "proto icmp icmp-type 3 icmp-code 2 action drop", true},
      {"tcp-flags", "proto tcp tcp-flags syn action drop",
       "proto tcp tcp-flags syn,!ack action drop", true},
      {"ct", "proto tcp ct new action drop", "proto tcp ct established action drop", false},
      {"rate", "rate 10/s action drop", "rate 20/s action drop", false},
      {"burst", "rate 10/s burst 5 action drop", "rate 10/s burst 6 action drop", false},
      {"per", "rate 10/s per src action drop", "rate 10/s per src/24 action drop", false},
      {"log", "proto tcp action drop", "proto tcp log action drop", false},
      {"action", "proto tcp action drop", "proto tcp action pass", false},
  };
  std::set<std::string> covered = {"id"};
  for (const Pair& p : pairs) {
    Rule a = parse_rule(p.a), b = parse_rule(p.b);
    BOOST_TEST(rule_identity(a) != rule_identity(b), p.a << " | " << p.b);
    if (p.match) BOOST_TEST((match_key(a) != match_key(b)), p.a << " | " << p.b);
    covered.insert(p.field);
  }
  std::set<std::string> all;
  for (const auto& f : rule_field_names) all.insert(f.name);
  BOOST_TEST(covered == all, boost::test_tools::per_element());
  // The id is no part of it; a conditioned rule's compiler key is its own.
  Rule x = parse_rule("id 1 prio 5 proto tcp ct new action drop");
  Rule y = parse_rule("id 2 prio 5 proto tcp ct new action drop");
  BOOST_TEST(rule_identity(x) == rule_identity(y));
  BOOST_TEST((match_key(x) != match_key(y)));
  Rule u = parse_rule("id 1 prio 5 proto tcp action drop"),
       v = parse_rule("id 2 prio 5 proto tcp action drop");
  BOOST_TEST((match_key(u) == match_key(v)));
}

BOOST_AUTO_TEST_SUITE_END()
