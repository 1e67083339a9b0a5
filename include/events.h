/*
 * events: the single writer of real-time events, with group commit.
 *
 * Request threads hand their validated events (and consent and erasure
 * changes) to the writer, which takes everything queued, writes it in one
 * LMDB transaction and one fsync, and then tells every request of the
 * group it is on disk. Under load, many
 * requests share each fsync, so throughput grows with concurrency while
 * every acknowledged event is durable. events_submit() returns at once and
 * reports by callback: the HTTP route answers from there, so no server
 * thread waits on the disk.
 */
#ifndef SHOPKEEPER_EVENTS_H
#define SHOPKEEPER_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state.h"
#include "strbuf.h"

typedef struct events_writer events_writer;

/* Called on the writer thread once a batch is on disk (rc 0) or could not
 * be written (rc -1: nothing of the batch's transaction is recorded). With
 * the event log (events_writer_start_log) it runs on the applier's thread
 * once the batch is in the log and applied to this replica's state (rc 0),
 * or with rc EVENTS_ELOG when the log is unreachable, too slow, or fewer
 * Redis replicas than asked acknowledged: the batch is not acknowledged
 * (it may still be in the log, see docs/event-log.md). */
#define EVENTS_EFAILED (-1)
#define EVENTS_ELOG (-2)
typedef void (*events_done_fn)(void *arg, int rc);

/* A queued request: caller-owned storage, opaque, in use from
 * events_submit or events_submit_flags until its callback runs. */
typedef struct events_request {
	state_write write;
	events_done_fn done;
	void *arg;
	struct events_request *next;
	/* With the event log: the id of its last entry, and until when the
	 * applier may take to apply it (applier.h). */
	uint64_t wait_ms, wait_seq;
	double deadline;
	double queued_at; /* util_monotonic() when queued (the writer's) */
} events_request;

/* Starts the writer thread over state s (borrowed). Returns 0, or -1 with a
 * message in *err. */
int events_writer_start(state *s, events_writer **out, strbuf *err);

/* The same writer for `serve --event-log`: each group of writes is
 * appended to the shared log (as few eventlog_append calls as the batch
 * limit allows, each atomic; with `replicas` > 0 also WAITed for, up to
 * wait_ms) instead of committed here, and each request is answered once
 * the applier `ap` (borrowed; applier.h) has applied its entries to the
 * state. `log` is copied (the writer opens its own connection). A flag
 * change is an EVENTLOG_CONSENT record (STATE_NO_PERSONALIZATION set or
 * cleared), an EVENTLOG_ERASURE record (STATE_ERASED set) or, for an item,
 * an EVENTLOG_ITEM record (its STATE_ITEM_* bits set and cleared); any
 * other change cannot go through the log yet and is answered
 * EVENTS_EFAILED (the hook for later write kinds: a new record kind in
 * eventlog.h, a case in log_records() here and in the applier). Returns 0,
 * or -1 with a message in *err. */
struct applier;
struct eventlog_config;
int events_writer_start_log(state *s, const struct eventlog_config *log, struct applier *ap,
			    int replicas, int wait_ms, events_writer **out, strbuf *err);

/* Commit pacing, off (0) from the start: while writes come in
 * concurrently, a group commit is started no sooner than `seconds` after
 * the last, so that more writes share its pages and its sync (a write's
 * acknowledgement waits up to that much longer); a writer that waits for
 * each acknowledgement is never held back. Not used with the event log.
 * The writer also takes the state's journal merge steps (state.h) when
 * nothing is queued, or while it would wait here for a group to grow. */
#define EVENTS_COMMIT_DELAY_DEFAULT 0.02
void events_writer_set_commit_delay(events_writer *w, double seconds);

/* From now on, the writer thread runs at SCHED_IDLE: a request thread
 * that wakes takes the core from it at once, and it writes while the
 * request threads leave a core free. A second thread puts it back at the
 * ordinary priority once a queued write has waited `late_after` seconds
 * (> 0), until it has caught up, so that request threads keeping every
 * core busy delay writes by about that much at most. Only where the
 * process may raise a thread's priority again (CAP_SYS_NICE, or
 * RLIMIT_NICE of at least 20: sched(7)) and not with the event log;
 * elsewhere the writer stays at the ordinary priority. Returns whether
 * it runs idle. Off after events_writer_start. */
#define EVENTS_WRITER_WAIT_DEFAULT 1.0 /* seconds: serve --writer-wait */
/* serve --merge-after: events wait in the state's journal at most about
 * this long before the writer merges them into the customers' logs
 * (state_set_merge_after), when it has nothing else to do. */
#define EVENTS_MERGE_AFTER_DEFAULT 5.0
bool events_writer_set_idle(events_writer *w, double late_after);

/* An item change's STATE_ITEM_* bits as the log's EVENTLOG_ITEM_* bits and
 * back (other bits are dropped): the log's format keeps bits of its own. */
uint32_t events_item_bits_to_log(uint32_t state_bits);
uint32_t events_item_bits_from_log(uint32_t log_bits);

/* Queues ev[0..n) (n >= 1; borrowed, with r, until done runs) for the next
 * group commit and returns at once; done(arg, rc) then runs exactly once on
 * the writer thread. Returns 0, or -1 when the writer is stopping (done is
 * not called). Safe from any number of threads. */
int events_submit(events_writer *w, events_request *r, const event_in *ev, uint32_t n,
		  events_done_fn done, void *arg);

/* Queues a change of one customer's STATE_* flags (set, then clear) like
 * events_submit. Setting STATE_ERASED erases: the id is listed in
 * erasures.txt (state_list_erasures, one fsync for the group's erasures)
 * before the commit, and the customer's event log is deleted with it.
 * `customer` is borrowed until done runs. Returns 0, or -1 when the writer
 * is stopping (done is not called). */
