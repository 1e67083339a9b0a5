/*
 * csv: a streaming RFC 4180 reader, and field quoting for writers.
 *
 * A byte-at-a-time state machine over a 64 KiB input buffer. Field bytes go
 * into one growing `data` buffer, each field followed by a NUL, and their
 * start offsets into `offs`; pointers are built only once the record is
 * complete because `data` may move while it grows. When a record breaks a
 * limit, parsing continues (so quoting still decides where the record ends)
 * but bytes are no longer stored.
 */
#include "csv.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define CSV_INBUF (64u * 1024u)

struct csv_reader {
	FILE *in;
	csv_limits lim;
	unsigned char inbuf[CSV_INBUF];
	size_t inpos, inlen;
	bool eof, ioerr, started;
	uint64_t line;  /* current physical line, 1-based */
	uint64_t bytes; /* consumed so far */

	char *data; /* field bytes, NUL after each field */
	size_t dlen, dcap;
	size_t *offs; /* field start offsets into data */
	size_t *lens;
	const char **ptrs;
	size_t fcap;
};

csv_reader *csv_open(FILE *in, const csv_limits *limits)
{
	csv_reader *r = xcalloc(1, sizeof(*r));
	r->in = in;
	r->lim.max_record_bytes = CSV_DEFAULT_MAX_RECORD;
	r->lim.max_fields = CSV_DEFAULT_MAX_FIELDS;
	if (limits) {
		if (limits->max_record_bytes)
			r->lim.max_record_bytes = limits->max_record_bytes;
		if (limits->max_fields)
			r->lim.max_fields = limits->max_fields;
	}
	r->line = 1;
	r->dcap = 256;
	r->data = xmalloc(r->dcap);
	r->fcap = 16;
	r->offs = xmallocarray(r->fcap, sizeof(*r->offs));
	r->lens = xmallocarray(r->fcap, sizeof(*r->lens));
	r->ptrs = xmallocarray(r->fcap, sizeof(*r->ptrs));
	return r;
}

void csv_close(csv_reader *r)
{
	if (!r)
		return;
	free(r->data);
	free(r->offs);
	free(r->lens);
	free(r->ptrs);
	free(r);
}

uint64_t csv_bytes_read(const csv_reader *r)
{
	return r->bytes;
}

const char *csv_strerror(int code)
{
	switch (code) {
	case CSV_OK: return "ok";
	case CSV_EOF: return "end of file";
	case CSV_ERR_IO: return "read error";
	case CSV_ERR_TOO_LONG: return "record too long";
	case CSV_ERR_QUOTE: return "malformed quoting";
	case CSV_ERR_UTF8: return "invalid UTF-8";
	case CSV_ERR_TOO_MANY_FIELDS: return "too many fields";
	}
	return "unknown error";
}

/* Next input byte, or -1 at end of input (or on a read error, flagged). */
static int next_byte(csv_reader *r)
{
	if (r->inpos == r->inlen) {
		if (r->eof)
			return -1;
		r->inlen = fread(r->inbuf, 1, sizeof(r->inbuf), r->in);
		r->inpos = 0;
		if (r->inlen == 0) {
			r->eof = true;
			if (ferror(r->in))
				r->ioerr = true;
			return -1;
		}
	}
	r->bytes++;
	return r->inbuf[r->inpos++];
}

static int peek_byte(csv_reader *r)
{
	int c = next_byte(r);
	if (c >= 0) {
		r->inpos--;
		r->bytes--;
	}
	return c;
}

/* State for the record being parsed. */
struct rec_state {
	int err;        /* first error seen in this record, 0 if none */
	size_t nfields; /* fields begun */
	size_t bytes;   /* field bytes seen (stored or not) */
};

static void store_byte(csv_reader *r, struct rec_state *st, char c)
{
	st->bytes++;
	if (st->err)
		return;
	if (st->bytes > r->lim.max_record_bytes) {
		st->err = CSV_ERR_TOO_LONG;
		return;
	}
	if (r->dlen + 1 >= r->dcap) {
		r->dcap *= 2;
		r->data = xrealloc(r->data, r->dcap);
	}
	r->data[r->dlen++] = c;
}

