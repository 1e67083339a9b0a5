/*
 * csv: a streaming RFC 4180 reader, and the field quoting of its writers.
 *
 * Reads records one at a time from a FILE* through a fixed buffer, so memory
 * is bounded by the record limit, not by the file. Quoted fields may hold
 * commas, doubled quotes and newlines; records end in "\n", "\r\n" or "\r".
 * A UTF-8 byte order mark at the start is skipped and blank lines are
 * ignored. A stray quote inside an unquoted field is kept as a literal quote
 * (common in real exports); text after a closing quote is an error.
 *
 * A malformed record is consumed whole and reported with a negative code, so
 * the caller can count it and keep reading: the next call starts at the next
 * record. Only CSV_ERR_IO ends the stream.
 */
#ifndef SHOPKEEPER_CSV_H
#define SHOPKEEPER_CSV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "strbuf.h"

enum {
	CSV_OK = 0,                /* a record was read */
	CSV_EOF = 1,               /* no more records */
	CSV_ERR_IO = -1,           /* read error on the stream (fatal) */
	CSV_ERR_TOO_LONG = -2,     /* record longer than max_record_bytes */
	CSV_ERR_QUOTE = -3,        /* text after a closing quote, or unterminated quote */
	CSV_ERR_UTF8 = -4,         /* a field is not valid UTF-8 (or holds NUL) */
	CSV_ERR_TOO_MANY_FIELDS = -5, /* more than max_fields fields */
};

typedef struct csv_limits {
	size_t max_record_bytes; /* field bytes per record; default 64 KiB */
	size_t max_fields;       /* fields per record; default 256 */
} csv_limits;

#define CSV_DEFAULT_MAX_RECORD (64u * 1024u)
#define CSV_DEFAULT_MAX_FIELDS 256u

/* One record. The field pointers are owned by the reader and valid until the
 * next csv_read() or csv_close(); each field is NUL-terminated. */
typedef struct csv_record {
	size_t nfields;
	const char **fields;
	const size_t *lens;
	uint64_t line; /* 1-based line number where the record starts */
} csv_record;

typedef struct csv_reader csv_reader;

/* Creates a reader over `in` (not owned: the caller closes it after
 * csv_close). `limits` may be NULL for the defaults. Never fails. */
csv_reader *csv_open(FILE *in, const csv_limits *limits);

/* Reads the next record into *rec. Returns CSV_OK, CSV_EOF or a CSV_ERR_*
 * code; on CSV_ERR_* other than CSV_ERR_IO, rec->line tells where the bad
 * record started and reading may continue. */
int csv_read(csv_reader *r, csv_record *rec);

/* A short English description of a csv_read() code. */
const char *csv_strerror(int code);

/* Bytes consumed from the stream so far (for progress reports). */
uint64_t csv_bytes_read(const csv_reader *r);

/* Frees the reader; csv_close(NULL) does nothing. */
void csv_close(csv_reader *r);

/* Appends s[0..n) to sb as one RFC 4180 field: in double quotes, with each
 * quote doubled, when it holds a comma, a quote, CR or LF, or starts or
 * ends with a blank (which readers may trim); as it is otherwise. What
 * csv_read() gives back for it is s[0..n) exactly. */
void csv_add_field(strbuf *sb, const char *s, size_t n);

#endif
