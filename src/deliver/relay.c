/*
 * relay: the SMTP client towards the next hop (relay.h).
 *
 * Blocking sockets with SO_RCVTIMEO/SO_SNDTIMEO: each connection belongs
 * to one worker thread, which has nothing else to do while it waits.
 * Timeouts are shorter than RFC 5321 4.5.3.2's (5/5/3/10 minutes) because
 * a client is waiting for our reply. A transaction is all-or-nothing: one
 * refused recipient fails the whole message (the client is told, and
 * retries or bounces it), so the next hop never holds a part of it.
 */
#include "deliver/relay.h"

#include "conf/config.h"
#include "deliver/deliver.h"
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define RELAY_CONNECT_TIMEOUT 20
#define RELAY_REPLY_TIMEOUT 60
#define RELAY_FINAL_TIMEOUT 120

/* XFORWARD attributes (Postfix's XFORWARD_README) a downstream offers */
enum {
	XF_NAME = 1, XF_ADDR = 2, XF_PROTO = 4, XF_HELO = 8, XF_SOURCE = 16, XF_IDENT = 32,
};

struct relay {
	char *host;
	char port[8];
	char *name;             /* "host:port" as configured, for messages */
	char *helo;
	pthread_mutex_t mu;
	bool down;              /* (mu) */
	uint64_t retry_ms;      /* (mu) mx_now_ms() from which a connect is tried again */
};

struct relay_conn {
	int fd;                 /* -1 when closed */
	bool has_8bitmime;
	bool has_smtputf8;
	bool pipelining;        /* RFC 2920: MAIL ... DATA go out in one write */
	unsigned xforward;      /* XF_* the EHLO reply offered; 0 = no XFORWARD */
	bool xforward_refused;  /* a refusal was logged on this connection */
	char buf[8192];         /* reply bytes read but not consumed */
	size_t len;
};

static void relay_close(struct relay_conn *rc)
{
	if (rc->fd >= 0)
		close(rc->fd);
	rc->fd = -1;
	rc->len = 0;
}

