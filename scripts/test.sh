#!/usr/bin/env bash
# Installs, builds and runs every test (as root: the datapath tests load BPF).
#   bash scripts/test.sh            everything below
#   bash scripts/test.sh -L unit    only the normal build, these ctest arguments
# 1. The normal build (g++): every label except soak (ten minutes; run it
#    with: ctest --test-dir build -L soak).
# 2. The hardened build (clang, ASan + UBSan, libFuzzer) in build-asan: the
#    fuzz targets for their bounded time, and the suites that drive the real
#    agent (unit, datapath, control, netlink, e2e, faults, privilege) under
#    the sanitizers: any report fails them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -LE soak "$@"
if (($# == 0)); then
  CC=clang CXX=clang++ cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXDPFW_FUZZ=ON
  cmake --build build-asan -j"$(nproc)"
  ctest --test-dir build-asan --output-on-failure \
    -L 'unit|datapath|control|netlink|e2e|faults|privilege|fuzz'
fi
