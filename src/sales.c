/*
 * sales: a catalog or customers table from a sales log.
 *
 * Most frequent values and medians are counted, not collected: every
 * distinct (id, text) and (id, price) pair is interned once with a count,
 * so Online Retail's 541,909 rows make a few thousand pairs per table.
 * Pairs are numbered in order of first appearance, which is what breaks
 * ties between equally frequent titles.
 */
#include "sales.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "idmap.h"
#include "ids.h"
#include "timefmt.h"
#include "util.h"

#define NONE UINT32_MAX
#define MAX_COUNTRY 128 /* bytes of a country kept */

struct sales_table {
	enum sales_kind kind;
	idmap *ids;            /* item or customer ids, in order of appearance */
	uint32_t ids_cap;      /* length of first_ts */
	int64_t *first_ts;     /* per id, INT64_MAX: no timestamp (catalog) */

	idmap *texts;          /* key: 4-byte id index, then the title or country */
	uint32_t *text_count;  /* per text pair */
	uint32_t texts_cap;

	idmap *prices;         /* key: 4-byte id index, then the price's 8 bytes */
	uint32_t *price_count; /* per price pair */
	uint32_t prices_cap;

	strbuf key;            /* scratch for building pair keys */
	bool has[COL_COUNT];   /* the log's columns (known from the first record) */
	bool columns_known;
	ingest_stats stats;
};

/* Bumps the count of pair `idx`, growing the count array as the map grew. */
static void count_pair(uint32_t **counts, uint32_t *cap, uint32_t idx)
{
	if (idx >= *cap) {
		uint32_t ncap = MAX(idx + 1, *cap ? *cap * 2 : 4096);
		*counts = xreallocarray(*counts, ncap, sizeof(**counts));
		memset(*counts + *cap, 0, (size_t)(ncap - *cap) * sizeof(**counts));
		*cap = ncap;
	}
	(*counts)[idx]++;
}

/* s[0..n) without surrounding blanks, cut to at most `max` bytes at a UTF-8
 * character boundary. */
