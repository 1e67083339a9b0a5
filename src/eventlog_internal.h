/*
 * eventlog_internal: what eventlog.c, eventlog_admin.c, eventlog_codec.c
 * and eventlog_url.c share, and nothing else includes: the handle's body
 * and the Redis command helpers that work through it.
 */
#ifndef SHOPKEEPER_EVENTLOG_INTERNAL_H
#define SHOPKEEPER_EVENTLOG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>

#include "eventlog.h"
#include "strbuf.h"

/* The most entries one read, range or trim chunk asks for. */
#define READ_COUNT_MAX 100000

/* Parses s[0..n) as a decimal u64: 0, or -1 (not digits, overflow). */
int eventlog_parse_u64(const char *s, size_t n, uint64_t *out);
/* The id just before `id` in the stream's order; false when there is none. */
bool eventlog_id_prev(eventlog_id id, eventlog_id *out);
/* Whether s[0..n) is a string the log carries: min..max bytes, checked
 * as eventlog_codec.c says. */
bool eventlog_valid_string(const char *s, size_t n, size_t min, size_t max);

/* ---- the connection (eventlog.c) ------------------------------------------- */

struct eventlog {
	eventlog_config cfg;   /* own copy */
	redisContext *c;       /* NULL while disconnected */
	char addr[EVENTLOG_HOST_MAX + 16];
	strbuf err;            /* eventlog_errmsg */
	strbuf connect_err;    /* why the last connect failed, for the back-off */
	double next_try;       /* monotonic seconds: no connect before this */
	int backoff_ms;
	int io_timeout_ms;     /* what the socket has now */
	uint64_t connects;
	uint32_t sentinel_next; /* the sentinel to ask first */
	bool auth_failed;      /* the last connect failed on AUTH */
	/* scratch for building commands, kept across calls */
	strbuf keys;           /* K:c:..., K:consent, ... */
	strbuf enc;            /* encoded records of an append */
	const char **argv;
	size_t *argl;
	size_t argcap;
};

/* Sets log->err from fmt and returns rc, so `return eventlog_fail(...)`
 * reports and fails in one line. */
int eventlog_fail(eventlog *log, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* freeReplyObject; r may be NULL. */
void eventlog_free_reply(redisReply *r);
/* What a reply (NULL: the connection failed) means for the caller: 0,
 * EVENTLOG_EUNAVAILABLE or EVENTLOG_EREDIS. On failure the message is set
 * and the connection dropped when it is no longer good. r stays the
 * caller's. `what` names the command in messages. */
int eventlog_check_reply(eventlog *log, const redisReply *r, const char *what);
/* Connects unless connected, then runs one command given as argv (argv
 * and argl borrowed). On 0, *out gets a non-error reply, owned from now
 * on by the caller (eventlog_free_reply); otherwise *out is NULL and the
 * code is eventlog_check_reply's or the connect's. */
int eventlog_run_argv(eventlog *log, redisReply **out, int argc, const char **argv,
		      const size_t *argl);
/* Appends K (the stream key), suffix and bytes s[0..n) and a NUL to
 * log->keys; returns the offset the key starts at (the buffer may move:
 * take pointers once every key is added). */
size_t eventlog_key_add(eventlog *log, const char *suffix, const char *s, size_t n);
/* XRANGE from..to COUNT count (XREVRANGE, newest first, when reverse:
 * only with count 1) into *out, which takes the reply. One try, no
 * retry (see RETRY_ONCE). Returns 0, EVENTLOG_EUNAVAILABLE or
 * EVENTLOG_EREDIS. */
int eventlog_range_once(eventlog *log, eventlog_id from, eventlog_id to, size_t count,
			eventlog_batch *out, bool reverse);

/* An idempotent read may be retried once when it failed on a connection
 * that was up: a server restart or failover costs the caller nothing. */
#define RETRY_ONCE(log, call)                                                 \
	do {                                                                  \
		bool was_up_ = (log)->c != NULL;                              \
		rc = (call);                                                  \
		if (rc == EVENTLOG_EUNAVAILABLE && was_up_ && !(log)->c)      \
			rc = (call);                                          \
	} while (0)

#endif
