/*
 * recommend_internal: what recommend.c, recommend_hybrid.c and
 * recommend_precomputed.c share, and nothing else includes: the request
 * context's body, the filter checks every selection makes, and the steps
 * one file hands to another. Every function here works on a context
 * begin() has started (one request, one thread); pointers are borrowed
 * for the call.
 */
#ifndef SHOPKEEPER_RECOMMEND_INTERNAL_H
#define SHOPKEEPER_RECOMMEND_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "content.h"
#include "recommend.h"

/* What a request knows about one item besides its score. */
struct cand {
	uint32_t banned;  /* == gen: never recommend it now */
	uint32_t ev_seen; /* == gen: ev_aff is this request's */
	float ev_aff;     /* live events' affinity since as_of */
};

/* A history item (or event or basket item) the request scores with, the
 * weight it spreads with, and its neighbours (the `use` best): both passes
 * walk them. */
struct source {
	const unsigned char *pairs; /* model_pairs data, borrowed from the txn */
	const unsigned char *neg;   /* its negative neighbours, strongest first */
	const unsigned char *cpairs; /* its content neighbours, best first */
	uint32_t use, neg_use, cuse;
	uint32_t item;
	float weight;
};

_Static_assert(REC_MAX_N < 255, "answer slots must fit rec_ctx.picked");
_Static_assert(PRECOMP_BECAUSE == REC_MAX_BECAUSE, "a precomputed entry holds a whole because list");

/* Scoring runs in two passes. The first only adds to `acc`, a float per
 * item that is all zero between requests (reset through `touched`), so the
 * inner loop is a load and an add in a few KiB of cache. The second walks
 * the same neighbour lists once more, but only for the n items chosen, to
 * find the history items that contributed most to each (`because`). */
struct rec_ctx {
	uint32_t n_items;
	uint32_t neighbors_used; /* per history item, best first */
	uint32_t negatives_used; /* negative neighbours per history item */
	float cutoff;       /* share of the strongest contribution a neighbour needs */
	uint32_t history_weight; /* enum rec_history_weight (rec_params) */
	uint32_t hw_now;    /* this request's: the filter's, else the above */
	double recent_rate; /* this request's model: decay per second (0: none) */
	int64_t as_of;      /* ... and its as-of time, for REC_HW_RECENT */
	float min_contribution; /* this request's: cutoff x its strongest one */
	uint32_t gen;       /* current request's generation */
	float *acc;         /* per item: score this request (0: untouched) */
	struct cand *cand;  /* per item */
	uint8_t *picked;    /* per item: slot in the answer + 1 while chosen */
	uint32_t *touched;  /* items with acc != 0 (n_items + 1 slots) */
	uint32_t n_touched;
	struct source sources[REC_MAX_HISTORY + REC_MAX_EVENTS + 128];
	uint32_t n_sources;
	bool any_negative;  /* some source has negative neighbours in use */
	uint32_t ev_items[REC_MAX_EVENTS]; /* distinct items with events */
	uint32_t n_ev_items;
	neighbor heap[REC_MAX_N];
	bool use_precomputed; /* the model's lists may answer (rec_params.no_precomputed) */
	model_item_bits bits; /* this request's model's live item bitmaps */
	/* Hybrid scoring (content.h): the content neighbours' sums, the
	 * blend knobs, and where this request reads item popularity. */
	float *acc_c;         /* per item: content score this request */
	float content_weight; /* s: 0 turns content off */
	float content_count;  /* b: beta_j = b / (b + customers of j) */
	bool content_on;      /* this request blends (s > 0, tables there) */
	const content_index *ci; /* this request's model's tables, or NULL */
	const model *pop_model;  /* popularity from the model, else: */
	const float *pop_table;  /* from a rec_table */
	_Atomic uint64_t *no_bits; /* all clear, for rec_for_table (made by its first call) */
	struct rec_live_cache *lcache; /* recommend_live.c (made by its first use), or NULL */
};

/* ---- the filter's rules --------------------------------------------------------
 * Inline here, as they were in one file: each is called per candidate. */

/* Whether the filter has a category or price rule at all. */
static inline bool has_rules(const rec_filter *f)
{
	return f && (f->category != UINT32_MAX || f->min_price >= 0 || f->max_price >= 0 ||
		     f->new_since != MODEL_DAY_UNKNOWN);
}

/* Whether the filter's category and price rules let item j through. */
static inline bool allowed(const model *m, const rec_filter *f, uint32_t j)
{
	if (!has_rules(f))
		return true;
	if (f->category != UINT32_MAX && model_item_category(m, j) != f->category)
		return false;
	/* An unknown day is MODEL_DAY_UNKNOWN, below every date. */
	if (f->new_since != MODEL_DAY_UNKNOWN && model_item_first_seen(m, j) < f->new_since)
		return false;
	if (f->min_price >= 0 || f->max_price >= 0) {
		float p = model_item_price(m, j);
		if (p < 0 || (f->min_price >= 0 && p < f->min_price) ||
		    (f->max_price >= 0 && p > f->max_price))
			return false;
	}
	return true;
}

