/*
 * api_audiences: GET /v1/segments (customers per segment, cached briefly)
 * and GET /v1/audiences/{name} (members with their recommendations, paged
 * by cursor or ranked by intent). Both run inside their route's model and
 * state snapshots.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "audience.h"
#include "export_fmt.h"
#include "rec_json.h"
#include "rfm.h"
#include "util.h"

/* ---- segments ----------------------------------------------------------- */

/* The customers of every segment: the walk of the `all` audience (the
 * same code lists each segment's members, so counts and members agree),
 * counting those who withdrew consent as well: they are customers, though
 * no audience lists them. */
static int compute_segments(struct worker *w, strbuf *out)
{
	uint64_t counts[SEG_COUNT] = { 0 }, total = 0;
	int64_t now = model_now(w->m);
	audience all;
	audience_parse("all", 3, 0, 0, &all);
	all.with_no_consent = true;
	audience_walk *walk = NULL;
	audience_member mb;
	int rc = audience_walk_begin(&all, w->txn, w->stxn, NULL, 0, &walk);
	while (rc == 0 && (rc = audience_walk_next(walk, &mb)) == 0) {
		counts[mb.seg]++;
		total++;
	}
	audience_walk_end(walk);
	if (rc != STORE_NOTFOUND)
		return rc;
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
	return 0;
}

void api_get_segments(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	assert(w->in_txn);
	pthread_mutex_lock(&a->segments_lock);
	double now = util_monotonic();
	if (!a->segments_body.len || now - a->segments_at > API_SEGMENTS_TTL ||
	    strcmp(a->segments_model, model_get_info(w->m)->model_id) != 0) {
		sb_reset(&a->segments_body);
		int rc = compute_segments(w, &a->segments_body);
		if (rc != 0) {
			sb_reset(&a->segments_body);
			pthread_mutex_unlock(&a->segments_lock);
			api_storage_error(resp, rc);
			return;
		}
		a->segments_at = now;
		snprintf(a->segments_model, sizeof(a->segments_model), "%s",
			 model_get_info(w->m)->model_id);
	}
	sb_add(resp->body, a->segments_body.buf, a->segments_body.len);
	pthread_mutex_unlock(&a->segments_lock);
}

/* ---- audiences ---------------------------------------------------------- */

/* One member's recommendations (frequency capped as every audience answer
 * and export is) into w->result. */
static int member_recs(api *a, struct worker *w, const audience *aud, const audience_member *mb,
		       uint32_t n)
{
	rec_filter f;
	export_cap_filter(&f, w->txn, mb, w->exclude, ARRAY_SIZE(w->exclude));
	f.new_since = aud->new_since;
	int rc = rec_for_customer(w->rec, w->txn, w->stxn, mb->id, mb->len, n, &f, &w->result);
	if (rc == 0)
		live_items_merge(a->live, w->m, mb->known ? &mb->cust : NULL, &f, n, &w->result,
				 &w->live);
	return rc;
}

