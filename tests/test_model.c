/*
 * test_model: the model's write/read round trip and the reader's refusals
 * (model_writer.c, model.c).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "model.h"
#include "model_writer.h"
#include "store_fixture.h"

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

/* The first_seen table is optional: a model without it (every model
 * before issue 18) reads as all unknown; one with it gives each day back,
 * and one of the wrong length is refused. */
TEST(first_seen_is_optional)
{
	CHECK_INT(write_model(sub("fs0")), 0);
	model *m = open_model(sub("fs0"));
	CHECK(m != NULL);
	if (m) {
		CHECK(!model_has_first_seen(m));
		CHECK_INT(model_item_first_seen(m, 0), MODEL_DAY_UNKNOWN);
		/* A day set while serving (PUT /v1/items first_seen) reads back. */
		model_item_set_first_seen(m, 1, 20000);
		CHECK_INT(model_item_first_seen(m, 1), 20000);
		CHECK_INT(model_item_first_seen(m, 0), MODEL_DAY_UNKNOWN);
		model_close(m);
	}
	int32_t days[] = { 19000, MODEL_DAY_UNKNOWN, 0, 20089 };
	CHECK_INT(write_model_dated(sub("fs1"), days), 0);
	m = open_model(sub("fs1"));
	CHECK(m != NULL);
	if (m) {
		CHECK(model_has_first_seen(m));
		for (uint32_t i = 0; i < 4; i++)
			CHECK_INT(model_item_first_seen(m, i), days[i]);
		model_close(m);
	}
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

/* Copies file `name` of directory from into directory to (created); 0 when
 * there is no such file, 1 when copied, -1 on failure. */
static int copy_file(const char *from, const char *to, const char *name)
{
	char src[300], dst[300];
	snprintf(src, sizeof(src), "%s/%s", from, name);
	snprintf(dst, sizeof(dst), "%s/%s", to, name);
	mkdir(to, 0755);
	FILE *in = fopen(src, "rb");
	if (!in)
		return 0;
	FILE *out = fopen(dst, "wb");
	char buf[4096];
	size_t n;
	int ok = out != NULL;
	while (ok && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		ok = fwrite(buf, 1, n, out) == n;
	fclose(in);
	if (out && fclose(out) != 0)
		ok = 0;
	return ok ? 1 : -1;
}

enum damage { ZERO_PAGE, FLIP_BYTE, NO_SUM, BAD_SUM };

/* Does `d` to the model in dir. */
static void damage_model(const char *dir, enum damage d)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/%s", dir, d == NO_SUM || d == BAD_SUM ? "model.sum"
										: MODEL_FILE);
	if (d == NO_SUM) {
		CHECK_INT(unlink(path), 0);
		return;
	}
	FILE *f = fopen(path, "r+b");
	CHECK(f != NULL);
	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	if (d == ZERO_PAGE) {
		static const char zeros[4096];
		long pages = size / 4096;
		fseek(f, pages / 2 * 4096, SEEK_SET);
		fwrite(zeros, 1, sizeof(zeros), f);
	} else { /* one bit of a byte past the middle; the checksum line's first */
		long at = d == BAD_SUM ? 0 : size / 2 + 100;
		fseek(f, at, SEEK_SET);
		int c = fgetc(f);
		fseek(f, at, SEEK_SET);
		fputc(c ^ 0x10, f);
	}
	fclose(f);
}

/* LMDB does not checksum pages: a damaged model must be refused by
 * model_open (the checksum file train writes beside it), never opened to
 * abort the server in mdb.c at the first request through the bad page. */
