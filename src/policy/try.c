/*
 * try: `mxsieve try`, a dry run of one phase of a policy for a given client,
 * with the connection state given as fixtures, and no socket opened.
 *
 *   mxsieve try --phase connect --client 203.0.113.9 \
 *       --sessions 203.0.113.0/24=10000 --script examples/policy/connect.sieve
 *
 * The fixtures fill a real `struct audit` (the module the server uses) and the
 * script runs through the same policy_* answers as a live session, so what it
 * prints is what the server would do. The client's own session is counted,
 * as it is in the server: --sessions gives the *other* sessions.
 */
#include "policy/try.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit/audit.h"
#include "policy/headers.h"
#include "policy/policy.h"
#include "policy/vctx.h"
#include "sieve/sieve.h"
#include "util/clock.h"

#define TRY_MAX_LIST 64
#define TRY_MAX_SPREAD 65536u

struct try_dns {
	char *name;
	enum sieve_dns_type type;
	char *answer; /* NULL: NXDOMAIN; "SERVFAIL": a failure */
};

struct try_ctx {
	struct policy_client pc;
	uint16_t port;
	const char *helo;
	const char *mail_from;
	const char *rcpts[TRY_MAX_LIST];
	size_t nrcpts;
	struct policy_headers headers; /* --message, indexed as the server does */
	uint64_t size;
	struct vctx conn, mess;
	struct try_dns dns[TRY_MAX_LIST];
	size_t ndns;
	unsigned dns_lookups; /* by the phase's slots so far (max_dns_lookups) */
};

static bool env_client(void *ud, struct ip_addr *addr, uint16_t *port)
{
	struct try_ctx *t = ud;
	*addr = t->pc.addr;
	*port = t->port;
	return true;
}

static const char *env_helo(void *ud)
{
	return ((struct try_ctx *)ud)->helo;
}

static const char *env_mail_from(void *ud)
{
	return ((struct try_ctx *)ud)->mail_from;
}

static const char *env_rcpt_to(void *ud, size_t i)
{
	struct try_ctx *t = ud;
	return i < t->nrcpts ? t->rcpts[i] : NULL;
}

static const char *env_header(void *ud, const char *name, size_t i)
{
	struct try_ctx *t = ud;
	return policy_headers_get(&t->headers, name, i);
}

static uint64_t env_size(void *ud)
{
	return ((struct try_ctx *)ud)->size;
}

static const char *env_vctx_get(void *ud, enum sieve_vctx scope, const char *key)
{
	struct try_ctx *t = ud;
	return vctx_get(scope == SIEVE_VCTX_CONN ? &t->conn : &t->mess, key);
}

static bool env_vctx_set(void *ud, enum sieve_vctx scope, const char *key,
                         const char *value, char *err, size_t errlen)
{
	struct try_ctx *t = ud;
	return vctx_set(scope == SIEVE_VCTX_CONN ? &t->conn : &t->mess, key, value, err, errlen);
}

static bool env_audit_count(void *ud, enum sieve_audit_scope scope, const char *arg,
                            uint64_t *out, char *err, size_t errlen)
{
	return policy_audit_count(&((struct try_ctx *)ud)->pc, scope, arg, out, err, errlen);
}

static bool env_ip_window(void *ud, enum sieve_window_counter counter,
                          const struct sieve_window_query *q, uint64_t *out,
                          char *err, size_t errlen)
{
	return policy_ip_window(&((struct try_ctx *)ud)->pc, counter, q, out, err, errlen);
}

static bool env_series_sum(void *ud, const char *name, unsigned window, unsigned count,
                           int mask, unsigned start, unsigned end, uint64_t *out,
                           char *err, size_t errlen)
{
	return policy_series_sum(&((struct try_ctx *)ud)->pc, name, window, count, mask,
	                         start, end, out, err, errlen);
}

static bool env_series_add(void *ud, const char *name, unsigned window, unsigned count,
                           uint64_t amount, char *err, size_t errlen)
{
	return policy_series_add(&((struct try_ctx *)ud)->pc, name, window, count, amount,
	                         err, errlen);
}

static const struct sieve_env try_env = {
	.client = env_client,
	.helo = env_helo,
	.mail_from = env_mail_from,
	.rcpt_to = env_rcpt_to,
	.header = env_header,
	.message_size = env_size,
	.vctx_get = env_vctx_get,
	.vctx_set = env_vctx_set,
	.audit_count = env_audit_count,
	.ip_window = env_ip_window,
	.series_sum = env_series_sum,
	.series_add = env_series_add,
};

