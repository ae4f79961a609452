/*
 * match: match types, comparators and relations.
 *
 * RFC 5228 section 2.7 (:is :contains :matches), RFC 4790 (i;octet,
 * i;ascii-casemap, i;ascii-numeric), RFC 5231 (:count, :value and the
 * relations), RFC 5229's :regex draft via PCRE2 with a match and a depth
 * limit per call. Momentum's `bitwise-and` relation is true when the two
 * values, read as i;ascii-numeric numbers, share a bit [ours].
 *
 * A test is true when any value matches any key (for :count, when the
 * number of values is in the relation with any key).
 *
 * Cost: values x keys pairs (each list up to max_list) of strings up to
 * max_string: a billion pairs of 64 KiB in one test if nothing else
 * bounded it. Every comparison is charged to the run in about a unit per
 * byte (sieve_charge), and the run's CPU time is checked against
 * max_run_time every SIEVE_WORK_CHECK units; :contains under casemap folds
 * both sides and uses memmem (linear), and :matches charges its
 * backtracking step by step.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sieve/sieve_int.h"

static inline unsigned char fold(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + 32) : ch;
}

int sieve_numeric_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	size_t ad = 0, bd = 0;
	while (ad < an && a[ad] >= '0' && a[ad] <= '9')
		ad++;
	while (bd < bn && b[bd] >= '0' && b[bd] <= '9')
		bd++;
	if (ad == 0 || bd == 0) /* no leading digit: positive infinity */
		return (ad == 0) - (bd == 0);
	size_t az = 0, bz = 0;
	while (az + 1 < ad && a[az] == '0')
		az++;
	while (bz + 1 < bd && b[bz] == '0')
		bz++;
	size_t al = ad - az, bl = bd - bz;
	if (al != bl)
		return al < bl ? -1 : 1;
	int c = memcmp(a + az, b + bz, al);
	return (c > 0) - (c < 0);
}

static int comp_cmp(uint8_t comp, const struct sieve_str *a, const struct sieve_str *b)
{
	if (comp == COMP_NUMERIC)
		return sieve_numeric_cmp(a->p, a->n, b->p, b->n);
	size_t n = a->n < b->n ? a->n : b->n;
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a->p[i], y = (unsigned char)b->p[i];
		if (comp == COMP_CASEMAP) {
			x = fold(x);
			y = fold(y);
		}
		if (x != y)
			return x < y ? -1 : 1;
	}
	return (a->n > b->n) - (a->n < b->n);
}

uint64_t sieve_thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int sieve_charge(struct sieve_run *r, uint64_t units)
{
	if (r->over_time) /* runtime_error = continue: every later test fails at once */
		return sieve_rt_error(r, "tests too costly: over %u ms of CPU (limit max_run_time)",
		                      r->s->limits.max_run_time);
	r->work += units;
	if (r->work < r->work_next)
		return 0;
	r->work_next = r->work + SIEVE_WORK_CHECK;
	uint64_t now = sieve_thread_cpu_ns();
	if (r->cpu_t0_ns == 0) { /* the first check of this call: count from here */
		r->cpu_t0_ns = now;
		return 0;
	}
	uint64_t used = r->cpu_used_ns + (now - r->cpu_t0_ns);
	if (used > (uint64_t)r->s->limits.max_run_time * 1000000u) {
		r->over_time = true;
		return sieve_rt_error(r, "tests too costly: over %u ms of CPU (limit max_run_time)",
		                      r->s->limits.max_run_time);
	}
	return 0;
}

/* k folded once by the caller (kf); v folded here into r's scratch, then
 * one memmem: linear in v and k, where comparing at every offset was
 * v.n x k.n (4 billion steps for two 64 KiB strings). */
