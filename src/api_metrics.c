/*
 * api_metrics: request counters per worker and GET /metrics (Prometheus
 * text). Each worker counts its own requests without a lock; /metrics sums
 * them. Route labels come from the route table (api_route_label).
 */
#include <assert.h>
#include <string.h>

#include "api_internal.h"
#include "util.h"

/* Status codes counted in /metrics; the last slot takes the rest. */
static const int metric_statuses[] = { 200, 400, 401, 403, 404, 405, 413, 414, 429, 500, 503, 0 };
_Static_assert(ARRAY_SIZE(metric_statuses) == API_N_STATUS, "API_N_STATUS");
/* Latency histogram bounds, seconds. */
static const double metric_buckets[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
					  0.005,  0.01,    0.025,  0.1,   1.0 };
_Static_assert(ARRAY_SIZE(metric_buckets) == API_N_BUCKETS, "API_N_BUCKETS");

void api_record(struct worker *w, size_t route, int status, double secs)
{
	assert(route < API_N_ROUTES);
	size_t si = API_N_STATUS - 1;
	for (size_t i = 0; i + 1 < API_N_STATUS; i++)
		if (metric_statuses[i] == status)
			si = i;
	atomic_fetch_add_explicit(&w->metrics.requests[route][si], 1, memory_order_relaxed);
	size_t b = 0;
	while (b < API_N_BUCKETS && secs > metric_buckets[b])
		b++;
	atomic_fetch_add_explicit(&w->metrics.latency[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->metrics.latency_sum_us, (unsigned long)(secs * 1e6),
				  memory_order_relaxed);
}

void api_get_metrics(api *a, struct worker *w, const http_request *req, http_response *resp)
{
	static unsigned long requests[API_N_ROUTES][API_N_STATUS]; /* summed under workers_lock */
	unsigned long latency[API_N_BUCKETS + 1] = { 0 }, sum_us = 0, accepted = 0, rejected = 0,
		      refused_live = 0, precomputed = 0, topped_up = 0, live_cached = 0;
	strbuf *sb = resp->body;
	strbuf label = STRBUF_INIT;

	assert(w->in_txn);
	pthread_mutex_lock(&a->workers_lock);
	memset(requests, 0, sizeof(requests));
	for (struct worker *k = a->workers; k; k = k->next) {
		for (size_t r = 0; r < API_N_ROUTES; r++)
			for (size_t st = 0; st < API_N_STATUS; st++)
				requests[r][st] += atomic_load_explicit(&k->metrics.requests[r][st],
									memory_order_relaxed);
		for (size_t b = 0; b <= API_N_BUCKETS; b++)
			latency[b] += atomic_load_explicit(&k->metrics.latency[b], memory_order_relaxed);
		sum_us += atomic_load_explicit(&k->metrics.latency_sum_us, memory_order_relaxed);
		accepted += atomic_load_explicit(&k->metrics.events_accepted, memory_order_relaxed);
		rejected += atomic_load_explicit(&k->metrics.events_rejected, memory_order_relaxed);
		refused_live += atomic_load_explicit(&k->metrics.events_refused_live,
						     memory_order_relaxed);
		precomputed += atomic_load_explicit(&k->metrics.recs_precomputed,
						    memory_order_relaxed);
		topped_up += atomic_load_explicit(&k->metrics.recs_topped_up, memory_order_relaxed);
		live_cached += atomic_load_explicit(&k->metrics.recs_live_cached,
						    memory_order_relaxed);
	}
	sb_adds(sb, "# HELP shopkeeper_requests_total HTTP requests answered, by route and status.\n"
		    "# TYPE shopkeeper_requests_total counter\n");
	for (size_t r = 0; r < API_N_ROUTES; r++) {
		for (size_t st = 0; st < API_N_STATUS; st++) {
			if (!requests[r][st])
				continue;
			sb_reset(&label);
			api_route_label(r, &label);
			sb_addf(sb, "shopkeeper_requests_total{route=\"%s\",status=\"", label.buf);
			if (metric_statuses[st])
				sb_addf(sb, "%d", metric_statuses[st]);
			else
				sb_adds(sb, "other");
			sb_addf(sb, "\"} %lu\n", requests[r][st]);
		}
	}
	pthread_mutex_unlock(&a->workers_lock);

	sb_adds(sb, "# HELP shopkeeper_request_duration_seconds Time to compute an answer.\n"
		    "# TYPE shopkeeper_request_duration_seconds histogram\n");
	unsigned long cum = 0;
	for (size_t b = 0; b < API_N_BUCKETS; b++) {
		cum += latency[b];
		sb_addf(sb, "shopkeeper_request_duration_seconds_bucket{le=\"%g\"} %lu\n",
			metric_buckets[b], cum);
	}
	cum += latency[API_N_BUCKETS];
	sb_addf(sb, "shopkeeper_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n", cum);
	sb_addf(sb, "shopkeeper_request_duration_seconds_sum %.6f\n", (double)sum_us / 1e6);
	sb_addf(sb, "shopkeeper_request_duration_seconds_count %lu\n", cum);

	sb_addf(sb, "# HELP shopkeeper_events_accepted_total Events recorded durably.\n"
		    "# TYPE shopkeeper_events_accepted_total counter\n"
		    "shopkeeper_events_accepted_total %lu\n"
		    "# HELP shopkeeper_events_rejected_total Events refused as invalid.\n"
		    "# TYPE shopkeeper_events_rejected_total counter\n"
		    "shopkeeper_events_rejected_total %lu\n", accepted, rejected);
	sb_addf(sb, "# HELP shopkeeper_recommendations_precomputed_total Customer recommendations "
		    "answered from the model's precomputed lists (train --precompute).\n"
		    "# TYPE shopkeeper_recommendations_precomputed_total counter\n"
		    "shopkeeper_recommendations_precomputed_total %lu\n", precomputed);
	sb_addf(sb, "# HELP shopkeeper_recommendations_precomputed_topped_up_total Of those, "
		    "answers from a complete list (every candidate the customer has, fewer than "
		    "asked) topped up with popular items, as scoring does.\n"
		    "# TYPE shopkeeper_recommendations_precomputed_topped_up_total counter\n"
		    "shopkeeper_recommendations_precomputed_topped_up_total %lu\n", topped_up);
	sb_addf(sb, "# HELP shopkeeper_recommendations_live_cached_total Customer recommendations "
		    "for customers with live events answered from the server's live cache (their "
		    "list scored on an earlier request, unchanged since).\n"
		    "# TYPE shopkeeper_recommendations_live_cached_total counter\n"
		    "shopkeeper_recommendations_live_cached_total %lu\n", live_cached);
	uint64_t commits = 0, written = 0, gathered = 0;
	events_writer_stats(a->events, &commits, &written, &gathered);
	sb_addf(sb, "# HELP shopkeeper_event_commits_total Group commits (one fsync each).\n"
		    "# TYPE shopkeeper_event_commits_total counter\n"
		    "shopkeeper_event_commits_total %llu\n"
		    "# HELP shopkeeper_event_commits_gathered_total Group commits that waited for more writes (--commit-delay).\n"
		    "# TYPE shopkeeper_event_commits_gathered_total counter\n"
		    "shopkeeper_event_commits_gathered_total %llu\n",
		(unsigned long long)commits, (unsigned long long)gathered);
	/* With the event log the applier is the state's writer. */
	uint64_t late = events_writer_put_backs(a->events);
	if (a->applier) {
		applier_stats ast;
		applier_get_stats(a->applier, &ast);
		late += ast.put_backs;
	}
	sb_addf(sb, "# HELP shopkeeper_event_commits_late_total Times the state's writer (the event writer; with --event-log the applier), which runs at idle priority, waited --writer-wait (a write queued, or the applier without progress) and was put back at the ordinary priority until it caught up (the request threads kept every core busy).\n"
		    "# TYPE shopkeeper_event_commits_late_total counter\n"
		    "shopkeeper_event_commits_late_total %llu\n",
		(unsigned long long)late);
	uint64_t journal_pending = 0, journal_merged = 0;
	state_journal_stats(a->state, &journal_pending, &journal_merged);
	sb_addf(sb, "# HELP shopkeeper_journal_events Acknowledged events waiting in the state's journal to be merged into their customers' logs (--merge-after); reads already see them.\n"
		    "# TYPE shopkeeper_journal_events gauge\n"
		    "shopkeeper_journal_events %llu\n"
		    "# HELP shopkeeper_journal_merged_total Events merged from the journal into the customers' logs.\n"
		    "# TYPE shopkeeper_journal_merged_total counter\n"
		    "shopkeeper_journal_merged_total %llu\n",
		(unsigned long long)journal_pending, (unsigned long long)journal_merged);

	if (a->applier) {
		uint64_t entries = 0, appends = 0, unavailable = 0;
		applier_stats st;
		events_writer_log_stats(a->events, &entries, &appends, &unavailable);
		applier_get_stats(a->applier, &st);
		sb_addf(sb, "# HELP shopkeeper_event_log_lag_entries Entries of the shared event log not yet applied here (counted up to %d).\n"
			    "# TYPE shopkeeper_event_log_lag_entries gauge\n"
			    "shopkeeper_event_log_lag_entries %llu\n"
			    "# HELP shopkeeper_event_log_lag_seconds Age of the oldest entry not yet applied here.\n"
			    "# TYPE shopkeeper_event_log_lag_seconds gauge\n"
			    "shopkeeper_event_log_lag_seconds %.3f\n",
			APPLIER_LAG_COUNT_MAX, (unsigned long long)st.lag_entries, st.lag_seconds);
		sb_addf(sb, "# HELP shopkeeper_event_log_appended_total Entries this replica appended to the log.\n"
			    "# TYPE shopkeeper_event_log_appended_total counter\n"
			    "shopkeeper_event_log_appended_total %llu\n"
			    "# HELP shopkeeper_event_log_appends_total Appends (one round trip each).\n"
			    "# TYPE shopkeeper_event_log_appends_total counter\n"
			    "shopkeeper_event_log_appends_total %llu\n"
			    "# HELP shopkeeper_event_log_applied_total Entries of the log applied to this replica's state.\n"
			    "# TYPE shopkeeper_event_log_applied_total counter\n"
			    "shopkeeper_event_log_applied_total %llu\n"
			    "# HELP shopkeeper_event_log_unavailable_total Writes answered 503 event_log_unavailable.\n"
			    "# TYPE shopkeeper_event_log_unavailable_total counter\n"
			    "shopkeeper_event_log_unavailable_total %llu\n",
			(unsigned long long)entries, (unsigned long long)appends,
			(unsigned long long)st.applied, (unsigned long long)unavailable);
		sb_addf(sb, "# HELP shopkeeper_event_log_skipped_total Entries skipped: not a valid record, or a kind this build does not keep.\n"
			    "# TYPE shopkeeper_event_log_skipped_total counter\n"
			    "shopkeeper_event_log_skipped_total %llu\n"
			    "# HELP shopkeeper_event_log_covered_total Events not kept because the model covers them.\n"
			    "# TYPE shopkeeper_event_log_covered_total counter\n"
			    "shopkeeper_event_log_covered_total %llu\n"
			    "# HELP shopkeeper_event_log_read_errors_total Failed reads of the log (Redis unreachable).\n"
			    "# TYPE shopkeeper_event_log_read_errors_total counter\n"
			    "shopkeeper_event_log_read_errors_total %llu\n"
			    "# HELP shopkeeper_event_log_rebuilds_total State bootstraps and rebuilds from the model and the log.\n"
			    "# TYPE shopkeeper_event_log_rebuilds_total counter\n"
			    "shopkeeper_event_log_rebuilds_total{reason=\"bootstrap\"} %llu\n"
			    "shopkeeper_event_log_rebuilds_total{reason=\"rebuild\"} %llu\n"
			    "# HELP shopkeeper_event_log_connected Whether the last call to the log succeeded.\n"
			    "# TYPE shopkeeper_event_log_connected gauge\n"
			    "shopkeeper_event_log_connected %d\n",
			(unsigned long long)st.skipped, (unsigned long long)st.covered,
			(unsigned long long)st.read_errors, (unsigned long long)st.bootstraps,
			(unsigned long long)st.rebuilds, st.connected ? 1 : 0);
		sb_adds(sb, "# HELP shopkeeper_event_log_apply_lag_seconds From an entry's append (its id's time) to its commit here.\n"
			    "# TYPE shopkeeper_event_log_apply_lag_seconds histogram\n");
		uint64_t lcum = 0;
		for (size_t k = 0; k < APPLIER_LAG_BUCKETS; k++) {
			lcum += st.lag_hist[k];
			sb_addf(sb, "shopkeeper_event_log_apply_lag_seconds_bucket{le=\"%g\"} %llu\n",
				applier_lag_buckets[k], (unsigned long long)lcum);
		}
		lcum += st.lag_hist[APPLIER_LAG_BUCKETS];
		sb_addf(sb, "shopkeeper_event_log_apply_lag_seconds_bucket{le=\"+Inf\"} %llu\n"
			    "shopkeeper_event_log_apply_lag_seconds_sum %.6f\n"
			    "shopkeeper_event_log_apply_lag_seconds_count %llu\n",
			(unsigned long long)lcum, st.lag_sum, (unsigned long long)lcum);
	}

	const model_info *info = model_get_info(w->m);
	sb_adds(sb, "# HELP shopkeeper_model_info The model being served.\n"
		    "# TYPE shopkeeper_model_info gauge\n");
	sb_addf(sb, "shopkeeper_model_info{model=\"%s\",algorithm=\"%s\"} 1\n", info->model_id,
		info->algorithm);
	sb_addf(sb, "# HELP shopkeeper_model_age_seconds Seconds since the model was trained.\n"
		    "# TYPE shopkeeper_model_age_seconds gauge\n"
		    "shopkeeper_model_age_seconds %.0f\n", util_now() - (double)info->created);
	sb_addf(sb, "# HELP shopkeeper_model_items Items in the model.\n"
		    "# TYPE shopkeeper_model_items gauge\nshopkeeper_model_items %u\n"
		    "# HELP shopkeeper_model_customers Customers in the model.\n"
		    "# TYPE shopkeeper_model_customers gauge\nshopkeeper_model_customers %u\n",
		info->n_items, info->n_customers);
	sb_addf(sb, "# HELP shopkeeper_model_reloads_total Model switches, and refused ones.\n"
		    "# TYPE shopkeeper_model_reloads_total counter\n"
		    "shopkeeper_model_reloads_total{result=\"ok\"} %lu\n"
		    "shopkeeper_model_reloads_total{result=\"failed\"} %lu\n",
		atomic_load(&a->reloads), atomic_load(&a->reload_failures));

	state_counters sc;
	state_get_counters(w->stxn, &sc);
	sb_addf(sb, "# HELP shopkeeper_state_map_bytes The state's LMDB map: size and use.\n"
		    "# TYPE shopkeeper_state_map_bytes gauge\n"
		    "shopkeeper_state_map_bytes{kind=\"size\"} %llu\n"
		    "shopkeeper_state_map_bytes{kind=\"used\"} %llu\n",
		(unsigned long long)sc.map_size, (unsigned long long)sc.map_used);
	sb_addf(sb, "# HELP shopkeeper_state_events_total Events in the state since it was created.\n"
		    "# TYPE shopkeeper_state_events_total counter\n"
		    "shopkeeper_state_events_total %llu\n"
		    "# HELP shopkeeper_state_unknown_item_events_total Of which naming items no model knew.\n"
		    "# TYPE shopkeeper_state_unknown_item_events_total counter\n"
		    "shopkeeper_state_unknown_item_events_total %llu\n",
		(unsigned long long)sc.events, (unsigned long long)sc.unknown_items);
	sb_addf(sb, "# HELP shopkeeper_live_customers Customers with an event log in the state.\n"
		    "# TYPE shopkeeper_live_customers gauge\n"
		    "shopkeeper_live_customers %llu\n"
		    "# HELP shopkeeper_live_customers_max The cap (serve --max-live-customers).\n"
		    "# TYPE shopkeeper_live_customers_max gauge\n"
		    "shopkeeper_live_customers_max %llu\n"
		    "# HELP shopkeeper_live_customer_refused_total Events of new customers refused "
		    "at the cap.\n"
		    "# TYPE shopkeeper_live_customer_refused_total counter\n"
		    "shopkeeper_live_customer_refused_total %lu\n"
		    "# HELP shopkeeper_live_customers_expired_total Idle customers whose events were "
		    "dropped (--live-customer-ttl), since the state was created.\n"
		    "# TYPE shopkeeper_live_customers_expired_total counter\n"
		    "shopkeeper_live_customers_expired_total %llu\n",
		(unsigned long long)sc.live, (unsigned long long)state_live_max(a->state),
		refused_live, (unsigned long long)sc.expired);
	if (a->connections)
		sb_addf(sb, "# HELP shopkeeper_open_connections Client connections open now.\n"
			    "# TYPE shopkeeper_open_connections gauge\n"
			    "shopkeeper_open_connections %u\n", a->connections(a->connections_arg));
	if (a->connections) /* the http layer's own figures (issue 21: bugs 4, 5, 9) */
		http_metrics(a->connections_arg, sb);
	sb_addf(sb, "# HELP shopkeeper_uptime_seconds Seconds since the server started.\n"
		    "# TYPE shopkeeper_uptime_seconds gauge\nshopkeeper_uptime_seconds %.0f\n",
		util_now() - a->started);
	resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
	sb_release(&label);
}
