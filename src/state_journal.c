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
	for (size_t i = 0; i < jr->cycle_n; i++)
		free(jr->cycle[i]);
	free(jr->cycle);
	jr->cycle = NULL;
	jr->cycle_n = jr->cycle_pos = 0;
	jr->cycling = false;
}

void state_journal_free(journal *jr)
{
	if (!jr)
		return;
	for (int i = 0; i < JOURNAL_SHARDS; i++) {
		jshard *sh = &jr->shards[i];
		for (size_t b = 0; b < sh->nbuckets; b++)
			for (jcust *c = sh->buckets[b], *next; c; c = next) {
				next = c->next;
				cust_free(c);
			}
		free(sh->buckets);
		pthread_mutex_destroy(&sh->lock);
	}
	cycle_free(jr);
	sb_release(&jr->erased);
	free((void *)jr->counts);
	pthread_mutex_destroy(&jr->slots_lock);
	free(jr);
}

jcust *journal_insert(journal *jr, jshard *sh, uint64_t hash, const char *id, size_t len)
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
	jcust *c = find(sh, hash, e->customer, clen);
	if (!c) {
		MDB_val tk = { clen, (void *)e->customer }, tv;
		c = journal_insert(jr, sh, hash, e->customer, clen);
		c->no_tail = mdb_get(txn, s->tails, &tk, &tv) == MDB_NOTFOUND;
		if (c->no_tail)
			atomic_fetch_add_explicit(&jr->new_customers, 1, memory_order_relaxed);
	}
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 4;
		c->ev = xreallocarray(c->ev, c->cap, sizeof(*c->ev));
	}
	c->ev[c->n++] = (jevent){ seq, mdb_txn_id(txn), 0, (uint32_t)c->recs.len, (uint32_t)rlen };
	sb_add(&c->recs, rec, rlen);
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
		uint16_t l = (uint16_t)len;
		sb_add(&jr->erased, &l, 2);
		sb_add(&jr->erased, id, len);
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

void state_journal_end(state *s, uint64_t txn_id, bool ok, uint64_t seq_before)
{
	journal *jr = s->jr;
	if (ok)
		committed(s, txn_id);
	if (ok && jr->erased.len == 0)
		return;
	/* The erased customers: gone, or visible again. */
	for (size_t off = 0; off < jr->erased.len;) {
		uint16_t l;
		memcpy(&l, jr->erased.buf + off, 2);
		const char *id = jr->erased.buf + off + 2;
		off += 2u + l;
		uint64_t hash = util_id_hash(id, l);
		jshard *sh = shard_of(jr, hash);
		pthread_mutex_lock(&sh->lock);
		jcust *c = find(sh, hash, id, l);
		if (c && c->erased_txn == txn_id) {
			if (ok)
				remove_cust(jr, sh, c);
			else
				c->erased_txn = 0;
		}
		pthread_mutex_unlock(&sh->lock);
	}
	sb_reset(&jr->erased);
	if (ok)
		return;
	/* What the failed transaction appended. Rare (a full map, a failing
	 * disk): a walk over the whole index is fine. */
	for (int i = 0; i < JOURNAL_SHARDS; i++) {
		jshard *sh = &jr->shards[i];
		pthread_mutex_lock(&sh->lock);
		for (size_t b = 0; b < sh->nbuckets; b++)
			for (jcust *c = sh->buckets[b], *next; c; c = next) {
				next = c->next;
				uint32_t keep = c->n;
				while (keep > 0 && c->ev[keep - 1].seq > seq_before)
					keep--;
				if (keep == c->n)
					continue;
				atomic_fetch_sub_explicit(&jr->pending, c->n - keep,
							  memory_order_relaxed);
				c->n = keep;
				sb_truncate(&c->recs, keep ? c->ev[keep - 1].off + c->ev[keep - 1].len : 0);
				if (keep == 0)
					remove_cust(jr, sh, c);
			}
		pthread_mutex_unlock(&sh->lock);
	}
	s->journal_seq = seq_before;
	if (atomic_load(&jr->pending) == 0)
		jr->oldest = 0;
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
	for (int i = 0; i < JOURNAL_SHARDS; i++) {
		jshard *sh = &jr->shards[i];
		pthread_mutex_lock(&sh->lock);
		for (size_t b = 0; b < sh->nbuckets; b++)
			for (jcust *c = sh->buckets[b], *next; c; c = next) {
				next = c->next;
				uint32_t k = 0;
				while (k < c->n && c->ev[k].merged_txn != 0 && c->ev[k].merged_txn <= bound)
					k++;
				if (k == c->n)
					remove_cust(jr, sh, c);
				else
					drop_front(c, k);
			}
		pthread_mutex_unlock(&sh->lock);
	}
}

