/*
 * tune: the validation split, the candidates' fits and scores, the search.
 * See tune.h for what is searched and why in that order; tune_record.c
 * writes and reads back what a run chose.
 *
 * The validation split is in tune_split.c, the candidates' fits and their
 * scoring in tune_score.c; what remains here is the search itself, whose
 * steps all work on one `struct search` (the split, the fitted models
 * shared between candidates, the budget clock, the one-standard-error
 * bookkeeping).
 */
#include "tune.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "model.h"
#include "timefmt.h"
#include "tune_internal.h"
#include "util.h"

#define TUNE_MAX_NEIGHBORS 1000u /* K the candidates keep (the flags' limit) */
#define TUNE_MAX_NEGATIVES 100u  /* negative weights they keep */
/* The candidates' neighbour tables stay under this (K is lowered to fit). */
#define TUNE_MAX_TABLE_BYTES (512ull << 20)
/* The split separates candidates when one differs from the defaults by
 * more than this many standard errors of the paired difference; when none
 * does, the defaults are kept. */
#define TUNE_NOISE_SE 2.0
/* The validation figures are too noisy to choose by when the defaults'
 * nDCG has a standard error above this share of itself (a 95% interval
 * wider than +-20%: 87 customers of the bundled demo sample give 17%,
 * Online Retail's 610 give 6%). */
#define TUNE_MAX_REL_SE 0.10
/* Within a step, candidates this many paired standard errors below the
 * step's best count as equal to it (the one-standard-error rule). */
#define TUNE_ONE_SE 1.0

static const double holdout_shares[] = { 0.10, 0.20, 0.30 };

/* ---- the search --------------------------------------------------------- */

/* One candidate of a step: its figures, its fit (an index into the step's
 * fits, or -1 for the best fit so far) and its nDCG per customer. */
struct entry {
	tune_candidate c;
	int fit;
	uint32_t idx;   /* in out->cands; UINT32_MAX: the incumbent */
	double *ndcg;   /* owned */
	double pref;    /* among equals, the higher is preferred */
};

#define STEP_MAX 24

struct step {
	struct entry e[STEP_MAX];
	uint32_t n;
	struct fitted fits[16];
	uint32_t n_fits;
};

struct search {
	const tune_options *opt;
	const struct split *s;
	tune_result *out;
	train_options base;  /* K and negatives for the candidates */
	uint32_t threads;
	double t0, budget;
	uint32_t cap;        /* room in out->cands */
	/* the best so far: its fit (owned), figures and per-customer nDCG */
	struct fitted best_fit;
	tune_candidate best;
	uint32_t best_idx;
	double *best_ndcg, *base_ndcg;
	double top, *top_ndcg; /* the highest nDCG seen, and per customer */
	bool separated;      /* some candidate differs from the defaults beyond noise */
	double fit_secs[ALGO_COUNT]; /* the last fit's seconds, per algorithm */
	double score_secs;           /* the last scoring's seconds */
	bool has_neg;                /* EASE candidates keep negatives */
	const content_result *content; /* the catalog's, for hybrid scoring; or NULL */
	uint32_t fit_gen;            /* bumped whenever best_fit changes */
	strbuf *err;
};

static double elapsed(const struct search *S)
{
	return util_monotonic() - S->t0;
}

/* Whether `secs` more fit in the budget; marks the result when not. */
static bool affordable(struct search *S, double secs)
{
	if (S->budget <= 0 || elapsed(S) + secs <= S->budget)
		return true;
	S->out->budget_hit = true;
	return false;
}

static void describe(FILE *f, const tune_candidate *c)
{
	fprintf(f, "%-8s", algo_name(c->algo));
	if (c->algo == ALGO_EASE)
		fprintf(f, " λ %-6g", (double)c->lambda);
	else
		fprintf(f, "         ");
	if (c->half_life_days > 0)
		fprintf(f, " half-life %6.1fd", c->half_life_days);
	else
		fprintf(f, " half-life   none");
	fprintf(f, " used %4u cutoff %-5g neg %3u history %-6s", c->serve.neighbors_used,
		(double)c->serve.cutoff, c->serve.negatives_used,
		rec_history_weight_name(c->serve.history_weight));
}

/* Mean and standard error of a[u] - b[u] over the n customers. */
static void paired(const double *a, const double *b, uint32_t n, double *mean, double *se)
{
	double sum = 0, sq = 0;
	for (uint32_t u = 0; u < n; u++) {
		double d = a[u] - b[u];
		sum += d;
		sq += d * d;
	}
	*mean = n ? sum / n : 0;
	double var = n > 1 ? (sq - sum * sum / n) / (n - 1) : 0;
	*se = var > 0 ? sqrt(var / n) : 0;
}

