/*
 * state_journal: acknowledged events on their way into their customers'
 * logs: the journal table, its index in memory, what a snapshot sees of
 * it, the merges, recovery at open and the read-only view. See
 * state_internal.h ("the journal") and docs/design.md ("The journal").
 *
 * Why: an event appended straight to its customer's log dirties the page
 * of that customer's tail, and a commit writes and syncs every page it
 * dirtied. At 20,000 events/s on the 958,000-customer model the writer
 * spent 6 to 11 us of CPU an event that way; appended to the journal
 * (the same last page for a whole commit) 1 to 3 us, and the merge,
 * later and in key order, dirties each tail page once for all the events
 * it holds by then (bench/hot-path.md, rounds nine and ten).
 *
 * Visibility: each indexed event carries the id of the transaction that
 * appended it (commit_txn) and of the one that merged it into the log
 * (merged_txn, 0: not yet). A reader whose snapshot has id S adds the
 * events with commit_txn <= S and (merged_txn 0 or > S): those the
 * journal holds in its snapshot and the log does not. Tags are set before
 * the commit that makes them true and undone when it fails. A merged
 * event is freed once no reader can hold a snapshot older than its merge:
 * each state_txn publishes a lower bound of its snapshot before taking it.
 */
#include "state_journal_internal.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>

#include "util.h"

/* Events merged in one transaction: about 8 ms of the writer at the
 * measured 8 us an event, so a write queued behind a merge waits little. */
#define JOURNAL_MERGE_EVENTS 1000u
#define JOURNAL_DELETE_STEP 20000u /* journal records deleted a transaction */
/* Pending events past which merges run between group commits even when
 * writes are queued (each takes about 90 bytes of memory). */
#define JOURNAL_PENDING_MAX 500000u

journal *state_journal_new(void)
{
	journal *jr = xcalloc(1, sizeof(*jr));
	for (int i = 0; i < JOURNAL_SHARDS; i++)
		pthread_mutex_init(&jr->shards[i].lock, NULL);
	jr->counts = xcalloc((size_t)1 << JOURNAL_COUNT_BITS, sizeof(*jr->counts));
	pthread_mutex_init(&jr->slots_lock, NULL);
	for (int i = 0; i < JOURNAL_SLOTS; i++)
		atomic_init(&jr->slots[i], UINT64_MAX);
	return jr;
}

static void cust_free(jcust *c)
{
	free(c->ev);
	sb_release(&c->recs);
	free(c);
}

static void cycle_free(journal *jr)
{
	journal_ids_release(&jr->cycle);
	jr->cycle_pos = 0;
	jr->cycling = false;
}

void journal_ids_add(journal_ids *l, const char *id, size_t len)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->off = xreallocarray(l->off, l->cap, sizeof(*l->off));
	}
	l->off[l->n++] = l->ids.len;
	uint16_t n = (uint16_t)len;
	sb_add(&l->ids, &n, 2);
	sb_add(&l->ids, id, len);
}

static int ids_cmp(const void *a, const void *b, void *arg)
{
	const char *base = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	uint16_t xl, yl;
	memcpy(&xl, base + x, 2);
	memcpy(&yl, base + y, 2);
	return state_key_cmp(base + x + 2, xl, base + y + 2, yl);
}

void journal_ids_sort(journal_ids *l)
{
	if (l->n > 1)
		qsort_r(l->off, l->n, sizeof(*l->off), ids_cmp, l->ids.buf);
}

void journal_ids_release(journal_ids *l)
{
	sb_release(&l->ids);
	free(l->off);
	memset(l, 0, sizeof(*l));
}

void journal_each(journal *jr, void (*fn)(journal *jr, jshard *sh, jcust *c, void *arg),
		  void *arg)
{
	for (int i = 0; i < JOURNAL_SHARDS; i++) {
		jshard *sh = &jr->shards[i];
		pthread_mutex_lock(&sh->lock);
		for (size_t b = 0; b < sh->nbuckets; b++)
			for (jcust *c = sh->buckets[b], *next; c; c = next) {
				next = c->next;
				fn(jr, sh, c, arg);
			}
		pthread_mutex_unlock(&sh->lock);
	}
}

