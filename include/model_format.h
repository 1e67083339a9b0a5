/*
 * model_format: the records of a model file, shared by its writer
 * (model_writer.h, train) and its reader (model.h, the server). Plain
 * types, no functions: the serving path includes this, not train.h.
 * docs/design.md ("Model and state formats") has the picture.
 *
 * A model is one LMDB file, DIR/model.mdb, written once by `train` and only
 * read afterwards, and its checksum file DIR/model.sum. The model is built
 * as DIR/model.mdb.tmp and renamed into place after an fsync, so a model
 * file that exists is complete; the checksum is written after the rename,
 * so a model with a matching checksum is the one train wrote. Named
 * databases:
 *
 *   meta        "meta" -> JSON text: format_version, model_id, algorithm,
 *               parameters, counts, as_of, created; version 6: "content"
 *               {tokens, neighbors, title_weight, category_weight,
 *               price_weight, terms}
 *   items       "ids" -> a string table: u32 count, u32 offsets[count+1], bytes
 *               "titles" -> a string table of titles ("" for none)
 *               "categories" -> a string table of category names
 *               "category" -> u32[count] category index (UINT32_MAX: none)
 *               "price" -> f32[count] (< 0: unknown)
 *               "popularity" -> f32[count], customers per item
 *               "flags" -> u8[count], MODEL_ITEM_* bits (version 4)
 *               "image_urls", "urls" -> string tables ("" for none;
 *               version 4)
 *               "first_seen" -> i32[count], the day each item was first
 *               seen (days since 1970-01-01, UTC; MODEL_DAY_UNKNOWN:
 *               unknown): optional, models written before issue 18 lack
 *               it and read as all unknown
 *               "popular" -> (u32 item, f32 score)[count], by recent
 *               popularity (decayed like the model's history), best first
 *               (version 6, the content tables of content.h:)
 *               "content_terms" -> a string table of the title vocabulary,
 *               sorted by bytes
 *               "content_idf" -> f32[terms]
 *               "content_postings" -> a pair table per term: the items
 *               with it and their title weights, (u32 item, f32 weight)
 *               "content_bands" -> u8[count] price band (0: unknown)
 *   item_index  item id -> u32 item index
 *   neighbors   "all" -> u32 n_items, u32 offsets[n_items+1] (in pairs),
 *               then every item's (u32 item, f32 score) pairs, best first
 *               (version 5: the positive ones best first, then any
 *               negative ones strongest first): one value, so a list is
 *               found by arithmetic. An item
 *               flagged MODEL_ITEM_NOT_RECOMMENDABLE has no list and is in
 *               no other item's list.
 *               "content" (version 6) -> the same layout: every item's
 *               content neighbours (content.h), scores in (0, 1]
 *   customers   customer id -> customer_summary, history_entry[n_hist] (most
 *               recent first), then attrs_len bytes of attribute JSON
 *   precomputed (optional: train --precompute N; older models and models
 *               trained with --precompute 0 lack it, and builds that do not
 *               know it ignore it) "all" -> precomp_header, u8 count[n_lists]
 *               padded with zeros to a multiple of 4, then
 *               precomp_entry[n_lists * stride]: list i is entries
 *               [i*stride, i*stride + count[i]), best first, as the server
 *               scores customer i with no live events and the header's
 *               parameters. Customer i is the one whose
 *               customer_summary.precomputed is i + 1 (0: no list).
 *               "complete" (optional; lists written before it have none)
 *               -> a bitmap of n_lists bits, (n_lists + 7) / 8 bytes, bit
 *               i (byte i / 8, bit i % 8) set when list i holds every
 *               candidate scoring has for customer i: fewer than stride
 *               scored above zero (count[i] < stride), none cut off by a
 *               content item. A request that filters it below n tops up
 *               from the popular items, as scoring does.
 *               "extended" (optional; lists written before it have none,
 *               and builds that do not know it read the lists as above)
 *               -> a byte per list, n_lists bytes: the list's whole
 *               length L (bits 0-6, count[i] <= L <= stride) and, bit 7
 *               (PRECOMP_EXT_COMPLETE), whether those L entries hold every
 *               candidate scoring has (L < stride). count[i] stops at the
 *               first candidate whose answer source is content (hybrid
 *               scoring); entries [count[i], L) are the candidates from
 *               there on, in the same slots, a content one with its score
 *               negated (scores are above zero, so the sign is free, and
 *               builds that read only count[i] entries never see one).
 *               docs/design.md, "Precomputed lists".
 *
 * Records are in host byte order (little-endian on every platform we build
 * for; the meta record says so). LMDB places values at 2-byte alignment, so
 * records are decoded with memcpy, never through cast pointers.
 */
