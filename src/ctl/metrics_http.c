/* metrics_http: GET /metrics over libevent's evhttp (see metrics_http.h). */
#include "ctl/metrics_http.h"

#include "util/clock.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#define METRICS_TIMEOUT_S 10
#define METRICS_MAX_HEADERS 8192
/* New connections taken in a one-second window (opened by the first
 * connection after a quiet spell); past that the listener pauses until the
 * window is over (the kernel's backlog holds the rest). A scraper needs one
 * connection every few seconds. */
#define METRICS_ACCEPTS_PER_S 20
/* Connections open at once; at the cap the listener pauses until one
 * closes. With the deadline below this bounds the descriptors the endpoint
 * holds whatever a client does: evhttp (libevent 2.1) has no connection
 * cap of its own. */
#define METRICS_MAX_CONNS 64
/* A connection lives at most this long from its accept, however it trickles
 * its bytes: evhttp's timeout (METRICS_TIMEOUT_S) is an idle timeout that
 * every byte read resets, so one header byte every few seconds would hold
 * a descriptor for hours. */
#define METRICS_DEADLINE_S 10

/*
 * One accepted connection. evhttp (2.1) tells nobody when it accepts one; it
 * only asks us for the bufferevent (on_new_conn). So a connection starts as
 * that bufferevent, which we hold a reference on, and a timer that fires
 * once the accept is over (0 s): by then evhttp has set the bufferevent's
 * callbacks, whose argument is its connection, and we ask to hear of its
 * close (evhttp_connection_set_closecb). The same timer then waits for the
 * deadline and frees the connection if it is still there. The reference
 * makes both checks safe: the bufferevent cannot be freed under us, and
 * evhttp clears its callbacks when it lets go of it, so the deadline never
 * frees a connection evhttp has already freed.
 */
struct metrics_conn {
	struct metrics_http *m;
	struct bufferevent *bev;            /* referenced until released */
	struct evhttp_connection *evcon;    /* NULL until the accept is over */
	struct event *timer;                /* the 0 s step, then the deadline */
	struct metrics_conn *prev, *next;
};

struct metrics_http {
	struct evhttp *http;
	struct evconnlistener *listener;
	struct event *resume;   /* ends a rate window's pause */
	bool rate_paused;       /* the listener waits for the window's end */
	unsigned accepted;      /* in the current window... */
	uint64_t window_ms;     /* ...which began then (monotonic) and lasts 1 s */
	struct metrics_conn *conns;
	unsigned nconns;        /* in conns */
	metrics_render_fn render;
	void *arg;
};

/* Accept again unless the rate window or the connection cap says wait. */
static void listener_update(struct metrics_http *m)
{
	if (m->listener == NULL)
		return;
	if (m->rate_paused || m->nconns >= METRICS_MAX_CONNS)
		evconnlistener_disable(m->listener);
	else
		evconnlistener_enable(m->listener);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct metrics_http *m = arg;
	m->accepted = 0; /* the next connection opens a new window */
	m->rate_paused = false;
	listener_update(m);
}

/* Forget a connection (closed by evhttp, or by its deadline). */
static void conn_release(struct metrics_conn *c)
{
	struct metrics_http *m = c->m;
	if (c->prev)
		c->prev->next = c->next;
	else
		m->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	m->nconns--;
	event_free(c->timer);
	if (c->bev)
		bufferevent_decref(c->bev);
	free(c);
	listener_update(m);
}

/* evhttp frees the connection (the client closed, an error, the reply
 * asked for close, evhttp_free): never touch it again. */
static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
	conn_release(arg);
}

/* The evhttp connection that still uses c's bufferevent (the one known as
 * c->evcon, once known), or NULL when evhttp has let the bufferevent go. */
static struct evhttp_connection *conn_owner(struct metrics_conn *c)
{
	bufferevent_event_cb eventcb = NULL;
	void *cbarg = NULL;
	bufferevent_getcb(c->bev, NULL, NULL, &eventcb, &cbarg);
	if (eventcb == NULL || cbarg == NULL || (c->evcon != NULL && cbarg != c->evcon))
		return NULL;
	return cbarg;
}

static void on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct metrics_conn *c = arg;
	struct evhttp_connection *evcon = conn_owner(c);
	if (c->evcon == NULL && evcon != NULL &&
	    evhttp_connection_get_bufferevent(evcon) == c->bev) {
		/* the accept is over: hear of the close, wait for the deadline */
		const struct timeval tv = {METRICS_DEADLINE_S, 0};
		c->evcon = evcon;
		evhttp_connection_set_closecb(evcon, on_conn_close, c);
		event_add(c->timer, &tv);
		return;
	}
	/* The deadline: whatever state it is in, the connection goes. (Or
	 * evhttp failed to set it up, or let it go without its close
	 * callback: then only our reference is left.) */
	if (c->evcon != NULL && evcon != NULL) {
		evhttp_connection_set_closecb(evcon, NULL, NULL);
		evhttp_connection_free(evcon);
	}
	conn_release(c);
}

