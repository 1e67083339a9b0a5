/*
 * http_query: the query string of a request, split once per request by
 * the URI callback (http_conn_split_query) and looked up by http_query and
 * http_query_each without walking libmicrohttpd's header list per
 * parameter; the library's own list answers when a request has more
 * arguments than the connection keeps. See http.h for the contract.
 */
#include <microhttpd.h>
#include <stdbool.h>
#include <string.h>

#include "http.h"
#include "http_internal.h"

void http_conn_split_query(struct http_conn *hc, const char *q)
{
	hc->n_args = 0;
	hc->args_overflow = false;
	if (!q)
		return;
	size_t n = strlen(q);
	sb_reset(&hc->query);
	sb_add(&hc->query, q, n);
	char *p = hc->query.buf, *end = p + n;
	for (char *c = p; c < end; c++)
		if (*c == '+')
			*c = ' ';
	while (p < end) {
		if (hc->n_args == CONN_MAX_ARGS) {
			hc->args_overflow = true;
			return;
		}
		char *amp = memchr(p, '&', (size_t)(end - p));
		char *stop = amp ? amp : end;
		char *eq = memchr(p, '=', (size_t)(stop - p));
		*stop = '\0';
		if (eq)
			*eq = '\0';
		hc->arg_key[hc->n_args] = p;
		hc->arg_key_len[hc->n_args] = (size_t)((eq ? eq : stop) - p);
		hc->arg_val[hc->n_args] = eq ? eq + 1 : NULL;
		hc->n_args++;
		p = stop + 1;
	}
}

/* ASCII case-insensitive equality of n bytes, as the library compares keys. */
static bool same_key(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x != y && ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z'))
			return false;
	}
	return true;
}

/* The raw (still percent-encoded, '+' already a space) value of `key`:
 * the first argument with that key, NULL when absent or without '='. */
static const char *query_raw(const http_request *req, const char *key)
{
	const struct http_conn *hc = req->conn_state;
	if (!hc || hc->args_overflow)
		return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
	size_t klen = strlen(key);
	for (unsigned i = 0; i < hc->n_args; i++)
		if (hc->arg_key_len[i] == klen && same_key(hc->arg_key[i], key, klen))
			return hc->arg_val[i];
	return NULL;
}

int http_query(const http_request *req, const char *key, char *buf, size_t cap,
	       const char **out, size_t *len)
{
	const char *raw = query_raw(req, key);
	if (!raw)
		return 0;
	size_t n = strlen(raw);
	if (n >= cap)
		return -1;
	long got = http_percent_decode(raw, n, buf, true);
	if (got < 0)
		return -1;
	*out = buf;
	*len = (size_t)got;
	return 1;
}

struct query_each {
	http_query_fn fn;
	void *arg;
	int rc;
};

static enum MHD_Result query_each_one(void *cls, enum MHD_ValueKind kind, const char *key,
				      const char *value)
{
	(void)kind;
	struct query_each *q = cls;
	q->rc = q->fn(q->arg, key, value ? value : "");
	return q->rc ? MHD_NO : MHD_YES;
}

int http_query_each(const http_request *req, http_query_fn fn, void *arg)
{
	const struct http_conn *hc = req->conn_state;
	if (hc && !hc->args_overflow) {
		for (unsigned i = 0; i < hc->n_args; i++) {
			int rc = fn(arg, hc->arg_key[i], hc->arg_val[i] ? hc->arg_val[i] : "");
			if (rc)
				return rc;
		}
		return 0;
	}
	struct query_each q = { fn, arg, 0 };
	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_each_one, &q);
	return q.rc;
}

const char *http_header(const http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}
