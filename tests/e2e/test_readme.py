#!/usr/bin/env python3
"""Keeps the README true: runs its commands and checks its links.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_readme.py [-v] [TestClass[.test]]

The README marks the blocks this test runs with an HTML comment on the
line before a fenced block (docs/testing.md says the same for readers):

  <!-- readme-test: quickstart -->  the commands `make demo` runs: a
      `bin/shopkeeper train` line, run as written with paths under models/
      moved to a temporary directory, and a `bin/shopkeeper serve` line
      whose model and state are then served on a free loopback port.
  <!-- readme-test: run -->  a tour block, run in order against that one
      server. "$ " starts a command; it goes on over the next lines while
      its quotes are open or a line ends in a backslash. The lines up to the
      next command are its expected output. 127.0.0.1:8080 is rewritten to
      the server's port. Expected JSON (it may be wrapped over lines) must
      match the real answer in shape: every key shown present, arrays of the
      same length, strings, booleans and null equal, numbers equal within a
      relative 1e-3 (exactly when both are integers); the string "..." stands
      for any value. Any other output must match line for line.
  <!-- readme-test: full-data -->  the full Online Retail `train` command,
      run on tests/fixtures/online-retail.csv (gzipped) instead of the
      download: nothing is downloaded.

It also checks that every `make TARGET` the README shows is a target of
the Makefile, and that every relative link in README.md, docs/*.md,
bench/*.md, SECURITY.md and deploy/README.md points at a file that
exists (and a `#fragment` at one of that file's headings).

Python 3 standard library and curl (which the README's commands use).
The last line printed is "N passed, N failed".
"""
import glob
import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lib as ts  # noqa: E402  (the shared helpers: Server, run, run_suite)
from lib import Server, run  # noqa: E402

ROOT = ts.ROOT
README = os.path.join(ROOT, "README.md")
DOCS = ["README.md", "SECURITY.md", "deploy/README.md"] + sorted(
    os.path.relpath(p, ROOT) for d in ("docs", "bench")
    for p in glob.glob(os.path.join(ROOT, d, "*.md")))
DEMO_ADDR = "127.0.0.1:8080"   # what the README's commands name
CMD_TIMEOUT = 30 * float(os.environ.get("SHOPKEEPER_TIME_FACTOR", "1"))
REL_TOL = 1e-3
ANY = "..."

SHARED = {}


# ---------------------------------------------------------------------------
# Reading the README
# ---------------------------------------------------------------------------
def marked_blocks(text, kind):
    """The bodies (lists of lines) of the fenced blocks right after
    `<!-- readme-test: KIND -->`, in order."""
    lines = text.split("\n")
    out = []
    marker = "<!-- readme-test: %s -->" % kind
    i = 0
    while i < len(lines):
        if lines[i].strip() == marker:
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j >= len(lines) or not lines[j].startswith("```"):
                raise AssertionError("%s on line %d is not followed by a fenced block"
                                     % (marker, i + 1))
            k = j + 1
            while k < len(lines) and not lines[k].startswith("```"):
                k += 1
            if k >= len(lines):
                raise AssertionError("the block after line %d is never closed" % (i + 1))
            out.append(lines[j + 1:k])
            i = k
        i += 1
    return out


def complete(cmd):
    """Whether a shell command needs no more lines: quotes closed, no
    trailing backslash."""
    if cmd.endswith("\\"):
        return False
    try:
        shlex.split(cmd)
    except ValueError:  # an open quote
        return False
    return True


def plain_commands(body):
    """The commands of a block without prompts, continuation lines joined."""
    cmds, cur = [], ""
    for line in body:
        if not cur and not line.strip():
            continue
        cur = cur + "\n" + line if cur else line
        if complete(cur):
            cmds.append(cur.replace("\\\n", " "))
            cur = ""
    if cur:
        raise AssertionError("unfinished command: %r" % cur)
    return cmds


