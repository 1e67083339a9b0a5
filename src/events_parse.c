/*
 * events_parse: reading the events of POST /v1/events, one validator for
 * an object jansson loaded (events_parse) and for the common form read in
 * place (events_scan_begin/next). See events.h.
 */
#include "events.h"

#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "ingest.h"
#include "recid.h"
#include "timefmt.h"
#include "util.h"

/* One field of an event as sent, from a jansson object (events_parse) or
 * from the scanner (events_scan_next): the one validator below reads both. */
enum field_kind { F_ABSENT, F_NULL, F_STRING, F_INTEGER, F_REAL, F_OTHER };
struct field {
	enum field_kind kind;
	const char *str; /* F_STRING: its bytes, not NUL-terminated */
	size_t len;
	long long integer; /* F_INTEGER */
	double number;     /* F_INTEGER and F_REAL: the value as a double */
};

/* The fields events_parse reads, in this order; any other key is ignored. */
enum { K_CUSTOMER, K_ITEM, K_EVENT, K_TIMESTAMP, K_QUANTITY, K_PRICE, K_REC_ID, K_FIELDS };
static const char *const field_keys[K_FIELDS] = {
	"customer_id", "item_id", "event", "timestamp", "quantity", "price", "rec_id",
};

/* An id field given as a string or an integer (many shops number their
 * customers); integers are written into buf. */
static const char *event_id(const struct field *v, char buf[24], size_t *len)
{
	if (v->kind == F_STRING) {
		*len = v->len;
		return v->str;
	}
	if (v->kind == F_INTEGER) {
		int n = snprintf(buf, 24, "%lld", v->integer);
		*len = n > 0 ? (size_t)n : 0;
		return buf;
	}
	return NULL;
}

static bool field_is(const struct field *v, const char *s)
{
	return v->kind == F_STRING && v->len == strlen(s) && memcmp(v->str, s, v->len) == 0;
}

/* A field's value as a number: NAN unless it is one. */
static double field_number(const struct field *v)
{
	return v->kind == F_INTEGER || v->kind == F_REAL ? v->number : NAN;
}

static const char *const code_names[EVENTS_CODES] = {
	[EVENTS_OK] = "ok",
	[EVENTS_INVALID_EVENT] = "invalid_event",
	[EVENTS_MISSING_FIELD] = "missing_field",
	[EVENTS_INVALID_FIELD] = "invalid_field",
	[EVENTS_INVALID_ID] = "invalid_id",
	[EVENTS_INVALID_EVENT_TYPE] = "invalid_event_type",
	[EVENTS_INVALID_TIMESTAMP] = "invalid_timestamp",
	[EVENTS_INVALID_QUANTITY] = "invalid_quantity",
	[EVENTS_INVALID_PRICE] = "invalid_price",
	[EVENTS_CUSTOMER_ERASED] = "customer_erased",
	[EVENTS_LIVE_CUSTOMER_LIMIT] = "live_customer_limit",
	[EVENTS_INVALID_REC_ID] = "invalid_rec_id",
};

const char *events_code_name(enum events_code code)
{
	assert((unsigned)code < EVENTS_CODES);
	return code_names[code];
}

/* Fills *err; returns its code (for `return refuse(...)`). */
static int refuse(events_error *err, enum events_code code, const char *message)
{
	err->code = code;
	err->message = message;
	return code;
}

