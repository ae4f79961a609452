/*
 * smtp_policy: runs the policy scripts of a phase for a session. See
 * smtp_policy.h for the contract with the session.
 *
 * A run walks the phase's two slots (phaseN 1, then 2 unless 1 ended with a
 * terminal action). Each slot is one sieve run; a run that needs DNS is
 * suspended, the lookup goes to c-ares on the event loop (net/dns.h), and
 * the run resumes in the lookup's callback: other sessions are served
 * meanwhile. Tarpit seconds of both slots add up and are capped by the
 * sieve stanza's max_tarpit; the session applies them with a timer.
 *
 * The sieve_env callbacks below answer the script's questions from the
 * session (smtp_session_* views), the audit module (through policy_*), and
 * the session's two context stores (vctx). Predefined context keys are
 * computed on read and cannot be overwritten.
 *
 * Ownership: the session's slot holds a struct smtp_policy_state (the vctx
 * stores, and the run in flight). Every run uses the compiled scripts the
 * session was accepted with (smtp_session_policy: the session holds a
 * reference until it ends), so a reload neither switches a session to new
 * scripts between two phases nor frees them in the middle of a DNS wait.
 * A run's state is freed before `done` is called, because `done` may start
 * the next phase's run at once.
 */
#include "smtp/smtp_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit/audit.h"
#include "net/dns.h"
#include "policy/headers.h"
#include "policy/policy.h"
#include "policy/vctx.h"
#include "sieve/sieve.h"
#include "smtp/smtp_server.h"
#include "smtp/smtp_session.h"
#include "util/clock.h"
#include "util/log.h"

struct policy_run {
	struct smtp_session *s;
	enum mx_phase phase;
	smtp_policy_done_fn done;
	struct policy *pol;        /* the session's scripts (its reference) */
	unsigned slot;
	struct sieve_run *run;
	struct dns_query *query;   /* lookup in flight, or NULL */
	unsigned tarpit;           /* summed over slots */
	unsigned dns_lookups;      /* made by the slots before, for max_dns_lookups */
	struct policy_client pc;
	struct policy_headers headers; /* parsed on first use, data phase */
	bool headers_parsed;
	char scratch[1024];        /* strings handed to the engine */
};

struct smtp_policy_state {
	struct vctx conn, mess;
	struct policy_run *run;
};

static struct smtp_policy_state *state_of(struct smtp_session *s, bool create)
{
	struct smtp_policy_state **slot = smtp_session_policy_slot(s);

	if (!*slot && create)
		*slot = calloc(1, sizeof **slot);
	return *slot;
}

/* ------------------------------------------------------------------ */
/* the environment                                                     */

static bool env_client(void *ud, struct ip_addr *addr, uint16_t *port)
{
	struct policy_run *pr = ud;
	*addr = *smtp_session_client(pr->s);
	*port = smtp_session_port(pr->s);
	return true;
}

static const char *env_helo(void *ud)
{
	const char *h = smtp_session_helo(((struct policy_run *)ud)->s);
	return h ? h : "";
}

static const char *env_mail_from(void *ud)
{
	const char *f = smtp_session_sender(((struct policy_run *)ud)->s);
	return f ? f : "";
}

static const char *env_rcpt_to(void *ud, size_t i)
{
	struct policy_run *pr = ud;
	const char *local, *domain;

	if (!smtp_session_rcpt(pr->s, i, &local, &domain))
		return NULL;
	if (!domain || !domain[0])
		snprintf(pr->scratch, sizeof pr->scratch, "%s", local);
	else
		snprintf(pr->scratch, sizeof pr->scratch, "%s@%s", local, domain);
	return pr->scratch;
}

/* Index the header section of the message on first use (policy/headers.h:
 * the rules `mxsieve try --message` follows too). */
static void parse_headers(struct policy_run *pr)
{
	const char *data;
	size_t len;
	uint64_t size;

	pr->headers_parsed = true;
	if (smtp_session_message(pr->s, &data, &len, &size))
		policy_headers_parse(&pr->headers, data, len);
}

static const char *env_header(void *ud, const char *name, size_t i)
{
	struct policy_run *pr = ud;

	if (!pr->headers_parsed)
		parse_headers(pr);
	return policy_headers_get(&pr->headers, name, i);
}

static uint64_t env_message_size(void *ud)
{
	const char *data;
	size_t len;
	uint64_t size = 0;

	smtp_session_message(((struct policy_run *)ud)->s, &data, &len, &size);
	return size;
}

