/*
 * cli_eval: `shopkeeper eval --train FILE --test FILE`: train exactly as
 * `train` would, then ask the serving code path for each test customer's
 * top k and score it against what they went on to buy.
 *
 * The model is written to a temporary directory and read back through the
 * store and recommend modules, so what is measured is what is served.
 * Relevant items for a customer: distinct items bought (quantity > 0,
 * event purchase) in the test file that the trained model knows, minus what
 * the customer already bought in the training file (those are never
 * recommended). Customers unknown to the model, or with nothing relevant
 * left, are not counted. Items without training interactions are in the
 * model when --catalog names them: their purchases stay relevant, and
 * new_item_recall is the recall of the same lists over those purchases
 * alone (customers with at least one). --new-since DATE scores the
 * new-arrivals slot instead: only items first seen on or after DATE are
 * ranked (the others are excluded, as the route's filter does) and only
 * their purchases are relevant.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "eval.h"
#include "recommend.h"
#include "model.h"
#include "timefmt.h"
#include "tune.h"
#include "util.h"

static const char eval_usage_head[] =
	"usage: shopkeeper eval --train FILE --test FILE [--k 10] [options]\n"
	"\n"
	"Trains on --train, recommends --k items to each customer of --test and prints\n"
	"{\"precision\",\"recall\",\"ndcg\",\"map\",\"hit_rate\",\"users\",\"coverage\"} as JSON,\n"
	"with \"new_item_recall\" and \"new_item_users\" when --catalog names items without\n"
	"training interactions.\n"
	"\n"
	"  --train FILE          interactions to train on\n"
	"  --test FILE           interactions to score against (purchases count)\n"
	"  --k K                 cut-off, 1..100 (default 10)\n"
	"  --neighbors-used N    neighbours per history item scored (default: tuned, else\n"
	"                        30), as serve\n"
	"  --cutoff R            contributions under R x the strongest skipped (default:\n"
	"                        tuned, else 0.1), as serve\n"
	"  --content-weight S    hybrid scoring: weight of content sums (default: tuned,\n"
	"                        else 0: off), as serve\n"
	"  --content-count B     hybrid scoring: content share b / (b + customers)\n"
	"                        (default: tuned, else 0: items nobody bought only)\n"
	"  --new-since DATE      score the new-arrivals slot: rank only items first seen\n"
	"                        on or after DATE (catalog first_seen, else their first\n"
	"                        training interaction; catalog items with neither count\n"
	"                        as new)\n"
	"  --history-weight W    sqrt, binary, recent or log: how much each history item\n"
	"                        counts (default: tuned, else sqrt), as serve\n"
	"Tuning (unless --no-tune) uses --train only, never --test: its progress is on\n"
	"stderr when that is a terminal, and stdout stays one JSON object.\n";

struct pair {
	uint32_t customer; /* test dataset index */
	uint32_t item;     /* train item index */
};

static int by_customer_item(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	if (x->customer != y->customer)
		return x->customer < y->customer ? -1 : 1;
	return x->item < y->item ? -1 : x->item > y->item;
}

/* The test set's relevant (customer, train item) pairs, sorted, unique. */
static struct pair *relevant_pairs(const dataset *train, const dataset *test, size_t *n_out)
{
	struct pair *p = xmallocarray(test->n_rows ? test->n_rows : 1, sizeof(*p));
	size_t n = 0;
	for (size_t i = 0; i < test->n_rows; i++) {
		const interaction *row = &test->rows[i];
		if (row->event != EVENT_PURCHASE || row->quantity <= 0)
			continue;
		size_t len;
		const char *iid = idmap_name(test->items, row->item, &len);
		uint32_t item;
		if (!idmap_find(train->items, iid, len, &item))
			continue;
		p[n++] = (struct pair){ row->customer, item };
	}
	qsort(p, n, sizeof(*p), by_customer_item);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (u == 0 || p[u - 1].customer != p[i].customer || p[u - 1].item != p[i].item)
			p[u++] = p[i];
	*n_out = u;
	return p;
}

