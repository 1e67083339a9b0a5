/*
 * model: the model reader: opens and checks a model file, then answers
 * lookups from the map. See model.h and model_format.h. The optional
 * tables (content, precomputed lists, first_seen days) are loaded and
 * answered in model_optional.c; model_internal.h is what both share.
 */
#include "model.h"
#include "content.h"
#include "eventlog.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_internal.h"
#include "store_internal.h"
#include "timefmt.h"
#include "util.h"

static int parse_meta(model *m, const char *path, strbuf *err)
{
	json_error_t jerr;
	json_t *root = json_loads(m->meta_json, 0, &jerr);
	int ret = STORE_CORRUPT;
	if (!root || !json_is_object(root)) {
		sb_addf(err, "%s: meta record is not a JSON object", path);
		goto out;
	}
	json_t *v = json_object_get(root, "format_version");
	if (!json_is_integer(v)) {
		sb_addf(err, "%s: meta record has no format_version", path);
		goto out;
	}
	m->info.format_version = (uint32_t)json_integer_value(v);
	if (m->info.format_version < MODEL_FORMAT_OLDEST ||
	    m->info.format_version > MODEL_FORMAT_NEWEST) {
		sb_addf(err, "%s: model format version %u, this build reads versions %u to %u; "
			     "retrain with this shopkeeper", path, m->info.format_version,
			MODEL_FORMAT_OLDEST, MODEL_FORMAT_NEWEST);
		goto out;
	}
	const char *order = json_string_value(json_object_get(root, "byte_order"));
	if (!order || strcmp(order, "little") != 0) {
		sb_addf(err, "%s: model byte order is not little-endian", path);
		goto out;
	}
	const char *id = json_string_value(json_object_get(root, "model_id"));
	const char *algo = json_string_value(json_object_get(root, "algorithm"));
	const char *as_of = json_string_value(json_object_get(root, "as_of"));
	json_t *items = json_object_get(root, "items");
	json_t *customers = json_object_get(root, "customers");
	json_t *k = json_object_get(root, "neighbors");
	if (!id || !algo || !as_of || !json_is_integer(items) || !json_is_integer(customers) ||
	    !json_is_integer(k) || json_integer_value(items) < 0 ||
	    json_integer_value(items) > UINT32_MAX || json_integer_value(customers) < 0 ||
	    json_integer_value(customers) > UINT32_MAX || json_integer_value(k) < 0 ||
	    json_integer_value(k) > UINT32_MAX) {
		sb_addf(err, "%s: meta record lacks model_id, algorithm, as_of or counts", path);
		goto out;
	}
	snprintf(m->info.model_id, sizeof(m->info.model_id), "%s", id);
	snprintf(m->info.algorithm, sizeof(m->info.algorithm), "%s", algo);
	if (time_parse(as_of, strlen(as_of), &m->info.as_of) != 0) {
		sb_addf(err, "%s: meta record has a bad as_of", path);
		goto out;
	}
	const char *created = json_string_value(json_object_get(root, "created"));
	if (!created || time_parse(created, strlen(created), &m->info.created) != 0) {
		sb_addf(err, "%s: meta record has a bad created time", path);
		goto out;
	}
	json_t *rfm = json_object_get(root, "rfm");
	struct {
		const char *name;
		float *cuts;
	} figs[] = { { "recency_days", m->info.rfm.recency_days },
		     { "frequency", m->info.rfm.frequency },
		     { "monetary", m->info.rfm.monetary } };
	for (size_t f = 0; f < ARRAY_SIZE(figs); f++) {
		json_t *arr = json_object_get(rfm, figs[f].name);
		if (!json_is_array(arr) || json_array_size(arr) != 4) {
			sb_addf(err, "%s: meta record lacks the RFM cut points", path);
			goto out;
		}
		for (size_t q = 0; q < 4; q++)
			figs[f].cuts[q] = (float)json_number_value(json_array_get(arr, q));
	}
	json_t *params = json_object_get(root, "parameters");
	json_t *weights = json_object_get(params, "event_weights");
	json_t *hl = json_object_get(params, "half_life_days");
	const char *wnames[3] = { "view", "cart", "purchase" };
	for (int e = 0; e < 3; e++) {
		json_t *wv = json_object_get(weights, wnames[e]);
		if (!json_is_number(wv) || json_number_value(wv) < 0) {
			sb_addf(err, "%s: meta record lacks the event weights", path);
			goto out;
		}
		m->info.event_weight[e] = (float)json_number_value(wv);
	}
	if (!json_is_number(hl) || json_number_value(hl) < 0) {
		sb_addf(err, "%s: meta record lacks the half-life", path);
		goto out;
	}
	m->info.half_life_days = json_number_value(hl);
	json_t *lp = json_object_get(root, "event_log_position");
	if (lp) {
		eventlog_id pos;
		const char *lps = json_string_value(lp);
		if (!lps || eventlog_id_parse(lps, strlen(lps), &pos) != 0) {
			sb_addf(err, "%s: meta record has a bad event_log_position", path);
			goto out;
		}
		m->info.has_log_position = true;
		m->info.log_position_ms = pos.ms;
		m->info.log_position_seq = pos.seq;
	}
	json_t *tuning = json_object_get(root, "tuning");
	if (json_is_object(tuning))
		m->info.tuning_json = m->tuning_json = json_dumps(tuning, JSON_COMPACT | JSON_SORT_KEYS);
	json_t *serving = json_object_get(tuning, "serving");
	json_t *nu = json_object_get(serving, "neighbors_used");
	json_t *cut = json_object_get(serving, "cutoff");
	m->info.serve_neighbors_used = json_is_integer(nu) && json_integer_value(nu) >= 1 &&
					       json_integer_value(nu) <= 100000
				       ? (uint32_t)json_integer_value(nu)
				       : 0;
	m->info.serve_cutoff = json_is_number(cut) && json_number_value(cut) >= 0 &&
				       json_number_value(cut) < 1
			       ? (float)json_number_value(cut)
			       : -1.0f;
	json_t *cw = json_object_get(serving, "content_weight");
	json_t *cc = json_object_get(serving, "content_count");
	m->info.serve_content_weight =
		json_is_number(cw) && json_number_value(cw) >= 0 && json_number_value(cw) < 1e6
			? (float)json_number_value(cw) : -1.0f;
	m->info.serve_content_count =
		json_is_number(cc) && json_number_value(cc) >= 0 && json_number_value(cc) < 1e9
			? (float)json_number_value(cc) : -1.0f;
	const char *hw = json_string_value(json_object_get(serving, "history_weight"));
	if (hw && strlen(hw) < sizeof(m->info.serve_history_weight))
		strcpy(m->info.serve_history_weight, hw);
	m->info.n_items = (uint32_t)json_integer_value(items);
	m->info.n_customers = (uint32_t)json_integer_value(customers);
	m->info.neighbors = (uint32_t)json_integer_value(k);
	m->info.meta_json = m->meta_json;
	ret = 0;
out:
	json_decref(root);
	return ret;
}

