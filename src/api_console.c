/*
 * api_console: the console's page and the public routes it was missing
 * (docs/console.md, docs/api.md):
 *
 *   GET /console, /console/{asset}       the embedded files (console.c)
 *   GET /v1/model                        the model's meta record and age
 *   GET /v1/items?q=&limit=              items whose id or title holds q
 *   GET /v1/segments/transitions         segments then and now, revenue,
 *                                        the last 24 hours
 *   GET /v1/customers/{customer}/events  one customer's timeline, paged
 *
 * Nothing here is on a storefront's hot path: these answer one person at a
 * screen, so they may allocate (the timeline sorts) and walk every
 * customer (transitions, like GET /v1/segments).
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "audience.h"
#include "console.h"
#include "ingest.h" /* enum event_type */
#include "rfm.h"
#include "util.h"

#define TIMELINE_DEFAULT_LIMIT 50u
#define TIMELINE_MAX_LIMIT 500u
#define ITEMS_DEFAULT_LIMIT 20u
#define ITEMS_MAX_LIMIT 200u
#define DAY_SECONDS 86400

/* ---- the console's files ------------------------------------------------- */

void api_get_console(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	const char *inm = http_header(req, "If-None-Match");
	if (req->n_segs == 1) {
		/* "/console" and "/console/" split alike; only the raw path
		 * tells them apart. */
		size_t n = strlen(req->url);
		if (n == 0 || req->url[n - 1] != '/')
			console_redirect(resp);
		else
			console_answer("index.html", 10, inm, resp);
		return;
	}
	console_answer(req->segs[1], req->seg_lens[1], inm, resp);
}

/* ---- the model ------------------------------------------------------------ */

void api_get_model(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	const model_info *info = model_get_info(w->m);
	strbuf *sb = resp->body;
	sb_addc(sb, '{');
	api_add_model_field(sb, w->m);
	sb_adds(sb, ",\"now\":");
	api_add_time(sb, model_now(w->m));
	sb_adds(sb, ",\"age_seconds\":");
	double age = util_now() - (double)info->created;
	sb_add_i64(sb, age > 0 ? (int64_t)age : 0);
	sb_adds(sb, ",\"meta\":");
	sb_adds(sb, info->meta_json); /* JSON written by train, checked at model_open */
	sb_addc(sb, '}');
}

/* ---- item search ------------------------------------------------------------ */

static unsigned char ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* Whether hay[0..n) holds needle[0..k) (k > 0, needle already lower-case),
 * ASCII letters compared without case. */
static bool holds(const char *hay, size_t n, const char *needle, size_t k)
{
	for (size_t i = 0; i + k <= n; i++) {
		size_t j = 0;
		while (j < k && ascii_lower((unsigned char)hay[i + j]) == (unsigned char)needle[j])
			j++;
		if (j == k)
			return true;
	}
	return false;
}

void api_get_items(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	uint32_t limit = ITEMS_DEFAULT_LIMIT;
	if (api_param_uint(w, req, resp, "limit", 1, ITEMS_MAX_LIMIT, &limit) != 0)
		return;
	const char *q = NULL;
	size_t qlen = 0;
	int rc = http_query(req, "q", w->qbuf, sizeof(w->qbuf), &q, &qlen);
	if (rc < 0 || (rc == 1 && (qlen > ID_MAX_LEN || !utf8_valid(q, qlen)))) {
		/* q goes back in the answer: JSON needs it valid UTF-8 */
		http_error(resp, 400, "invalid_parameter", "q must be UTF-8 of at most %u bytes",
			   ID_MAX_LEN);
		return;
	}
	char needle[ID_MAX_LEN];
	for (size_t i = 0; i < qlen; i++)
		needle[i] = (char)ascii_lower((unsigned char)q[i]);

	const model *m = w->m;
	const unsigned char *popular = model_popular(m);
	uint32_t n_items = model_get_info(m)->n_items, found = 0;
	bool more = false;
	strbuf *sb = resp->body;
	sb_addc(sb, '{');
	api_add_model_field(sb, m);
	sb_adds(sb, ",\"q\":");
	sb_add_json_str(sb, qlen ? q : "", qlen);
	sb_adds(sb, ",\"items\":[");
	/* Most popular first: what a person searching most likely means. */
	for (uint32_t i = 0; i < n_items; i++) {
		uint32_t idx = model_pair_at(popular, i).item;
		size_t id_len, title_len;
		const char *id = model_item_id(m, idx, &id_len);
		const char *title = model_item_title(m, idx, &title_len);
		if (qlen && !holds(id, id_len, needle, qlen) && !holds(title, title_len, needle, qlen))
			continue;
		if (found == limit) {
			more = true;
			break;
		}
		if (found++)
			sb_addc(sb, ',');
		sb_adds(sb, "{\"item_id\":");
		sb_add_json_str(sb, id, id_len);
		if (title_len) {
			sb_adds(sb, ",\"title\":");
			sb_add_json_str(sb, title, title_len);
		}
		float price = model_item_price(m, idx);
		if (price >= 0) {
			sb_adds(sb, ",\"price\":");
			sb_add_double(sb, price, 8);
		}
		sb_adds(sb, ",\"popularity\":");
		sb_add_double(sb, model_item_popularity(m, idx), 8);
		sb_addc(sb, '}');
	}
	sb_adds(sb, "],\"more\":");
	sb_adds(sb, more ? "true}" : "false}");
}

