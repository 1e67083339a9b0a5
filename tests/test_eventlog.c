/*
 * test_eventlog: the shared event log's client against real Redis
 * processes (redis-server, redis-sentinel) that the test starts on
 * loopback ports it picks, in a scratch directory, and stops again.
 *
 * Without redis-server the Redis cases fail loudly (CI installs it; make
 * test installs it when run as root): a missing Redis must not turn into
 * a silently green suite.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "eventlog.h"
#include "harness.h"
#include "util.h"

/* ---- processes ------------------------------------------------------------ */

#define MAX_PROCS 16
static pid_t procs[MAX_PROCS];
static char scratch[256];

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void stop_proc(pid_t pid, int sig)
{
	if (pid <= 0)
		return;
	kill(pid, sig);
	/* bounded: a process that ignores SIGTERM for 5 s gets SIGKILL */
	for (int i = 0; i < 100; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			goto forget;
		sleep_ms(50);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
forget:
	for (int i = 0; i < MAX_PROCS; i++)
		if (procs[i] == pid)
			procs[i] = 0;
}

static void cleanup(void)
{
	for (int i = 0; i < MAX_PROCS; i++)
		if (procs[i] > 0)
			stop_proc(procs[i], SIGKILL);
	if (scratch[0] && !harness_failed)
		nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	else if (scratch[0])
		fprintf(stderr, "test_eventlog: Redis logs kept in %s\n", scratch);
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

static pid_t spawn(char *const argv[])
{
	pid_t pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	for (int i = 0; i < MAX_PROCS; i++)
		if (procs[i] == 0) {
			procs[i] = pid;
			break;
		}
	return pid;
}

/* A raw connection for the test's own checks (INFO, CONFIG SET, ...). */
static redisContext *raw(int port, const char *password)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	if (!c || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (password) {
		redisReply *r = redisCommand(c, "AUTH %s", password);
		if (r)
			freeReplyObject(r);
	}
	return c;
}

/* Waits (up to 10 s) until the server on port answers PING. */
static bool wait_up(int port, const char *password)
{
	for (int i = 0; i < 200; i++) {
		redisContext *c = raw(port, password);
		if (c) {
			redisReply *r = redisCommand(c, "PING");
			bool ok = r && r->type == REDIS_REPLY_STATUS;
			if (r)
				freeReplyObject(r);
			redisFree(c);
			if (ok)
				return true;
		}
		sleep_ms(50);
	}
	return false;
}

/* The first line of INFO's answer starting with `field:`, its value. */
static bool info_field(int port, const char *section, const char *field, char *out, size_t size)
{
	redisContext *c = raw(port, NULL);
	if (!c)
		return false;
	redisReply *r = redisCommand(c, "INFO %s", section);
	bool found = false;
	if (r && r->type == REDIS_REPLY_STRING) {
		char key[64];
		snprintf(key, sizeof(key), "\n%s:", field);
		const char *p = strstr(r->str, key);
		if (p) {
			p += strlen(key);
			size_t n = strcspn(p, "\r\n");
			snprintf(out, size, "%.*s", (int)n, p);
			found = true;
		}
	}
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return found;
}

typedef struct server {
	int port;
	pid_t pid;
	char dir[300];
} server;

static bool have_redis;

/* Starts redis-server with appendfsync always in its own directory;
 * extra arguments (NULL-terminated) follow. */
static bool server_start(server *s, const char *name, ...)
{
	if (!have_redis)
		return false;
	if (!s->port) {
		s->port = free_port();
		snprintf(s->dir, sizeof(s->dir), "%s/%s", scratch, name);
		mkdir(s->dir, 0700);
	}
	char port[16], logfile[340];
	snprintf(port, sizeof(port), "%d", s->port);
	snprintf(logfile, sizeof(logfile), "%s/redis.log", s->dir);
	char *argv[40] = { "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
			   "--appendonly", "yes", "--appendfsync", "always", "--dir", s->dir,
			   "--logfile", logfile };
	int argc = 15;
	va_list ap;
	va_start(ap, name);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && argc < 38)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	s->pid = spawn(argv);
	return true;
}

static eventlog *open_url(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static eventlog *open_url(const char *fmt, ...)
{
	char url[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(url, sizeof(url), fmt, ap);
	va_end(ap);
	eventlog_config cfg;
	strbuf err = STRBUF_INIT;
	eventlog *log = NULL;
	if (eventlog_config_parse(url, &cfg, &err) != 0) {
		fprintf(stderr, "%s: %s\n", url, sb_str(&err));
	} else {
		eventlog_open(&cfg, &log);
		eventlog_config_free(&cfg);
	}
	sb_release(&err);
	return log;
}

static eventlog_record ev(const char *customer, const char *item, float qty)
{
	return (eventlog_record){ .kind = EVENTLOG_EVENT, .customer = customer,
				  .customer_len = strlen(customer), .item = item,
				  .item_len = strlen(item), .ts = 1700000000, .quantity = qty,
				  .price = 2.5f, .type = 1 };
}

static eventlog_record flag(int kind, const char *customer, bool personalization)
{
	return (eventlog_record){ .kind = (uint8_t)kind, .customer = customer,
				  .customer_len = strlen(customer),
				  .personalization = personalization };
}

static eventlog_record item_rec(const char *item, unsigned set, unsigned clear)
{
	return (eventlog_record){ .kind = EVENTLOG_ITEM, .item = item, .item_len = strlen(item),
				  .item_set = (uint8_t)set, .item_clear = (uint8_t)clear };
}

static eventlog_record catalog_rec(const char *item, unsigned fields, const char *title,
				   const char *category, float price, int32_t first_seen)
{
	return (eventlog_record){ .kind = EVENTLOG_CATALOG, .item = item, .item_len = strlen(item),
				  .catalog_fields = (uint8_t)fields, .title = title,
				  .title_len = title ? strlen(title) : 0, .category = category,
				  .category_len = category ? strlen(category) : 0, .price = price,
				  .first_seen = first_seen };
}

static bool rec_eq(const eventlog_record *a, const eventlog_record *b)
{
#define SEQ(f) (a->f##_len == b->f##_len && (a->f##_len == 0 || memcmp(a->f, b->f, a->f##_len) == 0))
	return a->kind == b->kind && SEQ(customer) && SEQ(item) && SEQ(rec_id) && a->ts == b->ts &&
	       a->quantity == b->quantity && a->price == b->price && a->type == b->type &&
	       a->personalization == b->personalization && a->item_set == b->item_set &&
	       a->item_clear == b->item_clear && a->experiment == b->experiment &&
	       a->variant == b->variant && a->n_items == b->n_items &&
	       a->n_hashes == b->n_hashes &&
	       (a->n_hashes == 0 || memcmp(a->hashes, b->hashes, 8u * a->n_hashes) == 0) &&
	       a->catalog_fields == b->catalog_fields && SEQ(title) && SEQ(category) &&
	       a->first_seen == b->first_seen;
#undef SEQ
}

/* Every entry of the stream, oldest first, scanned with XRANGE in pages
 * of `page`; returns the count and fills b with the last page. */
static size_t scan_all(eventlog *log, size_t page, size_t (*fn)(const eventlog_entry *, void *),
		       void *arg)
{
	eventlog_batch b = { 0 };
	eventlog_id from = EVENTLOG_ID_MIN;
	size_t total = 0;
	for (int guard = 0; guard < 100000; guard++) {
		if (eventlog_range(log, from, EVENTLOG_ID_MAX, page, &b) != 0) {
			fprintf(stderr, "scan: %s\n", eventlog_errmsg(log));
			break;
		}
		for (size_t i = 0; i < b.n; i++)
			total += fn ? fn(&b.entries[i], arg) : 1;
		if (b.n < page)
			break;
		from = eventlog_id_next(b.entries[b.n - 1].id);
	}
	eventlog_batch_release(&b);
	return total;
}

/* ---- without Redis ---------------------------------------------------------------- */

TEST(ids)
{
	eventlog_id id;
	char buf[EVENTLOG_ID_LEN];
	CHECK_INT(eventlog_id_parse("1700000000123-7", 15, &id), 0);
	CHECK(id.ms == 1700000000123ULL && id.seq == 7);
	eventlog_id_format(id, buf);
	CHECK_STR(buf, "1700000000123-7");
	eventlog_id_format(EVENTLOG_ID_MAX, buf);
	CHECK_STR(buf, "18446744073709551615-18446744073709551615");
	CHECK_INT(eventlog_id_parse(buf, strlen(buf), &id), 0);
	CHECK(eventlog_id_cmp(id, EVENTLOG_ID_MAX) == 0);
	static const char *const bad[] = { "", "1", "1-", "-1", "1-2-3", "a-1", "1- 2", "+1-2",
					   "18446744073709551616-0", "1-18446744073709551616" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK_INT(eventlog_id_parse(bad[i], strlen(bad[i]), &id), EVENTLOG_EINVAL);
	CHECK(eventlog_id_cmp((eventlog_id){ 1, 5 }, (eventlog_id){ 2, 0 }) < 0);
	CHECK(eventlog_id_cmp((eventlog_id){ 2, 1 }, (eventlog_id){ 2, 0 }) > 0);
	id = eventlog_id_next((eventlog_id){ 3, UINT64_MAX });
	CHECK(id.ms == 4 && id.seq == 0);
	id = eventlog_id_next((eventlog_id){ 3, 4 });
	CHECK(id.ms == 3 && id.seq == 5);
}

TEST(url_table)
{
	static const struct {
		const char *url;
		const char *error; /* NULL: parses; else a part of the message */
		const char *host;  /* first host */
		int port, nhosts;
		const char *stream, *password, *master;
	} cases[] = {
		{ "redis://127.0.0.1:6380", NULL, "127.0.0.1", 6380, 1, "shopkeeper:events", NULL, NULL },
		{ "redis://redis", NULL, "redis", 6379, 1, "shopkeeper:events", NULL, NULL },
		{ "redis://:s3cret@redis.local:7000?stream=shop%3Aev", NULL, "redis.local", 7000, 1,
		  "shop:ev", "s3cret", NULL },
		{ "redis://:p%40ss%3Aw%2Fd@h:1", NULL, "h", 1, 1, "shopkeeper:events", "p@ss:w/d", NULL },
		{ "redis://:a@b@h:1", NULL, "h", 1, 1, "shopkeeper:events", "a@b", NULL },
		{ "redis://[::1]:6379", NULL, "::1", 6379, 1, "shopkeeper:events", NULL, NULL },
		{ "redis://[fe80::1:2]", NULL, "fe80::1:2", 6379, 1, "shopkeeper:events", NULL, NULL },
		{ "redis://h:1?timeout_ms=50&connect_timeout_ms=20", NULL, "h", 1, 1,
		  "shopkeeper:events", NULL, NULL },
		{ "sentinel://s1:26379,s2:26380,[::1]/mymaster?stream=x", NULL, "s1", 26379, 3, "x",
		  NULL, "mymaster" },
		{ "sentinel://:pw@s1/m", NULL, "s1", 26379, 1, "shopkeeper:events", "pw", "m" },
		{ "", "is not redis://", NULL, 0, 0, NULL, NULL, NULL },
		{ "127.0.0.1:6379", "is not redis://", NULL, 0, 0, NULL, NULL, NULL },
		{ "http://h:1", "unknown scheme 'http'", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://", "empty host", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://:6379", "empty host", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://h:", "bad port ''", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://h:0", "bad port '0'", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://h:65536", "bad port '65536'", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://h:12ab", "bad port '12ab'", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://h:1:2", "bad port '1:2'", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://h o:1", "bad character ' '", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://[::1", "'[' without ']'", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://[]:1", "is not an IPv6 address", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://[zz::1]:1", "is not an IPv6 address", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://[::1]x", "expected ':PORT'", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://user:pw@h:1", "user names are not supported", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://:@h:1", "empty password", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://:p%4@h:1", "bad percent-encoding in the password", NULL, 0, 0, NULL, NULL,
		  NULL },
		{ "redis://:p%00@h:1", "bad percent-encoding in the password", NULL, 0, 0, NULL, NULL,
		  NULL },
		{ "redis://a:1,b:2", "redis:// takes one HOST:PORT", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://h:1/0", "database numbers are not supported", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://h:1?stream=", "parameter 'stream' is empty", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://h:1?stream", "without '=VALUE'", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://h:1?db=1", "unknown parameter 'db'", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://h:1?stream=a&stream=b", "given twice", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://h:1?stream=a&", "trailing '&'", NULL, 0, 0, NULL, NULL, NULL },
		{ "redis://h:1?timeout_ms=0", "timeout_ms must be 1 to 600000", NULL, 0, 0, NULL, NULL,
		  NULL },
		{ "redis://h:1?connect_timeout_ms=x", "connect_timeout_ms must be", NULL, 0, 0, NULL,
		  NULL, NULL },
		{ "redis://h:1?password_file=/nonexistent/pw", "password_file /nonexistent/pw: No such",
		  NULL, 0, 0, NULL, NULL, NULL },
		{ "sentinel://s1:26379", "needs the master's name", NULL, 0, 0, NULL, NULL, NULL },
		{ "sentinel://s1:26379/", "needs the master's name", NULL, 0, 0, NULL, NULL, NULL },
		{ "sentinel://s1,,s2/m", "empty host", NULL, 0, 0, NULL, NULL, NULL },
		{ "sentinel://s1/m x", "bad character ' ' in master name", NULL, 0, 0, NULL, NULL,
		  NULL },
		{ "sentinel://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q/m", "more than 16 hosts", NULL, 0, 0,
		  NULL, NULL, NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		eventlog_config cfg;
		strbuf err = STRBUF_INIT;
		int rc = eventlog_config_parse(cases[i].url, &cfg, &err);
		if (cases[i].error) {
			if (rc != EVENTLOG_EINVAL || !strstr(sb_str(&err), cases[i].error) ||
			    strncmp(sb_str(&err), "event log URL: ", 15) != 0) {
				fprintf(stderr, "url '%s': rc %d, message '%s', expected '%s'\n",
					cases[i].url, rc, sb_str(&err), cases[i].error);
				CHECK(0);
			}
			CHECK(cfg.stream == NULL && cfg.password == NULL); /* freed */
		} else {
			if (rc != 0) {
				fprintf(stderr, "url '%s': %s\n", cases[i].url, sb_str(&err));
				CHECK(0);
				continue;
			}
			CHECK_STR(cfg.hosts[0].host, cases[i].host);
			CHECK_INT(cfg.hosts[0].port, cases[i].port);
			CHECK_INT(cfg.nhosts, cases[i].nhosts);
			CHECK_STR(cfg.stream, cases[i].stream);
			CHECK_INT(cfg.stream_len, strlen(cases[i].stream));
			CHECK(cases[i].password ? cfg.password && !strcmp(cfg.password, cases[i].password)
						: !cfg.password);
			CHECK(cases[i].master ? cfg.master && !strcmp(cfg.master, cases[i].master)
					      : !cfg.master);
			CHECK_INT(cfg.sentinel, cases[i].master != NULL);
		}
		eventlog_config_free(&cfg);
		sb_release(&err);
	}
	/* the timeouts */
	eventlog_config cfg;
	CHECK_INT(eventlog_config_parse("redis://h:1?timeout_ms=50&connect_timeout_ms=20", &cfg, NULL),
		  0);
	CHECK_INT(cfg.timeout_ms, 50);
	CHECK_INT(cfg.connect_timeout_ms, 20);
	eventlog_config_free(&cfg);
	CHECK_INT(eventlog_config_parse("sentinel://[::1]:1,b:2/m", &cfg, NULL), 0);
	CHECK_STR(cfg.hosts[0].host, "::1");
	CHECK_STR(cfg.hosts[1].host, "b");
	CHECK_INT(cfg.hosts[1].port, 2);
	eventlog_config_free(&cfg);
}

TEST(password_files)
{
	char path[400], url[1000];
	snprintf(path, sizeof(path), "%s/pw", scratch);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs("from-file\n", f);
	fclose(f);
	eventlog_config cfg;
	strbuf err = STRBUF_INIT;
	snprintf(url, sizeof(url), "redis://h:1?password_file=%s&sentinel_password_file=%s", path,
		 path);
	CHECK_INT(eventlog_config_parse(url, &cfg, &err), 0);
	CHECK(cfg.password && strcmp(cfg.password, "from-file") == 0);
	CHECK(cfg.sentinel_password && strcmp(cfg.sentinel_password, "from-file") == 0);
	eventlog_config_free(&cfg);
	snprintf(url, sizeof(url), "redis://:x@h:1?password_file=%s", path);
	CHECK_INT(eventlog_config_parse(url, &cfg, &err), EVENTLOG_EINVAL);
	CHECK(strstr(sb_str(&err), "password in the URL and password_file both") != NULL);
	f = fopen(path, "w");
	fputs("\n", f);
	fclose(f);
	snprintf(url, sizeof(url), "redis://h:1?password_file=%s", path);
	CHECK_INT(eventlog_config_parse(url, &cfg, &err), EVENTLOG_EINVAL);
	CHECK(strstr(sb_str(&err), ": empty") != NULL);
	sb_release(&err);
}

TEST(codec)
{
	eventlog_record recs[] = {
		ev("c1", "i1", 2),
		{ .kind = EVENTLOG_EVENT, .customer = "ü", .customer_len = 2, .item = "x",
		  .item_len = 1, .rec_id = "r-1", .rec_id_len = 3, .ts = EVENTLOG_TS_MAX,
		  .quantity = -1, .price = 0, .type = EVENTLOG_TYPE_MAX },
		flag(EVENTLOG_CONSENT, "c2", true),
		flag(EVENTLOG_CONSENT, "c3", false),
		flag(EVENTLOG_ERASURE, "c4", false),
		item_rec("i9", EVENTLOG_ITEM_UNAVAILABLE, EVENTLOG_ITEM_NOT_RECOMMENDABLE),
		item_rec("ü", 0, EVENTLOG_ITEM_ALL),
		{ .kind = EVENTLOG_EXPIRE, .customer = "c5", .customer_len = 2, .ts = 1700000000 },
		{ .kind = EVENTLOG_EXPIRE, .customer = "c6", .customer_len = 2, .ts = EVENTLOG_TS_MAX },
		/* issue 15: an impression without an item, served answers */
		{ .kind = EVENTLOG_EVENT, .customer = "c5", .customer_len = 2, .item = "",
		  .rec_id = "r", .rec_id_len = 1, .ts = 5, .quantity = 1, .type = 5 },
		{ .kind = EVENTLOG_SERVED, .customer = "c6", .customer_len = 2, .ts = 99,
		  .experiment = 7, .variant = 1, .n_items = 3, .n_hashes = 2,
		  .hashes = (const unsigned char *)"0123456789abcdef" },
		{ .kind = EVENTLOG_SERVED, .customer = "c7", .customer_len = 2, .ts = EVENTLOG_TS_MAX,
		  .experiment = UINT32_MAX, .variant = EVENTLOG_VARIANT_MAX },
		/* issue 18: catalog fields, all or some, empty strings too */
		catalog_rec("N05", EVENTLOG_CATALOG_ALL, "HEART CUSHION", "home", 4.5f, 19802),
		catalog_rec("ü", EVENTLOG_CATALOG_TITLE, "ü", NULL, 0, 0),
		catalog_rec("i", EVENTLOG_CATALOG_CATEGORY | EVENTLOG_CATALOG_TITLE, NULL, NULL, 0, 0),
		catalog_rec("i", EVENTLOG_CATALOG_PRICE, NULL, NULL, EVENTLOG_PRICE_MAX, 0),
		catalog_rec("i", EVENTLOG_CATALOG_FIRST_SEEN, NULL, NULL, 0, EVENTLOG_DAY_MAX),
	};
	char longid[EVENTLOG_CUSTOMER_MAX + 1];
	memset(longid, 'a', sizeof(longid));
	eventlog_record big = ev("x", "y", 1);
	big.customer = longid;
	big.customer_len = EVENTLOG_CUSTOMER_MAX;
	big.item = longid;
	big.item_len = EVENTLOG_ITEM_MAX;
	big.rec_id = longid;
	big.rec_id_len = EVENTLOG_REC_ID_MAX;
	/* the longest record: a catalog record of every field at its bound */
	char longtext[EVENTLOG_TITLE_MAX + 1];
	memset(longtext, 'T', sizeof(longtext));
	eventlog_record big_catalog = catalog_rec("x", EVENTLOG_CATALOG_ALL, NULL, NULL, 1, 1);
	big_catalog.item = longid;
	big_catalog.item_len = EVENTLOG_ITEM_MAX;
	big_catalog.title = longtext;
	big_catalog.title_len = EVENTLOG_TITLE_MAX;
	big_catalog.category = longtext;
	big_catalog.category_len = EVENTLOG_CATEGORY_MAX;
	strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i <= ARRAY_SIZE(recs) + 1; i++) {
		const eventlog_record *r = i < ARRAY_SIZE(recs)	   ? &recs[i]
					   : i == ARRAY_SIZE(recs) ? &big
								   : &big_catalog;
		sb_reset(&sb);
		CHECK_INT(eventlog_encode(r, &sb), 0);
		CHECK(sb.len <= EVENTLOG_RECORD_MAX);
		eventlog_record d;
		CHECK_INT(eventlog_decode(sb.buf, sb.len, &d), 0);
		CHECK(rec_eq(r, &d));
		/* every strict prefix and one byte more are rejected */
		for (size_t n = 0; n < sb.len; n++)
			CHECK_INT(eventlog_decode(sb.buf, n, &d), EVENTLOG_EDECODE);
		sb_addc(&sb, 0);
		CHECK_INT(eventlog_decode(sb.buf, sb.len, &d), EVENTLOG_EDECODE);
	}
	sb_reset(&sb);
	eventlog_encode(&recs[0], &sb);
	CHECK_INT(sb.len, 26); /* an event of two 2-byte ids */
	sb_reset(&sb);
	eventlog_encode(&big_catalog, &sb);
	CHECK_INT(sb.len, 913); /* the longest record (EVENTLOG_RECORD_MAX) */

	/* invalid records are not encoded */
	eventlog_record bad[] = { ev("", "i", 1), ev("c", "", 1), ev("c", "i", 0), ev("c", "i", NAN),
				  ev("c", "i", 1), ev("c", "i", 1), ev("c", "i", 1), ev("c", "i", 1),
				  ev("c\0d", "i", 1), flag(9, "c", 0), flag(EVENTLOG_ERASURE, "", 0),
				  ev("c", "\xff", 1), item_rec("i", 1, 1), item_rec("i", 0, 0),
				  item_rec("i", 4, 0), item_rec("", 1, 0), item_rec("i", 1, 0),
				  flag(EVENTLOG_EXPIRE, "c", 0), flag(EVENTLOG_EXPIRE, "", 0) };
	bad[4].price = -1;
	bad[5].type = EVENTLOG_TYPE_MAX + 1;
	bad[6].ts = -1;
	bad[7].rec_id = longid;
	bad[7].rec_id_len = EVENTLOG_REC_ID_MAX + 1;
	bad[8].customer_len = 3;
	bad[16].customer = "c"; /* an item record has no customer */
	bad[16].customer_len = 1;
	bad[17].ts = -1; /* an expiry's cutoff is a time like an event's */
	eventlog_record bad_catalog[] = {
		catalog_rec("i", 0, NULL, NULL, 0, 0),                  /* no field */
		catalog_rec("i", 16, NULL, NULL, 0, 0),                 /* unknown field */
		catalog_rec("", EVENTLOG_CATALOG_TITLE, "t", NULL, 0, 0), /* no item */
		catalog_rec("i", EVENTLOG_CATALOG_PRICE, NULL, NULL, -1, 0),
		catalog_rec("i", EVENTLOG_CATALOG_PRICE, NULL, NULL, NAN, 0),
		catalog_rec("i", EVENTLOG_CATALOG_PRICE, NULL, NULL, 2e9f, 0),
		catalog_rec("i", EVENTLOG_CATALOG_FIRST_SEEN, NULL, NULL, 0, -1),
		catalog_rec("i", EVENTLOG_CATALOG_FIRST_SEEN, NULL, NULL, 0, EVENTLOG_DAY_MAX + 1),
		catalog_rec("i", EVENTLOG_CATALOG_TITLE, "\xff", NULL, 0, 0), /* not UTF-8 */
		catalog_rec("i", EVENTLOG_CATALOG_TITLE, "t", "c", 0, 0), /* a value not given */
		catalog_rec("i", EVENTLOG_CATALOG_TITLE, "t", NULL, 1, 0),
		catalog_rec("i", EVENTLOG_CATALOG_TITLE, "t", NULL, 0, 1),
		catalog_rec("i", EVENTLOG_CATALOG_TITLE, NULL, NULL, 0, 0),
		catalog_rec("i", EVENTLOG_CATALOG_CATEGORY, NULL, NULL, 0, 0),
	};
	bad_catalog[12].title = longtext; /* one byte over */
	bad_catalog[12].title_len = EVENTLOG_TITLE_MAX + 1;
	bad_catalog[13].category = longtext;
	bad_catalog[13].category_len = EVENTLOG_CATEGORY_MAX + 1;
	for (size_t i = 0; i < ARRAY_SIZE(bad_catalog); i++) {
		sb_reset(&sb);
		if (eventlog_encode(&bad_catalog[i], &sb) != EVENTLOG_EINVAL) {
			fprintf(stderr, "bad catalog record %zu encoded\n", i);
			CHECK(0);
		}
		CHECK_INT(sb.len, 0);
	}
	eventlog_record with_customer = catalog_rec("i", EVENTLOG_CATALOG_TITLE, "t", NULL, 0, 0);
	with_customer.customer = "c";
	with_customer.customer_len = 1;
	sb_reset(&sb);
	CHECK_INT(eventlog_encode(&with_customer, &sb), EVENTLOG_EINVAL);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		sb_reset(&sb);
		if (eventlog_encode(&bad[i], &sb) != EVENTLOG_EINVAL) {
			fprintf(stderr, "bad record %zu encoded\n", i);
			CHECK(0);
		}
		CHECK_INT(sb.len, 0);
	}

	/* hand-made encodings the decoder must refuse */
	static const struct {
		const char *bytes;
		size_t n;
		int rc;
	} dec[] = {
		{ "", 0, EVENTLOG_EDECODE },
		{ "\x00\x03\x01x", 4, EVENTLOG_EDECODE },           /* version 0 */
		{ "\x06\x03\x01x", 4, EVENTLOG_EVERSION },          /* newer version */
		{ "\x05\x03\x01x", 4, EVENTLOG_EDECODE },           /* erasure under v5 */
		{ "\x05\x07\x01\x01x\x01t", 7, 0 },               /* catalog: title "t" */
		{ "\x05\x07\x01\x01x\x00", 6, 0 },                /* catalog: empty title */
		{ "\x04\x07\x01\x01x\x01t", 7, EVENTLOG_EDECODE }, /* catalog under v4 */
		{ "\x05\x07\x00\x01x", 5, EVENTLOG_EDECODE },      /* no field */
		{ "\x05\x07\x10\x01x", 5, EVENTLOG_EDECODE },      /* unknown field */
		{ "\x05\x07\x01\x00\x01t", 6, EVENTLOG_EDECODE }, /* empty item */
		{ "\x05\x07\x04\x01x\x00\x00\x80\x3f", 9, 0 },  /* price 1 */
		{ "\x05\x07\x04\x01x\x00\x00\x80\xbf", 9, EVENTLOG_EDECODE }, /* price -1 */
		{ "\x05\x07\x04\x01x\x00\x00\xc0\x7f", 9, EVENTLOG_EDECODE }, /* price NaN */
		{ "\x05\x07\x04\x01x\x00\x00\x80\x4f", 9, EVENTLOG_EDECODE }, /* 4.3e9 */
		{ "\x05\x07\x08\x01x\xa0\xc0\x2c\x00", 9, 0 },  /* first_seen 9999-12-31 */
		{ "\x05\x07\x08\x01x\xa1\xc0\x2c\x00", 9, EVENTLOG_EDECODE }, /* a day later */
		{ "\x05\x07\x08\x01x\x00\x00\x00\x80", 9, EVENTLOG_EDECODE }, /* negative */
		{ "\x05\x07\x03\x01x\x01t", 7, EVENTLOG_EDECODE }, /* category missing */
		{ "\x05\x07\x01\x01x\x02t", 7, EVENTLOG_EDECODE }, /* title cut short */
		{ "\x05\x07\x02\x01x\x81\x01", 7, EVENTLOG_EDECODE }, /* category of 129 */
		{ "\x04\x03\x01x", 4, EVENTLOG_EDECODE },           /* erasure under v4 */
		{ "\x03\x03\x01x", 4, EVENTLOG_EDECODE },           /* erasure under v3 */
		{ "\x03\x05\x01x" "\0\0\0\0\0\0\0\0", 12, 0 },      /* expire of "x" */
		{ "\x01\x05\x01x" "\0\0\0\0\0\0\0\0", 12, EVENTLOG_EDECODE }, /* expire under v1 */
		{ "\x03\x05\x01x" "\0\0\0\0\0\0\0\x80", 12, EVENTLOG_EDECODE }, /* ts < 0 */
		{ "\x03\x05\x00" "\0\0\0\0\0\0\0\0", 11, EVENTLOG_EDECODE },  /* no customer */
		{ "\x04\x06" "\x07\0\0\0" "\x01" "\0\0\0\0\0\0\0\0" "\x01\0\0\0" "\x00" "\x01x", 22,
		  0 },                                              /* served, no hashes */
		{ "\x03\x06" "\x07\0\0\0" "\x01" "\0\0\0\0\0\0\0\0" "\x01\0\0\0" "\x00" "\x01x", 22,
		  EVENTLOG_EDECODE },                               /* served under v3 */
		{ "\x04\x06" "\0\0\0\0" "\x01" "\0\0\0\0\0\0\0\0" "\x01\0\0\0" "\x00" "\x01x", 22,
		  EVENTLOG_EDECODE },                               /* experiment 0 */
		{ "\x04\x06" "\x07\0\0\0" "\x10" "\0\0\0\0\0\0\0\0" "\x01\0\0\0" "\x00" "\x01x", 22,
		  EVENTLOG_EDECODE },                               /* variant 16 */
		{ "\x04\x06" "\x07\0\0\0" "\x01" "\0\0\0\0\0\0\0\0" "\x00\0\0\0" "\x01"
		  "01234567" "\x01x", 30, EVENTLOG_EDECODE },       /* more hashes than items */
		{ "\x01\x01\x04\x00\x01" "c\x00" "\0\0\0\0\0\0\0\0" "\0\0\x80\x3f" "\0\0\0\0", 23,
		  EVENTLOG_EDECODE },                               /* a click without item */
		{ "\x02\x03\x01x", 4, EVENTLOG_EDECODE },           /* erasure under v2 */
		{ "\x01\x04\x01\x00\x01x", 6, EVENTLOG_EDECODE },   /* item under v1 */
		{ "\x02\x04\x01\x02\x01x", 6, 0 },                  /* item: set 1, clear 2 */
		{ "\x02\x04\x01\x01\x01x", 6, EVENTLOG_EDECODE },   /* set and clear overlap */
		{ "\x02\x04\x00\x00\x01x", 6, EVENTLOG_EDECODE },   /* no change */
		{ "\x02\x04\x04\x00\x01x", 6, EVENTLOG_EDECODE },   /* unknown bit */
		{ "\x02\x04\x01\x00\x00", 5, EVENTLOG_EDECODE },    /* empty item */
		{ "\x01\x04\x01x", 4, EVENTLOG_EDECODE },           /* unknown kind */
		{ "\x01\x03\x01x", 4, 0 },                          /* erasure of "x" */
		{ "\x01\x03\x00", 3, EVENTLOG_EDECODE },            /* empty customer */
		{ "\x01\x03\x81\x00x", 5, EVENTLOG_EDECODE },       /* non-minimal length */
		{ "\x01\x03\x80\x02", 4, EVENTLOG_EDECODE },        /* 256 bytes missing */
		{ "\x01\x02\x02\x01x", 5, EVENTLOG_EDECODE },       /* unknown consent flag */
		{ "\x01\x02\x01\x01x", 5, 0 },                      /* consent on */
		{ "\x01\x03\x01\xc0", 4, EVENTLOG_EDECODE },        /* not UTF-8 */
		{ "\x01\x01\x10\x00\x01" "c\x01i" "\0\0\0\0\0\0\0\0" "\0\0\x80\x3f" "\0\0\0\0", 24,
		  EVENTLOG_EDECODE },                               /* type 16 */
		{ "\x01\x01\x00\x02\x01" "c\x01i" "\0\0\0\0\0\0\0\0" "\0\0\x80\x3f" "\0\0\0\0", 24,
		  EVENTLOG_EDECODE },                               /* unknown event flag */
		{ "\x01\x01\x00\x00\x01" "c\x01i" "\0\0\0\0\0\0\0\0" "\0\0\x80\x3f" "\0\0\0\0", 24, 0 },
		{ "\x01\x01\x00\x00\x01" "c\x01i" "\0\0\0\0\0\0\0\0" "\0\0\x00\x00" "\0\0\0\0", 24,
		  EVENTLOG_EDECODE },                               /* quantity 0 */
		{ "\x01\x01\x00\x00\x01" "c\x01i" "\0\0\0\0\0\0\0\0" "\0\0\xc0\x7f" "\0\0\0\0", 24,
		  EVENTLOG_EDECODE },                               /* quantity NaN */
		{ "\x01\x01\x00\x00\x01" "c\x01i" "\0\0\0\0\0\0\0\0" "\0\0\x80\x3f" "\0\0\x80\xbf", 24,
		  EVENTLOG_EDECODE },                               /* price -1 */
		{ "\x01\x01\x00\x00\x01" "c\x01i" "\0\0\0\0\0\0\0\x80" "\0\0\x80\x3f" "\0\0\0\0", 24,
		  EVENTLOG_EDECODE },                               /* ts < 0 */
		{ "\x01\x01\x00\x01\x01" "c\x01i" "\0\0\0\0\0\0\0\0" "\0\0\x80\x3f" "\0\0\0\0" "\x00", 25,
		  EVENTLOG_EDECODE },                               /* empty rec_id */
	};
	for (size_t i = 0; i < ARRAY_SIZE(dec); i++) {
		eventlog_record d;
		int rc = eventlog_decode(dec[i].bytes, dec[i].n, &d);
		if (rc != dec[i].rc) {
			fprintf(stderr, "decode case %zu: %d, expected %d\n", i, rc, dec[i].rc);
			CHECK(0);
		}
		if (rc)
			CHECK(d.kind == 0 && d.customer == NULL);
	}
	sb_release(&sb);
}

TEST(resp_replies)
{
	eventlog_batch b = { 0 };
	/* an XRANGE reply: a good entry, a foreign field, an undecodable value */
	const char ok[] = "*3\r\n"
			  "*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\nr\r\n$4\r\n\x01\x03\x01x\r\n"
			  "*2\r\n$3\r\n1-2\r\n*2\r\n$1\r\nq\r\n$4\r\n\x01\x03\x01x\r\n"
			  "*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nr\r\n$2\r\n\x00z\r\n";
	CHECK_INT(eventlog_batch_from_resp(ok, sizeof(ok) - 1, false, &b), 0);
	CHECK_INT(b.n, 3);
	if (b.n == 3) {
		CHECK_INT(b.entries[0].status, 0);
		CHECK_INT(b.entries[0].rec.kind, EVENTLOG_ERASURE);
		CHECK(b.entries[0].rec.customer_len == 1 && b.entries[0].rec.customer[0] == 'x');
		CHECK_INT(b.entries[1].status, EVENTLOG_EDECODE);
		CHECK_INT(b.entries[2].status, EVENTLOG_EDECODE);
		CHECK(b.entries[2].id.ms == 2 && b.entries[2].id.seq == 0);
	}
	/* the same entries wrapped as XREAD answers them; nil: nothing new */
	const char xr[] = "*1\r\n*2\r\n$1\r\nk\r\n*1\r\n"
			  "*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\nr\r\n$4\r\n\x01\x03\x01x\r\n";
	CHECK_INT(eventlog_batch_from_resp(xr, sizeof(xr) - 1, true, &b), 0);
	CHECK_INT(b.n, 1);
	CHECK_INT(eventlog_batch_from_resp("*-1\r\n", 5, true, &b), 0);
	CHECK_INT(b.n, 0);
	/* shapes a replica must refuse rather than trust */
	static const char *const bad[] = {
		"*2\r\n*2\r\n$3\r\n2-0\r\n*0\r\n*2\r\n$3\r\n1-0\r\n*0\r\n", /* ids go back */
		"*2\r\n*2\r\n$3\r\n2-0\r\n*0\r\n*2\r\n$3\r\n2-0\r\n*0\r\n", /* repeated */
		"*1\r\n*2\r\n$3\r\n1x0\r\n*0\r\n",                         /* bad id */
		"*1\r\n*1\r\n$3\r\n1-0\r\n",                               /* no fields */
		"*1\r\n:5\r\n",                                            /* not an entry */
		"$3\r\nabc\r\n",                                           /* not an array */
		"*1\r\n*2\r\n$3\r\n1-0\r\n",                               /* truncated */
		"-ERR x\r\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		CHECK_INT(eventlog_batch_from_resp(bad[i], strlen(bad[i]), false, &b),
			  EVENTLOG_EDECODE);
		CHECK_INT(b.n, 0);
	}
	CHECK_INT(eventlog_batch_from_resp("*1\r\n*0\r\n", 8, true, &b), EVENTLOG_EDECODE);
	eventlog_batch_release(&b);
	eventlog_batch_release(NULL);
}

/* ---- against Redis ------------------------------------------------------------------ */

static server main_srv;

TEST(append_and_read)
{
	CHECK(have_redis);
	eventlog *log = open_url("redis://127.0.0.1:%d?stream=t:rw", main_srv.port);
	CHECK(log != NULL);
	if (!log)
		return;
	CHECK_INT(eventlog_ping(log), 0);
	CHECK(strstr(eventlog_address(log), "127.0.0.1:") != NULL);

	enum eventlog_durability d;
	strbuf msg = STRBUF_INIT;
	CHECK_INT(eventlog_check_durability(log, &d, &msg), 0);
	CHECK_INT(d, EVENTLOG_DURABLE);

	eventlog_record recs[4] = { ev("c1", "i1", 1), ev("c1", "i2", -1),
				    flag(EVENTLOG_CONSENT, "c2", false), ev("c2", "i1", 3) };
	recs[1].rec_id = "rec-9";
	recs[1].rec_id_len = 5;
	eventlog_id ids[4];
	CHECK_INT(eventlog_append(log, recs, 4, ids, 0, 0, NULL), 0);
	for (int i = 1; i < 4; i++)
		CHECK(eventlog_id_cmp(ids[i - 1], ids[i]) < 0);

	eventlog_batch b = { 0 };
	CHECK_INT(eventlog_read(log, EVENTLOG_ID_MIN, 100, 0, &b), 0);
	CHECK_INT(b.n, 4);
	for (size_t i = 0; i < b.n && i < 4; i++) {
		CHECK_INT(b.entries[i].status, 0);
		CHECK(eventlog_id_cmp(b.entries[i].id, ids[i]) == 0);
		CHECK(rec_eq(&b.entries[i].rec, &recs[i]));
	}
	/* from the middle, count-limited */
	CHECK_INT(eventlog_read(log, ids[0], 2, 0, &b), 0);
	CHECK_INT(b.n, 2);
	CHECK(b.n == 2 && eventlog_id_cmp(b.entries[0].id, ids[1]) == 0);
	/* nothing new: a blocking read returns empty after its time */
	double t0 = util_monotonic();
	CHECK_INT(eventlog_read(log, ids[3], 10, 150, &b), 0);
	CHECK_INT(b.n, 0);
	CHECK(util_monotonic() - t0 >= 0.1);
	/* XRANGE pages */
	CHECK_INT(eventlog_range(log, ids[1], EVENTLOG_ID_MAX, 2, &b), 0);
	CHECK_INT(b.n, 2);
	CHECK(b.n == 2 && eventlog_id_cmp(b.entries[1].id, ids[2]) == 0);
	CHECK_INT(scan_all(log, 3, NULL, NULL), 4);

	eventlog_id last;
	uint64_t len;
	CHECK_INT(eventlog_tail(log, &last, &len), 0);
	CHECK(eventlog_id_cmp(last, ids[3]) == 0);
	CHECK_INT(len, 4);

	/* a bad record anywhere: nothing is sent */
	eventlog_record bad[2] = { ev("c9", "i", 1), ev("c9", "", 1) };
	CHECK_INT(eventlog_append(log, bad, 2, NULL, 0, 0, NULL), EVENTLOG_EINVAL);
	CHECK(strstr(eventlog_errmsg(log), "record 1") != NULL);
	CHECK_INT(eventlog_append(log, bad, 0, NULL, 0, 0, NULL), EVENTLOG_EINVAL);
	CHECK_INT(eventlog_tail(log, &last, &len), 0);
	CHECK_INT(len, 4);
	CHECK_STR(eventlog_errmsg(log), "");

	/* a blocked read wakes up for a write from another connection */
	eventlog_batch_release(&b);
	sb_release(&msg);
	eventlog_close(log);
}

TEST(batches)
{
	CHECK(have_redis);
	eventlog *log = open_url("redis://127.0.0.1:%d?stream=t:batch", main_srv.port);
	if (!log)
		return;
	enum { N = 5000 };
	eventlog_record *recs = xcalloc(N, sizeof(*recs));
	eventlog_id *ids = xcalloc(N, sizeof(*ids));
	char (*names)[16] = xcalloc(N, 16);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], 16, "cust%d", i % 97);
		recs[i] = ev(names[i], "item", (float)(i + 1));
	}
	CHECK_INT(eventlog_append(log, recs, N, ids, 0, 0, NULL), 0);
	CHECK_INT(eventlog_append(log, recs, 10001, NULL, 0, 0, NULL), EVENTLOG_EINVAL);
	eventlog_batch b = { 0 };
	CHECK_INT(eventlog_read(log, EVENTLOG_ID_MIN, 100000, 0, &b), 0);
	CHECK_INT(b.n, N);
	size_t same = 0;
	for (size_t i = 0; i < b.n; i++)
		same += b.entries[i].status == 0 && eventlog_id_cmp(b.entries[i].id, ids[i]) == 0 &&
			rec_eq(&b.entries[i].rec, &recs[i]);
	CHECK_INT(same, N);
	uint64_t count;
	CHECK_INT(eventlog_customer_entries(log, "cust0", 5, &count), 0);
	CHECK_INT(count, (N + 96) / 97);
	eventlog_batch_release(&b);
	free(recs);
	free(ids);
	free(names);
	eventlog_close(log);
}

