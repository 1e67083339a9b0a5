/*
 * cli_train: `shopkeeper train`: CSV in, model directory out; and the
 * training flags and pipeline that `eval` shares.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "idmap.h"
#include "ingest.h"
#include "progress.h"
#include "rfm.h"
#include "store.h"
#include "timefmt.h"
#include "train.h"
#include "tune.h"
#include "util.h"

#define CLI_DEFAULT_ALGO ALGO_EASE
#define CLI_DEFAULT_HALF_LIFE 30.0

const char train_flags_usage[] =
	"  --catalog FILE        item_id, title, category, price per item\n"
	"  --customers FILE      customer_id, country, birth_date and other attributes\n"
	"  --exclude-customers FILE  ids to leave out, one per line (the server's\n"
	"                        STATE/erasures.txt: customers erased by DELETE)\n"
	"  --algo NAME           ease (default), cosine, jaccard or lift\n"
	"  --neighbors K         neighbours kept per item (default 100, 1..1000)\n"
	"  --lambda L            EASE regularisation (default 200, > 0)\n"
	"  --half-life DAYS      recency decay, in days (default 30; 0: none)\n"
	"  --as-of DATE          reference time; later rows are left out\n"
	"                        (default: the newest timestamp)\n"
	"  --event-weights W     e.g. view=0.2,cart=0.5,purchase=1 (the default)\n"
	"  --path P              auto (default), dense or sparse item-item computation\n"
	"  --ease-max-items N    EASE covers the N most popular items (default 20000)\n"
	"  --negatives N         EASE keeps each item's N strongest negative weights\n"
	"                        too, and scoring subtracts them (default 0)\n"
	"  --threads N           training threads (default: number of cores)\n"
	"  --columns MAP         header names, e.g. customer_id=CustomerID,item_id=StockCode\n"
	"  --strict              stop at the first bad row instead of skipping it\n"
	"  --no-tune             fit once with the parameters given or the defaults\n"
	"                        (default: tune them on the data's own last days first)\n"
	"  --tune-budget SECONDS time for tuning (default: 5 single fits, at least 60 s;\n"
	"                        steps that would overrun it are left out)\n"
	"  --params-from DIR     take the parameters model DIR was tuned to (or trained\n"
	"                        with), without searching again\n";

enum {
	F_ALGO = TRAIN_FLAG_BASE, F_NEIGH, F_LAMBDA, F_HALF, F_ASOF, F_WEIGHTS, F_PATH, F_EASEMAX,
	F_THREADS, F_COLS, F_STRICT, F_CATALOG, F_CUSTOMERS, F_EXCLUDE, F_NO_TUNE, F_TUNE_BUDGET,
	F_PARAMS_FROM, F_NEGATIVES
};

size_t train_flags_options(struct option *opts)
{
	static const struct option shared[TRAIN_FLAG_COUNT] = {
		{ "algo", required_argument, NULL, F_ALGO },
		{ "neighbors", required_argument, NULL, F_NEIGH },
		{ "lambda", required_argument, NULL, F_LAMBDA },
		{ "half-life", required_argument, NULL, F_HALF },
		{ "as-of", required_argument, NULL, F_ASOF },
		{ "event-weights", required_argument, NULL, F_WEIGHTS },
		{ "path", required_argument, NULL, F_PATH },
		{ "ease-max-items", required_argument, NULL, F_EASEMAX },
		{ "threads", required_argument, NULL, F_THREADS },
		{ "columns", required_argument, NULL, F_COLS },
		{ "strict", no_argument, NULL, F_STRICT },
		{ "catalog", required_argument, NULL, F_CATALOG },
		{ "customers", required_argument, NULL, F_CUSTOMERS },
		{ "exclude-customers", required_argument, NULL, F_EXCLUDE },
		{ "no-tune", no_argument, NULL, F_NO_TUNE },
		{ "tune-budget", required_argument, NULL, F_TUNE_BUDGET },
		{ "params-from", required_argument, NULL, F_PARAMS_FROM },
		{ "negatives", required_argument, NULL, F_NEGATIVES },
	};
	memcpy(opts, shared, sizeof(shared));
	return TRAIN_FLAG_COUNT;
}

void train_flags_init(struct train_flags *f)
{
	memset(f, 0, sizeof(*f));
	/* Chosen by measurement on Online Retail's validation split (README). */
	f->topt.algo = CLI_DEFAULT_ALGO;
	f->topt.half_life_days = CLI_DEFAULT_HALF_LIFE;
	f->topt.neighbors = TRAIN_DEFAULT_NEIGHBORS;
	f->topt.lambda = TRAIN_DEFAULT_LAMBDA;
	f->topt.max_dense_bytes = TRAIN_DEFAULT_MAX_DENSE_BYTES;
	f->topt.ease_max_items = TRAIN_DEFAULT_EASE_MAX_ITEMS;
	f->topt.event_weight[EVENT_VIEW] = TRAIN_DEFAULT_WEIGHT_VIEW;
	f->topt.event_weight[EVENT_CART] = TRAIN_DEFAULT_WEIGHT_CART;
	f->topt.event_weight[EVENT_PURCHASE] = TRAIN_DEFAULT_WEIGHT_PURCHASE;
	rec_params_init(&f->serve);
}

