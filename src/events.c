/*
 * events: the group-commit writer. See events.h.
 *
 * The queue links the callers' events_requests. The writer detaches
 * the whole queue under the lock, writes it without the lock (new batches
 * queue up behind it: they form the next group), then tells every batch of
 * the group its result.
 */
#include "events.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <string.h>
#include <stdbool.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>

#include "applier.h"
#include "eventlog.h"
#include "util.h"

/* The longest stretch of applying a group before the writer lets other
 * threads on its core run (state_set_write_slice). A group of 1,600
 * events took 3 to 4 ms of CPU to apply in one stretch, and on a server
 * given one core every request in flight waited that long (bench/README.md,
 * "Under event load"). */
#define EVENTS_WRITE_SLICE 200e-6

/* The most batches one transaction takes: bounds its size and latency. */
#define GROUP_MAX_BATCHES 256

/* A gathering group (events_writer_set_commit_delay) commits at once when
 * this many events are queued: a commit of 1,000 cost the writer 8 us of
 * CPU an event, against 10 for 400 and 14 for 100 (bench/hot-path.md,
 * round six); a bigger group would only lengthen the wait and the stretch
 * of the core its commit takes. */
#define GATHER_EVENTS 1000u

struct events_writer {
	state *s;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work;  /* queue non-empty, or stopping */
	events_request *head, *tail;
	bool stopping;
	uint64_t commits, events;
	/* Commit pacing (events_writer_set_commit_delay): */
	double delay;      /* seconds; 0: off */
	double last_start; /* util_monotonic() when the last group was taken */
	bool gathering;    /* writes came in faster than one at a time */
	uint64_t queued;   /* events (and other writes, as one each) queued */
	uint64_t gathered; /* groups that waited */
	/* With the event log (events_writer_start_log), else NULL: */
	eventlog *log;
	applier *ap;
	int replicas, wait_ms;
	uint64_t log_entries, log_appends, log_unavailable;
	eventlog_record *recs; /* a group's records, and their ids */
	eventlog_id *ids;
	size_t recs_cap;
	double logged_at; /* when the last append failure was logged */
	/* The idle sweep (events_writer_sweep); `now` NULL: off. A single
	 * node deletes the idle logs it finds; with --event-log the writer
	 * appends an expire record for each instead, and every replica's
	 * applier drops the log if it is still idle at that point of the log
	 * (a local deletion would let replicas differ for good: one that
	 * dropped a customer before a new event of theirs keeps only that
	 * event, one that had not yet keeps the old ones too). */
	int64_t (*now)(void *arg);
	void *now_arg;
	double next_sweep; /* util_monotonic() time */
	/* events_writer_set_idle: the writer runs at SCHED_IDLE (idle_ok, and
	 * `idle` once it has switched); `late_thread` puts it back at the
	 * ordinary priority (boosted) once a write has waited late_after
	 * seconds, and the writer goes idle again when it has caught up. */
	bool idle_ok;
	bool idle;
	bool boosted;
	double late_after;
	bool writing;      /* between take_group and the group's answers */
	double group_since; /* the group being written: its oldest write's queued_at */
	pid_t writer_tid;
	bool late_started;
	pthread_t late_thread;
	pthread_cond_t late_work; /* the queue or the writer changed, or stopping */
	uint64_t put_backs;     /* times the writer was put back (boosts) */
	double merge_retry;     /* after a failed merge step: not before then */
};

/* eventlog_append takes at most this many records at once. */
#define LOG_APPEND_MAX 10000u

/* Whether a sweep batch is due (the lock held). */
static bool sweep_due(const events_writer *w)
{
	return w->now && util_monotonic() >= w->next_sweep;
}

/* When the journal's next merge step is due (0: none; the lock held). */
static double merge_due(const events_writer *w)
{
	if (w->log)
		return 0;
	double due = state_journal_due(w->s);
	return due > 0 && due < w->merge_retry ? w->merge_retry : due;
}

