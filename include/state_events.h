/*
 * state_events: each customer's event log inside the server's state
 * (state.h opens the state and commits to it; docs/design.md "Model and
 * state formats" has the layout). Events are appended by state_commit
 * (or through the journal, state_internal.h), oldest dropped beyond
 * STATE_MAX_EVENTS, read back whole and in order, the journal's included.
 *
 * Errors: 0 or a negative STORE_* code (store.h).
 */
#ifndef SHOPKEEPER_STATE_EVENTS_H
#define SHOPKEEPER_STATE_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct state_txn state_txn; /* state.h */

/* Live event types: the training ones (EVENT_VIEW, EVENT_CART,
 * EVENT_PURCHASE of ingest.h, 0 to 2) plus taking an item out of the cart. */
#define EVENT_REMOVE_FROM_CART 3
/* Attribution-only types (issue 15): counted for experiments
 * (attribution.h), never kept in a customer's event log, so they shape no
 * recommendation and evict no event of the 500. */
#define EVENT_CLICK 4
#define EVENT_IMPRESSION 5 /* item optional (item_len 0) */
#define EVENT_KEPT(type) ((type) <= EVENT_REMOVE_FROM_CART)
#define STATE_MAX_EVENTS 500 /* per customer; the oldest are dropped */
#define STATE_MAX_ITEM_LEN 255 /* bytes of an item id in an event */

/* One event to record; strings are borrowed. */
typedef struct event_in {
	const char *customer;
	size_t customer_len;
	const char *item;
	size_t item_len;       /* <= STATE_MAX_ITEM_LEN */
	int64_t ts;
	float quantity;
	float price;
	uint8_t type; /* enum event_type or EVENT_REMOVE_FROM_CART */
	bool known_item; /* the current model knows the item (for counts) */
	const char *rec_id; /* the answer it follows (recid.h), validated by
			     * events_parse; rec_id_len 0: none */
	size_t rec_id_len;
} event_in;

/* A customer's recorded events, oldest first (borrowed from a state_txn,
 * valid until its reset or the next read through it). */
typedef struct state_events {
	const unsigned char *data;
	size_t size;
	uint32_t count;
} state_events;

typedef struct event_view {
	int64_t ts;
	float quantity, price;
	uint8_t type;
	const char *item; /* not NUL-terminated */
	size_t item_len;
	uint32_t log_sec; /* the second of the event-log entry that carried it
			   * (state_write.log_sec); 0: not from the event log */
} event_view;

/* Returns 0 (count may be 0 when none; O(1), no LMDB, for a customer no
 * write has named: state.h) or STORE_CORRUPT / STORE_ERROR. */
int state_events_get(state_txn *t, const char *id, size_t len, state_events *out);
/* Decodes the event at byte offset *pos and advances it. Returns 0,
 * STORE_NOTFOUND past the last one, or STORE_CORRUPT. */
int state_events_next(const state_events *ev, size_t *pos, event_view *out);

/* Walks the customers that have events, in id order, after `after` (NULL
 * or empty: from the first; borrowed until the first state_iter_next).
 * state_iter_next returns 0 and the customer's id and events (borrowed
 * until the next step), STORE_NOTFOUND at the end, or STORE_CORRUPT /
 * STORE_ERROR. The iterator is freed with state_iter_end (NULL: nothing). */
typedef struct state_iter state_iter;
int state_iter_begin(state_txn *t, const char *after, size_t after_len, state_iter **out);
int state_iter_next(state_iter *it, const char **id, size_t *len, state_events *ev);
void state_iter_end(state_iter *it);

#endif
