/*
 * exec_cmd: the commands (actions) of sieve.md section 5 and `set`.
 *
 * A terminal action fills the result and sets res.terminal; the VM then ends
 * the run, so statements after a terminal action do not run [ours]. Every
 * action that answers or delays is counted: with its counter argument, or
 * "SCRIPT:LINE" without one; the class comes from the reply code.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "sieve/sieve_int.h"

static const char *default_counter(struct sieve_run *r)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%s:%u", r->s->name, r->line);
	if (n < 0)
		return "script";
	return sieve_str_dup(r, buf, strlen(buf)).p;
}

static int count(struct sieve_run *r, const struct sieve_node *arg, enum sieve_counter_class cls)
{
	const char *name;
	if (arg) {
		struct sieve_str s;
		if (sieve_eval_string(r, arg, &s) < 0)
			return -1;
		name = s.p;
	} else {
		name = default_counter(r);
	}
	if (!name)
		return sieve_rt_error(r, "out of run memory");
	return sieve_add_counter(r, name, cls);
}

static enum sieve_counter_class code_class(unsigned code)
{
	return code >= 500 ? SIEVE_COUNT_5XX : code >= 400 ? SIEVE_COUNT_4XX : SIEVE_COUNT_INFO;
}

int sieve_cmd_stop(struct sieve_run *r, const struct sieve_node *n)
{
	r->finished = true;
	r->status = SIEVE_DONE;
	return 0;
}

int sieve_cmd_set(struct sieve_run *r, const struct sieve_node *n)
{
	struct sieve_str v;
	if (sieve_eval_string(r, n->pos[1], &v) < 0)
		return -1;
	unsigned m = n->opts.setmods;
	if (m & ~(unsigned)SETMOD_LENGTH) {
		char *buf = sieve_arena_alloc(&r->arena, v.n * 2 + 1);
		if (!buf)
			return sieve_rt_error(r, "out of run memory");
		size_t at = 0;
		for (size_t i = 0; i < v.n; i++) {
			char ch = v.p[i];
			if (m & SETMOD_LOWER)
				ch = (char)tolower((unsigned char)ch);
			if (m & SETMOD_UPPER)
				ch = (char)toupper((unsigned char)ch);
			if (i == 0 && (m & SETMOD_LOWERFIRST))
				ch = (char)tolower((unsigned char)ch);
			if (i == 0 && (m & SETMOD_UPPERFIRST))
				ch = (char)toupper((unsigned char)ch);
			if ((m & SETMOD_QUOTEWILD) && (ch == '*' || ch == '?' || ch == '\\'))
				buf[at++] = '\\';
			buf[at++] = ch;
		}
		buf[at] = '\0';
		v.p = buf;
		v.n = at;
	}
	struct sieve_value *dst = &r->vars[n->slot];
	memset(dst, 0, sizeof(*dst));
	if (m & SETMOD_LENGTH) {
		dst->type = VAL_NUMBER;
		dst->num = v.n;
		return 0;
	}
	dst->type = VAL_STRING;
	dst->s = v;
	return 0;
}

int sieve_cmd_keep(struct sieve_run *r, const struct sieve_node *n)
{
	if (n->npos) {
		struct sieve_str s;
		if (sieve_eval_string(r, n->pos[0], &s) < 0)
			return -1;
		r->res.keep_reason = s.p;
	}
	r->res.action = SIEVE_ACT_KEEP;
	r->res.terminal = true;
	return count(r, n->npos ? n->pos[0] : NULL, SIEVE_COUNT_INFO);
}

int sieve_cmd_discard(struct sieve_run *r, const struct sieve_node *n)
{
	r->res.action = SIEVE_ACT_DISCARD;
	r->res.discard = true;
	r->res.terminal = true;
	return count(r, NULL, SIEVE_COUNT_INFO);
}

/* Split a leading RFC 3463 status ("5.7.1 ") off the text into res. */
static void set_reply(struct sieve_run *r, unsigned code, const char *text, size_t len)
{
	size_t i = 0, dots = 0, digits = 0;
	bool ok = len > 0 && text[0] == (char)('0' + code / 100);
	for (i = 0; ok && i < len && i < 12 && text[i] != ' '; i++) {
		if (text[i] == '.') {
			if (digits == 0)
				ok = false;
			dots++;
			digits = 0;
		} else if (isdigit((unsigned char)text[i])) {
			digits++;
		} else {
			ok = false;
		}
	}
	ok = ok && dots == 2 && digits > 0 && (i == len || text[i] == ' ');
	r->res.code = code;
	if (ok) {
		memcpy(r->res.enhanced, text, i);
		r->res.enhanced[i] = '\0';
		while (i < len && text[i] == ' ')
			i++;
		r->res.text = text + i;
	} else {
		/* no status in the text: a default per class [ours] */
		const char *def = code >= 500 ? "5.7.1" : code >= 400 ? "4.7.0" : "2.0.0";
		memcpy(r->res.enhanced, def, 6);
		r->res.text = text;
	}
	r->res.terminal = true;
}

