/*
 * audience: segment, birthday and `all` audiences. See audience.h.
 */
#include "audience.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h" /* enum event_type */
#include "state.h"
#include "timefmt.h"

void audience_filter_init(audience_filter *f)
{
	memset(f, 0, sizeof(*f));
	f->min_monetary = -INFINITY;
	f->max_monetary = INFINITY;
	f->purchased_before = INT64_MAX;
	f->purchased_after = INT64_MIN;
}

int audience_parse(const char *name, size_t len, uint32_t days, uint32_t hours, audience *out)
{
	memset(out, 0, sizeof(*out));
	audience_filter_init(&out->filter);
	out->new_since = MODEL_DAY_UNKNOWN;
	out->days = days ? days : AUDIENCE_DEFAULT_DAYS;
	if (len == 15 && memcmp(name, "cart_abandoners", 15) == 0) {
		out->kind = AUDIENCE_CART_ABANDONERS;
		out->hours = hours ? hours : AUDIENCE_DEFAULT_CART_HOURS;
		return 0;
	}
	if (len == 18 && memcmp(name, "browsed_not_bought", 18) == 0) {
		out->kind = AUDIENCE_BROWSED_NOT_BOUGHT;
		out->hours = hours ? hours : AUDIENCE_DEFAULT_BROWSE_HOURS;
		return 0;
	}
	if (len == 8 && memcmp(name, "birthday", 8) == 0) {
		out->kind = AUDIENCE_BIRTHDAY;
		return 0;
	}
	if (len == 3 && memcmp(name, "all", 3) == 0) {
		out->kind = AUDIENCE_ALL;
		return 0;
	}
	int seg = segment_parse(name, len);
	if (seg < 0)
		return -1;
	out->kind = AUDIENCE_SEGMENT;
	out->segment = (enum segment)seg;
	return 0;
}

const char *audience_names(void)
{
	return "champions, loyal, new, promising, needs_attention, at_risk, dormant, lost, "
	       "prospect, birthday, all, cart_abandoners, browsed_not_bought";
}

/* Month * 100 + day of Unix time t (UTC). */
static unsigned month_day(int64_t t)
{
	char buf[TIME_FMT_LEN];
	time_format(t, buf);
	return (unsigned)((buf[5] - '0') * 1000 + (buf[6] - '0') * 100 + (buf[8] - '0') * 10 +
			  (buf[9] - '0'));
}

static bool birthday_within(uint16_t birthday, int64_t now, uint32_t days)
{
	if (birthday == 0)
		return false;
	for (uint32_t d = 0; d < days; d++) {
		unsigned md = month_day(now + (int64_t)d * 86400);
		/* A 29 February birthday is celebrated on 1 March in other years. */
		if (md == birthday)
			return true;
		if (birthday == 229 && md == 301 &&
		    month_day(now + ((int64_t)d - 1) * 86400) != 229)
			return true;
	}
	return false;
}

/* Whether the audience is built from live events (triggers) rather than
 * from the model's customers. */
static bool audience_is_trigger(const audience *a)
{
	return a->kind == AUDIENCE_CART_ABANDONERS || a->kind == AUDIENCE_BROWSED_NOT_BOUGHT;
}

/* Decodes up to STATE_MAX_EVENTS events, oldest first; returns how many. */
static uint32_t decode_all(const state_events *ev, event_view *out)
{
	size_t pos = 0;
	uint32_t n = 0;
	while (n < STATE_MAX_EVENTS && state_events_next(ev, &pos, &out[n]) == 0)
		n++;
	return n;
}

/* Which events are settled by a later one: a view or cart whose item was
 * bought later, or a cart whose item was taken out of the cart later.
 * One pass from the newest event, with the items seen so far in a small
 * hash set: asking "anything later?" of each event in turn made a
 * customer with a full log (500 events) cost a quarter of a million
 * comparisons per request. */