static const char *string_at(const offtab *t, uint32_t idx, size_t *len)
{
	uint32_t n;
	const char *s = (const char *)offtab_entry(t, idx, &n);
	*len = n;
	return s;
}

/* The item id index, in memory: requests look items up often (every live
 * event of a customer when scoring, baskets, exclusions, the similar
 * route), and a B-tree descent with string compares each time made a
 * customer with a long event list cost a hundred microseconds. Half full
 * at most, so probes stay short. */
static void index_items(model *m)
{
	uint64_t slots = 16;
	while (slots < 2 * (uint64_t)m->info.n_items)
		slots *= 2;
	m->item_slots = xcalloc(slots, sizeof(uint32_t));
	m->item_mask = slots - 1;
	for (uint32_t i = 0; i < m->info.n_items; i++) {
		size_t len;
		const char *id = string_at(&m->ids, i, &len);
		uint64_t h = model_id_hash(id, len) & m->item_mask;
		while (m->item_slots[h])
			h = (h + 1) & m->item_mask;
		m->item_slots[h] = i + 1;
	}
}

/* Orders category indexes by name (bytes, then length). */
static int name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	return c ? c : (an > bn) - (an < bn);
}

static int category_cmp(const void *x, const void *y, void *arg)
{
	const model *m = arg;
	size_t an, bn;
	const char *a = string_at(&m->categories, *(const uint32_t *)x, &an);
	const char *b = string_at(&m->categories, *(const uint32_t *)y, &bn);
	return name_cmp(a, an, b, bn);
}

