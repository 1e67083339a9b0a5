"""What every end-to-end suite shares: the binary, the fixture's hand-worked
answers, `shopkeeper serve` processes, raw HTTP exchanges, error answers
checked from a table of cases, and the runner that prints the closing
"N passed, N failed" line tests/run.sh reads.

Not a test module itself (tests/run.sh runs tests/e2e/test_*.py only).
Python 3 standard library only.

Environment:
    SHOPKEEPER              the binary to run (default bin/shopkeeper; a
                            relative path is taken from the repository root).
                            tests/run.sh sets it, from E2E_SHOPKEEPER when
                            given: `make valgrind-e2e` puts
                            tests/valgrind/shopkeeper there.
    SHOPKEEPER_TIME_FACTOR  FACTOR: suites stretch their time bounds by it
                            (for a server under valgrind).
"""
import collections
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
INTERACTIONS = os.path.join(FIXTURES, "interactions.csv")
RETAIL = os.path.join(FIXTURES, "online-retail.csv")
RETAIL_COLUMNS = ("customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,"
                  "quantity=Quantity,price=UnitPrice")

FACTOR = float(os.environ.get("SHOPKEEPER_TIME_FACTOR", "1"))
CMD_TIMEOUT = 30        # seconds for any one CLI run
START_TIMEOUT = 10      # seconds for a server to print its port and answer /healthz
STOP_TIMEOUT = 10       # seconds for a server to exit after SIGTERM
HTTP_TIMEOUT = 5        # seconds per HTTP request
JSON_CT = "application/json; charset=utf-8"
JSON_HEADERS = {"Content-Type": "application/json"}
TOL = 1e-4              # scores are float32 on the server side


def find_binary():
    path = os.environ.get("SHOPKEEPER") or os.path.join(ROOT, "bin", "shopkeeper")
    if not os.path.isabs(path) and not os.path.exists(path):
        path = os.path.join(ROOT, path)  # relative to the repository root
    return os.path.abspath(path)


BIN = find_binary()

# ---------------------------------------------------------------------------
# What the fixture should produce, worked out by hand.
#
# tests/fixtures/interactions.csv, after folding rows per customer and item
# (a purchase returned in full is not a purchase; --half-life 0 so every
# kept customer-item pair has X = 1):
#
#   alice: apple bread            bob:   apple bread cheese
#   carol: apple cheese dates     dave:  bread dates   (bought 3 bread, returned 1)
#   erin:  apple cheese           frank: eggs flour
#   grace: eggs flour Mug         heidi: apple         (flour returned in full)
#   17850: bread cheese tea/green ("17850.0" in the file)
#   ivan:  tea/green Mug          judy:  apple cheese eggs
#   (and one row without a customer, skipped)
#
# Customers per item: apple 6, cheese 5, bread 4, eggs 3,
#                     dates 2, flour 2, Mug 2, tea/green 2.
# cosine(i, j) = |Ci & Cj| / sqrt(|Ci| |Cj|); a customer's score for j is
# the sum of cosine(i, j) over the items i they bought (history weight 1).
# ---------------------------------------------------------------------------
MUG = 'Mug, "Big"'
TEA = "tea/green"
ITEMS = ["apple", "bread", "cheese", "dates", "eggs", "flour", MUG, TEA]
BASKETS = {
    "alice": {"apple", "bread"},
    "bob": {"apple", "bread", "cheese"},
    "carol": {"apple", "cheese", "dates"},
    "dave": {"bread", "dates"},
    "erin": {"apple", "cheese"},
    "frank": {"eggs", "flour"},
    "grace": {"eggs", "flour", MUG},
    "heidi": {"apple", "flour"},  # flour returned in full: not recommended back
    "17850": {"bread", "cheese", TEA},
    "ivan": {TEA, MUG},
    "judy": {"apple", "cheese", "eggs"},
}
r = math.sqrt
EXPECTED = {
    # similar items: (id, cosine), best first
    "similar_apple": [("cheese", 4 / r(6 * 5)), ("bread", 2 / r(6 * 4)),
                      ("dates", 1 / r(6 * 2)), ("eggs", 1 / r(6 * 3))],
    # heidi's returned flour must not pair flour with apple
    "similar_flour": [("eggs", 2 / r(2 * 3)), (MUG, 1 / r(2 * 2))],
    "similar_tea": [(MUG, 1 / r(2 * 2)), ("bread", 1 / r(2 * 4)), ("cheese", 1 / r(2 * 5))],
    # alice bought apple, bread:
    #   cheese = cos(apple,cheese) + cos(bread,cheese) = 4/sqrt30 + 2/sqrt20 = 1.1775
    #   dates  = cos(apple,dates)  + cos(bread,dates)  = 1/sqrt12 + 1/sqrt8  = 0.6422
    #   tea    = cos(bread,tea)                        = 1/sqrt8             = 0.3536
    #   eggs   = cos(apple,eggs)                       = 1/sqrt18            = 0.2357
    # because: the contributors, largest contribution first.
    "alice": [("cheese", 4 / r(30) + 2 / r(20), ["apple", "bread"]),
              ("dates", 1 / r(12) + 1 / r(8), ["bread", "apple"]),
              (TEA, 1 / r(8), ["bread"]),
              ("eggs", 1 / r(18), ["apple"])],
    # 17850 bought bread, cheese, tea/green:
    #   apple = cos(bread,apple) + cos(cheese,apple) = 2/sqrt24 + 4/sqrt30 = 1.1385
    #   dates = cos(bread,dates) + cos(cheese,dates) = 1/sqrt8 + 1/sqrt10  = 0.6698
    #   Mug   = cos(tea,Mug) = 1/2;  eggs = cos(cheese,eggs) = 1/sqrt15 = 0.2582
    "17850": [("apple", 2 / r(24) + 4 / r(30), ["cheese", "bread"]),
              ("dates", 1 / r(8) + 1 / r(10), ["bread", "cheese"]),
              (MUG, 1 / 2, [TEA]),
              ("eggs", 1 / r(15), ["cheese"])],
    # heidi: only apple counts (flour came back): apple's neighbours.
    "heidi": [("cheese", 4 / r(30), ["apple"]), ("bread", 2 / r(24), ["apple"]),
              ("dates", 1 / r(12), ["apple"]), ("eggs", 1 / r(18), ["apple"])],
    # popularity: customers per item; the four at 2 tie
    "popular_head": [("apple", 6), ("cheese", 5), ("bread", 4), ("eggs", 3)],
    "popular_tail": {"dates", "flour", MUG, TEA},
}
del r


