/*
 * state_live: the customers with live events: the limits on them, their
 * counts, and the idle sweep that expires the logs of customers gone quiet
 * (serve --live-customer-ttl). See state.h.
 */
#include "state.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h" /* enum event_type */
#include "state_internal.h"
#include "util.h"

/* ---- live customers ------------------------------------------------------ */

void state_set_live_limits(state *s, uint64_t max_live, int64_t ttl)
{
	assert(max_live >= 1 && ttl >= 0);
	s->max_live = max_live;
	s->live_ttl = ttl;
}

uint64_t state_live_max(const state *s)
{
	return s->max_live;
}

uint64_t state_live_customers(state_txn *t)
{
	MDB_stat st;
	/* With the journal's customers who have no log yet (a snapshot older
	 * than the merge that gave them one may count them one short). */
	uint64_t n = mdb_stat(t->r.txn, t->s->tails, &st) == 0 ? st.ms_entries : 0;
	return n + state_journal_new_customers(t);
}

uint64_t state_flag_records(state_txn *t)
{
	MDB_stat st;
	return mdb_stat(t->r.txn, t->s->flags, &st) == 0 ? st.ms_entries : 0;
}

bool state_customer_has_flags(state_txn *t, const char *id, size_t len)
{
	MDB_val k = { len, (void *)id }, v;
	return len > 0 && mdb_get(t->r.txn, t->s->flags, &k, &v) == 0;
}

bool state_customer_live(state_txn *t, const char *id, size_t len)
{
	MDB_val k = { len, (void *)id }, v;
	return len > 0 &&
	       (mdb_get(t->r.txn, t->s->tails, &k, &v) == 0 || state_journal_has(t, id, len));
}

/* Whether a log has no purchase and its newest event is before `before`
 * (events carry the shop's times, not arrival order: the newest is the
 * largest). A log that cannot be decoded is kept. */
bool state_log_idle(const state_events *ev, int64_t before)
{
	event_view e;
	size_t pos = 0;
	int rc;
	while ((rc = state_events_next(ev, &pos, &e)) == 0)
		if (e.type == EVENT_PURCHASE || e.ts >= before)
			return false;
	return rc == STORE_NOTFOUND;
}

/* Looks at the next max_scan customers with logs (after s->sweep_after,
 * moved on) in txn and lists those idle before `before` in ids (their
 * lengths in lens[0..*n)). Returns an LMDB code. */
static int scan_idle(state *s, MDB_txn *txn, int64_t before, uint32_t max_scan, strbuf *ids,
		     size_t *lens, uint32_t *n)
{
	/* The reading functions run on txn through a state_txn of our own. */
	state_txn t = { .s = s };
	t.r.txn = txn;
	t.r.active = true;
	state_iter *it = NULL;
	*n = 0;
	int rc = mdb_cursor_open(txn, s->chunks, &t.chunks);
	if (rc == 0 && state_iter_begin_logs(&t, s->sweep_after, s->sweep_after_len, &it) != 0)
		rc = MDB_PANIC;
	for (uint32_t i = 0; rc == 0 && i < max_scan; i++) {
		const char *id = NULL;
		size_t len = 0;
		state_events ev;
		int got = state_iter_next(it, &id, &len, &ev);
		if (got == STORE_NOTFOUND) { /* the end: from the first next time */
			s->sweep_after_len = 0;
			break;
		}
		if (got == STORE_ERROR) {
			rc = MDB_PANIC;
			break;
		}
		/* A damaged log (STORE_CORRUPT) is left to the reads that report
		 * it; one with events in the journal is not idle: they are merged
		 * into it later, whatever their times. */
		if (got == 0 && state_log_idle(&ev, before) && !state_journal_holds(s, id, len)) {
			sb_add(ids, id, len);
			lens[(*n)++] = len;
		}
		if (id && len <= sizeof(s->sweep_after)) {
			memcpy(s->sweep_after, id, len);
			s->sweep_after_len = len;
		}
	}
	state_iter_end(it);
	if (t.chunks)
		mdb_cursor_close(t.chunks);
	sb_release(&t.buf);
	return rc;
}

int state_expire_idle(state *s, int64_t now, uint32_t max_scan, uint32_t *expired, strbuf *err)
{
	*expired = 0;
	if (s->live_ttl == 0)
		return 0;
	int64_t before = now - s->live_ttl;
	/* Looked at and deleted in one write transaction, so no event can
	 * land in a log between the look and the deletion, whoever writes. */
	MDB_txn *txn = NULL;
	strbuf ids = STRBUF_INIT;
	size_t *lens = xmallocarray(max_scan, sizeof(*lens));
	uint32_t n = 0;
	pthread_rwlock_rdlock(&s->remap_lock); /* as state_commit */
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc == 0)
		rc = scan_idle(s, txn, before, max_scan, &ids, lens, &n);
	size_t off = 0;
	for (uint32_t i = 0; rc == 0 && i < n; off += lens[i++]) {
		MDB_val k = { lens[i], ids.buf + off };
		rc = state_log_delete(s, txn, k);
	}
	if (rc == 0 && n > 0)
		rc = state_add_counter(s, txn, "expired_customers", n);
	if (txn) {
		if (rc == 0 && n > 0)
			rc = mdb_txn_commit(txn); /* synchronous, as every commit */
		else
			mdb_txn_abort(txn); /* nothing to write: no fsync */
	}
	pthread_rwlock_unlock(&s->remap_lock);
	sb_release(&ids);
	free(lens);
	if (rc) {
		sb_addf(err, "state: idle sweep: %s", mdb_strerror(rc));
		return STORE_ERROR;
	}
	*expired = n;
	return 0;
}

int state_find_idle(state *s, int64_t now, uint32_t max_scan, strbuf *ids, size_t *lens,
		    uint32_t *n, int64_t *before, strbuf *err)
{
	*n = 0;
	*before = now - s->live_ttl;
	if (s->live_ttl == 0 || *before <= 0)
		return 0;
	MDB_txn *txn = NULL;
	pthread_rwlock_rdlock(&s->remap_lock); /* as state_commit */
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc == 0)
		rc = scan_idle(s, txn, *before, max_scan, ids, lens, n);
	if (txn)
		mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->remap_lock);
	if (rc) {
		*n = 0;
		sb_addf(err, "state: idle sweep: %s", mdb_strerror(rc));
		return STORE_ERROR;
	}
	return 0;
}