/* One member as JSON: rec_json's member, then the audience's own fields. */
static void add_member(struct worker *w, const audience *aud, const audience_member *mb,
		       float intent, bool explain, strbuf *sb)
{
	rec_json_member(sb, w->m, mb->id, mb->len, mb->seg, intent, &w->result, REC_JSON_API,
			explain);
	assert(sb->len && sb->buf[sb->len - 1] == '}');
	sb_truncate(sb, sb->len - 1);
	audience_member_json(sb, w->m, w->txn, aud, mb);
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
 * order: the whole audience is walked (and counted into *total), the best
 * kept in a sorted array. A kept member is read again to be written
 * (what the walk gave was borrowed until its next step). Writes the
 * members of "customers":[...]. */
static int audience_by_intent(api *a, struct worker *w, const audience *aud, audience_walk *walk,
			      uint32_t n, uint32_t limit, bool explain, strbuf *sb,
			      uint64_t *total)
{
	assert(limit >= 1);
	struct ranked *top = xmallocarray(limit, sizeof(*top));
	uint32_t count = 0;
	audience_member mb;
	int rc;
	while ((rc = audience_walk_next(walk, &mb)) == 0) {
		float intent = mb.live.intent;
		++*total;
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
		rc = audience_member_get(aud, w->txn, w->stxn, top[i].id, top[i].len, &mb);
		if (rc == 0)
			rc = member_recs(a, w, aud, &mb, n);
		if (rc == 0) {
			if (i)
				sb_addc(sb, ',');
			add_member(w, aud, &mb, top[i].live.intent, explain, sb);
		}
	}
	free(top);
	return rc;
}

/* Whether id comes at or before the cursor `after` in key order. */
static bool at_or_before(const char *id, size_t len, const char *after, size_t after_len)
{
	int c = memcmp(id, after, MIN(len, after_len));
	return c ? c < 0 : len <= after_len;
}

/* order=id (the default): the next `limit` members after the cursor (NULL:
 * from the first), and the cursor of the page after them (NULL at the
 * end). Every member is walked to count them into *total, so a marketer
 * knows the size before paging: on Online Retail's 4,371 customers the
 * walk costs about 1 ms a page (a page of 100 members with their items
 * costs 2-3 ms), cheap enough not to cache. Writes the members of "customers":[...],
 * then "next_cursor". */
static int audience_page(api *a, struct worker *w, const audience *aud, audience_walk *walk,
			 uint32_t n, uint32_t limit, bool explain, const char *after, size_t after_len,
			 strbuf *sb, uint64_t *total)
{
	uint32_t got = 0;
	char last_id[ID_MAX_LEN];
	size_t last_len = 0;
	bool more = false;
	audience_member mb;
	int rc;
	while ((rc = audience_walk_next(walk, &mb)) == 0) {
		++*total;
		if (more || (after && at_or_before(mb.id, mb.len, after, after_len)))
			continue;
		if (got == limit) {
			more = true; /* another member exists: there is a next page */
			continue;
		}
		if ((rc = member_recs(a, w, aud, &mb, n)) != 0)
			break;
		if (got++)
			sb_addc(sb, ',');
		add_member(w, aud, &mb, mb.live.intent, explain, sb);
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
	return 0;
}

/* The audience named in path segment 2, with its window and filter from
 * the query (strings in *store); answers 400/404 and returns -1. */
static int parse_audience(struct worker *w, const http_request *req, http_response *resp,
			  struct api_filter_store *store, audience *aud)
{
	uint32_t days = 0, hours = 0;
	int32_t new_since = MODEL_DAY_UNKNOWN;
	audience_filter f;
	if (api_param_uint(w, req, resp, "days", 1, AUDIENCE_MAX_DAYS, &days) != 0 ||
	    api_param_uint(w, req, resp, "hours", 1, AUDIENCE_MAX_HOURS, &hours) != 0 ||
	    api_audience_filter(w, req, resp, store, &f) != 0 ||
	    api_param_day(w, req, resp, "new_since", &new_since) != 0)
		return -1;
	if (audience_parse(req->segs[2], req->seg_lens[2], days, hours, aud) != 0) {
		http_error(resp, 404, "unknown_audience", "no audience %.*s (known: %s)",
			   (int)MIN(req->seg_lens[2], (size_t)64), req->segs[2], audience_names());
		return -1;
	}
	aud->filter = f;
	aud->new_since = new_since;
	return 0;
}

#define NO_BIRTH_DATES "no birth_date column in the customers file"

void api_get_audience(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	uint32_t n = API_DEFAULT_N, limit = API_DEFAULT_PAGE;
	audience aud;
	struct api_filter_store store;
	char after[ID_MAX_LEN];
	size_t after_len = 0;
	bool have_cursor = false, explain = true;
	const char *v;
	size_t len;

	if (api_param_uint(w, req, resp, "n", 1, REC_MAX_N, &n) != 0 ||
	    api_param_uint(w, req, resp, "limit", 1, API_MAX_PAGE, &limit) != 0 ||
	    api_param_bool(w, req, resp, "explain", &explain) != 0)
		return;
	if ((uint64_t)limit * n > API_MAX_AUDIENCE_ITEMS) {
		http_error(resp, 400, "invalid_parameter",
			   "limit x n asks for %llu items; one answer holds at most %u: lower limit "
			   "or n (order=id pages on with the cursor)",
			   (unsigned long long)limit * n, API_MAX_AUDIENCE_ITEMS);
		return;
	}
	if (parse_audience(w, req, resp, &store, &aud) != 0)
		return;
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

	/* From the first member always: every answer counts them all. */
	audience_walk *walk = NULL;
	if (audience_walk_begin(&aud, w->txn, w->stxn, NULL, 0, &walk) != 0) {
		api_storage_error(resp, STORE_ERROR);
		return;
	}
	uint64_t total = 0;
	strbuf *sb = resp->body;
	sb_adds(sb, "{\"audience\":");
	sb_add_json_str(sb, req->segs[2], req->seg_lens[2]);
	sb_addc(sb, ',');
	api_add_model_field(sb, w->m);
	sb_adds(sb, ",\"customers\":[");
	if (by_intent) {
		rc = audience_by_intent(a, w, &aud, walk, n, limit, explain, sb, &total);
		if (rc == 0)
			sb_adds(sb, "],\"next_cursor\":null");
	} else {
		rc = audience_page(a, w, &aud, walk, n, limit, explain, have_cursor ? after : NULL,
				   after_len, sb, &total);
	}
	if (rc == 0) {
		sb_adds(sb, ",\"total\":");
		sb_add_u64(sb, total);
		if (aud.kind == AUDIENCE_BIRTHDAY && !audience_walk_saw_birth_dates(walk))
			sb_adds(sb, ",\"warning\":\"" NO_BIRTH_DATES "\"");
		sb_addc(sb, '}');
	}
	audience_walk_end(walk);
	if (rc != 0)
		api_storage_error(resp, rc); /* replaces the partial body */
}

/* ---- downloads ------------------------------------------------------------
 * GET /v1/audiences/{name}/export streams the audience as `shopkeeper
 * export` writes it (export_fmt.h) and records nothing. Memory stays
 * constant: each fill takes fresh snapshots, walks on from the last
 * customer sent, writes about a block, and lets the snapshots go (a
 * snapshot held while a slow client reads would hold the state's remap
 * lock, and every write behind it). */

struct download {
	api *a;
	struct model_ref *ref;   /* the model the download began on: kept to the end */
	model_txn *txn;
	state_txn *stxn;
	rec_ctx *rec;
	rec_result result;
	struct rec_live live; /* result's live items */
	audience aud;
	struct api_filter_store store; /* aud.filter's strings */
	enum export_format format;
	uint32_t n;
	uint32_t exclude[REC_MAX_N * 4];
	char after[ID_MAX_LEN];  /* the last customer written */
	size_t after_len;
	bool end;                /* the walk is over */
	strbuf pending;          /* written, not yet handed to the library */
	size_t sent;             /* bytes of pending handed over */
};

static void download_done(void *arg)
{
	struct download *d = arg;
	model_txn_free(d->txn);
	state_txn_free(d->stxn);
	rec_ctx_free(d->rec);
	api_model_release(d->ref);
	sb_release(&d->pending);
	free(d);
}

/* Members written per fill at most: a fill stays short (the connection's
 * thread serves other connections between fills). */
#define DOWNLOAD_BATCH 64

/* Writes the next members into d->pending: 0, or a STORE_* error. */
static int download_more(struct download *d)
{
	if (model_txn_renew(d->txn) != 0 || state_txn_renew(d->stxn) != 0) {
		model_txn_reset(d->txn);
		return STORE_ERROR;
	}
	model *m = d->ref->m;
	audience_walk *walk = NULL;
	int rc = audience_walk_begin(&d->aud, d->txn, d->stxn, d->after_len ? d->after : NULL,
				     d->after_len, &walk);
	audience_member mb;
	for (uint32_t i = 0; rc == 0 && i < DOWNLOAD_BATCH && d->pending.len < HTTP_STREAM_BLOCK;
	     i++) {
		if ((rc = audience_walk_next(walk, &mb)) != 0)
			break;
		rec_filter f;
		export_cap_filter(&f, d->txn, &mb, d->exclude, ARRAY_SIZE(d->exclude));
		f.new_since = d->aud.new_since;
		if ((rc = rec_for_customer(d->rec, d->txn, d->stxn, mb.id, mb.len, d->n, &f,
					   &d->result)) != 0)
			break;
		live_items_merge(d->a->live, m, mb.known ? &mb.cust : NULL, &f, d->n, &d->result,
				 &d->live);
		export_line(&d->pending, d->format, m, d->txn, &d->aud, &mb, &d->result, d->n);
		memcpy(d->after, mb.id, mb.len);
		d->after_len = mb.len;
	}
	if (rc == STORE_NOTFOUND) {
		d->end = true;
		rc = 0;
	}
	audience_walk_end(walk);
	model_txn_reset(d->txn);
	state_txn_reset(d->stxn);
	return rc;
}

static long download_fill(void *arg, char *buf, size_t max)
{
	struct download *d = arg;
	while (d->sent == d->pending.len) {
		if (d->end)
			return HTTP_STREAM_END;
		sb_reset(&d->pending);
		d->sent = 0;
		if (download_more(d) != 0) {
			fprintf(stderr, "shopkeeper: an audience download failed reading the model "
					"or state; its answer was cut short\n");
			return HTTP_STREAM_ERROR;
		}
	}
	size_t k = MIN(max, d->pending.len - d->sent);
	memcpy(buf, d->pending.buf + d->sent, k);
	d->sent += k;
	return (long)k;
}

void api_get_audience_export(api *a, struct worker *w, const http_request *req,
			     http_response *resp)
{
	struct download *d = xcalloc(1, sizeof(*d));
	const char *v;
	size_t len;
	d->n = API_DEFAULT_N;
	d->format = EXPORT_JSONL;
	int rc = http_query(req, "format", w->qbuf, sizeof(w->qbuf), &v, &len);
	if (rc < 0 || (rc == 1 && export_format_parse(v, len, &d->format) != 0)) {
		http_error(resp, 400, "invalid_parameter", "format must be jsonl (the default) or csv");
		goto fail;
	}
	if (api_param_uint(w, req, resp, "n", 1, REC_MAX_N, &d->n) != 0 ||
	    parse_audience(w, req, resp, &d->store, &d->aud) != 0)
		goto fail;
	/* d->aud.filter borrows its strings from d->store: both live as long
	 * as the download. */
	d->a = a;
	d->ref = api_model_acquire(a);
	if (model_txn_begin(d->ref->m, &d->txn) != 0 || state_txn_begin(a->state, &d->stxn) != 0) {
		http_error(resp, 503, "unavailable", "cannot open a model or state transaction");
		download_done(d);
		return;
	}
	model_txn_reset(d->txn);
	state_txn_reset(d->stxn);
	d->rec = rec_ctx_create(model_get_info(d->ref->m)->n_items);
	rec_params p; /* the flags given, else what the model's tuning chose */
	rec_params_for_model(&p, &a->params, model_get_info(d->ref->m));
	rec_ctx_configure(d->rec, &p);
	sb_init(&d->pending, HTTP_STREAM_BLOCK + 4096);
	export_header(&d->pending, d->format, d->n);
	resp->content_type = export_content_type(d->format);
	if (http_stream(resp, download_fill, download_done, d) != 0)
		http_error(resp, 500, "internal", "cannot start the download");
	return;
fail:
	free(d);
}
