/*
 * state_internal: what state.c and state_events.c share: the state's
 * handles and the event-log operations a commit and an open call. Private
 * to those two files.
 */
#ifndef SHOPKEEPER_STATE_INTERNAL_H
#define SHOPKEEPER_STATE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ids.h"
#include "state.h"
#include "store_internal.h"
#include "util.h"

struct state {
	MDB_env *env;
	MDB_dbi meta;
	MDB_dbi flags;   /* customer id -> struct flag_record */
	MDB_dbi chunks;  /* customer id -> sealed event log chunks (state_events.c) */
	MDB_dbi tails;   /* customer id -> the log's tail, where events are appended */
	MDB_dbi items;   /* item id -> struct item_record (live overrides) */
	MDB_dbi attr;    /* attribution's records (state_attr.c) */
	MDB_dbi journal; /* be64 seq -> an acknowledged event not yet in its
			  * customer's log (state_journal.c) */
	bool has_journal; /* false: a read-only open of a state older than it */
	/* The index of the journal's events (state_journal.c): a writable
	 * open's, NULL on a read-only one (each state_txn builds its own). */
	struct journal *jr;
	double merge_after; /* seconds; 0: events go straight to the logs */
	uint64_t journal_seq; /* the last sequence number appended (writer) */
	/* The id of the last transaction this process committed, a lower
	 * bound for any snapshot taken from now on (state_journal.c). */
	_Atomic uint64_t last_committed;
	bool has_attr;   /* false: a read-only open of a state older than it */
	int64_t attr_window; /* seconds (state_set_attribution_window) */
	bool has_items;  /* false: a read-only open of a state older than the table */
	char *erasures_path;
	pthread_mutex_t erasures_lock; /* one appender at a time */
	/* Growing the map remaps it: no read transaction may be active then.
	 * Readers hold this shared for the span of a request; the writer
	 * takes it exclusively only to grow (rare). Writer-preferring, so a
	 * steady read load cannot starve growth. */
	pthread_rwlock_t remap_lock;
	uint64_t map_size;
	/* Live customers (state_set_live_limits). */
	uint64_t max_live;
	int64_t live_ttl; /* seconds; 0: logs never expire */
	/* A write transaction's changes are applied in stretches of at most
	 * this many seconds of the writing thread, which gives up the
	 * processor between them (state_set_write_slice); 0: in one. */
	double write_slice;
	uint64_t write_pauses; /* pauses so far (state_write_pauses) */
	/* Where the idle sweep resumes: after this id (the writer thread's). */
	char sweep_after[ID_MAX_LEN];
	size_t sweep_after_len;
	/* Customers that may have flags or an event log: STATE_SEEN_BITS bits
	 * by a hash of the id, set for every customer in the tables at open
	 * and by state_commit_log before it commits a write of theirs, never
	 * cleared. A clear bit means the customer has neither in any snapshot
	 * (state_txn_renew's fence pairs with state_commit_log's), so their
	 * two lookups need no B-tree. NULL (a read-only open, beside a server
	 * that writes): every lookup goes to LMDB. */
	_Atomic uint64_t *seen;
};

/* 2^24 bits, 2 MiB: with a million customers with state, 94% of the
 * others are still told apart. */
#define STATE_SEEN_SHIFT 40 /* a 64-bit hash's top 24 bits */
#define STATE_SEEN_WORDS ((1ull << (64 - STATE_SEEN_SHIFT)) / 64)

/* The bit of customer id (util_id_hash's top bits). */
static inline uint64_t state_seen_bit(const char *id, size_t len)
{
	return util_id_hash(id, len) >> STATE_SEEN_SHIFT;
}

/* Whether customer id may have flags or a log in a snapshot taken after
 * this thread's state_txn_renew (true when s keeps no filter). */
static inline bool state_seen(const state *s, const char *id, size_t len)
{
	if (!s->seen)
		return true;
	uint64_t b = state_seen_bit(id, len);
	return (atomic_load_explicit(&s->seen[b / 64], memory_order_relaxed) >> (b % 64)) & 1;
}

