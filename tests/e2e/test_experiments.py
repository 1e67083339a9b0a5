#!/usr/bin/env python3
"""A/B experiments, the serving side (issue 15, parts 1 and 2), against the
real server.

    SHOPKEEPER=bin/shopkeeper python3 tests/e2e/test_experiments.py [-v]

- Every customer, item-similar and basket answer carries a rec_id (decoded
  here: experiment, variant, model, route, time) and "experiment" (null
  outside every experiment, and when the request names no customer).
- `serve --experiments FILE`: assignment by (salt, customer id) is the same
  after a restart and on a second server with its own state; the list at
  GET /v1/experiments; a popular variant answers the popular list, a
  holdout `"source":"none","items":[]`, params change n, include_purchased
  and scoring while a query parameter still wins.
- Item-similar takes ?customer_id=, the basket its body's customer_id.
- Bad files: refused at startup (exit 1, the problem named) and on reload
  (409 reload_failed, SIGHUP logged), the old experiments kept.

The model is tests/fixtures/interactions.csv (see lib.py for what it
holds). The last line printed is "N passed, N failed".
"""
import base64
import json
import os
import re
import signal
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lib as ts  # noqa: E402  (the shared helpers)
from lib import ApiTestCase, Server, q, run, train  # noqa: E402

SHARED = {}

# Many ids, so every variant of a 3-way split has customers; the fixture's
# own customers among them.
IDS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "17850", "ivan",
       "judy"] + ["anon-%d" % i for i in range(60)]


def tmp_path(*parts):
    return os.path.join(SHARED["tmp"], *parts)


