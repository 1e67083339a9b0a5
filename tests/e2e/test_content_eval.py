#!/usr/bin/env python3
"""End-to-end tests of new arrivals in `eval` (issue 18): with --catalog,
test purchases of items nobody bought in training stay relevant and are
scored as new_item_recall; --new-since scores the new-arrivals slot.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_content_eval.py [-v]

A hand-made shop: A bought a red mug, B a blue plate, C both and a green
bowl; the catalog adds two items nobody bought, a large red mug and a blue
plate set, first seen a month later. In the test period A buys the large
red mug and B the plate set: ranked by content among the new items, each
one's first pick is exactly that.

The last line printed is "N passed, N failed".
"""
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib as ts  # noqa: E402
from lib import run  # noqa: E402

TMP = tempfile.mkdtemp(prefix="shopkeeper-content-eval-")
TRAIN = os.path.join(TMP, "train.csv")
TEST = os.path.join(TMP, "test.csv")
CATALOG = os.path.join(TMP, "catalog.csv")


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


write(TRAIN, "customer_id,item_id,timestamp\n"
             "A,mug,2024-01-02\nB,plate,2024-01-03\nC,mug,2024-01-04\nC,plate,2024-01-04\n"
             "C,bowl,2024-01-05\nD,bowl,2024-01-06\nD,cup,2024-01-06\n")
write(TEST, "customer_id,item_id,timestamp\n"
            "A,mug-xl,2024-02-10\nB,plates,2024-02-11\nE,mug-xl,2024-02-12\n")
write(CATALOG, "item_id,title,price,first_seen\n"
               "mug,RED MUG,2.50,2024-01-01\nplate,BLUE PLATE,4.00,2024-01-01\n"
               "bowl,GREEN BOWL,3.00,2024-01-01\ncup,WHITE CUP,1.00,2024-01-01\n"
               "mug-xl,RED MUG LARGE,3.50,2024-02-01\nplates,BLUE PLATE SET,9.00,2024-02-01\n")


def evaluate(*extra):
    p = run(["eval", "--train", TRAIN, "--test", TEST, "--catalog", CATALOG, "--no-tune",
             "--k", "1"] + list(extra))
    if p.returncode != 0:
        raise AssertionError(p.stderr)
    return json.loads(p.stdout)


class NewItems(unittest.TestCase):
    def test_slot_ranks_new_items_by_content(self):
        got = evaluate("--new-since", "2024-02-01")
        # E is not a training customer: not counted. A and B: both hits.
        self.assertEqual(got["users"], 2)
        self.assertEqual(got["new_item_users"], 2)
        self.assertEqual(got["new_items"], 2)
        self.assertAlmostEqual(got["new_item_recall"], 1.0)
        self.assertAlmostEqual(got["recall"], 1.0)

    def test_main_list_keeps_new_item_purchases(self):
        got = evaluate()
        # The purchases of items nobody bought in training stay relevant.
        self.assertEqual(got["users"], 2)
        self.assertEqual(got["new_item_users"], 2)
        self.assertTrue(0.0 <= got["new_item_recall"] <= 1.0, got)
        # Content off: the new items are out of reach.
        off = evaluate("--content-weight", "0")
        self.assertEqual(off["new_item_recall"], 0.0)

    def test_without_catalog_no_new_item_figures(self):
        p = run(["eval", "--train", TRAIN, "--test", TEST, "--no-tune"])
        self.assertEqual(p.returncode, 0, p.stderr)
        got = json.loads(p.stdout)
        self.assertNotIn("new_item_recall", got)
        self.assertEqual(got["users"], 0)  # nothing they bought is known

    def test_bad_date_is_a_usage_error(self):
        p = run(["eval", "--train", TRAIN, "--test", TEST, "--new-since", "soon"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("--new-since", p.stderr)


if __name__ == "__main__":
    sys.exit(ts.run_suite(__name__, sys.argv[1:], lambda: (TMP,)))
