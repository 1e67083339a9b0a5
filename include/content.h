/*
 * content: item-item similarity from the catalog (title, category, price),
 * for items the interactions say little or nothing about: new arrivals
 * nobody has bought yet get neighbours, and become recommendable.
 *
 * An item's content vector has three blocks, each L2-normalised and then
 * scaled by the square root of its weight (the weights sum to 1):
 *   title     TF-IDF over its tokens (content_tokenize), idf =
 *             ln((1 + items) / (1 + df)) + 1 over the catalog's items;
 *   category  one-hot on its category (none: the block is empty);
 *   price     one-hot on its price band (CONTENT_BANDS_PER_OCTAVE bands
 *             per doubling of the price; unknown price: empty).
 * The similarity of two items is the dot product of their vectors:
 *   title_weight * cos(titles) + category_weight * [same category]
 *   + price_weight * [same price band]
 * which lies in [0, 1]. Only pairs that share a title token are scored
 * (an inverted index term -> items, sparse dot products): the category and
 * price blocks reorder an item's title matches, they do not make two items
 * with nothing in common in their titles neighbours. An item without a
 * usable title is placed by category and price alone (its category's items
 * in the same or the nearest price band, CONTENT_MAX_FALLBACK at most).
 *
 * Training (content_train) computes every catalog item's top-N content
 * neighbours, items without interactions included, and the vocabulary,
 * idf and postings the model stores (model_format.h, format 6). Serving
 * reads them from the model (model_content) and places an item the model
 * does not know (PUT /v1/items/{id}) among the model's items with
 * content_place.
 *
 * Errors: 0 or a negative STORE_* code (store.h); training errors as -1
 * with a message.
 */
#ifndef SHOPKEEPER_CONTENT_H
#define SHOPKEEPER_CONTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest.h"
#include "model_format.h" /* neighbor */
#include "strbuf.h"

struct model;

/* How titles are cut into tokens. */
enum content_tokens {
	CONTENT_WORDS = 0, /* maximal runs of letters and digits, ASCII letters
			    * folded to lower case; one-character runs dropped */
	CONTENT_CHAR3 = 1, /* every word's character 3-grams, the word padded
			    * with a space on each side ("red" -> " re",
			    * "red", "ed "): spelling variants and plurals
			    * share most of their grams */
	CONTENT_TOKENS_COUNT
};
/* "words", "char3"; content_tokens_parse returns -1 for an unknown name. */
const char *content_tokens_name(enum content_tokens t);
int content_tokens_parse(const char *s);

#define CONTENT_DEFAULT_NEIGHBORS 50u
#define CONTENT_MAX_NEIGHBORS 1000u
#define CONTENT_MAX_TOKENS 256u    /* tokens of one title (the rest ignored) */
#define CONTENT_MAX_TOKEN 64u      /* bytes of one token (longer: cut) */
#define CONTENT_MAX_FALLBACK 10000u /* items scanned to place a title-less item */
#define CONTENT_BANDS_PER_OCTAVE 2u /* price bands per doubling */

/* Options of a training run; a zero field means its default. */
typedef struct content_options {
	uint32_t neighbors;       /* N per item (default CONTENT_DEFAULT_NEIGHBORS) */
	enum content_tokens tokens; /* default CONTENT_WORDS (measured, bench/README.md) */
	float title_weight;       /* default 0.8 */
	float category_weight;    /* default 0.1 */
	float price_weight;       /* default 0.1 */
	uint32_t threads;         /* default: the number of cores */
} content_options;

/* What the model stores and the server reads back: the settings a model
 * was trained with (model meta record "content"). */
typedef struct content_settings {
	enum content_tokens tokens;
	uint32_t neighbors;
	float title_weight, category_weight, price_weight; /* normalised: sum 1 */
} content_settings;

/* The result of content_train: owned by the caller, content_result_free. */
typedef struct content_result {
	content_settings set;
	uint32_t n_items;   /* the dataset's items */
	uint32_t k;         /* list stride (= set.neighbors, at most n_items - 1) */
	neighbor *nbrs;     /* item i's neighbours: nbrs[i*k .. i*k + n_nbrs[i]),
			     * best first, scores in (0, 1] */
	uint32_t *n_nbrs;
	/* The vocabulary, sorted by bytes: term t is
	 * terms[term_off[t] .. term_off[t+1]), its idf idf[t], and the items
	 * that have it with their title-block weights post[post_off[t] ..
	 * post_off[t+1]) as (item, weight) pairs, by item. */
	uint32_t n_terms;
	char *terms;
	uint32_t *term_off;
	float *idf;
	uint64_t *post_off;
	neighbor *post;
	uint8_t *band;      /* per item: price band + 1 (0: unknown price) */
	uint32_t items_with_title;
	double secs;
} content_result;

