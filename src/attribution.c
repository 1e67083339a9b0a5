/*
 * attribution: the serve-time hook's batcher, its flusher thread, and the
 * report. See attribution.h; the counting itself is state_attr.c's, inside
 * the state's transactions.
 */
#include "attribution.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abstats.h"
#include "eventlog.h"
#include "ids.h"
#include "model.h"
#include "util.h"

#define DEFS_MAX 64u                     /* experiments defined at once */
#define ARENA_BYTES (ATTRIBUTION_BATCH_MAX * 64u) /* customers' ids of a batch */

_Static_assert(ATTRIBUTION_ITEMS_MAX == STATE_ATTR_ITEMS, "one bound, two names");
_Static_assert(ATTRIBUTION_MAX_VARIANTS == STATE_ATTR_VARIANTS, "one bound, two names");
_Static_assert(ATTRIBUTION_NAME_MAX == STATE_ATTR_NAME_MAX, "one bound, two names");

/* One interval's served answers: the customers' ids in `arena`. */
struct batch {
	state_attr_served *served; /* ATTRIBUTION_BATCH_MAX */
	uint32_t n;
	char *arena;               /* ARENA_BYTES */
	size_t used;
};

/* A definition with its strings owned. */
struct def {
	uint32_t experiment;
	char name[ATTRIBUTION_NAME_MAX];
	size_t name_len;
	uint32_t n;
	char variant[ATTRIBUTION_MAX_VARIANTS][ATTRIBUTION_NAME_MAX];
	size_t variant_len[ATTRIBUTION_MAX_VARIANTS];
	double share[ATTRIBUTION_MAX_VARIANTS];
	bool dirty;                /* not yet written to the state */
};

struct attribution {
	state *s;
	pthread_mutex_t lock;      /* the current batch and the definitions */
	pthread_cond_t wake;       /* stop */
	struct batch cur, spare;   /* filled by requests / being written */
	struct def defs[DEFS_MAX];
	uint32_t ndefs;
	pthread_mutex_t flush_lock; /* one flush at a time */
	struct def copies[DEFS_MAX]; /* the definitions a flush writes (flush_lock) */
	pthread_t thread;
	bool stopping;
	atomic_ulong dropped;
	/* serve --event-log: served answers go to the shared log (every
	 * replica applies them, applier.c); NULL on a single node. */
	eventlog *log;
	eventlog_record *recs;     /* ATTRIBUTION_BATCH_MAX, the flusher's */
	unsigned char *hash_bytes; /* their hashes, 8 bytes each */
};

_Static_assert(ATTRIBUTION_ITEMS_MAX <= EVENTLOG_SERVED_ITEMS, "a served record holds them");
_Static_assert(ATTRIBUTION_MAX_VARIANTS - 1 <= EVENTLOG_VARIANT_MAX, "a served record holds it");

/* Appends the batch to the shared log as served records. Returns 0 or an
 * EVENTLOG_E* code with a message in *err. */
static int append_served(attribution *a, const struct batch *b, strbuf *err)
{
	for (uint32_t i = 0; i < b->n; i++) {
		const state_attr_served *sv = &b->served[i];
		unsigned char *h = a->hash_bytes + (size_t)i * 8 * ATTRIBUTION_ITEMS_MAX;
		for (uint32_t k = 0; k < sv->n_hashes; k++)
			for (int j = 0; j < 8; j++)
				h[8 * k + (uint32_t)j] = (unsigned char)(sv->item_hash[k] >> (8 * j));
		a->recs[i] = (eventlog_record){ .kind = EVENTLOG_SERVED, .customer = sv->customer,
						.customer_len = sv->customer_len, .ts = sv->ts,
						.experiment = sv->experiment,
						.variant = (uint8_t)sv->variant, .n_items = sv->n_items,
						.n_hashes = (uint8_t)sv->n_hashes, .hashes = h };
	}
	int rc = eventlog_append(a->log, a->recs, b->n, NULL, 0, 0, NULL);
	if (rc)
		sb_addf(err, "event log: %s", eventlog_errmsg(a->log));
	return rc;
}

static void batch_init(struct batch *b)
{
	b->served = xmallocarray(ATTRIBUTION_BATCH_MAX, sizeof(*b->served));
	b->arena = xmalloc(ARENA_BYTES);
	b->n = 0;
	b->used = 0;
}

static void batch_release(struct batch *b)
{
	free(b->served);
	free(b->arena);
}

