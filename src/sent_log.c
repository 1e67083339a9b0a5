/*
 * sent_log: what audience exports sent to whom, DIR/sent.mdb. See
 * sent_log.h.
 */
#include "sent_log.h"

#include <stdlib.h>
#include <string.h>

#include "store_internal.h"
#include "util.h"

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
	/* The map is virtual; the file grows on disk as it is used. */
	if (store_env_open(path.buf, 0, 2, 1ull << 34, 0, "the sent log", &l->env, err) != 0)
		goto fail;
	if ((rc = mdb_txn_begin(l->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "sent", MDB_CREATE, &l->dbi)) != 0 ||
	    (rc = store_txn_commit(&txn)) != 0) {
		if (txn)
			mdb_txn_abort(txn);
		sb_addf(err, "cannot open the sent log %s: %s", path.buf, mdb_strerror(rc));
		goto fail;
	}
	sb_release(&path);
	*out = l;
	return 0;
fail:
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
		return store_lmdb_fail(err, "sent log: begin", rc);
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
		return store_lmdb_fail(err, "sent log: write", rc);
	if (++l->pending >= SENT_FLUSH_EVERY)
		return sent_log_flush(l, err);
	return 0;
}

int sent_log_flush(sent_log *l, strbuf *err)
{
	if (!l->txn)
		return 0;
	int rc = store_txn_commit(&l->txn);
	l->pending = 0;
	if (rc)
		return store_lmdb_fail(err, "sent log: commit", rc);
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
