/*
 * ingest: interactions CSV (README.md "Input files") into a dataset: dense
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

#include "csv.h"
#include "idmap.h"
#include "model_format.h" /* MODEL_DAY_UNKNOWN */
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
	SKIP_FIELD,        /* a catalog's recommendable or URL field unusable */
	SKIP_REASONS
};
const char *skip_reason_name(enum skip_reason r);

/* Counts for the catalog and customers files. */
typedef struct ingest_stats {
	uint64_t records, skipped;
	uint64_t added; /* items or customers that only this file named */
	/* Rows that repeat an id an earlier row of the same file had, and how
	 * many ids were repeated: a sales log passed as a catalog shows here. */
	uint64_t duplicate_rows, duplicate_ids;
} ingest_stats;

/* What was fed from the server's collected events, for the summary and the
 * model's meta record. */
typedef struct ingest_live {
	char *source;       /* where they came from, without secrets; owned by
			     * the dataset (freed by dataset_free), NULL: none */
	char last_id[48];   /* the newest stream entry read ("" from a state) */
	uint64_t read;      /* events offered to ingest_add_event */
	uint64_t added;     /* kept as training rows */
	uint64_t skipped_by[SKIP_REASONS];
	uint64_t covered;   /* left out by the source: at or before the exports'
			     * newest timestamp, so already in them */
	uint64_t no_consent; /* left out by the source: personalization withdrawn */
} ingest_live;

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
	uint8_t *item_flags;     /* MODEL_ITEM_* bits (catalog recommendable,
				  * dataset_exclude_items) */
	char **item_image_url;   /* NULL entries: none */
	char **item_url;         /* NULL entries: none */
	int32_t *item_first_seen; /* catalog first_seen as days since 1970-01-01
				   * (UTC), MODEL_DAY_UNKNOWN: not given; see
				   * dataset_first_seen for the fallback */
	idmap *categories;
	uint32_t items_cap;      /* length of the seven arrays above */
	ingest_stats catalog_stats;

	/* From the customers file, per customer index (NULL when none). */
	char **customer_attrs;     /* JSON object text, or NULL */
	uint16_t *customer_birthday; /* month * 100 + day, 0: unknown */
	uint32_t customers_cap;    /* length of the two arrays above */
	ingest_stats customer_stats;

	/* Events the server collected, added by ingest_add_event
	 * (train --events-from); all zero when none were offered. */
	ingest_live live;
} dataset;

/* Logical column names, of all three files (README.md "Input files"). */
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
	COL_RECOMMENDABLE, /* catalog: true/false (yes/no, 1/0; empty: true) */
	COL_IMAGE_URL,  /* catalog */
	COL_URL,        /* catalog */
	COL_FIRST_SEEN, /* catalog: YYYY-MM-DD (issue 18), empty: unknown */
	COL_COUNT
};

/* Limits on catalog and customer text, in bytes. */
#define INGEST_MAX_TITLE 512
#define INGEST_MAX_CATEGORY 128
#define INGEST_MAX_ATTRS 4096 /* a customer's attributes as JSON */
#define INGEST_MAX_URL 2048   /* an image or page URL (a longer one is a bad row:
			       * cut short, it would lead nowhere) */


/* Which header a logical column is read from, in order: the file's own map
 * (`file_columns`, from --catalog-columns or --customers-columns) or, for
 * a column it does not map, `columns` (--columns, written for the
 * interactions file and shared by all three); then the standard name. So `--columns item_id=StockCode` reads a
 * sales log and a catalog whose header says item_id alike. A file's own map
 * that names a missing header is an error, and so is a --columns map of a
 * column the file itself is read for (`checked` in ingest_scan_file) that
 * neither header nor standard name satisfies: a typo is not silently a
 * column left out. */
typedef struct ingest_options {
	const char *columns;   /* "logical=Header,..." or NULL */
	bool strict;           /* first bad row is fatal */
	unsigned max_reported; /* bad rows described on `report` (default 5) */
	FILE *report;          /* where bad rows are described; NULL: stderr */
	const char *label;     /* progress label; NULL: "ingest" */
	bool has_until;        /* skip rows with a timestamp after `until` */
	int64_t until;         /* Unix seconds (training "as of" a date) */
	const idmap *exclude;  /* customer ids to leave out (erasure), or NULL */
	const char *file_columns; /* this file's own map, wins over `columns`; or NULL */
} ingest_options;

/* Reads a list of ids (customers or items), one per line (blank lines and lines
 * starting with '#' ignored), into a new idmap in *out. Returns 0, or -1
 * with a message in *err. */
int ingest_id_list(const char *path, idmap **out, strbuf *err);

/* (Test only: tests/test_ingest.c; the readers parse their own specs.)
 * Parses a --columns spec into header names per logical column; names not
 * mentioned keep their logical name. `names` must hold COL_COUNT pointers;
 * they point into `storage`, which the caller releases. Returns 0, or -1
 * with a message in *err for an unknown logical name or a malformed spec. */
int ingest_parse_columns(const char *spec, const char *names[COL_COUNT], strbuf *storage,
			 strbuf *err);

/* As ingest_parse_columns, only checking; messages name `flag`
 * ("--catalog-columns"). Returns 0, or -1 with a message in *err. */
int ingest_check_columns(const char *flag, const char *spec, strbuf *err);

