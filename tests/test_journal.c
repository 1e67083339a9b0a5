/*
 * test_journal: events acknowledged into the state's journal and merged
 * into the customers' logs later (state_journal.c): what readers see
 * before, during and after a merge, old snapshots, the 500-event limit
 * across the two, erasure, the idle sweep, the walk over customers,
 * read-only opens, and recovery after a crash before or inside a merge.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ingest.h" /* EVENT_VIEW, EVENT_PURCHASE */
#include "state.h"
#include "store_fixture.h"

static state *open_journal(const char *name, strbuf *err)
{
	state *s = NULL;
	CHECK_INT(state_open(sub(name), 1 << 20, &s, err), 0);
	if (s)
		state_set_merge_after(s, 5.0);
	return s;
}

/* Writes events "<prefix><k>" for k in [from, to) of customer id at time
 * ts + k, in batches of 50. */
static void write_range(state *s, const char *id, const char *prefix, int from, int to,
			int64_t ts, uint8_t type, strbuf *err)
{
	static char items[50][32];
	event_in ev[50];
	int n = 0;
	for (int k = from; k < to; k++) {
		snprintf(items[n], sizeof(items[n]), "%s%d", prefix, k);
		ev[n] = (event_in){ id, strlen(id), items[n], strlen(items[n]), ts + k, 1, 0, type,
				    true, NULL, 0 };
		if (++n == 50 || k + 1 == to) {
			CHECK_INT(state_write_events(s, ev, (uint32_t)n, err), 0);
			n = 0;
		}
	}
}

/* The customer's log as t reads it: item ids joined by ',' (into out). */
static uint32_t log_text(state_txn *t, const char *id, strbuf *out)
{
	state_events ev;
	sb_reset(out);
	CHECK_INT(state_events_get(t, id, strlen(id), &ev), 0);
	event_view e;
	size_t pos = 0;
	uint32_t n = 0;
	while (state_events_next(&ev, &pos, &e) == 0) {
		if (n++)
			sb_addc(out, ',');
		sb_add(out, e.item, e.item_len);
	}
	CHECK_INT(n, ev.count);
	sb_addc(out, '\0');
	return n;
}

/* The expected text of items prefix<k>, k in [from, to). */
static const char *expect(strbuf *sb, const char *prefix, int from, int to)
{
	sb_reset(sb);
	for (int k = from; k < to; k++)
		sb_addf(sb, "%s%s%d", k > from ? "," : "", prefix, k);
	sb_addc(sb, '\0');
	return sb->buf;
}

static uint64_t pending(state *s)
{
	uint64_t p, m;
	state_journal_stats(s, &p, &m);
	return p;
}

/* Events are read from the journal at once, then from the logs: the same
 * log either way, in order, and an older snapshot keeps its view through
 * the merge (no event lost, none twice). */
