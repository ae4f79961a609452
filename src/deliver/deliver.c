/*
 * deliver: Maildir with group commit, or relay to a downstream MTA, on
 * worker threads; completions come back to the event loop through a pipe.
 *
 * Threads. The loop thread submits jobs to one queue (mutex + condvar).
 * Relay: Relay_Connections workers, each with its own connection to the
 * next hop (relay.c), take one job at a time (a job taken by a busy worker would
 * wait while another idles). Maildir with the spool
 * (Fsync on, the default): ONE thread takes every waiting job, writes the
 * files, and commits them as one round (below), plus a checkpointer thread
 * that syncs a spool segment's files when the segment is rotated out.
 * Maildir without the spool and two or more threads: writer threads take
 * jobs as they arrive and do step 1 (files in tmp/, still open); ONE
 * committer takes everything written so far and runs steps 2-5 for all of
 * it as one round; whatever is written while a round syncs waits for the
 * next round, so the batch grows with the load instead of being split
 * between threads (before: two symmetric workers, 4,586 fsync + 1,660
 * syncfs for 10,000 messages). Finished jobs go to a done list; the worker that
 * makes that list non-empty writes one byte to a self-pipe, and a libevent
 * read event on the pipe runs the `done` callbacks on the loop thread. A pipe
 * rather than event_active() from the worker, so this does not depend on the
 * daemon having called evthread_use_pthreads() before creating the base.
 *
 * Maildir round with the spool (commit_spooled):
 *   1. per job: write the message once into the first mailbox's tmp/, hard
 *      link it into the other mailboxes' tmp/;
 *   2. append one record per job (its new/ paths and its bytes) to the
 *      active spool segment and fdatasync the segment: the round is durable;
 *   3. rename every tmp/ name into new/ (not synced yet: the spool has it);
 *   4. post the completions.
 * A segment is rotated out when full, after DELIVER_SPOOL_IDLE_MS of quiet,
 * or DELIVER_SPOOL_MAX_AGE_MS after its first record; the checkpointer then
 * runs syncfs() (sync() when a file went to another filesystem) and marks
 * it clean. At start, spool_start replays the records of every segment not
 * marked clean (a file missing in new/ or with other bytes is written
 * again, one moved to cur/ by a reader is left alone). A rename that fails
 * after step 2 pins the segment: kept dirty, and once rotated out the
 * checkpointer places the failed files again with a growing wait until
 * that works (place_pinned), or the next start does. A round with a record
 * the spool cannot hold (spool_rec_size 0) goes the direct way below.
 *
 * Maildir round without the spool (Fsync = true but the spool could not be
 * opened, or the round does not fit it), in this order, which is what makes
 * "250 means durable" true:
 *   1. per job: write the message once into the first mailbox's tmp/, hard
 *      link it into the other mailboxes' tmp/ (copy if link() fails);
 *   2. fsync every written file (one per job: the links share the inode),
 *      or, for a batch of DELIVER_SYNCFS_MIN jobs or more on one
 *      filesystem, one syncfs() for them all (one journal commit);
 *   3. rename every tmp/ name into new/;
 *   4. fsync each touched new/ directory once for the whole batch (or one
 *      more syncfs() when step 2 used it);
 *   5. only then post the completions.
 * A crash before 4 leaves at worst files in tmp/ (removed at start by
 * deliver_clean_tmp) or complete files in new/ that nobody saw a 250 for
 * (a duplicate, never a loss, never a partial file in new/).
 *
 * Failure is all-or-nothing per job: if any of its mailboxes fails, every
 * file this job made (tmp/ or new/) is unlinked and the job is TEMPFAIL. A
 * file placed in new/ by an earlier job is never touched.
 *
 * Paths: MAILDIR/<domain>/<local>/ with both parts ASCII-lower-cased (most
 * MXs fold local parts although RFC 5321 calls them case-sensitive; folding
 * keeps "Bob" and "bob" in one mailbox) and every byte outside
 * [a-z0-9] and !#$&'*+-=?^_`{|}~. written as %XX, '%' included, plus a
 * leading '.' (so "." and ".." and hidden names cannot occur), '/' and NUL
 * never reach the filesystem. Bytes >= 0x80 (UTF-8) are kept. Files are
 * stored with LF line ends, as Maildir readers expect; S= is their size.
 */
#include "deliver/deliver.h"

#include "conf/config.h"
#include "deliver/relay.h"
#include "deliver/spool.h"
#include "util/clock.h"
#include "util/fsutil.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* A worker takes at most this many jobs per batch: bounds open files. */
#define DELIVER_BATCH_MAX 256
/* From this many jobs in a batch, one syncfs() beats one fsync() per file. */
#define DELIVER_SYNCFS_MIN 4
/* Written files waiting for a commit round: the writer stops taking jobs
 * above this (each holds an open descriptor until synced). */
#define DELIVER_WRITTEN_MAX 1024
/* The spool (spool.h) lives here under the Maildir root: a leading '.'
 * cannot be a domain folder (those escape it as %2E). */
#define DELIVER_SPOOL_DIR ".spool"
/* An active spool segment with records and no append for this long is
 * rotated and checkpointed, so a quiet server soon has nothing to replay. */
#define DELIVER_SPOOL_IDLE_MS 1000
/* ... and one whose first record is this old, whatever the traffic. */
#define DELIVER_SPOOL_MAX_AGE_MS 10000
/* A pinned segment is placed again after 1 s, 2 s, 4 s, ... up to 5 min. */
#define DELIVER_RETRY_FIRST_MS 1000
#define DELIVER_RETRY_MAX_MS 300000

struct job_work;

struct worker {
	struct deliver *d;
	pthread_t tid;
	struct relay_conn *rc;  /* relay: this worker's connection */
};

struct deliver {
	struct event_base *base;
	/* copies of the config values this needs: a reload frees the old one */
	enum mx_delivery mode;
	char *maildir;
	bool fsync;
	struct relay *relay;    /* Delivery = relay: the next hop */
	char *helo_name;
	char unique_host[256];  /* hostname with '/' and ':' escaped */
	long pid;               /* P part of unique names (no fork after start) */

	pthread_mutex_t mu;
	pthread_cond_t cv;      /* queue non-empty, stopping, room under the cap */
	pthread_cond_t ccv;     /* written non-empty, or a writer ended */
	struct deliver_job *queue, **queue_tail;
	struct job_work *written, **written_tail; /* Maildir: in tmp/, not yet synced */
	size_t nwritten;
	unsigned writers_left;  /* Maildir writer threads still running */
	struct deliver_job *done, **done_tail;
	struct deliver_stats stats; /* (mu) */
	bool stopping;

	int pipe_rd, pipe_wr;
	struct event *pipe_ev;

	struct worker *workers;
	unsigned nworkers;
	atomic_uint_fast64_t counter; /* Q part of unique names */

	/* Maildir with Fsync: the write-ahead spool (NULL: sync the files) */
	struct spool *spool;
	int root_fd;            /* the Maildir root, for syncfs */
	dev_t root_dev;
	struct timespec last_append; /* committer only */
	struct timespec seg_first;   /* committer only: first append to the active segment */
	bool other_dev[2];      /* a segment put files on another filesystem (mu) */
	int ckpt_seg;           /* segment waiting for the checkpointer, -1 (mu) */
	bool ckpt_stop;         /* (mu) */
	pthread_t ckpt_tid;
	pthread_cond_t kcv;     /* ckpt_seg set, or ckpt_stop (CLOCK_MONOTONIC) */
	/* a pinned segment the checkpointer places again later (mu) */
	int retry_seg;          /* -1: none */
	/* what a pinned segment's retries place (mu): the paths whose rename
	 * failed, or every record when a checkpoint failed (pin_all). Not the
	 * others: a reader may have taken those out of new/ since. */
	char **pin_paths[2];
	size_t npin[2], pin_cap[2];
	bool pin_all[2];
	bool retry_other_dev;
	unsigned retry_ms;      /* the wait before that retry; doubles */
	struct timespec retry_at;
	/* free space under the Maildir root (loop thread only) */
	uint64_t room_read_ms;  /* when statvfs last ran; 0 = never */
	bool room_known;        /* that read worked */
	bool room_low;          /* under the reserve at the last read */
	uint64_t room_bytes, room_inodes;
};

/* ---- small helpers ---- */

