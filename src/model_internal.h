/*
 * model_internal: what model.c and model_optional.c share, and nothing
 * else includes: the model handle's body, the blob lookup and the loaders
 * of the optional tables that open_model calls in turn.
 */
#ifndef SHOPKEEPER_MODEL_INTERNAL_H
#define SHOPKEEPER_MODEL_INTERNAL_H

#include <lmdb.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "content.h"
#include "model.h"
#include "store_internal.h"
#include "strbuf.h"

struct model {
	MDB_env *env;
	MDB_dbi item_index, neighbors, customers;
	/* Held for the model's lifetime: the blobs below point into the map
	 * and stay valid while this transaction is open. With MDB_NOLOCK and
	 * no writer it costs nothing. */
	MDB_txn *blob_txn;
	offtab ids, titles, categories; /* string tables */
	offtab image_urls, urls;  /* string tables (count 0: a version 3 model) */
	const unsigned char *flags; /* u8[n] MODEL_ITEM_* (NULL: version 3, none) */
	const unsigned char *first_seen; /* i32[n] days, or NULL: no such table */
	/* The days serving uses: the table's, changed in place by PUT
	 * /v1/items/{id} first_seen (model_item_set_first_seen). */
	_Atomic int32_t *first_day;
	/* What serving may do with each item now: bit i of hidden set keeps
	 * item i out of every answer, of unsourced out of every score sum.
	 * From the flags at open, then changed in place by the live
	 * overrides (model_item_override), one word at a time. */
	_Atomic uint64_t *hidden, *unsourced;
	/* Set (for good) by the first override that takes a recommendable
	 * item out of the scores: until then no precomputed list is stale
	 * for that reason (model_unsourced_overrides). */
	atomic_bool unsourced_override;
	uint32_t *category_order; /* category indexes by name, for lookups */
	uint32_t *item_slots;     /* open addressing: item index + 1 (0: empty) */
	uint64_t item_mask;       /* slots - 1 (a power of two) */
	const unsigned char *category, *price; /* u32[n], f32[n] */
	const unsigned char *popularity;
	const unsigned char *popular;
	offtab nbrs; /* every item's neighbours */
	uint32_t *nbr_pos; /* format 5: positives per list, else NULL */
	content_index *content; /* format 6: the content tables, else NULL */
	/* The optional "precomputed" record (pc.n_lists 0: none). */
	MDB_dbi precomputed;
	bool has_precomputed;
	precomp_header pc;
	const unsigned char *pc_counts, *pc_entries;
	const unsigned char *pc_complete; /* the "complete" bitmap, or NULL */
	const unsigned char *pc_extended; /* the "extended" bytes, or NULL */
	char *tuning_json; /* info.tuning_json */
	char *meta_json;
	model_info info;
	bool model_clock;      /* model_now runs from as_of (see model_set_clock) */
	char clock_msg[320];   /* model_clock_ahead_message */
	/* The customer index (model_customers.c): n_cslots slots, or NULL
	 * when the customers are looked up in the B-tree. Its slots hold
	 * places in the map relative to map_anchor, a pointer into it. */
	struct model_cslot *cslots;
	uint64_t n_cslots;
	const unsigned char *map_anchor;
	uint64_t map_size;
};

struct model_txn {
	model *m;
	store_reader r;
};

static inline MDB_txn *model_txn_lmdb(const model_txn *t)
{
	return t->r.txn;
}

/* FNV-1a, 64 bits: item and customer ids are short strings. */
static inline uint64_t model_id_hash(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* The value of `key` in table dbi, borrowed from txn (valid while it is
 * open). Returns 0 or LMDB's code (MDB_NOTFOUND: no such key). */
static inline int get_blob(MDB_txn *txn, MDB_dbi dbi, const char *key, MDB_val *val)
{
	MDB_val k = { strlen(key), (void *)key };
	return mdb_get(txn, dbi, &k, val);
}

/* ---- the optional tables (model_optional.c) ------------------------------------
 * Each is called once by open_model, after the item tables are loaded;
 * path names the file in messages, appended to err. Each returns 0 (also
 * when the table is absent and may be) or STORE_CORRUPT. What they keep
 * points into the map, valid until model_close. */

/* Optional at any version (issue 18): a model without it has no
 * dates, and new_since answers from it are empty. */
int model_load_first_seen(model *m, MDB_dbi items, const char *path, strbuf *err);

/* Format 6: the content tables (content.h) and their settings in the
 * meta record. */
int model_load_content(model *m, MDB_dbi items, const char *path, strbuf *err);

/* The optional precomputed lists: checked here once (sizes, counts, item
 * indexes, finite positive scores, best first), trusted afterwards. */
int model_load_precomputed(model *m, const char *path, strbuf *err);

/* ---- the customer index (model_customers.c) ----------------------------------- */

/* Called once by open_model, last: walks the customer table, checks every
 * record (a corrupt one: STORE_CORRUPT with a message naming the customer
 * in err) and indexes where each is in the map. A model whose map or
 * count does not fit the index gets none (0: lookups stay B-tree
 * descents). Returns 0, STORE_CORRUPT or STORE_ERROR. */
int model_index_customers(model *m, const char *path, strbuf *err);
/* Frees the index (none: nothing). */
void model_customers_free(model *m);

#endif
