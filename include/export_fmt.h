/*
 * export_fmt: one audience member as a line of an export, shared by
 * `shopkeeper export` and GET /v1/audiences/{name}/export so the two give
 * the same bytes.
 *
 *   EXPORT_JSONL  rec_json's REC_JSON_EXPORT member, plus the audience's
 *                 own member fields (audience_member_json), then "\n".
 *   EXPORT_CSV    RFC 4180, one row per customer: customer_id, then for
 *                 K = 1..n  itemK_id, itemK_title, itemK_price (rounded to
 *                 cents; empty when unknown), itemK_url (empty: the catalog
 *                 has no url column yet), itemK_because (the title of the
 *                 bought item that contributed most, its id when it has no
 *                 title; empty for a popular item). A customer with fewer
 *                 than n items has empty fields for the rest.
 *
 * Writes into a strbuf: nothing here allocates but the buffer's growth.
 */
#ifndef SHOPKEEPER_EXPORT_FMT_H
#define SHOPKEEPER_EXPORT_FMT_H

#include <stdint.h>

#include "audience.h"
#include "model.h"
#include "recommend.h"
#include "strbuf.h"

enum export_format {
	EXPORT_JSONL,
	EXPORT_CSV,
};

/* Parses "jsonl" or "csv": 0, or -1. */
int export_format_parse(const char *s, size_t len, enum export_format *out);
/* The media type of a download in the format. */
const char *export_content_type(enum export_format f);

/* Appends the header row (CSV; nothing for JSON Lines) for n items. */
void export_header(strbuf *sb, enum export_format f, uint32_t n);

/* Appends member mb of audience a with their recommendations r as one
 * line (borrowed all; n is the item count the export asked for). */
void export_line(strbuf *sb, enum export_format f, const model *m, model_txn *t,
		 const audience *a, const audience_member *mb, const rec_result *r, uint32_t n);

/* The frequency cap every audience answer applies: a filter that keeps out
 * the items the member viewed AUDIENCE_CAP_VIEWS times without carting or
 * buying them. exclude has room for cap indexes. */
void export_cap_filter(rec_filter *f, model_txn *t, const audience_member *mb,
		       uint32_t *exclude, uint32_t cap);

#endif
