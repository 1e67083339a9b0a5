/*
 * rec_json: the recommendation JSON writer. See rec_json.h for the shapes.
 */
#include "rec_json.h"
#include "live_items.h"

#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- appending the pieces ---------------------------------------------------
 * An answer is some 60 short pieces (keys, ids, punctuation). Through
 * sb_adds and sb_addc each cost a call, a strlen and a call to sb_grow:
 * about 70 instructions for a 10-byte key, a fifth of the customer route's
 * user-space instructions (callgrind, issue 17). These do the same inline:
 * the room check and the copy; the strbuf invariant (buf[len] == '\0')
 * holds after each. */

static inline void put(strbuf *sb, const char *s, size_t n)
{
	if (sb->cap - sb->len <= n)
		sb_grow(sb, n);
	memcpy(sb->buf + sb->len, s, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

/* A string literal: its length is known when compiled. */
#define PUT_LIT(sb, lit) put((sb), (lit), sizeof(lit) - 1)

static inline void put_c(strbuf *sb, char c)
{
	put(sb, &c, 1);
}

/* Whether any of the 8 bytes of w is one a JSON string escapes: below
 * 0x20, '"' or a backslash. (x - k repeated) & ~x & 0x80 repeated is not
 * zero exactly when a byte of x is below k (k <= 0x80: bytes of 0x80 and
 * above never match); x is w for the control characters, and w with the
 * quote or the backslash repeated xor-ed out, for those (below 1: zero). */
static inline bool word_escapes(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
	return (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs;
}

static inline uint64_t load8(const char *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
	return w;
}

static inline uint32_t load4(const char *p)
{
	uint32_t w;
	memcpy(&w, p, 4);
	return w;
}

/* s[0..n) as a JSON string. Ids, titles and URLs almost never need an
 * escape: those are checked and copied 8 bytes at a time, the last word
 * (or two 4-byte halves, for 4 to 7 bytes) overlapping the one before, so
 * that no byte past s is read and no copy needs a call. Checked a byte at
 * a time, with a table load each, they were 2,500 of the customer route's
 * instructions, 9% of what is not libmicrohttpd's pool memset. Anything
 * else goes to the one JSON string encoder, sb_add_json_str (the same
 * bytes either way: test_rec_json). */
static void put_json_str_any(strbuf *sb, const char *s, size_t n)
{
	if (sb->cap - sb->len <= n + 2)
		sb_grow(sb, n + 2);
	char *o = sb->buf + sb->len + 1; /* after the opening quote */
	if (n >= 8) {
		size_t i = 0;
		for (; i + 8 <= n; i += 8) {
			uint64_t w = load8(s + i);
			if (word_escapes(w))
				goto escape;
			memcpy(o + i, &w, 8);
		}
		if (i < n) {
			uint64_t w = load8(s + n - 8);
			if (word_escapes(w))
				goto escape;
			memcpy(o + n - 8, &w, 8);
		}
	} else if (n >= 4) {
		uint32_t a = load4(s), b = load4(s + n - 4);
		if (word_escapes(a | (uint64_t)b << 32))
			goto escape;
		memcpy(o, &a, 4);
		memcpy(o + n - 4, &b, 4);
	} else {
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c < 0x20 || c == '"' || c == '\\')
				goto escape;
			o[i] = (char)c;
		}
	}
	o[-1] = '"';
	o[n] = '"';
	o[n + 1] = '\0';
	sb->len += n + 2;
	return;
escape: /* nothing written at or before buf[len] yet */
	sb_add_json_str(sb, s, n);
}

/* put_json_str_any, with ids of 4 to 8 bytes (Online Retail's are 5 to
 * 7, and an answer has some 35 of them) done where it is called: the
 * call and its loop were 66 instructions an id. */
static inline void put_json_str(strbuf *sb, const char *s, size_t n)
{
	if (n - 4 <= 4 && sb->cap - sb->len > 10) {
		uint32_t a = load4(s), b = load4(s + n - 4);
		if (!word_escapes(a | (uint64_t)b << 32)) {
			char *o = sb->buf + sb->len;
			o[0] = '"';
			memcpy(o + 1, &a, 4);
			memcpy(o + n - 3, &b, 4);
			o[n + 1] = '"';
			o[n + 2] = '\0';
			sb->len += n + 2;
			return;
		}
	}
	put_json_str_any(sb, s, n);
}

/* v rounded to `decimals` places, trailing zeros dropped. */
static void add_fixed(strbuf *sb, double v, int decimals)
{
	static const double scale[] = { 1, 10, 100, 1000, 10000 };
	assert(decimals >= 0 && decimals <= 4);
	if (!isfinite(v))
		v = 0;
	double a = fabs(v) * scale[decimals];
	if (a >= 9e15) { /* past exact integers in a double: printf rounds */
		sb_addf(sb, "%.*f", decimals, v);
		return;
	}
	uint64_t scaled = (uint64_t)llround(a), unit = (uint64_t)scale[decimals];
	uint64_t ip = scaled / unit, fp = scaled % unit;
	if (v < 0 && scaled)
		put_c(sb, '-');
	sb_add_u64(sb, ip);
	if (!fp)
		return;
	int width = decimals;
	while (fp % 10 == 0) {
		fp /= 10;
		width--;
	}
	char digits[8];
	for (int i = width - 1; i >= 0; i--, fp /= 10)
		digits[i] = (char)('0' + fp % 10);
	put_c(sb, '.');
	put(sb, digits, (size_t)width);
}

void rec_json_add_money(strbuf *sb, double v)
{
	add_fixed(sb, v, REC_JSON_MONEY_DECIMALS);
}

void rec_json_add_intent(strbuf *sb, double v)
{
	add_fixed(sb, v, REC_JSON_INTENT_DECIMALS);
}

static void add_item_id(strbuf *sb, const model *m, uint32_t idx)
{
	size_t len;
	const char *id = model_item_id(m, idx, &len);
	put_json_str(sb, id, len);
}

/* "title":"..." with a comma before it: only when known, unless `always`. */
static void add_title(strbuf *sb, const model *m, uint32_t idx, bool always)
{
	size_t len;
	const char *title = model_item_title(m, idx, &len);
	if (!len && !always)
		return;
	PUT_LIT(sb, ",\"title\":");
	put_json_str(sb, title, len);
}

/* ,"key":"value", only when value is not empty, unless `always`. */
static void add_text(strbuf *sb, const char *key, const char *s, size_t len, bool always)
{
	if (!len && !always)
		return;
	put_c(sb, ',');
	put(sb, key, strlen(key));
	put_json_str(sb, s, len);
}

/* What a page renders besides the title: "price" (cents; null when unknown,
 * left out then unless `always`), "category", "image_url", "url" (left
 * out when none, unless `always`: ""). */
static void add_catalog(strbuf *sb, const model *m, uint32_t idx, bool always)
{
	size_t len;
	const char *s;
	float price = model_item_price(m, idx);
	if (price >= 0) {
		PUT_LIT(sb, ",\"price\":");
		rec_json_add_money(sb, price);
	} else if (always) {
		PUT_LIT(sb, ",\"price\":null");
	}
	uint32_t cat = model_item_category(m, idx);
	s = cat != UINT32_MAX ? model_category_name(m, cat, &len) : (len = 0, "");
	add_text(sb, "\"category\":", s, len, always);
	s = model_item_image_url(m, idx, &len);
	add_text(sb, "\"image_url\":", s, len, always);
	s = model_item_url(m, idx, &len);
	add_text(sb, "\"url\":", s, len, always);
}

static void add_because(strbuf *sb, const model *m, const rec_item *it, enum rec_json_shape shape)
{
	PUT_LIT(sb, ",\"because\":[");
	for (uint8_t b = 0; b < it->n_because; b++) {
		if (b)
			put_c(sb, ',');
		if (shape == REC_JSON_API) {
			add_item_id(sb, m, it->because[b]);
			continue;
		}
		PUT_LIT(sb, "{\"item_id\":");
		add_item_id(sb, m, it->because[b]);
		add_title(sb, m, it->because[b], true);
		put_c(sb, '}');
	}
	put_c(sb, ']');
}

/* Every item says where it comes from: personal, content or popular
 * (enum rec_source). */
static void add_source(strbuf *sb, const rec_item *it)
{
	/* One literal each: the name's call, strlen and three appends were
	 * 88 instructions an item. The names are rec_source_name's
	 * (test_rec_json checks each). */
	switch ((enum rec_source)it->source) {
	case REC_PERSONAL:
		PUT_LIT(sb, ",\"source\":\"personal\"");
		return;
	case REC_POPULAR:
		PUT_LIT(sb, ",\"source\":\"popular\"");
		return;
	case REC_CONTENT:
		PUT_LIT(sb, ",\"source\":\"content\"");
		return;
	}
	const char *name = rec_source_name((enum rec_source)it->source);
	PUT_LIT(sb, ",\"source\":\"");
	put(sb, name, strlen(name));
	put_c(sb, '"');
}

/* An item added since training (live_items.h): id, title, price and
 * category as its PUT gave them; no URLs, no because items. */
static void add_live(strbuf *sb, const rec_live_item *li, bool always)
{
	if (li->title_len || always) {
		PUT_LIT(sb, ",\"title\":");
		put_json_str(sb, li->title, li->title_len);
	}
	if (li->price >= 0) {
		PUT_LIT(sb, ",\"price\":");
		rec_json_add_money(sb, li->price);
	} else if (always) {
		PUT_LIT(sb, ",\"price\":null");
	}
	add_text(sb, "\"category\":", li->category, li->category_len, always);
	add_text(sb, "\"image_url\":", "", 0, always);
	add_text(sb, "\"url\":", "", 0, always);
}

/* One item of the answer, either shape. */
static void add_item(strbuf *sb, const model *m, const rec_result *r, const rec_item *it,
		     enum rec_json_shape shape, bool because)
{
	const rec_live_item *li = rec_live_at(m, r, it->item);
	PUT_LIT(sb, "{\"item_id\":");
	if (li)
		put_json_str(sb, li->id, li->id_len);
	else
		add_item_id(sb, m, it->item);
	if (shape == REC_JSON_EXPORT) {
		if (li) {
			add_live(sb, li, true);
		} else {
			add_title(sb, m, it->item, true);
			add_catalog(sb, m, it->item, true);
		}
		PUT_LIT(sb, ",\"score\":");
		sb_add_double(sb, it->score, REC_JSON_SCORE_DIGITS);
		add_source(sb, it);
		add_because(sb, m, it, shape);
	} else {
		PUT_LIT(sb, ",\"score\":");
		sb_add_double(sb, it->score, REC_JSON_SCORE_DIGITS);
		if (li) {
			add_live(sb, li, false);
		} else {
			add_title(sb, m, it->item, false);
			add_catalog(sb, m, it->item, false);
		}
		add_source(sb, it);
		if (because)
			add_because(sb, m, it, shape);
	}
	put_c(sb, '}');
}

void rec_json_items(strbuf *sb, const model *m, const rec_result *r, enum rec_json_shape shape,
		    bool because)
{
	assert(shape == REC_JSON_API || shape == REC_JSON_EXPORT);
	assert(r->n <= REC_MAX_N);
	PUT_LIT(sb, "\"items\":[");
	for (uint32_t i = 0; i < r->n; i++) {
		if (i)
			put_c(sb, ',');
		add_item(sb, m, r, &r->items[i], shape, because);
	}
	put_c(sb, ']');
}

void rec_json_member(strbuf *sb, const model *m, const char *id, size_t len, enum segment seg,
		     float intent, const rec_result *r, enum rec_json_shape shape, bool because)
{
	const char *name = segment_name(seg);
	PUT_LIT(sb, "{\"customer_id\":");
	put_json_str(sb, id, len);
	PUT_LIT(sb, ",\"segment\":");
	put_json_str(sb, name, strlen(name));
	PUT_LIT(sb, ",\"intent\":");
	rec_json_add_intent(sb, intent);
	if (shape == REC_JSON_EXPORT) {
		const char *source = rec_source_name(r->source);
		PUT_LIT(sb, ",\"source\":");
		put_json_str(sb, source, strlen(source));
	}
	put_c(sb, ',');
	rec_json_items(sb, m, r, shape, because);
	put_c(sb, '}');
}

void rec_json_tag(strbuf *sb, const char *rec_id, const char *experiment, const char *variant)
{
	/* Neither a rec_id (base64url) nor a name (experiments.h allows
	 * [A-Za-z0-9._-]) needs escaping: copied as they are, which took
	 * this from 147 to about 90 ns an answer (bench/experiments_micro.c). */
	PUT_LIT(sb, ",\"rec_id\":\"");
	put(sb, rec_id, strlen(rec_id));
	if (!experiment) {
		PUT_LIT(sb, "\",\"experiment\":null");
		return;
	}
	PUT_LIT(sb, "\",\"experiment\":{\"name\":\"");
	put(sb, experiment, strlen(experiment));
	PUT_LIT(sb, "\",\"variant\":\"");
	put(sb, variant, strlen(variant));
	PUT_LIT(sb, "\"}");
}
