/*
 * http_listen: the --listen address and the listening socket. The socket is
 * ours, not libmicrohttpd's: a thread of ours accepts and hands each
 * connection to the daemon, and closing it at a drain is ours to do.
 * Private to http.c.
 *
 * Why not the library's own listening socket: MHD_quiesce_daemon() in
 * 0.9.75, with a thread pool on epoll, removes the socket from each pool
 * thread's epoll set while that thread may be removing it too (at the
 * connection limit, or on seeing the quiesce flag), and the loser aborts
 * the process ("Failed to remove listen FD from epoll set"): a SIGTERM
 * under connection churn ended 2 runs in 30 with SIGABRT.
 */
#ifndef SHOPKEEPER_HTTP_LISTEN_H
#define SHOPKEEPER_HTTP_LISTEN_H

#include <microhttpd.h>
#include <sys/socket.h>

#include "strbuf.h"

/* Connections the kernel completes while none is accepted (listen(2)). */
#define HTTP_LISTEN_BACKLOG 1024

/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" (numeric addresses only) into
 * *ss and *len. Returns 0, or -1 with a message in *err. */
int http_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len,
		      strbuf *err);

/* Opens the listening socket: SO_REUSEADDR, IPV6_V6ONLY for an IPv6
 * address, bound, listening with HTTP_LISTEN_BACKLOG. Returns the socket
 * (owned by the caller), or -1 with a message in *err that names `listen`
 * and the way out (a port in use, a foreign address, a privileged port). */
int http_listen_open(const struct sockaddr_storage *ss, socklen_t len, const char *where,
		     strbuf *err);

/* The port a listening socket is bound to (0 if it cannot be read). */
unsigned http_listen_port(int fd);

typedef struct http_acceptor http_acceptor;

/* Starts the thread that accepts connections on `fd` (owned from now on,
 * closed by http_acceptor_free) and hands each to `daemon` with
 * MHD_add_connection (the daemon then enforces the per-address limit).
 * At most `max_open` handed connections are open at once: at the limit
 * nothing is accepted and new connections wait in the listen backlog, as
 * they would in front of the library's own socket. The daemon must have
 * a connection limit of its own that this never reaches (its per-thread
 * share is checked without counting connections still in hand-over, and
 * would close them). *out is set before the thread starts (the daemon's
 * close notices may use it at once). Returns 0, or -1 with a message in
 * *err (fd closed, *out NULL). */
int http_acceptor_start(int fd, struct MHD_Daemon *daemon, unsigned max_open,
			http_acceptor **out, strbuf *err);

/* A connection this acceptor handed over has closed (the library's
 * MHD_CONNECTION_NOTIFY_CLOSED). One atomic add, and a lock only when the
 * acceptor waits at the limit. */
void http_acceptor_closed(http_acceptor *a);

/* Stops accepting and closes the listening socket: a connection not yet
 * accepted is refused, one already handed over is served. Returns when
 * the thread has ended. Idempotent; any thread but the acceptor's. */
void http_acceptor_stop(http_acceptor *a);

/* http_acceptor_stop, then frees. NULL is a no-op. */
void http_acceptor_free(http_acceptor *a);

#endif
