/*
 * xhash: the exact-address table of the live gauge. One open-addressing
 * table per family (linear probing), each entry inline: the key words, the
 * sessions of the address on every listener, and those on listener 0. A
 * /32 or /128 question is one probe, usually one cache miss.
 *
 * Size: a power of two between 1/8 and 3/4 full (>= 64 entries), freed when
 * empty; tables of 2 MiB or more ask for transparent huge pages, since every
 * probe lands on a random page. Resizing never rehashes the whole table in one call: a new table
 * (twice or half the size) becomes `cur`, the old one drains into it
 * MIGRATE_STEP slots per add or remove, and until it is empty a lookup that
 * misses `cur` also probes `old`. An entry is in exactly one of the two (an
 * update of an old entry moves it first). Removal from `cur` is backward-
 * shift (no tombstones); from `old`, a tombstone, since `old` only drains.
 * Those bounds keep `cur` at most 7/16 full during a grow and 1/2 during a
 * shrink, so an insertion always finds a free slot.
 */
#include "audit/audit_int.h"

#include <stdlib.h>
#include <string.h>

#define XH_MIN 64u
#define MIGRATE_STEP 8u
#define TOMB UINT32_MAX /* count of a removed `old` entry */

static inline unsigned ewords(const struct audit_xhash *h)
{
	return h->words + 2;
}

static inline uint32_t *entry(const struct audit_xhash *h, const struct audit_xtab *x,
                              uint32_t i)
{
	return x->slot + (size_t)i * ewords(h);
}

static inline uint32_t home(const struct audit_xhash *h, const uint32_t *key, uint32_t cap)
{
	uint64_t x = key[0];
	if (h->words == 4) {
		x = ((uint64_t)key[0] << 32 | key[1]) * 0x9e3779b97f4a7c15ULL ^
		    ((uint64_t)key[2] << 32 | key[3]);
	}
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 31;
	x *= 0x94d049bb133111ebULL;
	return (uint32_t)(x >> 32) & (cap - 1);
}

static inline bool same(const struct audit_xhash *h, const uint32_t *e, const uint32_t *key)
{
	if (h->words == 1)
		return e[0] == key[0];
	return e[0] == key[0] && e[1] == key[1] && e[2] == key[2] && e[3] == key[3];
}

/* The entry for key in x, or NULL. */
static uint32_t *lookup(const struct audit_xhash *h, const struct audit_xtab *x,
                        const uint32_t *key)
{
	if (x->cap == 0)
		return NULL;
	for (uint32_t i = home(h, key, x->cap);; i = (i + 1) & (x->cap - 1)) {
		uint32_t *e = entry(h, x, i);
		uint32_t c = e[h->words];
		if (c == 0)
			return NULL;
		if (c != TOMB && same(h, e, key))
			return e;
	}
}

/* Put a key known to be absent into x (which has a free slot). */
static void put(struct audit_xhash *h, struct audit_xtab *x, const uint32_t *key,
                uint32_t count, uint32_t count0)
{
	uint32_t i = home(h, key, x->cap);
	while (entry(h, x, i)[h->words] != 0)
		i = (i + 1) & (x->cap - 1);
	uint32_t *e = entry(h, x, i);
	memcpy(e, key, h->words * sizeof *key);
	e[h->words] = count;
	e[h->words + 1] = count0;
	x->n++;
}

/* Remove the entry at e from cur, shifting later members of its probe run
 * back so that no lookup is cut short. */
static void delete_cur(struct audit_xhash *h, uint32_t *e)
{
	struct audit_xtab *x = &h->cur;
	uint32_t mask = x->cap - 1, ew = ewords(h);
	uint32_t hole = (uint32_t)((size_t)(e - x->slot) / ew);

	for (uint32_t j = (hole + 1) & mask;; j = (j + 1) & mask) {
		uint32_t *f = entry(h, x, j);
		if (f[h->words] == 0)
			break;
		uint32_t hm = home(h, f, x->cap);
		/* f may fill the hole if its home is not in (hole, j]. */
		if (((j - hm) & mask) >= ((j - hole) & mask)) {
			memcpy(entry(h, x, hole), f, ew * sizeof *f);
			hole = j;
		}
	}
	memset(entry(h, x, hole), 0, ew * sizeof(uint32_t));
	x->n--;
}

static void free_tab(const struct audit_xhash *h, struct audit_xtab *x)
{
	audit_big_free(x->slot, (size_t)x->cap * ewords(h) * sizeof(uint32_t));
	memset(x, 0, sizeof *x);
}

/* Start moving everything into a table of `cap` entries. */
static bool start_resize(struct audit_xhash *h, uint32_t cap)
{
	uint32_t *s = audit_big_alloc((size_t)cap * ewords(h) * sizeof *s);
	if (s == NULL)
		return false;
	h->old = h->cur;
	h->cur = (struct audit_xtab){.slot = s, .cap = cap};
	h->mig = 0;
	return true;
}

