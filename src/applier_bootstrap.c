/*
 * applier_bootstrap: a replica's state made anew from the shared event
 * log: emptied, the compacted consent, erasure, item and catalog flags
 * restored (eventlog_flags_each) in commits of FLAGS_PER_COMMIT, the
 * position set to where the model's coverage ends; at start (bootstrap)
 * or when the log cannot be replayed from where the state is (rebuild).
 * The applier thread calls it (applier.c); applier_internal.h has the
 * contracts.
 */
#include "applier.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "applier_internal.h"
#include "util.h"

#define FLAGS_PER_COMMIT 1000u    /* restored flags per transaction of a bootstrap */

/* ---- bootstrap and rebuild ------------------------------------------------------- */

void applier_catalog_meta(const eventlog_record *r, state_item_meta *m)
{
	*m = (state_item_meta){ .title = r->title ? r->title : "", .title_len = r->title_len,
				.category = r->category ? r->category : "",
				.category_len = r->category_len, .price = r->price,
				.first_seen = r->first_seen };
	m->fields = (r->catalog_fields & EVENTLOG_CATALOG_TITLE ? STATE_ITEM_TITLE : 0) |
		    (r->catalog_fields & EVENTLOG_CATALOG_CATEGORY ? STATE_ITEM_CATEGORY : 0) |
		    (r->catalog_fields & EVENTLOG_CATALOG_PRICE ? STATE_ITEM_PRICE : 0) |
		    (r->catalog_fields & EVENTLOG_CATALOG_FIRST_SEEN ? STATE_ITEM_FIRST_SEEN : 0);
}

struct flags_job {
	applier *ap;
	state_write *writes;
	uint32_t n;
	strbuf ids;        /* the customers' (items') ids, back to back, each
			    * item's catalog strings after its id */
	size_t *offsets;   /* of each write's id in ids */
	state_item_meta *metas; /* a catalog write's fields (strings pointed
				 * into ids by flags_flush) */
	strbuf err;
	int rc;
};

/* Lists the erasures among the job's writes, then commits them. */
static int flags_flush(struct flags_job *j)
{
	const char *ids[FLAGS_PER_COMMIT];
	size_t lens[FLAGS_PER_COMMIT];
	uint32_t ne = 0;
	for (uint32_t i = 0; i < j->n; i++) {
		if (j->writes[i].item) {
			j->writes[i].item = j->ids.buf + j->offsets[i];
			if (j->writes[i].meta) { /* title, then category, after the id */
				state_item_meta *m = &j->metas[i];
				m->title = j->writes[i].item + j->writes[i].item_len;
				m->category = m->title + m->title_len;
			}
			continue;
		}
		j->writes[i].customer = j->ids.buf + j->offsets[i];
		if (j->writes[i].set & STATE_ERASED) {
			ids[ne] = j->writes[i].customer;
			lens[ne++] = j->writes[i].customer_len;
		}
	}
	int rc = 0;
	if (ne)
		rc = state_list_erasures(j->ap->s, ids, lens, ne, &j->err);
	if (rc == 0 && j->n)
		rc = state_commit(j->ap->s, j->writes, j->n, &j->err);
	j->n = 0;
	sb_reset(&j->ids);
	return rc;
}

static int flags_fn(void *arg, const eventlog_record *rec, eventlog_id id)
{
	struct flags_job *j = arg;
	(void)id;
	state_write *w = &j->writes[j->n];
	*w = (state_write){ .customer_len = rec->customer_len };
	if (rec->kind == EVENTLOG_ITEM) {
		if (rec->item_len > STATE_MAX_ITEM_LEN)
			return 0; /* never applied from the log either */
		/* .item is pointed into ids by flags_flush, once ids stops
		 * growing. */
		*w = (state_write){ .item = "", .item_len = rec->item_len,
				    .set = events_item_bits_from_log(rec->item_set),
				    .clear = events_item_bits_from_log(rec->item_clear) };
		j->offsets[j->n++] = j->ids.len;
		sb_add(&j->ids, rec->item, rec->item_len);
	} else if (rec->kind == EVENTLOG_CATALOG) {
		if (rec->item_len > STATE_MAX_ITEM_LEN)
			return 0;
		state_item_meta *m = &j->metas[j->n];
		applier_catalog_meta(rec, m);
		*w = (state_write){ .item = "", .item_len = rec->item_len, .meta = m };
		j->offsets[j->n++] = j->ids.len;
		sb_add(&j->ids, rec->item, rec->item_len);
		sb_add(&j->ids, m->title, m->title_len);
		sb_add(&j->ids, m->category, m->category_len);
	} else {
		if (rec->kind == EVENTLOG_ERASURE)
			w->set = STATE_ERASED;
		else if (rec->personalization)
			w->clear = STATE_NO_PERSONALIZATION;
		else
			w->set = STATE_NO_PERSONALIZATION;
		j->offsets[j->n++] = j->ids.len;
		sb_add(&j->ids, rec->customer, rec->customer_len);
	}
	if (j->n == FLAGS_PER_COMMIT && (j->rc = flags_flush(j)) != 0)
		return 1;
	return 0;
}

