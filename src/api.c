/*
 * api: routes, workers, authorization and the model in use.
 *
 * Each handler checks its input, reads the model and state through the
 * calling thread's worker, and writes JSON straight into the response
 * buffer. Request bodies are parsed with jansson; answers are written by
 * hand, which keeps the hot path free of allocation. The route table says
 * which transactions a route needs; api_handle opens them before the
 * handler and closes them after it, so no handler can leave a snapshot
 * open (an open state snapshot holds the state's remap read-lock, and the
 * next map growth would wait on it with every write behind it). The
 * handlers live in the api_*.c files (api_internal.h lists them).
 */
#include "api.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "timefmt.h"
#include "util.h"

/* ---- the model in use ---------------------------------------------------- */

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
	assert(m && st && ew && model_dir);
	api *a = xcalloc(1, sizeof(*a));
	atomic_init(&a->current, ref_new(m));
	a->state = st;
	a->events = ew;
	a->model_dir = xstrdup(model_dir);
	rec_params_init(&a->params);
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

int64_t api_now(void *arg)
{
	api *a = arg;
	pthread_mutex_lock(&a->ref_lock);
	struct model_ref *r = atomic_load(&a->current);
	atomic_fetch_add(&r->refs, 1); /* current holds one: never 0 here */
	pthread_mutex_unlock(&a->ref_lock);
	int64_t now = model_now(r->m);
	ref_release(r);
	return now;
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

/* ---- workers ------------------------------------------------------------- */

/* Drops the worker's transactions and its model reference. */
static void worker_detach(struct worker *w)
{
	assert(!w->in_txn);
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
	rec_ctx_configure(w->rec, &a->params);
	return w;
}

/* Takes fresh snapshots of model and state for this request. Only
 * run_route calls it. */
static int worker_begin(struct worker *w, http_response *resp)
{
	assert(!w->in_txn);
	if (model_txn_renew(w->txn) != 0 || state_txn_renew(w->stxn) != 0) {
		model_txn_reset(w->txn);
		http_error(resp, 503, "unavailable", "cannot read the model or state");
		return -1;
	}
	w->in_txn = true;
	return 0;
}

static void worker_end(struct worker *w)
{
	assert(w->in_txn);
	model_txn_reset(w->txn);
	state_txn_reset(w->stxn);
	w->in_txn = false;
}

/* ---- small handlers and shared JSON ------------------------------------- */

void api_storage_error(http_response *resp, int rc)
{
	http_error(resp, 500, "internal", "model read failed: %s", store_strerror(rc));
}

void api_add_str(strbuf *sb, const char *s)
{
	sb_add_json_str(sb, s, strlen(s));
}

void api_add_time(strbuf *sb, int64_t t)
{
	char buf[TIME_FMT_LEN];
	time_format(t, buf);
	api_add_str(sb, buf);
}

void api_add_model_field(strbuf *sb, const model *m)
{
	sb_adds(sb, "\"model\":");
	api_add_str(sb, model_get_info(m)->model_id);
}

static void get_health(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	sb_adds(resp->body, "{\"status\":\"ok\"}");
}

/* ,"items":N,"customers":N} closes /readyz and POST /admin/reload. */
static void add_counts(strbuf *sb, const model_info *info)
{
	sb_adds(sb, ",\"items\":");
	sb_add_u64(sb, info->n_items);
	sb_adds(sb, ",\"customers\":");
	sb_add_u64(sb, info->n_customers);
	sb_addc(sb, '}');
}

static void get_ready(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	const model_info *info = model_get_info(w->m);
	sb_adds(resp->body, "{\"status\":\"ready\",\"model\":");
	api_add_str(resp->body, info->model_id);
	sb_adds(resp->body, ",\"algorithm\":");
	api_add_str(resp->body, info->algorithm);
	sb_adds(resp->body, ",\"as_of\":");
	api_add_time(resp->body, info->as_of);
	add_counts(resp->body, info);
}

/* Appends msg with the model directory taken out: "DIR/model.mdb" becomes
 * "model.mdb", DIR alone "the model directory". Answers say what is wrong
 * with a model, not where the server keeps its files. */
static void add_without_dir(strbuf *sb, const char *msg, const char *dir)
{
	size_t dlen = strlen(dir);
	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	const char *p = msg, *hit;
	while (dlen && (hit = memmem(p, strlen(p), dir, dlen)) != NULL) {
		sb_add(sb, p, (size_t)(hit - p));
		p = hit + dlen;
		if (*p == '/') {
			while (*p == '/')
				p++;
		} else {
			sb_adds(sb, "the model directory");
		}
	}
	sb_adds(sb, p);
}

static void post_reload(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	strbuf err = STRBUF_INIT;
	if (api_reload(a, &err) != 0) {
		/* The whole story, paths and all, goes to the operator's log. */
		fprintf(stderr, "shopkeeper: POST /admin/reload: kept the current model: %s\n",
			sb_str(&err));
		strbuf msg = STRBUF_INIT;
		add_without_dir(&msg, err.buf, a->model_dir);
		http_error(resp, 409, "reload_failed", "kept the current model: %s (paths are in "
			   "the server's log)", sb_str(&msg));
		sb_release(&msg);
		sb_release(&err);
		return;
	}
	sb_release(&err);
	struct model_ref *r = atomic_load(&a->current);
	const model_info *info = model_get_info(r->m); /* a holds a reference */
	sb_adds(resp->body, "{\"reloaded\":true,\"model\":");
	api_add_str(resp->body, info->model_id);
	add_counts(resp->body, info);
}

/* ---- routing ------------------------------------------------------------ */

/* Who may call a route when API keys are configured. */
enum access {
	OPEN,  /* always (probes) */
	READ,  /* with a key if --auth-reads */
	WRITE  /* always with a key: changes state or administers */
};

/* The transactions a route's handler runs in. */
enum route_txn {
	API_TXN_NONE,     /* none: the handler reads neither model nor state */
	API_TXN_SNAPSHOT  /* a model and a state read snapshot (w->txn, w->stxn) */
};

struct route {
	const char *method;
	/* Literal segments and {name} for an id; also the label in /metrics. */
	const char *path;
	api_handler fn;
	enum access access;
	enum route_txn txn;
};

/* A write that reads (events, consent) reads in a snapshot that ends when
 * its handler returns, before its deferred answer waits on the writer. */
static const struct route routes[] = {
	{ "GET", "/healthz", get_health, OPEN, API_TXN_NONE },
	{ "GET", "/readyz", get_ready, OPEN, API_TXN_NONE },
	{ "GET", "/v1/customers/{customer}", api_get_customer, READ, API_TXN_SNAPSHOT },
	{ "DELETE", "/v1/customers/{customer}", api_delete_customer, WRITE, API_TXN_NONE },
	{ "GET", "/v1/customers/{customer}/recommendations", api_get_customer_recs, READ,
	  API_TXN_SNAPSHOT },
	{ "PUT", "/v1/customers/{customer}/consent", api_put_consent, WRITE, API_TXN_SNAPSHOT },
	{ "GET", "/v1/items/{item}/similar", api_get_item_similar, READ, API_TXN_SNAPSHOT },
	{ "POST", "/v1/recommendations", api_post_recommendations, READ, API_TXN_SNAPSHOT },
	{ "GET", "/v1/segments", api_get_segments, READ, API_TXN_SNAPSHOT },
	{ "GET", "/v1/audiences/{name}", api_get_audience, READ, API_TXN_SNAPSHOT },
	{ "POST", "/v1/events", api_post_events, WRITE, API_TXN_SNAPSHOT },
	{ "GET", "/metrics", api_get_metrics, READ, API_TXN_SNAPSHOT },
	{ "POST", "/admin/reload", post_reload, WRITE, API_TXN_NONE },
};
_Static_assert(ARRAY_SIZE(routes) == API_N_ROUTES - 1, "API_N_ROUTES is routes + 1");

void api_route_label(size_t route, strbuf *sb)
{
	assert(route < API_N_ROUTES);
	if (route >= ARRAY_SIZE(routes))
		sb_adds(sb, "unmatched");
	else
		sb_addf(sb, "%s %s", routes[route].method, routes[route].path);
}

static bool route_matches(const struct route *r, const http_request *req)
{
	const char *p = r->path;
	for (unsigned i = 0; i < req->n_segs; i++) {
		if (*p++ != '/')
			return false;
		const char *end = strchrnul(p, '/');
		size_t n = (size_t)(end - p);
		if (*p == '{') {
			if (req->seg_lens[i] == 0)
				return false; /* "/v1/customers//x" names no customer */
		} else if (n != req->seg_lens[i] || memcmp(p, req->segs[i], n) != 0) {
			return false;
		}
		p = end;
	}
	return *p == '\0';
}

/* Whether the request may use the route; if not, a 401 or 403 is in resp. */
static bool authorized(const api *a, const struct route *r, const http_request *req,
		       http_response *resp)
{
	if (!a->keys || r->access == OPEN || (r->access == READ && !a->auth_reads))
		return true;
	int rc = auth_check(a->keys, http_header(req, "Authorization"));
	switch (rc) {
	case AUTH_OK:
		return true;
	case AUTH_MISSING:
		resp->www_authenticate = "Bearer";
		http_error(resp, 401, "unauthorized", "%s", auth_strerror(rc));
		return false;
	case AUTH_PROTECTED_MODE:
		http_error(resp, 403, "protected_mode", "%s", auth_strerror(rc));
		return false;
	default: /* AUTH_WRONG */
		http_error(resp, 403, "forbidden", "%s", auth_strerror(rc));
		return false;
	}
}

/* Runs the route's handler inside the transactions it declares: the one
 * place they are opened and closed. */
static void run_route(api *a, struct worker *w, const struct route *r, const http_request *req,
		      http_response *resp)
{
	if (r->txn == API_TXN_NONE) {
		r->fn(a, w, req, resp);
		return;
	}
	if (worker_begin(w, resp) != 0)
		return;
	r->fn(a, w, req, resp);
	worker_end(w);
}

void api_handle(void *app, const http_request *req, http_response *resp)
{
	api *a = app;
	char allowed[64] = "";
	bool head = strcmp(req->method, "HEAD") == 0;
	double t0 = util_monotonic();
	size_t route = API_N_ROUTES - 1; /* unmatched */

	struct worker *w = worker_sync(a, req, resp);
	if (!w)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		if (!route_matches(&routes[i], req))
			continue;
		if (strcmp(routes[i].method, req->method) == 0 ||
		    (head && strcmp(routes[i].method, "GET") == 0)) {
			if (!authorized(a, &routes[i], req, resp)) {
				api_record(w, i, resp->status, util_monotonic() - t0);
				return;
			}
			w->route = i;
			run_route(a, w, &routes[i], req, resp);
			if (!resp->defer) /* else recorded when it is answered */
				api_record(w, i, resp->status, util_monotonic() - t0);
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
	api_record(w, route, resp->status, util_monotonic() - t0);
}
