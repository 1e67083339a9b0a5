/*
 * test_eventlog_cli: the commands that read or trim the shared event log,
 * run through the binary's own entry point (cli_main) against a real
 * redis-server that the test starts on a loopback port in a scratch
 * directory. The stream is filled with the eventlog module's public API
 * (eventlog_append), as serve writes it.
 *   - train --events-from redis://...: a customer known only from the log
 *     gets a history; an erased customer is left out entirely (CSV rows
 *     too); one without consent keeps only the CSV; events the exports
 *     cover are not counted twice; the meta record says what was fed.
 *   - eventlog trim: entries before --min-id go, consent and erasure stay
 *     in the compacted flags; usage errors exit 2.
 *
 * Without redis-server the Redis cases fail loudly, as in test_eventlog.
 */
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
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

#include "cli.h"
#include "eventlog.h"
#include "harness.h"
#include "model.h"
#include "util.h"

static char scratch[256];
static char url[256];
static pid_t redis_pid;

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

static eventlog *open_log(void)
{
	eventlog_config cfg;
	strbuf err = STRBUF_INIT;
	eventlog *log = NULL;
	if (eventlog_config_parse(url, &cfg, &err) == 0) {
		eventlog_open(&cfg, &log);
		eventlog_config_free(&cfg);
	}
	sb_release(&err);
	return log;
}

/* redis-server as serve's operators run it (AOF, fsync always); true once
 * it answers (within 10 s). */
static bool redis_start(void)
{
	int port = free_port();
	char ports[16], logfile[300];
	snprintf(ports, sizeof(ports), "%d", port);
	snprintf(logfile, sizeof(logfile), "%s/redis.log", scratch);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d?stream=test:events", port);
	redis_pid = fork();
	if (redis_pid < 0)
		abort();
	if (redis_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execlp("redis-server", "redis-server", "--port", ports, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir",
		       scratch, "--logfile", logfile, (char *)NULL);
		_exit(127);
	}
	eventlog *log = open_log();
	bool up = false;
	for (int i = 0; log && i < 200 && !up; i++) {
		up = eventlog_ping(log) == 0;
		if (!up)
			sleep_ms(50);
	}
	eventlog_close(log);
	if (!up)
		fprintf(stderr, "test_eventlog_cli: redis-server did not start (apt-get install "
				"redis-server): the Redis cases fail\n");
	return up;
}

