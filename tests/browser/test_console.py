#!/usr/bin/env python3
"""The console (issue 16) in a real browser: Debian's chromium, driven by
chromium-driver through python3-selenium, against a real `shopkeeper serve`
with a model trained on the demo sample of Online Retail (data/demo).

    SHOPKEEPER=bin/shopkeeper python3 tests/browser/test_console.py [-v] [Class[.test]]

Each view loads with no errors in the browser's console and shows the
numbers the API answers; round trips: a customer lookup, the consent
switch, an erasure behind its confirmation, audience downloads compared
with `shopkeeper export` (skipped, loudly, while the export route answers
404), the key prompt with a wrong key refused; the language switch; the
keyboard; 360 px without sideways scrolling.

Screenshots of every view at 1280 and 360 px go to build/console/ (not
committed); with CONSOLE_DOCS_SCREENSHOTS=1 the 1280 px ones are copied to
docs/console-*.png as well. The page's load time (navigation timing, and
until the first view shows its data) is printed; nothing asserts on it.

Environment: CHROMIUM (default /usr/bin/chromium), CHROMEDRIVER (default
/usr/bin/chromedriver); CONSOLE_DATA=FILE trains on another Online Retail
file (the whole set, to measure load time on it).

The last line printed is "N passed, N failed".
"""
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
from lib import (FACTOR, JSON_HEADERS, ROOT, Server, q, run, run_suite,  # noqa: E402
                 stop_shared)

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
DEMO = os.path.join(ROOT, "data", "demo")
DATA = os.environ.get("CONSOLE_DATA") or os.path.join(DEMO, "online-retail-sample.csv")
COLUMNS = ("customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,"
           "price=UnitPrice,title=Description,birth_date=BirthDate")
SHOTS = os.path.join(ROOT, os.environ.get("BUILD", "build"), "console")
DOCS = os.path.join(ROOT, "docs")
WAIT = 15 * FACTOR       # seconds for a view to show its data
KEY = "k-0123456789abcdef-console"
SEGMENTS = ["champions", "loyal", "new", "promising", "needs_attention", "at_risk", "dormant",
            "lost", "prospect"]
DOC_VIEWS = ("overview", "audiences", "customer", "experiments", "model")
JA = {"champions": "優良顧客", "dormant": "休眠顧客", "lost": "離反顧客"}

TMP = None
MODEL = None
SRV = None
TIMINGS = []


def setUpModule():
    global TMP, MODEL, SRV
    if not HAVE_SELENIUM or not os.access(CHROMIUM, os.X_OK) or \
            not os.access(CHROMEDRIVER, os.X_OK):
        raise AssertionError("the browser tests need chromium, chromium-driver and "
                             "python3-selenium (make check-browser installs them as root)")
    TMP = tempfile.mkdtemp(prefix="sk-console-")
    MODEL = os.path.join(TMP, "model")
    args = ["train", "--interactions", DATA, "--columns", COLUMNS, "--out", MODEL, "--quiet"]
    if not os.environ.get("CONSOLE_DATA"):
        args += ["--catalog", os.path.join(DEMO, "catalog.csv"),
                 "--customers", os.path.join(DEMO, "customers.csv")]
    p = run(args, timeout=600)
    if p.returncode != 0:
        raise AssertionError("train failed: %s" % p.stderr)
    SRV = Server(MODEL, os.path.join(TMP, "state"))
    os.makedirs(SHOTS, exist_ok=True)


def tearDownModule():
    for t in TIMINGS:
        print("\nconsole load: %s" % t)
    if SRV:
        stop_shared(SRV)


def new_driver(width, downloads=None):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-", dir=TMP)
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--user-data-dir=" + profile, "--window-size=%d,900" % width,
              "--lang=en-GB", "--no-first-run", "--disable-extensions"]:
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if downloads:
        opts.add_experimental_option("prefs", {"download.default_directory": downloads,
                                               "download.prompt_for_download": False})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(30 * FACTOR)
    if downloads:
        d.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow",
                                                       "downloadPath": downloads})
    return d


