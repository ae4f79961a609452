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
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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

static bool contains(const struct sieve_str *v, const struct sieve_str *k, bool ci)
{
	if (k->n == 0)
		return true;
	if (k->n > v->n)
		return false;
	if (!ci)
		return memmem(v->p, v->n, k->p, k->n) != NULL;
	for (size_t i = 0; i + k->n <= v->n; i++) {
		size_t j = 0;
		while (j < k->n && fold((unsigned char)v->p[i + j]) == fold((unsigned char)k->p[j]))
			j++;
		if (j == k->n)
			return true;
	}
	return false;
}

bool sieve_glob(const char *pat, size_t pn, const char *s, size_t sn, bool ci)
{
	size_t p = 0, i = 0, star_p = SIZE_MAX, star_i = 0;
	while (i < sn) {
		if (p < pn && pat[p] == '*') {
			star_p = ++p;
			star_i = i;
			continue;
		}
		if (p < pn && pat[p] == '?') {
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
			return false;
		p = star_p;
		i = ++star_i;
	}
	while (p < pn && pat[p] == '*')
		p++;
	return p == pn;
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
		r->mdata = pcre2_match_data_create(1, NULL);
		if (!r->mctx || !r->mdata)
			return sieve_rt_error(r, "out of memory for a regex");
		pcre2_set_match_limit(r->mctx, r->s->limits.regex_match_limit);
		pcre2_set_depth_limit(r->mctx, r->s->limits.regex_depth_limit);
	}
	int rc = pcre2_match(re, (PCRE2_SPTR)v->p, v->n, 0, 0, r->mdata, r->mctx);
	if (rc >= 0) {
		*out = true;
		return 0;
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
	for (size_t k = 0; k < nk; k++) {
		pcre2_code *re = NULL;
		bool own = false;
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
			switch (o->match) {
			case MATCH_IS: m = comp_cmp(o->comp, v, key) == 0; break;
			case MATCH_CONTAINS: m = contains(v, key, ci); break;
			case MATCH_MATCHES: m = sieve_glob(key->p, key->n, v->p, v->n, ci); break;
			case MATCH_VALUE: m = value_rel(o->rel, o->comp, v, key); break;
			case MATCH_REGEX:
				if (regex_match(r, re, v, &m) < 0) {
					if (own)
						pcre2_code_free(re);
					return -1;
				}
				break;
			default: break;
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
