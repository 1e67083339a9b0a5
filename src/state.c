/*
 * state: opens the server's state, its read transactions, customer flags,
 * erasures, group commits, map growth and counters. The event logs inside
 * it are state_events.c's, the live customers' limits and idle sweep
 * state_live.c's. See state.h.
 */
#include "state.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h" /* enum event_type */
#include "state_internal.h"
#include "util.h"

struct flag_record {
	uint32_t flags;
	uint32_t reserved;
	int64_t changed; /* Unix seconds of the last change */
};

#define STATE_FILE "state.mdb"
/* 1: one record per customer holding their whole event log. 2: the log in
 * chunks. 3: a tail and sealed chunks (state_events.c). 4: 3 and the
 * journal (state_journal.c), which a build reading 3 would ignore. Older
 * states are converted at open. */
#define STATE_FORMAT_VERSION 4u
#define STATE_INITIAL_MAP (64ull << 20)

/* ---- who may have state (state_internal.h, "seen") -------------------------
 * Why: most customers asking for recommendations have no consent flags
 * and no live events, and each of the two lookups that say so cost ~650
 * instructions even on empty tables (LMDB searches the main table for a
 * table's record once per snapshot), 4% of a request answered from the
 * precomputed lists (callgrind, Online Retail); with a big state, a B-tree
 * descent each. */

static void seen_mark(state *s, const char *id, size_t len)
{
	uint64_t b = state_seen_bit(id, len);
	atomic_fetch_or_explicit(&s->seen[b / 64], 1ull << (b % 64), memory_order_relaxed);
}

/* Marks every customer of table dbi. Returns an LMDB code. */
static int seen_mark_table(state *s, MDB_txn *txn, MDB_dbi dbi)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, dbi, &c);
	while (rc == 0 && (rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_NODUP)) == 0)
		seen_mark(s, k.mv_data, k.mv_size);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	mdb_cursor_close(c);
	return rc;
}

/* Builds the filter from the tables (state_open, after any conversion:
 * nothing else writes yet). Returns an LMDB code. */
static int seen_build(state *s)
{
	MDB_txn *txn;
	s->seen = xcalloc(STATE_SEEN_WORDS, sizeof(*s->seen));
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return rc;
	if ((rc = seen_mark_table(s, txn, s->flags)) == 0)
		rc = seen_mark_table(s, txn, s->tails);
	mdb_txn_abort(txn);
	return rc;
}

/* The customers writes[0..n) may give flags or a log, marked before the
 * commit makes them visible: a snapshot that holds the write is taken
 * after the commit, and its state_txn_renew's acquire fence pairs with
 * the release fence here (on x86 both are ordering the compiler keeps;
 * LMDB publishes a commit with plain stores after these). */
static void seen_mark_writes(state *s, const state_write *writes, uint32_t n)
{
	if (!s->seen)
		return;
	for (uint32_t b = 0; b < n; b++) {
		const state_write *w = &writes[b];
		if (w->served || w->def || (!w->events && w->item) ||
		    (!w->events && w->expire_before > 0))
			continue; /* attribution, items, expiry: no flags, no appends */
		if (!w->events) {
			seen_mark(s, w->customer, w->customer_len);
			continue;
		}
		for (uint32_t i = 0; i < w->n; i++)
			if (EVENT_KEPT(w->events[i].type))
				seen_mark(s, w->events[i].customer, w->events[i].customer_len);
	}
	atomic_thread_fence(memory_order_release);
}

static int write_txn(state *s, int (*fn)(state *s, MDB_txn *txn, void *arg), void *arg);

static int recover_fn(state *s, MDB_txn *txn, void *arg)
{
	return state_journal_recover(s, txn);
}

