/*
 * server: the running daemon: configuration life cycle, listeners, signals,
 * reload, shutdown and privilege drop, around one struct smtp_server.
 *
 * Start-up order (each step may fail with FILE:LINE or a named path):
 * config and scripts -> TLS files -> Maildir root -> deliver_clean_tmp ->
 * bind listeners -> control socket -> metrics endpoint -> drop privileges ->
 * delivery threads -> audit -> DNS resolver -> signals -> loop.
 *
 * Reload (SIGHUP, or the console's "reload"): a new config is loaded and
 * checked completely, every policy script compiled and the Listen entries
 * that appeared are bound; on any error every message is logged, what the
 * reload had bound is closed again, and the old config, scripts and
 * listeners (with their PROXY settings) stay. On success it is swapped in
 * for new sessions (running sessions keep theirs), the new listeners
 * accept, kept ones take their new PROXY settings, those that
 * disappeared are closed (their sessions finish), the TLS context is
 * rebuilt, a changed DNS_Server or dns_timeout gets a new resolver (lookups
 * in flight finish on the old one). Not changed by a reload: the settings
 * mx_config_restart_changes names (User, Log_Syslog, Control_Listener,
 * Delivery, Maildir, Relay_Target, Fsync, inbound_audit); when they differ
 * the log and the console's answer name them. No reload once a shutdown
 * has begun (it would bind the listeners again): SIGHUP is ignored, the
 * console's is refused with an error.
 */
#ifndef MX_DAEMON_SERVER_H
#define MX_DAEMON_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "smtp/smtp_server.h"

struct event;
struct net_listener;
struct ctl;
struct metrics_http;
struct policy;

struct mx_server {
	struct event_base *base;
	struct smtp_server smtp;
	struct net_listener *listeners;
	struct smtp_cfgref *start_cfg; /* the configuration started with (restart-only values) */
	char *config_path;
	struct ctl *ctl;
	struct metrics_http *metrics; /* Metrics_Listener, or NULL */
	time_t started;
	struct policy *policy;       /* compiled scripts of the current config */
	struct event *sig_term, *sig_int, *sig_hup, *tick, *grace;
	bool stopping;
	int exit_code;
};

/* Load FILE and bring the server up, listening. Returns 0, or -1 after
 * printing each error to stderr as "FILE:LINE: message" or "mxsieve: ...". */
int mx_server_start(struct mx_server *srv, const char *config_path);

/* Run the event loop until shutdown completes; returns the exit status. */
int mx_server_run(struct mx_server *srv);

/* Reload the configuration file. Returns 0 on success, with the names of
 * changed settings that only a restart applies in note ("" when none); on
 * failure -1 and a malloc'd text of every error in *errors (caller frees). */
int mx_server_reload(struct mx_server *srv, char **errors, char *note, size_t notelen);

/* Begin a graceful shutdown (what SIGTERM does). */
void mx_server_stop(struct mx_server *srv);

/* Free everything: after mx_server_run returned, or after a failed
 * mx_server_start (it frees what the start had set up). */
void mx_server_free(struct mx_server *srv);

#endif
