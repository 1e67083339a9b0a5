/*
 * cli_train: `shopkeeper train`: CSV in, model directory out; and the
 * training flags and pipeline that `eval` shares.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "idmap.h"
#include "ingest.h"
#include "progress.h"
#include "rfm.h"
#include "model_writer.h"
#include "precompute.h"
#include "timefmt.h"
#include "train.h"
#include "eventlog.h"
#include "train_events.h"
#include "tune.h"
#include "util.h"

#define CLI_DEFAULT_ALGO ALGO_EASE
#define CLI_DEFAULT_HALF_LIFE 30.0

const char train_flags_usage[] =
	"  --catalog FILE        item_id, title, category, price per item\n"
	"  --customers FILE      customer_id, country, birth_date and other attributes\n"
	"  --exclude-customers FILE  ids to leave out, one per line (the server's\n"
	"                        STATE/erasures.txt: customers erased by DELETE)\n"
	"  --exclude-items FILE  item ids never to recommend, one per line (fees,\n"
	"                        postage, adjustments): in no answer and no reason\n"
	"                        for one; like the catalog column recommendable=false\n"
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
	"  --content-tokens T    how catalog titles are compared: char3 (character\n"
	"                        3-grams, the default) or words\n"
	"  --columns MAP         header names, e.g. customer_id=CustomerID,item_id=StockCode;\n"
	"                        used for every file, where a file lacks a mapped header\n"
	"                        its standard name (item_id) is read instead\n"
	"  --catalog-columns MAP     header names of the catalog file only (win there)\n"
	"  --customers-columns MAP   header names of the customers file only (win there)\n"
	"  --strict              stop at the first bad row instead of skipping it\n"
	"  --no-tune             fit once with the parameters given or the defaults\n"
	"                        (default: tune them on the data's own last days first)\n"
	"  --tune-budget SECONDS time for tuning (default: 5 single fits, at least 60 s;\n"
	"                        steps that would overrun it are left out). Large\n"
	"                        data: the search scores a fixed sample of 50,000\n"
	"                        validation customers and fits EASE over the 10,000\n"
	"                        most popular items (the final fit: --ease-max-items)\n"
	"  --params-from DIR     take the parameters model DIR was tuned to (or trained\n"
	"                        with), without searching again\n";

enum {
	F_ALGO = TRAIN_FLAG_BASE, F_NEIGH, F_LAMBDA, F_HALF, F_ASOF, F_WEIGHTS, F_PATH, F_EASEMAX,
	F_THREADS, F_COLS, F_STRICT, F_CATALOG, F_CUSTOMERS, F_EXCLUDE, F_CATALOG_COLS,
	F_CUSTOMERS_COLS, F_EXCLUDE_ITEMS, F_NO_TUNE, F_TUNE_BUDGET, F_PARAMS_FROM, F_NEGATIVES,
	F_CONTENT_TOKENS
};

static void train_flags_init(struct train_flags *f);

void train_flags_begin(struct train_flags *f, struct option *opts, size_t own)
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
		{ "catalog-columns", required_argument, NULL, F_CATALOG_COLS },
		{ "customers-columns", required_argument, NULL, F_CUSTOMERS_COLS },
		{ "exclude-items", required_argument, NULL, F_EXCLUDE_ITEMS },
		{ "no-tune", no_argument, NULL, F_NO_TUNE },
		{ "tune-budget", required_argument, NULL, F_TUNE_BUDGET },
		{ "params-from", required_argument, NULL, F_PARAMS_FROM },
		{ "negatives", required_argument, NULL, F_NEGATIVES },
		{ "content-tokens", required_argument, NULL, F_CONTENT_TOKENS },
	};
	memcpy(opts + own, shared, sizeof(shared));
	memset(&opts[own + TRAIN_FLAG_COUNT], 0, sizeof(*opts));
	train_flags_init(f);
	opterr = 0;
	optind = 1;
}

static void train_flags_init(struct train_flags *f)
{
	memset(f, 0, sizeof(*f));
	/* Chosen by measurement on Online Retail's validation split (bench/README.md,
	 * "Recommendation quality"). */
	f->topt.algo = CLI_DEFAULT_ALGO;
	f->topt.half_life_days = CLI_DEFAULT_HALF_LIFE;
	f->topt.neighbors = TRAIN_DEFAULT_NEIGHBORS;
	f->topt.lambda = TRAIN_DEFAULT_LAMBDA;
	f->topt.max_dense_bytes = TRAIN_DEFAULT_MAX_DENSE_BYTES;
	f->topt.ease_max_items = TRAIN_DEFAULT_EASE_MAX_ITEMS;
	/* 3-grams found more of Online Retail's new arrivals than words
	 * (bench/README.md, "New arrivals"). */
	f->topt.content_opt.tokens = CONTENT_CHAR3;
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

