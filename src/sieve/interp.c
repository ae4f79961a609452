/*
 * interp: the VM. Runs a compiled script's instructions for one run.
 *
 * Per-run state is the program counter, the variable slots and an arena
 * (bounded by max_run_memory) for every value the run makes. Values are
 * immutable once made: an assignment or hash_set builds a new value, so
 * sharing a value between variables is safe and copying is never needed.
 *
 * Suspension: only a function on the right of an assignment can suspend
 * (ec_dns_lookup). It records the question and returns 1; the VM returns
 * SIEVE_SUSPENDED with the program counter still on that assignment. After
 * sieve_run_dns_resume() stores the answers, executing the same instruction
 * again finds them and completes. The engine therefore never blocks and
 * never calls out for DNS.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sieve/sieve_int.h"

static const char error_reply[] = "Temporary policy failure, try again later";

int sieve_rt_error(struct sieve_run *r, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int k = snprintf(r->errbuf, sizeof(r->errbuf), "%s:%u: ", r->s->name, r->line);
	r->errmsg = k < 0 ? 0 : (size_t)k < sizeof(r->errbuf) ? (size_t)k : sizeof(r->errbuf) - 1;
	snprintf(r->errbuf + r->errmsg, sizeof(r->errbuf) - r->errmsg, "%s", msg);
	return -1;
}

bool sieve_str_ok(struct sieve_run *r, size_t n)
{
	if (n > r->s->limits.max_string) {
		sieve_rt_error(r, "string too long (limit max_string = %zu)", r->s->limits.max_string);
		return false;
	}
	return true;
}

struct sieve_str sieve_str_dup(struct sieve_run *r, const char *p, size_t n)
{
	struct sieve_str s = {sieve_arena_strndup(&r->arena, p, n), n};
	if (!s.p)
		s.n = 0;
	return s;
}

static int oom(struct sieve_run *r)
{
	return sieve_rt_error(r, "out of run memory (limit max_run_memory = %zu)",
	                      r->s->limits.max_run_memory);
}

struct sieve_value *sieve_var(struct sieve_run *r, const struct sieve_node *n)
{
	return &r->vars[n->slot];
}

static int number_text(struct sieve_run *r, uint64_t v, struct sieve_str *out)
{
	char buf[24];
	int len = snprintf(buf, sizeof(buf), "%" PRIu64, v);
	*out = sieve_str_dup(r, buf, (size_t)len);
	return out->p ? 0 : oom(r);
}

int sieve_value_text(struct sieve_run *r, const struct sieve_value *v, struct sieve_str *out)
{
	static const struct sieve_str empty = {"", 0};
	switch (v->type) {
	case VAL_STRING:
		*out = v->s;
		return 0;
	case VAL_NUMBER:
		return number_text(r, v->num, out);
	case VAL_LIST: {
		if (v->n == 1) {
			*out = v->items[0];
			return 0;
		}
		size_t total = 0;
		for (size_t i = 0; i < v->n; i++)
			total += v->items[i].n + 1;
		if (!sieve_str_ok(r, total))
			return -1;
		char *buf = sieve_arena_alloc(&r->arena, total + 1);
		if (!buf)
			return oom(r);
		size_t at = 0;
		for (size_t i = 0; i < v->n; i++) {
			if (i)
				buf[at++] = ' ';
			memcpy(buf + at, v->items[i].p, v->items[i].n);
			at += v->items[i].n;
		}
		buf[at] = '\0';
		out->p = buf;
		out->n = at;
		return 0;
	}
	default: /* unset, and a hash [ours]: the empty string */
		*out = empty;
		return 0;
	}
}

static int client_text(struct sieve_run *r, bool reversed, struct sieve_str *out)
{
	struct ip_addr a;
	uint16_t port;
	if (!r->env->client || !r->env->client(r->ud, &a, &port))
		return sieve_rt_error(r, "the client address is not available");
	char buf[80];
	if (!reversed) {
		ip_addr_format(&a, buf, sizeof(buf));
	} else if (a.family == IP_V4) {
		snprintf(buf, sizeof(buf), "%u.%u.%u.%u", a.bytes[3], a.bytes[2], a.bytes[1],
		         a.bytes[0]);
	} else {
		static const char hex[] = "0123456789abcdef";
		size_t at = 0;
		for (int i = 15; i >= 0; i--) {
			buf[at++] = hex[a.bytes[i] & 15];
			buf[at++] = '.';
			buf[at++] = hex[a.bytes[i] >> 4];
			buf[at++] = i ? '.' : '\0';
		}
	}
	*out = sieve_str_dup(r, buf, strlen(buf));
	return out->p ? 0 : oom(r);
}

