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

/* The history weight, by hand on the fixture model: v bought b (stored
 * weight 1, S = 1) and viewed c (0.5, S = 0.25); a's neighbours are b .9
 * and c .5, d's b .4. */
TEST(history_weight_model)
{
	model *m = open_model(sub("m1"));
	if (!m)
		return;
	model_txn *t;
	model_txn_begin(m, &t);
	rec_ctx *ctx = rec_ctx_create(4);
	rec_result *r = malloc(sizeof(*r));
	rec_params p;
	rec_params_init(&p);
	CHECK_INT(p.history_weight, REC_HW_SQRT);
	static const struct {
		uint32_t w;
		double a, d;
	} cases[] = {
		{ REC_HW_SQRT, 0.9 * 1 + 0.5 * 0.5, 0.4 },
		{ REC_HW_BINARY, 0.9 + 0.5, 0.4 },
		/* the model has no decay: each item once, as binary */
		{ REC_HW_RECENT, 0.9 + 0.5, 0.4 },
		/* ln(1 + S) */
		{ REC_HW_LOG, 0.9 * 0.69314718 + 0.5 * 0.22314355, 0.4 * 0.69314718 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		p.history_weight = cases[i].w;
		rec_ctx_configure(ctx, &p);
		CHECK_INT(rec_for_customer(ctx, t, NULL, "v", 1, 2, NULL, r), 0);
		CHECK_INT(r->items[0].item, 0);
		CHECK_NEAR(r->items[0].score, cases[i].a, 1e-6);
		CHECK_INT(r->items[1].item, 3);
		CHECK_NEAR(r->items[1].score, cases[i].d, 1e-6);
	}
	/* a request's filter overrides the context's */
	rec_params_init(&p);
	rec_ctx_configure(ctx, &p);
	rec_filter f;
	rec_filter_init(&f);
	CHECK_INT(f.history_weight, REC_HW_UNSET);
	f.history_weight = REC_HW_BINARY;
	CHECK_INT(rec_for_customer(ctx, t, NULL, "v", 1, 1, &f, r), 0);
	CHECK_NEAR(r->items[0].score, 1.4, 1e-6);
	CHECK_INT(rec_for_customer(ctx, t, NULL, "v", 1, 1, NULL, r), 0);
	CHECK_NEAR(r->items[0].score, 1.15, 1e-6);
	free(r);
	rec_ctx_free(ctx);
	model_txn_free(t);
	model_close(m);
}

/* The names, and which value serves: the flag's, else the model's tuned
 * one, else sqrt. */
TEST(history_weight_names)
{
	static const char *const names[] = { "sqrt", "binary", "recent", "log" };
	for (uint32_t w = 0; w < REC_HW_COUNT; w++) {
		uint32_t got = UINT32_MAX;
		CHECK_STR(rec_history_weight_name(w), names[w]);
		CHECK_INT(rec_history_weight_parse(names[w], strlen(names[w]), &got), 0);
		CHECK_INT(got, w);
	}
	uint32_t got = 7;
	CHECK_INT(rec_history_weight_parse("Binary", 6, &got), -1);
	CHECK_INT(rec_history_weight_parse("bin", 3, &got), -1);
	CHECK_INT(rec_history_weight_parse("binary2", 7, &got), -1);
	CHECK_INT(rec_history_weight_parse("", 0, &got), -1);
	CHECK_INT(got, 7);
	CHECK_STR(rec_history_weight_name(REC_HW_COUNT), "?");

	model_info info;
	memset(&info, 0, sizeof(info));
	info.serve_cutoff = -1.0f;
	rec_params given, out;
	rec_params_unset(&given);
	rec_params_for_model(&out, &given, &info);
	CHECK_INT(out.history_weight, REC_HW_SQRT);
	strcpy(info.serve_history_weight, "log");
	rec_params_for_model(&out, &given, &info);
	CHECK_INT(out.history_weight, REC_HW_LOG);
	given.history_weight = REC_HW_BINARY;
	rec_params_for_model(&out, &given, &info);
	CHECK_INT(out.history_weight, REC_HW_BINARY);
	rec_params_unset(&given);
	strcpy(info.serve_history_weight, "cubic"); /* a newer model's: the default */
	rec_params_for_model(&out, &given, &info);
	CHECK_INT(out.history_weight, REC_HW_SQRT);
}

/* The tuner's scoring (rec_for_table) under each weight. Item 0 was bought
 * often long ago (S = 4, 10 days before as_of), item 1 once at as_of
 * (S = 1); 0's neighbour is 2 (.5), 1's is 3 (.8). Half-life 10 days. */
TEST(history_weight_table)
{
	const int64_t day = 86400, as_of = 1000 * day;
	neighbor lists[4] = { { 2, 0.5f }, { 3, 0.8f }, { 0, 0 }, { 0, 0 } };
	uint32_t n_pos[4] = { 1, 1, 0, 0 };
	neighbor popular[4] = { { 0, 4 }, { 1, 3 }, { 2, 2 }, { 3, 1 } };
	rec_table tab = { lists, 1, n_pos, NULL, popular, 4, NULL, 0, NULL, NULL, as_of, 10.0 };
	history_entry hist[2] = { { 1, HIST_PURCHASED, 1.0f, 1, as_of },
				  { 0, HIST_PURCHASED, 2.0f, 5, as_of - 10 * day } };
	static const struct {
		uint32_t w;
		uint32_t first;
		double s2, s3; /* item 2's and 3's scores */
	} cases[] = {
		{ REC_HW_SQRT, 2, 2 * 0.5, 1 * 0.8 },
		{ REC_HW_BINARY, 3, 0.5, 0.8 },
		{ REC_HW_RECENT, 3, 0.5 * 0.5, 0.8 }, /* one half-life old */
		{ REC_HW_LOG, 2, 1.60943791 * 0.5, 0.69314718 * 0.8 },
	};
	rec_ctx *ctx = rec_ctx_create(4);
	rec_result *r = malloc(sizeof(*r));
	rec_params p;
	rec_params_init(&p);
	p.cutoff = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		p.history_weight = cases[i].w;
		rec_ctx_configure(ctx, &p);
		rec_for_table(ctx, &tab, hist, 2, 2, r);
		CHECK_INT(r->n, 2);
		CHECK_INT(r->items[0].item, cases[i].first);
		for (uint32_t k = 0; k < r->n; k++)
			CHECK_NEAR(r->items[k].score, r->items[k].item == 2 ? cases[i].s2 : cases[i].s3,
				   1e-6);
	}
	free(r);
	rec_ctx_free(ctx);
}

