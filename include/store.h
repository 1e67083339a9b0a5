/*
 * store: the on-disk layout of models and server state. This is the only
 * module that calls mdb_*.
 *
 * A model is one LMDB file, DIR/model.mdb, written once by `train` and only
 * read afterwards. It is built as DIR/model.mdb.tmp and renamed into place
 * after an fsync, so a model file that exists is complete. Named databases:
 *
 *   meta        "meta" -> JSON text: format_version, model_id, algorithm,
 *               parameters, counts, as_of, created
 *   items       "ids" -> a string table: u32 count, u32 offsets[count+1], bytes
 *               "titles" -> a string table of titles ("" for none)
 *               "categories" -> a string table of category names
 *               "category" -> u32[count] category index (UINT32_MAX: none)
 *               "price" -> f32[count] (< 0: unknown)
 *               "popularity" -> f32[count], customers per item
 *               "popular" -> (u32 item, f32 score)[count], by recent
 *               popularity (decayed like the model's history), best first
 *   item_index  item id -> u32 item index
 *   neighbors   "all" -> u32 n_items, u32 offsets[n_items+1] (in pairs),
 *               then every item's (u32 item, f32 score) pairs, best first:
 *               one value, so a list is found by arithmetic
 *   customers   customer id -> customer_summary, history_entry[n_hist] (most
 *               recent first), then attrs_len bytes of attribute JSON
 *
 * Records are in host byte order (little-endian on every platform we build
 * for; the meta record says so). LMDB places values at 2-byte alignment, so
 * records are decoded with memcpy, never through cast pointers.
 *
 * The model is opened MDB_RDONLY | MDB_NOLOCK: nobody ever writes it again,
 * so readers need no lock file and no reader table, and the model directory
 * may be read-only.
 *
 * Errors: functions return 0 or a negative STORE_* code; messages for people
 * go into a caller's strbuf where one is passed.
 */
#ifndef SHOPKEEPER_STORE_H
#define SHOPKEEPER_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rfm.h"
#include "strbuf.h"
#include "train.h" /* neighbor, history_entry */

#define MODEL_FORMAT_VERSION 3
/* Format 4 is format 3 whose neighbour lists may end in negative weights
 * (EASE's strongest, train_options.negatives): positives best first, then
 * negatives strongest first. Written only for such models, so a model
 * without them stays readable by older builds. */
#define MODEL_FORMAT_VERSION_NEGATIVES 4
#define MODEL_FILE "model.mdb"

enum {
	STORE_OK = 0,
	STORE_NOTFOUND = -1, /* no such key */
	STORE_CORRUPT = -2,  /* a record has an impossible size or content */
	STORE_ERROR = -3,    /* LMDB failed (I/O, map full...) */
};

const char *store_strerror(int code);

/* The fixed head of a customer record (40 bytes, no padding). */
typedef struct customer_summary {
	uint32_t n_hist;
	uint32_t attrs_len;
	int64_t first_purchase; /* valid when frequency > 0 */
	int64_t last_purchase;
	uint32_t frequency;     /* distinct purchase days */
	float monetary;         /* net spend */
	uint16_t birthday;      /* month * 100 + day, 0: unknown */
	uint16_t reserved16;
	uint32_t reserved32;
} customer_summary;

/* A string table as stored: count, offsets, bytes. */
typedef struct string_table {
	const char *const *strs; /* NULL entries are written as "" */
	const size_t *lens;
	uint32_t count;
} string_table;

/* ---- writing a model ---------------------------------------------------- */

typedef struct model_writer model_writer;

/* Creates DIR (if needed) and starts DIR/model.mdb.tmp. `size_hint` is the
 * expected payload in bytes (the map is sized from it). Returns 0, or
 * STORE_ERROR with a message in *err. */
int model_writer_open(const char *dir, uint64_t size_hint, model_writer **out, strbuf *err);
/* The records; each returns 0 or STORE_ERROR with a message in *err. */
int model_writer_put_meta(model_writer *w, const char *json, strbuf *err);
/* Item tables: ids, popularity (customers per item) and `recent` (the
 * popularity the popular list is ordered by), count entries each. */
int model_writer_put_items(model_writer *w, const string_table *ids, const float *popularity,
			   const float *recent, strbuf *err);
/* Catalog tables: titles (count entries), category names, each item's
 * category index (UINT32_MAX: none) and price (< 0: unknown). */
int model_writer_put_catalog(model_writer *w, const string_table *titles,
			     const string_table *categories, const uint32_t *category,
			     const float *price, strbuf *err);
/* Every item's neighbour list: item i's are lists[i*stride ..
 * i*stride + counts[i]). */
