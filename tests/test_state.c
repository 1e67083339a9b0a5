/*
 * test_state: flags, erasures, map growth and reopening (state.c).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "events.h"
#include "harness.h"
#include "ingest.h" /* EVENT_VIEW, EVENT_PURCHASE */
#include "state.h"
#include "store_fixture.h"

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
		batch[i] = (event_in){ "w", 1, items[i], 199, 1000 + i, 1, 0, EVENT_VIEW, true, NULL, 0 };
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

/* The event log's position: written with the entries it covers, read back
 * after a reopen; state_clear empties all but it; state_drop_before keeps
 * the events of entries from its second on, a bounded walk at a time. */
TEST(state_log_position_clear_and_drop)
{
	strbuf err = STRBUF_INIT, cursor = STRBUF_INIT;
	state *s = new_state("logpos", &err);
	if (!s)
		return;
	state_log_pos pos;
	CHECK_INT(state_log_position(s, &pos), 0);
	CHECK_INT(pos.phase, STATE_LOG_NONE);

	/* Three customers, events of log seconds 100 and 200. */
	const char *who[3] = { "a", "b", "c" };
	for (int sec = 100; sec <= 200; sec += 100) {
		event_in ev[3];
		for (int i = 0; i < 3; i++)
			ev[i] = (event_in){ who[i], 1, "item", 4, sec, 1, 0, EVENT_VIEW, true, NULL, 0 };
		state_write w = { .events = ev, .n = 3, .log_sec = (uint32_t)sec };
		state_log_pos p = { .phase = STATE_LOG_APPLYING, .ms = (uint64_t)sec * 1000,
				    .seq = 7, .floor_sec = 5, .customer_len = 1 };
		p.customer[0] = 'c';
		CHECK_INT(state_commit_log(s, &w, 1, &p, &err), 0);
	}
	state_close(s);
	CHECK_INT(state_open(sub("logpos"), 1 << 20, &s, &err), 0);
	CHECK_INT(state_log_position(s, &pos), 0);
	CHECK_INT(pos.phase, STATE_LOG_APPLYING);
	CHECK(pos.ms == 200000 && pos.seq == 7 && pos.floor_sec == 5);
	CHECK(pos.customer_len == 1 && pos.customer[0] == 'c');

	/* Two customers per step: two steps, then done. */
	bool done = false;
	uint64_t dropped = 0, total = 0;
	int steps = 0;
	while (!done && steps < 10) {
		CHECK_INT(state_drop_before(s, 150, &cursor, 2, &done, &dropped, &err), 0);
		total += dropped;
		steps++;
	}
	CHECK_INT(total, 3);
	CHECK(steps >= 2);
	state_txn *t;
	state_events ev;
	CHECK_INT(state_txn_begin(s, &t), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_INT(state_events_get(t, who[i], 1, &ev), 0);
		CHECK_INT(ev.count, 1);
		event_view e;
		size_t at = 0;
		CHECK_INT(state_events_next(&ev, &at, &e), 0);
		CHECK_INT(e.log_sec, 200);
		CHECK_INT(e.ts, 200);
	}
	state_txn_reset(t);

	CHECK_INT(state_set_consent(s, "a", 1, false, &err), 0);
	state_log_pos fresh = { .phase = STATE_LOG_BOOTSTRAP, .ms = 41 };
	CHECK_INT(state_clear(s, &fresh, &err), 0);
	CHECK_INT(state_txn_renew(t), 0);
	uint32_t flags = 1;
	CHECK_INT(state_customer_flags(t, "a", 1, &flags), 0);
	CHECK_INT(flags, 0);
	CHECK_INT(state_events_get(t, "b", 1, &ev), 0);
	CHECK_INT(ev.count, 0);
	state_txn_free(t);
	CHECK_INT(state_log_position(s, &pos), 0);
	CHECK(pos.phase == STATE_LOG_BOOTSTRAP && pos.ms == 41 && pos.customer_len == 0);
	state_close(s);
	sb_release(&cursor);
	sb_release(&err);
}

/* The idle sweep: resumes across batches, wraps at the end, keeps buyers
 * (even when the purchase is in a sealed chunk) and recent customers, and
 * counts what it deleted. */
