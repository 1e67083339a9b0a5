/*
 * cli_eventlog: `shopkeeper eventlog trim|tail`: the operator's side of the
 * shared event log (eventlog.h). deploy/publish-model.sh trims with it.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "eventlog.h"

static const char eventlog_usage[] =
	"usage: shopkeeper eventlog trim --event-log URL --min-id ID [--chunk N]\n"
	"       shopkeeper eventlog tail --event-log URL\n"
	"\n"
	"The shared event log of replicas started with serve --event-log.\n"
	"\n"
	"  trim    delete the entries before ID (XTRIM MINID) and their ids from the\n"
	"          erasure index. Consent and erasure records are never lost: their\n"
	"          current values stay in the log's compacted flags, which a\n"
	"          bootstrapping replica restores. Trim only up to what the oldest\n"
	"          model still in use covers (its meta record's event_log_position):\n"
	"          deploy/publish-model.sh --event-log does that. An ID after the\n"
	"          newest entry is refused. Prints {\"trimmed\":N,\"min_id\":\"ID\"}.\n"
	"  tail    print the newest entry's id and the stream's length:\n"
	"          {\"last_id\":\"ID\",\"length\":N} (last_id \"0-0\" when empty)\n"
	"\n"
	"  --event-log URL  redis://[:PASSWORD@]HOST:PORT[?stream=KEY] or\n"
	"                   sentinel://[:PASSWORD@]HOST:PORT,.../MASTER[?stream=KEY]\n"
	"                   (default: SHOPKEEPER_EVENT_LOG)\n"
	"  --min-id ID      MS-SEQ, or MS alone (MS-0)\n"
	"  --chunk N        entries trimmed per round trip (default 1000)\n";

/* "MS-SEQ" or "MS". */
static bool parse_min_id(const char *s, eventlog_id *out)
{
	if (eventlog_id_parse(s, strlen(s), out) == 0)
		return true;
	char buf[EVENTLOG_ID_LEN + 2];
	if (strlen(s) > 20)
		return false;
	snprintf(buf, sizeof(buf), "%s-0", s);
	return eventlog_id_parse(buf, strlen(buf), out) == 0;
}

int cmd_eventlog(int argc, char **argv)
{
	enum { O_URL = 1, O_MIN, O_CHUNK, O_HELP };
	static const struct option opts[] = {
		{ "event-log", required_argument, NULL, O_URL },
		{ "min-id", required_argument, NULL, O_MIN },
		{ "chunk", required_argument, NULL, O_CHUNK },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(eventlog_usage, stdout);
		return EXIT_OK;
	}
	if (argc < 2)
		return cli_usage_error("eventlog", "expected a command: trim or tail");
	const char *what = argv[1];
	bool trim = strcmp(what, "trim") == 0;
	if (!trim && strcmp(what, "tail") != 0)
		return cli_usage_error("eventlog", "unknown command '%s': expected trim or tail", what);
	const char *url = getenv("SHOPKEEPER_EVENT_LOG"), *min_s = NULL;
	uint32_t chunk = 1000;
	eventlog_id min_id = EVENTLOG_ID_MIN;
	int c;
	opterr = 0;
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_URL: url = optarg; break;
		case O_MIN:
			min_s = optarg;
			if (!parse_min_id(optarg, &min_id))
				return cli_usage_error("eventlog", "--min-id %s: expected MS-SEQ or MS "
						       "(a stream entry id)", optarg);
			break;
		case O_CHUNK:
			if (!cli_parse_u32(optarg, 1, 100000, &chunk))
				return cli_usage_error("eventlog", "--chunk %s: expected 1 to 100000",
						       optarg);
			break;
		case 'h':
		case O_HELP: fputs(eventlog_usage, stdout); return EXIT_OK;
		default:
			return cli_usage_error("eventlog", "unknown or incomplete option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("eventlog", "unexpected argument '%s'", argv[optind]);
	if (!url || !*url)
		return cli_usage_error("eventlog", "--event-log URL (or SHOPKEEPER_EVENT_LOG) is required");
	if (trim && !min_s)
		return cli_usage_error("eventlog", "trim: --min-id ID is required");
	if (!trim && min_s)
		return cli_usage_error("eventlog", "tail takes no --min-id");

	eventlog_config cfg;
	strbuf err = STRBUF_INIT;
	eventlog *log = NULL;
	int ret = EXIT_RUNTIME;
	if (eventlog_config_parse(url, &cfg, &err) != 0) {
		ret = cli_usage_error("eventlog", "%s", sb_str(&err));
		sb_release(&err);
		return ret;
	}
	eventlog_id last;
	uint64_t length, trimmed = 0;
	char a[EVENTLOG_ID_LEN], b[EVENTLOG_ID_LEN];
	if (eventlog_open(&cfg, &log) != 0) {
		cli_fail("eventlog", "cannot open the event log");
		goto out;
	}
	if (eventlog_tail(log, &last, &length) != 0) {
		cli_fail("eventlog", "%s", eventlog_errmsg(log));
		goto out;
	}
	eventlog_id_format(last, a);
	if (!trim) {
		printf("{\"last_id\":\"%s\",\"length\":%llu}\n", a, (unsigned long long)length);
		ret = EXIT_OK;
		goto out;
	}
	/* A mistyped id past the end would empty the stream: every replica that
	 * bootstraps from then on would miss what the models do not cover. */
	if (eventlog_id_cmp(min_id, eventlog_id_next(last)) > 0) {
		eventlog_id_format(min_id, b);
		cli_fail("eventlog", "--min-id %s is after the newest entry (%s): nothing trimmed", b,
			 a);
		goto out;
	}
	if (eventlog_trim(log, min_id, chunk, &trimmed) != 0) {
		cli_fail("eventlog", "trim: %s", eventlog_errmsg(log));
		goto out;
	}
	eventlog_id_format(min_id, b);
	printf("{\"trimmed\":%llu,\"min_id\":\"%s\"}\n", (unsigned long long)trimmed, b);
	ret = EXIT_OK;
out:
	eventlog_close(log);
	eventlog_config_free(&cfg);
	sb_release(&err);
	return ret;
}
