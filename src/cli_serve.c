/*
 * cli_serve: `shopkeeper serve`: open the model and state, run the HTTP
 * daemon, stop cleanly on SIGINT or SIGTERM.
 *
 * Signals: see "signals" below. In short, every thread we start blocks
 * SIGINT, SIGTERM and SIGHUP from birth, a handler catches them in any thread
 * we could not reach, and the main thread is the one place that acts on them.
 *
 * Every option has an environment variable (SHOPKEEPER_THREADS for
 * --threads), read before the flags so that a flag wins: a container is
 * configured either way.
 */
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "applier.h"
#include "eventlog.h"
#include "recommend.h"
#include "events.h"
#include "cli.h"
#include "http.h"
#include "logids.h"
#include "live_items.h"
#include "model.h"
#include "state.h"
#include "timefmt.h"
#include "util.h"

static const char serve_usage[] =
	"usage: shopkeeper serve --model DIR --state DIR [options]\n"
	"\n"
	"Answers the HTTP API from a trained model.\n"
	"\n"
	"  --model DIR        model directory written by 'shopkeeper train'\n"
	"  --state DIR        the server's own state (created if missing)\n"
	"  --listen ADDR      HOST:PORT, [IPV6]:PORT or :PORT (default 127.0.0.1:8080;\n"
	"                     port 0 picks a free port)\n"
	"  --threads N        worker threads (default: number of cores)\n"
	"  --max-body BYTES   largest request body accepted (default 1048576)\n"
	"  --timeout SECONDS  idle connection timeout (default 30)\n"
	"  --state-map MB     initial size of the state's map (default 64; it doubles\n"
	"                     whenever it fills)\n"
	"  --api-keys FILE    API keys, one per line (also SHOPKEEPER_API_KEYS=k1,k2);\n"
	"                     with keys, writing and admin routes need\n"
	"                     'Authorization: Bearer KEY'\n"
	"  --auth-reads       reading routes need a key too (/healthz, /readyz never)\n"
	"  --insecure-no-auth without keys on a non-loopback --listen, serve writing\n"
	"                     and admin routes anyway (by default they answer 403\n"
	"                     protected_mode there; reads are served either way)\n"
	"  --neighbors-used N scoring sums each history item's N best neighbours\n"
	"                     (default: the model's tuned value, else 30)\n"
	"  --cutoff R         ...and skips those contributing under R x the\n"
	"                     strongest contribution, 0 <= R < 1 (default: the\n"
	"                     model's tuned value, else 0.1)\n"
	"  --no-precomputed   score every customer in full, never from the lists\n"
	"                     train --precompute stored (a reference for tests\n"
	"                     and benchmarks: the answers are the same)\n"
	"  --history-weight W how much each history item counts: sqrt, binary,\n"
	"                     recent or log (default: the model's tuned value, else\n"
	"                     sqrt; a request's ?history_weight= overrides it)\n"
	"  --max-connections N         open connections at once; more wait in the\n"
	"                              listen backlog (default 10000)\n"
	"  --max-connections-per-ip N  per client address; more are closed at\n"
	"                              once (default 0: no limit)\n"
	"  --connection-memory BYTES   per-connection memory for the request line\n"
	"                              and headers; more is a 431 (default 16384,\n"
	"                              16384 to 1048576)\n"
	"  --max-unsent-per-connection BYTES  largest answer a connection may hold\n"
	"                              unsent; a bigger one is a 503 (default\n"
	"                              8388608; 65536 to 1073741824)\n"
	"  --max-unsent-total BYTES    answers held unsent by all connections (clients\n"
	"                              that do not read); past it answers over 16 KiB\n"
	"                              are a 503 (default 268435456; 1048576 to\n"
	"                              4294967295)\n"
	"  --access-log FILE|-         one JSON line per request (time, method, path,\n"
	"                              status, duration_us, bytes); '-' is stdout;\n"
	"                              off by default; reopened on SIGHUP\n"
	"  --access-log-sample RATE    fraction of requests logged, 0 < RATE <= 1\n"
	"                              (default 1)\n"
	"  --access-log-ids hash|raw   customer ids in logged paths: 'hash' (the\n"
	"                              default) logs ~ and a keyed hash (SipHash-2-4)\n"
	"                              in place of the id, so an erased customer's id\n"
	"                              is not left in the log; 'raw' logs the path as sent\n"
	"  --access-log-key FILE       the hash's key, 32 hex digits (default\n"
	"                              STATE/access-log.key, made when missing); give\n"
	"                              replicas the same key to follow one customer\n"
	"  --clock auto|model|wall     the clock segments, triggers and events run\n"
	"                     on: 'wall' is real time; 'model' runs from the data's\n"
	"                     as-of time, advancing since training (for a historical\n"
	"                     log); 'auto' (default) is 'model' when the data ended\n"
	"                     over 30 days before training, else 'wall'\n"
	"  --drain-timeout SECONDS     on SIGTERM, how long requests in flight may\n"
	"                              take to finish (default 5; 0 to 600)\n"
	"  --event-log URL             share live state with other replicas through a\n"
	"                              Redis stream: redis://[:PASSWORD@]HOST:PORT[?stream=KEY]\n"
	"                              or sentinel://[:PASSWORD@]HOST:PORT,.../MASTER[?...]\n"
	"                              (docs/event-log.md); writes go to the log first and\n"
	"                              are answered once applied here\n"
	"  --event-log-replicas N      a write is acknowledged only once N Redis replicas\n"
	"                              have it too (WAIT N; default 0)\n"
	"  --max-lag SECONDS           /readyz answers 503 while this replica is more\n"
	"                              than SECONDS behind the log (default 5)\n"
	"  --max-live-customers N      customers with live events the state keeps\n"
	"                              (default 1000000; 1 to 4294967295); past it\n"
	"                              events of new customers are a 503\n"
	"                              live_customer_limit, known ones still write\n"
	"  --experiments FILE          A/B experiments (JSON; docs/operations.md,\n"
	"                              \"Experiments\"): who gets which variant on which\n"
	"                              route; loaded again with the model on SIGHUP and\n"
	"                              POST /admin/reload (a bad file keeps both)\n"
	"  --max-live-items N          items added since training (PUT /v1/items/{id}\n"
	"                              of an item the model does not know) the state\n"
	"                              serves (default 1000; 1 to 100000); past it such\n"
	"                              a PUT is a 507 live_items_full\n"
	"  --live-customer-ttl DAYS    drop the events of a customer who never bought\n"
	"                              once their newest is older than DAYS on the\n"
	"                              model's clock (default 30; 0: never)\n"
	"  --attribution-days DAYS     an untagged purchase of an item recommended to\n"
	"                              that customer within DAYS counts as view-through\n"
	"                              for the experiment's variant (default 7; 1 to 365)\n"
	"  --commit-delay MS           while writes come in concurrently, start a group\n"
	"                              commit no sooner than MS after the last, so more\n"
	"                              writes share it; a client waiting for each answer\n"
	"                              is not held back (default 20; 0 to 1000; 0: off;\n"
	"                              not with --event-log)\n"
	"  --merge-after MS            acknowledged events wait in the state's journal,\n"
	"                              written in sequence, and are merged into the\n"
	"                              customers' logs once the oldest is MS old, when\n"
	"                              the writer is free (reads see them at once;\n"
	"                              default 5000; 0 to 600000; 0: straight into the\n"
	"                              logs; not with --event-log)\n"
	"  --writer-wait MS            the event writer (with --event-log: the applier)\n"
	"                              runs at idle priority, so that requests come\n"
	"                              first; a write that has waited MS (the applier:\n"
	"                              MS without progress) puts it back at the ordinary\n"
	"                              priority until it catches up (default 1000; 0 to\n"
	"                              60000; 0: always ordinary). Needs CAP_SYS_NICE or\n"
	"                              RLIMIT_NICE >= 20 (root outside a container has\n"
	"                              it), else ordinary\n"
	"\n"
	"Every option can also be set in the environment: SHOPKEEPER_ and the\n"
	"option's name in capitals with '_' for '-' (SHOPKEEPER_LISTEN=0.0.0.0:8080,\n"
	"SHOPKEEPER_THREADS=4, SHOPKEEPER_AUTH_READS=1; --api-keys is\n"
	"SHOPKEEPER_API_KEYS_FILE). A flag wins over its variable.\n"
	"\n"
	"SIGINT or SIGTERM: stop accepting connections, finish requests in flight\n"
	"(up to --drain-timeout), exit 0. SIGHUP (or POST /admin/reload): load the\n"
	"model in --model (and --experiments) again and switch to it; SIGHUP also\n"
	"reopens the access log.\n";

