#!/usr/bin/env python3
"""End-to-end tests of the live-customer cap and the idle sweep (issue 21,
"Unbounded customers": one client made 300,000 customers in 1.1 s).

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_live_customers.py [-v]

`serve --max-live-customers N`: past N customers with event logs, events of
a new customer are a 503 `live_customer_limit`, while customers the state or
the model already knows keep writing. `--live-customer-ttl DAYS`: the logs
of customers who never bought are dropped once their newest event is older
than DAYS on the model's clock. The model here is a historical log (as-of
2024-03-10 11:00), so its clock runs from its as-of date and events stamped
weeks before it are honestly idle: no clock is faked.

The last line printed is "N passed, N failed".
"""
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (FACTOR, JSON_HEADERS, ApiTestCase, Server, run, run_suite,  # noqa: E402
                 train)

E = {}
SWEEP_WAIT = 20 * FACTOR  # seconds; the writer sweeps a batch every second
OLD = "2024-01-01T10:00:00Z"     # 69 days before the model's as-of date
RECENT = "2024-03-09T10:00:00Z"  # a day before it


def setUpModule():
    E["tmp"] = tempfile.mkdtemp(prefix="shopkeeper-live-")
    E["model"] = os.path.join(E["tmp"], "model")
    train(E["model"])


def tmp_dirs():
    return [E.get("tmp")]


def metric(srv, name):
    """The value of an unlabelled metric in /metrics."""
    text = srv.get("/metrics").body.decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    if not m:
        raise AssertionError("no %s in /metrics" % name)
    return float(m.group(1))


