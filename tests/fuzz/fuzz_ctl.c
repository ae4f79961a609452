/*
 * fuzz_ctl: libFuzzer target for the control console's command splitter
 * (ctl_split), which parses every line a console client sends. Checks that
 * the word count stays within the caller's max, that every word starts
 * inside the line and is NUL-terminated inside it, and that splitting never
 * writes past the line's terminator (ASan sees the exact-size buffer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[17];
	int max = size ? (data[0] % 16) + 1 : 16;

	if (size > 8192)
		return 0;
	char *line = malloc(size + 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	argv[max] = (char *)"canary";
	int n = ctl_split(line, argv, max);
	if (n < 0 || n > max || strcmp(argv[max], "canary") != 0)
		abort();
	for (int i = 0; i < n; i++) {
		if (argv[i] < line || argv[i] > line + size)
			abort();
		if (memchr(argv[i], '\0', (size_t)(line + size + 1 - argv[i])) == NULL)
			abort();
	}
	free(line);
	return 0;
}