/* Loads and checks the item tables against the counts in the meta record. */
static int load_items(model *m, MDB_dbi items, const char *path, strbuf *err)
{
	uint32_t n = m->info.n_items;
	MDB_val ids, titles, cats, category, price, pop, popular;
	if (get_blob(m->blob_txn, items, "ids", &ids) || get_blob(m->blob_txn, items, "titles", &titles) ||
	    get_blob(m->blob_txn, items, "categories", &cats) ||
	    get_blob(m->blob_txn, items, "category", &category) ||
	    get_blob(m->blob_txn, items, "price", &price) ||
	    get_blob(m->blob_txn, items, "popularity", &pop) ||
	    get_blob(m->blob_txn, items, "popular", &popular)) {
		sb_addf(err, "%s: item tables missing", path);
		return STORE_CORRUPT;
	}
	if (offtab_check(ids.mv_data, ids.mv_size, 1, n, 0, &m->ids) ||
	    offtab_check(titles.mv_data, titles.mv_size, 1, n, 0, &m->titles) ||
	    offtab_check(cats.mv_data, cats.mv_size, 1, OFFTAB_ANY_COUNT, 0, &m->categories)) {
		sb_addf(err, "%s: item tables are corrupt or do not match the meta record", path);
		return STORE_CORRUPT;
	}
	if (category.mv_size != (size_t)n * 4 || price.mv_size != (size_t)n * 4 ||
	    pop.mv_size != (size_t)n * sizeof(float) || popular.mv_size != (size_t)n * 8) {
		sb_addf(err, "%s: item tables do not match the item count", path);
		return STORE_CORRUPT;
	}
	for (uint32_t i = 0; i < n; i++) {
		neighbor nb = model_pair_at(popular.mv_data, i);
		uint32_t c;
		memcpy(&c, (const unsigned char *)category.mv_data + (size_t)i * 4, 4);
		if (nb.item >= n || (c != UINT32_MAX && c >= m->categories.n)) {
			sb_addf(err, "%s: item tables name items or categories that do not exist", path);
			return STORE_CORRUPT;
		}
	}
	/* Version 4's tables; a version 3 model has none of them. */
	MDB_val flags, image_urls, urls;
	int missing = !!get_blob(m->blob_txn, items, "flags", &flags) +
		      !!get_blob(m->blob_txn, items, "image_urls", &image_urls) +
		      !!get_blob(m->blob_txn, items, "urls", &urls);
	if (m->info.format_version >= 4) {
		if (missing || flags.mv_size != n ||
		    offtab_check(image_urls.mv_data, image_urls.mv_size, 1, n, 0, &m->image_urls) ||
		    offtab_check(urls.mv_data, urls.mv_size, 1, n, 0, &m->urls)) {
			sb_addf(err, "%s: item flags or URL tables are missing or do not match the "
				     "item count", path);
			return STORE_CORRUPT;
		}
		m->flags = flags.mv_data;
	}
	size_t words = ((size_t)n + 63) / 64 + 1;
	m->hidden = xcalloc(words, sizeof(*m->hidden));
	m->unsourced = xcalloc(words, sizeof(*m->unsourced));
	for (uint32_t i = 0; m->flags && i < n; i++)
		if (m->flags[i] & MODEL_ITEM_NOT_RECOMMENDABLE) {
			atomic_fetch_or(&m->hidden[i / 64], 1ull << (i % 64));
			atomic_fetch_or(&m->unsourced[i / 64], 1ull << (i % 64));
		}
	uint32_t n_cats = m->categories.n;
	m->category_order = xmallocarray(n_cats ? n_cats : 1, sizeof(uint32_t));
	for (uint32_t c = 0; c < n_cats; c++)
		m->category_order[c] = c;
	qsort_r(m->category_order, n_cats, sizeof(uint32_t), category_cmp, m);
	index_items(m);
	m->category = category.mv_data;
	m->price = price.mv_data;
	m->popularity = pop.mv_data;
	m->popular = popular.mv_data;
	return 0;
}

/* Loads and checks the neighbour table: offsets in order, lists no longer
 * than K, every neighbour an existing item. */
