/*
 * tune_score: a search candidate's fitted model and its scoring on the
 * validation customers (nDCG@10, recall, coverage), customers split
 * between threads with sums in customer order, so figures do not depend
 * on the thread count. See tune.c for the search that uses them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "tune_internal.h"
#include "util.h"

static int pop_cmp(const void *a, const void *b)
{
	const neighbor *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->item < y->item ? -1 : x->item > y->item;
}

void tune_fitted_free(struct fitted *f)
{
	if (!f->live)
		return;
	train_result_free(&f->r);
	free(f->n_pos);
	free(f->popular);
	memset(f, 0, sizeof(*f));
}

void tune_fitted_finish(struct fitted *f, const train_result *hist)
{
	uint32_t n = f->r.n_items;
	f->n_pos = xmallocarray(n ? n : 1, sizeof(*f->n_pos));
	for (uint32_t i = 0; i < n; i++)
		f->n_pos[i] = f->r.n_nbrs[i] - (f->r.n_neg ? f->r.n_neg[i] : 0);
	f->popular = xmallocarray(n ? n : 1, sizeof(*f->popular));
	for (uint32_t i = 0; i < n; i++)
		f->popular[i] = (neighbor){ i, hist->recent[i] };
	qsort(f->popular, n, sizeof(*f->popular), pop_cmp);
	f->live = true;
}

/* Per scoring run, shared by its threads. */
struct score_job {
	const struct split *s;
	const train_result *hist; /* histories */
	rec_table table;
	rec_params knobs;
	double *ndcg, *recall; /* per validation customer */
	uint8_t *shown;        /* per item */
	uint32_t next;         /* next customer (atomic) */
};

static void *score_worker(void *arg)
{
	struct score_job *job = arg;
	const struct split *s = job->s;
	rec_ctx *ctx = rec_ctx_create(job->table.n_items);
	rec_ctx_configure(ctx, &job->knobs);
	rec_result *res = xmalloc(sizeof(*res));
	uint32_t recs[REC_MAX_N];
	for (;;) {
		uint32_t u0 = __atomic_fetch_add(&job->next, 64, __ATOMIC_RELAXED);
		if (u0 >= s->n)
			break;
		uint32_t u1 = MIN(u0 + 64, s->n);
		for (uint32_t u = u0; u < u1; u++) {
			uint32_t c = s->cust[u];
			const train_result *h = job->hist;
			uint64_t a = h->hist_off[c], b = h->hist_off[c + 1];
			rec_for_table(ctx, &job->table, h->hist + a, (uint32_t)(b - a), TUNE_K, res);
			for (uint32_t r = 0; r < res->n; r++) {
				recs[r] = res->items[r].item;
				__atomic_store_n(&job->shown[recs[r]], 1, __ATOMIC_RELAXED);
			}
			const uint32_t *rel = s->rel + s->rel_off[u];
			uint32_t n_rel = (uint32_t)(s->rel_off[u + 1] - s->rel_off[u]);
			eval_totals t = { 0 };
			eval_add(&t, recs, res->n, rel, n_rel, TUNE_K);
			job->ndcg[u] = t.ndcg;
			job->recall[u] = t.recall;
		}
	}
	free(res);
	rec_ctx_free(ctx);
	return NULL;
}

void tune_score(const struct split *s, const struct fitted *f, const train_result *hist,
		const content_result *ct, const rec_params *knobs, uint32_t threads,
		double *ndcg, tune_candidate *c)
{
	double t0 = util_monotonic();
	uint32_t ni = f->r.n_items;
	struct score_job job = {
		.s = s, .hist = hist,
		/* as fit_options sets as_of: the recent history weight decays
		 * from the fit's own as-of time */
		.table = { f->r.nbrs, f->r.k, f->n_pos, f->r.n_neg, f->popular, ni,
			   ct ? ct->nbrs : NULL, ct ? ct->k : 0, ct ? ct->n_nbrs : NULL,
			   hist->popularity, s->sub.has_ts ? s->sub.ts_max : 0,
			   s->sub.has_ts ? c->half_life_days : 0 },
		.knobs = *knobs, .ndcg = ndcg,
		.recall = xmallocarray(s->n ? s->n : 1, sizeof(double)),
		.shown = xcalloc(ni ? ni : 1, 1),
	};
	util_run_parallel(MIN(threads, MAX(s->n / 256, 1u)), score_worker, &job);
	double sum = 0, sq = 0, rec = 0;
	for (uint32_t u = 0; u < s->n; u++) {
		sum += ndcg[u];
		sq += ndcg[u] * ndcg[u];
		rec += job.recall[u];
	}
	uint32_t covered = 0;
	for (uint32_t i = 0; i < ni; i++)
		covered += job.shown[i];
	double n = s->n ? s->n : 1;
	c->ndcg = sum / n;
	double var = s->n > 1 ? (sq - sum * sum / n) / (n - 1) : 0;
	c->ndcg_se = var > 0 ? sqrt(var / n) : 0;
	c->recall = rec / n;
	c->coverage = ni ? (double)covered / ni : 0;
	c->serve = *knobs;
	c->secs = f->secs + (util_monotonic() - t0);
	free(job.recall);
	free(job.shown);
}
