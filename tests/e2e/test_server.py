#!/usr/bin/env python3
"""End-to-end tests for shopkeeper: the real binary, over real HTTP.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_server.py [-v] [TestClass[.test]]

Trains models from the hand-written fixtures in tests/fixtures/, starts
`shopkeeper serve` on 127.0.0.1 with an ephemeral port (read from the startup
line on stderr), and checks the answers against values worked out by hand
(see EXPECTED below). Python 3 standard library only.

The last line printed is "N passed, N failed" (tests/run.sh reads it); the
exit code is 1 when anything failed.

Tests whose docstring starts with "BUG:" expose a defect of the server that
is still open; they are meant to fail until it is fixed.
"""
import gzip
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
INTERACTIONS = os.path.join(FIXTURES, "interactions.csv")
RETAIL = os.path.join(FIXTURES, "online-retail.csv")
RETAIL_COLUMNS = ("customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,"
                  "quantity=Quantity,price=UnitPrice")

CMD_TIMEOUT = 30        # seconds for any one CLI run
START_TIMEOUT = 10      # seconds for a server to print its port and answer /healthz
STOP_TIMEOUT = 10       # seconds for a server to exit after SIGTERM
HTTP_TIMEOUT = 5        # seconds per HTTP request
JSON_CT = "application/json; charset=utf-8"
TOL = 1e-4              # scores are float32 on the server side


def find_binary():
    path = os.environ.get("SHOPKEEPER") or os.path.join(ROOT, "bin", "shopkeeper")
    if not os.path.isabs(path) and not os.path.exists(path):
        path = os.path.join(ROOT, path)  # relative to the repository root
    return os.path.abspath(path)


BIN = find_binary()

# ---------------------------------------------------------------------------
# What the fixture should produce, worked out by hand.
#
# tests/fixtures/interactions.csv, after folding rows per customer and item
# (a purchase returned in full is not a purchase; --half-life 0 so every
# kept customer-item pair has X = 1):
#
#   alice: apple bread            bob:   apple bread cheese
#   carol: apple cheese dates     dave:  bread dates   (bought 3 bread, returned 1)
#   erin:  apple cheese           frank: eggs flour
#   grace: eggs flour Mug         heidi: apple         (flour returned in full)
#   17850: bread cheese tea/green ("17850.0" in the file)
#   ivan:  tea/green Mug          judy:  apple cheese eggs
#   (and one row without a customer, skipped)
#
# Customers per item: apple 6, cheese 5, bread 4, eggs 3,
#                     dates 2, flour 2, Mug 2, tea/green 2.
# cosine(i, j) = |Ci & Cj| / sqrt(|Ci| |Cj|); a customer's score for j is
# the sum of cosine(i, j) over the items i they bought (history weight 1).
# ---------------------------------------------------------------------------
MUG = 'Mug, "Big"'
TEA = "tea/green"
ITEMS = ["apple", "bread", "cheese", "dates", "eggs", "flour", MUG, TEA]
BASKETS = {
    "alice": {"apple", "bread"},
    "bob": {"apple", "bread", "cheese"},
    "carol": {"apple", "cheese", "dates"},
    "dave": {"bread", "dates"},
    "erin": {"apple", "cheese"},
    "frank": {"eggs", "flour"},
    "grace": {"eggs", "flour", MUG},
    "heidi": {"apple", "flour"},  # flour returned in full: not recommended back
    "17850": {"bread", "cheese", TEA},
    "ivan": {TEA, MUG},
    "judy": {"apple", "cheese", "eggs"},
}
r = math.sqrt
EXPECTED = {
    # similar items: (id, cosine), best first
    "similar_apple": [("cheese", 4 / r(6 * 5)), ("bread", 2 / r(6 * 4)),
                      ("dates", 1 / r(6 * 2)), ("eggs", 1 / r(6 * 3))],
    # heidi's returned flour must not pair flour with apple
    "similar_flour": [("eggs", 2 / r(2 * 3)), (MUG, 1 / r(2 * 2))],
    "similar_tea": [(MUG, 1 / r(2 * 2)), ("bread", 1 / r(2 * 4)), ("cheese", 1 / r(2 * 5))],
    # alice bought apple, bread:
    #   cheese = cos(apple,cheese) + cos(bread,cheese) = 4/sqrt30 + 2/sqrt20 = 1.1775
    #   dates  = cos(apple,dates)  + cos(bread,dates)  = 1/sqrt12 + 1/sqrt8  = 0.6422
    #   tea    = cos(bread,tea)                        = 1/sqrt8             = 0.3536
    #   eggs   = cos(apple,eggs)                       = 1/sqrt18            = 0.2357
    # because: the contributors, largest contribution first.
    "alice": [("cheese", 4 / r(30) + 2 / r(20), ["apple", "bread"]),
              ("dates", 1 / r(12) + 1 / r(8), ["bread", "apple"]),
              (TEA, 1 / r(8), ["bread"]),
              ("eggs", 1 / r(18), ["apple"])],
    # 17850 bought bread, cheese, tea/green:
    #   apple = cos(bread,apple) + cos(cheese,apple) = 2/sqrt24 + 4/sqrt30 = 1.1385
    #   dates = cos(bread,dates) + cos(cheese,dates) = 1/sqrt8 + 1/sqrt10  = 0.6698
    #   Mug   = cos(tea,Mug) = 1/2;  eggs = cos(cheese,eggs) = 1/sqrt15 = 0.2582
    "17850": [("apple", 2 / r(24) + 4 / r(30), ["cheese", "bread"]),
              ("dates", 1 / r(8) + 1 / r(10), ["bread", "cheese"]),
              (MUG, 1 / 2, [TEA]),
              ("eggs", 1 / r(15), ["cheese"])],
    # heidi: only apple counts (flour came back): apple's neighbours.
    "heidi": [("cheese", 4 / r(30), ["apple"]), ("bread", 2 / r(24), ["apple"]),
              ("dates", 1 / r(12), ["apple"]), ("eggs", 1 / r(18), ["apple"])],
    # popularity: customers per item; the four at 2 tie
    "popular_head": [("apple", 6), ("cheese", 5), ("bread", 4), ("eggs", 3)],
    "popular_tail": {"dates", "flour", MUG, TEA},
}
del r


def q(s):
    """Percent-encodes one path segment (everything but unreserved chars)."""
    return urllib.parse.quote(s, safe="")


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------
_LIVE_SERVERS = []  # every Server started and not yet stopped


