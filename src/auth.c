/*
 * auth: API keys, compared in constant time. See auth.h.
 */
#include "auth.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct auth {
	unsigned n;
	size_t len[AUTH_MAX_KEYS];
	unsigned char key[AUTH_MAX_KEYS][AUTH_MAX_KEY];
};

static int add_key(auth *a, const char *s, size_t n, const char *where, strbuf *err)
{
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	if (n == 0 || *s == '#')
		return 0;
	if (n < AUTH_MIN_KEY || n > AUTH_MAX_KEY) {
		/* Never echo the key itself. */
		sb_addf(err, "%s: an API key must be %d to %d characters (one is %zu)", where,
			AUTH_MIN_KEY, AUTH_MAX_KEY, n);
		return -1;
	}
	if (a->n == AUTH_MAX_KEYS) {
		sb_addf(err, "%s: more than %d API keys", where, AUTH_MAX_KEYS);
		return -1;
	}
	memcpy(a->key[a->n], s, n);
	a->len[a->n++] = n;
	return 0;
}

int auth_load(const char *file, const char *env, auth **out, strbuf *err)
{
	auth *a = xcalloc(1, sizeof(*a));
	*out = NULL;
	if (file) {
		FILE *f = fopen(file, "r");
		if (!f) {
			sb_addf(err, "cannot read API keys from %s: %s", file, strerror(errno));
			goto fail;
		}
		char *line = NULL;
		size_t cap = 0;
		ssize_t got;
		int rc = 0;
		while (rc == 0 && (got = getline(&line, &cap, f)) >= 0) {
			size_t n = (size_t)got;
			while (n > 0 && line[n - 1] == '\n')
				n--;
			rc = add_key(a, line, n, file, err);
		}
		free(line);
		fclose(f);
		if (rc)
			goto fail;
	}
	for (const char *p = env; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (add_key(a, p, n, "SHOPKEEPER_API_KEYS", err) != 0)
			goto fail;
		p = comma ? comma + 1 : p + n;
	}
	if (a->n == 0) {
		free(a);
		return 0;
	}
	*out = a;
	return 0;
fail:
	memset(a, 0, sizeof(*a)); /* keys do not linger in freed memory */
	free(a);
	return -1;
}

/* 1 when s[0..n) equals key k, in time independent of where they differ. */
static unsigned equal_ct(const auth *a, unsigned k, const unsigned char *s, size_t n)
{
	unsigned diff = (unsigned)(n ^ a->len[k]);
	for (size_t i = 0; i < AUTH_MAX_KEY; i++) {
		unsigned char c = i < n ? s[i] : 0;
		diff |= (unsigned)(c ^ a->key[k][i]);
	}
	return diff == 0;
}

int auth_check(const auth *a, const char *header)
{
	static const char prefix[] = "Bearer ";
	if (!header || strncasecmp(header, prefix, sizeof(prefix) - 1) != 0)
		return 401;
	const char *key = header + sizeof(prefix) - 1;
	size_t n = strlen(key);
	if (n == 0 || n > AUTH_MAX_KEY)
		return n == 0 ? 401 : 403;
	unsigned ok = 0;
	for (unsigned k = 0; k < a->n; k++) /* every key, every time */
		ok |= equal_ct(a, k, (const unsigned char *)key, n);
	return ok ? 0 : 403;
}

void auth_free(auth *a)
{
	if (!a)
		return;
	memset(a, 0, sizeof(*a));
	free(a);
}