int train_flags_apply(struct train_flags *f, int code, const char *arg, const char *cmd,
		      const char *given)
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
	case F_COLS:
	case F_CATALOG_COLS:
	case F_CUSTOMERS_COLS: {
		const char *flag = code == F_COLS ? "--columns"
				   : code == F_CATALOG_COLS ? "--catalog-columns" : "--customers-columns";
		strbuf err = STRBUF_INIT;
		int ret = ingest_check_columns(flag, arg, &err) ? cli_usage_error(cmd, "%s", err.buf) : 0;
		sb_release(&err);
		*(code == F_COLS ? &f->columns
		  : code == F_CATALOG_COLS ? &f->catalog_columns : &f->customers_columns) = arg;
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
	case F_EXCLUDE_ITEMS:
		f->exclude_items = arg;
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
	case F_CONTENT_TOKENS: {
		int t = content_tokens_parse(arg);
		if (t < 0)
			return cli_usage_error(cmd, "--content-tokens %s: expected words or char3", arg);
		f->topt.content_opt.tokens = (enum content_tokens)t;
		return 0;
	}
	case F_NEGATIVES:
		if (!cli_parse_u32(arg, 0, 1000, &f->topt.negatives))
			return cli_usage_error(cmd, "--negatives %s: expected an integer from 0 to 1000", arg);
		f->pinned |= TUNE_PIN_NEGATIVES;
		f->serve.negatives_used = f->topt.negatives;
		return 0;
	}
	return cli_usage_error(cmd, "unknown or incomplete option '%s'", given);
}

/* Items more than half of all customers have (and still recommendable)
 * are more likely postage or a fee than a product: POSTAGE is in the top
 * 10 of 409 of Online Retail's 4,371 customers when nothing is left out.
 * Names the first few; the caller decides. */
#define EVERYBODY_SHOWN 5
/* Below this many customers, a good product half of them bought is no
 * surprise (a fixture, a tiny demo): no warning. */
#define EVERYBODY_MIN_CUSTOMERS 100
static void warn_everybodys_items(const dataset *ds, const train_result *r)
{
	strbuf names = STRBUF_INIT;
	uint32_t found = 0;
	if (r->n_customers < EVERYBODY_MIN_CUSTOMERS)
		return;
	for (uint32_t i = 0; i < r->n_items; i++) {
		if (!(r->popularity[i] * 2.0f > (float)r->n_customers))
			continue;
		if (ds->item_flags && i < ds->items_cap &&
		    (ds->item_flags[i] & MODEL_ITEM_NOT_RECOMMENDABLE))
			continue;
		if (found++ < EVERYBODY_SHOWN) {
			size_t len;
			const char *id = idmap_name(ds->items, i, &len);
			sb_addf(&names, "%s%.*s (%.0f%%)", found > 1 ? ", " : "", (int)len, id,
				100.0 * r->popularity[i] / (r->n_customers ? r->n_customers : 1));
		}
	}
	if (found)
		fprintf(stderr, "train: warning: %u item%s bought by more than half of all "
				"customers: %s%s. If %s postage, a fee or an adjustment, leave %s out "
				"with --exclude-items FILE (one id per line) or the catalog column "
				"recommendable=false\n", found, found > 1 ? "s" : "", names.buf,
			found > EVERYBODY_SHOWN ? ", ..." : "", found > 1 ? "these are" : "it is",
			found > 1 ? "them" : "it");
	sb_release(&names);
}

