// bench_common.hpp: what the benchmarks share: the rule mixes (rule i of n
// and a packet that hits it) and the result table (markdown on stdout, CSV
// on request). Shell commands and network namespaces are the tests' own
// (tests/support).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include "reference_classifier.hpp"
#include "rule.hpp"
#include "support/netns.hpp"
#include "support/util.hpp"

namespace xdpfw::bench {

[[noreturn]] inline void die(const std::string& why) {
  std::fprintf(stderr, "bench: %s\n", why.c_str());
  std::exit(1);
}

// Shell commands and namespaces: the rig the tests use (tests/support);
// its failures are std::runtime_error.
using test::InNs;
using test::must;
using test::NetNs;
using test::shell;

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
// The value at fraction q (0..1) of the sorted samples.
inline double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// One measured figure. ratio_to names the baseline of the same run it is
// compared with ("" for none); note says how it was measured where that
// matters (traffic: the generator, its offered rate, "generator-bound").
struct Result {
  std::string bench, what;
  double value;
  std::string unit;
  std::string ratio_to;
  double ratio = 0;
  std::string note = "";
};

class Report {
 public:
  void add(Result r) {
    std::fprintf(stderr, "  %-44s %12.2f %-9s", r.what.c_str(), r.value, r.unit.c_str());
    if (!r.ratio_to.empty()) std::fprintf(stderr, " %6.2fx %s", r.ratio, r.ratio_to.c_str());
    if (!r.note.empty()) std::fprintf(stderr, " [%s]", r.note.c_str());
    std::fprintf(stderr, "\n");
    rows_.push_back(std::move(r));
  }
  const std::vector<Result>& rows() const { return rows_; }
  void print_markdown(const std::string& title) const {
    bool notes = std::any_of(rows_.begin(), rows_.end(), [](auto& r) { return !r.note.empty(); });
    std::printf(
        "\n### %s\n\n| case | value | unit | ratio | baseline |%s\n|---|---:|---|---:|---|%s\n",
        title.c_str(), notes ? " measured with |" : "", notes ? "---|" : "");
    for (const Result& r : rows_) {
      std::printf("| %s | %.2f | %s | ", r.what.c_str(), r.value, r.unit.c_str());
      if (r.ratio_to.empty())
        std::printf("| |");
      else
        std::printf("%.2fx | %s |", r.ratio, r.ratio_to.c_str());
      if (notes) std::printf(" %s |", r.note.c_str());
      std::printf("\n");
    }
  }
  // Appends to FILE (the header once, when the file is new).
  void append_csv(const std::string& file) const {
    bool fresh = !std::ifstream(file).good();
    std::ofstream o(file, std::ios::app);
    if (fresh) o << "bench,case,value,unit,ratio,baseline,note\n";
    for (const Result& r : rows_)
      o << r.bench << ",\"" << r.what << "\"," << r.value << ',' << r.unit << ','
        << (r.ratio_to.empty() ? 0 : r.ratio) << ",\"" << r.ratio_to << "\",\"" << r.note << "\"\n";
  }

