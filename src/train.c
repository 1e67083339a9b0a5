/*
 * train: histories, popularity and item-item neighbours.
 *
 * Phases: (1) group rows by customer and fold repeats of the same item into
 * one history entry; (2) the Gram matrix G = X'X, dense with cblas_ssyrk
 * over blocks of customers, or sparse one item row at a time; (3) turn G
 * into similarities (or, for EASE, invert G + lambda I with Cholesky) and
 * keep each item's top K, rows split between threads.
 *
 * Phase 1 is in train_hist.c; the similarity kernels of phase 3 are the
 * seam to cut next.
 */
#include "train.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "progress.h"
#include "train_internal.h"
#include "symmat.h"
#include "topk.h"
#include "util.h"

static const char *const algo_names[ALGO_COUNT] = { "cosine", "jaccard", "lift", "ease" };
static const char *const path_names[] = { "auto", "dense", "sparse" };

/* Throughput assumed by the path choice: single-precision rank-k update
 * (measured ~30 GFLOP/s per core here) against scattered sparse updates
 * (~3 ns each). Only their ratio matters. */
#define DENSE_FLOPS_PER_SEC 3.0e10
#define SPARSE_OPS_PER_SEC 3.3e8

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

const char *train_path_name(enum train_path p)
{
	return (unsigned)p <= PATH_SPARSE ? path_names[p] : "unknown";
}

void train_result_free(train_result *r)
{
	if (!r)
		return;
	content_result_free(&r->content);
	free(r->hist_off);
	free(r->hist);
	free(r->popularity);
	free(r->recent);
	free(r->nbrs);
	free(r->n_nbrs);
	free(r->n_neg);
	memset(r, 0, sizeof(*r));
}

static uint32_t thread_count(const train_options *opt)
{
	if (opt->threads)
		return MIN(opt->threads, (uint32_t)UTIL_MAX_THREADS);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return (uint32_t)MIN(MAX(n, 1), UTIL_MAX_THREADS);
}

void *train_big_alloc(size_t count, size_t size)
{
	void *p = xmallocarray(count, size);
	const uintptr_t huge = (uintptr_t)2 << 20;
	uintptr_t from = ((uintptr_t)p + huge - 1) & ~(huge - 1);
	uintptr_t to = ((uintptr_t)p + count * size) & ~(huge - 1);
	if (to > from)
		madvise((void *)from, to - from, MADV_HUGEPAGE); /* advice only */
	return p;
}

/* ---- phase 2: Gram matrix ---------------------------------------------- */

/* G (m x m, row-major, upper triangle) = X'X over the items with
 * col[item] < m (col[item] == UINT32_MAX: left out), X streamed in blocks of
 * customers so it is never held whole. */
static void gram_dense(const train_result *r, const float *x, const uint32_t *col, uint32_t m,
		       float *G)
{
	uint32_t nc = r->n_customers;
	/* A block of X of at most ~64 MiB, at least one row. */
	size_t rows = ((size_t)64 << 20) / ((size_t)m * sizeof(float));
	rows = MAX(rows, (size_t)1);
	rows = MIN(rows, (size_t)MAX(nc, 1u));
	float *X = xcalloc(rows * m, sizeof(float));
	progress prog;
	progress_begin(&prog, "gram", "customers", nc);

	memset(G, 0, (size_t)m * m * sizeof(float));
	for (uint32_t c0 = 0; c0 < nc; c0 += (uint32_t)rows) {
		uint32_t c1 = (uint32_t)MIN((uint64_t)c0 + rows, (uint64_t)nc);
		for (uint32_t c = c0; c < c1; c++)
			for (uint64_t k = r->hist_off[c]; k < r->hist_off[c + 1]; k++)
				if (col[r->hist[k].item] < m)
					X[(size_t)(c - c0) * m + col[r->hist[k].item]] = x[k];
		cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)m, (int)(c1 - c0), 1.0f, X,
			    (int)m, 1.0f, G, (int)m);
		for (uint32_t c = c0; c < c1; c++)
			for (uint64_t k = r->hist_off[c]; k < r->hist_off[c + 1]; k++)
				if (col[r->hist[k].item] < m)
					X[(size_t)(c - c0) * m + col[r->hist[k].item]] = 0.0f;
		progress_update(&prog, c1);
	}
	progress_end(&prog);
	free(X);
}

