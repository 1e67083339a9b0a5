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

/* The scanner (events_scan_begin/next) against jansson and events_parse,
 * over the table's objects, batches of them and mutations of both: where
 * the scanner takes a body, jansson must load it too (with the server's
 * JSON_REJECT_DUPLICATES), to as many events, and every event must come
 * out the same (code, message, fields). Where jansson refuses a body, the
 * scanner must have left it to jansson. */
static int scan_reports; /* failures printed, at most 5 */

static int scan_agrees(const char *body, size_t len, size_t max)
{
	events_scan sc;
	if (events_scan_begin(&sc, body, len, max) != 0)
		return 0;
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (scan_reports++ < 5)
			fprintf(stderr, "scanned, but jansson refuses: %.*s\n", (int)len, body);
		CHECK(root != NULL);
		return -1;
	}
	size_t n = json_is_array(root) ? json_array_size(root) : 1;
	int bad = sc.batch != json_is_array(root) || sc.total != n || n == 0 || n > max;
	for (size_t i = 0; !bad && i < n; i++) {
		event_in a, b;
		char ida[2][24], idb[2][24];
		events_error ea = { EVENTS_CODES, NULL }, eb = { EVENTS_CODES, NULL };
		int ra = events_parse(json_is_array(root) ? json_array_get(root, i) : root, &a, ida,
				      NOW, &ea);
		int rb = events_scan_next(&sc, &b, idb, NOW, &eb);
		bad |= ra != rb || ea.code != eb.code ||
		       (ea.message != eb.message && strcmp(ea.message, eb.message) != 0);
		if (!bad && ra == 0)
			bad |= a.customer_len != b.customer_len ||
			       memcmp(a.customer, b.customer, a.customer_len) != 0 ||
			       a.item_len != b.item_len || memcmp(a.item, b.item, a.item_len) != 0 ||
			       a.ts != b.ts || memcmp(&a.quantity, &b.quantity, sizeof(float)) != 0 ||
			       memcmp(&a.price, &b.price, sizeof(float)) != 0 || a.type != b.type ||
			       a.rec_id_len != b.rec_id_len ||
			       (a.rec_id_len && memcmp(a.rec_id, b.rec_id, a.rec_id_len) != 0);
	}
	if (bad) {
		if (scan_reports++ < 5)
			fprintf(stderr, "scanner and jansson differ: %.*s\n", (int)len, body);
		CHECK(!bad);
	}
	json_decref(root);
	return bad ? -1 : 1;
}

TEST(scanner_agrees_with_jansson)
{
	static char body[8192];
	size_t nc = sizeof(cases) / sizeof(cases[0]);
	int scanned = 0;
	unsigned seed = 12345;
	const char alphabet[] = "{}[],:\"\\ 0123456789-.eE+tfnul\t\n\x7f\xc3" "a_";
	for (size_t i = 0; i < nc + 40; i++) {
		size_t len = 0;
		if (i < nc) { /* each object alone */
			len = (size_t)snprintf(body, sizeof(body), "%s", cases[i].json);
		} else { /* batches of 1 to 6 of them, with whitespace */
			size_t k = 1 + (i - nc) % 6;
			len = (size_t)snprintf(body, sizeof(body), "%s[", i % 2 ? " \n" : "");
			for (size_t j = 0; j < k; j++)
				len += (size_t)snprintf(body + len, sizeof(body) - len, "%s%s",
							j ? (i % 3 ? "," : " ,\r\n\t") : "",
							cases[(i * 7 + j * 3) % nc].json);
			len += (size_t)snprintf(body + len, sizeof(body) - len, "]%s", i % 2 ? " " : "");
		}
		int r = scan_agrees(body, len, 5);
		scanned += r > 0;
		/* mutations: a byte replaced, deleted or inserted, bounded */
		for (int m = 0; m < 400; m++) {
			static char mut[8200];
			memcpy(mut, body, len);
			size_t ml = len;
			for (int edits = 1 + m % 3; edits > 0 && ml > 0; edits--) {
				seed = seed * 1103515245u + 12345u;
				size_t at = (seed >> 8) % ml;
				char c = alphabet[(seed >> 20) % (sizeof(alphabet) - 1)];
				switch ((seed >> 4) % 3) {
				case 0:
					mut[at] = c;
					break;
				case 1:
					memmove(mut + at, mut + at + 1, ml - at - 1);
					ml--;
					break;
				default:
					memmove(mut + at + 1, mut + at, ml - at);
					mut[at] = c;
					ml++;
				}
			}
			scanned += scan_agrees(mut, ml, 5) > 0;
		}
	}
	/* the common forms are taken: the comparison above is not empty */
	CHECK(scanned > 1000);
	const char *common = "[{\"customer_id\":\"17850\",\"item_id\":\"85123A\",\"event\":\"view\"},"
			     "{\"customer_id\":17850,\"item_id\":\"22423\",\"event\":\"purchase\","
			     "\"quantity\":2,\"price\":2.55,\"timestamp\":\"2023-11-01T10:00:00Z\"}]";
	CHECK_INT(scan_agrees(common, strlen(common), 1000), 1);
	/* left to jansson: escapes, other bytes, nesting, duplicates, too many */
	const char *left[] = {
		"{\"customer_id\":\"c\\u0031\",\"item_id\":\"i1\",\"event\":\"view\"}",
		"{\"customer_id\":\"caf\xc3\xa9\",\"item_id\":\"i1\",\"event\":\"view\"}",
		"{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"x\":{}}",
		"{\"customer_id\":\"c1\",\"customer_id\":\"c2\",\"item_id\":\"i1\",\"event\":\"view\"}",
		"{\"customer_id\":\"c1\",\"item_id\":\"i1\",\"event\":\"view\",\"price\":1e2}",
		"{\"customer_id\":1234567890123456789,\"item_id\":\"i1\",\"event\":\"view\"}",
		"[]", "[{}]x", "", "{\"a\":1,}",
	};
	for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++) {
		events_scan sc;
		CHECK_INT(events_scan_begin(&sc, left[i], strlen(left[i]), 1000), -1);
	}
	events_scan sc;
	CHECK_INT(events_scan_begin(&sc, "[{},{},{}]", 10, 2), -1); /* past max */
	CHECK_INT(events_scan_begin(&sc, "[{},{}]", 7, 2), 0);
	CHECK_INT(sc.total, 2);
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
	RUN(scanner_agrees_with_jansson);
	return harness_done();
}
