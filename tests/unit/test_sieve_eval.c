/*
 * test_sieve_eval: a unit test when run without arguments, and the driver
 * of the differential test (tests/test_sieve_pigeonhole.py) with them:
 *
 *   test_sieve_eval --sieve-eval FILE --phase data --header "Subject: x" ...
 *
 * prints the outcome lines of sieve_fixture_eval (see sieve_tool.h). It lives
 * here so that the ordinary build makes it, with no extra target.
 */
#include <stdlib.h>
#include <string.h>

#include "sieve/sieve.h"
#include "sieve/sieve_tool.h"
#include "unit.h"

UNIT_TEST(fixture_eval_reports_outcome)
{
	struct sieve_fixture *fx = sieve_fixture_new();
	char err[100];
	CHECK(sieve_fixture_set(fx, "header", "X-Spam: 12", err, sizeof(err)));
	CHECK(!sieve_fixture_set(fx, "nosuch", "1", err, sizeof(err)));
	const char *src = "if header :value \"gt\" :comparator \"i;ascii-numeric\" \"x-spam\" \"10\" "
	                  "{ discard; }\nkeep;\n";
	char *out = sieve_fixture_eval(fx, "e.sieve", src, strlen(src), NULL);
	CHECK(out && strstr(out, "action=discard\n"));
	free(out);
	sieve_fixture_free(fx);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return sieve_tool_eval_main(argc, argv);
	return unit_run();
}
