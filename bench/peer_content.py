#!/usr/bin/python3
"""Peer baseline for new arrivals: TF-IDF title similarity in plain numpy.

    bench/peer_content.py --train FILE --test FILE --catalog FILE [--k 10]
                          [--columns customer_id=CustomerID,...] [--tokens words|char3]

What a data scientist would write to recommend items nobody has bought yet
(issue 18): the catalog's titles as TF-IDF vectors (lower-cased words of two
characters or more, idf = ln((1 + items) / (1 + df)) + 1, rows
L2-normalised), each training customer's profile the sum of the vectors of
the items they bought, and for each customer the catalog's items without
training interactions ranked by cosine between profile and item. Scored
against the test purchases of those items by customers seen in training:
recall@k averaged over customers with at least one (the figure `shopkeeper
eval --new-since` reports as new_item_recall). Purchases: positive
quantity. Prints one JSON object.

bench/retail_split.py writes the three files (train before 2011-09-01, test
after, catalog of the whole period); see bench/README.md "New arrivals".
"""
import argparse
import csv
import json
import re
import time

import numpy as np


def columns(spec):
    names = {"customer_id": "customer_id", "item_id": "item_id", "quantity": "quantity",
             "title": "title"}
    for part in (spec or "").split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            names[k] = v
    return names


def purchases(path, cols):
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.DictReader(f)
        for row in r:
            q = row.get(cols["quantity"], "1") or "1"
            if float(q) > 0:
                out.append((row[cols["customer_id"]].strip(), row[cols["item_id"]].strip()))
    return out


def tokens(title, kind):
    words = [w for w in re.findall(r"[0-9a-z\x80-\uffff]+", title.lower()) if len(w) >= 2]
    if kind == "words":
        return words
    grams = []
    for w in words:
        p = " " + w + " "
        grams.extend(p[i:i + 3] for i in range(len(p) - 2))
    return grams


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--catalog", required=True)
    ap.add_argument("--columns")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--tokens", default="words", choices=["words", "char3"])
    a = ap.parse_args()
    cols = columns(a.columns)
    t0 = time.time()

    titles = {}
    with open(a.catalog, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            titles[row["item_id"].strip()] = row.get("title", "") or ""
    train = purchases(a.train, cols)
    test = purchases(a.test, cols)

    items = sorted(titles)
    index = {it: i for i, it in enumerate(items)}
    vocab = {}
    rows = []
    for it in items:
        counts = {}
        for tok in tokens(titles[it], a.tokens):
            t = vocab.setdefault(tok, len(vocab))
            counts[t] = counts.get(t, 0) + 1
        rows.append(counts)
    X = np.zeros((len(items), len(vocab)), dtype=np.float32)
    for i, counts in enumerate(rows):
        for t, c in counts.items():
            X[i, t] = c
    titled = int((X.sum(axis=1) > 0).sum())
    df = (X > 0).sum(axis=0)
    idf = np.log((1.0 + titled) / (1.0 + df)) + 1.0
    X *= idf.astype(np.float32)
    norms = np.linalg.norm(X, axis=1)
    norms[norms == 0] = 1
    X /= norms[:, None]

    trained_items = {it for _, it in train}
    new = np.array([index[it] for it in items if it not in trained_items], dtype=np.int64)
    customers = sorted({c for c, _ in train})
    cindex = {c: u for u, c in enumerate(customers)}
    B = np.zeros((len(customers), len(items)), dtype=np.float32)
    for c, it in train:
        if it in index:
            B[cindex[c], index[it]] = 1.0
    P = B @ X                       # profiles: sum of bought titles
    S = P @ X[new].T                # customers x new items (cosine up to the profile norm)

    relevant = {}
    newset = set(new.tolist())
    for c, it in test:
        if c in cindex and it in index and index[it] in newset:
            relevant.setdefault(cindex[c], set()).add(index[it])
    k = min(a.k, len(new))
    recall = []
    for u, rel in relevant.items():
        top = new[np.argsort(-S[u], kind="stable")[:k]]
        recall.append(len(rel.intersection(top.tolist())) / len(rel))
    print(json.dumps({"new_item_recall": round(float(np.mean(recall)) if recall else 0.0, 6),
                      "users": len(recall), "new_items": int(len(new)), "k": a.k,
                      "tokens": a.tokens, "terms": len(vocab),
                      "seconds": round(time.time() - t0, 2)}))


if __name__ == "__main__":
    main()