int state_open(const char *dir, uint64_t initial_map, state **out, strbuf *err)
{
	state *s = xcalloc(1, sizeof(*s));
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->remap_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	strbuf path = STRBUF_INIT;
	MDB_txn *txn = NULL;
	int rc;

	if (store_make_dirs(dir, err) != 0)
		goto fail;
	sb_addf(&path, "%s/%s", dir, STATE_FILE);
	s->map_size = initial_map ? (initial_map + 4095) & ~4095ull : STATE_INITIAL_MAP;
	s->max_live = STATE_MAX_LIVE_DEFAULT;
	s->live_ttl = STATE_LIVE_TTL_DEFAULT;
	s->attr_window = STATE_ATTR_WINDOW_DEFAULT;
	if (store_env_open(path.buf, MDB_NOTLS, 16, s->map_size, 512, "state", &s->env, err) != 0)
		goto fail;
	/* The file may have grown past initial_map in an earlier run. */
	MDB_envinfo ei;
	if (mdb_env_info(s->env, &ei) == 0 && ei.me_mapsize > s->map_size)
		s->map_size = ei.me_mapsize;
	int dead = 0;
	mdb_reader_check(s->env, &dead); /* slots of a killed process */

	pthread_mutex_init(&s->erasures_lock, NULL);
	sb_reset(&path);
	sb_addf(&path, "%s/erasures.txt", dir);
	s->erasures_path = xstrdup(path.buf);
	sb_reset(&path);
	sb_addf(&path, "%s/%s", dir, STATE_FILE);
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "customer_flags", MDB_CREATE, &s->flags)) != 0 ||
	    (rc = mdb_dbi_open(txn, STATE_CHUNKS_DB, MDB_CREATE | MDB_DUPSORT, &s->chunks)) != 0 ||
	    (rc = mdb_dbi_open(txn, STATE_TAILS_DB, MDB_CREATE, &s->tails)) != 0 ||
	    (rc = mdb_dbi_open(txn, STATE_ITEMS_DB, MDB_CREATE, &s->items)) != 0 ||
	    (rc = mdb_dbi_open(txn, STATE_ATTR_DB, MDB_CREATE, &s->attr)) != 0 ||
	    (rc = mdb_dbi_open(txn, STATE_JOURNAL_DB, MDB_CREATE, &s->journal)) != 0) {
		store_lmdb_fail(err, "state: open", rc);
		goto fail;
	}
	s->has_items = true;
	s->has_attr = true;
	s->has_journal = true;
	MDB_val k = { 14, "format_version" }, v;
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		uint32_t ver = STATE_FORMAT_VERSION;
		MDB_val nv = { sizeof(ver), &ver };
		rc = mdb_put(txn, s->meta, &k, &nv, 0);
	} else if (rc == 0) {
		uint32_t ver = 0;
		if (v.mv_size == sizeof(ver))
			memcpy(&ver, v.mv_data, sizeof(ver));
		if (ver == 3) {
			/* Only the journal's table is new. */
		} else if (ver == 1 || ver == 2) {
			/* Format 1 is rewritten straight into the current one. */
			if ((rc = ver == 1 ? state_log_convert_v1(s, txn) : state_log_convert_v2(s, txn)) != 0) {
				sb_addf(err, "state: converting the event logs of format %u: %s", ver,
					mdb_strerror(rc));
				goto fail;
			}
		} else if (ver != STATE_FORMAT_VERSION) {
			sb_addf(err, "state %s has format version %u; this build uses %u", path.buf,
				ver, STATE_FORMAT_VERSION);
			goto fail;
		}
		if (ver != STATE_FORMAT_VERSION) {
			ver = STATE_FORMAT_VERSION;
			MDB_val nv = { sizeof(ver), &ver };
			rc = mdb_put(txn, s->meta, &k, &nv, 0);
		}
	}
	if (rc) {
		store_lmdb_fail(err, "state: initialise", rc);
		goto fail;
	}
	rc = store_txn_commit(&txn);
	if (rc) {
		store_lmdb_fail(err, "state: initialise", rc);
		goto fail;
	}
	/* What a crash left in the journal goes into the logs before anything
	 * reads them (the index starts empty). */
	if ((rc = write_txn(s, recover_fn, NULL)) != 0) {
		store_lmdb_fail(err, "state: merging the journal", rc);
		goto fail;
	}
	s->jr = state_journal_new();
	MDB_envinfo info;
	if (mdb_env_info(s->env, &info) == 0)
		atomic_store(&s->last_committed, info.me_last_txnid);
	if ((rc = seen_build(s)) != 0) {
		store_lmdb_fail(err, "state: reading the customers", rc);
		goto fail;
	}
	sb_release(&path);
	*out = s;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	sb_release(&path);
	state_close(s);
	return STORE_ERROR;
}

