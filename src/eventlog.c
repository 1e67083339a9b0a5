/*
 * eventlog: the shared event log in a Redis stream, the client side: the
 * connection (direct or through Sentinel, with back-off), the Redis
 * command helpers the other eventlog files share (eventlog_internal.h),
 * appending and reading. See eventlog.h for the key layout, the append
 * script, trimming and the connection rules. The rest of the module:
 * erasure, trimming, bootstrap and the failover check in
 * eventlog_admin.c, the entry ids and the record codec in
 * eventlog_codec.c, the URL parser in eventlog_url.c.
 */
#include "eventlog.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "eventlog_internal.h"
#include "util.h"

#define APPEND_MAX 10000
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 1000

const char *eventlog_strerror(int rc)
{
	switch (rc) {
	case 0:
		return "ok";
	case EVENTLOG_EINVAL:
		return "invalid argument";
	case EVENTLOG_EUNAVAILABLE:
		return "event log unavailable";
	case EVENTLOG_EREPLICAS:
		return "too few Redis replicas acknowledged";
	case EVENTLOG_EREDIS:
		return "Redis refused the command";
	case EVENTLOG_EDECODE:
		return "not a valid event log record";
	case EVENTLOG_EVERSION:
		return "event log record of a newer format";
	default:
		return "unknown event log error";
	}
}

/* ---- the connection ---------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

int eventlog_open(const eventlog_config *cfg, eventlog **out)
{
	if (!cfg || cfg->nhosts == 0 || !cfg->stream || (cfg->sentinel && !cfg->master))
		return EVENTLOG_EINVAL;
	eventlog *log = xcalloc(1, sizeof(*log));
	log->cfg = *cfg;
	log->cfg.master = dup_or_null(cfg->master);
	log->cfg.password = dup_or_null(cfg->password);
	log->cfg.sentinel_password = dup_or_null(cfg->sentinel_password);
	log->cfg.stream = xmalloc(cfg->stream_len + 1);
	memcpy(log->cfg.stream, cfg->stream, cfg->stream_len);
	log->cfg.stream[cfg->stream_len] = '\0';
	sb_init(&log->err, 128);
	sb_init(&log->connect_err, 128);
	*out = log;
	return 0;
}

static void disconnect(eventlog *log)
{
	if (log->c)
		redisFree(log->c);
	log->c = NULL;
	log->addr[0] = '\0';
}

void eventlog_close(eventlog *log)
{
	if (!log)
		return;
	disconnect(log);
	eventlog_config_free(&log->cfg);
	sb_release(&log->err);
	sb_release(&log->connect_err);
	sb_release(&log->keys);
	sb_release(&log->enc);
	free(log->argv);
	free(log->argl);
	free(log);
}

const char *eventlog_errmsg(const eventlog *log)
{
	return sb_str(&log->err);
}

const char *eventlog_address(const eventlog *log)
{
	return log->addr;
}

uint64_t eventlog_connects(const eventlog *log)
{
	return log->connects;
}

int eventlog_fail(eventlog *log, int rc, const char *fmt, ...)
{
	va_list ap;
	sb_reset(&log->err);
	va_start(ap, fmt);
	sb_vaddf(&log->err, fmt, ap);
	va_end(ap);
	return rc;
}

static struct timeval ms_tv(int ms)
{
	return (struct timeval){ .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
}

static void set_io_timeout(eventlog *log, int ms)
{
	if (log->c && log->io_timeout_ms != ms && redisSetTimeout(log->c, ms_tv(ms)) == REDIS_OK)
		log->io_timeout_ms = ms;
}

void eventlog_free_reply(redisReply *r)
{
	if (r)
		freeReplyObject(r);
}

/* The most elements one array of a reply may declare: ten times the
 * largest we ask for (READ_COUNT_MAX entries). hiredis 0.14 allocates a
 * declared array up front, so a server's 12 bytes "*399999999\r\n" asked
 * for 3.2 GB (found by fuzz_eventlog, 2026-12). Past it the reader fails
 * with its out-of-memory error, which a connection treats like any other. */
#define REPLY_ARRAY_MAX (10u * READ_COUNT_MAX)

