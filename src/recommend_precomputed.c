/*
 * recommend_precomputed: the request path's fast path, answering a
 * customer from the list precompute.h scored at training time when that
 * list gives exactly what scoring would (why and when, below), and the
 * filter both it and the live cache (recommend_live.c) answer through;
 * recommend_internal.h has the contracts of rec_from_precomputed and
 * rec_from_list.
 */
#include "recommend.h"

#include "recommend_internal.h"
#include "util.h"

/* ---- precomputed lists (precompute.h) ----------------------------------------
 * A list holds the customer's best candidates as rec_for_history ranks
 * them with no live events and the list's parameters: purchases left out,
 * items hidden when the model was trained left out, best first in topk's
 * total order (score, then item index). Every rule a request adds only
 * takes items away (exclude=, category, price, items hidden since), and
 * each item's score and because list depend on the history alone, not on
 * which other items are chosen. So the first n list items a request's
 * filter lets through are the n scoring would choose, with the same scores
 * and because lists, as long as n of them get through. When fewer get
 * through, scoring tops up from the popular items; a complete list (every
 * candidate scoring has, fewer than the stride: precompute.c marks it)
 * does the same, with the same bans (rec_top_up_popular). On the
 * 958,000-customer generated model 10% of customers have one, and each
 * was scored in full before. Hybrid scoring's content items are in the
 * lists too (their score negated, model_format.h): a list that stopped at
 * the first left 0.95% of that model's customers to full scoring, which
 * took 12% of the server's time (perf). */

/* Whether nothing since training changes what this customer's list was
 * scored from: the same parameters, no event newer than the model (older
 * ones are in its history and fold_events skips them), and no history item
 * made not recommendable since (add_source would skip it). Mirrors the
 * history walk of rec_for_history. */
static bool list_current(const rec_ctx *c, const model *m, const model_customer *cust,
			 const state_events *ev, const precomp_header *h)
{
	if (h->neighbors_used != c->neighbors_used || h->cutoff != c->cutoff ||
	    h->negatives_used != c->negatives_used || h->content_weight != c->content_weight ||
	    h->content_count != c->content_count || h->history_weight != c->hw_now)
		return false;
	if (ev && ev->count > 0) {
		int64_t as_of = model_get_info(m)->as_of;
		event_view e;
		size_t pos = 0;
		int rc;
		while ((rc = state_events_next(ev, &pos, &e)) == 0)
			if (e.ts > as_of)
				return false;
		if (rc != STORE_NOTFOUND)
			return false; /* scoring reports it */
	}
	/* The walk costs a cache miss per few entries: skipped until some
	 * override has taken an item out of the scores. */
	if (!model_unsourced_overrides(m))
		return true;
	uint32_t used = 0;
	for (uint32_t i = 0; i < cust->n_hist && used < REC_MAX_HISTORY; i++) {
		history_entry e = model_history_at(cust, i);
		if (e.item >= c->n_items)
			return false;
		if (!(e.weight * e.weight > 0.0f))
			continue;
		/* Unsourced by the model itself it was when the list was
		 * scored; by a live override it was not. */
		if (model_bit(c->bits.unsourced, e.item) && model_item_recommendable(m, e.item))
			return false;
		used++;
	}
	return true;
}

/* Whether list item j may be in this request's answer: what
 * select_top_from checks, but the score (positive in every list). */
static inline bool passes(const rec_ctx *c, const model *m, const rec_filter *f, bool rules,
			  uint32_t j)
{
	return c->cand[j].banned != c->gen && !model_bit(c->bits.hidden, j) &&
	       (!rules || allowed(m, f, j));
}

bool rec_from_list(rec_ctx *c, const model *m, const model_plist *list, uint32_t n,
		   const rec_filter *f, rec_result *out)
{
	if (list->n < n && !list->complete)
		return false;
	bool rules = has_rules(f), because = !f || f->because;
	for (uint32_t k = 0; k < list->n && out->n < n; k++) {
		precomp_entry e = model_plist_at(list, k);
		if (!passes(c, m, f, rules, e.item))
			continue;
		rec_item *it = &out->items[out->n++];
		it->item = e.item;
		it->score = e.score < 0.0f ? -e.score : e.score;
		it->source = e.score < 0.0f ? REC_CONTENT : REC_PERSONAL;
		it->n_because = 0;
		while (because && it->n_because < PRECOMP_BECAUSE &&
		       e.because[it->n_because] != UINT32_MAX) {
			it->because[it->n_because] = e.because[it->n_because];
			it->n_because++;
		}
		model_item_prefetch(m, e.item);
	}
	if (out->n < n && !list->complete) {
		out->n = 0; /* too few left: scoring decides */
		return false;
	}
	if (out->n > 0)
		out->source = REC_PERSONAL;
	return true;
}

bool rec_from_precomputed(rec_ctx *c, const model *m, const model_customer *cust,
			  const state_events *ev, uint32_t n, const rec_filter *f,
			  rec_result *out)
{
	model_plist list;
	const precomp_header *h = model_precomputed_header(m);
	if (!c->use_precomputed || !h || (f && f->include_purchased) ||
	    !model_precomputed(m, cust, &list) || (list.n < n && !list.complete) ||
	    !list_current(c, m, cust, ev, h) || !rec_from_list(c, m, &list, n, f, out))
		return false;
	if (out->n < n) {
		rec_top_up_popular(c, m, cust, n, f, out);
		out->topped_up = true;
	}
	out->precomputed = true;
	return true;
}
