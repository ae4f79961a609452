/*
 * server: daemon life cycle. See server.h.
 */
#include "daemon/server.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "audit/audit.h"
#include "conf/config.h"
#include "conf/recipients.h"
#include "ctl/ctl.h"
#include "ctl/metrics_http.h"
#include "daemon/metrics.h"
#include "deliver/deliver.h"
#include "net/dns.h"
#include "net/listener.h"
#include "net/tls.h"
#include "policy/policy.h"
#include "smtp/smtp_session.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/log.h"

#define MX_DELIVER_THREADS 2

static void on_accept(struct net_listener *l, int fd, struct sockaddr *sa, int socklen,
                      void *arg)
{
	struct mx_server *srv = arg;
	smtp_session_accept(&srv->smtp, l, fd, sa, socklen);
}

/* "FILE:LINE: what: why" for a start-up or reload step that fails on a
 * config entry, like every config error ("FILE: ..." when the setting is a
 * default and has no line). */
static void conf_error(char *out, size_t len, const struct mx_config *cfg, unsigned line,
                       const char *what, const char *why)
{
	if (line)
		snprintf(out, len, "%s:%u: %s%s%s", cfg->path, line, what, *what ? ": " : "", why);
	else
		snprintf(out, len, "%s: %s%s%s", cfg->path, what, *what ? ": " : "", why);
}

static struct net_listener *find_listener(struct mx_server *srv, const char *address)
{
	for (struct net_listener *l = srv->listeners; l; l = l->next)
		if (strcmp(l->address, address) == 0)
			return l;
	return NULL;
}

_Static_assert(NET_LISTENER_INDEX_MAX <= AUDIT_LISTENERS_MAX,
               "every listener number must be one the audit takes");

static void close_listeners(struct net_listener *list)
{
	while (list) {
		struct net_listener *l = list;
		list = l->next;
		net_listener_close(l);
	}
}

/* Listening is changed in two steps, so that a reload is all or nothing:
 * bind_listeners binds every Listen of cfg not open yet into a list of
 * its own, and on the first failure closes what it bound and returns -1
 * (errors in err); only when all are bound does commit_listeners apply
 * cfg to the listeners (cannot fail). The loop does not run between the
 * two, so no client reaches a listener of a reload that failed. */
static int bind_listeners(struct mx_server *srv, const struct mx_config *cfg,
                          struct net_listener **fresh, char *err, size_t errlen)
{
	struct net_listener **tail = fresh; /* in cfg's order, for the log */

	*fresh = NULL;
	for (size_t i = 0; i < cfg->nlistens; i++) {
		if (find_listener(srv, cfg->listens[i].address))
			continue;
		char why[512];
		struct net_listener *l = net_listener_open(srv->base, &cfg->listens[i], on_accept,
		                                           srv, why, sizeof why);
		if (!l) { /* named by the line of its Listen, like every config error */
			snprintf(err, errlen, "%s:%u: %s", cfg->path, cfg->listens[i].line, why);
			close_listeners(*fresh);
			*fresh = NULL;
			return -1;
		}
		*tail = l;
		tail = &l->next;
	}
	return 0;
}

/* Kept listeners take cfg's PROXY settings, the fresh ones (from
 * bind_listeners) join the list, and those cfg no longer has are closed. */
static void commit_listeners(struct mx_server *srv, const struct mx_config *cfg,
                             struct net_listener *fresh)
{
	for (size_t i = 0; i < cfg->nlistens; i++) {
		struct net_listener *have = find_listener(srv, cfg->listens[i].address);
		if (have) {
			have->proxy = cfg->listens[i].proxy_protocol;
			have->proxy_timeout = cfg->listens[i].proxy_timeout ? cfg->listens[i].proxy_timeout : 5;
		}
	}
	while (fresh) {
		struct net_listener *l = fresh;
		fresh = l->next;
		l->next = srv->listeners;
		srv->listeners = l;
		log_event(LOG_INFO, "listen", "address=%s index=%u proxy=%s", l->address, l->index,
		          l->proxy ? "yes" : "no");
	}
	struct net_listener **pp = &srv->listeners;
	while (*pp) {
		struct net_listener *l = *pp;
		bool keep = false;
		for (size_t i = 0; i < cfg->nlistens && !keep; i++)
			keep = strcmp(cfg->listens[i].address, l->address) == 0;
		if (keep) {
			pp = &l->next;
			continue;
		}
		*pp = l->next;
		log_event(LOG_INFO, "unlisten", "address=%s index=%u", l->address, l->index);
		net_listener_close(l);
	}
}

