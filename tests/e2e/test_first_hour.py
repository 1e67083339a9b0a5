#!/usr/bin/env python3
"""End-to-end tests of the first hour of a new user (issue 20, points 11-13).

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_first_hour.py [-v] [TestClass[.test]]

- --columns per file: a mapped header a file lacks falls back to the
  standard name there; --catalog-columns and --customers-columns apply to
  their file only and win there; a mapped interactions column that is not
  there, under either name, is an error naming the column and the file.
- `shopkeeper catalog|customers --from-interactions`: the tables a sales log
  implies, worked out by hand for SALES below; the warning when a catalog or
  customers file repeats ids (a sales log passed as --catalog).
- `make demo PORT=N` and SHOPKEEPER_LISTEN: the server listens there and the
  printed curl lines say so (the model is trained here, `make -o` skips the
  build and the demo training).

The helpers (Server, run, train) come from lib.py. The last line
printed is "N passed, N failed".
"""
import gzip
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib as ts  # noqa: E402  (the shared helpers)
from lib import Server, run, train  # noqa: E402

RETAIL = ts.RETAIL                      # tests/fixtures/online-retail.csv
RETAIL_COLUMNS = ts.RETAIL_COLUMNS      # customer_id=CustomerID,item_id=StockCode,...
CATALOG = os.path.join(ts.FIXTURES, "catalog.csv")      # header item_id,title,category,price
CUSTOMERS = os.path.join(ts.FIXTURES, "customers.csv")  # header customer_id,country,...
SALES_COLUMNS = RETAIL_COLUMNS + ",title=Description"

# A sales log in Online Retail's layout, out of time order, with what the
# catalog and customers commands must make of it:
#   A: titles 'Mug, "big"' x2 and 'mug' x2 (a tie: the first seen wins);
#      prices counted 2 (q 1), 3 (q 2), 4 and 10 (rows without a title or a
#      customer still count): median (3 + 4) / 2 = 3.5; the -1 quantity row
#      and the 0 price row are left out; first_seen 2011-01-03 (line 3,
#      written after an later row).
#   B: 'Bee' x3; prices 1.5, 1.5, 2.5: median 1.5 (odd count); 2011-02-01.
#   C: no positive price at all: price empty.
#   customers: 100 France 1, Germany 1: France (first seen); 101 Germany;
#   102 Germany 2, France 1: Germany. Two rows without a customer.
SALES = '''InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
1,A,"Mug, ""big""",1,2011-01-05 10:00:00,2.00,100.0,France
2,A,mug,2,2011-01-03 09:00:00,3.00,100.0,Germany
C3,A,"Mug, ""big""",-1,2011-01-06 09:00:00,5.00,101.0,Germany
4,A,mug,1,2011-01-07 09:00:00,0,101.0,Germany
5,A,,1,2011-01-08 09:00:00,4.00,,United Kingdom
6,B,Bee,1,2011-02-01 08:00:00,1.5,102.0,France
7,B,Bee,1,2011-02-01 09:00:00,1.5,102.0,Germany
8,B,Bee,1,2011-02-02 09:00:00,2.5,102.0,Germany
9,A,  ,1,2011-01-09 09:00:00,10,,United Kingdom
10,C,"Card, ""red""",-2,2011-03-01 09:00:00,1.0,101.0,Germany
'''
SALES_CATALOG = ('item_id,title,price,first_seen\n'
                 'A,"Mug, ""big""",3.5,2011-01-03\n'
                 'B,Bee,1.5,2011-02-01\n'
                 'C,"Card, ""red""",,2011-03-01\n')
SALES_CUSTOMERS = 'customer_id,country\n100,France\n101,Germany\n102,Germany\n'

SHARED = {}


def setUpModule():
    SHARED["tmp"] = tempfile.mkdtemp(prefix="shopkeeper-first-hour-")


def tmp_path(name):
    return os.path.join(SHARED["tmp"], name)


def write(name, text):
    path = tmp_path(name)
    with open(path, "w") as f:
        f.write(text)
    return path


class Base(unittest.TestCase):
    def assertExit(self, p, code):
        self.assertEqual(p.returncode, code, "exit %d, stderr: %s" % (p.returncode, p.stderr))

    def serve(self, model, name):
        srv = Server(model, tmp_path(name + "-state"))
        self.addCleanup(srv.kill)
        return srv

    def titles(self, srv, item):
        resp = srv.get("/v1/items/%s/similar?n=10" % ts.q(item))
        self.assertEqual(resp.status, 200, resp.body)
        return {i["item_id"]: i.get("title") for i in resp.json["items"]}

    def attributes(self, srv, customer):
        resp = srv.get("/v1/customers/%s" % ts.q(customer))
        self.assertEqual(resp.status, 200, resp.body)
        return resp.json.get("attributes") or {}


