/*
 * api_audiences: GET /v1/segments (customers per segment, cached briefly)
 * and GET /v1/audiences/{name} (members with their recommendations, paged
 * by cursor or ranked by intent). Both run inside their route's model and
 * state snapshots.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "audience.h"
#include "rec_json.h"
#include "rfm.h"
#include "util.h"

/* ---- segments ----------------------------------------------------------- */

static void compute_segments(struct worker *w, strbuf *out)
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
	api_add_model_field(out, w->m);
	sb_adds(out, ",\"at\":");
	api_add_time(out, now);
	sb_adds(out, ",\"customers\":");
	sb_add_u64(out, total);
	sb_adds(out, ",\"segments\":{");
	for (int s = 0; s < SEG_COUNT; s++) {
		if (s)
			sb_addc(out, ',');
		api_add_str(out, segment_name(s));
		sb_addc(out, ':');
		sb_add_u64(out, counts[s]);
	}
	sb_adds(out, "}}");
}

void api_get_segments(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	assert(w->in_txn);
	pthread_mutex_lock(&a->segments_lock);
	double now = util_monotonic();
	if (!a->segments_body.len || now - a->segments_at > API_SEGMENTS_TTL ||
	    strcmp(a->segments_model, model_get_info(w->m)->model_id) != 0) {
		sb_reset(&a->segments_body);
		compute_segments(w, &a->segments_body);
		a->segments_at = now;
		snprintf(a->segments_model, sizeof(a->segments_model), "%s",
			 model_get_info(w->m)->model_id);
	}
	sb_add(resp->body, a->segments_body.buf, a->segments_body.len);
	pthread_mutex_unlock(&a->segments_lock);
}

/* ---- audiences ---------------------------------------------------------- */

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
 * Writes the members of "customers":[...]. */
static int audience_by_intent(struct worker *w, audience_walk *walk, uint32_t n, uint32_t limit,
			      bool explain, strbuf *sb)
{
	assert(limit >= 1);
	struct ranked *top = xmallocarray(limit, sizeof(*top));
	uint32_t count = 0;
	audience_member mb;
	int rc;
	while ((rc = audience_walk_next(walk, &mb)) == 0) {
		float intent = mb.live.intent;
		if (count == limit && ranks_before(&top[count - 1], intent, mb.id, mb.len))
			continue; /* no better than the last kept: the common case */
		uint32_t pos = count < limit ? count : limit - 1;
		while (pos > 0 && !ranks_before(&top[pos - 1], intent, mb.id, mb.len))
			pos--;
		uint32_t last = count < limit ? count++ : limit - 1; /* the slot given up */
		memmove(&top[pos + 1], &top[pos], (size_t)(last - pos) * sizeof(*top));
		top[pos].live = mb.live;
		top[pos].seg = mb.seg;
		top[pos].len = mb.len;
		memcpy(top[pos].id, mb.id, mb.len);
	}
	if (rc == STORE_NOTFOUND)
		rc = 0;
	for (uint32_t i = 0; rc == 0 && i < count; i++) {
		rc = rec_for_customer(w->rec, w->txn, w->stxn, top[i].id, top[i].len, n, NULL,
				      &w->result);
		if (rc == 0) {
			if (i)
				sb_addc(sb, ',');
			rec_json_member(sb, w->m, top[i].id, top[i].len, top[i].seg,
					top[i].live.intent, &w->result, REC_JSON_API, explain);
		}
	}
	free(top);
	return rc;
}

/* order=id (the default): the next `limit` members after the cursor, and
 * the cursor of the page after them (NULL at the end). Writes the members
 * of "customers":[...], then the rest of the answer. */
static int audience_page(struct worker *w, audience_walk *walk, uint32_t n, uint32_t limit,
			 bool explain, strbuf *sb)
{
	uint32_t got = 0;
	char last_id[ID_MAX_LEN];
	size_t last_len = 0;
	bool more = false;
	audience_member mb;
	int rc;
	while ((rc = audience_walk_next(walk, &mb)) == 0) {
		if (got == limit) {
			more = true; /* another member exists: there is a next page */
			break;
		}
		rc = rec_for_customer(w->rec, w->txn, w->stxn, mb.id, mb.len, n, NULL, &w->result);
		if (rc != 0)
			break;
		if (got++)
			sb_addc(sb, ',');
		rec_json_member(sb, w->m, mb.id, mb.len, mb.seg, mb.live.intent, &w->result,
				REC_JSON_API, explain);
		memcpy(last_id, mb.id, mb.len);
		last_len = mb.len;
	}
	if (rc != 0 && rc != STORE_NOTFOUND)
		return rc;
	sb_adds(sb, "],\"next_cursor\":");
	if (more)
		api_add_cursor(sb, last_id, last_len);
	else
		sb_adds(sb, "null");
	sb_addc(sb, '}');
	return 0;
}

void api_get_audience(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	uint32_t n = API_DEFAULT_N, limit = API_DEFAULT_PAGE, days = 0, hours = 0;
	audience aud;
	char after[ID_MAX_LEN];
	size_t after_len = 0;
	bool have_cursor = false, explain = true;
	const char *v;
	size_t len;

	if (api_param_uint(w, req, resp, "n", 1, REC_MAX_N, &n) != 0 ||
	    api_param_uint(w, req, resp, "limit", 1, API_MAX_PAGE, &limit) != 0 ||
	    api_param_uint(w, req, resp, "days", 1, AUDIENCE_MAX_DAYS, &days) != 0 ||
	    api_param_uint(w, req, resp, "hours", 1, AUDIENCE_MAX_HOURS, &hours) != 0 ||
	    api_param_bool(w, req, resp, "explain", &explain) != 0)
		return;
	if ((uint64_t)limit * n > API_MAX_AUDIENCE_ITEMS) {
		http_error(resp, 400, "invalid_parameter",
			   "limit x n asks for %llu items; one answer holds at most %u: lower limit "
			   "or n (order=id pages on with the cursor)",
			   (unsigned long long)limit * n, API_MAX_AUDIENCE_ITEMS);
		return;
	}
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
	if (rc < 0 || (rc == 1 && api_decode_cursor(v, len, after, &after_len) != 0)) {
		http_error(resp, 400, "invalid_parameter", "cursor is not one this server gave out");
		return;
	}
	have_cursor = rc == 1;
	if (have_cursor && by_intent) {
		http_error(resp, 400, "invalid_parameter",
			   "order=intent returns the top `limit` members in one answer: no cursor");
		return;
	}

	audience_walk *walk = NULL;
	if (audience_walk_begin(&aud, w->txn, w->stxn, have_cursor ? after : NULL, after_len,
				&walk) != 0) {
		api_storage_error(resp, STORE_ERROR);
		return;
	}
	strbuf *sb = resp->body;
	sb_adds(sb, "{\"audience\":");
	sb_add_json_str(sb, req->segs[2], req->seg_lens[2]);
	sb_addc(sb, ',');
	api_add_model_field(sb, w->m);
	sb_adds(sb, ",\"customers\":[");
	if (by_intent) {
		rc = audience_by_intent(w, walk, n, limit, explain, sb);
		if (rc == 0)
			sb_adds(sb, "],\"next_cursor\":null}");
	} else {
		rc = audience_page(w, walk, n, limit, explain, sb);
	}
	audience_walk_end(walk);
	if (rc != 0)
		api_storage_error(resp, rc); /* replaces the partial body */
}
