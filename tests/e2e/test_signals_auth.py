#!/usr/bin/env python3
"""Signals, authentication defaults and ids in the access log (issue 21).

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_signals_auth.py [-v] [TestClass[.test]]

- Signals: a SIGHUP storm under request load gives (coalesced) reloads and
  never a death; SIGTERM then drains and the server exits 0. Every thread the
  server starts blocks the handled signals.
- API keys fail closed: a key file or variable that names no key refuses to
  start. Protected mode: without keys, a server listening beyond loopback
  answers writing and admin routes 403 `protected_mode` (reads are served)
  unless --insecure-no-auth says so.
- The access log names customers by a keyed hash (SipHash-2-4, checked here
  against an implementation of its own), so an erasure leaves no id there.

SHOPKEEPER_TIME_FACTOR=N stretches every time bound N times (for a server
under valgrind). The last line printed is "N passed, N failed".
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import re
import struct
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lib as ts  # noqa: E402  (the shared helpers: Server, train, run)
from lib import Server, run, train  # noqa: E402

FACTOR = float(os.environ.get("SHOPKEEPER_TIME_FACTOR", "1"))
HTTP_TIMEOUT = 5 * FACTOR
KEY = "k-0123456789abcdef-signals"
SHARED = {}
SIGNALS = {signal.SIGHUP, signal.SIGINT, signal.SIGTERM}


def setUpModule():
    tmp = tempfile.mkdtemp(prefix="shopkeeper-sigauth-")
    SHARED["tmp"] = tmp
    SHARED["model"] = os.path.join(tmp, "model")
    train(SHARED["model"])


def tearDownModule():
    for s in list(ts.LIVE_SERVERS):
        s.kill()
    shutil.rmtree(SHARED.get("tmp", "/nonexistent-shopkeeper-sigauth"), ignore_errors=True)


def state_dir():
    return tempfile.mkdtemp(dir=SHARED["tmp"])


def mask(hexstr):
    bits = int(hexstr, 16)
    return {s for s in SIGNALS if bits & (1 << (int(s) - 1))}


def threads_of(pid):
    """[(tid, name, blocked signals)] of a process, from /proc."""
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                fields = dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)
        except FileNotFoundError:
            continue  # the thread ended meanwhile
        out.append((int(tid), fields["Name"], mask(fields["SigBlk"]), mask(fields["SigCgt"])))
    return out


class Load:
    """Client threads sending reads and events over keep-alive connections
    until stopped (or a bounded number of requests each). What they see is
    kept until `quiet()` (called before SIGTERM): errors once the server
    drains are not the test's business."""

    def __init__(self, port, clients=2, limit=20000, headers=None):
        self.port = port
        self.limit = limit
        self.headers = headers or {}
        self.stopping = threading.Event()
        self.recording = threading.Event()
        self.recording.set()
        self.statuses = {}
        self.errors = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True)
                        for i in range(clients)]
        for t in self.threads:
            t.start()

    def client(self, i):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        body = json.dumps({"customer_id": "storm-%d" % i, "item_id": "apple", "event": "view"})
        for n in range(self.limit):
            if self.stopping.is_set():
                break
            try:
                if n % 2:
                    c.request("POST", "/v1/events", body=body,
                              headers=dict(self.headers, **{"Content-Type": "application/json"}))
                else:
                    c.request("GET", "/v1/customers/alice/recommendations?n=3")
                r = c.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException) as e:
                if self.recording.is_set():
                    with self.lock:
                        self.errors.append(repr(e))
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
                continue
            if self.recording.is_set():
                with self.lock:
                    self.statuses[status] = self.statuses.get(status, 0) + 1
        c.close()

    def quiet(self):
        self.recording.clear()

    def stop(self):
        self.recording.clear()
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=2 * HTTP_TIMEOUT)


