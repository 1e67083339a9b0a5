/*
 * topk: the K best (item, score) pairs of a stream, with a bounded min-heap.
 *
 * "Better" means a higher score, then a lower item index, so results are
 * deterministic whatever order the candidates arrive in. Used by the trainer
 * (neighbours per item) and on the request path (top-N recommendations), so
 * everything is inline and nothing allocates: the caller provides the array.
 * topk_select (topk.c) picks the K best of an array instead, for the
 * trainer's rows of candidates.
 */
#ifndef SHOPKEEPER_TOPK_H
#define SHOPKEEPER_TOPK_H

#include <stdbool.h>
#include <stdint.h>

#include "model_format.h" /* neighbor */

typedef struct topk {
	neighbor *heap; /* caller-owned array of k slots */
	uint32_t k;     /* capacity */
	uint32_t n;     /* filled */
} topk;

static inline void topk_init(topk *t, neighbor *slots, uint32_t k)
{
	t->heap = slots;
	t->k = k;
	t->n = 0;
}

/* a ranks below b */
static inline bool topk_worse(neighbor a, neighbor b)
{
	return a.score < b.score || (a.score == b.score && a.item > b.item);
}

static inline void topk_sift_down(neighbor *h, uint32_t n, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && topk_worse(h[l], h[m]))
			m = l;
		if (r < n && topk_worse(h[r], h[m]))
			m = r;
		if (m == i)
			return;
		neighbor tmp = h[i];
		h[i] = h[m];
		h[m] = tmp;
		i = m;
	}
}

/* Offers a candidate; the heap root is always the worst kept. */
static inline void topk_push(topk *t, uint32_t item, float score)
{
	neighbor c = { item, score };
	if (t->n < t->k) {
		uint32_t i = t->n++;
		t->heap[i] = c;
		while (i > 0) {
			uint32_t p = (i - 1) / 2;
			if (!topk_worse(t->heap[i], t->heap[p]))
				break;
			neighbor tmp = t->heap[i];
			t->heap[i] = t->heap[p];
			t->heap[p] = tmp;
			i = p;
		}
	} else if (t->k > 0 && topk_worse(t->heap[0], c)) {
		t->heap[0] = c;
		topk_sift_down(t->heap, t->n, 0);
	}
}

/* The score a candidate must beat to enter (-inf while not full). */
static inline float topk_threshold(const topk *t)
{
	return t->n < t->k ? -__builtin_inff() : t->heap[0].score;
}

/* Sorts the kept pairs best first, in place; returns how many there are.
 * The heap is consumed (t->n is unchanged but the order is no heap). */
static inline uint32_t topk_sort(topk *t)
{
	uint32_t n = t->n;
	for (uint32_t end = n; end > 1; end--) {
		neighbor tmp = t->heap[0];
		t->heap[0] = t->heap[end - 1];
		t->heap[end - 1] = tmp;
		topk_sift_down(t->heap, end - 1, 0);
	}
	return n;
}

/* Moves the best min(k, n) candidates of cand[0..n) to its front, sorted
 * best first, and returns how many that is; the rest of the array is left
 * in some order. The order is total (items are distinct), so the result
 * does not depend on the order the candidates came in. For picking K of
 * many at once; topk_push is for streams. */
uint32_t topk_select(neighbor *cand, uint32_t n, uint32_t k);

#endif
