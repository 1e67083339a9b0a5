/*
 * test_recid: the rec_id codec: round trips at the fields' limits, every
 * error code on hostile input, distinct sequences, ids pinned (the report
 * groups by them across versions).
 */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "crc32c.h"
#include "recid.h"
#include "util.h"

static int same(const recid *a, const recid *b)
{
	return a->experiment == b->experiment && a->variant == b->variant &&
	       a->model == b->model && a->route == b->route && a->time_ms == b->time_ms &&
	       a->seq == b->seq;
}

TEST(round_trip)
{
	const recid cases[] = {
		{ 0, 0, 1, RECID_ROUTE_CUSTOMER, 0, 0 },
		{ 0xFFFFFFFFu, 255, 0xFFFFFFFFu, RECID_ROUTE_BASKET, ((int64_t)1 << 48) - 1,
		  0xFFFFFFFFu },
		{ 0x12345678u, 3, 0x9abcdef0u, RECID_ROUTE_ITEM, 1796083200123, 42 },
		{ 7, 0, 8, RECID_ROUTE_CUSTOMER, 1, 0x80000000u },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char text[RECID_LEN + 1];
		recid back;
		memset(text, 'x', sizeof text);
		CHECK_INT(recid_encode(&cases[i], text), RECID_OK);
		CHECK_INT(strlen(text), RECID_LEN);
		for (size_t k = 0; k < RECID_LEN; k++)
			CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
				     text[k]) != NULL);
		CHECK_INT(recid_decode(text, RECID_LEN, &back), RECID_OK);
		CHECK(same(&cases[i], &back));
	}
}

/* One id, one spelling, pinned: a change to the layout must show here. */
TEST(pinned_text)
{
	recid id = { 0x01020304u, 2, 0x0a0b0c0du, RECID_ROUTE_ITEM, 1796083200123, 7 };
	char text[RECID_LEN + 1];
	CHECK_INT(recid_encode(&id, text), RECID_OK);
	CHECK_STR(text, "EgECAwQCCgsMDQGiLuawewAAAAcO" /* Python's base64 agrees */);
}

TEST(encode_refuses)
{
	char text[RECID_LEN + 1];
	recid bad[] = {
		{ 1, 0, 1, RECID_ROUTE_NONE, 0, 0 },
		{ 1, 0, 1, RECID_ROUTE_MAX + 1, 0, 0 },
		{ 1, 0, 1, RECID_ROUTE_ITEM, -1, 0 },
		{ 1, 0, 1, RECID_ROUTE_ITEM, (int64_t)1 << 48, 0 },
		{ 0, 1, 1, RECID_ROUTE_ITEM, 0, 0 }, /* a variant without an experiment */
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CHECK_INT(recid_encode(&bad[i], text), RECID_EFIELD);
		CHECK_STR(text, "");
	}
}

TEST(decode_errors)
{
	recid id = { 99, 1, 5, RECID_ROUTE_CUSTOMER, 1796083200000, 1 }, out, keep;
	char text[RECID_LEN + 1], bad[RECID_LEN + 8];
	CHECK_INT(recid_encode(&id, text), RECID_OK);
	memset(&keep, 0xAB, sizeof keep);

	/* lengths: empty, one short, one long */
	out = keep;
	CHECK_INT(recid_decode("", 0, &out), RECID_ELENGTH);
	CHECK_INT(recid_decode(text, RECID_LEN - 1, &out), RECID_ELENGTH);
	memcpy(bad, text, RECID_LEN);
	bad[RECID_LEN] = 'A';
	CHECK_INT(recid_decode(bad, RECID_LEN + 1, &out), RECID_ELENGTH);
	CHECK(memcmp(&out, &keep, sizeof out) == 0); /* untouched on errors */

	/* characters: padding, standard base64's + and /, NUL, a high byte */
	const char odd[] = { '=', '+', '/', '\0', (char)0xC3, ' ', '.' };
	for (size_t i = 0; i < sizeof odd; i++) {
		memcpy(bad, text, RECID_LEN);
		bad[i * 3] = odd[i];
		CHECK_INT(recid_decode(bad, RECID_LEN, &out), RECID_ECHAR);
	}

	/* every single-character change of a valid id is caught by the check
	 * byte or found invalid: never read as another valid id silently, but
	 * for the few the 8-bit check lets through, which must at least be
	 * rare */
	int passed = 0, total = 0;
	for (size_t i = 0; i < RECID_LEN; i++) {
		for (const char *c = "AZaz09-_Qq"; *c; c++) {
			if (text[i] == *c)
				continue;
			memcpy(bad, text, RECID_LEN);
			bad[i] = *c;
			total++;
			if (recid_decode(bad, RECID_LEN, &out) == RECID_OK)
				passed++;
		}
	}
	CHECK(total > 200);
	CHECK(passed * 50 < total); /* an 8-bit check lets ~1/256 through */
}