def write_json(name, doc):
    path = tmp_path(name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def experiment(name, salt, routes, variants):
    return {"name": name, "salt": salt, "routes": routes, "variants": variants}


SPLIT = {"experiments": [
    experiment("home-recs", "2026-12", ["customer"], [
        {"name": "control", "share": 0.4, "source": "popular"},
        {"name": "personal", "share": 0.4},
        {"name": "holdout", "share": 0.2, "source": "none"}]),
    experiment("pdp", "pdp-1", ["item", "basket"], [
        {"name": "a", "share": 0.5},
        {"name": "b", "share": 0.5, "params": {"n": 2}}]),
]}


def one_variant(variant, routes=("customer", "item", "basket")):
    """A file whose one experiment puts everyone in `variant`."""
    v = dict(variant, name="only", share=1)
    return {"experiments": [experiment("all-in", "s", list(routes), [v])]}


# ---- the rec_id, decoded as include/recid.h lays it out -------------------
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def decode_rec_id(text):
    raw = base64.urlsafe_b64decode(text)
    assert len(text) == 28 and len(raw) == 21, text
    assert raw[20] == crc32c(raw[:20]) & 0xFF, "check byte"
    return {"version": raw[0] >> 4, "route": raw[0] & 15,
            "experiment": int.from_bytes(raw[1:5], "big"), "variant": raw[5],
            "model": int.from_bytes(raw[6:10], "big"),
            "time_ms": int.from_bytes(raw[10:16], "big"),
            "seq": int.from_bytes(raw[16:20], "big")}


ROUTE = {"customer": 1, "item": 2, "basket": 3}


def setUpModule():
    SHARED["tmp"] = tempfile.mkdtemp(prefix="shopkeeper-experiments-")
    SHARED["model"] = tmp_path("model")
    train(SHARED["model"])
    SHARED["split"] = write_json("split.json", SPLIT)
    SHARED["srv"] = Server(SHARED["model"], tmp_path("state-a"),
                           extra=["--experiments", SHARED["split"]])


def tearDownModule():
    srv = SHARED.get("srv")
    if srv:
        ts.stop_shared(srv)


def variants_of(srv, ids=IDS):
    """{id: variant name} on the customer route."""
    out = {}
    for cid in ids:
        r = srv.get("/v1/customers/%s/recommendations?n=3" % q(cid))
        assert r.status == 200, r
        e = r.json["experiment"]
        assert e and e["name"] == "home-recs", r
        out[cid] = e["variant"]
    return out


class RecId(ApiTestCase):
    def test_every_answer_has_one_and_they_differ(self):
        srv = SHARED["srv"]
        listing = srv.get("/v1/experiments").json["experiments"]
        ids = {e["name"]: e["id"] for e in listing}
        seen = set()
        t0 = time.time() * 1000
        calls = [
            ("customer", "GET", "/v1/customers/alice/recommendations", None, "home-recs"),
            ("item", "GET", "/v1/items/apple/similar?customer_id=alice", None, "pdp"),
            ("item", "GET", "/v1/items/apple/similar", None, None),
            ("basket", "POST", "/v1/recommendations", {"items": ["apple"], "customer_id": "bob"},
             "pdp"),
            ("basket", "POST", "/v1/recommendations", {"items": ["apple"]}, None),
        ]
        for route, method, path, body, exp in calls * 2:
            with self.subTest(path=path, body=body):
                data = json.dumps(body).encode() if body is not None else None
                r = srv.request(method, path, data, ts.JSON_HEADERS if data else None)
                self.assertEqual(r.status, 200, r)
                doc = r.json
                rid = decode_rec_id(doc["rec_id"])
                self.assertNotIn(doc["rec_id"], seen)
                seen.add(doc["rec_id"])
                self.assertEqual(rid["version"], 1)
                self.assertEqual(rid["route"], ROUTE[route])
                self.assertNotEqual(rid["model"], 0)
                # the fixture's model runs on its own clock (serve --clock
                # auto): the time is on it, in ms, and not in the future
                self.assertLessEqual(rid["time_ms"], t0 + 86400e3 * 365 * 30)
                if exp is None:
                    self.assertIsNone(doc["experiment"])
                    self.assertEqual((rid["experiment"], rid["variant"]), (0, 0))
                else:
                    self.assertEqual(doc["experiment"]["name"], exp)
                    self.assertEqual(rid["experiment"], ids[exp])
                    variants = [v["name"] for v in listing[0 if exp == "home-recs" else 1]
                                ["variants"]]
                    self.assertEqual(variants[rid["variant"]], doc["experiment"]["variant"])

    def test_same_model_same_id(self):
        srv = SHARED["srv"]
        a = decode_rec_id(srv.get("/v1/customers/x/recommendations").json["rec_id"])
        b = decode_rec_id(srv.get("/v1/items/apple/similar").json["rec_id"])
        self.assertEqual(a["model"], b["model"])
        self.assertNotEqual(a["seq"], b["seq"])


class Listing(ApiTestCase):
    def test_list(self):
        r = SHARED["srv"].get("/v1/experiments")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], ts.JSON_CT)
        got = r.json["experiments"]
        self.assertEqual([e["name"] for e in got], ["home-recs", "pdp"])
        self.assertEqual(got[0]["salt"], "2026-12")
        self.assertEqual(got[0]["routes"], ["customer"])
        self.assertEqual(got[1]["routes"], ["item", "basket"])
        self.assertEqual([(v["name"], v["share"], v["source"]) for v in got[0]["variants"]],
                         [("control", 0.4, "popular"), ("personal", 0.4, "default"),
                          ("holdout", 0.2, "none")])
        self.assertEqual(got[1]["variants"][1]["params"], {"n": 2})
        self.assertIsInstance(got[0]["id"], int)

    def test_without_experiments(self):
        with Server(SHARED["model"], tmp_path("state-none")) as srv:
            self.assertEqual(srv.get("/v1/experiments").json, {"experiments": []})
            r = srv.get("/v1/customers/alice/recommendations").json
            self.assertIsNone(r["experiment"])
            decode_rec_id(r["rec_id"])

    def test_unknown_parameter(self):
        self.assertError(SHARED["srv"].get("/v1/experiments?x=1"), 400, "unknown_parameter")


