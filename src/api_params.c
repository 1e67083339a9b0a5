/*
 * api_params: what a request asks for, checked once at the edge: query
 * parameters, ids in paths and bodies, the recommendation filter, and
 * audience cursors. Every function answers 400 itself when the input is
 * unusable, so handlers only return.
 */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "timefmt.h"
#include "util.h"

/* Parses a whole unsigned decimal within [min, max]. */
static bool parse_uint(const char *v, size_t len, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t val = 0;
	if (len == 0 || len > 9)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		val = val * 10 + (uint64_t)(v[i] - '0');
	}
	if (val < min || val > max)
		return false;
	*out = (uint32_t)val;
	return true;
}

int api_param_uint(struct worker *w, const http_request *req, http_response *resp,
		   const char *name, uint32_t min, uint32_t max, uint32_t *out)
{
	const char *v;
	size_t len;
	assert(min <= max);
	int rc = http_query(req, name, w->qbuf, sizeof(w->qbuf), &v, &len);
	if (rc == 0)
		return 0;
	if (rc < 0 || !parse_uint(v, len, min, max, out)) {
		http_error(resp, 400, "invalid_parameter", "%s must be an integer from %u to %u", name,
			   min, max);
		return -1;
	}
	return 0;
}

/* A boolean query parameter: 1/0/true/false. */
int api_param_bool(struct worker *w, const http_request *req, http_response *resp,
		   const char *name, bool *out)
{
	const char *v;
	size_t len;
	int rc = http_query(req, name, w->qbuf, sizeof(w->qbuf), &v, &len);
	if (rc == 0)
		return 0;
	if (rc == 1 && ((len == 1 && v[0] == '1') || (len == 4 && memcmp(v, "true", 4) == 0))) {
		*out = true;
		return 0;
	}
	if (rc == 1 && ((len == 1 && v[0] == '0') || (len == 5 && memcmp(v, "false", 5) == 0))) {
		*out = false;
		return 0;
	}
	http_error(resp, 400, "invalid_parameter", "%s must be 1, 0, true or false", name);
	return -1;
}

/* A number parameter within [lo, hi]: 0 with *out set (left as it is when
 * the parameter is absent), or -1 with a 400 that says `must`. */
static int param_number(struct worker *w, const http_request *req, http_response *resp,
			const char *name, double lo, double hi, const char *must, double *out)
{
	const char *v;
	size_t len;
	int rc = http_query(req, name, w->qbuf, sizeof(w->qbuf), &v, &len);
	if (rc == 0)
		return 0;
	char *end = NULL;
	double d = rc == 1 && len > 0 && len < 32 ? strtod(v, &end) : NAN;
	if (rc != 1 || !end || *end || !isfinite(d) || d < lo || d > hi) {
		http_error(resp, 400, "invalid_parameter", "%s must be %s", name, must);
		return -1;
	}
	*out = d;
	return 0;
}

/* A price bound: a number >= 0. */
static int param_price(struct worker *w, const http_request *req, http_response *resp,
		       const char *name, float *out)
{
	double d = *out;
	if (param_number(w, req, resp, name, 0, 1e9, "a number >= 0", &d) != 0)
		return -1;
	*out = (float)d;
	return 0;
}

/* A money bound: any finite number (net spend is negative after returns). */
static int param_money(struct worker *w, const http_request *req, http_response *resp,
		       const char *name, double *out)
{
	return param_number(w, req, resp, name, -INFINITY, INFINITY, "a number", out);
}

/* A date bound: YYYY-MM-DD (or a date-time, or Unix seconds). */
static int param_date(struct worker *w, const http_request *req, http_response *resp,
		      const char *name, int64_t *out)
{
	const char *v;
	size_t len;
	int rc = http_query(req, name, w->qbuf, sizeof(w->qbuf), &v, &len);
	if (rc == 0)
		return 0;
	if (rc != 1 || time_parse(v, len, out) != 0) {
		http_error(resp, 400, "invalid_parameter", "%s must be a date (YYYY-MM-DD)", name);
		return -1;
	}
	return 0;
}

int api_param_day(struct worker *w, const http_request *req, http_response *resp,
		  const char *name, int32_t *out)
{
	const char *v;
	size_t len;
	int rc = http_query(req, name, w->qbuf, sizeof(w->qbuf), &v, &len);
	if (rc == 0)
		return 0;
	if (rc != 1 || time_parse_date(v, len, out) != 0) {
		http_error(resp, 400, "invalid_parameter",
			   "%s must be a date, YYYY-MM-DD (a day from 1970 on)", name);
		return -1;
	}
	return 0;
}

