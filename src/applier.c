/*
 * applier: applies the shared event log to this replica's state. See
 * applier.h; docs/event-log.md has the picture.
 *
 * One thread, one Redis connection. The loop: act on a model switch (a
 * bounded drop, or a rebuild), bootstrap when the state has never applied
 * anything, check the last applied entry after every new connection, read
 * a batch, apply it with its position in one transaction, then answer the
 * writes waiting for entries up to there.
 */
#include "applier.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "applier_internal.h"
#include "util.h"

#define DEFAULT_WAIT_MS 10000
#define DEFAULT_BATCH 1000u
#define BLOCK_MS 100              /* XREAD BLOCK: also how often deadlines are checked */
#define RETRY_MS 200              /* pause after a failed read or bootstrap */
#define DROP_CUSTOMERS 500u       /* customers per transaction of a model-switch drop */

const double applier_lag_buckets[APPLIER_LAG_BUCKETS] = { 0.001, 0.0025, 0.005, 0.01, 0.025,
							   0.05,  0.1,    0.25,  0.5,  1,
							   2.5,   10 };

const char *applier_phase_name(enum applier_phase p)
{
	static const char *const names[] = { "starting", "bootstrap", "rebuild", "newer_format",
					     "applying" };
	return (unsigned)p < ARRAY_SIZE(names) ? names[p] : "?";
}

static eventlog_id pos_id(const state_log_pos *p)
{
	return (eventlog_id){ p->ms, p->seq };
}

uint32_t applier_model_floor(bool has, eventlog_id id)
{
	return has ? (uint32_t)(id.ms / 1000) : 0;
}

void applier_set_phase(applier *ap, enum applier_phase p)
{
	pthread_mutex_lock(&ap->lock);
	ap->st.phase = p;
	pthread_mutex_unlock(&ap->lock);
}

/* Sleeps ms, or less when stopping. Returns whether stopping. */
static bool pause_ms(applier *ap, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&ap->lock);
	if (!ap->stopping)
		pthread_cond_timedwait(&ap->wake, &ap->lock, &ts);
	bool stop = ap->stopping;
	pthread_mutex_unlock(&ap->lock);
	return stop;
}

/* ---- waiting writes ---------------------------------------------------------- */

/* Answers the waiting writes whose entries are applied, and those past
 * their deadline (EVENTS_ELOG); all of them when `all`. Callbacks run
 * without the lock. */
static void answer_waiters(applier *ap, bool all)
{
	double now = util_monotonic();
	for (;;) {
		pthread_mutex_lock(&ap->lock);
		events_request *r = ap->head;
		int rc = 1;
		if (r) {
			eventlog_id id = { r->wait_ms, r->wait_seq };
			if (eventlog_id_cmp(id, ap->applied) <= 0)
				rc = 0;
			else if (all || r->deadline < now)
				rc = EVENTS_ELOG;
		}
		if (rc == 1) {
			pthread_mutex_unlock(&ap->lock);
			return;
		}
		ap->head = r->next;
		if (!ap->head)
			ap->tail = NULL;
		pthread_mutex_unlock(&ap->lock);
		r->done(r->arg, rc);
	}
}

void applier_wait(applier *ap, events_request *r, eventlog_id id)
{
	r->wait_ms = id.ms;
	r->wait_seq = id.seq;
	r->deadline = util_monotonic() + ap->wait_ms / 1000.0;
	r->next = NULL;
	pthread_mutex_lock(&ap->lock);
	if (!ap->head && eventlog_id_cmp(id, ap->applied) <= 0) {
		pthread_mutex_unlock(&ap->lock);
		r->done(r->arg, 0); /* applied before we got here */
		return;
	}
	if (ap->tail)
		ap->tail->next = r;
	else
		ap->head = r;
	ap->tail = r;
	pthread_mutex_unlock(&ap->lock);
}

/* ---- position ------------------------------------------------------------------ */

void applier_publish(applier *ap)
{
	pthread_mutex_lock(&ap->lock);
	ap->applied = pos_id(&ap->pos);
	pthread_mutex_unlock(&ap->lock);
}

/* ---- the model in use (applier_model_hooks) ---------------------------------------- */

static applier_model_hooks get_hooks(applier *ap)
{
	pthread_mutex_lock(&ap->lock);
	applier_model_hooks h = ap->model_hooks;
	pthread_mutex_unlock(&ap->lock);
	return h;
}

