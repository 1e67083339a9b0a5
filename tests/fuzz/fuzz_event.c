/*
 * fuzz_event: POST /v1/events bodies through jansson and the event
 * validator: whatever the body, a parsed event has usable ids and sane
 * numbers, or a refusal with a known code and a message. And the in-place
 * scanner (events_scan_begin/next), which the server tries first: a body it
 * takes must be one jansson takes, read into the same events, codes and
 * messages.
 */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "fuzz.h"
#include "ids.h"
#include "util.h"

static void check(json_t *o)
{
	event_in e;
	char ids[2][24];
	events_error err;
	int rc = events_parse(o, &e, ids, 1700000000, &err);
	if (rc) {
		if (rc != (int)err.code || err.code <= EVENTS_OK || err.code >= EVENTS_CODES ||
		    !err.message || !err.message[0])
			abort();
		return;
	}
	if (e.customer_len == 0 || e.customer_len > ID_MAX_LEN || e.item_len == 0 || e.item_len > 255 ||
	    !utf8_valid(e.customer, e.customer_len) || !utf8_valid(e.item, e.item_len) ||
	    e.type > EVENT_REMOVE_FROM_CART || !isfinite(e.quantity) || e.quantity == 0 ||
	    !(e.price >= 0) || e.ts > 1700000000 + 86400)
		abort();
}

static bool same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* root: jansson's reading of the same bytes (NULL: refused). */
static void check_scanner(const uint8_t *data, size_t size, json_t *root)
{
	events_scan sc;
	if (events_scan_begin(&sc, (const char *)data, size, 1000) != 0)
		return; /* left to jansson, as the server does */
	if (!root || sc.batch != json_is_array(root) ||
	    sc.total != (sc.batch ? json_array_size(root) : 1))
		abort();
	for (size_t i = 0; i < sc.total; i++) {
		event_in a, b;
		char ia[2][24], ib[2][24];
		events_error ea, eb;
		int ra = events_scan_next(&sc, &a, ia, 1700000000, &ea);
		int rb = events_parse(sc.batch ? json_array_get(root, i) : root, &b, ib, 1700000000,
				      &eb);
		if (ra != rb)
			abort();
		if (ra) {
			if (ea.code != eb.code || strcmp(ea.message, eb.message) != 0)
				abort();
			continue;
		}
		if (!same_bytes(a.customer, a.customer_len, b.customer, b.customer_len) ||
		    !same_bytes(a.item, a.item_len, b.item, b.item_len) ||
		    !same_bytes(a.rec_id, a.rec_id_len, b.rec_id, b.rec_id_len) || a.ts != b.ts ||
		    a.type != b.type || memcmp(&a.quantity, &b.quantity, sizeof(float)) != 0 ||
		    memcmp(&a.price, &b.price, sizeof(float)) != 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t err;
	json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
	check_scanner(data, size, root);
	if (!root)
		return 0;
	if (json_is_array(root)) {
		size_t i;
		json_t *v;
		json_array_foreach(root, i, v)
		{
			if (i >= 64)
				break;
			check(v);
		}
	} else {
		check(root);
	}
	json_decref(root);
	return 0;
}