TEST(durability_check)
{
	CHECK(have_redis);
	eventlog *log = open_url("redis://127.0.0.1:%d", main_srv.port);
	redisContext *c = raw(main_srv.port, NULL);
	if (!log || !c)
		return;
	redisReply *r = redisCommand(c, "CONFIG SET appendfsync everysec");
	freeReplyObject(r);
	enum eventlog_durability d;
	strbuf msg = STRBUF_INIT;
	CHECK_INT(eventlog_check_durability(log, &d, &msg), 0);
	CHECK_INT(d, EVENTLOG_WEAK);
	CHECK(strstr(sb_str(&msg), "WARNING") && strstr(sb_str(&msg), "appendfsync everysec"));
	r = redisCommand(c, "CONFIG SET appendfsync always");
	freeReplyObject(r);
	/* eviction could drop the log's keys */
	r = redisCommand(c, "CONFIG SET maxmemory-policy allkeys-lru");
	freeReplyObject(r);
	CHECK_INT(eventlog_check_durability(log, &d, &msg), 0);
	CHECK_INT(d, EVENTLOG_WEAK);
	CHECK(strstr(sb_str(&msg), "maxmemory-policy allkeys-lru") != NULL);
	r = redisCommand(c, "CONFIG SET maxmemory-policy noeviction");
	freeReplyObject(r);
	CHECK_INT(eventlog_check_durability(log, &d, &msg), 0);
	CHECK_INT(d, EVENTLOG_DURABLE);
	redisFree(c);
	eventlog_close(log);

	/* CONFIG renamed away: say it could not be checked */
	server s = { 0 };
	if (server_start(&s, "noconfig", "--rename-command", "CONFIG", "", NULL) &&
	    wait_up(s.port, NULL)) {
		log = open_url("redis://127.0.0.1:%d", s.port);
		CHECK_INT(eventlog_check_durability(log, &d, &msg), 0);
		CHECK_INT(d, EVENTLOG_UNKNOWN);
		CHECK(strstr(sb_str(&msg), "could not check") != NULL);
		eventlog_close(log);
	} else {
		CHECK(0);
	}
	stop_proc(s.pid, SIGTERM);
	sb_release(&msg);
}

