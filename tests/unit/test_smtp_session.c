/*
 * test_smtp_session: dialogues with the real session state machine over a
 * libevent bufferevent pair (no sockets). Delivery is absent, so a complete
 * message is answered 451; everything before it is the real thing:
 * pipelining across any read boundary, smuggling refusals, BDAT framing,
 * PROXY headers, limits.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conf/config.h"
#include "net/listener.h"
#include "smtp/smtp_server.h"
#include "smtp/smtp_session.h"
#include "util/log.h"
#include "unit.h"

static const char conf_text[] =
	"Hostname = \"mx.unit.test\"\n"
	"Relay_Domains = ( \"example.test\" )\n"
	"Max_Message_Size = 2K\n"
	"Max_Recipients_Per_Message = 2\n"
	"Max_Errors = 6\n"
	"Maildir = \"/tmp/unit-maildir\"\n"
	"ESMTP_Listener { Listen \"127.0.0.1:32099\" { } }\n";

struct rig {
	struct event_base *base;
	struct smtp_server srv;
	struct net_listener listener;
};

static void rig_init(struct rig *r, const char *extra)
{
	char *errs = NULL, text[2048];

	memset(r, 0, sizeof *r);
	log_set_level(LOG_WARNING);
	snprintf(text, sizeof text, "%s%s", conf_text, extra ? extra : "");
	struct mx_config *cfg = mx_config_load_text("/tmp/unit.conf", text, strlen(text), &errs);
	if (!cfg) {
		fprintf(stderr, "config: %s\n", errs ? errs : "?");
		abort();
	}
	free(errs);
	r->base = event_base_new();
	r->srv.base = r->base;
	r->srv.cfg = smtp_cfgref_new(cfg);
	r->listener.address = (char *)"127.0.0.1:32099";
	r->listener.refs = 1;
}

static void rig_free(struct rig *r)
{
	for (int i = 0; i < 50 && r->srv.nsessions; i++)
		event_base_loop(r->base, EVLOOP_NONBLOCK);
	CHECK_EQ(r->srv.nsessions, 0);
	CHECK_EQ(r->listener.nsessions, 0);
	smtp_cfgref_unref(r->srv.cfg);
	event_base_free(r->base);
}

/* Run a dialogue: send `in` in pieces of `step` bytes, return what came back. */
static char *talk(struct rig *r, const char *in, size_t len, size_t step, bool proxy)
{
	struct bufferevent *pair[2];
	struct ip_addr peer;

	ip_addr_parse("192.0.2.10", &peer);
	bufferevent_pair_new(r->base, 0, pair);
	bufferevent_enable(pair[0], EV_READ | EV_WRITE);
	smtp_session_start(&r->srv, pair[1], &r->listener, &peer, 1234, proxy);
	for (size_t off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step;
		bufferevent_write(pair[0], in + off, n);
		event_base_loop(r->base, EVLOOP_NONBLOCK);
	}
	for (int i = 0; i < 10; i++)
		event_base_loop(r->base, EVLOOP_NONBLOCK);
	struct evbuffer *got = bufferevent_get_input(pair[0]);
	size_t n = evbuffer_get_length(got);
	char *out = malloc(n + 1);
	evbuffer_remove(got, out, n);
	out[n] = '\0';
	bufferevent_flush(pair[0], EV_WRITE, BEV_FINISHED); /* EOF to the session */
	bufferevent_free(pair[0]);
	for (int i = 0; i < 10; i++)
		event_base_loop(r->base, EVLOOP_NONBLOCK);
	return out;
}

/* The reply codes of a transcript, e.g. "220 250 250 354 550". */
static void codes(const char *t, char *out, size_t len)
{
	size_t o = 0;
	out[0] = '\0';
	for (const char *p = t; *p && o + 5 < len;) {
		if (p[3] == ' ') {
			if (o)
				out[o++] = ' ';
			memcpy(out + o, p, 3);
			o += 3;
			out[o] = '\0';
		}
		const char *nl = strstr(p, "\r\n");
		if (!nl)
			break;
		p = nl + 2;
	}
}

static void dialogue(const char *extra, const char *in, size_t step, bool proxy, const char *want)
{
	struct rig r;
	char got[512];

	rig_init(&r, extra);
	char *t = talk(&r, in, strlen(in), step, proxy);
	codes(t, got, sizeof got);
	CHECK_STR(got, want);
	if (strcmp(got, want) != 0)
		fprintf(stderr, "  transcript:\n%s\n", t);
	free(t);
	rig_free(&r);
}

#define TX "EHLO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n"

UNIT_TEST(pipelined_any_boundary)
{
	const char *in = "EHLO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<u@example.test>\r\n"
	                 "RCPT TO:<v@elsewhere.org>\r\nNOOP\r\nRSET\r\nQUIT\r\n";
	for (size_t step = 1; step < 20; step++)
		dialogue(NULL, in, step, false, "220 250 250 250 550 250 250 221");
}

/* A server without a TLS context (the rig has none) neither offers
 * STARTTLS nor pretends to know it: 502 5.5.1, not 454 or 250. */