/* Add `n` to the host part of an address (big-endian carry). */
static void addr_add(struct ip_addr *a, uint32_t n)
{
	int last = a->family == IP_V4 ? 3 : 15;
	uint32_t carry = n;

	for (int i = last; i >= 0 && carry; i--) {
		uint32_t v = a->bytes[i] + (carry & 0xff);
		a->bytes[i] = (uint8_t)v;
		carry = (carry >> 8) + (v >> 8);
	}
}

/* --sessions BLOCK=N: N sessions spread over the first addresses of BLOCK. */
static bool add_sessions(struct audit *au, const char *spec)
{
	char block[128];
	const char *eq = strrchr(spec, '=');
	struct ip_addr net;
	unsigned prefix;
	char *end;

	if (!eq || (size_t)(eq - spec) >= sizeof block) {
		fprintf(stderr, "mxsieve try: --sessions wants BLOCK=N, not \"%s\"\n", spec);
		return false;
	}
	memcpy(block, spec, (size_t)(eq - spec));
	block[eq - spec] = '\0';
	unsigned long long n = strtoull(eq + 1, &end, 10);
	if (*end || eq[1] == '\0' || n > 10000000ull) {
		fprintf(stderr, "mxsieve try: --sessions: bad count in \"%s\" (0-10000000)\n", spec);
		return false;
	}
	if (!ip_block_parse(block, &net, &prefix)) {
		fprintf(stderr, "mxsieve try: --sessions: \"%s\" is not an address or block\n", block);
		return false;
	}
	unsigned hostbits = ip_addr_bits(&net) - prefix;
	uint64_t spread = hostbits >= 16 ? TRY_MAX_SPREAD : (1ull << hostbits);
	if (spread > n)
		spread = n ? n : 1;
	for (unsigned long long i = 0; i < n; i++) {
		struct ip_addr a = net;
		addr_add(&a, (uint32_t)(i % spread));
		if (!audit_live_add(au, &a, 0)) {
			fprintf(stderr, "mxsieve try: out of memory adding sessions\n");
			return false;
		}
	}
	return true;
}

static bool add_dns(struct try_ctx *t, const char *spec)
{
	static const struct {
		const char *name;
		enum sieve_dns_type type;
	} types[] = {{"A", SIEVE_DNS_A}, {"AAAA", SIEVE_DNS_AAAA}, {"TXT", SIEVE_DNS_TXT},
	             {"MX", SIEVE_DNS_MX}, {"PTR", SIEVE_DNS_PTR}};
	const char *slash = strchr(spec, '/');
	const char *eq = slash ? strchr(slash, '=') : NULL;

	if (t->ndns == TRY_MAX_LIST) {
		fprintf(stderr, "mxsieve try: at most %d --dns answers\n", TRY_MAX_LIST);
		return false;
	}
	if (!slash || !eq) {
		fprintf(stderr, "mxsieve try: --dns wants NAME/TYPE=ANSWER, not \"%s\"\n", spec);
		return false;
	}
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		size_t tl = strlen(types[i].name);
		if ((size_t)(eq - slash - 1) == tl && strncasecmp(slash + 1, types[i].name, tl) == 0) {
			struct try_dns *d = &t->dns[t->ndns++];
			d->name = strndup(spec, (size_t)(slash - spec));
			d->type = types[i].type;
			d->answer = eq[1] ? strdup(eq + 1) : NULL;
			return true;
		}
	}
	fprintf(stderr, "mxsieve try: --dns: unknown type in \"%s\" (A AAAA TXT MX PTR)\n", spec);
	return false;
}

/* A message file, as the server would see it at the end of DATA: its
 * size, and its header section indexed by the server's rules
 * (policy/headers.h). At most TRY_MESSAGE_MAX bytes. */
#define TRY_MESSAGE_MAX (64u << 20)
static bool load_message(struct try_ctx *t, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return false;
	}
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	bool ok = buf != NULL;
	while (ok) {
		if (len == cap) {
			char *b = cap < TRY_MESSAGE_MAX ? realloc(buf, cap * 2) : NULL;
			if (!b) {
				fprintf(stderr, "mxsieve try: --message %s: over %u MiB\n", path,
				        TRY_MESSAGE_MAX >> 20);
				ok = false;
				break;
			}
			buf = b;
			cap *= 2;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f)) { /* a directory, an I/O error */
				fprintf(stderr, "mxsieve try: --message %s: %s\n", path, strerror(errno));
				ok = false;
			}
			break;
		}
	}
	fclose(f);
	if (ok) {
		t->size = len;
		policy_headers_parse(&t->headers, buf, len);
	}
	free(buf);
	return ok;
}

