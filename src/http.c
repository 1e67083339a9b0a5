/*
 * http: libmicrohttpd glue. See http.h for the contract.
 *
 * Request lifecycle, following libmicrohttpd's examples: the first call for
 * a request only records that it exists (answering then would make the
 * daemon close a connection whose body is unread, defeating keep-alive);
 * body chunks are appended on the next calls; the last call, with no data,
 * runs the handler and queues the answer. Requests without a body carry a
 * static marker instead of allocated state.
 *
 * A deferred request (http_defer) is suspended after its handler returns;
 * the thread that finishes its work stores the answer in the request's
 * state and resumes the connection, and libmicrohttpd calls us once more
 * for it, on its pool thread, to queue that answer.
 *
 * Framing (bug 5 of issue 21): libmicrohttpd 0.9.75 reads a body by the
 * first of two Content-Length headers, takes Content-Length beside
 * Transfer-Encoding, waits forever on a coding it does not know, and cuts
 * the path at a NUL byte. A proxy in front may read the same bytes
 * otherwise, so the rest of a body could pass as a request of its own. The
 * first call for a request checks every header (duplicates included) and
 * the request line's length before anything is routed (http_framing.c),
 * and answers 400 with "Connection: close". What the library hides from us
 * is listed in SECURITY.md "Request framing".
 *
 * Unsent answers: every answer is counted in s->unsent from when it is
 * queued until libmicrohttpd lets it go (sent, or the connection closed);
 * see send_body().
 *
 * Per connection (struct http_conn, the library's socket context): a
 * buffer that answers are sent from (no allocation of ours per request:
 * the handler writes into the thread's buffer, reused, and the answer is
 * copied into the connection's, reused too), and the query string,
 * split once when the request line arrives (http_query.c: a few
 * arguments scanned instead of the library's header list walked per
 * parameter). The access log and the library's own log are in http_log.c.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_framing.h"
#include "http_internal.h"
#include "http_listen.h"
#include "util.h"

/* *req_cls marker for requests without a body; aligned, so that its
 * address is never taken for a URI length (uri_seen). */
static _Alignas(8) char no_body;

static struct http_conn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return info ? info->socket_context : NULL;
}

/* The URI callback leaves the request line's URI length in *req_cls as an
 * odd value: no pointer we store there is odd, and the first call for the
 * request finds it there (libmicrohttpd's docs: the callback's answer is
 * *req_cls from then on). It also keeps the query string: the library
 * splits it in place next. */
static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *c)
{
	(void)cls;
	struct http_conn *hc = conn_of(c);
	if (hc) {
		const char *q = strchr(uri, '?');
		http_conn_split_query(hc, q ? q + 1 : NULL);
	}
	/* Called before the library touches the URI: '?' is still there, and
	 * strlen stops at the first NUL, embedded or final. */
	return (void *)(((uintptr_t)strlen(uri) << 1) | 1);
}

static bool is_uri_len(const void *p)
{
	return ((uintptr_t)p & 1) != 0;
}

static struct upload *upload_new(void)
{
	struct upload *u = xcalloc(1, sizeof(*u));
	atomic_init(&u->deferred.state, DEFER_NONE);
	return u;
}

static void upload_free(struct upload *u)
{
	sb_release(&u->body);
	sb_release(&u->deferred.answer);
	free(u);
}
static _Thread_local struct http_thread *tl_thread;

static struct http_thread *this_thread(http_server *s)
{
	if (tl_thread)
		return tl_thread;
	struct http_thread *t = xcalloc(1, sizeof(*t));
	sb_init(&t->out, 4096);
	sb_init(&t->scratch, 1024);
	t->rng = (uint32_t)(uintptr_t)t | 1u;
	pthread_mutex_lock(&s->threads_lock);
	t->next = s->threads;
	s->threads = t;
	pthread_mutex_unlock(&s->threads_lock);
	tl_thread = t;
	return t;
}