static int cli(const char *first, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	va_start(ap, first);
	argv[argc++] = "shopkeeper";
	for (const char *a = first; a && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	fflush(stdout);
	return cli_main(argc, argv);
}

static eventlog_record event(const char *customer, const char *item, int64_t ts, int type)
{
	return (eventlog_record){ .kind = EVENTLOG_EVENT, .customer = customer,
				  .customer_len = strlen(customer), .item = item,
				  .item_len = strlen(item), .ts = ts, .quantity = 1,
				  .price = 1.5f, .type = (uint8_t)type };
}

static eventlog_record flag(int kind, const char *customer, bool personalization)
{
	return (eventlog_record){ .kind = (uint8_t)kind, .customer = customer,
				  .customer_len = strlen(customer),
				  .personalization = personalization };
}

/* The customer's history size in the model, or -1 when absent. */
static int history_size(model_txn *t, const char *customer)
{
	model_customer c;
	int rc = model_customer_get(t, customer, strlen(customer), &c);
	return rc == 0 ? (int)c.n_hist : -1;
}

/* Has the customer's history `item`? */
static bool has_item(model *m, model_txn *t, const char *customer, const char *item)
{
	model_customer c;
	if (model_customer_get(t, customer, strlen(customer), &c) != 0)
		return false;
	for (uint32_t i = 0; i < c.n_hist; i++) {
		size_t len;
		const char *id = model_item_id(m, model_history_at(&c, i).item, &len);
		if (len == strlen(item) && memcmp(id, item, len) == 0)
			return true;
	}
	return false;
}

static int count_flags(void *arg, const eventlog_record *rec, eventlog_id id)
{
	(void)id;
	if (rec->customer_len == 6 && memcmp(rec->customer, "trim-", 5) == 0)
		(*(int *)arg)++;
	return 0;
}

/* 2024-03-01 .. 2024-03-03 in the CSV; live events around them. */
#define TS_CSV_MAX 1709463600   /* 2024-03-03 11:00:00Z, the exports' newest */
#define TS_AFTER (TS_CSV_MAX + 3600)
#define TS_BEFORE (TS_CSV_MAX - 86400)

static char csv[300];

/* The exports: 2024-03-01 .. 2024-03-03. */
static void write_csv(void)
{
	snprintf(csv, sizeof(csv), "%s/interactions.csv", scratch);
	FILE *f = fopen(csv, "w");
	if (!f)
		abort();
	fputs("customer_id,item_id,timestamp\n"
	      "alice,apple,2024-03-01 10:00:00\nalice,bread,2024-03-01 10:00:00\n"
	      "bob,apple,2024-03-02 10:00:00\nbob,cheese,2024-03-02 10:00:00\n"
	      "carol,cheese,2024-03-03 11:00:00\ncarol,dates,2024-03-03 11:00:00\n",
	      f);
	fclose(f);
}

TEST(train_from_the_log)
{
	char out[300];
	snprintf(out, sizeof(out), "%s/model", scratch);
	eventlog *log = open_log();
	eventlog_record recs[] = {
		event("newbie", "apple", TS_AFTER, EVENT_PURCHASE),
		event("newbie", "cheese", TS_AFTER, EVENT_CART),
		event("newbie", "bread", TS_AFTER, 3 /* remove from cart: no signal */),
		event("alice", "eggs", TS_AFTER, EVENT_PURCHASE),
		flag(EVENTLOG_ERASURE, "alice", false),
		event("bob", "flour", TS_AFTER, EVENT_PURCHASE),
		flag(EVENTLOG_CONSENT, "bob", false),
		event("carol", "eggs", TS_AFTER, EVENT_PURCHASE),
		event("oldtimer", "apple", TS_BEFORE, EVENT_PURCHASE),
		/* withdrawn, then given again: trained */
		flag(EVENTLOG_CONSENT, "dave", false),
		event("dave", "bread", TS_AFTER, EVENT_PURCHASE),
		flag(EVENTLOG_CONSENT, "dave", true),
	};
	eventlog_id ids[ARRAY_SIZE(recs)];
	CHECK_INT(eventlog_append(log, recs, ARRAY_SIZE(recs), ids, 0, 0, NULL), 0);

	CHECK_INT(cli("train", "--interactions", csv, "--out", out, "--events-from", url,
		      "--algo", "cosine", "--half-life", "0", "--quiet", NULL),
		  EXIT_OK);
	model *m = NULL;
	model_txn *t = NULL;
	strbuf err = STRBUF_INIT;
	CHECK_INT(model_open(out, &m, &err), 0);
	if (m && model_txn_begin(m, &t) == 0) {
		CHECK_INT(history_size(t, "newbie"), 2);
		CHECK(has_item(m, t, "newbie", "apple"));
		CHECK(has_item(m, t, "newbie", "cheese"));
		CHECK_INT(history_size(t, "alice"), -1); /* her CSV rows too */
		CHECK_INT(history_size(t, "bob"), 2);    /* the CSV only */
		CHECK(!has_item(m, t, "bob", "flour"));
		CHECK_INT(history_size(t, "carol"), 3);
		CHECK(has_item(m, t, "carol", "eggs"));
		CHECK_INT(history_size(t, "oldtimer"), -1);
		CHECK_INT(history_size(t, "dave"), 1);
		json_t *meta = json_loads(model_get_info(m)->meta_json, 0, NULL);
		json_t *live = json_object_get(meta, "live_events");
		char last[EVENTLOG_ID_LEN];
		eventlog_id_format(ids[ARRAY_SIZE(recs) - 1], last);
		CHECK_STR(json_string_value(json_object_get(live, "last_id")), last);
		const char *src = json_string_value(json_object_get(live, "source"));
		CHECK(src && strncmp(src, "redis://127.0.0.1:", 18) == 0);
		/* newbie 3, bob 1, carol 1, oldtimer 1, dave 1 (alice's was deleted) */
		CHECK_INT(json_integer_value(json_object_get(live, "events")), 7);
		CHECK_INT(json_integer_value(json_object_get(live, "added")), 4);
		CHECK_INT(json_integer_value(json_object_get(live, "skipped")), 1);
		CHECK_INT(json_integer_value(json_object_get(live, "no_consent")), 1);
		CHECK_INT(json_integer_value(json_object_get(live, "covered_by_exports")), 1);
		json_decref(meta);
	}
	model_txn_free(t);
	model_close(m);
	sb_release(&err);
	eventlog_close(log);
}

/* Runs the command with stdout into a file; returns its exit code and the
 * output's first line in out. */
static int cli_out(char *out, size_t size, const char *cmd, const char *a1, const char *a2,
		   const char *a3, const char *a4)
{
	char path[300];
	snprintf(path, sizeof(path), "%s/stdout", scratch);
	fflush(stdout);
	int saved = dup(1);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 1);
	close(fd);
	int rc = cli("eventlog", cmd, a1, a2, a3, a4, NULL);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	out[0] = '\0';
	FILE *f = fopen(path, "r");
	if (f) {
		if (!fgets(out, (int)size, f))
			out[0] = '\0';
		fclose(f);
	}
	out[strcspn(out, "\n")] = '\0';
	return rc;
}