TEST(damaged_models_refused)
{
	static const struct {
		const char *name;
		enum damage damage;
		const char *says;
	} cases[] = {
		{ "zeroed-page", ZERO_PAGE, "is damaged" },
		{ "flipped-byte", FLIP_BYTE, "is damaged" },
		{ "no-sum", NO_SUM, "retrain with shopkeeper train" },
		{ "bad-sum", BAD_SUM, "checksum file" },
	};
	CHECK_INT(write_model(sub("good")), 0);
	model *m = open_model(sub("good"));
	CHECK(m != NULL);
	model_close(m);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *dir = sub(cases[i].name);
		CHECK_INT(copy_file(sub("good"), dir, MODEL_FILE), 1);
		copy_file(sub("good"), dir, "model.sum");
		damage_model(dir, cases[i].damage);
		strbuf err = STRBUF_INIT;
		m = NULL;
		int rc = model_open(dir, &m, &err);
		if (rc != STORE_CORRUPT || !strstr(sb_str(&err), cases[i].says))
			fprintf(stderr, "case %s: %d: %s\n", cases[i].name, rc, sb_str(&err));
		CHECK_INT(rc, STORE_CORRUPT);
		CHECK(strstr(sb_str(&err), cases[i].says) != NULL);
		CHECK(strstr(sb_str(&err), dir) != NULL);
		model_close(m);
		sb_release(&err);
	}
}

/* The meta, items a to d (one category, popularity 4 to 1), their catalog
 * and one neighbour each: what write_precomputed's and write_customers'
 * models share. Returns a STORE_* code. */
static int put_four_items(model_writer *w, strbuf *err)
{
	const char *ids[] = { "a", "b", "c", "d" };
	size_t lens[] = { 1, 1, 1, 1 };
	const char *cats[] = { "fruit" };
	size_t clens[] = { 5 };
	string_table idt = { ids, lens, 4 }, ct = { cats, clens, 1 };
	uint32_t category[] = { 0, 0, 0, 0 }, counts[] = { 1, 1, 1, 1 };
	float pop[] = { 4, 3, 2, 1 }, price[] = { 1, 1, 1, 1 };
	neighbor lists[4] = { { 1, 0.9f }, { 0, 0.9f }, { 0, 0.5f }, { 1, 0.4f } };
	int rc = model_writer_put_meta(w, fixture_meta, err);
	rc = rc ? rc : model_writer_put_items(w, &idt, pop, pop, err);
	rc = rc ? rc : model_writer_put_catalog(w, &idt, &ct, category, price, err);
	return rc ? rc : model_writer_put_neighbors(w, lists, 1, counts, 4, err);
}

/* A model of two customers with precomputed lists of stride 2, v's (one
 * entry) marked complete; `bad` 1 names an item past the catalog in v's
 * list, 2 marks u's full list complete too. With `extended`, u's second
 * item is a content one (after a personal prefix of one) and the
 * "extended" record says so; `bad` 3 then leaves that entry's score
 * positive, 4 marks u's full extended list complete, 5 makes it longer
 * than the stride. */
static int write_precomputed_ext(const char *dir, int bad, bool extended)
{
	strbuf err = STRBUF_INIT;
	model_writer *w = NULL;
	int rc = model_writer_open(dir, 1 << 20, &w, &err);
	if (rc)
		return rc;
	history_entry hu[] = { { 0, HIST_PURCHASED, 1.0f, 1, 100 } };
	customer_summary su = { .n_hist = 1, .precomputed = 1 };
	customer_summary sv = { .n_hist = 1, .precomputed = 2 };
	precomp_header h = { .n_lists = 2, .stride = 2, .neighbors_used = 30, .cutoff = 0.1f,
			     .negatives_used = 1000, .entry_size = sizeof(precomp_entry) };
	uint8_t n[] = { 2, 1 }, complete[] = { bad == 2 ? 0x3 : 0x2 };
	uint8_t ext[] = { bad == 5 ? 3 : bad == 4 ? 2 | PRECOMP_EXT_COMPLETE : 2,
			  1 | PRECOMP_EXT_COMPLETE };
	if (extended)
		n[0] = 1;
	precomp_entry e[4] = { { 1, 0.9f, { 0, UINT32_MAX, UINT32_MAX } },
			       { 2, extended && bad != 3 ? -0.5f : 0.5f, { 0, UINT32_MAX, UINT32_MAX } },
			       { bad == 1 ? 99u : 3u, 0.4f, { 1, UINT32_MAX, UINT32_MAX } },
			       { 0, 0, { 0, 0, 0 } } };
	rc = put_four_items(w, &err);
	rc = rc ? rc : model_writer_put_customer(w, "u", 1, &su, hu, NULL, &err);
	rc = rc ? rc : model_writer_put_customer(w, "v", 1, &sv, hu, NULL, &err);
	rc = rc ? rc : model_writer_put_precomputed(w, &h, n, complete, extended ? ext : NULL, e,
						    &err);
	if (rc)
		model_writer_abort(w);
	else
		rc = model_writer_finish(w, &err);
	sb_release(&err);
	return rc;
}