/* Scan callback: counts entries of the customer in arg. */
static size_t count_customer(const eventlog_entry *e, void *arg)
{
	const char *c = arg;
	return e->status == 0 && e->rec.kind != EVENTLOG_ERASURE && e->rec.customer_len == strlen(c) &&
	       memcmp(e->rec.customer, c, e->rec.customer_len) == 0;
}

static size_t count_erasures(const eventlog_entry *e, void *arg)
{
	(void)arg;
	return e->status == 0 && e->rec.kind == EVENTLOG_ERASURE;
}

TEST(erasure_index)
{
	CHECK(have_redis);
	eventlog *log = open_url("redis://127.0.0.1:%d?stream=t:erase", main_srv.port);
	if (!log)
		return;
	eventlog_record a[] = { ev("alice", "i1", 1), ev("bob", "i1", 1), ev("alice", "i2", 1),
				flag(EVENTLOG_CONSENT, "alice", false), ev("bob", "i3", 1) };
	eventlog_id ids[5];
	CHECK_INT(eventlog_append(log, a, 5, ids, 0, 0, NULL), 0);
	uint64_t n;
	CHECK_INT(eventlog_customer_entries(log, "alice", 5, &n), 0);
	CHECK_INT(n, 3);

	eventlog_record e = flag(EVENTLOG_ERASURE, "alice", false);
	eventlog_id eid;
	CHECK_INT(eventlog_append(log, &e, 1, &eid, 0, 0, NULL), 0);
	CHECK_INT(eventlog_customer_entries(log, "alice", 5, &n), 0);
	CHECK_INT(n, 0);
	CHECK_INT(scan_all(log, 2, count_customer, "alice"), 0);
	CHECK_INT(scan_all(log, 2, count_customer, "bob"), 2);
	CHECK_INT(scan_all(log, 2, count_erasures, NULL), 1);
	CHECK_INT(scan_all(log, 100, NULL, NULL), 3);

	enum eventlog_presence p;
	CHECK_INT(eventlog_check_entry(log, ids[2], "alice", 5, &p), 0);
	CHECK_INT(p, EVENTLOG_ERASED);
	CHECK_INT(eventlog_check_entry(log, ids[1], "bob", 3, &p), 0);
	CHECK_INT(p, EVENTLOG_PRESENT);
	CHECK_INT(eventlog_check_entry(log, eid, "alice", 5, &p), 0);
	CHECK_INT(p, EVENTLOG_PRESENT);
	/* an id this primary never had, of a customer not erased: lost */
	CHECK_INT(eventlog_check_entry(log, (eventlog_id){ ids[0].ms, ids[0].seq + 1000 }, "bob", 3,
				       &p),
		  0);
	CHECK_INT(p, EVENTLOG_LOST);

	/* in one batch: event, erasure, event: only the later event stays */
	eventlog_record m[] = { ev("carol", "i1", 1), flag(EVENTLOG_ERASURE, "carol", 0),
				ev("carol", "i2", 1) };
	CHECK_INT(eventlog_append(log, m, 3, NULL, 0, 0, NULL), 0);
	CHECK_INT(eventlog_customer_entries(log, "carol", 5, &n), 0);
	CHECK_INT(n, 1);
	CHECK_INT(scan_all(log, 100, count_customer, "carol"), 1);
	eventlog_close(log);
}

