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

#include <stdbool.h>
#include <stdint.h>

#include "model.h"
#include "state.h"
#include "state_events.h"

#define REC_MAX_N 100      /* most items one answer may hold */
#define REC_MAX_BECAUSE 3  /* history items named per recommendation */
/* History entries scored per request; the most recent ones are used when a
 * customer has more (a bound on the request path's work). */
#define REC_MAX_HISTORY 200

/* Where an answer's item comes from: the customer's (or basket's or
 * item's) collaborative neighbours, their content neighbours (hybrid
 * scoring: the content part of the blended score is the larger), or the
 * popular list. */
enum rec_source { REC_PERSONAL = 0, REC_POPULAR = 1, REC_CONTENT = 2 };
const char *rec_source_name(enum rec_source s);

typedef struct rec_item {
	uint32_t item;
	float score;
	uint8_t source; /* enum rec_source: popular when topped up, content
			 * when its content part outweighs the rest */
	uint8_t n_because;
	uint32_t because[REC_MAX_BECAUSE]; /* item indexes, strongest first */
} rec_item;

struct rec_live; /* live_items.h */
typedef struct rec_result {
	enum rec_source source; /* personal if any item is personal or content
				 * (the history was used), else popular */
	bool precomputed;       /* answered from the model's precomputed list */
	bool topped_up;         /* ... a complete one, topped up with popular items */
	bool live_cached;       /* answered from the live cache (rec_for_history_cached) */
	uint32_t n;
	rec_item items[REC_MAX_N];
	/* Items added since training in this answer (live_items_merge): an
	 * item index >= the model's n_items names live->items[index -
	 * n_items]. NULL (every rec_* call starts so): none. */
	const struct rec_live *live;
} rec_result;

/* Business rules every recommendation route applies. */
typedef struct rec_filter {
	uint32_t category;       /* only this category; UINT32_MAX: any */
	float min_price;         /* only items priced >= this (< 0: no bound) */
	float max_price;         /* only items priced <= this (< 0: no bound) */
	const uint32_t *exclude; /* never these items */
	uint32_t n_exclude;
	int32_t new_since;       /* only items first seen on or after this day
				  * (model_item_first_seen; unknown days never
				  * pass); MODEL_DAY_UNKNOWN: no such rule */
	bool include_purchased;  /* allow items the customer bought */
	bool personal;           /* false: popular items only (consent) */
	bool because;            /* name the contributing items (the explain pass) */
	uint32_t history_weight; /* enum rec_history_weight for this request;
				  * REC_HW_UNSET: the context's (rec_params) */
} rec_filter;

/* A filter that lets everything through (personal, purchases excluded,
 * because lists on, the context's history weight). */
void rec_filter_init(rec_filter *f);

typedef struct rec_ctx rec_ctx;

/* Scratch for a catalog of n_items. Never fails; rec_ctx_free(NULL) is a
 * no-op. */
rec_ctx *rec_ctx_create(uint32_t n_items);

/* How a customer's or basket's score is summed; the similar-items answer
 * is not affected.
 *   neighbors_used: each history item's best N neighbours count. On Online
 *     Retail's validation split the 30 best scored better than all 100
 *     (bench/README.md), at a third of the work per request.
 *   cutoff: a neighbour adds to a score only when its contribution (history
 *     weight x similarity) is at least this share of the request's strongest
 *     single contribution; the rest is the long tail of weak pairs. 0 adds
 *     everything. On the same split 0.1 scored as well as 0 with a third of
 *     the work. */