static int write_precomputed(const char *dir, int bad)
{
	return write_precomputed_ext(dir, bad, false);
}

/* Customer id's list in m (borrowed until model_close): false when the
 * customer or the list is missing. */
static bool list_of(model *m, const char *id, model_plist *out)
{
	model_txn *t = NULL;
	model_customer c;
	bool ok = model_txn_begin(m, &t) == 0 && model_customer_get(t, id, strlen(id), &c) == 0 &&
		  model_precomputed(m, &c, out);
	model_txn_free(t);
	return ok;
}

/* The optional precomputed lists: found by the customer's ordinal, absent
 * from models without them, and a list naming an unknown item, or a full
 * one marked complete, is refused at open. */
TEST(precomputed_lists)
{
	CHECK_INT(write_precomputed(sub("pc"), 0), 0);
	model *m = open_model(sub("pc"));
	CHECK(m != NULL);
	if (!m)
		return;
	const precomp_header *h = model_precomputed_header(m);
	CHECK(h != NULL && h->stride == 2 && h->n_lists == 2);
	model_plist l;
	CHECK(list_of(m, "u", &l));
	CHECK_INT(l.n, 2);
	CHECK(!l.complete);
	CHECK_INT(model_plist_at(&l, 1).item, 2);
	CHECK(list_of(m, "v", &l));
	CHECK_INT(l.n, 1);
	CHECK(l.complete);
	CHECK_INT(model_plist_at(&l, 0).item, 3);
	CHECK_INT(model_plist_at(&l, 0).because[0], 1);
	model_close(m);

	CHECK_INT(write_model(sub("no-pc")), 0);
	m = open_model(sub("no-pc"));
	CHECK(m != NULL && model_precomputed_header(m) == NULL);
	model_close(m);

	CHECK_INT(write_precomputed(sub("pc-bad"), 1), 0);
	strbuf err = STRBUF_INIT;
	m = NULL;
	CHECK_INT(model_open(sub("pc-bad"), &m, &err), STORE_CORRUPT);
	CHECK(strstr(sb_str(&err), "precomputed") != NULL);
	sb_reset(&err);
	CHECK_INT(write_precomputed(sub("pc-full-complete"), 2), 0);
	m = NULL;
	CHECK_INT(model_open(sub("pc-full-complete"), &m, &err), STORE_CORRUPT);
	CHECK(strstr(sb_str(&err), "precomputed") != NULL);
	sb_release(&err);
}

/* The "extended" record: the lists past the personal prefix, a content
 * entry's score negated; an extended list that breaks its rules is
 * refused at open. */
TEST(precomputed_lists_extended)
{
	CHECK_INT(write_precomputed_ext(sub("pcx"), 0, true), 0);
	model *m = open_model(sub("pcx"));
	CHECK(m != NULL);
	if (!m)
		return;
	model_plist l;
	CHECK(list_of(m, "u", &l));
	CHECK_INT(l.n, 2);
	CHECK(!l.complete);
	CHECK(model_plist_at(&l, 0).score > 0.0f);
	CHECK_INT(model_plist_at(&l, 1).item, 2);
	CHECK(model_plist_at(&l, 1).score == -0.5f);
	CHECK(list_of(m, "v", &l));
	CHECK_INT(l.n, 1);
	CHECK(l.complete);
	model_close(m);

	static const char *const bad[] = { "pcx-positive", "pcx-full-complete", "pcx-long" };
	strbuf err = STRBUF_INIT;
	for (int b = 0; b < 3; b++) {
		CHECK_INT(write_precomputed_ext(sub(bad[b]), 3 + b, true), 0);
		m = NULL;
		CHECK_INT(model_open(sub(bad[b]), &m, &err), STORE_CORRUPT);
		CHECK(strstr(sb_str(&err), "precomputed") != NULL);
		sb_reset(&err);
	}
	sb_release(&err);
}

