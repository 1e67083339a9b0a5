#!/usr/bin/env python3
"""The built container image, started without a container engine.

    IMAGE=localhost/shopkeeper:latest python3 tests/deploy/image_test.py   (root; make test-image)

Containers cannot start on these machines (`podman run` fails on setrlimit),
so this runs the image's own file system instead: `podman image mount`, then,
in a private mount namespace (unshare), the test's model and state
directories bound over the image's /model and /state volumes and /proc
mounted, an API key file bound where compose mounts its secret
(/run/secrets/shopkeeper-api-keys), and `chroot --userspec` into it as the
image's USER, with exactly the image's ENV, ENTRYPOINT and CMD (only the port
of SHOPKEEPER_LISTEN moves to a free one, and SHOPKEEPER_API_KEYS_FILE names
the secret). It checks:

  - the image's binary trains the demo data (as the image's user, into /model);
  - the server starts from ENTRYPOINT + CMD + ENV alone, as a non-root user,
    and answers curl from the host (healthz, readyz, recommendations, events
    with the key; without it 401);
  - without keys, on the image's own 0.0.0.0, it is in protected mode: reads
    served, writes 403 protected_mode;
  - the image's HEALTHCHECK command succeeds inside the image;
  - the state volume is written by the server (events are durable there);
  - SIGTERM drains and the server exits 0;
  - shopkeeper-publish (the compose retrain job, the k8s CronJob) trains a new
    version into /models, switches /models/current, and the server reloads it.

Python 3 standard library; needs root, podman, unshare, chroot, curl. The
last line is "N passed, N failed" and the time taken.
"""
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
IMAGE = os.environ.get("IMAGE", "localhost/shopkeeper:latest")
PODMAN = ["podman", "--storage-driver", "vfs"]
DEMO = os.path.join(ROOT, "data", "demo")
DEMO_COLUMNS = ("customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,"
                "quantity=Quantity,price=UnitPrice,title=Description,birth_date=BirthDate")
S = {}
KEY = "image-test-key-0123456789abcdef"
SECRET = "/run/secrets/shopkeeper-api-keys"


def sh(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=kw.pop("timeout", 120),
                          **kw)


def read(path):
    with open(path) as f:
        return f.read()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def in_image(argv, env, user=True):
    """The command line that runs argv inside the mounted image: a private
    mount namespace with the volumes bound, then chroot as the image user."""
    mnt = S["mnt"]
    binds = " && ".join([
        "mount --bind %s %s/model" % (shlex.quote(S["model"]), mnt),
        "mount --bind %s %s/state" % (shlex.quote(S["state"]), mnt),
        "mount --bind %s %s/models" % (shlex.quote(S["models"]), mnt),
        "mount --bind -o ro %s %s/mnt" % (shlex.quote(DEMO), mnt),
        "mount -t proc proc %s/proc" % mnt,
        # The secret, as compose mounts it: a tmpfs over /run, readable by
        # the image's user only.
        "mount -t tmpfs -o mode=755 tmpfs %s/run" % mnt,
        "mkdir -p %s/run/secrets" % mnt,
        "cp %s %s%s" % (shlex.quote(S["keys"]), mnt, SECRET),
        "chown %s %s%s" % (S["userspec"], mnt, SECRET),
        "chmod 400 %s%s" % (mnt, SECRET),
    ])
    userspec = ["--userspec=%s" % S["userspec"]] if user else []
    envv = ["%s=%s" % kv for kv in env.items()]
    inner = " ".join(shlex.quote(a) for a in
                     ["chroot"] + userspec + [mnt, "/usr/bin/env", "-i"] + envv + list(argv))
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            "set -e; %s; exec %s" % (binds, inner)]


def setUpModule():
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root (podman image mount, unshare, chroot)")
    for tool in ("podman", "unshare", "chroot", "curl"):
        if not shutil.which(tool):
            raise unittest.SkipTest("%s missing" % tool)
    p = sh(PODMAN + ["image", "inspect", IMAGE])
    if p.returncode != 0:
        raise AssertionError("no image %s (make image): %s" % (IMAGE, p.stderr))
    info = json.loads(p.stdout)[0]
    S["config"] = info["Config"]
    # podman shows a docker-format image's HEALTHCHECK beside Config.
    S["config"].setdefault("Healthcheck", info.get("Healthcheck"))
    p = sh(PODMAN + ["image", "mount", IMAGE])
    if p.returncode != 0:
        raise AssertionError("podman image mount: %s" % p.stderr)
    S["mnt"] = p.stdout.strip()
    S["tmp"] = tempfile.mkdtemp(prefix="shopkeeper-image-")
    os.chmod(S["tmp"], 0o755)
    user = S["config"].get("User", "")
    uid = gid = None
    with open(os.path.join(S["mnt"], "etc", "passwd")) as f:
        for line in f:
            parts = line.split(":")
            if parts[0] == user or parts[2] == user:
                uid, gid = int(parts[2]), int(parts[3])
    if uid is None:
        raise AssertionError("the image's USER %r is not in its /etc/passwd" % user)
    S["uid"], S["userspec"] = uid, "%d:%d" % (uid, gid)
    S["keys"] = os.path.join(S["tmp"], "api-keys")
    with open(S["keys"], "w") as f:
        f.write("# one key per line\n%s\n" % KEY)
    for d in ("model", "state", "models"):
        S[d] = os.path.join(S["tmp"], d)
        os.mkdir(S[d])
        os.chown(S[d], uid, gid)


