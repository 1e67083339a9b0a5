/*
 * recommend: item-based scoring with per-thread, generation-stamped scratch.
 */
#include "recommend.h"

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
	uint32_t *hist_order; /* REC_MAX_HISTORY entries chosen for scoring */
	neighbor heap[REC_MAX_N];
};

const char *rec_source_name(enum rec_source s)
{
	return s == REC_POPULAR ? "popular" : "personal";
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
	c->hist_order = xcalloc(REC_MAX_HISTORY, sizeof(*c->hist_order));
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
	free(c->hist_order);
	free(c);
}

uint32_t rec_ctx_items(const rec_ctx *c)
{
	return c->n_items;
}

/* Starts a request: a fresh generation makes every stamp stale at once. */
static void next_generation(rec_ctx *c)
{
	if (++c->gen == 0) { /* wrapped after 4 billion requests */
		memset(c->seen, 0, (size_t)c->n_items * sizeof(*c->seen));
		memset(c->banned, 0, (size_t)c->n_items * sizeof(*c->banned));
		c->gen = 1;
	}
	c->n_touched = 0;
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

/* Tops `out` up to n items from the popularity list, skipping banned items
 * and items already in out. */
static void fill_popular(rec_ctx *c, const model *m, uint32_t n, rec_result *out)
{
	const unsigned char *pop = model_popular(m);
	uint32_t total = model_get_info(m)->n_items;
	for (uint32_t r = 0; r < total && out->n < n; r++) {
		neighbor p = model_pair_at(pop, r);
		if (c->banned[p.item] == c->gen)
			continue;
		c->banned[p.item] = c->gen; /* no duplicates */
		rec_item *it = &out->items[out->n++];
		it->item = p.item;
		it->score = p.score;
		it->source = REC_POPULAR;
		it->n_because = 0;
	}
}

/* Chooses which history entries to score: the first REC_MAX_HISTORY with
 * a positive weight. Histories are stored most recent first, so these are
 * the most recent. Returns how many, indexes in hist_order. */
static uint32_t choose_history(rec_ctx *c, const model_customer *cust)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < cust->n_hist && n < REC_MAX_HISTORY; i++)
		if (model_history_at(cust, i).weight > 0.0f)
			c->hist_order[n++] = i;
	return n;
}

int rec_for_customer(rec_ctx *c, model_txn *t, const char *id, size_t len, uint32_t n,
		     rec_result *out)
{
	model *m = model_txn_model(t);
	model_customer cust;
	uint32_t n_items = c->n_items;

	n = MIN(MAX(n, 1u), (uint32_t)REC_MAX_N);
	next_generation(c);
	out->n = 0;
	out->source = REC_POPULAR;

	int rc = model_customer_get(t, id, len, &cust);
	if (rc == STORE_NOTFOUND) {
		fill_popular(c, m, n, out);
		return 0;
	}
	if (rc)
		return rc;

	for (uint32_t i = 0; i < cust.n_hist; i++) {
		history_entry e = model_history_at(&cust, i);
		if (e.item < n_items && (e.flags & HIST_PURCHASED))
			c->banned[e.item] = c->gen;
	}

	uint32_t used = choose_history(c, &cust);
	for (uint32_t k = 0; k < used; k++) {
		history_entry e = model_history_at(&cust, c->hist_order[k]);
		if (e.item >= n_items)
			return STORE_CORRUPT;
		model_pairs nb;
		if ((rc = model_neighbors(t, e.item, &nb)) != 0)
			return rc;
		for (uint32_t r = 0; r < nb.n; r++) {
			neighbor p = model_pair_at(nb.data, r);
			if (p.item >= n_items)
				return STORE_CORRUPT;
			credit(c, p.item, e.item, p.score * e.weight);
		}
	}

	topk heap;
	topk_init(&heap, c->heap, n);
	for (uint32_t k = 0; k < c->n_touched; k++) {
		uint32_t j = c->touched[k];
		if (c->banned[j] != c->gen)
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
	fill_popular(c, m, n, out);
	return 0;
}

int rec_similar(rec_ctx *c, model_txn *t, uint32_t idx, uint32_t n, rec_result *out)
{
	model_pairs nb;
	(void)c;
	n = MIN(MAX(n, 1u), (uint32_t)REC_MAX_N);
	out->n = 0;
	out->source = REC_PERSONAL;
	int rc = model_neighbors(t, idx, &nb);
	if (rc)
		return rc;
	for (uint32_t r = 0; r < nb.n && out->n < n; r++) {
		neighbor p = model_pair_at(nb.data, r);
		if (p.item >= c->n_items)
			return STORE_CORRUPT;
		rec_item *it = &out->items[out->n++];
		it->item = p.item;
		it->score = p.score;
		it->source = REC_PERSONAL;
		it->n_because = 0;
	}
	return 0;
}
