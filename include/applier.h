/*
 * applier: with `serve --event-log URL`, the thread that makes this
 * replica's state a materialised view of the shared event log (eventlog.h).
 *
 * It reads the stream (XREAD BLOCK) after the last entry it applied,
 * decodes each batch, applies it to the state and records the id of the
 * batch's last entry in the SAME LMDB transaction (state_commit_log), so a
 * crash never applies an entry twice or skips one. Every replica applies
 * the same entries in the same order with the same rules, so all converge
 * to the same state. It is the state's only writer in this mode: the
 * events writer (events.h) appends to the log and then waits here
 * (applier_wait) until its entries are applied, so the replica that took a
 * write answers only once its own state has it (read your writes).
 *
 * What it does besides, each documented in docs/event-log.md:
 * - Bootstrap: a state that never applied anything (new, or its directory
 *   gone) is emptied, every customer's compacted consent and erasure and
 *   every item's override is restored (eventlog_flags_each), and the stream is replayed from the
 *   second the model's meta "event_log_position" falls in (from its start
 *   without one). /readyz answers 503 meanwhile.
 * - Model switch (applier_model_switched): the events of entries from
 *   before the new model's second are dropped from the state, a bounded
 *   transaction of customers at a time, and later such entries are not
 *   applied: the state holds only what the model does not cover, the same
 *   on a replica that lived through the switch as on one bootstrapped
 *   from the new model. A switch to a model covering less than the state's
 *   floor rebuilds.
 * - Failover: after every new connection (eventlog_connects), the last
 *   applied entry is looked up (eventlog_check_entry); when it is LOST
 *   (a failover dropped an entry this replica applied), the state is
 *   rebuilt as a bootstrap does, and logged.
 * - Entries that do not decode (a buggy or hostile writer) are counted,
 *   logged and skipped: no replica can apply them, so skipping keeps the
 *   replicas equal. An entry of a newer format stops the applier (logged,
 *   /readyz 503 "newer_format") until the binary is upgraded: skipping
 *   would make this replica differ from upgraded ones.
 *
 * Errors: 0 or -1 with a message in the caller's strbuf.
 */
#ifndef SHOPKEEPER_APPLIER_H
#define SHOPKEEPER_APPLIER_H

#include <stdbool.h>
#include <stdint.h>

#include "eventlog.h"
#include "events.h"
#include "state.h"
#include "strbuf.h"

typedef struct applier applier;

typedef struct applier_config {
	state *state;                /* borrowed: outlives the applier */
	const eventlog_config *log;  /* copied: the applier opens its own connection */
	/* The model's coverage at start (model_info's log position). */
	bool model_has_pos;
	uint64_t model_ms, model_seq;
	/* How long applier_wait waits for an entry to be applied before the
	 * write is answered 503 event_log_unavailable (0: 10 s). */
	int wait_timeout_ms;
	/* Entries read at most per batch (0: 1000). */
	uint32_t batch;
} applier_config;

/* Starts the thread. Returns 0, or -1 with a message in *err. */
int applier_start(const applier_config *cfg, applier **out, strbuf *err);

/* Stops the thread (after the batch it is applying), answers every write
 * still waiting with EVENTS_ELOG, frees ap. applier_stop(NULL) does
 * nothing. Call after the events writer has stopped. */
void applier_stop(applier *ap);

/* Called (on the applier's thread) after a commit that erased a customer;
 * the api drops the answers it caches (GET /v1/segments). Set before
 * serving; fn NULL: none. */
void applier_set_erasure_hook(applier *ap, void (*fn)(void *arg), void *arg);

/* What the applier needs of the model in use. The api owns the model and
 * its lock; it lends the applier these two calls (applier_set_model_hooks)
 * so the applier never reaches into api internals. Both run on the
 * applier's thread, without any applier lock held. */
