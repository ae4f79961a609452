/*
 * live: one gauge trie, a stride-8 path-compressed multibit trie whose
 * nodes keep each child's session count inline.
 *
 * A node is a block key/plen with plen a multiple of 8 (the root is /0). It
 * has one slot per non-empty child block key.b/(plen+8), b = the address
 * byte at plen; a slot holds the number of sessions inside that block and a
 * ref to what is below it:
 *   - a leaf: the one address with sessions in that block. IPv4 leaves live
 *     in the ref itself (the address's low 24 bits; the top byte is the
 *     node's, or the slot byte at the root); IPv6 leaves are 16-byte keys in
 *     their own pool;
 *   - a node, whose plen may be any multiple of 8 past plen+8 (path
 *     compression: bytes shared by every address below are skipped).
 * So a count at /N walks the nodes above N (one per 8 bits that actually
 * branch) and then reads one slot, or sums the slots of one node whose byte
 * matches the sub-stride bits (at most 128 adjacent counts); it never
 * touches a child to learn its count.
 *
 * Node sizes adapt (ART-style): sparse nodes of 2, 4, 8, ..., 128 slots in
 * no order (a byte array searched 16 at a time with SSE2; insert appends,
 * delete moves the last slot into the hole, so neither shifts anything),
 * and a dense node of 256 slots indexed by the byte. The root is always
 * dense. Nodes are whole cache lines; a slot (count and ref) is 8 bytes on
 * one line, so a step down touches the node's first line(s) (header and
 * bytes) and the slot's line.
 *
 *   add     walk down, +1 in each slot on the path; then one of: a new slot
 *           (the node may move to the next size class), a split of a leaf
 *           or of a compressed edge (one new 2-slot node), or nothing (the
 *           address already had sessions)
 *   remove  walk down read-only (a key with no session changes nothing),
 *           then -1 in each slot; a leaf reaching 0 leaves its node; a node
 *           left with one child is replaced by that child; a node a quarter
 *           full moves to a smaller class if memory allows
 *   count   as above
 *
 * Invariants: every non-root node has at least two slots; a slot's count is
 * the sum of the counts below it and never 0; node keys are masked to plen;
 * a sparse node's bytes are distinct.
 */
#include "audit/audit_int.h"

#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define LEAF 0x80000000u
#define REF_CLASS_SHIFT 28
#define REF_INDEX_MASK 0x0fffffffu
#define MT_MAX_DEPTH 17 /* nodes at /0, /8, ..., /120, plus the leaf slot */

struct mnode {
	uint32_t key[4];
	uint8_t plen;
	uint8_t cls;
	uint16_t n; /* slots in use */
	/* sparse: uint8_t byte[cap] (padded to 4), struct mslot slot[cap],
	 *         in no order: slot i is the child byte[i];
	 * dense:  struct mslot slot[256], indexed by byte, count 0 = empty. */
};

/* A child: its session count and what is below it, on one cache line. */
struct mslot {
	uint32_t count;
	uint32_t ref;
};

static inline unsigned cls_cap(unsigned cls)
{
	return cls == AUDIT_MT_DENSE ? 256u : 2u << cls;
}

static inline size_t cls_bytes_len(unsigned cls)
{
	unsigned cap = cls_cap(cls);
	return cls == AUDIT_MT_DENSE ? 0 : (cap < 4 ? 4 : cap);
}

/* Whole cache lines, so that a node starts a line (chunks are aligned). */
static inline size_t cls_size(unsigned cls)
{
	size_t sz = sizeof(struct mnode) + cls_bytes_len(cls) + cls_cap(cls) * 8u;
	return (sz + 63) & ~(size_t)63;
}

static inline uint8_t *node_bytes(struct mnode *n)
{
	return (uint8_t *)(n + 1);
}

static inline struct mslot *node_slots(struct mnode *n)
{
	return (struct mslot *)(void *)((unsigned char *)(n + 1) + cls_bytes_len(n->cls));
}

