/*
 * sieve_int: what the stages of the engine share, not for other modules.
 *
 *   lexer.c     text -> tokens (RFC 5228 section 2 plus `$var`, `=`, `( )`)
 *   parser.c    tokens -> syntax tree (struct sieve_node), recovering after
 *               errors so that one compile reports every error
 *   registry.c  THE table: every command, test and function with its
 *               argument shapes, tags, phases and implementation
 *   validate.c  checks each node against the table and the phase, resolves
 *               tags, variables (to slots), string templates and regexes
 *   compile.c   flattens the statements into instructions with jumps: the
 *               program counter is all a suspended run needs to resume
 *   interp.c    the VM: runs instructions, evaluates tests and arguments
 *   exec_*.c    the implementations the table points at
 *   match.c     match types, comparators, relations (RFC 5228, 4790, 5231)
 *
 * Invariant: after sieve_compile returns, nothing reachable from a
 * struct sieve_script is ever written again (runs share it across sessions).
 * All compile-time memory lives in the script's arena; all run-time memory in
 * the run's arena, bounded by limits.max_run_memory.
 */
#ifndef MX_SIEVE_SIEVE_INT_H
#define MX_SIEVE_SIEVE_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "sieve/sieve.h"

/* ---------------------------------------------------------------- arena */

struct sieve_chunk;
struct sieve_arena {
	struct sieve_chunk *head;
	size_t total;  /* bytes obtained from malloc so far */
	size_t limit;  /* 0 = unlimited */
	bool failed;   /* an allocation failed (out of memory or limit) */
};

void sieve_arena_init(struct sieve_arena *a, size_t limit);
/* Zeroed memory, 16-byte aligned; NULL (and a->failed) past the limit. */
void *sieve_arena_alloc(struct sieve_arena *a, size_t n);
/* A NUL-terminated copy of n bytes. */
char *sieve_arena_strndup(struct sieve_arena *a, const char *s, size_t n);
void sieve_arena_free(struct sieve_arena *a);

/* ---------------------------------------------------------------- lexer */

enum sieve_tok {
	TOK_EOF = 1,
	TOK_IDENT,    /* if, header, ec_test */
	TOK_TAG,      /* :is (text without the colon) */
	TOK_NUMBER,
	TOK_STRING,   /* quoted or text: (unescaped / unstuffed) */
	TOK_VAR,      /* $name (text without the $) */
	TOK_LBRACKET, TOK_RBRACKET, TOK_LPAREN, TOK_RPAREN,
	TOK_LBRACE, TOK_RBRACE, TOK_COMMA, TOK_SEMI, TOK_ASSIGN,
	TOK_ERROR,    /* the lexer already reported it */
};

struct sieve_token {
	enum sieve_tok kind;
	unsigned line, col;
	bool spaced;        /* whitespace or a comment came before it */
	const char *text;   /* arena copy for IDENT TAG STRING VAR */
	size_t len;
	uint64_t num;
};

struct sieve_compiler; /* the state of one compile, below */

struct sieve_lexer {
	struct sieve_compiler *c;
	const char *src, *end, *p;
	unsigned line, col;
};

void sieve_lex_init(struct sieve_lexer *lx, struct sieve_compiler *c,
                    const char *src, size_t len);
void sieve_lex_next(struct sieve_lexer *lx, struct sieve_token *t);

/* ---------------------------------------------------------------- tree */

enum sieve_node_kind {
	NODE_STRING = 1, /* text, later tmpl */
	NODE_NUMBER,
	NODE_LIST,       /* items */
	NODE_TAG,        /* name */
	NODE_VAR,        /* name, optional index (a string or number node) */
	NODE_TEST,       /* name args tests */
	NODE_CMD,        /* name args tests block */
	NODE_ASSIGN,     /* targets (VAR nodes) = rhs (value or NODE_TEST as call) */
};

