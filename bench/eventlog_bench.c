/*
 * eventlog_bench: durable appends/s through the shared event log
 * (src/eventlog.c) into a real redis-server with appendonly yes and
 * appendfsync always: what `serve --event-log` can acknowledge.
 *
 *   shopkeeper-eventlog-bench [--url redis://...] [--dir DIR] [--batch 100,1000]
 *                             [--conns 1,4] [--seconds 3] [--replicas N] [--raw]
 *
 * Without --url it starts its own redis-server on a free loopback port,
 * with its files in DIR (default: a new directory under /var/tmp, which is
 * on disk where /tmp may be tmpfs: fsync must reach a disk to count), and
 * --replicas N more as its replicas; each append then WAITs for N of them
 * (what --event-log-replicas N does). Every run appends batches of events
 * from `conns` threads, each with its own connection, for `seconds`, and
 * prints entries/s and the append latency per batch (p50, p99). The stream
 * is emptied between runs. --raw adds the same runs as plain pipelined
 * XADDs without the erasure index (the cost of the append script).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "eventlog.h"
#include "util.h"

#define MAX_LIST 16
#define CUSTOMERS 50000

static char url[1024];
static int g_seconds = 3;
static int g_replicas;
static pid_t children[8];
static int nchildren;

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		abort();
	close(fd);
	return ntohs(a.sin_port);
}

static void start_redis(const char *dir, int port, int primary)
{
	char p[16], pp[16], logf[600];
	snprintf(p, sizeof(p), "%d", port);
	snprintf(pp, sizeof(pp), "%d", primary);
	snprintf(logf, sizeof(logf), "%s/redis-%d.log", dir, port);
	mkdir(dir, 0700);
	pid_t pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 1);
		dup2(null, 2);
		char *argv[] = { "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
				 "--appendonly", "yes", "--appendfsync", "always", "--dir", (char *)dir,
				 "--dbfilename", "dump.rdb", "--appenddirname", "aof", "--logfile", logf,
				 primary ? "--replicaof" : NULL, "127.0.0.1", pp, NULL };
		execvp(argv[0], argv);
		_exit(127);
	}
	children[nchildren++] = pid;
}

static redisContext *raw(int port)
{
	struct timeval tv = { 2, 0 };
	for (int i = 0; i < 200; i++) {
		redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
		if (c && !c->err) {
			redisReply *r = redisCommand(c, "PING");
			bool ok = r && r->type == REDIS_REPLY_STATUS;
			if (r)
				freeReplyObject(r);
			if (ok)
				return c;
		}
		if (c)
			redisFree(c);
		sleep_ms(50);
	}
	fprintf(stderr, "eventlog-bench: redis-server on port %d did not come up\n", port);
	exit(1);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* ---- one run ---------------------------------------------------------------- */

typedef struct worker {
	int id;
	int batch;
	bool raw;
	uint64_t entries;
	double *lat; /* seconds per batch */
	size_t nlat, cap;
	int errors;
	char err[256];
} worker;

static volatile int go, stop_flag;

static void fill(eventlog_record *recs, char (*names)[16], int batch, uint64_t *seq)
{
	for (int i = 0; i < batch; i++, (*seq)++) {
		snprintf(names[i], 16, "c%llu", (unsigned long long)(*seq % CUSTOMERS));
		recs[i] = (eventlog_record){ .kind = EVENTLOG_EVENT, .customer = names[i],
					     .customer_len = strlen(names[i]), .item = "85123A",
					     .item_len = 6, .ts = 1700000000 + (int64_t)*seq,
					     .quantity = 1, .price = 2.55f, .type = (uint8_t)(*seq % 3) };
	}
}

