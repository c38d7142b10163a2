#!/usr/bin/env bash
# deploy/, end to end (ctest -L deploy; root). Two tests:
#
# (deploy.alerts, in CMakeLists.txt, runs promtool on deploy/prometheus.)
#
# kubernetes: `kubectl kustomize deploy/kubernetes` (offline) renders the
#   manifests; they validate against the vendored schemas (tests/deploy/
#   schemas, from Debian's python3-kubernetes) and validate.py checks what the
#   DaemonSet must be (its capabilities are conf/xdpfw.service's). Manifests
#   spoilt on purpose (a misspelt field, a wrong type, one capability more,
#   an image that starts another command) must fail. Then the pod runs without a container runtime (none can run
#   here: no image can be pulled): the package installed in a throwaway root
#   (the image), read-only, with the DaemonSet's volumes mounted where it
#   says (the node's bpffs, socket, state and log folders; the ConfigMaps laid
#   out as kubelet does, "..data" and all), its command run in a network
#   namespace of its own with only its capabilities and no_new_privs, its
#   probes run as kubelet would. Checked: the probes pass (and fail with the
#   agent down), the agent attaches and reads the ConfigMap's rules, the
#   metrics port of the annotation serves, a ConfigMap update (a kubelet-style
#   "..data" swap) reaches the datapath (UDP from a peer namespace dropped), a
#   broken update is refused and visible in the metrics, a restart of the pod
#   (a rolling update) keeps XDP attached and resumes the rules.
#
# ansible: `ansible-playbook --syntax-check`, then deploy/ansible/site.yml
#   against localhost inside a throwaway root: --check on a fresh host changes
#   nothing; a run installs the .deb, writes the config and rules.d; a second
#   run and a --check change nothing; the agent started from the installed
#   files runs the policy; a new policy (a file changed, one removed, one
#   added) is written and applied by the running agent by itself (verdicts
#   with traffic); a policy that does not compile fails the play with its
#   FILE:LINE and changes nothing.
#
# Everything it creates (namespaces, mounts, processes, temp dirs) goes at
# the end, also on failure; nothing reaches the real root (checked).
# Addresses from 198.18.0.0/15 only.
#   bash tests/deploy/deploy_test.sh BUILD_DIR kubernetes|ansible
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
# shellcheck source=../support/shell_rig.sh
source "$here/../support/shell_rig.sh"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "== $*"; }