TEST(state_expire_idle_customers)
{
	strbuf err = STRBUF_INIT;
	state *s = new_state("sweep", &err);
	if (!s)
		return;
	enum { DAY = 86400, NOW = 100 * DAY };
	/* c0..c9: views only, at day 10 (idle past a 30-day TTL) except c5
	 * (day 90); c7 bought first, then 40 views (the purchase is sealed in
	 * a chunk); c8 has 40 old views (chunks) and one recent one first. */
	event_in ev[64];
	char names[10][16];
	for (int c = 0; c < 10; c++) {
		snprintf(names[c], sizeof(names[c]), "c%d", c);
		uint32_t n = 0;
		int extra = c == 7 || c == 8 ? 40 : 0;
		for (int i = 0; i <= extra; i++) {
			int64_t ts = c == 5 ? 90 * DAY : 10 * DAY + i;
			uint8_t type = c == 7 && i == 0 ? EVENT_PURCHASE : EVENT_VIEW;
			if (c == 8 && i == 0)
				ts = 95 * DAY;
			ev[n++] = (event_in){ names[c], 2, "item-with-a-longer-id", 21, ts, 1, 0, type,
					      true, NULL, 0 };
		}
		CHECK_INT(state_write_events(s, ev, n, &err), 0);
	}
	state_set_live_limits(s, 5, 30 * DAY);
	CHECK_INT((int)state_live_max(s), 5);
	uint32_t expired, total = 0;
	for (int batch = 0; batch < 4; batch++) { /* 3 + 3 + 3 + 1, then the end */
		CHECK_INT(state_expire_idle(s, NOW, 3, &expired, &err), 0);
		CHECK(expired <= 3);
		total += expired;
	}
	CHECK_INT(total, 7); /* c0-c4, c6, c9 */
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	CHECK_INT((int)state_live_customers(t), 3);
	for (int c = 0; c < 10; c++)
		CHECK_INT(state_customer_live(t, names[c], 2), c == 5 || c == 7 || c == 8);
	state_counters sc;
	state_get_counters(t, &sc);
	CHECK_INT((int)sc.expired, 7);
	CHECK_INT((int)sc.live, 3);
	state_txn_free(t);
	/* Wrapped to the first again: nothing more to drop now... */
	CHECK_INT(state_expire_idle(s, NOW, 100, &expired, &err), 0);
	CHECK_INT(expired, 0);
	/* ...until c8's recent view is old too; a TTL of 0 drops nothing. */
	CHECK_INT(state_expire_idle(s, 200 * DAY, 100, &expired, &err), 0);
	CHECK_INT(expired, 2); /* c5, c8; c7 bought */
	state_set_live_limits(s, 5, 0);
	CHECK_INT(state_write_events(s, ev, 1, &err), 0); /* c9 again, at day 10 */
	CHECK_INT(state_expire_idle(s, 200 * DAY, 100, &expired, &err), 0);
	CHECK_INT(expired, 0);
	state_close(s);
	sb_release(&err);
}

struct seen_meta {
	int calls;
	uint32_t flags;
	state_item_meta meta;
	char title[64], category[64];
};

static void note_meta(void *arg, const char *id, size_t len, uint32_t flags,
		      const state_item_meta *meta)
{
	struct seen_meta *sm = arg;
	sm->calls++;
	if (len != 3 || memcmp(id, "N05", 3) != 0)
		return;
	sm->flags = flags;
	sm->meta = *meta;
	snprintf(sm->title, sizeof(sm->title), "%.*s", (int)meta->title_len, meta->title);
	snprintf(sm->category, sizeof(sm->category), "%.*s", (int)meta->category_len,
		 meta->category);
}

/* An item record keeps its catalog fields after its flags: a change of the
 * flags keeps the fields, a change of some fields keeps the others, and
 * the flags' readers see the head as before. */
/* A write transaction applied in slices (state_set_write_slice) pauses
 * between them and is still one transaction: every event is there after a
 * reopen, the counter counts them all. */
TEST(state_write_in_slices)
{
	strbuf err = STRBUF_INIT;
	state *s = new_state("sliced", &err);
	if (!s)
		return;
	enum { CUSTOMERS = 30, EACH = 10 };
	static char ids[CUSTOMERS][8];
	event_in ev[CUSTOMERS * EACH];
	for (int i = 0; i < CUSTOMERS * EACH; i++) {
		int c = i % CUSTOMERS;
		snprintf(ids[c], sizeof(ids[c]), "s%d", c);
		ev[i] = (event_in){ ids[c], strlen(ids[c]), "item", 4, 1000 + i, 1, 0, EVENT_VIEW,
				    true, NULL, 0 };
	}
	CHECK_INT(state_write_events(s, ev, 10, &err), 0);
	CHECK_INT(state_write_pauses(s), 0); /* by default, in one stretch */
	state_set_write_slice(s, 1e-9); /* a pause before every event */
	CHECK_INT(state_write_events(s, ev + 10, CUSTOMERS * EACH - 10, &err), 0);
	CHECK(state_write_pauses(s) >= CUSTOMERS * EACH - 10);
	state_close(s);

	CHECK_INT(state_open(sub("sliced"), 1 << 20, &s, &err), 0);
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	for (int c = 0; c < CUSTOMERS; c++) {
		state_events got;
		CHECK_INT(state_events_get(t, ids[c], strlen(ids[c]), &got), 0);
		CHECK_INT(got.count, EACH);
	}
	state_counters sc;
	CHECK_INT(state_get_counters(t, &sc), 0);
	CHECK_INT(sc.events, CUSTOMERS * EACH);
	state_txn_free(t);
	state_close(s);
	sb_release(&err);
}

