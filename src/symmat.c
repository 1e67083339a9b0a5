/*
 * symmat: the blocked inverse of a symmetric positive-definite matrix on
 * our own threads, single-threaded OpenBLAS on each tile; and mirroring.
 *
 * Storage: the caller's row-major upper triangle is, byte for byte, the
 * column-major lower triangle, so everything below works column-major on
 * that lower view (what LAPACK's "L" routines expect), leading dimension
 * n: element (i, j) of the view is a[i + j * n].
 *
 * The view is cut into block columns of nb (the last may be narrower):
 *
 *   1. Cholesky, right-looking. Task (k, c), c >= k, applies block column
 *      k - 1 of L to block column c (ssyrk on the diagonal tile, sgemm
 *      below it); when c == k it then factors the diagonal tile (spotrf)
 *      and solves the panel below it (strsm), which finishes block column
 *      k of L. Needs block column k - 1 finished and task (k - 1, c) done:
 *      a block column's updates are applied one at a time, in order, so
 *      its sums are rounded the same way whoever applies them.
 *   2. Linv = L^-1, one block column j at a time: its rows >= j are the
 *      solution of L[j:, j:] X = [I; 0] (strsm on a buffer of the thread's).
 *      Needs all of L.
 *   3. P = Linv' Linv, lower part, one block column j at a time:
 *      P[j:, j-block] = Linv[j:, j:]' Linv[j:, j-block] (strmm on a copy).
 *      Needs all of Linv.
 *   Then the lower view is mirrored onto the upper.
 * Flops: n^3 / 3 for each of the three, n^3 in all.
 *
 * In 2 and 3, block j reads the view's columns >= j and overwrites its own
 * block column, which every block < j reads: so it computes into its
 * buffer at once and writes back once all blocks < j have finished
 * reading. In ascending order on one thread that holds by itself.
 *
 * Tasks are handed out in that order from one cursor; each waits for the
 * tasks it needs, all handed out before it, so no thread ever waits for a
 * task nobody has taken, and any number of threads finishes. In practice
 * they seldom wait: while one factors block column k, the others are still
 * applying k - 1 to the columns after it. Every task makes the same BLAS
 * calls with the same arguments whoever runs it, hence the same bits.
 */
#include "symmat.h"

#include <assert.h>
#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* LAPACK from OpenBLAS; Debian ships no LAPACKE, so the Fortran symbol is
 * declared here, with gfortran's hidden length argument for CHARACTER. */
extern void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info,
		    size_t uplo_len);

/* ---- the inverse -------------------------------------------------------- */

enum phase { PH_CHOLESKY, PH_INVERSE, PH_PRODUCT, PH_DONE };

struct task {
	enum phase phase;
	uint32_t k; /* Cholesky: the step (block column k - 1 is applied) */
	uint32_t c; /* the block column written */
	bool skip;  /* a factorisation failed: only the bookkeeping */
};

struct inv_job {
	float *a;
	uint32_t n, nb, nblk;
	pthread_mutex_t lock;   /* guards everything below */
	pthread_cond_t changed; /* broadcast whenever any of it changes */
	struct task cursor;     /* the next task to hand out */
	uint32_t factored;      /* block columns of L finished, in order */
	uint32_t *applied;      /* per block column: steps applied to it */
	bool *read[2];          /* phases 2 and 3: per block, done reading */
	uint32_t read_upto[2];  /* phases 2 and 3: blocks below it all done reading */
	uint32_t written[2];    /* phases 2 and 3: blocks written back */
	int info;               /* the first leading minor found not positive definite */
};

static float *at(const struct inv_job *job, uint32_t i, uint32_t j)
{
	return job->a + i + (size_t)j * job->n;
}

static uint32_t block_width(const struct inv_job *job, uint32_t b)
{
	return MIN(job->nb, job->n - b * job->nb);
}

/* Whether t's inputs are ready. Under the lock. */
static bool task_ready(const struct inv_job *job, const struct task *t)
{
	switch (t->phase) {
	case PH_CHOLESKY:
		return t->k == 0 || (job->factored >= t->k && job->applied[t->c] >= t->k - 1);
	case PH_INVERSE:
		return job->factored == job->nblk;
	case PH_PRODUCT:
		return job->written[0] == job->nblk;
	default:
		return true;
	}
}

/* Moves the cursor to the task after it. Step 0 has one task: factoring
 * block column 0, which has nothing to apply. */
static void cursor_advance(struct inv_job *job)
{
	struct task *t = &job->cursor;
	if (t->phase != PH_CHOLESKY) {
		if (++t->c == job->nblk) {
			t->phase++;
			t->c = 0;
		}
	} else if (t->k == 0 || ++t->c == job->nblk) {
		t->c = ++t->k;
		if (t->k == job->nblk) {
			t->phase = PH_INVERSE;
			t->c = 0;
		}
	}
}

