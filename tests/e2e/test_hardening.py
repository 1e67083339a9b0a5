#!/usr/bin/env python3
"""Hardening tests for shopkeeper: limits, slow clients, crash safety.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_hardening.py [-v] [TestClass[.test]]

Every limit in SECURITY.md's "Limits" table is pushed past here, against the
real binary on 127.0.0.1, and must get its documented answer while other
clients keep being served. The crash-safety loop kills the server with
SIGKILL while a client posts events and checks that nothing acknowledged
was lost. Python 3 standard library only; builds on the helpers of
lib.py.

SHOPKEEPER_TIME_FACTOR=N stretches every time bound N times (for a server
under valgrind). The last line printed is "N passed, N failed".
"""
import datetime
import http.client
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from lib import (FACTOR, INTERACTIONS, ITEMS, ApiTestCase, Response, Server,  # noqa: E402
                 kill_servers, model_meta, raw_exchange, read_response, run, run_suite,
                 stop_shared, train)

LATENCY = 2.0 * FACTOR   # longest wait another client may see while a limit is pushed
HTTP_TIMEOUT = 5 * FACTOR
REC_PATH = "/v1/customers/alice/recommendations?n=4"
REC_ITEMS = ["cheese", "dates", "tea/green", "eggs"]  # lib.EXPECTED["alice"]

SHARED = {}


def setUpModule():
    tmp = tempfile.mkdtemp(prefix="shopkeeper-hard-")
    SHARED["tmp"] = tmp
    SHARED["model"] = os.path.join(tmp, "model")
    train(SHARED["model"])
    SHARED["meta"] = model_meta(SHARED["model"])


def tearDownModule():
    kill_servers()
    shutil.rmtree(SHARED.get("tmp", "/nonexistent-shopkeeper-hard"), ignore_errors=True)


def connect(port, source=None, timeout=HTTP_TIMEOUT):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0) if source else None)


def get_on(sock, path="/healthz", timeout=HTTP_TIMEOUT):
    """One keep-alive GET on a raw socket; returns the status, or None when
    the server closed the connection or said nothing within `timeout`."""
    try:
        sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
    except OSError:
        return None
    return read_status(sock, timeout)


def read_status(sock, timeout=HTTP_TIMEOUT):
    """Reads one answer from sock: its status, or None (closed or silent)."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        try:
            chunk = sock.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if m and len(body) >= int(m.group(1)):
                return int(head.split()[1])
    return None


def closed_by_peer(sock, timeout):
    """True when the server closes sock within timeout (EOF or reset), False
    when it is still open then. Whatever the server sent first is drained."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            return False
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True


class Others:
    """Other clients, served while a test pushes a limit: a thread asks for
    alice's recommendations on a fresh connection every few milliseconds
    and records each answer's status, items and latency."""

    def __init__(self, port, source=None):
        self.port = port
        self.source = source
        self.ok = 0
        self.failures = []
        self.latencies = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT,
                                               source_address=(self.source, 0)
                                               if self.source else None)
                try:
                    c.request("GET", REC_PATH)
                    resp = read_response(c.getresponse())
                finally:
                    c.close()
                self.latencies.append(time.monotonic() - t0)
                items = [it["item_id"] for it in resp.json["items"]] if resp.status == 200 else []
                if resp.status != 200 or items != REC_ITEMS:
                    self.failures.append(resp)
                else:
                    self.ok += 1
            except Exception as e:  # reported by check()
                self.failures.append(repr(e))
            self._stop.wait(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=2 * HTTP_TIMEOUT)

    def check(self, test, min_ok=3):
        test.assertFalse(self._thread.is_alive(), "the other client hung")
        test.assertEqual(self.failures, [], "other clients were not served")
        test.assertGreaterEqual(self.ok, min_ok, "too few answers for other clients")
        test.assertLess(max(self.latencies), LATENCY,
                        "another client waited %.2f s" % max(self.latencies))