/* Predefined context keys, computed from the session; NULL if not one. */
static const char *predefined(struct policy_run *pr, enum sieve_vctx scope, const char *key)
{
	struct smtp_session *s = pr->s;
	unsigned msgs, rcpts, mrcpts;
	char *b = pr->scratch;
	size_t bl = sizeof pr->scratch;

	smtp_session_counts(s, &msgs, &rcpts, &mrcpts);
	if (scope == SIEVE_VCTX_MESS) {
		if (strcmp(key, "message_rcpt_count") == 0) {
			snprintf(b, bl, "%u", mrcpts);
			return b;
		}
		return NULL;
	}
	if (strcmp(key, "ehlo_domain") == 0)
		return env_helo(pr);
	if (strcmp(key, "early_talker") == 0)
		return smtp_session_early_talker(s) ? "1" : "0";
	if (strcmp(key, "tls") == 0)
		return smtp_session_tls(s) ? "1" : "0";
	if (strcmp(key, "remote_ip") == 0)
		return ip_addr_format(smtp_session_client(s), b, bl);
	if (strcmp(key, "remote_port") == 0) {
		snprintf(b, bl, "%u", smtp_session_port(s));
		return b;
	}
	if (strcmp(key, "listener") == 0)
		return smtp_session_listener_name(s);
	if (strcmp(key, "connection_message_count") == 0) {
		snprintf(b, bl, "%u", msgs);
		return b;
	}
	if (strcmp(key, "connection_rcpt_count") == 0) {
		snprintf(b, bl, "%u", rcpts);
		return b;
	}
	if (strcmp(key, "message_rcpt_count") == 0) {
		snprintf(b, bl, "%u", mrcpts);
		return b;
	}
	if (strcmp(key, "can_relay") == 0)
		return mx_config_can_relay(smtp_session_config(s), smtp_session_client(s)) ? "1"
		                                                                           : "0";
	return NULL;
}

static const char *env_vctx_get(void *ud, enum sieve_vctx scope, const char *key)
{
	struct policy_run *pr = ud;
	struct smtp_policy_state *st = state_of(pr->s, false);
	const char *v = predefined(pr, scope, key);

	if (v || !st)
		return v;
	return vctx_get(scope == SIEVE_VCTX_CONN ? &st->conn : &st->mess, key);
}

static bool env_vctx_set(void *ud, enum sieve_vctx scope, const char *key, const char *value,
                         char *err, size_t errlen)
{
	struct policy_run *pr = ud;
	struct smtp_policy_state *st = state_of(pr->s, true);

	if (!st) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	if (predefined(pr, scope, key)) {
		snprintf(err, errlen, "context key \"%s\" is predefined and read-only", key);
		return false;
	}
	return vctx_set(scope == SIEVE_VCTX_CONN ? &st->conn : &st->mess, key, value, err, errlen);
}

static bool audit_ready(struct policy_run *pr, char *err, size_t errlen)
{
	if (pr->pc.audit)
		return true;
	snprintf(err, errlen, "inbound_audit is not available");
	return false;
}

static bool env_audit_count(void *ud, enum sieve_audit_scope scope, const char *arg,
                            uint64_t *out, char *err, size_t errlen)
{
	struct policy_run *pr = ud;
	return audit_ready(pr, err, errlen) &&
	       policy_audit_count(&pr->pc, scope, arg, out, err, errlen);
}

static bool env_ip_window(void *ud, enum sieve_window_counter counter,
                          const struct sieve_window_query *q, uint64_t *out, char *err,
                          size_t errlen)
{
	struct policy_run *pr = ud;
	pr->pc.now_ms = mx_now_ms();
	return audit_ready(pr, err, errlen) &&
	       policy_ip_window(&pr->pc, counter, q, out, err, errlen);
}

static bool env_series_sum(void *ud, const char *name, unsigned window, unsigned count,
                           int mask, unsigned start, unsigned end, uint64_t *out, char *err,
                           size_t errlen)
{
	struct policy_run *pr = ud;
	pr->pc.now_ms = mx_now_ms();
	return audit_ready(pr, err, errlen) &&
	       policy_series_sum(&pr->pc, name, window, count, mask, start, end, out, err, errlen);
}