static int contains(struct sieve_run *r, const struct sieve_str *v, const struct sieve_str *k,
                    const char *kf, bool ci, bool *out)
{
	*out = false;
	if (k->n == 0) {
		*out = true;
		return 0;
	}
	if (k->n > v->n)
		return 0;
	if (sieve_charge(r, v->n + k->n) < 0)
		return -1;
	if (!ci) {
		*out = memmem(v->p, v->n, k->p, k->n) != NULL;
		return 0;
	}
	for (size_t i = 0; i < v->n; i++)
		r->fold[k->n + i] = (char)fold((unsigned char)v->p[i]);
	*out = memmem(r->fold + k->n, v->n, kf, k->n) != NULL;
	return 0;
}

/* Make r->fold hold `n` bytes. */
static int fold_room(struct sieve_run *r, size_t n)
{
	if (n <= r->fold_cap)
		return 0;
	char *p = realloc(r->fold, n);
	if (!p)
		return sieve_rt_error(r, "out of memory");
	r->fold = p;
	r->fold_cap = n;
	return 0;
}

int sieve_glob(struct sieve_run *r, const char *pat, size_t pn, const char *s, size_t sn,
               bool ci, bool *out, size_t *cap, unsigned *ncap)
{
	size_t p = 0, i = 0, star_p = SIZE_MAX, star_i = 0;
	uint64_t steps = 0;
	/* wildcard number (0-based) of the next wildcard at p, and of the
	 * star being backtracked; only the first SIEVE_MATCH_VARS - 1 are kept */
	unsigned wc = 0, star_wc = 0;
	const unsigned maxcap = SIEVE_MATCH_VARS - 1;
	*out = false;
	while (i < sn) {
		/* one star backtracks: up to pn x sn steps, charged as they go */
		if (r && ++steps == 4096) {
			if (sieve_charge(r, steps) < 0)
				return -1;
			steps = 0;
		}
		if (p < pn && pat[p] == '*') {
			star_p = ++p;
			star_i = i;
			star_wc = wc;
			if (cap && wc < maxcap)
				cap[2 * wc] = cap[2 * wc + 1] = i;
			wc++;
			continue;
		}
		if (p < pn && pat[p] == '?') {
			if (cap && wc < maxcap) {
				cap[2 * wc] = i;
				cap[2 * wc + 1] = i + 1;
			}
			wc++;
			p++;
			i++;
			continue;
		}
		if (p < pn) {
			size_t q = p;
			if (pat[q] == '\\' && q + 1 < pn)
				q++;
			unsigned char x = (unsigned char)pat[q], y = (unsigned char)s[i];
			if (ci) {
				x = fold(x);
				y = fold(y);
			}
			if (x == y) {
				p = q + 1;
				i++;
				continue;
			}
		}
		if (star_p == SIZE_MAX)
			return r ? sieve_charge(r, steps + 1) : 0;
		p = star_p;
		i = ++star_i;
		wc = star_wc + 1; /* the wildcards after this star are matched again */
		if (cap && star_wc < maxcap)
			cap[2 * star_wc + 1] = i;
	}
	while (p < pn && pat[p] == '*') {
		if (cap && wc < maxcap)
			cap[2 * wc] = cap[2 * wc + 1] = sn;
		wc++;
		p++;
	}
	*out = p == pn;
	if (ncap)
		*ncap = wc < maxcap ? wc : maxcap;
	return r ? sieve_charge(r, steps + 1) : 0;
}

/* After a successful :matches or :regex: ${0} = the value (:matches) or
 * what the whole regex matched, ${1}.. = the wildcards or groups; the
 * rest of ${0}..${9} empty. Only the ones the script reads are copied
 * (into the run's arena: the value may be a temporary); out of memory
 * leaves the earlier ones as they were. */
