/*
 * state_journal_read: what readers see of the journal (state_journal.c):
 * the events a snapshot has not merged, added to a customer's log or to
 * the walk over customers; the index of a read-only open's snapshot; the
 * bounds readers publish so that the writer frees only what none can
 * still need. See state_internal.h ("the journal").
 */
#include "state_journal_internal.h"

#include <pthread.h>
#include <stdlib.h>

#include "util.h"

/* ---- the read-only view -------------------------------------------------- */

/* The journal of t's snapshot for a read-only open: what it holds beyond
 * the logs, indexed (once per snapshot). Returns an LMDB code. */
static int ro_build(state_txn *t)
{
	state *s = t->s;
	uint64_t id = mdb_txn_id(t->r.txn);
	if (t->ro_txn == id && t->ro_txn != 0)
		return 0;
	state_journal_free(t->ro);
	t->ro = NULL;
	t->ro_txn = id;
	MDB_stat st;
	int rc = mdb_stat(t->r.txn, s->journal, &st);
	if (rc || st.ms_entries == 0)
		return rc;
	struct cycle_rec cy;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	journal *jr = state_journal_new();
	if ((rc = journal_read_cycle(s, t->r.txn, &cy)) == 0)
		rc = mdb_cursor_open(t->r.txn, s->journal, &c);
	while (rc == 0 && (rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
		uint64_t seq;
		const char *cid;
		size_t len, rlen;
		const unsigned char *rec;
		if (!journal_parse_record(k, v, &seq, &cid, &len, &rec, &rlen)) {
			rc = MDB_CORRUPTED;
			break;
		}
		if (journal_cycle_merged(&cy, seq, cid, len))
			continue;
		uint64_t hash = util_id_hash(cid, len);
		jshard *sh = shard_of(jr, hash);
		jcust *jc = find(sh, hash, cid, len);
		if (!jc) {
			MDB_val tk = { len, (void *)cid }, tv;
			jc = journal_insert(jr, sh, hash, cid, len);
			jc->no_tail = mdb_get(t->r.txn, s->tails, &tk, &tv) == MDB_NOTFOUND;
			jr->new_customers += jc->no_tail;
		}
		if (jc->n == jc->cap) {
			jc->cap = jc->cap ? jc->cap * 2 : 4;
			jc->ev = xreallocarray(jc->ev, jc->cap, sizeof(*jc->ev));
		}
		jc->ev[jc->n++] = (jevent){ seq, 0, 0, (uint32_t)jc->recs.len, (uint32_t)rlen };
		sb_add(&jc->recs, rec, rlen);
	}
	if (c)
		mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	if (rc)
		state_journal_free(jr);
	else
		t->ro = jr;
	return rc;
}

/* The index t reads: the server's, or its own snapshot's (read-only). */
static int view(state_txn *t, journal **out)
{
	*out = t->s->jr;
	if (*out || !t->s->has_journal)
		return 0;
	int rc = ro_build(t);
	*out = t->ro;
	return rc;
}

/* ---- the readers ---------------------------------------------------------- */

int state_journal_add(state_txn *t, const char *id, size_t len, strbuf *buf, state_events *out)
{
	journal *jr;
	if (view(t, &jr) != 0)
		return STORE_ERROR;
	if (!jr || len == 0)
		return 0;
	uint64_t hash = util_id_hash(id, len);
	if (atomic_load_explicit(&jr->counts[hash >> (64 - JOURNAL_COUNT_BITS)],
				 memory_order_relaxed) == 0)
		return 0;
	uint64_t snap = mdb_txn_id(t->r.txn);
	jshard *sh = shard_of(jr, hash);
	uint32_t added = 0;
	pthread_mutex_lock(&sh->lock);
	jcust *c = find(sh, hash, id, len);
	/* Only the newest STATE_MAX_EVENTS can be kept: a customer sent
	 * thousands of events between two merges costs no more to read. */
	uint32_t from = c ? c->n : 0;
	for (uint32_t seen = 0; from > 0 && seen < STATE_MAX_EVENTS;)
		seen += visible(&c->ev[--from], snap);
	for (uint32_t i = from; c && !cust_hidden(c, snap) && i < c->n; i++) {
		const jevent *e = &c->ev[i];
		if (!visible(e, snap))
			continue;
		if (added++ == 0 && out->data != (const unsigned char *)buf->buf) {
			sb_reset(buf); /* the log was borrowed from the snapshot */
			sb_add(buf, out->data, out->size);
		}
		sb_add(buf, c->recs.buf + e->off, e->len);
	}
	pthread_mutex_unlock(&sh->lock);
	if (added == 0)
		return 0;
	const unsigned char *data = (const unsigned char *)buf->buf;
	size_t size = buf->len;
	uint32_t count = out->count + added;
	for (; count > STATE_MAX_EVENTS; count--) { /* the oldest beyond the limit */
		size_t n = state_event_bytes(data, size);
		if (n == 0)
			return STORE_CORRUPT;
		data += n;
		size -= n;
	}
	out->data = data;
	out->size = size;
	out->count = count;
	return 0;
}

/* Byte pairs of ids: [u16 len][id]. */
static int pair_cmp(const void *a, const void *b, void *arg)
{
	const char *base = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	uint16_t xl, yl;
	memcpy(&xl, base + x, 2);
	memcpy(&yl, base + y, 2);
	return key_cmp(base + x + 2, xl, base + y + 2, yl);
}

int state_journal_customers(state_txn *t, const char *after, size_t after_len, strbuf *ids,
			    size_t **offs, size_t *n)
{
	journal *jr;
	*n = 0;
	*offs = NULL;
	if (view(t, &jr) != 0)
		return STORE_ERROR;
	if (!jr)
		return 0;
	uint64_t snap = mdb_txn_id(t->r.txn);
	size_t cap = 0;
	for (int i = 0; i < JOURNAL_SHARDS; i++) {
		jshard *sh = &jr->shards[i];
		pthread_mutex_lock(&sh->lock);
		for (size_t b = 0; b < sh->nbuckets; b++)
			for (jcust *c = sh->buckets[b]; c; c = c->next) {
				bool any = false;
				for (uint32_t e = 0; !any && e < c->n; e++)
					any = visible(&c->ev[e], snap);
				if (!any || cust_hidden(c, snap) ||
				    (after_len && key_cmp(c->id, c->len, after, after_len) <= 0))
					continue;
				if (*n == cap) {
					cap = cap ? cap * 2 : 256;
					*offs = xreallocarray(*offs, cap, sizeof(**offs));
				}
				(*offs)[(*n)++] = ids->len;
				uint16_t l = (uint16_t)c->len;
				sb_add(ids, &l, 2);
				sb_add(ids, c->id, c->len);
			}
		pthread_mutex_unlock(&sh->lock);
	}
	if (*n > 1)
		qsort_r(*offs, *n, sizeof(**offs), pair_cmp, ids->buf);
	return 0;
}

bool state_journal_has(state_txn *t, const char *id, size_t len)
{
	state_events ev = { NULL, 0, 0 };
	strbuf buf = STRBUF_INIT;
	bool any = state_journal_add(t, id, len, &buf, &ev) == 0 && ev.count > 0;
	sb_release(&buf);
	return any;
}

bool state_journal_holds(state *s, const char *id, size_t len)
{
	journal *jr = s->jr;
	if (!jr)
		return false;
	uint64_t hash = util_id_hash(id, len);
	jshard *sh = shard_of(jr, hash);
	pthread_mutex_lock(&sh->lock);
	bool any = find(sh, hash, id, len) != NULL;
	pthread_mutex_unlock(&sh->lock);
	return any;
}

uint64_t state_journal_new_customers(state_txn *t)
{
	journal *jr;
	if (view(t, &jr) != 0 || !jr)
		return 0;
	int64_t n = atomic_load_explicit(&jr->new_customers, memory_order_relaxed);
	return n > 0 ? (uint64_t)n : 0;
}

/* ---- the readers' bounds ------------------------------------------------- */

int state_journal_reader_slot(state *s)
{
	journal *jr = s->jr;
	if (!jr)
		return -1;
	pthread_mutex_lock(&jr->slots_lock);
	int slot = -1;
	for (int i = 0; i < JOURNAL_SLOTS && slot < 0; i++)
		if (!jr->used[i])
			slot = i;
	if (slot >= 0)
		jr->used[slot] = true;
	else
		atomic_fetch_add(&jr->unslotted, 1);
	pthread_mutex_unlock(&jr->slots_lock);
	return slot;
}

void state_journal_reader_release(state *s, int slot)
{
	journal *jr = s->jr;
	if (!jr)
		return;
	pthread_mutex_lock(&jr->slots_lock);
	if (slot >= 0) {
		jr->used[slot] = false;
		atomic_store(&jr->slots[slot], UINT64_MAX);
	} else {
		atomic_fetch_sub(&jr->unslotted, 1);
	}
	pthread_mutex_unlock(&jr->slots_lock);
}

void state_journal_reader_enter(state_txn *t)
{
	if (t->slot < 0)
		return;
	/* Before the snapshot is taken: it can only be this one or newer.
	 * The full fence pairs with committed(): a writer that missed this
	 * bound committed before the snapshot, which then has its merge. */
	uint64_t bound = atomic_load_explicit(&t->s->last_committed, memory_order_relaxed);
	atomic_store_explicit(&t->s->jr->slots[t->slot], bound, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
}

void state_journal_reader_leave(state_txn *t)
{
	if (t->slot >= 0)
		atomic_store_explicit(&t->s->jr->slots[t->slot], UINT64_MAX, memory_order_release);
	state_journal_free(t->ro);
	t->ro = NULL;
	t->ro_txn = 0;
}