/* ---- the customer index (model_customers.c) -------------------------------- */

/* Customer i's id: lengths 1 to 256 (ID_MAX_LEN), any byte but NUL, many
 * ids prefixes of others ("k", "kk", ...: the same for any salt), many
 * alike but in one byte. */
static size_t index_id(uint32_t i, uint32_t salt, char *out)
{
	size_t len;
	if (i % 7 == 0 && i < 7 * 40) { /* a run of one letter: a prefix of the next */
		len = 1 + i / 7;
		memset(out, 'k', len);
	} else if (i % 7 == 1) { /* long ids, and bytes above 127 */
		len = 200 + i % 57;
		for (size_t b = 0; b < len; b++)
			out[b] = (char)(1 + (i * 31 + b * 7 + salt) % 255);
	} else { /* numbered as a shop numbers its customers */
		len = (size_t)snprintf(out, 32, "%u%u.0", salt, 10000 + i);
	}
	return len;
}

/* A model of n customers (ids index_id(i, salt)); every 50th has a
 * history long enough for LMDB's overflow pages. With short_record, one
 * more, "short", whose record is a byte shorter than its summary says. */
static int write_customers(const char *dir, uint32_t n, uint32_t salt, bool short_record)
{
	strbuf err = STRBUF_INIT;
	model_writer *w = NULL;
	int rc = model_writer_open(dir, 64 << 20, &w, &err);
	if (rc)
		return rc;
	static history_entry hist[600];
	for (uint32_t k = 0; k < 600; k++)
		hist[k] = (history_entry){ k % 4, HIST_PURCHASED, 1.0f, 1.0f, 100 + k };
	rc = put_four_items(w, &err);
	for (uint32_t i = 0; i < n && !rc; i++) {
		char id[300], attrs[32];
		size_t len = index_id(i, salt, id);
		int alen = snprintf(attrs, sizeof(attrs), "{\"i\":%u}", i);
		customer_summary sum = { .n_hist = i % 50 == 3 ? 600 : i % 5, .attrs_len = (uint32_t)alen,
					 .frequency = i, .monetary = (float)salt };
		rc = model_writer_put_customer(w, id, len, &sum, hist, attrs, &err);
	}
	if (short_record && !rc) {
		customer_summary sum = { .n_hist = 1 };
		unsigned char rec[sizeof(sum) + sizeof(history_entry)] = { 0 };
		memcpy(rec, &sum, sizeof(sum));
		rc = model_writer_put_raw(w, "customers", "short", 5, rec, sizeof(rec) - 1, &err);
	}
	if (rc)
		model_writer_abort(w);
	else
		rc = model_writer_finish(w, &err);
	if (rc)
		fprintf(stderr, "write_customers: %s\n", sb_str(&err));
	sb_release(&err);
	return rc;
}

/* An id walked, copied. */
struct walked_id {
	char id[300];
	size_t len;
};