static int set_matches(struct sieve_run *r, const struct sieve_str *v, const size_t *cap,
                       unsigned ncap)
{
	struct sieve_str m[SIEVE_MATCH_VARS];
	unsigned n = ncap < SIEVE_MATCH_VARS ? ncap : SIEVE_MATCH_VARS;
	for (unsigned k = 0; k < n; k++) {
		size_t a = cap[2 * k], b = cap[2 * k + 1];
		if (a == PCRE2_UNSET || b < a || b > v->n)
			a = b = 0; /* a group that took no part */
		if (!(r->s->match_mask & (1u << k))) {
			m[k] = (struct sieve_str){"", 0}; /* never read */
			continue;
		}
		m[k] = sieve_str_dup(r, v->p + a, b - a);
		if (!m[k].p)
			return sieve_rt_error(r, "out of run memory (limit max_run_memory = %zu)",
			                      r->s->limits.max_run_memory);
	}
	memcpy(r->match, m, n * sizeof m[0]);
	r->nmatch = n;
	return 0;
}

pcre2_code *sieve_regex_compile(const char *pat, size_t len, bool caseless, char *err,
                                size_t errlen)
{
	int ec;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len,
	                               (caseless ? PCRE2_CASELESS : 0) | PCRE2_NEVER_BACKSLASH_C,
	                               &ec, &off, NULL);
	if (!re) {
		PCRE2_UCHAR msg[120];
		pcre2_get_error_message(ec, msg, sizeof(msg));
		snprintf(err, errlen, "%s at offset %zu of \"%.40s\"", (const char *)msg,
		         (size_t)off, pat);
	}
	return re;
}

static int regex_match(struct sieve_run *r, pcre2_code *re, const struct sieve_str *v, bool *out)
{
	if (!r->mctx) {
		r->mctx = pcre2_match_context_create(NULL);
		r->mdata = pcre2_match_data_create(r->s->match_mask ? SIEVE_MATCH_VARS : 1, NULL);
		if (!r->mctx || !r->mdata)
			return sieve_rt_error(r, "out of memory for a regex");
		pcre2_set_match_limit(r->mctx, r->s->limits.regex_match_limit);
		pcre2_set_depth_limit(r->mctx, r->s->limits.regex_depth_limit);
	}
	/* a call is bounded by regex_match_limit; the run, by charging each
	 * call enough that the CPU clock is read every 16 calls at most */
	if (sieve_charge(r, v->n + SIEVE_WORK_CHECK / 16) < 0)
		return -1;
	int rc = pcre2_match(re, (PCRE2_SPTR)v->p, v->n, 0, 0, r->mdata, r->mctx);
	if (rc >= 0) {
		*out = true;
		if (!r->s->match_mask)
			return 0;
		/* rc 0: more groups than pairs; every pair is set */
		unsigned n = rc == 0 ? SIEVE_MATCH_VARS : (unsigned)rc;
		return set_matches(r, v, pcre2_get_ovector_pointer(r->mdata),
		                   n < SIEVE_MATCH_VARS ? n : SIEVE_MATCH_VARS);
	}
	if (rc == PCRE2_ERROR_NOMATCH) {
		*out = false;
		return 0;
	}
	if (rc == PCRE2_ERROR_MATCHLIMIT)
		return sieve_rt_error(r, "regex too costly (limit regex_match_limit = %" PRIu32 ")",
		                      r->s->limits.regex_match_limit);
	if (rc == PCRE2_ERROR_DEPTHLIMIT)
		return sieve_rt_error(r, "regex too deep (limit regex_depth_limit = %" PRIu32 ")",
		                      r->s->limits.regex_depth_limit);
	PCRE2_UCHAR msg[120];
	pcre2_get_error_message(rc, msg, sizeof(msg));
	return sieve_rt_error(r, "regex failed: %s", (const char *)msg);
}

static bool rel_holds(uint8_t rel, int c)
{
	switch (rel) {
	case REL_GT: return c > 0;
	case REL_GE: return c >= 0;
	case REL_LT: return c < 0;
	case REL_LE: return c <= 0;
	case REL_EQ: return c == 0;
	case REL_NE: return c != 0;
	default: return false;
	}
}

static uint64_t leading_number(const struct sieve_str *s)
{
	uint64_t x = 0;
	for (size_t i = 0; i < s->n && s->p[i] >= '0' && s->p[i] <= '9'; i++)
		x = x * 10 + (uint64_t)(s->p[i] - '0');
	return x;
}