/* Appends candidate c to the table (and says so on a terminal). */
static uint32_t record(struct search *S, const tune_candidate *c)
{
	tune_result *out = S->out;
	if (out->n_cands == S->cap) {
		S->cap = S->cap ? 2 * S->cap : 32;
		out->cands = xreallocarray(out->cands, S->cap, sizeof(*out->cands));
	}
	uint32_t idx = out->n_cands++;
	out->cands[idx] = *c;
	if (S->opt->verbose) {
		fprintf(stderr, "tune %3u %-9s ", idx + 1, c->step);
		describe(stderr, c);
		fprintf(stderr, "  nDCG %.4f ±%.4f recall %.4f coverage %.3f %6.2fs\n", c->ndcg,
			c->ndcg_se, c->recall, c->coverage, c->secs);
	}
	return idx;
}

/* Options for candidate c's fit. */
static train_options fit_options(const struct search *S, const tune_candidate *c)
{
	train_options o = S->base;
	o.algo = c->algo;
	o.lambda = c->lambda;
	o.half_life_days = c->half_life_days;
	memcpy(o.event_weight, c->event_weight, sizeof(o.event_weight));
	o.negatives = c->algo == ALGO_EASE && S->has_neg ? S->base.negatives : 0;
	o.as_of = S->s->sub.has_ts ? S->s->sub.ts_max : S->base.as_of;
	o.content = false; /* computed once for the search (S->content) */
	return o;
}

/* Starts a step with the incumbent (the best so far) as its first entry. */
static void step_begin(struct search *S, struct step *st, double pref)
{
	memset(st, 0, sizeof(*st));
	struct entry *e = &st->e[st->n++];
	e->c = S->best;
	e->fit = -1;
	e->idx = UINT32_MAX;
	e->ndcg = xmallocarray(S->s->n, sizeof(double));
	memcpy(e->ndcg, S->best_ndcg, (size_t)S->s->n * sizeof(double));
	e->pref = pref;
}

static const struct fitted *entry_fit(const struct search *S, const struct step *st, int fit)
{
	return fit < 0 ? &S->best_fit : &st->fits[fit];
}

/* Scores candidate c on fit `fit` (of the step; -1: the best fit) at its
 * knobs, records it and adds it to the step. `fit_secs`: the fit's share
 * to count (0 for knobs tried on a fit already counted). */
static void step_score(struct search *S, struct step *st, int fit, tune_candidate c,
		       const char *step, double pref, double fit_secs)
{
	if (st->n == STEP_MAX)
		return;
	const struct fitted *f = entry_fit(S, st, fit);
	const train_result *hist = fit < 0 ? &S->best_fit.r : &st->fits[st->fits[fit].hist_fit].r;
	struct entry *e = &st->e[st->n++];
	e->ndcg = xmallocarray(S->s->n, sizeof(double));
	c.step = step;
	double t = util_monotonic();
	tune_score(S->s, f, hist, S->content, &c.serve, S->threads, e->ndcg, &c);
	S->score_secs = util_monotonic() - t;
	c.secs = fit_secs + S->score_secs;
	e->c = c;
	e->fit = fit;
	e->pref = pref;
	e->idx = record(S, &c);
	if (c.ndcg > S->top) {
		S->top = c.ndcg;
		memcpy(S->top_ndcg, e->ndcg, (size_t)S->s->n * sizeof(double));
	}
	double mean, se;
	paired(e->ndcg, S->base_ndcg, S->s->n, &mean, &se);
	S->separated |= fabs(mean) > TUNE_NOISE_SE * se && se > 0;
}

/* Ends a step: among the entries whose nDCG is within TUNE_ONE_SE paired
 * standard errors of the best seen in any step so far, the one preferred
 * (the highest pref, then the higher nDCG) becomes the best so far, as in
 * the one-standard-error rule: what the split cannot tell apart is decided
 * by which choice covers more of the catalog or serves cheaper, not by
 * noise.
 * Measuring from the best of all steps, not of this one, keeps the choices
 * from drifting a standard error further at every step. */
