/*
 * recommend: item-based scoring with per-thread, generation-stamped scratch:
 * the request context, the history weights, both scoring passes and the
 * popular fill, and the entry points (customer, basket, similar, popular,
 * a rec_table for tuning). Hybrid scoring's content half is in
 * recommend_hybrid.c, the precomputed fast path in
 * recommend_precomputed.c; recommend_internal.h is what they share.
 */
#include "recommend.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "content.h"
#include "ingest.h" /* enum event_type */
#include "recommend_internal.h"
#include "topk.h"
#include "util.h"

const char *rec_source_name(enum rec_source s)
{
	return s == REC_POPULAR ? "popular" : s == REC_CONTENT ? "content" : "personal";
}

void rec_filter_init(rec_filter *f)
{
	memset(f, 0, sizeof(*f));
	f->category = UINT32_MAX;
	f->min_price = -1.0f;
	f->max_price = -1.0f;
	f->new_since = MODEL_DAY_UNKNOWN;
	f->personal = true;
	f->because = true;
	f->history_weight = REC_HW_UNSET;
}

rec_ctx *rec_ctx_create(uint32_t n_items)
{
	rec_ctx *c = xcalloc(1, sizeof(*c));
	size_t n = n_items ? n_items : 1;
	c->n_items = n_items;
	c->neighbors_used = REC_DEFAULT_NEIGHBORS_USED;
	c->negatives_used = REC_DEFAULT_NEGATIVES_USED;
	c->cutoff = REC_DEFAULT_CUTOFF;
	c->content_weight = REC_DEFAULT_CONTENT_WEIGHT;
	c->content_count = REC_DEFAULT_CONTENT_COUNT;
	c->use_precomputed = true;
	c->history_weight = REC_DEFAULT_HISTORY_WEIGHT;
	c->acc = xcalloc(n, sizeof(*c->acc));
	c->acc_c = xcalloc(n, sizeof(*c->acc_c));
	c->cand = xcalloc(n, sizeof(*c->cand));
	c->picked = xcalloc(n, 1);
	/* One spare slot: spread writes the slot past the last touched item
	 * before it knows whether the item is new. */
	c->touched = xcalloc(n + 1, sizeof(*c->touched));
	return c;
}

void rec_ctx_free(rec_ctx *c)
{
	if (!c)
		return;
	free(c->acc);
	free(c->acc_c);
	free(c->cand);
	free(c->picked);
	free(c->touched);
	free(c->no_bits);
	rec_live_cache_free(c->lcache);
	free(c);
}

void rec_params_init(rec_params *p)
{
	p->neighbors_used = REC_DEFAULT_NEIGHBORS_USED;
	p->cutoff = REC_DEFAULT_CUTOFF;
	p->negatives_used = REC_DEFAULT_NEGATIVES_USED;
	p->content_weight = REC_DEFAULT_CONTENT_WEIGHT;
	p->content_count = REC_DEFAULT_CONTENT_COUNT;
	p->no_precomputed = false;
	p->history_weight = REC_DEFAULT_HISTORY_WEIGHT;
}

static const char *const history_weight_names[REC_HW_COUNT] = {
	[REC_HW_SQRT] = "sqrt",
	[REC_HW_BINARY] = "binary",
	[REC_HW_RECENT] = "recent",
	[REC_HW_LOG] = "log",
};

const char *rec_history_weight_name(uint32_t w)
{
	return w < REC_HW_COUNT ? history_weight_names[w] : "?";
}

int rec_history_weight_parse(const char *s, size_t len, uint32_t *out)
{
	for (uint32_t w = 0; w < REC_HW_COUNT; w++)
		if (strlen(history_weight_names[w]) == len && memcmp(s, history_weight_names[w], len) == 0) {
			*out = w;
			return 0;
		}
	return -1;
}

void rec_params_unset(rec_params *p)
{
	p->neighbors_used = 0;
	p->cutoff = -1.0f;
	p->negatives_used = UINT32_MAX;
	p->content_weight = -1.0f;
	p->content_count = -1.0f;
	p->no_precomputed = false;
	p->history_weight = REC_HW_UNSET;
}

