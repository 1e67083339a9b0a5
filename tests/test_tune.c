/*
 * test_tune: the validation split (by time, its share adapting to short
 * data, and the random holdout without timestamps), the small-data rule,
 * the tuning record, and the scoring the tuner relies on: an in-memory
 * table (rec_for_table) answers exactly as the same model written to disk
 * and served (rec_for_customer), negative EASE weights included.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "recommend.h"
#include "model.h"
#include "model_writer.h"
#include "train.h"
#include "tune.h"
#include "util.h"

#define DAY 86400

static char root[] = "/tmp/shopkeeper-test-tune-XXXXXX";

static void add_row(dataset *ds, const char *c, const char *i, int64_t ts, float q, int event)
{
	interaction in = { 0 };
	in.customer = idmap_intern(ds->customers, c, strlen(c), NULL);
	in.item = idmap_intern(ds->items, i, strlen(i), NULL);
	in.ts = ts;
	in.quantity = q;
	in.event = (uint8_t)event;
	if (ds->n_rows == ds->cap_rows) {
		ds->cap_rows = ds->cap_rows ? ds->cap_rows * 2 : 64;
		ds->rows = xreallocarray(ds->rows, ds->cap_rows, sizeof(*ds->rows));
	}
	ds->rows[ds->n_rows++] = in;
	if (ts) {
		ds->ts_min = ds->has_ts ? MIN(ds->ts_min, ts) : ts;
		ds->ts_max = ds->has_ts ? MAX(ds->ts_max, ts) : ts;
		ds->has_ts = true;
	}
}

/* Customers u0..u(n-1): u bought x(u%10) on day u%80, and y(u%3) on day
 * 80 + u%20. Days 0..99 all occur when n >= 80: the last 10% of days are
 * 90..99, where the customers with u%20 >= 10 bought their y (new to them,
 * and bought earlier by others). */
static void rhythm_data(dataset *ds, uint32_t n, bool with_time)
{
	dataset_init(ds);
	char c[16], i[16];
	for (uint32_t u = 0; u < n; u++) {
		snprintf(c, sizeof(c), "u%u", u);
		snprintf(i, sizeof(i), "x%u", u % 10);
		add_row(ds, c, i, with_time ? (int64_t)(1000 + u % 80) * DAY + 3600 : 0, 1,
			EVENT_PURCHASE);
		snprintf(i, sizeof(i), "y%u", u % 3);
		add_row(ds, c, i, with_time ? (int64_t)(1000 + 80 + u % 20) * DAY + 3600 : 0, 1,
			EVENT_PURCHASE);
	}
}

static train_options defaults(void)
{
	train_options o = { 0 };
	o.algo = ALGO_EASE;
	o.lambda = TRAIN_DEFAULT_LAMBDA;
	o.half_life_days = 30;
	o.neighbors = TRAIN_DEFAULT_NEIGHBORS;
	o.event_weight[EVENT_VIEW] = TRAIN_DEFAULT_WEIGHT_VIEW;
	o.event_weight[EVENT_CART] = TRAIN_DEFAULT_WEIGHT_CART;
	o.event_weight[EVENT_PURCHASE] = TRAIN_DEFAULT_WEIGHT_PURCHASE;
	o.threads = 2;
	return o;
}

static tune_options quiet_opts(void)
{
	tune_options t = { 0 };
	t.budget = 600; /* never the limit here: the search is the same every run */
	rec_params_init(&t.serve);
	return t;
}

TEST(split_by_time)
{
	dataset ds;
	rhythm_data(&ds, 100, true);
	train_options o = defaults();
	o.as_of = ds.ts_max;
	tune_options t = quiet_opts();
	tune_result r;
	strbuf err = STRBUF_INIT;
	CHECK_INT(tune_run(&ds, &o, &t, &r, &err), 0);
	CHECK(r.by_time);
	CHECK_NEAR(r.holdout_share, 0.10, 1e-9);
	CHECK_INT(r.cut, (int64_t)(1000 + 90) * DAY); /* the 10 last of 100 days */
	CHECK_INT(r.train_rows, 100 + 50);           /* every x, the y before day 90 */
	CHECK_INT(r.customers, 50);                  /* u%20 >= 10 */
	/* 20% and 30% held out found fewer (no y bought before day 80): the
	 * split with the most customers is the one used. */
	CHECK(r.n_cands > 1);
	if (r.n_cands)
		CHECK_STR(r.cands[0].step, "defaults");
	/* Every candidate ties or loses: nothing separates from the defaults. */
	CHECK(!r.tuned);
	CHECK(strstr(r.reason, "no candidate") != NULL);
	tune_result_free(&r);
	dataset_free(&ds);
	sb_release(&err);
}