void state_close(state *s)
{
	if (!s)
		return;
	if (s->env)
		mdb_env_close(s->env);
	if (s->erasures_path)
		pthread_mutex_destroy(&s->erasures_lock);
	pthread_rwlock_destroy(&s->remap_lock);
	free(s->seen);
	free(s->erasures_path);
	state_journal_free(s->jr);
	free(s);
}

int state_txn_begin(state *s, state_txn **out)
{
	state_txn *t = xcalloc(1, sizeof(*t));
	t->s = s;
	t->slot = state_journal_reader_slot(s);
	state_journal_reader_enter(t);
	pthread_rwlock_rdlock(&s->remap_lock);
	if (store_reader_begin(s->env, &t->r) != 0) {
		pthread_rwlock_unlock(&s->remap_lock);
		goto fail;
	}
	if (mdb_cursor_open(t->r.txn, s->chunks, &t->chunks) != 0) {
		mdb_txn_abort(t->r.txn);
		pthread_rwlock_unlock(&s->remap_lock);
		goto fail;
	}
	atomic_thread_fence(memory_order_acquire); /* the snapshot, then "seen" */
	*out = t;
	return 0;
fail:
	state_journal_reader_leave(t);
	state_journal_reader_release(s, t->slot);
	free(t);
	return STORE_ERROR;
}

void state_txn_reset(state_txn *t)
{
	if (store_reader_reset(&t->r))
		pthread_rwlock_unlock(&t->s->remap_lock);
	state_journal_reader_leave(t);
}

int state_txn_renew(state_txn *t)
{
	if (t->r.active)
		return 0;
	state_journal_reader_enter(t);
	pthread_rwlock_rdlock(&t->s->remap_lock);
	if (store_reader_renew(&t->r) != 0) {
		pthread_rwlock_unlock(&t->s->remap_lock);
		state_journal_reader_leave(t);
		return STORE_ERROR;
	}
	t->chunks_stale = true;
	atomic_thread_fence(memory_order_acquire); /* the snapshot, then "seen" */
	return 0;
}

void state_txn_free(state_txn *t)
{
	if (!t)
		return;
	state_txn_reset(t);
	state_journal_reader_release(t->s, t->slot);
	mdb_cursor_close(t->chunks);
	mdb_txn_abort(t->r.txn);
	sb_release(&t->buf);
	free(t);
}

