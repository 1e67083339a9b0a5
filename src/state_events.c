/*
 * state_events: each customer's event log in the state: the event codec,
 * the tail and chunk records, append and drop-oldest, reading a log back,
 * the walk over customers with logs, and the conversions from formats 1
 * and 2. See state_events.h; state.c commits the transactions these run in.
 */
#include "state_events.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h" /* enum event_type */
#include "state_internal.h"
#include "util.h"

_Static_assert(EVENT_PURCHASE + 1 == EVENT_REMOVE_FROM_CART && EVENT_TYPES == 3,
	       "live event types follow the training ones");

/* A customer's event log: u32 count, u32 reserved, then events oldest
 * first, each: i64 ts, f32 quantity, f32 price, u8 type, u8 item_len, item
 * id bytes (22 + item_len bytes, packed). */
#define EVENT_HEAD 22u
_Static_assert(STATE_EVENT_MAX == EVENT_HEAD + STATE_MAX_ITEM_LEN, "an encoded event's bound");

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
	memcpy(&out->log_sec, p + 18, 4);
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

size_t state_event_bytes(const unsigned char *data, size_t size)
{
	if (size < EVENT_HEAD || size < EVENT_HEAD + (size_t)data[17])
		return 0;
	return EVENT_HEAD + (size_t)data[17];
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
			size_t len = state_event_bytes(data, size);
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
	if (len == 0 || !state_seen(t->s, id, len))
		return 0;
	int rc = mdb_get(t->r.txn, t->s->tails, &k, &v);
	if (rc == MDB_NOTFOUND) /* perhaps in the journal alone */
		return state_journal_add(t, id, len, &t->buf, out);
	if (rc || (rc = tail_parse(v, &h, &tail)) != 0)
		return store_code(rc);
	if (h.first && t->chunks_stale) {
		if (mdb_cursor_renew(t->r.txn, t->chunks) != 0)
			return STORE_ERROR;
		t->chunks_stale = false;
	}
	if ((rc = read_log(t->chunks, k, &h, tail, &t->buf, out)) != 0)
		return rc;
	return state_journal_add(t, id, len, &t->buf, out);
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
		size_t size = buf->len - TAIL_HEAD, len = state_event_bytes(events, size);
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

int state_log_append(state *s, MDB_txn *txn, MDB_cursor *c, const event_in *e, strbuf *buf)
{
	return state_log_append_sec(s, txn, c, e, 0, buf);
}

size_t state_event_encode(const event_in *e, uint32_t log_sec, unsigned char *rec)
{
	assert(e->item_len <= STATE_MAX_ITEM_LEN);
	memcpy(rec, &e->ts, 8);
	memcpy(rec + 8, &e->quantity, 4);
	memcpy(rec + 12, &e->price, 4);
	rec[16] = e->type;
	rec[17] = (unsigned char)e->item_len;
	memcpy(rec + 18, &log_sec, 4); /* 0 on a single node */
	memcpy(rec + EVENT_HEAD, e->item, e->item_len);
	return EVENT_HEAD + e->item_len;
}

int state_log_append_sec(state *s, MDB_txn *txn, MDB_cursor *c, const event_in *e,
			 uint32_t log_sec, strbuf *buf)
{
	unsigned char rec[STATE_EVENT_MAX];
	size_t rlen = state_event_encode(e, log_sec, rec);
	MDB_val key = { e->customer_len, (void *)e->customer };
	return state_log_append_rec(s, txn, c, key, rec, rlen, buf);
}

int state_log_append_rec(state *s, MDB_txn *txn, MDB_cursor *c, MDB_val key,
			 const unsigned char *rec, size_t rlen, strbuf *buf)
{
	MDB_val v, old = { 0, NULL };
	struct tail_head h = { 0, 0, 0, 0, 0 };
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

int state_log_delete(state *s, MDB_txn *txn, MDB_val key)
{
	int rc = mdb_del(txn, s->chunks, &key, NULL);
	if (rc == 0 || rc == MDB_NOTFOUND)
		rc = mdb_del(txn, s->tails, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Format 2 kept every event in chunks, the last one holding the log's
 * size: the last chunk of each customer becomes their tail. */
int state_log_convert_v2(state *s, MDB_txn *txn)
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
		rc = store_cursor_after(c, id.buf, id.len, MDB_NEXT_NODUP, &k, &v);
	}
	if (c)
		mdb_cursor_close(c);
	sb_release(&id);
	sb_release(&tail);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Format 1 kept a customer's whole log in one record of the "events"
 * table: rewrite every log as chunks, then drop the old table. */
int state_log_convert_v1(state *s, MDB_txn *txn)
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
					e.type, false, NULL, 0 };
			if ((rc = state_log_append(s, txn, wr, &in, &buf)) != 0)
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

/* The walk joins, in key order, the customers with a log and those the
 * journal holds (listed when it begins), adding to each log the journal's
 * events the snapshot has not merged. */
struct state_iter {
	state_txn *t;
	store_walk walk;    /* on the tails: one per customer with a log */
	MDB_cursor *chunks; /* on the chunks */
	strbuf buf;         /* the current customer's log joined */
	MDB_val k, v;       /* the walk's next customer, when `ahead` */
	bool ahead, walked; /* walked: the walk reached its end */
	bool journaled;     /* false: the logs alone (state_iter_begin_logs) */
	journal_ids journal; /* the journal's customers, sorted */
	size_t next;
};

static int iter_begin(state_txn *t, const char *after, size_t after_len, bool with_journal,
		      state_iter **out)
{
	state_iter *it = xcalloc(1, sizeof(*it));
	it->t = t;
	it->journaled = with_journal;
	if (store_walk_open(&it->walk, t->r.txn, t->s->tails, after, after_len) != 0 ||
	    mdb_cursor_open(t->r.txn, t->s->chunks, &it->chunks) != 0 ||
	    (with_journal &&
	     state_journal_customers(t, after, after_len, &it->journal) != 0)) {
		state_iter_end(it);
		return STORE_ERROR;
	}
	*out = it;
	return 0;
}

int state_iter_begin(state_txn *t, const char *after, size_t after_len, state_iter **out)
{
	return iter_begin(t, after, after_len, true, out);
}

int state_iter_begin_logs(state_txn *t, const char *after, size_t after_len, state_iter **out)
{
	return iter_begin(t, after, after_len, false, out);
}

/* Compares the walk's next customer with the journal's. */
static int iter_cmp(const state_iter *it)
{
	size_t len;
	const char *id = journal_ids_at(&it->journal, it->next, &len);
	return state_key_cmp(it->k.mv_data, it->k.mv_size, id, len);
}

int state_iter_next(state_iter *it, const char **id, size_t *len, state_events *ev)
{
	for (;;) {
		if (!it->ahead && !it->walked) {
			int rc = store_walk_next(&it->walk, &it->k, &it->v);
			if (rc == MDB_NOTFOUND)
				it->walked = true;
			else if (rc)
				return store_code(rc);
			else
				it->ahead = true;
		}
		int c = !it->ahead ? 1 : it->next < it->journal.n ? iter_cmp(it) : -1;
		if (!it->ahead && it->next >= it->journal.n)
			return STORE_NOTFOUND;
		int rc;
		if (c <= 0) { /* a log, with the journal's events when it holds some */
			MDB_val tail;
			struct tail_head h;
			it->ahead = false;
			it->next += c == 0;
			*id = it->k.mv_data;
			*len = it->k.mv_size;
			if ((rc = tail_parse(it->v, &h, &tail)) != 0)
				return store_code(rc);
			rc = read_log(it->chunks, it->k, &h, tail, &it->buf, ev);
			if (rc == 0 && it->journaled)
				rc = state_journal_add(it->t, *id, *len, &it->buf, ev);
			return rc;
		}
		/* A customer the journal alone has (if still: an erasure may
		 * have removed them since the list was made). */
		size_t l;
		const char *p = journal_ids_at(&it->journal, it->next++, &l);
		memset(ev, 0, sizeof(*ev));
		if ((rc = state_journal_add(it->t, p, l, &it->buf, ev)) != 0)
			return rc;
		if (ev->count == 0)
			continue;
		*id = p;
		*len = l;
		return 0;
	}
}

void state_iter_end(state_iter *it)
{
	if (!it)
		return;
	if (it->walk.cur)
		mdb_cursor_close(it->walk.cur);
	if (it->chunks)
		mdb_cursor_close(it->chunks);
	sb_release(&it->buf);
	journal_ids_release(&it->journal);
	free(it);
}

/* ---- dropping what a new model covers (the event log) -------------------- */

int state_log_drop_before(state *s, MDB_txn *txn, MDB_val key, uint32_t sec, strbuf *buf,
			  strbuf *scratch, uint32_t *dropped)
{
	MDB_val v, tail;
	struct tail_head h;
	state_events ev;
	MDB_cursor *c = NULL;
	*dropped = 0;
	int rc = mdb_get(txn, s->tails, &key, &v);
	if (rc)
		return rc == MDB_NOTFOUND ? 0 : rc;
	if ((rc = tail_parse(v, &h, &tail)) != 0 || (rc = mdb_cursor_open(txn, s->chunks, &c)) != 0)
		return rc;
	rc = read_log(c, key, &h, tail, buf, &ev);
	if (rc) {
		mdb_cursor_close(c);
		return rc == STORE_CORRUPT ? MDB_CORRUPTED : MDB_PANIC;
	}
	/* Copy the log (it may be borrowed from the tail we are about to
	 * delete), then rewrite it with the events the model does not cover. */
	sb_reset(scratch);
	sb_add(scratch, ev.data, ev.size);
	state_events copy = { (const unsigned char *)scratch->buf, scratch->len, ev.count };
	size_t pos = 0;
	event_view e;
	bool any = false;
	while ((rc = state_events_next(&copy, &pos, &e)) == 0)
		any |= e.log_sec != 0 && e.log_sec < sec;
	if (rc != STORE_NOTFOUND) {
		mdb_cursor_close(c);
		return MDB_CORRUPTED;
	}
	rc = 0;
	if (any)
		rc = state_log_delete(s, txn, key);
	for (pos = 0; any && rc == 0 && state_events_next(&copy, &pos, &e) == 0;) {
		if (e.log_sec != 0 && e.log_sec < sec) {
			(*dropped)++;
			continue;
		}
		event_in in = { key.mv_data, key.mv_size, e.item, e.item_len, e.ts, e.quantity,
				e.price, e.type, true, NULL, 0 };
		rc = state_log_append_sec(s, txn, c, &in, e.log_sec, buf);
	}
	mdb_cursor_close(c);
	return rc;
}
