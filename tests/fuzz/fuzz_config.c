/*
 * fuzz_config: libFuzzer target for the ecelerity.conf parser and the typed
 * config walk. Any bytes must give either a config or error text, never a
 * crash or a leak; an error text must end with a newline (one line each).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *errs = NULL;
	struct mx_config *cfg = mx_config_load_text("/fuzz/fuzz.conf", (const char *)data,
	                                            size, &errs);
	if (cfg == NULL) {
		if (errs == NULL || errs[0] == '\0' || errs[strlen(errs) - 1] != '\n')
			abort();
	} else if (errs != NULL) {
		abort();
	}
	mx_config_free(cfg);
	free(errs);
	return 0;
}
