#!/usr/bin/env python3
"""The deploy/ topology on loopback, through the real balancer, on the
shared event log.

    SHOPKEEPER=bin/shopkeeper python3 tests/deploy/test_balancer.py [-v]

deploy/loopback.sh starts a Redis primary and replica (appendfsync always),
three Redis Sentinels, three `shopkeeper serve --event-log sentinel://...`
replicas on free loopback ports (one shared model directory, a state
directory each) and Debian's nginx in front, round-robin, with
deploy/nginx/shopkeeper.conf.template. The tests then prove, through nginx:

  - every kind of request succeeds;
  - 30 customers add to their carts through the balancer; once the replicas
    have applied the log, GET /v1/audiences/cart_abandoners?limit=100
    answers 30 of 30 on every try, whichever replica takes it; /v1/segments
    is the same on every replica; a segment audience paged to the end
    through the balancer (cursors crossing replicas) is the same as each
    replica's own;
  - item requests are spread over every replica;
  - scaling from 3 to 5 replicas under load fails no request, and the new
    replicas converge to the same answers;
  - a new model version rolled out under load (deploy/publish-model.sh with
    --events-from and the log's trim) fails no request and reaches every
    replica;
  - a replica killed with kill -9, its state directory deleted, restarts,
    catches up and answers every test customer's profile like the others;
  - replicas drain and exit cleanly on SIGTERM.

Needs nginx, redis-server, redis-sentinel and a binary whose `serve --help`
has --event-log; without it the suite is skipped, loudly (issue 13: the
flag comes with the server's event-log support). Python 3 standard library
only. The last line printed is "N passed, N failed".
"""
import datetime
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import http.client

from lib import BIN, HTTP_TIMEOUT, ROOT, free_ports, request, run_main, serve_has_event_log

LOOPBACK = os.path.join(ROOT, "deploy", "loopback.sh")
SCRIPT_TIMEOUT = 180
N_CUSTOMERS = 30
CONVERGE_S = 30   # bound on waiting for replicas to apply the log
ENV = {}  # ports and the topology's directory, filled by setUpModule


