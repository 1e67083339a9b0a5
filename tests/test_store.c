/*
 * test_store: the model's write/read round trip, scoring on top of it, the
 * readers' refusals, and the state (flags, events, map growth).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "recommend.h"
#include "store.h"
#include "util.h"

static char root[] = "/tmp/shopkeeper-test-store-XXXXXX";

static const char *sub(const char *name)
{
	static char paths[8][256];
	static unsigned next;
	char *p = paths[next++ % 8];
	snprintf(p, 256, "%s/%s", root, name);
	return p;
}

static const char meta[] =
	"{\"format_version\":3,\"byte_order\":\"little\",\"model_id\":\"t-1\",\"algorithm\":\"cosine\","
	"\"as_of\":\"2024-01-10T00:00:00Z\",\"created\":\"2024-01-10T00:00:00Z\",\"items\":4,"
	"\"customers\":2,\"neighbors\":3,\"parameters\":{\"half_life_days\":0,"
	"\"event_weights\":{\"view\":0.2,\"cart\":0.5,\"purchase\":1}},"
	"\"rfm\":{\"recency_days\":[1,2,3,4],\"frequency\":[1,1,2,3],\"monetary\":[1,2,3,4]}}";

/* Items a, b, c, d. Neighbours: a -> b .9, c .5; b -> a .9, d .4;
 * c -> a .5; d -> b .4. Customer u bought a; v bought b, viewed c. */
static int write_model(const char *dir)
{
	strbuf err = STRBUF_INIT;
	model_writer *w = NULL;
	int rc = model_writer_open(dir, 1 << 20, &w, &err);
	if (rc)
		return rc;
	const char *ids[] = { "a", "b", "c", "d" }, *titles[] = { "Apple", "Bread", NULL, "Dates" };
	size_t lens[] = { 1, 1, 1, 1 }, tlens[] = { 5, 5, 0, 5 };
	const char *cats[] = { "fruit", "bakery" };
	size_t clens[] = { 5, 6 };
	string_table idt = { ids, lens, 4 }, tt = { titles, tlens, 4 }, ct = { cats, clens, 2 };
	float pop[] = { 5, 4, 3, 2 }, recent[] = { 1, 4, 3, 2 }; /* b most popular lately */
	uint32_t category[] = { 0, 1, UINT32_MAX, 0 };
	float price[] = { 1.0f, 2.0f, -1.0f, 8.0f };
	neighbor lists[4 * 3] = { { 1, 0.9f }, { 2, 0.5f }, { 0, 0 }, { 0, 0.9f }, { 3, 0.4f }, { 0, 0 },
				  { 0, 0.5f }, { 0, 0 },    { 0, 0 }, { 1, 0.4f }, { 0, 0 },    { 0, 0 } };
	uint32_t counts[] = { 2, 2, 1, 1 };
	history_entry hu[] = { { 0, HIST_PURCHASED, 1.0f, 1, 100 } };
	history_entry hv[] = { { 1, HIST_PURCHASED, 1.0f, 1, 200 }, { 2, 0, 0.5f, 0, 150 } };
	customer_summary su = { 1, 2, 100, 100, 1, 1.0f, 101, 0, 0 };
	customer_summary sv = { 2, 0, 200, 200, 1, 2.0f, 0, 0, 0 };
	rc = model_writer_put_meta(w, meta, &err);
	rc = rc ? rc : model_writer_put_items(w, &idt, pop, recent, &err);
	rc = rc ? rc : model_writer_put_catalog(w, &tt, &ct, category, price, &err);
	rc = rc ? rc : model_writer_put_neighbors(w, lists, 3, counts, 4, &err);
	rc = rc ? rc : model_writer_put_customer(w, "u", 1, &su, hu, "{}", &err);
	rc = rc ? rc : model_writer_put_customer(w, "v", 1, &sv, hv, NULL, &err);
	if (rc)
		model_writer_abort(w);
	else
		rc = model_writer_finish(w, &err);
	sb_release(&err);
	return rc;
}

static model *open_model(const char *dir)
{
	model *m = NULL;
	strbuf err = STRBUF_INIT;
	if (model_open(dir, &m, &err) != 0)
		fprintf(stderr, "model_open: %s\n", sb_str(&err));
	sb_release(&err);
	return m;
}