/* A string after validation: literal parts, variables and macros. */
enum sieve_part_kind {
	PART_LIT = 1,
	PART_VAR,     /* ${name} */
	PART_MACRO,   /* %{i} ... */
	PART_MATCH,   /* ${0} .. ${9}: match variables (RFC 5229 3.2); slot 10 = ${10} and up */
};
enum sieve_macro {
	MACRO_I = 1, MACRO_IR, MACRO_H, MACRO_S, MACRO_VCTX_CONN, MACRO_VCTX_MESS,
};
struct sieve_part {
	uint8_t kind;
	uint8_t macro;
	unsigned slot;
	const char *s; /* literal text or vctx key */
	size_t len;
};
struct sieve_tmpl {
	struct sieve_part *parts;
	size_t nparts;
	bool constant;       /* no variables or macros: text below is the value */
	const char *text;
	size_t len;
};

/* Options from tags, resolved by the validator. */
enum sieve_match { MATCH_IS = 1, MATCH_CONTAINS, MATCH_MATCHES, MATCH_REGEX,
                   MATCH_COUNT, MATCH_VALUE };
enum sieve_rel { REL_GT = 1, REL_GE, REL_LT, REL_LE, REL_EQ, REL_NE, REL_BITAND };
enum sieve_comp { COMP_OCTET = 1, COMP_CASEMAP, COMP_NUMERIC };
enum sieve_addrpart { ADDR_ALL = 1, ADDR_LOCAL, ADDR_DOMAIN };
enum sieve_setmod { SETMOD_LOWER = 1, SETMOD_UPPER = 2, SETMOD_LOWERFIRST = 4,
                    SETMOD_UPPERFIRST = 8, SETMOD_QUOTEWILD = 16, SETMOD_LENGTH = 32 };

struct sieve_opts {
	uint8_t match, rel, comp, addrpart;
	uint8_t size;     /* 1 = :over, 2 = :under */
	uint8_t setmods;
};

struct sieve_def;

struct sieve_node {
	enum sieve_node_kind kind;
	unsigned line, col;
	unsigned end_line, end_col; /* NODE_CMD/TEST: just after the name and
	                             * arguments, where a ';' belongs */
	const char *name;           /* identifier, tag, variable */
	const char *text;           /* NODE_STRING raw text */
	size_t len;
	uint64_t num;               /* NODE_NUMBER */
	struct sieve_node **items;  /* list items / call arguments / targets */
	size_t nitems;
	struct sieve_node *index;   /* NODE_VAR: [index] */
	struct sieve_node **tests;  /* subtests */
	size_t ntests;
	bool test_list;             /* tests were written in ( , ) */
	struct sieve_node **block;
	size_t nblock;
	bool has_block;
	struct sieve_node *rhs;     /* NODE_ASSIGN */
	bool destructure;           /* ($a, $b) = ... */

	/* filled by the validator */
	const struct sieve_def *def;
	struct sieve_opts opts;
	struct sieve_node **pos;    /* positional arguments (no tags) */
	size_t npos;
	struct sieve_tmpl *tmpl;    /* NODE_STRING */
	unsigned slot;              /* NODE_VAR */
	pcre2_code *re;             /* constant :regex key, single pattern */
	pcre2_code **res;           /* constant :regex keys, one per list item */
	size_t nres;
};

/* ---------------------------------------------------------------- registry */

enum sieve_def_kind { DEF_CMD = 1, DEF_TEST = 2, DEF_FUNC = 4 };

/* Tag groups an entry accepts. */
enum sieve_tag_group {
	TG_MATCH = 1, TG_COMP = 2, TG_ADDR = 4, TG_SIZE = 8, TG_SETMOD = 16,
	TG_RELMATCH = 32, /* only :count/:value are new; part of TG_MATCH */
};

#define PHASE_BIT(p) (1u << (p))
#define PHASES_ALL   0x1fu
#define PHASES_MAIL  (PHASE_BIT(MX_PHASE_MAILFROM) | PHASE_BIT(MX_PHASE_RCPTTO) | PHASE_BIT(MX_PHASE_DATA))
#define PHASES_RCPT  (PHASE_BIT(MX_PHASE_RCPTTO) | PHASE_BIT(MX_PHASE_DATA))
#define PHASES_DATA  PHASE_BIT(MX_PHASE_DATA)

