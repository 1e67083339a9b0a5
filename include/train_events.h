/*
 * train_events: the events a server collected, fed back into training
 * (`train --events-from SOURCE`). SOURCE is
 *   - a state directory of a single node (serve --state DIR), opened
 *     read-only beside a running server: every customer's recorded events;
 *   - the shared event log, redis://... or sentinel://... (eventlog.h):
 *     every event entry of the stream, read with XRANGE.
 *
 * Privacy rules, the same for both sources:
 *   - an erased customer is excluded from the whole training run, CSV rows
 *     included (the state's erasures.txt, or the log's erasure records and
 *     compacted erasure flags): train_events_exclusions adds them to the
 *     exclusion list before the CSV is read;
 *   - a customer whose personalization consent is withdrawn now (the
 *     state's flag, or the log's latest consent record) has no live event
 *     trained on; their CSV rows are left as the exports have them;
 *   - a customer erased while training reads the source fails the run
 *     (train_events_recheck): run it again, nothing of theirs is written.
 *
 * Overlap with the exports: an event at or before the exports' newest
 * timestamp is taken to be in the exports already and left out (counted
 * as `covered`), so collected events are never counted twice when the
 * exports come from the same shop.
 *
 * Errors: 0 or -1 with a message in *err.
 */
#ifndef SHOPKEEPER_TRAIN_EVENTS_H
#define SHOPKEEPER_TRAIN_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "idmap.h"
#include "ingest.h"
#include "strbuf.h"

typedef struct train_events train_events;

/* Opens SOURCE (a redis:// or sentinel:// URL, else a state directory) and
 * checks that it can be read (the state opens, Redis answers PING).
 * *out is freed by train_events_close. */
int train_events_open(const char *source, train_events **out, strbuf *err);
/* train_events_close(NULL) does nothing. */
void train_events_close(train_events *te);

/* Adds every customer the source has erased to *exclude (created when
 * NULL; the caller frees it) and notes the customers without consent. Call
 * once, before the CSV is read with *exclude as ingest_options.exclude. */
int train_events_exclusions(train_events *te, idmap **exclude, strbuf *err);

/* Adds the source's events to ds through ingest_add_event (opt->exclude
 * must hold the exclusions above), leaving out the no-consent customers'
 * and, when has_after, those with a timestamp at or before `after`. Sets
 * ds->live.source (no password) and, from a log, ds->live.last_id: the
 * newest entry when the scan began, the point the training covers. */
int train_events_feed(train_events *te, const ingest_options *opt, bool has_after,
		      int64_t after, dataset *ds, strbuf *err);

/* Fails when the source now has an erased customer that `exclude` lacks
 * (erased while training read it), so no model is written with them. */
int train_events_recheck(train_events *te, const idmap *exclude, strbuf *err);

#endif