struct state_txn {
	state *s;
	store_reader r;     /* while active, holds remap_lock shared */
	MDB_cursor *chunks; /* on the event chunks */
	/* chunks is still on an earlier snapshot: state_txn_renew leaves it
	 * to the first read of a log that has chunks (state_events_get) to
	 * renew it, as most customers' logs are a tail alone, or nothing (a
	 * renewal is 430 instructions: a search of the main table for the
	 * chunks' record, on every request before). */
	bool chunks_stale;
	strbuf buf;         /* a customer's log joined (state_events_get) */
	int slot;           /* its snapshot bound's slot (state_journal.c); -1: none */
	struct journal *ro; /* a read-only open: the journal of snapshot ro_txn */
	uint64_t ro_txn;
};

#define STATE_CHUNKS_DB "event_chunks"
#define STATE_TAILS_DB "event_tails"
#define STATE_ITEMS_DB "items"
#define STATE_ATTR_DB "attribution"
#define STATE_JOURNAL_DB "journal"

/* Bytes of an encoded event at most (state_event_encode). */
#define STATE_EVENT_MAX (22 + STATE_MAX_ITEM_LEN)

/* Encodes e as a log holds it (log_sec: state_log_append_sec) into rec,
 * which has STATE_EVENT_MAX bytes. Returns its length. */
size_t state_event_encode(const event_in *e, uint32_t log_sec, unsigned char *rec);
/* Bytes of the first encoded event in data[0..size), or 0 when it is cut
 * short. */
size_t state_event_bytes(const unsigned char *data, size_t size);

/* The operations below work inside the caller's write transaction and
 * return LMDB codes (MDB_CORRUPTED for a damaged log); the public
 * functions in state.c turn them into STORE_* codes. */

/* Appends one event to its customer's log (c: a cursor on the chunks; buf:
 * scratch), dropping the oldest beyond STATE_MAX_EVENTS. */
int state_log_append(state *s, MDB_txn *txn, MDB_cursor *c, const event_in *e, strbuf *buf);
/* The same, recording the second of the event-log entry that carried it
 * (0: none; kept in the event's reserved bytes 18..21). */
int state_log_append_sec(state *s, MDB_txn *txn, MDB_cursor *c, const event_in *e,
			 uint32_t log_sec, strbuf *buf);
/* The same with the event already encoded (state_event_encode) for the
 * customer `key`. */
int state_log_append_rec(state *s, MDB_txn *txn, MDB_cursor *c, MDB_val key,
			 const unsigned char *rec, size_t rlen, strbuf *buf);
/* Deletes a customer's whole log (erasure). */
int state_log_delete(state *s, MDB_txn *txn, MDB_val key);
/* Rewrites key's log without the events carried by event-log entries of
 * seconds before `sec` (log_sec 0 < log_sec < sec), counting them in
 * *dropped; a log with none is not written. buf and scratch: scratch
 * space. */
int state_log_drop_before(state *s, MDB_txn *txn, MDB_val key, uint32_t sec, strbuf *buf,
			  strbuf *scratch, uint32_t *dropped);
/* Attribution inside a write transaction (state_attr.c): a definition,
 * a served answer, one event (any type; those without a rec_id that are
 * not purchases do nothing), and an erasure's removal of the customer's
 * records. */
int state_attr_put_def(state *s, MDB_txn *txn, const state_attr_def *d);
int state_attr_put_served(state *s, MDB_txn *txn, const state_attr_served *sv);
int state_attr_event(state *s, MDB_txn *txn, const event_in *e);
int state_attr_erase(state *s, MDB_txn *txn, const char *customer, size_t len);

/* One item record's write inside a write transaction (state_items.c):
 * sets and clears its STATE_ITEM_* flags and the catalog fields `change`
 * names (NULL: none; the others are kept). Returns an LMDB code. */
int state_apply_item_write(state *s, MDB_txn *txn, const char *id, size_t len, uint32_t set,
			   uint32_t clear, const state_item_meta *change);

/* Doubles the map (state.c); readers are kept out meanwhile (remap_lock).
 * Returns an LMDB code. */
int state_grow_map(state *s);
/* Adds delta to the counter `name` of the meta table (state.c). */
int state_add_counter(state *s, MDB_txn *txn, const char *name, uint64_t delta);
/* state_iter_begin over the logs alone, without the journal's events or
 * customers (the idle sweep, which leaves customers with journal events
 * alone anyway: listing the journal's customers for each batch would cost
 * the writer a walk of the whole index). */
int state_iter_begin_logs(state_txn *t, const char *after, size_t after_len, state_iter **out);
/* Whether a log has no purchase and its newest event is before `before`:
 * the idle sweep's rule, also an expiry record's (state_live.c). A log
 * that cannot be decoded is kept (false). */