class Base(ApiTestCase):
    SERVER_ARGS = ()  # extra `serve` options for the class's server
    THREADS = 2

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="shopkeeper-hard-c-")
        cls.srv = Server(SHARED["model"], os.path.join(cls.tmp, "state"), threads=cls.THREADS,
                         extra=cls.SERVER_ARGS)

    @classmethod
    def tearDownClass(cls):
        try:
            stop_shared(cls.srv)
        finally:
            cls.srv.kill()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.socks = []
        self.addCleanup(self._close_socks)

    def _close_socks(self):
        for s in self.socks:
            s.close()

    def sock(self, source=None):
        s = connect(self.srv.port, source)
        self.socks.append(s)
        return s

    def fill(self, n):
        """n connections, each answered once. The server may not have seen
        the close of the last health check yet: a connection it turns away
        is retried for a moment."""
        conns = []
        deadline = time.monotonic() + 3 * FACTOR
        while len(conns) < n:
            s = self.sock()
            if get_on(s, timeout=1.0) == 200:
                conns.append(s)
            else:
                s.close()
                self.assertLess(time.monotonic(), deadline, "only %d of %d connections "
                                "were served" % (len(conns), n))
                time.sleep(0.1)
        return conns

    def open_connections(self):
        m = re.search(r"(?m)^shopkeeper_open_connections (\d+)$",
                      self.srv.get("/metrics").body.decode())
        self.assertIsNotNone(m, "no shopkeeper_open_connections in /metrics")
        return int(m.group(1))


