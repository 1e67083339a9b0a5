/*
 * test_ingest: the three CSV files into a dataset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "ingest.h"
#include "util.h"

static char dir[] = "/tmp/shopkeeper-test-ingest-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
	static char paths[8][256]; /* a few may be in use at once */
	static unsigned next;
	char *path = paths[next++ % 8];
	snprintf(path, 256, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	fputs(text, f);
	fclose(f);
	return path;
}

static FILE *report;

static int load(const char *path, const char *columns, bool strict, dataset *ds, strbuf *err)
{
	ingest_options o = { .columns = columns, .strict = strict, .report = report };
	dataset_init(ds);
	sb_reset(err);
	return ingest_read(path, &o, ds, err);
}

static const char retail[] =
	"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
	"536365,85123A,\"WHITE HANGING HEART, T-LIGHT\",6,2010-12-01 08:26:00,2.55,17850.0,UK\n"
	"536365,71053,\"RECORD FRAME 7\"\" SINGLE\",6,2010-12-01 08:26:00,3.39,17850.0,UK\n"
	"536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.85,,UK\n"
	"C536379,85123A,Discount,-1,2010-12-01 09:41:00,27.5,17850.0,UK\n"
	"536370,22728,ALARM CLOCK,abc,2010-12-01 08:45:00,3.75,12583.0,France\n"
	"536370,22727,ALARM CLOCK,24,not a date,3.75,12583.0,France\n"
	"536370,22726,ALARM CLOCK,24,2010-12-01 08:45:00,-3,12583.0,France\n"
	"536371,22086,PAPER CHAIN,80,2010-12-01 09:00:00,2.55,13047.0,UK\n";
static const char retail_cols[] =
	"customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDate,quantity=Quantity,price=UnitPrice";

TEST(online_retail_layout)
{
	dataset ds;
	strbuf err = STRBUF_INIT;
	const char *path = write_file("retail.csv", retail);
	CHECK_INT(load(path, retail_cols, false, &ds, &err), 0);
	CHECK_INT(ds.records, 8);
	CHECK_INT(ds.n_rows, 4);
	CHECK_INT(ds.skipped, 4);
	CHECK_INT(ds.skipped_by[SKIP_NO_CUSTOMER], 1);
	CHECK_INT(ds.skipped_by[SKIP_QUANTITY], 1);
	CHECK_INT(ds.skipped_by[SKIP_TIMESTAMP], 1);
	CHECK_INT(ds.skipped_by[SKIP_PRICE], 1);
	CHECK_INT(ds.returns, 1);
	uint32_t c;
	CHECK(idmap_find(ds.customers, "17850", 5, &c)); /* ".0" dropped */
	CHECK_INT(idmap_count(ds.customers), 2);
	CHECK_INT(ds.ts_min, 1291191960);
	CHECK_INT(ds.ts_max, 1291196460); /* the return, 09:41, counts too */
	CHECK_NEAR(ds.rows[2].quantity, -1, 1e-9);
	CHECK_NEAR(ds.rows[0].price, 2.55, 1e-6);
	dataset_free(&ds);
	sb_release(&err);
}

TEST(strict_stops_at_the_first_bad_row)
{
	dataset ds;
	strbuf err = STRBUF_INIT;
	const char *path = write_file("retail.csv", retail);
	CHECK_INT(load(path, retail_cols, true, &ds, &err), -1);
	CHECK(strstr(sb_str(&err), "line 4") != NULL);
	CHECK(strstr(sb_str(&err), "no customer id") != NULL);
	dataset_free(&ds);
	sb_release(&err);
}

