/*
 * fuzz_sieve: the compiler and the interpreter on arbitrary script text.
 *
 * The first byte picks the phase; the rest is the script. A script that
 * compiles is run against a fixture (client, envelope, headers, audit
 * answers), with every DNS question answered by "no such name" after a real
 * suspension, so the VM's suspend/resume path is fuzzed too. Any crash,
 * sanitizer report or leak is a bug; keep its input under
 * tests/corpus/sieve/ as a regression.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "sieve/sieve_tool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const phases[] = {"connect", "ehlo", "mailfrom", "rcptto", "data"};
	if (size < 1)
		return 0;
	struct sieve_fixture *fx = sieve_fixture_new();
	if (!fx)
		return 0;
	char err[200];
	sieve_fixture_set(fx, "phase", phases[data[0] % 5], err, sizeof(err));
	sieve_fixture_set(fx, "client", "192.0.2.10", err, sizeof(err));
	sieve_fixture_set(fx, "helo", "mx.example", err, sizeof(err));
	sieve_fixture_set(fx, "from", "a@example.com", err, sizeof(err));
	sieve_fixture_set(fx, "to", "b@example.org", err, sizeof(err));
	sieve_fixture_set(fx, "header", "Subject: hello", err, sizeof(err));
	sieve_fixture_set(fx, "header", "From: A <a@example.com>, b@x", err, sizeof(err));
	sieve_fixture_set(fx, "audit", "/32=1001", err, sizeof(err));
	sieve_fixture_set(fx, "audit", "/24=10001", err, sizeof(err));
	sieve_fixture_set(fx, "audit", "=1", err, sizeof(err));
	char *out = sieve_fixture_eval(fx, "fuzz.sieve", (const char *)data + 1, size - 1, NULL);
	free(out);
	sieve_fixture_free(fx);
	return 0;
}
