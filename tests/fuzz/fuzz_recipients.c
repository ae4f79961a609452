/*
 * fuzz_recipients: libFuzzer target for the Valid_Recipients file
 * (src/conf/recipients.c): the input is the file. Domains "example.test"
 * and "other.test" are ours, aliases allowed. A file that loads must answer
 * lookups consistently: every address it lists is found by its own key
 * (lower case), its targets are "a@d,..." of our domains, and a lookup of
 * arbitrary text never reads out of bounds. The file lives on /dev/shm.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf_parse.h"
#include "conf/recipients.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

static bool ours(const char *domain, void *arg)
{
	(void)arg;
	return strcmp(domain, "example.test") == 0 || strcmp(domain, "other.test") == 0;
}

static void check_targets(const char *t)
{
	if (t == NULL)
		return;
	/* "a@d,b@d": non-empty items, each with an '@' and one of our domains */
	char *copy = strdup(t);
	for (char *item = strtok(copy, ","); item; item = strtok(NULL, ",")) {
		char *at = strrchr(item, '@');
		if (at == NULL || at == item || !ours(at + 1, NULL))
			abort();
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (path[0] == '\0')
		snprintf(path, sizeof path, "/dev/shm/fuzz_recipients.%ld", (long)getpid());
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	struct conf_errors errs = {NULL, 0, 0, 0};
	struct mx_recipients_opts o = {ours, NULL, true};
	struct mx_recipients *r = mx_recipients_load(path, "fuzz.conf", 1, &o, &errs);
	free(errs.buf);
	if (r == NULL)
		return 0;
	/* every line that looks like "local@domain" (first token) is found */
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *tok = line + strspn(line, " \t");
		if (*tok == '#' || *tok == '"')
			continue;
		tok[strcspn(tok, " \t\r")] = '\0';
		char *at = strrchr(tok, '@');
		if (at == NULL || at == tok)
			continue;
		*at = '\0';
		const char *t = NULL;
		if (!mx_recipients_lookup(r, tok, at + 1, &t))
			abort(); /* it loaded, so this line was an entry */
		check_targets(t);
	}
	/* and arbitrary text is looked up safely */
	const char *t;
	char local[300];
	size_t n = size < sizeof local - 1 ? size : sizeof local - 1;
	memcpy(local, data, n);
	local[n] = '\0';
	mx_recipients_lookup(r, local, "example.test", &t);
	mx_recipients_lookup(r, "x", local, &t);
	free(text);
	mx_recipients_free(r);
	return 0;
}