void http_error(http_response *resp, int status, const char *code, const char *fmt, ...)
{
	strbuf msg = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(&msg, fmt, ap);
	va_end(ap);
	/* Messages may quote client bytes; JSON must stay valid UTF-8. */
	if (!utf8_valid(sb_str(&msg), msg.len))
		for (size_t i = 0; i < msg.len; i++)
			if ((unsigned char)msg.buf[i] >= 0x80 || msg.buf[i] == 0)
				msg.buf[i] = '?';
	resp->status = status;
	sb_reset(resp->body);
	sb_adds(resp->body, "{\"error\":{\"code\":");
	sb_add_json_str(resp->body, code, strlen(code));
	sb_adds(resp->body, ",\"message\":");
	sb_add_json_str(resp->body, sb_str(&msg), msg.len);
	sb_adds(resp->body, "}}");
	sb_release(&msg);
}


/* One writer per counter (its thread): no locked instruction needed. */
static inline void count_up(_Atomic unsigned long *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/* The daemon must not unescape: we decode each path segment ourselves. */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *uri)
{
	(void)cls;
	(void)c;
	return strlen(uri);
}

/* An answer's own copy, counted in s->unsent until the library lets it go. */
struct unsent {
	http_server *s;
	size_t len;
	char data[];
};

static void unsent_free(void *cls)
{
	struct unsent *u = cls;
	atomic_fetch_sub_explicit(&u->s->unsent, u->len, memory_order_relaxed);
	free(u);
}

enum { UNSENT_OK, UNSENT_TOO_LARGE, UNSENT_FULL };

/* Counts len bytes in, if the bounds allow it. Two threads near the total
 * may both be refused where one would have fitted: refusing errs safe. */
static int unsent_reserve(http_server *s, size_t len)
{
	if (len > s->max_unsent_conn)
		return UNSENT_TOO_LARGE;
	size_t before = atomic_fetch_add_explicit(&s->unsent, len, memory_order_relaxed);
	if (len > HTTP_UNSENT_ALWAYS && before + len > s->max_unsent_total) {
		atomic_fetch_sub_explicit(&s->unsent, len, memory_order_relaxed);
		return UNSENT_FULL;
	}
	return UNSENT_OK;
}

static void conn_unref(struct http_conn *hc)
{
	if (atomic_fetch_sub_explicit(&hc->refs, 1, memory_order_acq_rel) != 1)
		return;
	sb_release(&hc->out);
	sb_release(&hc->query);
	free(hc);
}

/* The library let go of the response pointing at hc->out. */
static void conn_body_free(void *cls)
{
	struct http_conn *hc = cls;
	atomic_fetch_sub_explicit(&hc->s->unsent, hc->out_counted, memory_order_relaxed);
	hc->out_counted = 0;
	conn_unref(hc);
}

/* Whether hc->out is free for a new answer (no response holds it). */
static bool conn_body_free_now(struct http_conn *hc)
{
	return hc && atomic_load_explicit(&hc->refs, memory_order_acquire) == 1;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)c;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		struct http_conn *hc = xcalloc(1, sizeof(*hc));
		hc->s = cls;
		atomic_init(&hc->refs, 1);
		*socket_context = hc;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
		struct http_conn *hc = *socket_context;
		http_acceptor_closed(hc->s->acceptor);
		conn_unref(hc);
		*socket_context = NULL;
	}
}

/* Queues body (copied) with `status`; `close` adds "Connection: close".
 * The copy goes into hc->out when hc is given, no response holds that
 * buffer and the body is under CONN_BODY_KEEP (the usual case), else into
 * a block of its own.
 * An answer over an unsent bound is replaced by a 503 (and the status
 * changed in *status for the access log). */