def mask_rec_id(body):
    """body (bytes) with each answer's rec_id, unique per answer, made
    REC_ID: for comparing two answers byte for byte."""
    return re.sub(rb'"rec_id":"[A-Za-z0-9_-]{28}"', b'"rec_id":"REC_ID"', body)


def q(s):
    """Percent-encodes one path segment (everything but unreserved chars)."""
    return urllib.parse.quote(s, safe="")


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------
LIVE_SERVERS = []  # every Server started and not yet stopped


def kill_servers():
    """Kills every Server still running (a suite's last word)."""
    for s in list(LIVE_SERVERS):
        s.kill()


def run(args, timeout=CMD_TIMEOUT, stdin=None):
    """Runs the binary; returns CompletedProcess (text)."""
    return subprocess.run([BIN] + list(args), input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def train(out_dir, interactions=INTERACTIONS, *extra):
    """Trains a model (cosine, no decay unless extra overrides) into out_dir."""
    args = ["train", "--interactions", interactions, "--out", out_dir, "--quiet",
            "--algo", "cosine", "--half-life", "0"] + list(extra)
    p = run(args)
    if p.returncode != 0:
        raise AssertionError("train failed (%d): %s" % (p.returncode, p.stderr))
    return p


def model_meta(model_dir):
    """The model's meta record, as `shopkeeper inspect` prints it."""
    p = run(["inspect", model_dir])
    if p.returncode != 0:
        raise AssertionError("inspect failed (%d): %s" % (p.returncode, p.stderr))
    return json.loads(p.stdout)


class Response:
    def __init__(self, status, headers, body):
        self.status = status  # None when no answer came
        self.headers = headers  # lower-cased names
        self.body = body
        self._json = None

    @property
    def json(self):
        if self._json is None:
            self._json = json.loads(self.body.decode("utf-8"))
        return self._json

    def __repr__(self):
        return "<%s %r>" % (self.status, self.body[:300])


def read_response(resp):
    body = resp.read()
    headers = {k.lower(): v for k, v in resp.getheaders()}
    return Response(resp.status, headers, body)


class Server:
    """One `shopkeeper serve` process on 127.0.0.1 and an ephemeral port."""

    def __init__(self, model_dir, state_dir, threads=2, extra=()):
        self.model_dir = model_dir
        self.state_dir = state_dir
        self.stderr_path = state_dir + ".stderr"
        self.port = None
        self.proc = None
        self.returncode = None
        self._errf = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--model", model_dir, "--state", state_dir, "--listen",
             "127.0.0.1:0", "--threads", str(threads)] + list(extra),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._errf)
        LIVE_SERVERS.append(self)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while self.port is None:
            m = re.search(r"on port (\d+)", self.stderr())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise AssertionError("serve exited with %d before listening: %s"
                                     % (self.proc.returncode, self.stderr()))
            if time.monotonic() > deadline:
                raise AssertionError("serve printed no port within %ds: %s"
                                     % (START_TIMEOUT, self.stderr()))
            time.sleep(0.02)
        last = None
        while time.monotonic() < deadline:
            try:
                if self.get("/healthz").status == 200:
                    return
            except OSError as e:
                last = e
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("serve not healthy within %ds (%r): %s"
                             % (START_TIMEOUT, last, self.stderr()))

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)

    def request(self, method, path, body=None, headers=None, conn=None):
        own = conn is None
        c = self.connection() if own else conn
        try:
            c.request(method, path, body=body, headers=headers or {})
            return read_response(c.getresponse())
        finally:
            if own:
                c.close()

    def get(self, path, conn=None):
        return self.request("GET", path, conn=conn)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM, wait; returns the exit code (kills it if it hangs)."""
        if self.returncode is not None:
            return self.returncode
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
                self.returncode = "hung after SIGTERM"
        finally:
            self._close()
        return self.returncode

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        if self.returncode is None and self.proc:
            self.returncode = self.proc.returncode
        self._close()

    def _close(self):
        if self in LIVE_SERVERS:
            LIVE_SERVERS.remove(self)
        if not self._errf.closed:
            self._errf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def stop_shared(srv):
    """Stops a server tests shared (SIGTERM); raises AssertionError when it
    died during the tests or did not exit 0 (a crash no test saw)."""
    alive = srv.alive()
    rc = srv.stop()
    if not alive:
        raise AssertionError("the shared server died during the tests: %s" % srv.stderr())
    if rc != 0:
        raise AssertionError("shared server exited %r after SIGTERM: %s" % (rc, srv.stderr()))


# ---------------------------------------------------------------------------
# Raw HTTP: what http.client will not send, and answers to requests the
# server cuts short
# ---------------------------------------------------------------------------
def raw_exchange(port, head, body_chunks=(), timeout=HTTP_TIMEOUT):
    """Sends head (+ chunks, ignoring a reset while sending) on a raw socket and
    reads one response; returns (status, headers, body, sock)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head)
        for chunk in body_chunks:
            s.sendall(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and close before reading everything
    data = b""
    deadline = time.monotonic() + timeout
    status, headers, body = None, {}, b""
    try:
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                head_b, _, body = data.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head_b)
                if m and len(body) >= int(m.group(1)):
                    break
    except ConnectionResetError:
        pass
    if b"\r\n\r\n" in data:
        head_b, _, body = data.partition(b"\r\n\r\n")
        lines = head_b.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return status, headers, body, s


