#!/usr/bin/env python3
"""End-to-end tests of replicas sharing one live state through the Redis
event log (issue 13), with real redis-server and shopkeeper processes on
loopback.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_event_log.py [-v] [TestClass[.test]]

Each test starts its own redis-server (appendonly yes, appendfsync always,
on a free port, files in a temporary directory) and two or three
`shopkeeper serve --event-log redis://...` replicas on the same stream:

- writes through one replica are read through the others once the lag is
  zero: cart_abandoners, a segment audience paged to the end, /v1/segments;
- a replica killed with kill -9 under event load, its state directory
  deleted and restarted, catches up and answers byte-identically to another
  for every customer (profile, recommendations, audiences);
- after DELETE /v1/customers/{id} no event of the customer is left in any
  replica's state or in the stream (an XRANGE scan of the whole stream);
- Redis down: writes answer 503 event_log_unavailable, reads are served, a
  new replica is not ready, and once Redis is back writes succeed without
  restarting anything;
- a lost entry (an acknowledged-and-applied entry that the Redis restarted
  from an older append-only file no longer holds, as after a failover to a
  replica that had not received it) makes every replica rebuild its state
  from the model and the log, and they agree again;
- PUT /v1/items/{id} through one replica reaches every replica's state and
  model in use, and a replica bootstrapped after the stream was trimmed
  still has it (the compacted item overrides); events from the log naming
  items the model does not know are counted on every replica;
- a model switch drops the events the new model covers
  (train --event-log-position): a replica that lived through it answers as
  one bootstrapped from the new model;
- the idle sweep (--live-customer-ttl) goes through the log as expire
  records: a replica that was down while another expired a customer, who
  then came back, holds exactly what the other holds (the same logs and
  counters, dumped from both states), and an erasure removes the expire
  records of its customer from the stream too.

Without redis-server the suite fails loudly (CI installs it). The last
line printed is "N passed, N failed".
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (FACTOR, INTERACTIONS, ApiTestCase, Server, run, run_suite,  # noqa: E402
                 train, q)

TMP = None
CONVERGE_TIMEOUT = 20 * FACTOR  # seconds for replicas to reach zero lag
REDIS_START_TIMEOUT = 10


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------
# Redis: a process and a tiny RESP client (binary-safe, unlike redis-cli's
# text output of the records)
# ---------------------------------------------------------------------------
class Redis:
    def __init__(self, dirname, port=None):
        self.dir = dirname
        self.port = port or free_port()
        self.proc = None
        os.makedirs(dirname, exist_ok=True)
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir,
             "--logfile", os.path.join(self.dir, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if self.cmd("PING") == "PONG":
                    return
            except OSError:
                pass
            except AssertionError as e:  # LOADING the append-only file
                if "LOADING" not in str(e):
                    raise
            time.sleep(0.05)
        raise AssertionError("redis-server did not come up on %d" % self.port)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def cmd(self, *args):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return self._read(f)
        finally:
            s.close()

    def _read(self, f):
        line = f.readline()
        if not line:
            raise OSError("connection closed")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise AssertionError("redis: " + rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = f.read(n + 2)
            return data[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read(f) for _ in range(n)]
        raise AssertionError("redis: unexpected reply %r" % line)

    def entries(self, stream="shopkeeper:events"):
        """Every entry of the stream: [(id, record bytes)], by XRANGE pages."""
        out, start = [], "-"
        while True:
            page = self.cmd("XRANGE", stream, start, "+", "COUNT", 1000)
            for eid, fields in page:
                out.append((eid.decode(), dict(zip(fields[::2], fields[1::2]))[b"r"]))
            if len(page) < 1000:
                return out
            start = "(" + page[-1][0].decode()


def record_customer(rec):
    """(kind, customer) of an encoded record (docs/event-log.md's format);
    customer None for an item record (kind 4)."""
    kind = rec[1]
    if kind == 4:
        return kind, None
    at = {1: 4, 2: 3, 3: 2, 5: 2}[kind]
    n = rec[at]
    if n & 0x80:
        n = (n & 0x7F) | (rec[at + 1] << 7)
        at += 2
    else:
        at += 1
    return kind, rec[at:at + n].decode()


# ---------------------------------------------------------------------------
# Replicas
# ---------------------------------------------------------------------------
def replica(model_dir, state_dir, redis, extra=()):
    return Server(model_dir, state_dir, threads=2,
                  extra=["--event-log", redis.url, "--max-lag", "5"] + list(extra))


def metric(srv, name):
    text = srv.get("/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def id_tuple(eid):
    ms, seq = eid.split("-")
    return int(ms), int(seq)


def wait_converged(test, servers, redis, timeout=CONVERGE_TIMEOUT):
    """Waits until every server is ready and its state's position (/readyz)
    is at the stream's last entry or after it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        tail = redis.cmd("XREVRANGE", "shopkeeper:events", "+", "-", "COUNT", 1)
        tail_id = id_tuple(tail[0][0].decode()) if tail else (0, 0)
        ok = True
        for s in servers:
            r = s.get("/readyz")
            last = (s.port, r.status, r.body[:300])
            if r.status != 200 or id_tuple(r.json["event_log"]["position"]) < tail_id:
                ok = False
                break
        if ok:
            return
        time.sleep(0.05)
    test.fail("replicas did not converge within %.0fs: %r" % (timeout, last))


def post_events(srv, events):
    return srv.request("POST", "/v1/events", json.dumps(events).encode(),
                       {"Content-Type": "application/json"})


def retry_post(srv, events, timeout=10 * FACTOR):
    """post_events until it is not a 503 (Redis coming back), bounded."""
    deadline = time.monotonic() + timeout
    while True:
        r = post_events(srv, events)
        if r.status != 503 or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def customers_of(srv):
    """Every customer an audience of `all` lists, paged to the end."""
    ids, cursor = [], None
    for _ in range(1000):
        path = "/v1/audiences/all?limit=100&n=3" + ("&cursor=" + cursor if cursor else "")
        r = srv.get(path)
        assert r.status == 200, r
        body = r.json
        ids += [c["customer_id"] for c in body["customers"]]
        cursor = body.get("next_cursor")
        if not cursor:
            return ids
    raise AssertionError("audience paging did not end")


def audience_pages(srv, name, limit=3):
    """Every page of an audience, as bodies without the clock's fields."""
    pages, cursor = [], None
    for _ in range(1000):
        path = "/v1/audiences/%s?limit=%d&n=3" % (name, limit)
        if cursor:
            path += "&cursor=" + cursor
        r = srv.get(path)
        assert r.status == 200, r
        body = r.json
        pages.append(strip_volatile(body))
        cursor = body.get("next_cursor")
        if not cursor:
            return pages
    raise AssertionError("audience paging did not end")


VOLATILE = {"at", "rec_id"}


def strip_volatile(x):
    """An answer without the per-answer fields (its time, a recommendation id)."""
    if isinstance(x, dict):
        return {k: strip_volatile(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [strip_volatile(v) for v in x]
    return x


def answers(srv, ids):
    """Everything a replica answers about these customers and the audiences."""
    out = {}
    for cid in ids:
        for path in ("/v1/customers/%s" % q(cid),
                     "/v1/customers/%s/recommendations?n=5&explain=1" % q(cid)):
            r = srv.get(path)
            out[path] = (r.status, strip_volatile(json.loads(r.body)))
    for name in ("cart_abandoners", "browsed_not_bought", "all", "champions"):
        out[name] = audience_pages(srv, name, limit=7)
    seg = srv.get("/v1/segments")
    out["segments"] = strip_volatile(seg.json)
    return out


class EventLogCase(ApiTestCase):
    """A redis-server and a model per test; replicas started by the test."""

    def setUp(self):
        if not shutil.which("redis-server"):
            self.fail("redis-server is not installed (apt-get install redis-server): "
                      "the event log tests cannot run")
        self.dir = tempfile.mkdtemp(prefix="sk-evlog-", dir=TMP)
        self.redis = Redis(os.path.join(self.dir, "redis"))
        self.addCleanup(self.redis.kill)
        self.model = os.path.join(self.dir, "model")
        train(self.model)
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.kill()

    def start(self, name, model=None, extra=()):
        s = replica(model or self.model, os.path.join(self.dir, name), self.redis, extra)
        self.servers.append(s)
        return s

    def assertSameAnswers(self, a, b, ids):
        """a and b answer alike for ids; clocks move between two requests, so a
        difference is asked again a few times before it counts."""
        for attempt in range(5):
            got_a, got_b = answers(a, ids), answers(b, ids)
            if got_a == got_b:
                return got_a
            time.sleep(0.2)
        # A whole pass takes over a second on a loaded machine, so figures
        # relative to now (recency_days, intent) can differ by the time
        # between the two passes: ask what differs of both back to back.
        def one(srv, k):
            if k.startswith("/"):
                r = srv.get(k)
                return (r.status, strip_volatile(json.loads(r.body)))
            if k == "segments":
                return strip_volatile(srv.get("/v1/segments").json)
            return audience_pages(srv, k, limit=7)

        for k in [k for k in got_a if got_a[k] != got_b.get(k)]:
            for attempt in range(10):
                pa, pb = one(a, k), one(b, k)
                if pa == pb:
                    got_a[k] = got_b[k] = pa
                    break
        for k in got_a:
            self.assertEqual(got_a[k], got_b.get(k), k)
        self.assertEqual(got_a, got_b)
        return got_a


class TestSharedState(EventLogCase):
    def test_writes_through_one_replica_are_read_through_all(self):
        a, b, c = self.start("a"), self.start("b"), self.start("c")
        reps = [a, b, c]
        wait_converged(self, reps, self.redis)
        # 30 customers carting through the replicas in turn (round robin).
        for i in range(30):
            r = post_events(reps[i % 3], {"customer_id": "cart%02d" % i, "item_id": "apple",
                                          "event": "cart"})
            self.assertEqual(r.status, 200, r)
        # Read your writes: the replica that took it answers with it at once.
        r = a.get("/v1/customers/cart00")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["events_since_model"], 1, r.json)
        r = post_events(b, [{"customer_id": "alice", "item_id": "dates", "event": "view"}])
        self.assertEqual(r.status, 200, r)
        r = c.request("PUT", "/v1/customers/cart05/consent",
                      json.dumps({"personalization": False}).encode(),
                      {"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        wait_converged(self, reps, self.redis)

        abandoners = [sorted(x["customer_id"] for x in
                             s.get("/v1/audiences/cart_abandoners?limit=100").json["customers"])
                      for s in reps]
        self.assertEqual(len(abandoners[0]), 29, abandoners[0])  # cart05 withdrew consent
        self.assertEqual(abandoners[0], abandoners[1])
        self.assertEqual(abandoners[0], abandoners[2])
        pages = [audience_pages(s, "all", limit=2) for s in reps]
        self.assertGreater(len(pages[0]), 5)  # paged to the end over many pages
        self.assertEqual(pages[0], pages[1])
        self.assertEqual(pages[0], pages[2])
        segs = [strip_volatile(s.get("/v1/segments").json) for s in reps]
        self.assertEqual(segs[0], segs[1])
        self.assertEqual(segs[0], segs[2])
        for s in reps:
            self.assertEqual(s.get("/v1/customers/cart05").json["consent"],
                             {"personalization": False})
            self.assertGreaterEqual(metric(s, "shopkeeper_event_log_applied_total"), 32)
            self.assertEqual(metric(s, "shopkeeper_event_log_lag_seconds"), 0)

    def test_killed_replica_with_lost_state_catches_up(self):
        a, b, c = self.start("a"), self.start("b"), self.start("c")
        wait_converged(self, [a, b, c], self.redis)
        stop = threading.Event()
        acked = []
        errors = []

        def load(srv, tag):
            i = 0
            while not stop.is_set() and i < 2000:
                batch = [{"customer_id": "%s%03d" % (tag, (i + k) % 40), "item_id": item,
                          "event": ev}
                         for k, (item, ev) in enumerate([("apple", "view"), ("bread", "cart"),
                                                         ("cheese", "purchase")])]
                try:
                    r = post_events(srv, batch)
                    if r.status == 200:
                        acked.append(len(batch))
                    else:
                        errors.append(r)
                except OSError as e:
                    errors.append(e)
                i += 1

        threads = [threading.Thread(target=load, args=(a, "la")),
                   threading.Thread(target=load, args=(b, "lb"))]
        for t in threads:
            t.start()
        time.sleep(0.5)
        c.kill()  # kill -9 under load
        shutil.rmtree(c.state_dir)
        time.sleep(0.3)
        c2 = self.start("c")  # the same (now empty) state directory
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        self.assertEqual(errors, [])
        self.assertGreater(len(acked), 0)
        # Mixed in: an erasure, applied by all.
        self.assertEqual(a.request("DELETE", "/v1/customers/la001").status, 200)
        wait_converged(self, [a, b, c2], self.redis)
        self.assertEqual(metric(c2, "shopkeeper_event_log_rebuilds_total"), 1)  # bootstrap
        ids = sorted(set(customers_of(a)) | {"%s%03d" % (t, i) for t in ("la", "lb")
                                             for i in range(40)} | {"nobody"})
        self.assertEqual(sorted(customers_of(c2)), sorted(customers_of(a)))
        self.assertGreater(len(ids), 90)
        got = self.assertSameAnswers(a, c2, ids)
        self.assertEqual(got["/v1/customers/la001"][0], 404)

    def test_erasure_leaves_no_event_in_any_state_or_the_stream(self):
        a, b = self.start("a"), self.start("b")
        wait_converged(self, [a, b], self.redis)
        for srv in (a, b):
            r = post_events(srv, [{"customer_id": "gone", "item_id": "apple", "event": "cart"},
                                  {"customer_id": "kept", "item_id": "apple", "event": "cart"},
                                  {"customer_id": "gone", "item_id": "bread", "event": "view"}])
            self.assertEqual(r.status, 200, r)
        r = b.request("PUT", "/v1/customers/gone/consent",
                      json.dumps({"personalization": True}).encode(),
                      {"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        before = [record_customer(rec) for _, rec in self.redis.entries()]
        self.assertEqual(sum(1 for k, who in before if who == "gone"), 5, before)
        r = a.request("DELETE", "/v1/customers/gone")
        self.assertEqual(r.status, 200, r)
        wait_converged(self, [a, b], self.redis)
        after = [record_customer(rec) for _, rec in self.redis.entries()]
        self.assertEqual([k for k, who in after if who == "gone"], [3], after)  # the erasure
        self.assertEqual(sum(1 for k, who in after if who == "kept"), 2, after)
        for srv in (a, b):
            self.assertEqual(srv.get("/v1/customers/gone").status, 404)
            members = [x["customer_id"] for x in
                       srv.get("/v1/audiences/cart_abandoners?limit=100").json["customers"]]
            self.assertNotIn("gone", members)
            self.assertIn("kept", members)
            with open(os.path.join(srv.state_dir, "erasures.txt")) as f:
                self.assertIn("gone", f.read().split())
            if shutil.which("mdb_dump"):
                for table in ("event_tails", "event_chunks"):
                    p = subprocess.run(["mdb_dump", "-n", "-p", "-s", table,
                                        os.path.join(srv.state_dir, "state.mdb")],
                                       capture_output=True, text=True, timeout=30)
                    self.assertEqual(p.returncode, 0, p.stderr)
                    self.assertNotIn(" gone\n", p.stdout)
                    if table == "event_tails":
                        self.assertIn(" kept\n", p.stdout)


class TestRedisDown(EventLogCase):
    def test_writes_503_reads_served_and_recovery_without_restart(self):
        a = self.start("a")
        wait_converged(self, [a], self.redis)
        r = post_events(a, {"customer_id": "zed", "item_id": "apple", "event": "cart"})
        self.assertEqual(r.status, 200, r)
        self.redis.kill()
        r = post_events(a, {"customer_id": "zed", "item_id": "bread", "event": "cart"})
        self.assertError(r, 503, "event_log_unavailable")
        for path in ("/v1/customers/zed", "/v1/customers/zed/recommendations",
                     "/v1/audiences/cart_abandoners", "/v1/segments"):
            self.assertEqual(a.get(path).status, 200, path)
        self.assertEqual(a.get("/v1/customers/zed").json["events_since_model"], 1)
        r = a.request("DELETE", "/v1/customers/zed")
        self.assertError(r, 503, "event_log_unavailable")
        self.assertEqual(a.get("/readyz").status, 200)  # its state is as good as it was
        # A new replica cannot bootstrap: not ready, with the reason.
        fresh = self.start("fresh")
        r = fresh.get("/readyz")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json["reason"], "bootstrap", r.json)
        self.assertGreaterEqual(metric(a, "shopkeeper_event_log_unavailable_total"), 2)

        self.redis.start()  # the same port and files
        r = retry_post(a, {"customer_id": "zed", "item_id": "bread", "event": "cart"})
        self.assertEqual(r.status, 200, r)
        wait_converged(self, [a, fresh], self.redis)
        self.assertEqual(fresh.get("/v1/customers/zed").json["events_since_model"], 2)
        self.assertSameAnswers(a, fresh, ["zed", "alice"])


class TestLostEntry(EventLogCase):
    def test_replicas_rebuild_when_their_last_entry_is_lost(self):
        a, b = self.start("a"), self.start("b")
        wait_converged(self, [a, b], self.redis)
        r = post_events(a, [{"customer_id": "kept", "item_id": "apple", "event": "cart"}])
        self.assertEqual(r.status, 200, r)
        r = b.request("PUT", "/v1/customers/kept/consent",
                      json.dumps({"personalization": False}).encode(),
                      {"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        wait_converged(self, [a, b], self.redis)
        # What a Redis replica had received when the primary died...
        snap = os.path.join(self.dir, "snapshot")
        shutil.copytree(os.path.join(self.redis.dir, "appendonlydir"), snap)
        # ...and what only the primary got, applied by both replicas.
        r = post_events(b, [{"customer_id": "lost", "item_id": "bread", "event": "cart"},
                            {"customer_id": "kept", "item_id": "dates", "event": "view"}])
        self.assertEqual(r.status, 200, r)
        wait_converged(self, [a, b], self.redis)
        for srv in (a, b):
            self.assertEqual(srv.get("/v1/customers/lost").status, 200)
        # The "failover": the data comes back without the last entries.
        self.redis.kill()
        shutil.rmtree(os.path.join(self.redis.dir, "appendonlydir"))
        shutil.copytree(snap, os.path.join(self.redis.dir, "appendonlydir"))
        self.redis.start()
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        while time.monotonic() < deadline:
            if all(metric(s, "shopkeeper_event_log_rebuilds_total{reason=\"rebuild\"}") == 1
                   for s in (a, b)):
                break
            time.sleep(0.1)
        for srv in (a, b):
            self.assertEqual(
                metric(srv, "shopkeeper_event_log_rebuilds_total{reason=\"rebuild\"}"), 1,
                srv.stderr())
            self.assertIn("rebuilding the state", srv.stderr())
        wait_converged(self, [a, b], self.redis)
        fresh = self.start("fresh")
        wait_converged(self, [a, b, fresh], self.redis)
        for srv in (a, b, fresh):
            self.assertEqual(srv.get("/v1/customers/lost").status, 404)
            prof = srv.get("/v1/customers/kept").json
            self.assertEqual(prof["events_since_model"], 1, prof)
            self.assertEqual(prof["consent"], {"personalization": False})
        ids = ["kept", "lost", "alice", "bob"]
        self.assertSameAnswers(a, fresh, ids)
        self.assertSameAnswers(b, fresh, ids)
        # And writing goes on (the writer's connection died with that Redis:
        # its first append may answer 503, as any write during an outage).
        r = retry_post(a, [{"customer_id": "after", "item_id": "apple", "event": "cart"}])
        self.assertEqual(r.status, 200, r)


def put_item(srv, item, body):
    return srv.request("PUT", "/v1/items/%s" % q(item), json.dumps(body).encode(),
                       {"Content-Type": "application/json"})


def popular(srv, n=50):
    r = srv.get("/v1/customers/nobody/recommendations?n=%d" % n)
    assert r.status == 200, r
    return [x["item_id"] for x in r.json["items"]]


def trim_everything(redis, stream="shopkeeper:events"):
    """What eventlog_trim does up to after the newest entry: records the trim
    point, then XTRIM MINID (the erasure index is left alone: not read
    here)."""
    tail = redis.cmd("XREVRANGE", stream, "+", "-", "COUNT", 1)
    ms, seq = id_tuple(tail[0][0].decode())
    minid = "%d-%d" % (ms, seq + 1)
    redis.cmd("SET", stream + ":trimmed", minid)
    redis.cmd("XTRIM", stream, "MINID", minid)
    assert redis.cmd("XLEN", stream) == 0


class TestItemOverrides(EventLogCase):
    def test_put_item_through_one_replica_reaches_all_and_survives_a_trim(self):
        a, b = self.start("a"), self.start("b")
        wait_converged(self, [a, b], self.redis)
        items = popular(b)
        self.assertGreaterEqual(len(items), 3, items)
        gone, back = items[0], items[1]
        r = put_item(a, gone, {"available": False})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["available"], False, r.json)
        # set, then cleared again: nothing of it may remain anywhere
        self.assertEqual(put_item(b, back, {"recommendable": False}).status, 200)
        self.assertEqual(put_item(a, back, {"recommendable": True}).status, 200)
        # read your writes on the replica that took it
        self.assertNotIn(gone, popular(a))
        wait_converged(self, [a, b], self.redis)
        for s in (a, b):
            self.assertNotIn(gone, popular(s), s.port)
            self.assertIn(back, popular(s), s.port)
        self.assertEqual(self.redis.cmd("HKEYS", "shopkeeper:events:items"),
                         [gone.encode()])

        # A replica bootstrapped from a stream with no item record left.
        trim_everything(self.redis)
        c = self.start("c")
        wait_converged(self, [a, b, c], self.redis)
        self.assertNotIn(gone, popular(c))
        self.assertIn(back, popular(c))
        self.assertEqual(popular(a), popular(c))
        # and it comes back everywhere
        self.assertEqual(put_item(c, gone, {"available": True}).status, 200)
        wait_converged(self, [a, b, c], self.redis)
        for s in (a, b, c):
            self.assertIn(gone, popular(s), s.port)
        self.assertEqual(self.redis.cmd("HLEN", "shopkeeper:events:items"), 0)

    def test_a_single_node_override_does_not_outlive_the_bootstrap(self):
        # A state written by a single node: its override was never in the log,
        # and the bootstrap empties the state, so no replica may keep it.
        single = Server(self.model, os.path.join(self.dir, "a"))
        gone = popular(single)[0]
        self.assertEqual(put_item(single, gone, {"available": False}).status, 200)
        self.assertNotIn(gone, popular(single))
        single.stop()
        a, b = self.start("a"), self.start("b")
        wait_converged(self, [a, b], self.redis)
        self.assertIn(gone, popular(a))
        self.assertEqual(popular(a), popular(b))

    def test_unknown_item_events_are_counted_on_every_replica(self):
        a, b = self.start("a"), self.start("b")
        wait_converged(self, [a, b], self.redis)
        r = post_events(a, [{"customer_id": "u1", "item_id": "no-such-item", "event": "view"},
                            {"customer_id": "u1", "item_id": "apple", "event": "view"}])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["unknown_items"], 1, r.json)
        wait_converged(self, [a, b], self.redis)
        for s in (a, b):
            self.assertEqual(metric(s, "shopkeeper_state_unknown_item_events_total"), 1, s.port)
            self.assertEqual(metric(s, "shopkeeper_state_events_total"), 2, s.port)


class TestModelSwitch(EventLogCase):
    def test_switch_drops_what_the_new_model_covers(self):
        a = self.start("a")
        wait_converged(self, [a], self.redis)
        r = post_events(a, [{"customer_id": "old", "item_id": "apple", "event": "cart"}])
        self.assertEqual(r.status, 200, r)
        # The state keeps whole seconds of the log: the model's position is
        # in a second after the first write and before the next one.
        time.sleep(1.1)
        covered = "%d-0" % int(time.time() * 1000)
        time.sleep(1.1)
        r = post_events(a, [{"customer_id": "new", "item_id": "bread", "event": "cart"},
                            {"customer_id": "old", "item_id": "dates", "event": "view"}])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(a.get("/v1/customers/old").json["events_since_model"], 2)
        # A model trained on data covering the log up to `covered`.
        train(self.model, INTERACTIONS, "--event-log-position", covered)
        self.assertEqual(run(["inspect", self.model]).returncode, 0)
        r = a.request("POST", "/admin/reload")
        self.assertEqual(r.status, 200, r)
        wait_converged(self, [a], self.redis)
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        while (a.get("/v1/customers/old").json["events_since_model"] != 1
               and time.monotonic() < deadline):
            time.sleep(0.1)
        self.assertEqual(a.get("/v1/customers/old").json["events_since_model"], 1)
        self.assertEqual(a.get("/v1/customers/new").json["events_since_model"], 1)
        fresh = self.start("fresh")
        wait_converged(self, [a, fresh], self.redis)
        self.assertSameAnswers(a, fresh, ["old", "new", "alice"])
        self.assertEqual(metric(a, "shopkeeper_event_log_covered_total"), 1)


class TestFlags(unittest.TestCase):
    def test_usage_errors(self):
        p = run(["serve", "--model", "x", "--state", "y", "--event-log", "http://h:1"])
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("event log URL", p.stderr)
        p = run(["serve", "--model", "x", "--state", "y", "--event-log-replicas", "1"])
        self.assertEqual(p.returncode, 2, p.stderr)
        p = run(["serve", "--model", "x", "--state", "y", "--max-lag", "0"])
        self.assertEqual(p.returncode, 2, p.stderr)
        p = run(["train", "--interactions", INTERACTIONS, "--out", "/nonexistent/x",
                 "--event-log-position", "12-x"])
        self.assertEqual(p.returncode, 2, p.stderr)


# ---------------------------------------------------------------------------
# The idle sweep (--live-customer-ttl) with the log
# ---------------------------------------------------------------------------
# The model of lib.train is a historical log (as-of 2024-03-10 11:00): its
# clock runs from there, so events stamped weeks before are honestly idle.
OLD = "2024-01-01T10:00:00Z"     # 69 days before the model's as-of date
RECENT = "2024-03-09T10:00:00Z"  # a day before it
SWEEP_WAIT = 20 * FACTOR         # seconds; a writer sweeps a batch a second


def state_dump(srv):
    """The state's event logs and its meta table (counters, the log's
    position) as mdb_dump prints them: what must be byte-identical between
    replicas at the same position."""
    out = {}
    for table in ("event_tails", "event_chunks", "meta"):
        p = subprocess.run(["mdb_dump", "-n", "-p", "-s", table,
                            os.path.join(srv.state_dir, "state.mdb")],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        out[table] = p.stdout.split("HEADER=END\n", 1)[-1]
    return out


class TestIdleSweep(EventLogCase):
    def view(self, srv, customer, ts, event="view"):
        r = post_events(srv, {"customer_id": customer, "item_id": "apple", "event": event,
                              "timestamp": ts})
        self.assertEqual(r.status, 200, r)

    def test_expiry_goes_through_the_log_and_replicas_stay_identical(self):
        if not shutil.which("mdb_dump"):
            self.fail("mdb_dump is missing (apt-get install lmdb-utils)")
        ttl = ["--live-customer-ttl", "30"]
        a, b = self.start("a", extra=ttl), self.start("b", extra=ttl)
        wait_converged(self, [a, b], self.redis)
        # b is down while a takes the events, its sweep expires "idle", and
        # "idle" comes back; b then applies all of it from the log.
        b.kill()
        self.view(a, "idle", OLD)
        self.view(a, "idle", OLD, "cart")
        self.view(a, "buyer", OLD, "purchase")
        self.view(a, "fresh", RECENT)
        deadline = time.monotonic() + SWEEP_WAIT
        while (metric(a, "shopkeeper_live_customers_expired_total") < 1
               and time.monotonic() < deadline):
            time.sleep(0.2)
        self.assertEqual(metric(a, "shopkeeper_live_customers_expired_total"), 1)
        self.view(a, "idle", RECENT)
        b2 = self.start("b", extra=ttl)  # the same state directory
        wait_converged(self, [a, b2], self.redis)
        for srv in (a, b2):
            prof = srv.get("/v1/customers/idle")
            self.assertEqual(prof.status, 200, prof)
        self.assertSameAnswers(a, b2, ["idle", "buyer", "fresh"])
        self.assertEqual(state_dump(a), state_dump(b2))
        self.assertEqual(metric(b2, "shopkeeper_live_customers_expired_total"), 1)
        self.assertEqual(metric(b2, "shopkeeper_live_customers"), 3)
        # The expiry is a record of the customer: indexed, so an erasure
        # leaves nothing of them in the stream.
        recs = [record_customer(rec) for _, rec in self.redis.entries()]
        self.assertIn((5, "idle"), recs)
        self.assertNotIn(5, [k for k, who in recs if who != "idle"])
        self.assertEqual(a.request("DELETE", "/v1/customers/idle").status, 200)
        wait_converged(self, [a, b2], self.redis)
        recs = [record_customer(rec) for _, rec in self.redis.entries()]
        self.assertEqual([k for k, who in recs if who == "idle"], [3], recs)
        self.assertEqual(state_dump(a), state_dump(b2))


def main():
    global TMP
    TMP = tempfile.mkdtemp(prefix="sk-e2e-evlog-")
    return run_suite(__name__, sys.argv[1:], lambda: (TMP,), label="event log e2e")


if __name__ == "__main__":
    sys.exit(main())