#ifndef SHOPKEEPER_MODEL_FORMAT_H
#define SHOPKEEPER_MODEL_FORMAT_H

#include <stdint.h>

/* 4: the items' flags and their image and page URLs. Version 3 models
 * are still read (every item recommendable, no URLs); older ones are
 * refused with a message to retrain. */
#define MODEL_FORMAT_VERSION 4
#define MODEL_FORMAT_OLDEST 3
/* 5 is format 4 whose neighbour lists may end in negative weights (EASE's
 * strongest, train_options.negatives): positives best first, then
 * negatives strongest first. Written only for such models, so a model
 * without them stays readable by builds that read 3 and 4. */
#define MODEL_FORMAT_VERSION_NEGATIVES 5
/* 6 is format 5 (negatives allowed) plus the content tables (content.h):
 * written only for a model trained with a catalog to compare items by, so
 * a model without them stays readable by builds that read 3 to 5. */
#define MODEL_FORMAT_VERSION_CONTENT 6
#define MODEL_FORMAT_NEWEST MODEL_FORMAT_VERSION_CONTENT
#define MODEL_FILE "model.mdb"
/* Beside it, written last by train and checked before any page of the
 * model is read: "crc32c HEX SIZE\n", the CRC-32C and size of model.mdb
 * (LMDB does not checksum pages; model_sum.c says why CRC-32C). */
#define MODEL_SUM_FILE "model.sum"

/* Item flags ("flags" table). */
#define MODEL_ITEM_NOT_RECOMMENDABLE 1u /* a fee, postage, an adjustment: never
					 * in an answer, no neighbours (catalog
					 * recommendable=false, --exclude-items) */

/* A "first_seen" entry for an item whose first day is unknown. */
#define MODEL_DAY_UNKNOWN INT32_MIN

/* History entry flags. */
#define HIST_PURCHASED 1u /* bought, net of returns, at least one unit */
#define HIST_RETURNED 2u  /* some units came back */

typedef struct neighbor {
	uint32_t item;
	float score;
} neighbor;

typedef struct history_entry {
	uint32_t item;
	uint32_t flags;   /* HIST_* */
	float weight;     /* affinity used to score: sum over the customer's
			   * events with this item of event weight x recency
			   * decay (0: no taste, e.g. returned in full) */
	float quantity;   /* net units bought (returns subtracted) */
	int64_t last_ts;  /* latest interaction with this item */
} history_entry;

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
	uint32_t precomputed;   /* 1 + the customer's list in "precomputed" (0:
				 * none; older models wrote 0 here) */
} customer_summary;

/* The head of the "precomputed" record: how many lists, their stride
 * (train --precompute N) and the scoring parameters they were computed
 * with (rec_params); a server scoring with others does not use them. */
typedef struct precomp_header {
	uint32_t n_lists;
	uint32_t stride;         /* entries per list, 1..100 */
	uint32_t neighbors_used;
	float cutoff;
	uint32_t negatives_used;
	uint32_t entry_size;     /* sizeof(precomp_entry) */
	float content_weight;    /* the hybrid blend the lists were scored with */
	float content_count;
	uint32_t history_weight; /* enum rec_history_weight they were scored with */
	uint32_t reserved;       /* 0 */
} precomp_header;

/* One precomputed candidate: its score as scoring sums it and the history
 * items that contributed most (UINT32_MAX: an unused slot; the used ones
 * come first). */
#define PRECOMP_BECAUSE 3
/* A byte of the "extended" record. */
#define PRECOMP_EXT_LENGTH 0x7fu   /* the list's whole length */
#define PRECOMP_EXT_COMPLETE 0x80u /* it holds every candidate */

typedef struct precomp_entry {
	uint32_t item;
	float score;
	uint32_t because[PRECOMP_BECAUSE];
} precomp_entry;

_Static_assert(sizeof(neighbor) == 8, "neighbour pairs are stored packed");
_Static_assert(sizeof(history_entry) == 24, "history entries are stored as laid out here");
_Static_assert(sizeof(customer_summary) == 40, "the customer head is stored as laid out here");
_Static_assert(sizeof(precomp_header) == 40, "the precomputed head is stored as laid out here");
_Static_assert(sizeof(precomp_entry) == 20, "precomputed entries are stored packed");

#endif