/* Tells the model in use item's flags as the state has them now. Read
 * after the commit (hooks included): see applier_set_model_hooks. */
static void item_to_model(applier *ap, const char *item, size_t len)
{
	applier_model_hooks h = get_hooks(ap);
	uint32_t flags = 0;
	state_item_meta meta;
	strbuf store = STRBUF_INIT;
	if (!h.item_flags)
		return;
	if (state_item_get_now(ap->s, item, len, &flags, &meta, &store) != 0) {
		fprintf(stderr, "shopkeeper: event log: cannot read item %.*s's override; the model "
			"in use learns it at the next reload\n", (int)(len > 256 ? 256 : len), item);
		sb_release(&store);
		return;
	}
	h.item_flags(h.arg, item, len, flags, &meta);
	sb_release(&store);
}

void applier_list_item(void *arg, const char *id, size_t len, uint32_t flags)
{
	struct items_list *l = arg;
	uint16_t n = (uint16_t)len; /* item ids are at most STATE_MAX_ITEM_LEN bytes */
	(void)flags;
	sb_add(&l->ids, &n, 2);
	sb_add(&l->ids, id, n);
}

/* Tells the model in use the flags now of every item in ids (u16 length,
 * bytes, per item). */
static void list_to_model(applier *ap, const strbuf *ids)
{
	for (size_t p = 0; p + 2 <= ids->len;) {
		uint16_t n;
		memcpy(&n, ids->buf + p, 2);
		item_to_model(ap, ids->buf + p + 2, n);
		p += 2 + (size_t)n;
	}
}

void applier_items_to_model(applier *ap, struct items_list *l)
{
	if (!get_hooks(ap).item_flags) {
		sb_add(&ap->pending_items, l->ids.buf, l->ids.len);
		return;
	}
	list_to_model(ap, &l->ids);
	sb_reset(&l->ids);
	if (state_items_each(ap->s, applier_list_item, l) == 0)
		list_to_model(ap, &l->ids);
}

/* ---- model switches ------------------------------------------------------------- */

void applier_model_switched(applier *ap, bool has, uint64_t ms, uint64_t seq)
{
	pthread_mutex_lock(&ap->lock);
	ap->model_has_pos = has;
	ap->model_pos = (eventlog_id){ ms, seq };
	ap->switched = true;
	pthread_mutex_unlock(&ap->lock);
}

/* Compares the current model's floor with the state's. Returns true when
 * the state must be rebuilt (the model covers less than it dropped). */
static bool take_switch(applier *ap)
{
	pthread_mutex_lock(&ap->lock);
	bool sw = ap->switched;
	uint32_t floor = applier_model_floor(ap->model_has_pos, ap->model_pos);
	ap->switched = false;
	pthread_mutex_unlock(&ap->lock);
	if (!sw)
		return false;
	if (floor < ap->pos.floor_sec) {
		fprintf(stderr, "shopkeeper: event log: the model covers less of the log than the "
			"state dropped (second %u < %u): rebuilding\n", floor, ap->pos.floor_sec);
		return true;
	}
	if (floor > ap->floor) {
		ap->floor = floor; /* entries before it are not applied from now on */
		ap->dropping = true;
		sb_reset(&ap->drop_cursor);
	}
	return false;
}

/* One bounded step of dropping what the model covers; the last one records
 * the new floor. */
static void drop_step(applier *ap)
{
	strbuf err = STRBUF_INIT;
	bool done = false;
	uint64_t dropped = 0;
	if (state_drop_before(ap->s, ap->floor, &ap->drop_cursor, DROP_CUSTOMERS, &done, &dropped,
			      &err) != 0) {
		fprintf(stderr, "shopkeeper: event log: %s\n", err.buf);
		sb_release(&err);
		pause_ms(ap, RETRY_MS);
		return;
	}
	pthread_mutex_lock(&ap->lock);
	ap->st.covered += dropped;
	pthread_mutex_unlock(&ap->lock);
	if (done) {
		state_log_pos pos = ap->pos;
		pos.floor_sec = ap->floor;
		if (state_commit_log(ap->s, NULL, 0, &pos, &err) == 0) {
			ap->pos = pos;
			ap->dropping = false;
		} else {
			fprintf(stderr, "shopkeeper: event log: %s\n", err.buf);
		}
	}
	sb_release(&err);
}