#define SEEN_SLOTS 1024 /* a power of two, over twice STATE_MAX_EVENTS */
_Static_assert(SEEN_SLOTS >= 2 * STATE_MAX_EVENTS, "the set must stay half empty");
enum { SEEN_BOUGHT = 1, SEEN_REMOVED = 2, SEEN_ENGAGED = 4 };

struct seen {
	const char *item; /* NULL: free slot */
	size_t len;
	uint8_t what;     /* SEEN_* */
	uint16_t views;   /* audience_capped_views only */
};

static struct seen *seen_slot(struct seen *set, uint32_t mask, const event_view *e)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < e->item_len; i++)
		h = (h ^ (unsigned char)e->item[i]) * 16777619u;
	for (h &= mask;; h = (h + 1) & mask) {
		struct seen *s = &set[h];
		if (!s->item || (s->len == e->item_len && memcmp(s->item, e->item, s->len) == 0))
			return s;
	}
}

static void mark_resolved(const event_view *e, uint32_t n, bool *resolved)
{
	struct seen set[SEEN_SLOTS];
	uint32_t slots = 16; /* twice n at least, cleared only as far as used */
	while (slots < 2 * n)
		slots *= 2;
	memset(set, 0, slots * sizeof(set[0]));
	for (uint32_t i = n; i-- > 0;) {
		struct seen *s = seen_slot(set, slots - 1, &e[i]);
		resolved[i] = s->item && ((s->what & SEEN_BOUGHT) ||
					  (e[i].type == EVENT_CART && (s->what & SEEN_REMOVED)));
		uint8_t what = e[i].type == EVENT_PURCHASE && e[i].quantity > 0 ? SEEN_BOUGHT
			     : e[i].type == EVENT_REMOVE_FROM_CART	    ? SEEN_REMOVED
									    : 0;
		if (what) {
			s->item = e[i].item;
			s->len = e[i].item_len;
			s->what |= what;
		}
	}
}

/* Lists into mb the items that keep the customer in a trigger audience:
 * the newest unsettled cart (view) of each item within the window, newest
 * first. The customer is a member when one is listed. */
static void list_trigger_items(const audience *a, const state_events *ev, int64_t now,
			       audience_member *mb)
{
	event_view e[STATE_MAX_EVENTS];
	bool resolved[STATE_MAX_EVENTS];
	uint32_t n = decode_all(ev, e);
	mark_resolved(e, n, resolved);
	int want = a->kind == AUDIENCE_CART_ABANDONERS ? EVENT_CART : EVENT_VIEW;
	int64_t since = now - (int64_t)a->hours * 3600;
	mb->n_listed = 0;
	for (uint32_t i = n; i-- > 0 && mb->n_listed < AUDIENCE_MAX_LISTED;) {
		if (e[i].ts < since || e[i].type != want || resolved[i])
			continue;
		bool dup = false; /* an older event of an item already listed */
		for (uint32_t k = 0; k < mb->n_listed && !dup; k++)
			dup = mb->listed[k].len == e[i].item_len &&
			      memcmp(mb->listed[k].item, e[i].item, e[i].item_len) == 0;
		if (dup)
			continue;
		mb->listed[mb->n_listed++] = (audience_listed){ e[i].item, e[i].item_len, e[i].ts };
	}
}

