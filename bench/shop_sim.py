#!/usr/bin/env python3
"""A simulated shop that exercises shopkeeper's experiments (issue 15).

    bench/shop_sim.py ONLINE_RETAIL.csv.gz --mode aa|ab|offline
                      [--runs N] [--seed S] [--jobs J] [--max-visits N]
                      [--check-every K] [--metric conversion] [--work DIR]
                      [--bin bin/shopkeeper]

Online Retail is cut in time as `bench/retail_split.py` cuts it for
`shopkeeper eval` (train before 2011-09-01, cancellations and guest rows
out). shopkeeper is trained on the earlier rows; what each customer bought
on or after 2011-09-01 is taken as what they truly want. The customers are
eval's: bought something later that the model knows and had not bought
before (1,880 customers).

Each run starts `shopkeeper serve` on a free 127.0.0.1 port with a fresh
state directory and an experiments file of one experiment with a fresh
salt (so a fresh assignment), named after the mode and the run's seed:

  aa   two identical personal variants, "control" and "treatment", 50/50;
  ab   "control" is `"source": "popular"`, "personal" is the model, 50/50.

Simulated customers then visit (a seeded RNG; a customer is drawn with
weight their number of later invoices, so regulars come back more often):
each visit asks GET /v1/customers/{id}/recommendations?n=10, reports an
`impression` with the answer's `rec_id`, clicks each shown item with
probability P_HIT if the customer truly bought it later and P_MISS
otherwise, and buys a clicked true item with probability P_BUY (a `cart`
and a `purchase` at the quantity and price of their real later purchase;
a bought item stays wanted: these are wholesalers who re-order);
every event carries the `rec_id`, in one POST /v1/events per visit. Every
--check-every visits the run reads GET /v1/experiments/{name} (after the
served counts, flushed about once a second, have caught up with what the
simulator saw served) and stops at the first look where the primary
metric's always-valid p-value is below 0.05, or at --max-visits. Looking
this often is legitimate only because the p-value is always valid (mSPRT):
the A/A runs measure exactly that. For contrast, each look also computes a
fixed-horizon z-test of conversion from the same counts, and the runs count
how often it would have declared a difference at some look.

Each run prints one JSON line: the variants' figures, the lifts with their
p-values, srm_p_value, the visits made, whether a difference was declared
at the 5% level, and whether the report's clicks, carts, orders and revenue
equal what the simulator sent. With --runs N > 1 a last line sums them up
(how many runs declared a difference).

--mode offline answers the question the A/B test asks without an
experiment: it scores, by `shopkeeper eval`'s rules (hit rate@10 and
nDCG@10, relevant = the distinct later purchases the model knows minus
earlier purchases), the server's personal answer and its popular list for
every customer: the direction the A/B test should find.

The simulator stops with a message (exit status 2) when the server lacks
what it needs: `serve --experiments`, `rec_id` and `experiment` in the
answer, the `impression` and `click` events, the report route or one of its
fields. Standard library only.
"""
import argparse
import collections
import concurrent.futures
import csv
import http.client
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

COLS = ("customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,"
        "quantity=Quantity,price=UnitPrice")
SPLIT = "2011-09-01"

# The customer model. A shown item the customer truly bought later is
# clicked with P_HIT, any other with P_MISS (curiosity, misclicks); a
# clicked true item is bought with P_BUY. Without position bias: the
# experiment compares lists, and both arms show 10 items.
P_HIT = 0.30
P_MISS = 0.02
P_BUY = 0.50
N_SHOWN = 10

ALPHA = 0.05
LIFT_KEYS = ("estimate", "low", "high", "p_value")
VARIANT_KEYS = ("name", "customers", "exposed", "impressions", "clicks", "ctr", "carts",
                "orders", "revenue", "view_through_orders", "view_through_revenue",
                "conversion", "revenue_per_exposed")
START_TIMEOUT = 30.0  # seconds for serve to listen and answer /healthz
CATCH_UP_TIMEOUT = 5.0  # seconds for the report's served counts to catch up
HTTP_TIMEOUT = 30.0