/* Whether to take a merge step now (the lock held): one is due and no
 * write is waiting for the writer, or gather() would only wait for more,
 * or so many events wait in the journal that it must not grow. */
static bool merge_now(const events_writer *w)
{
	double due = merge_due(w), now = util_monotonic();
	if (due == 0 || now < due)
		return false;
	if (!w->head || state_journal_full(w->s))
		return true;
	return w->delay > 0 && w->gathering && w->queued < GATHER_EVENTS &&
	       now < w->last_start + w->delay;
}

/* Waits for work, the next sweep or the next merge (the lock held). */
static void wait_for_work(events_writer *w)
{
	double due = w->now ? w->next_sweep : 0, merge = merge_due(w);
	if (merge > 0 && (due == 0 || merge < due))
		due = merge;
	if (due == 0) {
		pthread_cond_wait(&w->work, &w->lock);
		return;
	}
	/* On CLOCK_MONOTONIC (util_monotonic), as the wait is. */
	time_t sec = (time_t)due;
	struct timespec until = { sec, (long)((due - (double)sec) * 1e9) };
	pthread_cond_timedwait(&w->work, &w->lock, &until);
}

/* One merge step of the journal (called without the lock). A failure is
 * reported and the step tried again a second later: the events wait in
 * the journal meanwhile, read as part of the logs. */
static void merge(events_writer *w, strbuf *err)
{
	sb_reset(err);
	int rc = state_journal_merge(w->s, false, err);
	if (rc)
		fprintf(stderr, "shopkeeper: events: %s\n", err->buf);
	pthread_mutex_lock(&w->lock);
	w->merge_retry = rc ? util_monotonic() + 1.0 : 0;
	pthread_mutex_unlock(&w->lock);
}

/* What a request adds to w->queued. */
static uint64_t request_weight(const events_request *r)
{
	return r->write.events ? r->write.n : 1;
}

/* Lets the next group grow (the lock held, w->head set): while writes come
 * in concurrently (the last group held more than one, or one came while it
 * was written), the group is taken no sooner than w->delay after the last
 * one, unless GATHER_EVENTS are queued or the writer is stopping. Every
 * commit writes and syncs each page it dirtied, and events of different
 * customers mostly dirty different pages: at 20,000 events/s on the
 * 958,000-customer model the writer spent 14 us of CPU an event in
 * commits of 100 and 8 us in commits of 1,000, 77% of it in the kernel
 * (writing back one page at a time). A writer waiting for each
 * acknowledgement never gathers, so it is never slowed. */
static void gather(events_writer *w)
{
	if (w->delay <= 0 || !w->gathering || w->log)
		return;
	double due = w->last_start + w->delay;
	bool waited = false;
	while (w->head && !w->stopping && w->queued < GATHER_EVENTS) {
		double now = util_monotonic();
		if (now >= due)
			break;
		time_t sec = (time_t)due;
		struct timespec until = { sec, (long)((due - (double)sec) * 1e9) };
		pthread_cond_timedwait(&w->work, &w->lock, &until);
		waited = true;
	}
	w->gathered += waited;
}

/* With the log: appends an expire record for each idle customer found
 * (not waited for: the applier drops what is still idle once it reaches
 * them). Replicas sweeping the same customer append it twice; the second
 * finds nothing idle, so that costs an entry, never a difference. */