static inline struct mnode *node_at(const struct audit_mtrie *t, uint32_t ref)
{
	return (struct mnode *)audit_pool_at(&t->nodes[ref >> REF_CLASS_SHIFT],
	                                     ref & REF_INDEX_MASK);
}

static inline unsigned key_byte(const uint32_t key[4], unsigned i)
{
	return (key[i >> 2] >> (24 - 8 * (i & 3))) & 0xffu;
}

static inline void key_set_byte(uint32_t key[4], unsigned i, unsigned b)
{
	unsigned sh = 24 - 8 * (i & 3);
	key[i >> 2] = (key[i >> 2] & ~(0xffu << sh)) | (uint32_t)b << sh;
}

/* The slot index for byte b, or -1. */
static inline int find(struct mnode *n, unsigned b)
{
	if (n->cls == AUDIT_MT_DENSE)
		return node_slots(n)[b].count ? (int)b : -1;
	const uint8_t *by = node_bytes(n);
	unsigned cnt = n->n;
#ifdef __SSE2__
	if (n->cls >= 3) { /* 16 bytes at a time; the array is cap >= 16 long */
		__m128i want = _mm_set1_epi8((char)b);
		for (unsigned i = 0; i < cnt; i += 16) {
			__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(by + i));
			unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, want));
			if (cnt - i < 16)
				m &= (1u << (cnt - i)) - 1;
			if (m != 0)
				return (int)(i + (unsigned)__builtin_ctz(m));
		}
		return -1;
	}
#endif
	for (unsigned i = 0; i < cnt; i++)
		if (by[i] == b)
			return (int)i;
	return -1;
}

/* The full key of a leaf found in node n's slot for byte b. */
static void leaf_key(const struct audit_mtrie *t, unsigned v6, const struct mnode *n,
                     unsigned b, uint32_t ref, uint32_t out[4])
{
	if (v6) {
		memcpy(out, audit_pool_at(&t->leaves, ref & ~LEAF), 16);
		return;
	}
	uint32_t top = n->plen == 0 ? (uint32_t)b << 24 : (n->key[0] & 0xff000000u);
	out[0] = top | (ref & 0x00ffffffu);
	out[1] = out[2] = out[3] = 0;
}

static uint32_t make_leaf(struct audit_mtrie *t, unsigned v6, const uint32_t key[4])
{
	if (!v6)
		return LEAF | (key[0] & 0x00ffffffu);
	uint32_t i = audit_pool_alloc(&t->leaves);
	memcpy(audit_pool_at(&t->leaves, i), key, 16);
	return LEAF | i;
}

static void free_leaf(struct audit_mtrie *t, unsigned v6, uint32_t ref)
{
	if (v6)
		audit_pool_free(&t->leaves, ref & ~LEAF);
}

static uint32_t new_node(struct audit_mtrie *t, unsigned cls, const uint32_t key[4],
                         unsigned plen)
{
	uint32_t i = audit_pool_alloc(&t->nodes[cls]);
	uint32_t ref = (uint32_t)cls << REF_CLASS_SHIFT | i;
	struct mnode *n = node_at(t, ref);
	memcpy(n->key, key, sizeof n->key);
	audit_key_mask(n->key, plen);
	n->plen = (uint8_t)plen;
	n->cls = (uint8_t)cls;
	return ref;
}

static void free_node(struct audit_mtrie *t, uint32_t ref)
{
	audit_pool_free(&t->nodes[ref >> REF_CLASS_SHIFT], ref & REF_INDEX_MASK);
}

/* Copy node *pref into a node of class cls (its slots must fit), free the
 * old one and point *pref at the copy. The caller reserved the class. */
static struct mnode *move_node(struct audit_mtrie *t, uint32_t *pref, unsigned cls)
{
	struct mnode *o = node_at(t, *pref);
	uint32_t ref = new_node(t, cls, o->key, o->plen);
	struct mnode *n = node_at(t, ref);
	struct mslot *os = node_slots(o), *ns = node_slots(n);
	uint8_t *nb = node_bytes(n);
	unsigned k = 0;

