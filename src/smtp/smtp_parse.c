/*
 * smtp_parse: SMTP command and path parser. See smtp_parse.h.
 *
 * Grammar references are to RFC 5321 §4.1.2 (Mailbox, Local-part,
 * Dot-string, Quoted-string, Domain, address-literal, Esmtp-param) and
 * RFC 6531 §3.3 (UTF-8 in atext, qtextSMTP and sub-domains). Every loop is
 * bounded by the input length; no byte outside [s, s+len) is read.
 */
#include "smtp/smtp_parse.h"

#include <string.h>
#include <strings.h>

#include "util/ipaddr.h"
#include "util/localpart.h"

static const struct {
	const char *name;
	enum smtp_verb verb;
} verbs[] = {
	{"HELO", SMTP_VERB_HELO}, {"EHLO", SMTP_VERB_EHLO}, {"MAIL", SMTP_VERB_MAIL},
	{"RCPT", SMTP_VERB_RCPT}, {"DATA", SMTP_VERB_DATA}, {"BDAT", SMTP_VERB_BDAT},
	{"RSET", SMTP_VERB_RSET}, {"NOOP", SMTP_VERB_NOOP}, {"QUIT", SMTP_VERB_QUIT},
	{"VRFY", SMTP_VERB_VRFY}, {"EXPN", SMTP_VERB_EXPN}, {"HELP", SMTP_VERB_HELP},
	{"STARTTLS", SMTP_VERB_STARTTLS},
};

const char *smtp_verb_name(enum smtp_verb verb)
{
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (verbs[i].verb == verb)
			return verbs[i].name;
	return "UNKNOWN";
}

bool smtp_utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i];
		size_t n;
		unsigned cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i < n + 1)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

enum smtp_parse_error smtp_parse_command(const char *line, size_t len,
                                         struct smtp_command *out)
{
	size_t i = 0, vl;

	memset(out, 0, sizeof *out);
	if (memchr(line, '\0', len))
		return SMTP_PARSE_NUL;
	if (len > SMTP_LINE_MAX - 2)
		return SMTP_PARSE_TOO_LONG;
	while (i < len && line[i] != ' ')
		i++;
	vl = i;
	for (size_t k = 0; k < sizeof verbs / sizeof verbs[0]; k++) {
		if (strlen(verbs[k].name) == vl && strncasecmp(line, verbs[k].name, vl) == 0) {
			out->verb = verbs[k].verb;
			break;
		}
	}
	if (out->verb == SMTP_VERB_UNKNOWN)
		return SMTP_PARSE_UNKNOWN;
	while (i < len && line[i] == ' ')
		i++;
	/* "MAIL FROM:" / "RCPT TO:"; spaces after the colon are tolerated
	 * (widely sent, harmless). */
	if (out->verb == SMTP_VERB_MAIL || out->verb == SMTP_VERB_RCPT) {
		const char *kw = out->verb == SMTP_VERB_MAIL ? "FROM:" : "TO:";
		size_t kl = strlen(kw);
		if (i == vl || len - i < kl || strncasecmp(line + i, kw, kl) != 0)
			return SMTP_PARSE_SYNTAX;
		i += kl;
		while (i < len && line[i] == ' ')
			i++;
	}
	size_t end = len;
	while (end > i && (line[end - 1] == ' ' || line[end - 1] == '\t'))
		end--;
	out->arg = line + i;
	out->arglen = end - i;
	switch (out->verb) {
	case SMTP_VERB_DATA:
	case SMTP_VERB_RSET:
	case SMTP_VERB_QUIT:
	case SMTP_VERB_STARTTLS:
		if (out->arglen)
			return SMTP_PARSE_SYNTAX;
		break;
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
	case SMTP_VERB_MAIL:
	case SMTP_VERB_RCPT:
	case SMTP_VERB_BDAT:
	case SMTP_VERB_VRFY:
	case SMTP_VERB_EXPN:
		if (!out->arglen)
			return SMTP_PARSE_SYNTAX;
		break;
	default:
		break;
	}
	return SMTP_PARSE_OK;
}

