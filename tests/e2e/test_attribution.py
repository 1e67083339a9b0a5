#!/usr/bin/env python3
"""Attribution and the experiment report (issue 15, parts 3 and 4), against
the real server.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_attribution.py [-v]

- Events: click and impression, rec_id on events, a malformed rec_id is
  400 invalid_rec_id.
- One shop's story on one state, checked against figures worked out by
  hand: answers served in an experiment (customers, exposed, impressions,
  reaching the state within about a second), tagged click and purchase,
  view-through within --attribution-days, a purchase of an item never
  shown, kill -9 and a restart keeping every count, a purchase outside the
  window (a restart on the wall clock, years after the model's), erasure
  (per-customer figures leave, event counts stay), consent withdrawn, and
  `shopkeeper report` printing the same JSON as GET /v1/experiments/{name}.

The served side (serve --experiments, rec_id in answers) is the
experiments branch's; without it in the build, the tests that need it are
skipped. The last line printed is "N passed, N failed".
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lib as ts  # noqa: E402  (the shared helpers)
from lib import ApiTestCase, Server, q, run, train  # noqa: E402

SHARED = {}
EXPERIMENT = {"experiments": [{
    "name": "home", "salt": "attr-1", "routes": ["customer"],
    "variants": [{"name": "control", "share": 0.5, "source": "popular"},
                 {"name": "personal", "share": 0.5}]}]}
# A rec_id of the right form whose check byte is off by one character.
BAD_REC_ID = "EXUvSEcBAAAABwGLz-VoAAAAAAMx"


def tmp_path(*parts):
    return os.path.join(SHARED["tmp"], *parts)


def has_experiments():
    out = subprocess.run([ts.BIN, "serve", "--help"], capture_output=True, text=True).stdout
    return "--experiments" in out


def setUpModule():
    SHARED["tmp"] = tempfile.mkdtemp(prefix="shopkeeper-attribution-")
    SHARED["model"] = tmp_path("model")
    train(SHARED["model"])
    SHARED["file"] = tmp_path("experiments.json")
    with open(SHARED["file"], "w", encoding="utf-8") as f:
        json.dump(EXPERIMENT, f)


def post_events(srv, events):
    return srv.request("POST", "/v1/events", json.dumps(events).encode(), ts.JSON_HEADERS)


class Events(ApiTestCase):
    """What POST /v1/events takes, with or without the serving side."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server(SHARED["model"], tmp_path("state-events"))

    @classmethod
    def tearDownClass(cls):
        ts.stop_shared(cls.srv)

    def test_malformed_rec_id(self):
        cases = [
            ({"customer_id": "c", "item_id": "apple", "event": "click", "rec_id": BAD_REC_ID},
             "invalid_rec_id"),
            ({"customer_id": "c", "item_id": "apple", "event": "purchase", "rec_id": "abc"},
             "invalid_rec_id"),
            ({"customer_id": "c", "item_id": "apple", "event": "cart", "rec_id": 7},
             "invalid_rec_id"),
            ({"customer_id": "c", "item_id": "apple", "event": "cart",
              "rec_id": "!" * 28}, "invalid_rec_id"),
            ({"customer_id": "c", "event": "impression"}, "missing_field"),
            ({"customer_id": "c", "event": "click"}, "missing_field"),
        ]
        for ev, code in cases:
            with self.subTest(ev=ev):
                self.assertError(post_events(self.srv, ev), 400, code)
        # In a batch: the bad one listed by index, the good one taken.
        r = post_events(self.srv, [
            {"customer_id": "c", "item_id": "apple", "event": "click"},
            {"customer_id": "c", "item_id": "apple", "event": "click", "rec_id": BAD_REC_ID}])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["accepted"], 1)
        self.assertEqual([(x["index"], x["code"]) for x in r.json["rejected"]],
                         [(1, "invalid_rec_id")])

    def test_clicks_and_impressions_do_not_enter_the_history(self):
        before = self.srv.get("/v1/customers/alice/recommendations?n=5").json["items"]
        r = post_events(self.srv, [
            {"customer_id": "alice", "item_id": "apple", "event": "click"},
            {"customer_id": "alice", "event": "impression",
             "rec_id": self.srv.get("/v1/customers/alice/recommendations").json.get(
                 "rec_id", "EXUvSEcBAAAABwGLz-VoAAAAAAMw")}])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["accepted"], 2)
        after = self.srv.get("/v1/customers/alice/recommendations?n=5").json["items"]
        self.assertEqual(before, after)

    def test_unknown_experiment(self):
        self.assertError(self.srv.get("/v1/experiments/nope"), 404, "unknown_experiment")
        out = subprocess.run([ts.BIN, "report", "--state", tmp_path("state-events"),
                              "--experiment", "nope"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("no experiment named 'nope'", out.stderr)
        out = subprocess.run([ts.BIN, "report", "--state", tmp_path("state-events")],
                             capture_output=True, text=True)
        self.assertEqual(out.returncode, 2, out)


def ts_srm(a, b):
    """The SRM p-value of a against b at 50/50, by hand: chi-square with
    one degree of freedom, X2 = (a - b)^2 / (a + b), p = erfc(sqrt(X2 / 2))."""
    import math
    x2 = (a - b) ** 2 / (a + b)
    return math.erfc(math.sqrt(x2 / 2))


def variant(report, name):
    return next(v for v in report["variants"] if v["name"] == name)


@unittest.skipUnless(has_experiments(), "serve --experiments is not in this build (the "
                     "experiments branch's serving side)")
class Story(ApiTestCase):
    """One shop's week on one state, every figure worked out by hand."""

    def start(self, *extra):
        return Server(SHARED["model"], self.state, extra=["--experiments", SHARED["file"]]
                      + list(extra))

    def report(self, srv):
        r = srv.get("/v1/experiments/home")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], ts.JSON_CT)
        return r.json

    def wait_served(self, srv, customers):
        """Polls until the served batch is in the state (flushed about once
        a second); bounded."""
        deadline = time.monotonic() + 15 * ts.FACTOR
        while True:
            r = srv.get("/v1/experiments/home")
            if r.status == 200 and sum(v["customers"] for v in r.json["variants"]) >= customers:
                return r.json
            self.assertLess(time.monotonic(), deadline, r)
            time.sleep(0.1)

    def test_story(self):
        self.state = tmp_path("state-story")
        srv = self.start()
        try:
            self.story(srv)
        finally:
            srv.kill()

    def story(self, srv):
        # Visitors are served one answer each until each variant has two
        # with 3 items; every answer counts (tallied here as the server
        # should).
        shown, rec_ids, by_variant = {}, {}, {"control": [], "personal": []}
        tally = {"control": [0, 0, 0], "personal": [0, 0, 0]}  # customers, exposed, items
        for i in range(200):
            cid = "visitor-%d" % i
            r = srv.get("/v1/customers/%s/recommendations?n=3" % q(cid)).json
            v = r["experiment"]["variant"]
            tally[v][0] += 1
            tally[v][1] += 1 if r["items"] else 0
            tally[v][2] += len(r["items"])
            if len(by_variant[v]) < 2 and len(r["items"]) == 3:
                by_variant[v].append(cid)
                shown[cid] = [it["item_id"] for it in r["items"]]
                rec_ids[cid] = r["rec_id"]
            if all(len(x) == 2 for x in by_variant.values()):
                break
        (c0, c1), (p0, p1) = by_variant["control"], by_variant["personal"]
        # Served, then counted within about a second (no events yet).
        rep = self.wait_served(srv, tally["control"][0] + tally["personal"][0])
        for name in ("control", "personal"):
            v = variant(rep, name)
            self.assertEqual([v["customers"], v["exposed"], v["impressions"]], tally[name], v)
        # Asked again: the same customer, more impressions.
        srv.get("/v1/customers/%s/recommendations?n=3" % q(c1))
        tally["control"][2] += 3
        deadline = time.monotonic() + 15 * ts.FACTOR
        while variant(self.report(srv), "control")["impressions"] < tally["control"][2]:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)

        not_shown = next(i for i in ("apple", "bread", "cheese", "dates", "eggs", "fig")
                         if i not in shown[p0])
        r = post_events(srv, [
            # c0 clicks their first item and buys 2 at 5.00, tagged
            {"customer_id": c0, "item_id": shown[c0][0], "event": "click",
             "rec_id": rec_ids[c0]},
            {"customer_id": c0, "item_id": shown[c0][0], "event": "purchase", "quantity": 2,
             "price": 5, "rec_id": rec_ids[c0]},
            # p0 buys their second item at 7.00 without the rec_id: view-through;
            # and an item never shown to them: nothing
            {"customer_id": p0, "item_id": shown[p0][1], "event": "purchase", "price": 7},
            {"customer_id": p0, "item_id": not_shown, "event": "purchase", "price": 11},
            # p1's storefront says it displayed the answer; p1 puts one in the cart
            {"customer_id": p1, "event": "impression", "rec_id": rec_ids[p1]},
            {"customer_id": p1, "item_id": shown[p1][2], "event": "cart",
             "rec_id": rec_ids[p1]},
        ])
        self.assertEqual((r.status, r.json["accepted"]), (200, 6), r)

        # By hand, beside the served tally: control: clicks 1, ctr 1/impressions,
        # orders 1, revenue 2 x 5 = 10, converted c0 (1), conversion
        # 1/exposed, revenue per exposed 10/exposed. personal: displayed 1,
        # carts 1, orders 0, view-through 1 and 7, converted p0 (1),
        # conversion 1/exposed, revenue per exposed 7/exposed.
        (cc, ce, ci), (pc, pe, pi) = tally["control"], tally["personal"]
        want = {
            "control": dict(customers=cc, exposed=ce, impressions=ci, displayed=0, clicks=1,
                            carts=0, orders=1, revenue=10, view_through_orders=0,
                            view_through_revenue=0, converted=1, conversion=1 / ce,
                            revenue_per_exposed=10 / ce, erased_customers=0),
            "personal": dict(customers=pc, exposed=pe, impressions=pi, displayed=1, clicks=0,
                             carts=1, orders=0, revenue=0, view_through_orders=1,
                             view_through_revenue=7, converted=1, conversion=1 / pe,
                             revenue_per_exposed=7 / pe, erased_customers=0),
        }
        srm = ts_srm(cc, pc)

        def check(rep, want):
            self.assertEqual(rep["name"], "home")
            self.assertEqual(rep["control"], "control")
            self.assertAlmostEqual(rep["srm_p_value"], srm)
            for name, fig in want.items():
                v = variant(rep, name)
                for k, x in fig.items():
                    self.assertAlmostEqual(v[k], x, msg="%s %s: %r" % (name, k, v))
            ctl = variant(rep, "control")
            self.assertAlmostEqual(ctl["ctr"], ctl["clicks"] / ctl["impressions"])
            self.assertIsNone(ctl["lift"])
            lift = variant(rep, "personal")["lift"]
            for key in ("conversion", "revenue_per_exposed"):
                self.assertEqual(set(lift[key]), {"estimate", "relative", "low", "high",
                                                  "p_value"})
                self.assertGreaterEqual(lift[key]["p_value"], 0)
                self.assertLessEqual(lift[key]["p_value"], 1)
            pv, cv = variant(rep, "personal"), variant(rep, "control")
            self.assertAlmostEqual(lift["conversion"]["estimate"],
                                   pv["conversion"] - cv["conversion"])
            self.assertAlmostEqual(lift["revenue_per_exposed"]["estimate"],
                                   pv["revenue_per_exposed"] - cv["revenue_per_exposed"])

        check(self.report(srv), want)

        # kill -9: acknowledged events and the flushed served counts survive.
        srv.kill()
        srv = self.start()
        check(self.report(srv), want)

        # The CLI prints the same JSON from the state alone.
        out = run(["report", "--state", self.state, "--experiment", "home"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout), self.report(srv))

        # Years later (the wall clock, far past the model's): p1 buys a
        # shown item without the rec_id: outside the 7-day window, nothing.
        srv.stop()
        srv = self.start("--clock", "wall")
        r = post_events(srv, {"customer_id": p1, "item_id": shown[p1][0],
                              "event": "purchase", "price": 3})
        self.assertEqual(r.status, 200, r)
        check(self.report(srv), want)

        # Consent withdrawn: c1's tagged purchase is not attributed.
        r = srv.request("PUT", "/v1/customers/%s/consent" % q(c1),
                        json.dumps({"personalization": False}).encode(), ts.JSON_HEADERS)
        self.assertEqual(r.status, 200, r)
        r = post_events(srv, {"customer_id": c1, "item_id": shown[c1][0], "event": "purchase",
                              "price": 4, "rec_id": rec_ids[c1]})
        self.assertEqual(r.status, 200, r)
        check(self.report(srv), want)

        # Erasure: c0 leaves the per-customer figures; the event counts stay.
        self.assertEqual(srv.request("DELETE", "/v1/customers/%s" % q(c0)).status, 200)
        want["control"].update(customers=cc - 1, exposed=ce - 1, converted=0, conversion=0,
                               revenue_per_exposed=0, erased_customers=1)
        rep = self.report(srv)
        check_erased = dict(want)
        for name, fig in check_erased.items():
            v = variant(rep, name)
            for k, x in fig.items():
                self.assertAlmostEqual(v[k], x, msg="%s %s: %r" % (name, k, v))
        # the SRM check still counts them as assigned
        self.assertAlmostEqual(rep["srm_p_value"], srm)
        srv.stop()


