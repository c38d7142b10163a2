#!/usr/bin/env bash
# Installs, builds, and starts the agent in the foreground with the default
# config (conf/xdpfw.conf): control socket /run/xdpfw/xdpfw.sock.
#   echo help | socat - UNIX-CONNECT:/run/xdpfw/xdpfw.sock
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
plugins=()
# The firewall plugin, once it is built (libxdpfw.so).
[[ -f build/plugin/libxdpfw.so ]] && plugins=(--plugin build/plugin/libxdpfw.so)
exec build/host/xdpfw-host --config conf/xdpfw.conf "${plugins[@]}"
