/*
 * api_items: PUT /v1/items/{id}, the live merchandising controls: an item
 * out of stock (`available`) or never to be recommended (`recommendable`)
 * leaves every answer at once, without retraining.
 *
 * The change is written like consent: checked on the pool thread, handed
 * to the event writer as an item-flags write (events_submit_item_flags),
 * and answered once the group commit holding it is on disk. Right after
 * that commit, on the writer thread, the current model's bitmaps are
 * changed (model_item_override), under the api's reference lock, so a
 * reload cannot build its bitmaps from an older state meanwhile: either
 * the reload's read of the state comes after this commit, or this change
 * is applied to the model the reload made current. With --event-log the
 * change is an item record of the shared log: every replica's applier
 * applies it to its state and, through the model hooks the api lends it
 * (api_set_event_log), to its model in use the same way; this callback
 * then runs on the applier's thread and finds the change already there.
 *
 * Body: {"available"?: bool, "recommendable"?: bool, "title"?: string,
 * "category"?: string, "price"?: number, "first_seen"?: "YYYY-MM-DD"}, at
 * least one (issue 18). The catalog fields are kept in the item's state
 * record beside its flags. An item the model does not know is added with
 * them (a title or a category at least): a live item (live_items.h),
 * placed among the model's items at once and served in the new-arrivals
 * slot (?new_since=) from the next request; its first_seen defaults to
 * the day it is added. The live state holds at most --max-live-items such
 * items: past that, 507 live_items_full. For an item the model knows,
 * first_seen moves it in or out of the slot at once
 * (model_item_set_first_seen); title, category and price are recorded, and
 * its answers keep the model's catalog text until a model trained with the
 * new catalog: the answer lists them in "until_retrained" (docs/api.md,
 * "Items", says why they are not shown at once). Through the shared event log (--event-log) the flags are an
 * item record and the catalog fields a catalog record (eventlog.h), both
 * in one append; every replica's applier stores them and hands them to
 * its live items through the same hook (api.c's log_item_flags), and the
 * compacted K:catalog keeps them through trims. The live-items bound is
 * checked on the replica that takes the PUT; the others take what the log
 * brings.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "timefmt.h"
#include "util.h"

/* A body is a handful of fields: a title of 512 bytes with every byte
 * escaped as \u and four hex digits (3,072 bytes), a category of 128 likewise (768) and
 * the rest fit within this. */
#define API_MAX_ITEM_BODY 4096u

/* A change between its answer being decided and the commit that lets it be
 * sent. Freed by the writer's callback. */
struct item_put {
	api *a;
	struct worker *w; /* for metrics (atomic counters) */
	size_t route;
	double t0;
	http_deferred *d;
	events_request req;
	uint32_t set, clear; /* STATE_ITEM_* */
	state_item_meta meta; /* the catalog fields given (strings in the buffers below) */
	bool reserved;        /* a room in the live set (live_items_reserve) */
	char title[STATE_ITEM_MAX_TITLE];
	char category[STATE_ITEM_MAX_CATEGORY];
	size_t id_len;
	char id[];
};

static void add_bool(strbuf *sb, const char *key, bool v)
{
	sb_adds(sb, key);
	sb_adds(sb, v ? "true" : "false");
}

/* ,"until_retrained":[...]: the catalog fields this PUT gave a model item
 * that answers do not show until a model trained with a catalog that has
 * them (docs/api.md says why). */
static void add_until_retrained(strbuf *sb, uint32_t fields)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = { { STATE_ITEM_TITLE, "title" }, { STATE_ITEM_CATEGORY, "category" },
		      { STATE_ITEM_PRICE, "price" } };
	const char *sep = "";
	sb_adds(sb, ",\"until_retrained\":[");
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (fields & names[i].bit) {
			sb_addf(sb, "%s\"%s\"", sep, names[i].name);
			sep = ",";
		}
	sb_addc(sb, ']');
}

/* The writer thread, once the change is on disk (or not): the model in
 * use learns it, then the client does. */