int attribution_flush(attribution *a, strbuf *err)
{
	state_attr_def defs[DEFS_MAX];
	uint32_t nd = 0;
	pthread_mutex_lock(&a->flush_lock);
	pthread_mutex_lock(&a->lock);
	struct batch b = a->cur;
	a->cur = a->spare;
	a->spare = b;
	/* Strings of the definitions: borrowed from a->defs, which change only
	 * under a->lock and only by attribution_define, whose new text is
	 * flushed next time; a copy here keeps the commit consistent. */
	for (uint32_t i = 0; i < a->ndefs; i++) {
		if (!a->defs[i].dirty)
			continue;
		a->defs[i].dirty = false;
		struct def *d = &a->copies[nd];
		*d = a->defs[i];
		state_attr_def *sd = &defs[nd++];
		memset(sd, 0, sizeof(*sd));
		sd->experiment = d->experiment;
		sd->name = d->name;
		sd->name_len = d->name_len;
		sd->n = d->n;
		for (uint32_t v = 0; v < d->n; v++) {
			sd->variant[v] = d->variant[v];
			sd->variant_len[v] = d->variant_len[v];
			sd->share[v] = d->share[v];
		}
	}
	pthread_mutex_unlock(&a->lock);
	int rc = 0;
	if (a->log && a->spare.n) {
		rc = append_served(a, &a->spare, err);
		a->spare.n = 0; /* through the log, or lost (at most a second's) */
	}
	if (nd || a->spare.n) {
		state_write w = { .served = a->spare.served, .n_served = a->spare.n,
				  .def = defs, .n_def = nd };
		int wrc = state_commit(a->s, &w, 1, err);
		rc = rc ? rc : wrc;
		if (wrc) {
			/* Put the definitions back for the next try; the
			 * served counts of this interval are lost (at most
			 * one second's, documented). */
			pthread_mutex_lock(&a->lock);
			for (uint32_t i = 0; i < nd; i++)
				for (uint32_t j = 0; j < a->ndefs; j++)
					if (a->defs[j].experiment == defs[i].experiment)
						a->defs[j].dirty = true;
			pthread_mutex_unlock(&a->lock);
		}
	}
	a->spare.n = 0;
	a->spare.used = 0;
	pthread_mutex_unlock(&a->flush_lock);
	return rc;
}

/* A flush with nowhere to return its error to (the timer, the stop): the
 * definitions are kept for the next try, the interval's served counts are
 * lost (attribution_flush), and the log says why. */
static void flush_logged(attribution *a)
{
	strbuf err = STRBUF_INIT;
	if (attribution_flush(a, &err) != 0)
		fprintf(stderr, "shopkeeper: attribution: served counts not written: %s\n",
			sb_str(&err));
	sb_release(&err);
}

/* Frees what start() made; the thread is not running (never started, or
 * joined). */
static void release(attribution *a)
{
	batch_release(&a->cur);
	batch_release(&a->spare);
	pthread_cond_destroy(&a->wake);
	pthread_mutex_destroy(&a->lock);
	pthread_mutex_destroy(&a->flush_lock);
	eventlog_close(a->log);
	free(a->recs);
	free(a->hash_bytes);
	free(a);
}

