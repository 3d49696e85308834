#!/usr/bin/env python3
"""Trims a fuzz corpus to at most N files that keep the most coverage.

libFuzzer's merge (`cargo fuzz cmin`) keeps every file that adds coverage, which here is over a
thousand files. This picks files greedily: each round takes the file that adds the most edges
not covered yet, the smaller file on a tie, until N files are taken or nothing more is gained.

Usage, from fuzz/ after a run:
    target/x86_64-unknown-linux-gnu/release/config -merge=1 -use_counters=0 \
        -use_value_profile=0 -merge_control_file=/tmp/control /tmp/merged corpus/config
    python3 trim_corpus.py /tmp/control 400 /tmp/trimmed
then replace corpus/config with /tmp/trimmed.
"""

import os
import shutil
import sys


def main() -> None:
    control, limit, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    lines = open(control, encoding="utf-8").read().split("\n")
    count = int(lines[0])
    files = lines[2 : 2 + count]
    edges = {}
    for line in lines[2 + count :]:
        if line.startswith("COV "):
            fields = line.split()
            edges[int(fields[1])] = set(map(int, fields[2:]))
    total = len(set().union(*edges.values()))
    sizes = {index: os.path.getsize(files[index]) for index in edges}

    covered = set()
    chosen = []
    while edges and len(chosen) < limit:
        best = max(edges, key=lambda i: (len(edges[i] - covered), -sizes[i]))
        if not edges[best] - covered:
            break
        covered |= edges.pop(best)
        chosen.append(best)

    os.makedirs(out, exist_ok=True)
    for index in chosen:
        shutil.copy(files[index], out)
    print(f"kept {len(chosen)} of {count} files, {len(covered)} of {total} edges")


if __name__ == "__main__":
    main()
