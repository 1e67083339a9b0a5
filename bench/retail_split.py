#!/usr/bin/env python3
"""Temporal split of the Online Retail log for `shopkeeper eval`.

    bench/retail_split.py ONLINE_RETAIL.csv.gz OUTDIR [--split 2011-09-01] [--valid 2011-06-01]

Writes OUTDIR/train.csv (InvoiceDate before --split) and OUTDIR/test.csv (on
or after it), leaving out cancellations (invoices starting with "C" or a
negative quantity) and rows without a CustomerID, as issue 3 specifies. With
--valid it also carves a validation split out of the training period:
OUTDIR/valid-train.csv (before --valid) and OUTDIR/valid-test.csv (from
--valid to --split), for tuning without looking at the test set.
Standard library only.
"""
import argparse
import csv
import gzip
import os


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("source")
    ap.add_argument("outdir")
    ap.add_argument("--split", default="2011-09-01")
    ap.add_argument("--valid", default="2011-06-01")
    args = ap.parse_args()

    os.makedirs(args.outdir, exist_ok=True)
    opener = gzip.open if args.source.endswith(".gz") else open
    names = ["train", "test", "valid-train", "valid-test"]
    files = {n: open(os.path.join(args.outdir, n + ".csv"), "w", newline="", encoding="utf-8")
             for n in names}
    writers = {n: csv.writer(f, lineterminator="\n") for n, f in files.items()}
    counts = dict.fromkeys(names, 0)
    with opener(args.source, "rt", encoding="utf-8", newline="") as src:
        rows = csv.reader(src)
        header = next(rows)
        for w in writers.values():
            w.writerow(header)
        col = {name: i for i, name in enumerate(header)}
        for r in rows:
            if not r[col["CustomerID"]].strip():
                continue
            if r[col["InvoiceNo"]].startswith("C") or float(r[col["Quantity"]]) < 0:
                continue
            day = r[col["InvoiceDate"]][:10]
            if day < args.split:
                targets = ["train", "valid-train" if day < args.valid else "valid-test"]
            else:
                targets = ["test"]
            for t in targets:
                writers[t].writerow(r)
                counts[t] += 1
    for f in files.values():
        f.close()
    for n in names:
        print(f"{n}: {counts[n]} rows")


if __name__ == "__main__":
    main()