static void *flusher(void *arg)
{
	attribution *a = arg;
	pthread_mutex_lock(&a->lock);
	while (!a->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += (time_t)ATTRIBUTION_FLUSH_SECONDS;
		pthread_cond_timedwait(&a->wake, &a->lock, &until);
		if (a->stopping)
			break;
		pthread_mutex_unlock(&a->lock);
		flush_logged(a);
		pthread_mutex_lock(&a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

static int start(state *s, const eventlog_config *cfg, attribution **out, strbuf *err)
{
	attribution *a = xcalloc(1, sizeof(*a));
	a->s = s;
	if (cfg) {
		if (eventlog_open(cfg, &a->log) != 0) {
			sb_adds(err, "attribution: cannot open the event log");
			free(a);
			return -1;
		}
		a->recs = xmallocarray(ATTRIBUTION_BATCH_MAX, sizeof(*a->recs));
		a->hash_bytes = xmallocarray(ATTRIBUTION_BATCH_MAX, 8 * ATTRIBUTION_ITEMS_MAX);
	}
	pthread_mutex_init(&a->lock, NULL);
	pthread_mutex_init(&a->flush_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->wake, &ca);
	pthread_condattr_destroy(&ca);
	batch_init(&a->cur);
	batch_init(&a->spare);
	int rc = pthread_create(&a->thread, NULL, flusher, a);
	if (rc) {
		sb_addf(err, "attribution: cannot start its thread: %s", strerror(rc));
		release(a);
		return -1;
	}
	*out = a;
	return 0;
}

int attribution_start(state *s, attribution **out, strbuf *err)
{
	return start(s, NULL, out, err);
}

int attribution_start_log(state *s, const struct eventlog_config *log, attribution **out,
			  strbuf *err)
{
	return start(s, log, out, err);
}

void attribution_stop(attribution *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stopping = true;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	flush_logged(a);
	release(a);
}

int attribution_define(attribution *a, uint32_t experiment_id, const char *name,
		       const char *const *variant_names, const double *shares, uint32_t n)
{
	struct def d;
	memset(&d, 0, sizeof(d));
	size_t len = name ? strlen(name) : 0;
	if (!a || !experiment_id || len < 1 || len > ATTRIBUTION_NAME_MAX || n < 1 ||
	    n > ATTRIBUTION_MAX_VARIANTS)
		return -1;
	d.experiment = experiment_id;
	memcpy(d.name, name, len);
	d.name_len = len;
	d.n = n;
	for (uint32_t i = 0; i < n; i++) {
		size_t vl = variant_names[i] ? strlen(variant_names[i]) : 0;
		if (vl < 1 || vl > ATTRIBUTION_NAME_MAX || !(shares[i] >= 0) || !isfinite(shares[i]))
			return -1;
		memcpy(d.variant[i], variant_names[i], vl);
		d.variant_len[i] = vl;
		d.share[i] = shares[i];
	}
	d.dirty = true;
	int rc = 0;
	pthread_mutex_lock(&a->lock);
	uint32_t i = 0;
	while (i < a->ndefs && a->defs[i].experiment != experiment_id)
		i++;
	if (i < a->ndefs) /* rewritten once per reload: a few bytes */
		a->defs[i] = d;
	else if (a->ndefs < DEFS_MAX) {
		a->defs[a->ndefs++] = d;
	} else {
		rc = -1;
	}
	pthread_mutex_unlock(&a->lock);
	return rc;
}

void attribution_note_served(attribution *a, uint32_t experiment_id, uint32_t variant,
			     const char *experiment_name, const char *variant_name,
			     const char *customer, size_t customer_len, const struct model *m,
			     const uint32_t *items, uint32_t n_items, int64_t ts)
{
	(void)experiment_name;
	(void)variant_name;
	if (!a || !experiment_id || customer_len == 0 || customer_len > ID_MAX_LEN ||
	    variant >= ATTRIBUTION_MAX_VARIANTS)
		return;
	/* The hashes before the lock: reading the model's ids is the slow part. */
	uint64_t hashes[ATTRIBUTION_ITEMS_MAX];
	uint32_t nh = n_items < ATTRIBUTION_ITEMS_MAX ? n_items : ATTRIBUTION_ITEMS_MAX;
	for (uint32_t i = 0; i < nh; i++) {
		size_t len;
		const char *id = model_item_id(m, items[i], &len);
		hashes[i] = state_attr_item_hash(id, len);
	}
	pthread_mutex_lock(&a->lock);
	struct batch *b = &a->cur;
	if (b->n >= ATTRIBUTION_BATCH_MAX || b->used + customer_len > ARENA_BYTES) {
		pthread_mutex_unlock(&a->lock);
		atomic_fetch_add_explicit(&a->dropped, 1, memory_order_relaxed);
		return;
	}
	char *c = b->arena + b->used;
	memcpy(c, customer, customer_len);
	b->used += customer_len;
	state_attr_served *sv = &b->served[b->n++];
	sv->experiment = experiment_id;
	sv->variant = variant;
	sv->ts = ts;
	sv->customer = c;
	sv->customer_len = customer_len;
	sv->n_items = n_items;
	sv->n_hashes = nh;
	memcpy(sv->item_hash, hashes, nh * sizeof(hashes[0]));
	pthread_mutex_unlock(&a->lock);
}

uint64_t attribution_dropped(const attribution *a)
{
	return a ? atomic_load(&((attribution *)a)->dropped) : 0;
}

/* ---- the report ---------------------------------------------------------------- */

static double ratio(double num, double den)
{
	return den > 0 ? num / den : 0;
}

static void add_num(strbuf *out, const char *key, double v)
{
	sb_addf(out, ",\"%s\":", key);
	if (isfinite(v))
		sb_addf(out, "%.10g", v);
	else
		sb_adds(out, "null");
}

static void add_lift(strbuf *out, const char *key, const abstats_arm *c, const abstats_arm *t)
{
	abstats_lift l;
	abstats_msprt(c, t, ABSTATS_ALPHA, ABSTATS_TAU_FACTOR, &l);
	sb_addf(out, "\"%s\":{\"estimate\":%.10g,\"relative\":%.10g", key, l.estimate, l.relative);
	if (l.valid) {
		add_num(out, "low", l.low);
		add_num(out, "high", l.high);
	} else { /* too little data for an interval */
		sb_adds(out, ",\"low\":null,\"high\":null");
	}
	add_num(out, "p_value", l.p_value);
	sb_addc(out, '}');
}

/* The control: the variant named "control", else the first. */
static uint32_t control_of(const state_attr_def *d)
{
	for (uint32_t i = 0; i < d->n; i++)
		if (d->variant_len[i] == 7 && memcmp(d->variant[i], "control", 7) == 0)
			return i;
	return 0;
}

int attribution_report(state_txn *t, const char *name, size_t name_len, strbuf *out)
{
	state_attr_def d;
	state_attr_counts c[STATE_ATTR_VARIANTS];
	int rc = state_attr_experiment(t, name, name_len, &d);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < d.n; i++)
		if ((rc = state_attr_counts_get(t, d.experiment, i, &c[i])) != 0)
			return rc;
	uint32_t ctl = control_of(&d);
	double assigned[STATE_ATTR_VARIANTS];
	for (uint32_t i = 0; i < d.n; i++)
		assigned[i] = (double)(c[i].customers + c[i].erased); /* as assigned */
	sb_adds(out, "{\"name\":");
	sb_add_json_str(out, d.name, d.name_len);
	sb_adds(out, ",\"control\":");
	sb_add_json_str(out, d.variant[ctl], d.variant_len[ctl]);
	add_num(out, "srm_p_value", abstats_srm_p(assigned, d.share, d.n));
	sb_addf(out, ",\"alpha\":%g,\"variants\":[", ABSTATS_ALPHA);
	abstats_arm conv_c = { (double)c[ctl].exposed, (double)c[ctl].converters,
			       (double)c[ctl].converters };
	abstats_arm rev_c = { (double)c[ctl].exposed, c[ctl].value_sum, c[ctl].value_sumsq };
	for (uint32_t i = 0; i < d.n; i++) {
		const state_attr_counts *v = &c[i];
		if (i)
			sb_addc(out, ',');
		sb_adds(out, "{\"name\":");
		sb_add_json_str(out, d.variant[i], d.variant_len[i]);
		add_num(out, "share", d.share[i]);
		sb_addf(out, ",\"customers\":%llu,\"exposed\":%llu,\"impressions\":%llu,"
			     "\"displayed\":%llu,\"clicks\":%llu",
			(unsigned long long)v->customers, (unsigned long long)v->exposed,
			(unsigned long long)v->impressions, (unsigned long long)v->displayed,
			(unsigned long long)v->clicks);
		add_num(out, "ctr", ratio((double)v->clicks, (double)v->impressions));
		sb_addf(out, ",\"carts\":%llu,\"orders\":%llu", (unsigned long long)v->carts,
			(unsigned long long)v->orders);
		add_num(out, "revenue", v->revenue);
		sb_addf(out, ",\"view_through_orders\":%llu", (unsigned long long)v->vt_orders);
		add_num(out, "view_through_revenue", v->vt_revenue);
		sb_addf(out, ",\"converted\":%llu", (unsigned long long)v->converters);
		add_num(out, "conversion", ratio((double)v->converters, (double)v->exposed));
		add_num(out, "revenue_per_exposed", ratio(v->value_sum, (double)v->exposed));
		sb_addf(out, ",\"erased_customers\":%llu,\"lift\":", (unsigned long long)v->erased);
		if (i == ctl) {
			sb_adds(out, "null}");
			continue;
		}
		abstats_arm conv_t = { (double)v->exposed, (double)v->converters,
				       (double)v->converters };
		abstats_arm rev_t = { (double)v->exposed, v->value_sum, v->value_sumsq };
		sb_addc(out, '{');
		add_lift(out, "conversion", &conv_c, &conv_t);
		sb_addc(out, ',');
		add_lift(out, "revenue_per_exposed", &rev_c, &rev_t);
		sb_adds(out, "}}");
	}
	sb_adds(out, "]}");
	return 0;
}