static int load_neighbors(model *m, const char *path, strbuf *err)
{
	MDB_val v;
	if (get_blob(m->blob_txn, m->neighbors, "all", &v) != 0) {
		sb_addf(err, "%s: neighbour table missing", path);
		return STORE_CORRUPT;
	}
	if (offtab_check(v.mv_data, v.mv_size, sizeof(neighbor), m->info.n_items,
			 m->info.neighbors, &m->nbrs) != 0) {
		sb_addf(err, "%s: neighbour table is corrupt or does not match the item count or K",
			path);
		return STORE_CORRUPT;
	}
	/* train keeps positive scores, and in format 5 may follow them with
	 * negative ones; scoring relies on the order of signs. */
	bool negatives = m->info.format_version >= MODEL_FORMAT_VERSION_NEGATIVES;
	uint32_t n = m->info.n_items;
	if (negatives)
		m->nbr_pos = xcalloc((size_t)n + 1, sizeof(*m->nbr_pos));
	uint32_t p;
	memcpy(&p, m->nbrs.off, 4); /* off[0] */
	for (uint32_t i = 0; i < n; i++) {
		uint32_t to;
		memcpy(&to, m->nbrs.off + 4 * ((size_t)i + 1), 4);
		bool neg_seen = false;
		for (; p < to; p++) {
			neighbor nb = model_pair_at(m->nbrs.payload, p);
			if (nb.item >= n) {
				sb_addf(err, "%s: a neighbour list names item %u of %u", path, nb.item, n);
				return STORE_CORRUPT;
			}
			neg_seen |= negatives && nb.score < 0.0f;
			if (!isfinite(nb.score) || !(neg_seen ? nb.score < 0.0f : nb.score > 0.0f)) {
				sb_addf(err, "%s: a neighbour score is not a %s number", path,
					negatives ? "non-zero" : "positive");
				return STORE_CORRUPT;
			}
			if (negatives && !neg_seen)
				m->nbr_pos[i]++;
		}
	}
	return 0;
}

static void clock_setup(model *m);

/* Opens file (DIR/model.mdb) read-only; with dir, after checking it against
 * its checksum; without, unchecked (model_open_file). */
