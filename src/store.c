/*
 * store: models and state on LMDB. See store.h for the layout.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <lmdb.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "timefmt.h"
#include "util.h"

/* Puts per write transaction while building a model: keeps the dirty page
 * list of one transaction bounded on catalogs of millions of customers. */
#define WRITER_BATCH 50000

const char *store_strerror(int code)
{
	switch (code) {
	case STORE_OK: return "ok";
	case STORE_NOTFOUND: return "not found";
	case STORE_CORRUPT: return "corrupt record";
	case STORE_ERROR: return "storage error";
	}
	return "unknown error";
}

/* mkdir -p */
static int make_dirs(const char *dir, strbuf *err)
{
	char *path = xstrdup(dir);
	for (char *p = path + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(path, 0755) != 0 && errno != EEXIST) {
				sb_addf(err, "cannot create directory %s: %s", path, strerror(errno));
				free(path);
				return -1;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	free(path);
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		sb_addf(err, "%s is not a directory", dir);
		return -1;
	}
	return 0;
}

static void fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* ---- writer ------------------------------------------------------------- */

struct model_writer {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, items, item_index, neighbors, customers;
	char *dir, *tmp_path, *final_path;
	unsigned puts; /* in the current transaction */
};

static int lmdb_fail(strbuf *err, const char *what, int rc)
{
	sb_addf(err, "%s: %s", what, mdb_strerror(rc));
	return STORE_ERROR;
}

static int writer_begin(model_writer *w, strbuf *err)
{
	int rc = mdb_txn_begin(w->env, NULL, 0, &w->txn);
	if (rc)
		return lmdb_fail(err, "model: begin write", rc);
	w->puts = 0;
	return 0;
}

/* Commits every WRITER_BATCH puts. */
static int writer_tick(model_writer *w, strbuf *err)
{
	if (++w->puts < WRITER_BATCH)
		return 0;
	int rc = mdb_txn_commit(w->txn);
	w->txn = NULL;
	if (rc)
		return lmdb_fail(err, "model: commit", rc);
	return writer_begin(w, err);
}

static int writer_put(model_writer *w, MDB_dbi dbi, const void *k, size_t klen, const void *v,
		      size_t vlen, unsigned flags, strbuf *err)
{
	MDB_val key = { klen, (void *)k }, val = { vlen, (void *)v };
	int rc = mdb_put(w->txn, dbi, &key, &val, flags);
	if (rc)
		return lmdb_fail(err, "model: write", rc);
	return writer_tick(w, err);
}

