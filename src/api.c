/*
 * api: routes and handlers of HTTP API v1.
 *
 * Each handler checks its input, reads the model and state through the
 * calling thread's worker, and writes JSON straight into the response
 * buffer. Request bodies are parsed with jansson; answers are written by
 * hand, which keeps the hot path free of allocation.
 */
#include "api.h"

#include <jansson.h>
#include <stdatomic.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "audience.h"
#include "auth.h"
#include "events.h"
#include "ids.h"
#include "recommend.h"
#include "rfm.h"
#include "timefmt.h"
#include "util.h"

#define API_DEFAULT_N 10u
#define API_MAX_BASKET 100u      /* items in a POST /v1/recommendations */
#define API_MAX_EXCLUDE 100u     /* ids in exclude= */
#define API_DEFAULT_PAGE 100u    /* customers per audience page */
#define API_MAX_PAGE 1000u
#define API_SEGMENTS_TTL 60.0    /* seconds GET /v1/segments is cached */
#define API_MAX_EVENTS 1000u     /* events in one POST /v1/events */

/* A loaded model and the workers using it. The api holds one reference
 * for as long as the model is current; each worker holds one while it has
 * a transaction on it. The last release closes the model: an old model is
 * unmapped once every worker has moved on to the new one. */
struct model_ref {
	model *m;
	atomic_uint refs;
};

/* Status codes counted in /metrics; the last slot takes the rest. */
static const int metric_statuses[] = { 200, 400, 401, 403, 404, 405, 413, 414, 429, 500, 503, 0 };
#define N_STATUS (sizeof(metric_statuses) / sizeof(metric_statuses[0]))
/* Latency histogram bounds, seconds. */
static const double metric_buckets[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
					  0.005,  0.01,    0.025,  0.1,   1.0 };
#define N_BUCKETS (sizeof(metric_buckets) / sizeof(metric_buckets[0]))
#define N_ROUTES 14 /* routes[] plus "unmatched" */

/* Per worker, written only by its thread; /metrics sums them (relaxed
 * reads of counters that only grow). */
struct worker_metrics {
	atomic_ulong requests[N_ROUTES][N_STATUS];
	atomic_ulong latency[N_BUCKETS + 1]; /* last: over the top bound */
	atomic_ulong latency_sum_us;
	atomic_ulong events_accepted, events_rejected;
};

struct api {
	_Atomic(struct model_ref *) current;
	state *state;
	events_writer *events;
	char *model_dir;
	/* Serialises reloads and the taking of references to `current`. */
	pthread_mutex_t ref_lock;
	atomic_ulong reloads, reload_failures;
	double started;
	/* Workers, for /metrics; appended once per thread. */
	pthread_mutex_t workers_lock;
	struct worker *workers;
	/* GET /v1/segments walks every customer: cache the answer briefly. */
	pthread_mutex_t segments_lock;
	strbuf segments_body;
	double segments_at;
	char segments_model[64]; /* model_id the cache was computed on */
	rec_params params; /* scoring, see rec_params */
	const auth *keys;  /* NULL: no authentication */
	bool auth_reads;   /* read routes need a key too */
	/* libmicrohttpd's open connections, for /metrics. */
	unsigned (*connections)(void *arg);
	void *connections_arg;
};

/* Per pool thread (see api.h). */
struct worker {
	struct model_ref *ref; /* the model this worker's transactions are on */
	model *m;
	model_txn *txn;
	state_txn *stxn;
	rec_ctx *rec;
	size_t route; /* index in routes[] of the request being served */
	struct worker_metrics metrics;
	struct worker *next;
	rec_result result;
	uint32_t exclude[API_MAX_EXCLUDE + API_MAX_BASKET];
	uint32_t basket[API_MAX_BASKET];
	event_in events[API_MAX_EVENTS];
	char numeric_ids[API_MAX_EVENTS][2][24]; /* ids sent as JSON numbers */
	char qbuf[512];            /* small decoded query values */
	char xbuf[API_MAX_EXCLUDE * (ID_MAX_LEN + 1) * 3]; /* exclude= */
};

static void record(struct worker *w, size_t route, int status, double secs);

static struct model_ref *ref_new(model *m)
{
	struct model_ref *r = xcalloc(1, sizeof(*r));
	r->m = m;
	atomic_init(&r->refs, 1);
	return r;
}

static void ref_release(struct model_ref *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
		model_close(r->m);
		free(r);
	}
}

api *api_create(model *m, state *st, events_writer *ew, const char *model_dir)
{
	api *a = xcalloc(1, sizeof(*a));
	atomic_init(&a->current, ref_new(m));
	a->state = st;
	a->events = ew;
	a->model_dir = xstrdup(model_dir);
	rec_params_unset(&a->params); /* each model's own knobs */
	a->started = util_now();
	pthread_mutex_init(&a->ref_lock, NULL);
	pthread_mutex_init(&a->workers_lock, NULL);
	pthread_mutex_init(&a->segments_lock, NULL);
	return a;
}

void api_set_params(api *a, const rec_params *p)
{
	a->params = *p;
}

void api_set_auth(api *a, const auth *keys, bool reads)
{
	a->keys = keys;
	a->auth_reads = reads;
}

void api_set_connections(api *a, unsigned (*fn)(void *arg), void *arg)
{
	a->connections = fn;
	a->connections_arg = arg;
}

void api_free(api *a)
{
	if (!a)
		return;
	ref_release(atomic_load(&a->current));
	pthread_mutex_destroy(&a->ref_lock);
	pthread_mutex_destroy(&a->workers_lock);
	pthread_mutex_destroy(&a->segments_lock);
	sb_release(&a->segments_body);
	free(a->model_dir);
	free(a);
}

/* Drops the worker's transactions and its model reference. */
static void worker_detach(struct worker *w)
{
	model_txn_free(w->txn);
	rec_ctx_free(w->rec);
	ref_release(w->ref);
	w->txn = NULL;
	w->rec = NULL;
	w->ref = NULL;
	w->m = NULL;
}

void api_thread_free(void *app, void *thread_data)
{
	struct worker *w = thread_data;
	(void)app;
	worker_detach(w);
	state_txn_free(w->stxn);
	free(w); /* after http_stop: nobody reads its metrics any more */
}

/* The thread's worker, created on its first request and moved to the
 * current model when a reload has happened; NULL (and a 503 in resp) if a
 * transaction cannot be opened. The common case is one atomic load. */
static struct worker *worker_sync(api *a, const http_request *req, http_response *resp)
{
	struct worker *w = *req->thread_data;
	if (w && w->ref == atomic_load_explicit(&a->current, memory_order_acquire))
		return w;
	if (!w) {
		w = xcalloc(1, sizeof(*w));
		if (state_txn_begin(a->state, &w->stxn) != 0) {
			free(w);
			http_error(resp, 503, "unavailable", "cannot open a state transaction");
			return NULL;
		}
		state_txn_reset(w->stxn);
		pthread_mutex_lock(&a->workers_lock);
		w->next = a->workers;
		a->workers = w;
		pthread_mutex_unlock(&a->workers_lock);
		*req->thread_data = w;
	}
	worker_detach(w);
	pthread_mutex_lock(&a->ref_lock);
	struct model_ref *r = atomic_load(&a->current);
	atomic_fetch_add(&r->refs, 1); /* current holds one: never 0 here */
	pthread_mutex_unlock(&a->ref_lock);
	w->ref = r;
	w->m = r->m;
	if (model_txn_begin(w->m, &w->txn) != 0) {
		worker_detach(w);
		http_error(resp, 503, "unavailable", "cannot open a model transaction");
		return NULL;
	}
	model_txn_reset(w->txn);
	w->rec = rec_ctx_create(model_get_info(w->m)->n_items);
	rec_params p; /* the flags given, else what the model's tuning chose */
	rec_params_for_model(&p, &a->params, model_get_info(w->m));
	rec_ctx_configure(w->rec, &p);
	return w;
}

