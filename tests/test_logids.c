/*
 * test_logids: SipHash-2-4 against the paper's vectors, the access-log line
 * rewrite, and the key file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "logids.h"

static logids_key seq_key(void)
{
	logids_key k;
	for (int i = 0; i < LOGIDS_KEY_BYTES; i++)
		k.k[i] = (uint8_t)i;
	return k;
}

TEST(siphash_vectors)
{
	/* SipHash-2-4, key 00..0f, message 00..(n-1): the reference
	 * implementation's vectors (Appendix A of the paper for n = 15). */
	logids_key k = seq_key();
	uint8_t msg[64];
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	CHECK(logids_siphash(&k, msg, 0) == 0x726fdb47dd0e0e31ull);
	CHECK(logids_siphash(&k, msg, 1) == 0x74f839c593dc67fdull);
	CHECK(logids_siphash(&k, msg, 8) == 0x93f5f5799a932462ull);
	CHECK(logids_siphash(&k, msg, 15) == 0xa129ca6149be45e5ull);
}

static const char *rewrite(const logids_key *k, const char *line)
{
	static char out[4096 + LOGIDS_HASH_LEN];
	size_t n = logids_rewrite(k, line, strlen(line), out);
	out[n] = '\0';
	return out;
}

static void hash_of(const logids_key *k, const char *id, char out[LOGIDS_HASH_LEN + 1])
{
	snprintf(out, LOGIDS_HASH_LEN + 1, "~%016llx",
		 (unsigned long long)logids_siphash(k, id, strlen(id)));
}

TEST(rewrite_lines)
{
	logids_key k = seq_key();
	char alice[LOGIDS_HASH_LEN + 1], odd[LOGIDS_HASH_LEN + 1], want[512];
	hash_of(&k, "alice", alice);
	hash_of(&k, "a\"b\xff/c", odd);
	static const char head[] = "{\"time\":\"t\",\"method\":\"GET\",\"path\":\"";
	static const char tail[] = "\",\"status\":200}\n";
	static const struct {
		const char *path; /* as the http layer logs it (JSON-escaped) */
		const char *id;   /* NULL: the line is kept as it is */
		const char *rest; /* what follows the id */
	} cases[] = {
		{ "/v1/customers/alice/recommendations", "alice", "/recommendations" },
		{ "/v1/customers/alice", "alice", "" },
		{ "/v1/customers/%61lice/consent", "alice", "/consent" }, /* decoded first */
		{ "/v1/customers/a\\\"b%FF%2Fc", "odd", "" },            /* \" and %2F */
		{ "/v1/customers/a\\u0022b\\u00ff%2fc", "odd", "" },     /* \u00XX */
		{ "/v1/customers/", NULL, NULL },
		{ "/v1/customers", NULL, NULL },
		{ "/v1/items/alice/similar", NULL, NULL },
		{ "/healthz", NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char line[512];
		snprintf(line, sizeof(line), "%s%s%s", head, cases[i].path, tail);
		if (!cases[i].id)
			snprintf(want, sizeof(want), "%s", line);
		else
			snprintf(want, sizeof(want), "%s/v1/customers/%s%s%s", head,
				 !strcmp(cases[i].id, "odd") ? odd : alice, cases[i].rest, tail);
		CHECK_STR(rewrite(&k, line), want);
	}
	/* Another key, another hash; no "path" at all: kept. */
	logids_key k2 = seq_key();
	k2.k[0] ^= 1;
	CHECK(logids_siphash(&k2, "alice", 5) != logids_siphash(&k, "alice", 5));
	CHECK_STR(rewrite(&k, "not json\n"), "not json\n");
	CHECK_STR(rewrite(&k, ""), "");
}

TEST(key_file)
{
	char dir[] = "/tmp/shopkeeper-test-logids-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[256];
	snprintf(path, sizeof(path), "%s/access-log.key", dir);
	strbuf err = STRBUF_INIT;
	logids_key a, b;
	CHECK_INT(logids_key_load(path, 0, &a, &err), -1); /* missing, not created */
	sb_reset(&err);
	CHECK_INT(logids_key_load(path, 1, &a, &err), 0); /* made */
	struct stat st;
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 0777, 0600);
	CHECK_INT(st.st_size, 33);
	CHECK_INT(logids_key_load(path, 1, &b, &err), 0); /* read back, not remade */
	CHECK(memcmp(a.k, b.k, sizeof(a.k)) == 0);
	static const char *bad[] = { "", "0123", "0123456789abcdef0123456789abcdeg\n",
				     "0123456789abcdef0123456789abcdef0\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FILE *f = fopen(path, "w");
		fputs(bad[i], f);
		fclose(f);
		sb_reset(&err);
		CHECK_INT(logids_key_load(path, 1, &a, &err), -1);
		CHECK(strstr(sb_str(&err), "32 hex digits") != NULL);
	}
	FILE *f = fopen(path, "w");
	fputs("000102030405060708090A0B0C0D0E0F\n", f);
	fclose(f);
	CHECK_INT(logids_key_load(path, 0, &a, &err), 0);
	logids_key s = seq_key();
	CHECK(memcmp(a.k, s.k, sizeof(a.k)) == 0);
	unlink(path);
	rmdir(dir);
	sb_release(&err);
}

int main(void)
{
	RUN(siphash_vectors);
	RUN(rewrite_lines);
	RUN(key_file);
	return harness_done();
}