TEST(split_share_adapts_then_defaults_kept)
{
	/* 60 customers: the days are 0..59 (x) and 80..99 (y), 80 in all.
	 * The last 8 (10%) hold 24 customers' new y, the last 16 (20%) 48;
	 * the last 24 (30%) start at day 56, before any y was bought, so
	 * only the x of u56..u59 count. The most is 48, at 20%: under 50, the
	 * defaults stay. */
	dataset ds;
	rhythm_data(&ds, 60, true);
	train_options o = defaults();
	o.as_of = ds.ts_max;
	tune_options t = quiet_opts();
	tune_result r;
	strbuf err = STRBUF_INIT;
	CHECK_INT(tune_run(&ds, &o, &t, &r, &err), 0);
	CHECK(r.by_time);
	CHECK_NEAR(r.holdout_share, 0.20, 1e-9); /* tried 10%, 20%, 30%: 20% had most */
	CHECK_INT(r.customers, 48);
	CHECK(!r.tuned);
	CHECK_INT(r.n_cands, 0);
	CHECK(strstr(r.reason, "kept the defaults") != NULL);
	CHECK(strstr(r.reason, "fewer than") != NULL);
	/* The choice is the given options, untouched. */
	CHECK_INT(r.chosen.algo, ALGO_EASE);
	CHECK(r.chosen.lambda == TRAIN_DEFAULT_LAMBDA && r.chosen.half_life_days == 30);
	CHECK_INT(r.serve.neighbors_used, REC_DEFAULT_NEIGHBORS_USED);
	json_t *j = tune_result_json(&r);
	CHECK(j != NULL);
	CHECK_STR(json_string_value(json_object_get(j, "status")), "defaults");
	CHECK_STR(json_string_value(json_object_get(json_object_get(j, "split"), "kind")), "time");
	CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "serving"),
						     "neighbors_used")),
		  REC_DEFAULT_NEIGHBORS_USED);
	json_decref(j);
	tune_result_free(&r);
	dataset_free(&ds);
	sb_release(&err);
}

TEST(noisy_split_keeps_defaults_without_searching)
{
	/* 300 customers, two random items of 60 before day 90 and one after:
	 * taste is noise, a hit is luck, the defaults' nDCG is mostly zeros. */
	dataset ds;
	dataset_init(&ds);
	char c[16], i[16];
	uint64_t s = 99;
	for (uint32_t u = 0; u < 300; u++) {
		snprintf(c, sizeof(c), "u%u", u);
		for (uint32_t k = 0; k < 3; k++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			snprintf(i, sizeof(i), "i%u", (uint32_t)((s >> 33) % 60));
			int64_t day = k < 2 ? (int64_t)((s >> 20) % 90) : 90 + (int64_t)((s >> 20) % 10);
			add_row(&ds, c, i, (1000 + day) * DAY, 1, EVENT_PURCHASE);
		}
	}
	train_options o = defaults();
	o.as_of = ds.ts_max;
	tune_options t = quiet_opts();
	tune_result r;
	strbuf err = STRBUF_INIT;
	CHECK_INT(tune_run(&ds, &o, &t, &r, &err), 0);
	CHECK(r.customers >= TUNE_MIN_CUSTOMERS);
	CHECK_INT(r.n_cands, 1); /* the defaults, then no search */
	CHECK(!r.tuned);
	CHECK(strstr(r.reason, "too noisy") != NULL);
	tune_result_free(&r);
	dataset_free(&ds);
	sb_release(&err);
}

/* Without timestamps: 200 customers with 6 items each of 40. */
static void timeless_data(dataset *ds)
{
	dataset_init(ds);
	char c[16], i[16];
	uint64_t s = 12345;
	for (uint32_t u = 0; u < 200; u++) {
		snprintf(c, sizeof(c), "c%u", u);
		for (uint32_t k = 0; k < 6; k++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			snprintf(i, sizeof(i), "i%u", (uint32_t)((s >> 33) % 40));
			add_row(ds, c, i, 0, 1, EVENT_PURCHASE);
		}
	}
}