static redisReplyObjectFunctions bounded_functions; /* hiredis's, but createArray */
static void *(*hiredis_create_array)(const redisReadTask *task, int elements);

static void *create_array_bounded(const redisReadTask *task, int elements)
{
	if (elements < 0 || (unsigned)elements > REPLY_ARRAY_MAX)
		return NULL;
	return hiredis_create_array(task, elements);
}

static void bounded_functions_init(void)
{
	redisReader *tmp = redisReaderCreate();
	if (!tmp)
		abort();
	bounded_functions = *tmp->fn;
	hiredis_create_array = bounded_functions.createArray;
	bounded_functions.createArray = create_array_bounded;
	redisReaderFree(tmp);
}

/* Makes rd refuse arrays over REPLY_ARRAY_MAX elements. */
static void reader_bound(redisReader *rd)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, bounded_functions_init);
	rd->fn = &bounded_functions;
}

/* Connects to host:port, authenticates with password (may be NULL).
 * Returns the context, or NULL with why appended to *why. */
static redisContext *connect_node(eventlog *log, const char *host, int port, const char *password,
				  strbuf *why)
{
	redisContext *c = redisConnectWithTimeout(host, port, ms_tv(log->cfg.connect_timeout_ms));
	if (!c || c->err) {
		sb_addf(why, "%s:%d: %s", host, port, c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	reader_bound(c->reader);
	if (redisSetTimeout(c, ms_tv(log->cfg.timeout_ms)) != REDIS_OK ||
	    redisEnableKeepAlive(c) != REDIS_OK) {
		sb_addf(why, "%s:%d: %s", host, port, c->errstr);
		redisFree(c);
		return NULL;
	}
	if (password) {
		redisReply *r = redisCommand(c, "AUTH %s", password);
		if (!r || r->type == REDIS_REPLY_ERROR) {
			sb_addf(why, "%s:%d: AUTH: %s", host, port, r ? r->str : c->errstr);
			log->auth_failed = r != NULL;
			eventlog_free_reply(r);
			redisFree(c);
			return NULL;
		}
		eventlog_free_reply(r);
	}
	return c;
}

/* Asks the sentinels in turn for the primary, connects to it and checks
 * that it says it is one. */
static redisContext *discover(eventlog *log, strbuf *why, char *addr, size_t addr_size)
{
	const eventlog_config *cfg = &log->cfg;
	for (uint32_t k = 0; k < cfg->nhosts; k++) {
		uint32_t s = (log->sentinel_next + k) % cfg->nhosts;
		const eventlog_host *h = &cfg->hosts[s];
		if (why->len)
			sb_adds(why, "; ");
		redisContext *sc = connect_node(log, h->host, h->port, cfg->sentinel_password, why);
		if (!sc)
			continue;
		redisReply *r = redisCommand(sc, "SENTINEL get-master-addr-by-name %s", cfg->master);
		char host[EVENTLOG_HOST_MAX + 1];
		uint64_t port = 0;
		bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
			  r->element[0]->type == REDIS_REPLY_STRING &&
			  r->element[1]->type == REDIS_REPLY_STRING && r->element[0]->len > 0 &&
			  r->element[0]->len <= EVENTLOG_HOST_MAX &&
			  eventlog_parse_u64(r->element[1]->str, r->element[1]->len, &port) == 0 &&
			  port > 0 && port <= 65535;
		if (ok) {
			memcpy(host, r->element[0]->str, r->element[0]->len);
			host[r->element[0]->len] = '\0';
		} else if (!r) {
			sb_addf(why, "sentinel %s:%d: %s", h->host, h->port, sc->errstr);
		} else if (r->type == REDIS_REPLY_ERROR) {
			sb_addf(why, "sentinel %s:%d: %s", h->host, h->port, r->str);
		} else {
			sb_addf(why, "sentinel %s:%d does not know master '%s'", h->host, h->port,
				cfg->master);
		}
		eventlog_free_reply(r);
		redisFree(sc);
		if (!ok)
			continue;
		redisContext *c = connect_node(log, host, (int)port, cfg->password, why);
		if (!c)
			continue;
		/* A sentinel may still name the old primary just after a failover:
		 * only a node that says it is the master will do. */
		r = redisCommand(c, "ROLE");
		bool master = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
			      r->element[0]->type == REDIS_REPLY_STRING &&
			      strcmp(r->element[0]->str, "master") == 0;
		if (!master)
			sb_addf(why, "%s:%d (from sentinel %s:%d) is not the primary: %s", host,
				(int)port, h->host, h->port,
				!r ? c->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "ROLE says replica");
		eventlog_free_reply(r);
		if (!master) {
			redisFree(c);
			continue;
		}
		log->sentinel_next = s;
		snprintf(addr, addr_size, "%s:%d", host, (int)port);
		return c;
	}
	return NULL;
}

/* Connects unless connected; a failed connect holds further attempts
 * back (force skips that). */
static int ensure_connected(eventlog *log, bool force)
{
	if (log->c)
		return 0;
	double now = util_monotonic();
	if (!force && now < log->next_try)
		return eventlog_fail(log, EVENTLOG_EUNAVAILABLE,
				     "event log: not connected (next attempt in %.0f ms): %s",
				     (log->next_try - now) * 1000, sb_str(&log->connect_err));
	sb_reset(&log->connect_err);
	log->auth_failed = false;
	char addr[sizeof(log->addr)];
	redisContext *c;
	if (log->cfg.sentinel) {
		c = discover(log, &log->connect_err, addr, sizeof(addr));
	} else {
		const eventlog_host *h = &log->cfg.hosts[0];
		c = connect_node(log, h->host, h->port, log->cfg.password, &log->connect_err);
		snprintf(addr, sizeof(addr), "%s:%d", h->host, h->port);
	}
	if (!c) {
		log->backoff_ms = log->backoff_ms ? MIN(log->backoff_ms * 2, BACKOFF_MAX_MS)
						  : BACKOFF_FIRST_MS;
		log->next_try = now + log->backoff_ms / 1000.0;
		return eventlog_fail(
			log, log->auth_failed ? EVENTLOG_EREDIS : EVENTLOG_EUNAVAILABLE,
			"event log: %s%s", log->cfg.sentinel ? "no primary found: " : "",
			sb_str(&log->connect_err));
	}
	log->c = c;
	log->io_timeout_ms = log->cfg.timeout_ms;
	log->backoff_ms = 0;
	log->next_try = 0;
	log->connects++;
	memcpy(log->addr, addr, sizeof(addr));
	return 0;
}

/* Error replies that mean "this is not (or no longer) a usable primary":
 * drop the connection so the next call finds the primary again. */
static bool error_means_reconnect(const redisReply *r)
{
	static const char *const codes[] = { "READONLY", "MASTERDOWN", "LOADING", "NOREPLICAS" };
	for (size_t i = 0; i < ARRAY_SIZE(codes); i++)
		if (strncmp(r->str, codes[i], strlen(codes[i])) == 0)
			return true;
	return false;
}

int eventlog_check_reply(eventlog *log, const redisReply *r, const char *what)
{
	if (!r) {
		int rc = eventlog_fail(
			log, EVENTLOG_EUNAVAILABLE, "event log %s: %s: %s", log->addr, what,
			log->c && log->c->errstr[0] ? log->c->errstr : "connection lost");
		disconnect(log);
		return rc;
	}
	if (r->type != REDIS_REPLY_ERROR)
		return 0;
	int rc = eventlog_fail(log,
			       error_means_reconnect(r) ? EVENTLOG_EUNAVAILABLE : EVENTLOG_EREDIS,
			       "event log %s: %s: %s", log->addr, what, r->str);
	if (rc == EVENTLOG_EUNAVAILABLE)
		disconnect(log);
	return rc;
}

int eventlog_run_argv(eventlog *log, redisReply **out, int argc, const char **argv,
		      const size_t *argl)
{
	*out = NULL;
	int rc = ensure_connected(log, false);
	if (rc)
		return rc;
	redisReply *r = redisCommandArgv(log->c, argc, argv, argl);
	rc = eventlog_check_reply(log, r, argv[0]);
	if (rc) {
		eventlog_free_reply(r);
		return rc;
	}
	*out = r;
	return 0;
}

/* The scratch argv arrays, at least n long. */
static void argv_reserve(eventlog *log, size_t n)
{
	if (n <= log->argcap)
		return;
	size_t cap = MAX(n, log->argcap * 2);
	log->argv = xreallocarray(log->argv, cap, sizeof(*log->argv));
	log->argl = xreallocarray(log->argl, cap, sizeof(*log->argl));
	log->argcap = cap;
}

/* argv[i] = s (NUL-terminated) */
#define ARG(log, i, s) ((log)->argv[i] = (s), (log)->argl[i] = strlen(s))
#define ARGB(log, i, s, n) ((log)->argv[i] = (s), (log)->argl[i] = (n))

size_t eventlog_key_add(eventlog *log, const char *suffix, const char *s, size_t n)
{
	size_t at = log->keys.len;
	sb_add(&log->keys, log->cfg.stream, log->cfg.stream_len);
	sb_adds(&log->keys, suffix);
	if (n)
		sb_add(&log->keys, s, n);
	sb_addc(&log->keys, '\0'); /* keys are separated, lengths kept apart */
	return at;
}

int eventlog_ping(eventlog *log)
{
	sb_reset(&log->err);
	int rc = ensure_connected(log, true);
	if (rc)
		return rc;
	redisReply *r = redisCommand(log->c, "PING");
	rc = eventlog_check_reply(log, r, "PING");
	eventlog_free_reply(r);
	return rc;
}

/* The value of CONFIG GET name, copied into buf; -1 when CONFIG failed
 * (reason in log->err, connection errors in *rc). */
static int config_get(eventlog *log, const char *name, char *buf, size_t size, int *rc)
{
	redisReply *r = redisCommand(log->c, "CONFIG GET %s", name);
	*rc = eventlog_check_reply(log, r, "CONFIG GET");
	if (*rc == EVENTLOG_EREDIS)
		*rc = 0; /* refused: say we could not check */
	else if (*rc) {
		eventlog_free_reply(r);
		return -1;
	}
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		if (r && r->type != REDIS_REPLY_ERROR)
			eventlog_fail(log, 0, "CONFIG GET %s answered no value", name);
		eventlog_free_reply(r);
		return -1;
	}
	snprintf(buf, size, "%.*s", (int)r->element[1]->len, r->element[1]->str);
	eventlog_free_reply(r);
	return 0;
}

int eventlog_check_durability(eventlog *log, enum eventlog_durability *level, strbuf *msg)
{
	sb_reset(&log->err);
	sb_reset(msg);
	*level = EVENTLOG_UNKNOWN;
	int rc = ensure_connected(log, true);
	if (rc)
		return rc;
	char aof[32], fsync[32], policy[32];
	if (config_get(log, "appendonly", aof, sizeof(aof), &rc) != 0 ||
	    config_get(log, "appendfsync", fsync, sizeof(fsync), &rc) != 0 ||
	    config_get(log, "maxmemory-policy", policy, sizeof(policy), &rc) != 0) {
		if (rc)
			return rc;
		sb_addf(msg, "event log %s: could not check that Redis writes every append to disk "
			"(%s); make sure it runs with appendonly yes and appendfsync always, or an "
			"acknowledged write may be lost when Redis crashes",
			log->addr, sb_str(&log->err));
		sb_reset(&log->err);
		return 0;
	}
	if (strcmp(policy, "noeviction") != 0) {
		/* Eviction would drop the stream, the erasure index or the
		 * compacted flags without a trace: as bad as losing the disk. */
		*level = EVENTLOG_WEAK;
		sb_addf(msg, "event log %s: WARNING: Redis runs with maxmemory-policy %s, so it may "
			"evict the event log's keys when memory runs short; set maxmemory-policy "
			"noeviction (appendonly %s, appendfsync %s)",
			log->addr, policy, aof, fsync);
	} else if (strcmp(aof, "yes") == 0 && strcmp(fsync, "always") == 0) {
		*level = EVENTLOG_DURABLE;
		sb_addf(msg, "event log %s: appendonly yes, appendfsync always, maxmemory-policy "
			"noeviction", log->addr);
	} else {
		*level = EVENTLOG_WEAK;
		sb_addf(msg, "event log %s: WARNING: Redis runs with appendonly %s and appendfsync "
			"%s, so a crash of Redis can lose writes already acknowledged with a 2xx; "
			"set appendonly yes and appendfsync always",
			log->addr, aof, fsync);
	}
	return 0;
}

/* ---- appending ------------------------------------------------------------------- */

/* The append script; see eventlog.h for what it does per record. ARGV
 * holds triples: tag ('e' event or expire, '1'/'0' consent with
 * personalization on or off, 'x' erasure; 'i' and two digits, the set and clear bits, for an
 * item; 'k' and a hex digit, the fields, for a catalog record), customer
 * (an item or catalog record's item), encoded record. It returns the
 * new ids.
 * XDEL takes the erased ids in slices so unpack stays far below Lua's
 * stack limit (about 8000 values). */
static const char append_script[] =
	"local s = KEYS[1]\n"
	"local ids = {}\n"
	"for i = 1, #ARGV, 3 do\n"
	"  local k, c = ARGV[i], ARGV[i + 1]\n"
	"  local ck = s .. ':c:' .. c\n"
	"  if string.sub(k, 1, 1) == 'i' then\n"
	"    local id = redis.call('XADD', s, '*', 'r', ARGV[i + 2])\n"
	"    local ik = s .. ':items'\n"
	"    local old = redis.call('HGET', ik, c)\n"
	"    local f = old and tonumber(string.sub(old, 1, 1)) or 0\n"
	"    f = bit.band(bit.bor(f, tonumber(string.sub(k, 2, 2))),\n"
	"                 bit.bnot(tonumber(string.sub(k, 3, 3))))\n"
	"    if f == 0 then\n"
	"      redis.call('HDEL', ik, c)\n"
	"    else\n"
	"      redis.call('HSET', ik, c, f .. id)\n"
	"    end\n"
	"    ids[#ids + 1] = id\n"
	"  elseif string.sub(k, 1, 1) == 'k' then\n"
	"    local enc = ARGV[i + 2]\n"
	"    local id = redis.call('XADD', s, '*', 'r', enc)\n"
	"    local f = tonumber(string.sub(k, 2, 2), 16)\n"
	"    local names = { [1] = 't', [2] = 'c', [4] = 'p', [8] = 'f' }\n"
	"    for b, l in pairs(names) do\n"
	"      if bit.band(f, b) ~= 0 then\n"
	"        redis.call('HSET', s .. ':catalog', l .. c, id .. ' ' .. enc)\n"
	"      end\n"
	"    end\n"
	"    ids[#ids + 1] = id\n"
	"  else\n"
	"  if k == 'x' then\n"
	"    local old = redis.call('LRANGE', ck, 0, -1)\n"
	"    for j = 1, #old, 500 do\n"
	"      redis.call('XDEL', s, unpack(old, j, math.min(j + 499, #old)))\n"
	"    end\n"
	"    redis.call('DEL', ck)\n"
	"    redis.call('HDEL', s .. ':consent', c)\n"
	"  end\n"
	"  local id = redis.call('XADD', s, '*', 'r', ARGV[i + 2])\n"
	"  if k == 'x' then\n"
	"    redis.call('HSET', s .. ':erased', c, id)\n"
	"  else\n"
	"    redis.call('RPUSH', ck, id)\n"
	"    if k ~= 'e' then\n"
	"      redis.call('HSET', s .. ':consent', c, k .. id)\n"
	"    end\n"
	"  end\n"
	"  ids[#ids + 1] = id\n"
	"  end\n"
	"end\n"
	"return ids\n";

int eventlog_append(eventlog *log, const eventlog_record *recs, size_t n, eventlog_id *ids,
		    int replicas, int wait_ms, int *acked)
{
	sb_reset(&log->err);
	if (acked)
		*acked = 0;
	if (n == 0 || n > APPEND_MAX || replicas < 0 || (replicas > 0 && wait_ms <= 0))
		return eventlog_fail(log, EVENTLOG_EINVAL, "event log append: bad arguments");

	/* Encode everything first: a bad record sends nothing. Offsets are
	 * kept, pointers taken once the buffer stops growing. */
	sb_reset(&log->enc);
	size_t *off = xmallocarray(n + 1, sizeof(*off));
	for (size_t i = 0; i < n; i++) {
		off[i] = log->enc.len;
		if (eventlog_encode(&recs[i], &log->enc) != 0) {
			free(off);
			return eventlog_fail(log, EVENTLOG_EINVAL,
					     "event log append: record %zu is invalid", i);
		}
	}
	off[n] = log->enc.len;
	int rc = ensure_connected(log, false);
	if (rc) {
		free(off);
		return rc;
	}

	static const char *const tags[] = { "e", "1", "0", "x" };
	static const char *const itags[16] = { "i00", "i01", "i02", "i03", "i10", "i11",
					       "i12", "i13", "i20", "i21", "i22", "i23",
					       "i30", "i31", "i32", "i33" }; /* "i" SET CLEAR */
	static const char *const ktags[16] = { "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7",
					       "k8", "k9", "ka", "kb", "kc", "kd", "ke", "kf" };
	argv_reserve(log, 4 + 3 * n);
	ARG(log, 0, "EVAL");
	ARGB(log, 1, append_script, sizeof(append_script) - 1);
	ARG(log, 2, "1");
	ARGB(log, 3, log->cfg.stream, log->cfg.stream_len);
	for (size_t i = 0; i < n; i++) {
		const eventlog_record *r = &recs[i];
		/* An expire record names its customer: indexed like an event, so
		 * an erasure deletes it too; so does a served record. */
		const char *tag = r->kind == EVENTLOG_EVENT || r->kind == EVENTLOG_EXPIRE ||
					  r->kind == EVENTLOG_SERVED
					  ? tags[0]
				  : r->kind == EVENTLOG_ERASURE ? tags[3]
				  : r->personalization		? tags[1]
								: tags[2];
		if (r->kind == EVENTLOG_CATALOG) {
			/* Fields checked by the encoder: 1..15. */
			ARG(log, 4 + 3 * i, ktags[r->catalog_fields]);
			ARGB(log, 5 + 3 * i, r->item, r->item_len);
			ARGB(log, 6 + 3 * i, log->enc.buf + off[i], off[i + 1] - off[i]);
			continue;
		}
		if (r->kind == EVENTLOG_ITEM) {
			/* Bits checked by the encoder: both below 4. */
			ARG(log, 4 + 3 * i, itags[r->item_set * 4 + r->item_clear]);
			ARGB(log, 5 + 3 * i, r->item, r->item_len);
			ARGB(log, 6 + 3 * i, log->enc.buf + off[i], off[i + 1] - off[i]);
			continue;
		}
		ARG(log, 4 + 3 * i, tag);
		ARGB(log, 5 + 3 * i, r->customer, r->customer_len);
		ARGB(log, 6 + 3 * i, log->enc.buf + off[i], off[i + 1] - off[i]);
	}
	free(off);
	redisAppendCommandArgv(log->c, (int)(4 + 3 * n), log->argv, log->argl);
	if (replicas > 0) {
		/* In the same round trip: the WAIT reply follows the script's. */
		redisAppendCommand(log->c, "WAIT %d %d", replicas, wait_ms);
		set_io_timeout(log, log->cfg.timeout_ms + wait_ms);
	}

	redisReply *r = NULL, *w = NULL;
	if (redisGetReply(log->c, (void **)&r) != REDIS_OK)
		r = NULL;
	rc = eventlog_check_reply(log, r, "EVAL (append)");
	if (replicas > 0 && log->c) {
		if (redisGetReply(log->c, (void **)&w) != REDIS_OK)
			w = NULL;
		int wrc = eventlog_check_reply(log, w, "WAIT");
		if (!rc && wrc)
			rc = wrc;
	}
	set_io_timeout(log, log->cfg.timeout_ms);
	if (rc)
		goto done;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
		rc = eventlog_fail(log, EVENTLOG_EREDIS, "event log %s: append: unexpected reply",
				   log->addr);
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		const redisReply *e = r->element[i];
		eventlog_id id;
		if (e->type != REDIS_REPLY_STRING || eventlog_id_parse(e->str, e->len, &id) != 0) {
			rc = eventlog_fail(log, EVENTLOG_EREDIS,
					   "event log %s: append: bad id in reply", log->addr);
			goto done;
		}
		if (ids)
			ids[i] = id;
	}
	if (replicas > 0) {
		if (w->type != REDIS_REPLY_INTEGER) {
			rc = eventlog_fail(log, EVENTLOG_EREDIS,
					   "event log %s: WAIT: unexpected reply", log->addr);
			goto done;
		}
		if (acked)
			*acked = (int)MIN(w->integer, INT32_MAX);
		if (w->integer < replicas)
			rc = eventlog_fail(
				log, EVENTLOG_EREPLICAS,
				"event log %s: %lld of %d replicas acknowledged within %d ms",
				log->addr, w->integer, replicas, wait_ms);
	}
done:
	eventlog_free_reply(r);
	eventlog_free_reply(w);
	return rc;
}

