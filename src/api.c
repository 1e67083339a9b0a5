/*
 * api: routes and handlers of HTTP API v1.
 */
#include "api.h"

#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "recommend.h"
#include "util.h"

#define API_DEFAULT_N 10u

struct api {
	model *model;
	state *state;
};

/* Per pool thread (see api.h). */
struct worker {
	model_txn *txn;
	rec_ctx *rec;
	rec_result result;
	char qbuf[512]; /* decoded query values */
};

api *api_create(model *m, state *st)
{
	api *a = xcalloc(1, sizeof(*a));
	a->model = m;
	a->state = st;
	return a;
}

void api_free(api *a)
{
	free(a);
}

void api_thread_free(void *app, void *thread_data)
{
	struct worker *w = thread_data;
	(void)app;
	if (!w)
		return;
	model_txn_free(w->txn);
	rec_ctx_free(w->rec);
	free(w);
}

static struct worker *worker_get(api *a, const http_request *req)
{
	struct worker *w = *req->thread_data;
	if (w)
		return w;
	w = xcalloc(1, sizeof(*w));
	if (model_txn_begin(a->model, &w->txn) != 0) {
		free(w);
		return NULL;
	}
	model_txn_reset(w->txn);
	w->rec = rec_ctx_create(model_get_info(a->model)->n_items);
	*req->thread_data = w;
	return w;
}

/* ---- parameters --------------------------------------------------------- */

/* Reads ?n= into *n (default API_DEFAULT_N). Answers 400 and returns -1 on
 * anything but an integer 1..REC_MAX_N. */
static int param_n(struct worker *w, const http_request *req, http_response *resp, uint32_t *n)
{
	const char *v;
	size_t len;
	int rc = http_query(req, "n", w->qbuf, sizeof(w->qbuf), &v, &len);
	*n = API_DEFAULT_N;
	if (rc == 0)
		return 0;
	uint32_t val = 0;
	bool ok = rc == 1 && len > 0 && len <= 3;
	for (size_t i = 0; ok && i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			ok = false;
		else
			val = val * 10 + (uint32_t)(v[i] - '0');
	}
	if (!ok || val < 1 || val > REC_MAX_N) {
		http_error(resp, 400, "invalid_parameter", "n must be an integer from 1 to %u",
			   REC_MAX_N);
		return -1;
	}
	*n = val;
	return 0;
}