static int open_model(const char *dir, const char *file, model **out, strbuf *err)
{
	model *m = xcalloc(1, sizeof(*m));
	strbuf path = STRBUF_INIT;
	int rc, ret = STORE_ERROR;
	MDB_txn *txn = NULL;
	bool checked = dir != NULL;

	if (!dir)
		dir = file; /* in messages */
	sb_adds(&path, file);
	struct stat st;
	/* The file the checksum is checked on, and then compared with the one
	 * LMDB opened: train may rename a new model into place meanwhile. */
	int fd = open(path.buf, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		strbuf tmp = STRBUF_INIT;
		sb_addf(&tmp, "%s.tmp", path.buf);
		if (access(tmp.buf, F_OK) == 0)
			sb_addf(err, "no model in %s: %s is half written (is train still running?)",
				dir, tmp.buf);
		else
			sb_addf(err, "no model in %s (%s: %s); create one with shopkeeper train "
				     "--out %s", dir, path.buf, strerror(errno), dir);
		sb_release(&tmp);
		ret = STORE_NOTFOUND;
		goto fail;
	}
	if (st.st_size == 0) {
		sb_addf(err, "model %s is empty (half written or damaged); retrain with shopkeeper "
			     "train --out %s", path.buf, dir);
		ret = STORE_CORRUPT;
		goto fail;
	}
	rc = store_env_open(path.buf, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 8, 0, 0, "model",
			    &m->env, err);
	if (rc) {
		ret = rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ? STORE_CORRUPT : STORE_ERROR;
		goto fail;
	}
	/* The map is read in place: a page past the end of a truncated file
	 * would be a SIGBUS at the first read, so the file must hold every
	 * page its header names. */
	MDB_envinfo ei;
	MDB_stat es;
	if (mdb_env_info(m->env, &ei) == 0 && mdb_env_stat(m->env, &es) == 0 &&
	    (uint64_t)st.st_size < ((uint64_t)ei.me_last_pgno + 1) * es.ms_psize) {
		sb_addf(err, "model %s is truncated (%lld bytes, its pages need %llu): half written "
			     "or damaged; retrain with shopkeeper train --out %s", path.buf,
			(long long)st.st_size,
			(unsigned long long)(((uint64_t)ei.me_last_pgno + 1) * es.ms_psize), dir);
		ret = STORE_CORRUPT;
		goto fail;
	}
	/* LMDB does not checksum its pages: a damaged one would abort the
	 * process inside mdb.c at the first request through it. So the whole
	 * file is checked before any page beyond the header is read.
	 *
	 * First its cached pages are dropped, so that the check reads it from
	 * the disk, and in large folios: the pages train left in the cache
	 * are the 4 KiB ones it wrote, and the map is then made of 4 KiB
	 * pages, where a request on a big model touches several far apart
	 * (the customer's slot, record and list). Read back, a kernel whose
	 * filesystem reads into large folios (ext4 on Linux 6.18 here) maps
	 * most of the file 2 MiB at a time: on the 958,000-customer model, 838
	 * of its 870 MiB, and the customer route went from 89,700 to 100,000
	 * req/s, CPU 10.8 -> 9.8 us a request (medians of 4 alternated pairs,
	 * the file written anew 4 KiB at a time before each run;
	 * bench/hot-path.md, round seven). The price: the open reads the disk
	 * (that model: 0.5 -> 2.6 s). Pages another process maps or has
	 * dirtied stay (the call skips them). */
	if (checked)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (checked && (ret = model_sum_check(dir, path.buf, fd, err)) != 0)
		goto fail;
	struct stat lst;
	int lfd;
	if (mdb_env_get_fd(m->env, &lfd) != 0 || fstat(lfd, &lst) != 0 || lst.st_ino != st.st_ino ||
	    lst.st_dev != st.st_dev) {
		sb_addf(err, "model %s was replaced while it was being opened; try again", path.buf);
		ret = STORE_ERROR;
		goto fail;
	}
	close(fd);
	fd = -1;
	ret = STORE_ERROR;

	/* Table handles opened in a read transaction become shared on commit. */
	if ((rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn)) != 0) {
		store_lmdb_fail(err, "model: begin", rc);
		goto fail;
	}
	MDB_dbi meta, items;
	if ((rc = mdb_dbi_open(txn, "meta", 0, &meta)) || (rc = mdb_dbi_open(txn, "items", 0, &items)) ||
	    (rc = mdb_dbi_open(txn, "item_index", 0, &m->item_index)) ||
	    (rc = mdb_dbi_open(txn, "neighbors", 0, &m->neighbors)) ||
	    (rc = mdb_dbi_open(txn, "customers", 0, &m->customers))) {
		sb_addf(err, "%s is not a shopkeeper model (missing table: %s)", path.buf,
			mdb_strerror(rc));
		ret = STORE_CORRUPT;
		goto fail;
	}
	rc = mdb_dbi_open(txn, "precomputed", 0, &m->precomputed);
	if (rc && rc != MDB_NOTFOUND) {
		store_lmdb_fail(err, "model: open table", rc);
		goto fail;
	}
	m->has_precomputed = rc == 0;
	rc = store_txn_commit(&txn);
	if (rc) {
		store_lmdb_fail(err, "model: commit", rc);
		goto fail;
	}

	if ((rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &m->blob_txn)) != 0) {
		store_lmdb_fail(err, "model: begin", rc);
		goto fail;
	}
	MDB_val v;
	if (get_blob(m->blob_txn, meta, "meta", &v) != 0 || v.mv_size == 0 ||
	    ((const char *)v.mv_data)[v.mv_size - 1] != '\0') {
		sb_addf(err, "%s: no meta record", path.buf);
		ret = STORE_CORRUPT;
		goto fail;
	}
	m->meta_json = xstrndup(v.mv_data, v.mv_size - 1);
	if ((ret = parse_meta(m, path.buf, err)) != 0)
		goto fail;
	if ((ret = load_items(m, items, path.buf, err)) != 0)
		goto fail;
	if ((ret = model_load_first_seen(m, items, path.buf, err)) != 0)
		goto fail;
	if ((ret = load_neighbors(m, path.buf, err)) != 0)
		goto fail;
	if ((ret = model_load_content(m, items, path.buf, err)) != 0)
		goto fail;
	if ((ret = model_load_precomputed(m, path.buf, err)) != 0)
		goto fail;
	if ((ret = model_index_customers(m, path.buf, err)) != 0)
		goto fail;
	sb_release(&path);
	clock_setup(m);
	*out = m;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (txn)
		mdb_txn_abort(txn);
	sb_release(&path);
	model_close(m);
	return ret ? ret : STORE_ERROR;
}

int model_open(const char *dir, model **out, strbuf *err)
{
	strbuf file = STRBUF_INIT;
	sb_addf(&file, "%s/%s", dir, MODEL_FILE);
	int rc = open_model(dir, file.buf, out, err);
	sb_release(&file);
	return rc;
}