void train_flags_release(struct train_flags *f)
{
	tune_result_free(f->tuning);
	free(f->tuning);
	f->tuning = NULL;
}

/* "view=0.2,cart=0.5,purchase=1": names not given keep their weight. */
static bool parse_weights(const char *spec, float w[EVENT_TYPES])
{
	const char *p = spec;
	while (*p) {
		const char *eq = strchr(p, '=');
		if (!eq)
			return false;
		int e = event_parse(p, (size_t)(eq - p));
		if (e < 0)
			return false;
		char *end;
		double v = strtod(eq + 1, &end);
		if (end == eq + 1 || (*end && *end != ',') || !(v >= 0) || v > 1e6)
			return false;
		w[e] = (float)v;
		p = *end ? end + 1 : end;
	}
	return w[EVENT_VIEW] + w[EVENT_CART] + w[EVENT_PURCHASE] > 0;
}

int train_flags_apply(struct train_flags *f, int code, const char *arg, const char *cmd)
{
	double d;
	uint32_t u;
	switch (code) {
	case F_ALGO: {
		int algo = algo_parse(arg);
		if (algo < 0)
			return cli_usage_error(cmd, "--algo %s: expected cosine, jaccard, lift or ease", arg);
		f->topt.algo = (enum algo)algo;
		f->pinned |= TUNE_PIN_ALGO;
		return 0;
	}
	case F_NEIGH:
		if (!cli_parse_u32(arg, 1, 1000, &f->topt.neighbors))
			return cli_usage_error(cmd, "--neighbors %s: expected an integer from 1 to 1000", arg);
		return 0;
	case F_LAMBDA:
		if (!cli_parse_double(arg, &d) || d <= 0 || d > 1e12)
			return cli_usage_error(cmd, "--lambda %s: expected a number greater than 0", arg);
		f->topt.lambda = (float)d;
		f->pinned |= TUNE_PIN_LAMBDA;
		return 0;
	case F_HALF:
		if (!cli_parse_double(arg, &d) || d < 0 || d > 1e6)
			return cli_usage_error(cmd, "--half-life %s: expected days >= 0 (0: no decay)", arg);
		f->topt.half_life_days = d;
		f->pinned |= TUNE_PIN_HALF_LIFE;
		return 0;
	case F_ASOF:
		if (time_parse(arg, strlen(arg), &f->as_of) != 0)
			return cli_usage_error(cmd, "--as-of %s: expected YYYY-MM-DD[ HH:MM:SS] or Unix seconds", arg);
		f->has_as_of = true;
		return 0;
	case F_WEIGHTS:
		if (!parse_weights(arg, f->topt.event_weight))
			return cli_usage_error(cmd, "--event-weights %s: expected e.g. view=0.2,cart=0.5,purchase=1 "
					       "(weights >= 0, not all 0)", arg);
		f->pinned |= TUNE_PIN_WEIGHTS;
		return 0;
	case F_PATH:
		if (strcmp(arg, "auto") == 0)
			f->topt.path = PATH_AUTO;
		else if (strcmp(arg, "dense") == 0)
			f->topt.path = PATH_DENSE;
		else if (strcmp(arg, "sparse") == 0)
			f->topt.path = PATH_SPARSE;
		else
			return cli_usage_error(cmd, "--path %s: expected auto, dense or sparse", arg);
		return 0;
	case F_EASEMAX:
		if (!cli_parse_u32(arg, 2, 46340, &f->topt.ease_max_items))
			return cli_usage_error(cmd, "--ease-max-items %s: expected an integer from 2 to 46340", arg);
		return 0;
	case F_THREADS:
		if (!cli_parse_u32(arg, 1, 64, &u))
			return cli_usage_error(cmd, "--threads %s: expected an integer from 1 to 64", arg);
		f->topt.threads = u;
		return 0;
	case F_COLS: {
		const char *names[COL_COUNT];
		strbuf store = STRBUF_INIT, err = STRBUF_INIT;
		int bad = ingest_parse_columns(arg, names, &store, &err);
		int ret = bad ? cli_usage_error(cmd, "%s", err.buf) : 0;
		sb_release(&store);
		sb_release(&err);
		f->columns = arg;
		return ret;
	}
	case F_STRICT:
		f->strict = true;
		return 0;
	case F_CATALOG:
		f->catalog = arg;
		return 0;
	case F_CUSTOMERS:
		f->customers = arg;
		return 0;
	case F_EXCLUDE:
		f->exclude = arg;
		return 0;
	case F_NO_TUNE:
		f->no_tune = true;
		return 0;
	case F_TUNE_BUDGET:
		if (!cli_parse_double(arg, &d) || !(d > 0) || d > 1e6)
			return cli_usage_error(cmd, "--tune-budget %s: expected seconds > 0", arg);
		f->tune_budget = d;
		return 0;
	case F_PARAMS_FROM:
		f->params_from = arg;
		return 0;
	case F_NEGATIVES:
		if (!cli_parse_u32(arg, 0, 1000, &f->topt.negatives))
			return cli_usage_error(cmd, "--negatives %s: expected an integer from 0 to 1000", arg);
		f->pinned |= TUNE_PIN_NEGATIVES;
		f->serve.negatives_used = f->topt.negatives;
		return 0;
	}
	return 1;
}

