/*
 * live_items: items added since training, in memory beside the model. See
 * live_items.h.
 */
#include "live_items.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "content.h"
#include "util.h"

struct live_entry {
	char *id;
	size_t id_len;
	uint32_t flags;     /* STATE_ITEM_* */
	char *title;        /* NULL: none */
	size_t title_len;
	char *category;     /* NULL: none */
	size_t category_len;
	float price;        /* < 0: unknown */
	int32_t first_seen; /* days; MODEL_DAY_UNKNOWN: never set (not new) */
	const model *placed_in; /* the model nbrs index into */
	uint32_t n_nbrs;
	neighbor nbrs[LIVE_ITEMS_NEIGHBORS];
};

struct live_items {
	pthread_rwlock_t lock;
	struct live_entry **items; /* n of cap, in the order they came */
	uint32_t n, cap;
	uint32_t reserved;         /* rooms promised to changes being committed */
	uint32_t max;
	atomic_uint count;         /* n, for the lock-free "any at all?" */
	live_place_fn place;
};

/* ---- the placement for models without content tables ----------------------
 * Title words (runs of letters and digits, ASCII folded to lower case, two
 * bytes or more) against the model's titles: score = the idf of the words
 * shared / sqrt(words of each), plus 0.1 for the same category. It reads
 * every title of the model per call (on Online Retail's 4,000 items about
 * 100 KB), so it is meant for the odd PUT, not for big catalogs: models
 * with content tables use those instead (live_items_set_placer). */

#define WORDS_MAX 64 /* words of a title compared */

struct words {
	uint32_t n;
	const char *w[WORDS_MAX];
	uint8_t len[WORDS_MAX];
};

static bool word_byte(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c >= 0x80;
}

/* Cuts s into distinct words (pointers into s). */
static void words_of(const char *s, size_t n, struct words *out)
{
	out->n = 0;
	for (size_t i = 0; i < n && out->n < WORDS_MAX;) {
		while (i < n && !word_byte((unsigned char)s[i]))
			i++;
		size_t start = i;
		while (i < n && word_byte((unsigned char)s[i]))
			i++;
		size_t len = MIN(i - start, (size_t)255);
		if (len < 2)
			continue;
		bool seen = false;
		for (uint32_t k = 0; k < out->n && !seen; k++)
			seen = out->len[k] == len && strncasecmp(out->w[k], s + start, len) == 0;
		if (!seen) {
			out->w[out->n] = s + start;
			out->len[out->n++] = (uint8_t)len;
		}
	}
}

/* Which of q's words title t has: bit k for q's word k. */
static uint64_t shared_words(const struct words *q, const struct words *t)
{
	uint64_t bits = 0;
	for (uint32_t k = 0; k < q->n; k++)
		for (uint32_t j = 0; j < t->n; j++)
			if (q->len[k] == t->len[j] && strncasecmp(q->w[k], t->w[j], q->len[k]) == 0) {
				bits |= 1ull << k;
				break;
			}
	return bits;
}

