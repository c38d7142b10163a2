# Sourced by the shell tests that install the package (package/, deploy/):
# a throwaway root, its processes, the veth pair the agent attaches to.
#
# A throwaway root: an overlayfs over / whose upper layer is a tmpfs, with a
# fresh /run, /tmp and bpffs, in the caller's private mount namespace
# (unshare --mount --propagation private), so that nothing reaches the real
# root and every mount goes with the namespace.

# throwaway_root DIR: mounts the root at DIR/root (DIR: an empty folder).
# /run is fresh: the real /run may hold a real agent's socket. bpffs is a new
# instance, so pins made there are the root's own. No service is ever started
# in it (policy-rc.d; there is no systemd in the root either: /run is empty),
# whatever maintainer scripts ask. A package xdpfw the machine may have is
# purged from the overlay, and its files removed there.
throwaway_root() {
  local d=$1 r=$1/root
  mount -t tmpfs -o mode=0755 xdpfw-root "$d"
  mkdir "$d/upper" "$d/work" "$r"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$d/upper,workdir=$d/work" "$r"
  mount -t tmpfs -o mode=0755 tmpfs "$r/run"
  mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
  mount -t proc proc "$r/proc"
  mount --bind /sys "$r/sys"
  mount -t bpf -o mode=0700 bpf "$r/sys/fs/bpf"
  mount --bind /dev "$r/dev"
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
  chmod 755 "$r/usr/sbin/policy-rc.d"
  if chroot "$r" dpkg-query -W -f='${Status}' xdpfw 2>/dev/null | grep -q ' installed'; then
    DEBIAN_FRONTEND=noninteractive chroot "$r" dpkg --purge xdpfw >/dev/null
  fi
  rm -rf "$r/etc/xdpfw" "$r/var/lib/xdpfw" "$r/var/log/xdpfw" "$r/etc/logrotate.d/xdpfw"
}

# root_pids ROOT: every process whose root is ROOT (or a folder under it).
root_pids() {
  local p root
  for p in /proc/[0-9]*; do
    root=$(readlink "$p/root" 2>/dev/null) || continue
    [[ $root == "$1" || $root == "$1"/* ]] && echo "${p#/proc/}"
  done
  return 0
}

# stop_root_pids ROOT: SIGTERM to those processes, SIGKILL after 5 s, then
# unmounts everything under ROOT's folder, innermost first.
stop_root_pids() {
  local pids
  pids=$(root_pids "$1")
  if [[ -n $pids ]]; then
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 50); do [[ -z $(root_pids "$1") ]] && break; sleep 0.1; done
    pids=$(root_pids "$1")
    [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
  fi
  umount -R "$(dirname "$1")" 2>/dev/null || true
}

# remove_stale_netns PREFIX: network namespaces PREFIXPID-NAME of earlier
# runs whose process PID is gone (killed before their cleanup), with what
# still runs in them.
remove_stale_netns() {
  local ns pid p
  for ns in $(ip netns list 2>/dev/null | grep -o "^$1[0-9]*-[a-z]*"); do
    pid=${ns#"$1"}
    pid=${pid%%-*}
    if ! kill -0 "$pid" 2>/dev/null; then
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
      ip netns delete "$ns" 2>/dev/null || true
    fi
  done
}

# veth_pair NS_FW FW_IF NS_PEER PEER_IF: two new network namespaces joined by
# a veth pair, 198.18.0.1/24 on FW_IF and 198.18.0.2/24 on PEER_IF, loopback
# up in both, and the firewall's address resolved permanently on the peer's
# side (a dropped ARP reply then cannot hide a verdict).
veth_pair() {
  local mac
  ip netns add "$1"
  ip netns add "$3"
  ip -n "$1" link set lo up
  ip -n "$3" link set lo up
  ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
  ip -n "$1" addr add 198.18.0.1/24 dev "$2"
  ip -n "$3" addr add 198.18.0.2/24 dev "$4"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
  mac=$(ip -n "$1" -o link show dev "$2" | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
  ip -n "$3" neigh replace 198.18.0.1 lladdr "$mac" dev "$4" nud permanent
}
