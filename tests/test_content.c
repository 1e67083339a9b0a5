/*
 * test_content: content similarity on a tiny catalog computed by hand,
 * the content tables through a written model (format 6, and a model
 * without them still read), content_place for an item the model does not
 * know, and hybrid answers that reach an item nobody has bought.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "content.h"
#include "harness.h"
#include "model_writer.h"
#include "recommend.h"
#include "store_fixture.h"
#include "train.h"
#include "util.h"

/* Items: i0 "Red mug" (kitchen, 1.00), i1 "RED CUP" (kitchen, 1.00),
 * i2 "blue cup" (garden, 8.00), i3 no title (kitchen, 1.00), i4 "red mug
 * large" (kitchen, 1.00; in the catalog only: nobody bought it).
 * Customers: A bought i0 and i1, B bought i1 and i2, C bought i0. */
static void build(dataset *ds, bool catalog)
{
	static const char *const ids[] = { "i0", "i1", "i2", "i3", "i4" };
	static const char *const titles[] = { "Red mug", "RED CUP", "blue cup", NULL, "red mug large" };
	static const char *const cats[] = { "kitchen", "kitchen", "garden", "kitchen", "kitchen" };
	static const float prices[] = { 1.0f, 1.0f, 8.0f, 1.0f, 1.0f };
	static const struct {
		const char *c;
		uint32_t item;
	} rows[] = { { "A", 0 }, { "A", 1 }, { "B", 1 }, { "B", 2 }, { "C", 0 }, { "C", 3 } };
	dataset_init(ds);
	uint32_t n = catalog ? 5 : 4;
	for (uint32_t i = 0; i < n; i++)
		idmap_intern(ds->items, ids[i], strlen(ids[i]), NULL);
	for (size_t k = 0; k < ARRAY_SIZE(rows); k++) {
		if (ds->n_rows == ds->cap_rows) {
			ds->cap_rows = ds->cap_rows ? ds->cap_rows * 2 : 16;
			ds->rows = xreallocarray(ds->rows, ds->cap_rows, sizeof(*ds->rows));
		}
		interaction in = { 0 };
		in.customer = idmap_intern(ds->customers, rows[k].c, 1, NULL);
		in.item = rows[k].item;
		in.ts = 1000 + (int64_t)k;
		in.quantity = 1;
		in.event = EVENT_PURCHASE;
		ds->rows[ds->n_rows++] = in;
	}
	ds->has_ts = true;
	ds->ts_min = 1000;
	ds->ts_max = 1000 + ARRAY_SIZE(rows);
	if (!catalog)
		return;
	ds->items_cap = n;
	ds->item_title = xcalloc(n, sizeof(char *));
	ds->item_category = xcalloc(n, sizeof(uint32_t));
	ds->item_price = xcalloc(n, sizeof(float));
	ds->item_flags = xcalloc(n, 1);
	ds->item_image_url = xcalloc(n, sizeof(char *));
	ds->item_url = xcalloc(n, sizeof(char *));
	ds->categories = idmap_create();
	for (uint32_t i = 0; i < n; i++) {
		ds->item_title[i] = titles[i] ? xstrdup(titles[i]) : NULL;
		ds->item_category[i] = idmap_intern(ds->categories, cats[i], strlen(cats[i]), NULL);
		ds->item_price[i] = prices[i];
	}
}

static float score_of(const neighbor *l, uint32_t n, uint32_t item)
{
	for (uint32_t k = 0; k < n; k++)
		if (l[k].item == item)
			return l[k].score;
	return -1.0f;
}

static void collect_tok(const char *tok, size_t len, void *arg)
{
	strbuf *sb = arg;
	sb_addc(sb, '[');
	sb_add(sb, tok, len);
	sb_addc(sb, ']');
}

TEST(tokens)
{
	strbuf sb = STRBUF_INIT;
	content_tokenize(CONTENT_WORDS, "RED  T-LIGHT, a 12", 18, collect_tok, &sb);
	CHECK_STR(sb.buf, "[red][light][12]");
	sb_reset(&sb);
	content_tokenize(CONTENT_CHAR3, "Mug", 3, collect_tok, &sb);
	CHECK_STR(sb.buf, "[ mu][mug][ug ]");
	sb_release(&sb);
	CHECK_INT(content_price_band(-1.0f), 0);
	CHECK(content_price_band(1.0f) < content_price_band(2.5f));
	CHECK_INT(content_price_band(1.0f), content_price_band(1.2f));
}

/* Words, idf = ln((1 + 4 titled) / (1 + df)) + 1: red df 3, mug and cup
 * df 2, blue and large df 1. */
