#!/usr/bin/env python3
"""End-to-end tests of audiences a marketer can use (issue 20, points 4-10,
14 and 15), over real HTTP and the CLI.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_audiences.py [-v] [TestClass[.test]]

  4  filters: country, attr.NAME, min/max_monetary, last_purchase_before/after
  5  an unknown query parameter is 400 unknown_parameter on every route
  6  every audience answer carries `total`
  7  cart_abandoners and browsed_not_bought are item-level and list the items
  8  customers known only from events are in the segment audiences and `all`
  9  birthday: a warning without birth dates; members carry theirs
 10  export: CSV, --record, the download route, the same items as HTTP
 14  serve --clock auto|model|wall
 15  money rounded to cents, intent to 4 decimals
 and the one-to-one check: for every segment, /v1/segments == the audience's
 total == the members paged to the end, and export == the HTTP answer.

Models: MAIN (tests/fixtures with catalog and customers files, a historical
log: the model clock) from test_one_to_one, BARE (the same interactions, no
customers file), and LIVE (the same rows moved to end five days ago, plus two
big spenders: the wall clock).
"""
import calendar
import csv
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (BASKETS, INTERACTIONS, ROOT, ErrorCase, Server, kill_servers,  # noqa: E402
                 run, run_suite, stop_shared, train)
import test_one_to_one as oo  # noqa: E402

A = {}
SEGMENTS = oo.SEGMENT_NAMES
# MAIN's customers file: country and Newsletter (17850.0 is 17850)
COUNTRY = {"alice": "United Kingdom", "bob": "France", "carol": "Japan",
           "17850": "United Kingdom"}
NEWSLETTER = {"alice": "yes", "bob": "no", "carol": "yes", "17850": "yes"}
BIRTH = {"alice": "1985-03-12", "bob": "1979-11-02", "carol": "1990-03-10",
         "17850": "1955-06-14"}
# MAIN's net spend (test_one_to_one's RFM notes)
MONETARY = {"heidi": .5, "alice": 2.6, "frank": 4.2, "erin": 4.5, "judy": 6, "bob": 7.1,
            "17850": 9.1, "dave": 10.2, "ivan": 11, "grace": 11.9, "carol": 14.5}


def unix(s):
    if s.isdigit():
        return int(s)
    s = s.rstrip("Z").replace("T", " ")
    return calendar.timegm(time.strptime(s, "%Y-%m-%d %H:%M:%S" if " " in s else "%Y-%m-%d"))


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def write_live(path, end):
    """The fixture's rows moved to end at `end`, plus m1 (one purchase of
    4309.9976) and m2 (one of 12.5) a day before."""
    with open(INTERACTIONS, newline="") as f:
        rows = list(csv.reader(f))
    head = rows[0]
    col = head.index("timestamp")
    newest = max(unix(r[col]) for r in rows[1:])
    for r in rows[1:]:
        r[col] = str(unix(r[col]) - newest + end)
    for cust, price in (("m1", "4309.9976"), ("m2", "12.5")):
        row = dict(zip(head, [""] * len(head)))
        row.update(timestamp=str(end - 86400), item_id="apple", quantity="1",
                   customer_id=cust, price=price, event="purchase")
        rows.append([row[h] for h in head])
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def setUpModule():
    tmp = tempfile.mkdtemp(prefix="shopkeeper-aud-")
    A["tmp"] = tmp
    A["main"] = os.path.join(tmp, "main")
    oo.train_main(A["main"])
    A["bare"] = os.path.join(tmp, "bare")
    train(A["bare"], INTERACTIONS)
    live_csv = os.path.join(tmp, "live.csv")
    A["live_end"] = int(time.time()) - 5 * 86400
    write_live(live_csv, A["live_end"])
    A["live"] = os.path.join(tmp, "live")
    train(A["live"], live_csv, "--catalog", oo.CATALOG)
    # Read-only: no test changes its state.
    A["srv"] = Server(A["main"], os.path.join(tmp, "state-main"))


def tearDownModule():
    try:
        if A.get("srv") is not None:
            stop_shared(A["srv"])
    finally:
        kill_servers()
        shutil.rmtree(A.get("tmp", ""), ignore_errors=True)