static int drop_privileges(const struct mx_config *cfg, char *err, size_t errlen)
{
	if (!cfg->user || geteuid() != 0)
		return 0;
	struct passwd *pw = getpwnam(cfg->user);
	if (!pw) {
		snprintf(err, errlen, "%s: User \"%s\": no such user", cfg->path, cfg->user);
		return -1;
	}
	/* The files we created as root must stay usable by the user. */
	char cert[2048], key[2048];
	net_tls_paths(cfg, cert, key, sizeof cert);
	if (!cfg->tls_certificate) {
		if (cfg->tls_dir && chown(cfg->tls_dir, pw->pw_uid, pw->pw_gid) < 0) {
			snprintf(err, errlen, "chown %s: %s", cfg->tls_dir, strerror(errno));
			return -1;
		}
		if (chown(cert, pw->pw_uid, pw->pw_gid) < 0 || chown(key, pw->pw_uid, pw->pw_gid) < 0) {
			snprintf(err, errlen, "chown %s: %s", key, strerror(errno));
			return -1;
		}
	}
	if (cfg->maildir && chown(cfg->maildir, pw->pw_uid, pw->pw_gid) < 0) {
		snprintf(err, errlen, "chown %s: %s", cfg->maildir, strerror(errno));
		return -1;
	}
	/* the console socket (bound as root, mode 0600) is for root and the
	 * server's own user (ctl.h), who needs to own it for that */
	if (cfg->control_path && lchown(cfg->control_path, pw->pw_uid, pw->pw_gid) < 0) {
		snprintf(err, errlen, "chown %s: %s", cfg->control_path, strerror(errno));
		return -1;
	}
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		snprintf(err, errlen, "dropping privileges to %s: %s", cfg->user, strerror(errno));
		return -1;
	}
	if (pw->pw_uid != 0 && (setuid(0) == 0 || geteuid() == 0 || getegid() != pw->pw_gid)) {
		snprintf(err, errlen, "dropping privileges to %s: still privileged", cfg->user);
		return -1;
	}
	log_event(LOG_INFO, "privileges", "user=%s uid=%u gid=%u", cfg->user, (unsigned)pw->pw_uid,
	          (unsigned)pw->pw_gid);
	return 0;
}

static void on_drained(struct smtp_server *smtp)
{
	struct mx_server *srv = (struct mx_server *)((char *)smtp - offsetof(struct mx_server, smtp));
	log_event(LOG_INFO, "drained", "sessions=0");
	event_base_loopexit(srv->base, NULL);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct mx_server *srv = arg;
	(void)fd;
	(void)what;
	log_event(LOG_NOTICE, "shutdown_grace_expired", "sessions=%u", srv->smtp.nsessions);
	smtp_server_close_all(&srv->smtp);
	/* closing sessions flush for at most ~10 s; then stop regardless */
	struct timeval tv = {11, 0};
	event_base_loopexit(srv->base, &tv);
}

void mx_server_stop(struct mx_server *srv)
{
	if (srv->stopping)
		return;
	srv->stopping = true;
	unsigned grace = srv->smtp.cfg->cfg->shutdown_grace;
	log_event(LOG_INFO, "shutdown", "sessions=%u grace=%u", srv->smtp.nsessions, grace);
	/* Close the sockets (not just stop accepting): new clients get a
	 * refusal at once instead of waiting in the backlog. */
	while (srv->listeners) {
		struct net_listener *l = srv->listeners;
		srv->listeners = l->next;
		net_listener_close(l);
	}
	srv->grace = evtimer_new(srv->base, on_grace, srv);
	struct timeval tv = {grace, 0};
	evtimer_add(srv->grace, &tv);
	smtp_server_drain(&srv->smtp);
}