int api_reload(api *a, strbuf *err)
{
	model *m = NULL;
	/* Opening validates the whole model; the current one stays on any
	 * failure. */
	if (model_open(a->model_dir, &m, err) != 0) {
		atomic_fetch_add(&a->reload_failures, 1);
		return -1;
	}
	struct model_ref *fresh = ref_new(m);
	pthread_mutex_lock(&a->ref_lock);
	struct model_ref *old = atomic_load(&a->current);
	atomic_store_explicit(&a->current, fresh, memory_order_release);
	pthread_mutex_unlock(&a->ref_lock);
	ref_release(old); /* closed when its last worker moves on */
	atomic_fetch_add(&a->reloads, 1);
	return 0;
}

/* Takes fresh snapshots of model and state for this request. */
static int worker_begin(struct worker *w, http_response *resp)
{
	if (model_txn_renew(w->txn) != 0 || state_txn_renew(w->stxn) != 0) {
		model_txn_reset(w->txn);
		http_error(resp, 503, "unavailable", "cannot read the model or state");
		return -1;
	}
	return 0;
}

static void worker_end(struct worker *w)
{
	model_txn_reset(w->txn);
	state_txn_reset(w->stxn);
}

static void storage_error(http_response *resp, int rc)
{
	http_error(resp, 500, "internal", "model read failed: %s", store_strerror(rc));
}

/* ---- parameters --------------------------------------------------------- */

/* Parses a whole unsigned decimal within [min, max]. */
static bool parse_uint(const char *v, size_t len, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t val = 0;
	if (len == 0 || len > 9)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		val = val * 10 + (uint64_t)(v[i] - '0');
	}
	if (val < min || val > max)
		return false;
	*out = (uint32_t)val;
	return true;
}

/* Reads an integer query parameter into *out (left alone when absent).
 * Answers 400 and returns -1 when it is not an integer in [min, max]. */
static int param_uint(struct worker *w, const http_request *req, http_response *resp,
		      const char *name, uint32_t min, uint32_t max, uint32_t *out)
{
	const char *v;
	size_t len;
	int rc = http_query(req, name, w->qbuf, sizeof(w->qbuf), &v, &len);
	if (rc == 0)
		return 0;
	if (rc < 0 || !parse_uint(v, len, min, max, out)) {
		http_error(resp, 400, "invalid_parameter", "%s must be an integer from %u to %u", name,
			   min, max);
		return -1;
	}
	return 0;
}

/* Reads a boolean query parameter (1/0/true/false). */
static int param_bool(struct worker *w, const http_request *req, http_response *resp,
		      const char *name, bool *out)
{
	const char *v;
	size_t len;
	int rc = http_query(req, name, w->qbuf, sizeof(w->qbuf), &v, &len);
	if (rc == 0)
		return 0;
	if (rc == 1 && ((len == 1 && v[0] == '1') || (len == 4 && memcmp(v, "true", 4) == 0))) {
		*out = true;
		return 0;
	}
	if (rc == 1 && ((len == 1 && v[0] == '0') || (len == 5 && memcmp(v, "false", 5) == 0))) {
		*out = false;
		return 0;
	}
	http_error(resp, 400, "invalid_parameter", "%s must be 1, 0, true or false", name);
	return -1;
}

/* Reads a price bound (a number >= 0). */
static int param_price(struct worker *w, const http_request *req, http_response *resp,
		       const char *name, float *out)
{
	const char *v;
	size_t len;
	int rc = http_query(req, name, w->qbuf, sizeof(w->qbuf), &v, &len);
	if (rc == 0)
		return 0;
	char *end = NULL;
	double d = rc == 1 && len > 0 && len < 32 ? strtod(v, &end) : -1;
	if (rc != 1 || !end || *end || !isfinite(d) || d < 0 || d > 1e9) {
		http_error(resp, 400, "invalid_parameter", "%s must be a number >= 0", name);
		return -1;
	}
	*out = (float)d;
	return 0;
}

/* Checks and normalises an id; answers 400 and returns -1 if unusable. */
static int check_id(const char *what, http_response *resp, const char **id, size_t *len)
{
	if (!utf8_valid(*id, *len)) {
		http_error(resp, 400, "invalid_id", "%s id is not valid UTF-8", what);
		return -1;
	}
	if (*len > ID_MAX_LEN) {
		http_error(resp, 400, "invalid_id", "%s id is longer than %d bytes", what, ID_MAX_LEN);
		return -1;
	}
	if (!id_normalize(id, len)) {
		http_error(resp, 400, "invalid_id", "%s id is empty or holds control characters", what);
		return -1;
	}
	return 0;
}

static int path_id(const http_request *req, unsigned seg, const char *what, http_response *resp,
		   const char **id, size_t *len)
{
	*id = req->segs[seg];
	*len = req->seg_lens[seg];
	return check_id(what, resp, id, len);
}

/* Adds an item id to the filter's exclusions (unknown ids are ignored:
 * the model cannot recommend them anyway). */
static void exclude_id(struct worker *w, rec_filter *f, const char *id, size_t len)
{
	uint32_t idx;
	if (!id_normalize(&id, &len) || f->n_exclude >= ARRAY_SIZE(w->exclude))
		return;
	if (model_item_lookup(w->txn, id, len, &idx) == 0)
		w->exclude[f->n_exclude++] = idx;
}

/* The business rules from the query string: category, exclude, price
 * range, include_purchased, and explain (because lists). Must run inside
 * worker_begin/worker_end (ids are looked up). Returns 0 or -1 (400). */
static int query_filter(api *a, struct worker *w, const http_request *req, http_response *resp,
			rec_filter *f, bool *explain)
{
	const char *v;
	size_t len;
	rec_filter_init(f);
	f->exclude = w->exclude;
	int rc = http_query(req, "category", w->qbuf, sizeof(w->qbuf), &v, &len);
	if (rc < 0) {
		http_error(resp, 400, "invalid_parameter", "category is malformed or too long");
		return -1;
	}
	if (rc == 1 && len > 0 && model_category_lookup(w->m, v, len, &f->category) != 0) {
		http_error(resp, 400, "unknown_category", "category %.*s is not in the catalog",
			   (int)MIN(len, (size_t)128), v);
		return -1;
	}
	rc = http_query(req, "exclude", w->xbuf, sizeof(w->xbuf), &v, &len);
	if (rc < 0) {
		http_error(resp, 400, "invalid_parameter",
			   "exclude is malformed or longer than %u ids", API_MAX_EXCLUDE);
		return -1;
	}
	if (rc == 1) {
		unsigned count = 0;
		const char *p = v, *end = v + len;
		while (p < end) {
			const char *comma = memchr(p, ',', (size_t)(end - p));
			const char *stop = comma ? comma : end;
			if (++count > API_MAX_EXCLUDE) {
				http_error(resp, 400, "invalid_parameter", "exclude holds more than %u ids",
					   API_MAX_EXCLUDE);
				return -1;
			}
			exclude_id(w, f, p, (size_t)(stop - p));
			p = stop + 1;
		}
	}
	if (param_price(w, req, resp, "min_price", &f->min_price) ||
	    param_price(w, req, resp, "max_price", &f->max_price) ||
	    param_bool(w, req, resp, "include_purchased", &f->include_purchased) ||
	    param_bool(w, req, resp, "explain", explain))
		return -1;
	f->because = *explain;
	return 0;
}

/* ---- JSON --------------------------------------------------------------- */

static void add_str(strbuf *sb, const char *s)
{
	sb_add_json_str(sb, s, strlen(s));
}

static void add_item_id(strbuf *sb, const model *m, uint32_t idx)
{
	size_t len;
	const char *id = model_item_id(m, idx, &len);
	sb_add_json_str(sb, id, len);
}

static void add_time(strbuf *sb, int64_t t)
{
	char buf[TIME_FMT_LEN];
	time_format(t, buf);
	add_str(sb, buf);
}

static void write_items(strbuf *sb, const model *m, const rec_result *r, bool because)
{
	sb_adds(sb, "\"items\":[");
	for (uint32_t i = 0; i < r->n; i++) {
		const rec_item *it = &r->items[i];
		size_t tlen;
		const char *title = model_item_title(m, it->item, &tlen);
		if (i)
			sb_addc(sb, ',');
		sb_adds(sb, "{\"item_id\":");
		add_item_id(sb, m, it->item);
		sb_adds(sb, ",\"score\":");
		sb_add_double(sb, it->score, 6);
		if (tlen) {
			sb_adds(sb, ",\"title\":");
			sb_add_json_str(sb, title, tlen);
		}
		if (it->source == REC_POPULAR && r->source == REC_PERSONAL)
			sb_adds(sb, ",\"source\":\"popular\"");
		if (because) {
			sb_adds(sb, ",\"because\":[");
			for (uint8_t b = 0; b < it->n_because; b++) {
				if (b)
					sb_addc(sb, ',');
				add_item_id(sb, m, it->because[b]);
			}
			sb_addc(sb, ']');
		}
		sb_addc(sb, '}');
	}
	sb_addc(sb, ']');
}

