/*
 * metrics: the server's numbers in Prometheus' text exposition format, for
 * the Metrics_Listener endpoint (ctl/metrics_http.h serves them).
 */
#ifndef MX_DAEMON_METRICS_H
#define MX_DAEMON_METRICS_H

struct mx_server;

/* A malloc'd exposition text for srv (a struct mx_server *), or NULL when
 * out of memory. Runs on the loop thread. */
char *mx_metrics_render(void *srv);

#endif
