/*
 * state_journal_internal: what the journal's two files share
 * (state_journal.c: the index, the writer, the merges, recovery;
 * state_journal_read.c: what readers see, the read-only view, the
 * readers' bounds). Private to them; state_internal.h has the contract.
 */
#ifndef SHOPKEEPER_STATE_JOURNAL_INTERNAL_H
#define SHOPKEEPER_STATE_JOURNAL_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "state_internal.h"

#define JOURNAL_SHARDS 64
/* 2^20 counts (4 MiB, in memory as they are touched): with 100,000
 * customers in the index (5 s of 20,000 events/s, each of another
 * customer) 9% of the other customers' reads still take a lock. */
#define JOURNAL_COUNT_BITS 20
#define JOURNAL_SLOTS 4096
#define CYCLE_KEY "journal_cycle"
#define CYCLE_HEAD 9u /* u64 through, u8 done, then the last customer merged */

typedef struct jevent {
	uint64_t seq;
	uint64_t commit_txn; /* in the journal of snapshots >= this */
	uint64_t merged_txn; /* 0: not merged; else in the logs of snapshots >= this */
	uint32_t off, len;   /* its encoded bytes in the customer's recs */
} jevent;

typedef struct jcust {
	struct jcust *next;  /* the bucket's chain */
	uint64_t hash;
	jevent *ev;          /* by seq */
	uint32_t n, cap;
	strbuf recs;
	uint64_t erased_txn; /* hidden from snapshots >= this; 0: not erased */
	bool no_tail;        /* no log yet (counted in new_customers) */
	uint64_t tail_txn;   /* the merge that gave them one */
	size_t len;
	char id[];
} jcust;

typedef struct jshard {
	pthread_mutex_t lock; /* the chains and every jcust in them */
	jcust **buckets;
	size_t nbuckets, ncust;
} jshard;

struct journal {
	jshard shards[JOURNAL_SHARDS];
	/* Customers in the index by their hash's top bits: a reader of a
	 * customer whose count is 0 takes no lock. */
	_Atomic uint32_t *counts;
	_Atomic uint64_t pending; /* events not merged */
	_Atomic uint64_t merged;  /* events merged since open */
	_Atomic int64_t new_customers;
	/* The writer's: */
	double oldest; /* util_monotonic() when the oldest pending event came; 0: none */
	bool cycling;  /* merging the events up to `through`, customer by customer */
	uint64_t through;
	double cycle_started;
	journal_ids cycle; /* the customers to merge, sorted */
	size_t cycle_pos;
	journal_ids erased; /* customers erased in the open transaction */
	/* The readers' snapshot bounds (UINT64_MAX: none held). */
	pthread_mutex_t slots_lock;
	bool used[JOURNAL_SLOTS];
	_Atomic uint64_t slots[JOURNAL_SLOTS];
	_Atomic uint32_t unslotted; /* readers without a slot: nothing is freed */
};

static inline void be64_put(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static inline uint64_t be64_get(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static inline jshard *shard_of(journal *jr, uint64_t hash)
{
	return &jr->shards[hash % JOURNAL_SHARDS];
}

/* The customer's entry (the shard locked), or NULL. */
static inline jcust *find(jshard *sh, uint64_t hash, const char *id, size_t len)
{
	if (!sh->nbuckets)
		return NULL;
	for (jcust *c = sh->buckets[(hash / JOURNAL_SHARDS) & (sh->nbuckets - 1)]; c; c = c->next)
		if (c->hash == hash && c->len == len && memcmp(c->id, id, len) == 0)
			return c;
	return NULL;
}

static inline bool visible(const jevent *e, uint64_t snap)
{
	return e->commit_txn <= snap && (e->merged_txn == 0 || e->merged_txn > snap);
}

static inline bool cust_hidden(const jcust *c, uint64_t snap)
{
	return c->erased_txn != 0 && c->erased_txn <= snap;
}

/* The customer's entry, added when not there (the shard locked), then
 * with no_tail as txn's table `tails` says (counted in new_customers). */
jcust *journal_customer(journal *jr, jshard *sh, uint64_t hash, const char *id, size_t len,
			MDB_txn *txn, MDB_dbi tails);
/* Appends an event (rec copied) to c (the shard locked). */
void journal_push(jcust *c, uint64_t seq, uint64_t commit_txn, const unsigned char *rec,
		  size_t rlen);
/* Calls fn on every customer of the index, each shard locked meanwhile;
 * fn may remove the one it is given. */
void journal_each(journal *jr, void (*fn)(journal *jr, jshard *sh, jcust *c, void *arg),
		  void *arg);

/* Calls fn for each record of the journal in txn that its logs do not
 * hold yet (those a merge under way, "journal_cycle", has not merged), in
 * sequence; id and rec are borrowed from txn. Stops at fn's first non-zero
 * return and returns it, MDB_CORRUPTED for a damaged record, or another
 * LMDB code. */
int journal_each_record(state *s, MDB_txn *txn,
			int (*fn)(void *arg, uint64_t seq, MDB_val id, const unsigned char *rec,
				  size_t rlen),
			void *arg);

#endif
