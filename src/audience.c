/*
 * audience: segment, birthday and `all` audiences. See audience.h.
 */
#include "audience.h"

#include <string.h>

#include "timefmt.h"

int audience_parse(const char *name, size_t len, uint32_t days, audience *out)
{
	out->days = days ? days : AUDIENCE_DEFAULT_DAYS;
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
	       "prospect, birthday, all";
}

enum segment customer_segment(const model *m, const model_customer *c, int64_t now,
			      rfm_scores *scores)
{
	rfm_figures f = { c->sum.first_purchase, c->sum.last_purchase, c->sum.frequency,
			  c->sum.monetary };
	rfm_scores s = rfm_score(&model_get_info(m)->rfm, &f, now);
	if (scores)
		*scores = s;
	return rfm_segment(s);
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

bool audience_match(const audience *a, const model *m, const model_customer *c, int64_t now,
		    enum segment *seg)
{
	*seg = customer_segment(m, c, now, NULL);
	switch (a->kind) {
	case AUDIENCE_ALL:
		return true;
	case AUDIENCE_SEGMENT:
		return *seg == a->segment;
	case AUDIENCE_BIRTHDAY:
		return birthday_within(c->sum.birthday, now, a->days);
	}
	return false;
}
