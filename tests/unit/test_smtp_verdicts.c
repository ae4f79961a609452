/*
 * test_smtp_verdicts: the session's handling of policy verdicts: tarpit
 * delay, replacement replies (multi-line), disconnect, discard, and a
 * policy that completes later while pipelined commands wait.
 *
 * This file defines every smtp_policy_* function itself, so the
 * linker never pulls src/smtp/smtp_policy.o out of libmx.a: a link-time
 * seam, with no hook in the server.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conf/config.h"
#include "net/listener.h"
#include "smtp/smtp_policy.h"
#include "smtp/smtp_server.h"
#include "smtp/smtp_session.h"
#include "util/log.h"
#include "unit.h"

/* ---- the fake policy ---- */
struct plan {
	unsigned code;
	const char *status, *text;
	unsigned tarpit;
	bool disconnect, discard;
	bool set;
};
static struct plan plan[MX_PHASE_COUNT];
static bool async_mode;
static unsigned runs[MX_PHASE_COUNT];
static struct event_base *base;
static bool early_seen;

struct later {
	struct smtp_session *s;
	smtp_policy_done_fn done;
	enum mx_phase phase;
};

static void fill(enum mx_phase phase, struct smtp_verdict *v)
{
	memset(v, 0, sizeof *v);
	if (!plan[phase].set)
		return;
	v->code = plan[phase].code;
	if (plan[phase].status)
		snprintf(v->status, sizeof v->status, "%s", plan[phase].status);
	v->text = plan[phase].text ? strdup(plan[phase].text) : NULL;
	v->tarpit = plan[phase].tarpit;
	v->disconnect = plan[phase].disconnect;
	v->discard = plan[phase].discard;
}

static void complete_later(evutil_socket_t fd, short what, void *arg)
{
	struct later *l = arg;
	struct smtp_verdict v;
	(void)fd;
	(void)what;
	fill(l->phase, &v);
	l->done(l->s, &v);
	free(l);
}

void smtp_policy_run(struct smtp_session *s, enum mx_phase phase, smtp_policy_done_fn done)
{
	struct smtp_verdict v;

	runs[phase]++;
	if (async_mode) {
		struct later *l = malloc(sizeof *l);
		struct timeval tv = {0, 50000};
		l->s = s;
		l->done = done;
		l->phase = phase;
		event_base_once(base, -1, EV_TIMEOUT, complete_later, l, &tv);
		return;
	}
	fill(phase, &v);
	if (phase == MX_PHASE_CONNECT && v.tarpit)
		early_seen = false;
	done(s, &v);
}

void smtp_policy_cancel(struct smtp_session *s)
{
	(void)s;
}

void smtp_policy_message_end(struct smtp_session *s)
{
	(void)s;
}

void smtp_verdict_clear(struct smtp_verdict *v)
{
	free(v->text);
	memset(v, 0, sizeof *v);
}

/* ---- rig ---- */
static const char conf_text[] =
	"Hostname = \"mx.unit.test\"\n"
	"Relay_Domains = ( \"example.test\" )\n"
	"Maildir = \"/tmp/unit-maildir\"\n"
	"ESMTP_Listener { Listen \"127.0.0.1:32097\" { } }\n";

static struct smtp_server srv;
static struct net_listener listener;

static void reset(void)
{
	memset(plan, 0, sizeof plan);
	memset(runs, 0, sizeof runs);
	async_mode = false;
}

