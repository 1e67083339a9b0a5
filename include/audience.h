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
#include "store.h"

enum audience_kind { AUDIENCE_SEGMENT, AUDIENCE_BIRTHDAY, AUDIENCE_ALL };

#define AUDIENCE_DEFAULT_DAYS 7u
#define AUDIENCE_MAX_DAYS 366u

typedef struct audience {
	enum audience_kind kind;
	enum segment segment; /* AUDIENCE_SEGMENT */
	uint32_t days;        /* AUDIENCE_BIRTHDAY: window, 1..366 */
} audience;

/* Parses an audience name. Returns 0, or -1 for an unknown name. */
int audience_parse(const char *name, size_t len, uint32_t days, audience *out);

/* The customer's RFM scores and segment at time now. */
enum segment customer_segment(const model *m, const model_customer *c, int64_t now,
			      rfm_scores *scores);

/* Whether the customer belongs to the audience at time now; *seg gets
 * their segment. */
bool audience_match(const audience *a, const model *m, const model_customer *c, int64_t now,
		    enum segment *seg);

/* Lists the audience names, comma-separated, for error messages. */
const char *audience_names(void);

#endif