def tour_steps(body):
    """(command, expected output lines) pairs of a `run` block."""
    steps = []
    i = 0
    while i < len(body):
        if not body[i].startswith("$ "):
            raise AssertionError("expected a '$ ' command, got %r" % body[i])
        cmd = body[i][2:]
        i += 1
        while not complete(cmd):
            if i >= len(body):
                raise AssertionError("unfinished command: %r" % cmd)
            cmd += "\n" + body[i]
            i += 1
        expected = []
        while i < len(body) and not body[i].startswith("$ "):
            expected.append(body[i])
            i += 1
        steps.append((cmd.replace("\\\n", " "), expected))
    return steps


def mismatches(exp, act, path="$"):
    """Where `act` (a parsed answer) does not match the README's `exp`:
    a list of messages, empty when it matches (rules in the docstring)."""
    if isinstance(exp, str) and exp == ANY:
        return []
    if isinstance(exp, dict):
        if not isinstance(act, dict):
            return ["%s: expected an object, got %r" % (path, act)]
        out = []
        for k, v in exp.items():
            if k not in act:
                out.append("%s: no key %r (keys: %s)" % (path, k, sorted(act)))
            else:
                out += mismatches(v, act[k], "%s.%s" % (path, k))
        return out
    if isinstance(exp, list):
        if not isinstance(act, list):
            return ["%s: expected an array, got %r" % (path, act)]
        if len(exp) != len(act):
            return ["%s: %d elements shown, %d in the answer: %r"
                    % (path, len(exp), len(act), act)]
        out = []
        for n, (e, a) in enumerate(zip(exp, act)):
            out += mismatches(e, a, "%s[%d]" % (path, n))
        return out
    if isinstance(exp, bool) or exp is None or isinstance(exp, str):
        if type(exp) is not type(act) or exp != act:
            return ["%s: README shows %r, the answer is %r" % (path, exp, act)]
        return []
    # a number
    if isinstance(act, bool) or not isinstance(act, (int, float)):
        return ["%s: README shows %r, the answer is %r" % (path, exp, act)]
    if isinstance(exp, int) and isinstance(act, int):
        ok = exp == act
    else:
        ok = abs(exp - act) <= REL_TOL * max(abs(exp), abs(act))
    return [] if ok else ["%s: README shows %r, the answer is %r" % (path, exp, act)]


def slug(heading):
    """GitHub's anchor for a heading."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def strip_code(text):
    """The text without fenced blocks and code spans, where links are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path):
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"^```.*?^```", "", f.read(), flags=re.S | re.M)
    seen = {}
    out = set()
    for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, flags=re.M):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else "%s-%d" % (s, n))
    return out


def broken_links(doc):
    """Messages for the relative links of ROOT/doc that lead nowhere."""
    path = os.path.join(ROOT, doc)
    with open(path, encoding="utf-8") as f:
        text = strip_code(f.read())
    out = []
    for m in re.finditer(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        target = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I):  # http:, mailto: ...
            continue
        file_part, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part \
            else path
        if not os.path.exists(dest):
            out.append("%s: %s: no such file %s" % (doc, target, os.path.relpath(dest, ROOT)))
        elif frag:
            if not dest.endswith(".md"):
                out.append("%s: %s: a fragment of a file that is not markdown" % (doc, target))
            elif frag not in anchors(dest):
                out.append("%s: %s: no heading #%s in %s"
                           % (doc, target, frag, os.path.relpath(dest, ROOT)))
    return out


def readme_text():
    with open(README, encoding="utf-8") as f:
        return f.read()


def local(cmd_args, tmp):
    """cmd_args with bin/shopkeeper replaced by the binary under test and
    paths under models/ moved to tmp."""
    out = []
    for a in cmd_args:
        if a == "bin/shopkeeper":
            a = ts.BIN
        elif a.startswith("models/"):
            a = os.path.join(tmp, a)
        out.append(a)
    return out


def option(args, name):
    i = args.index(name)
    return args[i + 1]


