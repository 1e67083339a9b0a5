/*
 * model_optional: the model file's optional tables, checked once when the
 * model opens and trusted afterwards, and their accessors: each item's
 * first_seen day (changed in place by the live item overrides), the
 * content tables of hybrid scoring (format 6) and the precomputed lists
 * of the request path's fast path. model.c opens the file and calls the
 * loaders (model_internal.h).
 */
#include "model.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "content.h"
#include "model_internal.h"
#include "store_internal.h"
#include "util.h"

/* ---- first_seen days -------------------------------------------------------- */

int model_load_first_seen(model *m, MDB_dbi items, const char *path, strbuf *err)
{
	uint32_t n = m->info.n_items;
	MDB_val first_seen;
	if (get_blob(m->blob_txn, items, "first_seen", &first_seen) == 0) {
		if (first_seen.mv_size != (size_t)n * sizeof(int32_t)) {
			sb_addf(err, "%s: the first_seen table does not match the item count", path);
			return STORE_CORRUPT;
		}
		m->first_seen = first_seen.mv_data;
	}
	m->first_day = xmallocarray(n ? n : 1, sizeof(*m->first_day));
	for (uint32_t i = 0; i < n; i++) {
		int32_t d = MODEL_DAY_UNKNOWN;
		if (m->first_seen)
			memcpy(&d, m->first_seen + (size_t)i * sizeof(d), sizeof(d));
		atomic_init(&m->first_day[i], d);
	}
	return 0;
}

int32_t model_item_first_seen(const model *m, uint32_t idx)
{
	assert(idx < m->info.n_items);
	return atomic_load_explicit(&m->first_day[idx], memory_order_relaxed);
}

void model_item_set_first_seen(model *m, uint32_t idx, int32_t day)
{
	assert(idx < m->info.n_items);
	atomic_store_explicit(&m->first_day[idx], day, memory_order_relaxed);
}

bool model_has_first_seen(const model *m)
{
	return m->first_seen != NULL;
}

/* ---- content tables ------------------------------------------------------------ */

int model_load_content(model *m, MDB_dbi items, const char *path, strbuf *err)
{
	if (m->info.format_version < MODEL_FORMAT_VERSION_CONTENT)
		return 0;
	json_t *root = json_loads(m->meta_json, 0, NULL);
	json_t *c = json_object_get(root, "content");
	const char *tok = json_string_value(json_object_get(c, "tokens"));
	json_t *k = json_object_get(c, "neighbors");
	content_settings set = { 0 };
	int kind = tok ? content_tokens_parse(tok) : -1;
	bool ok = kind >= 0 && json_is_integer(k) && json_integer_value(k) >= 0 &&
		  json_integer_value(k) <= CONTENT_MAX_NEIGHBORS;
	if (ok) {
		set.tokens = (enum content_tokens)kind;
		set.neighbors = (uint32_t)json_integer_value(k);
		set.title_weight = (float)json_number_value(json_object_get(c, "title_weight"));
		set.category_weight = (float)json_number_value(json_object_get(c, "category_weight"));
		set.price_weight = (float)json_number_value(json_object_get(c, "price_weight"));
	}
	json_decref(root);
	MDB_val terms, idf, post, bands, nbrs;
	if (!ok || get_blob(m->blob_txn, items, "content_terms", &terms) ||
	    get_blob(m->blob_txn, items, "content_idf", &idf) ||
	    get_blob(m->blob_txn, items, "content_postings", &post) ||
	    get_blob(m->blob_txn, items, "content_bands", &bands) ||
	    get_blob(m->blob_txn, m->neighbors, "content", &nbrs)) {
		sb_addf(err, "%s: content tables or their settings missing", path);
		return STORE_CORRUPT;
	}
	content_blobs b = { terms.mv_data, idf.mv_data, post.mv_data, nbrs.mv_data, bands.mv_data,
			    terms.mv_size, idf.mv_size, post.mv_size, nbrs.mv_size, bands.mv_size };
	if (content_index_load(&b, &set, m->info.n_items, &m->content, err) != 0) {
		sb_addf(err, " (%s)", path);
		return STORE_CORRUPT;
	}
	return 0;
}

const struct content_index *model_content(const model *m)
{
	return m->content;
}

/* ---- precomputed lists ------------------------------------------------------ */