typedef struct flags_seen {
	int erased, consent_on, consent_off, order_ok;
	bool consent_started, items_started;
	int items, sku1, sku3; /* item records; sku1's and sku3's flags */
	int catalog, catalog_fields; /* catalog fields reported; their bits, OR'd */
	bool catalog_ok;             /* each the latest value, after the items */
} flags_seen;

static int on_flag(void *arg, const eventlog_record *r, eventlog_id id)
{
	flags_seen *s = arg;
	(void)id;
	if (r->kind == EVENTLOG_CATALOG) {
		unsigned f = r->catalog_fields;
		s->catalog++;
		s->catalog_fields |= (int)f;
		s->order_ok &= s->items_started;
		bool one = f && !(f & (f - 1)), new5 = r->item_len == 4 &&
						      memcmp(r->item, "new5", 4) == 0;
		s->catalog_ok &= one && new5 && r->customer_len == 0;
		if (f == EVENTLOG_CATALOG_TITLE)
			s->catalog_ok &= r->title_len == 9 && memcmp(r->title, "CUSHION 2", 9) == 0;
		if (f == EVENTLOG_CATALOG_CATEGORY)
			s->catalog_ok &= r->category_len == 4 && memcmp(r->category, "home", 4) == 0;
		if (f == EVENTLOG_CATALOG_PRICE)
			s->catalog_ok &= r->price == 6.25f;
		if (f == EVENTLOG_CATALOG_FIRST_SEEN)
			s->catalog_ok &= r->first_seen == 19802;
		return 0;
	}
	if (r->kind == EVENTLOG_ITEM) {
		s->items_started = true;
		s->items++;
		s->order_ok &= r->customer_len == 0 && (r->item_set | r->item_clear) ==
							       EVENTLOG_ITEM_ALL;
		if (r->item_len == 4 && memcmp(r->item, "sku1", 4) == 0)
			s->sku1 = r->item_set;
		if (r->item_len == 4 && memcmp(r->item, "sku3", 4) == 0)
			s->sku3 = r->item_set;
	} else if (r->kind == EVENTLOG_ERASURE) {
		s->erased++;
		s->order_ok &= !s->consent_started && !s->items_started;
	} else {
		s->order_ok &= !s->items_started;
		s->consent_started = true;
		if (r->personalization)
			s->consent_on++;
		else
			s->consent_off++;
	}
	return 0;
}

