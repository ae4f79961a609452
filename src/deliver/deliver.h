/*
 * deliver: makes an accepted message durable, off the event loop.
 *
 * The SMTP session hands over a complete message (Return-Path and Received
 * already prepended, dot-unstuffed, CRLF line ends) with its envelope. A
 * worker thread writes it (Maildir: tmp/, fsync, rename into new/, fsync the
 * directory; relay: an SMTP transaction with the downstream MTA) and the
 * completion callback then runs on the event-loop thread. Only after the
 * callback says DELIVER_OK may the session answer 250.
 *
 * Group commit (Maildir): the messages waiting when a round starts are
 * made durable together. With Fsync on they go through the write-ahead
 * spool (spool.h): one append and one fdatasync per round, the Maildir
 * files synced later in bulk and replayed from the spool after a crash.
 * deliver.c's header has the exact order and the failure rules.
 */
#ifndef MX_DELIVER_DELIVER_H
#define MX_DELIVER_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct mx_config;
struct deliver;

enum deliver_status {
	DELIVER_OK = 0,
	DELIVER_TEMPFAIL, /* 451 4.3.0: disk full, permissions, downstream 4xx/down */
	DELIVER_PERMFAIL, /* 554 5.0.0: the downstream refused the message for good */
};
#define DELIVER_NSTATUS 3

struct deliver_rcpt {
	char *local;    /* local part as given (case kept) */
	char *domain;   /* domain, lower-cased */
	size_t box_len; /* the leading bytes of local that name the Maildir
	                 * folder (the part before a Recipient_Delimiter);
	                 * 0 = all of it */
	char *targets;  /* a Valid_Recipients alias: the mailboxes it goes to
	                 * instead, "a@d,b@d" (Maildir only); NULL = its own */
};

struct deliver_job {
	char queue_id[24];          /* set by the session, for logs */
	char *mail_from;            /* reverse-path without <>, "" for the null sender */
	struct deliver_rcpt *rcpts;
	size_t nrcpts;
	/* where it came from, for the next hop (relay: XFORWARD, when offered) */
	char client_addr[48];       /* the client's address as text; "" = unknown */
	char client_helo[256];      /* its HELO/EHLO name; "" = none given */
	bool client_esmtp;          /* it said EHLO */
	char *data;                 /* whole message, CRLF line ends; Maildir delivery
	                             * frees it (NULL) once it holds its LF copy */
	size_t len;
	/* filled by the worker */
	enum deliver_status status;
	bool no_space;              /* TEMPFAIL because the store is full (ENOSPC,
	                             * EDQUOT): the session answers 452 4.3.1 */
	bool no_smtputf8;           /* PERMFAIL because a non-ASCII address cannot go
	                             * to a next hop without SMTPUTF8: 554 5.6.7 */
	char detail[256];           /* reason for logs and for the reply on failure */
	/* private to deliver.c */
	void (*done)(struct deliver_job *job, void *arg);
	void *arg;
	struct deliver_job *next;
	uint64_t submitted_us;      /* monotonic, for the latency histogram */
};

/* Set a job's outcome and its detail (printf-style; cut at its size). */
void deliver_job_status(struct deliver_job *job, enum deliver_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Counters for the metrics endpoint. Latency is per job, from
 * deliver_submit until the job is durable (or failed) and its completion is
 * posted to the loop: what a client waits for its 250 after the final dot,
 * less the loop's own turn. */
#define DELIVER_LAT_BOUNDS 11
extern const double deliver_lat_bounds_s[DELIVER_LAT_BOUNDS]; /* bucket upper bounds */
struct deliver_stats {
	uint64_t submitted;                       /* jobs queued */
	uint64_t finished[DELIVER_NSTATUS];       /* by enum deliver_status */
	uint64_t rounds;                          /* commit rounds / relay batches */
	uint64_t lat_buckets[DELIVER_LAT_BOUNDS + 1]; /* not cumulative; last = +Inf */
	double lat_sum_s;
	/* the write-ahead spool (Maildir with Fsync on) */
	bool spool;                               /* in use (false: off, or never) */
	unsigned spool_pinned;                    /* segments whose messages are not all
	                                           * in their mailboxes yet (0-2) */
	uint64_t checkpoints;                     /* segments synced and marked clean */
	uint64_t retries_ok, retries_failed;      /* places of a pinned segment */
};
void deliver_get_stats(struct deliver *d, struct deliver_stats *out);

/* Room in the Maildir store (loop thread): false when the filesystem under
 * the Maildir root has less than reserve + 1.5 x size bytes available to
 * us (size: the client's SIZE, 0 when it gave none), or fewer than
 * DELIVER_MIN_INODES free inodes (each message is a file). Free space is
 * read with statvfs() at most once a second; when it cannot be read, or
 * for relay delivery, there is room. A change between "low" (less than
 * the reserve alone) and "ok" is logged once (event=storage_low / storage_ok). */
#define DELIVER_MIN_INODES 1000
bool deliver_has_room(struct deliver *d, uint64_t size, uint64_t reserve);

/* Delivery = relay and the next hop is in its down hold (relay.h): a new
 * transaction would only get its 451 at the final dot. */
bool deliver_next_hop_down(struct deliver *d);

/* What the last deliver_has_room read: bytes and inodes available, false
 * when nothing was read yet (or relay). */
bool deliver_free_space(struct deliver *d, uint64_t *bytes, uint64_t *inodes);

/* Start the workers for cfg (Maildir root or relay target): `threads` of
 * them for relay and for Maildir without the spool; with Fsync on, open the
 * spool (replaying what a crash left in it) and run one delivery thread plus
 * the checkpointer. */
struct deliver *deliver_create(struct event_base *base, const struct mx_config *cfg,
                               unsigned threads);

/* Queue a job; `done` runs later on the event-loop thread. The job must stay
 * allocated until then. */
void deliver_submit(struct deliver *d, struct deliver_job *job,
                    void (*done)(struct deliver_job *job, void *arg), void *arg);

/* Forget the callback of a job whose session went away: the job is still
 * written (the client may have seen nothing, but a half-written file is never
 * left), then freed by deliver itself. Call on the event-loop thread. */
void deliver_abandon(struct deliver *d, struct deliver_job *job);

/* Remove leftovers in every tmp/ under the Maildir root (start-up). */
void deliver_clean_tmp(const struct mx_config *cfg);

/* Finish queued jobs, stop workers, free. */
void deliver_destroy(struct deliver *d);

/* Free a job and everything it points to (mail_from, rcpts and their
 * strings, data: all malloc'ed by the session). */
void deliver_job_free(struct deliver_job *job);

/* Maildir naming, exposed for tests and tools. One path component: ASCII
 * lower-cased, unsafe bytes and a leading '.' as %XX, "" as "%". False when
 * it does not fit in len. */
bool deliver_maildir_component(const char *in, char *out, size_t len);

/* ROOT/<domain>/<local> for a recipient (one trailing dot of the domain
 * dropped). False when it does not fit. */
bool deliver_maildir_path(const char *root, const struct deliver_rcpt *rcpt,
                          char *out, size_t len);

/* Is p (from a spool record) a path the replay may write: relative, exactly
 * "DOMAIN/LOCAL/new/NAME", no empty, "." or ".." part? */
bool deliver_spool_path_ok(const char *p);

/* deliver_clean_tmp's work for one root, without logging: files removed. */
size_t deliver_clean_tmp_count(const char *root, size_t *denied);

#endif