int model_writer_put_neighbors(model_writer *w, const neighbor *lists, uint32_t stride,
			       const uint32_t *counts, uint32_t n_items, strbuf *err);
/* sum->n_hist and sum->attrs_len give the lengths of hist and attrs. */
int model_writer_put_customer(model_writer *w, const char *id, size_t len,
			      const customer_summary *sum, const history_entry *hist,
			      const char *attrs, strbuf *err);
/* Writes one record as given, bypassing the typed writers above: for tests
 * and fuzzing of the readers' checks. `table` is "meta", "items",
 * "item_index", "neighbors" or "customers". Returns 0 or STORE_ERROR. */
int model_writer_put_raw(model_writer *w, const char *table, const void *key, size_t klen,
			 const void *val, size_t vlen, strbuf *err);

/* Commits, syncs and renames the file into place; the writer is freed.
 * Returns 0 or STORE_ERROR with a message in *err. */
int model_writer_finish(model_writer *w, strbuf *err);
/* Abandons the model: the temporary file is removed, the writer freed.
 * model_writer_abort(NULL) does nothing. */
void model_writer_abort(model_writer *w);

/* ---- reading a model ---------------------------------------------------- */

typedef struct model model;

typedef struct model_info {
	uint32_t format_version;
	uint32_t n_items, n_customers;
	uint32_t neighbors; /* K */
	char model_id[64];
	char algorithm[16];
	int64_t as_of;      /* Unix seconds */
	int64_t created;    /* when train wrote it */
	rfm_cuts rfm;       /* quintile cuts at as_of */
	float event_weight[3]; /* view, cart, purchase, as trained */
	double half_life_days; /* as trained (0: no decay) */
	/* The serving knobs the model's tuning chose (meta "tuning"."serving"):
	 * 0 and < 0 when it has none. */
	uint32_t serve_neighbors_used;
	float serve_cutoff;
	const char *tuning_json; /* the meta's "tuning" record (compact JSON), or NULL */
	const char *meta_json; /* the whole meta record, NUL-terminated */
} model_info;

/* Opens DIR/model.mdb read-only and checks its meta record and tables.
 * Returns 0, or STORE_NOTFOUND / STORE_CORRUPT / STORE_ERROR with a message
 * in *err (no model there, half-written, other format version...). */
int model_open(const char *dir, model **out, strbuf *err);
/* Closes the model. Every model_txn on it must have been freed first.
 * model_close(NULL) does nothing. */
void model_close(model *m);
const model_info *model_get_info(const model *m);

/* The id of item `idx` (< n_items); points into the map, valid until
 * model_close, not NUL-terminated. */
const char *model_item_id(const model *m, uint32_t idx, size_t *len);
/* Customers with a positive interaction with item idx. */
float model_item_popularity(const model *m, uint32_t idx);
/* Item idx's title (len 0 when it has none); valid until model_close. */
const char *model_item_title(const model *m, uint32_t idx, size_t *len);
/* Starts loading item idx's id and title into the cache, for a caller that
 * will write them out after other work (a hint: no effect on results). */
void model_item_prefetch(const model *m, uint32_t idx);
/* Item idx's category index, or UINT32_MAX. */
uint32_t model_item_category(const model *m, uint32_t idx);
/* Item idx's price, < 0 when unknown. */
float model_item_price(const model *m, uint32_t idx);
/* Finds a category by name: 0 and *cat, or STORE_NOTFOUND. */
int model_category_lookup(const model *m, const char *name, size_t len, uint32_t *cat);
/* The model's clock. Normally the wall clock; for a model whose data ended
 * more than MODEL_REPLAY_AFTER before it was trained (a historical log),
 * as_of plus the time since training, so it ages from its own as-of date
 * instead of showing every customer as long gone. */
#define MODEL_REPLAY_AFTER (30 * 86400)
int64_t model_now(const model *m);
/* Items by popularity, most popular first: n_items packed (u32, f32)
 * pairs, decoded with model_pair_at(); valid until model_close. */
const unsigned char *model_popular(const model *m);

/* A read transaction, one per thread, reused across requests. */
typedef struct model_txn model_txn;

/* Starts a read transaction on m. Returns 0 or STORE_ERROR. */
int model_txn_begin(model *m, model_txn **out);
/* Releases the snapshot between requests / takes a fresh one. Values read
 * through a txn are valid only until its reset. */
void model_txn_reset(model_txn *t);
int model_txn_renew(model_txn *t);
/* Aborts and frees; model_txn_free(NULL) does nothing. */
void model_txn_free(model_txn *t);
model *model_txn_model(const model_txn *t);

