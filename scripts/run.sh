#!/usr/bin/env bash
# Installs what building and running need (no test package), builds the
# agent alone (no tests, no benchmarks), and starts it in the foreground with
# the default config (conf/xdpfw.conf): control socket /run/xdpfw/xdpfw.sock.
#   echo help | socat - UNIX-CONNECT:/run/xdpfw/xdpfw.sock
# The default config is the installed one: it names /usr/lib/xdpfw/libxdpfw.so,
# /etc/xdpfw/rules.conf and the group the package creates. Here the agent
# runs from the build tree instead: the built plugin (--plugin), the source
# tree's conf/rules.conf, and the agent's own group where there is no xdpfw
# group, in build/xdpfw-run.conf (the file SIGHUP and `reload` re-read).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF -DXDPFW_BENCH=OFF
cmake --build build -j"$(nproc)"
conf=build/xdpfw-run.conf
sed "s|^rules = /etc/xdpfw/rules.conf$|rules = $PWD/conf/rules.conf|" conf/xdpfw.conf >"$conf"
getent group xdpfw >/dev/null || sed -i 's|^socket-group = xdpfw$|# &  (no such group here)|' "$conf"
exec build/host/xdpfw-host --config "$conf" --plugin build/plugin/libxdpfw.so