TEST(trim_keeps_consent_and_erasure)
{
	eventlog *log = open_log();
	char tail0[EVENTLOG_ID_LEN], line[256], want[256], min[EVENTLOG_ID_LEN];
	eventlog_id last;
	uint64_t len0;
	CHECK_INT(eventlog_tail(log, &last, &len0), 0);
	eventlog_id_format(last, tail0);
	eventlog_record recs[] = {
		event("trim-a", "apple", TS_AFTER, EVENT_VIEW),
		flag(EVENTLOG_CONSENT, "trim-b", false),
		flag(EVENTLOG_ERASURE, "trim-c", false),
		event("trim-a", "bread", TS_AFTER, EVENT_VIEW),
		event("trim-a", "cheese", TS_AFTER, EVENT_VIEW),
	};
	eventlog_id ids[ARRAY_SIZE(recs)];
	CHECK_INT(eventlog_append(log, recs, ARRAY_SIZE(recs), ids, 0, 0, NULL), 0);
	char newest[EVENTLOG_ID_LEN];
	eventlog_id_format(ids[4], newest);
	CHECK_INT(cli_out(line, sizeof(line), "tail", "--event-log", url, NULL, NULL), EXIT_OK);
	snprintf(want, sizeof(want), "{\"last_id\":\"%s\",\"length\":%llu}", newest,
		 (unsigned long long)(len0 + 5));
	CHECK_STR(line, want);

	/* Everything before the fourth entry goes: the earlier training's
	 * events and the first three records here. */
	eventlog_id_format(ids[3], min);
	CHECK_INT(cli_out(line, sizeof(line), "trim", "--event-log", url, "--min-id", min), EXIT_OK);
	snprintf(want, sizeof(want), "{\"trimmed\":%llu,\"min_id\":\"%s\"}",
		 (unsigned long long)(len0 + 3), min);
	CHECK_STR(line, want);
	uint64_t len;
	CHECK_INT(eventlog_tail(log, &last, &len), 0);
	CHECK_INT(len, 2);
	uint64_t n = 99;
	CHECK_INT(eventlog_customer_entries(log, "trim-a", 6, &n), 0);
	CHECK_INT(n, 2); /* the index lost the trimmed id */
	/* Consent and erasure survive in the compacted flags. */
	int seen = 0;
	CHECK_INT(eventlog_flags_each(log, count_flags, &seen, NULL), 0);
	CHECK_INT(seen, 2);

	/* Past the newest entry: refused, nothing trimmed. */
	char past[64];
	snprintf(past, sizeof(past), "%llu", (unsigned long long)ids[4].ms + 1000);
	CHECK_INT(cli_out(line, sizeof(line), "trim", "--event-log", url, "--min-id", past),
		  EXIT_RUNTIME);
	CHECK_INT(eventlog_tail(log, &last, &len), 0);
	CHECK_INT(len, 2);
	/* Trimming again to the same point: nothing more goes. */
	CHECK_INT(cli_out(line, sizeof(line), "trim", "--event-log", url, "--min-id", min), EXIT_OK);
	snprintf(want, sizeof(want), "{\"trimmed\":0,\"min_id\":\"%s\"}", min);
	CHECK_STR(line, want);
	eventlog_close(log);
}