TEST(trim_and_compacted_flags)
{
	CHECK(have_redis);
	eventlog *log = open_url("redis://127.0.0.1:%d?stream=t:trim", main_srv.port);
	if (!log)
		return;
	enum { N = 2500 };
	eventlog_record *recs = xcalloc(N, sizeof(*recs));
	char (*names)[16] = xcalloc(N, 16);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], 16, "u%d", i % 50);
		recs[i] = ev(names[i], "item", 1);
	}
	recs[10] = flag(EVENTLOG_CONSENT, "u1", false);
	recs[20] = flag(EVENTLOG_CONSENT, "u2", true);
	recs[30] = flag(EVENTLOG_CONSENT, "u3", false);
	recs[40] = flag(EVENTLOG_ERASURE, "u3", false); /* deletes u3's consent too */
	recs[50] = flag(EVENTLOG_ERASURE, "u4", false);
	recs[60] = flag(EVENTLOG_CONSENT, "u4", true); /* after the erasure: kept */
	/* item overrides: flags kept per item, a field of flags 0 deleted */
	recs[70] = item_rec("sku1", EVENTLOG_ITEM_UNAVAILABLE, 0);
	recs[71] = item_rec("sku1", EVENTLOG_ITEM_NOT_RECOMMENDABLE, 0); /* now 3 */
	recs[72] = item_rec("sku2", EVENTLOG_ITEM_ALL, 0);
	recs[73] = item_rec("sku2", 0, EVENTLOG_ITEM_ALL); /* back to none */
	recs[74] = item_rec("sku3", EVENTLOG_ITEM_ALL, 0);
	recs[75] = item_rec("sku3", 0, EVENTLOG_ITEM_UNAVAILABLE); /* 2 */
	/* catalog fields: the latest record giving each field is kept */
	recs[80] = catalog_rec("new5", EVENTLOG_CATALOG_ALL, "CUSHION", "home", 4.5f, 19802);
	recs[81] = catalog_rec("new5", EVENTLOG_CATALOG_TITLE | EVENTLOG_CATALOG_PRICE,
			       "CUSHION 2", NULL, 6.25f, 0);
	eventlog_id *ids = xcalloc(N, sizeof(*ids));
	CHECK_INT(eventlog_append(log, recs, N, ids, 0, 0, NULL), 0);
	eventlog_record after = ev("u7", "late", 1);
	eventlog_id late;
	CHECK_INT(eventlog_append(log, &after, 1, &late, 0, 0, NULL), 0);

	uint64_t trimmed = 0, n = 0;
	CHECK_INT(eventlog_trim(log, eventlog_id_next(ids[N - 1]), 300, &trimmed), 0);
	CHECK_INT(trimmed, N - 3); /* the erasures took u3's 2 and u4's 1 */
	/* the trimmed entry is gone, and no erasure can explain an item's */
	enum eventlog_presence p;
	CHECK_INT(eventlog_check_entry(log, ids[70], NULL, 0, &p), 0);
	CHECK_INT(p, EVENTLOG_TRIMMED);
	CHECK_INT(scan_all(log, 100, NULL, NULL), 1);
	/* the index holds only what is still in the stream */
	CHECK_INT(eventlog_customer_entries(log, "u7", 2, &n), 0);
	CHECK_INT(n, 1);
	CHECK_INT(eventlog_customer_entries(log, "u8", 2, &n), 0);
	CHECK_INT(n, 0);

	/* a compacted catalog field a buggy writer left: skipped, counted */
	redisContext *rc = redisConnect("127.0.0.1", main_srv.port);
	CHECK(rc && !rc->err);
	if (rc && !rc->err) {
		freeReplyObject(redisCommand(rc, "HSET t:trim:catalog tjunk %s", "1-1 not-a-record"));
		freeReplyObject(redisCommand(rc, "HSET t:trim:catalog xnew5 %s", "1-1 x"));
	}
	if (rc)
		redisFree(rc);
	flags_seen s = { .order_ok = 1, .catalog_ok = true };
	uint64_t skipped = 9;
	CHECK_INT(eventlog_flags_each(log, on_flag, &s, &skipped), 0);
	CHECK_INT(s.catalog, 4); /* one per field */
	CHECK_INT(s.catalog_fields, EVENTLOG_CATALOG_ALL);
	CHECK(s.catalog_ok);
	CHECK_INT(skipped, 2);
	skipped = 0;
	CHECK_INT(s.erased, 2);     /* u3, u4 */
	CHECK_INT(s.consent_off, 1); /* u1 */
	CHECK_INT(s.consent_on, 2);  /* u2, u4 */
	CHECK_INT(s.order_ok, 1);
	CHECK_INT(s.items, 2);
	CHECK_INT(s.sku1, EVENTLOG_ITEM_ALL);
	CHECK_INT(s.sku3, EVENTLOG_ITEM_NOT_RECOMMENDABLE);

	CHECK_INT(eventlog_check_entry(log, ids[5], "u5", 2, &p), 0);
	CHECK_INT(p, EVENTLOG_TRIMMED);
	CHECK_INT(eventlog_check_entry(log, late, "u7", 2, &p), 0);
	CHECK_INT(p, EVENTLOG_PRESENT);
	/* trimming again changes nothing */
	CHECK_INT(eventlog_trim(log, eventlog_id_next(ids[N - 1]), 0, &trimmed), 0);
	CHECK_INT(trimmed, 0);
	free(recs);
	free(names);
	free(ids);
	eventlog_close(log);
}