static void set_timeout(int fd, unsigned seconds)
{
	struct timeval tv = {.tv_sec = (time_t)seconds, .tv_usec = 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Is the word at p (up to a blank or the end) `kw`, case-insensitively? */
static bool word_is(const char *p, const char *kw)
{
	size_t n = strlen(kw);
	return strncasecmp(p, kw, n) == 0 && (p[n] == '\0' || p[n] == ' ');
}

/* An EHLO keyword line (without the code): note what we use. */
static void note_extension(struct relay_conn *rc, const char *kw)
{
	static const struct {
		const char *name;
		unsigned bit;
	} attrs[] = {
		{"NAME", XF_NAME}, {"ADDR", XF_ADDR}, {"PROTO", XF_PROTO},
		{"HELO", XF_HELO}, {"SOURCE", XF_SOURCE}, {"IDENT", XF_IDENT},
	};
	if (word_is(kw, "PIPELINING"))
		rc->pipelining = true;
	else if (word_is(kw, "8BITMIME"))
		rc->has_8bitmime = true;
	else if (word_is(kw, "SMTPUTF8"))
		rc->has_smtputf8 = true;
	else if (word_is(kw, "XFORWARD"))
		for (const char *p = strchr(kw, ' '); p; p = strchr(p + 1, ' '))
			for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
				if (word_is(p + 1, attrs[i].name))
					rc->xforward |= attrs[i].bit;
}

/* Read one reply (all its lines). Returns the code, or -1 on a broken
 * connection; `text` gets the last line. */
static int relay_reply(struct relay_conn *rc, unsigned timeout, char *text, size_t tlen)
{
	set_timeout(rc->fd, timeout);
	snprintf(text, tlen, "connection lost");
	for (;;) {
		char *nl = memchr(rc->buf, '\n', rc->len);
		if (nl == NULL) {
			if (rc->len == sizeof rc->buf) /* a line longer than any reply */
				return -1;
			ssize_t r = recv(rc->fd, rc->buf + rc->len, sizeof rc->buf - rc->len, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				if (r < 0)
					snprintf(text, tlen, "%s", errno == EAGAIN ? "timeout" : strerror(errno));
				return -1;
			}
			rc->len += (size_t)r;
			continue;
		}
		size_t ll = (size_t)(nl - rc->buf) + 1;
		char line[1024];
		size_t cl = ll < sizeof line ? ll : sizeof line - 1;
		memcpy(line, rc->buf, cl);
		line[cl] = '\0';
		memmove(rc->buf, rc->buf + ll, rc->len - ll);
		rc->len -= ll;
		line[strcspn(line, "\r\n")] = '\0';
		if (strlen(line) < 3 || line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9') {
			snprintf(text, tlen, "bad reply line");
			return -1;
		}
		for (char *p = line; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
				*p = '?';
		if (line[3] == '-' || line[3] == ' ')
			note_extension(rc, line + 4);
		if (line[3] == '-')
			continue;
		size_t l = strlen(line) < tlen ? strlen(line) : tlen - 1;
		memcpy(text, line, l);
		text[l] = '\0';
		return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	}
}

/* Send all of [p, p+n). `more`: another piece follows at once (MSG_MORE:
 * the kernel holds a partial segment for it), so a message and its
 * terminator leave as full segments; the last piece of a burst goes
 * without, and TCP_NODELAY (set at connect) sends it now. */
static bool relay_send_more(struct relay_conn *rc, const char *p, size_t n, bool more)
{
	while (n > 0) {
		ssize_t w = send(rc->fd, p, n, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static bool relay_send(struct relay_conn *rc, const char *p, size_t n)
{
	return relay_send_more(rc, p, n, false);
}

static int relay_cmd(struct relay_conn *rc, const char *cmd, unsigned timeout,
                     char *text, size_t tlen)
{
	set_timeout(rc->fd, timeout);
	if (!relay_send(rc, cmd, strlen(cmd))) {
		snprintf(text, tlen, "send: %s", strerror(errno));
		return -1;
	}
	return relay_reply(rc, timeout, text, tlen);
}

static int connect_timeout(const struct addrinfo *ai, unsigned seconds)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
	                ai->ai_protocol);
	if (fd < 0)
		return -1;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS) {
			close(fd);
			return -1;
		}
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		int err = 0;
		socklen_t el = sizeof err;
		int pr = poll(&pfd, 1, (int)seconds * 1000);
		if (pr <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err) {
			close(fd);
			errno = pr == 0 ? ETIMEDOUT : (err ? err : errno);
			return -1;
		}
	}
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	/* Every write ends a burst that the downstream must answer: without
	 * this, Nagle holds the final ".\r\n" behind the data until the
	 * downstream's delayed ACK (40 ms a message, measured). */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

/* Connect, greeting, EHLO (HELO if refused). */
static bool relay_open(struct relay *r, struct relay_conn *rc, char *text, size_t tlen)
{
	struct addrinfo hints, *res = NULL;
	char cmd[600];
	int code;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	int g = getaddrinfo(r->host, r->port, &hints, &res);
	if (g != 0) {
		snprintf(text, tlen, "resolve: %s", gai_strerror(g));
		return false;
	}
	rc->fd = -1;
	int e = 0;
	for (struct addrinfo *ai = res; ai && rc->fd < 0; ai = ai->ai_next) {
		rc->fd = connect_timeout(ai, RELAY_CONNECT_TIMEOUT);
		e = errno;
	}
	freeaddrinfo(res);
	if (rc->fd < 0) {
		snprintf(text, tlen, "connect: %s", strerror(e));
		return false;
	}
	rc->len = 0;
	rc->has_8bitmime = rc->has_smtputf8 = rc->pipelining = false;
	rc->xforward = 0;
	rc->xforward_refused = false;
	code = relay_reply(rc, RELAY_REPLY_TIMEOUT, text, tlen);
	if (code != 220)
		goto fail;
	snprintf(cmd, sizeof cmd, "EHLO %s\r\n", r->helo);
	code = relay_cmd(rc, cmd, RELAY_REPLY_TIMEOUT, text, tlen);
	if (code >= 500 && code < 600) {
		snprintf(cmd, sizeof cmd, "HELO %s\r\n", r->helo);
		code = relay_cmd(rc, cmd, RELAY_REPLY_TIMEOUT, text, tlen);
	}
	if (code == 250)
		return true;
fail:
	relay_close(rc);
	return false;
}

static bool has_8bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

/* Send the message dot-stuffed, ending with CRLF.CRLF. */
static bool relay_data(struct relay_conn *rc, const char *data, size_t len)
{
	size_t start = 0;
	bool bol = true;

	set_timeout(rc->fd, RELAY_REPLY_TIMEOUT);
	for (size_t i = 0; i < len; i++) {
		if (bol && data[i] == '.') {
			if (!relay_send_more(rc, data + start, i - start, true) ||
			    !relay_send_more(rc, ".", 1, true))
				return false;
			start = i;
		}
		bol = data[i] == '\n';
	}
	if (!relay_send_more(rc, data + start, len - start, true))
		return false;
	if (len > 0 && !(len >= 2 && data[len - 2] == '\r' && data[len - 1] == '\n'))
		if (!relay_send_more(rc, "\r\n", 2, true))
			return false;
	return relay_send(rc, ".\r\n", 3);
}

enum relay_outcome {
	RELAY_DONE = 1,   /* status set from a reply */
	RELAY_BROKEN,     /* the connection died: maybe retry on a fresh one */
};

/* "KEY=value" with the value as xtext (RFC 3461: '+', '=' and bytes
 * outside '!'..'~' as +XX), "[UNAVAILABLE]" for an empty value. Returns
 * the length (out is big enough: a value is at most 255 bytes). */
static size_t xtext_attr(char *out, const char *key, const char *v)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = (size_t)sprintf(out, "%s=", key);
	if (*v == '\0')
		v = "[UNAVAILABLE]";
	for (size_t i = 0; v[i] && i < 255; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < '!' || c > '~' || c == '+' || c == '=') {
			out[n++] = '+';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		} else {
			out[n++] = (char)c;
		}
	}
	out[n] = '\0';
	return n;
}

/* A transaction's commands up to DATA, back to back, each CRLF-ended. */
enum relay_step { STEP_XFORWARD, STEP_MAIL, STEP_RCPT, STEP_DATA };
struct relay_steps {
	char *buf;
	size_t len, cap;
	size_t *end;            /* where each command ends in buf */
	enum relay_step *kind;
	size_t n, ncap;
};

static void steps_add(struct relay_steps *st, enum relay_step kind, const char *cmd, size_t n)
{
	if (st->len + n + 2 > st->cap) {
		size_t cap = st->cap ? st->cap : 1024;
		while (cap < st->len + n + 2)
			cap *= 2;
		char *b = realloc(st->buf, cap);
		if (b == NULL)
			abort();
		st->buf = b;
		st->cap = cap;
	}
	if (st->n == st->ncap) {
		size_t cap = st->ncap ? st->ncap * 2 : 8;
		size_t *e = realloc(st->end, cap * sizeof *e);
		enum relay_step *k = e ? realloc(st->kind, cap * sizeof *k) : NULL;
		if (k == NULL)
			abort();
		st->end = e;
		st->kind = k;
		st->ncap = cap;
	}
	memcpy(st->buf + st->len, cmd, n);
	memcpy(st->buf + st->len + n, "\r\n", 2);
	st->len += n + 2;
	st->end[st->n] = st->len;
	st->kind[st->n++] = kind;
}

static void steps_free(struct relay_steps *st)
{
	free(st->buf);
	free(st->end);
	free(st->kind);
}

/* The XFORWARD commands that tell the downstream who the client was
 * (Postfix's XFORWARD: its logs and policies then name the real client,
 * not us): the attributes it offered, in commands of at most 512 octets. */
static void xforward_steps(const struct relay_conn *rc, const struct deliver_job *job,
                           struct relay_steps *st)
{
	char addr[64], attr[6 + 3 * 255 + 8], cmd[512 + 3 * 255 + 16];
	/* an IPv6 address as Postfix's own XFORWARD writes it: "IPV6:" first */
	snprintf(addr, sizeof addr, "%s%s", strchr(job->client_addr, ':') ? "IPV6:" : "",
	         job->client_addr);
	const struct {
		unsigned bit;
		const char *key, *value;
	} attrs[] = {
		{XF_NAME, "NAME", ""}, /* no PTR lookups here: unavailable */
		{XF_ADDR, "ADDR", job->client_addr[0] ? addr : ""},
		{XF_PROTO, "PROTO", job->client_esmtp ? "ESMTP" : "SMTP"},
		{XF_HELO, "HELO", job->client_helo},
		{XF_SOURCE, "SOURCE", "REMOTE"},
		{XF_IDENT, "IDENT", job->queue_id},
	};
	size_t len = 0;
	for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
		if (!(rc->xforward & attrs[i].bit))
			continue;
		size_t n = xtext_attr(attr, attrs[i].key, attrs[i].value);
		if (len > 0 && len + 1 + n + 2 > 512) {
			steps_add(st, STEP_XFORWARD, cmd, len);
			len = 0;
		}
		if (len == 0)
			len = (size_t)sprintf(cmd, "XFORWARD");
		cmd[len++] = ' ';
		memcpy(cmd + len, attr, n + 1);
		len += n;
	}
	if (len)
		steps_add(st, STEP_XFORWARD, cmd, len);
}