@unittest.skipUnless(has_experiments(), "serve --experiments is not in this build")
class Replicas(ApiTestCase):
    """Behind a balancer, on the shared event log: served answers, clicks and
    orders reach every replica's state, so every replica and `shopkeeper
    report` on either state give the same figures."""

    def test_same_report_everywhere(self):
        if not shutil.which("redis-server"):
            self.fail("redis-server is not installed: the event log cannot be tested")
        from test_event_log import Redis, wait_converged  # the shared helpers there
        d = tmp_path("replicas")
        redis = Redis(os.path.join(d, "redis"))
        self.addCleanup(redis.kill)
        reps = [Server(SHARED["model"], os.path.join(d, n), extra=[
            "--experiments", SHARED["file"], "--event-log", redis.url]) for n in ("a", "b")]
        for r in reps:
            self.addCleanup(r.kill)
        wait_converged(self, reps, redis)
        served = 0
        for i in range(20):  # round robin, as the balancer does
            srv = reps[i % 2]
            r = srv.get("/v1/customers/%s/recommendations?n=3" % q("rr-%d" % i)).json
            served += 1
            if r["items"]:
                ev = [{"customer_id": "rr-%d" % i, "item_id": r["items"][0]["item_id"],
                       "event": "click", "rec_id": r["rec_id"]}]
                if i % 3 == 0:
                    ev.append({"customer_id": "rr-%d" % i, "item_id": r["items"][0]["item_id"],
                               "event": "purchase", "price": 2, "rec_id": r["rec_id"]})
                p = post_events(reps[(i + 1) % 2], ev)  # the next request: the other one
                self.assertEqual(p.status, 200, p)
        deadline = time.monotonic() + 20 * ts.FACTOR
        while True:
            wait_converged(self, reps, redis)
            got = [x.get("/v1/experiments/home").json for x in reps]
            total = [sum(v.get("customers", 0) for v in g.get("variants", [])) for g in got]
            if total == [served, served] and got[0] == got[1]:
                break
            self.assertLess(time.monotonic(), deadline, got)
            time.sleep(0.1)
        self.assertGreater(sum(v["clicks"] for v in got[0]["variants"]), 0)
        for n in ("a", "b"):
            out = run(["report", "--state", os.path.join(d, n), "--experiment", "home"])
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(json.loads(out.stdout), got[0])


if __name__ == "__main__":
    sys.exit(ts.run_suite(__name__, sys.argv[1:], lambda: [SHARED.get("tmp")], "attribution"))