static void sweep_log(events_writer *w, int64_t now, strbuf *err)
{
	strbuf ids = STRBUF_INIT;
	size_t lens[EVENTS_SWEEP_BATCH];
	uint32_t n = 0;
	int64_t before = 0;
	if (state_find_idle(w->s, now, EVENTS_SWEEP_BATCH, &ids, lens, &n, &before, err) != 0) {
		fprintf(stderr, "shopkeeper: events: %s\n", err->buf);
		goto done;
	}
	if (n == 0 || before > EVENTLOG_TS_MAX)
		goto done;
	if (n > w->recs_cap) {
		free(w->recs);
		free(w->ids);
		w->recs_cap = n;
		w->recs = xmallocarray(n, sizeof(*w->recs));
		w->ids = xmallocarray(n, sizeof(*w->ids));
	}
	size_t off = 0;
	for (uint32_t i = 0; i < n; off += lens[i++])
		w->recs[i] = (eventlog_record){ .kind = EVENTLOG_EXPIRE, .customer = ids.buf + off,
						.customer_len = lens[i], .ts = before };
	int rc = eventlog_append(w->log, w->recs, n, w->ids, 0, 0, NULL);
	pthread_mutex_lock(&w->lock);
	if (rc == 0) {
		w->log_entries += n;
		w->log_appends++;
	}
	pthread_mutex_unlock(&w->lock);
	if (rc != 0) /* found again on the sweep's next round */
		fprintf(stderr, "shopkeeper: event log: idle sweep: %s (%s)\n", eventlog_strerror(rc),
			eventlog_errmsg(w->log));
done:
	sb_release(&ids);
}

/* One batch of the idle sweep, between group commits: the writer is the
 * state's only writer, so no request waits on a lock for it, only (at
 * most one batch's time) behind it in the queue. Called without the lock. */
static void sweep(events_writer *w, int64_t now, strbuf *err)
{
	uint32_t n;
	sb_reset(err);
	if (w->log)
		sweep_log(w, now, err);
	else if (state_expire_idle(w->s, now, EVENTS_SWEEP_BATCH, &n, err) != 0)
		fprintf(stderr, "shopkeeper: events: %s\n", err->buf);
	pthread_mutex_lock(&w->lock);
	w->next_sweep = util_monotonic() + EVENTS_SWEEP_INTERVAL;
	pthread_mutex_unlock(&w->lock);
}

/* Lists the group's erasures in erasures.txt (one fsync). If that fails,
 * those requests are answered with an error and dropped from the group.
 * Returns the group's new size. */
static uint32_t list_erasures(events_writer *w, events_request **group, uint32_t n, strbuf *err)
{
	const char *ids[GROUP_MAX_BATCHES];
	size_t lens[GROUP_MAX_BATCHES];
	uint32_t n_erase = 0;
	for (uint32_t i = 0; i < n; i++) {
		const state_write *sw = &group[i]->write;
		if (!sw->events && !sw->item && (sw->set & STATE_ERASED)) {
			ids[n_erase] = sw->customer;
			lens[n_erase++] = sw->customer_len;
		}
	}
	if (n_erase == 0 || state_list_erasures(w->s, ids, lens, n_erase, err) == 0)
		return n;
	fprintf(stderr, "shopkeeper: events: %s\n", err->buf);
	uint32_t kept = 0;
	for (uint32_t i = 0; i < n; i++) {
		const state_write *sw = &group[i]->write;
		if (!sw->events && !sw->item && (sw->set & STATE_ERASED))
			group[i]->done(group[i]->arg, -1);
		else
			group[kept++] = group[i];
	}
	return kept;
}

/* ---- the event log --------------------------------------------------------- */

uint32_t events_item_bits_to_log(uint32_t state_bits)
{
	return (state_bits & STATE_ITEM_UNAVAILABLE ? EVENTLOG_ITEM_UNAVAILABLE : 0) |
	       (state_bits & STATE_ITEM_NOT_RECOMMENDABLE ? EVENTLOG_ITEM_NOT_RECOMMENDABLE : 0);
}

uint32_t events_item_bits_from_log(uint32_t log_bits)
{
	return (log_bits & EVENTLOG_ITEM_UNAVAILABLE ? STATE_ITEM_UNAVAILABLE : 0) |
	       (log_bits & EVENTLOG_ITEM_NOT_RECOMMENDABLE ? STATE_ITEM_NOT_RECOMMENDABLE : 0);
}

