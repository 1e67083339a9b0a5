/*
 * recommend_live: the live cache, rec_for_history_cached's fast path for
 * customers with live events (issue 17). Their precomputed list cannot
 * answer (the events change their scores), and scoring them in full cost
 * 2.8 times the instructions of an answer from a list (160,000 against
 * 57,500 a request, callgrind, Online Retail, a view and a cart each); a
 * shopper asks again and again between two events, so the list scoring
 * makes is kept and filtered as a precomputed one is: 58,000 a request
 * (docs/design.md, "The live cache").
 * recommend_internal.h has the contract of rec_from_live.
 */
#include "recommend.h"

#include <stdlib.h>
#include <string.h>

#include "precompute.h"
#include "recommend_internal.h"
#include "util.h"

/* ---- what a list is a function of ------------------------------------------
 * rec_score_history under the default filter (rec_filter_init: purchases
 * out, no rules) reads: the customer's history (model_history_at, bytes in
 * the model's map, which is read-only and outlives this cache: the cache
 * belongs to a rec_ctx, and a rec_ctx to one model), their event record
 * (fold_events; what it skips, events up to as_of and past REC_MAX_EVENTS,
 * is in the bytes too), the model (neighbours, content tables, event
 * weights, as_of, half-life: fixed while it is open), the scoring
 * parameters of the context and the request's history weight, and the
 * item bitmaps live overrides change (hidden, unsourced). Nothing else: no
 * clock (decay runs from as_of), no state but the events (consent and
 * erasure are decided before scoring, by the api), no catalog field but
 * the bitmaps (category, price and first_seen are the request's rules,
 * applied to the list on every use). A slot keeps all of these, or what
 * identifies them: the history's address and length, a copy of the event
 * record, the parameters, and the overrides' generation; a list is used
 * only when every one is equal. Then the list is the one scoring would
 * make now, and rec_from_list's filter gives scoring's answer. */

/* Slots: LIVE_SETS sets of LIVE_WAYS, a customer's set chosen by a hash
 * of their history's address (of their events when the model does not
 * know them), the least recently used of a set replaced; a customer's
 * newer list replaces their older one in place. A slot holds the key and
 * the list (472 bytes with 20 entries); the event records are copied into
 * a ring of LIVE_RING bytes beside the slots, each where the last one
 * ended, so that a slot costs what its record takes, not the largest
 * record allowed. A record the ring has since written over makes its slot
 * a miss. 2,048 slots and a 1 MiB ring: 1.9 MiB per server thread and
 * model, in memory only as it is used (calloc). That holds 2,048
 * customers whose records average 512 bytes (18 events of 6-byte item
 * ids); load_bench gives 800 of Online Retail's customers a view and a
 * cart (60 bytes). With 4 ways of 1,024 slots of inline records (1 KiB
 * each, 1.5 MiB) those 800 customers left about 12% of the asks to
 * scoring, sets overflowing (72,700 instructions a request against
 * 58,000 now). */
#define LIVE_SETS 256u
#define LIVE_WAYS 8u
#define LIVE_RING REC_LIVE_RING
#define LIVE_EVENTS_MAX REC_LIVE_EVENTS_MAX
/* Entries per list: the model's precomputed stride (PRECOMPUTE_DEFAULT
 * without lists), at most this. A request for more is scored. */
#define LIVE_LIST_MAX 32u

_Static_assert((LIVE_SETS & (LIVE_SETS - 1)) == 0, "sets: a power of two");

/* The parameters a list was scored with (rec_ctx's, hw_now the request's). */
struct scored_with {
	uint32_t neighbors_used, negatives_used, history_weight;
	float cutoff, content_weight, content_count;
};

struct live_key {
	const unsigned char *hist; /* cust->entries, or NULL */
	uint32_t n_hist;
	bool known;                /* cust was given */
	uint64_t gen;              /* rec_overrides_gen() before scoring */
	struct scored_with by;
};

struct live_slot {
	struct live_key key;
	uint64_t used;    /* lc->tick at the last use; 0: empty */
	uint64_t ev_at;   /* where its record starts in the ring, as lc->head counts */
	uint32_t ev_size; /* the record's bytes */
	uint32_t n;       /* entries in the list */
	precomp_entry list[]; /* stride of them, in model_plist's layout */
};

