/*
 * cli_serve: `shopkeeper serve`: open the model and state, run the HTTP
 * daemon, stop cleanly on SIGINT or SIGTERM.
 *
 * Signals are blocked before the daemon's threads start (they inherit the
 * mask) and taken synchronously with sigwait() in the main thread, so no
 * handler runs in the middle of a request.
 */
#include <cblas.h>
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
	"                     (default 30)\n"
	"  --max-connections N         open connections at once; more wait in the\n"
	"                              listen backlog (default 10000)\n"
	"  --max-connections-per-ip N  per client address; more are closed at\n"
	"                              once (default 0: no limit)\n"
	"  --connection-memory BYTES   per-connection memory for the request line\n"
	"                              and headers; more is a 431 (default 24576,\n"
	"                              16384 to 1048576)\n"
	"\n"
	"SIGINT or SIGTERM: finish requests in flight and exit. SIGHUP (or\n"
	"POST /admin/reload): load the model in --model again and switch to it.\n";

int cmd_serve(int argc, char **argv)
{
	enum { O_MODEL = 1, O_STATE, O_LISTEN, O_THREADS, O_BODY, O_TIMEOUT, O_MAP, O_KEYS,
	       O_AUTH_READS, O_MAXCONN, O_MAXIP, O_NUSED, O_CONNMEM, O_HELP };
	static const struct option opts[] = {
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
		{ "max-connections-per-ip", required_argument, NULL, O_MAXIP },
		{ "connection-memory", required_argument, NULL, O_CONNMEM },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *model_dir = NULL, *state_dir = NULL, *listen = "127.0.0.1:8080";
	const char *keys_file = NULL;
	bool auth_reads = false;
	uint32_t max_conn = 10000, max_per_ip = 0, neighbors_used = REC_DEFAULT_NEIGHBORS_USED;
	uint32_t conn_memory = HTTP_CONNECTION_MEMORY_DEFAULT;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	uint32_t threads = ncpu > 0 ? (uint32_t)ncpu : 1, max_body = HTTP_MAX_BODY_DEFAULT,
		 timeout = 30, state_map_mb = 64;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_MODEL: model_dir = optarg; break;
		case O_STATE: state_dir = optarg; break;
		case O_LISTEN: listen = optarg; break;
		case O_THREADS:
			if (!cli_parse_u32(optarg, 1, 256, &threads))
				return cli_usage_error("serve", "--threads %s: expected an integer from 1 to 256", optarg);
			break;
		case O_BODY:
			if (!cli_parse_u32(optarg, 1024, 1u << 30, &max_body))
				return cli_usage_error("serve", "--max-body %s: expected bytes from 1024 to 1073741824", optarg);
			break;
		case O_TIMEOUT:
			if (!cli_parse_u32(optarg, 1, 3600, &timeout))
				return cli_usage_error("serve", "--timeout %s: expected seconds from 1 to 3600", optarg);
			break;
		case O_MAP:
			if (!cli_parse_u32(optarg, 1, 1u << 20, &state_map_mb))
				return cli_usage_error("serve", "--state-map %s: expected megabytes from 1 to 1048576", optarg);
			break;
		case O_KEYS: keys_file = optarg; break;
		case O_NUSED:
			if (!cli_parse_u32(optarg, 1, 1000, &neighbors_used))
				return cli_usage_error("serve", "--neighbors-used %s: expected 1 to 1000", optarg);
			break;
		case O_AUTH_READS: auth_reads = true; break;
		case O_MAXCONN:
			if (!cli_parse_u32(optarg, 1, 1000000, &max_conn))
				return cli_usage_error("serve", "--max-connections %s: expected 1 to 1000000", optarg);
			break;
		case O_MAXIP:
			if (!cli_parse_u32(optarg, 0, 1000000, &max_per_ip))
				return cli_usage_error("serve", "--max-connections-per-ip %s: expected 0 to 1000000", optarg);
			break;
		case O_CONNMEM:
			/* Under 16 KiB a path near its 8 KiB limit would no longer
			 * reach the JSON 414. */
			if (!cli_parse_u32(optarg, 16384, 1u << 20, &conn_memory))
				return cli_usage_error("serve", "--connection-memory %s: expected bytes from 16384 to 1048576", optarg);
			break;
		case 'h':
		case O_HELP: fputs(serve_usage, stdout); return EXIT_OK;
		default:
			return cli_usage_error("serve", "unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
	if (!model_dir)
		return cli_usage_error("serve", "--model DIR is required");
	if (!state_dir)
		return cli_usage_error("serve", "--state DIR is required");

	/* Requests are single-threaded computations; BLAS threads here would
	 * only fight the pool for cores. */
	openblas_set_num_threads(1);

	strbuf err = STRBUF_INIT;
	model *m = NULL;
	state *st = NULL;
	api *a = NULL;
	auth *keys = NULL;
	events_writer *ew = NULL;
	http_server *srv = NULL;
	int ret = EXIT_RUNTIME;

	if (auth_load(keys_file, getenv("SHOPKEEPER_API_KEYS"), &keys, &err) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	if (auth_reads && !keys) {
		ret = cli_usage_error("serve", "--auth-reads needs API keys (--api-keys FILE or "
				      "SHOPKEEPER_API_KEYS)");
		goto out;
	}
	if (model_open(model_dir, &m, &err) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	if (state_open(state_dir, (uint64_t)state_map_mb << 20, &st, &err) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	if (events_writer_start(st, &ew, &err) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	const model_info *info = model_get_info(m);
	fprintf(stderr, "shopkeeper %s: model %s (%s, %u items, %u customers)\n", SHOPKEEPER_VERSION,
		info->model_id, info->algorithm, info->n_items, info->n_customers);
	a = api_create(m, st, ew, model_dir);
	m = NULL; /* the api owns it now */
	api_set_auth(a, keys, auth_reads);
	api_set_neighbors_used(a, neighbors_used);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	http_config cfg = { .listen = listen, .threads = threads, .timeout_s = timeout,
			    .max_body = max_body, .max_connections = max_conn,
			    .max_connections_per_ip = max_per_ip, .connection_memory = conn_memory,
			    .handler = api_handle, .app = a,
			    .thread_free = api_thread_free };
	if (http_start(&cfg, &srv, &err) != 0) {
		cli_fail("serve", "%s", err.buf);
		goto out;
	}
	fprintf(stderr, "shopkeeper: serving on port %u, listen %s, %u threads, state %s, "
		"API keys %s\n", http_port(srv), listen, threads, state_dir,
		!keys ? "off" : auth_reads ? "on all routes" : "on writing routes");
	fflush(stderr);

	api_set_connections(a, http_connections, srv);
	int sig = 0;
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGINT || sig == SIGTERM)
			break;
		/* SIGHUP: switch to the model now in --model, if it is sound. */
		sb_reset(&err);
		if (api_reload(a, &err) == 0)
			fprintf(stderr, "shopkeeper: SIGHUP: reloaded %s\n", model_dir);
		else
			fprintf(stderr, "shopkeeper: SIGHUP: kept the current model: %s\n", err.buf);
	}
	fprintf(stderr, "shopkeeper: %s received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
	ret = EXIT_OK;
out:
	http_stop(srv);
	events_writer_stop(ew); /* after the last request that could queue */
	api_free(a);
	auth_free(keys);
	state_close(st);
	model_close(m);
	sb_release(&err);
	return ret;
}
