#!/usr/bin/env bash
# Every benchmark, each with its baselines measured in the same run (as root).
#   bash bench/run.sh            full run (about 25 minutes, most of it nftables on the
#                                ClassBench sets): tables, CSV, two plots
#   bash bench/run.sh --quick    about 90 seconds: one summary line per benchmark
#   bash bench/run.sh --out DIR  where the results go (default bench/results/DATE)
#   --no-build                   use the build as it is ($XDPFW_BUILD_DIR, default build/)
#   --generator live|socket|auto the end-to-end traffic: the kernel's live frames, a packet
#                                socket, or live where the kernel allows it (the default)
# A full run also refreshes the headline table at the top of docs/BENCHMARKS.md;
# every run writes it to headline.md beside the report.
set -euo pipefail
cd "$(dirname "$0")/.."
quick= out= build=1
bin=${XDPFW_BUILD_DIR:-build}/bench
while (($#)); do
  case "$1" in
    --quick) quick=--quick ;;
    --out) out="$2"; shift ;;
    --no-build) build= ;;
    --generator) export XDPFW_BENCH_GENERATOR="$2"; shift ;;
    *) echo "usage: bench/run.sh [--quick] [--out DIR] [--no-build] [--generator live|socket|auto]" >&2; exit 2 ;;
  esac
  shift
done
if [[ -n $build ]]; then
  bash scripts/install-deps.sh --test
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON -DXDPFW_BENCH=ON >/dev/null
  cmake --build build -j"$(nproc)" >/dev/null
fi
out=${out:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)${quick:+-quick}}
mkdir -p "$out"
# bpf_stats adds tens of ns to every BPF_PROG_TEST_RUN figure: off while we measure.
stats=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -qw kernel.bpf_stats_enabled="$stats"' EXIT
sysctl -qw kernel.bpf_stats_enabled=0

{
  echo "# xdpfw benchmark run, $(date -u +%Y-%m-%dT%H:%M:%SZ)${quick:+ (quick)}"
  echo
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- kernel: $(uname -r); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) online"
  echo "- memory: $(free -g | awk '/Mem:/ {print $2}') GiB; clang $(clang --version | grep -o 'version [0-9.]*' | head -1 | cut -d' ' -f2); nft $(nft --version | awk '{print $2}'); libbpf $(dpkg-query -W -f='${Version}' libbpf-dev 2>/dev/null)"
} >"$out/report.md"

csv="$out/results.csv"
rm -f "$csv"
start=$SECONDS
run() {  # NAME CMD...: tables to the report, summary line to the terminal
  local name=$1; shift
  if ! "$@" --csv "$csv" >"$out/$name.md" 2>"$out/$name.log"; then
    echo "bench: $name failed:" >&2
    tail -20 "$out/$name.log" >&2
    exit 1
  fi
  grep '^SUMMARY' "$out/$name.md" | sed 's/^SUMMARY //'
  grep -v '^SUMMARY' "$out/$name.md" >>"$out/report.md"
}
run per_packet "$bin"/xdpfw_prog_run_bench $quick --plot "$out/per_packet.dat"
run classbench "$bin"/xdpfw_classbench_bench $quick --plot "$out/classbench.dat"
run e2e "$bin"/xdpfw_live_bench $quick
run agent "$bin"/xdpfw_agent_bench $quick

if [[ -z $quick ]]; then
  gnuplot <<PLOT
set terminal pngcairo size 900,540 font ",11"
set output "$out/per_packet.png"
set title "Per-packet cost, exact 5-tuple IPv4 rule hit (BPF\\\\_PROG\\\\_TEST\\\\_RUN)"
set xlabel "rules"
set ylabel "ns per packet"
set logscale x
set yrange [0:*]
set key top left
set grid
plot "$out/per_packet.dat" using 1:4 with linespoints lw 2 title "xdpfw", \
     "" using 1:3 with linespoints lw 2 title "original design", \
     "" using 1:2 with linespoints lw 2 title "parse-and-drop floor"

# Every mix, hits (solid) and misses (dashed), and the ClassBench sets, as
# ratios to the original design at one exact rule measured beside each.
set output "$out/per_packet_mixes.png"
set terminal pngcairo size 1000,620 font ",10" dashed
set title "Per-packet cost of every mix, x the original design beside it (BPF\\_PROG\\_TEST\\_RUN)"
set ylabel "x the original design's one exact rule"
set key outside right top
mixes = system("grep -c '^\"' '$out/per_packet.dat.mixes'")
sets = system("grep -c '^\"' '$out/classbench.dat'")
plot for [i=0:mixes-1] "$out/per_packet.dat.mixes" index i using 1:2 with linespoints lw 2 lc i+1 dt 1 title columnheader(1).", hit", \
     for [i=0:mixes-1] "$out/per_packet.dat.mixes" index i using 1:3 with linespoints lw 1 lc i+1 dt 2 title columnheader(1).", miss", \
     for [i=0:sets-1] "$out/classbench.dat" index i using 1:2 with linespoints lw 3 lc i+6 pt 7 title columnheader(1).", mean"
PLOT
fi
plot=", $out/per_packet.png, $out/per_packet_mixes.png"
[[ -n $quick ]] && plot=
into=()
[[ -z $quick ]] && into=(--into docs/BENCHMARKS.md)
python3 bench/headline.py "$csv" "$(date -u +%F)" "${into[@]}" >"$out/headline.md"
echo "results: $out/report.md, $out/headline.md, $out/results.csv$plot ($((SECONDS - start)) s)"
