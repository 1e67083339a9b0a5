/*
 * api_writes: the routes that change the state: POST /v1/events, PUT
 * /v1/customers/{id}/consent and DELETE /v1/customers/{id}. Each checks
 * its request on the pool thread, hands the change to the event writer
 * (events.h) and answers only once the group commit holding it is on disk;
 * the pool thread does not wait for that (http_defer). The snapshots a
 * handler reads in are closed before that wait begins.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "util.h"

/* A write to the state between its answer being decided and the commit
 * that lets it be sent: owns copies of what it writes (the request body
 * and the worker's arrays are reused meanwhile). Freed by the writer's
 * callback. */
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
		bytes += ev[i].customer_len + ev[i].item_len + ev[i].rec_id_len;
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
		e->rec_id = NULL;
		if (ev[i].rec_id_len) {
			memcpy(p, ev[i].rec_id, ev[i].rec_id_len);
			e->rec_id = p;
			p += ev[i].rec_id_len;
		}
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
	} else if (rc == EVENTS_ELOG) {
		status = 503;
		sb_reset(&ep->answer);
		sb_adds(&ep->answer, "{\"error\":{\"code\":\"event_log_unavailable\",\"message\":"
				     "\"the shared event log could not take the write in time; nothing "
				     "was acknowledged: try again\"}}");
	} else {
		status = 503;
		sb_reset(&ep->answer);
		sb_adds(&ep->answer, ep->n ? "{\"error\":{\"code\":\"unavailable\",\"message\":"
					     "\"events could not be recorded; nothing was kept\"}}"
					   : "{\"error\":{\"code\":\"unavailable\",\"message\":"
					     "\"the change could not be recorded; try again\"}}");
	}
	api_record(ep->w, ep->route, status, util_monotonic() - ep->t0);
	http_deferred_answer(ep->d, status, ep->answer.buf, ep->answer.len);
	events_post_free(ep);
}

/* The pool thread, once the connection is suspended (after the handler
 * returned and its snapshots were closed). */
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

/* ---- POST /v1/events ---------------------------------------------------- */

static void add_rejection(strbuf *sb, size_t index, const events_error *why, bool *first)
{
	if (!*first)
		sb_addc(sb, ',');
	*first = false;
	sb_adds(sb, "{\"index\":");
	sb_add_u64(sb, index);
	sb_adds(sb, ",\"code\":");
	api_add_str(sb, events_code_name(why->code));
	sb_adds(sb, ",\"message\":");
	api_add_str(sb, why->message);
	sb_addc(sb, '}');
}

/* Parses the body: one event object or an array of them. Returns the root
 * (the caller owns it) with *batch and *total, or NULL and a 4xx. */
static json_t *events_body(const http_request *req, http_response *resp, bool *batch,
			   size_t *total)
{
	json_t *root = api_body_json(req, resp, "a JSON event object or array is required");
	if (!root)
		return NULL;
	*batch = json_is_array(root);
	*total = *batch ? json_array_size(root) : 1;
	if (!*batch && !json_is_object(root))
		http_error(resp, 400, "invalid_json", "body must be an event object or an array of them");
	else if (*total > API_MAX_EVENTS)
		http_error(resp, 413, "batch_too_large", "%zu events in one request; the limit is %u",
			   *total, API_MAX_EVENTS);
	else if (*total == 0)
		http_error(resp, 400, "invalid_json", "the array holds no events");
	else
		return root;
	json_decref(root);
	return NULL;
}

/* Whether event e (parsed, in w->events[n]) would add a live customer:
 * one with no event log yet, unknown to the model (its customers are
 * bounded by it) and not among the n events accepted before it. */
static bool adds_live_customer(struct worker *w, const event_in *e, uint32_t n)
{
	model_customer mc;
	if (state_customer_live(w->stxn, e->customer, e->customer_len) ||
	    model_customer_get(w->txn, e->customer, e->customer_len, &mc) != STORE_NOTFOUND)
		return false;
	for (uint32_t i = 0; i < n; i++)
		if (w->events[i].customer_len == e->customer_len &&
		    memcmp(w->events[i].customer, e->customer, e->customer_len) == 0)
			return false;
	return true;
}

