/*
 * dns: c-ares driven by libevent. See dns.h.
 *
 * c-ares reports the sockets it wants watched through its socket-state
 * callback; each gets one persistent libevent event. After every call into
 * c-ares the single timer is re-armed from ares_timeout(), which is how
 * retries and timeouts happen without a thread.
 *
 * A resolver replaced at a reload is retired: it stays on the current
 * resolver's list until its last lookup has ended, and is then freed by the
 * current resolver's reaper, a zero-timeout event. Never earlier, and never
 * from dns_lookup or a c-ares callback: a lookup's callback may start the
 * next lookup (a script's second ec_dns_lookup) while c-ares is still
 * inside ares_process_fd of the retired resolver whose last answer this
 * was, and ares_destroy there would free the channel under c-ares and call
 * that callback a second time (ARES_EDESTRUCTION).
 */
#include "net/dns.h"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <event2/event.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DNS_MAX_SOCKETS 16
#define DNS_MAX_ANSWERS 32

struct dns_sock {
	ares_socket_t fd;
	struct event *ev;
};

struct dns_resolver {
	struct event_base *base;
	ares_channel channel;
	struct event *timer;
	struct event *reaper;         /* frees the retired list's idle ones */
	struct dns_sock socks[DNS_MAX_SOCKETS];
	size_t pending;               /* lookups c-ares still holds */
	struct dns_resolver *retired; /* resolvers this one replaced, still
	                                 finishing their lookups; a list */
	struct dns_resolver *adopter; /* retired: the current resolver, whose
	                                 list holds this one; else NULL */
};

struct dns_query {
	struct dns_resolver *r;
	enum dns_type type;
	dns_done_fn done; /* NULL once cancelled */
	void *arg;
	/* c-ares may end a query inside ares_query (a server that refused the
	 * last one, a name it will not look up): that outcome is kept here and
	 * delivered from the loop, so a callback never runs before dns_lookup
	 * has returned its handle. */
	bool starting, ended;
	enum dns_status st;
	size_t n;
	char *answers[DNS_MAX_ANSWERS];
};

static void dns_rearm(struct dns_resolver *r)
{
	struct timeval max = {3600, 0}, tv;
	struct timeval *t = ares_timeout(r->channel, &max, &tv);

	evtimer_add(r->timer, t);
}

static void dns_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;

	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_rearm(r);
}

static void dns_on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;

	ares_process_fd(r->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	                (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_rearm(r);
}

static void dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver *r = data;
	struct dns_sock *slot = NULL, *free_slot = NULL;

	for (int i = 0; i < DNS_MAX_SOCKETS; i++) {
		if (r->socks[i].ev && r->socks[i].fd == fd)
			slot = &r->socks[i];
		else if (!r->socks[i].ev && !free_slot)
			free_slot = &r->socks[i];
	}
	if (slot) {
		event_free(slot->ev);
		slot->ev = NULL;
	}
	if (!readable && !writable)
		return;
	if (!slot)
		slot = free_slot;
	if (!slot)
		return; /* more sockets than c-ares opens with our options */
	slot->fd = fd;
	slot->ev = event_new(r->base, fd,
	                     (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0) | EV_PERSIST),
	                     dns_on_socket, r);
	if (slot->ev)
		event_add(slot->ev, NULL);
}

static void dns_on_reap(evutil_socket_t fd, short what, void *arg);

struct dns_resolver *dns_resolver_create(struct event_base *base, const char *server,
                                         unsigned timeout, char *err, size_t errlen)
{
	static bool library_ready;
	struct ares_options opts;
	int optmask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	              ARES_OPT_FLAGS;
	struct dns_resolver *r;
	int rc;

	if (!library_ready) {
		if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
			snprintf(err, errlen, "DNS library: %s", ares_strerror(rc));
			return NULL;
		}
		library_ready = true;
	}
	r = calloc(1, sizeof *r);
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->base = base;
	memset(&opts, 0, sizeof opts);
	opts.sock_state_cb = dns_sock_state;
	opts.sock_state_cb_data = r;
	if (timeout == 0)
		timeout = 5;
	/* One try of the whole timeout: c-ares doubles the timeout on each
	 * retry to the same server, so tries = 2 would take 1.5 x timeout. */
	opts.tries = 1;
	opts.timeout = (int)(timeout * 1000);
	/* No search domains and no /etc/hosts: a DNSBL name is asked as written. */
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	rc = ares_init_options(&r->channel, &opts, optmask);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "DNS resolver: %s", ares_strerror(rc));
		free(r);
		return NULL;
	}
	if (server) {
		rc = ares_set_servers_ports_csv(r->channel, server);
		if (rc != ARES_SUCCESS) {
			snprintf(err, errlen, "DNS_Server \"%s\": %s", server, ares_strerror(rc));
			ares_destroy(r->channel);
			free(r);
			return NULL;
		}
	}
	r->timer = evtimer_new(base, dns_on_timer, r);
	r->reaper = evtimer_new(base, dns_on_reap, r);
	if (!r->timer || !r->reaper) {
		snprintf(err, errlen, "out of memory");
		if (r->timer)
			event_free(r->timer);
		if (r->reaper)
			event_free(r->reaper);
		ares_destroy(r->channel);
		free(r);
		return NULL;
	}
	return r;
}

