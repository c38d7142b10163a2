#!/usr/bin/env bash
# Installs what xdpfw needs on Debian 12 (run as root). Debian packages only;
# nothing else is downloaded.
#   bash scripts/install-deps.sh           build and run the agent (scripts/run.sh)
#   bash scripts/install-deps.sh --test    also every test and benchmark (scripts/test.sh)
#   bash scripts/install-deps.sh --list-test   the test-only packages, a line each
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# Building and running the agent.
run_pkgs=(
  build-essential cmake pkg-config
  clang libbpf-dev bpftool linux-libc-dev
  libboost-dev libboost-program-options-dev
  libnl-3-dev libnl-route-3-dev nlohmann-json3-dev
  nftables  # the agent runs nft to turn on connection tracking for ct rules
)
# The tests and benchmarks, on top.
test_pkgs=(
  libboost-test-dev
  libclang-rt-14-dev  # ASan, UBSan, libFuzzer runtimes (only recommended by clang)
  # the .deb (cpack; dpkg-shlibdeps comes with build-essential's dpkg-dev) and
  # tests/package: lintian, man --warnings, logrotate, systemd-analyze, strace
  lintian man-db logrotate systemd file adduser strace
  iproute2 socat ethtool
  gnuplot-nox  # bench/: the plot
  prometheus curl  # metrics tests: promtool, a server of their own, an HTTP client
  fail2ban  # address set tests: a private fail2ban-server of their own
  # deploy/ tests: the manifests validated (jsonschema, yaml), the pod run
  # with the DaemonSet's capabilities (capsh shows them), the Ansible role
  # (its apt module needs python3-apt, or tries to download it)
  ansible-core python3-apt python3-jsonschema python3-yaml libcap2-bin
)
# kubectl kustomize renders deploy/kubernetes: Debian's kubernetes-client,
# unless a kubectl is there already (another vendor's package conflicts with
# it; the manifests render the same with both, tested with 1.20 and 1.32).
command -v kubectl >/dev/null || test_pkgs+=(kubernetes-client)
case "${1:-}" in
  "") pkgs=("${run_pkgs[@]}") ;;
  --test) pkgs=("${run_pkgs[@]}" "${test_pkgs[@]}") ;;
  --list-test) printf '%s\n' "${test_pkgs[@]}"; exit 0 ;;
  *) echo "usage: install-deps.sh [--test | --list-test]" >&2; exit 2 ;;
esac
# prometheus, fail2ban: their services are neither started nor enabled here
# (the tests run their own instances). Without a policy-rc.d (Docker's refuses
# every start) one refusing them is in place while this script runs.
new_daemons=()
if [[ ${1:-} == --test ]]; then
  for d in prometheus fail2ban; do
    dpkg-query -W -f='${Status}' "$d" 2>/dev/null | grep -q "install ok installed" ||
      new_daemons+=("$d")
  done
fi
if ((${#new_daemons[@]})) && [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\n# xdpfw install-deps.sh: no prometheus or fail2ban daemon\nfor a; do case "$a" in prometheus|fail2ban) exit 101;; esac; done\nexit 0\n' \
    >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
for d in "${new_daemons[@]}"; do
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now "$d.service" >/dev/null 2>&1 || true
  else
    # No systemd running: stop only what the init script may have started
    # (its pid file), then keep it from starting at boot either way.
    if [[ -x /etc/init.d/$d ]] && "/etc/init.d/$d" status >/dev/null 2>&1; then
      "/etc/init.d/$d" stop >/dev/null || true
    fi
    update-rc.d "$d" disable >/dev/null 2>&1 || true
    systemctl disable "$d.service" >/dev/null 2>&1 || true
  fi
done
# The BPF filesystem, for pinned maps and links (not mounted at boot here).
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
