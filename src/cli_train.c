/*
 * cli_train: `shopkeeper train`: CSV in, model directory out.
 */
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
#include "store.h"
#include "timefmt.h"
#include "train.h"
#include "util.h"

static const char train_usage[] =
	"usage: shopkeeper train --interactions FILE --out DIR [options]\n"
	"\n"
	"Reads an interactions CSV (customer_id, item_id, and optionally timestamp,\n"
	"event, quantity, price) and writes a model to DIR/model.mdb.\n"
	"\n"
	"  --interactions FILE   CSV file; '-' for stdin; gzip is detected\n"
	"  --out DIR             model directory (created; an old model there is replaced)\n"
	"  --algo NAME           cosine (default), jaccard, lift or ease\n"
	"  --neighbors K         neighbours kept per item (default 100, 1..1000)\n"
	"  --lambda L            EASE regularisation (default 200, > 0)\n"
	"  --as-of DATE          the model's reference time (default: newest timestamp)\n"
	"  --columns MAP         header names, e.g. customer_id=CustomerID,item_id=StockCode\n"
	"  --strict              stop at the first bad row instead of skipping it\n"
	"  --quiet               no summary on stderr\n";

struct train_args {
	const char *interactions, *out, *columns, *as_of;
	train_options topt;
	bool strict, quiet;
};

