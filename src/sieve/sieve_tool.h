/*
 * sieve_tool: fixtures for running a script outside the server.
 *
 * A fixture is the context a session would provide (client, envelope,
 * headers, audit answers, vctx, DNS answers), written as "key: value" lines.
 * The conformance suite (tests/sieve/), `mxsieve --sieve-eval` and the
 * differential test against Pigeonhole all use it, so one format describes
 * every test. Keys are listed in docs/POLICY.md ("Testing scripts").
 */
#ifndef MX_SIEVE_SIEVE_TOOL_H
#define MX_SIEVE_SIEVE_TOOL_H

#include <stddef.h>

#include "sieve/sieve.h"

struct sieve_fixture;

struct sieve_fixture *sieve_fixture_new(void);
void sieve_fixture_free(struct sieve_fixture *fx);

/* Apply one "key: value" setting; false with a message in err if unknown. */
bool sieve_fixture_set(struct sieve_fixture *fx, const char *key, const char *value,
                       char *err, size_t errlen);

/* The phase the fixture names (default data). */
enum mx_phase sieve_fixture_phase(const struct sieve_fixture *fx);

/* The environment over a fixture, to pass to sieve_run_new with fx as ud. */
const struct sieve_env *sieve_fixture_env(void);

/* Compile and run `src` with the fixture; appends the outcome to a malloc'd
 * text, one "key=value" line each (status, action, code, enhanced, text,
 * tarpit, counter, log, error, dns), or "compile-error=..." lines. DNS
 * lookups are answered from the fixture after a real suspension. */
char *sieve_fixture_eval(struct sieve_fixture *fx, const char *path, const char *src,
                         size_t len, const struct sieve_limits *limits);

#endif