/* Appends one event to a record in state_events' layout (state_events.c:
 * i64 ts, f32 quantity, f32 price, u8 type, u8 item_len, u32 log_sec,
 * the item id); returns the new size. */
static size_t put_event(unsigned char *buf, size_t size, int64_t ts, uint8_t type, const char *item)
{
	unsigned char *p = buf + size;
	float q = 1.0f, price = 0.0f;
	uint32_t log_sec = 0;
	memcpy(p, &ts, 8);
	memcpy(p + 8, &q, 4);
	memcpy(p + 12, &price, 4);
	p[16] = type;
	p[17] = (uint8_t)strlen(item);
	memcpy(p + 18, &log_sec, 4);
	memcpy(p + 22, item, strlen(item));
	return size + 22 + strlen(item);
}

/* The cached answer equals the scored one, item by item, and came from the
 * cache (`hit`) or not. */
static void check_cached(rec_ctx *cached, rec_ctx *plain, model_txn *t, const model_customer *cust,
			 const state_events *ev, uint32_t n, const rec_filter *f, bool hit)
{
	rec_result *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	CHECK_INT(rec_for_history_cached(cached, t, cust, ev, n, f, a), 0);
	CHECK_INT(rec_for_history(plain, t, cust, ev, n, f, b), 0);
	CHECK_INT(a->live_cached, hit);
	CHECK_INT(b->live_cached, 0);
	CHECK_INT(a->n, b->n);
	CHECK_INT(a->source, b->source);
	for (uint32_t i = 0; i < a->n && i < b->n; i++) {
		CHECK_INT(a->items[i].item, b->items[i].item);
		CHECK_INT(a->items[i].source, b->items[i].source);
		CHECK(a->items[i].score == b->items[i].score);
		CHECK_INT(a->items[i].n_because, b->items[i].n_because);
		for (uint32_t k = 0; k < a->items[i].n_because && k < b->items[i].n_because; k++)
			CHECK_INT(a->items[i].because[k], b->items[i].because[k]);
	}
	free(a);
	free(b);
}

