/*
 * model_writer: builds a model file record by record, and the whole model
 * of a training run (model_write). See model_writer.h and model_format.h.
 */
#include "model_writer.h"

#include "precompute.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "content.h"
#include "idmap.h"
#include "progress.h"
#include "rfm.h"
#include "store_internal.h"
#include "timefmt.h"
#include "tune.h"
#include "util.h"

/* Puts per write transaction while building a model: keeps the dirty page
 * list of one transaction bounded on catalogs of millions of customers. */
#define WRITER_BATCH 50000

struct model_writer {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, items, item_index, neighbors, customers;
	char *dir, *tmp_path, *final_path;
	unsigned puts; /* in the current transaction */
	uint64_t mapsize;
};

static int writer_begin(model_writer *w, strbuf *err)
{
	int rc = mdb_txn_begin(w->env, NULL, 0, &w->txn);
	if (rc)
		return store_lmdb_fail(err, "model: begin write", rc);
	w->puts = 0;
	return 0;
}
/* Commits every WRITER_BATCH puts. */
static int writer_tick(model_writer *w, strbuf *err)
{
	if (++w->puts < WRITER_BATCH)
		return 0;
	int rc = store_txn_commit(&w->txn);
	if (rc)
		return store_lmdb_fail(err, "model: commit", rc);
	return writer_begin(w, err);
}

static int writer_put(model_writer *w, MDB_dbi dbi, const void *k, size_t klen, const void *v,
		      size_t vlen, unsigned flags, strbuf *err)
{
	MDB_val key = { klen, (void *)k }, val = { vlen, (void *)v };
	int rc = mdb_put(w->txn, dbi, &key, &val, flags);
	if (rc)
		return store_lmdb_fail(err, "model: write", rc);
	return writer_tick(w, err);
}

/* Opens (or reopens, after model_writer_pause) the temporary file and its
 * tables, in a write transaction. */
static int writer_open_file(model_writer *w, strbuf *err)
{
	if (store_env_open(w->tmp_path, MDB_NOSYNC | MDB_NOLOCK, 8, w->mapsize, 0, "the new model",
			   &w->env, err) != 0)
		return STORE_ERROR;
	if (writer_begin(w, err) != 0)
		return STORE_ERROR;
	struct {
		const char *name;
		MDB_dbi *dbi;
	} dbs[] = {
		{ "meta", &w->meta },
		{ "items", &w->items },
		{ "item_index", &w->item_index },
		{ "neighbors", &w->neighbors },
		{ "customers", &w->customers },
	};
	for (size_t i = 0; i < ARRAY_SIZE(dbs); i++) {
		int rc = mdb_dbi_open(w->txn, dbs[i].name, MDB_CREATE, dbs[i].dbi);
		if (rc)
			return store_lmdb_fail(err, "model: create table", rc);
	}
	return 0;
}

int model_writer_open(const char *dir, uint64_t size_hint, model_writer **out, strbuf *err)
{
	model_writer *w = xcalloc(1, sizeof(*w));

	if (store_make_dirs(dir, err) != 0)
		goto fail;
	w->dir = xstrdup(dir);
	strbuf p = STRBUF_INIT;
	sb_addf(&p, "%s/%s.tmp", dir, MODEL_FILE);
	w->tmp_path = sb_detach(&p, NULL);
	sb_addf(&p, "%s/%s", dir, MODEL_FILE);
	w->final_path = sb_detach(&p, NULL);
	unlink(w->tmp_path); /* left over from an interrupted run */

	/* B-tree overhead and page slack: twice the payload plus 64 MiB. The
	 * map is virtual; the file only grows as pages are written. */
	uint64_t mapsize = size_hint * 2 + (64ull << 20);
	w->mapsize = (mapsize + 4095) & ~4095ull;
	if (writer_open_file(w, err) != 0)
		goto fail;
	*out = w;
	return 0;
fail:
	model_writer_abort(w);
	return STORE_ERROR;
}

int model_writer_put_meta(model_writer *w, const char *json, strbuf *err)
{
	return writer_put(w, w->meta, "meta", 4, json, strlen(json) + 1, 0, err);
}

