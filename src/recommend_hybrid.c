/*
 * recommend_hybrid: hybrid scoring's content half (content.h): each
 * source's content neighbours summed beside the collaborative scores, the
 * two blended per item by its content share, for a customer or a basket
 * (rec_select_blended) and for an item's similar items
 * (rec_similar_blended). Kept apart so the plain path's loops stay a load
 * and a compare; recommend_internal.h has the contracts.
 */
#include "recommend.h"

#include "recommend_internal.h"
#include "topk.h"
#include "util.h"

void rec_spread_content(rec_ctx *c)
{
	float *acc = c->acc, *acc_c = c->acc_c;
	uint32_t *touched = c->touched, n_touched = c->n_touched;
	for (uint32_t s = 0; s < c->n_sources; s++) {
		const struct source *src = &c->sources[s];
		for (uint32_t r = 0; r < src->cuse; r++) {
			neighbor p = model_pair_at(src->cpairs, r);
			if (acc[p.item] == 0.0f && acc_c[p.item] == 0.0f)
				touched[n_touched++] = p.item;
			acc_c[p.item] += p.score * src->weight;
		}
	}
	c->n_touched = n_touched;
}

/* beta_j, the content share of item j's score: b / (b + its customers),
 * 1 for an item nobody has bought (whatever b). */
static inline float content_share(const rec_ctx *c, uint32_t j)
{
	float pop = c->pop_model ? model_item_popularity(c->pop_model, j) : c->pop_table[j];
	if (!(pop > 0.0f))
		return 1.0f;
	return c->content_count / (c->content_count + pop);
}

/* The blended score of j (hybrid scoring) and whether content is the
 * larger part of it. */
static inline float blend(const rec_ctx *c, uint32_t j, float cf, float ct, bool *content)
{
	float beta = ct != 0.0f || cf != 0.0f ? content_share(c, j) : 0.0f;
	float a = (1.0f - beta) * cf, b = beta * c->content_weight * ct;
	*content = b > a;
	return a + b;
}

void rec_select_blended(rec_ctx *c, const model *m, uint32_t n, const rec_filter *f,
			rec_result *out, const unsigned char *pop, uint32_t total)
{
	bool rules = has_rules(f);
	topk heap;
	topk_init(&heap, c->heap, n);
	float threshold = topk_threshold(&heap);
	for (uint32_t k = 0; k < c->n_touched; k++) {
		uint32_t j = c->touched[k];
		bool content;
		float score = blend(c, j, c->acc[j], c->acc_c[j], &content);
		if (score < threshold || !(score > 0.0f) || c->cand[j].banned == c->gen ||
		    model_bit(c->bits.hidden, j) || (rules && !allowed(m, f, j)))
			continue;
		topk_push(&heap, j, score);
		threshold = topk_threshold(&heap);
	}
	uint32_t got = topk_sort(&heap), first = out->n;
	for (uint32_t k = 0; k < got; k++) {
		uint32_t j = c->heap[k].item;
		rec_item *it = &out->items[out->n++];
		bool content;
		it->item = j;
		it->score = blend(c, j, c->acc[j], c->acc_c[j], &content);
		it->source = content ? REC_CONTENT : REC_PERSONAL;
		it->n_because = 0;
		c->cand[j].banned = c->gen;
	}
	for (uint32_t k = 0; k < c->n_touched; k++) {
		c->acc[c->touched[k]] = 0.0f;
		c->acc_c[c->touched[k]] = 0.0f;
	}
	c->n_touched = 0;
	rec_finish_top(c, m, pop, total, n, f, out, first, got);
}

int rec_similar_blended(rec_ctx *c, const model *m, uint32_t idx, const model_pairs *nb,
			uint32_t n, const rec_filter *f, rec_result *out)
{
	const unsigned char *cp;
	uint32_t cn;
	content_item_neighbors(c->ci, idx, &cp, &cn);
	float beta_i = content_share(c, idx);
	float w = c->content_weight > 0.0f ? c->content_weight : 1.0f;
	uint32_t nt = 0;
	for (uint32_t r = 0; r < nb->n; r++) {
		neighbor p = model_pair_at(nb->data, r);
		if (c->acc[p.item] == 0.0f)
			c->touched[nt++] = p.item;
		c->acc[p.item] += p.score;
	}
	for (uint32_t r = 0; r < cn; r++) {
		neighbor p = model_pair_at(cp, r);
		if (c->acc[p.item] == 0.0f && c->acc_c[p.item] == 0.0f)
			c->touched[nt++] = p.item;
		c->acc_c[p.item] += p.score;
	}
	topk heap;
	topk_init(&heap, c->heap, n);
	for (uint32_t k = 0; k < nt; k++) {
		uint32_t j = c->touched[k];
		float beta = MAX(beta_i, content_share(c, j));
		float score = (1.0f - beta) * c->acc[j] + beta * w * c->acc_c[j];
		if (!(score > 0.0f) || j == idx || c->cand[j].banned == c->gen ||
		    model_bit(c->bits.hidden, j) || !allowed(m, f, j))
			continue;
		topk_push(&heap, j, score);
	}
	uint32_t got = topk_sort(&heap);
	for (uint32_t k = 0; k < got; k++) {
		uint32_t j = c->heap[k].item;
		float beta = MAX(beta_i, content_share(c, j));
		rec_item *it = &out->items[out->n++];
		it->item = j;
		it->score = c->heap[k].score;
		it->source = beta * w * c->acc_c[j] > (1.0f - beta) * c->acc[j]
				     ? REC_CONTENT : REC_PERSONAL;
		it->n_because = 0;
	}
	for (uint32_t k = 0; k < nt; k++)
		c->acc[c->touched[k]] = c->acc_c[c->touched[k]] = 0.0f;
	return 0;
}