/* Where both live-cache tests start: the model m-live open, a transaction,
 * a context that caches and one that only scores, and customer u. */
struct live_setup {
	model *m;
	model_txn *t;
	rec_ctx *cached, *plain;
	model_customer u;
};

static bool live_begin(struct live_setup *x)
{
	if (!(x->m = open_model(sub("m-live"))))
		return false;
	model_txn_begin(x->m, &x->t);
	x->cached = rec_ctx_create(4);
	x->plain = rec_ctx_create(4);
	CHECK_INT(model_customer_get(x->t, "u", 1, &x->u), 0);
	return true;
}

static void live_end(struct live_setup *x)
{
	rec_ctx_free(x->cached);
	rec_ctx_free(x->plain);
	model_txn_free(x->t);
	model_close(x->m);
}

/* The live cache (recommend_live.c) on the fixture model: u bought a and,
 * since the model (as_of 2024-01-10), viewed d. Scores: b = .9 (from a) +
 * .4 sqrt(.2) (from d), c = .5. A kept list answers only while the
 * customer's record, the parameters and the item overrides are those it
 * was scored with. */
TEST(live_cache)
{
	CHECK_INT(write_model(sub("m-live")), 0);
	struct live_setup x;
	if (!live_begin(&x))
		return;
	model *m = x.m;
	model_txn *t = x.t;
	rec_ctx *cached = x.cached, *plain = x.plain;
	const model_customer u = x.u;
	const int64_t as_of = 1704844800;
	unsigned char buf[256];
	state_events ev = { buf, put_event(buf, 0, as_of + 60, 0 /* view */, "d"), 1 };
	check_cached(cached, plain, t, &u, &ev, 2, NULL, false); /* scored, kept */
	check_cached(cached, plain, t, &u, &ev, 2, NULL, true);
	check_cached(cached, plain, t, &u, &ev, 1, NULL, true);
	/* rules only take items away: b excluded, c answers from the list */
	rec_filter f;
	rec_filter_init(&f);
	uint32_t ex[] = { 1 };
	f.exclude = ex;
	f.n_exclude = 1;
	check_cached(cached, plain, t, &u, &ev, 1, &f, true);
	check_cached(cached, plain, t, &u, &ev, 2, &f, false); /* one left: scored */
	f.n_exclude = 0;
	f.include_purchased = true; /* lists leave purchases out: scored */
	check_cached(cached, plain, t, &u, &ev, 2, &f, false);
	f.include_purchased = false;
	f.history_weight = REC_HW_BINARY; /* another weight: another list */
	check_cached(cached, plain, t, &u, &ev, 2, &f, false);
	check_cached(cached, plain, t, &u, &ev, 2, &f, true);
	check_cached(cached, plain, t, &u, &ev, 2, NULL, false);
	check_cached(cached, plain, t, &u, &ev, 2, NULL, true);
	/* other parameters (an experiment's variant): a cutoff of .5 drops
	 * d's .18 for b */
	rec_params p;
	rec_params_init(&p);
	p.cutoff = 0.5f;
	rec_ctx_configure(cached, &p);
	rec_ctx_configure(plain, &p);
	check_cached(cached, plain, t, &u, &ev, 2, NULL, false);
	check_cached(cached, plain, t, &u, &ev, 2, NULL, true);
	rec_params_init(&p);
	p.neighbors_used = 1; /* a's best only: c goes */
	rec_ctx_configure(cached, &p);
	rec_ctx_configure(plain, &p);
	check_cached(cached, plain, t, &u, &ev, 1, NULL, false);
	check_cached(cached, plain, t, &u, &ev, 1, NULL, true);
	rec_params_init(&p);
	rec_ctx_configure(cached, &p);
	rec_ctx_configure(plain, &p);
	check_cached(cached, plain, t, &u, &ev, 2, NULL, false);
	/* an override: d not recommendable adds nothing to b */
	CHECK_INT(rec_apply_item_override(m, "d", 1, STATE_ITEM_NOT_RECOMMENDABLE), 0);
	check_cached(cached, plain, t, &u, &ev, 2, NULL, false);
	check_cached(cached, plain, t, &u, &ev, 2, NULL, true);
	CHECK_INT(rec_apply_item_override(m, "d", 1, 0), 0);
	check_cached(cached, plain, t, &u, &ev, 2, NULL, false);
	/* a new event: another record, another list (a cart of c: c is
	 * its own source now, a's .5 for c stays) */
	ev.size = put_event(buf, ev.size, as_of + 120, 1 /* cart */, "c");
	ev.count = 2;
	check_cached(cached, plain, t, &u, &ev, 2, NULL, false);
	check_cached(cached, plain, t, &u, &ev, 2, NULL, true);
	/* the same bytes with a different time: not the same record */
	int64_t later = as_of + 3600;
	memcpy(buf, &later, 8);
	check_cached(cached, plain, t, &u, &ev, 2, NULL, false);
	/* more than a list holds (20 without precomputed lists): scored */
	check_cached(cached, plain, t, &u, &ev, 21, NULL, false);
	/* a customer the model does not know, with the same events: their own
	 * list (the same one, by the same events) */
	check_cached(cached, plain, t, NULL, &ev, 2, NULL, false);
	check_cached(cached, plain, t, NULL, &ev, 2, NULL, true);
	live_end(&x);
}