TEST(neighbors_by_hand)
{
	dataset ds;
	build(&ds, true);
	content_options o = { 0 };
	o.tokens = CONTENT_WORDS;
	o.threads = 2;
	content_result r;
	strbuf err = STRBUF_INIT;
	CHECK_INT(content_train(&ds, &o, &r, &err), 0);
	CHECK_INT(r.n_items, 5);
	CHECK_INT(r.n_terms, 5); /* blue cup large mug red */
	CHECK_INT(r.items_with_title, 4);
	double ir = log(5.0 / 4.0) + 1, im = log(5.0 / 3.0) + 1, ib = log(5.0 / 2.0) + 1;
	CHECK_NEAR(r.idf[0], ib, 1e-5); /* blue */
	CHECK_NEAR(r.idf[1], im, 1e-5); /* cup */
	CHECK_NEAR(r.idf[4], ir, 1e-5); /* red */
	double n0 = sqrt(ir * ir + im * im);           /* red mug */
	double n1 = n0;                                /* red cup */
	double n2 = sqrt(ib * ib + im * im);           /* blue cup */
	double n4 = sqrt(ir * ir + im * im + ib * ib); /* red mug large */
	double c01 = ir * ir / (n0 * n1), c12 = im * im / (n1 * n2);
	double c04 = (ir * ir + im * im) / (n0 * n4), c14 = ir * ir / (n1 * n4);
	const neighbor *l0 = r.nbrs, *l1 = r.nbrs + r.k, *l2 = r.nbrs + 2 * r.k;
	const neighbor *l3 = r.nbrs + 3 * r.k, *l4 = r.nbrs + 4 * r.k;
	/* Same category and price band: + 0.1 + 0.1. */
	CHECK_NEAR(score_of(l0, r.n_nbrs[0], 4), 0.8 * c04 + 0.2, 1e-5);
	CHECK_NEAR(score_of(l0, r.n_nbrs[0], 1), 0.8 * c01 + 0.2, 1e-5);
	CHECK_INT(l0[0].item, 4); /* the nearest title first */
	CHECK_INT(r.n_nbrs[0], 2); /* i2 shares no token; i3 has no title */
	CHECK_NEAR(score_of(l1, r.n_nbrs[1], 2), 0.8 * c12, 1e-5);
	CHECK_NEAR(score_of(l2, r.n_nbrs[2], 1), 0.8 * c12, 1e-5);
	CHECK_NEAR(score_of(l4, r.n_nbrs[4], 1), 0.8 * c14 + 0.2, 1e-5);
	/* No title: its category's items, same band first (ties by index). */
	CHECK_INT(r.n_nbrs[3], 3);
	CHECK_INT(l3[0].item, 0);
	CHECK_NEAR(l3[0].score, 0.2, 1e-6);
	/* Character 3-grams score the same pairs, and plural-like variants
	 * closer: "mug" and "mugs" share " mu" and "mug". */
	content_result g;
	o.tokens = CONTENT_CHAR3;
	CHECK_INT(content_train(&ds, &o, &g, &err), 0);
	CHECK(score_of(g.nbrs, g.n_nbrs[0], 4) > 0.5f);
	content_result_free(&g);
	content_result_free(&r);
	/* No catalog: nothing to compare. */
	dataset bare;
	build(&bare, false);
	CHECK_INT(content_train(&bare, &o, &r, &err), 1);
	dataset_free(&bare);
	dataset_free(&ds);
	sb_release(&err);
}

/* Trains ds (EASE with content when `content`) into dir and opens it. */
static model *train_open(dataset *ds, const char *dir, bool content, train_result *r)
{
	train_options o = { 0 };
	o.algo = ALGO_COSINE;
	o.neighbors = 4;
	o.threads = 1;
	o.content = content;
	o.content_opt.tokens = CONTENT_WORDS;
	strbuf err = STRBUF_INIT;
	model *m = NULL;
	if (train_run(ds, &o, r, &err) != 0 || model_write(dir, &o, NULL, ds, r, 2000, &err) != 0 ||
	    model_open(dir, &m, &err) != 0)
		fprintf(stderr, "train_open: %s\n", err.buf);
	sb_release(&err);
	return m;
}

