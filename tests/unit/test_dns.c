/* Unit tests for src/net/dns: every record type, NXDOMAIN, a dead server and
 * cancellation, against a real dnsmasq started on a loopback port. */
#include "unit.h"

#include <event2/event.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/dns.h"

#define DNS_TEST_PORT "35353"

struct answer {
	int calls;
	enum dns_status status;
	char text[512];
};

static void on_done(void *arg, enum dns_status st, const char *const *answers, size_t n)
{
	struct answer *a = arg;
	a->calls++;
	a->status = st;
	a->text[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(a->text, "|");
		strncat(a->text, answers[i], sizeof a->text - strlen(a->text) - 2);
	}
}

static pid_t start_dnsmasq(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		execl("/usr/sbin/dnsmasq", "dnsmasq", "--keep-in-foreground", "--no-resolv",
		      "--no-hosts", "--no-daemon", "--listen-address=127.0.0.1",
		      "--bind-interfaces", "--port=" DNS_TEST_PORT, "--user=root", "--pid-file=",
		      "--address=/listed.zone.test/127.0.0.2",
		      "--host-record=v6.zone.test,2001:db8::5",
		      "--txt-record=2.0.0.127.zone.test,listed for spam",
		      "--mx-host=mail.zone.test,mx1.zone.test,10",
		      "--ptr-record=5.2.0.192.in-addr.arpa,host.zone.test",
		      "--local=/zone.test/", "--log-facility=/dev/null", (char *)NULL);
		_exit(127);
	}
	usleep(300 * 1000);
	return pid;
}

