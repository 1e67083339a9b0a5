/*
 * store: models and state on LMDB. See store.h for the layout.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <lmdb.h>
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
		{ "neighbors", &w->neighbors, MDB_INTEGERKEY },
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

int model_writer_put_items(model_writer *w, const char *const *ids, const size_t *lens,
			   uint32_t count, const float *popularity, strbuf *err)
{
	/* ids blob: count, offsets[count+1], bytes */
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < count; i++)
		bytes += lens[i];
	if (bytes > UINT32_MAX) {
		sb_adds(err, "model: item ids take more than 4 GiB");
		return STORE_ERROR;
	}
	size_t head = 4 + 4 * ((size_t)count + 1);
	unsigned char *blob = xmalloc(head + bytes);
	uint32_t off = 0;
	memcpy(blob, &count, 4);
	for (uint32_t i = 0; i < count; i++) {
		memcpy(blob + 4 + 4 * (size_t)i, &off, 4);
		memcpy(blob + head + off, ids[i], lens[i]);
		off += (uint32_t)lens[i];
	}
	memcpy(blob + 4 + 4 * (size_t)count, &off, 4);
	int rc = writer_put(w, w->items, "ids", 3, blob, head + bytes, 0, err);
	free(blob);
	if (rc)
		return rc;
	if ((rc = writer_put(w, w->items, "popularity", 10, popularity,
			     (size_t)count * sizeof(float), 0, err)))
		return rc;

	/* Popular list: every item, most customers first, ties by index. */
	neighbor *pop = xmallocarray(count ? count : 1, sizeof(*pop));
	for (uint32_t i = 0; i < count; i++)
		pop[i] = (neighbor){ i, popularity[i] };
	qsort(pop, count, sizeof(*pop), pair_cmp);
	rc = writer_put(w, w->items, "popular", 7, pop, (size_t)count * sizeof(*pop), 0, err);
	free(pop);
	if (rc)
		return rc;

	for (uint32_t i = 0; i < count; i++)
		if ((rc = writer_put(w, w->item_index, ids[i], lens[i], &i, sizeof(i), 0, err)))
			return rc;
	return 0;
}

int model_writer_put_neighbors(model_writer *w, uint32_t item, const neighbor *list, uint32_t n,
			       strbuf *err)
{
	unsigned int key = item; /* MDB_INTEGERKEY wants a native unsigned int */
	return writer_put(w, w->neighbors, &key, sizeof(key), list, (size_t)n * sizeof(*list),
			  MDB_APPEND, err);
}

