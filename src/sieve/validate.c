/*
 * validate: check the syntax tree against the registry and the phase, and
 * resolve it for the interpreter.
 *
 * For every command, test and function call: the name exists in the right
 * role, tags belong to a group the entry accepts (at most one per group),
 * positional arguments match the entry's shape, subtests and block are as
 * the entry says, and the phase allows it (`header` only in data, `envelope
 * "to"` from rcptto on, ...). Resolving: tags into struct sieve_opts,
 * variables into slots, strings into templates (`${name}`, `%{macro}`),
 * constant :regex keys into compiled PCRE2 code. Every error is reported;
 * validation continues with the next node.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "sieve/sieve_int.h"

static bool validate_node(struct sieve_compiler *c, struct sieve_node *n);

static const char *phase_names[] = {"connect", "ehlo", "mailfrom", "rcptto", "data"};

static const char *kind_desc(const struct sieve_node *n)
{
	switch (n->kind) {
	case NODE_STRING: return "a string";
	case NODE_NUMBER: return "a number";
	case NODE_LIST: return "a string list";
	case NODE_TAG: return "a tag";
	case NODE_VAR: return "a variable";
	default: return "a test";
	}
}

/* Slot of variable `name` (case-insensitive, RFC 5229), created on first use. */
static bool var_slot(struct sieve_compiler *c, const char *name, size_t len,
                     unsigned line, unsigned col, unsigned *slot)
{
	for (size_t i = 0; i < c->nvars; i++)
		if (strlen(c->vars[i]) == len && strncasecmp(c->vars[i], name, len) == 0) {
			*slot = (unsigned)i;
			return true;
		}
	if (c->nvars >= c->limits.max_variables) {
		sieve_error(c, line, col, "too many variables (limit max_variables = %u)",
		            c->limits.max_variables);
		return false;
	}
	if (c->nvars == c->capvars) {
		size_t cap = c->capvars ? c->capvars * 2 : 16;
		const char **nv = sieve_arena_alloc(c->arena, cap * sizeof(*nv));
		if (!nv)
			return false;
		if (c->nvars)
			memcpy(nv, c->vars, c->nvars * sizeof(*nv));
		c->vars = nv;
		c->capvars = cap;
	}
	c->vars[c->nvars] = sieve_arena_strndup(c->arena, name, len);
	*slot = (unsigned)c->nvars++;
	return true;
}

static bool add_part(struct sieve_compiler *c, struct sieve_tmpl *t, size_t *cap,
                     struct sieve_part part)
{
	if (part.kind == PART_LIT && part.len == 0)
		return true;
	if (t->nparts == *cap) {
		size_t ncap = *cap ? *cap * 2 : 4;
		struct sieve_part *np = sieve_arena_alloc(c->arena, ncap * sizeof(*np));
		if (!np)
			return false;
		if (t->nparts)
			memcpy(np, t->parts, t->nparts * sizeof(*np));
		t->parts = np;
		*cap = ncap;
	}
	t->parts[t->nparts++] = part;
	return true;
}

