#!/usr/bin/env python3
"""End-to-end tests of the One to One API (issue 4), over real HTTP.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_one_to_one.py [-v] [TestClass[.test]]

Profiles and RFM segments, basket recommendations, business rules on every
recommendation route, cold start, consent, erasure, audiences with cursor
paging and `shopkeeper export`. The helpers (Server, train, EXPECTED for
tests/fixtures/interactions.csv) come from lib.py; test_server.py covers
health, per-customer and similar-item scores, errors and limits: not
repeated here. The error answers of these routes are tables of cases
(ERROR_CASES, AUDIENCE_ERROR_CASES).

Two models: the shared fixture with tests/fixtures/catalog.csv and
customers.csv ("MAIN"), and tests/fixtures/rfm-interactions.csv, built so
that RFM quintiles can be worked out by hand ("RFM", see RFM_TABLE).
Tests that change state (consent, erasure, events, export records) start
their own server on a fresh state directory.

The last line printed is "N passed, N failed" (a table's rows count one each).
"""
import calendar
import json
import math
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (BASKETS, EXPECTED, FIXTURES, INTERACTIONS, ITEMS, JSON_HEADERS,  # noqa: E402
                 MUG, TEA, TOL, ApiTestCase, ErrorCase, Server, kill_servers, model_meta, q,
                 run, run_suite, stop_shared, train)

CATALOG = os.path.join(FIXTURES, "catalog.csv")
CUSTOMERS = os.path.join(FIXTURES, "customers.csv")
RFM = os.path.join(FIXTURES, "rfm-interactions.csv")
RFM_CUSTOMERS = os.path.join(FIXTURES, "rfm-customers.csv")

# ---------------------------------------------------------------------------
# MAIN: interactions.csv (scores in lib.EXPECTED) + catalog.csv
#
#   item       title                     category price   customers
#   apple      Red apple                 fruit    0.50    6
#   bread      Bread, sliced "fresh"     bakery   2.10    4
#   cheese     Cheddar                   dairy    4.00    5
#   dates      Medjool dates             fruit    6.00    2
#   eggs       Free-range eggs           dairy    0.25    3
#   flour      Plain flour               bakery   1.20    2
#   Mug, "Big" Big mug                   kitchen  8.00    2
#   tea/green  Green tea                 kitchen  (none)  2
# ---------------------------------------------------------------------------
TITLES = {"apple": "Red apple", "bread": 'Bread, sliced "fresh"', "cheese": "Cheddar",
          "dates": "Medjool dates", "eggs": "Free-range eggs", "flour": "Plain flour",
          MUG: "Big mug", TEA: "Green tea"}
r = math.sqrt
# cosine(i, j) = |Ci & Cj| / sqrt(|Ci| |Cj|) (see lib.py)
COS = {("apple", "cheese"): 4 / r(30), ("apple", "bread"): 2 / r(24),
       ("apple", "dates"): 1 / r(12), ("apple", "eggs"): 1 / r(18),
       ("bread", "cheese"): 2 / r(20), ("bread", "dates"): 1 / r(8), ("bread", TEA): 1 / r(8),
       ("cheese", "dates"): 1 / r(10), ("cheese", TEA): 1 / r(10), ("cheese", "eggs"): 1 / r(15),
       ("eggs", "flour"): 2 / r(6), ("flour", MUG): 1 / 2, (TEA, MUG): 1 / 2,
       ("eggs", MUG): 1 / r(6)}
del r


def cos(a, b):
    return COS.get((a, b)) or COS.get((b, a)) or 0.0


# RFM of the MAIN customers, at the model's clock (as_of 2024-03-10 11:00 plus
# the seconds since training). Purchases only; a return subtracts its value
# and is no visit.
#   carol: 03-03 11:00 apple .5 + cheese 4 + dates 6, 03-10 11:00 cheese 4
#          F 2 days, M 14.5, recency 0
#   dave:  1709715600 = 03-06 09:00: 3 bread 6.3 + dates 6; 03-07 09:00: -1
#          bread -2.1 -> F 1, M 10.2, first = last = 03-06 09:00
#   17850: 03-08 16:00 bread 2.1 + cheese 4 + tea 3 -> F 1, M 9.1, 1.7917 days
# Recency in whole days elapsed (the rule for cuts and scores alike), sorted:
#   carol 0, 17850 1 (1.79), ivan 1 (1.04), judy 1, heidi 2 (2.96), grace 3
#   (3.875), dave 4 (4.08), frank 5 (5.10), erin 6 (6.46), bob 8 (8.04),
#   alice 9 (9.08). Cuts (nearest rank, 20/40/60/80 %: the 3rd, 5th, 7th and
#   9th values): 1, 2, 4, 6.
# Monetary sorted: heidi .5, alice 2.6, frank 4.2, erin 4.5, judy 6, bob 7.1,
#   17850 9.1, dave 10.2, ivan 11, grace 11.9, carol 14.5 -> cuts 4.2, 6, 9.1, 11.
# Frequency: all 1 but carol (2) -> cuts 1, 1, 1, 1.
#   carol: R 5, F 5 (2 > 1), M 5 -> champions
#   17850: R 5 (1 day is not above the cut 1), F 1, M 3 (9.1 is not above the
#          cut 9.1) -> new
#   dave:  R 3 (4 days: above 1 and 2, not above 4), F 1, M 4 -> needs_attention
#          (sitting on a cut, he keeps his score until a whole day has passed:
#          the seconds the tests wait change nothing)
# Segments (the same reasoning for everyone):
MAIN_SEGMENTS = {"carol": "champions", "17850": "new", "ivan": "new", "judy": "new",
                 "heidi": "new", "grace": "needs_attention", "dave": "needs_attention",
                 "frank": "dormant", "erin": "dormant",
                 "alice": "lost", "bob": "lost"}

