/*
 * smtp_session: the SMTP state machine. See smtp_session.h.
 *
 * Event flow: libevent calls on_sock_read/on_sock_write (a plain socket),
 * on_read/on_write/on_event (a bufferevent: TLS after STARTTLS, a pair in the
 * unit tests) and on_timer; each turns into a step of session_process(), the
 * one loop that consumes input: PROXY header, command lines, DATA lines,
 * BDAT chunks. The loop stops when input runs out, when a phase waits
 * (policy run, tarpit timer, delivery), or when the session closes. A
 * waiting phase resumes the loop when it completes, so replies always leave
 * in command order (RFC 2920).
 *
 * I/O cost (see "transport"): on a plain socket a readable event is one
 * recv() into a buffer shared by all sessions, parsed in place; the replies
 * of a step leave in one send(); EV_WRITE is enabled only while the socket
 * refuses output. A lockstep transaction costs one recv() per command, one
 * send() per reply, no epoll_ctl and no allocation for its I/O.
 *
 * Invariants:
 * - The session is freed only in session_free(), only from on_timer
 *   (TIMER_FREE), never inside another of its callbacks: code after
 *   session_close() may still touch s safely.
 * - audit_live_add succeeded <=> s->in_audit; session_free() removes it once.
 * - s->tx != NULL exactly between an accepted MAIL and the end of that
 *   transaction (reply at end of data, RSET, HELO, STARTTLS).
 * - While s->tx->job is set the job belongs to deliver; if the session
 *   dies first it is abandoned (still written, never half).
 *
 * Choices (documented in man/mxsieve.8):
 * - Text lines in DATA longer than 998 octets are accepted.
 * - Bare LF / bare CR in DATA: refused at end of data with 550 5.6.0 under
 *   Bare_LF = reject, rewritten to CRLF under normalize; in both modes only
 *   CRLF "." CRLF ends the data. BDAT chunks are stored as sent (no end
 *   marker exists to smuggle).
 * - Max_Receptions_Per_Connection: the MAIL after the Nth accepted message
 *   gets 421 4.7.0 and the connection closes.
 * - Early_Talker_Reject: 554 5.5.0 instead of the banner, then close.
 * - Connect-phase verdicts of 4xx/5xx close the connection after the reply.
 */
#include "smtp/smtp_session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "audit/audit.h"
#include "conf/config.h"
#include "conf/recipients.h"
#include "deliver/deliver.h"
#include "net/listener.h"
#include "net/proxy.h"
#include "policy/policy.h"
#include "smtp/smtp_parse.h"
#include "smtp/smtp_policy.h"
#include "smtp/smtp_server.h"
#include "util/clock.h"
#include "util/localpart.h"
#include "util/log.h"

#define SMTP_READ_HIGH (64 * 1024) /* input buffered while a phase waits */
#define SMTP_READ_CHUNK (16 * 1024) /* one read() on a plain socket */
#define SMTP_STAGE_MAX (16 * 1024) /* replies of one processing step, shared */
#define SMTP_DATA_CHUNK 8192       /* partial DATA line handled at once */
#define SMTP_WRITE_HIGH (32 * 1024) /* replies queued before parsing pauses */
#define SMTP_LINGER_TICKS 200      /* x 50 ms to flush the last reply */
#define SMTP_RCPT_GROW 4

static const char cap_reply[] = "421 4.4.5 Service unavailable, concurrency limit reached.\r\n";

enum smtp_state {
	SMTP_STATE_PROXY = 1, /* waiting for the PROXY header */
	SMTP_STATE_CONNECT,   /* connect policy running; banner not sent */
	SMTP_STATE_HELO,      /* banner sent; HELO/EHLO expected */
	SMTP_STATE_READY,     /* HELO done; commands */
	SMTP_STATE_TLS,       /* STARTTLS handshake */
	SMTP_STATE_DATA,      /* reading a DATA body */
	SMTP_STATE_BDAT,      /* reading a BDAT chunk */
	SMTP_STATE_DELIVER,   /* waiting for deliver's completion */
	SMTP_STATE_CLOSING,   /* last reply flushing */
	SMTP_STATE_DEAD,      /* free scheduled */
};

static const char *const state_names[] = {
	"?", "proxy", "connect", "helo", "ready", "tls", "data", "bdat", "deliver", "closing", "dead",
};

enum smtp_timer {
	TIMER_NONE = 0,
	TIMER_PROXY,   /* PROXY header deadline */
	TIMER_IDLE,    /* Idle_Time / Data_Time */
	TIMER_TARPIT,  /* a verdict waits before its reply */
	TIMER_LINGER,  /* closing: poll until output is flushed */
	TIMER_FREE,    /* activated by schedule_free */
};

struct smtp_tx {
	char *mail_from;            /* without <>; "" = null sender */
	struct deliver_rcpt *rcpts;
	size_t nrcpts, caprcpts;
	char *buf;                  /* Return-Path + Received + body, CRLF */
	size_t len, cap;
	size_t data_off;            /* where the client's bytes start in buf */
	uint64_t size;              /* body octets, as stored */
	struct deliver_job *job;    /* owned by deliver while set */
	char queue_id[24];
	bool utf8;                  /* MAIL ... SMTPUTF8 */
	bool started;               /* headers written (DATA or first BDAT) */
	bool bdat;                  /* this transaction uses BDAT */
	bool too_big, bare;
	bool mid_line;              /* DATA: inside a line (partial chunk) */
	bool bol_crlf;              /* DATA: previous line ended with CRLF */
	struct smtp_verdict ok;     /* a data-phase 2xx verdict: its reply once the
	                             * message is delivered (code 0: the default) */
};

/* What a phase left pending while the policy runs. */
struct smtp_pending {
	enum mx_phase phase;
	char *a, *b;                /* HELO name; sender; rcpt local + domain */
	char *targets;              /* rcpt: its Valid_Recipients alias targets */
	bool flag;                  /* EHLO (vs HELO); SMTPUTF8 on MAIL */
	struct smtp_verdict v;
};

struct smtp_session {
	struct smtp_server *srv;
	struct smtp_cfgref *cfg;
	struct policy *policy;      /* the scripts it was accepted with (a reference), or NULL */
	const struct mx_limits *limits;
	struct net_listener *listener;
	/* Transport: a plain socket is read and written by the session itself
	 * (fd, rev, wev, in_p/ibuf, obuf: one read() per readable event, one
	 * write() per burst of replies); a bufferevent (TLS after STARTTLS, a
	 * pair in the unit tests) is used through libevent's buffers. */
	struct bufferevent *bev;    /* NULL on a plain socket */
	struct event *timer;
	struct event *rev, *wev;    /* plain socket: readable / writable */
	const char *in_p;           /* plain: unconsumed input (io_rbuf or ibuf) */
	char *ibuf;                 /* plain: input kept between reads, or NULL */
	char *obuf;                 /* plain: output the socket did not take */
	uint32_t in_n, icap, olen, ocap;
	int fd;                     /* plain socket; -1 under a bufferevent */
	uint64_t idle_due;          /* idle deadline (ms); the timer may fire early */
	uint64_t timer_due;         /* when the armed TIMER_IDLE fires (ms) */
	struct smtp_tx *tx;
	struct smtp_pending *pending;
	struct smtp_policy_state *pol; /* vctx stores and a run in flight; see smtp_policy.c */
	char *helo;
	struct smtp_session *prev, *next;
	uint64_t start_ms;
	uint64_t chunk_left;        /* BDAT octets still to read */
	struct ip_addr client;
	uint16_t port;
	uint8_t state;              /* enum smtp_state */
	uint8_t timer_kind;         /* enum smtp_timer */
	uint8_t chunk_err;          /* BDAT chunk to discard: 0, 1 = 503, 2 = 554 */
	uint8_t linger;
	uint16_t errors;
	uint32_t nmsgs, nrcpts, id;
	uint32_t ndiscarded;        /* answered 250 but discarded by a script */
	bool esmtp, tls, proxied, early_talker, in_audit, waiting, in_process;
	bool begun; /* begin_session ran (after any PROXY header): a session to log */
	bool tls_closed; /* our close_notify is written */
	bool skip_line, chunk_last, lost;
	bool out_blocked;           /* a client that pipelines without reading */
	bool rd_on, wr_on;          /* plain: rev / wev added */
	bool in_loop_buf;           /* plain: in_p points into io_rbuf */
	bool in_tarpit;             /* counted in stats.tarpitted_now */
	/* Short HELO names live here, not in a malloc of their own: allocated
	 * right after the read buffer is freed, a small block would split that
	 * hole and pin it (about 1 KiB per session, measured). */
	char helo_buf[40];
};

static const struct mx_limits default_limits = {
	.max_message_size = 25u << 20,
	.max_recipients = 100,
	.max_errors = 20,
	.max_received = 100,
	.idle_time = 300,
	.data_time = 600,
};

static uint32_t session_ids;

static void session_process(struct smtp_session *s);
static void session_close(struct smtp_session *s);
static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void flush_now(struct smtp_session *s);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* ------------------------------------------------------------------ */
/* config references and the server-level operations                   */

struct smtp_cfgref *smtp_cfgref_new(struct mx_config *cfg)
{
	struct smtp_cfgref *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->cfg = cfg;
	r->refs = 1;
	return r;
}

void smtp_cfgref_ref(struct smtp_cfgref *r)
{
	r->refs++;
}

void smtp_cfgref_unref(struct smtp_cfgref *r)
{
	if (!r || --r->refs > 0)
		return;
	mx_config_free(r->cfg);
	free(r);
}

void smtp_server_set_config(struct smtp_server *srv, struct smtp_cfgref *cfg)
{
	struct smtp_cfgref *old = srv->cfg;
	srv->cfg = cfg;
	smtp_cfgref_unref(old);
}

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

static const struct mx_config *CFG(const struct smtp_session *s)
{
	return s->cfg->cfg;
}

static const char *hostname(const struct smtp_session *s)
{
	return CFG(s)->hostname ? CFG(s)->hostname : "localhost";
}

static const char *client_text(const struct smtp_session *s, char *buf, size_t len)
{
	return ip_addr_format(&s->client, buf, len);
}

static void enter_state(struct smtp_session *s, enum smtp_state st)
{
	/* closing leads only to dead, and dead is final: a late callback
	 * (delivery, policy) must not bring a session back */
	if (s->state == st || s->state == SMTP_STATE_DEAD ||
	    (s->state == SMTP_STATE_CLOSING && st != SMTP_STATE_DEAD))
		return;
	log_event(LOG_DEBUG, "state", "session=%u from=%s to=%s", s->id, state_names[s->state],
	          state_names[st]);
	s->state = (uint8_t)st;
}

static void arm_timer(struct smtp_session *s, enum smtp_timer kind, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	if (s->state == SMTP_STATE_DEAD) /* the timer carries TIMER_FREE now */
		return;
	s->timer_kind = (uint8_t)kind;
	evtimer_add(s->timer, &tv);
}

/* ------------------------------------------------------------------ */
/* transport                                                           */