/* Hands out the next task and waits until it can run. False when there is
 * none left, or a factorisation failed before this one was handed out. */
static bool task_take(struct inv_job *job, struct task *t)
{
	pthread_mutex_lock(&job->lock);
	bool got = job->cursor.phase != PH_DONE && job->info == 0;
	if (got) {
		*t = job->cursor;
		cursor_advance(job);
		while (!task_ready(job, t))
			pthread_cond_wait(&job->changed, &job->lock);
		t->skip = job->info != 0;
	}
	pthread_mutex_unlock(&job->lock);
	return got;
}

/* Records t done (info: its factorisation's failure, 0 if none). Done even
 * for skipped tasks, since later ones may be waiting for it. */
static void task_finish(struct inv_job *job, const struct task *t, int info)
{
	pthread_mutex_lock(&job->lock);
	if (t->phase == PH_CHOLESKY) {
		if (t->k > 0)
			job->applied[t->c] = t->k;
		if (t->c == t->k)
			job->factored = t->k + 1;
		if (info != 0 && job->info == 0)
			job->info = info;
	} else {
		job->written[t->phase - PH_INVERSE]++;
	}
	pthread_cond_broadcast(&job->changed);
	pthread_mutex_unlock(&job->lock);
}

/* Phases 2 and 3: records that block t->c has finished reading the view,
 * then waits until every block before it has too, so it may overwrite its
 * block column. */
static void wait_to_write(struct inv_job *job, const struct task *t)
{
	int p = t->phase - PH_INVERSE;
	pthread_mutex_lock(&job->lock);
	job->read[p][t->c] = true;
	while (job->read_upto[p] < job->nblk && job->read[p][job->read_upto[p]])
		job->read_upto[p]++;
	pthread_cond_broadcast(&job->changed);
	while (job->read_upto[p] < t->c)
		pthread_cond_wait(&job->changed, &job->lock);
	pthread_mutex_unlock(&job->lock);
}

/* Phase 1, task (k, c). Returns 0, or the global index (from 1) of the
 * leading minor spotrf found not positive definite. */
static int cholesky_task(struct inv_job *job, uint32_t k, uint32_t c)
{
	const int ld = (int)job->n, nb = (int)job->nb;
	uint32_t c0 = c * job->nb, cw = block_width(job, c), below = job->n - c0 - cw;
	float *diag = at(job, c0, c0), *under = at(job, c0 + cw, c0);
	if (k > 0) {
		/* Block column k - 1 < c is a full one. */
		const float *pan = at(job, c0, (k - 1) * job->nb);
		cblas_ssyrk(CblasColMajor, CblasLower, CblasNoTrans, (int)cw, nb, -1.0f, pan, ld,
			    1.0f, diag, ld);
		if (below)
			cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)below, (int)cw, nb,
				    -1.0f, pan + cw, ld, pan, ld, 1.0f, under, ld);
	}
	if (c != k)
		return 0;
	int w = (int)cw, info = 0;
	spotrf_("L", &w, diag, &ld, &info, 1);
	if (info != 0)
		return (int)c0 + info;
	/* The panel: L[below, c] = A[below, c] L[c, c]^-T. */
	if (below)
		cblas_strsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit,
			    (int)below, (int)cw, 1.0f, diag, ld, under, ld);
	return 0;
}

/* Phases 2 and 3: block column c, rows >= its first, from buf (column-major,
 * leading dimension the row count) into the view, once that is allowed. */
static void write_back(struct inv_job *job, const struct task *t, const float *buf)
{
	uint32_t j0 = t->c * job->nb, jw = block_width(job, t->c), m = job->n - j0;
	wait_to_write(job, t);
	if (!t->skip)
		for (uint32_t q = 0; q < jw; q++)
			memcpy(at(job, j0, j0 + q), buf + (size_t)q * m, m * sizeof(float));
}

/* Phase 2, block column c of Linv into buf, then into the view. */
static void inverse_task(struct inv_job *job, const struct task *t, float *buf)
{
	uint32_t j0 = t->c * job->nb, jw = block_width(job, t->c), m = job->n - j0;
	if (!t->skip) {
		memset(buf, 0, (size_t)m * jw * sizeof(float));
		for (uint32_t q = 0; q < jw; q++)
			buf[q + (size_t)q * m] = 1.0f;
		cblas_strsm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, (int)m,
			    (int)jw, 1.0f, at(job, j0, j0), (int)job->n, buf, (int)m);
	}
	write_back(job, t, buf);
}