TEST(split_random_without_time)
{
	dataset ds;
	timeless_data(&ds);
	train_options o = defaults();
	o.as_of = 1700000000;
	tune_options t = quiet_opts();
	tune_result a, b;
	strbuf err = STRBUF_INIT;
	CHECK_INT(tune_run(&ds, &o, &t, &a, &err), 0);
	CHECK_INT(tune_run(&ds, &o, &t, &b, &err), 0);
	CHECK(!a.by_time);
	CHECK(a.customers >= TUNE_MIN_CUSTOMERS && a.customers < 200);
	CHECK(a.train_rows < ds.n_rows && a.train_rows > ds.n_rows / 2);
	/* Seeded: the same split and the same search every time. */
	CHECK_INT(a.customers, b.customers);
	CHECK_INT(a.train_rows, b.train_rows);
	CHECK_INT(a.n_cands, b.n_cands);
	for (uint32_t k = 0; k < a.n_cands && k < b.n_cands; k++)
		CHECK(a.cands[k].ndcg == b.cands[k].ndcg);
	/* No half-life to try without time. */
	for (uint32_t k = 0; k < a.n_cands; k++)
		CHECK(strcmp(a.cands[k].step, "half-life") != 0 || a.cands[k].half_life_days == 0);
	tune_result_free(&a);
	tune_result_free(&b);
	dataset_free(&ds);
	sb_release(&err);
}

/* ---- rec_for_table answers as the served model does -------------------- */

static int write_model(const char *dir, const dataset *ds, const train_result *r)
{
	strbuf err = STRBUF_INIT, meta = STRBUF_INIT;
	model_writer *w = NULL;
	uint32_t ni = r->n_items, nc = r->n_customers;
	int rc = model_writer_open(dir, 1 << 22, &w, &err);
	if (rc)
		goto out;
	sb_addf(&meta,
		"{\"format_version\":%d,\"byte_order\":\"little\",\"model_id\":\"t-tune\","
		"\"algorithm\":\"ease\",\"as_of\":\"2024-01-10T00:00:00Z\","
		"\"created\":\"2024-01-10T00:00:00Z\",\"items\":%u,\"customers\":%u,"
		"\"neighbors\":%u,\"parameters\":{\"half_life_days\":0,\"event_weights\":"
		"{\"view\":0.2,\"cart\":0.5,\"purchase\":1}},\"rfm\":{\"recency_days\":[1,2,3,4],"
		"\"frequency\":[1,1,2,3],\"monetary\":[1,2,3,4]}}",
		r->k_neg ? MODEL_FORMAT_VERSION_NEGATIVES : MODEL_FORMAT_VERSION, ni, nc, r->k);
	const char **ids = xcalloc(ni, sizeof(*ids));
	size_t *lens = xcalloc(ni, sizeof(*lens));
	const char **titles = xcalloc(ni, sizeof(*titles));
	size_t *tlens = xcalloc(ni, sizeof(*tlens));
	uint32_t *cat = xcalloc(ni, sizeof(*cat));
	float *price = xcalloc(ni, sizeof(*price));
	uint8_t *flags = xcalloc(ni, sizeof(*flags)); /* format 4 and 5: all recommendable */
	for (uint32_t i = 0; i < ni; i++) {
		ids[i] = idmap_name(ds->items, i, &lens[i]);
		cat[i] = UINT32_MAX;
		price[i] = -1;
	}
	string_table idt = { ids, lens, ni }, tt = { titles, tlens, ni }, ct = { NULL, NULL, 0 };
	rc = model_writer_put_meta(w, meta.buf, &err);
	rc = rc ? rc : model_writer_put_items(w, &idt, r->popularity, r->recent, &err);
	rc = rc ? rc : model_writer_put_catalog(w, &tt, &ct, cat, price, &err);
	rc = rc ? rc : model_writer_put_item_flags(w, flags, &tt, &tt, &err); /* no URLs */
	rc = rc ? rc : model_writer_put_neighbors(w, r->nbrs, r->k, r->n_nbrs, ni, &err);
	for (uint32_t c = 0; c < nc && !rc; c++) {
		size_t len;
		const char *id = idmap_name(ds->customers, c, &len);
		customer_summary sum = { 0 };
		sum.n_hist = (uint32_t)(r->hist_off[c + 1] - r->hist_off[c]);
		rc = model_writer_put_customer(w, id, len, &sum, r->hist + r->hist_off[c], NULL, &err);
	}
	free(ids);
	free(lens);
	free(titles);
	free(tlens);
	free(cat);
	free(price);
	free(flags);
	if (rc)
		model_writer_abort(w);
	else
		rc = model_writer_finish(w, &err);
out:
	if (rc)
		fprintf(stderr, "write_model: %s\n", sb_str(&err));
	sb_release(&err);
	sb_release(&meta);
	return rc;
}

