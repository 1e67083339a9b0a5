/*
 * tune_record: a tuning run as people and later runs read it: the meta
 * record's "tuning" member, the table printed at the end of training, and
 * `train --params-from`, which takes a tuned model's choice back (tune.h).
 */
#include "tune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "timefmt.h"
#include "util.h"

/* A float as the short decimal people wrote (0.2, not 0.200000003). */
static double tidy(double f)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%.6g", f);
	return strtod(buf, NULL);
}

static json_t *weights_json(const float w[EVENT_TYPES])
{
	return json_pack("{s:f, s:f, s:f}", "view", tidy(w[EVENT_VIEW]), "cart",
			 tidy(w[EVENT_CART]), "purchase", tidy(w[EVENT_PURCHASE]));
}

static json_t *serving_json(const rec_params *k)
{
	return json_pack("{s:I, s:f, s:I, s:f, s:f, s:s}", "neighbors_used",
			 (json_int_t)k->neighbors_used, "cutoff", tidy(k->cutoff), "negatives_used",
			 (json_int_t)k->negatives_used, "content_weight", tidy(k->content_weight),
			 "content_count", tidy(k->content_count), "history_weight",
			 rec_history_weight_name(k->history_weight));
}

json_t *tune_result_json(const tune_result *r)
{
	const train_options *o = &r->chosen;
	const char *status = r->from_model ? "params-from" : r->tuned ? "tuned" : "defaults";
	json_t *root = json_pack(
		"{s:s, s:s, s:{s:s, s:f, s:f, s:o, s:I, s:I}, s:o, s:f, s:f, s:b}",
		"status", status, "reason", r->reason, "chosen", "algorithm", algo_name(o->algo),
		"lambda", tidy(o->lambda > 0 ? o->lambda : TRAIN_DEFAULT_LAMBDA), "half_life_days",
		tidy(o->half_life_days), "event_weights", weights_json(o->event_weight), "neighbors",
		(json_int_t)(o->neighbors ? o->neighbors : TRAIN_DEFAULT_NEIGHBORS), "negatives",
		(json_int_t)o->negatives, "serving", serving_json(&r->serve), "seconds",
		tidy(r->secs), "budget_seconds", tidy(r->budget), "budget_hit", r->budget_hit);
	if (!root)
		return NULL;
	if (r->from_model) {
		json_object_set_new(root, "from_model", json_string(r->from_model));
		return root;
	}
	json_t *split = json_pack("{s:s, s:f, s:I, s:I}", "kind", r->by_time ? "time" : "random",
				  "holdout_share", tidy(r->holdout_share), "train_rows",
				  (json_int_t)r->train_rows, "customers", (json_int_t)r->customers);
	if (split && r->eligible > r->customers) /* a sample was scored */
		json_object_set_new(split, "eligible_customers", json_integer(r->eligible));
	if (r->search_ease_items) /* the search's EASE fits were smaller */
		json_object_set_new(root, "search_ease_items", json_integer(r->search_ease_items));
	if (split && r->by_time) {
		char cut[TIME_FMT_LEN];
		time_format(r->cut, cut);
		json_object_set_new(split, "cut", json_string(cut));
	}
	json_object_set_new(root, "split", split ? split : json_null());
	json_t *cands = json_array();
	for (uint32_t i = 0; i < r->n_cands; i++) {
		const tune_candidate *c = &r->cands[i];
		json_t *o2 = json_pack(
			"{s:s, s:s, s:f, s:f, s:o, s:I, s:f, s:I, s:s, s:f, s:f, s:f, s:f, s:f, s:b}",
			"step", c->step, "algorithm", algo_name(c->algo), "lambda",
			tidy(c->algo == ALGO_EASE ? c->lambda : 0), "half_life_days",
			tidy(c->half_life_days), "event_weights", weights_json(c->event_weight),
			"neighbors_used", (json_int_t)c->serve.neighbors_used, "cutoff",
			tidy(c->serve.cutoff), "negatives_used", (json_int_t)c->serve.negatives_used,
			"history_weight", rec_history_weight_name(c->serve.history_weight),
			"ndcg", tidy(c->ndcg), "ndcg_se", tidy(c->ndcg_se), "recall", tidy(c->recall),
			"coverage", tidy(c->coverage), "seconds", tidy(c->secs), "chosen",
			r->tuned && i == r->best);
		if (o2 && c->serve.content_weight > 0) {
			json_object_set_new(o2, "content_weight", json_real(tidy(c->serve.content_weight)));
			json_object_set_new(o2, "content_count", json_real(tidy(c->serve.content_count)));
		}
		if (o2)
			json_array_append_new(cands, o2);
	}
	json_object_set_new(root, "candidates", cands);
	return root;
}

