/*
 * audience: who belongs to a marketing audience, shared by the HTTP routes
 * and `shopkeeper export`.
 *
 * Every RFM segment is an audience (segment names from rfm.h); so are
 * `birthday` (the birthday from the customers file falls within the next
 * `days` days, today included), `all`, and the triggers `cart_abandoners`
 * and `browsed_not_bought`. Membership is decided at the model's clock
 * (model_now), so segments follow the calendar. Segment audiences and
 * `all` take the model's customers and the customers known only from
 * live events, as GET /v1/segments counts them.
 *
 * Triggers are item-level: an item is still in the cart when it was
 * carted within the window and neither bought nor taken out of the cart
 * since; an item was browsed and not bought when it was viewed within the
 * window and not bought since. A customer is in the trigger audience while
 * one such item is left (buying another item does not settle it).
 */
#ifndef SHOPKEEPER_AUDIENCE_H
#define SHOPKEEPER_AUDIENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rfm.h"
#include "model.h"
#include "state_events.h"
#include "strbuf.h"

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

#define AUDIENCE_MAX_ATTRS 8 /* attr.NAME filters in one audience */

/* Who of an audience is kept: every condition given must hold. Strings
 * are borrowed for the walk's life. A customer known only from events has
 * no attributes: an attribute filter leaves them out. */
typedef struct audience_filter {
	const char *country;   /* NULL: any; else the `country` attribute, exactly */
	size_t country_len;
	struct audience_attr {
		const char *name, *value; /* attribute name and value, exactly */
		size_t name_len, value_len;
	} attrs[AUDIENCE_MAX_ATTRS];
	uint32_t n_attrs;
	double min_monetary, max_monetary; /* live net spend; -INFINITY / INFINITY: none */
	/* The last purchase is before `purchased_before` and at or after
	 * `purchased_after` (Unix seconds; INT64_MAX / INT64_MIN: no bound). A
	 * customer who never bought fails either bound. */
	int64_t purchased_before, purchased_after;
} audience_filter;

/* No conditions. */
void audience_filter_init(audience_filter *f);

typedef struct audience {
	enum audience_kind kind;
	enum segment segment; /* AUDIENCE_SEGMENT */
	uint32_t days;        /* AUDIENCE_BIRTHDAY: window, 1..366 */
	uint32_t hours;       /* trigger audiences: window */
	audience_filter filter;
	/* The members' items: only those first seen on or after this day
	 * (rec_filter.new_since; MODEL_DAY_UNKNOWN: any). Who is in the
	 * audience does not change. */
	int32_t new_since;
	/* Count customers who withdrew consent too (GET /v1/segments counts
	 * the customer base; no audience lists them). */
	bool with_no_consent;
} audience;

/* Parses an audience name; days and hours of 0 mean the defaults; the
 * filter starts empty. Returns 0, or -1 for an unknown name. */
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
/* Items of a trigger member listed with them (the cart, the browsed items). */
#define AUDIENCE_MAX_LISTED 50

typedef struct audience_listed {
	const char *item; /* borrowed like the events */
	size_t len;
	int64_t ts;       /* the latest cart (view) of the item */
} audience_listed;

/* A member, as audience_walk_next finds them. */
typedef struct audience_member {
	const char *id;       /* borrowed until the transactions' reset */
	size_t len;
	enum segment seg;
	customer_live live;
	state_events events;  /* their events (count 0: none), borrowed likewise */
	bool known;           /* the model knows them: cust is theirs */
	model_customer cust;
	/* Trigger audiences: the items that keep them in, newest first. */
	audience_listed listed[AUDIENCE_MAX_LISTED];
	uint32_t n_listed;
} audience_member;

/* The next member into *out: 0; STORE_NOTFOUND at the end; or an error. */
int audience_walk_next(audience_walk *w, audience_member *out);
/* One customer as audience_walk_next would give them as a member of a
 * (without deciding membership): for writing out a member found earlier,
 * whose borrowed fields ended with the walk. Returns 0 or an error. */
int audience_member_get(const audience *a, model_txn *t, state_txn *st, const char *id,
			size_t len, audience_member *out);
/* Whether the walk has met a customer with a birth date (for the birthday
 * audience's warning; meaningful once the walk reached its end). */
bool audience_walk_saw_birth_dates(const audience_walk *w);
/* audience_walk_end(NULL) does nothing. */
void audience_walk_end(audience_walk *w);

/* A customer attribute from the model's attribute JSON (c->attrs): 1 and
 * the value decoded into buf (cap bytes, NUL-terminated) with *len; 0 when
 * absent (or longer than cap - 1). */
int audience_attr(const model_customer *c, const char *name, size_t name_len, char *buf,
		  size_t cap, size_t *len);

/* Appends the member fields an audience adds after the items (with a
 * leading comma each): "birth_date" in `birthday`; "cart":[{item_id,
 * title, carted_at}] in cart_abandoners; "browsed":[{item_id, title,
 * viewed_at}] in browsed_not_bought. Nothing for other audiences. */
void audience_member_json(strbuf *sb, const model *m, model_txn *t, const audience *a,
			  const audience_member *mb);

/* Views without a cart or purchase after which an item is not pushed to
 * the customer any more (frequency capping, shared by every audience
 * answer and export). */
#define AUDIENCE_CAP_VIEWS 5
/* Writes into out (at most cap) the model indexes of the items the
 * customer viewed AUDIENCE_CAP_VIEWS times or more without carting or
 * buying them; returns how many. */
uint32_t audience_capped_views(model_txn *t, const state_events *ev, uint32_t *out,
			       uint32_t cap);

/* Lists the audience names, comma-separated, for error messages. */
const char *audience_names(void);

#endif
