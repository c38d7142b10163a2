#!/usr/bin/env python3
"""headline.py: the headline table of a benchmark run, from its results.csv.

    python3 bench/headline.py RESULTS_CSV DATE [--into docs/BENCHMARKS.md]

Prints the markdown table of the figures a user asks about (per packet, end
to end against nftables, memory, load, rule add, events, hotplug), each with
the baseline measured in the same run, the ratio, the target, whether it was
met, the date and the command that printed it. A figure the run did not
measure (a quick run leaves some out) is not in the table. With --into, the
table replaces the part of that file between the headline markers.
"""
import csv
import re
import sys

START = "<!-- headline: bench/run.sh writes this table; edits are lost -->"
END = "<!-- headline end -->"

# The benchmark that prints each section's rows.
COMMANDS = {
    "per-packet": "xdpfw_prog_run_bench",
    "classbench": "xdpfw_classbench_bench",
    "e2e": "xdpfw_live_bench",
    "flood": "xdpfw_agent_bench flood",
    "control": "xdpfw_agent_bench control",
    "sets": "xdpfw_agent_bench sets",
    "hotplug": "xdpfw_agent_bench hotplug",
    "memory": "xdpfw_agent_bench memory",
}


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def find(rows, bench, pattern):
    """Rows of BENCH whose case matches PATTERN (a regex, whole case)."""
    rx = re.compile(pattern)
    return [r for r in rows if r["bench"] == bench and rx.fullmatch(r["case"])]


def num(x):
    return float(x) if x not in ("", None) else 0.0


def fmt(v, unit):
    if unit == "x":
        return f"{v:,.2f}x"
    if abs(v) >= 100:
        s = f"{v:,.0f}"
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    elif abs(v) >= 1 or v == 0:
        s = f"{v:.2f}"
    else:
        s = f"{v:.3g}"
    return f"{s} {unit}"


class Table:
    def __init__(self, date):
        self.date = date
        self.lines = []

    def row(self, what, bench, r, baseline, ratio, target, met, note=""):
        cmd = COMMANDS[bench]
        note = note or r.get("note") or ""
        what = what + (f" ({note})" if note else "")
        self.lines.append(
            f"| {what} | {fmt(num(r['value']), r['unit'])} | {baseline} | {ratio} | {target} | "
            f"{'met' if met else '**missed**'} | {self.date} | `{cmd}` |")


