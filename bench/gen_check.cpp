// gen_check: the benchmarks' generators (generator.hpp) deliver what they
// say. For the packet-socket generator (forced), and the live-frame one
// where the kernel allows it: N frames of one exact 5-tuple sent through
// the veth pair to the xdpfw datapath holding one drop rule for it. Checks
// that frames arrived, that the rule counted every frame the receiver's XDP
// saw (so they arrived whole, as sent), and for the socket generator that
// every frame arrived (it sends a frame its device refused again), and that
// the device's tx_dropped counted no more than the refusals it reported.
// Prints each generator's offered rate. Exit 1 on a failed
// check, with what was seen.
//   xdpfw_gen_check [N]
#include "bench_common.hpp"
#include "datapath.hpp"
#include "datapath/packet_builder.hpp"
#include "veth_pair.hpp"

using namespace xdpfw;
using namespace xdpfw::bench;

namespace {

// The sending veth's tx_dropped: frames it could not hand to its peer.
uint64_t tx_dropped(const VethPair& pair) {
  std::string out = pair.tx().run(std::string("cat /sys/class/net/") + VethPair::tx_dev +
                                  "/statistics/tx_dropped");
  return std::stoull(out);
}

// Waits until F() stops changing (the receiver's ring drained).
uint64_t settled(const std::function<uint64_t()>& f) {
  uint64_t v = f();
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    uint64_t w = f();
    if (w == v && i >= 2) break;
    v = w;
  }
  return v;
}

bool check(const char* kind, uint64_t n) {
  setenv("XDPFW_BENCH_GENERATOR", kind, 1);
  VethPair pair;
  PacketFields f = exact_v4_mix().hit(3);
  Rule r = exact_v4_mix().rule(3);
  r.id = 1;
  r.priority = 1;
  r.action = Action::drop;
  KernelDatapath dp;
  dp.apply({r}, Policy{});
  pair.attach_rx(dp.prog_fd());
  std::vector<uint8_t> frame = test::build_packet(test::PacketSpec{.f = f, .payload = 18});
  uint64_t rx0 = pair.rx_xdp_packets(), drop0 = tx_dropped(pair);
  uint64_t refused0 = pair.generator().refused();
  uint64_t hits0 = dp.rule_counters(1).value_or(RuleCounters{}).packets;
  double secs = pair.send(frame, n);
  uint64_t rx = settled([&] { return pair.rx_xdp_packets(); }) - rx0;
  uint64_t hits = dp.rule_counters(1).value_or(RuleCounters{}).packets - hits0;
  uint64_t dropped = tx_dropped(pair) - drop0;
  uint64_t refused = pair.generator().refused() - refused0;
  pair.attach_rx(-1);
  std::printf(
      "%s: sent %llu frames in %.3f s (offered %.2f Mpps), receiver XDP saw %llu, the "
      "rule counted %llu, the veth dropped %llu (the sender saw %llu refused)\n",
      pair.generator().describe().c_str(), static_cast<unsigned long long>(n), secs,
      static_cast<double>(n) / secs / 1e6, static_cast<unsigned long long>(rx),
      static_cast<unsigned long long>(hits), static_cast<unsigned long long>(dropped),
      static_cast<unsigned long long>(refused));
  bool ok = true;
  auto fail = [&](const std::string& why) {
    std::printf("FAIL %s: %s\n", kind, why.c_str());
    ok = false;
  };
  if (rx == 0) fail("no frame arrived");
  if (hits != rx) fail("the rule counted a different number of frames than arrived");
  if (pair.generator().kind() == GenKind::socket) {
    if (rx != n) fail("the packet socket generator lost frames");
    if (dropped > refused) fail("the veth dropped frames the generator did not see refused");
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (geteuid() != 0) die("gen_check creates namespaces and loads BPF programs: run it as root");
  uint64_t n = argc > 1 ? std::stoull(argv[1]) : 200000;
  try {
    bool ok = check("socket", n);
    // Live frames where the kernel allows them (auto falls back: then the
    // socket generator ran above already).
    setenv("XDPFW_BENCH_GENERATOR", "auto", 1);
    bool live = false;
    {
      VethPair probe;
      live = probe.generator().kind() == GenKind::live;
      if (!live) std::printf("live-frame: %s\n", probe.generator().describe().c_str());
    }
    if (live) ok = check("live", n) && ok;
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    die(e.what());
  }
}