/* An XFORWARD reply: a refusal is logged once a connection. A 501 is
 * about one value (an IPv4-only Postfix refuses an IPv6 ADDR): the next
 * message tries again; any other refusal is about the command: not sent
 * again on this connection. The message goes on either way (the
 * attributes only inform). */
static void xforward_reply(struct relay *r, struct relay_conn *rc,
                           const struct deliver_job *job, int code, const char *text)
{
	if (code == 250)
		return;
	if (!rc->xforward_refused) {
		char q[600];
		log_event(LOG_WARNING, "relay_xforward",
		          "target=%s queue_id=%s reply=%s note=\"sent without it; logged once a "
		          "connection\"",
		          r->name, job->queue_id, log_quote(text, strlen(text), q, sizeof q));
		rc->xforward_refused = true;
	}
	if (code != 501)
		rc->xforward = 0;
}

/* One message over an open connection. With PIPELINING the commands up to
 * DATA leave in one write and the replies are read in order; without, each
 * waits for the previous reply and the first refusal stops the rest.
 * All-or-nothing: one refused recipient fails the message; if DATA was
 * answered 354 all the same (pipelined), the connection is closed before
 * any data, which aborts the transaction downstream. */
static enum relay_outcome relay_one(struct relay *r, struct relay_conn *rc,
                                    struct deliver_job *job)
{
	char cmd[1200], text[512], failed[512] = "";
	int code, fail = 0;
	bool mail_ok = false, data_open = false;
	bool eight = has_8bit(job->data, job->len);
	bool utf8 = has_8bit(job->mail_from, strlen(job->mail_from));
	for (size_t i = 0; i < job->nrcpts; i++)
		utf8 = utf8 || has_8bit(job->rcpts[i].local, strlen(job->rcpts[i].local)) ||
		       has_8bit(job->rcpts[i].domain, strlen(job->rcpts[i].domain));