/* Split a string into literal text, ${variables} and %{macros}. */
static bool build_tmpl(struct sieve_compiler *c, struct sieve_node *n)
{
	struct sieve_tmpl *t = sieve_arena_alloc(c->arena, sizeof(*t));
	if (!t)
		return false;
	n->tmpl = t;
	t->text = n->text;
	t->len = n->len;
	size_t cap = 0, lit = 0, i = 0;
	const char *s = n->text;
	bool ok = true;
	while (i < n->len) {
		if ((s[i] == '$' || s[i] == '%') && i + 1 < n->len && s[i + 1] == '{') {
			const char *close = memchr(s + i + 2, '}', n->len - i - 2);
			if (!close) {
				i++;
				continue;
			}
			size_t nlen = (size_t)(close - (s + i + 2));
			const char *name = s + i + 2;
			struct sieve_part part = {0};
			bool digits = s[i] == '$' && nlen > 0;
			for (size_t k = 0; digits && k < nlen; k++)
				digits = name[k] >= '0' && name[k] <= '9';
			if (digits) { /* ${1}: a match variable; ${01} is ${1}, ${10} and up empty */
				unsigned num = 0;
				for (size_t k = 0; k < nlen && num < SIEVE_MATCH_VARS; k++)
					num = num * 10 + (unsigned)(name[k] - '0');
				part.kind = PART_MATCH;
				part.slot = num < SIEVE_MATCH_VARS ? num : SIEVE_MATCH_VARS;
				if (num < SIEVE_MATCH_VARS)
					c->match_mask |= (uint16_t)(1u << num);
			} else if (s[i] == '$') {
				bool ident = nlen > 0 && (isalpha((unsigned char)name[0]) || name[0] == '_');
				for (size_t k = 0; ident && k < nlen; k++)
					if (!isalnum((unsigned char)name[k]) && name[k] != '_')
						ident = false;
				if (!ident) { /* RFC 5229: not a reference, literal text */
					i++;
					continue;
				}
				part.kind = PART_VAR;
				if (!var_slot(c, name, nlen, n->line, n->col, &part.slot))
					return false;
			} else {
				part.kind = PART_MACRO;
				if (nlen == 1 && name[0] == 'i')
					part.macro = MACRO_I;
				else if (nlen == 2 && memcmp(name, "ir", 2) == 0)
					part.macro = MACRO_IR;
				else if (nlen == 1 && name[0] == 'h')
					part.macro = MACRO_H;
				else if (nlen == 1 && name[0] == 's')
					part.macro = MACRO_S;
				else if (nlen > 10 && memcmp(name, "vctx_conn:", 10) == 0)
					part.macro = MACRO_VCTX_CONN;
				else if (nlen > 10 && memcmp(name, "vctx_mess:", 10) == 0)
					part.macro = MACRO_VCTX_MESS;
				else {
					sieve_error(c, n->line, n->col,
					            "unknown macro %%{%.*s} (known: %%{i} %%{ir} %%{h} %%{s} "
					            "%%{vctx_conn:KEY} %%{vctx_mess:KEY})",
					            (int)(nlen > 40 ? 40 : nlen), name);
					ok = false;
					i = (size_t)(close - s) + 1;
					continue;
				}
				if (part.macro == MACRO_VCTX_CONN || part.macro == MACRO_VCTX_MESS) {
					part.s = sieve_arena_strndup(c->arena, name + 10, nlen - 10);
					part.len = nlen - 10;
				}
			}
			struct sieve_part litp = {.kind = PART_LIT, .s = s + lit, .len = i - lit};
			if (!add_part(c, t, &cap, litp) || !add_part(c, t, &cap, part))
				return false;
			i = (size_t)(close - s) + 1;
			lit = i;
			continue;
		}
		i++;
	}
	if (t->nparts == 0) {
		t->constant = true;
		return ok;
	}
	struct sieve_part litp = {.kind = PART_LIT, .s = s + lit, .len = n->len - lit};
	if (!add_part(c, t, &cap, litp))
		return false;
	return ok;
}

static bool is_const_string(const struct sieve_node *n)
{
	return n->kind == NODE_STRING && n->tmpl && n->tmpl->constant;
}

/* The constant strings of a string or list node; false if any is not. */
static bool const_items(const struct sieve_node *n, const struct sieve_node *const **items,
                        size_t *count, const struct sieve_node **one)
{
	if (n->kind == NODE_STRING) {
		*one = n;
		*items = one;
		*count = 1;
		return is_const_string(n);
	}
	if (n->kind == NODE_LIST) {
		*items = (const struct sieve_node *const *)n->items;
		*count = n->nitems;
		for (size_t i = 0; i < n->nitems; i++)
			if (!is_const_string(n->items[i]))
				return false;
		return true;
	}
	return false;
}

static bool shape_ok(struct sieve_compiler *c, const struct sieve_node *owner,
                     struct sieve_node *a, char shape, size_t index)
{
	bool ok;
	const char *want;
	switch (shape) {
	case 's': ok = a->kind == NODE_STRING || a->kind == NODE_VAR || a->kind == NODE_NUMBER;
		want = "a string"; break;
	case 'l': ok = a->kind == NODE_STRING || a->kind == NODE_VAR || a->kind == NODE_LIST;
		want = "a string or a string list"; break;
	case 'k': ok = a->kind == NODE_STRING || a->kind == NODE_VAR || a->kind == NODE_NUMBER;
		want = "a number"; break;
	case 'v': ok = a->kind == NODE_VAR; want = "a variable"; break;
	default: ok = a->kind != NODE_TAG; want = "a value"; break;
	}
	if (!ok)
		sieve_error(c, a->line, a->col, "argument %zu of '%s' must be %s, not %s",
		            index + 1, owner->name, want, kind_desc(a));
	return ok;
}