static enum MHD_Result send_body(http_server *s, struct MHD_Connection *conn,
				 struct http_conn *hc, int *status, const strbuf *body,
				 const http_response *resp, bool close)
{
	const char *allow = resp ? resp->allow : NULL;
	const char *content_type = resp ? resp->content_type : NULL;
	int why = unsent_reserve(s, body->len);
	if (why != UNSENT_OK) {
		atomic_fetch_add_explicit(&s->refused_unsent, 1, memory_order_relaxed);
		strbuf small = STRBUF_INIT;
		http_response r = { .status = 503, .body = &small };
		if (why == UNSENT_TOO_LARGE)
			http_error(&r, 503, "answer_too_large",
				   "the answer is %zu bytes, over the %zu-byte limit for one answer; "
				   "ask for fewer items (limit, n)", body->len, s->max_unsent_conn);
		else
			http_error(&r, 503, "overloaded",
				   "answers not yet read by their clients hold over %zu bytes; try "
				   "again later", s->max_unsent_total);
		*status = 503;
		enum MHD_Result ret = send_body(s, conn, NULL, status, &small, NULL, close);
		sb_release(&small);
		return ret;
	}
	struct MHD_Response *r;
	if (body->len < CONN_BODY_KEEP && conn_body_free_now(hc)) {
		/* The response holds the connection's buffer (and a reference
		 * to hc) until conn_body_free. */
		sb_reset(&hc->out);
		sb_add(&hc->out, body->buf, body->len);
		hc->out_counted = body->len;
		atomic_fetch_add_explicit(&hc->refs, 1, memory_order_relaxed);
		r = MHD_create_response_from_buffer_with_free_callback_cls(
			hc->out.len, hc->out.buf, conn_body_free, hc);
		if (!r) {
			conn_body_free(hc);
			return MHD_NO;
		}
	} else {
		/* A copy in a block that knows its size for the count. */
		struct unsent *u = xmalloc(sizeof(*u) + body->len);
		u->s = s;
		u->len = body->len;
		if (body->len)
			memcpy(u->data, body->buf, body->len);
		r = MHD_create_response_from_buffer_with_free_callback_cls(body->len, u->data,
									   unsent_free, u);
		if (!r) {
			unsent_free(u);
			return MHD_NO;
		}
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				content_type ? content_type : "application/json; charset=utf-8");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	if (resp && resp->www_authenticate)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, resp->www_authenticate);
	for (const char *const *h = resp ? resp->headers : NULL; h && h[0] && h[1]; h += 2)
		MHD_add_response_header(r, h[0], h[1]);
	if (close || atomic_load_explicit(&s->draining, memory_order_relaxed))
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)*status, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- streamed answers ------------------------------------------------------ */

struct http_stream {
	http_stream_fill fill;
	void (*done)(void *arg);
	void *arg;
};

int http_stream(http_response *resp, http_stream_fill fill, void (*done)(void *arg), void *arg)
{
	struct http_stream *st = malloc(sizeof(*st));
	if (!st) {
		done(arg);
		return -1;
	}
	st->fill = fill;
	st->done = done;
	st->arg = arg;
	resp->stream = st;
	return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct http_stream *st = cls;
	long n = st->fill(st->arg, buf, max);
	if (n == HTTP_STREAM_END)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n <= 0 || (size_t)n > max)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct http_stream *st = cls;
	st->done(st->arg);
	free(st);
}

/* Queues resp's stream. Its memory is the library's block (not counted in
 * the unsent bounds: it does not grow with the answer). */
static enum MHD_Result send_stream(http_server *s, struct MHD_Connection *conn,
				   const http_response *resp)
{
	struct MHD_Response *r = MHD_create_response_from_callback(
		MHD_SIZE_UNKNOWN, HTTP_STREAM_BLOCK, stream_read, resp->stream, stream_free);
	if (!r) {
		stream_free(resp->stream);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				resp->content_type ? resp->content_type
						   : "application/json; charset=utf-8");
	if (atomic_load_explicit(&s->draining, memory_order_relaxed))
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned)resp->status, r);
	MHD_destroy_response(r);
	return ret;
}

void http_defer(http_response *resp, http_deferred_start start, void *arg)
{
	resp->defer = start;
	resp->defer_arg = arg;
}

/* Suspends a request whose handler deferred, then lets the work start:
 * in that order, so that an answer can never arrive for a connection that
 * is not suspended yet. */
