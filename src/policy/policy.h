/*
 * policy: the bridge between the SMTP session and the two modules that know
 * nothing of it, the Sieve engine and inbound_audit.
 *
 * - A `struct policy` is the set of compiled scripts of one configuration
 *   ([phase][slot], slot 0 = phaseN 1), compiled together at start or reload:
 *   all compile or none is used. It is reference-counted, because a session
 *   keeps the scripts it was accepted with across a reload, for every phase.
 * - `struct policy_stats` holds the action counters ("PHASE:NAME (class)")
 *   that `sieve stats` prints; it belongs to the server and survives reloads.
 * - The policy_audit_* functions answer the audit questions of a script
 *   (sieve_env callbacks) from a `struct audit` for one client. The live
 *   session and `mxsieve try` both use them, so a rehearsal answers exactly
 *   as the server would.
 */
#ifndef MX_POLICY_POLICY_H
#define MX_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "sieve/sieve.h"
#include "util/ipaddr.h"

struct audit;
struct policy;
struct policy_stats;

/* Compile every script of cfg->sieve. Returns NULL with every error as
 * "FILE:LINE:COLUMN: message\n" in *errors (malloc'd) when any fails; a
 * config without a sieve stanza gives an empty policy. */
struct policy *policy_load(const struct mx_config *cfg, char **errors);

void policy_ref(struct policy *p);
void policy_unref(struct policy *p);

/* The script for phase/slot (0 or 1), or NULL when none is configured. */
const struct sieve_script *policy_script(const struct policy *p,
                                         enum mx_phase phase, unsigned slot);

/* Whether any script is attached to this phase. */
bool policy_has_phase(const struct policy *p, enum mx_phase phase);

/* ---- counters ---- */
struct policy_stats *policy_stats_new(void);
void policy_stats_free(struct policy_stats *st);
/* Count every counter of a finished run's result in `phase`. */
void policy_stats_add_result(struct policy_stats *st, enum mx_phase phase,
                             const struct sieve_result *r);
/* "PHASE:NAME (class) = N" lines, sorted; a malloc'd string. */
char *policy_stats_format(const struct policy_stats *st);
void policy_stats_reset(struct policy_stats *st);
/* Every counter, sorted by key, as its parts (not NUL-terminated). */
void policy_stats_each(const struct policy_stats *st,
                       void (*fn)(void *arg, const char *phase, size_t phase_len,
                                  const char *name, size_t name_len, const char *cls,
                                  size_t cls_len, uint64_t n),
                       void *arg);

/* ---- audit answers for one client ---- */
/* The audit state for cfg's inbound_audit stanza (monitors, max_tracked),
 * or NULL when out of memory. */
struct audit *policy_audit_create(const struct mx_config *cfg);


struct policy_client {
	struct audit *audit;
	struct ip_addr addr;   /* the session's client */
	unsigned listener;     /* the listening socket it arrived on */
	uint64_t now_ms;       /* monotonic clock for windowed data */
};

bool policy_audit_count(const struct policy_client *pc, enum sieve_audit_scope scope,
                        const char *arg, uint64_t *out, char *err, size_t errlen);
bool policy_ip_window(const struct policy_client *pc, enum sieve_window_counter counter,
                      const struct sieve_window_query *q, uint64_t *out,
                      char *err, size_t errlen);
bool policy_series_sum(const struct policy_client *pc, const char *name, unsigned window,
                       unsigned count, int mask, unsigned start, unsigned end,
                       uint64_t *out, char *err, size_t errlen);
bool policy_series_add(const struct policy_client *pc, const char *name, unsigned window,
                       unsigned count, uint64_t amount, char *err, size_t errlen);

/* A script's reply as SMTP reply lines, the way the server sends it and
 * `mxsieve try` prints it: emit() once per line with the code, '-' for
 * every line but the last and ' ' for the last, the enhanced status
 * (X.7.1 for a 4xx/5xx without one, X.0.0 otherwise) and the line's text
 * (len bytes, without its line end). The text's trailing line ends close
 * the reply (they open no empty line); a CR before a LF is dropped. */
void policy_reply_lines(unsigned code, const char *status, const char *text,
                        void (*emit)(void *arg, unsigned code, char sep, const char *status,
                                     const char *line, int len),
                        void *arg);

#endif
