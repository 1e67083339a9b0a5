/*
 * train_hist: phase 1 of training. Rows are grouped by customer, repeats
 * of the same item folded into one history entry (most recent first), and
 * X's values computed with the event weights and the time decay, customers
 * split between threads. See train.c for the phases after it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"
#include "train_internal.h"
#include "util.h"

/* Most recent first, then by item index: the order histories are stored in,
 * so a reader that wants the latest N takes the first N. */
static int recent_first(const void *a, const void *b)
{
	const history_entry *x = a, *y = b;
	if (x->last_ts != y->last_ts)
		return x->last_ts > y->last_ts ? -1 : 1;
	return x->item < y->item ? -1 : x->item > y->item;
}

/* Older events count less: 2^(-age / half-life), `rate` being ln 2 over the
 * half-life in seconds (0: no decay). Events after as_of count fully; the
 * floor keeps a very old event from vanishing to 0 in single precision. */
static float decay_factor(double rate, int64_t age)
{
	if (rate <= 0 || age <= 0)
		return 1.0f;
	double d = exp(-rate * (double)age);
	return d > 1e-6 ? (float)d : 1e-6f;
}

/* Per history entry while folding one customer's rows. */
struct fold {
	float purchase_aff; /* decayed weight of purchase rows */
	float other_aff;    /* decayed weight of view/cart rows */
	float other_max;    /* strongest view/cart weight */
};

/* A history entry with its value in X, sorted together. */
struct entry_x {
	history_entry e; /* first member: recent_first() compares it */
	float x;
};

/* Work shared by the threads folding histories: customer c's rows are
 * order[start[c] .. start[c+1]); its entries go to hist and x from
 * start[c] on (a customer has no more entries than rows), their number to
 * count[c]; a serial pass then closes the gaps. */
struct hist_job {
	const dataset *ds;
	const train_options *opt;
	const float *w;
	double decay;           /* ln 2 / half-life in seconds, or 0 */
	const uint64_t *start;  /* n_customers + 1 */
	const uint64_t *order;  /* row numbers grouped by customer, file order */
	history_entry *hist;
	float *x;
	uint32_t *count;
	uint32_t n_customers, n_items;
	uint64_t longest;       /* most rows of one customer */
	uint32_t next;          /* next customer to hand out (atomic) */
};

static void fold_customer(struct hist_job *job, uint32_t c, uint64_t *slot, uint32_t *owner,
			  struct fold *fold, struct entry_x *tmp)
{
	const train_options *opt = job->opt;
	const float *w = job->w;
	uint64_t base = job->start[c], n = 0;
	history_entry *h = job->hist + base;
	for (uint64_t k = base; k < job->start[c + 1]; k++) {
		const interaction *row = &job->ds->rows[job->order[k]];
		history_entry *e;
		struct fold *f;
		if (owner[row->item] != c) {
			owner[row->item] = c;
			slot[row->item] = n;
			f = &fold[n];
			memset(f, 0, sizeof(*f));
			e = &h[n++];
			memset(e, 0, sizeof(*e));
			e->item = row->item;
			e->last_ts = row->ts;
		} else {
			e = &h[slot[row->item]];
			f = &fold[slot[row->item]];
		}
		if (row->ts > e->last_ts)
			e->last_ts = row->ts;
		float d = decay_factor(job->decay, opt->as_of - row->ts);
		if (row->event == EVENT_PURCHASE) {
			e->quantity += row->quantity;
			if (row->quantity < 0)
				e->flags |= HIST_RETURNED;
			else
				f->purchase_aff += w[EVENT_PURCHASE] * d;
		} else {
			f->other_aff += w[row->event] * d;
			if (w[row->event] > f->other_max)
				f->other_max = w[row->event];
		}
	}
	/* A purchase returned in full is history, not taste. */
	for (uint64_t k = 0; k < n; k++) {
		history_entry *e = &h[k];
		const struct fold *f = &fold[k];
		bool bought = e->quantity > 0;
		if (bought)
			e->flags |= HIST_PURCHASED;
		/* Repeats count, with diminishing returns: a wholesaler's
		 * fiftieth order of an item should not drown the rest. */
		e->weight = sqrtf((bought ? f->purchase_aff : 0.0f) + f->other_aff);
		/* X: the strongest event, decayed by the latest one, so
		 * similarities follow what sells together lately. */
		float xv = bought ? MAX(w[EVENT_PURCHASE], f->other_max) : f->other_max;
		tmp[k].e = *e;
		tmp[k].x = xv * decay_factor(job->decay, opt->as_of - e->last_ts);
	}
	if (n > 1)
		qsort(tmp, n, sizeof(*tmp), recent_first);
	for (uint64_t k = 0; k < n; k++) {
		h[k] = tmp[k].e;
		job->x[base + k] = tmp[k].x;
	}
	job->count[c] = (uint32_t)n;
}

