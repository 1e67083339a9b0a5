/*
 * state: the server's read-write state, DIR/state.mdb: per-customer flags
 * (consent, erasure), each customer's event log (state_events.h), per-item
 * overrides (out of stock, not recommendable) and counters, plus DIR/erasures.txt, the list `train --exclude-customers`
 * reads. docs/design.md ("Model and state formats", "Durability") has the
 * layout and the durability contract.
 *
 * Writes go through state_commit: one synchronous LMDB transaction for a
 * whole group of writes (the events module's writer thread batches them),
 * so when it returns 0 everything in it is on disk. The map doubles when
 * it fills; read transactions hold it in place for the span of a request.
 *
 * One process writes a state: the one that opened it with state_open
 * (serve). It keeps in memory which customers may have flags or events
 * (read from the tables at open, marked by each commit before it lands),
 * and answers the lookups of the others without LMDB; a second process
 * writing the same directory would go unseen. Read-only opens
 * (state_open_readonly) keep no such record and always ask LMDB.
 *
 * Errors: 0 or a negative STORE_* code (store.h); messages for people in a
 * caller's strbuf where one is passed.
 */
#ifndef SHOPKEEPER_STATE_H
#define SHOPKEEPER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state_events.h"
#include "store.h"
#include "strbuf.h"

typedef struct state state;

/* Opens (creating if needed) the read-write state environment in DIR,
 * clearing stale reader slots left by a crashed process and converting an
 * older format. `initial_map` is the starting map size in bytes (0: 64
 * MiB); the map doubles whenever it fills. Returns 0 or STORE_ERROR with a
 * message in *err. */
int state_open(const char *dir, uint64_t initial_map, state **out, strbuf *err);
/* Opens an existing state read-only, for tools running beside the server
 * (export). Returns 0 or STORE_ERROR with a message in *err. */
int state_open_readonly(const char *dir, state **out, strbuf *err);
/* For a state that is a view of a durable log (serve --event-log, where
 * the position applied is committed with the entries): each commit syncs
 * its pages once and leaves the meta page to the next commit's sync
 * (MDB_NOMETASYNC). A system crash may then undo the last commit, never
 * break the state; the applier applies those entries again. A single
 * node's state is the only copy of its events and never calls this.
 * Returns 0 or STORE_ERROR. */
int state_defer_meta_sync(state *s);

/* Makes every later write transaction (state_commit, state_commit_log)
 * apply its writes in stretches of at most `seconds`, the writing thread
 * sleeping briefly (50 to 100 us) between them, so that a request thread
 * sharing its core waits behind one stretch instead of a whole group. The
 * transaction, its one fsync and when it is acknowledged are unchanged;
 * LMDB's commit itself (its page writes and fsync) is one stretch still.
 * 0 (the default): in one stretch. Set before the writer starts (events.c
 * does). */
void state_set_write_slice(state *s, double seconds);
/* The pauses write transactions made so far (for tests; read it on the
 * writing thread or once it has stopped). */
uint64_t state_write_pauses(const state *s);

/* The journal (serve's single writer; not with the shared event log,
 * whose applier writes the logs itself). With merge_after > 0 an event
 * that state_commit acknowledges is appended to the journal, one table
 * written in sequence, and merged into its customer's log later: once the
 * oldest waiting event is merge_after seconds old, by the writer calling
 * state_journal_merge when it has nothing else to do. Every read sees the
 * journal's events as part of the logs (state_events_get, state_iter, the
 * live counts), at once and across restarts; a writable open merges what
 * a crash left. 0 (the default): events go straight to the logs. Set
 * before the writer starts. */
void state_set_merge_after(state *s, double seconds);
/* When the next merge step is due (util_monotonic() time; 0: nothing to
 * merge). */
double state_journal_due(state *s);
/* Whether so many events wait (about 500,000) that merges go on even
 * while writes are queued. */
bool state_journal_full(state *s);
/* One merge step: one write transaction of about a thousand events in key
 * order (all: until nothing waits). Call it from the writing thread.
 * Returns 0 or STORE_ERROR (err says why; nothing acknowledged is lost,
 * the events stay in the journal). */
int state_journal_merge(state *s, bool all, strbuf *err);
/* Events waiting in the journal, and merged since open. */
void state_journal_stats(state *s, uint64_t *pending, uint64_t *merged);

/* Every state_txn on s must have been freed first. state_close(NULL) does
 * nothing. */
void state_close(state *s);