# ---------------------------------------------------------------------------
# RFM: tests/fixtures/rfm-interactions.csv, as_of 2024-06-30 12:00:00.
# Every purchase day is one row at 12:00, quantity 1, the customer's price:
#
#   cust  last purchase  R days  F days  price  M                 items
#   r01   06-30          0       9       10     90                tent stove lamp
#   r02   06-29          1       1       50     50                tent
#   r03   06-28          2       5       4      20 - 4 = 16       lamp rope
#         (returns a lamp on 06-29: subtracts 4, and is no visit)
#   r04   06-27          3       7       1      7                 rope
#   r05   06-25          5       3       20     60                stove lamp
#   r06   06-22          8       6       5      30                tent rope
#   r07   06-17          13      2       40     80                stove
#   r08   06-09          21      10      1      10                lamp tent
#   r09   05-27          34      8       5      40                rope stove
#   r10   05-06          55      4       25     100               solo (nobody else)
#   p11   only views: no purchase -> prospect, not in the quintiles
#
# Nearest-rank quintile cuts over the 10 buyers (the 2nd, 4th, 6th and 8th
# smallest values):
#   recency 1, 3, 8, 21   frequency 2, 4, 6, 8   monetary 10, 30, 50, 80
# Scores: F and M are 1 + the number of cuts the value is above; R is 5 minus
# the number of cuts the recency (whole days) is above. r02, r04, r06 and r08
# sit exactly on a recency cut and keep their score while the model's clock
# stays within the same day.
# ---------------------------------------------------------------------------
RFM_TABLE = {
    #      R  F  M  segment            frequency monetary recency first        last
    "r01": (5, 5, 5, "champions", 9, 90, 0, "2024-06-22", "2024-06-30"),
    "r02": (5, 1, 3, "new", 1, 50, 1, "2024-06-29", "2024-06-29"),
    "r03": (4, 3, 2, "promising", 5, 16, 2, "2024-06-24", "2024-06-28"),
    "r04": (4, 4, 1, "loyal", 7, 7, 3, "2024-06-21", "2024-06-27"),
    "r05": (3, 2, 4, "needs_attention", 3, 60, 5, "2024-06-23", "2024-06-25"),
    "r06": (3, 3, 2, "needs_attention", 6, 30, 8, "2024-06-17", "2024-06-22"),
    "r07": (2, 1, 4, "dormant", 2, 80, 13, "2024-06-16", "2024-06-17"),
    "r08": (2, 5, 1, "at_risk", 10, 10, 21, "2024-05-31", "2024-06-09"),
    "r09": (1, 4, 3, "at_risk", 8, 40, 34, "2024-05-20", "2024-05-27"),
    "r10": (1, 2, 5, "lost", 4, 100, 55, "2024-05-03", "2024-05-06"),
}
RFM_SEGMENTS = {c: row[3] for c, row in RFM_TABLE.items()}
RFM_SEGMENTS["p11"] = "prospect"
SEGMENT_NAMES = ["champions", "loyal", "new", "promising", "needs_attention", "at_risk",
                 "dormant", "lost", "prospect"]
# Birthdays (rfm-customers.csv) against 2024-06-30: r01 06-30, r02 07-06,
# r03 07-07, r04 12-25, r06 02-29, r07 06-29 (yesterday), p11 07-01.
BIRTHDAYS_7 = ["p11", "r01", "r02"]          # 06-30 .. 07-06
BIRTHDAYS_8 = ["p11", "r01", "r02", "r03"]   # .. 07-07
BIRTHDAYS_1 = ["r01"]                        # today only
# 366 days reach 2025-06-30: everyone with a birth date, r06's 29 February
# celebrated on 1 March 2025.
BIRTHDAYS_366 = ["p11", "r01", "r02", "r03", "r04", "r06", "r07"]

SHARED = {}


def wait_model_age(model_dir, seconds):
    """Waits until the model is `seconds` old, so its clock has moved past
    as_of by at least that (see the drift notes above)."""
    meta = model_meta(model_dir)
    created = calendar.timegm(time.strptime(meta["created"], "%Y-%m-%dT%H:%M:%SZ"))
    delay = created + seconds - time.time()
    if delay > 0:
        time.sleep(min(delay, seconds + 1))
    return meta


def train_main(out_dir, interactions=INTERACTIONS, *extra):
    return train(out_dir, interactions, "--catalog", CATALOG, "--customers", CUSTOMERS, *extra)


def setUpModule():
    tmp = tempfile.mkdtemp(prefix="shopkeeper-1to1-")
    SHARED["tmp"] = tmp
    main = os.path.join(tmp, "main")
    train_main(main)
    rfm = os.path.join(tmp, "rfm")
    train(rfm, RFM, "--customers", RFM_CUSTOMERS)
    SHARED["main"], SHARED["rfm"] = main, rfm
    SHARED["main_meta"] = wait_model_age(main, 2)
    SHARED["rfm_meta"] = wait_model_age(rfm, 2)
    # Read-only servers: no test changes their state.
    SHARED["srv"] = Server(main, os.path.join(tmp, "state-main"))
    SHARED["rfm_srv"] = Server(rfm, os.path.join(tmp, "state-rfm"))


def tearDownModule():
    try:
        for key in ("srv", "rfm_srv"):
            if SHARED.get(key) is not None:
                stop_shared(SHARED[key])
    finally:
        kill_servers()
        shutil.rmtree(SHARED.get("tmp", ""), ignore_errors=True)