UNIT_TEST(starttls_without_tls)
{
	struct rig r;
	rig_init(&r, NULL);
	const char *in = "EHLO c\r\nSTARTTLS\r\nQUIT\r\n";
	char *t = talk(&r, in, strlen(in), 1000, false);
	CHECK(strstr(t, "STARTTLS") == NULL);
	CHECK(strstr(t, "\r\n502 5.5.1 ") != NULL);
	char got[64];
	codes(t, got, sizeof got);
	CHECK_STR(got, "220 250 502 221");
	free(t);
	rig_free(&r);
}

UNIT_TEST(smuggling_variants)
{
	static const char *const bodies[] = {
		"a\n.\nMAIL FROM:<x@y.z>\r\n.\r\n",
		"a\r.\rX\r\n.\r\n",
		"a\r\n.\nX\r\n.\r\n",
		"a\n.\r\nX\r\n.\r\n",
		"a\r\n.\rX\r\n.\r\n",
		"a\rb\r\n.\r\n",
	};
	for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		char in[256];
		snprintf(in, sizeof in, TX "%sQUIT\r\n", bodies[i]);
		dialogue(NULL, in, 1000, false, "220 250 250 250 354 550 221");
		dialogue(NULL, in, 1, false, "220 250 250 250 354 550 221");
	}
	/* normalize: accepted up to delivery (absent here: 451), never ended early */
	dialogue("Bare_LF = \"normalize\"\n", TX "a\n.\nMAIL FROM:<x@y.z>\r\n.\r\nQUIT\r\n", 3, false,
	         "220 250 250 250 354 451 221");
	/* a clean message with dot-stuffing reaches delivery */
	dialogue(NULL, TX "..dot\r\n.\r\nQUIT\r\n", 2, false, "220 250 250 250 354 451 221");
}

UNIT_TEST(limits)
{
	char big[4096];
	/* real size at end of data */
	snprintf(big, sizeof big, TX "%.*s\r\n.\r\nQUIT\r\n", 2100,
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	dialogue(NULL, big, 500, false, "220 250 250 250 354 552 221");
	/* SIZE at MAIL, recipients cap, relay */
	dialogue(NULL,
	         "EHLO c\r\nMAIL FROM:<a@x.org> SIZE=5000\r\nMAIL FROM:<a@x.org> SIZE=100\r\n"
	         "RCPT TO:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nRCPT TO:<c@example.test>\r\n"
	         "RCPT TO:<@relay.example:c@other.example>\r\nQUIT\r\n",
	         7, false, "220 250 552 250 250 250 452 550 221");
	/* too many errors closes with 421 */
	dialogue(NULL, "A\r\nB\r\nC\r\nD\r\nE\r\nF\r\nNOOP\r\n", 3, false,
	         "220 500 500 500 500 500 500 421");
	/* an endless line */
	char longl[2000];
	memset(longl, 'a', sizeof longl);
	memcpy(longl, "NOOP ", 5);
	memcpy(longl + sizeof longl - 9, "\r\nQUIT\r\n", 9);
	dialogue(NULL, longl, 100, false, "220 500 221");
}

UNIT_TEST(bdat)
{
	dialogue(NULL,
	         "EHLO c\r\nMAIL FROM:<a@x.org>\r\nRCPT TO:<u@example.test>\r\nBDAT 5\r\nabc\r\n"
	         "BDAT 0 LAST\r\nQUIT\r\n",
	         1, false, "220 250 250 250 250 451 221");
	/* BDAT without MAIL: the chunk is still consumed, then 503 */
	dialogue(NULL, "EHLO c\r\nBDAT 6\r\nQUIT\r\nNOOP\r\n", 4, false, "220 250 503 250");
	/* BDAT with a bad size: cannot be followed, closes */
	dialogue(NULL, "EHLO c\r\nBDAT x\r\nNOOP\r\n", 4, false, "220 250 501");
}

UNIT_TEST(proxy_headers)
{
	dialogue(NULL, "PROXY TCP4 203.0.113.9 192.0.2.1 1000 25\r\nQUIT\r\n", 5, true, "220 221");
	dialogue(NULL, "PROXY UNKNOWN\r\nQUIT\r\n", 1, true, "220 221");
	dialogue(NULL, "EHLO c\r\nQUIT\r\n", 3, true, "");
	dialogue(NULL, "PROXY TCP4 203.0.113.9 192.0.2.1 1000\r\nQUIT\r\n", 100, true, "");
}

UNIT_TEST(sequence_and_utf8)
{
	dialogue(NULL,
	         "MAIL FROM:<a@x.org>\r\nHELO c\r\nMAIL FROM:<a@x.org> SIZE=1\r\n"
	         "EHLO c\r\nDATA\r\nMAIL FROM:<j\xc3\xb6rg@x.org>\r\n"
	         "MAIL FROM:<j\xc3\xb6rg@x.org> SMTPUTF8\r\nRCPT TO:<\xc3\xbc@example.test>\r\n"
	         "RCPT TO:<\xc3@example.test>\r\nDATA\r\nQUIT\r\n",
	         5, false, "220 503 250 555 250 503 553 250 250 501 354");
}

int main(void)
{
	return unit_run();
}
