/*
 * sieve_bench: the policy engine's two costs.
 *
 *   1. compile throughput: MB of script text per second (a generated script
 *      of many if/ec_test/ec_tarpit statements, compiled repeatedly);
 *   2. the seed script (seeds/audit_connections_on_service.md) per run, with
 *      its two audit lookups answered by a trivial callback: run_new +
 *      execute + free, i.e. everything a session pays per phase.
 *
 *   make B=build-sieve MODULES="util sieve" build-sieve/bench/sieve_bench
 *   ./build-sieve/bench/sieve_bench
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sieve/sieve.h"

static const char seed[] =
	"($connections) = audit_connections_on_service \"/32\";\n"
	"($c_connections) = audit_connections_on_service \"/24\";\n"
	"if ec_test :value \"gt\" :comparator \"i;ascii-numeric\" \"${connections}\" \"1000\" {\n"
	"  ec_tarpit 10 \"too many connections /32\";\n"
	"}\n"
	"\n"
	"if ec_test :value \"gt\" :comparator \"i;ascii-numeric\" \"${c_connections}\" \"10000\" {\n"
	"  ec_tarpit 10 \"too many connections /24\";\n"
	"}\n";

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool audit_count(void *ud, enum sieve_audit_scope scope, const char *arg, uint64_t *out,
                        char *err, size_t errlen)
{
	*out = arg[1] == '3' ? 1001 : 10001;
	return true;
}

int main(void)
{
	/* 1. compile throughput */
	size_t cap = 1 << 20, len = 0;
	char *big = malloc(cap);
	for (int i = 0; len + 300 < cap && i < 4000; i++)
		len += (size_t)snprintf(big + len, cap - len,
		        "if anyof (ec_test :value \"gt\" :comparator \"i;ascii-numeric\" \"${c%d}\" \"%d\",\n"
		        "          ec_test :matches \"%%{h}\" \"*.example%d.com\") {\n"
		        "  ec_tarpit %d \"counter %d\";\n}\n", i % 200, i, i, i % 7, i);
	struct sieve_limits lim;
	sieve_limits_default(&lim);
	lim.max_program = 10u << 20;
	lim.max_variables = 1024;
	int reps = 20;
	double t0 = now();
	for (int i = 0; i < reps; i++) {
		struct sieve_diags d = {0};
		struct sieve_script *s = sieve_compile("big.sieve", big, len, MX_PHASE_CONNECT, &lim, &d);
		if (!s) {
			fprintf(stderr, "compile failed: %s\n", d.count ? d.lines[0] : "?");
			return 1;
		}
		sieve_script_free(s);
		sieve_diags_clear(&d);
	}
	double t1 = now();
	printf("compile: %zu bytes x %d in %.3f s = %.1f MB/s\n", len, reps, t1 - t0,
	       (double)len * reps / (t1 - t0) / 1e6);

	/* 2. the seed script per run */
	struct sieve_diags d = {0};
	struct sieve_script *s = sieve_compile("seed.sieve", seed, strlen(seed), MX_PHASE_CONNECT,
	                                       NULL, &d);
	if (!s)
		return 1;
	struct sieve_env env = {.audit_count = audit_count};
	long n = 2000000;
	unsigned check = 0;
	t0 = now();
	for (long i = 0; i < n; i++) {
		struct sieve_run *r = sieve_run_new(s, &env, NULL);
		if (sieve_run_execute(r) != SIEVE_DONE)
			return 1;
		check += sieve_run_result(r)->tarpit_seconds;
		sieve_run_free(r);
	}
	t1 = now();
	if (check != 20u * (unsigned)n)
		return 1;
	printf("seed script: %ld runs in %.3f s = %.0f ns per run (tarpit %u s each)\n", n, t1 - t0,
	       (t1 - t0) / (double)n * 1e9, check / (unsigned)n);
	sieve_script_free(s);
	free(big);
	return 0;
}