class ConsoleCase(unittest.TestCase):
    """One browser per test class (1280 px), pointed at `srv`."""
    maxDiff = None
    width = 1280
    # Network answers the console expects and handles (the browser logs
    # them as errors all the same): what, and why they are fine.
    expected_network = ()

    @classmethod
    def setUpClass(cls):
        cls.downloads = tempfile.mkdtemp(prefix="dl-", dir=TMP)
        cls.driver = new_driver(cls.width, cls.downloads)

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()

    @property
    def srv(self):
        return SRV

    def setUp(self):
        self.driver.get_log("browser")  # start each test with an empty log
        self.addCleanup(self.assertNoConsoleErrors)

    def url(self, frag="", lang=None):
        return "http://127.0.0.1:%d/console/%s%s" % (self.srv.port,
                                                     "?lang=" + lang if lang else "", frag)

    def open(self, frag, lang=None):
        self.driver.get(self.url(frag, lang))

    def wait(self, css, timeout=None):
        try:
            return WebDriverWait(self.driver, timeout or WAIT).until(
                EC.visibility_of_element_located((By.CSS_SELECTOR, css)))
        except TimeoutException:
            raise AssertionError("%s did not show within %ss; status: %r; log: %r" % (
                css, timeout or WAIT, self.text("#status"), self.driver.get_log("browser")))

    def wait_until(self, fn, what):
        # A view re-rendered between finding its rows and reading them
        # leaves stale references: not yet, ask again (CI saw
        # test_audiences fail on one).
        try:
            return WebDriverWait(self.driver, WAIT, ignored_exceptions=(
                StaleElementReferenceException,)).until(lambda d: fn())
        except TimeoutException:
            raise AssertionError("%s: not within %ss" % (what, WAIT))

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    # Read in one script: the console may replace the element between a
    # find and a read (a stale element otherwise).
    def text(self, css):
        return self.driver.execute_script(
            "var e = document.querySelector(arguments[0]); return e ? e.innerText : null;", css)

    def value(self, css):
        return self.driver.execute_script(
            "var e = document.querySelector(arguments[0]);"
            "return e ? e.getAttribute('data-value') : null;", css)

    def api(self, path, key=None):
        headers = {"Authorization": "Bearer " + key} if key else {}
        r = self.srv.request("GET", path, headers=headers)
        self.assertEqual(r.status, 200, r)
        return r.json

    def assertNoConsoleErrors(self):
        errors = []
        for e in self.driver.get_log("browser"):
            if e["level"] not in ("SEVERE", "WARNING"):
                continue
            msg = e["message"]
            if any(all(part in msg for part in ok) for ok, _why in self.expected_network):
                continue
            errors.append(msg)
        self.assertEqual(errors, [], "the browser's console has errors")

    def assertLabelled(self):
        """Every control has a label (or an aria-label) and every button a name."""
        missing = self.driver.execute_script("""
            var bad = [];
            document.querySelectorAll('input, select, textarea').forEach(function (el) {
              if (el.type === 'hidden') return;
              if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) bad.push(el.id || el.outerHTML);
            });
            document.querySelectorAll('button, a[href]').forEach(function (el) {
              if (!el.textContent.trim() && !el.getAttribute('aria-label')) bad.push(el.outerHTML);
            });
            return bad;""")
        self.assertEqual(missing, [], "controls without a label")

    def screenshot(self, view):
        """build/console/VIEW-1280.png and VIEW-360.png (and docs/ on request)."""
        d = self.driver
        for width in (1280, 360):
            d.set_window_size(width, 900)
            time.sleep(0.2)  # a resize lays the page out again
            height = d.execute_script("return document.documentElement.scrollHeight")
            d.set_window_size(width, min(max(height, 600), 2400))
            d.execute_script("window.scrollTo(0, 0)")
            time.sleep(0.2)
            path = os.path.join(SHOTS, "%s-%d.png" % (view, width))
            d.save_screenshot(path)
            if width == 360:
                overflow = d.execute_script(
                    "return document.documentElement.scrollWidth - window.innerWidth")
                self.assertLessEqual(overflow, 1, "%s scrolls sideways at 360 px" % view)
            if width == 1280 and view in DOC_VIEWS and \
                    os.environ.get("CONSOLE_DOCS_SCREENSHOTS") == "1":
                # the README's pictures: the top of the page, small
                d.set_window_size(1024, 760)
                d.execute_script("window.scrollTo(0, 0)")
                time.sleep(0.2)
                d.save_screenshot(os.path.join(DOCS, "console-%s.png" % view))
        d.set_window_size(self.width, 900)


