/*
 * tool: `mxsieve --compile`, `mxsieve --sieve-eval`, and the fixtures that
 * the conformance suite and the differential test run scripts against.
 *
 * A fixture answers every callback of struct sieve_env from fixed tables
 * (see sieve_tool.h). DNS questions are answered only after the run really
 * suspended, so every eval exercises suspend and resume.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sieve/sieve_int.h"
#include "sieve/sieve_tool.h"

#define FX_MAX 64

struct fx_kv {
	char *key, *value;
};

struct sieve_fixture {
	enum mx_phase phase;
	bool have_client;
	struct ip_addr client;
	uint16_t port;
	char *helo, *from;
	char *rcpts[FX_MAX];
	size_t nrcpts;
	struct fx_kv headers[FX_MAX];
	size_t nheaders;
	uint64_t size;
	bool have_size;
	struct fx_kv audit[FX_MAX], audit_listener[FX_MAX], vctx_conn[FX_MAX], vctx_mess[FX_MAX],
	             dns[FX_MAX], window[FX_MAX], series[FX_MAX];
	size_t naudit, naudit_listener, nvctx_conn, nvctx_mess, ndns, nwindow, nseries;
	char last_query[256];
};

struct sieve_fixture *sieve_fixture_new(void)
{
	struct sieve_fixture *fx = calloc(1, sizeof(*fx));
	if (fx)
		fx->phase = MX_PHASE_DATA;
	return fx;
}

static void kv_free(struct fx_kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
}

void sieve_fixture_free(struct sieve_fixture *fx)
{
	if (!fx)
		return;
	free(fx->helo);
	free(fx->from);
	for (size_t i = 0; i < fx->nrcpts; i++)
		free(fx->rcpts[i]);
	kv_free(fx->headers, fx->nheaders);
	kv_free(fx->audit, fx->naudit);
	kv_free(fx->audit_listener, fx->naudit_listener);
	kv_free(fx->vctx_conn, fx->nvctx_conn);
	kv_free(fx->vctx_mess, fx->nvctx_mess);
	kv_free(fx->dns, fx->ndns);
	kv_free(fx->window, fx->nwindow);
	kv_free(fx->series, fx->nseries);
	free(fx);
}

enum mx_phase sieve_fixture_phase(const struct sieve_fixture *fx)
{
	return fx->phase;
}

/* Set or replace key in a table; `sep` splits "key<sep>value". */
static bool kv_put(struct fx_kv *kv, size_t *n, const char *text, char sep, bool replace)
{
	const char *s = strchr(text, sep);
	if (!s)
		return false;
	size_t kl = (size_t)(s - text);
	const char *v = s + 1;
	size_t vl = strlen(v);
	if (sep == ':') { /* a header as the server reads it (policy/headers.h):
	                   * "Name : value" is Name, blanks around the value dropped */
		while (kl > 0 && (text[kl - 1] == ' ' || text[kl - 1] == '\t'))
			kl--;
		for (; vl > 0 && (*v == ' ' || *v == '\t'); vl--)
			v++;
		while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			vl--;
	}
	if (replace)
		for (size_t i = 0; i < *n; i++)
			if (strlen(kv[i].key) == kl && strncmp(kv[i].key, text, kl) == 0) {
				free(kv[i].value);
				kv[i].value = strndup(v, vl);
				return true;
			}
	if (*n >= FX_MAX)
		return false;
	kv[*n].key = strndup(text, kl);
	kv[*n].value = strndup(v, vl);
	(*n)++;
	return true;
}

static const char *kv_get(const struct fx_kv *kv, size_t n, const char *key, size_t index)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(kv[i].key, key) == 0 && index-- == 0)
			return kv[i].value;
	return NULL;
}

