/*
 * recommend: scoring on the request path.
 *
 * A customer's score for candidate item j is the sum, over the items i in
 * their history, of weight(i) * sim(i, j) from i's neighbour list. Items
 * the customer bought are left out; the history items that contributed most
 * to a candidate are its `because`. When the history yields fewer than n
 * candidates the list is topped up with popular items, and a customer the
 * model does not know gets popular items only.
 *
 * A rec_ctx is per-thread scratch sized to the catalog: a score per item
 * stamped with a request generation, so nothing is cleared between requests
 * and a request costs O(touched items), not O(catalog). Nothing on this path
 * allocates.
 */
#ifndef SHOPKEEPER_RECOMMEND_H
#define SHOPKEEPER_RECOMMEND_H

#include <stdint.h>

#include "store.h"

#define REC_MAX_N 100      /* most items one answer may hold */
#define REC_MAX_BECAUSE 3  /* history items named per recommendation */
/* History entries scored per request; the most recent ones are used when a
 * customer has more (a bound on the request path's work). */
#define REC_MAX_HISTORY 500

enum rec_source { REC_PERSONAL = 0, REC_POPULAR = 1 };
const char *rec_source_name(enum rec_source s);

typedef struct rec_item {
	uint32_t item;
	float score;
	uint8_t source; /* enum rec_source: popular when topped up */
	uint8_t n_because;
	uint32_t because[REC_MAX_BECAUSE]; /* item indexes, strongest first */
} rec_item;

typedef struct rec_result {
	enum rec_source source; /* personal if any item is */
	uint32_t n;
	rec_item items[REC_MAX_N];
} rec_result;

typedef struct rec_ctx rec_ctx;

/* Scratch for a catalog of n_items. Never fails; rec_ctx_free(NULL) is a
 * no-op. */
rec_ctx *rec_ctx_create(uint32_t n_items);
void rec_ctx_free(rec_ctx *c);
uint32_t rec_ctx_items(const rec_ctx *c);

/* The top n (1..REC_MAX_N) items for customer id. Unknown customers get
 * popular items. Returns 0, or STORE_CORRUPT / STORE_ERROR from the model. */
int rec_for_customer(rec_ctx *c, model_txn *t, const char *id, size_t len, uint32_t n,
		     rec_result *out);

/* Item idx's n best neighbours. Returns 0 or a STORE_* error. */
int rec_similar(rec_ctx *c, model_txn *t, uint32_t idx, uint32_t n, rec_result *out);

#endif
