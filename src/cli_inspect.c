/*
 * cli_inspect: `shopkeeper inspect DIR [ITEM_ID | --customer ID]`: look
 * inside a model without starting a server.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ids.h"
#include "model.h"
#include "timefmt.h"
#include "util.h"

static const char inspect_usage[] =
	"usage: shopkeeper inspect DIR [ITEM_ID | --customer ID | --list items|customers]\n"
	"\n"
	"Without an id: the model's meta record (JSON). With ITEM_ID: the item's\n"
	"neighbours. With --customer: the customer's stored history. With --list:\n"
	"every item or customer id, one per line.\n";

static void print_id(const model *m, uint32_t idx)
{
	size_t len;
	const char *id = model_item_id(m, idx, &len);
	fwrite(id, 1, len, stdout);
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "customer", required_argument, NULL, 'c' },
		{ "list", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *customer = NULL, *item = NULL, *dir = NULL, *list = NULL;
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': customer = optarg; break;
		case 'l':
			if (strcmp(optarg, "items") != 0 && strcmp(optarg, "customers") != 0)
				return cli_usage_error("inspect", "--list %s: expected items or customers", optarg);
			list = optarg;
			break;
		case 'h': fputs(inspect_usage, stdout); return EXIT_OK;
		default: return cli_usage_error("inspect", "unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return cli_usage_error("inspect", "a model directory is required");
	dir = argv[optind++];
	if (optind < argc)
		item = argv[optind++];
	if (optind < argc || (item && customer) || (list && (item || customer)))
		return cli_usage_error("inspect", "give one ITEM_ID, one --customer ID or one --list");

	strbuf err = STRBUF_INIT;
	model *m = NULL;
	model_txn *t = NULL;
	int ret = EXIT_RUNTIME;
	if (model_open(dir, &m, &err) != 0) {
		cli_fail("inspect", "%s", err.buf);
		goto out;
	}
	if (!item && !customer && !list) {
		puts(model_get_info(m)->meta_json);
		ret = EXIT_OK;
		goto out;
	}
	if (model_txn_begin(m, &t) != 0) {
		cli_fail("inspect", "cannot read the model");
		goto out;
	}
	if (list && list[0] == 'i') {
		for (uint32_t i = 0; i < model_get_info(m)->n_items; i++) {
			print_id(m, i);
			putchar('\n');
		}
		ret = EXIT_OK;
		goto out;
	}
	if (list) {
		model_iter *it = NULL;
		const char *cid;
		size_t clen;
		model_customer rec;
		int rc = model_iter_begin(t, NULL, 0, &it);
		while (rc == 0 && (rc = model_iter_next(it, &cid, &clen, &rec)) == 0) {
			fwrite(cid, 1, clen, stdout);
			putchar('\n');
		}
		model_iter_end(it);
		if (rc != STORE_NOTFOUND) {
			cli_fail("inspect", "reading customers: %s", store_strerror(rc));
			goto out;
		}
		ret = EXIT_OK;
		goto out;
	}
	const char *id = item ? item : customer;
	size_t len = strlen(id);
	if (!id_normalize(&id, &len)) {
		ret = cli_usage_error("inspect", "'%s' is not a usable id", item ? item : customer);
		goto out;
	}
	if (item) {
		uint32_t idx;
		model_pairs nb;
		int rc = model_item_lookup(t, id, len, &idx);
		if (rc == 0)
			rc = model_neighbors(t, idx, &nb);
		if (rc) {
			cli_fail("inspect", "item %.*s: %s", (int)len, id, store_strerror(rc));
			goto out;
		}
		printf("# item %.*s: %.0f customers, %u neighbours\n", (int)len, id,
		       (double)model_item_popularity(m, idx), nb.n);
		for (uint32_t r = 0; r < nb.n; r++) {
			neighbor p = model_pair_at(nb.data, r);
			print_id(m, p.item);
			printf("\t%.6f\n", (double)p.score);
		}
	} else {
		model_customer cust;
		int rc = model_customer_get(t, id, len, &cust);
		if (rc) {
			cli_fail("inspect", "customer %.*s: %s", (int)len, id, store_strerror(rc));
			goto out;
		}
		printf("# customer %.*s: %u items, most recent first\n", (int)len, id, cust.n_hist);
		printf("# item\tweight\tquantity\tpurchased\tlast\n");
		for (uint32_t i = 0; i < cust.n_hist; i++) {
			history_entry e = model_history_at(&cust, i);
			char ts[TIME_FMT_LEN];
			time_format(e.last_ts, ts);
			print_id(m, e.item);
			printf("\t%g\t%g\t%s\t%s\n", (double)e.weight, (double)e.quantity,
			       (e.flags & HIST_PURCHASED) ? "yes" : "no", ts);
		}
	}
	ret = EXIT_OK;
out:
	model_txn_free(t);
	model_close(m);
	sb_release(&err);
	return ret;
}
