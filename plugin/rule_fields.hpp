// rule_fields.hpp: the fields of the rule grammar, once, in the order a
// rule is written: X(ident, name, value, words). value: what the value
// looks like, for usage text; words: the names it takes, for xdpfw-ctl's
// completion (a unit test parses each). The parser, the formatter and
// their error text (plugin/rule.cpp) and xdpfw-ctl's options read this list;
// a field added here without its parser and formatter does not compile.
// Header-only and without dependencies, for xdpfw-ctl.
#pragma once

#define XDPFW_RULE_FIELDS(X)                                             \
  X(id, "id", "N", "")                                                   \
  X(prio, "prio", "N", "")                                               \
  X(src, "src", "A[/N]|[!]@SET", "")                                     \
  X(dst, "dst", "A[/N]|[!]@SET", "")                                     \
  X(proto, "proto", "P", "tcp udp icmp icmpv6")                          \
  X(sport, "sport", "P[-P]", "")                                         \
  X(dport, "dport", "P[-P]", "")                                         \
  X(icmp_type, "icmp-type", "T", "")                                     \
  X(icmp_code, "icmp-code", "C", "")                                     \
  X(tcp_flags, "tcp-flags", "F[,!F]", "fin syn rst psh ack urg ece cwr") \
  X(ct, "ct", "S[,S]", "new established related")                        \
  X(rate, "rate", "N/s", "")                                             \
  X(burst, "burst", "N", "")                                             \
  X(per, "per", "src[/N]", "src")                                        \
  X(log, "log", "", "")                                                  \
  X(action, "action", "drop|pass|audit", "drop pass audit")

namespace xdpfw {

struct RuleFieldName {
  const char* name;
  const char* value;  // what its value looks like, for usage text; "": a flag without one
  const char* words;  // the names its value takes, space-separated; "": none to offer
};

#define XDPFW_RULE_FIELD_NAME(ident, name, value, words) {name, value, words},
inline constexpr RuleFieldName rule_field_names[] = {XDPFW_RULE_FIELDS(XDPFW_RULE_FIELD_NAME)};
#undef XDPFW_RULE_FIELD_NAME

}  // namespace xdpfw