int state_customer_flags(state_txn *t, const char *id, size_t len, uint32_t *flags)
{
	MDB_val k = { len, (void *)id }, v;
	*flags = 0;
	if (!state_seen(t->s, id, len))
		return 0;
	int rc = mdb_get(t->r.txn, t->s->flags, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return store_code(rc);
	if (v.mv_size != sizeof(struct flag_record))
		return STORE_CORRUPT;
	struct flag_record fr;
	memcpy(&fr, v.mv_data, sizeof(fr));
	*flags = fr.flags;
	return 0;
}

/* Whether the customer is flagged STATE_ERASED (as txn sees it). */
static bool erased(state *s, MDB_txn *txn, const char *id, size_t len)
{
	MDB_val k = { len, (void *)id }, v;
	struct flag_record fr;
	if (mdb_get(txn, s->flags, &k, &v) != 0 || v.mv_size != sizeof(fr))
		return false;
	memcpy(&fr, v.mv_data, sizeof(fr));
	return fr.flags & STATE_ERASED;
}

/* Sets and clears flag bits of one customer inside txn; STATE_ERASED also
 * deletes their event log. */
static int apply_flags(state *s, MDB_txn *txn, const char *id, size_t len, uint32_t set,
		       uint32_t clear)
{
	MDB_val k = { len, (void *)id }, v;
	struct flag_record fr = { 0, 0, 0 };
	int rc = mdb_get(txn, s->flags, &k, &v);
	if (rc == 0 && v.mv_size == sizeof(fr))
		memcpy(&fr, v.mv_data, sizeof(fr));
	fr.flags = (fr.flags | set) & ~clear;
	fr.changed = (int64_t)util_now();
	v.mv_size = sizeof(fr);
	v.mv_data = &fr;
	rc = mdb_put(txn, s->flags, &k, &v, 0);
	if (rc == 0 && (set & STATE_ERASED))
		rc = state_log_delete(s, txn, k);
	if (rc == 0 && (set & STATE_ERASED) && s->jr)
		rc = state_journal_erase(s, txn, id, len);
	if (rc == 0 && (set & STATE_ERASED) && s->has_attr)
		rc = state_attr_erase(s, txn, id, len);
	return rc;
}

/* One customer's flags in one durable transaction of its own. */
static int update_flags(state *s, const char *id, size_t len, uint32_t set, uint32_t clear,
			strbuf *err)
{
	const state_write w = { .customer = id, .customer_len = len, .set = set, .clear = clear };
	return state_commit(s, &w, 1, err);
}

int state_set_consent(state *s, const char *id, size_t len, bool personalization, strbuf *err)
{
	return personalization ? update_flags(s, id, len, 0, STATE_NO_PERSONALIZATION, err)
			       : update_flags(s, id, len, STATE_NO_PERSONALIZATION, 0, err);
}

int state_list_erasures(state *s, const char *const *ids, const size_t *lens, uint32_t n,
			strbuf *err)
{
	strbuf lines = STRBUF_INIT;
	for (uint32_t i = 0; i < n; i++) {
		sb_add(&lines, ids[i], lens[i]);
		sb_addc(&lines, '\n');
	}
	pthread_mutex_lock(&s->erasures_lock);
	int fd = open(s->erasures_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write(fd, lines.buf, lines.len) == (ssize_t)lines.len &&
		  fsync(fd) == 0;
	int saved = errno;
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&s->erasures_lock);
	sb_release(&lines);
	if (!ok) {
		sb_addf(err, "state: cannot append to %s: %s", s->erasures_path,
			saved ? strerror(saved) : "short write");
		return STORE_ERROR;
	}
	return 0;
}

int state_erase(state *s, const char *id, size_t len, strbuf *err)
{
	/* The list first: a crash between the two leaves an id listed for
	 * exclusion but still served until the retry, never the reverse. */
	if (state_list_erasures(s, &id, &len, 1, err) != 0)
		return STORE_ERROR;
	return update_flags(s, id, len, STATE_ERASED, 0, err);
}

int state_add_counter(state *s, MDB_txn *txn, const char *name, uint64_t delta)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	uint64_t val = 0;
	if (mdb_get(txn, s->meta, &k, &v) == 0 && v.mv_size == sizeof(val))
		memcpy(&val, v.mv_data, sizeof(val));
	val += delta;
	v.mv_size = sizeof(val);
	v.mv_data = &val;
	return mdb_put(txn, s->meta, &k, &v, 0);
}

int state_grow_map(state *s)
{
	pthread_rwlock_wrlock(&s->remap_lock);
	uint64_t size = s->map_size * 2;
	int rc = mdb_env_set_mapsize(s->env, (size_t)size);
	if (rc == 0)
		s->map_size = size;
	pthread_rwlock_unlock(&s->remap_lock);
	return rc;
}

/* ---- the event log's position ---------------------------------------------
 * Meta record "event_log_position": u8 phase, u8 0 x3, u32 floor_sec, u64
 * ms, u64 seq, then the customer's id (0 to 256 bytes). */
#define LOG_POS_KEY "event_log_position"
#define LOG_POS_HEAD 24u

static int put_log_pos(state *s, MDB_txn *txn, const state_log_pos *pos)
{
	unsigned char rec[LOG_POS_HEAD + sizeof(pos->customer)] = { 0 };
	assert(pos->customer_len <= sizeof(pos->customer));
	rec[0] = pos->phase;
	memcpy(rec + 4, &pos->floor_sec, 4);
	memcpy(rec + 8, &pos->ms, 8);
	memcpy(rec + 16, &pos->seq, 8);
	memcpy(rec + LOG_POS_HEAD, pos->customer, pos->customer_len);
	MDB_val k = { strlen(LOG_POS_KEY), LOG_POS_KEY }, v = { LOG_POS_HEAD + pos->customer_len, rec };
	return mdb_put(txn, s->meta, &k, &v, 0);
}

