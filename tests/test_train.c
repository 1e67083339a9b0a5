/*
 * test_train: similarities against hand-computed matrices, EASE against a
 * reference inverse computed here in double precision, histories, and the
 * trainer's refusals.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "topk.h"
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

/* The K best by the heap of topk.h, for comparing topk_select against. */
static uint32_t heap_best(const neighbor *cand, uint32_t n, uint32_t k, neighbor *out)
{
	topk t;
	topk_init(&t, out, k);
	for (uint32_t q = 0; q < n; q++)
		topk_push(&t, cand[q].item, cand[q].score);
	return topk_sort(&t);
}

TEST(select_matches_heap)
{
	/* Scores from a handful of values, so ties are everywhere; sizes on
	 * both sides of K and of the insertion-sort cutoff. */
	static const uint32_t sizes[] = { 0, 1, 2, 5, 16, 17, 40, 100, 101, 257, 1000 };
	static const uint32_t ks[] = { 1, 3, 10, 16, 17, 100 };
	uint64_t seed = 42;
	neighbor *cand = xmallocarray(1000, sizeof(*cand));
	neighbor *want = xmallocarray(1000, sizeof(*want));
	int cases = 0;
	for (size_t a = 0; a < ARRAY_SIZE(sizes); a++) {
		for (size_t b = 0; b < ARRAY_SIZE(ks); b++) {
			uint32_t n = sizes[a], k = ks[b];
			for (uint32_t q = 0; q < n; q++) {
				seed = seed * 6364136223846793005ull + 1442695040888963407ull;
				/* distinct items in a scrambled order */
				cand[q].item = (uint32_t)((q * 7919u + 13u) % 1009u);
				cand[q].score = (float)((seed >> 33) % 7) * 0.25f;
			}
			uint32_t got_want = heap_best(cand, n, k, want);
			uint32_t got = topk_select(cand, n, k);
			CHECK_INT(got, got_want);
			CHECK_INT(got, MIN(n, k));
			for (uint32_t q = 0; q < got && q < got_want; q++) {
				CHECK_INT(cand[q].item, want[q].item);
				CHECK(cand[q].score == want[q].score);
			}
			cases++;
		}
	}
	CHECK_INT(cases, (int)(ARRAY_SIZE(sizes) * ARRAY_SIZE(ks)));
	free(cand);
	free(want);
}

/* A random store: 9000 customers (enough for histories to be folded by
 * two threads) over 400 items, popularity skewed so that the sparse path
 * meets both kinds of G rows: popular items touching much of the catalog
 * (swept whole) and rare ones touching a few items (tracked one by one). */
static void random_store(dataset *ds)
{
	dataset_init(ds);
	uint64_t seed = 7;
	char name[32];
	for (uint32_t c = 0; c < 9000; c++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t len = 1 + (uint32_t)((seed >> 33) % 6);
		for (uint32_t k = 0; k < len; k++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			double u = (double)(seed >> 11) / 9007199254740992.0;
			uint32_t item = (uint32_t)(400 * u * u * u); /* skewed to low ids */
			interaction in = { 0 };
			snprintf(name, sizeof(name), "c%u", c);
			in.customer = idmap_intern(ds->customers, name, strlen(name), NULL);
			snprintf(name, sizeof(name), "i%u", item);
			in.item = idmap_intern(ds->items, name, strlen(name), NULL);
			in.ts = (int64_t)(seed >> 40);
			in.quantity = 1;
			in.event = (uint8_t)((seed >> 20) % 3);
			if (ds->n_rows == ds->cap_rows) {
				ds->cap_rows = ds->cap_rows ? ds->cap_rows * 2 : 1024;
				ds->rows = xreallocarray(ds->rows, ds->cap_rows, sizeof(*ds->rows));
			}
			ds->rows[ds->n_rows++] = in;
			ds->has_ts = true;
			ds->ts_max = MAX(ds->ts_max, in.ts);
		}
	}
}