void rec_params_for_model(rec_params *out, const rec_params *given, const model_info *info)
{
	rec_params_init(out);
	if (info->serve_neighbors_used)
		out->neighbors_used = info->serve_neighbors_used;
	if (info->serve_cutoff >= 0.0f && info->serve_cutoff < 1.0f)
		out->cutoff = info->serve_cutoff;
	if (given->neighbors_used)
		out->neighbors_used = given->neighbors_used;
	if (given->cutoff >= 0.0f && given->cutoff < 1.0f)
		out->cutoff = given->cutoff;
	if (given->negatives_used != UINT32_MAX)
		out->negatives_used = given->negatives_used;
	if (info->serve_content_weight >= 0.0f)
		out->content_weight = info->serve_content_weight;
	if (info->serve_content_count >= 0.0f)
		out->content_count = info->serve_content_count;
	if (given->content_weight >= 0.0f)
		out->content_weight = given->content_weight;
	if (given->content_count >= 0.0f)
		out->content_count = given->content_count;
	out->no_precomputed = given->no_precomputed;
	uint32_t hw;
	const char *name = info->serve_history_weight;
	if (rec_history_weight_parse(name, strlen(name), &hw) == 0)
		out->history_weight = hw;
	if (given->history_weight < REC_HW_COUNT)
		out->history_weight = given->history_weight;
}

void rec_ctx_configure(rec_ctx *c, const rec_params *p)
{
	c->neighbors_used = p->neighbors_used ? p->neighbors_used : REC_DEFAULT_NEIGHBORS_USED;
	c->cutoff = p->cutoff >= 0.0f && p->cutoff < 1.0f ? p->cutoff : REC_DEFAULT_CUTOFF;
	c->negatives_used =
		p->negatives_used != UINT32_MAX ? p->negatives_used : REC_DEFAULT_NEGATIVES_USED;
	c->content_weight = p->content_weight >= 0.0f && isfinite(p->content_weight)
				    ? p->content_weight : REC_DEFAULT_CONTENT_WEIGHT;
	c->content_count = p->content_count >= 0.0f && isfinite(p->content_count)
				   ? p->content_count : REC_DEFAULT_CONTENT_COUNT;
	c->use_precomputed = !p->no_precomputed;
	c->history_weight =
		p->history_weight < REC_HW_COUNT ? p->history_weight : REC_DEFAULT_HISTORY_WEIGHT;
}

/* The weight a history item spreads with (recommend.h, enum
 * rec_history_weight): sum is S > 0, last_ts its latest interaction,
 * live says a live event since the model's as-of time is in the sum. */
static float history_weight(const rec_ctx *c, float sum, int64_t last_ts, bool live)
{
	switch (c->hw_now) {
	case REC_HW_BINARY:
		return 1.0f;
	case REC_HW_RECENT:
		/* A live event is newer than anything the model saw. expf, not
		 * exp: up to REC_MAX_HISTORY of these per request, and a
		 * weight needs no double precision. */
		return live || c->recent_rate <= 0
			       ? 1.0f
			       : expf((float)(c->recent_rate * (double)(last_ts - c->as_of)));
	case REC_HW_LOG:
		return log1pf(sum);
	default:
		return sqrtf(sum);
	}
}

/* Starts a request: a fresh generation makes every stamp stale at once;
 * the filter's exclusions are banned up front. */
static void begin(rec_ctx *c, const model *m, const rec_filter *f, rec_result *out)
{
	/* A rec_table (m NULL) hides nothing. */
	c->bits = m ? model_get_item_bits(m) : (model_item_bits){ c->no_bits, c->no_bits };
	if (m) {
		c->ci = model_content(m);
		c->pop_model = m;
		c->pop_table = NULL;
	}
	c->content_on = c->content_weight > 0.0f && c->ci;
	if (++c->gen == 0) { /* wrapped after 4 billion requests */
		memset(c->cand, 0, (size_t)c->n_items * sizeof(*c->cand));
		c->gen = 1;
	}
	c->n_touched = 0;
	c->n_sources = 0;
	c->any_negative = false;
	c->n_ev_items = 0;
	c->hw_now = f && f->history_weight < REC_HW_COUNT ? f->history_weight : c->history_weight;
	out->n = 0;
	out->source = REC_POPULAR;
	out->precomputed = false;
	out->topped_up = false;
	out->live_cached = false;
	out->live = NULL;
	for (uint32_t i = 0; f && i < f->n_exclude; i++)
		if (f->exclude[i] < c->n_items)
			c->cand[f->exclude[i]].banned = c->gen;
}

/* Queues item `from` to spread its neighbours (n positive ones at `pairs`,
 * n_neg negative ones at `neg`) with `weight`, and asks the memory system
 * for its neighbour list at once. A request reads a few dozen lists
 * scattered over the model, usually cold after the kernel's network work:
 * fetched one after the other they cost a cache miss each, prefetched
 * together the misses overlap. */