static void step_end(struct search *S, struct step *st)
{
	uint32_t pick = UINT32_MAX;
	for (uint32_t i = 0; i < st->n; i++) {
		double mean, se;
		paired(st->e[i].ndcg, S->top_ndcg, S->s->n, &mean, &se);
		if (!(mean >= -TUNE_ONE_SE * se))
			continue;
		const struct entry *e = &st->e[i];
		if (pick == UINT32_MAX || e->pref > st->e[pick].pref ||
		    (e->pref == st->e[pick].pref && e->c.ndcg > st->e[pick].c.ndcg))
			pick = i;
	}
	if (pick == UINT32_MAX) { /* none near the best: this step's best */
		pick = 0;
		for (uint32_t i = 1; i < st->n; i++)
			if (st->e[i].c.ndcg > st->e[pick].c.ndcg)
				pick = i;
	}
	struct entry *w = &st->e[pick];
	if (w->idx != UINT32_MAX) {
		S->best = w->c;
		S->best_idx = w->idx;
		memcpy(S->best_ndcg, w->ndcg, (size_t)S->s->n * sizeof(double));
		if (w->fit >= 0) {
			struct fitted *f = &st->fits[w->fit];
			if (!f->r.hist) { /* a lambda path's: take the histories along */
				struct fitted *h = &st->fits[f->hist_fit];
				f->r.hist_off = h->r.hist_off;
				f->r.hist = h->r.hist;
				f->r.popularity = h->r.popularity;
				f->r.recent = h->r.recent;
				h->r.hist_off = NULL;
				h->r.hist = NULL;
				h->r.popularity = NULL;
				h->r.recent = NULL;
			}
			tune_fitted_free(&S->best_fit);
			S->best_fit = *f;
			memset(f, 0, sizeof(*f));
			S->fit_gen++;
		}
	}
	for (uint32_t i = 0; i < st->n_fits; i++)
		tune_fitted_free(&st->fits[i]);
	for (uint32_t i = 0; i < st->n; i++)
		free(st->e[i].ndcg);
	memset(st, 0, sizeof(*st));
}

/* Fits the candidates cands[0..n) that differ only in lambda (EASE) or one
 * (any algorithm) into the step. Returns the index of the first fit, -2
 * when training refused a lambda (no candidate, not an error), or -1 with
 * a message in S->err. */
static int step_fit(struct search *S, struct step *st, const tune_candidate *cands, uint32_t n,
		    double *secs_each)
{
	train_options o = fit_options(S, &cands[0]);
	float lambdas[16];
	train_result more[15];
	assert(n >= 1 && n <= 16 && st->n_fits + n <= ARRAY_SIZE(st->fits));
	for (uint32_t l = 0; l < n; l++)
		lambdas[l] = cands[l].lambda;
	uint32_t first = st->n_fits;
	double t = util_monotonic();
	if (train_run_lambdas(&S->s->sub, &o, lambdas, n, &st->fits[first].r, more, S->err) != 0) {
		train_result_free(&st->fits[first].r);
		for (uint32_t l = 1; l < n; l++)
			train_result_free(&more[l - 1]);
		/* A lambda too small for the Cholesky factorisation is no
		 * candidate; anything else is the caller's. */
		if (o.algo == ALGO_EASE) {
			sb_reset(S->err);
			return -2;
		}
		return -1;
	}
	double secs = util_monotonic() - t;
	S->fit_secs[o.algo] = secs / n;
	*secs_each = secs / n;
	for (uint32_t l = 1; l < n; l++)
		st->fits[first + l].r = more[l - 1];
	for (uint32_t l = 0; l < n; l++) {
		tune_fitted_finish(&st->fits[first + l], &st->fits[first].r);
		st->fits[first + l].hist_fit = (int)first;
	}
	st->n_fits += n;
	return (int)first;
}

/* How much a request's scoring costs under knobs k, as a preference:
 * cheaper is higher (the neighbours and negatives walked; a cutoff stops
 * lists early). */
static double knob_pref(const rec_params *k)
{
	return -(double)(k->neighbors_used + k->negatives_used) + 100.0 * k->cutoff;
}

/* Hybrid scoring's blend (rec_params content_weight and content_count),
 * for a catalog with content tables: items first bought in the
 * validation period have no interactions in the split's training part,
 * so they are the new arrivals the blend is for. Among equals the smaller
 * weight is preferred (the answer closer to the collaborative one). */
static void search_blend(struct search *S)
{
	static const float weights[] = { 0.001f, 0.003f, 0.01f, 0.03f, 0.1f };
	static const float counts[] = { 0.0f, 2.0f, 10.0f };
	if (!S->content)
		return;
	struct step st;
	step_begin(S, &st, -S->best.serve.content_weight);
	for (size_t w = 0; w < ARRAY_SIZE(weights); w++)
		for (size_t k = 0; k < ARRAY_SIZE(counts); k++) {
			tune_candidate c = S->best;
			c.serve.content_weight = weights[w];
			c.serve.content_count = counts[k];
			if (!memcmp(&c.serve, &S->best.serve, sizeof(c.serve)) ||
			    !affordable(S, S->score_secs))
				continue;
			step_score(S, &st, -1, c, "blend", -c.serve.content_weight, 0);
		}
	step_end(S, &st);
}

