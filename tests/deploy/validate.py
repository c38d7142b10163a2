#!/usr/bin/python3
"""Validates rendered manifests (kubectl kustomize's output) against the
vendored schemas, then checks what the DaemonSet must be for xdpfw: host
network, the capabilities of conf/xdpfw.service and no other, the node's
bpffs, socket and state folders, probes on the control socket, the metrics
port annotated and served. With --extract DIR it writes what the deploy test
needs to run the pod without a container runtime: DIR/xdpfw.conf and
DIR/rules.d/* (the ConfigMaps' data) and DIR/pod.sh (bash: the command, the
probes, the capabilities, the volume mounts). The Containerfile must build
the image from the package on debian:12-slim and start what the DaemonSet
starts (no image can be built on the machines this runs on).
  validate.py SCHEMA_DIR RENDERED.yaml UNIT_FILE CONTAINERFILE [--extract DIR]
"""
import json
import os
import re
import shlex
import sys

import jsonschema
import yaml


def fail(why):
    print("deploy: " + why, file=sys.stderr)
    sys.exit(1)


def validate(schema_dir, docs):
    kinds = {}
    for d in docs:
        kind = d.get("kind")
        try:
            with open(f"{schema_dir}/{str(kind).lower()}.json") as f:
                schema = json.load(f)
        except OSError:
            fail(f"no schema for kind {kind!r}")
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(d), key=str)
        for e in errors:
            name = (d.get("metadata") or {}).get("name")
            print(f"deploy: {kind} {name}: {'/'.join(map(str, e.absolute_path))}: {e.message}",
                  file=sys.stderr)
        if errors:
            sys.exit(1)
        kinds.setdefault(kind, []).append(d)
    if sorted(kinds) != ["ConfigMap", "DaemonSet", "Namespace"]:
        fail(f"expected a Namespace, ConfigMaps and a DaemonSet, got {sorted(kinds)}")
    return kinds


def unit_capabilities(unit):
    """CAP_X names of the unit's CapabilityBoundingSet, as Kubernetes spells them."""
    with open(unit) as f:
        m = re.search(r"^CapabilityBoundingSet=(.*)$", f.read(), re.M)
    if not m:
        fail(f"{unit}: no CapabilityBoundingSet")
    return sorted(c.removeprefix("CAP_") for c in m.group(1).split())


def probe(c, kind):
    """The program of the container's exec probe of that kind, or ""."""
    return (c.get(kind, {}).get("exec", {}).get("command") or [""])[0]


def check_daemonset(ds, configmaps, unit):
    pod = ds["spec"]["template"]["spec"]
    if len(pod["containers"]) != 1:
        fail("DaemonSet: one container")
    c = pod["containers"][0]
    sc = c.get("securityContext", {})
    caps = sc.get("capabilities", {})
    volumes = {v["name"]: v for v in pod["volumes"]}
    host_paths = {v["hostPath"]["path"] for v in volumes.values() if "hostPath" in v}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    port = ds["spec"]["template"]["metadata"].get("annotations", {}).get("prometheus.io/port")
    checks = [
        (pod.get("hostNetwork") is True, "hostNetwork"),
        (caps.get("drop") == ["ALL"], "capabilities: drop ALL"),
        (sorted(caps.get("add", [])) == unit_capabilities(unit),
         f"capabilities: {sorted(caps.get('add', []))}, the unit's are {unit_capabilities(unit)}"),
        (sc.get("privileged") is False, "not privileged"),
        (sc.get("allowPrivilegeEscalation") is False, "no privilege escalation"),
        ({"/sys/fs/bpf", "/run/xdpfw", "/var/lib/xdpfw"} <= host_paths,
         f"the node's bpffs, socket and state folders (hostPath: {sorted(host_paths)})"),
        (c["command"][0] == "/usr/sbin/xdpfw-host", "the command is the agent"),
        (probe(c, "livenessProbe").endswith("/xdpfw-ctl"), "liveness probe: xdpfw-ctl"),
        (probe(c, "readinessProbe").endswith("/xdpfw-ctl"), "readiness probe: xdpfw-ctl"),
        (port is not None and any(p["containerPort"] == int(port) for p in c.get("ports", [])),
         "metrics port annotated and declared"),
        ("/etc/xdpfw/rules.d" in mounts and "/etc/xdpfw/xdpfw.conf" in mounts,
         "the config and rules.d mounted"),
    ]
    for ok, what in checks:
        if not ok:
            fail("DaemonSet: " + what)
    for name in ("xdpfw-config", "xdpfw-rules"):
        if name not in configmaps:
            fail(f"no ConfigMap {name}")
    rules = configmaps["xdpfw-rules"].get("data", {})
    if not rules or not all(k.endswith(".rules") for k in rules):
        fail("the xdpfw-rules ConfigMap holds *.rules files only")
    conf = configmaps["xdpfw-config"].get("data", {}).get("xdpfw.conf", "")
    m = re.search(r"^metrics-listen\s*=\s*\S*:(\d+)\s*$", conf, re.M)
    if not m or m.group(1) != port:
        fail(f"xdpfw.conf's metrics-listen port is not the annotated {port}")
    if not re.search(r"^rules\s*=\s*/etc/xdpfw/rules\.d/?\s*$", conf, re.M):
        fail("xdpfw.conf does not read rules = /etc/xdpfw/rules.d")
    return pod, c


