/*
 * metrics_http: the Prometheus scrape endpoint. `GET /metrics` answers the
 * text a render callback builds (exposition format 0.0.4); anything else is
 * 404, a method other than GET/HEAD 501 (evhttp's answer), a body 413. HTTP is libevent's evhttp, on the
 * loop thread: a scrape costs one render, and the endpoint has no state.
 *
 * It has no authentication: bind it to loopback or an admin network. It
 * takes at most 20 new connections a second and keeps at most 64 open (past
 * either, the listener pauses), and closes every connection 10 s after its
 * accept however it trickles its bytes, so a flood or a slow client holds
 * at most 64 descriptors.
 */
#ifndef MX_CTL_METRICS_HTTP_H
#define MX_CTL_METRICS_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct metrics_http;

/* A malloc'd exposition text, or NULL when out of memory (answered 500). */
typedef char *(*metrics_render_fn)(void *arg);

/* Listen on host ("127.0.0.1", "::1") and port. Returns NULL with a
 * message in err. */
struct metrics_http *metrics_http_create(struct event_base *base, const char *host,
                                         uint16_t port, metrics_render_fn render, void *arg,
                                         char *err, size_t errlen);

void metrics_http_free(struct metrics_http *m);

#endif
