#!/usr/bin/env python3
"""End-to-end tests of the state's journal (serve --merge-after), over real
HTTP.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_journal.py [-v]

Acknowledged events wait in the journal until the writer merges them into
the customers' logs: every answer is the same before and after the merge
(recommendations, profiles, audiences), kill -9 with events still in the
journal loses none, --merge-after 0 writes the logs directly, and bad
values are usage errors. Uses the models and helpers of test_events.py.

The last line printed is "N passed, N failed".
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_events as te  # noqa: E402
from lib import MUG, STOP_TIMEOUT, run, run_suite  # noqa: E402
from test_events import Base, metric, setUpModule, tearDownModule  # noqa: E402,F401

ITEMS = ("eggs", "flour", MUG, "zzz-new")
WAIT = 30.0  # seconds a merge may take to come, at most


# Per answer (rec_id), or moving with the model's clock between two reads.
VARYING = ("rec_id", "recency_days", "intent")


def without_ids(body):
    """An answer without what differs from one answer to the next."""
    if isinstance(body, dict):
        return {k: without_ids(v) for k, v in body.items() if k not in VARYING}
    if isinstance(body, list):
        return [without_ids(v) for v in body]
    return body


class JournalTests(Base):
    def post_mix(self, srv, customers):
        """Views, carts and a purchase for each customer, in a few batches."""
        n = 0
        for c, cust in enumerate(customers):
            batch = [self.ev(cust, ITEMS[(c + i) % len(ITEMS)], ("view", "cart")[i % 2])
                     for i in range(3 + c % 4)]
            if c % 3 == 0:
                batch.append(self.ev(cust, "eggs", "purchase", quantity=2, price=1.5))
            self.assertEqual(self.events(batch, srv)["accepted"], len(batch))
            n += len(batch)
        return n

    def answers(self, srv, customers):
        out = {}
        for cust in customers:
            out[cust] = without_ids([self.profile(cust, srv), self.recs(cust, "?n=5", srv)])
        out["audience"] = without_ids(self.audience_all_pages("cart_abandoners", "", srv)[0])
        return out

    def wait_merged(self, srv, total):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if (metric(srv, "shopkeeper_journal_events") == 0 and
                    metric(srv, "shopkeeper_journal_merged_total") == total):
                return
            time.sleep(0.05)
        self.fail("not merged within %.0f s: %s waiting, %s merged of %d" % (
            WAIT, metric(srv, "shopkeeper_journal_events"),
            metric(srv, "shopkeeper_journal_merged_total"), total))

    def test_answers_the_same_before_and_after_the_merge(self):
        srv = self.fresh(extra=("--merge-after", "1500"))
        customers = ["j%02d" % i for i in range(12)] + ["alice"]  # alice: in the model
        total = self.post_mix(srv, customers)
        before = self.answers(srv, customers)
        waiting = metric(srv, "shopkeeper_journal_events")
        self.assertGreater(waiting, 0)  # read from the journal...
        self.wait_merged(srv, total)
        self.assertEqual(self.answers(srv, customers), before)  # ...and from the logs
        # a second round onto logs that now exist, merged again
        total += self.post_mix(srv, customers[:5])
        before = self.answers(srv, customers)
        self.wait_merged(srv, total)
        self.assertEqual(self.answers(srv, customers), before)
        self.assertEqual(metric(srv, "shopkeeper_state_events_total"), total)

    def test_kill_9_with_events_in_the_journal(self):
        srv = self.fresh(extra=("--merge-after", "600000"))
        customers = ["k%02d" % i for i in range(8)]
        total = self.post_mix(srv, customers)
        self.assertEqual(metric(srv, "shopkeeper_journal_events"), total)
        before = self.answers(srv, customers)
        srv.proc.send_signal(signal.SIGKILL)  # no shutdown, nothing merged
        srv.proc.wait(timeout=STOP_TIMEOUT)
        srv.kill()
        srv = self.fresh()  # merged into the logs at open
        self.assertEqual(metric(srv, "shopkeeper_journal_events"), 0)
        self.assertEqual(self.answers(srv, customers), before)
        self.assertEqual(metric(srv, "shopkeeper_state_events_total"), total)

    def test_erasure_with_events_in_the_journal(self):
        srv = self.fresh(extra=("--merge-after", "600000"))
        self.post_mix(srv, ["gone", "kept"])
        resp = self.call("DELETE", "/v1/customers/gone", srv=srv)
        self.assertEqual(resp.json, {"customer_id": "gone", "erased": True})
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(timeout=STOP_TIMEOUT)
        srv.kill()
        srv = self.fresh()
        self.assertError(self.call("GET", "/v1/customers/gone", srv=srv), 404)
        self.assertEqual(self.profile("kept", srv)["events_since_model"], 4)
        members = self.audience_all_pages("cart_abandoners", "", srv)[0]
        self.assertNotIn("gone", members)

    def test_off_writes_the_logs_directly(self):
        srv = self.fresh(extra=("--merge-after", "0"))
        total = self.post_mix(srv, ["o1", "o2"])
        self.assertEqual(metric(srv, "shopkeeper_journal_events"), 0)
        self.assertEqual(metric(srv, "shopkeeper_journal_merged_total"), 0)
        self.assertEqual(metric(srv, "shopkeeper_state_events_total"), total)
        self.assertEqual(self.profile("o1", srv)["events_since_model"], 4)

    def test_bad_values_are_usage_errors(self):
        for bad in ("-1", "600001", "soon", "1.5", ""):
            p = run(["serve", "--model", te.E["main"], "--state", os.path.join(self.tmp, "x"),
                     "--merge-after", bad])
            self.assertEqual(p.returncode, 2, (bad, p.stderr))
            self.assertIn("--merge-after", p.stderr, bad)


if __name__ == "__main__":
    sys.exit(run_suite(__name__, sys.argv[1:], lambda: [te.E.get("tmp")], "e2e"))