static int by_recent(const void *a, const void *b)
{
	const neighbor *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->item < y->item ? -1 : x->item > y->item;
}

TEST(table_scores_as_served)
{
	dataset ds;
	dataset_init(&ds);
	char c[16], i[16];
	uint64_t s = 777;
	for (uint32_t u = 0; u < 80; u++) {
		snprintf(c, sizeof(c), "c%u", u);
		for (uint32_t k = 0; k < 2 + u % 7; k++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			uint32_t item = (uint32_t)((s >> 33) % 30);
			snprintf(i, sizeof(i), "i%u", (item + u / 10) % 30); /* taste groups */
			int ev = (s >> 20) % 5 == 0 ? EVENT_VIEW : EVENT_PURCHASE;
			add_row(&ds, c, i, 1700000000 + (int64_t)((s >> 40) % 90) * DAY, 1, ev);
		}
	}
	train_options o = defaults();
	o.as_of = ds.ts_max;
	o.neighbors = 12;
	o.negatives = 6;
	o.lambda = 5;
	train_result r;
	strbuf err = STRBUF_INIT;
	CHECK_INT(train_run(&ds, &o, &r, &err), 0);
	CHECK_INT(r.k_neg, 6);
	uint64_t negs = 0;
	for (uint32_t it = 0; it < r.n_items; it++)
		negs += r.n_neg[it];
	CHECK(negs > 0); /* EASE at a small lambda has negative weights to keep */

	char dir[512];
	snprintf(dir, sizeof(dir), "%s/m", root);
	CHECK_INT(write_model(dir, &ds, &r), 0);
	model *m = NULL;
	CHECK_INT(model_open(dir, &m, &err), 0);
	if (!m) {
		fprintf(stderr, "model_open: %s\n", sb_str(&err));
		train_result_free(&r);
		dataset_free(&ds);
		sb_release(&err);
		return;
	}
	model_txn *t = NULL;
	CHECK_INT(model_txn_begin(m, &t), 0);
	uint32_t ni = r.n_items;
	uint32_t *n_pos = xcalloc(ni, sizeof(*n_pos));
	neighbor *pop = xcalloc(ni, sizeof(*pop));
	for (uint32_t it = 0; it < ni; it++) {
		n_pos[it] = r.n_nbrs[it] - r.n_neg[it];
		pop[it] = (neighbor){ it, r.recent[it] };
		model_pairs p;
		CHECK_INT(model_neighbors(t, it, &p), 0);
		CHECK_INT(p.n, n_pos[it]);
		CHECK_INT(p.n_neg, r.n_neg[it]);
	}
	qsort(pop, ni, sizeof(*pop), by_recent);
	rec_table table = { r.nbrs, r.k, n_pos, r.n_neg, pop, ni, NULL, 0, NULL, NULL,
			    model_get_info(m)->as_of, model_get_info(m)->half_life_days };
	rec_ctx *a = rec_ctx_create(ni), *b = rec_ctx_create(ni);
	rec_result *ra = xmalloc(sizeof(*ra)), *rb = xmalloc(sizeof(*rb));
	rec_filter plain;
	rec_filter_init(&plain);
	plain.because = false;
#define KNOBS(n, c, neg, hw) \
	{ .neighbors_used = (n), .cutoff = (c), .negatives_used = (neg), .history_weight = (hw) }
	const rec_params knobs[] = { KNOBS(30, 0.1f, 0, REC_HW_SQRT),
				     KNOBS(1000, 0.0f, 1000, REC_HW_BINARY),
				     KNOBS(5, 0.0f, 3, REC_HW_LOG), KNOBS(12, 0.3f, 6, REC_HW_RECENT) };
#undef KNOBS
	uint32_t differ = 0, with_neg_differ = 0;
	for (size_t k = 0; k < ARRAY_SIZE(knobs); k++) {
		rec_ctx_configure(a, &knobs[k]);
		rec_ctx_configure(b, &knobs[k]);
		for (uint32_t cu = 0; cu < r.n_customers; cu++) {
			size_t len;
			const char *id = idmap_name(ds.customers, cu, &len);
			CHECK_INT(rec_for_customer(a, t, NULL, id, len, 10, &plain, ra), 0);
			uint64_t h0 = r.hist_off[cu], h1 = r.hist_off[cu + 1];
			rec_for_table(b, &table, r.hist + h0, (uint32_t)(h1 - h0), 10, rb);
			bool same = ra->n == rb->n && ra->source == rb->source;
			for (uint32_t q = 0; same && q < ra->n; q++)
				same = ra->items[q].item == rb->items[q].item &&
				       ra->items[q].score == rb->items[q].score &&
				       ra->items[q].source == rb->items[q].source;
			differ += !same;
			if (k == 1 && cu == 0) {
				/* Negative weights change answers: the same
				 * customer without them. */
				rec_params none = knobs[1];
				none.negatives_used = 0;
				rec_ctx_configure(b, &none);
				for (uint32_t v = 0; v < r.n_customers; v++) {
					uint64_t g0 = r.hist_off[v], g1 = r.hist_off[v + 1];
					rec_result *rc2 = xmalloc(sizeof(*rc2));
					rec_for_table(b, &table, r.hist + g0, (uint32_t)(g1 - g0), 10, rc2);
					rec_ctx_configure(a, &knobs[1]);
					size_t l2;
					const char *id2 = idmap_name(ds.customers, v, &l2);
					rec_for_customer(a, t, NULL, id2, l2, 10, &plain, ra);
					bool eq = ra->n == rc2->n;
					for (uint32_t q = 0; eq && q < ra->n; q++)
						eq = ra->items[q].item == rc2->items[q].item &&
						     ra->items[q].score == rc2->items[q].score;
					with_neg_differ += !eq;
					free(rc2);
				}
				rec_ctx_configure(b, &knobs[k]);
			}
		}
	}
	CHECK_INT(differ, 0);
	CHECK(with_neg_differ > 0);
	free(ra);
	free(rb);
	rec_ctx_free(a);
	rec_ctx_free(b);
	free(n_pos);
	free(pop);
	model_txn_free(t);
	model_close(m);
	train_result_free(&r);
	dataset_free(&ds);
	sb_release(&err);
}

