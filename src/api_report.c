/*
 * api_report: GET /v1/experiments/{name}, an experiment's report from the
 * state (attribution_report: the same JSON `shopkeeper report` prints).
 * It answers from what the state holds, so it works for an experiment
 * that is no longer in the experiments file, and gives the same figures
 * on every replica that applies the same event log.
 */
#include <assert.h>

#include "api_internal.h"

void api_get_experiment_report(api *a, struct worker *w, const http_request *req,
			       http_response *resp)
{
	(void)a;
	const char *name;
	size_t len;
	if (api_path_id(req, 2, "experiment", resp, &name, &len) != 0)
		return;
	assert(w->in_txn);
	int rc = attribution_report(w->stxn, name, len, resp->body);
	if (rc == STORE_NOTFOUND) {
		sb_reset(resp->body);
		http_error(resp, 404, "unknown_experiment",
			   "no experiment %.*s has been recorded in this state", (int)len, name);
	} else if (rc) {
		sb_reset(resp->body);
		api_storage_error(resp, rc);
	}
}
