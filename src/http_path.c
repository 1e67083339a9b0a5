/*
 * http_path: request paths, percent-decoded and split into segments
 * (http.h: http_percent_decode, http_split_path).
 */
#include "http.h"

#include <string.h>

#include "util.h"

long http_percent_decode(const char *s, size_t n, char *out, bool plus_is_space)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= n || (hi = util_hexval(s[i + 1])) < 0 || (lo = util_hexval(s[i + 2])) < 0)
				return -1;
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			out[o++] = ' ';
		} else {
			out[o++] = c;
		}
	}
	out[o] = '\0';
	return (long)o;
}

enum http_path_status http_split_path(const char *url, strbuf *scratch, http_request *req)
{
	size_t n = strlen(url);
	req->n_segs = 0;
	if (n > HTTP_MAX_PATH)
		return HTTP_PATH_TOO_LONG;
	sb_reset(scratch);
	sb_grow(scratch, n + HTTP_MAX_SEGMENTS + 1);
	size_t offs[HTTP_MAX_SEGMENTS];
	const char *p = url;
	if (*p == '/')
		p++;
	while (*p) {
		const char *end = strchr(p, '/');
		if (!end)
			end = p + strlen(p);
		if (req->n_segs == HTTP_MAX_SEGMENTS)
			return HTTP_PATH_TOO_MANY_SEGMENTS;
		offs[req->n_segs] = scratch->len;
		long got = http_percent_decode(p, (size_t)(end - p), scratch->buf + scratch->len,
					       false);
		if (got < 0)
			return HTTP_PATH_BAD_ESCAPE;
		req->seg_lens[req->n_segs++] = (size_t)got;
		scratch->len += (size_t)got + 1;
		p = *end ? end + 1 : end;
	}
	for (unsigned i = 0; i < req->n_segs; i++)
		req->segs[i] = scratch->buf + offs[i];
	return HTTP_PATH_OK;
}
