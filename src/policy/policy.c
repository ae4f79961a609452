/*
 * policy: compiled script sets, action counters, and audit answers for the
 * policy language. See policy.h.
 */
#include "policy/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"

struct policy {
	struct sieve_script *scripts[MX_PHASE_COUNT][2];
	unsigned refs;
};

/* ---- script sets ---- */

static void append(char **buf, size_t *len, const char *line)
{
	size_t n = strlen(line);
	char *b = realloc(*buf, *len + n + 2);

	if (!b)
		return;
	memcpy(b + *len, line, n);
	b[*len + n] = '\n';
	b[*len + n + 1] = '\0';
	*buf = b;
	*len += n + 1;
}

struct policy *policy_load(const struct mx_config *cfg, char **errors)
{
	struct policy *p = calloc(1, sizeof *p);
	struct sieve_limits limits;
	struct sieve_diags diags = {0};
	size_t elen = 0;
	bool ok = true;

	*errors = NULL;
	if (!p) {
		append(errors, &elen, "out of memory");
		return NULL;
	}
	p->refs = 1;
	if (!cfg->sieve)
		return p;
	sieve_limits_default(&limits);
	/* 0 is a setting, not "unset": no tarpit delay, no lookup allowed. The
	 * config fills in the documented defaults when the option is absent. */
	limits.max_tarpit = cfg->sieve->max_tarpit;
	limits.max_dns_lookups = cfg->sieve->max_dns_lookups;
	limits.max_run_time = cfg->sieve->max_run_time;
	limits.on_error = cfg->sieve->runtime_error == MX_RUNTIME_ERROR_CONTINUE
	                      ? SIEVE_ON_ERROR_CONTINUE : SIEVE_ON_ERROR_FAIL;
	for (int ph = 0; ph < MX_PHASE_COUNT; ph++) {
		for (unsigned slot = 0; slot < 2; slot++) {
			const char *src = cfg->sieve->scripts[ph][slot].source;
			if (!src)
				continue;
			p->scripts[ph][slot] = sieve_compile_file(src, (enum mx_phase)ph,
			                                          &limits, &diags);
			if (!p->scripts[ph][slot])
				ok = false;
		}
	}
	for (size_t i = 0; i < diags.count; i++)
		append(errors, &elen, diags.lines[i]);
	sieve_diags_clear(&diags);
	if (!ok) {
		if (!*errors)
			append(errors, &elen, "policy: a script failed to compile");
		policy_unref(p);
		return NULL;
	}
	return p;
}

void policy_ref(struct policy *p)
{
	p->refs++;
}

void policy_unref(struct policy *p)
{
	if (!p || --p->refs > 0)
		return;
	for (int ph = 0; ph < MX_PHASE_COUNT; ph++)
		for (int slot = 0; slot < 2; slot++)
			sieve_script_free(p->scripts[ph][slot]);
	free(p);
}

const struct sieve_script *policy_script(const struct policy *p,
                                         enum mx_phase phase, unsigned slot)
{
	if (!p || phase < 0 || phase >= MX_PHASE_COUNT || slot > 1)
		return NULL;
	return p->scripts[phase][slot];
}

bool policy_has_phase(const struct policy *p, enum mx_phase phase)
{
	return policy_script(p, phase, 0) || policy_script(p, phase, 1);
}

/* ---- counters ----
 * A sorted array: scripts name a few dozen counters at most, and the table
 * is read only by the console. Names are capped so that a script that
 * invents counters cannot grow it without bound. */

#define POLICY_MAX_COUNTERS 4096

struct policy_counter {
	char *key; /* "PHASE:NAME (class)" */
	uint64_t n;
};

struct policy_stats {
	struct policy_counter *c;
	size_t count;
	uint64_t dropped; /* bumps refused because the table was full */
};

struct policy_stats *policy_stats_new(void)
{
	return calloc(1, sizeof(struct policy_stats));
}

void policy_stats_reset(struct policy_stats *st)
{
	for (size_t i = 0; i < st->count; i++)
		free(st->c[i].key);
	free(st->c);
	st->c = NULL;
	st->count = 0;
	st->dropped = 0;
}

void policy_stats_free(struct policy_stats *st)
{
	if (!st)
		return;
	policy_stats_reset(st);
	free(st);
}

static const char *class_name(enum sieve_counter_class cls)
{
	switch (cls) {
	case SIEVE_COUNT_4XX:
		return "4xx";
	case SIEVE_COUNT_5XX:
		return "5xx";
	case SIEVE_COUNT_INFO:
		break;
	}
	return "informational";
}