# ---------------------------------------------------------------------------
# The experiments view, on a server with experiments and their events
# ---------------------------------------------------------------------------
def experiment_file(path, skew_shares):
    doc = {"experiments": [
        {"name": "home-recs", "salt": "console-1", "routes": ["customer"],
         "variants": [{"name": "control", "share": 0.5, "source": "popular"},
                      {"name": "personal", "share": 0.5}]},
        {"name": "basket-skew", "salt": "console-2", "routes": ["basket"],
         "variants": [{"name": "control", "share": skew_shares[0]},
                      {"name": "treatment", "share": skew_shares[1]}]}]}
    with open(path, "w") as f:
        json.dump(doc, f)


class ExperimentsView(ConsoleCase):
    """Each experiment's report, per variant, as GET /v1/experiments/{name}
    answers it; the sample-ratio warning when the split is broken."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.path = os.path.join(TMP, "experiments.json")
        experiment_file(cls.path, (0.5, 0.5))
        cls.own = Server(MODEL, os.path.join(TMP, "state-experiments"),
                         extra=["--experiments", cls.path])
        with open(DATA, newline="", encoding="utf-8", errors="replace") as f:
            ids = []
            for row in csv.DictReader(f):
                c = (row.get("CustomerID") or "").strip()
                if c and c not in ids:
                    ids.append(c)
                if len(ids) == 60:
                    break
        cls.ids = ids
        srv = cls.own
        events = []
        for i, cid in enumerate(ids):
            r = srv.get("/v1/customers/%s/recommendations?n=4" % q(cid))
            assert r.status == 200, r
            items = r.json["items"]
            if items and i % 3 == 0:  # some click, some of them buy
                ev = {"customer_id": cid, "item_id": items[0]["item_id"], "event": "click",
                      "rec_id": r.json["rec_id"]}
                events.append(ev)
                if i % 2 == 0:
                    events.append(dict(ev, event="purchase", quantity=2, price=3.5))
            body = json.dumps({"items": [], "customer_id": cid}).encode()
            r = srv.request("POST", "/v1/recommendations", body, JSON_HEADERS)
            assert r.status == 200, r
        r = srv.request("POST", "/v1/events", json.dumps(events).encode(), JSON_HEADERS)
        assert r.status == 200, r
        # the same experiment with shares its customers no longer match: a
        # customer stays in the variant first served (docs/api.md), so the
        # report's sample-ratio check must fail
        experiment_file(cls.path, (0.95, 0.05))
        r = srv.request("POST", "/admin/reload")
        assert r.status == 200, r
        # served counts reach the state about once a second
        deadline = time.monotonic() + 15 * FACTOR
        while True:
            rep = srv.get("/v1/experiments/home-recs")
            skew = srv.get("/v1/experiments/basket-skew")
            if rep.status == 200 and skew.status == 200 and \
                    sum(v["customers"] for v in rep.json["variants"]) == len(ids) and \
                    sum(v["clicks"] for v in rep.json["variants"]) > 0 and \
                    sum(v["customers"] for v in skew.json["variants"]) == len(ids):
                break
            assert time.monotonic() < deadline, (rep, skew)
            time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        stop_shared(cls.own)

    @property
    def srv(self):
        return self.own

    def rows(self, name):
        return self.driver.execute_script("""
            var out = {};
            document.querySelectorAll('section[data-experiment="' + arguments[0] + '"] tbody tr')
              .forEach(function (tr) {
                var row = {};
                tr.querySelectorAll('td').forEach(function (td) {
                  row[td.className.replace('num ', '')] = td.getAttribute('data-value');
                });
                out[tr.getAttribute('data-variant')] = row;
              });
            return out;""", name)

    def test_report_per_variant(self):
        self.open("#/experiments", lang="en")
        self.wait('#experiments[data-loaded] section[data-experiment="home-recs"] table')
        for name in ("home-recs", "basket-skew"):
            rep = self.api("/v1/experiments/" + name)
            rows = self.rows(name)
            self.assertEqual(sorted(rows), sorted(v["name"] for v in rep["variants"]))
            for v in rep["variants"]:
                with self.subTest(experiment=name, variant=v["name"]):
                    row = rows[v["name"]]
                    for key in ("customers", "exposed", "impressions", "clicks", "orders"):
                        self.assertEqual(int(row[key]), v[key], key)
                    for key in ("ctr", "revenue", "conversion"):
                        self.assertAlmostEqual(float(row[key]), v[key], places=6, msg=key)
                    lift = v["lift"] and v["lift"]["conversion"]
                    if lift:
                        self.assertAlmostEqual(float(row["lift"]), lift["estimate"], places=6)
                        if lift["low"] is not None:
                            low, high = map(float, row["interval"].split(","))
                            self.assertAlmostEqual(low, lift["low"], places=6)
                            self.assertAlmostEqual(high, lift["high"], places=6)
                        self.assertAlmostEqual(float(row["p-value"]), lift["p_value"], places=6)
                    else:
                        self.assertEqual(row["lift"], "")
        home = self.api("/v1/experiments/home-recs")
        self.assertGreater(sum(v["clicks"] for v in home["variants"]), 0)
        self.assertGreater(sum(v["orders"] for v in home["variants"]), 0)
        # the sample-ratio check: its p-value shown, the warning only where
        # it is small
        skew = self.api("/v1/experiments/basket-skew")
        self.assertLess(skew["srm_p_value"], 0.001)
        self.assertGreaterEqual(home["srm_p_value"], 0.001)
        self.assertAlmostEqual(float(self.value('section[data-experiment="basket-skew"] .srm')),
                               skew["srm_p_value"], places=9)
        self.assertIn("mismatch", self.text('section[data-experiment="basket-skew"] .srm-warning'))
        self.assertEqual(self.finds('section[data-experiment="home-recs"] .srm-warning'), [])
        self.assertLabelled()
        self.screenshot("experiments-report")

    def test_japanese(self):
        self.open("#/experiments", lang="ja")
        self.wait('#experiments[data-loaded] section[data-experiment="basket-skew"] table')
        heads = self.text('section[data-experiment="home-recs"] thead')
        for word in ("クリック", "表示数", "注文", "リフト", "p 値"):
            self.assertIn(word, heads)
        self.assertIn("サンプル比の不一致",
                      self.text('section[data-experiment="basket-skew"] .srm-warning'))


# ---------------------------------------------------------------------------
# The views, on the shared server (no state changes)
# ---------------------------------------------------------------------------
class Views(ConsoleCase):
    expected_network = ((("/v1/experiments", "404"), "view 4 says experiments are off"),)

    def test_overview(self):
        # Twice, each a new document (not a new #fragment): the first load
        # of a browser just started, then one with its cache warm (the
        # files revalidate: 304). The browser's own clock: navigation
        # timing, and when the view had its data (performance.now() as
        # app.js recorded it).
        for when in ("first", "again"):
            self.driver.get("about:blank")
            self.open("#/overview")
            self.wait("#overview[data-loaded] .chart")
            nav = self.driver.execute_script("""
                var n = performance.getEntriesByType('navigation')[0];
                return [n.domContentLoadedEventEnd, n.loadEventEnd];""")
            shown = float(self.find("#overview").get_attribute("data-loaded-ms"))
            TIMINGS.append("%s: DOMContentLoaded %.0f ms, load %.0f ms, customers view with its "
                           "data %.0f ms (%s)" % (when, nav[0], nav[1], shown,
                                                  os.path.basename(DATA)))
        tr = self.api("/v1/segments/transitions")
        seg = self.api("/v1/segments")
        self.assertEqual(int(self.value("#kpi-customers .kpi-value")), seg["customers"])
        self.assertEqual(int(self.value("#kpi-customers .kpi-value")), tr["customers"])
        self.assertEqual(int(self.value("#kpi-active .kpi-value")),
                         tr["last_24h"]["active_customers"])
        self.assertEqual(int(self.value("#kpi-events .kpi-value")), tr["last_24h"]["events"])
        self.assertEqual(int(self.value("#kpi-moved .kpi-value")), tr["moved"])
        bars = {b.get_attribute("data-segment"): int(b.get_attribute("data-value"))
                for b in self.finds(".chart rect")}
        self.assertEqual(bars, seg["segments"])
        for s in SEGMENTS:
            with self.subTest(s):
                cells = self.finds('tr[data-segment="%s"] td' % s)
                self.assertEqual(int(cells[0].get_attribute("data-value")),
                                 tr["segments"][s]["customers"])
                self.assertAlmostEqual(float(cells[1].get_attribute("data-value")),
                                       tr["segments"][s]["revenue"], places=2)
                # what a person reads is the same figure
                self.assertEqual(cells[0].text.replace(",", ""),
                                 str(tr["segments"][s]["customers"]))
        self.assertLabelled()
        self.screenshot("overview")

    def test_audiences(self):
        self.open("#/audiences/champions")
        self.wait('#audience[data-audience="champions"][data-loaded] table')
        self.wait_until(lambda: self.value("#audience-count"), "the count")
        seg = self.api("/v1/segments")
        self.assertEqual(int(self.value("#audience-count")), seg["segments"]["champions"])
        page = self.api("/v1/audiences/champions?n=3&limit=20")
        rows = self.finds("#audience tbody tr")
        self.assertEqual([r.get_attribute("data-customer") for r in rows],
                         [c["customer_id"] for c in page["customers"]])
        first = page["customers"][0]
        self.assertIn(first["items"][0]["item_id"], rows[0].text)
        self.assertIn(", ".join(first["items"][0]["because"]), rows[0].text)
        self.assertLabelled()
        self.screenshot("audiences")
        # the next page by the cursor, then a trigger audience picked with
        # the keyboard
        if page["next_cursor"]:
            self.find("#next-page").click()
            page2 = self.api("/v1/audiences/champions?n=3&limit=20&cursor=" +
                             q(page["next_cursor"]))
            self.wait_until(lambda: [r.get_attribute("data-customer") for r in
                                     self.finds("#audience tbody tr")] ==
                            [c["customer_id"] for c in page2["customers"]], "page 2")
        sel = self.find("#audience-name")
        sel.send_keys("Birthday this month")
        sel.send_keys(Keys.TAB)
        self.driver.switch_to.active_element.send_keys(Keys.ENTER)  # "Show"
        self.wait('#audience[data-audience="birthday_month"][data-loaded]')
        self.wait_until(lambda: self.value("#audience-count") is not None, "birthday count")

    def test_customer_lookup(self):
        self.open("#/customer")
        box = self.wait("#lookup-id")
        box.send_keys("17850" + Keys.ENTER)
        self.wait('#customer[data-customer="17850"][data-loaded] #timeline')
        p = self.api("/v1/customers/17850")
        for field in ["segment", "history_size", "events_since_model"]:
            with self.subTest(field):
                self.assertEqual(self.value('dd[data-field="%s"]' % field), str(p[field]))
        self.assertEqual(int(self.value('dd[data-field="frequency"]')), p["rfm"]["frequency"])
        self.assertAlmostEqual(float(self.value('dd[data-field="monetary"]')),
                               p["rfm"]["monetary"], places=2)
        tl = self.api("/v1/customers/17850/events?limit=20")
        self.assertEqual(len(self.finds("#timeline tr")), len(tl["events"]))
        recs = self.api("/v1/customers/17850/recommendations?n=10")
        self.assertEqual([r.get_attribute("data-item") for r in self.finds("#recs tr[data-item]")],
                         [i["item_id"] for i in recs["items"]])
        self.assertEqual(self.find("#consent").is_selected(), p["consent"]["personalization"])
        if tl["next_cursor"]:
            self.find("#older").click()
            more = self.api("/v1/customers/17850/events?limit=20&cursor=" + q(tl["next_cursor"]))
            self.wait_until(lambda: len(self.finds("#timeline tr")) ==
                            len(tl["events"]) + len(more["events"]), "older events")
        self.assertLabelled()
        self.screenshot("customer")

    def test_unknown_customer(self):
        self.expected_network = ((("/v1/customers/nobody-at-all", "404"),
                                  "the console says the customer is not known"),)
        self.open("#/customer/nobody-at-all")
        self.assertIn("nobody-at-all", self.wait("#customer-unknown").text)

    def test_experiments_placeholder(self):
        self.open("#/experiments")
        self.assertIn("not configured", self.wait("#experiments-off").text)
        self.screenshot("experiments")

    def test_model_and_items(self):
        self.open("#/model")
        self.wait("#model[data-loaded] dl")
        m = self.api("/v1/model")
        for field in ["items", "customers", "interactions", "rows_read"]:
            with self.subTest(field):
                self.assertEqual(self.value('dd[data-field="%s"]' % field), str(m["meta"][field]))
        self.assertEqual(self.value('dd[data-field="algorithm"]'), m["meta"]["algorithm"])
        self.assertEqual(self.value('dd[data-field="model"]'), m["model"])
        self.assertEqual(float(self.text('tr[data-param="lambda"] td')),
                         m["meta"]["parameters"]["lambda"])
        # a word of the most popular item's title (its id when the model
        # has no titles)
        top = self.api("/v1/items?limit=1")["items"][0]
        word = top["title"].split()[-1].lower() if top.get("title") else top["item_id"]
        box = self.find("#item-q")
        box.send_keys(word + Keys.ENTER)
        self.wait("#item-results")
        found = self.api("/v1/items?limit=20&q=" + q(word))
        buttons = self.finds("#item-results button")
        self.assertEqual([b.get_attribute("data-item") for b in buttons],
                         [i["item_id"] for i in found["items"]])
        buttons[0].click()
        item = found["items"][0]["item_id"]
        self.wait('#neighbours[data-item="%s"] table' % item)
        sim = self.api("/v1/items/%s/similar?n=10" % q(item))
        self.assertEqual([r.get_attribute("data-item") for r in self.finds("#neighbours tr[data-item]")],
                         [i["item_id"] for i in sim["items"]])
        self.assertLabelled()
        self.screenshot("model")

    def test_japanese_remembered(self):
        self.open("#/overview", lang="ja")
        self.wait("#overview[data-loaded] .chart")
        self.assertEqual(self.driver.execute_script("return document.documentElement.lang"), "ja")
        self.assertEqual(self.text('#nav a[data-view="overview"]'), "顧客の概況")
        labels = [t.text for t in self.finds(".chart text.label")]
        for s, ja in JA.items():
            self.assertIn(ja, labels)
        self.assertEqual(self.text('tr[data-segment="dormant"] th'), "休眠顧客")
        self.screenshot("overview-ja")
        # remembered without ?lang
        self.open("#/audiences/dormant")
        self.wait('#audience[data-audience="dormant"][data-loaded]')
        self.assertEqual(self.text('#nav a[data-view="audiences"]'), "オーディエンス")
        # and switched back with the select
        self.find("#lang").send_keys("English")
        self.wait_until(lambda: self.text('#nav a[data-view="audiences"]') == "Audiences",
                        "labels back in English")
        self.open("#/overview")
        self.wait("#overview[data-loaded]")
        self.assertEqual(self.text('#nav a[data-view="overview"]'), "Customers")

    def test_keyboard(self):
        self.open("#/overview")
        self.wait("#overview[data-loaded]")
        body = self.find("body")
        body.send_keys(Keys.TAB)  # the skip link first
        self.assertEqual(self.driver.switch_to.active_element.get_attribute("href"),
                         self.url("#main"))
        for _ in range(10):
            el = self.driver.switch_to.active_element
            if el.get_attribute("data-view") == "model":
                break
            el.send_keys(Keys.TAB)
        self.assertEqual(self.driver.switch_to.active_element.get_attribute("data-view"), "model")
        self.driver.switch_to.active_element.send_keys(Keys.ENTER)
        self.wait("#model[data-loaded]")
        self.assertEqual(self.find('#nav a[data-view="model"]').get_attribute("aria-current"),
                         "page")


# ---------------------------------------------------------------------------
# Round trips that change the state: a server of their own
# ---------------------------------------------------------------------------
class Changes(ConsoleCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.own = Server(MODEL, os.path.join(TMP, "state-changes"))
        # two customers of the model: one to switch, one to erase
        r = cls.own.get("/v1/audiences/champions?limit=2&n=1")
        cls.switched, cls.erased = [c["customer_id"] for c in r.json["customers"]]

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        stop_shared(cls.own)

    @property
    def srv(self):
        return self.own

    def test_consent_switch(self):
        cid = self.switched
        self.open("#/customer/" + cid)
        self.wait('#customer[data-customer="%s"][data-loaded]' % cid)
        self.assertTrue(self.find("#consent").is_selected())
        self.assertEqual(self.value("#recs-source"), "personal")
        self.find("#consent").click()
        self.wait_until(lambda: self.text("#consent-status"), "consent saved")
        self.assertFalse(self.api("/v1/customers/" + cid)["consent"]["personalization"])
        self.wait_until(lambda: self.value("#recs-source") == "popular", "popular items")
        self.find("#consent").send_keys(Keys.SPACE)  # the keyboard works the switch too
        self.wait_until(lambda: self.api("/v1/customers/" + cid)["consent"]["personalization"],
                        "consent back on")
        self.wait_until(lambda: self.value("#recs-source") == "personal", "personal items")

    def test_erasure_with_confirmation(self):
        cid = self.erased
        self.expected_network = (((cid, "404"), "looked up after the erasure"),)
        self.open("#/customer/" + cid)
        self.wait('#customer[data-customer="%s"][data-loaded]' % cid)
        self.find("#erase").click()
        box = self.wait("#erase-input")
        box.send_keys(cid + "0" + Keys.ENTER)  # not the customer shown
        self.assertIn("does not match", self.wait("#erase-message").text)
        self.assertEqual(self.srv.get("/v1/customers/" + cid).status, 200, "nothing erased yet")
        self.find("#erase-cancel").click()
        self.assertEqual(self.srv.get("/v1/customers/" + cid).status, 200, "kept")
        self.find("#erase").click()
        box = self.wait("#erase-input")
        box.clear()
        box.send_keys(cid)
        self.find("#erase-confirm").click()
        self.assertIn(cid, self.wait("#erased").text)
        r = self.srv.get("/v1/customers/" + cid)
        self.assertEqual(r.status, 404, r)
        # looked up again (the form, as a person would): not known any more
        box = self.find("#lookup-id")
        box.clear()
        box.send_keys(cid + Keys.ENTER)
        self.assertIn(cid, self.wait("#customer-unknown").text)


# ---------------------------------------------------------------------------
# Downloads (GET /v1/audiences/{name}/export, from the audiences issue)
# ---------------------------------------------------------------------------
class Downloads(ConsoleCase):

    def export_route_missing(self):
        r = self.srv.get("/v1/audiences/champions/export?format=jsonl")
        if r.status == 404 and r.json.get("error", {}).get("code") == "not_found":
            msg = ("SKIPPED LOUDLY: GET /v1/audiences/{name}/export answers 404 (not merged "
                   "yet): the download round trip is not tested")
            print("\n*** " + msg + " ***", flush=True)
            return msg
        return None

    def fetch_download(self, button, name):
        path = os.path.join(self.downloads, name)
        if os.path.exists(path):
            os.remove(path)
        self.find(button).click()
        self.wait_until(lambda: os.path.exists(path) and os.path.getsize(path) > 0 and
                        not os.path.exists(path + ".crdownload"), "the download of " + name)
        with open(path, encoding="utf-8") as f:
            return f.read()

    def test_download_matches_export(self):
        missing = self.export_route_missing()
        if missing:
            self.skipTest(missing)
        self.open("#/audiences/champions")
        self.wait('#audience[data-audience="champions"][data-loaded]')
        jsonl = self.fetch_download("#dl-jsonl", "champions.jsonl")
        p = run(["export", "--model", MODEL, "--state", os.path.join(TMP, "state"),
                 "--audience", "champions", "--no-record"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([json.loads(x) for x in jsonl.splitlines()],
                         [json.loads(x) for x in p.stdout.splitlines()])
        text = self.fetch_download("#dl-csv", "champions.csv")
        rows = list(csv.DictReader(io.StringIO(text)))
        ids = []
        for r in rows:
            if r.get("customer_id") not in ids:
                ids.append(r.get("customer_id"))
        self.assertEqual(ids, [json.loads(x)["customer_id"] for x in p.stdout.splitlines()])


# ---------------------------------------------------------------------------
# Keys: the prompt, a wrong key refused, the right one kept for the tab
# ---------------------------------------------------------------------------
class KeyPrompt(ConsoleCase):
    expected_network = (
        (("/v1/segments/transitions", "401"), "no key yet: the console asks for one"),
        (("/v1/segments/transitions", "403"), "the wrong key, refused: the console says so"),
    )

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keys = os.path.join(TMP, "keys")
        with open(keys, "w") as f:
            f.write(KEY + "\n")
        cls.own = Server(MODEL, os.path.join(TMP, "state-keys"),
                         extra=["--api-keys", keys, "--auth-reads"])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        stop_shared(cls.own)

    @property
    def srv(self):
        return self.own

    def test_wrong_key_refused_then_right_key(self):
        self.open("#/overview")
        box = self.wait("#key-dialog[open] #key-input")
        self.assertIn("needs an API key", self.text("#key-message"))
        box.send_keys("x" + KEY + Keys.ENTER)
        self.wait_until(lambda: "refused" in (self.text("#key-message") or ""),
                        "the wrong key refused")
        self.assertTrue(self.find("#key-dialog").get_attribute("open") is not None)
        self.screenshot("key")
        box = self.find("#key-input")
        box.clear()
        box.send_keys(KEY + Keys.ENTER)
        self.wait("#overview[data-loaded] .chart")
        tr = self.api("/v1/segments/transitions", key=KEY)
        self.assertEqual(int(self.value("#kpi-customers .kpi-value")), tr["customers"])
        self.assertEqual(self.driver.execute_script(
            "return sessionStorage.getItem('shopkeeper.apiKey')"), KEY)
        # kept for the tab: another view asks no more
        self.open("#/model")
        self.wait("#model[data-loaded]")
        self.assertIsNone(self.find("#key-dialog").get_attribute("open"))


if __name__ == "__main__":
    sys.exit(run_suite(__name__, sys.argv[1:], tmp_dirs=lambda: [TMP] if TMP else [],
                       label="browser"))
