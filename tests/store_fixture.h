/*
 * store_fixture: what the store's tests share: a scratch directory and a
 * small hand-built model (static inline: a test file uses what it needs).
 */
#ifndef SHOPKEEPER_TEST_STORE_FIXTURE_H
#define SHOPKEEPER_TEST_STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "model_writer.h"
#include "strbuf.h"

static char scratch_root[] = "/tmp/shopkeeper-test-store-XXXXXX";

/* Creates the scratch directory; 0 or -1. */
static inline int scratch_begin(void)
{
	return mkdtemp(scratch_root) ? 0 : -1;
}

/* Removes it; 0 or -1. */
static inline int scratch_end(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", scratch_root);
	return system(cmd) == 0 ? 0 : -1;
}

/* The path of `name` in the scratch directory (one of 8 rotating buffers). */
static inline const char *sub(const char *name)
{
	static char paths[8][256];
	static unsigned next;
	char *p = paths[next++ % 8];
	snprintf(p, 256, "%s/%s", scratch_root, name);
	return p;
}

static const char fixture_meta[] =
	"{\"format_version\":3,\"byte_order\":\"little\",\"model_id\":\"t-1\",\"algorithm\":\"cosine\","
	"\"as_of\":\"2024-01-10T00:00:00Z\",\"created\":\"2024-01-10T00:00:00Z\",\"items\":4,"
	"\"customers\":2,\"neighbors\":3,\"parameters\":{\"half_life_days\":0,"
	"\"event_weights\":{\"view\":0.2,\"cart\":0.5,\"purchase\":1}},"
	"\"rfm\":{\"recency_days\":[1,2,3,4],\"frequency\":[1,1,2,3],\"monetary\":[1,2,3,4]}}";

/* Writes the fixture model into dir. Items a, b, c, d. Neighbours: a -> b
 * .9, c .5; b -> a .9, d .4; c -> a .5; d -> b .4. Customer u bought a; v
 * bought b, viewed c. With first_seen (4 days), the optional first_seen
 * table too. Returns 0 or a STORE_* code. */
static inline int write_model_dated(const char *dir, const int32_t *first_seen)
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
	rc = model_writer_put_meta(w, fixture_meta, &err);
	rc = rc ? rc : model_writer_put_items(w, &idt, pop, recent, &err);
	rc = rc ? rc : model_writer_put_catalog(w, &tt, &ct, category, price, &err);
	rc = rc ? rc : model_writer_put_neighbors(w, lists, 3, counts, 4, &err);
	if (first_seen)
		rc = rc ? rc : model_writer_put_first_seen(w, first_seen, 4, &err);
	rc = rc ? rc : model_writer_put_customer(w, "u", 1, &su, hu, "{}", &err);
	rc = rc ? rc : model_writer_put_customer(w, "v", 1, &sv, hv, NULL, &err);
	if (rc)
		model_writer_abort(w);
	else
		rc = model_writer_finish(w, &err);
	if (rc)
		fprintf(stderr, "write_model: %s\n", sb_str(&err));
	sb_release(&err);
	return rc;
}

static inline int write_model(const char *dir)
{
	return write_model_dated(dir, NULL);
}

/* Opens the model in dir; NULL, with the message printed, when that fails. */
static inline model *open_model(const char *dir)
{
	model *m = NULL;
	strbuf err = STRBUF_INIT;
	if (model_open(dir, &m, &err) != 0)
		fprintf(stderr, "model_open: %s\n", sb_str(&err));
	sb_release(&err);
	return m;
}

#endif
