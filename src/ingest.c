/*
 * ingest: interactions CSV into a dataset.
 */
#include "ingest.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv.h"
#include "ids.h"
#include "input.h"
#include "progress.h"
#include "timefmt.h"
#include "util.h"

static const char *const column_names[COL_COUNT] = {
	[COL_CUSTOMER_ID] = "customer_id", [COL_ITEM_ID] = "item_id",
	[COL_TIMESTAMP] = "timestamp",     [COL_EVENT] = "event",
	[COL_QUANTITY] = "quantity",       [COL_PRICE] = "price",
	[COL_TITLE] = "title",             [COL_CATEGORY] = "category",
	[COL_COUNTRY] = "country",         [COL_BIRTH_DATE] = "birth_date",
};

static const char *const event_names[EVENT_TYPES] = { "view", "cart", "purchase" };

static const char *const skip_names[SKIP_REASONS] = {
	[SKIP_CSV] = "malformed CSV",
	[SKIP_NO_CUSTOMER] = "no customer id",
	[SKIP_NO_ITEM] = "no item id",
	[SKIP_TIMESTAMP] = "bad timestamp",
	[SKIP_EVENT] = "unknown event",
	[SKIP_QUANTITY] = "bad quantity",
	[SKIP_PRICE] = "bad price",
	[SKIP_AFTER_AS_OF] = "after --as-of",
	[SKIP_EXCLUDED] = "excluded customer",
};

/* Quantities beyond this are data errors, not orders (Online Retail has a
 * few 80,995-unit typos, which stay; a million is not a basket). */
#define MAX_ABS_QUANTITY 1e6
#define MAX_PRICE 1e9

const char *event_name(enum event_type e)
{
	return (unsigned)e < EVENT_TYPES ? event_names[e] : "unknown";
}

int event_parse(const char *s, size_t n)
{
	for (int e = 0; e < EVENT_TYPES; e++)
		if (strlen(event_names[e]) == n && strncasecmp(s, event_names[e], n) == 0)
			return e;
	return -1;
}

const char *skip_reason_name(enum skip_reason r)
{
	return (unsigned)r < SKIP_REASONS ? skip_names[r] : "unknown";
}

void dataset_init(dataset *ds)
{
	memset(ds, 0, sizeof(*ds));
	ds->customers = idmap_create();
	ds->items = idmap_create();
}

void dataset_free(dataset *ds)
{
	for (uint32_t i = 0; ds->item_title && i < ds->items_cap; i++)
		free(ds->item_title[i]);
	for (uint32_t i = 0; ds->customer_attrs && i < ds->customers_cap; i++)
		free(ds->customer_attrs[i]);
	free(ds->item_title);
	free(ds->item_category);
	free(ds->item_price);
	free(ds->customer_attrs);
	free(ds->customer_birthday);
	idmap_free(ds->categories);
	idmap_free(ds->customers);
	idmap_free(ds->items);
	free(ds->rows);
	memset(ds, 0, sizeof(*ds));
}