/* The records of one request, appended to w->recs from *n on. Returns 0,
 * or -1 for a change the log cannot carry. */
static int log_records(events_writer *w, const state_write *sw, size_t *n)
{
	if (sw->events) {
		for (uint32_t i = 0; i < sw->n; i++) {
			const event_in *e = &sw->events[i];
			w->recs[(*n)++] = (eventlog_record){
				.kind = EVENTLOG_EVENT, .customer = e->customer,
				.customer_len = e->customer_len, .item = e->item, .item_len = e->item_len,
				.ts = e->ts, .quantity = e->quantity, .price = e->price, .type = e->type,
				.rec_id = e->rec_id, .rec_id_len = e->rec_id_len };
		}
		return 0;
	}
	if (sw->item) {
		if ((sw->set | sw->clear) & ~(STATE_ITEM_UNAVAILABLE | STATE_ITEM_NOT_RECOMMENDABLE) ||
		    (!(sw->set | sw->clear) && !(sw->meta && (sw->meta->fields & STATE_ITEM_FIELDS))))
			return -1;
		if (sw->set | sw->clear)
			w->recs[(*n)++] = (eventlog_record){
				.kind = EVENTLOG_ITEM, .item = sw->item, .item_len = sw->item_len,
				.item_set = (uint8_t)events_item_bits_to_log(sw->set),
				.item_clear = (uint8_t)events_item_bits_to_log(sw->clear) };
		/* The catalog fields, a record of their own in the same batch
		 * (so appended, and applied, with the flags or not at all). */
		const state_item_meta *m = sw->meta;
		if (m && (m->fields & STATE_ITEM_FIELDS)) {
			eventlog_record r = { .kind = EVENTLOG_CATALOG, .item = sw->item,
					      .item_len = sw->item_len };
			if (m->fields & STATE_ITEM_TITLE) {
				r.catalog_fields |= EVENTLOG_CATALOG_TITLE;
				r.title = m->title;
				r.title_len = m->title_len;
			}
			if (m->fields & STATE_ITEM_CATEGORY) {
				r.catalog_fields |= EVENTLOG_CATALOG_CATEGORY;
				r.category = m->category;
				r.category_len = m->category_len;
			}
			if (m->fields & STATE_ITEM_PRICE) {
				r.catalog_fields |= EVENTLOG_CATALOG_PRICE;
				r.price = m->price;
			}
			if (m->fields & STATE_ITEM_FIRST_SEEN) {
				if (m->first_seen < 0 || m->first_seen > EVENTLOG_DAY_MAX)
					return -1; /* else the whole append would fail */
				r.catalog_fields |= EVENTLOG_CATALOG_FIRST_SEEN;
				r.first_seen = m->first_seen;
			}
			w->recs[(*n)++] = r;
		}
		return 0;
	}
	eventlog_record r = { .customer = sw->customer, .customer_len = sw->customer_len };
	if (sw->set == STATE_ERASED && !sw->clear) {
		r.kind = EVENTLOG_ERASURE;
	} else if (sw->set == STATE_NO_PERSONALIZATION && !sw->clear) {
		r.kind = EVENTLOG_CONSENT;
		r.personalization = false;
	} else if (sw->clear == STATE_NO_PERSONALIZATION && !sw->set) {
		r.kind = EVENTLOG_CONSENT;
		r.personalization = true;
	} else {
		return -1; /* a write kind without a record yet */
	}
	w->recs[(*n)++] = r;
	return 0;
}

/* Appends one run of requests (group[0..n), at most LOG_APPEND_MAX
 * records) in one eventlog_append and hands each to the applier to wait
 * for, or answers them all EVENTS_ELOG. */