	if (o->cls == AUDIT_MT_DENSE) {
		for (unsigned b = 0; b < 256; b++)
			if (os[b].count) {
				nb[k] = (uint8_t)b;
				ns[k++] = os[b];
			}
	} else if (cls == AUDIT_MT_DENSE) {
		for (unsigned i = 0; i < o->n; i++)
			ns[node_bytes(o)[i]] = os[i];
		k = o->n;
	} else {
		memcpy(nb, node_bytes(o), o->n);
		memcpy(ns, os, o->n * sizeof *ns);
		k = o->n;
	}
	n->n = (uint16_t)k;
	free_node(t, *pref);
	*pref = ref;
	return n;
}

/* Add a slot (b, count 1, ref) to node *pref, growing it if full. */
static void insert_slot(struct audit_mtrie *t, uint32_t *pref, unsigned b, uint32_t ref)
{
	struct mnode *n = node_at(t, *pref);
	if (n->cls != AUDIT_MT_DENSE && n->n == cls_cap(n->cls))
		n = move_node(t, pref, n->cls + 1u);
	unsigned i = n->cls == AUDIT_MT_DENSE ? b : n->n;
	if (n->cls != AUDIT_MT_DENSE)
		node_bytes(n)[i] = (uint8_t)b;
	node_slots(n)[i].count = 1;
	node_slots(n)[i].ref = ref;
	n->n++;
}

/* Empty slot i; a sparse node's last slot fills the hole. */
static void delete_slot(struct mnode *n, unsigned i)
{
	struct mslot *sl = node_slots(n);
	n->n--;
	if (n->cls == AUDIT_MT_DENSE) {
		sl[i] = (struct mslot){0};
		return;
	}
	uint8_t *by = node_bytes(n);
	by[i] = by[n->n];
	sl[i] = sl[n->n];
}

/* A 2-slot node at plen r holding (b1, c1, ref1) and (b2, 1, ref2). */
static uint32_t split(struct audit_mtrie *t, const uint32_t key[4], unsigned r,
                      unsigned b1, uint32_t c1, uint32_t ref1, unsigned b2, uint32_t ref2)
{
	uint32_t mref = new_node(t, 0, key, r);
	struct mnode *m = node_at(t, mref);
	node_bytes(m)[0] = (uint8_t)b1;
	node_slots(m)[0].count = c1;
	node_slots(m)[0].ref = ref1;
	node_bytes(m)[1] = (uint8_t)b2;
	node_slots(m)[1].count = 1;
	node_slots(m)[1].ref = ref2;
	m->n = 2;
	return mref;
}

void audit_mtrie_init(struct audit_mtrie *t)
{
	memset(t, 0, sizeof *t);
	for (unsigned c = 0; c < AUDIT_MT_CLASSES; c++) {
		/* About 32 KiB per chunk: small tries stay small. */
		size_t sz = cls_size(c);
		unsigned shift = 2;
		while (shift < 12 && (sz << (shift + 1)) <= 32768)
			shift++;
		audit_pool_init_shift(&t->nodes[c], sz, shift);
		audit_pool_use_huge(&t->nodes[c]);
	}
	audit_pool_init_shift(&t->leaves, 16, 11);
	audit_pool_use_huge(&t->leaves);
}

void audit_mtrie_release(struct audit_mtrie *t)
{
	for (unsigned c = 0; c < AUDIT_MT_CLASSES; c++)
		audit_pool_release(&t->nodes[c]);
	audit_pool_release(&t->leaves);
	audit_mtrie_init(t);
}

static bool reserve1(struct audit_pool *p)
{
	if (p->nfree == 0 && p->next >= REF_INDEX_MASK)
		return false; /* the ref has 28 bits of index */
	return audit_pool_reserve(p, 1);
}

