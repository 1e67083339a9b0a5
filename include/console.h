/*
 * console: the marketer's console, GET /console/ (docs/console.md).
 *
 * Its HTML, CSS and JavaScript are compiled into the binary (console/embed.c
 * writes build/console_assets.c from the files in console/ at build time),
 * so every answer comes from memory: no path from a request is ever opened,
 * and a name is only ever compared with the names in the table. The console
 * itself holds no data: it calls the public HTTP API from the browser, with
 * the API's own keys.
 *
 * Every answer carries the same security headers (a strict
 * Content-Security-Policy: scripts and styles from the console's own files
 * only, no inline code, no framing; nosniff; no referrer) and an ETag, so a
 * browser revalidates with If-None-Match and gets a bodiless 304.
 */
#ifndef SHOPKEEPER_CONSOLE_H
#define SHOPKEEPER_CONSOLE_H

#include <stddef.h>

#include "http.h"

/* One embedded file (static data, generated). */
typedef struct console_asset {
	const char *name;          /* "app.js": the last path segment that serves it */
	size_t name_len;
	const unsigned char *data;
	size_t len;
	const char *content_type;
	const char *etag;          /* "\"<16 hex digits>\"", a hash of data */
} console_asset;

/* The generated table, and its length. */
extern const console_asset console_assets[];
extern const size_t console_n_assets;

/* The asset named name[0..len), or NULL. */
const console_asset *console_find(const char *name, size_t len);

/* Answers a GET of the console file name[0..len) ("index.html" for the
 * page itself) into resp: 200 with the file, 304 when `if_none_match`
 * (the request's If-None-Match header, or NULL) names its ETag, or 404.
 * The security headers go on every one of them. */
void console_answer(const char *name, size_t len, const char *if_none_match,
		    http_response *resp);

/* Answers GET /console (no slash): 308 to "console/", so the page's
 * relative links resolve under /console/ (behind a proxy's prefix too). */
void console_redirect(http_response *resp);

#endif
