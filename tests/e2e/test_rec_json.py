#!/usr/bin/env python3
"""The two JSON shapes of a recommendation result, pinned byte for byte.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_rec_json.py [-v]
    SHOPKEEPER_UPDATE_GOLDEN=1 ...   rewrites the golden files instead

One writer (src/rec_json.c) prints recommended items for the HTTP routes
(`because` as item ids, `title` left out when the catalog has none, a
popular fill-in marked) and for `shopkeeper export` (`because` as
{item_id, title} objects, `title` always). The other suites parse these
answers as JSON; this one compares the bytes, so a refactoring of the writer
cannot change a space, a field order or a digit unnoticed. The model id
(it holds the training time) is replaced by MODEL, and each answer's rec_id
(unique per answer: its time and sequence) by REC_ID, before comparing; the
rec_id's own format is pinned by tests/test_recid.c.

The last line printed is "N passed, N failed".
"""
import csv
import io
import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lib as ts  # noqa: E402  (the shared helpers: Server, train, run)
from lib import Server, run, train  # noqa: E402

GOLDEN = os.path.join(HERE, "golden", "rec_json")
UPDATE = os.environ.get("SHOPKEEPER_UPDATE_GOLDEN") == "1"
CATALOG = os.path.join(ts.FIXTURES, "catalog.csv")
CUSTOMERS = os.path.join(ts.FIXTURES, "customers.csv")
SHARED = {}

# name: (method, path, body) against the server
HTTP_CASES = {
    "customer_recs": ("GET", "/v1/customers/alice/recommendations?n=8", None),
    "customer_recs_no_explain": ("GET", "/v1/customers/17850/recommendations?n=3&explain=0", None),
    "unknown_customer_recs": ("GET", "/v1/customers/nobody/recommendations?n=3", None),
    "similar": ("GET", "/v1/items/apple/similar?n=5", None),
    "basket": ("POST", "/v1/recommendations", {"items": ["apple", "zzz"], "customer_id": "bob",
                                               "n": 4}),
    "audience": ("GET", "/v1/audiences/all?n=2&limit=3", None),
    "audience_intent": ("GET", "/v1/audiences/all?n=2&limit=2&order=intent&explain=0", None),
}
# name: export arguments
EXPORT_CASES = {
    "export_all": ["--audience", "all", "--n", "3", "--no-record", "--cap-days", "0"],
    "export_new": ["--audience", "new", "--n", "8", "--no-record", "--cap-days", "0"],
}


def setUpModule():
    tmp = tempfile.mkdtemp(prefix="shopkeeper-recjson-")
    SHARED["tmp"] = tmp
    # The fixture catalog with one title blanked: the shapes differ there.
    with open(CATALOG, newline="") as f:
        rows = list(csv.reader(f))
    for row in rows[1:]:
        if row[0] == "eggs":
            row[1] = ""
    catalog = os.path.join(tmp, "catalog.csv")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    with open(catalog, "w", newline="") as f:
        f.write(buf.getvalue())
    model = os.path.join(tmp, "model")
    train(model, ts.INTERACTIONS, "--catalog", catalog, "--customers", CUSTOMERS)
    SHARED["model"] = model
    SHARED["model_id"] = json.loads(run(["inspect", model]).stdout)["model_id"]
    SHARED["srv"] = Server(model, os.path.join(tmp, "state"))


def tearDownModule():
    srv = SHARED.get("srv")
    if srv is not None:
        srv.stop()


class RecJsonShapes(unittest.TestCase):
    maxDiff = None

    def check(self, name, got):
        got = got.replace(SHARED["model_id"].encode(), b"MODEL")
        got = ts.mask_rec_id(got)
        path = os.path.join(GOLDEN, name)
        if UPDATE:
            os.makedirs(GOLDEN, exist_ok=True)
            with open(path, "wb") as f:
                f.write(got)
            return
        with open(path, "rb") as f:
            want = f.read()
        self.assertEqual(got.decode("utf-8"), want.decode("utf-8"), name)

    def test_http_answers(self):
        srv = SHARED["srv"]
        for name, (method, path, body) in HTTP_CASES.items():
            with self.subTest(name):
                data = json.dumps(body).encode() if body is not None else None
                resp = srv.request(method, path, data,
                                   {"Content-Type": "application/json"} if data else None)
                self.assertEqual(resp.status, 200, resp)
                self.check(name + ".json", resp.body + b"\n")

    def test_export_lines(self):
        state = os.path.join(SHARED["tmp"], "export-state")
        for name, args in EXPORT_CASES.items():
            with self.subTest(name):
                p = run(["export", "--model", SHARED["model"], "--state", state] + args)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.check(name + ".jsonl", p.stdout.encode())


if __name__ == "__main__":
    sys.exit(ts.run_suite(__name__, sys.argv[1:], lambda: [SHARED.get("tmp")], "rec_json"))
