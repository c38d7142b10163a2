#!/usr/bin/env bash
# bench.quick: bench/run.sh --quick on the build under test; it must finish
# and print the summary line of each of its nine benchmarks.
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
