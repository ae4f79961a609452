/*
 * deliver_bench: what group commit buys. Delivers N small messages to a
 * Maildir three ways and prints the wall time of each:
 *   serial  - submit one, wait for its completion, submit the next: every
 *             message pays its own durable round (one spool append +
 *             fdatasync, see src/deliver/spool.h);
 *   grouped - submit all N at once: the delivery thread takes the queue in
 *             batches and pays one round per batch;
 *   nofsync - grouped with Fsync = false, the floor without durability.
 *
 *   deliver_bench [N] [DIR] [THREADS]   (defaults: 2000, /var/tmp, 2)
 */
#include "conf/config.h"
#include "deliver/deliver.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int pending, failed;
static struct event_base *base;

static void on_done(struct deliver_job *job, void *arg)
{
	if (job->status != DELIVER_OK) {
		failed++;
		if (failed == 1)
			fprintf(stderr, "failure: %s\n", job->detail);
	}
	deliver_job_free(job);
	pending--;
}

static struct deliver_job *job_new(int i)
{
	struct deliver_job *j = calloc(1, sizeof *j);
	char local[32];
	snprintf(local, sizeof local, "user%d", i % 10);
	j->mail_from = strdup("bench@example.test");
	j->rcpts = calloc(1, sizeof *j->rcpts);
	j->nrcpts = 1;
	j->rcpts[0].local = strdup(local);
	j->rcpts[0].domain = strdup("example.test");
	const char *body = "Received: from bench\r\nSubject: bench\r\n\r\n"
	                   "A small message of a few hundred bytes, like most of what an MX sees.\r\n";
	j->data = strdup(body);
	j->len = strlen(body);
	return j;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double run(const char *dir, const char *name, bool fsync_on, bool serial, int n,
                  unsigned threads)
{
	char text[1024], path[600], *errs = NULL;
	snprintf(path, sizeof path, "%s/bench.conf", dir);
	snprintf(text, sizeof text,
	         "ESMTP_Listener { Listen \"127.0.0.1:31998\" { } }\n"
	         "Maildir = \"%s/mxbench-%s\"\nFsync = %s\n",
	         dir, name, fsync_on ? "true" : "false");
	struct mx_config *cfg = mx_config_load_text(path, text, strlen(text), &errs);
	if (!cfg) {
		fprintf(stderr, "%s", errs);
		exit(1);
	}
	struct deliver *d = deliver_create(base, cfg, threads);
	/* warm up: create the mailboxes outside the timing */
	pending = 10;
	for (int i = 0; i < 10; i++)
		deliver_submit(d, job_new(i), on_done, NULL);
	while (pending)
		event_base_loop(base, EVLOOP_ONCE);

	double t0 = now();
	if (serial) {
		for (int i = 0; i < n; i++) {
			pending = 1;
			deliver_submit(d, job_new(i), on_done, NULL);
			while (pending)
				event_base_loop(base, EVLOOP_ONCE);
		}
	} else {
		pending = n;
		for (int i = 0; i < n; i++)
			deliver_submit(d, job_new(i), on_done, NULL);
		while (pending)
			event_base_loop(base, EVLOOP_ONCE);
	}
	double dt = now() - t0;
	deliver_destroy(d);
	mx_config_free(cfg);
	printf("%-8s n=%d threads=%u time=%.3fs per_msg=%.1fus msgs_per_s=%.0f failed=%d\n",
	       name, n, threads, dt, dt * 1e6 / n, n / dt, failed);
	snprintf(text, sizeof text, "rm -rf '%s/mxbench-%s'", dir, name);
	if (system(text) != 0)
		fprintf(stderr, "cleanup failed\n");
	return dt;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	const char *dir = argc > 2 ? argv[2] : "/var/tmp";
	unsigned threads = argc > 3 ? (unsigned)atoi(argv[3]) : 2;

	base = event_base_new();
	double serial = run(dir, "serial", true, true, n, threads);
	double grouped = run(dir, "grouped", true, false, n, threads);
	run(dir, "nofsync", false, false, n, threads);
	printf("group commit speed-up: %.1fx\n", serial / grouped);
	event_base_free(base);
	return failed ? 1 : 0;
}