/* Phase 3, block column c of P into buf, then into the view. The copy of
 * Linv's block column takes only the lower triangle of its diagonal tile
 * (zeros above), since the view above the diagonal is no part of Linv. */
static void product_task(struct inv_job *job, const struct task *t, float *buf)
{
	uint32_t j0 = t->c * job->nb, jw = block_width(job, t->c), m = job->n - j0;
	if (!t->skip) {
		for (uint32_t q = 0; q < jw; q++) {
			float *col = buf + (size_t)q * m;
			memset(col, 0, q * sizeof(float));
			memcpy(col + q, at(job, j0 + q, j0 + q), (m - q) * sizeof(float));
		}
		cblas_strmm(CblasColMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, (int)m,
			    (int)jw, 1.0f, at(job, j0, j0), (int)job->n, buf, (int)m);
	}
	write_back(job, t, buf);
}

static void *inv_worker(void *arg)
{
	struct inv_job *job = arg;
	float *buf = NULL; /* n x nb, for phases 2 and 3 */
	struct task t;
	while (task_take(job, &t)) {
		int info = 0;
		if (t.phase == PH_CHOLESKY) {
			if (!t.skip)
				info = cholesky_task(job, t.k, t.c);
		} else {
			if (!buf)
				buf = xmallocarray((size_t)job->n * job->nb, sizeof(float));
			if (t.phase == PH_INVERSE)
				inverse_task(job, &t, buf);
			else
				product_task(job, &t, buf);
		}
		task_finish(job, &t, info);
	}
	free(buf);
	return NULL;
}

int symmat_invert_blocked(float *a, uint32_t n, uint32_t threads, uint32_t nb)
{
	assert(nb >= 1);
	if (n == 0)
		return 0;
	nb = MIN(nb, n);
	struct inv_job job = { .a = a, .n = n, .nb = nb, .nblk = (n - 1) / nb + 1 };
	job.applied = xcalloc(job.nblk, sizeof(*job.applied));
	job.read[0] = xcalloc(job.nblk, sizeof(bool));
	job.read[1] = xcalloc(job.nblk, sizeof(bool));
	pthread_mutex_init(&job.lock, NULL);
	pthread_cond_init(&job.changed, NULL);

	/* Each tile on one OpenBLAS thread: the parallelism is ours (see the
	 * header for why). Concurrent calls are safe in OpenBLAS built with
	 * USE_THREAD, as Debian's libopenblas0-pthread is: that compiles in the
	 * locks around its shared buffers (OpenBLAS issues 2164, 4217; the
	 * races reported were in builds without them). test_symmat checks
	 * 1 and 3 threads give the same bytes. */
	int saved = openblas_get_num_threads();
	openblas_set_num_threads(1);
	util_run_parallel(MAX(threads, 1u), inv_worker, &job);
	openblas_set_num_threads(saved);

	pthread_cond_destroy(&job.changed);
	pthread_mutex_destroy(&job.lock);
	free(job.read[1]);
	free(job.read[0]);
	free(job.applied);
	if (job.info == 0)
		symmat_mirror_upper(a, n, threads);
	return job.info;
}

int symmat_invert(float *a, uint32_t n, uint32_t threads)
{
	return symmat_invert_blocked(a, n, threads, SYMMAT_BLOCK);
}

/* ---- mirroring ---------------------------------------------------------- */

/* Rows are taken MIRROR_TILE at a time; each band is copied in square
 * tiles, so the column-wise writes stay in cache. */
#define MIRROR_TILE 64

struct mirror_job {
	float *a;
	uint32_t n;
	atomic_uint next; /* the next band's first row */
};

static void *mirror_worker(void *arg)
{
	struct mirror_job *job = arg;
	float *a = job->a;
	uint32_t n = job->n;
	for (;;) {
		uint32_t i0 = atomic_fetch_add(&job->next, MIRROR_TILE);
		if (i0 >= n)
			return NULL;
		uint32_t i1 = MIN(i0 + MIRROR_TILE, n);
		for (uint32_t j0 = i0; j0 < n; j0 += MIRROR_TILE) {
			uint32_t j1 = MIN(j0 + MIRROR_TILE, n);
			for (uint32_t i = i0; i < i1; i++)
				for (uint32_t j = MAX(j0, i + 1); j < j1; j++)
					a[(size_t)j * n + i] = a[(size_t)i * n + j];
		}
	}
}

void symmat_mirror_upper(float *a, uint32_t n, uint32_t threads)
{
	struct mirror_job job = { .a = a, .n = n };
	atomic_init(&job.next, 0);
	/* A band is ~n * 64 copies: below a few bands a thread costs more. */
	util_run_parallel(MIN(MAX(threads, 1u), n / (4 * MIRROR_TILE) + 1), mirror_worker, &job);
}
