/*
 * http_listen: the --listen address and the listening socket, accepted
 * from by a thread of ours (http_listen.h says why).
 */
#include "http_listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" into a socket address. */
int http_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len,
			strbuf *err)
{
	char host[256];
	const char *port;
	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');
		if (!close || close[1] != ':' || (size_t)(close - listen - 1) >= sizeof(host))
			goto bad;
		memcpy(host, listen + 1, (size_t)(close - listen - 1));
		host[close - listen - 1] = '\0';
		port = close + 2;
	} else {
		const char *colon = strrchr(listen, ':');
		if (!colon || (size_t)(colon - listen) >= sizeof(host))
			goto bad;
		memcpy(host, listen, (size_t)(colon - listen));
		host[colon - listen] = '\0';
		port = colon + 1;
		if (!host[0])
			strcpy(host, "0.0.0.0");
	}
	char *end;
	long p = strtol(port, &end, 10);
	if (!*port || *end || p < 0 || p > 65535)
		goto bad;
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
		goto bad;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
bad:
	sb_addf(err, "--listen %s: expected HOST:PORT with a numeric address, e.g. 127.0.0.1:8080 "
		     "or [::1]:8080", listen);
	return -1;
}

/* The same options as the library would set: SO_REUSEADDR, and
 * IPV6_V6ONLY for an IPv6 address. A failure names the address and what
 * to do: left to the library it read "Failed to bind to port 0" (it is
 * handed the address, not the port), which sent users looking for port 0
 * (issue 20). */
int http_listen_open(const struct sockaddr_storage *ss, socklen_t len, const char *where,
		     strbuf *err)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		sb_addf(err, "cannot listen on %s: no socket: %s", where, strerror(errno));
		return -1;
	}
	int on = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ss->ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (const struct sockaddr *)ss, len) == 0 &&
	    listen(fd, HTTP_LISTEN_BACKLOG) == 0)
		return fd;
	int e = errno;
	close(fd);
	if (e == EADDRINUSE)
		sb_addf(err, "cannot listen on %s: the port is in use (another server, or an "
			     "earlier shopkeeper still running?); stop it, or choose another port "
			     "with --listen HOST:PORT or SHOPKEEPER_LISTEN (make demo PORT=N)", where);
	else if (e == EADDRNOTAVAIL)
		sb_addf(err, "cannot listen on %s: not an address of this host; use one of its "
			     "own (127.0.0.1 for this machine only, 0.0.0.0 for every interface)",
			where);
	else if (e == EACCES)
		sb_addf(err, "cannot listen on %s: ports below 1024 need root or "
			     "CAP_NET_BIND_SERVICE; choose a port from 1024 up", where);
	else
		sb_addf(err, "cannot listen on %s: %s", where, strerror(e));
	return -1;
}

unsigned http_listen_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

struct http_acceptor {
	int fd;
	struct MHD_Daemon *daemon;
	unsigned max_open;
	atomic_uint open;  /* handed over and not yet closed */
	atomic_bool stop;
	pthread_mutex_t lock; /* with `room`: the wait at the limit only */
	pthread_cond_t room;
	pthread_t thread;
};

/* Waits until a handed connection closes or the acceptor is stopped.
 * Returns false when stopped. The count is read under the lock that
 * http_acceptor_closed takes after its decrement, so no wake-up is lost. */
static bool wait_for_room(http_acceptor *a)
{
	pthread_mutex_lock(&a->lock);
	while (atomic_load(&a->open) >= a->max_open && !atomic_load(&a->stop))
		pthread_cond_wait(&a->room, &a->lock);
	pthread_mutex_unlock(&a->lock);
	return !atomic_load(&a->stop);
}

/* accept(2) errors that concern one connection (the client gave up, or
 * its network did): the next one may be fine. */
static bool accept_error_is_transient(int e)
{
	switch (e) {
	case EINTR: case EAGAIN: case ECONNABORTED: case EPROTO: case ENETDOWN:
	case ENOPROTOOPT: case EHOSTDOWN: case ENONET: case EHOSTUNREACH:
	case EOPNOTSUPP: case ENETUNREACH: case EPERM:
		return true;
	default:
		return false;
	}
}

static void *accept_loop(void *arg)
{
	http_acceptor *a = arg;
	unsigned long failed = 0; /* in a row, for the log */
	while (!atomic_load(&a->stop)) {
		if (atomic_load(&a->open) >= a->max_open && !wait_for_room(a))
			break;
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int c = accept4(a->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			int e = errno;
			if (atomic_load(&a->stop))
				break; /* http_acceptor_stop shut the socket down */
			if (accept_error_is_transient(e))
				continue;
			/* Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS,
			 * ENOMEM): the connection stays in the backlog, and
			 * retrying at once would spin on a core. */
			if (failed++ % 100 == 0)
				util_log("http: cannot accept a connection: %s (%lu in a row); "
					 "retrying every 10 ms", strerror(e), failed);
			nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
			continue;
		}
		failed = 0;
		atomic_fetch_add(&a->open, 1);
		/* On MHD_NO the library has closed it (the per-address limit,
		 * or no memory) and will not report it closed. Not counted
		 * back: one it took and then could not set up (no memory for
		 * its pool, before it reported it started); the limit is then
		 * one lower until the server restarts. */
		if (MHD_add_connection(a->daemon, c, (struct sockaddr *)&peer, len) != MHD_YES)
			http_acceptor_closed(a);
	}
	return NULL;
}

int http_acceptor_start(int fd, struct MHD_Daemon *daemon, unsigned max_open,
			http_acceptor **out, strbuf *err)
{
	http_acceptor *a = xcalloc(1, sizeof(*a));
	a->fd = fd;
	a->daemon = daemon;
	a->max_open = max_open ? max_open : 1;
	atomic_init(&a->open, 0);
	atomic_init(&a->stop, false);
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->room, NULL);
	/* Before the thread starts: a connection it hands over may close,
	 * and be reported to http_acceptor_closed(*out), at once. */
	*out = a;
	int rc = pthread_create(&a->thread, NULL, accept_loop, a);
	if (rc != 0) {
		*out = NULL;
		sb_addf(err, "cannot start the accepting thread: %s", strerror(rc));
		pthread_cond_destroy(&a->room);
		pthread_mutex_destroy(&a->lock);
		close(fd);
		free(a);
		return -1;
	}
	pthread_setname_np(a->thread, "sk-accept");
	return 0;
}

void http_acceptor_closed(http_acceptor *a)
{
	if (atomic_fetch_sub(&a->open, 1) >= a->max_open) {
		pthread_mutex_lock(&a->lock);
		pthread_cond_signal(&a->room);
		pthread_mutex_unlock(&a->lock);
	}
}

void http_acceptor_stop(http_acceptor *a)
{
	if (!a || atomic_exchange(&a->stop, true))
		return;
	/* Wakes an accept(2) in progress, which then fails with EINVAL; the
	 * kernel refuses connections from here on (and resets those left in
	 * the backlog). */
	(void)shutdown(a->fd, SHUT_RDWR);
	pthread_mutex_lock(&a->lock);
	pthread_cond_broadcast(&a->room);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	close(a->fd);
	a->fd = -1;
}

void http_acceptor_free(http_acceptor *a)
{
	if (!a)
		return;
	http_acceptor_stop(a);
	pthread_cond_destroy(&a->room);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
