/*
 * sieve: the policy engine, Momentum's Sieve dialect (docs/POLICY.md).
 *
 * Life of a script:
 *   sieve_compile()   text -> lexer -> parser -> syntax tree -> validator
 *                     (checked against the one registry table, per phase)
 *                     -> compiled program. Immutable from then on and shared
 *                     by every session and thread; freed by sieve_script_free
 *                     only when no run uses it any more.
 *   sieve_run_new()   per-run state (an arena, small) over a script and an
 *                     environment of callbacks the SMTP session provides.
 *   sieve_run_execute() runs until the script ends (SIEVE_DONE), a runtime
 *                     error ends it (SIEVE_ERROR), or an `ec_dns_lookup`
 *                     needs an answer (SIEVE_SUSPENDED). The engine never
 *                     blocks and never calls back for DNS: the caller reads
 *                     the question with sieve_run_dns_request(), does the
 *                     lookup asynchronously, hands the answers to
 *                     sieve_run_dns_resume(), and calls execute again.
 *   sieve_run_result() what the session should do: reply, tarpit, counters,
 *                     log lines. Valid until sieve_run_free().
 *
 * The engine knows nothing of sockets, the audit module or the config
 * parser: everything it asks about the session goes through struct
 * sieve_env. A NULL callback makes the construct that needs it a runtime
 * error ("... not available"), never a crash.
 *
 * Errors: compile errors are "FILE:LINE:COLUMN: message" lines in struct
 * sieve_diags (all of them: the parser recovers); a runtime error is text in
 * the result, naming script and line. Nothing a script or a peer does makes
 * the engine exit or abort.
 */
#ifndef MX_SIEVE_SIEVE_H
#define MX_SIEVE_SIEVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h" /* enum mx_phase only: the policy phases */
#include "sieve/sieve_limits.h"
#include "util/ipaddr.h"

struct sieve_script; /* opaque, immutable compiled program */
struct sieve_run;    /* opaque, one execution of a script */

/* ---- compile ---- */

/* Compile errors, each one line "FILE:LINE:COLUMN: message". */
struct sieve_diags {
	char **lines;
	size_t count;
	size_t cap;
};

/* Free the lines (not the struct itself); leaves it empty and reusable. */
void sieve_diags_clear(struct sieve_diags *d);

/* Compile `src` (`len` bytes, need not be NUL-terminated) for `phase`.
 * `path` names the script in diagnostics and log lines. `limits` may be NULL
 * for the defaults. Returns NULL and appends to `diags` (may be NULL) on any
 * error. */
struct sieve_script *sieve_compile(const char *path, const char *src, size_t len,
                                   enum mx_phase phase,
                                   const struct sieve_limits *limits,
                                   struct sieve_diags *diags);

/* Read FILE and compile it; a read error is one diagnostic naming FILE. */
struct sieve_script *sieve_compile_file(const char *path, enum mx_phase phase,
                                        const struct sieve_limits *limits,
                                        struct sieve_diags *diags);

void sieve_script_free(struct sieve_script *s);

/* The phase and name a script was compiled with. */
enum mx_phase sieve_script_phase(const struct sieve_script *s);
const char *sieve_script_name(const struct sieve_script *s);

/* "connect" "ehlo" "mailfrom" "rcptto" "data" -> phase; false if unknown. */
bool sieve_phase_parse(const char *name, enum mx_phase *out);
const char *sieve_phase_label(enum mx_phase phase);

/* ---- the environment the session provides ---- */

enum sieve_vctx {
	SIEVE_VCTX_CONN = 1, /* per connection: vctx_conn_* */
	SIEVE_VCTX_MESS,     /* per message:    vctx_mess_* */
};

enum sieve_audit_scope {
	SIEVE_AUDIT_SERVICE = 1, /* audit_connections_on_service, audit_service "SMTP" */
	SIEVE_AUDIT_LISTENER,    /* audit_connections_on_listener */
};

enum sieve_window_counter {
	SIEVE_WINDOW_CONNECTIONS = 1, /* ec_ip_connections */
	SIEVE_WINDOW_RECEPTIONS,      /* ec_ip_receptions */
	SIEVE_WINDOW_REJECTIONS,      /* ec_ip_rejections */
};