static bool parse_rel(const char *s, uint8_t *rel)
{
	static const char *const names[] = {"gt", "ge", "lt", "le", "eq", "ne", "bitwise-and"};
	for (unsigned i = 0; i < 7; i++)
		if (strcasecmp(s, names[i]) == 0) {
			*rel = (uint8_t)(REL_GT + i);
			return true;
		}
	return false;
}

/* Tags into n->opts; positional arguments into n->pos. */
static bool resolve_args(struct sieve_compiler *c, struct sieve_node *n)
{
	const struct sieve_def *d = n->def;
	bool ok = true;
	n->pos = sieve_arena_alloc(c->arena, (n->nitems + 1) * sizeof(*n->pos));
	if (!n->pos)
		return false;
	for (size_t i = 0; i < n->nitems; i++) {
		struct sieve_node *a = n->items[i];
		if (!validate_node(c, a)) {
			ok = false;
			continue;
		}
		if (a->kind != NODE_TAG) {
			n->pos[n->npos++] = a;
			continue;
		}
		const char *t = a->name;
		unsigned group = 0;
		uint8_t *slot = NULL, val = 0;
		static const char *const matches[] = {"is", "contains", "matches", "regex", "count", "value"};
		static const char *const addrs[] = {"all", "localpart", "domain"};
		static const char *const mods[] = {"lower", "upper", "lowerfirst", "upperfirst",
		                                   "quotewildcard", "length"};
		for (unsigned k = 0; k < 6 && !group; k++)
			if (strcasecmp(t, matches[k]) == 0) {
				group = TG_MATCH; slot = &n->opts.match; val = (uint8_t)(MATCH_IS + k);
			}
		for (unsigned k = 0; k < 3 && !group; k++)
			if (strcasecmp(t, addrs[k]) == 0) {
				group = TG_ADDR; slot = &n->opts.addrpart; val = (uint8_t)(ADDR_ALL + k);
			}
		for (unsigned k = 0; k < 6 && !group; k++)
			if (strcasecmp(t, mods[k]) == 0) {
				group = TG_SETMOD; slot = NULL; val = (uint8_t)(1u << k);
			}
		if (!group && strcasecmp(t, "comparator") == 0) {
			group = TG_COMP; slot = &n->opts.comp;
		}
		if (!group && (strcasecmp(t, "over") == 0 || strcasecmp(t, "under") == 0)) {
			group = TG_SIZE; slot = &n->opts.size;
			val = (uint8_t)(strcasecmp(t, "over") == 0 ? 1 : 2);
		}
		if (!group || !(d->tags & group)) {
			sieve_error(c, a->line, a->col, "'%s' does not take the tag :%s", n->name, t);
			ok = false;
			continue;
		}
		if (group == TG_SETMOD) {
			n->opts.setmods |= val;
			continue;
		}
		if (*slot) {
			sieve_error(c, a->line, a->col, "tag :%s conflicts with an earlier tag of '%s'",
			            t, n->name);
			ok = false;
		}
		if (group == TG_COMP || val == MATCH_COUNT || val == MATCH_VALUE) {
			struct sieve_node *arg = i + 1 < n->nitems ? n->items[i + 1] : NULL;
			if (!arg || arg->kind != NODE_STRING) {
				sieve_error(c, a->line, a->col, ":%s must be followed by a string", t);
				ok = false;
				continue;
			}
			i++;
			if (!validate_node(c, arg) || !is_const_string(arg)) {
				sieve_error(c, arg->line, arg->col, "the argument of :%s must be a constant", t);
				ok = false;
				continue;
			}
			if (group == TG_COMP) {
				if (strcasecmp(arg->text, "i;octet") == 0)
					val = COMP_OCTET;
				else if (strcasecmp(arg->text, "i;ascii-casemap") == 0)
					val = COMP_CASEMAP;
				else if (strcasecmp(arg->text, "i;ascii-numeric") == 0)
					val = COMP_NUMERIC;
				else {
					sieve_error(c, arg->line, arg->col,
					            "unknown comparator \"%s\" (known: i;octet, i;ascii-casemap, i;ascii-numeric)",
					            arg->text);
					ok = false;
					continue;
				}
			} else if (!parse_rel(arg->text, &n->opts.rel)) {
				sieve_error(c, arg->line, arg->col,
				            "unknown relation \"%s\" (known: gt ge lt le eq ne bitwise-and)",
				            arg->text);
				ok = false;
			}
		}
		*slot = val;
	}
	if (!ok)
		return false;
	size_t maxpos = strlen(d->shape);
	if (n->npos < d->min || n->npos > maxpos) {
		if (d->min == maxpos)
			sieve_error(c, n->line, n->col, "'%s' takes %u argument%s, not %zu", n->name,
			            d->min, d->min == 1 ? "" : "s", n->npos);
		else
			sieve_error(c, n->line, n->col, "'%s' takes %u to %zu arguments, not %zu",
			            n->name, d->min, maxpos, n->npos);
		return false;
	}
	for (size_t i = 0; i < n->npos; i++)
		if (!shape_ok(c, n, n->pos[i], d->shape[i], i))
			ok = false;
	if (!ok)
		return false;
	if (d->tags & TG_MATCH) {
		if (!n->opts.match)
			n->opts.match = MATCH_IS;
		if (!n->opts.comp)
			n->opts.comp = d->default_comp ? d->default_comp : COMP_OCTET;
		if (n->opts.comp == COMP_NUMERIC &&
		    (n->opts.match == MATCH_CONTAINS || n->opts.match == MATCH_MATCHES ||
		     n->opts.match == MATCH_REGEX)) {
			sieve_error(c, n->line, n->col,
			            "comparator i;ascii-numeric cannot be used with :contains, :matches or :regex");
			return false;
		}
	}
	if (d->tags & TG_ADDR && !n->opts.addrpart)
		n->opts.addrpart = ADDR_ALL;
	if (d->tags & TG_SIZE && !n->opts.size) {
		sieve_error(c, n->line, n->col, "'size' needs :over or :under");
		return false;
	}
	/* Constant :regex keys are compiled once, here. */
	if (n->opts.match == MATCH_REGEX && n->npos) {
		const struct sieve_node *key = n->pos[n->npos - 1], *one;
		const struct sieve_node *const *items;
		size_t count;
		if (const_items(key, &items, &count, &one)) {
			n->res = sieve_arena_alloc(c->arena, (count + 1) * sizeof(*n->res));
			if (!n->res)
				return false;
			for (size_t i = 0; i < count; i++) {
				char err[160];
				n->res[i] = sieve_regex_compile(items[i]->text, items[i]->len,
				                                n->opts.comp == COMP_CASEMAP, err, sizeof(err));
				if (!n->res[i]) {
					sieve_error(c, items[i]->line, items[i]->col, "bad regex: %s", err);
					ok = false;
				} else if (!sieve_track_regex(c, n->res[i])) {
					return false;
				}
			}
			n->nres = count;
			if (!ok) /* do not leave a half-filled array for the freer */
				return false;
		}
	}
	return ok;
}

