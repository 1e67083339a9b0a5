/*
 * auth: API keys for the routes that write or administer (and, if asked,
 * the ones that read).
 *
 * Keys come from a file (one per line; blank lines and '#' comments
 * ignored) and/or the SHOPKEEPER_API_KEYS environment variable (comma-
 * separated). Clients send `Authorization: Bearer KEY`. Comparison takes
 * the same time whichever key, and whichever byte, differs, and keys are
 * never written to logs or error messages.
 */
#ifndef SHOPKEEPER_AUTH_H
#define SHOPKEEPER_AUTH_H

#include <stdbool.h>

#include "strbuf.h"

#define AUTH_MIN_KEY 16
#define AUTH_MAX_KEY 256
#define AUTH_MAX_KEYS 64

typedef struct auth auth;

/* Loads keys from `file` (NULL: none) and `env` (the variable's value, NULL:
 * none). *out is NULL when neither gave a key (authentication off).
 * Returns 0, or -1 with a message in *err (unreadable file, a key shorter
 * than AUTH_MIN_KEY or longer than AUTH_MAX_KEY, too many keys). */
int auth_load(const char *file, const char *env, auth **out, strbuf *err);

/* Checks an Authorization header value (NULL when absent). Returns 0 when
 * it carries a known key, 401 when it is missing or not "Bearer ...", 403
 * when the key is wrong. */
int auth_check(const auth *a, const char *header);

/* auth_free(NULL) does nothing. */
void auth_free(auth *a);

#endif