/* ---- segment transitions -------------------------------------------------- */

/* What GET /v1/segments/transitions adds up. from == SEG_COUNT: the
 * customer was not in the model (new since training). */
struct moves {
	uint64_t customers;
	uint64_t flow[SEG_COUNT + 1][SEG_COUNT]; /* [from][to] */
	uint64_t per_segment[SEG_COUNT];
	double revenue[SEG_COUNT];
	uint64_t active_24h, events_24h;
};

/* Counts one customer: `c` their model record (NULL: none), `ev` their
 * events (count 0: none). */
static void count_customer(const model *m, const model_customer *c, const state_events *ev,
			   int64_t now, struct moves *mv)
{
	const int64_t as_of = model_get_info(m)->as_of;
	customer_live live;
	int from = SEG_COUNT;
	if (c) {
		customer_live_figures(m, c, NULL, &live);
		from = customer_live_segment(m, &live, as_of, NULL);
	}
	customer_live_figures(m, c, ev->count ? ev : NULL, &live);
	enum segment to = customer_live_segment(m, &live, now, NULL);
	mv->customers++;
	mv->flow[from][to]++;
	mv->per_segment[to]++;
	mv->revenue[to] += live.figs.monetary;
	if (ev->count == 0)
		return;
	uint64_t recent = 0;
	size_t pos = 0;
	event_view e;
	while (state_events_next(ev, &pos, &e) == 0)
		recent += e.ts > now - DAY_SECONDS; /* a clock a second ahead counts too */
	mv->events_24h += recent;
	mv->active_24h += recent > 0;
}

static bool erased(struct worker *w, const char *id, size_t len)
{
	uint32_t flags;
	return state_customer_flags(w->stxn, id, len, &flags) == 0 && (flags & STATE_ERASED);
}

/* The same customers GET /v1/segments counts, walked the same way: the
 * model's, then those only the live events know. */
static int walk_moves(struct worker *w, int64_t now, struct moves *mv)
{
	model_iter *it = NULL;
	state_iter *sit = NULL;
	const char *id;
	size_t len;
	model_customer c;
	state_events ev;
	int rc;
	if (model_iter_begin(w->txn, NULL, 0, &it) != 0)
		return STORE_ERROR;
	while ((rc = model_iter_next(it, &id, &len, &c)) == 0) {
		if (erased(w, id, len))
			continue;
		if (state_events_get(w->stxn, id, len, &ev) != 0)
			ev.count = 0;
		count_customer(w->m, &c, &ev, now, mv);
	}
	model_iter_end(it);
	if (rc != STORE_NOTFOUND)
		return rc;
	if (state_iter_begin(w->stxn, NULL, 0, &sit) != 0)
		return STORE_ERROR;
	while ((rc = state_iter_next(sit, &id, &len, &ev)) == 0) {
		if (ev.count == 0 || model_customer_get(w->txn, id, len, &c) != STORE_NOTFOUND ||
		    erased(w, id, len))
			continue;
		count_customer(w->m, NULL, &ev, now, mv);
	}
	state_iter_end(sit);
	return rc == STORE_NOTFOUND ? 0 : rc;
}

