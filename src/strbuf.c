/*
 * strbuf: a growable byte buffer. See strbuf.h for the invariants.
 */
#include "strbuf.h"

#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void sb_init(strbuf *sb, size_t hint)
{
	sb->cap = hint ? hint : 1;
	sb->buf = xmalloc(sb->cap);
	sb->len = 0;
	sb->buf[0] = '\0';
}

void sb_release(strbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->cap = 0;
}

void sb_reset(strbuf *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

void sb_truncate(strbuf *sb, size_t len)
{
	if (len < sb->len) {
		sb->len = len;
		sb->buf[len] = '\0';
	}
}

void sb_grow(strbuf *sb, size_t extra)
{
	size_t need = sb->len + extra + 1;
	if (need < extra)
		need = SIZE_MAX; /* xrealloc reports the overflow as OOM */
	if (need <= sb->cap)
		return;
	size_t cap = sb->cap ? sb->cap : 64;
	while (cap < need)
		cap = cap < SIZE_MAX / 2 ? cap * 2 : need;
	sb->buf = xrealloc(sb->buf, cap);
	if (sb->cap == 0)
		sb->buf[0] = '\0';
	sb->cap = cap;
}

const char *sb_str(const strbuf *sb)
{
	return sb->buf ? sb->buf : "";
}

char *sb_detach(strbuf *sb, size_t *len)
{
	if (!sb->buf)
		sb_grow(sb, 0);
	char *p = sb->buf;
	if (len)
		*len = sb->len;
	sb->buf = NULL;
	sb->len = sb->cap = 0;
	return p;
}

void sb_add(strbuf *sb, const void *data, size_t n)
{
	sb_grow(sb, n);
	if (n == 0)
		return; /* data may be NULL then (an empty LMDB value, say) */
	memcpy(sb->buf + sb->len, data, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void sb_adds(strbuf *sb, const char *s)
{
	sb_add(sb, s, strlen(s));
}

void sb_addc(strbuf *sb, char c)
{
	sb_grow(sb, 1);
	sb->buf[sb->len++] = c;
	sb->buf[sb->len] = '\0';
}

void sb_vaddf(strbuf *sb, const char *fmt, va_list ap)
{
	va_list copy;
	va_copy(copy, ap);
	sb_grow(sb, 64);
	int n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
	if (n < 0) {
		va_end(copy);
		return;
	}
	if ((size_t)n >= sb->cap - sb->len) {
		sb_grow(sb, (size_t)n);
		vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, copy);
	}
	va_end(copy);
	sb->len += (size_t)n;
}

void sb_addf(strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(sb, fmt, ap);
	va_end(ap);
}

void sb_add_u64(strbuf *sb, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	sb_add(sb, tmp + i, sizeof(tmp) - i);
}

void sb_add_i64(strbuf *sb, int64_t v)
{
	if (v < 0) {
		sb_addc(sb, '-');
		sb_add_u64(sb, (uint64_t)0 - (uint64_t)v);
	} else {
		sb_add_u64(sb, (uint64_t)v);
	}
}

/* 10^k for k = -4 .. 9 (index k + 4), as the compiler reads the literals:
 * the decade of a value is decided by comparisons with these. */
static const double decades[] = { 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2,
				  1e3,  1e4,  1e5,  1e6,  1e7, 1e8, 1e9 };

/* floor(log10(a)) for a in [1e-4, 1e9), as the comparisons with decades[]
 * say: from a's binary exponent e, k = floor(e log10 2) (1233 / 4096 is
 * log10 2 to 5e-6, exact for every e here) has 10^k <= 2^e <= a < 2^(e+1)
 * < 10^(k+2), so the decade is k or k + 1, one comparison apart. It
 * replaces a walk up the decades (up to 13 comparisons in a row), and
 * test_util checks it against that walk over every float in the range. */
static int decade_of(double a)
{
	uint64_t bits;
	memcpy(&bits, &a, sizeof(bits));
	int e = (int)(bits >> 52) - 1023; /* a >= 1e-4: a normal number */
	int k = ((e * 1233 + (64 << 12)) >> 12) - 64; /* floor, the shifted value kept >= 0 */
	return k + (a >= decades[k + 5]);
}

void sb_add_double(strbuf *sb, double v, int digits)
{
	if (!isfinite(v))
		v = 0;
	/* Scores on the request path: plain decimals in [1e-4, 1e9) are
	 * written without printf (a tenth of a request's time otherwise). */
	double a = fabs(v);
	if (digits >= 1 && digits <= 9 && (a == 0 || (a >= 1e-4 && a < 1e9))) {
		int mag = a == 0 ? 0 : decade_of(a);
		int decimals = digits - 1 - mag;
		if (decimals < 0)
			decimals = 0;
		assert(decimals <= 12); /* mag >= -4, digits <= 9 */
		static const double pow10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6,
						1e7, 1e8, 1e9, 1e10, 1e11, 1e12 };
		/* Rounded half away from zero, as llround (x < 2^32 here, so the
		 * truncation is exact and so is x minus it), without the call. x
		 * is below 10^digits (or a itself, < 1e9), at most 10^9 once
		 * rounded: 32 bits, whose divisions by 10 and 100 are cheaper
		 * than 64-bit ones. */
		double x = a * pow10[decimals];
		uint32_t scaled = (uint32_t)x;
		if (x - (double)scaled >= 0.5)
			scaled++;
		bool negative = v < 0 && scaled;
		/* Fraction digits, trailing zeros dropped (as %g does). */
		while (decimals > 0 && scaled % 10 == 0) {
			scaled /= 10;
			decimals--;
		}
		/* Right to left into tmp, then one fixed-size copy (at most 24
		 * bytes: a sign, 10 integer digits, a point, 12 decimals); no
		 * division by a power of ten chosen at run time. */
		static const char pairs[] = "00010203040506070809101112131415161718192021222324"
					    "25262728293031323334353637383940414243444546474849"
					    "50515253545556575859606162636465666768697071727374"
					    "75767778798081828384858687888990919293949596979899";
		char tmp[64];
		char *end = tmp + 40, *p = end;
		int i = decimals;
		for (; i >= 2; i -= 2) { /* two digits a step */
			p -= 2;
			memcpy(p, pairs + 2 * (scaled % 100), 2);
			scaled /= 100;
		}
		if (i) {
			*--p = (char)('0' + scaled % 10);
			scaled /= 10;
		}
		if (decimals)
			*--p = '.';
		for (; scaled >= 10; scaled /= 100) {
			p -= 2;
			memcpy(p, pairs + 2 * (scaled % 100), 2);
		}
		if (scaled || p == end || *p == '.')
			*--p = (char)('0' + scaled);
		if (negative)
			*--p = '-';
		size_t n = (size_t)(end - p);
		if (sb->cap - sb->len <= 24) /* the call only when it grows */
			sb_grow(sb, 24);
		memcpy(sb->buf + sb->len, p, 24); /* past end: bytes beyond the length */
		sb->len += n;
		sb->buf[sb->len] = '\0';
		return;
	}
	sb_grow(sb, 32);
	int n = snprintf(sb->buf + sb->len, sb->cap - sb->len, "%.*g", digits, v);
	if (n > 0)
		sb->len += (size_t)n;
}

void sb_add_json_str(strbuf *sb, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	/* Worst case every byte becomes \u00XX. */
	sb_grow(sb, n * 6 + 2);
	char *o = sb->buf + sb->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c >= 0x20) {
			*o++ = (char)c;
		} else if (c == '\n') {
			*o++ = '\\';
			*o++ = 'n';
		} else if (c == '\r') {
			*o++ = '\\';
			*o++ = 'r';
		} else if (c == '\t') {
			*o++ = '\\';
			*o++ = 't';
		} else {
			*o++ = '\\';
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o++ = '"';
	*o = '\0';
	sb->len = (size_t)(o - sb->buf);
}
