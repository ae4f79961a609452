/*
 * test_smtp_parse: command and path parsing tables (RFC 5321 §4.1, RFC 6531).
 */
#include <string.h>

#include "smtp/smtp_parse.h"
#include "util/localpart.h"
#include "unit.h"

static enum smtp_parse_error cmd(const char *line, struct smtp_command *c)
{
	return smtp_parse_command(line, strlen(line), c);
}

UNIT_TEST(commands)
{
	static const struct {
		const char *line;
		enum smtp_parse_error err;
		enum smtp_verb verb;
		const char *arg;
	} t[] = {
		{"EHLO mx.example.org", SMTP_PARSE_OK, SMTP_VERB_EHLO, "mx.example.org"},
		{"ehlo   mx.example.org  ", SMTP_PARSE_OK, SMTP_VERB_EHLO, "mx.example.org"},
		{"HELO [192.0.2.1]", SMTP_PARSE_OK, SMTP_VERB_HELO, "[192.0.2.1]"},
		{"EHLO", SMTP_PARSE_SYNTAX, SMTP_VERB_EHLO, NULL},
		{"MAIL FROM:<a@b.example>", SMTP_PARSE_OK, SMTP_VERB_MAIL, "<a@b.example>"},
		{"mail from: <a@b.example> SIZE=10", SMTP_PARSE_OK, SMTP_VERB_MAIL, "<a@b.example> SIZE=10"},
		{"MAIL TO:<a@b>", SMTP_PARSE_SYNTAX, SMTP_VERB_MAIL, NULL},
		{"MAILFROM:<a@b>", SMTP_PARSE_UNKNOWN, SMTP_VERB_UNKNOWN, NULL},
		{"MAIL", SMTP_PARSE_SYNTAX, SMTP_VERB_MAIL, NULL},
		{"RCPT TO:<postmaster>", SMTP_PARSE_OK, SMTP_VERB_RCPT, "<postmaster>"},
		{"RCPT FROM:<x@y>", SMTP_PARSE_SYNTAX, SMTP_VERB_RCPT, NULL},
		{"DATA", SMTP_PARSE_OK, SMTP_VERB_DATA, ""},
		{"DATA x", SMTP_PARSE_SYNTAX, SMTP_VERB_DATA, NULL},
		{"BDAT 100 LAST", SMTP_PARSE_OK, SMTP_VERB_BDAT, "100 LAST"},
		{"QUIT", SMTP_PARSE_OK, SMTP_VERB_QUIT, ""},
		{"rset", SMTP_PARSE_OK, SMTP_VERB_RSET, ""},
		{"NOOP anything", SMTP_PARSE_OK, SMTP_VERB_NOOP, "anything"},
		{"HELP", SMTP_PARSE_OK, SMTP_VERB_HELP, ""},
		{"VRFY root", SMTP_PARSE_OK, SMTP_VERB_VRFY, "root"},
		{"STARTTLS", SMTP_PARSE_OK, SMTP_VERB_STARTTLS, ""},
		{"STARTTLSX", SMTP_PARSE_UNKNOWN, SMTP_VERB_UNKNOWN, NULL},
		{"GET / HTTP/1.0", SMTP_PARSE_UNKNOWN, SMTP_VERB_UNKNOWN, NULL},
		{"", SMTP_PARSE_UNKNOWN, SMTP_VERB_UNKNOWN, NULL},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct smtp_command c;
		enum smtp_parse_error e = cmd(t[i].line, &c);
		CHECK_EQ(e, t[i].err);
		if (e != t[i].err)
			fprintf(stderr, "  line: %s\n", t[i].line);
		if (e == SMTP_PARSE_OK) {
			char buf[600];
			CHECK_EQ(c.verb, t[i].verb);
			memcpy(buf, c.arg, c.arglen);
			buf[c.arglen] = '\0';
			CHECK_STR(buf, t[i].arg);
		}
	}
}