static void log_append_run(events_writer *w, events_request **group, uint32_t n, size_t nrec,
			   const size_t *last)
{
	int acked = 0;
	int rc = eventlog_append(w->log, w->recs, nrec, w->ids, w->replicas, w->wait_ms, &acked);
	if (rc != 0) {
		double now = util_monotonic();
		if (now - w->logged_at >= 1.0) { /* at most a line a second while down */
			w->logged_at = now;
			fprintf(stderr, "shopkeeper: event log: %u writes answered 503: %s (%s)\n", n,
				eventlog_strerror(rc), eventlog_errmsg(w->log));
		}
		pthread_mutex_lock(&w->lock);
		w->log_unavailable += n;
		pthread_mutex_unlock(&w->lock);
		for (uint32_t i = 0; i < n; i++)
			group[i]->done(group[i]->arg, rc == EVENTLOG_EINVAL ? EVENTS_EFAILED : EVENTS_ELOG);
		return;
	}
	pthread_mutex_lock(&w->lock);
	w->log_entries += nrec;
	w->log_appends++;
	pthread_mutex_unlock(&w->lock);
	for (uint32_t i = 0; i < n; i++)
		applier_wait(w->ap, group[i], w->ids[last[i]]);
}

/* A group through the log: runs of whole requests, each one append. */
static void log_group(events_writer *w, events_request **group, uint32_t n)
{
	size_t need = 0, last[GROUP_MAX_BATCHES];
	for (uint32_t i = 0; i < n; i++)
		need += group[i]->write.events ? group[i]->write.n : group[i]->write.item ? 2 : 1;
	if (need > w->recs_cap) {
		free(w->recs);
		free(w->ids);
		w->recs_cap = need;
		w->recs = xmallocarray(need, sizeof(*w->recs));
		w->ids = xmallocarray(need, sizeof(*w->ids));
	}
	uint32_t first = 0, kept = 0;
	size_t nrec = 0;
	for (uint32_t i = 0; i < n; i++) {
		const state_write *sw = &group[i]->write;
		size_t k = sw->events ? sw->n : sw->item ? 2 : 1; /* an item: flags, catalog */
		if (nrec + k > LOG_APPEND_MAX && kept > first) {
			log_append_run(w, group + first, kept - first, nrec, last + first);
			first = kept;
			nrec = 0;
		}
		if (log_records(w, sw, &nrec) != 0) {
			group[i]->done(group[i]->arg, EVENTS_EFAILED);
			continue;
		}
		last[kept] = nrec - 1;
		group[kept++] = group[i];
	}
	if (kept > first)
		log_append_run(w, group + first, kept - first, nrec, last + first);
}

/* Takes up to GROUP_MAX_BATCHES requests off the queue into group (the
 * lock held, w->head set, nobody writing) and marks the writer busy.
 * Returns how many. */
static uint32_t take_group(events_writer *w, events_request **group)
{
	assert(w->head && !w->writing);
	w->group_since = w->head->queued_at;
	uint32_t n = 0;
	uint64_t weight = 0;
	/* Put back at the ordinary priority after a wait, the writer has a
	 * backlog: taken whole, 20,000 events made one commit of several
	 * thousand pages, a stretch of tens of ms that every request on its
	 * core waited out. At idle priority a big group costs the requests
	 * nothing, and shares more pages. */
	uint64_t cap = w->boosted ? GATHER_EVENTS : UINT64_MAX;
	while (w->head && n < GROUP_MAX_BATCHES && weight < cap) {
		weight += request_weight(w->head);
		w->queued -= request_weight(w->head);
		group[n++] = w->head;
		w->head = w->head->next;
	}
	if (!w->head)
		w->tail = NULL;
	w->last_start = util_monotonic();
	w->writing = true;
	return n;
}

/* Writes a group taken by take_group and answers its requests: called and
 * returns with the lock held, which it drops meanwhile. writes: scratch
 * of GROUP_MAX_BATCHES. */
