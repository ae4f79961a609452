/*
 * parser: tokens to a syntax tree (RFC 5228 section 8.2, plus Momentum's
 * assignment forms).
 *
 *   commands  = *command
 *   command   = IDENT arguments ( ";" / block )
 *             / VAR [index] "=" rhs ";"
 *             / "(" VAR *("," VAR) ")" "=" rhs ";"
 *   arguments = *argument [ test / "(" test *("," test) ")" ]
 *   argument  = string / number / "[" string *("," string) "]" / tag / VAR [index]
 *   test      = IDENT arguments
 *   rhs       = IDENT arguments (a function call) / argument
 *   index     = "[" (number / string / VAR) "]"   written right after the VAR
 *
 * The parser knows no command names except if/elsif/else placement (left
 * to the validator too): it builds a generic tree. On an error it reports
 * the position, skips to the end of the statement (";" or a balanced block)
 * and goes on, so one compile lists every error.
 */
#include <stdio.h>
#include <string.h>

#include "sieve/sieve_int.h"

struct parser {
	struct sieve_compiler *c;
	struct sieve_lexer lx;
	struct sieve_token cur;
	unsigned end_line, end_col; /* just after the last token consumed */
	unsigned arg_line, arg_col; /* just after the token before the last argument */
	unsigned depth;
	bool oom;
};

struct vec {
	struct sieve_node **v;
	size_t n, cap;
};

static void next(struct parser *p)
{
	p->end_line = p->lx.line;
	p->end_col = p->lx.col;
	sieve_lex_next(&p->lx, &p->cur);
	/* Lexer errors are already reported: step over them. */
	while (p->cur.kind == TOK_ERROR)
		sieve_lex_next(&p->lx, &p->cur);
}

static struct sieve_node *new_node(struct parser *p, enum sieve_node_kind k,
                                   unsigned line, unsigned col)
{
	struct sieve_node *n = sieve_arena_alloc(p->c->arena, sizeof(*n));
	if (!n) {
		p->oom = true;
		return NULL;
	}
	n->kind = k;
	n->line = line;
	n->col = col;
	p->c->nodes++;
	return n;
}

static bool push(struct parser *p, struct vec *v, struct sieve_node *n)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 4;
		struct sieve_node **nv = sieve_arena_alloc(p->c->arena, cap * sizeof(*nv));
		if (!nv) {
			p->oom = true;
			return false;
		}
		if (v->n)
			memcpy(nv, v->v, v->n * sizeof(*nv));
		v->v = nv;
		v->cap = cap;
	}
	v->v[v->n++] = n;
	return true;
}

static const char *tok_desc(const struct sieve_token *t)
{
	switch (t->kind) {
	case TOK_EOF: return "end of script";
	case TOK_IDENT: return "an identifier";
	case TOK_TAG: return "a tag";
	case TOK_NUMBER: return "a number";
	case TOK_STRING: return "a string";
	case TOK_VAR: return "a variable";
	case TOK_LBRACKET: return "'['";
	case TOK_RBRACKET: return "']'";
	case TOK_LPAREN: return "'('";
	case TOK_RPAREN: return "')'";
	case TOK_LBRACE: return "'{'";
	case TOK_RBRACE: return "'}'";
	case TOK_COMMA: return "','";
	case TOK_SEMI: return "';'";
	case TOK_ASSIGN: return "'='";
	case TOK_ERROR: return "an invalid token";
	}
	return "?";
}

/* Skip to the end of the broken statement: past ";" or a balanced block,
 * or up to (not past) a "}" that closes the enclosing block. */
static void recover(struct parser *p)
{
	unsigned depth = 0;
	while (p->cur.kind != TOK_EOF) {
		if (p->cur.kind == TOK_SEMI && depth == 0) {
			next(p);
			return;
		}
		if (p->cur.kind == TOK_LBRACE)
			depth++;
		if (p->cur.kind == TOK_RBRACE) {
			if (depth == 0)
				return;
			if (--depth == 0) {
				next(p);
				return;
			}
		}
		next(p);
	}
}

static struct sieve_node *parse_test(struct parser *p);
static bool parse_block(struct parser *p, struct vec *out);