class Base(ApiTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shopkeeper-1to1-t-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    @property
    def srv(self):
        return SHARED["srv"]

    def fresh(self, model=None, extra=()):
        """A server of its own on a fresh state directory."""
        srv = Server(model or SHARED["main"], os.path.join(self.tmp, "state"), extra=extra)
        self.addCleanup(srv.kill)
        return srv

    # -- HTTP --------------------------------------------------------------
    def call(self, method, path, body=None, srv=None):
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        return (srv or self.srv).request(method, path, body=data,
                                         headers=JSON_HEADERS if data is not None else None)

    def ok(self, method, path, body=None, srv=None):
        resp = self.call(method, path, body, srv)
        self.assertEqual(resp.status, 200, (method, path, resp))
        self.assertJSON(resp)
        return resp.json

    def get(self, path, srv=None):
        return self.ok("GET", path, srv=srv)

    def recs(self, cust, query="", srv=None):
        return self.get("/v1/customers/%s/recommendations%s" % (q(cust), query), srv)

    def basket(self, body, query="", srv=None):
        return self.ok("POST", "/v1/recommendations" + query, body, srv)

    def profile(self, cust, srv=None):
        return self.get("/v1/customers/%s" % q(cust), srv)

    def events(self, evs, srv):
        return self.ok("POST", "/v1/events", evs, srv)

    def audience(self, name, query="", srv=None):
        return self.get("/v1/audiences/%s%s" % (name, query), srv)

    def audience_all_pages(self, name, query, srv=None, max_pages=50):
        """Follows next_cursor to the end; returns (ids in order, pages)."""
        ids, pages, cursor = [], 0, None
        for _ in range(max_pages):
            sep = "&" if query else "?"
            path = query + ("%scursor=%s" % (sep, cursor) if cursor else "")
            body = self.audience(name, path, srv)
            pages += 1
            ids += [m["customer_id"] for m in body["customers"]]
            cursor = body["next_cursor"]
            if cursor is None:
                return ids, pages
            self.assertTrue(body["customers"], "a page with a cursor but no members")
        self.fail("audience %s did not end within %d pages" % (name, max_pages))

    def ids(self, body):
        return [it["item_id"] for it in body["items"]]

    def popular_ids(self, query="", srv=None):
        """What a stranger gets: the popular list under the same rules."""
        body = self.recs("stranger-nobody-knows", query, srv)
        self.assertEqual(body["source"], "popular")
        return self.ids(body)


# ---------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------
class ProfileTests(Base):
    def test_profile_of_a_two_visit_customer(self):
        p = self.profile("carol")
        self.assertEqual(p["customer_id"], "carol")
        self.assertEqual(p["model"], SHARED["main_meta"]["model_id"])
        self.assertEqual(p["segment"], "champions")
        rfm = p["rfm"]
        self.assertEqual((rfm["r"], rfm["f"], rfm["m"]), (5, 5, 5))
        self.assertEqual(rfm["frequency"], 2)
        self.assertAlmostEqual(rfm["monetary"], 14.5, delta=TOL)
        self.assertGreaterEqual(rfm["recency_days"], 0)
        self.assertLess(rfm["recency_days"], 0.01)  # bought at as_of; a few seconds since
        self.assertEqual(p["first_purchase"], "2024-03-03T11:00:00Z")
        self.assertEqual(p["last_purchase"], "2024-03-10T11:00:00Z")
        self.assertEqual(p["history_size"], 3)  # apple, cheese, dates
        self.assertEqual(p["attributes"], {"country": "Japan", "birth_date": "1990-03-10",
                                           "Newsletter": "yes"})
        self.assertEqual(p["consent"], {"personalization": True})
        self.assertEqual(p["intent"], 0)
        self.assertEqual(p["events_since_model"], 0)
        self.assertIsNone(p["last_event"])

    def test_profile_with_a_return(self):
        """dave bought 3 bread and dates, returned one bread the next day."""
        p = self.profile("dave")
        rfm = p["rfm"]
        self.assertEqual(rfm["frequency"], 1)  # the return is no visit
        self.assertAlmostEqual(rfm["monetary"], 3 * 2.1 + 6 - 2.1, delta=TOL)
        self.assertEqual(p["first_purchase"], "2024-03-06T09:00:00Z")
        self.assertEqual(p["last_purchase"], "2024-03-06T09:00:00Z")
        self.assertAlmostEqual(rfm["recency_days"], 4 + 2 / 24, delta=0.01)
        self.assertEqual((rfm["r"], rfm["f"], rfm["m"]), (3, 1, 4))
        self.assertEqual(p["segment"], "needs_attention")
        self.assertEqual(p["history_size"], 2)
        self.assertEqual(p["attributes"], {})  # not in customers.csv

    def test_profile_of_float_id_customer(self):
        for asked in ("17850", "17850.0"):
            p = self.profile(asked)
            self.assertEqual(p["customer_id"], "17850")
            self.assertEqual(p["segment"], "new")
            rfm = p["rfm"]
            self.assertEqual((rfm["r"], rfm["f"], rfm["m"]), (5, 1, 3))
            self.assertAlmostEqual(rfm["monetary"], 9.1, delta=TOL)
            self.assertAlmostEqual(rfm["recency_days"], 1 + 19 / 24, delta=0.01)
            self.assertEqual(p["attributes"]["birth_date"], "1955-06-14")
            self.assertEqual(p["history_size"], 3)

    def test_every_customer_segment(self):
        for cust, seg in MAIN_SEGMENTS.items():
            self.assertEqual(self.profile(cust)["segment"], seg, cust)
            # the recommendation answer names the same segment
            self.assertEqual(self.recs(cust, "?n=1")["segment"], seg, cust)

    def test_full_return_counts_no_money(self):
        """heidi's flour came back in full: M is the apple alone."""
        rfm = self.profile("heidi")["rfm"]
        self.assertAlmostEqual(rfm["monetary"], 0.5, delta=TOL)
        self.assertEqual(rfm["frequency"], 1)


# ---------------------------------------------------------------------------
# RFM quintiles and segments, by hand (RFM_TABLE)
# ---------------------------------------------------------------------------
class RfmSegmentTests(Base):
    @property
    def srv(self):
        return SHARED["rfm_srv"]

    def test_cut_points_in_model(self):
        rfm = SHARED["rfm_meta"]["rfm"]
        self.assertEqual(rfm["recency_days"], [1, 3, 8, 21])
        self.assertEqual(rfm["frequency"], [2, 4, 6, 8])
        self.assertEqual(rfm["monetary"], [10, 30, 50, 80])

    def test_each_customer_scores_and_segment(self):
        for cust, (R, F, M, seg, freq, money, rec, first, last) in RFM_TABLE.items():
            with self.subTest(customer=cust):
                p = self.profile(cust)
                rfm = p["rfm"]
                self.assertEqual((rfm["r"], rfm["f"], rfm["m"]), (R, F, M), p)
                self.assertEqual(p["segment"], seg, p)
                self.assertEqual(rfm["frequency"], freq)
                self.assertAlmostEqual(rfm["monetary"], money, delta=TOL)
                self.assertAlmostEqual(rfm["recency_days"], rec, delta=0.01)
                self.assertEqual(p["first_purchase"], first + "T12:00:00Z")
                self.assertEqual(p["last_purchase"], last + "T12:00:00Z")

    def test_each_fifth_gets_its_score(self):
        """Ten buyers with distinct F and M: two per score, 1 to 5."""
        fs = sorted(self.profile(c)["rfm"]["f"] for c in RFM_TABLE)
        ms = sorted(self.profile(c)["rfm"]["m"] for c in RFM_TABLE)
        self.assertEqual(fs, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
        self.assertEqual(ms, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5])

    def test_prospect(self):
        p = self.profile("p11")
        self.assertEqual(p["segment"], "prospect")
        self.assertIsNone(p["rfm"])
        self.assertIsNone(p["first_purchase"])
        self.assertIsNone(p["last_purchase"])
        self.assertEqual(p["history_size"], 2)  # two viewed items
        self.assertEqual(p["attributes"], {"country": "Japan", "birth_date": "2000-07-01"})

    def test_attributes_from_customers_file(self):
        self.assertEqual(self.profile("r01")["attributes"],
                         {"country": "Japan", "birth_date": "1980-06-30", "tier": "gold"})
        # empty cells are left out
        self.assertEqual(self.profile("r02")["attributes"],
                         {"country": "France", "birth_date": "1990-07-06"})
        self.assertEqual(self.profile("r05")["attributes"], {"country": "Japan"})

    def test_segments_counts(self):
        body = self.get("/v1/segments")
        self.assertEqual(body["model"], SHARED["rfm_meta"]["model_id"])
        self.assertEqual(body["customers"], 11)
        want = {s: 0 for s in SEGMENT_NAMES}
        for seg in RFM_SEGMENTS.values():
            want[seg] += 1
        self.assertEqual(body["segments"], want)
        # The model's clock: as_of plus the model's age (not a bound on how
        # long the tests took: minutes under valgrind).
        meta = SHARED["rfm_meta"]
        self.assertEqual(meta["as_of"], "2024-06-30T12:00:00Z")
        at, as_of, created = (calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ"))
                              for t in (body["at"], meta["as_of"], meta["created"]))
        self.assertGreaterEqual(at - as_of, 2, body["at"])  # wait_model_age(rfm, 2)
        self.assertLessEqual(at - as_of, time.time() - created + 1, body["at"])

    def test_segment_audiences_match_table(self):
        for seg in SEGMENT_NAMES:
            want = sorted(c for c, s in RFM_SEGMENTS.items() if s == seg)
            ids, _ = self.audience_all_pages(seg, "?limit=2&n=1")
            self.assertEqual(ids, want, seg)

    def test_customer_without_neighbours_gets_popular(self):
        """r10 only ever bought `solo`, which nobody else bought: no neighbours."""
        body = self.recs("r10", "?n=3")
        self.assertEqual(body["source"], "popular")
        self.assertEqual(body["segment"], "lost")
        self.assertEqual(len(body["items"]), 3)
        self.assertNotIn("solo", self.ids(body))  # bought: still left out
        stranger = self.popular_ids("?n=4")
        self.assertEqual(self.ids(body), [i for i in stranger if i != "solo"][:3])
        for it in body["items"]:
            self.assertEqual(it["source"], "popular")  # the whole answer is popular
            self.assertEqual(it["because"], [])


# ---------------------------------------------------------------------------
# Basket / session recommendations: POST /v1/recommendations
# ---------------------------------------------------------------------------
class BasketTests(Base):
    def apple_basket(self):
        return [(j, cos("apple", j), ["apple"]) for j in ("cheese", "bread", "dates", "eggs")]

    def test_basket_scores_and_exclusion(self):
        body = self.basket({"items": ["apple"], "n": 4})
        self.assertEqual(body["source"], "personal")
        self.assertEqual(body["unknown_items"], 0)
        self.assertEqual(body["model"], SHARED["main_meta"]["model_id"])
        self.assertNotIn("customer_id", body)
        self.assertItems(body["items"], self.apple_basket())
        for it in body["items"]:
            self.assertEqual(it["title"], TITLES[it["item_id"]])

    def test_two_item_basket_sums(self):
        # bread + cheese: dates = 1/sqrt8 + 1/sqrt10; tea likewise; apple
        # = 2/sqrt24 + 4/sqrt30; eggs = 1/sqrt15
        body = self.basket({"items": ["bread", "cheese"], "n": 4})
        want = sorted([(j, cos("bread", j) + cos("cheese", j)) for j in ("apple", "dates", TEA, "eggs")],
                      key=lambda e: -e[1])
        self.assertEqual(self.ids(body)[0], "apple")
        self.assertEqual(set(self.ids(body)), {e[0] for e in want})
        for it in body["items"]:
            self.assertAlmostEqual(it["score"], dict(want)[it["item_id"]], delta=TOL)
        self.assertFalse({"bread", "cheese"} & set(self.ids(body)))

    def test_top_up_keeps_basket_out(self):
        body = self.basket({"items": ["apple"], "n": 100})
        got = self.ids(body)
        self.assertEqual(set(got), set(ITEMS) - {"apple"})
        self.assertEqual(len(got), len(set(got)))
        for it in body["items"][4:]:
            self.assertEqual(it.get("source"), "popular", it)
            self.assertEqual(it["score"], 0)

    def test_customer_purchases_left_out(self):
        # alice bought apple and bread; cheese's neighbours: apple .7303,
        # bread .4472, dates .3162, tea .3162, eggs .2582
        body = self.basket({"items": ["cheese"], "customer_id": "alice", "n": 3})
        self.assertEqual(body["customer_id"], "alice")
        self.assertEqual(set(self.ids(body)[:2]), {"dates", TEA})
        self.assertEqual(self.ids(body)[2], "eggs")
        for it in body["items"]:
            self.assertAlmostEqual(it["score"], cos("cheese", it["item_id"]), delta=TOL)
            self.assertEqual(it["because"], ["cheese"])
        # without the customer, apple and bread lead
        self.assertEqual(self.ids(self.basket({"items": ["cheese"], "n": 2})), ["apple", "bread"])
        # include_purchased=1 lets them back in
        body = self.basket({"items": ["cheese"], "customer_id": "alice", "n": 2},
                           "?include_purchased=1")
        self.assertEqual(self.ids(body), ["apple", "bread"])
        # an unknown customer changes nothing
        body = self.basket({"items": ["cheese"], "customer_id": "nobody", "n": 2})
        self.assertEqual(self.ids(body), ["apple", "bread"])

    def test_unknown_items_counted(self):
        body = self.basket({"items": ["apple", "zzz", "caf\u00e9", "zzz"], "n": 4})
        self.assertEqual(body["unknown_items"], 3)
        self.assertItems(body["items"], self.apple_basket())
        body = self.basket({"items": ["zzz", "yyy"], "n": 3})
        self.assertEqual(body["unknown_items"], 2)
        self.assertEqual(body["source"], "popular")
        self.assertEqual(self.ids(body), [e[0] for e in EXPECTED["popular_head"][:3]])

    def test_empty_basket_gets_popular(self):
        body = self.basket({"items": [], "n": 4})
        self.assertEqual(body["source"], "popular")
        self.assertEqual(body["unknown_items"], 0)
        self.assertItems(body["items"], EXPECTED["popular_head"])

    def test_repeated_item_counts_once(self):
        body = self.basket({"items": ["apple", "apple", "apple"], "n": 4})
        self.assertItems(body["items"], self.apple_basket())

    def test_explain_false(self):
        body = self.basket({"items": ["apple"], "n": 2, "explain": False})
        for it in body["items"]:
            self.assertNotIn("because", it)
        body = self.basket({"items": ["apple"], "n": 2}, "?explain=0")
        for it in body["items"]:
            self.assertNotIn("because", it)

    def test_basket_limit(self):
        items = ["apple"] + ["u%d" % i for i in range(99)]
        body = self.basket({"items": items, "n": 4})
        self.assertEqual(body["unknown_items"], 99)
        self.assertItems(body["items"], self.apple_basket())
        # (one more: ERROR_CASES)


# ---------------------------------------------------------------------------
# Business rules on every recommendation route
# ---------------------------------------------------------------------------
# alice (apple, bread): cheese 1.1775 [apple, bread], dates .6422 [bread, apple],
# tea .3536 [bread], eggs .2357 [apple]; popular top-ups flour, Mug.
ALICE = {e[0]: e for e in EXPECTED["alice"]}


class BusinessRuleTests(Base):
    def test_category(self):
        body = self.recs("alice", "?category=dairy")
        self.assertEqual(body["source"], "personal")
        self.assertItems(body["items"], [ALICE["cheese"], ALICE["eggs"]])
        # fruit: dates; apple is bought and nothing else is fruit
        self.assertItems(self.recs("alice", "?category=fruit")["items"], [ALICE["dates"]])
        # kitchen: tea from the history, Mug topped up from popularity
        items = self.recs("alice", "?category=kitchen")["items"]
        self.assertItems(items, [ALICE[TEA], (MUG, 0.0, [])])
        self.assertEqual(items[1]["source"], "popular")
        # similar items and baskets too
        sim = self.get("/v1/items/apple/similar?category=fruit")
        self.assertEqual(self.ids(sim), ["dates"])
        self.assertEqual(self.ids(self.basket({"items": ["apple"]}, "?category=dairy")),
                         ["cheese", "eggs"])

    def test_exclude(self):
        items = self.recs("alice", "?exclude=cheese,dates")["items"]
        self.assertItems(items[:2], [ALICE[TEA], ALICE["eggs"]])
        self.assertEqual(self.ids({"items": items})[2:], ["flour", MUG])
        # unknown and repeated ids are ignored; percent-encoded ids work
        items = self.recs("alice", "?exclude=nope,cheese,cheese,tea%2Fgreen")["items"]
        self.assertEqual(self.ids({"items": items})[:2], ["dates", "eggs"])
        self.assertEqual(self.ids(self.get("/v1/items/apple/similar?exclude=cheese,bread")),
                         ["dates", "eggs"])
        self.assertEqual(self.ids(self.basket({"items": ["apple"], "n": 2}, "?exclude=cheese")),
                         ["bread", "dates"])
        self.assertNotIn("apple", self.popular_ids("?exclude=apple"))
        # 100 is the limit, not over it (101: ERROR_CASES)
        self.recs("alice", "?exclude=" + ",".join("x%d" % i for i in range(99)) + ",cheese")

    def test_include_purchased(self):
        body = self.recs("alice", "?include_purchased=1&n=6")
        got = self.ids(body)
        self.assertEqual(got[:2], ["cheese", "dates"])
        # bread for apple and apple for bread: 2/sqrt24 each, tied
        self.assertEqual(set(got[2:4]), {"apple", "bread"})
        for it in body["items"][2:4]:
            self.assertAlmostEqual(it["score"], cos("apple", "bread"), delta=TOL)
        self.assertEqual(got[4:], [TEA, "eggs"])
        self.assertFalse({"apple", "bread"} & set(self.ids(self.recs("alice", "?include_purchased=0"))))

    def test_price_range(self):
        # min_price 5: dates (6) personal, Mug (8) topped up
        items = self.recs("alice", "?min_price=5")["items"]
        self.assertItems(items, [ALICE["dates"], (MUG, 0.0)])
        # max_price 1: eggs (0.25); apple is bought, flour costs 1.20
        self.assertItems(self.recs("alice", "?max_price=1")["items"], [ALICE["eggs"]])
        # tea has no price: any price rule drops it
        self.assertEqual(self.ids(self.recs("alice", "?max_price=3")), ["eggs", "flour"])
        self.assertEqual(self.ids(self.recs("alice", "?min_price=0")),
                         ["cheese", "dates", "eggs", "flour", MUG])
        self.assertEqual(self.ids(self.recs("alice", "?min_price=2&max_price=4.5")), ["cheese"])
        # bounds are inclusive
        self.assertEqual(self.ids(self.recs("alice", "?min_price=4&max_price=4")), ["cheese"])
        self.assertEqual(self.ids(self.get("/v1/items/apple/similar?max_price=1")), ["eggs"])
        self.assertEqual(self.ids(self.basket({"items": ["apple"]}, "?min_price=3")),
                         ["cheese", "dates", MUG])

    def test_explain(self):
        body = self.recs("alice", "?n=4")
        self.assertItems(body["items"], EXPECTED["alice"])  # because on by default
        for query in ("?n=4&explain=0", "?n=4&explain=false"):
            body = self.recs("alice", query)
            for it in body["items"]:
                self.assertNotIn("because", it)
            self.assertItems(body["items"], [e[:2] for e in EXPECTED["alice"]])
        self.assertIn("because", self.recs("alice", "?explain=1")["items"][0])

    def test_titles(self):
        for it in self.recs("alice", "?n=10")["items"]:
            self.assertEqual(it["title"], TITLES[it["item_id"]])

    def test_rules_combined(self):
        # kitchen under 10: Mug only (tea has no price)
        self.assertEqual(self.ids(self.recs("alice", "?category=kitchen&max_price=10")), [MUG])
        # fruit, excluding dates: nothing passes for alice (apple is bought)
        body = self.recs("alice", "?category=fruit&exclude=dates")
        self.assertEqual(body["items"], [])


# ---------------------------------------------------------------------------
# Cold start
# ---------------------------------------------------------------------------
class ColdStartTests(Base):
    def test_unknown_customer_popular_within_category(self):
        for cat, want in (("dairy", [("cheese", 5), ("eggs", 3)]),
                          ("bakery", [("bread", 4), ("flour", 2)]),
                          ("fruit", [("apple", 6), ("dates", 2)])):
            body = self.recs("nobody", "?category=" + cat)
            self.assertEqual(body["source"], "popular")
            self.assertNotIn("segment", body)
            self.assertItems(body["items"], want)
        body = self.recs("nobody", "?category=kitchen")
        self.assertEqual(set(self.ids(body)), {MUG, TEA})
        self.assertEqual(self.ids(self.recs("nobody", "?max_price=1")), ["apple", "eggs"])

    def test_never_empty_while_items_pass(self):
        for query in ("", "?n=1", "?n=100", "?category=kitchen", "?min_price=7",
                      "?exclude=apple,cheese,bread,eggs,dates,flour"):
            for cust in ("nobody", "alice", "heidi"):
                body = self.recs(cust, query)
                self.assertTrue(body["items"], (cust, query))

    def test_consent_withdrawn_gets_popular(self):
        srv = self.fresh()
        self.ok("PUT", "/v1/customers/alice/consent", {"personalization": False}, srv)
        for query, want in (("?n=3", [e[0] for e in EXPECTED["popular_head"][:3]]),
                            ("?category=dairy", ["cheese", "eggs"])):
            body = self.recs("alice", query, srv)
            self.assertEqual(body["source"], "popular")
            self.assertNotIn("segment", body)
            self.assertEqual(self.ids(body), want)
            for it in body["items"]:
                self.assertEqual(it["because"], [])

    def test_first_event_ends_cold_start(self):
        srv = self.fresh()
        self.assertEqual(self.recs("walk-in", "", srv)["source"], "popular")
        self.events({"customer_id": "walk-in", "item_id": "tea/green", "event": "view"}, srv)
        body = self.recs("walk-in", "?n=3", srv)
        self.assertEqual(body["source"], "personal")
        # tea's neighbours, weighted by sqrt(view weight 0.2)
        w = math.sqrt(0.2)
        self.assertItems(body["items"][:2], [(MUG, 0.5 * w, [TEA]), ("bread", cos("bread", TEA) * w,
                                                                        [TEA])])


# ---------------------------------------------------------------------------
# Consent
# ---------------------------------------------------------------------------
class ConsentTests(Base):
    def put(self, cust, body, srv):
        return self.call("PUT", "/v1/customers/%s/consent" % q(cust), body, srv)

    def test_withdraw_and_restore(self):
        srv = self.fresh()
        before = self.recs("alice", "?n=4", srv)
        self.assertItems(before["items"], EXPECTED["alice"])
        resp = self.put("alice", {"personalization": False}, srv)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json, {"customer_id": "alice", "consent": {"personalization": False}})
        self.assertEqual(self.profile("alice", srv)["consent"], {"personalization": False})
        body = self.recs("alice", "?n=4", srv)
        self.assertEqual(body["source"], "popular")
        self.assertEqual(self.ids(body), [e[0] for e in EXPECTED["popular_head"]])
        # the basket is behaviour too: popular only, the basket left out
        body = self.basket({"items": ["apple"], "customer_id": "alice", "n": 3}, srv=srv)
        self.assertEqual(body["source"], "popular")
        self.assertEqual(self.ids(body), ["cheese", "bread", "eggs"])
        for it in body["items"]:
            self.assertEqual(it["because"], [])
        # no audience
        ids, _ = self.audience_all_pages("all", "?limit=3&n=1", srv)
        self.assertEqual(sorted(ids), sorted(set(BASKETS) - {"alice"}))
        self.assertEqual(self.audience_all_pages("lost", "?n=1", srv)[0], ["bob"])
        # and back
        resp = self.put("alice", {"personalization": True}, srv)
        self.assertEqual(resp.json, {"customer_id": "alice", "consent": {"personalization": True}})
        self.assertItems(self.recs("alice", "?n=4", srv)["items"], EXPECTED["alice"])
        self.assertIn("alice", self.audience_all_pages("lost", "?n=1", srv)[0])

    def test_consent_is_durable(self):
        srv = self.fresh()
        self.assertEqual(self.put("bob", {"personalization": False}, srv).status, 200)
        srv.kill()  # SIGKILL right after the answer
        srv = self.fresh()
        self.assertEqual(self.profile("bob", srv)["consent"], {"personalization": False})
        self.assertEqual(self.recs("bob", "", srv)["source"], "popular")

    def test_consent_before_first_event(self):
        """A customer may opt out before the shop has ever seen them."""
        srv = self.fresh()
        self.assertEqual(self.put("zed", {"personalization": False}, srv).status, 200)
        self.events({"customer_id": "zed", "item_id": "flour", "event": "cart"}, srv)
        self.assertEqual(self.recs("zed", "", srv)["source"], "popular")
        self.assertEqual(self.profile("zed", srv)["consent"], {"personalization": False})
        self.assertEqual(self.audience("cart_abandoners", "", srv)["customers"], [])

    def test_bad_bodies(self):
        srv = self.fresh()
        self.assertErrorCases(
            [ErrorCase("bad consent", "PUT", "/v1/customers/carol/consent", 400, code, body)
             for body, code in (({"personalization": "no"}, "invalid_field"),
                                ({"personalization": 0}, "invalid_field"),
                                ({"personalization": None}, "invalid_field"),
                                ({}, "invalid_field"),
                                ({"Personalization": False}, "invalid_field"),
                                (b"[false]", "invalid_json"),
                                (b"false", "invalid_json"),
                                (b"{personalization: false}", "invalid_json"),
                                (b"", "invalid_json"))]
            + [ErrorCase("consent of an id over 256 bytes", "PUT",
                         "/v1/customers/%s/consent" % ("x" * 257), 400, "invalid_id",
                         {"personalization": False}),
               ErrorCase("consent read", "GET", "/v1/customers/carol/consent", 405)], srv)
        # nothing changed
        self.assertEqual(self.profile("carol", srv)["consent"], {"personalization": True})
        self.assertEqual(self.recs("carol", "", srv)["source"], "personal")
        self.assertServing(srv)


