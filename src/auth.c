/*
 * auth: API keys, compared in constant time. See auth.h.
 */
#include "auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct auth {
	bool protected_mode; /* auth_protected(): no keys, refuse checked routes */
	unsigned n;
	size_t len[AUTH_MAX_KEYS];
	unsigned char key[AUTH_MAX_KEYS][AUTH_MAX_KEY];
};

const char *auth_strerror(int code)
{
	switch (code) {
	case AUTH_OK: return "authorized";
	case AUTH_MISSING: return "this route needs an API key: Authorization: Bearer KEY";
	case AUTH_WRONG: return "the API key is not valid";
	case AUTH_PROTECTED_MODE:
		return "protected mode: this server listens beyond loopback without API keys, so "
		       "writing and admin routes are refused; start it with --api-keys FILE (or "
		       "SHOPKEEPER_API_KEYS), or, on a network you trust, with --insecure-no-auth";
	case AUTH_EREAD: return "cannot read the API key file";
	case AUTH_EKEY: return "an API key has the wrong length";
	case AUTH_ETOO_MANY: return "too many API keys";
	case AUTH_ENO_KEYS: return "no API key given where keys were expected";
	}
	return "unknown auth code";
}

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
		return AUTH_EKEY;
	}
	if (a->n == AUTH_MAX_KEYS) {
		sb_addf(err, "%s: more than %d API keys", where, AUTH_MAX_KEYS);
		return AUTH_ETOO_MANY;
	}
	memcpy(a->key[a->n], s, n);
	a->len[a->n++] = n;
	return 0;
}

int auth_load(const char *file, const char *env, auth **out, strbuf *err)
{
	auth *a = xcalloc(1, sizeof(*a));
	int rc = AUTH_OK;
	*out = NULL;
	if (file) {
		FILE *f = fopen(file, "r");
		if (!f) {
			sb_addf(err, "cannot read API keys from %s: %s", file, strerror(errno));
			rc = AUTH_EREAD;
			goto fail;
		}
		char *line = NULL;
		size_t cap = 0;
		ssize_t got;
		errno = 0;
		while (rc == AUTH_OK && (got = getline(&line, &cap, f)) >= 0) {
			size_t n = (size_t)got;
			while (n > 0 && line[n - 1] == '\n')
				n--;
			rc = add_key(a, line, n, file, err);
		}
		/* A directory opens, then fails to read (EISDIR): not "no keys". */
		if (rc == AUTH_OK && ferror(f)) {
			sb_addf(err, "cannot read API keys from %s: %s", file,
				strerror(errno ? errno : EIO));
			rc = AUTH_EREAD;
		}
		free(line);
		fclose(f);
		if (rc != AUTH_OK)
			goto fail;
		if (a->n == 0) {
			sb_addf(err, "%s names no API key (one key of %d to %d characters per line; blank "
				     "lines and # comments are skipped); to serve without keys, leave "
				     "--api-keys out", file, AUTH_MIN_KEY, AUTH_MAX_KEY);
			rc = AUTH_ENO_KEYS;
			goto fail;
		}
	}
	if (env) {
		unsigned before = a->n;
		for (const char *p = env; *p;) {
			const char *comma = strchr(p, ',');
			size_t n = comma ? (size_t)(comma - p) : strlen(p);
			if ((rc = add_key(a, p, n, "SHOPKEEPER_API_KEYS", err)) != AUTH_OK)
				goto fail;
			p = comma ? comma + 1 : p + n;
		}
		if (a->n == before) {
			sb_addf(err, "SHOPKEEPER_API_KEYS is set but names no key (comma-separated keys "
				     "of %d to %d characters); to serve without keys, unset it",
				AUTH_MIN_KEY, AUTH_MAX_KEY);
			rc = AUTH_ENO_KEYS;
			goto fail;
		}
	}
	if (a->n == 0) {
		free(a);
		return AUTH_OK;
	}
	*out = a;
	return AUTH_OK;
fail:
	memset(a, 0, sizeof(*a)); /* keys do not linger in freed memory */
	free(a);
	return rc;
}

auth *auth_protected(void)
{
	auth *a = xcalloc(1, sizeof(*a));
	a->protected_mode = true;
	return a;
}

bool auth_is_protected(const auth *a)
{
	return a && a->protected_mode;
}

bool auth_listen_is_loopback(const char *listen)
{
	char host[64];
	const char *end;
	if (listen[0] == '[') {
		listen++;
		end = strchr(listen, ']');
	} else {
		end = strrchr(listen, ':');
	}
	if (!end || end == listen || (size_t)(end - listen) >= sizeof(host))
		return false; /* ":PORT" is every address */
	memcpy(host, listen, (size_t)(end - listen));
	host[end - listen] = '\0';
	unsigned char v4[4], v6[16];
	if (inet_pton(AF_INET, host, v4) == 1)
		return v4[0] == 127;
	if (inet_pton(AF_INET6, host, v6) != 1)
		return false;
	static const unsigned char loop6[16] = { [15] = 1 };
	static const unsigned char mapped[12] = { [10] = 0xff, [11] = 0xff };
	return memcmp(v6, loop6, 16) == 0 || (memcmp(v6, mapped, 12) == 0 && v6[12] == 127);
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
	if (a->protected_mode)
		return AUTH_PROTECTED_MODE;
	if (!header || strncasecmp(header, prefix, sizeof(prefix) - 1) != 0)
		return AUTH_MISSING;
	const char *key = header + sizeof(prefix) - 1;
	size_t n = strlen(key);
	if (n == 0 || n > AUTH_MAX_KEY)
		return n == 0 ? AUTH_MISSING : AUTH_WRONG;
	unsigned ok = 0;
	for (unsigned k = 0; k < a->n; k++) /* every key, every time */
		ok |= equal_ct(a, k, (const unsigned char *)key, n);
	return ok ? AUTH_OK : AUTH_WRONG;
}

void auth_free(auth *a)
{
	if (!a)
		return;
	memset(a, 0, sizeof(*a));
	free(a);
}
