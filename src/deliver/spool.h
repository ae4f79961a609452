/*
 * spool: the write-ahead log that makes an accepted Maildir message durable
 * with one fdatasync() per commit round.
 *
 * Without it a message is durable only once its own file AND the new/ entry
 * naming it are on disk: two filesystem-wide syncs in a row per round
 * (data, then the rename), ~1.3 ms for a round of 50 messages on the
 * project machine. With it the committer appends every message of the round
 * to a preallocated log file and fdatasync()s that one file (~0.15 ms);
 * the Maildir files are still written and renamed into new/ before the 250,
 * but made durable later, in bulk, by a checkpoint (syncfs) in the
 * background. After a power cut, the log's records that no checkpoint
 * covered are written again into the Maildir at start (deliver.c does it,
 * from spool_replay), so a file in new/ that the cut left empty or short is
 * replaced by its full content.
 *
 * Layout: DIR/log.0 and DIR/log.1, used in turn (the "segments"). Each
 * starts with a header block {magic, generation, state}; records follow at
 * SPOOL_HDR. A record is {magic, crc32, generation, file paths, data};
 * the crc covers everything after itself, so a record torn by a crash (no
 * fdatasync returned, so no 250 was given) ends the scan. Records left over
 * from an older use of the file carry an older generation and end it too.
 * Generations only grow, across both segments.
 *
 * States: the active segment is DIRTY (records since its header may need a
 * replay). spool_rotate() switches to the other segment, which must be CLEAN;
 * the old one stays DIRTY until the caller has synced everything its records
 * put in the Maildir and calls spool_mark_clean(). So at any time at most two
 * segments need a replay, oldest generation first.
 *
 * Threads: append/fits/rotate from one thread (the committer);
 * spool_mark_clean(), spool_replay_seg() and the pin calls from another (the
 * checkpointer) on the segment rotate returned. The CLEAN and pinned flags
 * are under the spool's own mutex.
 */
#ifndef MX_DELIVER_SPOOL_H
#define MX_DELIVER_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where records start in a segment (the header block). */
#define SPOOL_HDR 4096u
/* Default segment size: about 7,000 messages of 4 KiB between checkpoints. */
#define SPOOL_SEGMENT_DEFAULT (32u << 20)

struct spool;

/* One message to append: the files it becomes (paths relative to the
 * Maildir root, "domain/local/new/NAME") and their bytes. The same shape
 * comes back from spool_replay. */
struct spool_rec {
	const char *const *paths;
	size_t npaths;
	const char *data;
	size_t len;
};

/* Open or create DIR (mode 0700) and its two segments of seg_size bytes.
 * NULL with a reason in err when the directory or the files cannot be used. */
struct spool *spool_open(const char *dir, size_t seg_size, char *err, size_t errlen);

/* Call fn for every record of every DIRTY segment, oldest generation first
 * (read-only; fn's view is valid during the call). Stops at fn's first
 * non-zero return and returns it; 0 otherwise. *nrecs counts the calls. */
int spool_replay(struct spool *sp, int (*fn)(const struct spool_rec *rec, void *arg), void *arg,
                 size_t *nrecs);

/* After the caller has replayed and synced: mark every segment CLEAN and
 * start a fresh generation in segment 0. 0 or -errno. */
int spool_reset(struct spool *sp);

/* Bytes a record takes in the log; 0 when a segment cannot hold it at all
 * (no path, more paths than the scan takes, bigger than a segment): a
 * round with such a record is committed without the spool. */
size_t spool_rec_size(const struct spool *sp, const struct spool_rec *rec);

/* Bytes of records one segment can hold. */
size_t spool_capacity(const struct spool *sp);

/* Do `bytes` more fit in the active segment? */
bool spool_fits(const struct spool *sp, size_t bytes);

/* Does the active segment hold records? */
bool spool_active_used(const struct spool *sp);

/* Append n records to the active segment, then fdatasync: when this returns
 * 0 they survive a power cut. -errno on failure: the records do not count
 * (their range is zeroed, so a scan never reaches them; when that fails too
 * the segment is full until the next rotation); -E2BIG without writing when
 * a record's spool_rec_size is 0. The caller checked spool_fits. */
int spool_append(struct spool *sp, const struct spool_rec *recs, size_t n);

/* Switch to the other segment if it is CLEAN: write its header (new
 * generation, DIRTY) and fdatasync it. Returns the index of the segment
 * left behind (still DIRTY: sync what its records wrote, then
 * spool_mark_clean it), -EBUSY when the other one is not clean yet, another
 * -errno on I/O failure. */
int spool_rotate(struct spool *sp);

/* Segment `seg` needs no replay any more (its records' files are synced). */
int spool_mark_clean(struct spool *sp, int seg);

/* Pinned: keep segment `seg` DIRTY (a record in it could not be placed in
 * the Maildir): spool_mark_clean leaves it alone until it is unpinned, and
 * if the process ends first the next start replays it. */
void spool_set_pinned(struct spool *sp, int seg, bool pinned);
bool spool_pinned(struct spool *sp, int seg);

/* spool_replay for one segment that is not the active one (the
 * checkpointer's retry of a pinned segment, while the committer appends to
 * the other). */
int spool_replay_seg(struct spool *sp, int seg, int (*fn)(const struct spool_rec *rec, void *arg),
                     void *arg, size_t *nrecs);

/* Index of the active segment. */
int spool_active(const struct spool *sp);

/* Close the files (no sync: call spool_mark_clean first for a clean stop). */
void spool_close(struct spool *sp);

#endif
