#!/usr/bin/env python3
"""The deploy/ topology on loopback, through the real balancer.

    SHOPKEEPER=bin/shopkeeper python3 tests/deploy/test_balancer.py [-v]

deploy/loopback.sh starts three `shopkeeper serve` replicas on free loopback
ports (one shared model directory, a state directory each) and Debian's
nginx in front with deploy/nginx/shopkeeper.conf.template. The tests then
prove, through nginx:

  - every kind of request succeeds;
  - a customer's events and their next recommendation and profile reach the
    same replica, and only that replica holds the customer's state (each
    replica is asked directly, and the replicas' /metrics add up);
  - item requests are spread over the replicas;
  - stopping one replica under load fails no request, moves only that
    replica's customers (each to one other replica, consistently) and leaves
    the others' state where it was; restarted, it gets its customers back
    with their state;
  - a new model version rolled out under load (deploy/publish-model.sh:
    new directory, symlink switch, POST /admin/reload on every replica)
    fails no request and reaches every replica.

Python 3 standard library only; needs nginx (apt-get install nginx). The last
line printed is "N passed, N failed".
"""
import datetime
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LOOPBACK = os.path.join(ROOT, "deploy", "loopback.sh")
HTTP_TIMEOUT = 10
SCRIPT_TIMEOUT = 120
N_CUSTOMERS = 45


def find_binary():
    path = os.environ.get("SHOPKEEPER") or os.path.join(ROOT, "bin", "shopkeeper")
    if not os.path.isabs(path):
        path = os.path.join(ROOT, path)
    return os.path.abspath(path)