# udp_round PORT...: 5 datagrams to each PORT from the peer namespace to
# 198.18.0.1 (each one frame through XDP: the peer knows the MAC, no ARP);
# got[PORT] is how many arrived. The receivers are waited for until bound;
# the last PORT must be one that passes: its fifth datagram, sent last,
# arriving means every earlier one was decided (one queue, in order).
declare -A got
udp_round() {
  local port pids=() i last=${!#}
  for port; do
    : >"$T/recv$port"
    ip netns exec "$NS_FW" timeout 20 socat -u UDP-RECV:"$port",bind=198.18.0.1 \
      OPEN:"$T/recv$port",append &
    pids+=($!)
  done
  for port; do
    wait_for 10 bound_udp "$port" >/dev/null || fail "no receiver bound to UDP $port"
  done
  for i in 1 2 3 4 5; do
    for port; do
      echo "to-$port-$i" | ip netns exec "$NS_PEER" socat -u - UDP-SENDTO:198.18.0.1:"$port"
    done
  done
  wait_for 10 grep -q "^to-$last-5$" "$T/recv$last" >/dev/null || true
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  for port; do got[$port]=$(grep -c "^to-$port-" "$T/recv$port" || true); done
}
# udp_verdicts DROP_PORT PASS_PORT: none of those to DROP_PORT arrive, all
# of those to PASS_PORT do.
udp_verdicts() {
  udp_round "$1" "$2"
  ((got[$2] == 5)) || fail "UDP to $2: ${got[$2]} of 5 arrived"
  ((got[$1] == 0)) || fail "UDP to $1: ${got[$1]} of 5 arrived (a drop rule is in force)"
}

# bound_udp PORT: a socket in the firewall's namespace is bound to UDP PORT.
bound_udp() { ip netns exec "$NS_FW" ss -Hlun "sport = :$1" | grep -q .; }

# wait_for SECONDS COMMAND...: until COMMAND succeeds; prints the time taken
# in ms. Fails after SECONDS.
wait_for() {
  local limit=$1 t0 now
  shift
  t0=$(date +%s%N)
  while :; do
    if "$@" >/dev/null 2>&1; then
      now=$(date +%s%N)
      echo $(((now - t0) / 1000000))
      return 0
    fi
    now=$(date +%s%N)
    (((now - t0) / 1000000000 < limit)) || return 1
    sleep 0.05
  done
}

###########################################################################
# kubernetes, the inner part (a private mount namespace): the pod.
###########################################################################
inner_kubernetes() {
  R=$T/mnt/root N=$T/mnt/node P=$T/mnt/pod
  mkdir -p "$T/mnt"
  throwaway_root "$T/mnt"
  # (the pod's processes first: their root is P, not R)
  trap 'rc=$?; set +e; stop_root_pids "$P"; stop_root_pids "$R"; exit $rc' EXIT

  step "the image: debian 12 with the package (in a throwaway root)"
  cp "$DEB" "$R/tmp/xdpfw.deb"
  DEBIAN_FRONTEND=noninteractive chroot "$R" dpkg -i /tmp/xdpfw.deb >"$T/dpkg.log" 2>&1 ||
    { cat "$T/dpkg.log"; fail "dpkg -i"; }
  rm "$R/tmp/xdpfw.deb"

  # shellcheck source=/dev/null
  source "$T/pod/pod.sh"

  # kubelet's ConfigMap volume: the data in a timestamped folder, "..data"
  # a link to it swapped atomically, a link per key to ..data/KEY.
  # publish NAME DIR: DIR's files become the ConfigMap NAME's data.
  publish() {
    local v=$N/configmaps/$1 ts old f
    mkdir -p "$v"
    ts=..$(date +%Y_%m_%d_%H_%M_%S.%N)
    mkdir "$v/$ts"
    cp "$2"/* "$v/$ts/"
    old=$(readlink "$v/..data" 2>/dev/null || true)
    ln -s "$ts" "$v/..data_tmp"
    mv -T "$v/..data_tmp" "$v/..data"
    for f in "$2"/*; do
      f=$(basename "$f")
      [[ -L $v/$f ]] || ln -s "..data/$f" "$v/$f"
    done
    for f in "$v"/*; do
      [[ -e $v/..data/$(basename "$f") ]] || rm -f "$f"
    done
    [[ -z $old ]] || rm -rf "${v:?}/$old"
  }
  mkdir -p "$T/cm/config"
  cp "$T/pod/xdpfw.conf" "$T/cm/config/"
  publish xdpfw-config "$T/cm/config"
  publish xdpfw-rules "$T/pod/rules.d"

  step "the pod: read-only root, the DaemonSet's volumes, its capabilities"
  # The image's root, and its /run (empty: the real /run shows through the
  # overlay's lower layer, and may hold a real agent's socket).
  mkdir "$P"
  mount --bind "$R" "$P"
  mount -t tmpfs -o mode=0755 tmpfs "$P/run"
  local m kind source path mode sub
  for m in "${pod_mounts[@]}"; do # the mount points (the runtime makes them)
    read -r kind source path mode sub <<<"$m"
    if [[ $sub != - ]]; then
      mkdir -p "$P$(dirname "$path")"
      [[ -e $P$path ]] || : >"$P$path"
    else
      mkdir -p "$P$path"
    fi
  done
  if [[ -n $pod_read_only_root ]]; then
    mount -o remount,bind,ro "$P"
    mount -o remount,ro "$P/run"
  fi
  mount -t proc proc "$P/proc"
  mount --bind /sys "$P/sys"
  mount -o remount,bind,ro "$P/sys"
  mount --bind /dev "$P/dev"
  for m in "${pod_mounts[@]}"; do
    read -r kind source path mode sub <<<"$m"
    if [[ $kind == hostPath ]]; then
      mkdir -p "$N$source"
      # The node's bpffs: a new instance, the node's for this test.
      [[ $source != /sys/fs/bpf ]] || mountpoint -q "$N$source" ||
        mount -t bpf -o mode=0700 bpf "$N$source"
      mount --bind "$N$source" "$P$path"
    elif [[ $sub != - ]]; then # a subPath: resolved once, at the start
      mount --bind "$(readlink -f "$N/configmaps/$source/$sub")" "$P$path"
    else
      mount --bind "$N/configmaps/$source" "$P$path"
    fi
    [[ $mode == rw ]] || mount -o remount,bind,ro "$P$path"
  done
  touch "$P/usr/xdpfw-write-test" 2>/dev/null && fail "the pod's root is writable"

  # in_pod COMMAND...: in the pod's root, network and privileges, as the
  # runtime and kubelet's exec probes run it.
  pod=(nsenter --net="/run/netns/$NS_FW" chroot "$P" setpriv --no-new-privs --inh-caps=-all
    --bounding-set="-all,$pod_caps" --)
  in_pod() { "${pod[@]}" "$@"; }
  ctl() { in_pod /usr/sbin/xdpfw-ctl --socket /run/xdpfw/xdpfw.sock "$@"; }
  local agent=
  start_pod() {
    out=$(in_pod /usr/sbin/xdpfw-host --check-config --config /etc/xdpfw/xdpfw.conf 2>&1) ||
      fail "--check-config in the pod: $out"
    "${pod[@]}" "${pod_command[@]}" >>"$T/pod.log" 2>&1 & # (each execs the next)
    agent=$!
    echo "$agent" >"$T/agent.pid"
    wait_for 20 in_pod "${pod_readiness[@]}" >/dev/null ||
      { cat "$T/pod.log"; fail "the readiness probe did not pass in 20 s"; }
    in_pod "${pod_liveness[@]}" >/dev/null || fail "the liveness probe fails"
  }
  start_pod
  sorted() { tr , '\n' | sort | paste -sd, -; }
  want=$(sorted <<<"${pod_caps//+/cap_}")
  caps=$(capsh --decode="$(awk '/^CapEff:/ {print $2}' "/proc/$agent/status")" | cut -d= -f2 | sorted)
  [[ $caps == "$want" ]] || fail "the agent's capabilities: $caps (the DaemonSet's: $want)"
  grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$agent/status" || fail "no_new_privs is not set"
  echo "the agent runs with $caps, no_new_privs, a read-only root"

  step "attached to eth0; the ConfigMap's rules; the annotated metrics port"
  ctl interfaces | grep -q '^eth0 .* attached yes ' || { ctl interfaces; fail "eth0 not attached"; }
  out=$(ctl list)
  grep -q 'dport 22 action pass .*/10-base.rules:2' <<<"$out" || fail "no rules from 10-base.rules: $out"
  grep -q '/50-web.rules:' <<<"$out" || fail "no rules from 50-web.rules: $out"
  metrics() { ip netns exec "$NS_FW" curl -sf "http://127.0.0.1:$pod_metrics_port/metrics"; }
  metrics >"$T/scrape.prom" || fail "no metrics on port $pod_metrics_port"
  # The series deploy/prometheus/xdpfw-alerts.yml watches are served.
  for name in $(grep -o 'xdpfw_[a-z_]*' "$src/deploy/prometheus/xdpfw-alerts.yml" | sort -u); do
    grep -q "^$name[{ ]" "$T/scrape.prom" || fail "the alerts use $name, which the agent does not serve"
  done

  step "a ConfigMap update (kubelet's ..data swap) reaches the datapath"
  udp_round 5000 5001
  ((got[5000] == 5 && got[5001] == 5)) || fail "before the update, UDP: ${got[*]} of 5 arrived"
  mkdir "$T/cm/rules2"
  cp "$T/pod/rules.d"/* "$T/cm/rules2/"
  echo 'proto udp dport 5000 action drop' >"$T/cm/rules2/90-block.rules"
  publish xdpfw-rules "$T/cm/rules2"
  listed() { ctl list | grep -q "$1"; }
  ms=$(wait_for 10 listed '/90-block.rules:1') ||
    { ctl list; cat "$T/pod.log"; fail "the update did not reach the agent in 10 s"; }
  echo "the update was applied $ms ms after the ..data swap"
  udp_verdicts 5000 5001

  step "a broken update is refused, the running rules stay, the metric says so"
  before=$(ctl list)
  mkdir "$T/cm/rules3"
  cp "$T/cm/rules2"/* "$T/cm/rules3/"
  echo 'proto udp dport 99999 action drop' >"$T/cm/rules3/95-broken.rules"
  publish xdpfw-rules "$T/cm/rules3"
  metric_is() { metrics | grep -qx "$1"; }
  wait_for 10 metric_is 'xdpfw_rules_source_refused 1' >/dev/null || fail "xdpfw_rules_source_refused did not become 1"
  ctl status | grep -q '^source /etc/xdpfw/rules.d: refused at .*/95-broken.rules:1: ' ||
    fail "xdpfw-ctl status does not name 95-broken.rules:1: $(ctl status)"
  [[ $(ctl list) == "$before" ]] || fail "the running rules changed after a refused update"
  udp_verdicts 5000 5001
  publish xdpfw-rules "$T/cm/rules2"
  wait_for 10 metric_is 'xdpfw_rules_source_refused 0' >/dev/null || fail "xdpfw_rules_source_refused did not go back to 0"

  step "the pod restarted (a rolling update): XDP stays attached, the rules resume"
  before=$(ctl list)
  kill -TERM "$agent"
  wait "$agent" || fail "the agent exited with $? on SIGTERM: $(tail -5 "$T/pod.log")"
  in_pod "${pod_liveness[@]}" >/dev/null 2>&1 && fail "the liveness probe passes with no agent"
  ip -n "$NS_FW" -d link show dev eth0 | grep -q 'prog/xdp id' ||
    fail "persistent = yes, yet XDP left eth0 while the pod was down"
  start_pod
  [[ $(ctl list) == "$before" ]] || fail "not resumed: before: $before; after: $(ctl list)"
  udp_verdicts 5000 5001
  # (the refusal of 95-broken.rules is the one error it should have logged)
  grep -Ei 'read-only|error' "$T/pod.log" | grep -v '/95-broken.rules:1: ' &&
    fail "the agent logged errors (above)"
  kill -TERM "$agent"
  wait "$agent" || true
  exit 0
}

###########################################################################
# ansible, the inner part: the role against localhost in a throwaway root.
###########################################################################
inner_ansible() {
  R=$T/mnt/root
  mkdir -p "$T/mnt"
  throwaway_root "$T/mnt"
  trap 'rc=$?; set +e; stop_root_pids "$R"; exit $rc' EXIT
  cp "$DEB" "$R/tmp/xdpfw.deb"
  cp -r "$src/deploy/ansible" "$R/tmp/ansible"
  : >"$R/tmp/ansible.cfg"
  # play VARS [ARGS]: the playbook in the root, its output in $T/play.log;
  # sets play_changed and play_failed from the recap. Returns its status.
  play() {
    local vars=$1 rc=0 recap
    shift
    cp "$T/$vars" "$R/tmp/vars.yml"
    chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LANG=C.UTF-8 \
      ANSIBLE_CONFIG=/tmp/ansible.cfg ANSIBLE_LOCAL_TEMP=/tmp/.ansible-local \
      ANSIBLE_REMOTE_TEMP=/tmp/.ansible-remote ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 \
      ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
      ansible-playbook -i localhost, -c local /tmp/ansible/site.yml -e @/tmp/vars.yml "$@" \
      >"$T/play.log" 2>&1 || rc=$?
    recap=$(grep -E '^localhost +: ok=' "$T/play.log") || { cat "$T/play.log"; fail "no recap"; }
    play_changed=$(grep -o 'changed=[0-9]*' <<<"$recap" | cut -d= -f2)
    play_failed=$(grep -o 'failed=[0-9]*' <<<"$recap" | cut -d= -f2)
    echo "   $vars $*: $recap"
    return "$rc"
  }
  policy() { # policy FILE NAME=TEXT...: the vars file for that policy
    local f=$1 kv
    shift
    printf 'xdpfw_deb: /tmp/xdpfw.deb\nxdpfw_service: false\nxdpfw_interfaces: eth0\n' >"$T/$f"
    printf 'xdpfw_watch_delay: 100ms\nxdpfw_metrics_listen: "127.0.0.1:9477"\nxdpfw_rules:\n' >>"$T/$f"
    for kv in "$@"; do
      printf '  %s: |\n    %s\n' "${kv%%=*}" "${kv#*=}" >>"$T/$f"
    done
  }
  policy v1.yml '10-base.rules=prio 10 proto tcp dport 22 action pass' \
    '50-web.rules=proto tcp dport 80 action pass'
  policy v2.yml '10-base.rules=prio 10 proto tcp dport 2222 action pass' \
    '60-block.rules=proto udp dport 5000 action drop'
  policy bad.yml '10-base.rules=prio 10 proto tcp dport 22 action pass' \
    '70-bad.rules=proto udp dport 99999 action drop'
  installed() { chroot "$R" dpkg-query -W -f='${Status}' xdpfw 2>/dev/null | grep -q ' installed'; }

  step "--check on a fresh host: would change, changes nothing"
  play v1.yml --check || { cat "$T/play.log"; fail "--check failed"; }
  ((play_changed > 0)) || fail "--check on a fresh host reports no change"
  installed && fail "--check installed the package"
  [[ ! -e $R/etc/xdpfw && ! -e $R/var/cache/xdpfw.deb ]] || fail "--check wrote files"

  step "a run: the package, the config, rules.d"
  play v1.yml || { cat "$T/play.log"; fail "the play failed"; }
  installed || fail "the package is not installed"
  grep -q '^rules = /etc/xdpfw/rules.d$' "$R/etc/xdpfw/xdpfw.conf" || fail "the config: $(cat "$R/etc/xdpfw/xdpfw.conf")"
  [[ $(ls "$R/etc/xdpfw/rules.d") == $'10-base.rules\n50-web.rules' ]] ||
    fail "rules.d: $(ls "$R/etc/xdpfw/rules.d")"
  out=$(chroot "$R" /usr/sbin/xdpfw-host --check-config --config /etc/xdpfw/xdpfw.conf 2>&1) ||
    fail "the written config: $out"
  ls "$R/tmp" | grep -q '^xdpfw-check' && fail "the check's folder was left in /tmp"

  step "again, and --check: nothing to change"
  play v1.yml || { cat "$T/play.log"; fail "the second run failed"; }
  ((play_changed == 0)) || { cat "$T/play.log"; fail "the second run changed $play_changed"; }
  play v1.yml --check || { cat "$T/play.log"; fail "--check failed"; }
  ((play_changed == 0)) || { cat "$T/play.log"; fail "--check after a run reports $play_changed"; }

  step "the installed agent runs the policy"
  ctl() { chroot "$R" /usr/sbin/xdpfw-ctl "$@"; }
  nsenter --net="/run/netns/$NS_FW" chroot "$R" /usr/sbin/xdpfw-host \
    --config /etc/xdpfw/xdpfw.conf >>"$T/agent.log" 2>&1 &
  agent=$!
  echo "$agent" >"$T/agent.pid"
  wait_for 20 ctl interfaces >/dev/null || { cat "$T/agent.log"; fail "the agent did not start"; }
  ctl interfaces | grep -q '^eth0 .* attached yes ' || { ctl interfaces; fail "eth0 not attached"; }
  out=$(ctl list)
  grep -q '/10-base.rules:1' <<<"$out" && grep -q '/50-web.rules:1' <<<"$out" ||
    fail "the policy's rules: $out"

  step "a new policy: written, then applied by the agent itself"
  t0=$(date +%s%N)
  play v2.yml || { cat "$T/play.log"; fail "the play failed"; }
  play_ms=$((($(date +%s%N) - t0) / 1000000))
  ((play_changed > 0)) || fail "a new policy changed nothing"
  [[ $(ls "$R/etc/xdpfw/rules.d") == $'10-base.rules\n60-block.rules' ]] ||
    fail "rules.d: $(ls "$R/etc/xdpfw/rules.d") (50-web.rules should be gone)"
  listed() { ctl list | grep -q "$1"; }
  ms=$(wait_for 10 listed '/60-block.rules:1') ||
    { ctl list; fail "the agent did not apply the new policy in 10 s"; }
  echo "the play took $play_ms ms; the agent had applied the policy $ms ms after it ended"
  out=$(ctl list)
  grep -q 'dport 2222' <<<"$out" && ! grep -q '50-web' <<<"$out" || fail "the new policy: $out"
  udp_verdicts 5000 5001

  step "a policy that does not compile: the play fails on the host, nothing changes"
  before=$(ctl list)
  sums=$(cd "$R/etc/xdpfw" && md5sum xdpfw.conf rules.d/*)
  if play bad.yml; then
    fail "the play passed with a broken rules file"
  fi
  grep -q '70-bad.rules:1' "$T/play.log" || { cat "$T/play.log"; fail "the failure does not name 70-bad.rules:1"; }
  [[ $(cd "$R/etc/xdpfw" && md5sum xdpfw.conf rules.d/*) == "$sums" ]] ||
    fail "a failed play changed files: $(ls "$R/etc/xdpfw/rules.d")"
  ls "$R/tmp" | grep -q '^xdpfw-check' && fail "the check's folder was left in /tmp"
  sleep 0.5
  [[ $(ctl list) == "$before" ]] || fail "the running rules changed"
  udp_verdicts 5000 5001
  kill -TERM "$agent"
  wait "$agent" || true
  exit 0
}

###########################################################################
# The outer part.
###########################################################################
if [[ ${1:-} == --inner ]]; then
  "inner_$2"
  exit
fi
build=$(cd "${1:?usage: deploy_test.sh BUILD_DIR kubernetes|ansible}" && pwd)
what=${2:?usage: deploy_test.sh BUILD_DIR kubernetes|ansible}
[[ $what == kubernetes || $what == ansible ]] || fail "unknown test $what"
((EUID == 0)) || fail "run as root (dpkg, mount namespaces, network namespaces, XDP)"
need=(cpack unshare nsenter chroot ip socat curl setpriv capsh python3)
[[ $what == kubernetes ]] && need+=(kubectl) || need+=(ansible-playbook)
for c in "${need[@]}"; do
  command -v "$c" >/dev/null || fail "$c is not installed (scripts/install-deps.sh)"
done

T=$(mktemp -d /tmp/xdpfw-deploy-XXXXXX)
chmod 755 "$T"
NS_FW=xdpfw-dep$$-fw
NS_PEER=xdpfw-dep$$-peer
cleanup() {
  local rc=$?
  set +e
  if [[ -f $T/agent.pid ]]; then
    pid=$(cat "$T/agent.pid")
    kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid" 2>/dev/null; sleep 0.2; }
  fi
  ip netns delete "$NS_FW" 2>/dev/null
  ip netns delete "$NS_PEER" 2>/dev/null
  mountpoint -q "$T/mnt" 2>/dev/null || rm -rf "$T"
  ((rc == 0)) || echo "deploy test ($what) failed (exit $rc)" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
remove_stale_netns xdpfw-dep

if [[ $what == kubernetes ]]; then
  step "kubectl kustomize deploy/kubernetes (kubectl $(kubectl version --client 2>/dev/null | head -1))"
  kubectl kustomize "$src/deploy/kubernetes" >"$T/rendered.yaml" 2>"$T/kustomize.err" ||
    { cat "$T/kustomize.err"; fail "kubectl kustomize"; }
  [[ -s $T/kustomize.err ]] && sed 's/^/   kustomize says: /' "$T/kustomize.err"
  # validate RENDERED CONTAINERFILE [--extract DIR]
  validate() { python3 "$here/validate.py" "$here/schemas" "$1" "$src/conf/xdpfw.service" "${@:2}"; }
  validate "$T/rendered.yaml" "$src/deploy/kubernetes/Containerfile" --extract "$T/pod" ||
    fail "the rendered manifests or the Containerfile"

  step "manifests spoilt on purpose are refused"
  # spoil NAME SED [FILE]: a copy of deploy/kubernetes with SED applied to
  # FILE (daemonset.yaml), rendered; the validator must refuse it.
  spoil() {
    rm -rf "$T/spoilt"
    cp -r "$src/deploy/kubernetes" "$T/spoilt"
    sed -i "$2" "$T/spoilt/${3:-daemonset.yaml}"
    cmp -s "$T/spoilt/${3:-daemonset.yaml}" "$src/deploy/kubernetes/${3:-daemonset.yaml}" &&
      fail "spoil $1: the sed changed nothing"
    kubectl kustomize "$T/spoilt" >"$T/spoilt.yaml" 2>/dev/null || fail "spoil $1: no render"
    if out=$(validate "$T/spoilt.yaml" "$T/spoilt/Containerfile" 2>&1); then
      fail "a manifest with $1 validates"
    fi
    echo "   $1: $out"
  }
  spoil "a misspelt field" 's/hostNetwork: true/hostNetwrok: true/'
  spoil "a wrong type" 's/periodSeconds: 20/periodSeconds: "20"/'
  spoil "one capability more" 's/add: \["BPF",/add: ["SYS_ADMIN", "BPF",/'
  spoil "no liveness probe" 's/livenessProbe:/startupProbe:/'
  spoil "another metrics port" 's/^metrics-listen = 0.0.0.0:9477/metrics-listen = 0.0.0.0:9478/' xdpfw.conf
  spoil "an image of another command" 's|"--config", "/etc/xdpfw/xdpfw.conf"|"--config", "/etc/xdpfw.conf"|' Containerfile
fi
if [[ $what == ansible ]]; then
  step "ansible-playbook --syntax-check"
  : >"$T/ansible.cfg"
  out=$(HOME=$T ANSIBLE_CONFIG=$T/ansible.cfg ANSIBLE_LOCAL_TEMP=$T/.ansible \
    ansible-playbook -i localhost, --syntax-check "$src/deploy/ansible/site.yml" 2>&1) ||
    fail "--syntax-check: $out"
fi

real_before=$( (dpkg-query -W -f='${Status} ${Version}' xdpfw 2>/dev/null || true; ls -la /etc/xdpfw /var/lib/xdpfw 2>/dev/null || true) | md5sum)
VERSION=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
step "cpack -G DEB"
(cd "$build" && cpack -G DEB -B "$T/cpack") >"$T/cpack.log" 2>&1 || { cat "$T/cpack.log"; fail "cpack"; }
DEB=$T/cpack/xdpfw_${VERSION}_$(dpkg --print-architecture).deb
[[ -f $DEB ]] || fail "cpack made no $DEB"

veth_pair "$NS_FW" eth0 "$NS_PEER" eth0

T=$T DEB=$DEB NS_FW=$NS_FW NS_PEER=$NS_PEER \
  unshare --mount --propagation private -- bash "$0" --inner "$what"

step "nothing reached the real root"
real_after=$( (dpkg-query -W -f='${Status} ${Version}' xdpfw 2>/dev/null || true; ls -la /etc/xdpfw /var/lib/xdpfw 2>/dev/null || true) | md5sum)
[[ $real_before == "$real_after" ]] || fail "the real root changed (package, /etc/xdpfw, /var/lib/xdpfw)"
echo "deploy test ($what): ok"
