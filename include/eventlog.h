/*
 * eventlog: the shared event log of a fleet of replicas, a Redis stream.
 *
 * With `serve --event-log URL`, every write (events, consent, erasure,
 * item overrides) is appended here first; each replica applies the whole
 * stream to its own LMDB state (a materialised view that stores the last
 * applied entry id in the same transaction). This module is the client of
 * that log: URL parsing, connecting (directly or through Sentinel), the
 * record codec, appending, reading, erasure, trimming, and the checks an operator and the
 * failover logic need. It knows nothing of LMDB or HTTP.
 *
 * ---- URLs ------------------------------------------------------------------
 *
 *   redis://[:PASSWORD@]HOST[:PORT][?PARAMS]              (port 6379)
 *   sentinel://[:PASSWORD@]HOST[:PORT],HOST[:PORT],.../MASTERNAME[?PARAMS]
 *                                                           (port 26379)
 *
 * HOST is a name, an IPv4 address or a bracketed IPv6 address ([::1]:6379).
 * PASSWORD and parameter values are percent-decoded (a password holding
 * '@', ':' or '/' is written %40, %3A, %2F). PARAMS, '&'-separated:
 *   stream=KEY              the stream's key (default shopkeeper:events)
 *   password_file=PATH      the password, read from a file (trailing
 *                           newlines dropped); not together with :PASSWORD@.
 *                           Keeps the secret out of `ps` and the URL.
 *   sentinel_password_file=PATH
 *                           the sentinels' own password (requirepass on the
 *                           sentinels); without it the sentinels are asked
 *                           without AUTH. PASSWORD is the data nodes'.
 *   connect_timeout_ms=N    TCP connect timeout per address (default 500)
 *   timeout_ms=N            reply timeout of a command (default 2000)
 * An unknown parameter, a missing host, a bad port, an empty password or
 * stream, a sentinel URL without a master name and so on are errors with a
 * message saying which part is wrong (eventlog_config_parse).
 *
 * ---- keys ------------------------------------------------------------------
 *
 * With K the stream key, the log uses
 *   K              the stream: one entry per record, one field "r" holding
 *                  the record's encoding (eventlog_encode)
 *   K:c:CUSTOMER   a list of the ids of the customer's event and consent
 *                  entries still in K, oldest first: the erasure index
 *   K:consent      hash CUSTOMER -> "1ID" or "0ID": the customer's latest
 *                  consent (personalization allowed or not) and its entry id
 *   K:erased       hash CUSTOMER -> the id of the customer's latest erasure
 *   K:items        hash ITEM -> "FID": the item's current override flags F
 *                  (a digit, EVENTLOG_ITEM_* bits, never 0: a field whose
 *                  flags fall to 0 is deleted) and the id of the item
 *                  record that set them (PUT /v1/items/{id})
 *   K:catalog      hash LETTER ITEM -> "ID ENCODING": per item and catalog field
 *                  (LETTER t title, c category, p price, f first_seen), the
 *                  id and the encoding of the latest catalog record that
 *                  gave that field (PUT /v1/items/{id} with title, ...)
 *   K:trimmed      the MINID of the latest eventlog_trim
 * All on one Redis (primary plus replicas, Sentinel): Redis Cluster is not
 * supported, as the append script touches keys it builds itself.
 *
 * ---- appending: one Lua script per batch -----------------------------------
 *
 * A batch goes to Redis as ONE EVAL of a small script, not a MULTI/EXEC or
 * a plain pipeline of XADDs, because erasure needs the customer's entry
 * ids indexed atomically with the entries themselves, and an id is only
 * known once XADD has run: in a MULTI the SADD/RPUSH of the id cannot be
 * queued, and a second round trip after EXEC could be lost in a crash,
 * leaving an event that an erasure would never find. The script runs
 * atomically, so readers and replicas see the whole batch or none of it,
 * and a connection lost before the script ran appends nothing. Redis 7
 * replicates and writes to the AOF the script's effects (the XADDs with
 * their concrete ids), so replicas hold the same ids. Measured with
 * bench/eventlog_bench.c (appendfsync always, 2 shared vCPUs, one
 * connection, batches of 100): 69,000 entries/s through the script against
 * 90,000 as plain pipelined XADDs without the index; 15,000 against 22,000
 * when the machine was busy with other work (docs/event-log.md). The
 * index is worth that: an erasure never scans the stream.
 *
 * Per record the script
 *   event:    XADD, then RPUSH the id onto K:c:CUSTOMER;
 *   consent:  XADD, RPUSH, HSET K:consent CUSTOMER "1ID"/"0ID";
 *   erasure:  XDEL every id in K:c:CUSTOMER, DEL it, HDEL K:consent,
 *             XADD the erasure record (never indexed: it must stay),
 *             HSET K:erased CUSTOMER ID;
 *   item:     XADD, then F = (old F | set) & ~clear: HSET K:items ITEM "FID",
 *             or HDEL when F is 0. Never indexed: no customer's.
 *   catalog:  XADD, then for each field the record gives, HSET K:catalog
 *             LETTER..ITEM "ID ENCODING". Never indexed either.
 * So an erasure costs O(the customer's entries), never a scan of the
 * stream, and only the erasure record remains of the customer.
 *
 * ---- trimming and the compacted flags ---------------------------------------
 *
 * Events older than every model in use are trimmed (eventlog_trim, XTRIM
 * MINID). Consent, erasure and item overrides must never be lost that way
 * (the model carries none of them), nor may the catalog fields of items
 * added since training (a model trained before they came has none of
 * them), so their current values live on in K:consent, K:erased, K:items
 * and K:catalog, which trimming never touches: a
 * bootstrapping replica reads them (eventlog_flags_each) and then replays
 * the stream from the point its model covers. Replaying item records still
 * in the stream on top of the restored flags changes nothing: each record
 * sets, clears or keeps each bit, so applying a suffix of the records twice
 * gives what applying it once does; a catalog record sets its fields to
 * values, so the same holds (each field of K:catalog is the latest record
 * that gave it, and the records after it in the stream are newer).
 * eventlog_trim also removes the trimmed ids from the
 * customers' lists, so the index does not grow without bound.
 *
 * ---- connections -------------------------------------------------------------
 *
 * An eventlog is one connection, used by one thread at a time (give the
 * writer and the applier one each). It connects lazily, on the first call
 * that needs Redis, and after any I/O error, timeout or "not the primary"
 * answer (READONLY, MASTERDOWN, LOADING) it drops the connection and
 * reports EVENTLOG_EUNAVAILABLE; the next call connects again, through the
 * sentinels when the URL names them. Failed connects are retried at most
 * every 100 ms, doubling to 1 s, so a down Redis costs callers no connect
 * timeout per request: they get EVENTLOG_EUNAVAILABLE at once. Reads that
 * fail on a connection that was up are retried once on a new connection;
 * appends never are (the script may have run): a failed append may still
 * be in the log, and replicas will apply it, though no 2xx was sent.
 *
 * Errors: every function returns 0 or a negative EVENTLOG_E* code; a
 * message for people is in eventlog_errmsg() until the next call.
 */