static enum MHD_Result suspend(http_server *s, struct MHD_Connection *conn, void **req_cls,
			       const http_response *resp, const struct timespec *logged_t0,
			       const char *method, const char *url)
{
	if (*req_cls == &no_body)
		*req_cls = upload_new();
	struct upload *u = *req_cls;
	struct http_deferred *d = &u->deferred;
	d->conn = conn;
	d->server = s;
	d->logged = logged_t0 != NULL;
	if (logged_t0)
		d->t0 = *logged_t0;
	d->method = method;
	d->url = url;
	sb_reset(&d->answer);
	atomic_store_explicit(&d->state, DEFER_WAITING, memory_order_relaxed);
	atomic_fetch_add(&s->deferred, 1);
	MHD_suspend_connection(conn);
	resp->defer(resp->defer_arg, d);
	return MHD_YES;
}

void http_deferred_answer(http_deferred *d, int status, const char *body, size_t len)
{
	d->status = status;
	sb_reset(&d->answer);
	sb_add(&d->answer, body, len);
	atomic_store_explicit(&d->state, DEFER_ANSWERED, memory_order_release);
	MHD_resume_connection(d->conn);
}

/* Answers an error on the request's first call, with "Connection: close":
 * what is left of the request is never read. */
static enum MHD_Result answer_now(http_server *s, struct http_thread *t,
				  struct MHD_Connection *conn, const char *method, const char *url,
				  int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 8, 9)));