class Base(oo.Base):
    @property
    def srv(self):
        return A["srv"]

    def fresh(self, model=None, extra=()):
        srv = Server(model or A["main"], os.path.join(self.tmp, "state-%d" % time.monotonic_ns()),
                     extra=extra)
        self.addCleanup(srv.kill)
        return srv

    def members(self, name, query="", srv=None):
        return [m["customer_id"] for m in self.audience(name, query, srv)["customers"]]

    def export(self, state, audience, *extra, model=None):
        p = run(["export", "--model", model or A["main"], "--state", state, "--audience",
                 audience] + list(extra))
        self.assertEqual(p.returncode, 0, p.stderr)
        return p


# ---------------------------------------------------------------------------
# 4. Filters
# ---------------------------------------------------------------------------
class FilterTests(Base):
    def test_country(self):
        self.assertEqual(self.members("champions"), ["carol"])
        body = self.audience("champions", "?country=Germany")
        self.assertEqual(body["customers"], [])
        self.assertEqual(body["total"], 0)
        self.assertEqual(self.members("champions", "?country=Japan"), ["carol"])
        self.assertEqual(self.members("all", "?country=United+Kingdom&n=1"), ["17850", "alice"])
        self.assertEqual(self.members("all", "?country=United%20Kingdom&n=1"), ["17850", "alice"])
        self.assertEqual(self.members("lost", "?country=France"), ["bob"])
        self.assertEqual(self.members("all", "?country=united+kingdom"), [])  # exact match

    def test_attributes_repeatable(self):
        want = sorted(c for c, v in NEWSLETTER.items() if v == "yes")
        self.assertEqual(sorted(self.members("all", "?attr.Newsletter=yes&n=1")), want)
        self.assertEqual(self.members("all", "?attr.Newsletter=no&n=1"), ["bob"])
        self.assertEqual(self.members("all", "?attr.Newsletter=yes&attr.country=Japan&n=1"),
                         ["carol"])
        self.assertEqual(self.members("all", "?attr.Newsletter=yes&country=United+Kingdom&n=1"),
                         ["17850", "alice"])
        self.assertEqual(self.members("all", "?attr.birth_date=1979-11-02&n=1"), ["bob"])
        self.assertEqual(self.members("all", "?attr.nothing=yes&n=1"), [])

    def test_monetary(self):
        def spend(lo=None, hi=None):
            return sorted(c for c, m in MONETARY.items()
                          if (lo is None or m >= lo - 1e-6) and (hi is None or m <= hi + 1e-6))
        self.assertEqual(sorted(self.members("all", "?min_monetary=10&n=1")), spend(lo=10))
        self.assertEqual(sorted(self.members("all", "?max_monetary=4.2&n=1")), spend(hi=4.2))
        self.assertEqual(sorted(self.members("all", "?min_monetary=4.5&max_monetary=9.1&n=1")),
                         spend(4.5, 9.1))
        self.assertEqual(self.members("new", "?min_monetary=9&max_monetary=10&n=1"), ["17850"])

    def test_last_purchase_dates(self):
        last = {c: self.profile(c)["last_purchase"][:10] for c in BASKETS}
        for day in ("2024-03-03", "2024-03-06", "2024-03-09"):
            before = sorted(c for c, d in last.items() if d < day)
            after = sorted(c for c, d in last.items() if d >= day)
            self.assertTrue(before and after, day)
            self.assertEqual(sorted(self.members("all", "?n=1&last_purchase_before=" + day)),
                             before, day)
            self.assertEqual(sorted(self.members("all", "?n=1&last_purchase_after=" + day)),
                             after, day)
        both = "?n=1&last_purchase_after=2024-03-03&last_purchase_before=2024-03-06"
        self.assertEqual(sorted(self.members("all", both)),
                         sorted(c for c, d in last.items() if "2024-03-03" <= d < "2024-03-06"))

    def test_filters_on_export_route_and_triggers(self):
        srv = self.fresh()
        self.events([{"customer_id": "bob", "item_id": "eggs", "event": "cart"},
                     {"customer_id": "alice", "item_id": "eggs", "event": "cart"}], srv)
        self.assertEqual(self.members("cart_abandoners", "?country=France", srv), ["bob"])
        resp = srv.get("/v1/audiences/all/export?country=France&n=1")
        self.assertEqual(resp.status, 200, resp)
        lines = resp.body.decode().splitlines()
        self.assertEqual([json.loads(x)["customer_id"] for x in lines], ["bob"])

    def test_bad_filters(self):
        self.assertErrorCases([
            ErrorCase("money not a number", "GET", "/v1/audiences/all?min_monetary=lots", 400,
                      "invalid_parameter", says="min_monetary"),
            ErrorCase("money infinite", "GET", "/v1/audiences/all?max_monetary=inf", 400,
                      "invalid_parameter", says="max_monetary"),
            ErrorCase("not a date", "GET", "/v1/audiences/all?last_purchase_before=yesterday",
                      400, "invalid_parameter", says="last_purchase_before"),
            ErrorCase("bad month", "GET", "/v1/audiences/all?last_purchase_after=2024-13-01",
                      400, "invalid_parameter", says="last_purchase_after"),
            ErrorCase("too many attributes", "GET", "/v1/audiences/all?" + "&".join(
                "attr.a%d=1" % i for i in range(9)), 400, "invalid_parameter", says="attr"),
        ])


