/*
 * eventlog_codec: the event log's entry ids and its record codec
 * (eventlog.h has the byte layout): pure functions, no connection, which
 * the fuzz harness and the codec tests drive directly.
 */
#include "eventlog.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eventlog_internal.h"
#include "util.h"

#define FORMAT_VERSION 5  /* the newest this build reads */
#define ITEM_VERSION 2    /* the version that brought EVENTLOG_ITEM */
#define EXPIRE_VERSION 3  /* the version that brought EVENTLOG_EXPIRE */
#define SERVED_VERSION 4  /* the version that brought EVENTLOG_SERVED */
#define CATALOG_VERSION 5 /* the version that brought EVENTLOG_CATALOG */

/* ---- entry ids ------------------------------------------------------------ */

int eventlog_parse_u64(const char *s, size_t n, uint64_t *out)
{
	if (n == 0 || n > 20)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int eventlog_id_parse(const char *s, size_t n, eventlog_id *out)
{
	const char *dash = memchr(s, '-', n);
	eventlog_id id;
	if (!dash || eventlog_parse_u64(s, (size_t)(dash - s), &id.ms) != 0 ||
	    eventlog_parse_u64(dash + 1, n - (size_t)(dash - s) - 1, &id.seq) != 0)
		return EVENTLOG_EINVAL;
	*out = id;
	return 0;
}

size_t eventlog_id_format(eventlog_id id, char buf[EVENTLOG_ID_LEN])
{
	return (size_t)snprintf(buf, EVENTLOG_ID_LEN, "%llu-%llu", (unsigned long long)id.ms,
				(unsigned long long)id.seq);
}

int eventlog_id_cmp(eventlog_id a, eventlog_id b)
{
	if (a.ms != b.ms)
		return a.ms < b.ms ? -1 : 1;
	if (a.seq != b.seq)
		return a.seq < b.seq ? -1 : 1;
	return 0;
}

eventlog_id eventlog_id_next(eventlog_id id)
{
	if (id.seq < UINT64_MAX)
		id.seq++;
	else if (id.ms < UINT64_MAX)
		id = (eventlog_id){ id.ms + 1, 0 };
	return id;
}

/* The id just before id; false when id is the first possible. */
bool eventlog_id_prev(eventlog_id id, eventlog_id *out)
{
	if (id.seq > 0)
		*out = (eventlog_id){ id.ms, id.seq - 1 };
	else if (id.ms > 0)
		*out = (eventlog_id){ id.ms - 1, UINT64_MAX };
	else
		return false;
	return true;
}

/* ---- the record codec ------------------------------------------------------ */

#define EVENT_FLAG_REC_ID 1u
#define CONSENT_FLAG_PERSONALIZATION 1u

bool eventlog_valid_string(const char *s, size_t n, size_t min, size_t max)
{
	return n >= min && n <= max && (n == 0 || (s && utf8_valid(s, n)));
}

/* The item record's set and clear bits: disjoint, not both empty. */
static bool valid_item_bits(unsigned set, unsigned clear)
{
	return !((set | clear) & ~EVENTLOG_ITEM_ALL) && !(set & clear) && (set | clear);
}

/* The format version a kind is written with (eventlog.h). */
static uint8_t kind_version(uint8_t kind)
{
	return kind == EVENTLOG_ITEM ? ITEM_VERSION : kind == EVENTLOG_EXPIRE ? EXPIRE_VERSION
	       : kind == EVENTLOG_SERVED ? SERVED_VERSION : kind == EVENTLOG_CATALOG ? CATALOG_VERSION
	       : 1;
}

static bool valid_price(float p)
{
	return isfinite(p) && p >= 0 && p <= EVENTLOG_PRICE_MAX;
}

/* A catalog record: its fields, each value in bounds, and the fields it
 * does not give zero (one encoding per record). */
static bool valid_catalog(const eventlog_record *r)
{
	unsigned f = r->catalog_fields;
	return f && !(f & ~EVENTLOG_CATALOG_ALL) && r->customer_len == 0 && !r->rec_id_len &&
	       eventlog_valid_string(r->item, r->item_len, 1, EVENTLOG_ITEM_MAX) &&
	       (f & EVENTLOG_CATALOG_TITLE
			? eventlog_valid_string(r->title, r->title_len, 0, EVENTLOG_TITLE_MAX)
			: !r->title_len) &&
	       (f & EVENTLOG_CATALOG_CATEGORY
			? eventlog_valid_string(r->category, r->category_len, 0, EVENTLOG_CATEGORY_MAX)
			: !r->category_len) &&
	       (f & EVENTLOG_CATALOG_PRICE ? valid_price(r->price) : r->price == 0) &&
	       (f & EVENTLOG_CATALOG_FIRST_SEEN
			? r->first_seen >= 0 && r->first_seen <= EVENTLOG_DAY_MAX
			: r->first_seen == 0);
}

static int check_record(const eventlog_record *r)
{
	if (r->kind == EVENTLOG_CATALOG)
		return valid_catalog(r) ? 0 : EVENTLOG_EINVAL;
	if (r->kind == EVENTLOG_ITEM)
		return r->customer_len == 0 &&
				       eventlog_valid_string(r->item, r->item_len, 1, EVENTLOG_ITEM_MAX) &&
				       valid_item_bits(r->item_set, r->item_clear)
			       ? 0
			       : EVENTLOG_EINVAL;
	if (r->kind == EVENTLOG_SERVED)
		return eventlog_valid_string(r->customer, r->customer_len, 1, EVENTLOG_CUSTOMER_MAX) &&
				       r->experiment && r->variant <= EVENTLOG_VARIANT_MAX &&
				       r->ts >= 0 && r->ts <= EVENTLOG_TS_MAX &&
				       r->n_hashes <= EVENTLOG_SERVED_ITEMS &&
				       r->n_hashes <= r->n_items && (r->hashes || !r->n_hashes) &&
				       !r->item_len && !r->rec_id_len
			       ? 0
			       : EVENTLOG_EINVAL;
	if (r->kind < EVENTLOG_EVENT || r->kind > EVENTLOG_EXPIRE ||
	    !eventlog_valid_string(r->customer, r->customer_len, 1, EVENTLOG_CUSTOMER_MAX))
		return EVENTLOG_EINVAL;
	if (r->kind == EVENTLOG_EXPIRE)
		return r->ts >= 0 && r->ts <= EVENTLOG_TS_MAX ? 0 : EVENTLOG_EINVAL;
	if (r->kind != EVENTLOG_EVENT)
		return 0;
	if (!eventlog_valid_string(r->item, r->item_len, r->type == EVENTLOG_TYPE_IMPRESSION ? 0 : 1,
			  EVENTLOG_ITEM_MAX) ||
	    !eventlog_valid_string(r->rec_id, r->rec_id_len, 0, EVENTLOG_REC_ID_MAX) || r->ts < 0 ||
	    r->ts > EVENTLOG_TS_MAX || !isfinite(r->quantity) || r->quantity == 0 ||
	    !isfinite(r->price) || !(r->price >= 0) || r->type > EVENTLOG_TYPE_MAX)
		return EVENTLOG_EINVAL;
	return 0;
}

static void put_len(strbuf *out, size_t n)
{
	/* Lengths are at most 512 (checked), so two LEB128 bytes suffice. */
	if (n < 0x80) {
		sb_addc(out, (char)n);
	} else {
		sb_addc(out, (char)(0x80 | (n & 0x7f)));
		sb_addc(out, (char)(n >> 7));
	}
}

static void put_str(strbuf *out, const char *s, size_t n)
{
	put_len(out, n);
	sb_add(out, s, n);
}

static void put_u32(strbuf *out, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
			       (unsigned char)(v >> 24) };
	sb_add(out, b, 4);
}