static void free_one(journal *jr, jshard *sh, jcust *c, void *arg)
{
	cust_free(c);
}

void state_journal_free(journal *jr)
{
	if (!jr)
		return;
	journal_each(jr, free_one, NULL);
	for (int i = 0; i < JOURNAL_SHARDS; i++) {
		free(jr->shards[i].buckets);
		pthread_mutex_destroy(&jr->shards[i].lock);
	}
	cycle_free(jr);
	journal_ids_release(&jr->erased);
	free((void *)jr->counts);
	pthread_mutex_destroy(&jr->slots_lock);
	free(jr);
}

/* Adds an empty entry for the customer (the shard locked; not there). */
static jcust *insert(journal *jr, jshard *sh, uint64_t hash, const char *id, size_t len)
{
	if (sh->ncust >= sh->nbuckets) { /* rehash into twice the buckets */
		size_t nb = sh->nbuckets ? sh->nbuckets * 2 : 64;
		jcust **b = xcalloc(nb, sizeof(*b));
		for (size_t i = 0; i < sh->nbuckets; i++)
			for (jcust *c = sh->buckets[i], *next; c; c = next) {
				next = c->next;
				size_t at = (c->hash / JOURNAL_SHARDS) & (nb - 1);
				c->next = b[at];
				b[at] = c;
			}
		free(sh->buckets);
		sh->buckets = b;
		sh->nbuckets = nb;
	}
	jcust *c = xcalloc(1, sizeof(*c) + len);
	c->hash = hash;
	c->len = len;
	memcpy(c->id, id, len);
	size_t at = (hash / JOURNAL_SHARDS) & (sh->nbuckets - 1);
	c->next = sh->buckets[at];
	sh->buckets[at] = c;
	sh->ncust++;
	atomic_fetch_add_explicit(&jr->counts[hash >> (64 - JOURNAL_COUNT_BITS)], 1,
				  memory_order_relaxed);
	return c;
}

jcust *journal_customer(journal *jr, jshard *sh, uint64_t hash, const char *id, size_t len,
			MDB_txn *txn, MDB_dbi tails)
{
	jcust *c = find(sh, hash, id, len);
	if (c)
		return c;
	MDB_val k = { len, (void *)id }, v;
	c = insert(jr, sh, hash, id, len);
	c->no_tail = mdb_get(txn, tails, &k, &v) == MDB_NOTFOUND;
	if (c->no_tail)
		atomic_fetch_add_explicit(&jr->new_customers, 1, memory_order_relaxed);
	return c;
}

void journal_push(jcust *c, uint64_t seq, uint64_t commit_txn, const unsigned char *rec,
		  size_t rlen)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 4;
		c->ev = xreallocarray(c->ev, c->cap, sizeof(*c->ev));
	}
	c->ev[c->n++] = (jevent){ seq, commit_txn, 0, (uint32_t)c->recs.len, (uint32_t)rlen };
	sb_add(&c->recs, rec, rlen);
}

/* Unlinks and frees the customer's entry (the shard locked). */
static void remove_cust(journal *jr, jshard *sh, jcust *c)
{
	jcust **p = &sh->buckets[(c->hash / JOURNAL_SHARDS) & (sh->nbuckets - 1)];
	while (*p != c)
		p = &(*p)->next;
	*p = c->next;
	sh->ncust--;
	atomic_fetch_sub_explicit(&jr->counts[c->hash >> (64 - JOURNAL_COUNT_BITS)], 1,
				  memory_order_relaxed);
	if (c->no_tail)
		atomic_fetch_sub_explicit(&jr->new_customers, 1, memory_order_relaxed);
	uint64_t unmerged = 0;
	for (uint32_t i = 0; i < c->n; i++)
		unmerged += c->ev[i].merged_txn == 0;
	atomic_fetch_sub_explicit(&jr->pending, unmerged, memory_order_relaxed);
	cust_free(c);
}

