/*
 * smtp_server: what every SMTP session shares, owned by the daemon.
 *
 * One per process, on the event-loop thread only: the current
 * configuration (reference-counted: a session keeps the config it started
 * with across a reload), the audit state, the delivery queue, the TLS
 * context, the registry of live sessions and the server-wide counters.
 */
#ifndef MX_SMTP_SMTP_SERVER_H
#define MX_SMTP_SMTP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct event_base;
struct audit;
struct deliver;
struct dns_resolver;
struct policy;
struct policy_stats;
struct mx_config;
struct smtp_session;

/* A configuration shared by the sessions that started under it. */
struct smtp_cfgref {
	struct mx_config *cfg;
	unsigned refs;
};

struct smtp_stats {
	uint64_t connections;    /* sessions accepted (after the cap check) */
	uint64_t cap_refused;    /* 421 4.4.5: Listener_Sessions / Service_Sessions */
	uint64_t proxy_errors;   /* bad or missing PROXY header */
	uint64_t early_talkers;  /* clients that sent bytes before the banner */
	uint64_t messages;       /* 250 at end of data */
	uint64_t refused;        /* messages refused at end of data */
	uint64_t relay_denied;   /* RCPT 550 5.7.1: not our domain, not a relay client */
	uint64_t unknown_rcpts;  /* RCPT 550 5.1.1: not in Valid_Recipients */
	uint64_t storage_refused; /* 452 4.3.1: MAIL under Min_Free_Space, or the store full at end of data */
	uint64_t next_hop_refused; /* 451 4.4.1: MAIL while the relay next hop is down */
	uint64_t tls;            /* STARTTLS handshakes completed */
	uint64_t tarpits;        /* replies delayed by a policy tarpit */
	uint64_t tarpitted_now;  /* sessions waiting in a tarpit right now */
	uint64_t policy_runs;    /* scripts run */
	uint64_t policy_errors;  /* runs that ended in a runtime error */
};

struct smtp_server {
	struct event_base *base;
	struct smtp_cfgref *cfg;     /* config for new sessions */
	struct audit *audit;         /* may be NULL (tests) */
	struct deliver *deliver;     /* may be NULL: every message gets 451 */
	SSL_CTX *tls;                /* NULL: no STARTTLS */
	struct policy *policy;       /* compiled scripts for new sessions (each
	                                takes a reference); may be NULL */
	struct policy_stats *policy_stats; /* "sieve stats"; survives reloads */
	struct dns_resolver *dns;    /* for ec_dns_lookup; NULL: lookups fail */
	struct smtp_session *sessions; /* registry, doubly linked */
	unsigned nsessions;
	bool draining;               /* SIGTERM seen: no new connections or transactions */
	uint64_t seq;                /* queue id sequence */
	struct smtp_stats stats;
	uint64_t cap_logged_ms;      /* last concurrency_limit line (mx_now_ms), 0 = none */
	uint64_t cap_unlogged;       /* cap refusals since that line */
	/* called when the last session ends while draining */
	void (*on_drained)(struct smtp_server *srv);
};

/* Wrap a loaded config with one reference (the caller's). */
struct smtp_cfgref *smtp_cfgref_new(struct mx_config *cfg);
void smtp_cfgref_ref(struct smtp_cfgref *r);
/* Drop a reference; the last one frees the config. */
void smtp_cfgref_unref(struct smtp_cfgref *r);

/* Use `cfg` for sessions accepted from now on (takes the caller's reference). */
void smtp_server_set_config(struct smtp_server *srv, struct smtp_cfgref *cfg);

/* Shutdown, step 1: idle sessions get 421 4.3.2 and close now; sessions in
 * a transaction finish it and then get the 421. */
void smtp_server_drain(struct smtp_server *srv);

/* Shutdown, step 2 (grace expired): 421 4.3.2 to every session left. */
void smtp_server_close_all(struct smtp_server *srv);

#endif