static void add_pairs(rec_ctx *c, const unsigned char *pairs, uint32_t n,
		      const unsigned char *neg, uint32_t n_neg, const unsigned char *cpairs,
		      uint32_t n_c, uint32_t from, float weight)
{
	uint32_t use = MIN(n, c->neighbors_used);
	uint32_t neg_use = MIN(n_neg, c->negatives_used);
	uint32_t cuse = c->content_on ? n_c : 0;
	if (!(weight > 0.0f) || (use == 0 && cuse == 0) || c->n_sources == ARRAY_SIZE(c->sources))
		return;
	c->sources[c->n_sources++] =
		(struct source){ pairs, neg, cpairs, use, neg_use, cuse, from, weight };
	c->any_negative |= neg_use > 0;
	size_t bytes = (size_t)use * sizeof(neighbor);
	for (size_t off = 0; off < bytes; off += 64)
		__builtin_prefetch(pairs + off);
}

/* add_pairs for a model item. Returns 0 or STORE_CORRUPT. */
static int add_source(rec_ctx *c, model_txn *t, uint32_t from, float weight)
{
	model_pairs nb;
	int rc = model_neighbors(t, from, &nb);
	if (rc)
		return rc;
	/* An item made not recommendable since training adds nothing. */
	if (model_bit(c->bits.unsourced, from))
		return 0;
	const unsigned char *cp = NULL;
	uint32_t cn = 0;
	if (c->content_on)
		content_item_neighbors(c->ci, from, &cp, &cn);
	add_pairs(c, nb.data, nb.n, nb.neg, nb.n_neg, cp, cn, from, weight);
	return 0;
}

/* The smallest contribution (source weight x neighbour score) worth
 * adding: the cutoff share of the request's strongest. Each neighbour list
 * is best first, so both passes stop a list at the first neighbour below
 * it. On the validation split (bench/README.md, "Recommendation
 * quality") a share of 0.1 left a third of the work and scored as well as
 * adding everything: what decides a ranking is the strong pairs, not the
 * long tail of weak ones. Always > 0, which also keeps acc > 0 for every
 * touched item. */
static void set_min_contribution(rec_ctx *c)
{
	float top = 0.0f;
	/* The first line of every list is on its way (add_source). */
	for (uint32_t s = 0; s < c->n_sources; s++) {
		if (!c->sources[s].use)
			continue;
		float w = model_pair_at(c->sources[s].pairs, 0).score * c->sources[s].weight;
		top = w > top ? w : top;
	}
	float least = c->cutoff * top;
	c->min_contribution = least > FLT_TRUE_MIN ? least : FLT_TRUE_MIN;
}

/* Pass one's second half, for models that keep EASE's negative weights:
 * each source's strongest negative neighbours take from the scores, under
 * the same cutoff (by size). A score may now come back to exactly zero and
 * then look untouched, so a sum that lands on zero is nudged below it:
 * `touched` then lists every item once, as its size requires. */
static void spread_negative(rec_ctx *c)
{
	float *acc = c->acc, min_w = c->min_contribution;
	uint32_t *touched = c->touched, n_touched = c->n_touched;
	for (uint32_t s = 0; s < c->n_sources; s++) {
		const struct source *src = &c->sources[s];
		for (uint32_t r = 0; r < src->neg_use; r++) {
			neighbor p = model_pair_at(src->neg, r);
			float w = p.score * src->weight; /* < 0 */
			if (!(-w >= min_w))
				break;
			float old = acc[p.item], sum = old + w;
			touched[n_touched] = p.item;
			n_touched += old == 0.0f;
			acc[p.item] = sum != 0.0f ? sum : -FLT_TRUE_MIN;
		}
	}
	c->n_touched = n_touched;
}

/* Pass one: adds every source's neighbours, times its weight, to the
 * scores. The hot loop of every recommendation: an item enters `touched`
 * the first time its score leaves zero, appended without a branch (the
 * slot is written every time and kept only when the score was zero),
 * because whether an item is new is a coin toss the branch predictor
 * loses. */
static void spread(rec_ctx *c)
{
	float *acc = c->acc, min_w = c->min_contribution;
	uint32_t *touched = c->touched, n_touched = c->n_touched;
	for (uint32_t s = 0; s < c->n_sources; s++) {
		const struct source *src = &c->sources[s];
		for (uint32_t r = 0; r < src->use; r++) {
			/* Items and scores were checked at model_open: index in
			 * range, score finite and > 0, best first. */
			neighbor p = model_pair_at(src->pairs, r);
			float w = p.score * src->weight;
			if (!(w >= min_w))
				break;
			float old = acc[p.item];
			touched[n_touched] = p.item;
			n_touched += old == 0.0f;
			acc[p.item] = old + w;
		}
	}
	c->n_touched = n_touched;
	if (c->any_negative)
		spread_negative(c);
	if (c->content_on)
		rec_spread_content(c);
}

