/*
 * exec_func: the functions of sieve.md section 6, used as `$v = f args;`.
 *
 * Audit and vctx functions ask the session through struct sieve_env and turn
 * its answer into a value: the audit counts are one-element string lists
 * (Momentum's shape, unpacked with `($x) = ...`), the windowed counts plain
 * strings. ec_dns_lookup is the only function that suspends the run.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sieve/sieve_int.h"

static int oom(struct sieve_run *r)
{
	return sieve_rt_error(r, "out of run memory (limit max_run_memory = %zu)",
	                      r->s->limits.max_run_memory);
}

static int number_string(struct sieve_run *r, uint64_t v, struct sieve_value *out)
{
	char buf[24];
	int len = snprintf(buf, sizeof(buf), "%" PRIu64, v);
	memset(out, 0, sizeof(*out));
	out->type = VAL_STRING;
	out->s = sieve_str_dup(r, buf, (size_t)len);
	return out->s.p ? 0 : oom(r);
}

static int one_element_list(struct sieve_run *r, uint64_t v, struct sieve_value *out)
{
	struct sieve_value s;
	if (number_string(r, v, &s) < 0)
		return -1;
	struct sieve_str *item = sieve_arena_alloc(&r->arena, sizeof(*item));
	if (!item)
		return oom(r);
	*item = s.s;
	memset(out, 0, sizeof(*out));
	out->type = VAL_LIST;
	out->items = item;
	out->n = 1;
	return 0;
}

int sieve_fn_audit(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out)
{
	enum sieve_audit_scope scope = SIEVE_AUDIT_SERVICE;
	size_t argi = 0;
	if (strcmp(n->def->name, "audit_connections_on_listener") == 0)
		scope = SIEVE_AUDIT_LISTENER;
	if (strcmp(n->def->name, "audit_service") == 0) {
		struct sieve_str svc;
		if (sieve_eval_string(r, n->pos[0], &svc) < 0)
			return -1;
		if (strcasecmp(svc.p, "SMTP") != 0)
			return sieve_rt_error(r, "audit_service: unknown service \"%.40s\" (only \"SMTP\")",
			                      svc.p);
		argi = 1;
	}
	struct sieve_str arg = {"", 0};
	if (n->npos > argi && sieve_eval_string(r, n->pos[argi], &arg) < 0)
		return -1;
	if (!r->env->audit_count)
		return sieve_rt_error(r, "%s is not available here", n->def->name);
	uint64_t count = 0;
	char err[160] = "";
	if (!r->env->audit_count(r->ud, scope, arg.p, &count, err, sizeof(err)))
		return sieve_rt_error(r, "%s \"%.60s\": %s", n->def->name, arg.p,
		                      err[0] ? err : "failed");
	return one_element_list(r, count, out);
}

/* "W,N" into window and count. */
static int parse_monitor(struct sieve_run *r, const char *what, struct sieve_str s,
                         unsigned *w, unsigned *c)
{
	unsigned long long a, b;
	char tail;
	if (sscanf(s.p, "%llu,%llu%c", &a, &b, &tail) != 2 || a == 0 || b == 0 ||
	    a > 0xffffffffull || b > 0xffffffffull)
		return sieve_rt_error(r, "%s: monitor \"%.40s\" is not \"SECONDS,COUNT\"", what, s.p);
	*w = (unsigned)a;
	*c = (unsigned)b;
	return 0;
}

/* A prefix length, with or without a leading "/". */
static int parse_mask(struct sieve_run *r, const char *what, struct sieve_str s, int *mask)
{
	const char *p = s.p;
	if (*p == '/')
		p++;
	unsigned v = 0;
	size_t k = 0;
	for (; p[k] >= '0' && p[k] <= '9' && v <= 128; k++)
		v = v * 10 + (unsigned)(p[k] - '0');
	if (k == 0 || p[k] || v > 128)
		return sieve_rt_error(r, "%s: bad mask \"%.40s\"", what, s.p);
	*mask = (int)v;
	return 0;
}

static const struct sieve_str *hash_lookup(const struct sieve_value *h, const char *key)
{
	size_t kl = strlen(key);
	for (size_t i = 0; i < h->n; i++)
		if (h->keys[i].n == kl && memcmp(h->keys[i].p, key, kl) == 0)
			return &h->items[i];
	return NULL;
}

