/*
 * fuzz_smtp_session: drives the whole SMTP session state machine with a
 * byte stream over a bufferevent pair (no sockets, no delivery: complete
 * messages get 451). The first input byte picks the write size (so read
 * boundaries vary) and whether a PROXY header is required. Checks that no
 * session outlives its peer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conf/config.h"
#include "net/listener.h"
#include "smtp/smtp_server.h"
#include "smtp/smtp_session.h"

#include "fuzz_server.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void setup(void)
{
	fuzz_server_setup("127.0.0.1:32098", "Max_Recipients_Per_Message = 3\n"
	                                     "Bare_LF = \"normalize\"\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bufferevent *pair[2];
	struct ip_addr peer;

	if (!base)
		setup();
	if (size == 0)
		return 0;
	size_t step = (data[0] & 0x3f) + 1;
	bool proxy = data[0] & 0x40;
	data++;
	size--;
	ip_addr_parse("192.0.2.77", &peer);
	if (bufferevent_pair_new(base, 0, pair) < 0)
		abort();
	bufferevent_enable(pair[0], EV_READ | EV_WRITE);
	smtp_session_start(&srv, pair[1], &listener, &peer, 4321, proxy);
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		bufferevent_write(pair[0], data + off, n);
		event_base_loop(base, EVLOOP_NONBLOCK);
		struct evbuffer *out = bufferevent_get_input(pair[0]);
		evbuffer_drain(out, evbuffer_get_length(out));
	}
	bufferevent_flush(pair[0], EV_WRITE, BEV_FINISHED);
	bufferevent_free(pair[0]);
	for (int i = 0; i < 20 && srv.nsessions; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	if (srv.nsessions != 0 || listener.nsessions != 0)
		abort();
	return 0;
}
