/*
 * compile: the compile driver and the code generator.
 *
 * sieve_compile runs lexer+parser, validator and code generator in turn,
 * all allocating in the new script's arena; any error frees it and returns
 * NULL with every diagnostic. The generator flattens statements into
 * instructions; `if`/`elsif`/`else` become conditional jumps. Tests stay as
 * (validated, immutable) trees evaluated by the interpreter: they cannot
 * suspend, because functions (the only thing that can) are only allowed on
 * the right of an assignment, which is a whole instruction. So the program
 * counter is the complete resume point of a suspended run.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sieve/sieve_int.h"

static const char *const phase_labels[MX_PHASE_COUNT] = {
	"connect", "ehlo", "mailfrom", "rcptto", "data",
};

void sieve_limits_default(struct sieve_limits *l)
{
	l->max_source = SIEVE_DEFAULT_MAX_SOURCE;
	l->max_program = SIEVE_DEFAULT_MAX_PROGRAM;
	l->max_nesting = SIEVE_DEFAULT_MAX_NESTING;
	l->max_string = SIEVE_DEFAULT_MAX_STRING;
	l->max_list = SIEVE_DEFAULT_MAX_LIST;
	l->max_variables = SIEVE_DEFAULT_MAX_VARIABLES;
	l->regex_match_limit = SIEVE_DEFAULT_REGEX_MATCH_LIMIT;
	l->regex_depth_limit = SIEVE_DEFAULT_REGEX_DEPTH_LIMIT;
	l->max_dns_lookups = SIEVE_DEFAULT_MAX_DNS_LOOKUPS;
	l->max_run_memory = SIEVE_DEFAULT_MAX_RUN_MEMORY;
	l->max_log_lines = SIEVE_DEFAULT_MAX_LOG_LINES;
	l->max_tarpit = SIEVE_DEFAULT_MAX_TARPIT;
	l->max_run_time = SIEVE_DEFAULT_MAX_RUN_TIME;
	l->on_error = SIEVE_ON_ERROR_FAIL;
}

bool sieve_phase_parse(const char *name, enum mx_phase *out)
{
	for (int i = 0; i < MX_PHASE_COUNT; i++)
		if (strcasecmp(name, phase_labels[i]) == 0) {
			*out = (enum mx_phase)i;
			return true;
		}
	return false;
}

const char *sieve_phase_label(enum mx_phase phase)
{
	return (unsigned)phase < MX_PHASE_COUNT ? phase_labels[phase] : "?";
}

void sieve_diags_clear(struct sieve_diags *d)
{
	for (size_t i = 0; i < d->count; i++)
		free(d->lines[i]);
	free(d->lines);
	d->lines = NULL;
	d->count = d->cap = 0;
}

static void diag_add(struct sieve_diags *d, char *line)
{
	if (!d || !line) {
		free(line);
		return;
	}
	if (d->count == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		char **nl = realloc(d->lines, cap * sizeof(*nl));
		if (!nl) {
			free(line);
			return;
		}
		d->lines = nl;
		d->cap = cap;
	}
	d->lines[d->count++] = line;
}

void sieve_error(struct sieve_compiler *c, unsigned line, unsigned col, const char *fmt, ...)
{
	c->nerrors++;
	if (c->nerrors > 100)
		return; /* enough to fix first */
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t n = strlen(c->path) + strlen(msg) + 48;
	char *out = malloc(n);
	if (out && line == 0) /* the file as a whole (cannot open it): no position */
		snprintf(out, n, "%s: %s", c->path, msg);
	else if (out)
		snprintf(out, n, "%s:%u:%u: %s", c->path, line, col, msg);
	diag_add(c->diags, out);
}

bool sieve_track_regex(struct sieve_compiler *c, pcre2_code *re)
{
	if (c->nregexes == c->capregexes) {
		size_t cap = c->capregexes ? c->capregexes * 2 : 8;
		pcre2_code **nr = realloc(c->regexes, cap * sizeof(*nr));
		if (!nr) {
			pcre2_code_free(re);
			return false;
		}
		c->regexes = nr;
		c->capregexes = cap;
	}
	c->regexes[c->nregexes++] = re;
	return true;
}

struct gen {
	struct sieve_compiler *c;
	struct sieve_script *s;
	size_t cap;
	bool failed;
};

static size_t emit(struct gen *g, uint8_t op, const struct sieve_node *node)
{
	if (g->failed)
		return 0;
	if (g->s->ncode + g->c->nodes >= g->c->limits.max_program) {
		if (!g->c->limit_reported)
			sieve_error(g->c, node ? node->line : 1, node ? node->col : 1,
			            "script too big (limit max_program = %zu)", g->c->limits.max_program);
		g->c->limit_reported = true;
		g->failed = true;
		return 0;
	}
	if (g->s->ncode == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 32;
		struct sieve_insn *nc = sieve_arena_alloc(&g->s->arena, cap * sizeof(*nc));
		if (!nc) {
			g->failed = true;
			return 0;
		}
		if (g->s->ncode)
			memcpy(nc, g->s->code, g->s->ncode * sizeof(*nc));
		g->s->code = nc;
		g->cap = cap;
	}
	struct sieve_insn *in = &g->s->code[g->s->ncode];
	in->op = op;
	in->node = node;
	return g->s->ncode++;
}

