/*
 * ingest: interactions CSV (DESIGN.md "Input files") into a dataset: dense
 * customer and item indexes plus one compact row per interaction.
 *
 * Columns are found by header name; `--columns logical=Header,...` renames
 * them. Bad rows are skipped and counted by reason; the first few are
 * reported with their line numbers; in strict mode the first one is fatal.
 */
#ifndef SHOPKEEPER_INGEST_H
#define SHOPKEEPER_INGEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "idmap.h"
#include "strbuf.h"

enum event_type { EVENT_VIEW = 0, EVENT_CART = 1, EVENT_PURCHASE = 2, EVENT_TYPES = 3 };

/* "view", "cart", "purchase" */
const char *event_name(enum event_type e);
/* Parses an event name (case-insensitive). Returns -1 if unknown. */
int event_parse(const char *s, size_t n);

typedef struct interaction {
	uint32_t customer; /* index into dataset.customers */
	uint32_t item;     /* index into dataset.items */
	int64_t ts;        /* Unix seconds; 0 when the file has no timestamp */
	float quantity;    /* negative for a return */
	float price;       /* unit price, 0 if unknown */
	uint8_t event;     /* enum event_type */
} interaction;

/* Why rows were skipped. */
enum skip_reason {
	SKIP_CSV = 0,      /* malformed CSV record (quoting, length, UTF-8) */
	SKIP_NO_CUSTOMER,  /* empty or unusable customer id */
	SKIP_NO_ITEM,      /* empty or unusable item id */
	SKIP_TIMESTAMP,    /* unparsable timestamp */
	SKIP_EVENT,        /* unknown event type */
	SKIP_QUANTITY,     /* not a number, zero, or absurdly large */
	SKIP_PRICE,        /* not a number or negative */
	SKIP_AFTER_AS_OF,  /* timestamp after ingest_options.until */
	SKIP_REASONS
};
const char *skip_reason_name(enum skip_reason r);

typedef struct dataset {
	idmap *customers;
	idmap *items;
	interaction *rows;
	size_t n_rows, cap_rows;

	uint64_t records;  /* data records seen (rows kept + skipped) */
	uint64_t skipped;  /* rows skipped, all reasons */
	uint64_t skipped_by[SKIP_REASONS];
	uint64_t returns;  /* kept rows with negative quantity */
	int64_t ts_min, ts_max; /* over kept rows with a timestamp */
	bool has_ts;
} dataset;

/* Logical column names of the interactions file. */
enum column {
	COL_CUSTOMER_ID = 0,
	COL_ITEM_ID,
	COL_TIMESTAMP,
	COL_EVENT,
	COL_QUANTITY,
	COL_PRICE,
	COL_COUNT
};

typedef struct ingest_options {
	const char *columns;   /* "logical=Header,..." or NULL */
	bool strict;           /* first bad row is fatal */
	unsigned max_reported; /* bad rows described on `report` (default 5) */
	FILE *report;          /* where bad rows are described; NULL: stderr */
	const char *label;     /* progress label; NULL: "ingest" */
	bool has_until;        /* skip rows with a timestamp after `until` */
	int64_t until;         /* Unix seconds (training "as of" a date) */
} ingest_options;

/* Parses a --columns spec into header names per logical column; names not
 * mentioned keep their logical name. `names` must hold COL_COUNT pointers;
 * they point into `storage`, which the caller releases. Returns 0, or -1
 * with a message in *err for an unknown logical name or a malformed spec. */
int ingest_parse_columns(const char *spec, const char *names[COL_COUNT], strbuf *storage,
			 strbuf *err);

/* Initialises an empty dataset. */
void dataset_init(dataset *ds);
/* Frees everything the dataset owns; safe on an initialised dataset. */
void dataset_free(dataset *ds);

/* Reads the interactions file at `path` ("-" for stdin, gzip detected) into
 * ds (initialised by the caller; rows are appended). Returns 0, or -1 with a
 * message in *err: file unreadable, header missing a required column, a read
 * error, or a bad row in strict mode. */
int ingest_read(const char *path, const ingest_options *opt, dataset *ds, strbuf *err);

#endif
