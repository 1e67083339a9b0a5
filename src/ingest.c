/*
 * ingest: interactions CSV into a dataset: column maps, the CSV scan every
 * input file goes through, the interactions rows, live events, id lists.
 * The catalog and customers files are read in ingest_catalog.c;
 * ingest_internal.h is what both share.
 */
#include "ingest.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv.h"
#include "ids.h"
#include "model_format.h" /* MODEL_ITEM_* */
#include "input.h"
#include "progress.h"
#include "timefmt.h"
#include "ingest_internal.h"
#include "util.h"

static const char *const column_names[COL_COUNT] = {
	[COL_CUSTOMER_ID] = "customer_id", [COL_ITEM_ID] = "item_id",
	[COL_TIMESTAMP] = "timestamp",     [COL_EVENT] = "event",
	[COL_QUANTITY] = "quantity",       [COL_PRICE] = "price",
	[COL_TITLE] = "title",             [COL_CATEGORY] = "category",
	[COL_COUNTRY] = "country",         [COL_BIRTH_DATE] = "birth_date",
	[COL_RECOMMENDABLE] = "recommendable", [COL_IMAGE_URL] = "image_url",
	[COL_URL] = "url",                 [COL_FIRST_SEEN] = "first_seen",
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
	[SKIP_FIELD] = "bad catalog field",
};

/* Quantities beyond this are data errors, not orders (Online Retail has a
 * few 80,995-unit typos, which stay; a million is not a basket). */
#define MAX_ABS_QUANTITY 1e6

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
	for (uint32_t i = 0; ds->item_title && i < ds->items_cap; i++) {
		free(ds->item_title[i]);
		free(ds->item_image_url[i]);
		free(ds->item_url[i]);
	}
	free(ds->item_flags);
	free(ds->item_first_seen);
	free(ds->item_image_url);
	free(ds->item_url);
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
	free(ds->live.source);
	memset(ds, 0, sizeof(*ds));
}

/* Parses "logical=Header,..." into names[] (NULL for columns not named),
 * pointing into `storage`. Messages start with `flag`. */
static int parse_spec(const char *flag, const char *spec, const char *names[COL_COUNT],
		      strbuf *storage, strbuf *err)
{
	for (int c = 0; c < COL_COUNT; c++)
		names[c] = NULL;
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
			sb_addf(err, "%s: expected NAME=HEADER, got \"%s\"", flag, p);
			return -1;
		}
		*eq = '\0';
		int found = -1;
		for (int c = 0; c < COL_COUNT; c++)
			if (strcmp(p, column_names[c]) == 0)
				found = c;
		if (found < 0) {
			sb_addf(err, "%s: unknown column \"%s\" (known:", flag, p);
			for (int c = 0; c < COL_COUNT; c++)
				sb_addf(err, "%s %s", c ? "," : "", column_names[c]);
			sb_addc(err, ')');
			return -1;
		}
		names[found] = eq + 1;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

int ingest_parse_columns(const char *spec, const char *names[COL_COUNT], strbuf *storage,
			 strbuf *err)
{
	if (parse_spec("--columns", spec, names, storage, err) != 0)
		return -1;
	for (int c = 0; c < COL_COUNT; c++)
		if (!names[c])
			names[c] = column_names[c];
	return 0;
}

int ingest_check_columns(const char *flag, const char *spec, strbuf *err)
{
	const char *names[COL_COUNT];
	strbuf store = STRBUF_INIT;
	int rc = parse_spec(flag, spec, names, &store, err);
	sb_release(&store);
	return rc;
}

bool ingest_parse_number(const char *s, size_t n, double *out)
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

/* Counts a skipped row, describes it if still within the report budget.
 * Returns -1 in strict mode (with the message in err), else 0. */
int ingest_skip(struct ingest_scan *rc, uint64_t line, enum skip_reason why, const char *detail)
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

void ingest_field(const ingest_scan *sc, const csv_record *rec, enum column c, const char **s,
		  size_t *n)
{
	field(rec, sc->cols[c], s, n);
}

bool ingest_has_column(const ingest_scan *sc, enum column c)
{
	return sc->cols[c] >= 0;
}

