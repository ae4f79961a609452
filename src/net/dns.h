/*
 * dns: non-blocking DNS lookups on the event loop, for the policy's
 * ec_dns_lookup (DNSBLs and the like).
 *
 * c-ares does the protocol (queries, retries, parsing of A, AAAA, TXT, MX and
 * PTR answers); this file drives it from libevent: c-ares tells us which
 * sockets to watch, we tell it when they are ready or its timer expires.
 * libevent's own evdns was not enough: it resolves A, AAAA and PTR only, and
 * DNSBL TXT records and MX lookups are part of the policy language.
 *
 * A lookup's callback runs once on the loop thread, never before dns_lookup
 * has returned, unless it was cancelled first (dns_cancel), in which case it
 * never runs.
 */
#ifndef MX_NET_DNS_H
#define MX_NET_DNS_H

#include <stddef.h>

struct event_base;
struct dns_resolver;
struct dns_query;

enum dns_type {
	DNS_TYPE_A = 1,
	DNS_TYPE_AAAA,
	DNS_TYPE_TXT,
	DNS_TYPE_MX,
	DNS_TYPE_PTR,
};

enum dns_status {
	DNS_OK = 1,   /* answers (possibly none: the name has no such record) */
	DNS_NXDOMAIN, /* the name does not exist */
	DNS_FAILED,   /* SERVFAIL, refused, timeout, or a malformed answer */
};

/* answers: text (addresses, TXT strings joined, MX "PREF HOST", PTR names),
 * valid only during the call. */
typedef void (*dns_done_fn)(void *arg, enum dns_status status,
                            const char *const *answers, size_t n);

/* A resolver that asks `server` ("ip:port", "[v6]:port" or "ip"), or the
 * servers of /etc/resolv.conf when NULL; each lookup gives up after about
 * `timeout` seconds. Returns NULL with a message in err. */
struct dns_resolver *dns_resolver_create(struct event_base *base, const char *server,
                                         unsigned timeout, char *err, size_t errlen);

/* Start a lookup. Returns a handle for dns_cancel, or NULL when it could
 * not start (the callback is then not called). */
struct dns_query *dns_lookup(struct dns_resolver *r, const char *name, enum dns_type type,
                             dns_done_fn done, void *arg);

/* Forget a lookup in flight: its callback will not run. */
void dns_cancel(struct dns_query *q);

/* r replaces old (a reload with another DNS_Server or dns_timeout): new
 * lookups go to r; old's lookups in flight end as usual (answer, timeout
 * or dns_cancel), and old is freed once they have, from r's own
 * zero-timeout event on the loop (never inside dns_lookup or a lookup's
 * callback, which may start the next lookup on r), or with r. NULL old
 * does nothing. */
void dns_resolver_adopt(struct dns_resolver *r, struct dns_resolver *old);

/* Cancel everything, the adopted resolvers' lookups too, and free. */
void dns_resolver_free(struct dns_resolver *r);

#endif
