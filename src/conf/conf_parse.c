/*
 * conf_parse: a lexer and a recursive-descent parser for the ecelerity.conf
 * stanza syntax. See conf_parse.h for the grammar.
 *
 * Invariants: every node and value is owned by the tree and freed by
 * conf_node_free(); nesting is capped (CONF_MAX_DEPTH) so hostile input
 * cannot exhaust the stack; the error count is capped (CONF_MAX_ERRORS) so a
 * binary file does not produce megabytes of messages.
 */
#include "conf/conf_parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONF_MAX_DEPTH 32
#define CONF_MAX_ERRORS 50

static void *xrealloc(void *p, size_t n)
{
	void *r = realloc(p, n ? n : 1);
	if (r == NULL)
		abort(); /* out of memory at config time: nothing sensible to do */
	return r;
}

void conf_error(struct conf_errors *e, const char *file, unsigned line,
                const char *fmt, ...)
{
	char msg[512];
	char head[320];
	va_list ap;
	int hn, mn;

	va_start(ap, fmt);
	mn = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (mn < 0)
		return;
	if ((size_t)mn >= sizeof msg)
		mn = (int)sizeof msg - 1;
	if (line)
		hn = snprintf(head, sizeof head, "%s:%u: ", file, line);
	else
		hn = snprintf(head, sizeof head, "%s: ", file);
	if (hn < 0)
		return;
	if ((size_t)hn >= sizeof head)
		hn = (int)sizeof head - 1;
	size_t need = e->len + (size_t)hn + (size_t)mn + 2;
	if (need > e->cap) {
		e->cap = need * 2;
		e->buf = xrealloc(e->buf, e->cap);
	}
	memcpy(e->buf + e->len, head, (size_t)hn);
	memcpy(e->buf + e->len + hn, msg, (size_t)mn);
	e->len += (size_t)hn + (size_t)mn;
	e->buf[e->len++] = '\n';
	e->buf[e->len] = '\0';
	e->count++;
}

/* ---- lexer ---- */

enum tok_kind {
	TOK_EOF = 1,
	TOK_WORD,
	TOK_STRING,
	TOK_EQUALS,
	TOK_LBRACE,
	TOK_RBRACE,
	TOK_LPAREN,
	TOK_RPAREN,
	TOK_COMMA,
	TOK_SEMI,
	TOK_BAD,   /* an error already reported; skip the line */
};

struct tok {
	enum tok_kind kind;
	unsigned line;
	char *text; /* WORD and STRING: owned until taken */
};

struct parser {
	const char *file;
	const char *p, *end;
	unsigned line;
	struct conf_errors *errs;
	bool failed;
	bool stopped;      /* too many errors: act as if at EOF */
	struct tok cur;
};

static void perr(struct parser *ps, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void perr(struct parser *ps, unsigned line, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	ps->failed = true;
	if (ps->stopped)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (ps->errs->count + 1 >= CONF_MAX_ERRORS) {
		conf_error(ps->errs, ps->file, line, "too many errors, giving up");
		ps->stopped = true;
		return;
	}
	conf_error(ps->errs, ps->file, line, "%s", msg);
}

static bool is_word_byte(unsigned char c)
{
	if (c <= ' ' || c == 0x7f)
		return false;
	return strchr("={}(),;\"#", c) == NULL;
}

static const char *tok_name(enum tok_kind k)
{
	switch (k) {
	case TOK_EOF: return "end of file";
	case TOK_WORD: return "a word";
	case TOK_STRING: return "a string";
	case TOK_EQUALS: return "'='";
	case TOK_LBRACE: return "'{'";
	case TOK_RBRACE: return "'}'";
	case TOK_LPAREN: return "'('";
	case TOK_RPAREN: return "')'";
	case TOK_COMMA: return "','";
	case TOK_SEMI: return "';'";
	case TOK_BAD: return "a bad token";
	}
	return "?";
}

/* Read a quoted string; ps->p is just past the opening quote. */
static void lex_string(struct parser *ps, struct tok *t)
{
	size_t cap = 32, n = 0;
	char *s = xrealloc(NULL, cap);

	while (ps->p < ps->end) {
		unsigned char c = (unsigned char)*ps->p++;
		if (c == '"') {
			s[n] = '\0';
			t->kind = TOK_STRING;
			t->text = s;
			return;
		}
		if (c == '\n') {
			ps->p--; /* leave it for lex() to count */
			break;
		}
		if (c == '\0') {
			perr(ps, ps->line, "NUL byte in string");
			free(s);
			t->kind = TOK_BAD;
			return;
		}
		if (c == '\\') {
			if (ps->p >= ps->end || *ps->p == '\n')
				break;
			c = (unsigned char)*ps->p++;
			switch (c) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case '\0':
				perr(ps, ps->line, "NUL byte in string");
				free(s);
				t->kind = TOK_BAD;
				return;
			default: break; /* \\ \" and \X are the byte itself */
			}
		}
		if (n + 2 > cap) {
			cap *= 2;
			s = xrealloc(s, cap);
		}
		s[n++] = (char)c;
	}
	free(s);
	perr(ps, t->line, "unterminated string");
	t->kind = TOK_BAD;
}