int live_place_by_titles(const model *m, const live_place_query *q, uint32_t n, neighbor *out,
			 uint32_t *n_out)
{
	uint32_t n_items = model_get_info(m)->n_items, cat = UINT32_MAX;
	struct words qw, tw;
	*n_out = 0;
	words_of(q->title ? q->title : "", q->title ? q->title_len : 0, &qw);
	if (qw.n == 0 || n == 0)
		return 0;
	if (q->category_len)
		model_category_lookup(m, q->category, q->category_len, &cat);
	uint32_t df[WORDS_MAX] = { 0 };
	for (uint32_t j = 0; j < n_items; j++) { /* pass one: document frequencies */
		size_t len;
		const char *t = model_item_title(m, j, &len);
		words_of(t, len, &tw);
		uint64_t bits = shared_words(&qw, &tw);
		for (uint32_t k = 0; bits; k++, bits >>= 1)
			df[k] += bits & 1;
	}
	double idf[WORDS_MAX], q_weight = 0;
	for (uint32_t k = 0; k < qw.n; k++) {
		idf[k] = log((1.0 + n_items) / (1.0 + df[k])) + 1.0;
		q_weight += idf[k];
	}
	for (uint32_t j = 0; j < n_items; j++) { /* pass two: scores, the best n kept */
		size_t len;
		const char *t = model_item_title(m, j, &len);
		if (!model_item_recommendable(m, j))
			continue;
		words_of(t, len, &tw);
		uint64_t bits = shared_words(&qw, &tw);
		if (!bits)
			continue;
		double matched = 0, shared = 0;
		for (uint32_t k = 0; bits; k++, bits >>= 1)
			if (bits & 1) {
				matched += idf[k];
				shared++;
			}
		/* The share of the query's weight matched, less for a long title. */
		float score = (float)(0.9 * matched / q_weight * sqrt(shared / tw.n));
		if (cat != UINT32_MAX && model_item_category(m, j) == cat)
			score += 0.1f;
		if (*n_out == n && out[n - 1].score >= score)
			continue;
		uint32_t pos = *n_out < n ? (*n_out)++ : n - 1;
		while (pos > 0 && out[pos - 1].score < score) {
			out[pos] = out[pos - 1];
			pos--;
		}
		out[pos] = (neighbor){ j, score };
	}
	return 0;
}

int live_place_by_content(const model *m, const live_place_query *q, uint32_t n, neighbor *out,
			  uint32_t *n_out)
{
	if (!model_content(m))
		return live_place_by_titles(m, q, n, out, n_out);
	content_query cq = { q->title, q->title_len, q->category, q->category_len, q->price,
			     q->self };
	return content_place(m, &cq, n, out, n_out);
}

live_items *live_items_create(uint32_t max)
{
	live_items *li = xcalloc(1, sizeof(*li));
	li->place = live_place_by_content;
	pthread_rwlock_init(&li->lock, NULL);
	li->max = max;
	atomic_init(&li->count, 0);
	return li;
}

static void entry_free(struct live_entry *e)
{
	if (!e)
		return;
	free(e->id);
	free(e->title);
	free(e->category);
	free(e);
}

void live_items_free(live_items *li)
{
	if (!li)
		return;
	for (uint32_t i = 0; i < li->n; i++)
		entry_free(li->items[i]);
	free(li->items);
	pthread_rwlock_destroy(&li->lock);
	free(li);
}

/* Under either lock. */
static struct live_entry *find(live_items *li, const char *id, size_t len, uint32_t *pos)
{
	for (uint32_t i = 0; i < li->n; i++) {
		struct live_entry *e = li->items[i];
		if (e->id_len == len && memcmp(e->id, id, len) == 0) {
			if (pos)
				*pos = i;
			return e;
		}
	}
	return NULL;
}

/* Places e among m's items (its content neighbours), under the write
 * lock. A model without content tables, or an item with nothing in common
 * with the model's items, gives none: the item is then served only as a
 * new item nobody's history reaches. */
static void place_entry(live_items *li, struct live_entry *e, const model *m)
{
	live_place_query q = { .title = e->title, .title_len = e->title_len,
			    .category = e->category, .category_len = e->category_len,
			    .price = e->price, .self = UINT32_MAX };
	uint32_t got = 0;
	if (li->place(m, &q, LIVE_ITEMS_NEIGHBORS, e->nbrs, &got) != 0)
		got = 0;
	e->n_nbrs = MIN(got, LIVE_ITEMS_NEIGHBORS);
	e->placed_in = m;
}

static char *dup_or_null(const char *s, size_t n)
{
	return n ? xstrndup(s, n) : NULL;
}

