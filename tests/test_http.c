/*
 * test_http: path splitting and percent-decoding, as tables of cases
 * (input, expected result). The daemon itself is driven end to end by
 * tests/e2e and tests/fuzz/fuzz_http.c.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "http.h"
#include "strbuf.h"

/* Expected segments joined with '|' (a NUL inside one written as "\\0"). */
static const struct {
	const char *url;
	enum http_path_status status;
	unsigned n_segs;
	const char *joined;
} split_cases[] = {
	{ "/", HTTP_PATH_OK, 0, "" },
	{ "", HTTP_PATH_OK, 0, "" },
	{ "/healthz", HTTP_PATH_OK, 1, "healthz" },
	{ "healthz", HTTP_PATH_OK, 1, "healthz" },
	{ "/v1/customers/alice/recommendations", HTTP_PATH_OK, 4, "v1|customers|alice|recommendations" },
	{ "/a/", HTTP_PATH_OK, 1, "a" },
	{ "/a//b", HTTP_PATH_OK, 3, "a||b" },
	{ "//", HTTP_PATH_OK, 1, "" },
	{ "/v1/items/tea%2Fgreen/similar", HTTP_PATH_OK, 4, "v1|items|tea/green|similar" },
	{ "/v1/items/caf%C3%A9", HTTP_PATH_OK, 3, "v1|items|caf\xc3\xa9" },
	{ "/v1/items/caf%c3%a9", HTTP_PATH_OK, 3, "v1|items|caf\xc3\xa9" },
	{ "/a+b", HTTP_PATH_OK, 1, "a+b" }, /* '+' is a space only in queries */
	{ "/a%20b", HTTP_PATH_OK, 1, "a b" },
	{ "/a%00b", HTTP_PATH_OK, 1, "a\\0b" }, /* decoded; the api refuses such ids */
	{ "/%25", HTTP_PATH_OK, 1, "%" },
	{ "/%", HTTP_PATH_BAD_ESCAPE, 0, NULL },
	{ "/%2", HTTP_PATH_BAD_ESCAPE, 0, NULL },
	{ "/%zz", HTTP_PATH_BAD_ESCAPE, 0, NULL },
	{ "/ok/%g0", HTTP_PATH_BAD_ESCAPE, 0, NULL },
	{ "/a/b/c/d/e/f/g/h", HTTP_PATH_OK, 8, "a|b|c|d|e|f|g|h" },
	{ "/a/b/c/d/e/f/g/h/i", HTTP_PATH_TOO_MANY_SEGMENTS, 0, NULL },
	{ "/a/b/c/d/e/f/g/h/", HTTP_PATH_OK, 8, "a|b|c|d|e|f|g|h" },
};

static void join_segments(const http_request *req, strbuf *out)
{
	sb_reset(out);
	for (unsigned i = 0; i < req->n_segs; i++) {
		if (i)
			sb_addc(out, '|');
		for (size_t k = 0; k < req->seg_lens[i]; k++) {
			if (req->segs[i][k] == '\0')
				sb_adds(out, "\\0");
			else
				sb_addc(out, req->segs[i][k]);
		}
		if (req->segs[i][req->seg_lens[i]] != '\0')
			sb_adds(out, "<not NUL-terminated>");
	}
	sb_grow(out, 0);
}

TEST(split_path_table)
{
	strbuf scratch = STRBUF_INIT, joined = STRBUF_INIT;
	for (size_t i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
		http_request req;
		memset(&req, 0, sizeof(req));
		enum http_path_status got = http_split_path(split_cases[i].url, &scratch, &req);
		if (got != split_cases[i].status)
			fprintf(stderr, "case %zu: \"%s\"\n", i, split_cases[i].url);
		CHECK_INT(got, split_cases[i].status);
		if (got != HTTP_PATH_OK || !split_cases[i].joined)
			continue;
		CHECK_INT(req.n_segs, split_cases[i].n_segs);
		join_segments(&req, &joined);
		CHECK_STR(sb_str(&joined), split_cases[i].joined);
	}
	sb_release(&scratch);
	sb_release(&joined);
}