int ingest_parse_columns(const char *spec, const char *names[COL_COUNT], strbuf *storage,
			 strbuf *err)
{
	for (int c = 0; c < COL_COUNT; c++)
		names[c] = column_names[c];
	if (!spec || !*spec)
		return 0;

	/* Copy the spec once; names then point into it, split at ',' and '='. */
	sb_reset(storage);
	sb_adds(storage, spec);
	char *p = storage->buf;
	while (*p) {
		char *comma = strchr(p, ',');
		if (comma)
			*comma = '\0';
		char *eq = strchr(p, '=');
		if (!eq || eq == p || eq[1] == '\0') {
			sb_addf(err, "--columns: expected NAME=HEADER, got \"%s\"", p);
			return -1;
		}
		*eq = '\0';
		int found = -1;
		for (int c = 0; c < COL_COUNT; c++)
			if (strcmp(p, column_names[c]) == 0)
				found = c;
		if (found < 0) {
			sb_addf(err, "--columns: unknown column \"%s\" (known: customer_id, item_id, "
				     "timestamp, event, quantity, price, title, category, country, "
				     "birth_date)", p);
			return -1;
		}
		names[found] = eq + 1;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

/* A strict decimal number: the whole field, finite. */
static bool parse_number(const char *s, size_t n, double *out)
{
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0 || n > 64)
		return false;
	char tmp[65];
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	char *end;
	errno = 0;
	double v = strtod(tmp, &end);
	if (end != tmp + n || errno == ERANGE || !isfinite(v))
		return false;
	/* strtod also takes "inf", "nan" and hex; keep to plain decimals. */
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789+-.eE", tmp[i]))
			return false;
	*out = v;
	return true;
}

struct row_ctx {
	const ingest_options *opt;
	FILE *report;
	unsigned reported;
	dataset *ds;
	strbuf *err;
	int64_t now;
	uint64_t *records, *skipped; /* this file's counters */
	uint64_t *skipped_by;        /* per reason, or NULL */
	const int *cols;             /* column index per logical column */
	const char *const *header;   /* header names (customers: attributes) */
	size_t n_header;
};

/* Counts a skipped row, describes it if still within the report budget.
 * Returns -1 in strict mode (with the message in err), else 0. */
static int skip_row(struct row_ctx *rc, uint64_t line, enum skip_reason why, const char *detail)
{
	(*rc->skipped)++;
	if (rc->skipped_by)
		rc->skipped_by[why]++;
	if (rc->opt->strict) {
		sb_addf(rc->err, "line %llu: %s%s%s (--strict stops at the first bad row)",
			(unsigned long long)line, skip_reason_name(why), detail ? ": " : "",
			detail ? detail : "");
		return -1;
	}
	unsigned max = rc->opt->max_reported ? rc->opt->max_reported : 5;
	if (rc->reported < max) {
		fprintf(rc->report, "%s: line %llu skipped: %s%s%s\n",
			rc->opt->label ? rc->opt->label : "ingest", (unsigned long long)line,
			skip_reason_name(why), detail ? ": " : "", detail ? detail : "");
		rc->reported++;
	}
	return 0;
}

static int find_column(const csv_record *hdr, const char *name)
{
	for (size_t i = 0; i < hdr->nfields; i++)
		if (strcmp(hdr->fields[i], name) == 0)
			return (int)i;
	for (size_t i = 0; i < hdr->nfields; i++)
		if (strcasecmp(hdr->fields[i], name) == 0)
			return (int)i;
	return -1;
}

static void field(const csv_record *rec, int col, const char **s, size_t *n)
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
static bool excluded(struct row_ctx *rc, const char *id, size_t len)
{
	uint32_t idx;
	if (!rc->opt->exclude || !idmap_find(rc->opt->exclude, id, len, &idx))
		return false;
	(*rc->skipped)++;
	if (rc->skipped_by)
		rc->skipped_by[SKIP_EXCLUDED]++;
	return true;
}

/* Parses one interactions record. Returns 0 (kept or skipped) or -1
 * (strict). */
static int interaction_record(struct row_ctx *rc, const csv_record *rec)
{
	const int *cols = rc->cols;
	dataset *ds = rc->ds;
	const char *s;
	size_t n;
	interaction row = { 0, 0, 0, 1.0f, 0.0f, EVENT_PURCHASE };

	field(rec, cols[COL_CUSTOMER_ID], &s, &n);
	const char *cid = s;
	size_t cid_len = n;
	if (!id_normalize(&cid, &cid_len))
		return skip_row(rc, rec->line, SKIP_NO_CUSTOMER,
				n > ID_MAX_LEN ? "longer than 256 bytes" : NULL);

	field(rec, cols[COL_ITEM_ID], &s, &n);
	const char *iid = s;
	size_t iid_len = n;
	if (!id_normalize(&iid, &iid_len))
		return skip_row(rc, rec->line, SKIP_NO_ITEM,
				n > ID_MAX_LEN ? "longer than 256 bytes" : NULL);
	if (excluded(rc, cid, cid_len))
		return 0;

	if (cols[COL_TIMESTAMP] >= 0) {
		field(rec, cols[COL_TIMESTAMP], &s, &n);
		if (time_parse(s, n, &row.ts) != 0)
			return skip_row(rc, rec->line, SKIP_TIMESTAMP, n ? s : "empty");
		/* A clock a day ahead is skew; beyond that the row is wrong, and
		 * keeping it would make it the as-of time of everything. */
		if (row.ts > rc->now + 86400)
			return skip_row(rc, rec->line, SKIP_TIMESTAMP, "in the future");
	}
	if (cols[COL_EVENT] >= 0) {
		field(rec, cols[COL_EVENT], &s, &n);
		if (n > 0) {
			int e = event_parse(s, n);
			if (e < 0)
				return skip_row(rc, rec->line, SKIP_EVENT, s);
			row.event = (uint8_t)e;
		}
	}
	if (cols[COL_QUANTITY] >= 0) {
		field(rec, cols[COL_QUANTITY], &s, &n);
		if (n > 0) {
			double q;
			if (!parse_number(s, n, &q) || q == 0 || fabs(q) > MAX_ABS_QUANTITY)
				return skip_row(rc, rec->line, SKIP_QUANTITY, s);
			row.quantity = (float)q;
		}
	}
	if (cols[COL_PRICE] >= 0) {
		field(rec, cols[COL_PRICE], &s, &n);
		if (n > 0) {
			double p;
			if (!parse_number(s, n, &p) || p < 0 || p > MAX_PRICE)
				return skip_row(rc, rec->line, SKIP_PRICE, s);
			row.price = (float)p;
		}
	}

	if (rc->opt->has_until && cols[COL_TIMESTAMP] >= 0 && row.ts > rc->opt->until) {
		/* Not an error: the data simply goes past the as-of time. */
		(*rc->skipped)++;
		rc->skipped_by[SKIP_AFTER_AS_OF]++;
		return 0;
	}

	row.customer = idmap_intern(ds->customers, cid, cid_len, NULL);
	row.item = idmap_intern(ds->items, iid, iid_len, NULL);
	if (row.quantity < 0)
		ds->returns++;
	if (cols[COL_TIMESTAMP] >= 0) {
		if (!ds->has_ts || row.ts < ds->ts_min)
			ds->ts_min = row.ts;
		if (!ds->has_ts || row.ts > ds->ts_max)
			ds->ts_max = row.ts;
		ds->has_ts = true;
	}
	if (ds->n_rows == ds->cap_rows) {
		ds->cap_rows = ds->cap_rows ? ds->cap_rows * 2 : 65536;
		ds->rows = xreallocarray(ds->rows, ds->cap_rows, sizeof(*ds->rows));
	}
	ds->rows[ds->n_rows++] = row;
	return 0;
}

void dataset_fit_attributes(dataset *ds)
{
	/* Grown to the id maps' size; the spare capacity avoids regrowing for
	 * every item a catalog adds. */
	uint32_t ni = idmap_count(ds->items), nc = idmap_count(ds->customers);
	if (ds->item_title && ni > ds->items_cap) {
		uint32_t cap = MAX(ni, ds->items_cap * 2);
		ds->item_title = xreallocarray(ds->item_title, cap, sizeof(*ds->item_title));
		ds->item_category = xreallocarray(ds->item_category, cap, sizeof(*ds->item_category));
		ds->item_price = xreallocarray(ds->item_price, cap, sizeof(*ds->item_price));
		for (uint32_t i = ds->items_cap; i < cap; i++) {
			ds->item_title[i] = NULL;
			ds->item_category[i] = UINT32_MAX;
			ds->item_price[i] = -1.0f;
		}
		ds->items_cap = cap;
	}
	if (ds->customer_attrs && nc > ds->customers_cap) {
		uint32_t cap = MAX(nc, ds->customers_cap * 2);
		ds->customer_attrs = xreallocarray(ds->customer_attrs, cap, sizeof(*ds->customer_attrs));
		ds->customer_birthday =
			xreallocarray(ds->customer_birthday, cap, sizeof(*ds->customer_birthday));
		for (uint32_t i = ds->customers_cap; i < cap; i++) {
			ds->customer_attrs[i] = NULL;
			ds->customer_birthday[i] = 0;
		}
		ds->customers_cap = cap;
	}
}

/* Copies s[0..n) with surrounding blanks trimmed, or NULL if empty. */
static char *trimmed_copy(const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return n ? xstrndup(s, n) : NULL;
}

static int catalog_record(struct row_ctx *rc, const csv_record *rec)
{
	dataset *ds = rc->ds;
	const char *s;
	size_t n;

	field(rec, rc->cols[COL_ITEM_ID], &s, &n);
	const char *iid = s;
	size_t iid_len = n;
	if (!id_normalize(&iid, &iid_len))
		return skip_row(rc, rec->line, SKIP_NO_ITEM, n > ID_MAX_LEN ? "longer than 256 bytes" : NULL);
	float price = -1.0f;
	field(rec, rc->cols[COL_PRICE], &s, &n);
	if (n > 0) {
		double p;
		if (!parse_number(s, n, &p) || p < 0 || p > MAX_PRICE)
			return skip_row(rc, rec->line, SKIP_PRICE, s);
		price = (float)p;
	}

	bool created;
	uint32_t item = idmap_intern(ds->items, iid, iid_len, &created);
	if (created)
		rc->ds->catalog_stats.added++;
	dataset_fit_attributes(ds);
	field(rec, rc->cols[COL_TITLE], &s, &n);
	free(ds->item_title[item]); /* a later row for the same item wins */
	ds->item_title[item] = trimmed_copy(s, MIN(n, (size_t)INGEST_MAX_TITLE));
	field(rec, rc->cols[COL_CATEGORY], &s, &n);
	char *cat = trimmed_copy(s, MIN(n, (size_t)INGEST_MAX_CATEGORY));
	ds->item_category[item] = cat ? idmap_intern(ds->categories, cat, strlen(cat), NULL) : UINT32_MAX;
	free(cat);
	ds->item_price[item] = price;
	return 0;
}

/* "YYYY-MM-DD" (anything after ignored) to month * 100 + day; 0 if it is
 * not a date. Birth dates may precede 1970, so time_parse() won't do. */
static uint16_t parse_birthday(const char *s, size_t n)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (n < 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return 0;
	int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	int m = (s[5] - '0') * 10 + (s[6] - '0'), d = (s[8] - '0') * 10 + (s[9] - '0');
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (y < 1850 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] || (m == 2 && d == 29 && !leap))
		return 0;
	return (uint16_t)(m * 100 + d);
}