static int cycle_cmp(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	uint16_t xl, yl;
	memcpy(&xl, x, 2);
	memcpy(&yl, y, 2);
	return key_cmp(x + 2, xl, y + 2, yl);
}

/* Starts merging every event appended so far: lists the customers with
 * events to merge, in key order, so that each transaction's appends
 * dirty neighbouring pages. */
static void cycle_start(state *s)
{
	journal *jr = s->jr;
	size_t cap = 0;
	cycle_free(jr);
	for (int i = 0; i < JOURNAL_SHARDS; i++) {
		jshard *sh = &jr->shards[i];
		pthread_mutex_lock(&sh->lock);
		for (size_t b = 0; b < sh->nbuckets; b++)
			for (jcust *c = sh->buckets[b]; c; c = c->next) {
				if (c->n == 0 || c->ev[c->n - 1].merged_txn != 0)
					continue; /* nothing to merge */
				if (jr->cycle_n == cap) {
					cap = cap ? cap * 2 : 1024;
					jr->cycle = xreallocarray(jr->cycle, cap, sizeof(*jr->cycle));
				}
				char *p = xmalloc(2 + c->len);
				uint16_t l = (uint16_t)c->len;
				memcpy(p, &l, 2);
				memcpy(p + 2, c->id, c->len);
				jr->cycle[jr->cycle_n++] = p;
			}
		pthread_mutex_unlock(&sh->lock);
	}
	if (jr->cycle_n > 1)
		qsort(jr->cycle, jr->cycle_n, sizeof(*jr->cycle), cycle_cmp);
	jr->through = s->journal_seq;
	jr->cycle_started = util_monotonic();
	jr->cycling = true;
}

/* Copies customer p's events up to `through` not yet merged into recs
 * (lens appended to lens) and tags them merged by txn_id (0: untags those
 * tagged txn_id). Returns how many. */
static uint32_t take_events(journal *jr, const char *p, uint64_t through, uint64_t txn_id,
			    bool untag, strbuf *recs, strbuf *lens)
{
	uint16_t l;
	memcpy(&l, p, 2);
	uint64_t hash = util_id_hash(p + 2, l);
	jshard *sh = shard_of(jr, hash);
	uint32_t n = 0;
	pthread_mutex_lock(&sh->lock);
	jcust *c = find(sh, hash, p + 2, l);
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
		uint32_t len = e->len;
		sb_add(lens, &len, sizeof(len));
		sb_add(recs, c->recs.buf + e->off, len);
		n++;
	}
	pthread_mutex_unlock(&sh->lock);
	return n;
}

/* The cycle's record: merged through `through` for every customer up to
 * p (done: all of them). */
