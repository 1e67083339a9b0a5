/*
 * api_reads: the routes that read one customer or item: the profile,
 * recommendations for a customer, similar items, and recommendations for a
 * basket. Every handler here runs inside its route's model and state
 * snapshots (API_TXN_SNAPSHOT in api.c's table).
 */
#include <assert.h>
#include <string.h>

#include "api_internal.h"
#include "audience.h"
#include "ingest.h" /* enum event_type */
#include "rec_json.h"
#include "recid.h"
#include "rfm.h"
#include "util.h"

/* What the model and state say about a customer. */
struct who {
	uint32_t flags;       /* STATE_* */
	bool known;           /* in the model (and not erased) */
	bool has_events;      /* live events recorded (and not erased) */
	model_customer cust;
	state_events events;
};

static int lookup_customer(struct worker *w, const char *id, size_t len, struct who *who)
{
	assert(w->in_txn);
	memset(who, 0, sizeof(*who));
	if (state_customer_flags(w->stxn, id, len, &who->flags) != 0)
		return STORE_ERROR;
	if (who->flags & STATE_ERASED)
		return 0;
	int rc = model_customer_get(w->txn, id, len, &who->cust);
	if (rc == 0) {
		who->known = true;
		/* Its list loads while the state is read. With the record's
		 * prefetch in find_customer: 69,800 -> 72,100 req/s, 13.8 ->
		 * 13.4 us of CPU a request (medians of 8 alternated pairs, the
		 * 958,000-customer model; 6 of the 8 pairs faster, so within
		 * the host's noise, but not slower). */
		model_precomputed_prefetch(model_txn_model(w->txn), &who->cust);
	} else if (rc != STORE_NOTFOUND) {
		return rc;
	}
	if ((rc = state_events_get(w->stxn, id, len, &who->events)) != 0)
		return rc;
	who->has_events = who->events.count > 0;
	return 0;
}

/* {"customer_id":ID,"model":... with no closing brace. */
static void open_customer_answer(strbuf *sb, const model *m, const char *id, size_t len)
{
	sb_adds(sb, "{\"customer_id\":");
	sb_add_json_str(sb, id, len);
	sb_addc(sb, ',');
	api_add_model_field(sb, m);
}

/* ---- experiments and rec_id ------------------------------------------------ */

/* What an answer is served under: the route, and the experiment and
 * variant of whoever asked (none without an id). */
struct served {
	enum recid_route route;
	exp_assignment as;
	const exp_params *params; /* the variant's, or NULL */
	enum exp_source source;   /* the variant's, or EXP_SOURCE_DEFAULT */
	int64_t time_ms;          /* on the model's clock, as events are */
};

/* Returns 0, or -1 and a 503 in resp when the variant's own model cannot
 * be read. From here on the request reads the variant's model, if it has
 * one (api_use_variant_model): ids in the query are looked up in it. */
static int served_assign(struct worker *w, enum recid_route route, const char *id, size_t len,
			 struct served *s, http_response *resp)
{
	s->route = route;
	experiments_assign(w->ref->ex, route, id, len, &s->as);
	const exp_variant *v = s->as.variant;
	s->params = v && v->has_params ? &v->params : NULL;
	s->source = v ? v->source : EXP_SOURCE_DEFAULT;
	/* the wall clock's milliseconds moved onto model_now's clock (serve
	 * --clock), so a rec_id's time compares with event times */
	if (v && api_use_variant_model(w, v->model_slot, resp) != 0)
		return -1;
	s->time_ms = (int64_t)(util_now() * 1000.0) + w->clock_offset_ms;
	return 0;
}

/* Scores with the variant's neighbors_used and cutoff; served_end puts
 * the worker's own back. rec_ctx_configure only sets three fields. */
static void served_begin(struct worker *w, const struct served *s)
{
	if (!s->params || !s->params->any_rec)
		return;
	rec_params p = w->params;
	if (s->params->rec.neighbors_used)
		p.neighbors_used = s->params->rec.neighbors_used;
	if (s->params->rec.cutoff >= 0.0f)
		p.cutoff = s->params->rec.cutoff;
	rec_ctx_configure(w->rec, &p);
}

static void served_end(struct worker *w, const struct served *s)
{
	if (s->params && s->params->any_rec)
		rec_ctx_configure(w->rec, &w->params);
}

/* ,"rec_id":...,"experiment":... and, inside an experiment, the answer
 * told to the attribution batcher (customer: the id it was assigned by). */
