/*
 * live: the live gauge, a path-compressed binary trie with a session count
 * in every node.
 *
 * Each node is a block (key/plen) and holds the number of sessions open from
 * addresses inside it; a leaf (plen 32 or 128) is one address. Paths with no
 * branching are skipped (a node's children differ at bit `plen`), so there
 * are at most 2n-1 nodes for n addresses and a walk takes at most one step
 * per branching point (about log2(n) for spread-out addresses, never more
 * than 33 or 129).
 *
 *   add     walk down, +1 at each node; at most one split (2 new nodes)
 *   remove  walk down, -1 at each node; a leaf reaching 0 is freed with its
 *           parent (whose other child takes its place)
 *   count   walk down to the first node whose plen >= the query's: its count
 *
 * Invariants: every internal node has two children and its count is the sum
 * of theirs; no node has count 0 (empty subtrees are freed at once); keys
 * are masked to plen.
 */
#include "audit/audit_int.h"

#include <stdlib.h>

static inline struct audit_live_node *node_at(const struct audit_pool *p, uint32_t i)
{
	return (struct audit_live_node *)(void *)(p->chunks[i >> AUDIT_CHUNK_SHIFT] +
	       (size_t)(i & (AUDIT_CHUNK_NODES - 1)) * sizeof(struct audit_live_node));
}

static uint32_t new_leaf(struct audit_pool *pool, const uint32_t key[4], unsigned bits)
{
	uint32_t i = audit_pool_alloc(pool);
	struct audit_live_node *l = node_at(pool, i);
	for (unsigned w = 0; w < 4; w++)
		l->key[w] = key[w];
	l->plen = bits;
	l->count = 1;
	return i;
}

void audit_live_trie_add(struct audit_pool *pool, struct audit_live_trie *t,
                         const uint32_t key[4], unsigned bits)
{
	uint32_t *slot = &t->root[bits == 128];

	while (*slot != 0) {
		struct audit_live_node *n = node_at(pool, *slot);
		unsigned c = audit_key_cpl(key, n->key, n->plen);
		if (c < n->plen) {
			/* key leaves n's block at bit c: a new node for the
			 * common block gets n and a new leaf as children. */
			uint32_t mi = audit_pool_alloc(pool);
			uint32_t li = new_leaf(pool, key, bits);
			struct audit_live_node *m = node_at(pool, mi);
			n = node_at(pool, *slot);
			for (unsigned w = 0; w < 4; w++)
				m->key[w] = key[w];
			audit_key_mask(m->key, c);
			m->plen = c;
			m->count = n->count + 1;
			unsigned b = audit_key_bit(key, c);
			m->child[b] = li;
			m->child[!b] = *slot;
			*slot = mi;
			t->leaves++;
			return;
		}
		n->count++;
		if (n->plen == bits)
			return; /* the address already had sessions */
		slot = &n->child[audit_key_bit(key, n->plen)];
	}
	*slot = new_leaf(pool, key, bits);
	t->leaves++;
}

void audit_live_trie_remove(struct audit_pool *pool, struct audit_live_trie *t,
                            const uint32_t key[4], unsigned bits)
{
	uint32_t *path[AUDIT_MAX_DEPTH];
	unsigned depth = 0;
	uint32_t *slot = &t->root[bits == 128];

	/* First find the leaf without touching anything, so that a remove
	 * without its add is caught before the counts are corrupted. */
	for (;;) {
		if (*slot == 0)
			abort(); /* remove without add: broken pairing */
		struct audit_live_node *n = node_at(pool, *slot);
		if (audit_key_cpl(key, n->key, n->plen) < n->plen)
			abort();
		path[depth++] = slot;
		if (n->plen == bits)
			break;
		slot = &n->child[audit_key_bit(key, n->plen)];
	}
	for (unsigned d = 0; d < depth; d++)
		node_at(pool, *path[d])->count--;

	uint32_t leaf = *path[depth - 1];
	if (node_at(pool, leaf)->count != 0)
		return;
	t->leaves--;
	if (depth == 1) {
		*path[0] = 0;
		audit_pool_free(pool, leaf);
		return;
	}
	uint32_t parent = *path[depth - 2];
	struct audit_live_node *p = node_at(pool, parent);
	*path[depth - 2] = p->child[0] == leaf ? p->child[1] : p->child[0];
	audit_pool_free(pool, leaf);
	audit_pool_free(pool, parent);
}

uint64_t audit_live_trie_count(const struct audit_pool *pool,
                               const struct audit_live_trie *t,
                               const uint32_t key[4], unsigned bits,
                               unsigned plen)
{
	uint32_t i = t->root[bits == 128];

	if (i == 0)
		return 0;
	/* Steer by one bit per node and compare the key only once, at the end:
	 * a node's key extends its ancestors', so a mismatch above shows there
	 * too (the PATRICIA trick). */
	const struct audit_live_node *n = node_at(pool, i);
	while (n->plen < plen)
		n = node_at(pool, n->child[audit_key_bit(key, n->plen)]);
	return audit_key_cpl(key, n->key, plen) == plen ? n->count : 0;
}

void audit_live_trie_blocks(const struct audit_pool *pool,
                            const struct audit_live_trie *t, unsigned bits,
                            unsigned plen, audit_live_visit_fn fn, void *arg)
{
	uint32_t stack[2 * AUDIT_MAX_DEPTH];
	unsigned sp = 0;
	uint32_t root = t->root[bits == 128];

	if (root != 0)
		stack[sp++] = root;
	while (sp > 0) {
		const struct audit_live_node *n = node_at(pool, stack[--sp]);
		if (n->plen >= plen) {
			uint32_t k[4] = {n->key[0], n->key[1], n->key[2], n->key[3]};
			audit_key_mask(k, plen);
			fn(arg, k, n->count);
			continue;
		}
		/* Push the 1 side first so the 0 side comes out first. */
		stack[sp++] = n->child[1];
		stack[sp++] = n->child[0];
	}
}
