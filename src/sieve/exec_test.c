/*
 * exec_test: the tests of sieve.md section 4 (RFC 5228 section 5 and
 * Momentum's additions).
 *
 * Tests never suspend. header/address/exists/size read the message through
 * env->header and env->message_size (data phase only, checked at compile
 * time); envelope reads env->mail_from and env->rcpt_to. In the rcptto phase
 * envelope "to" is the recipient being checked (the last one) [ours]; in
 * the data phase every recipient.
 */
#include <string.h>
#include <strings.h>

#include "sieve/sieve_int.h"

struct strvec {
	struct sieve_str *v;
	size_t n, cap;
};

static int vec_push(struct sieve_run *r, struct strvec *sv, struct sieve_str s)
{
	if (sv->n >= r->s->limits.max_list)
		return sieve_rt_error(r, "too many values (limit max_list = %zu)", r->s->limits.max_list);
	if (sv->n == sv->cap) {
		size_t cap = sv->cap ? sv->cap * 2 : 8;
		struct sieve_str *nv = sieve_arena_alloc(&r->arena, cap * sizeof(*nv));
		if (!nv)
			return sieve_rt_error(r, "out of run memory");
		if (sv->n)
			memcpy(nv, sv->v, sv->n * sizeof(*nv));
		sv->v = nv;
		sv->cap = cap;
	}
	sv->v[sv->n++] = s;
	return 0;
}

int sieve_test_true(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	*out = true;
	return 0;
}

int sieve_test_false(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	*out = false;
	return 0;
}

int sieve_test_not(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	if (sieve_eval_test(r, n->tests[0], out) < 0)
		return -1;
	*out = !*out;
	return 0;
}

int sieve_test_anyof(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	for (size_t i = 0; i < n->ntests; i++) {
		if (sieve_eval_test(r, n->tests[i], out) < 0)
			return -1;
		if (*out)
			return 0;
	}
	*out = false;
	return 0;
}

int sieve_test_allof(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	for (size_t i = 0; i < n->ntests; i++) {
		if (sieve_eval_test(r, n->tests[i], out) < 0)
			return -1;
		if (!*out)
			return 0;
	}
	*out = true;
	return 0;
}

static int match_keys(struct sieve_run *r, const struct sieve_node *n, const struct sieve_str *vals,
                      size_t nv, bool *out)
{
	struct sieve_str *keys;
	size_t nk;
	if (sieve_eval_list(r, n->pos[n->npos - 1], &keys, &nk) < 0)
		return -1;
	return sieve_match(r, &n->opts, vals, nv, keys, nk, n->nres == nk ? n->res : NULL, out);
}

int sieve_test_exists(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	struct sieve_str *names;
	size_t nn;
	if (!r->env->header)
		return sieve_rt_error(r, "message headers are not available");
	if (sieve_eval_list(r, n->pos[0], &names, &nn) < 0)
		return -1;
	*out = true;
	for (size_t i = 0; i < nn && *out; i++)
		if (!r->env->header(r->ud, names[i].p, 0))
			*out = false;
	return 0;
}

/* Every value of every named header, in order. */
static int header_values(struct sieve_run *r, const struct sieve_node *names_node,
                         struct strvec *vals)
{
	struct sieve_str *names;
	size_t nn;
	if (!r->env->header)
		return sieve_rt_error(r, "message headers are not available");
	if (sieve_eval_list(r, names_node, &names, &nn) < 0)
		return -1;
	for (size_t i = 0; i < nn; i++)
		for (size_t k = 0;; k++) {
			const char *v = r->env->header(r->ud, names[i].p, k);
			if (!v)
				break;
			if (vec_push(r, vals, sieve_str_dup(r, v, strlen(v))) < 0)
				return -1;
		}
	return 0;
}

int sieve_test_header(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	struct strvec vals = {0};
	if (header_values(r, n->pos[0], &vals) < 0)
		return -1;
	return match_keys(r, n, vals.v, vals.n, out);
}

static struct sieve_str addr_part(struct sieve_str a, uint8_t part)
{
	if (part == ADDR_ALL)
		return a;
	const char *at = NULL;
	for (size_t i = a.n; i > 0; i--)
		if (a.p[i - 1] == '@') {
			at = a.p + i - 1;
			break;
		}
	struct sieve_str out;
	if (part == ADDR_LOCAL) {
		out.p = a.p;
		out.n = at ? (size_t)(at - a.p) : a.n;
	} else {
		out.p = at ? at + 1 : a.p + a.n;
		out.n = at ? a.n - (size_t)(at + 1 - a.p) : 0;
	}
	return out;
}

/* Trim blanks and (comments) from both ends. */
static struct sieve_str trim(const char *p, size_t n)
{
	while (n && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
		p++;
		n--;
	}
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
		n--;
	struct sieve_str s = {p, n};
	return s;
}

/* The first ch in p[0, n) outside "quoted strings" and (comments), or NULL:
 * a display name may hold '<', ':' or '@' ("a<b" <c@d.e>). A quote that
 * never closes quotes nothing (the first ch anywhere, then). */