/* ---- reading ------------------------------------------------------------------- */

void eventlog_batch_release(eventlog_batch *b)
{
	if (!b)
		return;
	free(b->entries);
	eventlog_free_reply(b->reply);
	memset(b, 0, sizeof(*b));
}

/* Empties b but keeps its entry array. */
static void batch_clear(eventlog_batch *b)
{
	eventlog_free_reply(b->reply);
	b->reply = NULL;
	b->n = 0;
}

/* Fills b from an array of XRANGE-shaped entries [[id, [field, value, ...]],
 * ...] with ids strictly increasing and after `after`; takes ownership of
 * `reply` (the root the entries belong to). */
static int batch_fill(eventlog_batch *b, redisReply *reply, const redisReply *entries,
		      eventlog_id after, bool check_after)
{
	batch_clear(b);
	b->reply = reply;
	if (entries->type != REDIS_REPLY_ARRAY)
		goto bad;
	if (entries->elements > b->cap) {
		b->entries = xreallocarray(b->entries, entries->elements, sizeof(*b->entries));
		b->cap = entries->elements;
	}
	eventlog_id prev = after;
	for (size_t i = 0; i < entries->elements; i++) {
		const redisReply *e = entries->element[i];
		eventlog_entry *out = &b->entries[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING ||
		    eventlog_id_parse(e->element[0]->str, e->element[0]->len, &out->id) != 0)
			goto bad;
		if ((i > 0 || check_after) && eventlog_id_cmp(out->id, prev) <= 0)
			goto bad;
		prev = out->id;
		const redisReply *f = e->element[1];
		if (f->type == REDIS_REPLY_ARRAY && f->elements == 2 &&
		    f->element[0]->type == REDIS_REPLY_STRING && f->element[0]->len == 1 &&
		    f->element[0]->str[0] == 'r' && f->element[1]->type == REDIS_REPLY_STRING) {
			out->status = eventlog_decode(f->element[1]->str, f->element[1]->len, &out->rec);
		} else {
			memset(&out->rec, 0, sizeof(out->rec));
			out->status = EVENTLOG_EDECODE;
		}
	}
	b->n = entries->elements;
	return 0;
bad:
	batch_clear(b);
	return EVENTLOG_EDECODE;
}