# ---------------------------------------------------------------------------
# 5. Unknown query parameters
# ---------------------------------------------------------------------------
UNKNOWN = [
    ("GET", "/healthz?verbose=1", "verbose"),
    ("GET", "/readyz?x=1", "x"),
    ("GET", "/v1/customers/alice?fields=all", "fields"),
    ("DELETE", "/v1/customers/nobody-at-all?force=1", "force"),
    ("GET", "/v1/customers/alice/recommendations?count=3", "count"),
    ("PUT", "/v1/customers/alice/consent?dry=1", "dry"),
    ("GET", "/v1/items/apple/similar?limit=2", "limit"),
    ("POST", "/v1/recommendations?n=2", "n"),
    ("GET", "/v1/segments?segment=new", "segment"),
    ("GET", "/v1/audiences/all?count=3", "count"),
    ("GET", "/v1/audiences/all?attr.=x", "attr."),
    ("GET", "/v1/audiences/all?Country=Japan", "Country"),
    ("GET", "/v1/audiences/all/export?limit=3", "limit"),
    ("POST", "/v1/events?async=1", "async"),
    ("GET", "/metrics?format=json", "format"),
    ("POST", "/admin/reload?force", "force"),
]


class UnknownParameterTests(Base):
    def test_every_route(self):
        def body(method, path):
            if "/events" in path:
                return {"customer_id": "x", "item_id": "apple", "event": "view"}
            return {"PUT": {"personalization": True}, "POST": {"items": ["apple"]}}.get(method)
        self.assertErrorCases([
            ErrorCase("unknown parameter", m, p, 400, "unknown_parameter", body=body(m, p),
                      says="'%s'" % name)
            for m, p, name in UNKNOWN], self.fresh())

    def test_known_parameters_still_work(self):
        self.assertEqual(len(self.recs("alice", "?n=3&explain=0")["items"]), 3)
        self.assertEqual(len(self.get("/v1/items/apple/similar?n=2&category=fruit")["items"]), 1)
        self.members("all", "?n=1&limit=2&order=id&explain=1&attr.Newsletter=yes")
        self.members("birthday", "?days=30&hours=3")

    def test_route_table_lists_what_handlers_read(self):
        """Every parameter a handler reads is in its route's list (a name
        left out would make the route refuse its own parameter)."""
        src = "".join(open(os.path.join(ROOT, "src", f)).read()
                      for f in ("api_reads.c", "api_audiences.c", "api_params.c"))
        read = set(re.findall(r'(?:http_query|api_param_\w+|param_\w+)\([^"();]*"(\w+)"', src))
        table = open(os.path.join(ROOT, "src", "api.c")).read()
        for name in read:
            self.assertIn(name, table, name)



# ---------------------------------------------------------------------------
# 6. total
# ---------------------------------------------------------------------------
class TotalTests(Base):
    def test_total_on_every_answer(self):
        for name in SEGMENTS + ["all", "birthday", "cart_abandoners", "browsed_not_bought"]:
            ids, _ = self.audience_all_pages(name, "?limit=1&n=1")
            first = self.audience(name, "?limit=1&n=1")
            self.assertEqual(first["total"], len(ids), name)
            ranked = self.audience(name, "?limit=1&n=1&order=intent")
            self.assertEqual(ranked["total"], len(ids), name)
        body = self.audience("all", "?limit=2&n=1")
        self.assertEqual(body["total"], len(BASKETS))
        page2 = self.audience("all", "?limit=2&n=1&cursor=" + body["next_cursor"])
        self.assertEqual(page2["total"], len(BASKETS))  # not what is left
        self.assertEqual(self.audience("all", "?limit=2&n=1&country=Japan")["total"], 1)