static int part_text(struct sieve_run *r, const struct sieve_part *p, struct sieve_str *out)
{
	const char *v = NULL;
	switch (p->kind) {
	case PART_LIT:
		out->p = p->s;
		out->n = p->len;
		return 0;
	case PART_VAR:
		return sieve_value_text(r, &r->vars[p->slot], out);
	case PART_MATCH: /* unset: the empty string */
		*out = p->slot < r->nmatch ? r->match[p->slot] : (struct sieve_str){"", 0};
		return 0;
	default:
		break;
	}
	switch (p->macro) {
	case MACRO_I:
		return client_text(r, false, out);
	case MACRO_IR:
		return client_text(r, true, out);
	case MACRO_H:
		v = r->env->helo ? r->env->helo(r->ud) : NULL;
		break;
	case MACRO_S:
		v = r->env->mail_from ? r->env->mail_from(r->ud) : NULL;
		break;
	case MACRO_VCTX_CONN:
	case MACRO_VCTX_MESS:
		v = r->env->vctx_get ? r->env->vctx_get(r->ud, p->macro == MACRO_VCTX_CONN ?
		                                        SIEVE_VCTX_CONN : SIEVE_VCTX_MESS, p->s)
		                     : NULL;
		break;
	default:
		break;
	}
	if (!v)
		v = "";
	/* A callback's string lives only until the next callback (sieve.h), and
	 * a template may call several before it joins the parts: keep a copy. */
	size_t n = strlen(v);
	char *copy = sieve_arena_alloc(&r->arena, n + 1);
	if (!copy)
		return oom(r);
	memcpy(copy, v, n + 1);
	out->p = copy;
	out->n = n;
	return 0;
}

static int eval_tmpl(struct sieve_run *r, const struct sieve_tmpl *t, struct sieve_str *out)
{
	if (t->constant) {
		out->p = t->text;
		out->n = t->len;
		return 0;
	}
	if (t->nparts == 1)
		return part_text(r, &t->parts[0], out) < 0 ? -1 :
		       (sieve_str_ok(r, out->n) ? 0 : -1);
	struct sieve_str small[8], *parts = small;
	if (t->nparts > 8) {
		parts = sieve_arena_alloc(&r->arena, t->nparts * sizeof(*parts));
		if (!parts)
			return oom(r);
	}
	size_t total = 0;
	for (size_t i = 0; i < t->nparts; i++) {
		if (part_text(r, &t->parts[i], &parts[i]) < 0)
			return -1;
		total += parts[i].n;
	}
	if (!sieve_str_ok(r, total))
		return -1;
	char *buf = sieve_arena_alloc(&r->arena, total + 1);
	if (!buf)
		return oom(r);
	size_t at = 0;
	for (size_t i = 0; i < t->nparts; i++) {
		/* copy part by part: a part's text may be a temporary of a callback */
		memcpy(buf + at, parts[i].p, parts[i].n);
		at += parts[i].n;
	}
	buf[at] = '\0';
	out->p = buf;
	out->n = at;
	return 0;
}

/* Element `$v[i]` or `$v["k"]`; unset when absent. */
static int eval_element(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out)
{
	const struct sieve_value *v = &r->vars[n->slot];
	memset(out, 0, sizeof(*out));
	struct sieve_str key;
	if (n->index->kind == NODE_NUMBER) {
		if (v->type == VAL_LIST) {
			if (n->index->num < v->n) {
				out->type = VAL_STRING;
				out->s = v->items[n->index->num];
			}
			return 0;
		}
		if (number_text(r, n->index->num, &key) < 0)
			return -1;
	} else if (sieve_eval_string(r, n->index, &key) < 0) {
		return -1;
	}
	if (v->type == VAL_HASH) {
		for (size_t i = 0; i < v->n; i++)
			if (v->keys[i].n == key.n && memcmp(v->keys[i].p, key.p, key.n) == 0) {
				out->type = VAL_STRING;
				out->s = v->items[i];
				break;
			}
	} else if (v->type == VAL_LIST) {
		uint64_t ix = 0;
		size_t k = 0;
		for (; k < key.n && key.p[k] >= '0' && key.p[k] <= '9' && ix < (1u << 30); k++)
			ix = ix * 10 + (uint64_t)(key.p[k] - '0');
		if (k == key.n && k > 0 && ix < v->n) {
			out->type = VAL_STRING;
			out->s = v->items[ix];
		}
	}
	return 0;
}

