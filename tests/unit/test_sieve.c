/*
 * test_sieve: the engine through its public API, stage by stage: compile
 * diagnostics (file:line:col, recovery), the VM's suspend/resume on DNS,
 * the result of the seed script, and `mxsieve --compile`.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sieve/sieve.h"
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
	CHECK_EQ(sieve_tool_compile_main(5, argv3), 1);
	unlink(path);
}

int main(void)
{
	return unit_run();
}