struct sieve_run;
struct sieve_value;

/* Implementations: 0 ok, -1 runtime error (already recorded), 1 suspend. */
typedef int (*sieve_cmd_fn)(struct sieve_run *r, const struct sieve_node *n);
typedef int (*sieve_test_fn)(struct sieve_run *r, const struct sieve_node *n, bool *out);
typedef int (*sieve_func_fn)(struct sieve_run *r, const struct sieve_node *n,
                             struct sieve_value *out);

enum sieve_cmd_id {
	CMD_REQUIRE = 1, CMD_IF, CMD_ELSIF, CMD_ELSE, CMD_OTHER,
};

/*
 * One command, test or function. `shape` has one letter per positional
 * argument; letters after `min` positions are optional:
 *   s string   l string list   k number or string   v variable   a any value
 */
struct sieve_def {
	const char *name;
	unsigned kinds;         /* DEF_* (hash_set is both a command and a function) */
	const char *shape;
	unsigned min;
	unsigned tags;          /* TG_* */
	unsigned phases;        /* PHASE_BIT mask */
	uint8_t subtests;       /* 0 none, 1 exactly one, 2 a test list */
	bool block;             /* if / elsif / else take a block */
	bool terminal;          /* ends the phase (documentation and validation) */
	uint8_t default_comp;   /* COMP_* when no :comparator */
	enum sieve_cmd_id id;
	sieve_cmd_fn cmd;
	sieve_test_fn test;
	sieve_func_fn func;
};

/* Look a name up (case-sensitive, as RFC 5228 identifiers are compared
 * case-insensitively: we fold). NULL when unknown. */
const struct sieve_def *sieve_registry_find(const char *name);
/* Extensions `require` accepts. */
bool sieve_registry_extension(const char *name);
/* The whole table, for documentation tests. */
const struct sieve_def *sieve_registry_table(size_t *n);

/* ---------------------------------------------------------------- compiler */

struct sieve_compiler {
	const char *path;
	enum mx_phase phase;
	struct sieve_limits limits;
	struct sieve_arena *arena;  /* the script's */
	struct sieve_diags *diags;
	unsigned nerrors;
	/* variable names, index = slot */
	const char **vars;
	size_t nvars, capvars;
	size_t nodes;               /* counted against max_program */
	pcre2_code **regexes;       /* every compiled regex, for freeing */
	size_t nregexes, capregexes;
	bool limit_reported;
	uint16_t match_mask;        /* bit N: ${N} is read somewhere (0 = none:
	                             * tests record nothing) */
};

