/*
 * export_fmt: audience export lines. See export_fmt.h.
 */
#include "export_fmt.h"
#include "live_items.h"

#include <assert.h>
#include <string.h>

#include "csv.h"
#include "rec_json.h"

int export_format_parse(const char *s, size_t len, enum export_format *out)
{
	if (len == 5 && memcmp(s, "jsonl", 5) == 0)
		*out = EXPORT_JSONL;
	else if (len == 3 && memcmp(s, "csv", 3) == 0)
		*out = EXPORT_CSV;
	else
		return -1;
	return 0;
}

const char *export_content_type(enum export_format f)
{
	return f == EXPORT_CSV ? "text/csv; charset=utf-8" : "application/x-ndjson; charset=utf-8";
}

void export_header(strbuf *sb, enum export_format f, uint32_t n)
{
	static const char *const cols[] = { "id", "title", "price", "url", "because" };
	if (f != EXPORT_CSV)
		return;
	sb_adds(sb, "customer_id");
	for (uint32_t k = 1; k <= n; k++)
		for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++)
			sb_addf(sb, ",item%u_%s", k, cols[c]);
	sb_addc(sb, '\n');
}

static void csv_line(strbuf *sb, const model *m, const audience_member *mb, const rec_result *r,
		     uint32_t n)
{
	csv_add_field(sb, mb->id, mb->len);
	for (uint32_t k = 0; k < n; k++) {
		if (k >= r->n) {
			sb_adds(sb, ",,,,,");
			continue;
		}
		const rec_item *it = &r->items[k];
		const rec_live_item *li = rec_live_at(m, r, it->item);
		size_t len;
		if (li) { /* added since training: no URL, no because items */
			sb_addc(sb, ',');
			csv_add_field(sb, li->id, li->id_len);
			sb_addc(sb, ',');
			csv_add_field(sb, li->title, li->title_len);
			sb_addc(sb, ',');
			if (li->price >= 0)
				rec_json_add_money(sb, li->price);
			sb_adds(sb, ",,");
			continue;
		}
		const char *s = model_item_id(m, it->item, &len);
		sb_addc(sb, ',');
		csv_add_field(sb, s, len);
		s = model_item_title(m, it->item, &len);
		sb_addc(sb, ',');
		csv_add_field(sb, s, len);
		sb_addc(sb, ',');
		float price = model_item_price(m, it->item);
		if (price >= 0)
			rec_json_add_money(sb, price);
		s = model_item_url(m, it->item, &len);
		sb_addc(sb, ',');
		csv_add_field(sb, s, len);
		sb_addc(sb, ',');
		if (it->n_because) {
			s = model_item_title(m, it->because[0], &len);
			if (!len)
				s = model_item_id(m, it->because[0], &len);
			csv_add_field(sb, s, len);
		}
	}
	sb_addc(sb, '\n');
}

void export_line(strbuf *sb, enum export_format f, const model *m, model_txn *t,
		 const audience *a, const audience_member *mb, const rec_result *r, uint32_t n)
{
	if (f == EXPORT_CSV) {
		csv_line(sb, m, mb, r, n);
		return;
	}
	rec_json_member(sb, m, mb->id, mb->len, mb->seg, mb->live.intent, r, REC_JSON_EXPORT, true);
	assert(sb->len && sb->buf[sb->len - 1] == '}');
	sb_truncate(sb, sb->len - 1); /* the audience's own fields go last */
	audience_member_json(sb, m, t, a, mb);
	sb_adds(sb, "}\n");
}

void export_cap_filter(rec_filter *f, model_txn *t, const audience_member *mb,
		       uint32_t *exclude, uint32_t cap)
{
	rec_filter_init(f);
	f->exclude = exclude;
	f->n_exclude = audience_capped_views(t, &mb->events, exclude, cap);
}
