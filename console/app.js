// shopkeeper console: one page over the public HTTP API (docs/console.md).
// No framework and no build step. Every piece of data goes into the page as
// text (textContent, attributes), never as HTML, so a customer id or a
// title cannot inject markup; the server's Content-Security-Policy refuses
// inline script besides.
"use strict";

(function () {
  var KEY_STORE = "shopkeeper.apiKey";   // sessionStorage: this tab only
  var LANG_STORE = "shopkeeper.lang";    // localStorage: remembered
  var PAGE = 20;                         // audience members per page
  var TIMELINE_PAGE = 20;
  var SEGMENTS = ["champions", "loyal", "new", "promising", "needs_attention",
                  "at_risk", "dormant", "lost", "prospect"];
  var TRIGGERS = ["cart_abandoners", "browsed_not_bought", "birthday", "birthday_month", "all"];

  var lang = "en";
  var modelInfo = null;      // GET /v1/model, once
  var current = null;        // the view shown: {name, arg}

  // ---- small helpers ------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function t(key, vars) {
    var s = (LABELS[lang] && LABELS[lang][key]) || LABELS.en[key] || key;
    if (vars) {
      Object.keys(vars).forEach(function (k) { s = s.split("{" + k + "}").join(String(vars[k])); });
    }
    return s;
  }

  function segName(s) { return (SEGMENT_NAMES[lang] || SEGMENT_NAMES.en)[s] || s; }

  // h("td", {class: "num", "data-value": 3}, "text", childNode...)
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === "text") el.textContent = v;
        else if (k === "on") Object.keys(v).forEach(function (ev) { el.addEventListener(ev, v[ev]); });
        else el.setAttribute(k, v === true ? "" : String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }

  function add(el, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { add(el, x); }); return; }
    el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }

  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

  function fill(el) {
    clear(el);
    for (var i = 1; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }

  var locales = { en: "en-GB", ja: "ja-JP" };
  function num(v, digits) {
    if (v === null || v === undefined) return "–";
    return new Intl.NumberFormat(locales[lang], { maximumFractionDigits: digits === undefined ? 0 : digits,
                                                   minimumFractionDigits: 0 }).format(v);
  }
  function money(v) { return num(v, 2); }
  function when(iso) {
    if (!iso) return "–";
    var d = new Date(iso);
    if (isNaN(d)) return iso;
    return new Intl.DateTimeFormat(locales[lang], { dateStyle: "medium", timeStyle: "short",
                                                     timeZone: "UTC" }).format(d) + " UTC";
  }

  function status(msg, kind) {
    var el = $("status");
    el.textContent = msg || "";
    el.className = "status" + (kind ? " " + kind : "");
  }

  function table(caption, heads, rows, label) {
    var thead = h("thead", null, h("tr", null, heads.map(function (x) {
      return h("th", { scope: "col", "class": x.num ? "num" : null, text: x.text || x });
    })));
    // On a narrow screen each row stacks into a card; every cell carries
    // its column's name for that (console.css, .stack).
    rows.forEach(function (tr) {
      Array.prototype.forEach.call(tr.children, function (cell, i) {
        var head = heads[i] && (heads[i].text || heads[i]);
        if (head && typeof head === "string" && !cell.hasAttribute("data-label")) cell.setAttribute("data-label", head);
      });
    });
    var tb = h("table", { "class": "stack" }, caption ? h("caption", { text: caption }) : null, thead,
               h("tbody", null, rows));
    // A wide table scrolls inside its box at 360 px; the box takes focus so
    // the keyboard can scroll it too.
    return h("div", { "class": "scroll", tabindex: 0, role: "region",
                      "aria-label": label || caption || heads.map(function (x) { return x.text || x; }).join(", ") }, tb);
  }

  function td(text, value, cls) {
    return h("td", { "class": cls || (value !== undefined ? "num" : null),
                     "data-value": value, text: text });
  }

  // ---- the API --------------------------------------------------------------

  function ApiError(status, code, message) {
    this.status = status; this.code = code; this.message = message;
  }

  var keyWaiters = null; // callbacks waiting for the key dialog

  // Shows the key dialog with `message`; resolves when a key is given,
  // rejects when the person cancels. One dialog for every waiting call.
  function askKey(message) {
    return new Promise(function (resolve, reject) {
      $("key-message").textContent = message;
      if (keyWaiters) { keyWaiters.push([resolve, reject]); return; }
      keyWaiters = [[resolve, reject]];
      var d = $("key-dialog");
      $("key-input").value = "";
      if (!d.open) d.showModal();
      $("key-input").focus();
    });
  }

  function keyDone(ok) {
    var waiters = keyWaiters || [];
    keyWaiters = null;
    $("key-dialog").close();
    waiters.forEach(function (w) { (ok ? w[0] : w[1])(); });
  }

  // fetch with the key when one is kept; asks for one when the server
  // says a key is needed (401) or wrong (403 forbidden), then tries again.
  function call(method, path, body, raw) {
    var headers = {};
    var key = sessionStorage.getItem(KEY_STORE);
    if (key) headers.Authorization = "Bearer " + key;
    var init = { method: method, headers: headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (r) {
      if (r.ok) return raw ? r : r.json();
      return r.text().then(function (text) {
        var err = { code: "http_" + r.status, message: text };
        try { err = JSON.parse(text).error || err; } catch (e) { /* not JSON */ }
        if (r.status === 401 || (r.status === 403 && err.code === "forbidden")) {
          if (r.status === 403) sessionStorage.removeItem(KEY_STORE);
          return askKey(r.status === 401 && !key ? t("key_needed") : t("key_wrong")).then(
            function () { return call(method, path, body, raw); },
            function () { throw new ApiError(r.status, "no_key", t("key_cancelled")); });
        }
        if (r.status === 403 && err.code === "protected_mode")
          throw new ApiError(403, err.code, t("protected_mode"));
        throw new ApiError(r.status, err.code, err.message);
      });
    });
  }

  function get(path) { return call("GET", path); }
  function enc(s) { return encodeURIComponent(s); }

  function failed(where) {
    return function (e) {
      var msg = (e && e.message) || String(e);
      if (where) fill(where, h("p", { "class": "error", role: "alert", text: msg }));
      status(t("error") + ": " + msg, "bad");
    };
  }

  function loadModel() {
    if (modelInfo) return Promise.resolve(modelInfo);
    return get("../v1/model").then(function (m) { modelInfo = m; return m; });
  }

  // ---- view 1: customers at a glance ----------------------------------------------

  function barChart(segs, total) {
    // Drawn to the width it gets, so its text stays legible at 360 px.
    var W = Math.max(300, Math.min(640, $("overview").clientWidth || 640));
    var rowH = 30, labelW = W < 480 ? 118 : 150, valueW = 50;
    var max = 1;
    SEGMENTS.forEach(function (s) { max = Math.max(max, segs[s] ? segs[s].customers : 0); });
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + (rowH * SEGMENTS.length));
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", t("chart_label"));
    svg.setAttribute("class", "chart");
    function el(tag, attrs, text) {
      var e = document.createElementNS(ns, tag);
      Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
      if (text !== undefined) e.textContent = text;
      svg.appendChild(e);
      return e;
    }
    SEGMENTS.forEach(function (s, i) {
      var n = segs[s] ? segs[s].customers : 0;
      var y = i * rowH;
      var w = Math.round((W - labelW - valueW) * n / max);
      el("text", { x: labelW - 8, y: y + rowH / 2 + 5, "text-anchor": "end", "class": "label" }, segName(s));
      el("rect", { x: labelW, y: y + 5, width: Math.max(w, 1), height: rowH - 10,
                   "class": "bar seg-" + s, "data-segment": s, "data-value": n });
      el("text", { x: labelW + w + 6, y: y + rowH / 2 + 5, "class": "value" }, num(n));
    });
    return svg;
  }

  function kpi(id, label, value) {
    return h("div", { "class": "kpi", id: id },
             h("span", { "class": "kpi-value", "data-value": value, text: num(value) }),
             h("span", { "class": "kpi-label", text: label }));
  }

  function showOverview() {
    var out = $("overview");
    status(t("loading"));
    return get("../v1/segments/transitions").then(function (tr) {
      var segs = tr.segments;
      var rows = SEGMENTS.map(function (s) {
        var x = segs[s] || { customers: 0, revenue: 0 };
        return h("tr", { "data-segment": s },
                 h("th", { scope: "row", text: segName(s) }),
                 td(num(x.customers), x.customers),
                 td(money(x.revenue), x.revenue),
                 td(x.customers ? money(x.revenue / x.customers) : "–", x.customers ? x.revenue / x.customers : ""));
      });
      var moves = tr.transitions.filter(function (m) { return m.from !== m.to; })
        .sort(function (a, b) { return b.customers - a.customers; });
      var stayed = tr.transitions.filter(function (m) { return m.from === m.to; })
        .reduce(function (n, m) { return n + m.customers; }, 0);
      var moveRows = moves.map(function (m) {
        return h("tr", { "data-from": m.from === null ? "" : m.from, "data-to": m.to },
                 h("td", { text: m.from === null ? t("new_since_training") : segName(m.from) }),
                 h("td", { "aria-hidden": "true", "class": "arrow", text: "→" }),
                 h("td", { text: segName(m.to) }),
                 td(num(m.customers), m.customers));
      });
      fill(out,
           h("div", { "class": "kpis" },
             kpi("kpi-customers", t("customers_total"), tr.customers),
             kpi("kpi-active", t("active_24h"), tr.last_24h.active_customers),
             kpi("kpi-events", t("events_24h"), tr.last_24h.events),
             kpi("kpi-moved", t("moved"), tr.moved)),
           h("h3", { text: t("per_segment") }),
           barChart(segs, tr.customers),
           table(null, [t("segment"), { text: t("customers"), num: 1 }, { text: t("revenue"), num: 1 },
                        { text: t("revenue_per_customer"), num: 1 }], rows, t("per_segment")),
           h("h3", { text: t("transitions_title") }),
           h("p", { "class": "note", text: t("transitions_since", { since: when(tr.since), at: when(tr.at) }) }),
           moves.length
             ? table(null, [t("from"), { text: "" }, t("to"), { text: t("customers"), num: 1 }], moveRows,
                     t("transitions_title"))
             : h("p", { id: "no-moves", text: t("no_moves") }),
           h("p", { "class": "note" }, t("unchanged") + ": ", h("span", { id: "stayed", "data-value": stayed, text: num(stayed) })));
      out.setAttribute("data-loaded", "1");
      // for the browser test's load figure: ms since navigation started
      out.setAttribute("data-loaded-ms", Math.round(performance.now()));
      status("");
    }, failed(out));
  }

  // ---- view 2: audiences -------------------------------------------------------

  function fillAudienceSelect() {
    var sel = $("audience-name");
    var keep = sel.value;
    fill(sel,
         h("optgroup", { label: t("group_segments") },
           SEGMENTS.map(function (s) { return h("option", { value: s, text: segName(s) }); })),
         h("optgroup", { label: t("group_triggers") },
           TRIGGERS.map(function (s) { return h("option", { value: s, text: t("aud_" + s) }); })));
    if (keep) sel.value = keep;
  }

  // The audience's name and query for the API: "birthday this month" is
  // the birthday audience with its window running to the month's end (at
  // the model's clock).
  function audienceQuery(name) {
    if (name !== "birthday_month") return { name: name, q: "" };
    var now = new Date(modelInfo.now);
    var y = now.getUTCFullYear(), mo = now.getUTCMonth();
    var last = new Date(Date.UTC(y, mo + 1, 0)).getUTCDate();
    return { name: "birthday", q: "&days=" + (last - now.getUTCDate() + 1) };
  }

  // How many members: the answer's total when the server gives one, the
  // segment count for a segment, else counted a page at a time (bounded).
  function audienceCount(aq, first) {
    if (typeof first.total === "number") return Promise.resolve({ n: first.total, exact: true });
    if (SEGMENTS.indexOf(aq.name) >= 0) {
      return get("../v1/segments").then(function (s) { return { n: s.segments[aq.name], exact: true }; });
    }
    var n = 0, pages = 0;
    function page(cursor) {
      return get("../v1/audiences/" + enc(aq.name) + "?limit=1000&n=1&explain=0" + aq.q +
                 (cursor ? "&cursor=" + enc(cursor) : "")).then(function (a) {
        n += a.customers.length;
        pages++;
        if (a.next_cursor && pages < 20) return page(a.next_cursor);
        return { n: n, exact: !a.next_cursor };
      });
    }
    return page(null);
  }

  function memberRow(m) {
    var items = h("ol", { "class": "items" }, m.items.map(function (it) {
      return h("li", null, h("span", { "class": "item-title", text: it.title || it.item_id }),
               " ", h("code", { text: it.item_id }),
               it.because && it.because.length
                 ? h("span", { "class": "because", text: " — " + t("because") + " " + it.because.join(", ") })
                 : null);
    }));
    return h("tr", { "data-customer": m.customer_id },
             h("th", { scope: "row" }, h("a", { href: "#/customer/" + enc(m.customer_id), text: m.customer_id })),
             h("td", { text: segName(m.segment) }),
             td(num(m.intent, 2), m.intent),
             h("td", null, items));
  }

  function showAudience(name, cursor, history) {
    var out = $("audience");
    $("audience-name").value = name;
    status(t("loading"));
    return loadModel().then(function () {
      var aq = audienceQuery(name);
      return get("../v1/audiences/" + enc(aq.name) + "?n=3&limit=" + PAGE + aq.q +
                 (cursor ? "&cursor=" + enc(cursor) : "")).then(function (a) {
        var countEl = h("span", { id: "audience-count", text: "…" });
        var dl = h("div", { "class": "row downloads" },
                   h("button", { type: "button", id: "dl-csv", text: t("download_csv"),
                                 on: { click: function () { download(aq, name, "csv"); } } }),
                   h("button", { type: "button", id: "dl-jsonl", text: t("download_jsonl"),
                                 on: { click: function () { download(aq, name, "jsonl"); } } }));
        var pager = h("div", { "class": "row" },
                      cursor ? h("button", { type: "button", id: "first-page", text: t("first_page"),
                                             on: { click: function () { showAudience(name, null, []); } } }) : null,
                      a.next_cursor ? h("button", { type: "button", id: "next-page", text: t("next_page"),
                                                    on: { click: function () { showAudience(name, a.next_cursor, (history || []).concat([cursor])); } } }) : null);
        fill(out,
             h("p", { "class": "count" }, t("count") + ": ", countEl),
             dl,
             h("p", { id: "download-status", role: "status" }),
             a.customers.length
               ? table(null, [t("customer_id"), t("segment"), { text: t("intent"), num: 1 }, t("recommended")],
                       a.customers.map(memberRow), t("members"))
               : h("p", { id: "audience-empty", text: t("empty_audience") }),
             pager);
        out.setAttribute("data-audience", name);
        out.setAttribute("data-loaded", "1");
        status("");
        return audienceCount(aq, a).then(function (c) {
          countEl.setAttribute("data-value", c.n);
          countEl.textContent = c.exact ? num(c.n) : t("count_at_least", { n: num(c.n) });
        });
      });
    }).catch(failed(out));
  }

  // Downloads the audience as the server streams it (the same content as
  // `shopkeeper export`): fetched with the key, handed to the browser as a
  // file.
  function download(aq, name, format) {
    var note = $("download-status");
    var file = name + (format === "csv" ? ".csv" : ".jsonl");
    note.textContent = t("loading");
    call("GET", "../v1/audiences/" + enc(aq.name) + "/export?format=" + format + aq.q, undefined, true)
      .then(function (r) { return r.blob(); })
      .then(function (blob) {
        var url = URL.createObjectURL(blob);
        var a = h("a", { href: url, download: file, hidden: true });
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
        note.textContent = t("download_done", { file: file });
      }, function (e) {
        note.textContent = e.status === 404 && e.code !== "unknown_audience"
          ? t("download_missing", { name: aq.name }) : e.message;
        note.className = "error";
      });
  }

  // ---- view 3: one customer ------------------------------------------------------

  var timelineTitles = {}; // item id -> title, from the timeline, for "because"

  function dl(pairs) {
    return h("dl", { "class": "facts" }, pairs.map(function (p) {
      return [h("dt", { text: p[0] }), h("dd", { "data-field": p[2], "data-value": p[3], text: p[1] })];
    }));
  }

  function eventLabel(e) { return t("ev_" + e.event); }

  function timelineRows(events) {
    return events.map(function (e) {
      if (e.title) timelineTitles[e.item_id] = e.title;
      return h("tr", { "class": "src-" + e.source },
               h("td", { text: when(e.timestamp) }),
               h("td", { text: eventLabel(e) }),
               h("td", null, h("span", { text: e.title || e.item_id }), " ", h("code", { text: e.item_id })),
               td(num(e.quantity, 2), e.quantity),
               h("td", { text: t("src_" + e.source) }));
    });
  }

  function showCustomer(id) {
    var out = $("customer");
    $("lookup-id").value = id;
    status(t("loading"));
    var base = "../v1/customers/" + enc(id);
    return get(base).then(function (p) {
      return Promise.all([get(base + "/events?limit=" + TIMELINE_PAGE),
                          get(base + "/recommendations?n=10")]).then(function (r) {
        renderCustomer(out, id, p, r[0], r[1]);
        status("");
      });
    }).catch(function (e) {
      if (e.status === 404 && e.code === "unknown_customer") {
        fill(out, h("p", { id: "customer-unknown", "class": "note", text: t("unknown_customer", { id: id }) }));
        out.setAttribute("data-loaded", "1");
        status("");
        return;
      }
      failed(out)(e);
    });
  }

  function renderCustomer(out, id, p, tl, recs) {
    timelineTitles = {};
    var rfm = p.rfm;
    var attrs = Object.keys(p.attributes || {}).map(function (k) {
      return [k, String(p.attributes[k]), "attr-" + k];
    });
    // The timeline first: its titles name the items behind "because".
    var tlBox = tl.events.length
      ? table(null, [t("when"), t("event"), t("item"), { text: t("quantity"), num: 1 }, t("source")],
              timelineRows(tl.events), t("timeline"))
      : h("p", { text: t("no_events") });
    var tbody = tlBox.querySelector("tbody");
    if (tbody) { tbody.id = "timeline"; tlBox.setAttribute("data-total", tl.total); }
    var older = h("button", { type: "button", id: "older", text: t("older"), hidden: !tl.next_cursor });
    var cursor = tl.next_cursor;
    older.addEventListener("click", function () {
      get("../v1/customers/" + enc(id) + "/events?limit=" + TIMELINE_PAGE + "&cursor=" + enc(cursor))
        .then(function (more) {
          var heads = tlBox.querySelectorAll("thead th");
          timelineRows(more.events).forEach(function (tr) {
            Array.prototype.forEach.call(tr.children, function (cell, i) {
              if (heads[i] && heads[i].textContent) cell.setAttribute("data-label", heads[i].textContent);
            });
            tbody.appendChild(tr);
          });
          cursor = more.next_cursor;
          older.hidden = !cursor;
        }, failed(null));
    });
    var consent = h("input", { type: "checkbox", id: "consent", role: "switch",
                               checked: p.consent.personalization });
    var consentNote = h("p", { id: "consent-status", role: "status" });
    consent.addEventListener("change", function () {
      var want = consent.checked;
      consent.disabled = true;
      call("PUT", "../v1/customers/" + enc(id) + "/consent", { personalization: want })
        .then(function (r) {
          consent.checked = r.consent.personalization;
          consentNote.textContent = r.consent.personalization ? t("consent_saved_on") : t("consent_saved_off");
          return get("../v1/customers/" + enc(id) + "/recommendations?n=10").then(function (rr) {
            fill($("recs"), recList(rr));
          });
        }, function (e) {
          consent.checked = !want;
          consentNote.textContent = e.message;
        }).then(function () { consent.disabled = false; });
    });
    fill(out,
         h("h3", { text: t("profile") }),
         dl([[t("customer_id"), p.customer_id, "customer_id", p.customer_id],
             [t("segment"), segName(p.segment), "segment", p.segment],
             [t("rfm"), rfm ? "R" + rfm.r + " F" + rfm.f + " M" + rfm.m : t("none"), "rfm",
              rfm ? "" + rfm.r + rfm.f + rfm.m : ""],
             [t("recency_days"), rfm ? num(rfm.recency_days, 1) : "–", "recency_days", rfm ? rfm.recency_days : ""],
             [t("frequency"), rfm ? num(rfm.frequency) : "–", "frequency", rfm ? rfm.frequency : ""],
             [t("monetary"), rfm ? money(rfm.monetary) : "–", "monetary", rfm ? rfm.monetary : ""],
             [t("first_purchase"), when(p.first_purchase), "first_purchase", p.first_purchase],
             [t("last_purchase"), when(p.last_purchase), "last_purchase", p.last_purchase],
             [t("intent"), num(p.intent, 2), "intent", p.intent],
             [t("history_size"), num(p.history_size), "history_size", p.history_size],
             [t("events_since_model"), num(p.events_since_model), "events_since_model", p.events_since_model],
             [t("last_event"), when(p.last_event), "last_event", p.last_event]].concat(attrs)),
         h("h3", { text: t("consent") }),
         h("div", { "class": "switch" }, consent, h("label", { "for": "consent", text: t("consent_switch") })),
         consentNote,
         h("h3", { text: t("recommendations") }),
         h("div", { id: "recs" }, recList(recs)),
         h("h3", { text: t("timeline") }),
         tlBox,
         older,
         h("h3", { text: t("erasure") }),
         h("p", { "class": "note", text: t("erase_explain") }),
         h("button", { type: "button", id: "erase", "class": "danger", text: t("erase"),
                       on: { click: function () { confirmErase(id); } } }));
    out.setAttribute("data-loaded", "1");
    out.setAttribute("data-customer", id);
  }

  function recList(r) {
    return [h("p", { "class": "note", id: "recs-source", "data-value": r.source,
                     text: r.source === "personal" ? t("source_personal") : t("source_popular") }),
            r.items.length
              ? table(null, [t("item"), { text: t("score"), num: 1 }, t("because")], r.items.map(function (it) {
                  return h("tr", { "data-item": it.item_id },
                           h("td", null, h("span", { text: it.title || it.item_id }), " ", h("code", { text: it.item_id })),
                           td(num(it.score, 3), it.score),
                           h("td", { text: (it.because || []).map(function (b) {
                             return timelineTitles[b] || b; }).join(", ") }));
                }), t("recommendations"))
              : h("p", { text: t("none") })];
  }

  function confirmErase(id) {
    var d = $("erase-dialog");
    $("erase-title").textContent = t("erase_confirm_title", { id: id });
    $("erase-input").value = "";
    $("erase-message").textContent = "";
    d.setAttribute("data-customer", id);
    d.showModal();
    $("erase-input").focus();
  }

  function eraseConfirmed(ev) {
    ev.preventDefault();
    var d = $("erase-dialog");
    var id = d.getAttribute("data-customer");
    if ($("erase-input").value !== id) {
      $("erase-message").textContent = t("erase_mismatch");
      return;
    }
    d.close();
    call("DELETE", "../v1/customers/" + enc(id)).then(function () {
      fill($("customer"), h("p", { id: "erased", role: "status", text: t("erased", { id: id }) }));
      status(t("erased", { id: id }), "good");
    }, failed($("customer")));
  }

  // ---- view 4: experiments -----------------------------------------------------------

  // The report's p-values: small ones in scientific notation, so 0.0004
  // does not read as 0.
  function pval(p) {
    if (p === null || p === undefined) return "–";
    if (p > 0 && p < 0.001) return p.toExponential(1);
    return num(p, 3);
  }
  function pct(v, digits) { return v === null || v === undefined ? "–" : num(v * 100, digits) + "%"; }
  function signedPct(v) { return v === null || v === undefined ? "–" : (v > 0 ? "+" : "") + pct(v, 2); }

  var SRM_ALERT = 0.001;  // below it the split is broken (docs/api.md, "Experiments")

  // One experiment's report (GET /v1/experiments/{name}) as a table of its
  // variants; `listed` is its entry in GET /v1/experiments, `r` the report
  // or null when nothing was recorded yet (404 unknown_experiment).
  function experimentBlock(listed, r) {
    var name = listed.name;
    var block = h("section", { "class": "experiment", "data-experiment": name },
                  h("h3", { text: name }));
    if (!r) {
      add(block, h("p", { "class": "note no-report", text: t("exp_no_report") }));
      return block;
    }
    var srm = r.srm_p_value;
    add(block, h("p", { "class": "srm", "data-value": srm === null ? "" : srm },
                  t("exp_srm", { p: pval(srm) })));
    if (srm !== null && srm !== undefined && srm < SRM_ALERT)
      add(block, h("p", { "class": "error srm-warning", role: "alert", text: t("exp_srm_warning") }));
    var heads = [t("variant"), { text: t("customers"), num: 1 }, { text: t("exposed"), num: 1 },
                 { text: t("exp_impressions"), num: 1 }, { text: t("exp_clicks"), num: 1 },
                 { text: t("ctr"), num: 1 }, { text: t("exp_orders"), num: 1 },
                 { text: t("revenue"), num: 1 }, { text: t("conversion"), num: 1 },
                 { text: t("exp_lift"), num: 1 }, { text: t("exp_interval"), num: 1 },
                 { text: t("exp_p_value"), num: 1 }];
    var rows = (r.variants || []).map(function (v) {
      var lift = v.lift && v.lift.conversion;
      var control = v.name === r.control;
      return h("tr", { "data-variant": v.name },
               h("th", { scope: "row" }, v.name,
                 control && v.name !== "control"
                   ? h("span", { "class": "note", text: " (" + t("exp_control") + ")" }) : null),
               td(num(v.customers), v.customers, "num customers"),
               td(num(v.exposed), v.exposed, "num exposed"),
               td(num(v.impressions), v.impressions, "num impressions"),
               td(num(v.clicks), v.clicks, "num clicks"),
               td(pct(v.ctr, 2), v.ctr, "num ctr"),
               td(num(v.orders), v.orders, "num orders"),
               td(money(v.revenue), v.revenue, "num revenue"),
               td(pct(v.conversion, 2), v.conversion, "num conversion"),
               td(lift ? signedPct(lift.estimate) : "–", lift ? lift.estimate : "", "num lift"),
               td(lift && lift.low !== null && lift.high !== null
                    ? "[" + signedPct(lift.low) + ", " + signedPct(lift.high) + "]" : "–",
                  lift && lift.low !== null ? lift.low + "," + lift.high : "", "num interval"),
               td(lift ? pval(lift.p_value) : "–", lift && lift.p_value !== null ? lift.p_value : "",
                  "num p-value"));
    });
    add(block, table(null, heads, rows, name));
    add(block, h("p", { "class": "note", text: t("exp_lift_note") }));
    return block;
  }

  function showExperiments() {
    var out = $("experiments");
    var off = function () {
      fill(out, h("p", { id: "experiments-off", "class": "note", text: t("experiments_off") }));
      out.setAttribute("data-loaded", "1");
    };
    // The list names the experiments; each one's figures are its report.
    return get("../v1/experiments").then(function (x) {
      var list = x.experiments || [];
      if (!list.length) return off();
      return Promise.all(list.map(function (e) {
        return get("../v1/experiments/" + enc(e.name)).then(null, function (err) {
          if (err.status === 404) return null; // nothing served under it yet
          throw err;
        });
      })).then(function (reports) {
        fill(out, list.map(function (e, i) { return experimentBlock(e, reports[i]); }));
        out.setAttribute("data-loaded", "1");
      });
    }).then(null, function (e) {
      if (e.status === 404) return off();
      failed(out)(e);
    });
  }

  // ---- view 5: the model and its items ---------------------------------------------------

  function age(seconds) {
    if (seconds >= 2 * 86400) return t("age_days", { n: num(seconds / 86400, 1) });
    if (seconds >= 3600) return t("age_hours", { n: num(seconds / 3600, 1) });
    return t("age_minutes", { n: num(Math.floor(seconds / 60)) });
  }

  function flat(obj, prefix, out) {
    Object.keys(obj).forEach(function (k) {
      var v = obj[k];
      if (v && typeof v === "object" && !Array.isArray(v)) flat(v, prefix + k + ".", out);
      else out.push([prefix + k, Array.isArray(v) ? v.join(", ") : String(v)]);
    });
    return out;
  }

  function showModel() {
    var out = $("model");
    modelInfo = null; // its age moves on
    return loadModel().then(function (m) {
      var meta = m.meta;
      var params = flat(meta.parameters || {}, "", []);
      fill(out,
           dl([[t("model_id"), m.model, "model", m.model],
               [t("algorithm"), meta.algorithm, "algorithm", meta.algorithm],
               [t("as_of"), when(meta.as_of), "as_of", meta.as_of],
               [t("created"), when(meta.created), "created", meta.created],
               [t("age"), age(m.age_seconds), "age_seconds", m.age_seconds],
               [t("customers"), num(meta.customers), "customers", meta.customers],
               [t("items"), num(meta.items), "items", meta.items],
               [t("interactions"), num(meta.interactions), "interactions", meta.interactions],
               [t("rows_read"), num(meta.rows_read), "rows_read", meta.rows_read],
               [t("rows_skipped"), num(meta.rows_skipped), "rows_skipped", meta.rows_skipped],
               [t("categories"), num(meta.categories), "categories", meta.categories]]),
           h("h3", { text: t("parameters") }),
           table(null, [t("parameter"), t("value")], params.map(function (p) {
             return h("tr", { "data-param": p[0] }, h("th", { scope: "row", text: p[0] }), h("td", { text: p[1] }));
           }), t("parameters")),
           meta.tuning ? [h("h3", { text: t("tuning") }),
                          table(null, [t("parameter"), t("value")], flat(meta.tuning, "", []).map(function (p) {
                            return h("tr", null, h("th", { scope: "row", text: p[0] }), h("td", { text: p[1] }));
                          }), t("tuning"))] : null);
      out.setAttribute("data-loaded", "1");
    }, failed(out));
  }

  function searchItems(q) {
    var out = $("items");
    fill($("neighbours"));
    return get("../v1/items?limit=20&q=" + enc(q)).then(function (r) {
      if (!r.items.length) { fill(out, h("p", { id: "no-items", text: t("no_items") })); return; }
      fill(out, h("ul", { "class": "item-list", id: "item-results" }, r.items.map(function (it) {
        return h("li", null, h("button", { type: "button", "class": "link", "data-item": it.item_id,
                                           on: { click: function () { showNeighbours(it); } } },
                               h("code", { text: it.item_id }), " ", it.title || ""),
                 " ", h("span", { "class": "note", text: t("popularity") + " " + num(it.popularity) }));
      })));
      out.setAttribute("data-loaded", "1");
    }, failed(out));
  }

  function showNeighbours(it) {
    var out = $("neighbours");
    return get("../v1/items/" + enc(it.item_id) + "/similar?n=10").then(function (r) {
      fill(out, h("h3", { tabindex: -1, id: "neighbours-title", text: t("neighbours", { item: it.title || it.item_id }) }),
           table(null, [t("item"), t("title_col"), { text: t("score"), num: 1 }], r.items.map(function (n) {
             return h("tr", { "data-item": n.item_id }, h("td", null, h("code", { text: n.item_id })),
                      h("td", { text: n.title || "" }), td(num(n.score, 4), n.score));
           }), t("neighbours", { item: it.item_id })));
      out.setAttribute("data-item", it.item_id);
      $("neighbours-title").focus();
    }, failed(out));
  }

  // ---- routing and language ------------------------------------------------------------

  function applyLabels() {
    document.documentElement.lang = lang;
    document.title = t("title");
    Array.prototype.forEach.call(document.querySelectorAll("[data-t]"), function (el) {
      el.textContent = t(el.getAttribute("data-t"));
    });
    Array.prototype.forEach.call(document.querySelectorAll("[data-t-aria]"), function (el) {
      el.setAttribute("aria-label", t(el.getAttribute("data-t-aria")));
    });
    $("lang").value = lang;
    fillAudienceSelect();
  }

  function route() {
    var parts = (location.hash || "#/overview").replace(/^#\/?/, "").split("/");
    var name = parts[0] || "overview";
    var arg = parts.length > 1 ? decodeURIComponent(parts.slice(1).join("/")) : "";
    if (!$("view-" + name)) name = "overview";
    current = { name: name, arg: arg };
    Array.prototype.forEach.call(document.querySelectorAll(".view"), function (v) {
      v.hidden = v.id !== "view-" + name;
    });
    Array.prototype.forEach.call(document.querySelectorAll("#nav a"), function (a) {
      if (a.getAttribute("data-view") === name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    status("");
    if (name === "overview") return showOverview();
    if (name === "audiences") return showAudience(arg || "dormant", null, []);
    if (name === "customer") {
      if (arg) return showCustomer(arg);
      fill($("customer"));
      return null;
    }
    if (name === "experiments") return showExperiments();
    if (name === "model") return showModel();
  }

  function setLang(l) {
    lang = LABELS[l] ? l : "en";
    try { localStorage.setItem(LANG_STORE, lang); } catch (e) { /* storage off */ }
    applyLabels();
  }

  function start() {
    var fromUrl = new URLSearchParams(location.search).get("lang");
    var kept = null;
    try { kept = localStorage.getItem(LANG_STORE); } catch (e) { /* storage off */ }
    setLang(fromUrl || kept || ((navigator.language || "").indexOf("ja") === 0 ? "ja" : "en"));

    $("lang").addEventListener("change", function () {
      setLang($("lang").value);
      var u = new URL(location.href);
      u.searchParams.set("lang", lang);
      history.replaceState(null, "", u.toString());
      route();
    });
    $("audience-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var name = $("audience-name").value;
      if (location.hash === "#/audiences/" + name) showAudience(name, null, []);
      else location.hash = "#/audiences/" + name;
    });
    $("lookup-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var id = $("lookup-id").value.trim();
      if (!id) return;
      if (location.hash === "#/customer/" + enc(id)) showCustomer(id);
      else location.hash = "#/customer/" + enc(id);
    });
    $("item-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      searchItems($("item-q").value.trim());
    });
    $("key-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var k = $("key-input").value.trim();
      if (!k) return;
      sessionStorage.setItem(KEY_STORE, k);
      keyDone(true);
    });
    $("key-cancel").addEventListener("click", function () { keyDone(false); });
    $("key-dialog").addEventListener("cancel", function (ev) { ev.preventDefault(); keyDone(false); });
    $("erase-form").addEventListener("submit", eraseConfirmed);
    $("erase-cancel").addEventListener("click", function () { $("erase-dialog").close(); });
    window.addEventListener("hashchange", route);
    route();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