typedef struct applier_model_hooks {
	/* Sets ev[i].known_item for ev[0..n) by whether the model in use
	 * knows the item, before the events are committed (the state counts
	 * the unknown ones, shopkeeper_state_unknown_item_events_total, as a
	 * single node does). NULL: every item counts as known. */
	void (*mark_known)(void *arg, event_in *ev, size_t n);
	/* After a commit (or a bootstrap) left item[0..len) with the
	 * override flags `flags` (STATE_ITEM_*; 0: none) and the catalog
	 * fields *meta (borrowed for the call; fields 0: none): the model in
	 * use, and the live items (an item it does not know, added by PUT
	 * /v1/items on any replica), serve the item accordingly from now
	 * on, on every replica. The api must make a reload that reads the
	 * state concurrently see either the commit or this call (it applies
	 * both under its reference lock). NULL: none. */
	void (*item_flags)(void *arg, const char *item, size_t len, uint32_t flags,
			   const state_item_meta *meta);
	void *arg;
} applier_model_hooks;

/* Sets the model hooks (copied); safe from any thread. item_flags runs for
 * every item commit whose end follows this call, so a caller that also
 * reloads the overrides from the state after the call misses none. */
void applier_set_model_hooks(applier *ap, const applier_model_hooks *h);

/* The writer's side of read-your-writes: r->done(r->arg, 0) runs once the
 * entry `id` (the last of r's entries) is applied, on the applier's thread
 * or at once on the caller's; r->done(r->arg, EVENTS_ELOG) when it is not
 * applied within the wait timeout. Ids must be given in increasing order
 * (one writer thread appends). */
void applier_wait(applier *ap, events_request *r, eventlog_id id);

/* The api switched to a model covering the log up to (ms, seq) (has false:
 * none). Safe from any thread; the applier acts on it between batches. */
void applier_model_switched(applier *ap, bool has, uint64_t ms, uint64_t seq);

/* What the applier is doing, for /readyz and /metrics. */
enum applier_phase {
	APPLIER_STARTING = 0, /* not yet read the state or reached Redis */
	APPLIER_BOOTSTRAP,    /* restoring flags, or replaying to the tail
			       * for the first time */
	APPLIER_REBUILD,      /* likewise after a lost entry or a model that
			       * covers less */
	APPLIER_NEWER_FORMAT, /* stopped at an entry of a newer format */
	APPLIER_APPLYING      /* following the log (a restarted replica from
			       * its first read: /readyz goes by the lag) */
};

#define APPLIER_LAG_BUCKETS 12

typedef struct applier_stats {
	enum applier_phase phase;
	bool connected;          /* the last Redis call succeeded */
	double lag_seconds;      /* age of the oldest entry not yet applied
				  * (0 when caught up) */
	uint64_t lag_entries;    /* entries not yet applied, counted up to
				  * APPLIER_LAG_COUNT_MAX */
	eventlog_id position;    /* the last entry applied */
	uint64_t applied;        /* entries applied since start */
	uint64_t skipped;        /* entries that did not decode, or of an event
				  * type or size this build does not keep */
	uint64_t covered;        /* events not applied or dropped: the model
				  * covers them */
	uint64_t bootstraps, rebuilds;
	uint64_t read_errors;    /* failed reads (Redis unreachable) */
	/* Applied entries by how long after their append (the entry id's
	 * time, Redis' clock) their commit here ended: counts per bucket of
	 * applier_lag_buckets, the last one over the top bound. */
	uint64_t lag_hist[APPLIER_LAG_BUCKETS + 1];
	double lag_sum;          /* seconds, summed over those entries */
	uint64_t put_backs;      /* times the idle applier was put back at the
				  * ordinary priority (applier_set_idle) */
} applier_stats;

extern const double applier_lag_buckets[APPLIER_LAG_BUCKETS];

#define APPLIER_LAG_COUNT_MAX 10000

void applier_get_stats(applier *ap, applier_stats *out);

/* From now on, the applier thread runs at SCHED_IDLE, as the single
 * node's event writer does (events_writer_set_idle): a request thread that
 * wakes takes the core from it at once. A second thread (sk-applier-late)
 * puts it back at the ordinary priority once it has not come round its
 * loop (a read of the log, or the apply of what it read) for `late_after`
 * seconds (> 0), until a read finds it caught up (fewer entries than a
 * batch), so that request threads keeping every core busy delay what this
 * replica applies, and the writes waiting for it, by about that much at
 * most. Only where util_may_leave_sched_idle(); elsewhere the applier
 * stays at the ordinary priority. Returns whether it runs idle. */
bool applier_set_idle(applier *ap, double late_after);
/* "starting", "bootstrap", "rebuild", "newer_format", "applying". */
const char *applier_phase_name(enum applier_phase p);

#endif