TEST(model_tables_and_format)
{
	dataset ds;
	build(&ds, true);
	train_result r;
	model *m = train_open(&ds, sub("content"), true, &r);
	CHECK(m != NULL);
	if (!m)
		return;
	CHECK_INT(model_get_info(m)->format_version, MODEL_FORMAT_VERSION_CONTENT);
	const content_index *ci = model_content(m);
	CHECK(ci != NULL);
	CHECK_INT(content_vocab_size(ci), 5);
	uint32_t t;
	CHECK_INT(content_term_find(ci, "mug", 3, &t), 0);
	size_t len;
	CHECK(memcmp(content_term(ci, t, &len), "mug", 3) == 0 && len == 3);
	CHECK_NEAR(content_idf(ci, t), log(5.0 / 3.0) + 1, 1e-5); /* mug: df 2 */
	CHECK_INT(content_term_find(ci, "tea", 3, &t), STORE_NOTFOUND);
	const unsigned char *pairs;
	uint32_t n;
	content_item_neighbors(ci, 0, &pairs, &n);
	CHECK_INT(n, r.content.n_nbrs[0]);
	CHECK_INT(model_pair_at(pairs, 0).item, 4);
	CHECK_INT(content_item_band(ci, 2), content_price_band(8.0f));

	/* An item the model does not know: "Red mugs", kitchen, 1.00. Its
	 * words are red (known) and mugs (not: it weighs in the norm with
	 * the largest idf). */
	content_query q = { "Red mugs", 8, "kitchen", 7, 1.0f, UINT32_MAX };
	neighbor out[8];
	uint32_t got;
	CHECK_INT(content_place(m, &q, 8, out, &got), 0);
	CHECK(got >= 3);
	double ir = log(5.0 / 4.0) + 1, im = log(5.0 / 3.0) + 1, ib = log(5.0 / 2.0) + 1;
	double nq = sqrt(ir * ir + ib * ib), n1 = sqrt(ir * ir + im * im);
	CHECK_INT(out[0].item, 0); /* red mug and red cup tie on red; i0 first by index */
	CHECK_NEAR(score_of(out, got, 1), 0.8 * ir * ir / (nq * n1) + 0.2, 1e-5);
	CHECK(score_of(out, got, 2) < 0); /* blue cup shares nothing */
	/* Leaving itself out; no title: its category's items. */
	content_query self = { NULL, 0, "kitchen", 7, 1.0f, 0 };
	CHECK_INT(content_place(m, &self, 8, out, &got), 0);
	CHECK_INT(got, 3); /* i1, i3, i4 */
	CHECK(score_of(out, got, 0) < 0);
	model_close(m);
	train_result_free(&r);

	/* Without a catalog: format 4, no content tables, and content_place
	 * says so. */
	dataset bare;
	build(&bare, false);
	m = train_open(&bare, sub("bare"), false, &r);
	CHECK(m != NULL);
	if (m) {
		CHECK_INT(model_get_info(m)->format_version, MODEL_FORMAT_VERSION);
		CHECK(model_content(m) == NULL);
		CHECK_INT(content_place(m, &q, 8, out, &got), STORE_NOTFOUND);
		model_close(m);
	}
	train_result_free(&r);
	dataset_free(&bare);
	dataset_free(&ds);
}

TEST(hybrid_reaches_new_items)
{
	dataset ds;
	build(&ds, true);
	train_result r;
	model *m = train_open(&ds, sub("hybrid"), true, &r);
	CHECK(m != NULL);
	if (!m)
		return;
	model_txn *t = NULL;
	CHECK_INT(model_txn_begin(m, &t), 0);
	rec_ctx *c = rec_ctx_create(5);
	rec_result *res = xmalloc(sizeof(*res));
	rec_filter f;
	rec_filter_init(&f);
	/* A bought i0 (red mug) and i1: i4 (red mug large) nobody bought
	 * comes from content. */
	CHECK_INT(rec_for_customer(c, t, NULL, "A", 1, 5, &f, res), 0);
	CHECK_INT(res->source, REC_PERSONAL);
	bool seen = false;
	for (uint32_t k = 0; k < res->n; k++)
		if (res->items[k].item == 4) {
			seen = true;
			CHECK_INT(res->items[k].source, REC_CONTENT);
			CHECK(res->items[k].n_because > 0 && res->items[k].because[0] == 0);
		}
	CHECK(seen);
	CHECK_STR(rec_source_name(REC_CONTENT), "content");
	/* Content off: i4 only as a popular top-up (score 0). */
	rec_params p;
	rec_params_init(&p);
	p.content_weight = 0;
	rec_ctx_configure(c, &p);
	CHECK_INT(rec_for_customer(c, t, NULL, "A", 1, 5, &f, res), 0);
	for (uint32_t k = 0; k < res->n; k++)
		CHECK(res->items[k].source != REC_CONTENT);
	/* Similar items of the item nobody bought: its content neighbours,
	 * even with the blend off. */
	CHECK_INT(rec_similar(c, t, 4, 5, &f, res), 0);
	CHECK(res->n >= 2);
	CHECK_INT(res->items[0].item, 0);
	CHECK_INT(res->items[0].source, REC_CONTENT);
	free(res);
	rec_ctx_free(c);
	model_txn_free(t);
	model_close(m);
	train_result_free(&r);
	dataset_free(&ds);
}

int main(void)
{
	if (scratch_begin() != 0)
		return 1;
	RUN(tokens);
	RUN(neighbors_by_hand);
	RUN(model_tables_and_format);
	RUN(hybrid_reaches_new_items);
	scratch_end();
	return harness_done();
}
