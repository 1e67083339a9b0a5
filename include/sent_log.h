/*
 * sent_log: what audience exports pushed to whom. A separate LMDB file,
 * DIR/sent.mdb, written only by `shopkeeper export` (one writer at a
 * time), so exports never write the server's state.
 *
 * Errors: 0 or a negative STORE_* code (store.h).
 */
#ifndef SHOPKEEPER_SENT_LOG_H
#define SHOPKEEPER_SENT_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "strbuf.h"

typedef struct sent_log sent_log;

/* Opens (creating) DIR/sent.mdb. Returns 0 or STORE_ERROR with a message
 * in *err. */
int sent_log_open(const char *dir, sent_log **out, strbuf *err);
/* Aborts what was not flushed. sent_log_close(NULL) does nothing. */
void sent_log_close(sent_log *l);
/* Calls fn(item, item_len, ts, arg) for each item sent to the customer
 * (item borrowed for the call). Returns 0, STORE_CORRUPT or STORE_ERROR. */
int sent_log_each(sent_log *l, const char *customer, size_t len,
		  void (*fn)(const char *item, size_t item_len, int64_t ts, void *arg), void *arg);
/* Records that items were sent at ts (the oldest records beyond 200 per
 * customer are dropped; item ids are cut at 255 bytes). Buffered: durable
 * after sent_log_flush. Returns 0 or STORE_ERROR with a message in *err. */
int sent_log_add(sent_log *l, const char *customer, size_t len, const char *const *items,
		 const size_t *item_lens, uint32_t n, int64_t ts, strbuf *err);
int sent_log_flush(sent_log *l, strbuf *err);

#endif