/* Move a bounded number of old slots; drop old when drained. */
static void migrate_step(struct audit_xhash *h)
{
	struct audit_xtab *o = &h->old;
	if (o->cap == 0)
		return;
	for (unsigned k = 0; k < MIGRATE_STEP && h->mig < o->cap && o->n > 0; k++) {
		uint32_t *e = entry(h, o, h->mig++);
		uint32_t c = e[h->words];
		if (c != 0 && c != TOMB) {
			put(h, &h->cur, e, c, e[h->words + 1]);
			e[h->words] = TOMB;
			o->n--;
		}
	}
	if (o->n == 0)
		free_tab(h, o);
}

void audit_xhash_init(struct audit_xhash *h, unsigned words)
{
	memset(h, 0, sizeof *h);
	h->words = words;
}

void audit_xhash_release(struct audit_xhash *h)
{
	free_tab(h, &h->cur);
	free_tab(h, &h->old);
	audit_xhash_init(h, h->words);
}

uint32_t audit_xhash_get(const struct audit_xhash *h, const uint32_t *key, bool l0)
{
	const uint32_t *e = lookup(h, &h->cur, key);
	if (e == NULL && h->old.cap != 0)
		e = lookup(h, &h->old, key);
	return e == NULL ? 0 : e[h->words + (l0 ? 1 : 0)];
}

void audit_xhash_prefetch(const struct audit_xhash *h, const uint32_t *key)
{
	if (h->cur.cap != 0)
		__builtin_prefetch(entry(h, &h->cur, home(h, key, h->cur.cap)), 1);
}

bool audit_xhash_reserve(struct audit_xhash *h)
{
	if (h->cur.cap == 0) {
		if (!start_resize(h, XH_MIN))
			return false;
		h->old = (struct audit_xtab){0};
	} else if (h->old.cap == 0 && (uint64_t)(h->cur.n + 1) * 4 > (uint64_t)h->cur.cap * 3) {
		/* fail closed: the table is 3/4 full */
		if (h->cur.cap > (UINT32_MAX >> 1) / ewords(h) || !start_resize(h, h->cur.cap * 2))
			return false;
	}
	return true;
}

void audit_xhash_add(struct audit_xhash *h, const uint32_t *key, bool l0)
{
	uint32_t *e = lookup(h, &h->cur, key);
	if (e == NULL && h->old.cap != 0) {
		uint32_t *o = lookup(h, &h->old, key);
		if (o != NULL) {
			/* Move it now: updates only ever touch cur. */
			put(h, &h->cur, o, o[h->words], o[h->words + 1]);
			o[h->words] = TOMB;
			h->old.n--;
			e = lookup(h, &h->cur, key);
		}
	}
	if (e != NULL) {
		if (e[h->words] >= TOMB - 1)
			abort(); /* the trie's family total caps every count */
		e[h->words]++;
		e[h->words + 1] += l0;
	} else {
		if (h->cur.cap == 0 || (uint64_t)(h->cur.n + 1) * 8 > (uint64_t)h->cur.cap * 7)
			abort(); /* caller skipped audit_xhash_reserve */
		put(h, &h->cur, key, 1, l0);
	}
	migrate_step(h);
}

bool audit_xhash_load(struct audit_xhash *h, const uint32_t *key, uint32_t count)
{
	if (count == 0 || count >= TOMB - 1 || audit_xhash_get(h, key, false) != 0 ||
	    !audit_xhash_reserve(h))
		return false;
	put(h, &h->cur, key, count, 0);
	migrate_step(h);
	return true;
}

bool audit_xhash_remove(struct audit_xhash *h, const uint32_t *key, bool l0)
{
	struct audit_xtab *x = &h->cur;
	uint32_t *e = lookup(h, x, key);
	if (e == NULL && h->old.cap != 0) {
		x = &h->old;
		e = lookup(h, x, key);
	}
	if (e == NULL || (l0 && e[h->words + 1] == 0))
		return false;
	e[h->words + 1] -= l0;
	if (--e[h->words] == 0) {
		if (x == &h->cur) {
			delete_cur(h, e);
		} else {
			e[h->words] = TOMB;
			x->n--;
		}
	}
	migrate_step(h);
	if (h->old.cap == 0) {
		if (h->cur.n == 0)
			free_tab(h, &h->cur);
		else if (h->cur.cap > XH_MIN && h->cur.n < h->cur.cap / 8)
			(void)start_resize(h, h->cur.cap / 2); /* no memory: stay big */
	}
	return true;
}

size_t audit_xhash_bytes(const struct audit_xhash *h)
{
	return ((size_t)h->cur.cap + h->old.cap) * ewords(h) * sizeof(uint32_t);
}