UNIT_TEST(command_nul_and_length)
{
	struct smtp_command c;
	char line[600];

	CHECK_EQ(smtp_parse_command("NOOP a\0b", 8, &c), SMTP_PARSE_NUL);
	memset(line, 'a', sizeof line);
	memcpy(line, "NOOP ", 5);
	CHECK_EQ(smtp_parse_command(line, 510, &c), SMTP_PARSE_OK);
	CHECK_EQ(smtp_parse_command(line, 511, &c), SMTP_PARSE_TOO_LONG);
	CHECK_EQ(smtp_parse_command(line, sizeof line, &c), SMTP_PARSE_TOO_LONG);
}

struct path_case {
	const char *arg;
	bool reverse;
	enum smtp_parse_error err;
	const char *local;
	const char *domain;
	bool route, utf8, null;
	size_t nparams;
};

UNIT_TEST(paths)
{
	static const struct path_case t[] = {
		{"<user@example.org>", false, SMTP_PARSE_OK, "user", "example.org", false, false, false, 0},
		{"<>", true, SMTP_PARSE_OK, "", "", false, false, true, 0},
		{"<>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"<> SIZE=100 BODY=8BITMIME", true, SMTP_PARSE_OK, "", "", false, false, true, 2},
		{"<Postmaster>", false, SMTP_PARSE_OK, "Postmaster", "", false, false, false, 0},
		{"<postmaster>", true, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"<root>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		/* RFC 5321 §4.1.2 and appendix C: source route accepted, ignored */
		{"<@hosta.int,@jkl.org:userc@d.bar.org>", false, SMTP_PARSE_OK, "userc", "d.bar.org", true, false, false, 0},
		{"<@a.example:u@b.example>", false, SMTP_PARSE_OK, "u", "b.example", true, false, false, 0},
		{"<@a.example,u@b.example>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"<@:u@b.example>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		/* quoted local parts */
		{"<\"John Doe\"@example.org>", false, SMTP_PARSE_OK, "\"John Doe\"", "example.org", 0, 0, 0, 0},
		{"<\"a\\\"b\"@example.org>", false, SMTP_PARSE_OK, "\"a\\\"b\"", "example.org", 0, 0, 0, 0},
		{"<\"unterminated@example.org>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"<\"a\tb\"@example.org>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		/* dot-strings */
		{"<first.last+tag@example.org>", false, SMTP_PARSE_OK, "first.last+tag", "example.org", 0, 0, 0, 0},
		{"<.a@example.org>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"<a.@example.org>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"<a..b@example.org>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"<a b@example.org>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		/* address literals */
		{"<u@[192.0.2.1]>", false, SMTP_PARSE_OK, "u", "[192.0.2.1]", 0, 0, 0, 0},
		{"<u@[IPv6:2001:db8::1]>", false, SMTP_PARSE_OK, "u", "[IPv6:2001:db8::1]", 0, 0, 0, 0},
		/* a general literal by syntax (tag "2001"): RFC 5321 allows it */
		{"<u@[2001:db8::1]>", false, SMTP_PARSE_OK, "u", "[2001:db8::1]", 0, 0, 0, 0},
		{"<u@[192.0.2.256]>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"<u@[x-tag:stuff]>", false, SMTP_PARSE_OK, "u", "[x-tag:stuff]", 0, 0, 0, 0},
		{"<u@[192.0.2.1>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		/* domains */
		{"<u@-a.example>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"<u@a-.example>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"<u@a..example>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"<u@a_b.example>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"<u@>", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"u@example.org", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"<u@example.org", false, SMTP_PARSE_SYNTAX, NULL, NULL, 0, 0, 0, 0},
		{"<u@example.org>x", false, SMTP_PARSE_PARAM, NULL, NULL, 0, 0, 0, 0},
		/* SMTPUTF8 (RFC 6531) */
		{"<j\xc3\xb6rg@b\xc3\xbc" "cher.example> SMTPUTF8", true, SMTP_PARSE_OK, "j\xc3\xb6rg", "b\xc3\xbc" "cher.example", 0, 1, 0, 1},
		{"<\xe7\x94\xa8\xe6\x88\xb7@example.org>", false, SMTP_PARSE_OK, "\xe7\x94\xa8\xe6\x88\xb7", "example.org", 0, 1, 0, 0},
		{"<j\xc3rg@example.org>", false, SMTP_PARSE_UTF8, NULL, NULL, 0, 0, 0, 0},
		{"<u@b\xff.example>", false, SMTP_PARSE_UTF8, NULL, NULL, 0, 0, 0, 0},
		{"<\xc0\xaf@example.org>", false, SMTP_PARSE_UTF8, NULL, NULL, 0, 0, 0, 0},
		{"<\xed\xa0\x80@example.org>", false, SMTP_PARSE_UTF8, NULL, NULL, 0, 0, 0, 0},
		/* parameters */
		{"<a@b.example> SIZE=12345", true, SMTP_PARSE_OK, "a", "b.example", 0, 0, 0, 1},
		{"<a@b.example>  SIZE=1   BODY=7BIT ", true, SMTP_PARSE_OK, "a", "b.example", 0, 0, 0, 2},
		{"<a@b.example> SIZE=", true, SMTP_PARSE_PARAM, NULL, NULL, 0, 0, 0, 0},
		{"<a@b.example> =1", true, SMTP_PARSE_PARAM, NULL, NULL, 0, 0, 0, 0},
		{"<a@b.example> A=1 B=2 C=3 D=4 E=5 F=6 G=7 H=8 I=9", true, SMTP_PARSE_PARAM, NULL, NULL, 0, 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct smtp_path p;
		enum smtp_parse_error e = smtp_parse_path(t[i].arg, strlen(t[i].arg), t[i].reverse, &p);
		CHECK_EQ(e, t[i].err);
		if (e != t[i].err)
			fprintf(stderr, "  path %zu: %s\n", i, t[i].arg);
		if (e != SMTP_PARSE_OK || t[i].err != SMTP_PARSE_OK)
			continue;
		CHECK_STR(p.local, t[i].local);
		CHECK_STR(p.domain, t[i].domain);
		CHECK_EQ(p.had_route, t[i].route);
		CHECK_EQ(p.utf8, t[i].utf8);
		CHECK_EQ(p.null_path, t[i].null);
		CHECK_EQ(p.nparams, t[i].nparams);
	}
}

UNIT_TEST(params_values)
{
	struct smtp_path p;
	const char *a = "<a@b.example> size=42 BODY=8BITMIME SMTPUTF8";
	CHECK_EQ(smtp_parse_path(a, strlen(a), true, &p), SMTP_PARSE_OK);
	CHECK_EQ(p.nparams, 3);
	CHECK(smtp_param_is(&p.params[0], "SIZE"));
	CHECK_EQ(p.params[0].valuelen, 2);
	CHECK(memcmp(p.params[0].value, "42", 2) == 0);
	CHECK(smtp_param_is(&p.params[1], "body"));
	CHECK(smtp_param_is(&p.params[2], "SMTPUTF8"));
	CHECK(p.params[2].value == NULL);
}

UNIT_TEST(overlong)
{
	char buf[600];
	struct smtp_path p;

	/* local part over the cap */
	buf[0] = '<';
	memset(buf + 1, 'a', 200);
	strcpy(buf + 201, "@example.org>");
	CHECK_EQ(smtp_parse_path(buf, strlen(buf), false, &p), SMTP_PARSE_TOO_LONG);
	/* domain label over 63 */
	strcpy(buf, "<u@");
	memset(buf + 3, 'b', 64);
	strcpy(buf + 67, ".example>");
	CHECK_EQ(smtp_parse_path(buf, strlen(buf), false, &p), SMTP_PARSE_SYNTAX);
	/* domain over 255 */
	strcpy(buf, "<u@");
	for (int i = 0; i < 30; i++)
		memcpy(buf + 3 + i * 10, "abcdefghi.", 10);
	strcpy(buf + 303, "example>");
	CHECK_EQ(smtp_parse_path(buf, strlen(buf), false, &p), SMTP_PARSE_TOO_LONG);
	CHECK_EQ(smtp_parse_path("<a\0b@c.d>", 9, false, &p), SMTP_PARSE_NUL);
}

UNIT_TEST(domains)
{
	bool u8, lit;
	CHECK(smtp_parse_domain("example.org", 11, &u8, &lit) && !u8 && !lit);
	CHECK(smtp_parse_domain("[10.0.0.1]", 10, &u8, &lit) && lit);
	CHECK(!smtp_parse_domain("[]", 2, &u8, &lit));
	CHECK(!smtp_parse_domain("exa mple", 8, &u8, &lit));
	CHECK(smtp_parse_domain("xn--bcher-kva.example", 21, &u8, &lit) && !u8);
}

UNIT_TEST(utf8)
{
	CHECK(smtp_utf8_valid("plain", 5));
	CHECK(smtp_utf8_valid("\xf0\x9f\x98\x80", 4));
	CHECK(!smtp_utf8_valid("\xf0\x9f\x98", 3));
	CHECK(!smtp_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	CHECK(!smtp_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
	CHECK(!smtp_utf8_valid("\x80", 1));
}

UNIT_TEST(local_canonical)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{"bob", "bob"},
		{"\"bob\"", "bob"},
		{"\"b\\ob\"", "bob"},
		{"\"first.last\"", "first.last"},
		{"\"John Doe\"", "\"John Doe\""},
		{"\"a..b\"", "\"a..b\""},
		{"\"a\\\"b\"", "\"a\\\"b\""},
		{"\"\"", "\"\""},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char out[SMTP_LOCAL_MAX + 8];
		CHECK(mx_local_canonical(t[i].in, out, sizeof out));
		CHECK_STR(out, t[i].out);
	}
	char small[3];
	CHECK(!mx_local_canonical("\"John Doe\"", small, sizeof small));
}

static size_t count(const char *msg, size_t stop)
{
	return smtp_count_received(msg, strlen(msg), stop);
}

UNIT_TEST(count_received)
{
	CHECK_EQ(count("", 10), 0);
	CHECK_EQ(count("Subject: x\r\n\r\nReceived: in the body\r\n", 10), 0);
	CHECK_EQ(count("Received: a\r\nreceived: b\r\nRECEIVED : c\r\n"
	               "Received\t: d\r\nSubject: s\r\n\r\nReceived: body\r\n", 10), 4);
	/* folded lines are one field; look-alike names are other fields */
	CHECK_EQ(count("Received: from a\r\n\tby b\r\n Received: not a field\r\n"
	               "X-Received: x\r\nReceived-SPF: pass\r\nReceivedx: y\r\n\r\n", 10), 1);
	/* a line that is no header field ends the header section */
	CHECK_EQ(count("Received: a\r\nnot a header\r\nReceived: b\r\n", 10), 1);
	CHECK_EQ(count("Received: a\r\n: empty name\r\nReceived: b\r\n", 10), 1);
	/* the last line may lack its CRLF; `stop` bounds the work */
	CHECK_EQ(count("Received: a\r\nReceived: b", 10), 2);
	CHECK_EQ(count("Received: a\r\nReceived: b\r\nReceived: c\r\n", 2), 2);
	/* bare LF lines (Bare_LF = normalize stores CRLF, but be safe) */
	CHECK_EQ(count("Received: a\nReceived: b\n\nReceived: c\n", 10), 2);
}

int main(void)
{
	return unit_run();
}