/* Sets e's fields from the state's record. */
static void set_fields(struct live_entry *e, uint32_t flags, const state_item_meta *meta)
{
	e->flags = flags;
	free(e->title);
	free(e->category);
	bool t = meta->fields & STATE_ITEM_TITLE, c = meta->fields & STATE_ITEM_CATEGORY;
	e->title = t ? dup_or_null(meta->title, meta->title_len) : NULL;
	e->title_len = e->title ? meta->title_len : 0;
	e->category = c ? dup_or_null(meta->category, meta->category_len) : NULL;
	e->category_len = e->category ? meta->category_len : 0;
	e->price = meta->fields & STATE_ITEM_PRICE ? meta->price : -1.0f;
	e->first_seen = meta->fields & STATE_ITEM_FIRST_SEEN ? meta->first_seen : MODEL_DAY_UNKNOWN;
}

/* Adds or updates id under the write lock; returns the entry. */
static struct live_entry *upsert(live_items *li, const model *m, const char *id, size_t len,
				 uint32_t flags, const state_item_meta *meta)
{
	struct live_entry *e = find(li, id, len, NULL);
	if (!e) {
		if (li->n == li->cap) {
			li->cap = li->cap ? li->cap * 2 : 16;
			li->items = xreallocarray(li->items, li->cap, sizeof(*li->items));
		}
		e = xcalloc(1, sizeof(*e));
		e->id = xstrndup(id, len);
		e->id_len = len;
		li->items[li->n++] = e;
		atomic_store_explicit(&li->count, li->n, memory_order_relaxed);
	}
	set_fields(e, flags, meta);
	place_entry(li, e, m);
	return e;
}

struct load_ctx {
	live_items *li;
	const model *m;
};

static void load_one(void *arg, const char *id, size_t len, uint32_t flags,
		     const state_item_meta *meta)
{
	struct load_ctx *lc = arg;
	uint32_t idx;
	if (!(meta->fields & STATE_ITEM_FIELDS) || model_item_find(lc->m, id, len, &idx) == 0)
		return; /* an override of a model item, or trained since */
	upsert(lc->li, lc->m, id, len, flags, meta);
}

int live_items_load(live_items *li, state *s, const model *m)
{
	struct load_ctx lc = { li, m };
	pthread_rwlock_wrlock(&li->lock);
	int rc = state_items_meta_each(s, load_one, &lc);
	pthread_rwlock_unlock(&li->lock);
	return rc;
}

static void first_seen_one(void *arg, const char *id, size_t len, uint32_t flags,
			   const state_item_meta *meta)
{
	model *m = arg;
	uint32_t idx;
	(void)flags;
	if ((meta->fields & STATE_ITEM_FIRST_SEEN) && model_item_find(m, id, len, &idx) == 0)
		model_item_set_first_seen(m, idx, meta->first_seen);
}

int live_items_model_first_seen(state *s, model *m)
{
	return state_items_meta_each(s, first_seen_one, m);
}

bool live_items_has(live_items *li, const char *id, size_t len)
{
	if (atomic_load_explicit(&li->count, memory_order_relaxed) == 0)
		return false;
	pthread_rwlock_rdlock(&li->lock);
	bool has = find(li, id, len, NULL) != NULL;
	pthread_rwlock_unlock(&li->lock);
	return has;
}

int live_items_reserve(live_items *li, const char *id, size_t len, bool *reserved)
{
	int rc = 0;
	*reserved = false;
	pthread_rwlock_wrlock(&li->lock);
	if (!find(li, id, len, NULL)) {
		if (li->n + li->reserved >= li->max)
			rc = -1;
		else
			li->reserved++, *reserved = true;
	}
	pthread_rwlock_unlock(&li->lock);
	return rc;
}

void live_items_unreserve(live_items *li)
{
	pthread_rwlock_wrlock(&li->lock);
	assert(li->reserved > 0);
	li->reserved--;
	pthread_rwlock_unlock(&li->lock);
}

void live_items_put(live_items *li, const model *m, const char *id, size_t len, uint32_t flags,
		    const state_item_meta *meta, bool reserved, uint32_t *neighbors)
{
	uint32_t idx;
	pthread_rwlock_wrlock(&li->lock);
	if (reserved) {
		assert(li->reserved > 0);
		li->reserved--;
	}
	uint32_t got = 0;
	if (model_item_find(m, id, len, &idx) != 0 && (meta->fields & STATE_ITEM_FIELDS))
		got = upsert(li, m, id, len, flags, meta)->n_nbrs;
	pthread_rwlock_unlock(&li->lock);
	if (neighbors)
		*neighbors = got;
}