/* Normalises a path id; answers 400 and returns -1 if unusable. */
static int path_id(const http_request *req, unsigned seg, const char *what, http_response *resp,
		   const char **id, size_t *len)
{
	*id = req->segs[seg];
	*len = req->seg_lens[seg];
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

static void storage_error(http_response *resp, int rc)
{
	http_error(resp, 500, "internal", "model read failed: %s", store_strerror(rc));
}

/* ---- JSON --------------------------------------------------------------- */

static void add_item_id(strbuf *sb, const model *m, uint32_t idx)
{
	size_t len;
	const char *id = model_item_id(m, idx, &len);
	sb_add_json_str(sb, id, len);
}

static void write_items(strbuf *sb, const model *m, const rec_result *r, bool because)
{
	sb_adds(sb, "\"items\":[");
	for (uint32_t i = 0; i < r->n; i++) {
		const rec_item *it = &r->items[i];
		if (i)
			sb_addc(sb, ',');
		sb_adds(sb, "{\"item_id\":");
		add_item_id(sb, m, it->item);
		sb_adds(sb, ",\"score\":");
		sb_add_double(sb, it->score, 6);
		if (it->source == REC_POPULAR && r->source == REC_PERSONAL)
			sb_adds(sb, ",\"source\":\"popular\"");
		if (because) {
			sb_adds(sb, ",\"because\":[");
			for (uint8_t b = 0; b < it->n_because; b++) {
				if (b)
					sb_addc(sb, ',');
				add_item_id(sb, m, it->because[b]);
			}
			sb_addc(sb, ']');
		}
		sb_addc(sb, '}');
	}
	sb_addc(sb, ']');
}

/* ---- handlers ----------------------------------------------------------- */

static void get_health(api *a, const http_request *req, http_response *resp)
{
	(void)a;
	(void)req;
	sb_adds(resp->body, "{\"status\":\"ok\"}");
}

static void get_ready(api *a, const http_request *req, http_response *resp)
{
	(void)req;
	const model_info *info = model_get_info(a->model);
	sb_adds(resp->body, "{\"status\":\"ready\",\"model\":");
	sb_add_json_str(resp->body, info->model_id, strlen(info->model_id));
	sb_adds(resp->body, ",\"algorithm\":");
	sb_add_json_str(resp->body, info->algorithm, strlen(info->algorithm));
	sb_adds(resp->body, ",\"items\":");
	sb_add_u64(resp->body, info->n_items);
	sb_adds(resp->body, ",\"customers\":");
	sb_add_u64(resp->body, info->n_customers);
	sb_addc(resp->body, '}');
}

static void get_customer_recs(api *a, const http_request *req, http_response *resp)
{
	struct worker *w = worker_get(a, req);
	const char *id;
	size_t len;
	uint32_t n;

	if (!w) {
		http_error(resp, 503, "unavailable", "cannot open a model transaction");
		return;
	}
	if (path_id(req, 2, "customer", resp, &id, &len) != 0 || param_n(w, req, resp, &n) != 0)
		return;
	if (model_txn_renew(w->txn) != 0) {
		storage_error(resp, STORE_ERROR);
		return;
	}
	int rc = rec_for_customer(w->rec, w->txn, id, len, n, &w->result);
	model_txn_reset(w->txn);
	if (rc) {
		storage_error(resp, rc);
		return;
	}
	const model_info *info = model_get_info(a->model);
	strbuf *sb = resp->body;
	sb_adds(sb, "{\"customer_id\":");
	sb_add_json_str(sb, id, len);
	sb_adds(sb, ",\"model\":");
	sb_add_json_str(sb, info->model_id, strlen(info->model_id));
	sb_adds(sb, ",\"source\":");
	sb_add_json_str(sb, rec_source_name(w->result.source), strlen(rec_source_name(w->result.source)));
	sb_addc(sb, ',');
	write_items(sb, a->model, &w->result, true);
	sb_addc(sb, '}');
}

static void get_item_similar(api *a, const http_request *req, http_response *resp)
{
	struct worker *w = worker_get(a, req);
	const char *id;
	size_t len;
	uint32_t n, idx;

	if (!w) {
		http_error(resp, 503, "unavailable", "cannot open a model transaction");
		return;
	}
	if (path_id(req, 2, "item", resp, &id, &len) != 0 || param_n(w, req, resp, &n) != 0)
		return;
	if (model_txn_renew(w->txn) != 0) {
		storage_error(resp, STORE_ERROR);
		return;
	}
	int rc = model_item_lookup(w->txn, id, len, &idx);
	if (rc == 0)
		rc = rec_similar(w->rec, w->txn, idx, n, &w->result);
	model_txn_reset(w->txn);
	if (rc == STORE_NOTFOUND) {
		strbuf msg = STRBUF_INIT;
		sb_add(&msg, id, len);
		http_error(resp, 404, "unknown_item", "item %s is not in the model", msg.buf);
		sb_release(&msg);
		return;
	}
	if (rc) {
		storage_error(resp, rc);
		return;
	}
	const model_info *info = model_get_info(a->model);
	strbuf *sb = resp->body;
	sb_adds(sb, "{\"item_id\":");
	sb_add_json_str(sb, id, len);
	sb_adds(sb, ",\"model\":");
	sb_add_json_str(sb, info->model_id, strlen(info->model_id));
	sb_addc(sb, ',');
	write_items(sb, a->model, &w->result, false);
	sb_addc(sb, '}');
}

/* ---- routing ------------------------------------------------------------ */

typedef void (*handler_fn)(api *a, const http_request *req, http_response *resp);

/* A route: literal segments, "*" for an id. */
struct route {
	const char *method;
	const char *pattern[HTTP_MAX_SEGMENTS];
	unsigned n;
	handler_fn fn;
};

static const struct route routes[] = {
	{ "GET", { "healthz" }, 1, get_health },
	{ "GET", { "readyz" }, 1, get_ready },
	{ "GET", { "v1", "customers", "*", "recommendations" }, 4, get_customer_recs },
	{ "GET", { "v1", "items", "*", "similar" }, 4, get_item_similar },
};

static bool route_matches(const struct route *r, const http_request *req)
{
	if (r->n != req->n_segs)
		return false;
	for (unsigned i = 0; i < r->n; i++) {
		if (strcmp(r->pattern[i], "*") == 0)
			continue;
		if (strlen(r->pattern[i]) != req->seg_lens[i] ||
		    memcmp(r->pattern[i], req->segs[i], req->seg_lens[i]) != 0)
			return false;
	}
	return true;
}

void api_handle(void *app, const http_request *req, http_response *resp)
{
	api *a = app;
	const char *allowed = NULL;
	bool head = strcmp(req->method, "HEAD") == 0;

	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		if (!route_matches(&routes[i], req))
			continue;
		if (strcmp(routes[i].method, req->method) == 0 ||
		    (head && strcmp(routes[i].method, "GET") == 0)) {
			routes[i].fn(a, req, resp);
			return;
		}
		allowed = routes[i].method;
	}
	if (allowed) {
		resp->allow = allowed;
		http_error(resp, 405, "method_not_allowed", "%s is not allowed here (use %s)",
			   req->method, allowed);
		return;
	}
	http_error(resp, 404, "not_found", "no route for %s %s", req->method, req->url);
}