/* ---- applying ---------------------------------------------------------------------- */


/* Turns the batch's entries into state writes (consecutive events of one
 * second share a write) and commits them with the position of the last
 * entry. Returns 0, 1 when stopped at an entry of a newer format (the
 * entries before it applied), or -1 (logged; not applied). */
static int apply_batch(applier *ap, eventlog_batch *b)
{
	size_t n = b->n, nw = 0, ne = 0, use = n;
	uint64_t skipped = 0, covered = 0;
	bool erasure = false, newer = false, items = false;
	if (n > ap->cap) {
		free(ap->events);
		free(ap->writes);
		free(ap->served);
		free(ap->metas);
		ap->cap = n;
		ap->events = xmallocarray(n, sizeof(*ap->events));
		ap->writes = xmallocarray(n, sizeof(*ap->writes));
		ap->served = xmallocarray(n, sizeof(*ap->served));
		ap->metas = xmallocarray(n, sizeof(*ap->metas));
	}
	for (size_t i = 0; i < n; i++) {
		const eventlog_entry *en = &b->entries[i];
		if (en->status == EVENTLOG_EVERSION) {
			use = i;
			newer = true;
			break;
		}
		if (en->status != 0) {
			char id[EVENTLOG_ID_LEN];
			eventlog_id_format(en->id, id);
			fprintf(stderr, "shopkeeper: event log: entry %s is not a valid record "
				"(%s); skipped\n", id, eventlog_strerror(en->status));
			skipped++;
			continue;
		}
		const eventlog_record *r = &en->rec;
		uint32_t sec = (uint32_t)(en->id.ms / 1000);
		if (r->kind == EVENTLOG_EVENT) {
			if (r->type > EVENT_IMPRESSION || r->item_len > STATE_MAX_ITEM_LEN) {
				skipped++; /* a type this build does not keep */
				continue;
			}
			if (sec < ap->floor) {
				covered++; /* the model has it */
				continue;
			}
			ap->events[ne] = (event_in){ r->customer, r->customer_len, r->item, r->item_len,
						     r->ts, r->quantity, r->price, r->type, true,
						     r->rec_id, r->rec_id_len };
			state_write *last = nw ? &ap->writes[nw - 1] : NULL;
			if (last && last->events && last->log_sec == sec &&
			    last->events + last->n == &ap->events[ne]) {
				last->n++;
			} else {
				ap->writes[nw++] = (state_write){ .events = &ap->events[ne], .n = 1,
								  .log_sec = sec };
			}
			ne++;
			continue;
		}
		if (r->kind == EVENTLOG_SERVED) {
			/* Counted on every replica alike (state_attr.c). */
			state_attr_served *sv = &ap->served[i];
			*sv = (state_attr_served){ .experiment = r->experiment, .variant = r->variant,
						   .ts = r->ts, .customer = r->customer,
						   .customer_len = r->customer_len,
						   .n_items = r->n_items, .n_hashes = r->n_hashes };
			for (uint32_t h = 0; h < r->n_hashes && h < STATE_ATTR_ITEMS; h++) {
				uint64_t v = 0;
				for (int k = 7; k >= 0; k--)
					v = v << 8 | r->hashes[8 * h + (uint32_t)k];
				sv->item_hash[h] = v;
			}
			if (sv->n_hashes > STATE_ATTR_ITEMS)
				sv->n_hashes = STATE_ATTR_ITEMS;
			ap->writes[nw++] = (state_write){ .served = sv, .n_served = 1 };
			continue;
		}
		if (r->kind == EVENTLOG_ITEM) {
			if (r->item_len > STATE_MAX_ITEM_LEN) {
				skipped++; /* no such item in this build's state */
				continue;
			}
			ap->writes[nw++] = (state_write){
				.item = r->item, .item_len = r->item_len,
				.set = events_item_bits_from_log(r->item_set),
				.clear = events_item_bits_from_log(r->item_clear) };
			items = true;
			continue;
		}
		if (r->kind == EVENTLOG_CATALOG) {
			if (r->item_len > STATE_MAX_ITEM_LEN) {
				skipped++;
				continue;
			}
			applier_catalog_meta(r, &ap->metas[i]);
			ap->writes[nw++] = (state_write){ .item = r->item, .item_len = r->item_len,
							  .meta = &ap->metas[i] };
			items = true;
			continue;
		}
		if (r->kind == EVENTLOG_EXPIRE) {
			/* Applied whatever the floor: the rule looks at the state
			 * only, which every replica holds alike at this entry. A
			 * cutoff of 0 expires nothing. */
			if (r->ts > 0)
				ap->writes[nw++] = (state_write){ .customer = r->customer,
								  .customer_len = r->customer_len,
								  .expire_before = r->ts };
			continue;
		}
		state_write *w = &ap->writes[nw++];
		*w = (state_write){ .customer = r->customer, .customer_len = r->customer_len };
		if (r->kind == EVENTLOG_ERASURE) {
			w->set = STATE_ERASED;
			erasure = true;
		} else if (r->personalization) {
			w->clear = STATE_NO_PERSONALIZATION;
		} else {
			w->set = STATE_NO_PERSONALIZATION;
		}
	}
	if (use == 0)
		return newer ? 1 : 0;
	applier_model_hooks hooks = get_hooks(ap);
	if (ne && hooks.mark_known)
		hooks.mark_known(hooks.arg, ap->events, ne);

	strbuf err = STRBUF_INIT;
	int rc = 0;
	if (erasure) { /* listed for training first, as a single node does */
		const char **ids = xmallocarray(nw, sizeof(*ids));
		size_t *lens = xmallocarray(nw, sizeof(*lens));
		uint32_t k = 0;
		for (size_t i = 0; i < nw; i++)
			if (!ap->writes[i].events && !ap->writes[i].item &&
			    (ap->writes[i].set & STATE_ERASED)) {
				ids[k] = ap->writes[i].customer;
				lens[k++] = ap->writes[i].customer_len;
			}
		rc = state_list_erasures(ap->s, ids, lens, k, &err);
		free(ids);
		free(lens);
	}
	state_log_pos pos = ap->pos;
	const eventlog_entry *tail_entry = &b->entries[use - 1];
	pos.ms = tail_entry->id.ms;
	pos.seq = tail_entry->id.seq;
	pos.customer_len = tail_entry->status == 0 ? tail_entry->rec.customer_len : 0;
	if (pos.customer_len)
		memcpy(pos.customer, tail_entry->rec.customer, pos.customer_len);
	if (rc == 0)
		rc = state_commit_log(ap->s, ap->writes, (uint32_t)nw, &pos, &err);
	if (rc != 0) {
		fprintf(stderr, "shopkeeper: event log: cannot apply: %s\n", err.buf);
		sb_release(&err);
		return -1;
	}
	sb_release(&err);
	ap->pos = pos;
	/* Each entry's lag: from its append (its id's time) to this commit. */
	double now_ms = util_now() * 1000.0;
	uint64_t hist[APPLIER_LAG_BUCKETS + 1] = { 0 };
	double sum = 0;
	for (size_t i = 0; i < use; i++) {
		double lag = (now_ms - (double)b->entries[i].id.ms) / 1000.0;
		lag = lag > 0 ? lag : 0;
		size_t k = 0;
		while (k < APPLIER_LAG_BUCKETS && lag > applier_lag_buckets[k])
			k++;
		hist[k]++;
		sum += lag;
	}
	pthread_mutex_lock(&ap->lock);
	for (size_t k = 0; k <= APPLIER_LAG_BUCKETS; k++)
		ap->st.lag_hist[k] += hist[k];
	ap->st.lag_sum += sum;
	ap->applied = pos_id(&pos);
	ap->st.applied += use;
	ap->st.skipped += skipped;
	ap->st.covered += covered;
	pthread_mutex_unlock(&ap->lock);
	if (erasure && ap->erasure_hook)
		ap->erasure_hook(ap->erasure_arg);
	if (items) /* the model in use follows, on every replica */
		for (size_t i = 0; i < nw; i++)
			if (ap->writes[i].item)
				item_to_model(ap, ap->writes[i].item, ap->writes[i].item_len);
	return newer ? 1 : 0;
}

