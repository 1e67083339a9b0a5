/*
 * train: histories, popularity and item-item neighbours.
 *
 * Phases: (1) group rows by customer and fold repeats of the same item into
 * one history entry; (2) G = X'X with cblas_ssyrk over blocks of customers,
 * so X is never materialised whole; (3) turn G into similarities (or, for
 * EASE, invert G + lambda I with Cholesky) and keep each item's top K, rows
 * split between threads.
 */
#include "train.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "topk.h"
#include "util.h"

/* LAPACK from OpenBLAS; Debian ships no LAPACKE, so the Fortran symbols are
 * declared here, with gfortran's hidden length argument for CHARACTER args. */
extern void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info,
		    size_t uplo_len);
extern void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info,
		    size_t uplo_len);

static const char *const algo_names[ALGO_COUNT] = { "cosine", "jaccard", "lift", "ease" };

const char *algo_name(enum algo a)
{
	return (unsigned)a < ALGO_COUNT ? algo_names[a] : "unknown";
}

int algo_parse(const char *s)
{
	for (int a = 0; a < ALGO_COUNT; a++)
		if (strcmp(s, algo_names[a]) == 0)
			return a;
	return -1;
}

void train_result_free(train_result *r)
{
	if (!r)
		return;
	free(r->hist_off);
	free(r->hist);
	free(r->popularity);
	free(r->nbrs);
	free(r->n_nbrs);
	memset(r, 0, sizeof(*r));
}

/* ---- phase 1: histories ------------------------------------------------ */

/* Most recent first, then by item index: the order histories are stored in,
 * so a reader that wants the latest N takes the first N. */
static int recent_first(const void *a, const void *b)
{
	const history_entry *x = a, *y = b;
	if (x->last_ts != y->last_ts)
		return x->last_ts > y->last_ts ? -1 : 1;
	return x->item < y->item ? -1 : x->item > y->item;
}

static void build_histories(const dataset *ds, train_result *r)
{
	uint32_t nc = r->n_customers, ni = r->n_items;
	uint64_t *start = xcalloc((size_t)nc + 1, sizeof(*start));
	uint64_t *order = xmallocarray(ds->n_rows ? ds->n_rows : 1, sizeof(*order));

	/* Counting sort of row numbers by customer, stable in file order. */
	for (size_t i = 0; i < ds->n_rows; i++)
		start[ds->rows[i].customer + 1]++;
	for (uint32_t c = 0; c < nc; c++)
		start[c + 1] += start[c];
	uint64_t *fill = xmallocarray((size_t)nc + 1, sizeof(*fill));
	memcpy(fill, start, ((size_t)nc + 1) * sizeof(*fill));
	for (size_t i = 0; i < ds->n_rows; i++)
		order[fill[ds->rows[i].customer]++] = i;
	free(fill);

	/* slot[item] = position of item in the current customer's history,
	 * valid when owner[item] == customer. */
	uint64_t *slot = xmallocarray(ni ? ni : 1, sizeof(*slot));
	uint32_t *owner = xmallocarray(ni ? ni : 1, sizeof(*owner));
	memset(owner, 0xff, (size_t)(ni ? ni : 1) * sizeof(*owner));
	uint8_t *engaged = xcalloc(ds->n_rows ? ds->n_rows : 1, 1); /* per entry: saw view/cart */

	r->hist_off = xmallocarray((size_t)nc + 1, sizeof(*r->hist_off));
	r->hist = xmallocarray(ds->n_rows ? ds->n_rows : 1, sizeof(*r->hist));
	r->popularity = xcalloc(ni ? ni : 1, sizeof(*r->popularity));
	uint64_t out = 0;
	for (uint32_t c = 0; c < nc; c++) {
		r->hist_off[c] = out;
		for (uint64_t k = start[c]; k < start[c + 1]; k++) {
			const interaction *row = &ds->rows[order[k]];
			history_entry *e;
			if (owner[row->item] != c) {
				owner[row->item] = c;
				slot[row->item] = out;
				e = &r->hist[out++];
				memset(e, 0, sizeof(*e));
				e->item = row->item;
				e->last_ts = row->ts;
			} else {
				e = &r->hist[slot[row->item]];
			}
			if (row->ts > e->last_ts)
				e->last_ts = row->ts;
			if (row->event == EVENT_PURCHASE) {
				e->quantity += row->quantity;
				if (row->quantity < 0)
					e->flags |= HIST_RETURNED;
			} else {
				engaged[e - r->hist] = 1;
			}
		}
		/* Positive: bought (net of returns) or looked at / carted. A
		 * purchase returned in full is history, not taste. */
		for (uint64_t k = r->hist_off[c]; k < out; k++) {
			history_entry *e = &r->hist[k];
			if (e->quantity > 0)
				e->flags |= HIST_PURCHASED;
			if ((e->flags & HIST_PURCHASED) || engaged[k]) {
				e->weight = 1.0f;
				r->popularity[e->item] += 1.0f;
				r->nnz++;
			}
		}
		qsort(r->hist + r->hist_off[c], out - r->hist_off[c], sizeof(*r->hist), recent_first);
	}
	r->hist_off[nc] = out;
	r->hist = xreallocarray(r->hist, out ? out : 1, sizeof(*r->hist));
	free(engaged);
	free(owner);
	free(slot);
	free(order);
	free(start);
}

