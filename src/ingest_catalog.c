/*
 * ingest_catalog: the catalog and customers files into a dataset (ingest.h):
 * per-item title, category, price, flags, URLs and first_seen day,
 * per-customer attributes and birthday, ids repeated across rows counted
 * and reported; dataset_first_seen and dataset_exclude_items. The CSV
 * scan is ingest.c's (ingest_scan_file).
 */
#include "ingest.h"

#include <assert.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ids.h"
#include "ingest_internal.h"
#include "model_format.h" /* MODEL_ITEM_* */
#include "timefmt.h"
#include "util.h"

static void repeats_note(struct repeats *r, uint32_t idx, const char *id, size_t len)
{
	if (idx >= r->cap) {
		uint32_t cap = MAX(idx + 1, r->cap ? r->cap * 2 : 4096);
		r->seen = xrealloc(r->seen, cap);
		memset(r->seen + r->cap, 0, cap - r->cap);
		r->cap = cap;
	}
	if (r->seen[idx] == 0) {
		r->seen[idx] = 1;
		return;
	}
	r->rows++;
	if (r->seen[idx] == 2)
		return;
	r->seen[idx] = 2;
	if (r->ids++ < REPEATS_SHOWN) {
		if (r->first.len)
			sb_adds(&r->first, ", ");
		sb_add_json_str(&r->first, id, len);
	}
}

/* Counts the repeats into *st and, after a whole file was read (`report`
 * not NULL), warns; `advice` says what to do. Releases r. */
static void repeats_report(struct repeats *r, ingest_stats *st, FILE *report, const char *label,
			   const char *path, const char *noun, const char *advice)
{
	st->duplicate_rows = r->rows;
	st->duplicate_ids = r->ids;
	if (r->rows && report)
		fprintf(report, "%s: warning: %s repeats %llu %s on %llu more rows (first: %s%s); %s\n",
			label, path, (unsigned long long)r->ids, noun,
			(unsigned long long)r->rows, sb_str(&r->first), r->ids > REPEATS_SHOWN ? ", ..." : "",
			advice);
	free(r->seen);
	sb_release(&r->first);
	memset(r, 0, sizeof(*r));
}

/* Makes the per-item and per-customer attribute arrays as long as the id
 * maps (new entries empty). Called by the readers; harmless to repeat. */