/* The one validator (see events_parse). */
static int parse_fields(const struct field f[K_FIELDS], event_in *e, char ids[2][24], int64_t now,
			events_error *err)
{
	const struct field *cid = &f[K_CUSTOMER], *iid = &f[K_ITEM], *type = &f[K_EVENT];
	const struct field *ts = &f[K_TIMESTAMP], *qty = &f[K_QUANTITY], *price = &f[K_PRICE];
	const struct field *rid = &f[K_REC_ID];
	memset(e, 0, sizeof(*e));
	if (cid->kind == F_ABSENT)
		return refuse(err, EVENTS_MISSING_FIELD, "customer_id is required");
	if (!(e->customer = event_id(cid, ids[0], &e->customer_len)))
		return refuse(err, EVENTS_INVALID_FIELD, "customer_id must be a string");
	if (!utf8_valid(e->customer, e->customer_len) || !id_normalize(&e->customer, &e->customer_len))
		return refuse(err, EVENTS_INVALID_ID,
			      "customer_id is empty, too long or not valid UTF-8");
	if (type->kind != F_STRING)
		return refuse(err, EVENTS_MISSING_FIELD,
			      "event is required (view, cart, purchase, remove_from_cart, click "
			      "or impression)");
	if (field_is(type, "remove_from_cart")) {
		e->type = EVENT_REMOVE_FROM_CART;
	} else if (field_is(type, "click")) {
		e->type = EVENT_CLICK;
	} else if (field_is(type, "impression")) {
		e->type = EVENT_IMPRESSION;
	} else {
		int et = event_parse(type->str, type->len);
		if (et < 0)
			return refuse(err, EVENTS_INVALID_EVENT_TYPE,
				      "event must be view, cart, purchase, remove_from_cart, click "
				      "or impression");
		e->type = (uint8_t)et;
	}
	/* An impression names the answer shown; which item is optional. */
	if (iid->kind == F_ABSENT && e->type != EVENT_IMPRESSION)
		return refuse(err, EVENTS_MISSING_FIELD, "item_id is required");
	if (iid->kind != F_ABSENT) {
		if (!(e->item = event_id(iid, ids[1], &e->item_len)))
			return refuse(err, EVENTS_INVALID_FIELD, "item_id must be a string");
		if (!utf8_valid(e->item, e->item_len) || !id_normalize(&e->item, &e->item_len))
			return refuse(err, EVENTS_INVALID_ID,
				      "item_id is empty, too long or not valid UTF-8");
		if (e->item_len > 255)
			return refuse(err, EVENTS_INVALID_ID, "item_id is longer than 255 bytes");
	} else {
		e->item = "";
	}
	if (rid->kind != F_ABSENT && rid->kind != F_NULL) {
		recid id;
		if (rid->kind != F_STRING)
			return refuse(err, EVENTS_INVALID_REC_ID, "rec_id must be a string");
		int rrc = recid_decode(rid->str, rid->len, &id);
		if (rrc != RECID_OK)
			return refuse(err, EVENTS_INVALID_REC_ID, recid_strerror(rrc));
		e->rec_id = rid->str;
		e->rec_id_len = rid->len;
	} else if (e->type == EVENT_IMPRESSION) {
		return refuse(err, EVENTS_MISSING_FIELD, "an impression needs the rec_id of the "
							 "answer shown");
	}
	e->ts = now;
	if (ts->kind == F_STRING) {
		if (time_parse(ts->str, ts->len, &e->ts) != 0)
			return refuse(err, EVENTS_INVALID_TIMESTAMP,
				      "timestamp is not a date, date-time or Unix seconds");
	} else if (ts->kind == F_INTEGER || ts->kind == F_REAL) {
		double d = ts->number;
		if (!(d >= 0 && d < 253402300800.0))
			return refuse(err, EVENTS_INVALID_TIMESTAMP, "timestamp is out of range");
		e->ts = (int64_t)d;
	} else if (ts->kind != F_ABSENT && ts->kind != F_NULL) {
		return refuse(err, EVENTS_INVALID_TIMESTAMP,
			      "timestamp must be a string or a number");
	}
	if (e->ts > now + 86400)
		return refuse(err, EVENTS_INVALID_TIMESTAMP,
			      "timestamp is more than a day ahead of the server's clock");
	e->quantity = 1.0f;
	if (qty->kind != F_ABSENT && qty->kind != F_NULL) {
		double q = field_number(qty);
		if (!isfinite(q) || q == 0 || fabs(q) > 1e6)
			return refuse(err, EVENTS_INVALID_QUANTITY,
				      "quantity must be a non-zero number within +-1000000");
		e->quantity = (float)q;
	}
	if (price->kind != F_ABSENT && price->kind != F_NULL) {
		double p = field_number(price);
		if (!isfinite(p) || p < 0 || p > 1e9)
			return refuse(err, EVENTS_INVALID_PRICE,
				      "price must be a number from 0 to 1e9");
		e->price = (float)p;
	}
	err->code = EVENTS_OK;
	err->message = NULL;
	return 0;
}

