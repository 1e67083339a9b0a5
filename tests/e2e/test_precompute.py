"""End-to-end: answers from the model's precomputed lists (train --precompute)
are the answers scoring gives, byte for byte.

Two servers on one model, each with its own state: `fast` as deployed (the
lists answer customers without live events), `cold` with --no-precomputed
(every customer scored in full). Both get the same writes (random, seeded,
bounded: events before and after the model's as-of time, consent withdrawn
and given back, erasures, items out of stock and not recommendable and back,
a model switch through POST /admin/reload, a change of day by restarting on
another --clock, experiments reloaded by POST /admin/reload and SIGHUP with
variants whose params, source or model change the answer), and after each
step every customer of the data (and a few unknown ones) is asked for
recommendations under random parameters (n, exclude=, category=, price
bounds, explain=0, include_purchased=1, history_weight=, new_since=) by
both, twice, so that the fast server's live cache (customers with live
events: their list scored on one request, kept for the next) holds a list
of every live customer before each change and answers from it after.
Every answer must be the same bytes (its "experiment" object too), apart
from per-answer ids (rec_id, when answers carry one). /metrics says how
many of the fast server's answers came from a list and from the live
cache, so a fast path that never ran fails too.

    python3 tests/e2e/test_precompute.py [-v]
"""
import datetime
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib as ts  # noqa: E402
from lib import Server, q, run  # noqa: E402

SEED = 17
N_CUSTOMERS = 240
N_ITEMS = 60
CATEGORIES = ["fruit", "bakery", "dairy", "home"]
DAY = 86400
AS_OF = 1717200000  # 2024-06-01 00:00:00 UTC: the newest row
TMP = {"dir": None}


def tmp(*parts):
    return os.path.join(TMP["dir"], *parts)


def write_data(rng):
    """Interactions (skewed popularity, 90 days up to AS_OF, some views,
    carts and returns) and a catalog with categories and prices."""
    items = ["I%03d" % i for i in range(N_ITEMS)]
    weights = [1.0 / (1 + i) ** 0.7 for i in range(N_ITEMS)]
    rows = ["customer_id,item_id,timestamp,event,quantity"]
    for c in range(N_CUSTOMERS):
        cid = "C%04d" % c
        for _ in range(rng.randint(1, 14)):
            item = rng.choices(items, weights)[0]
            t = AS_OF - rng.randint(0, 90 * DAY)
            ev = rng.choices(["purchase", "view", "cart"], [6, 3, 1])[0]
            qty = rng.choice([1, 1, 1, 2, -1]) if ev == "purchase" else 1
            rows.append("%s,%s,%d,%s,%d" % (cid, item, t, ev, qty))
    rows.append("C0000,I000,%d,purchase,1" % AS_OF)  # pins as_of
    with open(tmp("interactions.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    with open(tmp("catalog.csv"), "w") as f:
        f.write("item_id,title,category,price\n")
        for i, it in enumerate(items):
            f.write("%s,Item %d,%s,%.2f\n" % (it, i, CATEGORIES[i % 4], 1 + (i * 37 % 50) / 4))
    return items


def train_model(out, *extra):
    p = run(["train", "--interactions", tmp("interactions.csv"), "--catalog",
             tmp("catalog.csv"), "--out", out, "--quiet", "--no-tune"] + list(extra))
    if p.returncode != 0:
        raise AssertionError("train failed (%d): %s" % (p.returncode, p.stderr))


REC_ID = re.compile(rb'"rec_id":"[^"]*",?')


def normalise(body):
    """Drops per-answer ids: the rest must be the same bytes."""
    return REC_ID.sub(b"", body)


def counter(srv, name):
    """The value of counter `name` in srv's /metrics (fails when missing)."""
    body = srv.get("/metrics").body.decode()
    m = re.search(r"^%s (\d+)$" % re.escape(name), body, re.M)
    if not m:
        raise AssertionError("no %s in /metrics" % name)
    return int(m.group(1))


def precomputed_total(srv):
    return counter(srv, "shopkeeper_recommendations_precomputed_total")


def topped_up_total(srv):
    return counter(srv, "shopkeeper_recommendations_precomputed_topped_up_total")


def live_cached_total(srv):
    return counter(srv, "shopkeeper_recommendations_live_cached_total")


def write_experiments(path, experiments):
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"experiments": experiments}, f)


def home_recs(salt, variants):
    """One experiment on the customer route."""
    return [{"name": "home-recs", "salt": salt, "routes": ["customer"], "variants": variants}]


