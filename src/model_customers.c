/*
 * model_customers: the model's customer records: their decoder, the index
 * built over them at open, model_customer_get and the walk in id order.
 * See model.h; model_internal.h has the index's fields.
 *
 * Why an index: the customer route looked every customer up with
 * mdb_get, a B-tree descent with a binary search of string keys on each
 * page: 2,000 of the route's ~30,000 instructions a request (callgrind,
 * Online Retail, 4,372 customers; more levels and cache misses on a big
 * model), 7% of its CPU samples in LMDB where the item route, which
 * finds items in an index in memory, had 2%. The model never changes
 * while it is open and every record stays at one place in the map, so a
 * table of where each record is, filled once by walking the customers,
 * answers exactly what mdb_get would.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "util.h"

/* A slot: where a customer's id and record are in the map. LMDB does not
 * say where its map starts (mdb_env_info's address is only that of a
 * fixed map), so places are kept as distances from an anchor, a pointer
 * into the map, plus the map's size: never 0 (0 is an empty slot) and
 * below 2^48 for any map under 128 TiB. 16 bytes, so one cache line holds
 * four and a probe past a neighbour's slot rarely costs another miss. */
struct model_cslot {
	uint64_t id;  /* place << 16 | the id's length (LMDB keys: <= 511 bytes) */
	uint64_t rec; /* place << 16 | 16 bits of the id's hash, checked first */
};

#define CSLOT_SHIFT 16
#define CSLOT_LOW 0xffffu
/* Places must fit the 48 bits above the low 16. */
#define CSLOT_MAX_PLACE (1ull << (64 - CSLOT_SHIFT))

static uint64_t place_of(const model *m, const void *p)
{
	return (uint64_t)((const unsigned char *)p - m->map_anchor) + m->map_size;
}

static const unsigned char *at_place(const model *m, uint64_t place)
{
	return m->map_anchor + (ptrdiff_t)(place - m->map_size);
}

/* Decodes a record whose size is known (from LMDB, or computed from a
 * record checked at open). */
static int decode_customer(const void *data, size_t size, model_customer *out)
{
	if (size < sizeof(customer_summary))
		return STORE_CORRUPT;
	memcpy(&out->sum, data, sizeof(out->sum));
	uint64_t need = sizeof(customer_summary) + (uint64_t)out->sum.n_hist * sizeof(history_entry) +
			out->sum.attrs_len;
	if (need != size)
		return STORE_CORRUPT;
	out->n_hist = out->sum.n_hist;
	out->entries = (const unsigned char *)data + sizeof(customer_summary);
	out->attrs_len = out->sum.attrs_len;
	out->attrs = (const char *)out->entries + (size_t)out->n_hist * sizeof(history_entry);
	return 0;
}

/* An id's hash (util.h: FNV-1a mixed, so that similar ids start their
 * searches apart). */
static uint64_t cust_hash(const char *id, size_t len)
{
	return util_id_hash(id, len);
}

/* The slot id's search starts at: the hash's high 32 bits scaled to the
 * table (no power of two needed, so the table is sized to the count). */
static uint64_t cslot_home(uint64_t h, uint64_t n_slots)
{
	return ((h >> 32) * n_slots) >> 32;
}

/* Whether the customers can be indexed: places within 48 bits and a
 * table of at most 2^32 slots (cslot_home). Else lookups stay B-tree
 * descents, as before; nothing is refused. */
static bool indexable(const model *m, uint64_t n)
{
	return m->map_size < CSLOT_MAX_PLACE / 2 && n <= (UINT32_MAX / 3) * 2;
}

