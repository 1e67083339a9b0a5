/*
 * fuzz_model: the model readers' checks. The harness writes a small valid
 * model, except that one record (chosen by the input's first byte) holds
 * the rest of the input instead. model_open must refuse it with a message,
 * or open it and then answer every read without going out of bounds.
 * (LMDB's own pages are not fuzzed: a model file is written by train and
 * renamed into place whole, so it is never half a B-tree.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "recommend.h"
#include "model.h"
#include "model_writer.h"

_Static_assert(MODEL_FORMAT_VERSION == 4, "the meta record below names format 4");

static const char meta[] =
	"{\"format_version\":4,\"byte_order\":\"little\",\"model_id\":\"fuzz\",\"algorithm\":\"ease\","
	"\"as_of\":\"2024-01-01T00:00:00Z\",\"created\":\"2024-01-02T00:00:00Z\",\"items\":3,"
	"\"customers\":1,\"neighbors\":2,\"parameters\":{\"half_life_days\":30,"
	"\"event_weights\":{\"view\":0.2,\"cart\":0.5,\"purchase\":1}},"
	"\"rfm\":{\"recency_days\":[1,2,3,4],\"frequency\":[1,1,2,3],\"monetary\":[1,2,3,4]}}";

/* The records the input may replace, in the order of its first byte. */
static const struct {
	const char *table, *key;
} slots[] = {
	{ "meta", "meta" },	  { "items", "ids" },	     { "items", "titles" },
	{ "items", "categories" }, { "items", "category" },  { "items", "price" },
	{ "items", "popularity" }, { "items", "popular" },   { "neighbors", "all" },
	{ "customers", "c1" },	   { "item_index", "b" },     { "items", "flags" },
	{ "items", "image_urls" }, { "items", "urls" },
};
#define N_SLOTS (sizeof(slots) / sizeof(slots[0]))

static void table3(unsigned char *buf, size_t *len, const char *a, const char *b, const char *c)
{
	uint32_t n = 3, off[4] = { 0, (uint32_t)strlen(a), 0, 0 };
	off[2] = off[1] + (uint32_t)strlen(b);
	off[3] = off[2] + (uint32_t)strlen(c);
	memcpy(buf, &n, 4);
	memcpy(buf + 4, off, 16);
	memcpy(buf + 20, a, strlen(a));
	memcpy(buf + 20 + off[1], b, strlen(b));
	memcpy(buf + 20 + off[2], c, strlen(c));
	*len = 20 + off[3];
}

/* Writes the valid record of slot i into buf. */
static void good_record(unsigned i, unsigned char *buf, size_t *len)
{
	switch (i) {
	case 0: memcpy(buf, meta, sizeof(meta)); *len = sizeof(meta); break;
	case 1: table3(buf, len, "a", "b", "c"); break;
	case 2: table3(buf, len, "Apple", "", "Cheese"); break;
	case 3: { uint32_t n = 1, off[2] = { 0, 4 }; memcpy(buf, &n, 4); memcpy(buf + 4, off, 8);
		  memcpy(buf + 12, "food", 4); *len = 16; break; }
	case 4: { uint32_t c[3] = { 0, UINT32_MAX, 0 }; memcpy(buf, c, 12); *len = 12; break; }
	case 5: { float p[3] = { 1.5f, -1.0f, 3.0f }; memcpy(buf, p, 12); *len = 12; break; }
	case 6: { float p[3] = { 2, 1, 1 }; memcpy(buf, p, 12); *len = 12; break; }
	case 7: { neighbor p[3] = { { 0, 2 }, { 1, 1 }, { 2, 1 } }; memcpy(buf, p, 24); *len = 24; break; }
	case 8: { uint32_t head[5] = { 3, 0, 2, 3, 4 };
		  neighbor p[4] = { { 1, 0.5f }, { 2, 0.25f }, { 0, 0.5f }, { 0, 0.25f } };
		  memcpy(buf, head, 20); memcpy(buf + 20, p, 32); *len = 52; break; }
	case 9: { customer_summary sum = { 1, 2, 1700000000, 1700000000, 1, 3.0f, 101, 0, 0 };
		  history_entry e = { 0, HIST_PURCHASED, 1.0f, 1.0f, 1700000000 };
		  memcpy(buf, &sum, sizeof(sum)); memcpy(buf + sizeof(sum), &e, sizeof(e));
		  memcpy(buf + sizeof(sum) + sizeof(e), "{}", 2);
		  *len = sizeof(sum) + sizeof(e) + 2; break; }
	case 10: { uint32_t idx = 1; memcpy(buf, &idx, 4); *len = 4; break; }
	case 11: { uint8_t f[3] = { 0, MODEL_ITEM_NOT_RECOMMENDABLE, 0 }; memcpy(buf, f, 3); *len = 3; break; }
	case 12: table3(buf, len, "https://i/a.jpg", "", "https://i/c.jpg"); break;
	case 13: table3(buf, len, "https://s/a", "https://s/b", ""); break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *dir;
	if (!dir)
		dir = fuzz_scratch_dir("model");
	if (size == 0)
		return 0;
	unsigned victim = data[0] % N_SLOTS;
	strbuf err = STRBUF_INIT;
	model_writer *w = NULL;
	if (model_writer_open(dir, 1 << 20, &w, &err) != 0)
		abort();
	unsigned char buf[512];
	for (unsigned i = 0; i < N_SLOTS; i++) {
		size_t len = 0;
		const void *val = buf;
		if (i == victim) {
			val = data + 1;
			len = size - 1;
		} else {
			good_record(i, buf, &len);
		}
		if (model_writer_put_raw(w, slots[i].table, slots[i].key, strlen(slots[i].key), val, len,
					 &err) != 0)
			abort();
	}
	uint32_t a = 0, c = 2;
	if (model_writer_put_raw(w, "item_index", "a", 1, &a, 4, &err) ||
	    model_writer_put_raw(w, "item_index", "c", 1, &c, 4, &err) || model_writer_finish(w, &err))
		abort();

	model *m = NULL;
	sb_reset(&err);
	if (model_open(dir, &m, &err) == 0) {
		model_txn *t = NULL;
		if (model_txn_begin(m, &t) == 0) {
			uint32_t n = model_get_info(m)->n_items;
			rec_ctx *ctx = rec_ctx_create(n);
			rec_result *res = malloc(sizeof(*res));
			for (uint32_t i = 0; i < n && i < 64; i++) {
				model_pairs nb;
				size_t len;
				model_neighbors(t, i, &nb);
				model_item_id(m, i, &len);
				model_item_title(m, i, &len);
				uint32_t cat = model_item_category(m, i);
				if (cat != UINT32_MAX)
					model_category_name(m, cat, &len);
				model_item_image_url(m, i, &len);
				model_item_url(m, i, &len);
				model_item_recommendable(m, i);
				model_item_override(m, i, i % 2, true);
				if (res)
					rec_similar(ctx, t, i, 10, NULL, res);
			}
			uint32_t basket[2] = { 0, 2 };
			if (res) {
				rec_for_customer(ctx, t, NULL, "c1", 2, 10, NULL, res);
				rec_for_basket(ctx, t, basket, 2, "c1", 2, 10, NULL, res);
			}
			uint32_t idx;
			model_item_lookup(t, "b", 1, &idx);
			free(res);
			rec_ctx_free(ctx);
			model_txn_free(t);
		}
		model_close(m);
	} else if (err.len == 0) {
		abort(); /* refused without saying why */
	}
	sb_release(&err);
	return 0;
}
