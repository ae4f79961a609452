/*
 * arena: bump allocation in malloc'd chunks, freed all at once.
 *
 * One arena per compiled script (everything the program points at) and one
 * per run (values, output lists). A run's arena has a byte limit, so a
 * hostile script or peer cannot grow a run without bound: the allocation
 * fails, and the caller reports the limit as a runtime error.
 */
#include <stdlib.h>
#include <string.h>

#include "sieve/sieve_int.h"

struct sieve_chunk {
	struct sieve_chunk *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

#define SIEVE_CHUNK_MIN 4096u

void sieve_arena_init(struct sieve_arena *a, size_t limit)
{
	a->head = NULL;
	a->total = 0;
	a->limit = limit;
	a->failed = false;
}

void *sieve_arena_alloc(struct sieve_arena *a, size_t n)
{
	size_t need = (n + 15u) & ~(size_t)15u;
	if (need < n) {
		a->failed = true;
		return NULL;
	}
	struct sieve_chunk *c = a->head;
	if (!c || c->size - c->used < need) {
		size_t size = need > SIEVE_CHUNK_MIN ? need : SIEVE_CHUNK_MIN;
		if (a->head && a->head->size * 2 > size && a->head->size < (1u << 20))
			size = a->head->size * 2 >= need ? a->head->size * 2 : need;
		if (a->limit && a->total + size > a->limit) {
			if (a->total + need > a->limit) {
				a->failed = true;
				return NULL;
			}
			size = need;
		}
		c = malloc(sizeof(*c) + size);
		if (!c) {
			a->failed = true;
			return NULL;
		}
		c->size = size;
		c->used = 0;
		c->next = a->head;
		a->head = c;
		a->total += size;
	}
	void *p = c->data + c->used;
	c->used += need;
	memset(p, 0, n);
	return p;
}

char *sieve_arena_strndup(struct sieve_arena *a, const char *s, size_t n)
{
	char *p = sieve_arena_alloc(a, n + 1);
	if (!p)
		return NULL;
	if (n)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void sieve_arena_free(struct sieve_arena *a)
{
	struct sieve_chunk *c = a->head;
	while (c) {
		struct sieve_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->total = 0;
}
