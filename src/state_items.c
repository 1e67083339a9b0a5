/*
 * state_items: the state's item records (PUT /v1/items/{id}): each item's
 * override flags and, since issue 18, its catalog fields; their codec,
 * their reads and the walks over all of them. state.c's commit writes
 * them through state_apply_item_write.
 */
#include "state.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "state_internal.h"
#include "util.h"

/* An item's override. Issue 18 appends catalog fields (title, category,
 * price, first_seen) after this head: readers take the head of any record
 * at least this long and leave the rest. */
struct item_record {
	uint32_t flags;    /* STATE_ITEM_* */
	uint32_t reserved;
	int64_t changed;   /* Unix seconds of the last change */
};

/* An item record: the head, then (issue 18) its catalog fields:
 *   u32 fields (STATE_ITEM_TITLE...), i32 first_seen, f32 price,
 *   u16 title_len, u16 category_len, title bytes, category bytes.
 * A record of the head alone has no fields. Encoded and decoded only here. */
struct item_ext {
	uint32_t fields;
	int32_t first_seen;
	float price;
	uint16_t title_len, category_len;
};
#define ITEM_RECORD_MAX \
	(sizeof(struct item_record) + sizeof(struct item_ext) + STATE_ITEM_MAX_TITLE + \
	 STATE_ITEM_MAX_CATEGORY)

/* Writes ir and meta (NULL or no fields: the head alone) into buf
 * (ITEM_RECORD_MAX bytes); returns the length. */
static size_t item_record_encode(const struct item_record *ir, const state_item_meta *meta,
				 unsigned char *buf)
{
	size_t n = sizeof(*ir);
	memcpy(buf, ir, sizeof(*ir));
	if (!meta || !(meta->fields & STATE_ITEM_FIELDS))
		return n;
	assert(meta->title_len <= STATE_ITEM_MAX_TITLE &&
	       meta->category_len <= STATE_ITEM_MAX_CATEGORY);
	struct item_ext x = { meta->fields & STATE_ITEM_FIELDS, meta->first_seen, meta->price,
			      (uint16_t)meta->title_len, (uint16_t)meta->category_len };
	memcpy(buf + n, &x, sizeof(x));
	n += sizeof(x);
	if (x.title_len)
		memcpy(buf + n, meta->title, x.title_len);
	n += x.title_len;
	if (x.category_len)
		memcpy(buf + n, meta->category, x.category_len);
	return n + x.category_len;
}

/* Reads a record: the head into *ir, the fields into *meta (strings
 * borrowed from v). Returns 0, or MDB_CORRUPTED for a record shorter
 * than the head or whose fields overrun it. */
static int item_record_decode(const MDB_val *v, struct item_record *ir, state_item_meta *meta)
{
	memset(meta, 0, sizeof(*meta));
	if (v->mv_size < sizeof(*ir))
		return MDB_CORRUPTED;
	memcpy(ir, v->mv_data, sizeof(*ir));
	size_t n = v->mv_size - sizeof(*ir);
	const unsigned char *p = (const unsigned char *)v->mv_data + sizeof(*ir);
	if (n == 0)
		return 0;
	struct item_ext x;
	if (n < sizeof(x))
		return MDB_CORRUPTED;
	memcpy(&x, p, sizeof(x));
	if (n - sizeof(x) != (size_t)x.title_len + x.category_len)
		return MDB_CORRUPTED;
	meta->fields = x.fields & STATE_ITEM_FIELDS;
	meta->first_seen = x.first_seen;
	meta->price = x.price;
	meta->title = (const char *)p + sizeof(x);
	meta->title_len = x.title_len;
	meta->category = meta->title + x.title_len;
	meta->category_len = x.category_len;
	return 0;
}

/* Sets and clears flag bits of one item inside txn, and the catalog
 * fields `change` gives (NULL: none; the others are kept). */
int state_apply_item_write(state *s, MDB_txn *txn, const char *id, size_t len, uint32_t set,
			   uint32_t clear, const state_item_meta *change)
{
	MDB_val k = { len, (void *)id }, v;
	struct item_record ir = { 0, 0, 0 };
	state_item_meta meta = { 0 };
	unsigned char old[ITEM_RECORD_MAX], buf[ITEM_RECORD_MAX];
	int rc = mdb_get(txn, s->items, &k, &v);
	if (rc == 0) {
		/* Copied out: the put below may reuse the page it points into. */
		size_t keep = MIN(v.mv_size, sizeof(old));
		memcpy(old, v.mv_data, keep);
		MDB_val copy = { keep, old };
		if (item_record_decode(&copy, &ir, &meta) != 0) {
			memset(&meta, 0, sizeof(meta)); /* fields unreadable: dropped */
			if (v.mv_size >= sizeof(ir))
				memcpy(&ir, old, sizeof(ir));
		}
	} else if (rc != MDB_NOTFOUND) {
		return rc;
	}
	ir.flags = (ir.flags | set) & ~clear;
	ir.changed = (int64_t)util_now();
	if (change) {
		uint32_t f = change->fields & STATE_ITEM_FIELDS;
		if (f & STATE_ITEM_TITLE) {
			meta.title = change->title;
			meta.title_len = change->title_len;
		}
		if (f & STATE_ITEM_CATEGORY) {
			meta.category = change->category;
			meta.category_len = change->category_len;
		}
		if (f & STATE_ITEM_PRICE)
			meta.price = change->price;
		if (f & STATE_ITEM_FIRST_SEEN)
			meta.first_seen = change->first_seen;
		meta.fields |= f;
	}
	v.mv_size = item_record_encode(&ir, &meta, buf);
	v.mv_data = buf;
	return mdb_put(txn, s->items, &k, &v, 0);
}