int train_fit(const char *path, struct train_flags *f, dataset *ds, train_result *r,
	      int64_t *as_of, double *secs_ingest, strbuf *err)
{
	double t0 = util_monotonic();
	idmap *exclude = NULL;
	int ret = -1;
	memset(r, 0, sizeof(*r));
	if (f->exclude && ingest_id_list(f->exclude, &exclude, err) != 0)
		return -1;
	ingest_options iopt = { f->columns, f->strict, 5, stderr, "ingest", f->has_as_of, f->as_of,
				exclude };
	if (ingest_read(path, &iopt, ds, err) != 0)
		goto out;
	iopt.label = "catalog";
	iopt.has_until = false;
	if (f->catalog && ingest_catalog(f->catalog, &iopt, ds, err) != 0)
		goto out;
	iopt.label = "customers";
	if (f->customers && ingest_customers(f->customers, &iopt, ds, err) != 0)
		goto out;
	*secs_ingest = util_monotonic() - t0;
	*as_of = f->has_as_of ? f->as_of : ds->has_ts ? ds->ts_max : (int64_t)util_now();
	f->topt.as_of = *as_of;
	if (!f->no_tune || f->params_from) {
		tune_options to = { .budget = f->tune_budget, .setup_secs = *secs_ingest,
				    .pinned = f->pinned, .serve = f->serve,
				    .verbose = progress_enabled() };
		f->tuning = xcalloc(1, sizeof(*f->tuning));
		int rc = f->params_from ? tune_from_model(f->params_from, &f->topt, &to, f->tuning, err)
					: tune_run(ds, &f->topt, &to, f->tuning, err);
		if (rc != 0)
			goto out;
		f->topt = f->tuning->chosen;
	}
	if (train_run(ds, &f->topt, r, err) != 0) {
		strbuf msg = STRBUF_INIT;
		sb_addf(&msg, "%s: %s", path, err->buf);
		sb_reset(err);
		sb_add(err, msg.buf, msg.len);
		sb_release(&msg);
		goto out;
	}
	ret = 0;
out:
	idmap_free(exclude);
	return ret;
}