# ---------------------------------------------------------------------------
# Erasure
# ---------------------------------------------------------------------------
class ErasureTests(Base):
    def check_forgotten(self, srv, cust, others):
        self.assertError(self.call("GET", "/v1/customers/%s" % q(cust), srv=srv), 404,
                         "unknown_customer")
        body = self.recs(cust, "?n=8", srv)
        self.assertEqual(body["source"], "popular")
        self.assertNotIn("segment", body)
        self.assertEqual(self.ids(body), self.popular_ids("?n=8", srv))
        ids, _ = self.audience_all_pages("all", "?limit=4&n=1", srv)
        self.assertEqual(sorted(ids), sorted(others))
        seg = self.get("/v1/segments", srv)
        self.assertEqual(seg["customers"], len(others))
        self.assertEqual(sum(seg["segments"].values()), len(others))

    def test_erasure_everywhere_and_across_restart(self):
        srv = self.fresh()
        state = srv.state_dir
        self.assertEqual(self.get("/v1/segments", srv)["customers"], 11)  # fills the cache
        self.assertEqual(self.get("/v1/segments", srv)["segments"]["lost"], 2)
        resp = self.call("DELETE", "/v1/customers/bob", srv=srv)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json, {"customer_id": "bob", "erased": True})
        others = set(BASKETS) - {"bob"}
        self.check_forgotten(srv, "bob", others)
        self.assertEqual(self.get("/v1/segments", srv)["segments"]["lost"], 1)
        self.assertEqual(self.audience_all_pages("lost", "", srv)[0], ["alice"])
        # a basket naming bob is an anonymous basket
        self.assertEqual(self.basket({"items": ["apple"], "customer_id": "bob"}, srv=srv)["items"],
                         self.basket({"items": ["apple"]}, srv=srv)["items"])
        with open(os.path.join(state, "erasures.txt")) as f:
            self.assertEqual(f.read().splitlines(), ["bob"])
        # later events are refused, alone or in a batch
        err = self.assertError(self.call("POST", "/v1/events", {"customer_id": "bob", "item_id": "eggs",
                                                                "event": "view"}, srv),
                               400, "customer_erased")
        self.assertIn("erased", err["message"])
        body = self.events([{"customer_id": "bob", "item_id": "eggs", "event": "view"},
                            {"customer_id": "alice", "item_id": "eggs", "event": "view"}], srv)
        self.assertEqual(body["accepted"], 1)
        self.assertEqual([(r["index"], r["code"]) for r in body["rejected"]], [(0, "customer_erased")])
        self.check_forgotten(srv, "bob", others)
        # across a restart, and a kill
        self.assertEqual(srv.stop(), 0, srv.stderr())
        srv = self.fresh()
        self.check_forgotten(srv, "bob", others)
        srv.kill()
        srv = self.fresh()
        self.check_forgotten(srv, "bob", others)
        # erasing again is harmless; the list is append-only
        self.assertEqual(self.call("DELETE", "/v1/customers/bob", srv=srv).status, 200)
        self.assertServing(srv)

    def test_normalised_id_erased(self):
        srv = self.fresh()
        self.assertEqual(self.call("DELETE", "/v1/customers/17850.0", srv=srv).json,
                         {"customer_id": "17850", "erased": True})
        for asked in ("17850", "17850.0"):
            self.assertError(self.call("GET", "/v1/customers/" + asked, srv=srv), 404)
        with open(os.path.join(srv.state_dir, "erasures.txt")) as f:
            self.assertEqual(f.read(), "17850\n")
        self.assertError(self.call("POST", "/v1/events", {"customer_id": 17850, "item_id": "eggs",
                                                          "event": "view"}, srv), 400,
                         "customer_erased")

    def test_event_only_customer_erased(self):
        srv = self.fresh()
        self.events([{"customer_id": "guest-7", "item_id": "flour", "event": "cart"},
                     {"customer_id": "guest-7", "item_id": "eggs", "event": "view"}], srv)
        self.assertEqual(self.recs("guest-7", "", srv)["source"], "personal")
        self.assertEqual([m["customer_id"] for m in self.audience("cart_abandoners", "", srv)["customers"]],
                         ["guest-7"])
        self.assertEqual(self.call("DELETE", "/v1/customers/guest-7", srv=srv).status, 200)
        self.assertError(self.call("GET", "/v1/customers/guest-7", srv=srv), 404)
        self.assertEqual(self.recs("guest-7", "", srv)["source"], "popular")
        for name in ("cart_abandoners", "browsed_not_bought"):
            self.assertEqual(self.audience(name, "", srv)["customers"], [], name)

    def test_erased_left_out_of_export(self):
        srv = self.fresh()
        self.call("DELETE", "/v1/customers/carol", srv=srv)
        p = run(["export", "--model", SHARED["main"], "--state", srv.state_dir, "--audience", "all",
                 "--no-record"])
        self.assertEqual(p.returncode, 0, p.stderr)
        got = [json.loads(line)["customer_id"] for line in p.stdout.splitlines()]
        self.assertEqual(sorted(got), sorted(set(BASKETS) - {"carol"}))
        p = run(["export", "--model", SHARED["main"], "--state", srv.state_dir, "--audience",
                 "champions", "--no-record"])
        self.assertEqual(p.stdout, "")  # carol was the only champion

    def test_next_training_excludes_erased(self):
        srv = self.fresh()
        for cust in ("bob", "judy"):
            self.assertEqual(self.call("DELETE", "/v1/customers/" + cust, srv=srv).status, 200)
        erasures = os.path.join(srv.state_dir, "erasures.txt")
        model = os.path.join(self.tmp, "retrained")
        train_main(model, INTERACTIONS, "--exclude-customers", erasures)
        meta = model_meta(model)
        self.assertEqual(meta["customers"], 9)
        for cust in ("bob", "judy"):
            p = run(["inspect", model, "--customer", cust])
            self.assertEqual(p.returncode, 1, p.stdout)
        self.assertEqual(run(["inspect", model, "--customer", "alice"]).returncode, 0)
        # apple and cheese now share carol and erin only: cos = 2/sqrt(4*3)
        srv2 = Server(model, os.path.join(self.tmp, "state2"))
        self.addCleanup(srv2.kill)
        sim = self.get("/v1/items/apple/similar?n=1", srv2)["items"][0]
        self.assertEqual(sim["item_id"], "cheese")
        self.assertAlmostEqual(sim["score"], 2 / math.sqrt(4 * 3), delta=TOL)


