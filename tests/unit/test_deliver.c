/*
 * test_deliver: Maildir naming and escaping, delivery to several mailboxes,
 * group commit of many jobs, failures (ENOTDIR: tests run as root, so chmod
 * alone cannot make EACCES), abandoned jobs, clean_tmp, and the relay path
 * against real Postfix smtp-sink processes on 127.0.0.1:310xx, each started
 * here and stopped by its PID.
 */
#include "conf/config.h"
#include "deliver/deliver.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

static char tmpdir[64];
static struct event_base *base;

static struct mx_config *config_for(const char *extra)
{
	char text[2048], path[128], *errs = NULL;
	snprintf(path, sizeof path, "%s/t.conf", tmpdir);
	snprintf(text, sizeof text, "ESMTP_Listener { Listen \"127.0.0.1:31999\" { } }\n%s",
	         extra);
	struct mx_config *cfg = mx_config_load_text(path, text, strlen(text), &errs);
	if (cfg == NULL) {
		fprintf(stderr, "config: %s", errs ? errs : "?");
		free(errs);
		abort();
	}
	return cfg;
}

static struct deliver_job *make_job(const char *from, const char *const *rcpts,
                                    const char *data)
{
	struct deliver_job *j = calloc(1, sizeof *j);
	size_t n = 0;
	while (rcpts[n])
		n++;
	j->mail_from = strdup(from);
	j->rcpts = calloc(n, sizeof *j->rcpts);
	j->nrcpts = n;
	for (size_t i = 0; i < n; i++) {
		const char *at = strrchr(rcpts[i], '@');
		j->rcpts[i].local = strndup(rcpts[i], (size_t)(at - rcpts[i]));
		j->rcpts[i].domain = strdup(at + 1);
	}
	j->data = strdup(data);
	j->len = strlen(data);
	snprintf(j->queue_id, sizeof j->queue_id, "Q%p", (void *)j);
	return j;
}

static int pending;
static int n_ok, n_temp, n_perm;
static int n_data_kept; /* completed Maildir jobs whose CRLF copy was not freed */

static void on_done(struct deliver_job *job, void *arg)
{
	char *detail = arg;
	if (job->status == DELIVER_OK) {
		n_ok++;
		n_data_kept += job->data != NULL;
	} else if (job->status == DELIVER_TEMPFAIL) {
		n_temp++;
	} else {
		n_perm++;
	}
	if (detail)
		snprintf(detail, 256, "%s", job->detail);
	deliver_job_free(job);
	pending--;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* Run the loop until every submitted job reported, or `secs` passed. */
static bool run_until_done(int secs)
{
	bool expired = false;
	struct timeval tv = {secs, 0};
	struct event *t = evtimer_new(base, on_timeout, &expired);
	evtimer_add(t, &tv);
	while (pending > 0 && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return pending == 0;
}

static void reset_counts(void)
{
	n_ok = n_temp = n_perm = n_data_kept = 0;
}

/* Files in DIR (regular, not hidden). */
static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The name of the only file in DIR into out. */
static bool only_file(const char *dir, char *out, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;
	if (!d)
		return false;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(out, len, "%s/%s", dir, e->d_name);
			found = true;
		}
	closedir(d);
	return found;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 20);
	*len = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	return buf;
}

