#!/usr/bin/env bash
# Installs, builds and runs every test (as root: the datapath tests load BPF).
#   bash scripts/test.sh            all labels
#   bash scripts/test.sh -L unit    passed through to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure "$@"