void api_post_events(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	double t0 = util_monotonic();
	bool batch;
	size_t total;
	/* The common form without jansson (events.h), else jansson. */
	events_scan sc;
	json_t *root = NULL;
	if (req->body && events_scan_begin(&sc, req->body, req->body_len, API_MAX_EVENTS) == 0) {
		batch = sc.batch;
		total = sc.total;
	} else if (!(root = events_body(req, resp, &batch, &total))) {
		return;
	}
	assert(w->in_txn);

	int64_t now = model_now(w->m); /* the default event time */
	/* A replayed log's clock starts at as_of: an event stamped as_of in
	 * the model's first second would pass for one the model already has,
	 * and never count. */
	if (now <= model_get_info(w->m)->as_of)
		now = model_get_info(w->m)->as_of + 1;
	/* The live-customer cap, against the committed count: each event's
	 * customer is looked up only when this request could reach it.
	 * Requests in flight at once can pass it by their new customers. */
	uint64_t live = state_live_customers(w->stxn), max_live = state_live_max(a->state);
	bool near_cap = live + total > max_live;
	uint32_t accepted = 0, unknown = 0, added = 0, refused = 0;
	strbuf rejected = STRBUF_INIT;
	bool first = true;
	for (size_t i = 0; i < total; i++) {
		event_in *e = &w->events[accepted];
		events_error why;
		int rc = root ? events_parse(batch ? json_array_get(root, i) : root, e,
					     w->numeric_ids[accepted], now, &why)
			      : events_scan_next(&sc, e, w->numeric_ids[accepted], now, &why);
		if (rc == EVENTS_INVALID_TIMESTAMP && e->ts > now + 86400)
			why.message = model_clock_ahead_message(w->m); /* names the clock */
		uint32_t flags = 0;
		if (rc == 0 && state_customer_flags(w->stxn, e->customer, e->customer_len, &flags) == 0 &&
		    (flags & STATE_ERASED)) {
			why.code = EVENTS_CUSTOMER_ERASED;
			why.message = "this customer was erased; events for them are not kept";
			rc = why.code;
		}
		/* Clicks and impressions only count (state_events.h): no log. */
		if (rc == 0 && near_cap && EVENT_KEPT(e->type) && adds_live_customer(w, e, accepted)) {
			if (live + added >= max_live) {
				why.code = EVENTS_LIVE_CUSTOMER_LIMIT;
				why.message = "the server keeps no more live customers; events of "
					      "customers it knows are still taken";
				rc = why.code;
			} else {
				added++;
			}
		}
		if (rc == EVENTS_LIVE_CUSTOMER_LIMIT) {
			atomic_fetch_add_explicit(&w->metrics.events_refused_live, 1,
						  memory_order_relaxed);
			refused++;
			if (!batch) {
				http_error(resp, 503, "live_customer_limit",
					   "the server keeps at most %llu live customers and "
					   "takes no events of new ones until idle ones expire",
					   (unsigned long long)max_live);
				goto out;
			}
			add_rejection(&rejected, i, &why, &first);
			continue;
		}
		if (rc) {
			if (!batch) {
				http_error(resp, 400, events_code_name(why.code), "%s", why.message);
				goto out;
			}
			add_rejection(&rejected, i, &why, &first);
			atomic_fetch_add_explicit(&w->metrics.events_rejected, 1, memory_order_relaxed);
			continue;
		}
		uint32_t idx;
		e->known_item = e->item_len == 0 ||
				model_item_lookup(w->txn, e->item, e->item_len, &idx) == 0;
		unknown += !e->known_item;
		accepted++;
	}

	if (accepted == 0) {
		/* Refused for the cap, the batch may be sent again later: 503. */
		sb_adds(resp->body, refused ? "{\"error\":{\"code\":\"live_customer_limit\","
					      "\"message\":\"no event of the batch was taken; some "
					      "were of new customers past the live-customer cap\"}"
					    : "{\"error\":{\"code\":\"no_valid_events\",\"message\":"
					      "\"every event in the batch was rejected\"}");
		sb_adds(resp->body, ",\"accepted\":0,\"rejected\":[");
		sb_add(resp->body, sb_str(&rejected), rejected.len);
		sb_adds(resp->body, "]}");
		resp->status = refused ? 503 : 400;
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
	/* The answer waits for the commit, the pool thread does not. */
	http_defer(resp, events_post_start, ep);
out:
	sb_release(&rejected);
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

/* Whether a consent or erasure record for this customer would be a new
 * record of someone neither the model nor the state knows, past the cap
 * (then the answer is a 503, as for events of new customers: the record
 * may be sent again once the operator raised the cap). A record that
 * exists is only changed. */
static bool flag_record_refused(api *a, struct worker *w, const char *id, size_t len,
				http_response *resp)
{
	uint64_t max = state_live_max(a->state);
	model_customer c;
	if (state_flag_records(w->stxn) < max || state_customer_has_flags(w->stxn, id, len) ||
	    model_customer_get(w->txn, id, len, &c) == 0 || state_customer_live(w->stxn, id, len))
		return false;
	atomic_fetch_add_explicit(&w->metrics.events_refused_live, 1, memory_order_relaxed);
	http_error(resp, 503, "live_customer_limit",
		   "the server keeps consent and erasure records of at most %llu customers it "
		   "does not know (--max-live-customers); customers it knows are still taken",
		   (unsigned long long)max);
	return true;
}

void api_put_consent(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	const char *id;
	size_t len;
	uint32_t flags = 0;
	if (api_path_id(req, 2, "customer", resp, &id, &len) != 0)
		return;
	assert(w->in_txn);
	if (state_customer_flags(w->stxn, id, len, &flags) != 0) {
		api_storage_error(resp, STORE_ERROR);
		return;
	}
	/* As the profile answers: an erased customer is not known. (Consent
	 * for a customer not seen yet is kept, for when they come.) */
	if (flags & STATE_ERASED) {
		http_error(resp, 404, "unknown_customer", "customer %.*s is not known", (int)len, id);
		return;
	}
	if (flag_record_refused(a, w, id, len, resp))
		return;
	json_t *root = api_body_object(req, resp);
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

void api_delete_customer(api *a, struct worker *w, const http_request *req,
			 http_response *resp)
{
	const char *id;
	size_t len;
	if (api_path_id(req, 2, "customer", resp, &id, &len) != 0)
		return;
	assert(w->in_txn);
	if (flag_record_refused(a, w, id, len, resp))
		return;
	defer_flag_change(a, w, resp, id, len, STATE_ERASED, 0, ",\"erased\":true}");
}