static void *xcalloc(size_t n, size_t size)
{
	void *r = calloc(n ? n : 1, size ? size : 1);
	if (r == NULL)
		abort();
	return r;
}

static char *xstrdup(const char *s)
{
	char *r = strdup(s);
	if (r == NULL)
		abort();
	return r;
}

void deliver_job_status(struct deliver_job *job, enum deliver_status st, const char *fmt, ...)
{
	va_list ap;
	job->status = st;
	va_start(ap, fmt);
	vsnprintf(job->detail, sizeof job->detail, fmt, ap);
	va_end(ap);
}

static bool safe_byte(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80)
		return true;
	return c != '\0' && strchr("!#$&'*+-=?^_`{|}~.", c) != NULL;
}

/* Encode one path component (see the header comment). Returns false when the
 * result does not fit in `len`. An empty input becomes "%" (no other
 * encoding is a lone '%', so the mapping stays one-to-one). */
bool deliver_maildir_component(const char *in, char *out, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (*in == '\0') {
		if (len < 2)
			return false;
		strcpy(out, "%");
		return true;
	}
	for (size_t i = 0; in[i]; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (safe_byte(c) && !(i == 0 && c == '.')) {
			if (o + 2 > len)
				return false;
			out[o++] = (char)c;
		} else {
			if (o + 4 > len)
				return false;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return true;
}

bool deliver_maildir_path(const char *root, const struct deliver_rcpt *rcpt,
                          char *out, size_t len)
{
	char dom[NAME_MAX + 1], loc[NAME_MAX + 1];
	char d[NAME_MAX + 1];
	size_t dl = strlen(rcpt->domain);

	/* one trailing dot of the domain is not part of the name */
	if (dl > 0 && rcpt->domain[dl - 1] == '.')
		dl--;
	if (dl >= sizeof d)
		return false;
	memcpy(d, rcpt->domain, dl);
	d[dl] = '\0';
	/* "user+ext" delivers to user's folder: copy the folder's part */
	char box[NAME_MAX + 1];
	const char *local = rcpt->local;
	if (rcpt->box_len > 0 && rcpt->box_len < strlen(local)) {
		if (rcpt->box_len >= sizeof box)
			return false;
		memcpy(box, local, rcpt->box_len);
		box[rcpt->box_len] = '\0';
		local = box;
	}
	if (!deliver_maildir_component(d, dom, sizeof dom) ||
	    !deliver_maildir_component(local, loc, sizeof loc))
		return false;
	int n = snprintf(out, len, "%s/%s/%s", root, dom, loc);
	return n > 0 && (size_t)n < len;
}

static bool fsync_dir(const char *path)
{
	return mx_fsync_dir(path) == 0;
}

static void parent_of(const char *path, char *out, size_t len)
{
	snprintf(out, len, "%s", path);
	char *s = strrchr(out, '/');
	if (s == out)
		s[1] = '\0';
	else if (s)
		*s = '\0';
	else
		snprintf(out, len, ".");
}

/* mkdir -p with mode 0700; when `sync`, fsync the parent of every folder
 * created so the new names survive a crash. */
static bool mkdir_p(const char *path, bool sync)
{
	char buf[PATH_MAX], parent[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof buf) {
		errno = ENAMETOOLONG;
		return false;
	}
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char save = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, 0700) == 0) {
			if (sync) {
				parent_of(buf, parent, sizeof parent);
				if (!fsync_dir(parent))
					return false;
			}
		} else if (errno != EEXIST) {
			return false;
		} else {
			struct stat st;
			if (stat(buf, &st) != 0)
				return false;
			if (!S_ISDIR(st.st_mode)) {
				errno = ENOTDIR;
				return false;
			}
		}
		buf[i] = save;
	}
	return true;
}

/* MBOX/{tmp,new,cur}, created on demand. */
static bool make_maildir(const char *mbox, bool sync)
{
	char sub[PATH_MAX];
	static const char *const subs[] = {"tmp", "new", "cur"};
	bool created = false;

	if (!mkdir_p(mbox, sync))
		return false;
	for (int i = 0; i < 3; i++) {
		if (snprintf(sub, sizeof sub, "%s/%s", mbox, subs[i]) >= (int)sizeof sub) {
			errno = ENAMETOOLONG;
			return false;
		}
		if (mkdir(sub, 0700) == 0)
			created = true;
		else if (errno != EEXIST)
			return false;
	}
	return !(created && sync && !fsync_dir(mbox));
}

static bool write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* The message with CRLF turned into LF (Maildir files use LF). */
static char *to_lf(const char *data, size_t len, size_t *out_len)
{
	char *out = malloc(len ? len : 1);
	size_t o = 0;
	if (out == NULL)
		return NULL;
	const char *p = data, *end = data + len;
	while (p < end) {
		const char *cr = memchr(p, '\r', (size_t)(end - p));
		size_t n = (size_t)((cr ? cr : end) - p);
		memcpy(out + o, p, n);
		o += n;
		if (cr == NULL)
			break;
		if (cr + 1 == end || cr[1] != '\n')
			out[o++] = '\r'; /* a lone CR is kept */
		p = cr + 1;
	}
	*out_len = o;
	return out;
}

/* ---- Maildir batch ---- */

struct mbox_file {
	char *mbox;     /* MAILDIR/domain/local */
	char *tmp;      /* its tmp/NAME */
	char *new_;     /* its new/NAME */
	bool in_tmp, in_new;
};

struct job_work {
	struct deliver_job *job;
	struct mbox_file *files;
	size_t nfiles;
	int fd;          /* the written file, open until fsynced */
	char *lf;        /* the file's bytes (LF line ends), for the spool */
	size_t lf_len;
	bool failed;
	bool has_dev;    /* dev is known (fstat of fd worked) */
	dev_t dev;       /* filesystem of the written file */
	bool copied;     /* a mailbox got a copy, not a link: maybe another
	                  * filesystem, which dev does not tell */
	struct job_work *next; /* written, waiting for a commit round */
};

/* Undo everything this job made (all-or-nothing). */
static void job_rollback(struct job_work *w)
{
	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
	}
	for (size_t i = 0; i < w->nfiles; i++) {
		struct mbox_file *f = &w->files[i];
		if (f->in_tmp && unlink(f->tmp) == 0)
			f->in_tmp = false;
		if (f->in_new && unlink(f->new_) == 0)
			f->in_new = false;
	}
	w->failed = true;
}

static void job_fail(struct job_work *w, const char *what, const char *path, int err)
{
	deliver_job_status(w->job, DELIVER_TEMPFAIL, "maildir %s %s: %s", what, path, strerror(err));
	w->job->no_space = err == ENOSPC || err == EDQUOT;
	job_rollback(w);
}

/* The mailboxes a recipient delivers to: itself, or its alias targets. */
static size_t count_targets(const struct deliver_rcpt *r)
{
	if (r->targets == NULL)
		return 1;
	size_t n = 1;
	for (const char *p = r->targets; *p; p++)
		n += *p == ',';
	return n;
}

/* The folder of mailbox number t of recipient r (count_targets). */
static bool rcpt_mailbox(const char *root, const struct deliver_rcpt *r, size_t t, char *out,
                         size_t len)
{
	if (r->targets == NULL)
		return deliver_maildir_path(root, r, out, len);
	const char *p = r->targets;
	for (; t > 0; t--)
		p = strchr(p, ',') + 1;
	size_t n = strcspn(p, ",");
	char addr[PATH_MAX];
	if (n >= sizeof addr)
		return false;
	memcpy(addr, p, n);
	addr[n] = '\0';
	char *at = strrchr(addr, '@');
	if (at == NULL)
		return false;
	*at = '\0';
	struct deliver_rcpt box = {addr, at + 1, 0, NULL};
	return deliver_maildir_path(root, &box, out, len);
}