static bool check_phase(struct sieve_compiler *c, const struct sieve_node *n)
{
	if (n->def->phases & PHASE_BIT(c->phase))
		return true;
	unsigned first = 0;
	while (first < 5 && !(n->def->phases & PHASE_BIT(first)))
		first++;
	sieve_error(c, n->line, n->col, "'%s' cannot be used in the %s phase (only from %s on)",
	            n->name, phase_names[c->phase], phase_names[first < 5 ? first : 0]);
	return false;
}

static bool validate_call(struct sieve_compiler *c, struct sieve_node *n, unsigned role)
{
	const char *role_name = role == DEF_CMD ? "command" : role == DEF_TEST ? "test" : "function";
	n->def = sieve_registry_find(n->name);
	if (!n->def || !(n->def->kinds & role)) {
		const struct sieve_def *other = n->def;
		if (other && (other->kinds & DEF_FUNC) && role == DEF_CMD)
			sieve_error(c, n->line, n->col,
			            "'%s' is a function: assign its value, as in $x = %s ...;",
			            n->name, n->name);
		else if (other)
			sieve_error(c, n->line, n->col, "'%s' is not a %s here", n->name, role_name);
		else
			sieve_error(c, n->line, n->col, "unknown %s '%s'", role_name, n->name);
		n->def = NULL;
		/* still look inside, to report errors there too */
		for (size_t i = 0; i < n->ntests; i++)
			validate_node(c, n->tests[i]);
		for (size_t i = 0; i < n->nblock; i++)
			validate_node(c, n->block[i]);
		return false;
	}
	bool ok = check_phase(c, n);
	if (!resolve_args(c, n))
		ok = false;
	const struct sieve_def *d = n->def;
	if (d->subtests == 0 && n->ntests && role == DEF_CMD && !n->test_list) {
		/* "stop\nec_log ...": the parser read the next command as a test,
		 * and its block (if any) as ours. Report the missing ';' where it
		 * belongs, then check what follows as the command it is. */
		struct sieve_node *following = n->tests[0];
		sieve_error(c, n->end_line, n->end_col, "expected ';' after '%s', found '%s'",
		            n->name, following->name);
		following->kind = NODE_CMD;
		following->has_block = n->has_block;
		following->block = n->block;
		following->nblock = n->nblock;
		n->has_block = false;
		n->nblock = 0;
		validate_node(c, following);
		return false;
	} else if (d->subtests == 0 && n->ntests) {
		sieve_error(c, n->tests[0]->line, n->tests[0]->col, "'%s' takes no test", n->name);
		ok = false;
	} else if (d->subtests == 1 && (n->ntests != 1 || n->test_list)) {
		sieve_error(c, n->line, n->col, "'%s' needs exactly one test", n->name);
		ok = false;
	} else if (d->subtests == 2 && (!n->test_list || n->ntests == 0)) {
		sieve_error(c, n->line, n->col, "'%s' needs a list of tests in ( )", n->name);
		ok = false;
	}
	if (role == DEF_CMD) {
		if (d->block && !n->has_block) {
			sieve_error(c, n->line, n->col, "'%s' needs a block { ... }", n->name);
			ok = false;
		} else if (!d->block && n->has_block) {
			sieve_error(c, n->line, n->col, "'%s' takes no block", n->name);
			ok = false;
		}
	}
	for (size_t i = 0; i < n->ntests; i++)
		if (!validate_node(c, n->tests[i]))
			ok = false;
	if (!ok)
		return false;

	/* Checks particular to one entry. */
	if (d->id == CMD_REQUIRE) {
		const struct sieve_node *const *items, *one;
		size_t count;
		if (!const_items(n->pos[0], &items, &count, &one)) {
			sieve_error(c, n->line, n->col, "require needs constant strings");
			return false;
		}
		for (size_t i = 0; i < count; i++)
			if (!sieve_registry_extension(items[i]->text)) {
				sieve_error(c, items[i]->line, items[i]->col,
				            "unknown extension \"%s\" in require", items[i]->text);
				ok = false;
			}
	}
	if (d->test == sieve_test_envelope) {
		const struct sieve_node *const *items, *one;
		size_t count;
		if (const_items(n->pos[0], &items, &count, &one)) {
			for (size_t i = 0; i < count; i++) {
				const char *part = items[i]->text;
				if (strcasecmp(part, "to") == 0 && c->phase < MX_PHASE_RCPTTO) {
					sieve_error(c, items[i]->line, items[i]->col,
					            "envelope \"to\" cannot be used in the %s phase (only from rcptto on)",
					            phase_names[c->phase]);
					ok = false;
				} else if (strcasecmp(part, "to") != 0 && strcasecmp(part, "from") != 0) {
					sieve_error(c, items[i]->line, items[i]->col,
					            "unknown envelope part \"%s\" (known: from, to)", part);
					ok = false;
				}
			}
		}
	}
	if (d->cmd == sieve_cmd_set) {
		const struct sieve_node *name = n->pos[0];
		if (!is_const_string(name) || name->len == 0) {
			sieve_error(c, name->line, name->col, "set needs a constant variable name");
			return false;
		}
		for (size_t i = 0; i < name->len; i++)
			if (!isalnum((unsigned char)name->text[i]) && name->text[i] != '_') {
				sieve_error(c, name->line, name->col, "bad variable name \"%s\"", name->text);
				return false;
			}
		/* RFC 5229: a name starts with a letter or '_'; "1" would be a
		 * match variable, which only a match sets */
		if (isdigit((unsigned char)name->text[0])) {
			bool digits = strspn(name->text, "0123456789") == name->len;
			sieve_error(c, name->line, name->col, "bad variable name \"%s\" (%s)", name->text,
			            digits ? "a match variable: only :matches and :regex set it"
			                   : "a name starts with a letter or '_'");
			return false;
		}
		if (!var_slot(c, name->text, name->len, name->line, name->col, &n->slot))
			return false;
	}
	return ok;
}