/* deploy/publish-model.sh --event-log, run by sh as operators do: three
 * versions trained from the log, --keep 2; the stream keeps everything
 * after what the oldest kept version covers. */
static int publish(const char *log_url, const char *models, bool from_log)
{
	const char *bin = getenv("BIN") ? getenv("BIN") : "bin";
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "SHOPKEEPER=%s/shopkeeper sh deploy/publish-model.sh %s --keep 2 --event-log '%s' "
		 "-- --interactions %s %s%s%s --algo cosine >>%s/publish.log 2>&1",
		 bin, models, log_url, csv, from_log ? "--events-from '" : "", from_log ? log_url : "",
		 from_log ? "'" : "", scratch);
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(publish_trims_to_the_oldest_kept_model)
{
	char url2[300], models[300];
	snprintf(url2, sizeof(url2), "%.*s?stream=test:publish", (int)strcspn(url, "?"), url);
	snprintf(models, sizeof(models), "%s/models", scratch);
	eventlog_config cfg;
	strbuf err = STRBUF_INIT;
	eventlog *log = NULL;
	CHECK_INT(eventlog_config_parse(url2, &cfg, &err), 0);
	eventlog_open(&cfg, &log);
	eventlog_config_free(&cfg);
	sb_release(&err);
	eventlog_record recs[3] = { event("p1", "apple", TS_AFTER, EVENT_PURCHASE),
				    event("p2", "bread", TS_AFTER, EVENT_PURCHASE),
				    event("p3", "cheese", TS_AFTER, EVENT_PURCHASE) };
	eventlog_id a[3], b[2], c[1], last;
	uint64_t len;
	CHECK_INT(eventlog_append(log, recs, 3, a, 0, 0, NULL), 0);
	CHECK_INT(publish(url2, models, true), 0); /* v1 covers a[2] */
	CHECK_INT(eventlog_tail(log, &last, &len), 0);
	CHECK_INT(len, 1); /* v1, the only version, covers up to a[2] (kept) */
	CHECK_INT(eventlog_append(log, recs, 2, b, 0, 0, NULL), 0);
	CHECK_INT(publish(url2, models, true), 0); /* v2 covers b[1]; v1 still kept */
	CHECK_INT(eventlog_tail(log, &last, &len), 0);
	CHECK_INT(len, 3); /* a[2], b[0], b[1] */
	CHECK_INT(eventlog_append(log, recs, 1, c, 0, 0, NULL), 0);
	CHECK_INT(publish(url2, models, true), 0); /* v3; v1 pruned, v2 the oldest */
	CHECK_INT(eventlog_tail(log, &last, &len), 0);
	CHECK_INT(len, 2); /* b[1], c[0] */
	eventlog_batch bt = { 0 };
	CHECK_INT(eventlog_range(log, EVENTLOG_ID_MIN, EVENTLOG_ID_MAX, 10, &bt), 0);
	CHECK(bt.n == 2 && eventlog_id_cmp(bt.entries[0].id, b[1]) == 0 &&
	      eventlog_id_cmp(bt.entries[1].id, c[0]) == 0);
	eventlog_batch_release(&bt);
	/* A version that records no position (trained without the log) stops
	 * the trim while it is kept: a replica may bootstrap from it. */
	CHECK_INT(eventlog_append(log, recs, 1, c, 0, 0, NULL), 0);
	CHECK_INT(publish(url2, models, false), 0);
	CHECK_INT(eventlog_tail(log, &last, &len), 0);
	CHECK_INT(len, 3); /* nothing trimmed */
	char path[400], text[16384];
	snprintf(path, sizeof(path), "%s/publish.log", scratch);
	FILE *f = fopen(path, "r");
	size_t got = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
	text[got] = '\0';
	if (f)
		fclose(f);
	CHECK(strstr(text, "event log not trimmed: no stream position recorded in") != NULL);
	CHECK(strstr(text, "event log trimmed before") != NULL);
	eventlog_close(log);
}