struct rec_live_cache {
	uint32_t stride;      /* entries per list */
	size_t slot_size;     /* bytes */
	uint64_t tick;        /* uses so far */
	uint64_t head;        /* bytes written to the ring so far (and skipped
			       * at its end); byte x is at ring[x % LIVE_RING] */
	unsigned char *slots; /* LIVE_SETS * LIVE_WAYS of slot_size */
	unsigned char *ring;  /* LIVE_RING */
};

static struct rec_live_cache *cache_create(const model *m)
{
	const precomp_header *h = model_precomputed_header(m);
	struct rec_live_cache *lc = xcalloc(1, sizeof(*lc));
	lc->stride = MIN(h ? h->stride : PRECOMPUTE_DEFAULT, LIVE_LIST_MAX);
	lc->slot_size = sizeof(struct live_slot) + (size_t)lc->stride * sizeof(precomp_entry);
	lc->slot_size = (lc->slot_size + 7) & ~(size_t)7; /* the next slot's u64s aligned */
	/* calloc: pages never used are never touched */
	lc->slots = xcalloc((size_t)LIVE_SETS * LIVE_WAYS, lc->slot_size);
	lc->ring = xcalloc(1, LIVE_RING);
	return lc;
}

void rec_live_cache_free(struct rec_live_cache *lc)
{
	if (!lc)
		return;
	free(lc->slots);
	free(lc->ring);
	free(lc);
}

static inline struct live_slot *slot_at(const struct rec_live_cache *lc, size_t i)
{
	return (struct live_slot *)(lc->slots + i * lc->slot_size);
}

/* Whether s's record is still in the ring: nothing written since reached
 * LIVE_RING bytes past its start. */
static inline bool record_kept(const struct rec_live_cache *lc, const struct live_slot *s)
{
	return lc->head - s->ev_at <= LIVE_RING;
}

/* Copies the record into the ring (in one piece: one that would cross the
 * ring's end goes to its start) and says where into s. */
static void record_put(struct rec_live_cache *lc, struct live_slot *s, const state_events *ev)
{
	uint64_t at = lc->head;
	size_t off = (size_t)(at % LIVE_RING);
	if (off + ev->size > LIVE_RING) {
		at += LIVE_RING - off;
		off = 0;
	}
	memcpy(lc->ring + off, ev->data, ev->size);
	s->ev_at = at;
	s->ev_size = (uint32_t)ev->size;
	lc->head = at + ev->size;
}

static void key_init(struct live_key *k, const rec_ctx *c, const model_customer *cust)
{
	memset(k, 0, sizeof(*k));
	k->known = cust != NULL;
	k->hist = cust ? cust->entries : NULL;
	k->n_hist = cust ? cust->n_hist : 0;
	k->gen = rec_overrides_gen();
	k->by = (struct scored_with){ c->neighbors_used, c->negatives_used, c->hw_now,
				      c->cutoff, c->content_weight, c->content_count };
}

static bool same_params(const struct scored_with *a, const struct scored_with *b)
{
	return a->neighbors_used == b->neighbors_used && a->negatives_used == b->negatives_used &&
	       a->history_weight == b->history_weight && a->cutoff == b->cutoff &&
	       a->content_weight == b->content_weight && a->content_count == b->content_count;
}

static bool same_customer(const struct live_key *a, const struct live_key *b)
{
	return a->known == b->known && a->hist == b->hist && a->n_hist == b->n_hist;
}

/* The first slot of k's set. Only where a list is looked for: a hash that
 * sends two customers to one set costs a slot, never an answer. */
static size_t set_of(const struct live_key *k, const state_events *ev)
{
	uint64_t h;
	if (k->known) {
		h = (uint64_t)(uintptr_t)k->hist;
	} else { /* FNV-1a over the record's first bytes: its first event */
		h = 0xcbf29ce484222325ull ^ ev->size;
		for (size_t i = 0; i < MIN(ev->size, (size_t)64); i++)
			h = (h ^ ev->data[i]) * 0x100000001b3ull;
	}
	h *= 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 56) % LIVE_SETS * LIVE_WAYS;
}

