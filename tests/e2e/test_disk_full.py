#!/usr/bin/env python3
"""A full disk at startup or export: a clear error and exit 1, never SIGBUS.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_disk_full.py [-v]

LMDB maps its lock file and writes it through the map; on a full disk the
sparse file's blocks cannot be allocated and that write was a SIGBUS
inside mdb_env_open, with no message. The state (serve) and the sent log
(export) are put on a small tmpfs filled to the last byte. Mounting needs
root (CI runs as root); elsewhere the tests are skipped. The last line
printed is "N passed, N failed".
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lib as ts  # noqa: E402  (the shared helpers)
from lib import run, train  # noqa: E402

SHARED = {}


def setUpModule():
    tmp = tempfile.mkdtemp(prefix="shopkeeper-full-")
    SHARED["tmp"] = tmp
    SHARED["model"] = os.path.join(tmp, "model")
    train(SHARED["model"])


def tearDownModule():
    mnt = SHARED.get("mnt")
    if mnt:
        subprocess.run(["umount", mnt], capture_output=True)


def full_tmpfs():
    """A 1 MiB tmpfs with no byte free, or None when it cannot be mounted."""
    if "mnt" in SHARED:
        return SHARED["mnt"]
    SHARED["mnt"] = None
    if os.geteuid() != 0 or not shutil.which("mount"):
        return None
    mnt = os.path.join(SHARED["tmp"], "full")
    os.makedirs(mnt)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return None
    SHARED["mnt"] = mnt
    os.makedirs(os.path.join(mnt, "state"))
    os.makedirs(os.path.join(mnt, "export-state"))
    fd = os.open(os.path.join(mnt, "fill"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while os.write(fd, b"\0" * 4096) > 0:
            pass
    except OSError:
        pass  # full, as wanted
    finally:
        os.close(fd)
    return mnt


class DiskFullTests(unittest.TestCase):
    def setUp(self):
        self.mnt = full_tmpfs()
        if not self.mnt:
            self.skipTest("needs root to mount a tmpfs")

    def check_refused(self, p, what):
        self.assertEqual(p.returncode, 1, "%s: exit %d: %s" % (what, p.returncode, p.stderr))
        self.assertIn("No space left on device", p.stderr, what)

    def test_serve_on_a_full_disk(self):
        state = os.path.join(self.mnt, "state")
        p = run(["serve", "--model", SHARED["model"], "--state", state,
                 "--listen", "127.0.0.1:0"])
        self.check_refused(p, "serve")

    def test_export_on_a_full_disk(self):
        # export --record records what it sends in STATE/sent.mdb, on the full disk
        state = os.path.join(self.mnt, "export-state")
        p = run(["export", "--model", SHARED["model"], "--state", state, "--audience", "all",
                 "--record"])
        self.check_refused(p, "export")
        self.assertIn(state, p.stderr)

if __name__ == "__main__":
    sys.exit(ts.run_suite(__name__, sys.argv[1:], lambda: [SHARED.get("tmp")], "disk full"))
