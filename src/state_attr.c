/*
 * state_attr: attribution's records in the state (state.h, "attribution").
 * Everything here runs inside the caller's write transaction (state_commit)
 * or read transaction, so counts move with the events that cause them: an
 * acknowledged click is counted exactly when it is recorded, and a replica
 * applying the shared event log counts what every other replica counts.
 *
 * Keys of the table (u16/u32 big-endian, so a customer's records sort
 * together):
 *   'd' u32 exp                 definition: u8 name_len, name, u8 n, then
 *                               per variant f64 share, u8 len, name
 *   'n' name                    u32 exp: the latest definition of the name
 *   'v' u32 exp u8 variant      struct state_attr_counts, as is
 *   'c' u16 len customer u32 exp  struct cust_record
 *   's' customer                served items: struct served_item[], oldest
 *                               first, at most STATE_ATTR_SERVED_MAX
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "ingest.h" /* EVENT_PURCHASE, EVENT_CART */
#include "recid.h"
#include "state_internal.h"

#define CUST_EXPOSED 1u
#define CUST_CONVERTED 2u

struct cust_record {
	uint8_t variant;
	uint8_t flags; /* CUST_* */
	uint8_t reserved[6];
	double value;  /* attributed revenue of this customer */
};

struct served_item {
	uint64_t hash;
	int64_t ts;
	uint32_t experiment;
	uint8_t variant;
	uint8_t reserved[3];
};

void state_set_attribution_window(state *s, int64_t seconds)
{
	assert(seconds > 0);
	s->attr_window = seconds;
}

uint64_t state_attr_item_hash(const char *id, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)id[i];
		h *= 0x100000001b3ull;
	}
	/* FNV mixes its last bytes poorly: finalise (splitmix64's). */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

static void be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A fixed-size record at k into out (zeroed and *found false when absent);
 * MDB_CORRUPTED when the stored size is not `size`. */
