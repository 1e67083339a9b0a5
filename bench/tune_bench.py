#!/usr/bin/env python3
"""Tuning against today's fixed defaults on data of other rhythms.

    bench/tune_bench.py [--retail online-retail.csv.gz] [--work DIR] [--only NAME,...] [--peer]
                        [--bin bin/shopkeeper]

For each data set: a train/test cut by time, then `shopkeeper eval` with
--no-tune (the fixed defaults: EASE, lambda 200, 30-day half-life, 30
neighbours used, cutoff 0.1) and with tuning (the default), same files.
Prints a Markdown table: nDCG@10 of both, the seconds of the tuned run
(tuning, final fit and scoring), and what the tuner chose. --peer adds
bench/peer_ease_eval.py (a plain numpy EASE, lambda 500, no decay, every
neighbour and negative weight: the issue's held-out peer) on the same files
(needs python3-numpy).

Data sets:
  gen-fast, gen-slow     bin/shopkeeper-gen --cycle-days 3 / 60 (taste drift
                         0.3 per visit), no repeat purchases
  gen-fast-repeat, ...   the same with --repeat 0.5
  retail-uk              Online Retail, United Kingdom only
  retail-quarter         Online Retail, a quarter of the customers (CustomerID
                         whose number is divisible by 4)
  retail                 Online Retail's public split (retail_split.py)
The Online Retail sets use retail_split.py's cut (2011-09-01), the
generated ones the time that leaves the last 20% of rows for the test.
Standard library only.
"""
import argparse
import csv
import gzip
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "bin", "shopkeeper")
GEN = os.path.join(ROOT, "bin", "shopkeeper-gen")
RETAIL_COLS = ("customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,"
               "quantity=Quantity,price=UnitPrice")
GENERATED = [
    ("gen-fast", ["--cycle-days", "3"]),
    ("gen-slow", ["--cycle-days", "60"]),
    ("gen-fast-repeat", ["--cycle-days", "3", "--repeat", "0.5"]),
    ("gen-slow-repeat", ["--cycle-days", "60", "--repeat", "0.5"]),
]
GEN_SIZE = ["--customers", "10000", "--items", "2000", "--interactions", "200000", "--seed", "3"]


def split_by_time(src, outdir, share=0.8):
    with open(src, newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    t = header.index("timestamp")
    cut = sorted(r[t] for r in rows)[int(len(rows) * share)]
    paths = (os.path.join(outdir, "train.csv"), os.path.join(outdir, "test.csv"))
    for path, keep in zip(paths, (lambda r: r[t] < cut, lambda r: r[t] >= cut)):
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(r for r in rows if keep(r))
    return paths


def filter_retail(split_dir, outdir, keep):
    paths = []
    for name in ("train.csv", "test.csv"):
        with open(os.path.join(split_dir, name), newline="") as f:
            rows = list(csv.reader(f))
        header, rows = rows[0], rows[1:]
        col = {h: i for i, h in enumerate(header)}
        path = os.path.join(outdir, name)
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(r for r in rows if keep(r, col))
        paths.append(path)
    return paths


def evaluate(train, test, cols, tune, binary=BIN):
    args = [binary, "eval", "--train", train, "--test", test]
    if cols:
        args += ["--columns", cols]
    if not tune:
        args.append("--no-tune")
    t = time.monotonic()
    p = subprocess.run(args, capture_output=True, text=True, timeout=900)
    secs = time.monotonic() - t
    if p.returncode != 0:
        sys.exit("eval failed: %s" % p.stderr)
    chosen = ""
    for line in p.stderr.splitlines():
        if line.startswith("chosen"):
            chosen = line[len("chosen"):].strip()
        elif line.startswith("tuning     kept"):
            chosen = "defaults kept (" + line.split("kept the defaults: ")[1].split(" (")[0] + ")"
    return json.loads(p.stdout), secs, chosen


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--retail", default=os.path.join(ROOT, "..", "shared", "data",
                                                     "online-retail.csv.gz"))
    ap.add_argument("--work", default="/tmp/shopkeeper-tune-bench")
    ap.add_argument("--only", default="")
    ap.add_argument("--peer", action="store_true")
    ap.add_argument("--bin", default=BIN, help="the shopkeeper binary (default: bin/shopkeeper)")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    os.makedirs(args.work, exist_ok=True)
    sets = []
    for name, opts in GENERATED:
        if only and name not in only:
            continue
        d = os.path.join(args.work, name)
        os.makedirs(d, exist_ok=True)
        src = os.path.join(d, "all.csv")
        subprocess.run([GEN] + GEN_SIZE + opts + ["--out", src], check=True)
        sets.append((name, " ".join(opts)) + split_by_time(src, d) + ("",))
    retail = [s for s in ("retail", "retail-uk", "retail-quarter") if not only or s in only]
    if retail and os.path.exists(args.retail):
        split = os.path.join(args.work, "retail")
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "retail_split.py"),
                        args.retail, split], check=True, stdout=subprocess.DEVNULL)
        if "retail" in retail:
            sets.append(("retail", "public split", os.path.join(split, "train.csv"),
                         os.path.join(split, "test.csv"), RETAIL_COLS))
        for name, keep in (("retail-uk", lambda r, c: r[c["Country"]] == "United Kingdom"),
                           ("retail-quarter",
                            lambda r, c: int(float(r[c["CustomerID"]])) % 4 == 0)):
            if name in retail:
                d = os.path.join(args.work, name)
                os.makedirs(d, exist_ok=True)
                sets.append((name, "", *filter_retail(split, d, keep), RETAIL_COLS))
    print("| data | fixed defaults nDCG@10 | tuned nDCG@10 | change |%s test customers | "
          "tuned run (s) | chosen |" % (" numpy EASE λ 500 |" if args.peer else ""))
    print("|---|---|---|---|%s---|---|---|" % ("---|" if args.peer else ""))
    for name, what, train, test, cols in sets:
        fixed, _, _ = evaluate(train, test, cols, False, args.bin)
        tuned, secs, chosen = evaluate(train, test, cols, True, args.bin)
        peer = ""
        if args.peer:
            cmd = ["/usr/bin/python3", os.path.join(ROOT, "bench", "peer_ease_eval.py"),
                   "--train", train, "--test", test] + (["--columns", cols] if cols else [])
            p = subprocess.run(cmd, capture_output=True, text=True, check=True)
            peer = " %.4f |" % json.loads(p.stdout)["ndcg"]
        print("| %s %s | %.4f | %.4f | %+.4f |%s %d | %.1f | %s |" % (
            name, ("(" + what + ")") if what else "", fixed["ndcg"], tuned["ndcg"],
            tuned["ndcg"] - fixed["ndcg"], peer, tuned["users"], secs, chosen), flush=True)


if __name__ == "__main__":
    main()