int state_log_position(state *s, state_log_pos *out)
{
	MDB_txn *txn;
	memset(out, 0, sizeof(*out));
	pthread_rwlock_rdlock(&s->remap_lock);
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc) {
		pthread_rwlock_unlock(&s->remap_lock);
		return STORE_ERROR;
	}
	MDB_val k = { strlen(LOG_POS_KEY), LOG_POS_KEY }, v;
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == 0) {
		const unsigned char *p = v.mv_data;
		if (v.mv_size < LOG_POS_HEAD || v.mv_size > LOG_POS_HEAD + sizeof(out->customer) ||
		    p[0] < STATE_LOG_BOOTSTRAP || p[0] > STATE_LOG_APPLYING) {
			rc = STORE_CORRUPT;
		} else {
			out->phase = p[0];
			memcpy(&out->floor_sec, p + 4, 4);
			memcpy(&out->ms, p + 8, 8);
			memcpy(&out->seq, p + 16, 8);
			out->customer_len = v.mv_size - LOG_POS_HEAD;
			memcpy(out->customer, p + LOG_POS_HEAD, out->customer_len);
		}
	} else {
		rc = rc == MDB_NOTFOUND ? 0 : STORE_ERROR;
	}
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->remap_lock);
	return rc;
}

/* Runs fn(s, txn, arg) in one write transaction and commits it (one
 * fsync), growing the map and retrying when it fills. Returns an LMDB
 * code. */
static int write_txn(state *s, int (*fn)(state *s, MDB_txn *txn, void *arg), void *arg)
{
	int rc;
	for (int attempt = 0;; attempt++) {
		MDB_txn *txn;
		pthread_rwlock_rdlock(&s->remap_lock);
		if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
			pthread_rwlock_unlock(&s->remap_lock);
			return rc;
		}
		rc = fn(s, txn, arg);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		pthread_rwlock_unlock(&s->remap_lock);
		if (rc != MDB_MAP_FULL || attempt >= 30)
			return rc;
		if ((rc = state_grow_map(s)) != 0)
			return rc;
	}
}

static int clear_fn(state *s, MDB_txn *txn, void *arg)
{
	int rc;
	if ((rc = mdb_drop(txn, s->flags, 0)) != 0 || (rc = mdb_drop(txn, s->chunks, 0)) != 0 ||
	    (rc = mdb_drop(txn, s->journal, 0)) != 0 || (rc = state_journal_forget(s, txn)) != 0 ||
	    (rc = mdb_drop(txn, s->tails, 0)) != 0 ||
	    (s->has_items && (rc = mdb_drop(txn, s->items, 0)) != 0) ||
	    (s->has_attr && (rc = mdb_drop(txn, s->attr, 0)) != 0))
		return rc;
	return put_log_pos(s, txn, arg);
}

int state_clear(state *s, const state_log_pos *pos, strbuf *err)
{
	int rc = write_txn(s, clear_fn, (void *)pos);
	if (rc) {
		sb_addf(err, "state: cannot clear: %s", mdb_strerror(rc));
		return STORE_ERROR;
	}
	return 0;
}

struct drop_job {
	uint32_t sec, max;
	strbuf *cursor;
	bool done;
	uint64_t dropped;
};