TEST(header_problems)
{
	dataset ds;
	strbuf err = STRBUF_INIT;
	CHECK_INT(load(write_file("empty.csv", ""), NULL, false, &ds, &err), -1);
	CHECK(strstr(sb_str(&err), "empty") != NULL);
	dataset_free(&ds);
	CHECK_INT(load(write_file("nocust.csv", "user,item_id\n1,2\n"), NULL, false, &ds, &err), -1);
	CHECK(strstr(sb_str(&err), "customer_id") != NULL);
	CHECK(strstr(sb_str(&err), "--columns") != NULL);
	dataset_free(&ds);
	/* any column order, unknown columns ignored, names matched ignoring case */
	CHECK_INT(load(write_file("order.csv", "note,Item_ID,CUSTOMER_ID\nx,i1,c1\n"), NULL, false, &ds,
		       &err), 0);
	CHECK_INT(ds.n_rows, 1);
	dataset_free(&ds);
	sb_release(&err);
}

TEST(column_spec)
{
	const char *names[COL_COUNT];
	strbuf store = STRBUF_INIT, err = STRBUF_INIT;
	CHECK_INT(ingest_parse_columns("customer_id=C,item_id=I,title=Desc", names, &store, &err), 0);
	CHECK_STR(names[COL_CUSTOMER_ID], "C");
	CHECK_STR(names[COL_TITLE], "Desc");
	CHECK_STR(names[COL_PRICE], "price");
	CHECK_INT(ingest_parse_columns("shoe_size=S", names, &store, &err), -1);
	CHECK(strstr(sb_str(&err), "shoe_size") != NULL);
	sb_reset(&err);
	CHECK_INT(ingest_parse_columns("customer_id", names, &store, &err), -1);
	sb_reset(&err);
	CHECK_INT(ingest_parse_columns("customer_id=", names, &store, &err), -1);
	sb_release(&store);
	sb_release(&err);
}

TEST(gzip_reads_the_same)
{
	dataset a, b;
	strbuf err = STRBUF_INIT;
	const char *plain = write_file("retail.csv", retail);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "gzip -c %s > %s/retail.csv.gz", plain, dir);
	CHECK_INT(system(cmd), 0);
	char gz[256];
	snprintf(gz, sizeof(gz), "%s/retail.csv.gz", dir);
	CHECK_INT(load(write_file("retail.csv", retail), retail_cols, false, &a, &err), 0);
	CHECK_INT(load(gz, retail_cols, false, &b, &err), 0);
	CHECK_INT(a.n_rows, b.n_rows);
	for (size_t i = 0; i < a.n_rows && i < b.n_rows; i++) /* field by field: padding */
		CHECK(a.rows[i].customer == b.rows[i].customer && a.rows[i].item == b.rows[i].item &&
		      a.rows[i].ts == b.rows[i].ts && a.rows[i].quantity == b.rows[i].quantity &&
		      a.rows[i].price == b.rows[i].price && a.rows[i].event == b.rows[i].event);
	dataset_free(&a);
	dataset_free(&b);
	/* a corrupt .gz is an error, not a short file read as whole */
	snprintf(cmd, sizeof(cmd), "head -c 60 %s > %s/cut.csv.gz", gz, dir);
	CHECK_INT(system(cmd), 0);
	snprintf(gz, sizeof(gz), "%s/cut.csv.gz", dir);
	CHECK_INT(load(gz, retail_cols, false, &a, &err), -1);
	dataset_free(&a);
	sb_release(&err);
}

TEST(events_and_as_of)
{
	dataset ds;
	strbuf err = STRBUF_INIT;
	const char *path = write_file("ev.csv", "customer_id,item_id,event,timestamp\n"
						"a,x,view,2024-01-01\na,y,Cart,2024-01-02\n"
						"a,z,,2024-01-03\na,w,wishlist,2024-01-03\n"
						"b,x,purchase,2024-02-01\nb,x,purchase,2099-01-01\n");
	ingest_options o = { .report = report, .has_until = true, .until = 1704240000 /* Jan 3 */ };
	dataset_init(&ds);
	CHECK_INT(ingest_read(path, &o, &ds, &err), 0);
	CHECK_INT(ds.n_rows, 3); /* view, cart, default purchase; b's rows are later */
	CHECK_INT(ds.rows[0].event, EVENT_VIEW);
	CHECK_INT(ds.rows[1].event, EVENT_CART);
	CHECK_INT(ds.rows[2].event, EVENT_PURCHASE);
	CHECK_INT(ds.skipped_by[SKIP_EVENT], 1);
	CHECK_INT(ds.skipped_by[SKIP_AFTER_AS_OF], 1);
	CHECK_INT(ds.skipped_by[SKIP_TIMESTAMP], 1); /* 2099: in the future */
	dataset_free(&ds);
	sb_release(&err);
}