static void write_group(events_writer *w, events_request **group, uint32_t n,
			state_write *writes, strbuf *err)
{
	pthread_mutex_unlock(&w->lock);
	if (w->log) { /* the applier writes the state and answers */
		log_group(w, group, n);
		pthread_mutex_lock(&w->lock);
		w->writing = false;
		return;
	}
	sb_reset(err);
	n = list_erasures(w, group, n, err);
	uint64_t events = 0;
	for (uint32_t i = 0; i < n; i++) {
		writes[i] = group[i]->write;
		events += writes[i].events ? writes[i].n : 0;
	}
	sb_reset(err);
	int rc = n ? state_commit(w->s, writes, n, err) : 0;
	if (rc)
		fprintf(stderr, "shopkeeper: events: %s\n", err->buf);
	/* Looked at before any answer goes out: a write queued by now came
	 * while this group was written, not from a client that waited for one
	 * of its answers. */
	pthread_mutex_lock(&w->lock);
	bool overlapped = w->head != NULL;
	/* Counted before any answer goes out: a client that reads /metrics
	 * after its 2xx finds its commit there (at idle priority the writer
	 * is preempted by the thread it answers). */
	if (rc == 0 && n) {
		w->commits++;
		w->events += events;
	}
	pthread_mutex_unlock(&w->lock);
	/* Callbacks run without the lock: they may answer HTTP requests and
	 * free their request (group[i] is not touched after). */
	for (uint32_t i = 0; i < n; i++)
		group[i]->done(group[i]->arg, rc ? -1 : 0);

	pthread_mutex_lock(&w->lock);
	w->gathering = n > 1 || overlapped;
	w->writing = false;
	/* Caught up (nothing queued has waited half the late limit): back to
	 * SCHED_IDLE. Waiting for an empty queue kept it at the ordinary
	 * priority for good under a steady stream of writes. */
	if (w->boosted &&
	    (!w->head || util_monotonic() - w->head->queued_at < w->late_after / 2)) {
		w->boosted = false;
		w->idle = false; /* switched back at the loop's top */
	}
	pthread_cond_signal(&w->late_work);
}

static void *writer_main(void *arg)
{
	events_writer *w = arg;
	/* Named, so that top, perf and /proc tell its CPU from the request
	 * threads' (bench/README.md, "Under event load"). */
	pthread_setname_np(pthread_self(), w->log ? "sk-events-log" : "sk-events");
	/* At SCHED_IDLE (events_writer_set_idle) a request thread that wakes
	 * takes the core from this one at once, and this one runs while the
	 * request threads leave the core free. Server on one core with one
	 * request thread, 20,000 events/s on the 958,000-customer model, wrk
	 * -c32 on the other core: by hand (chrt), recommendations 58,500 to
	 * 83,300 req/s with p99 1.29 to 2.13 ms against 52,300 to 63,400 and
	 * 2.88 to 3.90 ms at the ordinary priority (6 runs each), every event
	 * still acknowledged (bench/hot-path.md, round eight). Neither nice 10
	 * nor a 0.1 ms EEVDF slice did that: only the idle policy is
	 * preempted on wake-up whatever its share. */
	state_write *writes = xmallocarray(GROUP_MAX_BATCHES, sizeof(*writes));
	events_request *group[GROUP_MAX_BATCHES];
	strbuf err = STRBUF_INIT;

	pthread_mutex_lock(&w->lock);
	w->writer_tid = gettid();
	pthread_cond_signal(&w->late_work); /* writer_tid is known */
	for (;;) {
		if (w->idle_ok && !w->idle && !w->boosted) {
			struct sched_param sp = { 0 };
			w->idle_ok = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) == 0;
			w->idle = w->idle_ok;
		}
		if (!w->head && w->stopping)
			break;
		if (sweep_due(w)) {
			int64_t (*now)(void *) = w->now;
			void *now_arg = w->now_arg;
			pthread_mutex_unlock(&w->lock);
			sweep(w, now(now_arg), &err);
			pthread_mutex_lock(&w->lock);
			continue;
		}
		if (merge_now(w)) {
			pthread_mutex_unlock(&w->lock);
			merge(w, &err);
			pthread_mutex_lock(&w->lock);
			continue;
		}
		if (!w->head) {
			wait_for_work(w);
			continue;
		}
		gather(w);
		uint32_t n = take_group(w, group);
		write_group(w, group, n, writes, &err);
	}
	pthread_mutex_unlock(&w->lock);
	sb_release(&err);
	free(writes);
	return NULL;
}