static int drop_fn(state *s, MDB_txn *txn, void *arg)
{
	struct drop_job *j = arg;
	strbuf ids = STRBUF_INIT, buf = STRBUF_INIT, scratch = STRBUF_INIT;
	store_walk walk;
	MDB_val k, v;
	uint32_t n = 0;
	int rc;
	j->done = false;
	j->dropped = 0;
	/* The keys first (u16 length, bytes each), then the rewrites: a log
	 * is rewritten with puts and deletes the walking cursor must not see. */
	if ((rc = store_walk_open(&walk, txn, s->tails, j->cursor->buf, j->cursor->len)) != 0)
		goto out;
	while (n < j->max && (rc = store_walk_next(&walk, &k, &v)) == 0) {
		uint16_t len = (uint16_t)k.mv_size;
		sb_add(&ids, &len, 2);
		sb_add(&ids, k.mv_data, k.mv_size);
		n++;
	}
	mdb_cursor_close(walk.cur);
	if (rc == MDB_NOTFOUND) {
		j->done = true;
		rc = 0;
	}
	for (size_t p = 0; rc == 0 && p < ids.len;) {
		uint16_t len;
		memcpy(&len, ids.buf + p, 2);
		MDB_val key = { len, ids.buf + p + 2 };
		uint32_t dropped = 0;
		rc = state_log_drop_before(s, txn, key, j->sec, &buf, &scratch, &dropped);
		j->dropped += dropped;
		p += 2 + (size_t)len;
		if (p == ids.len) {
			sb_reset(j->cursor);
			sb_add(j->cursor, key.mv_data, key.mv_size);
		}
	}
out:
	sb_release(&ids);
	sb_release(&buf);
	sb_release(&scratch);
	return rc;
}

int state_drop_before(state *s, uint32_t sec, strbuf *cursor, uint32_t max_customers,
		      bool *done, uint64_t *dropped, strbuf *err)
{
	struct drop_job j = { sec, max_customers ? max_customers : 1, cursor, false, 0 };
	int rc = write_txn(s, drop_fn, &j);
	if (rc) {
		sb_addf(err, "state: cannot drop covered events: %s", mdb_strerror(rc));
		return STORE_ERROR;
	}
	*done = j.done;
	*dropped = j.dropped;
	return 0;
}

void state_set_write_slice(state *s, double seconds)
{
	assert(seconds >= 0);
	s->write_slice = seconds;
}

/* Between two stretches of a write transaction the writing thread sleeps
 * this long (the kernel's timer slack makes it 50 to 100 us), which lets a
 * request thread waiting for the same core run. sched_yield did not: under
 * EEVDF the writer, which has used less than its share, often stays the
 * one picked, and in a measured run (20,000 events/s in batches of 100,
 * server on one core) 82 of its apply stretches that a request waited
 * behind still lasted over 0.5 ms; with this sleep, 1 (the longest 0.81
 * ms, against 4 ms without either). */
#define WRITE_PAUSE_NS 50000L

/* Sleeps WRITE_PAUSE_NS once the current stretch of a write transaction
 * has lasted s->write_slice (*since: when it began, reset here). Not
 * static: the journal's merges pause too. */
void state_write_pause(state *s, double *since)
{
	if (s->write_slice <= 0 || util_monotonic() - *since < s->write_slice)
		return;
	struct timespec pause = { 0, WRITE_PAUSE_NS };
	nanosleep(&pause, NULL);
	*since = util_monotonic();
	s->write_pauses++;
}

uint64_t state_write_pauses(const state *s)
{
	return s->write_pauses;
}

int state_commit(state *s, const state_write *writes, uint32_t n, strbuf *err)
{
	return state_commit_log(s, writes, n, NULL, err);
}

/* An expiry (state_write.expire_before) of one customer in the caller's
 * write transaction: the sweep's rule, so every replica applying the same
 * record to the same state drops the same log. *expired counts it.
 * Returns an LMDB code. */
static int expire_one(state *s, MDB_txn *txn, MDB_cursor *cur, const char *id, size_t len,
		      int64_t before, uint64_t *expired)
{
	state_txn t = { .s = s, .chunks = cur };
	t.r.txn = txn;
	t.r.active = true;
	state_events ev;
	int rc = state_events_get(&t, id, len, &ev);
	if (rc == 0 && ev.count && state_log_idle(&ev, before)) {
		MDB_val k = { len, (void *)id };
		rc = state_log_delete(s, txn, k);
		*expired += rc == 0;
	} else {
		/* A damaged log (STORE_CORRUPT) is kept, as the sweep keeps it. */
		rc = rc == STORE_ERROR ? MDB_PANIC : 0;
	}
	sb_release(&t.buf);
	return rc;
}

