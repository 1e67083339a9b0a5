/*
 * eventlog_admin: the event log's side keys beside the stream (eventlog.h
 * has their layout): the erasure index per customer, trimming and the
 * trim point, the compacted flags a replica bootstraps from, and the
 * checks of the failover logic and of lag. Everything works through the
 * handle and the command helpers of eventlog.c (eventlog_internal.h).
 */
#include "eventlog.h"

#include <stdlib.h>
#include <string.h>

#include "eventlog_internal.h"
#include "util.h"

/* ---- erasure, trimming, bootstrap, failover ---------------------------------- */

int eventlog_customer_entries(eventlog *log, const char *customer, size_t len, uint64_t *count)
{
	sb_reset(&log->err);
	sb_reset(&log->keys);
	eventlog_key_add(log, ":c:", customer, len);
	const char *argv[] = { "LLEN", log->keys.buf };
	size_t argl[] = { 4, log->cfg.stream_len + 3 + len };
	redisReply *r;
	int rc = eventlog_run_argv(log, &r, 2, argv, argl);
	if (rc)
		return rc;
	*count = r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? (uint64_t)r->integer : 0;
	eventlog_free_reply(r);
	return 0;
}

/* Reads key K:trimmed (EVENTLOG_ID_MIN when unset) into *id. */
static int get_trimmed(eventlog *log, eventlog_id *id)
{
	sb_reset(&log->keys);
	eventlog_key_add(log, ":trimmed", NULL, 0);
	const char *argv[] = { "GET", log->keys.buf };
	size_t argl[] = { 3, log->keys.len - 1 };
	redisReply *r;
	int rc = eventlog_run_argv(log, &r, 2, argv, argl);
	if (rc)
		return rc;
	*id = EVENTLOG_ID_MIN;
	if (r->type == REDIS_REPLY_STRING)
		eventlog_id_parse(r->str, r->len, id);
	eventlog_free_reply(r);
	return 0;
}

int eventlog_trim(eventlog *log, eventlog_id minid, size_t chunk, uint64_t *trimmed)
{
	sb_reset(&log->err);
	if (trimmed)
		*trimmed = 0;
	if (chunk == 0)
		chunk = 1000;
	if (chunk > READ_COUNT_MAX)
		return eventlog_fail(log, EVENTLOG_EINVAL, "event log trim: chunk too large");
	eventlog_id last;
	if (!eventlog_id_prev(minid, &last))
		return 0; /* nothing is before 0-0 */

	/* Record the trim point first: if the trim stops midway, entries
	 * already gone are explained (eventlog_check_entry), and those still
	 * there are found. Only ever raised (one trimmer: publish-model). */
	eventlog_id old;
	int rc = get_trimmed(log, &old);
	if (rc)
		return rc;
	if (eventlog_id_cmp(minid, old) > 0) {
		char id[EVENTLOG_ID_LEN];
		eventlog_id_format(minid, id);
		const char *argv[] = { "SET", log->keys.buf, id };
		size_t argl[] = { 3, log->keys.len - 1, strlen(id) };
		redisReply *r;
		if ((rc = eventlog_run_argv(log, &r, 3, argv, argl)) != 0)
			return rc;
		eventlog_free_reply(r);
	}

	eventlog_batch b = { 0 };
	while (1) {
		rc = eventlog_range(log, EVENTLOG_ID_MIN, last, chunk, &b);
		if (rc || b.n == 0)
			break;
		/* One pipeline: the chunk's ids off their customers' lists, then
		 * XTRIM up to just after the chunk. */
		char next[EVENTLOG_ID_LEN];
		eventlog_id_format(eventlog_id_next(b.entries[b.n - 1].id), next);
		sb_reset(&log->keys);
		size_t *koff = xmallocarray(b.n, sizeof(*koff));
		for (size_t i = 0; i < b.n; i++) {
			const eventlog_entry *e = &b.entries[i];
			koff[i] = SIZE_MAX;
			if (e->status == 0 && (e->rec.kind == EVENTLOG_EVENT ||
					       e->rec.kind == EVENTLOG_SERVED ||
					       e->rec.kind == EVENTLOG_CONSENT))
				koff[i] = eventlog_key_add(log, ":c:", e->rec.customer,
							   e->rec.customer_len);
		}
		int sent = 0;
		for (size_t i = 0; i < b.n; i++) {
			if (koff[i] == SIZE_MAX)
				continue;
			char id[EVENTLOG_ID_LEN];
			size_t il = eventlog_id_format(b.entries[i].id, id);
			const char *argv[] = { "LREM", log->keys.buf + koff[i], "1", id };
			size_t argl[] = { 4, strlen(log->keys.buf + koff[i]), 1, il };
			/* Customer ids hold no NUL (validated), so strlen is the key's
			 * length. */
			redisAppendCommandArgv(log->c, 4, argv, argl);
			sent++;
		}
		free(koff);
		const char *targv[] = { "XTRIM", log->cfg.stream, "MINID", next };
		size_t targl[] = { 5, log->cfg.stream_len, 5, strlen(next) };
		redisAppendCommandArgv(log->c, 4, targv, targl);
		for (int i = 0; i <= sent && rc == 0; i++) {
			redisReply *r = NULL;
			if (redisGetReply(log->c, (void **)&r) != REDIS_OK)
				r = NULL;
			rc = eventlog_check_reply(log, r, i < sent ? "LREM" : "XTRIM");
			if (!rc && i == sent && trimmed && r->type == REDIS_REPLY_INTEGER)
				*trimmed += (uint64_t)r->integer;
			eventlog_free_reply(r);
		}
		if (rc || b.n < chunk)
			break;
	}
	eventlog_batch_release(&b);
	return rc;
}