	if (utf8 && !rc->has_smtputf8) {
		/* RFC 6531 3.4: never to a server without SMTPUTF8 (no downgrade) */
		deliver_job_status(job, DELIVER_PERMFAIL,
		                   "relay %s: non-ASCII address, the next hop does not offer SMTPUTF8",
		                   r->name);
		job->no_smtputf8 = true;
		return RELAY_DONE;
	}
	struct relay_steps st = {0};
	if (rc->xforward)
		xforward_steps(rc, job, &st);
	int n = snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>%s%s", job->mail_from,
	                 eight && rc->has_8bitmime ? " BODY=8BITMIME" : "",
	                 utf8 && rc->has_smtputf8 ? " SMTPUTF8" : "");
	steps_add(&st, STEP_MAIL, cmd, (size_t)n);
	for (size_t i = 0; i < job->nrcpts; i++) {
		n = snprintf(cmd, sizeof cmd, "RCPT TO:<%s@%s>", job->rcpts[i].local,
		             job->rcpts[i].domain);
		steps_add(&st, STEP_RCPT, cmd, (size_t)n);
	}
	steps_add(&st, STEP_DATA, "DATA", 4);

	set_timeout(rc->fd, RELAY_REPLY_TIMEOUT);
	bool pipelined = rc->pipelining;
	if (pipelined && !relay_send(rc, st.buf, st.len)) {
		steps_free(&st);
		return RELAY_BROKEN; /* nothing was taken: a fresh connection may */
	}
	for (size_t i = 0, from = 0; i < st.n; from = st.end[i++]) {
		if (!pipelined && !relay_send(rc, st.buf + from, st.end[i] - from)) {
			snprintf(text, sizeof text, "send: %s", strerror(errno));
			code = -1;
		} else {
			code = relay_reply(rc, RELAY_REPLY_TIMEOUT, text, sizeof text);
		}
		if (code < 0 && fail) {
			/* refused, then gone (a 421, or a close after a 5xx): the
			 * refusal is the answer */
			steps_free(&st);
			deliver_job_status(job, fail >= 500 ? DELIVER_PERMFAIL : DELIVER_TEMPFAIL, "relay %s: %s",
			           r->name, failed);
			relay_close(rc);
			return RELAY_DONE;
		}
		if (code < 0) {
			steps_free(&st);
			if (!mail_ok)
				return RELAY_BROKEN;
			goto lost;
		}
		bool ok = true;
		switch (st.kind[i]) {
		case STEP_XFORWARD:
			xforward_reply(r, rc, job, code, text);
			break;
		case STEP_MAIL:
			ok = mail_ok = code == 250;
			break;
		case STEP_RCPT:
			ok = code == 250 || code == 251;
			break;
		case STEP_DATA:
			ok = data_open = code == 354;
			break;
		}
		if (!ok && !fail) {
			fail = code;
			snprintf(failed, sizeof failed, "%s", text);
		}
		if (fail && !pipelined)
			break;
	}
	steps_free(&st);
	if (fail) {
		deliver_job_status(job, fail >= 500 ? DELIVER_PERMFAIL : DELIVER_TEMPFAIL, "relay %s: %s",
		           r->name, failed);
		if (data_open)
			relay_close(rc); /* never send the data: closing aborts it */
		else if (relay_cmd(rc, "RSET\r\n", RELAY_REPLY_TIMEOUT, text, sizeof text) != 250)
			relay_close(rc);
		return RELAY_DONE;
	}
	if (!relay_data(rc, job->data, job->len)) {
		snprintf(text, sizeof text, "send: %s", strerror(errno));
		goto lost;
	}
	code = relay_reply(rc, RELAY_FINAL_TIMEOUT, text, sizeof text);
	if (code < 0)
		goto lost;
	if (code != 250)
		goto refused;
	deliver_job_status(job, DELIVER_OK, "relay %s: %s", r->name, text);
	return RELAY_DONE;