TEST(sparse_dense_and_threads_agree)
{
	dataset ds;
	strbuf err = STRBUF_INIT;
	random_store(&ds);
	uint32_t ni = idmap_count(ds.items);
	CHECK(ni > 300);
	for (int algo = ALGO_COSINE; algo <= ALGO_LIFT; algo++) {
		train_result d, s1, s2;
		train_options opt = { 0 };
		opt.algo = (enum algo)algo;
		opt.neighbors = 20;
		opt.threads = 1;
		opt.path = PATH_DENSE;
		CHECK_INT(train_run(&ds, &opt, &d, &err), 0);
		opt.path = PATH_SPARSE;
		CHECK_INT(train_run(&ds, &opt, &s1, &err), 0);
		opt.threads = 2;
		CHECK_INT(train_run(&ds, &opt, &s2, &err), 0);
		/* Both kinds of rows were there (the sparse path sweeps a row
		 * whole when it adds up at least items/4 entries). */
		uint32_t swept = 0, tracked = 0;
		for (uint32_t i = 0; i < ni; i++) {
			uint64_t ops = 0;
			for (uint32_t c = 0; c < d.n_customers; c++) {
				uint64_t len = d.hist_off[c + 1] - d.hist_off[c];
				for (uint64_t k = d.hist_off[c]; k < d.hist_off[c + 1]; k++)
					ops += d.hist[k].item == i ? len : 0;
			}
			if (ops * 4 >= ni)
				swept++;
			else if (ops > 0)
				tracked++;
		}
		CHECK(swept > 10);
		CHECK(tracked > 10);
		/* Same lists: best first, same items, same scores up to float
		 * rounding of G summed in another order. */
		uint32_t differ = 0;
		for (uint32_t i = 0; i < ni; i++) {
			uint32_t nd, ns;
			const neighbor *ld = nbrs(&d, i, &nd), *ls = nbrs(&s1, i, &ns);
			CHECK_INT(ns, nd);
			for (uint32_t k = 0; k < nd && k < ns; k++) {
				CHECK_NEAR(ls[k].score, ld[k].score, 1e-5 * ld[k].score);
				differ += ls[k].item != ld[k].item;
			}
		}
		CHECK(differ * 100 < ni); /* only near-ties may swap */
		/* Threads change nothing at all. */
		CHECK_INT(s2.nnz, s1.nnz);
		CHECK(memcmp(s1.hist_off, s2.hist_off, (s1.n_customers + 1) * sizeof(uint64_t)) == 0);
		CHECK(memcmp(s1.hist, s2.hist, s1.hist_off[s1.n_customers] * sizeof(history_entry)) == 0);
		CHECK(memcmp(s1.n_nbrs, s2.n_nbrs, ni * sizeof(uint32_t)) == 0);
		for (uint32_t i = 0; i < ni; i++) /* the filled slots */
			CHECK(memcmp(s1.nbrs + (size_t)i * s1.k, s2.nbrs + (size_t)i * s1.k,
				     MIN(s1.n_nbrs[i], s2.n_nbrs[i]) * sizeof(neighbor)) == 0);
		CHECK(memcmp(s1.popularity, s2.popularity, ni * sizeof(float)) == 0);
		train_result_free(&d);
		train_result_free(&s1);
		train_result_free(&s2);
	}
	dataset_free(&ds);
	sb_release(&err);
}

/* EASE over 400 items (the inverse cut into several tiles): the same
 * neighbours, score bits included, on 1 thread and on 3. */
TEST(ease_same_on_any_threads)
{
	dataset ds;
	strbuf err = STRBUF_INIT;
	random_store(&ds);
	train_result r1, r3;
	train_options opt = { 0 };
	opt.algo = ALGO_EASE;
	opt.neighbors = 20;
	opt.threads = 1;
	CHECK_INT(train_run(&ds, &opt, &r1, &err), 0);
	opt.threads = 3;
	CHECK_INT(train_run(&ds, &opt, &r3, &err), 0);
	CHECK(r1.n_items > 300);
	CHECK_INT(r3.n_items, r1.n_items);
	bool same = r3.k == r1.k;
	for (uint32_t i = 0; same && i < r1.n_items; i++) {
		uint32_t n1, n3;
		const neighbor *l1 = nbrs(&r1, i, &n1), *l3 = nbrs(&r3, i, &n3);
		same = n1 == n3 && memcmp(l1, l3, n1 * sizeof(*l1)) == 0;
	}
	CHECK(same);
	train_result_free(&r3);
	train_result_free(&r1);
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
	RUN(select_matches_heap);
	RUN(sparse_dense_and_threads_agree);
	RUN(ease_same_on_any_threads);
	return harness_done();
}
