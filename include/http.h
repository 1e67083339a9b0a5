/*
 * http: the libmicrohttpd daemon, request decoding and limits; no routes.
 *
 * libmicrohttpd runs a pool of threads, each with its own epoll loop. For
 * every complete request the http layer calls the application's handler
 * once, on the thread that owns the connection, with the path split into
 * percent-decoded segments and the body (if any) in one buffer. The handler
 * writes its answer into resp->body, a per-thread buffer that is reused,
 * and returns; the layer copies it into the connection's own buffer
 * (reused too) and sends it from there.
 *
 * Paths are decoded here, strictly: an invalid %XX escape is answered with
 * 400 before the handler runs. The daemon is told not to unescape anything
 * itself, so "%2F" inside an id stays part of that id.
 *
 * Framing is checked before any routing (SECURITY.md "Request framing"):
 * a request whose length a proxy in front could read differently (two
 * Content-Length headers, Content-Length with Transfer-Encoding, a coding
 * other than "chunked", a NUL byte in the request line) is answered 400
 * with "Connection: close", as nginx answers it.
 *
 * Answers waiting to be sent hold memory until the client reads them: the
 * layer bounds it per connection and in total (http_config.max_unsent_*)
 * and answers 503 past a bound instead of holding more.
 */
#ifndef SHOPKEEPER_HTTP_H
#define SHOPKEEPER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strbuf.h"

#define HTTP_MAX_SEGMENTS 8
#define HTTP_MAX_BODY_DEFAULT (1u << 20) /* 1 MiB */
/* Per-connection memory (request line and headers; past it: 431).
 * libmicrohttpd clears it with memset for every request: keep it small. */
#define HTTP_CONNECTION_MEMORY_DEFAULT (16u * 1024)
/* Bytes of answers queued but not yet sent (a client that does not read
 * holds its answer): the largest one answer may be, and the most all may
 * hold together. 200 unread 6.4 MB answers held 1.03 GB before these. */
#define HTTP_MAX_UNSENT_PER_CONNECTION_DEFAULT ((size_t)8 << 20)  /* 8 MiB */
#define HTTP_MAX_UNSENT_TOTAL_DEFAULT ((size_t)256 << 20)         /* 256 MiB */
/* Answers this small are never refused for the total bound (errors, health
 * probes, the 503 itself); they are counted all the same. */
#define HTTP_UNSENT_ALWAYS (16u * 1024)
/* Lines the library logs (an abandoned connection writes one) per second;
 * past it they are counted and summed up in one "suppressed" line. */
#define HTTP_LOG_LINES_PER_SECOND 10

typedef struct http_request {
	const char *method;  /* "GET", "POST", ... */
	const char *url;     /* raw path, without the query string */
	unsigned n_segs;     /* path segments, decoded, NUL-terminated */
	const char *segs[HTTP_MAX_SEGMENTS];
	size_t seg_lens[HTTP_MAX_SEGMENTS];
	const char *body;    /* request body (NULL if none), NUL-terminated */
	size_t body_len;
	void *conn;          /* the MHD_Connection, for http_query() */
	void *conn_state;    /* the layer's per-connection state (the query
			      * string split once); NULL: ask the library */
	/* A per-thread slot for the application (NULL on a thread's first
	 * request); released by http_config.thread_free at http_stop(). */
	void **thread_data;
} http_request;

/* A request answered later, from any thread (see http_defer). */
typedef struct http_deferred http_deferred;
typedef void (*http_deferred_start)(void *arg, http_deferred *d);

typedef struct http_response {
	int status;          /* default 200 */
	strbuf *body;        /* JSON text; per-thread, reset before each call */
	const char *allow;   /* Allow header for a 405, or NULL */
	const char *content_type; /* NULL: application/json; charset=utf-8 */
	const char *www_authenticate; /* WWW-Authenticate header for a 401 */
	http_deferred_start defer; /* set by http_defer */
	void *defer_arg;
	/* More headers: name, value, name, value, ..., NULL; or NULL. The
	 * array and its strings must outlive the handler's return (static, or
	 * per thread until the thread's next request). */
	const char *const *headers;
	struct http_stream *stream; /* set by http_stream */
} http_response;

/* The application's request handler; `app` is http_config.app. */
typedef void (*http_handler)(void *app, const http_request *req, http_response *resp);

typedef struct http_config {
	const char *listen;   /* "HOST:PORT", "[V6]:PORT" or ":PORT" */
	unsigned threads;     /* pool size, >= 1 */
	unsigned timeout_s;   /* idle connection timeout */
	size_t max_body;      /* bytes; bigger bodies get 413 */
	unsigned max_connections;        /* 0: libmicrohttpd's default */
	unsigned max_connections_per_ip; /* 0: no limit */
	size_t connection_memory;        /* per-connection pool for the request line
					  * and headers; 0: HTTP_CONNECTION_MEMORY_DEFAULT */
	size_t max_unsent_per_connection; /* bytes of one answer (libmicrohttpd holds
					   * one per connection); over it: 503;
					   * 0: HTTP_MAX_UNSENT_PER_CONNECTION_DEFAULT */
	size_t max_unsent_total;          /* bytes of all answers not yet sent; an
					   * answer over HTTP_UNSENT_ALWAYS that would
					   * pass it: 503; 0: HTTP_MAX_UNSENT_TOTAL_DEFAULT */
	http_handler handler;
	void *app;
	void (*thread_free)(void *app, void *thread_data); /* may be NULL */
	/* Access log: one JSON line per sampled request, written with one
	 * write(2) (open the file O_APPEND). 0: off (the default; fd 0 is never
	 * a log), else the descriptor. Costs one branch per request when off. */
	int access_log_fd;
	double access_log_sample; /* fraction of requests logged, (0, 1] */
} http_config;