/* The two views of X the sparse path streams, positive values only, each
 * entry an (index, value) pair in a `neighbor` (8 bytes, so a customer's
 * row is a few cache lines, not a stride through history entries):
 *   by item (CSC):     col_off[i] .. col_off[i+1] in col: (customer, x)
 *   by customer (CSR): row_off[c] .. row_off[c+1] in row: (item, x), items
 *                      ascending (the accumulator is then swept in order) */
struct xviews {
	uint64_t *col_off; /* n_items + 1 */
	neighbor *col;
	uint64_t *row_off; /* n_customers + 1 */
	neighbor *row;
	uint64_t *ops;     /* per item: entries its row of G adds up */
};

static void build_views(const train_result *r, const float *x, struct xviews *v)
{
	uint32_t ni = r->n_items, nc = r->n_customers;
	v->col_off = xcalloc((size_t)ni + 1, sizeof(*v->col_off));
	v->row_off = xcalloc((size_t)nc + 1, sizeof(*v->row_off));
	for (uint32_t c = 0; c < nc; c++)
		for (uint64_t k = r->hist_off[c]; k < r->hist_off[c + 1]; k++)
			if (x[k] > 0) {
				v->col_off[r->hist[k].item + 1]++;
				v->row_off[c + 1]++;
			}
	for (uint32_t i = 0; i < ni; i++)
		v->col_off[i + 1] += v->col_off[i];
	for (uint32_t c = 0; c < nc; c++)
		v->row_off[c + 1] += v->row_off[c];
	uint64_t nnz = v->col_off[ni];
	v->col = train_big_alloc(nnz ? nnz : 1, sizeof(*v->col));
	v->row = train_big_alloc(nnz ? nnz : 1, sizeof(*v->row));

	/* Customers in index order into the columns... */
	uint64_t *fill = xmallocarray((size_t)MAX(ni, nc) + 1, sizeof(*fill));
	memcpy(fill, v->col_off, ((size_t)ni + 1) * sizeof(*fill));
	for (uint32_t c = 0; c < nc; c++)
		for (uint64_t k = r->hist_off[c]; k < r->hist_off[c + 1]; k++)
			if (x[k] > 0)
				v->col[fill[r->hist[k].item]++] = (neighbor){ c, x[k] };
	/* ...and the columns in item order into the rows: sorted rows for free. */
	memcpy(fill, v->row_off, ((size_t)nc + 1) * sizeof(*fill));
	for (uint32_t i = 0; i < ni; i++)
		for (uint64_t p = v->col_off[i]; p < v->col_off[i + 1]; p++)
			v->row[fill[v->col[p].item]++] = (neighbor){ i, v->col[p].score };
	free(fill);
	v->ops = xcalloc(ni ? ni : 1, sizeof(*v->ops));
	for (uint32_t i = 0; i < ni; i++)
		for (uint64_t p = v->col_off[i]; p < v->col_off[i + 1]; p++)
			v->ops[i] += v->row_off[v->col[p].item + 1] - v->row_off[v->col[p].item];
}

static void xviews_free(struct xviews *v)
{
	free(v->col_off);
	free(v->col);
	free(v->row_off);
	free(v->row);
	free(v->ops);
}

/* How many customers ahead the sparse loops prefetch rows. */
#define SPARSE_PREFETCH 4

/* Adds x_i times the X rows of the customers who have item i into g (a
 * dense row of m, indexed by col[item]; items with col >= m are left
 * out): row i of G, or the accumulator of the sparse path. With `touched`
 * (col must be NULL then), the items g had at zero before are listed
 * there (one spare slot past the last), and their count returned: values
 * are positive, so a zero accumulator is an untouched one. */