static void write_model_field(strbuf *sb, const model *m)
{
	sb_adds(sb, "\"model\":");
	add_str(sb, model_get_info(m)->model_id);
}

/* ---- customers: who they are -------------------------------------------- */

/* What the model and state say about a customer. */
struct who {
	uint32_t flags;       /* STATE_* */
	bool known;           /* in the model (and not erased) */
	bool has_events;      /* live events recorded (and not erased) */
	model_customer cust;
	state_events events;
};

static int lookup_customer(api *a, struct worker *w, const char *id, size_t len, struct who *who)
{
	(void)a;
	memset(who, 0, sizeof(*who));
	if (state_customer_flags(w->stxn, id, len, &who->flags) != 0)
		return STORE_ERROR;
	if (who->flags & STATE_ERASED)
		return 0;
	int rc = model_customer_get(w->txn, id, len, &who->cust);
	if (rc == 0)
		who->known = true;
	else if (rc != STORE_NOTFOUND)
		return rc;
	if ((rc = state_events_get(w->stxn, id, len, &who->events)) != 0)
		return rc;
	who->has_events = who->events.count > 0;
	return 0;
}

static void get_health(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	(void)a;
	(void)req;
	sb_adds(resp->body, "{\"status\":\"ok\"}");
}

static void get_ready(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	(void)req;
	const model_info *info = model_get_info(w->m);
	sb_adds(resp->body, "{\"status\":\"ready\",\"model\":");
	add_str(resp->body, info->model_id);
	sb_adds(resp->body, ",\"algorithm\":");
	add_str(resp->body, info->algorithm);
	sb_adds(resp->body, ",\"as_of\":");
	add_time(resp->body, info->as_of);
	sb_adds(resp->body, ",\"items\":");
	sb_add_u64(resp->body, info->n_items);
	sb_adds(resp->body, ",\"customers\":");
	sb_add_u64(resp->body, info->n_customers);
	if (info->tuning_json) { /* what train chose, and why (tune.h) */
		sb_adds(resp->body, ",\"tuning\":");
		sb_adds(resp->body, info->tuning_json);
	}
	sb_addc(resp->body, '}');
}

static void get_customer(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	const char *id;
	size_t len;
	struct who who;
	if (path_id(req, 2, "customer", resp, &id, &len) != 0 || worker_begin(w, resp) != 0)
		return;
	int rc = lookup_customer(a, w, id, len, &who);
	if (rc) {
		worker_end(w);
		storage_error(resp, rc);
		return;
	}
	if (!who.known && !who.has_events) {
		worker_end(w);
		http_error(resp, 404, "unknown_customer", "customer %.*s is not known", (int)len, id);
		return;
	}
	int64_t now = model_now(w->m);
	customer_live live;
	rfm_scores sc;
	customer_live_compute(w->m, who.known ? &who.cust : NULL, &who.events, now, &live);
	enum segment seg = customer_live_segment(w->m, &live, now, &sc);
	const rfm_figures *fig = &live.figs;
	strbuf *sb = resp->body;
	sb_adds(sb, "{\"customer_id\":");
	sb_add_json_str(sb, id, len);
	sb_addc(sb, ',');
	write_model_field(sb, w->m);
	sb_adds(sb, ",\"segment\":");
	add_str(sb, segment_name(seg));
	sb_adds(sb, ",\"rfm\":");
	if (fig->frequency > 0) {
		sb_adds(sb, "{\"recency_days\":");
		sb_add_double(sb, (double)(now - fig->last_purchase) / 86400.0, 4);
		sb_adds(sb, ",\"frequency\":");
		sb_add_u64(sb, fig->frequency);
		sb_adds(sb, ",\"monetary\":");
		sb_add_double(sb, fig->monetary, 8);
		sb_addf(sb, ",\"r\":%u,\"f\":%u,\"m\":%u}", sc.r, sc.f, sc.m);
		sb_adds(sb, ",\"first_purchase\":");
		add_time(sb, fig->first_purchase);
		sb_adds(sb, ",\"last_purchase\":");
		add_time(sb, fig->last_purchase);
	} else {
		sb_adds(sb, "null,\"first_purchase\":null,\"last_purchase\":null");
	}
	sb_adds(sb, ",\"intent\":");
	sb_add_double(sb, live.intent, 4);
	sb_adds(sb, ",\"history_size\":");
	sb_add_u64(sb, who.known ? who.cust.n_hist : 0);
	sb_adds(sb, ",\"events_since_model\":");
	sb_add_u64(sb, live.events);
	sb_adds(sb, ",\"last_event\":");
	if (live.last_event)
		add_time(sb, live.last_event);
	else
		sb_adds(sb, "null");
	sb_adds(sb, ",\"attributes\":");
	if (who.known && who.cust.attrs_len)
		sb_add(sb, who.cust.attrs, who.cust.attrs_len); /* JSON written by train */
	else
		sb_adds(sb, "{}");
	sb_adds(sb, ",\"consent\":{\"personalization\":");
	sb_adds(sb, who.flags & STATE_NO_PERSONALIZATION ? "false" : "true");
	sb_adds(sb, "}}");
	worker_end(w);
}

static void get_customer_recs(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	const char *id;
	size_t len;
	uint32_t n = API_DEFAULT_N;
	bool explain = true;
	rec_filter f;
	struct who who;

	if (path_id(req, 2, "customer", resp, &id, &len) != 0 ||
	    param_uint(w, req, resp, "n", 1, REC_MAX_N, &n) != 0 || worker_begin(w, resp) != 0)
		return;
	int rc = query_filter(a, w, req, resp, &f, &explain);
	if (rc == 0 && (rc = lookup_customer(a, w, id, len, &who)) != 0)
		storage_error(resp, rc);
	if (rc) {
		worker_end(w);
		return;
	}
	f.personal = (who.known || who.has_events) && !(who.flags & STATE_NO_PERSONALIZATION);
	rc = f.personal ? rec_for_history(w->rec, w->txn, who.known ? &who.cust : NULL, &who.events,
					   n, &f, &w->result) : 0;
	if (!f.personal)
		rec_popular(w->rec, w->m, n, &f, &w->result);
	if (rc) {
		worker_end(w);
		storage_error(resp, rc);
		return;
	}
	strbuf *sb = resp->body;
	sb_adds(sb, "{\"customer_id\":");
	sb_add_json_str(sb, id, len);
	sb_addc(sb, ',');
	write_model_field(sb, w->m);
	if (f.personal) {
		customer_live live;
		int64_t now = model_now(w->m);
		customer_live_figures(w->m, who.known ? &who.cust : NULL, &who.events, &live);
		sb_adds(sb, ",\"segment\":");
		add_str(sb, segment_name(customer_live_segment(w->m, &live, now, NULL)));
	}
	sb_adds(sb, ",\"source\":");
	add_str(sb, rec_source_name(w->result.source));
	sb_addc(sb, ',');
	write_items(sb, w->m, &w->result, explain);
	sb_addc(sb, '}');
	worker_end(w);
}

static void get_item_similar(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	const char *id;
	size_t len;
	uint32_t n = API_DEFAULT_N, idx;
	bool explain = false;
	rec_filter f;

	if (path_id(req, 2, "item", resp, &id, &len) != 0 ||
	    param_uint(w, req, resp, "n", 1, REC_MAX_N, &n) != 0 || worker_begin(w, resp) != 0)
		return;
	if (query_filter(a, w, req, resp, &f, &explain) != 0) {
		worker_end(w);
		return;
	}
	int rc = model_item_lookup(w->txn, id, len, &idx);
	if (rc == 0)
		rc = rec_similar(w->rec, w->txn, idx, n, &f, &w->result);
	worker_end(w);
	if (rc == STORE_NOTFOUND) {
		http_error(resp, 404, "unknown_item", "item %.*s is not in the model", (int)len, id);
		return;
	}
	if (rc) {
		storage_error(resp, rc);
		return;
	}
	strbuf *sb = resp->body;
	sb_adds(sb, "{\"item_id\":");
	sb_add_json_str(sb, id, len);
	sb_addc(sb, ',');
	write_model_field(sb, w->m);
	sb_addc(sb, ',');
	write_items(sb, w->m, &w->result, false);
	sb_addc(sb, '}');
}