/* The commands of the script (top) or of a block. RFC 5228 3.2: require
 * comes before any other command, so only at the top and first. */
static bool validate_block(struct sieve_compiler *c, struct sieve_node **block, size_t n,
                           bool top)
{
	bool ok = true, only_requires = top;
	enum sieve_cmd_id prev = CMD_OTHER;
	for (size_t i = 0; i < n; i++) {
		struct sieve_node *cmd = block[i];
		if (cmd->kind == NODE_CMD) {
			const struct sieve_def *d = sieve_registry_find(cmd->name);
			if (d && (d->id == CMD_ELSIF || d->id == CMD_ELSE) &&
			    prev != CMD_IF && prev != CMD_ELSIF) {
				sieve_error(c, cmd->line, cmd->col, "'%s' without a preceding 'if'",
				            cmd->name);
				ok = false;
			}
			if (d && d->id == CMD_REQUIRE && !only_requires) {
				sieve_error(c, cmd->line, cmd->col, top ?
				            "'require' must come before any other command (RFC 5228 3.2)" :
				            "'require' cannot be used inside a block (RFC 5228 3.2)");
				ok = false;
			}
			prev = d ? d->id : CMD_OTHER;
		} else {
			prev = CMD_OTHER;
		}
		if (prev != CMD_REQUIRE)
			only_requires = false;
		if (!validate_node(c, cmd))
			ok = false;
		/* A command missing its ';' took the next ones as tests
		 * (validate_call made them commands again): the chain ends with
		 * the last of them, which an elsif or else may follow. */
		const struct sieve_node *last = cmd;
		while (last->kind == NODE_CMD && last->ntests == 1 && last->tests[0]->kind == NODE_CMD)
			last = last->tests[0];
		if (last != cmd)
			prev = last->def ? last->def->id : CMD_OTHER;
	}
	return ok;
}

