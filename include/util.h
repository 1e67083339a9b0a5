/*
 * util: allocation that cannot fail, clocks, UTF-8 validation, running a
 * function on several threads.
 *
 * Out-of-memory is not a recoverable condition for this program: like Redis'
 * zmalloc, the x* allocators print one line and abort instead of making every
 * caller check for NULL.
 */
#ifndef SHOPKEEPER_UTIL_H
#define SHOPKEEPER_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* malloc/calloc/realloc/strdup that abort the process on failure.
 * The caller owns the returned memory and releases it with free(). */
void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
/* Overflow-checked count * size, for array allocations. */
void *xmallocarray(size_t count, size_t size);
void *xreallocarray(void *ptr, size_t count, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Seconds since the Unix epoch (wall clock, for as-of times and logs). */
double util_now(void);
/* Seconds on a monotonic clock (for measuring durations). */
double util_monotonic(void);
/* Whether this process may put one of its threads at SCHED_IDLE back at
 * the ordinary priority: CAP_SYS_NICE, or RLIMIT_NICE of at least 20 (nice
 * 0; sched(7)). The state's writers run at SCHED_IDLE only where this is
 * true: a thread at SCHED_IDLE that could not leave it would hold writes
 * back for as long as the request threads keep the cores busy. */
bool util_may_leave_sched_idle(void);

/* True when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF). NUL bytes are rejected as well: ids and CSV fields
 * are C strings further on. */
/* The value of hex digit c (either case), or -1. */
int util_hexval(int c);

bool utf8_valid(const char *s, size_t n);

/* Runs fn(arg) on `threads` threads, the caller's among them, and returns
 * when all have returned. A thread that cannot be started is done without
 * (fn runs at least once, on the caller's), so fn must share its work out
 * through arg rather than count on a number of threads. At most
 * UTIL_MAX_THREADS are used. */
#define UTIL_MAX_THREADS 64
void util_run_parallel(uint32_t threads, void *(*fn)(void *), void *arg);

/* Writes one line to stderr with one write(2): "shopkeeper: " (or
 * `prefix`), the formatted message, and exactly one '\n'. Lines from
 * different threads never interleave (stderr a file opened O_APPEND, or a
 * pipe: a line is kept under PIPE_BUF, longer ones end in "..."). Never
 * allocates, so it is safe where memory ran out. */
void util_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void util_vlog(const char *prefix, const char *fmt, va_list ap);

/* Peak resident set size of this process in bytes (0 if unknown). */
uint64_t util_peak_rss(void);

/* A 64-bit hash of an id for tables and filters: FNV-1a, mixed as
 * MurmurHash3's finaliser does, because FNV's high bits hardly change with
 * an id's last bytes (the prime's top bit is 2^40): "17850.0" and
 * "17851.0" would land side by side (before the mix, 360 probes a lookup
 * on Online Retail's customer ids). Every bit depends on every byte. */
static inline uint64_t util_id_hash(const char *id, size_t len)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)id[i];
		h *= 1099511628211ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