/* ---- POST /v1/recommendations -------------------------------------------- */

/* Parses the body as a JSON object. Answers 400 and returns NULL if it is
 * not one. The caller owns the result. */
static json_t *body_object(const http_request *req, http_response *resp)
{
	json_error_t jerr;
	if (!req->body || req->body_len == 0) {
		http_error(resp, 400, "invalid_json", "a JSON object body is required");
		return NULL;
	}
	json_t *root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		http_error(resp, 400, "invalid_json", "body is not valid JSON: %s (at byte %d)",
			   jerr.text, jerr.position);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		http_error(resp, 400, "invalid_json", "body must be a JSON object");
		return NULL;
	}
	return root;
}

/* A JSON string field as an id; answers 400 and returns -1 when it is
 * present but unusable. *id is NULL when absent. */
static int json_id(json_t *obj, const char *key, const char *what, http_response *resp,
		   const char **id, size_t *len)
{
	json_t *v = json_object_get(obj, key);
	*id = NULL;
	*len = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		http_error(resp, 400, "invalid_field", "%s must be a string", key);
		return -1;
	}
	*id = json_string_value(v);
	*len = json_string_length(v);
	return check_id(what, resp, id, len);
}

static void post_recommendations(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	json_t *root = body_object(req, resp);
	if (!root)
		return;
	const char *cid;
	size_t clen;
	uint32_t n = API_DEFAULT_N, n_items = 0, unknown = 0;
	bool explain = true;
	rec_filter f;
	struct who who;
	memset(&who, 0, sizeof(who));
	json_t *items = json_object_get(root, "items");
	json_t *jn = json_object_get(root, "n");
	json_t *jexplain = json_object_get(root, "explain");

	if (!json_is_array(items)) {
		http_error(resp, 400, "invalid_field", "items must be an array of item ids");
		goto out_json;
	}
	if (json_array_size(items) > API_MAX_BASKET) {
		http_error(resp, 400, "basket_too_large", "items holds %zu ids; the limit is %u",
			   json_array_size(items), API_MAX_BASKET);
		goto out_json;
	}
	if (jn && (!json_is_integer(jn) || json_integer_value(jn) < 1 ||
		   json_integer_value(jn) > REC_MAX_N)) {
		http_error(resp, 400, "invalid_field", "n must be an integer from 1 to %u", REC_MAX_N);
		goto out_json;
	}
	if (jn)
		n = (uint32_t)json_integer_value(jn);
	if (jexplain && !json_is_boolean(jexplain)) {
		http_error(resp, 400, "invalid_field", "explain must be true or false");
		goto out_json;
	}
	if (json_id(root, "customer_id", "customer", resp, &cid, &clen) != 0)
		goto out_json;
	if (worker_begin(w, resp) != 0)
		goto out_json;
	if (query_filter(a, w, req, resp, &f, &explain) != 0)
		goto out;
	if (jexplain)
		f.because = explain = json_is_true(jexplain);

	size_t i;
	json_t *v;
	json_array_foreach(items, i, v)
	{
		const char *iid;
		size_t ilen;
		uint32_t idx;
		if (!json_is_string(v)) {
			http_error(resp, 400, "invalid_field", "items[%zu] must be a string", i);
			goto out;
		}
		iid = json_string_value(v);
		ilen = json_string_length(v);
		if (check_id("item", resp, &iid, &ilen) != 0)
			goto out;
		if (model_item_lookup(w->txn, iid, ilen, &idx) == 0)
			w->basket[n_items++] = idx;
		else
			unknown++;
	}
	if (cid) {
		int rc = lookup_customer(a, w, cid, clen, &who);
		if (rc) {
			storage_error(resp, rc);
			goto out;
		}
	}
	/* A customer who withdrew consent gets nothing built on their
	 * behaviour, the basket included. */
	f.personal = !(who.flags & STATE_NO_PERSONALIZATION);
	/* Bought since the model was trained is bought too (the model's
	 * history is left out by rec_for_basket). */
	if (who.has_events && f.personal && !f.include_purchased) {
		const int64_t as_of = model_get_info(w->m)->as_of;
		size_t pos = 0;
		event_view e;
		while (state_events_next(&who.events, &pos, &e) == 0)
			if (e.type == EVENT_PURCHASE && e.quantity > 0 && e.ts > as_of)
				exclude_id(w, &f, e.item, e.item_len);
	}
	int rc = rec_for_basket(w->rec, w->txn, w->basket, n_items, who.known ? cid : NULL, clen, n,
				&f, &w->result);
	if (rc) {
		storage_error(resp, rc);
		goto out;
	}
	strbuf *sb = resp->body;
	sb_addc(sb, '{');
	if (cid) {
		sb_adds(sb, "\"customer_id\":");
		sb_add_json_str(sb, cid, clen);
		sb_addc(sb, ',');
	}
	write_model_field(sb, w->m);
	sb_adds(sb, ",\"source\":");
	add_str(sb, rec_source_name(w->result.source));
	sb_adds(sb, ",\"unknown_items\":");
	sb_add_u64(sb, unknown);
	sb_addc(sb, ',');
	write_items(sb, w->m, &w->result, explain);
	sb_addc(sb, '}');
out:
	worker_end(w);
out_json:
	json_decref(root);
}

/* ---- segments and audiences --------------------------------------------- */

static void compute_segments(api *a, struct worker *w, strbuf *out)
{
	uint64_t counts[SEG_COUNT] = { 0 }, total = 0;
	int64_t now = model_now(w->m);
	model_iter *it = NULL;
	const char *id;
	size_t len;
	model_customer c;
	state_events ev;
	customer_live live;
	/* The model's customers, with what their events since training add
	 * (a live purchase moves a customer at once, as in their profile)... */
	if (model_iter_begin(w->txn, NULL, 0, &it) == 0) {
		while (model_iter_next(it, &id, &len, &c) == 0) {
			uint32_t flags;
			if (state_customer_flags(w->stxn, id, len, &flags) == 0 && (flags & STATE_ERASED))
				continue;
			if (state_events_get(w->stxn, id, len, &ev) != 0)
				ev.count = 0;
			customer_live_figures(w->m, &c, ev.count ? &ev : NULL, &live);
			counts[customer_live_segment(w->m, &live, now, NULL)]++;
			total++;
		}
		model_iter_end(it);
	}
	/* ...and the customers the model does not know yet, from their events. */
	state_iter *sit = NULL;
	if (state_iter_begin(w->stxn, NULL, 0, &sit) == 0) {
		while (state_iter_next(sit, &id, &len, &ev) == 0) {
			uint32_t flags;
			if (ev.count == 0 || model_customer_get(w->txn, id, len, &c) != STORE_NOTFOUND ||
			    (state_customer_flags(w->stxn, id, len, &flags) == 0 && (flags & STATE_ERASED)))
				continue;
			customer_live_figures(w->m, NULL, &ev, &live);
			counts[customer_live_segment(w->m, &live, now, NULL)]++;
			total++;
		}
		state_iter_end(sit);
	}
	sb_adds(out, "{");
	write_model_field(out, w->m);
	sb_adds(out, ",\"at\":");
	add_time(out, now);
	sb_adds(out, ",\"customers\":");
	sb_add_u64(out, total);
	sb_adds(out, ",\"segments\":{");
	for (int s = 0; s < SEG_COUNT; s++) {
		if (s)
			sb_addc(out, ',');
		add_str(out, segment_name(s));
		sb_addc(out, ':');
		sb_add_u64(out, counts[s]);
	}
	sb_adds(out, "}}");
}