static void begin_field(csv_reader *r, struct rec_state *st)
{
	st->nfields++;
	if (st->err)
		return;
	if (st->nfields > r->lim.max_fields) {
		st->err = CSV_ERR_TOO_MANY_FIELDS;
		return;
	}
	if (st->nfields > r->fcap) {
		r->fcap *= 2;
		r->offs = xreallocarray(r->offs, r->fcap, sizeof(*r->offs));
		r->lens = xreallocarray(r->lens, r->fcap, sizeof(*r->lens));
		r->ptrs = xreallocarray(r->ptrs, r->fcap, sizeof(*r->ptrs));
	}
	r->offs[st->nfields - 1] = r->dlen;
}

static void end_field(csv_reader *r, struct rec_state *st)
{
	if (st->err)
		return;
	size_t i = st->nfields - 1;
	r->lens[i] = r->dlen - r->offs[i];
	if (r->dlen + 1 >= r->dcap) {
		r->dcap *= 2;
		r->data = xrealloc(r->data, r->dcap);
	}
	r->data[r->dlen++] = '\0';
}

/* Consumes the rest of a "\r\n" pair after a '\r'. */
static void eat_lf_after_cr(csv_reader *r)
{
	if (peek_byte(r) == '\n')
		next_byte(r);
}

int csv_read(csv_reader *r, csv_record *rec)
{
	enum { FIELD_START, UNQUOTED, QUOTED, QUOTE_SEEN } state;

	if (!r->started) {
		r->started = true;
		/* Skip a UTF-8 byte order mark. */
		if (peek_byte(r) == 0xef) {
			next_byte(r);
			if (peek_byte(r) == 0xbb) {
				next_byte(r);
				if (peek_byte(r) == 0xbf)
					next_byte(r);
			}
		}
	}

	for (;;) { /* loops only to skip blank lines */
		struct rec_state st = { 0, 0, 0 };
		bool any = false; /* saw any byte of this record */
		r->dlen = 0;
		rec->line = r->line;
		state = FIELD_START;
		begin_field(r, &st);

		for (;;) {
			int c = next_byte(r);
			if (c < 0) {
				if (r->ioerr)
					return CSV_ERR_IO;
				if (!any)
					return CSV_EOF;
				if (state == QUOTED && !st.err)
					st.err = CSV_ERR_QUOTE; /* unterminated quote */
				break;
			}
			any = true;
			if (c == '\n')
				r->line++;

			if (state == QUOTED) {
				if (c == '"')
					state = QUOTE_SEEN;
				else
					store_byte(r, &st, (char)c);
				continue;
			}
			if (state == QUOTE_SEEN) {
				if (c == '"') { /* doubled quote */
					store_byte(r, &st, '"');
					state = QUOTED;
					continue;
				}
				if (c != ',' && c != '\n' && c != '\r') {
					if (!st.err)
						st.err = CSV_ERR_QUOTE;
					state = UNQUOTED;
					continue;
				}
				/* fall through to the separator handling below */
			}
			if (c == ',') {
				end_field(r, &st);
				begin_field(r, &st);
				state = FIELD_START;
				continue;
			}
			if (c == '\n' || c == '\r') {
				if (c == '\r') {
					eat_lf_after_cr(r); /* "\r\n" or a lone "\r" */
					r->line++;
				}
				break;
			}
			if (state == FIELD_START && c == '"') {
				state = QUOTED;
				continue;
			}
			state = UNQUOTED;
			store_byte(r, &st, (char)c);
		}

		end_field(r, &st);
		if (st.err)
			return st.err;
		/* A line with nothing on it is not a record. */
		if (st.nfields == 1 && r->lens[0] == 0 && st.bytes == 0 && state == FIELD_START)
			continue;

		for (size_t i = 0; i < st.nfields; i++) {
			r->ptrs[i] = r->data + r->offs[i];
			if (!utf8_valid(r->ptrs[i], r->lens[i]))
				return CSV_ERR_UTF8;
		}
		rec->nfields = st.nfields;
		rec->fields = r->ptrs;
		rec->lens = r->lens;
		return CSV_OK;
	}
}

/* ---- writing ------------------------------------------------------------- */

void csv_add_field(strbuf *sb, const char *s, size_t n)
{
	bool quote = n > 0 && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t');
	for (size_t i = 0; i < n && !quote; i++)
		quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
	if (!quote) {
		sb_add(sb, s, n);
		return;
	}
	sb_addc(sb, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"')
			sb_addc(sb, '"');
		sb_addc(sb, s[i]);
	}
	sb_addc(sb, '"');
}
