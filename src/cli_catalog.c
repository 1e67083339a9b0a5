/*
 * cli_catalog: `shopkeeper catalog` and `shopkeeper customers`: the
 * catalog and customers files train reads, made from a sales log.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sales.h"
#include "util.h"

static const char catalog_usage[] =
	"usage: shopkeeper catalog --from-interactions FILE [--columns MAP] > catalog.csv\n"
	"\n"
	"Writes a catalog for 'train --catalog' made from a sales log (an interactions\n"
	"file with each item's description and unit price on its rows, as Online\n"
	"Retail's) to standard output as CSV, one row per item in order of first\n"
	"appearance:\n"
	"\n"
	"  item_id     the item id as train reads it\n"
	"  title       the most frequent non-empty title on the item's rows; on a tie,\n"
	"              the one that comes first in the file (map a description column\n"
	"              with --columns title=Description)\n"
	"  price       the median unit price over the item's rows with a positive price\n"
	"              and a positive quantity (the mean of the two middle prices for\n"
	"              an even count); empty when there are none\n"
	"  first_seen  the date (YYYY-MM-DD, UTC) of the item's earliest timestamp\n"
	"\n"
	"Rows without an item id are skipped and reported; a title, price, quantity\n"
	"or timestamp that does not parse leaves its row out of that figure only.\n"
	"\n"
	"  --from-interactions FILE  the sales log; '-' for stdin; gzip is detected\n"
	"  --columns MAP             header names as for train, e.g. item_id=StockCode,\n"
	"                            title=Description,price=UnitPrice,quantity=Quantity,\n"
	"                            timestamp=InvoiceDate\n"
	"  --quiet                   no summary on stderr\n"
	"\n"
	"Exit status: 0 written, 1 the file could not be read or the CSV written,\n"
	"2 a usage error.\n";

static const char customers_usage[] =
	"usage: shopkeeper customers --from-interactions FILE [--columns MAP] > customers.csv\n"
	"\n"
	"Writes a customers file for 'train --customers' made from a sales log (an\n"
	"interactions file with the customer's country on its rows, as Online\n"
	"Retail's) to standard output as CSV, one row per customer in order of first\n"
	"appearance:\n"
	"\n"
	"  customer_id  the customer id as train reads it (\"17850.0\" is 17850)\n"
	"  country      the most frequent non-empty country on the customer's rows; on\n"
	"               a tie, the one that comes first in the file\n"
	"\n"
	"Rows without a customer id are skipped and reported.\n"
	"\n"
	"  --from-interactions FILE  the sales log; '-' for stdin; gzip is detected\n"
	"  --columns MAP             header names as for train, e.g.\n"
	"                            customer_id=CustomerID,country=Country\n"
	"  --quiet                   no summary on stderr\n"
	"\n"
	"Exit status: 0 written, 1 the file could not be read or the CSV written,\n"
	"2 a usage error.\n";

/* A figure the log has no column for is written empty; say so once. */
static void note_missing(const char *cmd, const sales_table *t, enum column c, const char *name,
			 const char *figure)
{
	if (!sales_table_has(t, c))
		fprintf(stderr, "shopkeeper %s: no %s column in the log: %s left empty (map one with "
			"--columns %s=HEADER)\n", cmd, name, figure, name);
}

static int run(const char *cmd, enum sales_kind kind, const char *usage, int argc, char **argv)
{
	enum { O_FROM = 1, O_COLUMNS, O_QUIET, O_HELP };
	static const struct option opts[] = {
		{ "from-interactions", required_argument, NULL, O_FROM },
		{ "columns", required_argument, NULL, O_COLUMNS },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *from = NULL, *columns = NULL;
	bool quiet = false;
	strbuf err = STRBUF_INIT;
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_FROM: from = optarg; break;
		case O_QUIET: quiet = true; break;
		case O_COLUMNS:
			if (ingest_check_columns("--columns", optarg, &err) != 0) {
				int rc = cli_usage_error(cmd, "%s", err.buf);
				sb_release(&err);
				return rc;
			}
			columns = optarg;
			break;
		case 'h':
		case O_HELP:
			fputs(usage, stdout);
			return EXIT_OK;
		default:
			return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (!from)
		return cli_usage_error(cmd, "--from-interactions FILE is required");

	ingest_options opt = { .columns = columns, .max_reported = 5, .report = stderr, .label = cmd };
	sales_table *t = NULL;
	double t0 = util_monotonic();
	if (sales_table_read(kind, from, &opt, &t, &err) != 0) {
		cli_fail(cmd, "%s", err.buf);
		sb_release(&err);
		return EXIT_RUNTIME;
	}
	int ret = EXIT_OK;
	if (sales_table_write(t, stdout) != 0) {
		ret = cli_fail(cmd, "cannot write the CSV to standard output: %s", strerror(errno));
		goto out;
	}
	const ingest_stats *st = sales_table_stats(t);
	if (!quiet && st->records > st->skipped) {
		if (kind == SALES_CATALOG) {
			note_missing(cmd, t, COL_TITLE, "title", "titles");
			note_missing(cmd, t, COL_PRICE, "price", "prices");
			note_missing(cmd, t, COL_TIMESTAMP, "timestamp", "first_seen");
		} else {
			note_missing(cmd, t, COL_COUNTRY, "country", "countries");
		}
	}
	if (!quiet)
		fprintf(stderr, "shopkeeper %s: %llu rows read, %llu skipped; %llu %s written in %.1f s\n",
			cmd, (unsigned long long)st->records, (unsigned long long)st->skipped,
			(unsigned long long)st->added, kind == SALES_CATALOG ? "items" : "customers",
			util_monotonic() - t0);
out:
	sales_table_free(t);
	sb_release(&err);
	return ret;
}

int cmd_catalog(int argc, char **argv)
{
	return run("catalog", SALES_CATALOG, catalog_usage, argc, argv);
}

int cmd_customers(int argc, char **argv)
{
	return run("customers", SALES_CUSTOMERS, customers_usage, argc, argv);
}