# ---------------------------------------------------------------------------
# Point 12: --columns per file
# ---------------------------------------------------------------------------
class ColumnsPerFileTests(Base):
    def test_mapping_falls_back_to_standard_names_in_catalog_and_customers(self):
        """--columns item_id=StockCode (for the sales log) with a catalog whose
        header says item_id, and customer_id=CustomerID with a customers file
        whose header says customer_id: both read."""
        model = tmp_path("fallback")
        train(model, RETAIL, "--columns", RETAIL_COLUMNS, "--catalog", CATALOG)
        srv = self.serve(model, "fallback")
        self.assertEqual(self.titles(srv, "apple").get("cheese"), "Cheddar")
        customers = write("fallback-customers.csv",
                          "customer_id,country,tier\n12001,Japan,gold\n")
        model2 = tmp_path("fallback2")
        train(model2, RETAIL, "--columns", RETAIL_COLUMNS, "--customers", customers)
        srv2 = self.serve(model2, "fallback2")
        self.assertEqual(self.attributes(srv2, "12001"), {"country": "Japan", "tier": "gold"})

    def test_catalog_and_customers_columns_apply_to_their_file_and_win(self):
        # title=Description is for the log; the catalog has a Description
        # column too, but --catalog-columns says its titles are in "name".
        catalog = write("own-catalog.csv", "sku,Description,name,cost\n"
                        "apple,long text,Apple (own),0.5\ncheese,long text,Cheese (own),4\n")
        customers = write("own-customers.csv", "client,land\n12001,Japan\n")
        model = tmp_path("own")
        p = train(model, RETAIL, "--columns", RETAIL_COLUMNS + ",title=Description",
                  "--catalog", catalog, "--catalog-columns", "item_id=sku,title=name,price=cost",
                  "--customers", customers, "--customers-columns", "customer_id=client,country=land")
        self.assertNotIn("warning", p.stderr)
        srv = self.serve(model, "own")
        self.assertEqual(self.titles(srv, "apple").get("cheese"), "Cheese (own)")
        self.assertEqual(self.attributes(srv, "12001"), {"country": "Japan"})

    def test_eval_takes_the_per_file_flags(self):
        catalog = write("eval-catalog.csv", "sku,name\napple,Apple\n")
        p = run(["eval", "--train", RETAIL, "--test", RETAIL, "--columns", RETAIL_COLUMNS,
                 "--algo", "cosine", "--catalog", catalog, "--catalog-columns", "item_id=sku,title=name",
                 "--customers", CUSTOMERS, "--customers-columns", "customer_id=customer_id"])
        self.assertExit(p, 0)
        self.assertIn('"precision"', p.stdout)

    def test_own_map_of_a_missing_header_is_an_error(self):
        catalog = write("bad-own.csv", "sku,name\napple,Apple\n")
        p = run(["train", "--interactions", RETAIL, "--columns", RETAIL_COLUMNS, "--out",
                 tmp_path("bad-own"), "--catalog", catalog, "--catalog-columns",
                 "item_id=sku,title=Name2"])
        self.assertExit(p, 1)
        self.assertIn(catalog, p.stderr)
        self.assertIn('--catalog-columns maps title to "Name2"', p.stderr)

    def test_missing_mapped_interactions_column_is_an_error(self):
        """A mapped header missing from the interactions file, with no
        standard name either, names the column and the file: a typo must
        not train a model without timestamps."""
        out = tmp_path("typo")
        p = run(["train", "--interactions", RETAIL, "--out", out, "--columns",
                 RETAIL_COLUMNS.replace("InvoiceDate", "InvoiceDat")])
        self.assertExit(p, 1)
        self.assertIn(RETAIL, p.stderr)
        self.assertIn('timestamp to "InvoiceDat"', p.stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "model.mdb")))
        # a required one: names both names tried
        p = run(["train", "--interactions", RETAIL, "--out", out, "--columns",
                 RETAIL_COLUMNS.replace("StockCode", "Sku")])
        self.assertExit(p, 1)
        self.assertIn(RETAIL, p.stderr)
        self.assertIn('no "Sku" or "item_id" column', p.stderr)

    def test_bad_per_file_spec_is_a_usage_error(self):
        p = run(["train", "--interactions", RETAIL, "--out", tmp_path("x"),
                 "--customers-columns", "shoe_size=S"])
        self.assertExit(p, 2)
        self.assertIn("--customers-columns", p.stderr)
        self.assertIn("shoe_size", p.stderr)