uint32_t audience_capped_views(model_txn *t, const state_events *ev, uint32_t *out,
			       uint32_t cap)
{
	if (!ev || ev->count == 0 || cap == 0)
		return 0;
	event_view e[STATE_MAX_EVENTS];
	struct seen set[SEEN_SLOTS];
	uint32_t n = decode_all(ev, e), slots = 16, got = 0;
	while (slots < 2 * n)
		slots *= 2;
	memset(set, 0, slots * sizeof(set[0]));
	for (uint32_t i = 0; i < n; i++) {
		struct seen *s = seen_slot(set, slots - 1, &e[i]);
		s->item = e[i].item;
		s->len = e[i].item_len;
		if (e[i].type == EVENT_VIEW)
			s->views++;
		else if (e[i].type == EVENT_CART || e[i].type == EVENT_PURCHASE)
			s->what |= SEEN_ENGAGED;
	}
	for (uint32_t k = 0; k < slots && got < cap; k++) {
		uint32_t idx;
		if (set[k].item && set[k].views >= AUDIENCE_CAP_VIEWS && !(set[k].what & SEEN_ENGAGED) &&
		    model_item_lookup(t, set[k].item, set[k].len, &idx) == 0)
			out[got++] = idx;
	}
	return got;
}

static int cmp_days(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* The model's figures plus the purchases among e[0..n) after as-of (e may
 * be NULL when n is 0). */
static void live_figures(const model *m, const model_customer *c, const event_view *e, uint32_t n,
			 customer_live *out)
{
	const model_info *info = model_get_info(m);
	memset(out, 0, sizeof(*out));
	if (c) {
		out->figs.first_purchase = c->sum.first_purchase;
		out->figs.last_purchase = c->sum.last_purchase;
		out->figs.frequency = c->sum.frequency;
		out->figs.monetary = c->sum.monetary;
	}
	int64_t days[STATE_MAX_EVENTS];
	uint32_t n_days = 0;
	int64_t known_last_day = out->figs.frequency ? out->figs.last_purchase / 86400 : INT64_MIN;
	for (uint32_t i = 0; i < n; i++) {
		if (e[i].ts > out->last_event)
			out->last_event = e[i].ts;
		if (e[i].ts <= info->as_of)
			continue; /* already in the model's figures */
		out->events++;
		if (e[i].type != EVENT_PURCHASE)
			continue;
		out->figs.monetary += e[i].quantity * e[i].price;
		if (e[i].quantity <= 0)
			continue;
		if (out->figs.frequency == 0 && n_days == 0)
			out->figs.first_purchase = e[i].ts;
		if (e[i].ts > out->figs.last_purchase)
			out->figs.last_purchase = e[i].ts;
		if (e[i].ts / 86400 != known_last_day)
			days[n_days++] = e[i].ts / 86400;
	}
	qsort(days, n_days, sizeof(*days), cmp_days);
	for (uint32_t i = 0; i < n_days; i++)
		out->figs.frequency += i == 0 || days[i] != days[i - 1];
}

void customer_live_figures(const model *m, const model_customer *c, const state_events *ev,
			   customer_live *out)
{
	event_view e[STATE_MAX_EVENTS];
	uint32_t n = ev && ev->count ? decode_all(ev, e) : 0;
	live_figures(m, c, n ? e : NULL, n, out);
}

void customer_live_compute(const model *m, const model_customer *c, const state_events *ev,
			   int64_t now, customer_live *out)
{
	event_view e[STATE_MAX_EVENTS];
	bool resolved[STATE_MAX_EVENTS];
	uint32_t n = ev && ev->count ? decode_all(ev, e) : 0;
	live_figures(m, c, n ? e : NULL, n, out);
	if (n == 0)
		return;
	mark_resolved(e, n, resolved);
	int64_t as_of = model_get_info(m)->as_of;
	double rate = log(2.0) / (INTENT_HALF_LIFE_HOURS * 3600.0);
	for (uint32_t i = 0; i < n; i++) {
		if (e[i].ts <= as_of || resolved[i] ||
		    (e[i].type != EVENT_VIEW && e[i].type != EVENT_CART))
			continue;
		double age = (double)(now - e[i].ts);
		float w = e[i].type == EVENT_CART ? 1.0f : 0.3f;
		out->intent += w * (float)(age > 0 ? exp(-rate * age) : 1.0);
	}
}

enum segment customer_live_segment(const model *m, const customer_live *l, int64_t now,
				   rfm_scores *scores)
{
	rfm_scores s = rfm_score(&model_get_info(m)->rfm, &l->figs, now);
	if (scores)
		*scores = s;
	return rfm_segment(s);
}