TEST(split_path_length_limit)
{
	strbuf scratch = STRBUF_INIT;
	char *url = malloc(HTTP_MAX_PATH + 2);
	url[0] = '/';
	memset(url + 1, 'x', HTTP_MAX_PATH);
	http_request req;
	memset(&req, 0, sizeof(req));
	url[HTTP_MAX_PATH] = '\0'; /* exactly HTTP_MAX_PATH bytes */
	CHECK_INT(http_split_path(url, &scratch, &req), HTTP_PATH_OK);
	CHECK_INT(req.n_segs, 1);
	CHECK_INT(req.seg_lens[0], HTTP_MAX_PATH - 1);
	url[HTTP_MAX_PATH] = 'x';
	url[HTTP_MAX_PATH + 1] = '\0'; /* one more */
	CHECK_INT(http_split_path(url, &scratch, &req), HTTP_PATH_TOO_LONG);
	free(url);
	sb_release(&scratch);
}

TEST(split_path_reuses_scratch)
{
	/* The second split must not see the first one's segments. */
	strbuf scratch = STRBUF_INIT;
	http_request req;
	memset(&req, 0, sizeof(req));
	CHECK_INT(http_split_path("/one/two/three", &scratch, &req), HTTP_PATH_OK);
	CHECK_INT(http_split_path("/four", &scratch, &req), HTTP_PATH_OK);
	CHECK_INT(req.n_segs, 1);
	CHECK_STR(req.segs[0], "four");
	sb_release(&scratch);
}

static const struct {
	const char *in;
	bool plus_is_space;
	long len; /* -1: refused */
	const char *out;
} decode_cases[] = {
	{ "", false, 0, "" },
	{ "abc", false, 3, "abc" },
	{ "a%2Fb", false, 3, "a/b" },
	{ "a%2fb", false, 3, "a/b" },
	{ "%41%42", false, 2, "AB" },
	{ "a+b", false, 3, "a+b" },
	{ "a+b", true, 3, "a b" },
	{ "%2B", true, 1, "+" }, /* an escaped '+' stays a '+' */
	{ "%e2%98%95", false, 3, "\xe2\x98\x95" },
	{ "%", false, -1, NULL },
	{ "%4", false, -1, NULL },
	{ "ab%", false, -1, NULL },
	{ "%4G", false, -1, NULL },
	{ "%G4", false, -1, NULL },
	{ "%%41", false, -1, NULL },
	{ "100%25", false, 4, "100%" },
};

TEST(percent_decode_table)
{
	for (size_t i = 0; i < sizeof(decode_cases) / sizeof(decode_cases[0]); i++) {
		const char *in = decode_cases[i].in;
		char out[64];
		memset(out, 'Z', sizeof(out));
		long got = http_percent_decode(in, strlen(in), out, decode_cases[i].plus_is_space);
		if (got != decode_cases[i].len)
			fprintf(stderr, "case %zu: \"%s\"\n", i, in);
		CHECK_INT(got, decode_cases[i].len);
		if (got >= 0) {
			CHECK(memcmp(out, decode_cases[i].out, (size_t)got) == 0);
			CHECK(out[got] == '\0');
		}
	}
}

TEST(percent_decode_nul_is_kept_with_its_length)
{
	char out[8];
	CHECK_INT(http_percent_decode("a%00b", 5, out, false), 3);
	CHECK(memcmp(out, "a\0b", 4) == 0);
}

TEST(percent_decode_stops_at_n)
{
	/* Only s[0..n) is read: an escape cut by n is refused. */
	char out[8];
	CHECK_INT(http_percent_decode("ab%41", 2, out, false), 2);
	CHECK_STR(out, "ab");
	CHECK_INT(http_percent_decode("ab%41", 4, out, false), -1);
}

int main(void)
{
	RUN(split_path_table);
	RUN(split_path_length_limit);
	RUN(split_path_reuses_scratch);
	RUN(percent_decode_table);
	RUN(percent_decode_nul_is_kept_with_its_length);
	RUN(percent_decode_stops_at_n);
	return harness_done();
}
