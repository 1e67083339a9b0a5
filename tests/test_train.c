/*
 * test_train: similarities against hand-computed matrices, EASE against a
 * reference inverse computed here in double precision, histories, and the
 * trainer's refusals.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "train.h"
#include "util.h"

/* customer, item, ts, quantity, event */
struct row {
	const char *c, *i;
	int64_t ts;
	float q;
	int event;
};

static void build(dataset *ds, const struct row *rows, size_t n)
{
	dataset_init(ds);
	for (size_t k = 0; k < n; k++) {
		interaction in = { 0 };
		in.customer = idmap_intern(ds->customers, rows[k].c, strlen(rows[k].c), NULL);
		in.item = idmap_intern(ds->items, rows[k].i, strlen(rows[k].i), NULL);
		in.ts = rows[k].ts;
		in.quantity = rows[k].q;
		in.event = (uint8_t)rows[k].event;
		if (ds->n_rows == ds->cap_rows) {
			ds->cap_rows = ds->cap_rows ? ds->cap_rows * 2 : 16;
			ds->rows = xreallocarray(ds->rows, ds->cap_rows, sizeof(*ds->rows));
		}
		ds->rows[ds->n_rows++] = in;
		ds->has_ts = true;
		ds->ts_max = MAX(ds->ts_max, in.ts);
	}
}

/* A{i0,i1}, B{i0,i1,i2}, C{i1,i2}: G = [[2,2,1],[2,3,2],[1,2,2]]. */
static const struct row abc[] = {
	{ "A", "i0", 10, 1, EVENT_PURCHASE }, { "A", "i1", 20, 1, EVENT_PURCHASE },
	{ "B", "i0", 10, 1, EVENT_PURCHASE }, { "B", "i1", 10, 1, EVENT_PURCHASE },
	{ "B", "i2", 30, 1, EVENT_PURCHASE }, { "C", "i1", 10, 1, EVENT_PURCHASE },
	{ "C", "i2", 10, 2, EVENT_PURCHASE },
};

static const neighbor *nbrs(const train_result *r, uint32_t item, uint32_t *n)
{
	*n = r->n_nbrs[item];
	return r->nbrs + (size_t)item * r->k;
}

static void check_algo(enum algo algo, enum train_path path, const double expect[3][3])
{
	dataset ds;
	train_result r;
	strbuf err = STRBUF_INIT;
	train_options opt = { 0 };
	opt.algo = algo;
	opt.path = path;
	build(&ds, abc, ARRAY_SIZE(abc));
	CHECK_INT(train_run(&ds, &opt, &r, &err), 0);
	CHECK_INT(r.k, 2); /* K clamped to items - 1 */
	CHECK_INT(r.path, path);
	for (uint32_t i = 0; i < 3; i++) {
		uint32_t n;
		const neighbor *l = nbrs(&r, i, &n);
		CHECK_INT(n, 2);
		for (uint32_t k = 0; k < n; k++) {
			CHECK_NEAR(l[k].score, expect[i][l[k].item], 1e-5);
			if (k > 0) /* best first, ties by lower index */
				CHECK(l[k - 1].score > l[k].score ||
				      (l[k - 1].score == l[k].score && l[k - 1].item < l[k].item));
		}
	}
	train_result_free(&r);
	dataset_free(&ds);
	sb_release(&err);
}

TEST(cosine_by_hand)
{
	const double s = 2.0 / sqrt(6.0);
	const double e[3][3] = { { 0, s, 0.5 }, { s, 0, s }, { 0.5, s, 0 } };
	check_algo(ALGO_COSINE, PATH_DENSE, e);
	check_algo(ALGO_COSINE, PATH_SPARSE, e);
}

TEST(jaccard_by_hand)
{
	const double e[3][3] = { { 0, 2.0 / 3, 1.0 / 3 }, { 2.0 / 3, 0, 2.0 / 3 }, { 1.0 / 3, 2.0 / 3, 0 } };
	check_algo(ALGO_JACCARD, PATH_DENSE, e);
	check_algo(ALGO_JACCARD, PATH_SPARSE, e);
}

TEST(lift_by_hand)
{
	const double e[3][3] = { { 0, 1.0 / 3, 0.25 }, { 1.0 / 3, 0, 1.0 / 3 }, { 0.25, 1.0 / 3, 0 } };
	check_algo(ALGO_LIFT, PATH_DENSE, e);
	check_algo(ALGO_LIFT, PATH_SPARSE, e);
}