static bool env_series_add(void *ud, const char *name, unsigned window, unsigned count,
                           uint64_t amount, char *err, size_t errlen)
{
	struct policy_run *pr = ud;
	pr->pc.now_ms = mx_now_ms();
	return audit_ready(pr, err, errlen) &&
	       policy_series_add(&pr->pc, name, window, count, amount, err, errlen);
}

static const struct sieve_env session_env = {
	.client = env_client,
	.helo = env_helo,
	.mail_from = env_mail_from,
	.rcpt_to = env_rcpt_to,
	.header = env_header,
	.message_size = env_message_size,
	.vctx_get = env_vctx_get,
	.vctx_set = env_vctx_set,
	.audit_count = env_audit_count,
	.ip_window = env_ip_window,
	.series_sum = env_series_sum,
	.series_add = env_series_add,
};

/* ------------------------------------------------------------------ */
/* running the slots                                                   */

static void run_free(struct policy_run *pr)
{
	struct smtp_policy_state *st = state_of(pr->s, false);

	if (pr->query)
		dns_cancel(pr->query);
	sieve_run_free(pr->run);
	policy_headers_free(&pr->headers);
	if (st && st->run == pr)
		st->run = NULL;
	free(pr);
}

static void finish(struct policy_run *pr, struct smtp_verdict *v)
{
	struct smtp_session *s = pr->s;
	smtp_policy_done_fn done = pr->done;
	const struct mx_config *cfg = smtp_session_config(s);
	/* max_tarpit = 0 means no delay at all, not the default */
	unsigned cap = cfg->sieve ? cfg->sieve->max_tarpit : SIEVE_DEFAULT_MAX_TARPIT;

	v->tarpit = pr->tarpit < cap ? pr->tarpit : cap;
	run_free(pr);
	done(s, v);
}

/* Log, count and turn one finished slot's result into the verdict; returns
 * true when the phase is decided. */
static bool take_result(struct policy_run *pr, enum sieve_status status,
                        struct smtp_verdict *v)
{
	const struct sieve_result *r = sieve_run_result(pr->run);
	struct smtp_server *srv = smtp_session_server(pr->s);
	unsigned id = smtp_session_id(pr->s);
	char q[1200];

	srv->stats.policy_runs++;
	if (srv->policy_stats)
		policy_stats_add_result(srv->policy_stats, pr->phase, r);
	for (size_t i = 0; i < r->nlog_lines; i++)
		log_event(LOG_INFO, "policy_log", "session=%u phase=%s text=%s", id,
		          mx_phase_name(pr->phase),
		          log_quote(r->log_lines[i], strlen(r->log_lines[i]), q, sizeof q));
	if (r->error) {
		srv->stats.policy_errors++;
		log_event(LOG_WARNING, "policy_error", "session=%u phase=%s error=%s", id,
		          mx_phase_name(pr->phase), log_quote(r->error, strlen(r->error), q, sizeof q));
	}
	pr->tarpit += r->tarpit_seconds;

	if (r->action == SIEVE_ACT_ERROR || (status == SIEVE_ERROR && r->action == SIEVE_ACT_NONE)) {
		v->code = 451;
		snprintf(v->status, sizeof v->status, "4.3.0");
		v->text = strdup("Temporary policy failure, try again later");
		return true;
	}
	switch (r->action) {
	case SIEVE_ACT_REPLY:
	case SIEVE_ACT_DISCONNECT:
		v->code = r->code;
		snprintf(v->status, sizeof v->status, "%s", r->enhanced);
		v->text = r->text ? strdup(r->text) : NULL;
		v->disconnect = r->disconnect || r->action == SIEVE_ACT_DISCONNECT;
		return true;
	case SIEVE_ACT_DISCARD:
		v->discard = true;
		return true;
	case SIEVE_ACT_KEEP:
		return true;
	case SIEVE_ACT_NONE:
	case SIEVE_ACT_ERROR:
		break;
	}
	if (r->disconnect) {
		v->disconnect = true;
		return true;
	}
	return r->terminal;
}

static void advance(struct policy_run *pr);

static void on_dns(void *arg, enum dns_status status, const char *const *answers, size_t n)
{
	struct policy_run *pr = arg;
	enum sieve_dns_status st = status == DNS_OK ? SIEVE_DNS_OK
	                           : status == DNS_NXDOMAIN ? SIEVE_DNS_NXDOMAIN
	                                                    : SIEVE_DNS_FAILED;

	pr->query = NULL;
	sieve_run_dns_resume(pr->run, answers, n, st);
	advance(pr);
}