/* One ec_ip_* query (inbound-audit.md section 3). */
struct sieve_window_query {
	bool hash_form;        /* false: sliding INDEX [MASK]; true: the $hash form */
	unsigned index;        /* index form: monitor position, 0-based */
	unsigned window;       /* hash form: monitor "W,N" */
	unsigned count;
	unsigned period_start; /* hash form: windows start..end inclusive */
	unsigned period_end;
	int mask;              /* prefix length; -1 = the default (32 or 128) */
};

/*
 * Callbacks a run uses; `ud` is the pointer given to sieve_run_new. Strings
 * returned must stay valid until the next callback or the end of the run.
 * The boolean callbacks return false with a message in `err` for a runtime
 * error (a bad argument), which the engine reports with script and line.
 */
struct sieve_env {
	/* Client address and port (connect phase on). */
	bool (*client)(void *ud, struct ip_addr *addr, uint16_t *port);
	/* HELO/EHLO name, "" before EHLO. */
	const char *(*helo)(void *ud);
	/* Envelope sender without <> ("" for the null sender), mailfrom on. */
	const char *(*mail_from)(void *ud);
	/* Envelope recipient number i (0-based), NULL past the last; rcptto on
	 * (in the rcptto phase the last one is the recipient being checked). */
	const char *(*rcpt_to)(void *ud, size_t i);
	/* Value number i (0-based) of header `name` (case-insensitive),
	 * unfolded, NULL past the last. Data phase only. */
	const char *(*header)(void *ud, const char *name, size_t i);
	/* Message size in octets. Data phase only. */
	uint64_t (*message_size)(void *ud);

	/* vctx: get returns NULL when unset; set with value NULL deletes. */
	const char *(*vctx_get)(void *ud, enum sieve_vctx scope, const char *key);
	bool (*vctx_set)(void *ud, enum sieve_vctx scope, const char *key,
	                 const char *value, char *err, size_t errlen);

	/* Live sessions in the block that `arg` names (audit_parse_block form:
	 * "/N", "addr/N", "addr", ""). */
	bool (*audit_count)(void *ud, enum sieve_audit_scope scope, const char *arg,
	                    uint64_t *out, char *err, size_t errlen);
	/* ec_ip_connections / _receptions / _rejections. */
	bool (*ip_window)(void *ud, enum sieve_window_counter counter,
	                  const struct sieve_window_query *q, uint64_t *out,
	                  char *err, size_t errlen);
	/* audit_series NAME "W,N" MASK [START [END]]; mask -1 = default. */
	bool (*series_sum)(void *ud, const char *name, unsigned window, unsigned count,
	                   int mask, unsigned start, unsigned end, uint64_t *out,
	                   char *err, size_t errlen);
	/* audit_series_add NAME "W,N" [AMOUNT]. */
	bool (*series_add)(void *ud, const char *name, unsigned window, unsigned count,
	                   uint64_t amount, char *err, size_t errlen);
};

/* ---- run ---- */

enum sieve_status {
	SIEVE_DONE = 1,  /* the script ended; read the result */
	SIEVE_SUSPENDED, /* waiting for a DNS answer: see sieve_run_dns_request */
	SIEVE_ERROR,     /* a runtime error ended the run; result.error says why */
};

enum sieve_dns_type {
	SIEVE_DNS_A = 1,
	SIEVE_DNS_AAAA,
	SIEVE_DNS_TXT,
	SIEVE_DNS_MX,
	SIEVE_DNS_PTR,
};

enum sieve_dns_status {
	SIEVE_DNS_OK = 1,   /* answers given (n may be 0: no such record) */
	SIEVE_DNS_NXDOMAIN, /* no such name: the function returns [""] */
	SIEVE_DNS_FAILED,   /* server failure or timeout: also [""] [ours] */
};

