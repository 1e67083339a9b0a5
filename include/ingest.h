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
	SKIP_TIMESTAMP,    /* unparsable, or more than a day in the future */
	SKIP_EVENT,        /* unknown event type */
	SKIP_QUANTITY,     /* not a number, zero, or absurdly large */
	SKIP_PRICE,        /* not a number or negative */
	SKIP_AFTER_AS_OF,  /* timestamp after ingest_options.until */
	SKIP_EXCLUDED,     /* customer in ingest_options.exclude (erased) */
	SKIP_REASONS
};
const char *skip_reason_name(enum skip_reason r);

/* Counts for the catalog and customers files. */
typedef struct ingest_stats {
	uint64_t records, skipped;
	uint64_t added; /* items or customers that only this file named */
} ingest_stats;

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

	/* From the catalog file, per item index (NULL when no catalog). */
	char **item_title;       /* NULL entries: no title */
	uint32_t *item_category; /* index into categories, UINT32_MAX: none */
	float *item_price;       /* < 0: unknown */
	idmap *categories;
	uint32_t items_cap;      /* length of the three arrays above */
	ingest_stats catalog_stats;

	/* From the customers file, per customer index (NULL when none). */
	char **customer_attrs;     /* JSON object text, or NULL */
	uint16_t *customer_birthday; /* month * 100 + day, 0: unknown */
	uint32_t customers_cap;    /* length of the two arrays above */
	ingest_stats customer_stats;
} dataset;

/* Logical column names, of all three files (DESIGN.md "Input files"). */
enum column {
	COL_CUSTOMER_ID = 0,
	COL_ITEM_ID,
	COL_TIMESTAMP,
	COL_EVENT,
	COL_QUANTITY,
	COL_PRICE,
	COL_TITLE,      /* catalog */
	COL_CATEGORY,   /* catalog */
	COL_COUNTRY,    /* customers */
	COL_BIRTH_DATE, /* customers */
	COL_COUNT
};

/* Limits on catalog and customer text, in bytes. */
#define INGEST_MAX_TITLE 512
#define INGEST_MAX_CATEGORY 128
#define INGEST_MAX_ATTRS 4096 /* a customer's attributes as JSON */


typedef struct ingest_options {
	const char *columns;   /* "logical=Header,..." or NULL */
	bool strict;           /* first bad row is fatal */
	unsigned max_reported; /* bad rows described on `report` (default 5) */
	FILE *report;          /* where bad rows are described; NULL: stderr */
	const char *label;     /* progress label; NULL: "ingest" */
	bool has_until;        /* skip rows with a timestamp after `until` */
	int64_t until;         /* Unix seconds (training "as of" a date) */
	const idmap *exclude;  /* customer ids to leave out (erasure), or NULL */
} ingest_options;

/* Reads a list of customer ids, one per line (blank lines and lines
 * starting with '#' ignored), into a new idmap in *out. Returns 0, or -1
 * with a message in *err. */
int ingest_id_list(const char *path, idmap **out, strbuf *err);

/* Parses a --columns spec into header names per logical column; names not
 * mentioned keep their logical name. `names` must hold COL_COUNT pointers;
 * they point into `storage`, which the caller releases. Returns 0, or -1
 * with a message in *err for an unknown logical name or a malformed spec. */
int ingest_parse_columns(const char *spec, const char *names[COL_COUNT], strbuf *storage,
			 strbuf *err);

/* Reads the catalog file (item_id; title, category, price optional) into
 * ds: items it names that no interaction did are added (with no history).
 * Call after ingest_read(). Returns 0, or -1 with a message in *err. Bad
 * rows are skipped, counted in ds->catalog_stats, and reported like
 * interaction rows. */
int ingest_catalog(const char *path, const ingest_options *opt, dataset *ds, strbuf *err);

/* Reads the customers file (customer_id; country, birth_date and any other
 * columns as attributes) into ds; customers only this file names are added.
 * Call after ingest_read(). Returns 0, or -1 with a message in *err. */
int ingest_customers(const char *path, const ingest_options *opt, dataset *ds, strbuf *err);

/* Makes the per-item and per-customer attribute arrays as long as the id
 * maps (new entries empty). Called by the readers; harmless to repeat. */
void dataset_fit_attributes(dataset *ds);

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