/* Record "PATH:LINE:COL: message". */
void sieve_error(struct sieve_compiler *c, unsigned line, unsigned col,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Remember a compiled regex so that the script (or a failed compile) frees it. */
bool sieve_track_regex(struct sieve_compiler *c, pcre2_code *re);

/* Parse a whole script; NULL only when out of memory. The root is a NODE_CMD
 * with a block holding the top-level commands. */
struct sieve_node *sieve_parse(struct sieve_compiler *c, const char *src, size_t len);

/* Validate and resolve in place; returns false when errors were recorded. */
bool sieve_validate(struct sieve_compiler *c, struct sieve_node *root);

enum sieve_op {
	OP_CMD = 1,    /* run node->def->cmd */
	OP_ASSIGN,     /* node is NODE_ASSIGN */
	OP_JUMP_FALSE, /* evaluate test `node`; jump to target when false; on a
	                  skipped error jump to `end` */
	OP_JUMP,
	OP_STOP,
};

struct sieve_insn {
	uint8_t op;
	unsigned target;
	unsigned end;
	const struct sieve_node *node;
};

struct sieve_script {
	struct sieve_arena arena;
	char *name;
	enum mx_phase phase;
	struct sieve_limits limits;
	struct sieve_insn *code;
	size_t ncode;
	size_t nvars;
	const char **var_names;
	pcre2_code **regexes;
	size_t nregexes;
	uint16_t match_mask;        /* see struct sieve_compiler */
};

/* Flatten the validated tree into s->code; false on a limit. */
bool sieve_codegen(struct sieve_compiler *c, struct sieve_script *s,
                   const struct sieve_node *root);

/* ---------------------------------------------------------------- run time */

struct sieve_str {
	const char *p; /* NUL-terminated */
	size_t n;
};

enum sieve_vtype { VAL_UNSET = 0, VAL_STRING, VAL_NUMBER, VAL_LIST, VAL_HASH };

struct sieve_value {
	uint8_t type;
	uint64_t num;            /* VAL_NUMBER */
	struct sieve_str s;      /* VAL_STRING (and VAL_NUMBER's text, lazily) */
	struct sieve_str *items; /* VAL_LIST elements / VAL_HASH values */
	struct sieve_str *keys;  /* VAL_HASH keys */
	size_t n;
};

#define SIEVE_MATCH_VARS 10

struct sieve_run {
	const struct sieve_script *s;
	const struct sieve_env *env;
	void *ud;
	struct sieve_arena arena;
	struct sieve_value *vars;
	size_t pc;
	bool finished;
	enum sieve_status status;
	struct sieve_result res;
	unsigned line;            /* of the statement running, for messages */
	sieve_trace_fn trace;     /* mxsieve try's line-by-line trace, or NULL */
	void *trace_ud;
	/* output lists (arena, grown by doubling) */
	struct sieve_counter *counters;
	size_t ncap_counters;
	const char **logs;
	size_t ncap_logs;
	/* DNS */
	bool dns_pending, dns_answered;
	const char *dns_name;
	enum sieve_dns_type dns_type;
	struct sieve_str *dns_answers;
	size_t dns_nanswers;
	unsigned dns_lookups;
	pcre2_match_context *mctx;
	pcre2_match_data *mdata;
	/* max_run_time: the thread's CPU clock is read once per
	 * SIEVE_WORK_CHECK units of matching work (about a byte compared each) */
	uint64_t cpu_used_ns;   /* by earlier sieve_run_execute calls (DNS resumes) */
	uint64_t cpu_t0_ns;     /* the thread's CPU clock at this call's first
	                         * check (0: not read yet in this call) */
	uint64_t work, work_next;
	bool over_time;         /* max_run_time passed: every later charge fails */
	char *fold;             /* scratch for case-folded text (i;ascii-casemap :contains) */
	size_t fold_cap;
	/* match variables ${0}..${9}: set by the last :matches or :regex match
	 * that succeeded (only when the script reads them), nmatch of them */
	struct sieve_str match[SIEVE_MATCH_VARS];
	unsigned nmatch;
	char errbuf[256];       /* "NAME:LINE: message" of the last runtime error */
	size_t errmsg;          /* where its message starts in errbuf */
};

/* Count `units` of matching work; every SIEVE_WORK_CHECK units, check the
 * run's CPU time against max_run_time (-1 with a runtime error past it). */
#define SIEVE_WORK_CHECK (1u << 18)
int sieve_charge(struct sieve_run *r, uint64_t units);
/* The calling thread's CPU time, ns. */
uint64_t sieve_thread_cpu_ns(void);

/* Record a runtime error "SCRIPT:LINE: message"; returns -1. */
int sieve_rt_error(struct sieve_run *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Evaluate argument nodes. */
int sieve_eval_string(struct sieve_run *r, const struct sieve_node *n, struct sieve_str *out);
int sieve_eval_list(struct sieve_run *r, const struct sieve_node *n,
                    struct sieve_str **out, size_t *count);
int sieve_eval_value(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out);
int sieve_eval_number(struct sieve_run *r, const struct sieve_node *n, const char *what,
                      uint64_t *out);
int sieve_eval_test(struct sieve_run *r, const struct sieve_node *n, bool *out);
/* The variable a NODE_VAR names (never NULL after validation). */
struct sieve_value *sieve_var(struct sieve_run *r, const struct sieve_node *n);
/* Text of a value for interpolation (lists joined by one space). */
int sieve_value_text(struct sieve_run *r, const struct sieve_value *v, struct sieve_str *out);
struct sieve_str sieve_str_dup(struct sieve_run *r, const char *p, size_t n);
bool sieve_str_ok(struct sieve_run *r, size_t n);

/* Output helpers used by actions. */
int sieve_add_counter(struct sieve_run *r, const char *name, enum sieve_counter_class cls);
int sieve_add_log(struct sieve_run *r, const char *text, size_t len);

/* match.c: does any value match any key? keys_re may hold precompiled
 * regexes (one per key) or be NULL. */
int sieve_match(struct sieve_run *r, const struct sieve_opts *o,
                const struct sieve_str *vals, size_t nv,
                const struct sieve_str *keys, size_t nk,
                pcre2_code *const *keys_re, bool *out);
/* i;ascii-numeric ordering: -1, 0, 1 (no leading digit = +infinity). */
int sieve_numeric_cmp(const char *a, size_t an, const char *b, size_t bn);
/* Glob matching for :matches with an RFC 4790 comparator: does s match the
 * glob pat (`*`, `?`, backslash escapes)? Each wildcard takes as little as
 * it can, left to right, and the last `*` the rest (as Pigeonhole does).
 * With r, the steps are charged to it (-1 on a runtime error); r may be
 * NULL. With cap (SIEVE_MATCH_VARS - 1 pairs), a match also says where
 * the first wildcards matched: cap[2k], cap[2k+1] = start and end in s of
 * wildcard k + 1; *ncap = how many wildcards the pattern has (at most the
 * pairs given). */
int sieve_glob(struct sieve_run *r, const char *pat, size_t pn, const char *s, size_t sn,
               bool fold, bool *out, size_t *cap, unsigned *ncap);
/* Compile a PCRE2 pattern; NULL with a message in err. */
pcre2_code *sieve_regex_compile(const char *pat, size_t len, bool caseless,
                                char *err, size_t errlen);

/* Implementations (exec_cmd.c, exec_test.c, exec_func.c). */
int sieve_cmd_stop(struct sieve_run *r, const struct sieve_node *n);
int sieve_cmd_set(struct sieve_run *r, const struct sieve_node *n);
int sieve_cmd_keep(struct sieve_run *r, const struct sieve_node *n);
int sieve_cmd_discard(struct sieve_run *r, const struct sieve_node *n);
int sieve_cmd_reject(struct sieve_run *r, const struct sieve_node *n);
int sieve_cmd_ec_action(struct sieve_run *r, const struct sieve_node *n);
int sieve_cmd_ec_disconnect(struct sieve_run *r, const struct sieve_node *n);
int sieve_cmd_ec_tarpit(struct sieve_run *r, const struct sieve_node *n);
int sieve_cmd_ec_log(struct sieve_run *r, const struct sieve_node *n);
int sieve_cmd_ec_inc_counter(struct sieve_run *r, const struct sieve_node *n);
int sieve_cmd_vctx_set(struct sieve_run *r, const struct sieve_node *n);
int sieve_cmd_vctx_delete(struct sieve_run *r, const struct sieve_node *n);
int sieve_cmd_hash_set(struct sieve_run *r, const struct sieve_node *n);

int sieve_test_true(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_false(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_not(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_anyof(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_allof(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_exists(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_header(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_address(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_envelope(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_size(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_ec_test(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_isset(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_is_valid_ip(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_is_rfc821_ip(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_type(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_is_true(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_vctx(struct sieve_run *r, const struct sieve_node *n, bool *out);
int sieve_test_string(struct sieve_run *r, const struct sieve_node *n, bool *out);

int sieve_fn_audit(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out);
int sieve_fn_ip_window(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out);
int sieve_fn_audit_series(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out);
int sieve_fn_audit_series_add(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out);
int sieve_fn_vctx_get(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out);
int sieve_fn_hash_create(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out);
int sieve_fn_hash_set(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out);
int sieve_fn_hash_get(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out);
int sieve_fn_hash_keys(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out);
int sieve_fn_split(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out);
int sieve_fn_join(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out);
int sieve_fn_dns_lookup(struct sieve_run *r, const struct sieve_node *n, struct sieve_value *out);

#endif