bool state_log_idle(const state_events *ev, int64_t before);

/* Sleeps between two stretches of a write transaction (state.c,
 * state_set_write_slice); *since: when the current stretch began. */
void state_write_pause(state *s, double *since);

/* ---- the journal (state_journal.c) ------------------------------------------
 * With serve's single writer, an acknowledged event is appended to the
 * journal (MDB_APPEND: the same last page for every event of a commit)
 * and to an index in memory, and merged into its customer's log later, in
 * key order, a few thousand events a transaction, when the writer has
 * nothing queued. Readers add the index's events that their snapshot has
 * in the journal but not yet in the log. All functions but the readers'
 * run in the writer's thread (or before it starts). */
typedef struct journal journal;

/* Appends the kept event e to the journal inside the writer's txn and to
 * the index, visible to snapshots of txn. Returns an LMDB code. */
int state_journal_append(state *s, MDB_txn *txn, const event_in *e);
/* An erasure of the customer inside txn: deletes their events from the
 * journal and hides them from snapshots of txn on. */
int state_journal_erase(state *s, MDB_txn *txn, const char *id, size_t len);
/* After the commit of the writer's txn (committed: whether it was): drops
 * what an erasure hid, or undoes what the failed txn added to the index
 * (s->journal_seq back to seq_before). */
void state_journal_end(state *s, uint64_t txn_id, bool committed, uint64_t seq_before);
/* At a writable open (nothing else running): moves what the journal holds
 * into the customers' logs and empties it. Returns an LMDB code. */
int state_journal_recover(state *s, MDB_txn *txn);
/* Deletes the record of a merge cycle (the journal being dropped). */
int state_journal_forget(state *s, MDB_txn *txn);
/* An empty index, owned by the caller (state_journal_free; NULL: nothing). */
journal *state_journal_new(void);
void state_journal_free(journal *jr);
/* Adds to *out (a log read in snapshot t, borrowed from t or its buffer)
 * the journal's events of customer id that the snapshot has not merged,
 * in buf, keeping the newest STATE_MAX_EVENTS. Returns 0 or STORE_ERROR. */
int state_journal_add(state_txn *t, const char *id, size_t len, strbuf *buf,
		      state_events *out);
/* LMDB's default order of keys: bytes, then the shorter first. */
static inline int state_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

/* A list of customer ids: [u16 len][id] each in `ids`, off[0..n) where
 * each starts (journal_ids_add, journal_ids_sort, journal_ids_release). */
typedef struct journal_ids {
	strbuf ids;
	size_t *off;
	size_t n, cap;
} journal_ids;

void journal_ids_add(journal_ids *l, const char *id, size_t len);
/* Sorts the list in LMDB's key order. */
void journal_ids_sort(journal_ids *l);
void journal_ids_release(journal_ids *l);
/* The i-th id of l (borrowed; its length in *len). */
static inline const char *journal_ids_at(const journal_ids *l, size_t i, size_t *len)
{
	uint16_t n;
	memcpy(&n, l->ids.buf + l->off[i], 2);
	*len = n;
	return l->ids.buf + l->off[i] + 2;
}

/* The customers with journal events visible to t (after `after`), sorted
 * in LMDB's key order, appended to *out (the caller's, released with
 * journal_ids_release). Returns 0 or STORE_ERROR. */
int state_journal_customers(state_txn *t, const char *after, size_t after_len, journal_ids *out);
/* Whether t's snapshot has journal events of the customer beyond the log. */
bool state_journal_has(state_txn *t, const char *id, size_t len);
/* Whether the index holds any event of the customer (writer's view). */
bool state_journal_holds(state *s, const char *id, size_t len);
/* Customers with journal events and no log when their first came. */
uint64_t state_journal_new_customers(state_txn *t);
/* The readers' snapshot bounds: a slot for a state_txn (-1: none left,
 * or a read-only open; then nothing is freed while it lives), given back
 * when it is freed; enter publishes a bound before each snapshot is taken,
 * leave withdraws it (and drops a read-only txn's index). */
int state_journal_reader_slot(state *s);
void state_journal_reader_release(state *s, int slot);
void state_journal_reader_enter(state_txn *t);
void state_journal_reader_leave(state_txn *t);

/* Rewrites the event logs of a state of format 1 or 2 into the current
 * format. */
int state_log_convert_v1(state *s, MDB_txn *txn);
int state_log_convert_v2(state *s, MDB_txn *txn);

#endif