static int put_cycle(state *s, MDB_txn *txn, uint64_t through, bool done, const char *p)
{
	unsigned char rec[CYCLE_HEAD + ID_MAX_LEN];
	uint16_t l = 0;
	if (p)
		memcpy(&l, p, 2);
	be64_put(rec, through);
	rec[8] = done;
	if (p)
		memcpy(rec + CYCLE_HEAD, p + 2, l);
	MDB_val k = { strlen(CYCLE_KEY), CYCLE_KEY }, v = { CYCLE_HEAD + l, rec };
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
	while (rc == 0 && pos < jr->cycle_n && merged < JOURNAL_MERGE_EVENTS) {
		const char *p = jr->cycle[pos++];
		sb_reset(&recs);
		sb_reset(&lens);
		uint32_t n = take_events(jr, p, jr->through, txn_id, false, &recs, &lens);
		uint16_t l;
		memcpy(&l, p, 2);
		MDB_val key = { l, (void *)(p + 2) };
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
	if (rc == 0 && pos < jr->cycle_n)
		rc = put_cycle(s, txn, jr->through, false, jr->cycle[pos - 1]);
	else if (rc == 0 && merged > 0) /* the last customers: then the deletion */
		rc = put_cycle(s, txn, jr->through, true, NULL);
	else if (rc == 0 && (rc = delete_through(s, txn, jr->through, &left)) == 0) {
		MDB_val k = { strlen(CYCLE_KEY), CYCLE_KEY };
		if (left)
			rc = put_cycle(s, txn, jr->through, true, NULL);
		else if ((rc = mdb_del(txn, s->meta, &k, NULL)) == MDB_NOTFOUND)
			rc = 0;
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
		for (size_t i = jr->cycle_pos; i < pos; i++)
			take_events(jr, jr->cycle[i], jr->through, txn_id, true, NULL, NULL);
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

/* ---- recovery ------------------------------------------------------------ */

int journal_read_cycle(state *s, MDB_txn *txn, struct cycle_rec *cy)
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

/* Splits a journal record; false when it is damaged. */
bool journal_parse_record(MDB_val k, MDB_val v, uint64_t *seq, const char **id, size_t *len,
			 const unsigned char **rec, size_t *rlen)
{
	if (k.mv_size != 8 || v.mv_size < 2)
		return false;
	uint16_t l;
	memcpy(&l, v.mv_data, 2);
	if (l == 0 || l > ID_MAX_LEN || v.mv_size < 2u + l)
		return false;
	*seq = be64_get(k.mv_data);
	*id = (const char *)v.mv_data + 2;
	*len = l;
	*rec = (const unsigned char *)v.mv_data + 2 + l;
	*rlen = v.mv_size - 2 - l;
	return *rlen == state_event_bytes(*rec, *rlen) && *rlen > 0;
}

/* Whether the cycle recorded in cy has merged this record already. */
bool journal_cycle_merged(const struct cycle_rec *cy, uint64_t seq, const char *id, size_t len)
{
	return cy->any && seq <= cy->through &&
	       (cy->done || key_cmp(id, len, cy->last, cy->last_len) <= 0);
}

int state_journal_forget(state *s, MDB_txn *txn)
{
	MDB_val k = { strlen(CYCLE_KEY), CYCLE_KEY };
	int rc = mdb_del(txn, s->meta, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int state_journal_recover(state *s, MDB_txn *txn)
{
	struct cycle_rec cy;
	MDB_cursor *jc = NULL, *cc = NULL;
	strbuf buf = STRBUF_INIT;
	MDB_val k, v;
	int rc = journal_read_cycle(s, txn, &cy);
	if (rc == 0)
		rc = mdb_cursor_open(txn, s->journal, &jc);
	if (rc == 0)
		rc = mdb_cursor_open(txn, s->chunks, &cc);
	while (rc == 0 && (rc = mdb_cursor_get(jc, &k, &v, MDB_NEXT)) == 0) {
		uint64_t seq;
		const char *id;
		size_t len, rlen;
		const unsigned char *rec;
		if (!journal_parse_record(k, v, &seq, &id, &len, &rec, &rlen)) {
			rc = MDB_CORRUPTED;
			break;
		}
		if (journal_cycle_merged(&cy, seq, id, len))
			continue;
		MDB_val key = { len, (void *)id };
		rc = state_log_append_rec(s, txn, cc, key, rec, rlen, &buf);
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
	if (jc)
		mdb_cursor_close(jc);
	if (cc)
		mdb_cursor_close(cc);
	sb_release(&buf);
	if (rc == 0)
		rc = mdb_drop(txn, s->journal, 0);
	if (rc == 0 && cy.any)
		rc = state_journal_forget(s, txn);
	return rc;
}