static enum dns_type dns_type_of(enum sieve_dns_type t)
{
	switch (t) {
	case SIEVE_DNS_AAAA:
		return DNS_TYPE_AAAA;
	case SIEVE_DNS_TXT:
		return DNS_TYPE_TXT;
	case SIEVE_DNS_MX:
		return DNS_TYPE_MX;
	case SIEVE_DNS_PTR:
		return DNS_TYPE_PTR;
	case SIEVE_DNS_A:
		break;
	}
	return DNS_TYPE_A;
}

/* Run the current slot until it waits for DNS or ends; then the next slot,
 * or finish. */
static void advance(struct policy_run *pr)
{
	struct smtp_verdict v;

	memset(&v, 0, sizeof v);
	for (;;) {
		if (!pr->run) {
			const struct sieve_script *sc = NULL;
			while (pr->slot < 2 && !(sc = policy_script(pr->pol, pr->phase, pr->slot)))
				pr->slot++;
			if (!sc) {
				finish(pr, &v); /* no terminal action: implicit keep */
				return;
			}
			pr->run = sieve_run_new(sc, &session_env, pr);
			if (!pr->run) {
				v.code = 451;
				snprintf(v.status, sizeof v.status, "4.3.0");
				v.text = strdup("Temporary policy failure, try again later");
				finish(pr, &v);
				return;
			}
			sieve_run_set_dns_lookups(pr->run, pr->dns_lookups);
		}
		enum sieve_status st = sieve_run_execute(pr->run);
		if (st == SIEVE_SUSPENDED) {
			const char *name;
			enum sieve_dns_type type;
			struct dns_resolver *dns = smtp_session_server(pr->s)->dns;
			if (!sieve_run_dns_request(pr->run, &name, &type)) {
				sieve_run_dns_resume(pr->run, NULL, 0, SIEVE_DNS_FAILED);
				continue;
			}
			pr->query = dns ? dns_lookup(dns, name, dns_type_of(type), on_dns, pr) : NULL;
			if (!pr->query) {
				sieve_run_dns_resume(pr->run, NULL, 0, SIEVE_DNS_FAILED);
				continue;
			}
			return; /* on_dns resumes */
		}
		bool decided = take_result(pr, st, &v);
		pr->dns_lookups = sieve_run_dns_lookups(pr->run);
		sieve_run_free(pr->run);
		pr->run = NULL;
		pr->slot++;
		if (decided || pr->slot >= 2) {
			finish(pr, &v);
			return;
		}
	}
}

void smtp_policy_run(struct smtp_session *s, enum mx_phase phase, smtp_policy_done_fn done)
{
	struct smtp_server *srv = smtp_session_server(s);
	struct policy *pol = smtp_session_policy(s);
	struct smtp_verdict v;
	struct smtp_policy_state *st;
	struct policy_run *pr;

	memset(&v, 0, sizeof v);
	if (!pol || !policy_has_phase(pol, phase)) {
		done(s, &v);
		return;
	}
	st = state_of(s, true);
	pr = st ? calloc(1, sizeof *pr) : NULL;
	if (!pr) {
		v.code = 451;
		snprintf(v.status, sizeof v.status, "4.3.0");
		done(s, &v);
		return;
	}
	pr->s = s;
	pr->phase = phase;
	pr->done = done;
	pr->pol = pol;
	pr->pc.audit = srv->audit;
	pr->pc.addr = *smtp_session_client(s);
	pr->pc.listener = smtp_session_listener(s);
	pr->pc.now_ms = mx_now_ms();
	st->run = pr;
	advance(pr);
}

void smtp_policy_cancel(struct smtp_session *s)
{
	struct smtp_policy_state **slot = smtp_session_policy_slot(s);
	struct smtp_policy_state *st = *slot;

	if (!st)
		return;
	if (st->run)
		run_free(st->run);
	vctx_clear(&st->conn);
	vctx_clear(&st->mess);
	free(st);
	*slot = NULL;
}

void smtp_policy_message_end(struct smtp_session *s)
{
	struct smtp_policy_state *st = state_of(s, false);

	if (st)
		vctx_clear(&st->mess);
}

void smtp_verdict_clear(struct smtp_verdict *v)
{
	free(v->text);
	memset(v, 0, sizeof *v);
}