class Missing(Exception):
    """The server lacks a route, flag or field the simulator needs."""


def die(msg):
    sys.stderr.write("shop_sim: %s\n" % msg)
    sys.exit(2)


# ---------------------------------------------------------------------------
# Data: the split, the model, the truth
# ---------------------------------------------------------------------------
def norm_id(s):
    """The id as the server names it ("13509.0" is customer 13509)."""
    s = s.strip()
    return s[:-2] if s.endswith(".0") else s


def prepare(data, work, binary):
    """Splits the data (retail_split.py), trains on the earlier rows; both
    kept in `work` and reused when present. Returns (model_dir, split_dir)."""
    split = os.path.join(work, "split")
    model = os.path.join(work, "model")
    if not os.path.exists(os.path.join(split, "test.csv")):
        subprocess.run([sys.executable, os.path.join(HERE, "retail_split.py"), data, split,
                        "--split", SPLIT], check=True, stdout=subprocess.DEVNULL)
    if not os.path.exists(os.path.join(model, "model.mdb")):
        subprocess.run([binary, "train", "--interactions", os.path.join(split, "train.csv"),
                        "--columns", COLS, "--out", model, "--quiet"], check=True)
    return model, split


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            yield norm_id(r["CustomerID"]), r["StockCode"].strip(), r


def load_truth(split, model_items):
    """Per customer of eval's population: the items they bought later (minus
    earlier purchases, only items the model knows) with a typical quantity
    and price each, and their number of later invoices (the visit weight)."""
    before = collections.defaultdict(set)
    for c, item, _ in read_rows(os.path.join(split, "train.csv")):
        before[c].add(item)
    later = collections.defaultdict(dict)
    invoices = collections.defaultdict(set)
    for c, item, r in read_rows(os.path.join(split, "test.csv")):
        if c not in before or item in before[c] or item not in model_items:
            continue
        invoices[c].add(r["InvoiceNo"])
        q, p = int(float(r["Quantity"])), float(r["UnitPrice"])
        if item not in later[c]:
            later[c][item] = (q, p)  # the first later purchase of it
    truth = {c: items for c, items in later.items() if items}
    weight = {c: len(invoices[c]) for c in truth}
    return truth, weight, before


def model_items_of(model_dir, binary):
    """The item ids the model knows (`shopkeeper inspect DIR --list items`)."""
    out = subprocess.run([binary, "inspect", model_dir, "--list", "items"],
                         check=True, capture_output=True, text=True).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------
