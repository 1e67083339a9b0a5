/*
 * idmap: string interning with open addressing (linear probing).
 */
#include "idmap.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define EMPTY UINT32_MAX

struct idmap {
	uint32_t *slots; /* index into offs, or EMPTY */
	uint32_t mask;   /* table size - 1 */
	uint32_t count;
	uint64_t *offs;  /* start of each string in arena; offs[count] = end */
	uint32_t offs_cap;
	char *arena;     /* strings, each followed by NUL */
	size_t arena_len, arena_cap;
};

uint64_t idmap_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

idmap *idmap_create(void)
{
	idmap *m = xcalloc(1, sizeof(*m));
	m->mask = 1023;
	m->slots = xmallocarray((size_t)m->mask + 1, sizeof(*m->slots));
	memset(m->slots, 0xff, ((size_t)m->mask + 1) * sizeof(*m->slots));
	m->offs_cap = 1024;
	m->offs = xmallocarray(m->offs_cap + 1, sizeof(*m->offs));
	m->offs[0] = 0;
	m->arena_cap = 16384;
	m->arena = xmalloc(m->arena_cap);
	return m;
}

void idmap_free(idmap *m)
{
	if (!m)
		return;
	free(m->slots);
	free(m->offs);
	free(m->arena);
	free(m);
}

uint32_t idmap_count(const idmap *m)
{
	return m->count;
}

const char *idmap_name(const idmap *m, uint32_t idx, size_t *len)
{
	if (len)
		*len = (size_t)(m->offs[idx + 1] - m->offs[idx] - 1);
	return m->arena + m->offs[idx];
}

static bool same(const idmap *m, uint32_t idx, const char *s, size_t n)
{
	size_t len = (size_t)(m->offs[idx + 1] - m->offs[idx] - 1);
	return len == n && memcmp(m->arena + m->offs[idx], s, n) == 0;
}

static uint32_t *probe(const idmap *m, const char *s, size_t n)
{
	uint32_t i = (uint32_t)idmap_hash(s, n) & m->mask;
	for (;;) {
		uint32_t *slot = &m->slots[i];
		if (*slot == EMPTY || same(m, *slot, s, n))
			return slot;
		i = (i + 1) & m->mask;
	}
}

static void rehash(idmap *m)
{
	uint32_t size = (m->mask + 1) * 2;
	free(m->slots);
	m->slots = xmallocarray(size, sizeof(*m->slots));
	memset(m->slots, 0xff, (size_t)size * sizeof(*m->slots));
	m->mask = size - 1;
	for (uint32_t idx = 0; idx < m->count; idx++) {
		size_t len;
		const char *s = idmap_name(m, idx, &len);
		*probe(m, s, len) = idx;
	}
}

bool idmap_find(const idmap *m, const char *s, size_t n, uint32_t *idx)
{
	uint32_t v = *probe(m, s, n);
	if (v == EMPTY)
		return false;
	*idx = v;
	return true;
}

uint32_t idmap_intern(idmap *m, const char *s, size_t n, bool *created)
{
	uint32_t *slot = probe(m, s, n);
	if (*slot != EMPTY) {
		if (created)
			*created = false;
		return *slot;
	}
	if (m->count == EMPTY - 1)
		abort(); /* 4 billion ids: far beyond any limit upstream */
	if (m->arena_len + n + 1 > m->arena_cap) {
		while (m->arena_len + n + 1 > m->arena_cap)
			m->arena_cap *= 2;
		m->arena = xrealloc(m->arena, m->arena_cap);
	}
	memcpy(m->arena + m->arena_len, s, n);
	m->arena[m->arena_len + n] = '\0';
	m->arena_len += n + 1;
	if (m->count + 1 > m->offs_cap) {
		m->offs_cap *= 2;
		m->offs = xreallocarray(m->offs, (size_t)m->offs_cap + 1, sizeof(*m->offs));
	}
	uint32_t idx = m->count++;
	m->offs[idx + 1] = m->arena_len;
	*slot = idx;
	if (created)
		*created = true;
	/* Keep the load factor under 1/2 so probes stay short. */
	if ((uint64_t)m->count * 2 > (uint64_t)m->mask + 1)
		rehash(m);
	return idx;
}