int model_writer_put_customer(model_writer *w, const char *id, size_t len,
			      const history_entry *hist, uint32_t n, strbuf *err)
{
	size_t size = 8 + (size_t)n * sizeof(*hist);
	MDB_val key = { len, (void *)id }, val = { size, NULL };
	/* MDB_RESERVE: LMDB hands us the space, we write straight into it. */
	int rc = mdb_put(w->txn, w->customers, &key, &val, MDB_RESERVE);
	if (rc)
		return lmdb_fail(err, "model: write customer", rc);
	uint32_t head[2] = { n, 0 };
	memcpy(val.mv_data, head, 8);
	memcpy((unsigned char *)val.mv_data + 8, hist, (size_t)n * sizeof(*hist));
	return writer_tick(w, err);
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
	const unsigned char *ids; /* the "ids" blob */
	const unsigned char *popularity;
	const unsigned char *popular;
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
	if (m->info.format_version != MODEL_FORMAT_VERSION) {
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
	m->info.n_items = (uint32_t)json_integer_value(items);
	m->info.n_customers = (uint32_t)json_integer_value(customers);
	m->info.neighbors = (uint32_t)json_integer_value(k);
	m->info.meta_json = m->meta_json;
	ret = 0;
out:
	json_decref(root);
	return ret;
}

/* Checks the item tables against the counts in the meta record. */
static int check_items(model *m, MDB_val ids, MDB_val pop, MDB_val popular, const char *path,
		       strbuf *err)
{
	uint32_t n = m->info.n_items, count;
	size_t head = 4 + 4 * ((size_t)n + 1);
	if (ids.mv_size < head) {
		sb_addf(err, "%s: item table truncated", path);
		return STORE_CORRUPT;
	}
	memcpy(&count, ids.mv_data, 4);
	const unsigned char *b = ids.mv_data;
	uint32_t prev = 0, end;
	memcpy(&end, b + 4 + 4 * (size_t)n, 4);
	if (count != n || head + end != ids.mv_size) {
		sb_addf(err, "%s: item table does not match the meta record", path);
		return STORE_CORRUPT;
	}
	for (uint32_t i = 0; i <= n; i++) {
		uint32_t off;
		memcpy(&off, b + 4 + 4 * (size_t)i, 4);
		if (off < prev || off > end) {
			sb_addf(err, "%s: item table offsets are corrupt", path);
			return STORE_CORRUPT;
		}
		prev = off;
	}
	if (pop.mv_size != (size_t)n * sizeof(float) || popular.mv_size != (size_t)n * 8) {
		sb_addf(err, "%s: popularity tables do not match the item count", path);
		return STORE_CORRUPT;
	}
	for (uint32_t i = 0; i < n; i++) {
		neighbor nb = model_pair_at(popular.mv_data, i);
		if (nb.item >= n) {
			sb_addf(err, "%s: popular list names item %u of %u", path, nb.item, n);
			return STORE_CORRUPT;
		}
	}
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

	/* Table handles opened in a read transaction become shared on commit. */
	if ((rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn)) != 0) {
		lmdb_fail(err, "model: begin", rc);
		goto fail;
	}
	MDB_dbi meta, items;
	if ((rc = mdb_dbi_open(txn, "meta", 0, &meta)) || (rc = mdb_dbi_open(txn, "items", 0, &items)) ||
	    (rc = mdb_dbi_open(txn, "item_index", 0, &m->item_index)) ||
	    (rc = mdb_dbi_open(txn, "neighbors", MDB_INTEGERKEY, &m->neighbors)) ||
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
	MDB_val v, ids, pop, popular;
	if (get_blob(m->blob_txn, meta, "meta", &v) != 0 || v.mv_size == 0 ||
	    ((const char *)v.mv_data)[v.mv_size - 1] != '\0') {
		sb_addf(err, "%s: no meta record", path.buf);
		ret = STORE_CORRUPT;
		goto fail;
	}
	m->meta_json = xstrndup(v.mv_data, v.mv_size - 1);
	if ((ret = parse_meta(m, path.buf, err)) != 0)
		goto fail;
	if (get_blob(m->blob_txn, items, "ids", &ids) || get_blob(m->blob_txn, items, "popularity", &pop) ||
	    get_blob(m->blob_txn, items, "popular", &popular)) {
		sb_addf(err, "%s: item tables missing", path.buf);
		ret = STORE_CORRUPT;
		goto fail;
	}
	if ((ret = check_items(m, ids, pop, popular, path.buf, err)) != 0)
		goto fail;
	m->ids = ids.mv_data;
	m->popularity = pop.mv_data;
	m->popular = popular.mv_data;
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
	free(m->meta_json);
	free(m);
}

const model_info *model_get_info(const model *m)
{
	return &m->info;
}

const char *model_item_id(const model *m, uint32_t idx, size_t *len)
{
	uint32_t n = m->info.n_items, a, b;
	memcpy(&a, m->ids + 4 + 4 * (size_t)idx, 4);
	memcpy(&b, m->ids + 4 + 4 * ((size_t)idx + 1), 4);
	*len = b - a;
	return (const char *)m->ids + 4 + 4 * ((size_t)n + 1) + a;
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
	MDB_val k = { len, (void *)id }, v;
	int rc = mdb_get(t->txn, t->m->item_index, &k, &v);
	if (rc == MDB_NOTFOUND)
		return STORE_NOTFOUND;
	if (rc)
		return STORE_ERROR;
	if (v.mv_size != sizeof(uint32_t))
		return STORE_CORRUPT;
	memcpy(idx, v.mv_data, sizeof(uint32_t));
	return *idx < t->m->info.n_items ? 0 : STORE_CORRUPT;
}

int model_neighbors(model_txn *t, uint32_t idx, model_pairs *out)
{
	unsigned int key = idx;
	MDB_val k = { sizeof(key), &key }, v;
	int rc = mdb_get(t->txn, t->m->neighbors, &k, &v);
	out->data = NULL;
	out->n = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return STORE_ERROR;
	if (v.mv_size % sizeof(neighbor) != 0 || v.mv_size / sizeof(neighbor) > t->m->info.neighbors)
		return STORE_CORRUPT;
	out->data = v.mv_data;
	out->n = (uint32_t)(v.mv_size / sizeof(neighbor));
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
	uint32_t n;
	if (v.mv_size < 8)
		return STORE_CORRUPT;
	memcpy(&n, v.mv_data, 4);
	if ((v.mv_size - 8) / sizeof(history_entry) != n || (v.mv_size - 8) % sizeof(history_entry))
		return STORE_CORRUPT;
	out->n_hist = n;
	out->entries = (const unsigned char *)v.mv_data + 8;
	return 0;
}

/* ---- state -------------------------------------------------------------- */

struct state {
	MDB_env *env;
	MDB_dbi meta;
};

#define STATE_FILE "state.mdb"
#define STATE_FORMAT_VERSION 1u
#define STATE_INITIAL_MAP (64ull << 20)

int state_open(const char *dir, state **out, strbuf *err)
{
	state *s = xcalloc(1, sizeof(*s));
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
	mdb_env_set_mapsize(s->env, STATE_INITIAL_MAP);
	mdb_env_set_maxdbs(s->env, 16);
	mdb_env_set_maxreaders(s->env, 512);
	rc = mdb_env_open(s->env, path.buf, MDB_NOSUBDIR | MDB_NOTLS, 0644);
	if (rc) {
		sb_addf(err, "cannot open state %s: %s", path.buf, mdb_strerror(rc));
		goto fail;
	}
	int dead = 0;
	mdb_reader_check(s->env, &dead); /* slots of a killed process */

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0) {
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
		if (ver != STATE_FORMAT_VERSION) {
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
	free(s);
}
