/*
 * test_store: the helpers every store file shares (store.c): the offset
 * table codec, and resuming a walk after a key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/store_internal.h"
#include "harness.h"
#include "store_fixture.h"

/* Encodes entries of `lens` bytes ("aaa", "", "cc"...) and decodes them. */
TEST(offtab_round_trip)
{
	const char *strs[] = { "alpha", "", "cc", "d" };
	unsigned char blob[64];
	offtab_writer w;
	offtab_put_begin(&w, blob, 4, 1);
	for (int i = 0; i < 4; i++)
		offtab_put(&w, strs[i], (uint32_t)strlen(strs[i]));
	offtab_put_end(&w);
	size_t size = offtab_head(4) + 8;
	offtab t;
	CHECK_INT(offtab_check(blob, size, 1, 4, 0, &t), 0);
	CHECK_INT(t.n, 4);
	CHECK_INT(t.end, 8);
	for (uint32_t i = 0; i < 4; i++) {
		uint32_t n;
		const unsigned char *p = offtab_entry(&t, i, &n);
		CHECK(n == strlen(strs[i]) && memcmp(p, strs[i], n) == 0);
	}
	CHECK_INT(offtab_check(blob, size, 1, OFFTAB_ANY_COUNT, 5, &t), 0);
}

/* Tables the checker must refuse, each one change from a good one: n 2,
 * offsets 0 2 3, payload "abc" (unit 1). */
TEST(offtab_refusals)
{
	static const struct {
		const char *what;
		uint32_t n, off[3];
		size_t payload;  /* bytes after the head */
		uint32_t want, max_units;
		int rc;
	} cases[] = {
		{ "good", 2, { 0, 2, 3 }, 3, 2, 0, 0 },
		{ "good, any count", 2, { 0, 2, 3 }, 3, OFFTAB_ANY_COUNT, 2, 0 },
		{ "count differs", 2, { 0, 2, 3 }, 3, 3, 0, STORE_CORRUPT },
		{ "payload short", 2, { 0, 2, 3 }, 2, 2, 0, STORE_CORRUPT },
		{ "payload long", 2, { 0, 2, 3 }, 4, 2, 0, STORE_CORRUPT },
		{ "offsets out of order", 2, { 0, 3, 2 }, 2, 2, 0, STORE_CORRUPT },
		{ "entry over the limit", 2, { 0, 2, 3 }, 3, 2, 1, STORE_CORRUPT },
		{ "head cut", 5, { 0, 2, 3 }, 0, OFFTAB_ANY_COUNT, 0, STORE_CORRUPT },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		unsigned char blob[64] = "";
		memcpy(blob, &cases[c].n, 4);
		memcpy(blob + 4, cases[c].off, 12);
		memcpy(blob + 16, "abcd", 4);
		offtab t;
		int rc = offtab_check(blob, 16 + cases[c].payload, 1, cases[c].want,
				      cases[c].max_units, &t);
		if (rc != cases[c].rc)
			fprintf(stderr, "case %s: %d\n", cases[c].what, rc);
		CHECK_INT(rc, cases[c].rc);
	}
	CHECK_INT(offtab_check("", 0, 1, OFFTAB_ANY_COUNT, 0, &(offtab){ 0 }), STORE_CORRUPT);
}

/* store_cursor_after on keys b, d, f: after nothing, a key present, a
 * key absent, the last key. */
TEST(cursor_after)
{
	const char *path = sub("cursor.mdb");
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *c;
	CHECK_INT(mdb_env_create(&env), 0);
	CHECK_INT(mdb_env_open(env, path, MDB_NOSUBDIR, 0644), 0);
	CHECK_INT(mdb_txn_begin(env, NULL, 0, &txn), 0);
	CHECK_INT(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	for (const char *k = "bdf"; *k; k++) {
		MDB_val key = { 1, (void *)k }, val = { 1, (void *)k };
		CHECK_INT(mdb_put(txn, dbi, &key, &val, 0), 0);
	}
	CHECK_INT(mdb_cursor_open(txn, dbi, &c), 0);
	static const struct {
		const char *after; /* NULL: from the first */
		int rc;
		char key;
	} cases[] = { { NULL, 0, 'b' }, { "", 0, 'b' }, { "b", 0, 'd' }, { "c", 0, 'd' },
		      { "a", 0, 'b' },  { "f", MDB_NOTFOUND, 0 }, { "z", MDB_NOTFOUND, 0 } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		MDB_val k, v;
		const char *a = cases[i].after;
		int rc = store_cursor_after(c, a, a ? strlen(a) : 0, MDB_NEXT, &k, &v);
		CHECK_INT(rc, cases[i].rc);
		if (rc == 0)
			CHECK(k.mv_size == 1 && *(const char *)k.mv_data == cases[i].key);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

int main(void)
{
	if (scratch_begin() != 0)
		return 1;
	RUN(offtab_round_trip);
	RUN(offtab_refusals);
	RUN(cursor_after);
	if (scratch_end() != 0)
		return 1;
	return harness_done();
}