static inline uint32_t add_item_row(const struct xviews *xv, uint32_t i, const uint32_t *col,
				    uint32_t m, float *g, uint32_t *touched)
{
	uint32_t nt = 0;
	uint64_t p0 = xv->col_off[i], p1 = xv->col_off[i + 1];
	for (uint64_t p = p0; p < p1; p++) {
		/* Rows of customers a few ahead, and the offsets of those
		 * further ahead: both are cache misses. */
		if (p + 2 * SPARSE_PREFETCH < p1)
			__builtin_prefetch(xv->row_off + xv->col[p + 2 * SPARSE_PREFETCH].item);
		if (p + SPARSE_PREFETCH < p1)
			__builtin_prefetch(xv->row + xv->row_off[xv->col[p + SPARSE_PREFETCH].item]);
		uint32_t c = xv->col[p].item;
		float xi = xv->col[p].score;
		const neighbor *e = xv->row + xv->row_off[c];
		const neighbor *end = xv->row + xv->row_off[c + 1];
		if (touched) {
			for (; e < end; e++) {
				uint32_t j = e->item;
				touched[nt] = j; /* kept only if new */
				nt += g[j] == 0.0f;
				g[j] += xi * e->score;
			}
		} else if (!col) {
			for (; e < end; e++)
				g[e->item] += xi * e->score;
		} else {
			for (; e < end; e++) {
				uint32_t q = col[e->item];
				if (q < m)
					g[q] += xi * e->score;
			}
		}
	}
	return nt;
}

/* Work shared by the threads building a dense G row by row. */
struct gram_job {
	const struct xviews *xv;
	const uint32_t *col;   /* item -> matrix index (>= m: left out), NULL: identity */
	const uint32_t *items; /* matrix index -> item, NULL: identity */
	uint32_t m;
	float *G;
	pthread_mutex_t lock;
	uint32_t next;
	progress *prog;
};

static void *gram_rows_worker(void *arg)
{
	struct gram_job *job = arg;
	uint32_t m = job->m;
	for (;;) {
		pthread_mutex_lock(&job->lock);
		uint32_t j0 = job->next, j1 = MIN(j0 + 16, m);
		job->next = j1;
		progress_update(job->prog, j0);
		pthread_mutex_unlock(&job->lock);
		if (j0 >= m)
			break;
		for (uint32_t j = j0; j < j1; j++) {
			float *g = job->G + (size_t)j * m;
			memset(g, 0, (size_t)m * sizeof(float));
			add_item_row(job->xv, job->items ? job->items[j] : j, job->col, m, g, NULL);
		}
	}
	return NULL;
}

/* G (m x m, row-major, full) from the sparse views, one row per item, rows
 * split between threads. Each entry is a sum over the customers who have
 * both items, in customer order, so G comes out exactly symmetric: what
 * adding x_i x_j pair by pair would give, with a row in cache at a time
 * and no mirroring. */
static void gram_rows(const struct xviews *xv, const uint32_t *col, const uint32_t *items,
		      uint32_t m, float *G, uint32_t threads)
{
	progress prog;
	progress_begin(&prog, "gram", "items", m);
	struct gram_job job = { .xv = xv, .col = col, .items = items, .m = m, .G = G, .prog = &prog };
	pthread_mutex_init(&job.lock, NULL);
	util_run_parallel(threads, gram_rows_worker, &job);
	pthread_mutex_destroy(&job.lock);
	progress_update(&prog, m);
	progress_end(&prog);
}

/* ---- phase 3: similarity and top-K ------------------------------------- */

