/*
 * ingest_internal: what ingest.c and ingest_catalog.c share, and nothing
 * else includes: the scan's state a record function sees, the context of
 * this module's record functions, and the field helpers (static inline:
 * the interactions loop calls them per row).
 */
#ifndef SHOPKEEPER_INGEST_INTERNAL_H
#define SHOPKEEPER_INGEST_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "csv.h"
#include "idmap.h"
#include "ingest.h"
#include "strbuf.h"

/* A price beyond this is a data error, as ingest.c says of quantities. */
#define MAX_PRICE 1e9

/* One file's scan (ingest_scan_file), as its record functions see it. */
struct ingest_scan {
	const ingest_options *opt;
	FILE *report;
	unsigned reported;
	strbuf *err;
	int64_t now;
	uint64_t *records, *skipped; /* this file's counters */
	uint64_t *skipped_by;        /* per reason, or NULL */
	const int *cols;             /* column index per logical column */
	const char *const *header;   /* header names (customers: attributes) */
	size_t n_header;
	uint64_t excluded;           /* rows left out quietly (erased customers) */
};

/* Ids a catalog or customers file lists more than once (one byte per id
 * index: 0 unseen, 1 once, 2 repeated), and the first few of them. */
#define REPEATS_SHOWN 5
struct repeats {
	uint8_t *seen;
	uint32_t cap;
	uint64_t rows, ids;
	strbuf first; /* display text: "a", "b" */
};

/* What this module's record functions see through their arg. */
struct file_ctx {
	dataset *ds;
	struct repeats rep;
};

/* Field col of rec (s borrowed from rec), or "" when the column is
 * missing (col < 0) or the row is short. */
static inline void field(const csv_record *rec, int col, const char **s, size_t *n)
{
	if (col < 0 || (size_t)col >= rec->nfields) {
		*s = "";
		*n = 0;
	} else {
		*s = rec->fields[col];
		*n = rec->lens[col];
	}
}

/* An erased customer's rows are left out quietly: counted, not reported. */
static inline bool excluded(struct ingest_scan *rc, const char *id, size_t len)
{
	uint32_t idx;
	if (!rc->opt->exclude || !idmap_find(rc->opt->exclude, id, len, &idx))
		return false;
	(*rc->skipped)++;
	rc->excluded++;
	if (rc->skipped_by)
		rc->skipped_by[SKIP_EXCLUDED]++;
	return true;
}

#endif
