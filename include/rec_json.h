/*
 * rec_json: a recommendation result as JSON, in the two documented shapes.
 *
 * The HTTP routes and `shopkeeper export` answer with the same result
 * (rec_result) for different readers: an API client gets item ids it can
 * look up, a mail merge gets titles it can print. One writer keeps the two
 * from drifting apart (tests/e2e/test_rec_json.py pins both byte for byte).
 *
 *   REC_JSON_API     {"item_id","score","title"?,"price"?,"category"?,
 *                     "image_url"?,"url"?,"source"?,"because"?:[ids]}
 *                    catalog fields only when the catalog has them;
 *                    "source":"popular" on an item that tops up a personal
 *                    answer; because (item ids) only when asked for.
 *   REC_JSON_EXPORT  {"item_id","title","price","category","image_url","url",
 *                     "score","because":[{"item_id","title"}]}
 *                    every field always (a mail merge's columns): "" for
 *                    unknown text, null for an unknown price; because always.
 * A price is written rounded to cents.
 *
 * Writes into a strbuf: nothing here allocates but the buffer's growth.
 */
#ifndef SHOPKEEPER_REC_JSON_H
#define SHOPKEEPER_REC_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "recommend.h"
#include "rfm.h"
#include "model.h"
#include "strbuf.h"

enum rec_json_shape {
	REC_JSON_API,
	REC_JSON_EXPORT,
};

/* Fixed precisions of the figures in answers (docs/api.md, "Numbers"):
 * money is rounded to cents, intent to 4 decimals; scores keep 6
 * significant digits (they rank; their scale depends on the model). Each
 * is written as the shortest JSON number of that value: 4309.9976 of money
 * is 4310, 12.50 is 12.5. */
#define REC_JSON_MONEY_DECIMALS 2
#define REC_JSON_INTENT_DECIMALS 4
#define REC_JSON_SCORE_DIGITS 6
void rec_json_add_money(strbuf *sb, double v);
void rec_json_add_intent(strbuf *sb, double v);

/* Appends "items":[...] for r, whose item indexes are m's (both borrowed).
 * `because` asks for the because lists in REC_JSON_API; REC_JSON_EXPORT
 * always writes them. */
void rec_json_items(strbuf *sb, const model *m, const rec_result *r, enum rec_json_shape shape,
		    bool because);

/* Appends ,"rec_id":"<rec_id>","experiment":{"name":..,"variant":..},
 * or "experiment":null when `experiment` is NULL (all borrowed; none
 * needs JSON escaping: a rec_id is base64url, names are [A-Za-z0-9._-] by
 * the experiments file's rules, and they are copied as they are): what
 * every customer, item-similar and basket answer carries (docs/api.md,
 * "Experiments"). Audience members and export lines carry neither: they
 * are not served under an experiment. */
void rec_json_tag(strbuf *sb, const char *rec_id, const char *experiment, const char *variant);

/* Appends one audience member as an object: {"customer_id","segment",
 * "intent", then in REC_JSON_EXPORT "source", then "items"} (id[0..len)
 * borrowed; rec_json_items writes the items). */
void rec_json_member(strbuf *sb, const model *m, const char *id, size_t len, enum segment seg,
		     float intent, const rec_result *r, enum rec_json_shape shape, bool because);

#endif
