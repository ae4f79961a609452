/*
 * listener: the listening TCP sockets of one `Listen` entry, on libevent's
 * evconnlistener: one socket for an address, two for "*" (0.0.0.0 and [::];
 * IPv4 alone when the machine has no IPv6). Everything else (the address
 * that keys it across reloads, the index, the session count, the limits)
 * belongs to the entry, not to a socket: a session that came in on either
 * socket of "*" counts towards the same Listener_Sessions.
 *
 * IPv6 sockets are IPV6_V6ONLY (an IPv4 listener is configured on its own),
 * SO_REUSEADDR is set so a restart rebinds at once, the backlog is 4096 and
 * the listener accepts in a loop per wake-up (evconnlistener's default), so
 * a burst of connections costs one poll round. Out of descriptors (EMFILE,
 * ENFILE, ENOBUFS, ENOMEM), accepting pauses for 100 ms instead of spinning
 * on a socket that stays readable.
 *
 * A listener is reference-counted: sessions that arrived on it hold a
 * reference, so that a reload that removes its Listen entry can close the
 * socket at once while those sessions still read their listener's number
 * and session count.
 */
#ifndef MX_NET_LISTENER_H
#define MX_NET_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct evconnlistener;
struct mx_listen;

#define NET_LISTENER_MAX_SOCKETS 2

struct net_listener {
	struct evconnlistener *evl[NET_LISTENER_MAX_SOCKETS]; /* NULL once closed */
	unsigned nsockets;          /* evl[0 .. nsockets-1] were opened */
	struct event *backoff;      /* re-enables accepting after EMFILE */
	char *address;              /* "127.0.0.1:2525": the key across reloads */
	unsigned index;             /* its number for audit, unique among the live ones */
	unsigned nsessions;         /* sessions open from this socket */
	unsigned refs;              /* 1 while open, +1 per session */
	bool proxy;                 /* Proxy_Protocol: a PROXY header comes first */
	unsigned proxy_timeout;     /* Proxy_Timeout, seconds */
	struct net_listener *next;  /* the daemon's list */
};

/* Called for each accepted socket (non-blocking, close-on-exec). */
typedef void (*net_accept_fn)(struct net_listener *l, int fd, struct sockaddr *sa,
                              int socklen, void *arg);

/* Listener numbers run from 0 to NET_LISTENER_INDEX_MAX - 1. */
#define NET_LISTENER_INDEX_MAX 4096u

/* Bind and listen on `lc`, under the lowest number no listener still in
 * memory has (a closed one lives on while its sessions do): numbers are
 * reused, so any number of reloads that add and remove Listen entries
 * stays within NET_LISTENER_INDEX_MAX. On failure returns NULL with a
 * message in err. */
struct net_listener *net_listener_open(struct event_base *base, const struct mx_listen *lc,
                                       net_accept_fn cb, void *arg, char *err, size_t errlen);

/* Stop accepting and close its sockets; drops the listener's own reference. */
void net_listener_close(struct net_listener *l);

/* Pause or resume accepting (shutdown, or EMFILE back-off). */
void net_listener_enable(struct net_listener *l, bool on);

void net_listener_ref(struct net_listener *l);
void net_listener_unref(struct net_listener *l);

#endif