/* Everything the flags (or their environment variables) set. */
struct serve_opts {
	const char *model_dir, *state_dir, *listen, *keys_file, *access_log, *access_log_key;
	bool access_log_raw_ids;
	bool auth_reads, insecure_no_auth;
	rec_params params; /* scoring */
	uint32_t max_conn, max_per_ip, threads, max_body, timeout, state_map_mb,
		drain_s, conn_memory, max_unsent_conn, max_unsent_total, max_live, max_items;
	double log_sample, live_ttl_days;
	uint32_t attribution_days, commit_delay_ms, writer_wait_ms, merge_after_ms;
	const char *event_log; /* URL, or NULL: single node */
	uint32_t log_replicas;
	double max_lag;
	enum model_clock clock;
	const char *experiments; /* --experiments FILE, or NULL */
};

enum { O_MODEL = 1, O_STATE, O_LISTEN, O_THREADS, O_BODY, O_TIMEOUT, O_MAP, O_KEYS,
       O_AUTH_READS, O_MAXCONN, O_MAXIP, O_NUSED, O_CUTOFF, O_HW, O_ALOG, O_ALOG_SAMPLE, O_DRAIN,
       O_CONNMEM, O_UNSENT_CONN, O_UNSENT_TOTAL, O_INSECURE, O_ALOG_IDS, O_ALOG_KEY,
       O_EVENT_LOG, O_LOG_REPLICAS, O_MAX_LAG, O_CLOCK, O_MAX_LIVE, O_LIVE_TTL, O_EXPERIMENTS,
       O_ATTR_DAYS, O_NO_PRECOMPUTED, O_MAX_ITEMS, O_COMMIT_DELAY, O_WRITER_WAIT, O_MERGE_AFTER, O_HELP };