TEST(catalog_customers_and_exclusions)
{
	dataset ds;
	strbuf err = STRBUF_INIT;
	const char *ipath = write_file("i.csv", "customer_id,item_id\nc1,i1\nc2,i2\ngone,i1\n");
	const char *ex = write_file("erased.txt", "# erased\ngone\n\n");
	idmap *exclude = NULL;
	CHECK_INT(ingest_id_list(ex, &exclude, &err), 0);
	ingest_options o = { .report = report, .exclude = exclude };
	dataset_init(&ds);
	CHECK_INT(ingest_read(ipath, &o, &ds, &err), 0);
	CHECK_INT(ds.n_rows, 2);
	CHECK_INT(ds.skipped_by[SKIP_EXCLUDED], 1);
	const char *cat = write_file("c.csv", "item_id,title,category,price\ni1,\"Mug, big\",kitchen,3.5\n"
					       "i3,Tea,,\n,NoId,x,1\ni2,Bad,x,-4\n");
	CHECK_INT(ingest_catalog(cat, &o, &ds, &err), 0);
	CHECK_INT(ds.catalog_stats.records, 4);
	CHECK_INT(ds.catalog_stats.skipped, 2);
	CHECK_INT(ds.catalog_stats.added, 1); /* i3 */
	CHECK_STR(ds.item_title[0], "Mug, big");
	CHECK_NEAR(ds.item_price[0], 3.5, 1e-6);
	CHECK(ds.item_category[0] != UINT32_MAX);
	CHECK(ds.item_category[2] == UINT32_MAX);
	const char *cus = write_file("u.csv", "customer_id,country,birth_date,tier\nc1,JP,1962-02-28,gold\n"
					       "c9,FR,,\ngone,UK,1980-01-01,x\nc2,DE,1990-02-30,y\n");
	CHECK_INT(ingest_customers(cus, &o, &ds, &err), 0);
	CHECK_INT(ds.customer_stats.added, 1);   /* c9 */
	CHECK_INT(ds.customer_stats.skipped, 2); /* gone (excluded), Feb 30 */
	uint32_t c1;
	CHECK(idmap_find(ds.customers, "c1", 2, &c1));
	CHECK_STR(ds.customer_attrs[c1], "{\"country\":\"JP\",\"birth_date\":\"1962-02-28\",\"tier\":\"gold\"}");
	CHECK_INT(ds.customer_birthday[c1], 228);
	uint32_t gone;
	CHECK(!idmap_find(ds.customers, "gone", 4, &gone));
	idmap_free(exclude);
	dataset_free(&ds);
	sb_release(&err);
}

/* Issue 20, point 12: --columns is written for the interactions file; a
 * catalog or customers file that uses the standard names must still read. */
