/*
 * model_writer: writes a model directory (model_format.h has the records).
 * Used by `train` and `eval` (model_write, the whole model from a training
 * run) and by tests and fuzzing (the record writers, to build models by
 * hand). Only a finished writer leaves a model.mdb behind: it is built as
 * model.mdb.tmp, synced and renamed into place.
 *
 * Errors: 0, or STORE_ERROR with a message in *err.
 */
#ifndef SHOPKEEPER_MODEL_WRITER_H
#define SHOPKEEPER_MODEL_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "model_format.h"
#include "store.h"
#include "strbuf.h"
#include "train.h" /* train_options, train_result, dataset */

struct tune_result;

/* Writes the model of a training run into DIR (created if needed; a model
 * there is replaced): the meta record (built here from o, the tuning record
 * `tuning` (tune.h; NULL: none), the data counts, the RFM cut points at
 * as_of and the current time), items, catalog, neighbours and every
 * customer, with progress on a terminal. A run that kept negative weights
 * (r->k_neg) is written as MODEL_FORMAT_VERSION_NEGATIVES. All arguments
 * are borrowed. Returns 0 or STORE_ERROR with a message in *err. */
int model_write(const char *dir, const train_options *o, const struct tune_result *tuning,
		const dataset *ds, const train_result *r, int64_t as_of, strbuf *err);

/* ---- the record writers -------------------------------------------------- */

/* A string table as stored: count, offsets, bytes. Borrowed. */
typedef struct string_table {
	const char *const *strs; /* NULL entries are written as "" */
	const size_t *lens;
	uint32_t count;
} string_table;

typedef struct model_writer model_writer;

/* Creates DIR (if needed) and starts DIR/model.mdb.tmp. `size_hint` is the
 * expected payload in bytes (the map is sized from it). Returns 0, or
 * STORE_ERROR with a message in *err. */
int model_writer_open(const char *dir, uint64_t size_hint, model_writer **out, strbuf *err);
/* The records; each returns 0 or STORE_ERROR with a message in *err. */
int model_writer_put_meta(model_writer *w, const char *json, strbuf *err);
/* Item tables: ids, popularity (customers per item) and `recent` (the
 * popularity the popular list is ordered by), count entries each. */
int model_writer_put_items(model_writer *w, const string_table *ids, const float *popularity,
			   const float *recent, strbuf *err);
/* Catalog tables: titles (count entries), category names, each item's
 * category index (UINT32_MAX: none) and price (< 0: unknown). */
int model_writer_put_catalog(model_writer *w, const string_table *titles,
			     const string_table *categories, const uint32_t *category,
			     const float *price, strbuf *err);
/* The optional "first_seen" table: count days (days since 1970-01-01,
 * UTC; MODEL_DAY_UNKNOWN: unknown), one per item. */
int model_writer_put_first_seen(model_writer *w, const int32_t *days, uint32_t count,
				strbuf *err);
/* Version 4's item tables: each item's MODEL_ITEM_* flags, image URL and
 * page URL (image_urls->count == urls->count entries each). */
int model_writer_put_item_flags(model_writer *w, const uint8_t *flags,
				const string_table *image_urls, const string_table *urls, strbuf *err);
/* Every item's neighbour list: item i's are lists[i*stride ..
 * i*stride + counts[i]); counts[i] <= stride. */
int model_writer_put_neighbors(model_writer *w, const neighbor *lists, uint32_t stride,
			       const uint32_t *counts, uint32_t n_items, strbuf *err);
/* The same, leaving out items flagged MODEL_ITEM_NOT_RECOMMENDABLE in
 * flags[0..n_items) (NULL: none): their own lists are written empty and
 * they are dropped from every other list. */
/* The content tables of content_train's result (model_format.h, format 6):
 * vocabulary, idf, postings, price bands, every item's content
 * neighbours. Returns 0 or STORE_ERROR with a message in *err. */
struct content_result;
int model_writer_put_content(model_writer *w, const struct content_result *c, strbuf *err);
int model_writer_put_neighbors_except(model_writer *w, const neighbor *lists, uint32_t stride,
				      const uint32_t *counts, uint32_t n_items,
				      const uint8_t *flags, strbuf *err);
/* sum->n_hist and sum->attrs_len give the lengths of hist and attrs (attrs
 * may be NULL when attrs_len is 0). */
int model_writer_put_customer(model_writer *w, const char *id, size_t len,
			      const customer_summary *sum, const history_entry *hist,
			      const char *attrs, strbuf *err);
/* Writes one record as given, bypassing the typed writers above: for tests
 * and fuzzing of the readers' checks (test only). `table` is "meta",
 * "items", "item_index", "neighbors" or "customers". Returns 0 or
 * STORE_ERROR. */
int model_writer_put_raw(model_writer *w, const char *table, const void *key, size_t klen,
			 const void *val, size_t vlen, strbuf *err);

/* Precomputed lists (precompute.h), scored on the model as written so far:
 * model_writer_pause commits what was written and closes the file, whose
 * path (*path, valid until the writer is freed) can then be opened with
 * model_open_file; model_writer_resume reopens it for `more` bytes more
 * (closing that model first). Each returns 0 or STORE_ERROR with a message
 * in *err; after a failure only model_writer_abort is left. */
int model_writer_pause(model_writer *w, const char **path, strbuf *err);
int model_writer_resume(model_writer *w, uint64_t more, strbuf *err);
/* The "precomputed" records (model_format.h): "all" (h, then
 * counts[h->n_lists], then entries[h->n_lists * h->stride]), "complete"
 * ((h->n_lists + 7) / 8 bytes of bits) and, unless `extended` is NULL,
 * "extended" (h->n_lists bytes). Borrowed. */
int model_writer_put_precomputed(model_writer *w, const precomp_header *h,
				 const uint8_t *counts, const uint8_t *complete,
				 const uint8_t *extended, const precomp_entry *entries,
				 strbuf *err);

/* Commits, syncs and renames the file into place; the writer is freed.
 * Returns 0 or STORE_ERROR with a message in *err. */
int model_writer_finish(model_writer *w, strbuf *err);
/* Abandons the model: the temporary file is removed, the writer freed.
 * model_writer_abort(NULL) does nothing. */
void model_writer_abort(model_writer *w);

#endif
