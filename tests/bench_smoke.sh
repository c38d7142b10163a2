#!/usr/bin/env bash
# bench.quick: bench/run.sh --quick on the build under test; it must finish
# and print the summary line of each of its nine benchmarks. The generator is
# the default (live frames where the kernel allows them); when that was the
# live one, the end-to-end benchmark runs again on the packet-socket
# generator, the one machines that refuse live frames use.
set -euo pipefail
src=$1
out=$(mktemp -d /tmp/xdpfw-bench-smoke-XXXXXX)
trap 'rm -rf "$out"' EXIT
log=$(bash "$src/bench/run.sh" --quick --no-build --out "$out")
echo "$log"
for b in per-packet "set rules" classbench e2e flood control sets hotplug memory; do
  grep -q "^$b: " <<<"$log" || { echo "no summary line for $b" >&2; exit 1; }
done
[[ -s $out/results.csv && -s $out/report.md ]] || { echo "no CSV or report" >&2; exit 1; }
# The headline table: a row for each figure a quick run measures.
for f in "Per packet, 1 exact IPv4 rule" "Per packet, ClassBench" "End to end, 1 rule" \
  "Kernel map memory, idle" "Agent RSS, 100,000 exact rules" "Load: " "\`rule add\` p99 at 1,000" \
  "Events written" "Hotplug: a burst"; do
  grep -qF "| $f" "$out/headline.md" || { echo "headline.md has no row '$f'" >&2; exit 1; }
done
gen=$(grep -o '^e2e: [a-z0-9 -]*generator' <<<"$log") || { echo "e2e names no generator" >&2; exit 1; }
if [[ $gen == "e2e: live-frame generator" ]]; then
  bin=${XDPFW_BUILD_DIR:-build}/bench
  XDPFW_BENCH_GENERATOR=socket "$bin/xdpfw_live_bench" --quick | grep '^SUMMARY' |
    tee /dev/stderr | grep -q '^SUMMARY e2e: packet socket' ||
    { echo "the packet-socket generator did not run" >&2; exit 1; }
fi