class Assignment(ApiTestCase):
    def test_sticky_across_restarts_and_servers(self):
        first = variants_of(SHARED["srv"])
        self.assertEqual(set(first.values()), {"control", "personal", "holdout"})
        # the same server process answers the same every time
        self.assertEqual(variants_of(SHARED["srv"]), first)
        state = tmp_path("state-b")
        with Server(SHARED["model"], state, extra=["--experiments", SHARED["split"]]) as b:
            self.assertEqual(variants_of(b), first)  # another replica
            self.assertEqual(b.stop(), 0)
        with Server(SHARED["model"], state, extra=["--experiments", SHARED["split"]]) as b:
            self.assertEqual(variants_of(b), first)  # restarted

    def test_a_new_salt_reshuffles(self):
        doc = json.loads(json.dumps(SPLIT))
        doc["experiments"][0]["salt"] = "2027-01"
        path = write_json("resalted.json", doc)
        with Server(SHARED["model"], tmp_path("state-salt"), extra=["--experiments", path]) as b:
            other = variants_of(b)
        first = variants_of(SHARED["srv"])
        same = sum(first[i] == other[i] for i in IDS)
        # independent: about 0.4^2 + 0.4^2 + 0.2^2 = 36% agree by chance
        self.assertLess(same, len(IDS) * 0.7)

    def test_item_and_basket_by_customer_id(self):
        srv = SHARED["srv"]
        for cid in IDS[:20]:
            with self.subTest(cid=cid):
                sim = srv.get("/v1/items/apple/similar?customer_id=%s" % q(cid)).json
                basket = srv.request("POST", "/v1/recommendations",
                                     json.dumps({"items": ["apple"], "customer_id": cid}).encode(),
                                     ts.JSON_HEADERS).json
                # one experiment, one salt: the same variant on both routes
                self.assertEqual(sim["experiment"]["name"], "pdp")
                self.assertEqual(sim["experiment"], basket["experiment"])
                self.assertEqual(sim["customer_id"], cid)
                n = 2 if sim["experiment"]["variant"] == "b" else 10
                self.assertLessEqual(len(sim["items"]), n)
                self.assertLessEqual(len(basket["items"]), n)
        # b's n=2 shows where the list is longer: some id is in b
        bs = [c for c in IDS if srv.get("/v1/items/apple/similar?customer_id=%s" % q(c))
              .json["experiment"]["variant"] == "b"]
        self.assertTrue(bs)
        self.assertEqual(len(srv.get("/v1/items/apple/similar?customer_id=%s" % q(bs[0]))
                             .json["items"]), 2)
        self.assertEqual(len(srv.get("/v1/items/apple/similar?customer_id=%s&n=3" % q(bs[0]))
                             .json["items"]), 3)  # the query wins

    def test_no_id_is_outside(self):
        srv = SHARED["srv"]
        self.assertIsNone(srv.get("/v1/items/apple/similar").json["experiment"])
        r = srv.request("POST", "/v1/recommendations", b'{"items":["apple"]}', ts.JSON_HEADERS)
        self.assertIsNone(r.json["experiment"])
        self.assertNotIn("customer_id", srv.get("/v1/items/apple/similar").json)

    def test_bad_customer_id(self):
        srv = SHARED["srv"]
        self.assertError(srv.get("/v1/items/apple/similar?customer_id="), 400, "invalid_id")
        self.assertError(srv.get("/v1/items/apple/similar?customer_id=%01"), 400, "invalid_id")
        self.assertError(srv.get("/v1/items/apple/similar?customer_id=" + "x" * 257), 400,
                         "invalid_id")
        # not a customer-route parameter
        self.assertError(srv.get("/v1/customers/alice/recommendations?customer_id=bob"), 400,
                         "unknown_parameter")