static int get_fixed(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, void *out, size_t size, bool *found)
{
	MDB_val v;
	memset(out, 0, size);
	*found = false;
	int rc = mdb_get(txn, dbi, k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (v.mv_size != size)
		return MDB_CORRUPTED;
	memcpy(out, v.mv_data, size);
	*found = true;
	return 0;
}

/* ---- variant counts --------------------------------------------------------- */

static int counts_read(MDB_txn *txn, MDB_dbi dbi, uint32_t exp, uint32_t variant,
		       state_attr_counts *out)
{
	unsigned char key[6] = { 'v' };
	be32(key + 1, exp);
	key[5] = (unsigned char)variant;
	MDB_val k = { sizeof(key), key };
	bool found;
	return get_fixed(txn, dbi, &k, out, sizeof(*out), &found);
}

static int counts_write(MDB_txn *txn, MDB_dbi dbi, uint32_t exp, uint32_t variant,
			const state_attr_counts *c)
{
	unsigned char key[6] = { 'v' };
	be32(key + 1, exp);
	key[5] = (unsigned char)variant;
	MDB_val k = { sizeof(key), key }, v = { sizeof(*c), (void *)c };
	return mdb_put(txn, dbi, &k, &v, 0);
}

/* ---- per-customer records ----------------------------------------------------- */

static size_t cust_key(unsigned char *key, const char *customer, size_t len, uint32_t exp)
{
	key[0] = 'c';
	key[1] = (unsigned char)(len >> 8);
	key[2] = (unsigned char)len;
	memcpy(key + 3, customer, len);
	be32(key + 3 + len, exp);
	return 3 + len + 4;
}

/* The customer's record in exp: *found, and *out (zeroed when not found). */
static int cust_read(MDB_txn *txn, MDB_dbi dbi, const char *customer, size_t len, uint32_t exp,
		     struct cust_record *out, bool *found)
{
	unsigned char key[3 + ID_MAX_LEN + 4];
	MDB_val k = { cust_key(key, customer, len, exp), key };
	return get_fixed(txn, dbi, &k, out, sizeof(*out), found);
}

static int cust_write(MDB_txn *txn, MDB_dbi dbi, const char *customer, size_t len, uint32_t exp,
		      const struct cust_record *r)
{
	unsigned char key[3 + ID_MAX_LEN + 4];
	MDB_val k = { cust_key(key, customer, len, exp), key }, v = { sizeof(*r), (void *)r };
	return mdb_put(txn, dbi, &k, &v, 0);
}

/* Whether the customer may be attributed: not erased, consent not
 * withdrawn (the first 4 bytes of their flag record are the flags). */
static bool attributable(state *s, MDB_txn *txn, const char *customer, size_t len)
{
	MDB_val k = { len, (void *)customer }, v;
	uint32_t flags = 0;
	if (mdb_get(txn, s->flags, &k, &v) == 0 && v.mv_size >= 4)
		memcpy(&flags, v.mv_data, 4);
	return !(flags & (STATE_ERASED | STATE_NO_PERSONALIZATION));
}

/* Adds `value` of an order to the customer's record and the counts of its
 * variant c (the record's variant): converters once, the value sums. */
static void add_order_value(struct cust_record *r, state_attr_counts *c, double value)
{
	if (!(r->flags & CUST_CONVERTED)) {
		r->flags |= CUST_CONVERTED;
		c->converters++;
	}
	double old = r->value, now = old + value;
	c->value_sum += value;
	c->value_sumsq += now * now - old * old;
	r->value = now;
}

/* Marks the customer exposed in their record and counts it in c. */
static void mark_exposed(struct cust_record *r, state_attr_counts *c)
{
	if (!(r->flags & CUST_EXPOSED)) {
		r->flags |= CUST_EXPOSED;
		c->exposed++;
	}
}

/* ---- definitions ----------------------------------------------------------------- */

int state_attr_put_def(state *s, MDB_txn *txn, const state_attr_def *d)
{
	unsigned char rec[2 + STATE_ATTR_NAME_MAX + STATE_ATTR_VARIANTS * (9 + STATE_ATTR_NAME_MAX)];
	size_t n = 0;
	if (!d->experiment || d->name_len < 1 || d->name_len > STATE_ATTR_NAME_MAX || d->n < 1 ||
	    d->n > STATE_ATTR_VARIANTS)
		return EINVAL;
	rec[n++] = (unsigned char)d->name_len;
	memcpy(rec + n, d->name, d->name_len);
	n += d->name_len;
	rec[n++] = (unsigned char)d->n;
	for (uint32_t i = 0; i < d->n; i++) {
		if (d->variant_len[i] < 1 || d->variant_len[i] > STATE_ATTR_NAME_MAX)
			return EINVAL;
		memcpy(rec + n, &d->share[i], 8);
		n += 8;
		rec[n++] = (unsigned char)d->variant_len[i];
		memcpy(rec + n, d->variant[i], d->variant_len[i]);
		n += d->variant_len[i];
	}
	unsigned char key[5] = { 'd' }, nkey[1 + STATE_ATTR_NAME_MAX] = { 'n' }, id[4];
	be32(key + 1, d->experiment);
	be32(id, d->experiment);
	memcpy(nkey + 1, d->name, d->name_len);
	MDB_val k = { sizeof(key), key }, v = { n, rec };
	MDB_val nk = { 1 + d->name_len, nkey }, nv = { 4, id };
	int rc = mdb_put(txn, s->attr, &k, &v, 0);
	return rc ? rc : mdb_put(txn, s->attr, &nk, &nv, 0);
}

static int def_decode(MDB_val v, uint32_t exp, state_attr_def *out)
{
	const unsigned char *p = v.mv_data, *end = p + v.mv_size;
	memset(out, 0, sizeof(*out));
	out->experiment = exp;
	if (p >= end || *p < 1 || *p > STATE_ATTR_NAME_MAX || end - p < 1 + *p + 1)
		return MDB_CORRUPTED;
	out->name_len = *p++;
	out->name = (const char *)p;
	p += out->name_len;
	out->n = *p++;
	if (out->n < 1 || out->n > STATE_ATTR_VARIANTS)
		return MDB_CORRUPTED;
	for (uint32_t i = 0; i < out->n; i++) {
		if (end - p < 9)
			return MDB_CORRUPTED;
		memcpy(&out->share[i], p, 8);
		size_t len = p[8];
		p += 9;
		if (len < 1 || (size_t)(end - p) < len)
			return MDB_CORRUPTED;
		out->variant[i] = (const char *)p;
		out->variant_len[i] = len;
		p += len;
	}
	return p == end ? 0 : MDB_CORRUPTED;
}

int state_attr_experiment(state_txn *t, const char *name, size_t len, state_attr_def *out)
{
	state *s = t->s;
	unsigned char nkey[1 + STATE_ATTR_NAME_MAX] = { 'n' }, key[5] = { 'd' };
	if (!s->has_attr || len < 1 || len > STATE_ATTR_NAME_MAX)
		return STORE_NOTFOUND;
	memcpy(nkey + 1, name, len);
	MDB_val nk = { 1 + len, nkey }, v;
	int rc = mdb_get(t->r.txn, s->attr, &nk, &v);
	if (rc)
		return store_code(rc);
	if (v.mv_size != 4)
		return STORE_CORRUPT;
	uint32_t exp = get_be32(v.mv_data);
	memcpy(key + 1, v.mv_data, 4);
	MDB_val k = { sizeof(key), key };
	if ((rc = mdb_get(t->r.txn, s->attr, &k, &v)) != 0)
		return rc == MDB_NOTFOUND ? STORE_CORRUPT : store_code(rc);
	return def_decode(v, exp, out) ? STORE_CORRUPT : 0;
}

int state_attr_counts_get(state_txn *t, uint32_t experiment, uint32_t variant,
			  state_attr_counts *out)
{
	memset(out, 0, sizeof(*out));
	if (!t->s->has_attr)
		return 0;
	int rc = counts_read(t->r.txn, t->s->attr, experiment, variant, out);
	return rc ? store_code(rc) : 0;
}

/* ---- served answers -------------------------------------------------------------- */

/* Appends the answer's items to the customer's served list, dropping the
 * oldest beyond STATE_ATTR_SERVED_MAX and those out of the window. */
static int remember_items(state *s, MDB_txn *txn, const state_attr_served *sv)
{
	struct served_item list[STATE_ATTR_SERVED_MAX + STATE_ATTR_ITEMS];
	unsigned char key[1 + ID_MAX_LEN] = { 's' };
	memcpy(key + 1, sv->customer, sv->customer_len);
	MDB_val k = { 1 + sv->customer_len, key }, v;
	size_t n = 0;
	int rc = mdb_get(txn, s->attr, &k, &v);
	if (rc == 0) {
		if (v.mv_size % sizeof(list[0]) || v.mv_size / sizeof(list[0]) > STATE_ATTR_SERVED_MAX)
			return MDB_CORRUPTED;
		n = v.mv_size / sizeof(list[0]);
		memcpy(list, v.mv_data, v.mv_size);
	} else if (rc != MDB_NOTFOUND) {
		return rc;
	}
	size_t keep = 0;
	for (size_t i = 0; i < n; i++)
		if (list[i].ts >= sv->ts - s->attr_window)
			list[keep++] = list[i];
	n = keep;
	for (uint32_t i = 0; i < sv->n_hashes && i < STATE_ATTR_ITEMS; i++) {
		list[n] = (struct served_item){ .hash = sv->item_hash[i], .ts = sv->ts,
						.experiment = sv->experiment,
						.variant = (uint8_t)sv->variant };
		n++;
	}
	size_t from = n > STATE_ATTR_SERVED_MAX ? n - STATE_ATTR_SERVED_MAX : 0;
	v.mv_size = (n - from) * sizeof(list[0]);
	v.mv_data = list + from;
	if (v.mv_size == 0)
		return 0;
	return mdb_put(txn, s->attr, &k, &v, 0);
}

int state_attr_put_served(state *s, MDB_txn *txn, const state_attr_served *sv)
{
	if (!sv->experiment || sv->variant >= STATE_ATTR_VARIANTS || sv->customer_len < 1 ||
	    sv->customer_len > ID_MAX_LEN || !attributable(s, txn, sv->customer, sv->customer_len))
		return 0;
	struct cust_record r;
	bool found;
	state_attr_counts c;
	int rc = cust_read(txn, s->attr, sv->customer, sv->customer_len, sv->experiment, &r, &found);
	if (rc)
		return rc;
	if (!found)
		r.variant = (uint8_t)sv->variant;
	/* A customer stays in the variant they were first assigned to (a new
	 * file with other shares can move them): their per-customer figures
	 * are that variant's; the answer's impressions are the answer's. */
	if ((rc = counts_read(txn, s->attr, sv->experiment, r.variant, &c)) != 0)
		return rc;
	if (!found)
		c.customers++;
	if (sv->n_items)
		mark_exposed(&r, &c);
	if (r.variant == sv->variant)
		c.impressions += sv->n_items;
	if ((rc = counts_write(txn, s->attr, sv->experiment, r.variant, &c)) != 0)
		return rc;
	if (r.variant != sv->variant) {
		state_attr_counts o;
		if ((rc = counts_read(txn, s->attr, sv->experiment, sv->variant, &o)) != 0)
			return rc;
		o.impressions += sv->n_items;
		if ((rc = counts_write(txn, s->attr, sv->experiment, sv->variant, &o)) != 0)
			return rc;
	}
	if ((rc = cust_write(txn, s->attr, sv->customer, sv->customer_len, sv->experiment, &r)) != 0)
		return rc;
	return remember_items(s, txn, sv);
}

/* ---- events ------------------------------------------------------------------------ */

/* A tagged event: counted for the rec_id's variant; the customer's record
 * (made if the served batch has not reached the state yet) records the
 * exposure and, for a purchase, the conversion and its value. */
static int tagged(state *s, MDB_txn *txn, const event_in *e, const recid *id)
{
	state_attr_counts c;
	struct cust_record r;
	bool found;
	uint32_t exp = id->experiment, var = id->variant;
	int rc = cust_read(txn, s->attr, e->customer, e->customer_len, exp, &r, &found);
	if (rc)
		return rc;
	if (!found)
		r.variant = (uint8_t)var;
	if ((rc = counts_read(txn, s->attr, exp, var, &c)) != 0)
		return rc;
	double value = (double)e->quantity * e->price;
	switch (e->type) {
	case EVENT_CLICK: c.clicks++; break;
	case EVENT_IMPRESSION: c.displayed++; break;
	case EVENT_CART: c.carts++; break;
	case EVENT_PURCHASE:
		c.orders++;
		c.revenue += value;
		break;
	default: return 0; /* views and removals are not attributed */
	}
	if (r.variant == var) { /* the usual case: one record of counts */
		if (!found)
			c.customers++;
		mark_exposed(&r, &c);
		if (e->type == EVENT_PURCHASE)
			add_order_value(&r, &c, value);
	} else {
		state_attr_counts o;
		if ((rc = counts_read(txn, s->attr, exp, r.variant, &o)) != 0)
			return rc;
		mark_exposed(&r, &o);
		if (e->type == EVENT_PURCHASE)
			add_order_value(&r, &o, value);
		if ((rc = counts_write(txn, s->attr, exp, r.variant, &o)) != 0)
			return rc;
	}
	if ((rc = counts_write(txn, s->attr, exp, var, &c)) != 0)
		return rc;
	return cust_write(txn, s->attr, e->customer, e->customer_len, exp, &r);
}

/* An untagged purchase: for each experiment that served this item to the
 * customer within the window (the latest such answer), a view-through
 * order of that answer's variant. */
static int view_through(state *s, MDB_txn *txn, const event_in *e)
{
	unsigned char key[1 + ID_MAX_LEN] = { 's' };
	memcpy(key + 1, e->customer, e->customer_len);
	MDB_val k = { 1 + e->customer_len, key }, v;
	int rc = mdb_get(txn, s->attr, &k, &v);
	if (rc)
		return rc == MDB_NOTFOUND ? 0 : rc;
	if (v.mv_size % sizeof(struct served_item))
		return MDB_CORRUPTED;
	size_t n = v.mv_size / sizeof(struct served_item);
	struct served_item hits[STATE_ATTR_VARIANTS];
	size_t nhits = 0;
	uint64_t h = state_attr_item_hash(e->item, e->item_len);
	/* Newest first: the latest answer of each experiment wins. The copy:
	 * v points into the map, which the writes below may change. */
	for (size_t i = n; i-- > 0;) {
		struct served_item it;
		memcpy(&it, (const unsigned char *)v.mv_data + i * sizeof(it), sizeof(it));
		if (it.hash != h || it.ts > e->ts + STATE_ATTR_SKEW ||
		    it.ts < e->ts - s->attr_window)
			continue;
		bool seen = false;
		for (size_t j = 0; j < nhits; j++)
			seen |= hits[j].experiment == it.experiment;
		if (!seen && nhits < STATE_ATTR_VARIANTS)
			hits[nhits++] = it;
	}
	double value = (double)e->quantity * e->price;
	for (size_t j = 0; j < nhits; j++) {
		state_attr_counts c;
		struct cust_record r;
		bool found;
		uint32_t exp = hits[j].experiment, var = hits[j].variant;
		if ((rc = counts_read(txn, s->attr, exp, var, &c)) != 0)
			return rc;
		c.vt_orders++;
		c.vt_revenue += value;
		if ((rc = counts_write(txn, s->attr, exp, var, &c)) != 0)
			return rc;
		if ((rc = cust_read(txn, s->attr, e->customer, e->customer_len, exp, &r, &found)) != 0)
			return rc;
		if (!found) /* served, but its record was erased or never made */
			continue;
		if ((rc = counts_read(txn, s->attr, exp, r.variant, &c)) != 0)
			return rc;
		add_order_value(&r, &c, value);
		if ((rc = counts_write(txn, s->attr, exp, r.variant, &c)) != 0 ||
		    (rc = cust_write(txn, s->attr, e->customer, e->customer_len, exp, &r)) != 0)
			return rc;
	}
	return 0;
}

int state_attr_event(state *s, MDB_txn *txn, const event_in *e)
{
	if (!e->rec_id_len && e->type != EVENT_PURCHASE)
		return 0;
	if (!attributable(s, txn, e->customer, e->customer_len))
		return 0;
	if (e->rec_id_len) {
		recid id;
		/* Validated when the event was taken; one from the log of a
		 * newer build may not decode here: not attributed then. */
		if (recid_decode(e->rec_id, e->rec_id_len, &id) != RECID_OK || !id.experiment ||
		    id.variant >= STATE_ATTR_VARIANTS)
			return 0;
		return tagged(s, txn, e, &id);
	}
	return e->item_len ? view_through(s, txn, e) : 0;
}

/* ---- erasure ------------------------------------------------------------------------- */

int state_attr_erase(state *s, MDB_txn *txn, const char *customer, size_t len)
{
	unsigned char key[3 + ID_MAX_LEN + 4], skey[1 + ID_MAX_LEN] = { 's' };
	size_t plen = cust_key(key, customer, len, 0) - 4;
	MDB_cursor *cur;
	MDB_val k = { plen, key }, v;
	int rc = mdb_cursor_open(txn, s->attr, &cur);
	if (rc)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)) {
		if (k.mv_size != plen + 4 || memcmp(k.mv_data, key, plen) != 0)
			break;
		struct cust_record r;
		state_attr_counts c;
		if (v.mv_size != sizeof(r)) {
			rc = MDB_CORRUPTED;
			break;
		}
		memcpy(&r, v.mv_data, sizeof(r));
		uint32_t exp = get_be32((const unsigned char *)k.mv_data + plen);
		if ((rc = mdb_cursor_del(cur, 0)) != 0 ||
		    (rc = counts_read(txn, s->attr, exp, r.variant, &c)) != 0)
			break;
		/* Their part of the per-customer figures leaves with them. */
		c.erased++;
		c.customers -= c.customers > 0;
		if (r.flags & CUST_EXPOSED)
			c.exposed -= c.exposed > 0;
		if (r.flags & CUST_CONVERTED)
			c.converters -= c.converters > 0;
		c.value_sum -= r.value;
		c.value_sumsq -= r.value * r.value;
		if ((rc = counts_write(txn, s->attr, exp, r.variant, &c)) != 0)
			break;
		k.mv_size = plen;
		k.mv_data = key;
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	memcpy(skey + 1, customer, len);
	MDB_val sk = { 1 + len, skey };
	rc = mdb_del(txn, s->attr, &sk, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}
