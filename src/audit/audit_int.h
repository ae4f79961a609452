/*
 * audit_int: the audit module's private pieces, shared by its .c files only.
 *
 *   pool   - chunked arrays of fixed-size nodes addressed by 32-bit index
 *            (index 0 is "none"); chunks never move, so a pointer to a node
 *            stays valid while other nodes are allocated. Freed nodes go on a
 *            free list; when the last live node is freed every chunk is
 *            returned, so an idle pool holds no memory. A pool may carve
 *            its chunks from 2 MiB huge-page blocks once it is that big.
 *   key    - an address as four 32-bit words in host order (word 0 holds the
 *            most significant bits; IPv4 uses word 0 only), so that prefix
 *            comparisons are one XOR and one count-leading-zeros per word.
 *   mtrie  - a live gauge trie: stride 8, counts inline (live.c).
 *   xhash  - the live gauge's exact-address and hinted-length tables
 *            (xhash.c).
 *   wtrie  - the windowed tries for monitors and named series (window.c).
 *
 * Nothing here is visible outside src/audit/.
 */
#ifndef MX_AUDIT_AUDIT_INT_H
#define MX_AUDIT_AUDIT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/ipaddr.h"

#define AUDIT_CHUNK_SHIFT 12u
#define AUDIT_CHUNK_NODES (1u << AUDIT_CHUNK_SHIFT)
#define AUDIT_MAX_DEPTH 130 /* 128 bits + the root + one split */

struct audit_pool {
	size_t elem;             /* bytes per node, a multiple of 4 */
	unsigned shift;          /* log2 of nodes per chunk */
	unsigned char **chunks;  /* each (1 << shift) * elem bytes */
	uint32_t nchunks, capchunks;
	uint32_t next;           /* first never-used index */
	uint32_t free_head;      /* free list, linked through the first word */
	uint32_t nfree;
	uint32_t live;           /* nodes in use */
	bool huge;               /* once 2 MiB big, carve chunks from huge pages */
	uint32_t carve_from;     /* chunks from this one on are carved */
	unsigned char *blk;      /* current huge block, and what is left of it */
	size_t blk_left;
	void **blocks;           /* every huge block, to unmap */
	uint32_t nblocks, capblocks;
};

/* Zeroed memory of at least `bytes`; big ones are 2 MiB aligned and asked
 * to be backed by transparent huge pages (random access to a big table
 * then costs no TLB miss). NULL when out of memory. */
void *audit_big_alloc(size_t bytes);
void audit_big_free(void *p, size_t bytes);

static inline void *audit_pool_at(const struct audit_pool *p, uint32_t i)
{
	return p->chunks[i >> p->shift] + (size_t)(i & ((1u << p->shift) - 1)) * p->elem;
}

/* An empty pool of `elem`-byte nodes (no memory until the first alloc),
 * AUDIT_CHUNK_NODES nodes per chunk. */
void audit_pool_init(struct audit_pool *p, size_t elem);
/* The same with 2^shift nodes per chunk (shift 2..16), for big nodes. */
void audit_pool_init_shift(struct audit_pool *p, size_t elem, unsigned shift);
/* Let the pool take its chunks from huge-page blocks once it holds 2 MiB. */
void audit_pool_use_huge(struct audit_pool *p);
/* Make sure the next `n` audit_pool_alloc calls succeed; false when OOM. */
bool audit_pool_reserve(struct audit_pool *p, uint32_t n);
/* A zeroed node; only after a successful reserve (aborts otherwise). */
uint32_t audit_pool_alloc(struct audit_pool *p);
/* Give a node back; the whole pool is released when none is left. */
void audit_pool_free(struct audit_pool *p, uint32_t i);
/* Bytes held from malloc. */
size_t audit_pool_bytes(const struct audit_pool *p);
void audit_pool_release(struct audit_pool *p);

/* Address to key words; returns 32 or 128 (the family's bit count). */
unsigned audit_key_from(const struct ip_addr *a, uint32_t key[4]);
/* Key words back to an address of family fam. */
void audit_key_to(const uint32_t key[4], enum ip_family fam, struct ip_addr *out);