/* Turn a reply into text answers; returns the count. */
static size_t dns_parse(enum dns_type type, const unsigned char *abuf, int alen,
                        char **out, bool *bad)
{
	size_t n = 0;
	char buf[INET6_ADDRSTRLEN];

	*bad = false;
	switch (type) {
	case DNS_TYPE_A: {
		struct ares_addrttl a[DNS_MAX_ANSWERS];
		int na = DNS_MAX_ANSWERS;
		if (ares_parse_a_reply(abuf, alen, NULL, a, &na) != ARES_SUCCESS) {
			*bad = true;
			return 0;
		}
		for (int i = 0; i < na && n < DNS_MAX_ANSWERS; i++)
			if (inet_ntop(AF_INET, &a[i].ipaddr, buf, sizeof buf))
				out[n++] = strdup(buf);
		break;
	}
	case DNS_TYPE_AAAA: {
		struct ares_addr6ttl a[DNS_MAX_ANSWERS];
		int na = DNS_MAX_ANSWERS;
		if (ares_parse_aaaa_reply(abuf, alen, NULL, a, &na) != ARES_SUCCESS) {
			*bad = true;
			return 0;
		}
		for (int i = 0; i < na && n < DNS_MAX_ANSWERS; i++)
			if (inet_ntop(AF_INET6, &a[i].ip6addr, buf, sizeof buf))
				out[n++] = strdup(buf);
		break;
	}
	case DNS_TYPE_TXT: {
		struct ares_txt_ext *txt = NULL;
		if (ares_parse_txt_reply_ext(abuf, alen, &txt) != ARES_SUCCESS) {
			*bad = true;
			return 0;
		}
		/* A record may come in several character-strings: join them. */
		for (struct ares_txt_ext *t = txt; t; t = t->next) {
			if (t->record_start || n == 0) {
				if (n == DNS_MAX_ANSWERS)
					break;
				out[n++] = strndup((const char *)t->txt, t->length);
			} else if (out[n - 1]) {
				size_t ol = strlen(out[n - 1]);
				char *j = realloc(out[n - 1], ol + t->length + 1);
				if (j) {
					memcpy(j + ol, t->txt, t->length);
					j[ol + t->length] = '\0';
					out[n - 1] = j;
				}
			}
		}
		ares_free_data(txt);
		break;
	}
	case DNS_TYPE_MX: {
		struct ares_mx_reply *mx = NULL;
		if (ares_parse_mx_reply(abuf, alen, &mx) != ARES_SUCCESS) {
			*bad = true;
			return 0;
		}
		for (struct ares_mx_reply *m = mx; m && n < DNS_MAX_ANSWERS; m = m->next) {
			char line[300];
			snprintf(line, sizeof line, "%u %s", m->priority, m->host);
			out[n++] = strdup(line);
		}
		ares_free_data(mx);
		break;
	}
	case DNS_TYPE_PTR: {
		struct hostent *h = NULL;
		unsigned char dummy[16] = {0};
		if (ares_parse_ptr_reply(abuf, alen, dummy, 4, AF_INET, &h) != ARES_SUCCESS) {
			*bad = true;
			return 0;
		}
		if (h->h_name && n < DNS_MAX_ANSWERS)
			out[n++] = strdup(h->h_name);
		/* c-ares lists every PTR name among the aliases, the first too. */
		for (char **al = h->h_aliases; al && *al && n < DNS_MAX_ANSWERS; al++)
			if (!h->h_name || strcmp(*al, h->h_name) != 0)
				out[n++] = strdup(*al);
		ares_free_hostent(h);
		break;
	}
	}
	return n;
}

static void query_free(struct dns_query *q)
{
	for (size_t i = 0; i < q->n; i++)
		free(q->answers[i]);
	free(q);
}

/* Run the callback (unless cancelled) and free the query. */
static void query_deliver(struct dns_query *q)
{
	if (q->done)
		q->done(q->arg, q->st, (const char *const *)q->answers, q->n);
	query_free(q);
}