/* The serving knobs on the best fit: first everything at once (all the
 * neighbours kept, no cutoff, with and without the negative weights: the
 * knobs matter together, and one at a time from the defaults' a long list
 * looks useless under a cutoff and a cutoff under a short list), then one
 * at a time from the best so far. Cheaper knobs are preferred among
 * equals (knob_pref). */
static void search_knobs(struct search *S)
{
	static const uint32_t used[] = { 10, 30, 100, 300, 1000 };
	static const float cutoffs[] = { 0.0f, 0.02f, 0.05f, 0.1f, 0.2f };
	static const uint32_t negs[] = { 0, 10, 30, 100 };
	unsigned pin = S->opt->pinned;
	uint32_t kmax = S->best_fit.r.k - S->best_fit.r.k_neg, kneg = S->best_fit.r.k_neg;
	struct step st;
	tune_candidate c;
	step_begin(S, &st, knob_pref(&S->best.serve));
	for (int neg = 0; neg < (kneg ? 2 : 1); neg++) {
		c = S->best;
		if (!(pin & TUNE_PIN_NEIGHBORS_USED))
			c.serve.neighbors_used = kmax;
		if (!(pin & TUNE_PIN_CUTOFF))
			c.serve.cutoff = 0;
		if (!(pin & TUNE_PIN_NEGATIVES))
			c.serve.negatives_used = neg ? kneg : 0;
		if (!memcmp(&c.serve, &S->best.serve, sizeof(c.serve)) || !affordable(S, S->score_secs))
			continue;
		step_score(S, &st, -1, c, "serving", knob_pref(&c.serve), 0);
	}
	step_end(S, &st);
	if (!(pin & TUNE_PIN_NEIGHBORS_USED)) {
		step_begin(S, &st, knob_pref(&S->best.serve));
		for (size_t i = 0; i < ARRAY_SIZE(used); i++) {
			uint32_t u = MIN(used[i], kmax);
			if (u == S->best.serve.neighbors_used || (i > 0 && MIN(used[i - 1], kmax) == u) ||
			    !affordable(S, S->score_secs))
				continue;
			c = S->best;
			c.serve.neighbors_used = u;
			step_score(S, &st, -1, c, "serving", knob_pref(&c.serve), 0);
		}
		step_end(S, &st);
	}
	if (!(pin & TUNE_PIN_CUTOFF)) {
		step_begin(S, &st, knob_pref(&S->best.serve));
		for (size_t i = 0; i < ARRAY_SIZE(cutoffs); i++) {
			if (cutoffs[i] == S->best.serve.cutoff || !affordable(S, S->score_secs))
				continue;
			c = S->best;
			c.serve.cutoff = cutoffs[i];
			step_score(S, &st, -1, c, "serving", knob_pref(&c.serve), 0);
		}
		step_end(S, &st);
	}
	if (!(pin & TUNE_PIN_NEGATIVES) && kneg) {
		step_begin(S, &st, knob_pref(&S->best.serve));
		for (size_t i = 0; i < ARRAY_SIZE(negs); i++) {
			uint32_t g = MIN(negs[i], kneg);
			if (g == S->best.serve.negatives_used || !affordable(S, S->score_secs))
				continue;
			c = S->best;
			c.serve.negatives_used = g;
			step_score(S, &st, -1, c, "serving", knob_pref(&c.serve), 0);
		}
		step_end(S, &st);
	}
	search_blend(S);
}

/* The history weight on the best fit (recommend.h, enum
 * rec_history_weight): serve-time, so one model scores them all. They cost
 * the same per request: among equals the higher nDCG is kept. */
static void search_history_weight(struct search *S)
{
	if (S->opt->pinned & TUNE_PIN_HISTORY_WEIGHT)
		return;
	struct step st;
	step_begin(S, &st, knob_pref(&S->best.serve));
	for (uint32_t w = 0; w < REC_HW_COUNT; w++) {
		if (w == S->best.serve.history_weight || !affordable(S, S->score_secs))
			continue;
		tune_candidate c = S->best;
		c.serve.history_weight = w;
		step_score(S, &st, -1, c, "history", knob_pref(&c.serve), 0);
	}
	step_end(S, &st);
}

/* The median gap, in days, between a customer's distinct purchase days,
 * over every customer with two or more; 0 when there is none. */
