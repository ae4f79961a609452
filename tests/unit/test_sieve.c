/*
 * test_sieve: the engine through its public API, stage by stage: compile
 * diagnostics (file:line:col, recovery), the VM's suspend/resume on DNS,
 * the result of the seed script, and `mxsieve --compile`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sieve/sieve.h"
#include "sieve/sieve_int.h" /* sieve_glob */
#include "sieve/sieve_tool.h"
#include "unit.h"

static bool audit_count(void *ud, enum sieve_audit_scope scope, const char *arg, uint64_t *out,
                        char *err, size_t errlen)
{
	*out = strcmp(arg, "/32") == 0 ? 1001 : 10001;
	return true;
}

static const char seed[] =
	"($connections) = audit_connections_on_service \"/32\";\n"
	"($c_connections) = audit_connections_on_service \"/24\";\n"
	"if ec_test :value \"gt\" :comparator \"i;ascii-numeric\" \"${connections}\" \"1000\" {\n"
	"  ec_tarpit 10 \"too many connections /32\";\n"
	"}\n"
	"if ec_test :value \"gt\" :comparator \"i;ascii-numeric\" \"${c_connections}\" \"10000\" {\n"
	"  ec_tarpit 10 \"too many connections /24\";\n"
	"}\n";

UNIT_TEST(seed_script_20_seconds)
{
	struct sieve_diags d = {0};
	struct sieve_script *s = sieve_compile("seed.sieve", seed, strlen(seed), MX_PHASE_CONNECT,
	                                       NULL, &d);
	CHECK(s != NULL);
	CHECK_EQ(d.count, 0);
	struct sieve_env env = {.audit_count = audit_count};
	struct sieve_run *r = sieve_run_new(s, &env, NULL);
	CHECK_EQ(sieve_run_execute(r), SIEVE_DONE);
	const struct sieve_result *res = sieve_run_result(r);
	CHECK_EQ(res->tarpit_seconds, 20);
	CHECK_EQ(res->action, SIEVE_ACT_NONE);
	CHECK(!res->terminal);
	CHECK_EQ(res->ncounters, 2);
	CHECK_STR(res->counters[0].name, "too many connections /32");
	sieve_run_free(r);
	sieve_script_free(s);
}

UNIT_TEST(errors_have_positions_and_all_are_reported)
{
	const char *src = "bogus;\nif header \"a\" \"b\" { keep; }\nreject;\n";
	struct sieve_diags d = {0};
	struct sieve_script *s = sieve_compile("x.sieve", src, strlen(src), MX_PHASE_CONNECT, NULL, &d);
	CHECK(s == NULL);
	CHECK_EQ(d.count, 3);
	if (d.count == 3) {
		CHECK_STR(d.lines[0], "x.sieve:1:1: unknown command 'bogus'");
		CHECK(strncmp(d.lines[1], "x.sieve:2:4: 'header' cannot be used", 36) == 0);
		CHECK_STR(d.lines[2], "x.sieve:3:1: 'reject' takes 1 argument, not 0");
	}
	sieve_diags_clear(&d);
}

/* The two parenthesised lists (a test list, the variables of an assignment)
 * report a wrong item and a wrong separator where they are. */
