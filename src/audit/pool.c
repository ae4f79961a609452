/*
 * pool: chunked node storage for the audit tries, and the address keys.
 *
 * Nodes live in chunks of 2^shift nodes (AUDIT_CHUNK_NODES unless the pool
 * says otherwise: big trie nodes come 16 to a chunk), addressed by a 32-bit index
 * (index 0 is never handed out, so 0 means "no node"). A chunk never moves,
 * so growing the pool costs one malloc of a chunk and never copies nodes: no
 * latency spike in the event loop at a million entries. Freed nodes are kept
 * on a free list and reused; when the last node is freed every chunk goes
 * back to malloc, so a pool that empties holds nothing.
 */
#include "audit/audit_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_BYTES ((size_t)2 << 20)

void *audit_big_alloc(size_t bytes)
{
	if (bytes < HUGE_BYTES)
		return calloc(1, bytes);
	/* Map 2 MiB more than needed and trim to a 2 MiB boundary: fresh
	 * anonymous pages are zero, and no page is touched here. */
	size_t len = (bytes + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1);
	unsigned char *m = mmap(NULL, len + HUGE_BYTES, PROT_READ | PROT_WRITE,
	                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	size_t head = (HUGE_BYTES - ((uintptr_t)m & (HUGE_BYTES - 1))) & (HUGE_BYTES - 1);
	if (head)
		munmap(m, head);
	if (HUGE_BYTES - head)
		munmap(m + head + len, HUGE_BYTES - head);
#ifdef MADV_HUGEPAGE
	(void)madvise(m + head, len, MADV_HUGEPAGE); /* a hint: fine if refused */
#endif
	return m + head;
}

void audit_big_free(void *p, size_t bytes)
{
	if (p == NULL)
		return;
	if (bytes < HUGE_BYTES) {
		free(p);
		return;
	}
	munmap(p, (bytes + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1));
}

void audit_pool_init_shift(struct audit_pool *p, size_t elem, unsigned shift)
{
	if (shift < 2 || shift > 16)
		abort();
	memset(p, 0, sizeof *p);
	p->elem = elem;
	p->shift = shift;
	p->next = 1;
	p->carve_from = UINT32_MAX; /* not carving */
}

void audit_pool_use_huge(struct audit_pool *p)
{
	p->huge = true;
}

void audit_pool_init(struct audit_pool *p, size_t elem)
{
	audit_pool_init_shift(p, elem, AUDIT_CHUNK_SHIFT);
}

void audit_pool_release(struct audit_pool *p)
{
	bool huge = p->huge;
	for (uint32_t i = 0; i < p->nchunks && i < p->carve_from; i++)
		free(p->chunks[i]);
	free(p->chunks);
	for (uint32_t i = 0; i < p->nblocks; i++)
		audit_big_free(p->blocks[i], HUGE_BYTES);
	free(p->blocks);
	audit_pool_init_shift(p, p->elem, p->shift);
	p->huge = huge;
}

/* A chunk of `bytes`: from the heap while the pool is small, else carved
 * from a huge-page block. */
static void *chunk_alloc(struct audit_pool *p, size_t bytes)
{
	void *chunk;
	if (p->huge && bytes <= HUGE_BYTES / 4 &&
	    (p->carve_from != UINT32_MAX || (size_t)(p->nchunks + 1) * bytes >= HUGE_BYTES)) {
		if (p->carve_from == UINT32_MAX)
			p->carve_from = p->nchunks;
		if (p->blk_left < bytes) {
			if (p->nblocks == p->capblocks) {
				uint32_t cap = p->capblocks ? p->capblocks * 2 : 8;
				void **b = realloc(p->blocks, cap * sizeof *b);
				if (b == NULL)
					return NULL;
				p->blocks = b;
				p->capblocks = cap;
			}
			unsigned char *blk = audit_big_alloc(HUGE_BYTES);
			if (blk == NULL)
				return NULL;
			p->blocks[p->nblocks++] = blk;
			p->blk = blk;
			p->blk_left = HUGE_BYTES;
		}
		chunk = p->blk;
		p->blk += bytes;
		p->blk_left -= bytes;
		return chunk;
	}
	/* Cache-line aligned, so nodes of whole lines start a line. */
	if (posix_memalign(&chunk, 64, bytes) != 0)
		return NULL;
	return chunk;
}

bool audit_pool_reserve(struct audit_pool *p, uint32_t n)
{
	for (;;) {
		uint64_t slots = (uint64_t)p->nchunks << p->shift;
		if (p->nfree + (slots > p->next ? slots - p->next : 0) >= n)
			return true;
		if (p->nchunks >= (UINT32_MAX >> p->shift))
			return false;
		if (p->nchunks == p->capchunks) {
			uint32_t cap = p->capchunks ? p->capchunks * 2 : 8;
			unsigned char **c = realloc(p->chunks, cap * sizeof *c);
			if (c == NULL)
				return false;
			p->chunks = c;
			p->capchunks = cap;
		}
		void *chunk = chunk_alloc(p, ((size_t)1 << p->shift) * p->elem);
		if (chunk == NULL)
			return false;
		p->chunks[p->nchunks++] = chunk;
	}
}

uint32_t audit_pool_alloc(struct audit_pool *p)
{
	uint32_t i;

	if (p->free_head != 0) {
		i = p->free_head;
		memcpy(&p->free_head, audit_pool_at(p, i), sizeof(uint32_t));
		p->nfree--;
	} else {
		if ((uint64_t)p->next >= (uint64_t)p->nchunks << p->shift)
			abort(); /* caller skipped audit_pool_reserve */
		i = p->next++;
	}
	memset(audit_pool_at(p, i), 0, p->elem);
	p->live++;
	return i;
}

void audit_pool_free(struct audit_pool *p, uint32_t i)
{
	if (i == 0 || p->live == 0)
		abort();
	if (--p->live == 0) {
		audit_pool_release(p);
		return;
	}
	memcpy(audit_pool_at(p, i), &p->free_head, sizeof(uint32_t));
	p->free_head = i;
	p->nfree++;
}

size_t audit_pool_bytes(const struct audit_pool *p)
{
	uint32_t heap = p->nchunks < p->carve_from ? p->nchunks : p->carve_from;
	return ((size_t)heap << p->shift) * p->elem + (size_t)p->nblocks * HUGE_BYTES +
	       p->capchunks * sizeof *p->chunks + p->capblocks * sizeof *p->blocks;
}

unsigned audit_key_from(const struct ip_addr *a, uint32_t key[4])
{
	for (unsigned w = 0; w < 4; w++)
		key[w] = (uint32_t)a->bytes[4 * w] << 24 | (uint32_t)a->bytes[4 * w + 1] << 16 |
		         (uint32_t)a->bytes[4 * w + 2] << 8 | a->bytes[4 * w + 3];
	if (a->family == IP_V4) {
		key[1] = key[2] = key[3] = 0;
		return 32;
	}
	return 128;
}

void audit_key_to(const uint32_t key[4], enum ip_family fam, struct ip_addr *out)
{
	memset(out, 0, sizeof *out);
	out->family = (uint8_t)fam;
	for (unsigned w = 0; w < (fam == IP_V4 ? 1u : 4u); w++) {
		out->bytes[4 * w] = (uint8_t)(key[w] >> 24);
		out->bytes[4 * w + 1] = (uint8_t)(key[w] >> 16);
		out->bytes[4 * w + 2] = (uint8_t)(key[w] >> 8);
		out->bytes[4 * w + 3] = (uint8_t)key[w];
	}
}

void audit_key_mask(uint32_t key[4], unsigned plen)
{
	for (unsigned w = 0; w < 4; w++) {
		unsigned lo = w * 32;
		if (plen >= lo + 32)
			continue;
		key[w] = plen <= lo ? 0 : key[w] & ~(UINT32_MAX >> (plen - lo));
	}
}