/* Lag after a read of `got` entries (batch full: more are waiting). */
static void update_lag(applier *ap, const eventlog_batch *b, bool full)
{
	uint64_t pending = 0, entries = 0;
	double now = util_now();
	if (full) {
		/* The next entry is at least as new as the last applied. */
		pending = b->n ? b->entries[b->n - 1].id.ms : 0;
		if (now - ap->counted_at >= 1.0) {
			/* Counted, up to a bound, at most once a second: a full
			 * read says only that there are more. */
			eventlog_batch cnt = { 0 };
			if (eventlog_range(ap->log, eventlog_id_next(pos_id(&ap->pos)), EVENTLOG_ID_MAX,
					   APPLIER_LAG_COUNT_MAX, &cnt) == 0)
				entries = cnt.n;
			eventlog_batch_release(&cnt);
			ap->counted_at = now;
		} else {
			pthread_mutex_lock(&ap->lock);
			entries = ap->st.lag_entries > b->n ? ap->st.lag_entries - b->n : 1;
			pthread_mutex_unlock(&ap->lock);
		}
	}
	pthread_mutex_lock(&ap->lock);
	ap->pending_ms = pending;
	ap->st.lag_entries = entries;
	pthread_mutex_unlock(&ap->lock);
}

/* After a new connection: is the last applied entry still in the log?
 * Returns true when it is LOST (the caller rebuilds). */