TEST(journal_reads_through_a_merge)
{
	strbuf err = STRBUF_INIT, got = STRBUF_INIT, want = STRBUF_INIT;
	state *s = open_journal("reads", &err);
	if (!s)
		return;
	write_range(s, "a", "x", 0, 30, 1000, EVENT_VIEW, &err); /* a log of 30 */
	CHECK_INT(pending(s), 30);
	CHECK_INT(state_journal_merge(s, true, &err), 0);
	CHECK_INT(pending(s), 0);
	write_range(s, "a", "y", 0, 20, 2000, EVENT_VIEW, &err); /* and 20 in the journal */
	write_range(s, "b", "z", 0, 3, 3000, EVENT_VIEW, &err);  /* b: the journal alone */
	CHECK_INT(pending(s), 23);
	CHECK(state_journal_due(s) > 0);

	state_txn *old;
	CHECK_INT(state_txn_begin(s, &old), 0);
	CHECK_INT(log_text(old, "a", &got), 50);
	sb_reset(&want);
	sb_adds(&want, expect(&got, "x", 0, 30));
	sb_addc(&want, ',');
	sb_adds(&want, expect(&got, "y", 0, 20));
	log_text(old, "a", &got);
	CHECK_STR(got.buf, want.buf);
	CHECK_INT(log_text(old, "b", &got), 3);
	CHECK_INT((int)state_live_customers(old), 2);
	CHECK(state_customer_live(old, "b", 1));
	CHECK(!state_customer_live(old, "c", 1));

	CHECK_INT(state_journal_merge(s, true, &err), 0);
	CHECK_INT(pending(s), 0);
	CHECK_INT(state_journal_due(s), 0);
	/* The old snapshot: the same, its events still in the index. */
	log_text(old, "a", &got);
	CHECK_STR(got.buf, want.buf);
	CHECK_INT(log_text(old, "b", &got), 3);
	state_txn *now;
	CHECK_INT(state_txn_begin(s, &now), 0);
	log_text(now, "a", &got);
	CHECK_STR(got.buf, want.buf);
	CHECK_STR((log_text(now, "b", &got), got.buf), "z0,z1,z2");
	CHECK_INT((int)state_live_customers(now), 2);
	state_txn_free(now);
	state_txn_free(old);

	/* Renewed after the merge: from the logs alone. */
	CHECK_INT(state_txn_begin(s, &now), 0);
	log_text(now, "a", &got);
	CHECK_STR(got.buf, want.buf);
	state_txn_free(now);
	state_close(s);
	sb_release(&got);
	sb_release(&want);
	sb_release(&err);
}

/* The newest STATE_MAX_EVENTS of log and journal together, before and
 * after the merge. */
TEST(journal_keeps_the_newest_500)
{
	strbuf err = STRBUF_INIT, got = STRBUF_INIT, want = STRBUF_INIT;
	state *s = open_journal("cap", &err);
	if (!s)
		return;
	write_range(s, "c", "o", 0, 400, 1000, EVENT_VIEW, &err);
	CHECK_INT(state_journal_merge(s, true, &err), 0);
	write_range(s, "c", "n", 0, 200, 5000, EVENT_VIEW, &err);
	sb_adds(&want, expect(&got, "o", 100, 400));
	sb_addc(&want, ',');
	sb_adds(&want, expect(&got, "n", 0, 200));
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	CHECK_INT(log_text(t, "c", &got), STATE_MAX_EVENTS);
	CHECK_STR(got.buf, want.buf);
	state_txn_reset(t);
	CHECK_INT(state_journal_merge(s, true, &err), 0);
	CHECK_INT(state_txn_renew(t), 0);
	CHECK_INT(log_text(t, "c", &got), STATE_MAX_EVENTS);
	CHECK_STR(got.buf, want.buf);
	state_txn_free(t);
	state_close(s);
	sb_release(&got);
	sb_release(&want);
	sb_release(&err);
}

/* A crash (the state closed without merging, or inside a merge cycle)
 * loses nothing and applies nothing twice: the next open merges what the
 * journal holds beyond the cycle's record. */
TEST(journal_recovers_after_a_crash)
{
	strbuf err = STRBUF_INIT, got = STRBUF_INIT, want = STRBUF_INIT;
	state *s = open_journal("crash", &err);
	if (!s)
		return;
	/* 60 customers of 40 events: a merge step (about 1,000 events) stops
	 * inside the cycle. */
	char ids[60][16];
	for (int c = 0; c < 60; c++) {
		snprintf(ids[c], sizeof(ids[c]), "k%02d", c);
		write_range(s, ids[c], "e", 0, 40, 1000, EVENT_VIEW, &err);
	}
	CHECK_INT(state_journal_merge(s, false, &err), 0); /* one step */
	uint64_t left = pending(s);
	CHECK(left > 0 && left < 60 * 40);
	write_range(s, "k00", "late", 0, 5, 9000, EVENT_VIEW, &err); /* after the cycle began */
	state_close(s); /* as after kill -9: the journal and the cycle's record stay */

	s = open_journal("crash", &err);
	if (!s)
		return;
	CHECK_INT(pending(s), 0); /* all in the logs now */
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	for (int c = 0; c < 60; c++) {
		sb_reset(&want);
		sb_adds(&want, expect(&got, "e", 0, 40));
		if (c == 0) {
			sb_addc(&want, ',');
			sb_adds(&want, expect(&got, "late", 0, 5));
		}
		log_text(t, ids[c], &got);
		CHECK_STR(got.buf, want.buf);
	}
	state_counters sc;
	state_get_counters(t, &sc);
	CHECK_INT((int)sc.events, 60 * 40 + 5);
	CHECK_INT((int)sc.live, 60);
	state_txn_free(t);
	/* And the journal starts again: new events, merged, reopened. */
	write_range(s, "k01", "again", 0, 2, 9500, EVENT_VIEW, &err);
	state_close(s);
	s = open_journal("crash", &err);
	if (!s)
		return;
	CHECK_INT(state_txn_begin(s, &t), 0);
	CHECK_INT(log_text(t, "k01", &got), 42);
	state_txn_free(t);
	state_close(s);
	sb_release(&got);
	sb_release(&want);
	sb_release(&err);
}

