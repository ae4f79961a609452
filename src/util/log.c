/*
 * log: key=value event lines. See log.h.
 *
 * Cost per line on the hot path: no getpid() (cached per thread: the process
 * never forks after start), the date formatted once per second per thread
 * (only the milliseconds are formatted per line), one vsnprintf for the
 * caller's pairs (the prefix is copied, not formatted), and the whole line
 * leaves in one write() to fd 2.
 */
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static bool log_syslog;
static int log_level = LOG_INFO;
static const char *log_ident = "mxsieve";

void log_open(bool use_syslog, const char *ident)
{
	log_syslog = use_syslog;
	if (ident)
		log_ident = ident;
	if (use_syslog)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_level(int level)
{
	log_level = level;
}

bool log_enabled(int level)
{
	return level <= log_level;
}

void log_event(int level, const char *event, const char *fmt, ...)
{
	/* date, ident, pid and event name, then the caller's pairs: 2048 as before */
	char line[2048 + 192];
	size_t n = 0, el;
	int m;
	va_list ap;

	if (level > log_level)
		return;
	if (log_syslog) {
		m = snprintf(line, 2048, "event=%s ", event);
		if (m < 0 || m >= 2048)
			return;
		va_start(ap, fmt);
		vsnprintf(line + m, 2048 - (size_t)m, fmt, ap);
		va_end(ap);
		syslog(level, "%s", line);
		return;
	}
	/* Per thread, so no lock: the date of the second last formatted and
	 * "Z ident[pid]: event=", so a line costs one vsnprintf and one write. */
	static _Thread_local time_t ts_sec = (time_t)-1;
	static _Thread_local char ts[32], tail[96];
	static _Thread_local size_t ts_len, tail_len;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	if (tv.tv_sec != ts_sec) {
		struct tm tm;
		gmtime_r(&tv.tv_sec, &tm);
		ts_len = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S.", &tm);
		ts_sec = tv.tv_sec;
	}
	if (tail_len == 0) {
		int t = snprintf(tail, sizeof tail, "Z %s[%ld]: event=", log_ident, (long)getpid());
		tail_len = t > 0 && (size_t)t < sizeof tail ? (size_t)t : 0;
	}
	unsigned ms = (unsigned)(tv.tv_usec / 1000);
	memcpy(line, ts, ts_len);
	n = ts_len;
	line[n++] = (char)('0' + ms / 100);
	line[n++] = (char)('0' + ms / 10 % 10);
	line[n++] = (char)('0' + ms % 10);
	memcpy(line + n, tail, tail_len);
	n += tail_len;
	el = strnlen(event, 64);
	memcpy(line + n, event, el);
	n += el;
	line[n++] = ' ';
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m < sizeof line - n - 1 ? (size_t)m : sizeof line - n - 2;
	line[n++] = '\n';
	/* one write per line (stderr is unbuffered: nothing of ours waits in stdio) */
	for (size_t off = 0; off < n;) {
		ssize_t w = write(STDERR_FILENO, line + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

const char *log_quote(const char *value, size_t len, char *buf, size_t buflen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (buflen < 3) {
		if (buflen)
			buf[0] = '\0';
		return buf;
	}
	buf[o++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];
		if (o + 6 >= buflen)
			break;
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}