static void lex(struct parser *ps)
{
	struct tok *t = &ps->cur;

	free(t->text);
	t->text = NULL;
	for (;;) {
		if (ps->stopped || ps->p >= ps->end) {
			t->kind = TOK_EOF;
			t->line = ps->line;
			return;
		}
		unsigned char c = (unsigned char)*ps->p;
		if (c == '\n') {
			ps->line++;
			ps->p++;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
			ps->p++;
		} else if (c == '#') {
			while (ps->p < ps->end && *ps->p != '\n')
				ps->p++;
		} else {
			break;
		}
	}
	unsigned char c = (unsigned char)*ps->p;
	t->line = ps->line;
	switch (c) {
	case '=': t->kind = TOK_EQUALS; ps->p++; return;
	case '{': t->kind = TOK_LBRACE; ps->p++; return;
	case '}': t->kind = TOK_RBRACE; ps->p++; return;
	case '(': t->kind = TOK_LPAREN; ps->p++; return;
	case ')': t->kind = TOK_RPAREN; ps->p++; return;
	case ',': t->kind = TOK_COMMA; ps->p++; return;
	case ';': t->kind = TOK_SEMI; ps->p++; return;
	case '"':
		ps->p++;
		lex_string(ps, t);
		return;
	default:
		break;
	}
	if (!is_word_byte(c)) {
		ps->p++;
		if (c == '\0')
			perr(ps, t->line, "NUL byte");
		else
			perr(ps, t->line, "unexpected byte 0x%02x", c);
		t->kind = TOK_BAD;
		return;
	}
	const char *start = ps->p;
	while (ps->p < ps->end && is_word_byte((unsigned char)*ps->p))
		ps->p++;
	size_t n = (size_t)(ps->p - start);
	t->text = xrealloc(NULL, n + 1);
	memcpy(t->text, start, n);
	t->text[n] = '\0';
	t->kind = TOK_WORD;
}

/* Take ownership of the current token's text. */
static char *take_text(struct parser *ps)
{
	char *s = ps->cur.text;
	ps->cur.text = NULL;
	return s;
}

/* Error recovery: drop tokens up to the end of line `line`, but stop before
 * a '}' so the enclosing scope can still close. */
static void skip_line(struct parser *ps, unsigned line)
{
	while (ps->cur.kind != TOK_EOF && ps->cur.line == line &&
	       ps->cur.kind != TOK_RBRACE)
		lex(ps);
}

static void values_push(struct conf_node *n, char *text, bool quoted, unsigned line)
{
	n->values = xrealloc(n->values, (n->nvalues + 1) * sizeof *n->values);
	n->values[n->nvalues].text = text;
	n->values[n->nvalues].quoted = quoted;
	n->values[n->nvalues].line = line;
	n->nvalues++;
}

/* After '=': one value or a list. Returns false after reporting an error. */
static bool parse_value(struct parser *ps, struct conf_node *n)
{
	if (ps->cur.kind == TOK_WORD || ps->cur.kind == TOK_STRING) {
		bool q = ps->cur.kind == TOK_STRING;
		unsigned line = ps->cur.line;
		values_push(n, take_text(ps), q, line);
		lex(ps);
		return true;
	}
	if (ps->cur.kind == TOK_LPAREN) {
		unsigned open = ps->cur.line;
		n->is_list = true;
		lex(ps);
		for (;;) {
			if (ps->cur.kind == TOK_RPAREN) {
				lex(ps);
				return true;
			}
			if (ps->cur.kind == TOK_COMMA) {
				lex(ps);
				continue;
			}
			if (ps->cur.kind == TOK_WORD || ps->cur.kind == TOK_STRING) {
				bool q = ps->cur.kind == TOK_STRING;
				unsigned line = ps->cur.line;
				values_push(n, take_text(ps), q, line);
				lex(ps);
				continue;
			}
			if (ps->cur.kind == TOK_EOF) {
				perr(ps, open, "list opened here is not closed with ')'");
				return false;
			}
			if (ps->cur.kind != TOK_BAD)
				perr(ps, ps->cur.line, "unexpected %s in list for '%s'",
				     tok_name(ps->cur.kind), n->name);
			return false;
		}
	}
	if (ps->cur.kind != TOK_BAD)
		perr(ps, ps->cur.line, "expected a value after '%s =', got %s",
		     n->name, tok_name(ps->cur.kind));
	return false;
}