static int customer_record(struct row_ctx *rc, const csv_record *rec)
{
	dataset *ds = rc->ds;
	const char *s;
	size_t n;

	field(rec, rc->cols[COL_CUSTOMER_ID], &s, &n);
	const char *cid = s;
	size_t cid_len = n;
	if (!id_normalize(&cid, &cid_len))
		return skip_row(rc, rec->line, SKIP_NO_CUSTOMER,
				n > ID_MAX_LEN ? "longer than 256 bytes" : NULL);
	if (excluded(rc, cid, cid_len))
		return 0;
	uint16_t birthday = 0;
	field(rec, rc->cols[COL_BIRTH_DATE], &s, &n);
	if (n > 0 && (birthday = parse_birthday(s, n)) == 0)
		return skip_row(rc, rec->line, SKIP_TIMESTAMP, "birth_date is not a YYYY-MM-DD date");

	/* Every column but the id becomes an attribute, by its header name. */
	strbuf attrs = STRBUF_INIT;
	sb_addc(&attrs, '{');
	bool first = true;
	for (size_t i = 0; i < rec->nfields && i < rc->n_header; i++) {
		if ((int)i == rc->cols[COL_CUSTOMER_ID] || rec->lens[i] == 0)
			continue;
		if (!first)
			sb_addc(&attrs, ',');
		first = false;
		const char *key = (int)i == rc->cols[COL_COUNTRY] ? "country"
				  : (int)i == rc->cols[COL_BIRTH_DATE] ? "birth_date"
								      : rc->header[i];
		sb_add_json_str(&attrs, key, strlen(key));
		sb_addc(&attrs, ':');
		sb_add_json_str(&attrs, rec->fields[i], rec->lens[i]);
	}
	sb_addc(&attrs, '}');
	if (attrs.len > INGEST_MAX_ATTRS) {
		sb_release(&attrs);
		return skip_row(rc, rec->line, SKIP_CSV, "attributes longer than 4096 bytes");
	}

	bool created;
	uint32_t c = idmap_intern(ds->customers, cid, cid_len, &created);
	if (created)
		rc->ds->customer_stats.added++;
	dataset_fit_attributes(ds);
	free(ds->customer_attrs[c]);
	ds->customer_attrs[c] = first ? NULL : sb_detach(&attrs, NULL);
	sb_release(&attrs);
	ds->customer_birthday[c] = birthday;
	return 0;
}