/* Keeps it->because the REC_MAX_BECAUSE largest contributions,
 * largest first: w, from source item `from`, goes in its place (bw holds
 * the weights of it->because). */
static inline bool because_add(rec_item *it, float *bw, float w, uint32_t from)
{
	int pos = it->n_because;
	if (pos == REC_MAX_BECAUSE) {
		if (w <= bw[REC_MAX_BECAUSE - 1])
			return false;
		pos = REC_MAX_BECAUSE - 1;
	} else {
		it->n_because++;
	}
	while (pos > 0 && bw[pos - 1] < w) {
		bw[pos] = bw[pos - 1];
		it->because[pos] = it->because[pos - 1];
		pos--;
	}
	bw[pos] = w;
	it->because[pos] = from;
	return true;
}

/* The contribution a similarity pair must exceed to become a reason of
 * any chosen item in out[first, last): the least of their weakest kept
 * reasons once every personal one has REC_MAX_BECAUSE, 0 while one still
 * has room, +inf when none is personal (content items take reasons from
 * content pairs only). */
static float because_floor(const rec_result *out, uint32_t first, uint32_t last,
			   float (*bw)[REC_MAX_BECAUSE])
{
	float floor = INFINITY;
	for (uint32_t k = first; k < last; k++) {
		if (out->items[k].source == REC_CONTENT)
			continue;
		if (out->items[k].n_because < REC_MAX_BECAUSE)
			return 0.0f;
		floor = MIN(floor, bw[k][REC_MAX_BECAUSE - 1]);
	}
	return floor;
}

/* Pass two: for each chosen item, the REC_MAX_BECAUSE sources that added
 * most to its score, largest first. picked[item] holds the item's slot in
 * out plus one while it is chosen, so a neighbour is one byte load away
 * from being skipped. */
static void explain(rec_ctx *c, rec_result *out, uint32_t first, uint32_t last)
{
	for (uint32_t k = first; k < last; k++) {
		c->picked[out->items[k].item] = (uint8_t)(k + 1);
		out->items[k].n_because = 0;
	}
	float because_w[REC_MAX_N][REC_MAX_BECAUSE];
	/* Each list is best first, so once every chosen item holds
	 * REC_MAX_BECAUSE reasons, a list is done at its first pair weaker
	 * than all of their weakest: because_add would turn down that pair
	 * and every later one. Exact (the same answers for all 4,372 Online
	 * Retail customers, three serving settings), and 16% off the pass:
	 * 31,400 -> 26,500 instructions a scored request (callgrind, 1,000
	 * customers, the tuned model's 10 neighbours used). */
	float floor = because_floor(out, first, last, because_w);
	for (uint32_t s = 0; s < c->n_sources; s++) {
		const struct source *src = &c->sources[s];
		for (uint32_t r = 0; r < src->use; r++) {
			neighbor p = model_pair_at(src->pairs, r);
			float w = p.score * src->weight;
			if (!(w >= c->min_contribution) || w <= floor)
				break; /* as in spread; or no reason can change */
			uint32_t slot = c->picked[p.item];
			if (!slot || out->items[slot - 1].source == REC_CONTENT)
				continue;
			rec_item *it = &out->items[slot - 1];
			if (because_add(it, because_w[slot - 1], w, src->item) &&
			    it->n_because == REC_MAX_BECAUSE)
				floor = because_floor(out, first, last, because_w);
		}
		for (uint32_t r = 0; r < src->cuse; r++) {
			neighbor p = model_pair_at(src->cpairs, r);
			uint32_t slot = c->picked[p.item];
			if (!slot || out->items[slot - 1].source != REC_CONTENT)
				continue; /* a content item's reasons are content ones */
			because_add(&out->items[slot - 1], because_w[slot - 1], p.score * src->weight,
				    src->item);
		}
	}
	for (uint32_t k = first; k < last; k++)
		c->picked[out->items[k].item] = 0;
}

/* Tops `out` up to n items from the popularity list pop (total pairs,
 * best first), skipping banned items, items the filter rejects and items
 * already in out. */