# ---------------------------------------------------------------------------
# Error answers: tables of cases
# ---------------------------------------------------------------------------
REC = "/v1/customers/%s/recommendations"
BASKET = "/v1/recommendations"
ERROR_CASES = (  # MAIN
    [ErrorCase("unknown customer", "GET", "/v1/customers/" + q(cust), 404, "unknown_customer",
               says=cust) for cust in ("nobody", "Alice", "caf\u00e9", "x" * 256)]
    + [ErrorCase("customer id over 256 bytes", "GET", "/v1/customers/" + "x" * 257, 400,
                 "invalid_id"),
       ErrorCase("customer id badly encoded", "GET", "/v1/customers/%ZZ", 400)]
    + [ErrorCase("unknown category", "GET", path + "?category=" + cat, 400, "unknown_category",
                 says=cat)
       for path, cat in ((REC % "alice", "toys"), (REC % "nobody", "Dairy"),
                         ("/v1/items/apple/similar", "toys"))]
    + [ErrorCase("unknown category", "POST", BASKET + "?category=toys", 400, "unknown_category",
                 {"items": ["apple"]})]
    + [ErrorCase("exclude over 100 ids", "GET",
                 REC % "alice" + "?exclude=" + ",".join("x%d" % i for i in range(101)), 400,
                 "invalid_parameter"),
       ErrorCase("include_purchased not 0 or 1", "GET", REC % "alice" + "?include_purchased=2",
                 400, "invalid_parameter"),
       ErrorCase("explain not a flag", "GET", REC % "alice" + "?explain=maybe", 400,
                 "invalid_parameter")]
    + [ErrorCase("bad price", "GET", path + v, 400, "invalid_parameter")
       for v in ("abc", "-1", "", "1e999", "nan", "5x")
       for path in (REC % "alice" + "?min_price=", "/v1/items/apple/similar?max_price=")]
    + [ErrorCase("basket over 100 items", "POST", BASKET, 400, "basket_too_large",
                 {"items": ["apple"] + ["u%d" % i for i in range(99)] + ["one-more"]},
                 says="100")]
    + [ErrorCase("bad basket", "POST", BASKET, 400, code, body) for body, code in (
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"[]", "invalid_json"),
        (b'"apple"', "invalid_json"),
        (b'{"items":["a"],"items":["b"]}', "invalid_json"),
        ({"item": ["apple"]}, "invalid_field"),
        ({"items": "apple"}, "invalid_field"),
        ({"items": ["apple", 7]}, "invalid_field"),
        ({"items": [None]}, "invalid_field"),
        ({"items": ["apple"], "n": 0}, "invalid_field"),
        ({"items": ["apple"], "n": 101}, "invalid_field"),
        ({"items": ["apple"], "n": "3"}, "invalid_field"),
        ({"items": ["apple"], "n": 2.5}, "invalid_field"),
        ({"items": ["apple"], "explain": "yes"}, "invalid_field"),
        ({"items": ["apple"], "customer_id": 5}, "invalid_field"),
        ({"items": ["apple"], "customer_id": ""}, "invalid_id"),
        ({"items": ["apple"], "customer_id": "x" * 257}, "invalid_id"),
        ({"items": [""]}, "invalid_id"),
        ({"items": ["a\u0001b"]}, "invalid_id"))]
)
AUDIENCE_ERROR_CASES = (  # RFM
    [ErrorCase("bad cursor", "GET", "/v1/audiences/all?cursor=" + cursor, 400)
     for cursor in ("zz", "abc", "ZZ", "%ZZ", "72303", "0g", "x" * 600)]
    # the message lists the known ones
    + [ErrorCase("unknown audience", "GET", "/v1/audiences/" + name, 404, "unknown_audience",
                 says="champions")
       for name in ("vip", "Champions", "all2", "segments", "%C3%A9")]
    + [ErrorCase("bad paging parameter", "GET", "/v1/audiences/all?" + query, 400,
                 "invalid_parameter")
       for query in ("limit=0", "limit=1001", "limit=x", "n=0", "n=101", "hours=0", "explain=2")]
    + [ErrorCase("bad birthday days", "GET", "/v1/audiences/birthday?days=" + days, 400,
                 "invalid_parameter") for days in ("0", "367", "x", "-1")]
)


