/*
 * experiments: the experiments file and assignment. See experiments.h.
 *
 * The file is parsed once per load with jansson and checked key by key;
 * what the request path reads afterwards is plain structs, never JSON.
 */
#include "experiments.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct experiments {
	size_t n;
	exp_experiment *list; /* n of them, file order */
	size_t n_models;
	const char *models[EXP_MAX_MODELS]; /* borrowed from the variants */
};

static const char *const route_names[] = {
	[RECID_ROUTE_CUSTOMER] = "customer",
	[RECID_ROUTE_ITEM] = "item",
	[RECID_ROUTE_BASKET] = "basket",
};

const char *experiments_route_name(enum recid_route route)
{
	if (route >= RECID_ROUTE_CUSTOMER && route <= RECID_ROUTE_MAX)
		return route_names[route];
	return "none";
}

const char *experiments_source_name(enum exp_source s)
{
	switch (s) {
	case EXP_SOURCE_POPULAR:
		return "popular";
	case EXP_SOURCE_NONE:
		return "none";
	default:
		return "default";
	}
}

/* ---- parsing -------------------------------------------------------------- */

/* Where a message points: "experiment \"x\", variant \"y\": " or less. */
struct where {
	const char *experiment; /* NULL: at the top */
	const char *variant;    /* NULL: the experiment itself */
	strbuf *err;
};

static int fail(const struct where *at, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail(const struct where *at, const char *fmt, ...)
{
	va_list ap;
	sb_reset(at->err);
	if (at->experiment)
		sb_addf(at->err, "experiment \"%s\"", at->experiment);
	if (at->variant)
		sb_addf(at->err, ", variant \"%s\"", at->variant);
	if (at->experiment)
		sb_adds(at->err, ": ");
	va_start(ap, fmt);
	sb_vaddf(at->err, fmt, ap);
	va_end(ap);
	return -1;
}

/* Every key of obj is in the comma-separated list `known`. */
static int only_keys(const struct where *at, json_t *obj, const char *what, const char *known)
{
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		size_t k = strlen(key);
		const char *p = known;
		bool found = false;
		while (*p && !found) {
			const char *end = strchrnul(p, ',');
			found = (size_t)(end - p) == k && memcmp(p, key, k) == 0;
			p = *end ? end + 1 : end;
		}
		if (!found)
			return fail(at, "unknown key \"%.64s\" in %s (known: %s)", key, what, known);
	}
	return 0;
}

