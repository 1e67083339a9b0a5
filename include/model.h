/*
 * model: reads a model directory (model_format.h has the records;
 * docs/design.md "Model and state formats"). The serving path's view of a
 * model: the meta record, the item tables, neighbours, customers.
 *
 * model_open checks every table once (offsets, counts, item indexes,
 * scores); afterwards the accessors trust them, which keeps them O(1) and
 * free of checks on the hot path. Values are borrowed from the map: valid
 * until model_close, or for those read through a model_txn until its reset.
 *
 * The model is opened MDB_RDONLY | MDB_NOLOCK: nobody ever writes it again,
 * so readers need no lock file and no reader table, and the model directory
 * may be read-only.
 *
 * Errors: 0 or a negative STORE_* code (store.h).
 */
#ifndef SHOPKEEPER_MODEL_H
#define SHOPKEEPER_MODEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "model_format.h"
#include "rfm.h"
#include "store.h"
#include "strbuf.h"

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
	/* The last entry of the shared event log the model covers (meta
	 * "event_log_position", "MS-SEQ"); has_log_position false without it:
	 * a replica then replays the log from its start. */
	bool has_log_position;
	uint64_t log_position_ms, log_position_seq;
	/* The serving knobs the model's tuning chose (meta "tuning"."serving"):
	 * 0 and < 0 when it has none. */
	uint32_t serve_neighbors_used;
	float serve_cutoff;
	float serve_content_weight, serve_content_count; /* < 0: none */
	/* ..."serving"."history_weight", the name as stored ("" without
	 * one; recommend.c knows the names). */
	char serve_history_weight[16];
	const char *tuning_json; /* the meta's "tuning" record (compact JSON), or NULL */
	const char *meta_json; /* the whole meta record, NUL-terminated */
} model_info;

/* Opens DIR/model.mdb read-only and checks its meta record and tables,
 * every customer record included (and indexes them: about 0.2 s and 16
 * bytes x 1.5 a customer for a million). Returns 0, or STORE_NOTFOUND /
 * STORE_CORRUPT / STORE_ERROR with a message in *err (no model there,
 * half-written, other format version, a customer record that does not
 * decode...). */
int model_open(const char *dir, model **out, strbuf *err);
/* Opens a model file that has no checksum yet: train's own, just written
 * (model_writer_pause), to score its precomputed lists. The rest as
 * model_open. */
int model_open_file(const char *file, model **out, strbuf *err);
/* Closes the model. Every model_txn on it must have been freed first.
 * model_close(NULL) does nothing. */
void model_close(model *m);
const model_info *model_get_info(const model *m);

/* In the accessors below, idx < n_items is the caller's precondition
 * (asserted). */

/* The id of item `idx`; points into the map, valid until model_close, not
 * NUL-terminated. */
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
/* The name of category `cat` (< the model's category count, as
 * model_item_category gives it); valid until model_close. */
const char *model_category_name(const model *m, uint32_t cat, size_t *len);
/* Item idx's image and page URLs (len 0 when it has none); valid until
 * model_close. */
const char *model_item_image_url(const model *m, uint32_t idx, size_t *len);
const char *model_item_url(const model *m, uint32_t idx, size_t *len);
/* The model's content tables (content.h: vocabulary, idf, every item's
 * content neighbours), or NULL for a model without them (format < 6, or
 * trained without a catalog). Valid until model_close. */
struct content_index;
const struct content_index *model_content(const model *m);
/* The day item idx was first seen (days since 1970-01-01, UTC: the
 * catalog's first_seen, else its first interaction in the training data),
 * or MODEL_DAY_UNKNOWN: not known, or a model written before the
 * "first_seen" table (model_has_first_seen false). */
int32_t model_item_first_seen(const model *m, uint32_t idx);
bool model_has_first_seen(const model *m);
/* Sets the day model_item_first_seen gives for item idx from now on (PUT
 * /v1/items/{id} first_seen): one relaxed store, safe while requests
 * read, as model_item_override is. */
void model_item_set_first_seen(model *m, uint32_t idx, int32_t day);
/* Whether training left item idx recommendable (catalog column
 * recommendable, train --exclude-items): false for fees and the like,
 * which have no neighbours and are in no answer. */
bool model_item_recommendable(const model *m, uint32_t idx);

/* ---- live item overrides --------------------------------------------------
 * The model file never changes, but whether an item may be shown does
 * (PUT /v1/items/{id}: out of stock, not recommendable). Two bitmaps over
 * the items, in memory beside the map, say what serving may do now:
 *   hidden     bit set: the item is in no answer (not recommendable by the
 *              model or by an override, or not available)
 *   unsourced  bit set: the item adds to no score (not recommendable); an
 *              item merely out of stock still says what its buyers like
 * The request path reads them with one relaxed load per item checked, no
 * lock; an override changes one bit with one atomic operation, so nothing
 * is swapped and nothing freed while readers run. A request that starts
 * after model_item_override returned sees the change (the answer to the
 * change is sent after it, and the next request reaches a server thread
 * through the HTTP library's locks). */
typedef struct model_item_bits {
	const _Atomic uint64_t *hidden;
	const _Atomic uint64_t *unsourced;
} model_item_bits;