/* Reads the catalog file (item_id; title, category, price, recommendable,
 * image_url, url, first_seen optional) into
 * ds: items it names that no interaction did are added (with no history).
 * Call after ingest_read(). Returns 0, or -1 with a message in *err. Bad
 * rows are skipped, counted in ds->catalog_stats, and reported like
 * interaction rows. An item listed on several rows keeps its last row; the
 * repeats are counted and a warning with the first few ids goes to the
 * report stream (it is what a sales log passed as a catalog looks like).
 * The file's own map comes from --catalog-columns (opt->file_columns). */
int ingest_catalog(const char *path, const ingest_options *opt, dataset *ds, strbuf *err);

/* Reads the customers file (customer_id; country, birth_date and any other
 * columns as attributes) into ds; customers only this file names are added.
 * Call after ingest_read(). Returns 0, or -1 with a message in *err.
 * Repeated customer ids are counted and warned about as in ingest_catalog;
 * the last row's attributes win. Own map: --customers-columns. */
int ingest_customers(const char *path, const ingest_options *opt, dataset *ds, strbuf *err);

/* Flags the items `ids` names as not recommendable (train --exclude-items:
 * fees, postage, adjustments), creating the catalog arrays if there is no
 * catalog. Ids the data does not have are counted in *unknown and
 * otherwise ignored. Call after the catalog is read. */
void dataset_exclude_items(dataset *ds, const idmap *ids, uint32_t *unknown);

/* The day each of the first n_items items was first seen, into days[n_items]
 * (days since 1970-01-01, UTC): the catalog's first_seen when it gives one,
 * else the day of the item's earliest interaction with a timestamp (any
 * event, returns included: the item was on sale), else MODEL_DAY_UNKNOWN.
 * n_items <= idmap_count(ds->items). O(rows + items). */
void dataset_first_seen(const dataset *ds, uint32_t n_items, int32_t *days);

/* Initialises an empty dataset. */
void dataset_init(dataset *ds);
/* Frees everything the dataset owns; safe on an initialised dataset. */
void dataset_free(dataset *ds);

/* Reads the interactions file at `path` ("-" for stdin, gzip detected) into
 * ds (initialised by the caller; rows are appended). Returns 0, or -1 with a
 * message in *err: file unreadable, header missing a required column, a read
 * error, or a bad row in strict mode. */
int ingest_read(const char *path, const ingest_options *opt, dataset *ds, strbuf *err);

/* One event the server collected (POST /v1/events, then its state or the
 * shared event log), to be trained on like an interactions row. Strings
 * are borrowed and need not be NUL-terminated. `type` is the server's:
 * enum event_type, or a live-only type (remove-from-cart, clicks, ...),
 * which is not a training signal and is skipped as SKIP_EVENT. */
typedef struct ingest_event {
	const char *customer;
	size_t customer_len;
	const char *item;
	size_t item_len;
	int64_t ts;     /* Unix seconds */
	float quantity; /* negative: a return */
	float price;
	uint8_t type;
} ingest_event;

/* Adds one collected event to ds as a training row, with the interactions
 * file's rules: ids normalised, opt->exclude (erased customers) and
 * opt->until (--as-of) honoured, a timestamp more than a day ahead, a zero
 * or absurd quantity or a bad price skipped. Counts go to ds->live, never
 * to the file's counters. Returns true when added, else false with the
 * reason in *why (may be NULL). */
bool ingest_add_event(dataset *ds, const ingest_options *opt, const ingest_event *ev,
		      enum skip_reason *why);

/* ---- scanning any CSV file with logical columns --------------------------
 * The readers above are built on this; so are the tables derived from a
 * sales log (sales.h). */

typedef struct ingest_scan ingest_scan; /* one file being read; opaque */

/* Called for every well-formed data record; returns 0 to go on, -1 to stop
 * (the message in the scan's err, as ingest_skip leaves it in strict mode). */
typedef int (*ingest_record_fn)(ingest_scan *sc, const csv_record *rec, void *arg);

/* Reads `path` ("-" for stdin, gzip detected): finds the columns (see
 * ingest_options), fails when one of `required` is missing or a map is
 * wrong (`checked`: columns whose --columns map must be satisfied; both
 * lists end with COL_COUNT; `checked` may be NULL), then hands each record
 * to fn. Counts go to stats->records and stats->skipped (malformed CSV
 * records are skipped here). `what` names the file in messages
 * ("interactions"); `file_flag` is the option of the file's own map, for
 * messages, or NULL. Progress is shown on a terminal under opt->label.
 * Returns 0, or -1 with a message in *err. */
int ingest_scan_file(const char *path, const ingest_options *opt, const char *file_flag,
		     const enum column *required, const enum column *checked,
		     ingest_record_fn fn, void *arg, ingest_stats *stats, strbuf *err);

/* The field of logical column c in rec, NUL-terminated ("" when the file
 * has no such column); valid until the next record. */
void ingest_field(const ingest_scan *sc, const csv_record *rec, enum column c, const char **s,
		  size_t *n);
/* Whether the file has logical column c. */
bool ingest_has_column(const ingest_scan *sc, enum column c);
/* Counts a skipped row and describes it within the report budget. Returns
 * -1 in strict mode (message in the scan's err), else 0. */
int ingest_skip(ingest_scan *sc, uint64_t line, enum skip_reason why, const char *detail);
/* A strict decimal number: the whole field (blanks around allowed), finite,
 * no "inf", "nan" or hex. */
bool ingest_parse_number(const char *s, size_t n, double *out);

#endif