void live_items_rebind(live_items *li, const model *m)
{
	uint32_t idx, kept = 0;
	pthread_rwlock_wrlock(&li->lock);
	for (uint32_t i = 0; i < li->n; i++) {
		struct live_entry *e = li->items[i];
		if (model_item_find(m, e->id, e->id_len, &idx) == 0) {
			entry_free(e); /* the new model was trained with it */
			continue;
		}
		place_entry(li, e, m);
		li->items[kept++] = e;
	}
	li->n = kept;
	atomic_store_explicit(&li->count, kept, memory_order_relaxed);
	pthread_rwlock_unlock(&li->lock);
}

void live_items_set_placer(live_items *li, live_place_fn place)
{
	li->place = place ? place : live_place_by_content;
}

uint32_t live_items_count(live_items *li)
{
	return atomic_load_explicit(&li->count, memory_order_relaxed);
}

/* ---- the new-arrivals slot ------------------------------------------------ */

/* Whether live item e may be in an answer under f (m: the answer's model). */
static bool passes(const struct live_entry *e, const model *m, const rec_filter *f)
{
	if (e->flags & (STATE_ITEM_UNAVAILABLE | STATE_ITEM_NOT_RECOMMENDABLE))
		return false;
	if (e->first_seen == MODEL_DAY_UNKNOWN || e->first_seen < f->new_since)
		return false;
	if (f->category != UINT32_MAX) {
		size_t len;
		const char *name = model_category_name(m, f->category, &len);
		if (e->category_len != len || memcmp(e->category, name, len) != 0)
			return false;
	}
	if (f->min_price >= 0 || f->max_price >= 0) {
		if (e->price < 0 || (f->min_price >= 0 && e->price < f->min_price) ||
		    (f->max_price >= 0 && e->price > f->max_price))
			return false;
	}
	return true;
}

/* A history weight by model item, for the scoring below. */
struct hw {
	uint32_t item;
	float weight;
};

static int hw_cmp(const void *a, const void *b)
{
	const struct hw *x = a, *y = b;
	return (x->item > y->item) - (x->item < y->item);
}

static float hw_find(const struct hw *h, uint32_t n, uint32_t item)
{
	uint32_t lo = 0, hi = n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (h[mid].item < item)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && h[lo].item == item ? h[lo].weight : 0.0f;
}

/* A candidate: a live entry with its score. */
struct pick {
	const struct live_entry *e;
	float score;
};

/* Whether a ranks before b: score, then newer, then id. */
static bool pick_before(const struct pick *a, const struct pick *b)
{
	if (a->score != b->score)
		return a->score > b->score;
	if (a->e->first_seen != b->e->first_seen)
		return a->e->first_seen > b->e->first_seen;
	int c = memcmp(a->e->id, b->e->id, MIN(a->e->id_len, b->e->id_len));
	return c ? c < 0 : a->e->id_len < b->e->id_len;
}

/* Keeps the best `cap` picks in top[0..*n), best first (insertion: cap is
 * at most REC_MAX_N). */
static void keep_best(struct pick *top, uint32_t *n, uint32_t cap, struct pick p)
{
	if (*n == cap && !pick_before(&p, &top[cap - 1]))
		return;
	uint32_t pos = *n < cap ? (*n)++ : cap - 1;
	while (pos > 0 && pick_before(&p, &top[pos - 1])) {
		top[pos] = top[pos - 1];
		pos--;
	}
	top[pos] = p;
}

static void copy_text(char *dst, size_t cap, size_t *dst_len, const char *s, size_t n)
{
	n = MIN(n, cap);
	if (n)
		memcpy(dst, s, n);
	*dst_len = n;
}

