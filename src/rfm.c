/*
 * rfm: figures, quintiles, scores and segments. See rfm.h.
 */
#include "rfm.h"

#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "util.h"

static const char *const segment_names[SEG_COUNT] = {
	[SEG_CHAMPIONS] = "champions",     [SEG_LOYAL] = "loyal",
	[SEG_NEW] = "new",                 [SEG_PROMISING] = "promising",
	[SEG_NEEDS_ATTENTION] = "needs_attention", [SEG_AT_RISK] = "at_risk",
	[SEG_DORMANT] = "dormant",         [SEG_LOST] = "lost",
	[SEG_PROSPECT] = "prospect",
};

const char *segment_name(enum segment s)
{
	return (unsigned)s < SEG_COUNT ? segment_names[s] : "unknown";
}

int segment_parse(const char *s, size_t n)
{
	for (int i = 0; i < SEG_COUNT; i++)
		if (strlen(segment_names[i]) == n && memcmp(segment_names[i], s, n) == 0)
			return i;
	return -1;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

void rfm_compute(const dataset *ds, rfm_figures *out)
{
	uint32_t nc = idmap_count(ds->customers);
	memset(out, 0, (size_t)nc * sizeof(*out));

	/* Distinct purchase days per customer: sort (customer, day) keys. */
	size_t n = 0;
	int64_t *keys = xmallocarray(ds->n_rows ? ds->n_rows : 1, sizeof(*keys));
	for (size_t i = 0; i < ds->n_rows; i++) {
		const interaction *r = &ds->rows[i];
		if (r->event != EVENT_PURCHASE)
			continue;
		rfm_figures *f = &out[r->customer];
		f->monetary += r->quantity * r->price;
		if (r->quantity <= 0)
			continue; /* a return is no visit */
		int64_t day = r->ts >= 0 ? r->ts / 86400 : -((-r->ts + 86399) / 86400);
		keys[n++] = (int64_t)r->customer << 24 | (day & 0xffffff);
		if (f->last_purchase == 0 || r->ts > f->last_purchase)
			f->last_purchase = r->ts;
		if (f->first_purchase == 0 || r->ts < f->first_purchase)
			f->first_purchase = r->ts;
	}
	qsort(keys, n, sizeof(*keys), cmp_i64);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || keys[i] != keys[i - 1])
			out[keys[i] >> 24].frequency++;
	free(keys);
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;
	return (x > y) - (x < y);
}

/* The 20/40/60/80th percentiles of v[0..n) (sorted in place), by nearest
 * rank: cut q is the ceil(n (q+1) / 5)-th smallest value, so with scores
 * counting the cuts a value exceeds, each fifth of the base gets its own
 * score (10 distinct values: two per score, the top two score 5). */
static void quintiles(float *v, uint32_t n, float cuts[4])
{
	qsort(v, n, sizeof(*v), cmp_float);
	for (int q = 0; q < 4; q++)
		cuts[q] = n ? v[((size_t)n * (size_t)(q + 1) + 4) / 5 - 1] : 0.0f;
}

/* Whole days from `last` to `now`. Recency is scored in whole days, as
 * marketers count it: a customer's R score changes when a day passes, not
 * the second after training for one who sits exactly on a cut point. */
static float whole_days(int64_t now, int64_t last)
{
	int64_t d = now - last;
	return (float)(d >= 0 ? d / 86400 : -((-d + 86399) / 86400));
}

void rfm_cut_points(const rfm_figures *figs, uint32_t n, int64_t as_of, rfm_cuts *cuts)
{
	float *r = xmallocarray(n ? n : 1, sizeof(*r));
	float *f = xmallocarray(n ? n : 1, sizeof(*f));
	float *m = xmallocarray(n ? n : 1, sizeof(*m));
	uint32_t k = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (figs[i].frequency == 0)
			continue;
		r[k] = whole_days(as_of, figs[i].last_purchase);
		f[k] = (float)figs[i].frequency;
		m[k] = figs[i].monetary;
		k++;
	}
	memset(cuts, 0, sizeof(*cuts));
	quintiles(r, k, cuts->recency_days);
	quintiles(f, k, cuts->frequency);
	quintiles(m, k, cuts->monetary);
	free(r);
	free(f);
	free(m);
}

/* 1 + the number of cuts below v (strictly), for "more is better". */
static uint8_t score_up(const float cuts[4], float v)
{
	uint8_t s = 1;
	for (int q = 0; q < 4; q++)
		s += v > cuts[q];
	return s;
}

rfm_scores rfm_score(const rfm_cuts *cuts, const rfm_figures *f, int64_t now)
{
	rfm_scores s = { 0, 0, 0 };
	if (f->frequency == 0)
		return s;
	float days = whole_days(now, f->last_purchase);
	/* Fewer days is better: 5 within the first cut, 1 beyond the last. */
	s.r = 5;
	for (int q = 0; q < 4; q++)
		s.r -= days > cuts->recency_days[q];
	s.f = score_up(cuts->frequency, (float)f->frequency);
	s.m = score_up(cuts->monetary, f->monetary);
	return s;
}

enum segment rfm_segment(rfm_scores s)
{
	if (s.r == 0)
		return SEG_PROSPECT;
	if (s.r >= 4 && s.f >= 4 && s.m >= 4)
		return SEG_CHAMPIONS;
	if (s.r >= 3 && s.f >= 4)
		return SEG_LOYAL;
	if (s.r >= 4 && s.f <= 1)
		return SEG_NEW;
	if (s.r >= 4)
		return SEG_PROMISING;
	if (s.r == 3)
		return SEG_NEEDS_ATTENTION;
	if (s.f >= 3)
		return SEG_AT_RISK;
	return s.r == 2 ? SEG_DORMANT : SEG_LOST;
}