/* Looks an item id up (in an index built in memory at model_open). Returns
 * 0 and *idx, or STORE_NOTFOUND. */
int model_item_lookup(model_txn *t, const char *id, size_t len, uint32_t *idx);

/* A borrowed list of (u32 item, f32 score) pairs: n positive ones at data,
 * best first, then (format 4) n_neg negative ones at neg, strongest first. */
typedef struct model_pairs {
	const unsigned char *data;
	uint32_t n;
	const unsigned char *neg;
	uint32_t n_neg;
} model_pairs;

static inline neighbor model_pair_at(const unsigned char *data, uint32_t i)
{
	neighbor nb;
	memcpy(&nb, data + (size_t)i * sizeof(neighbor), sizeof(nb));
	return nb;
}

/* Item idx's neighbours, best first (zero-copy, O(1): the table was
 * checked at model_open; an item without neighbours gives n == 0). Returns
 * 0, or STORE_CORRUPT for an index out of range. */
int model_neighbors(model_txn *t, uint32_t idx, model_pairs *out);

/* A borrowed customer record. */
typedef struct model_customer {
	customer_summary sum;  /* copied out */
	const unsigned char *entries;
	uint32_t n_hist;
	const char *attrs;     /* JSON object text, attrs_len bytes (0: none) */
	uint32_t attrs_len;
} model_customer;

static inline history_entry model_history_at(const model_customer *c, uint32_t i)
{
	history_entry e;
	memcpy(&e, c->entries + (size_t)i * sizeof(history_entry), sizeof(e));
	return e;
}

/* Looks a customer up. Returns 0, STORE_NOTFOUND, STORE_CORRUPT or
 * STORE_ERROR. */
int model_customer_get(model_txn *t, const char *id, size_t len, model_customer *out);

/* Walks the customers in id order. */
typedef struct model_iter model_iter;

/* Starts after id `after` (NULL: from the first). Returns 0, STORE_ERROR. */
int model_iter_begin(model_txn *t, const char *after, size_t after_len, model_iter **out);
/* The next customer: 0 with its id and length (borrowed, valid until the txn's
 * reset) and *c; STORE_NOTFOUND at the end; STORE_CORRUPT / STORE_ERROR. */
int model_iter_next(model_iter *it, const char **id, size_t *len, model_customer *c);
/* model_iter_end(NULL) does nothing. */
void model_iter_end(model_iter *it);

/* ---- server state ------------------------------------------------------- */

typedef struct state state;

/* Opens (creating if needed) the read-write state environment in DIR,
 * clearing stale reader slots left by a crashed process. `initial_map` is
 * the starting map size in bytes (0: 64 MiB); the map doubles whenever it
 * fills. Returns 0 or STORE_ERROR with a message in *err. */
int state_open(const char *dir, uint64_t initial_map, state **out, strbuf *err);
/* Opens an existing state read-only, for tools running beside the server
 * (export). Returns 0 or STORE_ERROR with a message in *err. */
int state_open_readonly(const char *dir, state **out, strbuf *err);

/* state_close(NULL) does nothing. */
void state_close(state *s);

/* ---- the sent log: what audience exports pushed to whom ------------------ */

/* A separate LMDB file, DIR/sent.mdb, written only by `shopkeeper export`
 * (one writer at a time), so exports never write the server's state. */
typedef struct sent_log sent_log;

int sent_log_open(const char *dir, sent_log **out, strbuf *err);
/* sent_log_close(NULL) does nothing. */
void sent_log_close(sent_log *l);
/* Calls fn(item, item_len, ts, arg) for each item sent to the customer.
 * Returns 0 or STORE_ERROR. */
int sent_log_each(sent_log *l, const char *customer, size_t len,
		  void (*fn)(const char *item, size_t item_len, int64_t ts, void *arg), void *arg);
/* Records that items were sent now (the oldest records beyond 200 per
 * customer are dropped). Buffered: durable after sent_log_flush. */
int sent_log_add(sent_log *l, const char *customer, size_t len, const char *const *items,
		 const size_t *item_lens, uint32_t n, int64_t ts, strbuf *err);
int sent_log_flush(sent_log *l, strbuf *err);

/* Per-customer flags kept in the state. */
#define STATE_NO_PERSONALIZATION 1u /* consent withdrawn */
#define STATE_ERASED 2u             /* DELETE /v1/customers/{id} */

/* A read transaction on the state, one per thread, reused like model_txn.
 * While one is active (begun or renewed, not yet reset) the map cannot be
 * grown, so keep them short: the span of one request. */
