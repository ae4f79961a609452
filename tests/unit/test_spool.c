/*
 * test_spool: the write-ahead spool's file format and states (spool.h):
 * records come back from a replay exactly as appended, oldest generation
 * first; a torn or corrupted record ends the scan; records of an older
 * generation left in a reused segment are never replayed; a segment cannot
 * be reused before it is marked clean; a clean stop leaves nothing to replay;
 * a pinned segment stays dirty.
 */
#include "deliver/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "unit.h"

#define SEG (256u << 10) /* small segments: rotation after a few records */

static char dir[64];

/* Fault injection: this definition takes the place of libc's for the
 * spool code linked into this test; the next `fail_syncs` calls fail with
 * EIO, as a disk error would. */
static int fail_syncs;

int fdatasync(int fd)
{
	if (fail_syncs > 0) {
		fail_syncs--;
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

struct seen {
	size_t n;
	char paths[64][128];
	size_t lens[64];
	char first_bytes[64];
};

static int collect(const struct spool_rec *r, void *arg)
{
	struct seen *s = arg;
	if (s->n < 64) {
		snprintf(s->paths[s->n], sizeof s->paths[0], "%s%s%s", r->paths[0],
		         r->npaths > 1 ? "+" : "", r->npaths > 1 ? r->paths[1] : "");
		s->lens[s->n] = r->len;
		s->first_bytes[s->n] = r->len ? r->data[0] : 0;
	}
	s->n++;
	return 0;
}

static struct spool *fresh(void)
{
	char err[256];
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s/spool", dir);
	if (system(cmd) != 0)
		abort();
	char path[128];
	snprintf(path, sizeof path, "%s/spool", dir);
	struct spool *sp = spool_open(path, SEG, err, sizeof err);
	if (sp == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	CHECK(spool_reset(sp) == 0);
	return sp;
}

static struct spool *reopen(struct spool *old)
{
	char err[256], path[128];
	spool_close(old);
	snprintf(path, sizeof path, "%s/spool", dir);
	struct spool *sp = spool_open(path, SEG, err, sizeof err);
	if (sp == NULL)
		abort();
	return sp;
}

/* Overwrite n bytes of segment 0 at off, as a crash or a bad disk would. */
static void poke_log0(off_t off, const void *p, size_t n)
{
	char path[128];
	snprintf(path, sizeof path, "%s/spool/log.0", dir);
	int fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, p, n, off) == (ssize_t)n);
	close(fd);
}

/* Records the spool replays from a reopened spool. */
static size_t replayed(struct spool **sp, struct seen *s)
{
	size_t n = 0;
	*sp = reopen(*sp);
	memset(s, 0, sizeof *s);
	CHECK(spool_replay(*sp, collect, s, &n) == 0);
	return n;
}

static int append_one(struct spool *sp, const char *path, char fill, size_t len)
{
	char *data = malloc(len ? len : 1);
	memset(data, fill, len);
	const char *paths[1] = {path};
	struct spool_rec r = {.paths = paths, .npaths = 1, .data = data, .len = len};
	int ret = spool_append(sp, &r, 1);
	free(data);
	return ret;
}

UNIT_TEST(append_then_replay_gives_the_records_back)
{
	struct spool *sp = fresh();
	char big[5000];
	memset(big, 'b', sizeof big);
	const char *p2[2] = {"d/u1/new/n2", "d/u2/new/n2"};
	const char *p1[1] = {"d/u1/new/n1"};
	struct spool_rec recs[2] = {
		{.paths = p1, .npaths = 1, .data = "hello\n", .len = 6},
		{.paths = p2, .npaths = 2, .data = big, .len = sizeof big},
	};
	CHECK(spool_active_used(sp) == false);
	CHECK(spool_append(sp, recs, 2) == 0);
	CHECK(spool_active_used(sp));
	CHECK(append_one(sp, "d/u3/new/n3", 'z', 0) == 0); /* an empty message */
	struct seen s;
	size_t n = replayed(&sp, &s);
	CHECK(n == 3 && s.n == 3);
	CHECK_STR(s.paths[0], "d/u1/new/n1");
	CHECK(s.lens[0] == 6 && s.first_bytes[0] == 'h');
	CHECK_STR(s.paths[1], "d/u1/new/n2+d/u2/new/n2");
	CHECK(s.lens[1] == sizeof big && s.first_bytes[1] == 'b');
	CHECK_STR(s.paths[2], "d/u3/new/n3");
	CHECK(s.lens[2] == 0);
	/* after a reset nothing is left to replay */
	CHECK(spool_reset(sp) == 0);
	CHECK(replayed(&sp, &s) == 0);
	spool_close(sp);
}

UNIT_TEST(a_corrupted_record_ends_the_scan)
{
	struct spool *sp = fresh();
	CHECK(append_one(sp, "d/a/new/1", 'x', 100) == 0);
	CHECK(append_one(sp, "d/a/new/2", 'y', 100) == 0);
	CHECK(append_one(sp, "d/a/new/3", 'z', 100) == 0);
	/* flip one data byte of the second record (records are 8-aligned:
	 * 32-byte header + 10-byte path + 100 bytes -> 144) */
	poke_log0(SPOOL_HDR + 144 + 32 + 10 + 50, "Q", 1);
	struct seen s;
	CHECK(replayed(&sp, &s) == 1);
	CHECK_STR(s.paths[0], "d/a/new/1");
	spool_close(sp);
}

UNIT_TEST(rotation_needs_a_clean_segment_and_keeps_order)
{
	struct spool *sp = fresh();
	CHECK(append_one(sp, "d/a/new/old", 'o', 1000) == 0);
	int old = spool_rotate(sp);
	CHECK(old == 0);
	CHECK(spool_active(sp) == 1);
	CHECK(append_one(sp, "d/a/new/young", 'y', 1000) == 0);
	/* segment 0 is not clean yet: no second rotation */
	CHECK(spool_rotate(sp) == -EBUSY);
	/* a crash now replays both, the older generation first */
	struct seen s;
	CHECK(replayed(&sp, &s) == 2);
	CHECK_STR(s.paths[0], "d/a/new/old");
	CHECK_STR(s.paths[1], "d/a/new/young");
	spool_close(sp);

	sp = fresh();
	CHECK(append_one(sp, "d/a/new/gen1", '1', 1000) == 0);
	old = spool_rotate(sp);
	CHECK(spool_mark_clean(sp, old) == 0);
	CHECK(append_one(sp, "d/a/new/gen2", '2', 1000) == 0);
	/* segment 0 is reused: its gen1 record must never come back */
	CHECK(spool_rotate(sp) == 1);
	CHECK(spool_mark_clean(sp, 1) == 0);
	CHECK(append_one(sp, "d/a/new/gen3", '3', 10) == 0);
	CHECK(replayed(&sp, &s) == 1);
	CHECK_STR(s.paths[0], "d/a/new/gen3");
	spool_close(sp);
}

UNIT_TEST(capacity_and_fits)
{
	struct spool *sp = fresh();
	CHECK(spool_capacity(sp) == SEG - SPOOL_HDR);
	const char *p[1] = {"d/a/new/x"};
	struct spool_rec r = {.paths = p, .npaths = 1, .data = "", .len = 2000};
	size_t one = spool_rec_size(sp, &r);
	CHECK(one == ((32 + 10 + 2000 + 7) & ~(size_t)7));
	size_t fit = 0;
	while (spool_fits(sp, one) && fit < 1000) {
		CHECK(append_one(sp, "d/a/new/x", 'x', 2000) == 0);
		fit++;
	}
	CHECK(fit == (SEG - SPOOL_HDR) / one);
	CHECK(append_one(sp, "d/a/new/x", 'x', 2000) == -ENOSPC);
	CHECK(!spool_fits(sp, SEG)); /* bigger than a segment never fits */
	spool_close(sp);
}

UNIT_TEST(pinned_segment_stays_dirty)
{
	struct spool *sp = fresh();
	CHECK(append_one(sp, "d/a/new/stuck", 's', 10) == 0);
	spool_set_pinned(sp, 0, true);
	int old = spool_rotate(sp);
	CHECK(old == 0);
	CHECK(spool_mark_clean(sp, old) == 0); /* a no-op for a pinned one */
	CHECK(append_one(sp, "d/a/new/next", 'n', 10) == 0);
	CHECK(spool_rotate(sp) == -EBUSY);     /* never reused */
	struct seen s;
	CHECK(replayed(&sp, &s) == 2);
	CHECK_STR(s.paths[0], "d/a/new/stuck");
	spool_close(sp);
}

UNIT_TEST(a_pinned_segment_is_read_alone_and_unpinned)
{
	struct spool *sp = fresh();
	CHECK(append_one(sp, "d/a/new/stuck", 's', 10) == 0);
	CHECK(append_one(sp, "d/a/new/also", 'a', 20) == 0);
	spool_set_pinned(sp, 0, true);
	CHECK(spool_pinned(sp, 0) && !spool_pinned(sp, 1));
	CHECK(spool_rotate(sp) == 0);
	CHECK(append_one(sp, "d/a/new/other", 'o', 10) == 0); /* into segment 1 */
	/* the retry reads segment 0 only, while 1 takes appends */
	struct seen s;
	memset(&s, 0, sizeof s);
	size_t n = 0;
	CHECK(spool_replay_seg(sp, 0, collect, &s, &n) == 0);
	CHECK(n == 2 && s.n == 2);
	CHECK_STR(s.paths[0], "d/a/new/stuck");
	CHECK_STR(s.paths[1], "d/a/new/also");
	CHECK(s.lens[1] == 20 && s.first_bytes[1] == 'a');
	/* placed: unpinned, it can be marked clean and used again */
	spool_set_pinned(sp, 0, false);
	CHECK(!spool_pinned(sp, 0));
	CHECK(spool_mark_clean(sp, 0) == 0);
	CHECK(spool_rotate(sp) == 1);
	spool_close(sp);
}

UNIT_TEST(a_torn_header_means_clean_and_garbage_files_are_safe)
{
	struct spool *sp = fresh();
	CHECK(append_one(sp, "d/a/new/1", 'x', 10) == 0);
	poke_log0(4, "garbage!", 8); /* header crc no longer matches */
	struct seen s;
	CHECK(replayed(&sp, &s) == 0);
	spool_close(sp);

	/* random bytes where records should be: nothing replayed, no crash */
	sp = fresh();
	unsigned char junk[8192];
	srand(7);
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (unsigned char)rand();
	poke_log0(SPOOL_HDR, junk, sizeof junk);
	CHECK(replayed(&sp, &s) == 0);
	spool_close(sp);
}

static int fail(const struct spool_rec *r, void *arg)
{
	(void)r;
	(void)arg;
	return -EIO;
}

UNIT_TEST(a_replay_callback_error_stops_and_is_returned)
{
	struct spool *sp = fresh();
	CHECK(append_one(sp, "d/a/new/1", 'x', 10) == 0);
	CHECK(append_one(sp, "d/a/new/2", 'x', 10) == 0);
	sp = reopen(sp);
	size_t n = 0;
	CHECK(spool_replay(sp, fail, NULL, &n) == -EIO);
	CHECK(n == 1);
	spool_close(sp);
}

UNIT_TEST(a_record_the_scan_would_refuse_is_never_written)
{
	struct spool *sp = fresh();
	CHECK(append_one(sp, "d/a/new/1", 'a', 100) == 0);
	/* 9,000 paths of 120 bytes: over the scan's bound for one record */
	enum { N = 9000 };
	char(*names)[160] = malloc(N * sizeof *names);
	const char **paths = malloc(N * sizeof *paths);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof names[i], "d/%0110d/new/%d", i, i);
		paths[i] = names[i];
	}
	struct spool_rec big = {.paths = paths, .npaths = N, .data = "x", .len = 1};
	CHECK(spool_rec_size(sp, &big) == 0);
	CHECK(spool_append(sp, &big, 1) == -E2BIG);
	struct spool_rec fine = {.paths = paths, .npaths = 100, .data = "x", .len = 1};
	CHECK(spool_rec_size(sp, &fine) > 0);
	struct spool_rec none = {.paths = paths, .npaths = 0, .data = "x", .len = 1};
	CHECK(spool_rec_size(sp, &none) == 0);
	CHECK(append_one(sp, "d/b/new/2", 'b', 100) == 0);
	struct seen s;
	CHECK(replayed(&sp, &s) == 2); /* nothing between the two ends the scan */
	free(names);
	free(paths);
	spool_close(sp);
}