/* ---- attributes ------------------------------------------------------------ */

/* Decodes the JSON string at *p (after its opening quote) up to its closing
 * quote into buf; advances *p past it. Returns the length, or -1 when it
 * does not fit (then *p is still advanced). Train wrote the text
 * (sb_add_json_str): escapes are \" \\ \/ \b \f \n \r \t and \u00XX. */
static long json_str(const char **p, const char *end, char *buf, size_t cap)
{
	const char *q = *p;
	size_t n = 0;
	bool fits = true;
	while (q < end && *q != '"') {
		char c = *q++;
		if (c == '\\' && q < end) {
			char x = *q++;
			switch (x) {
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u': {
				unsigned v = 0;
				for (int k = 0; k < 4 && q < end; k++, q++)
					v = v * 16 + (unsigned)(*q <= '9' ? *q - '0' : (*q | 32) - 'a' + 10);
				c = (char)v; /* only control bytes are written this way */
				break;
			}
			default: c = x; break;
			}
		}
		if (n + 1 < cap)
			buf[n++] = c;
		else
			fits = false;
	}
	*p = q < end ? q + 1 : end;
	if (cap)
		buf[n < cap ? n : cap - 1] = '\0';
	return fits ? (long)n : -1;
}

int audience_attr(const model_customer *c, const char *name, size_t name_len, char *buf,
		  size_t cap, size_t *len)
{
	const char *p = c->attrs, *end = c->attrs + c->attrs_len;
	char key[256];
	while (p < end) {
		while (p < end && *p != '"')
			p++; /* to the next key: past '{' or ',' */
		if (p++ >= end)
			return 0;
		long kn = json_str(&p, end, key, sizeof(key));
		while (p < end && *p != '"')
			p++; /* past ':' */
		if (p++ >= end)
			return 0;
		bool want = kn >= 0 && (size_t)kn == name_len && memcmp(key, name, name_len) == 0;
		long vn = json_str(&p, end, buf, cap);
		if (want) {
			if (vn < 0)
				return 0;
			*len = (size_t)vn;
			return 1;
		}
	}
	return 0;
}

/* Whether the customer passes the audience's filter. */
static bool filter_pass(const audience_filter *f, const model_customer *c, const customer_live *l)
{
	double money = round((double)l->figs.monetary * 100) / 100; /* as answers show it */
	if (money < f->min_monetary || money > f->max_monetary)
		return false;
	if (f->purchased_before != INT64_MAX || f->purchased_after != INT64_MIN) {
		if (l->figs.frequency == 0 || l->figs.last_purchase >= f->purchased_before ||
		    l->figs.last_purchase < f->purchased_after)
			return false;
	}
	if (!f->country && f->n_attrs == 0)
		return true;
	if (!c)
		return false;
	char val[INGEST_MAX_ATTRS];
	size_t vlen;
	if (f->country && !(audience_attr(c, "country", 7, val, sizeof(val), &vlen) &&
			    vlen == f->country_len && memcmp(val, f->country, vlen) == 0))
		return false;
	for (uint32_t i = 0; i < f->n_attrs; i++) {
		const struct audience_attr *at = &f->attrs[i];
		if (!(audience_attr(c, at->name, at->name_len, val, sizeof(val), &vlen) &&
		      vlen == at->value_len && memcmp(val, at->value, vlen) == 0))
			return false;
	}
	return true;
}

/* ---- the walk ---------------------------------------------------------------- */

/* Segments, birthday and `all` merge two walks in id order: the model's
 * customers and the state's customers with events (a customer in both is
 * one member, with the events). Triggers walk the state alone. */
