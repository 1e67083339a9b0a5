/*
 * util: allocation that cannot fail, clocks, UTF-8 validation, running a
 * function on several threads.
 */
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t size)
{
	fprintf(stderr, "shopkeeper: out of memory allocating %zu bytes\n", size);
	abort();
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (!p)
		oom(size);
	return p;
}

void *xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);
	if (!p)
		oom(count * size);
	return p;
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);
	if (!p)
		oom(size);
	return p;
}

void *xmallocarray(size_t count, size_t size)
{
	if (size && count > SIZE_MAX / size)
		oom(SIZE_MAX);
	return xmalloc(count * size);
}

void *xreallocarray(void *ptr, size_t count, size_t size)
{
	if (size && count > SIZE_MAX / size)
		oom(SIZE_MAX);
	return xrealloc(ptr, count * size);
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

double util_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double util_monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int util_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false; /* continuation byte, overlong lead or > U+10FFFF */
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

#define LOG_LINE_MAX 1024 /* under PIPE_BUF (4096 on Linux): one atomic write */

void util_vlog(const char *prefix, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	size_t cap = sizeof(line) - 1; /* room kept for the '\n' */
	int n = snprintf(line, cap, "%s", prefix ? prefix : "shopkeeper: ");
	size_t len = n < 0 ? 0 : MIN((size_t)n, cap - 1);
	n = vsnprintf(line + len, cap - len, fmt, ap);
	if (n >= 0 && (size_t)n >= cap - len) { /* cut: say so */
		len = cap - 1;
		memcpy(line + len - 3, "...", 3);
	} else if (n > 0) {
		len += (size_t)n;
	}
	while (len > 0 && line[len - 1] == '\n')
		len--;
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w; /* nowhere left to report a failing stderr */
}

void util_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	util_vlog(NULL, fmt, ap);
	va_end(ap);
}

uint64_t util_peak_rss(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (uint64_t)ru.ru_maxrss * 1024u; /* Linux reports KiB */
}

void util_run_parallel(uint32_t threads, void *(*fn)(void *), void *arg)
{
	pthread_t tids[UTIL_MAX_THREADS];
	uint32_t started = 0;
	for (uint32_t t = 1; t < threads && t < UTIL_MAX_THREADS; t++)
		if (pthread_create(&tids[started], NULL, fn, arg) == 0)
			started++;
	fn(arg);
	for (uint32_t t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
}

bool util_may_leave_sched_idle(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NICE, &rl) == 0 && (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= 20))
		return true;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return false;
	char line[256];
	bool ok = false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long caps;
		if (sscanf(line, "CapEff: %llx", &caps) == 1) {
			ok = (caps >> 23) & 1; /* CAP_SYS_NICE */
			break;
		}
	}
	fclose(f);
	return ok;
}