bool sieve_fixture_set(struct sieve_fixture *fx, const char *key, const char *value,
                       char *err, size_t errlen)
{
	bool ok = true;
	if (strcmp(key, "phase") == 0) {
		ok = sieve_phase_parse(value, &fx->phase);
	} else if (strcmp(key, "client") == 0) {
		ok = ip_addr_parse(value, &fx->client);
		fx->have_client = ok;
		fx->port = 40000;
	} else if (strcmp(key, "helo") == 0) {
		free(fx->helo);
		fx->helo = strdup(value);
	} else if (strcmp(key, "from") == 0) {
		free(fx->from);
		fx->from = strdup(value);
	} else if (strcmp(key, "to") == 0) {
		ok = fx->nrcpts < FX_MAX;
		if (ok)
			fx->rcpts[fx->nrcpts++] = strdup(value);
	} else if (strcmp(key, "header") == 0) {
		ok = kv_put(fx->headers, &fx->nheaders, value, ':', false);
	} else if (strcmp(key, "size") == 0) {
		char *e;
		errno = 0;
		fx->size = strtoull(value, &e, 10);
		fx->have_size = true;
		ok = value[0] >= '0' && value[0] <= '9' && *e == '\0' && errno == 0;
	} else if (strcmp(key, "audit") == 0) {
		ok = kv_put(fx->audit, &fx->naudit, value, '=', true);
	} else if (strcmp(key, "audit-listener") == 0) {
		ok = kv_put(fx->audit_listener, &fx->naudit_listener, value, '=', true);
	} else if (strcmp(key, "vctx_conn") == 0) {
		ok = kv_put(fx->vctx_conn, &fx->nvctx_conn, value, '=', true);
	} else if (strcmp(key, "vctx_mess") == 0) {
		ok = kv_put(fx->vctx_mess, &fx->nvctx_mess, value, '=', true);
	} else if (strcmp(key, "dns") == 0) {
		ok = kv_put(fx->dns, &fx->ndns, value, '=', true);
	} else if (strcmp(key, "window") == 0) {
		ok = kv_put(fx->window, &fx->nwindow, value, '=', true);
	} else if (strcmp(key, "series") == 0) {
		ok = kv_put(fx->series, &fx->nseries, value, '=', true);
	} else {
		snprintf(err, errlen, "unknown fixture key \"%s\"", key);
		return false;
	}
	if (!ok)
		snprintf(err, errlen, "bad fixture value for %s: \"%s\"", key, value);
	return ok;
}

/* ---- the environment over a fixture ---- */

static bool fx_client(void *ud, struct ip_addr *addr, uint16_t *port)
{
	struct sieve_fixture *fx = ud;
	*addr = fx->client;
	*port = fx->port;
	return fx->have_client;
}

static const char *fx_helo(void *ud)
{
	struct sieve_fixture *fx = ud;
	return fx->helo ? fx->helo : "";
}

static const char *fx_from(void *ud)
{
	struct sieve_fixture *fx = ud;
	return fx->from ? fx->from : "";
}

static const char *fx_rcpt(void *ud, size_t i)
{
	struct sieve_fixture *fx = ud;
	return i < fx->nrcpts ? fx->rcpts[i] : NULL;
}

static const char *fx_header(void *ud, const char *name, size_t i)
{
	struct sieve_fixture *fx = ud;
	return kv_get(fx->headers, fx->nheaders, name, i);
}

static uint64_t fx_size(void *ud)
{
	struct sieve_fixture *fx = ud;
	if (fx->have_size)
		return fx->size;
	uint64_t n = 2;
	for (size_t i = 0; i < fx->nheaders; i++)
		n += strlen(fx->headers[i].key) + strlen(fx->headers[i].value) + 4;
	return n;
}

static const char *fx_vctx_get(void *ud, enum sieve_vctx scope, const char *key)
{
	struct sieve_fixture *fx = ud;
	return scope == SIEVE_VCTX_CONN ? kv_get(fx->vctx_conn, fx->nvctx_conn, key, 0)
	                                : kv_get(fx->vctx_mess, fx->nvctx_mess, key, 0);
}

