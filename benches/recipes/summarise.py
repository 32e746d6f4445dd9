#!/usr/bin/env python3
"""The recipe table from run.sh's results.tsv: per world and recipe, mean ± standard deviation
over the seeds of the pooled test RMSE, the best validation RMSE and the training wall time.

Usage: python3 benches/recipes/summarise.py OUT/results.tsv [MORE.tsv…]
"""
import csv
import statistics
import sys
from collections import defaultdict

rows = []
for path in sys.argv[1:]:
    with open(path) as f:
        rows += list(csv.DictReader(f, delimiter="\t"))
groups = defaultdict(list)
for r in rows:
    groups[(r["world"], r["world_seed"], r["recipe"])].append(r)


def ms(values):
    v = [float(x) for x in values]
    sd = statistics.stdev(v) if len(v) > 1 else float("nan")
    return f"{statistics.mean(v):.3f} ± {sd:.3f}"


print("| world | recipe | seeds | test RMSE (K) | best validation RMSE (K) | training (s) |")
print("|---|---|---|---|---|---|")
for (world, wseed, recipe), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], statistics.mean(float(r["test_rmse_k"]) for r in kv[1]))):
    print(
        f"| {world} (seed {wseed}) | {recipe} | {len(rs)} | {ms(r['test_rmse_k'] for r in rs)} "
        f"| {ms(r['val_rmse_k'] for r in rs)} | {statistics.mean(float(r['train_s']) for r in rs):.0f} |"
    )