#ifndef SHOPKEEPER_EVENTLOG_H
#define SHOPKEEPER_EVENTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

/* ---- errors ----------------------------------------------------------------- */

#define EVENTLOG_EINVAL (-1)       /* a bad URL, argument or record to encode */
#define EVENTLOG_EUNAVAILABLE (-2) /* Redis unreachable, too slow, not the primary:
				    * HTTP 503 event_log_unavailable */
#define EVENTLOG_EREPLICAS (-3)    /* appended, but fewer replicas than asked
				    * acknowledged in time: also a 503 */
#define EVENTLOG_EREDIS (-4)       /* Redis refused the command (NOAUTH, OOM,
				    * WRONGTYPE, a disabled command, ...) */
#define EVENTLOG_EDECODE (-5)      /* not a valid record */
#define EVENTLOG_EVERSION (-6)     /* a record of a newer format than this build's */

/* A static description of an EVENTLOG_E* code. */
const char *eventlog_strerror(int rc);

/* ---- entry ids ------------------------------------------------------------------ */

/* A stream entry id "MS-SEQ". Ids grow with every append; {0, 0} is before
 * the first entry. */
typedef struct eventlog_id {
	uint64_t ms;
	uint64_t seq;
} eventlog_id;

#define EVENTLOG_ID_MIN ((eventlog_id){ 0, 0 })
#define EVENTLOG_ID_MAX ((eventlog_id){ UINT64_MAX, UINT64_MAX })
#define EVENTLOG_ID_LEN 42 /* the longest "MS-SEQ" plus its NUL */