/* The bitmaps (valid until model_close). */
model_item_bits model_get_item_bits(const model *m);

static inline bool model_bit(const _Atomic uint64_t *bits, uint32_t idx)
{
	return (atomic_load_explicit(&bits[idx / 64], memory_order_relaxed) >> (idx % 64)) & 1u;
}

/* Sets item idx's live state: available (in stock) and recommendable, as
 * the state's override says (true, true: no override). The model's own
 * MODEL_ITEM_NOT_RECOMMENDABLE wins over recommendable. Safe from any
 * thread while requests read; callers serialise changes of one model among
 * themselves (the api does, under its reference lock). */
void model_item_override(model *m, uint32_t idx, bool available, bool recommendable);
/* Finds a category by name: 0 and *cat, or STORE_NOTFOUND. */
int model_category_lookup(const model *m, const char *name, size_t len, uint32_t *cat);
/* The model's clock (serve --clock):
 *   MODEL_CLOCK_WALL   the wall clock;
 *   MODEL_CLOCK_MODEL  as_of plus the time since training, so a model of a
 *                      historical log ages from its own as-of date instead
 *                      of showing every customer as long gone;
 *   MODEL_CLOCK_AUTO   (the default) the model clock for a model whose data
 *                      ended more than MODEL_REPLAY_AFTER before it was
 *                      trained, else the wall clock. */
#define MODEL_REPLAY_AFTER (30 * 86400)
enum model_clock { MODEL_CLOCK_AUTO, MODEL_CLOCK_MODEL, MODEL_CLOCK_WALL };
/* Sets the rule for every model of the process. Call it before the first
 * model_open (messages are prepared there) and before threads start. */
void model_set_clock(enum model_clock c);
/* "auto", "model", "wall": 0 and *out, or -1. */
int model_clock_parse(const char *s, enum model_clock *out);
/* The rule set ("auto", "model", "wall"). */
const char *model_clock_setting(void);
/* The clock m runs on under that rule: "model" or "wall". */
const char *model_clock_name(const model *m);
/* For an event stamped more than a day ahead of model_now: which clock
 * refused it and how to change that (valid until model_close). */
const char *model_clock_ahead_message(const model *m);
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
/* The same without a transaction (the index is in memory). */
int model_item_find(const model *m, const char *id, size_t len, uint32_t *idx);

/* A borrowed list of (u32 item, f32 score) pairs: n positive ones at data,
 * best first, then (format 5) n_neg negative ones at neg, strongest first. */
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

/* Looks a customer up: O(1), in an index of the customer records built
 * at model_open (model_customers.c), no B-tree descent. The record is
 * borrowed from the map, valid until model_close. Returns 0, or
 * STORE_NOTFOUND (an empty id too); STORE_CORRUPT and STORE_ERROR only on
 * a model too large to index (map over 128 TiB, over 2.8 billion
 * customers), which is looked up in the B-tree as before. */
int model_customer_get(model_txn *t, const char *id, size_t len, model_customer *out);

/* ---- precomputed lists (optional: train --precompute; precompute.h) ----- */

/* A customer's list: n entries, best first (decoded with
 * model_plist_at: an entry whose answer source is content has its score
 * negated, model_format.h), borrowed until model_close. */
typedef struct model_plist {
	const unsigned char *entries;
	uint32_t n;
	bool complete; /* every candidate scoring has is in it (model_format.h) */
} model_plist;

static inline precomp_entry model_plist_at(const model_plist *l, uint32_t i)
{
	precomp_entry e;
	memcpy(&e, l->entries + (size_t)i * sizeof(e), sizeof(e));
	return e;
}

/* The lists' head (how many, their stride, the parameters they were
 * scored with), or NULL when the model has none. */
const precomp_header *model_precomputed_header(const model *m);
/* Whether any live override has taken an item the model left
 * recommendable out of the scores since m was opened (it stays true when
 * the override is undone): false, and no list can be stale for that
 * reason. Visible as the bitmaps are. */
bool model_unsourced_overrides(const model *m);
/* Customer cust's list (cust read from m): true and *out, or false when the
 * model keeps none for them: the "extended" list when the model has one,
 * else the personal prefix. O(1); checked at model_open (the "complete"
 * and "extended" bits too: a list marked complete holds fewer than stride
 * entries). */
bool model_precomputed(const model *m, const model_customer *cust, model_plist *out);
/* Starts loading the head of cust's list (no effect without one), for a
 * caller with other work to do before model_precomputed. */
void model_precomputed_prefetch(const model *m, const model_customer *cust);

/* Walks the customers in id order. */
typedef struct model_iter model_iter;

/* Starts after id `after` (NULL or empty: from the first); `after` is
 * borrowed until the first model_iter_next. Returns 0 or STORE_ERROR. */
int model_iter_begin(model_txn *t, const char *after, size_t after_len, model_iter **out);
/* The next customer: 0 with its id and length (borrowed, valid until the txn's
 * reset) and *c; STORE_NOTFOUND at the end; STORE_CORRUPT / STORE_ERROR. */
int model_iter_next(model_iter *it, const char **id, size_t *len, model_customer *c);
/* model_iter_end(NULL) does nothing. */
void model_iter_end(model_iter *it);

#endif