static void print_reply_line(void *arg, unsigned code, char sep, const char *status,
                             const char *line, int len)
{
	(void)arg;
	printf("reply: %u%c%s %.*s\n", code, sep, status, len, line);
}

static const char *normal_reply(enum mx_phase phase)
{
	switch (phase) {
	case MX_PHASE_CONNECT:
		return "220 (the banner)";
	case MX_PHASE_EHLO:
		return "250 (the EHLO reply)";
	case MX_PHASE_MAILFROM:
		return "250 2.1.0 Ok";
	case MX_PHASE_RCPTTO:
		return "250 2.1.5 Ok";
	case MX_PHASE_DATA:
		return "250 2.0.0 Ok: queued";
	case MX_PHASE_COUNT:
		break;
	}
	return "?";
}

static void answer_dns(struct try_ctx *t, struct sieve_run *run)
{
	const char *name;
	enum sieve_dns_type type;

	if (!sieve_run_dns_request(run, &name, &type))
		return;
	for (size_t i = 0; i < t->ndns; i++) {
		if (t->dns[i].type != type || strcasecmp(t->dns[i].name, name) != 0)
			continue;
		if (!t->dns[i].answer) {
			printf("dns: %s -> NXDOMAIN (fixture)\n", name);
			sieve_run_dns_resume(run, NULL, 0, SIEVE_DNS_NXDOMAIN);
		} else if (strcmp(t->dns[i].answer, "SERVFAIL") == 0) {
			printf("dns: %s -> SERVFAIL (fixture)\n", name);
			sieve_run_dns_resume(run, NULL, 0, SIEVE_DNS_FAILED);
		} else {
			const char *a[1] = {t->dns[i].answer};
			printf("dns: %s -> %s (fixture)\n", name, a[0]);
			sieve_run_dns_resume(run, a, 1, SIEVE_DNS_OK);
		}
		return;
	}
	printf("dns: %s -> NXDOMAIN (no fixture)\n", name);
	sieve_run_dns_resume(run, NULL, 0, SIEVE_DNS_NXDOMAIN);
}

static void print_trace(void *ud, unsigned line, const char *what, int result)
{
	const char *script = ud;

	if (result < 0)
		printf("trace: %s:%u: %s\n", script, line, what);
	else
		printf("trace: %s:%u: %s -> %s\n", script, line, what, result ? "true" : "false");
}

/* Run one script; returns true when its result is terminal. */
static bool run_one(struct try_ctx *t, const struct sieve_script *s, unsigned *delay,
                    enum mx_phase phase)
{
	struct sieve_run *run = sieve_run_new(s, &try_env, t);
	enum sieve_status st;
	bool terminal;

