/*
 * store_internal: what the store files (store.c, model_writer.c, model.c,
 * state.c, state_events.c, sent_log.c) share and nobody else sees. These are
 * the only files that include <lmdb.h> or call mdb_*.
 *
 * Inside the store, LMDB return codes travel between static functions; at a
 * public function's return they become STORE_* codes (store_code), so no
 * LMDB code leaves the store.
 */
#ifndef SHOPKEEPER_STORE_INTERNAL_H
#define SHOPKEEPER_STORE_INTERNAL_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store.h"
#include "strbuf.h"

/* mkdir -p DIR. Returns 0, or -1 with a message in *err. */
int store_make_dirs(const char *dir, strbuf *err);
/* fsyncs a directory, so a rename or a new file in it is durable. Returns
 * 0 or -1 (errno set). */
int store_fsync_dir(const char *dir);

/* Creates and opens the environment of the LMDB file at `path` (flags:
 * MDB_NOSUBDIR is added) with room for maxdbs tables, a map of mapsize
 * bytes (0: LMDB's default or the file's) and maxreaders reader slots (0:
 * LMDB's default). On failure *env is NULL, "cannot open WHAT PATH: why"
 * is in *err, and the LMDB code is returned. */
int store_env_open(const char *path, unsigned flags, unsigned maxdbs, uint64_t mapsize,
		   unsigned maxreaders, const char *what, MDB_env **env, strbuf *err);

/* Commits *txn and sets it NULL: LMDB frees a transaction whether its
 * commit succeeds or not, so it must not be aborted after. Returns an LMDB
 * code. */
int store_txn_commit(MDB_txn **txn);

/* Appends "what: LMDB's message" to *err; returns STORE_ERROR. */
int store_lmdb_fail(strbuf *err, const char *what, int rc);
/* An LMDB code as a STORE_* code: 0, MDB_NOTFOUND -> STORE_NOTFOUND,
 * MDB_CORRUPTED -> STORE_CORRUPT, anything else STORE_ERROR. */
int store_code(int rc);

/* ---- the model's checksum file (model_sum.c) ---------------------------------- */

/* Writes DIR/MODEL_SUM_FILE for the model file at data_path (already
 * synced and in place): through a temporary file, fsynced, renamed, the
 * directory fsynced. Returns 0 or STORE_ERROR with a message in *err. */
int model_sum_write(const char *dir, const char *data_path, strbuf *err);
/* Checks the model file open on fd (at data_path, in dir) against
 * DIR/MODEL_SUM_FILE. Returns 0; STORE_CORRUPT with a message telling to
 * retrain when the file is missing, unreadable as a checksum, or does not
 * match; STORE_ERROR when reading fails. */
int model_sum_check(const char *dir, const char *data_path, int fd, strbuf *err);

/* ---- offset tables: u32 n, u32 off[n + 1], then the payload ----------------
 *
 * Entry i is payload units off[i] .. off[i+1]; a unit is a byte in a string
 * table, a (u32 item, f32 score) pair in the neighbour table. One encoder
 * and one checker for every table of this shape, so the writer and the
 * reader cannot drift apart. */

typedef struct offtab {
	const unsigned char *off;     /* u32[n + 1], in units */
	const unsigned char *payload;
	size_t unit;                  /* bytes per unit */
	uint32_t n;                   /* entries */
	uint32_t end;                 /* off[n]: payload units */
} offtab;

/* Bytes before the payload of a table of n entries. */
static inline size_t offtab_head(uint32_t n)
{
	return 4 + 4 * ((size_t)n + 1);
}

/* Entry i (< t->n: the caller's check) and its length in units; the table
 * was checked by offtab_check, so this trusts the offsets. */
static inline const unsigned char *offtab_entry(const offtab *t, uint32_t i, uint32_t *units)
{
	uint32_t a, b;
	memcpy(&a, t->off + 4 * (size_t)i, 4);
	memcpy(&b, t->off + 4 * ((size_t)i + 1), 4);
	*units = b - a;
	return t->payload + (size_t)a * t->unit;
}

/* Writes a table into blob, which has room for offtab_head(n) plus every
 * entry's units: offtab_put_begin, offtab_put once per entry in order,
 * offtab_put_end. */
typedef struct offtab_writer {
	unsigned char *blob;
	size_t unit;
	uint32_t n, i, end;
} offtab_writer;

void offtab_put_begin(offtab_writer *w, void *blob, uint32_t n, size_t unit);
/* The next entry: `units` units from data (data may be NULL when units is 0). */
void offtab_put(offtab_writer *w, const void *data, uint32_t units);
void offtab_put_end(offtab_writer *w);

#define OFFTAB_ANY_COUNT UINT32_MAX
/* Checks a table of `size` bytes: n entries (== want unless
 * OFFTAB_ANY_COUNT), offsets in order, no entry longer than max_units (0:
 * no limit), and a payload of exactly off[n] units. Returns 0 with *t
 * filled (pointing into blob), or STORE_CORRUPT. */
int offtab_check(const void *blob, size_t size, size_t unit, uint32_t want, uint32_t max_units,
		 offtab *t);

/* ---- read transactions ------------------------------------------------------ */

/* A read transaction reused across requests: reset between them, renewed
 * for the next, so a request allocates nothing to read. */
typedef struct store_reader {
	MDB_txn *txn;
	bool active; /* holds a snapshot (begun or renewed, not reset) */
} store_reader;

/* Begins it, active. Returns an LMDB code. */
int store_reader_begin(MDB_env *env, store_reader *r);
/* Releases the snapshot; returns whether one was held. */
bool store_reader_reset(store_reader *r);
/* Takes a fresh snapshot if none is held. Returns an LMDB code. */
int store_reader_renew(store_reader *r);

/* ---- paged walks ---------------------------------------------------------- */

/* Moves c to the first key after `after` (NULL or empty: the first key),
 * filling k and v: the resume point of a paged walk. `past` is the step
 * over an equal key: MDB_NEXT, or MDB_NEXT_NODUP on a table of duplicates.
 * Returns an LMDB code (MDB_NOTFOUND: nothing after it). */
int store_cursor_after(MDB_cursor *c, const void *after, size_t len, MDB_cursor_op past,
		       MDB_val *k, MDB_val *v);

/* A walk over a table's keys in order, resuming after a key: the first
 * step is store_cursor_after, the rest MDB_NEXT. */
typedef struct store_walk {
	MDB_cursor *cur;
	const char *after; /* borrowed from the caller until the first step */
	size_t after_len;
	bool started;
} store_walk;

/* Opens the walk's cursor on dbi and remembers `after` (borrowed). Returns
 * an LMDB code. */
int store_walk_open(store_walk *w, MDB_txn *txn, MDB_dbi dbi, const char *after, size_t len);
/* The next key and value. Returns an LMDB code (MDB_NOTFOUND at the end). */
int store_walk_next(store_walk *w, MDB_val *k, MDB_val *v);

#endif
