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
				     "timestamp, event, quantity, price)", p);
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
};

/* Counts a skipped row, describes it if still within the report budget.
 * Returns -1 in strict mode (with the message in err), else 0. */
static int skip_row(struct row_ctx *rc, uint64_t line, enum skip_reason why, const char *detail)
{
	rc->ds->skipped++;
	rc->ds->skipped_by[why]++;
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

/* Parses one data record. Returns 0 (kept or skipped) or -1 (strict). */
static int ingest_record(struct row_ctx *rc, const csv_record *rec, const int cols[COL_COUNT])
{
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

	if (cols[COL_TIMESTAMP] >= 0) {
		field(rec, cols[COL_TIMESTAMP], &s, &n);
		if (time_parse(s, n, &row.ts) != 0)
			return skip_row(rc, rec->line, SKIP_TIMESTAMP, n ? s : "empty");
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
		rc->ds->skipped++;
		rc->ds->skipped_by[SKIP_AFTER_AS_OF]++;
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

int ingest_read(const char *path, const ingest_options *opt, dataset *ds, strbuf *err)
{
	input in;
	csv_reader *csv = NULL;
	strbuf colstore = STRBUF_INIT;
	const char *names[COL_COUNT];
	int cols[COL_COUNT];
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
		sb_addf(err, "%s is empty: expected a header row with customer_id and item_id", path);
		goto out;
	}
	if (rc != CSV_OK) {
		sb_addf(err, "%s: cannot read the header row: %s", path, csv_strerror(rc));
		goto out;
	}
	for (int c = 0; c < COL_COUNT; c++)
		cols[c] = find_column(&rec, names[c]);
	for (int c = COL_CUSTOMER_ID; c <= COL_ITEM_ID; c++) {
		if (cols[c] >= 0)
			continue;
		sb_addf(err, "%s: no \"%s\" column in the header (", path, names[c]);
		for (size_t i = 0; i < rec.nfields && i < 12; i++)
			sb_addf(err, "%s%s", i ? "," : "", rec.fields[i]);
		sb_addf(err, "%s); map one with --columns %s=HEADER", rec.nfields > 12 ? ",..." : "",
			column_names[c]);
		goto out;
	}

	struct row_ctx rctx = { opt, opt->report ? opt->report : stderr, 0, ds, err };
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
		ds->records++;
		if (rc != CSV_OK) {
			if (skip_row(&rctx, rec.line, SKIP_CSV, csv_strerror(rc)) != 0)
				goto out_prog;
			continue;
		}
		if (ingest_record(&rctx, &rec, cols) != 0)
			goto out_prog;
		if ((ds->records & 0xffff) == 0)
			progress_update(&prog, by_bytes ? csv_bytes_read(csv) : ds->records);
	}
	progress_update(&prog, by_bytes ? csv_bytes_read(csv) : ds->records);
	ret = 0;
	if (rctx.reported < ds->skipped && !opt->strict)
		fprintf(rctx.report, "%s: %llu more bad rows not shown\n", label,
			(unsigned long long)(ds->skipped - rctx.reported));
out_prog:
	progress_end(&prog);
out:
	csv_close(csv);
	if (input_close(&in, err) != 0)
		ret = -1;
out_nofile:
	sb_release(&colstore);
	return ret;
}
