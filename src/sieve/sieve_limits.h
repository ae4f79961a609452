/*
 * sieve_limits: every bound the policy engine enforces, in one place.
 *
 * A script cannot loop, but it can be big or hostile, and what it handles
 * (header values, DNS answers, vctx values) comes from network peers. Each
 * bound below has a default; the caller may tighten or loosen them through
 * struct sieve_limits when compiling. Exceeding a compile-time bound is a
 * compile error, exceeding a run-time bound a runtime error; either message
 * names the limit (the names are the SIEVE_LIMIT_*_NAME strings).
 */
#ifndef MX_SIEVE_SIEVE_LIMITS_H
#define MX_SIEVE_SIEVE_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIEVE_DEFAULT_MAX_SOURCE        (1u << 20) /* bytes of script text */
#define SIEVE_DEFAULT_MAX_PROGRAM       65536u     /* compiled instructions + nodes */
#define SIEVE_DEFAULT_MAX_NESTING       32u        /* blocks and test nesting */
#define SIEVE_DEFAULT_MAX_STRING        65536u     /* bytes in one run-time string */
#define SIEVE_DEFAULT_MAX_LIST          1024u      /* elements of a list or hash */
#define SIEVE_DEFAULT_MAX_VARIABLES     256u       /* distinct variables in a script */
#define SIEVE_DEFAULT_REGEX_MATCH_LIMIT 100000u    /* PCRE2 match limit per call */
#define SIEVE_DEFAULT_REGEX_DEPTH_LIMIT 1000u      /* PCRE2 depth limit per call */
/* max_dns_lookups and max_tarpit are also sieve stanza options: keep these
 * two equal to the stanza's defaults in conf/config.c (walk_sieve). */
#define SIEVE_DEFAULT_MAX_DNS_LOOKUPS   4u         /* ec_dns_lookup per phase (both slots) */
#define SIEVE_DEFAULT_MAX_RUN_MEMORY    (4u << 20) /* bytes of per-run arena */
#define SIEVE_DEFAULT_MAX_LOG_LINES     64u        /* ec_log lines per run */
#define SIEVE_DEFAULT_MAX_TARPIT        60u        /* seconds, sum of ec_tarpit */
#define SIEVE_DEFAULT_MAX_RUN_TIME      100u       /* ms of CPU one run may spend matching */

/* How a runtime error ends a run (sieve.md section 7, `runtime_error`). */
enum sieve_on_error {
	SIEVE_ON_ERROR_FAIL = 1, /* 451 4.3.0, terminal for the phase (default) */
	SIEVE_ON_ERROR_CONTINUE, /* log it, skip the failing statement, go on */
};

/* Bounds for one compiled script, copied into it at compile time. */
struct sieve_limits {
	size_t max_source;
	size_t max_program;
	unsigned max_nesting;
	size_t max_string;
	size_t max_list;
	unsigned max_variables;
	uint32_t regex_match_limit;
	uint32_t regex_depth_limit;
	unsigned max_dns_lookups;
	size_t max_run_memory;
	unsigned max_log_lines;
	unsigned max_tarpit;            /* cap on the summed tarpit of one run */
	unsigned max_run_time;          /* ms of CPU a run's tests may take (the
	                                 * other bounds cap one test, not how many
	                                 * values x keys x bytes a run compares) */
	enum sieve_on_error on_error;
};

/* Fill `l` with the defaults above. */
void sieve_limits_default(struct sieve_limits *l);

#endif