/* Drops the first k events of c (the shard locked). */
static void drop_front(jcust *c, uint32_t k)
{
	if (k == 0)
		return;
	uint32_t bytes = k < c->n ? c->ev[k].off : (uint32_t)c->recs.len;
	memmove(c->ev, c->ev + k, (c->n - k) * sizeof(*c->ev));
	c->n -= k;
	for (uint32_t i = 0; i < c->n; i++)
		c->ev[i].off -= bytes;
	memmove(c->recs.buf, c->recs.buf + bytes, c->recs.len - bytes);
	sb_truncate(&c->recs, c->recs.len - bytes);
}

/* ---- the writer ---------------------------------------------------------- */

int state_journal_append(state *s, MDB_txn *txn, const event_in *e)
{
	journal *jr = s->jr;
	unsigned char val[2 + ID_MAX_LEN + STATE_EVENT_MAX];
	assert(e->customer_len > 0 && e->customer_len <= ID_MAX_LEN);
	uint16_t clen = (uint16_t)e->customer_len;
	memcpy(val, &clen, 2);
	memcpy(val + 2, e->customer, clen);
	unsigned char *rec = val + 2 + clen;
	size_t rlen = state_event_encode(e, 0, rec);
	unsigned char kb[8];
	uint64_t seq = s->journal_seq + 1;
	be64_put(kb, seq);
	MDB_val k = { 8, kb }, v = { 2 + clen + rlen, val };
	int rc = mdb_put(txn, s->journal, &k, &v, MDB_APPEND);
	if (rc)
		return rc;
	s->journal_seq = seq;

	uint64_t hash = util_id_hash(e->customer, clen);
	jshard *sh = shard_of(jr, hash);
	pthread_mutex_lock(&sh->lock);
	jcust *c = journal_customer(jr, sh, hash, e->customer, clen, txn, s->tails);
	journal_push(c, seq, mdb_txn_id(txn), rec, rlen);
	pthread_mutex_unlock(&sh->lock);
	atomic_fetch_add_explicit(&jr->pending, 1, memory_order_relaxed);
	if (jr->oldest == 0)
		jr->oldest = util_monotonic();
	return 0;
}

