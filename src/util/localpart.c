/*
 * localpart: Dot-string and canonical local parts. See localpart.h.
 */
#include "util/localpart.h"

#include <string.h>

/* RFC 5322 atext, extended with UTF-8 octets by RFC 6531. */
static bool is_atext(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c >= 0x80 || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

size_t mx_local_dot_string(const char *s, size_t len)
{
	size_t i = 0;

	for (; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (i == 0 || s[i - 1] == '.')
				return 0;
		} else if (!is_atext(c)) {
			break;
		}
	}
	if (i == 0 || s[i - 1] == '.')
		return 0;
	return i;
}

bool mx_local_canonical(const char *local, char *out, size_t outlen)
{
	size_t n = strlen(local), o = 0;
	char content[MX_LOCAL_CONTENT_MAX + 1];
	size_t cl = 0;

	if (n < 2 || local[0] != '"') {
		if (n + 1 > outlen)
			return false;
		memcpy(out, local, n + 1);
		return true;
	}
	for (size_t i = 1; i + 1 < n; i++) {
		if (cl == MX_LOCAL_CONTENT_MAX)
			return false;
		if (local[i] == '\\' && i + 2 < n)
			i++;
		content[cl++] = local[i];
	}
	content[cl] = '\0';
	if (cl > 0 && mx_local_dot_string(content, cl) == cl) { /* a plain Dot-string */
		if (cl + 1 > outlen)
			return false;
		memcpy(out, content, cl + 1);
		return true;
	}
	if (o + 1 >= outlen)
		return false;
	out[o++] = '"';
	for (size_t i = 0; i < cl; i++) {
		if (o + 3 >= outlen)
			return false;
		if (content[i] == '"' || content[i] == '\\')
			out[o++] = '\\';
		out[o++] = content[i];
	}
	out[o++] = '"';
	out[o] = '\0';
	return true;
}