static void *run_worker(void *arg)
{
	worker *w = arg;
	eventlog_config cfg;
	strbuf err = STRBUF_INIT, enc = STRBUF_INIT;
	eventlog *log = NULL;
	redisContext *c = NULL;
	if (eventlog_config_parse(url, &cfg, &err) != 0) {
		snprintf(w->err, sizeof(w->err), "%s", sb_str(&err));
		return NULL;
	}
	eventlog_open(&cfg, &log);
	if (w->raw) {
		struct timeval tv = { 10, 0 };
		c = redisConnectWithTimeout(cfg.hosts[0].host, cfg.hosts[0].port, tv);
		if (cfg.password)
			freeReplyObject(redisCommand(c, "AUTH %s", cfg.password));
	}
	eventlog_record *recs = xcalloc((size_t)w->batch, sizeof(*recs));
	char (*names)[16] = xcalloc((size_t)w->batch, 16);
	uint64_t seq = (uint64_t)w->id * 1000003;
	while (!go)
		sleep_ms(1);
	while (!stop_flag) {
		fill(recs, names, w->batch, &seq);
		double t0 = util_monotonic();
		int rc = 0;
		if (w->raw) {
			/* plain pipelined XADDs of the same encoding, no index */
			for (int i = 0; i < w->batch; i++) {
				sb_reset(&enc);
				eventlog_encode(&recs[i], &enc);
				redisAppendCommand(c, "XADD %b * r %b", cfg.stream, cfg.stream_len,
						   enc.buf, enc.len);
			}
			if (g_replicas)
				redisAppendCommand(c, "WAIT %d 5000", g_replicas);
			for (int i = 0; i < w->batch + (g_replicas > 0) && rc == 0; i++) {
				redisReply *r;
				if (redisGetReply(c, (void **)&r) != REDIS_OK || r->type == REDIS_REPLY_ERROR)
					rc = -1;
				else
					freeReplyObject(r);
			}
		} else {
			int acked;
			rc = eventlog_append(log, recs, (size_t)w->batch, NULL, g_replicas, 5000, &acked);
			if (rc)
				snprintf(w->err, sizeof(w->err), "%s", eventlog_errmsg(log));
		}
		double dt = util_monotonic() - t0;
		if (rc) {
			if (++w->errors > 10)
				break;
			continue;
		}
		w->entries += (uint64_t)w->batch;
		if (w->nlat == w->cap) {
			w->cap = w->cap ? w->cap * 2 : 1024;
			w->lat = xreallocarray(w->lat, w->cap, sizeof(double));
		}
		w->lat[w->nlat++] = dt;
	}
	free(recs);
	free(names);
	if (c)
		redisFree(c);
	eventlog_close(log);
	eventlog_config_free(&cfg);
	sb_release(&err);
	sb_release(&enc);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void run(int batch, int conns, bool use_raw, redisContext *admin)
{
	freeReplyObject(redisCommand(admin, "FLUSHALL"));
	worker *w = xcalloc((size_t)conns, sizeof(*w));
	pthread_t *th = xcalloc((size_t)conns, sizeof(*th));
	go = 0;
	stop_flag = 0;
	for (int i = 0; i < conns; i++) {
		w[i] = (worker){ .id = i, .batch = batch, .raw = use_raw };
		pthread_create(&th[i], NULL, run_worker, &w[i]);
	}
	double t0 = util_monotonic();
	go = 1;
	sleep_ms(g_seconds * 1000);
	stop_flag = 1;
	for (int i = 0; i < conns; i++)
		pthread_join(th[i], NULL);
	double secs = util_monotonic() - t0;
	uint64_t total = 0;
	size_t nlat = 0;
	int errors = 0;
	for (int i = 0; i < conns; i++) {
		total += w[i].entries;
		nlat += w[i].nlat;
		errors += w[i].errors;
	}
	double *all = xcalloc(nlat + 1, sizeof(double));
	size_t k = 0;
	for (int i = 0; i < conns; i++) {
		memcpy(all + k, w[i].lat, w[i].nlat * sizeof(double));
		k += w[i].nlat;
		free(w[i].lat);
	}
	qsort(all, nlat, sizeof(double), cmp_double);
	printf("%-7s batch %5d  conns %2d  replicas %d  %9.0f entries/s  %6zu batches  "
	       "p50 %6.2f ms  p99 %6.2f ms%s%s\n",
	       use_raw ? "raw" : "script", batch, conns, g_replicas, total / secs, nlat,
	       nlat ? all[nlat / 2] * 1000 : 0, nlat ? all[nlat * 99 / 100] * 1000 : 0,
	       errors ? "  ERRORS: " : "", errors ? w[0].err : "");
	fflush(stdout);
	free(all);
	free(w);
	free(th);
}

static int parse_list(const char *s, int *out)
{
	int n = 0;
	while (*s && n < MAX_LIST) {
		char *end;
		long v = strtol(s, &end, 10);
		if (end == s || v <= 0 || v > 10000)
			return -1;
		out[n++] = (int)v;
		s = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -1;
	}
	return n;
}

int main(int argc, char **argv)
{
	int batches[MAX_LIST] = { 100, 1000 }, nb = 2;
	int conns[MAX_LIST] = { 1, 4 }, nc = 2;
	const char *dir = NULL;
	bool with_raw = false, own = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--raw")) {
			with_raw = true;
		} else if (v && !strcmp(a, "--url")) {
			snprintf(url, sizeof(url), "%s", v);
			own = false;
			i++;
		} else if (v && !strcmp(a, "--dir")) {
			dir = v;
			i++;
		} else if (v && !strcmp(a, "--batch") && (nb = parse_list(v, batches)) > 0) {
			i++;
		} else if (v && !strcmp(a, "--conns") && (nc = parse_list(v, conns)) > 0) {
			i++;
		} else if (v && !strcmp(a, "--seconds") && atoi(v) > 0) {
			g_seconds = atoi(v);
			i++;
		} else if (v && !strcmp(a, "--replicas") && atoi(v) >= 0 && atoi(v) <= 4) {
			g_replicas = atoi(v);
			i++;
		} else {
			fprintf(stderr, "usage: %s [--url redis://...] [--dir DIR] [--batch 100,1000] "
				"[--conns 1,4] [--seconds 3] [--replicas N] [--raw]\n", argv[0]);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	char tmp[] = "/var/tmp/shopkeeper-eventlog-bench-XXXXXX";
	int port = 0;
	if (own) {
		if (!dir) {
			if (!mkdtemp(tmp)) {
				perror("mkdtemp");
				return 1;
			}
			dir = tmp;
		}
		port = free_port();
		start_redis(dir, port, 0);
		redisFree(raw(port));
		for (int r = 0; r < g_replicas; r++) {
			char sub[600];
			snprintf(sub, sizeof(sub), "%s/replica%d", dir, r);
			start_redis(sub, free_port(), port);
		}
		snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
	} else if (g_replicas) {
		/* the operator's Redis: WAIT for its replicas as asked */
	}
	eventlog_config cfg;
	strbuf err = STRBUF_INIT;
	if (eventlog_config_parse(url, &cfg, &err) != 0) {
		fprintf(stderr, "%s\n", sb_str(&err));
		return 2;
	}
	redisContext *admin = raw(cfg.hosts[0].port);
	if (cfg.password)
		freeReplyObject(redisCommand(admin, "AUTH %s", cfg.password));
	/* wait (bounded) for the replicas to be online */
	for (int i = 0; g_replicas && i < 200; i++) {
		redisReply *r = redisCommand(admin, "WAIT %d 50", g_replicas);
		bool ok = r && r->type == REDIS_REPLY_INTEGER && r->integer >= g_replicas;
		if (r)
			freeReplyObject(r);
		if (ok)
			break;
	}
	eventlog *log;
	eventlog_open(&cfg, &log);
	enum eventlog_durability d;
	eventlog_check_durability(log, &d, &err);
	printf("# %s\n# %s; files in %s\n", url, sb_str(&err), own ? dir : "(the server's)");
	eventlog_close(log);
	fflush(stdout);
	for (int b = 0; b < nb; b++)
		for (int c = 0; c < nc; c++) {
			run(batches[b], conns[c], false, admin);
			if (with_raw)
				run(batches[b], conns[c], true, admin);
		}
	freeReplyObject(redisCommand(admin, "FLUSHALL"));
	redisFree(admin);
	eventlog_config_free(&cfg);
	sb_release(&err);
	for (int i = 0; i < nchildren; i++) {
		kill(children[i], SIGTERM);
		waitpid(children[i], NULL, 0);
	}
	if (own && dir == tmp)
		nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