/* A float as the short decimal people wrote (0.2, not 0.200000003). */
static double tidy(float f)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%g", (double)f);
	return strtod(buf, NULL);
}

static json_t *cuts_json(const float c[4])
{
	return json_pack("[f,f,f,f]", tidy(c[0]), tidy(c[1]), tidy(c[2]), tidy(c[3]));
}

static char *meta_json(const struct train_flags *f, const dataset *ds, const train_result *r,
		       const rfm_cuts *cuts, int64_t as_of, double created)
{
	char as_of_s[TIME_FMT_LEN], created_s[TIME_FMT_LEN], id[64];
	time_format(as_of, as_of_s);
	time_format((int64_t)created, created_s);
	/* "cosine-20261122T101500Z-1a2b3c": readable, sortable, unique enough
	 * for two runs in the same second. */
	char compact[TIME_FMT_LEN];
	size_t k = 0;
	for (const char *p = created_s; *p; p++)
		if (*p != '-' && *p != ':')
			compact[k++] = *p;
	compact[k] = '\0';
	char seed[64];
	snprintf(seed, sizeof(seed), "%.9f-%zu-%u", created, ds->n_rows, r->n_items);
	snprintf(id, sizeof(id), "%s-%s-%06llx", algo_name(f->topt.algo), compact,
		 (unsigned long long)(idmap_hash(seed, strlen(seed)) & 0xffffff));

	const train_options *o = &f->topt;
	json_t *params = json_pack("{s:i, s:f, s:f, s:{s:f, s:f, s:f}, s:s, s:i}", "neighbors",
				   (json_int_t)o->neighbors, "lambda", tidy(o->lambda), "half_life_days",
				   o->half_life_days, "event_weights", "view",
				   tidy(o->event_weight[EVENT_VIEW]), "cart",
				   tidy(o->event_weight[EVENT_CART]), "purchase",
				   tidy(o->event_weight[EVENT_PURCHASE]), "path", train_path_name(r->path),
				   "ease_items", (json_int_t)r->ease_items);
	json_t *rfm = json_pack("{s:o, s:o, s:o}", "recency_days", cuts_json(cuts->recency_days),
				"frequency", cuts_json(cuts->frequency), "monetary",
				cuts_json(cuts->monetary));
	json_t *root = json_pack(
		"{s:i, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"format_version", MODEL_FORMAT_VERSION, "byte_order", "little", "model_id", id,
		"algorithm", algo_name(o->algo), "as_of", as_of_s, "created", created_s,
		"parameters", params, "rfm", rfm, "neighbors", (json_int_t)r->k, "items",
		(json_int_t)r->n_items, "customers", (json_int_t)r->n_customers, "interactions",
		(json_int_t)r->nnz, "rows_read", (json_int_t)ds->records, "rows_skipped",
		(json_int_t)ds->skipped, "categories",
		(json_int_t)(ds->categories ? idmap_count(ds->categories) : 0));
	if (root && r->k_neg) {
		/* Negative weights in the lists: format 4 (store.h). */
		json_object_set_new(root, "format_version", json_integer(MODEL_FORMAT_VERSION_NEGATIVES));
		json_object_set_new(params, "negatives", json_integer(r->k_neg));
	}
	if (root && f->tuning)
		json_object_set_new(root, "tuning", tune_result_json(f->tuning));
	char *s = root ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(root);
	return s;
}