static int parse_args(int argc, char **argv, struct train_args *a)
{
	enum { O_INTER = 1, O_OUT, O_ALGO, O_NEIGH, O_LAMBDA, O_ASOF, O_COLS, O_STRICT, O_QUIET, O_HELP };
	static const struct option opts[] = {
		{ "interactions", required_argument, NULL, O_INTER },
		{ "out", required_argument, NULL, O_OUT },
		{ "algo", required_argument, NULL, O_ALGO },
		{ "neighbors", required_argument, NULL, O_NEIGH },
		{ "lambda", required_argument, NULL, O_LAMBDA },
		{ "as-of", required_argument, NULL, O_ASOF },
		{ "columns", required_argument, NULL, O_COLS },
		{ "strict", no_argument, NULL, O_STRICT },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	memset(a, 0, sizeof(*a));
	a->topt.algo = ALGO_COSINE;
	a->topt.neighbors = TRAIN_DEFAULT_NEIGHBORS;
	a->topt.lambda = TRAIN_DEFAULT_LAMBDA;
	a->topt.max_dense_bytes = TRAIN_DEFAULT_MAX_DENSE_BYTES;
	opterr = 0;
	optind = 1;
	int c;
	double d;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_INTER: a->interactions = optarg; break;
		case O_OUT: a->out = optarg; break;
		case O_COLS: a->columns = optarg; break;
		case O_ASOF: a->as_of = optarg; break;
		case O_STRICT: a->strict = true; break;
		case O_QUIET: a->quiet = true; break;
		case O_ALGO: {
			int algo = algo_parse(optarg);
			if (algo < 0)
				return cli_usage_error("train", "--algo %s: expected cosine, jaccard, lift or ease", optarg);
			a->topt.algo = (enum algo)algo;
			break;
		}
		case O_NEIGH:
			if (!cli_parse_u32(optarg, 1, 1000, &a->topt.neighbors))
				return cli_usage_error("train", "--neighbors %s: expected an integer from 1 to 1000", optarg);
			break;
		case O_LAMBDA:
			if (!cli_parse_double(optarg, &d) || d <= 0 || d > 1e12)
				return cli_usage_error("train", "--lambda %s: expected a number greater than 0", optarg);
			a->topt.lambda = (float)d;
			break;
		case 'h':
		case O_HELP: fputs(train_usage, stdout); return -1;
		default:
			return cli_usage_error("train", "unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
	if (!a->interactions)
		return cli_usage_error("train", "--interactions FILE is required");
	if (!a->out)
		return cli_usage_error("train", "--out DIR is required");
	return 0;
}

static char *meta_json(const struct train_args *a, const dataset *ds, const train_result *r,
		       int64_t as_of, double created)
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
	snprintf(id, sizeof(id), "%s-%s-%06llx", algo_name(a->topt.algo), compact,
		 (unsigned long long)(idmap_hash(seed, strlen(seed)) & 0xffffff));

	json_t *root = json_pack(
		"{s:i, s:s, s:s, s:s, s:s, s:s, s:{s:i, s:f}, s:I, s:I, s:I, s:I, s:I, s:I}",
		"format_version", MODEL_FORMAT_VERSION, "byte_order", "little", "model_id", id,
		"algorithm", algo_name(a->topt.algo), "as_of", as_of_s, "created", created_s,
		"parameters", "neighbors", (json_int_t)a->topt.neighbors, "lambda",
		(double)a->topt.lambda, "neighbors", (json_int_t)r->k, "items",
		(json_int_t)r->n_items, "customers", (json_int_t)r->n_customers, "interactions",
		(json_int_t)r->nnz, "rows_read", (json_int_t)ds->records, "rows_skipped",
		(json_int_t)ds->skipped);
	char *s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(root);
	return s;
}

static int write_model(const struct train_args *a, const dataset *ds, const train_result *r,
		       const char *meta, strbuf *err)
{
	model_writer *w = NULL;
	uint32_t ni = r->n_items, nc = r->n_customers;
	uint64_t hint = (uint64_t)ni * (r->k * sizeof(neighbor) + 64) +
			(uint64_t)nc * 96 + r->hist_off[nc] * sizeof(history_entry);
	if (model_writer_open(a->out, hint, &w, err) != 0)
		return -1;

	const char **ids = xmallocarray(ni, sizeof(*ids));
	size_t *lens = xmallocarray(ni, sizeof(*lens));
	for (uint32_t i = 0; i < ni; i++)
		ids[i] = idmap_name(ds->items, i, &lens[i]);
	int rc = model_writer_put_meta(w, meta, err);
	if (!rc)
		rc = model_writer_put_items(w, ids, lens, ni, r->popularity, err);
	free(ids);
	free(lens);

	progress prog;
	progress_begin(&prog, "write", "records", (uint64_t)ni + nc);
	for (uint32_t i = 0; i < ni && !rc; i++) {
		rc = model_writer_put_neighbors(w, i, r->nbrs + (size_t)i * r->k, r->n_nbrs[i], err);
		progress_update(&prog, i);
	}
	for (uint32_t c = 0; c < nc && !rc; c++) {
		size_t len;
		const char *id = idmap_name(ds->customers, c, &len);
		rc = model_writer_put_customer(w, id, len, r->hist + r->hist_off[c],
					       (uint32_t)(r->hist_off[c + 1] - r->hist_off[c]), err);
		progress_update(&prog, (uint64_t)ni + c);
	}
	progress_end(&prog);
	if (rc) {
		model_writer_abort(w);
		return -1;
	}
	return model_writer_finish(w, err) == 0 ? 0 : -1;
}

static void print_summary(const struct train_args *a, const dataset *ds, const train_result *r,
			  const double secs[4], const char *meta)
{
	strbuf path = STRBUF_INIT;
	sb_addf(&path, "%s/%s", a->out, MODEL_FILE);
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
	fprintf(stderr, "data       %u customers, %u items, %llu customer-item pairs\n",
		r->n_customers, r->n_items, (unsigned long long)r->nnz);
	fprintf(stderr, "model      %s, %u neighbours per item (dense path)\n",
		algo_name(a->topt.algo), r->k);
	fprintf(stderr, "seconds    ingest %.2f, matrix %.2f, gram %.2f, neighbors %.2f, write %.2f\n",
		secs[0], r->secs_matrix, r->secs_gram, r->secs_similarity, secs[3]);
	fprintf(stderr, "memory     peak RSS %.0f MiB\n", (double)util_peak_rss() / 1048576.0);
	fprintf(stderr, "written    %s (%.1f MiB)\n", path.buf, mb);
	(void)meta;
	sb_release(&path);
}

int cmd_train(int argc, char **argv)
{
	struct train_args a;
	int rc = parse_args(argc, argv, &a);
	if (rc != 0)
		return rc < 0 ? EXIT_OK : rc;

	int64_t as_of = 0;
	if (a.as_of && time_parse(a.as_of, strlen(a.as_of), &as_of) != 0)
		return cli_usage_error("train", "--as-of %s: expected YYYY-MM-DD[ HH:MM:SS] or Unix seconds", a.as_of);

	strbuf err = STRBUF_INIT;
	dataset ds;
	train_result r;
	char *meta = NULL;
	double secs[4] = { 0, 0, 0, 0 };
	int ret = EXIT_RUNTIME;
	dataset_init(&ds);
	memset(&r, 0, sizeof(r));

	/* Validate the column map before reading anything. */
	{
		const char *names[COL_COUNT];
		strbuf store = STRBUF_INIT;
		int bad = ingest_parse_columns(a.columns, names, &store, &err);
		sb_release(&store);
		if (bad) {
			ret = cli_usage_error("train", "%s", err.buf);
			goto out;
		}
	}

	double t0 = util_monotonic();
	ingest_options iopt = { a.columns, a.strict, 5, stderr, "ingest" };
	if (ingest_read(a.interactions, &iopt, &ds, &err) != 0) {
		cli_fail("train", "%s", err.buf);
		goto out;
	}
	secs[0] = util_monotonic() - t0;
	if (!a.as_of)
		as_of = ds.has_ts ? ds.ts_max : (int64_t)util_now();

	if (train_run(&ds, &a.topt, &r, &err) != 0) {
		cli_fail("train", "%s: %s", a.interactions, err.buf);
		goto out;
	}

	double t3 = util_monotonic();
	meta = meta_json(&a, &ds, &r, as_of, util_now());
	if (!meta || write_model(&a, &ds, &r, meta, &err) != 0) {
		cli_fail("train", "%s", meta ? err.buf : "cannot build the meta record");
		goto out;
	}
	secs[3] = util_monotonic() - t3;
	if (!a.quiet)
		print_summary(&a, &ds, &r, secs, meta);
	ret = EXIT_OK;
out:
	free(meta);
	train_result_free(&r);
	dataset_free(&ds);
	sb_release(&err);
	return ret;
}