static bool value_rel(uint8_t rel, uint8_t comp, const struct sieve_str *v,
                      const struct sieve_str *k)
{
	if (rel == REL_BITAND)
		return (leading_number(v) & leading_number(k)) != 0;
	return rel_holds(rel, comp_cmp(comp, v, k));
}

int sieve_match(struct sieve_run *r, const struct sieve_opts *o, const struct sieve_str *vals,
                size_t nv, const struct sieve_str *keys, size_t nk, pcre2_code *const *keys_re,
                bool *out)
{
	*out = false;
	if (o->match == MATCH_COUNT) {
		char buf[24];
		struct sieve_str cnt = {buf, (size_t)snprintf(buf, sizeof(buf), "%zu", nv)};
		for (size_t k = 0; k < nk; k++)
			if (value_rel(o->rel, o->comp, &cnt, &keys[k])) {
				*out = true;
				return 0;
			}
		return 0;
	}
	bool ci = o->comp == COMP_CASEMAP;
	if (ci && o->match == MATCH_CONTAINS) { /* room for a folded key + value */
		size_t kmax = 0, vmax = 0;
		for (size_t k = 0; k < nk; k++)
			kmax = keys[k].n > kmax ? keys[k].n : kmax;
		for (size_t i = 0; i < nv; i++)
			vmax = vals[i].n > vmax ? vals[i].n : vmax;
		if (fold_room(r, kmax + vmax + 1) < 0)
			return -1;
	}
	for (size_t k = 0; k < nk; k++) {
		pcre2_code *re = NULL;
		bool own = false;
		if (ci && o->match == MATCH_CONTAINS) {
			if (sieve_charge(r, keys[k].n + 1) < 0)
				return -1;
			for (size_t j = 0; j < keys[k].n; j++)
				r->fold[j] = (char)fold((unsigned char)keys[k].p[j]);
		}
		if (o->match == MATCH_REGEX) {
			re = keys_re ? keys_re[k] : NULL;
			if (!re) {
				char err[160];
				re = sieve_regex_compile(keys[k].p, keys[k].n, ci, err, sizeof(err));
				if (!re)
					return sieve_rt_error(r, "bad regex: %s", err);
				own = true;
			}
		}
		for (size_t i = 0; i < nv; i++) {
			const struct sieve_str *v = &vals[i], *key = &keys[k];
			bool m = false;
			int rc = 0;
			switch (o->match) {
			case MATCH_IS:
			case MATCH_VALUE:
				/* i;ascii-numeric reads both whole: the longer one */
				rc = sieve_charge(r, (v->n > key->n ? v->n : key->n) + 1);
				if (rc == 0)
					m = o->match == MATCH_IS ? comp_cmp(o->comp, v, key) == 0
					                         : value_rel(o->rel, o->comp, v, key);
				break;
			case MATCH_CONTAINS: rc = contains(r, v, key, r->fold, ci, &m); break;
			case MATCH_MATCHES: {
				/* cap[0..1] is ${0}, the whole value; the wildcards from 1 */
				size_t cap[2 * SIEVE_MATCH_VARS];
				unsigned ncap = 0;
				bool want = r->s->match_mask != 0;
				rc = sieve_glob(r, key->p, key->n, v->p, v->n, ci, &m, want ? cap + 2 : NULL,
				                want ? &ncap : NULL);
				if (rc == 0 && m && want) {
					cap[0] = 0;
					cap[1] = v->n;
					rc = set_matches(r, v, cap, ncap + 1);
				}
				break;
			}
			case MATCH_REGEX: rc = regex_match(r, re, v, &m); break;
			default: break;
			}
			if (rc < 0) {
				if (own)
					pcre2_code_free(re);
				return -1;
			}
			if (m) {
				if (own)
					pcre2_code_free(re);
				*out = true;
				return 0;
			}
		}
		if (own)
			pcre2_code_free(re);
	}
	return 0;
}