struct attr_scan {
	struct api_filter_store *store;
	audience_filter *f;
	http_response *resp;
};

static int scan_attr(void *arg, const char *key, const char *value)
{
	struct attr_scan *sc = arg;
	audience_filter *f = sc->f;
	char name[sizeof(sc->store->names[0]) + 5];
	size_t klen = strlen(key), vlen = strlen(value);
	long n = klen < sizeof(name) ? http_percent_decode(key, klen, name, true) : -1;
	if (n < 0 || n < 6 || memcmp(name, "attr.", 5) != 0)
		return 0; /* not an attribute filter (the router checked the names) */
	if (f->n_attrs == AUDIENCE_MAX_ATTRS) {
		http_error(sc->resp, 400, "invalid_parameter", "at most %d attr.NAME filters",
			   AUDIENCE_MAX_ATTRS);
		return -1;
	}
	char *val = sc->store->values[f->n_attrs];
	long vn = vlen < sizeof(sc->store->values[0]) ? http_percent_decode(value, vlen, val, true)
						      : -1;
	if (vn < 0) {
		http_error(sc->resp, 400, "invalid_parameter",
			   "%.*s is malformed or longer than %zu bytes", (int)MIN((size_t)n, 64), name,
			   sizeof(sc->store->values[0]) - 1);
		return -1;
	}
	char *nm = sc->store->names[f->n_attrs];
	memcpy(nm, name + 5, (size_t)n - 5 + 1);
	f->attrs[f->n_attrs++] = (struct audience_attr){ nm, val, (size_t)n - 5, (size_t)vn };
	return 0;
}

int api_audience_filter(struct worker *w, const http_request *req, http_response *resp,
			struct api_filter_store *store, audience_filter *f)
{
	const char *v;
	size_t len;
	audience_filter_init(f);
	int rc = http_query(req, "country", w->qbuf, sizeof(w->qbuf), &v, &len);
	if (rc < 0 || (rc == 1 && len >= sizeof(store->country))) {
		http_error(resp, 400, "invalid_parameter", "country is malformed or too long");
		return -1;
	}
	if (rc == 1) {
		memcpy(store->country, v, len + 1);
		f->country = store->country;
		f->country_len = len;
	}
	struct attr_scan sc = { store, f, resp };
	if (http_query_each(req, scan_attr, &sc) != 0)
		return -1;
	if (param_money(w, req, resp, "min_monetary", &f->min_monetary) ||
	    param_money(w, req, resp, "max_monetary", &f->max_monetary) ||
	    param_date(w, req, resp, "last_purchase_before", &f->purchased_before) ||
	    param_date(w, req, resp, "last_purchase_after", &f->purchased_after))
		return -1;
	return 0;
}

int api_query_id(struct worker *w, const http_request *req, http_response *resp,
		 const char *name, const char *what, const char **id, size_t *len)
{
	*id = NULL;
	*len = 0;
	int rc = http_query(req, name, w->idbuf, sizeof(w->idbuf), id, len);
	if (rc == 0) {
		*id = NULL;
		return 0;
	}
	if (rc < 0) {
		http_error(resp, 400, "invalid_id", "%s is malformed or longer than %d bytes", name,
			   ID_MAX_LEN);
		return -1;
	}
	return api_check_id(what, resp, id, len);
}

int api_check_id(const char *what, http_response *resp, const char **id, size_t *len)
{
	if (!utf8_valid(*id, *len)) {
		http_error(resp, 400, "invalid_id", "%s id is not valid UTF-8", what);
		return -1;
	}
	if (*len > ID_MAX_LEN) {
		http_error(resp, 400, "invalid_id", "%s id is longer than %d bytes", what, ID_MAX_LEN);
		return -1;
	}
	if (!id_normalize(id, len)) {
		http_error(resp, 400, "invalid_id", "%s id is empty or holds control characters", what);
		return -1;
	}
	return 0;
}

int api_path_id(const http_request *req, unsigned seg, const char *what, http_response *resp,
		const char **id, size_t *len)
{
	assert(seg < req->n_segs);
	*id = req->segs[seg];
	*len = req->seg_lens[seg];
	return api_check_id(what, resp, id, len);
}

/* Unknown ids are ignored: the model cannot recommend them anyway. */
void api_exclude_id(struct worker *w, rec_filter *f, const char *id, size_t len)
{
	uint32_t idx;
	assert(w->in_txn);
	if (!id_normalize(&id, &len) || f->n_exclude >= ARRAY_SIZE(w->exclude))
		return;
	if (model_item_lookup(w->txn, id, len, &idx) == 0)
		w->exclude[f->n_exclude++] = idx;
}