class Signals(unittest.TestCase):
    def test_every_started_thread_blocks_the_handled_signals(self):
        with Server(SHARED["model"], state_dir(), threads=3) as srv:
            threads = threads_of(srv.proc.pid)
            main = [t for t in threads if t[0] == srv.proc.pid]
            self.assertEqual(len(main), 1)
            # A handler is installed (process-wide): a thread started before
            # main (OpenBLAS's pool) that takes a signal runs it, not the
            # default action that would end the process.
            self.assertEqual(main[0][3], SIGNALS, threads)
            workers = [t for t in threads if t[1] == "MHD-worker"]
            self.assertEqual(len(workers), 3, threads)
            for t in workers:
                self.assertEqual(t[2], SIGNALS, t)
            # The thread that accepts connections (http_listen.c).
            accepting = [t for t in threads if t[1] == "sk-accept"]
            self.assertEqual(len(accepting), 1, threads)
            self.assertEqual(accepting[0][2], SIGNALS, accepting)
            self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_sighup_then_sigterm_drains_and_exits_0(self):
        """The issue's reproduction: SIGHUP then SIGTERM at once, five times."""
        for attempt in range(5):
            with Server(SHARED["model"], state_dir()) as srv:
                srv.proc.send_signal(signal.SIGHUP)
                srv.proc.send_signal(signal.SIGTERM)
                self.assertEqual(srv.stop(), 0, (attempt, srv.stderr()))
                self.assertIn("SIGTERM received, draining", srv.stderr())
                self.assertIn("drained; stopping", srv.stderr())

    def test_sighup_storm_under_load_then_sigterm(self):
        storm = 400
        with Server(SHARED["model"], state_dir(), threads=2) as srv:
            load = Load(srv.port)
            try:
                time.sleep(0.2 * FACTOR)  # the clients are sending
                for i in range(storm):
                    os.kill(srv.proc.pid, signal.SIGHUP)
                    if i % 50 == 0:
                        self.assertIsNone(srv.proc.poll(), srv.stderr())
                # Still serving, with the reloads the storm asked for.
                deadline = time.monotonic() + 10 * FACTOR
                while "reloaded" not in srv.stderr() and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.assertIsNone(srv.proc.poll(), srv.stderr())
                self.assertEqual(srv.get("/readyz").status, 200)
                load.quiet()
                srv.proc.send_signal(signal.SIGTERM)
                rc = srv.stop()
            finally:
                load.stop()
            err = srv.stderr()
            self.assertEqual(rc, 0, err[-2000:])
            self.assertIn("SIGTERM received, draining", err)
            self.assertIn("drained; stopping", err)
            reloads = err.count("SIGHUP: reloaded")
            self.assertGreaterEqual(reloads, 1, err[-2000:])
            self.assertLessEqual(reloads, storm)  # never more reloads than signals
            self.assertNotIn("kept the current model", err)
            # Every answer before SIGTERM was a success: a reload drops nothing.
            self.assertEqual(load.errors, [])
            self.assertEqual(set(load.statuses), {200}, load.statuses)
            self.assertGreater(sum(load.statuses.values()), 0)

    def test_sigterm_while_connections_come_and_go_at_the_limit(self):
        """SIGTERM while clients connect and disconnect at --max-connections
        exits 0. With libmicrohttpd's own listening socket, quiescing it
        raced its pool threads and the loser aborted (a CI run, 2026-12-01;
        2 runs in 30 of this loop). tests/test_http_drain.c widens the race
        window and fails reliably without the fix; this is the server's own
        drain path under the same churn."""
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for attempt in range(5):
            with Server(SHARED["model"], state_dir(), threads=2,
                        extra=("--max-connections", "4")) as srv:
                stop = threading.Event()

                def churn():
                    while not stop.is_set():
                        try:
                            with socket.create_connection(("127.0.0.1", srv.port),
                                                          timeout=0.5) as c:
                                c.sendall(request)
                                c.recv(64)
                        except OSError:
                            pass  # refused or reset once the drain began

                clients = [threading.Thread(target=churn) for _ in range(12)]
                for c in clients:
                    c.start()
                try:
                    time.sleep(0.3 * FACTOR)
                    srv.proc.send_signal(signal.SIGTERM)
                    rc = srv.stop()
                finally:
                    stop.set()
                    for c in clients:
                        c.join()
                self.assertEqual(rc, 0, (attempt, srv.stderr()[-1500:]))
                self.assertIn("drained; stopping", srv.stderr())

    def test_sigterm_storm_drains_once(self):
        with Server(SHARED["model"], state_dir()) as srv:
            for _ in range(200):
                os.kill(srv.proc.pid, signal.SIGTERM)
            self.assertEqual(srv.stop(), 0, srv.stderr())
            self.assertEqual(srv.stderr().count("draining"), 1, srv.stderr())


