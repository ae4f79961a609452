/*
 * config: the typed configuration of a running mxsieve.
 *
 * conf_parse.c reads Momentum's ecelerity.conf stanza syntax into a generic
 * tree (struct conf_node); config.c walks that tree into this struct,
 * checking every option and value and naming FILE:LINE for each error. The
 * rest of the server only ever sees a `const struct mx_config *`: a reload
 * builds a whole new one and swaps it in only when it is complete and valid.
 *
 * Option names are case-insensitive. Defaults are the values an operator of a
 * small production MX would expect; docs/CONFIGURATION.md lists every one.
 */
#ifndef MX_CONF_CONFIG_H
#define MX_CONF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/ipaddr.h"

/* One address block, for Relay_Hosts. */
struct mx_cidr {
	struct ip_addr net;
	unsigned prefix;
};

/* Limits that apply per listener; a value set on ESMTP_Listener applies to
 * every Listen inside it unless the Listen sets its own. */
struct mx_limits {
	uint64_t max_message_size;          /* Max_Message_Size, bytes; 0 = none */
	unsigned max_recipients;            /* Max_Recipients_Per_Message */
	unsigned max_receptions;            /* Max_Receptions_Per_Connection; 0 = none */
	unsigned max_errors;                /* Max_Errors before 421 and close */
	unsigned idle_time;                 /* Idle_Time, seconds */
	unsigned data_time;                 /* Data_Time: idle limit inside DATA, seconds */
	unsigned listener_sessions;         /* Listener_Sessions; 0 = none */
	unsigned max_received;              /* Max_Received_Headers: more is a mail
	                                     * loop (554 5.4.6); 0 = no check */
};

struct mx_listen {
	char *address;        /* as written: "127.0.0.1:2525", "[::1]:2525" */
	char *host;           /* "127.0.0.1", "::1" (brackets removed); "*" = every
	                         address, IPv4 and IPv6 */
	uint16_t port;
	bool proxy_protocol;  /* Proxy_Protocol: a PROXY v1/v2 header is required */
	unsigned proxy_timeout; /* Proxy_Timeout, seconds */
	struct mx_limits limits;
	unsigned line;        /* where it was configured, for messages */
};

enum mx_bare_lf {
	MX_BARE_LF_REJECT = 1, /* Bare_LF = "reject": 550 5.6.0 at end of data */
	MX_BARE_LF_NORMALIZE,  /* Bare_LF = "normalize": bare LF/CR become CRLF */
};

enum mx_delivery {
	MX_DELIVERY_MAILDIR = 1, /* Delivery = "maildir" */
	MX_DELIVERY_RELAY,       /* Delivery = "relay": to Relay_Target over SMTP */
};

enum mx_runtime_error {
	MX_RUNTIME_ERROR_FAIL = 1, /* 451 4.3.0 and end the phase */
	MX_RUNTIME_ERROR_CONTINUE, /* log and carry on */
};

/* Phases a policy script can be attached to, in SMTP order. */
enum mx_phase {
	MX_PHASE_CONNECT = 0,
	MX_PHASE_EHLO,
	MX_PHASE_MAILFROM,
	MX_PHASE_RCPTTO,
	MX_PHASE_DATA,
	MX_PHASE_COUNT
};

struct mx_script_conf {
	char *source;   /* path, resolved against the config file's folder */
	unsigned line;
};

/* sieve "NAME" { script PHASE_phaseN { source = "PATH" } ... } */
struct mx_sieve_conf {
	char *name;
	struct mx_script_conf scripts[MX_PHASE_COUNT][2]; /* [phase][0|1] */
	enum mx_runtime_error runtime_error;
	unsigned max_tarpit;          /* Max_Tarpit: cap on summed ec_tarpit, seconds */
	unsigned max_dns_lookups;     /* per phase run */
	unsigned dns_timeout;         /* seconds */
	unsigned max_run_time;        /* ms of CPU a script run may spend in its tests */
};

#define MX_AUDIT_MONITORS_MAX 16 /* monitors = ( ... ) entries, at most */

/* inbound_audit { monitors = ("300,6" "1800,4"); max_tracked = N; max_memory = 2G; } */
struct mx_audit_conf {
	struct {
		unsigned window;  /* W, seconds */
		unsigned count;   /* N windows */
	} *monitors;
	size_t nmonitors;
	size_t max_tracked;   /* cap on addresses with windowed data */
	uint64_t max_memory;  /* bytes of windowed data, at most */
};

struct mx_config {
	char *path;                 /* the file this came from */
	char *hostname;             /* Hostname: banner, Received; default gethostname() */
	char *user;                 /* User: drop to it after binding when root */
	bool log_syslog;            /* Log_Syslog */
	int log_level;              /* Log_Level: "debug" "info" "notice" "warning" "error" */

