/*
 * tune_split: the tuner's validation split of the training data: by time
 * (the purchases of the last days) or, without timestamps, a random part
 * of each customer's purchases; see tune.h for why.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tune_internal.h"
#include "util.h"

#define TUNE_SEED 0x5eed5eedull

int tune_by_pair(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	if (x->customer != y->customer)
		return x->customer < y->customer ? -1 : 1;
	return x->item < y->item ? -1 : x->item > y->item;
}

int tune_by_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

void tune_split_free(struct split *s)
{
	free(s->sub.rows);
	free(s->cust);
	free(s->rel_off);
	free(s->rel);
	memset(s, 0, sizeof(*s));
}

/* Net purchased units per (customer, item) over rows where keep(row) says
 * train, sorted; *n_out pairs. */
static struct pair *train_purchases(const dataset *ds, const uint8_t *train_row, size_t *n_out)
{
	struct pair *p = xmallocarray(ds->n_rows ? ds->n_rows : 1, sizeof(*p));
	size_t n = 0;
	for (size_t i = 0; i < ds->n_rows; i++) {
		const interaction *r = &ds->rows[i];
		if (train_row[i] && r->event == EVENT_PURCHASE)
			p[n++] = (struct pair){ r->customer, r->item, r->quantity };
	}
	qsort(p, n, sizeof(*p), tune_by_pair);
	size_t u = 0;
	for (size_t i = 0; i < n; i++) {
		if (u && p[u - 1].customer == p[i].customer && p[u - 1].item == p[i].item)
			p[u - 1].qty += p[i].qty;
		else
			p[u++] = p[i];
	}
	*n_out = u;
	return p;
}

static bool bought_before(const struct pair *tp, size_t n, uint32_t c, uint32_t i)
{
	struct pair key = { c, i, 0 };
	const struct pair *hit = bsearch(&key, tp, n, sizeof(*tp), tune_by_pair);
	return hit && hit->qty > 0;
}

/* Builds the split from train_row[] (1: the row trains) and the held-out
 * purchases val[0..n_val) (customer, item pairs): relevant are those whose
 * customer and item both have a training row and that the customer had not
 * bought before, as eval counts them. Returns the customers scored. */
static uint32_t split_build(const dataset *ds, const uint8_t *train_row, struct pair *val,
			    size_t n_val, struct split *s)
{
	uint32_t nc = idmap_count(ds->customers), ni = idmap_count(ds->items);
	uint8_t *cust_seen = xcalloc(nc ? nc : 1, 1), *item_seen = xcalloc(ni ? ni : 1, 1);
	memset(&s->sub, 0, sizeof(s->sub));
	s->sub = *ds; /* the id maps and catalog are shared, read-only */
	s->sub.rows = xmallocarray(ds->n_rows ? ds->n_rows : 1, sizeof(interaction));
	s->sub.n_rows = 0;
	s->sub.has_ts = false;
	for (size_t i = 0; i < ds->n_rows; i++) {
		if (!train_row[i])
			continue;
		const interaction *r = &ds->rows[i];
		s->sub.rows[s->sub.n_rows++] = *r;
		cust_seen[r->customer] = item_seen[r->item] = 1;
		if (ds->has_ts) {
			if (!s->sub.has_ts || r->ts < s->sub.ts_min)
				s->sub.ts_min = r->ts;
			if (!s->sub.has_ts || r->ts > s->sub.ts_max)
				s->sub.ts_max = r->ts;
			s->sub.has_ts = true;
		}
	}
	s->sub.cap_rows = s->sub.n_rows;
	size_t n_tp;
	struct pair *tp = train_purchases(ds, train_row, &n_tp);
	qsort(val, n_val, sizeof(*val), tune_by_pair);
	s->cust = xmallocarray(n_val ? n_val : 1, sizeof(*s->cust));
	s->rel_off = xmallocarray(n_val + 1, sizeof(*s->rel_off));
	s->rel = xmallocarray(n_val ? n_val : 1, sizeof(*s->rel));
	s->n = 0;
	uint64_t nr = 0;
	for (size_t i = 0; i < n_val;) {
		size_t j = i;
		uint64_t start = nr;
		for (; j < n_val && val[j].customer == val[i].customer; j++) {
			const struct pair *p = &val[j];
			if (j > i && p->item == val[j - 1].item)
				continue;
			if (!cust_seen[p->customer] || !item_seen[p->item] ||
			    bought_before(tp, n_tp, p->customer, p->item))
				continue;
			s->rel[nr++] = p->item;
		}
		if (nr > start) {
			s->cust[s->n] = val[i].customer;
			s->rel_off[s->n++] = start;
		}
		i = j;
	}
	s->rel_off[s->n] = nr;
	free(tp);
	free(cust_seen);
	free(item_seen);
	return s->n;
}