int train_fit(const char *path, struct train_flags *f, dataset *ds, train_result *r,
	      int64_t *as_of, double *secs_ingest, strbuf *err)
{
	double t0 = util_monotonic();
	idmap *exclude = NULL;
	train_events *te = NULL;
	int ret = -1;
	memset(r, 0, sizeof(*r));
	if (f->exclude && ingest_id_list(f->exclude, &exclude, err) != 0)
		return -1;
	/* The source's erasures are known before the first CSV row is read. */
	if (f->events_from && (train_events_open(f->events_from, &te, err) != 0 ||
			       train_events_exclusions(te, &exclude, err) != 0))
		goto out;
	ingest_options iopt = { f->columns, f->strict, 5, stderr, "ingest", f->has_as_of, f->as_of,
				exclude, NULL };
	if (ingest_read(path, &iopt, ds, err) != 0)
		goto out;
	if (te && (train_events_feed(te, &iopt, ds->has_ts, ds->ts_max, ds, err) != 0 ||
		   train_events_recheck(te, exclude, err) != 0))
		goto out;
	iopt.label = "catalog";
	iopt.has_until = false;
	iopt.file_columns = f->catalog_columns;
	if (f->catalog && ingest_catalog(f->catalog, &iopt, ds, err) != 0)
		goto out;
	iopt.label = "customers";
	iopt.file_columns = f->customers_columns;
	if (f->customers && ingest_customers(f->customers, &iopt, ds, err) != 0)
		goto out;
	if (f->exclude_items) {
		idmap *items = NULL;
		uint32_t unknown;
		if (ingest_id_list(f->exclude_items, &items, err) != 0)
			goto out;
		dataset_exclude_items(ds, items, &unknown);
		if (unknown)
			fprintf(stderr, "train: %s: %u of its %u item ids are not in the data\n",
				f->exclude_items, unknown, idmap_count(items));
		idmap_free(items);
	}
	*secs_ingest = util_monotonic() - t0;
	*as_of = f->has_as_of ? f->as_of : ds->has_ts ? ds->ts_max : (int64_t)util_now();
	f->topt.as_of = *as_of;
	/* Content neighbours whenever a catalog describes the items (the
	 * tuner scores its blend with them too). */
	f->topt.content = f->catalog != NULL;
	if (!f->no_tune || f->params_from) {
		tune_options to = { .budget = f->tune_budget, .setup_secs = *secs_ingest,
				    .pinned = f->pinned, .serve = f->serve,
				    .verbose = progress_enabled() };
		f->tuning = xcalloc(1, sizeof(*f->tuning));
		int rc = f->params_from ? tune_from_model(f->params_from, &f->topt, &to, f->tuning, err)
					: tune_run(ds, &f->topt, &to, f->tuning, err);
		if (rc != 0)
			goto out;
		bool content = f->topt.content;
		content_options co = f->topt.content_opt;
		f->topt = f->tuning->chosen;
		f->topt.content = content;
		f->topt.content_opt = co;
	}
	if (train_run(ds, &f->topt, r, err) != 0) {
		strbuf msg = STRBUF_INIT;
		sb_addf(&msg, "%s: %s", path, err->buf);
		sb_reset(err);
		sb_add(err, msg.buf, msg.len);
		sb_release(&msg);
		goto out;
	}
	warn_everybodys_items(ds, r);
	ret = 0;
out:
	train_events_close(te);
	idmap_free(exclude);
	return ret;
}

int train_write(const char *out, const struct train_flags *f, const dataset *ds,
		const train_result *r, int64_t as_of, strbuf *err)
{
	return model_write(out, &f->topt, f->tuning, ds, r, as_of, err) == 0 ? 0 : -1;
}

/* ---- the train command -------------------------------------------------- */