/* The items of a parenthesised list whose '(' is consumed, up to and with
 * its ')': each starts with a token of `kind` and is parsed by `parse`. The
 * errors name `item` ("expected ITEM, found ...") and `where` for a bad
 * separator ("expected ',' or ')' WHERE, found ..."). */
static bool parse_paren_list(struct parser *p, enum sieve_tok kind,
                             struct sieve_node *(*parse)(struct parser *), struct vec *out,
                             const char *item, const char *where)
{
	for (;;) {
		if (p->cur.kind != kind) {
			sieve_error(p->c, p->cur.line, p->cur.col, "expected %s, found %s", item,
			            tok_desc(&p->cur));
			return false;
		}
		struct sieve_node *n = parse(p);
		if (!n || !push(p, out, n))
			return false;
		if (p->cur.kind == TOK_COMMA) {
			next(p);
			continue;
		}
		if (p->cur.kind == TOK_RPAREN) {
			next(p);
			return true;
		}
		sieve_error(p->c, p->cur.line, p->cur.col, "expected ',' or ')' %s, found %s", where,
		            tok_desc(&p->cur));
		return false;
	}
}

static struct sieve_node *parse_string_list(struct parser *p)
{
	struct sieve_node *list = new_node(p, NODE_LIST, p->cur.line, p->cur.col);
	struct vec items = {0};
	if (!list)
		return NULL;
	next(p); /* [ */
	for (;;) {
		struct sieve_node *item;
		if (p->cur.kind == TOK_STRING) {
			item = new_node(p, NODE_STRING, p->cur.line, p->cur.col);
			if (!item)
				return NULL;
			item->text = p->cur.text;
			item->len = p->cur.len;
		} else if (p->cur.kind == TOK_VAR) {
			item = new_node(p, NODE_VAR, p->cur.line, p->cur.col);
			if (!item)
				return NULL;
			item->name = p->cur.text;
		} else {
			sieve_error(p->c, p->cur.line, p->cur.col,
			            "expected a string in the list, found %s", tok_desc(&p->cur));
			return NULL;
		}
		if (!push(p, &items, item))
			return NULL;
		next(p);
		if (p->cur.kind == TOK_COMMA) {
			next(p);
			continue;
		}
		if (p->cur.kind == TOK_RBRACKET) {
			next(p);
			break;
		}
		sieve_error(p->c, p->cur.line, p->cur.col,
		            "expected ',' or ']' in the string list, found %s", tok_desc(&p->cur));
		return NULL;
	}
	list->items = items.v;
	list->nitems = items.n;
	return list;
}

/* A variable, with an index when "[" follows without a space. */
static struct sieve_node *parse_var(struct parser *p)
{
	struct sieve_node *v = new_node(p, NODE_VAR, p->cur.line, p->cur.col);
	if (!v)
		return NULL;
	v->name = p->cur.text;
	next(p);
	if (p->cur.kind == TOK_LBRACKET && !p->cur.spaced) {
		next(p);
		struct sieve_node *ix = NULL;
		if (p->cur.kind == TOK_NUMBER) {
			ix = new_node(p, NODE_NUMBER, p->cur.line, p->cur.col);
			if (ix)
				ix->num = p->cur.num;
		} else if (p->cur.kind == TOK_STRING) {
			ix = new_node(p, NODE_STRING, p->cur.line, p->cur.col);
			if (ix) {
				ix->text = p->cur.text;
				ix->len = p->cur.len;
			}
		} else if (p->cur.kind == TOK_VAR) {
			ix = new_node(p, NODE_VAR, p->cur.line, p->cur.col);
			if (ix)
				ix->name = p->cur.text;
		} else {
			sieve_error(p->c, p->cur.line, p->cur.col,
			            "expected a number, string or variable as index of $%s, found %s",
			            v->name, tok_desc(&p->cur));
			return NULL;
		}
		if (!ix)
			return NULL;
		next(p);
		if (p->cur.kind != TOK_RBRACKET) {
			sieve_error(p->c, p->cur.line, p->cur.col,
			            "expected ']' after the index of $%s, found %s",
			            v->name, tok_desc(&p->cur));
			return NULL;
		}
		next(p);
		v->index = ix;
	}
	return v;
}