static unsigned dns_timeout_of(const struct mx_config *cfg)
{
	return cfg->sieve ? cfg->sieve->dns_timeout : 5;
}

/* " recipients=N" for the start and reload lines when Valid_Recipients is
 * set (how many entries were read), else "". */
static const char *recipients_note(const struct mx_config *cfg, char *buf, size_t len)
{
	if (cfg->recipients == NULL)
		return "";
	snprintf(buf, len, " recipients=%zu", mx_recipients_count(cfg->recipients));
	return buf;
}

int mx_server_reload(struct mx_server *srv, char **errors, char *note, size_t notelen)
{
	char *errs = NULL, err[512];
	struct policy *pol = NULL;
	SSL_CTX *tls = NULL;
	struct dns_resolver *dns = NULL;
	struct smtp_cfgref *ref = NULL;
	struct net_listener *fresh = NULL;
	const struct mx_config *old = srv->smtp.cfg->cfg;

	*errors = NULL;
	if (notelen > 0)
		note[0] = '\0';
	struct mx_config *cfg = mx_config_load(srv->config_path, &errs);
	if (!cfg) {
		*errors = errs ? errs : strdup("unknown error");
		return -1;
	}
	free(errs);
	errs = NULL;
	if (!(pol = policy_load(cfg, &errs))) {
		*errors = errs ? errs : strdup("policy scripts failed to compile");
		goto fail;
	}
	free(errs);
	unsigned line = 0;
	if (net_tls_prepare(cfg, err, sizeof err, &line) < 0 ||
	    !(tls = net_tls_create(cfg, err, sizeof err, &line))) {
		char why[sizeof err];
		snprintf(why, sizeof why, "%s", err);
		conf_error(err, sizeof err, cfg, line, "", why);
		goto fail_err;
	}
	if ((old->dns_server == NULL) != (cfg->dns_server == NULL) ||
	    (old->dns_server && strcmp(old->dns_server, cfg->dns_server) != 0) ||
	    dns_timeout_of(old) != dns_timeout_of(cfg)) {
		char why[256];
		dns = dns_resolver_create(srv->base, cfg->dns_server, dns_timeout_of(cfg), why,
		                          sizeof why);
		if (!dns) {
			conf_error(err, sizeof err, cfg, cfg->dns_server_line, "", why);
			goto fail_err;
		}
	}
	if (!(ref = smtp_cfgref_new(cfg))) {
		snprintf(err, sizeof err, "out of memory");
		goto fail_err;
	}
	/* Last: a Listen that cannot be bound (a port taken) fails the reload
	 * and closes what it had bound; nothing else has changed yet. */
	if (bind_listeners(srv, cfg, &fresh, err, sizeof err) < 0)
		goto fail_err;
	/* Committed from here on. */
	commit_listeners(srv, cfg, fresh);
	/* against what runs (the start's values), not the last reload's */
	if (mx_config_restart_changes(srv->start_cfg->cfg, cfg, note, notelen) > 0) {
		char q[600];
		log_event(LOG_WARNING, "reload", "restart_needed=%s note=\"changed, but kept as they "
		          "were until a restart\"", log_quote(note, strlen(note), q, sizeof q));
	}
	if (dns) {
		dns_resolver_adopt(dns, srv->smtp.dns);
		srv->smtp.dns = dns;
	}
	SSL_CTX_free(srv->smtp.tls);
	srv->smtp.tls = tls;
	log_set_level(cfg->log_level);
	smtp_server_set_config(&srv->smtp, ref);
	if (srv->policy)
		policy_unref(srv->policy);
	srv->policy = pol;
	srv->smtp.policy = pol;
	char rc[48];
	char q[PATH_MAX + 64];
	log_event(LOG_INFO, "reload", "config=%s result=ok%s",
	          log_quote(srv->config_path, strlen(srv->config_path), q, sizeof q),
	          recipients_note(cfg, rc, sizeof rc));
	return 0;

fail_err:
	*errors = strdup(err);
fail:
	dns_resolver_free(dns);
	SSL_CTX_free(tls);
	if (pol)
		policy_unref(pol);
	if (ref)
		smtp_cfgref_unref(ref); /* frees cfg */
	else
		mx_config_free(cfg);
	return -1;
}

