#!/usr/bin/env bash
# Installs, builds and runs every test (as root: the datapath tests load BPF).
#   bash scripts/test.sh            everything below, in about 30 minutes on 2 CPUs
#   bash scripts/test.sh --deep     the same at full size in both builds, fuzzing
#                                   10 minutes a target, and the soak (ten minutes)
#   bash scripts/test.sh -L unit    only the normal build, these ctest arguments
# 1. The normal build (g++): every label except soak, two tests at a time
#    (tests/CMakeLists.txt: what shares global state or measures time runs
#    alone). The randomised and differential checks at full size.
# 2. The hardened build (clang, ASan + UBSan, libFuzzer) in build-asan: the
#    fuzz targets for their bounded time, and the suites that drive the real
#    agent (unit, datapath, control, netlink, e2e, faults, privilege) under
#    the sanitizers: any report fails them. The randomised and differential
#    checks at CI size (tests/support/util.hpp, sized()): every case runs,
#    with fewer seeds, steps and headers. privilege.e2e_suites (stage 1's
#    suites again under the unit's capabilities) runs in stage 1 only.
# The hardened build compiles at the lowest priority while stage 1 runs,
# on the CPU time its tests leave idle. Each stage ends with its ten slowest
# tests.
set -euo pipefail
cd "$(dirname "$0")/.."
deep=
if [[ ${1:-} == --deep ]]; then
  deep=1
  shift
fi
start=$SECONDS
bash scripts/install-deps.sh --test
echo "test.sh: install took $((SECONDS - start)) s"
t0=$SECONDS
jobs=$(nproc)

# slowest LOG TITLE: the ten slowest tests of a ctest log.
slowest() {
  echo "== $2: the ten slowest tests"
  sed -n 's/^ *[0-9]*\/[0-9]* Test *#[0-9]*: \([^ ]*\) .* \([0-9.]*\) sec$/\2 \1/p' "$1" |
    sort -rn | head -10 | awk '{printf "  %8.1f s  %s\n", $1, $2}'
}

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON -DXDPFW_BENCH=ON
cmake --build build -j"$jobs"
echo "test.sh: normal build took $((SECONDS - t0)) s"

size=()
[[ -n $deep ]] && size=(XDPFW_TEST_SIZE=full)
if (($# > 0)); then
  env "${size[@]}" ctest --test-dir build --output-on-failure -j2 "$@"
  exit
fi

# The hardened build, niced, beside stage 1.
mkdir -p build-asan
asan_log=build-asan/build.log
fuzz_seconds=30
[[ -n $deep ]] && fuzz_seconds=600
CC=clang CXX=clang++ cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXDPFW_FUZZ=ON \
  -DXDPFW_FUZZ_SECONDS=$fuzz_seconds >"$asan_log"
nice -n 19 cmake --build build-asan -j"$jobs" >>"$asan_log" 2>&1 &
asan_build=$!
trap 'kill "$asan_build" 2>/dev/null || true' EXIT

t1=$SECONDS
labels=(-LE soak)
[[ -n $deep ]] && labels=()
stage1=0
env "${size[@]}" ctest --test-dir build --output-on-failure -j2 "${labels[@]}" |
  tee build/stage1.log || stage1=$?
slowest build/stage1.log "stage 1 (normal build)"
echo "test.sh: stage 1 tests took $((SECONDS - t1)) s"
if ((stage1 != 0)); then
  echo "test.sh: stage 1 failed" >&2
  exit "$stage1"
fi

t2=$SECONDS
if ! wait "$asan_build"; then
  tail -40 "$asan_log"
  echo "test.sh: the hardened build failed (full log: $asan_log)" >&2
  exit 1
fi
trap - EXIT
echo "test.sh: the hardened build finished $((SECONDS - t2)) s after stage 1"

t3=$SECONDS
stage2=0
env "${size[@]}" ctest --test-dir build-asan --output-on-failure -j2 \
  -L 'unit|datapath|control|netlink|e2e|faults|privilege|fuzz' -E '^privilege\.e2e_suites$' |
  tee build-asan/stage2.log || stage2=$?
slowest build-asan/stage2.log "stage 2 (ASan + UBSan build)"
echo "test.sh: stage 2 tests took $((SECONDS - t3)) s"
echo "test.sh: $((SECONDS - t0)) s in all, install excluded"
exit "$stage2"
