/*
 * test_state_events: the event logs: tails and chunks, the cap, the walk
 * over customers, erasure, and the conversions from formats 1 and 2
 * (state_events.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

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
						 EVENT_VIEW, true, NULL, 0 };
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

/* The chunks' cursor is renewed only when a log with chunks is read
 * (state_txn_renew leaves it): across renewals, with logs of a tail alone
 * read in between, every read sees its own snapshot's chunks. */
TEST(chunk_cursor_across_renewals)
{
	strbuf err = STRBUF_INIT;
	state *s = new_state("renewals", &err);
	if (!s)
		return;
	static char items[2 * 800][32];
	static event_in batch[2 * 800];
	const char *who[2] = { "c", "t" };
	const int first[2] = { 120, 2 }, more[2] = { 400, 3 };
	CHECK_INT(state_write_events(s, batch, interleaved(batch, items, 800, who, first, 2, 1000),
				     &err), 0);
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	check_log(t, "c", 120, 1000);
	check_log(t, "t", 2, 2000);
	for (int round = 0; round < 3; round++) {
		state_txn_reset(t);
		/* round 0: c's log grows by new chunks; round 1: by more than the
		 * cap drops; round 2: nothing */
		if (round < 2) {
			int per[2] = { more[0] * (round + 1), more[1] };
			uint32_t n = interleaved(batch, items, 800, who, per, 2, 1000);
			/* only the events after those written before */
			uint32_t skip = 0;
			for (uint32_t i = 0; i < n; i++)
				if (batch[i].customer[0] == 'c' ? batch[i].ts >= 1000 + (round ? 400 : 120)
								 : round == 0 && batch[i].ts == 2002)
					batch[skip++] = batch[i];
			CHECK_INT(state_write_events(s, batch, skip, &err), 0);
		}
		CHECK_INT(state_txn_renew(t), 0);
		check_log(t, "t", 3, 2000); /* a tail alone: the cursor stays as it was */
		state_events ev;
		CHECK_INT(state_events_get(t, "nobody", 6, &ev), 0);
		CHECK_INT(ev.count, 0);
		if (round == 0)
			check_log(t, "c", 400, 1000);
		else
			check_log(t, "c", STATE_MAX_EVENTS, 1000 + 800 - STATE_MAX_EVENTS);
	}
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

/* A log a converted state must hold: check_log's arguments. */
struct log_want {
	const char *who;
	uint32_t count;
	int64_t first_ts;
};

/* Commits an old_state's contents, opens it as a state (converting it)
 * and checks the logs in want[0..n) through a read transaction left in
 * *t; NULL, with the message printed, when the open fails. */
static state *open_converted(MDB_env *env, MDB_txn *txn, const char *dir,
			     const struct log_want *want, size_t n, state_txn **t, strbuf *err)
{
	state *s = NULL;
	CHECK_INT(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	CHECK_INT(state_open(dir, 1 << 20, &s, err), 0);
	if (!s) {
		fprintf(stderr, "%s\n", sb_str(err));
		return NULL;
	}
	CHECK_INT(state_txn_begin(s, t), 0);
	for (size_t i = 0; i < n; i++)
		check_log(*t, want[i].who, want[i].count, want[i].first_ts);
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
	static const struct log_want want[] = { { "old", 40, 500 }, { "z", 1, 500 } };
	state_txn *t;
	state *s = open_converted(env, txn, dir, want, 2, &t, &err);
	if (!s)
		return;
	state_events ev;
	CHECK_INT(state_events_get(t, "old", 3, &ev), 0);
	event_view e;
	size_t pos = 0;
	CHECK_INT(state_events_next(&ev, &pos, &e), 0);
	CHECK_INT(e.type, EVENT_PURCHASE);
	CHECK_NEAR(e.price, 2, 1e-9);
	state_txn_free(t);
	/* still appendable after the conversion */
	event_in more = { "old", 3, "item-540", 8, 540, 1, 2, EVENT_PURCHASE, true, NULL, 0 };
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
	event_in late[2] = { { "drop", 4, "late", 4, 999, 1, 0, EVENT_VIEW, true, NULL, 0 },
			     { "keep", 4, "item-160", 8, 160, 1, 0, EVENT_VIEW, true, NULL, 0 } };
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
	static const struct log_want want[] = { { "a", 490, 1000 }, { "b", 3, 2000 },
						{ "c", 2, 3000 } };
	state_txn *t;
	state *s = open_converted(env, txn, dir, want, 3, &t, &err);
	if (!s)
		return;
	state_txn_reset(t);
	/* 30 more for "a": the 20 oldest go */
	static char items[30][32];
	static event_in more[30];
	for (int i = 0; i < 30; i++) {
		int len = snprintf(items[i], 32, "item-%d", 1490 + i);
		more[i] = (event_in){ "a", 1, items[i], (size_t)len, 1490 + i, 1, 0, EVENT_VIEW, true, NULL, 0 };
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
	if (scratch_begin() != 0)
		return 1;
	RUN(event_log_chunks);
	RUN(chunk_cursor_across_renewals);
	RUN(state_format_1_converted);
	RUN(erasure_deletes_the_log);
	RUN(state_format_2_converted);
	if (scratch_end() != 0)
		return 1;
	return harness_done();
}