static void put_f32(strbuf *out, float f)
{
	uint32_t v;
	memcpy(&v, &f, 4);
	put_u32(out, v);
}

int eventlog_encode(const eventlog_record *r, strbuf *out)
{
	if (check_record(r) != 0)
		return EVENTLOG_EINVAL;
	sb_addc(out, (char)kind_version(r->kind));
	sb_addc(out, (char)r->kind);
	switch (r->kind) {
	case EVENTLOG_EVENT: {
		sb_addc(out, (char)r->type);
		sb_addc(out, r->rec_id_len ? EVENT_FLAG_REC_ID : 0);
		put_str(out, r->customer, r->customer_len);
		put_str(out, r->item, r->item_len);
		uint64_t ts = (uint64_t)r->ts;
		put_u32(out, (uint32_t)ts);
		put_u32(out, (uint32_t)(ts >> 32));
		put_f32(out, r->quantity);
		put_f32(out, r->price);
		if (r->rec_id_len)
			put_str(out, r->rec_id, r->rec_id_len);
		break;
	}
	case EVENTLOG_CONSENT:
		sb_addc(out, r->personalization ? CONSENT_FLAG_PERSONALIZATION : 0);
		put_str(out, r->customer, r->customer_len);
		break;
	case EVENTLOG_ITEM:
		sb_addc(out, (char)r->item_set);
		sb_addc(out, (char)r->item_clear);
		put_str(out, r->item, r->item_len);
		break;
	case EVENTLOG_CATALOG:
		sb_addc(out, (char)r->catalog_fields);
		put_str(out, r->item, r->item_len);
		if (r->catalog_fields & EVENTLOG_CATALOG_TITLE)
			put_str(out, r->title, r->title_len);
		if (r->catalog_fields & EVENTLOG_CATALOG_CATEGORY)
			put_str(out, r->category, r->category_len);
		if (r->catalog_fields & EVENTLOG_CATALOG_PRICE)
			put_f32(out, r->price);
		if (r->catalog_fields & EVENTLOG_CATALOG_FIRST_SEEN)
			put_u32(out, (uint32_t)r->first_seen);
		break;
	case EVENTLOG_EXPIRE: {
		put_str(out, r->customer, r->customer_len);
		uint64_t ts = (uint64_t)r->ts;
		put_u32(out, (uint32_t)ts);
		put_u32(out, (uint32_t)(ts >> 32));
		break;
	}
	case EVENTLOG_SERVED: {
		uint64_t ts = (uint64_t)r->ts;
		put_u32(out, r->experiment);
		sb_addc(out, (char)r->variant);
		put_u32(out, (uint32_t)ts);
		put_u32(out, (uint32_t)(ts >> 32));
		put_u32(out, r->n_items);
		sb_addc(out, (char)r->n_hashes);
		sb_add(out, r->hashes, 8u * r->n_hashes);
		put_str(out, r->customer, r->customer_len);
		break;
	}
	default:
		put_str(out, r->customer, r->customer_len);
		break;
	}
	return 0;
}