static void fill_popular_from(rec_ctx *c, const model *m, const unsigned char *pop,
			      uint32_t total, uint32_t n, const rec_filter *f, rec_result *out)
{
	total = MIN(total, c->n_items);
	bool topping_up = out->n > 0;
	for (uint32_t r = 0; r < total && out->n < n; r++) {
		neighbor p = model_pair_at(pop, r);
		if (c->cand[p.item].banned == c->gen || model_bit(c->bits.hidden, p.item) ||
		    !allowed(m, f, p.item))
			continue;
		c->cand[p.item].banned = c->gen; /* no duplicates */
		rec_item *it = &out->items[out->n++];
		it->item = p.item;
		/* Popularity is another scale than similarity sums: below a
		 * personal list, top-ups score 0 so scores never rise. */
		it->score = topping_up ? 0.0f : p.score;
		it->source = REC_POPULAR;
		it->n_because = 0;
	}
}

static void fill_popular(rec_ctx *c, const model *m, uint32_t n, const rec_filter *f,
			 rec_result *out)
{
	fill_popular_from(c, m, model_popular(m), model_get_info(m)->n_items, n, f, out);
}

void rec_finish_top(rec_ctx *c, const model *m, const unsigned char *pop, uint32_t total,
		    uint32_t n, const rec_filter *f, rec_result *out, uint32_t first, uint32_t got)
{
	/* The answer will name these items: their ids and titles load while
	 * the because pass runs. */
	for (uint32_t k = first; m && k < out->n; k++)
		model_item_prefetch(m, out->items[k].item);
	if (got > 0) {
		out->source = REC_PERSONAL;
		if (!f || f->because)
			explain(c, out, first, out->n);
	}
	fill_popular_from(c, m, pop, total, n, f, out);
}

/* Scores the queued sources (pass one), keeps the best n candidates that
 * pass, names their because items (pass two), then fills up with popular
 * items from pop (total pairs). Leaves acc all zero again. Most touched
 * items score below the n-th best so far: they are dropped on one
 * comparison, before the ban and filter checks and the heap. A score at or
 * below zero (negative weights outweighing the rest) is no recommendation.
 * m may be NULL (a rec_table) when the filter has no rules. */
static void select_top_from(rec_ctx *c, const model *m, const unsigned char *pop,
			    uint32_t total, uint32_t n, const rec_filter *f, rec_result *out)
{
	bool rules = has_rules(f);
	set_min_contribution(c);
	spread(c);
	topk heap;
	topk_init(&heap, c->heap, n);
	float threshold = topk_threshold(&heap);
	if (c->content_on) {
		rec_select_blended(c, m, n, f, out, pop, total);
		return;
	}
	for (uint32_t k = 0; k < c->n_touched; k++) {
		uint32_t j = c->touched[k];
		float score = c->acc[j];
		c->acc[j] = 0.0f;
		/* The hidden check costs a load only for the few items good
		 * enough to enter the heap. */
		if (score < threshold || !(score > 0.0f) || c->cand[j].banned == c->gen ||
		    model_bit(c->bits.hidden, j) || (rules && !allowed(m, f, j)))
			continue;
		topk_push(&heap, j, score);
		threshold = topk_threshold(&heap);
	}
	c->n_touched = 0;
	uint32_t got = topk_sort(&heap), first = out->n;
	for (uint32_t k = 0; k < got; k++) {
		uint32_t j = c->heap[k].item;
		rec_item *it = &out->items[out->n++];
		it->item = j;
		it->score = c->heap[k].score;
		it->source = REC_PERSONAL;
		it->n_because = 0;
		c->cand[j].banned = c->gen;
	}
	rec_finish_top(c, m, pop, total, n, f, out, first, got);
}

static void select_top(rec_ctx *c, model_txn *t, uint32_t n, const rec_filter *f,
		       rec_result *out)
{
	const model *m = model_txn_model(t);
	select_top_from(c, m, model_popular(m), model_get_info(m)->n_items, n, f, out);
}

/* Bans what the customer bought (unless the filter allows it). */
static void ban_purchases(rec_ctx *c, const model_customer *cust, const rec_filter *f)
{
	if (f && f->include_purchased)
		return;
	for (uint32_t i = 0; i < cust->n_hist; i++) {
		history_entry e = model_history_at(cust, i);
		/* Bought, or bought and sent back: either way not news to them. */
		if (e.item < c->n_items && (e.flags & (HIST_PURCHASED | HIST_RETURNED)))
			c->cand[e.item].banned = c->gen;
	}
}