/* Parses exactly "MS-SEQ" (decimal, no sign, no spaces) from s[0..n).
 * Returns 0 or EVENTLOG_EINVAL. */
int eventlog_id_parse(const char *s, size_t n, eventlog_id *out);
/* Writes "MS-SEQ" and its NUL into buf; returns the length. */
size_t eventlog_id_format(eventlog_id id, char buf[EVENTLOG_ID_LEN]);
/* <0, 0, >0 as a is before, equal to or after b. */
int eventlog_id_cmp(eventlog_id a, eventlog_id b);
/* The smallest id after id (id itself when it is EVENTLOG_ID_MAX). */
eventlog_id eventlog_id_next(eventlog_id id);

/* ---- records and their encoding -------------------------------------------------- */

enum eventlog_kind {
	EVENTLOG_EVENT = 1,
	EVENTLOG_CONSENT = 2,
	EVENTLOG_ERASURE = 3,
	EVENTLOG_ITEM = 4, /* an item's override flags (PUT /v1/items/{id}) */
	EVENTLOG_EXPIRE = 5, /* the idle sweep: drop the customer's event log if
			      * it has no purchase and no event at or after `ts` */
	EVENTLOG_SERVED = 6, /* a recommendation answer served inside an
			      * experiment (attribution.h), for the counts */
	EVENTLOG_CATALOG = 7 /* an item's catalog fields (PUT /v1/items/{id}
			      * with title, category, price, first_seen) */
};
#define EVENTLOG_VARIANT_MAX 15  /* a served record's variant index */
#define EVENTLOG_SERVED_ITEMS 32 /* item hashes in a served record */

/* An item record's flag bits (the log's own, not the state's STATE_ITEM_*:
 * the format must not move when the state's bits do). */
#define EVENTLOG_ITEM_UNAVAILABLE 1u       /* out of stock */
#define EVENTLOG_ITEM_NOT_RECOMMENDABLE 2u /* never to be recommended */
#define EVENTLOG_ITEM_ALL 3u

/* A catalog record's field bits (the log's own, as the item bits). */
#define EVENTLOG_CATALOG_TITLE 1u
#define EVENTLOG_CATALOG_CATEGORY 2u
#define EVENTLOG_CATALOG_PRICE 4u
#define EVENTLOG_CATALOG_FIRST_SEEN 8u
#define EVENTLOG_CATALOG_ALL 15u

/* Bounds the encoder and the decoder both hold records to. */
#define EVENTLOG_CUSTOMER_MAX 256 /* bytes (ID_MAX_LEN) */
#define EVENTLOG_ITEM_MAX 256     /* bytes */
#define EVENTLOG_REC_ID_MAX 64    /* bytes */
#define EVENTLOG_TYPE_MAX 15      /* event types 0..15: today's 0..3 and room
				   * for click and impression; the applier
				   * skips types it does not know */
/* Event types 4 and 5 are click and impression (state_events.h); an
 * impression's item may be empty (what was shown is optional). */