UNIT_TEST(component_escaping)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"bob", "bob"},
		{"Bob.Smith", "bob.smith"},
		{"a/b", "a%2Fb"},
		{"..", "%2E."},
		{".", "%2E"},
		{".hidden", "%2Ehidden"},
		{"a..b", "a..b"},
		{"", "%"},
		{"100%", "100%25"},
		{"x y\t", "x%20y%09"},
		{"\"quoted\"", "%22quoted%22"},
		{"a+tag", "a+tag"},
		{"\xc3\xbc", "\xc3\xbc"},
		{"back\\slash:colon", "back%5Cslash%3Acolon"},
	};
	char out[256];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CHECK(deliver_maildir_component(cases[i].in, out, sizeof out));
		CHECK_STR(out, cases[i].want);
	}
	CHECK(!deliver_maildir_component("abcdef", out, 4));
	CHECK(!deliver_maildir_component("///", out, 6));
	struct deliver_rcpt r = {"Bob", "Example.TEST.", 0, NULL};
	CHECK(deliver_maildir_path("/m", &r, out, sizeof out));
	CHECK_STR(out, "/m/example.test/bob");
	struct deliver_rcpt r2 = {"../../etc", "..", 0, NULL};
	CHECK(deliver_maildir_path("/m", &r2, out, sizeof out));
	CHECK_STR(out, "/m/%2E/%2E.%2F..%2Fetc");
	CHECK(!deliver_maildir_path("/m", &r, out, 10));
	/* an address extension (Recipient_Delimiter) names the same folder */
	struct deliver_rcpt r3 = {"Bob+Lists", "example.test", 3, NULL};
	CHECK(deliver_maildir_path("/m", &r3, out, sizeof out));
	CHECK_STR(out, "/m/example.test/bob");
	struct deliver_rcpt r4 = {"bob", "example.test", 3, NULL}; /* all of it */
	CHECK(deliver_maildir_path("/m", &r4, out, sizeof out));
	CHECK_STR(out, "/m/example.test/bob");
}

/* The replay writes only DOMAIN/LOCAL/new/NAME under the Maildir root; a
 * mailbox called "new" is one of those (it was refused before). */