/* ---- recommend.c ------------------------------------------------------------- */

/* The end both selections (plain and blended) share, once
 * out->items[first..out->n) holds the `got` items they chose by score:
 * the items' ids and titles prefetched, their because lists found (pass
 * two, unless the filter turns them off), then out topped up to n items
 * from the popularity list pop (total pairs). m may be NULL (a
 * rec_table) when the filter has no rules. */
void rec_finish_top(rec_ctx *c, const model *m, const unsigned char *pop, uint32_t total,
		    uint32_t n, const rec_filter *f, rec_result *out, uint32_t first, uint32_t got);

/* Starts a request on c (a fresh generation, the filter's exclusions
 * banned, out empty): what every rec_* entry point does first. */
void rec_begin(rec_ctx *c, const model *m, const rec_filter *f, rec_result *out);

/* rec_for_history's scoring once the fast paths have said no, on a
 * request rec_begin has started with the same f: live events folded in,
 * purchases banned, the history's sources spread, the best n chosen,
 * explained and topped up with popular items. Returns 0 or a STORE_*
 * error. */
int rec_score_history(rec_ctx *c, model_txn *t, const model_customer *cust, const state_events *ev,
		      uint32_t n, const rec_filter *f, rec_result *out);

/* The generation of the live item overrides: it changes after every
 * rec_apply_item_override, of any model of the process (acquire: a reader
 * that sees a value sees the bitmaps as they were when it was set). */
uint64_t rec_overrides_gen(void);

/* ---- hybrid scoring (recommend_hybrid.c) -------------------------------------- */

/* Pass one's content half (hybrid scoring): every source's content
 * neighbours into acc_c, after the collaborative ones, so an item enters
 * `touched` here only when neither sum has touched it yet. No cutoff: the
 * lists are short (content.h's N) and their weak end is what reaches new
 * items. */
void rec_spread_content(rec_ctx *c);

/* select_top_from's choice under hybrid scoring: each touched item's
 * collaborative and content sums blended (blend), then as there. Kept
 * apart so the plain path's loop stays one load and a compare. */
void rec_select_blended(rec_ctx *c, const model *m, uint32_t n, const rec_filter *f,
			rec_result *out, const unsigned char *pop, uint32_t total);

/* rec_similar under hybrid scoring: the item's collaborative and content
 * neighbours blended with beta the larger of the item's and each
 * neighbour's (rec_params), best n that pass. */
int rec_similar_blended(rec_ctx *c, const model *m, uint32_t idx, const model_pairs *nb,
			uint32_t n, const rec_filter *f, rec_result *out);

/* ---- the precomputed fast path (recommend_precomputed.c) ----------------------- */

/* Answers from cust's precomputed list when that gives scoring's answer
 * (recommend_precomputed.c says when): true with *out filled, else false with *out empty. Called
 * by rec_for_history after begin(). */
bool rec_from_precomputed(rec_ctx *c, const model *m, const model_customer *cust,
			  const state_events *ev, uint32_t n, const rec_filter *f,
			  rec_result *out);

/* The first n items of `list` (a customer's best candidates as scoring
 * ranks them under the default filter, best first) that this request's
 * filter lets through, with their scores and because lists: true with
 * *out filled, or false with *out empty when fewer than n pass. A
 * complete list (model_plist) answers with fewer, true: the caller tops up
 * (rec_top_up_popular). Exact when the list was scored from what this
 * request scores (recommend_precomputed.c says why). */
bool rec_from_list(rec_ctx *c, const model *m, const model_plist *list, uint32_t n,
		   const rec_filter *f, rec_result *out);

/* Tops out (personal items chosen, fewer than n) up to n with popular
 * items as scoring does once its candidates run out: cust's purchases and
 * the chosen items banned first (unless f includes purchases), top-ups
 * scored 0 below personal items. In recommend.c. */
void rec_top_up_popular(rec_ctx *c, const model *m, const model_customer *cust, uint32_t n,
			const rec_filter *f, rec_result *out);

/* ---- the live cache (recommend_live.c) ---------------------------------------- */

/* rec_for_history_cached's step after rec_from_precomputed said no, on a
 * started request: 1 with *out the answer from the cache (a list found or
 * scored now), 0 with the request as rec_begin left it (the caller scores),
 * or a STORE_* error (< 0). */
int rec_from_live(rec_ctx *c, model_txn *t, const model_customer *cust, const state_events *ev,
		  uint32_t n, const rec_filter *f, rec_result *out);
/* Frees a cache (NULL: nothing). */
void rec_live_cache_free(struct rec_live_cache *lc);

#endif
