/*
 * audit: inbound_audit, live and windowed connection analytics per CIDR block.
 *
 * (The audit engineer completes this header comment: what is stored, what
 * each operation costs and why, the invariants.)
 *
 * The module knows nothing of sockets or Sieve. The SMTP session feeds it
 * (a session opened or closed, a message received or refused); the policy
 * engine and the control console read it. Time is always passed in by the
 * caller, in milliseconds on a monotonic clock, so tests control it.
 */
#ifndef MX_AUDIT_AUDIT_H
#define MX_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/ipaddr.h"

struct audit;

/* Pass as `listener` to count every listening socket (the whole service). */
#define AUDIT_ANY_LISTENER (-1)

/* The per-address counters every monitor keeps. */
enum audit_counter {
	AUDIT_CONNECTIONS = 0, /* sessions accepted */
	AUDIT_RECEPTIONS,      /* messages accepted with 250 at end of data */
	AUDIT_REJECTIONS,      /* MAIL/RCPT/DATA answered 4xx/5xx */
	AUDIT_COUNTER_COUNT
};

struct audit_monitor_spec {
	unsigned window; /* W: seconds per window */
	unsigned count;  /* N: windows kept; window 0 is the current one */
};

struct audit_config {
	const struct audit_monitor_spec *monitors;
	size_t nmonitors;
	size_t max_tracked; /* cap on addresses with windowed data; 0 = default */
};

/* A new, empty audit state. Returns NULL when out of memory. */
struct audit *audit_create(const struct audit_config *cfg);
void audit_destroy(struct audit *a);

/* ---- live gauge: sessions established now ---- */

/* A session from `client` was accepted on listener number `listener`
 * (0-based, as the server numbers its Listen entries). Returns false only
 * when out of memory; the caller then refuses the session (fail closed). */
bool audit_live_add(struct audit *a, const struct ip_addr *client, unsigned listener);

/* That session ended. Must pair exactly with one successful add. */
void audit_live_remove(struct audit *a, const struct ip_addr *client, unsigned listener);

/* Sessions now open from block net/prefix (net already masked), on one
 * listener or on AUDIT_ANY_LISTENER. prefix 0 = the whole family. */
uint64_t audit_live_count(const struct audit *a, const struct ip_addr *net,
                          unsigned prefix, int listener);

/* Parse a policy argument into a block, per inbound-audit.md section 2:
 * "/N" (the current client's block), "addr/N", "addr", "" (current client).
 * `current` is the session's client (may be NULL outside a session). On
 * error returns false with a message naming the bad text in err. */
bool audit_parse_block(const char *arg, const struct ip_addr *current,
                       struct ip_addr *net, unsigned *prefix,
                       char *err, size_t errlen);

/* ---- windowed monitors (inbound_audit { monitors = (...) }) ---- */

/* Count one event of `counter` for `client` in every monitor's current window. */
void audit_record(struct audit *a, const struct ip_addr *client,
                  enum audit_counter counter, uint64_t now_ms);

/* Weighted sliding value of monitor `monitor` (0-based) for a block:
 * current window + previous window x (unelapsed part of the current one),
 * rounded down. Returns false when `monitor` does not exist. */
bool audit_sliding(struct audit *a, size_t monitor, enum audit_counter counter,
                   const struct ip_addr *net, unsigned prefix, uint64_t now_ms,
                   uint64_t *out);

/* Plain sum over windows start..end (inclusive, 0 = current) of a monitor. */
bool audit_window_sum(struct audit *a, size_t monitor, enum audit_counter counter,
                      const struct ip_addr *net, unsigned prefix,
                      unsigned start, unsigned end, uint64_t now_ms, uint64_t *out);

/* Named series: add `amount` to the client's counter in series NAME with
 * W seconds x N windows (created on first use). Returns false with err set
 * when the series exists with another shape or a limit is reached. */
bool audit_series_add(struct audit *a, const char *name, unsigned window,
                      unsigned count, const struct ip_addr *client,
                      uint64_t amount, uint64_t now_ms, char *err, size_t errlen);

/* Sum of a named series over a block and windows start..end. An unknown
 * series reads 0. */
bool audit_series_sum(struct audit *a, const char *name, unsigned window,
                      unsigned count, const struct ip_addr *net, unsigned prefix,
                      unsigned start, unsigned end, uint64_t now_ms,
                      uint64_t *out, char *err, size_t errlen);

/* Bounded background work (rollover, eviction); call from a timer. Never
 * walks more than a fixed number of entries per call. */
void audit_tick(struct audit *a, uint64_t now_ms);

/* ---- numbers for metrics and the console ---- */
struct audit_stats {
	uint64_t live_sessions;     /* sessions open now, all families */
	uint64_t live_addresses;    /* distinct addresses with sessions open */
	uint64_t tracked_addresses; /* addresses with windowed data */
	uint64_t evictions;         /* windowed entries evicted at the cap */
	uint64_t bytes;             /* memory held by the module */
};
void audit_get_stats(const struct audit *a, struct audit_stats *out);

/* ---- console text (Momentum's format) ---- */

/* "inbound_audit show ip ADDR[/N]": appends to a malloc'd string; returns it,
 * or NULL with err set for a bad argument. */
char *audit_format_show(struct audit *a, const char *arg, uint64_t now_ms,
                        char *err, size_t errlen);

/* "inbound_audit top N [/MASK]": the N blocks with most live sessions. */
char *audit_format_top(struct audit *a, unsigned n, const char *mask,
                       char *err, size_t errlen);

#endif
