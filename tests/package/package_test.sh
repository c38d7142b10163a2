#!/usr/bin/env bash
# The Debian package, end to end (ctest -L package; root):
#   1. cpack builds the .deb from the build tree; its file list, control
#      fields, conffiles and changelog are checked; lintian reports no error.
#   2. It is installed with dpkg inside a throwaway root: a mount namespace
#      of its own, an overlayfs over / whose upper layer is a tmpfs, fresh
#      /run and bpffs. Nothing reaches the real root (checked at the end).
#      The test-only packages (scripts/install-deps.sh --list-test) are
#      purged from that root first: the package must need none of them.
#   3. The unit passes systemd-analyze verify and security (offline).
#   4. The installed agent runs from its installed paths with the installed
#      config (only `interfaces` and `persistent` set) in a network
#      namespace: it attaches to a veth, a rule added with the installed
#      xdpfw-ctl drops UDP from the peer namespace while other traffic passes
#      (counted, logged), a ct rule makes the agent run nft for its table,
#      reload answers, logrotate rotates and the agent reopens its log.
#   5. The same .deb again (the upgrade path: maintainer scripts run); the
#      agent's system calls and nft's (they ran under strace) against the
#      unit's SystemCallFilter; a restart that resumes the rules; then dpkg
#      --purge in the agent's network namespace: the pins (so the persistent
#      XDP link), the state, the logs, the config and the ct table are gone.
# Everything it creates (namespaces, mounts, processes, temp dirs) goes at
# the end, also on failure. Addresses from 198.18.0.0/15 only.
#
#   bash tests/package/package_test.sh BUILD_DIR
#   XDPFW_PKG_TEST_XTRACE=/tmp/x.log bash ...   also traces the inner part there
# No pipefail: `cmd | grep -q` must not fail when grep stops reading early.
set -eu

if [[ ${1:-} == --inner ]]; then
  inner=1
else
  inner=
  build=$(cd "${1:?usage: package_test.sh BUILD_DIR}" && pwd)
fi

# shellcheck source=../support/shell_rig.sh
source "$(dirname "$0")/../support/shell_rig.sh"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "== $*"; }

# systemd-analyze security's overall exposure the unit must stay at or
# under, in tenths (2.0; docs/SECURITY.md has the score).
max_exposure_tenths=20