int model_writer_open(const char *dir, uint64_t size_hint, model_writer **out, strbuf *err)
{
	model_writer *w = xcalloc(1, sizeof(*w));
	int rc;

	if (make_dirs(dir, err) != 0)
		goto fail;
	w->dir = xstrdup(dir);
	strbuf p = STRBUF_INIT;
	sb_addf(&p, "%s/%s.tmp", dir, MODEL_FILE);
	w->tmp_path = sb_detach(&p, NULL);
	sb_addf(&p, "%s/%s", dir, MODEL_FILE);
	w->final_path = sb_detach(&p, NULL);
	unlink(w->tmp_path); /* left over from an interrupted run */

	if ((rc = mdb_env_create(&w->env)) != 0) {
		lmdb_fail(err, "model: create environment", rc);
		goto fail;
	}
	/* B-tree overhead and page slack: twice the payload plus 64 MiB. The
	 * map is virtual; the file only grows as pages are written. */
	uint64_t mapsize = size_hint * 2 + (64ull << 20);
	mapsize = (mapsize + 4095) & ~4095ull;
	mdb_env_set_mapsize(w->env, (size_t)mapsize);
	mdb_env_set_maxdbs(w->env, 8);
	rc = mdb_env_open(w->env, w->tmp_path, MDB_NOSUBDIR | MDB_NOSYNC | MDB_NOLOCK, 0644);
	if (rc) {
		sb_addf(err, "model: cannot create %s: %s", w->tmp_path, mdb_strerror(rc));
		goto fail;
	}
	if (writer_begin(w, err) != 0)
		goto fail;
	struct {
		const char *name;
		MDB_dbi *dbi;
		unsigned flags;
	} dbs[] = {
		{ "meta", &w->meta, 0 },
		{ "items", &w->items, 0 },
		{ "item_index", &w->item_index, 0 },
		{ "neighbors", &w->neighbors, 0 },
		{ "customers", &w->customers, 0 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(dbs); i++) {
		rc = mdb_dbi_open(w->txn, dbs[i].name, MDB_CREATE | dbs[i].flags, dbs[i].dbi);
		if (rc) {
			lmdb_fail(err, "model: create table", rc);
			goto fail;
		}
	}
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
	size_t head = 4 + 4 * ((size_t)t->count + 1);
	unsigned char *blob = xmalloc(head + bytes);
	uint32_t off = 0;
	memcpy(blob, &t->count, 4);
	for (uint32_t i = 0; i < t->count; i++) {
		size_t len = t->strs[i] ? t->lens[i] : 0;
		memcpy(blob + 4 + 4 * (size_t)i, &off, 4);
		if (len)
			memcpy(blob + head + off, t->strs[i], len);
		off += (uint32_t)len;
	}
	memcpy(blob + 4 + 4 * (size_t)t->count, &off, 4);
	int rc = writer_put(w, w->items, key, strlen(key), blob, head + bytes, 0, err);
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

int model_writer_put_neighbors(model_writer *w, const neighbor *lists, uint32_t stride,
			       const uint32_t *counts, uint32_t n_items, strbuf *err)
{
	/* One value: u32 n_items, u32 offsets[n_items + 1] (in pairs), pairs.
	 * A request then finds a list by arithmetic, not a B-tree search. */
	uint64_t pairs = 0;
	for (uint32_t i = 0; i < n_items; i++)
		pairs += counts[i];
	if (pairs > UINT32_MAX) {
		sb_adds(err, "model: more than 4 billion neighbour pairs");
		return STORE_ERROR;
	}
	size_t head = 4 + 4 * ((size_t)n_items + 1);
	MDB_val key = { 3, "all" }, val = { head + (size_t)pairs * sizeof(neighbor), NULL };
	int rc = mdb_put(w->txn, w->neighbors, &key, &val, MDB_RESERVE);
	if (rc)
		return lmdb_fail(err, "model: write neighbours", rc);
	unsigned char *p = val.mv_data;
	uint32_t off = 0;
	memcpy(p, &n_items, 4);
	for (uint32_t i = 0; i < n_items; i++) {
		memcpy(p + 4 + 4 * (size_t)i, &off, 4);
		memcpy(p + head + (size_t)off * sizeof(neighbor), lists + (size_t)i * stride,
		       (size_t)counts[i] * sizeof(neighbor));
		off += counts[i];
	}
	memcpy(p + 4 + 4 * (size_t)n_items, &off, 4);
	return writer_tick(w, err);
}

int model_writer_put_customer(model_writer *w, const char *id, size_t len,
			      const customer_summary *sum, const history_entry *hist,
			      const char *attrs, strbuf *err)
{
	size_t hbytes = (size_t)sum->n_hist * sizeof(*hist);
	size_t size = sizeof(*sum) + hbytes + sum->attrs_len;
	MDB_val key = { len, (void *)id }, val = { size, NULL };
	/* MDB_RESERVE: LMDB hands us the space, we write straight into it. */
	int rc = mdb_put(w->txn, w->customers, &key, &val, MDB_RESERVE);
	if (rc)
		return lmdb_fail(err, "model: write customer", rc);
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

int model_writer_finish(model_writer *w, strbuf *err)
{
	int ret = STORE_ERROR;
	int rc = mdb_txn_commit(w->txn);
	w->txn = NULL;
	if (rc) {
		lmdb_fail(err, "model: commit", rc);
		goto out;
	}
	if ((rc = mdb_env_sync(w->env, 1)) != 0) {
		lmdb_fail(err, "model: sync", rc);
		goto out;
	}
	mdb_env_close(w->env);
	w->env = NULL;
	if (rename(w->tmp_path, w->final_path) != 0) {
		sb_addf(err, "model: cannot rename %s to %s: %s", w->tmp_path, w->final_path,
			strerror(errno));
		goto out;
	}
	fsync_dir(w->dir);
	ret = 0;
out:
	if (ret == 0) {
		free(w->tmp_path);
		w->tmp_path = NULL; /* nothing left to remove */
	}
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

/* ---- reader ------------------------------------------------------------- */

struct model {
	MDB_env *env;
	MDB_dbi item_index, neighbors, customers;
	/* Held for the model's lifetime: the blobs below point into the map
	 * and stay valid while this transaction is open. With MDB_NOLOCK and
	 * no writer it costs nothing. */
	MDB_txn *blob_txn;
	const unsigned char *ids; /* the "ids" string table */
	const unsigned char *titles, *categories; /* string tables */
	uint32_t n_categories;
	uint32_t *category_order; /* category indexes by name, for lookups */
	uint32_t *item_slots;     /* open addressing: item index + 1 (0: empty) */
	uint64_t item_mask;       /* slots - 1 (a power of two) */
	const unsigned char *category, *price; /* u32[n], f32[n] */
	const unsigned char *popularity;
	const unsigned char *popular;
	const unsigned char *nbr_offsets; /* u32[n_items + 1], in pairs */
	const unsigned char *nbr_pairs;
	uint32_t *nbr_pos; /* format 4 with negatives: positives per list, else NULL */
	char *tuning_json; /* info.tuning_json */
	char *meta_json;
	model_info info;
};

struct model_txn {
	model *m;
	MDB_txn *txn;
	int active;
};

static int get_blob(MDB_txn *txn, MDB_dbi dbi, const char *key, MDB_val *val)
{
	MDB_val k = { strlen(key), (void *)key };
	return mdb_get(txn, dbi, &k, val);
}

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
	if (m->info.format_version != MODEL_FORMAT_VERSION &&
	    m->info.format_version != MODEL_FORMAT_VERSION_NEGATIVES) {
		sb_addf(err, "%s: model format version %u, this build reads version %u; retrain "
			     "with this shopkeeper", path, m->info.format_version,
			MODEL_FORMAT_VERSION);
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
	m->info.n_items = (uint32_t)json_integer_value(items);
	m->info.n_customers = (uint32_t)json_integer_value(customers);
	m->info.neighbors = (uint32_t)json_integer_value(k);
	m->info.meta_json = m->meta_json;
	ret = 0;
out:
	json_decref(root);
	return ret;
}

/* Checks a string table: its count (must equal `want` unless want is
 * UINT32_MAX), offsets in order and within the blob. */
static bool string_table_ok(MDB_val v, uint32_t want, uint32_t *count)
{
	if (v.mv_size < 8)
		return false;
	const unsigned char *b = v.mv_data;
	uint32_t n, end, prev = 0;
	memcpy(&n, b, 4);
	size_t head = 4 + 4 * ((size_t)n + 1);
	if ((want != UINT32_MAX && n != want) || v.mv_size < head)
		return false;
	memcpy(&end, b + 4 + 4 * (size_t)n, 4);
	if (head + end != v.mv_size)
		return false;
	for (uint32_t i = 0; i <= n; i++) {
		uint32_t off;
		memcpy(&off, b + 4 + 4 * (size_t)i, 4);
		if (off < prev || off > end)
			return false;
		prev = off;
	}
	*count = n;
	return true;
}

static const char *string_at(const unsigned char *table, uint32_t idx, size_t *len)
{
	uint32_t n, a, b;
	memcpy(&n, table, 4);
	memcpy(&a, table + 4 + 4 * (size_t)idx, 4);
	memcpy(&b, table + 4 + 4 * ((size_t)idx + 1), 4);
	*len = b - a;
	return (const char *)table + 4 + 4 * ((size_t)n + 1) + a;
}

/* FNV-1a, 64 bits: item ids are short strings. */
static uint64_t id_hash(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
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
		const char *id = string_at(m->ids, i, &len);
		uint64_t h = id_hash(id, len) & m->item_mask;
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
	const char *a = string_at(m->categories, *(const uint32_t *)x, &an);
	const char *b = string_at(m->categories, *(const uint32_t *)y, &bn);
	return name_cmp(a, an, b, bn);
}

/* Loads and checks the item tables against the counts in the meta record. */
static int load_items(model *m, MDB_dbi items, const char *path, strbuf *err)
{
	uint32_t n = m->info.n_items, count;
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
	if (!string_table_ok(ids, n, &count) || !string_table_ok(titles, n, &count) ||
	    !string_table_ok(cats, UINT32_MAX, &m->n_categories)) {
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
		if (nb.item >= n || (c != UINT32_MAX && c >= m->n_categories)) {
			sb_addf(err, "%s: item tables name items or categories that do not exist", path);
			return STORE_CORRUPT;
		}
	}
	m->ids = ids.mv_data;
	m->titles = titles.mv_data;
	m->categories = cats.mv_data;
	m->category_order = xmallocarray(m->n_categories ? m->n_categories : 1, sizeof(uint32_t));
	for (uint32_t c = 0; c < m->n_categories; c++)
		m->category_order[c] = c;
	qsort_r(m->category_order, m->n_categories, sizeof(uint32_t), category_cmp, m);
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
	uint32_t n = m->info.n_items, count, prev = 0, end;
	size_t head = 4 + 4 * ((size_t)n + 1);
	if (get_blob(m->blob_txn, m->neighbors, "all", &v) != 0 || v.mv_size < head) {
		sb_addf(err, "%s: neighbour table missing or truncated", path);
		return STORE_CORRUPT;
	}
	const unsigned char *b = v.mv_data;
	memcpy(&count, b, 4);
	memcpy(&end, b + 4 + 4 * (size_t)n, 4);
	if (count != n || v.mv_size != head + (size_t)end * sizeof(neighbor)) {
		sb_addf(err, "%s: neighbour table does not match the item count", path);
		return STORE_CORRUPT;
	}
	for (uint32_t i = 0; i <= n; i++) {
		uint32_t off;
		memcpy(&off, b + 4 + 4 * (size_t)i, 4);
		if (off < prev || off > end || (i > 0 && off - prev > m->info.neighbors)) {
			sb_addf(err, "%s: neighbour table offsets are corrupt", path);
			return STORE_CORRUPT;
		}
		prev = off;
	}
	/* train keeps positive scores, and in format 4 may follow them with
	 * negative ones; scoring relies on the order of signs. */
	bool negatives = m->info.format_version == MODEL_FORMAT_VERSION_NEGATIVES;
	if (negatives)
		m->nbr_pos = xcalloc((size_t)n + 1, sizeof(*m->nbr_pos));
	for (uint32_t i = 0, p = 0; i < n; i++) {
		uint32_t to;
		memcpy(&to, b + 4 + 4 * ((size_t)i + 1), 4);
		bool neg_seen = false;
		for (; p < to; p++) {
			neighbor nb = model_pair_at(b + head, p);
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
	m->nbr_offsets = b + 4;
	m->nbr_pairs = b + head;
	return 0;
}

int model_open(const char *dir, model **out, strbuf *err)
{
	model *m = xcalloc(1, sizeof(*m));
	strbuf path = STRBUF_INIT;
	int rc, ret = STORE_ERROR;
	MDB_txn *txn = NULL;

	sb_addf(&path, "%s/%s", dir, MODEL_FILE);
	struct stat st;
	if (stat(path.buf, &st) != 0) {
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
	if ((rc = mdb_env_create(&m->env)) != 0) {
		lmdb_fail(err, "model: create environment", rc);
		goto fail;
	}
	mdb_env_set_maxdbs(m->env, 8);
	rc = mdb_env_open(m->env, path.buf, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS,
			  0644);
	if (rc) {
		sb_addf(err, "cannot open model %s: %s", path.buf, mdb_strerror(rc));
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

	/* Table handles opened in a read transaction become shared on commit. */
	if ((rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn)) != 0) {
		lmdb_fail(err, "model: begin", rc);
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
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc) {
		lmdb_fail(err, "model: commit", rc);
		goto fail;
	}

	if ((rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &m->blob_txn)) != 0) {
		lmdb_fail(err, "model: begin", rc);
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
	if ((ret = load_neighbors(m, path.buf, err)) != 0)
		goto fail;
	sb_release(&path);
	*out = m;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	sb_release(&path);
	model_close(m);
	return ret ? ret : STORE_ERROR;
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
	free(m->nbr_pos);
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
	return string_at(m->ids, idx, len);
}

const char *model_item_title(const model *m, uint32_t idx, size_t *len)
{
	return string_at(m->titles, idx, len);
}

void model_item_prefetch(const model *m, uint32_t idx)
{
	size_t len;
	__builtin_prefetch(string_at(m->ids, idx, &len));
	__builtin_prefetch(string_at(m->titles, idx, &len));
}

uint32_t model_item_category(const model *m, uint32_t idx)
{
	uint32_t c;
	memcpy(&c, m->category + (size_t)idx * 4, 4);
	return c;
}

float model_item_price(const model *m, uint32_t idx)
{
	float p;
	memcpy(&p, m->price + (size_t)idx * 4, 4);
	return p;
}

int model_category_lookup(const model *m, const char *name, size_t len, uint32_t *cat)
{
	/* A binary search: a catalog may have thousands of categories and
	 * category= is checked on every request that names one. */
	uint32_t lo = 0, hi = m->n_categories;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2, c = m->category_order[mid];
		size_t n;
		const char *s = string_at(m->categories, c, &n);
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

int64_t model_now(const model *m)
{
	int64_t now = (int64_t)util_now();
	/* Live data ends shortly before training: the wall clock is right.
	 * Data that ended long before (a historical log, a replay) would make
	 * every customer look lost: let its clock run from its as-of date. */
	if (m->info.created - m->info.as_of <= MODEL_REPLAY_AFTER)
		return now;
	int64_t elapsed = now - m->info.created;
	return m->info.as_of + (elapsed > 0 ? elapsed : 0);
}

float model_item_popularity(const model *m, uint32_t idx)
{
	float f;
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
	if (mdb_txn_begin(m->env, NULL, MDB_RDONLY, &t->txn) != 0) {
		free(t);
		return STORE_ERROR;
	}
	t->active = 1;
	*out = t;
	return 0;
}

void model_txn_reset(model_txn *t)
{
	if (t->active) {
		mdb_txn_reset(t->txn);
		t->active = 0;
	}
}

int model_txn_renew(model_txn *t)
{
	if (t->active)
		return 0;
	if (mdb_txn_renew(t->txn) != 0)
		return STORE_ERROR;
	t->active = 1;
	return 0;
}

void model_txn_free(model_txn *t)
{
	if (!t)
		return;
	mdb_txn_abort(t->txn);
	free(t);
}

model *model_txn_model(const model_txn *t)
{
	return t->m;
}

int model_item_lookup(model_txn *t, const char *id, size_t len, uint32_t *idx)
{
	const model *m = t->m;
	for (uint64_t h = id_hash(id, len) & m->item_mask;; h = (h + 1) & m->item_mask) {
		uint32_t slot = m->item_slots[h];
		if (!slot)
			return STORE_NOTFOUND;
		size_t n;
		const char *s = string_at(m->ids, slot - 1, &n);
		if (n == len && memcmp(s, id, len) == 0) {
			*idx = slot - 1;
			return 0;
		}
	}
}

int model_neighbors(model_txn *t, uint32_t idx, model_pairs *out)
{
	const model *m = t->m;
	uint32_t a, b;
	if (idx >= m->info.n_items) {
		out->data = out->neg = NULL;
		out->n = out->n_neg = 0;
		return STORE_CORRUPT;
	}
	memcpy(&a, m->nbr_offsets + 4 * (size_t)idx, 4);
	memcpy(&b, m->nbr_offsets + 4 * ((size_t)idx + 1), 4);
	out->data = m->nbr_pairs + (size_t)a * sizeof(neighbor);
	out->n = m->nbr_pos ? m->nbr_pos[idx] : b - a;
	out->neg = out->data + (size_t)out->n * sizeof(neighbor);
	out->n_neg = b - a - out->n;
	return 0;
}

/* Decodes a customer record. */
static int decode_customer(const model *m, MDB_val v, model_customer *out)
{
	if (v.mv_size < sizeof(customer_summary))
		return STORE_CORRUPT;
	memcpy(&out->sum, v.mv_data, sizeof(out->sum));
	uint64_t need = sizeof(customer_summary) + (uint64_t)out->sum.n_hist * sizeof(history_entry) +
			out->sum.attrs_len;
	if (need != v.mv_size)
		return STORE_CORRUPT;
	(void)m;
	out->n_hist = out->sum.n_hist;
	out->entries = (const unsigned char *)v.mv_data + sizeof(customer_summary);
	out->attrs_len = out->sum.attrs_len;
	out->attrs = (const char *)out->entries + (size_t)out->n_hist * sizeof(history_entry);
	return 0;
}

int model_customer_get(model_txn *t, const char *id, size_t len, model_customer *out)
{
	MDB_val k = { len, (void *)id }, v;
	int rc = mdb_get(t->txn, t->m->customers, &k, &v);
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	if (rc)
		return STORE_ERROR;
	return decode_customer(t->m, v, out);
}

struct model_iter {
	model_txn *t;
	MDB_cursor *cur;
	const char *after; /* borrowed from the caller for the first step */
	size_t after_len;
	int started;
};

int model_iter_begin(model_txn *t, const char *after, size_t after_len, model_iter **out)
{
	model_iter *it = xcalloc(1, sizeof(*it));
	it->t = t;
	if (mdb_cursor_open(t->txn, t->m->customers, &it->cur) != 0) {
		free(it);
		return STORE_ERROR;
	}
	it->after = after;
	it->after_len = after_len;
	*out = it;
	return 0;
}

int model_iter_next(model_iter *it, const char **id, size_t *len, model_customer *c)
{
	MDB_val k, v;
	int rc;
	if (!it->started) {
		it->started = 1;
		if (it->after) {
			k.mv_size = it->after_len;
			k.mv_data = (void *)it->after;
			rc = mdb_cursor_get(it->cur, &k, &v, MDB_SET_RANGE);
			/* Skip the cursor key itself: paging resumes after it. */
			if (rc == 0 && k.mv_size == it->after_len &&
			    memcmp(k.mv_data, it->after, it->after_len) == 0)
				rc = mdb_cursor_get(it->cur, &k, &v, MDB_NEXT);
		} else {
			rc = mdb_cursor_get(it->cur, &k, &v, MDB_FIRST);
		}
	} else {
		rc = mdb_cursor_get(it->cur, &k, &v, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	if (rc)
		return STORE_ERROR;
	*id = k.mv_data;
	*len = k.mv_size;
	return decode_customer(it->t->m, v, c);
}

void model_iter_end(model_iter *it)
{
	if (!it)
		return;
	mdb_cursor_close(it->cur);
	free(it);
}

/* ---- state -------------------------------------------------------------- */

struct state {
	MDB_env *env;
	MDB_dbi meta;
	MDB_dbi flags;   /* customer id -> struct flag_record */
	MDB_dbi chunks;  /* customer id -> sealed event log chunks (see "event logs") */
	MDB_dbi tails;   /* customer id -> the log's tail, where events are appended */
	char *erasures_path;
	pthread_mutex_t erasures_lock; /* one appender at a time */
	/* Growing the map remaps it: no read transaction may be active then.
	 * Readers hold this shared for the span of a request; the writer
	 * takes it exclusively only to grow (rare). Writer-preferring, so a
	 * steady read load cannot starve growth. */
	pthread_rwlock_t remap_lock;
	uint64_t map_size;
};

struct flag_record {
	uint32_t flags;
	uint32_t reserved;
	int64_t changed; /* Unix seconds of the last change */
};

struct state_txn {
	state *s;
	MDB_txn *txn;
	MDB_cursor *chunks; /* on the event chunks, renewed with the txn */
	strbuf buf;         /* a customer's log joined (state_events_get) */
	int active;
};

#define STATE_FILE "state.mdb"
/* 1: one record per customer holding their whole event log. 2: the log in
 * chunks. 3: a tail and sealed chunks (see "event logs"). Older states are
 * converted at open. */
#define STATE_FORMAT_VERSION 3u
#define STATE_CHUNKS_DB "event_chunks"
#define STATE_TAILS_DB "event_tails"
#define STATE_INITIAL_MAP (64ull << 20)

static int convert_v1(state *s, MDB_txn *txn);
static int convert_v2(state *s, MDB_txn *txn);
static int delete_log(state *s, MDB_txn *txn, MDB_val key);
static int readonly_version(state *s, MDB_txn *txn, const char *path, strbuf *err);

int state_open(const char *dir, uint64_t initial_map, state **out, strbuf *err)
{
	state *s = xcalloc(1, sizeof(*s));
	pthread_rwlockattr_t attr;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->remap_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	strbuf path = STRBUF_INIT;
	MDB_txn *txn = NULL;
	int rc;

	if (make_dirs(dir, err) != 0)
		goto fail;
	sb_addf(&path, "%s/%s", dir, STATE_FILE);
	if ((rc = mdb_env_create(&s->env)) != 0) {
		lmdb_fail(err, "state: create environment", rc);
		goto fail;
	}
	s->map_size = initial_map ? (initial_map + 4095) & ~4095ull : STATE_INITIAL_MAP;
	mdb_env_set_mapsize(s->env, (size_t)s->map_size);
	mdb_env_set_maxdbs(s->env, 16);
	mdb_env_set_maxreaders(s->env, 512);
	rc = mdb_env_open(s->env, path.buf, MDB_NOSUBDIR | MDB_NOTLS, 0644);
	if (rc) {
		sb_addf(err, "cannot open state %s: %s", path.buf, mdb_strerror(rc));
		goto fail;
	}
	/* The file may have grown past initial_map in an earlier run. */
	MDB_envinfo ei;
	if (mdb_env_info(s->env, &ei) == 0 && ei.me_mapsize > s->map_size)
		s->map_size = ei.me_mapsize;
	int dead = 0;
	mdb_reader_check(s->env, &dead); /* slots of a killed process */

	pthread_mutex_init(&s->erasures_lock, NULL);
	sb_reset(&path);
	sb_addf(&path, "%s/erasures.txt", dir);
	s->erasures_path = xstrdup(path.buf);
	sb_reset(&path);
	sb_addf(&path, "%s/%s", dir, STATE_FILE);
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "customer_flags", MDB_CREATE, &s->flags)) != 0 ||
	    (rc = mdb_dbi_open(txn, STATE_CHUNKS_DB, MDB_CREATE | MDB_DUPSORT, &s->chunks)) != 0 ||
	    (rc = mdb_dbi_open(txn, STATE_TAILS_DB, MDB_CREATE, &s->tails)) != 0) {
		lmdb_fail(err, "state: open", rc);
		goto fail;
	}
	MDB_val k = { 14, "format_version" }, v;
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		uint32_t ver = STATE_FORMAT_VERSION;
		MDB_val nv = { sizeof(ver), &ver };
		rc = mdb_put(txn, s->meta, &k, &nv, 0);
	} else if (rc == 0) {
		uint32_t ver = 0;
		if (v.mv_size == sizeof(ver))
			memcpy(&ver, v.mv_data, sizeof(ver));
		if (ver == 1 || ver == 2) {
			/* Format 1 is rewritten straight into the current one. */
			if ((rc = ver == 1 ? convert_v1(s, txn) : convert_v2(s, txn)) != 0) {
				sb_addf(err, "state: converting the event logs of format %u: %s", ver,
					mdb_strerror(rc));
				goto fail;
			}
			ver = STATE_FORMAT_VERSION;
			MDB_val nv = { sizeof(ver), &ver };
			rc = mdb_put(txn, s->meta, &k, &nv, 0);
		} else if (ver != STATE_FORMAT_VERSION) {
			sb_addf(err, "state %s has format version %u; this build uses %u", path.buf,
				ver, STATE_FORMAT_VERSION);
			goto fail;
		}
	}
	if (rc) {
		lmdb_fail(err, "state: initialise", rc);
		goto fail;
	}
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc) {
		lmdb_fail(err, "state: initialise", rc);
		goto fail;
	}
	sb_release(&path);
	*out = s;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	sb_release(&path);
	state_close(s);
	return STORE_ERROR;
}

void state_close(state *s)
{
	if (!s)
		return;
	if (s->env)
		mdb_env_close(s->env);
	if (s->erasures_path)
		pthread_mutex_destroy(&s->erasures_lock);
	pthread_rwlock_destroy(&s->remap_lock);
	free(s->erasures_path);
	free(s);
}

int state_txn_begin(state *s, state_txn **out)
{
	state_txn *t = xcalloc(1, sizeof(*t));
	t->s = s;
	pthread_rwlock_rdlock(&s->remap_lock);
	if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t->txn) != 0) {
		pthread_rwlock_unlock(&s->remap_lock);
		free(t);
		return STORE_ERROR;
	}
	if (mdb_cursor_open(t->txn, s->chunks, &t->chunks) != 0) {
		mdb_txn_abort(t->txn);
		pthread_rwlock_unlock(&s->remap_lock);
		free(t);
		return STORE_ERROR;
	}
	t->active = 1;
	*out = t;
	return 0;
}

void state_txn_reset(state_txn *t)
{
	if (t->active) {
		mdb_txn_reset(t->txn);
		t->active = 0;
		pthread_rwlock_unlock(&t->s->remap_lock);
	}
}

int state_txn_renew(state_txn *t)
{
	if (t->active)
		return 0;
	pthread_rwlock_rdlock(&t->s->remap_lock);
	if (mdb_txn_renew(t->txn) != 0 || mdb_cursor_renew(t->txn, t->chunks) != 0) {
		mdb_txn_reset(t->txn);
		pthread_rwlock_unlock(&t->s->remap_lock);
		return STORE_ERROR;
	}
	t->active = 1;
	return 0;
}

void state_txn_free(state_txn *t)
{
	if (!t)
		return;
	state_txn_reset(t);
	mdb_cursor_close(t->chunks);
	mdb_txn_abort(t->txn);
	sb_release(&t->buf);
	free(t);
}

int state_customer_flags(state_txn *t, const char *id, size_t len, uint32_t *flags)
{
	MDB_val k = { len, (void *)id }, v;
	*flags = 0;
	int rc = mdb_get(t->txn, t->s->flags, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc || v.mv_size != sizeof(struct flag_record))
		return STORE_ERROR;
	struct flag_record fr;
	memcpy(&fr, v.mv_data, sizeof(fr));
	*flags = fr.flags;
	return 0;
}

/* Whether the customer is flagged STATE_ERASED (as txn sees it). */
static bool erased(state *s, MDB_txn *txn, const char *id, size_t len)
{
	MDB_val k = { len, (void *)id }, v;
	struct flag_record fr;
	if (mdb_get(txn, s->flags, &k, &v) != 0 || v.mv_size != sizeof(fr))
		return false;
	memcpy(&fr, v.mv_data, sizeof(fr));
	return fr.flags & STATE_ERASED;
}

/* Sets and clears flag bits of one customer inside txn; STATE_ERASED also
 * deletes their event log. */
static int apply_flags(state *s, MDB_txn *txn, const char *id, size_t len, uint32_t set,
		       uint32_t clear)
{
	MDB_val k = { len, (void *)id }, v;
	struct flag_record fr = { 0, 0, 0 };
	int rc = mdb_get(txn, s->flags, &k, &v);
	if (rc == 0 && v.mv_size == sizeof(fr))
		memcpy(&fr, v.mv_data, sizeof(fr));
	fr.flags = (fr.flags | set) & ~clear;
	fr.changed = (int64_t)util_now();
	v.mv_size = sizeof(fr);
	v.mv_data = &fr;
	rc = mdb_put(txn, s->flags, &k, &v, 0);
	if (rc == 0 && (set & STATE_ERASED))
		rc = delete_log(s, txn, k);
	return rc;
}

/* One customer's flags in one durable transaction of its own. */
static int update_flags(state *s, const char *id, size_t len, uint32_t set, uint32_t clear,
			strbuf *err)
{
	const state_write w = { .customer = id, .customer_len = len, .set = set, .clear = clear };
	return state_commit(s, &w, 1, err);
}

int state_set_consent(state *s, const char *id, size_t len, bool personalization, strbuf *err)
{
	return personalization ? update_flags(s, id, len, 0, STATE_NO_PERSONALIZATION, err)
			       : update_flags(s, id, len, STATE_NO_PERSONALIZATION, 0, err);
}

int state_list_erasures(state *s, const char *const *ids, const size_t *lens, uint32_t n,
			strbuf *err)
{
	strbuf lines = STRBUF_INIT;
	for (uint32_t i = 0; i < n; i++) {
		sb_add(&lines, ids[i], lens[i]);
		sb_addc(&lines, '\n');
	}
	pthread_mutex_lock(&s->erasures_lock);
	int fd = open(s->erasures_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write(fd, lines.buf, lines.len) == (ssize_t)lines.len &&
		  fsync(fd) == 0;
	int saved = errno;
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&s->erasures_lock);
	sb_release(&lines);
	if (!ok) {
		sb_addf(err, "state: cannot append to %s: %s", s->erasures_path,
			saved ? strerror(saved) : "short write");
		return STORE_ERROR;
	}
	return 0;
}

int state_erase(state *s, const char *id, size_t len, strbuf *err)
{
	/* The list first: a crash between the two leaves an id listed for
	 * exclusion but still served until the retry, never the reverse. */
	if (state_list_erasures(s, &id, &len, 1, err) != 0)
		return STORE_ERROR;
	return update_flags(s, id, len, STATE_ERASED, 0, err);
}

/* ---- events ------------------------------------------------------------- */

/* A customer's event log: u32 count, u32 reserved, then events oldest
 * first, each: i64 ts, f32 quantity, f32 price, u8 type, u8 item_len, item
 * id bytes (22 + item_len bytes, packed). */
#define EVENT_HEAD 22u

int state_events_next(const state_events *ev, size_t *pos, event_view *out)
{
	if (*pos >= ev->size)
		return STORE_NOTFOUND;
	if (ev->size - *pos < EVENT_HEAD)
		return STORE_CORRUPT;
	const unsigned char *p = ev->data + *pos;
	memcpy(&out->ts, p, 8);
	memcpy(&out->quantity, p + 8, 4);
	memcpy(&out->price, p + 12, 4);
	out->type = p[16];
	out->item_len = p[17];
	/* bytes 18..21 reserved */
	if (ev->size - *pos - EVENT_HEAD < out->item_len || out->type > EVENT_REMOVE_FROM_CART)
		return STORE_CORRUPT;
	out->item = (const char *)p + EVENT_HEAD;
	*pos += EVENT_HEAD + out->item_len;
	return 0;
}

/* ---- event logs ----
 *
 * A customer's event log is a tail and, behind it, sealed chunks.
 *
 * - The tail ("event_tails", id -> [be32 seq][u16 count][u16 total]
 *   [u16 skip][u16 first][events...]) takes every append. `total` is the
 *   whole log's size; `first` the number of events in the first chunk (0:
 *   no chunks, so readers need not look), of which `skip` are already
 *   dropped; `seq` is the number the tail gets when sealed.
 * - When an append would take the tail past CHUNK_MAX it is sealed: moved
 *   as a chunk ([be32 seq][u16 count][u16 0][events...]) into
 *   "event_chunks", sorted duplicates of the id (MDB_DUPSORT; the
 *   big-endian seq keeps them in time order), and a new tail is started.
 * - A full log drops its oldest event by counting it in `skip`; the first
 *   chunk is deleted once all its events are skipped.
 *
 * Why: each page a commit dirties is copied, written and synced. When
 * every append rewrote the last of the customer's own chunks, an event
 * dirtied two or three pages (the chunk's leaf, the customer's sub-tree,
 * its record in the main tree) and dropping the oldest rewrote one more:
 * 9.7 KB written per event with full logs. Tails of many customers share
 * pages, so a commit of thousands of events dirties each tail page once,
 * and the chunks are written once per sealed tail (about 16 events). */
#define CHUNK_HEAD 8u
#define TAIL_HEAD 12u
#define CHUNK_MAX 480u /* under LMDB's 511-byte limit for duplicates */
#define LOG_EVENTS_MAX (CHUNK_MAX - CHUNK_HEAD) /* event bytes in a tail or chunk */
_Static_assert(STATE_MAX_EVENTS < 65536, "a log's size must fit a u16");
_Static_assert(EVENT_HEAD + 255 <= LOG_EVENTS_MAX, "an event must fit an empty tail");

struct tail_head {
	uint32_t seq;   /* the tail's number once sealed */
	uint16_t count; /* events in the tail */
	uint16_t total; /* events in the whole log */
	uint16_t skip;  /* events of the first chunk already dropped */
	uint16_t first; /* events in the first chunk; 0: there are no chunks */
};

static uint32_t be32_get(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void be32_put(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint16_t u16_get(const unsigned char *p)
{
	uint16_t n;
	memcpy(&n, p, 2);
	return n;
}

static void u16_put(unsigned char *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

/* Splits a tail record into its head and events (borrowed from v).
 * Returns 0 or MDB_CORRUPTED. */
static int tail_parse(MDB_val v, struct tail_head *h, MDB_val *events)
{
	if (v.mv_size < TAIL_HEAD || v.mv_size > TAIL_HEAD + LOG_EVENTS_MAX)
		return MDB_CORRUPTED;
	const unsigned char *p = v.mv_data;
	h->seq = be32_get(p);
	h->count = u16_get(p + 4);
	h->total = u16_get(p + 6);
	h->skip = u16_get(p + 8);
	h->first = u16_get(p + 10);
	if (h->first ? h->skip >= h->first : h->skip != 0)
		return MDB_CORRUPTED;
	events->mv_data = (void *)(p + TAIL_HEAD);
	events->mv_size = v.mv_size - TAIL_HEAD;
	return 0;
}

static void tail_head_put(unsigned char *p, const struct tail_head *h)
{
	be32_put(p, h->seq);
	u16_put(p + 4, h->count);
	u16_put(p + 6, h->total);
	u16_put(p + 8, h->skip);
	u16_put(p + 10, h->first);
}

/* Bytes of the first event in data[0..size), or 0 when it is cut short. */
static size_t event_size(const unsigned char *data, size_t size)
{
	if (size < EVENT_HEAD || size < EVENT_HEAD + (size_t)data[17])
		return 0;
	return EVENT_HEAD + (size_t)data[17];
}

static int store_code(int rc)
{
	return rc == MDB_CORRUPTED ? STORE_CORRUPT : STORE_ERROR;
}

/* The whole log of `key` whose tail is (h, tail): its chunks (through the
 * cursor c, on "event_chunks"), the skipped events left out, then the
 * tail. Borrowed from the transaction when there are no chunks, else
 * copied into buf. Returns 0, STORE_CORRUPT or STORE_ERROR. */
static int read_log(MDB_cursor *c, MDB_val key, const struct tail_head *h, MDB_val tail,
		    strbuf *buf, state_events *out)
{
	if (h->first == 0) { /* all in the tail */
		out->data = tail.mv_data;
		out->size = tail.mv_size;
		out->count = h->count;
		return 0;
	}
	MDB_val k = key, v;
	int rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
	if (rc == MDB_NOTFOUND)
		return STORE_CORRUPT; /* the tail says there are chunks */
	if (rc)
		return STORE_ERROR;
	sb_reset(buf);
	uint32_t count = 0, skip = h->skip;
	do {
		if (v.mv_size < CHUNK_HEAD)
			return STORE_CORRUPT;
		const unsigned char *data = (const unsigned char *)v.mv_data + CHUNK_HEAD;
		size_t size = v.mv_size - CHUNK_HEAD;
		uint32_t n = u16_get((const unsigned char *)v.mv_data + 4);
		if (skip >= n && skip > 0)
			return STORE_CORRUPT;
		for (n -= skip; skip > 0; skip--) {
			size_t len = event_size(data, size);
			if (len == 0)
				return STORE_CORRUPT;
			data += len;
			size -= len;
		}
		sb_add(buf, data, size);
		count += n;
	} while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP)) == 0);
	if (rc != MDB_NOTFOUND)
		return STORE_ERROR;
	sb_add(buf, tail.mv_data, tail.mv_size);
	out->data = (const unsigned char *)buf->buf;
	out->size = buf->len;
	out->count = count + h->count;
	return 0;
}

int state_events_get(state_txn *t, const char *id, size_t len, state_events *out)
{
	MDB_val k = { len, (void *)id }, v, tail;
	struct tail_head h;
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return 0;
	int rc = mdb_get(t->txn, t->s->tails, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc || (rc = tail_parse(v, &h, &tail)) != 0)
		return store_code(rc);
	return read_log(t->chunks, k, &h, tail, &t->buf, out);
}

/* The number of events in key's first chunk (0 when it has none), through
 * the cursor c on the chunks. */
static int first_chunk_count(MDB_cursor *c, MDB_val key, uint16_t *count)
{
	MDB_val k = key, v;
	int rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
	*count = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == 0 && v.mv_size < CHUNK_HEAD)
		return MDB_CORRUPTED;
	if (rc == 0)
		*count = u16_get((const unsigned char *)v.mv_data + 4);
	return rc;
}

/* Drops the oldest event of the log being written: the tail's events are
 * in buf after TAIL_HEAD, the chunks reached through c. */
static int drop_oldest(MDB_cursor *c, MDB_val key, struct tail_head *h, strbuf *buf)
{
	int rc = 0;
	if (h->first == 0) { /* the whole log is in the tail */
		unsigned char *events = (unsigned char *)buf->buf + TAIL_HEAD;
		size_t size = buf->len - TAIL_HEAD, len = event_size(events, size);
		if (len == 0)
			return MDB_CORRUPTED;
		memmove(events, events + len, size - len);
		sb_truncate(buf, buf->len - len);
		h->count--;
	} else if (++h->skip >= h->first) { /* the first chunk is all dropped */
		MDB_val k = key, v;
		h->skip = 0;
		if ((rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY)) != 0 ||
		    (rc = mdb_cursor_del(c, 0)) != 0 ||
		    (rc = first_chunk_count(c, key, &h->first)) != 0)
			return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
	}
	h->total--;
	return rc;
}

/* Appends one event to the customer's log inside txn (c: a cursor on the
 * chunks), dropping the oldest beyond STATE_MAX_EVENTS. */
static int append_event(state *s, MDB_txn *txn, MDB_cursor *c, const event_in *e, strbuf *buf)
{
	MDB_val key = { e->customer_len, (void *)e->customer }, v, old = { 0, NULL };
	struct tail_head h = { 0, 0, 0, 0, 0 };
	unsigned char rec[EVENT_HEAD + 255] = { 0 };
	size_t rlen = EVENT_HEAD + e->item_len;
	memcpy(rec, &e->ts, 8);
	memcpy(rec + 8, &e->quantity, 4);
	memcpy(rec + 12, &e->price, 4);
	rec[16] = e->type;
	rec[17] = (unsigned char)e->item_len;
	/* bytes 18..21 reserved */
	memcpy(rec + EVENT_HEAD, e->item, e->item_len);

	int rc = mdb_get(txn, s->tails, &key, &v);
	if (rc == 0)
		rc = tail_parse(v, &h, &old);
	else if (rc == MDB_NOTFOUND)
		rc = 0;
	if (rc)
		return rc;
	if (old.mv_size + rlen > LOG_EVENTS_MAX) { /* seal the tail */
		unsigned char chunk[CHUNK_MAX];
		be32_put(chunk, h.seq);
		u16_put(chunk + 4, h.count);
		u16_put(chunk + 6, 0);
		memcpy(chunk + CHUNK_HEAD, old.mv_data, old.mv_size);
		MDB_val cv = { CHUNK_HEAD + old.mv_size, chunk };
		if ((rc = mdb_put(txn, s->chunks, &key, &cv, 0)) != 0)
			return rc;
		if (h.first == 0)
			h.first = h.count;
		h.seq++;
		h.count = 0;
		old.mv_size = 0; /* and old.mv_data may be stale: not read again */
	}
	static const unsigned char head_room[TAIL_HEAD];
	sb_reset(buf);
	sb_add(buf, head_room, TAIL_HEAD); /* written last, when h is final */
	if (old.mv_size)
		sb_add(buf, old.mv_data, old.mv_size);
	sb_add(buf, rec, rlen);
	h.count++;
	h.total++;
	if (h.total > STATE_MAX_EVENTS && (rc = drop_oldest(c, key, &h, buf)) != 0)
		return rc;
	tail_head_put((unsigned char *)buf->buf, &h);
	MDB_val nv = { buf->len, buf->buf };
	return mdb_put(txn, s->tails, &key, &nv, 0);
}

/* Deletes a customer's whole log (erasure). */
static int delete_log(state *s, MDB_txn *txn, MDB_val key)
{
	int rc = mdb_del(txn, s->chunks, &key, NULL);
	if (rc == 0 || rc == MDB_NOTFOUND)
		rc = mdb_del(txn, s->tails, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Format 2 kept every event in chunks, the last one holding the log's
 * size: the last chunk of each customer becomes their tail. */
static int convert_v2(state *s, MDB_txn *txn)
{
	MDB_cursor *c = NULL;
	strbuf id = STRBUF_INIT, tail = STRBUF_INIT;
	int rc = mdb_cursor_open(txn, s->chunks, &c);
	MDB_val k, v;
	if (rc == 0)
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (rc == 0) {
		if ((rc = mdb_cursor_get(c, &k, &v, MDB_LAST_DUP)) != 0)
			break;
		if (v.mv_size < CHUNK_HEAD) {
			rc = MDB_CORRUPTED;
			break;
		}
		const unsigned char *p = v.mv_data;
		struct tail_head h = { be32_get(p), u16_get(p + 4), u16_get(p + 6), 0, 0 };
		sb_reset(&tail);
		static const unsigned char head_room[TAIL_HEAD];
		sb_add(&tail, head_room, TAIL_HEAD); /* the head is written below */
		sb_add(&tail, p + CHUNK_HEAD, v.mv_size - CHUNK_HEAD);
		sb_reset(&id);
		sb_add(&id, k.mv_data, k.mv_size);
		MDB_val key = { id.len, id.buf };
		if ((rc = mdb_cursor_del(c, 0)) != 0 ||
		    (rc = first_chunk_count(c, key, &h.first)) != 0)
			break;
		tail_head_put((unsigned char *)tail.buf, &h);
		MDB_val nv = { tail.len, tail.buf };
		if ((rc = mdb_put(txn, s->tails, &key, &nv, 0)) != 0)
			break;
		/* Onwards from the first key after this customer's. */
		k = key;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size == id.len && memcmp(k.mv_data, id.buf, id.len) == 0)
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_NODUP);
	}
	if (c)
		mdb_cursor_close(c);
	sb_release(&id);
	sb_release(&tail);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Format 1 kept a customer's whole log in one record of the "events"
 * table: rewrite every log as chunks, then drop the old table. */
static int convert_v1(state *s, MDB_txn *txn)
{
	MDB_dbi old;
	MDB_cursor *rd = NULL, *wr = NULL;
	strbuf buf = STRBUF_INIT, id = STRBUF_INIT;
	int rc = mdb_dbi_open(txn, "events", 0, &old);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc || (rc = mdb_cursor_open(txn, old, &rd)) != 0 ||
	    (rc = mdb_cursor_open(txn, s->chunks, &wr)) != 0)
		goto out;
	MDB_val k, v;
	for (rc = mdb_cursor_get(rd, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(rd, &k, &v, MDB_NEXT)) {
		if (v.mv_size < 8 || k.mv_size == 0)
			continue; /* unreadable: as format 1 treated it, no log */
		state_events ev;
		memcpy(&ev.count, v.mv_data, 4);
		ev.data = (const unsigned char *)v.mv_data + 8;
		ev.size = v.mv_size - 8;
		sb_reset(&id);
		sb_add(&id, k.mv_data, k.mv_size);
		event_view e;
		size_t pos = 0;
		while (state_events_next(&ev, &pos, &e) == 0) {
			event_in in = { id.buf, id.len, e.item, e.item_len, e.ts, e.quantity, e.price,
					e.type, false };
			if ((rc = append_event(s, txn, wr, &in, &buf)) != 0)
				goto out;
		}
	}
	if (rc == MDB_NOTFOUND) {
		mdb_cursor_close(rd);
		rd = NULL;
		rc = mdb_drop(txn, old, 1);
	}
out:
	if (rd)
		mdb_cursor_close(rd);
	if (wr)
		mdb_cursor_close(wr);
	sb_release(&buf);
	sb_release(&id);
	return rc;
}

/* A read-only open needs the current format (serve converts older ones). */
static int readonly_version(state *s, MDB_txn *txn, const char *path, strbuf *err)
{
	MDB_val k = { 14, "format_version" }, v;
	uint32_t ver = 0;
	if (mdb_get(txn, s->meta, &k, &v) == 0 && v.mv_size == sizeof(ver))
		memcpy(&ver, v.mv_data, sizeof(ver));
	if (ver == STATE_FORMAT_VERSION)
		return 0;
	sb_addf(err, "state %s has format version %u; this build reads %u (start `shopkeeper "
		     "serve` on it once to convert it)", path, ver, STATE_FORMAT_VERSION);
	return MDB_INCOMPATIBLE;
}

static int add_counter(state *s, MDB_txn *txn, const char *name, uint64_t delta)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	uint64_t val = 0;
	if (mdb_get(txn, s->meta, &k, &v) == 0 && v.mv_size == sizeof(val))
		memcpy(&val, v.mv_data, sizeof(val));
	val += delta;
	v.mv_size = sizeof(val);
	v.mv_data = &val;
	return mdb_put(txn, s->meta, &k, &v, 0);
}

/* Doubles the map. No reader may be inside a transaction meanwhile. */
static int grow_map(state *s)
{
	pthread_rwlock_wrlock(&s->remap_lock);
	uint64_t size = s->map_size * 2;
	int rc = mdb_env_set_mapsize(s->env, (size_t)size);
	if (rc == 0)
		s->map_size = size;
	pthread_rwlock_unlock(&s->remap_lock);
	return rc;
}

int state_commit(state *s, const state_write *writes, uint32_t n, strbuf *err)
{
	strbuf buf = STRBUF_INIT;
	int rc;
	for (int attempt = 0;; attempt++) {
		MDB_txn *txn;
		uint64_t total = 0, unknown = 0;
		MDB_cursor *cur = NULL; /* closed with the write txn */
		/* A write transaction uses the map too: keep growth out meanwhile
		 * (only this thread writes, so it cannot wait on itself). */
		pthread_rwlock_rdlock(&s->remap_lock);
		if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
			pthread_rwlock_unlock(&s->remap_lock);
			break;
		}
		rc = mdb_cursor_open(txn, s->chunks, &cur);
		for (uint32_t b = 0; rc == 0 && b < n; b++) {
			const state_write *w = &writes[b];
			if (!w->events) {
				rc = apply_flags(s, txn, w->customer, w->customer_len, w->set, w->clear);
				continue;
			}
			for (uint32_t i = 0; rc == 0 && i < w->n; i++) {
				const event_in *e = &w->events[i];
				/* Checked when the request was taken, but an erasure
				 * may have been committed since. */
				if (erased(s, txn, e->customer, e->customer_len))
					continue;
				rc = append_event(s, txn, cur, e, &buf);
				total++;
				unknown += !e->known_item;
			}
		}
		if (rc == 0 && total)
			rc = add_counter(s, txn, "events", total);
		if (rc == 0 && unknown)
			rc = add_counter(s, txn, "unknown_items", unknown);
		if (rc == 0) {
			rc = mdb_txn_commit(txn); /* synchronous: one fsync for all */
		} else {
			mdb_txn_abort(txn);
		}
		pthread_rwlock_unlock(&s->remap_lock);
		if (rc != MDB_MAP_FULL || attempt >= 30)
			break;
		if ((rc = grow_map(s)) != 0)
			break;
	}
	sb_release(&buf);
	if (rc) {
		sb_addf(err, "state: cannot write: %s", mdb_strerror(rc));
		return STORE_ERROR;
	}
	return 0;
}

