/*
 * tune_internal: what tune.c and tune_split.c share, and nothing else
 * includes.
 */
#ifndef SHOPKEEPER_TUNE_INTERNAL_H
#define SHOPKEEPER_TUNE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ingest.h"

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

#endif