	if (!run) {
		fprintf(stderr, "mxsieve try: out of memory\n");
		return true;
	}
	sieve_run_set_dns_lookups(run, t->dns_lookups); /* both slots count, as in the server */
	printf("script: %s\n", sieve_script_name(s));
	sieve_run_set_trace(run, print_trace, (void *)sieve_script_name(s));
	while ((st = sieve_run_execute(run)) == SIEVE_SUSPENDED)
		answer_dns(t, run);
	const struct sieve_result *r = sieve_run_result(run);
	for (size_t i = 0; i < r->nlog_lines; i++)
		printf("log: %s\n", r->log_lines[i]);
	if (r->error)
		printf("runtime error: %s\n", r->error);
	if (r->tarpit_seconds)
		printf("tarpit: %u s\n", r->tarpit_seconds);
	for (size_t i = 0; i < r->ncounters; i++)
		printf("counter: %s:%s (%s)\n", mx_phase_name(phase), r->counters[i].name,
		       r->counters[i].cls == SIEVE_COUNT_5XX ? "5xx"
		       : r->counters[i].cls == SIEVE_COUNT_4XX ? "4xx" : "informational");
	*delay += r->tarpit_seconds;
	t->dns_lookups = sieve_run_dns_lookups(run);
	terminal = r->terminal || st == SIEVE_ERROR;
	if (r->action == SIEVE_ACT_ERROR || (st == SIEVE_ERROR && r->code == 0))
		printf("reply: 451 4.3.0 %s\n", /* the server's words (smtp_policy) */
		       r->text ? r->text : "Temporary policy failure, try again later");
	else if (r->code)
		policy_reply_lines(r->code, r->enhanced, r->text, print_reply_line, NULL);
	else if (terminal) {
		printf("reply: %s%s\n", normal_reply(phase),
		       r->discard ? " (message discarded)" : "");
	}
	if (r->disconnect)
		printf("then: disconnect\n");
	sieve_run_free(run);
	return terminal;
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: mxsieve try --phase PHASE (--script FILE | -c CONFIG) [options]\n"
	        "  --client ADDR        the client address (default 127.0.0.1)\n"
	        "  --port N             its port (default 40000)\n"
	        "  --listener N         the listener it came in on (default 0)\n"
	        "  --sessions BLOCK=N   N other sessions open from BLOCK (repeatable)\n"
	        "  --helo NAME          HELO/EHLO name\n"
	        "  --from ADDR          envelope sender\n"
	        "  --rcpt ADDR          envelope recipient (repeatable)\n"
	        "  --message FILE       the message, for the data phase\n"
	        "  --vctx-conn K=V      connection context (repeatable)\n"
	        "  --dns NAME/TYPE=ANSWER  DNS fixture; empty ANSWER = NXDOMAIN, SERVFAIL\n");
}

static bool kv_option(struct vctx *v, const char *spec)
{
	char err[128], key[VCTX_MAX_KEY + 1];
	const char *eq = strchr(spec, '=');

	if (!eq || eq == spec) {
		fprintf(stderr, "mxsieve try: --vctx-conn wants KEY=VALUE, not \"%s\"\n", spec);
		return false;
	}
	if ((size_t)(eq - spec) > VCTX_MAX_KEY) {
		fprintf(stderr, "mxsieve try: --vctx-conn: a key of at most %d bytes, not \"%.*s\"\n",
		        VCTX_MAX_KEY, (int)(eq - spec), spec);
		return false;
	}
	memcpy(key, spec, (size_t)(eq - spec));
	key[eq - spec] = '\0';
	if (!vctx_set(v, key, eq + 1, err, sizeof err)) {
		fprintf(stderr, "mxsieve try: %s\n", err);
		return false;
	}
	return true;
}