bool audit_mtrie_reserve(struct audit_mtrie *t)
{
	/* An add allocates at most one node (a split's, a grown node's or the
	 * root) and one IPv6 leaf. */
	for (unsigned c = 0; c < AUDIT_MT_CLASSES; c++)
		if (!reserve1(&t->nodes[c]))
			return false;
	return reserve1(&t->leaves);
}

bool audit_mtrie_add(struct audit_mtrie *t, const uint32_t key[4], unsigned bits)
{
	unsigned v6 = bits == 128;
	uint32_t *pref = &t->root[v6];

	if (t->total[v6] >= UINT32_MAX - 1)
		return false; /* slot counts are 32-bit */
	if (*pref == 0) {
		static const uint32_t zero[4];
		*pref = new_node(t, AUDIT_MT_DENSE, zero, 0);
	}
	t->total[v6]++;
	for (;;) {
		struct mnode *n = node_at(t, *pref);
		unsigned b = key_byte(key, n->plen >> 3);
		int i = find(n, b);
		if (i < 0) {
			insert_slot(t, pref, b, make_leaf(t, v6, key));
			t->addrs++;
			return true;
		}
		uint32_t *cnt = &node_slots(n)[i].count, *sref = &node_slots(n)[i].ref;
		(*cnt)++;
		if (*sref & LEAF) {
			uint32_t lk[4];
			leaf_key(t, v6, n, b, *sref, lk);
			unsigned c = audit_key_cpl(key, lk, bits);
			if (c == bits)
				return true; /* the address already had sessions */
			unsigned r = c & ~7u;
			/* An IPv4 leaf's ref holds its low 24 bits and r >= 8,
			 * so the old ref stays valid one level down. */
			*sref = split(t, key, r, key_byte(lk, r >> 3), *cnt - 1, *sref,
			              key_byte(key, r >> 3), make_leaf(t, v6, key));
			t->addrs++;
			return true;
		}
		struct mnode *ch = node_at(t, *sref);
		unsigned q = ch->plen;
		unsigned c = audit_key_cpl(key, ch->key, q);
		if (c < q) {
			/* key leaves the compressed edge at bit c */
			unsigned r = c & ~7u;
			*sref = split(t, key, r, key_byte(ch->key, r >> 3), *cnt - 1, *sref,
			              key_byte(key, r >> 3), make_leaf(t, v6, key));
			t->addrs++;
			return true;
		}
		pref = sref;
	}
}

bool audit_mtrie_find(struct audit_mtrie *t, const uint32_t key[4], unsigned bits,
                      bool trusted, struct audit_mpath *path)
{
	unsigned v6 = bits == 128;
	uint32_t *pref = &t->root[v6];

	path->depth = 0;
	if (*pref == 0)
		return false;
	for (;;) {
		struct mnode *n = node_at(t, *pref);
		unsigned b = key_byte(key, n->plen >> 3);
		int i = find(n, b);
		if (i < 0)
			return false;
		uint32_t sref = node_slots(n)[i].ref;
		path->pref[path->depth] = pref;
		path->cnt[path->depth++] = &node_slots(n)[i].count;
		path->idx = (unsigned)i;
		if (sref & LEAF) {
			uint32_t lk[4];
			if (trusted && v6)
				return true;
			leaf_key(t, v6, n, b, sref, lk);
			return audit_key_cpl(key, lk, bits) == bits;
		}
		struct mnode *ch = node_at(t, sref);
		if (audit_key_cpl(key, ch->key, ch->plen) < ch->plen)
			return false;
		pref = &node_slots(n)[i].ref;
	}
}

bool audit_mtrie_remove(struct audit_mtrie *t, const uint32_t key[4], unsigned bits)
{
	struct audit_mpath path;
	if (!audit_mtrie_find(t, key, bits, false, &path))
		return false;
	audit_mtrie_apply_remove(t, key, bits, &path);
	return true;
}