static enum MHD_Result answer_now(http_server *s, struct http_thread *t,
				  struct MHD_Connection *conn, const char *method, const char *url,
				  int status, const char *code, const char *fmt, ...)
{
	struct timespec t0;
	bool logged = s->cfg.access_log_fd && http_log_sampled(s, t);
	if (logged)
		clock_gettime(CLOCK_MONOTONIC, &t0);
	strbuf msg = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(&msg, fmt, ap);
	va_end(ap);
	sb_reset(&t->out);
	http_response resp = { .status = status, .body = &t->out };
	http_error(&resp, status, code, "%s", sb_str(&msg));
	sb_release(&msg);
	enum MHD_Result ret = send_body(s, conn, NULL, &resp.status, resp.body, NULL, true);
	if (logged)
		http_access_log(s, method, url, resp.status, resp.body->len, &t0);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	http_server *s = cls;

	if (*req_cls == NULL || is_uri_len(*req_cls)) {
		size_t uri_len = *req_cls ? (size_t)((uintptr_t)*req_cls >> 1) : SIZE_MAX;
		struct http_thread *t = this_thread(s);
		count_up(&t->started);
		*req_cls = &no_body;
		/* Before any routing, and before the library reads a body
		 * (answering now makes it close the connection). */
		const char *bad = http_framing_error(conn, url, version, uri_len, s->conn_memory);
		if (bad) {
			atomic_fetch_add_explicit(&s->refused_framing, 1, memory_order_relaxed);
			return answer_now(s, t, conn, method, url, 400, "bad_request",
					  "request framing refused: %s", bad);
		}
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_TRANSFER_ENCODING);
		if (!cl && !te)
			return MHD_YES;
		if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body)
			/* Refused before it is read. */
			return answer_now(s, t, conn, method, url, 413, "body_too_large",
					  "request body is over the %zu-byte limit", s->cfg.max_body);
		*req_cls = upload_new();
		return MHD_YES;
	}

	if (*upload_data_size != 0) {
		if (*req_cls != &no_body) {
			struct upload *u = *req_cls;
			if (!u->too_large && u->body.len + *upload_data_size <= s->cfg.max_body)
				sb_add(&u->body, upload_data, *upload_data_size);
			else
				u->too_large = 1; /* keep reading, then answer 413 */
		}
		*upload_data_size = 0;
		return MHD_YES;
	}

	if (*req_cls != &no_body) {
		struct upload *u = *req_cls;
		int state = atomic_load_explicit(&u->deferred.state, memory_order_acquire);
		if (state == DEFER_WAITING)
			return MHD_YES; /* not ours to answer yet */
		if (state == DEFER_ANSWERED) {
			/* Resumed: the answer is in; no handler runs again. */
			atomic_store_explicit(&u->deferred.state, DEFER_NONE, memory_order_relaxed);
			atomic_fetch_sub(&s->deferred, 1);
			struct http_deferred *d = &u->deferred;
			enum MHD_Result ret = send_body(s, conn, NULL, &d->status, &d->answer, NULL, false);
			if (d->logged)
				http_access_log(s, d->method, d->url, d->status, d->answer.len, &d->t0);
			return ret;
		}
	}

	struct http_thread *t = this_thread(s);
	struct http_conn *hc = conn_of(conn);
	struct timespec t0;
	bool logged = s->cfg.access_log_fd && http_log_sampled(s, t);
	if (logged)
		clock_gettime(CLOCK_MONOTONIC, &t0);
	sb_reset(&t->out);
	http_response resp = { .status = 200, .body = &t->out };
	if (atomic_load_explicit(&s->stopping, memory_order_relaxed)) {
		/* Draining: nothing new may start (and defer) now. */
		http_error(&resp, 503, "unavailable", "the server is shutting down");
		return send_body(s, conn, hc, &resp.status, resp.body, NULL, false);
	}
	http_request req;
	memset(&req, 0, sizeof(req));
	req.method = method;
	req.url = url;
	req.conn = conn;
	req.conn_state = hc;
	req.thread_data = &t->app_data;
	if (*req_cls != &no_body) {
		struct upload *u = *req_cls;
		if (u->too_large) {
			http_error(&resp, 413, "body_too_large", "request body is over the %zu-byte limit",
				   s->cfg.max_body);
			enum MHD_Result ret = send_body(s, conn, hc, &resp.status, resp.body, NULL, false);
			if (logged)
				http_access_log(s, method, url, resp.status, resp.body->len, &t0);
			return ret;
		}
		if (!u->body.buf)
			sb_grow(&u->body, 0);
		req.body = u->body.buf;
		req.body_len = u->body.len;
	}

	enum http_path_status rc = http_split_path(url, &t->scratch, &req);
	if (rc == HTTP_PATH_BAD_ESCAPE)
		http_error(&resp, 400, "bad_request", "invalid percent-encoding in the path");
	else if (rc == HTTP_PATH_TOO_LONG)
		http_error(&resp, 414, "uri_too_long", "the path is longer than %d bytes",
			   HTTP_MAX_PATH);
	else if (rc == HTTP_PATH_TOO_MANY_SEGMENTS)
		http_error(&resp, 404, "not_found", "no route has more than %d path segments",
			   HTTP_MAX_SEGMENTS);
	else
		s->cfg.handler(s->cfg.app, &req, &resp);
	if (resp.defer)
		return suspend(s, conn, req_cls, &resp, logged ? &t0 : NULL, method, url);
	if (resp.stream) {
		enum MHD_Result ret = send_stream(s, conn, &resp);
		if (logged)
			http_access_log(s, method, url, resp.status, 0, &t0); /* length unknown */
		return ret;
	}
	enum MHD_Result ret = send_body(s, conn, hc, &resp.status, resp.body, &resp, false);
	if (logged)
		http_access_log(s, method, url, resp.status, resp.body->len, &t0);
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)conn;
	(void)toe;
	(void)cls;
	/* On the connection's thread, which counted the start (never allocate
	 * here: at shutdown this could be another thread). */
	if (!*req_cls || is_uri_len(*req_cls)) {
		*req_cls = NULL; /* refused by the library before our first call */
		return;
	}
	if (tl_thread)
		count_up(&tl_thread->done);
	if (*req_cls != &no_body) {
		struct upload *u = *req_cls;
		/* Closed before its deferred answer was queued. */
		if (atomic_load(&u->deferred.state) != DEFER_NONE)
			atomic_fetch_sub(&((http_server *)cls)->deferred, 1);
		upload_free(u);
	}
	*req_cls = NULL;
}

