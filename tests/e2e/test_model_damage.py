#!/usr/bin/env python3
"""Model corruption fuzz loop: random page damage is refused, never a crash.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_model_damage.py [-v]

LMDB does not checksum its pages, so train writes a CRC-32C of model.mdb
into model.sum and every open checks it first. Here a small model is
trained once; each of RUNS rounds copies it, damages one random 4 KiB page
(zeroed, random bytes, or one flipped bit) and opens the copy with
`inspect` (and, every few rounds, `serve`): the open must fail with exit 1
and a message naming the model, never a signal. The seed is printed on a
failure (SHOPKEEPER_DAMAGE_SEED=N repeats a run). The last line printed is
"N passed, N failed".
"""
import os
import random
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lib as ts  # noqa: E402  (the shared helpers)
from lib import run, train  # noqa: E402

RUNS = 20
PAGE = 4096
SHARED = {}


def make_interactions(path, rng):
    """A CSV big enough for a model of a few hundred pages."""
    with open(path, "w") as f:
        f.write("customer_id,item_id,timestamp\n")
        for c in range(1500):
            for _ in range(rng.randint(2, 12)):
                item = int(rng.paretovariate(1.2)) % 400
                f.write("c%d,item-%d,2024-01-%02d\n" % (c, item, rng.randint(1, 28)))


def setUpModule():
    tmp = tempfile.mkdtemp(prefix="shopkeeper-damage-")
    SHARED["tmp"] = tmp
    csv = os.path.join(tmp, "interactions.csv")
    make_interactions(csv, random.Random(7))
    SHARED["model"] = os.path.join(tmp, "model")
    train(SHARED["model"], csv)


class ModelDamageTests(unittest.TestCase):
    def test_good_model_opens(self):
        p = run(["inspect", SHARED["model"]])
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_random_page_damage_refused(self):
        seed = int(os.environ.get("SHOPKEEPER_DAMAGE_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        with open(os.path.join(SHARED["model"], "model.mdb"), "rb") as f:
            good = f.read()
        pages = len(good) // PAGE
        self.assertGreater(pages, 20, "the model is too small to damage in the middle")
        for i in range(RUNS):
            page = rng.randrange(pages)
            kind = rng.choice(["zero", "random", "bit"])
            data = bytearray(good)
            at = page * PAGE
            if kind == "zero":
                data[at:at + PAGE] = bytes(PAGE)
            elif kind == "random":
                data[at:at + PAGE] = bytes(rng.randrange(256) for _ in range(PAGE))
            else:
                data[at + rng.randrange(PAGE)] ^= 1 << rng.randrange(8)
            if bytes(data) == good:
                continue  # random bytes that happened to match
            what = "seed %d, run %d: page %d of %d, %s" % (seed, i, page, pages, kind)
            with self.subTest(what):
                d = os.path.join(SHARED["tmp"], "damaged-%d" % i)
                os.makedirs(d)
                if os.path.exists(os.path.join(SHARED["model"], "model.sum")):
                    shutil.copyfile(os.path.join(SHARED["model"], "model.sum"),
                                    os.path.join(d, "model.sum"))
                with open(os.path.join(d, "model.mdb"), "wb") as f:
                    f.write(data)
                if i % 5 == 0:
                    p = run(["serve", "--model", d, "--state", os.path.join(d, "state"),
                             "--listen", "127.0.0.1:0"])
                else:
                    p = run(["inspect", d])
                self.assertEqual(p.returncode, 1, "%s: exit %d: %s" % (what, p.returncode,
                                                                      p.stderr[-2000:]))
                self.assertIn(d, p.stderr, what)
                shutil.rmtree(d)


if __name__ == "__main__":
    sys.exit(ts.run_suite(__name__, sys.argv[1:], lambda: [SHARED.get("tmp")],
                          "model damage"))