static void wait_for(struct event_base *base, struct answer *a)
{
	for (int i = 0; i < 300 && a->calls == 0; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(10 * 1000);
}

UNIT_TEST(lookups)
{
	char err[128];
	pid_t pid = start_dnsmasq();
	struct event_base *base = event_base_new();
	struct dns_resolver *r = dns_resolver_create(base, "127.0.0.1:" DNS_TEST_PORT, 2, err, sizeof err);
	CHECK(r != NULL);
	if (!r)
		goto out;
	struct answer a = {0};
	dns_lookup(r, "listed.zone.test", DNS_TYPE_A, on_done, &a);
	wait_for(base, &a);
	CHECK_EQ(a.calls, 1);
	CHECK_EQ(a.status, DNS_OK);
	CHECK_STR(a.text, "127.0.0.2");

	memset(&a, 0, sizeof a);
	dns_lookup(r, "v6.zone.test", DNS_TYPE_AAAA, on_done, &a);
	wait_for(base, &a);
	CHECK_STR(a.text, "2001:db8::5");

	memset(&a, 0, sizeof a);
	dns_lookup(r, "2.0.0.127.zone.test", DNS_TYPE_TXT, on_done, &a);
	wait_for(base, &a);
	CHECK_STR(a.text, "listed for spam");

	memset(&a, 0, sizeof a);
	dns_lookup(r, "mail.zone.test", DNS_TYPE_MX, on_done, &a);
	wait_for(base, &a);
	CHECK_STR(a.text, "10 mx1.zone.test");

	memset(&a, 0, sizeof a);
	dns_lookup(r, "5.2.0.192.in-addr.arpa", DNS_TYPE_PTR, on_done, &a);
	wait_for(base, &a);
	CHECK_STR(a.text, "host.zone.test");

	memset(&a, 0, sizeof a);
	dns_lookup(r, "nothing.zone.test", DNS_TYPE_A, on_done, &a);
	wait_for(base, &a);
	CHECK_EQ(a.status, DNS_NXDOMAIN);

	/* Cancelled: the callback never runs, even when the answer comes. */
	struct answer c = {0};
	struct dns_query *q = dns_lookup(r, "listed.zone.test", DNS_TYPE_A, on_done, &c);
	dns_cancel(q);
	memset(&a, 0, sizeof a);
	dns_lookup(r, "listed.zone.test", DNS_TYPE_A, on_done, &a);
	wait_for(base, &a);
	CHECK_EQ(c.calls, 0);
	dns_resolver_free(r);
out:
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	event_base_free(base);
}

UNIT_TEST(dead_server_fails_in_time)
{
	char err[128];
	struct event_base *base = event_base_new();
	/* Nothing listens there: the lookup must fail, not hang. */
	struct dns_resolver *r = dns_resolver_create(base, "127.0.0.1:35354", 1, err, sizeof err);
	struct answer a = {0};
	dns_lookup(r, "x.zone.test", DNS_TYPE_A, on_done, &a);
	wait_for(base, &a);
	CHECK_EQ(a.calls, 1);
	CHECK_EQ(a.status, DNS_FAILED);
	dns_resolver_free(r);
	char bad[] = "not an address";
	CHECK(dns_resolver_create(base, bad, 1, err, sizeof err) == NULL);
	event_base_free(base);
}

/* A reload's new resolver adopts the old one: the old lookup in flight
 * still ends on the old one (here: its dead server times out), new ones go
 * to the new server, and the old resolver is freed afterwards (ASan checks
 * the frees in check-san). */
UNIT_TEST(adopt_lets_old_lookups_finish)
{
	char err[128];
	pid_t pid = start_dnsmasq();
	struct event_base *base = event_base_new();
	struct dns_resolver *old = dns_resolver_create(base, "127.0.0.1:35354", 1, err, sizeof err);
	struct dns_resolver *r = dns_resolver_create(base, "127.0.0.1:" DNS_TEST_PORT, 2, err,
	                                             sizeof err);
	CHECK(old && r);
	if (!old || !r)
		goto out;
	struct answer slow = {0}, a = {0}, gone = {0};
	dns_lookup(old, "x.zone.test", DNS_TYPE_A, on_done, &slow);
	struct dns_query *q = dns_lookup(old, "y.zone.test", DNS_TYPE_A, on_done, &gone);
	dns_resolver_adopt(r, old);
	dns_cancel(q); /* a session that ends during its lookup */
	dns_lookup(r, "listed.zone.test", DNS_TYPE_A, on_done, &a);
	wait_for(base, &a);
	CHECK_EQ(a.status, DNS_OK);
	CHECK_STR(a.text, "127.0.0.2");
	CHECK_EQ(slow.calls, 0);
	wait_for(base, &slow);
	CHECK_EQ(slow.calls, 1);
	CHECK_EQ(slow.status, DNS_FAILED);
	/* the drained old resolver has been freed by the loop meanwhile */
	memset(&a, 0, sizeof a);
	dns_lookup(r, "v6.zone.test", DNS_TYPE_AAAA, on_done, &a);
	wait_for(base, &a);
	CHECK_STR(a.text, "2001:db8::5");
	CHECK_EQ(gone.calls, 0);
	/* one still busy is freed with the resolver that adopted it */
	struct dns_resolver *r2 = dns_resolver_create(base, "127.0.0.1:35354", 1, err, sizeof err);
	memset(&slow, 0, sizeof slow);
	dns_lookup(r, "x.zone.test", DNS_TYPE_A, on_done, &slow);
	dns_resolver_adopt(r2, r);
	dns_resolver_adopt(r2, NULL);
	dns_resolver_free(r2);
	CHECK_EQ(slow.calls, 1);
	CHECK_EQ(slow.status, DNS_FAILED);
out:
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	event_base_free(base);
}

/* The answer that ends a retired resolver's last lookup starts the next
 * lookup on the new resolver from inside its callback (a script's second
 * ec_dns_lookup): the retired one must not be freed there, under the c-ares
 * call that is running the callback. It was: ares_destroy inside
 * ares_process_fd called the callback a second time, then a double free. */
struct chain {
	struct dns_resolver *next;
	struct answer first, second;
};

static void on_first(void *arg, enum dns_status st, const char *const *answers, size_t n)
{
	struct chain *c = arg;
	on_done(&c->first, st, answers, n);
	if (c->first.calls == 1)
		dns_lookup(c->next, "2.0.0.127.zone.test", DNS_TYPE_TXT, on_done, &c->second);
}

UNIT_TEST(retired_resolver_outlives_the_callback_of_its_last_answer)
{
	char err[128];
	pid_t pid = start_dnsmasq();
	struct event_base *base = event_base_new();
	/* the same server, another timeout: a reload that changed dns_timeout */
	struct dns_resolver *old = dns_resolver_create(base, "127.0.0.1:" DNS_TEST_PORT, 2, err,
	                                               sizeof err);
	struct dns_resolver *r = dns_resolver_create(base, "127.0.0.1:" DNS_TEST_PORT, 3, err,
	                                             sizeof err);
	CHECK(old && r);
	if (!old || !r)
		goto out;
	struct chain c = {.next = r};
	dns_lookup(old, "listed.zone.test", DNS_TYPE_A, on_first, &c);
	dns_resolver_adopt(r, old);
	wait_for(base, &c.second);
	CHECK_EQ(c.first.calls, 1);
	CHECK_EQ(c.first.status, DNS_OK);
	CHECK_STR(c.first.text, "127.0.0.2");
	CHECK_EQ(c.second.calls, 1);
	CHECK_STR(c.second.text, "listed for spam");
	/* a few more turns: the reaper frees old, and nothing calls back again */
	for (int i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	CHECK_EQ(c.first.calls, 1);
	CHECK_EQ(c.second.calls, 1);
	dns_resolver_free(r);
out:
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	event_base_free(base);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return unit_run();
}
