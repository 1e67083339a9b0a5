/*
 * cli_serve: `shopkeeper serve`: open the model and state, run the HTTP
 * daemon, stop cleanly on SIGINT or SIGTERM.
 *
 * Signals are blocked before the daemon's threads start (they inherit the
 * mask) and taken synchronously with sigwait() in the main thread, so no
 * handler runs in the middle of a request.
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
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "recommend.h"
#include "events.h"
#include "cli.h"
#include "http.h"
#include "store.h"
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
	"  --neighbors-used N scoring sums each history item's N best neighbours\n"
	"                     (default: the model's tuned value, else 30)\n"
	"  --cutoff R         ...and skips those contributing under R x the\n"
	"                     strongest contribution, 0 <= R < 1 (default: the\n"
	"                     model's tuned value, else 0.1)\n"
	"  --max-connections N         open connections at once; more wait in the\n"
	"                              listen backlog (default 10000)\n"
	"  --max-connections-per-ip N  per client address; more are closed at\n"
	"                              once (default 0: no limit)\n"
	"  --connection-memory BYTES   per-connection memory for the request line\n"
	"                              and headers; more is a 431 (default 16384,\n"
	"                              16384 to 1048576)\n"
	"  --access-log FILE|-         one JSON line per request (time, method, path,\n"
	"                              status, duration_us, bytes); '-' is stdout;\n"
	"                              off by default; reopened on SIGHUP\n"
	"  --access-log-sample RATE    fraction of requests logged, 0 < RATE <= 1\n"
	"                              (default 1)\n"
	"  --drain-timeout SECONDS     on SIGTERM, how long requests in flight may\n"
	"                              take to finish (default 5; 0 to 600)\n"
	"\n"
	"Every option can also be set in the environment: SHOPKEEPER_ and the\n"
	"option's name in capitals with '_' for '-' (SHOPKEEPER_LISTEN=0.0.0.0:8080,\n"
	"SHOPKEEPER_THREADS=4, SHOPKEEPER_AUTH_READS=1; --api-keys is\n"
	"SHOPKEEPER_API_KEYS_FILE). A flag wins over its variable.\n"
	"\n"
	"SIGINT or SIGTERM: stop accepting connections, finish requests in flight\n"
	"(up to --drain-timeout), exit 0. SIGHUP (or POST /admin/reload): load the\n"
	"model in --model again and switch to it; SIGHUP also reopens the access log.\n";

/* Everything the flags (or their environment variables) set. */
struct serve_opts {
	const char *model_dir, *state_dir, *listen, *keys_file, *access_log;
	bool auth_reads;
	rec_params params; /* scoring */
	uint32_t max_conn, max_per_ip, threads, max_body, timeout, state_map_mb,
		drain_s, conn_memory;
	double log_sample;
};

enum { O_MODEL = 1, O_STATE, O_LISTEN, O_THREADS, O_BODY, O_TIMEOUT, O_MAP, O_KEYS,
       O_AUTH_READS, O_MAXCONN, O_MAXIP, O_NUSED, O_CUTOFF, O_ALOG, O_ALOG_SAMPLE, O_DRAIN,
       O_CONNMEM, O_HELP };

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
	{ "max-connections", required_argument, NULL, O_MAXCONN },
	{ "neighbors-used", required_argument, NULL, O_NUSED },
	{ "cutoff", required_argument, NULL, O_CUTOFF },
	{ "max-connections-per-ip", required_argument, NULL, O_MAXIP },
	{ "access-log", required_argument, NULL, O_ALOG },
	{ "access-log-sample", required_argument, NULL, O_ALOG_SAMPLE },
	{ "drain-timeout", required_argument, NULL, O_DRAIN },
	{ "connection-memory", required_argument, NULL, O_CONNMEM },
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
	case O_NUSED:
		if (!cli_parse_u32(arg, 1, 1000, &o->params.neighbors_used))
			return cli_usage_error("serve", "%s: expected 1 to 1000", what);
		break;
	case O_CUTOFF:
		if (!cli_parse_cutoff(arg, &o->params.cutoff))
			return cli_usage_error("serve", "%s: expected a number from 0 to below 1", what);
		break;
	case O_AUTH_READS:
		/* A flag has no argument; its variable says 1/0. */
		if (!arg || !strcmp(arg, "1") || !strcmp(arg, "true") || !strcmp(arg, "yes"))
			o->auth_reads = true;
		else if (!strcmp(arg, "0") || !strcmp(arg, "false") || !strcmp(arg, "no") || !*arg)
			o->auth_reads = false;
		else
			return cli_usage_error("serve", "%s: expected 1 or 0", what);
		break;
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