static void served_tag(api *a, struct worker *w, strbuf *sb, const struct served *s,
		       const char *customer, size_t customer_len, const rec_result *r)
{
	const exp_experiment *e = s->as.experiment;
	recid id = {
		.experiment = e ? e->id : 0,
		.variant = e ? s->as.variant_index : 0,
		.model = w->model_rid,
		.route = (uint8_t)s->route,
		.time_ms = s->time_ms,
		.seq = recid_next_seq(),
	};
	char text[RECID_LEN + 1];
	if (recid_encode(&id, text) != RECID_OK)
		text[0] = '\0'; /* a clock before 1970 or past 10889: no id to give */
	rec_json_tag(sb, text, e ? e->name : NULL, e ? s->as.variant->name : NULL);
	if (!e)
		return;
	uint32_t items[REC_MAX_N];
	uint32_t n = r ? r->n : 0;
	for (uint32_t i = 0; i < n; i++)
		items[i] = r->items[i].item;
	/* ATTRIBUTION: the one call per answer inside an experiment */
	attribution_note_served(a->attribution, e->id, s->as.variant_index, e->name,
				s->as.variant->name, customer, customer_len, w->m, items, n,
				s->time_ms / 1000);
}

/* ,"source":"none","items":[] : a holdout's answer. */
static void add_holdout(strbuf *sb)
{
	sb_adds(sb, ",\"source\":\"none\",\"items\":[]}");
}