def serve_env(**kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPKEEPER_")}
    env.update(kw)
    return env


def serve_once(args, env=None, timeout=10):
    """Runs serve expecting it to refuse to start; returns CompletedProcess."""
    try:
        return subprocess.run([ts.BIN, "serve", "--model", SHARED["model"], "--state", state_dir(),
                               "--listen", "127.0.0.1:0"] + list(args),
                              env=env or serve_env(), capture_output=True, text=True,
                              timeout=timeout * FACTOR)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("serve %s started instead of refusing: %s" % (args, e.stderr))


class KeysFailClosed(unittest.TestCase):
    """A key source that is named but gives no key refuses to start."""

    def test_empty_sources_refuse_to_start(self):
        d = tempfile.mkdtemp(dir=SHARED["tmp"])
        empty = os.path.join(d, "empty")
        open(empty, "w").close()
        comments = os.path.join(d, "comments")
        with open(comments, "w") as f:
            f.write("# production keys go here\n\n   \n# " + KEY + "\n")
        cases = [
            (["--api-keys", empty], None, "names no API key"),
            (["--api-keys", comments], None, "names no API key"),
            (["--api-keys", d], None, "cannot read API keys"),  # a directory
            (["--api-keys", os.path.join(d, "missing")], None, "cannot read API keys"),
            ([], serve_env(SHOPKEEPER_API_KEYS=""), "SHOPKEEPER_API_KEYS is set but names no key"),
            ([], serve_env(SHOPKEEPER_API_KEYS=" , "), "SHOPKEEPER_API_KEYS is set but names no key"),
            ([], serve_env(SHOPKEEPER_API_KEYS_FILE=empty), "names no API key"),
        ]
        for args, env, says in cases:
            with self.subTest(args=args, env=env and {k: v for k, v in env.items()
                                                     if k.startswith("SHOPKEEPER_")}):
                p = serve_once(args, env)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn(says, p.stderr)
                self.assertNotIn("serving on port", p.stderr)

    def test_insecure_no_auth_with_keys_is_a_usage_error(self):
        p = serve_once(["--insecure-no-auth"], serve_env(SHOPKEEPER_API_KEYS=KEY))
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--insecure-no-auth", p.stderr)


WRITES = [  # (method, path, body): every writing and admin route
    ("POST", "/v1/events", json.dumps({"customer_id": "zed", "item_id": "apple",
                                       "event": "view"})),
    ("PUT", "/v1/customers/alice/consent", json.dumps({"personalization": False})),
    ("PUT", "/v1/items/apple", json.dumps({"available": True})),
    ("DELETE", "/v1/customers/bob", None),
    ("POST", "/admin/reload", None),
]
READS = ["/v1/customers/alice/recommendations?n=2", "/v1/customers/alice",
         "/v1/items/apple/similar", "/v1/segments", "/metrics", "/healthz", "/readyz"]


class ProtectedMode(unittest.TestCase):
    def check_writes(self, srv, want, headers=None):
        for method, path, body in WRITES:
            r = srv.request(method, path, body=body, headers=headers)
            self.assertEqual(r.status, want, (method, path, r))
            if want == 403:
                err = r.json["error"]
                self.assertEqual(err["code"], "protected_mode", r)
                self.assertIn("--api-keys", err["message"])
                self.assertIn("--insecure-no-auth", err["message"])

    def check_reads(self, srv):
        for path in READS:
            self.assertEqual(srv.get(path).status, 200, path)

    def test_beyond_loopback_without_keys_refuses_writes(self):
        for listen in ["0.0.0.0:0", ":0"]:
            with self.subTest(listen=listen), \
                    Server(SHARED["model"], state_dir(), extra=["--listen", listen]) as srv:
                self.assertIn("API keys off (protected mode", srv.stderr())
                self.check_reads(srv)
                self.check_writes(srv, 403)
                # A key does not help: there are none to match.
                self.check_writes(srv, 403, {"Authorization": "Bearer " + KEY})
                self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_insecure_no_auth_opens_writes(self):
        with Server(SHARED["model"], state_dir(),
                    extra=["--listen", "0.0.0.0:0", "--insecure-no-auth"]) as srv:
            self.assertIn("API keys off (--insecure-no-auth)", srv.stderr())
            self.check_reads(srv)
            self.check_writes(srv, 200)
            self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_keys_beyond_loopback(self):
        d = tempfile.mkdtemp(dir=SHARED["tmp"])
        keys = os.path.join(d, "keys")
        with open(keys, "w") as f:
            f.write(KEY + "\n")
        with Server(SHARED["model"], state_dir(),
                    extra=["--listen", "0.0.0.0:0", "--api-keys", keys]) as srv:
            self.check_reads(srv)
            r = srv.request("POST", "/admin/reload")
            self.assertEqual((r.status, r.json["error"]["code"]), (401, "unauthorized"))
            r = srv.request("POST", "/admin/reload", headers={"Authorization": "Bearer x" + KEY})
            self.assertEqual((r.status, r.json["error"]["code"]), (403, "forbidden"))
            self.check_writes(srv, 200, {"Authorization": "Bearer " + KEY})
            self.assertEqual(srv.stop(), 0, srv.stderr())

    def test_loopback_without_keys_stays_open(self):
        with Server(SHARED["model"], state_dir(), extra=["--listen", "127.0.0.1:0"]) as srv:
            self.assertRegex(srv.stderr(), r"API keys off, access log")
            self.check_writes(srv, 200)
            self.assertEqual(srv.stop(), 0, srv.stderr())



def siphash24(key, data):
    """SipHash-2-4 (64-bit), written from the paper, for checking the server's."""
    mask = (1 << 64) - 1

    def rotl(x, b):
        return ((x << b) | (x >> (64 - b))) & mask

    k0, k1 = struct.unpack("<QQ", key)
    v = [k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d,
         k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573]

    def rounds(n):
        for _ in range(n):
            v[0] = (v[0] + v[1]) & mask; v[1] = rotl(v[1], 13) ^ v[0]; v[0] = rotl(v[0], 32)
            v[2] = (v[2] + v[3]) & mask; v[3] = rotl(v[3], 16) ^ v[2]
            v[0] = (v[0] + v[3]) & mask; v[3] = rotl(v[3], 21) ^ v[0]
            v[2] = (v[2] + v[1]) & mask; v[1] = rotl(v[1], 17) ^ v[2]; v[2] = rotl(v[2], 32)

    tail = len(data) % 8
    words = [struct.unpack("<Q", data[i:i + 8])[0] for i in range(0, len(data) - tail, 8)]
    words.append(int.from_bytes(data[len(data) - tail:], "little") | ((len(data) & 0xff) << 56))
    for m in words:
        v[3] ^= m
        rounds(2)
        v[0] ^= m
    v[2] ^= 0xff
    rounds(4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


class AccessLogIds(unittest.TestCase):
    """Erasure cannot reach lines already logged: ids are hashed there."""

    def key_of(self, path):
        with open(path) as f:
            return bytes.fromhex(f.read().strip())

    def serve_logged(self, *extra):
        st = state_dir()
        log = st + ".access.log"
        srv = Server(SHARED["model"], st, extra=["--access-log", log] + list(extra))
        return srv, st, log

    def exercise(self, srv, customer):
        c = urllib.parse.quote(customer, safe="")
        ev = json.dumps({"customer_id": customer, "item_id": "apple", "event": "view"})
        self.assertEqual(srv.request("POST", "/v1/events", body=ev).status, 200)
        self.assertEqual(srv.get("/v1/customers/%s/recommendations?n=2" % c).status, 200)
        self.assertEqual(srv.get("/v1/customers/%s" % c).status, 200)
        self.assertEqual(srv.request("DELETE", "/v1/customers/%s" % c).status, 200)
        self.assertEqual(srv.get("/v1/customers/%s" % c).status, 404)

    def test_ids_are_hashed_by_default(self):
        customer = "erase-me \u00e9/42"
        srv, st, log = self.serve_logged()
        with srv:
            self.assertIn("access log %s (customer ids hashed)" % log, srv.stderr())
            self.exercise(srv, customer)
            self.assertEqual(srv.get("/v1/items/apple/similar").status, 200)
            self.assertEqual(srv.stop(), 0, srv.stderr())
        keyfile = os.path.join(st, "access-log.key")
        self.assertEqual(os.stat(keyfile).st_mode & 0o777, 0o600)
        want = "~%016x" % siphash24(self.key_of(keyfile), customer.encode())
        with open(log) as f:
            text = f.read()
        self.assertNotIn("erase-me", text)
        lines = [json.loads(l) for l in text.splitlines()]
        lines = [l for l in lines if l["path"] != "/healthz"]  # Server's readiness probes
        self.assertEqual(len(lines), 6, text)
        paths = [l["path"] for l in lines]
        self.assertEqual(paths[0], "/v1/events")
        self.assertEqual(paths[1:5], ["/v1/customers/%s/recommendations" % want] +
                         ["/v1/customers/%s" % want] * 3)
        self.assertEqual(paths[5], "/v1/items/apple/similar")  # item ids stay
        self.assertEqual([l["status"] for l in lines], [200, 200, 200, 200, 404, 200])

    def test_raw_ids_on_request_and_a_shared_key(self):
        srv, st, log = self.serve_logged("--access-log-ids", "raw")
        with srv:
            self.assertIn("(raw ids)", srv.stderr())
            self.exercise(srv, "raw-one")
            self.assertEqual(srv.stop(), 0, srv.stderr())
        with open(log) as f:
            self.assertIn("/v1/customers/raw-one/recommendations", f.read())
        self.assertFalse(os.path.exists(os.path.join(st, "access-log.key")))
        # Two replicas given one key log one customer alike.
        key = os.path.join(SHARED["tmp"], "shared.key")
        with open(key, "w") as f:
            f.write("00112233445566778899aabbccddeeff\n")
        hashes = []
        for _ in range(2):
            srv, st, log = self.serve_logged("--access-log-key", key)
            with srv:
                self.assertEqual(srv.get("/v1/customers/alice").status, 200)
                self.assertEqual(srv.stop(), 0, srv.stderr())
            with open(log) as f:
                hashes += [json.loads(l)["path"] for l in f if "/healthz" not in l]
            self.assertFalse(os.path.exists(os.path.join(st, "access-log.key")))
        want = "/v1/customers/~%016x" % siphash24(bytes.fromhex("00112233445566778899aabbccddeeff"),
                                                   b"alice")
        self.assertEqual(hashes, [want, want])

    def test_sighup_reopens_after_the_lines_already_logged(self):
        """logrotate: rename, SIGHUP; every line logged before the signal is
        in the old file (the filter holds lines in flight), later ones in
        the new."""
        srv, st, log = self.serve_logged()
        with srv:
            c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=HTTP_TIMEOUT)
            for _ in range(50):
                c.request("GET", "/v1/customers/alice")
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, 200)
            c.close()
            time.sleep(0.01 * FACTOR)  # the last line is written just after its answer
            os.rename(log, log + ".1")
            srv.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5 * FACTOR
            while not os.path.exists(log) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertTrue(os.path.exists(log), srv.stderr())
            self.assertEqual(srv.get("/v1/items/apple/similar").status, 200)
            self.assertEqual(srv.stop(), 0, srv.stderr())
        with open(log + ".1") as f:
            old = [json.loads(l)["path"] for l in f if "/healthz" not in l]
        with open(log) as f:
            new = [json.loads(l)["path"] for l in f]
        self.assertEqual(len(old), 50)
        self.assertTrue(all(re.match(r"^/v1/customers/~[0-9a-f]{16}$", p) for p in old), old)
        self.assertEqual(new, ["/v1/items/apple/similar"])

    def test_bad_key_or_option_refuses_to_start(self):
        key = os.path.join(SHARED["tmp"], "bad.key")
        with open(key, "w") as f:
            f.write("not a key\n")
        p = serve_once(["--access-log", "-", "--access-log-key", key])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("32 hex digits", p.stderr)
        p = serve_once(["--access-log", "-", "--access-log-ids", "sometimes"])
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("expected hash or raw", p.stderr)


if __name__ == "__main__":
    sys.exit(ts.run_suite(__name__, sys.argv[1:], lambda: [], "signals_auth"))