TEST(columns_fall_back_to_standard_names_per_file)
{
	dataset ds;
	strbuf err = STRBUF_INIT;
	const char *ipath = write_file("fb-i.csv", "CustomerID,StockCode\nc1,i1\nc2,i2\n");
	ingest_options o = { .columns = "customer_id=CustomerID,item_id=StockCode,title=Description",
			     .report = report };
	dataset_init(&ds);
	CHECK_INT(ingest_read(ipath, &o, &ds, &err), 0);
	const char *cat = write_file("fb-c.csv", "item_id,title,price\ni1,Mug,3.5\ni3,Tea,1\n");
	CHECK_INT(ingest_catalog(cat, &o, &ds, &err), 0);
	CHECK_INT(ds.catalog_stats.records, 2);
	CHECK_INT(ds.catalog_stats.added, 1);
	CHECK_STR(ds.item_title[0], "Mug");
	const char *cus = write_file("fb-u.csv", "customer_id,country\nc1,JP\n");
	CHECK_INT(ingest_customers(cus, &o, &ds, &err), 0);
	CHECK_STR(ds.customer_attrs[0], "{\"country\":\"JP\"}");
	dataset_free(&ds);
	sb_release(&err);
}

/* A file's own map wins over --columns there; a map naming a header that a
 * file lacks, with no standard name to fall back to, is an error naming
 * the file and the column. */
TEST(file_columns_and_missing_mapped_headers)
{
	dataset ds;
	strbuf err = STRBUF_INIT;
	const char *ipath = write_file("fc-i.csv", "CustomerID,StockCode,Description\nc1,i1,Mug\n");
	ingest_options o = { .columns = "customer_id=CustomerID,item_id=StockCode,title=Description",
			     .report = report };
	dataset_init(&ds);
	CHECK_INT(ingest_read(ipath, &o, &ds, &err), 0);
	/* title=Description would find the catalog's Description; its own map wins */
	const char *cat = write_file("fc-c.csv", "sku,Description,name\ni1,long text,Short\n");
	o.file_columns = "item_id=sku,title=name";
	CHECK_INT(ingest_catalog(cat, &o, &ds, &err), 0);
	CHECK_STR(ds.item_title[0], "Short");
	/* its own map naming a missing header */
	o.file_columns = "item_id=sku,title=Name2";
	CHECK_INT(ingest_catalog(cat, &o, &ds, &err), -1);
	CHECK(strstr(sb_str(&err), "fc-c.csv") != NULL);
	CHECK(strstr(sb_str(&err), "--catalog-columns maps title to \"Name2\"") != NULL);
	/* a required column found by none of the three names */
	sb_reset(&err);
	o.file_columns = NULL;
	CHECK_INT(ingest_catalog(cat, &o, &ds, &err), -1);
	CHECK(strstr(sb_str(&err), "no \"StockCode\" or \"item_id\" column") != NULL);
	CHECK(strstr(sb_str(&err), "--catalog-columns item_id=HEADER") != NULL);
	dataset_free(&ds);

	/* interactions: a mapped optional column that is not there */
	sb_reset(&err);
	o.columns = "customer_id=CustomerID,item_id=StockCode,timestamp=InvoiceDat";
	CHECK_INT(load(ipath, o.columns, false, &ds, &err), -1);
	CHECK(strstr(sb_str(&err), "fc-i.csv") != NULL);
	CHECK(strstr(sb_str(&err), "--columns maps timestamp to \"InvoiceDat\"") != NULL);
	dataset_free(&ds);
	/* ...but catalog and customer columns in --columns are not the
	 * interactions file's business */
	CHECK_INT(load(ipath, "customer_id=CustomerID,item_id=StockCode,birth_date=Born", false, &ds,
		       &err), 0);
	dataset_free(&ds);
	CHECK_INT(ingest_check_columns("--customers-columns", "shoe=S", &err), -1);
	CHECK(strstr(sb_str(&err), "--customers-columns: unknown column \"shoe\"") != NULL);
	sb_release(&err);
}

/* first_seen: the catalog's date when it has one, else the item's first
 * interaction, else unknown; a date that does not parse is a bad row. */