refused:
	deliver_job_status(job, code >= 500 ? DELIVER_PERMFAIL : DELIVER_TEMPFAIL, "relay %s: %s",
	           r->name, text);
	if (relay_cmd(rc, "RSET\r\n", RELAY_REPLY_TIMEOUT, text, sizeof text) != 250)
		relay_close(rc);
	return RELAY_DONE;
lost:
	/* after MAIL was accepted the transaction may have half-happened: no
	 * retry, the client retries the whole message later */
	deliver_job_status(job, DELIVER_TEMPFAIL, "relay %s: %s", r->name, text);
	relay_close(rc);
	return RELAY_DONE;
}

/* An idle connection with something to read (a 421 before an idle close,
 * or EOF) is stale: the downstream is leaving, do not start a transaction. */
static bool relay_stale(struct relay_conn *rc)
{
	struct pollfd pfd = {.fd = rc->fd, .events = POLLIN};
	return rc->len > 0 || poll(&pfd, 1, 0) != 0;
}

static void relay_quit(struct relay_conn *rc)
{
	char text[128];
	if (rc->fd >= 0 && !relay_stale(rc))
		relay_cmd(rc, "QUIT\r\n", 5, text, sizeof text);
	relay_close(rc);
}

/* The first message after the hold tries a connection. */
bool relay_is_down(struct relay *r)
{
	pthread_mutex_lock(&r->mu);
	bool held = r->down && mx_now_ms() < r->retry_ms;
	pthread_mutex_unlock(&r->mu);
	return held;
}

