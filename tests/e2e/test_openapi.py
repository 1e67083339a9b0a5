#!/usr/bin/env python3
"""The OpenAPI description (deploy/openapi.json) against the real server.

Every route is called with good and bad input, and each answer's status
must be one the spec lists for that operation, and its body must validate
against that response's schema: so the spec cannot drift from the code.
Objects may not carry properties the spec does not declare. The validator
is a small subset of JSON Schema (what the spec uses), standard library
only. Prints "N passed, N failed" last.
"""
import json
import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import FIXTURES, INTERACTIONS, ROOT, Server, run_suite, train  # noqa: E402

SPEC_PATH = os.path.join(ROOT, "deploy", "openapi.json")
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


class SchemaError(AssertionError):
    pass


class Validator:
    def __init__(self, spec):
        self.spec = spec

    def resolve(self, schema):
        while "$ref" in schema:
            ref = schema["$ref"]
            assert ref.startswith("#/"), ref
            node = self.spec
            for part in ref[2:].split("/"):
                node = node[part]
            schema = node
        return schema

    def check(self, value, schema, where="$"):
        schema = self.resolve(schema)
        if value is None:
            if schema.get("nullable"):
                return
            if not any(k in schema for k in ("allOf", "oneOf", "anyOf")):
                raise SchemaError("%s is null" % where)
        if "allOf" in schema:
            if value is None and schema.get("nullable"):
                return
            for sub in schema["allOf"]:
                self.check(value, sub, where)
        if "anyOf" in schema:
            for sub in schema["anyOf"]:
                try:
                    self.check(value, sub, where)
                    break
                except SchemaError:
                    pass
            else:
                raise SchemaError("%s matches none of anyOf" % where)
        if "oneOf" in schema:
            matched = 0
            for sub in schema["oneOf"]:
                try:
                    self.check(value, sub, where)
                    matched += 1
                except SchemaError:
                    pass
            if matched != 1:
                raise SchemaError("%s matches %d of oneOf" % (where, matched))
        t = schema.get("type")
        if t == "object":
            if not isinstance(value, dict):
                raise SchemaError("%s is not an object: %r" % (where, value))
            for key in schema.get("required", []):
                if key not in value:
                    raise SchemaError("%s lacks %s" % (where, key))
            props = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            for key, v in value.items():
                if key in props:
                    self.check(v, props[key], "%s.%s" % (where, key))
                elif isinstance(extra, dict):
                    self.check(v, extra, "%s.%s" % (where, key))
                elif props:
                    raise SchemaError("%s.%s is not in the spec" % (where, key))
        elif t == "array":
            if not isinstance(value, list):
                raise SchemaError("%s is not an array" % where)
            if len(value) > schema.get("maxItems", len(value)):
                raise SchemaError("%s has too many items" % where)
            if len(value) < schema.get("minItems", 0):
                raise SchemaError("%s has too few items" % where)
            for i, v in enumerate(value):
                self.check(v, schema.get("items", {}), "%s[%d]" % (where, i))
        elif t == "string":
            if not isinstance(value, str):
                raise SchemaError("%s is not a string: %r" % (where, value))
            if schema.get("format") == "date-time" and not DATE_TIME.match(value):
                raise SchemaError("%s is not a date-time: %r" % (where, value))
        elif t == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                raise SchemaError("%s is not an integer: %r" % (where, value))
        elif t == "number":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise SchemaError("%s is not a number: %r" % (where, value))
        elif t == "boolean":
            if not isinstance(value, bool):
                raise SchemaError("%s is not a boolean: %r" % (where, value))
        if "enum" in schema and value not in schema["enum"]:
            raise SchemaError("%s = %r is not one of %r" % (where, value, schema["enum"]))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                raise SchemaError("%s = %r below %r" % (where, value, schema["minimum"]))
            if "maximum" in schema and value > schema["maximum"]:
                raise SchemaError("%s = %r above %r" % (where, value, schema["maximum"]))


class OpenApiTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(SPEC_PATH) as f:
            cls.spec = json.load(f)
        cls.validator = Validator(cls.spec)
        cls.tmp = tempfile.mkdtemp(prefix="shopkeeper-openapi-")
        cls.model = os.path.join(cls.tmp, "model")
        # A catalog with every column an answer carries (price, category,
        # image_url, url), so the Item schema is checked on all of them.
        catalog = os.path.join(cls.tmp, "catalog.csv")
        with open(os.path.join(FIXTURES, "catalog.csv"), encoding="utf-8") as src, \
                open(catalog, "w", encoding="utf-8") as dst:
            lines = src.read().splitlines()
            dst.write(lines[0] + ",image_url,url\n")
            for n, line in enumerate(lines[1:]):
                dst.write(line + ",https://img.example/%d.jpg,https://shop.example/p/%d\n" % (n, n))
        train(cls.model, INTERACTIONS, "--catalog", catalog)
        cls.server = Server(cls.model, os.path.join(cls.tmp, "state"))
        cls.checked = set()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def call(self, method, path, template, body=None, headers=None):
        """Calls the server and validates the answer against the spec's
        operation `method template`; returns (status, parsed body)."""
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        resp = self.server.request(method, path, body=data, headers=headers)
        op = self.spec["paths"][template][method.lower()]
        status = str(resp.status)
        self.assertIn(status, op["responses"], "%s %s -> %s is not in the spec: %s"
                      % (method, path, status, resp.body[:300]))
        content = op["responses"][status].get("content", {})
        ctype = resp.headers.get("content-type", "")
        if "application/json" in content:
            self.assertTrue(ctype.startswith("application/json"), ctype)
            parsed = json.loads(resp.body)
            try:
                self.validator.check(parsed, content["application/json"]["schema"])
            except SchemaError as e:
                self.fail("%s %s -> %s: %s\n%s" % (method, path, status, e, resp.body[:500]))
        else:
            parsed = resp.body
            types = list(content) or ["text/plain"]
            self.assertTrue(any(ctype.startswith(t) for t in types), (ctype, types))
        self.checked.add((method, template, status))
        return resp.status, parsed

    def test_recommendations(self):
        t = "/v1/customers/{id}/recommendations"
        self.assertEqual(self.call("GET", "/v1/customers/alice/recommendations?n=5", t)[0], 200)
        self.assertEqual(self.call("GET", "/v1/customers/nobody/recommendations", t)[0], 200)
        self.assertEqual(self.call("GET", "/v1/customers/alice/recommendations?n=0", t)[0], 400)
        self.assertEqual(self.call("GET", "/v1/customers/%ZZ/recommendations", t)[0], 400)
        self.assertEqual(self.call("GET", "/v1/customers/%s/recommendations" % ("x" * 9000), t)[0], 414)

    def test_similar(self):
        t = "/v1/items/{id}/similar"
        self.assertEqual(self.call("GET", "/v1/items/apple/similar?n=3", t)[0], 200)
        self.assertEqual(self.call("GET", "/v1/items/nope/similar", t)[0], 404)
        self.assertEqual(self.call("GET", "/v1/items/apple/similar?n=abc", t)[0], 400)

    def test_basket(self):
        t = "/v1/recommendations"
        self.assertEqual(self.call("POST", t, t, {"items": ["apple", "zzz"], "n": 3})[0], 200)
        self.assertEqual(self.call("POST", t, t, {"items": ["apple"], "customer_id": "alice"})[0], 200)
        self.assertEqual(self.call("POST", t, t, {"items": "apple"})[0], 400)
        self.assertEqual(self.call("POST", t, t, b"{not json")[0], 400)
        self.assertEqual(self.call("POST", t, t, {"items": ["a"] * 101})[0], 400)

    def test_profile_consent_erasure(self):
        t = "/v1/customers/{id}"
        self.assertEqual(self.call("GET", "/v1/customers/alice", t)[0], 200)
        self.assertEqual(self.call("GET", "/v1/customers/nobody", t)[0], 404)
        c = "/v1/customers/{id}/consent"
        self.assertEqual(self.call("PUT", "/v1/customers/bob/consent", c, {"personalization": False})[0], 200)
        self.assertEqual(self.call("PUT", "/v1/customers/bob/consent", c, {"personalization": "no"})[0], 400)
        self.assertEqual(self.call("PUT", "/v1/customers/bob/consent", c, {"personalization": True})[0], 200)
        self.assertEqual(self.call("DELETE", "/v1/customers/zed-erased", t)[0], 200)

    def test_items(self):
        t = "/v1/items/{id}"
        self.assertEqual(self.call("PUT", "/v1/items/dates", t, {"available": False})[0], 200)
        self.assertEqual(self.call("PUT", "/v1/items/dates", t, {"available": True,
                                                                 "recommendable": True})[0], 200)
        self.assertEqual(self.call("PUT", "/v1/items/dates", t, {"stock": 3})[0], 400)
        self.assertEqual(self.call("PUT", "/v1/items/nope", t, {"available": False})[0], 404)
        self.assertEqual(self.call("PUT", "/v1/items/dates", t, b"x" * 5000)[0], 413)

    def test_events(self):
        t = "/v1/events"
        self.assertEqual(self.call("POST", t, t, {"customer_id": "newbie", "item_id": "apple",
                                                   "event": "cart"})[0], 200)
        status, body = self.call("POST", t, t, [
            {"customer_id": "newbie", "item_id": "bread", "event": "view"},
            {"customer_id": "newbie", "item_id": "bread", "event": "teleport"}])
        self.assertEqual(status, 200)
        self.assertEqual(len(body["rejected"]), 1)
        self.assertEqual(self.call("POST", t, t, [{"event": "view"}])[0], 400)
        self.assertEqual(self.call("POST", t, t, {"customer_id": "a", "item_id": "b",
                                                   "event": "view", "quantity": "x"})[0], 400)
        self.assertEqual(self.call("POST", t, t, b"[")[0], 400)
        # the profile of a customer known only from events
        self.assertEqual(self.call("GET", "/v1/customers/newbie", "/v1/customers/{id}")[0], 200)

    def test_marketing(self):
        self.assertEqual(self.call("GET", "/v1/segments", "/v1/segments")[0], 200)
        t = "/v1/audiences/{name}"
        status, body = self.call("GET", "/v1/audiences/all?limit=2&n=2", t)
        self.assertEqual(status, 200)
        if body["next_cursor"]:
            self.call("GET", "/v1/audiences/all?limit=2&cursor=%s" % body["next_cursor"], t)
        self.assertEqual(self.call("GET", "/v1/audiences/cart_abandoners?hours=48", t)[0], 200)
        self.assertEqual(self.call("GET", "/v1/audiences/birthday?days=30", t)[0], 200)
        self.assertEqual(self.call("GET", "/v1/audiences/vip", t)[0], 404)
        self.assertEqual(self.call("GET", "/v1/audiences/all?cursor=zz", t)[0], 400)
        self.assertEqual(self.call("GET", "/v1/audiences/all?count=3", t)[0], 400)
        self.assertEqual(self.call("GET", "/v1/audiences/all?country=Japan&attr.Newsletter=yes"
                                   "&min_monetary=1&last_purchase_after=2024-01-01", t)[0], 200)
        t = "/v1/audiences/{name}/export"
        self.assertEqual(self.call("GET", "/v1/audiences/all/export", t)[0], 200)
        self.assertEqual(self.call("GET", "/v1/audiences/new/export?format=csv&n=2", t)[0], 200)
        self.assertEqual(self.call("GET", "/v1/audiences/all/export?format=xml", t)[0], 400)
        self.assertEqual(self.call("GET", "/v1/audiences/vip/export", t)[0], 404)

    def test_operations(self):
        self.assertEqual(self.call("GET", "/healthz", "/healthz")[0], 200)
        self.assertEqual(self.call("GET", "/readyz", "/readyz")[0], 200)
        status, text = self.call("GET", "/metrics", "/metrics")
        self.assertEqual(status, 200)
        self.assertIn(b"shopkeeper_requests_total", text)
        self.assertEqual(self.call("POST", "/admin/reload", "/admin/reload")[0], 200)

    def test_query_parameters_match_the_route_table(self):
        """Each operation's query parameters are the ones its route takes
        (api.c's table; "attr.*" is the spec's attr.NAME)."""
        src = open(os.path.join(ROOT, "src", "api.c")).read()
        macros, lines = {}, src.split("\n")
        for k, line in enumerate(lines):
            m = re.match(r"#define (\w+_PARAMS)\b(.*)", line)
            if not m:
                continue
            text = m.group(2)
            while text.rstrip().endswith("\\"):
                k += 1
                text = text.rstrip()[:-1] + lines[k]
            macros[m.group(1)] = "".join(re.findall(r'"([^"]*)"', text))
        table = src[src.index("static const struct route routes[]"):]
        table = table[:table.index("};")]
        rows = re.findall(r'\{ "(\w+)", "([^"]*)",[^{}]*?((?:\w+_PARAMS|"[^"]*")(?:\s*(?:\w+_PARAMS|"[^"]*"))*) \}',
                          table)
        self.assertGreater(len(rows), 10)
        for method, path, params in rows:
            text = "".join(macros.get(tok, tok.strip('"'))
                           for tok in re.findall(r'\w+_PARAMS|"[^"]*"', params))
            names = {n.replace(".*", ".NAME") for n in text.split(",") if n}
            path = re.sub(r"\{(customer|item)\}", "{id}", path)
            op = self.spec["paths"][path][method.lower()]
            spec = {prm["name"] for prm in op.get("parameters", []) if prm["in"] == "query"}
            self.assertEqual(names, spec, (method, path))

    def test_spec_covers_every_route(self):
        """Every route the server has is in the spec, and nothing more."""
        src = open(os.path.join(ROOT, "src", "api.c")).read()
        table = src[src.index("static const struct route routes[]"):]
        table = table[:table.index("};")]
        routes = set()
        for method, path in re.findall(r'\{ "(\w+)", "([^"]*)"', table):
            path = re.sub(r"\{(customer|item)\}", "{id}", path)
            routes.add((method.lower(), path))
        self.assertGreater(len(routes), 10)
        spec = {(m, p) for p, ops in self.spec["paths"].items() for m in ops}
        self.assertEqual(routes, spec)


if __name__ == "__main__":
    sys.exit(run_suite(__name__, sys.argv[1:], label="openapi"))
