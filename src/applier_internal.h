/*
 * applier_internal: what applier.c and applier_bootstrap.c share, and
 * nothing else includes: the applier's body and the steps of the applier
 * thread that a bootstrap takes too. Everything here but the lock's
 * fields is the applier thread's own.
 */
#ifndef SHOPKEEPER_APPLIER_INTERNAL_H
#define SHOPKEEPER_APPLIER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "applier.h"
#include "strbuf.h"

struct applier {
	state *s;
	eventlog *log;
	pthread_t thread;
	uint32_t batch;
	int wait_ms;

	pthread_mutex_t lock;  /* guards what follows */
	pthread_cond_t wake;   /* stopping */
	bool stopping;
	events_request *head, *tail; /* writes waiting, in id order */
	eventlog_id applied;   /* the last entry applied (what waiters compare to) */
	bool switched;         /* a model switch to act on */
	bool model_has_pos;    /* the current model's coverage */
	eventlog_id model_pos;
	void (*erasure_hook)(void *arg);
	void *erasure_arg;
	applier_model_hooks model_hooks;
	applier_stats st;
	uint64_t pending_ms;   /* ms of the oldest entry known and not applied; 0: none */
	/* applier_set_idle: the thread runs at SCHED_IDLE (idle_ok, and
	 * `idle` once it has switched); the late thread puts it back
	 * (boosted) when progress_at is late_after old. */
	bool idle_ok, idle, boosted;
	double late_after;
	double progress_at;    /* util_monotonic() when the thread last came round */
	pid_t tid;             /* the applier thread's; 0: not started yet */
	bool late_started;
	pthread_t late_thread;

	/* The applier thread's own: */
	state_log_pos pos;     /* as in the state */
	uint32_t floor;        /* in effect: pos.floor_sec, or a switch's higher one */
	bool dropping;         /* a model-switch drop is under way */
	strbuf drop_cursor;
	uint64_t checked_connects; /* eventlog_connects when the entry was last checked */
	strbuf pending_items;  /* items a bootstrap dropped before the model hooks
				* were set (u16 length, bytes): told once they are */
	double counted_at;     /* when lag_entries was last counted */
	eventlog_batch b;
	event_in *events;      /* a batch's events and writes */
	state_write *writes;
	state_attr_served *served; /* a batch's served answers (attribution) */
	state_item_meta *metas;    /* a batch's catalog fields (strings borrowed
				    * from the batch) */
	size_t cap;
};

/* Item ids gathered by applier_list_item. */
struct items_list {
	strbuf ids; /* u16 length, then the bytes, per item */
};

/* ---- applier.c ----------------------------------------------------------------- */

/* The second a model's coverage falls in: the state keeps the events of
 * entries from that second on (whole seconds, as the state records them). */
uint32_t applier_model_floor(bool has, eventlog_id id);

/* Sets the phase applier_get_stats reports (takes the lock). */
void applier_set_phase(applier *ap, enum applier_phase p);

/* Publishes pos as applied (for waiters and stats). */
void applier_publish(applier *ap);

/* A state_items_each callback: appends id to the struct items_list arg
 * (id copied; flags ignored). */
void applier_list_item(void *arg, const char *id, size_t len, uint32_t flags);

/* After a bootstrap: every item with an override before it (l) or after it
 * gets its flags now, so the model in use drops overrides a rebuild did not
 * restore and takes the restored ones. Before the api set the hooks (a
 * bootstrap at start), the api reads the restored overrides itself once it
 * sets them (api_set_event_log), but a dropped one would stay in the model
 * it loaded before: those wait in pending_items for the hooks. */
void applier_items_to_model(applier *ap, struct items_list *l);

/* ---- bootstrap and rebuild (applier_bootstrap.c) ------------------------------- */

/* A catalog record's fields as the state's (strings borrowed from r). */
void applier_catalog_meta(const eventlog_record *r, state_item_meta *m);

/* Empties the state, restores the compacted consent and erasure flags and
 * sets the position to just before the first entry of the model's
 * second. Returns 0, or -1 (logged; the caller retries later). */
int applier_bootstrap(applier *ap, bool rebuild);

#endif