static double now_s(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* Send `in` at once, then run the loop until the session is gone or `secs`
 * passed; returns the transcript and the time the first byte arrived. */
static char *talk(const char *in, double secs, double *first_reply, bool *early)
{
	struct bufferevent *pair[2];
	struct ip_addr peer;
	double t0 = now_s(), deadline = t0 + secs;
	struct smtp_session *s;

	ip_addr_parse("192.0.2.20", &peer);
	bufferevent_pair_new(base, 0, pair);
	bufferevent_enable(pair[0], EV_READ | EV_WRITE);
	s = smtp_session_start(&srv, pair[1], &listener, &peer, 1, false);
	(void)s;
	bufferevent_write(pair[0], in, strlen(in));
	*first_reply = -1;
	while (now_s() < deadline && srv.nsessions) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		if (*first_reply < 0 && evbuffer_get_length(bufferevent_get_input(pair[0])))
			*first_reply = now_s() - t0;
		if (early && srv.sessions)
			*early = smtp_session_early_talker(s);
		struct timeval tv = {0, 2000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	struct evbuffer *got = bufferevent_get_input(pair[0]);
	size_t n = evbuffer_get_length(got);
	if (*first_reply < 0 && n)
		*first_reply = now_s() - t0; /* it all happened in the last round */
	char *out = malloc(n + 1);
	evbuffer_remove(got, out, n);
	out[n] = '\0';
	bufferevent_flush(pair[0], EV_WRITE, BEV_FINISHED);
	bufferevent_free(pair[0]);
	for (int i = 0; i < 20 && srv.nsessions; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK_EQ(srv.nsessions, 0);
	return out;
}

UNIT_TEST(tarpit_delays_banner_and_catches_early_talker)
{
	double first;
	bool early = false;

	reset();
	plan[MX_PHASE_CONNECT] = (struct plan){.tarpit = 1, .set = true};
	char *t = talk("EHLO hasty\r\nQUIT\r\n", 3, &first, &early);
	CHECK(first >= 0.95 && first < 2.0);
	if (!(first >= 0.95 && first < 2.0))
		fprintf(stderr, "  first reply after %.3f s\n%s\n", first, t);
	CHECK(strncmp(t, "220 ", 4) == 0);
	CHECK(strstr(t, "221 2.0.0") != NULL);
	CHECK(early);
	CHECK_EQ(srv.stats.early_talkers, 1);
	free(t);
}

UNIT_TEST(connect_refusal_disconnects)
{
	double first;

	reset();
	plan[MX_PHASE_CONNECT] = (struct plan){.code = 554, .status = "5.7.1",
	                                           .text = "go away\nreally", .set = true};
	char *t = talk("EHLO x\r\n", 2, &first, NULL);
	CHECK_STR(t, "554-5.7.1 go away\r\n554 5.7.1 really\r\n");
	free(t);
}

UNIT_TEST(rcpt_reply_replaced_and_ehlo_disconnect)
{
	double first;

	reset();
	plan[MX_PHASE_RCPTTO] = (struct plan){.code = 451, .text = "slow down", .set = true};
	char *t = talk("EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<u@example.test>\r\nQUIT\r\n", 2,
	               &first, NULL);
	CHECK(strstr(t, "250 2.1.0 Ok\r\n451 4.7.1 slow down\r\n221 2.0.0 Bye\r\n") != NULL);
	free(t);

	reset();
	plan[MX_PHASE_EHLO] = (struct plan){.code = 421, .status = "4.7.0", .text = "bye",
	                                        .disconnect = true, .set = true};
	t = talk("EHLO x\r\nNOOP\r\n", 2, &first, NULL);
	CHECK(strstr(t, "421 4.7.0 bye\r\n") != NULL);
	CHECK(strstr(t, "250 2.0.0") == NULL); /* NOOP never ran */
	free(t);
}

UNIT_TEST(data_discard_answers_250_without_delivery)
{
	double first;

	reset();
	plan[MX_PHASE_DATA] = (struct plan){.discard = true, .set = true};
	char *t = talk("EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n"
	               "hi\r\n.\r\nQUIT\r\n", 2, &first, NULL);
	/* without discard, no delivery means 451 */
	CHECK(strstr(t, "250 2.0.0 Ok: queued as ") != NULL);
	CHECK(strstr(t, "451") == NULL);
	free(t);
}

UNIT_TEST(async_policy_keeps_pipelined_order)
{
	double first;

	reset();
	async_mode = true;
	plan[MX_PHASE_RCPTTO] = (struct plan){.code = 550, .text = "no such user", .set = true};
	char *t = talk("EHLO x\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<u@example.test>\r\n"
	               "NOOP\r\nRSET\r\nQUIT\r\n", 3, &first, NULL);
	const char *want_tail = "250 2.1.0 Ok\r\n550 5.7.1 no such user\r\n250 2.0.0 Ok\r\n"
	                        "250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n";
	size_t n = strlen(t), w = strlen(want_tail);
	CHECK(n > w && strcmp(t + n - w, want_tail) == 0);
	if (!(n > w && strcmp(t + n - w, want_tail) == 0))
		fprintf(stderr, "transcript:\n%s\n", t);
	CHECK_EQ(runs[MX_PHASE_CONNECT], 1);
	CHECK_EQ(runs[MX_PHASE_EHLO], 1);
	CHECK_EQ(runs[MX_PHASE_MAILFROM], 1);
	CHECK_EQ(runs[MX_PHASE_RCPTTO], 1);
	free(t);
}

UNIT_TEST(disconnect_while_tarpitted)
{
	struct bufferevent *pair[2];
	struct ip_addr peer;

	reset();
	plan[MX_PHASE_CONNECT] = (struct plan){.tarpit = 30, .set = true};
	ip_addr_parse("192.0.2.21", &peer);
	bufferevent_pair_new(base, 0, pair);
	smtp_session_start(&srv, pair[1], &listener, &peer, 1, false);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK_EQ(srv.nsessions, 1);
	bufferevent_flush(pair[0], EV_WRITE, BEV_FINISHED);
	bufferevent_free(pair[0]);
	for (int i = 0; i < 20 && srv.nsessions; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK_EQ(srv.nsessions, 0);
}

int main(void)
{
	char *errs = NULL;
	struct mx_config *cfg = mx_config_load_text("/tmp/unit.conf", conf_text,
	                                             sizeof conf_text - 1, &errs);
	if (!cfg) {
		fprintf(stderr, "%s", errs ? errs : "config?\n");
		return 1;
	}
	free(errs);
	log_set_level(LOG_WARNING);
	base = event_base_new();
	srv.base = base;
	srv.cfg = smtp_cfgref_new(cfg);
	listener.address = (char *)"127.0.0.1:32097";
	listener.refs = 1;
	int rc = unit_run();
	smtp_cfgref_unref(srv.cfg);
	event_base_free(base);
	return rc;
}