int sieve_eval_value(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out)
{
	memset(out, 0, sizeof(*out));
	switch (n->kind) {
	case NODE_STRING:
		out->type = VAL_STRING;
		return eval_tmpl(r, n->tmpl, &out->s);
	case NODE_NUMBER:
		out->type = VAL_NUMBER;
		out->num = n->num;
		return 0;
	case NODE_LIST: {
		struct sieve_str *items;
		size_t count;
		if (sieve_eval_list(r, n, &items, &count) < 0)
			return -1;
		out->type = VAL_LIST;
		out->items = items;
		out->n = count;
		return 0;
	}
	case NODE_VAR:
		if (n->index)
			return eval_element(r, n, out);
		*out = r->vars[n->slot];
		return 0;
	default:
		return sieve_rt_error(r, "internal: not a value");
	}
}

int sieve_eval_string(struct sieve_run *r, const struct sieve_node *n, struct sieve_str *out)
{
	if (n->kind == NODE_STRING)
		return eval_tmpl(r, n->tmpl, out);
	struct sieve_value v;
	if (sieve_eval_value(r, n, &v) < 0)
		return -1;
	return sieve_value_text(r, &v, out);
}

int sieve_eval_list(struct sieve_run *r, const struct sieve_node *n,
                    struct sieve_str **out, size_t *count)
{
	if (n->kind == NODE_LIST) {
		/* list variables inside a list literal are spliced in [ours] */
		size_t total = 0;
		for (size_t i = 0; i < n->nitems; i++) {
			const struct sieve_node *it = n->items[i];
			const struct sieve_value *v = it->kind == NODE_VAR && !it->index ?
			                              &r->vars[it->slot] : NULL;
			total += v && v->type == VAL_LIST ? v->n : 1;
		}
		if (total > r->s->limits.max_list)
			return sieve_rt_error(r, "list too long (limit max_list = %zu)",
			                      r->s->limits.max_list);
		struct sieve_str *items = sieve_arena_alloc(&r->arena, (total + 1) * sizeof(*items));
		if (!items)
			return oom(r);
		size_t at = 0;
		for (size_t i = 0; i < n->nitems; i++) {
			const struct sieve_node *it = n->items[i];
			const struct sieve_value *v = it->kind == NODE_VAR && !it->index ?
			                              &r->vars[it->slot] : NULL;
			if (v && v->type == VAL_LIST) {
				memcpy(items + at, v->items, v->n * sizeof(*items));
				at += v->n;
			} else if (sieve_eval_string(r, it, &items[at++]) < 0) {
				return -1;
			}
		}
		*out = items;
		*count = at;
		return 0;
	}
	struct sieve_value v;
	if (sieve_eval_value(r, n, &v) < 0)
		return -1;
	if (v.type == VAL_UNSET) {
		*out = NULL;
		*count = 0;
		return 0;
	}
	if (v.type == VAL_LIST || v.type == VAL_HASH) {
		*out = v.items; /* a hash gives its values */
		*count = v.n;
		return 0;
	}
	struct sieve_str *one = sieve_arena_alloc(&r->arena, sizeof(*one));
	if (!one)
		return oom(r);
	if (sieve_value_text(r, &v, one) < 0)
		return -1;
	*out = one;
	*count = 1;
	return 0;
}

