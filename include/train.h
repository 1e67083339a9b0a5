/*
 * train: from a dataset to what the model stores: each customer's history,
 * item popularity, and each item's top-K neighbours under an item-item
 * similarity.
 *
 * Similarities come from the item x item Gram matrix G = X'X of the customer
 * x item interaction matrix X, computed with BLAS (ssyrk) on dense blocks of
 * customers:
 *   cosine   G_ij / sqrt(G_ii G_jj)
 *   jaccard  G_ij / (G_ii + G_jj - G_ij)
 *   lift     G_ij / (G_ii G_jj)                       (as in Microsoft SAR)
 *   ease     B = I - P diagMat(1/diag(P)), P = (G + lambda I)^-1 (Steck 2019),
 *            by Cholesky (LAPACK spotrf/spotri)
 * Only positive similarities are kept; each item keeps its K best, ties
 * broken by item index so training is deterministic.
 */
#ifndef SHOPKEEPER_TRAIN_H
#define SHOPKEEPER_TRAIN_H

#include <stdint.h>

#include "ingest.h"
#include "strbuf.h"

enum algo { ALGO_COSINE = 0, ALGO_JACCARD, ALGO_LIFT, ALGO_EASE, ALGO_COUNT };

/* "cosine", ... */
const char *algo_name(enum algo a);
/* Returns the algorithm named s, or -1. */
int algo_parse(const char *s);

typedef struct train_options {
	enum algo algo;
	uint32_t neighbors;    /* K, default 100 */
	float lambda;          /* EASE regularisation, > 0 */
	uint64_t max_dense_bytes; /* refuse item x item matrices larger than this */
} train_options;

#define TRAIN_DEFAULT_NEIGHBORS 100u
#define TRAIN_DEFAULT_LAMBDA 200.0f
#define TRAIN_DEFAULT_MAX_DENSE_BYTES (12ull << 30)

/* History entry flags. */
#define HIST_PURCHASED 1u /* bought, net of returns, at least one unit */
#define HIST_RETURNED 2u  /* some units came back */

typedef struct neighbor {
	uint32_t item;
	float score;
} neighbor;

typedef struct history_entry {
	uint32_t item;
	uint32_t flags;   /* HIST_* */
	float weight;     /* strength of the interaction in X (0 if not in X) */
	float quantity;   /* net units bought (returns subtracted) */
	int64_t last_ts;  /* latest interaction with this item */
} history_entry;

typedef struct train_result {
	uint32_t n_customers, n_items;
	uint64_t nnz; /* non-zeros of X */

	/* Histories, CSR by customer index: entries hist[hist_off[c]..hist_off[c+1]). */
	uint64_t *hist_off;
	history_entry *hist;

	float *popularity; /* per item: customers with a positive interaction */

	uint32_t k;         /* neighbours per item at most */
	neighbor *nbrs;     /* item i's list: nbrs[i*k .. i*k + n_nbrs[i]), best first */
	uint32_t *n_nbrs;

	double secs_matrix, secs_gram, secs_similarity;
} train_result;

/* Trains on ds. Returns 0, or -1 with a message in *err (nothing to train on,
 * catalog too large for the dense path, LAPACK failure). On success the
 * caller frees *out with train_result_free(). */
int train_run(const dataset *ds, const train_options *opt, train_result *out, strbuf *err);

void train_result_free(train_result *r);

#endif