#define EVENTLOG_TYPE_IMPRESSION 5
#define EVENTLOG_TS_MAX 253402300799 /* 9999-12-31T23:59:59Z */
#define EVENTLOG_TITLE_MAX 512    /* bytes (STATE_ITEM_MAX_TITLE) */
#define EVENTLOG_CATEGORY_MAX 128 /* bytes (STATE_ITEM_MAX_CATEGORY) */
#define EVENTLOG_PRICE_MAX 1e9f   /* a catalog record's price */
#define EVENTLOG_DAY_MAX 2932896  /* 9999-12-31, in days since 1970-01-01 */
#define EVENTLOG_RECORD_MAX 1024  /* longest encoding (a catalog record,
				   * 913 bytes) */

/* One record. Strings are not NUL-terminated; in a decoded record they
 * point into the decoded bytes (borrowed: valid as long as those are). All
 * strings are valid UTF-8 without NUL bytes. */
typedef struct eventlog_record {
	uint8_t kind;            /* enum eventlog_kind */
	const char *customer;    /* 1..EVENTLOG_CUSTOMER_MAX bytes, every kind
				  * but EVENTLOG_ITEM (NULL and 0 there) */
	size_t customer_len;
	const char *item;        /* 1..EVENTLOG_ITEM_MAX bytes: EVENTLOG_EVENT
				  * (0 allowed for an impression) and
				  * EVENTLOG_ITEM (zero otherwise) */
	size_t item_len;
	const char *rec_id;      /* the recommendation it answers, optional:
				  * 0..EVENTLOG_REC_ID_MAX bytes, 0 = none */
	size_t rec_id_len;
	int64_t ts;              /* Unix seconds, 0..EVENTLOG_TS_MAX (EVENTLOG_EXPIRE:
				  * the idle cutoff, now - TTL) */
	float quantity;          /* finite, not 0 (negative: a return) */
	float price;             /* finite, >= 0 */
	uint8_t type;            /* 0..EVENTLOG_TYPE_MAX */
	/* EVENTLOG_CONSENT only: */
	bool personalization;
	/* EVENTLOG_ITEM only: EVENTLOG_ITEM_* bits set, then cleared; disjoint,
	 * not both 0, no other bits. */
	uint8_t item_set, item_clear;
	/* EVENTLOG_SERVED only (with customer and ts): the experiment (not 0)
	 * and variant (0..EVENTLOG_VARIANT_MAX), the items shown, and the
	 * hashes of the first n_hashes (<= EVENTLOG_SERVED_ITEMS, <= n_items)
	 * as 8 * n_hashes bytes, each little-endian (borrowed like the
	 * strings). */
	uint32_t experiment;
	uint8_t variant;
	uint32_t n_items;
	uint8_t n_hashes;
	const unsigned char *hashes;
	/* EVENTLOG_CATALOG only (with item): the fields given,
	 * EVENTLOG_CATALOG_* bits (not 0, no others); for each bit set, its
	 * value: title 0..EVENTLOG_TITLE_MAX bytes, category
	 * 0..EVENTLOG_CATEGORY_MAX, price (the field above) 0..
	 * EVENTLOG_PRICE_MAX, first_seen 0..EVENTLOG_DAY_MAX days since
	 * 1970-01-01. A field not given is zero (empty). */
	uint8_t catalog_fields;
	const char *title;
	size_t title_len;
	const char *category;
	size_t category_len;
	int32_t first_seen;
} eventlog_record;