static inline unsigned audit_key_bit(const uint32_t key[4], unsigned b)
{
	return (key[b >> 5] >> (31 - (b & 31))) & 1u;
}

/* Length of the common prefix of a and b, at most `limit` bits. */
static inline unsigned audit_key_cpl(const uint32_t *a, const uint32_t *b,
                                     unsigned limit)
{
	for (unsigned w = 0; w * 32 < limit; w++) {
		uint32_t x = a[w] ^ b[w];
		if (x != 0) {
			unsigned r = w * 32 + (unsigned)__builtin_clz(x);
			return r < limit ? r : limit;
		}
	}
	return limit;
}

/* Zero the bits of key after the first plen. */
void audit_key_mask(uint32_t key[4], unsigned plen);

/* ---- live gauge (live.c: multibit trie; xhash.c: exact-address hash) ---- */

/* Node size classes: sparse nodes of 2, 4, ..., 128 children (classes 0-6)
 * and the dense node of 256 (class 7). */
#define AUDIT_MT_CLASSES 8
#define AUDIT_MT_DENSE 7

/* One gauge trie (see live.c): stride-8, path-compressed, each child's
 * session count kept in its parent's slot. */
struct audit_mtrie {
	struct audit_pool nodes[AUDIT_MT_CLASSES];
	struct audit_pool leaves; /* IPv6 leaf keys (IPv4 leaves live in the slot) */
	uint32_t root[2];         /* [0] IPv4, [1] IPv6: a dense /0 node, or 0 */
	uint64_t total[2];        /* sessions per family */
	uint64_t addrs;           /* distinct addresses */
};

void audit_mtrie_init(struct audit_mtrie *t);
void audit_mtrie_release(struct audit_mtrie *t);
/* Make the next audit_mtrie_add succeed; false when out of memory. */
bool audit_mtrie_reserve(struct audit_mtrie *t);
/* One more session for key (after a successful reserve). False (nothing
 * changed) when a count would overflow 32 bits. */
bool audit_mtrie_add(struct audit_mtrie *t, const uint32_t key[4], unsigned bits);
/* One session fewer; false (nothing changed) when the key has none. */
bool audit_mtrie_remove(struct audit_mtrie *t, const uint32_t key[4], unsigned bits);

/* The same in two steps, so that the caller can check something else in
 * between: find the path read-only (false: the key has no session), then
 * apply it (nothing else may change the trie in between). When `trusted`
 * (the caller knows the address has a session) the IPv6 leaf's key is not
 * read back to check it: one cache miss fewer. */
struct audit_mpath {
	uint32_t *pref[17]; /* where each node on the path is referenced */
	uint32_t *cnt[17];  /* the count of each slot taken */
	unsigned depth;
	unsigned idx;       /* the leaf's slot in the last node */
};
bool audit_mtrie_find(struct audit_mtrie *t, const uint32_t key[4], unsigned bits,
                      bool trusted, struct audit_mpath *path);
void audit_mtrie_apply_remove(struct audit_mtrie *t, const uint32_t key[4], unsigned bits,
                              const struct audit_mpath *path);
/* Sessions inside key/plen (key masked to plen). */
uint64_t audit_mtrie_count(const struct audit_mtrie *t, const uint32_t key[4],
                           unsigned bits, unsigned plen);
size_t audit_mtrie_bytes(const struct audit_mtrie *t);

/* Visit every block at prefix `plen` with sessions open (one call per block,
 * in address order). Costs a walk over the nodes above that depth. */
typedef void (*audit_live_visit_fn)(void *arg, const uint32_t key[4], uint64_t count);
void audit_mtrie_blocks(const struct audit_mtrie *t, unsigned bits, unsigned plen,
                        audit_live_visit_fn fn, void *arg);