/* Best first: higher score, then lower index. */
static int pair_cmp(const void *a, const void *b)
{
	const neighbor *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->item < y->item ? -1 : x->item > y->item;
}

/* Writes a string table under `key`: count, offsets[count+1], bytes. */
static int put_string_table(model_writer *w, const char *key, const string_table *t,
			    strbuf *err)
{
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < t->count; i++)
		bytes += t->strs[i] ? t->lens[i] : 0;
	if (bytes > UINT32_MAX) {
		sb_addf(err, "model: the %s table takes more than 4 GiB", key);
		return STORE_ERROR;
	}
	size_t size = offtab_head(t->count) + bytes;
	unsigned char *blob = xmalloc(size);
	offtab_writer ow;
	offtab_put_begin(&ow, blob, t->count, 1);
	for (uint32_t i = 0; i < t->count; i++)
		offtab_put(&ow, t->strs[i], t->strs[i] ? (uint32_t)t->lens[i] : 0);
	offtab_put_end(&ow);
	int rc = writer_put(w, w->items, key, strlen(key), blob, size, 0, err);
	free(blob);
	return rc;
}

int model_writer_put_items(model_writer *w, const string_table *ids, const float *popularity,
			   const float *recent, strbuf *err)
{
	uint32_t count = ids->count;
	int rc = put_string_table(w, "ids", ids, err);
	if (rc)
		return rc;
	if ((rc = writer_put(w, w->items, "popularity", 10, popularity,
			     (size_t)count * sizeof(float), 0, err)))
		return rc;

	/* Popular list: every item, most recently popular first. */
	neighbor *pop = xmallocarray(count ? count : 1, sizeof(*pop));
	for (uint32_t i = 0; i < count; i++)
		pop[i] = (neighbor){ i, recent[i] };
	qsort(pop, count, sizeof(*pop), pair_cmp);
	rc = writer_put(w, w->items, "popular", 7, pop, (size_t)count * sizeof(*pop), 0, err);
	free(pop);
	if (rc)
		return rc;

	for (uint32_t i = 0; i < count; i++)
		if ((rc = writer_put(w, w->item_index, ids->strs[i], ids->lens[i], &i, sizeof(i), 0, err)))
			return rc;
	return 0;
}

int model_writer_put_catalog(model_writer *w, const string_table *titles,
			     const string_table *categories, const uint32_t *category,
			     const float *price, strbuf *err)
{
	int rc = put_string_table(w, "titles", titles, err);
	if (!rc)
		rc = put_string_table(w, "categories", categories, err);
	if (!rc)
		rc = writer_put(w, w->items, "category", 8, category,
				(size_t)titles->count * sizeof(uint32_t), 0, err);
	if (!rc)
		rc = writer_put(w, w->items, "price", 5, price, (size_t)titles->count * sizeof(float),
				0, err);
	return rc;
}

int model_writer_put_item_flags(model_writer *w, const uint8_t *flags,
				const string_table *image_urls, const string_table *urls, strbuf *err)
{
	assert(image_urls->count == urls->count);
	int rc = writer_put(w, w->items, "flags", 5, flags, urls->count, 0, err);
	if (!rc)
		rc = put_string_table(w, "image_urls", image_urls, err);
	if (!rc)
		rc = put_string_table(w, "urls", urls, err);
	return rc;
}

int model_writer_put_first_seen(model_writer *w, const int32_t *days, uint32_t count,
				strbuf *err)
{
	return writer_put(w, w->items, "first_seen", 10, days, (size_t)count * sizeof(*days), 0,
			  err);
}

/* Whether item i is left out of the neighbour table. */
static inline bool dropped(const uint8_t *flags, uint32_t i)
{
	return flags && (flags[i] & MODEL_ITEM_NOT_RECOMMENDABLE);
}

/* Item i's pairs that are kept: `out` gets them (room for counts[i]);
 * returns how many. */
