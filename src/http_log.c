/*
 * http_log: the access log (one JSON line per sampled request, one write)
 * and libmicrohttpd's own log lines, rate-limited. See http.h for the
 * access log's contract and docs/operations.md for its fields.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "http_internal.h"
#include "util.h"

bool http_log_sampled(const http_server *s, struct http_thread *t)
{
	if (s->log_all)
		return true;
	uint32_t x = t->rng; /* xorshift32 */
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	t->rng = x;
	return x < s->log_threshold;
}

/* Appends s (at most max bytes of it) as JSON string content: quotes,
 * backslashes, control bytes and every byte >= 0x7f escaped, so the line
 * is ASCII whatever the client sent. Returns the new end. */
static char *log_str(char *o, const char *str, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; str[i] && i < max; i++) {
		unsigned char c = (unsigned char)str[i];
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c >= 0x20 && c < 0x7f) {
			*o++ = (char)c;
		} else {
			memcpy(o, "\\u00", 4);
			o[4] = hex[c >> 4];
			o[5] = hex[c & 15];
			o += 6;
		}
	}
	return o;
}

#define LOG_PATH_MAX 512 /* bytes of the path logged: a line stays under PIPE_BUF */

/* One line per request, one write(2): lines from different threads never
 * interleave (O_APPEND file, or a pipe and under PIPE_BUF). The query
 * string and headers (Authorization among them) are never logged. */
void http_access_log(const http_server *s, const char *method, const char *url, int status,
		       size_t bytes, const struct timespec *t0)
{
	struct timespec now, wall;
	clock_gettime(CLOCK_MONOTONIC, &now);
	clock_gettime(CLOCK_REALTIME, &wall);
	long long us = (long long)(now.tv_sec - t0->tv_sec) * 1000000 +
		       (now.tv_nsec - t0->tv_nsec) / 1000;
	struct tm tm;
	gmtime_r(&wall.tv_sec, &tm);
	char line[LOG_PATH_MAX * 6 + 512]; /* 6: the widest escape; 512: the rest */
	char *o = line;
	o += strftime(o, 64, "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
	o += snprintf(o, 32, ".%03ldZ\",\"method\":\"", wall.tv_nsec / 1000000);
	o = log_str(o, method, 16);
	memcpy(o, "\",\"path\":\"", 10);
	o = log_str(o + 10, url, LOG_PATH_MAX);
	o += snprintf(o, 96, "\",\"status\":%d,\"duration_us\":%lld,\"bytes\":%zu}\n", status,
		      us, bytes);
	ssize_t w = write(s->cfg.access_log_fd, line, (size_t)(o - line));
	(void)w; /* a full disk must not fail the request */
}

/* ---- the library's log ----------------------------------------------------
 * Every abandoned connection makes the library write a line, so a client
 * without a key could fill the disk under stderr: at most
 * HTTP_LOG_LINES_PER_SECOND lines a second are written (each whole, with
 * one write), the rest counted and summed up once the second is over. The
 * logger is the process's, as stderr is. */
static struct {
	pthread_mutex_t lock;
	time_t second;         /* the second being counted (monotonic) */
	unsigned written;      /* lines written in it */
	unsigned long dropped; /* lines suppressed in it */
} log_limit = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0 };
static atomic_ulong log_lines_written, log_lines_suppressed;

void http_log_counts(unsigned long *written, unsigned long *suppressed)
{
	*written = atomic_load_explicit(&log_lines_written, memory_order_relaxed);
	*suppressed = atomic_load_explicit(&log_lines_suppressed, memory_order_relaxed);
}

void http_log_library(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	unsigned long dropped_before = 0;
	bool write_it, first_dropped = false;
	pthread_mutex_lock(&log_limit.lock);
	if (now.tv_sec != log_limit.second) {
		dropped_before = log_limit.dropped;
		log_limit.second = now.tv_sec;
		log_limit.written = 0;
		log_limit.dropped = 0;
	}
	write_it = log_limit.written < HTTP_LOG_LINES_PER_SECOND;
	if (write_it)
		log_limit.written++;
	else
		first_dropped = log_limit.dropped++ == 0;
	pthread_mutex_unlock(&log_limit.lock);
	unsigned long notes = 0;
	if (dropped_before) {
		util_log("http: %lu more lines from the HTTP library were suppressed", dropped_before);
		notes++;
	}
	if (first_dropped) {
		/* Said at once: the count may only come with a later line. */
		util_log("http: over %d lines a second from the HTTP library: the rest of this "
			 "second's are counted (shopkeeper_http_log_lines_total), not written",
			 HTTP_LOG_LINES_PER_SECOND);
		notes++;
	}
	if (write_it) {
		util_vlog("shopkeeper: http: ", fmt, ap);
		notes++;
	} else {
		atomic_fetch_add_explicit(&log_lines_suppressed, 1, memory_order_relaxed);
	}
	if (notes)
		atomic_fetch_add_explicit(&log_lines_written, notes, memory_order_relaxed);
}