/* An XREAD reply: nil (nothing new) or [[key, entries]]. */
static int batch_from_xread(eventlog_batch *b, redisReply *reply, eventlog_id after)
{
	if (reply->type == REDIS_REPLY_NIL) {
		batch_clear(b);
		b->reply = reply;
		return 0;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 ||
	    reply->element[0]->type != REDIS_REPLY_ARRAY || reply->element[0]->elements != 2) {
		batch_clear(b);
		freeReplyObject(reply);
		return EVENTLOG_EDECODE;
	}
	return batch_fill(b, reply, reply->element[0]->element[1], after, true);
}

int eventlog_batch_from_resp(const void *buf, size_t n, bool xread, eventlog_batch *out)
{
	redisReader *rd = redisReaderCreate();
	void *reply = NULL;
	int rc = EVENTLOG_EDECODE;
	if (!rd)
		abort();
	rd->maxbuf = 0;
	reader_bound(rd);
	if (redisReaderFeed(rd, buf, n) == REDIS_OK && redisReaderGetReply(rd, &reply) == REDIS_OK &&
	    reply) {
		if (xread)
			rc = batch_from_xread(out, reply, EVENTLOG_ID_MIN);
		else
			rc = batch_fill(out, reply, reply, EVENTLOG_ID_MIN, false);
		reply = NULL;
	} else {
		batch_clear(out);
	}
	eventlog_free_reply(reply);
	redisReaderFree(rd);
	return rc;
}