/* Loop thread only. A read on a plain socket lands in io_rbuf and is parsed
 * there; only what is left unparsed (a partial line, input that arrived
 * while a phase waits) is copied into the session's own ibuf. The replies
 * of one processing step collect in io_stage and leave in one write at its
 * end; only what the socket does not take is copied into the session's
 * obuf. So a transaction in lockstep costs one read() per command and one
 * write() per reply, and no allocation for its I/O.
 * Invariants: io_stage is empty whenever control returns to the loop (a
 * reply outside session_process is flushed at once, session_process flushes
 * at its end); io_stage holds only io_stage_owner's replies, and only while
 * that session's obuf is empty (so staged bytes never overtake older ones);
 * in_loop_buf (in_p points into io_rbuf) only inside session_process. */
#define SMTP_KEEP_SMALL 4096 /* leftover input copied in front of the next read */
static char io_rbuf[SMTP_KEEP_SMALL + SMTP_READ_CHUNK];
static char io_stage[SMTP_STAGE_MAX];
static size_t io_stage_len;
static struct smtp_session *io_stage_owner;

static void schedule_free(struct smtp_session *s);

/* Add or remove a plain socket's read or write event, only on a change. */
static void ev_set(struct smtp_session *s, struct event *ev, bool *added, bool on)
{
	if (s->bev || *added == on)
		return;
	*added = on;
	if (on)
		event_add(ev, NULL);
	else
		event_del(ev);
}

static void rd_set(struct smtp_session *s, bool on)
{
	ev_set(s, s->rev, &s->rd_on, on);
}

static void wr_set(struct smtp_session *s, bool on)
{
	ev_set(s, s->wev, &s->wr_on, on);
}

/* The unconsumed input: [*p, *p + returned length). */
static size_t in_view(struct smtp_session *s, const char **p)
{
	if (s->bev) {
		struct evbuffer *in = bufferevent_get_input(s->bev);
		size_t n = evbuffer_get_length(in);
		*p = n ? (const char *)evbuffer_pullup(in, -1) : "";
		return n;
	}
	*p = s->in_n ? s->in_p : "";
	return s->in_n;
}

static void in_consume(struct smtp_session *s, size_t n)
{
	if (s->bev) {
		evbuffer_drain(bufferevent_get_input(s->bev), n);
		return;
	}
	s->in_p += n;
	s->in_n -= (uint32_t)n;
}