# ---------------------------------------------------------------------------
# Slow clients: slowloris, idle timeout
# ---------------------------------------------------------------------------
class SlowClientTests(Base):
    TIMEOUT = 2
    SERVER_ARGS = ("--timeout", str(TIMEOUT))

    def test_slowloris(self):
        """200 connections send their headers a byte at a time (and 20 more a
        body), for 3 s: other clients are answered promptly all along; once
        the slow ones stall, the idle timeout closes every one of them."""
        n_head, n_body, tick, drip_for = 200, 20, 0.2, 3.0
        head = b"GET /v1/segments HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000
        body_head = (b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        slow = []  # [socket, bytes to drip, position]
        for i in range(n_head + n_body):
            s = self.sock()
            s.setblocking(False)
            if i < n_head:
                slow.append([s, head, 0])
            else:
                s.sendall(body_head)
                slow.append([s, b"[" + b" " * 10000, 0])
        with Others(self.srv.port) as others:
            t_end = time.monotonic() + drip_for
            while time.monotonic() < t_end:
                for entry in slow:
                    s, data, pos = entry
                    try:
                        s.send(data[pos:pos + 1])
                        entry[2] += 1
                    except OSError:
                        pass  # closed early: counted below like the others
                time.sleep(tick)
            t_idle = time.monotonic()
            # Still served while every slow connection is open and idle.
            time.sleep(0.5)
        others.check(self, min_ok=10)
        # Every slow connection stalls now: each must be closed by the
        # idle timeout, not before it, and none answered.
        deadline = t_idle + self.TIMEOUT + 4 * FACTOR
        open_socks = {entry[0] for entry in slow}
        closed_at = []
        while open_socks and time.monotonic() < deadline:
            r, _, _ = select.select(list(open_socks), [], [], 0.2)
            for s in r:
                try:
                    data = s.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                self.assertNotIn(b"HTTP/1.1 2", data, "a slow request was answered")
                if not data:
                    open_socks.discard(s)
                    closed_at.append(time.monotonic() - t_idle)
        self.assertEqual(len(open_socks), 0, "%d slow connections still open %.1f s after "
                         "they went idle" % (len(open_socks), deadline - t_idle))
        self.assertGreater(min(closed_at), self.TIMEOUT - 1.0,
                           "slow connections closed before the idle timeout")
        # The server's own count follows (the /metrics request is one).
        deadline = time.monotonic() + 3 * FACTOR
        while self.open_connections() > 2:
            self.assertLess(time.monotonic(), deadline, "the server still counts the slow "
                            "connections")
            time.sleep(0.2)
        self.assertServing()
        if os.environ.get("VERBOSE"):
            print("slowloris: %d slow connections, others: %d answers, max %.1f ms"
                  % (len(slow), others.ok, 1000 * max(others.latencies)))

    def test_idle_keepalive_closed_after_timeout(self):
        s = self.sock()
        self.assertEqual(get_on(s), 200)
        t0 = time.monotonic()
        self.assertTrue(closed_by_peer(s, self.TIMEOUT + 3 * FACTOR),
                        "an idle keep-alive connection outlived --timeout")
        self.assertGreater(time.monotonic() - t0, self.TIMEOUT - 1.0)
        self.assertServing()


# ---------------------------------------------------------------------------
# Header size, path length: per-connection memory
# ---------------------------------------------------------------------------
class HeaderLimitTests(Base):
    """The default per-connection memory (16 KiB) holds the request line and
    headers; past it libmicrohttpd answers 431 and closes."""

    def request_with_headers(self, headers, port=None):
        head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n"
        status, _, body, s = raw_exchange(port or self.srv.port, head)
        s.close()
        return status, body

    def test_header_over_limit_431(self):
        with Others(self.srv.port) as others:
            status, _ = self.request_with_headers(b"X-Big: " + b"a" * 30000 + b"\r\n")
            self.assertEqual(status, 431)
            # Many small headers add up the same way.
            many = b"".join(b"X-H%d: v\r\n" % i for i in range(3000))
            status, _ = self.request_with_headers(many)
            self.assertEqual(status, 431)
            # Under the limit, big headers are fine.
            status, body = self.request_with_headers(b"X-Big: " + b"a" * 10000 + b"\r\n")
            self.assertEqual(status, 200, body)
            time.sleep(0.2)
        others.check(self)
        self.assertServing()

    def test_path_over_limit_414(self):
        with Others(self.srv.port) as others:
            head = ("GET /v1/items/%s/similar HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                    % ("x" * 9000)).encode()
            status, headers, body, s = raw_exchange(self.srv.port, head)
            s.close()
            self.assertError(Response(status, headers, body), 414, "uri_too_long")
            time.sleep(0.2)
        others.check(self)

    def test_connection_memory_option(self):
        """--connection-memory moves the 431 line both ways."""
        for mem, fits, too_big in ((65536, 40000, 70000), (16384, 8000, 17000)):
            srv = Server(SHARED["model"], os.path.join(self.tmp, "state-%d" % mem),
                         extra=("--connection-memory", str(mem)))
            try:
                status, body = self.request_with_headers(b"X-Big: " + b"a" * fits + b"\r\n",
                                                         srv.port)
                self.assertEqual(status, 200, (mem, body))
                status, _ = self.request_with_headers(b"X-Big: " + b"a" * too_big + b"\r\n",
                                                      srv.port)
                self.assertEqual(status, 431, mem)
                self.assertEqual(srv.get("/healthz").status, 200)
                self.assertEqual(srv.stop(), 0, srv.stderr())
            finally:
                srv.kill()
        for bad in ("100", "16383", "2000000", "x"):
            p = run(["serve", "--model", SHARED["model"], "--state",
                     os.path.join(self.tmp, "st-bad"), "--connection-memory", bad])
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("--connection-memory", p.stderr)


# ---------------------------------------------------------------------------
# Request body
# ---------------------------------------------------------------------------
class BodyLimitTests(Base):
    LIMIT = 4096
    SERVER_ARGS = ("--max-body", str(LIMIT))

    def events_body(self, size):
        """A valid batch of events, padded with spaces to exactly size bytes."""
        ts0 = iso_to_unix(SHARED["meta"]["as_of"])
        ev = [{"customer_id": "body-limit", "item_id": "apple", "event": "view",
               "timestamp": ts0 + i + 1} for i in range(10)]
        raw = json.dumps(ev).encode()
        self.assertLessEqual(len(raw), size)
        return raw + b" " * (size - len(raw))

    def post(self, body_chunks, content_length=None, chunked=False):
        head = b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        if content_length is not None:
            head += b"Content-Length: %s\r\n" % str(content_length).encode()
        if chunked:
            head += b"Transfer-Encoding: chunked\r\n"
            body_chunks = [b"%x\r\n%s\r\n" % (len(c), c) for c in body_chunks] + [b"0\r\n\r\n"]
        status, headers, body, s = raw_exchange(self.srv.port, head + b"\r\n", body_chunks)
        s.close()
        return status, headers, body

    def test_content_length_over_limit(self):
        with Others(self.srv.port) as others:
            # Refused on the headers alone, before any body byte is sent.
            for cl in (self.LIMIT + 1, 10 ** 9):
                status, headers, body = self.post([], content_length=cl)
                self.assertError(Response(status, headers, body), 413, "body_too_large")
            status, headers, body = self.post([b"[" + b" " * 9999], content_length=10000)
            self.assertError(Response(status, headers, body), 413, "body_too_large")
            # A length past 64 bits is no way around it.
            status, headers, body = self.post([], content_length="9" * 30)
            self.assertIn(status, (400, 413), body)
            time.sleep(0.2)
        others.check(self)
        self.assertServing()

    def test_chunked_body_over_limit(self):
        """No Content-Length: the body is counted as it arrives."""
        with Others(self.srv.port) as others:
            status, headers, body = self.post([b"[" + b" " * 1999, b" " * 2000, b" " * 2000],
                                              chunked=True)
            self.assertError(Response(status, headers, body), 413, "body_too_large")
            time.sleep(0.2)
        others.check(self)
        self.assertServing()

    def test_body_at_limit_accepted(self):
        body = self.events_body(self.LIMIT)
        status, _, answer = self.post([body], content_length=len(body))
        self.assertEqual(status, 200, answer)
        self.assertEqual(json.loads(answer)["accepted"], 10)
        chunks = [body[i:i + 1000] for i in range(0, len(body), 1000)]
        status, _, answer = self.post(chunks, chunked=True)
        self.assertEqual(status, 200, answer)
        self.assertEqual(json.loads(answer)["accepted"], 10)


# ---------------------------------------------------------------------------
# Connection limits
# ---------------------------------------------------------------------------
class ConnectionLimitTests(Base):
    MAX = 6
    SERVER_ARGS = ("--max-connections", str(MAX), "--timeout", "60")

    def test_over_max_connections_waits_then_served(self):
        """At --max-connections, one more connection gets no answer (it waits
        in the listen backlog) while the open ones keep working; it is
        served as soon as one of them closes."""
        conns = self.fill(self.MAX)
        extra = self.sock()
        self.assertIsNone(get_on(extra, timeout=1.0), "a connection past the limit was served")
        for s in conns:
            self.assertEqual(get_on(s, REC_PATH), 200)
        conns[0].close()
        # Its request was sent above; it waited, it was not closed.
        self.assertEqual(read_status(extra, 3 * FACTOR), 200)
        for s in conns[1:]:
            self.assertEqual(get_on(s), 200)


class IdleSlotTests(Base):
    MAX = 4
    SERVER_ARGS = ("--max-connections", str(MAX), "--timeout", "1")

    def test_idle_connections_free_their_slots(self):
        """Clients that fill every slot and go idle do not lock others out
        for longer than the idle timeout."""
        conns = self.fill(self.MAX)
        t0 = time.monotonic()
        extra = self.sock()
        self.assertEqual(get_on(extra, REC_PATH, timeout=1 + 3 * FACTOR), 200)
        self.assertGreater(time.monotonic() - t0, 0.5, "served although every slot was taken")
        for s in conns:
            self.assertTrue(closed_by_peer(s, 2 * FACTOR), "an idle connection was kept")


class PerIPLimitTests(Base):
    PER_IP = 3
    SERVER_ARGS = ("--max-connections-per-ip", str(PER_IP), "--timeout", "60")

    def test_per_ip_limit(self):
        """One address past --max-connections-per-ip is closed at once; its
        open connections keep working and other addresses are served."""
        conns = self.fill(self.PER_IP)
        over = self.sock()
        over.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.assertTrue(closed_by_peer(over, 2 * FACTOR), "a connection past the per-IP limit "
                        "was not closed")
        for s in conns:
            self.assertEqual(get_on(s, REC_PATH), 200)
        # Another loopback address (127.0.0.0/8 is all local) has its own quota.
        others = [self.sock(source="127.0.0.2") for _ in range(2)]
        for s in others:
            self.assertEqual(get_on(s, REC_PATH), 200)
        conns[0].close()
        time.sleep(0.2)
        self.assertEqual(get_on(self.sock()), 200)


# ---------------------------------------------------------------------------
# Request rate: pipelining, slow readers
# ---------------------------------------------------------------------------
class RateTests(Base):
    """One pool thread, so the flood and the others share it."""
    THREADS = 1
    TIMEOUT = 2
    SERVER_ARGS = ("--timeout", str(TIMEOUT))
    N = 20000

    def test_pipelined_flood_does_not_starve_others(self):
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % REC_PATH).encode()
        flood = self.sock()
        got = [0]

        def reader():
            buf = b""
            try:
                while got[0] < self.N:
                    chunk = flood.recv(1 << 16)
                    if not chunk:
                        return
                    buf += chunk
                    got[0] += buf.count(b"HTTP/1.1 200 ")
                    buf = buf[buf.rfind(b"HTTP/1.1 200 ") + 1:] if b"HTTP/1.1 200 " in buf \
                        else buf[-16:]
            except OSError:
                return

        rt = threading.Thread(target=reader, daemon=True)
        sender = threading.Thread(target=lambda: flood.sendall(req * self.N), daemon=True)
        with Others(self.srv.port) as others:
            rt.start()
            sender.start()
            rt.join(timeout=30 * FACTOR)
        others.check(self, min_ok=3)
        self.assertEqual(got[0], self.N, "pipelined answers lost")
        if os.environ.get("VERBOSE"):
            print("pipelined flood: %d answers; others: %d answers, max %.1f ms"
                  % (got[0], others.ok, 1000 * max(others.latencies)))

    def test_slow_reader_closed_by_timeout(self):
        """A client that pipelines requests and never reads the answers
        stalls its own connection only: others are served, and the idle
        timeout closes it once its socket buffers are full."""
        req = b"GET /v1/items/apple/similar HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        flood = self.sock()
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

        def send_all():
            try:
                flood.sendall(req * self.N)
            except OSError:
                pass  # closed by the server, as it should be

        sender = threading.Thread(target=send_all, daemon=True)
        t0 = time.monotonic()
        with Others(self.srv.port) as others:
            sender.start()
            time.sleep(self.TIMEOUT + 1)
        others.check(self, min_ok=10)
        # The server's count (this /metrics request is the one left open);
        # the client side may not see the reset while its window is full.
        deadline = t0 + self.TIMEOUT + 6 * FACTOR
        while self.open_connections() > 1:
            self.assertLess(time.monotonic(), deadline,
                            "the stalled reader's connection was not closed")
            time.sleep(0.2)
        answers = 0
        flood.settimeout(1)
        try:
            while True:
                chunk = flood.recv(1 << 16)
                if not chunk:
                    break
                answers += chunk.count(b"HTTP/1.1 200 ")
        except OSError:
            pass  # reset, or silence: closed on the server's side either way
        self.assertLess(answers, self.N, "the reader never stalled: the test proves nothing")
        sender.join(timeout=5)
        self.assertServing()


# ---------------------------------------------------------------------------
# Crash safety
# ---------------------------------------------------------------------------
def iso_to_unix(s):
    return int(datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")
               .replace(tzinfo=datetime.timezone.utc).timestamp())


class EventPoster(threading.Thread):
    """Posts events (single objects and batches of three) on one keep-alive
    connection until it fails; each customer gets at most PER_CUSTOMER
    events, each a second later than the last, and every acknowledgement
    is recorded. Timestamps stay within a day of the model's clock (the
    server refuses events further ahead), and past its as-of date (events
    before it are in the model's figures, not counted live)."""
    PER_CUSTOMER = 40
    MAX_EVENTS = 8000  # per poster: ten rounds fit in the day

    def __init__(self, port, prefix, ts0, rng):
        super().__init__(daemon=True)
        self.port = port
        self.prefix = prefix
        self.ts0 = ts0
        self.rng = rng
        self.sent = {}   # customer -> events sent (acknowledged or not)
        self.acked = {}  # customer -> events acknowledged with 2xx
        self.last_acked_ts = {}
        self.seq = 0
        self.error = None

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        try:
            while self.seq < self.MAX_EVENTS - 3:
                cust = "%s-%d" % (self.prefix, self.seq // self.PER_CUSTOMER)
                k = 3 if self.rng.random() < 0.5 else 1
                k = min(k, self.PER_CUSTOMER - self.seq % self.PER_CUSTOMER)
                evs = []
                for _ in range(k):
                    self.seq += 1
                    evs.append({"customer_id": cust, "item_id": ITEMS[self.seq % 8],
                                "event": ("view", "cart", "purchase")[self.seq % 3],
                                "price": 1.5, "timestamp": self.ts0 + self.seq})
                self.sent[cust] = self.sent.get(cust, 0) + k
                body = json.dumps(evs if k > 1 or self.rng.random() < 0.5 else evs[0])
                conn.request("POST", "/v1/events", body=body,
                             headers={"Content-Type": "application/json"})
                resp = read_response(conn.getresponse())
                if resp.status // 100 != 2:
                    raise AssertionError("event post answered %r" % resp)
                if resp.json["accepted"] != k:
                    raise AssertionError("%d of %d events accepted: %r" % (
                        resp.json["accepted"], k, resp))
                self.acked[cust] = self.acked.get(cust, 0) + k
                self.last_acked_ts[cust] = self.ts0 + self.seq
        except (OSError, http.client.HTTPException):
            return  # the server was killed
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            conn.close()


class CrashSafetyTests(unittest.TestCase):
    maxDiff = None
    ROUNDS = 10

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shopkeeper-hard-t-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def profile(self, srv, cust):
        resp = srv.get("/v1/customers/%s" % cust)
        self.assertEqual(resp.status, 200, (cust, resp))
        return resp.json

    def check_events(self, srv, sent, acked, last_ts, ts0):
        for cust, n_sent in sent.items():
            n_acked = acked.get(cust, 0)
            if n_acked == 0:
                continue
            p = self.profile(srv, cust)
            self.assertGreaterEqual(p["events_since_model"], n_acked,
                                    "%s: acknowledged events lost" % cust)
            self.assertLessEqual(p["events_since_model"], n_sent, cust)
            last = iso_to_unix(p["last_event"])
            self.assertGreaterEqual(last, last_ts[cust], "%s: the last acknowledged event "
                                    "is missing" % cust)

    def test_sigkill_loop(self):
        """Kills the server with SIGKILL at random moments while a client posts
        events, ten times, restarting on the same state; every acknowledged
        event survives and the state opens cleanly each time."""
        seed = int(time.time())
        rng = random.Random(seed)
        state = os.path.join(self.tmp, "state")
        ts0 = iso_to_unix(SHARED["meta"]["as_of"])
        sent, acked, last_ts = {}, {}, {}
        total_acked = 0
        t_start = time.monotonic()
        for rnd in range(self.ROUNDS):
            srv = Server(SHARED["model"], state, threads=2)
            try:
                # Everything acknowledged in the earlier rounds is there.
                self.check_events(srv, sent, acked, last_ts, ts0)
                poster = EventPoster(srv.port, "crash%d" % rnd,
                                     ts0 + rnd * EventPoster.MAX_EVENTS, rng)
                poster.start()
                time.sleep(rng.uniform(0.05, 0.6) * FACTOR)
                srv.proc.send_signal(signal.SIGKILL)
                srv.proc.wait(timeout=10)
                poster.join(timeout=2 * HTTP_TIMEOUT)
                self.assertFalse(poster.is_alive(), "the poster hung after the kill")
                self.assertIsNone(poster.error)
            finally:
                srv.kill()
            self.assertEqual(srv.proc.returncode, -signal.SIGKILL)
            for d, src in ((sent, poster.sent), (acked, poster.acked),
                           (last_ts, poster.last_acked_ts)):
                d.update(src)
            total_acked += sum(poster.acked.values())
        self.assertGreater(total_acked, 0, "no event was acknowledged (seed %d)" % seed)
        srv = Server(SHARED["model"], state, threads=2)
        try:
            self.check_events(srv, sent, acked, last_ts, ts0)
            # The state still takes writes and answers.
            resp = srv.request("POST", "/v1/events", body=json.dumps(
                {"customer_id": "after-crash", "item_id": "apple", "event": "cart"}),
                headers={"Content-Type": "application/json"})
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(self.profile(srv, "after-crash")["events_since_model"], 1)
            self.assertEqual(srv.stop(), 0, srv.stderr())
        finally:
            srv.kill()
        if shutil.which("mdb_stat"):
            p = subprocess.run(["mdb_stat", "-n", "-a", os.path.join(state, "state.mdb")],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
        if os.environ.get("VERBOSE"):
            print("crash loop: %d rounds, %d events acknowledged, %.1f s (seed %d)"
                  % (self.ROUNDS, total_acked, time.monotonic() - t_start, seed))


def model_copy(src_dir, dst_dir):
    os.makedirs(dst_dir, exist_ok=True)
    for name in ("model.mdb", "model.sum"):
        shutil.copyfile(os.path.join(src_dir, name), os.path.join(dst_dir, name))


def write_aside_and_rename(model_dir, data):
    """Replaces model_dir/model.mdb the way train does (never in place: the
    running server maps the old file)."""
    tmp = os.path.join(model_dir, "model.mdb.new")
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(model_dir, "model.mdb"))


def wrong_version_model(src_dir, tmp):
    """model.mdb bytes of src_dir's model with format_version 99 (through
    lmdb-utils' dump and load), or None without those tools."""
    if not (shutil.which("mdb_dump") and shutil.which("mdb_load")):
        return None
    dump = subprocess.run(["mdb_dump", "-n", "-a", "-p", os.path.join(src_dir, "model.mdb")],
                          capture_output=True, text=True, timeout=30, check=True).stdout
    fv = '"format_version":%d,' % SHARED["meta"]["format_version"]
    assert fv in dump, "no format_version in the dump"
    out = os.path.join(tmp, "v99.mdb")
    subprocess.run(["mdb_load", "-n", "-f", "/dev/stdin", out], input=dump.replace(
        fv, '"format_version":99,'), capture_output=True, text=True, timeout=30, check=True)
    with open(out, "rb") as f:
        return f.read()


class BadModelTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="shopkeeper-hard-t-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        with open(os.path.join(SHARED["model"], "model.mdb"), "rb") as f:
            self.good = f.read()

    def bad_models(self):
        """(name, model.mdb bytes, what the message must say), each checked
        against the good model's model.sum"""
        middle = len(self.good) // 4096 // 2 * 4096
        zeroed = self.good[:middle] + bytes(4096) + self.good[middle + 4096:]
        out = [("half", self.good[:len(self.good) // 2], "truncated"),
               ("zeroed page", zeroed, "is damaged"),
               ("one page short", self.good[:-4096], "truncated"),
               ("empty", b"", "empty"),
               ("not lmdb", b"x" * 8192, "model")]
        v99 = wrong_version_model(SHARED["model"], self.tmp)
        if v99 is not None:
            out.append(("version 99", v99, "checksum file"))  # the format: test_model
        return out

    def test_refused_at_start(self):
        for name, data, says in self.bad_models():
            with self.subTest(name):
                d = os.path.join(self.tmp, "m-" + name.replace(" ", "-"))
                model_copy(SHARED["model"], d)
                with open(os.path.join(d, "model.mdb"), "wb") as f:
                    f.write(data)
                p = run(["serve", "--model", d, "--state", os.path.join(self.tmp, "st"),
                         "--listen", "127.0.0.1:0"], timeout=10 * FACTOR)
                self.assertEqual(p.returncode, 1, "%s: exit %d: %s" % (name, p.returncode,
                                                                      p.stderr))
                self.assertIn(says, p.stderr)
                self.assertIn(d, p.stderr)

    def test_refused_at_reload_old_model_kept(self):
        d = os.path.join(self.tmp, "model")
        model_copy(SHARED["model"], d)
        srv = Server(d, os.path.join(self.tmp, "state"))
        try:
            before = srv.get("/readyz").json
            alice = srv.get(REC_PATH).json["items"]
            for i, (name, data, says) in enumerate(self.bad_models()):
                with self.subTest(name):
                    write_aside_and_rename(d, data)
                    if i % 2 == 0:
                        resp = srv.request("POST", "/admin/reload")
                        self.assertEqual(resp.status, 409, resp)
                        self.assertEqual(resp.json["error"]["code"], "reload_failed")
                        self.assertIn(says, resp.json["error"]["message"])
                    else:
                        n = srv.stderr().count("kept the current model")
                        srv.proc.send_signal(signal.SIGHUP)
                        deadline = time.monotonic() + 5 * FACTOR
                        while srv.stderr().count("kept the current model") == n:
                            self.assertLess(time.monotonic(), deadline, srv.stderr())
                            time.sleep(0.05)
                        self.assertIn(says, srv.stderr().rsplit("kept the current model", 1)[1])
                    self.assertEqual(srv.get("/readyz").json, before)
                    self.assertEqual(srv.get(REC_PATH).json["items"], alice)
            # A sound model is taken again.
            train(d, INTERACTIONS, "--algo", "jaccard")
            resp = srv.request("POST", "/admin/reload")
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(srv.get("/readyz").json["algorithm"], "jaccard")
            self.assertEqual(srv.stop(), 0, srv.stderr())
        finally:
            srv.kill()


if __name__ == "__main__":
    sys.exit(run_suite(__name__, sys.argv[1:], lambda: [], 'hardening'))
