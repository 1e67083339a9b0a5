/*
 * test_auth: API keys (constant-time check, named codes), fail-closed
 * loading, protected mode and the loopback test it rests on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "harness.h"

#define KEY1 "0123456789abcdef"
#define KEY2 "fedcba9876543210xyz"

TEST(check_codes)
{
	auth *a = NULL;
	strbuf err = STRBUF_INIT;
	CHECK_INT(auth_load(NULL, KEY1 "," KEY2, &a, &err), AUTH_OK);
	CHECK(a != NULL);
	static const struct {
		const char *header;
		int want;
	} cases[] = {
		{ "Bearer " KEY1, AUTH_OK },
		{ "bearer " KEY2, AUTH_OK },
		{ "Bearer 0123456789abcdeF", AUTH_WRONG },
		{ "Bearer 0123456789abcde", AUTH_WRONG },
		{ "Basic " KEY1, AUTH_MISSING },
		{ NULL, AUTH_MISSING },
		{ "Bearer ", AUTH_MISSING },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_INT(auth_check(a, cases[i].header), cases[i].want);
	CHECK(!auth_is_protected(a));
	auth_free(a);
	sb_release(&err);
}

/* Writes `text` to a fresh file under dir; returns its path (static). */
static const char *key_file(const char *dir, const char *text)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/keys", dir);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

TEST(load_fails_closed)
{
	char dir[] = "/tmp/shopkeeper-test-auth-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	auth *a = NULL;
	strbuf err = STRBUF_INIT;

	/* Nothing given: no keys, and no error (the caller decides). */
	CHECK_INT(auth_load(NULL, NULL, &a, &err), AUTH_OK);
	CHECK(a == NULL);

	static const struct {
		const char *file_text; /* NULL: no file */
		const char *env;       /* NULL: unset */
		int want;
		const char *says;
	} cases[] = {
		{ "", NULL, AUTH_ENO_KEYS, "names no API key" },
		{ "# keys go here\n\n   \n# " KEY1 "\n", NULL, AUTH_ENO_KEYS, "names no API key" },
		{ NULL, "", AUTH_ENO_KEYS, "SHOPKEEPER_API_KEYS is set but names no key" },
		{ NULL, " , ,", AUTH_ENO_KEYS, "SHOPKEEPER_API_KEYS is set but names no key" },
		{ KEY1 "\n", "", AUTH_ENO_KEYS, "SHOPKEEPER_API_KEYS is set" },
		{ NULL, "short", AUTH_EKEY, "16 to 256 characters" },
		{ "short-key\n", NULL, AUTH_EKEY, "16 to 256 characters" },
		{ "# a comment\n" KEY1 "\n", NULL, AUTH_OK, NULL },
		{ KEY1 "\n", KEY2, AUTH_OK, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sb_reset(&err);
		const char *file = cases[i].file_text ? key_file(dir, cases[i].file_text) : NULL;
		int rc = auth_load(file, cases[i].env, &a, &err);
		CHECK_INT(rc, cases[i].want);
		if (cases[i].want == AUTH_OK) {
			CHECK(a != NULL);
			CHECK_INT(auth_check(a, "Bearer " KEY1), AUTH_OK);
		} else {
			CHECK(a == NULL);
			CHECK(strstr(sb_str(&err), cases[i].says) != NULL);
			CHECK(strstr(sb_str(&err), "short") == NULL); /* a key is never echoed */
			CHECK(strcmp(auth_strerror(rc), "unknown auth code") != 0);
		}
		auth_free(a);
		a = NULL;
		if (file)
			unlink(file);
	}

	/* A directory, and a file that is not there. */
	sb_reset(&err);
	CHECK_INT(auth_load(dir, NULL, &a, &err), AUTH_EREAD);
	CHECK(a == NULL);
	CHECK(strstr(sb_str(&err), "cannot read API keys") != NULL);
	sb_reset(&err);
	CHECK_INT(auth_load("/nonexistent/shopkeeper-keys", NULL, &a, &err), AUTH_EREAD);
	CHECK(a == NULL);
	rmdir(dir);
	sb_release(&err);
}

TEST(protected_mode)
{
	auth *a = auth_protected();
	CHECK(auth_is_protected(a));
	CHECK_INT(auth_check(a, NULL), AUTH_PROTECTED_MODE);
	CHECK_INT(auth_check(a, "Bearer " KEY1), AUTH_PROTECTED_MODE);
	const char *msg = auth_strerror(AUTH_PROTECTED_MODE);
	CHECK(strstr(msg, "--api-keys") != NULL);
	CHECK(strstr(msg, "--insecure-no-auth") != NULL);
	auth_free(a);
	auth_free(NULL);
}

TEST(loopback)
{
	static const struct {
		const char *listen;
		bool loopback;
	} cases[] = {
		{ "127.0.0.1:8080", true },   { "127.3.2.1:0", true },
		{ "[::1]:8080", true },       { "[::ffff:127.0.0.1]:80", true },
		{ "0.0.0.0:8080", false },    { ":8080", false },
		{ "[::]:8080", false },       { "10.1.2.3:8080", false },
		{ "128.0.0.1:8080", false },  { "[::ffff:10.0.0.1]:80", false },
		{ "localhost:8080", false },  { "garbage", false },
		{ "[::1", false },            { "", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (auth_listen_is_loopback(cases[i].listen) != cases[i].loopback) {
			fprintf(stderr, "loopback(%s) != %d\n", cases[i].listen, cases[i].loopback);
			CHECK(0);
		}
}

int main(void)
{
	RUN(check_codes);
	RUN(load_fails_closed);
	RUN(protected_mode);
	RUN(loopback);
	return harness_done();
}
