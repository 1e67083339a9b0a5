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

int audience_parse(const char *name, size_t len, uint32_t days, uint32_t hours, audience *out)
{
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
enum { SEEN_BOUGHT = 1, SEEN_REMOVED = 2 };

struct seen {
	const char *item; /* NULL: free slot */
	size_t len;
	uint8_t what;     /* SEEN_* */
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

/* Whether a trigger audience takes the customer, given their events. */
static bool audience_match_events(const audience *a, const state_events *ev, int64_t now)
{
	event_view e[STATE_MAX_EVENTS];
	bool resolved[STATE_MAX_EVENTS];
	uint32_t n = decode_all(ev, e);
	mark_resolved(e, n, resolved);
	int want = a->kind == AUDIENCE_CART_ABANDONERS ? EVENT_CART : EVENT_VIEW;
	int64_t since = now - (int64_t)a->hours * 3600;
	bool bought_after = false;
	for (uint32_t i = n; i-- > 0;) {
		if (e[i].type == EVENT_PURCHASE && e[i].quantity > 0)
			bought_after = true; /* "no purchase since" */
		if (e[i].ts < since || e[i].type != want)
			continue;
		if (a->kind == AUDIENCE_CART_ABANDONERS && bought_after)
			continue;
		if (!resolved[i])
			return true;
	}
	return false;
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

struct audience_walk {
	audience aud;
	model *m;
	model_txn *t;
	state_txn *st;
	model_iter *mit;
	state_iter *sit;
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
	if (audience_is_trigger(a)) {
		if (st)
			rc = state_iter_begin(st, after, after_len, &w->sit);
	} else {
		rc = model_iter_begin(t, after, after_len, &w->mit);
	}
	if (rc) {
		free(w);
		return rc;
	}
	*out = w;
	return 0;
}

int audience_walk_next(audience_walk *w, audience_member *out)
{
	const char **id = &out->id;
	size_t *len = &out->len;
	state_events *ev = &out->events;
	for (;;) {
		model_customer c, *cp = NULL;
		int rc;
		memset(ev, 0, sizeof(*ev));
		if (audience_is_trigger(&w->aud)) {
			if (!w->sit)
				return STORE_NOTFOUND;
			if ((rc = state_iter_next(w->sit, id, len, ev)) != 0)
				return rc;
			rc = model_customer_get(w->t, *id, *len, &c);
			if (rc == 0)
				cp = &c;
			else if (rc != STORE_NOTFOUND)
				return rc;
		} else {
			if ((rc = model_iter_next(w->mit, id, len, &c)) != 0)
				return rc;
			cp = &c;
			if (w->st && (rc = state_events_get(w->st, *id, *len, ev)) != 0)
				return rc;
		}
		customer_live_compute(w->m, cp, ev, w->now, &out->live);
		out->seg = customer_live_segment(w->m, &out->live, w->now, NULL);
		bool match;
		switch (w->aud.kind) {
		case AUDIENCE_SEGMENT: match = out->seg == w->aud.segment; break;
		case AUDIENCE_ALL: match = true; break;
		case AUDIENCE_BIRTHDAY: match = cp && birthday_within(cp->sum.birthday, w->now, w->aud.days); break;
		default: match = audience_match_events(&w->aud, ev, w->now); break;
		}
		if (!match)
			continue;
		uint32_t flags = 0;
		if (w->st && state_customer_flags(w->st, *id, *len, &flags) != 0)
			return STORE_ERROR;
		if (flags & (STATE_ERASED | STATE_NO_PERSONALIZATION))
			continue;
		return 0;
	}
}

void audience_walk_end(audience_walk *w)
{
	if (!w)
		return;
	model_iter_end(w->mit);
	state_iter_end(w->sit);
	free(w);
}
