// classbench.cpp: ClassBench files -> rules; headers drawn from rules.
#include "common/classbench.hpp"

#include <cstdio>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace xdpfw::test {

std::string classbench_path(const std::string& name) {
  std::string base = std::string(XDPFW_TEST_DATA_DIR) + "/classbench/" + name + ".txt";
  if (name.find("100000") != std::string::npos) return base + ".gz";
  return base;
}

namespace {

std::string read_all(const std::string& path) {
  std::string cmd = (path.size() > 3 && path.substr(path.size() - 3) == ".gz")
                        ? "gzip -dc '" + path + "'"
                        : "cat '" + path + "'";
  std::unique_ptr<FILE, int (*)(FILE*)> f(popen(cmd.c_str(), "r"), pclose);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f.get())) > 0) out.append(buf, n);
  if (out.empty()) throw std::runtime_error(path + ": empty or unreadable");
  return out;
}

Prefix v4_prefix(const std::string& text, bool v6) {
  unsigned a, b, c, d, len;
  if (std::sscanf(text.c_str(), "%u.%u.%u.%u/%u", &a, &b, &c, &d, &len) != 5 || len > 32)
    throw std::runtime_error("bad prefix '" + text + "'");
  Prefix p;
  std::array<uint8_t, 4> v4 = {static_cast<uint8_t>(a), static_cast<uint8_t>(b),
                               static_cast<uint8_t>(c), static_cast<uint8_t>(d)};
  if (v6) {
    p.family = Family::v6;
    p.addr = {0x20, 0x01, 0x0d, 0xb8, v4[0], v4[1], v4[2], v4[3]};
    p.len = static_cast<uint8_t>(32 + len);
  } else {
    p.family = Family::v4;
    std::copy(v4.begin(), v4.end(), p.addr.begin());
    p.len = static_cast<uint8_t>(len);
  }
  p.clear_host_bits();
  return p;
}

std::optional<PortRange> ports(const std::string& lo, const std::string& hi) {
  PortRange r{static_cast<uint16_t>(std::stoul(lo)), static_cast<uint16_t>(std::stoul(hi))};
  if (r.full()) return std::nullopt;  // ClassBench's "any"
  return r;
}

}  // namespace

std::vector<Rule> load_classbench(const std::string& path, const ClassBenchOptions& o) {
  std::istringstream in(read_all(path));
  std::mt19937_64 rng(o.seed);
  std::vector<Rule> out;
  std::string line;
  for (uint32_t lineno = 1; std::getline(in, line); ++lineno) {
    if (line.empty()) continue;
    try {
      if (line[0] != '@') throw std::runtime_error("no leading @");
      std::istringstream f(line.substr(1));
      std::string src, dst, slo, colon1, shi, dlo, colon2, dhi, proto;
      if (!(f >> src >> dst >> slo >> colon1 >> shi >> dlo >> colon2 >> dhi >> proto))
        throw std::runtime_error("too few fields");
      Rule r;
      r.id = o.first_id + static_cast<uint32_t>(out.size());
      r.priority = static_cast<uint32_t>(out.size() + 1);
      Prefix s = v4_prefix(src, o.v6), d = v4_prefix(dst, o.v6);
      if (s.len != (o.v6 ? 32 : 0)) r.src = s;
      if (d.len != (o.v6 ? 32 : 0)) r.dst = d;
      unsigned pv, pm;
      if (std::sscanf(proto.c_str(), "%x/%x", &pv, &pm) != 2)
        throw std::runtime_error("bad protocol '" + proto + "'");
      if (pm == 0xff) r.proto = static_cast<uint8_t>(pv);
      r.sport = ports(slo, shi);
      r.dport = ports(dlo, dhi);
      // ICMPv6 is protocol 58; ClassBench's ICMP filters keep matching ICMP
      // in the v6 mapping.
      if (o.v6 && r.proto == proto_icmp) r.proto = proto_icmpv6;
      r.action = std::uniform_int_distribution<int>(0, 9)(rng) < 3 ? Action::pass : Action::drop;
      validate_rule(r);
      out.push_back(r);
    } catch (const std::exception& e) {
      throw std::runtime_error(path + ":" + std::to_string(lineno) + ": " + e.what());
    }
  }
  return out;
}

