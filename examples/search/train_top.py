#!/usr/bin/python3
"""train_top.py - train the top K candidates of a dnc search in the tiny
transformer, with LayerNorm as the baseline, and rank them by loss.

    /usr/bin/python3 examples/search/train_top.py RANKED.json [-k 5]
        [--steps 200] [--seed 0] [--threads N] [-o table.md] [--csv table.csv]

RANKED.json (or .csv) is what `dnc search SPEC -o PREFIX` writes; each row
carries the candidate as dnc source. Each of the first K is trained with
examples/train_tiny_transformer.py's T.train(norm="dnc", source=..., fn=...)
(the candidate wrapped with a learnable input scale alpha, as DyT and Derf
have: fn net(x; alpha = 0.5) = cID(alpha * x)), and once with
norm="layernorm"; the table lists them by final loss.
"""
import argparse
import csv
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # examples/


def read_ranked(path):
    """[(rank, name, fn, source)] in the search's order."""
    if path.endswith(".json"):
        with open(path) as f:
            rows = json.load(f)["ranked"]
    else:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        src = r["source"]
        fn = src.split("(", 1)[0].split()[1]  # "fn c123(x) = ..."
        out.append((int(r["rank"]), r["name"], fn, src))
    return out


def wrapped(fn, source):
    """The candidate with a learnable input scale, as dnc source."""
    return f"{source}\nfn net(x; alpha = 0.5) = {fn}(alpha * x)\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ranked")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("-o", "--output", default="train_top.md")
    ap.add_argument("--csv", default=None)
    a = ap.parse_args()
    if a.k < 1:
        # -k -1 trained all but the last (a slice), -k 0 none
        ap.error("-k is the number of candidates to train, at least 1, "
                 "not %d" % a.k)

    import train_tiny_transformer as T  # examples/train_tiny_transformer.py

    runs = []
    base = T.train("layernorm", steps=a.steps, seed=a.seed, threads=a.threads)
    runs.append(("-", "layernorm", "LayerNorm (baseline)", base))
    for rank, name, fn, src in read_ranked(a.ranked)[:a.k]:
        print(f"training #{rank} {name} ...", file=sys.stderr)
        r = T.train("dnc", source=wrapped(fn, src), fn="net", steps=a.steps,
                    seed=a.seed, threads=a.threads)
        runs.append((str(rank), name, src, r))

    def loss(run):
        v = run[3]["final_loss"]
        return v if math.isfinite(v) else math.inf

    runs.sort(key=loss)
    lines = ["| # | search rank | candidate | final loss | ms/step | source |",
             "|---|---|---|---|---|---|"]
    def cell(s):  # a table cell: '|' (in names like a|scale(2)) escaped
        return str(s).replace("|", "\\|")
    def ms(r):  # none from 5 steps or fewer (train() times after 5)
        v = r["ms_per_step"]
        return "-" if v is None else f"{v:.1f}"
    for i, (rank, name, src, r) in enumerate(runs, 1):
        lines.append(f"| {i} | {rank} | {cell(name)} | {r['final_loss']:.4f} | "
                     f"{ms(r)} | `{cell(src)}` |")
    text = "\n".join(lines) + "\n"
    with open(a.output, "w") as f:
        f.write(text)
    print(text, end="")
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["place", "search_rank", "name", "final_loss",
                        "ms_per_step", "source"])
            for i, (rank, name, src, r) in enumerate(runs, 1):
                w.writerow([i, rank, name, r["final_loss"], r["ms_per_step"],
                            src])


if __name__ == "__main__":
    main()