	struct mx_listen *listens;  /* ESMTP_Listener { Listen ... } */
	size_t nlistens;
	unsigned service_sessions;  /* Service_Sessions; 0 = none */
	char *control_path;         /* Control_Listener { Listen "PATH" } or NULL */
	char *metrics_address;      /* Metrics_Listener { Listen "IP:PORT" } or NULL */
	unsigned control_line;      /* their Listen lines, for errors at start (0: unset) */
	unsigned metrics_line;

	struct mx_cidr *relay_hosts;  /* Relay_Hosts: clients that may relay */
	size_t nrelay_hosts;
	char **relay_domains;         /* Relay_Domains: domains we accept mail for */
	size_t nrelay_domains;
	char *valid_recipients;       /* Valid_Recipients: the file, or NULL (any local part) */
	char *recipient_delimiter;    /* Recipient_Delimiter: bytes that start an extension */
	struct mx_recipients *recipients; /* its entries (conf/recipients.h), read at load */

	enum mx_delivery delivery;
	char *maildir;              /* Maildir: root of MAILDIR/<domain>/<local>/ */
	unsigned maildir_line;      /* its line, for errors at start (0: unset) */
	char *relay_target;         /* Relay_Target: "host:port" of the downstream MTA */
	unsigned relay_connections; /* Relay_Connections: delivery threads, one
	                             * connection to Relay_Target each */
	bool fsync;                 /* Fsync = false only for throwaway test setups */
	uint64_t min_free_space;    /* Min_Free_Space: bytes kept free under Maildir;
	                             * MAIL gets 452 4.3.1 below it (0 = only SIZE counts) */

	char *tls_certificate;      /* TLS_Certificate, PEM; NULL = self-signed on first start */
	char *tls_key;              /* TLS_Key */
	char *tls_dir;              /* where a self-signed pair is created ("var/tls") */
	unsigned tls_certificate_line; /* the TLS_* lines, for errors at start (0: unset) */
	unsigned tls_key_line;
	unsigned tls_dir_line;
	unsigned dns_server_line; /* DNS_Server's line, for resolver errors (0: unset) */

	enum mx_bare_lf bare_lf;
	bool early_talker_reject;   /* Early_Talker_Reject: 554 to a client that talks first */
	unsigned shutdown_grace;    /* Shutdown_Grace, seconds */
	char *dns_server;           /* DNS_Server "ip:port"; NULL = /etc/resolv.conf */

	struct mx_audit_conf audit;
	struct mx_sieve_conf *sieve; /* the sieve "NAME" stanza, or NULL */
};

/* Read and check FILE. On success returns the config; on failure returns NULL
 * and writes each error as "FILE:LINE: message\n" to `errors` (which the
 * caller frees). */
struct mx_config *mx_config_load(const char *path, char **errors);

/* The same from text in memory; `path` names it in messages and anchors
 * relative paths. */
struct mx_config *mx_config_load_text(const char *path, const char *text,
                                      size_t len, char **errors);

void mx_config_free(struct mx_config *cfg);

/* Whether `client` may relay (is in Relay_Hosts). */
bool mx_config_can_relay(const struct mx_config *cfg, const struct ip_addr *client);

/* Whether mail for `domain` (case-insensitive, no trailing dot) is accepted. */
bool mx_config_accepts_domain(const struct mx_config *cfg, const char *domain);

/* The length of the part of `local` (a canonical local part) that names
 * the mailbox: up to the first Recipient_Delimiter byte ("user+ext" ->
 * 4). The whole length when there is no delimiter, it would leave nothing
 * ("+ext"), or the local part is quoted. */
size_t mx_config_mailbox_len(const struct mx_config *cfg, const char *local);

/* Split "host:port", "[v6]:port", or (when !need_port) "host" / "[v6]" into
 * host (brackets removed) and port (0 when absent). A bracketed host must be
 * an IPv6 literal; an unbracketed host with a ':' is refused. */
bool mx_hostport_split(const char *text, char *host, size_t hostlen,
                       uint16_t *port, bool need_port);

/* The settings that only a restart changes (the delivery threads, the
 * audit's monitors, the console socket and the identity are set up once)
 * and that differ between `old` and `cfg`: their names, ", "-separated, in
 * out (the names that fit in len). Returns how many differ. */
size_t mx_config_restart_changes(const struct mx_config *old, const struct mx_config *cfg,
                                 char *out, size_t len);

/* Phase names as in the config and the policy language: "connect", ... */
const char *mx_phase_name(enum mx_phase phase);

#endif
