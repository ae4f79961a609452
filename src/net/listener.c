/*
 * listener: bound sockets on evconnlistener. See listener.h.
 */
#include "net/listener.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "conf/config.h"
#include "util/log.h"

#define NET_BACKLOG 4096

struct accept_ctx {
	net_accept_fn cb;
	void *arg;
};

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
	struct net_listener *l = arg;
	struct accept_ctx *ac = (struct accept_ctx *)(l + 1);

	(void)evl;
	ac->cb(l, fd, sa, socklen, ac->arg);
}

static void on_backoff(evutil_socket_t fd, short what, void *arg)
{
	struct net_listener *l = arg;
	(void)fd;
	(void)what;
	for (unsigned i = 0; i < l->nsockets; i++)
		if (l->evl[i])
			evconnlistener_enable(l->evl[i]);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
	struct net_listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();

	(void)evl;
	log_event(LOG_WARNING, "accept_error", "listener=%s error=\"%s\"", l->address,
	          evutil_socket_error_to_string(err));
	/* Out of descriptors or memory: the pending connection stays in the
	 * backlog and the socket stays readable, so pause instead of spinning;
	 * sessions that end meanwhile give descriptors back. Every socket of
	 * the entry pauses: they draw on the same descriptors. */
	if ((err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) && l->backoff) {
		struct timeval tv = {0, 100000};
		for (unsigned i = 0; i < l->nsockets; i++)
			if (l->evl[i])
				evconnlistener_disable(l->evl[i]);
		evtimer_add(l->backoff, &tv);
	}
}

/* A listening socket on sa, or -1 with errno set. */
static int bind_socket(const struct sockaddr *sa, socklen_t salen)
{
	int one = 1;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if ((sa->sa_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
	    bind(fd, sa, salen) < 0 || listen(fd, NET_BACKLOG) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Bind the sockets of `lc` into fds: one for an address, two for "*"
 * (0.0.0.0 and [::], the latter V6ONLY so that both can coexist; without
 * IPv6 on the machine, 0.0.0.0 alone and a log line). Returns how many, or
 * 0 with a message in err. */
static unsigned bind_entry(const struct mx_listen *lc, int fds[NET_LISTENER_MAX_SOCKETS],
                           char *err, size_t errlen)
{
	if (strcmp(lc->host, "*") == 0) {
		struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(lc->port),
		                          .sin_addr.s_addr = htonl(INADDR_ANY)};
		struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(lc->port),
		                            .sin6_addr = IN6ADDR_ANY_INIT};
		fds[0] = bind_socket((struct sockaddr *)&sin, sizeof sin);
		if (fds[0] < 0) {
			snprintf(err, errlen, "Listen \"%s\": 0.0.0.0: %s", lc->address, strerror(errno));
			return 0;
		}
		fds[1] = bind_socket((struct sockaddr *)&sin6, sizeof sin6);
		if (fds[1] >= 0)
			return 2;
		if (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL) {
			log_event(LOG_NOTICE, "listen_no_ipv6", "address=%s error=\"%s\"", lc->address,
			          strerror(errno));
			return 1;
		}
		snprintf(err, errlen, "Listen \"%s\": [::]: %s", lc->address, strerror(errno));
		close(fds[0]);
		return 0;
	}

	struct addrinfo hints, *res = NULL;
	char port[8];
	int rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	snprintf(port, sizeof port, "%u", lc->port);
	rc = getaddrinfo(lc->host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "Listen \"%s\": %s", lc->address, gai_strerror(rc));
		return 0;
	}
	fds[0] = bind_socket(res->ai_addr, res->ai_addrlen);
	if (fds[0] < 0)
		snprintf(err, errlen, "Listen \"%s\": %s", lc->address, strerror(errno));
	freeaddrinfo(res);
	return fds[0] < 0 ? 0 : 1;
}

/* Numbers held by listeners in memory (the loop thread's alone). */
static uint64_t index_used[NET_LISTENER_INDEX_MAX / 64];

static bool index_take(unsigned *index)
{
	for (unsigned w = 0; w < NET_LISTENER_INDEX_MAX / 64; w++)
		if (~index_used[w]) {
			unsigned b = (unsigned)__builtin_ctzll(~index_used[w]);
			index_used[w] |= 1ull << b;
			*index = w * 64 + b;
			return true;
		}
	return false;
}

static void index_put(unsigned index)
{
	index_used[index / 64] &= ~(1ull << (index % 64));
}

struct net_listener *net_listener_open(struct event_base *base, const struct mx_listen *lc,
                                       net_accept_fn cb, void *arg, char *err, size_t errlen)
{
	int fds[NET_LISTENER_MAX_SOCKETS];
	unsigned index;
	if (!index_take(&index)) {
		snprintf(err, errlen, "Listen \"%s\": more than %u listeners", lc->address,
		         NET_LISTENER_INDEX_MAX);
		return NULL;
	}
	unsigned n = bind_entry(lc, fds, err, errlen);
	if (n == 0) {
		index_put(index);
		return NULL;
	}

	struct net_listener *l = calloc(1, sizeof *l + sizeof(struct accept_ctx));
	if (!l || !(l->address = strdup(lc->address))) {
		index_put(index);
		free(l);
		for (unsigned i = 0; i < n; i++)
			close(fds[i]);
		snprintf(err, errlen, "Listen \"%s\": out of memory", lc->address);
		return NULL;
	}
	struct accept_ctx *ac = (struct accept_ctx *)(l + 1);
	ac->cb = cb;
	ac->arg = arg;
	l->index = index;
	l->refs = 1;
	l->proxy = lc->proxy_protocol;
	l->proxy_timeout = lc->proxy_timeout ? lc->proxy_timeout : 5;
	for (unsigned i = 0; i < n; i++) {
		/* backlog 0: the socket already listens with NET_BACKLOG (-1
		 * would make libevent call listen() again with its default of
		 * 128). Once wrapped, the evconnlistener owns the descriptor. */
		l->evl[i] = evconnlistener_new(base, on_accept, l, LEV_OPT_CLOSE_ON_FREE, 0, fds[i]);
		if (!l->evl[i]) {
			for (unsigned j = i; j < n; j++)
				close(fds[j]);
			l->nsockets = i;
			snprintf(err, errlen, "Listen \"%s\": evconnlistener_new failed", lc->address);
			net_listener_close(l);
			return NULL;
		}
		l->nsockets = i + 1;
		evconnlistener_set_error_cb(l->evl[i], on_accept_error);
	}
	l->backoff = evtimer_new(base, on_backoff, l);
	return l;
}

void net_listener_enable(struct net_listener *l, bool on)
{
	for (unsigned i = 0; i < l->nsockets; i++) {
		if (!l->evl[i])
			continue;
		if (on)
			evconnlistener_enable(l->evl[i]);
		else
			evconnlistener_disable(l->evl[i]);
	}
}

/* Close every socket of the entry (the struct may live on: sessions). */
static void close_sockets(struct net_listener *l)
{
	if (l->backoff) {
		event_free(l->backoff);
		l->backoff = NULL;
	}
	for (unsigned i = 0; i < l->nsockets; i++)
		if (l->evl[i]) {
			evconnlistener_free(l->evl[i]);
			l->evl[i] = NULL;
		}
}

void net_listener_close(struct net_listener *l)
{
	close_sockets(l);
	net_listener_unref(l);
}

void net_listener_ref(struct net_listener *l)
{
	l->refs++;
}

void net_listener_unref(struct net_listener *l)
{
	if (--l->refs > 0)
		return;
	close_sockets(l);
	index_put(l->index);
	free(l->address);
	free(l);
}
