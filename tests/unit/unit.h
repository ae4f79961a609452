/*
 * unit.h: the smallest table-driven test harness that does the job.
 *
 *   UNIT_TEST(name) { CHECK(x == 1); CHECK_STR(a, "b"); }
 *   int main(void) { return unit_run(); }
 *
 * Each check that fails prints file:line and what was expected; the binary
 * exits non-zero when any failed and prints "N passed, N failed" for checks.
 * tests/test_unit.py runs every binary and fails on a non-zero exit.
 */
#ifndef MX_TESTS_UNIT_H
#define MX_TESTS_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*unit_fn)(void);
struct unit_case {
	const char *label;
	unit_fn fn;
};

static struct unit_case unit_cases[512];
static int unit_ncases;
static long unit_passed, unit_failed;

#define UNIT_TEST(name)                                                        \
	static void name(void);                                                \
	__attribute__((constructor)) static void name##_register(void)         \
	{                                                                      \
		unit_cases[unit_ncases].label = #name;                          \
		unit_cases[unit_ncases++].fn = name;                           \
	}                                                                      \
	static void name(void)

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (cond) {                                                    \
			unit_passed++;                                         \
		} else {                                                       \
			unit_failed++;                                         \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
			        __LINE__, #cond);                              \
		}                                                              \
	} while (0)

#define CHECK_STR(got, want)                                                   \
	do {                                                                   \
		const char *g_ = (got), *w_ = (want);                          \
		if (g_ && w_ && strcmp(g_, w_) == 0) {                         \
			unit_passed++;                                         \
		} else {                                                       \
			unit_failed++;                                         \
			fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n",    \
			        __FILE__, __LINE__, g_ ? g_ : "(null)",        \
			        w_ ? w_ : "(null)");                           \
		}                                                              \
	} while (0)

#define CHECK_EQ(got, want)                                                    \
	do {                                                                   \
		long long g_ = (long long)(got), w_ = (long long)(want);       \
		if (g_ == w_) {                                                \
			unit_passed++;                                         \
		} else {                                                       \
			unit_failed++;                                         \
			fprintf(stderr, "%s:%d: %s = %lld, want %lld\n",       \
			        __FILE__, __LINE__, #got, g_, w_);             \
		}                                                              \
	} while (0)

static inline int unit_run(void)
{
	for (int i = 0; i < unit_ncases; i++) {
		long before = unit_failed;
		unit_cases[i].fn();
		printf("%s %s\n", unit_failed == before ? "ok" : "FAIL",
		       unit_cases[i].label);
	}
	printf("%ld passed, %ld failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

#endif