static double purchase_rhythm(const dataset *ds)
{
	size_t n = 0;
	struct pair *p = xmallocarray(ds->n_rows ? ds->n_rows : 1, sizeof(*p));
	for (size_t i = 0; i < ds->n_rows; i++) {
		const interaction *r = &ds->rows[i];
		if (r->event == EVENT_PURCHASE && r->quantity > 0)
			p[n++] = (struct pair){ r->customer, (uint32_t)(r->ts / 86400), 0 };
	}
	qsort(p, n, sizeof(*p), tune_by_pair);
	int64_t *gaps = xmallocarray(n ? n : 1, sizeof(*gaps));
	size_t ng = 0;
	for (size_t i = 1; i < n; i++)
		if (p[i].customer == p[i - 1].customer && p[i].item != p[i - 1].item)
			gaps[ng++] = (int64_t)p[i].item - p[i - 1].item;
	double med = 0;
	if (ng) {
		qsort(gaps, ng, sizeof(*gaps), tune_by_i64);
		med = (double)gaps[ng / 2];
	}
	free(gaps);
	free(p);
	return med;
}

/* Half-lives to try: none, and 1, 3 and 10 times the purchase rhythm,
 * within a day and twice the span, no two within a factor 1.5. */
static uint32_t half_lives(const dataset *sub, double out[5])
{
	uint32_t n = 0;
	out[n++] = 0;
	if (!sub->has_ts)
		return n;
	double span = (double)(sub->ts_max - sub->ts_min) / 86400.0;
	double g = purchase_rhythm(sub);
	if (!(g > 0))
		g = span / 10;
	const double mult[] = { 1, 3, 10 };
	for (size_t i = 0; i < ARRAY_SIZE(mult); i++) {
		double h = g * mult[i];
		h = MIN(MAX(h, 1.0), MAX(2 * span, 1.0));
		h = round(h * 10) / 10;
		bool near = false;
		for (uint32_t j = 1; j < n; j++)
			near |= h < out[j] * 1.5 && out[j] < h * 1.5;
		if (!near)
			out[n++] = h;
	}
	return n;
}

static tune_candidate candidate_from(const train_options *o, const rec_params *k)
{
	tune_candidate c = { 0 };
	c.algo = o->algo;
	c.lambda = o->lambda > 0 ? o->lambda : TRAIN_DEFAULT_LAMBDA;
	c.half_life_days = o->half_life_days;
	memcpy(c.event_weight, o->event_weight, sizeof(c.event_weight));
	c.serve = *k;
	return c;
}

/* Fits and scores the candidates cands[0..n) (one fit, or one lambda path)
 * in step st at the best knobs so far. Returns 0 or -1. */
static int fit_into(struct search *S, struct step *st, tune_candidate *cands, uint32_t n,
		    const char *name, double (*pref)(const tune_candidate *))
{
	double secs;
	int first = step_fit(S, st, cands, n, &secs);
	if (first == -1)
		return -1;
	for (uint32_t l = 0; first >= 0 && l < n; l++) {
		tune_candidate c = cands[l];
		c.serve = S->best.serve;
		if (c.algo != ALGO_EASE)
			c.serve.negatives_used = 0;
		step_score(S, st, first + (int)l, c, name, pref(&c), secs);
	}
	return 0;
}

/* Among half-lives or lambdas the split cannot tell apart, the one that
 * recommends more of the catalog: at equal accuracy a shop is better
 * served by answers that are not all its best sellers. (A longer
 * half-life and a smaller lambda usually are that one: the popular items
 * of the last weeks weigh less.) */
static double pref_coverage(const tune_candidate *c)
{
	return c->coverage;
}

static double pref_none(const tune_candidate *c)
{
	(void)c;
	return 0;
}