typedef struct rec_params {
	uint32_t neighbors_used; /* >= 1 */
	float cutoff;            /* [0, 1) */
	/* negatives_used: of the negative neighbours a model keeps (EASE's
	 * strongest negative weights, train_options.negatives), each history
	 * item's N strongest take from the scores, under the same cutoff. */
	uint32_t negatives_used;
	/* Hybrid scoring, for a model with content tables (content.h). Item
	 * j's score blends its collaborative sum CF_j (above) with its
	 * content sum CT_j (each source's content neighbours, times the
	 * source's weight):
	 *     score_j = (1 - beta_j) CF_j + beta_j * content_weight * CT_j,
	 *     beta_j  = content_count / (content_count + customers of j),
	 * and beta_j = 1 for an item nobody has bought: the fewer its
	 * interactions, the more its content counts. content_weight 0 turns
	 * content off (the scores of a model without content tables);
	 * content_count 0 uses content only for items without interactions.
	 * The similar-items answer blends the same way with beta the larger of
	 * the item's and the neighbour's, so an item nobody has bought
	 * answers with its content neighbours. Tuned on the validation split
	 * (tune.h). */
	float content_weight; /* >= 0 */
	float content_count;  /* >= 0 */
	/* no_precomputed: score every customer in full, never from the model's
	 * precomputed lists (serve --no-precomputed: the reference the fast
	 * path is tested and benchmarked against). */
	bool no_precomputed;
	/* history_weight: how much each history item's neighbours count
	 * (enum rec_history_weight). */
	uint32_t history_weight;
} rec_params;
#define REC_DEFAULT_NEIGHBORS_USED 30u
#define REC_DEFAULT_CUTOFF 0.1f
#define REC_DEFAULT_NEGATIVES_USED 1000u /* all a model keeps */
#define REC_DEFAULT_CONTENT_WEIGHT 0.01f
#define REC_DEFAULT_CONTENT_COUNT 0.0f

/* The weight a history item spreads its neighbours with, from S, the sum
 * of its events' weights decayed to the model's as-of time (live events
 * since then added):
 *   sqrt:   sqrt(S): repeats and views count, with diminishing returns;
 *   binary: 1 for every item with S > 0: each item once, as plain EASE
 *           scores a customer's row;
 *   recent: each item once, decayed by its latest interaction with the
 *           model's half-life (binary when the model has no decay);
 *   log:    ln(1 + S).
 * No retraining: the tuner scores one model under each. */
enum rec_history_weight {
	REC_HW_SQRT = 0,
	REC_HW_BINARY,
	REC_HW_RECENT,
	REC_HW_LOG,
	REC_HW_COUNT,
	REC_HW_UNSET = UINT32_MAX, /* rec_params_unset: not given */
};
#define REC_DEFAULT_HISTORY_WEIGHT REC_HW_SQRT
/* The name of w ("sqrt", "binary", "recent", "log"; "?" out of range). */
const char *rec_history_weight_name(uint32_t w);
/* The weight named s[0..len) (case-sensitive). Returns 0, or -1 when there
 * is none of that name. */
int rec_history_weight_parse(const char *s, size_t len, uint32_t *out);

/* The defaults above. */
void rec_params_init(rec_params *p);
/* Marks every field "not given" (neighbors_used 0, cutoff < 0,
 * negatives_used UINT32_MAX, content_weight and content_count < 0, history_weight
 * REC_HW_UNSET), for
 * rec_params_for_model. */
void rec_params_unset(rec_params *p);
/* The parameters to serve a model with: each field `given` sets (flags),
 * else the model's own (the serving knobs its tuning chose, model_info
 * serve_*), else the defaults above. */
void rec_params_for_model(rec_params *out, const rec_params *given, const model_info *info);
/* Applies p (out-of-range fields mean their defaults). */
void rec_ctx_configure(rec_ctx *c, const rec_params *p);
void rec_ctx_free(rec_ctx *c);

/* Live events scored per request at most (the most recent ones). */
#define REC_MAX_EVENTS 200

/* The top n (1..REC_MAX_N) items for customer id under filter f (NULL:
 * none). With a state transaction `st` (NULL: none), the customer's events
 * since the model's as-of time count too, decayed from their own time with
 * the model's half-life and weighted by the model's event weights: a
 * purchase leaves the answer and lifts its neighbours, a cart or view pulls
 * its neighbours up, a removal from the cart takes the cart back. Customers
 * with neither history nor events get popular items. Returns 0, or
 * STORE_CORRUPT / STORE_ERROR. */
int rec_for_customer(rec_ctx *c, model_txn *t, state_txn *st, const char *id, size_t len,
		     uint32_t n, const rec_filter *f, rec_result *out);

/* rec_for_customer for a customer already looked up: `cust` is their model
 * record (NULL: not in the model) and `ev` their recorded events (NULL or
 * count 0: none), both borrowed from the caller's transactions.
 *
 * The fast path: when the model keeps a precomputed list for cust
 * (precompute.h), the ctx scores with the parameters the list was scored
 * with, no event of ev is newer than the model, no history item of theirs
 * has been made not recommendable since (it would no longer add to the
 * scores), purchases are excluded and the filter leaves at least n items of
 * the list, the answer is those n items (out->precomputed): the same bytes
 * scoring would give. Otherwise it scores. A new rule in rec_filter must be
 * applied to the list too (passes() in recommend.c), or turn the path off. */