static uint32_t kept_pairs(const neighbor *list, uint32_t count, const uint8_t *flags,
			   neighbor *out)
{
	uint32_t n = 0;
	for (uint32_t j = 0; j < count; j++)
		if (!dropped(flags, list[j].item))
			out[n++] = list[j];
	return n;
}

int model_writer_put_neighbors(model_writer *w, const neighbor *lists, uint32_t stride,
			       const uint32_t *counts, uint32_t n_items, strbuf *err)
{
	return model_writer_put_neighbors_except(w, lists, stride, counts, n_items, NULL, err);
}

int model_writer_put_neighbors_except(model_writer *w, const neighbor *lists, uint32_t stride,
				      const uint32_t *counts, uint32_t n_items,
				      const uint8_t *flags, strbuf *err)
{
	/* One value: u32 n_items, u32 offsets[n_items + 1] (in pairs), pairs.
	 * A request then finds a list by arithmetic, not a B-tree search. */
	uint64_t pairs = 0;
	neighbor *scratch = xmallocarray(stride ? stride : 1, sizeof(*scratch));
	for (uint32_t i = 0; i < n_items; i++)
		pairs += dropped(flags, i) ? 0
			 : flags ? kept_pairs(lists + (size_t)i * stride, counts[i], flags, scratch)
				 : counts[i];
	if (pairs > UINT32_MAX) {
		free(scratch);
		sb_adds(err, "model: more than 4 billion neighbour pairs");
		return STORE_ERROR;
	}
	MDB_val key = { 3, "all" },
		val = { offtab_head(n_items) + (size_t)pairs * sizeof(neighbor), NULL };
	int rc = mdb_put(w->txn, w->neighbors, &key, &val, MDB_RESERVE);
	if (rc) {
		free(scratch);
		return store_lmdb_fail(err, "model: write neighbours", rc);
	}
	offtab_writer ow;
	offtab_put_begin(&ow, val.mv_data, n_items, sizeof(neighbor));
	for (uint32_t i = 0; i < n_items; i++) {
		const neighbor *list = lists + (size_t)i * stride;
		assert(counts[i] <= stride);
		if (dropped(flags, i))
			offtab_put(&ow, list, 0);
		else if (flags)
			offtab_put(&ow, scratch, kept_pairs(list, counts[i], flags, scratch));
		else
			offtab_put(&ow, list, counts[i]);
	}
	offtab_put_end(&ow);
	free(scratch);
	return writer_tick(w, err);
}

/* A pair table: n entries, entry i pairs[off[i] .. off[i+1]) (u64
 * offsets) or, with a stride, lists[i*stride .. + counts[i]). */
static int put_pair_table(model_writer *w, MDB_dbi dbi, const char *key, uint32_t n,
			  const neighbor *pairs, const uint64_t *off, uint32_t stride,
			  const uint32_t *counts, strbuf *err)
{
	uint64_t total = 0;
	for (uint32_t i = 0; i < n; i++)
		total += off ? off[i + 1] - off[i] : counts[i];
	if (total > UINT32_MAX) {
		sb_addf(err, "model: more than 4 billion pairs in %s", key);
		return STORE_ERROR;
	}
	MDB_val k = { strlen(key), (void *)key },
		val = { offtab_head(n) + (size_t)total * sizeof(neighbor), NULL };
	int rc = mdb_put(w->txn, dbi, &k, &val, MDB_RESERVE);
	if (rc)
		return store_lmdb_fail(err, "model: write content tables", rc);
	offtab_writer ow;
	offtab_put_begin(&ow, val.mv_data, n, sizeof(neighbor));
	for (uint32_t i = 0; i < n; i++) {
		if (off)
			offtab_put(&ow, pairs + off[i], (uint32_t)(off[i + 1] - off[i]));
		else
			offtab_put(&ow, pairs + (size_t)i * stride, counts[i]);
	}
	offtab_put_end(&ow);
	return writer_tick(w, err);
}