static const struct option serve_opts_table[] = {
	{ "model", required_argument, NULL, O_MODEL },
	{ "state", required_argument, NULL, O_STATE },
	{ "listen", required_argument, NULL, O_LISTEN },
	{ "threads", required_argument, NULL, O_THREADS },
	{ "max-body", required_argument, NULL, O_BODY },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "state-map", required_argument, NULL, O_MAP },
	{ "api-keys", required_argument, NULL, O_KEYS },
	{ "auth-reads", no_argument, NULL, O_AUTH_READS },
	{ "no-precomputed", no_argument, NULL, O_NO_PRECOMPUTED },
	{ "insecure-no-auth", no_argument, NULL, O_INSECURE },
	{ "max-connections", required_argument, NULL, O_MAXCONN },
	{ "neighbors-used", required_argument, NULL, O_NUSED },
	{ "cutoff", required_argument, NULL, O_CUTOFF },
	{ "history-weight", required_argument, NULL, O_HW },
	{ "max-connections-per-ip", required_argument, NULL, O_MAXIP },
	{ "access-log", required_argument, NULL, O_ALOG },
	{ "access-log-sample", required_argument, NULL, O_ALOG_SAMPLE },
	{ "access-log-ids", required_argument, NULL, O_ALOG_IDS },
	{ "access-log-key", required_argument, NULL, O_ALOG_KEY },
	{ "drain-timeout", required_argument, NULL, O_DRAIN },
	{ "connection-memory", required_argument, NULL, O_CONNMEM },
	{ "max-unsent-per-connection", required_argument, NULL, O_UNSENT_CONN },
	{ "max-unsent-total", required_argument, NULL, O_UNSENT_TOTAL },
	{ "event-log", required_argument, NULL, O_EVENT_LOG },
	{ "event-log-replicas", required_argument, NULL, O_LOG_REPLICAS },
	{ "max-lag", required_argument, NULL, O_MAX_LAG },
	{ "clock", required_argument, NULL, O_CLOCK },
	{ "max-live-customers", required_argument, NULL, O_MAX_LIVE },
	{ "max-live-items", required_argument, NULL, O_MAX_ITEMS },
	{ "live-customer-ttl", required_argument, NULL, O_LIVE_TTL },
	{ "experiments", required_argument, NULL, O_EXPERIMENTS },
	{ "attribution-days", required_argument, NULL, O_ATTR_DAYS },
	{ "commit-delay", required_argument, NULL, O_COMMIT_DELAY },
	{ "writer-wait", required_argument, NULL, O_WRITER_WAIT },
	{ "merge-after", required_argument, NULL, O_MERGE_AFTER },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 },
};

/* Applies one option; `what` names it for messages ("--threads 0" or
 * "SHOPKEEPER_THREADS=0"). Returns 0 or EXIT_USAGE (message printed). */
