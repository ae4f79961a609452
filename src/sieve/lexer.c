/*
 * lexer: script text to tokens (RFC 5228 section 2.4 and 8.1).
 *
 * Comments `#...` and bracketed; quoted strings where a backslash makes the
 * next character literal; `text:` multi-line strings ending at a line holding
 * a single "." with ".." unstuffed; numbers with K/M/G (overflow of 64 bits is
 * an error); tags `:x`; our additions `$name`, `=`, `(`, `)` (destructuring
 * and test lists). Every error is reported with line and column and lexing
 * goes on, so the parser sees a plausible token stream and can report more.
 * Columns count bytes, from 1.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "sieve/sieve_int.h"

void sieve_lex_init(struct sieve_lexer *lx, struct sieve_compiler *c,
                    const char *src, size_t len)
{
	lx->c = c;
	lx->src = src;
	lx->p = src;
	lx->end = src + len;
	lx->line = 1;
	lx->col = 1;
}

static void adv(struct sieve_lexer *lx)
{
	if (*lx->p == '\n') {
		lx->line++;
		lx->col = 1;
	} else {
		lx->col++;
	}
	lx->p++;
}

static bool is_ident_start(int ch)
{
	return isalpha((unsigned char)ch) || ch == '_';
}

static bool is_ident(int ch)
{
	return isalnum((unsigned char)ch) || ch == '_';
}

/* Skip blanks and comments; returns whether anything was skipped. */
static bool skip_space(struct sieve_lexer *lx)
{
	bool any = false;
	while (lx->p < lx->end) {
		char ch = *lx->p;
		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
			adv(lx);
		} else if (ch == '#') {
			while (lx->p < lx->end && *lx->p != '\n')
				adv(lx);
		} else if (ch == '/' && lx->p + 1 < lx->end && lx->p[1] == '*') {
			unsigned line = lx->line, col = lx->col;
			adv(lx);
			adv(lx);
			bool closed = false;
			while (lx->p < lx->end) {
				if (*lx->p == '*' && lx->p + 1 < lx->end && lx->p[1] == '/') {
					adv(lx);
					adv(lx);
					closed = true;
					break;
				}
				adv(lx);
			}
			if (!closed)
				sieve_error(lx->c, line, col, "unterminated /* comment");
		} else {
			break;
		}
		any = true;
	}
	return any;
}

static void lex_quoted(struct sieve_lexer *lx, struct sieve_token *t)
{
	adv(lx); /* the opening quote */
	/* Size the copy from a first scan to the closing quote: allocating the
	 * rest of the source per string would make lexing quadratic. */
	const char *start = lx->p, *q = start;
	while (q < lx->end && *q != '"')
		q += (*q == '\\' && q + 1 < lx->end) ? 2 : 1;
	size_t max = (size_t)(q - start);
	char *buf = sieve_arena_alloc(lx->c->arena, max + 1);
	if (!buf) {
		t->kind = TOK_ERROR;
		return;
	}
	size_t n = 0;
	while (lx->p < lx->end && *lx->p != '"') {
		if (*lx->p == '\\' && lx->p + 1 < lx->end)
			adv(lx);
		buf[n++] = *lx->p;
		adv(lx);
	}
	if (lx->p >= lx->end) {
		sieve_error(lx->c, t->line, t->col, "unterminated quoted string");
		t->kind = TOK_ERROR;
		return;
	}
	adv(lx); /* the closing quote */
	buf[n] = '\0';
	t->kind = TOK_STRING;
	t->text = buf;
	t->len = n;
}

static void lex_multiline(struct sieve_lexer *lx, struct sieve_token *t)
{
	/* after "text:": blanks, an optional # comment, then the line end */
	while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t'))
		adv(lx);
	if (lx->p < lx->end && *lx->p == '#')
		while (lx->p < lx->end && *lx->p != '\n')
			adv(lx);
	if (lx->p < lx->end && *lx->p == '\r')
		adv(lx);
	if (lx->p >= lx->end || *lx->p != '\n') {
		sieve_error(lx->c, lx->line, lx->col,
		            "text: must be followed by the end of the line");
		t->kind = TOK_ERROR;
		while (lx->p < lx->end && *lx->p != '\n')
			adv(lx);
		return;
	}
	adv(lx);
	/* The text ends at a line holding only "."; size the copy from a scan. */
	const char *q = lx->p;
	while (q < lx->end) {
		const char *le = memchr(q, '\n', (size_t)(lx->end - q));
		size_t ll = le ? (size_t)(le - q) : (size_t)(lx->end - q);
		if (ll && q[ll - 1] == '\r')
			ll--;
		if (ll == 1 && q[0] == '.')
			break;
		q = le ? le + 1 : lx->end;
	}
	size_t max = (size_t)(q - lx->p);
	char *buf = sieve_arena_alloc(lx->c->arena, max + 1);
	if (!buf) {
		t->kind = TOK_ERROR;
		return;
	}
	size_t n = 0;
	for (;;) {
		if (lx->p >= lx->end) {
			sieve_error(lx->c, t->line, t->col,
			            "unterminated text: string (a line with a single \".\" ends it)");
			t->kind = TOK_ERROR;
			return;
		}
		const char *ls = lx->p, *le = ls;
		while (le < lx->end && *le != '\n')
			le++;
		size_t ll = (size_t)(le - ls);
		if (ll && ls[ll - 1] == '\r')
			ll--;
		if (ll == 1 && ls[0] == '.') {
			while (lx->p < le)
				adv(lx);
			if (lx->p < lx->end)
				adv(lx);
			break;
		}
		const char *from = ls;
		if (ll >= 2 && ls[0] == '.' && ls[1] == '.')
			from++; /* dot-unstuffing */
		size_t copy = (size_t)(le - from) + (le < lx->end ? 1 : 0);
		memcpy(buf + n, from, copy);
		n += copy;
		while (lx->p < le)
			adv(lx);
		if (lx->p < lx->end)
			adv(lx);
	}
	buf[n] = '\0';
	t->kind = TOK_STRING;
	t->text = buf;
	t->len = n;
}

