#!/usr/bin/env python3
"""End-to-end tests of real-time events (issue 5), over real HTTP.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_events.py [-v] [TestClass[.test]]

POST /v1/events (counts, partial batches, every kind of bad input), the
immediate effect of events on recommendations and profiles, durability
across kill -9, state map growth, the trigger audiences and the intent
score (with order=intent), and state across model switches.

Two models of tests/fixtures/interactions.csv (cosine, no decay: the scores
of test_server.EXPECTED): MAIN as it is, a historical log whose clock runs
from its as-of date (2024-03-10 11:00); and LIVE, the same rows moved to end
three days ago, so the model runs on the wall clock and events can be
hours old. Every test that posts events has a server and state of its own.

The last line printed is "N passed, N failed".
"""
import calendar
import csv
import http.client
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_one_to_one as oo  # noqa: E402
from lib import (EXPECTED, HTTP_TIMEOUT, INTERACTIONS, JSON_HEADERS, MUG,  # noqa: E402
                 START_TIMEOUT, STOP_TIMEOUT, TEA, TOL, ErrorCase, Server, kill_servers,
                 model_meta, read_response, run, run_suite)
from test_one_to_one import cos  # noqa: E402

E = {}
MAX_EVENTS = 1000  # per request (docs/api.md)
VIEW, CART, PURCHASE = 0.2, 0.5, 1.0  # default event weights


def unix(ts_text):
    """A timestamp of interactions.csv as Unix seconds (UTC)."""
    if re.fullmatch(r"\d+", ts_text):
        return int(ts_text)
    ts_text = ts_text.rstrip("Z").replace("T", " ")
    fmt = "%Y-%m-%d %H:%M:%S" if " " in ts_text else "%Y-%m-%d"
    return calendar.timegm(time.strptime(ts_text, fmt))


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def write_shifted(path, end):
    """interactions.csv with every time moved so the newest row is at `end`."""
    with open(INTERACTIONS, newline="") as f:
        rows = list(csv.reader(f))
    col = rows[0].index("timestamp")
    newest = max(unix(r[col]) for r in rows[1:])
    for r in rows[1:]:
        r[col] = str(unix(r[col]) - newest + end)
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def setUpModule():
    tmp = tempfile.mkdtemp(prefix="shopkeeper-events-")
    E["tmp"] = tmp
    E["main"] = os.path.join(tmp, "main")
    oo.train_main(E["main"])
    live_csv = os.path.join(tmp, "live.csv")
    write_shifted(live_csv, int(time.time()) - 3 * 86400)
    E["live"] = os.path.join(tmp, "live")
    oo.train_main(E["live"], live_csv)
    E["main_meta"] = oo.wait_model_age(E["main"], 2)
    E["live_meta"] = model_meta(E["live"])


def tearDownModule():
    kill_servers()
    shutil.rmtree(E.get("tmp", ""), ignore_errors=True)


def metric(srv, name):
    text = srv.get("/metrics").body.decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


class Base(oo.Base):
    @property
    def srv(self):
        raise AssertionError("events tests use a server of their own (self.fresh())")

    def fresh(self, model=None, extra=(), state="state"):
        srv = Server(model or E["main"], os.path.join(self.tmp, state), extra=extra)
        self.addCleanup(srv.kill)
        return srv

    def post(self, evs, srv):
        return self.call("POST", "/v1/events", evs, srv)

    def ev(self, cust, item, kind, **kw):
        d = {"customer_id": cust, "item_id": item, "event": kind}
        d.update(kw)
        return d


