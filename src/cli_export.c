/*
 * cli_export: `shopkeeper export`: an audience for an e-mail tool's mail
 * merge, one customer per line with their segment and top items, titles
 * and the bought items behind each ("Because you bought X..."): JSON Lines
 * in rec_json's REC_JSON_EXPORT shape, or CSV (export_fmt.h has both).
 * GET /v1/audiences/{name}/export writes the same lines.
 *
 * Streams: one customer at a time through an LMDB cursor, so memory stays
 * constant whatever the audience size. Frequency capping: an item the
 * customer viewed AUDIENCE_CAP_VIEWS times or more without carting or
 * buying it is not pushed (as in every audience answer); nor, unless
 * --cap-days 0, an item an export recorded as sent to them in the last
 * --cap-days days. Sends are recorded in STATE/sent.mdb only with
 * --record: previewing an export uses up nothing.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audience.h"
#include "cli.h"
#include "export_fmt.h"
#include "ids.h"
#include "live_items.h"
#include "progress.h"
#include "recommend.h"
#include "model.h"
#include "sent_log.h"
#include "state.h"
#include "timefmt.h"
#include "util.h"

static const char export_usage[] =
	"usage: shopkeeper export --model DIR --state DIR --audience NAME [options]\n"
	"\n"
	"Writes the audience on stdout, one customer per line with their segment,\n"
	"intent and top items (titles, and `because` items): JSON Lines, or CSV\n"
	"with --format csv. Reads the model and the state; changes nothing unless\n"
	"--record is given.\n"
	"\n"
	"  --model DIR        model directory\n"
	"  --state DIR        the server's state directory (may not exist yet)\n"
	"  --audience NAME    a segment, birthday, all, cart_abandoners or browsed_not_bought\n"
	"  --format FORMAT    jsonl (default) or csv: customer_id, then itemK_id,\n"
	"                     itemK_title, itemK_price, itemK_url, itemK_because for K = 1..n\n"
	"  --n N              items per customer (default 10, 1..100)\n"
	"  --days N           birthday window in days (default 7)\n"
	"  --hours N          trigger window in hours (defaults: 24 carts, 72 views)\n"
	"  --new-since DATE   only items first seen on or after DATE (YYYY-MM-DD: the\n"
	"                     catalog's first_seen, else the item's first interaction),\n"
	"                     for a \"new arrivals for you\" mail\n"
	"  --cap-days N       leave out items recorded as sent to the customer within\n"
	"                     N days (default 14; 0: off)\n"
	"  --record           record what is exported as sent, in STATE/sent.mdb: this\n"
	"                     CHANGES THE STATE, and later exports leave those items out\n"
	"                     for --cap-days days. Without it (or with --no-record, the\n"
	"                     default) an export is a preview.\n";

struct cap {
	model_txn *t;
	rec_filter *f;
	uint32_t *exclude;
	uint32_t cap;
	int64_t since;
};

static void cap_sent(const char *item, size_t len, int64_t ts, void *arg)
{
	struct cap *c = arg;
	uint32_t idx;
	if (ts >= c->since && c->f->n_exclude < c->cap &&
	    model_item_lookup(c->t, item, len, &idx) == 0)
		c->exclude[c->f->n_exclude++] = idx;
}

int cmd_export(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "state", required_argument, NULL, 's' },
		{ "audience", required_argument, NULL, 'a' },
		{ "n", required_argument, NULL, 'n' },
		{ "days", required_argument, NULL, 'd' },
		{ "hours", required_argument, NULL, 'H' },
		{ "cap-days", required_argument, NULL, 'c' },
		{ "new-since", required_argument, NULL, 'N' },
		{ "record", no_argument, NULL, 'R' },
		{ "no-record", no_argument, NULL, 'r' }, /* the default now; kept for scripts */
		{ "format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *model_dir = NULL, *state_dir = NULL, *name = NULL;
	uint32_t n = 10, days = 0, hours = 0, cap_days = 14;
	int32_t new_since = MODEL_DAY_UNKNOWN;
	bool record = false;
	enum export_format format = EXPORT_JSONL;
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model_dir = optarg; break;
		case 's': state_dir = optarg; break;
		case 'a': name = optarg; break;
		case 'R': record = true; break;
		case 'r': record = false; break;
		case 'f':
			if (export_format_parse(optarg, strlen(optarg), &format) != 0)
				return cli_usage_error("export", "--format %s: expected jsonl or csv", optarg);
			break;
		case 'n':
			if (!cli_parse_u32(optarg, 1, REC_MAX_N, &n))
				return cli_usage_error("export", "--n %s: expected an integer from 1 to %d", optarg, REC_MAX_N);
			break;
		case 'd':
			if (!cli_parse_u32(optarg, 1, AUDIENCE_MAX_DAYS, &days))
				return cli_usage_error("export", "--days %s: expected 1 to %u", optarg, AUDIENCE_MAX_DAYS);
			break;
		case 'H':
			if (!cli_parse_u32(optarg, 1, AUDIENCE_MAX_HOURS, &hours))
				return cli_usage_error("export", "--hours %s: expected 1 to %u", optarg, AUDIENCE_MAX_HOURS);
			break;
		case 'c':
			if (!cli_parse_u32(optarg, 0, 3650, &cap_days))
				return cli_usage_error("export", "--cap-days %s: expected 0 to 3650", optarg);
			break;
		case 'N':
			if (time_parse_date(optarg, strlen(optarg), &new_since) != 0)
				return cli_usage_error("export", "--new-since %s: expected a date, YYYY-MM-DD", optarg);
			break;
		case 'h': fputs(export_usage, stdout); return EXIT_OK;
		default: return cli_usage_error("export", "unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("export", "unexpected argument '%s'", argv[optind]);
	if (!model_dir || !state_dir || !name)
		return cli_usage_error("export", "--model DIR, --state DIR and --audience NAME are required");
	audience aud;
	if (audience_parse(name, strlen(name), days, hours, &aud) != 0)
		return cli_usage_error("export", "no audience '%s' (known: %s)", name, audience_names());
	aud.new_since = new_since;

	strbuf err = STRBUF_INIT, line = STRBUF_INIT, path = STRBUF_INIT;
	model *m = NULL;
	state *st = NULL;
	model_txn *t = NULL;
	state_txn *stx = NULL;
	sent_log *sent = NULL;
	rec_ctx *ctx = NULL;
	audience_walk *walk = NULL;
	rec_result *res = xmalloc(sizeof(*res));
	live_items *live = NULL;               /* with --new-since: added since training */
	struct rec_live *live_store = NULL;
	uint32_t *exclude = xmallocarray(REC_MAX_N * 4, sizeof(*exclude));
	int ret = EXIT_RUNTIME;

	if (model_open(model_dir, &m, &err) != 0) {
		cli_fail("export", "%s", err.buf);
		goto out;
	}
	sb_addf(&path, "%s/state.mdb", state_dir);
	struct stat sst;
	/* No state yet (the server never ran): the model alone answers. */
	if (stat(path.buf, &sst) == 0 && state_open_readonly(state_dir, &st, &err) != 0) {
		cli_fail("export", "%s", err.buf);
		goto out;
	}
	/* Items out of stock or not recommendable (PUT /v1/items) stay out. */
	if (st && (rec_load_item_overrides(m, st) != 0 || live_items_model_first_seen(st, m) != 0)) {
		cli_fail("export", "cannot read the item overrides in %s", state_dir);
		goto out;
	}
	/* The new-arrivals slot holds the items added since training too, as
	 * the server's does. */
	if (st && new_since != MODEL_DAY_UNKNOWN) {
		live = live_items_create(LIVE_ITEMS_LIMIT);
		live_store = xmalloc(sizeof(*live_store));
		if (live_items_load(live, st, m) != 0) {
			cli_fail("export", "cannot read the items added since training in %s",
				 state_dir);
			goto out;
		}
	}
	sb_reset(&path);
	sb_addf(&path, "%s/sent.mdb", state_dir);
	/* A preview reads the sent log when there is one, and never creates it. */
	if (record || (cap_days && stat(path.buf, &sst) == 0)) {
		mkdir(state_dir, 0755);
		if (sent_log_open(state_dir, &sent, &err) != 0) {
			cli_fail("export", "%s", err.buf);
			goto out;
		}
	}
	if (model_txn_begin(m, &t) != 0 || (st && state_txn_begin(st, &stx) != 0)) {
		cli_fail("export", "cannot read the model or state");
		goto out;
	}
	ctx = rec_ctx_create(model_get_info(m)->n_items);
	rec_params given, p; /* the model's tuned knobs, as serve's audience download */
	rec_params_unset(&given);
	rec_params_for_model(&p, &given, model_get_info(m));
	rec_ctx_configure(ctx, &p);
	if (audience_walk_begin(&aud, t, stx, NULL, 0, &walk) != 0) {
		cli_fail("export", "cannot walk the customers");
		goto out;
	}

	int64_t now = model_now(m);
	uint64_t written = 0, seen = 0;
	progress prog;
	progress_begin(&prog, "export", "customers", 0);
	audience_member mb;
	int rc;
	sb_reset(&line);
	export_header(&line, format, n); /* CSV only: JSON Lines have none */
	if (line.len && fwrite(line.buf, 1, line.len, stdout) != line.len) {
		cli_fail("export", "cannot write to standard output");
		goto out;
	}
	while ((rc = audience_walk_next(walk, &mb)) == 0) {
		const char *id = mb.id;
		size_t len = mb.len;
		rec_filter f;
		export_cap_filter(&f, t, &mb, exclude, REC_MAX_N * 4);
		f.new_since = aud.new_since;
		struct cap cap = { t, &f, exclude, REC_MAX_N * 4, now - (int64_t)cap_days * 86400 };
		if (cap_days && sent && sent_log_each(sent, id, len, cap_sent, &cap) != 0) {
			cli_fail("export", "the sent log is corrupt");
			goto out;
		}
		if ((rc = rec_for_customer(ctx, t, stx, id, len, n, &f, res)) != 0)
			break;
		if (live)
			live_items_merge(live, m, mb.known ? &mb.cust : NULL, &f, n, res, live_store);
		sb_reset(&line);
		export_line(&line, format, m, t, &aud, &mb, res, n);
		if (fwrite(line.buf, 1, line.len, stdout) != line.len) {
			cli_fail("export", "cannot write to standard output");
			goto out;
		}
		if (record && res->n) {
			const char *items[REC_MAX_N];
			size_t lens[REC_MAX_N];
			for (uint32_t i = 0; i < res->n; i++) {
				const rec_live_item *li = rec_live_at(m, res, res->items[i].item);
				items[i] = li ? li->id : model_item_id(m, res->items[i].item, &lens[i]);
				if (li)
					lens[i] = li->id_len;
			}
			if (sent_log_add(sent, id, len, items, lens, res->n, now, &err) != 0) {
				cli_fail("export", "%s", err.buf);
				goto out;
			}
		}
		written++;
		if ((++seen & 255) == 0)
			progress_update(&prog, seen);
	}
	progress_update(&prog, seen);
	progress_end(&prog);
	if (rc != STORE_NOTFOUND) {
		cli_fail("export", "reading the model failed: %s", store_strerror(rc));
		goto out;
	}
	if (fflush(stdout) != 0 || (sent && sent_log_flush(sent, &err) != 0)) {
		cli_fail("export", "%s", err.len ? err.buf : "cannot write to standard output");
		goto out;
	}
	if (aud.kind == AUDIENCE_BIRTHDAY && !audience_walk_saw_birth_dates(walk))
		fprintf(stderr, "export: warning: no birth_date column in the customers file\n");
	fprintf(stderr, "export: %llu customers in audience %s%s\n", (unsigned long long)written,
		name, record ? " (recorded as sent)" : "");
	ret = EXIT_OK;
out:
	audience_walk_end(walk);
	rec_ctx_free(ctx);
	state_txn_free(stx);
	model_txn_free(t);
	sent_log_close(sent);
	state_close(st);
	model_close(m);
	free(exclude);
	free(res);
	live_items_free(live);
	free(live_store);
	sb_release(&err);
	sb_release(&line);
	sb_release(&path);
	return ret;
}
