/*
 * live_items: items added since training (PUT /v1/items/{id} of an item the
 * model does not know, with its title, category, price and first_seen),
 * served in the new-arrivals slot (?new_since=) at once, without
 * retraining (issue 18).
 *
 * The state holds them (the item record's catalog fields, state.h), so
 * they survive a restart and a crash; this module is the serving side's
 * copy in memory, with each item's content neighbours among the current
 * model's items (live_place_by_content: content_place, content.h, from the
 * model's vocabulary, idf, categories and price bands). A customer's score for a live item is the
 * sum, over the item's content neighbours, of the customer's history
 * weight for that neighbour: the same sum item-based scoring makes with a
 * model item's neighbours, so live items rank among the model's new items
 * by score.
 *
 * Threads: requests read under a read lock, taken only when the answer
 * has a new_since rule and the set is not empty (one relaxed load
 * otherwise); PUTs and model switches change it under the write lock.
 * Placement (content_place) runs on the writer thread, never on a
 * request's path.
 */
#ifndef SHOPKEEPER_LIVE_ITEMS_H
#define SHOPKEEPER_LIVE_ITEMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "recommend.h"
#include "state.h"

/* Live items a server keeps at most, by default (serve --max-live-items):
 * each costs about 1 KB and its neighbours' share of a new_since answer's
 * scoring (LIVE_ITEMS_NEIGHBORS lookups). */
#define LIVE_ITEMS_DEFAULT_MAX 1000u
#define LIVE_ITEMS_LIMIT 100000u     /* the most --max-live-items takes */
#define LIVE_ITEMS_NEIGHBORS 30u     /* content neighbours kept per item */

typedef struct live_items live_items;

/* How an item the model does not know is placed among its items: the
 * shape of content_place (content.h), whose content_query has these
 * fields first. */
typedef struct live_place_query {
	const char *title;
	size_t title_len;
	const char *category;
	size_t category_len;
	float price;   /* < 0: unknown */
	uint32_t self; /* UINT32_MAX */
} live_place_query;
/* Puts q's best n neighbours among m's items, best first, scores in
 * (0, 1], into out[0 .. *n_out). Returns 0, or non-zero when it cannot
 * place (the item then has none). Called on the writer thread, under the
 * set's write lock. */
typedef int (*live_place_fn)(const model *m, const live_place_query *q, uint32_t n,
			     neighbor *out, uint32_t *n_out);
/* Placement by the model's content tables (content_place, content.h: its
 * vocabulary, idf, categories and price bands, the similarity its own
 * content lists use); for a model without them (format < 6, trained
 * without a catalog), live_place_by_titles. What every set starts with. */
int live_place_by_content(const model *m, const live_place_query *q, uint32_t n, neighbor *out,
			  uint32_t *n_out);
/* For models without content tables: title words shared with the model's
 * titles (idf-weighted, over the model's titles), plus 0.1 for the same
 * category. It reads every title per call. */
int live_place_by_titles(const model *m, const live_place_query *q, uint32_t n, neighbor *out,
			 uint32_t *n_out);

/* An empty set holding at most max items, placing with
 * live_place_by_content. Never fails. */
live_items *live_items_create(uint32_t max);
/* live_items_free(NULL) does nothing. */
void live_items_free(live_items *li);

/* Fills the set from the state: every item with catalog fields that m
 * does not know, placed among m's items. Call before serving. Returns 0 or
 * a STORE_* error. */
int live_items_load(live_items *li, state *s, const model *m);

/* Puts the first_seen days the state records for items m knows (PUT
 * /v1/items/{id} of a model item) into m (model_item_set_first_seen): call
 * when a model is opened, before it serves; they win over the model's
 * own. Returns 0 or a STORE_* error. */
int live_items_model_first_seen(state *s, model *m);

/* Whether id is a live item now. */
bool live_items_has(live_items *li, const char *id, size_t len);
/* Reserves room for id before its change is committed: 0, or -1 when the
 * set is full (id not live and max items live or reserved). A live id
 * needs no room: 0 and *reserved false. Give the room back with
 * live_items_put (after the commit) or live_items_unreserve (it failed). */
int live_items_reserve(live_items *li, const char *id, size_t len, bool *reserved);
void live_items_unreserve(live_items *li);

/* After a commit: item id as the state now has it (flags, catalog fields;
 * borrowed), placed among m's items at once. `reserved`: the room
 * live_items_reserve gave. When m knows the item nothing is added (its
 * model data serves it). *neighbors (may be NULL) gets how many content
 * neighbours it has. */
void live_items_put(live_items *li, const model *m, const char *id, size_t len, uint32_t flags,
		    const state_item_meta *meta, bool reserved, uint32_t *neighbors);

/* A model switch: items m knows leave the set (trained now); the others
 * are placed again among m's items. Call before m serves. */
void live_items_rebind(live_items *li, const model *m);

/* Sets the placement (NULL: live_place_by_content). Call before serving. */
void live_items_set_placer(live_items *li, live_place_fn place);

/* Items live now. */
uint32_t live_items_count(live_items *li);

/* Room for the live items of one answer: rec_item.item = n_items + i
 * names items[i] (rec_result.live points here). */
typedef struct rec_live_item {
	char id[256];
	size_t id_len;
	char title[STATE_ITEM_MAX_TITLE];
	size_t title_len;
	char category[STATE_ITEM_MAX_CATEGORY];
	size_t category_len;
	float price; /* < 0: unknown */
} rec_live_item;
struct rec_live {
	uint32_t n;
	rec_live_item items[REC_MAX_N];
};

/* The live item answer r names by item index `item`, or NULL for a model
 * item (m: r's model). */
static inline const rec_live_item *rec_live_at(const model *m, const rec_result *r,
					       uint32_t item)
{
	uint32_t n_items = model_get_info(m)->n_items;
	return item >= n_items && r->live ? &r->live->items[item - n_items] : NULL;
}

/* Adds the live items to r, an answer of at most n items under filter f
 * (which must have a new_since rule: other answers are left alone) for a
 * customer whose model record is cust (NULL: none). Live items pass f's
 * new_since, category and price rules, and are left out when unavailable
 * or not recommendable. Those the customer's history reaches merge with
 * r's scored items by score; r's popular top-ups follow, then the live
 * items nothing reached, newest first. The chosen ones are copied into
 * *store, which r then points to (valid while *store is). m is r's model. */
void live_items_merge(live_items *li, const model *m, const model_customer *cust,
		      const rec_filter *f, uint32_t n, rec_result *r, struct rec_live *store);

#endif