/* A string table over an idmap's names. */
static string_table names_table(const idmap *m, const char ***strs, size_t **lens)
{
	uint32_t n = m ? idmap_count(m) : 0;
	*strs = xmallocarray(n ? n : 1, sizeof(**strs));
	*lens = xmallocarray(n ? n : 1, sizeof(**lens));
	for (uint32_t i = 0; i < n; i++)
		(*strs)[i] = idmap_name(m, i, &(*lens)[i]);
	return (string_table){ *strs, *lens, n };
}

static int write_items(model_writer *w, const dataset *ds, const train_result *r, strbuf *err)
{
	uint32_t ni = r->n_items;
	const char **ids, **cats;
	size_t *id_lens, *cat_lens;
	string_table idt = names_table(ds->items, &ids, &id_lens);
	string_table catt = names_table(ds->categories, &cats, &cat_lens);
	const char **titles = xcalloc(ni ? ni : 1, sizeof(*titles));
	size_t *title_lens = xcalloc(ni ? ni : 1, sizeof(*title_lens));
	uint32_t *category = xmallocarray(ni ? ni : 1, sizeof(*category));
	float *price = xmallocarray(ni ? ni : 1, sizeof(*price));
	for (uint32_t i = 0; i < ni; i++) {
		bool have = ds->item_title && i < ds->items_cap;
		titles[i] = have ? ds->item_title[i] : NULL;
		title_lens[i] = titles[i] ? strlen(titles[i]) : 0;
		category[i] = have ? ds->item_category[i] : UINT32_MAX;
		price[i] = have ? ds->item_price[i] : -1.0f;
	}
	string_table tt = { titles, title_lens, ni };
	int rc = model_writer_put_items(w, &idt, r->popularity, r->recent, err);
	if (!rc)
		rc = model_writer_put_catalog(w, &tt, &catt, category, price, err);
	free(ids);
	free(id_lens);
	free(cats);
	free(cat_lens);
	free(titles);
	free(title_lens);
	free(category);
	free(price);
	return rc;
}

int train_write(const char *out, const struct train_flags *f, const dataset *ds,
		const train_result *r, int64_t as_of, strbuf *err)
{
	model_writer *w = NULL;
	uint32_t ni = r->n_items, nc = r->n_customers;
	rfm_figures *figs = xmallocarray(nc ? nc : 1, sizeof(*figs));
	rfm_cuts cuts;
	rfm_compute(ds, figs);
	rfm_cut_points(figs, nc, as_of, &cuts);
	char *meta = meta_json(f, ds, r, &cuts, as_of, util_now());
	int rc = -1;
	if (!meta) {
		sb_adds(err, "cannot build the meta record");
		goto out;
	}
	uint64_t hint = (uint64_t)ni * (r->k * sizeof(neighbor) + 128) +
			(uint64_t)nc * (sizeof(customer_summary) + 96) +
			r->hist_off[nc] * sizeof(history_entry);
	for (uint32_t c = 0; ds->customer_attrs && c < nc && c < ds->customers_cap; c++)
		hint += ds->customer_attrs[c] ? strlen(ds->customer_attrs[c]) : 0;
	if (model_writer_open(out, hint, &w, err) != 0)
		goto out;
	rc = model_writer_put_meta(w, meta, err);
	if (!rc)
		rc = write_items(w, ds, r, err);

	if (!rc)
		rc = model_writer_put_neighbors(w, r->nbrs, r->k, r->n_nbrs, ni, err);
	progress prog;
	progress_begin(&prog, "write", "customers", nc);
	for (uint32_t c = 0; c < nc && !rc; c++) {
		size_t len;
		const char *id = idmap_name(ds->customers, c, &len);
		bool have = ds->customer_attrs && c < ds->customers_cap;
		const char *attrs = have ? ds->customer_attrs[c] : NULL;
		customer_summary sum = {
			.n_hist = (uint32_t)(r->hist_off[c + 1] - r->hist_off[c]),
			.attrs_len = attrs ? (uint32_t)strlen(attrs) : 0,
			.first_purchase = figs[c].first_purchase,
			.last_purchase = figs[c].last_purchase,
			.frequency = figs[c].frequency,
			.monetary = figs[c].monetary,
			.birthday = have ? ds->customer_birthday[c] : 0,
		};
		rc = model_writer_put_customer(w, id, len, &sum, r->hist + r->hist_off[c], attrs, err);
		progress_update(&prog, c);
	}
	progress_end(&prog);
	if (rc) {
		model_writer_abort(w);
		rc = -1;
		goto out;
	}
	rc = model_writer_finish(w, err) == 0 ? 0 : -1;
out:
	free(meta);
	free(figs);
	return rc;
}

