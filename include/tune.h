/*
 * tune: the trainer chooses its own parameters on a validation split of the
 * shop's own training data.
 *
 * Split: with timestamps, the purchases of the last 10% of days are held
 * out (20%, then 30%, when fewer than TUNE_WANT_CUSTOMERS customers bought
 * something new in them); candidates train on the rows before that day and
 * are scored as `eval` scores (nDCG@10 over the customers with later
 * purchases of items they had not bought, through recommend.c's own scoring).
 * Without timestamps (or all on one day): a random, seeded per-customer
 * holdout of a fifth of each customer's purchased items (customers with
 * three or more).
 *
 * Search, coordinate descent, cheapest and most telling first, each step
 * from the best so far:
 *   1. the documented defaults (the baseline);
 *   2. the history weight (recommend.h: how much each history item counts),
 *      then the serving knobs (neighbours used, cutoff, negative weights used):
 *      they need no retraining: the candidates keep many neighbours (K up
 *      to 1000) and EASE's 100 strongest negative weights, and are scored
 *      with fewer. All of them at once first (every neighbour, no cutoff,
 *      with and without negatives), then one at a time;
 *   3. half-life: none, and 1, 3 and 10 times the data's own purchase
 *      rhythm (the median gap between a customer's purchase days), never
 *      fixed day counts;
 *   4. EASE's lambda on a log grid, coarse (x4 either way) then fine (x2),
 *      each pair on one Gram matrix (train_run_lambdas);
 *   5. the other algorithms (cosine, jaccard, lift) at the best half-life;
 *   6. event weights (views and carts x0.25, x2 and x5, at most the
 *      purchase's 1), when there are any;
 *   7. the history weight and the serving knobs again, on the winner.
 * A step that would overrun the budget is left out (and the result says
 * so).
 *
 * Choosing within a step: the one-standard-error rule. Candidates whose
 * nDCG is within one standard error (paired, customer by customer) of the
 * best seen so far count as equal; among them the step prefers the one
 * that covers more of the catalog (half-life, lambda: at equal accuracy,
 * answers that are not all best sellers) or serves cheaper (the knobs:
 * fewer neighbours walked per request). So noise does not decide, and the
 * choice does not drift, step by step, away from the best.
 *
 * Small data: with fewer than TUNE_MIN_CUSTOMERS validation customers,
 * when the defaults' nDCG has a standard error above a tenth of itself
 * (too noisy to choose by), or when no candidate differs from the defaults
 * by more than two standard errors (the split cannot separate candidates),
 * the documented defaults are kept and the record says why.
 */
#ifndef SHOPKEEPER_TUNE_H
#define SHOPKEEPER_TUNE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ingest.h"
#include "recommend.h"
#include "strbuf.h"
#include "train.h"

/* Fewer validation customers than this cannot separate candidates. */
#define TUNE_MIN_CUSTOMERS 50
/* The held-out share grows (10%, 20%, 30% of days) until this many. */
#define TUNE_WANT_CUSTOMERS 200
/* Above this many validation customers, a fixed sample of this many is
 * scored (chosen by a seeded hash, so the same data gives the same one).
 * On the 10M-interaction generated set (537,530 validation customers,
 * bench/README.md) the standard error of nDCG@10 went from 0.0004 to
 * 0.0012, far below the differences that decide there (0.01-0.03), and a
 * serving candidate's scoring from 8-100 s to 1-16 s. The environment
 * variable SHOPKEEPER_TUNE_MAX_CUSTOMERS lowers it (for tests). */
#define TUNE_MAX_CUSTOMERS 50000u
/* The search's EASE candidates are fitted over at most this many of the
 * most popular items (the final fit over --ease-max-items, 20,000 by
 * default): the inverse costs the cube of it, so 10,000 items cost an
 * eighth of 20,000 (a half-life refit with its scoring, on the 10M set of
 * bench/README.md: 24-43 s against 118-173 s, loaded machine). The
 * parameters the search compares (lambda, half-life, the serving knobs)
 * are decided mostly by the popular items most recommendations come from:
 * there the chosen model scored 0.1822 on validation against 0.1806 with
 * the whole-size search. Smaller catalogs are fitted whole.
 * SHOPKEEPER_TUNE_SEARCH_EASE_ITEMS lowers it (for tests). */
#define TUNE_SEARCH_EASE_ITEMS 10000u
/* The default budget: this many times what one plain fit costs (the
 * ingest and the first candidate's fit and scoring)... */
#define TUNE_BUDGET_FITS 5.0
/* ...but never less than this many seconds: on data the size of Online
 * Retail the whole search fits (15-20 s on two cores), so its result does
 * not depend on how busy the machine was; the budget binds on large
 * catalogs only. */