static int read_once(eventlog *log, eventlog_id after, size_t count, int block_ms,
		     eventlog_batch *out)
{
	char id[EVENTLOG_ID_LEN], cnt[24], blk[24];
	eventlog_id_format(after, id);
	snprintf(cnt, sizeof(cnt), "%zu", count);
	snprintf(blk, sizeof(blk), "%d", block_ms);
	const char *argv[8];
	size_t argl[8];
	int argc = 0;
#define PUSH(s, l) (argv[argc] = (s), argl[argc++] = (l))
	PUSH("XREAD", 5);
	PUSH("COUNT", 5);
	PUSH(cnt, strlen(cnt));
	if (block_ms > 0) {
		PUSH("BLOCK", 5);
		PUSH(blk, strlen(blk));
	}
	PUSH("STREAMS", 7);
	PUSH(log->cfg.stream, log->cfg.stream_len);
	PUSH(id, strlen(id));
#undef PUSH
	int rc = ensure_connected(log, false);
	if (rc)
		return rc;
	if (block_ms > 0)
		set_io_timeout(log, log->cfg.timeout_ms + block_ms);
	redisReply *r = redisCommandArgv(log->c, argc, argv, argl);
	set_io_timeout(log, log->cfg.timeout_ms);
	rc = eventlog_check_reply(log, r, "XREAD");
	if (rc) {
		eventlog_free_reply(r);
		return rc;
	}
	if (batch_from_xread(out, r, after) != 0)
		return eventlog_fail(log, EVENTLOG_EREDIS, "event log %s: XREAD: malformed reply",
				     log->addr);
	return 0;
}