class Variants(ApiTestCase):
    """One server, its file rewritten and reloaded between cases."""

    @classmethod
    def setUpClass(cls):
        cls.path = write_json("variants.json", one_variant({}))
        cls.srv = Server(SHARED["model"], tmp_path("state-variants"),
                         extra=["--experiments", cls.path])

    @classmethod
    def tearDownClass(cls):
        ts.stop_shared(cls.srv)

    def use(self, doc):
        write_json("variants.json", doc)
        r = self.srv.request("POST", "/admin/reload")
        self.assertEqual(r.status, 200, r)

    def recs(self, path):
        r = self.srv.get(path)
        self.assertEqual(r.status, 200, r)
        return r.json

    def basket(self, body):
        r = self.srv.request("POST", "/v1/recommendations", json.dumps(body).encode(),
                             ts.JSON_HEADERS)
        self.assertEqual(r.status, 200, r)
        return r.json

    def test_default_is_the_routes_own_answer(self):
        self.use(one_variant({}))
        with Server(SHARED["model"], tmp_path("state-plain")) as plain:
            for path in ["/v1/customers/alice/recommendations", "/v1/items/apple/similar"]:
                a = self.recs(path + ("&" if "?" in path else "?") + "customer_id=alice"
                              if "items" in path else path)
                b = plain.get(path).json
                self.assertEqual(a["items"], b["items"])
                self.assertEqual(a["experiment"], {"name": "all-in", "variant": "only"})

    def test_popular(self):
        self.use(one_variant({"source": "popular"}))
        alice = self.recs("/v1/customers/alice/recommendations?n=4")
        nobody = self.recs("/v1/customers/nobody/recommendations?n=4")  # unknown: popular
        self.assertEqual(alice["source"], "popular")
        self.assertEqual(alice["segment"], "lost")  # the segment stays: only items change
        self.assertEqual([i["item_id"] for i in alice["items"]],
                         [i["item_id"] for i in nobody["items"]])
        # the same business filters
        cheap = self.recs("/v1/customers/alice/recommendations?n=4&max_price=1")
        self.assertTrue(all(i.get("price", 0) <= 1 for i in cheap["items"]), cheap)
        self.assertNotEqual(cheap["items"], alice["items"])
        sim = self.recs("/v1/items/apple/similar?customer_id=alice&n=3")
        self.assertEqual(sim["source"], "popular")
        self.assertEqual([i["item_id"] for i in sim["items"]], ["cheese", "bread", "eggs"])
        b = self.basket({"items": ["apple", "cheese"], "customer_id": "alice", "n": 2})
        self.assertEqual(b["source"], "popular")
        self.assertEqual([i["item_id"] for i in b["items"]], ["bread", "eggs"])

    def test_holdout(self):
        self.use(one_variant({"source": "none"}))
        r = self.recs("/v1/customers/alice/recommendations")
        self.assertEqual((r["source"], r["items"]), ("none", []))
        self.assertEqual(r["experiment"], {"name": "all-in", "variant": "only"})
        self.assertEqual(list(r), ["customer_id", "model", "rec_id", "experiment", "source",
                                   "items"])
        sim = self.recs("/v1/items/apple/similar?customer_id=alice")
        self.assertEqual((sim["source"], sim["items"]), ("none", []))
        b = self.basket({"items": ["apple", "nope"], "customer_id": "alice"})
        self.assertEqual((b["source"], b["items"], b["unknown_items"]), ("none", [], 1))
        # an unknown item is still a 404 on a holdout's item route
        self.assertError(self.srv.get("/v1/items/nope/similar?customer_id=alice"), 404,
                         "unknown_item")
        # no id: outside the experiment, a real answer
        self.assertTrue(self.recs("/v1/items/apple/similar")["items"])

    def test_params(self):
        self.use(one_variant({"params": {"n": 2, "include_purchased": True,
                                         "explain": False}}))
        r = self.recs("/v1/customers/alice/recommendations")
        self.assertEqual(len(r["items"]), 2)
        self.assertNotIn("because", r["items"][0])
        r = self.recs("/v1/customers/alice/recommendations?n=6")
        ids = [i["item_id"] for i in r["items"]]
        self.assertTrue({"apple", "bread"} & set(ids), ids)  # purchases allowed
        # a query parameter still wins
        r = self.recs("/v1/customers/alice/recommendations?n=5&include_purchased=0&explain=1")
        self.assertEqual(len(r["items"]), 5)
        self.assertFalse({"apple", "bread"} & {i["item_id"] for i in r["items"]})
        self.assertIn("because", r["items"][0])
        b = self.basket({"items": ["apple"], "customer_id": "alice"})
        self.assertEqual(len(b["items"]), 2)
        self.assertEqual(len(self.basket({"items": ["apple"], "customer_id": "alice",
                                          "n": 4})["items"]), 4)

    def test_scoring_params(self):
        # cutoff 0.99 keeps only the strongest contributions: fewer
        # personal items than cutoff 0, the rest topped up with popular ones
        self.use(one_variant({"params": {"cutoff": 0}}))
        wide = self.recs("/v1/customers/alice/recommendations?n=6")
        self.use(one_variant({"params": {"cutoff": 0.99, "neighbors_used": 1}}))
        narrow = self.recs("/v1/customers/alice/recommendations?n=6")
        personal = [i for i in wide["items"] if i.get("source") != "popular"]
        kept = [i for i in narrow["items"] if i.get("source") != "popular"]
        self.assertLess(len(kept), len(personal), (wide, narrow))

    def test_reload_by_sighup(self):
        self.use(one_variant({}))
        write_json("variants.json", one_variant({"source": "none"}))
        self.srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10 * ts.FACTOR
        while time.monotonic() < deadline:
            if self.recs("/v1/customers/alice/recommendations")["source"] == "none":
                break
            time.sleep(0.05)
        self.assertEqual(self.recs("/v1/customers/alice/recommendations")["source"], "none")
        self.assertIn("SIGHUP: reloaded %s and %s" % (SHARED["model"], self.path),
                      self.srv.stderr())


