/*
 * fuzz_proxy: libFuzzer target for the PROXY v1/v2 parser. Checks the
 * invariant that consumed never exceeds the input.
 */
#include <stdlib.h>

#include "net/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_info pi;
	enum proxy_result r = proxy_parse(data, size, &pi);
	if ((r == PROXY_OK || r == PROXY_LOCAL) && (pi.consumed == 0 || pi.consumed > size))
		abort();
	return 0;
}