/* LMDB's order of keys: bytes, then length. */
static int walked_cmp(const void *x, const void *y)
{
	const struct walked_id *a = x, *b = y;
	int c = memcmp(a->id, b->id, a->len < b->len ? a->len : b->len);
	return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* Every customer the B-tree walk finds is found by model_customer_get at
 * the same record; ids next to them (a byte more, a byte less, the last
 * one changed) are found exactly when the walk has them too (many do, by
 * design). Returns the number of customers walked. */
static uint32_t check_index(model *m)
{
	model_txn *t = NULL;
	model_iter *it = NULL;
	CHECK_INT(model_txn_begin(m, &t), 0);
	CHECK_INT(model_iter_begin(t, NULL, 0, &it), 0);
	const char *id;
	size_t len;
	model_customer walked, got;
	uint32_t n = 0, cap = 64;
	struct walked_id *all = malloc(cap * sizeof(*all));
	int rc;
	while ((rc = model_iter_next(it, &id, &len, &walked)) == 0) {
		CHECK_INT(model_customer_get(t, id, len, &got), 0);
		CHECK(memcmp(&got.sum, &walked.sum, sizeof(got.sum)) == 0);
		CHECK(got.entries == walked.entries && got.n_hist == walked.n_hist);
		CHECK(got.attrs == walked.attrs && got.attrs_len == walked.attrs_len);
		if (n == cap)
			all = realloc(all, (cap *= 2) * sizeof(*all));
		memcpy(all[n].id, id, len);
		all[n++].len = len;
	}
	CHECK_INT(rc, STORE_NOTFOUND);
	model_iter_end(it);
	for (uint32_t i = 0; i < n; i++) {
		struct walked_id near = all[i];
		near.id[near.len] = 'x';
		for (int k = 0; k < 3; k++) {
			struct walked_id q = near;
			if (k == 0)
				q.len++;
			else if (k == 1)
				q.len--;
			else
				q.id[q.len - 1] ^= 0x40;
			int want = bsearch(&q, all, n, sizeof(*all), walked_cmp) ? 0 : STORE_NOTFOUND;
			model_customer c;
			CHECK_INT(model_customer_get(t, q.id, q.len, &c), want);
		}
	}
	CHECK_INT(model_customer_get(t, "", 0, &got), STORE_NOTFOUND);
	free(all);
	model_txn_free(t);
	return n;
}

/* The index model_customer_get answers from (built at open) agrees with
 * the model's B-tree for every customer and around every one, in each
 * model of a switch; and a record that does not decode is refused at
 * open, not at the request that reaches it. */
TEST(customer_index)
{
	CHECK_INT(write_customers(sub("ci1"), 3000, 1, false), 0);
	CHECK_INT(write_customers(sub("ci2"), 1000, 2, false), 0);
	model *a = open_model(sub("ci1")), *b = open_model(sub("ci2"));
	CHECK(a != NULL && b != NULL);
	if (!a || !b) {
		model_close(a);
		model_close(b);
		return;
	}
	CHECK_INT(check_index(a), 3000);
	CHECK_INT(check_index(b), 1000);
	/* a switch from a to b: ids of a are b's customers only where the two
	 * share them, with b's records */
	model_txn *ta = NULL, *tb = NULL;
	CHECK_INT(model_txn_begin(a, &ta), 0);
	CHECK_INT(model_txn_begin(b, &tb), 0);
	uint32_t shared = 0;
	for (uint32_t i = 0; i < 3000; i++) {
		char id[300], attrs[32];
		size_t len = index_id(i, 1, id);
		model_customer c;
		CHECK_INT(model_customer_get(ta, id, len, &c), 0);
		CHECK_NEAR(c.sum.monetary, 1, 0);
		int alen = snprintf(attrs, sizeof(attrs), "{\"i\":%u}", i);
		CHECK(c.attrs_len == (uint32_t)alen && memcmp(c.attrs, attrs, c.attrs_len) == 0);
		int in_b = model_customer_get(tb, id, len, &c);
		CHECK(in_b == STORE_NOTFOUND || (in_b == 0 && c.sum.monetary == 2.0f));
		shared += in_b == 0;
	}
	CHECK_INT(shared, 40); /* the runs of one letter */
	model_txn_free(ta);
	model_txn_free(tb);
	model_close(a);
	model_close(b);

	CHECK_INT(write_customers(sub("ci0"), 0, 1, false), 0);
	model *e = open_model(sub("ci0"));
	CHECK(e != NULL);
	if (e) {
		CHECK_INT(check_index(e), 0);
		model_close(e);
	}

	CHECK_INT(write_customers(sub("ci-bad"), 100, 1, true), 0);
	strbuf err = STRBUF_INIT;
	model *bad = NULL;
	CHECK_INT(model_open(sub("ci-bad"), &bad, &err), STORE_CORRUPT);
	CHECK(strstr(sb_str(&err), "customer short") != NULL);
	sb_release(&err);
}

int main(void)
{
	if (scratch_begin() != 0)
		return 1;
	RUN(round_trip);
	RUN(first_seen_is_optional);
	RUN(refusals);
	RUN(damaged_models_refused);
	RUN(precomputed_lists);
	RUN(precomputed_lists_extended);
	RUN(customer_index);
	if (scratch_end() != 0)
		return 1;
	return harness_done();
}