static const char *unquoted_chr(const char *p, size_t n, char ch)
{
	bool quoted = false;
	int depth = 0;
	for (size_t i = 0; i < n; i++) {
		if (quoted) {
			if (p[i] == '\\' && i + 1 < n)
				i++;
			else if (p[i] == '"')
				quoted = false;
		} else if (p[i] == '"' && !depth) {
			quoted = true;
		} else if (p[i] == '(') {
			depth++;
		} else if (p[i] == ')' && depth) {
			depth--;
		} else if (p[i] == ch && !depth) {
			return p + i;
		}
	}
	return quoted ? memchr(p, ch, n) : NULL;
}

/*
 * The addresses of one header value, as `part` of each, onto vals: from <...>
 * when present, else the text without (comments); a "name:" group prefix is
 * dropped. Every address counts against max_list (a runtime error past it),
 * so none is skipped silently.
 */
static int split_addresses(struct sieve_run *r, const char *v, size_t n, uint8_t part,
                           struct strvec *vals)
{
	size_t start = 0;
	int depth = 0;
	bool quoted = false, angle = false;
	for (size_t i = 0; i <= n; i++) {
		/* The end of the value ends the last piece whatever is still open
		 * (a quote, a comment, a '<', a trailing backslash): a malformed
		 * field must not hide its address. */
		if (i < n) {
			char ch = v[i];
			if (quoted) {
				if (ch == '\\' && i + 1 < n)
					i++;
				else if (ch == '"')
					quoted = false;
				continue;
			}
			if (ch == '"' && !depth) /* a quote in a (comment) is text */
				quoted = true;
			else if (ch == '(')
				depth++;
			else if (ch == ')' && depth)
				depth--;
			else if (ch == '<' && !depth)
				angle = true;
			else if (ch == '>' && !depth)
				angle = false;
			if ((ch != ',' && ch != ';') || depth || angle)
				continue;
		}
		const char *piece = v + start;
		size_t plen = i - start;
		start = i + 1;
		/* group syntax "name: a, b;" : drop the display name */
		const char *colon = unquoted_chr(piece, plen, ':');
		const char *lt = unquoted_chr(piece, plen, '<');
		const char *atp = unquoted_chr(piece, plen, '@');
		if (colon && (!lt || colon < lt) && (!atp || colon < atp)) {
			plen -= (size_t)(colon + 1 - piece);
			piece = colon + 1;
			lt = unquoted_chr(piece, plen, '<');
		}
		struct sieve_str a;
		if (lt) {
			const char *gt = memchr(lt, '>', plen - (size_t)(lt - piece));
			a = trim(lt + 1, gt ? (size_t)(gt - lt - 1) : plen - (size_t)(lt + 1 - piece));
		} else {
			/* strip (comments) */
			char *buf = sieve_arena_alloc(&r->arena, plen + 1);
			size_t bl = 0;
			int d = 0;
			if (!buf)
				return sieve_rt_error(r, "out of run memory");
			for (size_t k = 0; k < plen; k++) {
				if (piece[k] == '(')
					d++;
				else if (piece[k] == ')' && d)
					d--;
				else if (!d)
					buf[bl++] = piece[k];
			}
			a = trim(buf, bl);
		}
		if (a.n && vec_push(r, vals, addr_part(sieve_str_dup(r, a.p, a.n), part)) < 0)
			return -1;
	}
	return 0;
}

int sieve_test_address(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	struct strvec hv = {0}, vals = {0};
	if (header_values(r, n->pos[0], &hv) < 0)
		return -1;
	for (size_t i = 0; i < hv.n; i++)
		if (split_addresses(r, hv.v[i].p, hv.v[i].n, n->opts.addrpart, &vals) < 0)
			return -1;
	return match_keys(r, n, vals.v, vals.n, out);
}

int sieve_test_envelope(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	struct sieve_str *parts;
	size_t np;
	struct strvec vals = {0};
	if (sieve_eval_list(r, n->pos[0], &parts, &np) < 0)
		return -1;
	for (size_t i = 0; i < np; i++) {
		if (strcasecmp(parts[i].p, "from") == 0) {
			const char *f = r->env->mail_from ? r->env->mail_from(r->ud) : NULL;
			if (!f)
				return sieve_rt_error(r, "the envelope sender is not available");
			struct sieve_str a = sieve_str_dup(r, f, strlen(f));
			if (vec_push(r, &vals, addr_part(a, n->opts.addrpart)) < 0)
				return -1;
		} else if (strcasecmp(parts[i].p, "to") == 0) {
			if (!r->env->rcpt_to || r->s->phase < MX_PHASE_RCPTTO)
				return sieve_rt_error(r, "the envelope recipients are not available");
			size_t k = 0, last = 0;
			while (r->env->rcpt_to(r->ud, k))
				k++;
			if (k && r->s->phase == MX_PHASE_RCPTTO)
				last = k - 1;
			for (size_t j = last; j < k; j++) {
				const char *t = r->env->rcpt_to(r->ud, j);
				struct sieve_str a = sieve_str_dup(r, t, strlen(t));
				if (vec_push(r, &vals, addr_part(a, n->opts.addrpart)) < 0)
					return -1;
			}
		} else {
			return sieve_rt_error(r, "unknown envelope part \"%s\"", parts[i].p);
		}
	}
	return match_keys(r, n, vals.v, vals.n, out);
}

