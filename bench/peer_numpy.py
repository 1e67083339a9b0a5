#!/usr/bin/python3
"""Peer baseline: shopkeeper's four item-item algorithms in plain numpy/scipy.

    bench/peer_numpy.py --interactions FILE [--columns customer_id=CustomerID,...]
                        [--algo cosine|jaccard|lift|ease] [--neighbors K] [--lambda L]
                        [--half-life DAYS] [--ease-max-items N] [--dump FILE]

The same input and the same model as `shopkeeper train`, written the way a
data scientist would with Debian's python3-numpy and python3-scipy: the CSV
read with numpy.loadtxt, ids numbered with a dict, X a scipy.sparse matrix
(float32), G = X.T @ X, the normalisations on G's non-zeros, EASE by
a Cholesky solve (scipy.linalg.cho_factor/cho_solve) of the
dense G + lambda I against the identity, top-K per item with
numpy.argpartition. X matches the trainer's: per (customer, item) the
strongest event weight (view 0.2, cart 0.5, purchase 1; a purchase counts if
its net quantity is positive), decayed by the age of the latest event at
the newest timestamp with the half-life (default 30 days, 0: none).

Prints one JSON object on stdout: seconds per phase (read, x, gram,
similarity, topk), data counts. --dump writes each item's neighbours as
"item<TAB>nbr:score,nbr:score,..." (best first), for agreement checks.
"""
import argparse
import csv
import gzip
import json
import sys
import time

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

EVENTS = {"view": 0, "cart": 1, "purchase": 2}
LOGICAL = ("customer_id", "item_id", "timestamp", "event", "quantity", "price")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--interactions", required=True)
    ap.add_argument("--columns", default="")
    ap.add_argument("--algo", default="cosine", choices=["cosine", "jaccard", "lift", "ease"])
    ap.add_argument("--neighbors", type=int, default=100)
    ap.add_argument("--lambda", dest="lam", type=float, default=200.0)
    ap.add_argument("--half-life", type=float, default=30.0)
    ap.add_argument("--event-weights", default="view=0.2,cart=0.5,purchase=1")
    ap.add_argument("--ease-max-items", type=int, default=20000)
    ap.add_argument("--ease-solver", default="cho", choices=["cho", "inv", "potri"],
                    help="cho: scipy.linalg.cho_factor/cho_solve (default); inv: "
                         "numpy.linalg.inv (Steck's reference code); potri: LAPACK "
                         "spotrf/spotri through scipy.linalg.lapack, as the trainer does")
    ap.add_argument("--dump")
    return ap.parse_args()


def normalize_ids(col):
    """The trainer's id rule: trim blanks, "17850.0" -> "17850"."""
    out = []
    for s in col:
        s = s.strip(" \t")
        head, dot, tail = s.partition(".")
        if dot and head.isdigit() and tail and tail.strip("0") == "":
            s = head
        out.append(s)
    return out


def read(path, columns):
    """The interactions file as arrays: customer and item numbers (in order
    of first appearance, so ties between equal scores break as in the
    trainer), timestamp, event, quantity; and the item ids."""
    names = {n: n for n in LOGICAL}
    for pair in filter(None, columns.split(",")):
        k, v = pair.split("=", 1)
        names[k] = v
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        header = next(csv.reader([f.readline()]))
        idx = {n: header.index(h) for n, h in names.items() if h in header}
        use = sorted(idx.values())
        table = np.loadtxt(f, delimiter=",", dtype=str, usecols=use, quotechar='"',
                           encoding="utf-8", ndmin=2)
    cols = {n: table[:, use.index(i)] for n, i in idx.items()}
    del table

    cust = normalize_ids(cols["customer_id"].tolist())
    item = normalize_ids(cols["item_id"].tolist())
    n = len(cust)
    qty = cols["quantity"].astype(np.float64) if "quantity" in cols else np.ones(n)
    price = cols["price"].astype(np.float64) if "price" in cols else np.zeros(n)
    ev = np.full(n, EVENTS["purchase"], dtype=np.int8)
    if "event" in cols:
        ev_names = np.char.lower(cols["event"])
        for name, code in EVENTS.items():
            ev[ev_names == name] = code
    if "timestamp" in cols:
        ts = cols["timestamp"].astype("datetime64[s]").astype(np.int64)
    else:
        ts = None

    # The trainer's row rules: ids present, quantity non-zero and sane, price >= 0.
    keep = ((np.array([c != "" for c in cust]) & np.array([i != "" for i in item])
             & (qty != 0) & (np.abs(qty) <= 1e6) & (price >= 0)))
    rows = np.flatnonzero(keep)
    cmap, imap = {}, {}
    ci = np.fromiter((cmap.setdefault(cust[r], len(cmap)) for r in rows), np.int64, len(rows))
    ii = np.fromiter((imap.setdefault(item[r], len(imap)) for r in rows), np.int64, len(rows))
    return {"customer": ci, "item": ii, "ts": None if ts is None else ts[keep],
            "event": ev[keep], "quantity": qty[keep], "n_customers": len(cmap),
            "ids": list(imap)}


