/*
 * api_internal: what the api_*.c files share. Private to them; the api's
 * public face is include/api.h.
 *
 *   api.c            lifecycle, model references, workers, the route table,
 *                    authorization, and api_handle, which opens and closes
 *                    each route's transactions (handlers never do)
 *   api_params.c     query and body parameters, ids, filters, cursors
 *   api_metrics.c    request counters and GET /metrics
 *   api_reads.c      customers, their recommendations, similar items, baskets
 *   api_audiences.c  GET /v1/segments and GET /v1/audiences/{name}
 *   api_writes.c     events, consent and erasure: answered after the commit
 *   api_items.c      PUT /v1/items/{id}: out of stock, not recommendable
 *   api_report.c     GET /v1/experiments/{name}: an experiment's report
 *   api_console.c    the console's files and the routes it reads: the model,
 *                    item search, segment transitions, a customer's timeline
 *   rec_json.c       the recommendation JSON writer, shared with `export`
 */
#ifndef SHOPKEEPER_API_INTERNAL_H
#define SHOPKEEPER_API_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "api.h"
#include "audience.h"
#include "experiments.h"
#include "ids.h"
#include "live_items.h"
#include "recommend.h"

#define API_DEFAULT_N 10u
#define API_MAX_BASKET 100u      /* items in a POST /v1/recommendations */
#define API_MAX_EXCLUDE 100u     /* ids in exclude= */
#define API_DEFAULT_PAGE 100u    /* customers per audience page */
#define API_MAX_PAGE 1000u
/* Items in one audience answer (limit x n) at most: the largest answers
 * were 6.4 MB at limit=1000&n=100, and 200 clients that never read them
 * held 1 GB (issue 21). 20,000 items are about 1.3 MB. */
#define API_MAX_AUDIENCE_ITEMS 20000u
#define API_SEGMENTS_TTL 60.0    /* seconds GET /v1/segments is cached */
#define API_MAX_EVENTS 1000u     /* events in one POST /v1/events */
/* Room for one decoded query value: a cursor (an id hex-encoded, two
 * characters a byte) even when its every character is percent-encoded.
 * (512 bytes refused the cursor of a 256-byte id: issue 21.) */
#define API_QUERY_MAX (ID_MAX_LEN * 2 * 3 + 1)

/* Routes in the table (api.c) plus "unmatched", for the metrics arrays. */
#define API_N_ROUTES 24
/* Statuses counted in /metrics (the last slot takes the rest) and latency
 * histogram bounds (api_metrics.c). */
#define API_N_STATUS 12
#define API_N_BUCKETS 10

/* A loaded model, the experiments served with it, and the workers using
 * them. The api holds one reference for as long as the model is current;
 * each worker holds one while it has a transaction on it. The last release
 * closes the model and frees the experiments: an old pair is dropped once
 * every worker has moved on to the new one. The experiments are loaded
 * and swapped with the model (SIGHUP, POST /admin/reload), so a request
 * reads both without a lock and a reload changes both or neither. */
struct model_ref {
	model *m;
	experiments *ex; /* NULL: no --experiments */
	/* The variants' own models (docs/operations.md, "Experiments"),
	 * opened and dropped with m: each directory mapped once, however many
	 * variants or spellings name it; one that is m's directory is m. */
	model *vm[EXP_MAX_MODELS];   /* distinct, owned; n_vm of them */
	uint8_t n_vm;
	uint8_t slot_vm[EXP_MAX_MODELS]; /* ex's model slot - 1 -> 0: m; k: vm[k - 1] */
	atomic_uint refs;
};

/* A worker's handles on one model: the main model's live in the worker's
 * own fields (m, txn, rec, ...); each variant model's in one of these,
 * swapped in for the request that needs it (api_use_variant_model). */
struct worker_view {
	model *m;
	model_txn *txn;   /* NULL until first used */
	rec_ctx *rec;
	rec_params params;
	uint32_t model_rid;
	int64_t clock_offset_ms;
};

/* Per worker, written only by its thread; /metrics sums them (relaxed
 * reads of counters that only grow). */
struct worker_metrics {
	atomic_ulong requests[API_N_ROUTES][API_N_STATUS];
	atomic_ulong latency[API_N_BUCKETS + 1]; /* last: over the top bound */
	atomic_ulong latency_sum_us;
	atomic_ulong events_accepted, events_rejected;
	atomic_ulong events_refused_live; /* new customers past the cap */
	atomic_ulong recs_precomputed; /* customer answers from precomputed lists */
	atomic_ulong recs_topped_up;   /* ... of them, complete lists topped up */
	atomic_ulong recs_live_cached; /* ... from the live cache (rec_for_history_cached) */
};

