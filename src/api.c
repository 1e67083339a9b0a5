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
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "timefmt.h"
#include "util.h"

/* ---- the model in use ---------------------------------------------------- */

static struct model_ref *ref_new(model *m, experiments *ex)
{
	struct model_ref *r = xcalloc(1, sizeof(*r));
	r->m = m;
	r->ex = ex;
	atomic_init(&r->refs, 1);
	return r;
}

/* The variants' models opened for a reference not yet made: closed. */
void api_variant_models_close(model **vm, uint8_t n)
{
	for (uint8_t i = 0; i < n; i++)
		model_close(vm[i]);
}

static void ref_release(struct model_ref *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
		model_close(r->m);
		api_variant_models_close(r->vm, r->n_vm);
		experiments_free(r->ex);
		free(r);
	}
}

/* Puts the state's item overrides into a model about to become current. A
 * failure leaves the model serving without them: said in the log. */
static void load_overrides(model *m, state *st)
{
	int rc = rec_load_item_overrides(m, st);
	if (rc == 0)
		rc = live_items_model_first_seen(st, m);
	if (rc)
		fprintf(stderr, "shopkeeper: cannot read the item overrides (PUT /v1/items): %s; "
				"serving without them\n", store_strerror(rc));
}

/* Items added since training (PUT /v1/items), from the state, placed in m.
 * A failure leaves m serving without them: said in the log. */
static void load_live_items(live_items *li, state *st, model *m)
{
	int rc = live_items_load(li, st, m);
	if (rc)
		fprintf(stderr, "shopkeeper: cannot read the items added since training (PUT "
				"/v1/items): %s; serving without them\n", store_strerror(rc));
}