int model_load_precomputed(model *m, const char *path, strbuf *err)
{
	MDB_val v;
	if (!m->has_precomputed || get_blob(m->blob_txn, m->precomputed, "all", &v) != 0)
		return 0; /* an older model, or one trained with --precompute 0 */
	precomp_header h;
	const unsigned char *p = v.mv_data;
	if (v.mv_size < sizeof(h))
		goto bad;
	memcpy(&h, p, sizeof(h));
	uint64_t cbytes = ((uint64_t)h.n_lists + 3) & ~3ull;
	if (h.entry_size != sizeof(precomp_entry) || h.stride == 0 || h.stride > 100 ||
	    h.n_lists > m->info.n_customers ||
	    v.mv_size != sizeof(h) + cbytes + (uint64_t)h.n_lists * h.stride * sizeof(precomp_entry))
		goto bad;
	const unsigned char *counts = p + sizeof(h), *entries = counts + cbytes;
	/* Optional, as "complete" below: the lists past a content item. */
	MDB_val xv;
	const unsigned char *ext = NULL;
	if (get_blob(m->blob_txn, m->precomputed, "extended", &xv) == 0) {
		if (xv.mv_size != h.n_lists)
			goto bad;
		ext = xv.mv_data;
	}
	uint32_t n = m->info.n_items;
	for (uint32_t i = 0; i < h.n_lists; i++) {
		uint32_t len = ext ? ext[i] & PRECOMP_EXT_LENGTH : counts[i];
		if (counts[i] > len || len > h.stride ||
		    (ext && (ext[i] & PRECOMP_EXT_COMPLETE) && len >= h.stride))
			goto bad; /* a full list cannot say it holds everything */
		float prev = INFINITY;
		for (uint32_t k = 0; k < len; k++) {
			precomp_entry e;
			memcpy(&e, entries + ((size_t)i * h.stride + k) * sizeof(e), sizeof(e));
			/* The personal prefix has positive scores, and the entry
			 * after it is the content one that ended it. */
			bool content = signbit(e.score);
			float score = fabsf(e.score);
			if (e.item >= n || !isfinite(score) || !(score > 0.0f) || score > prev ||
			    (k < counts[i] && content) || (k == counts[i] && !content))
				goto bad;
			prev = score;
			for (int b = 0; b < PRECOMP_BECAUSE; b++)
				if (e.because[b] != UINT32_MAX && e.because[b] >= n)
					goto bad;
		}
	}
	/* Optional: lists written before it are all taken as not complete. */
	MDB_val cv;
	if (get_blob(m->blob_txn, m->precomputed, "complete", &cv) == 0) {
		if (cv.mv_size != ((uint64_t)h.n_lists + 7) / 8)
			goto bad;
		const unsigned char *bits = cv.mv_data;
		for (uint32_t i = 0; i < h.n_lists; i++)
			if ((bits[i / 8] >> (i % 8) & 1) && counts[i] >= h.stride)
				goto bad; /* a full list cannot say it holds everything */
		m->pc_complete = bits;
	}
	m->pc_extended = ext;
	m->pc = h;
	m->pc_counts = counts;
	m->pc_entries = entries;
	return 0;
bad:
	sb_addf(err, "%s: the precomputed lists are corrupt or do not match the model; "
		     "retrain", path);
	return STORE_CORRUPT;
}

bool model_unsourced_overrides(const model *m)
{
	return atomic_load_explicit(&m->unsourced_override, memory_order_relaxed);
}

const precomp_header *model_precomputed_header(const model *m)
{
	return m->pc_entries ? &m->pc : NULL;
}

void model_precomputed_prefetch(const model *m, const model_customer *cust)
{
	uint32_t i = cust->sum.precomputed - 1;
	if (i < m->pc.n_lists && m->pc_entries)
		__builtin_prefetch(m->pc_entries + (size_t)i * m->pc.stride * sizeof(precomp_entry));
}

bool model_precomputed(const model *m, const model_customer *cust, model_plist *out)
{
	uint32_t i = cust->sum.precomputed - 1; /* 0 wraps: no list */
	if (i >= m->pc.n_lists)
		return false;
	out->entries = m->pc_entries + (size_t)i * m->pc.stride * sizeof(precomp_entry);
	if (m->pc_extended) {
		out->n = m->pc_extended[i] & PRECOMP_EXT_LENGTH;
		out->complete = m->pc_extended[i] & PRECOMP_EXT_COMPLETE;
	} else {
		out->n = m->pc_counts[i];
		out->complete = m->pc_complete && (m->pc_complete[i / 8] >> (i % 8) & 1);
	}
	return true;
}
