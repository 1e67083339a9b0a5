#!/usr/bin/env python3
"""`train --events-from STATE_DIR`: the events a running single-node server
collected go into the next model.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_train_events.py [-v]

Events are posted to a real server over HTTP; train then reads the server's
state read-only while it keeps running. A customer known only from live
events gets a history; an erased customer is gone from the model (their CSV
rows too); a customer without consent keeps only their CSV rows; events at
or before the exports' newest timestamp are taken to be in the exports.
(The same from the shared Redis log: tests/test_train_events.c.)
"""
import datetime
import json
import os
import sys
import tempfile
import unittest

from lib import (INTERACTIONS, JSON_HEADERS, Server, model_meta, q, run, run_suite, stop_shared,
                 train)

S = {}


def history(model_dir, customer):
    """{item: purchased?} of the customer in the model, or None when absent."""
    p = run(["inspect", model_dir, "--customer", customer])
    if p.returncode != 0:
        return None
    items = {}
    for line in p.stdout.splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        items[f[0]] = f[3] == "yes"
    return items


def setUpModule():
    S["tmp"] = tempfile.mkdtemp(prefix="shopkeeper-train-events-")
    S["m1"] = os.path.join(S["tmp"], "m1")
    S["state"] = os.path.join(S["tmp"], "state")
    train(S["m1"])
    as_of = datetime.datetime.strptime(model_meta(S["m1"])["as_of"], "%Y-%m-%dT%H:%M:%SZ")
    after = (as_of + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = (as_of - datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    S["srv"] = srv = Server(S["m1"], S["state"])
    events = [
        # known only from live events: two purchases and a view
        {"customer_id": "newbie", "item_id": "apple", "event": "purchase", "timestamp": after},
        {"customer_id": "newbie", "item_id": "cheese", "event": "purchase", "timestamp": after},
        {"customer_id": "newbie", "item_id": "eggs", "event": "view", "timestamp": after},
        # taken out of the cart again: no training signal
        {"customer_id": "newbie", "item_id": "bread", "event": "remove_from_cart",
         "timestamp": after},
        # a CSV customer adds a live purchase
        {"customer_id": "frank", "item_id": "apple", "event": "purchase", "timestamp": after},
        # before the exports' newest row: already in them
        {"customer_id": "oldtimer", "item_id": "apple", "event": "purchase", "timestamp": before},
        # to be erased
        {"customer_id": "alice", "item_id": "eggs", "event": "purchase", "timestamp": after},
        {"customer_id": "gone", "item_id": "eggs", "event": "purchase", "timestamp": after},
        # consent withdrawn afterwards
        {"customer_id": "bob", "item_id": "flour", "event": "purchase", "timestamp": after},
        {"customer_id": "shy", "item_id": "flour", "event": "purchase", "timestamp": after},
    ]
    r = srv.request("POST", "/v1/events", json.dumps(events), JSON_HEADERS)
    assert r.status == 200 and r.json["accepted"] == len(events), r
    for c in ("alice", "gone"):
        r = srv.request("DELETE", "/v1/customers/" + q(c))
        assert r.status in (200, 204), r
    for c in ("bob", "shy"):
        r = srv.request("PUT", "/v1/customers/%s/consent" % q(c),
                        json.dumps({"personalization": False}), JSON_HEADERS)
        assert r.status == 200, r
    # Trained while the server keeps running: the state is opened read-only.
    S["m2"] = os.path.join(S["tmp"], "m2")
    S["train"] = train(S["m2"], INTERACTIONS, "--events-from", S["state"])
    S["meta"] = model_meta(S["m2"])


def tearDownModule():
    if "srv" in S:
        stop_shared(S["srv"])


class TrainEventsFromState(unittest.TestCase):
    def test_a_customer_known_only_live_gets_a_history(self):
        self.assertIsNone(history(S["m1"], "newbie"))
        h = history(S["m2"], "newbie")
        self.assertEqual(h, {"apple": True, "cheese": True, "eggs": False}, h)

    def test_a_csv_customer_gains_the_live_purchase(self):
        self.assertNotIn("apple", history(S["m1"], "frank"))
        self.assertEqual(history(S["m2"], "frank"), {"eggs": True, "flour": True, "apple": True})

    def test_erased_customers_are_not_trained_at_all(self):
        self.assertIsNotNone(history(S["m1"], "alice"))
        self.assertIsNone(history(S["m2"], "alice"))  # CSV rows left out too
        self.assertIsNone(history(S["m2"], "gone"))
        p = run(["inspect", S["m2"], "--list", "customers"])
        self.assertNotIn("alice", p.stdout.split())
        self.assertNotIn("gone", p.stdout.split())

    def test_erased_rows_are_not_reported_as_bad_rows(self):
        # The fixture's one bad row is reported; alice's two excluded rows
        # are left out quietly, not announced as "2 more bad rows".
        self.assertIn("line 32 skipped: no customer id", S["train"].stderr)
        self.assertNotIn("more bad rows not shown", S["train"].stderr)

    def test_no_consent_keeps_only_the_exports(self):
        self.assertEqual(history(S["m2"], "bob"), history(S["m1"], "bob"))
        self.assertIsNone(history(S["m2"], "shy"))

    def test_events_the_exports_cover_are_not_counted_twice(self):
        self.assertIsNone(history(S["m2"], "oldtimer"))

    def test_the_meta_record_says_what_was_fed(self):
        live = S["meta"]["live_events"]
        self.assertEqual(live["source"], S["state"])
        # alice's and gone's events were deleted with the erasure.
        self.assertEqual(live["events"], 8, live)
        self.assertEqual(live["added"], 4, live)  # newbie x3, frank
        self.assertEqual(live["skipped"], 1, live)  # remove_from_cart
        self.assertEqual(live["covered_by_exports"], 1, live)
        self.assertEqual(live["no_consent"], 2, live)  # bob's, shy's
        self.assertNotIn("last_id", live)  # a state has no stream position
        self.assertNotIn("live_events", model_meta(S["m1"]))

    def test_flag_errors(self):
        out = os.path.join(S["tmp"], "bad")
        for source, says in [(os.path.join(S["tmp"], "nowhere"), "not a state directory"),
                             ("redis://127.0.0.1:1", "event log"),
                             ("redis://", "event log URL")]:
            p = run(["train", "--interactions", INTERACTIONS, "--out", out, "--events-from",
                     source])
            self.assertEqual(p.returncode, 1, (source, p.stderr))
            self.assertIn(says, p.stderr)
            self.assertFalse(os.path.exists(os.path.join(out, "model.mdb")))
        p = run(["train", "--help"])
        self.assertIn("--events-from SOURCE", p.stdout)


if __name__ == "__main__":
    sys.exit(run_suite(__name__, sys.argv[1:], lambda: [S.get("tmp")], label="train_events"))
