/*
 * recommend: item-based scoring with per-thread, generation-stamped scratch.
 */
#include "recommend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "topk.h"
#include "util.h"

struct rec_ctx {
	uint32_t n_items;
	uint32_t gen;       /* current request's generation */
	uint32_t *seen;     /* seen[j] == gen: score[j] valid this request */
	uint32_t *banned;   /* banned[j] == gen: never recommend j now */
	float *score;
	/* Per candidate, its strongest contributors (history item, amount). */
	uint32_t (*because)[REC_MAX_BECAUSE];
	float (*because_w)[REC_MAX_BECAUSE];
	uint8_t *n_because;
	uint32_t *touched;  /* candidates touched this request */
	uint32_t n_touched;
	/* Live events folded per item: affinity added since as_of. */
	uint32_t *ev_seen;  /* ev_seen[j] == gen: ev_aff[j] valid */
	float *ev_aff;
	uint32_t ev_items[REC_MAX_EVENTS]; /* distinct items with events */
	uint32_t n_ev_items;
	neighbor heap[REC_MAX_N];
};

const char *rec_source_name(enum rec_source s)
{
	return s == REC_POPULAR ? "popular" : "personal";
}

void rec_filter_init(rec_filter *f)
{
	memset(f, 0, sizeof(*f));
	f->category = UINT32_MAX;
	f->min_price = -1.0f;
	f->max_price = -1.0f;
	f->personal = true;
}

rec_ctx *rec_ctx_create(uint32_t n_items)
{
	rec_ctx *c = xcalloc(1, sizeof(*c));
	size_t n = n_items ? n_items : 1;
	c->n_items = n_items;
	c->seen = xcalloc(n, sizeof(*c->seen));
	c->banned = xcalloc(n, sizeof(*c->banned));
	c->score = xcalloc(n, sizeof(*c->score));
	c->because = xcalloc(n, sizeof(*c->because));
	c->because_w = xcalloc(n, sizeof(*c->because_w));
	c->n_because = xcalloc(n, sizeof(*c->n_because));
	c->touched = xcalloc(n, sizeof(*c->touched));
	c->ev_seen = xcalloc(n, sizeof(*c->ev_seen));
	c->ev_aff = xcalloc(n, sizeof(*c->ev_aff));
	return c;
}

void rec_ctx_free(rec_ctx *c)
{
	if (!c)
		return;
	free(c->seen);
	free(c->banned);
	free(c->score);
	free(c->because);
	free(c->because_w);
	free(c->n_because);
	free(c->touched);
	free(c->ev_seen);
	free(c->ev_aff);
	free(c);
}

uint32_t rec_ctx_items(const rec_ctx *c)
{
	return c->n_items;
}

/* Starts a request: a fresh generation makes every stamp stale at once;
 * the filter's exclusions are banned up front. */
static void begin(rec_ctx *c, const rec_filter *f, rec_result *out)
{
	if (++c->gen == 0) { /* wrapped after 4 billion requests */
		memset(c->seen, 0, (size_t)c->n_items * sizeof(*c->seen));
		memset(c->banned, 0, (size_t)c->n_items * sizeof(*c->banned));
		memset(c->ev_seen, 0, (size_t)c->n_items * sizeof(*c->ev_seen));
		c->gen = 1;
	}
	c->n_touched = 0;
	c->n_ev_items = 0;
	out->n = 0;
	out->source = REC_POPULAR;
	for (uint32_t i = 0; f && i < f->n_exclude; i++)
		if (f->exclude[i] < c->n_items)
			c->banned[f->exclude[i]] = c->gen;
}

/* Whether the filter's category and price rules let item j through. */
static bool allowed(const model *m, const rec_filter *f, uint32_t j)
{
	if (!f)
		return true;
	if (f->category != UINT32_MAX && model_item_category(m, j) != f->category)
		return false;
	if (f->min_price >= 0 || f->max_price >= 0) {
		float p = model_item_price(m, j);
		if (p < 0 || (f->min_price >= 0 && p < f->min_price) ||
		    (f->max_price >= 0 && p > f->max_price))
			return false;
	}
	return true;
}

/* Adds w to candidate j's score, crediting history item `from`. */
static inline void credit(rec_ctx *c, uint32_t j, uint32_t from, float w)
{
	if (c->seen[j] != c->gen) {
		c->seen[j] = c->gen;
		c->score[j] = 0.0f;
		c->n_because[j] = 0;
		c->touched[c->n_touched++] = j;
	}
	c->score[j] += w;

	/* Keep the REC_MAX_BECAUSE largest contributions, largest first. */
	uint8_t nb = c->n_because[j];
	uint32_t *bi = c->because[j];
	float *bw = c->because_w[j];
	int pos = nb;
	if (nb == REC_MAX_BECAUSE) {
		if (w <= bw[REC_MAX_BECAUSE - 1])
			return;
		pos = REC_MAX_BECAUSE - 1;
	} else {
		c->n_because[j] = nb + 1;
	}
	while (pos > 0 && bw[pos - 1] < w) {
		bw[pos] = bw[pos - 1];
		bi[pos] = bi[pos - 1];
		pos--;
	}
	bw[pos] = w;
	bi[pos] = from;
}