int state_write_events(state *s, const event_in *events, uint32_t n, strbuf *err)
{
	const state_write w = { .events = events, .n = n };
	return state_commit(s, &w, 1, err);
}

struct state_iter {
	MDB_cursor *cur;    /* on the tails: one per customer with a log */
	MDB_cursor *chunks; /* on the chunks */
	const char *after;
	size_t after_len;
	int started;
	strbuf buf; /* the current customer's log joined */
};

int state_iter_begin(state_txn *t, const char *after, size_t after_len, state_iter **out)
{
	state_iter *it = xcalloc(1, sizeof(*it));
	if (mdb_cursor_open(t->txn, t->s->tails, &it->cur) != 0 ||
	    mdb_cursor_open(t->txn, t->s->chunks, &it->chunks) != 0) {
		state_iter_end(it);
		return STORE_ERROR;
	}
	it->after = after;
	it->after_len = after_len;
	*out = it;
	return 0;
}

int state_iter_next(state_iter *it, const char **id, size_t *len, state_events *ev)
{
	MDB_val k, v, tail;
	struct tail_head h;
	int rc;
	if (!it->started) {
		it->started = 1;
		if (it->after && it->after_len) {
			k.mv_size = it->after_len;
			k.mv_data = (void *)it->after;
			rc = mdb_cursor_get(it->cur, &k, &v, MDB_SET_RANGE);
			if (rc == 0 && k.mv_size == it->after_len &&
			    memcmp(k.mv_data, it->after, it->after_len) == 0)
				rc = mdb_cursor_get(it->cur, &k, &v, MDB_NEXT);
		} else {
			rc = mdb_cursor_get(it->cur, &k, &v, MDB_FIRST);
		}
	} else {
		rc = mdb_cursor_get(it->cur, &k, &v, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	if (rc || (rc = tail_parse(v, &h, &tail)) != 0)
		return store_code(rc);
	*id = k.mv_data;
	*len = k.mv_size;
	return read_log(it->chunks, k, &h, tail, &it->buf, ev);
}

void state_iter_end(state_iter *it)
{
	if (!it)
		return;
	if (it->cur)
		mdb_cursor_close(it->cur);
	if (it->chunks)
		mdb_cursor_close(it->chunks);
	sb_release(&it->buf);
	free(it);
}

int state_get_counters(state_txn *t, state_counters *out)
{
	memset(out, 0, sizeof(*out));
	const char *names[2] = { "events", "unknown_items" };
	uint64_t *vals[2] = { &out->events, &out->unknown_items };
	for (int i = 0; i < 2; i++) {
		MDB_val k = { strlen(names[i]), (void *)names[i] }, v;
		if (mdb_get(t->txn, t->s->meta, &k, &v) == 0 && v.mv_size == 8)
			memcpy(vals[i], v.mv_data, 8);
	}
	MDB_envinfo ei;
	MDB_stat st;
	if (mdb_env_info(t->s->env, &ei) == 0 && mdb_env_stat(t->s->env, &st) == 0) {
		out->map_size = ei.me_mapsize;
		out->map_used = (uint64_t)(ei.me_last_pgno + 1) * st.ms_psize;
	}
	return 0;
}

int state_open_readonly(const char *dir, state **out, strbuf *err)
{
	state *s = xcalloc(1, sizeof(*s));
	strbuf path = STRBUF_INIT;
	MDB_txn *txn = NULL;
	int rc;
	pthread_rwlock_init(&s->remap_lock, NULL);
	sb_addf(&path, "%s/%s", dir, STATE_FILE);
	if (access(path.buf, R_OK) != 0) {
		sb_addf(err, "no state in %s (%s: %s)", dir, path.buf, strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&s->env)) != 0) {
		lmdb_fail(err, "state: create environment", rc);
		goto fail;
	}
	mdb_env_set_maxdbs(s->env, 16);
	mdb_env_set_maxreaders(s->env, 512);
	if ((rc = mdb_env_open(s->env, path.buf, MDB_NOSUBDIR | MDB_NOTLS | MDB_RDONLY, 0644)) != 0) {
		sb_addf(err, "cannot open state %s: %s", path.buf, mdb_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", 0, &s->meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "customer_flags", 0, &s->flags)) != 0 ||
	    (rc = readonly_version(s, txn, path.buf, err)) != 0 ||
	    (rc = mdb_dbi_open(txn, STATE_CHUNKS_DB, MDB_DUPSORT, &s->chunks)) != 0 ||
	    (rc = mdb_dbi_open(txn, STATE_TAILS_DB, 0, &s->tails)) != 0 ||
	    (rc = mdb_txn_commit(txn)) != 0) {
		if (txn && rc != 0)
			mdb_txn_abort(txn);
		lmdb_fail(err, "state: open tables", rc);
		goto fail;
	}
	sb_release(&path);
	*out = s;
	return 0;
fail:
	sb_release(&path);
	state_close(s);
	return STORE_ERROR;
}

/* ---- sent log ----------------------------------------------------------- */

#define SENT_MAX_PER_CUSTOMER 200
#define SENT_FLUSH_EVERY 1000

struct sent_log {
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *txn; /* open write transaction, or NULL */
	unsigned pending;
	strbuf buf;
};

int sent_log_open(const char *dir, sent_log **out, strbuf *err)
{
	sent_log *l = xcalloc(1, sizeof(*l));
	strbuf path = STRBUF_INIT;
	MDB_txn *txn = NULL;
	int rc;
	sb_addf(&path, "%s/sent.mdb", dir);
	if ((rc = mdb_env_create(&l->env)) != 0)
		goto fail;
	mdb_env_set_mapsize(l->env, (size_t)1 << 34); /* virtual; grows on disk as used */
	mdb_env_set_maxdbs(l->env, 2);
	if ((rc = mdb_env_open(l->env, path.buf, MDB_NOSUBDIR, 0644)) != 0)
		goto fail;
	if ((rc = mdb_txn_begin(l->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "sent", MDB_CREATE, &l->dbi)) != 0 ||
	    (rc = mdb_txn_commit(txn)) != 0) {
		if (txn && rc)
			mdb_txn_abort(txn);
		goto fail;
	}
	sb_release(&path);
	*out = l;
	return 0;
fail:
	sb_addf(err, "cannot open the sent log %s: %s", path.buf, mdb_strerror(rc));
	sb_release(&path);
	if (l->env)
		mdb_env_close(l->env);
	free(l);
	return STORE_ERROR;
}

/* Record: repeated (i64 ts, u8 len, item bytes). */
int sent_log_each(sent_log *l, const char *customer, size_t len,
		  void (*fn)(const char *item, size_t item_len, int64_t ts, void *arg), void *arg)
{
	MDB_txn *txn = l->txn;
	MDB_val k = { len, (void *)customer }, v;
	int rc = 0;
	if (!txn && mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn) != 0)
		return STORE_ERROR;
	if (mdb_get(txn, l->dbi, &k, &v) == 0) {
		const unsigned char *p = v.mv_data, *end = p + v.mv_size;
		while (end - p >= 9) {
			int64_t ts;
			memcpy(&ts, p, 8);
			size_t n = p[8];
			if ((size_t)(end - p - 9) < n) {
				rc = STORE_CORRUPT;
				break;
			}
			fn((const char *)p + 9, n, ts, arg);
			p += 9 + n;
		}
	}
	if (txn != l->txn)
		mdb_txn_abort(txn);
	return rc;
}

int sent_log_add(sent_log *l, const char *customer, size_t len, const char *const *items,
		 const size_t *item_lens, uint32_t n, int64_t ts, strbuf *err)
{
	int rc;
	if (!l->txn && (rc = mdb_txn_begin(l->env, NULL, 0, &l->txn)) != 0)
		return lmdb_fail(err, "sent log: begin", rc);
	MDB_val k = { len, (void *)customer }, v;
	sb_reset(&l->buf);
	if (mdb_get(l->txn, l->dbi, &k, &v) == 0)
		sb_add(&l->buf, v.mv_data, v.mv_size);
	for (uint32_t i = 0; i < n; i++) {
		unsigned char head[9];
		size_t il = MIN(item_lens[i], (size_t)255);
		memcpy(head, &ts, 8);
		head[8] = (unsigned char)il;
		sb_add(&l->buf, head, 9);
		sb_add(&l->buf, items[i], il);
	}
	/* Keep the newest SENT_MAX_PER_CUSTOMER: drop records from the front. */
	size_t count = 0, off = 0;
	for (size_t p = 0; p + 9 <= l->buf.len; p += 9 + (unsigned char)l->buf.buf[p + 8])
		count++;
	while (count > SENT_MAX_PER_CUSTOMER) {
		off += 9 + (unsigned char)l->buf.buf[off + 8];
		count--;
	}
	v.mv_size = l->buf.len - off;
	v.mv_data = l->buf.buf + off;
	if ((rc = mdb_put(l->txn, l->dbi, &k, &v, 0)) != 0)
		return lmdb_fail(err, "sent log: write", rc);
	if (++l->pending >= SENT_FLUSH_EVERY)
		return sent_log_flush(l, err);
	return 0;
}

int sent_log_flush(sent_log *l, strbuf *err)
{
	if (!l->txn)
		return 0;
	int rc = mdb_txn_commit(l->txn);
	l->txn = NULL;
	l->pending = 0;
	if (rc)
		return lmdb_fail(err, "sent log: commit", rc);
	return 0;
}

void sent_log_close(sent_log *l)
{
	if (!l)
		return;
	if (l->txn)
		mdb_txn_abort(l->txn);
	mdb_env_close(l->env);
	sb_release(&l->buf);
	free(l);
}