static bool lost_entry(applier *ap)
{
	uint64_t c = eventlog_connects(ap->log);
	if (c == ap->checked_connects)
		return false;
	/* A bootstrap's position is no entry's: 0-0, or the one before its
	 * floor second's first (seq UINT64_MAX, which Redis never hands out). */
	if ((ap->pos.ms == 0 && ap->pos.seq == 0) || ap->pos.seq == UINT64_MAX) {
		ap->checked_connects = c;
		return false;
	}
	enum eventlog_presence p;
	if (eventlog_check_entry(ap->log, pos_id(&ap->pos), ap->pos.customer, ap->pos.customer_len,
				 &p) != 0)
		return false; /* checked again after the next connection */
	ap->checked_connects = eventlog_connects(ap->log);
	if (p != EVENTLOG_LOST)
		return false;
	char id[EVENTLOG_ID_LEN];
	eventlog_id_format(pos_id(&ap->pos), id);
	fprintf(stderr, "shopkeeper: event log: the last applied entry %s is gone from %s without "
		"a trim or an erasure to explain it (a failover lost it): rebuilding the state "
		"from the model and the log\n", id, eventlog_address(ap->log));
	return true;
}

/* A read found the applier caught up: back to SCHED_IDLE if it was put
 * back (switched at the loop's top). */
static void caught_up_idle(applier *ap)
{
	pthread_mutex_lock(&ap->lock);
	if (ap->boosted) {
		ap->boosted = false;
		ap->idle = false;
	}
	pthread_mutex_unlock(&ap->lock);
}