/* An erasure removes the journal's events too, for good: not read, not
 * merged, not brought back by a restart. */
TEST(journal_erasure)
{
	strbuf err = STRBUF_INIT, got = STRBUF_INIT;
	state *s = open_journal("erase", &err);
	if (!s)
		return;
	write_range(s, "gone", "g", 0, 10, 1000, EVENT_VIEW, &err);
	CHECK_INT(state_journal_merge(s, true, &err), 0);
	write_range(s, "gone", "h", 0, 10, 2000, EVENT_VIEW, &err);
	write_range(s, "kept", "k", 0, 3, 2000, EVENT_VIEW, &err);
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	CHECK_INT(log_text(t, "gone", &got), 20);
	state_txn_reset(t);
	CHECK_INT(state_erase(s, "gone", 4, &err), 0);
	CHECK_INT(pending(s), 3);
	CHECK_INT(state_txn_renew(t), 0);
	CHECK_INT(log_text(t, "gone", &got), 0);
	CHECK(!state_customer_live(t, "gone", 4));
	state_txn_free(t);
	state_close(s); /* before any merge */
	s = open_journal("erase", &err);
	if (!s)
		return;
	CHECK_INT(state_txn_begin(s, &t), 0);
	CHECK_INT(log_text(t, "gone", &got), 0);
	CHECK_INT(log_text(t, "kept", &got), 3);
	state_txn_free(t);
	state_close(s);
	sb_release(&got);
	sb_release(&err);
}

/* The walk over customers joins logs and journal in key order, each
 * customer once, and resumes after a key. */
TEST(journal_walk)
{
	strbuf err = STRBUF_INIT, got = STRBUF_INIT;
	state *s = open_journal("walk", &err);
	if (!s)
		return;
	write_range(s, "b", "l", 0, 2, 1000, EVENT_VIEW, &err);
	write_range(s, "d", "l", 0, 2, 1000, EVENT_VIEW, &err);
	CHECK_INT(state_journal_merge(s, true, &err), 0);
	write_range(s, "a", "j", 0, 1, 2000, EVENT_VIEW, &err);  /* journal alone */
	write_range(s, "d", "j", 0, 3, 2000, EVENT_VIEW, &err);  /* both */
	write_range(s, "dd", "j", 0, 1, 2000, EVENT_VIEW, &err); /* journal, after d */
	write_range(s, "c", "j", 0, 1, 2000, EVENT_VIEW, &err);
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	for (int resume = 0; resume < 2; resume++) {
		state_iter *it;
		CHECK_INT(state_iter_begin(t, resume ? "b" : NULL, resume, &it), 0);
		const char *id;
		size_t len;
		state_events ev;
		sb_reset(&got);
		while (state_iter_next(it, &id, &len, &ev) == 0)
			sb_addf(&got, "%.*s:%u ", (int)len, id, ev.count);
		sb_addc(&got, '\0');
		CHECK_STR(got.buf, resume ? "c:1 d:5 dd:1 " : "a:1 b:2 c:1 d:5 dd:1 ");
		state_iter_end(it);
	}
	state_txn_free(t);
	state_close(s);
	sb_release(&got);
	sb_release(&err);
}