static int search_run(struct search *S)
{
	const tune_options *opt = S->opt;
	unsigned pin = opt->pinned;
	struct step st;
	tune_candidate c;

	/* 1. The defaults (or the flags given): the baseline. */
	rec_params dk;
	rec_params_init(&dk);
	dk.negatives_used = 0;
	if (pin & TUNE_PIN_NEIGHBORS_USED)
		dk.neighbors_used = opt->serve.neighbors_used;
	if (pin & TUNE_PIN_CUTOFF)
		dk.cutoff = opt->serve.cutoff;
	if (pin & TUNE_PIN_HISTORY_WEIGHT)
		dk.history_weight = opt->serve.history_weight;
	c = candidate_from(&S->base, &dk);
	double secs;
	memset(&st, 0, sizeof(st));
	if (step_fit(S, &st, &c, 1, &secs) < 0) {
		step_end(S, &st);
		return -1;
	}
	c.step = "defaults";
	st.e[0].ndcg = xmallocarray(S->s->n, sizeof(double));
	tune_score(S->s, &st.fits[0], &st.fits[0].r, S->content, &dk, S->threads, st.e[0].ndcg, &c);
	S->score_secs = c.secs - st.fits[0].secs;
	c.secs = secs + S->score_secs;
	st.e[0].c = c;
	st.e[0].idx = record(S, &c);
	st.n = 1;
	memcpy(S->base_ndcg, st.e[0].ndcg, (size_t)S->s->n * sizeof(double));
	memcpy(S->top_ndcg, st.e[0].ndcg, (size_t)S->s->n * sizeof(double));
	S->top = c.ndcg;
	step_end(S, &st); /* the baseline is the best so far */
	if (S->budget <= 0)
		S->budget = TUNE_BUDGET_FITS * (opt->setup_secs + S->out->cands[0].secs);
	S->budget = MAX(S->budget, TUNE_MIN_BUDGET);
	if (opt->budget > 0)
		S->budget = opt->budget;
	S->out->budget = S->budget;
	/* Too noisy to choose by: no search (tune_run says why). */
	if (c.ndcg <= 0 || c.ndcg_se / c.ndcg > TUNE_MAX_REL_SE)
		return 0;

	/* 2. The serving knobs of the baseline model. */
	search_history_weight(S);
	search_knobs(S);
	uint32_t knobs_gen = S->fit_gen;

	/* 3. Half-life, at the best lambda and algorithm so far. */
	if (!(pin & TUNE_PIN_HALF_LIFE)) {
		double hl[5];
		uint32_t n = half_lives(&S->s->sub, hl);
		step_begin(S, &st, S->best.coverage);
		double start = S->best.half_life_days;
		for (uint32_t i = 0; i < n; i++) {
			if (hl[i] == start || !affordable(S, S->fit_secs[S->best.algo] + S->score_secs))
				continue;
			c = S->best;
			c.half_life_days = hl[i];
			if (fit_into(S, &st, &c, 1, "half-life", pref_coverage) != 0)
				goto fail;
		}
		step_end(S, &st);
	}

	/* 4. Lambda, coarse (x4 either way) then fine (x2 around the better),
	 * each pair on one Gram matrix. */
	for (int round = 0; round < 2 && S->best.algo == ALGO_EASE && !(pin & TUNE_PIN_LAMBDA);
	     round++) {
		float center = S->best.lambda, f = round == 0 ? 4.0f : 2.0f;
		tune_candidate cs[2] = { S->best, S->best };
		cs[0].lambda = center / f;
		cs[1].lambda = center * f;
		double cost = S->fit_secs[ALGO_EASE] * 2 + S->score_secs * 2;
		if (!affordable(S, cost))
			break;
		step_begin(S, &st, S->best.coverage);
		if (fit_into(S, &st, cs, 2, "lambda", pref_coverage) != 0)
			goto fail;
		step_end(S, &st);
	}

	/* 5. The other algorithms, at the best half-life; lift only stays if
	 * it wins. */
	if (!(pin & TUNE_PIN_ALGO)) {
		const enum algo others[] = { ALGO_EASE, ALGO_COSINE, ALGO_JACCARD, ALGO_LIFT };
		tune_candidate from = S->best;
		step_begin(S, &st, 0);
		for (size_t i = 0; i < ARRAY_SIZE(others); i++) {
			if (others[i] == from.algo)
				continue;
			double cost = (S->fit_secs[others[i]] > 0 ? S->fit_secs[others[i]]
								  : S->fit_secs[from.algo]) +
				      S->score_secs;
			if (!affordable(S, cost))
				continue;
			c = from;
			c.algo = others[i];
			c.lambda = others[i] == ALGO_EASE ? TRAIN_DEFAULT_LAMBDA : from.lambda;
			if (fit_into(S, &st, &c, 1, "algorithm", pref_none) != 0)
				goto fail;
		}
		step_end(S, &st);
	}

	/* 6. Event weights, when views or carts are there to weigh. */
	bool others_seen = false;
	for (size_t i = 0; i < S->s->sub.n_rows && !others_seen; i++)
		others_seen = S->s->sub.rows[i].event != EVENT_PURCHASE;
	if (others_seen && !(pin & TUNE_PIN_WEIGHTS)) {
		/* x5 reaches the cap: every event as much as a purchase, the
		 * binary matrix of plain EASE (with the binary history weight,
		 * --no-tune on the four generated logs of bench/README.md:
		 * -0.002 to +0.004 nDCG@10 against the default weights). */
		const float scale[] = { 0.25f, 2.0f, 5.0f };
		tune_candidate from = S->best;
		step_begin(S, &st, 0);
		for (size_t i = 0; i < ARRAY_SIZE(scale); i++) {
			if (!affordable(S, S->fit_secs[from.algo] + S->score_secs))
				break;
			c = from;
			c.event_weight[EVENT_VIEW] = MIN(from.event_weight[EVENT_VIEW] * scale[i], 1.0f);
			c.event_weight[EVENT_CART] = MIN(from.event_weight[EVENT_CART] * scale[i], 1.0f);
			if (fit_into(S, &st, &c, 1, "weights", pref_none) != 0)
				goto fail;
		}
		step_end(S, &st);
	}

	/* 7. The serving knobs of the winner, if it is another model. */
	if (S->fit_gen != knobs_gen) {
		search_history_weight(S);
		search_knobs(S);
	}
	return 0;
fail:
	step_end(S, &st);
	return -1;
}