def run(args, timeout=CMD_TIMEOUT, stdin=None):
    """Runs the binary; returns CompletedProcess (text)."""
    return subprocess.run([BIN] + list(args), input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def train(out_dir, interactions=INTERACTIONS, *extra):
    """Trains a model (cosine, no decay unless extra overrides) into out_dir."""
    args = ["train", "--interactions", interactions, "--out", out_dir, "--quiet",
            "--algo", "cosine", "--half-life", "0"] + list(extra)
    p = run(args)
    if p.returncode != 0:
        raise AssertionError("train failed (%d): %s" % (p.returncode, p.stderr))
    return p


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body
        self._json = None

    @property
    def json(self):
        if self._json is None:
            self._json = json.loads(self.body.decode("utf-8"))
        return self._json

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


def read_response(resp):
    body = resp.read()
    headers = {k.lower(): v for k, v in resp.getheaders()}
    return Response(resp.status, headers, body)


class Server:
    """One `shopkeeper serve` process on 127.0.0.1 and an ephemeral port."""

    def __init__(self, model_dir, state_dir, threads=2, extra=()):
        self.model_dir = model_dir
        self.state_dir = state_dir
        self.stderr_path = state_dir + ".stderr"
        self.port = None
        self.proc = None
        self.returncode = None
        self._errf = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--model", model_dir, "--state", state_dir, "--listen",
             "127.0.0.1:0", "--threads", str(threads)] + list(extra),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._errf)
        _LIVE_SERVERS.append(self)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while self.port is None:
            m = re.search(r"on port (\d+)", self.stderr())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise AssertionError("serve exited with %d before listening: %s"
                                     % (self.proc.returncode, self.stderr()))
            if time.monotonic() > deadline:
                raise AssertionError("serve printed no port within %ds: %s"
                                     % (START_TIMEOUT, self.stderr()))
            time.sleep(0.02)
        last = None
        while time.monotonic() < deadline:
            try:
                if self.get("/healthz").status == 200:
                    return
            except OSError as e:
                last = e
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("serve not healthy within %ds (%r): %s"
                             % (START_TIMEOUT, last, self.stderr()))

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)

    def request(self, method, path, body=None, headers=None, conn=None):
        own = conn is None
        c = self.connection() if own else conn
        try:
            c.request(method, path, body=body, headers=headers or {})
            return read_response(c.getresponse())
        finally:
            if own:
                c.close()

    def get(self, path, conn=None):
        return self.request("GET", path, conn=conn)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM, wait; returns the exit code (kills it if it hangs)."""
        if self.returncode is not None:
            return self.returncode
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
                self.returncode = "hung after SIGTERM"
        finally:
            self._close()
        return self.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        if self.returncode is None and self.proc:
            self.returncode = self.proc.returncode
        self._close()

    def _close(self):
        if self in _LIVE_SERVERS:
            _LIVE_SERVERS.remove(self)
        if not self._errf.closed:
            self._errf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


# ---------------------------------------------------------------------------
# The shared model and server (module fixture)
# ---------------------------------------------------------------------------
SHARED = {}


def setUpModule():
    tmp = tempfile.mkdtemp(prefix="shopkeeper-e2e-")
    SHARED["tmp"] = tmp
    model = os.path.join(tmp, "model")
    train(model)
    SHARED["model"] = model
    meta = run(["inspect", model])
    SHARED["meta"] = json.loads(meta.stdout)
    SHARED["server"] = Server(model, os.path.join(tmp, "state"))


def tearDownModule():
    try:
        srv = SHARED.get("server")
        if srv is not None:
            alive = srv.alive()
            rc = srv.stop()
            if not alive:
                raise AssertionError("the shared server died during the tests: %s" % srv.stderr())
            if rc != 0:
                raise AssertionError("shared server exited %r after SIGTERM: %s"
                                     % (rc, srv.stderr()))
    finally:
        for s in list(_LIVE_SERVERS):
            s.kill()
        shutil.rmtree(SHARED.get("tmp", ""), ignore_errors=True)


class Base(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shopkeeper-e2e-t-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    @property
    def srv(self):
        return SHARED["server"]

    def get(self, path, conn=None):
        return self.srv.get(path, conn=conn)

    def assertJSON(self, resp):
        self.assertEqual(resp.headers.get("content-type"), JSON_CT, resp)
        return resp.json

    def assertError(self, resp, status, code=None):
        """An error answer: status, JSON content type, {"error":{"code","message"}}."""
        self.assertEqual(resp.status, status, resp)
        body = self.assertJSON(resp)
        self.assertEqual(set(body), {"error"}, body)
        err = body["error"]
        self.assertIsInstance(err.get("code"), str, body)
        self.assertIsInstance(err.get("message"), str, body)
        self.assertTrue(err["message"], body)
        if code is not None:
            self.assertEqual(err["code"], code, body)
        return err

    def assertServing(self, srv=None):
        srv = srv or self.srv
        self.assertTrue(srv.alive(), "server died: %s" % srv.stderr())
        resp = srv.get("/healthz")
        self.assertEqual(resp.status, 200, resp)

    def recs(self, customer, n=None, raw=False):
        path = "/v1/customers/%s/recommendations" % (customer if raw else q(customer))
        if n is not None:
            path += "?n=%s" % n
        return self.get(path)

    def similar(self, item, n=None):
        path = "/v1/items/%s/similar" % q(item)
        if n is not None:
            path += "?n=%s" % n
        return self.get(path)

    def assertItems(self, items, expected, because=True):
        """items (from JSON) match expected [(id, score[, because])] in order."""
        self.assertEqual([it["item_id"] for it in items], [e[0] for e in expected], items)
        for it, e in zip(items, expected):
            self.assertAlmostEqual(it["score"], e[1], delta=TOL, msg=it)
            if because and len(e) > 2:
                self.assertEqual(it["because"], e[2], it)


# ---------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------
class HealthTests(Base):
    def test_healthz(self):
        resp = self.get("/healthz")
        self.assertEqual(resp.status, 200)
        self.assertEqual(self.assertJSON(resp), {"status": "ok"})

    def test_readyz(self):
        resp = self.get("/readyz")
        self.assertEqual(resp.status, 200)
        body = self.assertJSON(resp)
        self.assertEqual(body["status"], "ready")
        self.assertEqual(body["algorithm"], "cosine")
        self.assertEqual(body["model"], SHARED["meta"]["model_id"])
        self.assertEqual(body["items"], 8)
        self.assertEqual(body["customers"], 11)

    def test_head_healthz(self):
        resp = self.srv.request("HEAD", "/healthz")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, b"")
        self.assertEqual(resp.headers.get("content-type"), JSON_CT)


# ---------------------------------------------------------------------------
# Per-customer recommendations
# ---------------------------------------------------------------------------
class CustomerRecommendationTests(Base):
    def test_expected_items_order_scores_because(self):
        resp = self.recs("alice", 4)
        self.assertEqual(resp.status, 200, resp)
        body = self.assertJSON(resp)
        self.assertEqual(body["customer_id"], "alice")
        self.assertEqual(body["source"], "personal")
        self.assertEqual(body["model"], SHARED["meta"]["model_id"])
        self.assertItems(body["items"], EXPECTED["alice"])

    def test_scores_descending(self):
        for cust in ("alice", "17850", "heidi", "bob", "judy"):
            items = self.recs(cust, 100).json["items"]
            personal = [it["score"] for it in items if it.get("source") != "popular"]
            self.assertTrue(personal, cust)
            self.assertEqual(personal, sorted(personal, reverse=True), (cust, items))

    def test_scores_descending_including_top_up(self):
        """Popular top-ups after personal items score 0: scores never rise."""
        items = self.recs("alice", 10).json["items"]
        scores = [it["score"] for it in items]
        self.assertEqual(scores, sorted(scores, reverse=True), items)

    def test_purchased_items_excluded(self):
        for cust, basket in BASKETS.items():
            body = self.recs(cust, 100).json
            got = [it["item_id"] for it in body["items"]]
            self.assertFalse(basket & set(got), (cust, got))
            self.assertEqual(len(got), len(set(got)), (cust, got))  # no duplicates
            # 8 items in the model: everything not bought can be offered
            self.assertEqual(set(got), set(ITEMS) - basket, (cust, got))

    def test_because_lists_history_items(self):
        for cust, basket in BASKETS.items():
            for it in self.recs(cust, 100).json["items"]:
                self.assertIsInstance(it["because"], list, it)
                self.assertLessEqual(set(it["because"]), basket, (cust, it))
                if it.get("source") != "popular":
                    self.assertTrue(it["because"], (cust, it))

    def test_n_respected(self):
        for n in (1, 2, 3, 4):
            items = self.recs("alice", n).json["items"]
            self.assertItems(items, EXPECTED["alice"][:n])
        # alice can be offered 6 of the 8 items, whatever n above that
        for n in (6, 7, 10, 100):
            self.assertEqual(len(self.recs("alice", n).json["items"]), 6, n)
        self.assertEqual(len(self.recs("alice").json["items"]), 6)  # default n=10
        self.assertEqual(len(self.recs("nobody").json["items"]), 8)

    def test_top_up_with_popular_items(self):
        body = self.recs("alice", 10).json
        self.assertEqual(body["source"], "personal")
        items = body["items"]
        self.assertItems(items[:4], EXPECTED["alice"])
        for it in items[:4]:
            self.assertNotIn("source", it)
        self.assertEqual({it["item_id"] for it in items[4:]}, {"flour", MUG})
        for it in items[4:]:
            self.assertEqual(it.get("source"), "popular", it)
            self.assertEqual(it["because"], [], it)

    def test_unknown_customer_gets_popular(self):
        for cust in ("nobody", "caf\u00e9", "x" * 256):
            resp = self.recs(cust, 10)
            self.assertEqual(resp.status, 200, resp)
            body = self.assertJSON(resp)
            self.assertEqual(body["customer_id"], cust)
            self.assertEqual(body["source"], "popular")
            items = body["items"]
            self.assertItems(items[:4], EXPECTED["popular_head"])
            self.assertEqual({it["item_id"] for it in items[4:]}, EXPECTED["popular_tail"])
            for it in items[4:]:
                self.assertAlmostEqual(it["score"], 2, delta=TOL)
        self.assertItems(self.recs("nobody", 2).json["items"], EXPECTED["popular_head"][:2])

    def test_float_customer_id_is_normalised(self):
        """The file says 17850.0; 17850, 17850.0 and ' 17850.0 ' all find it."""
        for asked in ("17850", "17850.0", "17850.000", " 17850.0 "):
            body = self.recs(asked, 4).json
            self.assertEqual(body["customer_id"], "17850", asked)
            self.assertEqual(body["source"], "personal", asked)
            self.assertItems(body["items"], EXPECTED["17850"])

    def test_percent_encoded_customer_id(self):
        body = self.recs("%61lic%65", 4, raw=True).json
        self.assertEqual(body["customer_id"], "alice")
        self.assertItems(body["items"], EXPECTED["alice"])

    def test_full_return_is_not_taste(self):
        """heidi returned her flour: only apple shapes her recommendations."""
        body = self.recs("heidi", 4).json
        self.assertEqual(body["source"], "personal")
        self.assertItems(body["items"], EXPECTED["heidi"])

    def test_partial_return_still_bought(self):
        """dave bought 3 bread and returned 1: bread stays excluded."""
        got = [it["item_id"] for it in self.recs("dave", 100).json["items"]]
        self.assertNotIn("bread", got)
        self.assertNotIn("dates", got)


# ---------------------------------------------------------------------------
# Similar items
# ---------------------------------------------------------------------------
class SimilarItemTests(Base):
    def test_neighbours_of_an_item(self):
        resp = self.similar("apple")
        self.assertEqual(resp.status, 200, resp)
        body = self.assertJSON(resp)
        self.assertEqual(body["item_id"], "apple")
        self.assertEqual(body["model"], SHARED["meta"]["model_id"])
        self.assertItems(body["items"], EXPECTED["similar_apple"])

    def test_n_respected(self):
        for n in (1, 2, 3):
            self.assertItems(self.similar("apple", n).json["items"],
                             EXPECTED["similar_apple"][:n])
        self.assertEqual(len(self.similar("apple", 100).json["items"]), 4)

    def test_returned_purchase_makes_no_pair(self):
        self.assertItems(self.similar("flour").json["items"], EXPECTED["similar_flour"])

    def test_id_with_slash(self):
        resp = self.get("/v1/items/tea%2Fgreen/similar")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json["item_id"], TEA)
        self.assertItems(resp.json["items"], EXPECTED["similar_tea"])

    def test_id_with_comma_and_quotes(self):
        resp = self.similar(MUG)
        self.assertEqual(resp.status, 200, resp)
        body = resp.json
        self.assertEqual(body["item_id"], MUG)
        items = body["items"]
        self.assertEqual({it["item_id"] for it in items[:2]}, {"flour", TEA})
        for it in items[:2]:
            self.assertAlmostEqual(it["score"], 0.5, delta=TOL)
        self.assertEqual(items[2]["item_id"], "eggs")
        self.assertAlmostEqual(items[2]["score"], 1 / math.sqrt(2 * 3), delta=TOL)
        # and it comes back from customer recommendations with its quotes intact
        got = [it["item_id"] for it in self.recs("17850", 4).json["items"]]
        self.assertIn(MUG, got)

    def test_unknown_item_404(self):
        for item in ("nope", "Apple", "caf\u00e9"):
            err = self.assertError(self.similar(item), 404, "unknown_item")
            self.assertIn(item, err["message"])
        self.assertServing()


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
class ErrorTests(Base):
    def test_unknown_route_404(self):
        for path in ("/", "/v1", "/v2/customers/alice/recommendations", "/v1/customerz/alice",
                     "/v1/customers/alice/recommendations/extra", "/v1/items/apple",
                     "/v1/customers//recommendations", "/healthz/x", "/a/b/c/d/e/f/g/h/i/j"):
            self.assertError(self.get(path), 404, "not_found")
        self.assertServing()

    def test_wrong_method_405_with_allow(self):
        for method, path in (("POST", "/healthz"), ("DELETE", "/readyz"),
                             ("PUT", "/v1/customers/alice/recommendations"),
                             ("POST", "/v1/items/apple/similar")):
            resp = self.srv.request(method, path, body=b'{"x":1}',
                                    headers={"Content-Type": "application/json"})
            self.assertError(resp, 405, "method_not_allowed")
            self.assertEqual(resp.headers.get("allow"), "GET", resp.headers)
        self.assertServing()

    def test_bad_n_400(self):
        for n in ("0", "101", "abc", "-1", "", "1.5", "1e2", "5x", "%ZZ", "1000", "99999999999"):
            for path in ("/v1/customers/alice/recommendations?n=" + n,
                         "/v1/customers/nobody/recommendations?n=" + n,
                         "/v1/items/apple/similar?n=" + n):
                err = self.assertError(self.get(path), 400, "invalid_parameter")
                self.assertIn("n", err["message"])
        self.assertServing()

    def test_n_bounds_accepted(self):
        for n, want in (("1", 1), ("100", 6), ("010", 6), ("%33", 3)):
            resp = self.get("/v1/customers/alice/recommendations?n=" + n)
            self.assertEqual(resp.status, 200, (n, resp))
            self.assertEqual(len(resp.json["items"]), want, n)

    def test_bad_percent_encoding_400(self):
        for path in ("/v1/customers/%ZZ/recommendations", "/v1/customers/ab%4/recommendations",
                     "/v1/customers/%4", "/v1/items/apple/similar%4", "/v1/items/%G1/similar",
                     "/v1/customers/%/recommendations", "/healthz%"):
            self.assertError(self.get(path), 400)
        self.assertServing()

    def test_encoded_slash_is_part_of_id(self):
        err = self.assertError(self.get("/v1/items/apple%2Fx/similar"), 404, "unknown_item")
        self.assertIn("apple/x", err["message"])
        body = self.get("/v1/customers/a%2Fb/recommendations").json
        self.assertEqual(body["customer_id"], "a/b")
        self.assertEqual(body["source"], "popular")
        # the decoded slash does not split the path either way
        self.assertError(self.get("/v1/customers%2Falice/recommendations"), 404, "not_found")

    def test_id_over_256_bytes_400(self):
        for path in ("/v1/customers/%s/recommendations" % ("x" * 257),
                     "/v1/items/%s/similar" % ("y" * 257),
                     "/v1/customers/%s/recommendations" % ("%C3%A9" * 129),  # 258 bytes
                     "/v1/customers/%s/recommendations" % ("z" * 1000)):
            self.assertError(self.get(path), 400, "invalid_id")
        self.assertServing()

    def test_very_long_id_400(self):
        """An id of 5 KB is an id over the limit, not a missing route."""
        resp = self.get("/v1/customers/%s/recommendations" % ("x" * 5000))
        self.assertServing()
        self.assertError(resp, 400, "invalid_id")

    def test_huge_request_line_gets_json_error(self):
        """A 12 KB request line (over the 8 KiB path limit, under the 16 KiB
        connection memory) gets our JSON 414, not libmicrohttpd's HTML page."""
        resp = self.get("/v1/customers/%s/recommendations" % ("x" * 12000))
        self.assertServing()
        self.assertError(resp, 414, "uri_too_long")

    def test_invalid_utf8_id_400(self):
        for path in ("/v1/customers/%FF/recommendations", "/v1/items/%FF/similar",
                     "/v1/customers/ab%C3/recommendations", "/v1/customers/%C0%AF/recommendations",
                     "/v1/customers/%ED%A0%80/recommendations", "/v1/customers/a%00b/recommendations"):
            err = self.assertError(self.get(path), 400, "invalid_id")
            err["message"].encode("utf-8")  # JSON text stayed valid
        self.assertServing()

    def test_unusable_id_400(self):
        for path in ("/v1/customers/%01/recommendations", "/v1/customers/%20/recommendations",
                     "/v1/items/a%0Ab/similar", "/v1/items/%09%20/similar"):
            self.assertError(self.get(path), 400, "invalid_id")
        self.assertServing()

    def test_every_error_leaves_server_serving(self):
        bad = ["/nope", "/v1/customers/%ZZ/recommendations", "/v1/items/none/similar",
               "/v1/items/apple/similar?n=0", "/v1/customers/%FF/recommendations"]
        for i in range(3):
            for path in bad:
                self.assertGreaterEqual(self.get(path).status, 400)
                self.assertServing()