int model_writer_put_content(model_writer *w, const content_result *c, strbuf *err)
{
	const char **strs = xmallocarray(c->n_terms ? c->n_terms : 1, sizeof(*strs));
	size_t *lens = xmallocarray(c->n_terms ? c->n_terms : 1, sizeof(*lens));
	for (uint32_t t = 0; t < c->n_terms; t++) {
		strs[t] = c->terms + c->term_off[t];
		lens[t] = c->term_off[t + 1] - c->term_off[t];
	}
	string_table terms = { strs, lens, c->n_terms };
	int rc = put_string_table(w, "content_terms", &terms, err);
	free(strs);
	free(lens);
	if (!rc)
		rc = writer_put(w, w->items, "content_idf", 11, c->idf,
				(size_t)c->n_terms * sizeof(float), 0, err);
	if (!rc)
		rc = writer_put(w, w->items, "content_bands", 13, c->band, c->n_items, 0, err);
	if (!rc)
		rc = put_pair_table(w, w->items, "content_postings", c->n_terms, c->post, c->post_off,
				    0, NULL, err);
	if (!rc)
		rc = put_pair_table(w, w->neighbors, "content", c->n_items, c->nbrs, NULL, c->k,
				    c->n_nbrs, err);
	return rc;
}

int model_writer_put_customer(model_writer *w, const char *id, size_t len,
			      const customer_summary *sum, const history_entry *hist,
			      const char *attrs, strbuf *err)
{
	assert(!sum->n_hist || hist);
	assert(!sum->attrs_len || attrs);
	size_t hbytes = (size_t)sum->n_hist * sizeof(*hist);
	size_t size = sizeof(*sum) + hbytes + sum->attrs_len;
	MDB_val key = { len, (void *)id }, val = { size, NULL };
	/* MDB_RESERVE: LMDB hands us the space, we write straight into it. */
	int rc = mdb_put(w->txn, w->customers, &key, &val, MDB_RESERVE);
	if (rc)
		return store_lmdb_fail(err, "model: write customer", rc);
	unsigned char *p = val.mv_data;
	memcpy(p, sum, sizeof(*sum));
	if (hbytes)
		memcpy(p + sizeof(*sum), hist, hbytes);
	if (sum->attrs_len)
		memcpy(p + sizeof(*sum) + hbytes, attrs, sum->attrs_len);
	return writer_tick(w, err);
}

int model_writer_put_raw(model_writer *w, const char *table, const void *key, size_t klen,
			 const void *val, size_t vlen, strbuf *err)
{
	MDB_dbi dbi;
	if (strcmp(table, "meta") == 0)
		dbi = w->meta;
	else if (strcmp(table, "items") == 0)
		dbi = w->items;
	else if (strcmp(table, "item_index") == 0)
		dbi = w->item_index;
	else if (strcmp(table, "neighbors") == 0)
		dbi = w->neighbors;
	else if (strcmp(table, "customers") == 0)
		dbi = w->customers;
	else {
		sb_addf(err, "model: no table %s", table);
		return STORE_ERROR;
	}
	if (klen == 0 || klen > 511) {
		sb_adds(err, "model: key length out of range");
		return STORE_ERROR;
	}
	return writer_put(w, dbi, key, klen, val, vlen, 0, err);
}

int model_writer_pause(model_writer *w, const char **path, strbuf *err)
{
	int rc = store_txn_commit(&w->txn);
	if (rc)
		return store_lmdb_fail(err, "model: commit", rc);
	mdb_env_close(w->env);
	w->env = NULL;
	*path = w->tmp_path;
	return 0;
}

int model_writer_resume(model_writer *w, uint64_t more, strbuf *err)
{
	assert(!w->env);
	w->mapsize = (w->mapsize + more * 2 + 4095) & ~4095ull;
	return writer_open_file(w, err);
}