def loopback(*args):
    env = dict(os.environ, SHOPKEEPER=BIN, LB_PORT=str(ENV["lb"]),
               REPLICA_PORTS=" ".join(str(p) for p in ENV["replicas"]),
               REDIS_PORTS=" ".join(str(p) for p in ENV["redis"]),
               SENTINEL_PORTS=" ".join(str(p) for p in ENV["sentinels"]), REPLICAS="3")
    p = subprocess.run([LOOPBACK] + list(args), capture_output=True, text=True, env=env,
                       timeout=SCRIPT_TIMEOUT)
    if p.returncode != 0:
        raise AssertionError("loopback.sh %s failed (%d): %s%s"
                             % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def lb(method, path, body=None, headers=None):
    return request(ENV["lb"], method, path, body, headers)


def replica(n, method, path, body=None):
    return request(ENV["replicas"][n - 1], method, path, body)


def replica_of(hdrs):
    """The replica (1..5) that answered, from nginx's X-Shopkeeper-Replica."""
    addr = hdrs.get("x-shopkeeper-replica", "")
    # After a retry nginx lists every upstream tried: "a, b"; the last answered.
    last = addr.split(",")[-1].strip()
    port = int(last.rsplit(":", 1)[1]) if ":" in last else -1
    return ENV["replicas"].index(port) + 1 if port in ENV["replicas"] else None


def customers():
    return ["lb-customer-%02d" % i for i in range(N_CUSTOMERS)]


def abandoners(port):
    status, _, data = request(port, "GET", "/v1/audiences/cart_abandoners?limit=100")
    assert status == 200, (status, data)
    return sorted(m["customer_id"] for m in data["customers"])


def paged(port, audience, limit=7, max_pages=500):
    """Every customer id of the audience, page by page to the end."""
    ids, cursor = [], None
    for _ in range(max_pages):
        path = "/v1/audiences/%s?n=1&limit=%d" % (audience, limit)
        if cursor:
            path += "&cursor=" + cursor
        status, _, data = request(port, "GET", path)
        assert status == 200, (status, data)
        ids += [m["customer_id"] for m in data["customers"]]
        cursor = data.get("next_cursor")
        if not cursor:
            return ids
    raise AssertionError("%s: more than %d pages" % (audience, max_pages))


def segments(port):
    status, _, data = request(port, "GET", "/v1/segments")
    assert status == 200, (status, data)
    data.pop("at", None)  # the answer's clock, not the data
    return data


def wait_for(what, cond, seconds=CONVERGE_S):
    """Polls cond() (bounded) until it is true; fails saying what."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
            if last is True:
                return
        except (AssertionError, OSError) as e:
            last = e
        time.sleep(0.2)
    raise AssertionError("%s: not within %d s (%r)" % (what, seconds, last))


class Load:
    """Requests through the balancer from three threads until stopped:
    customer recommendations for every test customer, item neighbours, and
    events (POST). Counts answers by status (and transport errors as
    "error")."""

    def __init__(self, max_seconds=90):
        self.stop_at = time.monotonic() + max_seconds  # bounded whatever happens
        self.stopping = threading.Event()
        self.counts = {}
        self.failures = []
        self.replicas = set()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(k,)) for k in range(3)]

    def _run(self, k):
        conn = None
        i = 0
        names = customers()
        while not self.stopping.is_set() and time.monotonic() < self.stop_at:
            i += 1
            name = names[i % len(names)]
            method, body = "GET", None
            if k == 0:
                path = "/v1/customers/%s/recommendations?n=5" % name
            elif k == 1:
                path = "/v1/items/85123A/similar?n=5"
            else:
                method, path = "POST", "/v1/events"
                body = json.dumps({"customer_id": "load-" + name, "item_id": "85123A",
                                   "event": "view", "timestamp": ENV["after_as_of"]})
            key = None
            for attempt in (0, 1):
                reused = conn is not None
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", ENV["lb"],
                                                          timeout=HTTP_TIMEOUT)
                    conn.request(method, path, body=body)
                    r = conn.getresponse()
                    r.read()
                    key = r.status
                    with self.lock:
                        self.replicas.add(replica_of({"x-shopkeeper-replica":
                                                      r.getheader("x-shopkeeper-replica", "")}))
                    # Writes on a connection of their own: a POST is never
                    # sent on a kept-alive connection the balancer may be
                    # closing (a reload closes idle ones).
                    if method == "POST" or r.getheader("connection", "").lower() == "close":
                        conn.close()
                        conn = None
                    break
                except (OSError, http.client.HTTPException) as e:
                    if conn is not None:
                        conn.close()
                    conn = None
                    # A GET on a kept-alive connection that the balancer
                    # closed as it was reused: sent again on a new one, as
                    # HTTP clients do for idempotent requests.
                    if attempt == 0 and reused and method == "GET" and isinstance(
                            e, (http.client.RemoteDisconnected, ConnectionResetError,
                                BrokenPipeError)):
                        continue
                    key = "error"
                    with self.lock:
                        self.failures.append("%s: %r" % (path, e))
                    break
            with self.lock:
                self.counts[key] = self.counts.get(key, 0) + 1
                if key != 200 and key != "error":
                    self.failures.append("%s: %s" % (path, key))
        if conn is not None:
            conn.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=HTTP_TIMEOUT + 5)


def setUpModule():
    if not shutil.which("nginx") and not os.path.exists("/usr/sbin/nginx"):
        raise unittest.SkipTest("nginx is not installed (apt-get install nginx)")
    for tool in ("redis-server", "redis-sentinel", "redis-cli"):
        if not shutil.which(tool):
            raise AssertionError("%s is not installed (apt-get install redis-server "
                                 "redis-sentinel)" % tool)
    if not serve_has_event_log():
        raise AssertionError("`shopkeeper serve --help` has no --event-log: wrong binary?")
    ports = free_ports(1 + 5 + 2 + 3)
    ENV["lb"], ENV["replicas"] = ports[0], ports[1:6]
    ENV["redis"], ENV["sentinels"] = ports[6:8], ports[8:11]
    ENV["n"] = 3
    ENV["dir"] = tempfile.mkdtemp(prefix="shopkeeper-lb-")
    t0 = time.monotonic()
    try:
        loopback("up", ENV["dir"])
    except BaseException:
        tearDownModule()
        raise
    ENV["startup_s"] = time.monotonic() - t0
    meta = json.loads(subprocess.run([BIN, "inspect", os.path.join(ENV["dir"], "models", "current")],
                                     capture_output=True, text=True, timeout=30, check=True).stdout)
    as_of = datetime.datetime.strptime(meta["as_of"], "%Y-%m-%dT%H:%M:%SZ")
    ENV["after_as_of"] = (as_of + datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def tearDownModule():
    if "dir" in ENV:
        try:
            loopback("down", ENV["dir"])
        finally:
            shutil.rmtree(ENV["dir"], ignore_errors=True)


class BalancerTests(unittest.TestCase):
    """Ordered: test_1 .. test_7 build on each other (carts, a rescale, a
    rollout, a rebuilt replica, the final stop)."""

    def ports(self):
        return ENV["replicas"][:ENV["n"]]

    def test_1_every_kind_of_request_succeeds(self):
        # Not /v1/segments: it is cached for a minute, and test_2 compares it.
        for method, path, body in [
                ("GET", "/readyz", None),
                ("GET", "/v1/customers/17850/recommendations?n=3", None),
                ("GET", "/v1/customers/17850", None),
                ("GET", "/v1/items/85123A/similar?n=3", None),
                ("POST", "/v1/recommendations", {"items": ["85123A"], "n": 3}),
                ("POST", "/v1/recommendations", {"items": ["85123A"], "customer_id": "17850"}),
                ("GET", "/v1/audiences/champions?limit=2", None),
                ("GET", "/metrics", None)]:
            status, h, data = lb(method, path, body)
            self.assertEqual(status, 200, (method, path, data))
            self.assertIsNotNone(replica_of(h), (path, h))
        status, h, data = lb("GET", "/v1/customers/17850/recommendations?n=3")
        self.assertEqual(len(data["items"]), 3)
        self.assertEqual(data["customer_id"], "17850")

    def test_2_complete_audiences_through_the_balancer(self):
        took = set()
        for i, c in enumerate(customers()):
            ev = {"customer_id": c, "item_id": "85123A" if i % 2 else "22423", "event": "cart",
                  "timestamp": ENV["after_as_of"]}
            status, h, data = lb("POST", "/v1/events", ev)
            self.assertEqual(status, 200, data)
            self.assertEqual(data["accepted"], 1, data)
            took.add(replica_of(h))
        self.assertEqual(took, {1, 2, 3}, "round-robin spreads the writes")
        want = customers()
        for port in self.ports():
            wait_for("replica on %d applies the 30 carts" % port,
                     lambda port=port: abandoners(port) == want or abandoners(port))
        # Whichever replica answers: 30 of 30, every time.
        seen = set()
        for _ in range(12):
            status, h, data = lb("GET", "/v1/audiences/cart_abandoners?limit=100")
            self.assertEqual(status, 200, data)
            self.assertEqual(sorted(m["customer_id"] for m in data["customers"]), want,
                             "replica %s" % replica_of(h))
            seen.add(replica_of(h))
        self.assertEqual(seen, {1, 2, 3})
        # Segments: the same on every replica.
        first = segments(self.ports()[0])
        for port in self.ports()[1:]:
            self.assertEqual(segments(port), first, port)
        self.assertGreaterEqual(first["customers"], N_CUSTOMERS)
        # A segment audience paged to the end through the balancer, each page
        # from whichever replica: the same as every replica's own paging.
        through_lb = paged(ENV["lb"], "all", limit=25)
        self.assertEqual(len(through_lb), len(set(through_lb)), "a page repeated customers")
        for port in self.ports():
            self.assertEqual(paged(port, "all", limit=25), through_lb, port)
        for c in want:
            self.assertIn(c, through_lb)

    def test_3_items_go_anywhere(self):
        seen = set()
        bodies = set()
        for _ in range(30):
            status, h, data = lb("GET", "/v1/items/85123A/similar?n=5")
            self.assertEqual(status, 200)
            seen.add(replica_of(h))
            data.pop("rec_id", None)  # new in every answer (issue 15)
            bodies.add(json.dumps(data, sort_keys=True))
        self.assertEqual(seen, {1, 2, 3})
        self.assertEqual(len(bodies), 1, "replicas disagree on the same model")

    def converged(self, ports):
        """Every replica in ports has the same cart abandoners and audience."""
        carts = {p: abandoners(p) for p in ports}
        alls = {p: paged(p, "all", limit=100) for p in ports}
        return (len({json.dumps(v) for v in carts.values()}) == 1 and
                len({json.dumps(v) for v in alls.values()}) == 1) or (carts, len(alls))

    def test_4_scaling_from_3_to_5_under_load(self):
        with Load() as load:
            loopback("scale", ENV["dir"], "5")
            ENV["n"] = 5
            time.sleep(1.5)  # the new replicas take their share of the load
        self.assertEqual(load.failures, [], load.counts)
        self.assertGreater(load.counts.get(200, 0), 20, load.counts)
        self.assertTrue({4, 5} <= load.replicas, load.replicas)
        # The new replicas know the carts of test_2 and every event of the load.
        for n in (4, 5):
            self.assertEqual(abandoners(ENV["replicas"][n - 1]), customers(), n)
        wait_for("5 replicas converge", lambda: self.converged(self.ports()))
        seen = set()
        for _ in range(20):
            status, h, data = lb("GET", "/v1/audiences/cart_abandoners?limit=100")
            self.assertEqual(status, 200)
            self.assertEqual(sorted(m["customer_id"] for m in data["customers"]), customers())
            seen.add(replica_of(h))
        self.assertEqual(seen, {1, 2, 3, 4, 5})

    def test_5_model_rollout_without_downtime(self):
        before = {request(p, "GET", "/readyz")[2]["model"] for p in self.ports()}
        self.assertEqual(len(before), 1, before)
        time.sleep(1.1)  # model ids and version directories have one-second resolution
        with Load() as load:
            p = loopback("publish", ENV["dir"])
            time.sleep(0.3)
        self.assertEqual(load.failures, [], load.counts)
        self.assertIn("reloaded", p.stderr)
        after = {request(port, "GET", "/readyz")[2]["model"] for port in self.ports()}
        self.assertEqual(len(after), 1, after)
        self.assertNotEqual(after, before)
        current = os.path.join(ENV["dir"], "models", "current")
        self.assertIn(os.readlink(current), os.listdir(os.path.join(ENV["dir"], "models")))
        # Trained with the log's events: a cart customer is in the new model.
        meta = json.loads(subprocess.run([BIN, "inspect", current], capture_output=True,
                                         text=True, timeout=30, check=True).stdout)
        self.assertGreaterEqual(meta["live_events"]["added"], N_CUSTOMERS, meta["live_events"])
        # Every replica still agrees.
        wait_for("replicas converge after the rollout", lambda: self.converged(self.ports()))

    def test_6_killed_replica_rebuilds_from_model_and_log(self):
        with Load() as load:
            loopback("kill-replica", ENV["dir"], "2")
            shutil.rmtree(os.path.join(ENV["dir"], "state-2"))
            loopback("start-replica", ENV["dir"], "2")  # returns once /readyz is 200
            time.sleep(0.5)
        # kill -9 can catch one POST inside replica 2 (one thread writes):
        # nginx does not resend a non-idempotent request it already sent, so
        # that one is answered 502 and was never acknowledged (the client
        # retries it; docs/operations.md "Balancing"). Reads move on, and no
        # other write may fail. Seen in CI: {200: 4789, 502: 1}.
        self.assertLessEqual(len(load.failures), 1, load.counts)
        self.assertTrue(set(load.failures) <= {"/v1/events: 502"}, load.failures)
        wait_for("the rebuilt replica converges", lambda: self.converged(self.ports()))
        for c in customers():
            a = replica(1, "GET", "/v1/customers/%s" % c)
            b = replica(2, "GET", "/v1/customers/%s" % c)
            self.assertEqual((a[0], a[2]), (b[0], b[2]), c)
            self.assertEqual(a[0], 200, a)

    def test_7_replicas_drain_and_exit_cleanly(self):
        """Each replica stops on SIGTERM by draining, with nothing in its log
        a sanitizer or the server itself would complain with."""
        for n in range(1, ENV["n"] + 1):
            loopback("stop-replica", ENV["dir"], str(n))
            with open(os.path.join(ENV["dir"], "replica-%d.log" % n), errors="replace") as f:
                log = f.read()
            self.assertIn("SIGTERM received, draining", log)
            self.assertIn("drained; stopping", log)
            for bad in ("Sanitizer", "runtime error", "leak"):
                self.assertNotIn(bad, log)


if __name__ == "__main__":
    run_main("balancer")
