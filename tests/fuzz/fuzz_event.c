/*
 * fuzz_event: POST /v1/events bodies through jansson and the event
 * validator: whatever the body, a parsed event has usable ids and sane
 * numbers, or a refusal with a known code and a message.
 */
#include <jansson.h>
#include <math.h>
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t err;
	json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
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
