#!/usr/bin/env python3
"""The API's limits and edge answers (issue 21): audience paging over the
longest ids, the item bound of one audience answer, consent for an erased
customer, and reload errors that keep the server's paths to its log.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_api_limits.py [-v] [Class[.test]]

Against the real binary on 127.0.0.1. Python 3 standard library only;
builds on the helpers of lib.py. The last line printed is
"N passed, N failed".
"""
import json
import os
import shutil
import sys
import tempfile
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lib as ts  # noqa: E402  (the shared helpers: Server, train, run)
from lib import JSON_CT, Server, q, train  # noqa: E402

JSON_HEADERS = {"Content-Type": "application/json"}
MAX_ITEMS = 20000  # limit x n in one audience answer
ID_MAX = 256       # bytes in an id
SHARED = {}


def setUpModule():
    tmp = tempfile.mkdtemp(prefix="shopkeeper-limits-")
    SHARED["tmp"] = tmp
    SHARED["model"] = os.path.join(tmp, "model")
    train(SHARED["model"])


def tearDownModule():
    for s in list(ts.LIVE_SERVERS):
        s.kill()
    shutil.rmtree(SHARED.get("tmp", "/nonexistent-shopkeeper-limits"), ignore_errors=True)


class Base(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=SHARED["tmp"])

    def fresh(self, model=None):
        srv = Server(model or SHARED["model"], os.path.join(self.tmp, "state"))
        self.addCleanup(srv.kill)
        return srv

    def call(self, srv, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        return srv.request(method, path, body=data, headers=JSON_HEADERS if data else None)

    def ok(self, srv, method, path, body=None):
        resp = self.call(srv, method, path, body)
        self.assertEqual(resp.status, 200, (method, path, resp))
        return resp.json

    def assertError(self, resp, status, code):
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.headers.get("content-type"), JSON_CT, resp)
        self.assertEqual(resp.json["error"]["code"], code, resp)
        self.assertTrue(resp.json["error"]["message"], resp)
        return resp.json["error"]["message"]


