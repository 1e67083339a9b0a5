/*
 * http_internal: what the files of the http module share (http.c, the
 * daemon and the request lifecycle; http_query.c, the query string;
 * http_log.c, the access log and the library's log).
 * Not for other modules: http.h is the contract.
 */
#ifndef SHOPKEEPER_HTTP_INTERNAL_H
#define SHOPKEEPER_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <stdbool.h>
#include <stddef.h>

#include "http.h"
#include "strbuf.h"

/* Query arguments one request may have split by us; a request with more
 * is answered from the library's own list (http_query's fallback). */
#define CONN_MAX_ARGS 32
/* Answers shorter than this are sent from the connection's own buffer,
 * so that an idle keep-alive connection holds at most this much (as much
 * as the library's own pool for it, HTTP_CONNECTION_MEMORY_DEFAULT); a
 * larger answer gets a block of its own, freed once sent, as every
 * answer did before. */
#define CONN_BODY_KEEP ((size_t)16 << 10)

/* Per connection (the library's socket context, MHD_OPTION_NOTIFY_CONNECTION). */
struct http_conn {
	http_server *s;
	/* The answer body: the response points at it (no allocation per
	 * request) until the library lets the response go (conn_body_free). */
	strbuf out;
	size_t out_counted; /* bytes of out counted in s->unsent */
	/* 1 for the connection, 1 more while a response holds out: the last
	 * of the close notice and the response's release frees this. */
	atomic_uint refs;
	/* The request's query string (after the first '?'), split in place
	 * as the library splits it: arg_key[i] is NUL-terminated, arg_val[i]
	 * too, or NULL for a key without '='. */
	strbuf query;
	unsigned n_args;
	bool args_overflow; /* over CONN_MAX_ARGS: ask the library instead */
	const char *arg_key[CONN_MAX_ARGS];
	const char *arg_val[CONN_MAX_ARGS];
	size_t arg_key_len[CONN_MAX_ARGS];
};

/* Splits the query string q (after the first '?') into hc's arguments
 * exactly as libmicrohttpd 0.9.75 splits it for its own list (so that
 * http_query answers as MHD_lookup_connection_value did, without a walk
 * of the header list per parameter): '+' is a space in keys and values
 * alike; an argument ends at '&'; its key ends at the first '=' before
 * that, and a key without '=' has no value (NULL, not ""); an empty
 * last argument ("a=1&") is none. hc is borrowed; q is copied (NULL: no
 * query string). */
void http_conn_split_query(struct http_conn *hc, const char *q);

/* Per pool thread: reusable buffers and the application's slot. */
struct http_thread {
	strbuf out;     /* response body */
	strbuf scratch; /* decoded path segments */
	void *app_data;
	struct http_thread *next;
	/* Requests begun (headers in) and completed (answer sent or dropped)
	 * on this thread; each written by this thread only, summed by
	 * http_drain(). */
	_Atomic unsigned long started, done;
	uint32_t rng; /* access-log sampling (xorshift32) */
};

struct http_server {
	struct MHD_Daemon *daemon;
	http_config cfg;
	unsigned port;
	pthread_mutex_t threads_lock; /* taken once per thread, on its first request */
	struct http_thread *threads;
	atomic_int draining;          /* set by http_drain(): answer with Connection: close */
	struct http_acceptor *acceptor; /* the listening socket's thread */
	atomic_uint deferred;         /* suspended or answered but not yet queued */
	atomic_bool stopping;         /* http_stop: new requests get 503 */
	uint32_t log_threshold;       /* log a request when rng < this (sampling) */
	bool log_all;                 /* access_log_sample >= 1 */
	size_t conn_memory;           /* MHD_OPTION_CONNECTION_MEMORY_LIMIT */
	size_t max_unsent_conn, max_unsent_total; /* the configured bounds */
	atomic_size_t unsent;         /* bytes of answers queued and not yet let go */
	atomic_ulong refused_unsent;  /* 503s for the unsent bounds */
	atomic_ulong refused_framing; /* 400s for framing */
};

enum { DEFER_NONE, DEFER_WAITING, DEFER_ANSWERED };

struct http_deferred {
	struct MHD_Connection *conn;
	http_server *server;
	atomic_int state;   /* DEFER_*: ANSWERED is published after status/answer */
	int status;
	strbuf answer;
	bool logged;        /* sampled for the access log: */
	struct timespec t0; /* when it was taken up */
	const char *method, *url; /* libmicrohttpd's, valid for the request */
};

/* A request's own state (*req_cls), for requests with a body or deferred. */
struct upload {
	strbuf body;
	int too_large;
	struct http_deferred deferred;
};

/* Whether this request goes to the access log (sampling by the thread's
 * own generator: no lock). */
bool http_log_sampled(const http_server *s, struct http_thread *t);
/* One access-log line for a request begun at t0 (CLOCK_MONOTONIC), one
 * write(2); never the query string or a header. Errors are ignored: a
 * full disk must not fail the request. */
void http_access_log(const http_server *s, const char *method, const char *url, int status,
		     size_t bytes, const struct timespec *t0);
/* libmicrohttpd's logger (MHD_OPTION_EXTERNAL_LOGGER), rate-limited to
 * HTTP_LOG_LINES_PER_SECOND lines a second for the whole process. */
void http_log_library(void *cls, const char *fmt, va_list ap);
/* Lines of the library's log written and suppressed since start. */
void http_log_counts(unsigned long *written, unsigned long *suppressed);

#endif