/* One log line per error of a failed reload, then the verdict. */
static void log_reload_failure(const struct mx_server *srv, const char *errors)
{
	const char *p = errors ? errors : "";

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char q[1024];
		if (n)
			log_event(LOG_ERR, "reload_error", "error=%s", log_quote(p, n, q, sizeof q));
		p += n + (nl ? 1 : 0);
	}
	char q[PATH_MAX + 64];
	log_event(LOG_ERR, "reload", "config=%s result=failed note=\"keeping the old configuration\"",
	          log_quote(srv->config_path, strlen(srv->config_path), q, sizeof q));
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct mx_server *srv = arg;
	(void)what;
	if (sig == SIGHUP && srv->stopping)
		return; /* never rebind listeners while shutting down */
	if (sig != SIGHUP && srv->stopping) {
		/* a second SIGTERM/SIGINT: skip the rest of the grace */
		evtimer_del(srv->grace);
		on_grace(-1, 0, srv);
		return;
	}
	if (sig == SIGHUP) {
		char *errors = NULL, note[256];
		if (mx_server_reload(srv, &errors, note, sizeof note) < 0)
			log_reload_failure(srv, errors);
		free(errors);
		return;
	}
	mx_server_stop(srv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct mx_server *srv = arg;
	(void)fd;
	(void)what;
	if (srv->smtp.audit)
		audit_tick(srv->smtp.audit, mx_now_ms());
}

static char *ctl_error(const char *msg)
{
	size_t n = strlen(msg) + 16;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "error: %s\n", msg);
	return out;
}

static char *ctl_reload(void *arg, int argc, char **argv)
{
	struct mx_server *srv = arg;
	char *errors = NULL, note[256], ok[320];
	/* "reload", or "sieve reload" (ctl_sieve checked its words) */
	if (argc > 1 && strcasecmp(argv[0], "reload") == 0)
		return ctl_error("usage: reload (no arguments)");
	/* As for SIGHUP: a reload would bind the listeners the shutdown closed. */
	if (srv->stopping)
		return ctl_error("shutting down: reload refused");
	if (mx_server_reload(srv, &errors, note, sizeof note) == 0) {
		if (note[0] == '\0')
			return strdup("reloaded");
		snprintf(ok, sizeof ok, "reloaded; changed but kept until a restart: %s", note);
		return strdup(ok);
	}
	log_reload_failure(srv, errors);
	size_t n = strlen(errors) + 32;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "error: %s", errors);
	free(errors);
	return out;
}

/* inbound_audit show ip ADDR[/N] | inbound_audit top N [/MASK] */
static char *ctl_audit(void *arg, int argc, char **argv)
{
	struct mx_server *srv = arg;
	char err[256], *out;

	if (!srv->smtp.audit)
		return ctl_error("inbound_audit is not running");
	if (argc == 4 && strcasecmp(argv[1], "show") == 0 && strcasecmp(argv[2], "ip") == 0) {
		out = audit_format_show(srv->smtp.audit, argv[3], mx_now_ms(), err, sizeof err);
		return out ? out : ctl_error(err);
	}
	if ((argc == 3 || argc == 4) && strcasecmp(argv[1], "top") == 0) {
		char *end;
		unsigned long n = strtoul(argv[2], &end, 10);
		if (*end || argv[2][0] == '\0' || n == 0 || n > 10000)
			return ctl_error("usage: inbound_audit top N [/MASK] (N from 1 to 10000)");
		out = audit_format_top(srv->smtp.audit, (unsigned)n, argc == 4 ? argv[3] : NULL, err,
		                       sizeof err);
		return out ? out : ctl_error(err);
	}
	return ctl_error("usage: inbound_audit show ip ADDR[/N] | inbound_audit top N [/MASK]");
}

