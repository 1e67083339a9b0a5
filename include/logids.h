/*
 * logids: customer ids in the access log, replaced by a keyed hash.
 *
 * An erasure (DELETE /v1/customers/{id}) cannot reach lines already written
 * to an access log, and paths such as /v1/customers/{id}/recommendations
 * name the customer. So serve logs "~" and 16 hex digits instead of the id
 * segment: SipHash-2-4 of the percent-decoded id under a 128-bit key. The
 * hash is stable (one customer's lines can still be followed and counted)
 * but without the key it cannot be turned back into an id, even for the
 * short, guessable ids shops use; delete or rotate the key and old logs
 * are pseudonymous for good. SipHash is a keyed PRF made for short inputs,
 * with no crypto library to link: rewriting a typical line measured 0.24 us
 * (0.08 us of it the hash) on 2 shared cores at load 5, under 1 us at load
 * 10, in the filter thread, off the request path.
 *
 * The access log is written by the http layer, one line per write(2); the
 * filter sits between: the daemon writes to a pipe, one thread rewrites the
 * lines and writes them to the real log. Lines stay whole (each is under
 * PIPE_BUF, so the pipe keeps them apart) and in order per writer.
 */
#ifndef SHOPKEEPER_LOGIDS_H
#define SHOPKEEPER_LOGIDS_H

#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

#define LOGIDS_KEY_BYTES 16
/* What replaces an id in a path: '~' and 16 lowercase hex digits. */
#define LOGIDS_HASH_LEN 17

typedef struct logids_key {
	uint8_t k[LOGIDS_KEY_BYTES];
} logids_key;

/* SipHash-2-4 of data[0..n) under key. (Public for tests/test_logids.c;
 * logids_rewrite is its only other caller.) */
uint64_t logids_siphash(const logids_key *key, const void *data, size_t n);

/* Reads the key from `path` (32 hex digits, then optionally a newline).
 * When the file does not exist and `create` is set, makes one (mode 0600)
 * from the kernel's random source. Returns 0, or -1 with a message in *err. */
int logids_key_load(const char *path, int create, logids_key *key, strbuf *err);

/* (Public for tests/test_logids.c; the filter thread is its only other
 * caller.) Rewrites one access-log line in[0..n) (a JSON object with a "path"
 * string) into out, which has room for n + LOGIDS_HASH_LEN bytes: the id
 * segment of a /v1/customers/{id}... path becomes its hash; any other line
 * is copied as it is. Returns the bytes written. */
size_t logids_rewrite(const logids_key *key, const char *in, size_t n, char *out);

typedef struct logids_filter logids_filter;

/* Starts the filter thread: lines written to *write_fd (the pipe's write
 * end, for http_config.access_log_fd) are rewritten and written to out_fd,
 * which stays the caller's (it may be swapped with dup2 at any time, as on
 * SIGHUP). Start it with the handled signals blocked (the thread inherits
 * the mask). Returns 0, or -1 with a message in *err. */
int logids_filter_start(int out_fd, const logids_key *key, int *write_fd, logids_filter **out,
			strbuf *err);

/* Reopens the log (SIGHUP, for logrotate): `new_fd` (owned by the filter
 * from now on) replaces out_fd, with dup2, once the lines already in the
 * pipe are written to the old file, so that no line logged before the call
 * lands in the new one. */
void logids_filter_reopen(logids_filter *f, int new_fd);

/* Once nothing writes to the pipe any more (after http_stop): closes the
 * write end, writes what is left, joins the thread, frees the filter.
 * logids_filter_stop(NULL) does nothing. */
void logids_filter_stop(logids_filter *f);

#endif
