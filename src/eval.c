/*
 * eval: ranking metrics. See eval.h for the definitions.
 */
#include "eval.h"

#include <math.h>

static bool contains(const uint32_t *sorted, uint32_t n, uint32_t v)
{
	uint32_t lo = 0, hi = n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (sorted[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && sorted[lo] == v;
}

void eval_add(eval_totals *t, const uint32_t *recs, uint32_t n_recs, const uint32_t *relevant,
	      uint32_t n_rel, uint32_t k)
{
	if (n_rel == 0 || k == 0)
		return;
	uint32_t upto = n_recs < k ? n_recs : k;
	uint32_t hits = 0;
	double dcg = 0, ap = 0;
	for (uint32_t i = 0; i < upto; i++) {
		if (!contains(relevant, n_rel, recs[i]))
			continue;
		hits++;
		dcg += 1.0 / log2((double)i + 2.0);
		ap += (double)hits / (double)(i + 1);
	}
	uint32_t ideal_n = n_rel < k ? n_rel : k;
	double idcg = 0;
	for (uint32_t i = 0; i < ideal_n; i++)
		idcg += 1.0 / log2((double)i + 2.0);

	t->precision += (double)hits / (double)k;
	t->recall += (double)hits / (double)n_rel;
	t->ndcg += dcg / idcg;
	t->ndcg_sq += (dcg / idcg) * (dcg / idcg);
	t->map += ap / (double)ideal_n;
	t->hit_rate += hits > 0;
	t->users++;
}

void eval_finish(eval_totals *t)
{
	if (t->users == 0) {
		t->precision = t->recall = t->ndcg = t->map = t->hit_rate = t->ndcg_sq = 0;
		return;
	}
	double n = (double)t->users;
	double var = n > 1 ? (t->ndcg_sq - t->ndcg * t->ndcg / n) / (n - 1) : 0;
	t->ndcg_sq = n > 1 && var > 0 ? sqrt(var / n) : 0;
	t->precision /= n;
	t->recall /= n;
	t->ndcg /= n;
	t->map /= n;
	t->hit_rate /= n;
}