int sieve_fn_ip_window(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out)
{
	const char *name = n->def->name;
	enum sieve_window_counter counter = strstr(name, "connections") ? SIEVE_WINDOW_CONNECTIONS :
	                                    strstr(name, "receptions") ? SIEVE_WINDOW_RECEPTIONS :
	                                    SIEVE_WINDOW_REJECTIONS;
	struct sieve_window_query q = {.mask = -1};
	struct sieve_value first;
	if (sieve_eval_value(r, n->pos[0], &first) < 0)
		return -1;
	if (first.type == VAL_HASH) {
		q.hash_form = true;
		const struct sieve_str *m = hash_lookup(&first, "monitor");
		if (!m)
			return sieve_rt_error(r, "%s: the hash has no \"monitor\"", name);
		if (parse_monitor(r, name, *m, &q.window, &q.count) < 0)
			return -1;
		const char *keys[] = {"period_start", "period_end"};
		unsigned *dst[] = {&q.period_start, &q.period_end};
		for (int i = 0; i < 2; i++) {
			const struct sieve_str *v = hash_lookup(&first, keys[i]);
			unsigned long long x = 0;
			if (v && (sscanf(v->p, "%llu", &x) != 1 || x > 0xffffffffull))
				return sieve_rt_error(r, "%s: bad %s \"%.40s\"", name, keys[i], v->p);
			*dst[i] = (unsigned)x;
		}
		const struct sieve_str *mk = hash_lookup(&first, "mask");
		if (mk && parse_mask(r, name, *mk, &q.mask) < 0)
			return -1;
		if (q.period_end < q.period_start)
			return sieve_rt_error(r, "%s: period_end is before period_start", name);
	} else {
		uint64_t ix;
		if (sieve_eval_number(r, n->pos[0], "the monitor index", &ix) < 0)
			return -1;
		if (ix > 1000000)
			return sieve_rt_error(r, "%s: no monitor %" PRIu64, name, ix);
		q.index = (unsigned)ix;
		if (n->npos > 1) {
			struct sieve_str m;
			if (sieve_eval_string(r, n->pos[1], &m) < 0 || parse_mask(r, name, m, &q.mask) < 0)
				return -1;
		}
	}
	if (!r->env->ip_window)
		return sieve_rt_error(r, "%s is not available here", name);
	uint64_t v = 0;
	char err[160] = "";
	if (!r->env->ip_window(r->ud, counter, &q, &v, err, sizeof(err)))
		return sieve_rt_error(r, "%s: %s", name, err[0] ? err : "failed");
	return number_string(r, v, out);
}

int sieve_fn_audit_series(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out)
{
	struct sieve_str name, mon, mask;
	unsigned w, c;
	int m;
	uint64_t start = 0, end = 0;
	if (sieve_eval_string(r, n->pos[0], &name) < 0 || sieve_eval_string(r, n->pos[1], &mon) < 0 ||
	    parse_monitor(r, "audit_series", mon, &w, &c) < 0 ||
	    sieve_eval_string(r, n->pos[2], &mask) < 0 || parse_mask(r, "audit_series", mask, &m) < 0)
		return -1;
	if (n->npos > 3 && sieve_eval_number(r, n->pos[3], "START", &start) < 0)
		return -1;
	end = start;
	if (n->npos > 4 && sieve_eval_number(r, n->pos[4], "END", &end) < 0)
		return -1;
	if (end < start || end >= c)
		return sieve_rt_error(r, "audit_series: windows %" PRIu64 "..%" PRIu64
		                      " are not within 0..%u", start, end, c - 1);
	if (!r->env->series_sum)
		return sieve_rt_error(r, "audit_series is not available here");
	uint64_t v = 0;
	char err[160] = "";
	if (!r->env->series_sum(r->ud, name.p, w, c, m, (unsigned)start, (unsigned)end, &v, err,
	                        sizeof(err)))
		return sieve_rt_error(r, "audit_series: %s", err[0] ? err : "failed");
	return number_string(r, v, out);
}