int rec_for_history(rec_ctx *c, model_txn *t, const model_customer *cust, const state_events *ev,
		    uint32_t n, const rec_filter *f, rec_result *out);

/* rec_for_history for a route that asks for the same customers again and
 * again (the customer route): a customer with live events whose
 * precomputed list cannot answer is answered from the context's live
 * cache, a list of their best candidates scored with their live events on
 * an earlier request, when the cache holds one scored from the same
 * history, the same event record (byte for byte), the same parameters and
 * the same item overrides, and the request's rules leave n of it
 * (out->live_cached): the same bytes scoring gives. Otherwise the list is
 * scored and kept (when n, the record's size and the filter allow), and
 * answers; failing that the request is scored as rec_for_history does.
 * Not for one-off walks over many customers (audiences, export): each
 * would cost a list and push a customer who asks again out of the cache.
 * The cache is the context's own (no lock), made on its first use:
 * recommend_live.c says how big. */
#define REC_LIVE_RING (1u << 20) /* bytes of event records a context's cache keeps */
/* A longer record (about 290 events of 6-byte item ids; a log keeps up to
 * STATE_MAX_EVENTS) is scored every time, as without the cache. */
#define REC_LIVE_EVENTS_MAX (REC_LIVE_RING / 128)
int rec_for_history_cached(rec_ctx *c, model_txn *t, const model_customer *cust,
			   const state_events *ev, uint32_t n, const rec_filter *f, rec_result *out);

/* The top n items for a basket or browsing session: items[0..n_items) are
 * scored like a history (weight 1 each) and left out of the answer. With a
 * customer id (NULL: none), what they bought is left out too unless the
 * filter includes purchases. Returns 0 or a STORE_* error. */
int rec_for_basket(rec_ctx *c, model_txn *t, const uint32_t *items, uint32_t n_items,
		   const char *customer, size_t customer_len, uint32_t n, const rec_filter *f,
		   rec_result *out);

/* A model held in memory, as the trainer made it, for scoring candidates
 * while tuning (tune.h). Item i's neighbours are lists[i*stride ..]:
 * n_pos[i] positive ones best first, then n_neg[i] negative ones strongest
 * first (n_neg NULL: none). popular: n_items (item, score) pairs, best
 * first, as the model's popular list. All borrowed. */
typedef struct rec_table {
	const neighbor *lists;
	uint32_t stride;
	const uint32_t *n_pos;
	const uint32_t *n_neg;
	const neighbor *popular;
	uint32_t n_items;
	/* Hybrid scoring (rec_params): item i's content neighbours are
	 * content[i*content_stride .. + n_content[i]), and popularity[i] its
	 * customers; content NULL: none. */
	const neighbor *content;
	uint32_t content_stride;
	const uint32_t *n_content;
	const float *popularity;
	int64_t as_of;          /* the model's as-of time and half-life (0: no */
	double half_life_days;  /* decay), for the "recent" history weight */
} rec_table;

/* The top n items for a history hist[0..n_hist) (most recent first, as
 * train_result stores it) under table t: the same answer rec_for_history
 * gives for a model customer with that history, no events and eval's
 * filter (what they bought left out, no because lists). c must be sized
 * for t->n_items. Never fails. */
void rec_for_table(rec_ctx *c, const rec_table *t, const history_entry *hist, uint32_t n_hist,
		   uint32_t n, rec_result *out);

/* n popular items (recent popularity) that pass the filter. */
void rec_popular(rec_ctx *c, const model *m, uint32_t n, const rec_filter *f, rec_result *out);

/* Item idx's n best neighbours that pass the filter (NULL: none). Returns 0
 * or a STORE_* error. */
int rec_similar(rec_ctx *c, model_txn *t, uint32_t idx, uint32_t n, const rec_filter *f,
		rec_result *out);

/* ---- live item overrides (PUT /v1/items/{id}) ---------------------------
 * Every route above leaves out items that are out of stock or not
 * recommendable (model_item_bits); these put the state's overrides into a
 * model's bitmaps. */

/* Applies one item's STATE_ITEM_* flags to m. Returns 0, or STORE_NOTFOUND
 * when m does not know the item (the override waits in the state for a
 * model that does). */
int rec_apply_item_override(model *m, const char *id, size_t len, uint32_t flags);
/* Applies every override in the state to m: call when a model is opened,
 * before it serves. Returns 0 or a STORE_* error. */
int rec_load_item_overrides(model *m, state *s);

#endif