static void trim(const char **s, size_t *n, size_t max)
{
	while (*n > 0 && isspace((unsigned char)**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && isspace((unsigned char)(*s)[*n - 1]))
		(*n)--;
	if (*n > max) {
		*n = max;
		while (*n > 0 && ((unsigned char)(*s)[*n] & 0xc0) == 0x80)
			(*n)--;
	}
}

static void count_text(sales_table *t, uint32_t id, const char *s, size_t n, size_t max)
{
	trim(&s, &n, max);
	if (n == 0)
		return;
	sb_reset(&t->key);
	sb_add(&t->key, &id, sizeof(id));
	sb_add(&t->key, s, n);
	count_pair(&t->text_count, &t->texts_cap, idmap_intern(t->texts, t->key.buf, t->key.len, NULL));
}

/* A row's price counts towards the median when price and quantity are
 * positive: returns, adjustments and free samples say nothing about what
 * the item sells for. */
static void count_price(sales_table *t, ingest_scan *sc, const csv_record *rec, uint32_t id)
{
	const char *s;
	size_t n;
	double price, qty = 1;
	ingest_field(sc, rec, COL_PRICE, &s, &n);
	if (!ingest_parse_number(s, n, &price) || !(price > 0))
		return;
	if (t->has[COL_QUANTITY]) {
		ingest_field(sc, rec, COL_QUANTITY, &s, &n);
		if (n > 0 && (!ingest_parse_number(s, n, &qty) || !(qty > 0)))
			return;
	}
	sb_reset(&t->key);
	sb_add(&t->key, &id, sizeof(id));
	sb_add(&t->key, &price, sizeof(price));
	count_pair(&t->price_count, &t->prices_cap,
		   idmap_intern(t->prices, t->key.buf, t->key.len, NULL));
}

static int sales_record(ingest_scan *sc, const csv_record *rec, void *arg)
{
	sales_table *t = arg;
	bool catalog = t->kind == SALES_CATALOG;
	const char *s;
	size_t n;
	if (!t->columns_known) { /* the header was read just before */
		for (int c = 0; c < COL_COUNT; c++)
			t->has[c] = ingest_has_column(sc, (enum column)c);
		t->columns_known = true;
	}
	ingest_field(sc, rec, catalog ? COL_ITEM_ID : COL_CUSTOMER_ID, &s, &n);
	const char *id = s;
	size_t id_len = n;
	if (!id_normalize(&id, &id_len))
		return ingest_skip(sc, rec->line, catalog ? SKIP_NO_ITEM : SKIP_NO_CUSTOMER,
				   n > ID_MAX_LEN ? "longer than 256 bytes" : NULL);
	uint32_t idx = idmap_intern(t->ids, id, id_len, NULL);

	if (!catalog) {
		ingest_field(sc, rec, COL_COUNTRY, &s, &n);
		count_text(t, idx, s, n, MAX_COUNTRY);
		return 0;
	}
	if (idx >= t->ids_cap) {
		uint32_t cap = MAX(idx + 1, t->ids_cap ? t->ids_cap * 2 : 4096);
		t->first_ts = xreallocarray(t->first_ts, cap, sizeof(*t->first_ts));
		for (uint32_t i = t->ids_cap; i < cap; i++)
			t->first_ts[i] = INT64_MAX;
		t->ids_cap = cap;
	}
	ingest_field(sc, rec, COL_TITLE, &s, &n);
	count_text(t, idx, s, n, INGEST_MAX_TITLE);
	int64_t ts;
	ingest_field(sc, rec, COL_TIMESTAMP, &s, &n);
	if (n > 0 && time_parse(s, n, &ts) == 0 && ts < t->first_ts[idx])
		t->first_ts[idx] = ts;
	count_price(t, sc, rec, idx);
	return 0;
}

int sales_table_read(enum sales_kind kind, const char *path, const ingest_options *opt,
		     sales_table **out, strbuf *err)
{
	static const enum column catalog_required[] = { COL_ITEM_ID, COL_COUNT };
	static const enum column catalog_checked[] = { COL_TITLE, COL_PRICE, COL_QUANTITY,
						       COL_TIMESTAMP, COL_COUNT };
	static const enum column customers_required[] = { COL_CUSTOMER_ID, COL_COUNT };
	static const enum column customers_checked[] = { COL_COUNTRY, COL_COUNT };
	bool catalog = kind == SALES_CATALOG;
	sales_table *t = xcalloc(1, sizeof(*t));
	t->kind = kind;
	t->ids = idmap_create();
	t->texts = idmap_create();
	t->prices = idmap_create();

	int rc = ingest_scan_file(path, opt, NULL, catalog ? catalog_required : customers_required,
				  catalog ? catalog_checked : customers_checked, sales_record, t,
				  &t->stats, err);
	if (rc != 0) {
		sales_table_free(t);
		return -1;
	}
	t->stats.added = idmap_count(t->ids);
	*out = t;
	return 0;
}

/* ---- output ------------------------------------------------------------- */

static uint32_t pair_owner(const idmap *m, uint32_t pair)
{
	uint32_t id;
	memcpy(&id, idmap_name(m, pair, NULL), sizeof(id));
	return id;
}

/* Per id, its most frequent text pair (NONE: no text); ties go to the
 * pair numbered first, which is the value seen first. */
static uint32_t *best_texts(const sales_table *t, uint32_t n_ids)
{
	uint32_t *best = xmallocarray(n_ids ? n_ids : 1, sizeof(*best));
	for (uint32_t i = 0; i < n_ids; i++)
		best[i] = NONE;
	uint32_t n = idmap_count(t->texts);
	for (uint32_t p = 0; p < n; p++) {
		uint32_t id = pair_owner(t->texts, p);
		if (best[id] == NONE || t->text_count[p] > t->text_count[best[id]])
			best[id] = p;
	}
	return best;
}

struct price_count {
	double price;
	uint32_t count;
};

static int by_price(const void *a, const void *b)
{
	double x = ((const struct price_count *)a)->price, y = ((const struct price_count *)b)->price;
	return x < y ? -1 : x > y;
}

/* Per item, the median price (-1: none). */
static double *median_prices(const sales_table *t, uint32_t n_ids)
{
	uint32_t n = idmap_count(t->prices);
	uint32_t *off = xcalloc((size_t)n_ids + 1, sizeof(*off));
	for (uint32_t p = 0; p < n; p++)
		off[pair_owner(t->prices, p) + 1]++;
	for (uint32_t i = 0; i < n_ids; i++)
		off[i + 1] += off[i];
	struct price_count *pc = xmallocarray(n ? n : 1, sizeof(*pc));
	uint32_t *fill = xmallocarray(n_ids ? n_ids : 1, sizeof(*fill));
	memcpy(fill, off, (size_t)n_ids * sizeof(*fill));
	for (uint32_t p = 0; p < n; p++) {
		uint32_t id = pair_owner(t->prices, p);
		struct price_count *e = &pc[fill[id]++];
		memcpy(&e->price, idmap_name(t->prices, p, NULL) + sizeof(uint32_t), sizeof(e->price));
		e->count = t->price_count[p];
	}
	double *median = xmallocarray(n_ids ? n_ids : 1, sizeof(*median));
	for (uint32_t i = 0; i < n_ids; i++) {
		struct price_count *e = pc + off[i];
		uint32_t k = off[i + 1] - off[i];
		median[i] = -1;
		if (k == 0)
			continue;
		qsort(e, k, sizeof(*e), by_price);
		uint64_t total = 0;
		for (uint32_t j = 0; j < k; j++)
			total += e[j].count;
		/* The values at 0-based ranks lo and hi of the sorted multiset:
		 * the same rank for an odd count, neighbours for an even one. */
		uint64_t lo = (total - 1) / 2, hi = total / 2, seen = 0;
		double vlo = 0, vhi = 0;
		for (uint32_t j = 0; j < k; j++) {
			if (lo >= seen && lo < seen + e[j].count)
				vlo = e[j].price;
			if (hi >= seen && hi < seen + e[j].count) {
				vhi = e[j].price;
				break;
			}
			seen += e[j].count;
		}
		median[i] = (vlo + vhi) / 2;
	}
	free(fill);
	free(pc);
	free(off);
	return median;
}

int sales_table_write(const sales_table *t, FILE *out)
{
	bool catalog = t->kind == SALES_CATALOG;
	uint32_t n_ids = idmap_count(t->ids);
	uint32_t *best = best_texts(t, n_ids);
	double *median = catalog ? median_prices(t, n_ids) : NULL;
	strbuf line = STRBUF_INIT;
	int ret = 0;
	fputs(catalog ? "item_id,title,price,first_seen\n" : "customer_id,country\n", out);
	for (uint32_t i = 0; i < n_ids && ret == 0; i++) {
		size_t len;
		const char *id = idmap_name(t->ids, i, &len);
		sb_reset(&line);
		csv_add_field(&line, id, len);
		sb_addc(&line, ',');
		if (best[i] != NONE) {
			const char *text = idmap_name(t->texts, best[i], &len);
			csv_add_field(&line, text + sizeof(uint32_t), len - sizeof(uint32_t));
		}
		if (catalog) {
			sb_addc(&line, ',');
			if (median[i] >= 0)
				sb_addf(&line, "%.10g", median[i]);
			sb_addc(&line, ',');
			if (i < t->ids_cap && t->first_ts[i] != INT64_MAX) {
				char day[TIME_FMT_LEN];
				time_format(t->first_ts[i], day);
				sb_add(&line, day, 10); /* YYYY-MM-DD */
			}
		}
		sb_addc(&line, '\n');
		if (fwrite(line.buf, 1, line.len, out) != line.len)
			ret = -1;
	}
	if (fflush(out) != 0 || ferror(out))
		ret = -1;
	sb_release(&line);
	free(median);
	free(best);
	return ret;
}

const ingest_stats *sales_table_stats(const sales_table *t)
{
	return &t->stats;
}

bool sales_table_has(const sales_table *t, enum column c)
{
	return (unsigned)c < COL_COUNT && t->has[c];
}

void sales_table_free(sales_table *t)
{
	if (!t)
		return;
	idmap_free(t->ids);
	idmap_free(t->texts);
	idmap_free(t->prices);
	free(t->first_ts);
	free(t->text_count);
	free(t->price_count);
	sb_release(&t->key);
	free(t);
}