/* ---- phase 2: Gram matrix ---------------------------------------------- */

/* G (n x n, row-major, full) = X'X, with X streamed in blocks of customers. */
static void build_gram(const train_result *r, float *G)
{
	uint32_t n = r->n_items, nc = r->n_customers;
	/* A block of X of at most ~64 MiB, at least one row. */
	size_t rows = ((size_t)64 << 20) / ((size_t)n * sizeof(float));
	if (rows < 1)
		rows = 1;
	if (rows > nc)
		rows = nc ? nc : 1;
	float *X = xcalloc(rows * n, sizeof(float));
	progress prog;
	progress_begin(&prog, "gram", "customers", nc);

	memset(G, 0, (size_t)n * n * sizeof(float));
	for (uint32_t c0 = 0; c0 < nc; c0 += (uint32_t)rows) {
		uint32_t c1 = (uint32_t)MIN((uint64_t)c0 + rows, (uint64_t)nc);
		for (uint32_t c = c0; c < c1; c++)
			for (uint64_t k = r->hist_off[c]; k < r->hist_off[c + 1]; k++)
				X[(size_t)(c - c0) * n + r->hist[k].item] = r->hist[k].weight;
		cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)n, (int)(c1 - c0), 1.0f, X,
			    (int)n, 1.0f, G, (int)n);
		for (uint32_t c = c0; c < c1; c++)
			for (uint64_t k = r->hist_off[c]; k < r->hist_off[c + 1]; k++)
				X[(size_t)(c - c0) * n + r->hist[k].item] = 0.0f;
		progress_update(&prog, c1);
	}
	progress_end(&prog);
	free(X);
}

/* Copies the upper triangle of a row-major matrix into its lower one. */
static void mirror_upper(float *G, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = i + 1; j < n; j++)
			G[(size_t)j * n + i] = G[(size_t)i * n + j];
}

/* ---- phase 3: similarity and top-K ------------------------------------- */

struct sim_job {
	const float *G;   /* Gram matrix, or EASE's P, full and symmetric */
	const float *diag;
	uint32_t n;
	enum algo algo;
	train_result *r;
	uint32_t next; /* next row to take, shared */
	pthread_mutex_t lock;
	progress *prog;
};

static float similarity(const struct sim_job *job, uint32_t i, uint32_t j, float g)
{
	float gi = job->diag[i], gj = job->diag[j];
	switch (job->algo) {
	case ALGO_COSINE:
		return g / sqrtf(gi * gj);
	case ALGO_JACCARD:
		return g / (gi + gj - g);
	case ALGO_LIFT:
		return g / (gi * gj);
	case ALGO_EASE:
		/* B_ij = -P_ij / P_jj; row i of B scores candidates j. */
		return -g / gj;
	default:
		return 0;
	}
}

static void *sim_worker(void *arg)
{
	struct sim_job *job = arg;
	uint32_t n = job->n, k = job->r->k;
	neighbor *scratch = xmallocarray(k ? k : 1, sizeof(*scratch));
	const uint32_t chunk = 32;

	for (;;) {
		pthread_mutex_lock(&job->lock);
		uint32_t i0 = job->next;
		job->next = i0 < n ? MIN(i0 + chunk, n) : n;
		if (job->prog)
			progress_update(job->prog, i0);
		pthread_mutex_unlock(&job->lock);
		if (i0 >= n)
			break;
		for (uint32_t i = i0; i < MIN(i0 + chunk, n); i++) {
			topk t;
			topk_init(&t, scratch, k);
			const float *row = job->G + (size_t)i * n;
			bool ease = job->algo == ALGO_EASE;
			for (uint32_t j = 0; j < n; j++) {
				float g = row[j];
				if (j == i || (!ease && g <= 0.0f))
					continue;
				float s = similarity(job, i, j, g);
				if (s > 0.0f && isfinite(s))
					topk_push(&t, j, s);
			}
			uint32_t m = topk_sort(&t);
			memcpy(job->r->nbrs + (size_t)i * k, scratch, (size_t)m * sizeof(neighbor));
			job->r->n_nbrs[i] = m;
		}
	}
	free(scratch);
	return NULL;
}