void audit_mtrie_apply_remove(struct audit_mtrie *t, const uint32_t key[4], unsigned bits,
                              const struct audit_mpath *path)
{
	unsigned v6 = bits == 128, depth = path->depth, idx = path->idx;
	uint32_t *const *prefs = path->pref, *const *cnts = path->cnt;
	uint32_t *pref;

	(void)key;
	t->total[v6]--;
	for (unsigned d = 0; d < depth; d++)
		(*cnts[d])--;
	if (*cnts[depth - 1] != 0)
		return;

	/* The address's last session: its leaf goes. */
	t->addrs--;
	pref = prefs[depth - 1];
	struct mnode *n = node_at(t, *pref);
	free_leaf(t, v6, node_slots(n)[idx].ref);
	delete_slot(n, idx);
	if (depth == 1) { /* n is the root */
		if (n->n == 0) {
			free_node(t, *pref);
			*pref = 0;
			if (t->root[!v6] == 0)
				audit_mtrie_release(t); /* give every chunk back */
		}
		return;
	}
	if (n->n == 1) {
		/* One child left: it takes n's place in the parent's slot,
		 * whose count is already its count. */
		unsigned k = 0;
		if (n->cls == AUDIT_MT_DENSE)
			while (node_slots(n)[k].count == 0)
				k++;
		uint32_t only = node_slots(n)[k].ref;
		free_node(t, *pref);
		*pref = only;
		return;
	}
	/* A quarter full: move down a class, if memory allows (else stay). */
	unsigned cls = n->cls, want = cls;
	if (cls == AUDIT_MT_DENSE && n->n <= 64)
		want = AUDIT_MT_DENSE - 1;
	else if (cls != AUDIT_MT_DENSE && cls > 0 && n->n <= cls_cap(cls) / 4)
		want = cls - 1;
	if (want != cls && reserve1(&t->nodes[want]))
		move_node(t, pref, want);
	return;
}

/* Sum of the slot counts of bytes lo..hi. */
static uint64_t sum_range(struct mnode *n, unsigned lo, unsigned hi)
{
	const struct mslot *sl = node_slots(n);
	uint64_t sum = 0;
	if (n->cls == AUDIT_MT_DENSE) {
		for (unsigned b = lo; b <= hi; b++)
			sum += sl[b].count;
		return sum;
	}
	if (lo == hi) {
		int i = find(n, lo);
		return i < 0 ? 0 : sl[i].count;
	}
	const uint8_t *by = node_bytes(n);
	unsigned cnt = n->n;
#ifdef __SSE2__
	if (n->cls >= 3) {
		/* Match the high bits of 16 bytes at a time and read only the
		 * matching slots' lines: (byte & mask) == lo. */
		uint8_t mask = (uint8_t)~(hi - lo);
		__m128i m8 = _mm_set1_epi8((char)mask), want = _mm_set1_epi8((char)lo);
		for (unsigned i = 0; i < cnt; i += 16) {
			__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(by + i));
			unsigned m = (unsigned)_mm_movemask_epi8(
			        _mm_cmpeq_epi8(_mm_and_si128(v, m8), want));
			if (cnt - i < 16)
				m &= (1u << (cnt - i)) - 1;
			for (; m != 0; m &= m - 1)
				sum += sl[i + (unsigned)__builtin_ctz(m)].count;
		}
		return sum;
	}
#endif
	for (unsigned i = 0; i < cnt; i++)
		if ((unsigned)(by[i] - lo) <= hi - lo)
			sum += sl[i].count;
	return sum;
}