/* A cursor over the bytes being decoded; every get checks the bounds. */
typedef struct reader {
	const unsigned char *p, *end;
} reader;

static bool get_u8(reader *rd, uint8_t *v)
{
	if (rd->p >= rd->end)
		return false;
	*v = *rd->p++;
	return true;
}

static bool get_u32(reader *rd, uint32_t *v)
{
	if (rd->end - rd->p < 4)
		return false;
	*v = (uint32_t)rd->p[0] | (uint32_t)rd->p[1] << 8 | (uint32_t)rd->p[2] << 16 |
	     (uint32_t)rd->p[3] << 24;
	rd->p += 4;
	return true;
}

/* A minimal varint of at most two bytes, then that many bytes of valid
 * UTF-8, min..max long. */
static bool get_str(reader *rd, size_t min, size_t max, const char **s, size_t *n)
{
	uint8_t b0, b1;
	size_t len;
	if (!get_u8(rd, &b0))
		return false;
	if (b0 < 0x80) {
		len = b0;
	} else {
		if (!get_u8(rd, &b1) || b1 == 0 || b1 >= 0x80)
			return false; /* not minimal, or a third byte */
		len = (size_t)(b0 & 0x7f) | (size_t)b1 << 7;
	}
	if (len < min || len > max || (size_t)(rd->end - rd->p) < len)
		return false;
	*s = (const char *)rd->p;
	*n = len;
	rd->p += len;
	return len == 0 || utf8_valid(*s, len);
}