void rec_top_up_popular(rec_ctx *c, const model *m, const model_customer *cust, uint32_t n,
			const rec_filter *f, rec_result *out)
{
	/* What scoring has banned when it fills up: the purchases and the
	 * items it chose (select_top_from). */
	ban_purchases(c, cust, f);
	for (uint32_t k = 0; k < out->n; k++)
		c->cand[out->items[k].item].banned = c->gen;
	if (out->n > 0)
		out->source = REC_PERSONAL;
	fill_popular(c, m, n, f, out);
}

/* An event's weight relative to the model's as-of time: 2^((ts - as_of) /
 * half-life), so an event a half-life newer than the model counts twice.
 * Measuring from as_of rather than from now keeps a customer's scores
 * stable between requests (only their ratio matters); the cap keeps a model
 * left unretrained for years within float range. */
static float since_as_of(double rate, int64_t ts, int64_t as_of)
{
	if (rate <= 0)
		return 1.0f;
	double g = exp(rate * (double)(ts - as_of));
	return g < 1e18 ? (float)g : 1e18f;
}

/* Folds the customer's events since the model's as-of time into ev_aff,
 * banning what they bought. Returns how many events counted (>= 0) or a
 * STORE_* error. */
static int fold_events(rec_ctx *c, model_txn *t, const state_events *ev, const rec_filter *f,
		       double rate)
{
	const model_info *info = model_get_info(model_txn_model(t));
	event_view e;
	size_t pos = 0;
	int rc;
	if (!ev || ev->count == 0)
		return 0;
	/* Only the most recent REC_MAX_EVENTS: skip the older ones. */
	for (uint32_t skip = ev->count > REC_MAX_EVENTS ? ev->count - REC_MAX_EVENTS : 0; skip; skip--)
		if ((rc = state_events_next(ev, &pos, &e)) != 0)
			return rc;
	int counted = 0;
	while ((rc = state_events_next(ev, &pos, &e)) == 0) {
		uint32_t j;
		/* Events up to as_of are already in the model's history. */
		if (e.ts <= info->as_of || model_item_lookup(t, e.item, e.item_len, &j) != 0)
			continue;
		struct cand *k = &c->cand[j];
		if (k->ev_seen != c->gen) {
			if (c->n_ev_items == REC_MAX_EVENTS)
				continue;
			k->ev_seen = c->gen;
			k->ev_aff = 0.0f;
			c->ev_items[c->n_ev_items++] = j;
		}
		float d = since_as_of(rate, e.ts, info->as_of);
		switch (e.type) {
		case EVENT_VIEW:
		case EVENT_CART:
			k->ev_aff += info->event_weight[e.type] * d;
			break;
		case EVENT_PURCHASE:
			if (e.quantity > 0) {
				k->ev_aff += info->event_weight[EVENT_PURCHASE] * d;
				if (!f || !f->include_purchased)
					k->banned = c->gen;
			}
			break;
		case EVENT_REMOVE_FROM_CART:
			k->ev_aff -= info->event_weight[EVENT_CART] * d;
			break;
		}
		counted++;
	}
	return rc == STORE_NOTFOUND ? counted : rc;
}

int rec_score_history(rec_ctx *c, model_txn *t, const model_customer *cust, const state_events *ev,
		      uint32_t n, const rec_filter *f, rec_result *out)
{
	model *m = model_txn_model(t);
	const model_info *info = model_get_info(m);
	int events = 0, rc;

	double rate = info->half_life_days > 0 ? log(2.0) / (info->half_life_days * 86400.0) : 0;
	c->recent_rate = rate;
	c->as_of = info->as_of;
	if ((events = fold_events(c, t, ev, f, rate)) < 0)
		return events;
	if (!cust && events == 0) {
		fill_popular(c, m, n, f, out);
		return 0;
	}

	if (cust) {
		ban_purchases(c, cust, f);
		/* The model stores sqrt(S) (S: the sum of event weights
		 * decayed to as_of); the live events' sums are on S's scale. */
		uint32_t used = 0;
		for (uint32_t i = 0; i < cust->n_hist && used < REC_MAX_HISTORY; i++) {
			history_entry e = model_history_at(cust, i);
			if (e.item >= c->n_items)
				return STORE_CORRUPT;
			float sum = e.weight * e.weight;
			struct cand *k = &c->cand[e.item];
			bool live = k->ev_seen == c->gen && k->ev_aff > 0.0f;
			if (k->ev_seen == c->gen) {
				sum += k->ev_aff;
				k->ev_aff = 0.0f; /* folded in here */
			}
			if (!(sum > 0.0f))
				continue;
			if ((rc = add_source(c, t, e.item, history_weight(c, sum, e.last_ts, live))) != 0)
				return rc;
			used++;
		}
	}
	for (uint32_t k = 0; k < c->n_ev_items; k++) {
		uint32_t j = c->ev_items[k];
		float aff = c->cand[j].ev_aff;
		if (aff > 0.0f && (rc = add_source(c, t, j, history_weight(c, aff, 0, true))) != 0)
			return rc;
	}
	select_top(c, t, n, f, out);
	return 0;
}

