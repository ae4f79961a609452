/*
 * window: windowed counters per address, with aggregates for any CIDR block.
 *
 * A wtrie has the same shape as the live gauge (a path-compressed binary
 * trie, separate IPv4 and IPv6 roots), but every node carries, for each of
 * its series, N windows x C counters and the window epoch (now / W) its
 * slot 0 was written in. A leaf holds one address's counts; an internal node
 * holds the element-wise sum of its two children, so a block query at any
 * prefix is a walk to one node.
 *
 * Rollover is lazy: nothing is ever swept on a timer. A node written in
 * epoch e and read in epoch e+d simply has its windows read d places older
 * (and shifted in place the next time it is written). Because the shift
 * depends only on the epochs, a parent and its children stay consistent
 * whenever each was last touched.
 *
 *   add     walk root->leaf: shift and add at each node (O(depth x N x C)),
 *           at most one split (2 new nodes; the new parent copies the
 *           subtree it adopts); the leaf moves to the head of the LRU list
 *   query   walk to the block's node, read its windows: O(depth + N)
 *   evict   the LRU tail (least recently written address) is removed: walk
 *           root->leaf subtracting its counts from every ancestor, then the
 *           leaf and its parent are freed: O(depth x N x C)
 *   expire  (from audit_tick) evicts, from the LRU tail, addresses whose
 *           every window has passed; stops at the first live one or after
 *           its budget, so one call never walks the whole table.
 *
 * Invariants: internal nodes have two children and hold the sum of their
 * leaves (after shifting to a common epoch); leaves are exactly the LRU
 * list; the number of leaves never exceeds the cap.
 */
#include "audit/audit_int.h"

#include <stdlib.h>
#include <string.h>

#define WMAX_SERIES 64

struct wnode {
	uint32_t key[4];
	uint32_t child[2];
	uint32_t lru_prev, lru_next; /* leaves only; toward head / tail */
	uint32_t plen;
	uint32_t pad;
	/* then, per series: uint64_t epoch; uint64_t count[N][C]; */
};

struct audit_wtrie {
	struct audit_wseries series[WMAX_SERIES];
	size_t nseries;
	struct audit_pool pool;
	uint32_t root[2];
	uint32_t lru_head, lru_tail; /* head: most recently written */
	size_t nleaves, cap;
	uint64_t evictions;
};

static inline struct wnode *wn(const struct audit_wtrie *t, uint32_t i)
{
	return (struct wnode *)audit_pool_at(&t->pool, i);
}

static inline uint64_t *w_epoch(const struct audit_wtrie *t, struct wnode *n, size_t s)
{
	return (uint64_t *)(void *)((unsigned char *)n + t->series[s].off);
}

static inline uint64_t *w_counts(const struct audit_wtrie *t, struct wnode *n, size_t s)
{
	return w_epoch(t, n, s) + 1;
}

static void epochs(const struct audit_wtrie *t, uint64_t now_ms, uint64_t *cur)
{
	for (size_t s = 0; s < t->nseries; s++)
		cur[s] = now_ms / t->series[s].window_ms;
}

/* Shift node n's windows so that slot 0 is epoch cur[s]. A clock that went
 * backwards (cur < epoch) counts into the node's current window. */
static void roll(const struct audit_wtrie *t, struct wnode *n, const uint64_t *cur)
{
	for (size_t s = 0; s < t->nseries; s++) {
		const struct audit_wseries *se = &t->series[s];
		uint64_t *ep = w_epoch(t, n, s), *c = ep + 1;
		if (cur[s] <= *ep)
			continue;
		uint64_t d = cur[s] - *ep;
		size_t per = se->ncounters, total = (size_t)se->nwin * per;
		if (d >= se->nwin) {
			memset(c, 0, total * sizeof *c);
		} else {
			memmove(c + d * per, c, (total - d * per) * sizeof *c);
			memset(c, 0, d * per * sizeof *c);
		}
		*ep = cur[s];
	}
}

/* Window w (0 = the one of epoch cur) of counter k in series s, read
 * without writing. */
static uint64_t read_window(const struct audit_wtrie *t, struct wnode *n, size_t s,
                            unsigned k, unsigned w, uint64_t cur)
{
	const struct audit_wseries *se = &t->series[s];
	uint64_t ep = *w_epoch(t, n, s);
	uint64_t d = cur > ep ? cur - ep : 0;
	if (w < d || w - d >= se->nwin)
		return 0;
	return w_counts(t, n, s)[(w - d) * se->ncounters + k];
}

static void add_counts(const struct audit_wtrie *t, struct wnode *n, unsigned k,
                       uint64_t amount)
{
	/* counts saturate at 2^64-1 (a script's AMOUNT can be that big):
	 * never wrap round to a small number */
	for (size_t s = 0; s < t->nseries; s++) {
		uint64_t *c = &w_counts(t, n, s)[k];
		if (__builtin_add_overflow(*c, amount, c))
			*c = UINT64_MAX;
	}
}