/* Two records whose append failed at the fdatasync; then one of the
 * first's size: it ends exactly where the second failed record starts,
 * which must not be replayed (its message was refused). */
UNIT_TEST(records_of_a_failed_sync_are_never_replayed)
{
	struct spool *sp = fresh();
	CHECK(append_one(sp, "d/a/new/1", 'a', 100) == 0);
	const char *p1[1] = {"d/b/new/2"}, *p2[1] = {"d/b/new/3"};
	char data[100];
	memset(data, 'b', sizeof data);
	struct spool_rec refused[2] = {
		{.paths = p1, .npaths = 1, .data = data, .len = sizeof data},
		{.paths = p2, .npaths = 1, .data = data, .len = sizeof data},
	};
	fail_syncs = 1;
	CHECK(spool_append(sp, refused, 2) == -EIO);
	CHECK(fail_syncs == 0);
	CHECK(append_one(sp, "d/c/new/4", 'c', 100) == 0);
	struct seen s;
	CHECK(replayed(&sp, &s) == 2);
	CHECK(strcmp(s.paths[0], "d/a/new/1") == 0);
	CHECK(strcmp(s.paths[1], "d/c/new/4") == 0);
	spool_close(sp);
}

/* When even the zeroing cannot be synced, the segment takes nothing more
 * until a rotation, and what it held before is still replayed. */
UNIT_TEST(a_segment_whose_zeroing_failed_takes_no_more_appends)
{
	struct spool *sp = fresh();
	CHECK(append_one(sp, "d/a/new/1", 'a', 100) == 0);
	CHECK(spool_fits(sp, 4096));
	fail_syncs = 2;
	CHECK(append_one(sp, "d/b/new/2", 'b', 100) == -EIO);
	CHECK(fail_syncs == 0);
	CHECK(!spool_fits(sp, 64));
	int old = spool_rotate(sp);
	CHECK(old == 0);
	CHECK(spool_fits(sp, 4096));
	CHECK(append_one(sp, "d/c/new/3", 'c', 100) == 0);
	struct seen s;
	CHECK(replayed(&sp, &s) == 2);
	CHECK(strcmp(s.paths[0], "d/a/new/1") == 0);
	CHECK(strcmp(s.paths[1], "d/c/new/3") == 0);
	spool_close(sp);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/test_spool.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 2;
	int rc = unit_run();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		rc = rc ? rc : 1;
	return rc;
}