void api_get_segment_transitions(api *a, struct worker *w, const http_request *req,
				 http_response *resp)
{
	assert(w->in_txn);
	struct moves *mv = xcalloc(1, sizeof(*mv));
	int64_t now = model_now(w->m);
	int rc = walk_moves(w, now, mv);
	if (rc != 0) {
		free(mv);
		api_storage_error(resp, rc);
		return;
	}
	strbuf *sb = resp->body;
	sb_addc(sb, '{');
	api_add_model_field(sb, w->m);
	sb_adds(sb, ",\"at\":");
	api_add_time(sb, now);
	sb_adds(sb, ",\"since\":");
	api_add_time(sb, model_get_info(w->m)->as_of);
	sb_adds(sb, ",\"customers\":");
	sb_add_u64(sb, mv->customers);
	sb_adds(sb, ",\"segments\":{");
	for (int s = 0; s < SEG_COUNT; s++) {
		sb_adds(sb, s ? "," : "");
		api_add_str(sb, segment_name(s));
		sb_adds(sb, ":{\"customers\":");
		sb_add_u64(sb, mv->per_segment[s]);
		sb_adds(sb, ",\"revenue\":");
		sb_add_double(sb, mv->revenue[s], 10);
		sb_addc(sb, '}');
	}
	sb_adds(sb, "},\"transitions\":[");
	uint64_t moved = 0;
	bool first = true;
	for (int f = 0; f <= SEG_COUNT; f++) {
		for (int t = 0; t < SEG_COUNT; t++) {
			if (!mv->flow[f][t])
				continue;
			if (f != t)
				moved += mv->flow[f][t];
			sb_adds(sb, first ? "{\"from\":" : ",{\"from\":");
			first = false;
			if (f == SEG_COUNT)
				sb_adds(sb, "null");
			else
				api_add_str(sb, segment_name(f));
			sb_adds(sb, ",\"to\":");
			api_add_str(sb, segment_name(t));
			sb_adds(sb, ",\"customers\":");
			sb_add_u64(sb, mv->flow[f][t]);
			sb_addc(sb, '}');
		}
	}
	sb_adds(sb, "],\"moved\":");
	sb_add_u64(sb, moved);
	sb_adds(sb, ",\"last_24h\":{\"active_customers\":");
	sb_add_u64(sb, mv->active_24h);
	sb_adds(sb, ",\"events\":");
	sb_add_u64(sb, mv->events_24h);
	sb_adds(sb, "}}");
	free(mv);
}

/* ---- a customer's timeline --------------------------------------------------- */

enum { FROM_MODEL = 0, FROM_LIVE = 1 };

/* One entry of the timeline: where it is (a model history index or a byte
 * offset in the event log) and the key it is ordered by. */
struct moment {
	int64_t ts;
	uint32_t source; /* FROM_* */
	uint32_t where;
};

/* Newest first; at the same second live before model, later before
 * earlier: a total order, so a cursor (the last key sent) pages it. */
static bool moment_before(const struct moment *x, const struct moment *y)
{
	if (x->ts != y->ts)
		return x->ts > y->ts;
	if (x->source != y->source)
		return x->source > y->source;
	return x->where > y->where;
}

static int moment_cmp(const void *a, const void *b)
{
	const struct moment *x = a, *y = b;
	return moment_before(x, y) ? -1 : moment_before(y, x) ? 1 : 0;
}

/* "TS.SOURCE.WHERE", decimal: opaque to clients. */
static void add_moment_cursor(strbuf *sb, const struct moment *m)
{
	sb_addf(sb, "\"%" PRId64 ".%u.%u\"", m->ts, m->source, m->where);
}

