/*
 * test_events: the event validator, as a table of (JSON line, expected
 * code), in the manner of jq's tests/jq.test. A new rule is a new row.
 */
#include <jansson.h>
#include <string.h>

#include "events.h"
#include "ingest.h" /* enum event_type */
#include "harness.h"

#define NOW 1700000000 /* 2023-11-14T22:13:20Z: the server's clock */

static const struct {
	const char *json;
	enum events_code code;
} cases[] = {
	/* accepted */
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\"}", EVENTS_OK },
	{ "{\"customer_id\":17850,\"item_id\":85123,\"event\":\"purchase\"}", EVENTS_OK },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"cart\",\"quantity\":-2,"
	  "\"price\":0,\"timestamp\":\"2023-11-01\"}", EVENTS_OK },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"remove_from_cart\","
	  "\"timestamp\":null,\"quantity\":null,\"price\":null}", EVENTS_OK },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"timestamp\":1700086399}",
	  EVENTS_OK },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"extra\":[1,2]}", EVENTS_OK },
	/* not an object */
	{ "[]", EVENTS_INVALID_EVENT },
	{ "\"view\"", EVENTS_INVALID_EVENT },
	{ "null", EVENTS_INVALID_EVENT },
	/* missing fields, in the order they are checked */
	{ "{}", EVENTS_MISSING_FIELD },
	{ "{\"item_id\":\"i1\",\"event\":\"view\"}", EVENTS_MISSING_FIELD },
	{ "{\"customer_id\":\"c1\",\"event\":\"view\"}", EVENTS_MISSING_FIELD },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\"}", EVENTS_MISSING_FIELD },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":3}", EVENTS_MISSING_FIELD },
	/* ids of the wrong type or form */
	{ "{\"customer_id\":true,\"item_id\":\"i1\",\"event\":\"view\"}", EVENTS_INVALID_FIELD },
	{ "{\"customer_id\":1.5,\"item_id\":\"i1\",\"event\":\"view\"}", EVENTS_INVALID_FIELD },
	{ "{\"customer_id\":\"c1\",\"item_id\":[\"i1\"],\"event\":\"view\"}", EVENTS_INVALID_FIELD },
	{ "{\"customer_id\":\"\",\"item_id\":\"i1\",\"event\":\"view\"}", EVENTS_INVALID_ID },
	{ "{\"customer_id\":\"  \",\"item_id\":\"i1\",\"event\":\"view\"}", EVENTS_INVALID_ID },
	{ "{\"customer_id\":\"c\\u0001\",\"item_id\":\"i1\",\"event\":\"view\"}", EVENTS_INVALID_ID },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"\",\"event\":\"view\"}", EVENTS_INVALID_ID },
	/* event types */
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"clock\"}", EVENTS_INVALID_EVENT_TYPE },
	/* clicks, impressions and rec_ids (issue 15); the rec_id is a real one
	 * (experiment "home"/"s", variant 1) */
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"click\"}", EVENTS_OK },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"purchase\","
	  "\"rec_id\":\"EXUvSEcBAAAABwGLz-VoAAAAAAMw\"}", EVENTS_OK },
	{ "{\"customer_id\":\"c1\",\"event\":\"impression\","
	  "\"rec_id\":\"EXUvSEcBAAAABwGLz-VoAAAAAAMw\"}", EVENTS_OK },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"impression\"}",
	  EVENTS_MISSING_FIELD },
	{ "{\"customer_id\":\"c1\",\"event\":\"click\"}", EVENTS_MISSING_FIELD },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"click\","
	  "\"rec_id\":\"EXUvSEcBAAAABwGLz-VoAAAAAAMx\"}", EVENTS_INVALID_REC_ID }, /* one typo */
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"cart\","
	  "\"rec_id\":\"abc\"}", EVENTS_INVALID_REC_ID },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"cart\","
	  "\"rec_id\":42}", EVENTS_INVALID_REC_ID },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"\"}", EVENTS_INVALID_EVENT_TYPE },
	/* timestamps */
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"timestamp\":\"yesterday\"}",
	  EVENTS_INVALID_TIMESTAMP },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"timestamp\":-1}",
	  EVENTS_INVALID_TIMESTAMP },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"timestamp\":1e300}",
	  EVENTS_INVALID_TIMESTAMP },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"timestamp\":true}",
	  EVENTS_INVALID_TIMESTAMP },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"timestamp\":1700086401}",
	  EVENTS_INVALID_TIMESTAMP }, /* a day and a second ahead */
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\","
	  "\"timestamp\":\"2030-01-01T00:00:00Z\"}", EVENTS_INVALID_TIMESTAMP },
	/* quantities and prices */
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"quantity\":0}",
	  EVENTS_INVALID_QUANTITY },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"quantity\":\"2\"}",
	  EVENTS_INVALID_QUANTITY },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"quantity\":1000001}",
	  EVENTS_INVALID_QUANTITY },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"price\":-0.01}",
	  EVENTS_INVALID_PRICE },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"price\":2e9}",
	  EVENTS_INVALID_PRICE },
	{ "{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"price\":\"free\"}",
	  EVENTS_INVALID_PRICE },
};