int state_commit_log(state *s, const state_write *writes, uint32_t n, const state_log_pos *pos,
		     strbuf *err)
{
	strbuf buf = STRBUF_INIT;
	int rc;
	/* The journal takes a single node's events (not the event log's). */
	bool to_journal = s->jr && s->merge_after > 0 && !pos;
	uint64_t seq_before = s->journal_seq;
	seen_mark_writes(s, writes, n);
	for (int attempt = 0;; attempt++) {
		MDB_txn *txn;
		uint64_t txn_id;
		uint64_t total = 0, unknown = 0, expired = 0;
		MDB_cursor *cur = NULL; /* closed with the write txn */
		double since = util_monotonic(); /* the stretch's start (write_pause) */
		/* A write transaction uses the map too: keep growth out meanwhile
		 * (only this thread writes, so it cannot wait on itself). */
		pthread_rwlock_rdlock(&s->remap_lock);
		if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
			pthread_rwlock_unlock(&s->remap_lock);
			break;
		}
		txn_id = mdb_txn_id(txn);
		rc = mdb_cursor_open(txn, s->chunks, &cur);
		for (uint32_t b = 0; rc == 0 && b < n; b++) {
			const state_write *w = &writes[b];
			if (w->served || w->def) {
				for (uint32_t i = 0; rc == 0 && i < w->n_def; i++)
					rc = state_attr_put_def(s, txn, &w->def[i]);
				for (uint32_t i = 0; rc == 0 && i < w->n_served; i++)
					rc = state_attr_put_served(s, txn, &w->served[i]);
				continue;
			}
			if (!w->events && w->item) {
				rc = state_apply_item_write(s, txn, w->item, w->item_len, w->set, w->clear,
						      w->meta);
				continue;
			}
			if (!w->events && w->expire_before > 0) {
				rc = expire_one(s, txn, cur, w->customer, w->customer_len,
						w->expire_before, &expired);
				continue;
			}
			if (!w->events) {
				rc = apply_flags(s, txn, w->customer, w->customer_len, w->set, w->clear);
				continue;
			}
			for (uint32_t i = 0; rc == 0 && i < w->n; i++) {
				const event_in *e = &w->events[i];
				state_write_pause(s, &since);
				/* Checked when the request was taken, but an erasure
				 * may have been committed since. */
				if (erased(s, txn, e->customer, e->customer_len))
					continue;
				if (EVENT_KEPT(e->type) && to_journal && w->log_sec == 0)
					rc = state_journal_append(s, txn, e);
				else if (EVENT_KEPT(e->type))
					rc = state_log_append_sec(s, txn, cur, e, w->log_sec, &buf);
				if (rc == 0)
					rc = state_attr_event(s, txn, e);
				total++;
				unknown += !e->known_item;
			}
		}
		if (rc == 0 && total)
			rc = state_add_counter(s, txn, "events", total);
		if (rc == 0 && unknown)
			rc = state_add_counter(s, txn, "unknown_items", unknown);
		if (rc == 0 && expired)
			rc = state_add_counter(s, txn, "expired_customers", expired);
		if (rc == 0 && pos)
			rc = put_log_pos(s, txn, pos);
		if (rc == 0) {
			/* The journal's index, then the commit (state_journal.c). */
			atomic_thread_fence(memory_order_release);
			rc = mdb_txn_commit(txn); /* synchronous: one fsync for all */
		} else {
			mdb_txn_abort(txn);
		}
		pthread_rwlock_unlock(&s->remap_lock);
		if (s->jr)
			state_journal_end(s, txn_id, rc == 0, seq_before);
		if (rc != MDB_MAP_FULL || attempt >= 30)
			break;
		if ((rc = state_grow_map(s)) != 0)
			break;
	}
	sb_release(&buf);
	if (rc) {
		sb_addf(err, "state: cannot write: %s", mdb_strerror(rc));
		return STORE_ERROR;
	}
	return 0;
}

int state_write_events(state *s, const event_in *events, uint32_t n, strbuf *err)
{
	const state_write w = { .events = events, .n = n };
	return state_commit(s, &w, 1, err);
}