class ErrorTests(Base):
    def test_error_answers(self):
        self.assertErrorCases(ERROR_CASES)


# ---------------------------------------------------------------------------
# Audiences: paging, birthday (errors: AUDIENCE_ERROR_CASES)
# ---------------------------------------------------------------------------
class AudienceTests(Base):
    @property
    def srv(self):
        return SHARED["rfm_srv"]

    def test_paging_all_every_member_once(self):
        want = sorted(RFM_SEGMENTS)  # customer id order
        for limit in (1, 2, 3, 4, 10, 11, 12, 1000):
            ids, pages = self.audience_all_pages("all", "?n=1&limit=%d" % limit)
            self.assertEqual(ids, want, limit)
            self.assertEqual(pages, max(1, math.ceil(len(want) / limit)), limit)

    def test_paging_segment(self):
        ids, pages = self.audience_all_pages("at_risk", "?limit=1&n=2")
        self.assertEqual(ids, ["r08", "r09"])
        self.assertEqual(pages, 2)
        first = self.audience("at_risk", "?limit=1&n=2")
        self.assertEqual(first["audience"], "at_risk")
        self.assertEqual(first["model"], SHARED["rfm_meta"]["model_id"])
        self.assertEqual([m["customer_id"] for m in first["customers"]], ["r08"])
        self.assertIsInstance(first["next_cursor"], str)
        rest = self.audience("at_risk", "?limit=2&n=2&cursor=" + first["next_cursor"])
        self.assertEqual([m["customer_id"] for m in rest["customers"]], ["r09"])
        self.assertIsNone(rest["next_cursor"])

    def test_member_entries(self):
        body = self.audience("champions", "?n=2")
        self.assertEqual(len(body["customers"]), 1)
        m = body["customers"][0]
        self.assertEqual(set(m), {"customer_id", "segment", "intent", "items"})
        self.assertEqual((m["customer_id"], m["segment"], m["intent"]), ("r01", "champions", 0))
        recs = self.recs("r01", "?n=2")
        self.assertEqual(m["items"], recs["items"])
        body = self.audience("champions", "?n=2&explain=0")
        for it in body["customers"][0]["items"]:
            self.assertNotIn("because", it)

    def test_birthday(self):
        for query, want in (("", BIRTHDAYS_7), ("?days=7", BIRTHDAYS_7), ("?days=8", BIRTHDAYS_8),
                            ("?days=1", BIRTHDAYS_1), ("?days=366", BIRTHDAYS_366)):
            ids, _ = self.audience_all_pages("birthday", query)
            self.assertEqual(ids, want, query)
        ids, _ = self.audience_all_pages("birthday", "?days=366&limit=2")
        self.assertEqual(ids, BIRTHDAYS_366)

    def test_cursor_past_every_member(self):
        """A well-formed cursor past every member: an empty last page."""
        body = self.audience("all", "?cursor=" + "zzzz".encode().hex())
        self.assertEqual(body["customers"], [])
        self.assertIsNone(body["next_cursor"])
        self.assertServing()

    def test_error_answers(self):
        self.assertErrorCases(AUDIENCE_ERROR_CASES)