/* Decodes an item record's flags. Returns an LMDB code, MDB_CORRUPTED
 * for a record too short. */
static int item_record_flags(MDB_txn *txn, state *s, const char *id, size_t len, uint32_t *flags)
{
	MDB_val k = { len, (void *)id }, v;
	*flags = 0;
	int rc = mdb_get(txn, s->items, &k, &v);
	if (rc)
		return rc == MDB_NOTFOUND ? 0 : rc;
	if (v.mv_size < sizeof(struct item_record))
		return MDB_CORRUPTED;
	struct item_record ir;
	memcpy(&ir, v.mv_data, sizeof(ir));
	*flags = ir.flags;
	return 0;
}

int state_item_flags(state_txn *t, const char *id, size_t len, uint32_t *flags)
{
	*flags = 0;
	if (!t->s->has_items)
		return 0;
	int rc = item_record_flags(t->r.txn, t->s, id, len, flags);
	return rc ? store_code(rc) : 0;
}

int state_item_flags_now(state *s, const char *id, size_t len, uint32_t *flags)
{
	MDB_txn *txn = NULL;
	*flags = 0;
	if (!s->has_items)
		return 0;
	pthread_rwlock_rdlock(&s->remap_lock);
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc == 0) {
		rc = item_record_flags(txn, s, id, len, flags);
		mdb_txn_abort(txn);
	}
	pthread_rwlock_unlock(&s->remap_lock);
	return rc ? store_code(rc) : 0;
}

int state_item_get_now(state *s, const char *id, size_t len, uint32_t *flags,
		       state_item_meta *meta, strbuf *store)
{
	MDB_txn *txn = NULL;
	*flags = 0;
	memset(meta, 0, sizeof(*meta));
	sb_reset(store);
	if (!s->has_items)
		return 0;
	pthread_rwlock_rdlock(&s->remap_lock);
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc == 0) {
		MDB_val k = { len, (void *)id }, v;
		struct item_record ir;
		rc = mdb_get(txn, s->items, &k, &v);
		if (rc == 0 && (rc = item_record_decode(&v, &ir, meta)) == 0) {
			*flags = ir.flags;
			/* Both strings first, then the pointers: the buffer may move. */
			sb_add(store, meta->title, meta->title_len);
			sb_add(store, meta->category, meta->category_len);
			meta->title = store->buf;
			meta->category = store->buf + meta->title_len;
		} else if (rc == MDB_NOTFOUND) {
			rc = 0;
		}
		mdb_txn_abort(txn);
	}
	pthread_rwlock_unlock(&s->remap_lock);
	return rc ? store_code(rc) : 0;
}

/* Calls visit on every item record in one read transaction, in key order;
 * a visit returning nonzero stops the walk with that code. Returns 0,
 * that code, or STORE_ERROR. */
static int items_walk(state *s, int (*visit)(void *ctx, const MDB_val *k, const MDB_val *v),
		      void *ctx)
{
	if (!s->has_items)
		return 0;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc, ret = STORE_ERROR;
	pthread_rwlock_rdlock(&s->remap_lock);
	if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0 ||
	    mdb_cursor_open(txn, s->items, &cur) != 0)
		goto out;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if ((ret = visit(ctx, &k, &v)) != 0)
			goto out;
	ret = rc == MDB_NOTFOUND ? 0 : store_code(rc);
out:
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->remap_lock);
	return ret;
}

struct items_visit {
	state_item_fn fn;
	state_item_meta_fn meta_fn;
	void *arg;
};

static int visit_meta(void *ctx, const MDB_val *k, const MDB_val *v)
{
	const struct items_visit *iv = ctx;
	struct item_record ir;
	state_item_meta meta;
	if (item_record_decode(v, &ir, &meta) != 0)
		return STORE_CORRUPT;
	iv->meta_fn(iv->arg, k->mv_data, k->mv_size, ir.flags, &meta);
	return 0;
}

/* The flags alone: only the 16-byte head is read, so a state written by
 * a later build with fields this one does not know still loads. */
static int visit_flags(void *ctx, const MDB_val *k, const MDB_val *v)
{
	const struct items_visit *iv = ctx;
	struct item_record ir;
	if (v->mv_size < sizeof(ir))
		return STORE_CORRUPT;
	memcpy(&ir, v->mv_data, sizeof(ir));
	iv->fn(iv->arg, k->mv_data, k->mv_size, ir.flags);
	return 0;
}

int state_items_meta_each(state *s, state_item_meta_fn fn, void *arg)
{
	struct items_visit iv = { .meta_fn = fn, .arg = arg };
	return items_walk(s, visit_meta, &iv);
}

int state_items_each(state *s, state_item_fn fn, void *arg)
{
	struct items_visit iv = { .fn = fn, .arg = arg };
	return items_walk(s, visit_flags, &iv);
}
