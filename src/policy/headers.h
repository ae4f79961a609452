/*
 * headers: the header section of a message as the policy sees it, for the
 * `header`, `address` and `exists` tests: the server (smtp_policy) and
 * `mxsieve try --message` index a message the same way, so a rehearsal
 * answers what the server would.
 *
 * Rules: fields up to the first empty line; continuation lines (starting
 * with SP or HTAB) unfolded into the field before; "Name : value" is the
 * field Name (RFC 5322 4.5.3 allows blanks before the colon); blanks
 * before and after a value are not part of it (RFC 5228 5.7); a line with
 * no colon is skipped; at most POLICY_MAX_HEADERS fields; a value is cut
 * at POLICY_HEADER_VALUE_MAX bytes. Linear in the header section (a value
 * grows by doubling), whatever its folding.
 */
#ifndef MX_POLICY_HEADERS_H
#define MX_POLICY_HEADERS_H

#include <stddef.h>

#define POLICY_MAX_HEADERS 512
#define POLICY_HEADER_VALUE_MAX (64u << 10)

struct policy_header {
	char *name;
	char *value; /* unfolded */
};

struct policy_headers {
	struct policy_header *h; /* NULL until the first field */
	size_t n;
};

/* Index the header section of data[0, len) into hs (empty on entry). Out of
 * memory drops fields, never fails. */
void policy_headers_parse(struct policy_headers *hs, const char *data, size_t len);

/* The i-th value (0-based) of the field `name` (case-insensitive), or NULL. */
const char *policy_headers_get(const struct policy_headers *hs, const char *name, size_t i);

void policy_headers_free(struct policy_headers *hs);

#endif