typedef int (*record_fn)(struct row_ctx *rc, const csv_record *rec);

/* Reads one CSV file: header, then every record through fn. `required`
 * lists the logical columns the header must have (COL_COUNT ends it). */
static int read_table(const char *path, const ingest_options *opt, dataset *ds,
		      const enum column *required, record_fn fn, uint64_t *records,
		      uint64_t *skipped, uint64_t *skipped_by, strbuf *err)
{
	input in;
	csv_reader *csv = NULL;
	strbuf colstore = STRBUF_INIT;
	const char *names[COL_COUNT];
	int cols[COL_COUNT];
	char **header = NULL;
	size_t n_header = 0;
	int ret = -1;
	csv_record rec;
	progress prog;

	if (ingest_parse_columns(opt->columns, names, &colstore, err) != 0)
		goto out_nofile;
	if (input_open(&in, path, err) != 0)
		goto out_nofile;
	csv = csv_open(in.fp, NULL);

	int rc = csv_read(csv, &rec);
	if (rc == CSV_EOF) {
		sb_addf(err, "%s is empty: expected a header row with %s", path,
			column_names[required[0]]);
		goto out;
	}
	if (rc != CSV_OK) {
		sb_addf(err, "%s: cannot read the header row: %s", path, csv_strerror(rc));
		goto out;
	}
	for (int c = 0; c < COL_COUNT; c++)
		cols[c] = find_column(&rec, names[c]);
	for (const enum column *c = required; *c != COL_COUNT; c++) {
		if (cols[*c] >= 0)
			continue;
		sb_addf(err, "%s: no \"%s\" column in the header (", path, names[*c]);
		for (size_t i = 0; i < rec.nfields && i < 12; i++)
			sb_addf(err, "%s%s", i ? "," : "", rec.fields[i]);
		sb_addf(err, "%s); map one with --columns %s=HEADER", rec.nfields > 12 ? ",..." : "",
			column_names[*c]);
		goto out;
	}
	n_header = rec.nfields;
	header = xmallocarray(n_header, sizeof(*header));
	for (size_t i = 0; i < n_header; i++)
		header[i] = xstrndup(rec.fields[i], rec.lens[i]);

	struct row_ctx rctx = { opt, opt->report ? opt->report : stderr, 0, ds, err,
				(int64_t)util_now(), records, skipped, skipped_by, cols,
				(const char *const *)header, n_header };
	const char *label = opt->label ? opt->label : "ingest";
	bool by_bytes = !in.compressed && in.size > 0;
	progress_begin(&prog, label, by_bytes ? "bytes" : "rows", by_bytes ? in.size : 0);
	for (;;) {
		rc = csv_read(csv, &rec);
		if (rc == CSV_EOF)
			break;
		if (rc == CSV_ERR_IO) {
			sb_addf(err, "%s: read error", path);
			goto out_prog;
		}
		(*records)++;
		if (rc != CSV_OK) {
			if (skip_row(&rctx, rec.line, SKIP_CSV, csv_strerror(rc)) != 0)
				goto out_prog;
			continue;
		}
		if (fn(&rctx, &rec) != 0)
			goto out_prog;
		if ((*records & 0xffff) == 0)
			progress_update(&prog, by_bytes ? csv_bytes_read(csv) : *records);
	}
	progress_update(&prog, by_bytes ? csv_bytes_read(csv) : *records);
	ret = 0;
	if (rctx.reported < *skipped && !opt->strict)
		fprintf(rctx.report, "%s: %llu more bad rows not shown\n", label,
			(unsigned long long)(*skipped - rctx.reported));
out_prog:
	progress_end(&prog);
out:
	for (size_t i = 0; i < n_header; i++)
		free(header[i]);
	free(header);
	csv_close(csv);
	if (input_close(&in, err) != 0)
		ret = -1;
out_nofile:
	sb_release(&colstore);
	return ret;
}