BASE = {"name": "e", "salt": "s", "routes": ["customer"],
        "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}


def with_(**changes):
    e = dict(BASE, **changes)
    return json.dumps({"experiments": [e]})


BAD_FILES = [
    # (name, file text or None for a missing file, a piece of the message)
    ("bad_json", '{"experiments": [', "not valid JSON"),
    ("bad_shares", with_(variants=[{"name": "a", "share": 0.5}, {"name": "b", "share": 0.6}]),
     "shares sum to 1.1; they must sum to 1"),
    ("zero_share", with_(variants=[{"name": "a", "share": 1}, {"name": "b", "share": 0}]),
     'variant "b": share must be > 0'),
    ("duplicate_variants", with_(variants=[{"name": "a", "share": 0.5},
                                           {"name": "a", "share": 0.5}]),
     'two variants are named "a"'),
    ("duplicate_experiments", json.dumps({"experiments": [BASE, dict(BASE, routes=["item"])]}),
     'experiment "e": two experiments have this name'),
    ("unknown_key", with_(owner="me"), 'unknown key "owner" in an experiment'),
    ("unknown_param", with_(variants=[{"name": "a", "share": 1, "params": {"k": 3}}]),
     'unknown key "k" in params'),
    ("bad_route", with_(routes=["home"]), 'routes[0] must be "customer", "item" or "basket"'),
    ("bad_source", with_(variants=[{"name": "a", "share": 1, "source": "random"}]),
     'source must be "popular" or "none"'),
    ("missing", None, "No such file or directory"),
    ("variant_model_missing",
     with_(variants=[{"name": "a", "share": 1, "model": "models/other"}]),
     'variant model "other": No such file or directory'),
    ("too_many_models",
     with_(variants=[{"name": "v%d" % i, "share": 0.2, "model": "m%d" % i} for i in range(5)]),
     'variant "v4": a 5th model directory; variants may name at most 4 different ones'),
]


class BadFiles(ApiTestCase):
    def path_for(self, name, text):
        path = tmp_path("bad-%s.json" % name)
        if text is None:
            if os.path.exists(path):
                os.remove(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return path

    def test_refused_at_startup(self):
        for name, text, want in BAD_FILES:
            with self.subTest(name):
                path = self.path_for(name, text)
                p = run(["serve", "--model", SHARED["model"], "--state", tmp_path("state-bad"),
                         "--listen", "127.0.0.1:0", "--experiments", path])
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn("--experiments %s: " % path, p.stderr)
                self.assertIn(want, p.stderr)
                self.assertNotIn("serving on port", p.stderr)

    def test_refused_on_reload_and_the_old_kept(self):
        path = write_json("reloaded.json", SPLIT)
        with Server(SHARED["model"], tmp_path("state-reload"),
                    extra=["--experiments", path]) as srv:
            before = variants_of(srv, IDS[:12])
            listing = srv.get("/v1/experiments").json
            for name, text, want in BAD_FILES:
                with self.subTest(name):
                    if text is None:
                        os.remove(path)
                    else:
                        with open(path, "w", encoding="utf-8") as f:
                            f.write(text)
                    r = srv.request("POST", "/admin/reload")
                    self.assertError(r, 409, "reload_failed")
                    msg = r.json["error"]["message"]
                    self.assertIn("kept the current model and experiments", msg)
                    self.assertIn(want, msg)
                    # the file's name, not where the server keeps it
                    self.assertIn("reloaded.json", msg)
                    self.assertNotIn(SHARED["tmp"], msg)
                    self.assertEqual(srv.get("/v1/experiments").json, listing)
                    self.assertEqual(variants_of(srv, IDS[:12]), before)
            # SIGHUP: logged, kept
            srv.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10 * ts.FACTOR
            while "SIGHUP: kept the current model and experiments" not in srv.stderr():
                self.assertLess(time.monotonic(), deadline, srv.stderr())
                time.sleep(0.05)
            self.assertEqual(variants_of(srv, IDS[:12]), before)
            # a good file again: taken
            write_json("reloaded.json", one_variant({"source": "none"}, ["customer"]))
            self.assertEqual(srv.request("POST", "/admin/reload").status, 200)
            self.assertEqual(srv.get("/v1/experiments").json["experiments"][0]["name"], "all-in")


# ---- a variant's own model -------------------------------------------------
MASK_EXPERIMENT = re.compile(rb'"experiment":(null|\{"name":"[^"]*","variant":"[^"]*"\})')


def masked(body):
    """An answer with its rec_id and experiment masked: what a server
    started on the variant's model alone answers the same."""
    return MASK_EXPERIMENT.sub(b'"experiment":X', ts.mask_rec_id(body))


def other_model():
    """A model trained differently from SHARED["model"] (another algorithm,
    a half-life, precomputed lists): its answers differ."""
    if "other" not in SHARED:
        SHARED["other"] = tmp_path("model-other")
        train(SHARED["other"], ts.INTERACTIONS, "--algo", "ease", "--half-life", "30",
              "--precompute", "20")
    return SHARED["other"]


def two_models(other):
    return {"experiments": [experiment("models", "m-1", ["customer", "item", "basket"], [
        {"name": "main", "share": 0.5},
        {"name": "other", "share": 0.5, "model": other}])]}


class VariantModel(ApiTestCase):
    """A variant naming its own model directory answers from that model."""

    @classmethod
    def setUpClass(cls):
        cls.path = write_json("models.json", two_models(other_model()))
        cls.srv = Server(SHARED["model"], tmp_path("state-vm"), extra=["--experiments", cls.path])
        cls.plain = {"main": Server(SHARED["model"], tmp_path("state-vm-main")),
                     "other": Server(other_model(), tmp_path("state-vm-other"))}

    @classmethod
    def tearDownClass(cls):
        for s in [cls.srv] + list(cls.plain.values()):
            ts.stop_shared(s)

    def calls(self, cid):
        body = json.dumps({"items": ["apple", "bread"], "customer_id": cid}).encode()
        return [("GET", "/v1/customers/%s/recommendations?n=5" % q(cid), None),
                ("GET", "/v1/items/apple/similar?n=5&customer_id=%s" % q(cid), None),
                ("POST", "/v1/recommendations", body)]

    def test_each_variant_answers_from_its_model(self):
        # live events since the model: in the shared state, folded in by
        # each model (the same events sent to every server)
        ev = json.dumps([{"customer_id": "alice", "item_id": "cheese", "event": "purchase",
                          "quantity": 1, "price": 3.5},
                         {"customer_id": "anon-1", "item_id": "no-such-item",
                          "event": "view"}]).encode()
        for s in [self.srv] + list(self.plain.values()):
            r = s.request("POST", "/v1/events", ev, ts.JSON_HEADERS)
            self.assertEqual(r.status, 200, r)
        models = {k: s.get("/readyz").json["model"] for k, s in self.plain.items()}
        self.assertNotEqual(models["main"], models["other"])
        seen, differ = set(), 0
        for cid in IDS:
            for method, path, body in self.calls(cid):
                with self.subTest(cid=cid, path=path):
                    h = ts.JSON_HEADERS if body else None
                    r = self.srv.request(method, path, body, h)
                    self.assertEqual(r.status, 200, r)
                    variant = r.json["experiment"]["variant"]
                    seen.add(variant)
                    self.assertEqual(r.json["model"], models[variant])
                    want = self.plain[variant].request(method, path, body, h)
                    self.assertEqual(masked(r.body), masked(want.body))
                    self.assertEqual(decode_rec_id(r.json["rec_id"])["model"],
                                     decode_rec_id(want.json["rec_id"])["model"])
                    other = self.plain["main" if variant == "other" else "other"]
                    differ += masked(r.body) != masked(other.request(method, path, body, h).body)
        self.assertEqual(seen, {"main", "other"})
        self.assertGreater(differ, 0, "the two models answer alike: the test proves nothing")

    def test_precomputed_lists_answer_for_the_variant(self):
        def precomputed(s):
            m = s.get("/metrics").body.decode()
            return sum(float(line.split()[-1]) for line in m.splitlines()
                       if line.startswith("shopkeeper_recommendations_precomputed_total "))
        # the fixture's customers without live events, in the other variant
        known = [c for c in ["bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
                 if self.srv.get("/v1/customers/%s/recommendations?n=1" % c)
                 .json["experiment"]["variant"] == "other"]
        self.assertTrue(known)
        before = precomputed(self.srv)
        for cid in known:
            r = self.srv.get("/v1/customers/%s/recommendations?n=2" % cid)
            want = self.plain["other"].get("/v1/customers/%s/recommendations?n=2" % cid)
            self.assertEqual(masked(r.body), masked(want.body))
        self.assertEqual(precomputed(self.srv) - before, len(known))

    def test_item_made_unavailable_leaves_the_variant_model_at_once(self):
        """A local PUT /v1/items (no event log) reaches a variant's model
        in the same commit as the main model's."""
        with Server(SHARED["model"], tmp_path("state-vm-put"),
                    extra=["--experiments", self.path]) as s:
            cid = next(c for c in IDS if s.get("/v1/customers/%s/recommendations?n=5" % q(c))
                       .json["experiment"]["variant"] == "other"
                       and s.get("/v1/customers/%s/recommendations?n=5" % q(c)).json["items"])
            path = "/v1/customers/%s/recommendations?n=5" % q(cid)
            first = s.get(path).json["items"][0]["item_id"]
            r = s.request("PUT", "/v1/items/%s" % q(first), json.dumps({"available": False}),
                          ts.JSON_HEADERS)
            self.assertEqual(r.status, 200, r)
            self.assertNotIn(first, [it["item_id"] for it in s.get(path).json["items"]])

    def test_listed(self):
        got = self.srv.get("/v1/experiments").json["experiments"][0]["variants"]
        other_id = self.plain["other"].get("/readyz").json["model"]
        self.assertEqual(got[1]["model"], "model-other")
        self.assertEqual(got[1]["model_id"], other_id)
        self.assertNotIn("model", got[0])
        self.assertEqual(self.srv.get("/readyz").json["variant_models"], [other_id])

    def test_one_directory_mapped_once(self):
        other = other_model()
        doc = {"experiments": [
            experiment("a", "s-a", ["customer"], [
                {"name": "x", "share": 0.5, "model": other},
                {"name": "y", "share": 0.5, "model": other + "/"}]),
            experiment("b", "s-b", ["item"], [
                {"name": "x", "share": 0.5, "model": os.path.join(other, "..",
                                                                 "model-other")},
                {"name": "main", "share": 0.5, "model": SHARED["model"]}])]}
        path = write_json("mapped-once.json", doc)
        with Server(SHARED["model"], tmp_path("state-once"), extra=["--experiments", path]) as s:
            ready = s.get("/readyz").json
            self.assertEqual(ready["variant_models"], [self.plain["other"].get("/readyz")
                                                       .json["model"]])
            # the main model's own directory is the main model
            listing = s.get("/v1/experiments").json["experiments"]
            self.assertEqual(listing[1]["variants"][1]["model_id"], ready["model"])

    def test_broken_variant_model_on_reload_keeps_both(self):
        vdir = tmp_path("model-vm-reload")
        train(vdir, ts.INTERACTIONS, "--algo", "ease")
        path = write_json("vm-reload.json", two_models(vdir))
        with Server(SHARED["model"], tmp_path("state-vm-reload"),
                    extra=["--experiments", path]) as s:
            def answers():
                return [masked(s.request(m, p, b, ts.JSON_HEADERS if b else None).body)
                        for cid in IDS[:12] for m, p, b in self.calls(cid)]
            before, ready = answers(), s.get("/readyz").json
            listing = s.get("/v1/experiments").json
            # a damaged file put in place as train puts its own (a rename:
            # the server's mapping of the old one stays sound)
            mdb = os.path.join(vdir, "model.mdb")
            with open(mdb + ".new", "wb") as f:
                f.write(b"\0" * 4096)
            os.rename(mdb + ".new", mdb)
            for how in ("admin", "sighup"):
                with self.subTest(how):
                    if how == "admin":
                        r = s.request("POST", "/admin/reload")
                        self.assertError(r, 409, "reload_failed")
                        self.assertIn("kept the current model and experiments",
                                      r.json["error"]["message"])
                        self.assertIn("variant model", r.json["error"]["message"])
                    else:
                        s.proc.send_signal(signal.SIGHUP)
                        deadline = time.monotonic() + 10 * ts.FACTOR
                        while "SIGHUP: kept the current model and experiments" not in s.stderr():
                            self.assertLess(time.monotonic(), deadline, s.stderr())
                            time.sleep(0.05)
                    self.assertEqual(answers(), before)
                    self.assertEqual(s.get("/readyz").json["variant_models"],
                                     ready["variant_models"])
                    self.assertEqual(s.get("/v1/experiments").json, listing)
            # trained again, differently: both reload
            train(vdir, ts.INTERACTIONS, "--algo", "cosine", "--half-life", "30")
            self.assertEqual(s.request("POST", "/admin/reload").status, 200)
            self.assertNotEqual(s.get("/readyz").json["variant_models"],
                                ready["variant_models"])


if __name__ == "__main__":
    sys.exit(ts.run_suite(__name__, sys.argv[1:], lambda: [SHARED.get("tmp")], "experiments"))