/* Per-customer flags kept in the state. */
#define STATE_NO_PERSONALIZATION 1u /* consent withdrawn */
#define STATE_ERASED 2u             /* DELETE /v1/customers/{id} */

/* A read transaction on the state, one per thread, reused like model_txn.
 * While one is active (begun or renewed, not yet reset) the map cannot be
 * grown, so keep them short: the span of one request. state_txn_begin and
 * state_txn_renew return 0 or STORE_ERROR; state_txn_free(NULL) does
 * nothing. */
int state_txn_begin(state *s, state_txn **out);
void state_txn_reset(state_txn *t);
int state_txn_renew(state_txn *t);
void state_txn_free(state_txn *t);

/* The customer's STATE_* flags (0 when the state knows nothing of them;
 * O(1), no LMDB, for a customer no write has named). Returns 0,
 * STORE_CORRUPT (a record of the wrong size) or STORE_ERROR. */
int state_customer_flags(state_txn *t, const char *id, size_t len, uint32_t *flags);

/* (Test only: serve changes consent through the event writer, events.h.)
 * Records consent (personalization allowed or not), durably: when this
 * returns 0 the change is on disk. Returns 0 or STORE_ERROR with a message
 * in *err. */
int state_set_consent(state *s, const char *id, size_t len, bool personalization, strbuf *err);

/* Per-item overrides (PUT /v1/items/{id}), in bits of their own: no item
 * flag is a customer flag, so neither can be taken for the other. */
#define STATE_ITEM_UNAVAILABLE 0x100u       /* out of stock */
#define STATE_ITEM_NOT_RECOMMENDABLE 0x200u /* never to be recommended */

/* An item's catalog fields, kept after its flags (PUT /v1/items/{id},
 * issue 18): for an item the model does not know they are all serving has
 * of it. `fields` says which are given; strings are borrowed and need not
 * be NUL-terminated. */
#define STATE_ITEM_TITLE 1u
#define STATE_ITEM_CATEGORY 2u
#define STATE_ITEM_PRICE 4u
#define STATE_ITEM_FIRST_SEEN 8u
#define STATE_ITEM_FIELDS 15u
#define STATE_ITEM_MAX_TITLE 512    /* bytes, as a catalog's (INGEST_MAX_TITLE) */
#define STATE_ITEM_MAX_CATEGORY 128 /* bytes (INGEST_MAX_CATEGORY) */
typedef struct state_item_meta {
	uint32_t fields;       /* STATE_ITEM_TITLE | ... */
	const char *title;     /* 0..STATE_ITEM_MAX_TITLE bytes */
	size_t title_len;
	const char *category;  /* 0..STATE_ITEM_MAX_CATEGORY bytes */
	size_t category_len;
	float price;           /* >= 0, finite */
	int32_t first_seen;    /* days since 1970-01-01 (UTC) */
} state_item_meta;

/* The item's STATE_ITEM_* flags (0 when none was recorded). Returns 0,
 * STORE_CORRUPT (a record too short) or STORE_ERROR. */
int state_item_flags(state_txn *t, const char *id, size_t len, uint32_t *flags);

/* The same outside any state_txn, in a read snapshot of its own: the
 * event writer's thread reads what it has just committed. */
int state_item_flags_now(state *s, const char *id, size_t len, uint32_t *flags);

/* The item's flags and catalog fields (fields 0 when none were
 * recorded), in a read snapshot of its own; the strings are copied into
 * *store (reset first), which the caller releases. Returns 0, STORE_CORRUPT
 * or STORE_ERROR. */
int state_item_get_now(state *s, const char *id, size_t len, uint32_t *flags,
		       state_item_meta *meta, strbuf *store);

/* Called once per item override: its id (borrowed for the call) and flags. */
typedef void (*state_item_fn)(void *arg, const char *id, size_t len, uint32_t flags);
/* Calls fn for every item with a recorded override, in id order, in one
 * read snapshot of its own (no state_txn of this thread may be active).
 * Returns 0, STORE_CORRUPT or STORE_ERROR. */
int state_items_each(state *s, state_item_fn fn, void *arg);
/* As state_items_each, with each item's catalog fields (borrowed for the
 * call; fields 0 when it has none). */
typedef void (*state_item_meta_fn)(void *arg, const char *id, size_t len, uint32_t flags,
				   const state_item_meta *meta);
int state_items_meta_each(state *s, state_item_meta_fn fn, void *arg);