# ---------------------------------------------------------------------------
# The quick start's model and server, shared by the tour
# ---------------------------------------------------------------------------
def setUpModule():
    tmp = tempfile.mkdtemp(prefix="shopkeeper-readme-")
    SHARED["tmp"] = tmp
    blocks = marked_blocks(readme_text(), "quickstart")
    if len(blocks) != 1:
        raise AssertionError("README: %d quickstart blocks, expected 1" % len(blocks))
    cmds = [shlex.split(c) for c in plain_commands(blocks[0])]
    trains = [c for c in cmds if c[:2] == ["bin/shopkeeper", "train"]]
    serves = [c for c in cmds if c[:2] == ["bin/shopkeeper", "serve"]]
    if len(trains) != 1 or len(serves) != 1 or len(cmds) != 2:
        raise AssertionError("README quickstart: expected one train and one serve line: %r"
                             % cmds)
    p = subprocess.run(local(trains[0], tmp), cwd=ROOT, capture_output=True, text=True,
                       timeout=CMD_TIMEOUT * 4)
    if p.returncode != 0:
        raise AssertionError("README quickstart train failed (%d): %s"
                             % (p.returncode, p.stderr))
    serve = local(serves[0], tmp)
    if option(serve, "--listen") != DEMO_ADDR:
        raise AssertionError("README quickstart serves on %s; the tour expects %s"
                             % (option(serve, "--listen"), DEMO_ADDR))
    model, state = option(serve, "--model"), option(serve, "--state")
    if model != option(local(trains[0], tmp), "--out"):
        raise AssertionError("README quickstart serves %s but trains %s" % (model, trains[0]))
    extra = []
    i = 2
    while i < len(serve):  # everything but the options Server sets itself
        if serve[i] in ("--model", "--state", "--listen"):
            i += 2
            continue
        extra.append(serve[i])
        i += 1
    SHARED["server"] = Server(model, state, extra=extra)


def tearDownModule():
    srv = SHARED.get("server")
    try:
        if srv is not None:
            alive = srv.alive()
            rc = srv.stop()
            if not alive or rc != 0:
                raise AssertionError("the README server %s (exit %r): %s"
                                     % ("died" if not alive else "failed to stop", rc,
                                        srv.stderr()))
    finally:
        for s in list(ts.LIVE_SERVERS):
            s.kill()
        shutil.rmtree(SHARED.get("tmp", "/nonexistent-shopkeeper-readme"), ignore_errors=True)


