/*
 * api: the HTTP API v1 of DESIGN.md: routing, parameter checks, handlers
 * and the JSON they answer with.
 *
 * Each pool thread gets a worker on its first request: a model read
 * transaction (reset between requests, renewed at the next) and the
 * recommendation scratch, so the request path allocates nothing of its own.
 */
#ifndef SHOPKEEPER_API_H
#define SHOPKEEPER_API_H

#include "events.h"
#include "http.h"
#include "store.h"

typedef struct api api;

/* An API over model m, state st and the event writer ew (all borrowed:
 * they must outlive the api). Never fails. */
api *api_create(model *m, state *st, events_writer *ew);
/* api_free(NULL) does nothing. Call after http_stop(). */
void api_free(api *a);

/* The http_handler and http_config.thread_free for this api. */
void api_handle(void *app, const http_request *req, http_response *resp);
void api_thread_free(void *app, void *thread_data);

#endif