typedef struct state_txn state_txn;
int state_txn_begin(state *s, state_txn **out);
void state_txn_reset(state_txn *t);
int state_txn_renew(state_txn *t);
void state_txn_free(state_txn *t);

/* The customer's STATE_* flags (0 when the state knows nothing of them).
 * Returns 0 or STORE_ERROR. */
int state_customer_flags(state_txn *t, const char *id, size_t len, uint32_t *flags);

/* Records consent (personalization allowed or not), durably: when this
 * returns 0 the change is on disk. Returns 0 or STORE_ERROR with a message
 * in *err. */
int state_set_consent(state *s, const char *id, size_t len, bool personalization, strbuf *err);

/* ---- real-time events -------------------------------------------------- */

/* Live event types: the training ones plus taking an item out of the cart. */
#define EVENT_REMOVE_FROM_CART 3
#define STATE_MAX_EVENTS 500 /* per customer; the oldest are dropped */

/* One event to record; strings are borrowed. */
typedef struct event_in {
	const char *customer;
	size_t customer_len;
	const char *item;
	size_t item_len;
	int64_t ts;
	float quantity;
	float price;
	uint8_t type; /* enum event_type or EVENT_REMOVE_FROM_CART */
	bool known_item; /* the current model knows the item (for counts) */
} event_in;

/* One part of a group commit: a batch of events, or (events NULL) a
 * change to one customer's flags. Strings are borrowed. */
typedef struct state_write {
	const event_in *events; /* n events, or NULL */
	uint32_t n;
	const char *customer;   /* the flag change's customer */
	size_t customer_len;
	uint32_t set, clear;    /* STATE_* bits; setting STATE_ERASED also
				 * deletes the customer's event log */
} state_write;

/* Writes writes[0..n), in order, in ONE synchronous write transaction:
 * when it returns 0 all are on disk, else none is. Events of a customer
 * flagged STATE_ERASED (by then) are left out. A full map is doubled
 * and the transaction retried. Meant for a single writer thread
 * (events.c), though safe from any. Returns 0 or STORE_ERROR with a
 * message in *err. */
int state_commit(state *s, const state_write *writes, uint32_t n, strbuf *err);
/* state_commit of one batch of n events. */
int state_write_events(state *s, const event_in *events, uint32_t n, strbuf *err);

/* A customer's recorded events, oldest first (borrowed from a state_txn). */
typedef struct state_events {
	const unsigned char *data;
	size_t size;
	uint32_t count;
} state_events;

typedef struct event_view {
	int64_t ts;
	float quantity, price;
	uint8_t type;
	const char *item; /* not NUL-terminated */
	size_t item_len;
} event_view;

/* Returns 0 (count may be 0 when none) or STORE_CORRUPT / STORE_ERROR. */
int state_events_get(state_txn *t, const char *id, size_t len, state_events *out);
/* Decodes the event at byte offset *pos and advances it. Returns 0,
 * STORE_NOTFOUND past the last one, or STORE_CORRUPT. */
int state_events_next(const state_events *ev, size_t *pos, event_view *out);

/* Walks the customers that have events, in id order, after `after` (NULL:
 * from the first). Returns 0 and the customer's id and events,
 * STORE_NOTFOUND at the end, or STORE_ERROR. The iterator is freed with
 * state_iter_end. */
typedef struct state_iter state_iter;
int state_iter_begin(state_txn *t, const char *after, size_t after_len, state_iter **out);
int state_iter_next(state_iter *it, const char **id, size_t *len, state_events *ev);
void state_iter_end(state_iter *it);

/* Totals since the state was created. */
typedef struct state_counters {
	uint64_t events;        /* accepted */
	uint64_t unknown_items; /* accepted events naming items no model knew */
	uint64_t map_size;      /* bytes mapped now */
	uint64_t map_used;      /* bytes in use */
} state_counters;
int state_get_counters(state_txn *t, state_counters *out);

/* Appends ids[0..n) (lens[i] bytes each) to DIR/erasures.txt, the list
 * `train --exclude-customers` reads, with one fsync. An erasure lists the
 * id first, then sets STATE_ERASED (state_commit): a crash between the two
 * leaves an id excluded from training but still served until the retry,
 * never the reverse. Returns 0 or STORE_ERROR with a message in *err. */
int state_list_erasures(state *s, const char *const *ids, const size_t *lens, uint32_t n,
			strbuf *err);

/* Erases a customer synchronously: state_list_erasures, then STATE_ERASED
 * set and their event log deleted in one commit. Returns 0 or STORE_ERROR
 * with a message in *err. */
int state_erase(state *s, const char *id, size_t len, strbuf *err);

#endif
