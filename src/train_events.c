/*
 * train_events: a server's collected events into training (train_events.h).
 */
#include "train_events.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eventlog.h"
#include "state.h"
#include "util.h"

/* Entries per XRANGE: a few MB of reply, few round trips. */
#define SCAN_CHUNK 10000

struct train_events {
	char *source;         /* as given */
	char *label;          /* for the meta record: no password */
	/* a state directory */
	state *st;
	/* or the shared log */
	eventlog_config cfg;
	eventlog *log;
	idmap *no_consent;    /* customers whose latest consent is "no" */
};

static bool is_url(const char *s)
{
	return strncmp(s, "redis://", 8) == 0 || strncmp(s, "sentinel://", 11) == 0;
}

/* "redis://HOST:PORT?stream=K" or "sentinel://H:P,H:P/MASTER?stream=K". */
static char *url_label(const eventlog_config *c)
{
	strbuf b = STRBUF_INIT;
	sb_adds(&b, c->sentinel ? "sentinel://" : "redis://");
	for (uint32_t i = 0; i < c->nhosts; i++) {
		bool v6 = strchr(c->hosts[i].host, ':') != NULL;
		sb_addf(&b, "%s%s%s%s:%d", i ? "," : "", v6 ? "[" : "", c->hosts[i].host,
			v6 ? "]" : "", c->hosts[i].port);
	}
	if (c->sentinel)
		sb_addf(&b, "/%s", c->master);
	sb_adds(&b, "?stream=");
	sb_add(&b, c->stream, c->stream_len);
	return sb_detach(&b, NULL);
}

