#!/usr/bin/env python3
"""End-to-end tests for shopkeeper: the real binary, over real HTTP.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_server.py [-v] [TestClass[.test]]

Trains models from the hand-written fixtures in tests/fixtures/, starts
`shopkeeper serve` on 127.0.0.1 with an ephemeral port (read from the startup
line on stderr), and checks the answers against values worked out by hand
(lib.EXPECTED). The helpers every suite shares are in lib.py; this file
imports the ones it uses from there by name, and other suites may still
import those from here. Python 3 standard library only.

The last line printed is "N passed, N failed" (tests/run.sh reads it; a
table's rows count one each); the exit code is 1 when anything failed.

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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (BASKETS, BIN, EXPECTED, HTTP_TIMEOUT, INTERACTIONS, ITEMS,  # noqa: E402
                 JSON_CT, MUG, RETAIL, RETAIL_COLUMNS, START_TIMEOUT, STOP_TIMEOUT, TEA, TOL,
                 ApiTestCase, ErrorCase, Server, kill_servers, model_meta, q, read_response,
                 run, run_suite, stop_shared, train)
# Suites written before lib.py import these from here too; new code imports
# them from lib.
from lib import (FIXTURES, ROOT, CountingResult, Response, raw_exchange,  # noqa: E402,F401
                 LIVE_SERVERS as _LIVE_SERVERS)

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
    SHARED["meta"] = model_meta(model)
    SHARED["server"] = Server(model, os.path.join(tmp, "state"))


def tearDownModule():
    try:
        if SHARED.get("server") is not None:
            stop_shared(SHARED["server"])
    finally:
        kill_servers()
        shutil.rmtree(SHARED.get("tmp", ""), ignore_errors=True)


class Base(ApiTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shopkeeper-e2e-t-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    @property
    def srv(self):
        return SHARED["server"]

    def get(self, path, conn=None):
        return self.srv.get(path, conn=conn)

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
            self.assertEqual(it["source"], "personal", it)
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


# ---------------------------------------------------------------------------
# Errors: one table of requests and the error answers they must get
# ---------------------------------------------------------------------------
BODY_LIMIT = 1 << 20  # the default --max-body
REC = "/v1/customers/%s/recommendations"
SIM = "/v1/items/%s/similar"
ERROR_CASES = (
    [ErrorCase("unknown route", "GET", path, 404, "not_found") for path in (
        "/", "/v1", "/v2/customers/alice/recommendations", "/v1/customerz/alice",
        "/v1/customers/alice/recommendations/extra", "/v1/items/apple/x",
        "/v1/customers//recommendations", "/healthz/x", "/a/b/c/d/e/f/g/h/i/j",
        "/v1/customers%2Falice/recommendations")]  # a decoded slash splits no path
    + [ErrorCase("wrong method", method, path, 405, "method_not_allowed", b'{"x":1}',
                 allow="GET")
       for method, path in (("POST", "/healthz"), ("DELETE", "/readyz"),
                            ("PUT", REC % "alice"), ("POST", SIM % "apple"))]
    + [ErrorCase("wrong method", "GET", "/v1/items/apple", 405, "method_not_allowed",
                 allow="PUT")]
    + [ErrorCase("bad n", "GET", path + "?n=" + n, 400, "invalid_parameter", says="n")
       for n in ("0", "101", "abc", "-1", "", "1.5", "1e2", "5x", "%ZZ", "1000", "99999999999")
       for path in (REC % "alice", REC % "nobody", SIM % "apple")]
    + [ErrorCase("bad percent-encoding", "GET", path, 400) for path in (
        REC % "%ZZ", REC % "ab%4", "/v1/customers/%4", SIM % "apple" + "%4", SIM % "%G1",
        REC % "%", "/healthz%")]
    + [ErrorCase("id over 256 bytes", "GET", path, 400, "invalid_id") for path in (
        REC % ("x" * 257), SIM % ("y" * 257),
        REC % ("%C3%A9" * 129),  # 258 bytes
        REC % ("z" * 1000),
        REC % ("x" * 5000))]  # 5 KB: an id over the limit, not a missing route
    # 12 KB: over the 8 KiB path limit, under the 16 KiB connection memory.
    # Our JSON 414, not libmicrohttpd's HTML page.
    + [ErrorCase("request line over 8 KiB", "GET", REC % ("x" * 12000), 414, "uri_too_long")]
    + [ErrorCase("id not UTF-8", "GET", path, 400, "invalid_id") for path in (
        REC % "%FF", SIM % "%FF", REC % "ab%C3", REC % "%C0%AF", REC % "%ED%A0%80",
        REC % "a%00b")]
    + [ErrorCase("unusable id", "GET", path, 400, "invalid_id") for path in (
        REC % "%01", REC % "%20", SIM % "a%0Ab", SIM % "%09%20")]
    # "apple/x": an encoded slash is part of the id
    + [ErrorCase("unknown item", "GET", SIM % q(item), 404, "unknown_item", says=item)
       for item in ("nope", "Apple", "caf\u00e9", "apple/x")]
    # Refused on the headers alone, before any body byte is sent.
    + [ErrorCase("body over the limit, headers only", "POST", path, 413, "body_too_large",
                 headers={"Content-Type": "application/json", "Content-Length": BODY_LIMIT + 1})
       for path in ("/v1/events", "/healthz", "/nope")]
    + [ErrorCase("body over the limit, sent", "POST", "/v1/recommendations", 413,
                 "body_too_large", [b"x" * (2 * BODY_LIMIT)], {"Content-Length": 2 * BODY_LIMIT})]
    + [ErrorCase("chunked body over the limit", "POST", "/healthz", 413, "body_too_large",
                 [b"10000\r\n" + b"y" * 0x10000 + b"\r\n"] * 17 + [b"0\r\n\r\n"],  # 1.06 MiB
                 {"Transfer-Encoding": "chunked"})]
    # Exactly the limit is allowed: the route answers (405 here), not the limit.
    + [ErrorCase("body of %d bytes read" % n, "POST", "/healthz", 405, "method_not_allowed",
                 b"z" * n) for n in (10, BODY_LIMIT)]
)


class ErrorTests(Base):
    def test_error_answers(self):
        """Each request of ERROR_CASES gets its JSON error; the server serves on."""
        self.assertErrorCases(ERROR_CASES)

    def test_n_bounds_accepted(self):
        for n, want in (("1", 1), ("100", 6), ("010", 6), ("%33", 3)):
            resp = self.get("/v1/customers/alice/recommendations?n=" + n)
            self.assertEqual(resp.status, 200, (n, resp))
            self.assertEqual(len(resp.json["items"]), want, n)

    def test_encoded_slash_is_part_of_id(self):
        """(apple%2Fx, an unknown item, and a slash that splits no route:
        ERROR_CASES.)"""
        body = self.get("/v1/customers/a%2Fb/recommendations").json
        self.assertEqual(body["customer_id"], "a/b")
        self.assertEqual(body["source"], "popular")

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
            self.assertEqual(model_meta(model)["algorithm"], "jaccard")
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
                meta = model_meta(model)
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
            with self.subTest(" ".join(args).replace(self.tmp, "$tmp")):
                self.assertFails(run(args), 2, needle)
        self.assertFalse(os.path.exists(out))

    # (what, the interactions file's text or None for no file, what stderr
    # must name: {path} is the file's path)
    BAD_INPUT = [
        ("no such file", None, "{path}"),
        ("empty file", "", "empty"),
        ("header only", "customer_id,item_id\n", "no usable rows"),
        ("no customer column", "user,item_id\nu1,a\nu2,b\n", "customer_id"),
        ("every row bad", "customer_id,item_id,quantity\n,a,1\nc1,,1\nc2,b,zero\nc3,c,0\n", None),
    ]

    def test_bad_input_exit_1(self):
        """train refuses each file of BAD_INPUT: exit 1, a message, no model."""
        for i, (what, text, says) in enumerate(self.BAD_INPUT):
            with self.subTest(what):
                path = os.path.join(self.tmp, "in-%d.csv" % i)
                if text is not None:
                    self.write(os.path.basename(path), text)
                out = os.path.join(self.tmp, "m-%d" % i)
                p = run(["train", "--interactions", path, "--out", out])
                self.assertFails(p, 1, *([says.format(path=path)] if says else []))
                self.assertFalse(os.path.exists(os.path.join(out, "model.mdb")))

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
        meta = model_meta(out)
        self.assertEqual((meta["rows_read"], meta["rows_skipped"]), (3, 1))

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
        ma = model_meta(plain)
        mb = model_meta(packed)
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
        meta = model_meta(out)
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
        meta = model_meta(out)
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


if __name__ == "__main__":
    sys.exit(run_suite(__name__, sys.argv[1:], lambda: [SHARED.get("tmp")]))
