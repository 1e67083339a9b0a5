/*
 * events: the single writer of real-time events, with group commit.
 *
 * Request threads hand their validated events to events_append(), which
 * queues them and blocks until they are on disk. One writer thread takes
 * everything queued, writes it in one LMDB transaction and one fsync, and
 * wakes every waiter. Under load, many requests share each fsync, so
 * throughput grows with concurrency while every acknowledged event is
 * durable.
 */
#ifndef SHOPKEEPER_EVENTS_H
#define SHOPKEEPER_EVENTS_H

#include <jansson.h>
#include <stdint.h>

#include "store.h"
#include "strbuf.h"

typedef struct events_writer events_writer;

/* Starts the writer thread over state s (borrowed). Returns 0, or -1 with a
 * message in *err. */
int events_writer_start(state *s, events_writer **out, strbuf *err);

/* Writes ev[0..n) durably. Blocks until committed. Returns 0, or -1 when the
 * state could not be written (nothing of this batch is then recorded) or the
 * writer is stopping. Safe from any number of threads. */
int events_append(events_writer *w, const event_in *ev, uint32_t n);

/* Commits what is queued, stops the thread, frees the writer;
 * events_writer_stop(NULL) does nothing. */
void events_writer_stop(events_writer *w);

/* Validates one event object of POST /v1/events into *e (ids borrowed from
 * o, or written into ids[] when sent as JSON integers; now is the default
 * time and the reference for "in the future"). Returns NULL, or why it is
 * rejected as "code: message" (a static string). */
const char *events_parse(json_t *o, event_in *e, char ids[2][24], int64_t now);

/* Transactions committed and events written so far (for metrics). */
void events_writer_stats(events_writer *w, uint64_t *commits, uint64_t *events);

#endif