UNIT_TEST(list_errors_name_the_list_and_the_place)
{
	static const struct {
		const char *src, *want;
	} cases[] = {
		{"if anyof (true, \"x\") { keep; }\n",
		 "l.sieve:1:17: expected a test in the test list, found a string"},
		{"if anyof (true; false) { keep; }\n",
		 "l.sieve:1:15: expected ',' or ')' in the test list, found ';'"},
		{"($a, 5) = audit_connections_on_service \"/32\";\n",
		 "l.sieve:1:6: expected a variable in ( ), found a number"},
		{"($a $b) = audit_connections_on_service \"/32\";\n",
		 "l.sieve:1:5: expected ',' or ')' after a variable, found a variable"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sieve_diags d = {0};
		struct sieve_script *s = sieve_compile("l.sieve", cases[i].src, strlen(cases[i].src),
		                                       MX_PHASE_CONNECT, NULL, &d);
		CHECK(s == NULL);
		CHECK(d.count >= 1);
		if (d.count >= 1)
			CHECK_STR(d.lines[0], cases[i].want);
		sieve_diags_clear(&d);
	}
}

/* A missing ';' is reported right after the command's name or last argument,
 * once, and what follows is still checked as the command it is. */
UNIT_TEST(missing_semicolon_is_reported_where_it_belongs)
{
	static const struct {
		const char *src;
		size_t count;
		const char *want[2];
	} cases[] = {
		{"stop\nec_log \"a\";\n", 1,
		 {"s.sieve:1:5: expected ';' after 'stop', found 'ec_log'"}},
		{"ec_log \"a\"\nec_log \"b\";\n", 1,
		 {"s.sieve:1:11: expected ';' after 'ec_log', found 'ec_log'"}},
		{"ec_tarpit 5\nif ec_test :value \"gx\" \"1\" \"2\" { stop; }\n", 2,
		 {"s.sieve:1:12: expected ';' after 'ec_tarpit', found 'if'",
		  "s.sieve:2:19: unknown relation \"gx\" (known: gt ge lt le eq ne bitwise-and)"}},
		/* the if taken as keep's test still heads its elsif chain */
		{"keep\nif false { stop; }\nelsif true { stop; }\nelse { stop; }\n", 1,
		 {"s.sieve:1:5: expected ';' after 'keep', found 'if'"}},
		/* the next line's variable is read as an argument: the error
		 * pointed at its '=' (2:4) */
		{"stop\n$a = \"x\";\n", 1,
		 {"s.sieve:1:5: expected ';' after 'stop' (an assignment follows)"}},
		{"ec_tarpit 5 \"x\"\n  $a[\"k\"] = \"x\";\n", 1,
		 {"s.sieve:1:16: expected ';' after 'ec_tarpit' (an assignment follows)"}},
		/* the same after an assignment from a function */
		{"$h = hash_create;\n$x = hash_get $h \"k\"\n$z = 1;\n", 1,
		 {"s.sieve:2:21: expected ';' after the assignment (an assignment follows)"}},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sieve_diags d = {0};
		struct sieve_script *s = sieve_compile("s.sieve", cases[i].src, strlen(cases[i].src),
		                                       MX_PHASE_CONNECT, NULL, &d);
		CHECK(s == NULL);
		CHECK_EQ(d.count, cases[i].count);
		for (size_t k = 0; k < d.count && k < cases[i].count; k++)
			CHECK_STR(d.lines[k], cases[i].want[k]);
		sieve_diags_clear(&d);
	}
}

UNIT_TEST(dns_suspends_and_resumes)
{
	const char *src = "$a = ec_dns_lookup \"x.example\" \"TXT\";\n"
	                  "if ec_test :is $a \"v=spf1\" { ec_action 554 \"5.7.1 ${a}\"; }\n";
	struct sieve_diags d = {0};
	struct sieve_script *s = sieve_compile("d.sieve", src, strlen(src), MX_PHASE_CONNECT, NULL, &d);
	CHECK(s != NULL);
	struct sieve_env env = {0};
	struct sieve_run *r = sieve_run_new(s, &env, NULL);
	CHECK_EQ(sieve_run_execute(r), SIEVE_SUSPENDED);
	CHECK_EQ(sieve_run_execute(r), SIEVE_SUSPENDED); /* still waiting */
	const char *name = NULL;
	enum sieve_dns_type type = 0;
	CHECK(sieve_run_dns_request(r, &name, &type));
	CHECK_STR(name, "x.example");
	CHECK_EQ(type, SIEVE_DNS_TXT);
	const char *answers[] = {"v=spf1"};
	sieve_run_dns_resume(r, answers, 1, SIEVE_DNS_OK);
	CHECK(!sieve_run_dns_request(r, &name, &type));
	CHECK_EQ(sieve_run_execute(r), SIEVE_DONE);
	CHECK_EQ(sieve_run_result(r)->code, 554);
	CHECK_STR(sieve_run_result(r)->text, "v=spf1");
	sieve_run_free(r);
	sieve_script_free(s);
}

UNIT_TEST(runtime_error_continue_policy)
{
	const char *src = "ec_action 999 \"x\";\nec_tarpit 2;\n";
	struct sieve_limits lim;
	sieve_limits_default(&lim);
	lim.on_error = SIEVE_ON_ERROR_CONTINUE;
	struct sieve_script *s = sieve_compile("c.sieve", src, strlen(src), MX_PHASE_CONNECT, &lim, NULL);
	CHECK(s != NULL);
	struct sieve_env env = {0};
	struct sieve_run *r = sieve_run_new(s, &env, NULL);
	CHECK_EQ(sieve_run_execute(r), SIEVE_DONE);
	CHECK_EQ(sieve_run_result(r)->tarpit_seconds, 2);
	CHECK_EQ(sieve_run_result(r)->nlog_lines, 1);
	sieve_run_free(r);
	sieve_script_free(s);
}

/* "$a = \"<len x 'a'>b\"; $b = ...c; $l = [$a x n]; $k = [$b x n];
 * if ec_test TAGS $l $k {...}": every pair compared, none matching. */
static char *pairs_script(size_t len, size_t n, size_t nk, const char *tags)
{
	size_t cap = 2 * len + 8 * (n + nk) + 256;
	char *src = malloc(cap), *p = src;
	p += sprintf(p, "$a = \"");
	memset(p, 'a', len);
	p += len;
	p += sprintf(p, "b\";\n$b = \"");
	memset(p, 'a', len);
	p += len;
	p += sprintf(p, "c\";\n$l = [");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, i ? ",$a" : "$a");
	p += sprintf(p, "];\n$k = [");
	for (size_t i = 0; i < nk; i++)
		p += sprintf(p, i ? ",$b" : "$b");
	p += sprintf(p, "];\nif ec_test %s $l $k { ec_log \"m\"; }\n", tags);
	return src;
}

