/*
 * vctx: a small, bounded key/value store for the policy language's
 * connection and message context (vctx_conn_*, vctx_mess_*).
 *
 * Keys and values are copied. A store holds at most VCTX_MAX_KEYS entries
 * and values of at most VCTX_MAX_VALUE bytes: a script (or the peer whose
 * data it stores) cannot grow it without bound. Lookups are linear: stores
 * hold a dozen keys, where a scan beats a hash.
 */
#ifndef MX_POLICY_VCTX_H
#define MX_POLICY_VCTX_H

#include <stdbool.h>
#include <stddef.h>

#define VCTX_MAX_KEYS 64
#define VCTX_MAX_KEY 128
#define VCTX_MAX_VALUE 4096

struct vctx_entry {
	char *key;
	char *value;
};

struct vctx {
	struct vctx_entry *entries;
	size_t count;
};

/* The value of `key`, or NULL. */
const char *vctx_get(const struct vctx *v, const char *key);

/* Set (value != NULL) or delete (value == NULL). Returns false with a
 * message when a limit would be exceeded or memory runs out. */
bool vctx_set(struct vctx *v, const char *key, const char *value,
              char *err, size_t errlen);

/* Remove every entry; the store stays usable. */
void vctx_clear(struct vctx *v);

#endif