#define TUNE_MIN_BUDGET 60.0

/* Parameters the caller fixed (flags given): the search leaves them. */
enum {
	TUNE_PIN_ALGO = 1u << 0,
	TUNE_PIN_LAMBDA = 1u << 1,
	TUNE_PIN_HALF_LIFE = 1u << 2,
	TUNE_PIN_WEIGHTS = 1u << 3,
	TUNE_PIN_NEIGHBORS_USED = 1u << 4,
	TUNE_PIN_CUTOFF = 1u << 5,
	TUNE_PIN_NEGATIVES = 1u << 6,
	TUNE_PIN_HISTORY_WEIGHT = 1u << 7,
};

typedef struct tune_options {
	double budget;      /* seconds for the search; 0: TUNE_BUDGET_FITS x
			     * (setup_secs + the first candidate's seconds) */
	double setup_secs;  /* what one plain fit pays besides training (ingest) */
	unsigned pinned;    /* TUNE_PIN_* */
	rec_params serve;   /* pinned serving knobs' values */
	bool verbose;       /* one line per candidate on stderr */
} tune_options;

/* One candidate tried: its parameters and validation figures. */
typedef struct tune_candidate {
	const char *step;   /* "defaults", "serving", "half-life", ... (static) */
	enum algo algo;
	float lambda;
	double half_life_days;
	float event_weight[EVENT_TYPES];
	rec_params serve;
	double ndcg, ndcg_se, recall, coverage;
	double secs;        /* training (shared fits split evenly) + scoring */
} tune_candidate;

typedef struct tune_result {
	bool tuned;          /* false: the defaults were kept (see reason) */
	char reason[256];    /* one sentence for people */
	/* the split */
	bool by_time;        /* false: random per-customer holdout */
	double holdout_share; /* of days (by time) or of items (random) */
	int64_t cut;         /* by time: first held-out second */
	uint64_t train_rows;
	uint32_t search_ease_items; /* EASE's item cap in the search when it
				    * was below the catalog, else 0 */
	uint32_t customers;  /* validation customers scored */
	uint32_t eligible;   /* customers with later purchases (the scored ones
			      * a sample of them above TUNE_MAX_CUSTOMERS) */
	/* the search */
	tune_candidate *cands;
	uint32_t n_cands, best; /* best: the winner (0, the defaults, if kept) */
	double secs, budget;
	bool budget_hit;     /* some steps were left out */
	/* the choice: train the final model with these */
	train_options chosen; /* base options with the chosen fields */
	rec_params serve;     /* the serving knobs */
	const char *from_model; /* --params-from: the model id (owned), else NULL */
} tune_result;

/* Searches, as above, on ds (the caller's whole training data; borrowed),
 * starting from `base` (the defaults or the flags given) and opt. *out is
 * filled in any case that returns 0, possibly with the defaults kept.
 * Returns 0, or -1 with a message in *err when a candidate cannot be
 * trained at all (what train_run would refuse). The caller frees *out with
 * tune_result_free(). */
int tune_run(const dataset *ds, const train_options *base, const tune_options *opt,
	     tune_result *out, strbuf *err);

/* Reads what model DIR was trained with (its tuning choice when it has
 * one, else its parameters) into *out: chosen and serve set, no
 * candidates, tuned true, from_model its id. Fields of `base` pinned by
 * opt->pinned are kept. Returns 0, or -1 with a message in *err (no model,
 * unreadable meta). */
int tune_from_model(const char *dir, const train_options *base, const tune_options *opt,
		    tune_result *out, strbuf *err);

/* tune_result_free(NULL) does nothing. */
void tune_result_free(tune_result *r);

/* The record the model's meta keeps under "tuning" (a new reference):
 *   {"status": "tuned"|"defaults"|"params-from", "reason",
 *    "split": {"kind": "time"|"random", "holdout_share", "cut"?,
 *              "train_rows", "customers"},
 *    "chosen": {"algorithm", "lambda", "half_life_days", "event_weights",
 *               "negatives"},
 *    "serving": {"neighbors_used", "cutoff", "negatives_used",
 *                "history_weight"},
 *    "candidates": [{"step", "algorithm", "lambda", "half_life_days",
 *                    "event_weights", "neighbors_used", "cutoff",
 *                    "negatives_used", "history_weight", "ndcg", "ndcg_se", "recall",
 *                    "coverage", "seconds"}],
 *    "seconds", "budget_seconds", "budget_hit", "from_model"?} */
json_t *tune_result_json(const tune_result *r);

/* The candidates as a table, the winner marked, and the choice, for
 * people (train's summary). */
void tune_print(const tune_result *r, FILE *f);

#endif