int sieve_fn_audit_series_add(struct sieve_run *r, const struct sieve_node *n,
                              struct sieve_value *out)
{
	struct sieve_str name, mon;
	unsigned w, c;
	uint64_t amount = 1;
	if (sieve_eval_string(r, n->pos[0], &name) < 0 || sieve_eval_string(r, n->pos[1], &mon) < 0 ||
	    parse_monitor(r, "audit_series_add", mon, &w, &c) < 0)
		return -1;
	if (n->npos > 2 && sieve_eval_number(r, n->pos[2], "AMOUNT", &amount) < 0)
		return -1;
	if (!r->env->series_add)
		return sieve_rt_error(r, "audit_series_add is not available here");
	char err[160] = "";
	if (!r->env->series_add(r->ud, name.p, w, c, amount, err, sizeof(err)))
		return sieve_rt_error(r, "audit_series_add: %s", err[0] ? err : "failed");
	return number_string(r, amount, out); /* the amount added [ours] */
}

int sieve_fn_vctx_get(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out)
{
	struct sieve_str key;
	memset(out, 0, sizeof(*out));
	if (sieve_eval_string(r, n->pos[0], &key) < 0)
		return -1;
	if (!r->env->vctx_get)
		return sieve_rt_error(r, "%s is not available here", n->def->name);
	const char *v = r->env->vctx_get(r->ud, strncmp(n->def->name, "vctx_conn", 9) == 0 ?
	                                 SIEVE_VCTX_CONN : SIEVE_VCTX_MESS, key.p);
	if (v) {
		out->type = VAL_STRING;
		out->s = sieve_str_dup(r, v, strlen(v));
	}
	return 0;
}

int sieve_fn_hash_create(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out)
{
	memset(out, 0, sizeof(*out));
	out->type = VAL_HASH;
	return 0;
}

static int need_hash(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *h)
{
	if (sieve_eval_value(r, n->pos[0], h) < 0)
		return -1;
	if (h->type == VAL_UNSET) { /* an unset variable is an empty hash [ours] */
		h->type = VAL_HASH;
		h->n = 0;
	}
	if (h->type != VAL_HASH)
		return sieve_rt_error(r, "%s: the first argument is not a hash", n->def->name);
	return 0;
}

int sieve_fn_hash_set(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out)
{
	struct sieve_value h, v;
	struct sieve_str key, val;
	if (need_hash(r, n, &h) < 0 || sieve_eval_string(r, n->pos[1], &key) < 0 ||
	    sieve_eval_value(r, n->pos[2], &v) < 0 || sieve_value_text(r, &v, &val) < 0)
		return -1;
	size_t at = h.n;
	for (size_t i = 0; i < h.n; i++)
		if (h.keys[i].n == key.n && memcmp(h.keys[i].p, key.p, key.n) == 0)
			at = i;
	size_t n2 = at == h.n ? h.n + 1 : h.n;
	if (n2 > r->s->limits.max_list)
		return sieve_rt_error(r, "hash too big (limit max_list = %zu)", r->s->limits.max_list);
	/* values are immutable: build a new hash */
	struct sieve_str *keys = sieve_arena_alloc(&r->arena, n2 * sizeof(*keys));
	struct sieve_str *vals = sieve_arena_alloc(&r->arena, n2 * sizeof(*vals));
	if (!keys || !vals)
		return oom(r);
	if (h.n) {
		memcpy(keys, h.keys, h.n * sizeof(*keys));
		memcpy(vals, h.items, h.n * sizeof(*vals));
	}
	keys[at] = key;
	vals[at] = val;
	memset(out, 0, sizeof(*out));
	out->type = VAL_HASH;
	out->keys = keys;
	out->items = vals;
	out->n = n2;
	return 0;
}

int sieve_fn_hash_get(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out)
{
	struct sieve_value h;
	struct sieve_str key;
	if (need_hash(r, n, &h) < 0 || sieve_eval_string(r, n->pos[1], &key) < 0)
		return -1;
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < h.n; i++)
		if (h.keys[i].n == key.n && memcmp(h.keys[i].p, key.p, key.n) == 0) {
			out->type = VAL_STRING;
			out->s = h.items[i];
		}
	return 0;
}

int sieve_fn_hash_keys(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out)
{
	struct sieve_value h;
	if (need_hash(r, n, &h) < 0)
		return -1;
	memset(out, 0, sizeof(*out));
	out->type = VAL_LIST;
	out->items = h.keys;
	out->n = h.n;
	return 0;
}