int model_index_customers(model *m, const char *path, strbuf *err)
{
	MDB_envinfo ei;
	MDB_stat st;
	MDB_cursor *cur = NULL;
	int rc;
	if (mdb_env_info(m->env, &ei) != 0 || mdb_stat(m->blob_txn, m->customers, &st) != 0) {
		sb_addf(err, "%s: cannot read the customer table's size", path);
		return STORE_ERROR;
	}
	m->map_size = ei.me_mapsize;
	if (!indexable(m, st.ms_entries) || st.ms_entries == 0)
		return 0;
	/* Two thirds full at most: a successful lookup probes 2 slots on
	 * average, a failed one 5 (linear probing), mostly in one line. */
	uint64_t n_slots = st.ms_entries + st.ms_entries / 2 + 1;
	struct model_cslot *slots = xcalloc(n_slots, sizeof(*slots));
	if ((rc = mdb_cursor_open(m->blob_txn, m->customers, &cur)) != 0) {
		free(slots);
		return store_lmdb_fail(err, "model: customers", rc);
	}
	MDB_val k, v;
	uint64_t n = 0;
	int ret = STORE_CORRUPT;
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		model_customer c;
		if (!m->map_anchor)
			m->map_anchor = k.mv_data;
		/* Checked once here; lookups decode without a size (the header's
		 * "validate once, then trust"). */
		if (decode_customer(v.mv_data, v.mv_size, &c) != 0) {
			sb_addf(err, "%s: the record of customer %.*s is corrupt; retrain", path,
				(int)(k.mv_size < 64 ? k.mv_size : 64), (const char *)k.mv_data);
			goto out;
		}
		if (++n > st.ms_entries || k.mv_size > CSLOT_LOW) {
			sb_addf(err, "%s: the customer table is not what LMDB said it holds", path);
			goto out;
		}
		uint64_t h = cust_hash(k.mv_data, k.mv_size), s = cslot_home(h, n_slots);
		while (slots[s].id)
			s = s + 1 < n_slots ? s + 1 : 0;
		slots[s].id = place_of(m, k.mv_data) << CSLOT_SHIFT | k.mv_size;
		slots[s].rec = place_of(m, v.mv_data) << CSLOT_SHIFT | (h & CSLOT_LOW);
	}
	if (rc != MDB_NOTFOUND) {
		ret = store_lmdb_fail(err, "model: customers", rc);
		goto out;
	}
	m->cslots = slots;
	m->n_cslots = n_slots;
	slots = NULL;
	ret = 0;
out:
	mdb_cursor_close(cur);
	free(slots);
	return ret;
}

/* The index's answer: as mdb_get's, from the slots. */
static int find_customer(const model *m, const char *id, size_t len, model_customer *out)
{
	uint64_t h = cust_hash(id, len), tag = h & CSLOT_LOW;
	uint64_t s = cslot_home(h, m->n_cslots);
	for (;; s = s + 1 < m->n_cslots ? s + 1 : 0) {
		const struct model_cslot *slot = &m->cslots[s];
		if (!slot->id)
			return STORE_NOTFOUND;
		if ((slot->rec & CSLOT_LOW) != tag || (slot->id & CSLOT_LOW) != len)
			continue;
		/* Two cache misses into the map: the record's starts before the
		 * compare waits for the id's. */
		const unsigned char *rec = at_place(m, slot->rec >> CSLOT_SHIFT);
		__builtin_prefetch(rec);
		if (memcmp(at_place(m, slot->id >> CSLOT_SHIFT), id, len) != 0)
			continue;
		customer_summary sum;
		memcpy(&sum, rec, sizeof(sum));
		/* the size the record was checked to have at open */
		size_t size = sizeof(sum) + (size_t)sum.n_hist * sizeof(history_entry) + sum.attrs_len;
		int rc = decode_customer(rec, size, out);
		assert(rc == 0);
		return rc;
	}
}

int model_customer_get(model_txn *t, const char *id, size_t len, model_customer *out)
{
	const model *m = model_txn_model(t);
	if (len == 0)
		return STORE_NOTFOUND; /* LMDB holds no empty key, and refuses to look one up */
	if (m->cslots)
		return find_customer(m, id, len, out);
	MDB_val k = { len, (void *)id }, v;
	int rc = mdb_get(model_txn_lmdb(t), m->customers, &k, &v);
	if (rc)
		return store_code(rc);
	return decode_customer(v.mv_data, v.mv_size, out);
}

void model_customers_free(model *m)
{
	free(m->cslots);
	m->cslots = NULL;
	m->n_cslots = 0;
}

/* ---- the walk in id order ----------------------------------------------------- */

struct model_iter {
	store_walk walk; /* on the customers */
};

int model_iter_begin(model_txn *t, const char *after, size_t after_len, model_iter **out)
{
	model_iter *it = xcalloc(1, sizeof(*it));
	if (store_walk_open(&it->walk, model_txn_lmdb(t), model_txn_model(t)->customers, after,
			    after_len) != 0) {
		free(it);
		return STORE_ERROR;
	}
	*out = it;
	return 0;
}

int model_iter_next(model_iter *it, const char **id, size_t *len, model_customer *c)
{
	MDB_val k, v;
	int rc = store_walk_next(&it->walk, &k, &v);
	if (rc)
		return store_code(rc);
	*id = k.mv_data;
	*len = k.mv_size;
	return decode_customer(v.mv_data, v.mv_size, c);
}

void model_iter_end(model_iter *it)
{
	if (!it)
		return;
	mdb_cursor_close(it->walk.cur);
	free(it);
}
