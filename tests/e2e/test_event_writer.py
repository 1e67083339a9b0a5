#!/usr/bin/env python3
"""End-to-end tests of the event writer's priority, over real HTTP.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_event_writer.py [-v]

The writer thread runs at SCHED_IDLE where the server may put it back
(CAP_SYS_NICE or RLIMIT_NICE >= 20; skipped elsewhere), `sk-events-late`
puts it back at the ordinary priority once a write has waited
--writer-wait, and --writer-wait 0 keeps it ordinary. With --event-log
the applier (`sk-applier`, this replica's state writer) does the same,
put back by `sk-applier-late` once it has made no progress for
--writer-wait (a real redis-server on a free loopback port). Uses the
models and helpers of test_events.py and test_event_log.py.

The last line printed is "N passed, N failed".
"""
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_event_log as el  # noqa: E402  (Redis, replicas)
import test_events as te  # noqa: E402
from lib import run_suite  # noqa: E402
from test_events import Base, metric, setUpModule, tearDownModule  # noqa: E402,F401


def task_policies(pid):
    """{thread name: [scheduling policy, ...]} of process pid (stat field 41)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        out.setdefault(name, []).append((int(tid), int(fields[38])))
    return out


def pin_with_hog(test, pid):
    """Pins every thread of pid and a busy loop to one core: a thread at
    SCHED_IDLE there gets (almost) none of it."""
    cpu = min(os.sched_getaffinity(0))
    for tid, _ in sum(task_policies(pid).values(), []):
        os.sched_setaffinity(tid, {cpu})
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                           preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    test.addCleanup(hog.wait)
    test.addCleanup(hog.kill)


def may_leave_idle():
    """What the server checks (events.c): CAP_SYS_NICE or RLIMIT_NICE >= 20."""
    soft = resource.getrlimit(resource.RLIMIT_NICE)[0]
    if soft == resource.RLIM_INFINITY or soft >= 20:
        return True
    with open("/proc/self/status") as f:
        caps = [int(line.split()[1], 16) for line in f if line.startswith("CapEff:")]
    return bool(caps and caps[0] >> 23 & 1)


class WriterPriorityTests(Base):
    def setUp(self):
        super().setUp()
        if not may_leave_idle():
            self.skipTest("no CAP_SYS_NICE or RLIMIT_NICE >= 20: the writer stays ordinary")

    def test_writer_idle_and_late_thread_ordinary(self):
        srv = self.fresh()
        t = task_policies(srv.proc.pid)
        self.assertEqual([p for _, p in t.get("sk-events", [])], [os.SCHED_IDLE])
        self.assertEqual([p for _, p in t.get("sk-events-late", [])], [os.SCHED_OTHER])

    def test_writer_wait_0_keeps_the_writer_ordinary(self):
        t = task_policies(self.fresh(extra=["--writer-wait", "0"]).proc.pid)
        self.assertEqual([p for _, p in t.get("sk-events", [])], [os.SCHED_OTHER])
        self.assertNotIn("sk-events-late", t)

    def test_late_thread_puts_back_what_a_busy_core_starves(self):
        # The server and a busy loop on one core: the idle writer gets
        # (almost) none of it, so a write waits until the late thread puts
        # the writer back at the ordinary priority (--writer-wait 100 for a
        # short test); every event is still acknowledged.
        srv = self.fresh(extra=["--writer-wait", "100"])
        pin_with_hog(self, srv.proc.pid)
        sent = 0
        for i in range(40):  # bounded; the first boost usually comes within a few
            batch = [self.ev("late-%d-%d" % (i, j), "eggs", "view") for j in range(500)]
            self.assertEqual(self.events(batch, srv)["accepted"], 500)
            sent += 500
            if metric(srv, "shopkeeper_event_commits_late_total"):
                break
        self.assertEqual(metric(srv, "shopkeeper_state_events_total"), sent)
        self.assertGreater(metric(srv, "shopkeeper_event_commits_late_total"), 0)


class ApplierPriorityTests(el.EventLogCase):
    def setUp(self):
        if not may_leave_idle():
            self.skipTest("no CAP_SYS_NICE or RLIMIT_NICE >= 20: the applier stays ordinary")
        super().setUp()

    def test_applier_idle_and_late_thread_ordinary(self):
        # The applier switches at its loop's top, and a slow start (ASan:
        # its bootstrap past --writer-wait) has it put back until it
        # catches up: wait, boundedly, for it to be idle.
        pid = self.start("a").proc.pid
        deadline = time.monotonic() + 20
        while True:
            t = task_policies(pid)
            if ([p for _, p in t.get("sk-applier", [])] == [os.SCHED_IDLE] or
                    time.monotonic() > deadline):
                break
            time.sleep(0.05)
        self.assertEqual([p for _, p in t.get("sk-applier", [])], [os.SCHED_IDLE])
        self.assertEqual([p for _, p in t.get("sk-applier-late", [])], [os.SCHED_OTHER])
        # The event writer only appends to Redis there: it stays ordinary.
        self.assertEqual([p for _, p in t.get("sk-events-log", [])], [os.SCHED_OTHER])
        t = task_policies(self.start("b", extra=["--writer-wait", "0"]).proc.pid)
        self.assertEqual([p for _, p in t.get("sk-applier", [])], [os.SCHED_OTHER])
        self.assertNotIn("sk-applier-late", t)

    def test_late_thread_puts_back_a_starved_applier(self):
        # A write through the log is answered once this replica applied it:
        # with the idle applier starved by a busy loop on its core, only the
        # late thread gets it applied (within the write's 10 s wait).
        srv = self.start("a", extra=["--writer-wait", "100"])
        el.wait_converged(self, [srv], self.redis)
        pin_with_hog(self, srv.proc.pid)
        sent = 0
        for i in range(20):  # bounded; the first put-back usually comes at once
            batch = [{"customer_id": "late-%d-%d" % (i, j), "item_id": "eggs",
                      "event": "view"} for j in range(200)]
            r = el.post_events(srv, batch)
            self.assertEqual(r.status, 200, r)
            sent += 200
            if metric(srv, "shopkeeper_event_commits_late_total"):
                break
        self.assertGreater(metric(srv, "shopkeeper_event_commits_late_total"), 0)
        el.wait_converged(self, [srv], self.redis)
        self.assertEqual(metric(srv, "shopkeeper_state_events_total"), sent)


if __name__ == "__main__":
    sys.exit(run_suite(__name__, sys.argv[1:], lambda: [te.E.get("tmp")], "e2e"))