/* One plain argument, or NULL with *none set when the token starts none. */
static struct sieve_node *parse_argument(struct parser *p, bool *none)
{
	struct sieve_node *n = NULL;
	*none = false;
	switch (p->cur.kind) {
	case TOK_STRING:
		n = new_node(p, NODE_STRING, p->cur.line, p->cur.col);
		if (n) {
			n->text = p->cur.text;
			n->len = p->cur.len;
		}
		next(p);
		return n;
	case TOK_NUMBER:
		n = new_node(p, NODE_NUMBER, p->cur.line, p->cur.col);
		if (n)
			n->num = p->cur.num;
		next(p);
		return n;
	case TOK_TAG:
		n = new_node(p, NODE_TAG, p->cur.line, p->cur.col);
		if (n)
			n->name = p->cur.text;
		next(p);
		return n;
	case TOK_LBRACKET:
		return parse_string_list(p);
	case TOK_VAR:
		return parse_var(p);
	default:
		*none = true;
		return NULL;
	}
}

/* Arguments and subtests of a command, test or function call into n.
 * Returns false after reporting an error. */
static bool parse_arguments(struct parser *p, struct sieve_node *n)
{
	struct vec args = {0}, tests = {0};
	for (;;) {
		bool none;
		unsigned line = p->end_line, col = p->end_col;
		struct sieve_node *a = parse_argument(p, &none);
		if (none)
			break;
		if (!a || !push(p, &args, a))
			return false;
		p->arg_line = line;
		p->arg_col = col;
	}
	n->end_line = p->end_line;
	n->end_col = p->end_col;
	if (p->cur.kind == TOK_IDENT) {
		struct sieve_node *t = parse_test(p);
		if (!t || !push(p, &tests, t))
			return false;
	} else if (p->cur.kind == TOK_LPAREN) {
		n->test_list = true;
		next(p);
		if (!parse_paren_list(p, TOK_IDENT, parse_test, &tests, "a test in the test list",
		                      "in the test list"))
			return false;
	}
	n->items = args.v;
	n->nitems = args.n;
	n->tests = tests.v;
	n->ntests = tests.n;
	return true;
}

static struct sieve_node *parse_test(struct parser *p)
{
	if (++p->depth > p->c->limits.max_nesting) {
		sieve_error(p->c, p->cur.line, p->cur.col,
		            "tests nested too deeply (limit max_nesting = %u)",
		            p->c->limits.max_nesting);
		p->depth--;
		return NULL;
	}
	struct sieve_node *t = new_node(p, NODE_TEST, p->cur.line, p->cur.col);
	if (!t)
		return NULL;
	t->name = p->cur.text;
	next(p);
	bool ok = parse_arguments(p, t);
	p->depth--;
	return ok ? t : NULL;
}

static bool expect_semi(struct parser *p, const char *after)
{
	if (p->cur.kind == TOK_SEMI) {
		next(p);
		return true;
	}
	sieve_error(p->c, p->cur.line, p->cur.col, "expected ';' after %s, found %s",
	            after, tok_desc(&p->cur));
	return false;
}

static struct sieve_node *parse_rhs(struct parser *p)
{
	if (p->cur.kind == TOK_IDENT) {
		struct sieve_node *call = new_node(p, NODE_TEST, p->cur.line, p->cur.col);
		if (!call)
			return NULL;
		call->name = p->cur.text;
		next(p);
		return parse_arguments(p, call) ? call : NULL;
	}
	bool none;
	struct sieve_node *v = parse_argument(p, &none);
	if (none)
		sieve_error(p->c, p->cur.line, p->cur.col,
		            "expected a value or a function after '=', found %s",
		            tok_desc(&p->cur));
	return v;
}