/* Compile `src` for the connect phase with `lim` (NULL: the defaults) and
 * run it: its status; its error (or "") in err, the CPU seconds the run
 * took in *cpu, its log lines in *nlog. */
static enum sieve_status run_src(const char *name, const char *src,
                                 const struct sieve_limits *lim, char *err, size_t errlen,
                                 double *cpu, size_t *nlog)
{
	struct sieve_script *s = sieve_compile(name, src, strlen(src), MX_PHASE_CONNECT, lim, NULL);
	CHECK(s != NULL);
	if (!s)
		return SIEVE_ERROR;
	struct sieve_env env = {0};
	struct sieve_run *r = sieve_run_new(s, &env, NULL);
	struct timespec t0, t1;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	enum sieve_status st = sieve_run_execute(r);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
	const struct sieve_result *res = sieve_run_result(r);
	snprintf(err, errlen, "%s", res->error ? res->error : "");
	*cpu = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	*nlog = res->nlog_lines;
	sieve_run_free(r);
	sieve_script_free(s);
	return st;
}

/* "$V = \"<len x fill>\"; $l = [$V x n]; REST": REST uses $l. */
static char *list_script(size_t len, char fill, size_t n, const char *rest)
{
	char *src = malloc(len + 8 * n + strlen(rest) + 64), *q = src;
	q += sprintf(q, "$V = \"");
	memset(q, fill, len);
	q += len;
	q += sprintf(q, "\";\n$l = [");
	for (size_t i = 0; i < n; i++)
		q += sprintf(q, i ? ",$V" : "$V");
	sprintf(q, "];\n%s", rest);
	return src;
}

/* One test over 1,024 x 1,024 pairs of 64 KiB strings took 28 s of the
 * event loop (the limits bound each list and string, not their product):
 * max_run_time ends it with an error that names the limit. Each case
 * below ran for seconds before its fix. */
