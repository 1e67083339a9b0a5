/*
 * strbuf: a growable byte buffer for building responses, messages and keys.
 *
 * Invariants: an empty strbuf is all zeros, so STRBUF_INIT and memory
 * from calloc are both valid and empty, and `buf` is NULL until the first
 * sb_init, sb_grow or append. Unlike git's strbuf (whose static "slop"
 * buffer keeps `buf` non-NULL from STRBUF_INIT on), we do not promise a
 * non-NULL `buf` in every state: the structs that hold one (the api, the
 * state's transactions and iterators, connections) are zero-filled by
 * xcalloc, where no initialiser could keep that promise.
 * What holds in every state: sb_str() is a C string ("" when empty); and
 * after sb_init or any append, `buf` is not NULL and buf[len] == '\0', so
 * `buf` may be used directly once something was written. sb_release and
 * sb_detach leave the all-zeros state. Appends cannot fail (allocation
 * aborts on OOM). tests/test_util.c checks these.
 */
#ifndef SHOPKEEPER_STRBUF_H
#define SHOPKEEPER_STRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct strbuf {
	char *buf;  /* the bytes, NUL-terminated; NULL only before first use */
	size_t len; /* bytes in use, not counting the terminator */
	size_t cap; /* bytes allocated */
} strbuf;

#define STRBUF_INIT { NULL, 0, 0 }

/* Allocates `hint` bytes up front (at least 1); buf is "" from then on. */
void sb_init(strbuf *sb, size_t hint);
/* Frees the buffer and leaves sb all zeros: empty and reusable. */
void sb_release(strbuf *sb);
/* Empties the buffer but keeps its allocation (for reuse per request);
 * buf stays NULL if it was. */
void sb_reset(strbuf *sb);
/* Keeps the first `len` bytes (no-op when len >= sb->len). */
void sb_truncate(strbuf *sb, size_t len);
/* Makes room for `extra` more bytes. */
void sb_grow(strbuf *sb, size_t extra);
/* The contents as a C string; "" for a never-used strbuf. */
const char *sb_str(const strbuf *sb);
/* Hands the buffer to the caller (who frees it; never NULL, "" for an
 * empty sb) and leaves sb all zeros. */
char *sb_detach(strbuf *sb, size_t *len);

void sb_add(strbuf *sb, const void *data, size_t n);
void sb_adds(strbuf *sb, const char *s);
void sb_addc(strbuf *sb, char c);
void sb_addf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vaddf(strbuf *sb, const char *fmt, va_list ap);
void sb_add_u64(strbuf *sb, uint64_t v);
void sb_add_i64(strbuf *sb, int64_t v);
/* A finite double as a JSON number with up to `digits` significant digits;
 * NaN and infinities (never valid JSON) are written as 0. */
void sb_add_double(strbuf *sb, double v, int digits);
/* s[0..n) as a JSON string literal, quotes included. Control characters and
 * the quote/backslash are escaped; bytes >= 0x80 are copied as they are, so
 * the caller passes valid UTF-8. */
void sb_add_json_str(strbuf *sb, const char *s, size_t n);

#endif