def exchange(port, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT):
    """One request on a fresh raw connection; returns a Response (status None
    when no answer came). body: None; bytes, or anything else as JSON, sent
    with Content-Type JSON and its Content-Length; or a list of raw chunks,
    sent as they are after the head (the caller's headers say how long)."""
    hdrs = dict(headers or {})
    chunks = []
    if isinstance(body, list) and all(isinstance(c, bytes) for c in body):
        chunks = body
    elif body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", JSON_HEADERS["Content-Type"])
        hdrs.setdefault("Content-Length", len(data))
        chunks = [data]
    head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in hdrs.items()) + "\r\n"
    status, rhdrs, rbody, s = raw_exchange(port, head.encode("latin-1"), chunks, timeout)
    s.close()
    return Response(status, rhdrs, rbody)


# ---------------------------------------------------------------------------
# Error answers as a table of cases
# ---------------------------------------------------------------------------
# One request and the error answer it must get: status and error code (None:
# any code), and optionally a text the message names (says) and the Allow
# header (allow). body and headers as exchange() takes them.
ErrorCase = collections.namedtuple(
    "ErrorCase", "what method path status code body headers says allow",
    defaults=(None, None, None, None, None))


def _short(text, width=70):
    """text, or its head and tail and its length when longer than width."""
    if len(text) <= width:
        return text
    return "%s...%s(%d chars)" % (text[:width - 36], text[-20:], len(text))


def case_name(case):
    """What a failing case is reported as: what, the request, its body."""
    name = "%s: %s %s" % (case.what, case.method, _short(case.path))
    if case.body is not None and not isinstance(case.body, list):
        name += " " + _short(repr(case.body), 100)
    return name


