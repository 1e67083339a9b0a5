/*
 * auth: API keys for the routes that write or administer (and, if asked,
 * the ones that read).
 *
 * Keys come from a file (one per line; blank lines and '#' comments
 * ignored) and/or the SHOPKEEPER_API_KEYS environment variable (comma-
 * separated). Clients send `Authorization: Bearer KEY`. Comparison takes
 * the same time whichever key, and whichever byte, differs, and keys are
 * never written to logs or error messages.
 *
 * Fail closed: a key source that is named but gives no key (an empty or
 * comments-only file, a directory, SHOPKEEPER_API_KEYS set but empty) is an
 * error, not "authentication off". And a server with no keys that listens
 * beyond loopback is in protected mode (after Redis's): reads are served,
 * writing and admin routes refused, unless the operator said
 * --insecure-no-auth.
 */
#ifndef SHOPKEEPER_AUTH_H
#define SHOPKEEPER_AUTH_H

#include <stdbool.h>

#include "strbuf.h"

#define AUTH_MIN_KEY 16
#define AUTH_MAX_KEY 256
#define AUTH_MAX_KEYS 64

typedef struct auth auth;

/* Codes: 0, or negative. auth_check's answers, then auth_load's errors. */
enum auth_code {
	AUTH_OK = 0,
	AUTH_MISSING = -1,        /* no Authorization header, or not "Bearer KEY" */
	AUTH_WRONG = -2,          /* a key, but none of ours */
	AUTH_PROTECTED_MODE = -3, /* no keys, listening beyond loopback */
	AUTH_EREAD = -10,         /* the key file cannot be read (or is a directory) */
	AUTH_EKEY = -11,          /* a key shorter than AUTH_MIN_KEY or over AUTH_MAX_KEY */
	AUTH_ETOO_MANY = -12,     /* more than AUTH_MAX_KEYS keys */
	AUTH_ENO_KEYS = -13,      /* a file or variable was given but names no key */
};

/* A sentence for a code; static, never NULL. For AUTH_PROTECTED_MODE it
 * names the two ways out, for the 403's message. */
const char *auth_strerror(int code);

/* Loads keys from `file` (NULL: none) and `env` (the variable's value, NULL:
 * unset). *out is NULL when both are NULL (no keys: see auth_protected).
 * Returns 0, or an AUTH_E* code with a message naming the source in *err.
 * A source that is given but names no key is AUTH_ENO_KEYS: an empty key
 * file must not turn authentication off. */
int auth_load(const char *file, const char *env, auth **out, strbuf *err);

/* An auth without keys that refuses every checked route with
 * AUTH_PROTECTED_MODE; owned by the caller (auth_free). */
auth *auth_protected(void);

/* Whether `listen` ("HOST:PORT", "[V6]:PORT", ":PORT") binds only a loopback
 * address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). ":PORT", a wildcard and
 * anything unparsable are not loopback (fail closed). */
bool auth_listen_is_loopback(const char *listen);

/* Checks an Authorization header value (NULL when absent): AUTH_OK,
 * AUTH_MISSING, AUTH_WRONG, or AUTH_PROTECTED_MODE (whatever the header)
 * for an auth_protected(). The API maps them to 401 and 403. */
int auth_check(const auth *a, const char *header);

/* Whether `a` is an auth_protected() (for the startup line). */
bool auth_is_protected(const auth *a);

/* auth_free(NULL) does nothing. */
void auth_free(auth *a);

#endif