# ---------------------------------------------------------------------------
# The route: counts, partial batches, bad input
# ---------------------------------------------------------------------------
class PostEventsTests(Base):
    def test_single_and_array_counts(self):
        srv = self.fresh()
        body = self.events(self.ev("alice", "eggs", "view"), srv)
        self.assertEqual(body, {"accepted": 1, "unknown_items": 0, "rejected": []})
        body = self.events([self.ev("bob", "eggs", "cart"), self.ev("bob", "zzz-new", "view"),
                            self.ev(42, 7, "purchase", quantity=2, price=1.5)], srv)
        self.assertEqual(body, {"accepted": 3, "unknown_items": 2, "rejected": []})
        self.assertEqual(metric(srv, "shopkeeper_events_accepted_total"), 4)
        self.assertEqual(metric(srv, "shopkeeper_state_events_total"), 4)
        self.assertEqual(metric(srv, "shopkeeper_state_unknown_item_events_total"), 2)
        # integer ids are ids: customer 42 bought item "7"
        p = self.profile("42", srv)
        self.assertEqual(p["events_since_model"], 1)
        self.assertAlmostEqual(p["rfm"]["monetary"], 3.0, delta=TOL)

    def test_batch_with_invalid_events(self):
        srv = self.fresh()
        batch = [
            self.ev("mia", "eggs", "view"),                                   # 0 ok
            self.ev("mia", "eggs", "teleport"),                               # 1
            {"item_id": "eggs", "event": "view"},                             # 2
            self.ev("mia", "flour", "cart"),                                  # 3 ok
            self.ev("mia", "eggs", "view", timestamp="2030-01-01T00:00:00Z"),  # 4
            self.ev("mia", "eggs", "purchase", quantity="2"),                 # 5
            self.ev("mia", "eggs", "purchase", price=-1),                     # 6
            {"customer_id": "mia", "event": "view"},                          # 7
            "view",                                                           # 8
            self.ev("", "eggs", "view"),                                      # 9
            {"customer_id": "mia", "item_id": "eggs"},                        # 10
            self.ev("mia", "zzz", "view"),                                    # 11 ok, unknown
        ]
        resp = self.post(batch, srv)
        self.assertEqual(resp.status, 200, resp)
        body = resp.json
        self.assertEqual(body["accepted"], 3)
        self.assertEqual(body["unknown_items"], 1)
        got = [(r["index"], r["code"]) for r in body["rejected"]]
        self.assertEqual(got, [(1, "invalid_event_type"), (2, "missing_field"),
                               (4, "invalid_timestamp"), (5, "invalid_quantity"),
                               (6, "invalid_price"), (7, "missing_field"), (8, "invalid_event"),
                               (9, "invalid_id"), (10, "missing_field")])
        for r in body["rejected"]:
            self.assertTrue(r["message"], r)
        msgs = {r["index"]: r["message"] for r in body["rejected"]}
        self.assertIn("customer_id", msgs[2])
        self.assertIn("item_id", msgs[7])
        self.assertIn("event", msgs[10])
        # exactly the valid ones were recorded
        self.assertEqual(self.profile("mia", srv)["events_since_model"], 3)
        self.assertEqual(metric(srv, "shopkeeper_events_rejected_total"), 9)

    def test_each_bad_event_named(self):
        srv = self.fresh()
        now = unix(E["main_meta"]["as_of"].replace("T", " ").rstrip("Z"))
        cases = [
            (self.ev("ann", "eggs", "like"), "invalid_event_type", "event"),
            (self.ev("ann", "eggs", 3), "missing_field", "event"),
            ({"item_id": "eggs", "event": "view"}, "missing_field", "customer_id"),
            ({"customer_id": "ann", "event": "view"}, "missing_field", "item_id"),
            (self.ev(None, "eggs", "view"), "invalid_field", "customer_id"),
            (self.ev("ann", ["eggs"], "view"), "invalid_field", "item_id"),
            (self.ev("ann", "x" * 300, "view"), "invalid_id", "item_id"),
            (self.ev("ann\u0001", "eggs", "view"), "invalid_id", "customer_id"),
            (self.ev("ann", "eggs", "view", timestamp="2030-01-01"), "invalid_timestamp", "timestamp"),
            (self.ev("ann", "eggs", "view", timestamp=iso(now + 2 * 86400)), "invalid_timestamp",
             "timestamp"),
            (self.ev("ann", "eggs", "view", timestamp=now + 3 * 86400), "invalid_timestamp",
             "timestamp"),
            (self.ev("ann", "eggs", "view", timestamp="yesterday"), "invalid_timestamp", "timestamp"),
            (self.ev("ann", "eggs", "view", timestamp=-5), "invalid_timestamp", "timestamp"),
            (self.ev("ann", "eggs", "view", timestamp=True), "invalid_timestamp", "timestamp"),
            (self.ev("ann", "eggs", "purchase", quantity="three"), "invalid_quantity", "quantity"),
            (self.ev("ann", "eggs", "purchase", quantity=0), "invalid_quantity", "quantity"),
            (self.ev("ann", "eggs", "purchase", quantity=2e6), "invalid_quantity", "quantity"),
            (self.ev("ann", "eggs", "purchase", price="cheap"), "invalid_price", "price"),
        ]
        self.assertErrorCases(
            [ErrorCase("bad event", "POST", "/v1/events", 400, code, body, says=field)
             for body, code, field in cases]
            # malformed JSON and wrong shapes
            + [ErrorCase("not an event", "POST", "/v1/events", 400, "invalid_json", raw)
               for raw in (b"{", b'{"customer_id":"ann",}', b"", b"null", b"42", b"[]",
                           b'{"customer_id":"a","customer_id":"b","item_id":"x",'
                           b'"event":"view"}')], srv)
        # a batch with nothing valid
        resp = self.post([self.ev("ann", "eggs", "like"), {}], srv)
        self.assertEqual(resp.status, 400, resp)
        self.assertEqual(resp.json["error"]["code"], "no_valid_events")
        self.assertEqual([r["index"] for r in resp.json["rejected"]], [0, 1])
        # nothing of it was kept, and the server serves on
        self.assertError(self.call("GET", "/v1/customers/ann", srv=srv), 404)
        self.assertEqual(metric(srv, "shopkeeper_state_events_total") or 0, 0)
        self.assertServing(srv)
        # an event a few hours ahead of the clock is fine (clock skew)
        self.events(self.ev("ann", "eggs", "view", timestamp=iso(now + 3 * 3600)), srv)

    def test_batch_limit(self):
        srv = self.fresh()
        evs = [self.ev("c%d" % (i % 7), "eggs", "view") for i in range(MAX_EVENTS + 1)]
        err = self.assertError(self.post(evs, srv), 413, "batch_too_large")
        self.assertIn(str(MAX_EVENTS), err["message"])
        self.assertEqual(metric(srv, "shopkeeper_state_events_total") or 0, 0)
        self.assertEqual(self.events(evs[:MAX_EVENTS], srv)["accepted"], MAX_EVENTS)
        self.assertEqual(metric(srv, "shopkeeper_state_events_total"), MAX_EVENTS)
        self.assertServing(srv)

    def test_method_and_auth_shape(self):
        srv = self.fresh()
        resp = self.call("GET", "/v1/events", srv=srv)
        self.assertError(resp, 405, "method_not_allowed")
        self.assertEqual(resp.headers.get("allow"), "POST")