/* Phase 1 for one job: files in tmp/ of every distinct mailbox. */
static void job_write(struct deliver *d, struct job_work *w)
{
	struct deliver_job *job = w->job;
	char path[PATH_MAX], name[512];
	size_t lf_len = 0;
	char *lf = NULL;

	w->fd = -1;
	size_t nboxes = 0;
	for (size_t i = 0; i < job->nrcpts; i++)
		nboxes += count_targets(&job->rcpts[i]);
	w->files = xcalloc(nboxes, sizeof *w->files);
	for (size_t i = 0; i < job->nrcpts; i++) {
		size_t nt = count_targets(&job->rcpts[i]);
		for (size_t t = 0; t < nt; t++) {
			if (!rcpt_mailbox(d->maildir, &job->rcpts[i], t, path, sizeof path)) {
				deliver_job_status(job, DELIVER_PERMFAIL, "maildir: mailbox path too long");
				job_rollback(w);
				return;
			}
			bool dup = false;
			for (size_t k = 0; k < w->nfiles && !dup; k++)
				dup = strcmp(w->files[k].mbox, path) == 0;
			if (!dup)
				w->files[w->nfiles++].mbox = xstrdup(path);
		}
	}
	if (w->nfiles == 0) {
		deliver_job_status(job, DELIVER_PERMFAIL, "no recipients");
		w->failed = true;
		return;
	}
	lf = to_lf(job->data, job->len, &lf_len);
	if (lf == NULL) {
		deliver_job_status(job, DELIVER_TEMPFAIL, "out of memory");
		w->failed = true;
		return;
	}
	/* From here on only the LF copy is used: give the CRLF one back now
	 * rather than when the loop frees the job, so that a big message is
	 * not held twice while its round runs. */
	free(job->data);
	job->data = NULL;
	for (size_t i = 0; i < w->nfiles; i++) {
		struct mbox_file *f = &w->files[i];
		for (int attempt = 0;; attempt++) {
			struct timeval tv;
			gettimeofday(&tv, NULL);
			uint_fast64_t q = atomic_fetch_add(&d->counter, 1);
			snprintf(name, sizeof name, "%lld.M%ldP%ldQ%llu.%s,S=%zu",
			         (long long)tv.tv_sec, (long)tv.tv_usec, d->pid,
			         (unsigned long long)q, d->unique_host, lf_len);
			free(f->tmp);
			free(f->new_);
			size_t n = strlen(f->mbox) + strlen(name) + 6;
			f->tmp = xcalloc(n, 1);
			f->new_ = xcalloc(n, 1);
			snprintf(f->tmp, n, "%s/tmp/%s", f->mbox, name);
			snprintf(f->new_, n, "%s/new/%s", f->mbox, name);

			int r;
			if (i == 0) {
				r = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
				if (r >= 0)
					w->fd = r;
			} else {
				r = link(w->files[0].tmp, f->tmp);
				if (r != 0 && errno != EEXIST && errno != ENOENT) {
					/* another filesystem, or no hard links: copy */
					int fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
					r = fd < 0 ? -1 : 0;
					if (fd >= 0) {
						f->in_tmp = true;
						w->copied = true;
						bool ok = write_all(fd, lf, lf_len) &&
						          (!d->fsync || fsync(fd) == 0);
						int e = errno;
						close(fd);
						if (!ok) {
							free(lf);
							job_fail(w, "write", f->tmp, e);
							return;
						}
					}
				}
			}
			if (r >= 0) {
				f->in_tmp = true;
				break;
			}
			int e = errno;
			if (e == ENOENT && attempt < 2) {
				if (make_maildir(f->mbox, d->fsync))
					continue;
				e = errno;
			} else if (e == EEXIST && attempt < 5) {
				continue;
			}
			free(lf);
			job_fail(w, i == 0 ? "create" : "link", f->tmp, e);
			return;
		}
		if (i == 0 && !write_all(w->fd, lf, lf_len)) {
			int e = errno;
			free(lf);
			job_fail(w, "write", f->tmp, e);
			return;
		}
	}
	w->lf = lf;
	w->lf_len = lf_len;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Phase 1 for one job, on a writer thread: the files in tmp/, still open. */
static struct job_work *work_write(struct deliver *d, struct deliver_job *j)
{
	struct job_work *w = xcalloc(1, sizeof *w);
	w->job = j;
	j->status = DELIVER_OK;
	j->no_space = false;
	j->detail[0] = '\0';
	job_write(d, w);
	if (!w->failed && d->fsync) {
		struct stat st;
		w->has_dev = fstat(w->fd, &st) == 0;
		w->dev = st.st_dev;
	}
	return w;
}

static void work_free(struct job_work *w)
{
	for (size_t k = 0; k < w->nfiles; k++) {
		free(w->files[k].mbox);
		free(w->files[k].tmp);
		free(w->files[k].new_);
	}
	free(w->files);
	free(w->lf);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}

/* Phases 2-4 for every job of one commit round (the committer thread):
 * the files durable, renamed into new/, the new/ directories durable. */
static void commit_maildir(struct deliver *d, struct job_work **w, size_t n)
{
	size_t i;
	/* 2: make every written file durable. A big batch on one filesystem
	 * uses syncfs(): one journal commit instead of one fsync per file
	 * (measured in bench/deliver_bench.c); otherwise fsync each file. */
	bool use_syncfs = false;
	int sync_fd = -1;
	if (d->fsync) {
		size_t live = 0;
		dev_t dev = 0;
		bool one_dev = true;
		for (i = 0; i < n; i++) {
			if (w[i]->failed)
				continue;
			if (!w[i]->has_dev || w[i]->copied) {
				one_dev = false;
				break;
			}
			if (live++ == 0) {
				dev = w[i]->dev;
				sync_fd = w[i]->fd;
			} else if (w[i]->dev != dev) {
				one_dev = false;
			}
		}
		use_syncfs = one_dev && live >= DELIVER_SYNCFS_MIN && syncfs(sync_fd) == 0;
	}
	for (i = 0; i < n; i++) {
		if (w[i]->failed)
			continue;
		if (d->fsync && !use_syncfs && fsync(w[i]->fd) != 0) {
			job_fail(w[i], "fsync", w[i]->files[0].tmp, errno);
			continue;
		}
		if (close(w[i]->fd) != 0) {
			w[i]->fd = -1;
			job_fail(w[i], "close", w[i]->files[0].tmp, errno);
			continue;
		}
		w[i]->fd = -1;
	}
	/* 3: rename into new/ */
	size_t ndirs = 0;
	for (i = 0; i < n; i++) {
		if (w[i]->failed)
			continue;
		for (size_t k = 0; k < w[i]->nfiles; k++) {
			struct mbox_file *f = &w[i]->files[k];
			if (rename(f->tmp, f->new_) != 0) {
				job_fail(w[i], "rename", f->tmp, errno);
				break;
			}
			f->in_tmp = false;
			f->in_new = true;
		}
		if (!w[i]->failed)
			ndirs += w[i]->nfiles;
	}
	/* 4: fsync each touched new/ once (or one more syncfs for them all) */
	if (use_syncfs && ndirs > 0) {
		char path[PATH_MAX];
		for (i = 0; i < n && w[i]->failed; i++)
			;
		snprintf(path, sizeof path, "%s/new", w[i]->files[0].mbox);
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || syncfs(fd) != 0) {
			int e = errno;
			for (i = 0; i < n; i++)
				if (!w[i]->failed)
					job_fail(w[i], "syncfs", path, e);
		}
		if (fd >= 0)
			close(fd);
	} else if (d->fsync && ndirs > 0) {
		char **dirs = xcalloc(ndirs, sizeof *dirs);
		size_t nd = 0;
		for (i = 0; i < n; i++)
			if (!w[i]->failed)
				for (size_t k = 0; k < w[i]->nfiles; k++)
					dirs[nd++] = w[i]->files[k].mbox;
		qsort(dirs, nd, sizeof *dirs, cmp_str);
		char path[PATH_MAX];
		for (size_t k = 0; k < nd; k++) {
			if (k > 0 && strcmp(dirs[k], dirs[k - 1]) == 0)
				continue;
			snprintf(path, sizeof path, "%s/new", dirs[k]);
			if (fsync_dir(path))
				continue;
			int e = errno;
			/* every job with a file there is in doubt: fail it */
			for (i = 0; i < n; i++) {
				if (w[i]->failed)
					continue;
				for (size_t m = 0; m < w[i]->nfiles; m++)
					if (strcmp(w[i]->files[m].mbox, dirs[k]) == 0) {
						job_fail(w[i], "fsync", path, e);
						break;
					}
			}
		}
		free(dirs);
	}
}

/* ---- Maildir with the spool (spool.h) ---- */

static void ts_now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

