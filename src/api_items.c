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
 * Body: {"available"?: bool, "recommendable"?: bool}, at least one. Issue
 * 18 adds "title", "category", "price" and "first_seen" (and items the
 * model does not know yet); until then those are unknown fields, like any
 * other, and an unknown item is 404 unknown_item.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "util.h"

/* A body is a handful of fields; issue 18's title (512 bytes), category
 * and price fit well within this. */
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
	size_t id_len;
	char id[];
};

static void add_bool(strbuf *sb, const char *key, bool v)
{
	sb_adds(sb, key);
	sb_adds(sb, v ? "true" : "false");
}

/* The writer thread, once the change is on disk (or not): the model in
 * use learns it, then the client does. */
static void item_put_done(void *arg, int rc)
{
	struct item_put *ip = arg;
	strbuf body = STRBUF_INIT;
	int status = 200;
	uint32_t flags = 0;
	if (rc == 0 && state_item_flags_now(ip->a->state, ip->id, ip->id_len, &flags) != 0)
		rc = -1; /* on disk, but unreadable: say so rather than guess */
	if (rc == 0) {
		bool recommendable = !(flags & STATE_ITEM_NOT_RECOMMENDABLE);
		uint32_t idx;
		pthread_mutex_lock(&ip->a->ref_lock);
		model *m = atomic_load(&ip->a->current)->m;
		/* The item may be gone from a model loaded since the request:
		 * then the override waits in the state. */
		if (model_item_find(m, ip->id, ip->id_len, &idx) == 0) {
			rec_apply_item_override(m, ip->id, ip->id_len, flags);
			recommendable = recommendable && model_item_recommendable(m, idx);
		}
		pthread_mutex_unlock(&ip->a->ref_lock);
		/* What serving does with the item now. */
		sb_adds(&body, "{\"item_id\":");
		sb_add_json_str(&body, ip->id, ip->id_len);
		add_bool(&body, ",\"available\":", !(flags & STATE_ITEM_UNAVAILABLE));
		add_bool(&body, ",\"recommendable\":", recommendable);
		sb_addc(&body, '}');
	} else {
		status = 503;
		sb_adds(&body, "{\"error\":{\"code\":\"unavailable\",\"message\":"
			       "\"the change could not be recorded; try again\"}}");
	}
	api_record(ip->w, ip->route, status, util_monotonic() - ip->t0);
	http_deferred_answer(ip->d, status, body.buf, body.len);
	sb_release(&body);
	free(ip);
}

/* The pool thread, once the connection is suspended. */
static void item_put_start(void *arg, http_deferred *d)
{
	struct item_put *ip = arg;
	ip->d = d;
	if (events_submit_item_flags(ip->a->events, &ip->req, ip->id, ip->id_len, ip->set,
				     ip->clear, item_put_done, ip) != 0)
		item_put_done(ip, -1); /* the writer is stopping */
}

/* Reads the body's fields into set/clear. Returns 0, or -1 with a 4xx in
 * resp. `unrec_by_model`: training left the item out (no neighbours), so
 * an override cannot make it recommendable. */
static int parse_change(json_t *root, bool unrec_by_model, const char *id, size_t len,
			http_response *resp, uint32_t *set, uint32_t *clear)
{
	static const struct {
		const char *key;
		uint32_t flag; /* set when the field is false */
	} fields[] = { { "available", STATE_ITEM_UNAVAILABLE },
		       { "recommendable", STATE_ITEM_NOT_RECOMMENDABLE } };
	const char *key;
	json_t *v;
	*set = *clear = 0;
	json_object_foreach(root, key, v) {
		size_t f = 0;
		while (f < ARRAY_SIZE(fields) && strcmp(key, fields[f].key) != 0)
			f++;
		if (f == ARRAY_SIZE(fields)) {
			http_error(resp, 400, "unknown_field",
				   "unknown field \"%s\" (known: available, recommendable)", key);
			return -1;
		}
		if (!json_is_boolean(v)) {
			http_error(resp, 400, "invalid_field", "%s must be true or false", key);
			return -1;
		}
		*(json_is_true(v) ? clear : set) |= fields[f].flag;
	}
	if (!*set && !*clear) {
		http_error(resp, 400, "missing_field",
			   "nothing to change: give available and/or recommendable (true or false)");
		return -1;
	}
	if (unrec_by_model && (*clear & STATE_ITEM_NOT_RECOMMENDABLE)) {
		http_error(resp, 409, "excluded_by_model",
			   "item %.*s was left out at training (catalog recommendable=false or "
			   "train --exclude-items): retrain without excluding it", (int)len, id);
		return -1;
	}
	return 0;
}

void api_put_item(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	const char *id;
	size_t len;
	uint32_t idx, set, clear;
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
	if (model_item_lookup(w->txn, id, len, &idx) != 0) {
		/* Issue 18 hook: a new item (title, category, price,
		 * first_seen) is added to the live state here instead. */
		http_error(resp, 404, "unknown_item", "item %.*s is not in the model", (int)len, id);
		goto out;
	}
	if (parse_change(root, !model_item_recommendable(w->m, idx), id, len, resp, &set,
			 &clear) != 0)
		goto out;
	struct item_put *ip = xmalloc(sizeof(*ip) + len);
	*ip = (struct item_put){ .a = a, .w = w, .route = w->route, .t0 = util_monotonic(),
				 .set = set, .clear = clear, .id_len = len };
	memcpy(ip->id, id, len);
	/* The answer waits for the commit, the pool thread does not. */
	http_defer(resp, item_put_start, ip);
out:
	json_decref(root);
}