def check_containerfile(path, command):
    """FROM debian:12-slim, the package copied in and installed from its file,
    and the DaemonSet's command as the ENTRYPOINT."""
    with open(path) as f:
        text = re.sub(r"\\\n", " ", f.read())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    last = dict(instructions)
    entrypoint = None
    try:
        entrypoint = json.loads(last.get("ENTRYPOINT", ""))
    except ValueError:
        pass
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    checks = [
        (instructions and instructions[0] == ("FROM", "debian:12-slim"), "FROM debian:12-slim first"),
        (any(w == "COPY" and re.match(r"xdpfw_\S*\.deb\s", r) for w, r in instructions),
         "COPY the package (xdpfw_*.deb)"),
        (re.search(r"apt-get install\b[^&;]*\s/tmp/xdpfw_\S*\.deb", runs) is not None,
         "apt-get install the copied package"),
        (entrypoint == command,
         f"ENTRYPOINT {last.get('ENTRYPOINT')}, the DaemonSet's command is {json.dumps(command)}"),
    ]
    for ok, what in checks:
        if not ok:
            fail(f"{path}: " + what)


def extract(out, pod, c, configmaps, port):
    os.makedirs(f"{out}/rules.d", exist_ok=True)
    with open(f"{out}/xdpfw.conf", "w") as f:
        f.write(configmaps["xdpfw-config"]["data"]["xdpfw.conf"])
    for name, text in configmaps["xdpfw-rules"]["data"].items():
        with open(f"{out}/rules.d/{name}", "w") as f:
            f.write(text)
    volumes = {v["name"]: v for v in pod["volumes"]}
    lines = []

    def array(name, words):
        lines.append(f"{name}=({' '.join(shlex.quote(str(w)) for w in words)})")

    array("pod_command", c["command"] + c.get("args", []))
    array("pod_liveness", c["livenessProbe"]["exec"]["command"])
    array("pod_readiness", c["readinessProbe"]["exec"]["command"])
    caps = ",".join("+" + x.lower() for x in c["securityContext"]["capabilities"]["add"])
    lines.append(f"pod_caps={shlex.quote(caps)}")
    ro = c["securityContext"].get("readOnlyRootFilesystem") is True
    lines.append(f"pod_read_only_root={'1' if ro else ''}")
    lines.append(f"pod_metrics_port={int(port)}")
    # One line per mount: KIND SOURCE PATH RO SUBPATH (KIND hostPath or
    # configMap; SOURCE the host path or the ConfigMap's name).
    mounts = []
    for m in c["volumeMounts"]:
        v = volumes[m["name"]]
        if "hostPath" in v:
            kind, source = "hostPath", v["hostPath"]["path"]
        elif "configMap" in v:
            kind, source = "configMap", v["configMap"]["name"]
        else:
            fail(f"volume {v['name']}: only hostPath and configMap are known here")
        mounts.append(" ".join([kind, source, m["mountPath"],
                                "ro" if m.get("readOnly") else "rw", m.get("subPath", "-")]))
    array("pod_mounts", mounts)
    with open(f"{out}/pod.sh", "w") as f:
        f.write("\n".join(lines) + "\n")


def main(args):
    out = None
    if len(args) == 6 and args[4] == "--extract":
        out = args[5]
        args = args[:4]
    if len(args) != 4:
        fail("usage: validate.py SCHEMA_DIR RENDERED.yaml UNIT_FILE CONTAINERFILE [--extract DIR]")
    schema_dir, rendered, unit, containerfile = args
    with open(rendered) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    kinds = validate(schema_dir, docs)
    configmaps = {m["metadata"]["name"]: m for m in kinds["ConfigMap"]}
    ds = kinds["DaemonSet"][0]
    pod, c = check_daemonset(ds, configmaps, unit)
    check_containerfile(containerfile, c["command"])
    if out:
        extract(out, pod, c, configmaps,
                ds["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"])
    print(f"deploy: {len(docs)} manifests valid")


if __name__ == "__main__":
    main(sys.argv[1:])
