/*
 * audit: inbound_audit, live and windowed connection analytics per CIDR block.
 *
 * WHAT IS STORED
 *   Live gauge: path-compressed binary tries (separate IPv4 and IPv6 roots),
 *   one for the whole service and one per listener number (created on first
 *   use). A node is a block key/plen with the number of sessions open inside
 *   it; a leaf (/32, /128) is one address; every internal node has exactly
 *   two children, so n addresses take at most 2n-1 nodes of 32 bytes, per
 *   trie. An address with sessions is in the service trie and in each
 *   listener's trie it has sessions on: ~128 bytes per address with one
 *   listener. Nodes come from chunked pools (4096 nodes, never moved) indexed
 *   by 32-bit numbers; the gauge holds only addresses with sessions open, and
 *   when the last session closes every chunk goes back to malloc. In between,
 *   freed nodes are reused, so memory stays at the high-water mark of open
 *   addresses until the gauge empties.
 *
 *   Windows: one trie of the same shape for all monitors, and one per named
 *   series. Each node carries, per monitor/series, N windows x C counters
 *   (C = 3 for monitors, 1 for a series) and the window epoch (now/W) it was
 *   last shifted to; an internal node holds the sum of its leaves, so a block
 *   at any prefix is one node. Node = 40 + sum(8 + 8*N*C) bytes (164 for
 *   ("300,6" "1800,4")), two per address. Leaves sit on an LRU list.
 *
 * WHAT EACH OPERATION COSTS, AND WHY
 *   audit_live_add/remove   one walk per trie touched (service + the
 *       listener's): O(depth), depth <= 33 / 129 and ~log2(addresses) for
 *       spread-out clients; +-1 at each node on the way, at most one split
 *       (add) or one splice (remove). Never allocates more than 4 nodes; the
 *       nodes are reserved before anything changes, so out of memory leaves
 *       the gauge untouched and add returns false.
 *   audit_live_count        one walk: steer by one bit per node down to the
 *       first node with plen >= the query's, compare the key once; /0 is the
 *       root. Independent of how many sessions are open from the block.
 *       Measured (docs/PERFORMANCE.md): each step of the walk is a dependent
 *       load, so at 10^5..10^6 random addresses the cost is dominated by
 *       cache misses, about 40 ns per level below the cached top of the trie.
 *   audit_record, audit_series_add   one walk of the windowed trie: shift
 *       (lazily: nothing is ever swept) and add at every node, O(depth x N x
 *       C); a new address at the cap first evicts the LRU tail, which walks
 *       root->leaf once more to subtract the leaf from its ancestors.
 *   audit_sliding, audit_window_sum, audit_series_sum   one walk, then read
 *       N windows of one node, shifted on the fly for the current epoch.
 *   audit_tick              evicts expired addresses (every window passed)
 *       from the LRU tails of the windowed tries, at most 256 entries per
 *       call over all tries; expiry is monotone in last-seen time, so it
 *       stops at the first entry that still has data.
 *   audit_format_top        a walk over the service trie down to the mask's
 *       depth (every address at /32 or /128) with an n-sized heap: a console
 *       command, not a hot path. n is capped at 10000.
 *
 * INVARIANTS (a broken one aborts)
 *   - every internal node has two children and its counts are the sum of
 *     theirs; no live node has count 0; keys are masked to plen;
 *   - audit_live_remove pairs with exactly one successful audit_live_add
 *     for the same address and listener; a remove with no matching add
 *     aborts before any count is changed;
 *   - IPv4-mapped IPv6 (::ffff:a.b.c.d) is IPv4 everywhere, even if a caller
 *     passes it unfolded;
 *   - windowed leaves <= max_tracked per trie (monitors, each named series);
 *     at most 32 named series (names of 1..63 bytes), 16 monitors, windows
 *     of 1..10^6 s, 1..1024 windows. audit_create returns NULL for a config
 *     outside these limits as well as when out of memory.
 *
 * Console formats (Momentum's, plus our "top"):
 *   show ip ADDR[/N]: "Connections 300/0: 12" for every monitor, counter
 *     (Connections, Receptions, Rejections) and window, then each named
 *     series as "NAME W/i: n", then "Live connections: n".
 *   top N [MASK]: "203.0.113.0/24 12" lines, most sessions first, ties in
 *     address order (IPv4 first). MASK "/N" means IPv4 for N <= 32 and IPv6
 *     for N > 32; "v4/N" and "v6/N" pick the family explicitly (so "v6/32"
 *     is IPv6 /32s); no mask lists single addresses of both families.
 *
 * Not thread-safe: everything runs on the event-loop thread.
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

/* The loaded policy asks for blocks of this length (IPv4 "/24", IPv6 "/93"
 * ...): keep a table of the live count of every such block, so that a
 * service-wide query at that length is one hash probe instead of a trie
 * walk. Each hinted length costs one more hash update per session add and
 * remove of that family (overlapped with the trie walk). Call when a policy
 * is loaded: it costs one walk over the gauge's blocks at that length.
 * Returns false when out of memory or past AUDIT_HINTS_MAX per family:
 * queries stay correct either way (the trie answers). /0, the full length
 * and a length already hinted change nothing and return true. */
#define AUDIT_HINTS_MAX 4
bool audit_hint_prefix(struct audit *a, enum ip_family family, unsigned prefix);

/* Drop every hint (before the hints of a newly loaded policy). */
void audit_hint_clear(struct audit *a);

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
