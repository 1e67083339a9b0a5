/*
 * test_live_items: items added since training (live_items.c): placement by
 * title words, the cap and its reservations, and the new-arrivals merge.
 * The fixture model (store_fixture.h): a "Apple" and d "Dates" (fruit), b
 * "Bread" (bakery), c untitled; customer u bought a, v bought b.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "live_items.h"
#include "store_fixture.h"

static model *fixture;
static struct rec_live store;

/* A live item's record as the state would give it. */
static state_item_meta meta_of(const char *title, const char *category, int32_t day)
{
	state_item_meta m = { STATE_ITEM_TITLE | STATE_ITEM_FIRST_SEEN, title, strlen(title),
			      NULL, 0, 0, day };
	if (category) {
		m.category = category;
		m.category_len = strlen(category);
		m.fields |= STATE_ITEM_CATEGORY;
	}
	return m;
}

TEST(placement_by_title_words)
{
	live_place_query q = { "Green APPLE", 11, "fruit", 5, -1.0f, UINT32_MAX };
	neighbor out[4];
	uint32_t n = 0;
	CHECK_INT(live_place_by_titles(fixture, &q, 4, out, &n), 0);
	/* Only titles sharing a word: Apple, lifted by its category too. */
	CHECK_INT(n, 1);
	CHECK_INT(out[0].item, 0);
	/* Half the query's words missing: less than a full match. */
	CHECK(out[0].score > 0.1f && out[0].score < 0.9f);
	q = (live_place_query){ "apple", 5, "fruit", 5, -1.0f, UINT32_MAX };
	CHECK_INT(live_place_by_titles(fixture, &q, 4, out, &n), 0);
	CHECK_INT(n, 1);
	CHECK_NEAR(out[0].score, 1.0, 1e-6); /* every word, same category */
	q = (live_place_query){ "x", 1, NULL, 0, -1.0f, UINT32_MAX }; /* no usable word */
	CHECK_INT(live_place_by_titles(fixture, &q, 4, out, &n), 0);
	CHECK_INT(n, 0);
}

TEST(the_cap_counts_reservations)
{
	live_items *li = live_items_create(2);
	bool room;
	state_item_meta pie = meta_of("Apple pie", "fruit", 100);
	CHECK_INT(live_items_reserve(li, "x1", 2, &room), 0);
	CHECK(room);
	CHECK_INT(live_items_reserve(li, "x2", 2, &room), 0);
	CHECK_INT(live_items_reserve(li, "x3", 2, &room), -1); /* two rooms promised */
	live_items_unreserve(li);                               /* x2's commit failed */
	uint32_t nbrs = 99;
	live_items_put(li, fixture, "x1", 2, 0, &pie, true, &nbrs);
	CHECK_INT(nbrs, 1);
	CHECK(live_items_has(li, "x1", 2));
	CHECK_INT(live_items_reserve(li, "x1", 2, &room), 0); /* live: needs no room */
	CHECK(!room);
	CHECK_INT(live_items_reserve(li, "x3", 2, &room), 0);
	CHECK_INT(live_items_reserve(li, "x4", 2, &room), -1);
	/* A model item is never added, whatever its fields. */
	live_items_put(li, fixture, "a", 1, 0, &pie, true, NULL);
	CHECK(!live_items_has(li, "a", 1));
	CHECK_INT(live_items_count(li), 1);
	live_items_free(li);
}

/* r as a rec_for_* call leaves it for a customer nothing new reached. */
static void empty_result(rec_result *r)
{
	memset(r, 0, sizeof(*r));
	r->source = REC_POPULAR;
}

TEST(merge_ranks_reached_items_first)
{
	live_items *li = live_items_create(10);
	state_item_meta pie = meta_of("Apple pie", NULL, 100), zebra = meta_of("Zebra", NULL, 200);
	live_items_put(li, fixture, "x1", 2, 0, &pie, false, NULL);
	live_items_put(li, fixture, "x2", 2, 0, &zebra, false, NULL);
	model_txn *t;
	model_customer u;
	CHECK_INT(model_txn_begin(fixture, &t), 0);
	CHECK_INT(model_customer_get(t, "u", 1, &u), 0);
	rec_filter f;
	rec_filter_init(&f);
	rec_result r;

	/* Without a new_since rule nothing changes. */
	empty_result(&r);
	live_items_merge(li, fixture, &u, &f, 10, &r, &store);
	CHECK_INT(r.n, 0);

	f.new_since = 50;
	empty_result(&r);
	live_items_merge(li, fixture, &u, &f, 10, &r, &store);
	CHECK_INT(r.n, 2);
	CHECK_INT(r.source, REC_PERSONAL);
	const rec_live_item *first = rec_live_at(fixture, &r, r.items[0].item);
	CHECK(first && first->id_len == 2 && memcmp(first->id, "x1", 2) == 0);
	CHECK(r.items[0].score > 0);
	CHECK_INT(r.items[0].source, REC_CONTENT);
	CHECK_INT(r.items[1].source, REC_POPULAR);
	CHECK(r.items[1].score == 0);

	/* A customer whose history has none of its neighbours: newest first. */
	empty_result(&r);
	live_items_merge(li, fixture, NULL, &f, 10, &r, &store);
	CHECK_INT(r.n, 2);
	CHECK_INT(r.source, REC_POPULAR);
	CHECK(memcmp(rec_live_at(fixture, &r, r.items[0].item)->id, "x2", 2) == 0);

	/* The day rule, n, and an item out of stock. */
	f.new_since = 150;
	empty_result(&r);
	live_items_merge(li, fixture, &u, &f, 10, &r, &store);
	CHECK_INT(r.n, 1);
	f.new_since = 50;
	empty_result(&r);
	live_items_merge(li, fixture, &u, &f, 1, &r, &store);
	CHECK_INT(r.n, 1);
	live_items_put(li, fixture, "x1", 2, STATE_ITEM_UNAVAILABLE, &pie, false, NULL);
	empty_result(&r);
	live_items_merge(li, fixture, &u, &f, 10, &r, &store);
	CHECK_INT(r.n, 1);
	CHECK(memcmp(rec_live_at(fixture, &r, r.items[0].item)->id, "x2", 2) == 0);

	/* A model item in the answer stays, a reached live one above it when it
	 * scores more. */
	live_items_put(li, fixture, "x1", 2, 0, &pie, false, NULL);
	empty_result(&r);
	r.n = 1;
	r.source = REC_PERSONAL;
	r.items[0] = (rec_item){ .item = 3, .score = 0.01f, .source = REC_PERSONAL };
	live_items_merge(li, fixture, &u, &f, 10, &r, &store);
	CHECK_INT(r.n, 3);
	CHECK(rec_live_at(fixture, &r, r.items[0].item) != NULL);
	CHECK_INT(r.items[1].item, 3);
	CHECK(rec_live_at(fixture, &r, r.items[1].item) == NULL);
	model_txn_free(t);
	live_items_free(li);
}

int main(void)
{
	if (scratch_begin() != 0 || write_model(sub("m")) != 0 || !(fixture = open_model(sub("m"))))
		return 1;
	RUN(placement_by_title_words);
	RUN(the_cap_counts_reservations);
	RUN(merge_ranks_reached_items_first);
	model_close(fixture);
	if (scratch_end() != 0)
		return 1;
	return harness_done();
}