/* A record of events each naming an item the model does not know, of
 * exactly `size` bytes (>= 23): 277-byte events (255-byte ids), the last
 * one shorter, distinct by `seed` in its first event's time. */
static size_t filler_record(unsigned char *buf, size_t size, int64_t seed, uint32_t *count)
{
	char item[256];
	size_t at = 0;
	*count = 0;
	while (at < size) {
		size_t left = size - at, len = left >= 277 + 23 ? 255 : left - 22;
		if (left > 277 && left < 277 + 23)
			len = left - 22 - 23; /* leave room for a last event of 1 byte */
		memset(item, 'x', len);
		item[len] = '\0';
		at = put_event(buf, at, seed + *count, 0, item);
		(*count)++;
	}
	return at;
}

/* The ring of event records (recommend_live.c): once records written
 * after a customer's have taken the ring round to where theirs was, a
 * record there with the same bytes as their new one is someone else's,
 * not the one their list was scored from. */
TEST(live_cache_ring)
{
	struct live_setup x;
	if (!live_begin(&x))
		return;
	model_txn *t = x.t;
	rec_ctx *cached = x.cached, *plain = x.plain;
	const model_customer u = x.u;
	const int64_t as_of = 1704844800;
	unsigned char first[64], later[64];
	/* u viewed d, then (another record of the same size) c */
	state_events ev = { first, put_event(first, 0, as_of + 60, 0, "d"), 1 };
	state_events ev2 = { later, put_event(later, 0, as_of + 60, 0, "c"), 1 };
	check_cached(cached, plain, t, &u, &ev, 2, NULL, false); /* at the ring's start */
	/* Others' records fill the ring to its end exactly; u asks between
	 * them, so theirs stays the most recently used of its set. */
	unsigned char *buf = malloc(REC_LIVE_EVENTS_MAX);
	size_t left = REC_LIVE_RING - ev.size;
	for (int64_t k = 0; left > 0; k++) {
		size_t size = left > REC_LIVE_EVENTS_MAX ? REC_LIVE_EVENTS_MAX - 300 : left;
		state_events other = { buf, 0, 0 };
		other.size = filler_record(buf, size, as_of + 1000 + k * 1000, &other.count);
		CHECK_INT(other.size, size);
		check_cached(cached, plain, t, NULL, &other, 1, NULL, false);
		check_cached(cached, plain, t, &u, &ev, 2, NULL, true);
		left -= size;
	}
	/* A customer the model does not know with u's new record: written
	 * at the ring's start, over u's old one. */
	check_cached(cached, plain, t, NULL, &ev2, 2, NULL, false);
	check_cached(cached, plain, t, &u, &ev2, 2, NULL, false);
	check_cached(cached, plain, t, &u, &ev2, 2, NULL, true);
	free(buf);
	live_end(&x);
}

int main(void)
{
	if (scratch_begin() != 0)
		return 1;
	RUN(scoring);
	RUN(history_weight_model);
	RUN(history_weight_names);
	RUN(history_weight_table);
	RUN(live_cache);
	RUN(live_cache_ring);
	if (scratch_end() != 0)
		return 1;
	return harness_done();
}