# ---------------------------------------------------------------------------
# Audience paging over ids of every length (bug 6)
# ---------------------------------------------------------------------------
class CursorTests(Base):
    # Valid ids at and near the 256-byte limit, multi-byte UTF-8 among them,
    # and bytes that mean something in a URL.
    IDS = ["a" * ID_MAX, "b" * (ID_MAX - 1), "\u00e9" * (ID_MAX // 2), "c/%+ &?=#" * 28,
           "z"]

    def setUp(self):
        super().setUp()
        self.srv = self.fresh()
        for cid in self.IDS:
            self.assertLessEqual(len(cid.encode()), ID_MAX)
            self.ok(self.srv, "POST", "/v1/events",
                    {"customer_id": cid, "item_id": "apple", "event": "cart"})

    def pages(self, query, encode=lambda c: c, max_pages=20):
        ids, cursor = [], None
        for _ in range(max_pages):
            path = "/v1/audiences/cart_abandoners?n=1&" + query
            if cursor is not None:
                path += "&cursor=" + encode(cursor)
            resp = self.srv.get(path)
            self.assertEqual(resp.status, 200, (path[:120], resp))
            ids += [c["customer_id"] for c in resp.json["customers"]]
            cursor = resp.json["next_cursor"]
            if cursor is None:
                return ids
        self.fail("more than %d pages" % max_pages)

    def test_every_id_pages_one_at_a_time(self):
        ids = self.pages("limit=1")
        self.assertEqual(sorted(ids, key=lambda s: s.encode()), ids)
        self.assertEqual(sorted(ids), sorted(self.IDS))

    def test_two_at_a_time(self):
        self.assertEqual(sorted(self.pages("limit=2")), sorted(self.IDS))

    def test_percent_encoded_cursor(self):
        """A cursor may reach us percent-encoded, every character of it."""
        every = lambda c: "".join("%%%02X" % ord(ch) for ch in c)  # noqa: E731
        self.assertEqual(sorted(self.pages("limit=1", every)), sorted(self.IDS))

    def test_cursors_not_handed_out_refused(self):
        for cursor in ("61" * (ID_MAX + 1), "6", "zz", "", "%ZZ"):
            with self.subTest(cursor=cursor[:20]):
                resp = self.srv.get("/v1/audiences/cart_abandoners?cursor=" + cursor)
                self.assertError(resp, 400, "invalid_parameter")


# ---------------------------------------------------------------------------
# limit x n (bug 4, the API's part)
# ---------------------------------------------------------------------------
class AnswerSizeTests(Base):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(SHARED["model"], os.path.join(SHARED["tmp"], "state-size"))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_over_the_bound_400(self):
        for query in ("limit=1000&n=21", "limit=201&n=100", "limit=1000&n=100",
                      "limit=1000&n=100&order=intent", "limit=401&n=50&cursor=616c696365"):
            with self.subTest(query):
                msg = self.assertError(self.srv.get("/v1/audiences/all?" + query), 400,
                                       "invalid_parameter")
                self.assertIn("20000", msg)
                self.assertIn("limit", msg)

    def test_at_the_bound_served(self):
        for query in ("limit=200&n=100", "limit=1000&n=20", "limit=1000", "n=100",
                      "limit=200&n=100&order=intent"):
            with self.subTest(query):
                resp = self.srv.get("/v1/audiences/all?" + query)
                self.assertEqual(resp.status, 200, resp)

    def test_each_parameter_still_checked_alone(self):
        for query in ("limit=1001", "n=101", "limit=0", "n=0"):
            with self.subTest(query):
                self.assertError(self.srv.get("/v1/audiences/all?" + query), 400,
                                 "invalid_parameter")


# ---------------------------------------------------------------------------
# Query strings: the http layer splits them itself (issue 17) exactly as
# libmicrohttpd 0.9.75 did for its own list, which answered before.
# ---------------------------------------------------------------------------
class QueryStringTests(Base):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server(SHARED["model"], os.path.join(SHARED["tmp"], "state-query"))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def items(self, query):
        resp = self.srv.get("/v1/items/apple/similar?" + query)
        self.assertEqual(resp.status, 200, (query, resp))
        return len(resp.json["items"])

    def test_split_as_the_library_split_it(self):
        many = "&".join(["n=1"] + ["n=2"] * 40)  # past the layer's own table
        for query, n in (("n=1&n=3", 1),        # the first one counts
                         ("n&n=1", 4),          # a bare key: absent, and it counts first
                         ("n=1&", 1), ("n=%31", 1), ("n=1&explain", 1),
                         ("n=2&explain=0", 2), (many, 1)):
            with self.subTest(query):
                self.assertEqual(self.items(query), n)

    def test_plus_is_a_space_in_keys_and_values(self):
        msg = self.assertError(self.srv.get("/v1/items/apple/similar?a+b=1"), 400,
                               "unknown_parameter")
        self.assertIn("'a b'", msg)
        msg = self.assertError(self.srv.get("/v1/items/apple/similar?&n=1"), 400,
                               "unknown_parameter")
        self.assertIn("''", msg)
        many = "&".join(["n=1"] * 40 + ["a+b=1"])
        msg = self.assertError(self.srv.get("/v1/items/apple/similar?" + many), 400,
                               "unknown_parameter")
        self.assertIn("'a b'", msg)
        for query in ("n=1+", "n=1%2B1"):
            with self.subTest(query):
                self.assertError(self.srv.get("/v1/items/apple/similar?" + query), 400,
                                 "invalid_parameter")


# ---------------------------------------------------------------------------
# Consent for an erased customer (bug 8)
# ---------------------------------------------------------------------------
class ErasedConsentTests(Base):
    def test_consent_for_erased_customer_404(self):
        srv = self.fresh()
        # alice is in the model; "ghost" is known from events only.
        self.ok(srv, "POST", "/v1/events", {"customer_id": "ghost", "item_id": "apple",
                                            "event": "view"})
        for cid in ("alice", "ghost", "x" * ID_MAX):
            with self.subTest(cid[:10]):
                self.ok(srv, "DELETE", "/v1/customers/" + q(cid))
                self.assertError(srv.get("/v1/customers/" + q(cid)), 404, "unknown_customer")
                for value in (True, False):
                    resp = self.call(srv, "PUT", "/v1/customers/%s/consent" % q(cid),
                                     {"personalization": value})
                    self.assertError(resp, 404, "unknown_customer")
        # Nothing was recorded for them: they stay erased and unknown.
        self.assertError(srv.get("/v1/customers/alice"), 404, "unknown_customer")
        self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_consent_for_others_unchanged(self):
        srv = self.fresh()
        # A customer not seen yet may still withdraw consent ahead of time.
        self.assertEqual(self.ok(srv, "PUT", "/v1/customers/newcomer/consent",
                                 {"personalization": False}),
                         {"customer_id": "newcomer", "consent": {"personalization": False}})
        self.assertEqual(self.ok(srv, "PUT", "/v1/customers/alice/consent",
                                 {"personalization": False})["consent"],
                         {"personalization": False})
        self.assertEqual(srv.get("/v1/customers/alice").json["consent"],
                         {"personalization": False})


# ---------------------------------------------------------------------------
# Reload errors (issue 21, design limits)
# ---------------------------------------------------------------------------
class ReloadErrorTests(Base):
    def test_reload_error_names_no_path(self):
        model = os.path.abspath(os.path.join(self.tmp, "served-model"))
        os.makedirs(model)
        for name in ("model.mdb", "model.sum"):
            shutil.copyfile(os.path.join(SHARED["model"], name), os.path.join(model, name))
        srv = self.fresh(model)
        before = srv.get("/readyz").json
        for name, data, says in (("empty", b"", "empty"), ("half", None, "truncated")):
            with self.subTest(name):
                if data is None:
                    with open(os.path.join(SHARED["model"], "model.mdb"), "rb") as f:
                        good = f.read()
                    data = good[:len(good) // 2]
                tmp = os.path.join(model, "model.mdb.new")
                with open(tmp, "wb") as f:
                    f.write(data)
                os.rename(tmp, os.path.join(model, "model.mdb"))  # the server maps the old one
                resp = srv.request("POST", "/admin/reload")
                msg = self.assertError(resp, 409, "reload_failed")
                self.assertIn(says, msg)
                self.assertNotIn(model.encode(), resp.body)
                self.assertNotIn(self.tmp.encode(), resp.body)
                self.assertNotIn(b"/model.mdb", resp.body)
                # The operator still finds the whole story in the log.
                self.assertIn(model, srv.stderr())
                self.assertIn(says, srv.stderr())
        self.assertEqual(srv.get("/readyz").json, before)
        self.assertEqual(srv.stop(), 0, srv.stderr())


if __name__ == "__main__":
    sys.exit(ts.run_suite(__name__, sys.argv[1:], lambda: [SHARED.get("tmp")], "api_limits"))