TEST(round_trip)
{
	CHECK_INT(write_model(sub("m1")), 0);
	model *m = open_model(sub("m1"));
	CHECK(m != NULL);
	if (!m)
		return;
	const model_info *info = model_get_info(m);
	CHECK_INT(info->n_items, 4);
	CHECK_STR(info->model_id, "t-1");
	model_txn *t;
	CHECK_INT(model_txn_begin(m, &t), 0);
	uint32_t idx;
	CHECK_INT(model_item_lookup(t, "c", 1, &idx), 0);
	CHECK_INT(idx, 2);
	CHECK_INT(model_item_lookup(t, "zz", 2, &idx), STORE_NOTFOUND);
	const char *all[] = { "a", "b", "c", "d" };
	for (uint32_t i = 0; i < 4; i++) {
		CHECK_INT(model_item_lookup(t, all[i], 1, &idx), 0);
		CHECK_INT(idx, i);
	}
	CHECK_INT(model_item_lookup(t, "", 0, &idx), STORE_NOTFOUND);
	CHECK_INT(model_item_lookup(t, "ab", 2, &idx), STORE_NOTFOUND);
	size_t len;
	const char *title = model_item_title(m, 0, &len);
	CHECK(len == 5 && strncmp(title, "Apple", len) == 0);
	model_item_title(m, 2, &len);
	CHECK_INT(len, 0);
	uint32_t cat;
	CHECK_INT(model_category_lookup(m, "bakery", 6, &cat), 0);
	CHECK_INT(model_item_category(m, 1), cat);
	/* by name, whatever the table's order (fruit is 0, bakery 1) */
	CHECK_INT(model_category_lookup(m, "fruit", 5, &cat), 0);
	CHECK_INT(cat, 0);
	CHECK_INT(model_category_lookup(m, "bak", 3, &cat), STORE_NOTFOUND);
	CHECK_INT(model_category_lookup(m, "bakeryx", 7, &cat), STORE_NOTFOUND);
	CHECK_INT(model_category_lookup(m, "fruits", 6, &cat), STORE_NOTFOUND);
	CHECK_INT(model_category_lookup(m, "", 0, &cat), STORE_NOTFOUND);
	CHECK_INT(model_category_lookup(m, "zzz", 3, &cat), STORE_NOTFOUND);
	model_pairs nb;
	CHECK_INT(model_neighbors(t, 0, &nb), 0);
	CHECK_INT(nb.n, 2);
	CHECK_INT(model_pair_at(nb.data, 1).item, 2);
	/* popular list by recent popularity: b, c, d, a */
	CHECK_INT(model_pair_at(model_popular(m), 0).item, 1);
	model_customer c;
	CHECK_INT(model_customer_get(t, "v", 1, &c), 0);
	CHECK_INT(c.n_hist, 2);
	CHECK_INT(model_history_at(&c, 1).item, 2);
	CHECK_INT(c.sum.last_purchase, 200);
	CHECK_INT(model_customer_get(t, "u", 1, &c), 0);
	CHECK(c.attrs_len == 2 && memcmp(c.attrs, "{}", 2) == 0);
	model_txn_free(t);
	model_close(m);
}