TEST(password)
{
	CHECK(have_redis);
	server s = { 0 };
	if (!server_start(&s, "auth", "--requirepass", "pa ss", NULL) || !wait_up(s.port, "pa ss")) {
		CHECK(0);
		return;
	}
	eventlog *log = open_url("redis://127.0.0.1:%d", s.port);
	eventlog_record r = ev("c", "i", 1);
	CHECK_INT(eventlog_ping(log), EVENTLOG_EREDIS);
	CHECK(strstr(eventlog_errmsg(log), "NOAUTH") != NULL);
	CHECK_INT(eventlog_append(log, &r, 1, NULL, 0, 0, NULL), EVENTLOG_EREDIS);
	eventlog_close(log);

	log = open_url("redis://:wrong@127.0.0.1:%d", s.port);
	CHECK_INT(eventlog_ping(log), EVENTLOG_EREDIS);
	CHECK(strstr(eventlog_errmsg(log), "AUTH") != NULL);
	eventlog_close(log);

	char path[400];
	snprintf(path, sizeof(path), "%s/redis-pw", scratch);
	FILE *f = fopen(path, "w");
	fputs("pa ss\n", f);
	fclose(f);
	log = open_url("redis://127.0.0.1:%d?password_file=%s", s.port, path);
	CHECK_INT(eventlog_ping(log), 0);
	CHECK_INT(eventlog_append(log, &r, 1, NULL, 0, 0, NULL), 0);
	eventlog_close(log);
	log = open_url("redis://:pa%%20ss@127.0.0.1:%d", s.port);
	CHECK_INT(eventlog_append(log, &r, 1, NULL, 0, 0, NULL), 0);
	eventlog_close(log);
	stop_proc(s.pid, SIGTERM);
}