/*
 * The encoding (all integers little-endian; LEN is an unsigned LEB128
 * varint of at most two bytes, minimal):
 *   byte 0      format version: the version that brought the record's kind
 *               (1 for event, consent, erasure; 2 for item; 3 for expire;
 *               4 for served; 5 for catalog)
 *   byte 1      kind (enum eventlog_kind)
 *   event:      u8 type, u8 flags (bit 0: rec_id follows), LEN customer,
 *               LEN item, i64 ts, f32 quantity, f32 price, [LEN rec_id]
 *   consent:    u8 flags (bit 0: personalization), LEN customer
 *   erasure:    LEN customer
 *   item (v2):  u8 set, u8 clear (EVENTLOG_ITEM_* bits), LEN item
 *   expire (v3): LEN customer, i64 ts (the cutoff)
 *   served (v4): u32 experiment, u8 variant, i64 ts, u32 n_items,
 *               u8 n_hashes, n_hashes x u64 item hash, LEN customer
 *   catalog (v5): u8 fields (EVENTLOG_CATALOG_* bits), LEN item, then in
 *               this order those the bits name: LEN title, LEN category,
 *               f32 price, u32 first_seen
 * About 30 bytes plus the ids for an event: compact in Redis' memory and
 * on the wire. Unknown flag bits, trailing bytes, a non-minimal varint,
 * any bound above broken, a kind under a version other than its own:
 * EVENTLOG_EDECODE. Every valid encoding is the one eventlog_encode writes
 * for what eventlog_decode returns (tested by the fuzz harness). A version
 * above 5: EVENTLOG_EVERSION, so an old replica can stop and say "upgrade"
 * instead of skipping entries. A new kind gets a new version for that
 * reason: a build of version 1 stops at an item record (EVERSION) rather
 * than skip it as undecodable and differ from upgraded replicas, while the
 * kinds it knows keep their version-1 bytes, so it applies every entry
 * before the first item record during a rolling upgrade.
 */

/* Appends r's encoding to out. Returns 0, or EVENTLOG_EINVAL when r breaks
 * a bound above (out unchanged). */
int eventlog_encode(const eventlog_record *r, strbuf *out);
/* Decodes buf[0..n) into *r (strings borrowed from buf). Any input is safe:
 * returns 0, EVENTLOG_EDECODE or EVENTLOG_EVERSION (*r zeroed then). */
int eventlog_decode(const void *buf, size_t n, eventlog_record *r);

/* ---- configuration ------------------------------------------------------------------ */

#define EVENTLOG_MAX_HOSTS 16
#define EVENTLOG_HOST_MAX 255

typedef struct eventlog_host {
	char host[EVENTLOG_HOST_MAX + 1]; /* without brackets */
	int port;
} eventlog_host;

/* A parsed URL. Owns its strings: eventlog_config_free. */
typedef struct eventlog_config {
	bool sentinel;          /* sentinel:// (hosts are sentinels) */
	eventlog_host hosts[EVENTLOG_MAX_HOSTS];
	uint32_t nhosts;        /* 1 for redis:// */
	char *master;           /* sentinel:// master name, else NULL */
	char *password;         /* data nodes' password, or NULL */
	char *sentinel_password; /* or NULL */
	char *stream;           /* the stream key */
	size_t stream_len;
	int connect_timeout_ms;
	int timeout_ms;
} eventlog_config;

/* Parses url into *cfg (zeroed first; freed on error). Reads the password
 * files it names. Returns 0, or EVENTLOG_EINVAL with a message in *err
 * ("event log URL: ..."). */
int eventlog_config_parse(const char *url, eventlog_config *cfg, strbuf *err);
/* Frees cfg's strings; zeroed afterwards. Safe on a zeroed config. */
void eventlog_config_free(eventlog_config *cfg);

/* ---- the connection --------------------------------------------------------------------- */

typedef struct eventlog eventlog;

/* A log for cfg (copied: the caller keeps and frees its own). Does not
 * connect; see eventlog_ping. *out is freed by eventlog_close. */
int eventlog_open(const eventlog_config *cfg, eventlog **out);
/* Closes the connection and frees log; eventlog_close(NULL) does nothing. */
void eventlog_close(eventlog *log);

/* Why the last call failed, for people: "127.0.0.1:6379: Connection
 * refused", "no sentinel knows master 'm'", ... ("" after a success).
 * Valid until the next call on log. */
const char *eventlog_errmsg(const eventlog *log);
/* "HOST:PORT" of the connected primary, or "" when not connected. */
const char *eventlog_address(const eventlog *log);
/* Connections made so far (1 after the first connect; more after
 * reconnects and failovers: the applier checks its last entry then). */
