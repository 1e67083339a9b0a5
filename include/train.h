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
 *            by a blocked Cholesky inverse on all threads (symmat.h)
 * Only positive similarities are kept; each item keeps its K best, ties
 * broken by item index so training is deterministic. EASE may also keep
 * each item's strongest negative weights (train_options.negatives): they
 * say which items do not go together, and the scoring subtracts them.
 *
 * X holds, per customer and item, the weight of the strongest event type
 * seen (a purchase counts only if not returned in full); the customer's
 * scoring weights (history_entry.weight) add every event up, each decayed
 * by its age at as_of with the given half-life, so repeat and recent
 * behaviour count more when recommending while similarities stay a stable
 * picture of the catalog.
 *
 * G comes from one of two paths: dense (cblas_ssyrk over blocks of X, memory
 * items^2) or sparse (per item, accumulate the rows of the customers who
 * have it, memory O(items * K) plus one accumulator per thread). `auto`
 * picks the cheaper by an estimate of both costs; EASE always needs the
 * dense matrix and is restricted to the most popular items above
 * ease_max_items.
 */
#ifndef SHOPKEEPER_TRAIN_H
#define SHOPKEEPER_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "content.h"
#include "ingest.h"
#include "model_format.h" /* neighbor, history_entry */
#include "strbuf.h"

enum algo { ALGO_COSINE = 0, ALGO_JACCARD, ALGO_LIFT, ALGO_EASE, ALGO_COUNT };

/* "cosine", ... */
const char *algo_name(enum algo a);
/* Returns the algorithm named s, or -1. */
int algo_parse(const char *s);

enum train_path { PATH_AUTO = 0, PATH_DENSE, PATH_SPARSE };
const char *train_path_name(enum train_path p);

/* Options; a zero field means its default, so `train_options o = { 0 }`
 * trains with every default. */
typedef struct train_options {
	enum algo algo;        /* default cosine */
	uint32_t neighbors;    /* K, default 100 */
	float lambda;          /* EASE regularisation, default 200 */
	/* Strength of each event type, indexed by enum event_type; all zero
	 * means the defaults (view 0.2, cart 0.5, purchase 1). */
	float event_weight[EVENT_TYPES];
	double half_life_days; /* recency decay of history weights; 0: none */
	int64_t as_of;         /* reference time of the decay (Unix seconds) */
	enum train_path path;  /* how G is computed; auto picks by cost */
	uint64_t max_dense_bytes; /* largest item x item matrix (default 12 GiB) */
	uint32_t ease_max_items;  /* EASE uses this many most popular items
				   * at most (default 20000) */
	uint32_t threads;      /* default: number of cores (ssyrk's too, and
				* EASE's inverse, whose result does not
				* depend on it) */
	const char *event_log_position; /* "MS-SEQ": the last entry of the
					 * shared event log the data covers,
					 * kept in the meta record; NULL: none */
	uint32_t negatives;    /* EASE: negative weights kept per item, the
				* strongest, after the K positive ones
				* (default 0: none) */
	bool content;          /* also compute content neighbours from the
				* catalog (content.h), when it has titles,
				* categories or prices */
	content_options content_opt;
} train_options;

#define TRAIN_DEFAULT_NEIGHBORS 100u
#define TRAIN_DEFAULT_LAMBDA 200.0f
#define TRAIN_DEFAULT_MAX_DENSE_BYTES (12ull << 30)
#define TRAIN_DEFAULT_EASE_MAX_ITEMS 20000u
#define TRAIN_DEFAULT_WEIGHT_VIEW 0.2f
#define TRAIN_DEFAULT_WEIGHT_CART 0.5f
#define TRAIN_DEFAULT_WEIGHT_PURCHASE 1.0f

typedef struct train_result {
	uint32_t n_customers, n_items;
	uint64_t nnz; /* non-zeros of X */

	/* Histories, CSR by customer index: entries hist[hist_off[c]..hist_off[c+1]). */
	uint64_t *hist_off;
	history_entry *hist;

	float *popularity; /* per item: customers with a positive interaction */
	float *recent;     /* per item: sum of its X column (decayed), for the
			    * recent-popularity list */

	uint32_t k;         /* neighbours per item at most (k_neg of them negative) */
	uint32_t k_neg;
	/* item i's list: nbrs[i*k .. i*k + n_nbrs[i]): the positive ones best
	 * first, then the last n_neg[i] negative ones, strongest first (n_neg
	 * NULL: none) */
	neighbor *nbrs;
	uint32_t *n_nbrs;
	uint32_t *n_neg;

	enum train_path path;  /* the path that ran */
	bool gram_sparse;      /* dense path: G added up from sparse rows, not ssyrk */
	uint32_t ease_items;   /* items EASE covered (all unless restricted) */
	double secs_matrix, secs_gram, secs_similarity;
	/* With train_options.content and a catalog: every item's content
	 * neighbours and the vocabulary (has_content false: none). */
	bool has_content;
	content_result content;
} train_result;

/* Trains on ds. Returns 0, or -1 with a message in *err (nothing to train on,
 * catalog too large for the dense path, LAPACK failure). On success the
 * caller frees *out with train_result_free(). */
int train_run(const dataset *ds, const train_options *opt, train_result *out, strbuf *err);

/* train_run for EASE at several lambdas on one Gram matrix (the histories
 * and G are built once, G kept beside its inverse: twice the memory of one
 * fit): *r as train_run makes it for lambdas[0], and more[l - 1], for
 * l = 1 .. n_lambda - 1, only the neighbour lists at lambdas[l] (k, k_neg,
 * nbrs, n_nbrs, n_neg, the counts and the timings; no histories). Returns
 * 0, or -1 with a message in *err (as train_run; n_lambda > 1 with another
 * algorithm). The caller frees *r and more[0 .. n_lambda-1) with
 * train_result_free(), also on failure. */
int train_run_lambdas(const dataset *ds, const train_options *opt, const float *lambdas,
		      uint32_t n_lambda, train_result *r, train_result *more, strbuf *err);

void train_result_free(train_result *r);

#endif