static int serve_apply(struct serve_opts *o, int code, const char *arg, const char *what)
{
	switch (code) {
	case O_MODEL: o->model_dir = arg; break;
	case O_STATE: o->state_dir = arg; break;
	case O_LISTEN: o->listen = arg; break;
	case O_THREADS:
		if (!cli_parse_u32(arg, 1, 256, &o->threads))
			return cli_usage_error("serve", "%s: expected an integer from 1 to 256", what);
		break;
	case O_BODY:
		if (!cli_parse_u32(arg, 1024, 1u << 30, &o->max_body))
			return cli_usage_error("serve", "%s: expected bytes from 1024 to 1073741824", what);
		break;
	case O_TIMEOUT:
		if (!cli_parse_u32(arg, 1, 3600, &o->timeout))
			return cli_usage_error("serve", "%s: expected seconds from 1 to 3600", what);
		break;
	case O_MAP:
		if (!cli_parse_u32(arg, 1, 1u << 20, &o->state_map_mb))
			return cli_usage_error("serve", "%s: expected megabytes from 1 to 1048576", what);
		break;
	case O_KEYS: o->keys_file = arg; break;
	case O_CLOCK:
		if (model_clock_parse(arg, &o->clock) != 0)
			return cli_usage_error("serve", "%s: expected auto, model or wall", what);
		break;
	case O_NUSED:
		if (!cli_parse_u32(arg, 1, 1000, &o->params.neighbors_used))
			return cli_usage_error("serve", "%s: expected 1 to 1000", what);
		break;
	case O_CUTOFF:
		if (!cli_parse_cutoff(arg, &o->params.cutoff))
			return cli_usage_error("serve", "%s: expected a number from 0 to below 1", what);
		break;
	case O_HW:
		if (rec_history_weight_parse(arg, strlen(arg), &o->params.history_weight) != 0)
			return cli_usage_error("serve", "%s: expected sqrt, binary, recent or log", what);
		break;
	case O_AUTH_READS:
	case O_INSECURE:
	case O_NO_PRECOMPUTED: {
		bool *flag = code == O_AUTH_READS ? &o->auth_reads
			     : code == O_INSECURE ? &o->insecure_no_auth
						  : &o->params.no_precomputed;
		/* A flag has no argument; its variable says 1/0. */
		if (!arg || !strcmp(arg, "1") || !strcmp(arg, "true") || !strcmp(arg, "yes"))
			*flag = true;
		else if (!strcmp(arg, "0") || !strcmp(arg, "false") || !strcmp(arg, "no") || !*arg)
			*flag = false;
		else
			return cli_usage_error("serve", "%s: expected 1 or 0", what);
		break;
	}
	case O_MAXCONN:
		if (!cli_parse_u32(arg, 1, 1000000, &o->max_conn))
			return cli_usage_error("serve", "%s: expected 1 to 1000000", what);
		break;
	case O_MAXIP:
		if (!cli_parse_u32(arg, 0, 1000000, &o->max_per_ip))
			return cli_usage_error("serve", "%s: expected 0 to 1000000", what);
		break;
	case O_ALOG:
		if (!*arg)
			return cli_usage_error("serve", "%s: expected a file name or '-'", what);
		o->access_log = arg;
		break;
	case O_ALOG_SAMPLE:
		if (!cli_parse_double(arg, &o->log_sample) || !(o->log_sample > 0) ||
		    o->log_sample > 1)
			return cli_usage_error("serve", "%s: expected a fraction, 0 < RATE <= 1", what);
		break;
	case O_ALOG_IDS:
		if (strcmp(arg, "hash") && strcmp(arg, "raw"))
			return cli_usage_error("serve", "%s: expected hash or raw", what);
		o->access_log_raw_ids = !strcmp(arg, "raw");
		break;
	case O_ALOG_KEY:
		if (!*arg)
			return cli_usage_error("serve", "%s: expected a file name", what);
		o->access_log_key = arg;
		break;
	case O_DRAIN:
		if (!cli_parse_u32(arg, 0, 600, &o->drain_s))
			return cli_usage_error("serve", "%s: expected seconds from 0 to 600", what);
		break;
	case O_CONNMEM:
		/* Under 16 KiB a path near its 8 KiB limit would no longer reach
		 * the JSON 414. */
		if (!cli_parse_u32(arg, 16384, 1u << 20, &o->conn_memory))
			return cli_usage_error("serve", "%s: expected bytes from 16384 to 1048576", what);
		break;
	case O_UNSENT_CONN:
		if (!cli_parse_u32(arg, 65536, 1u << 30, &o->max_unsent_conn))
			return cli_usage_error("serve", "%s: expected bytes from 65536 to 1073741824",
					       what);
		break;
	case O_EVENT_LOG:
		o->event_log = *arg ? arg : NULL; /* an empty variable: single node */
		break;
	case O_LOG_REPLICAS:
		if (!cli_parse_u32(arg, 0, 100, &o->log_replicas))
			return cli_usage_error("serve", "%s: expected 0 to 100 Redis replicas", what);
		break;
	case O_MAX_LAG:
		if (!cli_parse_double(arg, &o->max_lag) || !(o->max_lag > 0) || o->max_lag > 86400)
			return cli_usage_error("serve", "%s: expected seconds, 0 < SECONDS <= 86400", what);
		break;
	case O_MAX_LIVE:
		/* No "unlimited": a cap far above any shop is one explicit flag. */
		if (!cli_parse_u32(arg, 1, UINT32_MAX, &o->max_live))
			return cli_usage_error("serve", "%s: expected customers from 1 to 4294967295",
					       what);
		break;
	case O_EXPERIMENTS: o->experiments = arg; break;
	case O_MAX_ITEMS:
		if (!cli_parse_u32(arg, 1, LIVE_ITEMS_LIMIT, &o->max_items))
			return cli_usage_error("serve", "%s: expected items from 1 to %u", what,
					       LIVE_ITEMS_LIMIT);
		break;
	case O_LIVE_TTL:
		if (!cli_parse_double(arg, &o->live_ttl_days) || !(o->live_ttl_days >= 0) ||
		    o->live_ttl_days > 36500)
			return cli_usage_error("serve", "%s: expected days from 0 to 36500 (0: never)",
					       what);
		break;
	case O_ATTR_DAYS:
		if (!cli_parse_u32(arg, 1, 365, &o->attribution_days))
			return cli_usage_error("serve", "%s: expected days from 1 to 365", what);
		break;
	case O_COMMIT_DELAY:
		if (!cli_parse_u32(arg, 0, 1000, &o->commit_delay_ms))
			return cli_usage_error("serve", "%s: expected milliseconds from 0 to 1000",
					       what);
		break;
	case O_MERGE_AFTER:
		if (!cli_parse_u32(arg, 0, 600000, &o->merge_after_ms))
			return cli_usage_error("serve", "%s: expected milliseconds from 0 to 600000",
					       what);
		break;
	case O_WRITER_WAIT:
		if (!cli_parse_u32(arg, 0, 60000, &o->writer_wait_ms))
			return cli_usage_error("serve", "%s: expected milliseconds from 0 to 60000",
					       what);
		break;
	case O_UNSENT_TOTAL:
		if (!cli_parse_u32(arg, 1u << 20, UINT32_MAX, &o->max_unsent_total))
			return cli_usage_error("serve", "%s: expected bytes from 1048576 to 4294967295",
					       what);
		break;
	}
	return 0;
}

