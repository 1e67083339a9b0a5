#!/usr/bin/env python3
"""Merchandising controls (issue 20, points 1 to 3), against the real server.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_merch.py [-v]

1. Non-products: the catalog column `recommendable=false` and `train
   --exclude-items FILE` keep an item out of every answer (customer,
   similar, basket, popular, audiences, export) and out of every `because`;
   training warns about items more than half of all customers bought.
2. Answers carry the catalog's price, category, image_url and url.
3. PUT /v1/items/{id} {"available": false} / {"recommendable": false}:
   out of every answer at once, durably (restart, reload), protected like
   the other writes, its errors a table of cases.

The data is made here: 120 customers, twelve products in two groups and
FEE, a postage-like line on 80 of the customers' orders. The last line
printed is "N passed, N failed".
"""
import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lib as ts  # noqa: E402  (the shared helpers)
from lib import ApiTestCase, ErrorCase, Server, q, run  # noqa: E402

SHARED = {}
FEE = "FEE"
PRODUCTS = ["P%02d" % i for i in range(1, 13)]
CUSTOMERS = ["c%03d" % i for i in range(120)]
KEY = "merch-test-key-0123456789abcdef"


def tmp_path(*parts):
    return os.path.join(SHARED["tmp"], *parts)


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def make_data():
    """Group A (c000-c059) buys P01-P06, group B (c060-c119) P07-P12, each
    customer a few by a fixed rule; FEE is on the orders of c000-c079."""
    rows = ["customer_id,item_id,timestamp,price"]
    for i, c in enumerate(CUSTOMERS):
        base = 0 if i < 60 else 6
        picks = {base + (i % 6), base + ((i // 6) % 6), base + ((i * 7 + 3) % 6)}
        if i % 10 == 0:
            picks.add((base + 6 + i % 6) % 12)  # a few cross the groups
        day = 1 + i % 28
        for p in sorted(picks):
            rows.append("%s,%s,2024-01-%02d 10:00:00,%.2f" % (c, PRODUCTS[p], day, 1 + p))
        if i < 80:
            rows.append("%s,%s,2024-01-%02d 10:00:00,4.95" % (c, FEE, day))
    return write(tmp_path("sales.csv"), "\n".join(rows) + "\n")


def make_catalog(name, recommendable_column):
    head = "item_id,title,category,price,image_url,url"
    if recommendable_column:
        head += ",recommendable"
    rows = [head]
    for n, p in enumerate(PRODUCTS):
        # P01 has both URLs, P02 neither, P03 no price; the rest everything.
        img = "" if p == "P02" else "https://img.example/%s.jpg" % p
        url = "" if p == "P02" else "https://shop.example/p/%s" % p
        price = "" if p == "P03" else "%.2f" % (1.5 + n)
        row = "%s,Product %s,%s,%s,%s,%s" % (p, p, "group-a" if n < 6 else "group-b", price,
                                             img, url)
        if recommendable_column:
            row += ",true" if n % 2 else ","  # an empty field means true
        rows.append(row)
    fee = "%s,POSTAGE,,4.95,," % FEE
    rows.append(fee + (",false" if recommendable_column else ""))
    return write(tmp_path(name), "\n".join(rows) + "\n")


def train_p(out_dir, *extra):
    """lib.train's command, its result returned, not raised: each test
    that needs the model says what went wrong."""
    return run(["train", "--interactions", SHARED["sales"], "--out", out_dir, "--quiet",
                "--algo", "cosine", "--half-life", "0"] + list(extra))


def model_of(name):
    p = SHARED["train_" + name]
    if p.returncode != 0:
        raise AssertionError("train failed (%d): %s" % (p.returncode, p.stderr))
    return SHARED["model_" + name]


def setUpModule():
    SHARED["tmp"] = tempfile.mkdtemp(prefix="shopkeeper-merch-")
    SHARED["sales"] = make_data()
    SHARED["catalog_flag"] = make_catalog("catalog-flag.csv", True)
    SHARED["catalog"] = make_catalog("catalog.csv", False)
    SHARED["exclude"] = write(tmp_path("non-products.txt"),
                              "# fees and postage\n%s\nNOT-IN-DATA\n" % FEE)
    # Model 1: FEE left out by the catalog's column.
    SHARED["model_flag"] = tmp_path("model-flag")
    SHARED["train_flag"] = train_p(SHARED["model_flag"], "--catalog", SHARED["catalog_flag"])
    # Model 2: FEE left out by --exclude-items.
    SHARED["model_excl"] = tmp_path("model-excl")
    SHARED["train_excl"] = train_p(SHARED["model_excl"], "--catalog", SHARED["catalog"],
                                   "--exclude-items", SHARED["exclude"])
    # Model 3: nothing left out.
    SHARED["model_all"] = tmp_path("model-all")
    SHARED["train_all"] = train_p(SHARED["model_all"], "--catalog", SHARED["catalog"])


class Answers:
    """Every recommendation answer a server gives on this data."""

    def __init__(self, test, srv, model_dir):
        self.test, self.srv, self.model_dir = test, srv, model_dir

    def get(self, path):
        r = self.srv.get(path)
        self.test.assertEqual(r.status, 200, (path, r))
        return r.json

    def collect(self):
        """{route: [item objects]} over customers, similar items, a basket,
        popular items (an unknown customer), an audience and export."""
        out = {"customer": [], "similar": [], "basket": [], "popular": [], "audience": [],
               "export": []}
        for c in CUSTOMERS[::3]:
            out["customer"] += self.get("/v1/customers/%s/recommendations?n=20" % c)["items"]
        for p in PRODUCTS + [FEE]:
            out["similar"] += self.get("/v1/items/%s/similar?n=20" % q(p))["items"]
        r = self.srv.request("POST", "/v1/recommendations",
                             json.dumps({"items": [FEE, "P01", "P07"], "n": 20}).encode(),
                             ts.JSON_HEADERS)
        self.test.assertEqual(r.status, 200, r)
        out["basket"] += r.json["items"]
        out["popular"] += self.get("/v1/customers/nobody/recommendations?n=20")["items"]
        for m in self.get("/v1/audiences/all?limit=200&n=10")["customers"]:
            out["audience"] += m["items"]
        p = run(["export", "--model", self.model_dir, "--state", self.srv.state_dir,
                 "--audience", "all", "--n", "10", "--no-record", "--cap-days", "0"])
        self.test.assertEqual(p.returncode, 0, p.stderr)
        for line in p.stdout.splitlines():
            out["export"] += json.loads(line)["items"]
        for route, items in out.items():
            self.test.assertTrue(items, "no %s answer holds items" % route)
        return out

    def assertNowhere(self, item, also_not_because=True):
        for route, items in self.collect().items():
            ids = [it["item_id"] for it in items]
            self.test.assertFalse(item in ids, "%s answers %s" % (route, item))
            if also_not_because:
                for it in items:
                    because = [b["item_id"] if isinstance(b, dict) else b
                               for b in it.get("because", [])]
                    self.test.assertFalse(item in because,
                                          "%s: %s because %s" % (route, it, item))


def answer_ids(srv, path):
    r = srv.get(path)
    assert r.status == 200, r
    return [it["item_id"] for it in r.json["items"]]


# ---------------------------------------------------------------------------
# 1. Non-products
# ---------------------------------------------------------------------------
class NonProducts(ApiTestCase):
    def test_without_exclusion_fee_is_everywhere(self):
        """The data makes FEE a top answer when nothing leaves it out: the
        checks below can fail."""
        with Server(model_of("all"), tmp_path("state-all")) as srv:
            self.assertEqual(answer_ids(srv, "/v1/customers/nobody/recommendations?n=3")[0], FEE)
            because = set()
            for c in CUSTOMERS[:80:5]:
                for it in srv.get("/v1/customers/%s/recommendations?n=10" % c).json["items"]:
                    because.update(it.get("because", []))
            self.assertIn(FEE, because)

    def test_catalog_recommendable_false_leaves_the_item_out(self):
        with Server(model_of("flag"), tmp_path("state-flag")) as self.srv:
            Answers(self, self.srv, model_of("flag")).assertNowhere(FEE)
            # Its own neighbours are gone too: it is a reason for nothing.
            self.assertEqual(answer_ids(self.srv, "/v1/items/%s/similar" % FEE), [])
            # Items flagged true or left empty are served as usual.
            popular = answer_ids(self.srv, "/v1/customers/nobody/recommendations?n=13")
            self.assertEqual(sorted(popular), sorted(PRODUCTS))

    def test_exclude_items_file_leaves_the_item_out(self):
        model_of("excl")
        self.assertIn("1 of its 2 item ids are not in the data", SHARED["train_excl"].stderr)
        with Server(model_of("excl"), tmp_path("state-excl")) as self.srv:
            Answers(self, self.srv, model_of("excl")).assertNowhere(FEE)

    def test_the_model_says_how_many_items_are_left_out(self):
        self.assertEqual(ts.model_meta(model_of("flag"))["items_not_recommendable"], 1)
        self.assertEqual(ts.model_meta(model_of("all"))["items_not_recommendable"], 0)

    def test_training_warns_about_items_most_customers_have(self):
        model_of("all")
        err = SHARED["train_all"].stderr
        self.assertIn("warning", err)
        self.assertIn("FEE (67%)", err)
        self.assertIn("--exclude-items", err)
        self.assertIn("recommendable=false", err)
        for p in (SHARED["train_flag"], SHARED["train_excl"]):
            self.assertNotIn("more than half", p.stderr)

    def test_a_bad_recommendable_value_is_a_bad_row(self):
        cat = write(tmp_path("catalog-bad.csv"),
                    "item_id,title,recommendable\nP01,x,maybe\nP02,y,NO\nP03,z, Yes \n")
        p = train_p(tmp_path("model-bad"), "--catalog", cat)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("line 2 skipped: bad catalog field", p.stderr)
        self.assertEqual(ts.model_meta(tmp_path("model-bad"))["items_not_recommendable"], 1)


# ---------------------------------------------------------------------------
# 2. What a page renders
# ---------------------------------------------------------------------------
class CatalogFields(ApiTestCase):
    def check(self, items, export=False):
        seen = set()
        for it in items:
            p = it["item_id"]
            n = PRODUCTS.index(p)
            seen.add(p)
            self.assertEqual(it["category"], "group-a" if n < 6 else "group-b", it)
            if p == "P03":
                self.assertIsNone(it["price"]) if export else self.assertNotIn("price", it)
            else:
                self.assertAlmostEqual(it["price"], 1.5 + n, msg=it)
            if p == "P02":
                for k in ("image_url", "url"):
                    self.assertEqual(it[k], "", it) if export else self.assertNotIn(k, it)
            else:
                self.assertEqual(it["image_url"], "https://img.example/%s.jpg" % p, it)
                self.assertEqual(it["url"], "https://shop.example/p/%s" % p, it)
        return seen

    def test_every_answer_carries_price_category_and_urls(self):
        with Server(model_of("flag"), tmp_path("state-fields")) as srv:
            answers = Answers(self, srv, model_of("flag")).collect()
            seen = set()
            for route, items in answers.items():
                with self.subTest(route):
                    seen |= self.check(items, export=route == "export")
            self.assertTrue({"P01", "P02", "P03"} <= seen, seen)


# ---------------------------------------------------------------------------
# 3. PUT /v1/items/{id}
# ---------------------------------------------------------------------------
def put_item(srv, item, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return srv.request("PUT", "/v1/items/%s" % q(item), data,
                       dict(ts.JSON_HEADERS, **(headers or {})))


class ItemOverrides(ApiTestCase):
    @classmethod
    def setUpClass(cls):
        cls.state = tmp_path("state-put")
        cls.srv = Server(model_of("flag"), cls.state)

    @classmethod
    def tearDownClass(cls):
        ts.stop_shared(cls.srv)

    def top_item(self, customer):
        return self.srv.get("/v1/customers/%s/recommendations?n=1" % customer).json["items"][0]

    def put(self, item, body):
        r = put_item(self.srv, item, body)
        self.assertEqual(r.status, 200, r)
        return self.assertJSON(r)

    def test_out_of_stock_leaves_every_answer_at_once_and_comes_back(self):
        item = self.top_item("c001")["item_id"]
        self.assertEqual(self.put(item, {"available": False}),
                         {"item_id": item, "available": False, "recommendable": True,
                          "in_model": True})
        try:
            # Out of every answer, but still a reason for others: the taste
            # of its buyers did not change.
            Answers(self, self.srv, model_of("flag")).assertNowhere(item,
                                                                         also_not_because=False)
        finally:
            r = self.put(item, {"available": True})
        self.assertEqual(r,
                         {"item_id": item, "available": True, "recommendable": True,
                          "in_model": True})
        self.assertEqual(self.top_item("c001")["item_id"], item)

    def test_not_recommendable_is_no_reason_either(self):
        top = self.top_item("c002")
        reason = top["because"][0]
        self.put(reason, {"recommendable": False})
        try:
            Answers(self, self.srv, model_of("flag")).assertNowhere(reason)
        finally:
            self.put(reason, {"recommendable": True})
        self.assertEqual(self.top_item("c002"), top)

    def test_overrides_survive_a_restart_and_a_reload(self):
        item = self.top_item("c004")["item_id"]
        self.put(item, {"available": False, "recommendable": True})
        try:
            with Server(model_of("flag"), tmp_path("state-put-2")) as other:
                # Another state knows nothing of it.
                self.assertIn(item, answer_ids(other, "/v1/customers/c004/recommendations?n=1"))
            self.assertEqual(self.srv.stop(), 0, self.srv.stderr())
            type(self).srv = self.srv = Server(model_of("flag"), self.state)
            self.assertNotIn(item, answer_ids(self.srv, "/v1/customers/c004/recommendations"))
            r = self.srv.request("POST", "/admin/reload")
            self.assertEqual(r.status, 200, r)
            self.assertNotIn(item, answer_ids(self.srv, "/v1/customers/c004/recommendations"))
            self.assertNotIn(item, answer_ids(self.srv, "/v1/customers/nobody/recommendations?n=20"))
        finally:
            self.put(item, {"available": True})

    def test_an_item_left_out_at_training_stays_out(self):
        r = put_item(self.srv, FEE, {"recommendable": True})
        self.assertError(r, 409, "excluded_by_model")
        self.assertEqual(self.put(FEE, {"available": False}),
                         {"item_id": FEE, "available": False, "recommendable": False,
                          "in_model": True})

    def test_error_answers(self):
        path = "/v1/items/P01"
        self.assertErrorCases([
            ErrorCase("unknown item", "PUT", "/v1/items/NOPE", 404, "unknown_item",
                      {"available": False}, says="NOPE"),
            ErrorCase("unknown field", "PUT", path, 400, "unknown_field",
                      {"available": False, "stock": 0}, says="stock"),
            ErrorCase("a catalog field of the wrong type", "PUT", path, 400, "invalid_field",
                      {"title": 5}, says="title"),
            ErrorCase("not a boolean", "PUT", path, 400, "invalid_field", {"available": "no"},
                      says="available"),
            ErrorCase("a number for a boolean", "PUT", path, 400, "invalid_field",
                      {"recommendable": 0}, says="recommendable"),
            ErrorCase("nothing to change", "PUT", path, 400, "missing_field", {}),
            ErrorCase("not JSON", "PUT", path, 400, "invalid_json", b"{available: false}"),
            ErrorCase("not an object", "PUT", path, 400, "invalid_json", [True]),
            ErrorCase("no body", "PUT", path, 400, "invalid_json", b""),
            ErrorCase("body over 4096 bytes", "PUT", path, 413, "body_too_large",
                      b'{"available":false' + b" " * 4100 + b"}"),
            ErrorCase("id over 256 bytes", "PUT", "/v1/items/" + "x" * 257, 400, "invalid_id",
                      {"available": False}),
            ErrorCase("reading is not a route", "GET", path, 405, "method_not_allowed",
                      allow="PUT"),
        ])
        # Nothing of it was applied.
        self.assertIn("P01", answer_ids(self.srv, "/v1/customers/nobody/recommendations?n=20"))


class ItemOverridesProtected(unittest.TestCase):
    def test_protected_like_the_other_writes(self):
        body = {"available": False}
        with Server(model_of("flag"), tmp_path("state-prot"),
                    extra=["--listen", "0.0.0.0:0"]) as srv:
            r = put_item(srv, "P01", body)
            self.assertEqual((r.status, r.json["error"]["code"]), (403, "protected_mode"))
            self.assertEqual(srv.stop(), 0, srv.stderr())
        keys = write(tmp_path("keys"), KEY + "\n")
        with Server(model_of("flag"), tmp_path("state-keys"),
                    extra=["--api-keys", keys]) as srv:
            r = put_item(srv, "P01", body)
            self.assertEqual((r.status, r.json["error"]["code"]), (401, "unauthorized"))
            r = put_item(srv, "P01", body, {"Authorization": "Bearer " + KEY})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(srv.stop(), 0, srv.stderr())


if __name__ == "__main__":
    sys.exit(ts.run_suite(__name__, sys.argv[1:], lambda: [SHARED.get("tmp")], "merch"))
