/*
 * http_listen: the --listen address, parsed and tried before the daemon
 * starts. Private to http.c.
 */
#ifndef SHOPKEEPER_HTTP_LISTEN_H
#define SHOPKEEPER_HTTP_LISTEN_H

#include <sys/socket.h>

#include "strbuf.h"

/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" (numeric addresses only) into
 * *ss and *len; *v6 says whether it is IPv6. Returns 0, or -1 with a
 * message in *err. */
int http_parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len, int *v6,
		      strbuf *err);

/* Binds and closes a throwaway socket on the address. Returns 0 when it
 * could (or when no socket could be made: the library then says what it
 * makes of it), or -1 with a message in *err that names `listen` and the
 * way out (a port in use, a foreign address, a privileged port). */
int http_probe_listen(const struct sockaddr_storage *ss, socklen_t len, const char *listen,
		      strbuf *err);

#endif
