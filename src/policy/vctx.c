/*
 * vctx: bounded key/value store. See vctx.h.
 */
#include "policy/vctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *vctx_get(const struct vctx *v, const char *key)
{
	for (size_t i = 0; i < v->count; i++)
		if (strcmp(v->entries[i].key, key) == 0)
			return v->entries[i].value;
	return NULL;
}

bool vctx_set(struct vctx *v, const char *key, const char *value,
              char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < v->count; i++)
		if (strcmp(v->entries[i].key, key) == 0)
			break;
	if (value == NULL) {
		if (i < v->count) {
			free(v->entries[i].key);
			free(v->entries[i].value);
			v->entries[i] = v->entries[--v->count];
			if (v->count == 0) {
				free(v->entries);
				v->entries = NULL;
			}
		}
		return true;
	}
	if (strlen(key) > VCTX_MAX_KEY || strlen(value) > VCTX_MAX_VALUE) {
		snprintf(err, errlen, "context key or value too long (limit %u/%u bytes)",
		         VCTX_MAX_KEY, VCTX_MAX_VALUE);
		return false;
	}
	char *copy = strdup(value);
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	if (i < v->count) {
		free(v->entries[i].value);
		v->entries[i].value = copy;
		return true;
	}
	if (v->count == VCTX_MAX_KEYS) {
		free(copy);
		snprintf(err, errlen, "context holds %u keys already (limit)", VCTX_MAX_KEYS);
		return false;
	}
	struct vctx_entry *n = realloc(v->entries, (v->count + 1) * sizeof *n);
	char *k = strdup(key);
	if (!n || !k) {
		if (n)
			v->entries = n;
		free(k);
		free(copy);
		snprintf(err, errlen, "out of memory");
		return false;
	}
	v->entries = n;
	v->entries[v->count].key = k;
	v->entries[v->count].value = copy;
	v->count++;
	return true;
}

void vctx_clear(struct vctx *v)
{
	for (size_t i = 0; i < v->count; i++) {
		free(v->entries[i].key);
		free(v->entries[i].value);
	}
	free(v->entries);
	v->entries = NULL;
	v->count = 0;
}