static void get_segments(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	pthread_mutex_lock(&a->segments_lock);
	double now = util_monotonic();
	if (!a->segments_body.len || now - a->segments_at > API_SEGMENTS_TTL ||
	    strcmp(a->segments_model, model_get_info(w->m)->model_id) != 0) {
		if (worker_begin(w, resp) == 0) {
			sb_reset(&a->segments_body);
			compute_segments(a, w, &a->segments_body);
			a->segments_at = now;
			snprintf(a->segments_model, sizeof(a->segments_model), "%s",
				 model_get_info(w->m)->model_id);
			worker_end(w);
		}
	}
	if (a->segments_body.len)
		sb_add(resp->body, a->segments_body.buf, a->segments_body.len);
	pthread_mutex_unlock(&a->segments_lock);
}

/* Cursors are the last customer id of a page, hex-encoded: opaque to
 * clients and safe in a URL. */
static void add_cursor(strbuf *sb, const char *id, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	sb_addc(sb, '"');
	for (size_t i = 0; i < len; i++) {
		sb_addc(sb, hex[(unsigned char)id[i] >> 4]);
		sb_addc(sb, hex[(unsigned char)id[i] & 15]);
	}
	sb_addc(sb, '"');
}

static int decode_cursor(const char *s, size_t n, char *out, size_t *len)
{
	/* Never empty: ids are not, and LMDB refuses an empty key (500). */
	if (n == 0 || n % 2 || n / 2 > ID_MAX_LEN)
		return -1;
	for (size_t i = 0; i < n; i += 2) {
		int hi = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10 : -1;
		int lo = s[i + 1] >= '0' && s[i + 1] <= '9' ? s[i + 1] - '0'
			 : s[i + 1] >= 'a' && s[i + 1] <= 'f' ? s[i + 1] - 'a' + 10
							       : -1;
		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (char)(hi * 16 + lo);
	}
	*len = n / 2;
	return 0;
}

/* Writes one audience entry. */
static void write_member(api *a, struct worker *w, strbuf *sb, const char *id, size_t len,
			 enum segment seg, const customer_live *live, bool explain)
{
	sb_adds(sb, "{\"customer_id\":");
	sb_add_json_str(sb, id, len);
	sb_adds(sb, ",\"segment\":");
	add_str(sb, segment_name(seg));
	sb_adds(sb, ",\"intent\":");
	sb_add_double(sb, live->intent, 4);
	sb_addc(sb, ',');
	write_items(sb, w->m, &w->result, explain);
	sb_addc(sb, '}');
}

/* One candidate of an audience ordered by intent. */
struct ranked {
	customer_live live;
	enum segment seg;
	size_t len;
	char id[ID_MAX_LEN];
};

/* Whether x comes before (intent, id): higher intent first, then customer
 * id in the state's key order (bytes, a prefix first). */
static bool ranks_before(const struct ranked *x, float intent, const char *id, size_t len)
{
	if (x->live.intent != intent)
		return x->live.intent > intent;
	int c = memcmp(x->id, id, MIN(x->len, len));
	return c ? c < 0 : x->len < len;
}

/* order=intent: the `limit` members with the highest intent, highest
 * first. Intent moves with the clock, so this is a top-N, not a paging
 * order: the whole audience is walked, the best kept in a sorted array.
 * Runs inside worker_begin/worker_end; writes "customers":[...]. */
static int audience_by_intent(struct worker *w, audience_walk *walk, uint32_t n, uint32_t limit,
			      bool explain, strbuf *sb)
{
	struct ranked *top = xmallocarray(limit, sizeof(*top));
	uint32_t count = 0;
	const char *id;
	size_t len;
	enum segment seg;
	customer_live live;
	state_events ev;
	int rc;
	while ((rc = audience_walk_next(walk, &id, &len, &seg, &live, &ev)) == 0) {
		if (count == limit && ranks_before(&top[count - 1], live.intent, id, len))
			continue; /* no better than the last kept: the common case */
		uint32_t pos = count < limit ? count : limit - 1;
		while (pos > 0 && !ranks_before(&top[pos - 1], live.intent, id, len))
			pos--;
		uint32_t last = count < limit ? count++ : limit - 1; /* the slot given up */
		memmove(&top[pos + 1], &top[pos], (size_t)(last - pos) * sizeof(*top));
		top[pos].live = live;
		top[pos].seg = seg;
		top[pos].len = len;
		memcpy(top[pos].id, id, len);
	}
	if (rc == STORE_NOTFOUND)
		rc = 0;
	for (uint32_t i = 0; rc == 0 && i < count; i++) {
		rc = rec_for_customer(w->rec, w->txn, w->stxn, top[i].id, top[i].len, n, NULL,
				      &w->result);
		if (rc == 0) {
			if (i)
				sb_addc(sb, ',');
			write_member(NULL, w, sb, top[i].id, top[i].len, top[i].seg, &top[i].live,
				     explain);
		}
	}
	free(top);
	return rc;
}

static void get_audience(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	uint32_t n = API_DEFAULT_N, limit = API_DEFAULT_PAGE, days = 0, hours = 0;
	audience aud;
	char after[ID_MAX_LEN];
	size_t after_len = 0;
	bool have_cursor = false, explain = true;
	const char *v;
	size_t len;

	if (param_uint(w, req, resp, "n", 1, REC_MAX_N, &n) != 0 ||
	    param_uint(w, req, resp, "limit", 1, API_MAX_PAGE, &limit) != 0 ||
	    param_uint(w, req, resp, "days", 1, AUDIENCE_MAX_DAYS, &days) != 0 ||
	    param_uint(w, req, resp, "hours", 1, AUDIENCE_MAX_HOURS, &hours) != 0 ||
	    param_bool(w, req, resp, "explain", &explain) != 0)
		return;
	if (audience_parse(req->segs[2], req->seg_lens[2], days, hours, &aud) != 0) {
		http_error(resp, 404, "unknown_audience", "no audience %.*s (known: %s)",
			   (int)MIN(req->seg_lens[2], (size_t)64), req->segs[2], audience_names());
		return;
	}
	int rc = http_query(req, "order", w->qbuf, sizeof(w->qbuf), &v, &len);
	bool by_intent = rc == 1 && len == 6 && memcmp(v, "intent", 6) == 0;
	if (rc < 0 || (rc == 1 && !by_intent && !(len == 2 && memcmp(v, "id", 2) == 0))) {
		http_error(resp, 400, "invalid_parameter", "order must be id (the default) or intent");
		return;
	}
	rc = http_query(req, "cursor", w->qbuf, sizeof(w->qbuf), &v, &len);
	if (rc < 0 || (rc == 1 && decode_cursor(v, len, after, &after_len) != 0)) {
		http_error(resp, 400, "invalid_parameter", "cursor is not one this server gave out");
		return;
	}
	have_cursor = rc == 1;
	if (have_cursor && by_intent) {
		http_error(resp, 400, "invalid_parameter",
			   "order=intent returns the top `limit` members in one answer: no cursor");
		return;
	}
	if (worker_begin(w, resp) != 0)
		return;

	audience_walk *walk = NULL;
	if (audience_walk_begin(&aud, w->txn, w->stxn, have_cursor ? after : NULL, after_len,
				&walk) != 0) {
		worker_end(w);
		storage_error(resp, STORE_ERROR);
		return;
	}
	strbuf *sb = resp->body;
	sb_adds(sb, "{\"audience\":");
	sb_add_json_str(sb, req->segs[2], req->seg_lens[2]);
	sb_addc(sb, ',');
	write_model_field(sb, w->m);
	sb_adds(sb, ",\"customers\":[");
	if (by_intent) {
		rc = audience_by_intent(w, walk, n, limit, explain, sb);
		audience_walk_end(walk);
		worker_end(w);
		if (rc != 0) {
			storage_error(resp, rc); /* replaces the partial body */
			return;
		}
		sb_adds(sb, "],\"next_cursor\":null}");
		return;
	}
	uint32_t got = 0;
	const char *id = NULL;
	char last_id[ID_MAX_LEN];
	size_t last_len = 0;
	bool more = false;
	enum segment seg;
	customer_live live;
	state_events ev;
	while ((rc = audience_walk_next(walk, &id, &len, &seg, &live, &ev)) == 0) {
		if (got == limit) {
			more = true; /* another member exists: there is a next page */
			break;
		}
		if ((rc = rec_for_customer(w->rec, w->txn, w->stxn, id, len, n, NULL, &w->result)) != 0)
			break;
		if (got++)
			sb_addc(sb, ',');
		write_member(a, w, sb, id, len, seg, &live, explain);
		memcpy(last_id, id, len);
		last_len = len;
	}
	audience_walk_end(walk);
	if (rc != 0 && rc != STORE_NOTFOUND) {
		worker_end(w);
		storage_error(resp, rc);
		return;
	}
	sb_adds(sb, "],\"next_cursor\":");
	if (more)
		add_cursor(sb, last_id, last_len);
	else
		sb_adds(sb, "null");
	sb_addc(sb, '}');
	worker_end(w);
}