/* Appends a row for customer cid and item iid (interned here), keeping the
 * dataset's returns and time range up to date. */
static void add_row(dataset *ds, interaction *row, const char *cid, size_t cid_len,
		    const char *iid, size_t iid_len, bool has_ts)
{
	row->customer = idmap_intern(ds->customers, cid, cid_len, NULL);
	row->item = idmap_intern(ds->items, iid, iid_len, NULL);
	if (row->quantity < 0)
		ds->returns++;
	if (has_ts) {
		if (!ds->has_ts || row->ts < ds->ts_min)
			ds->ts_min = row->ts;
		if (!ds->has_ts || row->ts > ds->ts_max)
			ds->ts_max = row->ts;
		ds->has_ts = true;
	}
	if (ds->n_rows == ds->cap_rows) {
		ds->cap_rows = ds->cap_rows ? ds->cap_rows * 2 : 65536;
		ds->rows = xreallocarray(ds->rows, ds->cap_rows, sizeof(*ds->rows));
	}
	ds->rows[ds->n_rows++] = *row;
}

/* Parses one interactions record. Returns 0 (kept or skipped) or -1
 * (strict). */
static int interaction_record(struct ingest_scan *rc, const csv_record *rec, void *arg)
{
	const int *cols = rc->cols;
	dataset *ds = ((struct file_ctx *)arg)->ds;
	const char *s;
	size_t n;
	interaction row = { 0, 0, 0, 1.0f, 0.0f, EVENT_PURCHASE };

	field(rec, cols[COL_CUSTOMER_ID], &s, &n);
	const char *cid = s;
	size_t cid_len = n;
	if (!id_normalize(&cid, &cid_len))
		return ingest_skip(rc, rec->line, SKIP_NO_CUSTOMER,
				n > ID_MAX_LEN ? "longer than 256 bytes" : NULL);

	field(rec, cols[COL_ITEM_ID], &s, &n);
	const char *iid = s;
	size_t iid_len = n;
	if (!id_normalize(&iid, &iid_len))
		return ingest_skip(rc, rec->line, SKIP_NO_ITEM,
				n > ID_MAX_LEN ? "longer than 256 bytes" : NULL);
	if (excluded(rc, cid, cid_len))
		return 0;

	if (cols[COL_TIMESTAMP] >= 0) {
		field(rec, cols[COL_TIMESTAMP], &s, &n);
		if (time_parse(s, n, &row.ts) != 0)
			return ingest_skip(rc, rec->line, SKIP_TIMESTAMP, n ? s : "empty");
		/* A clock a day ahead is skew; beyond that the row is wrong, and
		 * keeping it would make it the as-of time of everything. */
		if (row.ts > rc->now + 86400)
			return ingest_skip(rc, rec->line, SKIP_TIMESTAMP, "in the future");
	}
	if (cols[COL_EVENT] >= 0) {
		field(rec, cols[COL_EVENT], &s, &n);
		if (n > 0) {
			int e = event_parse(s, n);
			if (e < 0)
				return ingest_skip(rc, rec->line, SKIP_EVENT, s);
			row.event = (uint8_t)e;
		}
	}
	if (cols[COL_QUANTITY] >= 0) {
		field(rec, cols[COL_QUANTITY], &s, &n);
		if (n > 0) {
			double q;
			if (!ingest_parse_number(s, n, &q) || q == 0 || fabs(q) > MAX_ABS_QUANTITY)
				return ingest_skip(rc, rec->line, SKIP_QUANTITY, s);
			row.quantity = (float)q;
		}
	}
	if (cols[COL_PRICE] >= 0) {
		field(rec, cols[COL_PRICE], &s, &n);
		if (n > 0) {
			double p;
			if (!ingest_parse_number(s, n, &p) || p < 0 || p > MAX_PRICE)
				return ingest_skip(rc, rec->line, SKIP_PRICE, s);
			row.price = (float)p;
		}
	}

	if (rc->opt->has_until && cols[COL_TIMESTAMP] >= 0 && row.ts > rc->opt->until) {
		/* Not an error: the data simply goes past the as-of time. */
		(*rc->skipped)++;
		rc->skipped_by[SKIP_AFTER_AS_OF]++;
		return 0;
	}

	add_row(ds, &row, cid, cid_len, iid, iid_len, cols[COL_TIMESTAMP] >= 0);
	return 0;
}