static inline float similarity(enum algo algo, float g, float gi, float gj)
{
	switch (algo) {
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

/* Work shared by the threads of phase 3. */
struct sim_job {
	enum algo algo;
	train_result *r;
	const float *diag;    /* per item (dense: per matrix row) */
	/* dense: G (m x m, full) with row/column j standing for item items[j] */
	const float *G;
	const uint32_t *items; /* matrix index -> item (NULL: identity) */
	uint32_t m;
	/* sparse */
	const struct xviews *xv;
	pthread_mutex_t lock;
	uint32_t next, total; /* rows handed out / to do */
	uint32_t negatives;   /* dense EASE: negative neighbours kept (of r->k) */
	progress *prog;
};

/* Hands out the next chunk of rows; false when all are taken. */
static bool take_rows(struct sim_job *job, uint32_t *lo, uint32_t *hi)
{
	const uint32_t chunk = 16;
	pthread_mutex_lock(&job->lock);
	*lo = job->next;
	*hi = MIN(*lo + chunk, job->total);
	job->next = *hi;
	progress_update(job->prog, *lo);
	pthread_mutex_unlock(&job->lock);
	return *lo < *hi;
}

/* Row i's scores against every column of the dense matrix, into out (0:
 * none). One plain loop per algorithm, which the compiler can vectorise;
 * the expressions are similarity()'s, so the scores are the same. */
static void score_row(enum algo algo, const float *g, float gi, const float *diag, uint32_t m,
		      float *out)
{
	switch (algo) {
	case ALGO_EASE:
		for (uint32_t j = 0; j < m; j++)
			out[j] = -g[j] / diag[j];
		break;
	case ALGO_LIFT:
		for (uint32_t j = 0; j < m; j++)
			out[j] = g[j] > 0.0f ? g[j] / (gi * diag[j]) : 0.0f;
		break;
	case ALGO_JACCARD:
		for (uint32_t j = 0; j < m; j++)
			out[j] = g[j] > 0.0f ? g[j] / (gi + diag[j] - g[j]) : 0.0f;
		break;
	default:
		for (uint32_t j = 0; j < m; j++)
			out[j] = g[j] > 0.0f ? similarity(algo, g[j], gi, diag[j]) : 0.0f;
		break;
	}
}

static void *dense_worker(void *arg)
{
	struct sim_job *job = arg;
	train_result *r = job->r;
	uint32_t m = job->m, lo, hi, kneg = job->negatives, kpos = r->k - kneg;
	neighbor *scratch = xmallocarray(r->k, sizeof(*scratch));
	float *score = xmallocarray(m ? m : 1, sizeof(*score));
	/* A K near the row's length makes the heap cost a sift per score: then
	 * the candidates are gathered and selected at once (the same pairs in
	 * the same order, topk.h). */
	bool gather = (uint64_t)r->k * 8 >= m;
	neighbor *cand = gather ? xmallocarray(2 * (size_t)(m ? m : 1), sizeof(*cand)) : NULL;

	while (take_rows(job, &lo, &hi)) {
		for (uint32_t i = lo; i < hi; i++) {
			uint32_t item = job->items ? job->items[i] : i;
			neighbor *dst = r->nbrs + (size_t)item * r->k;
			uint32_t got, got_neg;
			score_row(job->algo, job->G + (size_t)i * m, job->diag[i], job->diag, m, score);
			if (gather) {
				neighbor *pos = cand, *neg = cand + m;
				uint32_t np = 0, nn = 0;
				for (uint32_t j = 0; j < m; j++) {
					float s = score[j];
					if (j == i || !isfinite(s))
						continue;
					uint32_t id = job->items ? job->items[j] : j;
					if (s > 0.0f)
						pos[np++] = (neighbor){ id, s };
					else if (kneg && s < 0.0f)
						neg[nn++] = (neighbor){ id, -s };
				}
				got = topk_select(pos, np, kpos);
				got_neg = topk_select(neg, nn, kneg);
				memcpy(dst, pos, (size_t)got * sizeof(neighbor));
				for (uint32_t q = 0; q < got_neg; q++)
					dst[got + q] = (neighbor){ neg[q].item, -neg[q].score };
			} else {
				topk t, tn;
				topk_init(&t, scratch, kpos);
				topk_init(&tn, scratch + kpos, kneg);
				/* Once the heap is full most scores fail the first test. */
				float floor = 0.0f, neg_floor = 0.0f;
				for (uint32_t j = 0; j < m; j++) {
					float s = score[j];
					if (kneg && s < 0.0f && -s >= neg_floor && j != i && isfinite(s)) {
						/* The strongest negatives: a heap of sizes. */
						topk_push(&tn, job->items ? job->items[j] : j, -s);
						neg_floor = MAX(topk_threshold(&tn), 0.0f);
					}
					if (!(s >= floor) || j == i || !(s > 0.0f) || !isfinite(s))
						continue;
					topk_push(&t, job->items ? job->items[j] : j, s);
					floor = MAX(topk_threshold(&t), 0.0f);
				}
				got = topk_sort(&t);
				got_neg = topk_sort(&tn);
				memcpy(dst, t.heap, (size_t)got * sizeof(neighbor));
				for (uint32_t q = 0; q < got_neg; q++)
					dst[got + q] = (neighbor){ tn.heap[q].item, -tn.heap[q].score };
			}
			r->n_nbrs[item] = got + got_neg;
			if (r->n_neg)
				r->n_neg[item] = got_neg;
		}
	}
	free(cand);
	free(score);
	free(scratch);
	return NULL;
}

static void *sparse_worker(void *arg)
{
	struct sim_job *job = arg;
	const train_result *r = job->r;
	const struct xviews *xv = job->xv;
	uint32_t n = r->n_items, lo, hi;
	float *acc = xcalloc(n ? n : 1, sizeof(*acc));
	uint32_t *touched = xmallocarray((size_t)n + 1, sizeof(*touched));
	neighbor *cand = xmallocarray(n ? n : 1, sizeof(*cand));

	while (take_rows(job, &lo, &hi)) {
		for (uint32_t i = lo; i < hi; i++) {
			/* Row i of G: the rows of X of every customer with i.
			 * A row expected to touch a good part of the catalog is
			 * accumulated without tracking what it touched, then
			 * swept whole; a sparse one keeps the list. Values are
			 * positive, so a zero accumulator is an untouched one. */
			bool dense = xv->ops[i] * 4 >= n;
			uint32_t nt = add_item_row(xv, i, NULL, n, acc, dense ? NULL : touched);
			float gi = job->diag[i];
			uint32_t count = dense ? n : nt, m = 0;
			for (uint32_t q = 0; q < count; q++) {
				uint32_t j = dense ? q : touched[q];
				float g = acc[j];
				if (g == 0.0f)
					continue;
				acc[j] = 0.0f;
				float sim = similarity(job->algo, g, gi, job->diag[j]);
				if (j != i && sim > 0.0f && isfinite(sim))
					cand[m++] = (neighbor){ j, sim };
			}
			m = topk_select(cand, m, r->k);
			memcpy(r->nbrs + (size_t)i * r->k, cand, (size_t)m * sizeof(neighbor));
			r->n_nbrs[i] = m;
		}
	}
	free(cand);
	free(touched);
	free(acc);
	return NULL;
}

static void run_similarity(struct sim_job *job, uint32_t rows, uint32_t threads,
			   void *(*worker)(void *))
{
	progress prog;
	progress_begin(&prog, "neighbors", "items", rows);
	pthread_mutex_init(&job->lock, NULL);
	job->next = 0;
	job->total = rows;
	job->prog = &prog;
	util_run_parallel(threads, worker, job);
	progress_update(&prog, rows);
	progress_end(&prog);
	pthread_mutex_destroy(&job->lock);
}

/* P = (G + lambda I)^-1 in place (G full, row-major), on `threads` of our
 * own threads, each tile on one OpenBLAS thread (symmat.h says why): the
 * same bits whatever the thread count. Returns 0 or LAPACK's info. */
static int ease_inverse(float *G, uint32_t n, float lambda, uint32_t threads)
{
	for (uint32_t i = 0; i < n; i++)
		G[(size_t)i * n + i] += lambda;
	return symmat_invert(G, n, threads);
}

/* Orders item indexes by popularity, most popular first (ties by index). */
static const float *sort_pop;
static int by_popularity(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	if (sort_pop[x] != sort_pop[y])
		return sort_pop[x] > sort_pop[y] ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* The dense path: G over the chosen columns, then similarities. For EASE
 * over more than ease_max_items items, the columns are the most popular. */
static void estimate_paths(const train_result *r, const float *x, const uint32_t *col, uint32_t m,
			   double *dense, double *sparse);

static int train_dense(train_result *r, const train_options *opt, const float *x,
		       uint32_t threads, const float *lambdas, uint32_t n_lambda, train_result *more,
		       strbuf *err)
{
	uint32_t n = r->n_items, m = n;
	uint32_t *items = NULL;
	uint32_t *col = xmallocarray(n, sizeof(*col));
	uint32_t ease_max = opt->ease_max_items ? opt->ease_max_items : TRAIN_DEFAULT_EASE_MAX_ITEMS;

	for (uint32_t i = 0; i < n; i++)
		col[i] = i;
	if (opt->algo == ALGO_EASE && n > ease_max) {
		items = xmallocarray(n, sizeof(*items));
		for (uint32_t i = 0; i < n; i++)
			items[i] = i;
		sort_pop = r->popularity; /* single-threaded here */
		qsort(items, n, sizeof(*items), by_popularity);
		m = ease_max;
		for (uint32_t i = 0; i < n; i++)
			col[i] = UINT32_MAX;
		for (uint32_t j = 0; j < m; j++)
			col[items[j]] = j;
	}
	r->ease_items = opt->algo == ALGO_EASE ? m : 0;
	/* ssyrk or sparse rows, whichever is estimated cheaper. */
	double dense_s, rows_s;
	estimate_paths(r, x, col, m, &dense_s, &rows_s);
	bool by_rows = rows_s < dense_s;
	r->gram_sparse = by_rows;

	double t1 = util_monotonic();
	float *G = train_big_alloc((size_t)m * m, sizeof(float));
	if (by_rows) {
		struct xviews xv;
		build_views(r, x, &xv);
		gram_rows(&xv, items ? col : NULL, items, m, G, threads);
		xviews_free(&xv);
	} else {
		gram_dense(r, x, col, m, G);
		symmat_mirror_upper(G, m, threads);
	}
	float *diag = xmallocarray(m, sizeof(float));
	for (uint32_t i = 0; i < m; i++)
		diag[i] = G[(size_t)i * m + i];
	double t2 = util_monotonic();
	r->secs_gram = t2 - t1;

	int ret = 0;
	if (opt->algo != ALGO_EASE) {
		struct sim_job job = { .algo = opt->algo, .r = r, .diag = diag, .G = G, .items = items,
				       .m = m };
		run_similarity(&job, m, threads, dense_worker);
		r->secs_similarity = util_monotonic() - t2;
		goto out;
	}
	/* EASE, once per lambda: the first on r, the others on `more`. G is
	 * kept for the next one while there is one (a copy of m x m). */
	float *G0 = n_lambda > 1 ? train_big_alloc((size_t)m * m, sizeof(float)) : NULL;
	if (G0)
		memcpy(G0, G, (size_t)m * m * sizeof(float));
	for (uint32_t l = 0; l < n_lambda; l++) {
		train_result *dst = l == 0 ? r : &more[l - 1];
		if (l > 0) {
			memcpy(G, G0, (size_t)m * m * sizeof(float));
			train_result_free(dst);
			dst->n_customers = r->n_customers;
			dst->n_items = n;
			dst->nnz = r->nnz;
			dst->k = r->k;
			dst->k_neg = r->k_neg;
			dst->path = r->path;
			dst->ease_items = r->ease_items;
			dst->nbrs = xmallocarray((size_t)n * r->k, sizeof(neighbor));
			dst->n_nbrs = xcalloc(n, sizeof(uint32_t));
			dst->n_neg = r->n_neg ? xcalloc(n, sizeof(uint32_t)) : NULL;
		}
		double tl = util_monotonic();
		float lambda = lambdas[l] > 0 ? lambdas[l] : TRAIN_DEFAULT_LAMBDA;
		int info = ease_inverse(G, m, lambda, threads);
		if (info != 0) {
			sb_addf(err, "EASE: Cholesky factorisation failed (LAPACK info %d); try a "
				     "larger --lambda", info);
			ret = -1;
			break;
		}
		for (uint32_t i = 0; i < m; i++)
			diag[i] = G[(size_t)i * m + i];
		struct sim_job job = { .algo = opt->algo, .r = dst, .diag = diag, .G = G,
				       .items = items, .m = m, .negatives = r->k_neg };
		run_similarity(&job, m, threads, dense_worker);
		dst->secs_gram = r->secs_gram;
		dst->secs_similarity = util_monotonic() - (l == 0 ? t2 : tl);
	}
	free(G0);
out:
	free(diag);
	free(G);
	free(col);
	free(items);
	return ret;
}

static void train_sparse(train_result *r, const train_options *opt, const float *x,
			 uint32_t threads)
{
	double t1 = util_monotonic();
	struct xviews xv;
	build_views(r, x, &xv);
	float *diag = xcalloc(r->n_items, sizeof(float));
	for (uint32_t i = 0; i < r->n_items; i++)
		for (uint64_t p = xv.col_off[i]; p < xv.col_off[i + 1]; p++)
			diag[i] += xv.col[p].score * xv.col[p].score;
	double t2 = util_monotonic();
	r->secs_gram = t2 - t1;
	struct sim_job job = { .algo = opt->algo, .r = r, .diag = diag, .xv = &xv };
	run_similarity(&job, r->n_items, threads, sparse_worker);
	r->secs_similarity = util_monotonic() - t2;
	free(diag);
	xviews_free(&xv);
}

/* Estimated seconds of the dense (ssyrk) and sparse (pairwise) ways to G
 * over the m items with col[item] < m (col NULL: all items). */
static void estimate_paths(const train_result *r, const float *x, const uint32_t *col, uint32_t m,
			   double *dense, double *sparse)
{
	double ops = 0;
	for (uint32_t c = 0; c < r->n_customers; c++) {
		double len = 0;
		for (uint64_t k = r->hist_off[c]; k < r->hist_off[c + 1]; k++)
			len += x[k] > 0 && (!col || col[r->hist[k].item] < m);
		ops += len * len;
	}
	double n = m;
	/* ssyrk: n^2 * customers flops; then an O(n^2) scan for top-K. */
	*dense = n * n * (double)r->n_customers / DENSE_FLOPS_PER_SEC + n * n * 2e-9;
	*sparse = ops / SPARSE_OPS_PER_SEC + n * 1e-6;
}

int train_run(const dataset *ds, const train_options *opt, train_result *r, strbuf *err)
{
	float lambda = opt->lambda > 0 ? opt->lambda : TRAIN_DEFAULT_LAMBDA;
	return train_run_lambdas(ds, opt, &lambda, 1, r, NULL, err);
}

int train_run_lambdas(const dataset *ds, const train_options *opt, const float *lambdas,
		      uint32_t n_lambda, train_result *r, train_result *more, strbuf *err)
{
	memset(r, 0, sizeof(*r));
	for (uint32_t l = 1; l < n_lambda; l++)
		memset(&more[l - 1], 0, sizeof(more[l - 1]));
	if (n_lambda == 0 || (n_lambda > 1 && opt->algo != ALGO_EASE)) {
		sb_adds(err, "several lambdas are for EASE only");
		return -1;
	}
	for (uint32_t l = 0; l < n_lambda; l++) {
		if (!(lambdas[l] > 0.0f) || !isfinite(lambdas[l])) {
			sb_addf(err, "--lambda must be greater than 0 for ease (got %g)",
				(double)lambdas[l]);
			return -1;
		}
	}
	r->n_customers = idmap_count(ds->customers);
	r->n_items = idmap_count(ds->items);
	uint32_t n = r->n_items;
	uint32_t threads = thread_count(opt);
	openblas_set_num_threads((int)threads); /* ssyrk */
	uint64_t max_dense = opt->max_dense_bytes ? opt->max_dense_bytes : TRAIN_DEFAULT_MAX_DENSE_BYTES;
	uint32_t ease_max = opt->ease_max_items ? opt->ease_max_items : TRAIN_DEFAULT_EASE_MAX_ITEMS;

	float w[EVENT_TYPES] = { TRAIN_DEFAULT_WEIGHT_VIEW, TRAIN_DEFAULT_WEIGHT_CART,
				 TRAIN_DEFAULT_WEIGHT_PURCHASE };
	bool custom_weights = false;
	for (int e = 0; e < EVENT_TYPES; e++)
		custom_weights |= opt->event_weight[e] != 0.0f;
	if (custom_weights)
		for (int e = 0; e < EVENT_TYPES; e++)
			w[e] = opt->event_weight[e];
	for (int e = 0; e < EVENT_TYPES; e++) {
		if (!(w[e] >= 0.0f) || !isfinite(w[e])) {
			sb_addf(err, "event weight of %s must be a number >= 0", event_name(e));
			return -1;
		}
	}

	if (ds->n_rows == 0 || n == 0) {
		sb_adds(err, "no usable rows to train on (every row was skipped or the file has no data)");
		return -1;
	}
	if (opt->algo == ALGO_EASE && opt->lambda < 0.0f) {
		sb_addf(err, "--lambda must be greater than 0 for ease (got %g)", (double)opt->lambda);
		return -1;
	}
	if (opt->half_life_days < 0 || !isfinite(opt->half_life_days)) {
		sb_addf(err, "--half-life must be a number of days >= 0");
		return -1;
	}

	double t0 = util_monotonic();
	float *x = train_build_histories(ds, opt, w, threads, r);
	r->secs_matrix = util_monotonic() - t0;
	if (r->nnz == 0) {
		sb_adds(err, "no positive interactions to train on (every purchase was returned, or "
			     "every event type has weight 0)");
		free(x);
		train_result_free(r);
		return -1;
	}

	uint32_t neighbors = opt->neighbors ? opt->neighbors : TRAIN_DEFAULT_NEIGHBORS;
	r->k = MIN(neighbors, n > 1 ? n - 1 : 1);
	if (opt->algo == ALGO_EASE && opt->negatives) {
		r->k_neg = MIN(opt->negatives, n > 1 ? n - 1 : 1);
		r->k += r->k_neg;
		r->n_neg = xcalloc(n, sizeof(uint32_t));
	}
	r->nbrs = xmallocarray((size_t)n * r->k, sizeof(neighbor));
	r->n_nbrs = xcalloc(n, sizeof(uint32_t));

	/* Which path: EASE is dense by nature; otherwise the cheaper one that
	 * fits in memory, unless the caller insists. */
	uint64_t dense_bytes = (uint64_t)n * n * sizeof(float);
	bool dense_fits = n <= 46340 && dense_bytes <= max_dense;
	enum train_path path = opt->path;
	if (opt->algo == ALGO_EASE) {
		uint64_t m = MIN(n, ease_max);
		if (m * m * sizeof(float) > max_dense || m > 46340) {
			sb_addf(err, "EASE over %llu items needs %.1f GiB for its item x item matrix "
				     "(limit %.1f GiB); lower --ease-max-items",
				(unsigned long long)m, (double)(m * m * 4) / (1u << 30),
				(double)max_dense / (1u << 30));
			free(x);
			train_result_free(r);
			return -1;
		}
		path = PATH_DENSE;
	} else if (path == PATH_AUTO) {
		double dense_s, sparse_s;
		estimate_paths(r, x, NULL, n, &dense_s, &sparse_s);
		path = dense_fits && dense_s < sparse_s ? PATH_DENSE : PATH_SPARSE;
	} else if (path == PATH_DENSE && !dense_fits) {
		sb_addf(err, "%u items is too many for the dense path: the item x item matrix would "
			     "take %.1f GiB (limit %.1f GiB); use the sparse path",
			n, (double)dense_bytes / (1u << 30), (double)max_dense / (1u << 30));
		free(x);
		train_result_free(r);
		return -1;
	}
	r->path = path;

	int ret = 0;
	if (path == PATH_DENSE)
		ret = train_dense(r, opt, x, threads, lambdas, n_lambda, more, err);
	else
		train_sparse(r, opt, x, threads);
	free(x);
	/* Content neighbours: the catalog's own similarity, independent of
	 * the interactions (content.c). */
	if (ret == 0 && opt->content) {
		int crc = content_train(ds, &opt->content_opt, &r->content, err);
		if (crc < 0)
			ret = -1;
		r->has_content = crc == 0;
	}
	if (ret != 0) {
		train_result_free(r);
		for (uint32_t l = 1; l < n_lambda; l++)
			train_result_free(&more[l - 1]);
	}
	return ret;
}
