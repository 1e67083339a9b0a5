/*
 * test_store: the model's write/read round trip, scoring on top of it, the
 * readers' refusals, and the state (flags, events, map growth).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

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

/* Opens (creating) a state in sub(name) with a 1 MiB map; NULL, the
 * failure counted, when that fails. */
static state *new_state(const char *name, strbuf *err)
{
	state *s = NULL;
	CHECK_INT(state_open(sub(name), 1 << 20, &s, err), 0);
	return s;
}

TEST(state_flags_and_events)
{
	strbuf err = STRBUF_INIT;
	state *s = new_state("state", &err);
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
		CHECK_INT(state_write_events(s, batch, 600, &err), 0);
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


/* Every event of customer `who` (in txn t) in order: checks count and that
 * the timestamps run from `first_ts` up by one, item ids as written. */
static void check_log(state_txn *t, const char *who, uint32_t count, int64_t first_ts)
{
	state_events ev;
	CHECK_INT(state_events_get(t, who, strlen(who), &ev), 0);
	CHECK_INT(ev.count, count);
	size_t pos = 0;
	event_view e;
	uint32_t seen = 0;
	while (state_events_next(&ev, &pos, &e) == 0) {
		char want[32];
		int n = snprintf(want, sizeof(want), "item-%lld", (long long)e.ts);
		if (e.ts != first_ts + seen || e.item_len != (size_t)n ||
		    memcmp(e.item, want, (size_t)n) != 0) {
			CHECK(!"event out of order or damaged");
			return;
		}
		seen++;
	}
	CHECK_INT(seen, count);
}

/* Fills batch with per[c] views of customer who[c] (c < n_who), customers
 * taking turns; customer c's events are at base * (c + 1) + i, each on
 * item "item-TS" (its name in items[c * stride + i]). Returns how many. */
static uint32_t interleaved(event_in *batch, char (*items)[32], uint32_t stride,
			    const char *const *who, const int *per, int n_who, int64_t base)
{
	uint32_t n = 0;
	for (int i = 0; i < (int)stride; i++)
		for (int c = 0; c < n_who; c++) {
			if (i >= per[c])
				continue;
			int64_t ts = base * (c + 1) + i;
			char *item = items[(uint32_t)c * stride + (uint32_t)i];
			int len = snprintf(item, 32, "item-%lld", (long long)ts);
			batch[n++] = (event_in){ who[c], strlen(who[c]), item, (size_t)len, ts, 1, 0,
						 EVENT_VIEW, true };
		}
	return n;
}

/* The log is kept in chunks: many customers written in interleaved
 * batches, one past the cap, logs read whole and in order, walked by the
 * iterator once per customer (also from a cursor). */
TEST(event_log_chunks)
{
	strbuf err = STRBUF_INIT;
	state *s = new_state("chunks", &err);
	if (!s)
		return;
	static char items[3 * 700][32];
	static event_in batch[3 * 700];
	const char *who[3] = { "a", "b", "c" };
	const int per[3] = { 700, 3, 120 }; /* a goes past STATE_MAX_EVENTS */
	uint32_t n = interleaved(batch, items, 700, who, per, 3, 1000);
	/* in several commits, so chunks are appended to as well as made */
	for (uint32_t done = 0; done < n;) {
		uint32_t take = n - done < 97 ? n - done : 97;
		CHECK_INT(state_write_events(s, batch + done, take, &err), 0);
		done += take;
	}
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	check_log(t, "a", STATE_MAX_EVENTS, 1000 + 700 - STATE_MAX_EVENTS);
	check_log(t, "b", 3, 2000);
	check_log(t, "c", 120, 3000);
	state_events ev;
	CHECK_INT(state_events_get(t, "nobody", 6, &ev), 0);
	CHECK_INT(ev.count, 0);
	state_iter *it;
	const char *id;
	size_t len;
	CHECK_INT(state_iter_begin(t, NULL, 0, &it), 0);
	const uint32_t counts[3] = { STATE_MAX_EVENTS, 3, 120 };
	for (int c = 0; c < 3; c++) {
		CHECK_INT(state_iter_next(it, &id, &len, &ev), 0);
		CHECK(len == 1 && id[0] == who[c][0]);
		CHECK_INT(ev.count, counts[c]);
	}
	CHECK_INT(state_iter_next(it, &id, &len, &ev), STORE_NOTFOUND);
	state_iter_end(it);
	CHECK_INT(state_iter_begin(t, "a", 1, &it), 0);
	CHECK_INT(state_iter_next(it, &id, &len, &ev), 0);
	CHECK(len == 1 && id[0] == 'b');
	state_iter_end(it);
	state_txn_free(t);
	state_close(s);
	sb_release(&err);
}

/* Writes an event as every state format stores it, item "item-TS",
 * quantity 1; returns its size. */
static size_t put_event_record(unsigned char *p, int64_t ts, uint8_t type, float price)
{
	float q = 1;
	char item[24];
	int len = snprintf(item, sizeof(item), "item-%lld", (long long)ts);
	memset(p, 0, 22);
	memcpy(p, &ts, 8);
	memcpy(p + 8, &q, 4);
	memcpy(p + 12, &price, 4);
	p[16] = type;
	p[17] = (unsigned char)len;
	memcpy(p + 22, item, (size_t)len);
	return 22 + (size_t)len;
}

/* Creates the state file of an older format in sub(name), as that version
 * laid it out: meta with the version, customer_flags, and the events table
 * (db_flags), left open in *txn for the caller to fill and commit. */
static MDB_env *old_state(const char *name, uint32_t version, const char *events_table,
			  unsigned db_flags, MDB_txn **txn, MDB_dbi *events)
{
	char dir[256], path[300];
	snprintf(dir, sizeof(dir), "%s", sub(name));
	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/state.mdb", dir);
	MDB_env *env;
	MDB_dbi meta_db, flags;
	CHECK_INT(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	CHECK_INT(mdb_env_open(env, path, MDB_NOSUBDIR, 0644), 0);
	CHECK_INT(mdb_txn_begin(env, NULL, 0, txn), 0);
	CHECK_INT(mdb_dbi_open(*txn, "meta", MDB_CREATE, &meta_db), 0);
	CHECK_INT(mdb_dbi_open(*txn, "customer_flags", MDB_CREATE, &flags), 0);
	CHECK_INT(mdb_dbi_open(*txn, events_table, MDB_CREATE | db_flags, events), 0);
	MDB_val k = { 14, "format_version" }, v = { 4, &version };
	CHECK_INT(mdb_put(*txn, meta_db, &k, &v, 0), 0);
	return env;
}

/* Commits an old_state's contents and opens it as a state (converting
 * it); NULL, with the message printed, when that fails. */
static state *open_converted(MDB_env *env, MDB_txn *txn, const char *dir, strbuf *err)
{
	state *s = NULL;
	CHECK_INT(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	CHECK_INT(state_open(dir, 1 << 20, &s, err), 0);
	if (!s)
		fprintf(stderr, "%s\n", sb_str(err));
	return s;
}

/* A state of format 1 (a customer's whole log in one record of "events")
 * is converted when opened, events intact. */
TEST(state_format_1_converted)
{
	const char *dir = sub("v1");
	MDB_txn *txn;
	MDB_dbi events;
	MDB_env *env = old_state("v1", 1, "events", 0, &txn, &events);
	MDB_val k, v;
	/* 40 events of customer "old", then one of "z" */
	unsigned char rec[8 + 40 * 40];
	size_t size = 8;
	for (int i = 0; i < 40; i++)
		size += put_event_record(rec + size, 500 + i, EVENT_PURCHASE, 2);
	uint32_t head[2] = { 40, 0 };
	memcpy(rec, head, 8);
	k = (MDB_val){ 3, "old" };
	v = (MDB_val){ size, rec };
	CHECK_INT(mdb_put(txn, events, &k, &v, 0), 0);
	head[0] = 1; /* z: the same first event */
	memcpy(rec, head, 8);
	k = (MDB_val){ 1, "z" };
	v = (MDB_val){ 8 + 22 + 8, rec };
	CHECK_INT(mdb_put(txn, events, &k, &v, 0), 0);
	strbuf err = STRBUF_INIT;
	state *s = open_converted(env, txn, dir, &err);
	if (!s)
		return;
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	check_log(t, "old", 40, 500);
	check_log(t, "z", 1, 500);
	state_events ev;
	CHECK_INT(state_events_get(t, "old", 3, &ev), 0);
	event_view e;
	size_t pos = 0;
	CHECK_INT(state_events_next(&ev, &pos, &e), 0);
	CHECK_INT(e.type, EVENT_PURCHASE);
	CHECK_NEAR(e.price, 2, 1e-9);
	state_txn_free(t);
	/* still appendable after the conversion */
	event_in more = { "old", 3, "item-540", 8, 540, 1, 2, EVENT_PURCHASE, true };
	CHECK_INT(state_write_events(s, &more, 1, &err), 0);
	CHECK_INT(state_txn_begin(s, &t), 0);
	check_log(t, "old", 41, 500);
	state_txn_free(t);
	state_close(s);
	/* and a read-only open (export) takes the converted state */
	CHECK_INT(state_open_readonly(dir, &s, &err), 0);
	state_close(s);
	sb_release(&err);
}

/* Erasing a customer deletes their log in the same commit as the flag;
 * other customers' logs stay whole. */
TEST(erasure_deletes_the_log)
{
	strbuf err = STRBUF_INIT;
	state *s = new_state("erase", &err);
	if (!s)
		return;
	static char items[2 * 60][32];
	static event_in batch[120];
	const char *who[2] = { "keep", "drop" };
	const int per[2] = { 60, 60 };
	uint32_t n = interleaved(batch, items, 60, who, per, 2, 100);
	CHECK_INT(state_write_events(s, batch, n, &err), 0);
	CHECK_INT(state_erase(s, "drop", 4, &err), 0);
	/* events written after the erasure (accepted just before it) are not
	 * kept; the other customer's are */
	event_in late[2] = { { "drop", 4, "late", 4, 999, 1, 0, EVENT_VIEW, true },
			     { "keep", 4, "item-160", 8, 160, 1, 0, EVENT_VIEW, true } };
	CHECK_INT(state_write_events(s, late, 2, &err), 0);
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	check_log(t, "keep", 61, 100);
	check_log(t, "drop", 0, 0);
	state_iter *it;
	const char *id;
	size_t len;
	state_events ev;
	CHECK_INT(state_iter_begin(t, NULL, 0, &it), 0);
	CHECK_INT(state_iter_next(it, &id, &len, &ev), 0);
	CHECK(len == 4 && memcmp(id, "keep", 4) == 0);
	CHECK_INT(state_iter_next(it, &id, &len, &ev), STORE_NOTFOUND);
	state_iter_end(it);
	state_txn_free(t);
	state_close(s);
	sb_release(&err);
}

/* Appends a format-2 chunk of events ts .. ts+count-1 for `who`. */
static void put_v2_chunk(MDB_txn *txn, MDB_dbi chunks, const char *who, uint32_t seq,
			 int64_t ts, int count, uint16_t total)
{
	unsigned char rec[480];
	size_t size = 8;
	rec[0] = (unsigned char)(seq >> 24);
	rec[1] = (unsigned char)(seq >> 16);
	rec[2] = (unsigned char)(seq >> 8);
	rec[3] = (unsigned char)seq;
	uint16_t c16 = (uint16_t)count;
	memcpy(rec + 4, &c16, 2);
	memcpy(rec + 6, &total, 2);
	for (int i = 0; i < count; i++)
		size += put_event_record(rec + size, ts + i, EVENT_VIEW, 0);
	MDB_val k = { strlen(who), (void *)who }, v = { size, rec };
	CHECK_INT(mdb_put(txn, chunks, &k, &v, 0), 0);
}

/* A state of format 2 (every event in chunks, the last holding the log's
 * size) is converted when opened: logs intact, still appendable up to the
 * cap, readable by a read-only open. */
TEST(state_format_2_converted)
{
	const char *dir = sub("v2");
	MDB_txn *txn;
	MDB_dbi chunks;
	MDB_env *env = old_state("v2", 2, "event_chunks", MDB_DUPSORT, &txn, &chunks);
	/* "a": 490 events in 35 chunks of 14; "b": one chunk of 3; "c": 2 */
	for (uint32_t i = 0; i < 35; i++)
		put_v2_chunk(txn, chunks, "a", i, 1000 + 14 * i, 14, i == 34 ? 490 : 0);
	put_v2_chunk(txn, chunks, "b", 0, 2000, 3, 3);
	put_v2_chunk(txn, chunks, "c", 0, 3000, 2, 2);
	strbuf err = STRBUF_INIT;
	state *s = open_converted(env, txn, dir, &err);
	if (!s)
		return;
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	check_log(t, "a", 490, 1000);
	check_log(t, "b", 3, 2000);
	check_log(t, "c", 2, 3000);
	state_txn_reset(t);
	/* 30 more for "a": the 20 oldest go */
	static char items[30][32];
	static event_in more[30];
	for (int i = 0; i < 30; i++) {
		int len = snprintf(items[i], 32, "item-%d", 1490 + i);
		more[i] = (event_in){ "a", 1, items[i], (size_t)len, 1490 + i, 1, 0, EVENT_VIEW, true };
	}
	CHECK_INT(state_write_events(s, more, 30, &err), 0);
	CHECK_INT(state_txn_renew(t), 0);
	check_log(t, "a", STATE_MAX_EVENTS, 1000 + 520 - STATE_MAX_EVENTS);
	check_log(t, "b", 3, 2000);
	state_txn_free(t);
	state_close(s);
	CHECK_INT(state_open_readonly(dir, &s, &err), 0);
	if (s) {
		CHECK_INT(state_txn_begin(s, &t), 0);
		check_log(t, "a", STATE_MAX_EVENTS, 1000 + 520 - STATE_MAX_EVENTS);
		state_txn_free(t);
	}
	state_close(s);
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
	RUN(event_log_chunks);
	RUN(state_format_1_converted);
	RUN(erasure_deletes_the_log);
	RUN(state_format_2_converted);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	if (system(cmd) != 0)
		return 1;
	return harness_done();
}
