/*
 * content: catalog similarity (TF-IDF titles, category, price band), the
 * training side and the reader of the model's content tables. See
 * content.h.
 */
#include "content.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "idmap.h"
#include "model.h"
#include "store_internal.h"
#include "topk.h"
#include "util.h"

static const char *const token_names[CONTENT_TOKENS_COUNT] = { "words", "char3" };

const char *content_tokens_name(enum content_tokens t)
{
	return (unsigned)t < CONTENT_TOKENS_COUNT ? token_names[t] : "?";
}

int content_tokens_parse(const char *s)
{
	for (int i = 0; i < CONTENT_TOKENS_COUNT; i++)
		if (strcmp(s, token_names[i]) == 0)
			return i;
	return -1;
}

/* ---- tokens ---------------------------------------------------------------- */

static inline bool word_byte(unsigned char c)
{
	/* Bytes of multi-byte UTF-8 characters count as letters: a title in
	 * another script still has words. */
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

void content_tokenize(enum content_tokens kind, const char *title, size_t len,
		      void (*fn)(const char *tok, size_t tok_len, void *arg), void *arg)
{
	char w[CONTENT_MAX_TOKEN + 2];
	uint32_t emitted = 0;
	size_t i = 0;
	while (i < len && emitted < CONTENT_MAX_TOKENS) {
		while (i < len && !word_byte((unsigned char)title[i]))
			i++;
		size_t n = 0;
		w[n++] = ' ';
		for (; i < len && word_byte((unsigned char)title[i]); i++) {
			unsigned char c = (unsigned char)title[i];
			if (n < CONTENT_MAX_TOKEN + 1)
				w[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		size_t wl = n - 1; /* the word without its padding */
		if (wl < 2)
			continue;
		if (kind == CONTENT_WORDS) {
			fn(w + 1, wl, arg);
			emitted++;
			continue;
		}
		w[n++] = ' ';
		for (size_t g = 0; g + 3 <= n && emitted < CONTENT_MAX_TOKENS; g++, emitted++)
			fn(w + g, 3, arg);
	}
}

uint8_t content_price_band(float price)
{
	if (!(price >= 0.0f) || !isfinite(price))
		return 0;
	/* Cents and under share band 1; each doubling above adds
	 * CONTENT_BANDS_PER_OCTAVE. */
	double b = floor(log2((double)price / 0.01 + 1.0) * CONTENT_BANDS_PER_OCTAVE);
	return (uint8_t)(b > 253 ? 254 : b + 1);
}

/* ---- training --------------------------------------------------------------- */

static void settings_from(const content_options *o, content_settings *s)
{
	s->tokens = o->tokens;
	s->neighbors = o->neighbors ? o->neighbors : CONTENT_DEFAULT_NEIGHBORS;
	bool given = o->title_weight > 0 || o->category_weight > 0 || o->price_weight > 0;
	float tw = given ? o->title_weight : 0.8f, cw = given ? o->category_weight : 0.1f,
	      pw = given ? o->price_weight : 0.1f;
	float sum = tw + cw + pw;
	s->title_weight = tw / sum;
	s->category_weight = cw / sum;
	s->price_weight = pw / sum;
}

/* One item's tokens while the vocabulary is being built. */
struct tok_acc {
	idmap *vocab;
	uint32_t *ids; /* term ids of this title, repeats included */
	uint32_t n, cap;
};

static void collect(const char *tok, size_t len, void *arg)
{
	struct tok_acc *a = arg;
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 64;
		a->ids = xreallocarray(a->ids, a->cap, sizeof(*a->ids));
	}
	a->ids[a->n++] = idmap_intern(a->vocab, tok, len, NULL);
}

static int by_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static const idmap *sort_vocab;
static int by_term(const void *a, const void *b)
{
	size_t an, bn;
	const char *x = idmap_name(sort_vocab, *(const uint32_t *)a, &an);
	const char *y = idmap_name(sort_vocab, *(const uint32_t *)b, &bn);
	int c = memcmp(x, y, an < bn ? an : bn);
	return c ? c : (an > bn) - (an < bn);
}

static inline float idf_of(uint32_t items, uint32_t df)
{
	return (float)(log((1.0 + items) / (1.0 + df)) + 1.0);
}

/* The neighbour search, shared by the worker threads. */
struct nb_job {
	const content_result *r;
	const uint64_t *it_off;   /* item -> its (term, weight) entries */
	const neighbor *it_terms; /* (term id, title weight) */
	const uint32_t *category; /* per item (UINT32_MAX: none), or NULL */
	const uint64_t *cat_off;  /* category -> items, CSR */
	const uint32_t *cat_items;
	const uint8_t *skip;      /* per item: not recommendable */
	uint32_t max_df;          /* terms above it are not walked */
	_Atomic uint32_t next;
};

static float extra(const struct nb_job *J, uint32_t i, uint32_t j)
{
	const content_settings *s = &J->r->set;
	float e = 0.0f;
	if (J->category && J->category[i] != UINT32_MAX && J->category[i] == J->category[j])
		e += s->category_weight;
	if (J->r->band[i] && J->r->band[i] == J->r->band[j])
		e += s->price_weight;
	return e;
}

static void *nb_worker(void *arg)
{
	struct nb_job *J = arg;
	const content_result *r = J->r;
	uint32_t n = r->n_items;
	float *acc = xcalloc(n ? n : 1, sizeof(float));
	uint32_t *touched = xmallocarray(n ? n : 1, sizeof(uint32_t));
	for (;;) {
		uint32_t i = atomic_fetch_add(&J->next, 1);
		if (i >= n)
			break;
		neighbor *out = r->nbrs + (size_t)i * r->k;
		topk heap;
		topk_init(&heap, out, r->k);
		r->n_nbrs[i] = 0;
		if (J->skip[i])
			continue;
		uint32_t nt = 0;
		for (uint64_t e = J->it_off[i]; e < J->it_off[i + 1]; e++) {
			uint32_t t = J->it_terms[e].item;
			float wi = J->it_terms[e].score;
			uint64_t a = r->post_off[t], b = r->post_off[t + 1];
			if (b - a > J->max_df)
				continue;
			for (uint64_t p = a; p < b; p++) {
				neighbor q = r->post[p];
				if (acc[q.item] == 0.0f)
					touched[nt++] = q.item;
				acc[q.item] += wi * q.score;
			}
		}
		if (J->it_off[i] == J->it_off[i + 1] && J->category &&
		    J->category[i] != UINT32_MAX) {
			/* No title: its category's items, by price band. */
			uint32_t c = J->category[i];
			uint64_t a = J->cat_off[c], b = MIN(J->cat_off[c + 1], a + CONTENT_MAX_FALLBACK);
			for (uint64_t p = a; p < b; p++) {
				uint32_t j = J->cat_items[p];
				if (j != i && !J->skip[j])
					topk_push(&heap, j, extra(J, i, j));
			}
		}
		for (uint32_t k = 0; k < nt; k++) {
			uint32_t j = touched[k];
			float cos = acc[j];
			acc[j] = 0.0f;
			if (j == i || J->skip[j])
				continue;
			float s = r->set.title_weight * cos + extra(J, i, j);
			if (s > 0.0f)
				topk_push(&heap, j, s > 1.0f ? 1.0f : s);
		}
		r->n_nbrs[i] = topk_sort(&heap);
	}
	free(acc);
	free(touched);
	return NULL;
}

int content_train(const dataset *ds, const content_options *o, content_result *r, strbuf *err)
{
	memset(r, 0, sizeof(*r));
	if ((unsigned)o->tokens >= CONTENT_TOKENS_COUNT || o->neighbors > CONTENT_MAX_NEIGHBORS ||
	    o->title_weight < 0 || o->category_weight < 0 || o->price_weight < 0) {
		sb_adds(err, "content: bad options (tokens, neighbours or weights)");
		return -1;
	}
	uint32_t n = idmap_count(ds->items);
	if (!ds->item_title || n < 2)
		return 1;
	double t0 = util_monotonic();
	settings_from(o, &r->set);
	r->n_items = n;
	r->k = MIN(r->set.neighbors, n - 1);
	uint32_t cap = MIN(n, ds->items_cap);

	uint8_t *skip = xcalloc(n, 1);
	for (uint32_t i = 0; i < n; i++)
		skip[i] = i >= cap || (ds->item_flags && (ds->item_flags[i] & MODEL_ITEM_NOT_RECOMMENDABLE));

	/* Tokens per item, with term counts: (term, tf) runs by item. */
	idmap *vocab = idmap_create();
	struct tok_acc ta = { vocab, NULL, 0, 0 };
	uint64_t *it_off = xcalloc((size_t)n + 1, sizeof(uint64_t));
	neighbor *it_terms = NULL; /* (term id, tf then weight) */
	uint64_t n_it = 0, cap_it = 0;
	for (uint32_t i = 0; i < n; i++) {
		it_off[i] = n_it;
		const char *title = skip[i] ? NULL : ds->item_title[i];
		if (!title)
			continue;
		ta.n = 0;
		content_tokenize(r->set.tokens, title, strlen(title), collect, &ta);
		if (ta.n == 0)
			continue;
		r->items_with_title++;
		qsort(ta.ids, ta.n, sizeof(*ta.ids), by_u32);
		for (uint32_t k = 0; k < ta.n;) {
			uint32_t e = k;
			while (e < ta.n && ta.ids[e] == ta.ids[k])
				e++;
			if (n_it == cap_it) {
				cap_it = cap_it ? 2 * cap_it : 4096;
				it_terms = xreallocarray(it_terms, cap_it, sizeof(*it_terms));
			}
			it_terms[n_it++] = (neighbor){ ta.ids[k], (float)(e - k) };
			k = e;
		}
	}
	it_off[n] = n_it;
	free(ta.ids);

	/* The vocabulary sorted by bytes, so the server finds a term by a
	 * binary search; term ids renumbered to that order. */
	uint32_t nt = idmap_count(vocab);
	uint32_t *order = xmallocarray(nt ? nt : 1, sizeof(uint32_t));
	uint32_t *rank = xmallocarray(nt ? nt : 1, sizeof(uint32_t));
	for (uint32_t t = 0; t < nt; t++)
		order[t] = t;
	sort_vocab = vocab;
	qsort(order, nt, sizeof(*order), by_term);
	size_t bytes = 0;
	for (uint32_t t = 0; t < nt; t++) {
		size_t len;
		idmap_name(vocab, order[t], &len);
		rank[order[t]] = t;
		bytes += len;
	}
	r->n_terms = nt;
	r->terms = xmalloc(bytes ? bytes : 1);
	r->term_off = xmallocarray((size_t)nt + 1, sizeof(uint32_t));
	bytes = 0;
	for (uint32_t t = 0; t < nt; t++) {
		size_t len;
		const char *s = idmap_name(vocab, order[t], &len);
		r->term_off[t] = (uint32_t)bytes;
		memcpy(r->terms + bytes, s, len);
		bytes += len;
	}
	r->term_off[nt] = (uint32_t)bytes;
	idmap_free(vocab);
	free(order);

	/* df, idf, then each title's weights: tf x idf, L2-normalised. */
	uint32_t *df = xcalloc(nt ? nt : 1, sizeof(uint32_t));
	for (uint64_t e = 0; e < n_it; e++) {
		it_terms[e].item = rank[it_terms[e].item];
		df[it_terms[e].item]++;
	}
	free(rank);
	r->idf = xmallocarray(nt ? nt : 1, sizeof(float));
	for (uint32_t t = 0; t < nt; t++)
		r->idf[t] = idf_of(r->items_with_title, df[t]);
	for (uint32_t i = 0; i < n; i++) {
		double norm = 0;
		for (uint64_t e = it_off[i]; e < it_off[i + 1]; e++) {
			it_terms[e].score *= r->idf[it_terms[e].item];
			norm += (double)it_terms[e].score * it_terms[e].score;
		}
		float inv = norm > 0 ? (float)(1.0 / sqrt(norm)) : 0.0f;
		for (uint64_t e = it_off[i]; e < it_off[i + 1]; e++)
			it_terms[e].score *= inv;
	}

	/* Postings, term -> (item, weight), by item (items come in order). */
	r->post_off = xcalloc((size_t)nt + 1, sizeof(uint64_t));
	for (uint32_t t = 0; t < nt; t++)
		r->post_off[t + 1] = r->post_off[t] + df[t];
	r->post = xmallocarray(n_it ? n_it : 1, sizeof(neighbor));
	uint64_t *fill = xmallocarray(nt ? nt : 1, sizeof(uint64_t));
	memcpy(fill, r->post_off, (size_t)nt * sizeof(uint64_t));
	for (uint32_t i = 0; i < n; i++)
		for (uint64_t e = it_off[i]; e < it_off[i + 1]; e++)
			r->post[fill[it_terms[e].item]++] = (neighbor){ i, it_terms[e].score };
	free(fill);
	free(df);

	r->band = xcalloc(n, 1);
	for (uint32_t i = 0; i < cap; i++)
		r->band[i] = ds->item_price ? content_price_band(ds->item_price[i]) : 0;

	/* Category -> items, for title-less items. */
	uint32_t ncat = ds->categories ? idmap_count(ds->categories) : 0;
	uint64_t *cat_off = xcalloc((size_t)ncat + 1, sizeof(uint64_t));
	uint32_t *cat_items = xmallocarray(n, sizeof(uint32_t));
	uint32_t *category = ds->item_category ? xmallocarray(n, sizeof(uint32_t)) : NULL;
	for (uint32_t i = 0; category && i < n; i++) {
		category[i] = i < cap && ds->item_category[i] < ncat ? ds->item_category[i] : UINT32_MAX;
		if (category[i] != UINT32_MAX && !skip[i])
			cat_off[category[i] + 1]++;
	}
	for (uint32_t c = 0; c < ncat; c++)
		cat_off[c + 1] += cat_off[c];
	uint64_t *cfill = xmallocarray(ncat ? ncat : 1, sizeof(uint64_t));
	memcpy(cfill, cat_off, (size_t)ncat * sizeof(uint64_t));
	for (uint32_t i = 0; category && i < n; i++)
		if (category[i] != UINT32_MAX && !skip[i])
			cat_items[cfill[category[i]]++] = i;
	free(cfill);

	r->nbrs = xmallocarray((size_t)n * (r->k ? r->k : 1), sizeof(neighbor));
	r->n_nbrs = xcalloc(n, sizeof(uint32_t));
	/* A term most items share ("set", "of") costs df^2 to walk and says
	 * little (its idf is near 1): past this many items it only weighs in
	 * each title's norm. */
	uint32_t max_df = MAX(2000u, n / 20);
	struct nb_job job = { .r = r, .it_off = it_off, .it_terms = it_terms, .category = category,
			      .cat_off = cat_off, .cat_items = cat_items, .skip = skip,
			      .max_df = max_df };
	atomic_init(&job.next, 0);
	uint32_t threads = o->threads ? o->threads : (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
	util_run_parallel(MAX(threads, 1u), nb_worker, &job);

	free(category);
	free(cat_off);
	free(cat_items);
	free(it_off);
	free(it_terms);
	free(skip);
	r->secs = util_monotonic() - t0;
	return 0;
}

void content_result_free(content_result *r)
{
	if (!r)
		return;
	free(r->nbrs);
	free(r->n_nbrs);
	free(r->terms);
	free(r->term_off);
	free(r->idf);
	free(r->post_off);
	free(r->post);
	free(r->band);
	memset(r, 0, sizeof(*r));
}

/* ---- serving: the model's tables -------------------------------------------- */

struct content_index {
	content_settings set;
	uint32_t n_items;
	offtab terms, postings, nbrs;
	const unsigned char *idf;   /* f32[n_terms] */
	const unsigned char *bands; /* u8[n_items] */
};

int content_index_load(const content_blobs *b, const content_settings *set, uint32_t n_items,
		       content_index **out, strbuf *err)
{
	content_index *ci = xcalloc(1, sizeof(*ci));
	ci->set = *set;
	ci->n_items = n_items;
	if (offtab_check(b->terms, b->terms_size, 1, OFFTAB_ANY_COUNT, CONTENT_MAX_TOKEN + 2,
			 &ci->terms) ||
	    offtab_check(b->postings, b->postings_size, sizeof(neighbor), ci->terms.n, 0,
			 &ci->postings) ||
	    offtab_check(b->neighbors, b->neighbors_size, sizeof(neighbor), n_items,
			 set->neighbors, &ci->nbrs) ||
	    b->idf_size != (size_t)ci->terms.n * 4 || b->bands_size != n_items) {
		sb_adds(err, "content tables are corrupt or do not match the item count");
		goto corrupt;
	}
	ci->idf = b->idf;
	ci->bands = b->bands;
	/* Every pair names an item and has a score in (0, 1]; terms sorted. */
	for (uint32_t p = 0; p < ci->postings.end; p++) {
		neighbor nb = model_pair_at(ci->postings.payload, p);
		if (nb.item >= n_items || !(nb.score > 0.0f && nb.score <= 1.0001f))
			goto bad_pair;
	}
	for (uint32_t p = 0; p < ci->nbrs.end; p++) {
		neighbor nb = model_pair_at(ci->nbrs.payload, p);
		if (nb.item >= n_items || !(nb.score > 0.0f && nb.score <= 1.0001f))
			goto bad_pair;
	}
	for (uint32_t t = 0; t < ci->terms.n; t++) {
		float f;
		memcpy(&f, ci->idf + 4 * (size_t)t, 4);
		size_t an, bn;
		const char *a = content_term(ci, t, &an);
		if (!(f > 0.0f) || !isfinite(f) || an == 0)
			goto bad_pair;
		if (t > 0) {
			const char *p = content_term(ci, t - 1, &bn);
			int c = memcmp(p, a, an < bn ? an : bn);
			if (c > 0 || (c == 0 && bn >= an))
				goto bad_pair;
		}
	}
	*out = ci;
	return 0;
bad_pair:
	sb_adds(err, "content tables name items that do not exist, or scores, idf or the "
		     "vocabulary's order are wrong");
corrupt:
	free(ci);
	return STORE_CORRUPT;
}

void content_index_free(content_index *ci)
{
	free(ci);
}

const content_settings *content_get_settings(const content_index *ci)
{
	return &ci->set;
}

uint32_t content_vocab_size(const content_index *ci)
{
	return ci->terms.n;
}

const char *content_term(const content_index *ci, uint32_t t, size_t *len)
{
	uint32_t n;
	const char *s = (const char *)offtab_entry(&ci->terms, t, &n);
	*len = n;
	return s;
}

float content_idf(const content_index *ci, uint32_t t)
{
	float f;
	memcpy(&f, ci->idf + 4 * (size_t)t, 4);
	return f;
}

int content_term_find(const content_index *ci, const char *tok, size_t len, uint32_t *t)
{
	uint32_t lo = 0, hi = ci->terms.n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		size_t n;
		const char *s = content_term(ci, mid, &n);
		int c = memcmp(s, tok, n < len ? n : len);
		if (c == 0)
			c = (n > len) - (n < len);
		if (c == 0) {
			*t = mid;
			return 0;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return STORE_NOTFOUND;
}

uint8_t content_item_band(const content_index *ci, uint32_t idx)
{
	return ci->bands[idx];
}

void content_item_neighbors(const content_index *ci, uint32_t idx, const unsigned char **pairs,
			    uint32_t *n)
{
	*pairs = offtab_entry(&ci->nbrs, idx, n);
}

/* A query title's terms while it is tokenised. */
struct query_terms {
	const content_index *ci;
	uint32_t term[CONTENT_MAX_TOKENS];
	float w[CONTENT_MAX_TOKENS];
	uint32_t n;
	uint32_t unknown_n;
	char unknown[CONTENT_MAX_TOKENS][CONTENT_MAX_TOKEN];
	uint8_t unknown_len[CONTENT_MAX_TOKENS];
	float unknown_tf[CONTENT_MAX_TOKENS];
};

static void query_add(const char *tok, size_t len, void *arg)
{
	struct query_terms *q = arg;
	uint32_t t;
	if (content_term_find(q->ci, tok, len, &t) == 0) {
		for (uint32_t k = 0; k < q->n; k++)
			if (q->term[k] == t) {
				q->w[k] += 1.0f;
				return;
			}
		q->term[q->n] = t;
		q->w[q->n++] = 1.0f;
		return;
	}
	len = MIN(len, (size_t)CONTENT_MAX_TOKEN);
	for (uint32_t k = 0; k < q->unknown_n; k++)
		if (q->unknown_len[k] == len && memcmp(q->unknown[k], tok, len) == 0) {
			q->unknown_tf[k] += 1.0f;
			return;
		}
	memcpy(q->unknown[q->unknown_n], tok, len);
	q->unknown_len[q->unknown_n] = (uint8_t)len;
	q->unknown_tf[q->unknown_n++] = 1.0f;
}

int content_place(const struct model *m, const content_query *q, uint32_t n, neighbor *out,
		  uint32_t *n_out)
{
	const content_index *ci = model_content(m);
	*n_out = 0;
	if (!ci)
		return STORE_NOTFOUND;
	uint32_t ni = ci->n_items;
	if (n == 0 || ni == 0)
		return 0;
	struct query_terms *qt = xcalloc(1, sizeof(*qt));
	qt->ci = ci;
	if (q->title && q->title_len)
		content_tokenize(ci->set.tokens, q->title, q->title_len, query_add, qt);
	/* A term the catalog lacks weighs in the norm as train would have
	 * weighed it had the item been in the catalog. */
	double norm = 0;
	for (uint32_t k = 0; k < qt->n; k++) {
		qt->w[k] *= content_idf(ci, qt->term[k]);
		norm += (double)qt->w[k] * qt->w[k];
	}
	float max_idf = 0.0f; /* a term the catalog lacks: df 1, as in train */
	for (uint32_t t = 0; t < ci->terms.n; t++)
		max_idf = MAX(max_idf, content_idf(ci, t));
	for (uint32_t k = 0; k < qt->unknown_n; k++) {
		double w = qt->unknown_tf[k] * max_idf;
		norm += w * w;
	}
	float inv = norm > 0 ? (float)(1.0 / sqrt(norm)) : 0.0f;

	uint32_t cat = UINT32_MAX;
	bool has_cat = q->category && q->category_len;
	if (has_cat && model_category_lookup(m, q->category, q->category_len, &cat) != 0)
		cat = UINT32_MAX - 1; /* a name the model lacks: matches nothing */
	uint8_t band = content_price_band(q->price);
	const content_settings *s = &ci->set;

	float *acc = xcalloc(ni, sizeof(float));
	uint32_t *touched = xmallocarray(ni, sizeof(uint32_t));
	uint32_t nt = 0;
	for (uint32_t k = 0; k < qt->n; k++) {
		uint32_t units;
		const unsigned char *p = offtab_entry(&ci->postings, qt->term[k], &units);
		float wq = qt->w[k] * inv;
		for (uint32_t e = 0; e < units; e++) {
			neighbor nb = model_pair_at(p, e);
			if (acc[nb.item] == 0.0f)
				touched[nt++] = nb.item;
			acc[nb.item] += wq * nb.score;
		}
	}
	neighbor *heap_slots = xmallocarray(n, sizeof(neighbor));
	topk heap;
	topk_init(&heap, heap_slots, n);
	for (uint32_t k = 0; k < nt; k++) {
		uint32_t j = touched[k];
		if (j == q->self || !model_item_recommendable(m, j))
			continue;
		float v = s->title_weight * acc[j];
		if (cat < UINT32_MAX - 1 && model_item_category(m, j) == cat)
			v += s->category_weight;
		if (band && ci->bands[j] == band)
			v += s->price_weight;
		if (v > 0.0f)
			topk_push(&heap, j, v > 1.0f ? 1.0f : v);
	}
	if (nt == 0 && cat < UINT32_MAX - 1) {
		/* No title in common: its category's items, by price band. */
		uint32_t seen = 0;
		for (uint32_t j = 0; j < ni && seen < CONTENT_MAX_FALLBACK; j++) {
			if (model_item_category(m, j) != cat || j == q->self ||
			    !model_item_recommendable(m, j))
				continue;
			seen++;
			float v = s->category_weight + (band && ci->bands[j] == band ? s->price_weight : 0);
			topk_push(&heap, j, v);
		}
	}
	uint32_t got = topk_sort(&heap);
	memcpy(out, heap_slots, (size_t)got * sizeof(neighbor));
	*n_out = got;
	free(heap_slots);
	free(acc);
	free(touched);
	free(qt);
	return 0;
}