/* ---- attribution (issue 15; attribution.h) -------------------------------
 *
 * Per experiment and variant, counts kept in the table "attribution",
 * updated inside state_commit: events carrying a rec_id (recid.h) of an
 * experiment count for its variant (tagged), an untagged purchase of an
 * item served to that customer within the attribution window counts as
 * view-through, and batches of served answers (state_attr_served) count
 * customers assigned and exposed, and impressions. Customers whose
 * consent is withdrawn are no longer attributed; an erasure removes the
 * customer's per-customer records and their part of the per-customer
 * figures (customers, exposed, converters, values) and counts them in
 * `erased`. Bounds: one record of 16 bytes per customer and experiment,
 * and per customer the last STATE_ATTR_SERVED_MAX items served (24 bytes
 * each). */
#define STATE_ATTR_VARIANTS 16     /* variants of one experiment */
#define STATE_ATTR_NAME_MAX 64     /* bytes of an experiment or variant name */
#define STATE_ATTR_ITEMS 32        /* items of one served answer remembered */
#define STATE_ATTR_SERVED_MAX 256  /* served items remembered per customer */
#define STATE_ATTR_WINDOW_DEFAULT (7 * 86400) /* seconds: --attribution-days 7 */
/* A served item may be stamped this much after the purchase it explains
 * and still count (clocks of replicas and of the shop differ a little). */
#define STATE_ATTR_SKEW 300

/* An experiment's definition. Strings borrowed (from the caller when
 * written, from the transaction when read). */
typedef struct state_attr_def {
	uint32_t experiment;              /* recid_experiment_id; not 0 */
	const char *name;
	size_t name_len;                  /* 1..STATE_ATTR_NAME_MAX */
	uint32_t n;                       /* 1..STATE_ATTR_VARIANTS */
	const char *variant[STATE_ATTR_VARIANTS];
	size_t variant_len[STATE_ATTR_VARIANTS]; /* 1..STATE_ATTR_NAME_MAX */
	double share[STATE_ATTR_VARIANTS];
} state_attr_def;

/* One served answer inside an experiment (customer borrowed). */
typedef struct state_attr_served {
	uint32_t experiment;
	uint32_t variant;
	int64_t ts;                       /* Unix seconds */
	const char *customer;
	size_t customer_len;
	uint32_t n_items;                 /* items shown (may exceed STATE_ATTR_ITEMS) */
	uint32_t n_hashes;                /* <= STATE_ATTR_ITEMS */
	uint64_t item_hash[STATE_ATTR_ITEMS]; /* state_attr_item_hash of each */
} state_attr_served;

/* A variant's figures. */
typedef struct state_attr_counts {
	uint64_t customers;     /* assigned: served at least one answer */
	uint64_t exposed;       /* shown at least one item (or sent a tagged event) */
	uint64_t impressions;   /* items in served answers */
	uint64_t displayed;     /* impression events (what the storefront showed) */
	uint64_t clicks, carts, orders; /* tagged events */
	uint64_t vt_orders;     /* view-through purchases */
	uint64_t converters;    /* exposed customers with an order (either kind) */
	uint64_t erased;        /* customers erased since (taken out of the above
				 * per-customer figures) */
	double revenue, vt_revenue;    /* quantity x price of those orders */
	double value_sum, value_sumsq; /* per exposed customer: attributed revenue */
} state_attr_counts;

/* The attribution window in seconds (> 0). Call before serving. */
void state_set_attribution_window(state *s, int64_t seconds);
/* The 64-bit hash items are remembered by (FNV-1a, finalised). */
uint64_t state_attr_item_hash(const char *id, size_t len);
/* The definition of the experiment named name[0..len) (the latest one
 * recorded under that name). Returns 0, STORE_NOTFOUND, STORE_CORRUPT or
 * STORE_ERROR. */
int state_attr_experiment(state_txn *t, const char *name, size_t len, state_attr_def *out);
/* A variant's figures (all zero when none were recorded). Returns 0,
 * STORE_CORRUPT or STORE_ERROR. */
int state_attr_counts_get(state_txn *t, uint32_t experiment, uint32_t variant,
			  state_attr_counts *out);

/* One part of a group commit: a batch of events, or (events NULL) a
 * change to one customer's flags, or (item set) to one item's flags, or
 * (served or def set) attribution's served answers and definitions.
 * Strings are borrowed. */
