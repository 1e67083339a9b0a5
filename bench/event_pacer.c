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
 * The probe paces reads: GET /v1/customers/{id}/recommendations?n=10 for
 * random customers, request k due at k / RATE seconds and sent on any of
 * CONNS (default 16) keep-alive connections that is free (late if none
 * is), each request's latency timed from when it was due
 * (so a server that falls behind pays for the requests it delayed, which a
 * closed loop such as wrk hides: there 32 connections on one saturated
 * thread wait 32 / throughput on average whatever the server does). Prints
 *   open loop: N requests at R/s: p50 A p90 B p99 C p99.9 D max E ms (K non-200);
 *   sent late p99 F max G ms; from sent p99 H ms
 * where "sent late" is how long after it was due each request went out
 * (the client's own delay, part of its latency) and "from sent" times
 * each answer from when its request went out instead.
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
#include <sys/epoll.h>
#include <sys/prctl.h>
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

/* Parses the head of the response that buf[0..have) begins with: 1 with
 * its status, the head's length and the body's (Content-Length, 0 when
 * absent) when the head is all there, 0 when more is to come, -1 when it
 * is malformed. buf has room for one more byte (it is written and put
 * back). */
static int response_head(char *buf, size_t have, int *status, size_t *head, size_t *body)
{
	char *end = have ? memmem(buf, have, "\r\n\r\n", 4) : NULL;
	if (!end)
		return 0;
	*head = (size_t)(end - buf) + 4;
	char save = buf[*head - 1];
	buf[*head - 1] = 0;
	const char *cl = strcasestr(buf, "\r\ncontent-length:");
	*body = cl ? strtoul(cl + 17, NULL, 10) : 0;
	int ok = sscanf(buf, "HTTP/1.%*d %d", status) == 1;
	buf[*head - 1] = save;
	return ok ? 1 : -1;
}

/* Reads one response; returns its status, or -1. Bodies are small JSON
 * with a Content-Length (libmicrohttpd's answers to a POST). */
static int read_response(int fd, char *buf, size_t cap)
{
	size_t have = 0, head, body;
	int status;
	for (;;) {
		int got = response_head(buf, have, &status, &head, &body);
		if (got < 0)
			return -1;
		if (got) {
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

/* One thread and epoll, not a thread per connection: the threaded probe
 * this replaces woke one of 16 threads per answer, and on the pacer's core
 * those wakeups queued behind the pacer's threads (A/B on one server at
 * 10,000/s, AMD EPYC, 2026-12-03: p50 0.21 against 0.16 ms, p99 higher in
 * 6 pairs of 6). Each request's lateness (sent minus due) is kept too: a
 * late request was either the client's own delay or, with all CONNS
 * connections waiting for answers, the server's. */
typedef struct probe_conn {
	int fd;
	double due;  /* when the request in flight was due; < 0 when idle */
	double sent; /* when it went out */
	size_t have; /* bytes of its response read so far */
	char buf[16384];
} probe_conn;

static probe_conn *pconn;
static double *lat;  /* every answered request's latency, seconds */
static double *late; /* every sent request's lateness: sent minus due */
static double *flight; /* every answered request's time from sent to answer */
static size_t nlat, nsent;
/* PROBE_SLOW_MS: print each answer slower than this to stderr, with when it
 * was due on CLOCK_MONOTONIC, to line up with `perf sched record -k
 * CLOCK_MONOTONIC` (how bench/hot-path.md round eleven found the stalls
 * both vCPUs share). */
static double slow_ms;

static int probe_open(probe_conn *c, int ep)
{
	c->fd = connect_local();
	c->due = -1;
	c->have = 0;
	if (c->fd < 0)
		return -1;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

/* 1 when c's buffer holds a whole response (its status in *status), 0 when
 * more is to come, -1 when it is malformed or larger than the buffer. */
static int probe_complete(probe_conn *c, int *status)
{
	size_t head, body;
	int got = response_head(c->buf, c->have, status, &head, &body);
	if (got == 0)
		return c->have < sizeof(c->buf) - 1 ? 0 : -1;
	if (got < 0 || head + body >= sizeof(c->buf))
		return -1;
	return c->have >= head + body ? 1 : 0;
}

/* Sends request nsent (due at due) on c. */
static int probe_send(probe_conn *c, double due, unsigned *seed)
{
	char req[600];
	int h = snprintf(req, sizeof(req),
			 "GET /v1/customers/%s/recommendations?n=10 HTTP/1.1\r\n"
			 "Host: 127.0.0.1\r\n\r\n",
			 custs.v[rand_r(seed) % custs.n]);
	double now = now_s();
	if (h <= 0 || (size_t)h >= sizeof(req) || send_all(c->fd, req, (size_t)h) != 0)
		return -1;
	late[nsent] = now - due;
	c->due = due;
	c->sent = now;
	c->have = 0;
	return 0;
}

/* Runs the schedule: request k is due at start + k / rate and goes out on
 * any idle connection once due (late when all are busy, which its latency,
 * timed from when it was due, then includes). Bounded: ends at the latest
 * 2 * SECONDS + 15 s after it began, answered or not. */
static int probe_run(void)
{
	size_t total = (size_t)(rate * seconds);
	unsigned seed = 7;
	int ep = epoll_create1(0);
	if (ep < 0)
		return -1;
	for (int i = 0; i < conns; i++)
		if (probe_open(&pconn[i], ep) != 0) {
			close(ep);
			return -1;
		}
	int busy = 0;
	start = now_s();
	for (;;) {
		double now = now_s();
		for (int i = 0; i < conns && nsent < total; i++) {
			probe_conn *c = &pconn[i];
			double due = start + (double)nsent / rate;
			if (due > now)
				break;
			if (c->fd < 0 || c->due >= 0)
				continue;
			if (probe_send(c, due, &seed) != 0) {
				atomic_fetch_add(&bad, 1);
				close(c->fd);
				probe_open(c, ep); /* a fresh connection, or none */
				continue;
			}
			nsent++;
			busy++;
		}
		int open = 0;
		for (int i = 0; i < conns; i++)
			open += pconn[i].fd >= 0;
		if ((nsent == total && busy == 0) || open == 0)
			break;
		if (now - start > seconds * 2 + 15)
			break; /* bounded: a stuck server ends the run */
		double wait = nsent < total ? start + (double)nsent / rate - now : 1.0;
		if (wait < 0 || busy == conns)
			wait = busy == conns ? 1.0 : 0;
		struct timespec ts = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };
		struct epoll_event evs[MAX_CONNS];
		int n = epoll_pwait2(ep, evs, MAX_CONNS, &ts, NULL);
		if (n < 0 && errno != EINTR)
			break;
		for (int e = 0; e < n; e++) {
			probe_conn *c = evs[e].data.ptr;
			ssize_t r = recv(c->fd, c->buf + c->have, sizeof(c->buf) - 1 - c->have,
					 MSG_DONTWAIT);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			int status = 0, done = -1; /* -1: closed or malformed */
			if (r > 0) {
				c->have += (size_t)r;
				done = probe_complete(c, &status);
			}
			if (done == 0)
				continue;
			if (c->due < 0) /* an answer to nothing asked: drop the connection */
				done = -1;
			else
				busy--;
			if (done == 1) {
				double t = now_s(), l = t - c->due;
				flight[nlat] = t - c->sent;
				lat[nlat++] = l;
				if (slow_ms > 0 && l * 1e3 > slow_ms)
					fprintf(stderr, "slow: due %.6f latency %.3f ms\n", c->due, l * 1e3);
				if (status != 200)
					atomic_fetch_add(&bad, 1);
				c->due = -1;
				continue;
			}
			atomic_fetch_add(&bad, 1); /* reconnect; its request is lost */
			close(c->fd);
			probe_open(c, ep);
		}
	}
	for (int i = 0; i < conns; i++)
		if (pconn[i].fd >= 0)
			close(pconn[i].fd);
	close(ep);
	return 0;
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
	pconn = calloc((size_t)conns, sizeof(*pconn));
	lat = malloc(((size_t)(rate * seconds) + 1) * sizeof(double));
	late = malloc(((size_t)(rate * seconds) + 1) * sizeof(double));
	flight = malloc(((size_t)(rate * seconds) + 1) * sizeof(double));
	if (!pconn || !lat || !late || !flight)
		abort();
	const char *sm = getenv("PROBE_SLOW_MS");
	slow_ms = sm ? atof(sm) : 0;
	prctl(PR_SET_TIMERSLACK, 1UL); /* wake when due, not up to 50 us after */
	if (probe_run() != 0) {
		fprintf(stderr, "event_pacer probe: cannot connect to port %d\n", port);
		return 1;
	}
	size_t n = nlat;
	if (n == 0) {
		fprintf(stderr, "event_pacer probe: no answer from port %d\n", port);
		return 1;
	}
	qsort(lat, n, sizeof(double), by_value);
	qsort(late, nsent, sizeof(double), by_value);
	qsort(flight, n, sizeof(double), by_value);
	/* The q-quantile of v[0..k), in milliseconds. */
#define AT(v, k, q) ((v)[(size_t)((q) * (double)((k) - 1))] * 1e3)
	printf("open loop: %zu requests at %.0f/s: p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f ms "
	       "(%llu non-200); sent late p99 %.3f max %.3f ms; from sent p99 %.3f ms\n",
	       n, (double)n / seconds, AT(lat, n, 0.5), AT(lat, n, 0.9), AT(lat, n, 0.99),
	       AT(lat, n, 0.999), lat[n - 1] * 1e3, (unsigned long long)atomic_load(&bad),
	       AT(late, nsent, 0.99), late[nsent - 1] * 1e3, AT(flight, n, 0.99));
#undef AT
	free(lat);
	free(late);
	free(flight);
	free(pconn);
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