struct audience_walk {
	audience aud;
	model *m;
	model_txn *t;
	state_txn *st;
	model_iter *mit;  /* NULL: no model walk (triggers) */
	state_iter *sit;  /* NULL: no state */
	/* The next entry of each walk, read ahead for the merge. */
	bool m_ready, m_end, s_ready, s_end;
	const char *m_id, *s_id;
	size_t m_len, s_len;
	model_customer m_c;
	state_events s_ev;
	bool saw_birth_dates;
	int64_t now;
};

int audience_walk_begin(const audience *a, model_txn *t, state_txn *st, const char *after,
			size_t after_len, audience_walk **out)
{
	assert(a && t && out && (after || after_len == 0));
	audience_walk *w = calloc(1, sizeof(*w));
	if (!w)
		return STORE_ERROR;
	w->aud = *a;
	w->t = t;
	w->st = st;
	w->m = model_txn_model(t);
	w->now = model_now(w->m);
	int rc = 0;
	if (st)
		rc = state_iter_begin(st, after, after_len, &w->sit);
	if (rc == 0 && !audience_is_trigger(a))
		rc = model_iter_begin(t, after, after_len, &w->mit);
	if (rc) {
		audience_walk_end(w);
		return rc;
	}
	w->m_end = !w->mit;
	w->s_end = !w->sit;
	*out = w;
	return 0;
}

/* The key order of both stores: bytes, a prefix first. */
static int id_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	return c ? c : (an > bn) - (an < bn);
}

/* The next customer of the merged walks into out (id, known, cust,
 * events): 0, STORE_NOTFOUND at the end, or an error. */
static int walk_step(audience_walk *w, audience_member *out)
{
	int rc;
	if (!w->m_ready && !w->m_end) {
		rc = model_iter_next(w->mit, &w->m_id, &w->m_len, &w->m_c);
		if (rc == STORE_NOTFOUND)
			w->m_end = true;
		else if (rc)
			return rc;
		else
			w->m_ready = true;
	}
	if (!w->s_ready && !w->s_end) {
		rc = state_iter_next(w->sit, &w->s_id, &w->s_len, &w->s_ev);
		if (rc == STORE_NOTFOUND)
			w->s_end = true;
		else if (rc)
			return rc;
		else
			w->s_ready = true;
	}
	if (!w->m_ready && !w->s_ready)
		return STORE_NOTFOUND;
	int cmp = !w->m_ready ? 1 : !w->s_ready ? -1 : id_cmp(w->m_id, w->m_len, w->s_id, w->s_len);
	memset(&out->events, 0, sizeof(out->events));
	if (cmp <= 0) {
		out->id = w->m_id;
		out->len = w->m_len;
		out->known = true;
		out->cust = w->m_c;
		w->m_ready = false;
		if (cmp == 0) {
			out->events = w->s_ev;
			w->s_ready = false;
		}
		return 0;
	}
	out->id = w->s_id;
	out->len = w->s_len;
	out->events = w->s_ev;
	w->s_ready = false;
	if (w->mit) {
		out->known = false; /* the model walk has passed: not a model customer */
		return 0;
	}
	/* Triggers: the state alone; look the customer up in the model. */
	rc = model_customer_get(w->t, out->id, out->len, &out->cust);
	if (rc && rc != STORE_NOTFOUND)
		return rc;
	out->known = rc == 0;
	return 0;
}

