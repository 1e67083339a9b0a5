/*
 * tune_internal: what tune.c, tune_split.c and tune_score.c share, and
 * nothing else includes.
 */
#ifndef SHOPKEEPER_TUNE_INTERNAL_H
#define SHOPKEEPER_TUNE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "content.h"
#include "ingest.h"
#include "recommend.h"
#include "train.h"
#include "tune.h"

#define TUNE_K 10 /* nDCG@10, as the issue and eval's default */

struct pair {
	uint32_t customer, item;
	float qty; /* net purchased units (train side) */
};

/* The validation split: the training part as a dataset sharing ds's id
 * maps (rows owned), and the customers to score with their relevant items:
 * rel[rel_off[u] .. rel_off[u+1]) for customer cust[u], ascending. */
struct split {
	dataset sub;
	uint32_t *cust;
	uint64_t *rel_off;
	uint32_t *rel;
	uint32_t n;
};

/* qsort comparators: struct pair by (customer, item); int64_t ascending. */
int tune_by_pair(const void *a, const void *b);
int tune_by_i64(const void *a, const void *b);
/* Frees what a split owns and zeroes it. */
void tune_split_free(struct split *s);
/* By time: the purchases on the last `share` of the n_days distinct days
 * (ascending, in days since 1970) are validation, the rows before them
 * training; *cut is the first held-out day's start (Unix seconds). Fills
 * s (free with tune_split_free) and returns the customers to score. */
uint32_t tune_split_by_time(const dataset *ds, const int64_t *days, size_t n_days, double share,
			    struct split *s, int64_t *cut);
/* Without time: a fifth of the purchased items of each customer with
 * three or more, chosen by a seeded hash. Fills s and returns the
 * customers to score. */
uint32_t tune_split_random(const dataset *ds, struct split *s);
/* Keeps `max` of s's customers (all when it has no more), chosen by a
 * seeded hash of the customer's index, so the same data gives the same
 * sample; their order and relevant items stay. Returns s->n. */
uint32_t tune_split_sample(struct split *s, uint32_t max);

/* A candidate's fitted model and the tables scoring reads from it. */
struct fitted {
	train_result r;
	uint32_t *n_pos;   /* positives per list */
	neighbor *popular; /* the model's popular list */
	double secs;       /* training, this fit's share */
	int hist_fit;      /* in its step, the fit holding its histories */
	bool live;
};

/* Frees what f owns and zeroes it; a no-op on a fit never finished. */
void tune_fitted_free(struct fitted *f);
/* Derives f's scoring tables (positives per list, the popular list); `hist`
 * (may be &f->r) gives the popularity when f holds only neighbour lists. */
void tune_fitted_finish(struct fitted *f, const train_result *hist);
/* Scores fit f (histories from `hist`) with knobs into c's figures and
 * ndcg[] (per validation customer). Sums run in customer order, so the
 * figures do not depend on the threads. s, f, hist, ct (may be NULL) and
 * knobs are borrowed; ndcg has s->n slots, filled. */
void tune_score(const struct split *s, const struct fitted *f, const train_result *hist,
		const content_result *ct, const rec_params *knobs, uint32_t threads,
		double *ndcg, tune_candidate *c);

#endif
