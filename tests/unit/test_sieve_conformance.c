/*
 * The conformance suite runner: every tests/sieve/.../NAME.sieve file is a
 * script with its fixture and expected outcome in leading comment lines:
 *
 *   # phase: connect                 fixture (keys: see sieve_tool.h)
 *   # audit: /32=1001
 *   # expect: tarpit=10              a line the outcome must contain
 *   # expect-not: action=reply       a line it must not contain
 *   # expect-compile: 3:1: unknown   a compile error must contain this
 *
 * The suite is found through MXSIEVE_SRC (the repository root), or from
 * this binary's location (BUILD/tests/ -> the repository root).
 */
#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sieve/sieve_tool.h"
#include "unit.h"

static int files_run;

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf) {
		buf[n] = '\0';
		*len = (size_t)n;
	}
	return buf;
}

static bool has_line(const char *out, const char *line)
{
	size_t ll = strlen(line);
	for (const char *p = out; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == ll && memcmp(p, line, n) == 0)
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

static void run_file(const char *path, const char *rel)
{
	size_t len;
	char *src = slurp(path, &len);
	if (!src) {
		fprintf(stderr, "%s: cannot read\n", path);
		unit_failed++;
		return;
	}
	struct sieve_fixture *fx = sieve_fixture_new();
	char *expects[64], *nots[64], *compiles[64];
	size_t ne = 0, nn = 0, nc = 0;
	bool ok = true;
	/* the fixture: every "# key: value" comment line anywhere */
	for (char *p = src; p && *p;) {
		char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n > 2 && p[0] == '#' && p[1] == ' ') {
			char *line = strndup(p + 2, n - 2);
			char *colon = strstr(line, ": ");
			if (colon) {
				*colon = '\0';
				const char *v = colon + 2;
				if (strcmp(line, "expect") == 0 && ne < 64)
					expects[ne++] = strdup(v);
				else if (strcmp(line, "expect-not") == 0 && nn < 64)
					nots[nn++] = strdup(v);
				else if (strcmp(line, "expect-compile") == 0 && nc < 64)
					compiles[nc++] = strdup(v);
				else if (strchr(line, ' ') == NULL) {
					char err[200];
					if (!sieve_fixture_set(fx, line, v, err, sizeof(err))) {
						fprintf(stderr, "%s: %s\n", rel, err);
						ok = false;
					}
				}
			}
			free(line);
		}
		p = e ? e + 1 : NULL;
	}
	char *out = sieve_fixture_eval(fx, rel, src, len, NULL);
	if (ne + nn + nc == 0) {
		fprintf(stderr, "%s: no expectation\n", rel);
		ok = false;
	}
	for (size_t i = 0; i < ne; i++)
		if (!has_line(out, expects[i])) {
			fprintf(stderr, "%s: missing \"%s\"\n", rel, expects[i]);
			ok = false;
		}
	for (size_t i = 0; i < nn; i++)
		if (has_line(out, nots[i])) {
			fprintf(stderr, "%s: unexpected \"%s\"\n", rel, nots[i]);
			ok = false;
		}
	for (size_t i = 0; i < nc; i++)
		if (!out || !strstr(out, compiles[i])) {
			fprintf(stderr, "%s: no compile error containing \"%s\"\n", rel, compiles[i]);
			ok = false;
		}
	if (nc == 0 && out && strstr(out, "compile-error=")) {
		fprintf(stderr, "%s: unexpected compile error\n", rel);
		ok = false;
	}
	if (!ok)
		fprintf(stderr, "--- %s outcome:\n%s---\n", rel, out ? out : "(null)");
	CHECK(ok);
	files_run++;
	for (size_t i = 0; i < ne; i++)
		free(expects[i]);
	for (size_t i = 0; i < nn; i++)
		free(nots[i]);
	for (size_t i = 0; i < nc; i++)
		free(compiles[i]);
	free(out);
	free(src);
	sieve_fixture_free(fx);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void walk(const char *dir, const char *rel)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	char *names[1024];
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < 1024)
		if (de->d_name[0] != '.')
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_names);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX], r[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		snprintf(r, sizeof(r), "%s/%s", rel, names[i]);
		struct stat st;
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			walk(path, r);
		else if (strlen(names[i]) > 6 && strcmp(names[i] + strlen(names[i]) - 6, ".sieve") == 0)
			run_file(path, r);
		free(names[i]);
	}
}

static bool find_suite(char *out, size_t len)
{
	const char *env = getenv("MXSIEVE_SRC");
	struct stat st;
	if (env) {
		snprintf(out, len, "%s/tests/sieve", env);
		if (stat(out, &st) == 0)
			return true;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		/* BUILD/tests/test_x -> BUILD/.. */
		char *root = dirname(dirname(dirname(exe)));
		snprintf(out, len, "%s/tests/sieve", root);
		if (stat(out, &st) == 0)
			return true;
	}
	snprintf(out, len, "tests/sieve");
	return stat(out, &st) == 0;
}

UNIT_TEST(conformance_suite)
{
	char dir[PATH_MAX];
	bool found = find_suite(dir, sizeof(dir));
	CHECK(found);
	if (!found)
		return;
	walk(dir, "tests/sieve");
	printf("%d conformance files\n", files_run);
	CHECK(files_run >= 50);
}

int main(void)
{
	return unit_run();
}
