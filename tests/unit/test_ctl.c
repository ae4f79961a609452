/* Unit tests for src/ctl: word splitting and a console round trip over a
 * real Unix socket (the server's loop runs in a thread, the client is the
 * same code `mxsieve ctl` runs). */
#include "unit.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl/ctl.h"

UNIT_TEST(split_words)
{
	char line[] = "inbound_audit  show ip \"192.0.2.1/24\" \"a \\\"b\\\"\"";
	char *argv[8];
	int n = ctl_split(line, argv, 8);
	CHECK_EQ(n, 5);
	CHECK_STR(argv[0], "inbound_audit");
	CHECK_STR(argv[2], "ip");
	CHECK_STR(argv[3], "192.0.2.1/24");
	CHECK_STR(argv[4], "a \"b\"");
	char empty[] = "   ";
	CHECK_EQ(ctl_split(empty, argv, 8), 0);
	char many[] = "a b c d e f";
	CHECK_EQ(ctl_split(many, argv, 3), 3);
}

static char *echo_handler(void *arg, int argc, char **argv)
{
	char buf[256];
	int o = snprintf(buf, sizeof buf, "%s argc=%d\n.dotted line\n", (const char *)arg, argc);
	for (int i = 1; i < argc && o < 200; i++)
		o += snprintf(buf + o, sizeof buf - (size_t)o, "[%s]", argv[i]);
	snprintf(buf + o, sizeof buf - (size_t)o, "\n");
	return strdup(buf);
}

static char *fail_handler(void *arg, int argc, char **argv)
{
	return strdup("error: it failed\n");
}

static void *loop_thread(void *arg)
{
	event_base_dispatch(arg);
	return NULL;
}

static int run_client(const char *path, int argc, char **argv, char *out, size_t outlen)
{
	fflush(stdout);
	int saved = dup(1);
	FILE *tmp = tmpfile();
	dup2(fileno(tmp), 1);
	int rc = ctl_client_main(path, argc, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	rewind(tmp);
	size_t n = fread(out, 1, outlen - 1, tmp);
	out[n] = '\0';
	fclose(tmp);
	return rc;
}

UNIT_TEST(round_trip)
{
	char path[64], err[128], out[512];
	pthread_t t;

	evthread_use_pthreads();
	struct event_base *base = event_base_new();
	snprintf(path, sizeof path, "/tmp/mxsieve-ctl-test-%d.sock", (int)getpid());
	struct ctl *c = ctl_create(base, path, err, sizeof err);
	CHECK(c != NULL);
	if (!c)
		return;
	ctl_register(c, "echo", "echo ARGS", echo_handler, "hello");
	ctl_register(c, "fail", "fail", fail_handler, NULL);
	pthread_create(&t, NULL, loop_thread, base);

	char *a1[] = {"echo", "x y", "z"};
	CHECK_EQ(run_client(path, 3, a1, out, sizeof out), 0);
	CHECK_STR(out, "hello argc=3\n.dotted line\n[x y][z]\n");
	char *a2[] = {"fail"};
	CHECK_EQ(run_client(path, 1, a2, out, sizeof out), 1);
	CHECK_STR(out, "error: it failed\n");
	char *a3[] = {"nosuch"};
	CHECK_EQ(run_client(path, 1, a3, out, sizeof out), 1);
	CHECK(strstr(out, "unknown command") != NULL);
	char *a4[] = {"help"};
	CHECK_EQ(run_client(path, 1, a4, out, sizeof out), 0);
	CHECK_STR(out, "help: this list\necho ARGS\nfail\n");

	/* A client still connected when the console goes away: ctl_destroy
	 * frees its connection (LeakSanitizer checks in check-san). */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	CHECK_EQ(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	CHECK_EQ(write(fd, "help\n", 5), 5);
	ssize_t got = read(fd, out, sizeof out - 1); /* served: it is open on the server */
	CHECK(got > 0);

	/* With pthreads enabled the break wakes the loop itself. */
	event_base_loopbreak(base);
	pthread_join(t, NULL);
	ctl_destroy(c);
	event_base_free(base);
	close(fd);
	CHECK(access(path, F_OK) != 0);
}

int main(void)
{
	return unit_run();
}
