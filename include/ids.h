/*
 * ids: the rules every external customer or item id follows, in files and in
 * requests alike, so that what was trained is what can be asked for.
 */
#ifndef SHOPKEEPER_IDS_H
#define SHOPKEEPER_IDS_H

#include <stdbool.h>
#include <stddef.h>

/* Longest id accepted, in bytes (LMDB keys are limited to 511). */
#define ID_MAX_LEN 256

/* Normalises an id without copying it: start and len are narrowed to the id
 * without surrounding spaces or tabs, and an all-digit id written as a float
 * ("17850.0", as spreadsheet and pandas exports do) loses its ".0" suffix.
 * Returns false when the result is empty, longer than ID_MAX_LEN, or holds
 * control characters; the id is then unusable. */
bool id_normalize(const char **start, size_t *len);

#endif