TEST(scoring)
{
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

TEST(refusals)
{
	model *m = NULL;
	strbuf err = STRBUF_INIT;
	mkdir(sub("empty"), 0755);
	CHECK_INT(model_open(sub("empty"), &m, &err), STORE_NOTFOUND);
	CHECK(strstr(sb_str(&err), "shopkeeper train") != NULL);

	mkdir(sub("half"), 0755);
	FILE *f = fopen(sub("half/model.mdb.tmp"), "w");
	fputs("partial", f);
	fclose(f);
	sb_reset(&err);
	CHECK(model_open(sub("half"), &m, &err) != 0);
	CHECK(strstr(sb_str(&err), "half written") != NULL);

	mkdir(sub("garbage"), 0755);
	f = fopen(sub("garbage/model.mdb"), "w");
	for (int i = 0; i < 20000; i++)
		fputc(i * 7 % 251, f);
	fclose(f);
	sb_reset(&err);
	CHECK(model_open(sub("garbage"), &m, &err) != 0);
	CHECK(err.len > 0);

	/* another format version, through a raw record */
	model_writer *w = NULL;
	CHECK_INT(model_writer_open(sub("v99"), 1 << 20, &w, &err), 0);
	const char v99[] = "{\"format_version\":99,\"byte_order\":\"little\"}";
	CHECK_INT(model_writer_put_raw(w, "meta", "meta", 4, v99, sizeof(v99), &err), 0);
	CHECK_INT(model_writer_finish(w, &err), 0);
	sb_reset(&err);
	CHECK_INT(model_open(sub("v99"), &m, &err), STORE_CORRUPT);
	CHECK(strstr(sb_str(&err), "format version 99") != NULL);
	sb_release(&err);
}

TEST(state_flags_and_events)
{
	state *s = NULL;
	strbuf err = STRBUF_INIT;
	CHECK_INT(state_open(sub("state"), 1 << 20, &s, &err), 0);
	if (!s)
		return;
	CHECK_INT(state_set_consent(s, "u", 1, false, &err), 0);
	CHECK_INT(state_erase(s, "gone", 4, &err), 0);
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	uint32_t flags;
	CHECK_INT(state_customer_flags(t, "u", 1, &flags), 0);
	CHECK_INT(flags, STATE_NO_PERSONALIZATION);
	CHECK_INT(state_customer_flags(t, "gone", 4, &flags), 0);
	CHECK_INT(flags, STATE_ERASED);
	CHECK_INT(state_customer_flags(t, "x", 1, &flags), 0);
	CHECK_INT(flags, 0);
	state_txn_reset(t);

	/* enough events to outgrow a 1 MiB map: it must double, not fail */
	static char items[600][200];
	event_in *batch = calloc(600, sizeof(*batch));
	for (int i = 0; i < 600; i++) {
		memset(items[i], 'a' + i % 26, 199);
		batch[i] = (event_in){ "w", 1, items[i], 199, 1000 + i, 1, 0, EVENT_VIEW, true };
	}
	for (int round = 0; round < 12; round++) {
		char who[16];
		snprintf(who, sizeof(who), "w%d", round);
		for (int i = 0; i < 600; i++) {
			batch[i].customer = who;
			batch[i].customer_len = strlen(who);
		}
		const event_in *b[1] = { batch };
		uint32_t n[1] = { 600 };
		CHECK_INT(state_write_events(s, b, n, 1, &err), 0);
	}
	CHECK_INT(state_txn_renew(t), 0);
	state_counters sc;
	state_get_counters(t, &sc);
	CHECK_INT(sc.events, 7200);
	CHECK(sc.map_size > (1u << 20));
	state_events ev;
	CHECK_INT(state_events_get(t, "w3", 2, &ev), 0);
	CHECK_INT(ev.count, STATE_MAX_EVENTS); /* 600 sent, the oldest dropped */
	size_t pos = 0;
	event_view e;
	CHECK_INT(state_events_next(&ev, &pos, &e), 0);
	CHECK_INT(e.ts, 1000 + 600 - STATE_MAX_EVENTS);
	CHECK_INT(e.item_len, 199);
	state_txn_free(t);
	free(batch);
	state_close(s);
	/* reopened, everything is still there and the erasure is listed */
	CHECK_INT(state_open(sub("state"), 1 << 20, &s, &err), 0);
	CHECK_INT(state_txn_begin(s, &t), 0);
	CHECK_INT(state_events_get(t, "w11", 3, &ev), 0);
	CHECK_INT(ev.count, STATE_MAX_EVENTS);
	state_txn_free(t);
	state_close(s);
	FILE *f = fopen(sub("state/erasures.txt"), "r");
	char line[64] = "";
	CHECK(f && fgets(line, sizeof(line), f));
	CHECK_STR(line, "gone\n");
	if (f)
		fclose(f);
	sb_release(&err);
}

int main(void)
{
	if (!mkdtemp(root))
		return 1;
	RUN(round_trip);
	RUN(scoring);
	RUN(refusals);
	RUN(state_flags_and_events);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	if (system(cmd) != 0)
		return 1;
	return harness_done();
}
