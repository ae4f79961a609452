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
	if (l->evl)
		evconnlistener_enable(l->evl);
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
	struct net_listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();

	log_event(LOG_WARNING, "accept_error", "listener=%s error=\"%s\"", l->address,
	          evutil_socket_error_to_string(err));
	/* Out of descriptors or memory: the pending connection stays in the
	 * backlog and the socket stays readable, so pause instead of spinning;
	 * sessions that end meanwhile give descriptors back. */
	if ((err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) && l->backoff) {
		struct timeval tv = {0, 100000};
		evconnlistener_disable(evl);
		evtimer_add(l->backoff, &tv);
	}
}

struct net_listener *net_listener_open(struct event_base *base, const struct mx_listen *lc,
                                       unsigned index, net_accept_fn cb, void *arg,
                                       char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char port[8];
	int fd = -1, one = 1, rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	snprintf(port, sizeof port, "%u", lc->port);
	rc = getaddrinfo(lc->host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "Listen \"%s\": %s", lc->address, gai_strerror(rc));
		return NULL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (res->ai_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
		goto fail;
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, NET_BACKLOG) < 0)
		goto fail;
	freeaddrinfo(res);
	res = NULL;

	struct net_listener *l = calloc(1, sizeof *l + sizeof(struct accept_ctx));
	if (!l || !(l->address = strdup(lc->address))) {
		free(l);
		close(fd);
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
	/* backlog 0: the socket already listens with NET_BACKLOG (-1 would
	 * make libevent call listen() again with its default of 128) */
	l->evl = evconnlistener_new(base, on_accept, l, LEV_OPT_CLOSE_ON_FREE, 0, fd);
	if (!l->evl) {
		close(fd);
		free(l->address);
		free(l);
		snprintf(err, errlen, "Listen \"%s\": evconnlistener_new failed", lc->address);
		return NULL;
	}
	evconnlistener_set_error_cb(l->evl, on_accept_error);
	l->backoff = evtimer_new(base, on_backoff, l);
	return l;
fail:
	snprintf(err, errlen, "Listen \"%s\": %s", lc->address, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (res)
		freeaddrinfo(res);
	return NULL;
}

void net_listener_enable(struct net_listener *l, bool on)
{
	if (!l->evl)
		return;
	if (on)
		evconnlistener_enable(l->evl);
	else
		evconnlistener_disable(l->evl);
}

void net_listener_close(struct net_listener *l)
{
	if (l->backoff) {
		event_free(l->backoff);
		l->backoff = NULL;
	}
	if (l->evl) {
		evconnlistener_free(l->evl);
		l->evl = NULL;
	}
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
	if (l->backoff)
		event_free(l->backoff);
	if (l->evl)
		evconnlistener_free(l->evl);
	free(l->address);
	free(l);
}