typedef struct state_write {
	const event_in *events; /* n events, or NULL */
	uint32_t n;
	const char *customer;   /* the flag change's customer */
	size_t customer_len;
	uint32_t set, clear;    /* STATE_* bits; setting STATE_ERASED also
				 * deletes the customer's event log. For an
				 * item: STATE_ITEM_* bits */
	uint32_t log_sec;       /* the events' event-log entries' second (their
				 * ids' milliseconds / 1000), kept with each
				 * event for state_drop_before; 0: none */
	const char *item;       /* the flag change's item (NULL: a customer's) */
	size_t item_len;
	int64_t expire_before;  /* > 0 (events NULL, item NULL): not a flag
				 * change but the idle sweep's expiry of the
				 * customer's log, if idle before this time
				 * (state_find_idle; set and clear unused) */
	const state_attr_served *served; /* n_served answers, or NULL */
	uint32_t n_served;
	const state_attr_def *def;       /* n_def definitions, or NULL */
	uint32_t n_def;
	const state_item_meta *meta; /* the item's catalog fields to set (those
				      * meta->fields names; the others are
				      * kept), or NULL */
} state_write;

/* Writes writes[0..n), in order, in ONE synchronous write transaction:
 * when it returns 0 all are on disk, else none is. Events of a customer
 * flagged STATE_ERASED (by then) are left out. A full map is doubled
 * and the transaction retried. Meant for a single writer thread
 * (events.c), though safe from any while the journal is off; with the
 * journal (state_set_merge_after) only from the thread that merges. With
 * it, "on disk" includes events in the journal, not yet in their logs.
 * Returns 0 or STORE_ERROR with a message in *err. */
int state_commit(state *s, const state_write *writes, uint32_t n, strbuf *err);
/* state_commit of one batch of n events. (Test only: serve writes events
 * through the event writer, events.h.) */
int state_write_events(state *s, const event_in *events, uint32_t n, strbuf *err);

/* ---- the event log's position (serve --event-log) ------------------------
 *
 * With the shared event log, the state is a materialised view of a Redis
 * stream, written only by the applier (applier.h). It records how far it
 * has applied in the meta record "event_log_position", written in the
 * same transaction as the entries it covers (state_commit_log), so a crash
 * never applies an entry twice or skips one. A state without the record
 * has never applied anything from a log. */

/* Where the state stands in the log. */
enum state_log_phase {
	STATE_LOG_NONE = 0,      /* no record: never bootstrapped */
	STATE_LOG_BOOTSTRAP = 1, /* emptied, the compacted flags being restored:
				  * a crash here means starting the bootstrap
				  * over */
	STATE_LOG_APPLYING = 2   /* bootstrapped: entries after (ms, seq) follow */
};

typedef struct state_log_pos {
	uint8_t phase;          /* enum state_log_phase */
	uint64_t ms, seq;       /* the last entry applied (or the entry before
				 * the first to apply, after a bootstrap) */
	uint32_t floor_sec;     /* events of entries before this second are
				 * covered by the model and not kept */
	char customer[256];     /* the customer of entry (ms, seq), for the
				 * failover check; customer_len 0 after a
				 * bootstrap (no entry applied yet) */
	size_t customer_len;
} state_log_pos;

/* Reads the position (phase STATE_LOG_NONE, all zero, when there is
 * none). Returns 0, STORE_CORRUPT or STORE_ERROR. */
int state_log_position(state *s, state_log_pos *out);

/* state_commit, also writing *pos (NULL: as state_commit) in the same
 * transaction. */
int state_commit_log(state *s, const state_write *writes, uint32_t n, const state_log_pos *pos,
		     strbuf *err);

/* Empties the state (flags, event logs, item overrides; not the counters, not
 * erasures.txt) and records *pos, in one durable transaction: the start of
 * a bootstrap or of a rebuild after a lost entry. Returns 0 or STORE_ERROR
 * with a message in *err. */
int state_clear(state *s, const state_log_pos *pos, strbuf *err);

/* Drops, from the logs of at most max_customers customers after `*cursor`
 * (empty: from the first; replaced by the last one visited), the events
 * carried by log entries of seconds before `sec` (event_in.log_sec), in one
 * durable transaction; *done once the walk has passed the last customer,
 * *dropped counts the events dropped. A model switch calls it until done,
 * so the state holds only what the new model does not cover, a bounded
 * transaction at a time. Returns 0 or STORE_ERROR with a message in
 * *err. */