###########################################################################
# The inner part: runs in a private mount namespace (unshare -m), with T,
# DEB, NS_FW, NS_PEER and VERSION from the outer part.
###########################################################################
if [[ -n $inner ]]; then
  if [[ -n ${XDPFW_PKG_TEST_XTRACE:-} ]]; then # debugging: the inner part traced into a file
    exec 7>>"$XDPFW_PKG_TEST_XTRACE"
    BASH_XTRACEFD=7
    set -x
  fi
  R=$T/mnt/root
  agent_pid=
  agent_job=

  cleanup_inner() {
    local rc=$?
    set +e
    stop_root_pids "$R" # the agent, strace; then the mounts, innermost first
    exit "$rc"
  }
  trap cleanup_inner EXIT

  in_root() { chroot "$R" "$@"; }
  ctl() { chroot "$R" /usr/sbin/xdpfw-ctl "$@"; }

  # The throwaway root (the upper layer is a tmpfs of this namespace: it
  # cannot share a file system with the lower one, /), a first install
  # whatever this machine has.
  mkdir -p "$T/mnt"
  throwaway_root "$T/mnt"
  cp "$DEB" "$R/tmp/xdpfw.deb"
  dpkg_i() {
    DEBIAN_FRONTEND=noninteractive in_root dpkg --force-confold --force-confdef -i /tmp/xdpfw.deb
  }

  # The packages scripts/install-deps.sh installs only for the tests go from
  # the root first, so the installed agent runs on what running needs. Kept:
  # the test's own tools inside the root (strace; systemd-analyze, and man,
  # which its verify runs for the unit's Documentation=; logrotate) and
  # adduser (a Depends of the package). Their maintainer scripts are
  # removed first: a prerm would stop a daemon of the real machine.
  step "test-only packages purged from the root"
  purge=()
  for p in $TEST_ONLY; do
    case $p in strace | systemd | man-db | logrotate | adduser) continue ;; esac
    in_root dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      continue
    rm -f "$R/var/lib/dpkg/info/$p".{preinst,prerm,postinst,postrm} \
      "$R/var/lib/dpkg/info/$p":*.{preinst,prerm,postinst,postrm}
    purge+=("$p")
  done
  if ((${#purge[@]})); then
    DEBIAN_FRONTEND=noninteractive in_root dpkg --purge --force-depends --force-remove-essential \
      "${purge[@]}" >"$T/dpkg-purge.log" 2>&1 || { cat "$T/dpkg-purge.log"; fail "dpkg --purge"; }
  fi
  for p in "${purge[@]}"; do
    in_root dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q ' installed' &&
      fail "$p is still installed in the root"
  done
  echo "purged: ${purge[*]:-none}"

  step "dpkg -i (first install)"
  dpkg_i >"$T/dpkg-install.log" 2>&1 || { cat "$T/dpkg-install.log"; fail "dpkg -i"; }
  in_root dpkg-query -W -f='${Status} ${Version}\n' xdpfw | grep -q '^install ok installed ' ||
    fail "xdpfw is not installed after dpkg -i"
  in_root getent group xdpfw >/dev/null || fail "postinst did not create the group xdpfw"
  for f in /usr/sbin/xdpfw-host /usr/sbin/xdpfw-ctl /usr/lib/xdpfw/libxdpfw.so \
    /etc/xdpfw/xdpfw.conf /etc/xdpfw/rules.conf /lib/systemd/system/xdpfw.service; do
    [[ -e $R$f ]] || fail "$f is missing after dpkg -i"
  done
  # Enabled for the next boot (deb-systemd-helper), not started (no systemd).
  if in_root sh -c 'command -v deb-systemd-helper' >/dev/null; then
    [[ -L $R/etc/systemd/system/multi-user.target.wants/xdpfw.service ]] ||
      fail "postinst did not enable xdpfw.service"
  fi

  step "installed files: versions, the shipped config, man pages, completion"
  in_root /usr/sbin/xdpfw-host --version | grep -q "^xdpfw-host $VERSION " ||
    fail "xdpfw-host --version: $(in_root /usr/sbin/xdpfw-host --version)"
  [[ $(ctl --version) == "xdpfw-ctl $VERSION" ]] || fail "xdpfw-ctl --version: $(ctl --version)"
  # The shipped config, unchanged, with the installed plugin and rules file.
  out=$(in_root /usr/sbin/xdpfw-host --check-config --config /etc/xdpfw/xdpfw.conf 2>&1) ||
    fail "--check-config with the shipped config: $out"
  grep -q '^config ok$' <<<"$out" || fail "--check-config: $out"
  grep -q '^plugin xdpfw (/usr/lib/xdpfw/libxdpfw.so): ok$' <<<"$out" ||
    fail "--check-config did not load the installed plugin: $out"
  grep -q '^interfaces' "$R/etc/xdpfw/xdpfw.conf" && fail "the shipped config names interfaces"
  for page in man8/xdpfw-host.8 man8/xdpfw-ctl.8 man5/xdpfw.conf.5; do
    warn=$(MANWIDTH=80 man --warnings -l "$R/usr/share/man/$page.gz" 2>&1 >/dev/null) ||
      fail "man $page: $warn"
    [[ -z $warn ]] || fail "man $page warns: $warn"
  done
  # The installed completion, in the root, answered by the installed
  # xdpfw-ctl: its commands, and each command's options, are the ones the
  # usage text and the usage errors name.
  complete_in_root() {
    in_root bash -c 'source /usr/share/bash-completion/completions/xdpfw-ctl
      COMP_WORDS=(xdpfw-ctl "$@"); COMP_CWORD=$#; _xdpfw_ctl xdpfw-ctl; echo "${COMPREPLY[*]}"' _ "$@"
  }
  comp=$(complete_in_root re)
  [[ $comp == "replace reload" ]] || fail "bash completion of 're': '$comp'"
  comp=$(complete_in_root "")
  names=$({ ctl no-such-command 2>&1 || true; } | sed -n "s/.*is not a command (expected \(.*\))$/\1/p")
  [[ -n $names && $comp == "${names//, / }" ]] ||
    fail "bash completion offers '$comp', xdpfw-ctl has '$names'"
  for cmd in ${names//,/}; do
    # The options in the command's usage lines (the text before the
    # description; add's continues on lines of its own).
    want=$(ctl --help | awk -v c="$cmd" '
      /^  [^ ]/ { on = ($1 == c); if (on) { split($0, p, /   +/); print p[1] } ; next }
      /^      \[/ { if (on) print; next }
      { on = 0 }' | grep -o -- '--[a-z-]*' | sort -u | tr '\n' ' ')
    got=$(complete_in_root "$cmd" -- | tr ' ' '\n' | grep -v -x -e --socket -e --help -e --version |
      sort -u | tr '\n' ' ')
    [[ $got == "$want" ]] || fail "bash completion of '$cmd --' offers '$got', its usage names '$want'"
  done
  comp=$(complete_in_root add --tcp-flags syn,!a)
  [[ $comp == "syn,!ack" ]] || fail "bash completion of 'add --tcp-flags syn,!a': '$comp'"

  step "systemd-analyze verify and security on the installed unit"
  if in_root sh -c 'command -v systemd-analyze' >/dev/null; then
    out=$(in_root systemd-analyze verify /lib/systemd/system/xdpfw.service 2>&1) ||
      fail "systemd-analyze verify: $out"
    [[ -z $out ]] || fail "systemd-analyze verify is not clean: $out"
    out=$(in_root systemd-analyze security --offline=true --threshold=$max_exposure_tenths \
      /lib/systemd/system/xdpfw.service 2>&1) || {
      echo "$out" | tail -40
      fail "systemd-analyze security: exposure above $max_exposure_tenths tenths"
    }
    echo "$out" | grep 'Overall exposure level'
  else
    echo "systemd-analyze is not installed: unit not verified (install-deps.sh installs systemd)"
  fi

  step "the installed agent with the installed config, in $NS_FW"
  conf=$R/etc/xdpfw/xdpfw.conf
  sed -i -e 's/^# interfaces = .*/interfaces = pkgfw0/' -e 's/^persistent = no$/persistent = yes/' \
    "$conf"
  grep -q '^interfaces = pkgfw0$' "$conf" && grep -q '^persistent = yes$' "$conf" ||
    fail "could not set interfaces and persistent in the installed config"
  # start_agent [trace]: with trace, under strace (every system call it makes
  # is then checked against the unit's SystemCallFilter).
  start_agent() {
    local pre=()
    [[ ${1:-} == trace ]] && pre=(strace -f -qq -o /tmp/agent.trace)
    # nsenter, not ip netns exec: the agent stays in this mount namespace.
    nsenter --net="/run/netns/$NS_FW" chroot "$R" "${pre[@]}" /usr/sbin/xdpfw-host \
      --config /etc/xdpfw/xdpfw.conf >>"$T/agent.log" 2>&1 &
    agent_job=$!
    agent_pid=$agent_job
    if ((${#pre[@]})); then # the agent is strace's child
      agent_pid=
      for _ in $(seq 100); do
        agent_pid=$(pgrep -P "$agent_job" -x xdpfw-host | head -1)
        [[ -n $agent_pid ]] && break
        sleep 0.05
      done
      [[ -n $agent_pid ]] || fail "strace started no agent"
    fi
    echo "$agent_pid" >"$T/agent.pid"
    for _ in $(seq 200); do
      ctl interfaces >/dev/null 2>&1 && return 0
      kill -0 "$agent_pid" 2>/dev/null || break
      sleep 0.1
    done
    cat "$T/agent.log"
    fail "the agent did not come up"
  }
  stop_agent() {
    kill -TERM "$agent_pid"
    for _ in $(seq 100); do kill -0 "$agent_job" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$agent_job" 2>/dev/null && fail "the agent did not stop on SIGTERM"
    wait "$agent_job" || { cat "$T/agent.log"; fail "the agent exited with an error"; }
    agent_pid=
  }
  trace=
  if command -v strace >/dev/null; then
    trace=trace
  else
    echo "strace is not installed: the agent's system calls are not checked"
  fi
  start_agent $trace
  grep -q 'loaded plugin xdpfw .* from /usr/lib/xdpfw/libxdpfw.so' "$T/agent.log" || { cat "$T/agent.log"; fail "the plugin is not loaded"; }
  for _ in $(seq 100); do
    ip -n "$NS_FW" -d link show dev pkgfw0 | grep -q 'prog/xdp id' && break
    sleep 0.1
  done
  ip -n "$NS_FW" -d link show dev pkgfw0 | grep -q 'prog/xdp id' ||
    { ctl interfaces; fail "no XDP program on pkgfw0"; }
  ctl interfaces | grep -q '^pkgfw0 .* attached yes ' || { ctl interfaces; fail "not attached"; }
  # The control socket, as the shipped config says: group xdpfw, 0660.
  sock=$(in_root stat -c '%a %U:%G' /run/xdpfw/xdpfw.sock)
  [[ $sock == "660 root:xdpfw" ]] || fail "socket: $sock (expected 660 root:xdpfw)"

  step "a drop rule from the installed xdpfw-ctl; traffic from $NS_PEER"
  out=$(ctl add --proto udp --dport 7777 --action drop)
  [[ $out == "id 1" ]] || fail "xdpfw-ctl add: $out"
  # Receivers on both ports for 20 s at most; the peer knows the MAC
  # (no ARP: every datagram is one frame through XDP).
  : >"$T/recv7777"
  : >"$T/recv7001"
  ip netns exec "$NS_FW" timeout 20 socat -u UDP-RECV:7777,bind=198.18.0.1 OPEN:"$T/recv7777",append &
  r1=$!
  ip netns exec "$NS_FW" timeout 20 socat -u UDP-RECV:7001,bind=198.18.0.1 OPEN:"$T/recv7001",append &
  r2=$!
  for port in 7777 7001; do # until both receivers are bound
    for _ in $(seq 200); do
      ip netns exec "$NS_FW" ss -Hlun "sport = :$port" | grep -q . && break
      sleep 0.05
    done
  done
  for i in 1 2 3 4 5; do
    echo "drop-me-$i" | ip netns exec "$NS_PEER" socat -u - UDP-SENDTO:198.18.0.1:7777,sourceport=40000
  done
  for i in 1 2 3; do
    echo "pass-me-$i" | ip netns exec "$NS_PEER" socat -u - UDP-SENDTO:198.18.0.1:7001,sourceport=40001
  done
  for _ in $(seq 100); do
    [[ $(grep -c pass-me "$T/recv7001") == 3 ]] && break
    sleep 0.1
  done
  kill "$r1" "$r2" 2>/dev/null || true
  wait "$r1" "$r2" 2>/dev/null || true
  [[ $(grep -c pass-me "$T/recv7001") == 3 ]] || fail "the datagrams to 7001 did not all arrive"
  [[ ! -s $T/recv7777 ]] || fail "datagrams to 7777 arrived: $(cat "$T/recv7777")"
  stats=$(ctl stats --json)
  grep -q '"match_drop":5[,}]' <<<"$stats" || fail "match_drop is not 5: $stats"
  ctl list | grep -q '^id 1 .*action drop packets 5 ' || { ctl list; fail "rule 1 did not count 5"; }
  # The unmatched datagrams, logged as JSON lines.
  log=$R/var/log/xdpfw/firewall_log.json
  for _ in $(seq 100); do
    [[ $(grep -c '"dst_port":7001' "$log" 2>/dev/null) == 3 ]] && break
    sleep 0.1
  done
  [[ $(grep -c '"dst_port":7001' "$log" 2>/dev/null) == 3 ]] || fail "the event log lacks the datagrams to 7001"

  step "a ct rule: the agent turns on connection tracking in $NS_FW (nft, traced too)"
  if grep -q 'ct rules cannot be used' "$T/agent.log"; then
    echo "this kernel offers no ct: not tried ($(grep 'ct rules cannot be used' "$T/agent.log"))"
  else
    out=$(ctl add --proto tcp --dport 7003 --ct established --action pass)
    [[ $out == "id 2" ]] || fail "xdpfw-ctl add (ct): $out"
    ip netns exec "$NS_FW" nft list table inet xdpfw_conntrack | grep -q 'ct state invalid' ||
      fail "no table inet xdpfw_conntrack in $NS_FW after a ct rule"
  fi

  step "save into /etc/xdpfw/rules.conf; reload: applied, then refused"
  out=$(ctl save) || fail "xdpfw-ctl save: $out"
  grep -q '^[^#]*dport 7777 action drop' "$R/etc/xdpfw/rules.conf" ||
    fail "save did not write the rule to /etc/xdpfw/rules.conf"
  # reload re-applies the rules file: the saved rule stays.
  out=$(ctl reload) || fail "xdpfw-ctl reload: $out"
  grep -q '^reloaded /etc/xdpfw/xdpfw.conf$' <<<"$out" || fail "reload answered: $out"
  ctl list | grep -q 'dport 7777 action drop' || { ctl list; fail "the rule is gone after reload"; }
  cp "$R/etc/xdpfw/rules.conf" "$T/rules.good"
  echo 'proto udp dport 90-80 action drop' >>"$R/etc/xdpfw/rules.conf"
  rc=0
  out=$(ctl reload 2>&1) || rc=$?
  ((rc == 1)) || fail "a refused reload: xdpfw-ctl exited $rc (systemctl reload must fail): $out"
  grep -q 'reload refused' <<<"$out" || fail "refused reload answered: $out"
  cp "$T/rules.good" "$R/etc/xdpfw/rules.conf"

  if in_root sh -c 'command -v logrotate' >/dev/null; then
    step "logrotate with /etc/logrotate.d/xdpfw: the agent reopens its log"
    in_root logrotate -f /etc/logrotate.d/xdpfw >"$T/logrotate.log" 2>&1 ||
      { cat "$T/logrotate.log"; fail "logrotate"; }
    [[ -s $log.1 ]] || fail "logrotate did not rotate $log"
    echo "after-rotate" | ip netns exec "$NS_PEER" socat -u - UDP-SENDTO:198.18.0.1:7002,sourceport=40002
    for _ in $(seq 100); do
      grep -q '"dst_port":7002' "$log" 2>/dev/null && break
      sleep 0.1
    done
    grep -q '"dst_port":7002' "$log" 2>/dev/null || fail "no new log file after the rotation"
    ctl stats | grep -q '^log_reopens [1-9]' || fail "the agent did not reopen its log"
  else
    echo "logrotate is not installed: rotation not tried"
  fi

  step "dpkg -i again (upgrade path), the agent running"
  dpkg_i >"$T/dpkg-upgrade.log" 2>&1 || { cat "$T/dpkg-upgrade.log"; fail "dpkg -i (again)"; }
  grep -q '^interfaces = pkgfw0$' "$conf" || fail "the upgrade replaced the edited conffile"
  grep -q 'dport 7777 action drop' "$R/etc/xdpfw/rules.conf" ||
    fail "the upgrade replaced the saved rules file"
  before=$(ctl list)
  grep -q 'dport 7777 action drop' <<<"$before" || fail "the agent lost its rule: $before"

  step "stop (persistent: XDP stays), restart: rules and counters resumed"
  stop_agent
  if [[ -n $trace ]]; then
    # Every call the agent made is one the unit's filter allows; it wrote
    # nothing under /proc or /sys but its pins, and opened nothing in /dev
    # (PrivateDevices), mounted nothing (no @mount), used no IP socket.
    filter=$(sed -n 's/^SystemCallFilter=//p' "$R/lib/systemd/system/xdpfw.service")
    [[ -n $filter ]] || fail "the unit has no SystemCallFilter"
    expand() {
      local w
      for w in "$@"; do
        if [[ $w == @* ]]; then
          expand $(systemd-analyze syscall-filter "$w" 2>/dev/null | sed -n '2,$p' |
            sed 's/^ *//; /^#/d; /^$/d')
        else
          echo "$w"
        fi
      done
    }
    expand $filter | sort -u >"$T/allowed"
    sed -E 's/^[0-9]+ +//' "$R/tmp/agent.trace" | grep -oE '^[a-z_0-9]+\(' | tr -d '(' |
      sort -u >"$T/used"
    extra=$(comm -23 "$T/used" "$T/allowed")
    [[ -z $extra ]] || fail "the agent made system calls SystemCallFilter refuses: $extra"
    writes=$(grep -E '"/(proc|sys)/' "$R/tmp/agent.trace" |
      grep -E 'O_WRONLY|O_RDWR|O_CREAT|mkdir|unlink|rename' | grep -v '"/sys/fs/bpf/' |
      grep -v '= -1 EEXIST' || true) # (mkdir of the folders above the pins: they exist)
    [[ -z $writes ]] || fail "the agent wrote under /proc or /sys: $writes"
    # (/dev/null: nft's output, when a ct rule runs it; PrivateDevices keeps it)
    devs=$(grep -E '"/dev/' "$R/tmp/agent.trace" | grep -v '"/dev/null"' || true)
    [[ -z $devs ]] || fail "the agent opened files in /dev: $devs"
    inet=$(grep -E 'socket\(AF_INET' "$R/tmp/agent.trace" || true)
    [[ -z $inet ]] || fail "the agent opened IP sockets: $inet"
    echo "$(wc -l <"$T/used") distinct system calls, all in SystemCallFilter=$filter"
  fi
  ip -n "$NS_FW" -d link show dev pkgfw0 | grep -q 'prog/xdp id' ||
    fail "persistent = yes, yet XDP left pkgfw0 when the agent stopped"
  [[ -d $R/sys/fs/bpf/xdpfw/links && -d $R/sys/fs/bpf/xdpfw/maps ]] || fail "no pins"
  [[ -e $R/var/lib/xdpfw/rules.state ]] || fail "no state in /var/lib/xdpfw"
  start_agent
  after=$(ctl list)
  [[ $after == "$before" ]] || fail "not resumed: before the restart: $before; after: $after"
  stop_agent

  step "dpkg --purge: pins (and so XDP), state, logs, config, the ct table gone"
  # In the agent's network namespace, as on a host where both are the root one.
  DEBIAN_FRONTEND=noninteractive nsenter --net="/run/netns/$NS_FW" chroot "$R" \
    dpkg --purge xdpfw >"$T/dpkg-purge.log" 2>&1 || { cat "$T/dpkg-purge.log"; fail "dpkg --purge"; }
  ip netns exec "$NS_FW" nft list table inet xdpfw_conntrack >/dev/null 2>&1 &&
    fail "the table inet xdpfw_conntrack is still in $NS_FW after the purge"
  for p in /sys/fs/bpf/xdpfw /var/lib/xdpfw /var/log/xdpfw /etc/xdpfw /run/xdpfw \
    /etc/logrotate.d/xdpfw /usr/sbin/xdpfw-host /usr/lib/xdpfw \
    /etc/systemd/system/multi-user.target.wants/xdpfw.service; do
    [[ ! -e $R$p ]] || fail "$p is still there after the purge"
  done
  ip -n "$NS_FW" -d link show dev pkgfw0 | grep -q 'prog/xdp' &&
    fail "XDP is still attached to pkgfw0 after the purge"
  if in_root dpkg-query -W -f='${Status}' xdpfw 2>/dev/null | grep -q ' installed'; then
    fail "xdpfw is still installed"
  fi
  exit 0
fi

###########################################################################
# The outer part.
###########################################################################
((EUID == 0)) || fail "run as root (dpkg, mount namespaces, network namespaces, XDP)"
for c in cpack dpkg-deb lintian unshare ip socat chroot; do
  command -v "$c" >/dev/null || fail "$c is not installed (scripts/install-deps.sh)"
done

T=$(mktemp -d /tmp/xdpfw-pkg-XXXXXX)
chmod 755 "$T"
NS_FW=xdpfw-pkg$$-fw
NS_PEER=xdpfw-pkg$$-peer

cleanup() {
  local rc=$?
  set +e
  if [[ -f $T/agent.pid ]]; then
    pid=$(cat "$T/agent.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      sleep 1
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  ip netns delete "$NS_FW" 2>/dev/null || true
  ip netns delete "$NS_PEER" 2>/dev/null || true
  # The tmpfs is mounted only in the inner namespace: here $T/mnt is an
  # empty folder (or, if that namespace is somehow alive, left mounted).
  if ! mountpoint -q "$T/mnt" 2>/dev/null; then
    rm -rf "$T"
  fi
  if ((rc != 0)); then
    echo "package test failed (exit $rc)" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Namespaces of earlier runs that were killed before their cleanup.
remove_stale_netns xdpfw-pkg

# What the real root has before, to show that nothing reached it.
real_before=$( (dpkg-query -W -f='${Status} ${Version}' xdpfw 2>/dev/null || true; ls -la /etc/xdpfw /var/lib/xdpfw 2>/dev/null || true; getent group xdpfw || true) | md5sum)

VERSION=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[[ -n $VERSION ]] || fail "no CMAKE_PROJECT_VERSION in $build/CMakeCache.txt"
arch=$(dpkg --print-architecture)

step "cpack -G DEB"
(cd "$build" && cpack -G DEB -B "$T/cpack") >"$T/cpack.log" 2>&1 || { cat "$T/cpack.log"; fail "cpack"; }
DEB=$T/cpack/xdpfw_${VERSION}_$arch.deb
[[ -f $DEB ]] || { ls -la "$T/cpack"; fail "cpack made no $DEB"; }

step "the package: control fields, conffiles, changelog, file list"
field() { dpkg-deb -f "$DEB" "$1"; }
[[ $(field Package) == xdpfw ]] || fail "Package: $(field Package)"
[[ $(field Version) == "$VERSION" ]] || fail "Version: $(field Version) (project: $VERSION)"
[[ $(field Section) == net ]] || fail "Section: $(field Section)"
[[ $(field Architecture) == "$arch" ]] || fail "Architecture: $(field Architecture)"
depends=$(field Depends)
for d in adduser libbpf1 libnl-3-200 libnl-route-3-200 libboost-program-options libc6 libstdc++6; do
  [[ $depends == *"$d"* ]] || fail "Depends lacks $d: $depends"
done
[[ $(field Recommends) == *nftables* ]] || fail "Recommends lacks nftables (ct rules): $(field Recommends)"
mkdir "$T/control"
dpkg-deb -e "$DEB" "$T/control"
diff <(sort "$T/control/conffiles") <(printf '%s\n' /etc/logrotate.d/xdpfw /etc/xdpfw/rules.conf \
  /etc/xdpfw/xdpfw.conf) || fail "conffiles"
for s in postinst prerm postrm; do
  [[ -x $T/control/$s ]] || fail "maintainer script $s missing or not executable"
  sh -n "$T/control/$s" || fail "$s: syntax"
done
dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|' >"$T/files"
expected=(
  /usr/sbin/xdpfw-host /usr/sbin/xdpfw-ctl /usr/lib/xdpfw/libxdpfw.so
  /usr/include/xdpfw/xdpfw_plugin.h
  /etc/xdpfw/xdpfw.conf /etc/xdpfw/rules.conf /etc/logrotate.d/xdpfw
  /lib/systemd/system/xdpfw.service
  /usr/share/man/man8/xdpfw-host.8.gz /usr/share/man/man8/xdpfw-ctl.8.gz
  /usr/share/man/man5/xdpfw.conf.5.gz
  /usr/share/bash-completion/completions/xdpfw-ctl
  /usr/share/doc/xdpfw/copyright /usr/share/doc/xdpfw/changelog.gz
  /usr/share/doc/xdpfw/README.md /usr/share/doc/xdpfw/examples/rules.example
)
src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")
for md in "$src"/docs/*.md; do expected+=("/usr/share/doc/xdpfw/$(basename "$md")"); done
for f in "${expected[@]}"; do
  grep -qx "$f" "$T/files" || fail "the package lacks $f"
done
# Nothing else: every file under one of these folders, none from the tests.
if grep -v '/$' "$T/files" | grep -Ev '^/(usr/sbin/xdpfw-(host|ctl)|usr/lib/xdpfw/|usr/include/xdpfw/|etc/xdpfw/|etc/logrotate.d/xdpfw$|lib/systemd/system/xdpfw.service$|usr/share/(man|doc/xdpfw|bash-completion)/)'; then
  fail "the package holds files it should not (above)"
fi
first=$(dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/share/doc/xdpfw/changelog.gz | gunzip |
  sed -n 1p)
[[ $first == "xdpfw ($VERSION) "* ]] ||
  fail "packaging/deb/changelog's first entry is not version $VERSION: $first"
mkdir "$T/x"
dpkg-deb -x "$DEB" "$T/x"
# The man pages name this version (docs/man/*: .TH ... "xdpfw VERSION").
for page in "$T"/x/usr/share/man/man*/*.gz; do
  zcat "$page" | grep -q "^\.TH .* \"xdpfw $VERSION\" " ||
    fail "$(basename "$page"): its .TH line does not name xdpfw $VERSION"
done
# Stripped binaries, with full RELRO (XDPFW_HARDENING).
for b in usr/sbin/xdpfw-host usr/sbin/xdpfw-ctl usr/lib/xdpfw/libxdpfw.so; do
  file "$T/x/$b" | grep -q 'stripped' && ! file "$T/x/$b" | grep -q 'not stripped' ||
    fail "$b is not stripped"
  readelf -lW "$T/x/$b" | grep -q GNU_RELRO && readelf -dW "$T/x/$b" | grep -q 'FLAGS.*BIND_NOW' ||
    fail "$b is not linked with -z relro -z now"
done
dpkg-deb -c "$DEB" | sed -n 's|^\([-dlrwx]*\) \([^ ]*\) .* \./\(.*\)$|\1 \2 \3|p' |
  awk '$2 != "root/root" {print; bad=1} END {exit bad}' || fail "files not owned by root/root (above)"

step "lintian"
lintian --tag-display-limit 0 --display-info "$DEB" >"$T/lintian.log" 2>&1 || true
cat "$T/lintian.log"
if grep -q '^E: ' "$T/lintian.log"; then
  fail "lintian reports errors"
fi

step "network namespaces $NS_FW and $NS_PEER, a veth pair"
veth_pair "$NS_FW" pkgfw0 "$NS_PEER" pkgpeer0

# The test-only packages (scripts/install-deps.sh --list-test), for the inner part.
TEST_ONLY=$(bash "$src/scripts/install-deps.sh" --list-test) || fail "install-deps.sh --list-test"
T=$T DEB=$DEB NS_FW=$NS_FW NS_PEER=$NS_PEER VERSION=$VERSION TEST_ONLY=$TEST_ONLY \
  unshare --mount --propagation private -- bash "$0" --inner

step "nothing reached the real root"
real_after=$( (dpkg-query -W -f='${Status} ${Version}' xdpfw 2>/dev/null || true; ls -la /etc/xdpfw /var/lib/xdpfw 2>/dev/null || true; getent group xdpfw || true) | md5sum)
[[ $real_before == "$real_after" ]] || fail "the real root changed (package, /etc/xdpfw, /var/lib/xdpfw or group xdpfw)"
echo "package test: ok"