UNIT_TEST(spool_path_check)
{
	static const char *const ok[] = {
		"example.test/bob/new/1.M2P3Q4.host,S=10",
		"example.test/new/new/1.M2P3Q4.host,S=10",
		"new/new/new/new",
		"d/%2E/new/x",
		"d/l/new/..x",
	};
	static const char *const bad[] = {
		"", "/example.test/bob/new/x", "example.test/bob/cur/x", "example.test/bob/tmp/x",
		"example.test/bob/new/", "example.test/bob/new", "example.test/bob/new/x/y",
		"example.test/../new/x", "../bob/new/x", "example.test/./new/x",
		"example.test//new/x", "example.test/bob/new/..", "example.test/bob/new/.",
		"bob/new/x", "a/b/c/new/x", "example.test/bob/newx/x",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
		CHECK(deliver_spool_path_ok(ok[i]));
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(!deliver_spool_path_ok(bad[i]));
}

UNIT_TEST(one_job_several_mailboxes)
{
	char extra[256], dir[256], f1[512], f2[512], detail[256] = "";
	snprintf(extra, sizeof extra, "Maildir = \"%s/md1\"\n", tmpdir);
	struct mx_config *cfg = config_for(extra);
	struct deliver *d = deliver_create(base, cfg, 2);
	CHECK(d != NULL);
	const char *rcpts[] = {"Bob@Example.test", "bob@example.test", "alice@other.test", NULL};
	struct deliver_job *j = make_job("sender@x.test", rcpts,
	                                 "Return-Path: <sender@x.test>\r\nSubject: hi\r\n\r\nbody\r\n.dot\r\n");
	reset_counts();
	pending = 1;
	deliver_submit(d, j, on_done, detail);
	CHECK(run_until_done(10));
	CHECK_EQ(n_ok, 1);
	CHECK_STR(detail, "");
	snprintf(dir, sizeof dir, "%s/md1/example.test/bob/new", tmpdir);
	CHECK_EQ(count_files(dir), 1); /* two spellings, one mailbox, one copy */
	CHECK(only_file(dir, f1, sizeof f1));
	snprintf(dir, sizeof dir, "%s/md1/example.test/bob/tmp", tmpdir);
	CHECK_EQ(count_files(dir), 0);
	snprintf(dir, sizeof dir, "%s/md1/example.test/bob/cur", tmpdir);
	CHECK_EQ(count_files(dir), 0);
	snprintf(dir, sizeof dir, "%s/md1/other.test/alice/new", tmpdir);
	CHECK_EQ(count_files(dir), 1);
	CHECK(only_file(dir, f2, sizeof f2));
	size_t len;
	char *body = slurp(f1, &len);
	const char *want = "Return-Path: <sender@x.test>\nSubject: hi\n\nbody\n.dot\n";
	CHECK_STR(body, want);
	free(body);
	char sz[32];
	snprintf(sz, sizeof sz, ",S=%zu", strlen(want));
	CHECK(strstr(f1, sz) != NULL);
	struct stat s1, s2;
	CHECK(stat(f1, &s1) == 0 && stat(f2, &s2) == 0);
	CHECK(s1.st_ino == s2.st_ino); /* hard link, one inode */
	CHECK_EQ(s1.st_mode & 0777, 0600);
	snprintf(dir, sizeof dir, "%s/md1/example.test/bob", tmpdir);
	CHECK(stat(dir, &s1) == 0 && (s1.st_mode & 0777) == 0700);
	deliver_destroy(d);
	mx_config_free(cfg);
}

UNIT_TEST(group_commit_many_jobs)
{
	char extra[256], dir[256];
	snprintf(extra, sizeof extra, "Maildir = \"%s/md2\"\n", tmpdir);
	struct mx_config *cfg = config_for(extra);
	struct deliver *d = deliver_create(base, cfg, 2);
	reset_counts();
	enum { N = 500 };
	pending = N;
	for (int i = 0; i < N; i++) {
		char r[64];
		snprintf(r, sizeof r, "user%d@example.test", i % 7);
		const char *rcpts[] = {r, NULL};
		deliver_submit(d, make_job("", rcpts, "Subject: x\r\n\r\nhello\r\n"), on_done, NULL);
	}
	CHECK(run_until_done(60));
	CHECK_EQ(n_ok, N);
	CHECK_EQ(n_data_kept, 0); /* each CRLF copy given back once the LF one was made */
	int total = 0;
	for (int u = 0; u < 7; u++) {
		snprintf(dir, sizeof dir, "%s/md2/example.test/user%d/new", tmpdir, u);
		total += count_files(dir);
	}
	CHECK_EQ(total, N); /* unique names: nothing overwritten */
	deliver_destroy(d);
	mx_config_free(cfg);
}

UNIT_TEST(failure_is_tempfail_and_all_or_nothing)
{
	char extra[256], path[256], detail[256] = "";
	/* Maildir root below a regular file: ENOTDIR whatever our uid */
	snprintf(path, sizeof path, "%s/plainfile", tmpdir);
	FILE *f = fopen(path, "w");
	fclose(f);
	snprintf(extra, sizeof extra, "Maildir = \"%s/plainfile/md\"\n", tmpdir);
	struct mx_config *cfg = config_for(extra);
	struct deliver *d = deliver_create(base, cfg, 1);
	const char *rcpts[] = {"a@b.test", NULL};
	reset_counts();
	pending = 1;
	deliver_submit(d, make_job("s@x", rcpts, "x\r\n"), on_done, detail);
	CHECK(run_until_done(10));
	CHECK_EQ(n_temp, 1);
	CHECK(strstr(detail, "Not a directory") != NULL);
	deliver_destroy(d);
	mx_config_free(cfg);

	/* one good mailbox, one broken (its domain folder is a file): the good
	 * one must not keep a copy, an earlier message there is untouched */
	snprintf(extra, sizeof extra, "Maildir = \"%s/md3\"\n", tmpdir);
	cfg = config_for(extra);
	d = deliver_create(base, cfg, 1);
	const char *good[] = {"ok@good.test", NULL};
	pending = 1;
	deliver_submit(d, make_job("s@x", good, "first\r\n"), on_done, NULL);
	CHECK(run_until_done(10));
	snprintf(path, sizeof path, "%s/md3/bad.test", tmpdir);
	f = fopen(path, "w");
	fclose(f);
	const char *both[] = {"ok@good.test", "x@bad.test", NULL};
	reset_counts();
	pending = 1;
	deliver_submit(d, make_job("s@x", both, "second\r\n"), on_done, detail);
	CHECK(run_until_done(10));
	CHECK_EQ(n_temp, 1);
	snprintf(path, sizeof path, "%s/md3/good.test/ok/new", tmpdir);
	CHECK_EQ(count_files(path), 1);
	snprintf(path, sizeof path, "%s/md3/good.test/ok/tmp", tmpdir);
	CHECK_EQ(count_files(path), 0);
	/* a batch mixing good and bad jobs: the good ones still succeed */
	reset_counts();
	pending = 20;
	for (int i = 0; i < 20; i++)
		deliver_submit(d, make_job("s@x", i % 2 ? both : good, "m\r\n"), on_done, NULL);
	CHECK(run_until_done(10));
	CHECK_EQ(n_ok, 10);
	CHECK_EQ(n_temp, 10);
	snprintf(path, sizeof path, "%s/md3/good.test/ok/new", tmpdir);
	CHECK_EQ(count_files(path), 11);
	/* the metrics' view of this deliver: 22 jobs, 11 ok, 11 tempfail */
	struct deliver_stats ds;
	deliver_get_stats(d, &ds);
	CHECK_EQ(ds.submitted, 22);
	CHECK_EQ(ds.finished[DELIVER_OK], 11);
	CHECK_EQ(ds.finished[DELIVER_TEMPFAIL], 11);
	CHECK_EQ(ds.finished[DELIVER_PERMFAIL], 0);
	CHECK(ds.rounds >= 3 && ds.rounds <= 22);
	uint64_t in_buckets = 0;
	for (int b = 0; b <= DELIVER_LAT_BOUNDS; b++)
		in_buckets += ds.lat_buckets[b];
	CHECK_EQ(in_buckets, 22);
	CHECK(ds.lat_sum_s > 0 && ds.lat_sum_s < 30);
	deliver_destroy(d);
	mx_config_free(cfg);
}

UNIT_TEST(abandoned_job_is_written_and_freed)
{
	char extra[256], dir[256];
	snprintf(extra, sizeof extra, "Maildir = \"%s/md4\"\nFsync = false\n", tmpdir);
	struct mx_config *cfg = config_for(extra);
	struct deliver *d = deliver_create(base, cfg, 1);
	const char *rcpts[] = {"gone@example.test", NULL};
	reset_counts();
	struct deliver_job *j = make_job("s@x", rcpts, "x\r\n");
	deliver_submit(d, j, on_done, NULL);
	deliver_abandon(d, j);
	pending = 1;
	deliver_submit(d, make_job("s@x", rcpts, "y\r\n"), on_done, NULL);
	CHECK(run_until_done(10));
	deliver_destroy(d); /* frees the abandoned one if still queued */
	CHECK_EQ(n_ok, 1);   /* only the second had a callback */
	snprintf(dir, sizeof dir, "%s/md4/example.test/gone/new", tmpdir);
	CHECK_EQ(count_files(dir), 2);
	mx_config_free(cfg);
}

UNIT_TEST(clean_tmp_removes_leftovers)
{
	char extra[256], path[512];
	snprintf(extra, sizeof extra, "Maildir = \"%s/md5\"\n", tmpdir);
	struct mx_config *cfg = config_for(extra);
	for (int m = 0; m < 2; m++) {
		snprintf(path, sizeof path, "mkdir -p %s/md5/d.test/u%d/tmp %s/md5/d.test/u%d/new",
		         tmpdir, m, tmpdir, m);
		CHECK(system(path) == 0);
		for (int i = 0; i < 3; i++) {
			snprintf(path, sizeof path, "%s/md5/d.test/u%d/tmp/partial%d", tmpdir, m, i);
			FILE *f = fopen(path, "w");
			fputs("half", f);
			fclose(f);
		}
		snprintf(path, sizeof path, "%s/md5/d.test/u%d/new/kept", tmpdir, m);
		FILE *f = fopen(path, "w");
		fclose(f);
	}
	size_t denied;
	CHECK_EQ(deliver_clean_tmp_count(cfg->maildir, &denied), 6);
	CHECK_EQ(denied, 0);
	snprintf(path, sizeof path, "%s/md5/d.test/u1/tmp", tmpdir);
	CHECK_EQ(count_files(path), 0);
	snprintf(path, sizeof path, "%s/md5/d.test/u1/new", tmpdir);
	CHECK_EQ(count_files(path), 1);
	deliver_clean_tmp(cfg); /* nothing left: logs removed=0 */
	CHECK_EQ(deliver_clean_tmp_count("/nonexistent/root", &denied), 0);
	/* a folder the cleaner may not open is counted, not passed over in
	 * silence (root without CAP_DAC_OVERRIDE before the drop to User, as
	 * under a narrow systemd unit): seen here from a child running as
	 * nobody, with one mailbox 0700 root's and the others open */
	if (geteuid() == 0) {
		snprintf(path, sizeof path, "chmod 755 %s %s/md5 %s/md5/d.test && chmod 700 %s/md5/d.test/u0",
		         tmpdir, tmpdir, tmpdir, tmpdir);
		CHECK(system(path) == 0);
		pid_t pid = fork();
		if (pid == 0) {
			size_t d = 0;
			if (setgid(65534) != 0 || setuid(65534) != 0)
				_exit(2);
			deliver_clean_tmp_count(cfg->maildir, &d);
			_exit(d == 1 ? 0 : 1);
		}
		int st = 0;
		CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	mx_config_free(cfg);
}

/* ---- relay against Postfix smtp-sink ---- */

static pid_t start_sink(int port, const char *extra_flag, const char *extra_arg,
                        const char *dumpdir)
{
	char addr[32], tmpl[300];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	snprintf(tmpl, sizeof tmpl, "%s/msg", dumpdir);
	pid_t pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_WRONLY);
		dup2(nul, 1);
		dup2(nul, 2);
		const char *argv[16];
		int a = 0;
		argv[a++] = "smtp-sink";
		if (getuid() == 0) {
			argv[a++] = "-u";
			argv[a++] = "nobody";
		}
		argv[a++] = "-d";
		argv[a++] = tmpl;
		if (extra_flag) {
			argv[a++] = extra_flag;
			argv[a++] = extra_arg;
		}
		argv[a++] = addr;
		argv[a++] = "10";
		argv[a] = NULL;
		execv("/usr/sbin/smtp-sink", (char *const *)argv);
		_exit(127);
	}
	/* wait until it listens (bounded) */
	for (int i = 0; i < 100; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
		int r = connect(fd, (struct sockaddr *)&sin, sizeof sin);
		close(fd);
		if (r == 0)
			return pid;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	return -1;
}

static void stop_sink(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}

static struct deliver *relay_to(int port, struct mx_config **cfgp)
{
	char extra[256];
	snprintf(extra, sizeof extra, "Delivery = relay\nRelay_Target = \"127.0.0.1:%d\"\n", port);
	*cfgp = config_for(extra);
	return deliver_create(base, *cfgp, 1);
}

UNIT_TEST(relay_to_smtp_sink)
{
	if (access("/usr/sbin/smtp-sink", X_OK) != 0) {
		fprintf(stderr, "smtp-sink missing: relay test skipped\n");
		return;
	}
	char dump[128], detail[256] = "";
	snprintf(dump, sizeof dump, "%s/sink", tmpdir);
	mkdir(dump, 0777);
	chmod(dump, 0777);
	pid_t ok_pid = start_sink(31025, NULL, NULL, dump);
	pid_t hard_pid = start_sink(31026, "-f", "RCPT", dump);
	pid_t soft_pid = start_sink(31027, "-r", ".", dump);
	CHECK(ok_pid > 0 && hard_pid > 0 && soft_pid > 0);

	struct mx_config *cfg;
	struct deliver *d = relay_to(31025, &cfg);
	const char *rcpts[] = {"One@example.test", "two@example.test", NULL};
	const char *msg = "Subject: relay\r\n\r\nline1\r\n.starts with dot\r\n..two\r\nend-marker-7f3a";
	reset_counts();
	pending = 2;
	deliver_submit(d, make_job("from@x.test", rcpts, msg), on_done, detail);
	deliver_submit(d, make_job("", rcpts, "Subject: second\r\n\r\nx\r\n"), on_done, NULL);
	CHECK(run_until_done(20));
	CHECK_EQ(n_ok, 2);
	CHECK(strstr(detail, "250") != NULL);
	/* a bigger message, sequentially, over the kept connection */
	size_t big_len = 300 * 1000;
	char *big = malloc(big_len + 1);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (i % 100 == 98) ? '\r' : (i % 100 == 99) ? '\n' : (i % 100 == 0) ? '.' : 'x';
	big[big_len] = '\0';
	reset_counts();
	pending = 1;
	deliver_submit(d, make_job("big@x.test", rcpts, big), on_done, detail);
	free(big);
	CHECK(run_until_done(20));
	CHECK_EQ(n_ok, 1);
	deliver_destroy(d);
	mx_config_free(cfg);
	/* the dump holds the message as sent, dots un-stuffed by the sink */
	DIR *dp = opendir(dump);
	bool found = false;
	struct dirent *e;
	while (dp && (e = readdir(dp))) {
		char p[512];
		size_t len;
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", dump, e->d_name);
		char *text = slurp(p, &len);
		if (text && strstr(text, "end-marker-7f3a")) {
			found = true;
			CHECK(strstr(text, "\n.starts with dot\r\n..two\r\nend-marker-7f3a") != NULL ||
			      strstr(text, "\n.starts with dot\n..two\nend-marker-7f3a") != NULL);
			CHECK(strstr(text, "One@example.test") != NULL);
			CHECK(strstr(text, "from@x.test") != NULL);
		}
		free(text);
	}
	if (dp)
		closedir(dp);
	CHECK(found);

	d = relay_to(31026, &cfg);
	reset_counts();
	pending = 1;
	deliver_submit(d, make_job("a@x", rcpts, "x\r\n"), on_done, detail);
	CHECK(run_until_done(20));
	CHECK_EQ(n_perm, 1);
	CHECK(strstr(detail, ": 5") != NULL);
	deliver_destroy(d);
	mx_config_free(cfg);

	d = relay_to(31027, &cfg);
	reset_counts();
	pending = 1;
	deliver_submit(d, make_job("a@x", rcpts, "x\r\n"), on_done, detail);
	CHECK(run_until_done(20));
	CHECK_EQ(n_temp, 1);
	CHECK(strstr(detail, ": 4") != NULL);
	deliver_destroy(d);
	mx_config_free(cfg);

	stop_sink(ok_pid);
	stop_sink(hard_pid);
	stop_sink(soft_pid);

	/* nobody listening: tempfail, not a hang */
	d = relay_to(31028, &cfg);
	reset_counts();
	pending = 1;
	deliver_submit(d, make_job("a@x", rcpts, "x\r\n"), on_done, detail);
	CHECK(run_until_done(30));
	CHECK_EQ(n_temp, 1);
	CHECK(strstr(detail, "connect") != NULL);
	deliver_destroy(d);
	mx_config_free(cfg);
}

int main(void)
{
	strcpy(tmpdir, "/tmp/mxdelXXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 2;
	chmod(tmpdir, 0755);
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	int r = unit_run();
	event_base_free(base);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		r = 1;
	return r;
}