int eventlog_read(eventlog *log, eventlog_id after, size_t count, int block_ms,
		  eventlog_batch *out)
{
	int rc;
	sb_reset(&log->err);
	batch_clear(out);
	if (count == 0 || count > READ_COUNT_MAX || block_ms < 0)
		return eventlog_fail(log, EVENTLOG_EINVAL, "event log read: bad arguments");
	RETRY_ONCE(log, read_once(log, after, count, block_ms, out));
	return rc;
}

int eventlog_range_once(eventlog *log, eventlog_id from, eventlog_id to, size_t count,
			eventlog_batch *out, bool reverse)
{
	char a[EVENTLOG_ID_LEN], b[EVENTLOG_ID_LEN], cnt[24];
	eventlog_id_format(reverse ? to : from, a);
	eventlog_id_format(reverse ? from : to, b);
	snprintf(cnt, sizeof(cnt), "%zu", count);
	const char *argv[] = { reverse ? "XREVRANGE" : "XRANGE", log->cfg.stream, a, b, "COUNT", cnt };
	size_t argl[] = { strlen(argv[0]), log->cfg.stream_len, strlen(a), strlen(b), 5, strlen(cnt) };
	redisReply *r;
	int rc = eventlog_run_argv(log, &r, 6, argv, argl);
	if (rc)
		return rc;
	if (reverse) {
		/* Newest first: only the count-1 case is used, no order to check. */
		if (r->type != REDIS_REPLY_ARRAY || r->elements > 1) {
			eventlog_free_reply(r);
			return eventlog_fail(log, EVENTLOG_EREDIS,
					     "event log: XREVRANGE: malformed reply");
		}
	}
	if (batch_fill(out, r, r, EVENTLOG_ID_MIN, false) != 0)
		return eventlog_fail(log, EVENTLOG_EREDIS, "event log %s: XRANGE: malformed reply",
				     log->addr);
	return 0;
}

int eventlog_range(eventlog *log, eventlog_id from, eventlog_id to, size_t count,
		   eventlog_batch *out)
{
	int rc;
	sb_reset(&log->err);
	batch_clear(out);
	if (count == 0 || count > READ_COUNT_MAX)
		return eventlog_fail(log, EVENTLOG_EINVAL, "event log range: bad arguments");
	RETRY_ONCE(log, eventlog_range_once(log, from, to, count, out, false));
	return rc;
}