class PrecomputedAnswers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        TMP["dir"] = tempfile.mkdtemp(prefix="shopkeeper-precompute-")
        cls.rng = random.Random(SEED)
        cls.items = write_data(cls.rng)
        cls.customers = ["C%04d" % c for c in range(N_CUSTOMERS)] + ["nobody", "C9999"]
        cls.model = tmp("model")
        cls.experiments = tmp("experiments.json")
        write_experiments(cls.experiments, [])
        # EASE with negative weights kept: every part of scoring counts.
        train_model(cls.model, "--negatives", "5", "--half-life", "30")
        cls.fast = cls.cold = None
        cls.live_cached = 0
        cls.start("model")

    @classmethod
    def start(cls, clock, states="state"):
        for s in (cls.fast, cls.cold):
            if s:
                ts.stop_shared(s)
        # No idle expiry: on the wall clock it would drop the events of
        # customers who never bought at a moment of each server's own.
        common = ["--clock", clock, "--live-customer-ttl", "0",
                  "--experiments", cls.experiments]
        cls.fast = Server(cls.model, tmp(states + "-fast"), extra=common)
        cls.cold = Server(cls.model, tmp(states + "-cold"),
                          extra=common + ["--no-precomputed"])

    @classmethod
    def tearDownClass(cls):
        try:
            for s in (cls.fast, cls.cold):
                if s:
                    ts.stop_shared(s)
        finally:
            shutil.rmtree(TMP["dir"], ignore_errors=True)

    # -- writes, the same to both servers ---------------------------------
    def both(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        out = []
        for s in (self.fast, self.cold):
            r = s.request(method, path, data, ts.JSON_HEADERS if data else None)
            # 404: an erased customer's consent
            self.assertIn(r.status, (200, 201, 202, 204, 404), (method, path, body, r))
            out.append(r)
        self.assertEqual(out[0].status, out[1].status, (method, path))
        return out

    def random_events(self, k):
        """k events of random customers: some older than the model (already in
        its history as far as scoring goes), most newer."""
        evs = []
        for _ in range(k):
            t = AS_OF + self.rng.randint(1, 3600) if self.rng.random() < 0.8 \
                else AS_OF - self.rng.randint(0, 30 * DAY)
            evs.append({"customer_id": self.rng.choice(self.customers[:N_CUSTOMERS]),
                        "item_id": self.rng.choice(self.items),
                        "event": self.rng.choice(["view", "cart", "purchase",
                                                  "remove_from_cart"]),
                        "timestamp": t})
        self.both("POST", "/v1/events", evs)

    def random_items(self):
        for item in self.rng.sample(self.items[:20], 4):  # the popular ones matter most
            self.both("PUT", "/v1/items/%s" % q(item),
                      self.rng.choice([{"available": False}, {"recommendable": False},
                                       {"available": True, "recommendable": True}]))

    def random_consent(self):
        for cid in self.rng.sample(self.customers[:N_CUSTOMERS], 6):
            self.both("PUT", "/v1/customers/%s/consent" % q(cid),
                      {"personalization": self.rng.random() < 0.4})
        self.both("DELETE", "/v1/customers/%s" % q(self.rng.choice(self.customers[:N_CUSTOMERS])))

    def random_writes(self):
        self.random_events(self.rng.randint(5, 25))
        self.random_consent()
        self.random_items()

    # -- reads, compared ----------------------------------------------------
    def random_query(self):
        params = []
        r = self.rng.random()
        if r < 0.5:
            params.append("n=%d" % self.rng.choice([1, 3, 5, 10, 10, 20]))
        if self.rng.random() < 0.2:
            params.append("exclude=" + ",".join(q(i) for i in self.rng.sample(self.items[:15], 3)))
        if self.rng.random() < 0.1:
            params.append("category=" + self.rng.choice(CATEGORIES))
        if self.rng.random() < 0.1:
            params.append("max_price=%d" % self.rng.randint(3, 12))
        if self.rng.random() < 0.1:
            params.append("min_price=%d" % self.rng.randint(2, 8))
        if self.rng.random() < 0.15:
            params.append("explain=0")
        if self.rng.random() < 0.05:
            params.append("include_purchased=1")
        if self.rng.random() < 0.1:  # lists scored under another weight must not answer
            params.append("history_weight=" + self.rng.choice(["sqrt", "binary", "recent", "log"]))
        if self.rng.random() < 0.05:
            params.append("new_since=" + self.rng.choice(["2024-03-01", "2024-03-04"]))
        return "?" + "&".join(params) if params else ""

    def compare_all(self, what, variants=None):
        """Asks every customer of both servers, twice (the second time the
        fast server's live cache answers for the live customers the first
        left a list of); with `variants` (a dict), counts the answers per
        experiment variant in it. Returns the fast server's answers from
        precomputed lists, and adds its answers from the live cache to
        self.live_cached."""
        before = precomputed_total(self.fast)
        cached = live_cached_total(self.fast)
        cf, cc = self.fast.connection(), self.cold.connection()
        try:
            for cid in self.customers:
                for _ in range(2):
                    path = "/v1/customers/%s/recommendations%s" % (q(cid), self.random_query())
                    a = self.fast.get(path, conn=cf)
                    b = self.cold.get(path, conn=cc)
                    self.assertEqual(a.status, b.status, (what, path, a, b))
                    self.assertEqual(normalise(a.body), normalise(b.body), (what, path))
                    if variants is not None and a.status == 200:
                        exp = json.loads(a.body).get("experiment")
                        key = exp["variant"] if exp else None
                        variants[key] = variants.get(key, 0) + 1
        finally:
            cf.close()
            cc.close()
        used = precomputed_total(self.fast) - before
        self.assertEqual(precomputed_total(self.cold), 0)
        self.assertEqual(live_cached_total(self.cold), 0)
        type(self).live_cached += live_cached_total(self.fast) - cached
        return used

    def test_answers_are_the_same_bytes(self):
        type(self).live_cached = 0
        used = self.compare_all("fresh")
        # Without writes most customers are answered from their list, some
        # from a complete list topped up with popular items.
        self.assertGreater(used, N_CUSTOMERS // 2, "the fast path answered %d" % used)
        self.assertGreater(topped_up_total(self.fast), 0)
        self.assertEqual(topped_up_total(self.cold), 0)
        # Each kind of write alone, so that each check of the live cache
        # is what stands between a kept list and a wrong answer: events
        # (the record's bytes), item overrides (their generation), consent
        # and erasure (decided before any list).
        for step in range(3):
            self.random_events(self.rng.randint(20, 60))
            used += self.compare_all("after events %d" % step)
            self.random_items()
            used += self.compare_all("after item overrides %d" % step)
            self.random_consent()
            used += self.compare_all("after consent and erasure %d" % step)
        for step in range(2):
            self.random_writes()
            used += self.compare_all("after writes %d" % step)
        self.assertGreater(self.live_cached, N_CUSTOMERS // 4,
                           "the live cache answered %d" % self.live_cached)
        # A model switch: another model (cosine, other decay) in place, reloaded.
        train_model(self.model, "--algo", "cosine", "--half-life", "14")
        self.both("POST", "/admin/reload")
        used += self.compare_all("after the model switch")
        self.random_writes()
        used += self.compare_all("after writes on the new model")
        # A change of day: the same state on the wall clock (years after the
        # data): segments change, scores of customers without live events
        # must not.
        type(self).start("wall")
        used += self.compare_all("on the wall clock")
        self.random_writes()
        used += self.compare_all("after writes on the wall clock")
        self.assertGreater(used, N_CUSTOMERS, "the fast path answered %d in all" % used)

    def reload_experiments(self, experiments):
        """Writes the experiments file and reloads it: the fast server by
        POST /admin/reload, the cold one by SIGHUP (waited for: its
        GET /v1/experiments lists the new file)."""
        write_experiments(self.experiments, experiments)
        self.assertEqual(self.fast.request("POST", "/admin/reload").status, 200,
                         self.fast.stderr())
        want = self.fast.get("/v1/experiments").json
        self.assertEqual([e["name"] for e in want["experiments"]],
                         [e["name"] for e in experiments])
        self.cold.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20 * ts.FACTOR
        while self.cold.get("/v1/experiments").json != want:
            self.assertLess(time.monotonic(), deadline, self.cold.stderr())
            time.sleep(0.05)

    def test_experiment_reloads(self):
        """Experiments reloaded (POST /admin/reload, SIGHUP) with variants
        whose serve-time params, source or own model change the answer: a
        list scored under other parameters, or a list of the file before,
        must never answer."""
        type(self).live_cached = 0
        # States of their own, on the model's clock: most customers
        # without live events, so the lists are there to be misused.
        type(self).start("model", "state-exp")
        other = tmp("model-exp")
        train_model(other, "--algo", "jaccard", "--half-life", "10")
        first = home_recs("p1", [
            {"name": "control", "share": 0.25},
            {"name": "few-neighbours", "share": 0.15, "params": {"neighbors_used": 2}},
            {"name": "no-cutoff", "share": 0.1, "params": {"cutoff": 0}},
            {"name": "steep-cutoff", "share": 0.1, "params": {"cutoff": 0.6}},
            {"name": "short", "share": 0.1, "params": {"n": 3, "explain": False}},
            {"name": "purchased", "share": 0.05, "params": {"include_purchased": True}},
            {"name": "popular", "share": 0.1, "source": "popular"},
            {"name": "jaccard", "share": 0.15, "model": other}])
        self.reload_experiments(first)
        seen = {}
        used = self.compare_all("experiments loaded", seen)
        for step in range(2):
            self.random_writes()
            used += self.compare_all("experiments, after writes %d" % step, seen)
        self.assertEqual(set(seen), {v["name"] for v in first[0]["variants"]}, seen)
        # The same customers, other params: each variant changes what it
        # asks of the lists (the salt kept, so nobody moves).
        second = home_recs("p1", [
            {"name": "control", "share": 0.25, "params": {"neighbors_used": 5}},
            {"name": "few-neighbours", "share": 0.15},
            {"name": "no-cutoff", "share": 0.1, "params": {"cutoff": 0.3}},
            {"name": "steep-cutoff", "share": 0.1, "model": other},
            {"name": "short", "share": 0.1, "params": {"n": 7, "min_price": 4}},
            {"name": "purchased", "share": 0.05, "source": "none"},
            {"name": "popular", "share": 0.1, "params": {"cutoff": 0.05}},
            {"name": "jaccard", "share": 0.15, "params": {"neighbors_used": 1000}}])
        self.reload_experiments(second)
        used += self.compare_all("experiments changed")
        # The variant's model retrained in place, reloaded with the file.
        train_model(other, "--algo", "cosine", "--negatives", "5")
        self.reload_experiments(second)
        used += self.compare_all("the variant's model switched")
        self.random_writes()
        used += self.compare_all("after writes, variant model switched")
        # A new salt (everyone reshuffled), then no experiments at all.
        self.reload_experiments(home_recs("p2", second[0]["variants"]))
        used += self.compare_all("experiments reshuffled")
        self.reload_experiments([])
        used += self.compare_all("experiments ended")
        self.assertGreater(self.live_cached, 0, "the live cache never answered")
        self.assertGreater(used, N_CUSTOMERS // 2, "the fast path answered %d in all" % used)

    def test_content_items_in_lists(self):
        """Hybrid scoring's content items (new arrivals nobody has bought,
        placed by their titles) are in the lists: every model customer
        without live events is answered from their list, content items and
        all, the same bytes as scoring."""
        catalog = tmp("catalog-arrivals.csv")
        shutil.copyfile(tmp("catalog.csv"), catalog)
        with open(catalog, "a") as f:
            for i in range(N_ITEMS):
                f.write("N%03d,Item %d,%s,%.2f\n" % (i, i, CATEGORIES[i % 4], 1 + i % 7))
        d = tmp("model-arrivals")
        p = run(["train", "--interactions", tmp("interactions.csv"), "--catalog", catalog,
                 "--out", d, "--quiet", "--no-tune", "--negatives", "5"])
        self.assertEqual(p.returncode, 0, p.stderr)
        fast = Server(d, tmp("state-arrivals-fast"))
        cold = Server(d, tmp("state-arrivals-cold"), extra=["--no-precomputed"])
        content = asked = 0
        try:
            for cid in self.customers[:N_CUSTOMERS]:
                for query in ("", "?n=20", "?n=3&explain=0", "?category=dairy"):
                    path = "/v1/customers/%s/recommendations%s" % (q(cid), query)
                    a, b = fast.get(path), cold.get(path)
                    self.assertEqual(a.status, 200, (path, a))
                    self.assertEqual(normalise(a.body), normalise(b.body), path)
                    sources = [it["source"] for it in json.loads(a.body)["items"]]
                    # A content item with a scored one after it: where a
                    # list of the personal items alone stopped.
                    content += "content" in sources[:-1] and sources[-1] != "popular"
                    asked += query != "?category=dairy"
            self.assertGreater(content, N_CUSTOMERS // 10, "content items inside %d answers" % content)
            # The filter may leave fewer than n of a full list: scored.
            self.assertGreaterEqual(precomputed_total(fast), asked)
            self.assertEqual(precomputed_total(cold), 0)
        finally:
            ts.stop_shared(fast)
            ts.stop_shared(cold)

    def test_older_model_without_lists(self):
        """A model trained with --precompute 0 has no lists: served by scoring
        (the fast server's counter stays still), the same answers."""
        d = tmp("model0")
        train_model(d, "--precompute", "0")
        s = Server(d, tmp("state-0"))
        try:
            for cid in self.customers[:20]:
                s.get("/v1/customers/%s/recommendations" % q(cid))
            self.assertEqual(precomputed_total(s), 0)
        finally:
            ts.stop_shared(s)

    def test_flag_checked(self):
        p = run(["train", "--interactions", tmp("interactions.csv"), "--out", tmp("bad"),
                 "--precompute", "101"])
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--precompute", p.stderr)
        self.assertIn("--precompute", run(["train", "--help"]).stdout)
        self.assertIn("--no-precomputed", run(["serve", "--help"]).stdout)


if __name__ == "__main__":
    sys.exit(ts.run_suite(__name__, sys.argv[1:]))
