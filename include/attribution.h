/*
 * attribution: what recommendations earned (issue 15, the measuring side).
 *
 * Two halves:
 *   - the serve-time hook, attribution_note_served(), called by the
 *     experiments code once per recommendation answer that is inside an
 *     experiment. It copies what it needs into an in-memory batch under a
 *     short mutex (no allocation, no disk) and returns; a flusher thread
 *     commits the batch to the state about once a second
 *     (ATTRIBUTION_FLUSH_SECONDS). So at most about one second of served
 *     counts (customers assigned and exposed, impressions, the items
 *     remembered for view-through) is lost on a crash or kill -9. Clicks,
 *     carts and orders are events (POST /v1/events) and are durable like
 *     every event: they are counted in the same transaction that records
 *     them (state.c).
 *   - the report, attribution_report(): the per-variant figures and the
 *     statistics (abstats.h) from the state alone, as JSON, shared by
 *     GET /v1/experiments/{name} and `shopkeeper report`.
 *
 * Bounds: a batch holds at most ATTRIBUTION_BATCH_MAX answers; answers
 * beyond that within one flush interval are dropped and counted
 * (attribution_dropped). Each answer remembers at most
 * ATTRIBUTION_ITEMS_MAX of its items for view-through. The state keeps,
 * per customer, the last STATE_ATTR_SERVED_MAX served items (state.h) and
 * one small record per experiment the customer was assigned to.
 */
#ifndef SHOPKEEPER_ATTRIBUTION_H
#define SHOPKEEPER_ATTRIBUTION_H

#include <stddef.h>
#include <stdint.h>

#include "state.h"
#include "strbuf.h"

struct model;

typedef struct attribution attribution;

#define ATTRIBUTION_FLUSH_SECONDS 1.0
#define ATTRIBUTION_BATCH_MAX 8192u  /* answers per flush interval */
#define ATTRIBUTION_ITEMS_MAX 32u    /* items of one answer remembered */
#define ATTRIBUTION_DAYS_DEFAULT 7   /* --attribution-days */
#define ATTRIBUTION_MAX_VARIANTS 16u /* variants of one experiment */
#define ATTRIBUTION_NAME_MAX 64u     /* bytes of an experiment or variant name */

/* Starts the batcher and its flusher thread, which commits batches to s
 * (borrowed until attribution_stop) with state_commit. Returns 0, or -1
 * with a message in *err. */
int attribution_start(state *s, attribution **out, strbuf *err);

/* The same for `serve --event-log`: each flush appends the served answers
 * to the shared log as EVENTLOG_SERVED records (one eventlog_append, on a
 * connection of its own to `log`, copied), which every replica's applier
 * counts into its state, so every replica reports the same figures.
 * Definitions are still written to the local state (every replica loads
 * the same experiments file). A flush the log refuses loses that second's
 * served counts (said on stderr). Returns 0, or -1 with a message. */
struct eventlog_config;
int attribution_start_log(state *s, const struct eventlog_config *log, attribution **out,
			  strbuf *err);

/* Flushes what is pending, stops the thread, frees a.
 * attribution_stop(NULL) does nothing. */
void attribution_stop(attribution *a);

/* Declares an experiment's definition: its id (the rec_id's experiment id,
 * from name and salt; not 0), name, and its variants' names and shares
 * (n <= ATTRIBUTION_MAX_VARIANTS, names at most ATTRIBUTION_NAME_MAX
 * bytes; all borrowed for the call). Call it for every experiment when the
 * experiments file is loaded or reloaded, before the first
 * attribution_note_served of that experiment. The definition is written
 * into the state with the next flush, so `shopkeeper report` works from
 * the state alone (each call rewrites it once: a few bytes). At most 64
 * experiments are held. Returns 0, or -1
 * when an argument breaks a bound (nothing recorded). */
int attribution_define(attribution *a, uint32_t experiment_id, const char *name,
		       const char *const *variant_names, const double *shares, uint32_t n);

/* The serve-time hook: one answer of the experiment `experiment_id`
 * (not 0; the rec_id's experiment id), variant index `variant`, was
 * served to `customer` (customer_len bytes, 1..256), showing items[0..n)
 * (model indices into m, whose ids are read during the call) at time
 * `ts` (Unix seconds, the clock events use). Every argument is borrowed
 * for the call only. Runs on request threads: a short mutex, no
 * allocation, never a disk write. A NULL `a`, experiment_id 0 or an
 * anonymous answer (customer_len 0) does nothing. An empty answer (a
 * holdout) counts the customer as assigned, not exposed. The names are
 * accepted for the contract's sake; the definition (attribution_define)
 * is what the report uses. */
void attribution_note_served(attribution *a, uint32_t experiment_id, uint32_t variant,
			     const char *experiment_name, const char *variant_name,
			     const char *customer, size_t customer_len, const struct model *m,
			     const uint32_t *items, uint32_t n_items, int64_t ts);

/* Commits what is pending now (the flusher does so every
 * ATTRIBUTION_FLUSH_SECONDS). Returns 0 or STORE_ERROR with a message in
 * *err. */
int attribution_flush(attribution *a, strbuf *err);

/* Answers dropped because a batch was full, so far. */
uint64_t attribution_dropped(const attribution *a);

/* Writes the report of experiment `name` from the state (t: a read
 * transaction on it, borrowed) as one JSON object into out. Returns 0,
 * STORE_NOTFOUND (no experiment of that name was ever recorded),
 * STORE_CORRUPT or STORE_ERROR. */
int attribution_report(state_txn *t, const char *name, size_t name_len, strbuf *out);

#endif