/* sieve stats | sieve reset | sieve reload */
static char *ctl_sieve(void *arg, int argc, char **argv)
{
	struct mx_server *srv = arg;

	if (argc == 2 && strcasecmp(argv[1], "stats") == 0)
		return policy_stats_format(srv->smtp.policy_stats);
	if (argc == 2 && strcasecmp(argv[1], "reset") == 0) {
		policy_stats_reset(srv->smtp.policy_stats);
		return strdup("sieve counters reset\n");
	}
	if (argc == 2 && strcasecmp(argv[1], "reload") == 0)
		return ctl_reload(arg, argc, argv);
	return ctl_error("usage: sieve stats | sieve reset | sieve reload");
}

static char *ctl_summary(void *arg, int argc, char **argv)
{
	struct mx_server *srv = arg;
	const struct smtp_stats *st = &srv->smtp.stats;
	struct audit_stats as = {0};
	(void)argv;
	if (argc > 1)
		return ctl_error("usage: summary (no arguments)");
	char *out = malloc(2048);
	if (srv->smtp.audit)
		audit_get_stats(srv->smtp.audit, &as);
	if (out)
		snprintf(out, 2048,
		         "sessions: %u\ntarpitted: %llu\nconnections: %llu\nmessages: %llu\n"
		         "refused: %llu\nrelay_denied: %llu\nunknown_recipients: %llu\n"
		         "storage_refused: %llu\nnext_hop_refused: %llu\n"
		         "concurrency_refused: %llu\nproxy_errors: %llu\n"
		         "early_talkers: %llu\ntls: %llu\ntarpits: %llu\npolicy_runs: %llu\n"
		         "policy_errors: %llu\naudit_live_addresses: %llu\n"
		         "audit_tracked_addresses: %llu\naudit_evictions: %llu\naudit_bytes: %llu\n",
		         srv->smtp.nsessions, (unsigned long long)st->tarpitted_now,
		         (unsigned long long)st->connections, (unsigned long long)st->messages,
		         (unsigned long long)st->refused, (unsigned long long)st->relay_denied,
		         (unsigned long long)st->unknown_rcpts, (unsigned long long)st->storage_refused,
		         (unsigned long long)st->next_hop_refused,
		         (unsigned long long)st->cap_refused,
		         (unsigned long long)st->proxy_errors, (unsigned long long)st->early_talkers,
		         (unsigned long long)st->tls, (unsigned long long)st->tarpits,
		         (unsigned long long)st->policy_runs, (unsigned long long)st->policy_errors,
		         (unsigned long long)as.live_addresses, (unsigned long long)as.tracked_addresses,
		         (unsigned long long)as.evictions, (unsigned long long)as.bytes);
	return out;
}