UNIT_TEST(matching_work_is_bounded_per_run)
{
	char err[256];
	double cpu;
	size_t nlog;
	struct sieve_limits lim;
	sieve_limits_default(&lim);
	lim.max_run_time = 20;
	const double bound = 10 * lim.max_run_time / 1000.0; /* the promise, with room */

	static const char *const tags[] = {":is", ":contains :comparator \"i;ascii-casemap\"",
	                                   ":matches", ":contains"};
	for (size_t t = 0; t < sizeof tags / sizeof tags[0]; t++) {
		char *src = pairs_script(65000, 1024, 1024, tags[t]);
		CHECK_EQ(run_src("w.sieve", src, NULL, err, sizeof err, &cpu, &nlog), SIEVE_ERROR);
		CHECK_STR(err, "w.sieve:5: tests too costly: over 100 ms of CPU (limit max_run_time)");
		free(src);
	}
	/* :matches without a star on short strings: each pair failed before
	 * its first charge (1M pairs: 5 s) */
	char *src = pairs_script(2000, 1024, 1024, ":matches");
	CHECK_EQ(run_src("w.sieve", src, &lim, err, sizeof err, &cpu, &nlog), SIEVE_ERROR);
	CHECK(cpu < bound);
	free(src);

	/* regex: each call is bounded by regex_match_limit (a lazy loop at
	 * every start: ~45,000 steps on 300 bytes), the run by this: 16,384
	 * such calls took 15 s */
	char rx[1024], *q = rx;
	q += sprintf(q, "if ec_test :regex $l [");
	for (char c = 'b'; c <= 'q'; c++)
		q += sprintf(q, "%s\"(?:a|%c)*?[^a]\"", c == 'b' ? "" : ",", c);
	sprintf(q, "] { }\n");
	src = list_script(300, 'a', 1024, rx);
	CHECK_EQ(run_src("x.sieve", src, &lim, err, sizeof err, &cpu, &nlog), SIEVE_ERROR);
	CHECK_STR(err, "x.sieve:3: tests too costly: over 20 ms of CPU (limit max_run_time)");
	free(src);

	/* casemap :contains with keys longer than the values: the keys'
	 * folding was not charged (200 tests: 5.7 s) */
	char many[200 * 80 + 1];
	q = many;
	for (int i = 0; i < 200; i++)
		q += sprintf(q, "if ec_test :contains :comparator \"i;ascii-casemap\" \"x\" $l { }\n");
	src = list_script(65000, 'a', 1024, many);
	CHECK_EQ(run_src("k.sieve", src, &lim, err, sizeof err, &cpu, &nlog), SIEVE_ERROR);
	CHECK(strstr(err, "limit max_run_time") != NULL);
	CHECK(cpu < bound);
	/* runtime_error = continue: after the limit every test fails at once
	 * (each got a whole window of work again: 4.3 s) */
	lim.on_error = SIEVE_ON_ERROR_CONTINUE;
	lim.max_log_lines = 1000;
	CHECK_EQ(run_src("k.sieve", src, &lim, err, sizeof err, &cpu, &nlog), SIEVE_DONE);
	CHECK(cpu < bound);
	CHECK(nlog > 100); /* most tests ended with the error */
	free(src);
	lim.on_error = SIEVE_ON_ERROR_FAIL;

	/* i;ascii-numeric reads both strings whole: a short value against long
	 * keys is charged for the long one, so the clock is read in time */
	char num[1024];
	q = num + sprintf(num, "$v = [");
	for (int i = 0; i < 64; i++)
		q += sprintf(q, i ? ",\"%d\"" : "\"%d\"", i);
	sprintf(q, "];\nif ec_test :value \"eq\" :comparator \"i;ascii-numeric\" $v $l { }\n");
	src = list_script(65000, '7', 1024, num);
	run_src("n.sieve", src, &lim, err, sizeof err, &cpu, &nlog);
	CHECK(cpu < bound);
	free(src);

	/* a big but ordinary run is not stopped: 1,024 values x 16 keys */
	src = pairs_script(100, 1024, 16, ":contains");
	CHECK_EQ(run_src("ok.sieve", src, NULL, err, sizeof err, &cpu, &nlog), SIEVE_DONE);
	free(src);
}

UNIT_TEST(missing_callback_is_a_runtime_error)
{
	const char *src = "($n) = audit_connections_on_service \"/32\";\n";
	struct sieve_script *s = sieve_compile("m.sieve", src, strlen(src), MX_PHASE_CONNECT, NULL, NULL);
	struct sieve_env env = {0};
	struct sieve_run *r = sieve_run_new(s, &env, NULL);
	CHECK_EQ(sieve_run_execute(r), SIEVE_ERROR);
	CHECK_EQ(sieve_run_result(r)->code, 451);
	CHECK_STR(sieve_run_result(r)->error,
	          "m.sieve:1: audit_connections_on_service is not available here");
	sieve_run_free(r);
	sieve_script_free(s);
}

UNIT_TEST(tool_compile_main)
{
	char path[] = "/tmp/sieve_tool_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	const char *bad = "discard;\n";
	CHECK(write(fd, bad, strlen(bad)) == (ssize_t)strlen(bad));
	close(fd);
	char *argv1[] = {"mxsieve", "--compile", path, "--phase", "connect", NULL};
	char *argv2[] = {"mxsieve", "--compile", path, "--phase", "data", NULL};
	char *argv3[] = {"mxsieve", "--compile", path, "--phase", "nosuch", NULL};
	fflush(stdout);
	CHECK_EQ(sieve_tool_compile_main(5, argv1), 1);
	CHECK_EQ(sieve_tool_compile_main(5, argv2), 0);
	CHECK_EQ(sieve_tool_compile_main(5, argv3), 2); /* bad usage (man page: 2) */
	unlink(path);
}