static void lex_number(struct sieve_lexer *lx, struct sieve_token *t)
{
	uint64_t v = 0;
	bool overflow = false;
	while (lx->p < lx->end && isdigit((unsigned char)*lx->p)) {
		unsigned d = (unsigned)(*lx->p - '0');
		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
		adv(lx);
	}
	if (lx->p < lx->end) {
		unsigned shift = 0;
		switch (*lx->p) {
		case 'K': case 'k': shift = 10; break;
		case 'M': case 'm': shift = 20; break;
		case 'G': case 'g': shift = 30; break;
		default: break;
		}
		if (shift) {
			if (v > (UINT64_MAX >> shift))
				overflow = true;
			else
				v <<= shift;
			adv(lx);
		}
	}
	if (lx->p < lx->end && is_ident(*lx->p)) {
		sieve_error(lx->c, t->line, t->col, "malformed number");
		while (lx->p < lx->end && is_ident(*lx->p))
			adv(lx);
		t->kind = TOK_ERROR;
		return;
	}
	if (overflow) {
		sieve_error(lx->c, t->line, t->col,
		            "number too large (the limit is 2^64-1)");
		t->kind = TOK_ERROR;
		return;
	}
	t->kind = TOK_NUMBER;
	t->num = v;
}

static void lex_word(struct sieve_lexer *lx, struct sieve_token *t, enum sieve_tok kind)
{
	const char *s = lx->p;
	while (lx->p < lx->end && is_ident(*lx->p))
		adv(lx);
	t->kind = kind;
	t->len = (size_t)(lx->p - s);
	t->text = sieve_arena_strndup(lx->c->arena, s, t->len);
	if (!t->text)
		t->kind = TOK_ERROR;
}

void sieve_lex_next(struct sieve_lexer *lx, struct sieve_token *t)
{
	for (;;) {
		memset(t, 0, sizeof(*t));
		t->spaced = skip_space(lx);
		t->line = lx->line;
		t->col = lx->col;
		if (lx->p >= lx->end) {
			t->kind = TOK_EOF;
			return;
		}
		char ch = *lx->p;
		switch (ch) {
		case '[': adv(lx); t->kind = TOK_LBRACKET; return;
		case ']': adv(lx); t->kind = TOK_RBRACKET; return;
		case '(': adv(lx); t->kind = TOK_LPAREN; return;
		case ')': adv(lx); t->kind = TOK_RPAREN; return;
		case '{': adv(lx); t->kind = TOK_LBRACE; return;
		case '}': adv(lx); t->kind = TOK_RBRACE; return;
		case ',': adv(lx); t->kind = TOK_COMMA; return;
		case ';': adv(lx); t->kind = TOK_SEMI; return;
		case '=': adv(lx); t->kind = TOK_ASSIGN; return;
		case '"': lex_quoted(lx, t); return;
		default: break;
		}
		if (isdigit((unsigned char)ch)) {
			lex_number(lx, t);
			return;
		}
		if (ch == ':' || ch == '$') {
			adv(lx);
			if (lx->p < lx->end && is_ident_start(*lx->p)) {
				lex_word(lx, t, ch == ':' ? TOK_TAG : TOK_VAR);
				return;
			}
			sieve_error(lx->c, t->line, t->col, "'%c' must be followed by a name", ch);
			t->kind = TOK_ERROR;
			return;
		}
		if (is_ident_start(ch)) {
			lex_word(lx, t, TOK_IDENT);
			if (t->kind == TOK_IDENT && t->len == 4 &&
			    strncasecmp(t->text, "text", 4) == 0 &&
			    lx->p < lx->end && *lx->p == ':') {
				adv(lx);
				lex_multiline(lx, t);
			}
			return;
		}
		/* One error per run of junk, then carry on. */
		if ((unsigned char)ch >= 0x20 && (unsigned char)ch < 0x7f)
			sieve_error(lx->c, t->line, t->col, "unexpected character '%c'", ch);
		else
			sieve_error(lx->c, t->line, t->col, "unexpected byte 0x%02x",
			            (unsigned)(unsigned char)ch);
		adv(lx); /* at least the bad byte: it may be a NUL, which strchr finds */
		while (lx->p < lx->end && *lx->p && !isspace((unsigned char)*lx->p) &&
		       !strchr("[](){},;\"", *lx->p))
			adv(lx);
		t->kind = TOK_ERROR;
		return;
	}
}