class Serve:
    """One `shopkeeper serve` on 127.0.0.1, a port of its choosing, a fresh
    state directory under `tmp`; stopped with SIGTERM by stop()."""

    def __init__(self, binary, model, tmp, experiments=None):
        self.dir = tempfile.mkdtemp(prefix="run-", dir=tmp)
        state = os.path.join(self.dir, "state")
        args = [binary, "serve", "--model", model, "--state", state,
                "--listen", "127.0.0.1:0", "--threads", "2"]
        if experiments is not None:
            path = os.path.join(self.dir, "experiments.json")
            with open(path, "w") as f:
                json.dump(experiments, f)
            args += ["--experiments", path]
        self.errpath = os.path.join(self.dir, "stderr")
        self.errf = open(self.errpath, "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.errf)
        self.port = None
        self.conn = None
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise

    def stderr(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode("utf-8", "replace").strip()

    def _wait(self):
        deadline = time.monotonic() + START_TIMEOUT
        while self.port is None:
            m = re.search(r"on port (\d+)", self.stderr())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                err = self.stderr()
                if "experiments" in err and ("unknown" in err or "unrecognized" in err
                                             or "usage" in err):
                    raise Missing("serve does not take --experiments: " + err[-400:])
                raise RuntimeError("serve exited with %d: %s" % (self.proc.returncode, err[-800:]))
            elif time.monotonic() > deadline:
                raise RuntimeError("serve printed no port within %.0f s" % START_TIMEOUT)
            else:
                time.sleep(0.02)
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                self.conn = None
            time.sleep(0.05)
        raise RuntimeError("serve not healthy within %.0f s: %s" % (START_TIMEOUT, self.stderr()))

    def request(self, method, path, body=None):
        """(status, parsed JSON or None); one kept-alive connection, opened
        again once if the server closed it."""
        data = None if body is None else json.dumps(body).encode()
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=HTTP_TIMEOUT)
            try:
                self.conn.request(method, path, body=data,
                                  headers={"Content-Type": "application/json"} if data else {})
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return resp.status, doc

    def stop(self):
        if self.conn is not None:
            self.conn.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.errf.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def quote(s):
    return "".join(ch if ch.isalnum() or ch in "-._~" else "%%%02X" % b
                   for ch in s for b in ch.encode())


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------
def experiments_file(mode, name, salt):
    if mode == "aa":
        variants = [{"name": "control", "share": 0.5}, {"name": "treatment", "share": 0.5}]
    else:
        variants = [{"name": "control", "share": 0.5, "source": "popular"},
                    {"name": "personal", "share": 0.5}]
    return {"experiments": [{"name": name, "salt": salt, "routes": ["customer"],
                             "variants": variants}]}


def check_report(rep, name):
    """The report's variants, checked for every field the simulator reads."""
    if not isinstance(rep, dict):
        raise Missing("GET /v1/experiments/%s is not a JSON object: %r" % (name, rep))
    if "srm_p_value" not in rep:
        raise Missing("the report has no srm_p_value (keys: %s)" % sorted(rep))
    variants = rep.get("variants")
    if not isinstance(variants, list) or len(variants) < 2:
        raise Missing("the report has no list of variants: %s" % json.dumps(rep)[:400])
    control = rep.get("control", variants[0].get("name"))
    variants = sorted(variants, key=lambda v: v.get("name") != control)  # the control first
    for v in variants:
        missing = [k for k in VARIANT_KEYS if k not in v]
        if missing:
            raise Missing("report variant %r lacks %s" % (v.get("name"), ", ".join(missing)))
    for v in variants[1:]:
        for metric, lift in lifts_of(v).items():
            missing = [k for k in LIFT_KEYS if k not in lift]
            if missing:
                raise Missing("lift %s of variant %r lacks %s"
                              % (metric, v.get("name"), ", ".join(missing)))
        if not lifts_of(v):
            raise Missing("variant %r has no lift against the control" % v.get("name"))
    return variants


def lifts_of(v):
    """{metric: lift object}: the report's `lift` is one object per metric."""
    lift = v.get("lift")
    if isinstance(lift, dict):
        return {k: x for k, x in lift.items() if isinstance(x, dict)}
    return {}


class Run:
    def __init__(self, args, truth, weight, model, seed, run_no):
        self.args = args
        self.truth = truth
        self.customers = sorted(truth)
        cum, total = [], 0
        for c in self.customers:
            total += weight[c]
            cum.append(total)
        self.cum = cum
        self.model = model
        self.seed = seed
        self.rng = random.Random("shop-sim/%s/%d" % (args.mode, seed))
        self.name = "sim-%s-%d" % (args.mode, seed)
        self.salt = "salt-%d" % seed
        self.run_no = run_no
        self.naive_looks = 0  # looks where a fixed-horizon test said p < ALPHA
        # what the simulator saw and sent, per variant
        self.sent = collections.defaultdict(lambda: collections.Counter())
        self.exposed = collections.defaultdict(set)

    def visit(self, srv):
        c = self.rng.choices(self.customers, cum_weights=self.cum)[0]
        st, ans = srv.request("GET", "/v1/customers/%s/recommendations?n=%d&explain=0"
                              % (quote(c), N_SHOWN))
        if st != 200 or not isinstance(ans, dict):
            raise RuntimeError("recommendations of %s: %d %r" % (c, st, ans))
        rec_id, exp = ans.get("rec_id"), ans.get("experiment")
        if not rec_id or not isinstance(exp, dict) or "variant" not in exp:
            raise Missing("the recommendation answer has no rec_id and experiment "
                          "{name, variant}: %s" % json.dumps(ans)[:300])
        if exp.get("name") != self.name:
            raise RuntimeError("answer in experiment %r, expected %r" % (exp.get("name"), self.name))
        var = exp["variant"]
        items = [it["item_id"] for it in ans.get("items", [])]
        sent = self.sent[var]
        if items:
            self.exposed[var].add(c)
        sent["answers"] += 1
        sent["impressions"] += len(items)
        sent["displayed"] += 1
        want = self.truth[c]
        events = [{"customer_id": c, "event": "impression", "rec_id": rec_id}]
        for item in items:
            hit = item in want
            if self.rng.random() >= (P_HIT if hit else P_MISS):
                continue
            events.append({"customer_id": c, "item_id": item, "event": "click",
                           "rec_id": rec_id})
            sent["clicks"] += 1
            if hit and self.rng.random() < P_BUY:
                q, p = want[item]
                events.append({"customer_id": c, "item_id": item, "event": "cart",
                               "rec_id": rec_id, "quantity": q})
                events.append({"customer_id": c, "item_id": item, "event": "purchase",
                               "rec_id": rec_id, "quantity": q, "price": p})
                sent["carts"] += 1
                sent["orders"] += 1
                sent["revenue_cents"] += round(q * p * 100)
        st, res = srv.request("POST", "/v1/events", events)
        rejected = (res or {}).get("rejected") if isinstance(res, dict) else None
        if st >= 300 or rejected:
            codes = sorted({r.get("code", "?") for r in rejected or [] if isinstance(r, dict)})
            if st == 400 or any(code in ("invalid_event_type", "unknown_field") for code in codes):
                raise Missing("POST /v1/events refused the simulator's events (%d, %s): %s"
                              % (st, ", ".join(codes) or "no codes", json.dumps(res)[:300]))
            raise RuntimeError("POST /v1/events: %d %s" % (st, json.dumps(res)[:300]))

    def report(self, srv):
        """The report once its served counts include every answer seen (they
        are flushed about once a second); the last one read if they never do."""
        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        while True:
            st, rep = srv.request("GET", "/v1/experiments/%s" % quote(self.name))
            if st == 404 and isinstance(rep, dict) and "error" in rep:
                code = rep["error"].get("code", "")
                if code in ("not_found", "unknown_route", "no_route"):
                    raise Missing("GET /v1/experiments/{name}: %s" % json.dumps(rep)[:300])
            if st != 200:
                if time.monotonic() > deadline:
                    raise Missing("GET /v1/experiments/%s: %d %s"
                                  % (self.name, st, json.dumps(rep)[:300]))
                time.sleep(0.2)
                continue
            variants = check_report(rep, self.name)
            caught_up = all(v["exposed"] >= len(self.exposed.get(v["name"], ()))
                            and v["impressions"] >= self.sent[v["name"]]["impressions"]
                            for v in variants)
            if caught_up or time.monotonic() > deadline:
                return rep, variants
            time.sleep(0.2)

    def go(self):
        a = self.args
        exps = experiments_file(a.mode, self.name, self.salt)
        srv = Serve(a.bin, self.model, a.tmp, exps)
        t0 = time.monotonic()
        try:
            visits, looks, declared, rep, variants = 0, 0, False, None, None
            while visits < a.max_visits:
                for _ in range(min(a.check_every, a.max_visits - visits)):
                    self.visit(srv)
                    visits += 1
                looks += 1
                rep, variants = self.report(srv)
                if naive_conversion_p(variants) < ALPHA:
                    self.naive_looks += 1
                p = primary_p(variants, a.metric)
                if p is not None and p < ALPHA:
                    declared = True
                    break
        finally:
            srv.stop()
        return self.summary(rep, variants, visits, looks, declared, time.monotonic() - t0)

    def summary(self, rep, variants, visits, looks, declared, seconds):
        figs = []
        mismatches = []
        for v in variants:
            s = self.sent.get(v["name"], collections.Counter())
            for key in ("impressions", "displayed", "clicks", "carts", "orders"):
                if v.get(key) != s[key]:
                    mismatches.append("%s %s: report %s, sent %d" % (v["name"], key, v[key], s[key]))
            if abs(v["revenue"] * 100 - s["revenue_cents"]) > 1 + 1e-6 * s["revenue_cents"]:
                mismatches.append("%s revenue: report %s, sent %.2f"
                                  % (v["name"], v["revenue"], s["revenue_cents"] / 100))
            f = {k: v[k] for k in VARIANT_KEYS}
            f["answers_seen"] = s["answers"]
            if "lift" in v:
                f["lift"] = v["lift"]
            figs.append(f)
        p = primary_p(variants, self.args.metric)
        return {"mode": self.args.mode, "run": self.run_no, "seed": self.seed,
                "experiment": self.name, "visits": visits, "looks": looks,
                "metric": self.args.metric, "p_value": p, "declared": declared,
                "direction": direction(variants, self.args.metric) if declared else None,
                "naive_looks_below_alpha": self.naive_looks,
                "naive_p_at_stop": naive_conversion_p(variants),
                "srm_p_value": rep["srm_p_value"], "variants": figs,
                "consistent": not mismatches, "mismatches": mismatches,
                "seconds": round(seconds, 2)}


def primary_p(variants, metric):
    """The smallest p-value of `metric`'s lift over the non-control variants."""
    ps = []
    for v in variants[1:]:
        lift = lifts_of(v).get(metric)
        if lift is None:
            raise Missing("variant %r has no %s lift (it has: %s)"
                          % (v["name"], metric, ", ".join(sorted(lifts_of(v))) or "none"))
        ps.append(lift["p_value"])
    return min(ps) if ps else None


def naive_conversion_p(variants):
    """The fixed-horizon two-sided z-test of conversion (pooled proportions)
    between the control and the first other variant: valid at one look
    fixed in advance, not at every look. The A/A runs count how often it
    would have declared a difference at some look, to show what mSPRT's
    always-valid p-value protects against."""
    (c, t) = variants[0], variants[1]
    nc, nt = c["exposed"], t["exposed"]
    if nc < 2 or nt < 2:
        return 1.0
    xc, xt = c["conversion"] * nc, t["conversion"] * nt
    pool = (xc + xt) / (nc + nt)
    se = math.sqrt(pool * (1 - pool) * (1 / nc + 1 / nt))
    if se == 0:
        return 1.0
    z = (xt / nt - xc / nc) / se
    return math.erfc(abs(z) / math.sqrt(2))


def direction(variants, metric):
    """Which variant the declared lift favours."""
    v = variants[1]
    est = lifts_of(v)[metric]["estimate"]
    return "%s better" % (v["name"] if est > 0 else variants[0]["name"])


# ---------------------------------------------------------------------------
# Offline: the direction by eval's rules
# ---------------------------------------------------------------------------
def offline(args, truth, before, model):
    srv = Serve(args.bin, model, args.tmp)
    try:
        st, pop = srv.request("GET", "/v1/customers/%s/recommendations?n=100&explain=0"
                              % quote("shop-sim-nobody"))
        if st != 200:
            raise RuntimeError("popular list: %d %r" % (st, pop))
        popular = [it["item_id"] for it in pop["items"]]
        score = {"personal": [0.0, 0.0], "popular": [0.0, 0.0]}
        for c in sorted(truth):
            st, ans = srv.request("GET", "/v1/customers/%s/recommendations?n=%d&explain=0"
                                  % (quote(c), N_SHOWN))
            lists = {"personal": [it["item_id"] for it in ans["items"]],
                     "popular": [i for i in popular if i not in before[c]][:N_SHOWN]}
            rel = truth[c]
            ideal = sum(1 / math.log2(i + 2) for i in range(min(N_SHOWN, len(rel))))
            for k, items in lists.items():
                dcg = sum(1 / math.log2(i + 2) for i, it in enumerate(items) if it in rel)
                score[k][0] += dcg / ideal
                score[k][1] += any(it in rel for it in items)
    finally:
        srv.stop()
    n = len(truth)
    return {"mode": "offline", "users": n,
            "personal": {"ndcg": round(score["personal"][0] / n, 6),
                         "hit_rate": round(score["personal"][1] / n, 6)},
            "popular": {"ndcg": round(score["popular"][0] / n, 6),
                        "hit_rate": round(score["popular"][1] / n, 6)}}


# ---------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="online-retail.csv.gz")
    ap.add_argument("--mode", choices=("aa", "ab", "offline"), required=True)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1, help="run i uses seed S + i")
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (each its own server)")
    ap.add_argument("--max-visits", type=int, default=None,
                    help="visits per run at most (aa: 1000, ab: 10000)")
    ap.add_argument("--check-every", type=int, default=None,
                    help="visits between looks at the report (default 100)")
    ap.add_argument("--metric", default="conversion",
                    help="the lift that decides (default conversion)")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "shop-sim"),
                    help="the split and model, kept and reused")
    ap.add_argument("--bin", default=os.path.join(ROOT, "bin", "shopkeeper"))
    args = ap.parse_args()
    if args.max_visits is None:
        args.max_visits = 1000 if args.mode == "aa" else 10000
    if args.check_every is None:
        args.check_every = 100
    if args.runs < 1 or args.jobs < 1 or args.max_visits < 1 or args.check_every < 1:
        die("--runs, --jobs, --max-visits and --check-every must be positive")
    if not os.path.exists(args.data):
        die("%s: no such file" % args.data)
    args.bin = os.path.abspath(args.bin)
    os.makedirs(args.work, exist_ok=True)
    model, split = prepare(args.data, args.work, args.bin)
    truth, weight, before = load_truth(split, model_items_of(model, args.bin))
    args.tmp = tempfile.mkdtemp(prefix="runs-", dir=args.work)
    try:
        if args.mode == "offline":
            print(json.dumps(offline(args, truth, before, model)), flush=True)
            return
        results = []
        lock = threading.Lock()

        def one(i):
            r = Run(args, truth, weight, model, args.seed + i, i).go()
            with lock:
                print(json.dumps(r, sort_keys=True), flush=True)
                results.append(r)
            return r

        ex = concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs)
        try:
            futs = [ex.submit(one, i) for i in range(args.runs)]
            for f in futs:
                f.result()  # raises Missing/RuntimeError of the first broken run
        finally:
            ex.shutdown(wait=True, cancel_futures=True)  # the runs not started yet
        if args.runs > 1:
            print(json.dumps(tally(args, results), sort_keys=True), flush=True)
    except Missing as e:
        die("the server lacks what the experiment needs: %s" % e)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        sys.stderr.write("shop_sim: a run failed: %s\n" % e)
        sys.exit(1)
    finally:
        shutil.rmtree(args.tmp, ignore_errors=True)


def tally(args, results):
    visits = sorted(r["visits"] for r in results)
    any_metric = sum(1 for r in results
                     if any(l["p_value"] < ALPHA for v in r["variants"][1:]
                            for l in lifts_of(v).values()))
    return {"summary": args.mode, "runs": len(results), "seed": args.seed,
            "metric": args.metric, "max_visits": args.max_visits,
            "check_every": args.check_every,
            "declared": sum(r["declared"] for r in results),
            "naive_declared_at_some_look": sum(r["naive_looks_below_alpha"] > 0 for r in results),
            "naive_below_alpha_at_stop": sum(r["naive_p_at_stop"] < ALPHA for r in results),
            "any_lift_below_alpha_at_stop": any_metric,
            "srm_below_alpha": sum(r["srm_p_value"] < ALPHA for r in results),
            "inconsistent_runs": sum(not r["consistent"] for r in results),
            "visits_median": statistics.median(visits), "visits_min": visits[0],
            "visits_max": visits[-1],
            "directions": dict(collections.Counter(r["direction"] for r in results
                                                   if r["direction"]))}


if __name__ == "__main__":
    main()
