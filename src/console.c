/*
 * console: serves the embedded console files (console.h).
 */
#include "console.h"

#include <string.h>

/* Scripts, styles, images and API calls from this origin only; no inline
 * script or style (the console has none, so an injected one cannot run);
 * no plugins, no <base>, no framing (clickjacking on the erasure button).
 * blob: for the downloads the console builds from fetched answers. */
#define CONSOLE_CSP                                                                   \
	"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "    \
	"frame-ancestors 'none'"

/* Header pairs, then the ETag pair filled per answer, then NULL. */
enum { FIXED_HEADERS = 5 };
#define SECURITY_HEADERS                                                   \
	"Content-Security-Policy", CONSOLE_CSP, "X-Content-Type-Options",  \
		"nosniff", "X-Frame-Options", "DENY", "Referrer-Policy",   \
		"no-referrer", /* revalidate every time: a new binary may  \
				* serve new files under the same names */ \
		"Cache-Control", "no-cache"

static const char *const plain_headers[] = { SECURITY_HEADERS, NULL };

const console_asset *console_find(const char *name, size_t len)
{
	for (size_t i = 0; i < console_n_assets; i++)
		if (console_assets[i].name_len == len && memcmp(console_assets[i].name, name, len) == 0)
			return &console_assets[i];
	return NULL;
}

/* Whether an If-None-Match value names etag ("*", or one of a list, weak
 * or strong: a GET compares weakly). */
static bool etag_matches(const char *inm, const char *etag)
{
	if (!inm)
		return false;
	while (*inm == ' ')
		inm++;
	if (strcmp(inm, "*") == 0)
		return true;
	size_t n = strlen(etag);
	for (const char *p = strstr(inm, etag); p; p = strstr(p + 1, etag)) {
		char after = p[n];
		if (after == '\0' || after == ',' || after == ' ')
			return true;
	}
	return false;
}

void console_answer(const char *name, size_t len, const char *if_none_match,
		    http_response *resp)
{
	/* The ETag differs per answer; the array lives until this thread's
	 * next request, which the http layer's contract asks for. */
	static _Thread_local const char *headers[2 * FIXED_HEADERS + 3] = { SECURITY_HEADERS };
	const console_asset *a = console_find(name, len);
	if (!a) {
		resp->headers = plain_headers;
		http_error(resp, 404, "not_found", "the console has no file %.*s",
			   (int)(len > 64 ? 64 : len), name);
		return;
	}
	headers[2 * FIXED_HEADERS] = "ETag";
	headers[2 * FIXED_HEADERS + 1] = a->etag;
	headers[2 * FIXED_HEADERS + 2] = NULL;
	resp->headers = headers;
	resp->content_type = a->content_type;
	sb_reset(resp->body);
	if (etag_matches(if_none_match, a->etag)) {
		resp->status = 304;
		return;
	}
	sb_add(resp->body, a->data, a->len);
}

void console_redirect(http_response *resp)
{
	static const char *const headers[] = { SECURITY_HEADERS, "Location", "console/", NULL };
	resp->status = 308;
	resp->headers = headers;
	sb_adds(resp->body, "{\"location\":\"console/\"}");
}