/* sub-domain = Let-dig [Ldh-str]; U-labels (RFC 6531) allow UTF-8 octets. */
static bool parse_dotted(const unsigned char *s, size_t len, bool *utf8)
{
	size_t label = 0;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (c >= 0x80)
			*utf8 = true;
		else if (c == '-') {
			if (label == 0)
				return false;
		} else if (!is_alpha(c) && !is_digit(c))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[len - 1] != '-';
}

/* address-literal without its brackets. */
static bool parse_literal(const char *s, size_t len)
{
	struct ip_addr a;

	if (len == 0)
		return false;
	if (len > 5 && strncasecmp(s, "IPv6:", 5) == 0)
		return ip_addr_parse_n(s + 5, len - 5, &a) && memchr(s + 5, ':', len - 5);
	if (!memchr(s, ':', len)) {
		for (size_t i = 0; i < len; i++)
			if (!is_digit((unsigned char)s[i]) && s[i] != '.')
				return false;
		return ip_addr_parse_n(s, len, &a) && a.family == IP_V4;
	}
	/* General-address-literal = Standardized-tag ":" 1*dcontent */
	size_t i = 0;
	while (i < len && s[i] != ':') {
		unsigned char c = (unsigned char)s[i];
		if (!is_alpha(c) && !is_digit(c) && !(c == '-' && i > 0))
			return false;
		i++;
	}
	if (i == 0 || s[i - 1] == '-' || i + 1 >= len)
		return false;
	for (i++; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']')
			return false;
	}
	return true;
}

bool smtp_parse_domain(const char *s, size_t len, bool *utf8, bool *literal)
{
	*utf8 = false;
	*literal = false;
	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	if (s[0] == '[') {
		*literal = true;
		return len >= 3 && s[len - 1] == ']' && parse_literal(s + 1, len - 2);
	}
	if (!parse_dotted((const unsigned char *)s, len, utf8))
		return false;
	return !*utf8 || smtp_utf8_valid(s, len);
}

/* Local-part = Dot-string / Quoted-string. Returns its length or 0. */
static size_t parse_local(const char *s, size_t len)
{
	size_t i = 0;

	if (len && s[0] == '"') {
		for (i = 1; i < len; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c == '"')
				return i + 1;
			if (c == '\\') {
				if (i + 1 >= len)
					return 0;
				unsigned char e = (unsigned char)s[i + 1];
				if (e < 32 || e > 126)
					return 0;
				i++;
				continue;
			}
			if (c < 32 || c == 127)
				return 0;
		}
		return 0;
	}
	return mx_local_dot_string(s, len);
}

static enum smtp_parse_error parse_params(const char *s, size_t len, struct smtp_path *out)
{
	size_t i = 0;

	while (i < len) {
		if (s[i] != ' ')
			return SMTP_PARSE_PARAM;
		while (i < len && s[i] == ' ')
			i++;
		if (i == len)
			break;
		if (out->nparams == SMTP_PARAMS_MAX)
			return SMTP_PARSE_PARAM;
		struct smtp_param *p = &out->params[out->nparams++];
		p->key = s + i;
		if (!is_alpha((unsigned char)s[i]) && !is_digit((unsigned char)s[i]))
			return SMTP_PARSE_PARAM;
		while (i < len && (is_alpha((unsigned char)s[i]) || is_digit((unsigned char)s[i]) ||
		                   s[i] == '-'))
			i++;
		p->keylen = (size_t)(s + i - p->key);
		if (i < len && s[i] == '=') {
			i++;
			p->value = s + i;
			while (i < len && (unsigned char)s[i] >= 33 && (unsigned char)s[i] <= 126 &&
			       s[i] != '=')
				i++;
			p->valuelen = (size_t)(s + i - p->value);
			if (p->valuelen == 0)
				return SMTP_PARSE_PARAM;
		}
	}
	return SMTP_PARSE_OK;
}