int state_journal_erase(state *s, MDB_txn *txn, const char *id, size_t len)
{
	journal *jr = s->jr;
	uint64_t hash = util_id_hash(id, len);
	jshard *sh = shard_of(jr, hash);
	int rc = 0;
	pthread_mutex_lock(&sh->lock);
	jcust *c = find(sh, hash, id, len);
	for (uint32_t i = 0; c && rc == 0 && i < c->n; i++) {
		unsigned char kb[8];
		be64_put(kb, c->ev[i].seq);
		MDB_val k = { 8, kb };
		rc = mdb_del(txn, s->journal, &k, NULL);
		if (rc == MDB_NOTFOUND) /* merged, and its cycle's records deleted */
			rc = 0;
	}
	if (c && rc == 0) {
		c->erased_txn = mdb_txn_id(txn);
		journal_ids_add(&jr->erased, id, len);
	}
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

/* Publishes that no snapshot older than txn_id will be taken from now on
 * (the full fence pairs with the readers': state_journal_reader_enter). */
static void committed(state *s, uint64_t txn_id)
{
	atomic_store_explicit(&s->last_committed, txn_id, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
}

/* Drops from c the events after seq_before (a failed transaction's). */
static void drop_after(journal *jr, jshard *sh, jcust *c, void *arg)
{
	uint64_t seq_before = *(const uint64_t *)arg;
	uint32_t keep = c->n;
	while (keep > 0 && c->ev[keep - 1].seq > seq_before)
		keep--;
	if (keep == c->n)
		return;
	atomic_fetch_sub_explicit(&jr->pending, c->n - keep, memory_order_relaxed);
	c->n = keep;
	sb_truncate(&c->recs, keep ? c->ev[keep - 1].off + c->ev[keep - 1].len : 0);
	if (keep == 0)
		remove_cust(jr, sh, c);
}

void state_journal_end(state *s, uint64_t txn_id, bool ok, uint64_t seq_before)
{
	journal *jr = s->jr;
	if (ok)
		committed(s, txn_id);
	if (ok && jr->erased.n == 0)
		return;
	/* The erased customers: gone, or visible again. */
	for (size_t i = 0; i < jr->erased.n; i++) {
		size_t len;
		const char *id = journal_ids_at(&jr->erased, i, &len);
		uint64_t hash = util_id_hash(id, len);
		jshard *sh = shard_of(jr, hash);
		pthread_mutex_lock(&sh->lock);
		jcust *c = find(sh, hash, id, len);
		if (c && c->erased_txn == txn_id) {
			if (ok)
				remove_cust(jr, sh, c);
			else
				c->erased_txn = 0;
		}
		pthread_mutex_unlock(&sh->lock);
	}
	journal_ids_release(&jr->erased);
	if (ok)
		return;
	/* What the failed transaction appended. Rare (a full map, a failing
	 * disk): a walk over the whole index is fine. */
	journal_each(jr, drop_after, &seq_before);
	s->journal_seq = seq_before;
	if (atomic_load(&jr->pending) == 0)
		jr->oldest = 0;
}

/* Drops from c its events merged at or before the bound *arg. */
static void drop_merged(journal *jr, jshard *sh, jcust *c, void *arg)
{
	uint64_t bound = *(const uint64_t *)arg;
	uint32_t k = 0;
	while (k < c->n && c->ev[k].merged_txn != 0 && c->ev[k].merged_txn <= bound)
		k++;
	if (k == c->n)
		remove_cust(jr, sh, c);
	else
		drop_front(c, k);
}

/* Frees the merged events no reader can still need: merged in a
 * transaction no newer than every published bound. */
static void free_merged(journal *jr, uint64_t last)
{
	if (atomic_load(&jr->unslotted) > 0)
		return;
	uint64_t bound = last;
	pthread_mutex_lock(&jr->slots_lock);
	for (int i = 0; i < JOURNAL_SLOTS; i++) {
		uint64_t b = atomic_load(&jr->slots[i]);
		if (b < bound)
			bound = b;
	}
	pthread_mutex_unlock(&jr->slots_lock);
	journal_each(jr, drop_merged, &bound);
}

/* Lists c in the cycle when it has events to merge. */
static void list_unmerged(journal *jr, jshard *sh, jcust *c, void *arg)
{
	if (c->n > 0 && c->ev[c->n - 1].merged_txn == 0)
		journal_ids_add(&jr->cycle, c->id, c->len);
}

/* Starts merging every event appended so far: lists the customers with
 * events to merge, in key order, so that each transaction's appends
 * dirty neighbouring pages. */
static void cycle_start(state *s)
{
	journal *jr = s->jr;
	cycle_free(jr);
	journal_each(jr, list_unmerged, NULL);
	journal_ids_sort(&jr->cycle);
	jr->through = s->journal_seq;
	jr->cycle_started = util_monotonic();
	jr->cycling = true;
}

/* Copies the customer's events up to `through` not yet merged into recs
 * (lens appended to lens) and tags them merged by txn_id (untag: untags
 * those tagged txn_id instead). Returns how many. */
static uint32_t take_events(journal *jr, const char *id, size_t len, uint64_t through,
			    uint64_t txn_id, bool untag, strbuf *recs, strbuf *lens)
{
	uint64_t hash = util_id_hash(id, len);
	jshard *sh = shard_of(jr, hash);
	uint32_t n = 0;
	pthread_mutex_lock(&sh->lock);
	jcust *c = find(sh, hash, id, len);
	for (uint32_t i = 0; c && i < c->n && c->ev[i].seq <= through; i++) {
		jevent *e = &c->ev[i];
		if (untag) {
			if (c->tail_txn == txn_id && !c->no_tail) {
				c->no_tail = true;
				atomic_fetch_add_explicit(&jr->new_customers, 1, memory_order_relaxed);
			}
			n += e->merged_txn == txn_id;
			if (e->merged_txn == txn_id)
				e->merged_txn = 0;
			continue;
		}
		if (e->merged_txn != 0 || c->erased_txn != 0)
			continue;
		e->merged_txn = txn_id;
		if (c->no_tail) { /* counted by the log from now on */
			c->no_tail = false;
			c->tail_txn = txn_id;
			atomic_fetch_sub_explicit(&jr->new_customers, 1, memory_order_relaxed);
		}
		sb_add(lens, &e->len, sizeof(e->len));
		sb_add(recs, c->recs.buf + e->off, e->len);
		n++;
	}
	pthread_mutex_unlock(&sh->lock);
	return n;
}

/* The cycle's record: merged through `through` for every customer up to
 * `last` (done: all of them; last NULL). */
static int put_cycle(state *s, MDB_txn *txn, uint64_t through, bool done, const char *last,
		     size_t len)
{
	unsigned char rec[CYCLE_HEAD + ID_MAX_LEN];
	assert(len <= ID_MAX_LEN);
	be64_put(rec, through);
	rec[8] = done;
	if (last)
		memcpy(rec + CYCLE_HEAD, last, len);
	MDB_val k = { strlen(CYCLE_KEY), CYCLE_KEY }, v = { CYCLE_HEAD + (last ? len : 0), rec };
	return mdb_put(txn, s->meta, &k, &v, 0);
}

/* Deletes up to JOURNAL_DELETE_STEP records of the journal up to
 * `through`; *left: whether some remain. */
static int delete_through(state *s, MDB_txn *txn, uint64_t through, bool *left)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, s->journal, &c);
	uint32_t n = 0;
	*left = false;
	while (rc == 0 && (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0) {
		if (k.mv_size != 8 || be64_get(k.mv_data) > through)
			break;
		if (n++ == JOURNAL_DELETE_STEP) {
			*left = true;
			break;
		}
		rc = mdb_cursor_del(c, 0);
	}
	if (c)
		mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* One transaction of the cycle: merges the next customers' events (about
 * JOURNAL_MERGE_EVENTS), or, all merged, deletes the journal's records up
 * to `through`. Returns an LMDB code. */
static int merge_txn(state *s, bool *finished)
{
	journal *jr = s->jr;
	strbuf recs = STRBUF_INIT, lens = STRBUF_INIT, buf = STRBUF_INIT;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	size_t pos = jr->cycle_pos;
	uint32_t merged = 0;
	uint64_t txn_id = 0;
	bool left = false;
	double since = util_monotonic();
	*finished = false;
	pthread_rwlock_rdlock(&s->remap_lock); /* as state_commit */
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc == 0) {
		txn_id = mdb_txn_id(txn);
		rc = mdb_cursor_open(txn, s->chunks, &cur);
	}
	while (rc == 0 && pos < jr->cycle.n && merged < JOURNAL_MERGE_EVENTS) {
		MDB_val key;
		key.mv_data = (void *)journal_ids_at(&jr->cycle, pos++, &key.mv_size);
		sb_reset(&recs);
		sb_reset(&lens);
		uint32_t n = take_events(jr, key.mv_data, key.mv_size, jr->through, txn_id, false,
					 &recs, &lens);
		size_t off = 0;
		for (uint32_t i = 0; rc == 0 && i < n; i++) {
			uint32_t len;
			memcpy(&len, lens.buf + i * sizeof(len), sizeof(len));
			rc = state_log_append_rec(s, txn, cur, key, (unsigned char *)recs.buf + off, len,
						  &buf);
			off += len;
			state_write_pause(s, &since);
		}
		merged += n;
	}
	if (rc == 0 && pos < jr->cycle.n) {
		size_t len;
		const char *last = journal_ids_at(&jr->cycle, pos - 1, &len);
		rc = put_cycle(s, txn, jr->through, false, last, len);
	} else if (rc == 0 && merged > 0) { /* the last customers: then the deletion */
		rc = put_cycle(s, txn, jr->through, true, NULL, 0);
	} else if (rc == 0 && (rc = delete_through(s, txn, jr->through, &left)) == 0) {
		rc = left ? put_cycle(s, txn, jr->through, true, NULL, 0) : state_journal_forget(s, txn);
		*finished = !left;
	}
	if (rc == 0)
		atomic_thread_fence(memory_order_release); /* the tags, then the commit */
	if (txn && rc == 0)
		rc = mdb_txn_commit(txn); /* synchronous, as every commit */
	else if (txn)
		mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->remap_lock);
	if (rc == 0) {
		committed(s, txn_id);
		jr->cycle_pos = pos;
		atomic_fetch_sub_explicit(&jr->pending, merged, memory_order_relaxed);
		atomic_fetch_add_explicit(&jr->merged, merged, memory_order_relaxed);
	} else {
		*finished = false;
		for (size_t i = jr->cycle_pos; i < pos; i++) {
			size_t len;
			const char *id = journal_ids_at(&jr->cycle, i, &len);
			take_events(jr, id, len, jr->through, txn_id, true, NULL, NULL);
		}
	}
	sb_release(&recs);
	sb_release(&lens);
	sb_release(&buf);
	return rc;
}