static void dns_on_deferred(evutil_socket_t fd, short what, void *arg)
{
	query_deliver(arg);
}

/* Free the retired resolvers that have become idle, at the next turn of
 * the loop: see the file's header for why not now. */
static void schedule_reap(struct dns_resolver *r)
{
	static const struct timeval now = {0, 0};

	evtimer_add(r->reaper, &now);
}

static void dns_on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	bool bad = false;

	if (--q->r->pending == 0 && q->r->adopter)
		schedule_reap(q->r->adopter);
	q->ended = true;
	q->st = DNS_FAILED;
	if (!q->done && !q->starting) {
		free(q);
		return;
	}
	if (status == ARES_SUCCESS) {
		/* A reply the parser refuses (no record of the type, or a
		 * malformed one) counts as an answer with no records. */
		q->n = dns_parse(q->type, abuf, alen, q->answers, &bad);
		q->st = DNS_OK;
		for (size_t i = 0; i < q->n; i++)
			if (!q->answers[i]) {
				q->answers[i] = q->answers[--q->n];
				i--;
			}
	} else if (status == ARES_ENOTFOUND) {
		q->st = DNS_NXDOMAIN;
	} else if (status == ARES_ENODATA) {
		q->st = DNS_OK;
	}
	if (!q->starting)
		query_deliver(q);
}

static void resolver_destroy(struct dns_resolver *r)
{
	/* ares_destroy calls every pending callback with ARES_EDESTRUCTION. */
	ares_destroy(r->channel);
	for (int i = 0; i < DNS_MAX_SOCKETS; i++)
		if (r->socks[i].ev)
			event_free(r->socks[i].ev);
	event_free(r->timer);
	event_free(r->reaper);
	free(r);
}

/* Free the replaced resolvers whose last lookup has ended. Only from the
 * reaper event, where no c-ares call of any resolver is on the stack. */
static void reap_retired(struct dns_resolver *r)
{
	struct dns_resolver **link = &r->retired;
	while (*link) {
		struct dns_resolver *old = *link;
		if (old->pending == 0) {
			*link = old->retired;
			resolver_destroy(old);
		} else {
			link = &old->retired;
		}
	}
}

static void dns_on_reap(evutil_socket_t fd, short what, void *arg)
{
	reap_retired(arg);
}

void dns_resolver_adopt(struct dns_resolver *r, struct dns_resolver *old)
{
	if (!old)
		return;
	struct dns_resolver **tail = &r->retired;
	while (*tail)
		tail = &(*tail)->retired;
	*tail = old; /* old's own retired list follows it */
	for (struct dns_resolver *o = old; o; o = o->retired)
		o->adopter = r;
	evtimer_del(old->reaper); /* r's reaper looks after old's list now */
	schedule_reap(r);         /* old may be idle already */
}

struct dns_query *dns_lookup(struct dns_resolver *r, const char *name, enum dns_type type,
                             dns_done_fn done, void *arg)
{
	static const int qtype[] = {
		[DNS_TYPE_A] = ns_t_a,     [DNS_TYPE_AAAA] = ns_t_aaaa, [DNS_TYPE_TXT] = ns_t_txt,
		[DNS_TYPE_MX] = ns_t_mx,   [DNS_TYPE_PTR] = ns_t_ptr,
	};
	struct dns_query *q;

	if (type < DNS_TYPE_A || type > DNS_TYPE_PTR)
		return NULL;
	q = calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->r = r;
	q->type = type;
	q->done = done;
	q->arg = arg;
	r->pending++;
	q->starting = true;
	ares_query(r->channel, name, ns_c_in, qtype[type], dns_on_answer, q);
	q->starting = false;
	dns_rearm(r);
	if (q->ended) {
		static const struct timeval now = {0, 0};
		if (event_base_once(r->base, -1, EV_TIMEOUT, dns_on_deferred, q, &now) < 0) {
			query_free(q); /* could not start, as far as the caller knows */
			return NULL;
		}
	}
	return q;
}

void dns_cancel(struct dns_query *q)
{
	/* c-ares (or the deferred delivery) still calls back and frees q
	 * there; we only silence it. */
	if (q)
		q->done = NULL;
}

void dns_resolver_free(struct dns_resolver *r)
{
	/* ares_destroy ends the lookups still held: none may schedule a reap
	 * on a resolver freed before it. */
	for (struct dns_resolver *o = r; o; o = o->retired)
		o->adopter = NULL;
	while (r) {
		struct dns_resolver *next = r->retired;
		resolver_destroy(r);
		r = next;
	}
}
