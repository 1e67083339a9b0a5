/*
 * cli: command dispatch and the helpers every command shares.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: shopkeeper COMMAND [OPTIONS]\n"
	"\n"
	"Recommendations for One to One marketing: train a model from CSV exports,\n"
	"then serve per-customer and per-item recommendations over HTTP.\n"
	"\n"
	"commands:\n"
	"  train     read interactions CSV, write a model directory\n"
	"  serve     answer HTTP requests from a model\n"
	"  export    write an audience with personalised items as JSON Lines\n"
	"  eval      train on one file, measure recommendations against another\n"
	"  inspect   print a model's meta record, an item's neighbours or a customer\n"
	"  catalog   make a catalog CSV (one row per item) from a sales log\n"
	"  customers make a customers CSV (one row per customer) from a sales log\n"
	"  eventlog  trim the shared event log (Redis), or show its newest entry\n"
	"  report    print an experiment's report (A/B figures) from a state\n"
	"\n"
	"Run 'shopkeeper COMMAND --help' for the options of a command.\n";

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "shopkeeper %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see 'shopkeeper %s --help')\n", cmd);
	return EXIT_USAGE;
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "shopkeeper %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_RUNTIME;
}

bool cli_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	errno = 0;
	unsigned long long v = strtoull(s, NULL, 10);
	if (errno || v < min || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

bool cli_parse_double(const char *s, double *out)
{
	if (!s || !*s)
		return false;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (*end || errno || !isfinite(v))
		return false;
	*out = v;
	return true;
}

bool cli_parse_cutoff(const char *s, float *out)
{
	double v;
	if (!cli_parse_double(s, &v) || v < 0 || v >= 1)
		return false;
	*out = (float)v;
	return true;
}

int cli_main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("shopkeeper %s\n", SHOPKEEPER_VERSION);
		return EXIT_OK;
	}
	if (strcmp(cmd, "train") == 0)
		return cmd_train(argc - 1, argv + 1);
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(cmd, "inspect") == 0)
		return cmd_inspect(argc - 1, argv + 1);
	if (strcmp(cmd, "eval") == 0)
		return cmd_eval(argc - 1, argv + 1);
	if (strcmp(cmd, "export") == 0)
		return cmd_export(argc - 1, argv + 1);
	if (strcmp(cmd, "catalog") == 0)
		return cmd_catalog(argc - 1, argv + 1);
	if (strcmp(cmd, "customers") == 0)
		return cmd_customers(argc - 1, argv + 1);
	if (strcmp(cmd, "eventlog") == 0)
		return cmd_eventlog(argc - 1, argv + 1);
	if (strcmp(cmd, "report") == 0)
		return cmd_report(argc - 1, argv + 1);
	fprintf(stderr, "shopkeeper: unknown command '%s'\n\n%s", cmd, usage);
	return EXIT_USAGE;
}