/* ---- the public face ---------------------------------------------------- */

/* `def`, or the lower value environment variable `name` gives, at least
 * `min`: the tests lower TUNE_MAX_CUSTOMERS and TUNE_SEARCH_EASE_ITEMS
 * (SHOPKEEPER_TUNE_MAX_CUSTOMERS, SHOPKEEPER_TUNE_SEARCH_EASE_ITEMS) to
 * reach the large-data rules on small data. */
static uint32_t env_limit(const char *name, uint32_t def, uint32_t min)
{
	const char *v = getenv(name);
	char *end = NULL;
	unsigned long n = v && *v ? strtoul(v, &end, 10) : 0;
	if (!n || *end || n > def)
		return def;
	return (uint32_t)MAX(n, (unsigned long)min);
}

static void set_defaults_kept(tune_result *out, const train_options *base)
{
	out->tuned = false;
	out->best = 0;
	out->chosen = *base;
	rec_params_init(&out->serve);
}

int tune_run(const dataset *ds, const train_options *base, const tune_options *opt,
	     tune_result *out, strbuf *err)
{
	memset(out, 0, sizeof(*out));
	double t0 = util_monotonic();
	set_defaults_kept(out, base);
	struct split s = { 0 };
	uint32_t got = 0;

	/* The split: by time when there are days to split, else random. */
	int64_t *days = xmallocarray(ds->n_rows ? ds->n_rows : 1, sizeof(*days));
	size_t n_days = 0;
	for (size_t i = 0; ds->has_ts && i < ds->n_rows; i++)
		days[n_days++] = ds->rows[i].ts / 86400;
	qsort(days, n_days, sizeof(*days), tune_by_i64);
	size_t u = 0;
	for (size_t i = 0; i < n_days; i++)
		if (u == 0 || days[u - 1] != days[i])
			days[u++] = days[i];
	n_days = u;
	if (n_days >= 2) {
		/* The first share with enough customers, else the one with the
		 * most (the smaller on a tie). */
		out->by_time = true;
		size_t pick = 0;
		uint32_t most = 0;
		for (size_t i = 0; i < ARRAY_SIZE(holdout_shares); i++) {
			tune_split_free(&s);
			got = tune_split_by_time(ds, days, n_days, holdout_shares[i], &s, &out->cut);
			if (got > most || i == 0) {
				most = got;
				pick = i;
			}
			if (got >= TUNE_WANT_CUSTOMERS)
				break;
		}
		if (got < most) {
			tune_split_free(&s);
			got = tune_split_by_time(ds, days, n_days, holdout_shares[pick], &s, &out->cut);
		}
		out->holdout_share = holdout_shares[pick];
	} else {
		got = tune_split_random(ds, &s);
		out->holdout_share = 0.2;
	}
	free(days);
	out->train_rows = s.sub.n_rows;
	out->eligible = got;
	got = tune_split_sample(&s, env_limit("SHOPKEEPER_TUNE_MAX_CUSTOMERS", TUNE_MAX_CUSTOMERS,
						  TUNE_MIN_CUSTOMERS));
	out->customers = got;

	int ret = 0;
	if (got < TUNE_MIN_CUSTOMERS) {
		snprintf(out->reason, sizeof(out->reason),
			 "kept the defaults: %u customers bought something new in the validation "
			 "split, fewer than the %d needed to tell candidates apart", got,
			 TUNE_MIN_CUSTOMERS);
		goto done;
	}

	struct search S = { .opt = opt, .s = &s, .out = out, .base = *base, .t0 = t0,
			    .budget = opt->budget, .err = err };
	S.threads = base->threads;
	if (!S.threads) {
		long nc = sysconf(_SC_NPROCESSORS_ONLN);
		S.threads = (uint32_t)MAX(nc, 1);
	}
	uint32_t ni = idmap_count(ds->items);
	uint64_t kmax = TUNE_MAX_TABLE_BYTES / ((uint64_t)MAX(ni, 1u) * sizeof(neighbor));
	S.base.neighbors = (uint32_t)MIN(MIN(kmax, (uint64_t)TUNE_MAX_NEIGHBORS),
					 (uint64_t)MAX(ni, 2u) - 1);
	S.base.neighbors = MAX(S.base.neighbors, MIN(base->neighbors, (uint32_t)kmax));
	S.base.negatives = MIN(TUNE_MAX_NEGATIVES, S.base.neighbors);
	/* Large catalogs: the search's EASE fits over fewer items (tune.h). */
	uint32_t ease_max = base->ease_max_items ? base->ease_max_items
						 : TRAIN_DEFAULT_EASE_MAX_ITEMS;
	S.base.ease_max_items = MIN(ease_max, env_limit("SHOPKEEPER_TUNE_SEARCH_EASE_ITEMS",
							 TUNE_SEARCH_EASE_ITEMS, 2));
	out->search_ease_items = ni > S.base.ease_max_items && ease_max > S.base.ease_max_items
				     ? S.base.ease_max_items : 0;
	S.has_neg = !(opt->pinned & TUNE_PIN_NEGATIVES) || opt->serve.negatives_used > 0;
	S.best_ndcg = xmallocarray(got, sizeof(double));
	S.base_ndcg = xmallocarray(got, sizeof(double));
	S.top_ndcg = xmallocarray(got, sizeof(double));
	/* The catalog's content neighbours, once: they do not depend on the
	 * interactions, so every candidate shares them. */
	content_result content;
	memset(&content, 0, sizeof(content));
	if (base->content) {
		int crc = content_train(ds, &base->content_opt, &content, err);
		if (crc < 0) {
			ret = -1;
			goto searched;
		}
		S.content = crc == 0 ? &content : NULL;
	}
	ret = search_run(&S);
searched:
	if (ret == 0) {
		/* Paired: the winner against the defaults, customer by customer. */
		double gain, se;
		paired(S.best_ndcg, S.base_ndcg, got, &gain, &se);
		const tune_candidate *d = &out->cands[0];
		double rel_se = d->ndcg > 0 ? d->ndcg_se / d->ndcg : 1;
		if (rel_se > TUNE_MAX_REL_SE) {
			snprintf(out->reason, sizeof(out->reason),
				 "kept the defaults: on %u customers their nDCG@10 %.4f has a standard "
				 "error of %.0f%% of itself, too noisy to choose by (over %.0f%%)", got,
				 d->ndcg, 100 * rel_se, 100 * TUNE_MAX_REL_SE);
		} else if (!S.separated) {
			snprintf(out->reason, sizeof(out->reason),
				 "kept the defaults: no candidate's nDCG@10 differed from theirs by more "
				 "than %.0f standard errors on %u customers (best %+.4f, standard error "
				 "%.4f)", TUNE_NOISE_SE, got, gain, se);
		} else {
			const tune_candidate *b = &S.best;
			out->tuned = true;
			out->best = S.best_idx;
			out->chosen.algo = b->algo;
			out->chosen.lambda = b->lambda;
			out->chosen.half_life_days = b->half_life_days;
			memcpy(out->chosen.event_weight, b->event_weight, sizeof(b->event_weight));
			/* Keep what serving will use: K at least the default. */
			uint32_t used = b->serve.neighbors_used;
			out->chosen.neighbors = MAX(used, base->neighbors);
			out->chosen.negatives = b->algo == ALGO_EASE ? b->serve.negatives_used : 0;
			out->serve = b->serve;
			out->serve.negatives_used = REC_DEFAULT_NEGATIVES_USED;
			/* The split separates candidates (some differ from the
			 * defaults beyond noise), but the winner may still sit
			 * within noise of the defaults: chosen by the
			 * one-standard-error rule for coverage or a cheaper
			 * request, not for a gain. Say so rather than let a
			 * lower figure read as a loss. */
			bool inside = !(fabs(gain) > TUNE_NOISE_SE * se);
			snprintf(out->reason, sizeof(out->reason),
				 "nDCG@10 %.4f against %.4f for the defaults (%+.4f, standard error of "
				 "the difference %.4f) on %u customers%s",
				 b->ndcg, out->cands[0].ndcg, gain, se, got,
				 inside ? "; inside the noise: preferred for coverage or cost" : "");
		}
	}
	tune_fitted_free(&S.best_fit);
	content_result_free(&content);
	free(S.best_ndcg);
	free(S.base_ndcg);
	free(S.top_ndcg);
done:
	tune_split_free(&s);
	out->secs = util_monotonic() - t0;
	return ret;
}

void tune_result_free(tune_result *r)
{
	if (!r)
		return;
	free(r->cands);
	free((char *)r->from_model);
	memset(r, 0, sizeof(*r));
}