static const char train_usage_head[] =
	"usage: shopkeeper train --interactions FILE --out DIR [options]\n"
	"\n"
	"Reads an interactions CSV (customer_id, item_id, and optionally timestamp,\n"
	"event, quantity, price) and writes a model to DIR/model.mdb.\n"
	"\n"
	"  --interactions FILE   CSV file; '-' for stdin; gzip is detected\n"
	"  --out DIR             model directory (created; an old model there is replaced)\n"
	"  --events-from SOURCE  also train on the events the server collected since the\n"
	"                        exports: its state directory (single node) or the shared\n"
	"                        event log (redis://... or sentinel://..., as serve's\n"
	"                        --event-log). Events at or before the exports' newest\n"
	"                        timestamp are taken to be in them; erased customers are\n"
	"                        left out entirely, those without consent lose their\n"
	"                        live events. The model's meta record says what was fed\n"
	"                        (live_events)\n";
static const char train_usage_tail[] =
	"  --precompute N        store each customer's N best candidates in the model\n"
	"                        (0..100, default 20, about 20 N bytes a customer): the\n"
	"                        server answers customers without live events from them\n"
	"                        (docs/training.md); 0: none\n"
	"  --event-log-position ID  the last entry (MS-SEQ) of the shared event log\n"
	"                        (serve --event-log) these interactions cover: kept in\n"
	"                        the model's meta record, a new replica replays the log\n"
	"                        from there (without it: from the log's start)\n"
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
	if (ds->live.source) {
		uint64_t skipped = 0;
		for (int k = 0; k < SKIP_REASONS; k++)
			skipped += ds->live.skipped_by[k];
		fprintf(stderr, "live       %llu events from %s: %llu added, %llu already in the exports, "
			"%llu without consent, %llu skipped\n",
			(unsigned long long)(ds->live.read + ds->live.covered + ds->live.no_consent),
			ds->live.source, (unsigned long long)ds->live.added,
			(unsigned long long)ds->live.covered, (unsigned long long)ds->live.no_consent,
			(unsigned long long)skipped);
	}
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
	enum { O_INTER = 1, O_OUT, O_QUIET, O_HELP, O_DUMP, O_LOGPOS, O_EVENTS, O_PRECOMPUTE };
	struct option opts[TRAIN_FLAG_COUNT + 9] = {
		{ "interactions", required_argument, NULL, O_INTER },
		{ "out", required_argument, NULL, O_OUT },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "help", no_argument, NULL, O_HELP },
		{ "dump-neighbors", required_argument, NULL, O_DUMP },
		{ "event-log-position", required_argument, NULL, O_LOGPOS },
		{ "events-from", required_argument, NULL, O_EVENTS },
		{ "precompute", required_argument, NULL, O_PRECOMPUTE },
	};
	struct train_flags f;
	const char *interactions = NULL, *out = NULL, *dump = NULL;
	bool quiet = false;
	uint32_t precompute = PRECOMPUTE_DEFAULT;
	int c, rc;
	train_flags_begin(&f, opts, 8);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_INTER: interactions = optarg; break;
		case O_OUT: out = optarg; break;
		case O_QUIET: quiet = true; break;
		case O_DUMP: dump = optarg; break;
		case O_LOGPOS: {
			eventlog_id id;
			if (eventlog_id_parse(optarg, strlen(optarg), &id) != 0)
				return cli_usage_error("train", "--event-log-position %s: expected a stream "
						       "entry id MS-SEQ, e.g. 1767225600000-0", optarg);
			f.topt.event_log_position = optarg;
			break;
		}
		case O_EVENTS: f.events_from = optarg; break;
		case O_PRECOMPUTE:
			if (!cli_parse_u32(optarg, 0, PRECOMPUTE_MAX, &precompute))
				return cli_usage_error("train", "--precompute %s: expected an integer "
						       "from 0 to %u", optarg, PRECOMPUTE_MAX);
			break;
		case 'h':
		case O_HELP:
			fputs(train_usage_head, stdout);
			fputs(train_flags_usage, stdout);
			fputs(train_usage_tail, stdout);
			return EXIT_OK;
		default:
			if ((rc = train_flags_apply(&f, c, optarg, "train", argv[optind - 1])) != 0)
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
	f.topt.precompute = precompute; /* after tuning, which sets topt */
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
