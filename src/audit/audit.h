/*
 * audit: inbound_audit, live and windowed connection analytics per CIDR block.
 *
 * WHAT IS STORED
 *   Live gauge, three parts per family (IPv4, IPv6), holding only addresses
 *   with sessions open:
 *   - the service trie (live.c): a stride-8, path-compressed multibit trie.
 *     A node is a block at a multiple of 8 bits; it has one 8-byte slot per
 *     non-empty child byte holding the child's session count INLINE and a
 *     ref (a child node, possibly several bytes deeper, or a leaf: an IPv4
 *     leaf is the address's low 24 bits in the ref itself, an IPv6 leaf a
 *     16-byte key in a pool). Node sizes adapt: 2..128 slots unsorted
 *     (bytes searched 16 at a time with SSE2) or 256 indexed by byte;
 *     nodes are whole cache lines. ~40 B/address for 10^6 spread IPv4
 *     addresses, ~50 for IPv6 (docs/PERFORMANCE.md).
 *   - the exact table (xhash.c): open addressing, per address its key, its
 *     session count and its listener-0 count inline (12 bytes IPv4, 24
 *     IPv6), 1/8 to 3/4 full; it grows and shrinks incrementally (a few
 *     slots moved per update, never a whole rehash in one call).
 *   - listeners: listener 0 (the first Listen entry, all an MX usually
 *     has) is implicit: service minus the others. Listener l >= 1 has its
 *     own trie of the same kind, created on its first session and freed on
 *     its last; an update on it walks that trie too.
 *   - hinted lengths (audit_hint_prefix): per hinted length of a family, a
 *     table like the exact one keyed by the masked block.
 *   Big tables and big node pools ask for 2 MiB transparent huge pages:
 *   their accesses are random, and with 4 KiB pages each one also missed
 *   the TLB (measured: random reads 20 ns -> 7 ns apart, 217 -> 184 ns
 *   dependent, on this VM). When the gauge empties every table, pool and
 *   huge block goes back; in between, freed nodes are reused and tables
 *   shrink at 1/8 full.
 *
 *   Why this shape (measured at 10^6 addresses, see PERFORMANCE.md): the
 *   first version, a binary PATRICIA trie per listener plus one for the
 *   service, walked ~21 dependent levels (one cache miss each) and two
 *   tries per update: ~1000 ns per query, ~1600 per update. Eight bits per
 *   level and counts kept in the parent cut a walk to the few levels that
 *   branch (IPv4: /0 /8 /16 /24, the top two cache-resident); a count at
 *   /N never touches the child it counts; the exact table answers the most
 *   common question (/32, /128) in one probe; and the commonest update
 *   (listener 0) walks one trie. Costs paid for it: a sub-stride query
 *   (/20, /27) sums up to 128 inline counts of one node; per-listener
 *   block queries for listener 0 walk every other listener's trie too;
 *   an update on listener l >= 1 walks two tries; IPv6 queries longer
 *   than the last branching byte above a leaf (e.g. /93 in a /64 of a few
 *   hosts) read the leaf's key: one more dependent miss (a hint makes them
 *   one probe).
 *
 *   Windows: one path-compressed binary trie (window.c) for all monitors,
 *   and one per named series. Each node carries, per monitor/series, N windows x C counters
 *   (C = 3 for monitors, 1 for a series) and the window epoch (now/W) it was
 *   last shifted to; an internal node holds the sum of its leaves, so a block
 *   at any prefix is one node. Node = 40 + sum(8 + 8*N*C) bytes (296 for
 *   ("300,6" "1800,4")), two per address. Leaves sit on an LRU list.
 *   Memory: at most max_tracked addresses per trie, and fewer when that
 *   many nodes would pass the trie's share of max_memory (monitors half,
 *   each named series 1/64); counts saturate at 2^64-1.
 *
 * WHAT EACH OPERATION COSTS, AND WHY
 *   audit_live_add      reserve (nodes, table room) so that out of memory
 *       changes nothing and returns false; prefetch the exact (and hinted)
 *       table slots; walk the service trie once, +1 in one slot per level,
 *       then at most one of: a new slot (the node may move up one size
 *       class), a split (one 2-slot node), nothing; then +1 in each table.
 *       Listener l >= 1: the same walk in its trie. Each table update also
 *       moves <= 8 slots of an ongoing resize.
 *   audit_live_remove   find the service path read-only while the table
 *       slot loads; check the pairing (the listener's trie or the table's
 *       listener-0 count) before anything changes (else abort); -1 on the
 *       path; a leaf reaching 0 leaves its node (the last slot fills the
 *       hole), a node left with one child is replaced by it, a node a
 *       quarter full moves down a class if memory allows.
 *   audit_live_count    /32 /128: one probe. A hinted length (service-wide):
 *       one probe. Otherwise one walk to the node holding the block's bits,
 *       then one slot, or a sum over the slots whose byte falls in the
 *       block (a run of a 256-slot node, or SIMD-matched bytes of a sparse
 *       one: at most 128 counts). /0 is a stored total. Listener l >= 1:
 *       its trie; listener 0: service minus each other listener's trie.
 *       Bounded by 16 levels (+1 leaf) x (1 + listeners), never by how
 *       many sessions the block holds.
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
 *       depth with an n-sized heap: a console command, not a hot path. n is
 *       capped at 10000.
 *
 * INVARIANTS (a broken one aborts)
 *   - live tries: every non-root node has two or more slots; a slot's
 *     count is the sum of the counts below it, never 0; node keys are
 *     masked to their length; the exact table, the hinted tables and the
 *     tries agree on every address's count;
 *   - audit_live_remove pairs with exactly one successful audit_live_add
 *     for the same address and listener; a remove with no matching add
 *     aborts before any count is changed;
 *   - IPv4-mapped IPv6 (::ffff:a.b.c.d) is IPv4 everywhere, even if a caller
 *     passes it unfolded;
 *   - windowed leaves <= the trie's cap: max_tracked, or its share of
 *     max_memory / (2 x node size) when that is less;
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

/* Listener numbers audit_live_add takes: 0 .. AUDIT_LISTENERS_MAX - 1. */
#define AUDIT_LISTENERS_MAX 4096

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

#define AUDIT_MONITORS_MAX 16 /* audit_create refuses more */

struct audit_config {
	const struct audit_monitor_spec *monitors;
	size_t nmonitors;
	size_t max_tracked; /* cap on addresses with windowed data; 0 = default */
	size_t max_memory;  /* bytes of windowed data, at most: the monitors may
	                     * take half, each named series 1/64; an address
	                     * cap lower than max_tracked follows (0 = 2 GiB) */
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

/* The index of the monitor of that shape ("W,N"), or -1. */
int audit_monitor_find(const struct audit *a, unsigned window, unsigned count);

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
	uint64_t tracked_addresses; /* entries with windowed data (an address
	                             * counts once per series it is in) */
	uint64_t monitor_cap;       /* addresses the monitors keep at most */
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