int model_open_file(const char *file, model **out, strbuf *err)
{
	return open_model(NULL, file, out, err);
}

void model_close(model *m)
{
	if (!m)
		return;
	if (m->blob_txn)
		mdb_txn_abort(m->blob_txn);
	if (m->env)
		mdb_env_close(m->env);
	free(m->category_order);
	free(m->item_slots);
	model_customers_free(m);
	free(m->hidden);
	free(m->unsourced);
	free(m->first_day);
	free(m->nbr_pos);
	content_index_free(m->content);
	free(m->tuning_json);
	free(m->meta_json);
	free(m);
}

const model_info *model_get_info(const model *m)
{
	return &m->info;
}

const char *model_item_id(const model *m, uint32_t idx, size_t *len)
{
	assert(idx < m->info.n_items);
	return string_at(&m->ids, idx, len);
}

const char *model_item_title(const model *m, uint32_t idx, size_t *len)
{
	assert(idx < m->info.n_items);
	return string_at(&m->titles, idx, len);
}

void model_item_prefetch(const model *m, uint32_t idx)
{
	size_t len;
	assert(idx < m->info.n_items);
	__builtin_prefetch(string_at(&m->ids, idx, &len));
	__builtin_prefetch(string_at(&m->titles, idx, &len));
}

const char *model_category_name(const model *m, uint32_t cat, size_t *len)
{
	assert(cat < m->categories.n);
	return string_at(&m->categories, cat, len);
}

const char *model_item_image_url(const model *m, uint32_t idx, size_t *len)
{
	assert(idx < m->info.n_items);
	if (!m->image_urls.n) {
		*len = 0;
		return "";
	}
	return string_at(&m->image_urls, idx, len);
}

const char *model_item_url(const model *m, uint32_t idx, size_t *len)
{
	assert(idx < m->info.n_items);
	if (!m->urls.n) {
		*len = 0;
		return "";
	}
	return string_at(&m->urls, idx, len);
}

bool model_item_recommendable(const model *m, uint32_t idx)
{
	assert(idx < m->info.n_items);
	return !m->flags || !(m->flags[idx] & MODEL_ITEM_NOT_RECOMMENDABLE);
}

model_item_bits model_get_item_bits(const model *m)
{
	return (model_item_bits){ m->hidden, m->unsourced };
}

static void set_bit(_Atomic uint64_t *bits, uint32_t idx, bool on)
{
	uint64_t bit = 1ull << (idx % 64);
	if (on)
		atomic_fetch_or_explicit(&bits[idx / 64], bit, memory_order_release);
	else
		atomic_fetch_and_explicit(&bits[idx / 64], ~bit, memory_order_release);
}

void model_item_override(model *m, uint32_t idx, bool available, bool recommendable)
{
	assert(idx < m->info.n_items);
	/* The model's own flag wins: such an item was trained without
	 * neighbours, so there is nothing to bring back. */
	bool unrec = !recommendable || !model_item_recommendable(m, idx);
	if (!recommendable && model_item_recommendable(m, idx))
		atomic_store_explicit(&m->unsourced_override, true, memory_order_relaxed);
	set_bit(m->unsourced, idx, unrec);
	set_bit(m->hidden, idx, unrec || !available);
}

uint32_t model_item_category(const model *m, uint32_t idx)
{
	uint32_t c;
	assert(idx < m->info.n_items);
	memcpy(&c, m->category + (size_t)idx * 4, 4);
	return c;
}

float model_item_price(const model *m, uint32_t idx)
{
	float p;
	assert(idx < m->info.n_items);
	memcpy(&p, m->price + (size_t)idx * 4, 4);
	return p;
}

int model_category_lookup(const model *m, const char *name, size_t len, uint32_t *cat)
{
	/* A binary search: a catalog may have thousands of categories and
	 * category= is checked on every request that names one. */
	uint32_t lo = 0, hi = m->categories.n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2, c = m->category_order[mid];
		size_t n;
		const char *s = string_at(&m->categories, c, &n);
		int cmp = name_cmp(s, n, name, len);
		if (cmp == 0) {
			*cat = c;
			return 0;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return STORE_NOTFOUND;
}

static enum model_clock clock_rule = MODEL_CLOCK_AUTO;

void model_set_clock(enum model_clock c)
{
	clock_rule = c;
}

int model_clock_parse(const char *s, enum model_clock *out)
{
	static const char *const names[] = { "auto", "model", "wall" };
	for (int i = 0; i < 3; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum model_clock)i;
			return 0;
		}
	return -1;
}