/* One field of K:catalog: name LETTER..ITEM, value "ID ENCODING", the
 * latest catalog record giving that field. *rec gets the record cut to
 * that one field (strings borrowed from v). Returns 0 or -1 when it does
 * not hold together (a buggy writer). */
static int catalog_field(const redisReply *c, const redisReply *v, eventlog_record *rec,
			 eventlog_id *id)
{
	static const char letters[] = "tcpf"; /* EVENTLOG_CATALOG_* bit 0..3 */
	if (c->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || c->len < 2)
		return -1;
	const char *l = memchr(letters, c->str[0], 4);
	const char *sp = memchr(v->str, ' ', v->len);
	if (!l || !sp || eventlog_id_parse(v->str, (size_t)(sp - v->str), id) != 0)
		return -1;
	unsigned bit = 1u << (l - letters);
	size_t off = (size_t)(sp - v->str) + 1;
	eventlog_record r;
	if (eventlog_decode(v->str + off, v->len - off, &r) != 0 || r.kind != EVENTLOG_CATALOG ||
	    !(r.catalog_fields & bit) || r.item_len != c->len - 1 ||
	    memcmp(r.item, c->str + 1, r.item_len) != 0)
		return -1;
	*rec = (eventlog_record){ .kind = EVENTLOG_CATALOG, .item = r.item, .item_len = r.item_len,
				  .catalog_fields = (uint8_t)bit };
	if (bit == EVENTLOG_CATALOG_TITLE) {
		rec->title = r.title;
		rec->title_len = r.title_len;
	} else if (bit == EVENTLOG_CATALOG_CATEGORY) {
		rec->category = r.category;
		rec->category_len = r.category_len;
	} else if (bit == EVENTLOG_CATALOG_PRICE) {
		rec->price = r.price;
	} else {
		rec->first_seen = r.first_seen;
	}
	return 0;
}

/* HSCAN of K<suffix> (of records of `kind`), calling fn per field. */
static int flags_scan(eventlog *log, const char *suffix, uint8_t kind, eventlog_flags_fn fn,
		      void *arg, uint64_t *skipped)
{
	bool consent = kind == EVENTLOG_CONSENT, item = kind == EVENTLOG_ITEM;
	char cursor[24] = "0";
	sb_reset(&log->keys);
	eventlog_key_add(log, suffix, NULL, 0);
	char *key = xstrdup(log->keys.buf);
	size_t keylen = log->keys.len - 1;
	int rc = 0;
	do {
		const char *argv[] = { "HSCAN", key, cursor, "COUNT", "500" };
		size_t argl[] = { 5, keylen, strlen(cursor), 5, 3 };
		redisReply *r;
		if ((rc = eventlog_run_argv(log, &r, 5, argv, argl)) != 0)
			break;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof(cursor) ||
		    r->element[1]->type != REDIS_REPLY_ARRAY || r->element[1]->elements % 2) {
			eventlog_free_reply(r);
			rc = eventlog_fail(log, EVENTLOG_EREDIS,
					   "event log %s: HSCAN: malformed reply", log->addr);
			break;
		}
		memcpy(cursor, r->element[0]->str, r->element[0]->len);
		cursor[r->element[0]->len] = '\0';
		const redisReply *kv = r->element[1];
		for (size_t i = 0; i + 1 < kv->elements && rc == 0; i += 2) {
			const redisReply *c = kv->element[i], *v = kv->element[i + 1];
			eventlog_record rec = { .kind = kind };
			eventlog_id id;
			const char *idp = v->str;
			size_t idl = v->len;
			if (kind == EVENTLOG_CATALOG) {
				if (catalog_field(c, v, &rec, &id) == 0)
					rc = fn(arg, &rec, id);
				else if (skipped)
					(*skipped)++;
				continue;
			}
			if (consent && v->type == REDIS_REPLY_STRING && v->len > 0 &&
			    (v->str[0] == '0' || v->str[0] == '1')) {
				rec.personalization = v->str[0] == '1';
				idp++;
				idl--;
			} else if (item && v->type == REDIS_REPLY_STRING && v->len > 0 &&
				   v->str[0] >= '1' && v->str[0] <= '0' + (int)EVENTLOG_ITEM_ALL) {
				rec.item_set = (uint8_t)(v->str[0] - '0');
				rec.item_clear = (uint8_t)(EVENTLOG_ITEM_ALL & ~rec.item_set);
				idp++;
				idl--;
			} else if (consent || item) {
				idp = NULL;
			}
			if (c->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || !idp ||
			    eventlog_id_parse(idp, idl, &id) != 0 ||
			    !eventlog_valid_string(c->str, c->len, 1,
					  item ? EVENTLOG_ITEM_MAX : EVENTLOG_CUSTOMER_MAX)) {
				if (skipped)
					(*skipped)++;
				continue;
			}
			if (item) {
				rec.item = c->str;
				rec.item_len = c->len;
			} else {
				rec.customer = c->str;
				rec.customer_len = c->len;
			}
			rc = fn(arg, &rec, id);
		}
		eventlog_free_reply(r);
	} while (rc == 0 && strcmp(cursor, "0") != 0);
	free(key);
	return rc;
}

