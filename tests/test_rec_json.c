/*
 * test_rec_json: the recommendation JSON writer (rec_json.c): the fast
 * copy of ids and titles writes what the JSON encoder, sb_add_json_str,
 * writes, for every byte in every position; an item's "source" is
 * rec_source_name's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rec_json.h"
#include "store_fixture.h"
#include "strbuf.h"

static unsigned long long compared, differ;

/* An answer member's "customer_id" is written by the fast copy: it must
 * be sb_add_json_str's bytes. */
static void check_string(const char *s, size_t n)
{
	strbuf got = STRBUF_INIT, want = STRBUF_INIT;
	rec_result r;
	memset(&r, 0, sizeof(r)); /* no items: the model is not read */
	rec_json_member(&got, NULL, s, n, SEG_NEW, 0.0f, &r, REC_JSON_API, false);
	sb_adds(&want, "{\"customer_id\":");
	sb_add_json_str(&want, s, n);
	sb_adds(&want, ",\"segment\":");
	compared++;
	if (got.len < want.len || memcmp(got.buf, want.buf, want.len) != 0) {
		if (differ++ < 5)
			fprintf(stderr, "string of %zu bytes: %s\nwanted %s\n", n, got.buf, want.buf);
	}
	sb_release(&got);
	sb_release(&want);
}

/* Every byte value at every position of strings of 1 to 24 bytes (the
 * 8-byte words, their tails, the padding), then random strings of the
 * bytes ids and titles are made of, with an escape now and then. */
TEST(json_strings_as_the_encoder)
{
	char s[300];
	for (size_t n = 1; n <= 24; n++)
		for (size_t at = 0; at < n; at++)
			for (int c = 0; c < 256; c++) {
				memset(s, 'a', n);
				s[at] = (char)c;
				check_string(s, n);
			}
	check_string("", 0);
	static const char alphabet[] = "abcXYZ019 .-_/\xc3\xa9\xe2\x82\xac\x7f\x80\xff\"\\\n\t\x01\x1f";
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size_t n = (size_t)(x % 257);
		/* most strings without an escape (the common case), some with */
		size_t letters = i % 4 ? sizeof(alphabet) - 1 - 7 : sizeof(alphabet) - 1;
		for (size_t k = 0; k < n; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			s[k] = alphabet[x % letters];
		}
		check_string(s, n);
	}
	CHECK_INT(differ, 0);
	CHECK(compared > 200000);
}

/* Each item's "source" literal says what rec_source_name says. */
TEST(sources_as_named)
{
	if (scratch_begin() != 0 || write_model(sub("m")) != 0) {
		CHECK(!"fixture model");
		return;
	}
	model *m = open_model(sub("m"));
	CHECK(m != NULL);
	if (!m)
		return;
	rec_result r;
	memset(&r, 0, sizeof(r));
	const enum rec_source sources[] = { REC_PERSONAL, REC_POPULAR, REC_CONTENT };
	for (uint32_t i = 0; i < 3; i++)
		r.items[r.n++] = (rec_item){ .item = i, .score = 1.0f, .source = (uint8_t)sources[i] };
	strbuf sb = STRBUF_INIT, want = STRBUF_INIT;
	rec_json_items(&sb, m, &r, REC_JSON_API, false);
	const char *at = sb.buf;
	for (uint32_t i = 0; i < 3; i++) {
		sb_reset(&want);
		sb_addf(&want, ",\"source\":\"%s\"}", rec_source_name(sources[i]));
		const char *found = strstr(at, want.buf);
		CHECK(found != NULL);
		if (found)
			at = found + want.len;
	}
	sb_release(&sb);
	sb_release(&want);
	model_close(m);
	scratch_end();
}

int main(void)
{
	RUN(json_strings_as_the_encoder);
	RUN(sources_as_named);
	return harness_done();
}