# ---------------------------------------------------------------------------
# Immediate effect on the next answer
# ---------------------------------------------------------------------------
class ImmediateEffectTests(Base):
    def test_purchase_leaves_answer_neighbours_rise(self):
        srv = self.fresh()
        self.assertItems(self.recs("alice", "?n=4", srv)["items"], EXPECTED["alice"])
        self.events(self.ev("alice", "cheese", "purchase", quantity=2, price=4), srv)
        # history apple, bread (weight 1) + cheese (purchase weight 1):
        #   dates = .2887 (apple) + .3536 (bread) + .3162 (cheese) = .9585
        #   tea   = .3536 (bread) + .3162 (cheese)                 = .6698
        #   eggs  = .2357 (apple) + .2582 (cheese)                 = .4939
        want = [("dates", cos("apple", "dates") + cos("bread", "dates") + cos("cheese", "dates"),
                 ["bread", "cheese", "apple"]),
                (TEA, cos("bread", TEA) + cos("cheese", TEA), ["bread", "cheese"]),
                ("eggs", cos("apple", "eggs") + cos("cheese", "eggs"), ["cheese", "apple"])]
        body = self.recs("alice", "?n=3", srv)
        self.assertEqual(body["source"], "personal")
        self.assertItems(body["items"], want)
        self.assertNotIn("cheese", self.ids(self.recs("alice", "?n=100", srv)))
        self.assertIn("cheese", self.ids(self.recs("alice", "?n=100&include_purchased=1", srv)))

    def test_basket_leaves_out_live_purchases(self):
        srv = self.fresh()
        self.events(self.ev("alice", "cheese", "purchase"), srv)
        body = self.basket({"items": ["dates"], "customer_id": "alice", "n": 100}, srv=srv)
        got = self.ids(body)
        self.assertFalse({"apple", "bread", "cheese", "dates"} & set(got), got)
        body = self.basket({"items": ["dates"], "customer_id": "alice", "n": 100},
                           "?include_purchased=1", srv=srv)
        self.assertIn("cheese", self.ids(body))

    def test_cart_and_view_shape_the_answer(self):
        srv = self.fresh()
        self.events(self.ev("newbie", "flour", "cart"), srv)
        # flour's neighbours (heidi's returned flour makes no pair with apple),
        # times sqrt(cart weight 0.5)
        w = math.sqrt(CART)
        body = self.recs("newbie", "?n=2", srv)
        self.assertEqual(body["source"], "personal")
        self.assertItems(body["items"], [("eggs", cos("eggs", "flour") * w, ["flour"]),
                                         (MUG, cos("flour", MUG) * w, ["flour"])])
        # a view of Mug as well: sqrt(0.2) spreads over Mug's neighbours; Mug
        # itself is only viewed, so it stays (its score from flour)
        self.events(self.ev("newbie", MUG, "view"), srv)
        v = math.sqrt(VIEW)
        eggs = cos("eggs", "flour") * w + cos("eggs", MUG) * v
        body = self.recs("newbie", "?n=4", srv)
        self.assertItems(body["items"][:2], [("eggs", eggs, ["flour", MUG]),
                                             (MUG, cos("flour", MUG) * w, ["flour"])])
        # tea and the carted flour tie on Mug's view alone
        self.assertEqual({it["item_id"] for it in body["items"][2:]}, {TEA, "flour"})
        for it in body["items"][2:]:
            self.assertAlmostEqual(it["score"], 0.5 * v, delta=TOL)
            self.assertEqual(it["because"], [MUG])

    def test_remove_from_cart_takes_it_back(self):
        srv = self.fresh()
        self.events([self.ev("newbie", "flour", "cart")], srv)
        self.assertEqual(self.recs("newbie", "", srv)["source"], "personal")
        self.events([self.ev("newbie", "flour", "remove_from_cart")], srv)
        body = self.recs("newbie", "?n=8", srv)
        self.assertEqual(body["source"], "popular")
        self.assertEqual(self.ids(body), self.popular_ids("?n=8", srv))
        self.assertEqual(self.profile("newbie", srv)["intent"], 0)
        self.assertEqual(self.audience("cart_abandoners", "", srv)["customers"], [])

    def test_new_customer_first_event_ends_cold_start(self):
        srv = self.fresh()
        self.assertEqual(self.recs("first-timer", "", srv)["source"], "popular")
        self.assertError(self.call("GET", "/v1/customers/first-timer", srv=srv), 404)
        self.events(self.ev("first-timer", "apple", "purchase", price=0.5), srv)
        body = self.recs("first-timer", "?n=4", srv)
        self.assertEqual(body["source"], "personal")
        self.assertItems(body["items"], [(j, cos("apple", j), ["apple"])
                                         for j in ("cheese", "bread", "dates", "eggs")])
        p = self.profile("first-timer", srv)
        self.assertEqual(p["history_size"], 0)
        self.assertEqual(p["events_since_model"], 1)
        self.assertEqual(p["rfm"]["frequency"], 1)
        self.assertEqual(p["rfm"]["r"], 5)
        self.assertEqual(p["segment"], "new")
        self.assertEqual(body["segment"], "new")

    def test_segment_counts_include_live_events(self):
        """GET /v1/segments counts with the same live figures as profiles,
        and counts customers the model does not know yet."""
        srv = self.fresh()
        self.events([self.ev("alice", "cheese", "purchase", quantity=2, price=4),
                     self.ev("first-timer", "apple", "purchase", price=0.5),
                     self.ev("browser", "apple", "view")], srv)
        seg = self.get("/v1/segments", srv)
        # The fixture's 11 customers (oo.MAIN_SEGMENTS) with alice moved from
        # lost to champions by her purchase (see test_profile_changes_at_once),
        # plus first-timer (a purchase just now: new) and browser (no
        # purchase: prospect).
        self.assertEqual(seg["customers"], 13)
        self.assertEqual(seg["segments"], {
            "champions": 2,        # carol, alice
            "loyal": 0,
            "new": 5,              # 17850, heidi, ivan, judy, first-timer
            "promising": 0,
            "needs_attention": 2,  # grace, dave
            "at_risk": 0,
            "dormant": 2,          # frank, erin
            "lost": 1,             # bob
            "prospect": 1})        # browser

    def test_profile_changes_at_once(self):
        srv = self.fresh()
        p = self.profile("alice", srv)
        self.assertEqual(p["segment"], "lost")
        self.assertEqual((p["rfm"]["frequency"], p["rfm"]["r"]), (1, 1))
        self.events(self.ev("alice", "cheese", "purchase", quantity=2, price=4), srv)
        p = self.profile("alice", srv)
        rfm = p["rfm"]
        # F 2 (a second purchase day) -> 5; M 2.6 + 8 = 10.6 -> 4 (cuts 4.2, 6,
        # 9.1, 11); bought just now -> R 5: champions
        self.assertEqual(rfm["frequency"], 2)
        self.assertAlmostEqual(rfm["monetary"], 10.6, delta=TOL)
        self.assertLess(rfm["recency_days"], 0.01)
        self.assertEqual((rfm["r"], rfm["f"], rfm["m"]), (5, 5, 4))
        self.assertEqual(p["segment"], "champions")
        self.assertEqual(p["events_since_model"], 1)
        self.assertEqual(p["last_event"], p["last_purchase"])
        self.assertEqual(p["first_purchase"], "2024-03-01T09:00:00Z")
        self.assertEqual(p["history_size"], 2)  # the model's history
        # the segment audiences follow
        self.assertEqual(self.audience_all_pages("champions", "", srv)[0], ["alice", "carol"])
        self.assertNotIn("alice", self.audience_all_pages("lost", "", srv)[0])
        # a return: money back (M 6.6 -> 3), no visit: loyal (R >= 3, F >= 4)
        self.events(self.ev("alice", "cheese", "purchase", quantity=-1, price=4), srv)
        p = self.profile("alice", srv)
        self.assertAlmostEqual(p["rfm"]["monetary"], 6.6, delta=TOL)
        self.assertEqual(p["rfm"]["frequency"], 2)
        self.assertEqual((p["rfm"]["m"], p["segment"]), (3, "loyal"))
        self.assertEqual(p["events_since_model"], 2)
        self.assertEqual(self.audience_all_pages("loyal", "", srv)[0], ["alice"])

    def test_unknown_items_recorded_not_rejected(self):
        srv = self.fresh()
        body = self.events([self.ev("alice", "brand-new-sku", "purchase", price=9),
                            self.ev("alice", "another-new-sku", "view")], srv)
        self.assertEqual((body["accepted"], body["unknown_items"]), (2, 2))
        p = self.profile("alice", srv)
        self.assertEqual(p["events_since_model"], 2)
        self.assertAlmostEqual(p["rfm"]["monetary"], 2.6 + 9, delta=TOL)
        # scoring cannot use them: the answer is as before
        self.assertItems(self.recs("alice", "?n=4", srv)["items"], EXPECTED["alice"])
        self.assertEqual(metric(srv, "shopkeeper_state_unknown_item_events_total"), 2)