# ---------------------------------------------------------------------------
# Point 13: catalog and customers from a sales log
# ---------------------------------------------------------------------------
class FromSalesLogTests(Base):
    def sales(self):
        return write("sales.csv", SALES)

    def test_catalog(self):
        p = run(["catalog", "--from-interactions", self.sales(), "--columns", SALES_COLUMNS])
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, SALES_CATALOG)
        self.assertIn("10 rows read, 0 skipped; 3 items written", p.stderr)
        self.assertNotIn("\r", p.stderr)  # no progress line off a terminal

    def test_customers(self):
        p = run(["customers", "--from-interactions", self.sales(), "--columns", SALES_COLUMNS])
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, SALES_CUSTOMERS)
        self.assertIn("line 6 skipped: no customer id", p.stderr)
        self.assertIn("10 rows read, 2 skipped; 3 customers written", p.stderr)
        self.assertNotIn("\r", p.stderr)

    def test_gzip_and_stdin_read_the_same(self):
        gz = tmp_path("sales.csv.gz")
        with gzip.open(gz, "wt") as f:
            f.write(SALES)
        p = run(["catalog", "--from-interactions", gz, "--columns", SALES_COLUMNS, "--quiet"])
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, SALES_CATALOG)
        self.assertEqual(p.stderr, "")
        p = run(["customers", "--from-interactions", "-", "--columns", SALES_COLUMNS, "--quiet"],
                stdin=SALES)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, SALES_CUSTOMERS)

    def test_missing_columns_are_named(self):
        log = write("plain.csv", "customer_id,item_id\nc1,i1\nc2,i1\n")
        p = run(["catalog", "--from-interactions", log])
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, "item_id,title,price,first_seen\ni1,,,\n")
        for name in ("title", "price", "timestamp"):
            self.assertIn("no %s column" % name, p.stderr)
        p = run(["customers", "--from-interactions", log])
        self.assertEqual(p.stdout, "customer_id,country\nc1,\nc2,\n")
        self.assertIn("no country column", p.stderr)

    def test_round_trip_into_train(self):
        """What the commands write, train reads with no warning, and the
        model serves the titles."""
        cat = run(["catalog", "--from-interactions", RETAIL, "--columns",
                   RETAIL_COLUMNS + ",title=Description", "--quiet"])
        cus = run(["customers", "--from-interactions", RETAIL, "--columns", RETAIL_COLUMNS,
                   "--quiet"])
        self.assertExit(cat, 0)
        self.assertExit(cus, 0)
        self.assertIn('bread,"BREAD, SLICED ""FRESH""",2.1,2024-03-01\n', cat.stdout)
        self.assertIn("12004,Germany\n", cus.stdout)
        model = tmp_path("round-trip")
        p = train(model, RETAIL, "--columns", RETAIL_COLUMNS,
                  "--catalog", write("rt-catalog.csv", cat.stdout),
                  "--customers", write("rt-customers.csv", cus.stdout))
        self.assertNotIn("warning", p.stderr)
        srv = self.serve(model, "round-trip")
        self.assertEqual(self.titles(srv, "apple").get("bread"), 'BREAD, SLICED "FRESH"')
        self.assertEqual(self.attributes(srv, "12004"), {"country": "Germany"})

    def test_help_and_exit_codes(self):
        for cmd in ("catalog", "customers"):
            p = run([cmd, "--help"])
            self.assertExit(p, 0)
            self.assertIn("--from-interactions FILE", p.stdout)
            self.assertIn("on a tie, the one that comes first in the file",
                          re.sub(r"\s+", " ", p.stdout))
            self.assertExit(run([cmd]), 2)
            self.assertExit(run([cmd, "--from-interactions", RETAIL, "--bogus"]), 2)
            self.assertExit(run([cmd, "--from-interactions", RETAIL, "--columns", "shoe=S"]), 2)
            p = run([cmd, "--from-interactions", tmp_path("no-such-file.csv")])
            self.assertExit(p, 1)
            self.assertIn("no-such-file.csv", p.stderr)
            # the id column is not there under any name
            p = run([cmd, "--from-interactions", write("noid.csv", "a,b\n1,2\n")])
            self.assertExit(p, 1)
            self.assertIn("noid.csv", p.stderr)
        self.assertIn("median unit price", re.sub(r"\s+", " ", run(["catalog", "--help"]).stdout))
        self.assertIn("catalog", run(["--help"]).stdout)

    def test_sales_log_as_catalog_is_warned_about(self):
        """The sales log itself passed as --catalog (and as --customers): train
        goes on, but says the ids repeat, how often, which, and what to run."""
        p = train(tmp_path("log-as-catalog"), RETAIL, "--columns",
                  RETAIL_COLUMNS + ",title=Description", "--catalog", RETAIL,
                  "--customers", RETAIL)
        # items: apple 7 rows, bread 6, cheese 6, dates 2, eggs 2, flour 4,
        # Mug 2, tea/green 2 = 31 rows for 8 items: 23 repeats, all 8 ids.
        self.assertRegex(p.stderr, r"catalog: warning: .*online-retail\.csv repeats 8 item ids on "
                                   r"23 more rows \(first: \"apple\", \"bread\", \"cheese\", "
                                   r"\"dates\", \"eggs\", \.\.\.\)")
        self.assertIn("shopkeeper catalog --from-interactions", p.stderr)
        self.assertRegex(p.stderr, r"customers: warning: .*repeats \d+ customer ids on \d+ more rows")
        self.assertIn("shopkeeper customers --from-interactions", p.stderr)
        # a clean catalog: no warning
        p = train(tmp_path("clean-catalog"), RETAIL, "--columns", RETAIL_COLUMNS,
                  "--catalog", CATALOG, "--customers", CUSTOMERS)
        self.assertNotIn("warning", p.stderr)