void state_set_merge_after(state *s, double seconds)
{
	assert(seconds >= 0 && s->jr);
	s->merge_after = seconds;
}

double state_journal_due(state *s)
{
	journal *jr = s->jr;
	if (!jr || (!jr->cycling && atomic_load(&jr->pending) == 0))
		return 0;
	if (jr->cycling || atomic_load(&jr->pending) >= JOURNAL_PENDING_MAX)
		return util_monotonic();
	return jr->oldest + s->merge_after;
}

bool state_journal_full(state *s)
{
	return s->jr && atomic_load(&s->jr->pending) >= JOURNAL_PENDING_MAX;
}

int state_journal_merge(state *s, bool all, strbuf *err)
{
	journal *jr = s->jr;
	if (!jr)
		return 0;
	int rc = 0;
	for (int grown = 0;;) {
		if (!jr->cycling) {
			if (atomic_load(&jr->pending) == 0)
				break;
			cycle_start(s);
		}
		bool finished;
		rc = merge_txn(s, &finished);
		if (rc == MDB_MAP_FULL && grown++ < 30 && (rc = state_grow_map(s)) == 0)
			continue;
		if (rc)
			break;
		if (finished) {
			cycle_free(jr);
			free_merged(jr, atomic_load(&s->last_committed));
			jr->oldest = atomic_load(&jr->pending) ? jr->cycle_started : 0;
		}
		if (!all)
			break;
	}
	if (rc) {
		sb_addf(err, "state: merging the journal: %s", mdb_strerror(rc));
		return STORE_ERROR;
	}
	return 0;
}