int sieve_fn_split(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out)
{
	struct sieve_str sep, s;
	if (sieve_eval_string(r, n->pos[0], &sep) < 0 || sieve_eval_string(r, n->pos[1], &s) < 0)
		return -1;
	if (sep.n == 0)
		return sieve_rt_error(r, "split: the separator is empty");
	size_t count = 1;
	for (const char *p = s.p; (p = memmem(p, s.n - (size_t)(p - s.p), sep.p, sep.n)); p += sep.n)
		count++;
	if (count > r->s->limits.max_list)
		return sieve_rt_error(r, "split: list too long (limit max_list = %zu)",
		                      r->s->limits.max_list);
	struct sieve_str *items = sieve_arena_alloc(&r->arena, count * sizeof(*items));
	if (!items)
		return oom(r);
	size_t at = 0;
	const char *start = s.p;
	for (;;) {
		const char *p = memmem(start, s.n - (size_t)(start - s.p), sep.p, sep.n);
		const char *e = p ? p : s.p + s.n;
		items[at++] = sieve_str_dup(r, start, (size_t)(e - start));
		if (!p)
			break;
		start = p + sep.n;
	}
	memset(out, 0, sizeof(*out));
	out->type = VAL_LIST;
	out->items = items;
	out->n = at;
	return 0;
}

int sieve_fn_join(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out)
{
	struct sieve_str sep, *items;
	size_t count;
	if (sieve_eval_string(r, n->pos[0], &sep) < 0 ||
	    sieve_eval_list(r, n->pos[1], &items, &count) < 0)
		return -1;
	size_t total = 0;
	for (size_t i = 0; i < count; i++)
		total += items[i].n + sep.n;
	if (!sieve_str_ok(r, total))
		return -1;
	char *buf = sieve_arena_alloc(&r->arena, total + 1);
	if (!buf)
		return oom(r);
	size_t at = 0;
	for (size_t i = 0; i < count; i++) {
		if (i) {
			memcpy(buf + at, sep.p, sep.n);
			at += sep.n;
		}
		memcpy(buf + at, items[i].p, items[i].n);
		at += items[i].n;
	}
	buf[at] = '\0';
	memset(out, 0, sizeof(*out));
	out->type = VAL_STRING;
	out->s.p = buf;
	out->s.n = at;
	return 0;
}

int sieve_fn_dns_lookup(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out)
{
	if (r->dns_answered) {
		/* the second execution of this assignment, after the resume */
		r->dns_answered = false;
		if (!r->dns_answers)
			return oom(r);
		memset(out, 0, sizeof(*out));
		out->type = VAL_LIST;
		if (r->dns_nanswers == 0) {
			static const struct sieve_str none = {"", 0};
			out->items = (struct sieve_str *)&none;
			out->n = 1;
		} else {
			out->items = r->dns_answers;
			out->n = r->dns_nanswers;
		}
		return 0;
	}
	struct sieve_str name, type;
	if (sieve_eval_string(r, n->pos[0], &name) < 0 || sieve_eval_string(r, n->pos[1], &type) < 0)
		return -1;
	static const char *const types[] = {"A", "AAAA", "TXT", "MX", "PTR"};
	int t = -1;
	for (int i = 0; i < 5; i++)
		if (strcasecmp(type.p, types[i]) == 0)
			t = i;
	if (t < 0)
		return sieve_rt_error(r, "ec_dns_lookup: unknown type \"%.20s\" (A AAAA TXT MX PTR)",
		                      type.p);
	if (name.n == 0 || name.n > 253)
		return sieve_rt_error(r, "ec_dns_lookup: bad name \"%.60s\"", name.p);
	if (r->dns_lookups >= r->s->limits.max_dns_lookups)
		return sieve_rt_error(r, "too many DNS lookups (limit max_dns_lookups = %u)",
		                      r->s->limits.max_dns_lookups);
	r->dns_lookups++;
	r->dns_name = sieve_str_dup(r, name.p, name.n).p;
	if (!r->dns_name)
		return oom(r);
	r->dns_type = (enum sieve_dns_type)(SIEVE_DNS_A + t);
	r->dns_pending = true;
	return 1;
}