class ApiTestCase(unittest.TestCase):
    """Checks of the API's answers. Subclasses give `srv`, the server the
    checks ask by default."""
    maxDiff = None

    def assertJSON(self, resp):
        self.assertEqual(resp.headers.get("content-type"), JSON_CT, resp)
        return resp.json

    def assertError(self, resp, status, code=None):
        """An error answer: status, JSON content type, {"error":{"code","message"}}."""
        self.assertEqual(resp.status, status, resp)
        body = self.assertJSON(resp)
        self.assertEqual(set(body), {"error"}, body)
        err = body["error"]
        self.assertIsInstance(err.get("code"), str, body)
        self.assertIsInstance(err.get("message"), str, body)
        self.assertTrue(err["message"], body)
        if code is not None:
            self.assertEqual(err["code"], code, body)
        return err

    def assertServing(self, srv=None):
        srv = srv or self.srv
        self.assertTrue(srv.alive(), "server died: %s" % srv.stderr())
        resp = srv.get("/healthz")
        self.assertEqual(resp.status, 200, resp)

    def assertItems(self, items, expected, because=True):
        """items (from JSON) match expected [(id, score[, because])] in order."""
        self.assertEqual([it["item_id"] for it in items], [e[0] for e in expected], items)
        for it, e in zip(items, expected):
            self.assertAlmostEqual(it["score"], e[1], delta=TOL, msg=it)
            if because and len(e) > 2:
                self.assertEqual(it["because"], e[2], it)

    def assertErrorCases(self, cases, srv=None):
        """Sends each ErrorCase on a connection of its own and checks its
        answer, and that the server still serves after it. Each case is a
        subtest named by case_name(): a failing one is reported by name,
        and the others still run."""
        srv = srv or self.srv
        names = [case_name(c) for c in cases]
        self.assertEqual(len(names), len(set(names)), "two cases share a name")
        self.assertTrue(cases, "an empty table checks nothing")
        for name, case in zip(names, cases):
            with self.subTest(name):
                resp = exchange(srv.port, case.method, case.path, case.body, case.headers)
                err = self.assertError(resp, case.status, case.code)
                err["message"].encode("utf-8")  # the JSON text stayed valid
                if case.says is not None:
                    self.assertIn(case.says, err["message"])
                if case.allow is not None:
                    self.assertEqual(resp.headers.get("allow"), case.allow, resp.headers)
                self.assertServing(srv)


# ---------------------------------------------------------------------------
# Runner: unittest underneath, one closing "N passed, N failed" line.
# ---------------------------------------------------------------------------
class CountingResult(unittest.TextTestResult):
    """Counts cases: a test is one case, except a test with subtests (a
    table's rows), which counts as its subtests; a failure outside them
    counts as one more failed case."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = 0
        self._with_subtests = set()

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        self._with_subtests.add(test.id())
        if err is None:
            self.passed += 1

    def addSuccess(self, test):
        super().addSuccess(test)
        if test.id() not in self._with_subtests:
            self.passed += 1

    def failed_cases(self):
        # A test (or subtest) failing more than once (its body, then a
        # cleanup) is still one case.
        return (len({id(t) for t, _ in self.failures + self.errors})
                + len(self.unexpectedSuccesses))


def run_suite(module_name, argv, tmp_dirs=lambda: (), label="e2e"):
    """Runs the tests of module `module_name` (all, or the names in argv;
    -v for verbose), kills every server left, removes tmp_dirs, and prints
    the closing lines tests/run.sh reads. Returns the exit code. Shared by
    every e2e suite."""
    verbosity = 2 if "-v" in argv else 1
    names = [a for a in argv if not a.startswith("-")]
    loader = unittest.TestLoader()
    module = sys.modules[module_name]
    if names:
        suite = loader.loadTestsFromNames(names, module)
    else:
        suite = loader.loadTestsFromModule(module)
    if not os.access(BIN, os.X_OK):
        print("no executable shopkeeper at %s (set SHOPKEEPER)" % BIN)
        print("0 passed, 1 failed")
        return 1
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=verbosity,
                                     resultclass=CountingResult)
    t0 = time.monotonic()
    try:
        result = runner.run(suite)
    finally:
        kill_servers()
        for d in tmp_dirs():
            if d:
                shutil.rmtree(d, ignore_errors=True)
    failed = result.failed_cases()
    sys.stdout.flush()
    print("%s: %.1f s" % (label, time.monotonic() - t0))
    print("%d passed, %d failed" % (result.passed, failed))
    return 1 if failed or not result.wasSuccessful() else 0
