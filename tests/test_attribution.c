/*
 * test_attribution: counting served answers and tagged and view-through
 * events into the state (state_attr.c through attribution.c's hook), the
 * report's figures against a fixture computed by hand, erasure, consent
 * and reopening.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attribution.h"
#include "harness.h"
#include "ingest.h" /* EVENT_PURCHASE, EVENT_CART */
#include "recid.h"
#include "state.h"
#include "store_fixture.h"

#define DAY 86400
#define T0 1700000000 /* when the answers were served */

static uint32_t exp_id;

/* A rec_id of variant v of the experiment. */
static const char *rid(uint32_t v, char buf[RECID_LEN + 1])
{
	recid r = { .experiment = exp_id, .variant = (uint8_t)v, .model = 1,
		    .route = RECID_ROUTE_CUSTOMER, .time_ms = (int64_t)T0 * 1000, .seq = v };
	CHECK_INT(recid_encode(&r, buf), RECID_OK);
	return buf;
}

static int write_event(state *s, const char *cust, const char *item, uint8_t type,
		       int64_t ts, float qty, float price, const char *rec_id)
{
	strbuf err = STRBUF_INIT;
	event_in e = { cust, strlen(cust), item, strlen(item), ts, qty, price, type, true,
		       rec_id, rec_id ? strlen(rec_id) : 0 };
	int rc = state_write_events(s, &e, 1, &err);
	sb_release(&err);
	return rc;
}

/* The report as JSON (NULL when it could not be made). */
static json_t *report(state *s)
{
	state_txn *t;
	strbuf out = STRBUF_INIT;
	json_t *j = NULL;
	if (state_txn_begin(s, &t) != 0)
		return NULL;
	if (attribution_report(t, "home", 4, &out) == 0)
		j = json_loads(sb_str(&out), 0, NULL);
	state_txn_free(t);
	sb_release(&out);
	return j;
}

static double num(json_t *report_, int variant, const char *key)
{
	json_t *v = json_array_get(json_object_get(report_, "variants"), (size_t)variant);
	json_t *x = json_object_get(v, key);
	return json_is_number(x) ? json_number_value(x) : -1;
}