/* Copies e into the answer's store; returns its item index in the answer. */
static uint32_t add_live(struct rec_live *store, const struct live_entry *e, uint32_t n_items)
{
	rec_live_item *o = &store->items[store->n];
	copy_text(o->id, sizeof(o->id), &o->id_len, e->id, e->id_len);
	copy_text(o->title, sizeof(o->title), &o->title_len, e->title, e->title_len);
	copy_text(o->category, sizeof(o->category), &o->category_len, e->category,
		  e->category_len);
	o->price = e->price;
	return n_items + store->n++;
}

void live_items_merge(live_items *li, const model *m, const model_customer *cust,
		      const rec_filter *f, uint32_t n, rec_result *r, struct rec_live *store)
{
	if (!f || f->new_since == MODEL_DAY_UNKNOWN ||
	    atomic_load_explicit(&li->count, memory_order_relaxed) == 0)
		return;
	n = MIN(MAX(n, 1u), (uint32_t)REC_MAX_N);
	/* The customer's history weights, by item, for lookups (the most
	 * recent REC_MAX_HISTORY, as scoring uses). */
	struct hw hist[REC_MAX_HISTORY];
	uint32_t n_hist = 0;
	for (uint32_t i = 0; cust && f->personal && i < cust->n_hist && n_hist < REC_MAX_HISTORY;
	     i++) {
		history_entry e = model_history_at(cust, i);
		if (e.weight > 0.0f)
			hist[n_hist++] = (struct hw){ e.item, e.weight };
	}
	qsort(hist, n_hist, sizeof(*hist), hw_cmp);

	struct pick reached[REC_MAX_N], rest[REC_MAX_N];
	uint32_t n_reached = 0, n_rest = 0;
	pthread_rwlock_rdlock(&li->lock);
	for (uint32_t i = 0; i < li->n; i++) {
		const struct live_entry *e = li->items[i];
		if (!passes(e, m, f))
			continue;
		float score = 0.0f;
		for (uint32_t k = 0; n_hist && e->placed_in == m && k < e->n_nbrs; k++)
			score += e->nbrs[k].score * hw_find(hist, n_hist, e->nbrs[k].item);
		struct pick p = { e, score };
		if (score > 0.0f)
			keep_best(reached, &n_reached, n, p);
		else
			keep_best(rest, &n_rest, n, p);
	}

	/* r's scored items and the reached live ones by score, then r's
	 * popular top-ups, then the live items nothing reached. */
	uint32_t n_items = model_get_info(m)->n_items;
	rec_item merged[REC_MAX_N];
	uint32_t out = 0, a = 0, b = 0, scored = 0;
	while (scored < r->n && r->items[scored].source != REC_POPULAR)
		scored++; /* personal or content: reached by the customer's history */
	store->n = 0;
	bool any_live_reached = false;
	while (out < n && (a < scored || b < n_reached)) {
		if (b == n_reached || (a < scored && r->items[a].score >= reached[b].score)) {
			merged[out++] = r->items[a++];
			continue;
		}
		merged[out++] = (rec_item){ .item = add_live(store, reached[b].e, n_items),
					    .score = reached[b].score, .source = REC_CONTENT };
		b++;
		any_live_reached = true;
	}
	for (uint32_t k = scored; k < r->n && out < n; k++) {
		merged[out] = r->items[k];
		/* Popular items below reached ones are top-ups: scored 0, so
		 * scores never rise down the list. */
		if (any_live_reached)
			merged[out].score = 0.0f;
		out++;
	}
	/* Below the scored part, like the model's popular top-ups. */
	for (uint32_t k = 0; k < n_rest && out < n; k++)
		merged[out++] = (rec_item){ .item = add_live(store, rest[k].e, n_items),
					    .score = 0.0f, .source = REC_POPULAR };
	pthread_rwlock_unlock(&li->lock);
	memcpy(r->items, merged, (size_t)out * sizeof(*merged));
	r->n = out;
	if (any_live_reached)
		r->source = REC_PERSONAL;
	r->live = store->n ? store : NULL;
}