TEST(first_seen_from_catalog_or_first_interaction)
{
	dataset ds;
	strbuf err = STRBUF_INIT;
	ingest_options o = { .report = report };
	dataset_init(&ds);
	CHECK_INT(ingest_read(write_file("fs-i.csv", "customer_id,item_id,timestamp\n"
						   "c1,old,2011-03-04 10:00:00\nc2,old,2011-01-02\n"
						   "c1,dated,2011-01-01\nc2,late,2011-09-30T23:59:59Z\n"),
			      &o, &ds, &err), 0);
	CHECK_INT(ingest_catalog(write_file("fs-c.csv", "item_id,title,first_seen\n"
						   "dated,A,2011-10-01\nlate,B,\nfresh,C, 2011-11-05 \n"
						   "nodate,D,\nbad,E,soon\n"),
				 &o, &ds, &err), 0);
	CHECK_INT(ds.catalog_stats.skipped, 1); /* bad */
	uint32_t n = idmap_count(ds.items);
	int32_t days[8];
	CHECK_INT(n, 5);
	dataset_first_seen(&ds, n, days);
	const char *ids[] = { "old", "dated", "late", "fresh", "nodate" };
	const int32_t want[] = { 14976, 15248, 15247, 15283, MODEL_DAY_UNKNOWN };
	for (int i = 0; i < 5; i++) {
		uint32_t idx;
		CHECK(idmap_find(ds.items, ids[i], strlen(ids[i]), &idx));
		CHECK_INT(days[idx], want[i]);
	}
	dataset_free(&ds);

	/* No catalog, no timestamps: nothing is known. */
	dataset_init(&ds);
	CHECK_INT(ingest_read(write_file("fs-n.csv", "customer_id,item_id\nc1,x\n"), &o, &ds, &err), 0);
	dataset_first_seen(&ds, 1, days);
	CHECK_INT(days[0], MODEL_DAY_UNKNOWN);
	dataset_free(&ds);
	sb_release(&err);
}

/* A catalog or customers file that lists an id twice (a sales log passed
 * as --catalog) is read, counted and warned about. */
TEST(repeated_ids_are_counted_and_warned)
{
	dataset ds;
	strbuf err = STRBUF_INIT;
	char *text = NULL;
	size_t len = 0;
	FILE *rep = open_memstream(&text, &len);
	ingest_options o = { .report = rep };
	dataset_init(&ds);
	CHECK_INT(ingest_read(write_file("rp-i.csv", "customer_id,item_id\nc1,i1\n"), &o, &ds, &err), 0);
	CHECK_INT(ingest_catalog(write_file("rp-c.csv", "item_id,title\ni1,A\ni2,B\ni1,C\ni1,D\n"
							"i2,E\ni3,F\n"), &o, &ds, &err), 0);
	CHECK_INT(ds.catalog_stats.duplicate_rows, 3);
	CHECK_INT(ds.catalog_stats.duplicate_ids, 2);
	CHECK_STR(ds.item_title[0], "D");
	CHECK_INT(ingest_customers(write_file("rp-u.csv", "customer_id,country\nc1,JP\nc1,FR\n"), &o, &ds,
				   &err), 0);
	CHECK_INT(ds.customer_stats.duplicate_rows, 1);
	fflush(rep);
	CHECK(strstr(text, "repeats 2 item ids on 3 more rows (first: \"i1\", \"i2\")") != NULL);
	CHECK(strstr(text, "shopkeeper catalog --from-interactions") != NULL);
	CHECK(strstr(text, "shopkeeper customers --from-interactions") != NULL);
	fclose(rep);
	free(text);
	/* a clean file: nothing counted */
	dataset_free(&ds);
	dataset_init(&ds);
	o.report = report;
	CHECK_INT(ingest_catalog(write_file("rp-ok.csv", "item_id\ni1\ni2\n"), &o, &ds, &err), 0);
	CHECK_INT(ds.catalog_stats.duplicate_rows, 0);
	dataset_free(&ds);
	sb_release(&err);
}

