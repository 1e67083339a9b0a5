/*
 * events: the group-commit writer. See events.h.
 *
 * A pending batch lives on the stack of the request thread that waits for
 * it; the queue links them. The writer detaches the whole queue under the
 * lock, writes it without the lock (new batches queue up behind it: they
 * form the next group), then marks every batch done and broadcasts.
 */
#include "events.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

/* The most batches one transaction takes: bounds its size and latency. */
#define GROUP_MAX_BATCHES 256

struct pending {
	const event_in *ev;
	uint32_t n;
	int rc;
	bool done;
	struct pending *next;
};

struct events_writer {
	state *s;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work;  /* queue non-empty, or stopping */
	pthread_cond_t done;  /* some batches finished */
	struct pending *head, *tail;
	bool stopping;
	uint64_t commits, events;
};

static void *writer_main(void *arg)
{
	events_writer *w = arg;
	const event_in **batches = xmallocarray(GROUP_MAX_BATCHES, sizeof(*batches));
	uint32_t *counts = xmallocarray(GROUP_MAX_BATCHES, sizeof(*counts));
	struct pending *group[GROUP_MAX_BATCHES];
	strbuf err = STRBUF_INIT;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->head && !w->stopping)
			pthread_cond_wait(&w->work, &w->lock);
		if (!w->head && w->stopping)
			break;
		uint32_t n = 0;
		uint64_t events = 0;
		while (w->head && n < GROUP_MAX_BATCHES) {
			struct pending *p = w->head;
			w->head = p->next;
			group[n] = p;
			batches[n] = p->ev;
			counts[n] = p->n;
			events += p->n;
			n++;
		}
		if (!w->head)
			w->tail = NULL;
		pthread_mutex_unlock(&w->lock);

		sb_reset(&err);
		int rc = state_write_events(w->s, batches, counts, n, &err);
		if (rc)
			fprintf(stderr, "shopkeeper: events: %s\n", err.buf);

		pthread_mutex_lock(&w->lock);
		for (uint32_t i = 0; i < n; i++) {
			group[i]->rc = rc;
			group[i]->done = true;
		}
		if (rc == 0) {
			w->commits++;
			w->events += events;
		}
		pthread_cond_broadcast(&w->done);
	}
	pthread_mutex_unlock(&w->lock);
	sb_release(&err);
	free(batches);
	free(counts);
	return NULL;
}

int events_writer_start(state *s, events_writer **out, strbuf *err)
{
	events_writer *w = xcalloc(1, sizeof(*w));
	w->s = s;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->done, NULL);
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		sb_adds(err, "cannot start the event writer thread");
		pthread_cond_destroy(&w->done);
		pthread_cond_destroy(&w->work);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return -1;
	}
	*out = w;
	return 0;
}

int events_append(events_writer *w, const event_in *ev, uint32_t n)
{
	struct pending p = { ev, n, 0, false, NULL };
	if (n == 0)
		return 0;
	pthread_mutex_lock(&w->lock);
	if (w->stopping) {
		pthread_mutex_unlock(&w->lock);
		return -1;
	}
	if (w->tail)
		w->tail->next = &p;
	else
		w->head = &p;
	w->tail = &p;
	pthread_cond_signal(&w->work);
	while (!p.done)
		pthread_cond_wait(&w->done, &w->lock);
	pthread_mutex_unlock(&w->lock);
	return p.rc ? -1 : 0;
}

void events_writer_stats(events_writer *w, uint64_t *commits, uint64_t *events)
{
	pthread_mutex_lock(&w->lock);
	*commits = w->commits;
	*events = w->events;
	pthread_mutex_unlock(&w->lock);
}

void events_writer_stop(events_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->done);
	pthread_cond_destroy(&w->work);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