std::vector<PacketFields> classbench_headers(const std::vector<Rule>& rules, size_t n,
                                             std::mt19937_64& rng) {
  auto uni = [&](uint32_t lo, uint32_t hi) {
    return std::uniform_int_distribution<uint32_t>(lo, hi)(rng);
  };
  Family fam = Family::v4;
  for (const Rule& r : rules)
    if (auto f = r.family()) {
      fam = *f;
      break;
    }
  auto random_addr = [&] {
    std::array<uint8_t, 16> a{};
    if (fam == Family::v6) a = {0x20, 0x01, 0x0d, 0xb8};
    int from = fam == Family::v6 ? 4 : 0, to = fam == Family::v6 ? 16 : 4;
    for (int i = from; i < to; ++i) a[i] = static_cast<uint8_t>(uni(0, 255));
    return a;
  };
  // corner 0: all host bits clear; 1: all set; else random
  auto inside = [&](const Prefix& p, int corner) {
    auto a = random_addr();
    for (unsigned i = 0, bits = p.len; i < 16; ++i) {
      unsigned keep = bits >= 8 ? 8 : bits;
      uint8_t m = static_cast<uint8_t>(0xff00u >> keep);
      uint8_t host = corner == 0 ? 0 : corner == 1 ? 0xff : a[i];
      if (fam == Family::v4 && i >= 4) host = 0;
      a[i] = static_cast<uint8_t>((p.addr[i] & m) | (host & ~m));
      bits -= keep;
    }
    return a;
  };
  auto port_in = [&](const std::optional<PortRange>& r, int corner) -> uint16_t {
    if (!r) return static_cast<uint16_t>(uni(0, 65535));
    if (corner == 0) return r->lo;
    if (corner == 1) return r->hi;
    return static_cast<uint16_t>(uni(r->lo, r->hi));
  };
  const uint8_t protos[] = {6, 17, static_cast<uint8_t>(fam == Family::v6 ? 58 : 1), 47};
  std::vector<PacketFields> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    PacketFields p;
    p.family = fam;
    if (rules.empty() || uni(0, 3) == 0) {
      p.src = random_addr();
      p.dst = random_addr();
      p.proto = protos[uni(0, std::size(protos) - 1)];
      p.has_l4 = p.proto != 47;
      p.sport = static_cast<uint16_t>(uni(0, 65535));
      p.dport = static_cast<uint16_t>(uni(0, 65535));
    } else {
      const Rule& r = rules[uni(0, static_cast<uint32_t>(rules.size() - 1))];
      auto corner = [&] { return static_cast<int>(uni(0, 2)); };
      p.src = r.src ? inside(*r.src, corner()) : random_addr();
      p.dst = r.dst ? inside(*r.dst, corner()) : random_addr();
      p.proto = r.proto ? *r.proto : protos[uni(0, std::size(protos) - 1)];
      p.has_l4 = p.proto == 6 || p.proto == 17 || p.proto == 1 || p.proto == 58;
      p.sport = port_in(r.sport, corner());
      p.dport = port_in(r.dport, corner());
    }
    // In IPv6 these numbers are extension headers (the parser walks past
    // them), never the upper protocol: such a header carries no-next-header.
    if (fam == Family::v6 &&
        (p.proto == 0 || p.proto == 43 || p.proto == 44 || p.proto == 51 || p.proto == 60)) {
      p.proto = 59;
      p.has_l4 = false;
    }
    if (p.proto == 1 || p.proto == 58) {  // type and code are bytes
      p.sport &= 0xff;
      p.dport &= 0xff;
    }
    if (!p.has_l4) p.sport = p.dport = 0;
    out.push_back(p);
  }
  return out;
}

}  // namespace xdpfw::test
