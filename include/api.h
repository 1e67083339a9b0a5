/*
 * api: the HTTP API v1 of docs/api.md: routing, parameter checks, handlers
 * and the JSON they answer with.
 *
 * Each pool thread gets a worker on its first request: a model and a state
 * read transaction (reset between requests; api_handle renews them for the
 * routes that read, and resets them when the handler returns) and the
 * recommendation scratch, so the request path allocates nothing of its own.
 */
#ifndef SHOPKEEPER_API_H
#define SHOPKEEPER_API_H

#include "applier.h"
#include "attribution.h"
#include "auth.h"
#include "events.h"
#include "http.h"
#include "recommend.h"
#include "model.h"
#include "state.h"

typedef struct api api;

/* An API over model m (owned from now on: closed by the api once no
 * longer current and unused), state st and the event writer ew (borrowed:
 * they must outlive the api). model_dir is where reloads look. Never
 * fails. */
api *api_create(model *m, state *st, events_writer *ew, const char *model_dir);

/* Loads model_dir again (and the experiments file, with
 * api_set_experiments) and, if both open and validate, makes them current
 * together: requests in flight finish on the old pair, which is dropped
 * once no worker uses it. Returns 0, or -1 with a message in *err (the
 * current model and experiments both stay). Safe from any thread (SIGHUP,
 * POST /admin/reload). */
int api_reload(api *a, strbuf *err);

/* Serves the experiments of the file at path (copied) with the current
 * model, and loads it again on every reload (docs/operations.md,
 * "Experiments"). Call before serving, after api_set_attribution. Returns
 * 0, or -1 with the problem in *err (nothing changes: serve refuses to
 * start). */
int api_set_experiments(api *a, const char *path, strbuf *err);

/* Requires API keys (borrowed; NULL: none) on writing and admin routes,
 * and on reading routes too when `reads`; /healthz and /readyz stay open. */
void api_set_auth(api *a, const auth *keys, bool reads);

/* Items the live state may hold beyond the model (PUT /v1/items/{id} of an
 * item the model does not know; default LIVE_ITEMS_DEFAULT_MAX). Call
 * before serving. */
void api_set_max_live_items(api *a, uint32_t max);

/* How scores are summed (copied): the fields p gives win; the others are
 * each model's own, what its tuning chose (rec_params_for_model). Until
 * then every field is the model's. Call before serving. */
void api_set_params(api *a, const rec_params *p);

/* With `serve --event-log`: the applier (borrowed: it must outlive the
 * api) whose progress /readyz and /metrics report, and which model
 * switches are told to; /readyz answers 503 while its lag is over max_lag
 * seconds, or while it bootstraps or rebuilds. Also lends the applier the
 * model in use (applier_set_model_hooks): item overrides from the log reach
 * its bitmaps, and events naming items it does not know are counted. Call
 * before serving. */
void api_set_event_log(api *a, applier *ap, double max_lag);
/* Drops the answers cached from the state (GET /v1/segments): called when
 * a customer was erased. Safe from any thread; `arg` is the api, so it
 * can be given as a hook (applier_set_erasure_hook). */
void api_forget_segments(void *arg);
/* The current model's clock (model_now), the one event times are on; arg
 * is the api. For events_writer_sweep; safe from any thread. */
int64_t api_now(void *arg);

/* The attribution batcher (borrowed: it must outlive the api) that
 * recommendation answers inside an experiment report to
 * (attribution_note_served with a->attribution, NULL until set) and
 * GET /v1/experiments/{name} reads through. Call before serving. */
void api_set_attribution(api *a, attribution *at);

/* Where /metrics gets the number of open connections. */
void api_set_connections(api *a, unsigned (*fn)(void *arg), void *arg);
/* api_free(NULL) does nothing. Call after http_stop(); releases the
 * current model. */
void api_free(api *a);

/* The http_handler and http_config.thread_free for this api. */
void api_handle(void *app, const http_request *req, http_response *resp);
void api_thread_free(void *app, void *thread_data);

#endif