struct api {
	_Atomic(struct model_ref *) current;
	state *state;
	events_writer *events;
	char *model_dir;
	char *experiments_path; /* --experiments FILE, or NULL */
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
	applier *applier;  /* with --event-log, else NULL */
	attribution *attribution; /* experiments' served answers, or NULL */
	live_items *live;  /* items added since training (PUT /v1/items) */
	double max_lag;    /* --max-lag: /readyz 503 beyond it */
	/* libmicrohttpd's open connections, for /metrics. */
	unsigned (*connections)(void *arg);
	void *connections_arg;
};

/* Per pool thread (see api.h). */
struct worker {
	struct model_ref *ref; /* the model this worker's transactions are on */
	model *m;
	model_txn *txn;   /* live only inside a route's API_TXN_SNAPSHOT */
	state_txn *stxn;  /* likewise */
	bool in_txn;      /* txn and stxn are live (for asserts) */
	rec_ctx *rec;
	rec_params params; /* what rec is configured with outside experiments */
	size_t route; /* index in the route table of the request being served */
	struct worker_metrics metrics;
	struct worker *next;
	rec_result result;
	struct rec_live live; /* result's live items (live_items_merge) */
	uint32_t exclude[API_MAX_EXCLUDE + API_MAX_BASKET];
	uint32_t basket[API_MAX_BASKET];
	event_in events[API_MAX_EVENTS];
	char numeric_ids[API_MAX_EVENTS][2][24]; /* ids sent as JSON numbers */
	char qbuf[API_QUERY_MAX];  /* small decoded query values */
	char idbuf[ID_MAX_LEN + 1]; /* an id from the query (api_query_id) */
	uint32_t model_rid;        /* recid_model_id of m */
	int64_t clock_offset_ms;   /* model_now(m) - the wall clock, for rec_ids */
	char xbuf[API_MAX_EXCLUDE * (ID_MAX_LEN + 1) * 3]; /* exclude= */
	struct worker_view views[EXP_MAX_MODELS]; /* ref->vm's, same order */
	struct worker_view main_view; /* the main model's while a view is in */
	uint8_t view;     /* 0: the main model's fields are in; k: views[k - 1] */
};

/* A route's handler. It runs inside the transactions its route declares
 * (api.c's table) and answers in resp, or defers (http_defer). */
typedef void (*api_handler)(api *a, struct worker *w, const http_request *req,
			    http_response *resp);

/* ---- api.c -------------------------------------------------------------- */

/* The route's label in /metrics ("GET /v1/customers/{customer}"), or
 * "unmatched" for API_N_ROUTES - 1. */
void api_route_label(size_t route, strbuf *sb);
/* Makes the worker answer this request from the model of a variant with
 * model_slot `slot` (0, or a slot that is the main model: nothing
 * changes): m, txn, rec, params, model_rid and clock_offset_ms become that
 * model's, its snapshot taken now, until the route ends (api_handle puts
 * the main model's back). Only inside a route's API_TXN_SNAPSHOT. Returns
 * 0, or -1 and a 503 in resp when no transaction can be opened. */
int api_use_variant_model(struct worker *w, uint8_t slot, http_response *resp);
/* A reference to the current model, for work that outlives the request
 * (a streamed download); give it back with api_model_release. */
struct model_ref *api_model_acquire(api *a);
void api_model_release(struct model_ref *r);
/* A 500 for a failed model or state read (rc a STORE_* code). */
void api_storage_error(http_response *resp, int rc);
/* JSON helpers: a C string, a time as ISO 8601, "model":"<model_id>". */
void api_add_str(strbuf *sb, const char *s);
void api_add_time(strbuf *sb, int64_t t);
void api_add_model_field(strbuf *sb, const model *m);
/* GET /v1/experiments: the experiments served with the current model. */
void api_get_experiments(api *a, struct worker *w, const http_request *req,
			 http_response *resp);

/* ---- api_params.c -------------------------------------------------------- */

/* Each reads one parameter into *out (left alone when absent) or answers
 * 400 and returns -1. */
int api_param_uint(struct worker *w, const http_request *req, http_response *resp,
		   const char *name, uint32_t min, uint32_t max, uint32_t *out);
int api_param_bool(struct worker *w, const http_request *req, http_response *resp,
		   const char *name, bool *out);
/* A date, YYYY-MM-DD, as days since 1970-01-01 (time_parse_date). */
int api_param_day(struct worker *w, const http_request *req, http_response *resp,
		  const char *name, int32_t *out);
/* Checks and normalises an id (what: "customer", "item" in messages). */
int api_check_id(const char *what, http_response *resp, const char **id, size_t *len);
/* The id in path segment `seg`, checked. */
int api_path_id(const http_request *req, unsigned seg, const char *what, http_response *resp,
		const char **id, size_t *len);
/* Adds an item id to f's exclusions (unknown ids are ignored). Needs the
 * transactions. */
void api_exclude_id(struct worker *w, rec_filter *f, const char *id, size_t len);
/* The business rules from the query string: category, exclude, price
 * range, new_since, include_purchased, and explain (because lists; *explain holds the
 * route's default on entry). `defaults` (NULL: none), an experiment
 * variant's params, change the defaults of include_purchased, explain and
 * the price range; a parameter the query gives wins over them. Needs the
 * transactions (ids are looked up). */