int eventlog_flags_each(eventlog *log, eventlog_flags_fn fn, void *arg, uint64_t *skipped)
{
	sb_reset(&log->err);
	if (skipped)
		*skipped = 0;
	int rc = flags_scan(log, ":erased", EVENTLOG_ERASURE, fn, arg, skipped);
	if (rc == 0)
		rc = flags_scan(log, ":consent", EVENTLOG_CONSENT, fn, arg, skipped);
	if (rc == 0)
		rc = flags_scan(log, ":items", EVENTLOG_ITEM, fn, arg, skipped);
	if (rc == 0)
		rc = flags_scan(log, ":catalog", EVENTLOG_CATALOG, fn, arg, skipped);
	return rc;
}

static int check_once(eventlog *log, eventlog_id id, const char *customer, size_t len,
		      enum eventlog_presence *out)
{
	eventlog_batch b = { 0 };
	int rc = eventlog_range_once(log, id, id, 1, &b, false);
	size_t found = b.n;
	eventlog_batch_release(&b);
	if (rc)
		return rc;
	if (found) {
		*out = EVENTLOG_PRESENT;
		return 0;
	}
	eventlog_id trimmed;
	if ((rc = get_trimmed(log, &trimmed)) != 0)
		return rc;
	if (eventlog_id_cmp(id, trimmed) < 0) {
		*out = EVENTLOG_TRIMMED;
		return 0;
	}
	if (len == 0) { /* no customer's: no erasure deletes it */
		*out = EVENTLOG_LOST;
		return 0;
	}
	sb_reset(&log->keys);
	eventlog_key_add(log, ":erased", NULL, 0);
	const char *argv[] = { "HGET", log->keys.buf, customer };
	size_t argl[] = { 4, log->keys.len - 1, len };
	redisReply *r;
	if ((rc = eventlog_run_argv(log, &r, 3, argv, argl)) != 0)
		return rc;
	eventlog_id erased;
	*out = r->type == REDIS_REPLY_STRING && eventlog_id_parse(r->str, r->len, &erased) == 0 &&
			       eventlog_id_cmp(erased, id) > 0
		       ? EVENTLOG_ERASED
		       : EVENTLOG_LOST;
	eventlog_free_reply(r);
	return 0;
}

int eventlog_check_entry(eventlog *log, eventlog_id id, const char *customer, size_t len,
			 enum eventlog_presence *out)
{
	int rc;
	sb_reset(&log->err);
	if (!eventlog_valid_string(customer, len, 0, EVENTLOG_CUSTOMER_MAX))
		return eventlog_fail(log, EVENTLOG_EINVAL, "event log check: bad customer id");
	RETRY_ONCE(log, check_once(log, id, customer, len, out));
	return rc;
}

static int tail_once(eventlog *log, eventlog_id *last, uint64_t *length)
{
	eventlog_batch b = { 0 };
	int rc = eventlog_range_once(log, EVENTLOG_ID_MIN, EVENTLOG_ID_MAX, 1, &b, true);
	*last = rc == 0 && b.n ? b.entries[0].id : EVENTLOG_ID_MIN;
	eventlog_batch_release(&b);
	if (rc)
		return rc;
	const char *argv[] = { "XLEN", log->cfg.stream };
	size_t argl[] = { 4, log->cfg.stream_len };
	redisReply *r;
	if ((rc = eventlog_run_argv(log, &r, 2, argv, argl)) != 0)
		return rc;
	*length = r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? (uint64_t)r->integer : 0;
	eventlog_free_reply(r);
	return 0;
}

int eventlog_tail(eventlog *log, eventlog_id *last, uint64_t *length)
{
	int rc;
	sb_reset(&log->err);
	RETRY_ONCE(log, tail_once(log, last, length));
	return rc;
}