int events_parse(json_t *o, event_in *e, char ids[2][24], int64_t now, events_error *err)
{
	if (!json_is_object(o)) {
		memset(e, 0, sizeof(*e));
		return refuse(err, EVENTS_INVALID_EVENT, "an event must be a JSON object");
	}
	struct field f[K_FIELDS];
	for (int k = 0; k < K_FIELDS; k++) {
		json_t *v = json_object_get(o, field_keys[k]);
		f[k] = (struct field){ .kind = F_OTHER };
		if (!v) {
			f[k].kind = F_ABSENT;
		} else if (json_is_null(v)) {
			f[k].kind = F_NULL;
		} else if (json_is_string(v)) {
			f[k].kind = F_STRING;
			f[k].str = json_string_value(v);
			f[k].len = json_string_length(v);
		} else if (json_is_integer(v)) {
			f[k].kind = F_INTEGER;
			f[k].integer = json_integer_value(v);
			f[k].number = json_number_value(v);
		} else if (json_is_real(v)) {
			f[k].kind = F_REAL;
			f[k].number = json_real_value(v);
		}
	}
	return parse_fields(f, e, ids, now, err);
}

/* ---- the scanner: POST /v1/events without jansson ------------------------
 *
 * jansson took 200 to 260 us to load, validate and free a batch of 100
 * events (6 KB; a hash table and several allocations per object; the
 * scanner takes 36 to 46 us), on the request thread: on a server given
 * one core, every request in flight waited behind each POST, 16 of them
 * in a row when the bench's pacer's batches arrived together
 * (bench/README.md, "Under event load"). The
 * scanner reads the common form in place, without allocating: only what
 * it is sure jansson (with JSON_REJECT_DUPLICATES) reads the same way, and
 * anything else (an escape, a byte outside printable ASCII, a nested
 * value, a duplicate key, a long or exponent number, a syntax error, an
 * empty or too large batch) goes to jansson, which then decides. */

#define SCAN_KEYS_MAX 16 /* keys of one object; more: jansson */

static const char *scan_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* A string without escapes, of printable ASCII; NULL otherwise. */
static const char *scan_string(const char *p, const char *end, const char **s, size_t *len)
{
	if (p >= end || *p != '"')
		return NULL;
	const char *q = ++p;
	while (q < end && *q != '"') {
		unsigned char c = (unsigned char)*q;
		if (c < 0x20 || c >= 0x7f || c == '\\')
			return NULL;
		q++;
	}
	if (q >= end)
		return NULL;
	*s = p;
	*len = (size_t)(q - p);
	return q + 1;
}

/* A number in JSON's grammar without an exponent, at most 18 digits
 * before the point (so an integer fits a long long, as jansson needs) and
 * 40 bytes; NULL otherwise. */
static const char *scan_number(const char *p, const char *end, struct field *v)
{
	const char *q = p;
	if (q < end && *q == '-')
		q++;
	const char *digits = q;
	if (q < end && *q == '0')
		q++;
	else
		while (q < end && *q >= '0' && *q <= '9')
			q++;
	if (q == digits || q - digits > 18)
		return NULL;
	bool real = q < end && *q == '.';
	if (real) {
		const char *frac = ++q;
		while (q < end && *q >= '0' && *q <= '9')
			q++;
		if (q == frac)
			return NULL;
	}
	if (q < end && (*q == 'e' || *q == 'E'))
		return NULL;
	char buf[41];
	if (q - p > 40)
		return NULL;
	memcpy(buf, p, (size_t)(q - p));
	buf[q - p] = '\0';
	if (real) {
		v->kind = F_REAL;
		v->number = strtod(buf, NULL);
	} else {
		v->kind = F_INTEGER;
		v->integer = strtoll(buf, NULL, 10);
		v->number = (double)v->integer;
	}
	return q;
}