api *api_create(model *m, state *st, events_writer *ew, const char *model_dir)
{
	assert(m && st && ew && model_dir);
	load_overrides(m, st);
	api *a = xcalloc(1, sizeof(*a));
	a->live = live_items_create(LIVE_ITEMS_DEFAULT_MAX);
	load_live_items(a->live, st, m);
	atomic_init(&a->current, ref_new(m, NULL));
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

void api_set_max_live_items(api *a, uint32_t max)
{
	live_items *li = live_items_create(max);
	model *m = atomic_load(&a->current)->m;
	load_live_items(li, a->state, m);
	live_items_free(a->live);
	a->live = li;
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

/* applier_model_hooks.mark_known: one model reference for the batch, then
 * a hash lookup per event (no transaction: model_item_find). */
static void log_mark_known(void *arg, event_in *ev, size_t n)
{
	api *a = arg;
	pthread_mutex_lock(&a->ref_lock);
	struct model_ref *r = atomic_load(&a->current);
	atomic_fetch_add(&r->refs, 1); /* current holds one: never 0 here */
	pthread_mutex_unlock(&a->ref_lock);
	uint32_t idx;
	for (size_t i = 0; i < n; i++)
		ev[i].known_item = model_item_find(r->m, ev[i].item, ev[i].item_len, &idx) == 0;
	ref_release(r);
}

/* applier_model_hooks.item_flags: an override or catalog change applied
 * from the log (PUT /v1/items on any replica) reaches the model in use and
 * the live items, under the reference lock as api_items.c's own callback
 * does, so a concurrent reload either read the state after the commit or
 * is the model changed here. An item the model does not know, with catalog
 * fields, is a live item (placed here, on the applier's thread). */
static void log_item_flags(void *arg, const char *item, size_t len, uint32_t flags,
			   const state_item_meta *meta)
{
	api *a = arg;
	uint32_t idx;
	pthread_mutex_lock(&a->ref_lock);
	struct model_ref *r = atomic_load(&a->current);
	model *m = r->m;
	rec_apply_item_override(m, item, len, flags);
	for (uint8_t i = 0; i < r->n_vm; i++)
		rec_apply_item_override(r->vm[i], item, len, flags);
	if ((meta->fields & STATE_ITEM_FIRST_SEEN) && model_item_find(m, item, len, &idx) == 0)
		model_item_set_first_seen(m, idx, meta->first_seen);
	live_items_put(a->live, m, item, len, flags, meta, false, NULL);
	pthread_mutex_unlock(&a->ref_lock);
}

void api_set_event_log(api *a, applier *ap, double max_lag)
{
	a->applier = ap;
	a->max_lag = max_lag;
	applier_model_hooks h = { .mark_known = log_mark_known, .item_flags = log_item_flags,
				  .arg = a };
	applier_set_model_hooks(ap, &h);
	/* The applier ran before the hooks were set: what it committed since
	 * api_create read the overrides is read again (applier.h). */
	pthread_mutex_lock(&a->ref_lock);
	struct model_ref *r = atomic_load(&a->current);
	load_overrides(r->m, a->state);
	for (uint8_t i = 0; i < r->n_vm; i++)
		if (rec_load_item_overrides(r->vm[i], a->state) != 0)
			fprintf(stderr, "shopkeeper: a variant model: cannot read the item overrides "
					"(PUT /v1/items); serving without them\n");
	load_live_items(a->live, a->state, r->m);
	pthread_mutex_unlock(&a->ref_lock);
}

void api_forget_segments(void *arg)
{
	api *a = arg;
	pthread_mutex_lock(&a->segments_lock);
	sb_reset(&a->segments_body);
	pthread_mutex_unlock(&a->segments_lock);
}

void api_set_attribution(api *a, attribution *at)
{
	a->attribution = at;
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
	live_items_free(a->live);
	pthread_mutex_destroy(&a->ref_lock);
	pthread_mutex_destroy(&a->workers_lock);
	pthread_mutex_destroy(&a->segments_lock);
	sb_release(&a->segments_body);
	free(a->model_dir);
	free(a->experiments_path);
	free(a);
}

struct model_ref *api_model_acquire(api *a)
{
	pthread_mutex_lock(&a->ref_lock);
	struct model_ref *r = atomic_load(&a->current);
	atomic_fetch_add(&r->refs, 1); /* current holds one: never 0 here */
	pthread_mutex_unlock(&a->ref_lock);
	return r;
}

void api_model_release(struct model_ref *r)
{
	ref_release(r);
}

int api_reload(api *a, strbuf *err)
{
	model *m = NULL;
	experiments *ex = NULL;
	struct model_ref vms = { 0 };
	/* The experiments first: a bad file keeps the model too, so what is
	 * served is always a pair the operator saw load together. The
	 * variants' models count as the file's: one that does not open keeps
	 * everything as it was. */
	if (a->experiments_path && (experiments_load(a->experiments_path, &ex, err) != 0 ||
				    api_open_variant_models(a, a->experiments_path, ex, &vms, err) != 0)) {
		experiments_free(ex);
		strbuf msg = STRBUF_INIT;
		sb_addf(&msg, "experiments file %s", sb_str(err));
		sb_reset(err);
		sb_add(err, msg.buf, msg.len);
		sb_release(&msg);
		atomic_fetch_add(&a->reload_failures, 1);
		return -1;
	}
	/* Opening validates the whole model; the current one stays on any
	 * failure. */
	if (model_open(a->model_dir, &m, err) != 0) {
		api_variant_models_close(vms.vm, vms.n_vm);
		experiments_free(ex);
		atomic_fetch_add(&a->reload_failures, 1);
		return -1;
	}
	api_define_experiments(a, ex);
	const model_info *info = model_get_info(m);
	/* Before the swap, while m is surely ours: the applier drops the
	 * events the new model covers (applier.h). */
	if (a->applier)
		applier_model_switched(a->applier, info->has_log_position, info->log_position_ms,
				       info->log_position_seq);
	struct model_ref *fresh = ref_new(m, ex);
	fresh->n_vm = vms.n_vm;
	memcpy(fresh->vm, vms.vm, sizeof(fresh->vm));
	memcpy(fresh->slot_vm, vms.slot_vm, sizeof(fresh->slot_vm));
	pthread_mutex_lock(&a->ref_lock);
	/* Under the lock: a committed override is applied either here or,
	 * after, by its writer callback to this model (api_items.c). */
	load_overrides(m, a->state);
	/* Items trained since leave the live set; the others are placed
	 * among m's items. Requests still on the old model score them as
	 * reached by nothing until they move on (live_items_merge). */
	live_items_rebind(a->live, m);
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
	assert(!w->in_txn && w->view == 0);
	for (size_t i = 0; i < EXP_MAX_MODELS; i++) {
		model_txn_free(w->views[i].txn);
		rec_ctx_free(w->views[i].rec);
		memset(&w->views[i], 0, sizeof(w->views[i]));
	}
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

/* A worker's handles on m but its transaction: what the rec_ids and
 * scoring need, computed once per model. */
static void view_setup(api *a, struct worker_view *v, model *m)
{
	v->m = m;
	v->txn = NULL;
	v->model_rid = recid_model_id(model_get_info(m)->model_id);
	/* model_now is the wall clock plus a constant (model.h): the offset
	 * once per model spares an answer one of its two clock reads. Read
	 * again when a second ticked over in between. */
	v->clock_offset_ms = 0;
	for (int i = 0; i < 3; i++) {
		int64_t before = (int64_t)util_now(), now = model_now(m);
		if ((int64_t)util_now() == before) {
			v->clock_offset_ms = (now - before) * 1000;
			break;
		}
	}
	v->rec = rec_ctx_create(model_get_info(m)->n_items);
	/* the flags given, else what the model's tuning chose */
	rec_params_for_model(&v->params, &a->params, model_get_info(m));
	rec_ctx_configure(v->rec, &v->params);
}

/* Swaps the worker's main-model fields with view k - 1's. */
static void view_swap(struct worker *w, struct worker_view *v)
{
	struct worker_view t = { w->m, w->txn, w->rec, w->params, w->model_rid,
				 w->clock_offset_ms };
	w->m = v->m;
	w->txn = v->txn;
	w->rec = v->rec;
	w->params = v->params;
	w->model_rid = v->model_rid;
	w->clock_offset_ms = v->clock_offset_ms;
	*v = t;
}

int api_use_variant_model(struct worker *w, uint8_t slot, http_response *resp)
{
	assert(w->in_txn && w->view == 0);
	if (slot == 0 || w->ref->slot_vm[slot - 1] == 0)
		return 0;
	uint8_t k = w->ref->slot_vm[slot - 1];
	struct worker_view *v = &w->views[k - 1];
	int rc = v->txn ? model_txn_renew(v->txn) : model_txn_begin(v->m, &v->txn);
	if (rc != 0) {
		http_error(resp, 503, "unavailable", "cannot read the variant's model");
		return -1;
	}
	w->main_view = *v;
	view_swap(w, &w->main_view);
	w->view = k;
	return 0;
}

/* Puts the main model's fields back after a route that used a variant's. */
static void use_main_model(struct worker *w)
{
	if (w->view == 0)
		return;
	model_txn_reset(w->txn);
	view_swap(w, &w->main_view);
	w->views[w->view - 1] = w->main_view; /* the variant's, txn included */
	w->view = 0;
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
	struct worker_view v;
	view_setup(a, &v, w->m);
	w->rec = v.rec;
	w->params = v.params;
	w->model_rid = v.model_rid;
	w->clock_offset_ms = v.clock_offset_ms;
	for (uint8_t i = 0; i < r->n_vm; i++)
		view_setup(a, &w->views[i], r->vm[i]); /* transactions when first used */
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

void api_get_experiments(api *a, struct worker *w, const http_request *req,
			 http_response *resp)
{
	/* w's reference: the experiments the worker serves with right now */
	const char *ids[EXP_MAX_MODELS] = { NULL };
	for (size_t i = 0; i < experiments_model_count(w->ref->ex); i++) {
		uint8_t k = w->ref->slot_vm[i];
		ids[i] = model_get_info(k ? w->ref->vm[k - 1] : w->ref->m)->model_id;
	}
	experiments_json_models(w->ref->ex, ids, resp->body);
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

/* With the event log: 503 {"status":"not_ready","reason":...} while the
 * applier bootstraps, rebuilds, is stopped at a newer format or lags more
 * than --max-lag; else ,"event_log":{...} is added to the ready answer
 * (written in *extra). Returns whether ready. */
static bool log_ready(api *a, http_response *resp, strbuf *extra)
{
	applier_stats st;
	applier_get_stats(a->applier, &st);
	const char *reason = NULL;
	if (st.phase != APPLIER_APPLYING)
		reason = applier_phase_name(st.phase);
	else if (st.lag_seconds > a->max_lag)
		reason = "lag";
	if (reason) {
		resp->status = 503;
		sb_adds(resp->body, "{\"status\":\"not_ready\",\"reason\":");
		api_add_str(resp->body, reason);
		sb_addf(resp->body, ",\"lag_seconds\":%.3f,\"lag_entries\":%llu,\"max_lag\":%g}",
			st.lag_seconds, (unsigned long long)st.lag_entries, a->max_lag);
		return false;
	}
	char id[EVENTLOG_ID_LEN];
	eventlog_id_format(st.position, id);
	sb_addf(extra, ",\"event_log\":{\"connected\":%s,\"lag_seconds\":%.3f,\"lag_entries\":%llu,"
		"\"position\":\"%s\"}", st.connected ? "true" : "false", st.lag_seconds,
		(unsigned long long)st.lag_entries, id);
	return true;
}

static void get_ready(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	const model_info *info = model_get_info(w->m);
	strbuf extra = STRBUF_INIT;
	if (a->applier && !log_ready(a, resp, &extra)) {
		sb_release(&extra);
		return;
	}
	sb_adds(resp->body, "{\"status\":\"ready\"");
	if (extra.len)
		sb_add(resp->body, extra.buf, extra.len);
	sb_release(&extra);
	sb_adds(resp->body, ",\"model\":");
	api_add_str(resp->body, info->model_id);
	sb_adds(resp->body, ",\"algorithm\":");
	api_add_str(resp->body, info->algorithm);
	sb_adds(resp->body, ",\"as_of\":");
	api_add_time(resp->body, info->as_of);
	sb_adds(resp->body, ",\"clock\":{\"setting\":");
	api_add_str(resp->body, model_clock_setting());
	sb_adds(resp->body, ",\"runs_on\":");
	api_add_str(resp->body, model_clock_name(w->m));
	sb_addc(resp->body, '}');
	if (info->tuning_json) { /* what train chose, and why (tune.h) */
		sb_adds(resp->body, ",\"tuning\":");
		sb_adds(resp->body, info->tuning_json);
	}
	/* the variants' own models, each mapped once */
	sb_adds(resp->body, ",\"variant_models\":[");
	for (uint8_t i = 0; i < w->ref->n_vm; i++) {
		if (i)
			sb_addc(resp->body, ',');
		api_add_str(resp->body, model_get_info(w->ref->vm[i])->model_id);
	}
	sb_addc(resp->body, ']');
	add_counts(resp->body, info);
}

/* Appends msg with the model directory taken out: "DIR/model.mdb" becomes
 * "model.mdb", DIR alone "the model directory". Answers say what is wrong
 * with a model, not where the server keeps its files. */
void api_add_without_dir(strbuf *sb, const char *msg, const char *dir)
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

/* Appends msg with the file at path named by its last part alone. */
static void add_file_name(strbuf *sb, const char *msg, const char *path)
{
	size_t plen = strlen(path);
	const char *base = strrchr(path, '/');
	base = base && base[1] ? base + 1 : path;
	const char *p = msg, *hit;
	while (plen && (hit = memmem(p, strlen(p), path, plen)) != NULL) {
		sb_add(sb, p, (size_t)(hit - p));
		sb_adds(sb, base);
		p = hit + plen;
	}
	sb_adds(sb, p);
}

static void post_reload(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	strbuf err = STRBUF_INIT;
	const char *kept = a->experiments_path ? "kept the current model and experiments"
					       : "kept the current model";
	if (api_reload(a, &err) != 0) {
		/* The whole story, paths and all, goes to the operator's log. */
		fprintf(stderr, "shopkeeper: POST /admin/reload: %s: %s\n", kept, sb_str(&err));
		strbuf msg = STRBUF_INIT, named = STRBUF_INIT;
		if (a->experiments_path)
			add_file_name(&named, err.buf, a->experiments_path);
		api_add_without_dir(&msg, a->experiments_path ? sb_str(&named) : err.buf, a->model_dir);
		http_error(resp, 409, "reload_failed", "%s: %s (paths are in the server's log)", kept,
			   sb_str(&msg));
		sb_release(&named);
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
	/* The query parameters the route takes, comma-separated ("" none; a
	 * name ending in ".*" takes every name with that prefix). The router
	 * answers any other with 400 unknown_parameter, so a typo (count=3
	 * for n=3) is never silently ignored. */
	const char *params;
};

/* The recommendation routes' business rules (api_query_filter). */
#define FILTER_PARAMS                                                                        \
	"category,exclude,min_price,max_price,new_since,include_purchased,explain,history_weight"
/* Who is in an audience (api_audiences.c's audience filter). */
#define AUDIENCE_PARAMS                                                                      \
	"days,hours,country,attr.*,min_monetary,max_monetary,last_purchase_before,"          \
	"last_purchase_after"

/* A write that reads (events, consent) reads in a snapshot that ends when
 * its handler returns, before its deferred answer waits on the writer. */
static const struct route routes[] = {
	{ "GET", "/healthz", get_health, OPEN, API_TXN_NONE, "" },
	{ "GET", "/readyz", get_ready, OPEN, API_TXN_NONE, "" },
	{ "GET", "/v1/customers/{customer}", api_get_customer, READ, API_TXN_SNAPSHOT, "" },
	{ "DELETE", "/v1/customers/{customer}", api_delete_customer, WRITE, API_TXN_SNAPSHOT, "" },
	{ "GET", "/v1/customers/{customer}/recommendations", api_get_customer_recs, READ,
	  API_TXN_SNAPSHOT, "n," FILTER_PARAMS },
	{ "PUT", "/v1/customers/{customer}/consent", api_put_consent, WRITE, API_TXN_SNAPSHOT, "" },
	/* customer_id: who is asking, for experiments (docs/api.md) */
	{ "GET", "/v1/items/{item}/similar", api_get_item_similar, READ, API_TXN_SNAPSHOT,
	  "n,customer_id," FILTER_PARAMS },
	{ "PUT", "/v1/items/{item}", api_put_item, WRITE, API_TXN_SNAPSHOT, "" },
	{ "POST", "/v1/recommendations", api_post_recommendations, READ, API_TXN_SNAPSHOT,
	  FILTER_PARAMS },
	{ "GET", "/v1/segments", api_get_segments, READ, API_TXN_SNAPSHOT, "" },
	{ "GET", "/v1/audiences/{name}", api_get_audience, READ, API_TXN_SNAPSHOT,
	  "n,limit,cursor,order,explain,new_since," AUDIENCE_PARAMS },
	/* Streams: opens its own snapshots, one per block it sends. */
	{ "GET", "/v1/audiences/{name}/export", api_get_audience_export, READ, API_TXN_NONE,
	  "format,n,new_since," AUDIENCE_PARAMS },
	{ "POST", "/v1/events", api_post_events, WRITE, API_TXN_SNAPSHOT, "" },
	{ "GET", "/metrics", api_get_metrics, READ, API_TXN_SNAPSHOT, "" },
	{ "POST", "/admin/reload", post_reload, WRITE, API_TXN_NONE, "" },
	/* The console's page takes ?lang=ja (console/i18n.js). */
	{ "GET", "/console", api_get_console, OPEN, API_TXN_NONE, "lang" },
	{ "GET", "/console/{asset}", api_get_console, OPEN, API_TXN_NONE, "lang" },
	{ "GET", "/v1/model", api_get_model, READ, API_TXN_NONE, "" },
	{ "GET", "/v1/items", api_get_items, READ, API_TXN_NONE, "q,limit" },
	{ "GET", "/v1/segments/transitions", api_get_segment_transitions, READ, API_TXN_SNAPSHOT,
	  "" },
	{ "GET", "/v1/customers/{customer}/events", api_get_customer_events, READ,
	  API_TXN_SNAPSHOT, "limit,cursor" },
	{ "GET", "/v1/experiments", api_get_experiments, READ, API_TXN_NONE, "" },
	{ "GET", "/v1/experiments/{name}", api_get_experiment_report, READ, API_TXN_SNAPSHOT, "" },
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

/* Whether `name` (decoded, n bytes) is in the route's parameter list. */
static bool param_listed(const char *list, const char *name, size_t n)
{
	for (const char *p = list; *p;) {
		const char *end = strchrnul(p, ',');
		size_t k = (size_t)(end - p);
		if (k >= 2 && p[k - 2] == '.' && p[k - 1] == '*') {
			if (n > k - 1 && memcmp(p, name, k - 1) == 0)
				return true; /* "attr.*" takes "attr.tier", not "attr." */
		} else if (k == n && memcmp(p, name, n) == 0) {
			return true;
		}
		p = *end ? end + 1 : end;
	}
	return false;
}

struct param_check {
	const char *list;
	char name[65]; /* the first unknown name, decoded and cut for the message */
};

static int check_param(void *arg, const char *key, const char *value)
{
	(void)value;
	struct param_check *c = arg;
	char dec[128];
	size_t raw = strlen(key);
	long n = raw < sizeof(dec) ? http_percent_decode(key, raw, dec, true) : -1;
	if (n >= 0 && param_listed(c->list, dec, (size_t)n))
		return 0;
	const char *name = n >= 0 ? dec : key;
	size_t len = strnlen(name, sizeof(c->name) - 1);
	memcpy(c->name, name, len); /* cut: the message names it, not all of it */
	c->name[len] = '\0';
	return 1;
}

/* Whether every query parameter is one the route takes; if not, a 400
 * naming the first other one is in resp. */
static bool params_known(const struct route *r, const http_request *req, http_response *resp)
{
	const char *list = r->params ? r->params : ""; /* a row without a list takes none */
	struct param_check c = { list, "" };
	if (http_query_each(req, check_param, &c) == 0)
		return true;
	if (list[0])
		http_error(resp, 400, "unknown_parameter",
			   "unknown query parameter '%s' (%s %s takes: %s)", c.name, r->method, r->path,
			   list);
	else
		http_error(resp, 400, "unknown_parameter",
			   "unknown query parameter '%s' (%s %s takes none)", c.name, r->method,
			   r->path);
	return false;
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
	use_main_model(w);
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
			if (!authorized(a, &routes[i], req, resp) ||
			    !params_known(&routes[i], req, resp)) {
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