int applier_bootstrap(applier *ap, bool rebuild)
{
	strbuf err = STRBUF_INIT;
	applier_set_phase(ap, rebuild ? APPLIER_REBUILD : APPLIER_BOOTSTRAP);
	pthread_mutex_lock(&ap->lock);
	bool has = ap->model_has_pos;
	eventlog_id mpos = ap->model_pos;
	ap->switched = false; /* this bootstrap uses the model now current */
	pthread_mutex_unlock(&ap->lock);

	uint32_t floor = applier_model_floor(has, mpos);
	state_log_pos pos = { .phase = STATE_LOG_BOOTSTRAP, .floor_sec = floor };
	if (floor > 0) { /* the entry before the floor second's first */
		pos.ms = (uint64_t)floor * 1000 - 1;
		pos.seq = UINT64_MAX;
	}
	/* Reach Redis before emptying anything: a down Redis leaves the state
	 * as it is (a rebuild keeps serving the old one meanwhile). */
	if (eventlog_ping(ap->log) != 0) {
		sb_release(&err);
		return -1;
	}
	fprintf(stderr, "shopkeeper: event log: %s: emptying the state, restoring consent, "
		"erasures and item overrides, replaying the log from %s\n",
		rebuild ? "rebuild" : "bootstrap", floor ? "the second the model covers" : "its start");
	/* The items overridden so far: the model in use must forget what the
	 * restore does not bring back. */
	struct items_list items = { STRBUF_INIT };
	if (state_items_each(ap->s, applier_list_item, &items) != 0)
		sb_reset(&items.ids); /* unreadable: only the restored ones are told */
	if (state_clear(ap->s, &pos, &err) != 0) {
		fprintf(stderr, "shopkeeper: event log: %s\n", err.buf);
		sb_release(&err);
		sb_release(&items.ids);
		return -1;
	}
	struct flags_job j = { .ap = ap, .ids = STRBUF_INIT, .err = STRBUF_INIT };
	j.writes = xmallocarray(FLAGS_PER_COMMIT, sizeof(*j.writes));
	j.offsets = xmallocarray(FLAGS_PER_COMMIT, sizeof(*j.offsets));
	j.metas = xmallocarray(FLAGS_PER_COMMIT, sizeof(*j.metas));
	uint64_t skipped = 0;
	int rc = eventlog_flags_each(ap->log, flags_fn, &j, &skipped);
	if (rc == 0)
		rc = flags_flush(&j);
	else if (rc == 1)
		rc = j.rc;
	if (rc == 0) {
		pos.phase = STATE_LOG_APPLYING;
		rc = state_commit_log(ap->s, NULL, 0, &pos, &j.err);
	}
	if (rc != 0)
		fprintf(stderr, "shopkeeper: event log: %s failed, will retry: %s%s\n",
			rebuild ? "rebuild" : "bootstrap", j.err.len ? j.err.buf : "",
			j.err.len ? "" : eventlog_errmsg(ap->log));
	if (skipped)
		fprintf(stderr, "shopkeeper: event log: %llu compacted flags did not decode; "
			"skipped\n", (unsigned long long)skipped);
	free(j.writes);
	free(j.offsets);
	free(j.metas);
	sb_release(&j.ids);
	sb_release(&j.err);
	sb_release(&err);
	if (rc != 0) {
		sb_release(&items.ids);
		return -1;
	}
	applier_items_to_model(ap, &items);
	sb_release(&items.ids);
	ap->pos = pos;
	ap->floor = floor;
	ap->dropping = false;
	ap->checked_connects = eventlog_connects(ap->log);
	applier_publish(ap);
	pthread_mutex_lock(&ap->lock);
	if (rebuild)
		ap->st.rebuilds++;
	else
		ap->st.bootstraps++;
	pthread_mutex_unlock(&ap->lock);
	if (ap->erasure_hook)
		ap->erasure_hook(ap->erasure_arg);
	return 0;
}