static void lru_unlink(struct audit_wtrie *t, uint32_t i)
{
	struct wnode *n = wn(t, i);
	if (n->lru_prev)
		wn(t, n->lru_prev)->lru_next = n->lru_next;
	else
		t->lru_head = n->lru_next;
	if (n->lru_next)
		wn(t, n->lru_next)->lru_prev = n->lru_prev;
	else
		t->lru_tail = n->lru_prev;
	n->lru_prev = n->lru_next = 0;
}

static void lru_push_head(struct audit_wtrie *t, uint32_t i)
{
	struct wnode *n = wn(t, i);
	n->lru_prev = 0;
	n->lru_next = t->lru_head;
	if (t->lru_head)
		wn(t, t->lru_head)->lru_prev = i;
	else
		t->lru_tail = i;
	t->lru_head = i;
}

/* Bytes of one series' part of a node: its epoch, then its counters. */
static size_t series_bytes(const struct audit_wseries *se)
{
	return sizeof(uint64_t) * (1 + (size_t)se->nwin * se->ncounters);
}

size_t audit_wtrie_node_bytes(const struct audit_wseries *series, size_t nseries)
{
	size_t n = sizeof(struct wnode);
	for (size_t s = 0; s < nseries; s++)
		n += series_bytes(&series[s]);
	return n;
}

struct audit_wtrie *audit_wtrie_create(const struct audit_wseries *series,
                                       size_t nseries, size_t cap)
{
	if (nseries == 0 || nseries > WMAX_SERIES || cap == 0)
		return NULL;
	struct audit_wtrie *t = calloc(1, sizeof *t);
	if (t == NULL)
		return NULL;
	size_t off = sizeof(struct wnode);
	for (size_t s = 0; s < nseries; s++) {
		t->series[s] = series[s];
		t->series[s].window_ms = (uint64_t)series[s].window_s * 1000;
		t->series[s].off = off;
		off += series_bytes(&series[s]);
	}
	t->nseries = nseries;
	t->cap = cap;
	/* chunks of about 64 KiB whatever the node size (a node of 1,000
	 * windows is 24 KiB: 4,096 of them a chunk was 98 MB for one address) */
	unsigned shift = AUDIT_CHUNK_SHIFT;
	while (shift > 2 && (off << shift) > ((size_t)64 << 10))
		shift--;
	audit_pool_init_shift(&t->pool, off, shift);
	return t;
}

void audit_wtrie_destroy(struct audit_wtrie *t)
{
	if (t == NULL)
		return;
	audit_pool_release(&t->pool);
	free(t);
}

/* Remove leaf `li`: subtract its counts from its ancestors, free it and its
 * parent. */
static void evict_leaf(struct audit_wtrie *t, uint32_t li, const uint64_t *cur)
{
	uint32_t *path[AUDIT_MAX_DEPTH];
	unsigned depth = 0;
	struct wnode *leaf = wn(t, li);
	unsigned bits = leaf->plen;
	uint32_t *slot = &t->root[bits == 128];

	roll(t, leaf, cur);
	while (*slot != li) {
		if (*slot == 0)
			abort(); /* the leaf is not where its key says */
		struct wnode *n = wn(t, *slot);
		if (n->plen >= bits)
			abort();
		roll(t, n, cur);
		for (size_t s = 0; s < t->nseries; s++) {
			uint64_t *a = w_counts(t, n, s), *b = w_counts(t, leaf, s);
			size_t total = (size_t)t->series[s].nwin * t->series[s].ncounters;
			for (size_t j = 0; j < total; j++)
				/* a saturated sum stays saturated (its true value is
				 * unknown) until its window rolls out */
				a[j] = a[j] == UINT64_MAX ? a[j] : a[j] > b[j] ? a[j] - b[j] : 0;
		}
		path[depth++] = slot;
		slot = &n->child[audit_key_bit(leaf->key, n->plen)];
	}
	lru_unlink(t, li);
	t->nleaves--;
	if (depth == 0) {
		*slot = 0;
		audit_pool_free(&t->pool, li);
		return;
	}
	uint32_t pi = *path[depth - 1];
	struct wnode *p = wn(t, pi);
	*path[depth - 1] = p->child[0] == li ? p->child[1] : p->child[0];
	audit_pool_free(&t->pool, li);
	audit_pool_free(&t->pool, pi);
}

static uint32_t find_node(const struct audit_wtrie *t, const uint32_t *key,
                          unsigned bits, unsigned plen)
{
	uint32_t i = t->root[bits == 128];

	while (i != 0) {
		struct wnode *n = wn(t, i);
		if (n->plen >= plen)
			return audit_key_cpl(key, n->key, plen) == plen ? i : 0;
		if (audit_key_cpl(key, n->key, n->plen) < n->plen)
			return 0;
		i = n->child[audit_key_bit(key, n->plen)];
	}
	return 0;
}