class LiveCustomerTest(ApiTestCase):
    def serve(self, *extra):
        state = tempfile.mkdtemp(prefix="state-", dir=E["tmp"])
        srv = Server(E["model"], state, extra=list(extra))
        self.addCleanup(srv.kill)
        return srv

    def post(self, srv, events):
        return srv.request("POST", "/v1/events", json.dumps(events), JSON_HEADERS)

    def view(self, srv, customer, ts=RECENT, event="view"):
        return self.post(srv, {"customer_id": customer, "item_id": "apple", "event": event,
                               "timestamp": ts})

    def test_cap_refuses_new_customers_and_keeps_known_ones(self):
        srv = self.serve("--max-live-customers", "3", "--live-customer-ttl", "0")
        for c in ("new1", "new2", "new3"):
            self.assertEqual(self.view(srv, c).status, 200, c)
        r = self.view(srv, "new4")
        self.assertError(r, 503, "live_customer_limit")
        self.assertIn("3 live customers", r.json["error"]["message"])
        # Known to the state: still written.
        self.assertEqual(self.view(srv, "new1").status, 200)
        self.assertEqual(self.view(srv, "new3", event="purchase").status, 200)
        # Known to the model (bounded by it): written too.
        self.assertEqual(self.view(srv, "alice").status, 200)
        # A batch: the known customer's event is taken, the new one's refused.
        r = self.post(srv, [{"customer_id": "new5", "item_id": "apple", "event": "view"},
                            {"customer_id": "new2", "item_id": "apple", "event": "view"}])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["accepted"], 1)
        self.assertEqual([(x["index"], x["code"]) for x in r.json["rejected"]],
                         [(0, "live_customer_limit")])
        # A batch of new customers only: 503, nothing taken.
        r = self.post(srv, [{"customer_id": "new6", "item_id": "apple", "event": "view"},
                            {"customer_id": "new6", "item_id": "bread", "event": "view"}])
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json["error"]["code"], "live_customer_limit")
        self.assertEqual(r.json["accepted"], 0)
        self.assertEqual([x["code"] for x in r.json["rejected"]], ["live_customer_limit"] * 2)
        self.assertEqual(metric(srv, "shopkeeper_live_customers"), 4)  # new1-3, alice
        self.assertEqual(metric(srv, "shopkeeper_live_customers_max"), 3)
        self.assertEqual(metric(srv, "shopkeeper_live_customer_refused_total"), 4)
        self.assertEqual(self.profile(srv, "new4"), None)

    def test_cap_within_one_batch(self):
        """A batch that would cross the cap takes new customers up to it
        (one customer's repeated events count once)."""
        srv = self.serve("--max-live-customers", "2")
        r = self.post(srv, [{"customer_id": c, "item_id": "apple", "event": "view"}
                            for c in ("b1", "b1", "b2", "b3", "b2")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["accepted"], 4)
        self.assertEqual([(x["index"], x["code"]) for x in r.json["rejected"]],
                         [(3, "live_customer_limit")])
        self.assertEqual(metric(srv, "shopkeeper_live_customers"), 2)

    def test_flag_records_of_unknown_customers_are_capped(self):
        """Consent and erasure of customers neither the model nor the state
        knows write a record each: past the cap they are a 503 like events
        of new customers, while known customers keep every right."""
        srv = self.serve("--max-live-customers", "2", "--live-customer-ttl", "0")

        def consent(c, allowed=False):
            return srv.request("PUT", "/v1/customers/%s/consent" % c,
                               json.dumps({"personalization": allowed}), JSON_HEADERS)

        self.assertEqual(consent("u1").status, 200)
        self.assertEqual(srv.request("DELETE", "/v1/customers/u2").status, 200)
        r = consent("u3")
        self.assertError(r, 503, "live_customer_limit")
        self.assertIn("2 customers", r.json["error"]["message"])
        self.assertError(srv.request("DELETE", "/v1/customers/u4"), 503, "live_customer_limit")
        # Records that exist change; model customers are bounded by the model.
        self.assertEqual(consent("u1", True).status, 200)
        self.assertEqual(srv.request("DELETE", "/v1/customers/u1").status, 200)
        self.assertEqual(consent("alice").status, 200)
        self.assertEqual(srv.request("DELETE", "/v1/customers/bob").status, 200)
        self.assertEqual(metric(srv, "shopkeeper_live_customer_refused_total"), 2)

    def profile(self, srv, customer):
        """The customer's profile, or None when the server does not know them."""
        r = srv.get("/v1/customers/" + customer)
        if r.status == 404:
            return None
        self.assertEqual(r.status, 200, r)
        return r.json

    def test_idle_customers_without_purchases_expire(self):
        srv = self.serve("--max-live-customers", "5", "--live-customer-ttl", "30")
        self.assertEqual(self.view(srv, "idle_view", OLD).status, 200)
        self.assertEqual(self.view(srv, "idle_cart", OLD, "cart").status, 200)
        self.assertEqual(self.view(srv, "buyer", OLD, "purchase").status, 200)
        self.assertEqual(self.view(srv, "fresh").status, 200)
        # A recent view, then older ones: the newest decides, not the last sent.
        self.assertEqual(self.view(srv, "mixed").status, 200)
        self.assertEqual(self.view(srv, "mixed", OLD).status, 200)
        self.assertError(self.view(srv, "late"), 503, "live_customer_limit")
        deadline = time.monotonic() + SWEEP_WAIT
        while (metric(srv, "shopkeeper_live_customers_expired_total") < 2
               and time.monotonic() < deadline):
            time.sleep(0.2)
        self.assertEqual(metric(srv, "shopkeeper_live_customers_expired_total"), 2)
        self.assertEqual(metric(srv, "shopkeeper_live_customers"), 3)
        for c in ("buyer", "fresh", "mixed"):
            self.assertIsNotNone(self.profile(srv, c), c)
        for c in ("idle_view", "idle_cart"):
            self.assertIsNone(self.profile(srv, c), c)
        # The freed places take new customers.
        self.assertEqual(self.view(srv, "late").status, 200)
        self.assertEqual(self.view(srv, "later").status, 200)
        self.assertError(self.view(srv, "latest"), 503, "live_customer_limit")
        self.assertEqual(srv.stop(), 0)

    def test_view_only_customer_expires_and_its_consent_stays(self):
        srv = self.serve("--live-customer-ttl", "30")
        self.assertEqual(self.view(srv, "gone", OLD).status, 200)
        r = srv.request("PUT", "/v1/customers/gone/consent",
                        json.dumps({"personalization": False}), JSON_HEADERS)
        self.assertEqual(r.status, 200, r)
        deadline = time.monotonic() + SWEEP_WAIT
        while (metric(srv, "shopkeeper_live_customers") > 0
               and time.monotonic() < deadline):
            time.sleep(0.2)
        self.assertEqual(metric(srv, "shopkeeper_live_customers"), 0)
        self.assertEqual(metric(srv, "shopkeeper_live_customers_expired_total"), 1)
        prof = self.profile(srv, "gone")
        if prof is not None:  # a profile of the consent flag alone
            self.assertFalse(prof["consent"]["personalization"])

    def test_flags(self):
        for args, ok in ((["--max-live-customers", "0"], False),
                         (["--max-live-customers", "-1"], False),
                         (["--max-live-customers", "x"], False),
                         (["--live-customer-ttl", "-1"], False),
                         (["--live-customer-ttl", "nan"], False)):
            with self.subTest(args=args):
                p = run(["serve", "--model", E["model"], "--state", E["tmp"] + "/s"] + args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(args[0], p.stderr)
        p = run(["serve", "--help"])
        self.assertIn("--max-live-customers", p.stdout)
        self.assertIn("--live-customer-ttl", p.stdout)


if __name__ == "__main__":
    sys.exit(run_suite(__name__, sys.argv[1:], tmp_dirs))
