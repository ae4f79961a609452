/*
 * log: key=value event lines. See log.h.
 *
 * Cost per line on the hot path: no getpid() (cached per thread: the process
 * never forks after start), the date formatted once per second per thread
 * (only the milliseconds are formatted per line), and the whole line leaves
 * in one write() (stderr is unbuffered; one fprintf is one write).
 */
#include "util/log.h"

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

void log_event(int level, const char *event, const char *fmt, ...)
{
	char line[2048];
	int n;
	va_list ap;

	if (level > log_level)
		return;
	n = snprintf(line, sizeof line, "event=%s ", event);
	if (n < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);

	if (log_syslog) {
		syslog(level, "%s", line);
		return;
	}
	/* per thread, so no lock: the date of the second last formatted */
	static _Thread_local time_t ts_sec = (time_t)-1;
	static _Thread_local char ts[32];
	static _Thread_local long pid;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	if (tv.tv_sec != ts_sec) {
		struct tm tm;
		gmtime_r(&tv.tv_sec, &tm);
		strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
		ts_sec = tv.tv_sec;
	}
	if (pid == 0)
		pid = (long)getpid();
	fprintf(stderr, "%s.%03ldZ %s[%ld]: %s\n", ts, (long)tv.tv_usec / 1000,
	        log_ident, pid, line);
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

void log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "mxsieve: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}
