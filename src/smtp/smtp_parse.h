/*
 * smtp_parse: a pure SMTP command parser (RFC 5321 §4.1, RFC 6531).
 *
 * One command line (without its CRLF) in, a verb and its argument out;
 * then, for MAIL and RCPT, a path with its ESMTP parameters. Nothing is
 * allocated and nothing is written outside the caller's structs, so the
 * parser is fuzzed alone. Arguments point into the caller's line.
 *
 * Paths: "<" [ source-route ":" ] mailbox ">" or "<>" (reverse path only).
 * Source routes (RFC 5321 §4.1.2, appendix C) are accepted and dropped: the
 * mailbox after them is the only address the server ever uses, so a route
 * can never make us relay. The local part is a dot-string or a quoted
 * string; the domain a dotted name or an address literal ([1.2.3.4],
 * [IPv6:...], or a general literal TAG:text). UTF-8 in the local part and
 * the domain is allowed by syntax (RFC 6531) and reported in path->utf8;
 * the session refuses it unless the transaction uses SMTPUTF8. Invalid
 * UTF-8 is always refused.
 */
#ifndef MX_SMTP_SMTP_PARSE_H
#define MX_SMTP_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 §4.5.3.1: command line 512 octets with CRLF; local part 64,
 * domain 255, path 256. We are lenient on the local part (some senders
 * exceed 64) but cap everything. */
#define SMTP_LINE_MAX 512
#define SMTP_LOCAL_MAX 128
#define SMTP_DOMAIN_MAX 255
#define SMTP_PARAMS_MAX 8

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_COUNT
};

enum smtp_parse_error {
	SMTP_PARSE_OK = 0,
	SMTP_PARSE_UNKNOWN,   /* 500 5.5.1: not a command we know */
	SMTP_PARSE_SYNTAX,    /* 501 5.5.4: bad argument syntax */
	SMTP_PARSE_NUL,       /* 500 5.5.2: NUL byte in the line */
	SMTP_PARSE_TOO_LONG,  /* 500 5.5.6 / 501 5.5.4: line, local part or domain too long */
	SMTP_PARSE_UTF8,      /* 501 5.6.7: invalid UTF-8 */
	SMTP_PARSE_PARAM,     /* 555 5.5.4: malformed ESMTP parameter */
};

struct smtp_command {
	enum smtp_verb verb;
	const char *arg;   /* after the verb (and "FROM:"/"TO:"), spaces skipped */
	size_t arglen;     /* trailing spaces removed */
};

struct smtp_param {
	const char *key;   /* esmtp-keyword */
	size_t keylen;
	const char *value; /* NULL when the parameter has no "=value" */
	size_t valuelen;
};

struct smtp_path {
	bool null_path;    /* "<>" */
	bool had_route;    /* a source route was given and dropped */
	bool utf8;         /* non-ASCII octets in the local part or the domain */
	bool literal;      /* the domain is an address literal */
	char local[SMTP_LOCAL_MAX + 1];   /* as written (quotes kept), NUL-terminated */
	char domain[SMTP_DOMAIN_MAX + 1]; /* as written (brackets kept), NUL-terminated */
	struct smtp_param params[SMTP_PARAMS_MAX];
	size_t nparams;
};

/* Parse one command line (CRLF removed). MAIL and RCPT need "FROM:" / "TO:". */
enum smtp_parse_error smtp_parse_command(const char *line, size_t len,
                                         struct smtp_command *out);

/* Parse the argument of MAIL FROM: (reverse = true, "<>" allowed) or
 * RCPT TO: (reverse = false; "<postmaster>" without domain allowed). */
enum smtp_parse_error smtp_parse_path(const char *arg, size_t len, bool reverse,
                                      struct smtp_path *out);

/* Validate a domain (dotted name or address literal); sets *utf8 when it
 * holds non-ASCII U-labels. Used for HELO/EHLO too. */
bool smtp_parse_domain(const char *s, size_t len, bool *utf8, bool *literal);

/* Whether [s, s+len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool smtp_utf8_valid(const char *s, size_t len);

/* How many "Received:" fields the header section of msg (CRLF lines, up to
 * the first empty line or a line that is not a header field) holds,
 * counting at most `stop` (the caller's limit + 1 is enough). Names are
 * case-insensitive; blanks before the colon (RFC 5322 obsolete syntax)
 * are allowed; folded continuation lines are not fields. */
size_t smtp_count_received(const char *msg, size_t len, size_t stop);

/* Case-insensitive comparison of a parameter's keyword. */
bool smtp_param_is(const struct smtp_param *p, const char *key);

/* The verb's canonical upper-case name ("MAIL"), for logs and HELP. */
const char *smtp_verb_name(enum smtp_verb verb);

#endif