static bool fx_vctx_set(void *ud, enum sieve_vctx scope, const char *key, const char *value,
                        char *err, size_t errlen)
{
	struct sieve_fixture *fx = ud;
	struct fx_kv *kv = scope == SIEVE_VCTX_CONN ? fx->vctx_conn : fx->vctx_mess;
	size_t *n = scope == SIEVE_VCTX_CONN ? &fx->nvctx_conn : &fx->nvctx_mess;
	for (size_t i = 0; i < *n; i++)
		if (strcmp(kv[i].key, key) == 0) {
			free(kv[i].value);
			if (value) {
				kv[i].value = strdup(value);
			} else {
				free(kv[i].key);
				kv[i] = kv[--*n];
			}
			return true;
		}
	if (!value)
		return true;
	if (*n >= FX_MAX) {
		snprintf(err, errlen, "too many keys");
		return false;
	}
	kv[*n].key = strdup(key);
	kv[*n].value = strdup(value);
	(*n)++;
	return true;
}

static bool fx_number(const char *v, uint64_t *out, char *err, size_t errlen)
{
	if (strncmp(v, "error:", 6) == 0) {
		snprintf(err, errlen, "%s", v + 6);
		return false;
	}
	*out = strtoull(v, NULL, 10);
	return true;
}

static bool fx_audit(void *ud, enum sieve_audit_scope scope, const char *arg, uint64_t *out,
                     char *err, size_t errlen)
{
	struct sieve_fixture *fx = ud;
	const char *v = NULL;
	if (scope == SIEVE_AUDIT_LISTENER)
		v = kv_get(fx->audit_listener, fx->naudit_listener, arg, 0);
	if (!v)
		v = kv_get(fx->audit, fx->naudit, arg, 0);
	if (!v) {
		snprintf(err, errlen, "bad address \"%s\"", arg);
		return false;
	}
	return fx_number(v, out, err, errlen);
}

static bool fx_window(void *ud, enum sieve_window_counter counter,
                      const struct sieve_window_query *q, uint64_t *out, char *err, size_t errlen)
{
	struct sieve_fixture *fx = ud;
	static const char *const names[] = {"", "connections", "receptions", "rejections"};
	char key[128];
	/* No MASK means the whole address (inbound-audit.md section 3), as in
	 * the server: /32 for an IPv4 client, /128 for IPv6. */
	int mask = q->mask >= 0 ? q->mask : fx->client.family == IP_V6 ? 128 : 32;
	if (q->hash_form)
		snprintf(key, sizeof(key), "%s %u,%u %u-%u /%d", names[counter], q->window, q->count,
		         q->period_start, q->period_end, mask);
	else
		snprintf(key, sizeof(key), "%s %u /%d", names[counter], q->index, mask);
	const char *v = kv_get(fx->window, fx->nwindow, key, 0);
	if (!v) {
		snprintf(err, errlen, "no monitor for \"%s\"", key);
		return false;
	}
	return fx_number(v, out, err, errlen);
}

static bool fx_series_sum(void *ud, const char *name, unsigned window, unsigned count, int mask,
                          unsigned start, unsigned end, uint64_t *out, char *err, size_t errlen)
{
	struct sieve_fixture *fx = ud;
	char key[160];
	snprintf(key, sizeof(key), "%s %u,%u /%d %u-%u", name, window, count, mask, start, end);
	const char *v = kv_get(fx->series, fx->nseries, key, 0);
	*out = 0;
	return v ? fx_number(v, out, err, errlen) : true;
}

static bool fx_series_add(void *ud, const char *name, unsigned window, unsigned count,
                          uint64_t amount, char *err, size_t errlen)
{
	return true;
}

static const struct sieve_env fixture_env = {
	.client = fx_client,
	.helo = fx_helo,
	.mail_from = fx_from,
	.rcpt_to = fx_rcpt,
	.header = fx_header,
	.message_size = fx_size,
	.vctx_get = fx_vctx_get,
	.vctx_set = fx_vctx_set,
	.audit_count = fx_audit,
	.ip_window = fx_window,
	.series_sum = fx_series_sum,
	.series_add = fx_series_add,
};

const struct sieve_env *sieve_fixture_env(void)
{
	return &fixture_env;
}

/* ---- output ---- */

struct outbuf {
	char *p;
	size_t n, cap;
};