int api_query_filter(struct worker *w, const http_request *req, http_response *resp,
		     const exp_params *defaults, rec_filter *f, bool *explain);
/* An id from the query string (`name`, e.g. customer_id), checked and
 * normalised like a path id; *id NULL when absent. The id lives in the
 * worker until its next request. */
int api_query_id(struct worker *w, const http_request *req, http_response *resp,
		 const char *name, const char *what, const char **id, size_t *len);
/* The body as JSON (the caller owns it), or NULL and a 400 (`required`,
 * the message when there is no body). */
json_t *api_body_json(const http_request *req, http_response *resp, const char *required);
/* The body as a JSON object (the caller owns it), or NULL and a 400. */
json_t *api_body_object(const http_request *req, http_response *resp);
/* A JSON string field as an id; *id NULL when absent. */
int api_json_id(json_t *obj, const char *key, const char *what, http_response *resp,
		const char **id, size_t *len);
/* Room for an audience filter's strings, which the filter borrows. */
struct api_filter_store {
	char country[256];
	char names[AUDIENCE_MAX_ATTRS][128];
	char values[AUDIENCE_MAX_ATTRS][256];
};
/* The audience filter from the query string (country, attr.NAME,
 * min_monetary, max_monetary, last_purchase_before, last_purchase_after)
 * into *f, its strings in *store. */
int api_audience_filter(struct worker *w, const http_request *req, http_response *resp,
			struct api_filter_store *store, audience_filter *f);
/* Audience cursors: the last customer id of a page, hex-encoded (opaque to
 * clients and safe in a URL). Decoding returns 0, or -1 for anything this
 * server did not hand out; `out` has room for ID_MAX_LEN bytes. */
void api_add_cursor(strbuf *sb, const char *id, size_t len);
int api_decode_cursor(const char *s, size_t n, char *out, size_t *len);

/* ---- api_metrics.c ------------------------------------------------------- */

/* Counts one answer of `route` with `status` that took `secs`. */
void api_record(struct worker *w, size_t route, int status, double secs);

/* ---- handlers, by file --------------------------------------------------- */

void api_get_metrics(api *a, struct worker *w, const http_request *req, http_response *resp);

void api_get_customer(api *a, struct worker *w, const http_request *req, http_response *resp);
void api_get_customer_recs(api *a, struct worker *w, const http_request *req,
			   http_response *resp);
void api_get_item_similar(api *a, struct worker *w, const http_request *req,
			  http_response *resp);
void api_post_recommendations(api *a, struct worker *w, const http_request *req,
			      http_response *resp);

void api_get_segments(api *a, struct worker *w, const http_request *req, http_response *resp);
void api_get_audience(api *a, struct worker *w, const http_request *req, http_response *resp);
void api_get_audience_export(api *a, struct worker *w, const http_request *req,
			     http_response *resp);

void api_get_console(api *a, struct worker *w, const http_request *req, http_response *resp);
void api_get_model(api *a, struct worker *w, const http_request *req, http_response *resp);
void api_get_items(api *a, struct worker *w, const http_request *req, http_response *resp);
void api_get_segment_transitions(api *a, struct worker *w, const http_request *req,
				 http_response *resp);
void api_get_customer_events(api *a, struct worker *w, const http_request *req,
			     http_response *resp);

void api_post_events(api *a, struct worker *w, const http_request *req, http_response *resp);
void api_put_consent(api *a, struct worker *w, const http_request *req, http_response *resp);
void api_delete_customer(api *a, struct worker *w, const http_request *req,
			 http_response *resp);

void api_put_item(api *a, struct worker *w, const http_request *req, http_response *resp);

void api_get_experiment_report(api *a, struct worker *w, const http_request *req,
			       http_response *resp);

/* ---- experiments (api_experiments.c) ---- */
/* The variants' own models of ex, opened into r (r->vm, r->n_vm,
 * r->slot_vm): each directory once, compared by resolved path, and one
 * that is the main model's directory is the main model. Read-only and
 * validated whole like the main model (model_open). Returns 0, or -1 with
 * a message in *err and nothing left open. */
int api_open_variant_models(api *a, const char *path, const experiments *ex,
			    struct model_ref *r, strbuf *err);
/* Closes vm[0..n) (each owned by the model_ref holding them). */
void api_variant_models_close(model **vm, uint8_t n);
/* Tells the attribution batcher each experiment of ex (names, shares),
 * for the report; a refusal is logged and leaves that one uncounted. */
void api_define_experiments(api *a, const experiments *ex);
/* Appends msg to sb with dir taken out ("DIR/model.mdb" becomes
 * "model.mdb", DIR alone "the model directory"): answers say what is
 * wrong with a model, not where the server keeps its files (api.c). */
void api_add_without_dir(strbuf *sb, const char *msg, const char *dir);

#endif