/* A connect that failed (why) or worked: the down state, logged when it
 * changes. */
static void relay_note_connect(struct relay *r, bool ok, const char *why)
{
	pthread_mutex_lock(&r->mu);
	bool was = r->down;
	r->down = !ok;
	r->retry_ms = ok ? 0 : mx_now_ms() + RELAY_DOWN_HOLD_MS;
	pthread_mutex_unlock(&r->mu);
	if (ok && was) {
		log_event(LOG_NOTICE, "relay_up", "target=%s", r->name);
	} else if (!ok && !was) {
		char q[600];
		log_event(LOG_WARNING, "relay_down", "target=%s error=%s hold_s=%d", r->name,
		          log_quote(why, strlen(why), q, sizeof q), RELAY_DOWN_HOLD_MS / 1000);
	}
}

void relay_deliver(struct relay *r, struct relay_conn *rc, struct deliver_job *j)
{
	char text[512];

	j->detail[0] = '\0';
	if (rc->fd >= 0 && relay_stale(rc))
		relay_close(rc);
	for (int attempt = 0; attempt < 2; attempt++) {
		bool fresh = false;
		if (rc->fd < 0) {
			if (relay_is_down(r)) {
				deliver_job_status(j, DELIVER_TEMPFAIL,
				                   "relay %s: down, not tried for a few seconds", r->name);
				return;
			}
			bool ok = relay_open(r, rc, text, sizeof text);
			relay_note_connect(r, ok, text);
			if (!ok) {
				deliver_job_status(j, DELIVER_TEMPFAIL, "relay %s: %s", r->name, text);
				return;
			}
			fresh = true;
		}
		if (relay_one(r, rc, j) == RELAY_DONE)
			return;
		/* a reused connection the downstream had closed: once more */
		relay_close(rc);
		deliver_job_status(j, DELIVER_TEMPFAIL, "relay %s: connection lost", r->name);
		if (fresh)
			return;
	}
}

struct relay *relay_new(const char *target, const char *helo)
{
	char host[256];
	uint16_t port = 25;
	if (target == NULL || !mx_hostport_split(target, host, sizeof host, &port, false))
		return NULL;
	struct relay *r = calloc(1, sizeof *r);
	if (r == NULL || (r->host = strdup(host)) == NULL || (r->name = strdup(target)) == NULL ||
	    (r->helo = strdup(helo)) == NULL)
		abort();
	snprintf(r->port, sizeof r->port, "%u", port ? port : 25u);
	pthread_mutex_init(&r->mu, NULL);
	return r;
}

void relay_free(struct relay *r)
{
	if (r == NULL)
		return;
	pthread_mutex_destroy(&r->mu);
	free(r->host);
	free(r->name);
	free(r->helo);
	free(r);
}

struct relay_conn *relay_conn_new(void)
{
	struct relay_conn *rc = calloc(1, sizeof *rc);
	if (rc == NULL)
		abort();
	rc->fd = -1;
	return rc;
}

void relay_conn_free(struct relay_conn *rc)
{
	if (rc == NULL)
		return;
	relay_quit(rc);
	free(rc);
}
