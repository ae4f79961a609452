/*
 * localpart: the local part of a mail address (RFC 5321 §4.1.2, with the
 * UTF-8 of RFC 6531 §3.3) and its canonical form.
 *
 * One implementation for every layer that compares local parts: the SMTP
 * parser canonicalises what a client sends in RCPT TO, and the
 * Valid_Recipients file (conf/recipients) canonicalises its entries with
 * the same function, so `"bob"` and `bob`, or `"john\ doe"` and
 * `"john doe"`, are one mailbox on both sides.
 */
#ifndef MX_UTIL_LOCALPART_H
#define MX_UTIL_LOCALPART_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the Dot-string at the start of [s, s+len) (atoms of atext,
 * UTF-8 octets included, joined by single dots), or 0 when there is none
 * (an empty atom, a leading or trailing dot). Reads no byte past s+len. */
size_t mx_local_dot_string(const char *s, size_t len);

/* The canonical form of a local part: a quoted string whose content is a
 * valid Dot-string loses its quotes ("bob" -> bob, "b\ob" -> bob); any
 * other quoted string keeps them, with only '"' and '\\' escaped ("john\
 * doe" -> "john doe"). A Dot-string is copied as is. False when out is too
 * small, or a quoted content longer than MX_LOCAL_CONTENT_MAX. */
#define MX_LOCAL_CONTENT_MAX 512
bool mx_local_canonical(const char *local, char *out, size_t outlen);

#endif
