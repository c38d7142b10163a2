// rule_gen.cpp: random rule sets and packets (see rule_gen.hpp).
#include "common/rule_gen.hpp"

namespace xdpfw::test {
namespace {
const uint16_t port_pool[] = {0, 1, 22, 53, 80, 443, 1023, 1024, 8080, 32768, 65534, 65535};
}

std::array<uint8_t, 16> RuleGen::pool_addr(int family) {
  std::array<uint8_t, 16> a{};
  if (wide_ && family == 0) {
    a = {198, static_cast<uint8_t>(18 + uniform(0, 1)), static_cast<uint8_t>(uniform(0, 255)),
         static_cast<uint8_t>(uniform(0, 255))};
  } else if (wide_) {
    a = {0x20, 0x01, 0x0d, 0xb8};
    for (int i = 4; i < 16; ++i) a[i] = static_cast<uint8_t>(uniform(0, 255));
  } else if (family == 0) {  // 198.18.0.0/15 with a small, clashing host space
    a[0] = 198;
    a[1] = static_cast<uint8_t>(18 + uniform(0, 1));
    a[2] = static_cast<uint8_t>(uniform(0, 3));
    a[3] = static_cast<uint8_t>(uniform(0, 7) * 32 + uniform(0, 1));
  } else {  // 2001:db8::/32
    a[0] = 0x20;
    a[1] = 0x01;
    a[2] = 0x0d;
    a[3] = 0xb8;
    a[5] = static_cast<uint8_t>(uniform(0, 3));
    a[7] = static_cast<uint8_t>(uniform(0, 3));
    a[15] = static_cast<uint8_t>(uniform(0, 3));
  }
  return a;
}

PortRange RuleGen::port_range(int kind) {
  if (kind == 3) return {0, 65535};
  uint16_t a = port_pool[uniform(0, std::size(port_pool) - 1)];
  if (kind == 1) return {a, a};
  uint16_t b = port_pool[uniform(0, std::size(port_pool) - 1)];
  // Near ranges from a few offsets: real rule sets reuse their boundaries.
  const uint16_t offsets[] = {1, 7, 100};
  if (uniform(0, 3) == 0) b = static_cast<uint16_t>(std::min(65535, a + offsets[uniform(0, 2)]));
  return {std::min(a, b), std::max(a, b)};
}

RuleGen::Template RuleGen::make_template() {
  Template t{};
  t.family = static_cast<int>(uniform(0, 2));
  const int v4_lens[] = {-1, 0, 8, 15, 16, 23, 24, 31, 32};
  const int v6_lens[] = {-1, 0, 32, 48, 63, 64, 120, 128};
  auto len = [&] {
    if (t.family == 0) return v4_lens[uniform(0, std::size(v4_lens) - 1)];
    if (t.family == 1) return v6_lens[uniform(0, std::size(v6_lens) - 1)];
    return -1;
  };
  t.src_len = len();
  t.dst_len = len();
  if (t.family != 2 && t.src_len < 0 && t.dst_len < 0) t.family = 2;
  switch (uniform(0, 5)) {
    case 0: t.proto = -1; break;
    case 1:
    case 2: t.proto = 6; break;
    case 3: t.proto = 17; break;
    case 4: t.proto = t.family == 1 ? 58 : 1; break;
    default: t.proto = static_cast<int>(uniform(0, 3) == 0 ? 0 : 47); break;
  }
  if (t.proto == 6 || t.proto == 17) {
    t.sport = static_cast<int>(uniform(0, 3) == 0 ? uniform(1, 3) : 0);
    t.dport = static_cast<int>(uniform(0, 3));
  } else if (t.proto == 1 || t.proto == 58) {
    t.icmp_type = uniform(0, 1);
    t.icmp_code = t.icmp_type && uniform(0, 1);
  }
  return t;
}

Rule RuleGen::from_template(const Template& t, uint32_t id) {
  Rule r;
  r.id = id;
  r.priority = uniform(0, 3) == 0 ? 100 : uniform(0, 1000);
  auto prefix = [&](int len) {
    Prefix p;
    p.family = static_cast<Family>(t.family);
    p.addr = pool_addr(t.family);
    p.len = static_cast<uint8_t>(len);
    p.clear_host_bits();
    return p;
  };
  if (t.src_len >= 0 && t.family != 2) r.src = prefix(t.src_len);
  if (t.dst_len >= 0 && t.family != 2) r.dst = prefix(t.dst_len);
  if (t.proto >= 0) r.proto = static_cast<uint8_t>(t.proto);
  if (t.sport) r.sport = port_range(t.sport);
  if (t.dport) r.dport = port_range(t.dport);
  if (t.icmp_type) r.icmp_type = static_cast<uint8_t>(uniform(0, 3) == 0 ? 8 : uniform(0, 3));
  if (t.icmp_code) r.icmp_code = static_cast<uint8_t>(uniform(0, 2));
  r.action = uniform(0, 1) ? Action::drop : Action::pass;
  if (conditions_) add_conditions(r);
  validate_rule(r);  // the compiler takes valid rules and checks them no further
  return r;
}

void RuleGen::add_conditions(Rule& r) {
  if (r.proto == proto_tcp && uniform(0, 3) == 0) {
    static const uint8_t bits[] = {0x01, 0x02, 0x04, 0x10};  // fin syn rst ack
    TcpFlags f;
    for (uint8_t b : bits)
      if (uniform(0, 2) == 0) {
        f.mask |= b;
        if (uniform(0, 1)) f.set |= b;
      }
    if (f.mask) r.tcp_flags = f;
  }
  bool l4 = !r.proto || *r.proto == proto_tcp || *r.proto == proto_udp || *r.proto == proto_icmp ||
            *r.proto == proto_icmpv6;
  if (l4 && uniform(0, 9) == 0) r.ct = static_cast<uint8_t>(uniform(1, 7));
  if (uniform(0, 14) == 0) {
    r.rate = Rate{1, 3600};
    r.burst = uniform(1, 3);
    if (uniform(0, 1)) r.per = uniform(0, 1) ? 128 : 24;
  }
  if (uniform(0, 19) == 0) r.action = Action::audit;
  if (uniform(0, 5) == 0) r.log = true;
}

std::vector<Rule> RuleGen::rules(const GenOptions& o) {
  wide_ = o.wide;
  conditions_ = o.conditions;
  std::vector<Template> ts;
  for (size_t i = 0; i < o.templates; ++i) ts.push_back(make_template());
  std::vector<Rule> out;
  out.reserve(o.rules);
  for (size_t i = 0; i < o.rules; ++i)
    out.push_back(from_template(ts[uniform(0, ts.size() - 1)], static_cast<uint32_t>(i + 1)));
  return out;
}

PacketFields RuleGen::packet(const std::vector<Rule>& rules) {
  PacketFields p;
  const Rule* base =
      rules.empty() || uniform(0, 4) == 0 ? nullptr : &rules[uniform(0, rules.size() - 1)];
  int fam =
      base && base->family() ? static_cast<int>(*base->family()) : static_cast<int>(uniform(0, 1));
  p.family = static_cast<Family>(fam);
  p.src = pool_addr(fam);
  p.dst = pool_addr(fam);
  const uint8_t protos[] = {6, 17, static_cast<uint8_t>(fam ? 58 : 1), 47, 0};
  p.proto = protos[uniform(0, std::size(protos) - 1)];
  if (base) {
    auto inside = [&](const Prefix& pf) {
      auto a = pool_addr(fam);
      for (unsigned i = 0, bits = pf.len; i < 16; ++i) {
        unsigned keep = bits >= 8 ? 8 : bits;
        uint8_t m = static_cast<uint8_t>(0xff00u >> keep);
        a[i] = static_cast<uint8_t>((pf.addr[i] & m) | (a[i] & ~m));
        bits -= keep;
      }
      return a;
    };
    if (base->src) p.src = inside(*base->src);
    if (base->dst) p.dst = inside(*base->dst);
    if (base->proto) p.proto = *base->proto;
  }
  // In IPv6 these numbers are extension headers, never the upper protocol.
  if (fam == 1 &&
      (p.proto == 0 || p.proto == 43 || p.proto == 44 || p.proto == 51 || p.proto == 60))
    p.proto = 59;
  bool l4_proto = p.proto == 6 || p.proto == 17 || p.proto == 1 || p.proto == 58;
  p.has_l4 = l4_proto && uniform(0, 9) != 0;  // some non-first fragments
  if (p.has_l4 && p.proto == proto_tcp)
    p.tcp_flags = base && base->tcp_flags && uniform(0, 1)
                      ? static_cast<uint8_t>(base->tcp_flags->set |
                                             (uniform(0, 255) & ~base->tcp_flags->mask))
                      : static_cast<uint8_t>(uniform(0, 255));
  if (p.has_l4) {
    bool icmp = p.proto == 1 || p.proto == 58;
    auto pick = [&](const std::optional<PortRange>& r) -> uint16_t {
      if (r && uniform(0, 5) != 0) {
        uint32_t v = uniform(r->lo, r->hi);
        if (uniform(0, 3) == 0) v = uniform(0, 1) ? r->lo : r->hi;
        return static_cast<uint16_t>(v);
      }
      return uniform(0, 1) ? port_pool[uniform(0, std::size(port_pool) - 1)]
                           : static_cast<uint16_t>(uniform(0, 65535));
    };
    if (icmp) {
      p.sport = base && base->icmp_type && uniform(0, 3) ? *base->icmp_type
                                                         : static_cast<uint16_t>(uniform(0, 10));
      p.dport = base && base->icmp_code && uniform(0, 3) ? *base->icmp_code
                                                         : static_cast<uint16_t>(uniform(0, 3));
    } else {
      p.sport = pick(base ? base->sport : std::nullopt);
      p.dport = pick(base ? base->dport : std::nullopt);
      // just outside a range now and then
      if (base && base->dport && uniform(0, 5) == 0 && base->dport->hi < 65535)
        p.dport = static_cast<uint16_t>(base->dport->hi + 1);
    }
  }
  return p;
}

}  // namespace xdpfw::test
