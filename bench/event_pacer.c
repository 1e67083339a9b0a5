/* The paced event writer of bench/event_log_bench.sh: posts batches of
 * random events to POST /v1/events at a fixed rate, over a few keep-alive
 * connections to 127.0.0.1, for a bounded time, and prints what was
 * acknowledged. Written in C because the Python writer it replaces burned
 * most of a core building JSON (on the 2-vCPU bench machine that core was
 * taken from the server being measured).
 *
 *   shopkeeper-event-pacer PORT RATE BATCH SECONDS CUSTOMERS_FILE ITEMS_FILE [CONNS]
 *
 * RATE is events/s over all connections; each connection sends its share
 * on a fixed schedule, the connections' schedules staggered evenly so that
 * the batches arrive one every BATCH/RATE seconds, not all at once (with
 * one shared phase, 16 connections at 20,000 events/s in batches of 100
 * delivered 1,600 events together every 80 ms: a burst the writer works
 * through for some 12 ms, which is the bench's shape, not a shop's). A
 * late request is sent at once, never skipped, so a server that cannot
 * keep up shows as a lower rate reached; the run ends after SECONDS
 * either way, and the rate is what was acknowledged over SECONDS (or over
 * the time it took, if longer). Prints
 *   paced writer: N events/s acknowledged over S s (K non-200)
 *
 *   shopkeeper-event-pacer probe PORT RATE SECONDS CUSTOMERS_FILE [CONNS]
 *
 * The probe paces reads the same way: GET /v1/customers/{id}/recommendations
 * ?n=10 for random customers at RATE requests/s over CONNS (default 16)
 * staggered connections, each request's latency timed from when it was due
 * (so a server that falls behind pays for the requests it delayed, which a
 * closed loop such as wrk hides: there 32 connections on one saturated
 * thread wait 32 / throughput on average whatever the server does). Prints
 *   open loop: N requests at R/s: p50 A p90 B p99 C p99.9 D max E ms (K non-200)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64

typedef struct list {
	char **v;
	size_t n;
} list;

static int port;
static double rate, seconds;
static int batch, conns;
static double start; /* the schedules' common origin (now_s) */
static list custs, items;
static atomic_ullong acked, bad;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
	double d = t - now_s();
	if (d <= 0)
		return;
	struct timespec ts = { (time_t)d, (long)((d - (double)(time_t)d) * 1e9) };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Reads the lines of path (no JSON-special characters: the bench script
 * filtered them) into l. */
static int read_list(const char *path, list *l)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char line[512];
	size_t cap = 0;
	while (fgets(line, sizeof(line), f)) {
		size_t n = strcspn(line, "\r\n");
		if (n == 0)
			continue;
		line[n] = 0;
		if (l->n == cap) {
			cap = cap ? 2 * cap : 1024;
			l->v = realloc(l->v, cap * sizeof(*l->v));
			if (!l->v)
				abort();
		}
		l->v[l->n++] = strdup(line);
	}
	fclose(f);
	return l->n ? 0 : -1;
}