static const char *scan_literal(const char *p, const char *end, const char *word)
{
	size_t n = strlen(word);
	return (size_t)(end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

static const char *scan_value(const char *p, const char *end, struct field *v)
{
	*v = (struct field){ .kind = F_OTHER };
	if (p >= end)
		return NULL;
	switch (*p) {
	case '"':
		v->kind = F_STRING;
		return scan_string(p, end, &v->str, &v->len);
	case 't':
		return scan_literal(p, end, "true");
	case 'f':
		return scan_literal(p, end, "false");
	case 'n':
		v->kind = F_NULL;
		return scan_literal(p, end, "null");
	default:
		return *p == '-' || (*p >= '0' && *p <= '9') ? scan_number(p, end, v) : NULL;
	}
}

/* One object at p (after whitespace); its known fields into f when f is
 * not NULL. Returns where it ends, or NULL when it is not in the subset. */
static const char *scan_object(const char *p, const char *end, struct field *f)
{
	const char *keys[SCAN_KEYS_MAX];
	size_t lens[SCAN_KEYS_MAX], n = 0;
	if (f)
		for (int k = 0; k < K_FIELDS; k++)
			f[k] = (struct field){ .kind = F_ABSENT };
	if (p >= end || *p != '{')
		return NULL;
	p = scan_ws(p + 1, end);
	if (p < end && *p == '}')
		return p + 1;
	for (;;) {
		const char *key;
		size_t len;
		struct field v;
		if (n == SCAN_KEYS_MAX || !(p = scan_string(p, end, &key, &len)))
			return NULL;
		for (size_t i = 0; i < n; i++)
			if (lens[i] == len && memcmp(keys[i], key, len) == 0)
				return NULL; /* jansson refuses the body */
		keys[n] = key;
		lens[n++] = len;
		p = scan_ws(p, end);
		if (p >= end || *p != ':')
			return NULL;
		if (!(p = scan_value(scan_ws(p + 1, end), end, &v)))
			return NULL;
		for (int k = 0; f && k < K_FIELDS; k++)
			if (strlen(field_keys[k]) == len && memcmp(field_keys[k], key, len) == 0)
				f[k] = v;
		p = scan_ws(p, end);
		if (p < end && *p == '}')
			return p + 1;
		if (p >= end || *p != ',')
			return NULL;
		p = scan_ws(p + 1, end);
	}
}

int events_scan_begin(events_scan *sc, const char *body, size_t len, size_t max)
{
	const char *end = body + len, *p = scan_ws(body, end);
	size_t n = 0;
	sc->batch = p < end && *p == '[';
	if (sc->batch) {
		p = scan_ws(p + 1, end);
		for (;;) {
			if (n == max || !(p = scan_object(p, end, NULL)))
				return -1;
			n++;
			p = scan_ws(p, end);
			if (p < end && *p == ']')
				break;
			if (p >= end || *p != ',')
				return -1;
			p = scan_ws(p + 1, end);
		}
		p++;
	} else {
		if (!(p = scan_object(p, end, NULL)))
			return -1;
		n = 1;
	}
	if (scan_ws(p, end) != end || n > max)
		return -1;
	sc->p = body;
	sc->end = end;
	sc->total = n;
	return 0;
}

int events_scan_next(events_scan *sc, event_in *e, char ids[2][24], int64_t now, events_error *err)
{
	struct field f[K_FIELDS];
	const char *p = scan_ws(sc->p, sc->end);
	if (*p == '[' || *p == ',')
		p = scan_ws(p + 1, sc->end);
	sc->p = scan_object(p, sc->end, f);
	assert(sc->p); /* events_scan_begin read it */
	return parse_fields(f, e, ids, now, err);
}