static void dataset_fit_attributes(dataset *ds)
{
	/* Grown to the id maps' size; the spare capacity avoids regrowing for
	 * every item a catalog adds. */
	uint32_t ni = idmap_count(ds->items), nc = idmap_count(ds->customers);
	if (ds->item_title && ni > ds->items_cap) {
		uint32_t cap = MAX(ni, ds->items_cap * 2);
		ds->item_title = xreallocarray(ds->item_title, cap, sizeof(*ds->item_title));
		ds->item_category = xreallocarray(ds->item_category, cap, sizeof(*ds->item_category));
		ds->item_price = xreallocarray(ds->item_price, cap, sizeof(*ds->item_price));
		ds->item_flags = xreallocarray(ds->item_flags, cap, sizeof(*ds->item_flags));
		ds->item_image_url = xreallocarray(ds->item_image_url, cap, sizeof(*ds->item_image_url));
		ds->item_url = xreallocarray(ds->item_url, cap, sizeof(*ds->item_url));
		ds->item_first_seen =
			xreallocarray(ds->item_first_seen, cap, sizeof(*ds->item_first_seen));
		for (uint32_t i = ds->items_cap; i < cap; i++) {
			ds->item_title[i] = NULL;
			ds->item_category[i] = UINT32_MAX;
			ds->item_price[i] = -1.0f;
			ds->item_flags[i] = 0;
			ds->item_image_url[i] = NULL;
			ds->item_url[i] = NULL;
			ds->item_first_seen[i] = MODEL_DAY_UNKNOWN;
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

/* true/false, yes/no, 1/0 (case and surrounding blanks ignored). */
static bool parse_bool(const char *s, size_t n, bool *out)
{
	static const char *const yes[] = { "true", "yes", "1" }, *const no[] = { "false", "no", "0" };
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	for (size_t i = 0; i < 3; i++) {
		if (strlen(yes[i]) == n && strncasecmp(s, yes[i], n) == 0) {
			*out = true;
			return true;
		}
		if (strlen(no[i]) == n && strncasecmp(s, no[i], n) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* A catalog's first_seen: a date, or any timestamp time_parse takes (its
 * day counts), blanks around allowed. */
static bool parse_day(const char *s, size_t n, int32_t *day)
{
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	int64_t t;
	if (n == 0 || time_parse(s, n, &t) != 0)
		return false;
	*day = (int32_t)(t / 86400); /* time_parse: 1970..9999, never negative */
	return true;
}

static int catalog_record(struct ingest_scan *rc, const csv_record *rec, void *arg)
{
	struct file_ctx *fc = arg;
	dataset *ds = fc->ds;
	const char *s;
	size_t n;

	field(rec, rc->cols[COL_ITEM_ID], &s, &n);
	const char *iid = s;
	size_t iid_len = n;
	if (!id_normalize(&iid, &iid_len))
		return ingest_skip(rc, rec->line, SKIP_NO_ITEM, n > ID_MAX_LEN ? "longer than 256 bytes" : NULL);
	float price = -1.0f;
	field(rec, rc->cols[COL_PRICE], &s, &n);
	if (n > 0) {
		double p;
		if (!ingest_parse_number(s, n, &p) || p < 0 || p > MAX_PRICE)
			return ingest_skip(rc, rec->line, SKIP_PRICE, s);
		price = (float)p;
	}
	bool recommendable = true;
	field(rec, rc->cols[COL_RECOMMENDABLE], &s, &n);
	if (n > 0 && !parse_bool(s, n, &recommendable))
		return ingest_skip(rc, rec->line, SKIP_FIELD,
				   "recommendable is not true or false (yes/no, 1/0)");
	const char *image_url, *url;
	size_t image_len, url_len;
	field(rec, rc->cols[COL_IMAGE_URL], &image_url, &image_len);
	field(rec, rc->cols[COL_URL], &url, &url_len);
	if (image_len > INGEST_MAX_URL || url_len > INGEST_MAX_URL)
		return ingest_skip(rc, rec->line, SKIP_FIELD, "a URL longer than 2048 bytes");
	int32_t first_seen = MODEL_DAY_UNKNOWN;
	field(rec, rc->cols[COL_FIRST_SEEN], &s, &n);
	if (n > 0 && !parse_day(s, n, &first_seen))
		return ingest_skip(rc, rec->line, SKIP_FIELD, "first_seen is not a date (YYYY-MM-DD)");

	bool created;
	uint32_t item = idmap_intern(ds->items, iid, iid_len, &created);
	if (created)
		ds->catalog_stats.added++;
	repeats_note(&fc->rep, item, iid, iid_len);
	dataset_fit_attributes(ds);
	field(rec, rc->cols[COL_TITLE], &s, &n);
	free(ds->item_title[item]); /* a later row for the same item wins */
	ds->item_title[item] = trimmed_copy(s, MIN(n, (size_t)INGEST_MAX_TITLE));
	field(rec, rc->cols[COL_CATEGORY], &s, &n);
	char *cat = trimmed_copy(s, MIN(n, (size_t)INGEST_MAX_CATEGORY));
	ds->item_category[item] = cat ? idmap_intern(ds->categories, cat, strlen(cat), NULL) : UINT32_MAX;
	free(cat);
	ds->item_price[item] = price;
	ds->item_flags[item] = recommendable ? 0 : MODEL_ITEM_NOT_RECOMMENDABLE;
	ds->item_first_seen[item] = first_seen;
	free(ds->item_image_url[item]);
	ds->item_image_url[item] = trimmed_copy(image_url, image_len);
	free(ds->item_url[item]);
	ds->item_url[item] = trimmed_copy(url, url_len);
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

static int customer_record(struct ingest_scan *rc, const csv_record *rec, void *arg)
{
	struct file_ctx *fc = arg;
	dataset *ds = fc->ds;
	const char *s;
	size_t n;

	field(rec, rc->cols[COL_CUSTOMER_ID], &s, &n);
	const char *cid = s;
	size_t cid_len = n;
	if (!id_normalize(&cid, &cid_len))
		return ingest_skip(rc, rec->line, SKIP_NO_CUSTOMER,
				n > ID_MAX_LEN ? "longer than 256 bytes" : NULL);
	if (excluded(rc, cid, cid_len))
		return 0;
	uint16_t birthday = 0;
	field(rec, rc->cols[COL_BIRTH_DATE], &s, &n);
	if (n > 0 && (birthday = parse_birthday(s, n)) == 0)
		return ingest_skip(rc, rec->line, SKIP_TIMESTAMP, "birth_date is not a YYYY-MM-DD date");

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
		return ingest_skip(rc, rec->line, SKIP_CSV, "attributes longer than 4096 bytes");
	}

	bool created;
	uint32_t c = idmap_intern(ds->customers, cid, cid_len, &created);
	if (created)
		ds->customer_stats.added++;
	repeats_note(&fc->rep, c, cid, cid_len);
	dataset_fit_attributes(ds);
	free(ds->customer_attrs[c]);
	ds->customer_attrs[c] = first ? NULL : sb_detach(&attrs, NULL);
	sb_release(&attrs);
	ds->customer_birthday[c] = birthday;
	return 0;
}

static FILE *report_of(const ingest_options *opt)
{
	return opt->report ? opt->report : stderr;
}

/* Creates the per-item catalog arrays (empty entries), once. */
static void catalog_arrays(dataset *ds)
{
	if (ds->item_title)
		return;
	ds->categories = idmap_create();
	ds->items_cap = 0;
	ds->item_title = xmalloc(sizeof(*ds->item_title));
	ds->item_category = xmalloc(sizeof(*ds->item_category));
	ds->item_price = xmalloc(sizeof(*ds->item_price));
	ds->item_flags = xmalloc(sizeof(*ds->item_flags));
	ds->item_image_url = xmalloc(sizeof(*ds->item_image_url));
	ds->item_url = xmalloc(sizeof(*ds->item_url));
	ds->item_first_seen = xmalloc(sizeof(*ds->item_first_seen));
	dataset_fit_attributes(ds);
}

void dataset_first_seen(const dataset *ds, uint32_t n_items, int32_t *days)
{
	assert(n_items <= idmap_count(ds->items));
	for (uint32_t i = 0; i < n_items; i++)
		days[i] = ds->item_first_seen && i < ds->items_cap ? ds->item_first_seen[i]
								    : MODEL_DAY_UNKNOWN;
	if (!ds->has_ts)
		return;
	/* Items the catalog dates keep its date; the rest take their earliest
	 * row. A row's ts is 0 only when its file had no timestamp column. */
	int64_t *first = xmallocarray(n_items ? n_items : 1, sizeof(*first));
	for (uint32_t i = 0; i < n_items; i++)
		first[i] = INT64_MAX;
	for (size_t r = 0; r < ds->n_rows; r++) {
		const interaction *row = &ds->rows[r];
		if (row->item < n_items && row->ts > 0 && row->ts < first[row->item])
			first[row->item] = row->ts;
	}
	for (uint32_t i = 0; i < n_items; i++)
		if (days[i] == MODEL_DAY_UNKNOWN && first[i] != INT64_MAX)
			days[i] = (int32_t)(first[i] / 86400);
	free(first);
}

void dataset_exclude_items(dataset *ds, const idmap *ids, uint32_t *unknown)
{
	catalog_arrays(ds);
	*unknown = 0;
	for (uint32_t i = 0; i < idmap_count(ids); i++) {
		size_t len;
		const char *id = idmap_name(ids, i, &len);
		uint32_t item;
		if (idmap_find(ds->items, id, len, &item))
			ds->item_flags[item] |= MODEL_ITEM_NOT_RECOMMENDABLE;
		else
			(*unknown)++;
	}
}

int ingest_catalog(const char *path, const ingest_options *opt, dataset *ds, strbuf *err)
{
	static const enum column required[] = { COL_ITEM_ID, COL_COUNT };
	catalog_arrays(ds);
	struct file_ctx fc = { ds, { 0 } };
	int rc = ingest_scan_file(path, opt, "--catalog-columns", required, NULL, catalog_record,
				  &fc, &ds->catalog_stats, err);
	repeats_report(&fc.rep, &ds->catalog_stats, rc == 0 ? report_of(opt) : NULL,
		       opt->label ? opt->label : "catalog", path, "item ids",
		       "each item keeps its last row. A catalog has one row per item; if this is "
		       "a sales log, make one with: shopkeeper catalog --from-interactions FILE");
	return rc;
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
	struct file_ctx fc = { ds, { 0 } };
	int rc = ingest_scan_file(path, opt, "--customers-columns", required, NULL, customer_record,
				  &fc, &ds->customer_stats, err);
	repeats_report(&fc.rep, &ds->customer_stats, rc == 0 ? report_of(opt) : NULL,
		       opt->label ? opt->label : "customers", path, "customer ids",
		       "each customer keeps the attributes of its last row. A customers file has "
		       "one row per customer; if this is a sales log, make one with: shopkeeper "
		       "customers --from-interactions FILE");
	return rc;
}