int http_start(const http_config *cfg, http_server **out, strbuf *err)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	if (http_parse_listen(cfg->listen, &ss, &sslen, err) != 0)
		return -1;
	int listen_fd = http_listen_open(&ss, sslen, cfg->listen, err);
	if (listen_fd < 0)
		return -1;

	http_server *s = xcalloc(1, sizeof(*s));
	s->cfg = *cfg;
	pthread_mutex_init(&s->threads_lock, NULL);
	double rate = cfg->access_log_sample;
	s->log_all = rate >= 1.0;
	s->log_threshold = rate > 0 ? (uint32_t)(rate * 4294967295.0) : 0;
	s->conn_memory = cfg->connection_memory ? cfg->connection_memory
						: HTTP_CONNECTION_MEMORY_DEFAULT;
	s->max_unsent_conn = cfg->max_unsent_per_connection ? cfg->max_unsent_per_connection
							    : HTTP_MAX_UNSENT_PER_CONNECTION_DEFAULT;
	s->max_unsent_total = cfg->max_unsent_total ? cfg->max_unsent_total
						    : HTTP_MAX_UNSENT_TOTAL_DEFAULT;
	/* The 503 that replaces a refused answer must itself fit. */
	s->max_unsent_conn = MAX(s->max_unsent_conn, (size_t)HTTP_UNSENT_ALWAYS);
	atomic_init(&s->unsent, 0);
	/* No listening socket of the library's: ours is accepted from by
	 * http_listen.c's thread (why: http_listen.h). ITC: how a connection
	 * handed over reaches its pool thread; suspend/resume: deferred
	 * answers (http_defer). */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
			 MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_NO_LISTEN_SOCKET;
	unsigned max_open = cfg->max_connections ? cfg->max_connections : 10000;
	/* The library's limit must never bind (http_acceptor_start): each pool
	 * thread gets limit/threads, and holds up to max_open open plus as
	 * many closed ones not yet cleaned up. */
	uint64_t library_limit = 2 * (uint64_t)max_open * (cfg->threads > 1 ? cfg->threads : 1);
	/* One thread: no pool, the polling thread serves (a pool size of 0
	 * or 1 says the same, with a warning in the log). */
	struct MHD_OptionItem pool[] = {
		{ MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)cfg->threads, NULL },
		{ MHD_OPTION_END, 0, NULL },
	};
	if (cfg->threads <= 1)
		pool[0].option = MHD_OPTION_END;
	s->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, s,
		MHD_OPTION_EXTERNAL_LOGGER, http_log_library, s,
		MHD_OPTION_ARRAY, pool,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->timeout_s,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
		MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, s,
		MHD_OPTION_URI_LOG_CALLBACK, uri_seen, s,
		/* Room for a request line past HTTP_MAX_PATH, so that over-long
		 * paths reach us and get a JSON 414 instead of the library's page.
		 * Not more: the library clears this pool (and more) with memset
		 * for every request, which at 24 KiB cost a tenth of a
		 * recommendation's instructions and flushed its scratch from L1. */
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, s->conn_memory,
		MHD_OPTION_CONNECTION_LIMIT,
		(unsigned int)(library_limit < UINT_MAX ? library_limit : UINT_MAX),
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)cfg->max_connections_per_ip,
		MHD_OPTION_END);
	if (!s->daemon) {
		sb_addf(err, "cannot start the HTTP server on %s (see the library's message above)",
			cfg->listen);
		close(listen_fd);
		goto fail;
	}
	s->port = http_listen_port(listen_fd);
	if (http_acceptor_start(listen_fd, s->daemon, max_open, &s->acceptor, err) != 0) {
		MHD_stop_daemon(s->daemon);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	pthread_mutex_destroy(&s->threads_lock);
	free(s);
	return -1;
}

unsigned http_port(const http_server *s)
{
	return s->port;
}

unsigned http_connections(void *server)
{
	http_server *s = server;
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return info ? info->num_connections : 0;
}

