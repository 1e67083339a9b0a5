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

struct ro_build {
	journal *jr;
	MDB_txn *txn;
	MDB_dbi tails;
};

static int ro_add(void *arg, uint64_t seq, MDB_val id, const unsigned char *rec, size_t rlen)
{
	struct ro_build *b = arg;
	uint64_t hash = util_id_hash(id.mv_data, id.mv_size);
	jshard *sh = shard_of(b->jr, hash);
	jcust *c = journal_customer(b->jr, sh, hash, id.mv_data, id.mv_size, b->txn, b->tails);
	journal_push(c, seq, 0, rec, rlen); /* visible to this snapshot: commit_txn 0 */
	return 0;
}

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
	struct ro_build ctx = { state_journal_new(), t->r.txn, s->tails };
	journal *jr = ctx.jr;
	rc = journal_each_record(s, t->r.txn, ro_add, &ctx);
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

/* Whether the snapshot sees any event of c (its shard locked). */
static bool sees_any(const jcust *c, uint64_t snap)
{
	if (cust_hidden(c, snap))
		return false;
	for (uint32_t e = 0; e < c->n; e++)
		if (visible(&c->ev[e], snap))
			return true;
	return false;
}

struct visible_ids {
	uint64_t snap;
	const char *after;
	size_t after_len;
	journal_ids *out;
};

/* Lists c when the snapshot sees events of theirs, after `after`. */
static void list_visible(journal *jr, jshard *sh, jcust *c, void *arg)
{
	struct visible_ids *v = arg;
	if (sees_any(c, v->snap) &&
	    (!v->after_len || state_key_cmp(c->id, c->len, v->after, v->after_len) > 0))
		journal_ids_add(v->out, c->id, c->len);
}

int state_journal_customers(state_txn *t, const char *after, size_t after_len, journal_ids *out)
{
	journal *jr;
	if (view(t, &jr) != 0)
		return STORE_ERROR;
	if (!jr)
		return 0;
	struct visible_ids v = { mdb_txn_id(t->r.txn), after, after_len, out };
	journal_each(jr, list_visible, &v);
	journal_ids_sort(out);
	return 0;
}

bool state_journal_has(state_txn *t, const char *id, size_t len)
{
	journal *jr;
	if (len == 0 || view(t, &jr) != 0 || !jr)
		return false;
	uint64_t hash = util_id_hash(id, len);
	if (atomic_load_explicit(&jr->counts[hash >> (64 - JOURNAL_COUNT_BITS)],
				 memory_order_relaxed) == 0)
		return false;
	jshard *sh = shard_of(jr, hash);
	pthread_mutex_lock(&sh->lock);
	jcust *c = find(sh, hash, id, len);
	bool any = c && sees_any(c, mdb_txn_id(t->r.txn));
	pthread_mutex_unlock(&sh->lock);
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