TEST(reconnect_after_restart)
{
	CHECK(have_redis);
	server s = { 0 };
	if (!server_start(&s, "restart", NULL) || !wait_up(s.port, NULL)) {
		CHECK(0);
		return;
	}
	eventlog *log = open_url("redis://127.0.0.1:%d?timeout_ms=500&connect_timeout_ms=200", s.port);
	eventlog_record r = ev("c", "before", 1);
	eventlog_id before;
	CHECK_INT(eventlog_append(log, &r, 1, &before, 0, 0, NULL), 0);
	CHECK_INT(eventlog_connects(log), 1);

	stop_proc(s.pid, SIGKILL); /* appendfsync always: the entry survives */
	r.item = "during";
	r.item_len = 6;
	CHECK_INT(eventlog_append(log, &r, 1, NULL, 0, 0, NULL), EVENTLOG_EUNAVAILABLE);
	CHECK(eventlog_errmsg(log)[0] != '\0');
	/* while it is down, calls fail at once (back-off), not per connect */
	CHECK_INT(eventlog_append(log, &r, 1, NULL, 0, 0, NULL), EVENTLOG_EUNAVAILABLE);
	CHECK_STR(eventlog_address(log), "");

	server_start(&s, "restart", NULL);
	int rc = -1;
	for (int i = 0; i < 200 && rc != 0; i++) { /* bounded: 10 s */
		rc = eventlog_append(log, &r, 1, NULL, 0, 0, NULL);
		if (rc)
			sleep_ms(50);
	}
	CHECK_INT(rc, 0);
	CHECK_INT(eventlog_connects(log), 2);
	eventlog_batch b = { 0 };
	CHECK_INT(eventlog_read(log, EVENTLOG_ID_MIN, 10, 0, &b), 0);
	CHECK(b.n >= 2 && eventlog_id_cmp(b.entries[0].id, before) == 0);

	/* a read on a connection the server dropped is retried at once */
	redisContext *c = raw(s.port, NULL);
	redisReply *k = redisCommand(c, "CLIENT KILL TYPE normal SKIPME yes");
	if (k)
		freeReplyObject(k);
	redisFree(c);
	CHECK_INT(eventlog_read(log, EVENTLOG_ID_MIN, 10, 0, &b), 0);
	CHECK(b.n >= 2);
	CHECK_INT(eventlog_connects(log), 3);
	eventlog_batch_release(&b);
	eventlog_close(log);
	stop_proc(s.pid, SIGTERM);
}

/* Waits (up to 10 s) until the primary on port has `want` replicas online. */
static bool wait_replicas(int port, int want)
{
	char v[64], line[64];
	for (int i = 0; i < 200; i++) {
		if (info_field(port, "replication", "connected_slaves", v, sizeof(v)) &&
		    atoi(v) >= want) {
			if (info_field(port, "replication", "slave0", line, sizeof(line)) &&
			    strstr(line, "state=online"))
				return true;
		}
		sleep_ms(50);
	}
	return false;
}

