/*
 * fuzz_smtp_starttls: the SMTP session with STARTTLS available, fed a byte
 * stream over a bufferevent pair, to fuzz the plain-to-TLS boundary: the
 * STARTTLS command with bytes pipelined after it (which must be discarded,
 * RFC 3207 section 4.2), the switch of the session to an OpenSSL filter,
 * and a handshake fed with arbitrary bytes that fails or stalls, then the
 * peer going away at any point.
 *
 * The first input byte picks the write size and whether "EHLO f\r\n" and
 * "STARTTLS\r\n" are prepended (so most inputs reach the boundary). The
 * certificate is a self-signed pair made once in /tmp by net_tls_prepare().
 * Checks that no session outlives its peer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conf/config.h"
#include "net/listener.h"
#include "net/tls.h"
#include "smtp/smtp_server.h"
#include "smtp/smtp_session.h"

#include "fuzz_server.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void setup(void)
{
	char err[512];
	unsigned line;
	struct mx_config *cfg =
		fuzz_server_setup("127.0.0.1:32097", "TLS_Dir = \"/tmp/fuzz-starttls-tls\"\n");
	if (net_tls_prepare(cfg, err, sizeof err, &line) < 0)
		abort();
	srv.tls = net_tls_create(cfg, err, sizeof err, &line);
	if (!srv.tls)
		abort();
}

static void feed(struct bufferevent *peer, const void *p, size_t n)
{
	bufferevent_write(peer, p, n);
	event_base_loop(base, EVLOOP_NONBLOCK);
	struct evbuffer *out = bufferevent_get_input(peer);
	if (getenv("FUZZ_DEBUG")) /* replay one input and see the replies */
		evbuffer_write(out, 2);
	evbuffer_drain(out, evbuffer_get_length(out));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char ehlo[] = "EHLO f\r\n", starttls[] = "STARTTLS\r\n";
	struct bufferevent *pair[2];
	struct ip_addr peer;

	if (!base)
		setup();
	if (size == 0)
		return 0;
	size_t step = (data[0] & 0x1f) + 1;
	bool add_ehlo = !(data[0] & 0x20), add_starttls = !(data[0] & 0x40);
	bool together = data[0] & 0x80; /* STARTTLS in the same write as what follows */
	data++;
	size--;
	ip_addr_parse("192.0.2.78", &peer);
	if (bufferevent_pair_new(base, 0, pair) < 0)
		abort();
	bufferevent_enable(pair[0], EV_READ | EV_WRITE);
	smtp_session_start(&srv, pair[1], &listener, &peer, 4322, false);
	event_base_loop(base, EVLOOP_NONBLOCK);
	if (add_ehlo)
		feed(pair[0], ehlo, sizeof ehlo - 1);
	if (add_starttls && !together)
		feed(pair[0], starttls, sizeof starttls - 1);
	if (add_starttls && together) {
		bufferevent_write(pair[0], starttls, sizeof starttls - 1);
		size_t n = size < step ? size : step;
		feed(pair[0], data, n);
		data += n;
		size -= n;
	}
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		feed(pair[0], data + off, n);
	}
	bufferevent_flush(pair[0], EV_WRITE, BEV_FINISHED);
	bufferevent_free(pair[0]);
	for (int i = 0; i < 20 && srv.nsessions; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	if (srv.nsessions != 0 || listener.nsessions != 0)
		abort();
	return 0;
}