int audience_walk_next(audience_walk *w, audience_member *out)
{
	for (;;) {
		int rc = walk_step(w, out);
		if (rc)
			return rc;
		const model_customer *cp = out->known ? &out->cust : NULL;
		if (!cp && out->events.count == 0)
			continue; /* known to the state only by a flag */
		if (cp && cp->sum.birthday)
			w->saw_birth_dates = true;
		out->n_listed = 0;
		bool match;
		switch (w->aud.kind) {
		case AUDIENCE_SEGMENT:
		case AUDIENCE_ALL: match = true; break;
		case AUDIENCE_BIRTHDAY: match = cp && birthday_within(cp->sum.birthday, w->now, w->aud.days); break;
		default:
			list_trigger_items(&w->aud, &out->events, w->now, out);
			match = out->n_listed > 0;
			break;
		}
		if (!match)
			continue;
		customer_live_compute(w->m, cp, out->events.count ? &out->events : NULL, w->now,
				      &out->live);
		out->seg = customer_live_segment(w->m, &out->live, w->now, NULL);
		if (w->aud.kind == AUDIENCE_SEGMENT && out->seg != w->aud.segment)
			continue;
		if (!filter_pass(&w->aud.filter, cp, &out->live))
			continue;
		uint32_t flags = 0;
		if (w->st && state_customer_flags(w->st, out->id, out->len, &flags) != 0)
			return STORE_ERROR;
		if ((flags & STATE_ERASED) ||
		    ((flags & STATE_NO_PERSONALIZATION) && !w->aud.with_no_consent))
			continue;
		return 0;
	}
}

int audience_member_get(const audience *a, model_txn *t, state_txn *st, const char *id,
			size_t len, audience_member *out)
{
	model *m = model_txn_model(t);
	int64_t now = model_now(m);
	memset(&out->events, 0, sizeof(out->events));
	out->id = id;
	out->len = len;
	int rc = model_customer_get(t, id, len, &out->cust);
	if (rc && rc != STORE_NOTFOUND)
		return rc;
	out->known = rc == 0;
	if (st && (rc = state_events_get(st, id, len, &out->events)) != 0)
		return rc;
	out->n_listed = 0;
	if (audience_is_trigger(a))
		list_trigger_items(a, &out->events, now, out);
	const model_customer *cp = out->known ? &out->cust : NULL;
	customer_live_compute(m, cp, out->events.count ? &out->events : NULL, now, &out->live);
	out->seg = customer_live_segment(m, &out->live, now, NULL);
	return 0;
}

bool audience_walk_saw_birth_dates(const audience_walk *w)
{
	return w->saw_birth_dates;
}

void audience_walk_end(audience_walk *w)
{
	if (!w)
		return;
	model_iter_end(w->mit);
	state_iter_end(w->sit);
	free(w);
}

/* ---- member JSON ----------------------------------------------------------- */

void audience_member_json(strbuf *sb, const model *m, model_txn *t, const audience *a,
			  const audience_member *mb)
{
	if (a->kind == AUDIENCE_BIRTHDAY) {
		char val[64];
		size_t vlen;
		sb_adds(sb, ",\"birth_date\":");
		if (mb->known && audience_attr(&mb->cust, "birth_date", 10, val, sizeof(val), &vlen))
			sb_add_json_str(sb, val, vlen);
		else
			sb_adds(sb, "null");
		return;
	}
	if (!audience_is_trigger(a))
		return;
	bool cart = a->kind == AUDIENCE_CART_ABANDONERS;
	sb_adds(sb, cart ? ",\"cart\":[" : ",\"browsed\":[");
	for (uint32_t i = 0; i < mb->n_listed; i++) {
		const audience_listed *l = &mb->listed[i];
		char when[TIME_FMT_LEN];
		uint32_t idx;
		if (i)
			sb_addc(sb, ',');
		sb_adds(sb, "{\"item_id\":");
		sb_add_json_str(sb, l->item, l->len);
		sb_adds(sb, ",\"title\":");
		size_t tlen = 0;
		const char *title = model_item_lookup(t, l->item, l->len, &idx) == 0
					    ? model_item_title(m, idx, &tlen)
					    : NULL;
		if (tlen)
			sb_add_json_str(sb, title, tlen);
		else
			sb_adds(sb, "null");
		sb_adds(sb, cart ? ",\"carted_at\":\"" : ",\"viewed_at\":\"");
		time_format(l->ts, when);
		sb_adds(sb, when);
		sb_adds(sb, "\"}");
	}
	sb_addc(sb, ']');
}