TEST(wait_for_replicas)
{
	CHECK(have_redis);
	eventlog *log = open_url("redis://127.0.0.1:%d?stream=t:wait", main_srv.port);
	if (!log)
		return;
	eventlog_record r = ev("c", "i", 1);
	int acked = -1;
	eventlog_id id;
	/* no replica: WAIT 1 times out, the entry is in the log anyway */
	CHECK_INT(eventlog_append(log, &r, 1, &id, 1, 100, &acked), EVENTLOG_EREPLICAS);
	CHECK_INT(acked, 0);
	CHECK(strstr(eventlog_errmsg(log), "0 of 1 replicas") != NULL);
	enum eventlog_presence p;
	CHECK_INT(eventlog_check_entry(log, id, "c", 1, &p), 0);
	CHECK_INT(p, EVENTLOG_PRESENT);
	CHECK_INT(eventlog_append(log, &r, 1, NULL, 0, 100, &acked), 0);
	CHECK_INT(acked, 0);

	/* one real replica */
	server rep = { 0 };
	char primary[16];
	snprintf(primary, sizeof(primary), "%d", main_srv.port);
	if (!server_start(&rep, "replica", "--replicaof", "127.0.0.1", primary, NULL) ||
	    !wait_replicas(main_srv.port, 1)) {
		CHECK(0);
	} else {
		CHECK_INT(eventlog_append(log, &r, 1, NULL, 1, 5000, &acked), 0);
		CHECK_INT(acked, 1);
		CHECK_INT(eventlog_append(log, &r, 1, NULL, 2, 200, &acked), EVENTLOG_EREPLICAS);
		CHECK_INT(acked, 1);
	}
	/* the replica is not the primary: writes fail, the connection goes */
	eventlog *ro = open_url("redis://127.0.0.1:%d?stream=t:wait", rep.port);
	CHECK_INT(eventlog_append(ro, &r, 1, NULL, 0, 0, NULL), EVENTLOG_EUNAVAILABLE);
	CHECK(strstr(eventlog_errmsg(ro), "READONLY") != NULL);
	eventlog_close(ro);
	stop_proc(rep.pid, SIGTERM);
	eventlog_close(log);
}

/* Starts a sentinel monitoring 127.0.0.1:primary as master "m". */
static pid_t sentinel_start(int idx, int port, int primary)
{
	char conf[400], logf[400];
	snprintf(conf, sizeof(conf), "%s/sentinel%d.conf", scratch, idx);
	snprintf(logf, sizeof(logf), "%s/sentinel%d.log", scratch, idx);
	FILE *f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f,
		"port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"
		"sentinel monitor m 127.0.0.1 %d 2\n"
		"sentinel down-after-milliseconds m 1000\n"
		"sentinel failover-timeout m 10000\n",
		port, scratch, logf, primary);
	fclose(f);
	char *argv[] = { "redis-sentinel", conf, NULL };
	return spawn(argv);
}

/* The count of a sentinel's answer to SENTINEL what m. */
static int sentinel_count(int port, const char *what)
{
	redisContext *c = raw(port, NULL);
	if (!c)
		return -1;
	redisReply *r = redisCommand(c, "SENTINEL %s m", what);
	int n = r && r->type == REDIS_REPLY_ARRAY ? (int)r->elements : -1;
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return n;
}

TEST(sentinel_failover)
{
	CHECK(have_redis);
	server p = { 0 }, rep = { 0 };
	int sp[3];
	pid_t spid[3] = { 0 };
	char pport[16];
	if (!server_start(&p, "fo-primary", NULL) || !wait_up(p.port, NULL)) {
		CHECK(0);
		return;
	}
	snprintf(pport, sizeof(pport), "%d", p.port);
	server_start(&rep, "fo-replica", "--replicaof", "127.0.0.1", pport, NULL);
	CHECK(wait_replicas(p.port, 1));
	for (int i = 0; i < 3; i++) {
		sp[i] = free_port();
		spid[i] = sentinel_start(i, sp[i], p.port);
	}
	/* Every sentinel must know the replica and the two others before the
	 * primary goes, or none can win the vote (hello messages: ~2 s). */
	bool ready = false;
	for (int i = 0; i < 300 && !ready; i++) { /* bounded: 15 s */
		ready = true;
		for (int k = 0; k < 3; k++)
			ready &= sentinel_count(sp[k], "replicas") == 1 &&
				 sentinel_count(sp[k], "sentinels") == 2;
		if (!ready)
			sleep_ms(50);
	}
	CHECK(ready);

	/* the first sentinel is down: the module asks the next */
	stop_proc(spid[0], SIGTERM);
	eventlog *log = open_url("sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/m"
				 "?stream=t:fo&timeout_ms=500&connect_timeout_ms=200",
				 sp[0], sp[1], sp[2]);
	eventlog_record recs[] = { ev("c1", "before", 1), ev("c2", "before", 1) };
	eventlog_id ids[2];
	int acked = 0;
	CHECK_INT(eventlog_append(log, recs, 2, ids, 1, 5000, &acked), 0);
	CHECK_INT(acked, 1);
	spid[0] = sentinel_start(0, sp[0], p.port); /* three again for the vote */
	char want[32];
	snprintf(want, sizeof(want), "127.0.0.1:%d", p.port);
	CHECK_STR(eventlog_address(log), want);

	stop_proc(p.pid, SIGKILL);
	double t0 = util_monotonic();
	int rc = -1;
	eventlog_record r = ev("c1", "after", 1);
	for (int i = 0; i < 600 && rc != 0; i++) { /* bounded: 30 s */
		rc = eventlog_append(log, &r, 1, NULL, 0, 0, NULL);
		if (rc)
			sleep_ms(50);
	}
	CHECK_INT(rc, 0);
	if (rc)
		fprintf(stderr, "failover: %s\n", eventlog_errmsg(log));
	else
		fprintf(stderr, "test_eventlog: failover found the new primary in %.1f s\n",
			util_monotonic() - t0);
	snprintf(want, sizeof(want), "127.0.0.1:%d", rep.port);
	CHECK_STR(eventlog_address(log), want);
	CHECK(eventlog_connects(log) >= 2);
	/* what was acknowledged with WAIT 1 survived the failover */
	enum eventlog_presence pr;
	CHECK_INT(eventlog_check_entry(log, ids[1], "c2", 2, &pr), 0);
	CHECK_INT(pr, EVENTLOG_PRESENT);
	CHECK_INT(scan_all(log, 100, NULL, NULL), 3);
	eventlog_close(log);
	for (int i = 0; i < 3; i++)
		stop_proc(spid[i], SIGTERM);
	stop_proc(rep.pid, SIGTERM);
}

TEST(unreachable)
{
	/* nothing listens there: EUNAVAILABLE quickly, with the address */
	int port = free_port();
	eventlog *log = open_url("redis://127.0.0.1:%d?connect_timeout_ms=200", port);
	eventlog_record r = ev("c", "i", 1);
	CHECK_INT(eventlog_append(log, &r, 1, NULL, 0, 0, NULL), EVENTLOG_EUNAVAILABLE);
	char want[32];
	snprintf(want, sizeof(want), "127.0.0.1:%d", port);
	CHECK(strstr(eventlog_errmsg(log), want) != NULL);
	eventlog_batch b = { 0 };
	CHECK_INT(eventlog_read(log, EVENTLOG_ID_MIN, 1, 0, &b), EVENTLOG_EUNAVAILABLE);
	eventlog_close(log);
	log = open_url("sentinel://127.0.0.1:%d/m?connect_timeout_ms=200", port);
	CHECK_INT(eventlog_ping(log), EVENTLOG_EUNAVAILABLE);
	CHECK(strstr(eventlog_errmsg(log), "no primary found") != NULL);
	eventlog_close(log);
	eventlog_close(NULL);
}

static bool in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[1024];
	while (path && *path) {
		size_t n = strcspn(path, ":");
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
		if (access(buf, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	snprintf(scratch, sizeof(scratch), "/tmp/shopkeeper-eventlog-XXXXXX");
	if (!mkdtemp(scratch))
		return 1;
	atexit(cleanup);
	have_redis = in_path("redis-server") && in_path("redis-sentinel");
	if (!have_redis)
		fprintf(stderr, "test_eventlog: redis-server or redis-sentinel is not installed "
			"(apt-get install redis-server redis-sentinel): the Redis tests FAIL\n");

	RUN(ids);
	RUN(url_table);
	RUN(password_files);
	RUN(codec);
	RUN(resp_replies);
	RUN(unreachable);
	if (server_start(&main_srv, "main", NULL) && !wait_up(main_srv.port, NULL))
		fprintf(stderr, "test_eventlog: redis-server did not come up\n");
	RUN(append_and_read);
	RUN(batches);
	RUN(durability_check);
	RUN(erasure_index);
	RUN(trim_and_compacted_flags);
	RUN(password);
	RUN(reconnect_after_restart);
	RUN(wait_for_replicas);
	RUN(sentinel_failover);
	stop_proc(main_srv.pid, SIGTERM);
	return harness_done();
}