TEST(collected_events_follow_the_file_rules)
{
	dataset ds;
	dataset_init(&ds);
	idmap *erased = idmap_create();
	idmap_intern(erased, "gone", 4, NULL);
	ingest_options opt = { .exclude = erased, .has_until = true, .until = 1750000000 };
	int64_t ok_ts = 1700000000;
	static const struct {
		const char *customer, *item;
		int64_t ts;
		float qty, price;
		uint8_t type;
		int why; /* -1: added */
	} cases[] = {
		{ "ann", "apple", 1700000000, 1, 0.5f, EVENT_PURCHASE, -1 },
		{ " ann ", "pear", 1700000100, 2, 0, EVENT_VIEW, -1 },    /* ids trimmed */
		{ "ann", "apple", 1700000200, -1, 0.5f, EVENT_PURCHASE, -1 }, /* a return */
		{ "gone", "apple", 1700000000, 1, 0, EVENT_CART, SKIP_EXCLUDED },
		{ "ann", "apple", 1700000000, 1, 0, 3, SKIP_EVENT },        /* remove from cart */
		{ "ann", "apple", 1700000000, 1, 0, 9, SKIP_EVENT },
		{ "", "apple", 1700000000, 1, 0, EVENT_VIEW, SKIP_NO_CUSTOMER },
		{ "ann", "  ", 1700000000, 1, 0, EVENT_VIEW, SKIP_NO_ITEM },
		{ "ann", "apple", 1700000000, 0, 0, EVENT_VIEW, SKIP_QUANTITY },
		{ "ann", "apple", 1700000000, 2e6f, 0, EVENT_VIEW, SKIP_QUANTITY },
		{ "ann", "apple", 1700000000, 1, -1, EVENT_VIEW, SKIP_PRICE },
		{ "ann", "apple", 1750000001, 1, 0, EVENT_VIEW, SKIP_AFTER_AS_OF },
		{ "ann", "apple", 4000000000, 1, 0, EVENT_VIEW, SKIP_TIMESTAMP }, /* future */
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		ingest_event ev = { cases[i].customer, strlen(cases[i].customer), cases[i].item,
				    strlen(cases[i].item), cases[i].ts, cases[i].qty, cases[i].price,
				    cases[i].type };
		enum skip_reason why = SKIP_REASONS;
		bool added = ingest_add_event(&ds, &opt, &ev, &why);
		if (added != (cases[i].why < 0) || (!added && (int)why != cases[i].why))
			fprintf(stderr, "case %zu: added %d why %d\n", i, added, (int)why);
		CHECK(added == (cases[i].why < 0));
		if (!added)
			CHECK_INT(why, cases[i].why);
	}
	CHECK_INT(ds.n_rows, 3);
	CHECK_INT(ds.live.read, ARRAY_SIZE(cases));
	CHECK_INT(ds.live.added, 3);
	CHECK_INT(ds.live.skipped_by[SKIP_EVENT], 2);
	CHECK_INT(ds.records, 0); /* the interactions file's counters are untouched */
	CHECK_INT(ds.skipped, 0);
	CHECK_INT(ds.returns, 1);
	CHECK_INT(idmap_count(ds.customers), 1);
	uint32_t idx;
	CHECK(idmap_find(ds.items, "pear", 4, &idx));
	CHECK(ds.has_ts && ds.ts_min == ok_ts && ds.ts_max == ok_ts + 200);
	CHECK(!idmap_find(ds.customers, "gone", 4, &idx));
	idmap_free(erased);
	dataset_free(&ds);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	report = fopen("/dev/null", "w");
	RUN(online_retail_layout);
	RUN(strict_stops_at_the_first_bad_row);
	RUN(header_problems);
	RUN(column_spec);
	RUN(gzip_reads_the_same);
	RUN(events_and_as_of);
	RUN(catalog_customers_and_exclusions);
	RUN(columns_fall_back_to_standard_names_per_file);
	RUN(file_columns_and_missing_mapped_headers);
	RUN(repeated_ids_are_counted_and_warned);
	RUN(first_seen_from_catalog_or_first_interaction);
	RUN(collected_events_follow_the_file_rules);
	fclose(report);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return harness_done();
}