void tune_print(const tune_result *r, FILE *f)
{
	if (r->from_model) {
		fprintf(f, "tuning     parameters from model %s: ", r->from_model);
	} else if (r->n_cands) {
		char sample[96] = "";
		if (r->eligible > r->customers)
			snprintf(sample, sizeof(sample), " (a fixed sample of the %u with later purchases)",
				 r->eligible);
		fprintf(f, "tuning     %u candidates in %.1f s (budget %.1f s%s), split by %s: %u "
			   "customers%s, %.0f%% held out\n",
			r->n_cands, r->secs, r->budget, r->budget_hit ? ", some steps left out" : "",
			r->by_time ? "time" : "random holdout", r->customers, sample,
			100 * r->holdout_share);
		if (r->search_ease_items)
			fprintf(f, "tuning     EASE candidates over the %u most popular items (the "
				   "final fit over all it may use)\n", r->search_ease_items);
		fprintf(f, "  #  step      algorithm  λ       half-life    used cutoff neg history "
			   "nDCG@10 ±se      recall  coverage  seconds\n");
		for (uint32_t i = 0; i < r->n_cands; i++) {
			const tune_candidate *c = &r->cands[i];
			char lam[16] = "-", hl[16] = "none";
			if (c->algo == ALGO_EASE)
				snprintf(lam, sizeof(lam), "%g", (double)c->lambda);
			if (c->half_life_days > 0)
				snprintf(hl, sizeof(hl), "%.1f d", c->half_life_days);
			fprintf(f, "%c%3u %-9s %-10s %-7s %-11s %5u %-6g %3u %-7s %.4f ±%.4f  %.4f  %.3f  %7.2f\n",
				r->tuned && i == r->best ? '*' : ' ', i + 1, c->step,
				algo_name(c->algo), lam, hl, c->serve.neighbors_used,
				(double)c->serve.cutoff, c->serve.negatives_used,
				rec_history_weight_name(c->serve.history_weight), c->ndcg, c->ndcg_se,
				c->recall, c->coverage, c->secs);
			if (strcmp(c->step, "blend") == 0) /* hybrid scoring's knobs */
				fprintf(f, "      content weight %g, count %g\n",
					(double)c->serve.content_weight, (double)c->serve.content_count);
		}
		fprintf(f, "tuning     %s\n", r->reason);
	} else {
		fprintf(f, "tuning     %s\n", r->reason);
	}
	const train_options *o = &r->chosen;
	if (r->from_model || r->tuned) {
		if (!r->from_model)
			fprintf(f, "chosen     ");
		fprintf(f, "%s", algo_name(o->algo));
		if (o->algo == ALGO_EASE)
			fprintf(f, " λ %g", (double)o->lambda);
		if (o->half_life_days > 0)
			fprintf(f, ", half-life %.1f days", o->half_life_days);
		else
			fprintf(f, ", no decay");
		fprintf(f, ", %u neighbours kept", o->neighbors);
		if (o->negatives)
			fprintf(f, " + %u negative", o->negatives);
		fprintf(f, "; serving: %u used, cutoff %g, history weight %s", r->serve.neighbors_used,
			(double)r->serve.cutoff, rec_history_weight_name(r->serve.history_weight));
		if (r->serve.content_weight > 0)
			fprintf(f, ", content weight %g, count %g", (double)r->serve.content_weight,
				(double)r->serve.content_count);
		fputc('\n', f);
	}
}

/* Reads a number member into *out when it is there and sane. */
static void get_num(json_t *o, const char *key, double lo, double hi, double *out)
{
	json_t *v = json_object_get(o, key);
	if (json_is_number(v) && json_number_value(v) >= lo && json_number_value(v) <= hi)
		*out = json_number_value(v);
}

int tune_from_model(const char *dir, const train_options *base, const tune_options *opt,
		    tune_result *out, strbuf *err)
{
	memset(out, 0, sizeof(*out));
	out->chosen = *base; /* tuned false: the defaults until the model's are read */
	rec_params_init(&out->serve);
	model *m = NULL;
	strbuf msg = STRBUF_INIT;
	if (model_open(dir, &m, &msg) != 0) {
		sb_addf(err, "--params-from %s: %s", dir, msg.buf);
		sb_release(&msg);
		return -1;
	}
	sb_release(&msg);
	const model_info *info = model_get_info(m);
	json_t *root = json_loads(info->meta_json, 0, NULL);
	json_t *tuning = json_object_get(root, "tuning");
	json_t *chosen = json_object_get(tuning, "chosen");
	json_t *params = chosen ? chosen : json_object_get(root, "parameters");
	const char *algo = json_string_value(
		json_object_get(chosen ? chosen : root, "algorithm"));
	train_options *o = &out->chosen;
	unsigned pin = opt->pinned;
	if (algo && algo_parse(algo) >= 0 && !(pin & TUNE_PIN_ALGO))
		o->algo = (enum algo)algo_parse(algo);
	double d;
	if (!(pin & TUNE_PIN_LAMBDA)) {
		d = o->lambda;
		get_num(params, "lambda", 1e-6, 1e12, &d);
		o->lambda = (float)d;
	}
	if (!(pin & TUNE_PIN_HALF_LIFE))
		get_num(params, "half_life_days", 0, 1e6, &o->half_life_days);
	json_t *w = json_object_get(params, "event_weights");
	const char *names[EVENT_TYPES] = { "view", "cart", "purchase" };
	for (int e = 0; e < EVENT_TYPES && !(pin & TUNE_PIN_WEIGHTS); e++) {
		d = o->event_weight[e];
		get_num(w, names[e], 0, 1e6, &d);
		o->event_weight[e] = (float)d;
	}
	d = o->neighbors;
	get_num(params, "neighbors", 1, 100000, &d);
	o->neighbors = (uint32_t)d;
	d = o->negatives;
	get_num(params, "negatives", 0, 100000, &d);
	o->negatives = (uint32_t)d;
	rec_params_init(&out->serve);
	if (info->serve_neighbors_used)
		out->serve.neighbors_used = info->serve_neighbors_used;
	if (info->serve_cutoff >= 0)
		out->serve.cutoff = info->serve_cutoff;
	if (info->serve_content_weight >= 0)
		out->serve.content_weight = info->serve_content_weight;
	if (info->serve_content_count >= 0)
		out->serve.content_count = info->serve_content_count;
	const char *hw = info->serve_history_weight;
	rec_history_weight_parse(hw, strlen(hw), &out->serve.history_weight); /* else the default */
	out->tuned = true;
	out->from_model = xstrdup(info->model_id);
	snprintf(out->reason, sizeof(out->reason), "parameters of model %s (%s), not searched again",
		 info->model_id, chosen ? "its tuning choice" : "its parameters");
	json_decref(root);
	model_close(m);
	return 0;
}