static void in_drop(struct smtp_session *s)
{
	if (s->bev) {
		struct evbuffer *in = bufferevent_get_input(s->bev);
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	s->in_n = 0;
	s->in_p = NULL;
	s->in_loop_buf = false;
	free(s->ibuf);
	s->ibuf = NULL;
	s->icap = 0;
}

/* End of a processing step on a plain socket: what is left unparsed moves
 * out of io_rbuf (the next read, maybe another session's, reuses it) to the
 * start of ibuf. False when out of memory. */
static bool in_keep(struct smtp_session *s)
{
	if (s->bev)
		return true;
	if (s->in_n == 0 || s->state == SMTP_STATE_DEAD) {
		in_drop(s);
		return true;
	}
	if (s->in_loop_buf) {
		if (s->icap < s->in_n) {
			size_t cap = s->in_n > SMTP_KEEP_SMALL ? s->in_n + SMTP_READ_CHUNK : s->in_n;
			free(s->ibuf);
			s->icap = 0;
			if (!(s->ibuf = malloc(cap)))
				return false;
			s->icap = (uint32_t)cap;
		}
		memcpy(s->ibuf, s->in_p, s->in_n);
		s->in_loop_buf = false;
	} else if (s->in_p != s->ibuf) {
		memmove(s->ibuf, s->in_p, s->in_n);
	}
	s->in_p = s->ibuf;
	return true;
}

/* Bytes of output the peer has not taken yet. */
static size_t out_pending(struct smtp_session *s)
{
	if (s->bev) {
		struct bufferevent *u = bufferevent_get_underlying(s->bev);
		return evbuffer_get_length(bufferevent_get_output(s->bev)) +
		       (u ? evbuffer_get_length(bufferevent_get_output(u)) : 0);
	}
	return s->olen + (io_stage_owner == s ? io_stage_len : 0);
}

/* Bytes of output still ours to push: for TLS the filter's own buffer only.
 * The socket bufferevent below takes at most SMTP_WRITE_HIGH from it (its
 * write high-water mark), so the filter's buffer is where a client that
 * does not read shows; and on_write, the filter's callback, fires as that
 * buffer drains, which is what a parse stopped for output waits for. */
static size_t out_queued(struct smtp_session *s)
{
	if (s->bev)
		return evbuffer_get_length(bufferevent_get_output(s->bev));
	return out_pending(s);
}

static bool obuf_add(struct smtp_session *s, const char *p, size_t n)
{
	if ((size_t)s->olen + n > s->ocap) {
		size_t cap = s->ocap ? s->ocap : 512;
		while (cap < (size_t)s->olen + n)
			cap *= 2;
		char *b = realloc(s->obuf, cap);
		if (!b)
			return false;
		s->obuf = b;
		s->ocap = (uint32_t)cap;
	}
	memcpy(s->obuf + s->olen, p, n);
	s->olen += (uint32_t)n;
	return true;
}

static void obuf_free(struct smtp_session *s)
{
	free(s->obuf);
	s->obuf = NULL;
	s->olen = s->ocap = 0;
	if (io_stage_owner == s) {
		io_stage_owner = NULL;
		io_stage_len = 0;
	}
}

/* The socket failed (reset, broken pipe) or memory ran out: the session
 * ends. Never frees here (see schedule_free), so callers may go on. */
static void io_fail(struct smtp_session *s)
{
	s->lost = s->state != SMTP_STATE_CLOSING;
	obuf_free(s);
	schedule_free(s);
}

/* One send; bytes taken (0 when the socket is full), -1 on an error. */
static ssize_t sock_send(struct smtp_session *s, const char *p, size_t n)
{
	ssize_t w;

	do
		w = send(s->fd, p, n, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return w;
}

/* Queue reply bytes (flushed by flush_now). */
static void out_add(struct smtp_session *s, const char *p, size_t n)
{
	/* closing (a 421 went out last): a late completion writes nothing */
	if (s->state == SMTP_STATE_CLOSING || s->state == SMTP_STATE_DEAD)
		return;
	if (s->bev) {
		bufferevent_write(s->bev, p, n);
		return;
	}
	if (s->olen == 0 && (io_stage_owner == s || !io_stage_owner) &&
	    n <= sizeof io_stage - io_stage_len) {
		memcpy(io_stage + io_stage_len, p, n);
		io_stage_len += n;
		io_stage_owner = s;
		return;
	}
	if (io_stage_owner == s) { /* older bytes first */
		bool ok = obuf_add(s, io_stage, io_stage_len);
		io_stage_owner = NULL;
		io_stage_len = 0;
		if (!ok) {
			io_fail(s);
			return;
		}
	}
	if (!obuf_add(s, p, n))
		io_fail(s);
}

/* Write the queued replies now: one send() for the staged burst. What the
 * socket does not take waits in obuf for the write event, which is enabled
 * only then (no epoll_ctl while the output keeps up). A bufferevent writes
 * on its own. Called at the end of session_process and by reply() outside
 * it. */
static void flush_now(struct smtp_session *s)
{
	ssize_t w;

	if (s->bev || s->state == SMTP_STATE_DEAD)
		return;
	if (io_stage_owner == s) {
		size_t n = io_stage_len;
		io_stage_owner = NULL;
		io_stage_len = 0;
		w = sock_send(s, io_stage, n);
		if (w < 0 || ((size_t)w < n && !obuf_add(s, io_stage + w, n - (size_t)w))) {
			io_fail(s);
			return;
		}
	} else if (s->olen > 0) {
		w = sock_send(s, s->obuf, s->olen);
		if (w < 0) {
			io_fail(s);
			return;
		}
		if ((size_t)w == s->olen) {
			obuf_free(s);
		} else {
			memmove(s->obuf, s->obuf + w, s->olen - (size_t)w);
			s->olen -= (uint32_t)w;
		}
	}
	wr_set(s, s->olen > 0);
}

static void reply_raw(struct smtp_session *s, const char *p, size_t n)
{
	out_add(s, p, n);
	if (!s->in_process)
		flush_now(s);
}

/* A constant reply line: no formatting. */
#define reply_lit(s, text) reply_raw((s), text "\r\n", sizeof(text "\r\n") - 1)

static void reply_v(struct smtp_session *s, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static void reply_v(struct smtp_session *s, const char *fmt, va_list ap)
{
	char buf[1024];
	va_list aq;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(buf, sizeof buf - 2, fmt, aq);
	va_end(aq);
	if (n < 0)
		return;
	if ((size_t)n < sizeof buf - 2) {
		memcpy(buf + n, "\r\n", 2);
		reply_raw(s, buf, (size_t)n + 2);
		return;
	}
	char *big = malloc((size_t)n + 3); /* a long policy text */
	if (!big)
		return;
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	memcpy(big + n, "\r\n", 2);
	reply_raw(s, big, (size_t)n + 2);
	free(big);
}

static void reply(struct smtp_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_v(s, fmt, ap);
	va_end(ap);
}

static void schedule_free(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_DEAD)
		return;
	enter_state(s, SMTP_STATE_DEAD);
	if (s->bev) {
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	} else {
		rd_set(s, false);
		wr_set(s, false);
	}
	evtimer_del(s->timer);
	s->timer_kind = TIMER_FREE;
	event_active(s->timer, EV_TIMEOUT, 1);
}

static void closing_check(struct smtp_session *s)
{
	if (out_queued(s) == 0 && s->tls && !s->tls_closed && s->linger > 0) {
		/* the last reply is through the filter: TLS ends with a
		 * close_notify alert (RFC 8446 6.1), which the filter writes
		 * below itself, after the reply; the linger lets both leave
		 * before the socket closes */
		s->tls_closed = true;
		SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
		if (ssl)
			(void)SSL_shutdown(ssl);
	}
	if (out_pending(s) == 0 || s->linger == 0) {
		schedule_free(s);
		return;
	}
	s->linger--;
	arm_timer(s, TIMER_LINGER, 50);
}

/* Close after the replies written so far have left. */
static void session_close(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_CLOSING || s->state == SMTP_STATE_DEAD)
		return;
	enter_state(s, SMTP_STATE_CLOSING);
	if (s->bev) {
		bufferevent_disable(s->bev, EV_READ);
		bufferevent_enable(s->bev, EV_WRITE);
	} else {
		rd_set(s, false);
		flush_now(s); /* usually all of it: then free at once */
		if (s->state == SMTP_STATE_DEAD)
			return;
	}
	s->linger = SMTP_LINGER_TICKS;
	evtimer_del(s->timer);
	closing_check(s);
}

static void tx_free(struct smtp_tx *tx)
{
	if (!tx)
		return;
	for (size_t i = 0; i < tx->nrcpts; i++) {
		free(tx->rcpts[i].local);
		free(tx->rcpts[i].domain);
		free(tx->rcpts[i].targets);
	}
	free(tx->rcpts);
	free(tx->mail_from);
	free(tx->buf);
	smtp_verdict_clear(&tx->ok);
	free(tx);
}

static void tx_end(struct smtp_session *s)
{
	tx_free(s->tx);
	s->tx = NULL;
	smtp_policy_message_end(s);
}

/* Replace the HELO name; takes a malloc'd name (or NULL to clear). */
static void helo_set(struct smtp_session *s, char *name)
{
	if (s->helo != s->helo_buf)
		free(s->helo);
	s->helo = NULL;
	if (!name)
		return;
	size_t n = strlen(name);
	if (n < sizeof s->helo_buf) {
		memcpy(s->helo_buf, name, n + 1);
		s->helo = s->helo_buf;
		free(name);
	} else {
		s->helo = name;
	}
}

static void pending_free(struct smtp_session *s)
{
	if (!s->pending)
		return;
	free(s->pending->a);
	free(s->pending->b);
	free(s->pending->targets);
	smtp_verdict_clear(&s->pending->v);
	free(s->pending);
	s->pending = NULL;
}

static void audit_count(struct smtp_session *s, enum audit_counter c)
{
	if (s->srv->audit)
		audit_record(s->srv->audit, &s->client, c, mx_now_ms());
}

/* A 4xx/5xx caused by the client. Counts toward Max_Errors; `refusal`
 * marks a refused message or recipient for audit. Returns true when the
 * session is now closing. */
static bool reply_error(struct smtp_session *s, bool refusal, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool reply_error(struct smtp_session *s, bool refusal, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_v(s, fmt, ap);
	va_end(ap);
	if (refusal)
		audit_count(s, AUDIT_REJECTIONS);
	s->errors++;
	if (s->limits->max_errors && s->errors >= s->limits->max_errors) {
		reply(s, "421 4.7.0 %s Error: too many errors", hostname(s));
		char c[IP_ADDR_TEXT_MAX];
		log_event(LOG_NOTICE, "too_many_errors", "session=%u client=%s errors=%u", s->id,
		          client_text(s, c, sizeof c), s->errors);
		session_close(s);
		return true;
	}
	return false;
}

static void log_reject(struct smtp_session *s, const char *phase, unsigned code, const char *why)
{
	char c[IP_ADDR_TEXT_MAX], q[600];
	const char *qid = s->tx && s->tx->queue_id[0] ? s->tx->queue_id : NULL;
	/* a message we could not store or pass on is our trouble, not the
	 * client's: a warning, seen by an operator who logs warnings only */
	int level = strcmp(phase, "deliver") == 0 ? LOG_WARNING : LOG_INFO;
	if (!log_enabled(level))
		return;
	log_event(level, "reject", "session=%u client=%s phase=%s code=%u%s%s reason=%s", s->id,
	          client_text(s, c, sizeof c), phase, code, qid ? " queue_id=" : "", qid ? qid : "",
	          log_quote(why, strlen(why), q, sizeof q));
}

/* A message or recipient the server itself refused, not for the client's
 * error (no Max_Errors count): a rejection for the audit, and its log line. */
static void refused(struct smtp_session *s, const char *phase, unsigned code, const char *why)
{
	audit_count(s, AUDIT_REJECTIONS);
	log_reject(s, phase, code, why);
}

static void reply_line(void *arg, unsigned code, char sep, const char *status, const char *line,
                       int len)
{
	reply(arg, "%u%c%s %.*s", code, sep, status, len, line);
}

/* Send a verdict's reply: each line gets the code (multi-line with '-'). */
static void reply_verdict(struct smtp_session *s, const struct smtp_verdict *v)
{
	policy_reply_lines(v->code, v->status, v->text, reply_line, s);
}

/* ------------------------------------------------------------------ */
/* policy phases                                                       */

static void phase_finish(struct smtp_session *s);

static void policy_done(struct smtp_session *s, struct smtp_verdict *v)
{
	if (!s->pending) { /* cancelled: should not happen, but never crash */
		smtp_verdict_clear(v);
		return;
	}
	s->pending->v = *v;
	memset(v, 0, sizeof *v);
	if (s->pending->v.tarpit > 0) {
		s->srv->stats.tarpitted_now++;
		s->srv->stats.tarpits++;
		s->in_tarpit = true;
		arm_timer(s, TIMER_TARPIT, s->pending->v.tarpit * 1000u);
		return;
	}
	phase_finish(s);
}

/* Start the policy of a phase; s->pending must hold the phase's data. */
static void run_phase(struct smtp_session *s)
{
	s->waiting = true; /* an armed idle timer is ignored while waiting */
	smtp_policy_run(s, s->pending->phase, policy_done);
}

static struct smtp_pending *pending_new(struct smtp_session *s, enum mx_phase phase)
{
	s->pending = calloc(1, sizeof *s->pending);
	if (s->pending)
		s->pending->phase = phase;
	return s->pending;
}

/* A verdict that replaces the default reply: send it, count refusals,
 * close when asked. Returns true when it was applied. */
static bool apply_verdict(struct smtp_session *s, const struct smtp_verdict *v, bool refusal)
{
	if (v->code == 0 && !v->disconnect)
		return false;
	if (v->code) {
		reply_verdict(s, v);
		if (v->code >= 400) {
			if (refusal)
				audit_count(s, AUDIT_REJECTIONS);
			if (s->pending->phase == MX_PHASE_DATA) /* a message refused at its end */
				s->srv->stats.refused++;
			log_reject(s, mx_phase_name(s->pending->phase), v->code,
			           v->text ? v->text : "policy");
		}
	}
	if (v->disconnect || (s->pending->phase == MX_PHASE_CONNECT && v->code >= 400))
		session_close(s);
	return v->code != 0 || v->disconnect;
}

static void send_banner(struct smtp_session *s)
{
	const char *p;

	if (in_view(s, &p) > 0 && !s->early_talker) {
		s->early_talker = true;
		s->srv->stats.early_talkers++;
	}
	if (s->early_talker) {
		char c[IP_ADDR_TEXT_MAX];
		log_event(LOG_NOTICE, "early_talker", "session=%u client=%s", s->id,
		          client_text(s, c, sizeof c));
		if (CFG(s)->early_talker_reject) {
			reply(s, "554 5.5.0 %s Protocol error: talking before the greeting", hostname(s));
			session_close(s);
			return;
		}
	}
	reply(s, "220 %s ESMTP mxsieve", hostname(s));
	enter_state(s, SMTP_STATE_HELO);
}

/* The EHLO/HELO reply; `v`: a 2xx verdict of the EHLO policy, whose text
 * (first line) replaces the greeting line; the extensions follow. */
static void ehlo_reply(struct smtp_session *s, bool esmtp, const struct smtp_verdict *v)
{
	char b[1024], size[40] = "250-SIZE";
	int n;

	if (v && v->code) {
		const char *t = v->text ? v->text : "";
		int tl = (int)strcspn(t, "\r\n");
		if (!esmtp) {
			reply(s, "%u %.*s", v->code, tl, t);
			return;
		}
		reply(s, "250-%.*s", tl, t); /* one code for every line */
	} else if (!esmtp) {
		reply(s, "250 %s", hostname(s));
		return;
	}
	if (s->limits->max_message_size)
		snprintf(size, sizeof size, "250-SIZE %llu",
		         (unsigned long long)s->limits->max_message_size);
	/* one formatting pass for the whole reply */
	char greet[300] = "";
	if (!(v && v->code))
		snprintf(greet, sizeof greet, "250-%s\r\n", hostname(s));
	n = snprintf(b, sizeof b,
	             "%s250-PIPELINING\r\n%s\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
	             "%s250-SMTPUTF8\r\n250 CHUNKING\r\n",
	             greet, size, s->srv->tls && !s->tls ? "250-STARTTLS\r\n" : "");
	if (n > 0 && (size_t)n < sizeof b)
		reply_raw(s, b, (size_t)n);
}

static bool add_rcpt(struct smtp_tx *tx, char *local, char *domain, size_t box_len,
                     char *targets)
{
	if (tx->nrcpts == tx->caprcpts) {
		size_t n = tx->caprcpts ? tx->caprcpts * 2 : SMTP_RCPT_GROW;
		struct deliver_rcpt *r = realloc(tx->rcpts, n * sizeof *r);
		if (!r)
			return false;
		tx->rcpts = r;
		tx->caprcpts = n;
	}
	tx->rcpts[tx->nrcpts].local = local;
	tx->rcpts[tx->nrcpts].domain = domain;
	tx->rcpts[tx->nrcpts].box_len = box_len < strlen(local) ? box_len : 0;
	tx->rcpts[tx->nrcpts].targets = targets;
	tx->nrcpts++;
	return true;
}

static void deliver_message(struct smtp_session *s);

/* A verdict that lets the command go on: a 2xx reply without a disconnect. */
static bool accepts(const struct smtp_verdict *v)
{
	return v->code / 100 == 2 && !v->disconnect;
}

static void phase_finish(struct smtp_session *s)
{
	struct smtp_pending *p = s->pending;
	const struct smtp_verdict *v = &p->v;

	s->waiting = false;
	if (s->state == SMTP_STATE_CLOSING) { /* shut down meanwhile */
		pending_free(s);
		return;
	}
	switch (p->phase) {
	case MX_PHASE_CONNECT:
		if (!apply_verdict(s, v, false))
			send_banner(s);
		else if (s->state == SMTP_STATE_CONNECT)
			enter_state(s, SMTP_STATE_HELO); /* a 2xx banner from the policy */
		break;
	/* A 2xx verdict (without a disconnect) accepts: the command does what
	 * it always does and the script's reply replaces the default one. */
	case MX_PHASE_EHLO:
		if (!accepts(v) && apply_verdict(s, v, false))
			break;
		helo_set(s, p->a);
		p->a = NULL;
		s->esmtp = p->flag;
		tx_end(s);
		enter_state(s, SMTP_STATE_READY);
		ehlo_reply(s, s->esmtp, accepts(v) ? v : NULL);
		break;
	case MX_PHASE_MAILFROM:
		if (!accepts(v) && apply_verdict(s, v, true)) {
			/* no transaction: what the script kept for the message goes */
			smtp_policy_message_end(s);
			break;
		}
		s->tx = calloc(1, sizeof *s->tx);
		if (!s->tx) {
			reply(s, "451 4.3.0 Out of memory");
			break;
		}
		s->tx->mail_from = p->a;
		p->a = NULL;
		s->tx->utf8 = p->flag;
		if (accepts(v))
			reply_verdict(s, v);
		else
			reply_lit(s, "250 2.1.0 Ok");
		break;
	case MX_PHASE_RCPTTO:
		if (!accepts(v) && apply_verdict(s, v, true))
			break;
		if (!s->tx ||
		    !add_rcpt(s->tx, p->a, p->b, mx_config_mailbox_len(CFG(s), p->a), p->targets)) {
			reply(s, "451 4.3.0 Out of memory");
			break;
		}
		p->a = p->b = p->targets = NULL;
		s->nrcpts++;
		if (accepts(v))
			reply_verdict(s, v);
		else
			reply_lit(s, "250 2.1.5 Ok");
		break;
	case MX_PHASE_DATA:
		if (v->discard && (v->code == 0 || v->code / 100 == 2)) {
			char c[IP_ADDR_TEXT_MAX];
			log_event(LOG_INFO, "discard", "session=%u client=%s queue_id=%s", s->id,
			          client_text(s, c, sizeof c), s->tx->queue_id);
			if (v->code)
				reply_verdict(s, v);
			else
				reply(s, "250 2.0.0 Ok: queued as %s", s->tx->queue_id);
			audit_count(s, AUDIT_RECEPTIONS); /* answered 250, as the spec counts */
			s->ndiscarded++; /* and toward Max_Receptions_Per_Connection */
			tx_end(s);
			enter_state(s, SMTP_STATE_READY);
			break;
		}
		if (v->code / 100 == 2) {
			/* delivered first: its reply (and a disconnect) only after
			 * the message is durable, like the default 250 */
			s->tx->ok = p->v;
			memset(&p->v, 0, sizeof p->v);
		} else if (apply_verdict(s, v, true)) {
			tx_end(s);
			if (s->state == SMTP_STATE_DELIVER)
				enter_state(s, SMTP_STATE_READY);
			break;
		}
		pending_free(s);
		deliver_message(s);
		return;
	default:
		abort();
	}
	pending_free(s);
	if (!s->in_process)
		session_process(s);
}

/* ------------------------------------------------------------------ */
/* the message                                                         */

static bool buf_reserve(struct smtp_tx *tx, size_t more)
{
	if (tx->len + more <= tx->cap)
		return true;
	size_t n = tx->cap ? tx->cap : 16384; /* headers + a typical body: no regrowth */
	while (n < tx->len + more)
		n *= 2;
	char *b = realloc(tx->buf, n);
	if (!b)
		return false;
	tx->buf = b;
	tx->cap = n;
	return true;
}

static void buf_add(struct smtp_tx *tx, const char *p, size_t n)
{
	if (!buf_reserve(tx, n)) {
		tx->too_big = true; /* out of memory: refuse rather than lose bytes */
		return;
	}
	memcpy(tx->buf + tx->len, p, n);
	tx->len += n;
}

static char *hex_put(char *p, unsigned long long v, int digits)
{
	for (int i = digits - 1; i >= 0; i--, v >>= 4)
		p[i] = "0123456789ABCDEF"[v & 15];
	return p + digits;
}

/* 8 hex digits of time, 4 of the pid, 5 of a sequence number. */
static void make_queue_id(struct smtp_session *s, time_t now)
{
	static unsigned pid; /* loop thread only; the process never forks */
	if (pid == 0)
		pid = (unsigned)getpid();
	char *q = s->tx->queue_id;
	int tdig = 8;
	for (unsigned long long t = (unsigned long long)now >> 32; t; t >>= 4)
		tdig++; /* as %08llX would: never fewer than 8 */
	q = hex_put(q, (unsigned long long)now, tdig);
	q = hex_put(q, pid & 0xffff, 4);
	q = hex_put(q, ++s->srv->seq & 0xfffff, 5);
	*q = '\0';
}

/* Appends that stop at the end of the buffer (like the snprintf they replace). */
struct hdr_buf {
	char *p;
	size_t n, cap;
};

static void hdr_add(struct hdr_buf *h, const char *s)
{
	size_t l = strlen(s);
	if (l > h->cap - h->n)
		l = h->cap - h->n;
	memcpy(h->p + h->n, s, l);
	h->n += l;
}

/* Return-Path and Received (RFC 5321 §4.4), before the first body byte. */
static void start_message(struct smtp_session *s)
{
	/* the date part of Received, formatted once per second (loop thread only) */
	static time_t date_sec = (time_t)-1;
	static char date[64];
	struct smtp_tx *tx = s->tx;
	char addr[IP_ADDR_TEXT_MAX], hdr[2048];
	struct hdr_buf h = {hdr, 0, sizeof hdr - 1};
	time_t now = time(NULL);
	const char *proto;

	make_queue_id(s, now);
	if (now != date_sec) {
		struct tm tm;
		localtime_r(&now, &tm);
		strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
		date_sec = now;
	}
	client_text(s, addr, sizeof addr);
	if (tx->utf8)
		proto = s->tls ? "UTF8SMTPS" : "UTF8SMTP";
	else if (s->esmtp)
		proto = s->tls ? "ESMTPS" : "ESMTP";
	else
		proto = "SMTP";
	hdr_add(&h, "Return-Path: <");
	hdr_add(&h, tx->mail_from);
	hdr_add(&h, ">\r\nReceived: from ");
	hdr_add(&h, s->helo ? s->helo : "unknown");
	hdr_add(&h, s->client.family == IP_V6 ? " ([IPv6:" : " ([");
	hdr_add(&h, addr);
	hdr_add(&h, "])\r\n\t");
	SSL *ssl = s->tls ? bufferevent_openssl_get_ssl(s->bev) : NULL;
	const SSL_CIPHER *cipher = ssl ? SSL_get_current_cipher(ssl) : NULL;
	if (cipher) {
		/* as Postfix writes it: how the message travelled to us */
		char tls[160];
		int alg_bits = 0, bits = SSL_CIPHER_get_bits(cipher, &alg_bits);
		snprintf(tls, sizeof tls, "(using %s with cipher %s (%d/%d bits))\r\n\t",
		         SSL_get_version(ssl), SSL_CIPHER_get_name(cipher), bits, alg_bits);
		hdr_add(&h, tls);
	}
	hdr_add(&h, "by ");
	hdr_add(&h, hostname(s));
	hdr_add(&h, " with ");
	hdr_add(&h, proto);
	hdr_add(&h, " id ");
	hdr_add(&h, tx->queue_id);
	if (tx->nrcpts == 1) {
		hdr_add(&h, "\r\n\tfor <");
		hdr_add(&h, tx->rcpts[0].local);
		hdr_add(&h, "@");
		hdr_add(&h, tx->rcpts[0].domain);
		hdr_add(&h, ">");
	}
	hdr_add(&h, "; ");
	hdr_add(&h, date);
	hdr_add(&h, "\r\n");
	buf_add(tx, hdr, h.n);
	tx->data_off = tx->len;
	tx->started = true;
	tx->bol_crlf = true;
}

static void body_add(struct smtp_session *s, const char *p, size_t n)
{
	struct smtp_tx *tx = s->tx;
	uint64_t max = s->limits->max_message_size;

	tx->size += n;
	if (max && tx->size > max)
		tx->too_big = true;
	if (tx->too_big)
		return;
	buf_add(tx, p, n);
}

static void deliver_done(struct deliver_job *job, void *arg)
{
	struct smtp_session *s = arg;
	char c[IP_ADDR_TEXT_MAX], from[600];

	s->tx->job = NULL;
	s->waiting = false;
	switch (job->status) {
	case DELIVER_OK:
		if (s->tx->ok.code)
			reply_verdict(s, &s->tx->ok);
		else
			reply(s, "250 2.0.0 Ok: queued as %s", job->queue_id);
		s->nmsgs++;
		s->srv->stats.messages++;
		audit_count(s, AUDIT_RECEPTIONS);
		if (log_enabled(LOG_INFO)) {
			/* relay: the next hop's answer ("relay HOST:PORT: 250 ... queued as X") */
			char next[sizeof job->detail + 16] = "";
			if (job->detail[0]) {
				memcpy(next, " relayed=", 9);
				log_quote(job->detail, strlen(job->detail), next + 9, sizeof next - 9);
			}
			log_event(LOG_INFO, "message",
			          "session=%u client=%s queue_id=%s from=%s nrcpt=%zu size=%llu%s", s->id,
			          client_text(s, c, sizeof c), job->queue_id,
			          log_quote(job->mail_from, strlen(job->mail_from), from, sizeof from),
			          job->nrcpts, (unsigned long long)s->tx->size, next);
		}
		break;
	case DELIVER_TEMPFAIL:
		s->srv->stats.refused++;
		if (job->no_space) {
			s->srv->stats.storage_refused++;
			reply(s, "452 4.3.1 Error: insufficient system storage, try again later");
			refused(s, "deliver", 452, job->detail);
			break;
		}
		reply(s, "451 4.3.0 Error: could not store the message, try again later");
		refused(s, "deliver", 451, job->detail);
		break;
	default:
		if (job->no_smtputf8)
			reply(s, "554 5.6.7 Error: the next hop does not take non-ASCII addresses "
			         "(no SMTPUTF8)");
		else
			reply(s, "554 5.0.0 Error: message refused by the delivery target");
		s->srv->stats.refused++;
		refused(s, "deliver", 554, job->detail);
		break;
	}
	deliver_job_free(job);
	bool bye = s->tx->ok.disconnect; /* a data-phase 2xx with a disconnect */
	tx_end(s);
	if (s->state == SMTP_STATE_CLOSING)
		return; /* shut down meanwhile: the client had its 421 (logged above) */
	enter_state(s, SMTP_STATE_READY);
	if (bye) {
		session_close(s);
		return;
	}
	if (s->srv->draining) {
		reply(s, "421 4.3.2 %s Service shutting down, closing connection", hostname(s));
		session_close(s);
		return;
	}
	session_process(s);
}

static void deliver_message(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	struct deliver_job *job;

	if (!s->srv->deliver || !(job = calloc(1, sizeof *job))) {
		reply(s, "451 4.3.0 Error: delivery unavailable, try again later");
		refused(s, "deliver", 451, "no delivery");
		tx_end(s);
		enter_state(s, SMTP_STATE_READY);
		if (!s->in_process)
			session_process(s);
		return;
	}
	memcpy(job->queue_id, tx->queue_id, sizeof job->queue_id);
	client_text(s, job->client_addr, sizeof job->client_addr);
	snprintf(job->client_helo, sizeof job->client_helo, "%s", s->helo ? s->helo : "");
	job->client_esmtp = s->esmtp;
	job->mail_from = tx->mail_from;
	job->rcpts = tx->rcpts;
	job->nrcpts = tx->nrcpts;
	job->data = tx->buf;
	job->len = tx->len;
	tx->mail_from = NULL;
	tx->rcpts = NULL;
	tx->nrcpts = tx->caprcpts = 0;
	tx->buf = NULL;
	tx->len = tx->cap = 0;
	tx->job = job;
	enter_state(s, SMTP_STATE_DELIVER);
	s->waiting = true;
	deliver_submit(s->srv->deliver, job, deliver_done, s);
}

/* Refuse a complete message before any policy: count, log (why), end the
 * transaction, and send `text`, the whole reply line (its code is `code`). */
static void refuse_message(struct smtp_session *s, unsigned code, const char *why,
                           const char *text)
{
	s->srv->stats.refused++;
	log_reject(s, "data", code, why);
	enter_state(s, SMTP_STATE_READY);
	tx_end(s);
	reply_error(s, true, "%s", text);
}

/* End of DATA or BDAT LAST: size, bare-LF and loop checks, then the data
 * policy. */
static void message_complete(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;

	enter_state(s, SMTP_STATE_DELIVER);
	if (tx->too_big) {
		refuse_message(s, 552, "message too big",
		               "552 5.3.4 Error: message size exceeds fixed maximum message size");
		return;
	}
	if (tx->bare && CFG(s)->bare_lf != MX_BARE_LF_NORMALIZE) {
		refuse_message(s, 550, "bare LF or CR",
		               "550 5.6.0 Error: message contains bare LF or CR (SMTP smuggling "
		               "protection)");
		return;
	}
	unsigned hops = s->limits->max_received;
	if (hops && tx->len >= tx->data_off &&
	    smtp_count_received(tx->buf + tx->data_off, tx->len - tx->data_off, hops + 1) > hops) {
		/* RFC 5321 §6.3: a mail loop; the count is of the client's fields */
		refuse_message(s, 554, "too many Received headers",
		               "554 5.4.6 Error: too many hops (Received headers), mail loop?");
		return;
	}
	if (!pending_new(s, MX_PHASE_DATA)) {
		enter_state(s, SMTP_STATE_READY);
		tx_end(s);
		reply(s, "451 4.3.0 Out of memory");
		return;
	}
	run_phase(s);
}

/* One DATA line [p, p+n), with its LF when has_lf. */
static void data_line(struct smtp_session *s, const char *p, size_t n, bool has_lf)
{
	struct smtp_tx *tx = s->tx;
	bool crlf = false, bare_lf = false;
	size_t clen = n;

	if (has_lf) {
		clen--;
		if (clen && p[clen - 1] == '\r') {
			clen--;
			crlf = true;
		} else {
			bare_lf = true;
		}
	}
	if (!tx->mid_line && tx->bol_crlf && crlf && clen == 1 && p[0] == '.') {
		message_complete(s);
		return;
	}
	if (!tx->mid_line && clen > 0 && p[0] == '.') { /* dot-unstuffing */
		p++;
		clen--;
	}
	const char *cr = memchr(p, '\r', clen);
	if (cr || bare_lf)
		tx->bare = true;
	if (tx->bare && CFG(s)->bare_lf != MX_BARE_LF_NORMALIZE) {
		tx->size += clen + (has_lf ? 2 : 0); /* refused anyway: keep counting only */
	} else if (cr) {
		/* normalize: each bare CR becomes a line end */
		const char *q = p, *end = p + clen;
		while (q < end) {
			const char *r = memchr(q, '\r', (size_t)(end - q));
			if (!r) {
				body_add(s, q, (size_t)(end - q));
				break;
			}
			body_add(s, q, (size_t)(r - q));
			body_add(s, "\r\n", 2);
			q = r + 1;
		}
		if (has_lf)
			body_add(s, "\r\n", 2);
	} else if (crlf) {
		body_add(s, p, clen + 2); /* the line and its own CRLF */
	} else {
		body_add(s, p, clen);
		if (has_lf)
			body_add(s, "\r\n", 2);
	}
	tx->mid_line = !has_lf;
	if (has_lf)
		tx->bol_crlf = crlf;
}

/* ------------------------------------------------------------------ */
/* commands                                                            */

static bool session_has_helo(struct smtp_session *s)
{
	if (s->helo)
		return true;
	reply_error(s, false, "503 5.5.1 Error: send HELO/EHLO first");
	return false;
}

static bool check_any(struct smtp_session *s)
{
	(void)s;
	return true;
}

static bool check_mail(struct smtp_session *s)
{
	if (!session_has_helo(s))
		return false;
	if (s->tx) {
		reply_error(s, false, "503 5.5.1 Error: nested MAIL command");
		return false;
	}
	return true;
}

static bool check_tx(struct smtp_session *s)
{
	if (s->tx)
		return true;
	reply_error(s, false, "503 5.5.1 Error: need MAIL command");
	return false;
}

/* RCPT: a transaction whose message has not begun. Between BDAT chunks
 * the Received header (with its "for") is written and part of the body
 * is in: a recipient now would get another's "for" and skip the checks
 * made at the first chunk (RFC 3030 2: only BDAT, or RSET, until LAST). */
static bool check_rcpt(struct smtp_session *s)
{
	if (!check_tx(s))
		return false;
	if (!s->tx->bdat)
		return true;
	reply_error(s, false, "503 5.5.1 Error: RCPT after BDAT");
	return false;
}

static void cmd_helo(struct smtp_session *s, const struct smtp_command *c)
{
	bool esmtp = c->verb == SMTP_VERB_EHLO;

	for (size_t i = 0; i < c->arglen; i++) {
		unsigned char ch = (unsigned char)c->arg[i];
		if (ch <= ' ' || ch == 127) {
			reply_error(s, false, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
			return;
		}
	}
	if (!smtp_utf8_valid(c->arg, c->arglen) || c->arglen > SMTP_DOMAIN_MAX) {
		reply_error(s, false, "501 5.5.4 Error: invalid hostname");
		return;
	}
	if (!pending_new(s, MX_PHASE_EHLO) || !(s->pending->a = strndup(c->arg, c->arglen))) {
		reply(s, "451 4.3.0 Out of memory");
		pending_free(s);
		return;
	}
	s->pending->flag = esmtp;
	run_phase(s);
}

/* RFC 1870 size-value, 1*20DIGIT; a value past 2^64-1 reads as 2^64-1. */
static bool parse_size(const char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;
	if (n == 0 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		unsigned dgt = (unsigned)(v[i] - '0');
		x = x > (UINT64_MAX - dgt) / 10 ? UINT64_MAX : x * 10 + dgt;
	}
	*out = x;
	return true;
}

static void path_error(struct smtp_session *s, enum smtp_parse_error e, bool mail)
{
	const char *what = mail ? "5.5.4 Error: bad sender address" : "5.5.4 Error: bad recipient address";
	switch (e) {
	case SMTP_PARSE_UTF8:
		reply_error(s, true, "501 5.6.7 Error: invalid UTF-8 in address");
		break;
	case SMTP_PARSE_PARAM:
		reply_error(s, true, "555 5.5.4 Error: malformed parameter");
		break;
	case SMTP_PARSE_TOO_LONG:
		reply_error(s, true, "501 %s (too long)", what);
		break;
	default:
		reply_error(s, true, "501 %s syntax", what);
		break;
	}
}

static void cmd_mail(struct smtp_session *s, const struct smtp_command *c)
{
	struct smtp_path p;
	enum smtp_parse_error e;
	bool utf8 = false;

	if (s->srv->draining) {
		reply(s, "421 4.3.2 %s Service shutting down, closing connection", hostname(s));
		session_close(s);
		return;
	}
	/* a discarded message was a reception for the client: it counts too */
	if (s->limits->max_receptions &&
	    (uint64_t)s->nmsgs + s->ndiscarded >= s->limits->max_receptions) {
		reply(s, "421 4.7.0 %s Error: too many messages in this connection", hostname(s));
		refused(s, "mailfrom", 421, "Max_Receptions_Per_Connection");
		session_close(s);
		return;
	}
	e = smtp_parse_path(c->arg, c->arglen, true, &p);
	if (e != SMTP_PARSE_OK) {
		path_error(s, e, true);
		return;
	}
	uint64_t declared = 0; /* SIZE=, 0 when not given */
	for (size_t i = 0; i < p.nparams; i++) {
		const struct smtp_param *pa = &p.params[i];
		uint64_t size;
		if (!s->esmtp) {
			reply_error(s, true, "555 5.5.4 Error: parameters need EHLO");
			return;
		}
		if (smtp_param_is(pa, "SIZE")) {
			if (!pa->value || !parse_size(pa->value, pa->valuelen, &size)) {
				reply_error(s, true, "501 5.5.4 Error: bad SIZE parameter");
				return;
			}
			if (s->limits->max_message_size && size > s->limits->max_message_size) {
				log_reject(s, "mailfrom", 552, "SIZE too big");
				reply_error(s, true, "552 5.3.4 Error: message size exceeds fixed maximum message size");
				return;
			}
			declared = size;
		} else if (smtp_param_is(pa, "BODY")) {
			if (!pa->value || !((pa->valuelen == 4 && !strncasecmp(pa->value, "7BIT", 4)) ||
			                    (pa->valuelen == 8 && !strncasecmp(pa->value, "8BITMIME", 8)))) {
				reply_error(s, true, "501 5.5.4 Error: unsupported BODY type");
				return;
			}
		} else if (smtp_param_is(pa, "SMTPUTF8") && !pa->value) {
			utf8 = true;
		} else {
			reply_error(s, true, "555 5.5.4 Error: unsupported parameter %.*s", (int)pa->keylen,
			            pa->key);
			return;
		}
	}
	if (p.utf8 && !utf8) {
		reply_error(s, true, "553 5.6.7 Error: non-ASCII address needs SMTPUTF8");
		return;
	}
	if (s->srv->deliver && !deliver_has_room(s->srv->deliver, declared, CFG(s)->min_free_space)) {
		/* not the client's error: no Max_Errors count */
		s->srv->stats.storage_refused++;
		refused(s, "mailfrom", 452, "insufficient storage");
		reply(s, "452 4.3.1 Error: insufficient system storage, try again later");
		return;
	}
	if (s->srv->deliver && deliver_next_hop_down(s->srv->deliver)) {
		/* not the client's error either: the data would only get a 451 */
		s->srv->stats.next_hop_refused++;
		refused(s, "mailfrom", 451, "next hop down");
		reply(s, "451 4.4.1 Error: next hop not reachable, try again later");
		return;
	}
	if (!pending_new(s, MX_PHASE_MAILFROM)) {
		reply(s, "451 4.3.0 Out of memory");
		refused(s, "mailfrom", 451, "out of memory");
		return;
	}
	char local[2 * SMTP_LOCAL_MAX + 3];
	if (!p.null_path && !mx_local_canonical(p.local, local, sizeof local)) {
		pending_free(s);
		reply_error(s, true, "501 5.5.4 Error: bad sender address (too long)");
		return;
	}
	if (p.null_path)
		s->pending->a = strdup("");
	else if (p.domain[0])
		s->pending->a = malloc(strlen(local) + strlen(p.domain) + 2);
	if (!s->pending->a) {
		pending_free(s);
		reply(s, "451 4.3.0 Out of memory");
		return;
	}
	if (!p.null_path)
		sprintf(s->pending->a, "%s@%s", local, p.domain);
	s->pending->flag = utf8;
	run_phase(s);
}

static void lower(char *p)
{
	for (; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + 32);
}

/* Valid_Recipients: whether mail for local@domain may be taken. Only the
 * domains of Relay_Domains are checked (mail a relay client sends elsewhere
 * is the next hop's to judge), and postmaster is always taken (RFC 5321
 * §4.5.1). "user+ext" is taken when it is listed itself or, with
 * Recipient_Delimiter, when "user" is. */
static bool known_recipient(const struct mx_config *cfg, const char *local, const char *domain,
                            const char **targets)
{
	*targets = NULL;
	if (cfg->recipients == NULL || !mx_config_accepts_domain(cfg, domain))
		return true;
	if (mx_recipients_lookup(cfg->recipients, local, domain, targets))
		return true;
	size_t box = mx_config_mailbox_len(cfg, local);
	char base[2 * SMTP_LOCAL_MAX + 3];
	if (box < strlen(local) && box < sizeof base) {
		memcpy(base, local, box);
		base[box] = '\0';
		if (mx_recipients_lookup(cfg->recipients, base, domain, targets))
			return true;
	}
	return strcasecmp(local, "postmaster") == 0;
}

static void cmd_rcpt(struct smtp_session *s, const struct smtp_command *c)
{
	struct smtp_path p;
	enum smtp_parse_error e;
	const struct mx_config *cfg = CFG(s);
	char domain[SMTP_DOMAIN_MAX + 1];

	e = smtp_parse_path(c->arg, c->arglen, false, &p);
	if (e != SMTP_PARSE_OK) {
		path_error(s, e, false);
		return;
	}
	if (p.nparams) {
		reply_error(s, true, "555 5.5.4 Error: unsupported parameter %.*s",
		            (int)p.params[0].keylen, p.params[0].key);
		return;
	}
	if (p.utf8 && !s->tx->utf8) {
		reply_error(s, true, "553 5.6.7 Error: non-ASCII address needs SMTPUTF8");
		return;
	}
	if (p.domain[0]) {
		snprintf(domain, sizeof domain, "%s", p.domain);
	} else {
		/* <postmaster> (RFC 5321 §4.5.1): our first domain */
		snprintf(domain, sizeof domain, "%s",
		         cfg->nrelay_domains ? cfg->relay_domains[0] : hostname(s));
	}
	lower(domain);
	if (!mx_config_accepts_domain(cfg, domain) && !mx_config_can_relay(cfg, &s->client)) {
		s->srv->stats.relay_denied++;
		log_reject(s, "rcptto", 550, "relaying denied");
		reply_error(s, true, "550 5.7.1 Error: relaying denied");
		return;
	}
	if (s->limits->max_recipients && s->tx->nrcpts >= s->limits->max_recipients) {
		log_reject(s, "rcptto", 452, "too many recipients");
		reply_error(s, true, "452 4.5.3 Error: too many recipients");
		return;
	}
	char local[2 * SMTP_LOCAL_MAX + 3];
	if (!mx_local_canonical(p.local, local, sizeof local)) {
		reply_error(s, true, "501 5.5.4 Error: bad recipient address (too long)");
		return;
	}
	const char *targets;
	if (!known_recipient(cfg, local, domain, &targets)) {
		char why[sizeof local + SMTP_DOMAIN_MAX + 32];
		snprintf(why, sizeof why, "unknown recipient <%s@%s>", local, domain);
		s->srv->stats.unknown_rcpts++;
		log_reject(s, "rcptto", 550, why);
		reply_error(s, true, "550 5.1.1 Error: no such mailbox here");
		return;
	}
	if (!pending_new(s, MX_PHASE_RCPTTO) || !(s->pending->a = strdup(local)) ||
	    !(s->pending->b = strdup(domain)) ||
	    (targets && !(s->pending->targets = strdup(targets)))) {
		pending_free(s);
		reply(s, "451 4.3.0 Out of memory");
		return;
	}
	run_phase(s);
}

static void cmd_data(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	if (s->tx->bdat) {
		reply_error(s, false, "503 5.5.1 Error: DATA after BDAT");
		return;
	}
	if (s->tx->nrcpts == 0) {
		reply_error(s, true, "503 5.5.1 Error: no valid recipients");
		return;
	}
	start_message(s);
	reply_lit(s, "354 End data with <CR><LF>.<CR><LF>");
	enter_state(s, SMTP_STATE_DATA);
}

static void cmd_bdat(struct smtp_session *s, const struct smtp_command *c)
{
	const char *a = c->arg, *sp = memchr(a, ' ', c->arglen);
	size_t nl = sp ? (size_t)(sp - a) : c->arglen;
	uint64_t n;
	bool last = false;

	if (sp) {
		const char *r = sp;
		while (r < a + c->arglen && *r == ' ')
			r++;
		size_t rl = (size_t)(a + c->arglen - r);
		if (rl == 4 && strncasecmp(r, "LAST", 4) == 0)
			last = true;
		else
			nl = 0;
	}
	if (!parse_size(a, nl, &n)) {
		/* without a valid size the stream cannot be followed: close */
		reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		session_close(s);
		return;
	}
	s->chunk_left = n;
	s->chunk_last = last;
	s->chunk_err = 0;
	if (!s->tx)
		s->chunk_err = 1;
	else if (s->tx->nrcpts == 0)
		s->chunk_err = 2;
	else if (!s->tx->started) {
		s->tx->bdat = true;
		start_message(s);
	}
	enter_state(s, SMTP_STATE_BDAT);
}

static void bdat_chunk_done(struct smtp_session *s)
{
	enter_state(s, SMTP_STATE_READY);
	if (s->chunk_err == 1) {
		reply_error(s, false, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->chunk_err == 2) {
		reply_error(s, true, "503 5.5.1 Error: no valid recipients");
		return;
	}
	if (!s->chunk_last) {
		reply(s, "250 2.0.0 Ok: %llu octets", (unsigned long long)s->tx->size);
		return;
	}
	message_complete(s);
}

static void cmd_rset(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	tx_end(s);
	reply_lit(s, "250 2.0.0 Ok");
	if (s->srv->draining) {
		reply(s, "421 4.3.2 %s Service shutting down, closing connection", hostname(s));
		session_close(s);
	}
}

static void cmd_noop(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	reply_lit(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	reply_lit(s, "221 2.0.0 Bye");
	session_close(s);
}

static void cmd_vrfy(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_expn(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	reply(s, "502 5.5.1 Error: EXPN not supported");
}

static void cmd_help(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	reply(s, "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP%s",
	      s->srv->tls && !s->tls ? " STARTTLS" : "");
	reply(s, "214 2.0.0 See RFC 5321");
}

static void tls_start(struct smtp_session *s)
{
	SSL *ssl = SSL_new(s->srv->tls);
	struct bufferevent *tb;

	if (!ssl) {
		session_close(s);
		return;
	}
	/* Commands pipelined after STARTTLS are discarded (RFC 3207 §4.2). */
	in_drop(s);
	if (!s->bev) {
		/* TLS runs on libevent's OpenSSL filter over a socket bufferevent;
		 * the 220 and anything else not yet sent go into it first. */
		flush_now(s);
		if (s->state == SMTP_STATE_DEAD) {
			SSL_free(ssl);
			return;
		}
		struct bufferevent *sb = bufferevent_socket_new(s->srv->base, s->fd, BEV_OPT_CLOSE_ON_FREE);
		if (!sb) {
			SSL_free(ssl);
			io_fail(s);
			return;
		}
		rd_set(s, false);
		wr_set(s, false);
		if (s->olen)
			bufferevent_write(sb, s->obuf, s->olen);
		obuf_free(s);
		s->bev = sb;
		s->fd = -1;
		bufferevent_enable(sb, EV_READ);
	}
	/* the filter writes through the socket bufferevent: let it, up to
	 * SMTP_WRITE_HIGH at a time (out_queued) */
	bufferevent_enable(s->bev, EV_WRITE);
	bufferevent_setwatermark(s->bev, EV_WRITE, SMTP_WRITE_HIGH / 2, SMTP_WRITE_HIGH);
	tb = bufferevent_openssl_filter_new(s->srv->base, s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                    BEV_OPT_CLOSE_ON_FREE);
	if (!tb) {
		SSL_free(ssl);
		session_close(s);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	s->bev = tb;
	bufferevent_setcb(tb, on_read, on_write, on_event, s);
	bufferevent_setwatermark(tb, EV_READ, 0, SMTP_READ_HIGH);
	bufferevent_setwatermark(tb, EV_WRITE, SMTP_WRITE_HIGH / 2, 0);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	enter_state(s, SMTP_STATE_TLS);
}

static void cmd_starttls(struct smtp_session *s, const struct smtp_command *c)
{
	(void)c;
	if (!s->srv->tls) {
		reply_error(s, false, "502 5.5.1 Error: command not implemented (no TLS here)");
		return;
	}
	if (s->tls) {
		reply_error(s, false, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (s->tx) {
		reply_error(s, false, "503 5.5.1 Error: STARTTLS inside a transaction");
		return;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
	tls_start(s);
}

static const struct smtp_cmd_def {
	enum smtp_verb verb;
	bool (*check)(struct smtp_session *s);
	void (*proceed)(struct smtp_session *s, const struct smtp_command *c);
} commands[] = {
	{SMTP_VERB_HELO, check_any, cmd_helo},
	{SMTP_VERB_EHLO, check_any, cmd_helo},
	{SMTP_VERB_MAIL, check_mail, cmd_mail},
	{SMTP_VERB_RCPT, check_rcpt, cmd_rcpt},
	{SMTP_VERB_DATA, check_tx, cmd_data},
	{SMTP_VERB_BDAT, check_any, cmd_bdat},
	{SMTP_VERB_RSET, check_any, cmd_rset},
	{SMTP_VERB_NOOP, check_any, cmd_noop},
	{SMTP_VERB_QUIT, check_any, cmd_quit},
	{SMTP_VERB_VRFY, check_any, cmd_vrfy},
	{SMTP_VERB_EXPN, check_any, cmd_expn},
	{SMTP_VERB_HELP, check_any, cmd_help},
	{SMTP_VERB_STARTTLS, check_any, cmd_starttls},
};

static void dispatch(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_command c;
	enum smtp_parse_error e = smtp_parse_command(line, len, &c);

	switch (e) {
	case SMTP_PARSE_OK:
		break;
	case SMTP_PARSE_NUL:
		reply_error(s, false, "500 5.5.2 Error: NUL byte in command");
		return;
	case SMTP_PARSE_TOO_LONG:
		reply_error(s, false, "500 5.5.2 Error: line too long");
		return;
	case SMTP_PARSE_UNKNOWN:
		reply_error(s, false, "500 5.5.1 Error: command not recognized");
		return;
	default:
		reply_error(s, false, "501 5.5.4 Syntax error in parameters or arguments");
		return;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (commands[i].verb != c.verb)
			continue;
		if (commands[i].check(s))
			commands[i].proceed(s, &c);
		return;
	}
	abort(); /* every parsed verb has a table entry */
}

/* ------------------------------------------------------------------ */
/* input steps: each returns true when it consumed something           */

static void begin_session(struct smtp_session *s);

static bool step_proxy(struct smtp_session *s)
{
	const char *b;
	size_t len = in_view(s, &b);
	size_t n = len < PROXY_V2_MAX ? len : PROXY_V2_MAX;
	struct proxy_info pi;
	char c[IP_ADDR_TEXT_MAX];

	if (n == 0)
		return false;
	switch (proxy_parse((const uint8_t *)b, n, &pi)) {
	case PROXY_NEED_MORE:
		return false;
	case PROXY_OK:
		s->client = pi.src;
		s->port = pi.src_port;
		s->proxied = true;
		in_consume(s, pi.consumed);
		break;
	case PROXY_LOCAL:
		in_consume(s, pi.consumed);
		break;
	default:
		s->srv->stats.proxy_errors++;
		log_event(LOG_NOTICE, "proxy_error", "session=%u peer=%s reason=\"bad header\"", s->id,
		          client_text(s, c, sizeof c));
		schedule_free(s); /* no banner, nothing said */
		return false;
	}
	evtimer_del(s->timer);
	s->timer_kind = TIMER_NONE;
	begin_session(s);
	return true;
}

/* A command line ends with LF, a CR before it is part of the end. */
static bool step_line(struct smtp_session *s)
{
	const char *b;
	size_t len = in_view(s, &b);
	const char *lf = memchr(b, '\n', len);
	char line[SMTP_LINE_MAX + 1];

	if (!lf) {
		if (len > SMTP_LINE_MAX) { /* no end in sight: drop, answer at its end */
			in_consume(s, len);
			s->skip_line = true;
		}
		return false;
	}
	size_t n = (size_t)(lf - b), eol_len = 1;
	if (n > 0 && b[n - 1] == '\r') {
		n--;
		eol_len = 2;
	}
	if (s->skip_line || n > SMTP_LINE_MAX - 2) {
		in_consume(s, n + eol_len);
		s->skip_line = false;
		reply_error(s, false, "500 5.5.2 Error: line too long");
		return true;
	}
	memcpy(line, b, n);
	line[n] = '\0';
	in_consume(s, n + eol_len);
	dispatch(s, line, n);
	return true;
}

static bool step_data(struct smtp_session *s)
{
	const char *b;
	size_t len = in_view(s, &b);
	const char *lf = memchr(b, '\n', len);

	if (!lf) {
		if (len < SMTP_DATA_CHUNK)
			return false;
		/* a long line: take a chunk, but keep a trailing CR for its LF */
		size_t n = SMTP_DATA_CHUNK;
		if (b[n - 1] == '\r')
			n--;
		data_line(s, b, n, false);
		in_consume(s, n);
		return true;
	}
	size_t n = (size_t)(lf - b) + 1;
	data_line(s, b, n, true);
	in_consume(s, n);
	return true;
}

static bool step_bdat(struct smtp_session *s)
{
	const char *b;
	size_t len = in_view(s, &b);

	if (s->chunk_left == 0) {
		bdat_chunk_done(s);
		return true;
	}
	if (len == 0)
		return false;
	size_t n = len < s->chunk_left ? len : (size_t)s->chunk_left;
	if (s->chunk_err == 0)
		body_add(s, b, n);
	in_consume(s, n);
	s->chunk_left -= n;
	if (s->chunk_left == 0)
		bdat_chunk_done(s);
	return true;
}

static void arm_idle(struct smtp_session *s)
{
	unsigned t;

	switch (s->state) {
	case SMTP_STATE_HELO:
	case SMTP_STATE_READY:
	case SMTP_STATE_TLS:
		t = s->limits->idle_time;
		break;
	case SMTP_STATE_DATA:
	case SMTP_STATE_BDAT:
		t = s->limits->data_time ? s->limits->data_time : s->limits->idle_time;
		break;
	default:
		return;
	}
	if (!t) {
		if (s->timer_kind == TIMER_IDLE) {
			evtimer_del(s->timer);
			s->timer_kind = TIMER_NONE;
		}
		return;
	}
	/* Called after every processing step: move the deadline only, and
	 * re-add the timer only when it is not armed or would fire too late
	 * (on_timer re-arms an early one for the rest). */
	uint64_t due = mx_now_ms() + t * 1000ull;
	s->idle_due = due;
	if (s->timer_kind == TIMER_IDLE && s->timer_due <= due && evtimer_pending(s->timer, NULL))
		return;
	s->timer_due = due;
	arm_timer(s, TIMER_IDLE, t * 1000u);
}

static void session_process(struct smtp_session *s)
{
	bool progress = true;

	s->in_process = true;
	while (progress && !s->waiting) {
		/* Replies pile up when a client pipelines and never reads: send
		 * them now, and stop parsing only when the peer does not take
		 * them, until its output drains (on_write, on_sock_write). */
		if (out_queued(s) > SMTP_WRITE_HIGH) {
			flush_now(s);
			if (out_queued(s) > SMTP_WRITE_HIGH / 2 || s->state == SMTP_STATE_DEAD) {
				s->out_blocked = true;
				break;
			}
		}
		switch (s->state) {
		case SMTP_STATE_PROXY:
			progress = step_proxy(s);
			break;
		case SMTP_STATE_HELO:
		case SMTP_STATE_READY:
			progress = step_line(s);
			break;
		case SMTP_STATE_DATA:
			progress = step_data(s);
			break;
		case SMTP_STATE_BDAT:
			progress = step_bdat(s);
			break;
		default:
			progress = false;
			break;
		}
	}
	s->in_process = false;
	flush_now(s);
	if (!in_keep(s))
		io_fail(s);
	if (!s->bev && s->state != SMTP_STATE_CLOSING && s->state != SMTP_STATE_DEAD)
		rd_set(s, s->in_n < SMTP_READ_HIGH); /* more input only while there is room */
	if (!s->waiting && s->state != SMTP_STATE_PROXY)
		arm_idle(s);
}

/* ------------------------------------------------------------------ */
/* events                                                              */

/* Plain socket readable: one read, into io_rbuf behind a small leftover
 * (a partial line), or into ibuf behind a large one (input that piled up
 * while a phase waited). EOF and errors end the session. */
static void on_sock_read(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	char *dst;
	size_t room;
	ssize_t r;
	bool loop = s->in_n <= SMTP_KEEP_SMALL;

	(void)what;
	if (s->state == SMTP_STATE_CLOSING || s->state == SMTP_STATE_DEAD) {
		rd_set(s, false);
		return;
	}
	if (loop) {
		if (s->in_n)
			memcpy(io_rbuf, s->in_p, s->in_n);
		dst = io_rbuf + s->in_n;
		room = sizeof io_rbuf - s->in_n;
	} else {
		if (s->icap - s->in_n < SMTP_READ_CHUNK) {
			char *b = realloc(s->ibuf, (size_t)s->in_n + SMTP_READ_CHUNK);
			if (!b) {
				io_fail(s);
				return;
			}
			s->ibuf = b;
			s->in_p = b;
			s->icap = s->in_n + SMTP_READ_CHUNK;
		}
		dst = s->ibuf + s->in_n;
		room = s->icap - s->in_n;
	}
	do
		r = recv(fd, dst, room, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return; /* the leftover is still where in_p says */
	if (r <= 0) {
		if (s->state == SMTP_STATE_PROXY && s->in_n > 0) { /* a header cut short */
			char c[IP_ADDR_TEXT_MAX];
			s->srv->stats.proxy_errors++;
			log_event(LOG_NOTICE, "proxy_error", "session=%u peer=%s reason=\"closed in the header\"",
			          s->id, client_text(s, c, sizeof c));
		}
		s->lost = true;
		schedule_free(s);
		return;
	}
	if (loop) {
		s->in_p = io_rbuf;
		s->in_loop_buf = true;
	}
	s->in_n += (uint32_t)r;
	if (s->state == SMTP_STATE_CONNECT && !s->early_talker) {
		s->early_talker = true;
		s->srv->stats.early_talkers++;
	}
	session_process(s);
}

/* Plain socket writable again: only enabled while obuf holds output. */
static void on_sock_write(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)fd;
	(void)what;
	flush_now(s);
	if (s->state == SMTP_STATE_CLOSING) {
		closing_check(s);
	} else if (s->out_blocked && s->state != SMTP_STATE_DEAD &&
	           s->olen <= SMTP_WRITE_HIGH / 2) {
		s->out_blocked = false;
		if (!s->in_process)
			session_process(s);
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	(void)bev;
	if (s->state == SMTP_STATE_DEAD || s->state == SMTP_STATE_CLOSING) {
		in_drop(s);
		return;
	}
	if (s->state == SMTP_STATE_CONNECT && !s->early_talker) {
		s->early_talker = true;
		s->srv->stats.early_talkers++;
	}
	session_process(s);
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	(void)bev;
	if (s->state == SMTP_STATE_CLOSING) {
		closing_check(s);
	} else if (s->out_blocked && s->state != SMTP_STATE_DEAD) {
		s->out_blocked = false;
		if (!s->in_process)
			session_process(s);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	char c[IP_ADDR_TEXT_MAX];

	(void)bev;
	if (s->state == SMTP_STATE_DEAD)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
		s->tls = true;
		s->srv->stats.tls++;
		helo_set(s, NULL);
		s->esmtp = false;
		log_event(LOG_INFO, "tls", "session=%u client=%s protocol=%s cipher=%s", s->id,
		          client_text(s, c, sizeof c), ssl ? SSL_get_version(ssl) : "?",
		          ssl ? SSL_get_cipher_name(ssl) : "?");
		enter_state(s, SMTP_STATE_HELO);
		session_process(s);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (s->state == SMTP_STATE_TLS)
			log_event(LOG_NOTICE, "tls_error", "session=%u client=%s", s->id,
			          client_text(s, c, sizeof c));
		s->lost = s->state != SMTP_STATE_CLOSING;
		schedule_free(s);
	}
}

static void session_free(struct smtp_session *s);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;
	char c[IP_ADDR_TEXT_MAX];

	(void)fd;
	(void)what;
	switch (s->timer_kind) {
	case TIMER_FREE:
		session_free(s);
		return;
	case TIMER_PROXY:
		s->srv->stats.proxy_errors++;
		log_event(LOG_NOTICE, "proxy_error", "session=%u peer=%s reason=\"timeout\"", s->id,
		          client_text(s, c, sizeof c));
		schedule_free(s);
		return;
	case TIMER_IDLE: {
		uint64_t now = mx_now_ms();
		s->timer_kind = TIMER_NONE;
		if (s->waiting)
			return; /* no idle limit while a phase waits; re-armed after it */
		if (now < s->idle_due) { /* input came since it was armed */
			s->timer_due = s->idle_due;
			arm_timer(s, TIMER_IDLE, (unsigned)(s->idle_due - now));
			return;
		}
		log_event(LOG_INFO, "timeout", "session=%u client=%s state=%s", s->id,
		          client_text(s, c, sizeof c), state_names[s->state]);
		if (s->state == SMTP_STATE_TLS) {
			schedule_free(s);
			return;
		}
		reply(s, "421 4.4.2 %s Error: timeout exceeded", hostname(s));
		session_close(s);
		return;
	}
	case TIMER_TARPIT:
		s->timer_kind = TIMER_NONE;
		s->srv->stats.tarpitted_now--;
		s->in_tarpit = false;
		s->pending->v.tarpit = 0;
		phase_finish(s);
		return;
	case TIMER_LINGER:
		closing_check(s);
		return;
	default:
		return;
	}
}

/* ------------------------------------------------------------------ */
/* birth and death                                                     */

/* After the PROXY header (if any): count, log, connect policy. */
static void begin_session(struct smtp_session *s)
{
	char c[IP_ADDR_TEXT_MAX];

	if (s->srv->audit) {
		if (!audit_live_add(s->srv->audit, &s->client, smtp_session_listener(s))) {
			/* out of memory: listener numbers stay in range (server.c) */
			log_event(LOG_ERR, "audit_error", "session=%u client=%s reason=\"out of memory\"",
			          s->id, client_text(s, c, sizeof c));
			reply(s, "421 4.3.2 %s Service temporarily unavailable", hostname(s));
			session_close(s);
			return;
		}
		s->in_audit = true;
	}
	s->begun = true; /* counted: its disconnect line will pair with a connect line */
	audit_count(s, AUDIT_CONNECTIONS);
	if (log_enabled(LOG_INFO))
		log_event(LOG_INFO, "connect", "session=%u client=%s port=%u listener=%s proxied=%s",
		          s->id, client_text(s, c, sizeof c), s->port,
		          s->listener ? s->listener->address : "-", s->proxied ? "yes" : "no");
	enter_state(s, SMTP_STATE_CONNECT);
	if (!pending_new(s, MX_PHASE_CONNECT)) {
		reply(s, "421 4.3.0 %s Out of memory", hostname(s));
		session_close(s);
		return;
	}
	run_phase(s);
}

/* The limits of the Listen entry this listener was opened for, in the
 * session's config; a listener that a reload is removing falls back to the
 * first entry's. PROXY settings belong to the socket itself. */
static const struct mx_limits *find_limits(const struct mx_config *cfg,
                                           const struct net_listener *l, unsigned *proxy_timeout,
                                           bool *proxy)
{
	*proxy = l ? l->proxy : false;
	*proxy_timeout = l && l->proxy_timeout ? l->proxy_timeout : 5;
	for (size_t i = 0; l && i < cfg->nlistens; i++)
		if (strcmp(cfg->listens[i].address, l->address) == 0)
			return &cfg->listens[i].limits;
	return cfg->nlistens ? &cfg->listens[0].limits : &default_limits;
}

/* A registered session without a transport yet; NULL when out of memory. */
static struct smtp_session *session_new(struct smtp_server *srv, struct net_listener *listener,
                                        const struct ip_addr *client, uint16_t port,
                                        unsigned *ptimeout)
{
	/* The timer and the socket events live in the same allocation: fewer
	 * mallocs per session (tarpitted sessions are many and must stay small). */
	size_t evsz = event_get_struct_event_size();
	struct smtp_session *s = calloc(1, sizeof *s + 3 * evsz);
	bool lproxy;

	if (!s)
		return NULL;
	s->srv = srv;
	s->cfg = srv->cfg;
	s->limits = find_limits(CFG(s), listener, ptimeout, &lproxy);
	s->timer = (struct event *)(s + 1);
	s->rev = (struct event *)((char *)(s + 1) + evsz);
	s->wev = (struct event *)((char *)(s + 1) + 2 * evsz);
	s->fd = -1;
	if (evtimer_assign(s->timer, srv->base, on_timer, s) < 0) {
		free(s);
		return NULL;
	}
	smtp_cfgref_ref(s->cfg);
	/* Like the config: a reload while the session runs does not change the
	 * scripts its phases run. */
	s->policy = srv->policy;
	if (s->policy)
		policy_ref(s->policy);
	s->listener = listener;
	if (listener) {
		net_listener_ref(listener);
		listener->nsessions++;
	}
	s->client = *client;
	s->port = port;
	s->id = ++session_ids;
	s->start_ms = mx_now_ms();
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	srv->stats.connections++;
	return s;
}

/* The transport is ready: PROXY header first, or the session proper. */
static void session_begin_io(struct smtp_session *s, bool proxy, unsigned ptimeout)
{
	if (proxy) {
		s->state = SMTP_STATE_PROXY;
		arm_timer(s, TIMER_PROXY, ptimeout * 1000u);
		return;
	}
	begin_session(s);
}

struct smtp_session *smtp_session_start(struct smtp_server *srv, struct bufferevent *bev,
                                        struct net_listener *listener,
                                        const struct ip_addr *client, uint16_t port,
                                        bool proxy)
{
	unsigned ptimeout = 5;
	struct smtp_session *s = session_new(srv, listener, client, port, &ptimeout);

	if (!s) {
		bufferevent_free(bev);
		return NULL;
	}
	s->bev = bev;
	bufferevent_setcb(bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(bev, EV_READ, 0, SMTP_READ_HIGH);
	bufferevent_setwatermark(bev, EV_WRITE, SMTP_WRITE_HIGH / 2, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	session_begin_io(s, proxy, ptimeout);
	return s;
}

/* Connections refused at a concurrency cap: one line at once, then at most
 * one every CAP_LOG_MS with the count since the last line (a flood must
 * not flood the log; the metric counts every one). */
#define CAP_LOG_MS 10000
static void cap_log(struct smtp_server *srv, const struct net_listener *l, bool at_listener)
{
	uint64_t now = mx_now_ms();
	srv->cap_unlogged++;
	if (srv->cap_logged_ms != 0 && now - srv->cap_logged_ms < CAP_LOG_MS)
		return;
	log_event(LOG_WARNING, "concurrency_limit",
	          "listener=%s limit=%s sessions=%u refused=%llu note=\"421 4.4.5 to new "
	          "connections; refused counts those since the last line\"",
	          l && l->address ? l->address : "-",
	          at_listener ? "Listener_Sessions" : "Service_Sessions",
	          at_listener ? l->nsessions : srv->nsessions,
	          (unsigned long long)srv->cap_unlogged);
	srv->cap_logged_ms = now;
	srv->cap_unlogged = 0;
}

void smtp_session_accept(struct smtp_server *srv, struct net_listener *l, int fd,
                         const struct sockaddr *sa, int socklen)
{
	const struct mx_config *cfg = srv->cfg->cfg;
	unsigned ptimeout;
	bool proxy;
	const struct mx_limits *lim = find_limits(cfg, l, &ptimeout, &proxy);
	struct ip_addr client;
	uint16_t port = 0;

	(void)socklen;
	if (srv->draining) {
		close(fd);
		return;
	}
	bool at_listener = lim->listener_sessions && l && l->nsessions >= lim->listener_sessions;
	if (at_listener || (cfg->service_sessions && srv->nsessions >= cfg->service_sessions)) {
		/* Answered without a session: costs one write and a close. */
		ssize_t w = send(fd, cap_reply, sizeof cap_reply - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)w;
		srv->stats.cap_refused++;
		close(fd);
		cap_log(srv, l, at_listener);
		return;
	}
	if (!ip_addr_from_sockaddr(sa, &client, &port)) {
		close(fd);
		return;
	}
	/* The socket is non-blocking (the listener accepts with SOCK_NONBLOCK)
	 * and is read and written by the session itself, no bufferevent. */
	struct smtp_session *s = session_new(srv, l, &client, port, &ptimeout);
	if (!s) {
		close(fd);
		return;
	}
	s->fd = fd;
	event_assign(s->rev, srv->base, fd, EV_READ | EV_PERSIST, on_sock_read, s);
	event_assign(s->wev, srv->base, fd, EV_WRITE | EV_PERSIST, on_sock_write, s);
	rd_set(s, true);
	session_begin_io(s, proxy, ptimeout);
}

static void session_free(struct smtp_session *s)
{
	struct smtp_server *srv = s->srv;
	char c[IP_ADDR_TEXT_MAX];

	if (s->in_tarpit)
		srv->stats.tarpitted_now--;
	smtp_policy_cancel(s);
	pending_free(s);
	if (s->tx && s->tx->job) {
		deliver_abandon(srv->deliver, s->tx->job);
		s->tx->job = NULL;
	}
	tx_end(s);
	if (s->in_audit)
		audit_live_remove(srv->audit, &s->client, smtp_session_listener(s));
	/* (a connection that ended before or in its PROXY header was never a
	 * session: no connect line, no disconnect line) */
	if (s->begun && log_enabled(LOG_INFO))
		log_event(LOG_INFO, "disconnect",
		          "session=%u client=%s messages=%u rcpts=%u errors=%u lost=%s duration_ms=%llu",
		          s->id, client_text(s, c, sizeof c), s->nmsgs, s->nrcpts, s->errors,
		          s->lost ? "yes" : "no", (unsigned long long)(mx_now_ms() - s->start_ms));
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	srv->nsessions--;
	if (s->listener) {
		s->listener->nsessions--;
		net_listener_unref(s->listener);
	}
	if (s->bev) {
		bufferevent_free(s->bev);
	} else {
		rd_set(s, false);
		wr_set(s, false);
		obuf_free(s);
		in_drop(s);
		if (s->fd >= 0)
			close(s->fd);
	}
	event_del(s->timer);
	helo_set(s, NULL);
	policy_unref(s->policy);
	smtp_cfgref_unref(s->cfg);
	free(s);
	if (srv->draining && srv->nsessions == 0 && srv->on_drained)
		srv->on_drained(srv);
}

void smtp_server_drain(struct smtp_server *srv)
{
	srv->draining = true;
	for (struct smtp_session *s = srv->sessions; s; s = s->next) {
		switch (s->state) {
		case SMTP_STATE_PROXY:
		case SMTP_STATE_TLS:
			schedule_free(s);
			break;
		case SMTP_STATE_CONNECT: /* banner not sent yet (tarpit): nothing in flight */
			reply(s, "421 4.3.2 %s Service shutting down, closing connection", hostname(s));
			session_close(s);
			break;
		case SMTP_STATE_HELO:
		case SMTP_STATE_READY:
			if (s->tx || s->waiting)
				break; /* finishes its transaction first */
			reply(s, "421 4.3.2 %s Service shutting down, closing connection", hostname(s));
			session_close(s);
			break;
		default:
			break;
		}
	}
	if (srv->nsessions == 0 && srv->on_drained)
		srv->on_drained(srv);
}

void smtp_server_close_all(struct smtp_server *srv)
{
	srv->draining = true;
	for (struct smtp_session *s = srv->sessions; s; s = s->next) {
		if (s->state == SMTP_STATE_CLOSING || s->state == SMTP_STATE_DEAD)
			continue;
		if (s->state == SMTP_STATE_PROXY || s->state == SMTP_STATE_TLS) {
			schedule_free(s);
			continue;
		}
		reply(s, "421 4.3.2 %s Service shutting down, closing connection", hostname(s));
		session_close(s);
	}
}

/* ------------------------------------------------------------------ */
/* views                                                               */

const struct ip_addr *smtp_session_client(const struct smtp_session *s)
{
	return &s->client;
}

unsigned smtp_session_listener(const struct smtp_session *s)
{
	return s->listener ? s->listener->index : 0;
}

const char *smtp_session_helo(const struct smtp_session *s)
{
	return s->pending && s->pending->phase == MX_PHASE_EHLO ? s->pending->a : s->helo;
}

const char *smtp_session_mail_from(const struct smtp_session *s)
{
	return s->tx ? s->tx->mail_from : NULL;
}

bool smtp_session_early_talker(const struct smtp_session *s)
{
	return s->early_talker;
}

bool smtp_session_tls(const struct smtp_session *s)
{
	return s->tls;
}

struct smtp_server *smtp_session_server(const struct smtp_session *s)
{
	return s->srv;
}

const struct mx_config *smtp_session_config(const struct smtp_session *s)
{
	return s->cfg->cfg;
}

struct policy *smtp_session_policy(const struct smtp_session *s)
{
	return s->policy;
}

uint16_t smtp_session_port(const struct smtp_session *s)
{
	return s->port;
}

unsigned smtp_session_id(const struct smtp_session *s)
{
	return s->id;
}

const char *smtp_session_listener_name(const struct smtp_session *s)
{
	return s->listener ? s->listener->address : "";
}

const char *smtp_session_sender(const struct smtp_session *s)
{
	if (s->pending && s->pending->phase == MX_PHASE_MAILFROM)
		return s->pending->a;
	return s->tx ? s->tx->mail_from : NULL;
}

bool smtp_session_rcpt(const struct smtp_session *s, size_t i, const char **local,
                       const char **domain)
{
	size_t n = s->tx ? s->tx->nrcpts : 0;

	if (i < n) {
		*local = s->tx->rcpts[i].local;
		*domain = s->tx->rcpts[i].domain;
		return true;
	}
	if (i == n && s->pending && s->pending->phase == MX_PHASE_RCPTTO && s->pending->a) {
		*local = s->pending->a;
		*domain = s->pending->b ? s->pending->b : "";
		return true;
	}
	return false;
}

bool smtp_session_message(const struct smtp_session *s, const char **data, size_t *len,
                          uint64_t *size)
{
	if (!s->tx || !s->tx->buf)
		return false;
	*data = s->tx->buf;
	*len = s->tx->len;
	*size = s->tx->size;
	return true;
}

void smtp_session_counts(const struct smtp_session *s, unsigned *messages, unsigned *rcpts,
                         unsigned *message_rcpts)
{
	*messages = s->nmsgs;
	*rcpts = s->nrcpts;
	*message_rcpts = s->tx ? (unsigned)s->tx->nrcpts : 0;
}

struct smtp_policy_state **smtp_session_policy_slot(struct smtp_session *s)
{
	return &s->pol;
}