/* ---- POST /v1/events ---------------------------------------------------- */

static void add_rejection(strbuf *sb, size_t index, const char *why, bool *first)
{
	const char *colon = strchr(why, ':');
	if (!*first)
		sb_addc(sb, ',');
	*first = false;
	sb_adds(sb, "{\"index\":");
	sb_add_u64(sb, index);
	sb_adds(sb, ",\"code\":");
	sb_add_json_str(sb, why, (size_t)(colon - why));
	sb_adds(sb, ",\"message\":");
	add_str(sb, colon + 2);
	sb_addc(sb, '}');
}

/* A write to the state (POST /v1/events, PUT consent, DELETE customer)
 * between its answer being decided and the commit that lets it be sent:
 * owns copies of what it writes (the request body and the worker's arrays
 * are reused meanwhile). Freed by the writer's callback. */
struct events_post {
	api *a;
	struct worker *w;      /* for metrics (atomic counters) */
	size_t route;          /* for metrics */
	double t0;             /* when the request was taken up */
	http_deferred *d;
	events_request req;
	uint32_t n;            /* events; 0 for a flag change */
	uint32_t set, clear;   /* the flag change's STATE_* bits */
	size_t id_len;         /* the flag change's customer, in `ids` */
	strbuf answer;         /* the 200 body */
	event_in *events;      /* n events; ids point into `ids` */
	char ids[];
};

/* A post with `bytes` of room for ids, its answer empty. */
static struct events_post *events_post_alloc(api *a, struct worker *w, double t0, size_t bytes)
{
	struct events_post *ep = xmalloc(sizeof(*ep) + bytes);
	ep->a = a;
	ep->w = w;
	ep->route = w->route;
	ep->t0 = t0;
	ep->d = NULL;
	ep->n = 0;
	ep->set = ep->clear = 0;
	ep->id_len = 0;
	ep->events = NULL;
	sb_init(&ep->answer, 128);
	return ep;
}

static struct events_post *events_post_new(api *a, struct worker *w, const event_in *ev,
					    uint32_t n, double t0)
{
	size_t bytes = 0;
	for (uint32_t i = 0; i < n; i++)
		bytes += ev[i].customer_len + ev[i].item_len;
	struct events_post *ep = events_post_alloc(a, w, t0, bytes);
	ep->n = n;
	ep->events = xmallocarray(n, sizeof(*ep->events));
	char *p = ep->ids;
	for (uint32_t i = 0; i < n; i++) {
		event_in *e = &ep->events[i];
		*e = ev[i];
		memcpy(p, ev[i].customer, ev[i].customer_len);
		e->customer = p;
		p += ev[i].customer_len;
		memcpy(p, ev[i].item, ev[i].item_len);
		e->item = p;
		p += ev[i].item_len;
	}
	return ep;
}

/* The same for a change of one customer's flags. */
static struct events_post *flags_post_new(api *a, struct worker *w, const char *id, size_t len,
					   uint32_t set, uint32_t clear)
{
	struct events_post *ep = events_post_alloc(a, w, util_monotonic(), len);
	memcpy(ep->ids, id, len);
	ep->id_len = len;
	ep->set = set;
	ep->clear = clear;
	return ep;
}

static void events_post_free(struct events_post *ep)
{
	sb_release(&ep->answer);
	free(ep->events);
	free(ep);
}

/* The writer thread, once the events are on disk (or not). */
static void events_post_done(void *arg, int rc)
{
	struct events_post *ep = arg;
	int status = 200;
	if (rc == 0) {
		atomic_fetch_add_explicit(&ep->w->metrics.events_accepted, ep->n, memory_order_relaxed);
		if (ep->set & STATE_ERASED) {
			/* The cached GET /v1/segments counts them: drop it. */
			pthread_mutex_lock(&ep->a->segments_lock);
			sb_reset(&ep->a->segments_body);
			pthread_mutex_unlock(&ep->a->segments_lock);
		}
	} else {
		status = 503;
		sb_reset(&ep->answer);
		sb_adds(&ep->answer, ep->n ? "{\"error\":{\"code\":\"unavailable\",\"message\":"
					     "\"events could not be recorded; nothing was kept\"}}"
					   : "{\"error\":{\"code\":\"unavailable\",\"message\":"
					     "\"the change could not be recorded; try again\"}}");
	}
	record(ep->w, ep->route, status, util_monotonic() - ep->t0);
	http_deferred_answer(ep->d, status, ep->answer.buf, ep->answer.len);
	events_post_free(ep);
}

/* The pool thread, once the connection is suspended. */
static void events_post_start(void *arg, http_deferred *d)
{
	struct events_post *ep = arg;
	ep->d = d;
	int rc = ep->n ? events_submit(ep->a->events, &ep->req, ep->events, ep->n,
				       events_post_done, ep)
		       : events_submit_flags(ep->a->events, &ep->req, ep->ids, ep->id_len, ep->set,
					     ep->clear, events_post_done, ep);
	if (rc != 0)
		events_post_done(ep, -1); /* the writer is stopping */
}

static void post_events(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	json_error_t jerr;
	double t0 = util_monotonic();
	if (!req->body || req->body_len == 0) {
		http_error(resp, 400, "invalid_json", "a JSON event object or array is required");
		return;
	}
	json_t *root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		http_error(resp, 400, "invalid_json", "body is not valid JSON: %s (at byte %d)",
			   jerr.text, jerr.position);
		return;
	}
	bool batch = json_is_array(root);
	size_t total = batch ? json_array_size(root) : 1;
	if (!batch && !json_is_object(root)) {
		http_error(resp, 400, "invalid_json", "body must be an event object or an array of them");
		goto out;
	}
	if (total > API_MAX_EVENTS) {
		http_error(resp, 413, "batch_too_large", "%zu events in one request; the limit is %u",
			   total, API_MAX_EVENTS);
		goto out;
	}
	if (total == 0) {
		http_error(resp, 400, "invalid_json", "the array holds no events");
		goto out;
	}

	int64_t now = model_now(w->m); /* the default event time */
	/* A replayed log's clock starts at as_of: an event stamped as_of in
	 * the model's first second would pass for one the model already has,
	 * and never count. */
	if (now <= model_get_info(w->m)->as_of)
		now = model_get_info(w->m)->as_of + 1;
	uint32_t accepted = 0, unknown = 0;
	strbuf rejected = STRBUF_INIT;
	bool first = true;
	if (worker_begin(w, resp) != 0) {
		sb_release(&rejected);
		goto out;
	}
	for (size_t i = 0; i < total; i++) {
		event_in *e = &w->events[accepted];
		const char *why = events_parse(batch ? json_array_get(root, i) : root, e,
					      w->numeric_ids[accepted], now);
		uint32_t flags = 0;
		if (!why && state_customer_flags(w->stxn, e->customer, e->customer_len, &flags) == 0 &&
		    (flags & STATE_ERASED))
			why = "customer_erased: this customer was erased; events for them are not kept";
		if (why) {
			if (!batch) {
				const char *colon = strchr(why, ':');
				worker_end(w);
				strbuf code = STRBUF_INIT;
				sb_add(&code, why, (size_t)(colon - why));
				http_error(resp, 400, code.buf, "%s", colon + 2);
				sb_release(&code);
				sb_release(&rejected);
				goto out;
			}
			add_rejection(&rejected, i, why, &first);
			atomic_fetch_add_explicit(&w->metrics.events_rejected, 1, memory_order_relaxed);
			continue;
		}
		uint32_t idx;
		e->known_item = model_item_lookup(w->txn, e->item, e->item_len, &idx) == 0;
		unknown += !e->known_item;
		accepted++;
	}
	worker_end(w); /* never hold a state snapshot while waiting on the writer */

	if (accepted == 0) {
		sb_adds(resp->body, "{\"error\":{\"code\":\"no_valid_events\",\"message\":"
				    "\"every event in the batch was rejected\"},\"accepted\":0,"
				    "\"rejected\":[");
		sb_add(resp->body, sb_str(&rejected), rejected.len);
		sb_adds(resp->body, "]}");
		resp->status = 400;
		sb_release(&rejected);
		goto out;
	}
	struct events_post *ep = events_post_new(a, w, w->events, accepted, t0);
	sb_adds(&ep->answer, "{\"accepted\":");
	sb_add_u64(&ep->answer, accepted);
	sb_adds(&ep->answer, ",\"unknown_items\":");
	sb_add_u64(&ep->answer, unknown);
	sb_adds(&ep->answer, ",\"rejected\":[");
	sb_add(&ep->answer, sb_str(&rejected), rejected.len);
	sb_adds(&ep->answer, "]}");
	sb_release(&rejected);
	/* The answer waits for the commit, the pool thread does not. */
	http_defer(resp, events_post_start, ep);
