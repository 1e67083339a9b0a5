#!/usr/bin/env python3
"""How `shopkeeper serve` behaves for an operator: the real binary over HTTP.

    SHOPKEEPER=bin/shopkeeper python3 tests/deploy/test_serve_ops.py [-v]

  - the startup line names version, model, threads and listen address;
  - every flag can come from a SHOPKEEPER_* environment variable, a flag wins,
    and a bad value is a usage error naming the variable;
  - the JSON access log: off by default, one line per request with the
    documented fields, never the query string or the Authorization header,
    sampling, reopened on SIGHUP;
  - SIGTERM drains: requests in flight are answered, new connections are
    refused, and --drain-timeout bounds a stuck request;
  - a backup with mdb_copy while serving restores events and erasures;
  - /metrics passes `promtool check metrics` (Debian's prometheus package)
    and has every family an operator's dashboards rely on.

Python 3 standard library only. The last line is "N passed, N failed".
"""
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from lib import BIN, run_main

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
RETAIL = os.path.join(FIXTURES, "online-retail.csv")
RETAIL_COLUMNS = ("customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,"
                  "quantity=Quantity,price=UnitPrice")
START_TIMEOUT = 10
STOP_TIMEOUT = 15
HTTP_TIMEOUT = 5
KEY = "ops-test-key-0123456789abcdef"


SHARED = {}
LIVE = []


