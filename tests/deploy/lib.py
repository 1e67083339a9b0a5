"""What the deploy suites share: the binary, free loopback ports, one HTTP
request, whether this build has the shared event log, and the runner that
prints the closing "N passed, N failed" line tests/deploy/run.sh reads.

Not a test module itself (run.sh runs tests/deploy/test_*.py only).
Python 3 standard library only.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HTTP_TIMEOUT = 10


def find_binary():
    path = os.environ.get("SHOPKEEPER") or os.path.join(ROOT, "bin", "shopkeeper")
    if not os.path.isabs(path):
        path = os.path.join(ROOT, path)
    return os.path.abspath(path)


BIN = find_binary()


def free_ports(n):
    """n distinct free loopback ports (bound together, then released)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def request(port, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT):
    """One request on a fresh connection: (status, headers, parsed JSON or text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
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


def serve_has_event_log():
    """Whether `serve --help` documents --event-log (issue 13's shared log)."""
    p = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True, timeout=10)
    return "--event-log" in p.stdout


# Suites that need the shared event log skip while the binary lacks it;
# the skip is printed where tests/deploy/run.sh shows it, so it is seen.
SKIPPED = []


def skip_loudly(label, why):
    SKIPPED.append("%s: 0.0 s SKIPPED, NOT TESTED: %s" % (label, why))
    raise unittest.SkipTest(why)


def run_main(label):
    """Runs the calling module's tests; prints "LABEL: N s" and the closing
    line; exits 1 when a test failed."""
    t0 = time.monotonic()
    result = unittest.main(exit=False, verbosity=int(os.environ.get("VERBOSE", "1"))).result
    n_fail = len(result.failures) + len(result.errors)
    # A module skipped in setUpModule counts a skip but no test run.
    n_pass = max(0, result.testsRun - n_fail - len(result.skipped))
    for line in SKIPPED:
        print(line)
    print("%s: %.1f s" % (label, time.monotonic() - t0))
    print("%d passed, %d failed" % (n_pass, n_fail))
    sys.exit(1 if n_fail else 0)