void state_journal_stats(state *s, uint64_t *pending, uint64_t *merged)
{
	*pending = s->jr ? atomic_load(&s->jr->pending) : 0;
	*merged = s->jr ? atomic_load(&s->jr->merged) : 0;
}

/* ---- the records, and recovery -------------------------------------------- */

/* The record of a merge under way (meta CYCLE_KEY). */
struct cycle_rec {
	bool any, done;
	uint64_t through;
	const char *last; /* borrowed from the transaction */
	size_t last_len;
};

/* Reads it from txn (cy->any false: none). Returns an LMDB code. */
static int read_cycle(state *s, MDB_txn *txn, struct cycle_rec *cy)
{
	MDB_val k = { strlen(CYCLE_KEY), CYCLE_KEY }, v;
	memset(cy, 0, sizeof(*cy));
	int rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (v.mv_size < CYCLE_HEAD || v.mv_size > CYCLE_HEAD + ID_MAX_LEN)
		return MDB_CORRUPTED;
	const unsigned char *p = v.mv_data;
	cy->any = true;
	cy->through = be64_get(p);
	cy->done = p[8] != 0;
	cy->last = (const char *)p + CYCLE_HEAD;
	cy->last_len = v.mv_size - CYCLE_HEAD;
	return 0;
}

/* Splits a journal record (fields borrowed from v); false when damaged. */
static bool parse_record(MDB_val k, MDB_val v, uint64_t *seq, MDB_val *id,
			 const unsigned char **rec, size_t *rlen)
{
	if (k.mv_size != 8 || v.mv_size < 2)
		return false;
	uint16_t l;
	memcpy(&l, v.mv_data, 2);
	if (l == 0 || l > ID_MAX_LEN || v.mv_size < 2u + l)
		return false;
	*seq = be64_get(k.mv_data);
	id->mv_data = (char *)v.mv_data + 2;
	id->mv_size = l;
	*rec = (const unsigned char *)v.mv_data + 2 + l;
	*rlen = v.mv_size - 2 - l;
	return *rlen == state_event_bytes(*rec, *rlen) && *rlen > 0;
}

