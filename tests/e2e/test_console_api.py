#!/usr/bin/env python3
"""End-to-end tests of what the console (issue 16) added to the server, over
real HTTP, without a browser (tests/browser/test_console.py drives the page):

  - GET /console/ and its files: served from memory, with the security
    headers and an ETag on every answer, 304 on If-None-Match, 404 for
    anything else (no file system path from a request is ever opened);
  - GET /v1/model, GET /v1/items?q=, GET /v1/segments/transitions,
    GET /v1/customers/{id}/events: answers worked out by hand on the shared
    fixture (tests/fixtures/interactions.csv, see lib.py), paging, errors,
    and the access rules with API keys.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_console_api.py [-v]

The last line printed is "N passed, N failed" (a table's rows count one each).
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_openapi import SPEC_PATH, SchemaError, Validator  # noqa: E402
from lib import (BASKETS, FIXTURES, INTERACTIONS, ITEMS, JSON_HEADERS, MUG, TEA,  # noqa: E402
                 ApiTestCase, ErrorCase, Server, exchange, model_meta, q, run_suite,
                 stop_shared, train)

CATALOG = os.path.join(FIXTURES, "catalog.csv")
KEY = "k-0123456789abcdef-console"
SEGMENTS = ["champions", "loyal", "new", "promising", "needs_attention", "at_risk", "dormant",
            "lost", "prospect"]
CSP_MUST = ["default-src 'self'", "frame-ancestors 'none'", "script-src 'self'",
            "style-src 'self'", "object-src 'none'"]

TMP = None
MODEL = None
SRV = None


def setUpModule():
    global TMP, MODEL, SRV
    TMP = tempfile.mkdtemp(prefix="sk-console-api-")
    MODEL = os.path.join(TMP, "model")
    train(MODEL, INTERACTIONS, "--catalog", CATALOG)
    SRV = Server(MODEL, os.path.join(TMP, "state"))


def tearDownModule():
    if SRV:
        stop_shared(SRV)


class ConsoleFiles(ApiTestCase):
    srv = property(lambda self: SRV)

    def assertSecurityHeaders(self, resp):
        csp = resp.headers.get("content-security-policy", "")
        for part in CSP_MUST:
            self.assertIn(part, csp, resp.headers)
        self.assertNotIn("unsafe-inline", csp)
        self.assertNotIn("unsafe-eval", csp)
        self.assertEqual(resp.headers.get("x-content-type-options"), "nosniff", resp.headers)

    def test_page_and_files(self):
        page = SRV.get("/console/")
        self.assertEqual(page.status, 200, page)
        self.assertEqual(page.headers["content-type"], "text/html; charset=utf-8")
        self.assertSecurityHeaders(page)
        html = page.body.decode("utf-8")
        self.assertNotIn("<script>", html, "no inline script")
        self.assertNotIn("style=", html, "no inline style")
        for name, ctype in [("app.js", "text/javascript; charset=utf-8"),
                            ("i18n.js", "text/javascript; charset=utf-8"),
                            ("console.css", "text/css; charset=utf-8")]:
            with self.subTest(name):
                self.assertIn('"%s"' % name, html)  # the page links it
                r = SRV.get("/console/" + name)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.headers["content-type"], ctype)
                self.assertSecurityHeaders(r)
                self.assertRegex(r.headers.get("etag", ""), r'^"[0-9a-f]{16}"$')
                with open(os.path.join(os.path.dirname(FIXTURES), "..", "console", name),
                          "rb") as f:
                    self.assertEqual(r.body, f.read(), "the binary serves the file as it is")

    def test_etag_revalidation(self):
        r = SRV.get("/console/app.js")
        tag = r.headers["etag"]
        again = SRV.request("GET", "/console/app.js", headers={"If-None-Match": tag})
        self.assertEqual(again.status, 304, again)
        self.assertEqual(again.body, b"")
        self.assertSecurityHeaders(again)
        listed = SRV.request("GET", "/console/app.js",
                             headers={"If-None-Match": 'W/"0000000000000000", ' + tag})
        self.assertEqual(listed.status, 304, listed)
        other = SRV.request("GET", "/console/app.js", headers={"If-None-Match": '"0" '})
        self.assertEqual(other.status, 200, other)
        self.assertEqual(other.body, r.body)

    def test_redirect_without_slash(self):
        r = SRV.get("/console")
        self.assertEqual(r.status, 308, r)
        self.assertEqual(r.headers.get("location"), "console/")
        self.assertSecurityHeaders(r)

    def test_head(self):
        r = SRV.request("HEAD", "/console/")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"")

    def test_nothing_else_is_served(self):
        # Names outside the embedded table, traversal attempts included:
        # 404 with the same headers; none of them is looked up on disk.
        for path in ["/console/nope.js", "/console/..%2F..%2Fetc%2Fpasswd",
                     "/console/%2e%2e", "/console/.", "/console/index.html%00.js",
                     "/console/embed.c", "/console/app.js/x", "/console//app.js"]:
            with self.subTest(path):
                r = exchange(SRV.port, "GET", path)
                self.assertIn(r.status, (400, 404), r)
                self.assertNotIn(b"root:", r.body)
                if r.status == 404 and path.startswith("/console/") and path.count("/") == 2:
                    self.assertSecurityHeaders(r)
        r = exchange(SRV.port, "POST", "/console/")
        self.assertEqual(r.status, 405, r)


class ConsoleRoutes(ApiTestCase):
    srv = property(lambda self: SRV)

    def test_model(self):
        r = SRV.get("/v1/model")
        body = self.assertJSON(r)
        meta = model_meta(MODEL)
        self.assertEqual(body["meta"], meta)
        self.assertEqual(body["model"], meta["model_id"])
        self.assertGreaterEqual(body["age_seconds"], 0)
        self.assertIn("now", body)

    def test_items_search(self):
        # Most popular first (customers per item, lib.py): apple 6, cheese 5,
        # bread 4, eggs 3, then the four at 2.
        body = self.assertJSON(SRV.get("/v1/items?limit=3"))
        self.assertEqual([i["item_id"] for i in body["items"]], ["apple", "cheese", "bread"])
        self.assertTrue(body["more"])
        self.assertEqual(body["items"][0]["title"], "Red apple")
        self.assertEqual(body["items"][0]["popularity"], 6)
        self.assertAlmostEqual(body["items"][0]["price"], 0.5)
        # q matches ids and titles, ASCII case ignored
        body = self.assertJSON(SRV.get("/v1/items?q=" + q("CHED")))
        self.assertEqual([i["item_id"] for i in body["items"]], ["cheese"])
        self.assertFalse(body["more"])
        body = self.assertJSON(SRV.get("/v1/items?q=" + q("ea")))  # bread, tea/green, Green tea
        self.assertEqual(sorted(i["item_id"] for i in body["items"]), sorted(["bread", TEA]))
        body = self.assertJSON(SRV.get("/v1/items?q=" + q('mug, "b')))
        self.assertEqual([i["item_id"] for i in body["items"]], [MUG])
        self.assertEqual(body["q"], 'mug, "b')
        body = self.assertJSON(SRV.get("/v1/items?q=zzz"))
        self.assertEqual(body["items"], [])
        body = self.assertJSON(SRV.get("/v1/items?limit=200"))
        self.assertEqual(sorted(i["item_id"] for i in body["items"]), sorted(ITEMS))

    def test_transitions_without_events(self):
        seg = self.assertJSON(SRV.get("/v1/segments"))
        tr = self.assertJSON(SRV.get("/v1/segments/transitions"))
        self.assertEqual(tr["customers"], seg["customers"])
        self.assertEqual(tr["customers"], len(BASKETS))
        self.assertEqual({s: v["customers"] for s, v in tr["segments"].items()}, seg["segments"])
        # Nobody moved: every transition is a segment to itself.
        for m in tr["transitions"]:
            self.assertEqual(m["from"], m["to"], m)
        self.assertEqual(tr["moved"], 0)
        self.assertEqual(tr["last_24h"], {"active_customers": 0, "events": 0})
        self.assertEqual(sum(m["customers"] for m in tr["transitions"]), tr["customers"])

    def test_errors(self):
        self.assertErrorCases([
            ErrorCase("limit 0", "GET", "/v1/items?limit=0", 400, "invalid_parameter"),
            ErrorCase("limit too large", "GET", "/v1/items?limit=201", 400, "invalid_parameter"),
            ErrorCase("q too long", "GET", "/v1/items?q=" + "x" * 300, 400, "invalid_parameter"),
            ErrorCase("q not UTF-8", "GET", "/v1/items?q=%FF%FE", 400, "invalid_parameter"),
            ErrorCase("timeline of nobody", "GET", "/v1/customers/nobody/events", 404,
                      "unknown_customer"),
            ErrorCase("timeline limit", "GET", "/v1/customers/alice/events?limit=501", 400,
                      "invalid_parameter"),
            ErrorCase("timeline cursor", "GET", "/v1/customers/alice/events?cursor=abc", 400,
                      "invalid_parameter"),
            ErrorCase("timeline cursor source", "GET", "/v1/customers/alice/events?cursor=1.7.0",
                      400, "invalid_parameter"),
            ErrorCase("timeline cursor tail", "GET", "/v1/customers/alice/events?cursor=1.0.0x",
                      400, "invalid_parameter"),
            ErrorCase("write to model", "POST", "/v1/model", 405, "method_not_allowed"),
        ])


class Spec(ApiTestCase):
    """The new routes' answers, statuses and bodies, as deploy/openapi.json
    describes them (test_openapi.py's validator)."""
    srv = property(lambda self: SRV)

    def test_answers_match_the_spec(self):
        with open(SPEC_PATH) as f:
            spec = json.load(f)
        v = Validator(spec)
        calls = [("/v1/model", "/v1/model", 200), ("/v1/items?q=e&limit=2", "/v1/items", 200),
                 ("/v1/items?limit=0", "/v1/items", 400),
                 ("/v1/segments/transitions", "/v1/segments/transitions", 200),
                 ("/v1/customers/alice/events?limit=1", "/v1/customers/{id}/events", 200),
                 ("/v1/customers/nobody/events", "/v1/customers/{id}/events", 404),
                 ("/v1/customers/alice/events?cursor=x", "/v1/customers/{id}/events", 400),
                 ("/console/nope.css", "/console/{asset}", 404)]
        for path, template, status in calls:
            with self.subTest(path):
                r = SRV.get(path)
                self.assertEqual(r.status, status, r)
                resp = spec["paths"][template]["get"]["responses"][str(status)]
                try:
                    v.check(r.json, resp["content"]["application/json"]["schema"])
                except SchemaError as e:
                    self.fail("%s: %s" % (path, e))
        for path, template, status in [("/console", "/console", 308),
                                       ("/console/", "/console", 200),
                                       ("/console/app.js", "/console/{asset}", 200)]:
            with self.subTest(path):
                r = SRV.get(path)
                self.assertEqual(r.status, status, r)
                resp = spec["paths"][template]["get"]["responses"][str(status)]
                ctype = r.headers["content-type"].split(";")[0]
                if status == 200:
                    self.assertIn(ctype, resp["content"])


class Timeline(ApiTestCase):
    """A customer of the model with live events: history and events together,
    newest first, paged by cursor; erasure empties it."""

    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="sk-console-tl-", dir=TMP)
        self.srv = Server(MODEL, os.path.join(self.state, "s"))
        self.addCleanup(self.srv.kill)

    def post(self, events):
        r = self.srv.request("POST", "/v1/events", json.dumps(events).encode(), JSON_HEADERS)
        self.assertEqual(r.status, 200, r)

    def test_history_and_live_events(self):
        now = self.srv.get("/v1/model").json["now"]
        base = self.assertJSON(self.srv.get("/v1/customers/alice/events"))
        # alice's model history: apple and bread, one entry each
        self.assertEqual(base["total"], 2)
        self.assertEqual(sorted(e["item_id"] for e in base["events"]), ["apple", "bread"])
        for e in base["events"]:
            self.assertEqual(e["source"], "model")
            self.assertEqual(e["event"], "purchase")
        self.assertIsNone(base["next_cursor"])
        self.post([{"customer_id": "alice", "item_id": "cheese", "event": "view"},
                   {"customer_id": "alice", "item_id": "dates", "event": "cart"},
                   {"customer_id": "alice", "item_id": "dates", "event": "purchase",
                    "quantity": 2, "price": 6}])
        all_ = self.assertJSON(self.srv.get("/v1/customers/alice/events?limit=500"))
        self.assertEqual(all_["total"], 5)
        ev = all_["events"]
        self.assertEqual([(e["source"], e["event"], e["item_id"]) for e in ev[:3]],
                         [("live", "purchase", "dates"), ("live", "cart", "dates"),
                          ("live", "view", "cheese")])
        self.assertEqual(ev[0]["quantity"], 2)
        self.assertEqual(ev[0]["price"], 6)
        self.assertEqual(ev[0]["title"], "Medjool dates")
        self.assertEqual(ev[0]["timestamp"][:10], now[:10])
        stamps = [e["timestamp"] for e in ev]
        self.assertEqual(stamps, sorted(stamps, reverse=True), "newest first")
        # pages of two walk the same list
        got, cursor, pages = [], None, 0
        while pages < 10:
            r = self.assertJSON(self.srv.get("/v1/customers/alice/events?limit=2" +
                                             ("&cursor=" + q(cursor) if cursor else "")))
            got += r["events"]
            pages += 1
            cursor = r["next_cursor"]
            if not cursor:
                break
        self.assertEqual(pages, 3)
        self.assertEqual(got, ev)
        # a customer only the live events know
        self.post([{"customer_id": "walk-in", "item_id": "eggs", "event": "view"}])
        w = self.assertJSON(self.srv.get("/v1/customers/walk-in/events"))
        self.assertEqual([(e["source"], e["item_id"]) for e in w["events"]], [("live", "eggs")])
        # transitions now count alice's and walk-in's events
        tr = self.assertJSON(self.srv.get("/v1/segments/transitions"))
        self.assertEqual(tr["last_24h"], {"active_customers": 2, "events": 4})
        self.assertEqual(tr["customers"], len(BASKETS) + 1)
        self.assertIn({"from": None, "to": "prospect", "customers": 1}, tr["transitions"])
        seg = self.assertJSON(self.srv.get("/v1/segments"))
        self.assertEqual({s: v["customers"] for s, v in tr["segments"].items()}, seg["segments"])
        # alice's live purchase (2 x 6) adds 12 to the revenue (the shared
        # server has no events)
        untouched = self.assertJSON(SRV.get("/v1/segments/transitions"))["segments"]
        self.assertAlmostEqual(sum(v["revenue"] for v in tr["segments"].values()),
                               sum(v["revenue"] for v in untouched.values()) + 12, places=3)
        # erased: gone from the timeline too
        self.assertEqual(self.srv.request("DELETE", "/v1/customers/alice").status, 200)
        self.assertError(self.srv.get("/v1/customers/alice/events"), 404, "unknown_customer")