# ---------------------------------------------------------------------------
# Durability
# ---------------------------------------------------------------------------
class DurabilityTests(Base):
    ROUNDS = 5

    def check_rounds(self, srv, done):
        for rnd, count in done.items():
            cust = "dur-%d" % rnd
            p = self.profile(cust, srv)
            self.assertEqual(p["events_since_model"], count, (rnd, p))
            self.assertEqual(self.recs(cust, "", srv)["source"], "personal", rnd)

    def test_kill_9_right_after_2xx(self):
        done = {}  # round -> events acknowledged for dur-<round>
        total = 0
        for rnd in range(self.ROUNDS):
            srv = self.fresh()
            self.check_rounds(srv, done)
            self.assertEqual(metric(srv, "shopkeeper_state_events_total") or 0, total)
            cust = "dur-%d" % rnd
            batch = [self.ev(cust, ("eggs", "flour", MUG)[i % 3], "view") for i in range(20 + rnd)]
            self.assertEqual(self.events(batch, srv)["accepted"], len(batch))
            self.assertEqual(self.events(self.ev(cust, "eggs", "cart"), srv)["accepted"], 1)
            srv.proc.send_signal(signal.SIGKILL)  # at once, no shutdown
            srv.proc.wait(timeout=STOP_TIMEOUT)
            srv.kill()
            done[rnd] = len(batch) + 1
            total += len(batch) + 1
        srv = self.fresh()
        self.check_rounds(srv, done)
        self.assertEqual(metric(srv, "shopkeeper_state_events_total"), total)

    def start_writers(self, srv, n, item, rounds, stop=None):
        """n threads, each on a connection of its own, posting batches of 1,
        2, 3... views of `item` for customer w<t>, `rounds` times (or until
        `stop` is set, after 5). Returns (threads, acked per thread, errors)."""
        acked = [0] * n
        errors = []

        def writer(t):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=HTTP_TIMEOUT)
            try:
                for i in range(rounds):
                    if stop is not None and stop.is_set() and i >= 5:
                        return
                    batch = [self.ev("w%d" % t, item, "view") for _ in range(1 + i % 4)]
                    conn.request("POST", "/v1/events", body=json.dumps(batch).encode(),
                                 headers=JSON_HEADERS)
                    resp = read_response(conn.getresponse())
                    if resp.status != 200:
                        errors.append((t, i, resp))
                        return
                    acked[t] += len(batch)
            except Exception as e:  # reported by the caller
                errors.append((t, repr(e)))
            finally:
                conn.close()

        threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(n)]
        for th in threads:
            th.start()
        return threads, acked, errors

    def join_kill_9_restart(self, srv, threads, errors):
        """Waits for the writers, kills the server with SIGKILL (no
        shutdown), checks the writers saw no error, and starts a new server
        on the same state."""
        for th in threads:
            th.join(timeout=60)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(timeout=STOP_TIMEOUT)
        srv.kill()
        self.assertEqual(errors, [])
        return self.fresh()

    def test_kill_9_under_concurrent_writers(self):
        srv = self.fresh()
        threads, acked, errors = self.start_writers(srv, 4, "eggs", 15)
        srv = self.join_kill_9_restart(srv, threads, errors)
        for t in range(4):
            self.assertEqual(self.profile("w%d" % t, srv)["events_since_model"], acked[t], t)
        self.assertEqual(metric(srv, "shopkeeper_state_events_total"), sum(acked))

    def test_consent_and_erasure_in_the_same_commits(self):
        """PUT consent and DELETE are queued to the event writer like events:
        interleaved with event batches from other connections, every
        acknowledged change survives kill -9."""
        srv = self.fresh()
        for i in range(6):
            self.assertEqual(self.events([self.ev("d%d" % i, "eggs", "cart")] * 3 +
                                         [self.ev("c%d" % i, "eggs", "view")], srv)["accepted"], 4)
        stop = threading.Event()
        threads, acked, errors = self.start_writers(srv, 3, "flour", 200, stop)
        for i in range(6):
            self.assertEqual(self.call("PUT", "/v1/customers/c%d/consent" % i,
                                       {"personalization": False}, srv).status, 200)
            resp = self.call("DELETE", "/v1/customers/d%d" % i, srv=srv)
            self.assertEqual(resp.json, {"customer_id": "d%d" % i, "erased": True})
        stop.set()
        srv = self.join_kill_9_restart(srv, threads, errors)
        for i in range(6):
            self.assertEqual(self.profile("c%d" % i, srv)["consent"], {"personalization": False})
            self.assertError(self.call("GET", "/v1/customers/d%d" % i, srv=srv), 404)
        for t in range(3):
            self.assertEqual(self.profile("w%d" % t, srv)["events_since_model"], acked[t], t)
        with open(os.path.join(srv.state_dir, "erasures.txt")) as f:
            self.assertEqual(sorted(f.read().splitlines()), ["d%d" % i for i in range(6)])
        self.assertEqual(self.audience("cart_abandoners", "", srv)["customers"], [])

    def test_one_thread_shares_commits_and_keeps_serving(self):
        """With one pool thread, a request waiting for its commit does not
        hold the thread: concurrent single-event requests share group
        commits (a blocked thread would commit them one by one), and reads
        are answered meanwhile."""
        srv = self.fresh(extra=("--threads", "1"))
        port, writers, per_writer = srv.port, 12, 15
        acked = [0] * writers
        errors = []
        reads = [0]

        def writer(t):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
            try:
                for i in range(per_writer):
                    body = json.dumps(self.ev("solo%d" % t, "apple", "view")).encode()
                    conn.request("POST", "/v1/events", body=body, headers=JSON_HEADERS)
                    resp = read_response(conn.getresponse())
                    if resp.status != 200:
                        errors.append((t, i, resp.status))
                        return
                    acked[t] += 1
            except Exception as e:  # reported below
                errors.append((t, repr(e)))
            finally:
                conn.close()

        def reader():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
            try:
                for _ in range(50):
                    conn.request("GET", "/v1/customers/alice/recommendations?n=2")
                    if read_response(conn.getresponse()).status == 200:
                        reads[0] += 1
            except Exception as e:
                errors.append(("reader", repr(e)))
            finally:
                conn.close()

        threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(writers)]
        threads.append(threading.Thread(target=reader, daemon=True))
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
        self.assertEqual(errors, [])
        self.assertEqual(reads[0], 50)
        total = writers * per_writer
        self.assertEqual(sum(acked), total)
        commits = metric(srv, "shopkeeper_event_commits_total")
        self.assertLess(commits, total)  # some commits carried several requests
        self.assertEqual(metric(srv, "shopkeeper_state_events_total"), total)
        for t in range(writers):
            self.assertEqual(self.profile("solo%d" % t, srv)["events_since_model"], per_writer)

    def sequential_writers(self, srv, writers, per_writer):
        """`writers` threads, each posting `per_writer` single events and
        waiting for each answer; returns the statuses that were not 200."""
        errors = []

        def writer(t):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=HTTP_TIMEOUT)
            try:
                for _ in range(per_writer):
                    body = json.dumps(self.ev("w%d" % t, "apple", "view")).encode()
                    conn.request("POST", "/v1/events", body=body, headers=JSON_HEADERS)
                    status = read_response(conn.getresponse()).status
                    if status != 200:
                        errors.append((t, status))
            except Exception as e:  # reported by the caller
                errors.append((t, repr(e)))
            finally:
                conn.close()

        threads = [threading.Thread(target=writer, args=(t,), daemon=True)
                   for t in range(writers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
        return errors

    def test_commit_delay_gathers_concurrent_writes(self):
        """--commit-delay: while writers overlap, a group commit waits for
        more, so a round of 8 writers (each waiting for its answer) mostly
        shares one commit: 11 to 13 commits for 10 rounds, where without
        the wait the first of each round was committed alone (33 to 47)."""
        srv = self.fresh(extra=("--commit-delay", "200"))
        self.assertEqual(self.sequential_writers(srv, 8, 10), [])
        self.assertEqual(metric(srv, "shopkeeper_state_events_total"), 80)
        self.assertLessEqual(metric(srv, "shopkeeper_event_commits_total"), 20)
        self.assertGreater(metric(srv, "shopkeeper_event_commits_gathered_total"), 0)

    def test_commit_delay_spares_a_lone_writer(self):
        """A client that waits for each answer is never held back: every
        write is committed at once, however long the delay."""
        srv = self.fresh(extra=("--commit-delay", "1000"))
        self.assertEqual(self.sequential_writers(srv, 1, 10), [])
        self.assertEqual(metric(srv, "shopkeeper_event_commits_total"), 10)
        self.assertEqual(metric(srv, "shopkeeper_event_commits_gathered_total"), 0)
        self.assertEqual(run(["serve", "--commit-delay", "1001"]).returncode, 2)

    def test_state_map_grows_under_burst(self):
        srv = self.fresh(extra=("--state-map", "1"))
        start = srv.get("/metrics").body.decode()
        size0 = float(re.search(r'shopkeeper_state_map_bytes\{kind="size"\} (\S+)', start).group(1))
        self.assertLessEqual(size0, 1 << 20)
        pad = "p" * 200
        batches = 12
        for b in range(batches):
            batch = [self.ev("burst-%d-%d" % (b, i % 250), "%s-%d" % (pad, i), "view")
                     for i in range(MAX_EVENTS)]
            body = self.events(batch, srv)
            self.assertEqual((body["accepted"], body["unknown_items"]), (MAX_EVENTS, MAX_EVENTS))
        text = srv.get("/metrics").body.decode()
        size = float(re.search(r'shopkeeper_state_map_bytes\{kind="size"\} (\S+)', text).group(1))
        used = float(re.search(r'shopkeeper_state_map_bytes\{kind="used"\} (\S+)', text).group(1))
        self.assertGreater(used, 1 << 20)  # the burst needed more than the first map
        self.assertGreaterEqual(size, used)
        self.assertEqual(metric(srv, "shopkeeper_state_events_total"), batches * MAX_EVENTS)
        self.assertEqual(self.profile("burst-0-0", srv)["events_since_model"], 4)
        self.assertEqual(srv.stop(), 0, srv.stderr())
        srv = self.fresh(extra=("--state-map", "1"))
        self.assertEqual(metric(srv, "shopkeeper_state_events_total"), batches * MAX_EVENTS)
        for b in (0, batches - 1):
            self.assertEqual(self.profile("burst-%d-249" % b, srv)["events_since_model"], 4)
        # and it still takes more
        self.assertEqual(self.events(self.ev("burst-0-0", "eggs", "view"), srv)["accepted"], 1)

    def test_customer_log_is_bounded(self):
        """Each customer keeps their 500 most recent events."""
        srv = self.fresh()
        evs = [self.ev("bot", "eggs", "view") for _ in range(MAX_EVENTS)]
        self.events(evs, srv)
        self.events(self.ev("bot", "flour", "cart"), srv)
        p = self.profile("bot", srv)
        self.assertEqual(p["events_since_model"], 500)
        self.assertGreater(p["intent"], 1.0)  # the newest, the cart, was kept


# ---------------------------------------------------------------------------
# Triggers and intent (LIVE model: wall clock, events hours old)
# ---------------------------------------------------------------------------
class TriggerTests(Base):
    def setUp(self):
        super().setUp()
        self.s = self.fresh(E["live"])
        self.now = int(time.time())

    def ago(self, hours):
        return iso(self.now - int(hours * 3600))

    def members(self, name, query=""):
        return [m["customer_id"] for m in self.audience(name, query, self.s)["customers"]]

    def test_cart_abandoners(self):
        ev = self.ev
        self.events([
            ev("a-now", "flour", "cart"),
            ev("b-30h", "eggs", "cart", timestamp=self.ago(30)),
            ev("c-bought", "apple", "cart", timestamp=self.ago(2)), ev("c-bought", "apple", "purchase"),
            ev("d-removed", "apple", "cart", timestamp=self.ago(2)),
            ev("d-removed", "apple", "remove_from_cart"),
            ev("e-other", "dates", "cart", timestamp=self.ago(3)), ev("e-other", "cheese", "purchase"),
            ev("f-viewer", MUG, "view"),
            ev("g-old-buy", "bread", "purchase", timestamp=self.ago(5)),
            ev("g-old-buy", "flour", "cart", timestamp=self.ago(1)),
            ev("alice", "dates", "cart", timestamp=self.ago(3)),
        ], self.s)
        # item-level (issue 20): e-other's dates are still in the cart after
        # buying cheese
        self.assertEqual(self.members("cart_abandoners"), ["a-now", "alice", "e-other", "g-old-buy"])
        self.assertEqual(self.members("cart_abandoners", "?hours=24"),
                         ["a-now", "alice", "e-other", "g-old-buy"])
        self.assertEqual(self.members("cart_abandoners", "?hours=48"),
                         ["a-now", "alice", "b-30h", "e-other", "g-old-buy"])
        self.assertEqual(self.members("cart_abandoners", "?hours=2"), ["a-now", "g-old-buy"])
        ids, _ = self.audience_all_pages("cart_abandoners", "?hours=48&limit=1", self.s)
        self.assertEqual(ids, ["a-now", "alice", "b-30h", "e-other", "g-old-buy"])
        # consent and erasure take them out
        self.ok("PUT", "/v1/customers/alice/consent", {"personalization": False}, self.s)
        self.ok("DELETE", "/v1/customers/a-now", srv=self.s)
        self.assertEqual(self.members("cart_abandoners"), ["e-other", "g-old-buy"])
        for bad in ("0", "2161", "x"):
            self.assertError(self.call("GET", "/v1/audiences/cart_abandoners?hours=" + bad,
                                       srv=self.s), 400, "invalid_parameter")

    def test_browsed_not_bought(self):
        ev = self.ev
        self.events([
            ev("v-now", MUG, "view"),
            ev("v-bought", "eggs", "view", timestamp=self.ago(1)), ev("v-bought", "eggs", "purchase"),
            ev("v-80h", "eggs", "view", timestamp=self.ago(80)),
            ev("v-other", "eggs", "view", timestamp=self.ago(1)), ev("v-other", "flour", "purchase"),
            ev("c-only", "eggs", "cart"),
        ], self.s)
        self.assertEqual(self.members("browsed_not_bought"), ["v-now", "v-other"])
        self.assertEqual(self.members("browsed_not_bought", "?hours=100"), ["v-80h", "v-now", "v-other"])
        self.assertEqual(self.members("cart_abandoners"), ["c-only"])

    def test_intent_score(self):
        ev = self.ev
        self.events([
            ev("i-cart", "flour", "cart"),                                     # 1.0
            ev("i-view", "eggs", "view"),                                      # 0.3
            ev("i-both", "eggs", "view"), ev("i-both", "flour", "cart"),       # 1.3
            ev("i-day", "flour", "cart", timestamp=self.ago(24)),              # 0.5
            ev("i-two", "eggs", "view", timestamp=self.ago(48)),               # 0.3/4
            ev("i-bought", "flour", "cart"), ev("i-bought", "flour", "purchase"),  # 0
            ev("i-removed", "flour", "cart"), ev("i-removed", "flour", "remove_from_cart"),  # 0
        ], self.s)
        want = {"i-cart": 1.0, "i-view": 0.3, "i-both": 1.3, "i-day": 0.5, "i-two": 0.075,
                "i-bought": 0.0, "i-removed": 0.0}
        for cust, value in want.items():
            self.assertAlmostEqual(self.profile(cust, self.s)["intent"], value, delta=0.002, msg=cust)
        # audience entries carry the same figure
        for m in self.audience("cart_abandoners", "?hours=48", self.s)["customers"]:
            self.assertAlmostEqual(m["intent"], want[m["customer_id"]], delta=0.002, msg=m)
        self.assertEqual(self.profile("alice", self.s)["intent"], 0)

    def test_order_by_intent(self):
        ev = self.ev
        self.events([
            ev("c1", "flour", "cart"),                                    # 1.0
            ev("c2", "flour", "cart", timestamp=self.ago(24)),            # 0.5
            ev("c3", "eggs", "cart"), ev("c3", MUG, "view"),              # 1.3
            ev("c4", "eggs", "cart"),                                     # 1.0, after c1 by id
            ev("c5", "eggs", "cart", timestamp=self.ago(36)),             # 0.3536
            ev("bob", MUG, "view"),                                       # 0.3
        ], self.s)
        base = "?hours=48&n=1"
        self.assertEqual(self.members("cart_abandoners", base), ["c1", "c2", "c3", "c4", "c5"])
        for limit, want in ((10, ["c3", "c1", "c4", "c2", "c5"]), (3, ["c3", "c1", "c4"]),
                            (1, ["c3"])):
            body = self.audience("cart_abandoners", base + "&order=intent&limit=%d" % limit, self.s)
            self.assertEqual([m["customer_id"] for m in body["customers"]], want, limit)
            self.assertIsNone(body["next_cursor"])
            intents = [m["intent"] for m in body["customers"]]
            self.assertEqual(intents, sorted(intents, reverse=True))
            for m in body["customers"]:  # the same entries as the paged order
                self.assertEqual(m["items"], self.recs(m["customer_id"], "?n=1", self.s)["items"])
        # order=id is the default, paged
        self.assertEqual(self.members("cart_abandoners", base + "&order=id"),
                         ["c1", "c2", "c3", "c4", "c5"])
        # `all` holds the customers known only from events too (issue 20);
        # bob, the only model customer with intent, comes after them
        self.assertEqual(self.members("all", "?order=intent&limit=8&n=1"),
                         ["c3", "c1", "c4", "c2", "c5", "bob", "17850", "alice"])
        self.assertEqual(self.members("browsed_not_bought", "?order=intent"), ["c3", "bob"])
        # consent withdrawn: out of the ranking too
        self.ok("PUT", "/v1/customers/c3/consent", {"personalization": False}, self.s)
        self.assertEqual(self.members("cart_abandoners", base + "&order=intent&limit=2"), ["c1", "c4"])
        # a cursor makes no sense with a ranking; unknown orders are refused
        first = self.audience("cart_abandoners", base + "&limit=1", self.s)
        err = self.assertError(self.call("GET", "/v1/audiences/cart_abandoners?order=intent&cursor="
                                         + first["next_cursor"], srv=self.s), 400, "invalid_parameter")
        self.assertIn("cursor", err["message"])
        for order in ("score", "INTENT", "", "intent,id"):
            err = self.assertError(self.call("GET", "/v1/audiences/all?order=" + order, srv=self.s),
                                   400, "invalid_parameter")
            self.assertIn("order", err["message"])
        self.assertServing(self.s)


# ---------------------------------------------------------------------------
# State across model switches
# ---------------------------------------------------------------------------
class ModelSwitchTests(Base):
    def wait_model(self, srv, model_id):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if srv.get("/readyz").json["model"] == model_id:
                return
            time.sleep(0.05)
        self.fail("the server did not switch to %s: %s" % (model_id, srv.stderr()))

    def test_reload_keeps_state_without_double_counting(self):
        model = os.path.join(self.tmp, "model")
        oo.train_main(model)
        srv = self.fresh(model)
        old_id = srv.get("/readyz").json["model"]
        self.events(self.ev("alice", "cheese", "purchase", quantity=2, price=4), srv)
        t = self.profile("alice", srv)["last_event"]
        self.ok("PUT", "/v1/customers/bob/consent", {"personalization": False}, srv)
        self.ok("DELETE", "/v1/customers/judy", srv=srv)
        # carol views eggs an hour after alice's purchase (on the model's clock)
        self.events(self.ev("carol", "eggs", "view", timestamp=iso(unix(t.replace("T", " ").rstrip("Z"))
                                                                         + 3600)), srv)
        before = self.profile("alice", srv)
        self.assertEqual(before["events_since_model"], 1)

        # retrain with alice's purchase in the log, as the nightly job would
        csv_path = os.path.join(self.tmp, "with-alice.csv")
        with open(INTERACTIONS) as f:
            text = f.read()
        with open(csv_path, "w") as f:
            f.write(text + "%s,cheese,,2,alice,4.00,purchase\n" % t.replace("T", " ").rstrip("Z"))
        oo.train_main(model, csv_path)
        new_id = model_meta(model)["model_id"]
        self.assertNotEqual(new_id, old_id)
        self.assertEqual(model_meta(model)["as_of"], t)
        srv.proc.send_signal(signal.SIGHUP)
        self.wait_model(srv, new_id)

        after = self.profile("alice", srv)
        self.assertEqual(after["model"], new_id)
        self.assertEqual(after["events_since_model"], 0)  # the purchase is in the model now
        self.assertEqual(after["history_size"], 3)
        self.assertEqual(after["rfm"]["frequency"], before["rfm"]["frequency"])
        self.assertAlmostEqual(after["rfm"]["monetary"], 10.6, delta=TOL)  # not 18.6
        self.assertEqual(after["last_purchase"], t)
        # scores: exactly what the new model alone gives (a fresh state)
        alone = Server(model, os.path.join(self.tmp, "alone"))
        self.addCleanup(alone.kill)
        self.assertEqual(self.recs("alice", "?n=10", srv)["items"],
                         self.recs("alice", "?n=10", alone)["items"])
        # the rest of the state is kept
        self.assertEqual(self.profile("carol", srv)["events_since_model"], 1)
        self.assertNotEqual(self.recs("carol", "?n=10", srv)["items"],
                            self.recs("carol", "?n=10", alone)["items"])
        self.assertEqual(self.profile("bob", srv)["consent"], {"personalization": False})
        self.assertEqual(self.recs("bob", "", srv)["source"], "popular")
        self.assertError(self.call("GET", "/v1/customers/judy", srv=srv), 404)

        # back to the first log through POST /admin/reload: the purchase counts again, once
        oo.train_main(model)
        body = self.ok("POST", "/admin/reload", srv=srv)
        self.assertTrue(body["reloaded"])
        third = body["model"]
        self.assertNotIn(third, (old_id, new_id))
        p = self.profile("alice", srv)
        self.assertEqual(p["events_since_model"], 1)
        self.assertAlmostEqual(p["rfm"]["monetary"], 10.6, delta=TOL)
        self.assertEqual(p["history_size"], 2)
        self.assertNotIn("cheese", self.ids(self.recs("alice", "?n=100", srv)))
        self.assertEqual(self.profile("bob", srv)["consent"], {"personalization": False})
        self.assertEqual(srv.stop(), 0, srv.stderr())


if __name__ == "__main__":
    sys.exit(run_suite(__name__, sys.argv[1:], lambda: [E.get("tmp")], 'e2e'))