int train_events_open(const char *source, train_events **out, strbuf *err)
{
	train_events *te = xcalloc(1, sizeof(*te));
	te->source = xstrdup(source);
	te->no_consent = idmap_create();
	if (is_url(source)) {
		if (eventlog_config_parse(source, &te->cfg, err) != 0)
			goto fail;
		te->label = url_label(&te->cfg);
		if (eventlog_open(&te->cfg, &te->log) != 0) {
			sb_adds(err, "event log: cannot open");
			goto fail;
		}
		if (eventlog_ping(te->log) != 0) {
			sb_addf(err, "--events-from %s: %s", te->label, eventlog_errmsg(te->log));
			goto fail;
		}
	} else {
		struct stat sb;
		if (stat(source, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
			sb_addf(err, "--events-from %s: not a state directory nor a redis:// or "
				"sentinel:// URL", source);
			goto fail;
		}
		te->label = xstrdup(source);
		if (state_open_readonly(source, &te->st, err) != 0)
			goto fail;
	}
	*out = te;
	return 0;
fail:
	train_events_close(te);
	return -1;
}

void train_events_close(train_events *te)
{
	if (!te)
		return;
	state_close(te->st);
	eventlog_close(te->log);
	eventlog_config_free(&te->cfg);
	idmap_free(te->no_consent);
	free(te->label);
	free(te->source);
	free(te);
}

/* ---- the exclusions ------------------------------------------------------- */

struct flags_ctx {
	idmap *erased;
	idmap *no_consent; /* NULL: only erasures wanted */
};

static int on_flag(void *arg, const eventlog_record *rec, eventlog_id id)
{
	(void)id;
	struct flags_ctx *c = arg;
	if (rec->kind == EVENTLOG_ERASURE)
		idmap_intern(c->erased, rec->customer, rec->customer_len, NULL);
	else if (rec->kind == EVENTLOG_CONSENT && !rec->personalization && c->no_consent)
		idmap_intern(c->no_consent, rec->customer, rec->customer_len, NULL);
	return 0;
}

/* The customers erased in the source, into `erased`; with the log, those
 * without consent into no_consent (may be NULL). */
static int read_flags(train_events *te, idmap *erased, idmap *no_consent, strbuf *err)
{
	if (te->log) {
		struct flags_ctx c = { erased, no_consent };
		if (eventlog_flags_each(te->log, on_flag, &c, NULL) != 0) {
			sb_addf(err, "event log %s: %s", te->label, eventlog_errmsg(te->log));
			return -1;
		}
		return 0;
	}
	/* The state lists every erased id in erasures.txt before it flags them
	 * (state.h), so the list is complete; a state never erased has none. */
	strbuf path = STRBUF_INIT;
	sb_addf(&path, "%s/erasures.txt", te->source);
	idmap *list = NULL;
	int rc = 0;
	if (access(path.buf, F_OK) == 0) {
		rc = ingest_id_list(path.buf, &list, err);
		for (uint32_t i = 0; rc == 0 && i < idmap_count(list); i++) {
			size_t len;
			const char *id = idmap_name(list, i, &len);
			idmap_intern(erased, id, len, NULL);
		}
	} else if (errno != ENOENT) {
		sb_addf(err, "%s: %s", path.buf, strerror(errno));
		rc = -1;
	}
	idmap_free(list);
	sb_release(&path);
	return rc;
}

int train_events_exclusions(train_events *te, idmap **exclude, strbuf *err)
{
	if (!*exclude)
		*exclude = idmap_create();
	return read_flags(te, *exclude, te->no_consent, err);
}

int train_events_recheck(train_events *te, const idmap *exclude, strbuf *err)
{
	idmap *now = idmap_create();
	int rc = read_flags(te, now, NULL, err);
	for (uint32_t i = 0; rc == 0 && i < idmap_count(now); i++) {
		size_t len;
		uint32_t idx;
		const char *id = idmap_name(now, i, &len);
		if (!exclude || !idmap_find(exclude, id, len, &idx)) {
			sb_addf(err, "--events-from %s: a customer was erased while training read "
				"it; nothing was written, run train again", te->label);
			rc = -1;
		}
	}
	idmap_free(now);
	return rc;
}

/* ---- feeding ---------------------------------------------------------------- */

/* One event through the source-independent rules, then ingest's. */
static void feed_one(train_events *te, const ingest_options *opt, bool has_after, int64_t after,
		     dataset *ds, const ingest_event *ev)
{
	uint32_t idx;
	if (idmap_find(te->no_consent, ev->customer, ev->customer_len, &idx)) {
		ds->live.no_consent++;
		return;
	}
	if (has_after && ev->ts <= after) {
		ds->live.covered++;
		return;
	}
	ingest_add_event(ds, opt, ev, NULL);
}

static int feed_state(train_events *te, const ingest_options *opt, bool has_after, int64_t after,
		      dataset *ds, strbuf *err)
{
	state_txn *t = NULL;
	state_iter *it = NULL;
	int rc = state_txn_begin(te->st, &t);
	if (rc == 0)
		rc = state_iter_begin(t, NULL, 0, &it);
	const char *id;
	size_t len;
	state_events evs;
	while (rc == 0 && (rc = state_iter_next(it, &id, &len, &evs)) == 0) {
		uint32_t flags = 0;
		if ((rc = state_customer_flags(t, id, len, &flags)) != 0)
			break;
		if (flags & STATE_ERASED)
			continue; /* their log is deleted with the flag; never trained */
		bool consent = !(flags & STATE_NO_PERSONALIZATION);
		size_t pos = 0;
		event_view v;
		while ((rc = state_events_next(&evs, &pos, &v)) == 0) {
			if (!consent) {
				ds->live.no_consent++;
				continue;
			}
			ingest_event ev = { id, len, v.item, v.item_len, v.ts, v.quantity, v.price,
					    v.type };
			feed_one(te, opt, has_after, after, ds, &ev);
		}
		if (rc == STORE_NOTFOUND)
			rc = 0;
	}
	if (rc == STORE_NOTFOUND)
		rc = 0;
	state_iter_end(it);
	state_txn_free(t);
	if (rc != 0) {
		sb_addf(err, "--events-from %s: cannot read the state (%s)", te->label,
			store_strerror(rc));
		return -1;
	}
	return 0;
}

static int feed_log(train_events *te, const ingest_options *opt, bool has_after, int64_t after,
		    dataset *ds, strbuf *err)
{
	eventlog_id last, from = EVENTLOG_ID_MIN;
	uint64_t length;
	eventlog_batch b = { 0 };
	int rc = eventlog_tail(te->log, &last, &length);
	/* Entries appended from here on are the next training's. */
	if (rc == 0 && eventlog_id_cmp(last, EVENTLOG_ID_MIN) != 0)
		eventlog_id_format(last, ds->live.last_id);
	while (rc == 0 && eventlog_id_cmp(last, EVENTLOG_ID_MIN) != 0) {
		rc = eventlog_range(te->log, from, last, SCAN_CHUNK, &b);
		if (rc != 0 || b.n == 0)
			break;
		for (size_t i = 0; i < b.n; i++) {
			const eventlog_entry *e = &b.entries[i];
			if (e->status == EVENTLOG_EVERSION) {
				char idbuf[EVENTLOG_ID_LEN];
				eventlog_id_format(e->id, idbuf);
				sb_addf(err, "event log %s: entry %s is of a newer format than this "
					"build reads: upgrade shopkeeper", te->label, idbuf);
				eventlog_batch_release(&b);
				return -1;
			}
			if (e->status != 0) { /* a buggy writer's entry: not an event */
				ds->live.read++;
				ds->live.skipped_by[SKIP_EVENT]++;
				continue;
			}
			const eventlog_record *r = &e->rec;
			uint32_t idx;
			if (r->kind == EVENTLOG_ERASURE) {
				/* Its earlier events were deleted with it (XDEL), and the
				 * compacted flags, read before the CSV, named it: an
				 * erasure is final, whatever follows it. */
				if (opt->exclude &&
				    idmap_find(opt->exclude, r->customer, r->customer_len, &idx))
					continue;
				sb_addf(err, "event log %s: an erasure the compacted flags lack; "
					"nothing was written, run train again", te->label);
				eventlog_batch_release(&b);
				return -1;
			}
			if (r->kind != EVENTLOG_EVENT)
				continue; /* consent: the compacted flags hold the latest */
			ingest_event ev = { r->customer, r->customer_len, r->item, r->item_len,
					    r->ts, r->quantity, r->price, r->type };
			feed_one(te, opt, has_after, after, ds, &ev);
		}
		if (eventlog_id_cmp(b.entries[b.n - 1].id, last) >= 0)
			break;
		from = eventlog_id_next(b.entries[b.n - 1].id);
	}
	eventlog_batch_release(&b);
	if (rc != 0) {
		sb_addf(err, "event log %s: %s", te->label, eventlog_errmsg(te->log));
		return -1;
	}
	return 0;
}

int train_events_feed(train_events *te, const ingest_options *opt, bool has_after,
		      int64_t after, dataset *ds, strbuf *err)
{
	free(ds->live.source);
	ds->live.source = xstrdup(te->label);
	return te->log ? feed_log(te, opt, has_after, after, ds, err)
		       : feed_state(te, opt, has_after, after, ds, err);
}