/* An MX holds one descriptor per session: use all the kernel allows us. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_event(LOG_WARNING, "rlimit", "error=\"%s\"", strerror(errno));
	}
}

int mx_server_start(struct mx_server *srv, const char *config_path)
{
	char *errs = NULL, err[4200], what[PATH_MAX + 64], msg[PATH_MAX + 8600];
	struct mx_config *cfg;

	memset(srv, 0, sizeof *srv);
	srv->started = time(NULL);
	srv->config_path = strdup(config_path);
	cfg = mx_config_load(config_path, &errs);
	if (!cfg) {
		fputs(errs ? errs : "mxsieve: cannot load the configuration\n", stderr);
		free(errs);
		return -1;
	}
	free(errs);
	errs = NULL;
	srv->policy = policy_load(cfg, &errs);
	if (!srv->policy) {
		fputs(errs ? errs : "mxsieve: policy scripts failed to compile\n", stderr);
		if (errs && errs[0] && errs[strlen(errs) - 1] != '\n')
			fputc('\n', stderr);
		free(errs);
		mx_config_free(cfg);
		return -1;
	}
	free(errs);
	log_open(cfg->log_syslog, "mxsieve");
	log_set_level(cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	srv->smtp.policy = srv->policy;
	srv->smtp.policy_stats = policy_stats_new();
	if (evthread_use_pthreads() < 0) {
		fprintf(stderr, "mxsieve: evthread_use_pthreads failed\n");
		mx_config_free(cfg);
		return -1;
	}
	/* EPOLL_USE_CHANGELIST: libevent coalesces the add/del of one fd within
	 * a loop iteration into at most one epoll_ctl (a bufferevent write
	 * enables then disables EV_WRITE per reply: 16 epoll_ctl per message
	 * measured without it). Safe here: no fd is dup()ed while watched. */
	struct event_config *ecfg = event_config_new();
	if (ecfg) {
		event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		srv->base = event_base_new_with_config(ecfg);
		event_config_free(ecfg);
	}
	if (!srv->base)
		srv->base = event_base_new();
	srv->smtp.base = srv->base;
	srv->smtp.on_drained = on_drained;
	srv->smtp.cfg = smtp_cfgref_new(cfg);
	if (srv->smtp.cfg) { /* what restart-only settings are, for every reload */
		smtp_cfgref_ref(srv->smtp.cfg);
		srv->start_cfg = srv->smtp.cfg;
	}
	if (!srv->base || !srv->smtp.cfg) {
		fprintf(stderr, "mxsieve: out of memory\n");
		return -1;
	}
	unsigned line = 0;
	if (net_tls_prepare(cfg, err, sizeof err, &line) < 0 ||
	    !(srv->smtp.tls = net_tls_create(cfg, err, sizeof err, &line))) {
		conf_error(msg, sizeof msg, cfg, line, "", err);
		fprintf(stderr, "%s\n", msg);
		return -1;
	}
	if (cfg->delivery == MX_DELIVERY_MAILDIR && cfg->maildir && mx_mkdir_p(cfg->maildir, 0755) < 0) {
		snprintf(what, sizeof what, "Maildir %s", cfg->maildir);
		conf_error(msg, sizeof msg, cfg, cfg->maildir_line, what, strerror(errno));
		fprintf(stderr, "%s\n", msg);
		return -1;
	}
	deliver_clean_tmp(cfg);
	struct net_listener *fresh;
	if (bind_listeners(srv, cfg, &fresh, err, sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	commit_listeners(srv, cfg, fresh);
	if (cfg->control_path) {
		srv->ctl = ctl_create(srv->base, cfg->control_path, err, sizeof err);
		if (!srv->ctl) {
			conf_error(msg, sizeof msg, cfg, cfg->control_line, "Control_Listener", err);
			fprintf(stderr, "%s\n", msg);
			return -1;
		}
		/* help lines: the words, a colon, what they do */
		ctl_register(srv->ctl, "reload", "reload: read the configuration again (as SIGHUP)",
		             ctl_reload, srv);
		ctl_register(srv->ctl, "summary", "summary: sessions open, tarpitted now, counters",
		             ctl_summary, srv);
		ctl_register(srv->ctl, "inbound_audit",
		             "inbound_audit show ip ADDR[/N] | inbound_audit top N [/MASK]: one "
		             "address or block, or the N busiest blocks",
		             ctl_audit, srv);
		ctl_register(srv->ctl, "sieve",
		             "sieve stats | sieve reset | sieve reload: the action counters, zero "
		             "them, compile the scripts again",
		             ctl_sieve, srv);
	}
	if (cfg->metrics_address) {
		char host[256];
		uint16_t port;
		/* the config checked the form; bind before the privileges go */
		snprintf(err, sizeof err, "expected \"ADDRESS:PORT\"");
		if (!mx_hostport_split(cfg->metrics_address, host, sizeof host, &port, true) ||
		    !(srv->metrics = metrics_http_create(srv->base, host, port, mx_metrics_render, srv,
		                                         err, sizeof err))) {
			snprintf(what, sizeof what, "Metrics_Listener \"%s\"", cfg->metrics_address);
			conf_error(msg, sizeof msg, cfg, cfg->metrics_line, what, err);
			fprintf(stderr, "%s\n", msg);
			return -1;
		}
		log_event(LOG_INFO, "listen", "address=%s metrics=yes", cfg->metrics_address);
	}
	if (drop_privileges(cfg, err, sizeof err) < 0) {
		fprintf(stderr, "mxsieve: %s\n", err);
		return -1;
	}
	srv->smtp.deliver = deliver_create(srv->base, cfg,
	                                   cfg->delivery == MX_DELIVERY_RELAY ? cfg->relay_connections
	                                                                      : MX_DELIVER_THREADS);
	if (!srv->smtp.deliver) {
		fprintf(stderr, "mxsieve: cannot start delivery\n");
		return -1;
	}
	srv->smtp.audit = policy_audit_create(cfg);
	if (!srv->smtp.audit) {
		fprintf(stderr, "mxsieve: cannot create the audit state\n");
		return -1;
	}
	struct audit_stats as;
	audit_get_stats(srv->smtp.audit, &as);
	if (cfg->audit.nmonitors && as.monitor_cap < cfg->audit.max_tracked)
		log_event(LOG_WARNING, "audit_cap",
		          "max_tracked=%zu cap=%llu max_memory=%llu note=\"the monitors' windows "
		          "of max_tracked addresses would pass half of max_memory\"",
		          cfg->audit.max_tracked, (unsigned long long)as.monitor_cap,
		          (unsigned long long)cfg->audit.max_memory);
	srv->smtp.dns = dns_resolver_create(srv->base, cfg->dns_server, dns_timeout_of(cfg), err,
	                                    sizeof err);
	if (!srv->smtp.dns) {
		conf_error(msg, sizeof msg, cfg, cfg->dns_server_line, "", err);
		fprintf(stderr, "%s\n", msg);
		return -1;
	}
	srv->sig_term = evsignal_new(srv->base, SIGTERM, on_signal, srv);
	srv->sig_int = evsignal_new(srv->base, SIGINT, on_signal, srv);
	srv->sig_hup = evsignal_new(srv->base, SIGHUP, on_signal, srv);
	srv->tick = event_new(srv->base, -1, EV_PERSIST, on_tick, srv);
	struct timeval one = {1, 0};
	if (!srv->sig_term || !srv->sig_int || !srv->sig_hup || !srv->tick ||
	    evsignal_add(srv->sig_term, NULL) < 0 || evsignal_add(srv->sig_int, NULL) < 0 ||
	    evsignal_add(srv->sig_hup, NULL) < 0 || evtimer_add(srv->tick, &one) < 0) {
		fprintf(stderr, "mxsieve: cannot install signal handlers\n");
		return -1;
	}
	char rc[48];
	char q[PATH_MAX + 64];
	log_event(LOG_INFO, "start", "config=%s hostname=%s listeners=%zu pid=%ld%s",
	          log_quote(cfg->path, strlen(cfg->path), q, sizeof q),
	          cfg->hostname ? cfg->hostname : "-", cfg->nlistens, (long)getpid(),
	          recipients_note(cfg, rc, sizeof rc));
	return 0;
}

int mx_server_run(struct mx_server *srv)
{
	event_base_dispatch(srv->base);
	log_event(LOG_INFO, "stop", "sessions=%u messages=%llu", srv->smtp.nsessions,
	          (unsigned long long)srv->smtp.stats.messages);
	return srv->exit_code;
}

void mx_server_free(struct mx_server *srv)
{
	while (srv->listeners) {
		struct net_listener *l = srv->listeners;
		srv->listeners = l->next;
		net_listener_close(l);
	}
	if (srv->ctl)
		ctl_destroy(srv->ctl);
	metrics_http_free(srv->metrics);
	/* Sessions still open here were told 421; their jobs finish in deliver. */
	if (srv->smtp.deliver)
		deliver_destroy(srv->smtp.deliver);
	if (srv->smtp.audit && srv->smtp.nsessions == 0)
		audit_destroy(srv->smtp.audit);
	if (srv->sig_term)
		event_free(srv->sig_term);
	if (srv->sig_int)
		event_free(srv->sig_int);
	if (srv->sig_hup)
		event_free(srv->sig_hup);
	if (srv->tick)
		event_free(srv->tick);
	if (srv->grace)
		event_free(srv->grace);
	if (srv->smtp.tls)
		SSL_CTX_free(srv->smtp.tls);
	if (srv->policy)
		policy_unref(srv->policy);
	policy_stats_free(srv->smtp.policy_stats);
	if (srv->smtp.nsessions == 0) {
		dns_resolver_free(srv->smtp.dns);
		smtp_cfgref_unref(srv->smtp.cfg);
		smtp_cfgref_unref(srv->start_cfg);
		if (srv->base)
			event_base_free(srv->base);
	}
	free(srv->config_path);
}