def build(rows, date):
    t = Table(date)

    # Per packet.
    for r in find(rows, "per-packet", r"exact 5-tuple v4, 1 rules, hit"):
        seed = find(rows, "per-packet", r"seed design, 1 exact rules, hit")
        base = fmt(num(seed[0]["value"]), "ns") + " (original design, 1 rule)" if seed else r["baseline"]
        t.row("Per packet, 1 exact IPv4 rule, hit", "per-packet", r, base,
              fmt(num(r["ratio"]), "x"), "at most 1.0x", num(r["ratio"]) <= 1.0)
    for fam in ("v4", "v6"):
        cb = find(rows, "classbench", rf"\w+_10000 {fam} \(.*\), mean")
        if cb:
            worst = max(cb, key=lambda r: num(r["ratio"]))
            name = worst["case"].split(" ")[0]
            t.row(f"Per packet, ClassBench 10,000-rule sets {fam}, worst mean ({name})",
                  "classbench", worst, "original design, 1 exact rule, beside each",
                  fmt(num(worst["ratio"]), "x"), "at most 1.5x", num(worst["ratio"]) <= 1.5)

    # End to end against nftables.
    def e2e(what, ratio_case, ours_case, theirs_case, target):
        ratio = find(rows, "e2e", ratio_case)
        ours = find(rows, "e2e", ours_case)
        theirs = find(rows, "e2e", theirs_case)
        if not (ratio and ours and theirs):
            return
        r = dict(ours[0])
        base = fmt(num(theirs[0]["value"]), theirs[0]["unit"]) + " (nftables)"
        note = ratio[0].get("note") or ours[0].get("note") or ""
        t.row(what, "e2e", r, base, fmt(num(ratio[0]["value"]), "x"), f"at least {target}x",
              num(ratio[0]["value"]) >= target, note)

    e2e("End to end, 1 rule", r"xdpfw vs nftables at 1 rules", r"xdpfw, 1 exact rules",
        r"nftables linear chain, 1 rules", 3)
    e2e("End to end, 10,000 exact rules", r"xdpfw vs nftables at 10000 rules",
        r"xdpfw, 10000 exact rules", r"nftables linear chain, 10000 rules", 500)
    e2e("End to end, a 100,000-source blocklist", r"xdpfw vs nftables set at 100000 sources",
        r"xdpfw, 100000 /32 source rules", r"nftables set, 100000 sources", 5)

    # Memory.
    idle_rss = find(rows, "memory", r"agent RSS, idle")
    for r in find(rows, "memory", r"kernel map memory, idle"):
        t.row("Kernel map memory, idle agent", "memory", r, "", "", "at most 8 MiB",
              num(r["value"]) <= 8)
    cb_maps = find(rows, "memory", r"kernel map memory, \w+_100000")
    if cb_maps:
        worst = max(cb_maps, key=lambda r: num(r["value"]))
        t.row(f"Kernel map memory, 100,000-rule ClassBench set (worst: {worst['case'].split()[-1]})",
              "memory", worst, "", "", "at most 48 MiB", num(worst["value"]) <= 48)
    base_rss = fmt(num(idle_rss[0]["value"]), "MiB") + " (idle agent)" if idle_rss else ""
    for r in find(rows, "memory", r"agent RSS, 100000 rules"):
        t.row("Agent RSS, 100,000 exact rules", "memory", r, base_rss, fmt(num(r["ratio"]), "x"),
              "at most 32 MiB", num(r["value"]) <= 32)
    cb_rss = find(rows, "memory", r"agent RSS, \w+_100000 \(.*\)")
    if cb_rss:
        worst = max(cb_rss, key=lambda r: num(r["value"]))
        t.row(f"Agent RSS, 100,000-rule ClassBench set (worst: {worst['case'].split()[2]})",
              "memory", worst, base_rss, fmt(num(worst["ratio"]), "x"), "at most 48 MiB",
              num(worst["value"]) <= 48)

    # Load and rule changes.
    nft = find(rows, "control", r"nft -f, 100000-element set")
    for r in find(rows, "control", r"rule replace, 100000 exact rules"):
        base = fmt(num(nft[0]["value"]), "s") + " (nft -f, 100,000-element set)" if nft else ""
        t.row("Load: `rule replace` of 100,000 exact rules", "control", r, base,
              fmt(num(r["ratio"]), "x"), "at most 1.0x", num(r["ratio"]) <= 1.0)
    noop = find(rows, "control", r"no-op command round trip p99 \(version\)")
    noop = fmt(num(noop[0]["value"]), "ms") + " (a no-op command, p99)" if noop else ""
    for n, target in (("100000", 1.0), ("1000", 2.0)):
        for r in find(rows, "control", rf"rule add p99, {n} rules, one per 50 ms, under traffic"):
            t.row(f"`rule add` p99 at {int(n):,} rules, under traffic", "control", r, noop,
                  fmt(num(r["ratio"]), "x"), f"at most {target:g} ms", num(r["value"]) <= target)
    for r in find(rows, "sets", r"set add, pipelined, changes/s \(.*\)"):
        t.row("Set changes, pipelined, traffic running", "sets", r, "`nft -i add element`",
              fmt(num(r["ratio"]), "x"), "at least 100x", num(r["ratio"]) >= 100)

    # Events.
    for r in find(rows, "flood", r"log lines per second of flood, event-rate 1000000"):
        failed = find(rows, "flood", r"events failed .*, event-rate 1000000")
        lost = num(failed[0]["value"]) if failed else 0
        t.row("Events written per second (cap 1,000,000/s)", "flood", r,
              f"{lost:.0f} failed", "", "at least 200,000/s, none failed",
              num(r["value"]) >= 200000 and lost == 0)
    for r in find(rows, "flood", r"per-packet cost unmatched / matched, event-rate 1000"):
        t.row("Unmatched flood, logging on: cost per packet (cap 1,000/s)", "flood", r,
              "matched path", fmt(num(r["value"]), "x"), "at most 1.2x", num(r["value"]) <= 1.2)

    # Hotplug.
    for r in find(rows, "hotplug", r"single link: created to attached p99"):
        t.row("Hotplug: link created to XDP attached, p99", "hotplug", r, r["baseline"],
              fmt(num(r["ratio"]), "x"), "at most 100 ms", num(r["value"]) <= 100)
    for r in find(rows, "hotplug", r"burst of 200: all attached"):
        t.row("Hotplug: a burst of 200 links all attached", "hotplug", r, r["baseline"],
              fmt(num(r["ratio"]), "x"), "at most 3 s", num(r["value"]) <= 3000)

    head = ("| figure | xdpfw | baseline (same run) | ratio | target | | date | command |\n"
            "|---|---:|---|---:|---|---|---|---|\n")
    return head + "\n".join(t.lines) + "\n"


def main(argv):
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--into"):
        sys.stderr.write(__doc__)
        return 2
    table = build(load(argv[1]), argv[2])
    if len(argv) == 3:
        sys.stdout.write(table)
        return 0
    doc = open(argv[4]).read()
    if START not in doc or END not in doc:
        sys.stderr.write(f"{argv[4]}: no headline markers\n")
        return 1
    a = doc.index(START) + len(START)
    b = doc.index(END)
    with open(argv[4], "w") as f:
        f.write(doc[:a] + "\n" + table + doc[b:])
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