void api_get_customer(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	const char *id;
	size_t len;
	struct who who;
	if (api_path_id(req, 2, "customer", resp, &id, &len) != 0)
		return;
	int rc = lookup_customer(w, id, len, &who);
	if (rc) {
		api_storage_error(resp, rc);
		return;
	}
	if (!who.known && !who.has_events) {
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
	open_customer_answer(sb, w->m, id, len);
	sb_adds(sb, ",\"segment\":");
	api_add_str(sb, segment_name(seg));
	sb_adds(sb, ",\"rfm\":");
	if (fig->frequency > 0) {
		sb_adds(sb, "{\"recency_days\":");
		sb_add_double(sb, (double)(now - fig->last_purchase) / 86400.0, 4);
		sb_adds(sb, ",\"frequency\":");
		sb_add_u64(sb, fig->frequency);
		sb_adds(sb, ",\"monetary\":");
		rec_json_add_money(sb, fig->monetary);
		sb_addf(sb, ",\"r\":%u,\"f\":%u,\"m\":%u}", sc.r, sc.f, sc.m);
		sb_adds(sb, ",\"first_purchase\":");
		api_add_time(sb, fig->first_purchase);
		sb_adds(sb, ",\"last_purchase\":");
		api_add_time(sb, fig->last_purchase);
	} else {
		sb_adds(sb, "null,\"first_purchase\":null,\"last_purchase\":null");
	}
	sb_adds(sb, ",\"intent\":");
	rec_json_add_intent(sb, live.intent);
	sb_adds(sb, ",\"history_size\":");
	sb_add_u64(sb, who.known ? who.cust.n_hist : 0);
	sb_adds(sb, ",\"events_since_model\":");
	sb_add_u64(sb, live.events);
	sb_adds(sb, ",\"last_event\":");
	if (live.last_event)
		api_add_time(sb, live.last_event);
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
}

void api_get_customer_recs(api *a, struct worker *w, const http_request *req,
			   http_response *resp)
{
	const char *id;
	size_t len;
	uint32_t n = API_DEFAULT_N;
	bool explain = true;
	rec_filter f;
	struct who who;
	struct served s;

	if (api_path_id(req, 2, "customer", resp, &id, &len) != 0)
		return;
	if (served_assign(w, RECID_ROUTE_CUSTOMER, id, len, &s, resp) != 0)
		return;
	if (s.params && s.params->n)
		n = s.params->n;
	if (api_param_uint(w, req, resp, "n", 1, REC_MAX_N, &n) != 0 ||
	    api_query_filter(w, req, resp, s.params, &f, &explain) != 0)
		return;
	strbuf *sb = resp->body;
	if (s.source == EXP_SOURCE_NONE) {
		open_customer_answer(sb, w->m, id, len);
		served_tag(a, w, sb, &s, id, len, NULL);
		add_holdout(sb);
		return;
	}
	int rc = lookup_customer(w, id, len, &who);
	if (rc) {
		api_storage_error(resp, rc);
		return;
	}
	/* A popular variant still says the segment: only the items change. */
	bool personal = (who.known || who.has_events) && !(who.flags & STATE_NO_PERSONALIZATION);
	f.personal = personal && s.source != EXP_SOURCE_POPULAR;
	served_begin(w, &s);
	rc = f.personal ? rec_for_history_cached(w->rec, w->txn, who.known ? &who.cust : NULL,
						  &who.events, n, &f, &w->result) : 0;
	if (!f.personal)
		rec_popular(w->rec, w->m, n, &f, &w->result);
	served_end(w, &s);
	if (rc) {
		api_storage_error(resp, rc);
		return;
	}
	if (w->result.precomputed)
		atomic_fetch_add_explicit(&w->metrics.recs_precomputed, 1, memory_order_relaxed);
	if (w->result.topped_up)
		atomic_fetch_add_explicit(&w->metrics.recs_topped_up, 1, memory_order_relaxed);
	if (w->result.live_cached)
		atomic_fetch_add_explicit(&w->metrics.recs_live_cached, 1, memory_order_relaxed);
	/* The new-arrivals slot holds the items added since training too. */
	live_items_merge(a->live, w->m, who.known ? &who.cust : NULL, &f, n, &w->result, &w->live);
	open_customer_answer(sb, w->m, id, len);
	served_tag(a, w, sb, &s, id, len, &w->result);
	if (personal) {
		customer_live live;
		int64_t now = model_now(w->m);
		customer_live_figures(w->m, who.known ? &who.cust : NULL, &who.events, &live);
		sb_adds(sb, ",\"segment\":");
		api_add_str(sb, segment_name(customer_live_segment(w->m, &live, now, NULL)));
	}
	sb_adds(sb, ",\"source\":");
	api_add_str(sb, rec_source_name(w->result.source));
	sb_addc(sb, ',');
	rec_json_items(sb, w->m, &w->result, REC_JSON_API, explain);
	sb_addc(sb, '}');
}

void api_get_item_similar(api *a, struct worker *w, const http_request *req,
			  http_response *resp)
{
	const char *id, *cid;
	size_t len, clen;
	uint32_t n = API_DEFAULT_N, idx;
	bool explain = false;
	rec_filter f;
	struct served s;

	if (api_path_id(req, 2, "item", resp, &id, &len) != 0 ||
	    api_query_id(w, req, resp, "customer_id", "customer", &cid, &clen) != 0)
		return;
	if (served_assign(w, RECID_ROUTE_ITEM, cid, clen, &s, resp) != 0)
		return;
	if (s.params && s.params->n)
		n = s.params->n;
	if (api_param_uint(w, req, resp, "n", 1, REC_MAX_N, &n) != 0 ||
	    api_query_filter(w, req, resp, s.params, &f, &explain) != 0)
		return;
	int rc = model_item_lookup(w->txn, id, len, &idx);
	if (rc == 0 && s.source == EXP_SOURCE_DEFAULT) {
		rc = rec_similar(w->rec, w->txn, idx, n, &f, &w->result);
	} else if (rc == 0 && s.source == EXP_SOURCE_POPULAR) {
		if (f.n_exclude < ARRAY_SIZE(w->exclude))
			w->exclude[f.n_exclude++] = idx; /* not the item itself */
		rec_popular(w->rec, w->m, n, &f, &w->result);
	}
	if (rc == STORE_NOTFOUND) {
		http_error(resp, 404, "unknown_item", "item %.*s is not in the model", (int)len, id);
		return;
	}
	if (rc) {
		api_storage_error(resp, rc);
		return;
	}
	strbuf *sb = resp->body;
	sb_adds(sb, "{\"item_id\":");
	sb_add_json_str(sb, id, len);
	if (cid) {
		sb_adds(sb, ",\"customer_id\":");
		sb_add_json_str(sb, cid, clen);
	}
	sb_addc(sb, ',');
	api_add_model_field(sb, w->m);
	served_tag(a, w, sb, &s, cid, clen, s.source == EXP_SOURCE_NONE ? NULL : &w->result);
	if (s.source == EXP_SOURCE_NONE) {
		add_holdout(sb);
		return;
	}
	/* "source" only where a variant changed it: the route's own answer
	 * has always been the neighbours */
	if (s.source == EXP_SOURCE_POPULAR)
		sb_adds(sb, ",\"source\":\"popular\"");
	sb_addc(sb, ',');
	rec_json_items(sb, w->m, &w->result, REC_JSON_API, false);
	sb_addc(sb, '}');
}

/* POST /v1/recommendations: a basket or browsing session. */
void api_post_recommendations(api *a, struct worker *w, const http_request *req,
			      http_response *resp)
{
	json_t *root = api_body_object(req, resp);
	if (!root)
		return;
	const char *cid;
	size_t clen;
	uint32_t n = API_DEFAULT_N, n_items = 0, unknown = 0;
	bool explain = true;
	rec_filter f;
	struct who who;
	struct served s;
	memset(&who, 0, sizeof(who));
	json_t *items = json_object_get(root, "items");
	json_t *jn = json_object_get(root, "n");
	json_t *jexplain = json_object_get(root, "explain");

	if (!json_is_array(items)) {
		http_error(resp, 400, "invalid_field", "items must be an array of item ids");
		goto out;
	}
	if (json_array_size(items) > API_MAX_BASKET) {
		http_error(resp, 400, "basket_too_large", "items holds %zu ids; the limit is %u",
			   json_array_size(items), API_MAX_BASKET);
		goto out;
	}
	if (jn && (!json_is_integer(jn) || json_integer_value(jn) < 1 ||
		   json_integer_value(jn) > REC_MAX_N)) {
		http_error(resp, 400, "invalid_field", "n must be an integer from 1 to %u", REC_MAX_N);
		goto out;
	}
	if (jn)
		n = (uint32_t)json_integer_value(jn);
	if (jexplain && !json_is_boolean(jexplain)) {
		http_error(resp, 400, "invalid_field", "explain must be true or false");
		goto out;
	}
	if (api_json_id(root, "customer_id", "customer", resp, &cid, &clen) != 0)
		goto out;
	if (served_assign(w, RECID_ROUTE_BASKET, cid, clen, &s, resp) != 0)
		goto out;
	if (!jn && s.params && s.params->n)
		n = s.params->n;
	if (api_query_filter(w, req, resp, s.params, &f, &explain) != 0)
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
		if (api_check_id("item", resp, &iid, &ilen) != 0)
			goto out;
		if (model_item_lookup(w->txn, iid, ilen, &idx) == 0)
			w->basket[n_items++] = idx;
		else
			unknown++;
	}
	strbuf *sb = resp->body;
	if (s.source == EXP_SOURCE_NONE) {
		sb_adds(sb, "{\"customer_id\":");
		sb_add_json_str(sb, cid, clen); /* a holdout needs an id: cid is set */
		sb_addc(sb, ',');
		api_add_model_field(sb, w->m);
		served_tag(a, w, sb, &s, cid, clen, NULL);
		sb_adds(sb, ",\"source\":\"none\",\"unknown_items\":");
		sb_add_u64(sb, unknown);
		sb_adds(sb, ",\"items\":[]}");
		goto out;
	}
	if (cid) {
		int rc = lookup_customer(w, cid, clen, &who);
		if (rc) {
			api_storage_error(resp, rc);
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
				api_exclude_id(w, &f, e.item, e.item_len);
	}
	int rc = 0;
	if (s.source == EXP_SOURCE_POPULAR) {
		/* the popular list without what is in the basket */
		for (uint32_t k = 0; k < n_items && f.n_exclude < ARRAY_SIZE(w->exclude); k++)
			w->exclude[f.n_exclude++] = w->basket[k];
		rec_popular(w->rec, w->m, n, &f, &w->result);
	} else {
		served_begin(w, &s);
		rc = rec_for_basket(w->rec, w->txn, w->basket, n_items, who.known ? cid : NULL, clen,
				    n, &f, &w->result);
		served_end(w, &s);
	}
	if (rc) {
		api_storage_error(resp, rc);
		goto out;
	}
	/* Added since training: no basket item has them as neighbours. */
	live_items_merge(a->live, w->m, NULL, &f, n, &w->result, &w->live);
	sb_addc(sb, '{');
	if (cid) {
		sb_adds(sb, "\"customer_id\":");
		sb_add_json_str(sb, cid, clen);
		sb_addc(sb, ',');
	}
	api_add_model_field(sb, w->m);
	served_tag(a, w, sb, &s, cid, clen, &w->result);
	sb_adds(sb, ",\"source\":");
	api_add_str(sb, rec_source_name(w->result.source));
	sb_adds(sb, ",\"unknown_items\":");
	sb_add_u64(sb, unknown);
	sb_addc(sb, ',');
	rec_json_items(sb, w->m, &w->result, REC_JSON_API, explain);
	sb_addc(sb, '}');
out:
	json_decref(root);
}