static void top_neighbors(train_result *r, const float *G, const float *diag, enum algo algo)
{
	uint32_t n = r->n_items;
	struct sim_job job = { G, diag, n, algo, r, 0, PTHREAD_MUTEX_INITIALIZER, NULL };
	progress prog;
	progress_begin(&prog, "neighbors", "items", n);
	job.prog = &prog;

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nthreads = (int)MIN(MAX(ncpu, 1), 16);
	pthread_t tids[16];
	int started = 0;
	for (int t = 1; t < nthreads; t++)
		if (pthread_create(&tids[started], NULL, sim_worker, &job) == 0)
			started++;
	sim_worker(&job);
	for (int t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	progress_update(&prog, n);
	progress_end(&prog);
	pthread_mutex_destroy(&job.lock);
}

/* P = (G + lambda I)^-1 in place, by Cholesky. Returns 0 or LAPACK's info. */
static int ease_inverse(float *G, uint32_t n, float lambda)
{
	for (uint32_t i = 0; i < n; i++)
		G[(size_t)i * n + i] += lambda;
	int nn = (int)n, info = 0;
	/* Row-major upper is column-major lower: same bytes, so ask for 'L'. */
	spotrf_("L", &nn, G, &nn, &info, 1);
	if (info != 0)
		return info;
	spotri_("L", &nn, G, &nn, &info, 1);
	if (info != 0)
		return info;
	mirror_upper(G, n);
	return 0;
}

int train_run(const dataset *ds, const train_options *opt, train_result *r, strbuf *err)
{
	memset(r, 0, sizeof(*r));
	r->n_customers = idmap_count(ds->customers);
	r->n_items = idmap_count(ds->items);
	uint32_t n = r->n_items;

	if (ds->n_rows == 0 || n == 0) {
		sb_adds(err, "no usable rows to train on (every row was skipped or the file has no data)");
		return -1;
	}
	if (opt->algo == ALGO_EASE && !(opt->lambda > 0.0f)) {
		sb_addf(err, "--lambda must be greater than 0 for ease (got %g)", (double)opt->lambda);
		return -1;
	}
	uint64_t gram_bytes = (uint64_t)n * n * sizeof(float);
	if (n > 46340 || gram_bytes > opt->max_dense_bytes) {
		sb_addf(err,
			"%u items is too many for the dense trainer: the item x item matrix would "
			"take %.1f GiB (limit %.1f GiB)",
			n, (double)gram_bytes / (1u << 30), (double)opt->max_dense_bytes / (1u << 30));
		return -1;
	}

	double t0 = util_monotonic();
	build_histories(ds, r);
	double t1 = util_monotonic();
	r->secs_matrix = t1 - t0;
	if (r->nnz == 0) {
		sb_adds(err, "no positive interactions to train on (every purchase was returned?)");
		train_result_free(r);
		return -1;
	}

	float *G = xmallocarray((size_t)n * n, sizeof(float));
	build_gram(r, G);
	mirror_upper(G, n);
	float *diag = xmallocarray(n, sizeof(float));
	for (uint32_t i = 0; i < n; i++)
		diag[i] = G[(size_t)i * n + i];
	double t2 = util_monotonic();
	r->secs_gram = t2 - t1;

	if (opt->algo == ALGO_EASE) {
		int info = ease_inverse(G, n, opt->lambda);
		if (info != 0) {
			sb_addf(err, "EASE: Cholesky factorisation failed (LAPACK info %d); try a "
				     "larger --lambda", info);
			free(diag);
			free(G);
			train_result_free(r);
			return -1;
		}
		for (uint32_t i = 0; i < n; i++)
			diag[i] = G[(size_t)i * n + i];
	}

	r->k = MIN(opt->neighbors, n > 1 ? n - 1 : 1);
	r->nbrs = xmallocarray((size_t)n * r->k, sizeof(neighbor));
	r->n_nbrs = xcalloc(n, sizeof(uint32_t));
	top_neighbors(r, G, diag, opt->algo);
	r->secs_similarity = util_monotonic() - t2;

	free(diag);
	free(G);
	return 0;
}