static struct conf_node *parse_items(struct parser *ps, int depth, bool top,
                                     unsigned open_line, const char *scope);

/* One item; the current token is a WORD (the name). Returns the node or NULL
 * after an error (already reported, input skipped). */
static struct conf_node *parse_item(struct parser *ps, int depth)
{
	struct conf_node *n = calloc(1, sizeof *n);
	if (n == NULL)
		abort();
	n->line = ps->cur.line;
	n->name = take_text(ps);
	lex(ps);

	if (ps->cur.kind == TOK_EQUALS) {
		n->kind = CONF_NODE_OPTION;
		lex(ps);
		if (!parse_value(ps, n)) {
			skip_line(ps, ps->cur.line);
			conf_node_free(n);
			return NULL;
		}
		if (ps->cur.kind == TOK_SEMI)
			lex(ps);
		return n;
	}
	n->kind = CONF_NODE_SCOPE;
	if (ps->cur.kind == TOK_WORD || ps->cur.kind == TOK_STRING) {
		n->arg = calloc(1, sizeof *n->arg);
		if (n->arg == NULL)
			abort();
		n->arg->quoted = ps->cur.kind == TOK_STRING;
		n->arg->line = ps->cur.line;
		n->arg->text = take_text(ps);
		lex(ps);
	}
	if (ps->cur.kind != TOK_LBRACE) {
		if (ps->cur.kind != TOK_BAD) {
			if (n->arg)
				perr(ps, n->line, "expected '{' after '%s \"%s\"', got %s",
				     n->name, n->arg->text, tok_name(ps->cur.kind));
			else
				perr(ps, n->line, "expected '=' or '{' after '%s', got %s",
				     n->name, tok_name(ps->cur.kind));
		}
		skip_line(ps, n->line);
		conf_node_free(n);
		return NULL;
	}
	if (depth >= CONF_MAX_DEPTH) {
		perr(ps, n->line, "scopes nested deeper than %d", CONF_MAX_DEPTH);
		ps->stopped = true;
		conf_node_free(n);
		return NULL;
	}
	lex(ps);
	n->children = parse_items(ps, depth + 1, false, n->line, n->name);
	n->end_line = ps->cur.line;
	if (ps->cur.kind == TOK_RBRACE)
		lex(ps);
	return n;
}

/* Items up to '}' (inside a scope) or EOF (top level). */
static struct conf_node *parse_items(struct parser *ps, int depth, bool top,
                                     unsigned open_line, const char *scope)
{
	struct conf_node *head = NULL, **tail = &head;

	for (;;) {
		switch (ps->cur.kind) {
		case TOK_EOF:
			if (!top)
				perr(ps, open_line, "scope '%s' opened here is not closed with '}'",
				     scope);
			return head;
		case TOK_RBRACE:
			if (!top)
				return head;
			perr(ps, ps->cur.line, "'}' without a matching '{'");
			lex(ps);
			break;
		case TOK_SEMI:
			lex(ps); /* a stray ';' is tolerated */
			break;
		case TOK_WORD: {
			struct conf_node *n = parse_item(ps, depth);
			if (n) {
				*tail = n;
				tail = &n->next;
			}
			break;
		}
		case TOK_BAD: {
			unsigned line = ps->cur.line;
			lex(ps);
			skip_line(ps, line);
			break;
		}
		default: {
			unsigned line = ps->cur.line;
			perr(ps, line, "expected an option or scope name, got %s",
			     tok_name(ps->cur.kind));
			lex(ps);
			skip_line(ps, line);
			break;
		}
		}
	}
}

struct conf_node *conf_parse(const char *file, const char *text, size_t len,
                             struct conf_errors *errs, bool *ok,
                             unsigned *last_line)
{
	struct parser ps;

	memset(&ps, 0, sizeof ps);
	ps.file = file;
	ps.p = text;
	ps.end = text + len;
	ps.line = 1;
	ps.errs = errs;
	lex(&ps);
	struct conf_node *list = parse_items(&ps, 0, true, 0, NULL);
	free(ps.cur.text);
	if (last_line) {
		/* a final newline does not start a new line */
		unsigned l = ps.line;
		if (len > 0 && text[len - 1] == '\n' && l > 1)
			l--;
		*last_line = l;
	}
	*ok = !ps.failed;
	return list;
}

void conf_node_free(struct conf_node *list)
{
	while (list) {
		struct conf_node *next = list->next;
		for (size_t i = 0; i < list->nvalues; i++)
			free(list->values[i].text);
		free(list->values);
		if (list->arg) {
			free(list->arg->text);
			free(list->arg);
		}
		conf_node_free(list->children);
		free(list->name);
		free(list);
		list = next;
	}
}