# ---------------------------------------------------------------------------
# 7. Triggers are item-level and list their items
# ---------------------------------------------------------------------------
class TriggerTests(Base):
    def setUp(self):
        super().setUp()
        self.s = self.fresh(A["live"])
        self.now = int(time.time())

    def ago(self, hours):
        return iso(self.now - int(hours * 3600))

    def member(self, name, cust, query=""):
        for m in self.audience(name, query, self.s)["customers"]:
            if m["customer_id"] == cust:
                return m
        return None

    def test_buying_another_item_keeps_the_cart(self):
        self.events([
            {"customer_id": "shopper", "item_id": "dates", "event": "cart", "timestamp": self.ago(2)},
            {"customer_id": "shopper", "item_id": "cheese", "event": "cart", "timestamp": self.ago(1)},
            {"customer_id": "shopper", "item_id": "cheese", "event": "purchase"},
        ], self.s)
        m = self.member("cart_abandoners", "shopper")
        self.assertIsNotNone(m, "buying cheese dropped the dates still in the cart")
        self.assertEqual([(c["item_id"], c["title"]) for c in m["cart"]],
                         [("dates", "Medjool dates")])
        self.assertEqual(m["cart"][0]["carted_at"], self.ago(2))
        self.assertGreater(self.profile("shopper", self.s)["intent"], 0)
        self.assertEqual(m["intent"], self.profile("shopper", self.s)["intent"])

    def test_cart_lists_items_still_in_it(self):
        self.events([
            {"customer_id": "s2", "item_id": "eggs", "event": "cart", "timestamp": self.ago(3)},
            {"customer_id": "s2", "item_id": "flour", "event": "cart", "timestamp": self.ago(2)},
            {"customer_id": "s2", "item_id": "eggs", "event": "cart", "timestamp": self.ago(1.5)},
            {"customer_id": "s2", "item_id": "unknown-item", "event": "cart",
             "timestamp": self.ago(1.4)},
            {"customer_id": "s2", "item_id": "flour", "event": "remove_from_cart"},
            {"customer_id": "gone", "item_id": "eggs", "event": "cart", "timestamp": self.ago(1)},
            {"customer_id": "gone", "item_id": "eggs", "event": "remove_from_cart"},
        ], self.s)
        m = self.member("cart_abandoners", "s2")
        self.assertEqual([(c["item_id"], c["carted_at"]) for c in m["cart"]],
                         [("unknown-item", self.ago(1.4)), ("eggs", self.ago(1.5))])
        self.assertIsNone(m["cart"][0]["title"])  # not in the catalog
        self.assertIsNone(self.member("cart_abandoners", "gone"))
        # the window is per item
        m = self.member("cart_abandoners", "s2", "?hours=1")
        self.assertIsNone(m)

    def test_browsed_not_bought_lists_items(self):
        self.events([
            {"customer_id": "b1", "item_id": "eggs", "event": "view", "timestamp": self.ago(3)},
            {"customer_id": "b1", "item_id": "flour", "event": "view", "timestamp": self.ago(2)},
            {"customer_id": "b1", "item_id": "flour", "event": "purchase"},
        ], self.s)
        m = self.member("browsed_not_bought", "b1")
        self.assertEqual([(b["item_id"], b["title"], b["viewed_at"]) for b in m["browsed"]],
                         [("eggs", "Free-range eggs", self.ago(3))])
        self.assertNotIn("cart", m)


# ---------------------------------------------------------------------------
# 8. Live-only customers in segment audiences
# ---------------------------------------------------------------------------
class LiveOnlyTests(Base):
    def test_event_only_customers_listed(self):
        srv = self.fresh()
        self.events([{"customer_id": "newbie", "item_id": "eggs", "event": "purchase",
                      "price": 3},
                     {"customer_id": "looker", "item_id": "eggs", "event": "view"}], srv)
        seg = self.get("/v1/segments", srv)
        self.assertEqual(seg["customers"], len(BASKETS) + 2)
        self.assertIn("newbie", self.members("new", "?n=1", srv))
        self.assertIn("looker", self.members("prospect", "?n=1", srv))
        ids, _ = self.audience_all_pages("all", "?n=1&limit=3", srv)
        self.assertEqual(sorted(ids), sorted(list(BASKETS) + ["newbie", "looker"]))
        for name in SEGMENTS:
            ids, _ = self.audience_all_pages(name, "?n=1&limit=2", srv)
            self.assertEqual(len(ids), seg["segments"][name], name)
        m = [m for m in self.audience("new", "?n=2", srv)["customers"]
             if m["customer_id"] == "newbie"][0]
        self.assertEqual(len(m["items"]), 2)


