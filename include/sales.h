/*
 * sales: the catalog and customers tables a sales log implies, for shops
 * whose only export is the log itself (Online Retail's layout: item id,
 * description, price and country on every row).
 *
 * One pass over the log; memory grows with the distinct ids and, per id,
 * with its distinct titles, prices or countries, never with the rows.
 */
#ifndef SHOPKEEPER_SALES_H
#define SHOPKEEPER_SALES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ingest.h"
#include "strbuf.h"

enum sales_kind {
	SALES_CATALOG,   /* item_id, title, price, first_seen */
	SALES_CUSTOMERS, /* customer_id, country */
};

typedef struct sales_table sales_table;

/* Reads the interactions file at `path` ("-" for stdin, gzip detected;
 * columns found as ingest_read finds them, opt->columns mapping) into a new
 * table in *out, owned by the caller (sales_table_free). Per id:
 *   title, country: the most frequent non-empty value over the id's rows
 *     (trimmed; titles cut to INGEST_MAX_TITLE bytes); on a tie, the value
 *     that appeared first in the file;
 *   price: the median unit price over the item's rows with a positive price
 *     and a positive quantity (quantity 1 without a quantity column); the
 *     mean of the two middle prices for an even count;
 *   first_seen: the date of the item's earliest timestamp, UTC.
 * A row without a usable id is skipped and reported as ingest does; a
 * title, price, quantity or timestamp that does not parse leaves that row
 * out of that figure only. Returns 0, or -1 with a message in *err
 * (unreadable file, no id column, a --columns map the header lacks). */
int sales_table_read(enum sales_kind kind, const char *path, const ingest_options *opt,
		     sales_table **out, strbuf *err);

/* Writes the table as CSV to `out`: the header, then one row per id in
 * order of first appearance; RFC 4180 quoting, "\n" line ends, an unknown
 * figure as an empty field. Returns 0, or -1 on a write error (errno set). */
int sales_table_write(const sales_table *t, FILE *out);

/* Rows read and skipped (records, skipped); ids in the table (added). */
const ingest_stats *sales_table_stats(const sales_table *t);

/* Whether the log had the column a figure comes from: COL_TITLE, COL_PRICE,
 * COL_TIMESTAMP (catalog), COL_COUNTRY (customers). False for every column
 * when the log had no data rows. */
bool sales_table_has(const sales_table *t, enum column c);

/* sales_table_free(NULL) does nothing. */
void sales_table_free(sales_table *t);

#endif
