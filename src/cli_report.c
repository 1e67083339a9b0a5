/*
 * cli_report: `shopkeeper report --state DIR --experiment NAME`, an
 * experiment's report from a state directory alone (attribution_report:
 * the JSON GET /v1/experiments/{name} answers), safe beside a running
 * server (a read-only snapshot).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "attribution.h"
#include "cli.h"
#include "state.h"

static const char report_usage[] =
	"usage: shopkeeper report --state DIR --experiment NAME\n"
	"\n"
	"Prints the experiment's report as one JSON object: per variant the\n"
	"customers assigned and exposed, impressions, clicks, CTR, carts, orders\n"
	"and revenue (tagged and view-through), conversion and revenue per exposed\n"
	"customer, and against the control the lift with its always-valid 95%\n"
	"interval and p-value (mSPRT); at the top the sample-ratio-mismatch\n"
	"p-value. docs/experiments.md explains the figures.\n"
	"\n"
	"  --state DIR        the server's state directory (read-only here)\n"
	"  --experiment NAME  the experiment's name in the experiments file\n";

int cmd_report(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "experiment", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *name = NULL;
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': dir = optarg; break;
		case 'e': name = optarg; break;
		case 'h': fputs(report_usage, stdout); return EXIT_OK;
		default:
			return cli_usage_error("report", "unknown option or missing value: %s",
					       argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("report", "unexpected argument: %s", argv[optind]);
	if (!dir || !name || !*name)
		return cli_usage_error("report", "--state DIR and --experiment NAME are required");

	strbuf err = STRBUF_INIT, out = STRBUF_INIT;
	state *s = NULL;
	state_txn *t = NULL;
	int ret = EXIT_RUNTIME;
	if (state_open_readonly(dir, &s, &err) != 0) {
		cli_fail("report", "%s", sb_str(&err));
		goto out;
	}
	if (state_txn_begin(s, &t) != 0) {
		cli_fail("report", "cannot read the state in %s", dir);
		goto out;
	}
	int rc = attribution_report(t, name, strlen(name), &out);
	if (rc == STORE_NOTFOUND) {
		cli_fail("report", "no experiment named '%s' has been recorded in %s", name, dir);
		goto out;
	}
	if (rc) {
		cli_fail("report", "the state in %s is damaged or unreadable (%s)", dir,
			 store_strerror(rc));
		goto out;
	}
	sb_addc(&out, '\n');
	ret = fwrite(out.buf, 1, out.len, stdout) == out.len && fflush(stdout) == 0 ? EXIT_OK
										   : EXIT_RUNTIME;
out:
	state_txn_free(t);
	state_close(s);
	sb_release(&err);
	sb_release(&out);
	return ret;
}