/* By time: the purchases on the last `share` of the distinct days. */
uint32_t tune_split_by_time(const dataset *ds, const int64_t *days, size_t n_days, double share,
			    struct split *s, int64_t *cut)
{
	size_t hold = (size_t)ceil(share * (double)n_days);
	hold = MAX(hold, (size_t)1);
	*cut = days[n_days - hold] * 86400;
	uint8_t *train_row = xmallocarray(ds->n_rows ? ds->n_rows : 1, 1);
	struct pair *val = xmallocarray(ds->n_rows ? ds->n_rows : 1, sizeof(*val));
	size_t n_val = 0;
	for (size_t i = 0; i < ds->n_rows; i++) {
		const interaction *r = &ds->rows[i];
		train_row[i] = r->ts < *cut;
		if (!train_row[i] && r->event == EVENT_PURCHASE && r->quantity > 0)
			val[n_val++] = (struct pair){ r->customer, r->item, 0 };
	}
	uint32_t n = split_build(ds, train_row, val, n_val, s);
	free(val);
	free(train_row);
	return n;
}

/* Without time: a fifth of the purchased items of each customer with three
 * or more, chosen by a seeded hash (at least one item stays). */
uint32_t tune_split_random(const dataset *ds, struct split *s)
{
	uint8_t *all = xmallocarray(ds->n_rows ? ds->n_rows : 1, 1);
	memset(all, 1, ds->n_rows ? ds->n_rows : 1);
	size_t n;
	struct pair *p = train_purchases(ds, all, &n);
	/* held[k]: pair k is held out */
	uint8_t *held = xcalloc(n ? n : 1, 1);
	for (size_t i = 0; i < n;) {
		size_t j = i, bought = 0, kept = 0;
		for (; j < n && p[j].customer == p[i].customer; j++)
			bought += p[j].qty > 0;
		if (bought >= 3) {
			for (size_t k = i; k < j; k++) {
				uint64_t h = mix64(TUNE_SEED ^ ((uint64_t)p[k].customer << 32 | p[k].item));
				held[k] = p[k].qty > 0 && h % 5 == 0;
				kept += !held[k];
			}
			for (size_t k = i; k < j && kept == 0; k++)
				if (held[k]) {
					held[k] = 0;
					kept = 1;
				}
		}
		i = j;
	}
	struct pair *val = xmallocarray(n ? n : 1, sizeof(*val));
	size_t n_val = 0;
	for (size_t k = 0; k < n; k++)
		if (held[k])
			val[n_val++] = p[k];
	/* Every row of a held-out pair leaves training, views included. */
	for (size_t i = 0; i < ds->n_rows; i++) {
		struct pair key = { ds->rows[i].customer, ds->rows[i].item, 0 };
		const struct pair *hit = bsearch(&key, p, n, sizeof(*p), tune_by_pair);
		all[i] = !(hit && held[hit - p]);
	}
	uint32_t got = split_build(ds, all, val, n_val, s);
	free(val);
	free(held);
	free(p);
	free(all);
	return got;
}

struct ranked {
	uint64_t h;
	uint32_t u;
};

static int by_rank(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;
	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return x->u < y->u ? -1 : x->u > y->u;
}

uint32_t tune_split_sample(struct split *s, uint32_t max)
{
	if (s->n <= max)
		return s->n;
	struct ranked *r = xmallocarray(s->n, sizeof(*r));
	for (uint32_t u = 0; u < s->n; u++)
		r[u] = (struct ranked){ mix64(TUNE_SEED ^ ((uint64_t)s->cust[u] << 20)), u };
	qsort(r, s->n, sizeof(*r), by_rank);
	uint8_t *keep = xcalloc(s->n, 1);
	for (uint32_t i = 0; i < max; i++)
		keep[r[i].u] = 1;
	free(r);
	/* Compact in place, in the split's order (customers ascending). */
	uint32_t n = 0;
	uint64_t nr = 0;
	for (uint32_t u = 0; u < s->n; u++) {
		if (!keep[u])
			continue;
		uint64_t a = s->rel_off[u], b = s->rel_off[u + 1];
		s->cust[n] = s->cust[u];
		s->rel_off[n] = nr;
		memmove(s->rel + nr, s->rel + a, (size_t)(b - a) * sizeof(*s->rel));
		nr += b - a;
		n++;
	}
	s->rel_off[n] = nr;
	s->n = n;
	free(keep);
	return n;
}