bool ingest_add_event(dataset *ds, const ingest_options *opt, const ingest_event *ev,
		      enum skip_reason *why)
{
	enum skip_reason r;
	const char *cid = ev->customer, *iid = ev->item;
	size_t cid_len = ev->customer_len, iid_len = ev->item_len;
	uint32_t idx;
	ds->live.read++;
	if (!utf8_valid(cid, cid_len) || !id_normalize(&cid, &cid_len))
		r = SKIP_NO_CUSTOMER;
	else if (!utf8_valid(iid, iid_len) || !id_normalize(&iid, &iid_len))
		r = SKIP_NO_ITEM;
	else if (opt->exclude && idmap_find(opt->exclude, cid, cid_len, &idx))
		r = SKIP_EXCLUDED;
	else if (ev->type >= EVENT_TYPES)
		r = SKIP_EVENT; /* remove-from-cart and later live types */
	else if (ev->ts < 0 || ev->ts > (int64_t)util_now() + 86400)
		r = SKIP_TIMESTAMP;
	else if (!(ev->quantity != 0) || !(fabsf(ev->quantity) <= MAX_ABS_QUANTITY))
		r = SKIP_QUANTITY;
	else if (!(ev->price >= 0) || !(ev->price <= MAX_PRICE))
		r = SKIP_PRICE;
	else if (opt->has_until && ev->ts > opt->until)
		r = SKIP_AFTER_AS_OF;
	else {
		interaction row = { 0, 0, ev->ts, ev->quantity, ev->price, ev->type };
		add_row(ds, &row, cid, cid_len, iid, iid_len, true);
		ds->live.added++;
		return true;
	}
	ds->live.skipped_by[r]++;
	if (why)
		*why = r;
	return false;
}

/* Appends the header's first fields to err, for "no such column" messages. */
static void describe_header(strbuf *err, const csv_record *hdr)
{
	sb_adds(err, " (header: ");
	for (size_t i = 0; i < hdr->nfields && i < 12; i++)
		sb_addf(err, "%s%s", i ? "," : "", hdr->fields[i]);
	sb_addf(err, "%s)", hdr->nfields > 12 ? ",..." : "");
}

/* Finds each logical column (see ingest_options for the order) and checks
 * the maps. Returns 0, or -1 with a message in *err. */
static int resolve_columns(const csv_record *hdr, const char *path, const char *file_flag,
			   const char *const general[COL_COUNT], const char *const own[COL_COUNT],
			   const enum column *required, const enum column *checked,
			   int cols[COL_COUNT], strbuf *err)
{
	for (int c = 0; c < COL_COUNT; c++) {
		/* A file's own map replaces --columns for that column. */
		const char *mapped = own[c] ? own[c] : general[c];
		cols[c] = mapped ? find_column(hdr, mapped) : -1;
		if (cols[c] < 0)
			cols[c] = find_column(hdr, column_names[c]);
	}
	for (const enum column *c = required; *c != COL_COUNT; c++) {
		if (cols[*c] >= 0)
			continue;
		sb_addf(err, "%s: no ", path);
		const char *mapped = own[*c] ? own[*c] : general[*c];
		if (mapped && strcasecmp(mapped, column_names[*c]) != 0)
			sb_addf(err, "\"%s\" or ", mapped);
		sb_addf(err, "\"%s\" column in the header", column_names[*c]);
		describe_header(err, hdr);
		sb_addf(err, "; map one with %s %s=HEADER", file_flag ? file_flag : "--columns",
			column_names[*c]);
		return -1;
	}
	for (int c = 0; c < COL_COUNT; c++) {
		if (cols[c] >= 0 || !own[c])
			continue;
		sb_addf(err, "%s: %s maps %s to \"%s\", but the header has neither \"%s\" nor \"%s\"",
			path, file_flag ? file_flag : "the file's own map", column_names[c], own[c],
			own[c], column_names[c]);
		describe_header(err, hdr);
		return -1;
	}
	for (const enum column *c = checked; c && *c != COL_COUNT; c++) {
		if (cols[*c] >= 0 || !general[*c])
			continue;
		sb_addf(err, "%s: --columns maps %s to \"%s\", but the header has neither \"%s\" nor \"%s\"",
			path, column_names[*c], general[*c], general[*c], column_names[*c]);
		describe_header(err, hdr);
		return -1;
	}
	return 0;
}