int cmd_serve(int argc, char **argv)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct serve_opts o = {
		.listen = "127.0.0.1:8080", .max_conn = 10000,
		.params = { 0, -1.0f, UINT32_MAX }, /* not given: the model's own */
		.threads = ncpu > 0 ? (uint32_t)ncpu : 1, .max_body = HTTP_MAX_BODY_DEFAULT,
		.timeout = 30, .state_map_mb = 64, .drain_s = 5, .log_sample = 1.0,
		.conn_memory = HTTP_CONNECTION_MEMORY_DEFAULT,
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

	/* Requests are single-threaded computations; BLAS threads here would
	 * only fight the pool for cores. */
	openblas_set_num_threads(1);

	strbuf err = STRBUF_INIT, desc = STRBUF_INIT;
	model *m = NULL;
	state *st = NULL;
	api *a = NULL;
	auth *keys = NULL;
	events_writer *ew = NULL;
	http_server *srv = NULL;
	int log_fd = -1;
	int ret = EXIT_RUNTIME;

	if (auth_load(o.keys_file, getenv("SHOPKEEPER_API_KEYS"), &keys, &err) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	if (o.auth_reads && !keys) {
		ret = cli_usage_error("serve", "--auth-reads needs API keys (--api-keys FILE or "
				      "SHOPKEEPER_API_KEYS)");
		goto out;
	}
	if (o.access_log && (log_fd = access_log_open(o.access_log)) < 0) {
		cli_fail("serve", "--access-log %s: %s", o.access_log, strerror(errno));
		goto out;
	}
	if (model_open(o.model_dir, &m, &err) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	if (state_open(o.state_dir, (uint64_t)o.state_map_mb << 20, &st, &err) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	if (events_writer_start(st, &ew, &err) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	/* Described now: once serving, a reload may free this model's info. */
	const model_info *info = model_get_info(m);
	sb_addf(&desc, "model %s (%s, %u items, %u customers) from %s", info->model_id,
		info->algorithm, info->n_items, info->n_customers, o.model_dir);
	a = api_create(m, st, ew, o.model_dir);
	m = NULL; /* the api owns it now */
	api_set_auth(a, keys, o.auth_reads);
	api_set_params(a, &o.params);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	http_config cfg = { .listen = o.listen, .threads = o.threads, .timeout_s = o.timeout,
			    .max_body = o.max_body, .max_connections = o.max_conn,
			    .max_connections_per_ip = o.max_per_ip, .handler = api_handle, .app = a,
			    .thread_free = api_thread_free, .access_log_fd = log_fd > 0 ? log_fd : 0,
			    .access_log_sample = o.log_sample, .connection_memory = o.conn_memory };
	if (http_start(&cfg, &srv, &err) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	api_set_connections(a, http_connections, srv);
	/* The startup line: one line with what an operator checks first. */
	fprintf(stderr, "shopkeeper %s: serving on port %u, listen %s, %u threads, %s, state %s, "
		"API keys %s, access log %s\n", SHOPKEEPER_VERSION, http_port(srv), o.listen, o.threads,
		sb_str(&desc), o.state_dir,
		!keys ? "off" : o.auth_reads ? "on all routes" : "on writing routes",
		o.access_log ? o.access_log : "off");
	fflush(stderr);

	int sig = 0;
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGINT || sig == SIGTERM)
			break;
		/* SIGHUP: switch to the model now in --model, if it is sound. */
		sb_reset(&err);
		if (api_reload(a, &err) == 0)
			fprintf(stderr, "shopkeeper: SIGHUP: reloaded %s\n", o.model_dir);
		else
			fprintf(stderr, "shopkeeper: SIGHUP: kept the current model: %s\n", err.buf);
		/* ... and reopen the access log, for logrotate: dup2 swaps the file
		 * under the same descriptor, atomically for the writing threads. */
		if (log_fd > STDOUT_FILENO) {
			int fd = access_log_open(o.access_log);
			if (fd < 0 || dup2(fd, log_fd) < 0)
				fprintf(stderr, "shopkeeper: SIGHUP: cannot reopen %s: %s\n", o.access_log,
					strerror(errno));
			if (fd >= 0)
				close(fd);
		}
	}
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
	events_writer_stop(ew); /* after the last request that could queue */
	api_free(a);
	auth_free(keys);
	state_close(st);
	model_close(m);
	if (log_fd > STDOUT_FILENO)
		close(log_fd);
	sb_release(&desc);
	sb_release(&err);
	return ret;
}