int journal_each_record(state *s, MDB_txn *txn,
			int (*fn)(void *arg, uint64_t seq, MDB_val id, const unsigned char *rec,
				  size_t rlen),
			void *arg)
{
	struct cycle_rec cy;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	int rc = read_cycle(s, txn, &cy);
	if (rc == 0)
		rc = mdb_cursor_open(txn, s->journal, &c);
	while (rc == 0 && (rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
		uint64_t seq;
		MDB_val id;
		const unsigned char *rec;
		size_t rlen;
		if (!parse_record(k, v, &seq, &id, &rec, &rlen)) {
			rc = MDB_CORRUPTED;
			break;
		}
		/* Merged already by the cycle under way: its customers are
		 * merged in key order, up to `last` (all of them once done). */
		if (cy.any && seq <= cy.through &&
		    (cy.done || state_key_cmp(id.mv_data, id.mv_size, cy.last, cy.last_len) <= 0))
			continue;
		rc = fn(arg, seq, id, rec, rlen);
	}
	if (c)
		mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int state_journal_forget(state *s, MDB_txn *txn)
{
	MDB_val k = { strlen(CYCLE_KEY), CYCLE_KEY };
	int rc = mdb_del(txn, s->meta, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

struct recovery {
	state *s;
	MDB_txn *txn;
	MDB_cursor *chunks;
	strbuf buf;
};

static int recover_one(void *arg, uint64_t seq, MDB_val id, const unsigned char *rec,
		       size_t rlen)
{
	struct recovery *r = arg;
	return state_log_append_rec(r->s, r->txn, r->chunks, id, rec, rlen, &r->buf);
}

int state_journal_recover(state *s, MDB_txn *txn)
{
	struct recovery r = { s, txn, NULL, STRBUF_INIT };
	int rc = mdb_cursor_open(txn, s->chunks, &r.chunks);
	if (rc == 0)
		rc = journal_each_record(s, txn, recover_one, &r);
	if (r.chunks)
		mdb_cursor_close(r.chunks);
	sb_release(&r.buf);
	if (rc == 0)
		rc = mdb_drop(txn, s->journal, 0);
	if (rc == 0)
		rc = state_journal_forget(s, txn);
	return rc;
}
