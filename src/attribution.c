/*
 * attribution: the serve-time hook's batcher and the report. See
 * attribution.h. (First commit: the contract with a minimal body, so the
 * experiments code can call the hook; the counting follows.)
 */
#include "attribution.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "util.h"

struct attribution {
	state *s;
	atomic_ulong dropped;
};

int attribution_start(state *s, attribution **out, strbuf *err)
{
	(void)err;
	attribution *a = xcalloc(1, sizeof(*a));
	a->s = s;
	*out = a;
	return 0;
}

void attribution_stop(attribution *a)
{
	free(a);
}

int attribution_define(attribution *a, uint32_t experiment_id, const char *name,
		       const char *const *variant_names, const double *shares, uint32_t n)
{
	(void)a;
	(void)name;
	(void)variant_names;
	(void)shares;
	return experiment_id && n && n <= ATTRIBUTION_MAX_VARIANTS ? 0 : -1;
}

void attribution_note_served(attribution *a, uint32_t experiment_id, uint32_t variant,
			     const char *experiment_name, const char *variant_name,
			     const char *customer, size_t customer_len, const struct model *m,
			     const uint32_t *items, uint32_t n_items, int64_t ts)
{
	(void)a, (void)experiment_id, (void)variant, (void)experiment_name, (void)variant_name;
	(void)customer, (void)customer_len, (void)m, (void)items, (void)n_items, (void)ts;
}

int attribution_flush(attribution *a, strbuf *err)
{
	(void)a;
	(void)err;
	return 0;
}

uint64_t attribution_dropped(const attribution *a)
{
	return a ? atomic_load(&((attribution *)a)->dropped) : 0;
}

int attribution_report(state_txn *t, const char *name, size_t name_len, strbuf *out)
{
	(void)t, (void)name, (void)name_len, (void)out;
	return STORE_NOTFOUND;
}