int sieve_cmd_reject(struct sieve_run *r, const struct sieve_node *n)
{
	struct sieve_str s;
	if (sieve_eval_string(r, n->pos[0], &s) < 0)
		return -1;
	r->res.action = SIEVE_ACT_REPLY;
	r->res.code = 550;
	memcpy(r->res.enhanced, "5.7.1", 6);
	r->res.text = s.p;
	r->res.terminal = true;
	return count(r, NULL, SIEVE_COUNT_5XX);
}

static int reply_code(struct sieve_run *r, const struct sieve_node *arg, unsigned *code)
{
	uint64_t c;
	if (sieve_eval_number(r, arg, "the reply code", &c) < 0)
		return -1;
	if (c < 200 || c > 599)
		return sieve_rt_error(r, "reply code %llu is not between 200 and 599",
		                      (unsigned long long)c);
	*code = (unsigned)c;
	return 0;
}

int sieve_cmd_ec_action(struct sieve_run *r, const struct sieve_node *n)
{
	unsigned code = 0;
	struct sieve_str text;
	if (reply_code(r, n->pos[0], &code) < 0 || sieve_eval_string(r, n->pos[1], &text) < 0)
		return -1;
	if (count(r, n->npos > 2 ? n->pos[2] : NULL, code_class(code)) < 0)
		return -1;
	r->res.action = SIEVE_ACT_REPLY;
	set_reply(r, code, text.p, text.n);
	return 0;
}

int sieve_cmd_ec_disconnect(struct sieve_run *r, const struct sieve_node *n)
{
	unsigned code = 421;
	struct sieve_str text = {"4.7.0 closing connection", 24};
	const struct sieve_node *counter = NULL;
	if (n->npos == 1)
		counter = n->pos[0];
	if (n->npos >= 2) {
		if (reply_code(r, n->pos[0], &code) < 0 ||
		    sieve_eval_string(r, n->pos[1], &text) < 0)
			return -1;
		if (n->npos == 3)
			counter = n->pos[2];
	}
	if (count(r, counter, code_class(code)) < 0)
		return -1;
	r->res.action = SIEVE_ACT_DISCONNECT;
	r->res.disconnect = true;
	set_reply(r, code, text.p, text.n);
	return 0;
}

int sieve_cmd_ec_tarpit(struct sieve_run *r, const struct sieve_node *n)
{
	uint64_t secs;
	if (sieve_eval_number(r, n->pos[0], "the tarpit delay", &secs) < 0)
		return -1;
	uint64_t sum = (uint64_t)r->res.tarpit_seconds + secs;
	if (sum > r->s->limits.max_tarpit)
		sum = r->s->limits.max_tarpit;
	r->res.tarpit_seconds = (unsigned)sum;
	return count(r, n->npos > 1 ? n->pos[1] : NULL, SIEVE_COUNT_INFO);
}

int sieve_cmd_ec_log(struct sieve_run *r, const struct sieve_node *n)
{
	struct sieve_str s;
	if (sieve_eval_string(r, n->pos[0], &s) < 0)
		return -1;
	return sieve_add_log(r, s.p, s.n);
}

int sieve_cmd_ec_inc_counter(struct sieve_run *r, const struct sieve_node *n)
{
	return count(r, n->pos[0], SIEVE_COUNT_INFO);
}

static enum sieve_vctx scope_of(const struct sieve_node *n)
{
	return strncmp(n->def->name, "vctx_conn", 9) == 0 ? SIEVE_VCTX_CONN : SIEVE_VCTX_MESS;
}

static int vctx_write(struct sieve_run *r, const struct sieve_node *n, bool del)
{
	struct sieve_str key, val = {NULL, 0};
	if (sieve_eval_string(r, n->pos[0], &key) < 0)
		return -1;
	if (!del && sieve_eval_string(r, n->pos[1], &val) < 0)
		return -1;
	if (!r->env->vctx_set)
		return sieve_rt_error(r, "%s is not available here", n->def->name);
	char err[160] = "";
	if (!r->env->vctx_set(r->ud, scope_of(n), key.p, del ? NULL : val.p, err, sizeof(err)))
		return sieve_rt_error(r, "%s: %s", n->def->name, err[0] ? err : "failed");
	return 0;
}

int sieve_cmd_vctx_set(struct sieve_run *r, const struct sieve_node *n)
{
	return vctx_write(r, n, false);
}

int sieve_cmd_vctx_delete(struct sieve_run *r, const struct sieve_node *n)
{
	return vctx_write(r, n, true);
}

int sieve_cmd_hash_set(struct sieve_run *r, const struct sieve_node *n)
{
	struct sieve_value v;
	if (sieve_fn_hash_set(r, n, &v) < 0)
		return -1;
	r->vars[n->pos[0]->slot] = v;
	return 0;
}