/* SHOPKEEPER_<NAME> for an option: capitals, '_' for '-'; --api-keys is
 * SHOPKEEPER_API_KEYS_FILE (SHOPKEEPER_API_KEYS holds the keys themselves). */
static void serve_env_name(const char *opt, char *out, size_t cap)
{
	size_t n = (size_t)snprintf(out, cap, "SHOPKEEPER_%s", opt);
	for (size_t i = 11; i < n && i < cap; i++)
		out[i] = out[i] == '-' ? '_' : (char)(out[i] >= 'a' && out[i] <= 'z' ? out[i] - 32 : out[i]);
	if (!strcmp(opt, "api-keys"))
		snprintf(out, cap, "SHOPKEEPER_API_KEYS_FILE");
}

/* Opens the access log: "-" is stdout. Returns the descriptor or -1. */
static int access_log_open(const char *path)
{
	if (!strcmp(path, "-"))
		return STDOUT_FILENO;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd == 0) { /* stdin was closed; 0 means "off" to the http layer */
		int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		close(fd);
		fd = high;
	}
	return fd;
}

/* ---- signals -------------------------------------------------------------
 * A process-directed signal goes to any thread that does not block it, and
 * SIGHUP's and SIGTERM's default action ends the whole process: one thread
 * with an empty mask is enough to turn a logrotate SIGHUP into a death
 * (issue 21: exit 143, no drain). So serve_signals_block() runs before we
 * start any thread (events writer, daemon pool, log filter), which all
 * inherit its mask. That does not reach threads started before main: the
 * pthread build of OpenBLAS starts nproc - 1 pool threads in a library
 * constructor, with nothing blocked. Hence the handler too: whichever thread
 * takes a signal only sets a flag and writes a byte to a pipe (both
 * async-signal-safe), and the main thread, which alone unblocks them, reads
 * the pipe and acts. A storm of SIGHUPs sets the same flag: reloads coalesce. */
static int sig_pipe[2] = { -1, -1 };
static atomic_int sig_stop;   /* SIGINT or SIGTERM taken: its number */
static atomic_bool sig_reload; /* SIGHUP taken since the last reload */

static void on_signal(int sig)
{
	int saved = errno;
	if (sig == SIGHUP)
		atomic_store(&sig_reload, true);
	else
		atomic_store(&sig_stop, sig);
	char c = 0;
	ssize_t w = write(sig_pipe[1], &c, 1);
	(void)w; /* a full pipe already wakes the reader */
	errno = saved;
}

/* Blocks the handled signals in this thread (and every thread it starts
 * from now on) and installs the handler. Returns 0 or -1 (errno set). */
static int serve_signals_block(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, set, NULL) != 0)
		return -1;
	if (pipe2(sig_pipe, O_CLOEXEC) != 0)
		return -1;
	fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK);
	atomic_store(&sig_stop, 0);
	atomic_store(&sig_reload, false);
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	sigfillset(&sa.sa_mask);
	return sigaction(SIGINT, &sa, NULL) | sigaction(SIGTERM, &sa, NULL) |
	       sigaction(SIGHUP, &sa, NULL);
}

/* ---- the shared event log --------------------------------------------------
 * Checks what Redis promises (a warning, loud, when a 2xx would not be
 * durable), then starts the applier and the writer in log mode. Redis
 * unreachable at start is not fatal: reads are served from the local
 * state, writes answer 503 until it is back, the applier retries. */