# ---------------------------------------------------------------------------
# 9. Birthdays
# ---------------------------------------------------------------------------
class BirthdayTests(Base):
    def test_warning_without_birth_dates(self):
        srv = self.fresh(A["bare"])
        body = self.audience("birthday", "?days=366", srv)
        self.assertEqual(body["customers"], [])
        self.assertEqual(body["warning"], "no birth_date column in the customers file")
        p = self.export(srv.state_dir, "birthday", model=A["bare"])
        self.assertIn("no birth_date column in the customers file", p.stderr)

    def test_members_carry_birth_date(self):
        body = self.audience("birthday", "?days=366&n=1")
        self.assertNotIn("warning", body)
        got = {m["customer_id"]: m["birth_date"] for m in body["customers"]}
        self.assertEqual(got, BIRTH)
        p = self.export(os.path.join(self.tmp, "st"), "birthday", "--days", "366", "--n", "1")
        lines = [json.loads(x) for x in p.stdout.splitlines()]
        self.assertEqual({x["customer_id"]: x["birth_date"] for x in lines}, BIRTH)


# ---------------------------------------------------------------------------
# 10. Export
# ---------------------------------------------------------------------------
class ExportTests(Base):
    def test_csv(self):
        state = os.path.join(self.tmp, "st")
        p = self.export(state, "all", "--format", "csv", "--n", "3")
        rows = list(csv.reader(io.StringIO(p.stdout)))
        head = ["customer_id"] + ["item%d_%s" % (k, c) for k in (1, 2, 3)
                                  for c in ("id", "title", "price", "url", "because")]
        self.assertEqual(rows[0], head)
        self.assertEqual(sorted(r[0] for r in rows[1:]), sorted(BASKETS))
        alice = [r for r in rows if r[0] == "alice"][0]
        # cheese because of apple (the larger contribution), then dates because of bread
        self.assertEqual(alice[1:6], ["cheese", "Cheddar", "4", "", "Red apple"])
        self.assertEqual(alice[6:11], ["dates", "Medjool dates", "6", "", oo.TITLES["bread"]])
        self.assertEqual(alice[11:16], [oo.TEA, "Green tea", "", "", oo.TITLES["bread"]])
        # the quoted title survives: RFC 4180
        self.assertIn('"Bread, sliced ""fresh"""', p.stdout)
        jl = {json.loads(x)["customer_id"]: json.loads(x)
              for x in self.export(state, "all", "--n", "3").stdout.splitlines()}
        for r in rows[1:]:
            self.assertEqual([r[1 + 5 * k] for k in range(3) if r[1 + 5 * k]],
                             [it["item_id"] for it in jl[r[0]]["items"]], r[0])
        bad = run(["export", "--model", A["main"], "--state", state, "--audience", "all",
                   "--format", "xml"])
        self.assertEqual(bad.returncode, 2, bad.stderr)

    def test_preview_records_nothing(self):
        state = os.path.join(self.tmp, "st")
        first = self.export(state, "all", "--n", "3").stdout
        self.assertFalse(os.path.exists(os.path.join(state, "sent.mdb")))
        self.assertEqual(self.export(state, "all", "--n", "3").stdout, first)
        rec = self.export(state, "all", "--n", "3", "--record")
        self.assertEqual(rec.stdout, first)
        self.assertIn("recorded", rec.stderr)
        self.assertTrue(os.path.exists(os.path.join(state, "sent.mdb")))
        self.assertNotEqual(self.export(state, "all", "--n", "3").stdout, first)  # capped
        self.assertEqual(self.export(state, "all", "--n", "3", "--cap-days", "0").stdout, first)

    def test_help_says_recording_changes_state(self):
        p = run(["export", "--help"])
        self.assertEqual(p.returncode, 0)
        self.assertNotIn("read-only", p.stdout)
        self.assertIn("--record", p.stdout)
        self.assertIn("CHANGES THE STATE", p.stdout)
        self.assertIn("--format", p.stdout)

    def test_download_route_is_the_cli_export(self):
        srv = self.fresh()
        self.events([{"customer_id": "newbie", "item_id": "eggs", "event": "purchase"},
                     {"customer_id": "alice", "item_id": "dates", "event": "cart"}], srv)
        for name in ("all", "new", "cart_abandoners", "lost"):
            for fmt, ctype in (("jsonl", "application/x-ndjson"), ("csv", "text/csv")):
                resp = srv.get("/v1/audiences/%s/export?format=%s&n=4" % (name, fmt))
                self.assertEqual(resp.status, 200, resp)
                self.assertTrue(resp.headers["content-type"].startswith(ctype), resp.headers)
                p = self.export(srv.state_dir, name, "--format", fmt, "--n", "4")
                self.assertEqual(resp.body.decode(), p.stdout, (name, fmt))
        self.assertFalse(os.path.exists(os.path.join(srv.state_dir, "sent.mdb")))
        self.assertError(srv.get("/v1/audiences/all/export?format=xml"), 400,
                         "invalid_parameter")
        self.assertError(srv.get("/v1/audiences/vip/export"), 404, "unknown_audience")

    def test_download_larger_than_a_block(self):
        """Many members: the answer spans many fills of the stream."""
        srv = self.fresh()
        evs = [{"customer_id": "buyer-%04d" % i, "item_id": "eggs", "event": "purchase"}
               for i in range(900)]
        for k in range(0, len(evs), 300):
            self.events(evs[k:k + 300], srv)
        resp = srv.get("/v1/audiences/all/export?n=20")
        self.assertEqual(resp.status, 200)
        self.assertGreater(len(resp.body), 3 * 32 * 1024)
        ids = [json.loads(x)["customer_id"] for x in resp.body.decode().splitlines()]
        self.assertEqual(len(ids), 900 + len(BASKETS))
        self.assertEqual(ids, sorted(ids, key=lambda s: s.encode()))
        self.assertEqual(self.audience("all", "?n=1&limit=1", srv)["total"], len(ids))

    def test_http_and_export_cap_alike(self):
        srv = self.fresh()
        self.events([{"customer_id": "alice", "item_id": "cheese", "event": "view"}] * 5, srv)
        http_items = [m for m in self.audience("all", "?n=3", srv)["customers"]
                      if m["customer_id"] == "alice"][0]["items"]
        self.assertNotIn("cheese", [it["item_id"] for it in http_items])
        p = self.export(srv.state_dir, "all", "--n", "3")
        alice = [json.loads(x) for x in p.stdout.splitlines()
                 if json.loads(x)["customer_id"] == "alice"][0]
        self.assertEqual([it["item_id"] for it in alice["items"]],
                         [it["item_id"] for it in http_items])