# ---------------------------------------------------------------------------
# Point 11: make demo PORT=N, SHOPKEEPER_LISTEN
# ---------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(shutil.which("make"), "make is not installed")
class MakeDemoTests(Base):
    @classmethod
    def setUpClass(cls):
        cls.model = os.path.join(SHARED["tmp"], "demo-model")
        train(cls.model, RETAIL, "--columns", RETAIL_COLUMNS)

    def make_demo(self, name, args=(), env=None):
        """Runs `make demo` on the model trained above (the build and the demo
        training skipped with -o) and waits for the curl lines and the
        serving line. Returns (stdout so far, port served)."""
        full_env = dict(os.environ)
        full_env.pop("SHOPKEEPER_LISTEN", None)
        full_env.pop("PORT", None)
        full_env.update(env or {})
        out_path, err_path = tmp_path(name + ".out"), tmp_path(name + ".err")
        out, err = open(out_path, "wb"), open(err_path, "wb")
        self.addCleanup(out.close)
        self.addCleanup(err.close)
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "-o", "all", "-o", "demo-model", "demo",
             "BIN=" + os.path.dirname(ts.BIN), "DEMO_MODEL=" + self.model,
             "DEMO_STATE=" + tmp_path(name + "-state")] + list(args),
            cwd=ts.ROOT, env=full_env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            start_new_session=True)
        self.addCleanup(self.stop, proc)
        deadline = time.monotonic() + ts.START_TIMEOUT
        port = None
        while time.monotonic() < deadline:
            with open(err_path, "rb") as f:
                m = re.search(rb"serving on port (\d+)", f.read())
            if m:
                port = int(m.group(1))
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        with open(out_path) as f:
            stdout = f.read()
        with open(err_path) as f:
            stderr = f.read()
        self.assertIsNotNone(port, "make demo did not serve (exit %r): %s%s"
                             % (proc.poll(), stdout, stderr))
        return stdout, port

    def stop(self, proc):
        """SIGTERM to the process group this test started (make and serve)."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=ts.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=ts.STOP_TIMEOUT)

    def check_demo(self, stdout, port):
        curls = re.findall(r"curl -s '(http://[^/']+)/", stdout)
        self.assertEqual(len(curls), 4, stdout)
        self.assertEqual(set(curls), {"http://127.0.0.1:%d" % port}, stdout)
        conn = ts.http.client.HTTPConnection("127.0.0.1", port, timeout=ts.HTTP_TIMEOUT)
        try:
            conn.request("GET", "/v1/items/apple/similar?n=2")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
        finally:
            conn.close()

    def test_port_on_the_command_line(self):
        port = free_port()
        stdout, served = self.make_demo("demo-port", ["PORT=%d" % port])
        self.assertEqual(served, port)
        self.check_demo(stdout, port)

    def test_shopkeeper_listen_in_the_environment(self):
        port = free_port()
        stdout, served = self.make_demo("demo-env", env={"SHOPKEEPER_LISTEN": "127.0.0.1:%d" % port})
        self.assertEqual(served, port)
        self.check_demo(stdout, port)

    def test_port_in_use_is_named(self):
        """Issue 20, point 11: a taken port gets a message naming it and the
        way out, not the library's "Failed to bind to port 0"."""
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        try:
            port = holder.getsockname()[1]
            p = run(["serve", "--model", self.model, "--state", tmp_path("busy-state"),
                     "--listen", "127.0.0.1:%d" % port], timeout=ts.START_TIMEOUT)
        finally:
            holder.close()
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("127.0.0.1:%d" % port, p.stderr)
        self.assertIn("in use", p.stderr)
        self.assertIn("--listen", p.stderr)
        self.assertNotIn("port 0", p.stderr)


if __name__ == "__main__":
    sys.exit(ts.run_suite(__name__, sys.argv[1:], lambda: [SHARED.get("tmp")], "e2e"))