/* The late thread (events_writer_set_idle): puts the writer back at the
 * ordinary priority once the oldest write queued or being written has
 * waited that long (the writer, not this thread, writes: a write
 * transaction cannot change threads, and the groups commit in order). */
static void *late_main(void *arg)
{
	events_writer *w = arg;
	pthread_setname_np(pthread_self(), "sk-events-late");
	pthread_mutex_lock(&w->lock);
	while (!w->stopping) {
		double since = w->writing ? w->group_since : w->head ? w->head->queued_at : 0;
		if (since <= 0 || w->boosted || !w->writer_tid || !w->idle) {
			pthread_cond_wait(&w->late_work, &w->lock);
			continue;
		}
		double due = since + w->late_after;
		if (util_monotonic() < due) {
			time_t sec = (time_t)due;
			struct timespec until = { sec, (long)((due - (double)sec) * 1e9) };
			pthread_cond_timedwait(&w->late_work, &w->lock, &until);
			continue;
		}
		struct sched_param sp = { 0 };
		if (sched_setscheduler(w->writer_tid, SCHED_OTHER, &sp) != 0) {
			/* Not where util_may_leave_sched_idle said yes, unless the
			 * process lost the privilege since: the writer then
			 * keeps the cores' idle time only. */
			fprintf(stderr, "shopkeeper: events: cannot raise the writer's priority: %s\n",
				strerror(errno));
			break;
		}
		w->boosted = true;
		w->put_backs++;
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int events_writer_start(state *s, events_writer **out, strbuf *err)
{
	return events_writer_start_log(s, NULL, NULL, 0, 0, out, err);
}

int events_writer_start_log(state *s, const struct eventlog_config *log, struct applier *ap,
			    int replicas, int wait_ms, events_writer **out, strbuf *err)
{
	events_writer *w = xcalloc(1, sizeof(*w));
	w->s = s;
	state_set_write_slice(s, EVENTS_WRITE_SLICE);
	if (log) {
		assert(ap);
		if (eventlog_open(log, &w->log) != 0) {
			sb_adds(err, "cannot open the event log");
			free(w);
			return -1;
		}
		w->ap = ap;
		w->replicas = replicas;
		w->wait_ms = wait_ms;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_t ca; /* the sweep's timed waits are on the monotonic clock */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->work, &ca);
	pthread_cond_init(&w->late_work, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		sb_adds(err, "cannot start the event writer thread");
		pthread_cond_destroy(&w->work);
		pthread_cond_destroy(&w->late_work);
		pthread_mutex_destroy(&w->lock);
		eventlog_close(w->log);
		free(w);
		return -1;
	}
	*out = w;
	return 0;
}

/* Links r at the queue's end and wakes the writer. */
static int enqueue(events_writer *w, events_request *r, events_done_fn done, void *arg)
{
	r->done = done;
	r->arg = arg;
	r->next = NULL;
	pthread_mutex_lock(&w->lock);
	if (w->stopping) {
		pthread_mutex_unlock(&w->lock);
		return -1;
	}
	r->queued_at = util_monotonic();
	if (w->tail) {
		w->tail->next = r;
	} else {
		w->head = r;
		pthread_cond_signal(&w->late_work);
	}
	w->tail = r;
	w->queued += request_weight(r);
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

int events_submit(events_writer *w, events_request *r, const event_in *ev, uint32_t n,
		  events_done_fn done, void *arg)
{
	assert(w && r && ev && n >= 1 && done);
	r->write = (state_write){ .events = ev, .n = n };
	return enqueue(w, r, done, arg);
}

int events_submit_flags(events_writer *w, events_request *r, const char *customer, size_t len,
			uint32_t set, uint32_t clear, events_done_fn done, void *arg)
{
	assert(w && r && customer && len > 0 && done);
	r->write = (state_write){ .customer = customer, .customer_len = len, .set = set,
				  .clear = clear };
	return enqueue(w, r, done, arg);
}

int events_submit_item_flags(events_writer *w, events_request *r, const char *item, size_t len,
			     uint32_t set, uint32_t clear, events_done_fn done, void *arg)
{
	assert(w && r && item && len > 0 && done);
	r->write = (state_write){ .item = item, .item_len = len, .set = set, .clear = clear };
	return enqueue(w, r, done, arg);
}

int events_submit_item(events_writer *w, events_request *r, const char *item, size_t len,
		       uint32_t set, uint32_t clear, const state_item_meta *meta,
		       events_done_fn done, void *arg)
{
	assert(w && r && item && len > 0 && done);
	r->write = (state_write){ .item = item, .item_len = len, .set = set, .clear = clear,
				  .meta = meta };
	return enqueue(w, r, done, arg);
}

void events_writer_stats(events_writer *w, uint64_t *commits, uint64_t *events,
			 uint64_t *gathered)
{
	pthread_mutex_lock(&w->lock);
	*commits = w->commits;
	*events = w->events;
	*gathered = w->gathered;
	pthread_mutex_unlock(&w->lock);
}

uint64_t events_writer_put_backs(events_writer *w)
{
	pthread_mutex_lock(&w->lock);
	uint64_t n = w->put_backs;
	pthread_mutex_unlock(&w->lock);
	return n;
}

void events_writer_log_stats(events_writer *w, uint64_t *entries, uint64_t *appends,
			     uint64_t *unavailable)
{
	pthread_mutex_lock(&w->lock);
	*entries = w->log_entries;
	*appends = w->log_appends;
	*unavailable = w->log_unavailable;
	pthread_mutex_unlock(&w->lock);
}

void events_writer_sweep(events_writer *w, int64_t (*now)(void *arg), void *arg)
{
	pthread_mutex_lock(&w->lock);
	w->now = now;
	w->now_arg = arg;
	w->next_sweep = util_monotonic() + EVENTS_SWEEP_INTERVAL;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->lock);
}

bool events_writer_set_idle(events_writer *w, double late_after)
{
	assert(late_after > 0);
	pthread_mutex_lock(&w->lock);
	bool ok = w->idle_ok;
	if (!ok && !w->log && !w->stopping && util_may_leave_sched_idle()) {
		if (!w->late_started &&
		    pthread_create(&w->late_thread, NULL, late_main, w) == 0)
			w->late_started = true;
		ok = w->late_started;
	}
	if (ok) {
		w->late_after = late_after;
		w->idle_ok = true;
		pthread_cond_signal(&w->work); /* switches at its loop's top */
	}
	pthread_mutex_unlock(&w->lock);
	return ok;
}

void events_writer_set_commit_delay(events_writer *w, double seconds)
{
	assert(seconds >= 0);
	pthread_mutex_lock(&w->lock);
	w->delay = seconds;
	pthread_mutex_unlock(&w->lock);
}

void events_writer_stop(events_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_signal(&w->work);
	pthread_cond_broadcast(&w->late_work);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	if (w->late_started)
		pthread_join(w->late_thread, NULL);
	pthread_cond_destroy(&w->work);
	pthread_cond_destroy(&w->late_work);
	pthread_mutex_destroy(&w->lock);
	eventlog_close(w->log);
	free(w->recs);
	free(w->ids);
	free(w);
}