int model_writer_put_precomputed(model_writer *w, const precomp_header *h,
				 const uint8_t *counts, const uint8_t *complete,
				 const uint8_t *extended, const precomp_entry *entries,
				 strbuf *err)
{
	MDB_dbi dbi;
	int rc = mdb_dbi_open(w->txn, "precomputed", MDB_CREATE, &dbi);
	if (rc)
		return store_lmdb_fail(err, "model: create table", rc);
	size_t cbytes = ((size_t)h->n_lists + 3) & ~(size_t)3;
	size_t ebytes = (size_t)h->n_lists * h->stride * sizeof(precomp_entry);
	MDB_val key = { 3, "all" }, val = { sizeof(*h) + cbytes + ebytes, NULL };
	if ((rc = mdb_put(w->txn, dbi, &key, &val, MDB_RESERVE)) != 0)
		return store_lmdb_fail(err, "model: write", rc);
	unsigned char *p = val.mv_data;
	memcpy(p, h, sizeof(*h));
	memset(p + sizeof(*h), 0, cbytes);
	if (h->n_lists)
		memcpy(p + sizeof(*h), counts, h->n_lists);
	if (ebytes)
		memcpy(p + sizeof(*h) + cbytes, entries, ebytes);
	MDB_val ckey = { 8, "complete" }, cval = { ((size_t)h->n_lists + 7) / 8, (void *)complete };
	if (cval.mv_size && (rc = mdb_put(w->txn, dbi, &ckey, &cval, 0)) != 0)
		return store_lmdb_fail(err, "model: write", rc);
	MDB_val xkey = { 8, "extended" }, xval = { h->n_lists, (void *)extended };
	if (extended && xval.mv_size && (rc = mdb_put(w->txn, dbi, &xkey, &xval, 0)) != 0)
		return store_lmdb_fail(err, "model: write", rc);
	return writer_tick(w, err);
}

int model_writer_finish(model_writer *w, strbuf *err)
{
	int ret = STORE_ERROR;
	int rc = store_txn_commit(&w->txn);
	if (rc) {
		store_lmdb_fail(err, "model: commit", rc);
		goto out;
	}
	if ((rc = mdb_env_sync(w->env, 1)) != 0) {
		store_lmdb_fail(err, "model: sync", rc);
		goto out;
	}
	mdb_env_close(w->env);
	w->env = NULL;
	/* The old model's checksum goes first: until the new one is written,
	 * the new model is refused as unchecked, not as damaged. */
	strbuf sum = STRBUF_INIT;
	sb_addf(&sum, "%s/%s", w->dir, MODEL_SUM_FILE);
	if (unlink(sum.buf) != 0 && errno != ENOENT) {
		sb_addf(err, "model: cannot remove the old %s: %s", sum.buf, strerror(errno));
		sb_release(&sum);
		goto out;
	}
	sb_release(&sum);
	if (rename(w->tmp_path, w->final_path) != 0) {
		sb_addf(err, "model: cannot rename %s to %s: %s", w->tmp_path, w->final_path,
			strerror(errno));
		goto out;
	}
	free(w->tmp_path);
	w->tmp_path = NULL; /* renamed: nothing left to remove */
	/* Last: the checksum of the file in place, then the directory synced. */
	ret = model_sum_write(w->dir, w->final_path, err);
out:
	model_writer_abort(w);
	return ret;
}

void model_writer_abort(model_writer *w)
{
	if (!w)
		return;
	if (w->txn)
		mdb_txn_abort(w->txn);
	if (w->env)
		mdb_env_close(w->env);
	if (w->tmp_path)
		unlink(w->tmp_path);
	free(w->tmp_path);
	free(w->final_path);
	free(w->dir);
	free(w);
}

/* ---- the model of a training run ------------------------------------------ */

/* A float as the short decimal people wrote (0.2, not 0.200000003). */
static double tidy(float f)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%g", (double)f);
	return strtod(buf, NULL);
}

static json_t *cuts_json(const float c[4])
{
	return json_pack("[f,f,f,f]", tidy(c[0]), tidy(c[1]), tidy(c[2]), tidy(c[3]));
}

/* Items the data flags MODEL_ITEM_NOT_RECOMMENDABLE. */
static uint32_t not_recommendable(const dataset *ds, uint32_t n_items)
{
	uint32_t n = 0;
	for (uint32_t i = 0; ds->item_flags && i < n_items && i < ds->items_cap; i++)
		n += (ds->item_flags[i] & MODEL_ITEM_NOT_RECOMMENDABLE) != 0;
	return n;
}

