#!/usr/bin/env python3
"""Prints the benchmark table from the result lines run.sh writes (one measurement a line)."""

import statistics
import sys
from collections import defaultdict


def parse(path):
    rows = []
    with open(path) as lines:
        for line in lines:
            if line.startswith("#") or not line.strip():
                continue
            row = dict(field.split("=", 1) for field in line.split() if "=" in field)
            rows.append(row)
    return rows


def summarize(values):
    """Median and range of a list of floats, as text."""
    if not values:
        return "-"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.3g}"
    return f"{median:.3g} ({min(values):.3g}-{max(values):.3g})"


def main():
    rows = parse(sys.argv[1])
    groups = defaultdict(list)
    for row in rows:
        groups[(row["variant"], int(row["n"]), row["method"])].append(row)

    def values(key, field, per_ns=True):
        variant, n, _ = key
        out = []
        for row in groups.get(key, []):
            if field in row and row[field] not in ("", "-"):
                value = float(row[field])
                out.append(value / n if per_ns else value)
        return out

    def median(key, field, per_ns=True):
        found = values(key, field, per_ns)
        return statistics.median(found) if found else None

    problems = [row for row in rows if row.get("problem")]
    methods = ["floor", "floor-held", "netnsctl", "netnsctl-libnftables", "shell"]
    methods += sorted({key[2] for key in groups} - set(methods))
    for variant in sorted({key[0] for key in groups}):
        counts = sorted({key[1] for key in groups if key[0] == variant})
        print(f"\n## {variant}: ms per namespace, median (min-max) of {max(len(v) for v in groups.values())} runs\n")
        print("| N | method | apply | apply CPU | no-op apply | teardown | peak RSS MiB | apply / floor | shell / this | teardown / floor | checks |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for n in counts:
            floor_apply = median((variant, n, "floor"), "apply_ms")
            floor_teardown = median((variant, n, "floor"), "teardown_ms")
            shell_apply = median((variant, n, "shell"), "apply_ms")
            for method in methods:
                key = (variant, n, method)
                if key not in groups:
                    continue
                apply = median(key, "apply_ms")
                teardown = median(key, "teardown_ms")
                rss = values(key, "rss_kib", per_ns=False)
                ratio = f"{apply / floor_apply:.2f}" if apply and floor_apply else "-"
                shell_ratio = f"{shell_apply / apply:.1f}" if apply and shell_apply and method != "shell" else "-"
                teardown_ratio = f"{teardown / floor_teardown:.2f}" if teardown and floor_teardown else "-"
                rss_text = f"{max(rss) / 1024:.1f}" if rss else "-"
                failed = [row for row in groups[key] if row.get("problem") or row.get("left", "0") != "0"]
                checks = f"FAILED in {len(failed)} runs" if failed else "ok"
                print(
                    f"| {n} | {method} | {summarize(values(key, 'apply_ms'))} | {summarize(values(key, 'cpu_ms'))} "
                    f"| {summarize(values(key, 'noop_ms'))} | {summarize(values(key, 'teardown_ms'))} "
                    f"| {rss_text} | {ratio} | {shell_ratio} | {teardown_ratio} | {checks} |"
                )
        if len(counts) >= 2:
            low, high = counts[0], counts[-1]
            print(f"\nGrowth of apply cost per namespace, N={low} to N={high}:")
            for method in methods:
                a = median((variant, low, method), "apply_ms")
                b = median((variant, high, method), "apply_ms")
                if a and b:
                    print(f"- {method}: {b / a:.2f}x")
        print("\nCosts that bound the figures (from the floor runs):")
        for n in counts:
            lookup = values((variant, n, "floor"), "lookup_us", per_ns=False)
            baseline = values((variant, n, "floor"), "baseline_us", per_ns=False)
            instance = values((variant, n, "floor"), "instance_us", per_ns=False)
            instance_lookup = values((variant, n, "floor"), "instance_lookup_us", per_ns=False)
            if lookup:
                print(
                    f"- N={n}: lookup of /proc/sys/net/ipv4 {summarize(lookup)} µs "
                    f"(of /proc/sys/net {summarize(baseline)} µs)"
                )
            if instance:
                print(
                    f"- N={n}: private proc instance created, sys/net/ipv4 looked up, both closed "
                    f"{summarize(instance)} µs; lookup in an instance that has it "
                    f"{summarize(instance_lookup)} µs"
                )
        deletes = [float(row["link_delete_ms"]) for row in rows if row.get("variant") == variant and "link_delete_ms" in row]
        if deletes:
            print(f"- deleting one veth pair (ip link delete, one after another): {summarize(deletes)} ms")
        totals = [
            (n, method, statistics.median(values((variant, n, method), "noop_ms", per_ns=False)))
            for n in counts
            for method in methods
            if values((variant, n, method), "noop_ms", per_ns=False)
        ]
        if totals:
            print("\nNo-op apply, total ms (median):")
            for n, method, total in totals:
                print(f"- N={n} {method}: {total:.0f} ms")
    if problems:
        print("\nProblems found by the checks after apply:")
        for row in problems:
            print(f"- {row['variant']} N={row['n']} {row['method']} run {row['run']}: {row['problem'].replace('_', ' ')}")
    leftovers = [row for row in rows if row.get("left", "0") != "0"]
    for row in leftovers:
        print(f"- {row['variant']} N={row['n']} {row['method']}: {row['left']} namespaces left after teardown")


if __name__ == "__main__":
    main()