static void *applier_main(void *arg)
{
	applier *ap = arg;
	strbuf err = STRBUF_INIT;
	bool need_bootstrap = false, rebuild = false;

	/* Named, so that top, perf and /proc tell its CPU from the request
	 * threads' and tests find it. */
	pthread_setname_np(pthread_self(), "sk-applier");
	pthread_mutex_lock(&ap->lock);
	ap->tid = gettid();
	ap->progress_at = util_monotonic();
	pthread_mutex_unlock(&ap->lock);

	if (state_log_position(ap->s, &ap->pos) != 0) {
		fprintf(stderr, "shopkeeper: event log: the state's position record is damaged: "
			"rebuilding\n");
		ap->pos = (state_log_pos){ 0 };
	}
	if (ap->pos.phase != STATE_LOG_APPLYING) {
		need_bootstrap = true;
	} else {
		/* A restart: ready unless the lag says otherwise. */
		ap->floor = ap->pos.floor_sec;
		applier_publish(ap);
		applier_set_phase(ap, APPLIER_APPLYING);
		pthread_mutex_lock(&ap->lock);
		ap->switched = true; /* compare the model with the state's floor */
		pthread_mutex_unlock(&ap->lock);
	}
	bool caught_up = false;
	for (;;) {
		pthread_mutex_lock(&ap->lock);
		bool stop = ap->stopping;
		ap->progress_at = util_monotonic();
		if (ap->idle_ok && !ap->idle && !ap->boosted) {
			struct sched_param sp = { 0 };
			ap->idle_ok = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) == 0;
			ap->idle = ap->idle_ok;
		}
		pthread_mutex_unlock(&ap->lock);
		if (stop)
			break;
		if (!need_bootstrap && take_switch(ap)) {
			need_bootstrap = rebuild = true;
		}
		if (need_bootstrap) {
			if (applier_bootstrap(ap, rebuild) != 0) {
				pthread_mutex_lock(&ap->lock);
				ap->st.connected = false;
				ap->st.read_errors++;
				pthread_mutex_unlock(&ap->lock);
				answer_waiters(ap, false);
				pause_ms(ap, RETRY_MS);
				continue;
			}
			need_bootstrap = false;
			caught_up = false;
		}
		if (ap->pending_items.len && get_hooks(ap).item_flags) {
			list_to_model(ap, &ap->pending_items);
			sb_release(&ap->pending_items);
		}
		if (ap->dropping)
			drop_step(ap);

		int rc = eventlog_read(ap->log, pos_id(&ap->pos), ap->batch, ap->dropping ? 0 : BLOCK_MS,
				       &ap->b);
		if (rc != 0) {
			pthread_mutex_lock(&ap->lock);
			if (ap->st.connected)
				fprintf(stderr, "shopkeeper: event log: cannot read: %s; retrying\n",
					eventlog_errmsg(ap->log));
			ap->st.connected = false;
			ap->st.read_errors++;
			pthread_mutex_unlock(&ap->lock);
			answer_waiters(ap, false);
			pause_ms(ap, RETRY_MS);
			continue;
		}
		pthread_mutex_lock(&ap->lock);
		if (!ap->st.connected && ap->st.read_errors)
			fprintf(stderr, "shopkeeper: event log: reading again from %s\n",
				eventlog_address(ap->log));
		ap->st.connected = true;
		if (ap->b.n)
			ap->pending_ms = ap->b.entries[0].id.ms;
		pthread_mutex_unlock(&ap->lock);
		if (lost_entry(ap)) {
			need_bootstrap = rebuild = true;
			continue; /* the batch came from a log without our last entry */
		}
		bool full = ap->b.n == ap->batch;
		rc = ap->b.n ? apply_batch(ap, &ap->b) : 0;
		if (rc < 0) {
			pause_ms(ap, RETRY_MS);
			continue;
		}
		if (rc == 1) {
			char id[EVENTLOG_ID_LEN];
			eventlog_id_format(eventlog_id_next(pos_id(&ap->pos)), id);
			fprintf(stderr, "shopkeeper: event log: the entry after %s is of a newer "
				"record format than this build reads: upgrade shopkeeper; not applying "
				"anything until then\n", id);
			applier_set_phase(ap, APPLIER_NEWER_FORMAT);
			answer_waiters(ap, false);
			pause_ms(ap, 1000);
			continue;
		}
		update_lag(ap, &ap->b, full);
		if (!full)
			caught_up_idle(ap);
		answer_waiters(ap, false);
		if (!full && !caught_up && !ap->dropping) {
			caught_up = true;
			applier_set_phase(ap, APPLIER_APPLYING);
		}
	}
	eventlog_batch_release(&ap->b);
	sb_release(&err);
	return NULL;
}

/* ---- priority ------------------------------------------------------------------- */

/* The late thread (applier_set_idle): looks every quarter of late_after
 * whether the idle applier has come round its loop, and puts it back at
 * the ordinary priority if not. A read of the log blocks for at most
 * BLOCK_MS, so an applier that is not starved comes round at least that
 * often. */
static void *late_main(void *arg)
{
	applier *ap = arg;
	pthread_setname_np(pthread_self(), "sk-applier-late");
	pthread_mutex_lock(&ap->lock);
	while (!ap->stopping) {
		if (ap->idle && !ap->boosted && ap->tid &&
		    util_monotonic() - ap->progress_at >= ap->late_after) {
			struct sched_param sp = { 0 };
			if (sched_setscheduler(ap->tid, SCHED_OTHER, &sp) != 0) {
				/* The process lost the privilege since
				 * applier_set_idle: the applier keeps the
				 * cores' idle time only. */
				fprintf(stderr, "shopkeeper: event log: cannot raise the applier's "
					"priority: %s\n", strerror(errno));
				break;
			}
			ap->boosted = true;
			ap->st.put_backs++;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts); /* ap->wake's clock (pause_ms) */
		double until = (double)ts.tv_sec + ts.tv_nsec / 1e9 + ap->late_after / 4;
		ts.tv_sec = (time_t)until;
		ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
		pthread_cond_timedwait(&ap->wake, &ap->lock, &ts);
	}
	pthread_mutex_unlock(&ap->lock);
	return NULL;
}

