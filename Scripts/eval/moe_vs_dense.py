#!/usr/bin/env python3
"""MoE against dense on in-context tasks: the README's zero/one-shot table from `glam eval --json` files.

    python3 Scripts/eval/moe_vs_dense.py DIR [--dense dense] [--moe moe-e32]

DIR holds one `glam eval --json` output per run, named <model>-seed<S>.json (as `glam compare
--keep-checkpoints` names its runs). For each task, number of shots and metric (acc, acc_norm, or
exact match for generation) it prints a Markdown row: the dense and MoE accuracy per seed, the
paired difference MoE − dense per seed with its standard error over the examples (the examples
are the same for both models: SE = sd(dᵢ)/√n with dᵢ = MoEᵢ − denseᵢ ∈ {−1, 0, 1}), the mean
difference over seeds, and in how many seeds MoE was ahead.
"""
import argparse
import glob
import json
import math
import os
import re
import sys


def load(directory, model):
    runs = {}
    for path in sorted(glob.glob(os.path.join(directory, f"{model}-seed*.json"))):
        seed = int(re.search(r"-seed(\d+)\.json$", path).group(1))
        with open(path, encoding="utf-8") as f:
            runs[seed] = {(r["task"], r["shots"]): r for r in json.load(f)["results"]}
    return runs


def paired(a, b):
    """Mean and standard error of the per-example differences b − a (lists of booleans)."""
    d = [int(y) - int(x) for x, y in zip(a, b)]
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1)) if n > 1 else 0.0
    return mean, sd / math.sqrt(n)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--dense", default="dense")
    parser.add_argument("--moe", default="moe-e32")
    args = parser.parse_args()
    dense, moe = load(args.directory, args.dense), load(args.directory, args.moe)
    seeds = sorted(set(dense) & set(moe))
    if not seeds:
        sys.exit(f"moe_vs_dense: no seed has both {args.dense}-seedS.json and {args.moe}-seedS.json in {args.directory}")
    keys = list(dense[seeds[0]])
    print(f"| task | shots | metric | n | {args.dense}, seeds {', '.join(map(str, seeds))} | {args.moe} | "
          f"{args.moe} − {args.dense} per seed (± paired SE) | mean difference | MoE ahead in |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in keys:
        for metric, field in (("acc", "correct"), ("acc_norm", "correct_norm")):
            if metric not in dense[seeds[0]][key]:
                continue
            # A generation task has acc (exact match) only; a multiple-choice one has acc_norm too.
            name = metric if "acc_norm" in dense[seeds[0]][key] else "exact match"
            d = [dense[s][key][metric] for s in seeds]
            m = [moe[s][key][metric] for s in seeds]
            diffs = [paired(dense[s][key][field], moe[s][key][field]) for s in seeds]
            mean = sum(x for x, _ in diffs) / len(diffs)
            ahead = sum(1 for x, _ in diffs if x > 0)
            print(f"| {key[0]} | {key[1]} | {name} | {dense[seeds[0]][key]['count']} | "
                  f"{' / '.join(f'{x:.3f}' for x in d)} | {' / '.join(f'{x:.3f}' for x in m)} | "
                  f"{' / '.join(f'{x:+.3f} ± {e:.3f}' for x, e in diffs)} | {mean:+.3f} | {ahead} of {len(seeds)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
