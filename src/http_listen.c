/*
 * http_listen: the --listen address (http_listen.h).
 */
#include "http_listen.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" into a socket address. */
int http_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len, int *v6,
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
	*v6 = ai->ai_family == AF_INET6;
	freeaddrinfo(ai);
	return 0;
bad:
	sb_addf(err, "--listen %s: expected HOST:PORT with a numeric address, e.g. 127.0.0.1:8080 "
		     "or [::1]:8080", listen);
	return -1;
}

/* Binds a throwaway socket to the address first, so that a port in use or
 * a foreign address gets a message that names it and says what to do.
 * Left to the library, the failure reads "Failed to bind to port 0" (it is
 * handed the address, not the port), which sent users looking for port 0
 * (issue 20). The same options as the library's: SO_REUSEADDR, and
 * IPV6_V6ONLY for an IPv6 address. */
int http_probe_listen(const struct sockaddr_storage *ss, socklen_t len, const char *listen,
			strbuf *err)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0; /* let the library say what it makes of it */
	int on = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ss->ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	int rc = bind(fd, (const struct sockaddr *)ss, len);
	int e = errno;
	close(fd);
	if (rc == 0)
		return 0;
	if (e == EADDRINUSE)
		sb_addf(err, "cannot listen on %s: the port is in use (another server, or an "
			     "earlier shopkeeper still running?); stop it, or choose another port "
			     "with --listen HOST:PORT or SHOPKEEPER_LISTEN (make demo PORT=N)", listen);
	else if (e == EADDRNOTAVAIL)
		sb_addf(err, "cannot listen on %s: not an address of this host; use one of its "
			     "own (127.0.0.1 for this machine only, 0.0.0.0 for every interface)",
			listen);
	else if (e == EACCES)
		sb_addf(err, "cannot listen on %s: ports below 1024 need root or "
			     "CAP_NET_BIND_SERVICE; choose a port from 1024 up", listen);
	else
		sb_addf(err, "cannot listen on %s: %s", listen, strerror(e));
	return -1;
}