def build_x(d, weights, half_life):
    """X (customers x items, CSR float32)."""
    ci, ii, qty, ev = d["customer"], d["item"], d["quantity"], d["event"]
    nc, ni = d["n_customers"], len(d["ids"])
    ts = d["ts"] if d["ts"] is not None else np.zeros(len(ci), dtype=np.int64)

    # One entry per (customer, item): net quantity bought, strongest view/cart,
    # latest time.
    key = ci * ni + ii
    order = np.argsort(key, kind="stable")
    ks = key[order]
    first = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    purchase = ev[order] == EVENTS["purchase"]
    net = np.add.reduceat(np.where(purchase, qty[order], 0.0), first)
    other = np.maximum.reduceat(np.where(purchase, 0.0, weights[ev[order]]), first)
    last = np.maximum.reduceat(ts[order], first)
    x = np.where(net > 0, np.maximum(weights[EVENTS["purchase"]], other), other)
    if half_life > 0 and d["ts"] is not None:
        age = np.maximum(ts.max() - last, 0)
        x = x * np.maximum(np.exp(-np.log(2) / (half_life * 86400.0) * age), 1e-6)
    pair = ks[first]
    nz = x > 0
    return sp.csr_matrix((x[nz].astype(np.float32), (pair[nz] // ni, pair[nz] % ni)),
                         shape=(nc, ni))


def ease_inverse(G, solver):
    """(G + lambda I)^-1, G already regularised."""
    if solver == "inv":
        return np.linalg.inv(G)
    if solver == "potri":
        c, info = sla.lapack.spotrf(G, lower=1, overwrite_a=1)
        if info == 0:
            c, info = sla.lapack.spotri(c, lower=1, overwrite_c=1)
        if info != 0:
            raise SystemExit("EASE: LAPACK info %d" % info)
        return np.tril(c) + np.tril(c, -1).T
    factor = sla.cho_factor(G, lower=True, overwrite_a=True, check_finite=False)
    return sla.cho_solve(factor, np.eye(G.shape[0], dtype=G.dtype), overwrite_b=True,
                         check_finite=False)


def top_k_sparse(S, k):
    """Per row of a CSR matrix, the k largest positive entries (ties: lower
    column first), as (row, cols, scores) lists."""
    out = []
    for i in range(S.shape[0]):
        lo, hi = S.indptr[i], S.indptr[i + 1]
        v, c = S.data[lo:hi], S.indices[lo:hi]
        pos = v > 0
        v, c = v[pos], c[pos]
        if len(v) > k:
            part = np.argpartition(-v, k - 1)[:k]
            # whatever ties the cut, keep those that sort first
            kth = v[part].min()
            part = np.flatnonzero(v >= kth)
            v, c = v[part], c[part]
        o = np.lexsort((c, -v))[:k]
        out.append((c[o], v[o]))
    return out


def top_k_dense(B, k, block=1024):
    """The same over a dense matrix, a block of rows at a time."""
    out = []
    n = B.shape[1]
    k = min(k, n)
    for r0 in range(0, B.shape[0], block):
        blk = B[r0:r0 + block]
        part = np.argpartition(-blk, k - 1, axis=1)[:, :k]
        for r in range(blk.shape[0]):
            c = part[r]
            v = blk[r, c]
            kth = v.min()
            c = np.flatnonzero(blk[r] >= kth)  # ties at the cut, as above
            v = blk[r, c]
            pos = v > 0
            c, v = c[pos], v[pos]
            o = np.lexsort((c, -v))[:k]
            out.append((c[o], v[o]))
    return out


def main():
    a = parse_args()
    weights = np.zeros(3)
    for pair in a.event_weights.split(","):
        name, val = pair.split("=")
        weights[EVENTS[name]] = float(val)

    t = {}
    t0 = time.perf_counter()
    data = read(a.interactions, a.columns)
    ids = data["ids"]
    t1 = time.perf_counter()
    t["read"] = t1 - t0
    X = build_x(data, weights, a.half_life)
    del data
    t2 = time.perf_counter()
    t["x"] = t2 - t1
    nc, ni = X.shape
    k = min(a.neighbors, max(ni - 1, 1))

    if a.algo == "ease":
        # EASE over the most popular items when the catalog is too large.
        cols_used = np.arange(ni)
        if ni > a.ease_max_items:
            pop = np.asarray((X > 0).sum(axis=0)).ravel()
            cols_used = np.lexsort((np.arange(ni), -pop))[:a.ease_max_items]
            X = X[:, cols_used]
        G = (X.T @ X).toarray()
        t3 = time.perf_counter()
        t["gram"] = t3 - t2
        G[np.diag_indices_from(G)] += a.lam
        P = ease_inverse(G, a.ease_solver)
        del G
        B = P / (-np.diag(P))
        np.fill_diagonal(B, 0.0)
        del P
        t4 = time.perf_counter()
        t["similarity"] = t4 - t3
        lists = top_k_dense(B, k)
        lists = [(cols_used[c], v) for c, v in lists]
        rows = cols_used
        del B
    else:
        G = (X.T @ X).tocsr()
        t3 = time.perf_counter()
        t["gram"] = t3 - t2
        d = G.diagonal()
        r = np.repeat(np.arange(ni), np.diff(G.indptr))
        c = G.indices
        g = G.data
        if a.algo == "cosine":
            s = g / np.sqrt(d[r] * d[c])
        elif a.algo == "jaccard":
            s = g / (d[r] + d[c] - g)
        else:  # lift, as in SAR
            s = g / (d[r] * d[c])
        s[r == c] = 0.0
        S = sp.csr_matrix((s, c, G.indptr), shape=G.shape)
        del G
        t4 = time.perf_counter()
        t["similarity"] = t4 - t3
        lists = top_k_sparse(S, k)
        rows = np.arange(ni)
    t5 = time.perf_counter()
    t["topk"] = t5 - t4
    t["compute"] = t5 - t1
    t["total"] = t5 - t0

    if a.dump:
        with open(a.dump, "w", encoding="utf-8") as f:
            for i, (c, v) in zip(rows, lists):
                f.write(ids[i] + "\t" + ",".join(
                    "%s:%.6g" % (ids[j], s) for j, s in zip(c, v)) + "\n")
    print(json.dumps({"algo": a.algo, "customers": nc, "items": ni, "nnz": int(X.nnz),
                      "seconds": {n: round(v, 4) for n, v in t.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