/* Reads one CSV file: header, then every record through fn (see
 * ingest_scan_file); the counters are the caller's. */
static int scan_file(const char *path, const ingest_options *opt, const char *file_flag,
		     const enum column *required, const enum column *checked, ingest_record_fn fn,
		     void *arg, uint64_t *records, uint64_t *skipped, uint64_t *skipped_by,
		     strbuf *err)
{
	input in;
	csv_reader *csv = NULL;
	strbuf general_store = STRBUF_INIT, own_store = STRBUF_INIT;
	const char *general[COL_COUNT], *own[COL_COUNT];
	int cols[COL_COUNT];
	char **header = NULL;
	size_t n_header = 0;
	int ret = -1;
	csv_record rec;
	progress prog;

	if (parse_spec("--columns", opt->columns, general, &general_store, err) != 0 ||
	    parse_spec(file_flag ? file_flag : "--columns", opt->file_columns, own, &own_store,
		       err) != 0)
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
	if (resolve_columns(&rec, path, file_flag, general, own, required, checked, cols, err) != 0)
		goto out;
	n_header = rec.nfields;
	header = xmallocarray(n_header, sizeof(*header));
	for (size_t i = 0; i < n_header; i++)
		header[i] = xstrndup(rec.fields[i], rec.lens[i]);

	struct ingest_scan sc = { opt, opt->report ? opt->report : stderr, 0, err,
				  (int64_t)util_now(), records, skipped, skipped_by, cols,
				  (const char *const *)header, n_header, 0 };
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
			if (ingest_skip(&sc, rec.line, SKIP_CSV, csv_strerror(rc)) != 0)
				goto out_prog;
			continue;
		}
		if (fn(&sc, &rec, arg) != 0)
			goto out_prog;
		if ((*records & 0xffff) == 0)
			progress_update(&prog, by_bytes ? csv_bytes_read(csv) : *records);
	}
	progress_update(&prog, by_bytes ? csv_bytes_read(csv) : *records);
	ret = 0;
	/* Rows of erased customers are no bad rows: they are not announced. */
	uint64_t bad = *skipped - sc.excluded;
	if (sc.reported < bad && !opt->strict)
		fprintf(sc.report, "%s: %llu more bad rows not shown\n", label,
			(unsigned long long)(bad - sc.reported));
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
	sb_release(&general_store);
	sb_release(&own_store);
	return ret;
}

int ingest_scan_file(const char *path, const ingest_options *opt, const char *file_flag,
		     const enum column *required, const enum column *checked,
		     ingest_record_fn fn, void *arg, ingest_stats *stats, strbuf *err)
{
	return scan_file(path, opt, file_flag, required, checked, fn, arg, &stats->records,
			 &stats->skipped, NULL, err);
}

int ingest_read(const char *path, const ingest_options *opt, dataset *ds, strbuf *err)
{
	static const enum column required[] = { COL_CUSTOMER_ID, COL_ITEM_ID, COL_COUNT };
	static const enum column checked[] = { COL_TIMESTAMP, COL_EVENT, COL_QUANTITY, COL_PRICE,
					       COL_COUNT };
	/* The interactions file's own map is --columns itself. */
	ingest_options o = *opt;
	o.file_columns = NULL;
	struct file_ctx fc = { ds, { 0 } };
	return scan_file(path, &o, NULL, required, checked, interaction_record, &fc, &ds->records,
			 &ds->skipped, ds->skipped_by, err);
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
			sb_addf(err, "%s: line %llu is not a usable id", path,
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