/* What the session should do once the run is over. */
enum sieve_action {
	SIEVE_ACT_NONE = 0,   /* no terminal action: implicit keep (or phase2) */
	SIEVE_ACT_KEEP,       /* keep / ec_keep: the normal reply, terminal */
	SIEVE_ACT_REPLY,      /* ec_action / reject: reply code + text, terminal */
	SIEVE_ACT_DISCONNECT, /* ec_disconnect: reply, then close, terminal */
	SIEVE_ACT_DISCARD,    /* discard: accept with the normal reply, drop */
	SIEVE_ACT_ERROR,      /* runtime error under on_error=fail: 451 4.3.0 */
};

enum sieve_counter_class {
	SIEVE_COUNT_INFO = 1, /* informational (tarpit, keep, log) */
	SIEVE_COUNT_4XX,
	SIEVE_COUNT_5XX,
};

/* One counter to bump: "PHASE:NAME (class)". name is the action's counter
 * argument or, without one, "SCRIPT:LINE". */
struct sieve_counter {
	const char *name;
	enum sieve_counter_class cls;
};

struct sieve_result {
	enum sieve_action action;
	bool terminal;          /* the phase is decided: phase2 does not run */
	bool disconnect;        /* close after the reply */
	bool discard;           /* drop the message after accepting it */
	unsigned code;          /* reply code; 0 = the phase's normal reply */
	char enhanced[16];      /* "5.7.1"; "" with code 0 */
	const char *text;       /* reply text, lines separated by '\n'; every
	                           line goes out with the code */
	unsigned tarpit_seconds; /* sum of ec_tarpit, capped by max_tarpit */
	const struct sieve_counter *counters;
	size_t ncounters;
	const char *const *log_lines; /* "SCRIPT:LINE: text" for ec_log */
	size_t nlog_lines;
	const char *error;      /* runtime error text ("SCRIPT:LINE: ..."), or NULL */
	const char *keep_reason; /* ec_keep's argument, or NULL */
};

/* A run of `s` with environment `env` (both must outlive the run). Returns
 * NULL only when out of memory. */
struct sieve_run *sieve_run_new(const struct sieve_script *s,
                                const struct sieve_env *env, void *ud);

/* Run until done, an error, or a DNS lookup is needed. After SUSPENDED call
 * sieve_run_dns_resume() before calling this again. */
enum sieve_status sieve_run_execute(struct sieve_run *run);

/* The pending lookup while SUSPENDED: returns false when none. */
bool sieve_run_dns_request(const struct sieve_run *run, const char **name,
                           enum sieve_dns_type *type);

/* Answer the pending lookup. Answers are text: A/AAAA addresses, TXT
 * strings, MX "PREF HOST", PTR names. They are copied. */
void sieve_run_dns_resume(struct sieve_run *run, const char *const *answers,
                          size_t n, enum sieve_dns_status status);

const struct sieve_result *sieve_run_result(const struct sieve_run *run);

/* max_dns_lookups bounds a phase, whose two slots are two runs: the
 * lookups a run has made, and those an earlier slot made (before the run
 * starts), which count against its limit. */
unsigned sieve_run_dns_lookups(const struct sieve_run *run);
void sieve_run_set_dns_lookups(struct sieve_run *run, unsigned n);

/* A trace of what a run does, statement by statement (mxsieve try): `what`
 * names the test or command at script line `line`; `result` is 1 or 0 for
 * a test, -1 for a command or assignment that ran. */
typedef void (*sieve_trace_fn)(void *ud, unsigned line, const char *what, int result);
void sieve_run_set_trace(struct sieve_run *run, sieve_trace_fn fn, void *ud);

void sieve_run_free(struct sieve_run *run);

/* ---- command-line entry points (the daemon dispatches to these) ---- */

/* `mxsieve --compile FILE [--phase NAME]`: prints each error, or "ok".
 * Returns the exit status, 0 or 1. argv[0] is the program name. */
int sieve_tool_compile_main(int argc, char **argv);

/* `mxsieve --sieve-eval FILE --phase NAME [fixture options]` (hidden, for the
 * differential tests): runs the script over a fixture given on the command
 * line and prints the result. See src/sieve/tool.c for the options. */
int sieve_tool_eval_main(int argc, char **argv);

#endif