def clean_env(**extra):
    """The environment without any SHOPKEEPER_* the caller may have set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPKEEPER_")}
    env.update(extra)
    return env


class Server:
    """`shopkeeper serve` with stdout and stderr kept in files."""

    def __init__(self, args=(), env=None, tmp=None):
        tmp = tmp or SHARED["tmp"]
        fd, self.err_path = tempfile.mkstemp(dir=tmp, suffix=".stderr")
        os.close(fd)
        fd, self.out_path = tempfile.mkstemp(dir=tmp, suffix=".stdout")
        os.close(fd)
        with open(self.err_path, "wb") as e, open(self.out_path, "wb") as o:
            self.proc = subprocess.Popen([BIN, "serve"] + list(args), stdin=subprocess.DEVNULL,
                                         stdout=o, stderr=e, env=env or clean_env())
        LIVE.append(self)
        self.port = None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = re.search(r"on port (\d+)", self.stderr())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.02)
        if self.port is None:
            self.kill()
            raise AssertionError("serve did not start: %s" % self.stderr())

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def stdout(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read(), {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            return "hung"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)


def setUpModule():
    SHARED["tmp"] = tempfile.mkdtemp(prefix="shopkeeper-ops-")
    SHARED["model"] = os.path.join(SHARED["tmp"], "model")
    p = subprocess.run([BIN, "train", "--interactions", RETAIL, "--columns", RETAIL_COLUMNS,
                        "--out", SHARED["model"], "--quiet"], capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        raise AssertionError("train failed: %s" % p.stderr)
    meta = json.loads(subprocess.run([BIN, "inspect", SHARED["model"]], capture_output=True,
                                     text=True, timeout=30, check=True).stdout)
    as_of = datetime.datetime.strptime(meta["as_of"], "%Y-%m-%dT%H:%M:%SZ")
    SHARED["after_as_of"] = (as_of + datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def tearDownModule():
    for s in LIVE:
        s.kill()
    shutil.rmtree(SHARED.get("tmp", ""), ignore_errors=True)


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=SHARED["tmp"])

    def serve(self, *args, env=None, state=None):
        base = ["--model", SHARED["model"], "--state", state or os.path.join(self.tmp, "state"),
                "--listen", "127.0.0.1:0", "--threads", "2"]
        return Server(base + list(args), env=env)


class StartupAndEnvironment(Base):
    def test_startup_line(self):
        srv = self.serve()
        try:
            status, body, _ = srv.request("GET", "/readyz")
            model = json.loads(body)["model"]
            line = [l for l in srv.stderr().splitlines() if "serving on port" in l]
            self.assertEqual(len(line), 1, srv.stderr())
            m = re.match(r"shopkeeper (\d+\.\d+\.\d+): serving on port (\d+), listen "
                         r"127\.0\.0\.1:0, 2 threads, model (\S+) \((\w+), (\d+) items, "
                         r"(\d+) customers\) from (\S+), clock auto \((model|wall) clock, now "
                         r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\), state (\S+), API keys off, "
                         r"access log off$", line[0])
            self.assertIsNotNone(m, line[0])
            version = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout
            self.assertEqual("shopkeeper %s" % m.group(1), version.strip())
            self.assertEqual(int(m.group(2)), srv.port)
            self.assertEqual(m.group(3), model)
            self.assertEqual(m.group(7), SHARED["model"])
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.kill()

    def test_environment_configures_everything(self):
        state = os.path.join(self.tmp, "state")
        env = clean_env(SHOPKEEPER_MODEL=SHARED["model"], SHOPKEEPER_STATE=state,
                        SHOPKEEPER_LISTEN="127.0.0.1:0", SHOPKEEPER_THREADS="3",
                        SHOPKEEPER_ACCESS_LOG="-", SHOPKEEPER_MAX_BODY="2048")
        srv = Server([], env=env)
        try:
            self.assertIn(", 3 threads,", srv.stderr())
            self.assertIn("access log -", srv.stderr())
            status, _, _ = srv.request("POST", "/v1/events", b"[" + b" " * 3000 + b"]")
            self.assertEqual(status, 413)  # SHOPKEEPER_MAX_BODY took effect
            self.assertEqual(srv.stop(), 0)
            self.assertIn('"status":413', srv.stdout())
            self.assertTrue(os.path.isdir(state))
        finally:
            srv.kill()

    def test_flag_wins_over_environment(self):
        env = clean_env(SHOPKEEPER_THREADS="3", SHOPKEEPER_LISTEN="127.0.0.1:1")
        srv = Server(["--model", SHARED["model"], "--state", os.path.join(self.tmp, "s"),
                      "--threads", "1", "--listen", "127.0.0.1:0"], env=env)
        try:
            self.assertIn(", 1 threads,", srv.stderr())
            self.assertIn("listen 127.0.0.1:0,", srv.stderr())
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.kill()

    def test_bad_environment_is_a_usage_error(self):
        for var, value, says in [("SHOPKEEPER_THREADS", "lots", "SHOPKEEPER_THREADS=lots"),
                                 ("SHOPKEEPER_ACCESS_LOG_SAMPLE", "2", "0 < RATE <= 1"),
                                 ("SHOPKEEPER_AUTH_READS", "maybe", "SHOPKEEPER_AUTH_READS"),
                                 ("SHOPKEEPER_DRAIN_TIMEOUT", "-1", "SHOPKEEPER_DRAIN_TIMEOUT")]:
            env = clean_env(**{var: value})
            p = subprocess.run([BIN, "serve", "--model", SHARED["model"], "--state",
                                os.path.join(self.tmp, "s")], env=env, capture_output=True,
                               text=True, timeout=10)
            self.assertEqual(p.returncode, 2, (var, p.stderr))
            self.assertIn(says, p.stderr)
        # A boolean from the environment: auth on reads needs keys.
        p = subprocess.run([BIN, "serve", "--model", SHARED["model"], "--state",
                            os.path.join(self.tmp, "s")], env=clean_env(SHOPKEEPER_AUTH_READS="1"),
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("needs API keys", p.stderr)

    def test_api_keys_file_from_environment(self):
        keys = os.path.join(self.tmp, "keys")
        with open(keys, "w") as f:
            f.write(KEY + "\n")
        srv = self.serve(env=clean_env(SHOPKEEPER_API_KEYS_FILE=keys, SHOPKEEPER_AUTH_READS="1"))
        try:
            self.assertIn("API keys on all routes", srv.stderr())
            self.assertEqual(srv.request("GET", "/v1/items/apple/similar")[0], 401)
            self.assertEqual(srv.request("GET", "/v1/items/apple/similar",
                                         headers={"Authorization": "Bearer " + KEY})[0], 200)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.kill()


class AccessLog(Base):
    FIELDS = {"time", "method", "path", "status", "duration_us", "bytes"}

    def lines(self, text):
        out = []
        for line in text.splitlines():
            out.append(json.loads(line))
        return out

    def test_off_by_default(self):
        srv = self.serve()
        try:
            for _ in range(5):
                self.assertEqual(srv.request("GET", "/v1/items/apple/similar")[0], 200)
            self.assertEqual(srv.stop(), 0)
            self.assertEqual(srv.stdout(), "")
            self.assertNotIn('"duration_us"', srv.stderr())
        finally:
            srv.kill()

    def test_one_json_line_per_request(self):
        log = os.path.join(self.tmp, "access.log")
        keys = os.path.join(self.tmp, "keys")
        with open(keys, "w") as f:
            f.write(KEY + "\n")
        srv = self.serve("--access-log", log, "--api-keys", keys, "--max-body", "4096")
        try:
            auth = {"Authorization": "Bearer " + KEY}
            sent = [
                ("GET", "/v1/customers/12001/recommendations?n=2&exclude=hush", None, auth),
                ("GET", "/v1/items/no-such-item/similar", None, None),
                ("GET", "/v1/items/%C3%A9%22%5C/similar", None, None),
                ("POST", "/v1/events", json.dumps({"customer_id": "z", "item_id": "apple",
                                                   "event": "view"}), auth),
                ("POST", "/v1/events", "{}", None),  # 401: no key
                ("POST", "/v1/events", "x" * 5000, auth),  # 413
                ("DELETE", "/healthz", None, None),  # 405
                ("GET", "/v1/items/" + "x" * 3000 + "/similar", None, None),  # cut at 512
            ]
            answers = []
            t0 = datetime.datetime.now(datetime.timezone.utc)
            for method, path, body, hdrs in sent:
                status, data, _ = srv.request(method, path, body, hdrs)
                answers.append((status, len(data)))
            self.assertEqual(srv.stop(), 0)
            with open(log) as f:
                text = f.read()
            self.assertNotIn(KEY, text)
            self.assertNotIn("hush", text)
            self.assertNotIn("12001", text)  # the customer id
            self.assertNotIn("Bearer", text)
            got = self.lines(text)
            self.assertEqual(len(got), len(sent), text)
            for (method, path, _, _), (status, size), line in zip(sent, answers, got):
                self.assertEqual(set(line), self.FIELDS, line)
                self.assertEqual(line["method"], method)
                logged = path.split("?")[0][:512]
                if logged.startswith("/v1/customers/"):  # the id is hashed (logids.h)
                    logged = re.sub(r"^/v1/customers/[^/]+", "/v1/customers/~", logged)
                    self.assertRegex(line["path"], r"^/v1/customers/~[0-9a-f]{16}(/|$)")
                    line["path"] = re.sub(r"~[0-9a-f]{16}", "~", line["path"])
                self.assertEqual(line["path"], logged)
                self.assertEqual(line["status"], status)
                self.assertEqual(line["bytes"], size)
                self.assertIsInstance(line["duration_us"], int)
                self.assertGreaterEqual(line["duration_us"], 0)
                self.assertLess(line["duration_us"], 5000000)
                when = datetime.datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
                when = when.replace(tzinfo=datetime.timezone.utc)
                self.assertLess(abs((when - t0).total_seconds()), 60)
            self.assertEqual([a[0] for a in answers], [200, 404, 404, 200, 401, 413, 405, 400])
            self.assertTrue(all(len(l) < 4096 for l in text.splitlines()))  # PIPE_BUF
            self.assertTrue(text.isascii())
        finally:
            srv.kill()

    def test_sampling_to_stdout(self):
        srv = self.serve("--access-log", "-", "--access-log-sample", "0.25")
        try:
            c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=HTTP_TIMEOUT)
            for _ in range(400):
                c.request("GET", "/healthz")
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, 200)
            c.close()
            self.assertEqual(srv.stop(), 0)
            got = self.lines(srv.stdout())
            # Binomial(400, 0.25): mean 100, sd 8.7.
            self.assertTrue(50 <= len(got) <= 150, len(got))
            self.assertTrue(all(l["path"] == "/healthz" for l in got))
        finally:
            srv.kill()

    def test_reopened_on_sighup(self):
        log = os.path.join(self.tmp, "access.log")
        srv = self.serve("--access-log", log)
        try:
            self.assertEqual(srv.request("GET", "/healthz")[0], 200)
            os.rename(log, log + ".1")  # what logrotate does
            srv.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while not os.path.exists(log) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertTrue(os.path.exists(log), srv.stderr())
            self.assertEqual(srv.request("GET", "/readyz")[0], 200)
            self.assertEqual(srv.stop(), 0)
            with open(log + ".1") as f:
                old = self.lines(f.read())
            with open(log) as f:
                new = self.lines(f.read())
            self.assertEqual([l["path"] for l in old], ["/healthz"])
            self.assertEqual([l["path"] for l in new], ["/readyz"])
        finally:
            srv.kill()


class Drain(Base):
    def test_sigterm_answers_requests_in_flight(self):
        """Clients keep every connection busy (recommendations, and event
        batches that wait for an fsync) when SIGTERM comes: every request
        the server had begun is answered; afterwards connections are refused.
        Before the drain, each busy connection lost its request."""
        srv = self.serve()
        counts = {"ok": 0, "refused": 0, "lost": 0, "other": 0}
        lock = threading.Lock()
        stop_at = time.monotonic() + 3

        def client(i):
            conn = None
            batch = json.dumps([{"customer_id": "d%d" % i, "item_id": "apple",
                                 "event": "view"}] * 50)
            while time.monotonic() < stop_at:
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", srv.port,
                                                          timeout=HTTP_TIMEOUT)
                    if i % 2:
                        conn.request("POST", "/v1/events", batch)
                    else:
                        conn.request("GET", "/v1/customers/12001/recommendations?n=5")
                    r = conn.getresponse()
                    r.read()
                    key = "ok" if r.status == 200 else "other"
                    if r.getheader("connection", "").lower() == "close":
                        conn.close()
                        conn = None
                except ConnectionRefusedError:
                    key, conn = "refused", None
                    time.sleep(0.01)
                except (OSError, http.client.HTTPException):
                    key = "lost"
                    if conn is not None:
                        conn.close()
                    conn = None
                with lock:
                    counts[key] += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        try:
            time.sleep(1)
            with lock:
                self.assertGreater(counts["ok"], 0, counts)
            t0 = time.monotonic()
            rc = srv.stop()
            took = time.monotonic() - t0
        finally:
            for t in threads:
                t.join(timeout=10)
            srv.kill()
        self.assertEqual(rc, 0, srv.stderr())
        self.assertEqual(counts["lost"], 0, counts)
        self.assertEqual(counts["other"], 0, counts)
        self.assertGreater(counts["refused"], 0, counts)
        self.assertLess(took, 5)
        self.assertIn("SIGTERM received, draining", srv.stderr())
        self.assertIn("drained; stopping", srv.stderr())

    def test_drain_timeout_bounds_a_stuck_request(self):
        """A request whose body never finishes keeps the drain waiting only
        up to --drain-timeout."""
        srv = self.serve("--drain-timeout", "1")
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=HTTP_TIMEOUT)
        try:
            s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[")
            time.sleep(0.2)
            t0 = time.monotonic()
            rc = srv.stop()
            took = time.monotonic() - t0
        finally:
            s.close()
            srv.kill()
        self.assertEqual(rc, 0, srv.stderr())
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 5)
        self.assertIn("1 requests still in flight after 1 s", srv.stderr())


class Backup(Base):
    def test_mdb_copy_while_serving(self):
        """docs/operations.md's backup: mdb_copy of the state (a consistent snapshot,
        taken while the server writes) plus erasures.txt; a server started on
        the copy has the events and the erasure."""
        if not shutil.which("mdb_copy"):
            self.fail("mdb_copy missing: apt-get install lmdb-utils")
        state = os.path.join(self.tmp, "state")
        srv = self.serve(state=state)
        backup = os.path.join(self.tmp, "backup")
        os.mkdir(backup)
        try:
            # Timestamped after the model's as-of: without one, an event
            # takes the model's clock, which may still equal as-of when the
            # model is less than a second old.
            ev = json.dumps({"customer_id": "kept", "item_id": "apple", "event": "cart",
                             "timestamp": SHARED["after_as_of"]})
            self.assertEqual(srv.request("POST", "/v1/events", ev)[0], 200)
            ev = json.dumps({"customer_id": "gone", "item_id": "apple", "event": "cart"})
            self.assertEqual(srv.request("POST", "/v1/events", ev)[0], 200)
            self.assertEqual(srv.request("DELETE", "/v1/customers/gone")[0], 200)
            p = subprocess.run(["mdb_copy", "-n", os.path.join(state, "state.mdb"),
                                os.path.join(backup, "state.mdb")], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            shutil.copy(os.path.join(state, "erasures.txt"), backup)
            self.assertEqual(srv.request("GET", "/healthz")[0], 200)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.kill()
        restored = self.serve(state=backup)
        try:
            status, body, _ = restored.request("GET", "/v1/customers/kept")
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body)["events_since_model"], 1)
            self.assertEqual(restored.request("GET", "/v1/customers/gone")[0], 404)
            self.assertEqual(restored.stop(), 0)
        finally:
            restored.kill()


class Metrics(Base):
    FAMILIES = [
        "shopkeeper_request_duration_seconds_bucket{le=\"+Inf\"}",
        "shopkeeper_request_duration_seconds_sum",
        "shopkeeper_events_accepted_total",
        "shopkeeper_events_rejected_total",
        "shopkeeper_model_info{",
        "shopkeeper_model_age_seconds",
        'shopkeeper_state_map_bytes{kind="used"}',
        'shopkeeper_state_map_bytes{kind="size"}',
        "shopkeeper_open_connections",
        'shopkeeper_model_reloads_total{result="ok"}',
    ]

    def promtool(self, text):
        exe = shutil.which("promtool")
        if not exe:
            self.fail("promtool missing: apt-get install prometheus (make test-deploy does)")
        return subprocess.run([exe, "check", "metrics"], input=text, capture_output=True,
                              text=True, timeout=30)

    def test_promtool_accepts_a_real_answer(self):
        srv = self.serve()
        try:
            srv.request("GET", "/v1/items/apple/similar")
            srv.request("GET", "/v1/items/nothing/similar")
            srv.request("POST", "/v1/events", json.dumps(
                [{"customer_id": "m", "item_id": "apple", "event": "cart"},
                 {"customer_id": "m", "item_id": "apple", "event": "nope"}]))
            srv.request("POST", "/admin/reload")
            status, body, hdrs = srv.request("GET", "/metrics")
            self.assertEqual(status, 200)
            self.assertTrue(hdrs["content-type"].startswith("text/plain; version=0.0.4"))
            text = body.decode()
            for fam in self.FAMILIES:
                self.assertIn(fam, text)
            # Requests by route and status.
            for status in (200, 404):
                self.assertRegex(text, r'(?m)^shopkeeper_requests_total\{route="GET '
                                 r'/v1/items/\{\w+\}/similar",status="%d"\} 1$' % status)
            self.assertRegex(text, r"(?m)^shopkeeper_events_accepted_total 1$")
            self.assertRegex(text, r"(?m)^shopkeeper_events_rejected_total 1$")
            p = self.promtool(text)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(p.stdout + p.stderr, "", "promtool lint findings")
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.kill()
        # The check itself can fail: a counter without _total, a sample with
        # no TYPE, a broken line.
        broken = text.replace("shopkeeper_events_accepted_total", "shopkeeper_events_accepted")
        self.assertNotEqual(self.promtool(broken).returncode, 0)
        self.assertNotEqual(self.promtool(text + "shopkeeper_broken{le=} 1\n").returncode, 0)


if __name__ == "__main__":
    run_main("serve_ops")