int main(void)
{
	return unit_run();
}

/* The wildcards' spans that a :matches records for ${1}..: for random
 * patterns and values, whenever the glob matches, the spans are in order,
 * inside the value, a "?" takes one character, and the value is exactly
 * the pattern's literal characters with each wildcard's span put in its
 * place (so no span is one character short or long). */

UNIT_TEST(glob_spans_rebuild_the_value)
{
	srand(12345);
	const char alphabet[] = "ab*?\\";
	unsigned matched = 0;
	for (int iter = 0; iter < 50000; iter++) {
		char pat[12], val[16];
		size_t pn = (size_t)(rand() % 10), vn = (size_t)(rand() % 14);
		for (size_t i = 0; i < pn; i++)
			pat[i] = alphabet[rand() % 5];
		for (size_t i = 0; i < vn; i++)
			val[i] = "ab*"[rand() % 3];
		pat[pn] = val[vn] = '\0';
		size_t cap[2 * (SIEVE_MATCH_VARS - 1)];
		unsigned ncap = 0;
		bool m = false, m2 = false;
		CHECK_EQ(sieve_glob(NULL, pat, pn, val, vn, false, &m, cap, &ncap), 0);
		CHECK_EQ(sieve_glob(NULL, pat, pn, val, vn, false, &m2, NULL, NULL), 0);
		CHECK(m == m2); /* recording the spans changes nothing */
		if (!m)
			continue;
		matched++;
		char rebuilt[64];
		size_t at = 0, prev = 0;
		unsigned k = 0;
		bool all = true; /* every wildcard has a span (at most 9 recorded) */
		for (size_t p = 0; p < pn; p++) {
			if (pat[p] == '*' || pat[p] == '?') {
				if (k >= ncap) {
					all = false;
					break;
				}
				size_t a = cap[2 * k], b = cap[2 * k + 1];
				CHECK(a >= prev && b >= a && b <= vn);
				if (pat[p] == '?')
					CHECK_EQ(b - a, 1);
				memcpy(rebuilt + at, val + a, b - a);
				at += b - a;
				prev = b;
				k++;
				continue;
			}
			if (pat[p] == '\\' && p + 1 < pn)
				p++;
			rebuilt[at++] = pat[p];
			prev++;
		}
		if (!all)
			continue;
		rebuilt[at] = '\0';
		if (strcmp(rebuilt, val) != 0) {
			fprintf(stderr, "pattern \"%s\" value \"%s\": spans rebuild \"%s\"\n", pat, val,
			        rebuilt);
			CHECK(false);
			return;
		}
	}
	CHECK(matched > 500);
}

/* A match copies only the match variables the script reads: eight :regex
 * tests of ten nested groups over a 6 KB header, reading ${1} only, fit a
 * 160 KiB run (copying ${0}..${9} at each match took 8 x 10 x 6 KB and ended
 * the run "out of run memory"). */
UNIT_TEST(match_copies_only_the_variables_read)
{
	struct sieve_limits lim;
	sieve_limits_default(&lim);
	lim.max_run_memory = 160 * 1024;
	struct sieve_fixture *fx = sieve_fixture_new();
	char err[100], *hdr = malloc(6100);
	strcpy(hdr, "Subject: ");
	memset(hdr + 9, 'a', 6000);
	hdr[6009] = '\0';
	CHECK(sieve_fixture_set(fx, "header", hdr, err, sizeof err));
	char src[2048] = "";
	for (int i = 0; i < 8; i++)
		strcat(src, "if header :regex \"subject\" \"((((((((((a*))))))))))\" { }\n");
	strcat(src, "if string :is \"${1}\" \"\" { ec_log \"empty\"; } else { ec_log \"set\"; }\n");
	char *out = sieve_fixture_eval(fx, "m.sieve", src, strlen(src), &lim);
	CHECK(out && strstr(out, "status=done\n") && strstr(out, ": set\n"));
	if (out && !strstr(out, "status=done\n"))
		fprintf(stderr, "%s", out);
	free(out);
	free(hdr);
	sieve_fixture_free(fx);
}