/* Adds item `from`'s neighbours, times weight, to the scores. */
static int spread(rec_ctx *c, model_txn *t, uint32_t from, float weight)
{
	model_pairs nb;
	int rc = model_neighbors(t, from, &nb);
	if (rc)
		return rc;
	for (uint32_t r = 0; r < nb.n; r++) {
		neighbor p = model_pair_at(nb.data, r);
		if (p.item >= c->n_items)
			return STORE_CORRUPT;
		credit(c, p.item, from, p.score * weight);
	}
	return 0;
}

/* Tops `out` up to n items from the popularity list, skipping banned items,
 * items the filter rejects and items already in out. */
static void fill_popular(rec_ctx *c, const model *m, uint32_t n, const rec_filter *f,
			 rec_result *out)
{
	const unsigned char *pop = model_popular(m);
	uint32_t total = MIN(model_get_info(m)->n_items, c->n_items);
	bool topping_up = out->n > 0;
	for (uint32_t r = 0; r < total && out->n < n; r++) {
		neighbor p = model_pair_at(pop, r);
		if (c->banned[p.item] == c->gen || !allowed(m, f, p.item))
			continue;
		c->banned[p.item] = c->gen; /* no duplicates */
		rec_item *it = &out->items[out->n++];
		it->item = p.item;
		/* Popularity is another scale than similarity sums: below a
		 * personal list, top-ups score 0 so scores never rise. */
		it->score = topping_up ? 0.0f : p.score;
		it->source = REC_POPULAR;
		it->n_because = 0;
	}
}

/* The best n scored candidates that pass, then popular items to fill. */
static void select_top(rec_ctx *c, const model *m, uint32_t n, const rec_filter *f,
		       rec_result *out)
{
	topk heap;
	topk_init(&heap, c->heap, n);
	for (uint32_t k = 0; k < c->n_touched; k++) {
		uint32_t j = c->touched[k];
		if (c->banned[j] != c->gen && allowed(m, f, j))
			topk_push(&heap, j, c->score[j]);
	}
	uint32_t got = topk_sort(&heap);
	for (uint32_t k = 0; k < got; k++) {
		uint32_t j = c->heap[k].item;
		rec_item *it = &out->items[out->n++];
		it->item = j;
		it->score = c->heap[k].score;
		it->source = REC_PERSONAL;
		it->n_because = c->n_because[j];
		memcpy(it->because, c->because[j], sizeof(it->because));
		c->banned[j] = c->gen;
	}
	if (got > 0)
		out->source = REC_PERSONAL;
	fill_popular(c, m, n, f, out);
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
			c->banned[e.item] = c->gen;
	}
}

/* 2^(-age / half-life) as exp(-rate * age); events "from the future"
 * (clock skew) count fully. */
static float decay(double rate, int64_t age)
{
	return rate > 0 && age > 0 ? (float)exp(-rate * (double)age) : 1.0f;
}

/* Folds the customer's events since the model's as-of time into ev_aff,
 * banning what they bought. Returns how many events counted (>= 0) or a
 * STORE_* error. */
static int fold_events(rec_ctx *c, model_txn *t, state_txn *st, const char *id, size_t len,
		       const rec_filter *f, double rate, int64_t now)
{
	const model_info *info = model_get_info(model_txn_model(t));
	state_events ev;
	event_view e;
	size_t pos = 0;
	int rc = state_events_get(st, id, len, &ev);
	if (rc || ev.count == 0)
		return rc;
	/* Only the most recent REC_MAX_EVENTS: skip the older ones. */
	for (uint32_t skip = ev.count > REC_MAX_EVENTS ? ev.count - REC_MAX_EVENTS : 0; skip; skip--)
		if ((rc = state_events_next(&ev, &pos, &e)) != 0)
			return rc;
	int counted = 0;
	while ((rc = state_events_next(&ev, &pos, &e)) == 0) {
		uint32_t j;
		/* Events up to as_of are already in the model's history. */
		if (e.ts <= info->as_of || model_item_lookup(t, e.item, e.item_len, &j) != 0)
			continue;
		if (c->ev_seen[j] != c->gen) {
			if (c->n_ev_items == REC_MAX_EVENTS)
				continue;
			c->ev_seen[j] = c->gen;
			c->ev_aff[j] = 0.0f;
			c->ev_items[c->n_ev_items++] = j;
		}
		float d = decay(rate, now - e.ts);
		switch (e.type) {
		case EVENT_VIEW:
		case EVENT_CART:
			c->ev_aff[j] += info->event_weight[e.type] * d;
			break;
		case EVENT_PURCHASE:
			if (e.quantity > 0) {
				c->ev_aff[j] += info->event_weight[EVENT_PURCHASE] * d;
				if (!f || !f->include_purchased)
					c->banned[j] = c->gen;
			}
			break;
		case EVENT_REMOVE_FROM_CART:
			c->ev_aff[j] -= info->event_weight[EVENT_CART] * d;
			break;
		}
		counted++;
	}
	return rc == STORE_NOTFOUND ? counted : rc;
}