static int event_log_start(const eventlog_config *lcfg, const struct serve_opts *o, state *st,
			   const model *m, applier **ap, events_writer **ew, strbuf *err)
{
	eventlog *chk = NULL;
	strbuf msg = STRBUF_INIT;
	enum eventlog_durability level = EVENTLOG_UNKNOWN;
	if (eventlog_open(lcfg, &chk) != 0) {
		sb_adds(err, "cannot open the event log");
		return -1;
	}
	if (eventlog_check_durability(chk, &level, &msg) != 0)
		fprintf(stderr, "shopkeeper: event log: unreachable at start (%s): serving reads from "
			"the local state; writes answer 503 until it is back\n", eventlog_errmsg(chk));
	else if (level != EVENTLOG_DURABLE)
		fprintf(stderr, "shopkeeper: WARNING: %s; an acknowledged write may be lost "
			"(docs/event-log.md)\n", msg.buf);
	else
		fprintf(stderr, "shopkeeper: stream %s: %s\n", lcfg->stream, msg.buf);
	sb_release(&msg);
	eventlog_close(chk);

	const model_info *info = model_get_info(m);
	applier_config acfg = { .state = st, .log = lcfg, .model_has_pos = info->has_log_position,
				.model_ms = info->log_position_ms, .model_seq = info->log_position_seq };
	if (applier_start(&acfg, ap, err) != 0)
		return -1;
	/* WAIT must give up before the connection's reply timeout does. */
	int wait_ms = lcfg->timeout_ms > 1 ? lcfg->timeout_ms / 2 : 1;
	return events_writer_start_log(st, lcfg, *ap, (int)o->log_replicas, wait_ms, ew, err);
}