int sieve_test_size(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	uint64_t limit;
	if (!r->env->message_size)
		return sieve_rt_error(r, "the message size is not available");
	if (sieve_eval_number(r, n->pos[0], "the size", &limit) < 0)
		return -1;
	uint64_t size = r->env->message_size(r->ud);
	*out = n->opts.size == 1 ? size > limit : size < limit;
	return 0;
}

int sieve_test_string(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	struct sieve_str *vals;
	size_t nv;
	if (sieve_eval_list(r, n->pos[0], &vals, &nv) < 0)
		return -1;
	return match_keys(r, n, vals, nv, out);
}

int sieve_test_ec_test(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	return sieve_test_string(r, n, out);
}

int sieve_test_isset(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	struct sieve_value v;
	if (sieve_eval_value(r, n->pos[0], &v) < 0)
		return -1;
	if (n->npos == 1) {
		*out = v.type != VAL_UNSET;
		return 0;
	}
	struct sieve_str key;
	if (sieve_eval_string(r, n->pos[1], &key) < 0)
		return -1;
	*out = false;
	if (v.type == VAL_LIST) {
		uint64_t ix;
		if (sieve_eval_number(r, n->pos[1], "the list index", &ix) < 0)
			return -1;
		*out = ix < v.n;
	} else if (v.type == VAL_HASH) {
		for (size_t i = 0; i < v.n && !*out; i++)
			*out = v.keys[i].n == key.n && memcmp(v.keys[i].p, key.p, key.n) == 0;
	}
	return 0;
}

int sieve_test_is_valid_ip(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	struct sieve_str s;
	struct ip_addr a;
	if (sieve_eval_string(r, n->pos[0], &s) < 0)
		return -1;
	*out = ip_addr_parse_n(s.p, s.n, &a);
	return 0;
}

int sieve_test_is_rfc821_ip(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	struct sieve_str s;
	struct ip_addr a;
	if (sieve_eval_string(r, n->pos[0], &s) < 0)
		return -1;
	const char *p = s.p;
	size_t len = s.n;
	if (len >= 2 && p[0] == '[' && p[len - 1] == ']') {
		p++;
		len -= 2;
		if (len > 5 && strncasecmp(p, "IPv6:", 5) == 0) {
			*out = ip_addr_parse_n(p + 5, len - 5, &a) && memchr(p + 5, ':', len - 5);
			return 0;
		}
		/* RFC 5321 4.1.3: a bare literal in brackets is IPv4 */
		*out = ip_addr_parse_n(p, len, &a) && a.family == IP_V4 && !memchr(p, ':', len);
		return 0;
	}
	*out = ip_addr_parse_n(p, len, &a);
	return 0;
}

int sieve_test_type(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	static const char *const names[] = {"unset", "string", "number", "stringlist", "hash"};
	struct sieve_value v;
	if (sieve_eval_value(r, n->pos[0], &v) < 0)
		return -1;
	struct sieve_str t = {names[v.type], strlen(names[v.type])};
	return match_keys(r, n, &t, 1, out);
}

int sieve_test_is_true(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	struct sieve_value v;
	if (sieve_eval_value(r, n->pos[0], &v) < 0)
		return -1;
	switch (v.type) {
	case VAL_NUMBER:
		*out = v.num != 0;
		return 0;
	case VAL_STRING:
		*out = v.s.n && !(v.s.n == 1 && v.s.p[0] == '0');
		return 0;
	case VAL_LIST:
		*out = false;
		for (size_t i = 0; i < v.n && !*out; i++)
			*out = v.items[i].n && !(v.items[i].n == 1 && v.items[i].p[0] == '0');
		return 0;
	case VAL_HASH:
		*out = v.n > 0;
		return 0;
	default:
		*out = false;
		return 0;
	}
}

int sieve_test_vctx(struct sieve_run *r, const struct sieve_node *n, bool *out)
{
	struct sieve_str key;
	if (sieve_eval_string(r, n->pos[0], &key) < 0)
		return -1;
	enum sieve_vctx scope = strcmp(n->def->name, "vctx_conn") == 0 ? SIEVE_VCTX_CONN
	                                                                 : SIEVE_VCTX_MESS;
	if (!r->env->vctx_get)
		return sieve_rt_error(r, "%s is not available here", n->def->name);
	const char *v = r->env->vctx_get(r->ud, scope, key.p);
	struct sieve_str val = {v, v ? strlen(v) : 0};
	if (v)
		val = sieve_str_dup(r, v, val.n);
	return match_keys(r, n, &val, v ? 1 : 0, out);
}