out:
	json_decref(root);
}

/* ---- consent and erasure ------------------------------------------------ */

/* Queues a change of the customer's flags and answers after its commit,
 * like events: {"customer_id":ID then `rest`. */
static void defer_flag_change(api *a, struct worker *w, http_response *resp, const char *id,
			      size_t len, uint32_t set, uint32_t clear, const char *rest)
{
	struct events_post *ep = flags_post_new(a, w, id, len, set, clear);
	sb_adds(&ep->answer, "{\"customer_id\":");
	sb_add_json_str(&ep->answer, id, len);
	sb_adds(&ep->answer, rest);
	http_defer(resp, events_post_start, ep);
}

static void put_consent(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	const char *id;
	size_t len;
	if (path_id(req, 2, "customer", resp, &id, &len) != 0)
		return;
	json_t *root = body_object(req, resp);
	if (!root)
		return;
	json_t *p = json_object_get(root, "personalization");
	if (!json_is_boolean(p)) {
		http_error(resp, 400, "invalid_field", "personalization must be true or false");
		goto out;
	}
	if (json_is_true(p))
		defer_flag_change(a, w, resp, id, len, 0, STATE_NO_PERSONALIZATION,
				  ",\"consent\":{\"personalization\":true}}");
	else
		defer_flag_change(a, w, resp, id, len, STATE_NO_PERSONALIZATION, 0,
				  ",\"consent\":{\"personalization\":false}}");
out:
	json_decref(root);
}

static void delete_customer(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	const char *id;
	size_t len;
	if (path_id(req, 2, "customer", resp, &id, &len) != 0)
		return;
	defer_flag_change(a, w, resp, id, len, STATE_ERASED, 0, ",\"erased\":true}");
}

/* ---- routing ------------------------------------------------------------ */

typedef void (*handler_fn)(api *a, struct worker *w, const http_request *req,
			   http_response *resp);

/* A route: literal segments, "*" for an id. */
/* Who may call a route when API keys are configured. */
enum access {
	OPEN,  /* always (probes) */
	READ,  /* with a key if --auth-reads */
	WRITE  /* always with a key: changes state or administers */
};

struct route {
	const char *method;
	const char *pattern[HTTP_MAX_SEGMENTS];
	unsigned n;
	handler_fn fn;
	enum access access;
};

static void get_metrics(api *a, struct worker *w, const http_request *req, http_response *resp);
static void post_reload(api *a, struct worker *w, const http_request *req, http_response *resp);

static const struct route routes[] = {
	{ "GET", { "healthz" }, 1, get_health, OPEN },
	{ "GET", { "readyz" }, 1, get_ready, OPEN },
	{ "GET", { "v1", "customers", "*" }, 3, get_customer, READ },
	{ "DELETE", { "v1", "customers", "*" }, 3, delete_customer, WRITE },
	{ "GET", { "v1", "customers", "*", "recommendations" }, 4, get_customer_recs, READ },
	{ "PUT", { "v1", "customers", "*", "consent" }, 4, put_consent, WRITE },
	{ "GET", { "v1", "items", "*", "similar" }, 4, get_item_similar, READ },
	{ "POST", { "v1", "recommendations" }, 2, post_recommendations, READ },
	{ "GET", { "v1", "segments" }, 2, get_segments, READ },
	{ "GET", { "v1", "audiences", "*" }, 3, get_audience, READ },
	{ "POST", { "v1", "events" }, 2, post_events, WRITE },
	{ "GET", { "metrics" }, 1, get_metrics, READ },
	{ "POST", { "admin", "reload" }, 2, post_reload, WRITE },
};
_Static_assert(sizeof(routes) / sizeof(routes[0]) == N_ROUTES - 1, "N_ROUTES is routes + 1");

/* The route's label in /metrics: "GET /v1/customers/{id}/recommendations". */
static void route_label(size_t i, strbuf *sb)
{
	if (i >= ARRAY_SIZE(routes)) {
		sb_adds(sb, "unmatched");
		return;
	}
	sb_adds(sb, routes[i].method);
	sb_addc(sb, ' ');
	for (unsigned k = 0; k < routes[i].n; k++) {
		sb_addc(sb, '/');
		sb_adds(sb, strcmp(routes[i].pattern[k], "*") == 0
				    ? (k == 2 && strcmp(routes[i].pattern[1], "items") == 0 ? "{item}"
					: k == 2 && strcmp(routes[i].pattern[1], "audiences") == 0 ? "{name}"
					: "{customer}")
				    : routes[i].pattern[k]);
	}
}