uint64_t eventlog_connects(const eventlog *log);

/* Connects if needed (skipping the back-off) and sends PING. Returns 0 or
 * EVENTLOG_EUNAVAILABLE / EVENTLOG_EREDIS (a wrong password). */
int eventlog_ping(eventlog *log);

/* How durable an append is on this Redis (CONFIG GET appendonly,
 * appendfsync and maxmemory-policy). */
enum eventlog_durability {
	EVENTLOG_DURABLE = 0, /* appendonly yes, appendfsync always,
			       * maxmemory-policy noeviction */
	EVENTLOG_WEAK = 1,    /* anything else: a crash of Redis may lose
			       * acknowledged writes, or eviction may drop
			       * the log's keys */
	EVENTLOG_UNKNOWN = 2  /* CONFIG renamed, disabled or refused */
};
/* Sets *level and writes one line for the operator into *msg (replacing
 * its contents): what was found and, unless DURABLE, what to set. Returns
 * 0 (also for WEAK and UNKNOWN) or EVENTLOG_EUNAVAILABLE. */
int eventlog_check_durability(eventlog *log, enum eventlog_durability *level, strbuf *msg);

/* ---- writing ---------------------------------------------------------------------------- */

/* Appends recs[0..n) (n >= 1, at most 10000) in order as one atomic
 * batch, in one round trip, and writes their ids to ids[0..n) (may be
 * NULL). With replicas > 0, also WAITs (in the same round trip) up to
 * wait_ms for that many Redis replicas to acknowledge, and stores how many
 * did in *acked (may be NULL; set to 0 when replicas == 0).
 * Returns
 *   0                     appended (and replicated as asked);
 *   EVENTLOG_EINVAL       a record breaks a bound: nothing was sent;
 *   EVENTLOG_EREPLICAS    appended and ids written, but fewer replicas
 *                         acknowledged: not durable as asked;
 *   EVENTLOG_EUNAVAILABLE Redis unreachable or too slow: the batch may or
 *                         may not be in the log;
 *   EVENTLOG_EREDIS       Redis refused it (e.g. OOM): not appended. */
int eventlog_append(eventlog *log, const eventlog_record *recs, size_t n, eventlog_id *ids,
		    int replicas, int wait_ms, int *acked);

/* ---- reading ----------------------------------------------------------------------------- */

/* One entry read from the stream. */
typedef struct eventlog_entry {
	eventlog_id id;
	int status;          /* 0, or EVENTLOG_EDECODE / EVENTLOG_EVERSION:
			      * rec is zeroed, the entry is not a valid record
			      * (a buggy or hostile writer; skip or stop) */
	eventlog_record rec; /* strings borrowed from the batch */
} eventlog_entry;

/* Entries of one read. Owns the Redis reply the records point into.
 * Zero-initialise it; reuse it across reads (each read releases the
 * previous contents); eventlog_batch_release when done. */
typedef struct eventlog_batch {
	eventlog_entry *entries;
	size_t n;
	size_t cap;
	void *reply; /* private */
} eventlog_batch;

void eventlog_batch_release(eventlog_batch *b);

/* The next entries after `after` (XREAD COUNT count BLOCK block_ms; no
 * BLOCK when block_ms is 0, so it returns at once), at most count
 * (1..100000). An empty batch when nothing came within block_ms.
 * Returns 0, EVENTLOG_EUNAVAILABLE or EVENTLOG_EREDIS. */
int eventlog_read(eventlog *log, eventlog_id after, size_t count, int block_ms,
		  eventlog_batch *out);
/* Entries with from <= id <= to, oldest first, at most count (XRANGE); for
 * a scan, continue from eventlog_id_next of the last id. Returns as
 * eventlog_read. */
int eventlog_range(eventlog *log, eventlog_id from, eventlog_id to, size_t count,
		   eventlog_batch *out);

