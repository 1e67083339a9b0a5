/*
 * precompute: the training-time half of the precomputed lists (see
 * precompute.h); the serving half is in recommend.c.
 */
#include "precompute.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "recommend.h"
#include "util.h"

_Static_assert(PRECOMPUTE_MAX == REC_MAX_N, "a list is at most one answer");
_Static_assert(PRECOMPUTE_MAX <= PRECOMP_EXT_LENGTH, "a list's length fits its byte");

/* Customers a thread takes at a time. A multiple of 8: each chunk's bits
 * in `complete` are whole bytes no other thread writes. */
#define PRECOMPUTE_CHUNK 256u
_Static_assert(PRECOMPUTE_CHUNK % 8 == 0, "chunks own whole bytes of the bitmap");

struct job {
	model *m;
	const idmap *customers;
	uint32_t n_customers, stride;
	rec_params params;
	atomic_uint next;   /* first customer of the next chunk */
	atomic_int failed;  /* a STORE_* code, 0 while none */
	uint8_t *counts;    /* per customer */
	uint8_t *complete;  /* a bit per customer (model_format.h) */
	uint8_t *extended;  /* per customer: "extended" (model_format.h) */
	precomp_entry *entries; /* n_customers * stride */
};

static int score_chunk(struct job *j, rec_ctx *c, model_txn *t, uint32_t from, uint32_t to)
{
	rec_filter f; /* the default request's: purchases out, because lists on */
	rec_filter_init(&f);
	rec_result *res = xmalloc(sizeof(*res));
	int rc = 0;
	for (uint32_t i = from; i < to && !rc; i++) {
		size_t len;
		const char *id = idmap_name(j->customers, i, &len);
		model_customer cust;
		if ((rc = model_customer_get(t, id, len, &cust)) != 0)
			break;
		if (cust.sum.precomputed != i + 1) {
			rc = STORE_CORRUPT;
			break;
		}
		if ((rc = rec_for_history(c, t, &cust, NULL, j->stride, &f, res)) != 0)
			break;
		/* The scored items come first; popular top-ups are not kept
		 * (they depend on the filters of each request). A content item
		 * is kept with its score negated (model_format.h). */
		precomp_entry *out = j->entries + (size_t)i * j->stride;
		uint32_t k = 0, first_content = UINT32_MAX;
		for (; k < res->n && res->items[k].source != REC_POPULAR; k++) {
			const rec_item *it = &res->items[k];
			bool content = it->source == REC_CONTENT;
			if (content && first_content == UINT32_MAX)
				first_content = k;
			out[k].item = it->item;
			out[k].score = content ? -it->score : it->score;
			for (uint32_t b = 0; b < PRECOMP_BECAUSE; b++)
				out[k].because[b] = b < it->n_because ? it->because[b] : UINT32_MAX;
		}
		/* Fewer than stride candidates and the rest popular top-ups:
		 * scoring had no other item above zero, so the list is every
		 * candidate any request's filter can choose from. */
		bool all = k < j->stride;
		j->extended[i] = (uint8_t)(k | (all ? PRECOMP_EXT_COMPLETE : 0));
		/* What builds without "extended" read: the personal prefix,
		 * complete only when no content item cut it off. */
		j->counts[i] = (uint8_t)MIN(k, first_content);
		if (all && first_content == UINT32_MAX)
			j->complete[i / 8] |= (uint8_t)(1u << (i % 8));
	}
	free(res);
	return rc;
}

static void *worker(void *arg)
{
	struct job *j = arg;
	model_txn *t = NULL;
	rec_ctx *c = rec_ctx_create(model_get_info(j->m)->n_items);
	rec_ctx_configure(c, &j->params);
	int rc = model_txn_begin(j->m, &t);
	while (!rc && !atomic_load(&j->failed)) {
		uint32_t from = atomic_fetch_add(&j->next, PRECOMPUTE_CHUNK);
		if (from >= j->n_customers)
			break;
		rc = score_chunk(j, c, t, from, MIN(from + PRECOMPUTE_CHUNK, j->n_customers));
	}
	if (rc) {
		int none = 0;
		atomic_compare_exchange_strong(&j->failed, &none, rc);
	}
	model_txn_free(t);
	rec_ctx_free(c);
	return NULL;
}

int precompute_write(model_writer *w, uint32_t n, uint32_t threads, const idmap *customers,
		     uint32_t n_customers, strbuf *err)
{
	const char *path;
	model *m = NULL;
	struct job j = { .customers = customers, .n_customers = n_customers,
			 .stride = MIN(MAX(n, 1u), PRECOMPUTE_MAX) };
	int rc = model_writer_pause(w, &path, err);
	if (rc)
		return rc;
	if ((rc = model_open_file(path, &m, err)) != 0)
		return rc;
	j.m = m;
	rec_params unset; /* what the model serves with when serve is given none */
	rec_params_unset(&unset);
	rec_params_for_model(&j.params, &unset, model_get_info(m));
	j.counts = xcalloc(n_customers ? n_customers : 1, 1);
	j.complete = xcalloc(((size_t)n_customers + 7) / 8 + 1, 1);
	j.extended = xcalloc(n_customers ? n_customers : 1, 1);
	j.entries = xcalloc((size_t)(n_customers ? n_customers : 1) * j.stride, sizeof(*j.entries));
	if (!threads) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		threads = (uint32_t)MAX(cores, 1);
	}
	util_run_parallel(MIN(threads, MAX(n_customers / PRECOMPUTE_CHUNK, 1u)), worker, &j);
	model_close(m);
	if ((rc = atomic_load(&j.failed)) != 0) {
		sb_addf(err, "precompute: scoring a customer failed: %s", store_strerror(rc));
		goto out;
	}
	precomp_header h = { .n_lists = n_customers, .stride = j.stride,
			     .neighbors_used = j.params.neighbors_used, .cutoff = j.params.cutoff,
			     .negatives_used = j.params.negatives_used,
			     .entry_size = sizeof(precomp_entry),
			     .content_weight = j.params.content_weight,
			     .content_count = j.params.content_count,
			     .history_weight = j.params.history_weight };
	uint64_t bytes = sizeof(h) + 2 * (uint64_t)n_customers + 4 +
			 (uint64_t)n_customers * j.stride * sizeof(precomp_entry) +
			 (n_customers + 7) / 8 + 4096;
	if ((rc = model_writer_resume(w, bytes, err)) == 0)
		rc = model_writer_put_precomputed(w, &h, j.counts, j.complete, j.extended,
						  j.entries, err);
out:
	free(j.counts);
	free(j.complete);
	free(j.extended);
	free(j.entries);
	return rc;
}