int events_submit_flags(events_writer *w, events_request *r, const char *customer, size_t len,
			uint32_t set, uint32_t clear, events_done_fn done, void *arg);

/* Queues a change of one item's STATE_ITEM_* flags (set, then clear; PUT
 * /v1/items/{id}) like events_submit_flags: one more kind of write in the
 * same group commits, acknowledged after the commit. `item` is borrowed
 * until done runs. Returns 0, or -1 when the writer is stopping. */
int events_submit_item_flags(events_writer *w, events_request *r, const char *item, size_t len,
			     uint32_t set, uint32_t clear, events_done_fn done, void *arg);
/* The same with the item's catalog fields (issue 18; meta borrowed until
 * done runs; NULL: none). Through the shared event log the flags are an
 * item record and the fields a catalog record, appended together. */
int events_submit_item(events_writer *w, events_request *r, const char *item, size_t len,
		       uint32_t set, uint32_t clear, const state_item_meta *meta,
		       events_done_fn done, void *arg);
/* Turns on the idle sweep (state_expire_idle): between group commits, at
 * most once every EVENTS_SWEEP_INTERVAL seconds, the writer looks at the
 * next EVENTS_SWEEP_BATCH customers. `now` gives the clock the events'
 * times are on (the model's, api_now) and is called on the writer thread;
 * arg is borrowed until events_writer_stop. With the event log
 * (events_writer_start_log) the expiry goes through the log: the writer
 * finds idle customers in the local state (state_find_idle) and appends
 * an EVENTLOG_EXPIRE record for each, which every replica's applier
 * applies at the same point of the log (dropping the log only if still
 * idle then), so replicas stay identical; a local deletion let a replica
 * that expired a customer before their next event differ for good from
 * one that had not. */
#define EVENTS_SWEEP_INTERVAL 1.0
#define EVENTS_SWEEP_BATCH 1024u
void events_writer_sweep(events_writer *w, int64_t (*now)(void *arg), void *arg);

/* Commits what is queued, stops the thread, frees the writer;
 * events_writer_stop(NULL) does nothing. */
void events_writer_stop(events_writer *w);

/* Why an event is refused: one vocabulary for the validator and the API,
 * which answers with events_code_name() as the JSON error code. */
enum events_code {
	EVENTS_OK = 0,
	EVENTS_INVALID_EVENT,      /* not a JSON object */
	EVENTS_MISSING_FIELD,      /* customer_id, item_id or event absent, or
				    * rec_id on an impression */
	EVENTS_INVALID_FIELD,      /* an id neither a string nor an integer */
	EVENTS_INVALID_ID,         /* empty, too long, control bytes, not UTF-8 */
	EVENTS_INVALID_EVENT_TYPE, /* not view, cart, purchase, remove_from_cart,
				    * click or impression */
	EVENTS_INVALID_TIMESTAMP,
	EVENTS_INVALID_QUANTITY,
	EVENTS_INVALID_PRICE,
	EVENTS_CUSTOMER_ERASED,    /* set by the API: the customer was erased */
	EVENTS_LIVE_CUSTOMER_LIMIT, /* set by the API: a new customer past the cap */
	EVENTS_INVALID_REC_ID,     /* rec_id not a string or not one we hand out
				    * (recid_decode) */
	EVENTS_CODES
};

/* A refusal: its code and a message for people (a static string). */
typedef struct events_error {
	enum events_code code;
	const char *message;
} events_error;

/* The code's name in answers ("invalid_timestamp"); never NULL. */
const char *events_code_name(enum events_code code);

/* Validates one event object of POST /v1/events into *e (ids and rec_id
 * borrowed from o, or written into ids[] when sent as JSON integers; now
 * is the default time and the reference for "in the future"). An
 * impression has no item when item_id is absent (item "", item_len 0). Returns 0, or the code of
 * why it is refused (non-zero), also set with its message in *err. */
int events_parse(json_t *o, event_in *e, char ids[2][24], int64_t now, events_error *err);

/* The body of POST /v1/events read without jansson (no allocation; 100
 * events loaded and validated in 36 to 46 us, against 200 to 260 us with
 * jansson and events_parse), when it is in the common form: one event object
 * or an array of 1 to `max` of them, every key and string printable ASCII
 * without escapes, no nested values, no duplicate keys, numbers without an
 * exponent. events_scan_begin checks the whole body: 0 and sc set (the
 * body borrowed until the last events_scan_next), or -1 when it is not in
 * that form (valid or not: load it with jansson then, which decides).
 * events_scan_next then reads the sc->total events in order, each exactly
 * as events_parse reads the same object loaded by jansson (ids and rec_id
 * borrowed from the body or written into ids[]). */
typedef struct events_scan {
	const char *p, *end; /* where the next event starts; the body's end */
	bool batch;          /* an array, not one object */
	size_t total;        /* events */
} events_scan;
int events_scan_begin(events_scan *sc, const char *body, size_t len, size_t max);
int events_scan_next(events_scan *sc, event_in *e, char ids[2][24], int64_t now, events_error *err);

/* Transactions committed, events written, and groups that waited to
 * gather (events_writer_set_commit_delay), so far (for metrics). */
void events_writer_stats(events_writer *w, uint64_t *commits, uint64_t *events,
			 uint64_t *gathered);
/* Times a write waited so long (events_writer_set_idle) that the writer
 * was put back at the ordinary priority, so far. */
uint64_t events_writer_put_backs(events_writer *w);
/* With the event log: entries appended, appends (round trips), and
 * requests answered EVENTS_ELOG, so far. */
void events_writer_log_stats(events_writer *w, uint64_t *entries, uint64_t *appends,
			     uint64_t *unavailable);

#endif