/* Decodes a reply given as raw RESP bytes into *out, as the reads do with
 * what Redis sends (an XREAD reply when xread, else an XRANGE one): for
 * tests and the fuzz harness, as a hostile server must not crash a
 * replica either. Entry ids must be strictly increasing. Returns 0 or
 * EVENTLOG_EDECODE when the reply's shape is wrong (out empty then). */
int eventlog_batch_from_resp(const void *buf, size_t n, bool xread, eventlog_batch *out);

/* ---- erasure, trimming, bootstrap, failover ---------------------------------------------- */

/* Entries of a customer that the erasure index holds (their count in
 * *count): what an erasure will delete. For tests and operators. */
int eventlog_customer_entries(eventlog *log, const char *customer, size_t len, uint64_t *count);

/* Deletes every entry before minid from the stream (XTRIM MINID) and
 * their ids from the erasure index, in chunks of `chunk` entries (0:
 * 1000), and records minid in K:trimmed. Consent and erasure survive in
 * the compacted hashes. Cost: one XRANGE and one pipeline per chunk,
 * O(entries trimmed). *trimmed (may be NULL) gets the number of entries
 * removed. Safe to repeat after a failure midway. Returns 0,
 * EVENTLOG_EUNAVAILABLE or EVENTLOG_EREDIS. */
int eventlog_trim(eventlog *log, eventlog_id minid, size_t chunk, uint64_t *trimmed);

/* Calls fn for every customer's current compacted flags, erasures first,
 * then consents (a consent in K:consent was given after the customer's
 * latest erasure, which deletes it): kind EVENTLOG_ERASURE or
 * EVENTLOG_CONSENT, customer and personalization set, id the entry that
 * set it; then every item's current override (K:items): kind
 * EVENTLOG_ITEM, item set, item_set its flags and item_clear the other
 * EVENTLOG_ITEM_* bits, so applying the record gives exactly those
 * flags; then every item's catalog fields (K:catalog): kind
 * EVENTLOG_CATALOG, one field per call (catalog_fields one bit), id the
 * record that gave it. A replica that bootstraps applies these, then replays the
 * stream. HSCAN may report a customer twice while the hash changes;
 * applying a flag twice changes nothing. fn returns 0 to go on, anything
 * else to stop (returned then).
 * Entries that do not decode (a buggy writer) are skipped and counted in
 * *skipped (may be NULL). Returns 0, fn's value, EVENTLOG_EUNAVAILABLE or
 * EVENTLOG_EREDIS. */
typedef int (*eventlog_flags_fn)(void *arg, const eventlog_record *rec, eventlog_id id);
int eventlog_flags_each(eventlog *log, eventlog_flags_fn fn, void *arg, uint64_t *skipped);

/* Is entry id still in the stream, and if not, why? For the failover
 * check of an applier after a reconnect: its last applied entry (of
 * `customer`) must be on the new primary unless a trim or an erasure
 * removed it. len 0 (customer may be NULL): an entry of no customer (an
 * item record, or one that did not decode), which no erasure removes. */
enum eventlog_presence {
	EVENTLOG_PRESENT = 0, /* XRANGE id id finds it */
	EVENTLOG_TRIMMED = 1, /* gone, and before the latest trim's MINID */
	EVENTLOG_ERASED = 2,  /* gone, and the customer was erased after it */
	EVENTLOG_LOST = 3     /* gone without a recorded reason: the entry never
			       * reached this primary (a failover lost it);
			       * rebuild the state from the model and the log */
};
int eventlog_check_entry(eventlog *log, eventlog_id id, const char *customer, size_t len,
			 enum eventlog_presence *out);

/* The id of the newest entry (EVENTLOG_ID_MIN when the stream is empty or
 * missing) and the number of entries, for lag. Returns 0,
 * EVENTLOG_EUNAVAILABLE or EVENTLOG_EREDIS. */
int eventlog_tail(eventlog *log, eventlog_id *last, uint64_t *length);

#endif
