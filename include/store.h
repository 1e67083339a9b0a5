/*
 * store: the on-disk layout of models and server state (docs/design.md,
 * "Model and state formats"). The store files are the only code that calls
 * mdb_*. The store is split by what it keeps:
 *
 *   model_format.h  the model's records, shared by its writer and reader
 *   model_writer.h  writing a model (train)
 *   model.h         reading a model (serve, inspect, export, eval)
 *   state.h         the server's state: flags, erasures, group commits
 *   state_events.h  each customer's event log inside the state
 *   sent_log.h      what audience exports sent to whom
 *
 * This header holds what they share: one error vocabulary. Every store
 * function returns 0 or a negative STORE_* code, never an LMDB code; a
 * record of an impossible size or content is STORE_CORRUPT. Messages for
 * people go into a caller's strbuf where one is passed.
 */
#ifndef SHOPKEEPER_STORE_H
#define SHOPKEEPER_STORE_H

enum {
	STORE_OK = 0,
	STORE_NOTFOUND = -1, /* no such key */
	STORE_CORRUPT = -2,  /* a record has an impossible size or content */
	STORE_ERROR = -3,    /* LMDB or the file system failed (I/O, map full...) */
};

/* A short name for a STORE_* code ("not found", ...); static storage. */
const char *store_strerror(int code);

#endif