class Keys(ApiTestCase):
    """With keys and --auth-reads the new reads need a key; the console's
    files never do (they hold no data)."""

    def test_access(self):
        d = tempfile.mkdtemp(prefix="sk-console-keys-", dir=TMP)
        keys = os.path.join(d, "keys")
        with open(keys, "w") as f:
            f.write(KEY + "\n")
        with Server(MODEL, os.path.join(d, "s"), extra=["--api-keys", keys,
                                                         "--auth-reads"]) as srv:
            self.assertEqual(srv.get("/console/").status, 200)
            self.assertEqual(srv.get("/console/app.js").status, 200)
            for path in ["/v1/model", "/v1/items", "/v1/segments/transitions",
                         "/v1/customers/alice/events"]:
                with self.subTest(path):
                    self.assertError(srv.get(path), 401, "unauthorized")
                    wrong = srv.request("GET", path, headers={"Authorization": "Bearer x" + KEY})
                    self.assertError(wrong, 403, "forbidden")
                    ok = srv.request("GET", path, headers={"Authorization": "Bearer " + KEY})
                    self.assertEqual(ok.status, 200, ok)


if __name__ == "__main__":
    sys.exit(run_suite(__name__, sys.argv[1:],
                       tmp_dirs=lambda: [TMP] if TMP else []))
