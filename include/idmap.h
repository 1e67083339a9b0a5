/*
 * idmap: interns external id strings (customer ids, item ids) as dense
 * indexes 0..count-1, in order of first appearance.
 *
 * Open addressing over a power-of-two table of indexes; the strings live in
 * one growing arena, so a million ids cost a few allocations, not a million.
 */
#ifndef SHOPKEEPER_IDMAP_H
#define SHOPKEEPER_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct idmap idmap;

/* Creates an empty map. Never fails (allocation aborts on OOM). */
idmap *idmap_create(void);
/* Frees the map and its strings; idmap_free(NULL) does nothing. */
void idmap_free(idmap *m);

/* Returns the index of s[0..n), adding it if new (*created tells which;
 * `created` may be NULL). The map copies the bytes. */
uint32_t idmap_intern(idmap *m, const char *s, size_t n, bool *created);
/* Looks s[0..n) up without adding it: true and *idx when present. */
bool idmap_find(const idmap *m, const char *s, size_t n, uint32_t *idx);
/* The string of index idx (< count), NUL-terminated, owned by the map and
 * valid until the next intern or free. *len may be NULL. */
const char *idmap_name(const idmap *m, uint32_t idx, size_t *len);
uint32_t idmap_count(const idmap *m);

/* 64-bit FNV-1a: stable across runs and platforms. */
uint64_t idmap_hash(const char *s, size_t n);

#endif