void http_metrics(void *server, strbuf *out)
{
	http_server *s = server;
	unsigned long lines_written, lines_suppressed;
	http_log_counts(&lines_written, &lines_suppressed);
	sb_addf(out, "# HELP shopkeeper_http_unsent_bytes Bytes of answers queued and not yet "
		     "sent (clients that do not read hold them).\n"
		     "# TYPE shopkeeper_http_unsent_bytes gauge\n"
		     "shopkeeper_http_unsent_bytes %zu\n"
		     "# HELP shopkeeper_http_unsent_refused_total Answers replaced by a 503 for the "
		     "unsent bounds.\n"
		     "# TYPE shopkeeper_http_unsent_refused_total counter\n"
		     "shopkeeper_http_unsent_refused_total %lu\n"
		     "# HELP shopkeeper_http_framing_refused_total Requests refused for their "
		     "framing (duplicate lengths, codings, NUL bytes).\n"
		     "# TYPE shopkeeper_http_framing_refused_total counter\n"
		     "shopkeeper_http_framing_refused_total %lu\n"
		     "# HELP shopkeeper_http_log_lines_total Lines the HTTP library logged, by "
		     "whether the rate limit let them through.\n"
		     "# TYPE shopkeeper_http_log_lines_total counter\n"
		     "shopkeeper_http_log_lines_total{outcome=\"written\"} %lu\n"
		     "shopkeeper_http_log_lines_total{outcome=\"suppressed\"} %lu\n",
		atomic_load_explicit(&s->unsent, memory_order_relaxed),
		atomic_load_explicit(&s->refused_unsent, memory_order_relaxed),
		atomic_load_explicit(&s->refused_framing, memory_order_relaxed),
		lines_written, lines_suppressed);
}

static unsigned in_flight(http_server *s)
{
	unsigned long started = 0, done = 0;
	pthread_mutex_lock(&s->threads_lock);
	for (struct http_thread *t = s->threads; t; t = t->next) {
		/* done first: a request counted done is always counted started. */
		done += atomic_load_explicit(&t->done, memory_order_acquire);
		started += atomic_load_explicit(&t->started, memory_order_acquire);
	}
	pthread_mutex_unlock(&s->threads_lock);
	return started > done ? (unsigned)(started - done) : 0;
}

unsigned http_drain(http_server *s, unsigned timeout_ms)
{
	if (!s)
		return 0;
	atomic_store(&s->draining, 1);
	http_acceptor_stop(s->acceptor); /* new connections are refused */
	/* Drained once nothing has been in flight for 100 ms: a keep-alive
	 * client that got its last answer before the drain began may be about
	 * to send its next request on the open connection. */
	struct timespec pause = { 0, 5 * 1000000 };
	unsigned left = in_flight(s), quiet = 0;
	for (unsigned waited = 0; quiet < 20 && waited < timeout_ms; waited += 5) {
		nanosleep(&pause, NULL);
		left = in_flight(s);
		quiet = left ? 0 : quiet + 1;
	}
	return left;
}

void http_stop(http_server *s)
{
	if (!s)
		return;
	http_acceptor_stop(s->acceptor);
	atomic_store(&s->stopping, true);
	/* Deferred requests wait on work elsewhere (the event writer commits
	 * in milliseconds) that will write into their state: they must all be
	 * answered before the daemon frees it. No new one can start now. */
	for (unsigned waited = 0; atomic_load(&s->deferred) > 0; waited++) {
		if (waited % 500 == 499)
			util_log("http: waiting for %u deferred requests", atomic_load(&s->deferred));
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	MHD_stop_daemon(s->daemon);
	http_acceptor_free(s->acceptor);
	/* Every pool thread has exited: their buffers can go. */
	struct http_thread *t = s->threads;
	while (t) {
		struct http_thread *next = t->next;
		if (t->app_data && s->cfg.thread_free)
			s->cfg.thread_free(s->cfg.app, t->app_data);
		sb_release(&t->out);
		sb_release(&t->scratch);
		free(t);
		t = next;
	}
	pthread_mutex_destroy(&s->threads_lock);
	free(s);
}