TEST(lambda_path_equals_single_fits)
{
	dataset ds;
	timeless_data(&ds);
	train_options o = defaults();
	o.half_life_days = 0;
	o.neighbors = 15;
	o.negatives = 4;
	const float lambdas[] = { 3, 30, 300 };
	train_result r, more[2];
	strbuf err = STRBUF_INIT;
	CHECK_INT(train_run_lambdas(&ds, &o, lambdas, 3, &r, more, &err), 0);
	for (int l = 0; l < 3; l++) {
		train_result one;
		o.lambda = lambdas[l];
		CHECK_INT(train_run(&ds, &o, &one, &err), 0);
		const train_result *p = l == 0 ? &r : &more[l - 1];
		CHECK_INT(p->k, one.k);
		CHECK(memcmp(p->n_nbrs, one.n_nbrs, one.n_items * sizeof(uint32_t)) == 0);
		CHECK(memcmp(p->n_neg, one.n_neg, one.n_items * sizeof(uint32_t)) == 0);
		bool same = true;
		for (uint32_t i = 0; i < one.n_items; i++)
			same &= memcmp(p->nbrs + (size_t)i * p->k, one.nbrs + (size_t)i * one.k,
				       one.n_nbrs[i] * sizeof(neighbor)) == 0;
		CHECK(same);
		train_result_free(&one);
	}
	train_result_free(&r);
	train_result_free(&more[0]);
	train_result_free(&more[1]);
	dataset_free(&ds);
	sb_release(&err);
}

int main(void)
{
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(split_by_time);
	RUN(split_share_adapts_then_defaults_kept);
	RUN(split_random_without_time);
	RUN(noisy_split_keeps_defaults_without_searching);
	RUN(table_scores_as_served);
	RUN(lambda_path_equals_single_fits);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", root);
	return harness_done();
}
