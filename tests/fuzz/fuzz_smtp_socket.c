/*
 * fuzz_smtp_socket: the SMTP session on its plain-socket transport (its own
 * recv()/send(), the shared read buffer and reply stage, leftovers kept
 * between reads, EV_WRITE only while the socket refuses output), driven
 * through a non-blocking AF_UNIX socket pair and smtp_session_accept() as the
 * listener would. fuzz_smtp_session covers the bufferevent transport.
 *
 * Input format as fuzz_smtp_session (its corpus works as seeds): the first
 * byte picks the write size (so read boundaries vary) and whether the
 * listener requires a PROXY header; the rest is the client's byte stream.
 * Replies are read back (and dropped) only every few writes, so output piles
 * up and the blocked-output path runs too. No delivery: complete messages
 * get 451. Checks that no session outlives its peer.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
	fuzz_server_setup("127.0.0.1:32099", "Max_Recipients_Per_Message = 3\n"
	                                     "Bare_LF = \"normalize\"\n");
	listener.proxy_timeout = 5;
}

static void drain(int fd)
{
	char buf[4096];
	while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	struct sockaddr_in sin;

	if (!base)
		setup();
	if (size == 0)
		return 0;
	size_t step = (data[0] & 0x3f) + 1;
	listener.proxy = data[0] & 0x40;
	data++;
	size--;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	/* small buffers: a few KiB of replies fill the socket */
	int small = 4096;
	setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(4321);
	sin.sin_addr.s_addr = htonl(0xc000024d); /* 192.0.2.77 */
	smtp_session_accept(&srv, &listener, sv[1], (const struct sockaddr *)&sin, sizeof sin);
	size_t writes = 0;
	for (size_t off = 0; off < size;) {
		size_t n = size - off < step ? size - off : step;
		ssize_t w = send(sv[0], data + off, n, MSG_NOSIGNAL);
		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			break; /* the session closed */
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (++writes % 8 == 0 || w <= 0)
			drain(sv[0]);
		if (w <= 0 && writes > 4 * size + 64)
			break; /* it stopped reading: a waiting phase */
	}
	drain(sv[0]);
	event_base_loop(base, EVLOOP_NONBLOCK);
	close(sv[0]);
	for (int i = 0; i < 20 && srv.nsessions; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	if (srv.nsessions != 0 || listener.nsessions != 0)
		abort();
	return 0;
}