static int parse_moment_cursor(const char *s, size_t n, struct moment *out)
{
	char buf[64];
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	long long ts;
	unsigned source, where;
	int used = 0;
	if (sscanf(buf, "%lld.%u.%u%n", &ts, &source, &where, &used) != 3 || (size_t)used != n ||
	    source > FROM_LIVE || !(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9')))
		return -1;
	out->ts = ts;
	out->source = source;
	out->where = where;
	return 0;
}

static const char *const live_event_names[] = { "view", "cart", "purchase", "remove_from_cart" };
_Static_assert(EVENT_VIEW == 0 && EVENT_CART == 1 && EVENT_PURCHASE == 2 &&
		       EVENT_REMOVE_FROM_CART == 3,
	       "live_event_names follows the event type numbers");

static void add_item_fields(strbuf *sb, struct worker *w, const char *id, size_t len)
{
	sb_adds(sb, ",\"item_id\":");
	sb_add_json_str(sb, id, len);
	uint32_t idx;
	size_t tlen;
	if (model_item_lookup(w->txn, id, len, &idx) == 0) {
		const char *title = model_item_title(w->m, idx, &tlen);
		if (tlen) {
			sb_adds(sb, ",\"title\":");
			sb_add_json_str(sb, title, tlen);
		}
	}
}

static void add_moment(strbuf *sb, struct worker *w, const struct moment *mo,
		       const model_customer *c, const state_events *ev)
{
	if (mo->source == FROM_MODEL) {
		history_entry h = model_history_at(c, mo->where);
		size_t len;
		const char *id = model_item_id(w->m, h.item, &len);
		sb_adds(sb, "{\"source\":\"model\",\"event\":");
		api_add_str(sb, h.flags & HIST_PURCHASED  ? "purchase"
				: h.flags & HIST_RETURNED ? "return"
							  : "interaction");
		sb_adds(sb, ",\"timestamp\":");
		api_add_time(sb, h.last_ts);
		add_item_fields(sb, w, id, len);
		sb_adds(sb, ",\"quantity\":");
		sb_add_double(sb, h.quantity, 8);
		sb_addc(sb, '}');
		return;
	}
	size_t pos = mo->where;
	event_view e;
	if (state_events_next(ev, &pos, &e) != 0)
		return; /* cannot happen: the offset came from the same walk */
	sb_adds(sb, "{\"source\":\"live\",\"event\":");
	api_add_str(sb, e.type < ARRAY_SIZE(live_event_names) ? live_event_names[e.type] : "other");
	sb_adds(sb, ",\"timestamp\":");
	api_add_time(sb, e.ts);
	add_item_fields(sb, w, e.item, e.item_len);
	sb_adds(sb, ",\"quantity\":");
	sb_add_double(sb, e.quantity, 8);
	if (e.price > 0) {
		sb_adds(sb, ",\"price\":");
		sb_add_double(sb, e.price, 8);
	}
	sb_addc(sb, '}');
}

void api_get_customer_events(api *a, struct worker *w, const http_request *req,
			     http_response *resp)
{
	const char *id, *v;
	size_t len, vlen;
	uint32_t limit = TIMELINE_DEFAULT_LIMIT, flags = 0;
	struct moment after = { 0, 0, 0 };
	model_customer c;
	state_events ev;
	bool known;
	memset(&c, 0, sizeof(c));

	if (api_path_id(req, 2, "customer", resp, &id, &len) != 0 ||
	    api_param_uint(w, req, resp, "limit", 1, TIMELINE_MAX_LIMIT, &limit) != 0)
		return;
	int rc = http_query(req, "cursor", w->qbuf, sizeof(w->qbuf), &v, &vlen);
	if (rc < 0 || (rc == 1 && parse_moment_cursor(v, vlen, &after) != 0)) {
		http_error(resp, 400, "invalid_parameter", "cursor is not one this server gave out");
		return;
	}
	bool have_cursor = rc == 1;
	if ((rc = state_customer_flags(w->stxn, id, len, &flags)) != 0) {
		api_storage_error(resp, rc);
		return;
	}
	rc = flags & STATE_ERASED ? STORE_NOTFOUND : model_customer_get(w->txn, id, len, &c);
	if (rc != 0 && rc != STORE_NOTFOUND) {
		api_storage_error(resp, rc);
		return;
	}
	known = rc == 0;
	ev.count = 0;
	if (!(flags & STATE_ERASED) && (rc = state_events_get(w->stxn, id, len, &ev)) != 0) {
		api_storage_error(resp, rc);
		return;
	}
	if (!known && ev.count == 0) {
		http_error(resp, 404, "unknown_customer", "customer %.*s is not known", (int)len, id);
		return;
	}

	uint32_t n_hist = known ? c.n_hist : 0, n = 0;
	struct moment *all = xmallocarray((size_t)n_hist + ev.count + 1, sizeof(*all));
	for (uint32_t i = 0; i < n_hist; i++)
		all[n++] = (struct moment){ model_history_at(&c, i).last_ts, FROM_MODEL, i };
	size_t pos = 0, at = 0;
	event_view e;
	while (n < n_hist + ev.count && state_events_next(&ev, &pos, &e) == 0) {
		all[n++] = (struct moment){ e.ts, FROM_LIVE, (uint32_t)at };
		at = pos;
	}
	qsort(all, n, sizeof(*all), moment_cmp);

	uint32_t first = 0;
	while (have_cursor && first < n && !moment_before(&after, &all[first]))
		first++;
	uint32_t end = n - first > limit ? first + limit : n;
	strbuf *sb = resp->body;
	sb_adds(sb, "{\"customer_id\":");
	sb_add_json_str(sb, id, len);
	sb_addc(sb, ',');
	api_add_model_field(sb, w->m);
	sb_adds(sb, ",\"total\":");
	sb_add_u64(sb, n);
	sb_adds(sb, ",\"events\":[");
	for (uint32_t i = first; i < end; i++) {
		if (i > first)
			sb_addc(sb, ',');
		add_moment(sb, w, &all[i], &c, &ev);
	}
	sb_adds(sb, "],\"next_cursor\":");
	if (end < n)
		add_moment_cursor(sb, &all[end - 1]);
	else
		sb_adds(sb, "null");
	sb_addc(sb, '}');
	free(all);
}