# ---------------------------------------------------------------------------
# Keep-alive
# ---------------------------------------------------------------------------
class KeepAliveTests(Base):
    def test_many_requests_over_one_connection(self):
        conn = self.srv.connection()
        try:
            conn.connect()
            conn.auto_open = 0  # a silent reconnect would raise NotConnected
            sock = conn.sock
            local = sock.getsockname()
            plan = [("GET", "/healthz", None, 200),
                    ("GET", "/v1/customers/alice/recommendations?n=4", None, 200),
                    ("GET", "/v1/items/apple/similar?n=2", None, 200),
                    ("GET", "/v1/customers/nobody/recommendations", None, 200),
                    ("GET", "/nope", None, 404),
                    ("GET", "/v1/items/apple/similar?n=0", None, 400),
                    ("GET", "/v1/items/none/similar", None, 404),
                    ("GET", "/v1/customers/%ZZ/recommendations", None, 400),
                    ("POST", "/healthz", b'{"a":1}', 405),
                    ("GET", "/readyz", None, 200)]
            for i in range(60):
                method, path, body, status = plan[i % len(plan)]
                conn.request(method, path, body=body)
                resp = read_response(conn.getresponse())
                self.assertEqual(resp.status, status, (i, path, resp))
                self.assertIsNotNone(conn.sock, "connection closed after %s %s" % (method, path))
                self.assertIs(conn.sock, sock, (i, path))
                self.assertEqual(conn.sock.getsockname(), local, (i, path))
                self.assertNotEqual(resp.headers.get("connection", "").lower(), "close", path)
                if path.startswith("/v1/customers/alice"):
                    self.assertItems(resp.json["items"], EXPECTED["alice"])
        finally:
            conn.close()


    def test_pipelined_requests_answered_in_order(self):
        reqs = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                b"GET /v1/items/apple/similar?n=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=HTTP_TIMEOUT)
        data = b""
        try:
            s.sendall(reqs)
            deadline = time.monotonic() + HTTP_TIMEOUT
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        statuses = [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", data)]
        self.assertEqual(statuses, [200, 200, 404, 200], data)
        self.assertIn(b'"item_id":"cheese"', data)


# ---------------------------------------------------------------------------
# Request body limit
# ---------------------------------------------------------------------------
def raw_exchange(port, head, body_chunks=(), timeout=HTTP_TIMEOUT):
    """Sends head (+ chunks, ignoring a reset while sending) on a raw socket and
    reads one response; returns (status, headers, body, sock)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head)
        for chunk in body_chunks:
            s.sendall(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and close before reading everything
    data = b""
    deadline = time.monotonic() + timeout
    status, headers, body = None, {}, b""
    try:
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                head_b, _, body = data.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head_b)
                if m and len(body) >= int(m.group(1)):
                    break
    except ConnectionResetError:
        pass
    if b"\r\n\r\n" in data:
        head_b, _, body = data.partition(b"\r\n\r\n")
        lines = head_b.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return status, headers, body, s


class BodyLimitTests(Base):
    LIMIT = 1 << 20

    def check_413(self, status, headers, body):
        self.assertEqual(status, 413, body)
        self.assertEqual(headers.get("content-type"), JSON_CT, headers)
        err = json.loads(body)["error"]
        self.assertEqual(err["code"], "body_too_large")
        self.assertIsInstance(err["message"], str)

    def test_content_length_over_limit_headers_only(self):
        for path in ("/v1/events", "/healthz", "/nope"):
            head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\n\r\n" % (path, self.LIMIT + 1)).encode()
            status, headers, body, s = raw_exchange(self.srv.port, head)
            s.close()
            self.check_413(status, headers, body)
            self.assertServing()

    def test_content_length_over_limit_with_body(self):
        n = 2 * self.LIMIT
        head = ("POST /v1/recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Length: %d\r\n\r\n" % n).encode()
        status, headers, body, s = raw_exchange(self.srv.port, head, [b"x" * n])
        s.close()
        self.check_413(status, headers, body)
        self.assertServing()

    def test_chunked_body_over_limit(self):
        head = b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunks = [b"10000\r\n" + b"y" * 0x10000 + b"\r\n"] * 17 + [b"0\r\n\r\n"]  # 1.06 MiB
        status, headers, body, s = raw_exchange(self.srv.port, head, chunks)
        s.close()
        self.check_413(status, headers, body)
        self.assertServing()

    def test_body_at_limit_is_read(self):
        """Exactly 1 MiB is allowed: the route answers (405 here), not 413."""
        for n in (10, self.LIMIT):
            resp = self.srv.request("POST", "/healthz", body=b"z" * n)
            self.assertError(resp, 405, "method_not_allowed")
        self.assertServing()


# ---------------------------------------------------------------------------
# Concurrency
# ---------------------------------------------------------------------------
class ConcurrencyTests(Base):
    def test_parallel_clients(self):
        cases = [
            ("/v1/customers/alice/recommendations?n=4", 200,
             lambda b: [it["item_id"] for it in b["items"]] == [e[0] for e in EXPECTED["alice"]]),
            ("/v1/customers/17850/recommendations?n=4", 200,
             lambda b: [it["item_id"] for it in b["items"]] == [e[0] for e in EXPECTED["17850"]]),
            ("/v1/items/apple/similar", 200,
             lambda b: [it["item_id"] for it in b["items"]]
             == [e[0] for e in EXPECTED["similar_apple"]]),
            ("/v1/customers/nobody/recommendations?n=4", 200,
             lambda b: b["source"] == "popular" and [it["item_id"] for it in b["items"]]
             == [e[0] for e in EXPECTED["popular_head"]]),
            ("/v1/items/none/similar", 404, lambda b: b["error"]["code"] == "unknown_item"),
            ("/v1/customers/heidi/recommendations?n=4", 200,
             lambda b: [it["item_id"] for it in b["items"]] == [e[0] for e in EXPECTED["heidi"]]),
        ]
        errors = []
        counts = [0] * 8
        port = self.srv.port

        def worker(t):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
            try:
                for i in range(50):
                    path, status, check = cases[(t + i) % len(cases)]
                    conn.request("GET", path)
                    resp = read_response(conn.getresponse())
                    if resp.status != status or not check(resp.json):
                        errors.append((t, i, path, resp))
                        return
                    counts[t] += 1
            except Exception as e:  # reported below
                errors.append((t, "exception", repr(e)))
            finally:
                conn.close()

        threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(8)]
        t0 = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=max(0.1, 30 - (time.monotonic() - t0)))
        self.assertFalse([th for th in threads if th.is_alive()], "clients hung")
        self.assertEqual(errors, [])
        self.assertEqual(counts, [50] * 8)
        self.assertServing()


# ---------------------------------------------------------------------------
# Server lifecycle
# ---------------------------------------------------------------------------
class LifecycleTests(Base):
    def test_sigterm_clean_shutdown_with_idle_keepalive(self):
        srv = Server(SHARED["model"], os.path.join(self.tmp, "state"))
        conn = None
        try:
            conn = srv.connection()
            self.assertEqual(srv.get("/readyz", conn=conn).status, 200)
            t0 = time.monotonic()
            rc = srv.stop()  # with conn still open and idle
            self.assertEqual(rc, 0, srv.stderr())
            self.assertLess(time.monotonic() - t0, STOP_TIMEOUT)
            self.assertIn("SIGTERM", srv.stderr())
        finally:
            if conn:
                conn.close()
            srv.kill()

    def test_sigint_clean_shutdown(self):
        srv = Server(SHARED["model"], os.path.join(self.tmp, "state"))
        try:
            srv.proc.send_signal(signal.SIGINT)
            self.assertEqual(srv.proc.wait(timeout=STOP_TIMEOUT), 0, srv.stderr())
        finally:
            srv.kill()

    def test_restart_on_same_state(self):
        state = os.path.join(self.tmp, "state")
        for _ in range(2):
            srv = Server(SHARED["model"], state)
            try:
                self.assertItems(srv.get("/v1/customers/alice/recommendations?n=4").json["items"],
                                 EXPECTED["alice"])
                self.assertEqual(srv.stop(), 0, srv.stderr())
            finally:
                srv.kill()

    def test_retrain_into_served_directory(self):
        """A new train run into the directory being served replaces the model
        for the next start and does not disturb the running server."""
        model = os.path.join(self.tmp, "model")
        train(model)
        srv = Server(model, os.path.join(self.tmp, "state"))
        try:
            before = srv.get("/readyz").json
            train(model, INTERACTIONS, "--algo", "jaccard")
            self.assertEqual(json.loads(run(["inspect", model]).stdout)["algorithm"], "jaccard")
            for _ in range(3):
                self.assertEqual(srv.get("/readyz").json, before)
                self.assertItems(srv.get("/v1/items/apple/similar").json["items"],
                                 EXPECTED["similar_apple"])
            self.assertEqual(srv.stop(), 0, srv.stderr())
        finally:
            srv.kill()
        srv = Server(model, os.path.join(self.tmp, "state"))
        try:
            self.assertEqual(srv.get("/readyz").json["algorithm"], "jaccard")
            self.assertEqual(srv.stop(), 0, srv.stderr())
        finally:
            srv.kill()

    def test_ipv6_loopback(self):
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
        except OSError:
            self.skipTest("no ::1")
        errp = os.path.join(self.tmp, "v6.stderr")
        with open(errp, "wb") as errf:
            p = subprocess.Popen([BIN, "serve", "--model", SHARED["model"], "--state",
                                  os.path.join(self.tmp, "state6"), "--listen", "[::1]:0",
                                  "--threads", "1"], stdout=subprocess.DEVNULL, stderr=errf)
        try:
            port = None
            deadline = time.monotonic() + START_TIMEOUT
            while port is None and time.monotonic() < deadline and p.poll() is None:
                with open(errp) as f:
                    m = re.search(r"on port (\d+)", f.read())
                port = int(m.group(1)) if m else None
                time.sleep(0.02)
            with open(errp) as f:
                self.assertIsNotNone(port, f.read())
            resp = None
            while time.monotonic() < deadline:
                try:
                    c = http.client.HTTPConnection("::1", port, timeout=HTTP_TIMEOUT)
                    c.request("GET", "/healthz")
                    resp = read_response(c.getresponse())
                    c.close()
                    break
                except OSError:
                    time.sleep(0.05)
            self.assertIsNotNone(resp)
            self.assertEqual(resp.status, 200)
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=STOP_TIMEOUT), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=STOP_TIMEOUT)


# ---------------------------------------------------------------------------
# Algorithms
# ---------------------------------------------------------------------------
class AlgorithmTests(Base):
    # hand-derived similar(apple) for the simple ones; G_ij / ...
    SIMILAR_APPLE = {
        "cosine": EXPECTED["similar_apple"],
        # jaccard: G_ij / (G_ii + G_jj - G_ij)
        "jaccard": [("cheese", 4 / 7), ("bread", 2 / 8), ("dates", 1 / 7), ("eggs", 1 / 8)],
        # lift: G_ij / (G_ii G_jj); bread and dates tie at 1/12
        "lift": [("cheese", 4 / 30), (None, 2 / 24), (None, 1 / 12), ("eggs", 1 / 18)],
    }

    def test_all_algorithms_train_and_serve(self):
        for algo in ("cosine", "jaccard", "lift", "ease"):
            with self.subTest(algo=algo):
                model = os.path.join(self.tmp, "m-" + algo)
                train(model, INTERACTIONS, "--algo", algo)
                meta = json.loads(run(["inspect", model]).stdout)
                self.assertEqual(meta["algorithm"], algo)
                srv = Server(model, os.path.join(self.tmp, "s-" + algo))
                try:
                    ready = srv.get("/readyz").json
                    self.assertEqual(ready["algorithm"], algo)
                    self.assertEqual(ready["model"], meta["model_id"])
                    for cust, basket in BASKETS.items():
                        body = srv.get("/v1/customers/%s/recommendations?n=100" % q(cust)).json
                        self.assertEqual(body["source"], "personal", (algo, cust, body))
                        got = [it["item_id"] for it in body["items"]]
                        self.assertEqual(set(got), set(ITEMS) - basket, (algo, cust, got))
                        personal = [it["score"] for it in body["items"]
                                    if it.get("source") != "popular"]
                        self.assertTrue(all(s > 0 for s in personal), (algo, cust, body))
                        self.assertEqual(personal, sorted(personal, reverse=True), (algo, cust))
                    sim = srv.get("/v1/items/apple/similar").json["items"]
                    self.assertTrue(sim, algo)
                    self.assertEqual(sim[0]["item_id"], "cheese", (algo, sim))
                    self.assertNotIn("apple", [it["item_id"] for it in sim])
                    want = self.SIMILAR_APPLE.get(algo)
                    if want:
                        self.assertEqual(len(sim), len(want), (algo, sim))
                        for it, (iid, score) in zip(sim, want):
                            if iid is not None:
                                self.assertEqual(it["item_id"], iid, (algo, sim))
                            self.assertAlmostEqual(it["score"], score, delta=TOL, msg=(algo, it))
                    if algo == "lift":
                        self.assertEqual({it["item_id"] for it in sim[1:3]}, {"bread", "dates"})
                    flour = [it["item_id"] for it in srv.get("/v1/items/flour/similar").json["items"]]
                    self.assertNotIn("apple", flour, algo)
                    self.assertEqual(srv.stop(), 0, srv.stderr())
                finally:
                    srv.kill()


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def inspect_items(model):
    out = {}
    for item in ITEMS:
        p = run(["inspect", model, item])
        out[item] = (p.returncode, p.stdout)
    return out


class CliTests(Base):
    def write(self, name, text, mode="w"):
        path = os.path.join(self.tmp, name)
        with open(path, mode) as f:
            f.write(text)
        return path

    def assertFails(self, p, code, *needles):
        self.assertEqual(p.returncode, code, (p.stdout, p.stderr))
        self.assertTrue(p.stderr.strip(), "no message on stderr")
        for n in needles:
            self.assertIn(n, p.stderr)

    def test_help(self):
        for args in (["--help"], ["train", "--help"], ["serve", "--help"],
                     ["inspect", "--help"], ["eval", "--help"]):
            p = run(args)
            self.assertEqual(p.returncode, 0, (args, p.stderr))
            self.assertIn("usage", p.stdout.lower(), args)

    def test_usage_errors_exit_2(self):
        out = os.path.join(self.tmp, "m")
        cases = [
            (["train", "--interactions", INTERACTIONS], "--out"),
            (["train", "--out", out], "--interactions"),
            (["train", "--interactions", INTERACTIONS, "--out", out, "--bogus"], "--bogus"),
            (["train", "--interactions", INTERACTIONS, "--out", out, "--algo", "magic"], "magic"),
            (["train", "--interactions", INTERACTIONS, "--out", out, "--neighbors", "0"],
             "--neighbors"),
            (["train", "--interactions", INTERACTIONS, "--out", out, "--columns", "nope=X"],
             "nope"),
            (["train", "--interactions", INTERACTIONS, "--out", out, "extra"], "extra"),
            (["serve", "--model", out], "--state"),
            (["serve", "--state", out], "--model"),
            (["serve", "--model", out, "--state", out, "--threads", "0"], "--threads"),
            (["inspect"], "directory"),
            (["frobnicate"], "frobnicate"),
            ([], "usage"),
        ]
        for args, needle in cases:
            p = run(args)
            self.assertFails(p, 2, needle)
        self.assertFalse(os.path.exists(out))

    def test_nonexistent_file_exit_1(self):
        missing = os.path.join(self.tmp, "no-such.csv")
        p = run(["train", "--interactions", missing, "--out", os.path.join(self.tmp, "m")])
        self.assertFails(p, 1, missing)

    def test_empty_file_exit_1(self):
        path = self.write("empty.csv", "")
        p = run(["train", "--interactions", path, "--out", os.path.join(self.tmp, "m")])
        self.assertFails(p, 1, "empty")

    def test_header_only_exit_1(self):
        path = self.write("header.csv", "customer_id,item_id\n")
        p = run(["train", "--interactions", path, "--out", os.path.join(self.tmp, "m")])
        self.assertFails(p, 1, "no usable rows")

    def test_missing_customer_column_exit_1(self):
        path = self.write("nocust.csv", "user,item_id\nu1,a\nu2,b\n")
        p = run(["train", "--interactions", path, "--out", os.path.join(self.tmp, "m")])
        self.assertFails(p, 1, "customer_id")

    def test_strict_bad_row_names_line(self):
        # line 1 header, lines 2-3 one record (quoted newline), line 4 no customer
        text = ('customer_id,item_id,note\nc1,a,"two\nlines"\n,b,x\nc2,a,\n')
        path = self.write("strict.csv", text)
        out = os.path.join(self.tmp, "m")
        p = run(["train", "--interactions", path, "--out", out, "--strict", "--quiet"])
        self.assertFails(p, 1, "line 4")
        # without --strict the row is skipped, reported with the same line
        p = run(["train", "--interactions", path, "--out", out, "--quiet"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("line 4", p.stderr)
        meta = json.loads(run(["inspect", out]).stdout)
        self.assertEqual((meta["rows_read"], meta["rows_skipped"]), (3, 1))

    def test_all_rows_bad_exit_1(self):
        text = "customer_id,item_id,quantity\n,a,1\nc1,,1\nc2,b,zero\nc3,c,0\n"
        path = self.write("allbad.csv", text)
        p = run(["train", "--interactions", path, "--out", os.path.join(self.tmp, "m")])
        self.assertFails(p, 1)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "m", "model.mdb")))

    def test_gzip_input_trains_same_model(self):
        gz = os.path.join(self.tmp, "interactions.csv.gz")
        with open(INTERACTIONS, "rb") as f, gzip.open(gz, "wb") as g:
            g.write(f.read())
        plain, packed = os.path.join(self.tmp, "plain"), os.path.join(self.tmp, "packed")
        train(plain)
        train(packed, gz)
        a, b = inspect_items(plain), inspect_items(packed)
        self.assertEqual(a, b)
        self.assertTrue(all(rc == 0 for rc, _ in a.values()), a)
        ma = json.loads(run(["inspect", plain]).stdout)
        mb = json.loads(run(["inspect", packed]).stdout)
        for key in ("items", "customers", "interactions", "rows_read", "rows_skipped", "as_of"):
            self.assertEqual(ma[key], mb[key], key)

    def test_bom_and_crlf_train_same_model(self):
        with open(INTERACTIONS, "rb") as f:
            data = f.read()
        path = self.write("crlf.csv", b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n"), "wb")
        out = os.path.join(self.tmp, "crlf")
        train(out, path)
        self.assertEqual(inspect_items(out), inspect_items(SHARED["model"]))

    def test_as_of_leaves_later_rows_out(self):
        # rows up to 2024-03-05 00:00: alice, bob, carol (first visit), erin
        out = os.path.join(self.tmp, "asof")
        train(out, INTERACTIONS, "--as-of", "2024-03-05")
        meta = json.loads(run(["inspect", out]).stdout)
        self.assertEqual((meta["customers"], meta["items"], meta["rows_read"],
                          meta["rows_skipped"]), (4, 4, 31, 21))
        self.assertEqual(meta["as_of"], "2024-03-05T00:00:00Z")

    def test_out_directory_created(self):
        out = os.path.join(self.tmp, "a", "b", "model")
        train(out)
        self.assertTrue(os.path.exists(os.path.join(out, "model.mdb")))
        path = self.write("not-a-dir", "x")
        p = run(["train", "--interactions", INTERACTIONS, "--out", path, "--quiet"])
        self.assertFails(p, 1, path)

    def test_stdin_input(self):
        out = os.path.join(self.tmp, "m")
        with open(INTERACTIONS) as f:
            p = run(["train", "--interactions", "-", "--out", out, "--quiet", "--half-life", "0",
                     "--algo", "cosine"], stdin=f.read())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(inspect_items(out), inspect_items(SHARED["model"]))

    def test_online_retail_layout_with_columns(self):
        out = os.path.join(self.tmp, "retail")
        train(out, RETAIL, "--columns", RETAIL_COLUMNS)
        self.assertEqual(inspect_items(out), inspect_items(SHARED["model"]))
        meta = json.loads(run(["inspect", out]).stdout)
        self.assertEqual((meta["items"], meta["customers"], meta["interactions"]), (8, 11, 26))
        self.assertEqual((meta["rows_read"], meta["rows_skipped"]), (31, 1))
        for asked in ("17850", "17850.0"):
            p = run(["inspect", out, "--customer", asked])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("# customer 17850:", p.stdout)
            lines = [l.split("\t")[0] for l in p.stdout.splitlines() if not l.startswith("#")]
            self.assertEqual(set(lines), BASKETS["17850"])
        # without --columns the header lacks customer_id: exit 1 naming it
        p = run(["train", "--interactions", RETAIL, "--out", os.path.join(self.tmp, "x")])
        self.assertFails(p, 1, "customer_id")

    def test_inspect_meta(self):
        p = run(["inspect", SHARED["model"]])
        self.assertEqual(p.returncode, 0, p.stderr)
        meta = json.loads(p.stdout)
        self.assertEqual(meta["algorithm"], "cosine")
        self.assertEqual(meta["items"], 8)
        self.assertEqual(meta["customers"], 11)
        self.assertEqual(meta["interactions"], 26)
        self.assertEqual(meta["rows_read"], 31)
        self.assertEqual(meta["rows_skipped"], 1)
        self.assertEqual(meta["as_of"], "2024-03-10T11:00:00Z")  # newest timestamp
        self.assertIsInstance(meta["model_id"], str)

    def test_inspect_item_and_customer(self):
        p = run(["inspect", SHARED["model"], "apple"])
        self.assertEqual(p.returncode, 0, p.stderr)
        rows = [l.split("\t") for l in p.stdout.splitlines() if not l.startswith("#")]
        self.assertEqual([r[0] for r in rows], [e[0] for e in EXPECTED["similar_apple"]])
        for (iid, score), row in zip(EXPECTED["similar_apple"], rows):
            self.assertAlmostEqual(float(row[1]), score, delta=TOL)
        p = run(["inspect", SHARED["model"], "--customer", "heidi"])
        self.assertEqual(p.returncode, 0, p.stderr)
        hist = {l.split("\t")[0]: l.split("\t") for l in p.stdout.splitlines()
                if not l.startswith("#")}
        self.assertEqual(set(hist), {"apple", "flour"})
        self.assertEqual(hist["apple"][3], "yes")
        self.assertEqual(hist["flour"][3], "no")  # returned in full
        self.assertFails(run(["inspect", SHARED["model"], "nope"]), 1, "nope")
        self.assertFails(run(["inspect", SHARED["model"], "--customer", "nobody"]), 1, "nobody")

    def test_serve_without_model_exit_1(self):
        empty = os.path.join(self.tmp, "empty-model")
        os.mkdir(empty)
        for model in (empty, os.path.join(self.tmp, "missing")):
            p = run(["serve", "--model", model, "--state", os.path.join(self.tmp, "st"),
                     "--listen", "127.0.0.1:0"], timeout=START_TIMEOUT)
            self.assertFails(p, 1, model)
        p = run(["inspect", empty])
        self.assertFails(p, 1)

    def test_serve_bad_listen_exit_nonzero(self):
        for listen in ("nonsense", "127.0.0.1:99999", "256.1.1.1:80"):
            p = run(["serve", "--model", SHARED["model"], "--state",
                     os.path.join(self.tmp, "st"), "--listen", listen], timeout=START_TIMEOUT)
            self.assertIn(p.returncode, (1, 2), (listen, p.stderr))
            self.assertIn(listen, p.stderr)

    def test_serve_port_in_use_exit_1(self):
        p = run(["serve", "--model", SHARED["model"], "--state", os.path.join(self.tmp, "st"),
                 "--listen", "127.0.0.1:%d" % self.srv.port], timeout=START_TIMEOUT)
        self.assertFails(p, 1)
        self.assertServing()


# ---------------------------------------------------------------------------
# Runner: unittest underneath, one closing "N passed, N failed" line.
# ---------------------------------------------------------------------------
class CountingResult(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1


def run_suite(module_name, argv, tmp_dirs=lambda: (), label="e2e"):
    """Runs the tests of module `module_name` (all, or the names in argv;
    -v for verbose), kills every server left, removes tmp_dirs, and prints
    the closing lines tests/run.sh reads. Returns the exit code. Shared by
    every e2e suite."""
    verbosity = 2 if "-v" in argv else 1
    names = [a for a in argv if not a.startswith("-")]
    loader = unittest.TestLoader()
    module = sys.modules[module_name]
    if names:
        suite = loader.loadTestsFromNames(names, module)
    else:
        suite = loader.loadTestsFromModule(module)
    if not os.access(BIN, os.X_OK):
        print("no executable shopkeeper at %s (set SHOPKEEPER)" % BIN)
        print("0 passed, 1 failed")
        return 1
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=verbosity,
                                     resultclass=CountingResult)
    t0 = time.monotonic()
    try:
        result = runner.run(suite)
    finally:
        for s in list(_LIVE_SERVERS):
            s.kill()
        for d in tmp_dirs():
            if d:
                shutil.rmtree(d, ignore_errors=True)
    # A test with failing subtests is counted once, as failed.
    failed_tests = {id(getattr(t, "test_case", t)) for t, _ in result.failures + result.errors}
    failed = len(failed_tests) + len(result.unexpectedSuccesses)
    sys.stdout.flush()
    print("%s: %.1f s" % (label, time.monotonic() - t0))
    print("%d passed, %d failed" % (result.passed, failed))
    return 1 if failed or not result.wasSuccessful() else 0


if __name__ == "__main__":
    sys.exit(run_suite(__name__, sys.argv[1:], lambda: [SHARED.get("tmp")]))
