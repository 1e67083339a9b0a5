#!/usr/bin/python3
"""Peer for the tuning benchmarks: a plain numpy EASE, scored as `shopkeeper
eval` scores.

    bench/peer_ease_eval.py --train FILE --test FILE [--columns MAP] [--lambda 500]

What a data scientist would write from Steck's paper: X the binary customer
x item matrix of the training file (a customer has an item when they
bought it, net of returns, or viewed or carted it), no time decay,
B = I - P diagMat(1/diag(P)) with P = (X'X + lambda I)^-1, every customer's
scores X_u B over the whole catalog, no neighbour limit, no cutoff,
negative weights kept. Then eval's rules: the 10 best items not bought in
training; relevant are the test file's purchases of items the training
file knows, less what the customer bought in training; nDCG@10 with a log2
discount, averaged over customers with something relevant. Prints one
JSON object: {"ndcg", "users"}. Needs Debian's python3-numpy.
"""
import argparse
import csv
import gzip
import json

import numpy as np

LOGICAL = ("customer_id", "item_id", "event", "quantity")


def rows(path, columns):
    names = {k: k for k in LOGICAL}
    for pair in filter(None, (columns or "").split(",")):
        k, v = pair.split("=", 1)
        names[k] = v
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        r = csv.reader(f)
        header = next(r)
        col = {h: i for i, h in enumerate(header)}
        ci, ii = col[names["customer_id"]], col[names["item_id"]]
        ei, qi = col.get(names["event"]), col.get(names["quantity"])
        for rec in r:
            if not rec[ci] or not rec[ii]:
                continue
            ev = rec[ei] if ei is not None else "purchase"
            q = float(rec[qi]) if qi is not None and rec[qi] else 1.0
            yield rec[ci], rec[ii], ev, q


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--columns")
    ap.add_argument("--lambda", dest="lam", type=float, default=500.0)
    a = ap.parse_args()
    cust, item = {}, {}
    net, seen = {}, set()
    for c, i, ev, q in rows(a.train, a.columns):
        u = cust.setdefault(c, len(cust))
        j = item.setdefault(i, len(item))
        if ev == "purchase":
            net[(u, j)] = net.get((u, j), 0.0) + q
        else:
            seen.add((u, j))
    bought = {k for k, v in net.items() if v > 0}
    X = np.zeros((len(cust), len(item)), dtype=np.float64)
    for u, j in bought | seen:
        X[u, j] = 1.0
    G = X.T @ X
    G[np.diag_indices_from(G)] += a.lam
    P = np.linalg.inv(G)
    B = -P / np.diag(P)
    B[np.diag_indices_from(B)] = 0.0
    rel = {}
    for c, i, ev, q in rows(a.test, a.columns):
        if ev != "purchase" or q <= 0 or c not in cust or i not in item:
            continue
        u, j = cust[c], item[i]
        if (u, j) not in bought:
            rel.setdefault(u, set()).add(j)
    by_cust = {}
    for u, j in bought:
        by_cust.setdefault(u, []).append(j)
    disc = 1.0 / np.log2(np.arange(2, 12))
    total, users = 0.0, 0
    for u, r in rel.items():
        s = X[u] @ B
        s[by_cust.get(u, [])] = -np.inf
        top = np.argsort(-s, kind="stable")[:10]
        dcg = sum(disc[k] for k, j in enumerate(top) if j in r)
        total += dcg / disc[:min(10, len(r))].sum()
        users += 1
    print(json.dumps({"ndcg": round(total / max(users, 1), 6), "users": users}))


if __name__ == "__main__":
    main()
