/*
 * http_framing: the request framing checks of bug 5 of issue 21 (request
 * smuggling through libmicrohttpd 0.9.75). Private to http.c, which calls
 * them in the first call for each request, before anything is routed.
 * SECURITY.md "Request framing" lists what is refused and why, and what
 * the library hides from us.
 */
#ifndef SHOPKEEPER_HTTP_FRAMING_H
#define SHOPKEEPER_HTTP_FRAMING_H

#include <microhttpd.h>
#include <stddef.h>

/* Why the request's framing is refused (a static string for the 400's
 * message), or NULL when it is sound: two Content-Length headers, one that
 * is not a number, Content-Length with Transfer-Encoding, a coding other
 * than chunked, Transfer-Encoding before HTTP/1.1, a header name no token
 * makes, or a NUL in the request line. `url` and `version` are the access
 * handler's; `uri_len` the URI's length as the URI callback saw it
 * (SIZE_MAX: unknown); the NUL check runs only when both strings lie in
 * the connection's buffer of `conn_memory` bytes. */
const char *http_framing_error(struct MHD_Connection *conn, const char *url, const char *version,
			       size_t uri_len, size_t conn_memory);

#endif
