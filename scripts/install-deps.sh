#!/usr/bin/env bash
# Installs everything xdpfw needs to build, test and run on Debian 12
# (run as root). Debian packages only; nothing else is downloaded.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(
  build-essential cmake pkg-config
  clang libbpf-dev bpftool linux-libc-dev
  libclang-rt-14-dev  # ASan, UBSan, libFuzzer runtimes (only recommended by clang)
  libboost-dev libboost-program-options-dev libboost-test-dev
  libnl-3-dev libnl-route-3-dev nlohmann-json3-dev
  iproute2 socat ethtool
  nftables gnuplot-nox  # bench/: the nftables baseline and the plot
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The BPF filesystem, for pinned maps and links (not mounted at boot here).
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