const char *model_clock_setting(void)
{
	return clock_rule == MODEL_CLOCK_MODEL ? "model" : clock_rule == MODEL_CLOCK_WALL ? "wall" : "auto";
}

const char *model_clock_name(const model *m)
{
	return m->model_clock ? "model" : "wall";
}

const char *model_clock_ahead_message(const model *m)
{
	return m->clock_msg;
}

/* Decides m's clock under the rule, and words the refusal it leads to. */
static void clock_setup(model *m)
{
	/* Live data ends shortly before training: the wall clock is right.
	 * Data that ended long before (a historical log, a replay) would make
	 * every customer look lost: let its clock run from its as-of date. */
	bool old_data = m->info.created - m->info.as_of > MODEL_REPLAY_AFTER;
	m->model_clock = clock_rule == MODEL_CLOCK_MODEL || (clock_rule == MODEL_CLOCK_AUTO && old_data);
	char as_of[TIME_FMT_LEN];
	time_format(m->info.as_of, as_of);
	if (m->model_clock)
		snprintf(m->clock_msg, sizeof(m->clock_msg),
			 "timestamp is more than a day ahead of the model's clock, which runs from the "
			 "data's as-of time %s (serve --clock %s%s); to accept events stamped with "
			 "real time, restart the server with --clock wall", as_of, model_clock_setting(),
			 clock_rule == MODEL_CLOCK_AUTO ? ": the data ended over 30 days before training"
							: "");
	else
		snprintf(m->clock_msg, sizeof(m->clock_msg),
			 "timestamp is more than a day ahead of the server's wall clock (serve --clock "
			 "%s); check the sending system's clock", model_clock_setting());
}

int64_t model_now(const model *m)
{
	int64_t now = (int64_t)util_now();
	if (!m->model_clock)
		return now;
	int64_t elapsed = now - m->info.created;
	return m->info.as_of + (elapsed > 0 ? elapsed : 0);
}

float model_item_popularity(const model *m, uint32_t idx)
{
	float f;
	assert(idx < m->info.n_items);
	memcpy(&f, m->popularity + (size_t)idx * sizeof(float), sizeof(f));
	return f;
}

const unsigned char *model_popular(const model *m)
{
	return m->popular;
}

int model_txn_begin(model *m, model_txn **out)
{
	model_txn *t = xcalloc(1, sizeof(*t));
	t->m = m;
	if (store_reader_begin(m->env, &t->r) != 0) {
		free(t);
		return STORE_ERROR;
	}
	*out = t;
	return 0;
}

void model_txn_reset(model_txn *t)
{
	store_reader_reset(&t->r);
}

int model_txn_renew(model_txn *t)
{
	return store_reader_renew(&t->r) ? STORE_ERROR : 0;
}

void model_txn_free(model_txn *t)
{
	if (!t)
		return;
	mdb_txn_abort(t->r.txn);
	free(t);
}

model *model_txn_model(const model_txn *t)
{
	return t->m;
}

int model_item_lookup(model_txn *t, const char *id, size_t len, uint32_t *idx)
{
	return model_item_find(t->m, id, len, idx);
}

int model_item_find(const model *m, const char *id, size_t len, uint32_t *idx)
{
	for (uint64_t h = model_id_hash(id, len) & m->item_mask;; h = (h + 1) & m->item_mask) {
		uint32_t slot = m->item_slots[h];
		if (!slot)
			return STORE_NOTFOUND;
		size_t n;
		const char *s = string_at(&m->ids, slot - 1, &n);
		if (n == len && memcmp(s, id, len) == 0) {
			*idx = slot - 1;
			return 0;
		}
	}
}

int model_neighbors(model_txn *t, uint32_t idx, model_pairs *out)
{
	const model *m = t->m;
	if (idx >= m->info.n_items) {
		out->data = out->neg = NULL;
		out->n = out->n_neg = 0;
		return STORE_CORRUPT;
	}
	uint32_t all;
	out->data = offtab_entry(&m->nbrs, idx, &all);
	out->n = m->nbr_pos ? m->nbr_pos[idx] : all;
	out->neg = out->data + (size_t)out->n * sizeof(neighbor);
	out->n_neg = all - out->n;
	return 0;
}
