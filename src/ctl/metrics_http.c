/* metrics_http: GET /metrics over libevent's evhttp (see metrics_http.h). */
#include "ctl/metrics_http.h"

#include "util/clock.h"

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
 * window is over (the kernel's backlog holds the rest). With the idle
 * timeout this bounds the descriptors the endpoint can hold to
 * METRICS_ACCEPTS_PER_S * METRICS_TIMEOUT_S, whatever a client does: evhttp
 * (libevent 2.1) has no connection cap of its own. A scraper needs one
 * connection every few seconds. */
#define METRICS_ACCEPTS_PER_S 20

struct metrics_http {
	struct evhttp *http;
	struct evconnlistener *listener;
	struct event *resume;   /* re-enables the listener */
	unsigned accepted;      /* in the current window... */
	uint64_t window_ms;     /* ...which began then (monotonic) and lasts 1 s */
	metrics_render_fn render;
	void *arg;
};

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct metrics_http *m = arg;
	m->accepted = 0; /* the next connection opens a new window */
	evconnlistener_enable(m->listener);
}

/* evhttp asks for each new connection's bufferevent: count the connection
 * here, and pause the listener once a second's share is used up. */
static struct bufferevent *on_new_conn(struct event_base *base, void *arg)
{
	struct metrics_http *m = arg;
	uint64_t now = mx_now_ms();
	if (m->accepted == 0 || now - m->window_ms >= 1000) {
		m->window_ms = now;
		m->accepted = 0;
	}
	if (++m->accepted >= METRICS_ACCEPTS_PER_S && m->listener != NULL) {
		uint64_t left = m->window_ms + 1000 - now;
		const struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
		evconnlistener_disable(m->listener);
		event_add(m->resume, &tv);
	}
	return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
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

	if (!path || strcmp(path, "/metrics") != 0) {
		evhttp_add_header(out, "Content-Type", "text/plain; charset=utf-8");
		struct evbuffer *b = evbuffer_new();
		if (b)
			evbuffer_add_printf(b, "not found: the metrics are at /metrics\n");
		evhttp_send_reply(req, HTTP_NOTFOUND, "Not Found", b);
		if (b)
			evbuffer_free(b);
		return;
	}
	char *text = m->render(m->arg);
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
	if (m->http)
		evhttp_free(m->http);
	free(m);
}