static bool name_valid(const char *s, size_t len)
{
	if (len == 0 || len > EXP_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* A name field into out[EXP_NAME_MAX + 1]. */
static int get_name(const struct where *at, json_t *obj, const char *what, char *out)
{
	json_t *v = json_object_get(obj, "name");
	if (!json_is_string(v))
		return fail(at, "%s needs a \"name\" string", what);
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	if (!name_valid(s, len))
		return fail(at, "%s name \"%.64s\" must be 1 to %d characters of A-Z a-z 0-9 . _ -",
			    what, s, EXP_NAME_MAX);
	memcpy(out, s, len + 1);
	return 0;
}

/* An integer in [lo, hi]. */
static int get_uint(const struct where *at, json_t *v, const char *key, uint32_t lo, uint32_t hi,
		    uint32_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return fail(at, "params.%s must be an integer from %u to %u", key, lo, hi);
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

static int get_bool(const struct where *at, json_t *v, const char *key, int *out)
{
	if (!json_is_boolean(v))
		return fail(at, "params.%s must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

/* The names and bounds of the query parameters (api_params.c) and serve
 * flags (cli_serve.c) they stand for. */
#define PARAM_KEYS "n,include_purchased,explain,min_price,max_price,neighbors_used,cutoff"

static int parse_params(const struct where *at, json_t *obj, exp_params *p)
{
	p->n = 0;
	p->include_purchased = p->explain = -1;
	p->min_price = p->max_price = -1.0f;
	rec_params_unset(&p->rec);
	p->any_rec = false;
	if (!json_is_object(obj))
		return fail(at, "params must be an object");
	if (only_keys(at, obj, "params", PARAM_KEYS) != 0)
		return -1;
	json_t *v;
	if ((v = json_object_get(obj, "n")) && get_uint(at, v, "n", 1, REC_MAX_N, &p->n) != 0)
		return -1;
	if ((v = json_object_get(obj, "include_purchased")) &&
	    get_bool(at, v, "include_purchased", &p->include_purchased) != 0)
		return -1;
	if ((v = json_object_get(obj, "explain")) && get_bool(at, v, "explain", &p->explain) != 0)
		return -1;
	static const char *const prices[] = { "min_price", "max_price" };
	for (int i = 0; i < 2; i++) {
		if (!(v = json_object_get(obj, prices[i])))
			continue;
		double d = json_number_value(v);
		if (!json_is_number(v) || !isfinite(d) || d < 0 || d > 1e9)
			return fail(at, "params.%s must be a number >= 0", prices[i]);
		*(i ? &p->max_price : &p->min_price) = (float)d;
	}
	if (p->min_price >= 0 && p->max_price >= 0 && p->min_price > p->max_price)
		return fail(at, "params.min_price is above params.max_price");
	if ((v = json_object_get(obj, "neighbors_used"))) {
		if (get_uint(at, v, "neighbors_used", 1, 1000, &p->rec.neighbors_used) != 0)
			return -1;
		p->any_rec = true;
	}
	if ((v = json_object_get(obj, "cutoff"))) {
		double d = json_number_value(v);
		if (!json_is_number(v) || !(d >= 0 && d < 1))
			return fail(at, "params.cutoff must be a number from 0 to below 1");
		p->rec.cutoff = (float)d;
		if (p->rec.cutoff >= 1.0f) /* 0.99999999 rounds up in a float */
			return fail(at, "params.cutoff must be a number from 0 to below 1");
		p->any_rec = true;
	}
	return 0;
}

static int parse_variant(struct where *at, json_t *obj, size_t index, exp_variant *v)
{
	char label[32];
	snprintf(label, sizeof(label), "variants[%zu]", index);
	if (!json_is_object(obj))
		return fail(at, "%s must be an object", label);
	if (get_name(at, obj, label, v->name) != 0)
		return -1;
	at->variant = v->name;
	if (only_keys(at, obj, "a variant", "name,share,source,model,params") != 0)
		return -1;
	json_t *share = json_object_get(obj, "share");
	if (!json_is_number(share))
		return fail(at, "needs a \"share\" number");
	v->share = json_number_value(share);
	if (!(v->share > 0) || v->share > 1)
		return fail(at, "share must be > 0 and at most 1 (it is %g)", v->share);
	json_t *src = json_object_get(obj, "source");
	if (src) {
		const char *s = json_string_value(src);
		if (s && strcmp(s, "popular") == 0)
			v->source = EXP_SOURCE_POPULAR;
		else if (s && strcmp(s, "none") == 0)
			v->source = EXP_SOURCE_NONE;
		else
			return fail(at, "source must be \"popular\" or \"none\" (leave it out for the "
					"route's own answer)");
	}
	json_t *dir = json_object_get(obj, "model");
	if (dir) {
		if (!json_is_string(dir) || json_string_length(dir) == 0 ||
		    strlen(json_string_value(dir)) != json_string_length(dir))
			return fail(at, "model must be a model directory");
		v->model_dir = xstrdup(json_string_value(dir));
	}
	json_t *params = json_object_get(obj, "params");
	if (params) {
		if (parse_params(at, params, &v->params) != 0)
			return -1;
		v->has_params = true;
	}
	if (v->source == EXP_SOURCE_NONE && (v->model_dir || v->has_params))
		return fail(at, "a \"none\" variant (a holdout) answers no items: it takes no "
				"model or params");
	at->variant = NULL;
	return 0;
}

static int parse_routes(const struct where *at, json_t *arr, unsigned *routes)
{
	size_t i;
	json_t *r;
	*routes = 0;
	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return fail(at, "routes must be a non-empty array of \"customer\", \"item\", "
				"\"basket\"");
	json_array_foreach(arr, i, r)
	{
		const char *s = json_string_value(r);
		unsigned bit = 0;
		for (int k = RECID_ROUTE_CUSTOMER; k <= RECID_ROUTE_MAX; k++)
			if (s && strcmp(s, route_names[k]) == 0)
				bit = EXP_ROUTE_BIT(k);
		if (!bit)
			return fail(at, "routes[%zu] must be \"customer\", \"item\" or \"basket\"", i);
		if (*routes & bit)
			return fail(at, "route \"%s\" is listed twice", s);
		*routes |= bit;
	}
	return 0;
}

static int parse_experiment(struct where *at, json_t *obj, size_t index, exp_experiment *e)
{
	char label[40];
	snprintf(label, sizeof(label), "experiments[%zu]", index);
	at->experiment = NULL;
	at->variant = NULL;
	if (!json_is_object(obj))
		return fail(at, "%s must be an object", label);
	if (get_name(at, obj, label, e->name) != 0)
		return -1;
	at->experiment = e->name;
	if (only_keys(at, obj, "an experiment", "name,salt,routes,variants") != 0)
		return -1;
	json_t *salt = json_object_get(obj, "salt");
	if (!json_is_string(salt) || json_string_length(salt) == 0 ||
	    json_string_length(salt) > EXP_SALT_MAX ||
	    strlen(json_string_value(salt)) != json_string_length(salt))
		return fail(at, "needs a \"salt\" string of 1 to %d bytes (no NUL)", EXP_SALT_MAX);
	e->salt_len = json_string_length(salt);
	memcpy(e->salt, json_string_value(salt), e->salt_len + 1);
	e->id = recid_experiment_id(e->name, e->salt);
	if (parse_routes(at, json_object_get(obj, "routes"), &e->routes) != 0)
		return -1;
	json_t *vars = json_object_get(obj, "variants");
	if (!json_is_array(vars) || json_array_size(vars) == 0)
		return fail(at, "variants must be a non-empty array");
	if (json_array_size(vars) > EXP_MAX_VARIANTS)
		return fail(at, "%zu variants; at most %d", json_array_size(vars), EXP_MAX_VARIANTS);
	size_t i;
	json_t *v;
	double sum = 0;
	json_array_foreach(vars, i, v)
	{
		exp_variant *var = &e->variants[i];
		e->n_variants = (uint8_t)(i + 1); /* freed on failure: model_dir */
		if (parse_variant(at, v, i, var) != 0)
			return -1;
		for (size_t k = 0; k < i; k++)
			if (strcmp(e->variants[k].name, var->name) == 0)
				return fail(at, "two variants are named \"%s\"", var->name);
		sum += var->share;
		var->upper = sum;
	}
	if (fabs(sum - 1.0) > EXP_SHARE_TOLERANCE)
		return fail(at, "shares sum to %.12g; they must sum to 1", sum);
	/* The last boundary is 1 exactly: a sum of 0.9999999999 leaves no
	 * customer outside every variant. */
	e->variants[e->n_variants - 1].upper = 1.0;
	return 0;
}

/* Gives each of x's variants with a "model" its slot among ex's distinct
 * directories, adding new ones (at most EXP_MAX_MODELS). */
static int assign_model_slots(struct where *at, experiments *ex, exp_experiment *x)
{
	for (uint8_t k = 0; k < x->n_variants; k++) {
		exp_variant *v = &x->variants[k];
		if (!v->model_dir)
			continue;
		size_t j = 0;
		while (j < ex->n_models && strcmp(ex->models[j], v->model_dir) != 0)
			j++;
		if (j == ex->n_models) {
			if (ex->n_models == EXP_MAX_MODELS) {
				at->variant = v->name;
				return fail(at, "a %dth model directory; variants may name at most "
						"%d different ones", EXP_MAX_MODELS + 1, EXP_MAX_MODELS);
			}
			ex->models[ex->n_models++] = v->model_dir;
		}
		v->model_slot = (uint8_t)(j + 1);
	}
	return 0;
}

size_t experiments_model_count(const experiments *ex)
{
	return ex ? ex->n_models : 0;
}

const char *experiments_model_dir(const experiments *ex, size_t i)
{
	assert(ex && i < ex->n_models);
	return ex->models[i];
}

void experiments_free(experiments *ex)
{
	if (!ex)
		return;
	for (size_t i = 0; i < ex->n; i++)
		for (size_t k = 0; k < ex->list[i].n_variants; k++)
			free(ex->list[i].variants[k].model_dir);
	free(ex->list);
	free(ex);
}

int experiments_parse(const char *json, size_t len, experiments **out, strbuf *err)
{
	struct where at = { NULL, NULL, err };
	json_error_t jerr;
	*out = NULL;
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return fail(&at, "not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
			    jerr.column);
	experiments *ex = xcalloc(1, sizeof(*ex));
	int rc = -1;
	json_t *list = json_object_get(root, "experiments");
	if (!json_is_object(root) || !json_is_array(list)) {
		fail(&at, "the file must be an object with an \"experiments\" array");
		goto out;
	}
	if (only_keys(&at, root, "the file", "experiments") != 0)
		goto out;
	if (json_array_size(list) > EXP_MAX_EXPERIMENTS) {
		fail(&at, "%zu experiments; at most %d", json_array_size(list), EXP_MAX_EXPERIMENTS);
		goto out;
	}
	ex->list = xcalloc(json_array_size(list) + 1, sizeof(*ex->list));
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e)
	{
		exp_experiment *x = &ex->list[i];
		ex->n = i + 1;
		if (parse_experiment(&at, e, i, x) != 0)
			goto out;
		if (assign_model_slots(&at, ex, x) != 0)
			goto out;
		for (size_t k = 0; k < i; k++) {
			const exp_experiment *y = &ex->list[k];
			if (strcmp(y->name, x->name) == 0) {
				at.variant = NULL;
				fail(&at, "two experiments have this name");
				goto out;
			}
			if (y->routes & x->routes) {
				at.variant = NULL;
				for (int r = RECID_ROUTE_CUSTOMER; r <= RECID_ROUTE_MAX; r++)
					if (y->routes & x->routes & EXP_ROUTE_BIT(r)) {
						fail(&at, "route \"%s\" is in experiment \"%s\" "
							  "already (one experiment per route)",
						     route_names[r], y->name);
						break;
					}
				goto out;
			}
			if (y->id == x->id) { /* a 32-bit hash: 1 in 4 billion */
				fail(&at, "its id collides with experiment \"%s\"'s: change the salt",
				     y->name);
				goto out;
			}
		}
	}
	*out = ex;
	ex = NULL;
	rc = 0;
out:
	experiments_free(ex);
	json_decref(root);
	return rc;
}

int experiments_load(const char *path, experiments **out, strbuf *err)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		sb_reset(err);
		sb_addf(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	char *buf = xmalloc(EXP_FILE_MAX + 1);
	size_t n = fread(buf, 1, EXP_FILE_MAX + 1, f);
	int rc = -1;
	if (ferror(f)) {
		sb_reset(err);
		sb_addf(err, "%s: cannot read it", path);
	} else if (n > EXP_FILE_MAX) {
		sb_reset(err);
		sb_addf(err, "%s: larger than %d bytes", path, EXP_FILE_MAX);
	} else if (experiments_parse(buf, n, out, err) == 0) {
		rc = 0;
	} else {
		/* the path in front of the message */
		strbuf msg = STRBUF_INIT;
		sb_addf(&msg, "%s: %s", path, sb_str(err));
		sb_reset(err);
		sb_add(err, msg.buf, msg.len);
		sb_release(&msg);
	}
	free(buf);
	fclose(f);
	return rc;
}

size_t experiments_count(const experiments *ex)
{
	return ex ? ex->n : 0;
}

const exp_experiment *experiments_at(const experiments *ex, size_t i)
{
	return ex && i < ex->n ? &ex->list[i] : NULL;
}

const exp_experiment *experiments_find(const experiments *ex, const char *name, size_t len)
{
	for (size_t i = 0; i < experiments_count(ex); i++)
		if (strlen(ex->list[i].name) == len && memcmp(ex->list[i].name, name, len) == 0)
			return &ex->list[i];
	return NULL;
}

/* ---- assignment ----------------------------------------------------------- */

double experiments_unit(const char *salt, size_t salt_len, const char *id, size_t id_len)
{
	/* "assign", salt, NUL, id: the NUL keeps ("ab","c") and ("a","bc")
	 * apart (a salt has no NUL: the parser refuses one). */
	uint64_t h = recid_hash(RECID_HASH_INIT, "assign", sizeof "assign");
	h = recid_hash(h, salt, salt_len);
	h = recid_hash(h, "", 1);
	h = recid_hash(h, id, id_len);
	return (double)(recid_hash_final(h) >> 11) * 0x1.0p-53;
}

void experiments_assign(const experiments *ex, enum recid_route route, const char *id,
			size_t len, exp_assignment *out)
{
	out->experiment = NULL;
	out->variant = NULL;
	out->variant_index = 0;
	if (!ex || !id || route < RECID_ROUTE_CUSTOMER || route > RECID_ROUTE_MAX)
		return;
	for (size_t i = 0; i < ex->n; i++) {
		const exp_experiment *e = &ex->list[i];
		if (!(e->routes & EXP_ROUTE_BIT(route)))
			continue;
		double u = experiments_unit(e->salt, e->salt_len, id, len);
		uint8_t k = 0;
		while (k + 1 < e->n_variants && u >= e->variants[k].upper)
			k++;
		out->experiment = e;
		out->variant = &e->variants[k];
		out->variant_index = k;
		return; /* one experiment per route */
	}
}

/* ---- GET /v1/experiments ------------------------------------------------------ */

static void add_str(strbuf *sb, const char *s)
{
	sb_add_json_str(sb, s, strlen(s));
}

static void add_params(strbuf *sb, const exp_params *p)
{
	char sep = '{';
	if (p->n) {
		sb_addf(sb, "%c\"n\":%u", sep, p->n);
		sep = ',';
	}
	if (p->include_purchased >= 0) {
		sb_addf(sb, "%c\"include_purchased\":%s", sep, p->include_purchased ? "true" : "false");
		sep = ',';
	}
	if (p->explain >= 0) {
		sb_addf(sb, "%c\"explain\":%s", sep, p->explain ? "true" : "false");
		sep = ',';
	}
	if (p->min_price >= 0) {
		sb_addf(sb, "%c\"min_price\":", sep);
		sb_add_double(sb, p->min_price, 9);
		sep = ',';
	}
	if (p->max_price >= 0) {
		sb_addf(sb, "%c\"max_price\":", sep);
		sb_add_double(sb, p->max_price, 9);
		sep = ',';
	}
	if (p->rec.neighbors_used) {
		sb_addf(sb, "%c\"neighbors_used\":%u", sep, p->rec.neighbors_used);
		sep = ',';
	}
	if (p->rec.cutoff >= 0) {
		sb_addf(sb, "%c\"cutoff\":", sep);
		sb_add_double(sb, p->rec.cutoff, 6);
		sep = ',';
	}
	if (sep == '{')
		sb_addc(sb, '{');
	sb_addc(sb, '}');
}

/* A model directory's last path part: the name, not where it is kept. */
static const char *dir_name(const char *dir, size_t *len)
{
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	size_t start = n;
	while (start > 0 && dir[start - 1] != '/')
		start--;
	*len = n - start;
	return dir + start;
}

void experiments_json(const experiments *ex, strbuf *sb)
{
	experiments_json_models(ex, NULL, sb);
}

void experiments_json_models(const experiments *ex, const char *const *model_ids, strbuf *sb)
{
	sb_adds(sb, "{\"experiments\":[");
	for (size_t i = 0; i < experiments_count(ex); i++) {
		const exp_experiment *e = &ex->list[i];
		if (i)
			sb_addc(sb, ',');
		sb_adds(sb, "{\"name\":");
		add_str(sb, e->name);
		sb_adds(sb, ",\"id\":");
		sb_add_u64(sb, e->id);
		sb_adds(sb, ",\"salt\":");
		sb_add_json_str(sb, e->salt, e->salt_len);
		sb_adds(sb, ",\"routes\":[");
		bool first = true;
		for (int r = RECID_ROUTE_CUSTOMER; r <= RECID_ROUTE_MAX; r++) {
			if (!(e->routes & EXP_ROUTE_BIT(r)))
				continue;
			if (!first)
				sb_addc(sb, ',');
			first = false;
			add_str(sb, route_names[r]);
		}
		sb_adds(sb, "],\"variants\":[");
		for (size_t k = 0; k < e->n_variants; k++) {
			const exp_variant *v = &e->variants[k];
			if (k)
				sb_addc(sb, ',');
			sb_adds(sb, "{\"name\":");
			add_str(sb, v->name);
			sb_adds(sb, ",\"share\":");
			sb_add_double(sb, v->share, 15);
			sb_adds(sb, ",\"source\":");
			add_str(sb, experiments_source_name(v->source));
			if (v->model_dir) {
				size_t n;
				const char *name = dir_name(v->model_dir, &n);
				sb_adds(sb, ",\"model\":");
				sb_add_json_str(sb, name, n);
				const char *mid = model_ids ? model_ids[v->model_slot - 1] : NULL;
				if (mid) {
					sb_adds(sb, ",\"model_id\":");
					add_str(sb, mid);
				}
			}
			if (v->has_params) {
				sb_adds(sb, ",\"params\":");
				add_params(sb, &v->params);
			}
			sb_addc(sb, '}');
		}
		sb_adds(sb, "]}");
	}
	sb_adds(sb, "]}");
}