static int connect_local(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = { 15, 0 }; /* bounded: a stuck server ends the run */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads one response; returns its status, or -1. Bodies are small JSON
 * with a Content-Length (libmicrohttpd's answers to a POST). */
static int read_response(int fd, char *buf, size_t cap)
{
	size_t have = 0;
	for (;;) {
		char *end = have ? memmem(buf, have, "\r\n\r\n", 4) : NULL;
		if (end) {
			size_t head = (size_t)(end - buf) + 4;
			buf[head - 1] = 0;
			int status = 0;
			if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
				return -1;
			const char *cl = strcasestr(buf, "\r\ncontent-length:");
			size_t body = cl ? strtoul(cl + 17, NULL, 10) : 0;
			size_t left = have - head < body ? body - (have - head) : 0;
			while (left) {
				ssize_t r = recv(fd, buf, left < cap ? left : cap, 0);
				if (r <= 0)
					return -1;
				left -= (size_t)r;
			}
			return status;
		}
		if (have == cap - 1)
			return -1;
		ssize_t r = recv(fd, buf + have, cap - 1 - have, 0);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		have += (size_t)r;
	}
}

static void *writer(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
	static const char *const kinds[] = { "view", "view", "view", "cart", "purchase" };
	size_t body_cap = (size_t)batch * 200 + 64, req_cap = body_cap + 256;
	char *body = malloc(body_cap), *req = malloc(req_cap), resp[4096];
	if (!body || !req)
		abort();
	int fd = connect_local();
	double per = rate / batch / conns; /* requests/s on this connection */
	double phase = (double)((uintptr_t)arg - 1) / conns; /* of a period */
	for (uint64_t k = 0; fd >= 0; k++) {
		double due = start + ((double)k + phase) / per;
		if (due - start >= seconds || now_s() - start >= seconds)
			break; /* bounded: a server behind the schedule ends it too */
		sleep_until(due);
		size_t n = 0;
		body[n++] = '[';
		for (int i = 0; i < batch; i++)
			n += (size_t)snprintf(body + n, body_cap - n,
					      "%s{\"customer_id\":\"%s\",\"item_id\":\"%s\",\"event\":\"%s\"}",
					      i ? "," : "", custs.v[rand_r(&seed) % custs.n],
					      items.v[rand_r(&seed) % items.n], kinds[rand_r(&seed) % 5]);
		body[n++] = ']';
		int h = snprintf(req, req_cap,
				 "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n", n);
		if (send_all(fd, req, (size_t)h) != 0 || send_all(fd, body, n) != 0)
			break;
		int st = read_response(fd, resp, sizeof(resp));
		if (st < 0)
			break;
		if (st == 200)
			atomic_fetch_add(&acked, (unsigned long long)batch);
		else
			atomic_fetch_add(&bad, 1);
	}
	if (fd >= 0)
		close(fd);
	free(body);
	free(req);
	return NULL;
}

/* ---- probe mode -------------------------------------------------------- */

static double *lat[MAX_CONNS]; /* each connection's latencies, seconds */
static size_t nlat[MAX_CONNS];

static void *prober(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg - 1, seed = me * 2654435761u + 7;
	double per = rate / conns; /* requests/s on this connection */
	double phase = (double)me / conns;
	size_t cap = (size_t)(per * seconds) + 2;
	char req[600], resp[8192];
	lat[me] = malloc(cap * sizeof(double));
	if (!lat[me])
		abort();
	int fd = connect_local();
	for (uint64_t k = 0; fd >= 0 && nlat[me] < cap; k++) {
		double due = start + ((double)k + phase) / per;
		if (due - start >= seconds || now_s() - start >= seconds)
			break;
		sleep_until(due);
		int h = snprintf(req, sizeof(req),
				 "GET /v1/customers/%s/recommendations?n=10 HTTP/1.1\r\n"
				 "Host: 127.0.0.1\r\n\r\n",
				 custs.v[rand_r(&seed) % custs.n]);
		if (h <= 0 || (size_t)h >= sizeof(req) || send_all(fd, req, (size_t)h) != 0)
			break;
		int st = read_response(fd, resp, sizeof(resp));
		if (st < 0)
			break;
		if (st != 200)
			atomic_fetch_add(&bad, 1);
		lat[me][nlat[me]++] = now_s() - due;
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int by_value(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return a < b ? -1 : a > b;
}

static int probe(int argc, char **argv)
{
	if (argc < 6 || argc > 7) {
		fprintf(stderr, "usage: %s probe PORT RATE SECONDS CUSTOMERS_FILE [CONNS]\n", argv[0]);
		return 2;
	}
	port = atoi(argv[2]);
	rate = atof(argv[3]);
	seconds = atof(argv[4]);
	conns = argc == 7 ? atoi(argv[6]) : 16;
	if (port <= 0 || port > 65535 || !(rate > 0) || rate > 1e6 || !(seconds > 0) ||
	    seconds > 3600 || conns < 1 || conns > MAX_CONNS) {
		fprintf(stderr, "event_pacer probe: bad arguments\n");
		return 2;
	}
	if (read_list(argv[5], &custs) != 0) {
		fprintf(stderr, "event_pacer probe: cannot read the id file\n");
		return 1;
	}
	pthread_t th[MAX_CONNS];
	start = now_s();
	for (int i = 0; i < conns; i++)
		if (pthread_create(&th[i], NULL, prober, (void *)(uintptr_t)(i + 1)) != 0)
			return 1;
	size_t n = 0;
	for (int i = 0; i < conns; i++) {
		pthread_join(th[i], NULL);
		n += nlat[i];
	}
	if (n == 0) {
		fprintf(stderr, "event_pacer probe: no answer from port %d\n", port);
		return 1;
	}
	double *all = malloc(n * sizeof(double));
	if (!all)
		abort();
	for (int i = 0, k = 0; i < conns; i++)
		for (size_t j = 0; j < nlat[i]; j++)
			all[k++] = lat[i][j];
	qsort(all, n, sizeof(double), by_value);
#define AT(q) (all[(size_t)((q) * (double)(n - 1))] * 1e3)
	printf("open loop: %zu requests at %.0f/s: p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f ms "
	       "(%llu non-200)\n",
	       n, (double)n / seconds, AT(0.5), AT(0.9), AT(0.99), AT(0.999), all[n - 1] * 1e3,
	       (unsigned long long)atomic_load(&bad));
#undef AT
	free(all);
	for (int i = 0; i < conns; i++)
		free(lat[i]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "probe") == 0)
		return probe(argc, argv);
	if (argc < 7 || argc > 8) {
		fprintf(stderr, "usage: %s PORT RATE BATCH SECONDS CUSTOMERS_FILE ITEMS_FILE [CONNS]\n",
			argv[0]);
		return 2;
	}
	port = atoi(argv[1]);
	rate = atof(argv[2]);
	batch = atoi(argv[3]);
	seconds = atof(argv[4]);
	conns = argc == 8 ? atoi(argv[7]) : 4;
	if (port <= 0 || port > 65535 || !(rate > 0) || batch < 1 || batch > 10000 ||
	    !(seconds > 0) || seconds > 3600 || conns < 1 || conns > MAX_CONNS) {
		fprintf(stderr, "event_pacer: bad arguments\n");
		return 2;
	}
	if (read_list(argv[5], &custs) != 0 || read_list(argv[6], &items) != 0) {
		fprintf(stderr, "event_pacer: cannot read the id files\n");
		return 1;
	}
	pthread_t th[MAX_CONNS];
	start = now_s();
	for (int i = 0; i < conns; i++)
		if (pthread_create(&th[i], NULL, writer, (void *)(uintptr_t)(i + 1)) != 0)
			return 1;
	for (int i = 0; i < conns; i++)
		pthread_join(th[i], NULL);
	double el = now_s() - start;
	if (el < seconds)
		el = seconds; /* the schedule's span, not the last answer's time */
	printf("paced writer: %.0f events/s acknowledged over %.1fs (%llu non-200)\n",
	       (double)atomic_load(&acked) / el, el, (unsigned long long)atomic_load(&bad));
	return 0;
}
