#!/usr/bin/env python3
"""Temporal split of the Online Retail log for `shopkeeper eval`.

    bench/retail_split.py ONLINE_RETAIL.csv.gz OUTDIR [--split 2011-09-01] [--valid 2011-06-01]

Writes OUTDIR/train.csv (InvoiceDate before --split) and OUTDIR/test.csv (on
or after it), leaving out cancellations (invoices starting with "C" or a
negative quantity) and rows without a CustomerID, as issue 3 specifies. With
--valid it also carves a validation split out of the training period:
OUTDIR/valid-train.csv (before --valid) and OUTDIR/valid-test.csv (from
--valid to --split), for tuning without looking at the test set.

It also writes OUTDIR/catalog.csv, the new-arrivals protocol's catalog (issue
18), from the whole file (guest rows included, cancellations left out):
item_id, title (the StockCode's most recent Description), price (its most
recent UnitPrice) and first_seen (the day it was first sold). Trained with
--catalog, `eval` keeps the test purchases of items first sold after --split
and reports new_item_recall; `eval --new-since 2011-09-01` scores the
new-arrivals slot (bench/README.md, "New arrivals").
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
    catalog = {}  # StockCode -> [first day, last day, title, price]
    with opener(args.source, "rt", encoding="utf-8", newline="") as src:
        rows = csv.reader(src)
        header = next(rows)
        for w in writers.values():
            w.writerow(header)
        col = {name: i for i, name in enumerate(header)}
        for r in rows:
            if r[col["InvoiceNo"]].startswith("C") or float(r[col["Quantity"]]) < 0:
                continue
            day = r[col["InvoiceDate"]][:10]
            code = r[col["StockCode"]].strip()
            title = r[col["Description"]].strip()
            c = catalog.setdefault(code, [day, "", "", ""])
            c[0] = min(c[0], day)
            if day >= c[1] and title:
                c[1], c[2], c[3] = day, title, r[col["UnitPrice"]]
            if not r[col["CustomerID"]].strip():
                continue
            if day < args.split:
                targets = ["train", "valid-train" if day < args.valid else "valid-test"]
            else:
                targets = ["test"]
            for t in targets:
                writers[t].writerow(r)
                counts[t] += 1
    for f in files.values():
        f.close()
    with open(os.path.join(args.outdir, "catalog.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["item_id", "title", "price", "first_seen"])
        for code in sorted(catalog):
            first, _, title, price = catalog[code]
            w.writerow([code, title, price, first])
    print(f"catalog: {len(catalog)} items")
    for n in names:
        print(f"{n}: {counts[n]} rows")


if __name__ == "__main__":
    main()