static int by_key(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Writes one event (item "i", time ts) for each of ids[k], k in [from, to)
 * stepping by step, in batches of 50. */
static void write_each(state *s, char ids[][8], int from, int to, int step, int64_t ts,
		       strbuf *err)
{
	event_in ev[50];
	int n = 0;
	for (int k = from; k < to; k += step) {
		ev[n] = (event_in){ ids[k], strlen(ids[k]), "i", 1, ts, 1, 0, EVENT_VIEW, true, NULL, 0 };
		if (++n == 50 || k + step >= to) {
			CHECK_INT(state_write_events(s, ev, (uint32_t)n, err), 0);
			n = 0;
		}
	}
}

/* The same over 600 customers of ids of several lengths ("c7", "c70",
 * "c700": a prefix first), a third in the logs alone, a third in the
 * journal alone, a third in both: every one once, in key order, from the
 * start and after a key. */
TEST(journal_walk_many)
{
	enum { N = 600 };
	static char ids[N][8];
	char *want[N];
	for (int k = 0; k < N; k++) {
		snprintf(ids[k], sizeof(ids[k]), "c%d", (k * 7919) % 1000);
		want[k] = ids[k];
	}
	qsort(want, N, sizeof(*want), by_key);
	strbuf err = STRBUF_INIT;
	state *s = open_journal("walk_many", &err);
	if (!s)
		return;
	write_each(s, ids, 0, N, 3, 1000, &err); /* logs alone */
	write_each(s, ids, 2, N, 3, 1000, &err); /* both: the log first */
	CHECK_INT(state_journal_merge(s, true, &err), 0);
	write_each(s, ids, 1, N, 3, 2000, &err); /* journal alone */
	write_each(s, ids, 2, N, 3, 2000, &err);
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	for (int from = 0; from < N; from += N / 2) {
		state_iter *it;
		const char *after = from ? want[from - 1] : NULL;
		CHECK_INT(state_iter_begin(t, after, after ? strlen(after) : 0, &it), 0);
		const char *id;
		size_t len;
		state_events ev;
		int k = from;
		while (state_iter_next(it, &id, &len, &ev) == 0) {
			CHECK_INT(k < N, 1);
			if (k == N)
				break;
			CHECK_INT(len == strlen(want[k]) && memcmp(id, want[k], len) == 0, 1);
			size_t at = (size_t)(want[k] - ids[0]) / sizeof(ids[0]); /* its index */
			CHECK_INT(ev.count, at % 3 == 2 ? 2 : 1);
			k++;
		}
		CHECK_INT(k, N);
		state_iter_end(it);
	}
	state_txn_free(t);
	state_close(s);
	sb_release(&err);
}

/* The idle sweep leaves a customer whose events wait in the journal,
 * whatever their times, and drops the log once merged and idle. */
TEST(journal_idle_sweep)
{
	strbuf err = STRBUF_INIT;
	state *s = open_journal("idle", &err);
	if (!s)
		return;
	enum { DAY = 86400 };
	write_range(s, "old", "v", 0, 3, 10 * DAY, EVENT_VIEW, &err);
	state_set_live_limits(s, 100, 30 * DAY);
	uint32_t expired;
	CHECK_INT(state_expire_idle(s, 100 * DAY, 100, &expired, &err), 0);
	CHECK_INT(expired, 0);
	CHECK_INT(state_journal_merge(s, true, &err), 0);
	CHECK_INT(state_expire_idle(s, 100 * DAY, 100, &expired, &err), 0);
	CHECK_INT(expired, 1);
	state_close(s);
	sb_release(&err);
}

/* A read-only open (export, report, train --state) beside the server sees
 * the journal's events as part of the logs. */
TEST(journal_read_only_view)
{
	strbuf err = STRBUF_INIT, got = STRBUF_INIT;
	state *s = open_journal("ro", &err);
	if (!s)
		return;
	write_range(s, "m", "a", 0, 4, 1000, EVENT_VIEW, &err);
	CHECK_INT(state_journal_merge(s, true, &err), 0);
	write_range(s, "m", "b", 0, 2, 2000, EVENT_VIEW, &err);
	write_range(s, "n", "b", 0, 1, 2000, EVENT_VIEW, &err);
	state *ro = NULL;
	CHECK_INT(state_open_readonly(sub("ro"), &ro, &err), 0);
	if (ro) {
		state_txn *t;
		CHECK_INT(state_txn_begin(ro, &t), 0);
		CHECK_STR((log_text(t, "m", &got), got.buf), "a0,a1,a2,a3,b0,b1");
		CHECK_INT(log_text(t, "n", &got), 1);
		CHECK_INT((int)state_live_customers(t), 2);
		state_iter *it;
		CHECK_INT(state_iter_begin(t, NULL, 0, &it), 0);
		const char *id;
		size_t len;
		state_events ev;
		int n = 0;
		while (state_iter_next(it, &id, &len, &ev) == 0)
			n += (int)ev.count;
		CHECK_INT(n, 7);
		state_iter_end(it);
		state_txn_reset(t);
		CHECK_INT(state_journal_merge(s, true, &err), 0);
		CHECK_INT(state_txn_renew(t), 0);
		CHECK_STR((log_text(t, "m", &got), got.buf), "a0,a1,a2,a3,b0,b1");
		state_txn_free(t);
		state_close(ro);
	}
	state_close(s);
	sb_release(&got);
	sb_release(&err);
}

/* A map that fills inside a commit is grown and the commit retried: the
 * journal's index keeps each event once. */
TEST(journal_map_growth)
{
	strbuf err = STRBUF_INIT, got = STRBUF_INIT;
	state *s = open_journal("grow", &err);
	if (!s)
		return;
	static char items[400][200];
	event_in *batch = calloc(400, sizeof(*batch));
	for (int i = 0; i < 400; i++) {
		snprintf(items[i], sizeof(items[i]), "%0190d", i);
		batch[i] = (event_in){ "g", 1, items[i], 190, 1000 + i, 1, 0, EVENT_VIEW, true, NULL, 0 };
	}
	for (int round = 0; round < 20; round++)
		CHECK_INT(state_write_events(s, batch, 400, &err), 0);
	CHECK_INT(pending(s), 8000);
	state_txn *t;
	CHECK_INT(state_txn_begin(s, &t), 0);
	CHECK_INT(log_text(t, "g", &got), STATE_MAX_EVENTS);
	/* the newest 500: 300..399 of the 19th round, then all of the 20th */
	char first[200], last[200];
	snprintf(first, sizeof(first), "%0190d,", 300);
	snprintf(last, sizeof(last), ",%0190d", 399);
	CHECK(strncmp(got.buf, first, strlen(first)) == 0);
	CHECK(strcmp(got.buf + strlen(got.buf) - strlen(last), last) == 0);
	state_txn_free(t);
	CHECK_INT(state_journal_merge(s, true, &err), 0);
	CHECK_INT(state_txn_begin(s, &t), 0);
	CHECK_INT(log_text(t, "g", &got), STATE_MAX_EVENTS);
	state_counters sc;
	state_get_counters(t, &sc);
	CHECK_INT((int)sc.events, 8000);
	state_txn_free(t);
	free(batch);
	state_close(s);
	sb_release(&got);
	sb_release(&err);
}

int main(void)
{
	if (scratch_begin() != 0)
		return 1;
	RUN(journal_reads_through_a_merge);
	RUN(journal_keeps_the_newest_500);
	RUN(journal_recovers_after_a_crash);
	RUN(journal_erasure);
	RUN(journal_walk);
	RUN(journal_walk_many);
	RUN(journal_idle_sweep);
	RUN(journal_read_only_view);
	RUN(journal_map_growth);
	if (scratch_end() != 0)
		return 1;
	return harness_done();
}
