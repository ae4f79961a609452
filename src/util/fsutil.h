/*
 * fsutil: small file-system helpers shared by the daemon and its modules.
 */
#ifndef MX_UTIL_FSUTIL_H
#define MX_UTIL_FSUTIL_H

#include <sys/types.h>

/* mkdir -p: create `path` and its missing parents with `mode`. Returns 0, or
 * -1 with errno set (ENAMETOOLONG for a path over 4095 bytes). */
int mx_mkdir_p(const char *path, mode_t mode);

/* fsync a directory, so that the names created in it survive a power cut.
 * 0, or -1 with errno set. */
int mx_fsync_dir(const char *path);

/* mx_fsync_dir of the folder that holds `path` ("." when it has no '/'). */
int mx_fsync_parent(const char *path);

#endif