/* A check byte recomputed by hand: version and fields are then checked. */
TEST(decode_version_and_fields)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	/* raw bytes for: version 2; version 1 with route 0; route 4; variant
	 * 1 without an experiment */
	uint8_t raws[4][21] = { { 0x21 }, { 0x10 }, { 0x14 }, { 0x11, 0, 0, 0, 0, 1 } };
	int want[] = { RECID_EVERSION, RECID_EFIELD, RECID_EFIELD, RECID_EFIELD };
	for (size_t c = 0; c < ARRAY_SIZE(want); c++) {
		uint8_t *raw = raws[c];
		char text[RECID_LEN];
		raw[20] = (uint8_t)crc32c(0, raw, 20);
		for (int i = 0, o = 0; i < 21; i += 3, o += 4) {
			uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
			text[o] = alphabet[v >> 18];
			text[o + 1] = alphabet[v >> 12 & 63];
			text[o + 2] = alphabet[v >> 6 & 63];
			text[o + 3] = alphabet[v & 63];
		}
		recid out;
		CHECK_INT(recid_decode(text, RECID_LEN, &out), want[c]);
	}
}

/* Random bytes never crash the decoder, and almost never pass. */
TEST(decode_garbage)
{
	uint64_t x = 0x9E3779B97F4A7C15ull;
	int ok = 0;
	for (int n = 0; n < 20000; n++) {
		char buf[RECID_LEN];
		for (size_t i = 0; i < RECID_LEN; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* mostly base64url, so the check byte is what stops them */
			buf[i] = (x >> 40) % 8 ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[x % 64]
					       : (char)(x >> 8);
		}
		recid out;
		if (recid_decode(buf, RECID_LEN, &out) == RECID_OK)
			ok++;
	}
	CHECK(ok < 100); /* 1/256 of the all-base64url ones at most, by the check */
}

TEST(sequence_distinct)
{
	uint32_t first = recid_next_seq();
	for (uint32_t i = 1; i < 1000; i++)
		CHECK_INT(recid_next_seq(), (uint32_t)(first + i));
}

TEST(ids)
{
	/* pinned: the report groups by these across versions and replicas */
	CHECK_INT(recid_experiment_id("home-recs", "2026-12"), 1206396384u);
	CHECK_INT(recid_model_id("m-1"), 2067661286u);
	CHECK(recid_experiment_id("home-recs", "2026-12") != recid_experiment_id("home-recs", "2027-01"));
	CHECK(recid_experiment_id("ab", "c") != recid_experiment_id("a", "bc"));
	CHECK(recid_experiment_id("", "") != 0);
	CHECK(recid_model_id("") != 0);
	CHECK(recid_hash(RECID_HASH_INIT, "ab", 2) ==
	      recid_hash(recid_hash(RECID_HASH_INIT, "a", 1), "b", 1));
}

int main(void)
{
	RUN(round_trip);
	RUN(pinned_text);
	RUN(encode_refuses);
	RUN(decode_errors);
	RUN(decode_version_and_fields);
	RUN(decode_garbage);
	RUN(sequence_distinct);
	RUN(ids);
	return harness_done();
}