uint64_t audit_mtrie_count(const struct audit_mtrie *t, const uint32_t key[4],
                           unsigned bits, unsigned plen)
{
	unsigned v6 = bits == 128;

	if (t->root[v6] == 0)
		return 0;
	if (plen == 0)
		return t->total[v6];
	struct mnode *n = node_at(t, t->root[v6]);
	for (;;) {
		unsigned p = n->plen;
		unsigned b = key_byte(key, p >> 3);
		if (plen <= p + 8) {
			/* The block is a run of this node's slots. */
			unsigned sub = plen - p;
			unsigned lo = b & (0xff00u >> sub) & 0xffu;
			return sum_range(n, lo, lo | (0xffu >> sub));
		}
		int i = find(n, b);
		if (i < 0)
			return 0;
		uint32_t cnt = node_slots(n)[i].count, sref = node_slots(n)[i].ref;
		if (sref & LEAF) {
			uint32_t lk[4];
			leaf_key(t, v6, n, b, sref, lk);
			return audit_key_cpl(key, lk, plen) == plen ? cnt : 0;
		}
		struct mnode *ch = node_at(t, sref);
		unsigned q = ch->plen;
		if (q >= plen)
			return audit_key_cpl(key, ch->key, plen) == plen ? cnt : 0;
		if (audit_key_cpl(key, ch->key, q) < q)
			return 0;
		n = ch;
	}
}

static void blocks_rec(const struct audit_mtrie *t, unsigned v6, struct mnode *n,
                       unsigned plen, audit_live_visit_fn fn, void *arg)
{
	unsigned p = n->plen, nslots = 0;
	const struct mslot *sl = node_slots(n);
	uint16_t order[256]; /* slot indices in byte order */
	uint8_t byte[256];

	if (n->cls == AUDIT_MT_DENSE) {
		for (unsigned b = 0; b < 256; b++)
			if (sl[b].count) {
				byte[nslots] = (uint8_t)b;
				order[nslots++] = (uint16_t)b;
			}
	} else {
		for (unsigned i = 0; i < n->n; i++) { /* insertion sort, n <= 128 */
			unsigned j = nslots++;
			uint8_t bi = node_bytes(n)[i];
			for (; j > 0 && byte[j - 1] > bi; j--) {
				byte[j] = byte[j - 1];
				order[j] = order[j - 1];
			}
			byte[j] = bi;
			order[j] = (uint16_t)i;
		}
	}
	if (plen <= p + 8) {
		/* Add up runs of slots in one group of the block's bits. */
		unsigned shift = 8 - (plen - p);
		for (unsigned k = 0; k < nslots;) {
			unsigned g = byte[k] >> shift;
			uint64_t sum = 0;
			for (; k < nslots && (unsigned)(byte[k] >> shift) == g; k++)
				sum += sl[order[k]].count;
			uint32_t key[4];
			memcpy(key, n->key, sizeof key);
			key_set_byte(key, p >> 3, g << shift);
			fn(arg, key, sum);
		}
		return;
	}
	for (unsigned k = 0; k < nslots; k++) {
		unsigned i = order[k];
		uint32_t key[4];
		if (sl[i].ref & LEAF) {
			leaf_key(t, v6, n, byte[k], sl[i].ref, key);
		} else {
			struct mnode *ch = node_at(t, sl[i].ref);
			if (ch->plen < plen) {
				blocks_rec(t, v6, ch, plen, fn, arg);
				continue;
			}
			memcpy(key, ch->key, sizeof key);
		}
		audit_key_mask(key, plen);
		fn(arg, key, sl[i].count);
	}
}

void audit_mtrie_blocks(const struct audit_mtrie *t, unsigned bits, unsigned plen,
                        audit_live_visit_fn fn, void *arg)
{
	unsigned v6 = bits == 128;
	static const uint32_t zero[4];

	if (t->root[v6] == 0)
		return;
	if (plen == 0) {
		fn(arg, zero, t->total[v6]);
		return;
	}
	blocks_rec(t, v6, node_at(t, t->root[v6]), plen, fn, arg);
}

size_t audit_mtrie_bytes(const struct audit_mtrie *t)
{
	size_t sum = audit_pool_bytes(&t->leaves);
	for (unsigned c = 0; c < AUDIT_MT_CLASSES; c++)
		sum += audit_pool_bytes(&t->nodes[c]);
	return sum;
}