TEST(table)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_error_t jerr;
		json_t *o = json_loads(cases[i].json, JSON_DECODE_ANY, &jerr);
		if (!o) {
			fprintf(stderr, "case %zu is not JSON: %s\n", i, cases[i].json);
			CHECK(o != NULL);
			continue;
		}
		event_in e;
		char ids[2][24];
		events_error err = { EVENTS_CODES, NULL };
		int rc = events_parse(o, &e, ids, NOW, &err);
		if ((int)cases[i].code != rc || err.code != cases[i].code) {
			fprintf(stderr, "case %zu %s: got %s (%s), expected %s\n", i, cases[i].json,
				events_code_name(err.code), err.message ? err.message : "",
				events_code_name(cases[i].code));
			CHECK_INT(rc, cases[i].code);
		}
		if (rc)
			CHECK(err.message && err.message[0]);
		json_decref(o);
	}
}

/* A long item id: 255 bytes are taken, 256 refused (the state's limit). */
TEST(item_id_length)
{
	char id[257];
	memset(id, 'x', sizeof(id) - 1);
	id[256] = '\0';
	for (size_t len = 255; len <= 256; len++) {
		json_t *o = json_pack("{s:s, s:s#, s:s}", "customer_id", "c1", "item_id", id,
				      (int)len, "event", "view");
		event_in e;
		char ids[2][24];
		events_error err;
		CHECK_INT(events_parse(o, &e, ids, NOW, &err),
			  len == 255 ? EVENTS_OK : EVENTS_INVALID_ID);
		json_decref(o);
	}
}

/* What an accepted event carries: defaults, integer ids written out. */
TEST(accepted_fields)
{
	json_t *o = json_loads("{\"customer_id\":17850,\"item_id\":\" tea \",\"event\":\"cart\"}", 0,
			       NULL);
	event_in e;
	char ids[2][24];
	events_error err;
	CHECK_INT(events_parse(o, &e, ids, NOW, &err), 0);
	CHECK_INT(err.code, EVENTS_OK);
	CHECK(e.customer_len == 5 && memcmp(e.customer, "17850", 5) == 0);
	CHECK(e.customer == ids[0]);
	CHECK(e.item_len == 3 && memcmp(e.item, "tea", 3) == 0);
	CHECK_INT(e.type, EVENT_CART);
	CHECK_INT(e.ts, NOW);
	CHECK_NEAR(e.quantity, 1.0, 0);
	CHECK_NEAR(e.price, 0.0, 0);
	json_decref(o);
}

TEST(code_names)
{
	CHECK_STR(events_code_name(EVENTS_INVALID_TIMESTAMP), "invalid_timestamp");
	CHECK_STR(events_code_name(EVENTS_CUSTOMER_ERASED), "customer_erased");
	for (int c = 0; c < EVENTS_CODES; c++)
		CHECK(events_code_name(c) != NULL);
}

int main(void)
{
	RUN(table);
	RUN(item_id_length);
	RUN(accepted_fields);
	RUN(code_names);
	return harness_done();
}