static void ts_add_ms(struct timespec *ts, unsigned ms)
{
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Milliseconds from *t to now (CLOCK_MONOTONIC, as ts_now). */
static int64_t ms_since(const struct timespec *t)
{
	struct timespec now;
	ts_now(&now);
	return (int64_t)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* Hand a segment left behind by a rotation to the checkpointer. */
static void hand_checkpoint(struct deliver *d, int seg)
{
	pthread_mutex_lock(&d->mu);
	d->ckpt_seg = seg;
	pthread_cond_signal(&d->kcv);
	pthread_mutex_unlock(&d->mu);
}

/* Switch segments; the old one goes to the checkpointer. False when the
 * other segment is still being checkpointed (or its header failed). */
static bool spool_switch(struct deliver *d)
{
	int old = spool_rotate(d->spool);
	if (old >= 0) {
		hand_checkpoint(d, old);
		return true;
	}
	if (old != -EBUSY)
		log_event(LOG_ERR, "spool_error", "op=rotate error=\"%s\"", strerror(-old));
	return false;
}

/* The delivery thread's wait for work (mu held). With records in the
 * active spool segment it wakes after DELIVER_SPOOL_IDLE_MS of quiet and
 * rotates the segment out, so that the checkpointer syncs it and a quiet
 * server soon has nothing left to replay. */
static void spool_idle_wait(struct deliver *d)
{
	if (d->spool == NULL || !spool_active_used(d->spool)) {
		pthread_cond_wait(&d->cv, &d->mu);
		return;
	}
	struct timespec dl = d->last_append, now;
	ts_add_ms(&dl, DELIVER_SPOOL_IDLE_MS);
	ts_now(&now);
	if (now.tv_sec < dl.tv_sec || (now.tv_sec == dl.tv_sec && now.tv_nsec < dl.tv_nsec)) {
		pthread_cond_timedwait(&d->cv, &d->mu, &dl);
		return;
	}
	pthread_mutex_unlock(&d->mu);
	if (!spool_switch(d))
		ts_now(&d->last_append); /* still checkpointing the other: later */
	pthread_mutex_lock(&d->mu);
}

/* Remember a path of segment seg that did not reach new/ (committer). */
static void pin_path(struct deliver *d, int seg, const char *rel)
{
	pthread_mutex_lock(&d->mu);
	if (d->npin[seg] == d->pin_cap[seg]) {
		size_t cap = d->pin_cap[seg] ? 2 * d->pin_cap[seg] : 16;
		char **p = realloc(d->pin_paths[seg], cap * sizeof *p);
		if (p == NULL)
			abort();
		d->pin_paths[seg] = p;
		d->pin_cap[seg] = cap;
	}
	d->pin_paths[seg][d->npin[seg]++] = xstrdup(rel);
	pthread_mutex_unlock(&d->mu);
}

/* Segment seg is placed: forget its pinned paths (mu held). */
static void pin_forget(struct deliver *d, int seg)
{
	for (size_t i = 0; i < d->npin[seg]; i++)
		free(d->pin_paths[seg][i]);
	free(d->pin_paths[seg]);
	d->pin_paths[seg] = NULL;
	d->npin[seg] = d->pin_cap[seg] = 0;
	d->pin_all[seg] = false;
}

/* Phases 2-4 with the spool, for one commit round (committer thread):
 *   2. append every message of the round to the spool and fdatasync it
 *      (one write, one sync: the round is durable);
 *   3. close the files and rename them into new/ (synced later by the
 *      checkpoint: until then the spool holds them);
 *   4. the completions follow (commit_list).
 * A round that does not fit the spool (segment full and the other one still
 * being checkpointed, or bigger than a segment) is committed the direct way:
 * returns false and commit_maildir does it. */
static bool commit_spooled(struct deliver *d, struct job_work **w, size_t n)
{
	size_t live = 0, bytes = 0, npaths = 0;
	size_t rootlen = strlen(d->maildir) + 1;
	for (size_t i = 0; i < n; i++)
		if (!w[i]->failed)
			npaths += w[i]->nfiles;
	if (npaths == 0)
		return true; /* every job failed already: nothing to sync */
	struct spool_rec *recs = xcalloc(n, sizeof *recs);
	const char **paths = xcalloc(npaths, sizeof *paths);
	size_t pi = 0;
	for (size_t i = 0; i < n; i++) {
		if (w[i]->failed)
			continue;
		struct spool_rec *r = &recs[live++];
		r->paths = paths + pi;
		for (size_t k = 0; k < w[i]->nfiles; k++)
			paths[pi++] = w[i]->files[k].new_ + rootlen;
		r->npaths = w[i]->nfiles;
		r->data = w[i]->lf;
		r->len = w[i]->lf_len;
		size_t size = spool_rec_size(d->spool, r);
		if (size == 0)
			bytes = SIZE_MAX; /* e.g. thousands of mailboxes: direct */
		else if (bytes != SIZE_MAX)
			bytes += size;
	}
	/* Under steady traffic the idle rotation never comes: rotate by age
	 * too, so a crash replays (and a reader's deletions undo) at most
	 * DELIVER_SPOOL_MAX_AGE_MS of mail. */
	if (spool_active_used(d->spool) && ms_since(&d->seg_first) >= DELIVER_SPOOL_MAX_AGE_MS)
		spool_switch(d);
	bool fits = bytes <= spool_capacity(d->spool) &&
	            (spool_fits(d->spool, bytes) || (spool_switch(d) && spool_fits(d->spool, bytes)));
	if (!fits) {
		free(recs);
		free(paths);
		return false;
	}
	bool was_used = spool_active_used(d->spool);
	int r = spool_append(d->spool, recs, live);
	free(recs);
	free(paths);
	if (r != 0) {
		log_event(LOG_ERR, "spool_error", "op=append error=\"%s\"", strerror(-r));
		for (size_t i = 0; i < n; i++)
			if (!w[i]->failed)
				job_fail(w[i], "spool write", DELIVER_SPOOL_DIR, -r);
		return true;
	}
	ts_now(&d->last_append);
	if (!was_used)
		d->seg_first = d->last_append;
	int seg = spool_active(d->spool);
	for (size_t i = 0; i < n; i++) {
		if (w[i]->failed)
			continue;
		if (!w[i]->has_dev || w[i]->dev != d->root_dev || w[i]->copied) {
			pthread_mutex_lock(&d->mu);
			d->other_dev[seg] = true;
			pthread_mutex_unlock(&d->mu);
		}
		close(w[i]->fd); /* the bytes are in the spool: a close error loses nothing */
		w[i]->fd = -1;
		for (size_t k = 0; k < w[i]->nfiles; k++) {
			struct mbox_file *f = &w[i]->files[k];
			if (rename(f->tmp, f->new_) == 0) {
				f->in_tmp = false;
				f->in_new = true;
				continue;
			}
			/* Durable in the spool already (the client gets its 250):
			 * keep the segment; the checkpointer retries (place_pinned). */
			pin_path(d, seg, f->new_ + rootlen);
			spool_set_pinned(d->spool, seg, true);
			char q[PATH_MAX + 64];
			log_event(LOG_ERR, "maildir_error",
			          "op=rename path=%s error=\"%s\" queue_id=%s note=\"kept in the "
			          "spool, placed again later\"",
			          log_quote(f->new_, strlen(f->new_), q, sizeof q), strerror(errno),
			          w[i]->job->queue_id);
		}
	}
	return true;
}

/* ---- replay at start ---- */

struct replay_ctx {
	struct deliver *d;
	size_t present, moved, written;
	bool other_dev;           /* a file was written on another filesystem */
	bool filter;              /* place only the paths in only[] (sorted) */
	char **only;
	size_t nonly;
	char err[PATH_MAX + 64];
	char cur_mbox[PATH_MAX]; /* the mailbox whose cur/ is in cur_names */
	char **cur_names;         /* its names up to the ':' of the flags, sorted */
	size_t ncur;
};

static void replay_drop_cur(struct replay_ctx *c)
{
	for (size_t i = 0; i < c->ncur; i++)
		free(c->cur_names[i]);
	free(c->cur_names);
	c->cur_names = NULL;
	c->ncur = 0;
	c->cur_mbox[0] = '\0';
}

/* Is NAME in MBOX/cur/ (a reader moved it there, maybe with ":2,flags")? */
static bool replay_in_cur(struct replay_ctx *c, const char *mbox, const char *name)
{
	if (strcmp(c->cur_mbox, mbox) != 0) {
		replay_drop_cur(c);
		snprintf(c->cur_mbox, sizeof c->cur_mbox, "%s", mbox);
		char path[PATH_MAX + 8];
		snprintf(path, sizeof path, "%s/cur", mbox);
		DIR *dp = opendir(path);
		size_t cap = 0;
		struct dirent *e;
		while (dp && (e = readdir(dp)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			if (c->ncur == cap) {
				cap = cap ? cap * 2 : 64;
				char **nn = realloc(c->cur_names, cap * sizeof *nn);
				if (nn == NULL)
					abort();
				c->cur_names = nn;
			}
			char *s = xstrdup(e->d_name);
			char *colon = strchr(s, ':');
			if (colon)
				*colon = '\0';
			c->cur_names[c->ncur++] = s;
		}
		if (dp)
			closedir(dp);
		if (c->ncur > 1)
			qsort(c->cur_names, c->ncur, sizeof *c->cur_names, cmp_str);
	}
	return c->ncur > 0 &&
	       bsearch(&name, c->cur_names, c->ncur, sizeof *c->cur_names, cmp_str) != NULL;
}

/* A path from the spool: relative, exactly "DOMAIN/LOCAL/new/NAME", no
 * empty, "." or ".." part (the spool is ours, but a damaged one must not
 * write elsewhere). The third part is checked by position: a mailbox may
 * be called "new" ("d/new/new/NAME"). */
bool deliver_spool_path_ok(const char *p)
{
	const char *part[4];
	size_t len[4];
	int parts = 0;
	for (const char *s = p;;) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (parts == 4 || n == 0 || (n == 1 && s[0] == '.') ||
		    (n == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		part[parts] = s;
		len[parts++] = n;
		if (e == NULL)
			break;
		s = e + 1;
	}
	return parts == 4 && len[2] == 3 && memcmp(part[2], "new", 3) == 0;
}

/* Is the file at path a regular file holding exactly [data, data+len)?
 * After a power cut a file can have its size and not its bytes (the
 * inode written back before the data), so the size alone does not say. */
static bool same_content(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	struct stat st;
	bool same = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == len;
	char buf[65536];
	for (size_t off = 0; same && off < len;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (size_t)n > len - off || memcmp(buf, data + off, (size_t)n) != 0)
			same = false;
		else
			off += (size_t)n;
	}
	close(fd);
	return same;
}

static int replay_one(const struct spool_rec *rec, void *arg)
{
	struct replay_ctx *c = arg;
	struct deliver *d = c->d;
	char full[PATH_MAX], mbox[PATH_MAX], tmp[2 * PATH_MAX];
	for (size_t i = 0; i < rec->npaths; i++) {
		const char *rel = rec->paths[i];
		if (c->filter && (c->nonly == 0 || bsearch(&rel, c->only, c->nonly, sizeof *c->only,
		                                           cmp_str) == NULL))
			continue;
		if (!deliver_spool_path_ok(rel) ||
		    snprintf(full, sizeof full, "%s/%s", d->maildir, rel) >= (int)sizeof full) {
			snprintf(c->err, sizeof c->err, "bad path in the spool: %.200s", rel);
			return -EINVAL;
		}
		if (same_content(full, rec->data, rec->len)) {
			c->present++;
			continue;
		}
		/* full ends in "/new/NAME" (checked above); the root may hold a
		 * "/new/" of its own, so cut from the end */
		const char *name = strrchr(full, '/') + 1;
		size_t ml = (size_t)(name - full) - 5;
		memcpy(mbox, full, ml);
		mbox[ml] = '\0';
		if (replay_in_cur(c, mbox, name)) {
			c->moved++;
			continue;
		}
		/* missing, or short after a power cut: write it whole again */
		snprintf(tmp, sizeof tmp, "%s/tmp/%s", mbox, name);
		int fd = -1;
		bool ok = make_maildir(mbox, true) &&
		          (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) >= 0 &&
		          write_all(fd, rec->data, rec->len) && fsync(fd) == 0;
		int e = errno;
		struct stat st;
		if (ok && (fstat(fd, &st) != 0 || st.st_dev != d->root_dev))
			c->other_dev = true; /* its rename needs more than syncfs(root) */
		if (fd >= 0)
			close(fd);
		if (ok && rename(tmp, full) != 0) {
			ok = false;
			e = errno;
		}
		if (!ok) {
			unlink(tmp);
			snprintf(c->err, sizeof c->err, "%s: %s", full, strerror(e));
			return -e;
		}
		c->written++;
	}
	return 0;
}

/* Have the checkpointer place pinned segment `seg` again later: after
 * DELIVER_RETRY_FIRST_MS the first time, twice as long each time after,
 * at most DELIVER_RETRY_MAX_MS (mu held). Returns the wait. */
static unsigned retry_later(struct deliver *d, int seg, bool other_dev)
{
	d->retry_seg = seg;
	d->retry_other_dev = other_dev;
	d->retry_ms = d->retry_ms == 0 ? DELIVER_RETRY_FIRST_MS
	              : d->retry_ms >= DELIVER_RETRY_MAX_MS / 2 ? DELIVER_RETRY_MAX_MS
	                                                        : d->retry_ms * 2;
	ts_now(&d->retry_at);
	ts_add_ms(&d->retry_at, d->retry_ms);
	return d->retry_ms;
}

/* A pinned segment: one of its records could not be put in its mailbox
 * after the client had its 250 (a failed rename), or a checkpoint failed.
 * Place again, as a start would, the paths whose rename failed (every
 * record after a failed checkpoint): what is in new/ or cur/ already is
 * left alone, the rest written again. Only those: a message that did
 * reach new/ and was taken out of it by a reader since must not come
 * back. Then sync; when that
 * works the segment is unpinned and can be marked clean, so the mail
 * arrives once the mailbox is usable again, not at the next start, and
 * the spool gets its second segment back. Otherwise the retry comes again
 * after a wait that doubles (DELIVER_RETRY_FIRST_MS to _MAX_MS).
 * 0 when placed, 1 when still pinned. */
static int place_pinned(struct deliver *d, int seg, bool other_dev)
{
	struct replay_ctx c = {.d = d};
	size_t nrecs = 0;
	pthread_mutex_lock(&d->mu);
	if (!d->pin_all[seg]) {
		/* not the active segment: the committer adds to it no more */
		qsort(d->pin_paths[seg], d->npin[seg], sizeof(char *), cmp_str);
		c.filter = true;
		c.only = d->pin_paths[seg];
		c.nonly = d->npin[seg];
	}
	pthread_mutex_unlock(&d->mu);
	int r = spool_replay_seg(d->spool, seg, replay_one, &c, &nrecs);
	replay_drop_cur(&c);
	if (r == 0 && syncfs(d->root_fd) != 0) {
		r = -errno;
		snprintf(c.err, sizeof c.err, "syncfs: %s", strerror(errno));
	}
	if (r == 0 && (other_dev || c.other_dev))
		sync();
	unsigned next_ms = 0;
	pthread_mutex_lock(&d->mu);
	if (r == 0) {
		d->retry_seg = -1;
		d->retry_ms = 0;
		d->stats.retries_ok++;
		pin_forget(d, seg);
	} else {
		next_ms = retry_later(d, seg, other_dev);
		d->stats.retries_failed++;
	}
	pthread_mutex_unlock(&d->mu);
	if (r != 0) {
		const char *e = c.err[0] ? c.err : strerror(-r);
		char q[2 * sizeof c.err];
		log_event(LOG_WARNING, "spool_retry", "segment=%d result=failed error=%s next_s=%u", seg,
		          log_quote(e, strlen(e), q, sizeof q), (next_ms + 999) / 1000);
		return 1;
	}
	spool_set_pinned(d->spool, seg, false);
	log_event(LOG_NOTICE, "spool_retry",
	          "segment=%d result=ok records=%zu present=%zu moved_to_cur=%zu written=%zu", seg,
	          nrecs, c.present, c.moved, c.written);
	return 0;
}

/* Make every file a segment's records placed durable, then mark it clean:
 * one syncfs of the Maildir's filesystem (sync() if a record went to a
 * mailbox on another one). A pinned segment is placed again first. */
static void checkpoint(struct deliver *d, int seg, bool other_dev)
{
	int r = syncfs(d->root_fd) == 0 ? 0 : -errno;
	if (r == 0 && other_dev)
		sync();
	if (r == 0 && spool_pinned(d->spool, seg) && place_pinned(d, seg, other_dev) != 0)
		return; /* still pinned: retried later */
	if (r == 0)
		r = spool_mark_clean(d->spool, seg);
	if (r == 0) {
		pthread_mutex_lock(&d->mu);
		d->stats.checkpoints++;
		pthread_mutex_unlock(&d->mu);
	} else {
		/* the records stay: retried, or replayed at the next start */
		pthread_mutex_lock(&d->mu);
		d->pin_all[seg] = true;
		pthread_mutex_unlock(&d->mu);
		spool_set_pinned(d->spool, seg, true);
		log_event(LOG_ERR, "spool_error", "op=checkpoint segment=%d error=\"%s\"", seg,
		          strerror(-r));
		pthread_mutex_lock(&d->mu);
		retry_later(d, seg, other_dev);
		pthread_mutex_unlock(&d->mu);
	}
}

static void *checkpointer_main(void *arg)
{
	struct deliver *d = arg;
	for (;;) {
		pthread_mutex_lock(&d->mu);
		bool due = false;
		while (d->ckpt_seg < 0 && !d->ckpt_stop && !due) {
			if (d->retry_seg < 0)
				pthread_cond_wait(&d->kcv, &d->mu);
			else
				due = pthread_cond_timedwait(&d->kcv, &d->mu, &d->retry_at) == ETIMEDOUT;
		}
		if (d->ckpt_seg < 0 && !due) {
			pthread_mutex_unlock(&d->mu);
			return NULL;
		}
		int seg;
		bool other;
		if (d->ckpt_seg >= 0) {
			seg = d->ckpt_seg;
			other = d->other_dev[seg];
			d->ckpt_seg = -1;
			d->other_dev[seg] = false;
		} else {
			seg = d->retry_seg;
			other = d->retry_other_dev;
		}
		pthread_mutex_unlock(&d->mu);
		checkpoint(d, seg, other);
	}
}

static void spool_off(const char *why)
{
	char q[2 * (PATH_MAX + 64)];
	log_event(LOG_WARNING, "spool_off", "reason=%s", log_quote(why, strlen(why), q, sizeof q));
}

/* Open the spool, place what a crash left in it, start a fresh generation.
 * Any failure: a warning, and delivery syncs each round itself (no spool). */
static void spool_start(struct deliver *d)
{
	char dir[PATH_MAX], err[PATH_MAX + 64];
	struct stat st;
	if (mx_mkdir_p(d->maildir, 0755) == 0)
		d->root_fd = open(d->maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->root_fd < 0 || fstat(d->root_fd, &st) != 0 ||
	    snprintf(dir, sizeof dir, "%s/%s", d->maildir, DELIVER_SPOOL_DIR) >= (int)sizeof dir) {
		char why[PATH_MAX + 64];
		snprintf(why, sizeof why, "Maildir %s: %s", d->maildir, strerror(errno));
		spool_off(why);
		return;
	}
	d->root_dev = st.st_dev;
	struct spool *sp = spool_open(dir, SPOOL_SEGMENT_DEFAULT, err, sizeof err);
	if (sp == NULL) {
		spool_off(err);
		return;
	}
	struct replay_ctx c = {.d = d};
	size_t nrecs = 0;
	int r = spool_replay(sp, replay_one, &c, &nrecs);
	replay_drop_cur(&c);
	if (r == 0 && nrecs > 0 && syncfs(d->root_fd) != 0) {
		r = -errno;
		snprintf(c.err, sizeof c.err, "syncfs: %s", strerror(errno));
	}
	if (r == 0 && c.other_dev)
		sync();
	if (r != 0) {
		/* Keep the records for the operator, start with an empty spool. */
		char aside[PATH_MAX + 32];
		spool_close(sp);
		snprintf(aside, sizeof aside, "%s.failed-%lld", dir, (long long)time(NULL));
		const char *e = c.err[0] ? c.err : strerror(-r);
		char q[2 * sizeof c.err], qa[PATH_MAX + 64];
		log_event(LOG_ERR, "spool_replay_failed", "error=%s records=%zu kept=%s",
		          log_quote(e, strlen(e), q, sizeof q), nrecs,
		          log_quote(aside, strlen(aside), qa, sizeof qa));
		if (rename(dir, aside) != 0) {
			snprintf(err, sizeof err, "rename %s: %s", dir, strerror(errno));
			spool_off(err);
			return;
		}
		if ((sp = spool_open(dir, SPOOL_SEGMENT_DEFAULT, err, sizeof err)) == NULL) {
			spool_off(err);
			return;
		}
	} else if (nrecs > 0) {
		log_event(LOG_NOTICE, "spool_replay",
		          "records=%zu present=%zu moved_to_cur=%zu written=%zu", nrecs, c.present,
		          c.moved, c.written);
	}
	r = spool_reset(sp);
	if (r != 0) {
		snprintf(err, sizeof err, "%s: %s", dir, strerror(-r));
		spool_off(err);
		spool_close(sp);
		return;
	}
	d->spool = sp;
	d->ckpt_seg = -1;
	d->retry_seg = -1;
	ts_now(&d->last_append);
	if (pthread_create(&d->ckpt_tid, NULL, checkpointer_main, d) != 0)
		abort(); /* the spool is on only with its checkpointer */
	pthread_setname_np(d->ckpt_tid, "mx-checkpoint");
}

/* Stop the checkpointer, then checkpoint what is left: a clean stop leaves
 * nothing to replay. */
static void spool_stop(struct deliver *d)
{
	if (d->spool == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	d->ckpt_stop = true;
	pthread_cond_signal(&d->kcv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->ckpt_tid, NULL);
	int seg = spool_active(d->spool);
	if (spool_active_used(d->spool))
		checkpoint(d, seg, d->other_dev[seg]);
	spool_close(d->spool);
	d->spool = NULL;
	pin_forget(d, 0);
	pin_forget(d, 1);
}

/* ---- threads and completions ---- */

const double deliver_lat_bounds_s[DELIVER_LAT_BOUNDS] = {
	0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5,
};

/* Count a finished round's jobs (mu held). */
static void count_done(struct deliver *d, struct deliver_job *first)
{
	uint64_t now = mx_now_us();
	d->stats.rounds++;
	for (struct deliver_job *j = first; j; j = j->next) {
		if ((unsigned)j->status < DELIVER_NSTATUS)
			d->stats.finished[j->status]++;
		double s = (double)(now - j->submitted_us) / 1e6;
		size_t b = 0;
		while (b < DELIVER_LAT_BOUNDS && s > deliver_lat_bounds_s[b])
			b++;
		d->stats.lat_buckets[b]++;
		d->stats.lat_sum_s += s;
	}
}

void deliver_get_stats(struct deliver *d, struct deliver_stats *out)
{
	pthread_mutex_lock(&d->mu);
	*out = d->stats;
	pthread_mutex_unlock(&d->mu);
	out->spool = d->spool != NULL;
	out->spool_pinned = 0;
	for (int seg = 0; d->spool && seg < 2; seg++)
		out->spool_pinned += spool_pinned(d->spool, seg);
}

/* Hand finished jobs to the loop thread: one pipe byte when the done list
 * was empty (the loop drains the whole list per wake-up). */
static void post_done(struct deliver *d, struct deliver_job *first, struct deliver_job *last)
{
	pthread_mutex_lock(&d->mu);
	count_done(d, first);
	bool was_empty = d->done == NULL;
	*d->done_tail = first;
	d->done_tail = &last->next;
	pthread_mutex_unlock(&d->mu);
	if (was_empty) {
		char c = 1;
		while (write(d->pipe_wr, &c, 1) < 0 && errno == EINTR)
			;
		/* EAGAIN: the pipe already holds a wake-up; that is enough */
	}
}

/* Take every waiting job, up to max (mu held, queue non-empty); returns
 * the first, *lastp the last, *np how many. */
static struct deliver_job *take_queue(struct deliver *d, size_t max, struct deliver_job **lastp,
                                      size_t *np)
{
	struct deliver_job *batch = d->queue, *last = batch;
	size_t n = 1;
	while (last->next && n < max) {
		last = last->next;
		n++;
	}
	d->queue = last->next;
	if (d->queue == NULL)
		d->queue_tail = &d->queue;
	last->next = NULL;
	*lastp = last;
	*np = n;
	return batch;
}

/* Commit a list of written jobs as one round and post their completions. */
static void commit_list(struct deliver *d, struct job_work *list, size_t n)
{
	struct job_work **arr = xcalloc(n, sizeof *arr);
	size_t i = 0;
	for (struct job_work *w = list; w && i < n; w = w->next)
		arr[i++] = w;
	if (d->spool == NULL || !commit_spooled(d, arr, i))
		commit_maildir(d, arr, i);
	for (size_t k = 0; k + 1 < i; k++)
		arr[k]->job->next = arr[k + 1]->job;
	arr[i - 1]->job->next = NULL;
	struct deliver_job *first = arr[0]->job, *last = arr[i - 1]->job;
	for (size_t k = 0; k < i; k++)
		work_free(arr[k]);
	free(arr);
	post_done(d, first, last);
}

/* Phase 1 for a batch taken from the queue: the written jobs as a list in
 * *head; returns the list's last next pointer. */
static struct job_work **write_batch(struct deliver *d, struct deliver_job *batch,
                                     struct job_work **head)
{
	struct job_work **tail = head;
	*head = NULL;
	for (struct deliver_job *j = batch, *next; j; j = next) {
		next = j->next;
		j->next = NULL;
		struct job_work *w = work_write(d, j);
		*tail = w;
		tail = &w->next;
	}
	return tail;
}

/* Maildir writer: takes jobs as they arrive and writes them into tmp/, so
 * that the writing overlaps the committer's sync round. */
static void maildir_writer(struct deliver *d)
{
	for (;;) {
		pthread_mutex_lock(&d->mu);
		while (!d->stopping &&
		       (d->queue == NULL || d->nwritten >= DELIVER_WRITTEN_MAX))
			pthread_cond_wait(&d->cv, &d->mu);
		if (d->queue == NULL) {
			d->writers_left--;
			pthread_cond_signal(&d->ccv);
			pthread_mutex_unlock(&d->mu);
			return;
		}
		struct deliver_job *last;
		size_t n;
		struct deliver_job *batch = take_queue(d, DELIVER_BATCH_MAX, &last, &n);
		pthread_mutex_unlock(&d->mu);

		struct job_work *head;
		struct job_work **tail = write_batch(d, batch, &head);
		pthread_mutex_lock(&d->mu);
		*d->written_tail = head;
		d->written_tail = tail;
		d->nwritten += n;
		pthread_cond_signal(&d->ccv);
		pthread_mutex_unlock(&d->mu);
	}
}

/* Maildir committer: each round takes EVERYTHING written so far and makes
 * it durable with one sync round; what is written meanwhile waits for the
 * next round. One committer, so rounds never split the waiting jobs. */
static void maildir_committer(struct deliver *d)
{
	for (;;) {
		pthread_mutex_lock(&d->mu);
		while (d->written == NULL && d->writers_left > 0)
			pthread_cond_wait(&d->ccv, &d->mu);
		if (d->written == NULL) {
			pthread_mutex_unlock(&d->mu);
			return;
		}
		struct job_work *list = d->written;
		size_t n = d->nwritten;
		d->written = NULL;
		d->written_tail = &d->written;
		d->nwritten = 0;
		pthread_cond_broadcast(&d->cv); /* a writer may wait on the cap */
		pthread_mutex_unlock(&d->mu);
		commit_list(d, list, n);
	}
}

/* Wait for work and take the waiting jobs, up to max; NULL once stopping
 * with nothing queued. spool_idle_wait is a plain wait when there is no
 * spool (relay, Fsync off). */
static struct deliver_job *next_batch(struct deliver *d, size_t max, struct deliver_job **lastp,
                                      size_t *np)
{
	pthread_mutex_lock(&d->mu);
	while (d->queue == NULL && !d->stopping)
		spool_idle_wait(d);
	struct deliver_job *batch = d->queue ? take_queue(d, max, lastp, np) : NULL;
	pthread_mutex_unlock(&d->mu);
	return batch;
}

/* One thread only: take the queue, write it, commit it. */
static void maildir_alone(struct deliver *d)
{
	struct deliver_job *batch, *last;
	size_t n;
	while ((batch = next_batch(d, DELIVER_BATCH_MAX, &last, &n)) != NULL) {
		struct job_work *head;
		write_batch(d, batch, &head);
		commit_list(d, head, n);
	}
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct deliver *d = wk->d;

	if (d->mode != MX_DELIVERY_RELAY) {
		if (d->nworkers == 1)
			maildir_alone(d);
		else if (wk == &d->workers[0])
			maildir_committer(d);
		else
			maildir_writer(d);
		return NULL;
	}
	struct deliver_job *batch, *last;
	size_t n;
	/* One job at a time: each connection is busy with one transaction, and
	 * a job taken by a busy worker would wait while another idles. */
	while ((batch = next_batch(d, 1, &last, &n)) != NULL) {
		relay_deliver(d->relay, wk->rc, batch);
		post_done(d, batch, last);
	}
	relay_conn_free(wk->rc);
	wk->rc = NULL;
	return NULL;
}

/* Run the callbacks of every finished job (loop thread). */
static void dispatch_done(struct deliver *d)
{
	pthread_mutex_lock(&d->mu);
	struct deliver_job *list = d->done;
	d->done = NULL;
	d->done_tail = &d->done;
	pthread_mutex_unlock(&d->mu);
	while (list) {
		struct deliver_job *next = list->next;
		list->next = NULL;
		pthread_mutex_lock(&d->mu);
		void (*done)(struct deliver_job *, void *) = list->done;
		pthread_mutex_unlock(&d->mu);
		if (done)
			done(list, list->arg);
		else
			deliver_job_free(list); /* abandoned */
		list = next;
	}
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
	struct deliver *d = arg;
	char buf[64];
	while (read(fd, buf, sizeof buf) > 0)
		;
	dispatch_done(d);
}

struct deliver *deliver_create(struct event_base *base, const struct mx_config *cfg,
                               unsigned threads)
{
	struct deliver *d = xcalloc(1, sizeof *d);
	int p[2];
	char host[256];

	d->base = base;
	d->mode = cfg->delivery;
	d->fsync = cfg->fsync;
	d->maildir = cfg->maildir ? xstrdup(cfg->maildir) : NULL;
	d->helo_name = xstrdup(cfg->hostname ? cfg->hostname : "localhost");
	if (d->mode == MX_DELIVERY_RELAY) {
		d->relay = relay_new(cfg->relay_target, d->helo_name);
		if (d->relay == NULL) {
			log_event(LOG_ERR, "deliver_error", "reason=\"bad Relay_Target\"");
			free(d->maildir);
			free(d->helo_name);
			free(d);
			return NULL;
		}
	} else if (d->maildir == NULL) {
		free(d->helo_name);
		free(d);
		return NULL;
	}
	if (gethostname(host, sizeof host) != 0)
		strcpy(host, "localhost");
	host[sizeof host - 1] = '\0';
	size_t o = 0;
	for (const char *s = host; *s && o + 5 < sizeof d->unique_host; s++) {
		if (*s == '/' || *s == ':') {
			o += (size_t)snprintf(d->unique_host + o, sizeof d->unique_host - o,
			                      "\\%03o", (unsigned char)*s);
		} else {
			d->unique_host[o++] = *s;
		}
	}
	d->unique_host[o] = '\0';
	atomic_init(&d->counter, 0);
	d->pid = (long)getpid();

	pthread_mutex_init(&d->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	/* spool_idle_wait's and the checkpointer's retry timers */
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cv, &ca);
	pthread_cond_init(&d->kcv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&d->ccv, NULL);
	d->root_fd = -1;
	d->ckpt_seg = -1;
	d->retry_seg = -1;
	d->queue_tail = &d->queue;
	d->written_tail = &d->written;
	d->done_tail = &d->done;
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
		abort();
	d->pipe_rd = p[0];
	d->pipe_wr = p[1];
	d->pipe_ev = event_new(base, d->pipe_rd, EV_READ | EV_PERSIST, on_pipe, d);
	if (d->pipe_ev == NULL || event_add(d->pipe_ev, NULL) != 0)
		abort();
	d->nworkers = threads ? threads : 1;
	if (d->mode == MX_DELIVERY_MAILDIR && d->fsync)
		spool_start(d);
	/* With the spool one thread writes, appends and renames: a round's
	 * sync is one fdatasync, so overlapping it with the next writes buys
	 * less than the hand-offs between two threads cost (bench/run (b):
	 * 14.3-16.1k msg/s with one thread, 12.8-14.2k with writer+committer). */
	if (d->spool)
		d->nworkers = 1;
	d->writers_left = d->nworkers - 1;
	d->workers = xcalloc(d->nworkers, sizeof *d->workers);
	for (unsigned i = 0; i < d->nworkers; i++) {
		d->workers[i].d = d;
		if (d->relay)
			d->workers[i].rc = relay_conn_new();
		if (pthread_create(&d->workers[i].tid, NULL, worker_main, &d->workers[i]) != 0)
			abort();
		/* names for top -H, ps -L and perf (15 bytes at most) */
		pthread_setname_np(d->workers[i].tid, d->mode == MX_DELIVERY_RELAY ? "mx-relay"
		                                      : d->nworkers == 1          ? "mx-deliver"
		                                      : i == 0                    ? "mx-commit"
		                                                                  : "mx-write");
	}
	return d;
}

/* Read the free space under the Maildir root again if the last read is a
 * second old (loop thread). */
static void room_read(struct deliver *d)
{
	uint64_t now = mx_now_ms();
	if (d->room_read_ms != 0 && now - d->room_read_ms < 1000)
		return;
	d->room_read_ms = now;
	struct statvfs sv;
	if (statvfs(d->maildir, &sv) != 0) {
		if (d->room_known)
			log_event(LOG_WARNING, "storage_unknown", "path=\"%s\" error=\"%s\"", d->maildir,
			          strerror(errno));
		d->room_known = false;
		return;
	}
	d->room_known = true;
	d->room_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
	/* a filesystem without an inode count (f_files 0) never runs out */
	d->room_inodes = sv.f_files == 0 ? UINT64_MAX : (uint64_t)sv.f_favail;
}

bool deliver_has_room(struct deliver *d, uint64_t size, uint64_t reserve)
{
	if (d->mode == MX_DELIVERY_RELAY)
		return true;
	room_read(d);
	if (!d->room_known)
		return true;
	bool low = d->room_bytes < reserve || d->room_inodes < DELIVER_MIN_INODES;
	if (low != d->room_low) {
		d->room_low = low;
		log_event(low ? LOG_WARNING : LOG_NOTICE, low ? "storage_low" : "storage_ok",
		          "path=\"%s\" free_bytes=%llu reserve=%llu free_inodes=%llu", d->maildir,
		          (unsigned long long)d->room_bytes, (unsigned long long)reserve,
		          (unsigned long long)d->room_inodes);
	}
	if (low)
		return false;
	/* room_bytes - reserve >= 1.5 x size, without overflow */
	uint64_t spare = d->room_bytes - reserve;
	return size <= spare && spare - size >= size / 2;
}

bool deliver_next_hop_down(struct deliver *d)
{
	return d->relay && relay_is_down(d->relay);
}

bool deliver_free_space(struct deliver *d, uint64_t *bytes, uint64_t *inodes)
{
	if (d->mode == MX_DELIVERY_RELAY || !d->room_known)
		return false;
	*bytes = d->room_bytes;
	*inodes = d->room_inodes;
	return true;
}

void deliver_submit(struct deliver *d, struct deliver_job *job,
                    void (*done)(struct deliver_job *job, void *arg), void *arg)
{
	job->done = done;
	job->arg = arg;
	job->next = NULL;
	job->status = DELIVER_TEMPFAIL;
	job->detail[0] = '\0';
	job->submitted_us = mx_now_us();
	pthread_mutex_lock(&d->mu);
	d->stats.submitted++;
	*d->queue_tail = job;
	d->queue_tail = &job->next;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

void deliver_abandon(struct deliver *d, struct deliver_job *job)
{
	pthread_mutex_lock(&d->mu);
	job->done = NULL;
	job->arg = NULL;
	pthread_mutex_unlock(&d->mu);
}

void deliver_destroy(struct deliver *d)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	d->stopping = true;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	for (unsigned i = 0; i < d->nworkers; i++)
		pthread_join(d->workers[i].tid, NULL);
	spool_stop(d);
	if (d->root_fd >= 0)
		close(d->root_fd);
	/* every job submitted and not abandoned still gets its one callback */
	dispatch_done(d);
	event_free(d->pipe_ev);
	close(d->pipe_rd);
	close(d->pipe_wr);
	pthread_mutex_destroy(&d->mu);
	pthread_cond_destroy(&d->cv);
	pthread_cond_destroy(&d->ccv);
	pthread_cond_destroy(&d->kcv);
	free(d->workers);
	free(d->maildir);
	relay_free(d->relay);
	free(d->helo_name);
	free(d);
}

void deliver_job_free(struct deliver_job *job)
{
	if (job == NULL)
		return;
	free(job->mail_from);
	for (size_t i = 0; i < job->nrcpts; i++) {
		free(job->rcpts[i].local);
		free(job->rcpts[i].domain);
		free(job->rcpts[i].targets);
	}
	free(job->rcpts);
	free(job->data);
	free(job);
}

/* ---- start-up cleaning ---- */

/*
 * This runs as root, before the privileges are dropped, in a tree the mail
 * user owns: a symlink planted anywhere below the root (MAILDIR/x/y/tmp ->
 * /etc, MAILDIR/evil -> /) must not make us delete files outside it. So
 * every level below the root is opened relative to its parent's descriptor
 * with O_NOFOLLOW | O_DIRECTORY (a symlink or a non-directory fails with
 * ELOOP/ENOTDIR and is skipped), entries are examined with fstatat(...,
 * AT_SYMLINK_NOFOLLOW) and removed with unlinkat() relative to the tmp/
 * descriptor: no path is ever resolved again from the root. The root itself
 * is the administrator's setting and may be a symlink.
 */

/* The directory `name` under dirfd as a stream, never through a symlink;
 * NULL for anything else (a symlink, a file, an error). A folder we may not
 * open (EACCES, EPERM: root without CAP_DAC_OVERRIDE facing the mail
 * user's 0700 folders) counts in *denied. */
static DIR *clean_open_subdir(int dirfd, const char *name, size_t *denied)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == EACCES || errno == EPERM)
			(*denied)++;
		return NULL;
	}
	DIR *dp = fdopendir(fd);
	if (dp == NULL)
		close(fd);
	return dp;
}

static bool clean_is_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/* Remove the regular files directly in the tmp/ directory `tmp` (the stream
 * is the caller's): files removed. */
static size_t clean_dir_files(DIR *tmp)
{
	int fd = dirfd(tmp);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(tmp)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		struct stat st;
		if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
		    unlinkat(fd, e->d_name, 0) == 0)
			n++;
	}
	return n;
}