static void out_add(struct outbuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_add(struct outbuf *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char tmp[1024];
	int len = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	if ((size_t)len >= sizeof(tmp))
		len = sizeof(tmp) - 1;
	if (o->n + (size_t)len + 2 > o->cap) {
		size_t cap = (o->cap + (size_t)len + 2) * 2;
		char *np = realloc(o->p, cap);
		if (!np)
			return;
		o->p = np;
		o->cap = cap;
	}
	memcpy(o->p + o->n, tmp, (size_t)len);
	o->n += (size_t)len;
	o->p[o->n++] = '\n';
	o->p[o->n] = '\0';
}

static const char *action_name(enum sieve_action a)
{
	static const char *const names[] = {"none", "keep", "reply", "disconnect", "discard", "error"};
	return (unsigned)a <= SIEVE_ACT_ERROR ? names[a] : "?";
}

static const char *class_name(enum sieve_counter_class c)
{
	return c == SIEVE_COUNT_5XX ? "5xx" : c == SIEVE_COUNT_4XX ? "4xx" : "informational";
}

/* One line of text with newlines shown as "\n", so a result stays a line. */
static void escape_line(const char *s, char *buf, size_t len)
{
	size_t at = 0;
	for (; s && *s && at + 3 < len; s++) {
		if (*s == '\n') {
			buf[at++] = '\\';
			buf[at++] = 'n';
		} else {
			buf[at++] = *s;
		}
	}
	buf[at] = '\0';
}

char *sieve_fixture_eval(struct sieve_fixture *fx, const char *path, const char *src, size_t len,
                         const struct sieve_limits *limits)
{
	static const char *const types[] = {"", "A", "AAAA", "TXT", "MX", "PTR"};
	struct outbuf o = {0};
	struct sieve_diags d = {0};
	struct sieve_script *s = sieve_compile(path, src, len, fx->phase, limits, &d);
	if (!s) {
		for (size_t i = 0; i < d.count; i++)
			out_add(&o, "compile-error=%s", d.lines[i]);
		sieve_diags_clear(&d);
		if (!o.p)
			out_add(&o, "compile-error=?");
		return o.p;
	}
	struct sieve_run *r = sieve_run_new(s, &fixture_env, fx);
	if (!r) {
		sieve_script_free(s);
		return NULL;
	}
	enum sieve_status st;
	while ((st = sieve_run_execute(r)) == SIEVE_SUSPENDED) {
		const char *name;
		enum sieve_dns_type type;
		if (!sieve_run_dns_request(r, &name, &type))
			break;
		char key[300];
		snprintf(key, sizeof(key), "%s %s", name, types[type]);
		out_add(&o, "dns=%s", key);
		const char *v = kv_get(fx->dns, fx->ndns, key, 0);
		const char *answers[FX_MAX];
		size_t n = 0;
		char *copy = v ? strdup(v) : NULL;
		enum sieve_dns_status ds = SIEVE_DNS_NXDOMAIN;
		if (copy && strcmp(copy, "timeout") == 0) {
			ds = SIEVE_DNS_FAILED;
		} else if (copy) {
			ds = SIEVE_DNS_OK;
			for (char *save = NULL, *t = strtok_r(copy, ",", &save); t && n < FX_MAX;
			     t = strtok_r(NULL, ",", &save))
				answers[n++] = t;
		}
		sieve_run_dns_resume(r, answers, n, ds);
		free(copy);
	}
	const struct sieve_result *res = sieve_run_result(r);
	char line[1024];
	out_add(&o, "status=%s", st == SIEVE_DONE ? "done" : st == SIEVE_ERROR ? "error" : "suspended");
	out_add(&o, "action=%s", action_name(res->action));
	if (res->code) {
		out_add(&o, "code=%u", res->code);
		out_add(&o, "enhanced=%s", res->enhanced);
		escape_line(res->text, line, sizeof(line));
		out_add(&o, "text=%s", line);
	}
	out_add(&o, "tarpit=%u", res->tarpit_seconds);
	if (res->disconnect)
		out_add(&o, "disconnect=yes");
	if (res->discard)
		out_add(&o, "discard=yes");
	if (res->keep_reason)
		out_add(&o, "keep_reason=%s", res->keep_reason);
	for (size_t i = 0; i < res->ncounters; i++)
		out_add(&o, "counter=%s:%s (%s)", sieve_phase_label(fx->phase), res->counters[i].name,
		        class_name(res->counters[i].cls));
	for (size_t i = 0; i < res->nlog_lines; i++) {
		escape_line(res->log_lines[i], line, sizeof(line));
		out_add(&o, "log=%s", line);
	}
	if (res->error)
		out_add(&o, "error=%s", res->error);
	for (size_t i = 0; i < fx->nvctx_conn; i++)
		out_add(&o, "vctx_conn=%s=%s", fx->vctx_conn[i].key, fx->vctx_conn[i].value);
	for (size_t i = 0; i < fx->nvctx_mess; i++)
		out_add(&o, "vctx_mess=%s=%s", fx->vctx_mess[i].key, fx->vctx_mess[i].value);
	sieve_run_free(r);
	sieve_script_free(s);
	return o.p;
}

/* ---- command line ---- */

/* The whole file (at most 64 MiB), or NULL with errno set. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap) {
			if (ferror(f)) { /* a directory, an I/O error */
				int e = errno;
				free(buf);
				buf = NULL;
				errno = e;
			}
			break;
		}
		char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
		if (!nb) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		cap *= 2;
	}
	fclose(f);
	*len = n;
	return buf;
}