def tearDownModule():
    if "mnt" in S:
        sh(PODMAN + ["image", "umount", IMAGE])
    if "tmp" in S:
        shutil.rmtree(S["tmp"], ignore_errors=True)


class ImageTests(unittest.TestCase):
    def image_env(self, **override):
        env = dict(e.split("=", 1) for e in S["config"].get("Env", []))
        env.update(override)
        return env

    def curl(self, port, path, *extra):
        p = sh(["curl", "-sS", "-m", "5", "-w", "\n%{http_code}", *extra,
                "http://127.0.0.1:%d%s" % (port, path)])
        body, _, code = p.stdout.rpartition("\n")
        return int(code or 0), body

    def test_image_trains_and_serves(self):
        cfg = S["config"]
        self.assertEqual(cfg.get("Entrypoint"), ["shopkeeper"])
        self.assertIn("8080/tcp", cfg.get("ExposedPorts", {}))
        self.assertEqual(set(cfg.get("Volumes", {})), {"/model", "/state"})
        self.assertNotEqual(S["uid"], 0, "the image runs as root")

        # Training, as the trainer job of deploy/compose.yaml does.
        t0 = time.monotonic()
        train = ["shopkeeper", "train", "--interactions", "/mnt/online-retail-sample.csv",
                 "--catalog", "/mnt/catalog.csv", "--customers", "/mnt/customers.csv",
                 "--columns", DEMO_COLUMNS, "--out", "/model", "--quiet"]
        p = sh(in_image(train, self.image_env()))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(os.path.join(S["model"], "model.mdb")))
        self.assertEqual(os.stat(os.path.join(S["model"], "model.mdb")).st_uid, S["uid"])
        S["train_s"] = time.monotonic() - t0

        # Serving: ENTRYPOINT + CMD with the image's ENV; the port moves and
        # the keys come from the secret.
        port = free_port()
        host = self.image_env()["SHOPKEEPER_LISTEN"].rsplit(":", 1)[0]
        self.assertEqual(host, "0.0.0.0")
        env = self.image_env(SHOPKEEPER_LISTEN="%s:%d" % (host, port), SHOPKEEPER_THREADS="2",
                             SHOPKEEPER_API_KEYS_FILE=SECRET)
        errp = os.path.join(S["tmp"], "serve.stderr")
        argv = cfg["Entrypoint"] + (cfg.get("Cmd") or [])
        with open(errp, "wb") as errf:
            proc = subprocess.Popen(in_image(argv, env), stdout=subprocess.DEVNULL, stderr=errf)
        try:
            deadline = time.monotonic() + 15
            code = 0
            while time.monotonic() < deadline and proc.poll() is None:
                code, _ = self.curl(port, "/readyz")
                if code == 200:
                    break
                time.sleep(0.1)
            with open(errp) as f:
                err = f.read()
            self.assertEqual(code, 200, err)
            self.assertRegex(err, r"shopkeeper \d+\.\d+\.\d+: serving on port %d, listen "
                                  r"0\.0\.0\.0:%d, 2 threads, model \S+ .* from /model, "
                                  r"clock [a-z]+ \([^)]*\), "
                                  r"state /state, API keys on writing routes" % (port, port))
            # Not root: the server's uid, seen from the host.
            with open("/proc/%d/status" % proc.pid) as f:
                uids = re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1)
            self.assertEqual(int(uids), S["uid"])

            code, body = self.curl(port, "/healthz")
            self.assertEqual(code, 200)
            code, body = self.curl(port, "/v1/customers/17850/recommendations?n=3")
            self.assertEqual(code, 200, body)
            self.assertEqual(len(json.loads(body)["items"]), 3)
            # Timestamped after the model's as-of (without one, an event takes
            # the model's clock, still equal to as-of in the model's first second).
            as_of = datetime.datetime.strptime(json.loads(self.curl(port, "/readyz")[1])["as_of"],
                                               "%Y-%m-%dT%H:%M:%SZ")
            when = (as_of + datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            event = ('{"customer_id":"img","item_id":"85123A","event":"cart",'
                     '"timestamp":"%s"}' % when)
            code, body = self.curl(port, "/v1/events", "-X", "POST", "-d", event)
            self.assertEqual(code, 401, body)
            code, body = self.curl(port, "/v1/events", "-X", "POST", "-d", event,
                                   "-H", "Authorization: Bearer " + KEY)
            self.assertEqual(code, 200, body)
            self.assertEqual(json.loads(body)["accepted"], 1)
            code, body = self.curl(port, "/v1/customers/img")
            self.assertEqual(json.loads(body)["events_since_model"], 1)
            st = os.stat(os.path.join(S["state"], "state.mdb"))
            self.assertEqual(st.st_uid, S["uid"])

            # The image's HEALTHCHECK, run inside the image.
            hc = (cfg.get("Healthcheck") or {}).get("Test")
            self.assertTrue(hc, "no HEALTHCHECK in the image (build with --format docker)")
            self.assertEqual(hc[0], "CMD-SHELL", hc)
            p = sh(in_image(["/bin/sh", "-c", hc[1]], env))
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            # ... and it fails when nothing answers.
            p = sh(in_image(["/bin/sh", "-c", hc[1]],
                            dict(env, SHOPKEEPER_LISTEN="127.0.0.1:%d" % free_port())))
            self.assertNotEqual(p.returncode, 0)

            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=15), 0)
            with open(errp) as f:
                self.assertIn("drained; stopping", f.read())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    def test_protected_mode_without_keys(self):
        """The image's own ENV with no keys: 0.0.0.0, so reads are served and
        writes refused with 403 protected_mode."""
        if not os.path.exists(os.path.join(S["model"], "model.mdb")):
            p = sh(in_image(["shopkeeper", "train", "--interactions",
                             "/mnt/online-retail-sample.csv", "--columns", DEMO_COLUMNS,
                             "--out", "/model", "--quiet"], self.image_env()))
            self.assertEqual(p.returncode, 0, p.stderr)
        port = free_port()
        env = self.image_env(SHOPKEEPER_LISTEN="0.0.0.0:%d" % port, SHOPKEEPER_THREADS="1")
        self.assertNotIn("SHOPKEEPER_API_KEYS_FILE", self.image_env())
        errp = os.path.join(S["tmp"], "serve-protected.stderr")
        argv = S["config"]["Entrypoint"] + (S["config"].get("Cmd") or [])
        with open(errp, "wb") as errf:
            proc = subprocess.Popen(in_image(argv, env), stdout=subprocess.DEVNULL, stderr=errf)
        try:
            deadline = time.monotonic() + 15
            code = 0
            while time.monotonic() < deadline and proc.poll() is None:
                code, _ = self.curl(port, "/readyz")
                if code == 200:
                    break
                time.sleep(0.1)
            self.assertEqual(code, 200, read(errp))
            self.assertIn("protected mode", read(errp))
            code, _ = self.curl(port, "/v1/customers/17850/recommendations?n=3")
            self.assertEqual(code, 200)
            code, body = self.curl(port, "/admin/reload", "-X", "POST")
            self.assertEqual(code, 403, body)
            self.assertEqual(json.loads(body)["error"]["code"], "protected_mode")
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=15), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    def test_publish_and_reload_in_image(self):
        """The compose retrain job and the k8s CronJob: shopkeeper-publish
        trains a version into /models, switches /models/current, and the
        server reloads it on POST /admin/reload."""
        env = self.image_env(SHOPKEEPER_MODEL="/models/current",
                             SHOPKEEPER_API_KEYS_FILE=SECRET)
        publish = ["shopkeeper-publish", "/models", "--key-file", SECRET, "--", "--interactions",
                   "/mnt/online-retail-sample.csv", "--columns", DEMO_COLUMNS]
        p = sh(in_image(publish, env))
        self.assertEqual(p.returncode, 0, p.stderr)
        first = p.stdout.strip()
        self.assertEqual(os.readlink(os.path.join(S["models"], "current")), first)

        port = free_port()
        env["SHOPKEEPER_LISTEN"] = "0.0.0.0:%d" % port
        errp = os.path.join(S["tmp"], "serve2.stderr")
        argv = S["config"]["Entrypoint"] + (S["config"].get("Cmd") or [])
        with open(errp, "wb") as errf:
            proc = subprocess.Popen(in_image(argv, env), stdout=subprocess.DEVNULL, stderr=errf)
        try:
            deadline = time.monotonic() + 15
            code, body = 0, ""
            while time.monotonic() < deadline and proc.poll() is None:
                code, body = self.curl(port, "/readyz")
                if code == 200:
                    break
                time.sleep(0.1)
            self.assertEqual(code, 200, read(errp))
            before = json.loads(body)["model"]
            time.sleep(1.1)  # model ids have one-second resolution
            p = sh(in_image(publish[:2] + ["--notify", "http://127.0.0.1:%d" % port] +
                            publish[2:], env))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("reloaded", p.stderr)
            second = p.stdout.strip()
            self.assertNotEqual(second, first)
            self.assertEqual(os.readlink(os.path.join(S["models"], "current")), second)
            code, body = self.curl(port, "/readyz")
            self.assertNotEqual(json.loads(body)["model"], before)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=15), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


if __name__ == "__main__":
    t0 = time.monotonic()
    result = unittest.main(exit=False, verbosity=int(os.environ.get("VERBOSE", "1"))).result
    n_fail = len(result.failures) + len(result.errors)
    n_pass = result.testsRun - n_fail - len(result.skipped)
    print("image: %.1f s (training inside the image %.1f s)" % (time.monotonic() - t0,
                                                               S.get("train_s", 0)))
    print("%d passed, %d failed" % (n_pass, n_fail))
    sys.exit(1 if n_fail else 0)