# ---------------------------------------------------------------------------
# 14. The clock
# ---------------------------------------------------------------------------
class ClockTests(Base):
    def test_auto_runs_on_the_model_clock_for_old_data(self):
        ready = self.get("/readyz")
        self.assertEqual(ready["clock"]["setting"], "auto")
        self.assertEqual(ready["clock"]["runs_on"], "model")
        self.assertIn("clock auto (model clock, now 2024-03-1", self.srv.stderr())
        srv = self.fresh()
        resp = self.call("POST", "/v1/events", {"customer_id": "alice", "item_id": "apple",
                                                "event": "view", "timestamp": int(time.time())},
                         srv)
        err = self.assertError(resp, 400, "invalid_timestamp")
        self.assertIn("model's clock", err["message"])
        self.assertIn("--clock wall", err["message"])

    def test_wall_clock_takes_real_time(self):
        srv = self.fresh(extra=["--clock", "wall"])
        ready = self.get("/readyz", srv)
        self.assertEqual(ready["clock"], {"setting": "wall", "runs_on": "wall"})
        self.assertIn("clock wall (wall clock", srv.stderr())
        self.events({"customer_id": "alice", "item_id": "apple", "event": "view",
                     "timestamp": int(time.time())}, srv)
        err = self.assertError(self.call("POST", "/v1/events", {
            "customer_id": "alice", "item_id": "apple", "event": "view",
            "timestamp": int(time.time()) + 3 * 86400}, srv), 400, "invalid_timestamp")
        self.assertIn("wall clock", err["message"])

    def test_model_clock_forced(self):
        srv = self.fresh(A["live"], extra=["--clock", "model"])
        self.assertEqual(self.get("/readyz", srv)["clock"]["runs_on"], "model")
        srv2 = self.fresh(A["live"])
        self.assertEqual(self.get("/readyz", srv2)["clock"]["runs_on"], "wall")

    def test_bad_clock(self):
        p = run(["serve", "--model", A["main"], "--state", os.path.join(self.tmp, "s"),
                 "--clock", "sundial"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("--clock", p.stderr)
        self.assertIn("--clock", run(["serve", "--help"]).stdout)


# ---------------------------------------------------------------------------
# 15. Money and intent
# ---------------------------------------------------------------------------
class NumberTests(Base):
    def test_money_in_cents(self):
        srv = self.fresh(A["live"])
        raw = srv.get("/v1/customers/m1").body.decode()
        self.assertIn('"monetary":4310,', raw)
        raw = srv.get("/v1/customers/m2").body.decode()
        self.assertIn('"monetary":12.5,', raw)
        self.assertEqual(self.profile("carol")["rfm"]["monetary"], 14.5)

    def test_intent_four_decimals(self):
        srv = self.fresh(A["live"])
        # a cart 100 hours old: 2^(-100/24) = 0.05568
        self.events({"customer_id": "alice", "item_id": "eggs", "event": "cart",
                     "timestamp": iso(int(time.time()) - 100 * 3600)}, srv)
        raw = srv.get("/v1/customers/alice").body.decode()
        self.assertIn('"intent":0.0557,', raw)
        body = self.audience("cart_abandoners", "?hours=200&n=1", srv)
        raw = json.dumps(body["customers"][0]["intent"])
        self.assertEqual(raw, "0.0557")


# ---------------------------------------------------------------------------
# The one-to-one check: segments, audiences and export agree, every segment
# ---------------------------------------------------------------------------
class OneToOneCountsTests(Base):
    def check_every_segment(self, srv, model):
        seg = self.get("/v1/segments", srv)
        self.assertEqual(set(seg["segments"]), set(SEGMENTS))
        listed_all = 0
        for name in SEGMENTS:
            ids, _ = self.audience_all_pages(name, "?n=3&limit=2", srv)
            body = self.audience(name, "?n=3&limit=2", srv)
            self.assertEqual(body["total"], seg["segments"][name], name)
            self.assertEqual(len(ids), seg["segments"][name], name)
            listed_all += len(ids)
            # export against HTTP: the same members and items
            p = self.export(srv.state_dir, name, "--n", "3", model=model)
            lines = [json.loads(x) for x in p.stdout.splitlines()]
            self.assertEqual([x["customer_id"] for x in lines], ids, name)
            http = {}
            cursor = None
            for _ in range(50):
                page = self.audience(name, "?n=3&limit=4" + ("&cursor=" + cursor if cursor else ""),
                                     srv)
                http.update({m["customer_id"]: [it["item_id"] for it in m["items"]]
                             for m in page["customers"]})
                cursor = page["next_cursor"]
                if not cursor:
                    break
            self.assertEqual({x["customer_id"]: [it["item_id"] for it in x["items"]]
                              for x in lines}, http, name)
        self.assertEqual(listed_all, seg["customers"])
        self.assertEqual(self.audience("all", "?n=1", srv)["total"], seg["customers"])

    def test_main_with_live_customers(self):
        srv = self.fresh()
        self.events([{"customer_id": "newbie", "item_id": "eggs", "event": "purchase"},
                     {"customer_id": "looker", "item_id": "eggs", "event": "view"},
                     {"customer_id": "looker2", "item_id": "flour", "event": "cart"},
                     {"customer_id": "alice", "item_id": "cheese", "event": "purchase",
                      "price": 4}], srv)
        self.check_every_segment(srv, A["main"])

    def test_rfm_model(self):
        rfm = os.path.join(self.tmp, "rfm")
        train(rfm, oo.RFM, "--customers", oo.RFM_CUSTOMERS)
        srv = self.fresh(rfm)
        self.events([{"customer_id": "p-live", "item_id": "lamp", "event": "view"}], srv)
        self.check_every_segment(srv, rfm)


if __name__ == "__main__":
    sys.exit(run_suite(__name__, sys.argv[1:], lambda: [A.get("tmp")], "audiences"))