static void get_metrics(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	(void)req;
	static unsigned long requests[N_ROUTES][N_STATUS]; /* summed under workers_lock */
	unsigned long latency[N_BUCKETS + 1] = { 0 }, sum_us = 0, accepted = 0, rejected = 0;
	strbuf *sb = resp->body;
	strbuf label = STRBUF_INIT;

	pthread_mutex_lock(&a->workers_lock);
	memset(requests, 0, sizeof(requests));
	for (struct worker *k = a->workers; k; k = k->next) {
		for (size_t r = 0; r < N_ROUTES; r++)
			for (size_t st = 0; st < N_STATUS; st++)
				requests[r][st] += atomic_load_explicit(&k->metrics.requests[r][st],
									memory_order_relaxed);
		for (size_t b = 0; b <= N_BUCKETS; b++)
			latency[b] += atomic_load_explicit(&k->metrics.latency[b], memory_order_relaxed);
		sum_us += atomic_load_explicit(&k->metrics.latency_sum_us, memory_order_relaxed);
		accepted += atomic_load_explicit(&k->metrics.events_accepted, memory_order_relaxed);
		rejected += atomic_load_explicit(&k->metrics.events_rejected, memory_order_relaxed);
	}
	sb_adds(sb, "# HELP shopkeeper_requests_total HTTP requests answered, by route and status.\n"
		    "# TYPE shopkeeper_requests_total counter\n");
	unsigned long total = 0;
	for (size_t r = 0; r < N_ROUTES; r++) {
		for (size_t st = 0; st < N_STATUS; st++) {
			if (!requests[r][st])
				continue;
			total += requests[r][st];
			sb_reset(&label);
			route_label(r, &label);
			sb_addf(sb, "shopkeeper_requests_total{route=\"%s\",status=\"", label.buf);
			if (metric_statuses[st])
				sb_addf(sb, "%d", metric_statuses[st]);
			else
				sb_adds(sb, "other");
			sb_addf(sb, "\"} %lu\n", requests[r][st]);
		}
	}
	pthread_mutex_unlock(&a->workers_lock);

	sb_adds(sb, "# HELP shopkeeper_request_duration_seconds Time to compute an answer.\n"
		    "# TYPE shopkeeper_request_duration_seconds histogram\n");
	unsigned long cum = 0;
	for (size_t b = 0; b < N_BUCKETS; b++) {
		cum += latency[b];
		sb_addf(sb, "shopkeeper_request_duration_seconds_bucket{le=\"%g\"} %lu\n",
			metric_buckets[b], cum);
	}
	cum += latency[N_BUCKETS];
	sb_addf(sb, "shopkeeper_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n", cum);
	sb_addf(sb, "shopkeeper_request_duration_seconds_sum %.6f\n", (double)sum_us / 1e6);
	sb_addf(sb, "shopkeeper_request_duration_seconds_count %lu\n", cum);

	sb_addf(sb, "# HELP shopkeeper_events_accepted_total Events recorded durably.\n"
		    "# TYPE shopkeeper_events_accepted_total counter\n"
		    "shopkeeper_events_accepted_total %lu\n"
		    "# HELP shopkeeper_events_rejected_total Events refused as invalid.\n"
		    "# TYPE shopkeeper_events_rejected_total counter\n"
		    "shopkeeper_events_rejected_total %lu\n", accepted, rejected);
	uint64_t commits = 0, written = 0;
	events_writer_stats(a->events, &commits, &written);
	sb_addf(sb, "# HELP shopkeeper_event_commits_total Group commits (one fsync each).\n"
		    "# TYPE shopkeeper_event_commits_total counter\n"
		    "shopkeeper_event_commits_total %llu\n", (unsigned long long)commits);

	const model_info *info = model_get_info(w->m);
	sb_adds(sb, "# HELP shopkeeper_model_info The model being served.\n"
		    "# TYPE shopkeeper_model_info gauge\n");
	sb_addf(sb, "shopkeeper_model_info{model=\"%s\",algorithm=\"%s\"} 1\n", info->model_id,
		info->algorithm);
	sb_addf(sb, "# HELP shopkeeper_model_age_seconds Seconds since the model was trained.\n"
		    "# TYPE shopkeeper_model_age_seconds gauge\n"
		    "shopkeeper_model_age_seconds %.0f\n", util_now() - (double)info->created);
	sb_addf(sb, "# HELP shopkeeper_model_items Items in the model.\n"
		    "# TYPE shopkeeper_model_items gauge\nshopkeeper_model_items %u\n"
		    "# HELP shopkeeper_model_customers Customers in the model.\n"
		    "# TYPE shopkeeper_model_customers gauge\nshopkeeper_model_customers %u\n",
		info->n_items, info->n_customers);
	sb_addf(sb, "# HELP shopkeeper_model_reloads_total Model switches, and refused ones.\n"
		    "# TYPE shopkeeper_model_reloads_total counter\n"
		    "shopkeeper_model_reloads_total{result=\"ok\"} %lu\n"
		    "shopkeeper_model_reloads_total{result=\"failed\"} %lu\n",
		atomic_load(&a->reloads), atomic_load(&a->reload_failures));

	state_counters sc;
	if (state_txn_renew(w->stxn) == 0) {
		state_get_counters(w->stxn, &sc);
		state_txn_reset(w->stxn);
		sb_addf(sb, "# HELP shopkeeper_state_map_bytes The state's LMDB map: size and use.\n"
			    "# TYPE shopkeeper_state_map_bytes gauge\n"
			    "shopkeeper_state_map_bytes{kind=\"size\"} %llu\n"
			    "shopkeeper_state_map_bytes{kind=\"used\"} %llu\n",
			(unsigned long long)sc.map_size, (unsigned long long)sc.map_used);
		sb_addf(sb, "# HELP shopkeeper_state_events_total Events in the state since it was created.\n"
			    "# TYPE shopkeeper_state_events_total counter\n"
			    "shopkeeper_state_events_total %llu\n"
			    "# HELP shopkeeper_state_unknown_item_events_total Of which naming items no model knew.\n"
			    "# TYPE shopkeeper_state_unknown_item_events_total counter\n"
			    "shopkeeper_state_unknown_item_events_total %llu\n",
			(unsigned long long)sc.events, (unsigned long long)sc.unknown_items);
	}
	if (a->connections)
		sb_addf(sb, "# HELP shopkeeper_open_connections Client connections open now.\n"
			    "# TYPE shopkeeper_open_connections gauge\n"
			    "shopkeeper_open_connections %u\n", a->connections(a->connections_arg));
	sb_addf(sb, "# HELP shopkeeper_uptime_seconds Seconds since the server started.\n"
		    "# TYPE shopkeeper_uptime_seconds gauge\nshopkeeper_uptime_seconds %.0f\n",
		util_now() - a->started);
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
	sb_release(&label);
}

static void post_reload(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	strbuf err = STRBUF_INIT;
	(void)w;
	(void)req;
	if (api_reload(a, &err) != 0) {
		http_error(resp, 409, "reload_failed", "kept the current model: %s", err.buf);
		sb_release(&err);
		return;
	}
	sb_release(&err);
	struct model_ref *r = atomic_load(&a->current);
	const model_info *info = model_get_info(r->m); /* a holds a reference */
	sb_adds(resp->body, "{\"reloaded\":true,\"model\":");
	add_str(resp->body, info->model_id);
	sb_adds(resp->body, ",\"items\":");
	sb_add_u64(resp->body, info->n_items);
	sb_adds(resp->body, ",\"customers\":");
	sb_add_u64(resp->body, info->n_customers);
	sb_addc(resp->body, '}');
}

static bool route_matches(const struct route *r, const http_request *req)
{
	if (r->n != req->n_segs)
		return false;
	for (unsigned i = 0; i < r->n; i++) {
		if (strcmp(r->pattern[i], "*") == 0) {
			if (req->seg_lens[i] == 0)
				return false; /* "/v1/customers//x" names no customer */
			continue;
		}
		if (strlen(r->pattern[i]) != req->seg_lens[i] ||
		    memcmp(r->pattern[i], req->segs[i], req->seg_lens[i]) != 0)
			return false;
	}
	return true;
}

/* Whether the request may use the route; if not, a 401 or 403 is in resp. */
static bool authorized(const api *a, const struct route *r, const http_request *req,
		       http_response *resp)
{
	if (!a->keys || r->access == OPEN || (r->access == READ && !a->auth_reads))
		return true;
	int rc = auth_check(a->keys, http_header(req, "Authorization"));
	if (rc == 401) {
		resp->www_authenticate = "Bearer";
		http_error(resp, 401, "unauthorized", "this route needs an API key: "
			   "Authorization: Bearer KEY");
		return false;
	}
	if (rc == 403) {
		http_error(resp, 403, "forbidden", "the API key is not valid");
		return false;
	}
	return true;
}

static void record(struct worker *w, size_t route, int status, double secs)
{
	size_t si = N_STATUS - 1;
	for (size_t i = 0; i + 1 < N_STATUS; i++)
		if (metric_statuses[i] == status)
			si = i;
	atomic_fetch_add_explicit(&w->metrics.requests[route][si], 1, memory_order_relaxed);
	size_t b = 0;
	while (b < N_BUCKETS && secs > metric_buckets[b])
		b++;
	atomic_fetch_add_explicit(&w->metrics.latency[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->metrics.latency_sum_us, (unsigned long)(secs * 1e6),
				  memory_order_relaxed);
}

void api_handle(void *app, const http_request *req, http_response *resp)
{
	api *a = app;
	char allowed[64] = "";
	bool head = strcmp(req->method, "HEAD") == 0;
	double t0 = util_monotonic();
	size_t route = N_ROUTES - 1; /* unmatched */

	struct worker *w = worker_sync(a, req, resp);
	if (!w)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		if (!route_matches(&routes[i], req))
			continue;
		if (strcmp(routes[i].method, req->method) == 0 ||
		    (head && strcmp(routes[i].method, "GET") == 0)) {
			if (!authorized(a, &routes[i], req, resp)) {
				record(w, i, resp->status, util_monotonic() - t0);
				return;
			}
			w->route = i;
			routes[i].fn(a, w, req, resp);
			if (!resp->defer) /* else recorded when it is answered */
				record(w, i, resp->status, util_monotonic() - t0);
			return;
		}
		size_t used = strlen(allowed);
		snprintf(allowed + used, sizeof(allowed) - used, "%s%s", used ? ", " : "",
			 routes[i].method);
	}
	if (allowed[0]) {
		/* The Allow header must outlive this call: keep it per thread. */
		static _Thread_local char allow_header[64];
		memcpy(allow_header, allowed, sizeof(allow_header));
		resp->allow = allow_header;
		http_error(resp, 405, "method_not_allowed", "%s is not allowed here (use %s)",
			   req->method, allowed);
	} else {
		http_error(resp, 404, "not_found", "no route for %s %s", req->method, req->url);
	}
	record(w, route, resp->status, util_monotonic() - t0);
}