 private:
  std::vector<Result> rows_;
};

// Addresses from the benchmarking ranges: 198.18.0.0/15 and 2001:db8::/32.
inline std::array<uint8_t, 16> v4addr(uint32_t i) {
  return {198, static_cast<uint8_t>(18 + ((i >> 16) & 1)), static_cast<uint8_t>(i >> 8),
          static_cast<uint8_t>(i)};
}
inline std::array<uint8_t, 16> v6addr(uint32_t i) {
  std::array<uint8_t, 16> a{0x20, 0x01, 0x0d, 0xb8};
  for (int k = 0; k < 4; ++k) a[12 + k] = static_cast<uint8_t>(i >> (24 - 8 * k));
  return a;
}
inline Prefix prefix(Family f, const std::array<uint8_t, 16>& a, uint8_t len) {
  Prefix p{f, a, len};
  p.clear_host_bits();
  return p;
}

// A rule mix: rule i of a set, and a packet that hits rule i.
struct Mix {
  const char* name;
  std::function<Rule(uint32_t)> rule;
  std::function<PacketFields(uint32_t)> hit;
};

using AddrFn = std::array<uint8_t, 16> (*)(uint32_t);
inline uint16_t exact_sport(uint32_t i) {
  return static_cast<uint16_t>(1024 + i % 50000);
}
// A rule naming a whole 5-tuple (UDP to port 53).
inline Rule exact_rule(Family f, AddrFn addr, uint32_t i) {
  Rule r;
  uint8_t len = f == Family::v4 ? 32 : 128;
  r.src = prefix(f, addr(i), len);
  r.dst = prefix(f, addr(~i), len);
  r.proto = proto_udp;
  r.sport = PortRange{exact_sport(i), exact_sport(i)};
  r.dport = PortRange{53, 53};
  return r;
}
inline PacketFields exact_packet(Family f, AddrFn addr, uint32_t i) {
  return PacketFields{f, addr(i), addr(~i), proto_udp, true, exact_sport(i), 53};
}

inline const PortRange mixed_ranges[] = {{22, 22},     {80, 80}, {443, 443},   {1024, 65535},
                                         {6000, 6010}, {53, 53}, {8000, 8999}, {123, 123}};

inline const std::vector<Mix>& mixes() {
  static const std::vector<Mix> all = {
      {"exact 5-tuple v4", [](uint32_t i) { return exact_rule(Family::v4, v4addr, i); },
       [](uint32_t i) { return exact_packet(Family::v4, v4addr, i); }},
      {"/32 sources v4",
       [](uint32_t i) {
         Rule r;
         r.src = prefix(Family::v4, v4addr(i), 32);
         return r;
       },
       [](uint32_t i) {
         return PacketFields{Family::v4, v4addr(i), v4addr(7), proto_udp, true, 4000, 53};
       }},
      {"mixed prefixes+ranges v4",
       [](uint32_t i) {
         const uint8_t lens[] = {8, 16, 24, 32};
         Rule r;
         r.src = prefix(Family::v4, v4addr(i * 2654435761u), lens[i % 4]);
         if (i % 3 == 0) r.dst = prefix(Family::v4, v4addr(i), 24);
         r.proto = i % 2 ? proto_tcp : proto_udp;
         if (i % 5 != 0) r.dport = mixed_ranges[i % 8];
         return r;
       },
       [](uint32_t i) {
         return PacketFields{Family::v4,
                             v4addr(i * 2654435761u),
                             v4addr(i),
                             static_cast<uint8_t>(i % 2 ? proto_tcp : proto_udp),
                             true,
                             40000,
                             mixed_ranges[i % 8].lo};
       }},
      // Destination port ranges of 16 ports each, per source /24.
      {"port ranges v4",
       [](uint32_t i) {
         Rule r;
         r.src = prefix(Family::v4, v4addr(i << 8), 24);
         r.proto = proto_tcp;
         uint16_t lo = static_cast<uint16_t>(1024 + (i % 4000) * 16);
         r.dport = PortRange{lo, static_cast<uint16_t>(lo + 15)};
         return r;
       },
       [](uint32_t i) {
         return PacketFields{Family::v4,
                             v4addr((i << 8) | 9),
                             v4addr(1),
                             proto_tcp,
                             true,
                             40000,
                             static_cast<uint16_t>(1024 + (i % 4000) * 16 + 7)};
       }},
      {"exact 5-tuple v6", [](uint32_t i) { return exact_rule(Family::v6, v6addr, i); },
       [](uint32_t i) { return exact_packet(Family::v6, v6addr, i); }},
  };
  return all;
}
inline const Mix& exact_v4_mix() {
  return mixes()[0];
}
inline const Mix& sources_v4_mix() {
  return mixes()[1];
}

// N rules of MIX, ids 1..N, one priority, action drop.
inline std::vector<Rule> make_rules(const Mix& mix, uint32_t n) {
  std::vector<Rule> rules;
  rules.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    Rule r = mix.rule(i);
    r.id = i + 1;
    r.priority = 100;
    r.action = Action::drop;
    validate_rule(r);  // the compiler takes valid rules and checks them no further
    rules.push_back(r);
  }
  return rules;
}

}  // namespace xdpfw::bench