TEST(tie_order_and_k)
{
	dataset ds;
	train_result r;
	strbuf err = STRBUF_INIT;
	train_options opt = { 0 };
	opt.neighbors = 1;
	build(&ds, abc, ARRAY_SIZE(abc));
	CHECK_INT(train_run(&ds, &opt, &r, &err), 0);
	uint32_t n;
	const neighbor *l = nbrs(&r, 1, &n); /* i0 and i2 tie at 2/sqrt(6) */
	CHECK_INT(n, 1);
	CHECK_INT(l[0].item, 0);
	train_result_free(&r);
	dataset_free(&ds);
	sb_release(&err);
}

/* Inverse of a small symmetric matrix by Gauss-Jordan, in double. */
static void invert(double *a, int n)
{
	double *inv = calloc((size_t)(n * n), sizeof(double));
	for (int i = 0; i < n; i++)
		inv[i * n + i] = 1;
	for (int c = 0; c < n; c++) {
		double p = a[c * n + c];
		for (int j = 0; j < n; j++) {
			a[c * n + j] /= p;
			inv[c * n + j] /= p;
		}
		for (int r = 0; r < n; r++) {
			if (r == c)
				continue;
			double f = a[r * n + c];
			for (int j = 0; j < n; j++) {
				a[r * n + j] -= f * a[c * n + j];
				inv[r * n + j] -= f * inv[c * n + j];
			}
		}
	}
	memcpy(a, inv, sizeof(double) * (size_t)(n * n));
	free(inv);
}

TEST(ease_against_reference)
{
	/* Four items, five customers, some overlap: B = I - P diag(1/diag(P)). */
	static const struct row rows[] = {
		{ "u1", "a", 1, 1, 2 }, { "u1", "b", 1, 1, 2 }, { "u2", "a", 1, 1, 2 },
		{ "u2", "c", 1, 1, 2 }, { "u3", "b", 1, 1, 2 }, { "u3", "c", 1, 1, 2 },
		{ "u3", "d", 1, 1, 2 }, { "u4", "a", 1, 1, 2 }, { "u4", "b", 1, 1, 2 },
		{ "u4", "d", 1, 1, 2 }, { "u5", "d", 1, 1, 2 },
	};
	const double lambda = 0.5;
	double G[16] = { 0 };
	int has[5][4] = { { 1, 1, 0, 0 }, { 1, 0, 1, 0 }, { 0, 1, 1, 1 }, { 1, 1, 0, 1 }, { 0, 0, 0, 1 } };
	for (int u = 0; u < 5; u++)
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 4; j++)
				G[i * 4 + j] += has[u][i] * has[u][j];
	for (int i = 0; i < 4; i++)
		G[i * 4 + i] += lambda;
	invert(G, 4);

	dataset ds;
	train_result r;
	strbuf err = STRBUF_INIT;
	train_options opt = { 0 };
	opt.algo = ALGO_EASE;
	opt.lambda = (float)lambda;
	build(&ds, rows, ARRAY_SIZE(rows));
	CHECK_INT(train_run(&ds, &opt, &r, &err), 0);
	int positive = 0;
	for (uint32_t i = 0; i < 4; i++) {
		uint32_t n, expect = 0;
		const neighbor *l = nbrs(&r, i, &n);
		for (uint32_t j = 0; j < 4; j++)
			expect += j != i && -G[i * 4 + j] / G[j * 4 + j] > 0;
		CHECK_INT(n, expect); /* only positive weights are kept */
		for (uint32_t k = 0; k < n; k++) {
			double want = -G[i * 4 + l[k].item] / G[l[k].item * 4 + l[k].item];
			CHECK_NEAR(l[k].score, want, 1e-4);
			positive++;
		}
	}
	CHECK(positive > 0);
	train_result_free(&r);
	dataset_free(&ds);
	sb_release(&err);
}