static int evaluate(const dataset *train, const train_result *tr, const dataset *test,
		    const char *model_dir, uint32_t k, const rec_params *params, bool has_since,
		    int64_t since, strbuf *err)
{
	model *m = NULL;
	model_txn *txn = NULL;
	rec_ctx *ctx = NULL;
	rec_result *res = xmalloc(sizeof(*res));
	size_t n_pairs;
	struct pair *pairs = relevant_pairs(train, test, &n_pairs);
	uint32_t *rel = xmallocarray(n_pairs ? n_pairs : 1, sizeof(*rel));
	uint32_t recs[REC_MAX_N];
	uint8_t *shown = xcalloc(tr->n_items, 1);
	uint8_t *bought = xcalloc(tr->n_items, 1);
	eval_totals tot = { 0 }, tot_new = { 0 };
	int ret = -1;
	/* Items without training interactions (catalog only). */
	uint8_t *fresh = xcalloc(tr->n_items ? tr->n_items : 1, 1);
	uint32_t n_fresh = 0;
	for (uint32_t i = 0; i < tr->n_items; i++)
		fresh[i] = 1;
	for (uint64_t h = 0; h < tr->hist_off[tr->n_customers]; h++)
		fresh[tr->hist[h].item] = 0;
	for (uint32_t i = 0; i < tr->n_items; i++)
		n_fresh += fresh[i];
	uint32_t *old = NULL, n_old = 0;
	if (has_since) {
		/* The slot: items first seen before `since` are excluded, and
		 * only the others' purchases are relevant ("fresh" from now on). */
		/* First seen: the catalog's first_seen, else the item's first
		 * interaction (dataset_first_seen); a catalog item with neither
		 * is new. Days, as the route's filter compares them. */
		int32_t *fs = xmallocarray(tr->n_items ? tr->n_items : 1, sizeof(*fs));
		dataset_first_seen(train, tr->n_items, fs);
		int64_t day = since >= 0 ? since / 86400 : -((-since + 86399) / 86400);
		old = xmallocarray(tr->n_items ? tr->n_items : 1, sizeof(*old));
		n_fresh = 0;
		for (uint32_t i = 0; i < tr->n_items; i++) {
			fresh[i] = fs[i] == MODEL_DAY_UNKNOWN || fs[i] >= day;
			n_fresh += fresh[i];
			if (!fresh[i])
				old[n_old++] = i;
		}
		free(fs);
	}
	uint32_t *rel_new = xmallocarray(n_pairs ? n_pairs : 1, sizeof(*rel_new));

	if (model_open(model_dir, &m, err) != 0 || model_txn_begin(m, &txn) != 0)
		goto out;
	ctx = rec_ctx_create(tr->n_items);
	rec_params p; /* as serve: the flags, else the model's tuned knobs */
	rec_params_for_model(&p, params, model_get_info(m));
	rec_ctx_configure(ctx, &p);
	rec_filter plain; /* what serve does, but nobody reads `because` here */
	rec_filter_init(&plain);
	plain.because = false;
	plain.exclude = old;
	plain.n_exclude = n_old;
	for (size_t i = 0; i < n_pairs;) {
		size_t j = i;
		while (j < n_pairs && pairs[j].customer == pairs[i].customer)
			j++;
		size_t len;
		const char *cid = idmap_name(test->customers, pairs[i].customer, &len);
		uint32_t c;
		if (!idmap_find(train->customers, cid, len, &c)) {
			i = j;
			continue;
		}
		/* Leave out what the customer already bought in training. */
		for (uint64_t h = tr->hist_off[c]; h < tr->hist_off[c + 1]; h++)
			if (tr->hist[h].flags & HIST_PURCHASED)
				bought[tr->hist[h].item] = 1;
		uint32_t n_rel = 0, n_new = 0;
		for (size_t q = i; q < j; q++) {
			if (bought[pairs[q].item])
				continue;
			if (fresh[pairs[q].item])
				rel_new[n_new++] = pairs[q].item;
			if (!has_since || fresh[pairs[q].item])
				rel[n_rel++] = pairs[q].item;
		}
		for (uint64_t h = tr->hist_off[c]; h < tr->hist_off[c + 1]; h++)
			bought[tr->hist[h].item] = 0;
		i = j;
		if (n_rel == 0)
			continue;

		int rc = rec_for_customer(ctx, txn, NULL, cid, len, k, &plain, res);
		if (rc) {
			sb_addf(err, "recommending for %s: %s", cid, store_strerror(rc));
			goto out;
		}
		for (uint32_t r = 0; r < res->n; r++) {
			recs[r] = res->items[r].item;
			shown[recs[r]] = 1;
		}
		eval_add(&tot, recs, res->n, rel, n_rel, k);
		eval_add(&tot_new, recs, res->n, rel_new, n_new, k);
	}
	eval_finish(&tot);
	eval_finish(&tot_new);
	uint32_t covered = 0;
	for (uint32_t i = 0; i < tr->n_items; i++)
		covered += shown[i];
	printf("{\"precision\":%.6f,\"recall\":%.6f,\"ndcg\":%.6f,\"map\":%.6f,\"hit_rate\":%.6f,"
	       "\"users\":%llu,\"coverage\":%.6f",
	       tot.precision, tot.recall, tot.ndcg, tot.map, tot.hit_rate,
	       (unsigned long long)tot.users, tr->n_items ? (double)covered / tr->n_items : 0.0);
	if (n_fresh)
		printf(",\"new_item_recall\":%.6f,\"new_item_users\":%llu,\"new_items\":%u",
		       tot_new.recall, (unsigned long long)tot_new.users, n_fresh);
	printf("}\n");
	ret = 0;
out:
	rec_ctx_free(ctx);
	model_txn_free(txn);
	model_close(m);
	free(bought);
	free(fresh);
	free(old);
	free(rel_new);
	free(shown);
	free(rel);
	free(pairs);
	free(res);
	return ret;
}