static bool validate_node(struct sieve_compiler *c, struct sieve_node *n)
{
	switch (n->kind) {
	case NODE_STRING:
		if (n->len > c->limits.max_string) {
			sieve_error(c, n->line, n->col, "string too long (limit max_string = %zu)",
			            c->limits.max_string);
			return false;
		}
		return n->tmpl ? true : build_tmpl(c, n);
	case NODE_NUMBER:
	case NODE_TAG:
		return true;
	case NODE_LIST: {
		bool ok = true;
		if (n->nitems > c->limits.max_list) {
			sieve_error(c, n->line, n->col, "list too long (limit max_list = %zu)",
			            c->limits.max_list);
			return false;
		}
		for (size_t i = 0; i < n->nitems; i++)
			if (!validate_node(c, n->items[i]))
				ok = false;
		return ok;
	}
	case NODE_VAR:
		if (!var_slot(c, n->name, strlen(n->name), n->line, n->col, &n->slot))
			return false;
		return n->index ? validate_node(c, n->index) : true;
	case NODE_TEST:
		return validate_call(c, n, DEF_TEST);
	case NODE_CMD:
		if (n->def == NULL && strcmp(n->name, "(script)") == 0)
			return validate_block(c, n->block, n->nblock, true);
		{
			bool ok = validate_call(c, n, DEF_CMD);
			if (n->def && n->has_block)
				ok = validate_block(c, n->block, n->nblock, false) && ok;
			return ok;
		}
	case NODE_ASSIGN: {
		bool ok = true;
		for (size_t i = 0; i < n->nitems; i++) {
			struct sieve_node *t = n->items[i];
			if (!validate_node(c, t)) {
				ok = false;
			} else if (t->index) {
				/* the interpreter stores whole variables only ($h["k"] =
				 * and ($h["k"], $b) = alike) */
				sieve_error(c, t->line, t->col,
				            "cannot assign to an element of $%s (use hash_set)", t->name);
				ok = false;
			}
		}
		if (n->rhs->kind == NODE_TEST) {
			if (!validate_call(c, n->rhs, DEF_FUNC))
				ok = false;
		} else if (!validate_node(c, n->rhs)) {
			ok = false;
		} else if (n->rhs->kind == NODE_TAG) {
			sieve_error(c, n->rhs->line, n->rhs->col, "a tag cannot be assigned");
			ok = false;
		}
		return ok;
	}
	}
	return false;
}

bool sieve_validate(struct sieve_compiler *c, struct sieve_node *root)
{
	unsigned before = c->nerrors;
	validate_node(c, root);
	if (c->nodes > c->limits.max_program) {
		sieve_error(c, 1, 1, "script too big: %zu nodes (limit max_program = %zu)",
		            c->nodes, c->limits.max_program);
	}
	return c->nerrors == before;
}