typedef struct http_server http_server;

/* Binds and starts the daemon. Returns 0, or -1 with a message in *err
 * (bad address, port in use...). */
int http_start(const http_config *cfg, http_server **out, strbuf *err);
/* The bound port (useful after listening on port 0). */
unsigned http_port(const http_server *s);
/* Connections open now (arg: the http_server). */
unsigned http_connections(void *server);
/* Graceful drain: closes the listening socket (new connections are
 * refused, so a balancer moves on), answers every later response with
 * "Connection: close", and waits until no request is in flight (headers
 * received, answer not yet sent) for 100 ms, or `timeout_ms` passes
 * (then http_stop() cuts what is left). Returns the number
 * still in flight (0 when drained). Call http_stop() next. */
unsigned http_drain(http_server *s, unsigned timeout_ms);
/* Stops accepting; answers any new request 503; waits until every deferred
 * request is answered (their state must outlive the work they wait on);
 * joins the threads and frees the server; http_stop(NULL) does nothing.
 * Connections still open are closed: call http_drain() first for a
 * graceful stop. */
void http_stop(http_server *s);

/* The http layer's own figures in Prometheus text, appended to `out`
 * (arg: the http_server): bytes of answers not yet sent, answers refused
 * for the unsent bounds, requests refused for their framing, and the
 * library's log lines written and suppressed (the last two count for the
 * whole process). */
void http_metrics(void *server, strbuf *out);

/* What http_split_path found. */
enum http_path_status {
	HTTP_PATH_OK = 0,
	HTTP_PATH_BAD_ESCAPE = -1,        /* an invalid %XX escape: 400 */
	HTTP_PATH_TOO_LONG = -2,          /* over HTTP_MAX_PATH bytes: 414 */
	HTTP_PATH_TOO_MANY_SEGMENTS = -3, /* over HTTP_MAX_SEGMENTS: no route has them */
};
#define HTTP_MAX_PATH 8192

/* Splits the raw path `url` ("/a/b%2Fc", no query string) into
 * percent-decoded, NUL-terminated segments kept in `scratch` (reset first),
 * and sets req->n_segs, req->segs (pointing into scratch: valid until it
 * changes) and req->seg_lens. A leading '/' is skipped; empty segments are
 * kept ("/a//b" has three), so an empty id is never mistaken for the next
 * segment; one trailing '/' ends the path ("/a/" has one). Returns an
 * http_path_status; on an error req's segments are not to be used.
 * (Public for tests/test_http.c; the access handler is its only other
 * caller.) */
enum http_path_status http_split_path(const char *url, strbuf *scratch, http_request *req);

/* Looks a query argument up and percent-decodes it ('+' is a space) into
 * `buf` (size `cap`). Returns 1 and *out / *len when present, 0 when absent,
 * -1 when it is malformed or longer than cap - 1. */
int http_query(const http_request *req, const char *key, char *buf, size_t cap,
	       const char **out, size_t *len);

/* Calls fn(arg, key, value) for each query argument, in the order sent,
 * with the key and value as sent (still percent-encoded; value "" for a
 * bare key). Stops at the first fn that returns non-zero and returns it;
 * 0 when every call returned 0. */
typedef int (*http_query_fn)(void *arg, const char *key, const char *value);
int http_query_each(const http_request *req, http_query_fn fn, void *arg);

/* A request header's value, or NULL (borrowed for the request's life). */
const char *http_header(const http_request *req, const char *name);

/* Strict percent-decoding of s[0..n) into out (at least n + 1 bytes);
 * `plus_is_space` for query strings. Returns the decoded length or -1 for
 * an invalid escape. The result is NUL-terminated. */
long http_percent_decode(const char *s, size_t n, char *out, bool plus_is_space);

/* For a handler whose answer waits on something slow (a disk commit): once
 * the handler returns, the connection is suspended, the pool thread goes on
 * serving other connections, and start(arg, d) is called on that thread.
 * Whoever finishes the work then calls http_deferred_answer(d, ...) exactly
 * once, from any thread. What the handler wrote into resp is not sent. */
void http_defer(http_response *resp, http_deferred_start start, void *arg);

/* Answers a deferred request with `status` and body[0..len) (JSON, copied)
 * and wakes its connection; d is not to be used afterwards. Safe from any
 * thread. */
void http_deferred_answer(http_deferred *d, int status, const char *body, size_t len);

/* A streamed answer, for one too large to build in memory (an audience
 * download): after the handler returns, the layer sends the status and
 * headers, then calls fill(arg, buf, max) on the connection's thread each
 * time the socket takes more, until it returns HTTP_STREAM_END; the body
 * goes out chunked, HTTP_STREAM_BLOCK bytes at a time at most, so the
 * answer holds that much memory whatever its length. fill returns the
 * bytes it wrote (1..max), HTTP_STREAM_END, or HTTP_STREAM_ERROR (the
 * connection is cut: the client sees the chunked body end early, never a
 * complete-looking short answer). done(arg) is called once when the answer
 * is over or abandoned (on the same thread, or at http_stop). Whatever the
 * handler wrote into resp->body is not sent; resp->status and
 * content_type are. Returns 0, or -1 (nothing was set up: done was
 * called, answer an error instead). */
#define HTTP_STREAM_BLOCK (32u * 1024)
#define HTTP_STREAM_END (-1L)
#define HTTP_STREAM_ERROR (-2L)
typedef long (*http_stream_fill)(void *arg, char *buf, size_t max);
int http_stream(http_response *resp, http_stream_fill fill, void (*done)(void *arg), void *arg);

/* Writes {"error":{"code":..,"message":..}} into resp with `status`. */
void http_error(http_response *resp, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