int cmd_eval(int argc, char **argv)
{
	enum { O_TRAIN = 1, O_TEST, O_K, O_NUSED, O_CUTOFF, O_SINCE, O_CW, O_CC, O_HW, O_HELP };
	struct option opts[TRAIN_FLAG_COUNT + 11] = {
		{ "train", required_argument, NULL, O_TRAIN },
		{ "test", required_argument, NULL, O_TEST },
		{ "k", required_argument, NULL, O_K },
		{ "neighbors-used", required_argument, NULL, O_NUSED },
		{ "cutoff", required_argument, NULL, O_CUTOFF },
		{ "new-since", required_argument, NULL, O_SINCE },
		{ "content-weight", required_argument, NULL, O_CW },
		{ "content-count", required_argument, NULL, O_CC },
		{ "history-weight", required_argument, NULL, O_HW },
		{ "help", no_argument, NULL, O_HELP },
	};
	struct train_flags f;
	const char *train_path = NULL, *test_path = NULL;
	uint32_t k = 10;
	rec_params params;
	rec_params_unset(&params);
	int c, rc;
	bool has_since = false;
	int64_t since = 0;
	train_flags_begin(&f, opts, 10);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_TRAIN: train_path = optarg; break;
		case O_TEST: test_path = optarg; break;
		case O_K:
			if (!cli_parse_u32(optarg, 1, REC_MAX_N, &k))
				return cli_usage_error("eval", "--k %s: expected an integer from 1 to %d", optarg, REC_MAX_N);
			break;
		case O_NUSED:
			if (!cli_parse_u32(optarg, 1, 1000, &params.neighbors_used))
				return cli_usage_error("eval", "--neighbors-used %s: expected 1 to 1000", optarg);
			f.pinned |= TUNE_PIN_NEIGHBORS_USED;
			f.serve.neighbors_used = params.neighbors_used;
			break;
		case O_CUTOFF:
			if (!cli_parse_cutoff(optarg, &params.cutoff))
				return cli_usage_error("eval", "--cutoff %s: expected a number from 0 to below 1",
						       optarg);
			f.pinned |= TUNE_PIN_CUTOFF;
			f.serve.cutoff = params.cutoff;
			break;
		case O_CW:
		case O_CC: {
			double d;
			if (!cli_parse_double(optarg, &d) || !(d >= 0) || d > 1e6)
				return cli_usage_error("eval", "--content-%s %s: expected a number >= 0",
						       c == O_CW ? "weight" : "count", optarg);
			*(c == O_CW ? &params.content_weight : &params.content_count) = (float)d;
			break;
		}
		case O_SINCE:
			if (time_parse(optarg, strlen(optarg), &since) != 0)
				return cli_usage_error("eval", "--new-since %s: expected YYYY-MM-DD", optarg);
			has_since = true;
			break;
		case O_HW:
			if (rec_history_weight_parse(optarg, strlen(optarg), &params.history_weight) != 0)
				return cli_usage_error("eval", "--history-weight %s: expected sqrt, binary, recent or log",
						       optarg);
			f.pinned |= TUNE_PIN_HISTORY_WEIGHT;
			f.serve.history_weight = params.history_weight;
			break;
		case 'h':
		case O_HELP:
			fputs(eval_usage_head, stdout);
			fputs(train_flags_usage, stdout);
			return EXIT_OK;
		default:
			if ((rc = train_flags_apply(&f, c, optarg, "eval", argv[optind - 1])) != 0)
				return rc;
		}
	}
	if (optind < argc)
		return cli_usage_error("eval", "unexpected argument '%s'", argv[optind]);
	if (!train_path || !test_path)
		return cli_usage_error("eval", "--train FILE and --test FILE are required");

	strbuf err = STRBUF_INIT;
	dataset train, test;
	train_result r;
	int64_t as_of;
	double secs;
	char dir[] = "/tmp/shopkeeper-eval-XXXXXX";
	bool made_dir = false;
	int ret = EXIT_RUNTIME;
	dataset_init(&train);
	dataset_init(&test);
	memset(&r, 0, sizeof(r));

	if (train_fit(train_path, &f, &train, &r, &as_of, &secs, &err) != 0) {
		cli_fail("eval", "%s", err.buf);
		goto out;
	}
	if (f.tuning) /* like train's summary: stdout stays the JSON object */
		tune_print(f.tuning, stderr);
	ingest_options topt = { .columns = f.columns, .strict = f.strict, .report = stderr, .label = "test" };
	if (ingest_read(test_path, &topt, &test, &err) != 0) {
		cli_fail("eval", "%s", err.buf);
		goto out;
	}
	if (!mkdtemp(dir)) {
		cli_fail("eval", "cannot create a temporary directory in /tmp");
		goto out;
	}
	made_dir = true;
	if (train_write(dir, &f, &train, &r, as_of, &err) != 0 ||
	    evaluate(&train, &r, &test, dir, k, &params, has_since, since, &err) != 0) {
		cli_fail("eval", "%s", err.buf);
		goto out;
	}
	ret = EXIT_OK;
out:
	if (made_dir) {
		strbuf p = STRBUF_INIT;
		sb_addf(&p, "%s/%s", dir, MODEL_FILE);
		unlink(p.buf);
		rmdir(dir);
		sb_release(&p);
	}
	train_flags_release(&f);
	train_result_free(&r);
	dataset_free(&train);
	dataset_free(&test);
	sb_release(&err);
	return ret;
}