TEST(eventlog_usage_errors)
{
	char line[256];
	CHECK_INT(cli_out(line, sizeof(line), "trim", "--min-id", "1-0", NULL, NULL), EXIT_USAGE);
	CHECK_INT(cli_out(line, sizeof(line), "trim", "--event-log", url, NULL, NULL), EXIT_USAGE);
	CHECK_INT(cli_out(line, sizeof(line), "trim", "--event-log", url, "--min-id", "x-1"),
		  EXIT_USAGE);
	CHECK_INT(cli_out(line, sizeof(line), "trim", "--event-log", "http://h", "--min-id", "1"),
		  EXIT_USAGE);
	CHECK_INT(cli_out(line, sizeof(line), "tail", "--event-log", url, "--min-id", "1"),
		  EXIT_USAGE);
	CHECK_INT(cli_out(line, sizeof(line), "shrink", NULL, NULL, NULL, NULL), EXIT_USAGE);
	CHECK_INT(cli_out(line, sizeof(line), "--help", NULL, NULL, NULL, NULL), EXIT_OK);
	CHECK(strstr(line, "usage: shopkeeper eventlog trim") != NULL);
}

TEST(train_from_a_log_that_is_down)
{
	char out[300], bad[64];
	snprintf(out, sizeof(out), "%s/model-down", scratch);
	snprintf(bad, sizeof(bad), "redis://127.0.0.1:%d", free_port());
	CHECK_INT(cli("train", "--interactions", "tests/fixtures/interactions.csv", "--out", out,
		      "--events-from", bad, "--quiet", NULL),
		  EXIT_RUNTIME);
	struct stat st;
	CHECK(stat(out, &st) != 0); /* nothing written */
}

int main(void)
{
	snprintf(scratch, sizeof(scratch), "/tmp/shopkeeper-eventlog-cli-%d", (int)getpid());
	mkdir(scratch, 0700);
	bool up = redis_start();
	write_csv();
	RUN(train_from_a_log_that_is_down);
	if (up) {
		RUN(train_from_the_log);
		RUN(trim_keeps_consent_and_erasure);
		RUN(eventlog_usage_errors);
		RUN(publish_trims_to_the_oldest_kept_model);
	} else {
		harness_failed++;
		fprintf(stderr, "FAIL redis-server missing\n");
	}
	if (redis_pid > 0) {
		kill(redis_pid, SIGKILL);
		waitpid(redis_pid, NULL, 0);
	}
	if (!harness_failed)
		nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	else
		fprintf(stderr, "test_eventlog_cli: files kept in %s\n", scratch);
	return harness_done();
}
