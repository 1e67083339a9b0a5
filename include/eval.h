/*
 * eval: top-k ranking metrics, as `shopkeeper eval` reports them.
 *
 * Binary relevance. For one customer with recommendations r_1..r_k (k the
 * cut-off; fewer if fewer were given) and relevant set R:
 *   precision = hits / k
 *   recall    = hits / |R|
 *   nDCG      = sum over hits at rank i of 1/log2(i+1), divided by the same
 *               sum for ranks 1..min(k, |R|)
 *   AP        = (sum over hits at rank i of hits-up-to-i / i) / min(k, |R|)
 *   hit       = 1 if hits > 0
 * Each is averaged over customers with a non-empty R.
 */
#ifndef SHOPKEEPER_EVAL_H
#define SHOPKEEPER_EVAL_H

#include <stdbool.h>
#include <stdint.h>

typedef struct eval_totals {
	double precision, recall, ndcg, map, hit_rate; /* sums, then means */
	double ndcg_sq; /* sum of squared per-customer nDCG, then its standard
			 * error: the spread of the mean over customers */
	uint64_t users;
} eval_totals;


/* Adds one customer: recs[0..n_recs) best first, relevant[0..n_rel) sorted
 * ascending without duplicates, cut-off k >= 1. A customer with n_rel == 0
 * is not counted. */
void eval_add(eval_totals *t, const uint32_t *recs, uint32_t n_recs, const uint32_t *relevant,
	      uint32_t n_rel, uint32_t k);

/* Turns the sums into means (all zero when no customer was counted), and
 * ndcg_sq into the standard error of the nDCG mean (0 under 2 customers). */
void eval_finish(eval_totals *t);

#endif