static void stats_bump(struct policy_stats *st, const char *key)
{
	size_t lo = 0, hi = st->count;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(st->c[mid].key, key);
		if (c == 0) {
			st->c[mid].n++;
			return;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (st->count == POLICY_MAX_COUNTERS) {
		st->dropped++;
		return;
	}
	struct policy_counter *n = realloc(st->c, (st->count + 1) * sizeof *n);
	char *k = strdup(key);
	if (!n || !k) {
		if (n)
			st->c = n;
		free(k);
		st->dropped++;
		return;
	}
	st->c = n;
	memmove(&st->c[lo + 1], &st->c[lo], (st->count - lo) * sizeof *n);
	st->c[lo].key = k;
	st->c[lo].n = 1;
	st->count++;
}

void policy_stats_each(const struct policy_stats *st,
                       void (*fn)(void *arg, const char *phase, size_t phase_len,
                                  const char *name, size_t name_len, const char *cls,
                                  size_t cls_len, uint64_t n),
                       void *arg)
{
	for (size_t i = 0; i < st->count; i++) {
		/* keys are built by policy_stats_add_result: "PHASE:NAME (CLASS)" */
		const char *k = st->c[i].key, *colon = strchr(k, ':');
		const char *open = strrchr(k, '(');
		size_t kl = strlen(k);
		if (!colon || !open || open < colon + 2 || kl < 2 || k[kl - 1] != ')')
			continue;
		fn(arg, k, (size_t)(colon - k), colon + 1, (size_t)(open - 1 - (colon + 1)), open + 1,
		   (size_t)(k + kl - 1 - (open + 1)), st->c[i].n);
	}
}

void policy_stats_add_result(struct policy_stats *st, enum mx_phase phase,
                             const struct sieve_result *r)
{
	char key[320];

	for (size_t i = 0; i < r->ncounters; i++) {
		/* at most 256 bytes of the name, not cutting a UTF-8 character
		 * in two (the metrics' labels must be UTF-8) */
		const char *name = r->counters[i].name;
		int n = (int)strnlen(name, 257);
		if (n > 256)
			for (n = 256; n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80; n--)
				;
		snprintf(key, sizeof key, "%s:%.*s (%s)", mx_phase_name(phase), n, name,
		         class_name(r->counters[i].cls));
		stats_bump(st, key);
	}
}

char *policy_stats_format(const struct policy_stats *st)
{
	size_t cap = 64 + st->count * 64, len = 0;
	char *out = malloc(cap);

	if (!out)
		return NULL;
	out[0] = '\0';
	for (size_t i = 0; i < st->count; i++) {
		size_t need = strlen(st->c[i].key) + 32;
		if (len + need >= cap) {
			cap = (len + need) * 2;
			char *n = realloc(out, cap);
			if (!n) {
				free(out);
				return NULL;
			}
			out = n;
		}
		len += (size_t)snprintf(out + len, cap - len, "%s = %llu\n", st->c[i].key,
		                        (unsigned long long)st->c[i].n);
	}
	if (st->count == 0)
		snprintf(out, cap, "no policy actions counted\n");
	if (st->dropped) {
		char *n = realloc(out, len + 80);
		if (n) {
			out = n;
			snprintf(out + strlen(out), 80, "(%llu bumps dropped: counter table full)\n",
			         (unsigned long long)st->dropped);
		}
	}
	return out;
}

/* ---- audit answers ---- */

bool policy_audit_count(const struct policy_client *pc, enum sieve_audit_scope scope,
                        const char *arg, uint64_t *out, char *err, size_t errlen)
{
	struct ip_addr net;
	unsigned prefix;

	if (!audit_parse_block(arg, &pc->addr, &net, &prefix, err, errlen))
		return false;
	*out = audit_live_count(pc->audit, &net, prefix,
	                        scope == SIEVE_AUDIT_LISTENER ? (int)pc->listener
	                                                      : AUDIT_ANY_LISTENER);
	return true;
}

/* The client's block at `mask` (-1 = the whole address). */
static bool client_block(const struct policy_client *pc, int mask, struct ip_addr *net,
                         unsigned *prefix, char *err, size_t errlen)
{
	unsigned bits = ip_addr_bits(&pc->addr);

	if (mask < 0)
		mask = (int)bits;
	if ((unsigned)mask > bits) {
		snprintf(err, errlen, "mask %d is out of range for an IPv%d client (0-%u)",
		         mask, pc->addr.family == IP_V6 ? 6 : 4, bits);
		return false;
	}
	*net = pc->addr;
	*prefix = (unsigned)mask;
	ip_addr_mask(net, *prefix);
	return true;
}

static enum audit_counter audit_counter_of(enum sieve_window_counter c)
{
	switch (c) {
	case SIEVE_WINDOW_RECEPTIONS:
		return AUDIT_RECEPTIONS;
	case SIEVE_WINDOW_REJECTIONS:
		return AUDIT_REJECTIONS;
	case SIEVE_WINDOW_CONNECTIONS:
		break;
	}
	return AUDIT_CONNECTIONS;
}

struct audit *policy_audit_create(const struct mx_config *cfg)
{
	_Static_assert(MX_AUDIT_MONITORS_MAX <= AUDIT_MONITORS_MAX, "the config allows more");
	struct audit_monitor_spec specs[AUDIT_MONITORS_MAX];
	struct audit_config ac = {.monitors = specs};

	if (cfg) {
		ac.max_tracked = cfg->audit.max_tracked;
		ac.max_memory = (size_t)cfg->audit.max_memory;
		for (size_t i = 0; i < cfg->audit.nmonitors && i < AUDIT_MONITORS_MAX; i++) {
			specs[i].window = cfg->audit.monitors[i].window;
			specs[i].count = cfg->audit.monitors[i].count;
			ac.nmonitors++;
		}
	}
	return audit_create(&ac);
}

bool policy_ip_window(const struct policy_client *pc, enum sieve_window_counter counter,
                      const struct sieve_window_query *q, uint64_t *out,
                      char *err, size_t errlen)
{
	struct ip_addr net;
	unsigned prefix;
	enum audit_counter ac = audit_counter_of(counter);

	if (!client_block(pc, q->mask, &net, &prefix, err, errlen))
		return false;
	if (!q->hash_form) {
		if (!audit_sliding(pc->audit, q->index, ac, &net, prefix, pc->now_ms, out)) {
			snprintf(err, errlen, "no inbound_audit monitor at index %u", q->index);
			return false;
		}
		return true;
	}
	/* The hash form names its monitor by shape: the audit's own list says
	 * which index (a reload that changes the monitors does not change the
	 * running audit's). */
	int i = audit_monitor_find(pc->audit, q->window, q->count);
	if (i < 0) {
		snprintf(err, errlen, "no inbound_audit monitor \"%u,%u\" is running", q->window,
		         q->count);
		return false;
	}
	if (q->period_start > q->period_end || q->period_end >= q->count) {
		snprintf(err, errlen, "period %u-%u is outside monitor \"%u,%u\" (windows 0-%u)",
		         q->period_start, q->period_end, q->window, q->count, q->count - 1);
		return false;
	}
	return audit_window_sum(pc->audit, (size_t)i, ac, &net, prefix, q->period_start,
	                        q->period_end, pc->now_ms, out);
}

bool policy_series_sum(const struct policy_client *pc, const char *name, unsigned window,
                       unsigned count, int mask, unsigned start, unsigned end,
                       uint64_t *out, char *err, size_t errlen)
{
	struct ip_addr net;
	unsigned prefix;

	if (!client_block(pc, mask, &net, &prefix, err, errlen))
		return false;
	return audit_series_sum(pc->audit, name, window, count, &net, prefix, start, end,
	                        pc->now_ms, out, err, errlen);
}

bool policy_series_add(const struct policy_client *pc, const char *name, unsigned window,
                       unsigned count, uint64_t amount, char *err, size_t errlen)
{
	return audit_series_add(pc->audit, name, window, count, &pc->addr, amount,
	                        pc->now_ms, err, errlen);
}

void policy_reply_lines(unsigned code, const char *status, const char *text,
                        void (*emit)(void *arg, unsigned code, char sep, const char *status,
                                     const char *line, int len),
                        void *arg)
{
	char st[16];
	if (status == NULL || !status[0]) {
		snprintf(st, sizeof st, "%u.%s", code / 100, code >= 400 ? "7.1" : "0.0");
		status = st;
	}
	if (text == NULL)
		text = "";
	size_t tl = strlen(text);
	while (tl > 0 && (text[tl - 1] == '\n' || text[tl - 1] == '\r'))
		tl--;
	for (;;) {
		const char *nl = memchr(text, '\n', tl);
		int n = nl ? (int)(nl - text) : (int)tl;
		if (n > 0 && text[n - 1] == '\r')
			n--;
		emit(arg, code, nl ? '-' : ' ', status, text, n);
		if (!nl)
			break;
		tl -= (size_t)(nl + 1 - text);
		text = nl + 1;
	}
}
