#!/usr/bin/env python3
"""Prints criterion's medians (ns per call) as Markdown tables.

Usage: criterion_table.py TARGET_DIR/criterion

Per-pass benchmarks (storm, distinct, zipf) carry their calls per pass as
criterion throughput (elements); their median is divided by it.
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
REFS = [
    ("floor", ["floor_dashmap", "floor_oncecell", "dashmap_8_shards"]),
    ("moka", ["moka"]),
    ("naive", ["naive_map", "naive_map_unbounded"]),
]
for group in sorted(os.listdir(root)):
    gdir = os.path.join(root, group)
    if not os.path.isdir(gdir) or group == "report":
        continue
    rows = {}
    order = []
    for fn in os.listdir(gdir):
        new = os.path.join(gdir, fn, "new")
        if not os.path.exists(os.path.join(new, "estimates.json")):
            continue
        est = json.load(open(os.path.join(new, "estimates.json")))
        meta = json.load(open(os.path.join(new, "benchmark.json")))
        per = 1
        if meta.get("throughput") and "Elements" in meta["throughput"]:
            per = meta["throughput"]["Elements"]
        rows[meta["function_id"]] = est["median"]["point_estimate"] / per
        order.append(meta["function_id"])
    if not rows:
        continue
    refs = []
    for label, names in REFS:
        for n in names:
            if n in rows:
                refs.append((label, n))
                break
    print(f"#### {group} (criterion medians)\n")
    head = "| contender | median ns/call |" + "".join(f" vs {n} |" for _, n in refs)
    print(head)
    print("|---|---:|" + "---:|" * len(refs))
    for fn in sorted(order, key=lambda f: rows[f]):
        cells = "".join(f" {rows[fn] / rows[n]:.2f}x |" for _, n in refs)
        print(f"| {fn} | {rows[fn]:.1f} |{cells}")
    print()