/* Builds the content model of ds's catalog (ds->item_title, item_category,
 * item_price; items flagged MODEL_ITEM_NOT_RECOMMENDABLE get no list and
 * are in none). Returns 0 and fills *out (freed by content_result_free),
 * 1 when the catalog has no titles, categories or prices to compare
 * (*out is then empty), or -1 with a message in *err (bad options). */
int content_train(const dataset *ds, const content_options *o, content_result *out, strbuf *err);
/* Frees what r owns and zeroes it; safe on a zeroed result. */
void content_result_free(content_result *r);

/* Cuts title[0..len) into tokens, calling fn(token, token_len, arg) for
 * each in order (repeats included), at most CONTENT_MAX_TOKENS. The token
 * is borrowed for the call. Training and content_place use this one
 * function, so a title is tokenised the same way on both sides. */
void content_tokenize(enum content_tokens kind, const char *title, size_t len,
		      void (*fn)(const char *tok, size_t tok_len, void *arg), void *arg);

/* The price band of a price (0: unknown, i.e. price < 0 or not finite; a
 * band counts from 1 upwards, CONTENT_BANDS_PER_OCTAVE per doubling). */
uint8_t content_price_band(float price);

/* ---- serving: the model's content tables ---------------------------------
 * A model of format 6 trained with a catalog carries them; model_content
 * (model.h) gives NULL for a model without (older format, no catalog). All
 * of it is read-only after model_open and borrowed from the model: valid
 * until model_close, safe to read from any thread at once. */
typedef struct content_index content_index;

/* The settings the model's content tables were built with. */
const content_settings *content_get_settings(const content_index *ci);
/* The vocabulary: n_terms, term t's bytes (not NUL-terminated) and idf. */
uint32_t content_vocab_size(const content_index *ci);
const char *content_term(const content_index *ci, uint32_t t, size_t *len);
float content_idf(const content_index *ci, uint32_t t);
/* Finds a term: 0 and *t, or STORE_NOTFOUND (binary search). */
int content_term_find(const content_index *ci, const char *tok, size_t len, uint32_t *t);
/* Model item idx's price band as trained (0: unknown). */
uint8_t content_item_band(const content_index *ci, uint32_t idx);
/* Model item idx's content neighbours, best first, scores in (0, 1]
 * (zero-copy, O(1); decode with model_pair_at). idx < n_items is the
 * caller's precondition. */
void content_item_neighbors(const content_index *ci, uint32_t idx, const unsigned char **pairs,
			    uint32_t *n);

/* An item the model may not know, described as the catalog would. */
typedef struct content_query {
	const char *title;      /* borrowed; NULL or len 0: none */
	size_t title_len;
	const char *category;   /* a category name; NULL or len 0: none (a name
				 * the model does not know matches no item) */
	size_t category_len;
	float price;            /* < 0: unknown */
	uint32_t self;          /* a model item to leave out of the answer (the
				 * item itself when the model knows it);
				 * UINT32_MAX: none */
} content_query;

/* The query item's n best content neighbours among m's items, best first,
 * with the similarity the model's own lists use (the same tokens, idf and
 * weights), into out[0 .. *n_out). Items not recommendable in the model
 * are left out; live overrides (out of stock) are the caller's business.
 * Thread safety: reads only m's immutable tables; call from any thread,
 * concurrently. It allocates O(n_items) scratch per call and costs
 * O(postings of the title's terms): meant for PUT /v1/items/{id}, not for
 * the per-request path. Returns 0 (*n_out may be 0: nothing in common),
 * or STORE_NOTFOUND when m has no content tables. */
int content_place(const struct model *m, const content_query *q, uint32_t n, neighbor *out,
		  uint32_t *n_out);

/* (For model.c.) Checks and wraps the content tables read from a model:
 * terms (string table), idf (f32[n_terms]), postings (pair table per
 * term), neighbours (pair table per item), bands (u8[n_items]) and the
 * settings. The blobs are borrowed for the index's life. Returns 0 and
 * *out (freed with content_index_free), or STORE_CORRUPT with a message
 * in *err. */
typedef struct content_blobs {
	const void *terms, *idf, *postings, *neighbors, *bands;
	size_t terms_size, idf_size, postings_size, neighbors_size, bands_size;
} content_blobs;
int content_index_load(const content_blobs *b, const content_settings *set, uint32_t n_items,
		       content_index **out, strbuf *err);
/* content_index_free(NULL) does nothing. */
void content_index_free(content_index *ci);

#endif