/* A client that waits for each answer, as fast as can be: each write is
 * submitted from the callback of the one before, on the writer thread,
 * before the writer looks at its queue again. */
#define CHAIN_WRITES 10
struct chain {
	events_writer *w;
	events_request req[CHAIN_WRITES];
	event_in ev;
	int next, failed;
	atomic_int finished;
};

static void chain_done(void *arg, int rc)
{
	struct chain *c = arg;
	c->failed |= rc != 0;
	if (++c->next < CHAIN_WRITES &&
	    events_submit(c->w, &c->req[c->next], &c->ev, 1, chain_done, c) == 0)
		return;
	atomic_store(&c->finished, 1);
}

/* Commit pacing (events_writer_set_commit_delay) never holds back a
 * writer that waits for its answers: the check for writes that came
 * during a commit is made before its answers go out. */
TEST(commit_delay_spares_a_waiting_writer)
{
	strbuf err = STRBUF_INIT;
	state *s = new_state("paced", &err);
	if (!s)
		return;
	struct chain c = { .ev = { .customer = "u", .customer_len = 1, .item = "i1",
				   .item_len = 2, .ts = 1700000000, .quantity = 1,
				   .type = EVENT_VIEW } };
	CHECK_INT(events_writer_start(s, &c.w, &err), 0);
	events_writer_set_commit_delay(c.w, 1.0);
	CHECK_INT(events_submit(c.w, &c.req[0], &c.ev, 1, chain_done, &c), 0);
	/* Bounded: with each write held for the delay this takes 9 s. */
	for (int i = 0; i < 3000 && !atomic_load(&c.finished); i++)
		usleep(10000);
	CHECK(atomic_load(&c.finished));
	CHECK_INT(c.failed, 0);
	uint64_t commits, events, gathered;
	events_writer_stats(c.w, &commits, &events, &gathered);
	CHECK_INT(commits, CHAIN_WRITES);
	CHECK_INT(gathered, 0);
	events_writer_stop(c.w);
	state_close(s);
	sb_release(&err);
}

TEST(state_item_catalog_fields)
{
	strbuf err = STRBUF_INIT, store = STRBUF_INIT;
	state *s = new_state("items", &err);
	if (!s)
		return;
	state_item_meta in = { STATE_ITEM_TITLE | STATE_ITEM_CATEGORY | STATE_ITEM_FIRST_SEEN,
			       "HEART CUSHION", 13, "home", 4, 0, 19802 };
	state_write w = { .item = "N05", .item_len = 3, .meta = &in };
	CHECK_INT(state_commit(s, &w, 1, &err), 0);
	w = (state_write){ .item = "N05", .item_len = 3, .set = STATE_ITEM_UNAVAILABLE };
	CHECK_INT(state_commit(s, &w, 1, &err), 0);
	state_item_meta price = { .fields = STATE_ITEM_PRICE | STATE_ITEM_TITLE, .title = "",
				  .title_len = 0, .price = 4.5f };
	w = (state_write){ .item = "N05", .item_len = 3, .meta = &price };
	CHECK_INT(state_commit(s, &w, 1, &err), 0);
	uint32_t flags;
	state_item_meta out;
	CHECK_INT(state_item_get_now(s, "N05", 3, &flags, &out, &store), 0);
	CHECK_INT(flags, STATE_ITEM_UNAVAILABLE);
	CHECK_INT(out.fields, STATE_ITEM_FIELDS);
	CHECK_INT(out.title_len, 0);
	CHECK(out.category_len == 4 && memcmp(out.category, "home", 4) == 0);
	CHECK_NEAR(out.price, 4.5, 1e-6);
	CHECK_INT(out.first_seen, 19802);
	CHECK_INT(state_item_flags_now(s, "N05", 3, &flags), 0);
	CHECK_INT(flags, STATE_ITEM_UNAVAILABLE);
	/* A flags-only item has no fields. */
	w = (state_write){ .item = "O01", .item_len = 3, .set = STATE_ITEM_NOT_RECOMMENDABLE };
	CHECK_INT(state_commit(s, &w, 1, &err), 0);
	CHECK_INT(state_item_get_now(s, "O01", 3, &flags, &out, &store), 0);
	CHECK_INT(out.fields, 0);
	CHECK_INT(state_item_get_now(s, "none", 4, &flags, &out, &store), 0);
	CHECK_INT(flags | out.fields, 0);
	state_close(s);
	/* Reopened, each item is walked once with its fields. */
	s = new_state("items", &err);
	if (!s)
		return;
	struct seen_meta sm = { 0 };
	CHECK_INT(state_items_meta_each(s, note_meta, &sm), 0);
	CHECK_INT(sm.calls, 2);
	CHECK_INT(sm.flags, STATE_ITEM_UNAVAILABLE);
	CHECK_STR(sm.category, "home");
	state_close(s);
	sb_release(&store);
	sb_release(&err);
}