/* ---- the train command -------------------------------------------------- */

static const char train_usage_head[] =
	"usage: shopkeeper train --interactions FILE --out DIR [options]\n"
	"\n"
	"Reads an interactions CSV (customer_id, item_id, and optionally timestamp,\n"
	"event, quantity, price) and writes a model to DIR/model.mdb.\n"
	"\n"
	"  --interactions FILE   CSV file; '-' for stdin; gzip is detected\n"
	"  --out DIR             model directory (created; an old model there is replaced)\n";
static const char train_usage_tail[] =
	"  --dump-neighbors FILE each item's neighbours as text, one line per item:\n"
	"                        ITEM<TAB>NEIGHBOR:SCORE,... best first (for benchmarks)\n"
	"  --quiet               no summary on stderr\n";

/* Writes every item's neighbours as "item\tnbr:score,nbr:score,...\n". */
static int dump_neighbors(const char *path, const dataset *ds, const train_result *r,
			  strbuf *err)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		sb_addf(err, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	for (uint32_t i = 0; i < r->n_items; i++) {
		size_t len;
		const char *id = idmap_name(ds->items, i, &len);
		fwrite(id, 1, len, f);
		fputc('\t', f);
		const neighbor *nb = r->nbrs + (size_t)i * r->k;
		for (uint32_t j = 0; j < r->n_nbrs[i]; j++) {
			const char *nid = idmap_name(ds->items, nb[j].item, &len);
			if (j)
				fputc(',', f);
			fwrite(nid, 1, len, f);
			fprintf(f, ":%.6g", (double)nb[j].score);
		}
		fputc('\n', f);
	}
	if (ferror(f) | (fclose(f) != 0)) {
		sb_addf(err, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void print_summary(const char *out, const struct train_flags *f, const dataset *ds,
			  const train_result *r, const double secs[2])
{
	strbuf path = STRBUF_INIT;
	sb_addf(&path, "%s/%s", out, MODEL_FILE);
	struct stat st;
	double mb = stat(path.buf, &st) == 0 ? (double)st.st_size / 1048576.0 : 0;
	fprintf(stderr, "rows       %llu read, %llu kept, %llu skipped",
		(unsigned long long)ds->records, (unsigned long long)ds->n_rows,
		(unsigned long long)ds->skipped);
	bool first = true;
	for (int k = 0; k < SKIP_REASONS; k++) {
		if (!ds->skipped_by[k])
			continue;
		fprintf(stderr, "%s%s: %llu", first ? " (" : ", ", skip_reason_name(k),
			(unsigned long long)ds->skipped_by[k]);
		first = false;
	}
	fprintf(stderr, "%s; %llu returns\n", first ? "" : ")", (unsigned long long)ds->returns);
	if (f->catalog)
		fprintf(stderr, "catalog    %llu rows, %llu skipped; %llu items not in the interactions\n",
			(unsigned long long)ds->catalog_stats.records,
			(unsigned long long)ds->catalog_stats.skipped,
			(unsigned long long)ds->catalog_stats.added);
	if (f->customers)
		fprintf(stderr, "customers  %llu rows, %llu skipped; %llu customers with no interactions\n",
			(unsigned long long)ds->customer_stats.records,
			(unsigned long long)ds->customer_stats.skipped,
			(unsigned long long)ds->customer_stats.added);
	fprintf(stderr, "data       %u customers, %u items, %llu customer-item pairs\n",
		r->n_customers, r->n_items, (unsigned long long)r->nnz);
	fprintf(stderr, "model      %s, %u neighbours per item, %s path%s", algo_name(f->topt.algo),
		r->k, train_path_name(r->path),
		r->path == PATH_DENSE ? (r->gram_sparse ? " (G by sparse rows)" : " (G by ssyrk)") : "");
	if (f->topt.algo == ALGO_EASE && r->ease_items < r->n_items)
		fprintf(stderr, ", EASE over the %u most popular items", r->ease_items);
	fputc('\n', stderr);
	fprintf(stderr, "seconds    ingest %.2f, histories %.2f, gram %.2f, neighbors %.2f, write %.2f\n",
		secs[0], r->secs_matrix, r->secs_gram, r->secs_similarity, secs[1]);
	fprintf(stderr, "memory     peak RSS %.0f MiB\n", (double)util_peak_rss() / 1048576.0);
	fprintf(stderr, "written    %s (%.1f MiB)\n", path.buf, mb);
	if (f->tuning)
		tune_print(f->tuning, stderr);
	sb_release(&path);
}

int cmd_train(int argc, char **argv)
{
	enum { O_INTER = 1, O_OUT, O_QUIET, O_HELP, O_DUMP };
	struct option opts[TRAIN_FLAG_COUNT + 6] = {
		{ "interactions", required_argument, NULL, O_INTER },
		{ "out", required_argument, NULL, O_OUT },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "help", no_argument, NULL, O_HELP },
		{ "dump-neighbors", required_argument, NULL, O_DUMP },
	};
	size_t nopt = 5 + train_flags_options(opts + 5);
	memset(&opts[nopt], 0, sizeof(opts[nopt]));

	struct train_flags f;
	const char *interactions = NULL, *out = NULL, *dump = NULL;
	bool quiet = false;
	int c, rc;
	train_flags_init(&f);
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_INTER: interactions = optarg; break;
		case O_OUT: out = optarg; break;
		case O_QUIET: quiet = true; break;
		case O_DUMP: dump = optarg; break;
		case 'h':
		case O_HELP:
			fputs(train_usage_head, stdout);
			fputs(train_flags_usage, stdout);
			fputs(train_usage_tail, stdout);
			return EXIT_OK;
		default:
			rc = train_flags_apply(&f, c, optarg, "train");
			if (rc == 1)
				return cli_usage_error("train", "unknown or incomplete option '%s'", argv[optind - 1]);
			if (rc)
				return rc;
		}
	}
	if (optind < argc)
		return cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
	if (!interactions)
		return cli_usage_error("train", "--interactions FILE is required");
	if (!out)
		return cli_usage_error("train", "--out DIR is required");

	strbuf err = STRBUF_INIT;
	dataset ds;
	train_result r;
	int64_t as_of;
	double secs[2] = { 0, 0 };
	int ret = EXIT_RUNTIME;
	dataset_init(&ds);
	if (train_fit(interactions, &f, &ds, &r, &as_of, &secs[0], &err) != 0) {
		cli_fail("train", "%s", err.buf);
		goto out;
	}
	double t = util_monotonic();
	if (train_write(out, &f, &ds, &r, as_of, &err) != 0) {
		cli_fail("train", "%s", err.buf);
		goto out;
	}
	secs[1] = util_monotonic() - t;
	if (dump && dump_neighbors(dump, &ds, &r, &err) != 0) {
		cli_fail("train", "%s", err.buf);
		goto out;
	}
	if (!quiet)
		print_summary(out, &f, &ds, &r, secs);
	ret = EXIT_OK;
out:
	train_flags_release(&f);
	train_result_free(&r);
	dataset_free(&ds);
	sb_release(&err);
	return ret;
}