/* What `train --events-from` fed (train_events.h). */
static json_t *live_json(const ingest_live *l)
{
	uint64_t skipped = 0;
	for (int k = 0; k < SKIP_REASONS; k++)
		skipped += l->skipped_by[k];
	json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "source", l->source, "events",
			      (json_int_t)(l->read + l->covered + l->no_consent), "added",
			      (json_int_t)l->added, "covered_by_exports", (json_int_t)l->covered,
			      "no_consent", (json_int_t)l->no_consent, "skipped", (json_int_t)skipped);
	if (o && l->last_id[0])
		json_object_set_new(o, "last_id", json_string(l->last_id));
	return o;
}

static char *meta_json(const train_options *o, const tune_result *tuning, const dataset *ds,
		       const train_result *r, const rfm_cuts *cuts, int64_t as_of, double created)
{
	char as_of_s[TIME_FMT_LEN], created_s[TIME_FMT_LEN], id[64];
	time_format(as_of, as_of_s);
	time_format((int64_t)created, created_s);
	/* "cosine-20261122T101500Z-1a2b3c": readable, sortable, unique enough
	 * for two runs in the same second. */
	char compact[TIME_FMT_LEN];
	size_t k = 0;
	for (const char *p = created_s; *p; p++)
		if (*p != '-' && *p != ':')
			compact[k++] = *p;
	compact[k] = '\0';
	char seed[64];
	snprintf(seed, sizeof(seed), "%.9f-%zu-%u", created, ds->n_rows, r->n_items);
	snprintf(id, sizeof(id), "%s-%s-%06llx", algo_name(o->algo), compact,
		 (unsigned long long)(idmap_hash(seed, strlen(seed)) & 0xffffff));

	json_t *params = json_pack("{s:i, s:f, s:f, s:{s:f, s:f, s:f}, s:s, s:i}", "neighbors",
				   (json_int_t)o->neighbors, "lambda", tidy(o->lambda), "half_life_days",
				   o->half_life_days, "event_weights", "view",
				   tidy(o->event_weight[EVENT_VIEW]), "cart",
				   tidy(o->event_weight[EVENT_CART]), "purchase",
				   tidy(o->event_weight[EVENT_PURCHASE]), "path", train_path_name(r->path),
				   "ease_items", (json_int_t)r->ease_items);
	json_t *rfm = json_pack("{s:o, s:o, s:o}", "recency_days", cuts_json(cuts->recency_days),
				"frequency", cuts_json(cuts->frequency), "monetary",
				cuts_json(cuts->monetary));
	json_t *root = json_pack(
		"{s:i, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"format_version", MODEL_FORMAT_VERSION, "byte_order", "little", "model_id", id,
		"algorithm", algo_name(o->algo), "as_of", as_of_s, "created", created_s,
		"parameters", params, "rfm", rfm, "neighbors", (json_int_t)r->k, "items",
		(json_int_t)r->n_items, "customers", (json_int_t)r->n_customers, "interactions",
		(json_int_t)r->nnz, "rows_read", (json_int_t)ds->records, "rows_skipped",
		(json_int_t)ds->skipped, "categories",
		(json_int_t)(ds->categories ? idmap_count(ds->categories) : 0));
	/* Where a replica of a fleet sharing an event log starts replaying
	 * (docs/event-log.md "Bootstrap"). */
	if (root && o->event_log_position)
		json_object_set_new(root, "event_log_position", json_string(o->event_log_position));
	if (root)
		json_object_set_new(root, "items_not_recommendable",
				    json_integer(not_recommendable(ds, r->n_items)));
	if (root && ds->live.source)
		json_object_set_new(root, "live_events", live_json(&ds->live));
	if (root && r->k_neg) {
		/* Negative weights in the lists: format 5 (model_format.h). */
		json_object_set_new(root, "format_version", json_integer(MODEL_FORMAT_VERSION_NEGATIVES));
		json_object_set_new(params, "negatives", json_integer(r->k_neg));
	}
	if (root && r->has_content) {
		/* The content tables: format 6 (model_format.h). */
		const content_settings *cs = &r->content.set;
		json_object_set_new(root, "format_version", json_integer(MODEL_FORMAT_VERSION_CONTENT));
		json_object_set_new(root, "content",
				    json_pack("{s:s, s:i, s:f, s:f, s:f, s:I, s:I, s:f}", "tokens",
					      content_tokens_name(cs->tokens), "neighbors",
					      (json_int_t)r->content.k, "title_weight",
					      (double)cs->title_weight, "category_weight",
					      (double)cs->category_weight, "price_weight",
					      (double)cs->price_weight, "terms",
					      (json_int_t)r->content.n_terms, "items_with_title",
					      (json_int_t)r->content.items_with_title, "secs",
					      r->content.secs));
	}
	if (root && tuning)
		json_object_set_new(root, "tuning", tune_result_json(tuning));
	char *s = root ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(root);
	return s;
}

