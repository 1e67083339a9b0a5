#!/usr/bin/env python3
"""The offline manifest check (deploy/k8s/validate.mjs) passes on deploy/k8s
and fails on each kind of broken manifest; deploy/compose.yaml fits the
image, the binary's options and the nginx template the loopback test runs:
replicas on the shared event log (Redis with Sentinel, AOF always) behind
round-robin.

    SHOPKEEPER=bin/shopkeeper python3 tests/deploy/test_k8s_manifests.py

Needs node and the npm packages `make lint-k8s` installs into
build-npm/k8s/node_modules (K8S_NODE_MODULES overrides). The last line is
"N passed, N failed".
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
K8S = os.path.join(ROOT, "deploy", "k8s")
VALIDATE = os.path.join(K8S, "validate.mjs")
NODE_MODULES = os.path.abspath(os.environ.get("K8S_NODE_MODULES") or
                               os.path.join(ROOT, "build-npm", "k8s", "node_modules"))
BIN = os.path.abspath(os.path.join(ROOT, os.environ.get("SHOPKEEPER") or "bin/shopkeeper"))
S = {}


def setUpModule():
    if not os.path.isdir(os.path.join(NODE_MODULES, "kubernetes-models")):
        raise AssertionError("%s has no kubernetes-models: run make lint-k8s" % NODE_MODULES)
    S["tmp"] = tempfile.mkdtemp(prefix="shopkeeper-k8s-")
    S["help"] = os.path.join(S["tmp"], "help.txt")
    with open(S["help"], "w") as f:
        subprocess.run([BIN, "serve", "--help"], stdout=f, check=True, timeout=10)


def tearDownModule():
    shutil.rmtree(S.get("tmp", ""), ignore_errors=True)


# Each broken copy: (file, text in it, replacement, what the check must say).
BROKEN = [
    # schemas
    ("statefulset.yaml", "containerPort: 8080", 'containerPort: "eighty"',
     r"containerPort must be integer"),
    ("statefulset.yaml", "  selector:\n    matchLabels:\n      app.kubernetes.io/name: shopkeeper\n"
     "  template:", "  template:", r"must have required property '?selector"),
    ("hpa.yaml", "minReplicas: 3", "minReplicas: three", r"schema"),
    ("cronjob.yaml", "restartPolicy: Never", "restartPolicy: [Never]", r"schema"),
    # YAML and kinds
    ("services.yaml", "  clusterIP: None", "  clusterIP: [None", r"YAML"),
    ("pdb.yaml", "kind: PodDisruptionBudget", "kind: PodDisruptionBudgetz",
     r"unknown apiVersion/kind"),
    # what the deployment relies on
    ("statefulset.yaml", "path: /readyz", "path: /ready", r"expected /readyz"),
    ("statefulset.yaml", "path: /healthz", "path: /readyz", r"expected /healthz"),
    ("configmap.yaml", "SHOPKEEPER_ACCESS_LOG_SAMPLE", "SHOPKEEPER_ACCESS_LOG_SAMPLES",
     r"SHOPKEEPER_ACCESS_LOG_SAMPLES: not an option"),
    ("configmap.yaml", '"0.0.0.0:8080"', '"0.0.0.0:9090"', r"no containerPort 9090"),
    ("configmap.yaml", 'SHOPKEEPER_DRAIN_TIMEOUT: "10"', 'SHOPKEEPER_DRAIN_TIMEOUT: "40"',
     r"do not fit in terminationGracePeriodSeconds"),
    ("statefulset.yaml", '              cpu: "2"\n', "", r"no resources.limits.cpu"),
    ("statefulset.yaml", "  volumeClaimTemplates:", "  volumeClaimTemplatez:",
     r"no volumeClaimTemplates"),
    ("hpa.yaml", "    name: shopkeeper\n  minReplicas", "    name: shopkeepr\n  minReplicas",
     r"scaleTargetRef StatefulSet/shopkeepr: no such object"),
    ("services.yaml", "targetPort: http", "targetPort: web", r"targetPort web"),
    ("statefulset.yaml", "  serviceName: shopkeeper-headless", "  serviceName: shopkeeper",
     r"is not headless"),
    ("ingress.yaml", "name: shopkeeper\n                port", "name: nope\n                port",
     r"backend nope: no such Service"),
    ("kustomization.yaml", "  - ingress.yaml\n", "", r"ingress.yaml: not listed"),
    ("statefulset.yaml", "enableServiceLinks: false", "enableServiceLinks: true",
     r"enableServiceLinks is not false"),
    # keys: without them the servers would refuse writes (protected mode)
    ("configmap.yaml", "  SHOPKEEPER_API_KEYS_FILE: /etc/shopkeeper/keys/keys\n", "",
     r"no API keys .*protected mode"),
    ("configmap.yaml", "SHOPKEEPER_API_KEYS_FILE: /etc/shopkeeper/keys/keys",
     "SHOPKEEPER_API_KEYS_FILE: /tmp/keys", r"/tmp/keys is not in a mounted Secret"),
    # the shared event log (issue 13)
    ("configmap.yaml", "  SHOPKEEPER_EVENT_LOG:", "  SHOPKEEPER_EVENT_LOGS:",
     r"no SHOPKEEPER_EVENT_LOG: behind a round-robin"),
    ("configmap.yaml", "/shopkeeper?password_file", "/shopkeepr?password_file",
     r"names master shopkeepr, the sentinels monitor shopkeeper"),
    ("configmap.yaml", "shopkeeper-redis-2.shopkeeper-redis:26379",
     "shopkeeper-redis-2.shopkeeper-redis:26380", r"has no port 26380"),
    ("redis.yaml", "replicas: 3\n  podManagementPolicy", "replicas: 2\n  podManagementPolicy",
     r"has no pod shopkeeper-redis-2"),
    ("configmap.yaml", "shopkeeper-redis-0.shopkeeper-redis:26379,shopkeeper-redis-1.shopkeeper-redis:26379,"
     "shopkeeper-redis-2.shopkeeper-redis:26379", "redis.example.com:26379",
     r"names no Service of shopkeeper-redis: Redis here is unused"),
    ("redis.yaml", "    appendfsync always\n", "    appendfsync everysec\n",
     r"without appendonly yes and appendfsync always"),
    ("statefulset.yaml", "            - name: redis-password\n              mountPath: /etc/shopkeeper/redis\n"
     "              readOnly: true\n", "", r"password_file /etc/shopkeeper/redis/password is not in a mounted Secret"),
    ("ingress.yaml", "load-balance: round_robin", "upstream-hash-by: \"$shopkeeper_key\"",
     r"customer affinity is retired"),
    ("cronjob.yaml", ' \\\n                    --events-from "$SHOPKEEPER_EVENT_LOG"', "",
     r"trains without --events-from"),
    ("redis.yaml", "        name: data\n      spec:", "        name: dat\n      spec:",
     r"mounts data, which is no volume"),
]


class Manifests(unittest.TestCase):
    def check(self, *dirs):
        return subprocess.run(["node", VALIDATE, NODE_MODULES, S["help"]] + list(dirs),
                              capture_output=True, text=True, timeout=120)

    def test_the_real_manifests_pass(self):
        p = self.check(K8S)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"k8s: \S+: \d+ objects in \d+ files valid")

    def test_every_broken_copy_fails(self):
        """One copy of deploy/k8s per mistake, all checked in one node run;
        each copy must fail, saying what is wrong."""
        dirs = []
        for n, (file, old, new, _) in enumerate(BROKEN):
            d = os.path.join(S["tmp"], "broken-%02d" % n)
            shutil.copytree(K8S, d)
            path = os.path.join(d, file)
            with open(path) as f:
                text = f.read()
            self.assertIn(old, text, "the test's edit no longer applies to %s" % file)
            with open(path, "w") as f:
                f.write(text.replace(old, new, 1))
            dirs.append(d)
        p = self.check(*dirs)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        for d, (file, old, new, says) in zip(dirs, BROKEN):
            with self.subTest(file=file, new=new):
                mine = "\n".join(l for l in p.stderr.splitlines() if l.startswith("k8s: %s: " % d))
                self.assertRegex(mine, r"problem\(s\)")
                self.assertRegex(mine, says)
        self.assertNotIn("valid", p.stdout)


class Compose(unittest.TestCase):
    """deploy/compose.yaml has no engine to run it here: check that it fits
    the image, the binary and the nginx template the loopback test runs."""

    def load(self):
        yaml_js = os.path.join(NODE_MODULES, "yaml", "dist", "index.js")
        code = ("import fs from 'node:fs'; const Y = (await import(process.argv[1])).default;"
                "console.log(JSON.stringify(Y.parse(fs.readFileSync(process.argv[2], 'utf8'),"
                " {merge: true})));")
        p = subprocess.run(["node", "--input-type=module", "-e", code, yaml_js,
                            os.path.join(ROOT, "deploy", "compose.yaml")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def accepted(self):
        with open(S["help"]) as f:
            flags = set(re.findall(r"^\s+--([a-z][a-z-]*)", f.read(), re.M)) - {"help"}
        accepted = {"SHOPKEEPER_" + f.upper().replace("-", "_") for f in flags}
        accepted |= {"SHOPKEEPER_API_KEYS", "SHOPKEEPER_API_KEYS_FILE"}
        return accepted

    def test_replicas_share_the_event_log(self):
        c = self.load()
        svc = c["services"]
        r = svc["replica"]
        env = r["environment"]
        for k in env:
            self.assertIn(k, self.accepted(), "replica: %s is no serve option" % k)
        self.assertGreaterEqual(r["deploy"]["replicas"], 2)
        # The state: each container's own (an anonymous volume), the model shared, read-only.
        self.assertIn(env["SHOPKEEPER_STATE"], r["volumes"])
        vols = {v.split(":")[1]: v for v in r["volumes"] if ":" in v}
        model_dir = os.path.dirname(env["SHOPKEEPER_MODEL"])
        self.assertTrue(vols[model_dir].endswith(":ro"), vols[model_dir])
        self.assertEqual(r["depends_on"]["trainer"]["condition"], "service_completed_successfully")
        self.assertIn("/readyz", " ".join(r["healthcheck"]["test"]))
        # The log through the sentinels, which watch the primary by the URL's name.
        m = re.match(r"^sentinel://([^/]+)/([^?]+)", env["SHOPKEEPER_EVENT_LOG"])
        self.assertIsNotNone(m, env["SHOPKEEPER_EVENT_LOG"])
        hosts, master = m.group(1).split(","), m.group(2)
        self.assertEqual(len(hosts), 3)
        for h in hosts:
            name, port = h.split(":")
            self.assertEqual(port, "26379")
            script = svc[name]["command"][0]
            self.assertIn("sentinel monitor %s redis-primary 6379 2" % master, script)
            self.assertIn("redis-sentinel", script)
        # Redis: AOF with fsync on every write, nothing evicted; the replica follows.
        for name in ("redis-primary", "redis-replica"):
            cmd = " ".join(svc[name]["command"])
            for want in ("--appendonly yes", "--appendfsync always", "--maxmemory-policy noeviction"):
                self.assertIn(want, cmd, name)
        self.assertIn("--replicaof redis-primary 6379", " ".join(svc["redis-replica"]["command"]))
        self.assertNotIn("ports", svc["redis-primary"], "Redis is not published")

    def test_keys_and_retrain(self):
        c = self.load()
        svc = c["services"]
        r = svc["replica"]
        # Keys from a compose secret: the replicas listen on 0.0.0.0, where
        # without keys they would refuse every write (protected mode); the
        # retrain job reloads them with the same secret.
        secrets = c.get("secrets", {})
        keys = r["environment"].get("SHOPKEEPER_API_KEYS_FILE", "")
        self.assertTrue(keys.startswith("/run/secrets/"), keys)
        name = keys.rsplit("/", 1)[1]
        self.assertIn(name, r.get("secrets", []))
        self.assertIn(name, secrets)
        rt = svc["retrain"]
        self.assertIn(name, rt.get("secrets", []))
        script = " ".join(rt["entrypoint"])
        self.assertIn("--key-file %s" % keys, script)
        # Retraining feeds the log's events and trims the log (SHOPKEEPER_EVENT_LOG).
        self.assertIn("--events-from", script)
        self.assertEqual(rt["environment"]["SHOPKEEPER_EVENT_LOG"],
                         r["environment"]["SHOPKEEPER_EVENT_LOG"])
        self.assertIn("getent ahostsv4 replica", script)
        # The trainer writes the models volume with the script the image ships.
        t = svc["trainer"]
        self.assertIn("shopkeeper-publish", " ".join(t["entrypoint"]))
        self.assertTrue(any(v.startswith("models:/models") and not v.endswith(":ro")
                            for v in t["volumes"]))
        with open(os.path.join(ROOT, "Dockerfile")) as f:
            self.assertIn("/usr/local/bin/shopkeeper-publish", f.read())
        for v in t["volumes"]:
            src = v.split(":")[0]
            if src.startswith("."):
                self.assertTrue(os.path.isdir(os.path.join(ROOT, "deploy", src)), v)

    def test_nginx_round_robin_over_every_replica(self):
        c = self.load()
        ng = c["services"]["nginx"]
        mount = [v for v in ng["volumes"] if "template" in v][0]
        tpl = os.path.join(ROOT, "deploy", mount.split(":")[0])
        with open(tpl) as f:
            text = f.read()
        used = set(re.findall(r"\$\{(SHOPKEEPER_[A-Z0-9_]+)\}", text))
        self.assertEqual(used - set(ng["environment"]), set())
        # No customer affinity left in the template.
        rules = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#"))
        self.assertNotRegex(rules, r"\bhash\b|X-Customer-Id|sticky")
        # The upstream servers: the file mounted where the template includes it,
        # naming the replica service.
        target = ng["environment"]["SHOPKEEPER_UPSTREAM_SERVERS"]
        src = [v.split(":")[0] for v in ng["volumes"] if v.split(":")[1] == target]
        self.assertEqual(len(src), 1, ng["volumes"])
        with open(os.path.join(ROOT, "deploy", src[0])) as f:
            self.assertRegex(f.read(), r"(?m)^server replica:8080 resolve")
        self.assertEqual(ng["depends_on"]["replica"]["condition"], "service_healthy")


if __name__ == "__main__":
    t0 = time.monotonic()
    result = unittest.main(exit=False, verbosity=int(os.environ.get("VERBOSE", "1"))).result
    n_fail = len(result.failures) + len(result.errors)
    n_pass = result.testsRun - n_fail - len(result.skipped)
    print("k8s_manifests: %.1f s" % (time.monotonic() - t0))
    print("%d passed, %d failed" % (n_pass, n_fail))
    sys.exit(1 if n_fail else 0)