static uint32_t new_wleaf(struct audit_wtrie *t, const uint32_t *key, unsigned bits,
                          const uint64_t *cur, unsigned k, uint64_t amount)
{
	uint32_t li = audit_pool_alloc(&t->pool);
	struct wnode *l = wn(t, li);
	memcpy(l->key, key, sizeof l->key);
	l->plen = bits;
	for (size_t s = 0; s < t->nseries; s++)
		*w_epoch(t, l, s) = cur[s];
	add_counts(t, l, k, amount);
	lru_push_head(t, li);
	t->nleaves++;
	return li;
}

bool audit_wtrie_add(struct audit_wtrie *t, const struct ip_addr *a,
                     unsigned k, uint64_t amount, uint64_t now_ms)
{
	uint64_t cur[WMAX_SERIES];
	uint32_t key[4];
	unsigned bits = audit_key_from(a, key);

	epochs(t, now_ms, cur);
	uint32_t leaf = find_node(t, key, bits, bits);
	if (leaf == 0) {
		if (t->nleaves >= t->cap && t->lru_tail != 0) {
			evict_leaf(t, t->lru_tail, cur);
			t->evictions++;
		}
		if (!audit_pool_reserve(&t->pool, 2))
			return false;
	}

	uint32_t *slot = &t->root[bits == 128];
	while (*slot != 0) {
		struct wnode *n = wn(t, *slot);
		unsigned c = audit_key_cpl(key, n->key, n->plen);
		if (c < n->plen) {
			uint32_t mi = audit_pool_alloc(&t->pool);
			struct wnode *m = wn(t, mi);
			roll(t, n, cur);
			memcpy(m, n, t->pool.elem);
			memcpy(m->key, key, sizeof m->key);
			audit_key_mask(m->key, c);
			m->plen = c;
			m->lru_prev = m->lru_next = 0;
			add_counts(t, m, k, amount);
			uint32_t li = new_wleaf(t, key, bits, cur, k, amount);
			unsigned b = audit_key_bit(key, c);
			m->child[b] = li;
			m->child[!b] = *slot;
			*slot = mi;
			return true;
		}
		roll(t, n, cur);
		add_counts(t, n, k, amount);
		if (n->plen == bits) {
			lru_unlink(t, *slot);
			lru_push_head(t, *slot);
			return true;
		}
		slot = &n->child[audit_key_bit(key, n->plen)];
	}
	*slot = new_wleaf(t, key, bits, cur, k, amount);
	return true;
}

uint64_t audit_wtrie_sum(const struct audit_wtrie *t, size_t s, unsigned k,
                         const struct ip_addr *net, unsigned plen,
                         unsigned start, unsigned end, uint64_t now_ms)
{
	uint32_t key[4];
	unsigned bits = audit_key_from(net, key);

	if (s >= t->nseries || plen > bits)
		return 0;
	audit_key_mask(key, plen);
	uint32_t i = find_node(t, key, bits, plen);
	if (i == 0)
		return 0;
	uint64_t cur = now_ms / t->series[s].window_ms, sum = 0;
	for (unsigned w = start; w <= end && w < t->series[s].nwin; w++)
		if (__builtin_add_overflow(sum, read_window(t, wn(t, i), s, k, w, cur), &sum))
			return UINT64_MAX;
	return sum;
}

uint64_t audit_wtrie_window(const struct audit_wtrie *t, size_t s, unsigned k,
                            const struct ip_addr *net, unsigned plen,
                            unsigned w, uint64_t now_ms)
{
	return audit_wtrie_sum(t, s, k, net, plen, w, w, now_ms);
}

unsigned audit_wtrie_expire(struct audit_wtrie *t, uint64_t now_ms, unsigned budget)
{
	uint64_t cur[WMAX_SERIES];
	unsigned looked = 0;

	epochs(t, now_ms, cur);
	while (looked < budget && t->lru_tail != 0) {
		struct wnode *n = wn(t, t->lru_tail);
		looked++;
		for (size_t s = 0; s < t->nseries; s++) {
			uint64_t ep = *w_epoch(t, n, s);
			if (cur[s] < ep || cur[s] - ep < t->series[s].nwin)
				return looked; /* still has data: so has all before it */
		}
		evict_leaf(t, t->lru_tail, cur);
	}
	return looked;
}

size_t audit_wtrie_tracked(const struct audit_wtrie *t)
{
	return t->nleaves;
}

uint64_t audit_wtrie_evictions(const struct audit_wtrie *t)
{
	return t->evictions;
}

size_t audit_wtrie_bytes(const struct audit_wtrie *t)
{
	return sizeof *t + audit_pool_bytes(&t->pool);
}