/* A string table over an idmap's names. */
static string_table names_table(const idmap *m, const char ***strs, size_t **lens)
{
	uint32_t n = m ? idmap_count(m) : 0;
	*strs = xmallocarray(n ? n : 1, sizeof(**strs));
	*lens = xmallocarray(n ? n : 1, sizeof(**lens));
	for (uint32_t i = 0; i < n; i++)
		(*strs)[i] = idmap_name(m, i, &(*lens)[i]);
	return (string_table){ *strs, *lens, n };
}

static int write_items(model_writer *w, const dataset *ds, const train_result *r, strbuf *err)
{
	uint32_t ni = r->n_items;
	const char **ids, **cats;
	size_t *id_lens, *cat_lens;
	string_table idt = names_table(ds->items, &ids, &id_lens);
	string_table catt = names_table(ds->categories, &cats, &cat_lens);
	const char **titles = xcalloc(ni ? ni : 1, sizeof(*titles));
	size_t *title_lens = xcalloc(ni ? ni : 1, sizeof(*title_lens));
	uint32_t *category = xmallocarray(ni ? ni : 1, sizeof(*category));
	float *price = xmallocarray(ni ? ni : 1, sizeof(*price));
	uint8_t *flags = xcalloc(ni ? ni : 1, sizeof(*flags));
	const char **images = xcalloc(ni ? ni : 1, sizeof(*images));
	const char **urls = xcalloc(ni ? ni : 1, sizeof(*urls));
	size_t *image_lens = xcalloc(ni ? ni : 1, sizeof(*image_lens));
	size_t *url_lens = xcalloc(ni ? ni : 1, sizeof(*url_lens));
	for (uint32_t i = 0; i < ni; i++) {
		bool have = ds->item_title && i < ds->items_cap;
		titles[i] = have ? ds->item_title[i] : NULL;
		title_lens[i] = titles[i] ? strlen(titles[i]) : 0;
		category[i] = have ? ds->item_category[i] : UINT32_MAX;
		price[i] = have ? ds->item_price[i] : -1.0f;
		flags[i] = have ? ds->item_flags[i] : 0;
		images[i] = have ? ds->item_image_url[i] : NULL;
		image_lens[i] = images[i] ? strlen(images[i]) : 0;
		urls[i] = have ? ds->item_url[i] : NULL;
		url_lens[i] = urls[i] ? strlen(urls[i]) : 0;
	}
	string_table tt = { titles, title_lens, ni };
	string_table it = { images, image_lens, ni }, ut = { urls, url_lens, ni };
	int rc = model_writer_put_items(w, &idt, r->popularity, r->recent, err);
	if (!rc)
		rc = model_writer_put_catalog(w, &tt, &catt, category, price, err);
	if (!rc)
		rc = model_writer_put_item_flags(w, flags, &it, &ut, err);
	int32_t *first_seen = xmallocarray(ni ? ni : 1, sizeof(*first_seen));
	dataset_first_seen(ds, ni, first_seen);
	if (!rc)
		rc = model_writer_put_first_seen(w, first_seen, ni, err);
	free(first_seen);
	/* Not recommendable: no neighbours, and in no item's list, so such an
	 * item is neither recommended nor a reason for a recommendation. */
	if (!rc)
		rc = model_writer_put_neighbors_except(w, r->nbrs, r->k, r->n_nbrs, ni, flags, err);
	if (!rc && r->has_content)
		rc = model_writer_put_content(w, &r->content, err);
	free(flags);
	free(images);
	free(urls);
	free(image_lens);
	free(url_lens);
	free(ids);
	free(id_lens);
	free(cats);
	free(cat_lens);
	free(titles);
	free(title_lens);
	free(category);
	free(price);
	return rc;
}