TEST(attribution_counts_and_report)
{
	strbuf err = STRBUF_INIT;
	state *s = NULL;
	model *m = NULL;
	attribution *a = NULL;
	char buf[RECID_LEN + 1];
	CHECK_INT(write_model(sub("m")), 0);
	CHECK_INT(model_open(sub("m"), &m, &err), 0);
	CHECK_INT(state_open(sub("s"), 1 << 20, &s, &err), 0);
	if (!s || !m)
		goto out;
	CHECK_INT(attribution_start(s, &a, &err), 0);
	exp_id = recid_experiment_id("home", "salt");
	const char *names[2] = { "control", "personal" };
	double shares[2] = { 0.5, 0.5 };
	CHECK_INT(attribution_define(a, exp_id, "home", names, shares, 2), 0);
	/* Not yet flushed: no report. */
	CHECK(report(s) == NULL);

	/* Items of the fixture model: 0 a, 1 b, 2 c, 3 d. */
	uint32_t ab[2] = { 0, 1 }, c[1] = { 2 }, d[1] = { 3 };
	attribution_note_served(a, exp_id, 0, "home", "control", "u1", 2, m, ab, 2, T0);
	attribution_note_served(a, exp_id, 0, "home", "control", "u1", 2, m, ab, 1, T0);
	attribution_note_served(a, exp_id, 1, "home", "personal", "u2", 2, m, c, 1, T0);
	attribution_note_served(a, exp_id, 1, "home", "personal", "u3", 2, m, NULL, 0, T0);
	attribution_note_served(a, exp_id, 0, "home", "control", "u4", 2, m, d, 1, T0);
	attribution_note_served(a, 0, 0, NULL, NULL, "u5", 2, m, d, 1, T0); /* outside */
	CHECK_INT(attribution_flush(a, &err), 0);

	/* u1 clicks and buys a through the control's answer: 2 x 5. */
	CHECK_INT(write_event(s, "u1", "a", EVENT_CLICK, T0 + 10, 1, 0, rid(0, buf)), 0);
	CHECK_INT(write_event(s, "u1", "a", EVENT_PURCHASE, T0 + 20, 2, 5, rid(0, buf)), 0);
	/* u2 puts c in the cart through personal's answer, then buys it a day
	 * later without a rec_id: view-through, 7. */
	CHECK_INT(write_event(s, "u2", "c", EVENT_CART, T0 + 30, 1, 0, rid(1, buf)), 0);
	CHECK_INT(write_event(s, "u2", "c", EVENT_PURCHASE, T0 + DAY, 1, 7, NULL), 0);
	/* u2 also buys b, never shown to them: nothing. */
	CHECK_INT(write_event(s, "u2", "b", EVENT_PURCHASE, T0 + DAY, 1, 3, NULL), 0);
	/* u4 buys d 8 days after it was shown: outside the 7-day window. */
	CHECK_INT(write_event(s, "u4", "d", EVENT_PURCHASE, T0 + 8 * DAY, 1, 9, NULL), 0);
	/* An impression event of u3's (empty) answer. */
	CHECK_INT(write_event(s, "u3", "", EVENT_IMPRESSION, T0 + 5, 1, 0, rid(1, buf)), 0);

	/* By hand: control: customers u1, u4 (2), exposed 2, impressions
	 * 2 + 1 + 1 = 4, clicks 1, ctr 1/4, orders 1, revenue 10, converted 1
	 * (u1), conversion 1/2, revenue per exposed 10/2 = 5. personal:
	 * customers u2, u3 (2), exposed u2 (1; u3's answer was empty, then
	 * their impression event exposes them: 2), impressions 1, displayed 1,
	 * carts 1, orders 0, view-through 1 and 7, converted 1, conversion
	 * 1/2, revenue per exposed 7/2. */
	json_t *r = report(s);
	CHECK(r != NULL);
	if (!r)
		goto out;
	CHECK_STR(json_string_value(json_object_get(r, "control")), "control");
	CHECK_NEAR(num(r, 0, "customers"), 2, 0);
	CHECK_NEAR(num(r, 0, "exposed"), 2, 0);
	CHECK_NEAR(num(r, 0, "impressions"), 4, 0);
	CHECK_NEAR(num(r, 0, "clicks"), 1, 0);
	CHECK_NEAR(num(r, 0, "ctr"), 0.25, 1e-12);
	CHECK_NEAR(num(r, 0, "orders"), 1, 0);
	CHECK_NEAR(num(r, 0, "revenue"), 10, 1e-9);
	CHECK_NEAR(num(r, 0, "view_through_orders"), 0, 0);
	CHECK_NEAR(num(r, 0, "conversion"), 0.5, 1e-12);
	CHECK_NEAR(num(r, 0, "revenue_per_exposed"), 5, 1e-9);
	CHECK_NEAR(num(r, 1, "customers"), 2, 0);
	CHECK_NEAR(num(r, 1, "exposed"), 2, 0);
	CHECK_NEAR(num(r, 1, "impressions"), 1, 0);
	CHECK_NEAR(num(r, 1, "displayed"), 1, 0);
	CHECK_NEAR(num(r, 1, "carts"), 1, 0);
	CHECK_NEAR(num(r, 1, "orders"), 0, 0);
	CHECK_NEAR(num(r, 1, "view_through_orders"), 1, 0);
	CHECK_NEAR(num(r, 1, "view_through_revenue"), 7, 1e-9);
	CHECK_NEAR(num(r, 1, "conversion"), 0.5, 1e-12);
	CHECK_NEAR(num(r, 1, "revenue_per_exposed"), 3.5, 1e-9);
	CHECK_NEAR(json_number_value(json_object_get(r, "srm_p_value")), 1, 1e-12);
	json_t *lift = json_object_get(json_array_get(json_object_get(r, "variants"), 1), "lift");
	json_t *lc = json_object_get(lift, "conversion");
	CHECK_NEAR(json_number_value(json_object_get(lc, "estimate")), 0, 1e-12);
	CHECK(json_is_number(json_object_get(lc, "p_value")));
	CHECK(json_is_null(json_object_get(json_array_get(json_object_get(r, "variants"), 0),
					   "lift")));
	json_decref(r);

	/* Consent withdrawn: u2's next tagged purchase is not attributed. */
	CHECK_INT(state_set_consent(s, "u2", 2, false, &err), 0);
	CHECK_INT(write_event(s, "u2", "c", EVENT_PURCHASE, T0 + 40, 1, 7, rid(1, buf)), 0);
	/* Erasure: u1 leaves the per-customer figures, the event counts stay. */
	CHECK_INT(state_erase(s, "u1", 2, &err), 0);
	attribution_stop(a);
	a = NULL;
	state_close(s);
	s = NULL;
	CHECK_INT(state_open(sub("s"), 1 << 20, &s, &err), 0); /* what a restart sees */
	if (!s)
		goto out;
	r = report(s);
	CHECK(r != NULL);
	if (!r)
		goto out;
	CHECK_NEAR(num(r, 1, "orders"), 0, 0);
	CHECK_NEAR(num(r, 0, "customers"), 1, 0);
	CHECK_NEAR(num(r, 0, "exposed"), 1, 0);
	CHECK_NEAR(num(r, 0, "erased_customers"), 1, 0);
	CHECK_NEAR(num(r, 0, "conversion"), 0, 0);
	CHECK_NEAR(num(r, 0, "orders"), 1, 0);
	CHECK_NEAR(num(r, 0, "revenue"), 10, 1e-9);
	json_decref(r);
out:
	attribution_stop(a);
	state_close(s);
	model_close(m);
	sb_release(&err);
}

int main(void)
{
	if (scratch_begin() != 0)
		return 1;
	RUN(attribution_counts_and_report);
	if (scratch_end() != 0)
		return 1;
	return harness_done();
}