void rec_begin(rec_ctx *c, const model *m, const rec_filter *f, rec_result *out)
{
	begin(c, m, f, out);
}

/* rec_for_history, and with `cached` the live cache's answer first. */
static int for_history(rec_ctx *c, model_txn *t, const model_customer *cust,
		       const state_events *ev, uint32_t n, const rec_filter *f, rec_result *out,
		       bool cached)
{
	model *m = model_txn_model(t);
	n = MIN(MAX(n, 1u), (uint32_t)REC_MAX_N);
	begin(c, m, f, out);
	if (f && !f->personal) {
		fill_popular(c, m, n, f, out);
		return 0;
	}
	if (cust && rec_from_precomputed(c, m, cust, ev, n, f, out))
		return 0;
	if (cached) {
		int rc = rec_from_live(c, t, cust, ev, n, f, out);
		if (rc != 0)
			return rc > 0 ? 0 : rc;
	}
	return rec_score_history(c, t, cust, ev, n, f, out);
}

int rec_for_history(rec_ctx *c, model_txn *t, const model_customer *cust, const state_events *ev,
		    uint32_t n, const rec_filter *f, rec_result *out)
{
	return for_history(c, t, cust, ev, n, f, out, false);
}

int rec_for_history_cached(rec_ctx *c, model_txn *t, const model_customer *cust,
			   const state_events *ev, uint32_t n, const rec_filter *f, rec_result *out)
{
	return for_history(c, t, cust, ev, n, f, out, true);
}

int rec_for_customer(rec_ctx *c, model_txn *t, state_txn *st, const char *id, size_t len,
		     uint32_t n, const rec_filter *f, rec_result *out)
{
	model_customer cust;
	state_events ev = { 0 };
	int rc = model_customer_get(t, id, len, &cust);
	if (rc && rc != STORE_NOTFOUND)
		return rc;
	bool known = rc == 0;
	if (st && (!f || f->personal) && (rc = state_events_get(st, id, len, &ev)) != 0)
		return rc;
	return rec_for_history(c, t, known ? &cust : NULL, &ev, n, f, out);
}

int rec_for_basket(rec_ctx *c, model_txn *t, const uint32_t *items, uint32_t n_items,
		   const char *customer, size_t customer_len, uint32_t n, const rec_filter *f,
		   rec_result *out)
{
	int rc;

	n = MIN(MAX(n, 1u), (uint32_t)REC_MAX_N);
	begin(c, model_txn_model(t), f, out);
	if (customer && (!f || f->personal)) {
		model_customer cust;
		rc = model_customer_get(t, customer, customer_len, &cust);
		if (rc == 0)
			ban_purchases(c, &cust, f);
		else if (rc != STORE_NOTFOUND)
			return rc;
	}
	/* The basket is what they have now: never recommend it back. */
	for (uint32_t i = 0; i < n_items; i++)
		if (items[i] < c->n_items)
			c->cand[items[i]].banned = c->gen;
	for (uint32_t i = 0; i < n_items && (!f || f->personal); i++) {
		if (items[i] >= c->n_items || c->cand[items[i]].ev_seen == c->gen)
			continue; /* a basket listing an item twice counts it once */
		c->cand[items[i]].ev_seen = c->gen;
		if ((rc = add_source(c, t, items[i], 1.0f)) != 0)
			return rc;
	}
	select_top(c, t, n, f, out);
	return 0;
}

void rec_popular(rec_ctx *c, const model *m, uint32_t n, const rec_filter *f, rec_result *out)
{
	n = MIN(MAX(n, 1u), (uint32_t)REC_MAX_N);
	begin(c, m, f, out);
	fill_popular(c, m, n, f, out);
}

