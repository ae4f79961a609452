/*
 * log: one key=value line per event, to stderr or syslog.
 *
 *   log_event(LOG_INFO, "connect", "client=%s port=%u listener=%s", ...);
 * writes
 *   2026-11-24T10:00:00.123Z mxsieve[123]: event=connect client=... port=...
 *
 * Values that may hold spaces or client-supplied bytes go through
 * log_quote(), which wraps them in double quotes and escapes anything that is
 * not printable ASCII, so one event is always one line and a client cannot
 * forge a log line.
 */
#ifndef MX_UTIL_LOG_H
#define MX_UTIL_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

/* Where lines go: stderr (default) or syslog(3) with facility mail. */
void log_open(bool use_syslog, const char *ident);

/* Lines below this level (LOG_DEBUG is the most verbose) are dropped. */
void log_set_level(int level);

/* True when a line at `level` would be written: lets a caller skip the work
 * of preparing arguments (addresses, quoting) for a line that is dropped. */
bool log_enabled(int level);

/* One event line. `fmt` holds the remaining key=value pairs. */
void log_event(int level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Quote an untrusted value for a log line into buf; returns buf. */
const char *log_quote(const char *value, size_t len, char *buf, size_t buflen);

#endif