int api_query_filter(struct worker *w, const http_request *req, http_response *resp,
		     const exp_params *defaults, rec_filter *f, bool *explain)
{
	const char *v;
	size_t len;
	assert(w->in_txn);
	rec_filter_init(f);
	f->exclude = w->exclude;
	if (defaults) { /* the variant's; what the query gives still wins */
		if (defaults->include_purchased >= 0)
			f->include_purchased = defaults->include_purchased;
		if (defaults->explain >= 0)
			*explain = defaults->explain;
		f->min_price = defaults->min_price; /* < 0: not given, no bound */
		f->max_price = defaults->max_price;
	}
	int rc = http_query(req, "category", w->qbuf, sizeof(w->qbuf), &v, &len);
	if (rc < 0) {
		http_error(resp, 400, "invalid_parameter", "category is malformed or too long");
		return -1;
	}
	if (rc == 1 && len > 0 && model_category_lookup(w->m, v, len, &f->category) != 0) {
		http_error(resp, 400, "unknown_category", "category %.*s is not in the catalog",
			   (int)MIN(len, (size_t)128), v);
		return -1;
	}
	rc = http_query(req, "exclude", w->xbuf, sizeof(w->xbuf), &v, &len);
	if (rc < 0) {
		http_error(resp, 400, "invalid_parameter",
			   "exclude is malformed or longer than %u ids", API_MAX_EXCLUDE);
		return -1;
	}
	if (rc == 1) {
		unsigned count = 0;
		const char *p = v, *end = v + len;
		while (p < end) {
			const char *comma = memchr(p, ',', (size_t)(end - p));
			const char *stop = comma ? comma : end;
			if (++count > API_MAX_EXCLUDE) {
				http_error(resp, 400, "invalid_parameter", "exclude holds more than %u ids",
					   API_MAX_EXCLUDE);
				return -1;
			}
			api_exclude_id(w, f, p, (size_t)(stop - p));
			p = stop + 1;
		}
	}
	if (param_price(w, req, resp, "min_price", &f->min_price) ||
	    param_price(w, req, resp, "max_price", &f->max_price) ||
	    api_param_day(w, req, resp, "new_since", &f->new_since) ||
	    api_param_bool(w, req, resp, "include_purchased", &f->include_purchased) ||
	    api_param_bool(w, req, resp, "explain", explain))
		return -1;
	rc = http_query(req, "history_weight", w->qbuf, sizeof(w->qbuf), &v, &len);
	if (rc < 0 || (rc == 1 && rec_history_weight_parse(v, len, &f->history_weight) != 0)) {
		http_error(resp, 400, "invalid_parameter",
			   "history_weight must be sqrt, binary, recent or log");
		return -1;
	}
	f->because = *explain;
	return 0;
}

json_t *api_body_json(const http_request *req, http_response *resp, const char *required)
{
	json_error_t jerr;
	if (!req->body || req->body_len == 0) {
		http_error(resp, 400, "invalid_json", "%s", required);
		return NULL;
	}
	json_t *root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		http_error(resp, 400, "invalid_json", "body is not valid JSON: %s (at byte %d)",
			   jerr.text, jerr.position);
	return root;
}

json_t *api_body_object(const http_request *req, http_response *resp)
{
	json_t *root = api_body_json(req, resp, "a JSON object body is required");
	if (root && !json_is_object(root)) {
		json_decref(root);
		http_error(resp, 400, "invalid_json", "body must be a JSON object");
		return NULL;
	}
	return root;
}

int api_json_id(json_t *obj, const char *key, const char *what, http_response *resp,
		const char **id, size_t *len)
{
	json_t *v = json_object_get(obj, key);
	*id = NULL;
	*len = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		http_error(resp, 400, "invalid_field", "%s must be a string", key);
		return -1;
	}
	*id = json_string_value(v);
	*len = json_string_length(v);
	return api_check_id(what, resp, id, len);
}

void api_add_cursor(strbuf *sb, const char *id, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	assert(len > 0 && len <= ID_MAX_LEN);
	sb_addc(sb, '"');
	for (size_t i = 0; i < len; i++) {
		sb_addc(sb, hex[(unsigned char)id[i] >> 4]);
		sb_addc(sb, hex[(unsigned char)id[i] & 15]);
	}
	sb_addc(sb, '"');
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int api_decode_cursor(const char *s, size_t n, char *out, size_t *len)
{
	/* Never empty: ids are not, and LMDB refuses an empty key (500). */
	if (n == 0 || n % 2 || n / 2 > ID_MAX_LEN)
		return -1;
	for (size_t i = 0; i < n; i += 2) {
		int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (char)(hi * 16 + lo);
	}
	*len = n / 2;
	return 0;
}
