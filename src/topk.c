/*
 * topk: selection of the K best candidates of an array (the trainer's
 * neighbour lists), by quickselect then a sort of the K kept.
 *
 * For a row of G with a few hundred or thousand candidates this does about
 * three comparisons per candidate, where the bounded heap (topk.h) pays a
 * sift of log K for each of the K ln(n/K) candidates that enter it.
 */
#include "topk.h"

/* a ranks above b: the order topk.h defines, total since items differ. */
static inline bool better(neighbor a, neighbor b)
{
	return topk_worse(b, a);
}

static inline void swap(neighbor *a, uint32_t i, uint32_t j)
{
	neighbor t = a[i];
	a[i] = a[j];
	a[j] = t;
}

static void insertion_sort(neighbor *a, uint32_t n)
{
	for (uint32_t i = 1; i < n; i++) {
		neighbor v = a[i];
		uint32_t j = i;
		for (; j > 0 && better(v, a[j - 1]); j--)
			a[j] = a[j - 1];
		a[j] = v;
	}
}

/* Partitions a[lo..hi) (hi - lo >= 3) around the median of its first,
 * middle and last entries; returns the pivot's final index s: a[lo..s)
 * rank above it, a[s+1..hi) below. */
static uint32_t partition(neighbor *a, uint32_t lo, uint32_t hi)
{
	uint32_t mid = lo + (hi - lo) / 2, last = hi - 1;
	if (better(a[mid], a[lo]))
		swap(a, mid, lo);
	if (better(a[last], a[mid])) {
		swap(a, last, mid);
		if (better(a[mid], a[lo]))
			swap(a, mid, lo);
	}
	swap(a, mid, last); /* the median, as pivot, at the end */
	neighbor pivot = a[last];
	uint32_t s = lo;
	for (uint32_t q = lo; q < last; q++)
		if (better(a[q], pivot))
			swap(a, q, s++);
	swap(a, s, last);
	return s;
}

static void sort_best_first(neighbor *a, uint32_t lo, uint32_t hi)
{
	while (hi - lo > 16) {
		uint32_t s = partition(a, lo, hi);
		/* Recurse into the smaller side, loop on the larger. */
		if (s - lo < hi - s - 1) {
			sort_best_first(a, lo, s);
			lo = s + 1;
		} else {
			sort_best_first(a, s + 1, hi);
			hi = s;
		}
	}
	insertion_sort(a + lo, hi - lo);
}

uint32_t topk_select(neighbor *cand, uint32_t n, uint32_t k)
{
	if (n > k) {
		/* Invariant: a[0..lo) are among the k best, a[hi..n) are not. */
		uint32_t lo = 0, hi = n;
		while (hi - lo > 16) {
			uint32_t s = partition(cand, lo, hi);
			if (s == k)
				break;
			if (s < k)
				lo = s + 1;
			else
				hi = s;
		}
		if (hi - lo <= 16)
			insertion_sort(cand + lo, hi - lo);
		n = k;
	}
	sort_best_first(cand, 0, n);
	return n;
}