TEST(returns_and_histories)
{
	static const struct row rows[] = {
		{ "D", "i0", 100, 2, EVENT_PURCHASE }, { "D", "i0", 200, -2, EVENT_PURCHASE },
		{ "D", "i1", 300, 1, EVENT_PURCHASE }, { "D", "i2", 50, 1, EVENT_VIEW },
		{ "E", "i1", 10, 1, EVENT_PURCHASE }, { "E", "i2", 20, 1, EVENT_PURCHASE },
		{ "E", "i1", 30, 3, EVENT_PURCHASE },
	};
	dataset ds;
	train_result r;
	strbuf err = STRBUF_INIT;
	train_options opt = { 0 };
	build(&ds, rows, ARRAY_SIZE(rows));
	CHECK_INT(train_run(&ds, &opt, &r, &err), 0);
	/* D: most recent first: i1 (300), i0 (200), i2 (50) */
	const history_entry *h = r.hist + r.hist_off[0];
	CHECK_INT(r.hist_off[1] - r.hist_off[0], 3);
	CHECK_INT(h[0].item, 1);
	CHECK_INT(h[1].item, 0);
	CHECK_INT(h[2].item, 2);
	CHECK(!(h[1].flags & HIST_PURCHASED)); /* returned in full */
	CHECK(h[1].flags & HIST_RETURNED);
	CHECK_NEAR(h[1].weight, 0, 1e-9);
	CHECK_NEAR(h[1].quantity, 0, 1e-9);
	CHECK_NEAR(h[2].weight, sqrtf(TRAIN_DEFAULT_WEIGHT_VIEW), 1e-6); /* a view */
	/* E bought i1 twice: repeats count, with diminishing returns */
	const history_entry *e = r.hist + r.hist_off[1];
	CHECK_INT(e[0].item, 1);
	CHECK_NEAR(e[0].weight, sqrt(2.0), 1e-6);
	CHECK_NEAR(e[0].quantity, 4, 1e-6);
	/* popularity: customers with a positive interaction */
	CHECK_NEAR(r.popularity[0], 0, 1e-9);
	CHECK_NEAR(r.popularity[1], 2, 1e-9);
	CHECK_NEAR(r.popularity[2], 2, 1e-9);
	train_result_free(&r);
	dataset_free(&ds);
	sb_release(&err);
}

TEST(half_life_decays_history)
{
	static const struct row rows[] = {
		{ "A", "i0", 0, 1, EVENT_PURCHASE }, { "A", "i1", 86400 * 10, 1, EVENT_PURCHASE },
		{ "B", "i0", 86400 * 10, 1, EVENT_PURCHASE }, { "B", "i1", 86400 * 10, 1, EVENT_PURCHASE },
	};
	dataset ds;
	train_result r;
	strbuf err = STRBUF_INIT;
	train_options opt = { 0 };
	opt.half_life_days = 10;
	opt.as_of = 86400 * 10;
	build(&ds, rows, ARRAY_SIZE(rows));
	CHECK_INT(train_run(&ds, &opt, &r, &err), 0);
	const history_entry *h = r.hist + r.hist_off[0]; /* A: i1 (now), i0 (10 days ago) */
	CHECK_INT(h[1].item, 0);
	CHECK_NEAR(h[0].weight, 1.0, 1e-6);
	CHECK_NEAR(h[1].weight, sqrt(0.5), 1e-5); /* one half-life old */
	train_result_free(&r);
	dataset_free(&ds);
	sb_release(&err);
}

TEST(refusals)
{
	dataset ds;
	train_result r;
	strbuf err = STRBUF_INIT;
	train_options opt = { 0 };
	dataset_init(&ds);
	CHECK_INT(train_run(&ds, &opt, &r, &err), -1); /* nothing to train on */
	CHECK(strstr(sb_str(&err), "no usable rows") != NULL);
	dataset_free(&ds);

	static const struct row returned[] = { { "A", "i0", 1, 1, 2 }, { "A", "i0", 2, -1, 2 } };
	build(&ds, returned, ARRAY_SIZE(returned));
	sb_reset(&err);
	CHECK_INT(train_run(&ds, &opt, &r, &err), -1); /* every purchase came back */
	CHECK(strstr(sb_str(&err), "no positive interactions") != NULL);
	dataset_free(&ds);

	build(&ds, abc, ARRAY_SIZE(abc));
	sb_reset(&err);
	opt.algo = ALGO_EASE;
	opt.lambda = -1;
	CHECK_INT(train_run(&ds, &opt, &r, &err), -1);
	CHECK(strstr(sb_str(&err), "lambda") != NULL);
	opt.algo = ALGO_COSINE;
	opt.lambda = 0;
	opt.path = PATH_DENSE;
	opt.max_dense_bytes = 8; /* 3 x 3 floats do not fit */
	sb_reset(&err);
	CHECK_INT(train_run(&ds, &opt, &r, &err), -1);
	CHECK(strstr(sb_str(&err), "dense path") != NULL);
	dataset_free(&ds);
	sb_release(&err);
}

int main(void)
{
	RUN(cosine_by_hand);
	RUN(jaccard_by_hand);
	RUN(lift_by_hand);
	RUN(tie_order_and_k);
	RUN(ease_against_reference);
	RUN(returns_and_histories);
	RUN(half_life_decays_history);
	RUN(refusals);
	return harness_done();
}