static void *hist_worker(void *arg)
{
	struct hist_job *job = arg;
	uint32_t ni = job->n_items ? job->n_items : 1;
	/* slot[item]: position of item in the current customer's history,
	 * valid when owner[item] is that customer. */
	uint64_t *slot = xmallocarray(ni, sizeof(*slot));
	uint32_t *owner = xmallocarray(ni, sizeof(*owner));
	memset(owner, 0xff, (size_t)ni * sizeof(*owner));
	size_t longest = job->longest ? job->longest : 1;
	struct fold *fold = xmallocarray(longest, sizeof(*fold));
	struct entry_x *tmp = xmallocarray(longest, sizeof(*tmp));
	const uint32_t chunk = 1024;
	for (;;) {
		uint32_t c0 = __atomic_fetch_add(&job->next, chunk, __ATOMIC_RELAXED);
		if (c0 >= job->n_customers)
			break;
		uint32_t c1 = (uint32_t)MIN((uint64_t)c0 + chunk, (uint64_t)job->n_customers);
		for (uint32_t c = c0; c < c1; c++)
			fold_customer(job, c, slot, owner, fold, tmp);
	}
	free(tmp);
	free(fold);
	free(owner);
	free(slot);
	return NULL;
}

float *train_build_histories(const dataset *ds, const train_options *opt, const float w[3],
			      uint32_t threads, train_result *r)
{
	uint32_t nc = r->n_customers, ni = r->n_items;
	size_t nrows = ds->n_rows ? ds->n_rows : 1;
	uint64_t *start = xcalloc((size_t)nc + 1, sizeof(*start));
	uint64_t *order = train_big_alloc(nrows, sizeof(*order));

	/* Counting sort of row numbers by customer, stable in file order:
	 * start[c + 1] counts, then start[c] is where c begins and is bumped
	 * while filling, ending where c + 1 begins; one shift restores it. */
	for (size_t i = 0; i < ds->n_rows; i++)
		start[ds->rows[i].customer + 1]++;
	uint64_t longest = 0;
	for (uint32_t c = 0; c < nc; c++) {
		longest = MAX(longest, start[c + 1]);
		start[c + 1] += start[c];
	}
	for (size_t i = 0; i < ds->n_rows; i++)
		order[start[ds->rows[i].customer]++] = i;
	memmove(start + 1, start, (size_t)nc * sizeof(*start));
	start[0] = 0;

	r->hist = train_big_alloc(nrows, sizeof(*r->hist));
	float *x = train_big_alloc(nrows, sizeof(*x));
	uint32_t *count = xmallocarray(nc ? nc : 1, sizeof(*count));
	/* ln 2 / half-life in seconds; 0 disables decay, as does data without
	 * timestamps (every row at time 0 would look ancient). */
	double decay = opt->half_life_days > 0 && ds->has_ts
			       ? log(2.0) / (opt->half_life_days * 86400.0)
			       : 0;
	struct hist_job job = { .ds = ds, .opt = opt, .w = w, .decay = decay, .start = start,
				.order = order, .hist = r->hist, .x = x, .count = count,
				.n_customers = nc, .n_items = ni, .longest = longest };
	util_run_parallel(MIN(threads, MAX(nc / 4096, 1u)), hist_worker, &job);
	free(order);

	/* Close the gaps, in customer order (so the sums below come out the
	 * same whatever the threads did), counting popularity on the way. */
	r->hist_off = xmallocarray((size_t)nc + 1, sizeof(*r->hist_off));
	r->popularity = xcalloc(ni ? ni : 1, sizeof(*r->popularity));
	r->recent = xcalloc(ni ? ni : 1, sizeof(*r->recent));
	uint64_t out = 0;
	for (uint32_t c = 0; c < nc; c++) {
		r->hist_off[c] = out;
		if (out != start[c]) {
			memmove(r->hist + out, r->hist + start[c], count[c] * sizeof(*r->hist));
			memmove(x + out, x + start[c], count[c] * sizeof(*x));
		}
		for (uint64_t k = out; k < out + count[c]; k++) {
			if (x[k] > 0) {
				r->popularity[r->hist[k].item] += 1.0f;
				r->recent[r->hist[k].item] += x[k];
				r->nnz++;
			}
		}
		out += count[c];
	}
	r->hist_off[nc] = out;
	r->hist = xreallocarray(r->hist, out ? out : 1, sizeof(*r->hist));
	x = xreallocarray(x, out ? out : 1, sizeof(*x));
	free(count);
	free(start);
	return x;
}