int model_write(const char *dir, const train_options *o, const struct tune_result *tuning,
		const dataset *ds, const train_result *r, int64_t as_of, strbuf *err)
{
	model_writer *w = NULL;
	uint32_t ni = r->n_items, nc = r->n_customers;
	rfm_figures *figs = xmallocarray(nc ? nc : 1, sizeof(*figs));
	rfm_cuts cuts;
	rfm_compute(ds, figs);
	rfm_cut_points(figs, nc, as_of, &cuts);
	char *meta = meta_json(o, tuning, ds, r, &cuts, as_of, util_now());
	int rc = STORE_ERROR;
	if (!meta) {
		sb_adds(err, "cannot build the meta record");
		goto out;
	}
	uint64_t hint = (uint64_t)ni * (r->k * sizeof(neighbor) + 128) +
			(uint64_t)nc * (sizeof(customer_summary) + 96) +
			r->hist_off[nc] * sizeof(history_entry);
	if (r->has_content)
		hint += (uint64_t)ni * (r->content.k * sizeof(neighbor) + 8) +
			r->content.post_off[r->content.n_terms] * sizeof(neighbor) +
			r->content.term_off[r->content.n_terms] + (uint64_t)r->content.n_terms * 12;
	for (uint32_t c = 0; ds->customer_attrs && c < nc && c < ds->customers_cap; c++)
		hint += ds->customer_attrs[c] ? strlen(ds->customer_attrs[c]) : 0;
	for (uint32_t i = 0; ds->item_url && i < ni && i < ds->items_cap; i++)
		hint += (ds->item_url[i] ? strlen(ds->item_url[i]) : 0) +
			(ds->item_image_url[i] ? strlen(ds->item_image_url[i]) : 0);
	if (model_writer_open(dir, hint, &w, err) != 0)
		goto out;
	rc = model_writer_put_meta(w, meta, err);
	if (!rc)
		rc = write_items(w, ds, r, err); /* the neighbours too */
	progress prog;
	progress_begin(&prog, "write", "customers", nc);
	for (uint32_t c = 0; c < nc && !rc; c++) {
		size_t len;
		const char *id = idmap_name(ds->customers, c, &len);
		bool have = ds->customer_attrs && c < ds->customers_cap;
		const char *attrs = have ? ds->customer_attrs[c] : NULL;
		customer_summary sum = {
			.n_hist = (uint32_t)(r->hist_off[c + 1] - r->hist_off[c]),
			.attrs_len = attrs ? (uint32_t)strlen(attrs) : 0,
			.first_purchase = figs[c].first_purchase,
			.last_purchase = figs[c].last_purchase,
			.frequency = figs[c].frequency,
			.monetary = figs[c].monetary,
			.birthday = have ? ds->customer_birthday[c] : 0,
			.precomputed = o->precompute ? c + 1 : 0,
		};
		rc = model_writer_put_customer(w, id, len, &sum, r->hist + r->hist_off[c], attrs, err);
		progress_update(&prog, c);
	}
	progress_end(&prog);
	if (!rc && o->precompute)
		rc = precompute_write(w, o->precompute, o->threads, ds->customers, nc, err);
	if (rc) {
		model_writer_abort(w);
		goto out;
	}
	rc = model_writer_finish(w, err);
out:
	free(meta);
	free(figs);
	return rc;
}