int ingest_read(const char *path, const ingest_options *opt, dataset *ds, strbuf *err)
{
	static const enum column required[] = { COL_CUSTOMER_ID, COL_ITEM_ID, COL_COUNT };
	return read_table(path, opt, ds, required, interaction_record, &ds->records, &ds->skipped,
			  ds->skipped_by, err);
}

int ingest_catalog(const char *path, const ingest_options *opt, dataset *ds, strbuf *err)
{
	static const enum column required[] = { COL_ITEM_ID, COL_COUNT };
	if (!ds->item_title) {
		ds->categories = idmap_create();
		ds->items_cap = 0;
		ds->item_title = xmalloc(sizeof(*ds->item_title));
		ds->item_category = xmalloc(sizeof(*ds->item_category));
		ds->item_price = xmalloc(sizeof(*ds->item_price));
		dataset_fit_attributes(ds);
	}
	return read_table(path, opt, ds, required, catalog_record, &ds->catalog_stats.records,
			  &ds->catalog_stats.skipped, NULL, err);
}

int ingest_customers(const char *path, const ingest_options *opt, dataset *ds, strbuf *err)
{
	static const enum column required[] = { COL_CUSTOMER_ID, COL_COUNT };
	if (!ds->customer_attrs) {
		ds->customers_cap = 0;
		ds->customer_attrs = xmalloc(sizeof(*ds->customer_attrs));
		ds->customer_birthday = xmalloc(sizeof(*ds->customer_birthday));
		dataset_fit_attributes(ds);
	}
	return read_table(path, opt, ds, required, customer_record, &ds->customer_stats.records,
			  &ds->customer_stats.skipped, NULL, err);
}

int ingest_id_list(const char *path, idmap **out, strbuf *err)
{
	input in;
	if (input_open(&in, path, err) != 0)
		return -1;
	idmap *m = idmap_create();
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	uint64_t lineno = 0;
	int ret = 0;
	while ((got = getline(&line, &cap, in.fp)) >= 0) {
		lineno++;
		size_t n = (size_t)got;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		const char *id = line;
		if (n == 0 || line[0] == '#')
			continue;
		if (!utf8_valid(id, n) || !id_normalize(&id, &n)) {
			sb_addf(err, "%s: line %llu is not a usable customer id", path,
				(unsigned long long)lineno);
			ret = -1;
			break;
		}
		idmap_intern(m, id, n, NULL);
	}
	free(line);
	if (input_close(&in, err) != 0)
		ret = -1;
	if (ret != 0) {
		idmap_free(m);
		return -1;
	}
	*out = m;
	return 0;
}