/* evhttp asks for each new connection's bufferevent: count the connection
 * here, start its timer, and pause the listener once a second's share or
 * the cap is used up. */
static struct bufferevent *on_new_conn(struct event_base *base, void *arg)
{
	struct metrics_http *m = arg;
	uint64_t now = mx_now_ms();
	if (m->accepted == 0 || now - m->window_ms >= 1000) {
		m->window_ms = now;
		m->accepted = 0;
	}
	if (++m->accepted >= METRICS_ACCEPTS_PER_S && !m->rate_paused) {
		uint64_t left = m->window_ms + 1000 - now;
		const struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
		m->rate_paused = true;
		event_add(m->resume, &tv);
	}
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct metrics_conn *c = bev ? calloc(1, sizeof *c) : NULL;
	if (c && (c->timer = evtimer_new(base, on_conn_timer, c)) != NULL) {
		const struct timeval zero = {0, 0};
		c->m = m;
		c->bev = bev;
		bufferevent_incref(bev);
		event_add(c->timer, &zero);
		c->next = m->conns;
		if (m->conns)
			m->conns->prev = c;
		m->conns = c;
		m->nconns++;
	} else {
		/* out of memory: the connection runs without a deadline; the
		 * rate limit still bounds it */
		free(c);
	}
	listener_update(m);
	return bev;
}

static void free_text(const void *data, size_t len, void *arg)
{
	free((void *)data);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct metrics_http *m = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	/* HEAD: the headers a GET would get and no content (RFC 9110 9.3.2;
	 * evhttp 2.1 sends whatever body it is given, HEAD or not) */
	bool head = evhttp_request_get_command(req) == EVHTTP_REQ_HEAD;

	if (!path || strcmp(path, "/metrics") != 0) {
		static const char nf[] = "not found: the metrics are at /metrics\n";
		evhttp_add_header(out, "Content-Type", "text/plain; charset=utf-8");
		struct evbuffer *b = head ? NULL : evbuffer_new();
		if (b)
			evbuffer_add(b, nf, sizeof nf - 1);
		if (head) {
			char len[24];
			snprintf(len, sizeof len, "%zu", sizeof nf - 1);
			evhttp_add_header(out, "Content-Length", len);
		}
		evhttp_send_reply(req, HTTP_NOTFOUND, "Not Found", b);
		if (b)
			evbuffer_free(b);
		return;
	}
	char *text = m->render(m->arg);
	if (text && head) {
		char len[24];
		snprintf(len, sizeof len, "%zu", strlen(text));
		free(text);
		evhttp_add_header(out, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
		evhttp_add_header(out, "Content-Length", len);
		evhttp_send_reply(req, HTTP_OK, "OK", NULL);
		return;
	}
	struct evbuffer *b = evbuffer_new();
	if (!text || !b) {
		free(text);
		if (b)
			evbuffer_free(b);
		evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
		return;
	}
	evhttp_add_header(out, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	/* evhttp moves the chain to the connection and sends it later: the
	 * text is freed when its last byte has left. */
	if (evbuffer_add_reference(b, text, strlen(text), free_text, NULL) != 0) {
		free(text);
		evbuffer_free(b);
		evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
		return;
	}
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}

struct metrics_http *metrics_http_create(struct event_base *base, const char *host,
                                         uint16_t port, metrics_render_fn render, void *arg,
                                         char *err, size_t errlen)
{
	struct metrics_http *m = calloc(1, sizeof *m);
	if (!m || !(m->http = evhttp_new(base))) {
		free(m);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->render = render;
	m->arg = arg;
	if (!(m->resume = evtimer_new(base, on_resume, m))) {
		metrics_http_free(m);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	evhttp_set_bevcb(m->http, on_new_conn, m);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_timeout(m->http, METRICS_TIMEOUT_S);
	evhttp_set_max_headers_size(m->http, METRICS_MAX_HEADERS);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_gencb(m->http, on_request, m);
	struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(m->http, host, port);
	if (bound == NULL) {
		snprintf(err, errlen, "cannot listen on %s port %u", host, (unsigned)port);
		metrics_http_free(m);
		return NULL;
	}
	m->listener = evhttp_bound_socket_get_listener(bound);
	return m;
}

void metrics_http_free(struct metrics_http *m)
{
	if (!m)
		return;
	if (m->resume)
		event_free(m->resume);
	m->listener = NULL; /* evhttp_free frees it; the close callbacks below must not touch it */
	if (m->http)
		evhttp_free(m->http); /* each connection's close callback releases it */
	while (m->conns) /* those whose accept step had not run yet */
		conn_release(m->conns);
	free(m);
}