int policy_try_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"phase", required_argument, NULL, 'p'},  {"script", required_argument, NULL, 's'},
		{"config", required_argument, NULL, 'c'}, {"client", required_argument, NULL, 'a'},
		{"port", required_argument, NULL, 'P'},   {"listener", required_argument, NULL, 'l'},
		{"sessions", required_argument, NULL, 'S'}, {"helo", required_argument, NULL, 'h'},
		{"from", required_argument, NULL, 'f'},   {"rcpt", required_argument, NULL, 'r'},
		{"message", required_argument, NULL, 'm'}, {"vctx-conn", required_argument, NULL, 'v'},
		{"dns", required_argument, NULL, 'd'},    {NULL, 0, NULL, 0},
	};
	struct try_ctx t = {0};
	const char *phase_name = NULL, *script = NULL, *config = NULL, *client = "127.0.0.1";
	const char *sessions[TRY_MAX_LIST];
	size_t nsessions = 0;
	int c, status = 1;
	struct mx_config *cfg = NULL;
	struct policy *pol = NULL;
	const struct sieve_script *scripts[2] = {NULL, NULL};
	struct sieve_script *own = NULL;
	enum mx_phase phase;

	t.helo = "";
	t.mail_from = "";
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (c) {
		case 'p': phase_name = optarg; break;
		case 's': script = optarg; break;
		case 'c': config = optarg; break;
		case 'a': client = optarg; break;
		case 'P':
		case 'l': {
			/* the listener numbers the audit takes; a port */
			unsigned long max = c == 'l' ? AUDIT_LISTENERS_MAX - 1 : 65535;
			char *e;
			errno = 0;
			unsigned long v = strtoul(optarg, &e, 10);
			if (!*optarg || *e || errno || optarg[0] == '-' || v > max) {
				fprintf(stderr, "mxsieve try: --%s \"%s\": want a number from 0 to %lu\n",
				        c == 'l' ? "listener" : "port", optarg, max);
				return 2;
			}
			if (c == 'l')
				t.pc.listener = (unsigned)v;
			else
				t.port = (uint16_t)v;
			break;
		}
		case 'S':
			if (nsessions == TRY_MAX_LIST) {
				fprintf(stderr, "mxsieve try: at most %d --sessions\n", TRY_MAX_LIST);
				return 2;
			}
			sessions[nsessions++] = optarg;
			break;
		case 'h': t.helo = optarg; break;
		case 'f': t.mail_from = optarg; break;
		case 'r':
			if (t.nrcpts == TRY_MAX_LIST) {
				fprintf(stderr, "mxsieve try: at most %d --rcpt\n", TRY_MAX_LIST);
				return 2;
			}
			t.rcpts[t.nrcpts++] = optarg;
			break;
		case 'm':
			if (!load_message(&t, optarg))
				return 1;
			break;
		case 'v':
			if (!kv_option(&t.conn, optarg))
				return 1;
			break;
		case 'd':
			if (!add_dns(&t, optarg))
				return 1;
			break;
		default:
			goto bad;
		}
	}
	if (!phase_name || (!script == !config) || optind != argc)
		goto bad;
	if (!sieve_phase_parse(phase_name, &phase)) {
		fprintf(stderr, "mxsieve try: unknown phase \"%s\" (connect ehlo mailfrom rcptto data)\n",
		        phase_name);
		return 1;
	}
	if (!ip_addr_parse(client, &t.pc.addr)) {
		fprintf(stderr, "mxsieve try: --client \"%s\" is not an IP address\n", client);
		return 1;
	}
	if (t.port == 0)
		t.port = 40000;

	if (config) {
		char *errors = NULL;
		cfg = mx_config_load(config, &errors);
		if (!cfg) {
			fputs(errors ? errors : "configuration error\n", stderr);
			free(errors);
			return 1;
		}
		pol = policy_load(cfg, &errors);
		if (!pol) {
			fputs(errors ? errors : "policy error\n", stderr);
			free(errors);
			goto out;
		}
		free(errors);
		scripts[0] = policy_script(pol, phase, 0);
		scripts[1] = policy_script(pol, phase, 1);
	} else {
		struct sieve_diags diags = {0};
		own = sieve_compile_file(script, phase, NULL, &diags);
		for (size_t i = 0; i < diags.count; i++)
			fprintf(stderr, "%s\n", diags.lines[i]);
		sieve_diags_clear(&diags);
		if (!own)
			goto out;
		scripts[0] = own;
	}
	t.pc.audit = policy_audit_create(cfg);
	if (!t.pc.audit) {
		fprintf(stderr, "mxsieve try: out of memory\n");
		goto out;
	}
	t.pc.now_ms = mx_now_ms();
	for (size_t i = 0; i < nsessions; i++)
		if (!add_sessions(t.pc.audit, sessions[i]))
			goto out;
	/* The session being rehearsed counts itself, as in the server. */
	if (!audit_live_add(t.pc.audit, &t.pc.addr, t.pc.listener)) {
		fprintf(stderr, "mxsieve try: out of memory\n");
		goto out;
	}
	audit_record(t.pc.audit, &t.pc.addr, AUDIT_CONNECTIONS, t.pc.now_ms);

	printf("phase: %s\nclient: %s\n", mx_phase_name(phase), client);
	unsigned delay = 0;
	bool terminal = false;
	for (int i = 0; i < 2 && !terminal; i++)
		if (scripts[i])
			terminal = run_one(&t, scripts[i], &delay, phase);
	if (!terminal)
		printf("reply: %s (implicit keep)\n", normal_reply(phase));
	/* the server caps the sum over both slots by max_tarpit (smtp_policy) */
	unsigned cap = cfg && cfg->sieve ? cfg->sieve->max_tarpit : SIEVE_DEFAULT_MAX_TARPIT;
	printf("delay: %u s\n", delay < cap ? delay : cap);
	status = 0;
out:
	if (t.pc.audit)
		audit_destroy(t.pc.audit);
	sieve_script_free(own);
	policy_unref(pol);
	mx_config_free(cfg);
	vctx_clear(&t.conn);
	vctx_clear(&t.mess);
	policy_headers_free(&t.headers);
	for (size_t i = 0; i < t.ndns; i++) {
		free(t.dns[i].name);
		free(t.dns[i].answer);
	}
	return status;
bad:
	usage();
	return 2;
}
