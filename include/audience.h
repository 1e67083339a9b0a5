/*
 * audience: who belongs to a marketing audience, shared by the HTTP route
 * and `shopkeeper export`.
 *
 * Every RFM segment is an audience (segment names from rfm.h); so are
 * `birthday` (the birthday from the customers file falls within the next
 * `days` days, today included) and `all`. Membership is decided at the
 * model's clock (model_now), so segments follow the calendar.
 */
#ifndef SHOPKEEPER_AUDIENCE_H
#define SHOPKEEPER_AUDIENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rfm.h"
#include "model.h"
#include "state_events.h"

enum audience_kind {
	AUDIENCE_SEGMENT,
	AUDIENCE_BIRTHDAY,
	AUDIENCE_ALL,
	AUDIENCE_CART_ABANDONERS,   /* carted in the last `hours`, not bought since */
	AUDIENCE_BROWSED_NOT_BOUGHT /* viewed in the last `hours`, not bought since */
};

#define AUDIENCE_DEFAULT_DAYS 7u
#define AUDIENCE_MAX_DAYS 366u
#define AUDIENCE_DEFAULT_CART_HOURS 24u
#define AUDIENCE_DEFAULT_BROWSE_HOURS 72u
#define AUDIENCE_MAX_HOURS (24u * 90u)

typedef struct audience {
	enum audience_kind kind;
	enum segment segment; /* AUDIENCE_SEGMENT */
	uint32_t days;        /* AUDIENCE_BIRTHDAY: window, 1..366 */
	uint32_t hours;       /* trigger audiences: window */
} audience;

/* Parses an audience name; days and hours of 0 mean the defaults. Returns
 * 0, or -1 for an unknown name. */
int audience_parse(const char *name, size_t len, uint32_t days, uint32_t hours, audience *out);

/* What live events add to a customer's picture. */
typedef struct customer_live {
	rfm_figures figs; /* the model's figures plus purchases since as_of */
	float intent;     /* recent carts and views not yet bought, decayed */
	uint32_t events;  /* events recorded since the model's as-of time */
	int64_t last_event;
} customer_live;

/* Half-life of the intent score: interest cools within days. */
#define INTENT_HALF_LIFE_HOURS 24.0

/* Combines the model's record (NULL when the model does not know the
 * customer) with their events (NULL: none) at time now. */
void customer_live_compute(const model *m, const model_customer *c, const state_events *ev,
			   int64_t now, customer_live *out);

/* The same without the intent score (left 0): all a segment needs, and
 * cheaper (no decay, no search for settled views and carts). */
void customer_live_figures(const model *m, const model_customer *c, const state_events *ev,
			   customer_live *out);

/* Segment from live figures. */
enum segment customer_live_segment(const model *m, const customer_live *l, int64_t now,
				   rfm_scores *scores);

/* Walks an audience's members in customer id order: segments and birthday
 * over the model's customers, triggers over the customers with events.
 * Erased customers and customers who withdrew consent are never members. */
typedef struct audience_walk audience_walk;

/* Starts after customer `after` (NULL: from the first). `st` may be NULL
 * (no state: no events, no erasures). Returns 0 or STORE_ERROR. */
int audience_walk_begin(const audience *a, model_txn *t, state_txn *st, const char *after,
			size_t after_len, audience_walk **out);
/* A member, as audience_walk_next finds them. */
typedef struct audience_member {
	const char *id;       /* borrowed until the transactions' reset */
	size_t len;
	enum segment seg;
	customer_live live;
	state_events events;  /* their events (count 0: none), borrowed likewise */
} audience_member;

/* The next member into *out: 0; STORE_NOTFOUND at the end; or an error. */
int audience_walk_next(audience_walk *w, audience_member *out);
/* audience_walk_end(NULL) does nothing. */
void audience_walk_end(audience_walk *w);

/* Lists the audience names, comma-separated, for error messages. */
const char *audience_names(void);

#endif