size_t smtp_count_received(const char *msg, size_t len, size_t stop)
{
	size_t n = 0, i = 0;

	while (i < len && n < stop) {
		const unsigned char *line = (const unsigned char *)msg + i;
		const unsigned char *nl = memchr(line, '\n', len - i);
		size_t ll = nl ? (size_t)(nl - line) : len - i;
		if (ll && line[ll - 1] == '\r')
			ll--;
		if (ll == 0)
			break; /* the empty line: the body follows */
		if (line[0] != ' ' && line[0] != '\t') {
			size_t k = 0;
			while (k < ll && line[k] > 32 && line[k] < 127 && line[k] != ':')
				k++;
			size_t name_len = k;
			while (k < ll && (line[k] == ' ' || line[k] == '\t'))
				k++;
			if (name_len == 0 || k == ll || line[k] != ':')
				break; /* not a header field: the header section is over */
			if (name_len == 8 && strncasecmp((const char *)line, "Received", 8) == 0)
				n++;
		}
		if (!nl)
			break;
		i = (size_t)(nl - (const unsigned char *)msg) + 1;
	}
	return n;
}

bool smtp_param_is(const struct smtp_param *p, const char *key)
{
	return strlen(key) == p->keylen && strncasecmp(p->key, key, p->keylen) == 0;
}

/* The end of a domain inside a path: the first of '>' ',' ':'; for a
 * literal, after its ']'. */
static size_t domain_end(const char *s, size_t len)
{
	size_t i = 0;

	if (len && s[0] == '[') {
		while (i < len && s[i] != ']')
			i++;
		return i < len ? i + 1 : len;
	}
	while (i < len && s[i] != '>' && s[i] != ',' && s[i] != ':' && s[i] != ' ')
		i++;
	return i;
}

enum smtp_parse_error smtp_parse_path(const char *s, size_t len, bool reverse,
                                      struct smtp_path *out)
{
	size_t i = 0;
	bool u8, lit;

	memset(out, 0, sizeof *out);
	if (memchr(s, '\0', len))
		return SMTP_PARSE_NUL;
	if (len < 2 || s[0] != '<')
		return SMTP_PARSE_SYNTAX;
	i = 1;
	if (s[1] == '>') {
		if (!reverse)
			return SMTP_PARSE_SYNTAX;
		out->null_path = true;
		i = 2;
		return parse_params(s + i, len - i, out);
	}
	/* A-d-l = At-domain *( "," At-domain ) ":" -- accepted, then ignored. */
	if (s[i] == '@') {
		for (;;) {
			if (i >= len || s[i] != '@')
				return SMTP_PARSE_SYNTAX;
			i++;
			size_t dl = domain_end(s + i, len - i);
			if (!smtp_parse_domain(s + i, dl, &u8, &lit))
				return SMTP_PARSE_SYNTAX;
			i += dl;
			if (i < len && s[i] == ',') {
				i++;
				continue;
			}
			if (i < len && s[i] == ':') {
				i++;
				break;
			}
			return SMTP_PARSE_SYNTAX;
		}
		out->had_route = true;
	}
	size_t ll = parse_local(s + i, len - i);
	if (ll == 0)
		return SMTP_PARSE_SYNTAX;
	if (ll > SMTP_LOCAL_MAX)
		return SMTP_PARSE_TOO_LONG;
	memcpy(out->local, s + i, ll);
	out->local[ll] = '\0';
	i += ll;
	if (i < len && s[i] == '@') {
		i++;
		size_t dl = domain_end(s + i, len - i);
		if (dl > SMTP_DOMAIN_MAX)
			return SMTP_PARSE_TOO_LONG;
		if (!smtp_parse_domain(s + i, dl, &u8, &lit)) {
			if (u8 && !smtp_utf8_valid(s + i, dl))
				return SMTP_PARSE_UTF8;
			return SMTP_PARSE_SYNTAX;
		}
		memcpy(out->domain, s + i, dl);
		out->domain[dl] = '\0';
		out->literal = lit;
		out->utf8 = u8;
		i += dl;
	} else if (reverse || strcasecmp(out->local, "postmaster") != 0) {
		return SMTP_PARSE_SYNTAX; /* only <postmaster> may lack a domain */
	}
	if (i >= len || s[i] != '>')
		return SMTP_PARSE_SYNTAX;
	i++;
	for (size_t k = 0; k < ll; k++)
		if ((unsigned char)out->local[k] >= 0x80)
			out->utf8 = true;
	if (out->utf8 && !smtp_utf8_valid(out->local, ll))
		return SMTP_PARSE_UTF8;
	return parse_params(s + i, len - i, out);
}