int rec_for_customer(rec_ctx *c, model_txn *t, state_txn *st, const char *id, size_t len,
		     uint32_t n, const rec_filter *f, rec_result *out)
{
	model *m = model_txn_model(t);
	const model_info *info = model_get_info(m);
	model_customer cust;
	int events = 0;

	n = MIN(MAX(n, 1u), (uint32_t)REC_MAX_N);
	begin(c, f, out);
	if (f && !f->personal) {
		fill_popular(c, m, n, f, out);
		return 0;
	}
	int rc = model_customer_get(t, id, len, &cust);
	if (rc && rc != STORE_NOTFOUND)
		return rc;
	bool known = rc == 0;
	int64_t now = model_now(m);
	double rate = info->half_life_days > 0 ? log(2.0) / (info->half_life_days * 86400.0) : 0;
	if (st && (events = fold_events(c, t, st, id, len, f, rate, now)) < 0)
		return events;
	if (!known && events == 0) {
		fill_popular(c, m, n, f, out);
		return 0;
	}

	if (known) {
		ban_purchases(c, &cust, f);
		/* History weights are sqrt(sum of decayed event weights) at as_of;
		 * decayed on to now and merged with the live events' sums. */
		float age = decay(rate, now - info->as_of);
		uint32_t used = 0;
		for (uint32_t i = 0; i < cust.n_hist && used < REC_MAX_HISTORY; i++) {
			history_entry e = model_history_at(&cust, i);
			if (e.item >= c->n_items)
				return STORE_CORRUPT;
			float sum = e.weight * e.weight * age;
			if (c->ev_seen[e.item] == c->gen) {
				sum += c->ev_aff[e.item];
				c->ev_aff[e.item] = 0.0f; /* folded in here */
			}
			if (sum <= 0.0f)
				continue;
			if ((rc = spread(c, t, e.item, sqrtf(sum))) != 0)
				return rc;
			used++;
		}
	}
	for (uint32_t k = 0; k < c->n_ev_items; k++) {
		uint32_t j = c->ev_items[k];
		if (c->ev_aff[j] > 0.0f && (rc = spread(c, t, j, sqrtf(c->ev_aff[j]))) != 0)
			return rc;
	}
	select_top(c, m, n, f, out);
	return 0;
}

int rec_for_basket(rec_ctx *c, model_txn *t, const uint32_t *items, uint32_t n_items,
		   const char *customer, size_t customer_len, uint32_t n, const rec_filter *f,
		   rec_result *out)
{
	model *m = model_txn_model(t);
	int rc;

	n = MIN(MAX(n, 1u), (uint32_t)REC_MAX_N);
	begin(c, f, out);
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
			c->banned[items[i]] = c->gen;
	for (uint32_t i = 0; i < n_items && (!f || f->personal); i++) {
		if (items[i] >= c->n_items)
			continue;
		if ((rc = spread(c, t, items[i], 1.0f)) != 0)
			return rc;
	}
	select_top(c, m, n, f, out);
	return 0;
}

void rec_popular(rec_ctx *c, const model *m, uint32_t n, const rec_filter *f, rec_result *out)
{
	n = MIN(MAX(n, 1u), (uint32_t)REC_MAX_N);
	begin(c, f, out);
	fill_popular(c, m, n, f, out);
}

int rec_similar(rec_ctx *c, model_txn *t, uint32_t idx, uint32_t n, const rec_filter *f,
		rec_result *out)
{
	model *m = model_txn_model(t);
	model_pairs nb;
	n = MIN(MAX(n, 1u), (uint32_t)REC_MAX_N);
	begin(c, f, out);
	out->source = REC_PERSONAL;
	int rc = model_neighbors(t, idx, &nb);
	if (rc)
		return rc;
	for (uint32_t r = 0; r < nb.n && out->n < n; r++) {
		neighbor p = model_pair_at(nb.data, r);
		if (p.item >= c->n_items)
			return STORE_CORRUPT;
		if (c->banned[p.item] == c->gen || !allowed(m, f, p.item))
			continue;
		rec_item *it = &out->items[out->n++];
		it->item = p.item;
		it->score = p.score;
		it->source = REC_PERSONAL;
		it->n_because = 0;
	}
	return 0;
}