# ---------------------------------------------------------------------------
# shopkeeper export
# ---------------------------------------------------------------------------
class ExportTests(Base):
    def export(self, state, *extra, audience="all", model=None):
        p = run(["export", "--model", model or SHARED["main"], "--state", state, "--audience",
                 audience] + list(extra))
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertTrue(p.stdout == "" or p.stdout.endswith("\n"))
        out = {}
        for line in lines:
            obj = json.loads(line)  # one JSON object per line
            self.assertIsInstance(obj, dict)
            self.assertNotIn(obj["customer_id"], out)
            out[obj["customer_id"]] = obj
        self.assertIn("export: %d customers" % len(lines), p.stderr)
        return out

    def test_json_lines_with_titles_and_because(self):
        state = os.path.join(self.tmp, "state")
        out = self.export(state, "--n", "3", "--no-record")
        self.assertEqual(set(out), set(BASKETS))
        alice = out["alice"]
        self.assertEqual(alice["segment"], "lost")
        self.assertEqual(alice["source"], "personal")
        self.assertEqual(alice["intent"], 0)
        self.assertEqual([it["item_id"] for it in alice["items"]], ["cheese", "dates", TEA])
        cheese = alice["items"][0]
        self.assertEqual(cheese["title"], "Cheddar")
        self.assertAlmostEqual(cheese["score"], EXPECTED["alice"][0][1], delta=TOL)
        self.assertEqual(cheese["because"], [{"item_id": "apple", "title": "Red apple"},
                                             {"item_id": "bread", "title": TITLES["bread"]}])
        for obj in out.values():
            self.assertEqual(obj["segment"], MAIN_SEGMENTS[obj["customer_id"]])
            self.assertEqual(len(obj["items"]), 3)
            for it in obj["items"]:
                self.assertEqual(it["title"], TITLES[it["item_id"]])
        # a segment, with the server's own state
        out = self.export(state, "--n", "1", "--no-record", audience="new")
        self.assertEqual(sorted(out), ["17850", "heidi", "ivan", "judy"])

    def test_frequency_capping(self):
        state = os.path.join(self.tmp, "state")
        first = self.export(state, "--n", "3", "--no-record")
        again = self.export(state, "--n", "3", "--no-record")
        self.assertEqual(first, again)  # a dry run records nothing
        sent = self.export(state, "--n", "3", "--record")
        self.assertEqual(sent, first)
        capped = self.export(state, "--n", "3")
        for cust in BASKETS:
            before = {it["item_id"] for it in sent[cust]["items"]}
            after = {it["item_id"] for it in capped[cust]["items"]}
            self.assertFalse(before & after, cust)
        # alice: cheese, dates, tea were sent: eggs, then popular flour and Mug
        self.assertEqual([it["item_id"] for it in capped["alice"]["items"]], ["eggs", "flour", MUG])
        # --cap-days 0 turns capping off
        self.assertEqual(self.export(state, "--n", "3", "--cap-days", "0", "--no-record"), first)

    def test_views_without_engagement_capped(self):
        srv = self.fresh()
        state = srv.state_dir
        # alice looks at cheese four times: still pushed
        self.events([{"customer_id": "alice", "item_id": "cheese", "event": "view"}] * 4, srv)
        out = self.export(state, "--n", "3", "--no-record", "--cap-days", "0")
        self.assertIn("cheese", [it["item_id"] for it in out["alice"]["items"]])
        # the fifth view: she has seen it enough
        self.events({"customer_id": "alice", "item_id": "cheese", "event": "view"}, srv)
        out = self.export(state, "--n", "3", "--no-record", "--cap-days", "0")
        self.assertNotIn("cheese", [it["item_id"] for it in out["alice"]["items"]])
        # a cart shows interest again
        self.events({"customer_id": "alice", "item_id": "cheese", "event": "cart"}, srv)
        out = self.export(state, "--n", "3", "--no-record", "--cap-days", "0")
        self.assertIn("cheese", [it["item_id"] for it in out["alice"]["items"]])

    def test_consent_and_erasure_left_out(self):
        srv = self.fresh()
        self.ok("PUT", "/v1/customers/judy/consent", {"personalization": False}, srv)
        self.ok("DELETE", "/v1/customers/ivan", srv=srv)
        out = self.export(srv.state_dir, "--n", "1", "--no-record")
        self.assertEqual(set(out), set(BASKETS) - {"judy", "ivan"})
        out = self.export(srv.state_dir, "--n", "1", "--no-record", audience="new")
        self.assertEqual(list(out), ["17850", "heidi"])

    def test_trigger_and_birthday_export(self):
        srv = self.fresh(SHARED["rfm"])
        self.events({"customer_id": "r04", "item_id": "lamp", "event": "cart"}, srv)
        out = self.export(srv.state_dir, "--n", "2", "--no-record", audience="cart_abandoners",
                          model=SHARED["rfm"])
        self.assertEqual(list(out), ["r04"])
        self.assertGreater(out["r04"]["intent"], 0.99)
        out = self.export(srv.state_dir, "--no-record", "--days", "8", audience="birthday",
                          model=SHARED["rfm"])
        self.assertEqual(sorted(out), BIRTHDAYS_8)

    def test_usage_errors(self):
        state = os.path.join(self.tmp, "state")
        for args, needle in ((["--audience", "vip"], "vip"), (["--audience", "all", "--n", "0"], "--n"),
                             (["--audience", "all", "--cap-days", "x"], "--cap-days"), ([], "--audience")):
            p = run(["export", "--model", SHARED["main"], "--state", state] + args)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(needle, p.stderr)


# ---------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------
if __name__ == "__main__":
    sys.exit(run_suite(__name__, sys.argv[1:], lambda: [SHARED.get("tmp")], 'e2e'))
