// rule.cpp: parsing, validation and formatting of rules.
#include "rule.hpp"

#include "rule_fields.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <deque>
#include <iterator>
#include <mutex>
#include <sstream>
#include <unordered_map>

namespace xdpfw {

std::string quote(std::string_view v) {
  // Control bytes (a NUL, an escape sequence) are shown, not passed on to
  // a log line or a terminal; long words are cut.
  std::string out = "'";
  size_t n = 0;
  for (char c : v) {
    if (++n > 64) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    } else {
      out += c;
    }
  }
  return out + "'";
}

namespace {

uint16_t parse_port(std::string_view s, std::string_view field) {
  auto v = parse_uint<uint16_t>(s, 65535);
  if (!v)
    throw RuleError(std::string(field) + ": " + quote(s) +
                    " is not a port (expected a number 0-65535 or a range lo-hi)");
  return *v;
}

PortRange parse_port_range(std::string_view s, std::string_view field) {
  auto dash = s.find('-');
  PortRange r;
  if (dash == std::string_view::npos) {
    r.lo = r.hi = parse_port(s, field);
    return r;
  }
  r.lo = parse_port(s.substr(0, dash), field);
  r.hi = parse_port(s.substr(dash + 1), field);
  if (r.lo > r.hi)
    throw RuleError(std::string(field) + ": range " + std::string(s) +
                    " is reversed (expected lo-hi with lo <= hi)");
  return r;
}

uint8_t parse_proto(std::string_view s) {
  if (s == "tcp") return proto_tcp;
  if (s == "udp") return proto_udp;
  if (s == "icmp") return proto_icmp;
  if (s == "icmpv6" || s == "ipv6-icmp") return proto_icmpv6;
  if (auto v = parse_uint<uint8_t>(s, 255)) return *v;
  throw RuleError("proto: " + quote(s) +
                  " is not a protocol (expected tcp, udp, icmp, icmpv6 or a number 0-255)");
}

uint8_t parse_byte(std::string_view s, std::string_view field) {
  if (auto v = parse_uint<uint8_t>(s, 255)) return *v;
  throw RuleError(std::string(field) + ": " + quote(s) + " is not a number 0-255");
}

uint32_t parse_u32(std::string_view s, std::string_view field, uint32_t min) {
  auto v = parse_uint<uint32_t>(s, UINT32_MAX);
  if (!v || *v < min)
    throw RuleError(std::string(field) + ": " + quote(s) + " is not a number " +
                    std::to_string(min) + "-4294967295");
  return *v;
}

std::string format_range(const PortRange& r) {
  if (r.lo == r.hi) return std::to_string(r.lo);
  return std::to_string(r.lo) + "-" + std::to_string(r.hi);
}

struct NamedBit {
  const char* name;
  uint8_t bit;
};
constexpr NamedBit tcp_flag_names[] = {{"fin", 0x01}, {"syn", 0x02}, {"rst", 0x04}, {"psh", 0x08},
                                       {"ack", 0x10}, {"urg", 0x20}, {"ece", 0x40}, {"cwr", 0x80}};
constexpr NamedBit ct_names[] = {
    {"new", ct_new}, {"established", ct_established}, {"related", ct_related}};

template <size_t N>
std::string bit_names(const NamedBit (&names)[N]) {
  std::string s;
  for (const NamedBit& n : names) s += (s.empty() ? "" : ", ") + std::string(n.name);
  return s;
}

// "a,!b": the bits named, each once; with negate, "!" marks a bit unset.
template <size_t N>
TcpFlags parse_bits(std::string_view v, std::string_view field, const NamedBit (&names)[N],
                    bool negate) {
  TcpFlags out;
  if (v.empty())
    throw RuleError(std::string(field) + ": empty (expected " + bit_names(names) + ")");
  while (true) {
    auto comma = v.find(',');
    std::string_view w = v.substr(0, comma);
    bool unset = negate && w.starts_with('!');
    if (unset) w.remove_prefix(1);
    const NamedBit* n = std::find_if(std::begin(names), std::end(names),
                                     [&](const NamedBit& x) { return w == x.name; });
    if (n == std::end(names))
      throw RuleError(std::string(field) + ": " + quote(w) + " is not one of " + bit_names(names) +
                      (negate ? " (each may be negated with '!')" : ""));
    if (out.mask & n->bit) throw RuleError(std::string(field) + ": " + n->name + " given twice");
    out.mask |= n->bit;
    if (!unset) out.set |= n->bit;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return out;
}

struct RateUnit {
  const char* name;  // canonical first
  uint32_t seconds;
};
constexpr RateUnit rate_units[] = {{"s", 1},       {"sec", 1},  {"second", 1},  {"min", 60},
                                   {"minute", 60}, {"h", 3600}, {"hour", 3600}, {"day", 86400}};
constexpr uint32_t max_rate = 1000000000;  // per unit

Rate parse_rate(std::string_view v) {
  auto slash = v.find('/');
  auto n = parse_uint<uint32_t>(v.substr(0, slash), max_rate);
  const RateUnit* u =
      slash == std::string_view::npos
          ? std::end(rate_units)
          : std::find_if(std::begin(rate_units), std::end(rate_units),
                         [&](const RateUnit& x) { return v.substr(slash + 1) == x.name; });
  if (!n || *n == 0 || u == std::end(rate_units))
    throw RuleError("rate: " + quote(v) +
                    " is not a rate (expected N/s, N/min, N/h or N/day with N 1-1000000000)");
  return Rate{*n, u->seconds};
}

std::string format_rate(const Rate& r) {
  const char* unit = r.seconds == 1      ? "s"
                     : r.seconds == 60   ? "min"
                     : r.seconds == 3600 ? "h"
                                         : "day";
  return std::to_string(r.packets) + "/" + unit;
}

uint8_t parse_per(std::string_view v) {
  if (v == "src") return 128;
  if (v.starts_with("src/"))
    if (auto n = parse_uint<uint8_t>(v.substr(4), 128); n && *n >= 1) return *n;
  throw RuleError("per: " + quote(v) + " is not a source (expected src or src/N with N 1-128)");
}

// The interned names: a deque, so that a name's place never moves.
struct SetNames {
  std::mutex mu;
  std::deque<std::string> names{""};
  std::unordered_map<std::string_view, uint32_t> index{{"", 0}};
};
SetNames& set_names() {
  static SetNames* all = new SetNames;  // never destroyed: rules in statics may outlive it
  return *all;
}

// src/dst: a prefix, or a set reference "@NAME" / "!@NAME".
void parse_address_field(std::string_view v, std::string_view field, std::optional<Prefix>& prefix,
                         std::optional<SetRef>& set) {
  bool negate = v.starts_with("!");
  if (negate || v.starts_with("@")) {
    std::string_view name = v.substr(negate ? 1 : 0);
    if (!name.starts_with("@") || !valid_set_name(name.substr(1)))
      throw RuleError(std::string(field) + ": " + quote(v) +
                      " is not a set reference (expected @NAME or !@NAME, NAME 1-32 of "
                      "letters, digits, '_', '.', '-')");
    set = SetRef{SetName(name.substr(1)), negate, 0};
    return;
  }
  prefix = parse_prefix(v, field);
}

std::string format_address_field(const std::optional<Prefix>& prefix,
                                 const std::optional<SetRef>& set) {
  if (set) return (set->negate ? "!@" : "@") + set->name;
  return format_prefix(*prefix);
}

bool is_port_proto(uint8_t p) {
  return p == proto_tcp || p == proto_udp;
}
bool is_icmp_proto(uint8_t p) {
  return p == proto_icmp || p == proto_icmpv6;
}

}  // namespace

SetName::SetName(std::string_view name) {
  SetNames& all = set_names();
  std::lock_guard lock(all.mu);
  if (auto it = all.index.find(name); it != all.index.end()) {
    i_ = it->second;
    return;
  }
  all.names.emplace_back(name);
  i_ = static_cast<uint32_t>(all.names.size() - 1);
  all.index.emplace(all.names.back(), i_);
}

const std::string& SetName::str() const {
  SetNames& all = set_names();
  std::lock_guard lock(all.mu);
  return all.names[i_];
}

bool valid_set_name(std::string_view name) {
  if (name.empty() || name.size() > 32 || !std::isalnum(static_cast<unsigned char>(name[0])))
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

bool Prefix::contains(const std::array<uint8_t, 16>& a) const {
  unsigned bits = len;
  for (size_t i = 0; bits > 0; ++i) {
    unsigned take = bits >= 8 ? 8 : bits;
    uint8_t mask = static_cast<uint8_t>(0xff00u >> take);
    if ((a[i] & mask) != addr[i]) return false;
    bits -= take;
  }
  return true;
}

Prefix parse_prefix(std::string_view text, std::string_view field) {
  Prefix p;
  auto slash = text.find('/');
  std::string addr(text.substr(0, slash));
  if (inet_pton(AF_INET, addr.c_str(), p.addr.data()) == 1) {
    p.family = Family::v4;
  } else if (inet_pton(AF_INET6, addr.c_str(), p.addr.data()) == 1) {
    p.family = Family::v6;
  } else {
    throw RuleError(std::string(field) + ": " + quote(addr) +
                    " is not an IPv4 or IPv6 address (expected ADDR or ADDR/LEN)");
  }
  unsigned max = p.family == Family::v4 ? 32 : 128;
  p.len = static_cast<uint8_t>(max);
  if (slash != std::string_view::npos) {
    auto len = parse_uint<unsigned>(text.substr(slash + 1), 255);
    if (!len || *len > max)
      throw RuleError(std::string(field) + ": prefix length " + quote(text.substr(slash + 1)) +
                      " is out of range 0-" + std::to_string(max) + " for " +
                      (p.family == Family::v4 ? "IPv4" : "IPv6"));
    p.len = static_cast<uint8_t>(*len);
  }
  p.clear_host_bits();  // feeds of prefixes often carry them
  return p;
}

void Prefix::clear_host_bits() {
  for (unsigned i = 0, bits = len; i < 16; ++i) {
    unsigned keep = bits >= 8 ? 8 : bits;
    addr[i] &= static_cast<uint8_t>(0xff00u >> keep);
    bits -= keep;
  }
}

std::string format_address(Family f, const std::array<uint8_t, 16>& a) {
  if (f == Family::v4) {  // inet_ntop goes through sprintf: 4x slower
    std::string s;
    s.reserve(15);
    for (int i = 0; i < 4; ++i) {
      if (i) s += '.';
      s += std::to_string(a[i]);
    }
    return s;
  }
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(f == Family::v4 ? AF_INET : AF_INET6, a.data(), buf, sizeof buf);
  return buf;
}

std::string format_prefix(const Prefix& p) {
  std::string s = format_address(p.family, p.addr);
  if (p.len != (p.family == Family::v4 ? 32 : 128)) s += "/" + std::to_string(p.len);
  return s;
}

std::string proto_name(uint8_t proto) {
  switch (proto) {
    case proto_tcp: return "tcp";
    case proto_udp: return "udp";
    case proto_icmp: return "icmp";
    case proto_icmpv6: return "icmpv6";
    default: return std::to_string(proto);
  }
}

std::string action_name(Action a) {
  return a == Action::drop ? "drop" : a == Action::audit ? "audit" : "pass";
}

std::string format_tcp_flags(const TcpFlags& f) {
  std::string s;
  for (const NamedBit& n : tcp_flag_names)
    if (f.mask & n.bit)
      s += (s.empty() ? "" : ",") + std::string(f.set & n.bit ? "" : "!") + n.name;
  return s;
}

std::string format_ct(uint8_t states) {
  std::string s;
  for (const NamedBit& n : ct_names)
    if (states & n.bit) s += (s.empty() ? "" : ",") + std::string(n.name);
  return s;
}

std::optional<Family> Rule::family() const {
  if (src) return src->family;
  if (dst) return dst->family;
  return std::nullopt;
}

void validate_rule(const Rule& r) {
  if (!r.action)
    throw RuleError("action: missing (expected 'action drop', 'action pass' or 'action audit')");
  if (r.src && r.dst && r.src->family != r.dst->family)
    throw RuleError(std::string("dst: ") + (r.dst->family == Family::v4 ? "IPv4" : "IPv6") +
                    " address with an " + (r.src->family == Family::v4 ? "IPv4" : "IPv6") +
                    " src (expected both of one family)");
  if ((r.sport || r.dport) && !(r.proto && is_port_proto(*r.proto)))
    throw RuleError(std::string(r.sport ? "sport" : "dport") +
                    ": ports need 'proto tcp' or 'proto udp'");
  if ((r.icmp_type || r.icmp_code) && !(r.proto && is_icmp_proto(*r.proto)))
    throw RuleError(std::string(r.icmp_type ? "icmp-type" : "icmp-code") +
                    ": needs 'proto icmp' or 'proto icmpv6'");
  if (r.icmp_code && !r.icmp_type) throw RuleError("icmp-code: needs an icmp-type as well");
  auto fam = r.family();
  if (fam && r.proto == proto_icmp && *fam == Family::v6)
    throw RuleError("proto: icmp is IPv4's; with IPv6 addresses use 'proto icmpv6'");
  if (fam && r.proto == proto_icmpv6 && *fam == Family::v4)
    throw RuleError("proto: icmpv6 is IPv6's; with IPv4 addresses use 'proto icmp'");
  if (r.tcp_flags && r.proto != proto_tcp) throw RuleError("tcp-flags: needs 'proto tcp'");
  if (r.ct && r.proto && !is_port_proto(*r.proto) && !is_icmp_proto(*r.proto))
    throw RuleError(
        "ct: needs proto tcp, udp, icmp or icmpv6, or no proto (the kernel tracks "
        "no other protocol here)");
  if (r.burst && !r.rate) throw RuleError("burst: needs a rate (e.g. 'rate 100/s burst 20')");
  if (r.per && !r.rate) throw RuleError("per: needs a rate (e.g. 'rate 100/s per src')");
  if (r.per && fam == Family::v4 && *r.per > 32 && *r.per != 128)
    throw RuleError("per: src/" + std::to_string(*r.per) + " is longer than an IPv4 address");
  if (r.rate) {
    // The bucket's depth in nanoseconds must fit its 64-bit counter.
    long double depth = static_cast<long double>(r.burst_packets()) * r.rate->cost_ns();
    if (r.burst && *r.burst == 0) throw RuleError("burst: 0 (expected 1 or more packets)");
    if (depth > 4e18L)
      throw RuleError("burst: " + std::to_string(r.burst_packets()) + " packets at " +
                      format_rate(*r.rate) + " is a bucket of over 100 years (expected fewer)");
  }
}

namespace {

// How each field of XDPFW_RULE_FIELDS is read and written.
struct FieldOps {
  bool (*present)(const Rule&);
  void (*parse)(Rule&, std::string_view);
  std::string (*format)(const Rule&);
};

namespace field {
using R = Rule;
using V = std::string_view;
constexpr FieldOps id{[](const R& r) { return r.id != 0; },
                      [](R& r, V v) { r.id = parse_u32(v, "id", 1); },
                      [](const R& r) { return std::to_string(r.id); }};
constexpr FieldOps prio{[](const R& r) { return r.priority.has_value(); },
                        [](R& r, V v) { r.priority = parse_u32(v, "prio", 0); },
                        [](const R& r) { return std::to_string(*r.priority); }};
constexpr FieldOps src{[](const R& r) { return r.src || r.src_set; },
                       [](R& r, V v) { parse_address_field(v, "src", r.src, r.src_set); },
                       [](const R& r) { return format_address_field(r.src, r.src_set); }};
constexpr FieldOps dst{[](const R& r) { return r.dst || r.dst_set; },
                       [](R& r, V v) { parse_address_field(v, "dst", r.dst, r.dst_set); },
                       [](const R& r) { return format_address_field(r.dst, r.dst_set); }};
constexpr FieldOps proto{[](const R& r) { return r.proto.has_value(); },
                         [](R& r, V v) { r.proto = parse_proto(v); },
                         [](const R& r) { return proto_name(*r.proto); }};
constexpr FieldOps sport{[](const R& r) { return r.sport.has_value(); },
                         [](R& r, V v) { r.sport = parse_port_range(v, "sport"); },
                         [](const R& r) { return format_range(*r.sport); }};
constexpr FieldOps dport{[](const R& r) { return r.dport.has_value(); },
                         [](R& r, V v) { r.dport = parse_port_range(v, "dport"); },
                         [](const R& r) { return format_range(*r.dport); }};
constexpr FieldOps icmp_type{[](const R& r) { return r.icmp_type.has_value(); },
                             [](R& r, V v) { r.icmp_type = parse_byte(v, "icmp-type"); },
                             [](const R& r) { return std::to_string(*r.icmp_type); }};
constexpr FieldOps icmp_code{[](const R& r) { return r.icmp_code.has_value(); },
                             [](R& r, V v) { r.icmp_code = parse_byte(v, "icmp-code"); },
                             [](const R& r) { return std::to_string(*r.icmp_code); }};
constexpr FieldOps tcp_flags{
    [](const R& r) { return r.tcp_flags.has_value(); },
    [](R& r, V v) { r.tcp_flags = parse_bits(v, "tcp-flags", tcp_flag_names, true); },
    [](const R& r) { return format_tcp_flags(*r.tcp_flags); }};
constexpr FieldOps ct{[](const R& r) { return r.ct.has_value(); },
                      [](R& r, V v) { r.ct = parse_bits(v, "ct", ct_names, false).set; },
                      [](const R& r) { return format_ct(*r.ct); }};
constexpr FieldOps rate{[](const R& r) { return r.rate.has_value(); },
                        [](R& r, V v) { r.rate = parse_rate(v); },
                        [](const R& r) { return format_rate(*r.rate); }};
constexpr FieldOps burst{[](const R& r) { return r.burst.has_value(); },
                         [](R& r, V v) { r.burst = parse_u32(v, "burst", 1); },
                         [](const R& r) { return std::to_string(*r.burst); }};
constexpr FieldOps per{
    [](const R& r) { return r.per.has_value(); }, [](R& r, V v) { r.per = parse_per(v); },
    [](const R& r) {
      return *r.per == 128 ? std::string("src") : "src/" + std::to_string(*r.per);
    }};
constexpr FieldOps log{[](const R& r) { return r.log; }, [](R& r, V) { r.log = true; },
                       [](const R&) { return std::string(); }};
constexpr FieldOps action{
    [](const R& r) { return r.action.has_value(); },
    [](R& r, V v) {
      if (v == "drop")
        r.action = Action::drop;
      else if (v == "pass" || v == "accept")
        r.action = Action::pass;
      else if (v == "audit")
        r.action = Action::audit;
      else
        throw RuleError("action: " + quote(v) + " is not an action (expected drop, pass or audit)");
    },
    [](const R& r) { return action_name(*r.action); }};
}  // namespace field

struct Field {
  const char* name;
  bool flag;  // no value: the word alone
  FieldOps ops;
};
#define XDPFW_RULE_FIELD_OPS(ident, name, value, words) {name, *value == '\0', field::ident},
constexpr Field fields[] = {XDPFW_RULE_FIELDS(XDPFW_RULE_FIELD_OPS)};
#undef XDPFW_RULE_FIELD_OPS

std::string field_names() {
  std::string s;
  for (const Field& f : fields) s += (s.empty() ? "" : ", ") + std::string(f.name);
  return s;
}

}  // namespace

Rule parse_rule(std::string_view text) {
  Rule r;
  auto words = split_words(text);
  if (words.empty())
    throw RuleError("rule: empty (expected fields such as 'dport 22 proto tcp action drop')");
  for (size_t i = 0; i < words.size(); ++i) {
    std::string_view key = words[i];
    if (key.starts_with("--")) key.remove_prefix(2);
    if (key == "priority") key = "prio";
    const Field* f = std::find_if(std::begin(fields), std::end(fields),
                                  [&](const Field& x) { return key == x.name; });
    if (f == std::end(fields))
      throw RuleError(quote(key) + " is not a rule field (expected " + field_names() + ")");
    if (f->ops.present(r)) throw RuleError(std::string(key) + ": given twice");
    if (f->flag) {
      f->ops.parse(r, {});
      continue;
    }
    if (i + 1 >= words.size()) throw RuleError(std::string(key) + ": missing value");
    f->ops.parse(r, words[++i]);
  }
  validate_rule(r);
  return r;
}

// Appends, no streams: `rule list`, `save` and the state file written
// after every change format every rule (100,000 of them in ~20 ms).
static_assert(std::string_view(fields[0].name) == "id", "format_fields leaves out fields[0]");

namespace {
std::string format_fields(const Rule& r, bool with_id) {
  std::string o;
  o.reserve(96);
  for (const Field& f : fields) {
    if (!f.ops.present(r) || (!with_id && &f == &fields[0])) continue;
    if (!o.empty()) o += ' ';
    o += f.name;
    if (f.flag) continue;
    o += ' ';
    o += f.ops.format(r);
  }
  return o;
}
}  // namespace

std::string format_rule(const Rule& r) {
  return format_fields(r, true);
}

std::string rule_identity(const Rule& r) {
  return format_fields(r, false);
}

}  // namespace xdpfw