static void item_put_done(void *arg, int rc)
{
	struct item_put *ip = arg;
	strbuf body = STRBUF_INIT, store = STRBUF_INIT;
	int status = 200;
	uint32_t flags = 0;
	state_item_meta meta;
	if (rc == 0 && state_item_get_now(ip->a->state, ip->id, ip->id_len, &flags, &meta,
					  &store) != 0)
		rc = -1; /* on disk, but unreadable: say so rather than guess */
	if (rc == 0) {
		bool recommendable = !(flags & STATE_ITEM_NOT_RECOMMENDABLE), known = false;
		uint32_t idx, neighbors = 0;
		pthread_mutex_lock(&ip->a->ref_lock);
		struct model_ref *r = atomic_load(&ip->a->current);
		model *m = r->m;
		/* Experiments' variant models take it too (an item they do not
		 * know: nothing to do). */
		for (uint8_t i = 0; i < r->n_vm; i++)
			rec_apply_item_override(r->vm[i], ip->id, ip->id_len, flags);
		/* The item may be gone from a model loaded since the request:
		 * then the override waits in the state. */
		if (model_item_find(m, ip->id, ip->id_len, &idx) == 0) {
			rec_apply_item_override(m, ip->id, ip->id_len, flags);
			if (meta.fields & STATE_ITEM_FIRST_SEEN)
				model_item_set_first_seen(m, idx, meta.first_seen);
			recommendable = recommendable && model_item_recommendable(m, idx);
			known = true;
		}
		/* Under the reference lock, as a reload's rebind is: the set is
		 * placed in the model that is current. */
		live_items_put(ip->a->live, m, ip->id, ip->id_len, flags, &meta, ip->reserved,
			       &neighbors);
		ip->reserved = false;
		pthread_mutex_unlock(&ip->a->ref_lock);
		/* What serving does with the item now. */
		sb_adds(&body, "{\"item_id\":");
		sb_add_json_str(&body, ip->id, ip->id_len);
		add_bool(&body, ",\"available\":", !(flags & STATE_ITEM_UNAVAILABLE));
		add_bool(&body, ",\"recommendable\":", recommendable);
		add_bool(&body, ",\"in_model\":", known);
		if (meta.fields & STATE_ITEM_FIRST_SEEN) {
			char t[TIME_FMT_LEN];
			time_format((int64_t)meta.first_seen * 86400, t);
			sb_adds(&body, ",\"first_seen\":");
			sb_add_json_str(&body, t, 10);
		}
		if (!known)
			sb_addf(&body, ",\"content_neighbors\":%u", neighbors);
		else if (ip->meta.fields & (STATE_ITEM_TITLE | STATE_ITEM_CATEGORY | STATE_ITEM_PRICE))
			add_until_retrained(&body, ip->meta.fields);
		sb_addc(&body, '}');
	} else {
		status = 503;
		sb_adds(&body, "{\"error\":{\"code\":\"unavailable\",\"message\":"
			       "\"the change could not be recorded; try again\"}}");
	}
	if (ip->reserved)
		live_items_unreserve(ip->a->live);
	api_record(ip->w, ip->route, status, util_monotonic() - ip->t0);
	http_deferred_answer(ip->d, status, body.buf, body.len);
	sb_release(&body);
	sb_release(&store);
	free(ip);
}

/* The pool thread, once the connection is suspended. */
static void item_put_start(void *arg, http_deferred *d)
{
	struct item_put *ip = arg;
	ip->d = d;
	if (events_submit_item(ip->a->events, &ip->req, ip->id, ip->id_len, ip->set, ip->clear,
			       ip->meta.fields ? &ip->meta : NULL, item_put_done, ip) != 0)
		item_put_done(ip, -1); /* the writer is stopping */
}

/* A string field of at most max bytes (jansson has checked it is UTF-8
 * without NUL characters). Returns 0, or -1 with a 400 in resp. */
static int string_field(json_t *v, const char *key, size_t max, http_response *resp,
			const char **s, size_t *len)
{
	if (!json_is_string(v)) {
		http_error(resp, 400, "invalid_field", "%s must be a string", key);
		return -1;
	}
	*s = json_string_value(v);
	*len = json_string_length(v);
	if (*len > max) {
		http_error(resp, 400, "invalid_field", "%s is %zu bytes; at most %zu", key, *len, max);
		return -1;
	}
	return 0;
}

/* Reads the body's fields: flags into set/clear, catalog fields into ip's
 * meta (strings copied into ip). Returns 0, or -1 with a 4xx in resp.
 * `unrec_by_model`: training left the item out (no neighbours), so an
 * override cannot make it recommendable. */