BIN = find_binary()
ENV = {}  # ports and the topology's directory, filled by setUpModule


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def loopback(*args):
    env = dict(os.environ, SHOPKEEPER=BIN, LB_PORT=str(ENV["lb"]),
               REPLICA_PORTS=" ".join(str(p) for p in ENV["replicas"]))
    p = subprocess.run([LOOPBACK] + list(args), capture_output=True, text=True, env=env,
                       timeout=SCRIPT_TIMEOUT)
    if p.returncode != 0:
        raise AssertionError("loopback.sh %s failed (%d): %s%s"
                             % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def request(port, method, path, body=None, headers=None):
    """One request on a fresh connection: (status, headers, parsed JSON or text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
    try:
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if hdrs.get("content-type", "").startswith("application/json"):
            return r.status, hdrs, json.loads(data)
        return r.status, hdrs, data.decode("utf-8", "replace")
    finally:
        c.close()


def lb(method, path, body=None, headers=None):
    return request(ENV["lb"], method, path, body, headers)


def replica_of(hdrs):
    """The replica (1..3) that answered, from nginx's X-Shopkeeper-Replica."""
    addr = hdrs.get("x-shopkeeper-replica", "")
    # After a retry nginx lists every upstream tried: "a, b"; the last answered.
    last = addr.split(",")[-1].strip()
    port = int(last.rsplit(":", 1)[1]) if ":" in last else -1
    return ENV["replicas"].index(port) + 1 if port in ENV["replicas"] else None


def metric(port, name):
    status, _, text = request(port, "GET", "/metrics")
    assert status == 200, status
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def customers():
    return ["lb-customer-%02d" % i for i in range(N_CUSTOMERS)]


class Load:
    """Requests through the balancer from three threads until stopped:
    customer recommendations for every test customer, item neighbours, and
    events (POST, not retried by nginx once sent). Counts answers by status
    (and transport errors as "error")."""

    def __init__(self, max_seconds=60):
        self.stop_at = time.monotonic() + max_seconds  # bounded whatever happens
        self.stopping = threading.Event()
        self.counts = {}
        self.failures = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(k,)) for k in range(3)]

    def _run(self, k):
        conn = None
        i = 0
        names = customers()
        while not self.stopping.is_set() and time.monotonic() < self.stop_at:
            i += 1
            name = names[i % len(names)]
            method, body, hdrs = "GET", None, {}
            if k == 0:
                path = "/v1/customers/%s/recommendations?n=5" % name
            elif k == 1:
                path = "/v1/items/85123A/similar?n=5"
            else:  # events of other customers, routed by the header to their replica
                name = "load-" + name
                method, path, hdrs = "POST", "/v1/events", {"X-Customer-Id": name}
                body = json.dumps({"customer_id": name, "item_id": "85123A", "event": "view",
                                   "timestamp": ENV["after_as_of"]})
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", ENV["lb"], timeout=HTTP_TIMEOUT)
                conn.request(method, path, body=body, headers=hdrs)
                r = conn.getresponse()
                r.read()
                key = r.status
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                key = "error"
                if conn is not None:
                    conn.close()
                conn = None
                with self.lock:
                    self.failures.append("%s: %r" % (path, e))
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
    ports = free_ports(4)
    ENV["lb"], ENV["replicas"] = ports[0], ports[1:]
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
    """Ordered: test_1 .. test_6 build on each other (events, a stop, a rollout,
    the final stop)."""
    owner = {}  # customer -> replica holding their state

    def test_1_every_kind_of_request_succeeds(self):
        for method, path, body, hdrs in [
                ("GET", "/readyz", None, None),
                ("GET", "/v1/customers/17850/recommendations?n=3", None, None),
                ("GET", "/v1/customers/17850", None, None),
                ("GET", "/v1/items/85123A/similar?n=3", None, None),
                ("POST", "/v1/recommendations", {"items": ["85123A"], "n": 3}, None),
                ("POST", "/v1/recommendations", {"items": ["85123A"], "customer_id": "17850"},
                 {"X-Customer-Id": "17850"}),
                ("GET", "/v1/segments", None, None),
                ("GET", "/v1/audiences/champions?limit=2", None, None),
                ("GET", "/metrics", None, None)]:
            status, h, data = lb(method, path, body, hdrs)
            self.assertEqual(status, 200, (method, path, data))
            self.assertIsNotNone(replica_of(h), (path, h))
        status, h, data = lb("GET", "/v1/customers/17850/recommendations?n=3")
        self.assertEqual(len(data["items"]), 3)
        self.assertEqual(data["customer_id"], "17850")

    def test_2_customer_affinity(self):
        before = [metric(p, "shopkeeper_events_accepted_total") for p in ENV["replicas"]]
        owner = {}
        for i, c in enumerate(customers()):
            # Timestamped after the model's as-of (an event without one takes
            # the model's clock, equal to as-of while the model is under 1 s old).
            ev = {"customer_id": c, "item_id": "85123A" if i % 2 else "22423", "event": "cart",
                  "timestamp": ENV["after_as_of"]}
            status, h, data = lb("POST", "/v1/events", ev, {"X-Customer-Id": c})
            self.assertEqual(status, 200, data)
            self.assertEqual(data["accepted"], 1, data)
            owner[c] = replica_of(h)
            # The next recommendation and the profile: the same replica, which
            # already knows the event.
            for _ in range(2):
                status, h, data = lb("GET", "/v1/customers/%s/recommendations?n=5" % c)
                self.assertEqual(status, 200, data)
                self.assertEqual(replica_of(h), owner[c], c)
                self.assertEqual(data["source"], "personal", (c, data))
            status, h, prof = lb("GET", "/v1/customers/%s" % c)
            self.assertEqual(status, 200, prof)
            self.assertEqual(replica_of(h), owner[c])
            self.assertEqual(prof["events_since_model"], 1, prof)
        # Only the owner holds the state: asked directly, the others do not
        # know the customer at all.
        for c, n in owner.items():
            for k, port in enumerate(ENV["replicas"], start=1):
                status, _, prof = request(port, "GET", "/v1/customers/%s" % c)
                if k == n:
                    self.assertEqual(status, 200, (c, k, prof))
                    self.assertEqual(prof["events_since_model"], 1)
                else:
                    self.assertEqual(status, 404, (c, k, prof))
        # Every replica owns some customers, and each replica's event counter
        # went up by exactly the number of customers it owns.
        after = [metric(p, "shopkeeper_events_accepted_total") for p in ENV["replicas"]]
        for k in range(3):
            owned = sum(1 for n in owner.values() if n == k + 1)
            self.assertGreater(owned, 0, "replica %d owns no customer: %r" % (k + 1, owner))
            self.assertEqual(after[k] - before[k], owned, (k + 1, before, after))
        BalancerTests.owner = owner

    def test_3_items_go_anywhere(self):
        seen = set()
        bodies = set()
        for _ in range(30):
            status, h, data = lb("GET", "/v1/items/85123A/similar?n=5")
            self.assertEqual(status, 200)
            seen.add(replica_of(h))
            bodies.add(json.dumps(data, sort_keys=True))
        self.assertEqual(seen, {1, 2, 3})
        self.assertEqual(len(bodies), 1, "replicas disagree on the same model")

    def test_4_stopping_a_replica_moves_only_its_customers(self):
        owner = BalancerTests.owner
        self.assertTrue(owner, "test_2 must run first")
        # Stop the replica with the most customers, under load.
        victim = max((1, 2, 3), key=lambda k: sum(1 for n in owner.values() if n == k))
        with Load() as load:
            loopback("stop-replica", ENV["dir"], str(victim))
            time.sleep(0.5)
            moved = {}
            for c, n in owner.items():
                for _ in range(2):
                    status, h, data = lb("GET", "/v1/customers/%s/recommendations?n=5" % c)
                    self.assertEqual(status, 200, (c, data))
                    now = replica_of(h)
                    if n != victim:
                        self.assertEqual(now, n, "%s moved from %d to %s" % (c, n, now))
                    else:
                        self.assertNotEqual(now, victim)
                        self.assertEqual(moved.setdefault(c, now), now, "%s flaps" % c)
                status, h, prof = lb("GET", "/v1/customers/%s" % c)
                if n != victim:
                    self.assertEqual(status, 200)
                    self.assertEqual(prof["events_since_model"], 1, (c, prof))
                else:
                    # Its state stayed on the stopped replica.
                    self.assertEqual(status, 404, (c, prof))
            # A moved customer's new events land on their new replica.
            c = sorted(moved)[0]
            status, h, data = lb("POST", "/v1/events",
                                 {"customer_id": c, "item_id": "85123A", "event": "view"},
                                 {"X-Customer-Id": c})
            self.assertEqual(status, 200, data)
            self.assertEqual(replica_of(h), moved[c])
        self.assertEqual(load.failures, [], load.counts)
        self.assertGreater(load.counts.get(200, 0), 20, load.counts)

        # Back again: its customers return, with the state it kept on disk.
        loopback("start-replica", ENV["dir"], str(victim))
        c = sorted(moved)[0]
        deadline = time.monotonic() + 15  # nginx retries a failed server after fail_timeout (5 s)
        back = None
        while time.monotonic() < deadline:
            status, h, _ = lb("GET", "/v1/customers/%s/recommendations" % c)
            back = replica_of(h)
            if back == victim:
                break
            time.sleep(0.25)
        self.assertEqual(back, victim)
        for c, n in owner.items():
            status, h, prof = lb("GET", "/v1/customers/%s" % c)
            self.assertEqual(status, 200, (c, prof))
            self.assertEqual(replica_of(h), n)
            self.assertEqual(prof["events_since_model"], 1, (c, prof))

    def test_5_model_rollout_without_downtime(self):
        before = {request(p, "GET", "/readyz")[2]["model"] for p in ENV["replicas"]}
        self.assertEqual(len(before), 1, before)
        time.sleep(1.1)  # model ids and version directories have one-second resolution
        with Load() as load:
            p = loopback("publish", ENV["dir"])
            time.sleep(0.3)
        self.assertEqual(load.failures, [], load.counts)
        self.assertIn("reloaded", p.stderr)
        after = {request(port, "GET", "/readyz")[2]["model"] for port in ENV["replicas"]}
        self.assertEqual(len(after), 1, after)
        self.assertNotEqual(after, before)
        versions = os.listdir(os.path.join(ENV["dir"], "models"))
        self.assertIn(os.readlink(os.path.join(ENV["dir"], "models", "current")), versions)
        # Real-time state survives a model switch.
        c = customers()[0]
        status, _, prof = lb("GET", "/v1/customers/%s" % c)
        self.assertEqual(status, 200)
        self.assertGreaterEqual(prof["events_since_model"], 1)

    def test_6_replicas_drain_and_exit_cleanly(self):
        """Each replica stops on SIGTERM by draining, with nothing in its log
        a sanitizer or the server itself would complain with."""
        for n in (1, 2, 3):
            loopback("stop-replica", ENV["dir"], str(n))
            with open(os.path.join(ENV["dir"], "replica-%d.log" % n), errors="replace") as f:
                log = f.read()
            self.assertIn("SIGTERM received, draining", log)
            self.assertIn("drained; stopping", log)
            for bad in ("Sanitizer", "runtime error", "leak", "cannot"):
                self.assertNotIn(bad, log)


if __name__ == "__main__":
    t0 = time.monotonic()
    result = unittest.main(exit=False, verbosity=int(os.environ.get("VERBOSE", "1"))).result
    n_fail = len(result.failures) + len(result.errors)
    n_pass = result.testsRun - n_fail - len(result.skipped)
    print("balancer: %.1f s (topology up in %.1f s)" % (time.monotonic() - t0,
                                                         ENV.get("startup_s", 0)))
    print("%d passed, %d failed" % (n_pass, n_fail))
    sys.exit(1 if n_fail else 0)