int sieve_tool_compile_main(int argc, char **argv)
{
	const char *file = NULL;
	enum mx_phase phase = MX_PHASE_DATA;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--compile") == 0 && i + 1 < argc) {
			file = argv[++i];
		} else if (strcmp(argv[i], "--phase") == 0 && i + 1 < argc) {
			if (!sieve_phase_parse(argv[++i], &phase)) {
				fprintf(stderr, "unknown phase \"%s\" (connect ehlo mailfrom rcptto data)\n",
				        argv[i]);
				return 2;
			}
		} else if (!file && argv[i][0] != '-') {
			file = argv[i];
		} else {
			fprintf(stderr, "usage: %s --compile FILE [--phase NAME]\n", argv[0]);
			return 2;
		}
	}
	if (!file) {
		fprintf(stderr, "usage: %s --compile FILE [--phase NAME]\n", argv[0]);
		return 2;
	}
	struct sieve_diags d = {0};
	struct sieve_script *s = sieve_compile_file(file, phase, NULL, &d);
	for (size_t i = 0; i < d.count; i++)
		printf("%s\n", d.lines[i]);
	sieve_diags_clear(&d);
	if (!s)
		return 1;
	printf("ok\n");
	sieve_script_free(s);
	return 0;
}

int sieve_tool_eval_main(int argc, char **argv)
{
	const char *file = NULL;
	struct sieve_fixture *fx = sieve_fixture_new();
	if (!fx)
		return 1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--sieve-eval") == 0 && i + 1 < argc) {
			file = argv[++i];
		} else if (strncmp(argv[i], "--", 2) == 0 && i + 1 < argc) {
			char err[200];
			if (!sieve_fixture_set(fx, argv[i] + 2, argv[i + 1], err, sizeof(err))) {
				fprintf(stderr, "%s\n", err);
				sieve_fixture_free(fx);
				return 1;
			}
			i++;
		} else {
			fprintf(stderr, "usage: %s --sieve-eval FILE [--phase P] [--KEY VALUE]...\n",
			        argv[0]);
			sieve_fixture_free(fx);
			return 2;
		}
	}
	if (!file) {
		fprintf(stderr, "usage: %s --sieve-eval FILE [--phase P] [--KEY VALUE]...\n", argv[0]);
		sieve_fixture_free(fx);
		return 2;
	}
	size_t len = 0;
	char *src = read_file(file, &len);
	if (!src) {
		fprintf(stderr, "%s: cannot read: %s\n", file, strerror(errno));
		sieve_fixture_free(fx);
		return 1;
	}
	char *out = sieve_fixture_eval(fx, file, src, len, NULL);
	int rc = out && strncmp(out, "compile-error=", 14) != 0 ? 0 : 1;
	if (out)
		fputs(out, stdout);
	free(out);
	free(src);
	sieve_fixture_free(fx);
	return rc;
}