int rec_similar(rec_ctx *c, model_txn *t, uint32_t idx, uint32_t n, const rec_filter *f,
		rec_result *out)
{
	model *m = model_txn_model(t);
	model_pairs nb;
	n = MIN(MAX(n, 1u), (uint32_t)REC_MAX_N);
	begin(c, m, f, out);
	out->source = REC_PERSONAL;
	int rc = model_neighbors(t, idx, &nb);
	if (rc)
		return rc;
	/* An item the interactions do not connect answers with its content
	 * neighbours even when the blend is off. */
	if (c->content_on || (c->ci && nb.n == 0))
		return rec_similar_blended(c, m, idx, &nb, n, f, out);
	for (uint32_t r = 0; r < nb.n && out->n < n; r++) {
		neighbor p = model_pair_at(nb.data, r);
		if (p.item >= c->n_items)
			return STORE_CORRUPT;
		if (c->cand[p.item].banned == c->gen || model_bit(c->bits.hidden, p.item) ||
		    !allowed(m, f, p.item))
			continue;
		rec_item *it = &out->items[out->n++];
		it->item = p.item;
		it->score = p.score;
		it->source = REC_PERSONAL;
		it->n_because = 0;
	}
	return 0;
}

/* ---- live item overrides -------------------------------------------------- */

/* Bumped after every change of a model's item bitmaps (release), read
 * before a live list is scored or used (acquire): a list scored under one
 * value saw every change before it. One counter for every model of the
 * process: overrides are rare, and a list scored on another model is in
 * another rec_ctx anyway. */
static _Atomic uint64_t overrides_gen;

uint64_t rec_overrides_gen(void)
{
	return atomic_load_explicit(&overrides_gen, memory_order_acquire);
}

int rec_apply_item_override(model *m, const char *id, size_t len, uint32_t flags)
{
	uint32_t idx;
	if (model_item_find(m, id, len, &idx) != 0)
		return STORE_NOTFOUND;
	model_item_override(m, idx, !(flags & STATE_ITEM_UNAVAILABLE),
			    !(flags & STATE_ITEM_NOT_RECOMMENDABLE));
	atomic_fetch_add_explicit(&overrides_gen, 1, memory_order_release);
	return 0;
}

static void apply_one(void *arg, const char *id, size_t len, uint32_t flags)
{
	rec_apply_item_override(arg, id, len, flags);
}

int rec_load_item_overrides(model *m, state *s)
{
	return state_items_each(s, apply_one, m);
}

/* ---- tuning ----------------------------------------------------------------- */

void rec_for_table(rec_ctx *c, const rec_table *t, const history_entry *hist, uint32_t n_hist,
		   uint32_t n, rec_result *out)
{
	rec_filter plain; /* what eval asks for: no filter, no because lists */
	rec_filter_init(&plain);
	plain.because = false;
	n = MIN(MAX(n, 1u), (uint32_t)REC_MAX_N);
	if (!c->no_bits)
		c->no_bits = xcalloc((size_t)c->n_items / 64 + 1, sizeof(*c->no_bits));
	c->ci = NULL;
	c->pop_model = NULL;
	c->pop_table = t->popularity;
	begin(c, NULL, &plain, out);
	c->content_on = c->content_weight > 0.0f && t->content && t->popularity;
	c->recent_rate = t->half_life_days > 0 ? log(2.0) / (t->half_life_days * 86400.0) : 0;
	c->as_of = t->as_of;
	const unsigned char *pop = (const unsigned char *)t->popular;
	for (uint32_t i = 0; i < n_hist; i++)
		if (hist[i].item < c->n_items && (hist[i].flags & (HIST_PURCHASED | HIST_RETURNED)))
			c->cand[hist[i].item].banned = c->gen;
	/* As rec_for_history scores a model customer without live events. */
	uint32_t used = 0;
	for (uint32_t i = 0; i < n_hist && used < REC_MAX_HISTORY; i++) {
		const history_entry *e = &hist[i];
		float sum = e->weight * e->weight;
		if (e->item >= t->n_items || !(sum > 0.0f))
			continue;
		const neighbor *list = t->lists + (size_t)e->item * t->stride;
		uint32_t np = t->n_pos[e->item], nn = t->n_neg ? t->n_neg[e->item] : 0;
		const neighbor *cl = t->content ? t->content + (size_t)e->item * t->content_stride : NULL;
		add_pairs(c, (const unsigned char *)list, np, (const unsigned char *)(list + np), nn,
			  (const unsigned char *)cl, cl ? t->n_content[e->item] : 0, e->item,
			  history_weight(c, sum, e->last_ts, false));
		used++;
	}
	if (c->n_sources == 0) {
		fill_popular_from(c, NULL, pop, t->n_items, n, &plain, out);
		return;
	}
	select_top_from(c, NULL, pop, t->n_items, n, &plain, out);
}