int cmd_serve(int argc, char **argv)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct serve_opts o = {
		.listen = "127.0.0.1:8080", .max_conn = 10000,
		.params = { .neighbors_used = 0, .cutoff = -1.0f, .negatives_used = UINT32_MAX,
			    .content_weight = -1.0f, .content_count = -1.0f,
			    .history_weight = REC_HW_UNSET }, /* not given: the model's own */
		.threads = ncpu > 0 ? (uint32_t)ncpu : 1, .max_body = HTTP_MAX_BODY_DEFAULT,
		.timeout = 30, .state_map_mb = 64, .drain_s = 5, .log_sample = 1.0,
		.conn_memory = HTTP_CONNECTION_MEMORY_DEFAULT,
		.max_unsent_conn = HTTP_MAX_UNSENT_PER_CONNECTION_DEFAULT,
		.max_unsent_total = HTTP_MAX_UNSENT_TOTAL_DEFAULT, .max_lag = 5.0,
		.max_live = STATE_MAX_LIVE_DEFAULT, .max_items = LIVE_ITEMS_DEFAULT_MAX,
		.live_ttl_days = STATE_LIVE_TTL_DEFAULT / 86400.0,
		.attribution_days = ATTRIBUTION_DAYS_DEFAULT,
		.commit_delay_ms = (uint32_t)(EVENTS_COMMIT_DELAY_DEFAULT * 1000),
		.writer_wait_ms = (uint32_t)(EVENTS_WRITER_WAIT_DEFAULT * 1000),
		.merge_after_ms = (uint32_t)(EVENTS_MERGE_AFTER_DEFAULT * 1000),
	};
	int c;

	/* The environment first, so that flags win. */
	for (const struct option *op = serve_opts_table; op->name; op++) {
		char env[64], what[160];
		if (op->val == O_HELP)
			continue;
		serve_env_name(op->name, env, sizeof(env));
		const char *v = getenv(env);
		if (!v)
			continue;
		snprintf(what, sizeof(what), "%s=%.80s", env, v);
		if (serve_apply(&o, op->val, v, what) != 0)
			return EXIT_USAGE;
	}
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", serve_opts_table, NULL)) != -1) {
		if (c == 'h' || c == O_HELP) {
			fputs(serve_usage, stdout);
			return EXIT_OK;
		}
		if (c == '?' || c == ':')
			return cli_usage_error("serve", "unknown or incomplete option '%s'", argv[optind - 1]);
		char what[160];
		const struct option *op = serve_opts_table;
		while (op->name && op->val != c)
			op++;
		snprintf(what, sizeof(what), "--%s %.80s", op->name ? op->name : "?",
			 optarg ? optarg : "");
		if (serve_apply(&o, c, optarg, what) != 0)
			return EXIT_USAGE;
	}
	if (optind < argc)
		return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
	if (!o.model_dir)
		return cli_usage_error("serve", "--model DIR is required");
	if (!o.state_dir)
		return cli_usage_error("serve", "--state DIR is required");

	eventlog_config lcfg = { 0 };
	strbuf lerr = STRBUF_INIT;
	if (o.event_log && eventlog_config_parse(o.event_log, &lcfg, &lerr) != 0) {
		int rc = cli_usage_error("serve", "%s", lerr.buf);
		sb_release(&lerr);
		return rc;
	}
	sb_release(&lerr);
	if (!o.event_log && o.log_replicas)
		return cli_usage_error("serve", "--event-log-replicas needs --event-log URL");

	/* Requests are single-threaded computations; BLAS threads here would
	 * only fight the pool for cores. */
	openblas_set_num_threads(1);

	strbuf err = STRBUF_INIT, desc = STRBUF_INIT;
	model *m = NULL;
	state *st = NULL;
	api *a = NULL;
	auth *keys = NULL;
	events_writer *ew = NULL;
	applier *ap = NULL;
	attribution *attr = NULL;
	http_server *srv = NULL;
	logids_filter *log_filter = NULL;
	int log_fd = -1, log_pipe = 0; /* log_pipe: what the daemon writes to */
	int ret = EXIT_RUNTIME;

	/* Before the first thread we start: see "signals". */
	sigset_t sigs;
	if (serve_signals_block(&sigs) != 0) {
		cli_fail("serve", "cannot set up signal handling: %s", strerror(errno));
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);

	if (auth_load(o.keys_file, getenv("SHOPKEEPER_API_KEYS"), &keys, &err) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	if (o.auth_reads && !keys) {
		ret = cli_usage_error("serve", "--auth-reads needs API keys (--api-keys FILE or "
				      "SHOPKEEPER_API_KEYS)");
		goto out;
	}
	if (o.insecure_no_auth && keys) {
		ret = cli_usage_error("serve", "--insecure-no-auth and API keys contradict each "
				      "other: choose one");
		goto out;
	}
	/* Protected mode: see auth.h. Decided before the daemon starts, so no
	 * request is ever served under the wrong rule. */
	if (!keys && !o.insecure_no_auth && !auth_listen_is_loopback(o.listen))
		keys = auth_protected();
	if (o.access_log && (log_fd = access_log_open(o.access_log)) < 0) {
		cli_fail("serve", "--access-log %s: %s", o.access_log, strerror(errno));
		goto out;
	}
	model_set_clock(o.clock); /* before the model is opened: see model.h */
	if (model_open(o.model_dir, &m, &err) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	if (state_open(o.state_dir, (uint64_t)o.state_map_mb << 20, &st, &err) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	if (log_fd >= 0) {
		log_pipe = log_fd;
		if (!o.access_log_raw_ids) {
			strbuf keypath = STRBUF_INIT;
			logids_key key;
			if (o.access_log_key)
				sb_adds(&keypath, o.access_log_key);
			else
				sb_addf(&keypath, "%s/access-log.key", o.state_dir);
			int rc = logids_key_load(sb_str(&keypath), !o.access_log_key, &key, &err);
			if (rc == 0)
				rc = logids_filter_start(log_fd, &key, &log_pipe, &log_filter, &err);
			memset(&key, 0, sizeof(key));
			sb_release(&keypath);
			if (rc != 0) {
				cli_fail("serve", "%s", err.buf);
				goto out;
			}
		}
	}
	state_set_live_limits(st, o.max_live, (int64_t)(o.live_ttl_days * 86400.0));
	state_set_attribution_window(st, (int64_t)o.attribution_days * 86400);
	if (o.event_log) {
		if (event_log_start(&lcfg, &o, st, m, &ap, &ew, &err) != 0) {
			cli_fail("serve", "%s", err.buf);
			goto out;
		}
		/* The applier is this replica's state writer. */
		if (o.writer_wait_ms)
			applier_set_idle(ap, o.writer_wait_ms / 1000.0);
	} else {
		state_set_merge_after(st, o.merge_after_ms / 1000.0);
		if (events_writer_start(st, &ew, &err) != 0) {
			cli_fail("serve", "%s", err.buf);
			goto out;
		}
		events_writer_set_commit_delay(ew, o.commit_delay_ms / 1000.0);
		if (o.writer_wait_ms)
			events_writer_set_idle(ew, o.writer_wait_ms / 1000.0);
	}
	/* Described now: once serving, a reload may free this model's info. */
	const model_info *info = model_get_info(m);
	sb_addf(&desc, "model %s (%s, %u items, %u customers) from %s", info->model_id,
		info->algorithm, info->n_items, info->n_customers, o.model_dir);
	{
		char now[TIME_FMT_LEN];
		time_format(model_now(m), now);
		sb_addf(&desc, ", clock %s (%s clock, now %s)", model_clock_setting(),
			model_clock_name(m), now);
	}
	a = api_create(m, st, ew, o.model_dir);
	m = NULL; /* the api owns it now */
	api_set_auth(a, keys, o.auth_reads);
	api_set_params(a, &o.params);
	/* Served answers of experiments, counted about once a second. */
	if ((o.event_log ? attribution_start_log(st, &lcfg, &attr, &err)
			 : attribution_start(st, &attr, &err)) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	api_set_attribution(a, attr);
	if (o.max_items != LIVE_ITEMS_DEFAULT_MAX)
		api_set_max_live_items(a, o.max_items);
	if (ap) {
		api_set_event_log(a, ap, o.max_lag);
		applier_set_erasure_hook(ap, api_forget_segments, a);
	}
	if (o.live_ttl_days > 0)
		events_writer_sweep(ew, api_now, a); /* stopped before api_free */
	/* After api_set_attribution: loading the file defines each
	 * experiment for the report. */
	if (o.experiments) {
		if (api_set_experiments(a, o.experiments, &err) != 0) {
			cli_fail("serve", "--experiments %s", err.buf);
			goto out;
		}
		sb_addf(&desc, ", experiments from %s", o.experiments);
	}

	signal(SIGPIPE, SIG_IGN);

	http_config cfg = { .listen = o.listen, .threads = o.threads, .timeout_s = o.timeout,
			    .max_body = o.max_body, .max_connections = o.max_conn,
			    .max_connections_per_ip = o.max_per_ip, .handler = api_handle, .app = a,
			    .thread_free = api_thread_free, .access_log_fd = log_pipe > 0 ? log_pipe : 0,
			    .access_log_sample = o.log_sample, .connection_memory = o.conn_memory,
			    .max_unsent_per_connection = o.max_unsent_conn,
			    .max_unsent_total = o.max_unsent_total };
	if (http_start(&cfg, &srv, &err) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	api_set_connections(a, http_connections, srv);
	/* The startup line: one line with what an operator checks first. */
	fprintf(stderr, "shopkeeper %s: serving on port %u, listen %s, %u threads, %s, state %s, "
		"API keys %s, access log %s%s\n", SHOPKEEPER_VERSION, http_port(srv), o.listen, o.threads,
		sb_str(&desc), o.state_dir,
		!keys ? (o.insecure_no_auth ? "off (--insecure-no-auth)" : "off")
		: auth_is_protected(keys) ? "off (protected mode: writing and admin routes refused)"
		: o.auth_reads ? "on all routes" : "on writing routes",
		o.access_log ? o.access_log : "off",
		!o.access_log ? "" : o.access_log_raw_ids ? " (raw ids)" : " (customer ids hashed)");
	fflush(stderr);

	/* From here on the main thread takes the signals (see "signals"). */
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	for (;;) {
		if (atomic_load(&sig_stop))
			break;
		if (!atomic_exchange(&sig_reload, false)) {
			char buf[64];
			ssize_t n = read(sig_pipe[0], buf, sizeof(buf));
			(void)n; /* the flags say what happened; EINTR just loops */
			continue;
		}
		/* SIGHUP: switch to the model now in --model, if it is sound. */
		sb_reset(&err);
		if (api_reload(a, &err) == 0)
			fprintf(stderr, "shopkeeper: SIGHUP: reloaded %s%s%s\n", o.model_dir,
				o.experiments ? " and " : "", o.experiments ? o.experiments : "");
		else
			fprintf(stderr, "shopkeeper: SIGHUP: kept the current model%s: %s\n",
				o.experiments ? " and experiments" : "", err.buf);
		/* ... and reopen the access log, for logrotate: dup2 swaps the file
		 * under the same descriptor, atomically for the writing threads. */
		if (log_fd > STDOUT_FILENO) {
			int fd = access_log_open(o.access_log);
			if (fd >= 0 && log_filter) {
				logids_filter_reopen(log_filter, fd); /* after the lines it holds */
				continue;
			}
			if (fd < 0 || dup2(fd, log_fd) < 0)
				fprintf(stderr, "shopkeeper: SIGHUP: cannot reopen %s: %s\n", o.access_log,
					strerror(errno));
			if (fd >= 0)
				close(fd);
		}
	}
	int sig = atomic_load(&sig_stop);
	fprintf(stderr, "shopkeeper: %s received, draining\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
	fflush(stderr);
	unsigned left = http_drain(srv, o.drain_s * 1000);
	if (left)
		fprintf(stderr, "shopkeeper: %u requests still in flight after %u s; stopping\n", left,
			o.drain_s);
	else
		fprintf(stderr, "shopkeeper: drained; stopping\n");
	ret = EXIT_OK;
out:
	http_stop(srv);
	logids_filter_stop(log_filter); /* the daemon wrote its last line */
	attribution_stop(attr); /* after the last answer: its served counts flushed */
	events_writer_stop(ew); /* after the last request that could queue */
	applier_stop(ap);       /* after the writer: answers what still waits */
	api_free(a);
	auth_free(keys);
	state_close(st);
	model_close(m);
	if (log_fd > STDOUT_FILENO)
		close(log_fd);
	sb_release(&desc);
	sb_release(&err);
	eventlog_config_free(&lcfg);
	for (int i = 0; i < 2; i++)
		if (sig_pipe[i] >= 0) {
			close(sig_pipe[i]);
			sig_pipe[i] = -1;
		}
	return ret;
}
