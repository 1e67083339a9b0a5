/*
 * test_recommend: scoring, filters, fallbacks and explanations on the
 * store's fixture model (recommend.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "recommend.h"
#include "store_fixture.h"

TEST(scoring)
{
	CHECK_INT(write_model(sub("m1")), 0);
	model *m = open_model(sub("m1"));
	if (!m)
		return;
	model_txn *t;
	model_txn_begin(m, &t);
	rec_ctx *ctx = rec_ctx_create(4);
	rec_result *r = malloc(sizeof(*r));
	/* v: bought b (weight 1), viewed c (0.5): a = .9*1 + .5*.5 = 1.15,
	 * d = .4; b is banned (bought), c is not (only viewed) but scores 0 */
	CHECK_INT(rec_for_customer(ctx, t, NULL, "v", 1, 10, NULL, r), 0);
	CHECK_INT(r->source, REC_PERSONAL);
	CHECK_INT(r->items[0].item, 0);
	CHECK_NEAR(r->items[0].score, 1.15, 1e-6);
	CHECK_INT(r->items[0].n_because, 2);
	CHECK_INT(r->items[0].because[0], 1); /* b gave .9, c gave .25 */
	CHECK_INT(r->items[1].item, 3);
	CHECK_NEAR(r->items[1].score, 0.4, 1e-6);
	CHECK_INT(r->n, 3); /* topped up with c, the only popular item left */
	CHECK_INT(r->items[2].item, 2);
	CHECK_INT(r->items[2].source, REC_POPULAR);
	CHECK_NEAR(r->items[2].score, 0, 1e-9);
	/* the cutoff: contributions under a share of the strongest (b's .9
	 * for a) are skipped. 0.3 -> under .27: c's .25 for a goes, d's .4
	 * stays; 0.5 -> under .45: d goes too (and is topped up as popular) */
	rec_params p;
	rec_params_init(&p);
	p.cutoff = 0.3f;
	rec_ctx_configure(ctx, &p);
	CHECK_INT(rec_for_customer(ctx, t, NULL, "v", 1, 2, NULL, r), 0);
	CHECK_NEAR(r->items[0].score, 0.9, 1e-6);
	CHECK_INT(r->items[0].n_because, 1);
	CHECK_INT(r->items[1].item, 3);
	CHECK_INT(r->items[1].source, REC_PERSONAL);
	p.cutoff = 0.5f;
	rec_ctx_configure(ctx, &p);
	CHECK_INT(rec_for_customer(ctx, t, NULL, "v", 1, 2, NULL, r), 0);
	CHECK_INT(r->items[0].item, 0);
	CHECK_INT(r->items[1].source, REC_POPULAR);
	rec_params_init(&p);
	rec_ctx_configure(ctx, &p);
	/* an unknown customer: popular items, by recent popularity */
	CHECK_INT(rec_for_customer(ctx, t, NULL, "nobody", 6, 2, NULL, r), 0);
	CHECK_INT(r->source, REC_POPULAR);
	CHECK_INT(r->n, 2);
	CHECK_INT(r->items[0].item, 1);
	/* filters: category fruit (a, d) and a price cap of 5 leave only a */
	rec_filter f;
	rec_filter_init(&f);
	f.category = 0;
	f.max_price = 5;
	CHECK_INT(rec_for_customer(ctx, t, NULL, "v", 1, 10, &f, r), 0);
	CHECK_INT(r->n, 1);
	CHECK_INT(r->items[0].item, 0);
	/* include_purchased lets b back in; exclude keeps a out */
	rec_filter_init(&f);
	uint32_t ex[] = { 0 };
	f.exclude = ex;
	f.n_exclude = 1;
	f.include_purchased = true;
	CHECK_INT(rec_for_customer(ctx, t, NULL, "u", 1, 10, &f, r), 0);
	CHECK_INT(r->items[0].item, 1); /* u bought a: b .9 */
	for (uint32_t i = 0; i < r->n; i++)
		CHECK(r->items[i].item != 0);
	/* a basket of a and c: b .9, c's a is in the basket; d from nobody */
	uint32_t basket[] = { 0, 2, 2 };
	CHECK_INT(rec_for_basket(ctx, t, basket, 3, NULL, 0, 1, NULL, r), 0);
	CHECK_INT(r->n, 1);
	CHECK_INT(r->items[0].item, 1);
	CHECK_NEAR(r->items[0].score, 0.9, 1e-6); /* c counted once */
	CHECK_INT(rec_similar(ctx, t, 1, 10, NULL, r), 0);
	CHECK_INT(r->n, 2);
	CHECK_INT(r->items[0].item, 0);
	free(r);
	rec_ctx_free(ctx);
	model_txn_free(t);
	model_close(m);
}

int main(void)
{
	if (scratch_begin() != 0)
		return 1;
	RUN(scoring);
	if (scratch_end() != 0)
		return 1;
	return harness_done();
}