size_t deliver_clean_tmp_count(const char *root, size_t *denied)
{
	size_t n = 0;
	*denied = 0;
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return 0;
	DIR *top = fdopendir(rootfd);
	if (top == NULL) {
		close(rootfd);
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(top)) != NULL) {
		if (clean_is_dot(de->d_name))
			continue;
		DIR *dom = clean_open_subdir(dirfd(top), de->d_name, denied);
		if (dom == NULL)
			continue;
		struct dirent *le;
		while ((le = readdir(dom)) != NULL) {
			if (clean_is_dot(le->d_name))
				continue;
			DIR *box = clean_open_subdir(dirfd(dom), le->d_name, denied);
			if (box == NULL)
				continue;
			DIR *tmp = clean_open_subdir(dirfd(box), "tmp", denied);
			if (tmp != NULL) {
				n += clean_dir_files(tmp);
				closedir(tmp);
			}
			closedir(box);
		}
		closedir(dom);
	}
	closedir(top);
	return n;
}

void deliver_clean_tmp(const struct mx_config *cfg)
{
	if (cfg->delivery != MX_DELIVERY_MAILDIR || cfg->maildir == NULL)
		return;
	size_t denied;
	size_t n = deliver_clean_tmp_count(cfg->maildir, &denied);
	char q[PATH_MAX + 64];
	log_event(denied ? LOG_WARNING : n ? LOG_NOTICE : LOG_INFO, "maildir_clean",
	          "removed=%zu denied=%zu root=%s", n, denied,
	          log_quote(cfg->maildir, strlen(cfg->maildir), q, sizeof q));
}