int eventlog_decode(const void *buf, size_t n, eventlog_record *r)
{
	memset(r, 0, sizeof(*r));
	reader rd = { buf, (const unsigned char *)buf + n };
	uint8_t version, kind, type, flags;
	eventlog_record t = { 0 };
	if (!get_u8(&rd, &version) || version == 0)
		return EVENTLOG_EDECODE;
	if (version > FORMAT_VERSION)
		return EVENTLOG_EVERSION;
	if (!get_u8(&rd, &kind) || version != kind_version(kind))
		return EVENTLOG_EDECODE; /* a kind under another version: not canonical */
	t.kind = kind;
	switch (kind) {
	case EVENTLOG_EVENT: {
		uint32_t lo, hi, q, p;
		if (!get_u8(&rd, &type) || type > EVENTLOG_TYPE_MAX || !get_u8(&rd, &flags) ||
		    (flags & ~EVENT_FLAG_REC_ID) ||
		    !get_str(&rd, 1, EVENTLOG_CUSTOMER_MAX, &t.customer, &t.customer_len) ||
		    !get_str(&rd, 0, EVENTLOG_ITEM_MAX, &t.item, &t.item_len) || !get_u32(&rd, &lo) ||
		    !get_u32(&rd, &hi) || !get_u32(&rd, &q) || !get_u32(&rd, &p) ||
		    (t.item_len == 0 && type != EVENTLOG_TYPE_IMPRESSION))
			return EVENTLOG_EDECODE;
		if ((flags & EVENT_FLAG_REC_ID) &&
		    !get_str(&rd, 1, EVENTLOG_REC_ID_MAX, &t.rec_id, &t.rec_id_len))
			return EVENTLOG_EDECODE;
		uint64_t ts = (uint64_t)lo | (uint64_t)hi << 32;
		if (ts > EVENTLOG_TS_MAX)
			return EVENTLOG_EDECODE;
		t.ts = (int64_t)ts;
		t.type = type;
		memcpy(&t.quantity, &q, 4);
		memcpy(&t.price, &p, 4);
		if (!isfinite(t.quantity) || t.quantity == 0 || !isfinite(t.price) || !(t.price >= 0))
			return EVENTLOG_EDECODE;
		break;
	}
	case EVENTLOG_CONSENT:
		if (!get_u8(&rd, &flags) || (flags & ~CONSENT_FLAG_PERSONALIZATION) ||
		    !get_str(&rd, 1, EVENTLOG_CUSTOMER_MAX, &t.customer, &t.customer_len))
			return EVENTLOG_EDECODE;
		t.personalization = flags & CONSENT_FLAG_PERSONALIZATION;
		break;
	case EVENTLOG_ERASURE:
		if (!get_str(&rd, 1, EVENTLOG_CUSTOMER_MAX, &t.customer, &t.customer_len))
			return EVENTLOG_EDECODE;
		break;
	case EVENTLOG_ITEM:
		if (!get_u8(&rd, &t.item_set) || !get_u8(&rd, &t.item_clear) ||
		    !valid_item_bits(t.item_set, t.item_clear) ||
		    !get_str(&rd, 1, EVENTLOG_ITEM_MAX, &t.item, &t.item_len))
			return EVENTLOG_EDECODE;
		break;
	case EVENTLOG_CATALOG: {
		uint32_t v;
		if (!get_u8(&rd, &t.catalog_fields) || !t.catalog_fields ||
		    (t.catalog_fields & ~EVENTLOG_CATALOG_ALL) ||
		    !get_str(&rd, 1, EVENTLOG_ITEM_MAX, &t.item, &t.item_len))
			return EVENTLOG_EDECODE;
		if ((t.catalog_fields & EVENTLOG_CATALOG_TITLE) &&
		    !get_str(&rd, 0, EVENTLOG_TITLE_MAX, &t.title, &t.title_len))
			return EVENTLOG_EDECODE;
		if ((t.catalog_fields & EVENTLOG_CATALOG_CATEGORY) &&
		    !get_str(&rd, 0, EVENTLOG_CATEGORY_MAX, &t.category, &t.category_len))
			return EVENTLOG_EDECODE;
		if (t.catalog_fields & EVENTLOG_CATALOG_PRICE) {
			if (!get_u32(&rd, &v))
				return EVENTLOG_EDECODE;
			memcpy(&t.price, &v, 4);
			if (!valid_price(t.price))
				return EVENTLOG_EDECODE;
		}
		if (t.catalog_fields & EVENTLOG_CATALOG_FIRST_SEEN) {
			if (!get_u32(&rd, &v) || v > EVENTLOG_DAY_MAX)
				return EVENTLOG_EDECODE;
			t.first_seen = (int32_t)v;
		}
		/* get_str leaves an empty string's pointer at the cursor: a
		 * field given empty is (NULL, 0) as one not given is. */
		if (!t.title_len)
			t.title = NULL;
		if (!t.category_len)
			t.category = NULL;
		break;
	}
	case EVENTLOG_EXPIRE: {
		uint32_t lo, hi;
		if (!get_str(&rd, 1, EVENTLOG_CUSTOMER_MAX, &t.customer, &t.customer_len) ||
		    !get_u32(&rd, &lo) || !get_u32(&rd, &hi))
			return EVENTLOG_EDECODE;
		uint64_t ts = (uint64_t)lo | (uint64_t)hi << 32;
		if (ts > EVENTLOG_TS_MAX)
			return EVENTLOG_EDECODE;
		t.ts = (int64_t)ts;
		break;
	}
	case EVENTLOG_SERVED: {
		uint32_t lo, hi;
		if (!get_u32(&rd, &t.experiment) || !t.experiment || !get_u8(&rd, &t.variant) ||
		    t.variant > EVENTLOG_VARIANT_MAX || !get_u32(&rd, &lo) || !get_u32(&rd, &hi) ||
		    !get_u32(&rd, &t.n_items) || !get_u8(&rd, &t.n_hashes) ||
		    t.n_hashes > EVENTLOG_SERVED_ITEMS || t.n_hashes > t.n_items ||
		    rd.end - rd.p < 8 * (ptrdiff_t)t.n_hashes)
			return EVENTLOG_EDECODE;
		t.hashes = t.n_hashes ? rd.p : NULL;
		rd.p += 8 * (size_t)t.n_hashes;
		if (!get_str(&rd, 1, EVENTLOG_CUSTOMER_MAX, &t.customer, &t.customer_len))
			return EVENTLOG_EDECODE;
		uint64_t ts = (uint64_t)lo | (uint64_t)hi << 32;
		if (ts > EVENTLOG_TS_MAX)
			return EVENTLOG_EDECODE;
		t.ts = (int64_t)ts;
		break;
	}
	default:
		return EVENTLOG_EDECODE;
	}
	if (rd.p != rd.end)
		return EVENTLOG_EDECODE;
	*r = t;
	return 0;
}