int state_get_counters(state_txn *t, state_counters *out)
{
	memset(out, 0, sizeof(*out));
	const char *names[3] = { "events", "unknown_items", "expired_customers" };
	uint64_t *vals[3] = { &out->events, &out->unknown_items, &out->expired };
	out->live = state_live_customers(t);
	for (int i = 0; i < 3; i++) {
		MDB_val k = { strlen(names[i]), (void *)names[i] }, v;
		if (mdb_get(t->r.txn, t->s->meta, &k, &v) == 0 && v.mv_size == 8)
			memcpy(vals[i], v.mv_data, 8);
	}
	MDB_envinfo ei;
	MDB_stat st;
	if (mdb_env_info(t->s->env, &ei) == 0 && mdb_env_stat(t->s->env, &st) == 0) {
		out->map_size = ei.me_mapsize;
		out->map_used = (uint64_t)(ei.me_last_pgno + 1) * st.ms_psize;
	}
	return 0;
}

int state_defer_meta_sync(state *s)
{
	return mdb_env_set_flags(s->env, MDB_NOMETASYNC, 1) == 0 ? 0 : STORE_ERROR;
}

/* A read-only open needs the current format (serve converts older ones). */
static int readonly_version(state *s, MDB_txn *txn, const char *path, strbuf *err)
{
	MDB_val k = { 14, "format_version" }, v;
	uint32_t ver = 0;
	if (mdb_get(txn, s->meta, &k, &v) == 0 && v.mv_size == sizeof(ver))
		memcpy(&ver, v.mv_data, sizeof(ver));
	if (ver == STATE_FORMAT_VERSION || ver == 3) /* 3: without the journal */
		return 0;
	sb_addf(err, "state %s has format version %u; this build reads %u (start `shopkeeper "
		     "serve` on it once to convert it)", path, ver, STATE_FORMAT_VERSION);
	return MDB_INCOMPATIBLE;
}

/* The item overrides' table, which a state written before it lacks
 * (then there are none). Returns an LMDB code. */
static int open_items_readonly(state *s, MDB_txn *txn)
{
	int rc = mdb_dbi_open(txn, STATE_ITEMS_DB, 0, &s->items);
	s->has_items = rc == 0;
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	rc = mdb_dbi_open(txn, STATE_ATTR_DB, 0, &s->attr); /* newer than the items */
	s->has_attr = rc == 0;
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	rc = mdb_dbi_open(txn, STATE_JOURNAL_DB, 0, &s->journal); /* format 4 */
	s->has_journal = rc == 0;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int state_open_readonly(const char *dir, state **out, strbuf *err)
{
	state *s = xcalloc(1, sizeof(*s));
	strbuf path = STRBUF_INIT;
	MDB_txn *txn = NULL;
	int rc;
	pthread_rwlock_init(&s->remap_lock, NULL);
	sb_addf(&path, "%s/%s", dir, STATE_FILE);
	if (access(path.buf, R_OK) != 0) {
		sb_addf(err, "no state in %s (%s: %s)", dir, path.buf, strerror(errno));
		goto fail;
	}
	if (store_env_open(path.buf, MDB_NOTLS | MDB_RDONLY, 16, 0, 512, "state", &s->env, err) != 0)
		goto fail;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", 0, &s->meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "customer_flags", 0, &s->flags)) != 0 ||
	    (rc = readonly_version(s, txn, path.buf, err)) != 0 ||
	    (rc = mdb_dbi_open(txn, STATE_CHUNKS_DB, MDB_DUPSORT, &s->chunks)) != 0 ||
	    (rc = mdb_dbi_open(txn, STATE_TAILS_DB, 0, &s->tails)) != 0 ||
	    (rc = open_items_readonly(s, txn)) != 0 || (rc = store_txn_commit(&txn)) != 0) {
		if (txn)
			mdb_txn_abort(txn);
		store_lmdb_fail(err, "state: open tables", rc);
		goto fail;
	}
	sb_release(&path);
	*out = s;
	return 0;
fail:
	sb_release(&path);
	state_close(s);
	return STORE_ERROR;
}