static void gen_block(struct gen *g, struct sieve_node *const *block, size_t n)
{
	size_t i = 0;
	while (i < n && !g->failed) {
		const struct sieve_node *node = block[i];
		if (node->kind == NODE_ASSIGN) {
			emit(g, OP_ASSIGN, node);
			i++;
			continue;
		}
		const struct sieve_def *d = node->def;
		if (d->id == CMD_IF) {
			size_t jf[64], jmp[64], nj = 0, nf = 0;
			size_t k = i;
			for (; k < n; k++) {
				const struct sieve_node *b = block[k];
				if (b->kind != NODE_CMD)
					break;
				enum sieve_cmd_id id = b->def->id;
				if (k > i && id != CMD_ELSIF && id != CMD_ELSE)
					break;
				if (id == CMD_ELSE) {
					gen_block(g, b->block, b->nblock);
					k++;
					break;
				}
				if (nf >= 64 || nj >= 64) {
					sieve_error(g->c, b->line, b->col, "too many elsif branches (limit 63)");
					g->failed = true;
					return;
				}
				size_t at = emit(g, OP_JUMP_FALSE, b->tests[0]);
				jf[nf++] = at;
				gen_block(g, b->block, b->nblock);
				jmp[nj++] = emit(g, OP_JUMP, b);
				if (!g->failed)
					g->s->code[at].target = (unsigned)g->s->ncode;
			}
			if (g->failed)
				return;
			for (size_t j = 0; j < nj; j++)
				g->s->code[jmp[j]].target = (unsigned)g->s->ncode;
			for (size_t j = 0; j < nf; j++)
				g->s->code[jf[j]].end = (unsigned)g->s->ncode;
			i = k;
			continue;
		}
		if (d->id == CMD_REQUIRE) {
			i++;
			continue;
		}
		emit(g, d->cmd == sieve_cmd_stop ? OP_STOP : OP_CMD, node);
		i++;
	}
}

bool sieve_codegen(struct sieve_compiler *c, struct sieve_script *s,
                   const struct sieve_node *root)
{
	struct gen g = {.c = c, .s = s};
	gen_block(&g, root->block, root->nblock);
	emit(&g, OP_STOP, root);
	return !g.failed;
}

struct sieve_script *sieve_compile(const char *path, const char *src, size_t len,
                                   enum mx_phase phase, const struct sieve_limits *limits,
                                   struct sieve_diags *diags)
{
	struct sieve_compiler c = {.path = path ? path : "(script)", .phase = phase,
	                           .diags = diags};
	if (limits)
		c.limits = *limits;
	else
		sieve_limits_default(&c.limits);
	if ((unsigned)phase >= MX_PHASE_COUNT) {
		sieve_error(&c, 1, 1, "unknown phase");
		return NULL;
	}
	if (len > c.limits.max_source) {
		sieve_error(&c, 1, 1, "script too big: %zu bytes (limit max_source = %zu)",
		            len, c.limits.max_source);
		return NULL;
	}
	struct sieve_script *s = calloc(1, sizeof(*s));
	if (!s) {
		sieve_error(&c, 1, 1, "out of memory");
		return NULL;
	}
	sieve_arena_init(&s->arena, 0);
	c.arena = &s->arena;
	s->phase = phase;
	s->limits = c.limits;
	const char *base = strrchr(c.path, '/');
	s->name = sieve_arena_strndup(&s->arena, base ? base + 1 : c.path,
	                              strlen(base ? base + 1 : c.path));
	struct sieve_node *root = sieve_parse(&c, src, len);
	bool ok = root && c.nerrors == 0;
	if (root)
		ok = sieve_validate(&c, root) && ok;
	if (ok)
		ok = sieve_codegen(&c, s, root);
	if (s->arena.failed) {
		sieve_error(&c, 1, 1, "out of memory");
		ok = false;
	}
	s->regexes = c.regexes;
	s->nregexes = c.nregexes;
	if (!ok || c.nerrors) {
		if (c.nerrors == 0)
			sieve_error(&c, 1, 1, "compile failed");
		sieve_script_free(s);
		return NULL;
	}
	s->nvars = c.nvars;
	s->match_mask = c.match_mask;
	s->var_names = c.vars;
	return s;
}

struct sieve_script *sieve_compile_file(const char *path, enum mx_phase phase,
                                        const struct sieve_limits *limits,
                                        struct sieve_diags *diags)
{
	struct sieve_compiler c = {.path = path, .diags = diags};
	FILE *f = fopen(path, "rb");
	if (!f) {
		sieve_error(&c, 0, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	size_t max = limits ? limits->max_source : SIEVE_DEFAULT_MAX_SOURCE;
	while (buf) {
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (n < cap)
			break;
		if (cap > max + 1) {
			break;
		}
		char *nb = realloc(buf, cap * 2);
		if (!nb) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		cap *= 2;
	}
	int rerr = ferror(f) ? (errno ? errno : EIO) : buf ? 0 : ENOMEM;
	fclose(f);
	if (rerr) {
		free(buf);
		sieve_error(&c, 0, 0, "cannot read: %s", strerror(rerr));
		return NULL;
	}
	struct sieve_script *s = sieve_compile(path, buf, n, phase, limits, diags);
	free(buf);
	return s;
}

void sieve_script_free(struct sieve_script *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nregexes; i++)
		pcre2_code_free(s->regexes[i]);
	free(s->regexes);
	sieve_arena_free(&s->arena);
	free(s);
}

enum mx_phase sieve_script_phase(const struct sieve_script *s)
{
	return s->phase;
}

const char *sieve_script_name(const struct sieve_script *s)
{
	return s->name;
}