class Tour(unittest.TestCase):
    maxDiff = None

    def test_tour_commands_and_answers(self):
        """Every `$ ` command of the tour succeeds against the quick start's
        server, in order, and answers what the README shows."""
        self.assertIsNotNone(shutil.which("curl"), "the README's commands need curl")
        srv = SHARED["server"]
        blocks = marked_blocks(readme_text(), "run")
        self.assertGreaterEqual(len(blocks), 3, "README: the tour blocks are not marked")
        steps = [s for b in blocks for s in tour_steps(b)]
        self.assertGreaterEqual(len(steps), 10)
        for cmd, expected in steps:
            with self.subTest(cmd):
                self.assertIn(DEMO_ADDR, cmd, "a tour command that names no server")
                real = cmd.replace(DEMO_ADDR, "127.0.0.1:%d" % srv.port)
                p = subprocess.run(["sh", "-c", real], cwd=ROOT, capture_output=True,
                                   text=True, timeout=CMD_TIMEOUT)
                self.assertEqual(p.returncode, 0, "%s\nstderr: %s" % (cmd, p.stderr))
                shown = "\n".join(expected).strip()
                if not shown:
                    continue
                try:
                    exp = json.loads(shown)
                except ValueError:
                    self.assertEqual([ln.rstrip() for ln in p.stdout.strip().split("\n")],
                                     [ln.rstrip() for ln in shown.split("\n")], cmd)
                    continue
                try:
                    act = json.loads(p.stdout)
                except ValueError:
                    self.fail("%s: not JSON: %r" % (cmd, p.stdout[:500]))
                bad = mismatches(exp, act)
                self.assertEqual(bad, [], "%s\nanswer: %s" % (cmd, p.stdout))
        self.assertTrue(srv.alive(), srv.stderr())

    def test_full_data_commands(self):
        """The full-data block (catalog, customers, train) works as written,
        run by sh in a scratch directory, on a small file of the same shape
        (the real one is a download no test makes); serve is left out."""
        tmp = tempfile.mkdtemp(dir=SHARED["tmp"])
        blocks = marked_blocks(readme_text(), "full-data")
        self.assertEqual(len(blocks), 1)
        cmds = [c for c in plain_commands(blocks[0]) if " serve " not in c]
        self.assertTrue(any(c.startswith("bin/shopkeeper train ") for c in cmds), cmds)
        with open(ts.RETAIL, "rb") as src, \
                gzip.open(os.path.join(tmp, "online-retail.csv.gz"), "wb") as dst:
            dst.write(src.read())
        script = "set -e\n" + "\n".join(c.replace("bin/shopkeeper", ts.BIN) for c in cmds)
        p = subprocess.run(["sh", "-c", script], cwd=tmp, capture_output=True, text=True,
                           timeout=CMD_TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        for name in ("catalog.csv", "customers.csv"):
            with open(os.path.join(tmp, name), encoding="utf-8") as f:
                self.assertGreater(len(f.readlines()), 1, name)
        meta = run(["inspect", os.path.join(tmp, "models/retail")])
        self.assertEqual(meta.returncode, 0, meta.stderr)
        self.assertGreater(json.loads(meta.stdout)["items"], 0)


class Links(unittest.TestCase):
    def test_relative_links_lead_somewhere(self):
        """Every relative link of the README and the docs beside it points at
        a file that exists, and a #fragment at one of its headings."""
        bad = []
        for doc in DOCS:
            self.assertTrue(os.path.exists(os.path.join(ROOT, doc)), doc)
            bad += broken_links(doc)
        self.assertEqual(bad, [])

    def test_make_targets_exist(self):
        """Every `make TARGET` line of the README names a Makefile target."""
        with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
            makefile = f.read()
        targets = set()
        for m in re.finditer(r"^([A-Za-z0-9_.-]+(?:[ \t]+[A-Za-z0-9_.-]+)*)[ \t]*:(?!=)",
                             makefile, flags=re.M):
            targets.update(m.group(1).split())
        named = re.findall(r"^make ([a-z][a-z0-9-]*)", readme_text(), flags=re.M)
        self.assertIn("demo", named)
        self.assertIn("test", named)
        self.assertEqual(sorted(set(named) - targets), [])


class Matcher(unittest.TestCase):
    """The comparison itself must be able to fail."""

    def test_rules(self):
        exp = {"a": "...", "n": 3, "x": 0.5, "s": "k", "l": [1, {"b": None}]}
        self.assertEqual(mismatches(exp, {"a": [1], "n": 3, "x": 0.50004, "s": "k",
                                          "l": [1, {"b": None, "extra": 1}], "more": 1}), [])
        for act in ({"a": 1, "n": 4, "x": 0.5, "s": "k", "l": [1, {"b": None}]},
                    {"a": 1, "n": 3, "x": 0.51, "s": "k", "l": [1, {"b": None}]},
                    {"a": 1, "n": 3, "x": 0.5, "s": "K", "l": [1, {"b": None}]},
                    {"a": 1, "n": 3, "x": 0.5, "s": "k", "l": [1]},
                    {"a": 1, "n": 3, "x": 0.5, "s": "k", "l": [1, {}]},
                    {"n": 3, "x": 0.5, "s": "k", "l": [1, {"b": None}]},
                    {"a": 1, "n": True, "x": 0.5, "s": "k", "l": [1, {"b": None}]}):
            with self.subTest(act):
                self.assertNotEqual(mismatches(exp, act), [])
        self.assertEqual(mismatches({"intent": 1}, {"intent": 0.999992}), [])

    def test_commands_split(self):
        steps = tour_steps(["$ curl -s -d '[", "   1]' x", "{\"a\":", " 1}",
                            "$ echo a \\", "  b", "a b"])
        self.assertEqual(steps, [("curl -s -d '[\n   1]' x", ["{\"a\":", " 1}"]),
                                 ("echo a    b", ["a b"])])
        self.assertEqual(slug("Scale: 100,000 items, `x` too"), "scale-100000-items-x-too")


if __name__ == "__main__":
    sys.exit(ts.run_suite(__name__, sys.argv[1:], lambda: [SHARED.get("tmp")], "readme"))