int state_drop_before(state *s, uint32_t sec, strbuf *cursor, uint32_t max_customers,
		      bool *done, uint64_t *dropped, strbuf *err);
/* ---- live customers (issue 21: one client made 300,000 in 1.1 s) ----
 *
 * A live customer is one with an event log in the state. Their number is
 * capped (the API refuses events that would add one past the cap) and the
 * logs of customers who never bought are dropped once idle (their newest
 * event older than the TTL on the model's clock). Measured (15-byte ids,
 * docs/operations.md "Live customers"): 72 bytes of state for a customer
 * with one view, 347 with ten, 25 KB with a full log (STATE_MAX_EVENTS,
 * 10-byte item ids). */
#define STATE_MAX_LIVE_DEFAULT 1000000u
#define STATE_LIVE_TTL_DEFAULT (30 * 86400) /* seconds */

/* Sets the cap (>= 1) and the idle TTL in seconds (0: logs never expire).
 * Call before serving; until then the defaults above hold. */
void state_set_live_limits(state *s, uint64_t max_live, int64_t ttl);
/* The cap set by state_set_live_limits. */
uint64_t state_live_max(const state *s);
/* Live customers as t sees them (a B-tree's entry count: O(1)). */
uint64_t state_live_customers(state_txn *t);
/* Whether the customer has an event log (as t sees it). */
bool state_customer_live(state_txn *t, const char *id, size_t len);
/* Customers with a flags record (consent, erasure) as t sees them (a
 * B-tree's entry count: O(1)). The API caps the records of customers
 * neither the model nor the state knows by the same cap as live
 * customers: without it one client could write a consent record for
 * every id it can make up. */
uint64_t state_flag_records(state_txn *t);
/* Whether the customer has a flags record (as t sees it), even one whose
 * flags are all cleared again: changing it adds no record. */
bool state_customer_has_flags(state_txn *t, const char *id, size_t len);

/* One batch of the idle sweep: looks at the next `max_scan` customers
 * with logs (resuming after the last one looked at, from the first again
 * after the end) and deletes, in one synchronous commit, the logs of those
 * with no purchase whose newest event is older than now - TTL. Their flags
 * (consent) stay. Only for the writer thread (the resume point is not
 * locked). Does nothing when the TTL is 0. Returns 0 with the number
 * deleted in *expired, or STORE_ERROR with a message in *err (nothing
 * deleted). */
int state_expire_idle(state *s, int64_t now, uint32_t max_scan, uint32_t *expired, strbuf *err);
/* The same batch of the sweep without deleting (serve --event-log, where
 * the expiry goes through the log so that every replica drops the same
 * logs at the same point of it): appends the idle customers' ids to *ids,
 * their lengths to lens[0..*n) (room for max_scan), and sets *before to
 * the cutoff (now - TTL) to put in each expiry (state_write.expire_before).
 * Only for the writer thread, as state_expire_idle. *n = 0 when the TTL is
 * 0. Returns 0, or STORE_ERROR with a message in *err. */
int state_find_idle(state *s, int64_t now, uint32_t max_scan, strbuf *ids, size_t *lens,
		    uint32_t *n, int64_t *before, strbuf *err);

/* Totals since the state was created. */
typedef struct state_counters {
	uint64_t events;        /* accepted */
	uint64_t unknown_items; /* accepted events naming items no model knew */
	uint64_t expired;       /* customers whose logs state_expire_idle deleted */
	uint64_t live;          /* customers with an event log now */
	uint64_t map_size;      /* bytes mapped now */
	uint64_t map_used;      /* bytes in use */
} state_counters;
/* Returns 0 (a counter never written reads 0). */
int state_get_counters(state_txn *t, state_counters *out);

/* Appends ids[0..n) (lens[i] bytes each) to DIR/erasures.txt, the list
 * `train --exclude-customers` reads, with one fsync. An erasure lists the
 * id first, then sets STATE_ERASED (state_commit): a crash between the two
 * leaves an id excluded from training but still served until the retry,
 * never the reverse. Returns 0 or STORE_ERROR with a message in *err. */
int state_list_erasures(state *s, const char *const *ids, const size_t *lens, uint32_t n,
			strbuf *err);

/* (Test only: serve erases through the event writer, events.h.)
 * Erases a customer synchronously: state_list_erasures, then STATE_ERASED
 * set and their event log deleted in one commit. Returns 0 or STORE_ERROR
 * with a message in *err. */
int state_erase(state *s, const char *id, size_t len, strbuf *err);

#endif
