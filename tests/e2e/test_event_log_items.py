#!/usr/bin/env python3
"""End-to-end tests of items added since training (PUT /v1/items/{id} with
title, category, price, first_seen; issue 18) going through the Redis event
log, with real redis-server and two or three replicas on loopback.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_event_log_items.py [-v]

- a new item PUT on replica A is in replica B's ?new_since= answer once the
  lag is zero, ranked for the customer who matches it, with its text;
- `available: false` PUT on B takes it out of A's answers;
- a replica whose state directory was deleted bootstraps it back, also after
  the stream was trimmed to nothing (the compacted K:catalog);
- the catalog record is in the stream and K:catalog holds one field per
  catalog field given.

The model and data are test_new_arrivals.py's (a catalog with titles, two
customer groups with disjoint tastes). Without redis-server the suite fails
loudly (CI installs it).
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib as ts  # noqa: E402
import test_event_log as el  # noqa: E402  (Redis, replicas, convergence)
import test_new_arrivals as na  # noqa: E402  (the data and the model)
from lib import ApiTestCase, q, run_suite  # noqa: E402

TMP = None
DAY = "2024-03-15"


def slot(srv, customer, day=DAY):
    r = srv.get("/v1/customers/%s/recommendations?n=10&new_since=%s" % (q(customer), day))
    assert r.status == 200, r
    return r.json["items"]


class LiveItemsThroughTheLog(ApiTestCase):
    def setUp(self):
        if not shutil.which("redis-server"):
            self.fail("redis-server is not installed (apt-get install redis-server): "
                      "the event log tests cannot run")
        self.dir = tempfile.mkdtemp(prefix="sk-evlog-items-", dir=TMP)
        self.redis = el.Redis(os.path.join(self.dir, "redis"))
        self.addCleanup(self.redis.kill)
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.kill()

    def start(self, name):
        s = el.replica(na.SHARED["model"], os.path.join(self.dir, name), self.redis)
        self.servers.append(s)
        return s

    def assertFirst(self, srv, customer, item):
        items = slot(srv, customer)
        self.assertTrue(items, (srv.port, items))
        self.assertEqual(items[0]["item_id"], item, (srv.port, items))
        self.assertGreater(items[0]["score"], 0, (srv.port, items))
        self.assertEqual(items[0]["title"], "HEART CUSHION COVER", items)
        self.assertEqual(items[0]["category"], "home", items)
        self.assertEqual(items[0]["price"], 4.5, items)

    def test_a_new_item_reaches_every_replica_and_survives_bootstrap_and_trim(self):
        a, b = self.start("a"), self.start("b")
        el.wait_converged(self, [a, b], self.redis)
        self.assertNotIn("N05", [x["item_id"] for x in slot(b, "c020")])  # can fail
        r = el.put_item(a, "N05", na.CUSHION)
        self.assertEqual(r.status, 200, r)
        self.assertFalse(r.json["in_model"], r.json)
        self.assertEqual(r.json["first_seen"], "2024-03-20", r.json)
        self.assertGreater(r.json["content_neighbors"], 0, r.json)
        self.assertFirst(a, "c020", "N05")  # read your writes
        el.wait_converged(self, [a, b], self.redis)
        self.assertFirst(b, "c020", "N05")
        # The log holds it: a catalog record, and one compacted field each.
        fields = sorted(self.redis.cmd("HKEYS", "shopkeeper:events:catalog"))
        self.assertEqual(fields, [b"cN05", b"fN05", b"pN05", b"tN05"], fields)

        # A replica bootstrapped from the stream as it is.
        c = self.start("c")
        el.wait_converged(self, [a, b, c], self.redis)
        self.assertFirst(c, "c020", "N05")
        # A later change of one field wins over the earlier record.
        r = el.put_item(c, "N05", {"price": 6.25})
        self.assertEqual(r.status, 200, r)
        el.wait_converged(self, [a, b, c], self.redis)
        for s in (a, b, c):
            self.assertEqual(slot(s, "c020")[0]["price"], 6.25, s.port)
        self.assertEqual(el.put_item(c, "N05", {"price": 4.5}).status, 200)

        # Trimmed to nothing, then a replica with its state deleted: the
        # compacted fields bring the item back.
        el.wait_converged(self, [a, b, c], self.redis)
        el.trim_everything(self.redis)
        c.kill()
        self.servers.remove(c)
        shutil.rmtree(os.path.join(self.dir, "c"))
        c = self.start("c")
        el.wait_converged(self, [a, b, c], self.redis)
        self.assertFirst(c, "c020", "N05")
        self.assertEqual(slot(a, "c020"), slot(c, "c020"))

        # Sold out on B: gone on A and C too.
        r = el.put_item(b, "N05", {"available": False})
        self.assertEqual(r.status, 200, r)
        self.assertFalse(r.json["available"], r.json)
        el.wait_converged(self, [a, b, c], self.redis)
        for s in (a, b, c):
            for cust in ("c020", "c070", "nobody"):
                self.assertNotIn("N05", [x["item_id"] for x in slot(s, cust)], (s.port, cust))

    def test_a_change_of_a_model_item_goes_through_the_log(self):
        a, b = self.start("a"), self.start("b")
        el.wait_converged(self, [a, b], self.redis)
        # c020 bought three of group A's items, not O04: relaunched with a
        # first_seen in the slot's range, it is new, and their history
        # reaches it, on every replica.
        self.assertEqual(slot(b, "c020", day="2024-03-22"), [])
        r = el.put_item(a, "O04", {"first_seen": "2024-03-25"})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.json["in_model"], r.json)
        el.wait_converged(self, [a, b], self.redis)
        for s in (a, b):
            items = slot(s, "c020", day="2024-03-22")
            self.assertEqual([x["item_id"] for x in items][:1], ["O04"], (s.port, items))

def setUpModule():
    global TMP
    TMP = tempfile.mkdtemp(prefix="sk-e2e-evlog-items-")
    el.TMP = TMP
    na.SHARED["tmp"] = TMP
    na.SHARED["model"] = os.path.join(TMP, "model")
    ts.train(na.SHARED["model"], na.make_data(), "--catalog", na.make_catalog(), "--no-tune")


def main():
    return run_suite(__name__, sys.argv[1:], lambda: (TMP,) if TMP else (),
                     label="event log items e2e")


if __name__ == "__main__":
    sys.exit(main())
