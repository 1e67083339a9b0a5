/*
 * harness: the smallest test harness that does the job.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_STR(s, "abc"); }
 *   int main(void) { RUN(name); return harness_done(); }
 *
 * A test passes when all its checks do. harness_done() prints the closing
 * line tests/run.sh adds up ("N passed, N failed") and returns the exit code.
 */
#ifndef SHOPKEEPER_TEST_HARNESS_H
#define SHOPKEEPER_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int harness_passed, harness_failed, harness_check_failures;

#define TEST(name) static void name(void)

#define CHECK(cond)                                                                         \
	do {                                                                                \
		if (!(cond)) {                                                              \
			harness_check_failures++;                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                           \
	} while (0)

#define CHECK_INT(a, b)                                                                     \
	do {                                                                                \
		long long a_ = (long long)(a), b_ = (long long)(b);                         \
		if (a_ != b_) {                                                             \
			harness_check_failures++;                                           \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, \
				#a, a_, b_);                                                \
		}                                                                           \
	} while (0)

#define CHECK_STR(a, b)                                                                     \
	do {                                                                                \
		const char *a_ = (a), *b_ = (b);                                            \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                    \
			harness_check_failures++;                                           \
			fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__,      \
				__LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)");      \
		}                                                                           \
	} while (0)

#define CHECK_NEAR(a, b, eps)                                                               \
	do {                                                                                \
		double a_ = (double)(a), b_ = (double)(b);                                  \
		if (!(fabs(a_ - b_) <= (eps))) {                                            \
			harness_check_failures++;                                           \
			fprintf(stderr, "%s:%d: %s == %.9g, expected %.9g\n", __FILE__, __LINE__, \
				#a, a_, b_);                                                \
		}                                                                           \
	} while (0)

#define RUN(name)                                                                           \
	do {                                                                                \
		int before_ = harness_check_failures;                                       \
		name();                                                                     \
		if (harness_check_failures == before_) {                                    \
			harness_passed++;                                                   \
		} else {                                                                    \
			harness_failed++;                                                   \
			fprintf(stderr, "FAIL %s\n", #name);                                \
		}                                                                           \
	} while (0)

static inline int harness_done(void)
{
	printf("%d passed, %d failed\n", harness_passed, harness_failed);
	return harness_failed ? 1 : 0;
}

#endif