/* Customer i of the "seen" test: c0, c1, ... */
static size_t seen_id(uint32_t i, char *out)
{
	return (size_t)snprintf(out, 16, "c%u", i);
}

/* What the two lookups say of customer i: 0 none, 1 flags only, 2 a log
 * only, 3 both; -1 on an error. */
static int state_of(state_txn *t, uint32_t i)
{
	char id[16];
	size_t len = seen_id(i, id);
	uint32_t flags;
	state_events ev;
	if (state_customer_flags(t, id, len, &flags) != 0 || state_events_get(t, id, len, &ev) != 0)
		return -1;
	return (flags == STATE_NO_PERSONALIZATION) + 2 * (ev.count == 1);
}

/* The filter that spares the lookups of customers without state
 * (state_internal.h, "seen") never hides one that has some: written in
 * this process and seen at the next snapshot, not before it; read back
 * from the tables after a reopen; none of 20,000 others gets any. */
TEST(state_seen_filter)
{
	strbuf err = STRBUF_INIT;
	state *s = NULL;
	/* room for all the writes: t, active across them, keeps the map from
	 * growing */
	CHECK_INT(state_open(sub("seen"), 64 << 20, &s, &err), 0);
	if (!s)
		return;
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	const uint32_t n = 600; /* i % 3: 0 nothing, 1 consent withdrawn, 2 a view */
	static char ids[600][16];
	static event_in ev[600];
	uint32_t n_ev = 0;
	for (uint32_t i = 0; i < n; i++) {
		size_t len = seen_id(i, ids[i]);
		if (i % 3 == 1)
			CHECK_INT(state_set_consent(s, ids[i], len, false, &err), 0);
		if (i % 3 == 2)
			ev[n_ev++] = (event_in){ ids[i], len, "item", 4, 1000 + i, 1, 0, EVENT_VIEW,
						 true, NULL, 0 };
	}
	CHECK_INT(state_write_events(s, ev, n_ev, &err), 0);
	/* t's snapshot is older than every write: it sees none of them */
	for (uint32_t i = 0; i < n; i++)
		CHECK_INT(state_of(t, i), 0);
	for (int round = 0; round < 2; round++) {
		state_txn_reset(t);
		CHECK_INT(state_txn_renew(t), 0);
		for (uint32_t i = 0; i < n; i++)
			CHECK_INT(state_of(t, i), i % 3);
		for (uint32_t i = n; i < n + 20000; i++)
			CHECK_INT(state_of(t, i), 0);
		if (round == 1)
			break;
		/* reopened: the filter comes from the tables */
		state_txn_free(t);
		state_close(s);
		CHECK_INT(state_open(sub("seen"), 64 << 20, &s, &err), 0);
		CHECK_INT(state_txn_begin(s, &t), 0);
	}
	state_txn_free(t);
	state_close(s);
	sb_release(&err);
}

int main(void)
{
	if (scratch_begin() != 0)
		return 1;
	RUN(state_flags_and_events);
	RUN(state_log_position_clear_and_drop);
	RUN(state_expire_idle_customers);
	RUN(state_item_catalog_fields);
	RUN(state_write_in_slices);
	RUN(state_seen_filter);
	RUN(commit_delay_spares_a_waiting_writer);
	if (scratch_end() != 0)
		return 1;
	return harness_done();
}
