/*
 * train_internal: what the files of the trainer share (train.c: the Gram
 * matrix, similarities, top-K, EASE; train_hist.c: phase 1, histories).
 * Not for other modules: train.h is the contract.
 */
#ifndef SHOPKEEPER_TRAIN_INTERNAL_H
#define SHOPKEEPER_TRAIN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ingest.h"
#include "train.h"

/* An array of count * size bytes that is written once, soon: large ones
 * are advised to transparent huge pages, since the first touch of fresh
 * memory costs a page fault per 4 KiB page (microseconds each in a VM),
 * and 2 MiB pages take 512 times fewer. Owned by the caller, freed with
 * free(); aborts when out of memory, as xmalloc does. */
void *train_big_alloc(size_t count, size_t size);

/* Phase 1: groups ds's rows by customer, folds repeats of an item into one
 * history entry (w: the weight of each event type, indexed by EVENT_*,
 * decayed by opt's half-life to opt->as_of), and fills r's histories and
 * popularity, on up to `threads` threads. Returns X's values, x[k] for
 * r->hist[k], owned by the caller (free()). */
float *train_build_histories(const dataset *ds, const train_options *opt, const float w[3],
			     uint32_t threads, train_result *r);

#endif