/* The slot holding the list scored from exactly k and ev, or NULL. */
static struct live_slot *find(const struct rec_live_cache *lc, size_t first,
			      const struct live_key *k, const state_events *ev)
{
	for (size_t i = first; i < first + LIVE_WAYS; i++) {
		struct live_slot *s = slot_at(lc, i);
		if (s->used && same_customer(&s->key, k) && s->key.gen == k->gen &&
		    same_params(&s->key.by, &k->by) && s->ev_size == ev->size &&
		    record_kept(lc, s) &&
		    memcmp(lc->ring + s->ev_at % LIVE_RING, ev->data, ev->size) == 0)
			return s;
	}
	return NULL;
}

/* Where k's new list goes: the slot of the same customer's older list,
 * else an empty one, else the least recently used of the set. */
static struct live_slot *victim(const struct rec_live_cache *lc, size_t first,
				const struct live_key *k)
{
	struct live_slot *best = NULL;
	for (size_t i = first; i < first + LIVE_WAYS; i++) {
		struct live_slot *s = slot_at(lc, i);
		if (s->used && same_customer(&s->key, k))
			return s;
		if (!best || s->used < best->used)
			best = s;
	}
	return best;
}

/* Scores the customer's list into s (through out, which it leaves holding
 * that scoring's answer): the default request's filter and the request's
 * history weight, lc->stride items, the scored ones (not the popular) kept, as
 * precompute_write keeps a model customer's. Returns 0 or a STORE_*
 * error (s left empty). */
static int fill(rec_ctx *c, model_txn *t, const model_customer *cust, const state_events *ev,
		const rec_filter *f, struct rec_live_cache *lc, struct live_slot *s,
		const struct live_key *k, rec_result *out)
{
	rec_filter lf;
	rec_filter_init(&lf);
	lf.history_weight = f ? f->history_weight : REC_HW_UNSET;
	s->used = 0;
	rec_begin(c, model_txn_model(t), &lf, out);
	int rc = rec_score_history(c, t, cust, ev, lc->stride, &lf, out);
	if (rc)
		return rc;
	uint32_t n = 0;
	for (; n < out->n && out->items[n].source != REC_POPULAR; n++) {
		const rec_item *it = &out->items[n];
		s->list[n].item = it->item;
		s->list[n].score = it->source == REC_CONTENT ? -it->score : it->score;
		for (uint32_t b = 0; b < PRECOMP_BECAUSE; b++)
			s->list[n].because[b] = b < it->n_because ? it->because[b] : UINT32_MAX;
	}
	s->n = n;
	s->key = *k;
	record_put(lc, s, ev);
	return 0;
}

int rec_from_live(rec_ctx *c, model_txn *t, const model_customer *cust, const state_events *ev,
		  uint32_t n, const rec_filter *f, rec_result *out)
{
	/* --no-precomputed turns the cache off too: that server is the
	 * reference both fast paths are tested against. */
	if (!c->use_precomputed || !ev || ev->count == 0 || ev->size > LIVE_EVENTS_MAX ||
	    (f && f->include_purchased))
		return 0;
	const model *m = model_txn_model(t);
	if (!c->lcache)
		c->lcache = cache_create(m);
	struct rec_live_cache *lc = c->lcache;
	if (n > lc->stride)
		return 0;
	struct live_key k;
	key_init(&k, c, cust);
	size_t first = set_of(&k, ev);
	struct live_slot *s = find(lc, first, &k, ev);
	bool hit = s != NULL;
	if (!hit) {
		s = victim(lc, first, &k);
		int rc = fill(c, t, cust, ev, f, lc, s, &k, out);
		if (rc)
			return rc;
		rec_begin(c, m, f, out); /* the request itself, from here */
	}
	s->used = ++lc->tick;
	model_plist list = { (const unsigned char *)s->list, s->n, false };
	if (!rec_from_list(c, m, &list, n, f, out))
		return 0; /* the rules left fewer than n: scored */
	out->live_cached = hit;
	return 1;
}