int sieve_eval_number(struct sieve_run *r, const struct sieve_node *n, const char *what,
                      uint64_t *out)
{
	if (n->kind == NODE_NUMBER) {
		*out = n->num;
		return 0;
	}
	struct sieve_value v;
	if (sieve_eval_value(r, n, &v) < 0)
		return -1;
	if (v.type == VAL_NUMBER) {
		*out = v.num;
		return 0;
	}
	struct sieve_str s;
	if (sieve_value_text(r, &v, &s) < 0)
		return -1;
	uint64_t x = 0;
	size_t i = 0;
	for (; i < s.n && s.p[i] >= '0' && s.p[i] <= '9'; i++) {
		unsigned d = (unsigned)(s.p[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return sieve_rt_error(r, "%s \"%.*s\" is too large", what, (int)(s.n > 40 ? 40 : s.n), s.p);
		x = x * 10 + d;
	}
	if (i == 0 || i != s.n)
		return sieve_rt_error(r, "%s must be a number, not \"%.*s\"", what,
		                      (int)(s.n > 40 ? 40 : s.n), s.p);
	*out = x;
	return 0;
}

int sieve_eval_test(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	return n->def->test(r, n, out);
}

int sieve_add_counter(struct sieve_run *r, const char *name, enum sieve_counter_class cls)
{
	if (r->res.ncounters == r->ncap_counters) {
		size_t cap = r->ncap_counters ? r->ncap_counters * 2 : 4;
		struct sieve_counter *nc = sieve_arena_alloc(&r->arena, cap * sizeof(*nc));
		if (!nc)
			return oom(r);
		if (r->res.ncounters)
			memcpy(nc, r->counters, r->res.ncounters * sizeof(*nc));
		r->counters = nc;
		r->ncap_counters = cap;
	}
	r->counters[r->res.ncounters].name = name;
	r->counters[r->res.ncounters++].cls = cls;
	r->res.counters = r->counters;
	return 0;
}

int sieve_add_log(struct sieve_run *r, const char *text, size_t len)
{
	if (r->res.nlog_lines >= r->s->limits.max_log_lines)
		return sieve_rt_error(r, "too many log lines (limit max_log_lines = %u)",
		                      r->s->limits.max_log_lines);
	if (r->res.nlog_lines == r->ncap_logs) {
		size_t cap = r->ncap_logs ? r->ncap_logs * 2 : 4;
		const char **nl = sieve_arena_alloc(&r->arena, cap * sizeof(*nl));
		if (!nl)
			return oom(r);
		if (r->res.nlog_lines)
			memcpy(nl, r->logs, r->res.nlog_lines * sizeof(*nl));
		r->logs = nl;
		r->ncap_logs = cap;
	}
	size_t n = strlen(r->s->name) + len + 24;
	char *line = sieve_arena_alloc(&r->arena, n);
	if (!line)
		return oom(r);
	snprintf(line, n, "%s:%u: %.*s", r->s->name, r->line, (int)len, text);
	r->logs[r->res.nlog_lines++] = line;
	r->res.log_lines = r->logs;
	return 0;
}

static int exec_assign(struct sieve_run *r, const struct sieve_node *n)
{
	struct sieve_value v;
	int rc;
	if (n->rhs->kind == NODE_TEST)
		rc = n->rhs->def->func(r, n->rhs, &v);
	else
		rc = sieve_eval_value(r, n->rhs, &v);
	if (rc)
		return rc;
	if (!n->destructure) { /* never an element: validate.c refuses it */
		const struct sieve_node *t = n->items[0];
		r->vars[t->slot] = v;
		return 0;
	}
	/* ($a, $b) = list: in order; targets past the end become unset [ours] */
	for (size_t i = 0; i < n->nitems; i++) {
		struct sieve_value *dst = &r->vars[n->items[i]->slot];
		memset(dst, 0, sizeof(*dst));
		if (v.type == VAL_LIST) {
			if (i < v.n) {
				dst->type = VAL_STRING;
				dst->s = v.items[i];
			}
		} else if (i == 0 && v.type != VAL_UNSET) {
			*dst = v;
		}
	}
	return 0;
}

/* A runtime error: end the run (fail) or log and go on (continue). */
static bool on_error(struct sieve_run *r)
{
	if (r->arena.failed && !strstr(r->errbuf, "max_run_memory"))
		oom(r);
	if (r->s->limits.on_error == SIEVE_ON_ERROR_CONTINUE) {
		r->arena.failed = false;
		/* sieve_add_log puts "NAME:LINE: " in front: only the message here */
		char buf[320];
		snprintf(buf, sizeof(buf), "runtime error, skipped: %s", r->errbuf + r->errmsg);
		sieve_add_log(r, buf, strlen(buf));
		return true;
	}
	r->res.error = r->errbuf;
	r->res.action = SIEVE_ACT_ERROR;
	r->res.terminal = true;
	r->res.code = 451;
	memcpy(r->res.enhanced, "4.3.0", 6);
	r->res.text = error_reply;
	r->finished = true;
	r->status = SIEVE_ERROR;
	return false;
}

struct sieve_run *sieve_run_new(const struct sieve_script *s, const struct sieve_env *env,
                                void *ud)
{
	struct sieve_run *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->s = s;
	r->env = env;
	r->ud = ud;
	sieve_arena_init(&r->arena, s->limits.max_run_memory);
	if (s->nvars) {
		r->vars = sieve_arena_alloc(&r->arena, s->nvars * sizeof(*r->vars));
		if (!r->vars) {
			sieve_arena_free(&r->arena);
			free(r);
			return NULL;
		}
	}
	r->status = SIEVE_DONE;
	return r;
}

static const char *trace_name(const struct sieve_node *n)
{
	if (n && n->def && n->def->name)
		return n->def->name;
	return n && n->name ? n->name : "?";
}

unsigned sieve_run_dns_lookups(const struct sieve_run *r)
{
	return r->dns_lookups;
}

void sieve_run_set_dns_lookups(struct sieve_run *r, unsigned n)
{
	r->dns_lookups = n;
}

void sieve_run_set_trace(struct sieve_run *r, sieve_trace_fn fn, void *ud)
{
	r->trace = fn;
	r->trace_ud = ud;
}

static enum sieve_status execute(struct sieve_run *r);

enum sieve_status sieve_run_execute(struct sieve_run *r)
{
	if (r->finished)
		return r->status;
	if (r->dns_pending)
		return SIEVE_SUSPENDED; /* resume first */
	/* the CPU clock is a system call: read only by runs that do more
	 * than SIEVE_WORK_CHECK units of matching (sieve_charge) */
	r->cpu_t0_ns = 0;
	r->work_next = r->work + SIEVE_WORK_CHECK;
	enum sieve_status st = execute(r);
	if (r->cpu_t0_ns)
		r->cpu_used_ns += sieve_thread_cpu_ns() - r->cpu_t0_ns;
	return st;
}

static enum sieve_status execute(struct sieve_run *r)
{
	const struct sieve_insn *code = r->s->code;
	while (!r->finished) {
		const struct sieve_insn *in = &code[r->pc];
		r->line = in->node ? in->node->line : 0;
		int rc;
		bool b;
		switch (in->op) {
		case OP_STOP:
			r->finished = true;
			r->status = SIEVE_DONE;
			break;
		case OP_JUMP:
			r->pc = in->target;
			break;
		case OP_JUMP_FALSE:
			rc = sieve_eval_test(r, in->node, &b);
			if (rc < 0 || r->arena.failed) {
				if (!on_error(r))
					return r->status;
				r->pc = in->end;
				break;
			}
			if (r->trace)
				r->trace(r->trace_ud, r->line, trace_name(in->node), b ? 1 : 0);
			r->pc = b ? r->pc + 1 : in->target;
			break;
		case OP_CMD:
		case OP_ASSIGN:
			rc = in->op == OP_CMD ? in->node->def->cmd(r, in->node) : exec_assign(r, in->node);
			if (rc == 1)
				return SIEVE_SUSPENDED;
			if (r->trace && rc >= 0 && !r->arena.failed)
				r->trace(r->trace_ud, r->line,
				         in->op == OP_CMD ? trace_name(in->node) : "assignment", -1);
			if (rc < 0 || r->arena.failed) {
				if (!on_error(r))
					return r->status;
			} else if (r->res.terminal) {
				r->finished = true;
				r->status = SIEVE_DONE;
				break;
			}
			r->pc++;
			break;
		default:
			abort(); /* broken invariant: the generator emits only these */
		}
	}
	return r->status;
}

bool sieve_run_dns_request(const struct sieve_run *r, const char **name,
                           enum sieve_dns_type *type)
{
	if (!r->dns_pending)
		return false;
	*name = r->dns_name;
	*type = r->dns_type;
	return true;
}

void sieve_run_dns_resume(struct sieve_run *r, const char *const *answers, size_t n,
                          enum sieve_dns_status status)
{
	if (!r->dns_pending)
		return;
	r->dns_pending = false;
	r->dns_answered = true;
	r->dns_nanswers = 0;
	if (status != SIEVE_DNS_OK)
		n = 0;
	if (n > r->s->limits.max_list)
		n = r->s->limits.max_list;
	r->dns_answers = sieve_arena_alloc(&r->arena, (n + 1) * sizeof(*r->dns_answers));
	if (!r->dns_answers)
		return; /* the function reports the memory limit */
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(answers[i]);
		if (len > r->s->limits.max_string)
			len = r->s->limits.max_string;
		r->dns_answers[i] = sieve_str_dup(r, answers[i], len);
	}
	r->dns_nanswers = n;
}

const struct sieve_result *sieve_run_result(const struct sieve_run *r)
{
	return &r->res;
}

void sieve_run_free(struct sieve_run *r)
{
	if (!r)
		return;
	if (r->mdata)
		pcre2_match_data_free(r->mdata);
	if (r->mctx)
		pcre2_match_context_free(r->mctx);
	free(r->fold);
	sieve_arena_free(&r->arena);
	free(r);
}