/* One open-addressing table of an exact hash (xhash.c). */
struct audit_xtab {
	uint32_t *slot;  /* cap entries of (words + 2) uint32: key, count, count0 */
	uint32_t cap;    /* a power of two, or 0 */
	uint32_t n;      /* entries in use */
};

/* Exact-address hash: the service count and the listener-0 count of each
 * address, inline. Grows and shrinks incrementally (`old` drains into
 * `cur` a few slots per update), so no call rehashes the whole table. */
struct audit_xhash {
	struct audit_xtab cur, old;
	uint32_t mig;    /* next slot of old to move */
	unsigned words;  /* key words: 1 (IPv4) or 4 (IPv6) */
};

void audit_xhash_init(struct audit_xhash *h, unsigned words);
void audit_xhash_release(struct audit_xhash *h);
/* Make the next audit_xhash_add succeed; false when out of memory. */
bool audit_xhash_reserve(struct audit_xhash *h);
/* Start loading key's slot into the cache (the caller works meanwhile). */
void audit_xhash_prefetch(const struct audit_xhash *h, const uint32_t *key);
/* One more session (on listener 0 too when l0), after a reserve. */
void audit_xhash_add(struct audit_xhash *h, const uint32_t *key, bool l0);
/* A new key with `count` sessions at once (not on listener 0); false when
 * out of memory or the key is there already. */
bool audit_xhash_load(struct audit_xhash *h, const uint32_t *key, uint32_t count);
/* One session fewer; false (nothing changed) when the key has none, or none
 * on listener 0 when l0. */
bool audit_xhash_remove(struct audit_xhash *h, const uint32_t *key, bool l0);
/* Sessions of key: all listeners, or listener 0 only. */
uint32_t audit_xhash_get(const struct audit_xhash *h, const uint32_t *key, bool l0);
size_t audit_xhash_bytes(const struct audit_xhash *h);

/* ---- windowed tries (window.c) ---- */

struct audit_wseries {
	unsigned window_s;  /* W */
	unsigned nwin;      /* N */
	unsigned ncounters; /* counters per window */
	uint64_t window_ms; /* W * 1000 */
	size_t off;         /* byte offset of this series' data in a node */
};

struct audit_wtrie;

/* A trie holding `nseries` series per address, capped at `cap` addresses. */
/* A trie keeping at most `cap` addresses (the least recently seen is
 * evicted for a new one); each costs two nodes of audit_wtrie_node_bytes. */
struct audit_wtrie *audit_wtrie_create(const struct audit_wseries *series,
                                       size_t nseries, size_t cap);
size_t audit_wtrie_node_bytes(const struct audit_wseries *series, size_t nseries);
void audit_wtrie_destroy(struct audit_wtrie *t);
/* Add `amount` to counter `c` of every series for `a`, in the window of
 * now_ms. Evicts the least recently seen address at the cap. False on OOM. */
bool audit_wtrie_add(struct audit_wtrie *t, const struct ip_addr *a,
                     unsigned c, uint64_t amount, uint64_t now_ms);
/* Counter c of series s, window w (0 = current at now_ms), summed over the
 * block net/plen. */
uint64_t audit_wtrie_window(const struct audit_wtrie *t, size_t s, unsigned c,
                            const struct ip_addr *net, unsigned plen,
                            unsigned w, uint64_t now_ms);
/* Sum of windows start..end of that counter over the block. */
uint64_t audit_wtrie_sum(const struct audit_wtrie *t, size_t s, unsigned c,
                         const struct ip_addr *net, unsigned plen,
                         unsigned start, unsigned end, uint64_t now_ms);
/* Evict up to `budget` addresses whose every window has expired (LRU tail
 * first); returns how many entries were looked at. */
unsigned audit_wtrie_expire(struct audit_wtrie *t, uint64_t now_ms, unsigned budget);
size_t audit_wtrie_tracked(const struct audit_wtrie *t);
uint64_t audit_wtrie_evictions(const struct audit_wtrie *t);
size_t audit_wtrie_bytes(const struct audit_wtrie *t);

#endif