static int parse_change(json_t *root, bool unrec_by_model, struct item_put *ip,
			http_response *resp)
{
	static const struct {
		const char *key;
		uint32_t flag; /* set when the field is false */
	} flag_fields[] = { { "available", STATE_ITEM_UNAVAILABLE },
			    { "recommendable", STATE_ITEM_NOT_RECOMMENDABLE } };
	const char *key, *s;
	size_t len;
	json_t *v;
	state_item_meta *meta = &ip->meta;
	memset(meta, 0, sizeof(*meta));
	ip->set = ip->clear = 0;
	json_object_foreach(root, key, v) {
		size_t f = 0;
		while (f < ARRAY_SIZE(flag_fields) && strcmp(key, flag_fields[f].key) != 0)
			f++;
		if (f < ARRAY_SIZE(flag_fields)) {
			if (!json_is_boolean(v)) {
				http_error(resp, 400, "invalid_field", "%s must be true or false", key);
				return -1;
			}
			*(json_is_true(v) ? &ip->clear : &ip->set) |= flag_fields[f].flag;
		} else if (strcmp(key, "title") == 0) {
			if (string_field(v, key, STATE_ITEM_MAX_TITLE, resp, &s, &len) != 0)
				return -1;
			memcpy(ip->title, s, len);
			meta->title = ip->title;
			meta->title_len = len;
			meta->fields |= STATE_ITEM_TITLE;
		} else if (strcmp(key, "category") == 0) {
			if (string_field(v, key, STATE_ITEM_MAX_CATEGORY, resp, &s, &len) != 0)
				return -1;
			memcpy(ip->category, s, len);
			meta->category = ip->category;
			meta->category_len = len;
			meta->fields |= STATE_ITEM_CATEGORY;
		} else if (strcmp(key, "price") == 0) {
			double p = json_number_value(v);
			if (!json_is_number(v) || !(p >= 0) || !(p <= 1e9)) {
				http_error(resp, 400, "invalid_field",
					   "price must be a number from 0 to 1e9");
				return -1;
			}
			meta->price = (float)p;
			meta->fields |= STATE_ITEM_PRICE;
		} else if (strcmp(key, "first_seen") == 0) {
			if (!json_is_string(v) || time_parse_date(json_string_value(v),
								  json_string_length(v),
								  &meta->first_seen) != 0) {
				http_error(resp, 400, "invalid_field",
					   "first_seen must be a date, YYYY-MM-DD (from 1970 on)");
				return -1;
			}
			meta->fields |= STATE_ITEM_FIRST_SEEN;
		} else {
			http_error(resp, 400, "unknown_field",
				   "unknown field \"%s\" (known: available, recommendable, title, "
				   "category, price, first_seen)", key);
			return -1;
		}
	}
	if (!ip->set && !ip->clear && !meta->fields) {
		http_error(resp, 400, "missing_field",
			   "nothing to change: give available, recommendable (true or false), "
			   "title, category, price or first_seen");
		return -1;
	}
	if (unrec_by_model && (ip->clear & STATE_ITEM_NOT_RECOMMENDABLE)) {
		http_error(resp, 409, "excluded_by_model",
			   "item %.*s was left out at training (catalog recommendable=false or "
			   "train --exclude-items): retrain without excluding it", (int)ip->id_len,
			   ip->id);
		return -1;
	}
	return 0;
}

void api_put_item(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	const char *id;
	size_t len;
	uint32_t idx;
	if (api_path_id(req, 2, "item", resp, &id, &len) != 0)
		return;
	assert(w->in_txn);
	if (req->body_len > API_MAX_ITEM_BODY) {
		http_error(resp, 413, "body_too_large", "an item change is at most %u bytes",
			   API_MAX_ITEM_BODY);
		return;
	}
	json_t *root = api_body_object(req, resp);
	if (!root)
		return;
	struct item_put *ip = xmalloc(sizeof(*ip) + len);
	*ip = (struct item_put){ .a = a, .w = w, .route = w->route, .t0 = util_monotonic(),
				 .id_len = len };
	memcpy(ip->id, id, len);
	bool known = model_item_lookup(w->txn, id, len, &idx) == 0;
	if (parse_change(root, known && !model_item_recommendable(w->m, idx), ip, resp) != 0)
		goto fail;
	if (!known && !live_items_has(a->live, id, len)) {
		/* A new item: something to place it by, and room for it. */
		if (!(ip->meta.fields & (STATE_ITEM_TITLE | STATE_ITEM_CATEGORY)) ||
		    (!ip->meta.title_len && !ip->meta.category_len)) {
			http_error(resp, 404, "unknown_item",
				   "item %.*s is not in the model: to add it, give its title or "
				   "category (and price, first_seen)", (int)len, id);
			goto fail;
		}
		if (live_items_reserve(a->live, id, len, &ip->reserved) != 0) {
			http_error(resp, 507, "live_items_full",
				   "the live state holds its most items added since training "
				   "(serve --max-live-items); retrain with them in the catalog");
			goto fail;
		}
		if (!(ip->meta.fields & STATE_ITEM_FIRST_SEEN)) {
			/* New today, on the model's clock (what new_since is read on). */
			ip->meta.first_seen = (int32_t)(model_now(w->m) / 86400);
			ip->meta.fields |= STATE_ITEM_FIRST_SEEN;
		}
	}
	/* The answer waits for the commit, the pool thread does not. */
	http_defer(resp, item_put_start, ip);
	json_decref(root);
	return;
fail:
	free(ip);
	json_decref(root);
}
