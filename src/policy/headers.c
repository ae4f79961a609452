/* headers: the policy's view of a message's header section (headers.h). */
#include "policy/headers.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void policy_headers_parse(struct policy_headers *hs, const char *data, size_t len)
{
	const char *p = data, *end = data + len;
	size_t vlen = 0, vcap = 0; /* of the last field's value */

	while (p < end && hs->n < POLICY_MAX_HEADERS) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = eol ? eol : end;
		size_t n = (size_t)(line_end - p);
		if (n && p[n - 1] == '\r')
			n--;
		if (n == 0)
			break; /* end of the header section */
		if ((*p == ' ' || *p == '\t') && hs->n) {
			struct policy_header *h = &hs->h[hs->n - 1];
			if (vlen + n > POLICY_HEADER_VALUE_MAX)
				n = POLICY_HEADER_VALUE_MAX - vlen;
			if (vlen + n + 1 > vcap) {
				size_t cap = 2 * vcap > vlen + n + 1 ? 2 * vcap : vlen + n + 1;
				char *v = realloc(h->value, cap);
				if (v) {
					h->value = v;
					vcap = cap;
				} else {
					n = 0;
				}
			}
			memcpy(h->value + vlen, p, n);
			vlen += n;
			h->value[vlen] = '\0';
		} else {
			const char *colon = memchr(p, ':', n);
			if (colon) {
				if (!hs->h && !(hs->h = calloc(POLICY_MAX_HEADERS, sizeof *hs->h)))
					return;
				const char *v = colon + 1;
				while (v < p + n && (*v == ' ' || *v == '\t'))
					v++;
				const char *ne = colon; /* "Subject : x" is Subject */
				while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
					ne--;
				struct policy_header *h = &hs->h[hs->n];
				h->name = strndup(p, (size_t)(ne - p));
				vlen = (size_t)(p + n - v);
				if (vlen > POLICY_HEADER_VALUE_MAX)
					vlen = POLICY_HEADER_VALUE_MAX;
				h->value = strndup(v, vlen);
				vcap = vlen + 1;
				if (h->name && h->value) {
					hs->n++;
				} else {
					free(h->name);
					free(h->value);
					h->name = h->value = NULL;
				}
			}
		}
		if (!eol)
			break;
		p = eol + 1;
	}
	/* RFC 5228 5.7: a header test ignores leading and trailing whitespace
	 * of the value (leading: also when the value starts on a continuation
	 * line, "Subject:" CRLF " spam") */
	for (size_t i = 0; i < hs->n; i++) {
		char *v = hs->h[i].value;
		size_t n = strlen(v), lead = 0;
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		while (lead < n && (v[lead] == ' ' || v[lead] == '\t'))
			lead++;
		memmove(v, v + lead, n - lead);
		v[n - lead] = '\0';
	}
}

const char *policy_headers_get(const struct policy_headers *hs, const char *name, size_t i)
{
	for (size_t k = 0; k < hs->n; k++)
		if (strcasecmp(hs->h[k].name, name) == 0 && i-- == 0)
			return hs->h[k].value;
	return NULL;
}

void policy_headers_free(struct policy_headers *hs)
{
	for (size_t i = 0; i < hs->n; i++) {
		free(hs->h[i].name);
		free(hs->h[i].value);
	}
	free(hs->h);
	hs->h = NULL;
	hs->n = 0;
}