static struct sieve_node *parse_command(struct parser *p)
{
	unsigned line = p->cur.line, col = p->cur.col;
	if (p->cur.kind == TOK_VAR || p->cur.kind == TOK_LPAREN) {
		struct sieve_node *as = new_node(p, NODE_ASSIGN, line, col);
		struct vec targets = {0};
		if (!as)
			return NULL;
		if (p->cur.kind == TOK_VAR) {
			struct sieve_node *v = parse_var(p);
			if (!v || !push(p, &targets, v))
				return NULL;
		} else {
			as->destructure = true;
			next(p);
			if (!parse_paren_list(p, TOK_VAR, parse_var, &targets, "a variable in ( )",
			                      "after a variable"))
				return NULL;
		}
		as->items = targets.v;
		as->nitems = targets.n;
		if (p->cur.kind != TOK_ASSIGN) {
			sieve_error(p->c, p->cur.line, p->cur.col,
			            "expected '=' after the variable, found %s", tok_desc(&p->cur));
			return NULL;
		}
		next(p);
		as->rhs = parse_rhs(p);
		if (!as->rhs)
			return NULL;
		/* "$x = hash_get $h "k"\n$z = 1;": $z was read as an argument of
		 * the call; the ';' is missing before it (as for a command) */
		const struct sieve_node *rhs = as->rhs;
		const struct sieve_node *rl = rhs->kind == NODE_TEST && rhs->nitems
		                                  ? rhs->items[rhs->nitems - 1] : NULL;
		if (p->cur.kind == TOK_ASSIGN && rhs->ntests == 0 && rl && rl->kind == NODE_VAR) {
			sieve_error(p->c, p->arg_line, p->arg_col,
			            "expected ';' after the assignment (an assignment follows)");
			return NULL;
		}
		return expect_semi(p, "the assignment") ? as : NULL;
	}
	if (p->cur.kind != TOK_IDENT) {
		sieve_error(p->c, line, col, "expected a command, found %s", tok_desc(&p->cur));
		return NULL;
	}
	struct sieve_node *cmd = new_node(p, NODE_CMD, line, col);
	if (!cmd)
		return NULL;
	cmd->name = p->cur.text;
	next(p);
	if (!parse_arguments(p, cmd))
		return NULL;
	if (p->cur.kind == TOK_LBRACE) {
		if (++p->depth > p->c->limits.max_nesting) {
			sieve_error(p->c, p->cur.line, p->cur.col,
			            "blocks nested too deeply (limit max_nesting = %u)",
			            p->c->limits.max_nesting);
			p->depth--;
			return NULL;
		}
		next(p);
		struct vec block = {0};
		bool ok = parse_block(p, &block);
		p->depth--;
		cmd->has_block = true;
		cmd->block = block.v;
		cmd->nblock = block.n;
		if (!ok)
			return NULL;
		if (p->cur.kind != TOK_RBRACE) {
			sieve_error(p->c, line, col, "the block of '%s' is not closed with '}'",
			            cmd->name);
			return NULL;
		}
		next(p);
		return cmd;
	}
	char what[64];
	snprintf(what, sizeof(what), "'%s'", cmd->name);
	/* "stop\n$a = 1;": the variable was read as an argument of stop and
	 * the error would point at the '=' of the next line; the ';' is
	 * missing before the variable */
	struct sieve_node *last = cmd->nitems ? cmd->items[cmd->nitems - 1] : NULL;
	if (p->cur.kind == TOK_ASSIGN && cmd->ntests == 0 && last && last->kind == NODE_VAR) {
		sieve_error(p->c, p->arg_line, p->arg_col,
		            "expected ';' after %s (an assignment follows)", what);
		return NULL;
	}
	return expect_semi(p, what) ? cmd : NULL;
}

/* Commands until "}" or the end; false only when out of memory. */
static bool parse_block(struct parser *p, struct vec *out)
{
	while (p->cur.kind != TOK_EOF && p->cur.kind != TOK_RBRACE) {
		if (p->c->nerrors > 100)
			return true;
		struct sieve_node *cmd = parse_command(p);
		if (p->oom)
			return false;
		if (cmd)
			push(p, out, cmd);
		else
			recover(p);
	}
	return true;
}

struct sieve_node *sieve_parse(struct sieve_compiler *c, const char *src, size_t len)
{
	struct parser p = {.c = c};
	sieve_lex_init(&p.lx, c, src, len);
	next(&p);
	struct sieve_node *root = new_node(&p, NODE_CMD, 1, 1);
	if (!root)
		return NULL;
	root->name = "(script)";
	struct vec top = {0};
	for (;;) {
		if (!parse_block(&p, &top))
			return NULL;
		if (p.cur.kind == TOK_EOF || c->nerrors > 100)
			break;
		sieve_error(c, p.cur.line, p.cur.col, "unexpected '}' with no open block");
		next(&p);
	}
	root->has_block = true;
	root->block = top.v;
	root->nblock = top.n;
	return p.oom ? NULL : root;
}