bool applier_set_idle(applier *ap, double late_after)
{
	assert(late_after > 0);
	pthread_mutex_lock(&ap->lock);
	bool ok = ap->idle_ok;
	if (!ok && !ap->stopping && util_may_leave_sched_idle()) {
		if (!ap->late_started && pthread_create(&ap->late_thread, NULL, late_main, ap) == 0)
			ap->late_started = true;
		ok = ap->late_started;
	}
	if (ok) {
		ap->late_after = late_after;
		ap->idle_ok = true;
	}
	pthread_mutex_unlock(&ap->lock);
	return ok;
}

/* ---- lifecycle ------------------------------------------------------------------- */

int applier_start(const applier_config *cfg, applier **out, strbuf *err)
{
	applier *ap = xcalloc(1, sizeof(*ap));
	ap->s = cfg->state;
	/* The log is the durable copy and the position commits with the
	 * entries, so one sync per commit is enough. The meta page's second
	 * fdatasync cost little CPU but wall time: commits of 200 events on a
	 * state of 50,000 customers took 6.4 to 9.2 ms instead of 10.3 to 16
	 * (shared 2-vCPU machine, load 19), time every write waiting for
	 * this replica's apply waited too (bench/README.md, "Event log"). */
	if (state_defer_meta_sync(ap->s) != 0)
		fprintf(stderr, "shopkeeper: event log: cannot relax the state's meta sync; "
			"applying with two syncs per commit\n");
	ap->batch = cfg->batch ? cfg->batch : DEFAULT_BATCH;
	ap->wait_ms = cfg->wait_timeout_ms > 0 ? cfg->wait_timeout_ms : DEFAULT_WAIT_MS;
	ap->model_has_pos = cfg->model_has_pos;
	ap->model_pos = (eventlog_id){ cfg->model_ms, cfg->model_seq };
	sb_init(&ap->drop_cursor, 64);
	pthread_mutex_init(&ap->lock, NULL);
	pthread_cond_init(&ap->wake, NULL);
	if (eventlog_open(cfg->log, &ap->log) != 0) {
		sb_adds(err, "cannot open the event log");
		goto fail;
	}
	if (pthread_create(&ap->thread, NULL, applier_main, ap) != 0) {
		sb_adds(err, "cannot start the event log's applier thread");
		goto fail;
	}
	*out = ap;
	return 0;
fail:
	eventlog_close(ap->log);
	pthread_cond_destroy(&ap->wake);
	pthread_mutex_destroy(&ap->lock);
	sb_release(&ap->drop_cursor);
	free(ap);
	return -1;
}

void applier_set_erasure_hook(applier *ap, void (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&ap->lock);
	ap->erasure_hook = fn;
	ap->erasure_arg = arg;
	pthread_mutex_unlock(&ap->lock);
}

void applier_set_model_hooks(applier *ap, const applier_model_hooks *h)
{
	pthread_mutex_lock(&ap->lock);
	ap->model_hooks = *h;
	pthread_mutex_unlock(&ap->lock);
}

void applier_get_stats(applier *ap, applier_stats *out)
{
	pthread_mutex_lock(&ap->lock);
	*out = ap->st;
	out->position = ap->applied;
	if (ap->pending_ms) {
		double lag = util_now() - (double)ap->pending_ms / 1000.0;
		out->lag_seconds = lag > 0 ? lag : 0;
		if (!out->lag_entries)
			out->lag_entries = 1;
	} else {
		out->lag_seconds = 0;
	}
	pthread_mutex_unlock(&ap->lock);
}

void applier_stop(applier *ap)
{
	if (!ap)
		return;
	pthread_mutex_lock(&ap->lock);
	ap->stopping = true;
	pthread_cond_broadcast(&ap->wake);
	pthread_mutex_unlock(&ap->lock);
	pthread_join(ap->thread, NULL);
	if (ap->late_started)
		pthread_join(ap->late_thread, NULL);
	answer_waiters(ap, true);
	eventlog_close(ap->log);
	pthread_cond_destroy(&ap->wake);
	pthread_mutex_destroy(&ap->lock);
	sb_release(&ap->drop_cursor);
	sb_release(&ap->pending_items);
	free(ap->events);
	free(ap->writes);
	free(ap->served);
	free(ap->metas);
	free(ap);
}
