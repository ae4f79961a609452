/*
 * test_config: the ecelerity.conf parser and the typed config.
 * Good configs, every option, Momentum-style fallback of limits, and bad
 * input with the exact "FILE:LINE: message" text an operator would see.
 */
#include "conf/conf_parse.h"
#include "conf/config.h"
#include "conf/recipients.h"
#include "sieve/sieve_limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"

static char tmpdir[64];

#define MINIMAL "Maildir = \"/tmp/md\"\nESMTP_Listener { Listen \"127.0.0.1:2525\" { } }\n"

static struct mx_config *load(const char *text, char **errs)
{
	char path[128];
	snprintf(path, sizeof path, "%s/t.conf", tmpdir);
	return mx_config_load_text(path, text, strlen(text), errs);
}

/* A config that must load: its errors are printed and NULL returned (a
 * failed check) when it does not. */
static struct mx_config *load_ok(const char *text)
{
	char *errs = NULL;
	struct mx_config *cfg = load(text, &errs);
	CHECK(cfg != NULL);
	CHECK(errs == NULL);
	if (cfg == NULL && errs != NULL)
		fprintf(stderr, "%s", errs);
	free(errs);
	return cfg;
}

/* Errors of `text` with the temp folder replaced by "T". */
static char *errors_of(const char *text)
{
	char *errs = NULL;
	struct mx_config *cfg = load(text, &errs);
	if (cfg) {
		mx_config_free(cfg);
		return strdup("");
	}
	if (errs == NULL)
		return strdup("(no errors?)");
	size_t tl = strlen(tmpdir);
	char *out = calloc(strlen(errs) + 1, 1), *o = out;
	for (const char *p = errs; *p;) {
		if (strncmp(p, tmpdir, tl) == 0) {
			*o++ = 'T';
			p += tl;
		} else {
			*o++ = *p++;
		}
	}
	free(errs);
	return out;
}

#define CHECK_ERRORS(text, want)                                               \
	do {                                                                   \
		char *e_ = errors_of(text);                                    \
		CHECK_STR(e_, want);                                           \
		free(e_);                                                      \
	} while (0)

UNIT_TEST(parse_tree_shapes)
{
	const char *t = "# comment\nA = 1\nb = \"x \\\"y\\\" \\\\ \\n\" ;\n"
	                "C = ( \"a\", b \"c\" )\nS \"arg\" { D = 2 T word { } }\nE{}\n";
	struct conf_errors errs = {0};
	bool ok;
	unsigned last;
	struct conf_node *head = conf_parse("f", t, strlen(t), &errs, &ok, &last);
	struct conf_node *n = head;
	CHECK(ok);
	CHECK_EQ(last, 6);
	CHECK(errs.buf == NULL);
	CHECK_STR(n->name, "A");
	CHECK_EQ(n->kind, CONF_NODE_OPTION);
	CHECK_STR(n->values[0].text, "1");
	CHECK(!n->values[0].quoted);
	n = n->next;
	CHECK_STR(n->values[0].text, "x \"y\" \\ \n");
	CHECK(n->values[0].quoted);
	CHECK_EQ(n->line, 3);
	n = n->next;
	CHECK(n->is_list);
	CHECK_EQ(n->nvalues, 3);
	CHECK_STR(n->values[1].text, "b");
	n = n->next;
	CHECK_EQ(n->kind, CONF_NODE_SCOPE);
	CHECK_STR(n->arg->text, "arg");
	CHECK_STR(n->children->name, "D");
	CHECK_STR(n->children->next->name, "T");
	CHECK_STR(n->children->next->arg->text, "word");
	CHECK(!n->children->next->arg->quoted);
	CHECK(n->next->arg == NULL);
	conf_node_free(head);
	n = conf_parse("f", "", 0, &errs, &ok, &last);
	CHECK(n == NULL && ok);
}

UNIT_TEST(minimal_and_defaults)
{
	struct mx_config *cfg = load_ok(MINIMAL);
	if (!cfg)
		return;
	CHECK_EQ(cfg->nlistens, 1);
	CHECK_STR(cfg->listens[0].host, "127.0.0.1");
	CHECK_EQ(cfg->listens[0].port, 2525);
	CHECK(!cfg->listens[0].proxy_protocol);
	CHECK_EQ(cfg->listens[0].proxy_timeout, 5);
	CHECK_EQ(cfg->listens[0].limits.max_message_size, 25 * 1024 * 1024);
	CHECK_EQ(cfg->listens[0].limits.max_recipients, 100);
	CHECK_EQ(cfg->listens[0].limits.idle_time, 300);
	CHECK_EQ(cfg->listens[0].limits.data_time, 600);
	CHECK_EQ(cfg->listens[0].limits.max_errors, 20);
	CHECK_EQ(cfg->listens[0].limits.max_receptions, 0);
	CHECK_EQ(cfg->listens[0].limits.listener_sessions, 0);
	CHECK_EQ(cfg->service_sessions, 1000);
	CHECK_EQ(cfg->delivery, MX_DELIVERY_MAILDIR);
	CHECK_STR(cfg->maildir, "/tmp/md");
	CHECK(cfg->fsync);
	CHECK_EQ(cfg->bare_lf, MX_BARE_LF_REJECT);
	CHECK(!cfg->early_talker_reject);
	CHECK_EQ(cfg->shutdown_grace, 30);
	CHECK_EQ(cfg->min_free_space, 100ULL << 20);
	CHECK_EQ(cfg->relay_connections, 8);
	CHECK_EQ(cfg->log_level, LOG_INFO);
	CHECK(!cfg->log_syslog);
	CHECK(cfg->hostname != NULL && cfg->hostname[0]);
	CHECK(cfg->user == NULL);
	CHECK(cfg->tls_certificate == NULL);
	char want[128];
	snprintf(want, sizeof want, "%s/tls", tmpdir);
	CHECK_STR(cfg->tls_dir, want);
	CHECK(cfg->control_path == NULL);
	CHECK(cfg->sieve == NULL);
	CHECK_EQ(cfg->audit.nmonitors, 0);
	CHECK_EQ(cfg->audit.max_tracked, 1000000);
	CHECK(cfg->audit.max_memory == (uint64_t)2 << 30);
	CHECK_EQ(cfg->nrelay_hosts, 0);
	CHECK(cfg->dns_server == NULL);
	mx_config_free(cfg);
}

/* The sieve stanza's defaults are the engine's (conf/ cannot include
 * sieve_limits.h, so they are written twice). */
UNIT_TEST(sieve_defaults_are_the_engines)
{
	struct mx_config *cfg = load_ok(MINIMAL "sieve \"d\" { }\n");
	CHECK(cfg->sieve != NULL);
	CHECK_EQ(cfg->sieve->max_tarpit, SIEVE_DEFAULT_MAX_TARPIT);
	CHECK_EQ(cfg->sieve->max_dns_lookups, SIEVE_DEFAULT_MAX_DNS_LOOKUPS);
	CHECK_EQ(cfg->sieve->max_run_time, SIEVE_DEFAULT_MAX_RUN_TIME);
	mx_config_free(cfg);
}

UNIT_TEST(every_option)
{
	char script[128], cert[128], text[4096];
	snprintf(script, sizeof script, "%s/connect.sieve", tmpdir);
	snprintf(cert, sizeof cert, "%s/cert.pem", tmpdir);
	FILE *f = fopen(script, "w");
	fputs("keep;\n", f);
	fclose(f);
	f = fopen(cert, "w");
	fputs("pem\n", f);
	fclose(f);
	snprintf(text, sizeof text,
	         "hostname = \"MX.Example.Test\"\n"
	         "User = root\n"
	         "Log_Syslog = yes\n"
	         "LOG_LEVEL = debug\n"
	         "Service_Sessions = 500\n"
	         "Relay_Hosts = ( \"127.0.0.0/8\", \"::1\" \"2001:db8::/32\" \"[fe80::]/10\" )\n"
	         "Relay_Domains = ( \"Example.TEST.\" localhost )\n"
	         "Delivery = relay\n"
	         "Maildir = \"var/md\"\n"
	         "Relay_Target = \"[::1]:31025\"\n"
	         "Fsync = false\n"
	         "TLS_Certificate = \"cert.pem\"\n"
	         "TLS_Dir = \"/var/tls\"\n"
	         "Bare_LF = normalize\n"
	         "Early_Talker_Reject = on\n"
	         "Shutdown_Grace = 7\n"
	         "Min_Free_Space = 2G\n"
	         "Relay_Connections = 3\n"
	         "DNS_Server = \"127.0.0.1:5353\"\n"
	         "Max_Message_Size = 10k\n"
	         "Max_Recipients_Per_Message = 3\n"
	         "Max_Receptions_Per_Connection = 4\n"
	         "Max_Errors = 5\n"
	         "Idle_Time = 6\n"
	         "Data_Time = 7\n"
	         "Listener_Sessions = 8\n"
	         "ESMTP_Listener {\n"
	         "  Listen \"*:25\" { }\n"
	         "}\n"
	         "Control_Listener { Listen \"ctl.sock\" { } }\n"
	         "inbound_audit { monitors = ( \"300,6\" \"1800,4\" ) max_tracked = 42; }\n"
	         "sieve \"default\" {\n"
	         "  script connect_phase1 { source = \"connect.sieve\" }\n"
	         "  script \"DATA_phase2\" { source = \"%s\" }\n"
	         "  runtime_error = continue\n"
	         "  max_tarpit = 9\n"
	         "  max_dns_lookups = 2\n"
	         "  dns_timeout = 3\n"
	         "}\n", script);
	struct mx_config *cfg = load_ok(text);
	if (!cfg)
		return;
	char path[160];
	CHECK_STR(cfg->hostname, "MX.Example.Test");
	CHECK_STR(cfg->user, "root");
	CHECK(cfg->log_syslog);
	CHECK_EQ(cfg->log_level, LOG_DEBUG);
	CHECK_EQ(cfg->service_sessions, 500);
	CHECK_EQ(cfg->nrelay_hosts, 4);
	CHECK_EQ(cfg->relay_hosts[0].prefix, 8);
	CHECK_EQ(cfg->relay_hosts[1].prefix, 128);
	CHECK_EQ(cfg->relay_hosts[3].prefix, 10);
	CHECK_EQ(cfg->nrelay_domains, 2);
	CHECK_STR(cfg->relay_domains[0], "example.test");
	CHECK_EQ(cfg->delivery, MX_DELIVERY_RELAY);
	snprintf(path, sizeof path, "%s/var/md", tmpdir);
	CHECK_STR(cfg->maildir, path);
	CHECK_STR(cfg->relay_target, "[::1]:31025");
	CHECK(!cfg->fsync);
	CHECK_STR(cfg->tls_certificate, cert);
	CHECK_STR(cfg->tls_key, cert);
	CHECK_STR(cfg->tls_dir, "/var/tls");
	CHECK_EQ(cfg->bare_lf, MX_BARE_LF_NORMALIZE);
	CHECK(cfg->early_talker_reject);
	CHECK_EQ(cfg->shutdown_grace, 7);
	CHECK_EQ(cfg->min_free_space, 2ULL << 30);
	CHECK_EQ(cfg->relay_connections, 3);
	CHECK_STR(cfg->dns_server, "127.0.0.1:5353");
	CHECK_EQ(cfg->nlistens, 1);
	CHECK_STR(cfg->listens[0].host, "*");
	CHECK_EQ(cfg->listens[0].port, 25);
	CHECK_EQ(cfg->listens[0].limits.max_message_size, 10240);
	CHECK_EQ(cfg->listens[0].limits.max_recipients, 3);
	CHECK_EQ(cfg->listens[0].limits.max_receptions, 4);
	CHECK_EQ(cfg->listens[0].limits.max_errors, 5);
	CHECK_EQ(cfg->listens[0].limits.idle_time, 6);
	CHECK_EQ(cfg->listens[0].limits.data_time, 7);
	CHECK_EQ(cfg->listens[0].limits.listener_sessions, 8);
	snprintf(path, sizeof path, "%s/ctl.sock", tmpdir);
	CHECK_STR(cfg->control_path, path);
	CHECK_EQ(cfg->audit.nmonitors, 2);
	CHECK(cfg->metrics_address == NULL);
	CHECK_EQ(cfg->audit.monitors[1].window, 1800);
	CHECK_EQ(cfg->audit.monitors[1].count, 4);
	CHECK_EQ(cfg->audit.max_tracked, 42);
	CHECK(cfg->sieve != NULL);
	CHECK_STR(cfg->sieve->name, "default");
	CHECK_STR(cfg->sieve->scripts[MX_PHASE_CONNECT][0].source, script);
	CHECK_EQ(cfg->sieve->scripts[MX_PHASE_CONNECT][0].line, 33);
	CHECK_STR(cfg->sieve->scripts[MX_PHASE_DATA][1].source, script);
	CHECK(cfg->sieve->scripts[MX_PHASE_EHLO][0].source == NULL);
	CHECK_EQ(cfg->sieve->runtime_error, MX_RUNTIME_ERROR_CONTINUE);
	CHECK_EQ(cfg->sieve->max_tarpit, 9);
	CHECK_EQ(cfg->sieve->max_dns_lookups, 2);
	CHECK_EQ(cfg->sieve->dns_timeout, 3);

	struct ip_addr a;
	ip_addr_parse("127.9.9.9", &a);
	CHECK(mx_config_can_relay(cfg, &a));
	ip_addr_parse("::ffff:127.0.0.2", &a);
	CHECK(mx_config_can_relay(cfg, &a));
	ip_addr_parse("::1", &a);
	CHECK(mx_config_can_relay(cfg, &a));
	ip_addr_parse("::2", &a);
	CHECK(!mx_config_can_relay(cfg, &a));
	ip_addr_parse("2001:db8:1::5", &a);
	CHECK(mx_config_can_relay(cfg, &a));
	ip_addr_parse("10.0.0.1", &a);
	CHECK(!mx_config_can_relay(cfg, &a));
	CHECK(mx_config_accepts_domain(cfg, "example.test"));
	CHECK(mx_config_accepts_domain(cfg, "EXAMPLE.Test."));
	CHECK(mx_config_accepts_domain(cfg, "LocalHost"));
	CHECK(!mx_config_accepts_domain(cfg, "example.test.."));
	CHECK(!mx_config_accepts_domain(cfg, "sub.example.test"));
	CHECK(!mx_config_accepts_domain(cfg, "example.tes"));
	CHECK(!mx_config_accepts_domain(cfg, ""));
	mx_config_free(cfg);
}

UNIT_TEST(limits_fall_back_innermost_wins)
{
	const char *t =
		"Maildir = \"/tmp/md\"\n"
		"Idle_Time = 100\nMax_Errors = 7\n"
		"ESMTP_Listener {\n"
		"  Listen \"127.0.0.1:1\" { Idle_Time = 1 Proxy_Protocol = true }\n"
		"  Listen \"[::1]:2\" { Max_Errors = 2 Proxy_Timeout = 9 }\n"
		"  Listen \"[::]:3\" { }\n"
		"  Idle_Time = 50  Proxy_Timeout = 3\n"
		"}\n";
	struct mx_config *cfg = load_ok(t);
	if (!cfg)
		return;
	CHECK_EQ(cfg->nlistens, 3);
	CHECK_EQ(cfg->listens[0].limits.idle_time, 1);
	CHECK_EQ(cfg->listens[0].limits.max_errors, 7);
	CHECK(cfg->listens[0].proxy_protocol);
	CHECK_EQ(cfg->listens[0].proxy_timeout, 3);
	CHECK_EQ(cfg->listens[1].limits.idle_time, 50);
	CHECK_EQ(cfg->listens[1].limits.max_errors, 2);
	CHECK_EQ(cfg->listens[1].proxy_timeout, 9);
	CHECK(!cfg->listens[1].proxy_protocol);
	CHECK_STR(cfg->listens[1].host, "::1");
	CHECK_STR(cfg->listens[1].address, "[::1]:2");
	CHECK_EQ(cfg->listens[1].line, 6);
	CHECK_EQ(cfg->listens[2].limits.idle_time, 50);
	CHECK_STR(cfg->listens[2].host, "::");
	CHECK_EQ(cfg->listens[2].limits.max_recipients, 100);
	mx_config_free(cfg);
}

UNIT_TEST(size_suffixes)
{
	static const struct {
		const char *v;
		unsigned long long want;
	} cases[] = {
		{"0", 0}, {"1", 1}, {"1k", 1024}, {"2K", 2048}, {"25M", 25ULL << 20},
		{"1g", 1ULL << 30}, {"26214400", 26214400},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[256];
		snprintf(text, sizeof text, "Max_Message_Size = %s\n" MINIMAL, cases[i].v);
		struct mx_config *cfg = load(text, NULL);
		CHECK(cfg != NULL);
		if (cfg)
			CHECK_EQ(cfg->listens[0].limits.max_message_size, cases[i].want);
		mx_config_free(cfg);
	}
}

UNIT_TEST(syntax_errors_exact)
{
	CHECK_ERRORS("Maildir = \"/x\nESMTP_Listener { }\n",
	             "T/t.conf:1: unterminated string\n");
	CHECK_ERRORS("A = 1\nS {\n  B = 2\n",
	             "T/t.conf:2: scope 'S' opened here is not closed with '}'\n");
	CHECK_ERRORS("A = 1\n}\n", "T/t.conf:2: '}' without a matching '{'\n");
	CHECK_ERRORS("A 1 2\nB = ( 1 2\n",
	             "T/t.conf:1: expected '{' after 'A \"1\"', got a word\n"
	             "T/t.conf:2: list opened here is not closed with ')'\n");
	CHECK_ERRORS("A =\n}", "T/t.conf:2: expected a value after 'A =', got '}'\n"
	                       "T/t.conf:2: '}' without a matching '{'\n");
	CHECK_ERRORS("= 3\n", "T/t.conf:1: expected an option or scope name, got '='\n");
	CHECK_ERRORS("A = ( { )\n", "T/t.conf:1: unexpected '{' in list for 'A'\n");
	CHECK_ERRORS("A = \"x\\\nB = 1\n", "T/t.conf:1: unterminated string\n");
	CHECK_ERRORS("A = \"x\nB = \"y\n", "T/t.conf:1: unterminated string\n"
	                                     "T/t.conf:2: unterminated string\n");
	CHECK_ERRORS("A = 1\x01\n", "T/t.conf:1: unexpected byte 0x01\n");
	/* many lines, many errors: each reported with its own line */
	CHECK_ERRORS("a b\nc d\ne f\n",
	             "T/t.conf:1: expected '{' after 'a \"b\"', got a word\n"
	             "T/t.conf:2: expected '{' after 'c \"d\"', got a word\n"
	             "T/t.conf:3: expected '{' after 'e \"f\"', got end of file\n");
}

UNIT_TEST(option_errors_exact)
{
	CHECK_ERRORS("Bogus = 1\n" MINIMAL, "T/t.conf:1: unknown option 'Bogus'\n");
	CHECK_ERRORS("Idle_Time = soon\n" MINIMAL,
	             "T/t.conf:1: bad value \"soon\" for 'Idle_Time': expected a whole number from 1 to 86400\n");
	CHECK_ERRORS("Idle_Time = 0\n" MINIMAL,
	             "T/t.conf:1: bad value \"0\" for 'Idle_Time': expected a whole number from 1 to 86400\n");
	CHECK_ERRORS("Max_Message_Size = 12X\n" MINIMAL,
	             "T/t.conf:1: bad value \"12X\" for 'Max_Message_Size': expected bytes, optionally with K, M or G\n");
	CHECK_ERRORS("Max_Message_Size = 99999999999999999999\n" MINIMAL,
	             "T/t.conf:1: bad value \"99999999999999999999\" for 'Max_Message_Size': expected bytes, optionally with K, M or G\n");
	CHECK_ERRORS("Fsync = maybe\n" MINIMAL,
	             "T/t.conf:1: bad value \"maybe\" for 'Fsync': expected true or false\n");
	CHECK_ERRORS("Delivery = \"mbox\"\n" MINIMAL,
	             "T/t.conf:1: bad value \"mbox\" for 'Delivery': expected one of maildir, relay\n");
	CHECK_ERRORS("Bare_LF = fix\n" MINIMAL,
	             "T/t.conf:1: bad value \"fix\" for 'Bare_LF': expected one of reject, normalize\n");
	CHECK_ERRORS("Log_Level = loud\n" MINIMAL,
	             "T/t.conf:1: bad value \"loud\" for 'Log_Level': expected one of debug, info, notice, warning, error\n");
	CHECK_ERRORS("Hostname = ( a b )\n" MINIMAL,
	             "T/t.conf:1: option 'Hostname' takes one value, not a list\n");
	CHECK_ERRORS("Hostname = \"bad host\"\n" MINIMAL,
	             "T/t.conf:1: bad value \"bad host\" for 'Hostname': is not a valid host name\n");
	CHECK_ERRORS("User = nosuchuser-mx\n" MINIMAL,
	             "T/t.conf:1: bad value \"nosuchuser-mx\" for 'User': is not a known user\n");
	CHECK_ERRORS("Idle_Time = 1\nidle_time = 2\n" MINIMAL,
	             "T/t.conf:2: duplicate option 'idle_time' (first set at line 1)\n");
	CHECK_ERRORS("Relay_Hosts = ( \"10.0.0.0/8\" \"10.0.0.0/33\" \"fe80::/129\" \"host.example\" )\n" MINIMAL,
	             "T/t.conf:1: bad address or CIDR block \"10.0.0.0/33\" in 'Relay_Hosts'\n"
	             "T/t.conf:1: bad address or CIDR block \"fe80::/129\" in 'Relay_Hosts'\n"
	             "T/t.conf:1: bad address or CIDR block \"host.example\" in 'Relay_Hosts'\n");
	CHECK_ERRORS("Relay_Domains = ( \"a..b\" \"ok.test\" \"x y\" )\n" MINIMAL,
	             "T/t.conf:1: bad domain \"a..b\" in 'Relay_Domains'\n"
	             "T/t.conf:1: bad domain \"x y\" in 'Relay_Domains'\n");
	CHECK_ERRORS("Relay_Target = \"::1:25\"\n" MINIMAL,
	             "T/t.conf:1: bad value \"::1:25\" for 'Relay_Target': is not \"host:port\" or \"[IPv6]:port\"\n");
	CHECK_ERRORS("DNS_Server = \"dns.example\"\n" MINIMAL,
	             "T/t.conf:1: bad value \"dns.example\" for 'DNS_Server': is not \"IP\", \"IP:port\" or \"[IPv6]:port\"\n");
	CHECK_ERRORS("Proxy_Protocol = true\n" MINIMAL,
	             "T/t.conf:1: option 'Proxy_Protocol' belongs in ESMTP_Listener or Listen\n");
	/* every error of a file, not only the first */
	CHECK_ERRORS("A = 1\nB = 2\nIdle_Time = x\n" MINIMAL,
	             "T/t.conf:1: unknown option 'A'\n"
	             "T/t.conf:2: unknown option 'B'\n"
	             "T/t.conf:3: bad value \"x\" for 'Idle_Time': expected a whole number from 1 to 86400\n");
}

UNIT_TEST(scope_errors_exact)
{
	CHECK_ERRORS("Maildir = \"/m\"\nESMTP_Listener { Listen \"::1:25\" { } }\n",
	             "T/t.conf:2: Listen \"::1:25\": an IPv6 address needs brackets, as \"[ADDR]:PORT\"\n");
	CHECK_ERRORS("Maildir = \"/m\"\nESMTP_Listener { Listen \"127.0.0.1\" { } }\n",
	             "T/t.conf:2: Listen \"127.0.0.1\": expected \"IPv4:PORT\", \"[IPv6]:PORT\" or \"*:PORT\"\n");
	CHECK_ERRORS("Maildir = \"/m\"\nESMTP_Listener { Listen \"127.0.0.1:70000\" { } }\n",
	             "T/t.conf:2: Listen \"127.0.0.1:70000\": expected \"IPv4:PORT\", \"[IPv6]:PORT\" or \"*:PORT\"\n");
	CHECK_ERRORS("Maildir = \"/m\"\nESMTP_Listener { Listen \"mx.example:25\" { } }\n",
	             "T/t.conf:2: Listen \"mx.example:25\": \"mx.example\" is not an IP address or '*'\n");
	CHECK_ERRORS("Maildir = \"/m\"\nESMTP_Listener { Listen \"[1.2.3.4]:25\" { } }\n",
	             "T/t.conf:2: Listen \"[1.2.3.4]:25\": expected \"IPv4:PORT\", \"[IPv6]:PORT\" or \"*:PORT\"\n");
	CHECK_ERRORS("Maildir = \"/m\"\nESMTP_Listener {\n Listen \"[::1]:25\" { }\n"
	             " Listen \"[0::1]:25\" { }\n}\n",
	             "T/t.conf:4: duplicate Listen \"[0::1]:25\" (first at line 3)\n");
	/* "*" is 0.0.0.0 and [::]: another address on its port cannot be bound */
	CHECK_ERRORS("Maildir = \"/m\"\nESMTP_Listener {\n Listen \"*:25\" { }\n"
	             " Listen \"[::]:25\" { }\n Listen \"127.0.0.1:25\" { }\n"
	             " Listen \"127.0.0.1:26\" { }\n}\n",
	             "T/t.conf:4: Listen \"[::]:25\" overlaps Listen \"*:25\" (line 3): '*' is every "
	             "address, IPv4 and IPv6, on that port\n"
	             "T/t.conf:5: Listen \"127.0.0.1:25\" overlaps Listen \"*:25\" (line 3): '*' is "
	             "every address, IPv4 and IPv6, on that port\n");
	CHECK_ERRORS("Maildir = \"/m\"\nESMTP_Listener { Listen \"[::1]:25\" { } }\n"
	             "ESMTP_Listener { }\n",
	             "T/t.conf:3: duplicate scope 'ESMTP_Listener' (first at line 2)\n");
	CHECK_ERRORS("Maildir = \"/m\"\nESMTP_Listener { Listen \"[::1]:25\" { Bogus = 1 } }\n",
	             "T/t.conf:2: unknown option 'Bogus' in Listen\n");
	CHECK_ERRORS("Maildir = \"/m\"\nESMTP_Listener { Listen { } }\n",
	             "T/t.conf:2: scope 'Listen' needs an address, as Listen \"127.0.0.1:25\"\n");
	CHECK_ERRORS("Maildir = \"/m\"\nESMTP_Listener \"x\" { Listen \"[::1]:25\" { } }\n",
	             "T/t.conf:2: scope 'ESMTP_Listener' takes no argument (got \"x\")\n");
	CHECK_ERRORS("Maildir = \"/m\"\nNowhere { }\n",
	             "T/t.conf:2: unknown scope 'Nowhere'\n"
	             "T/t.conf:2: no ESMTP_Listener Listen address is configured\n");
	CHECK_ERRORS("Maildir = \"/m\"\n\n",
	             "T/t.conf:2: no ESMTP_Listener Listen address is configured\n");
	CHECK_ERRORS("ESMTP_Listener { Listen \"[::1]:25\" { } }\n",
	             "T/t.conf:1: Delivery \"maildir\" needs Maildir = \"PATH\"\n");
	CHECK_ERRORS("Delivery = relay\nESMTP_Listener { Listen \"[::1]:25\" { } }\n",
	             "T/t.conf:1: Delivery \"relay\" needs Relay_Target = \"host:port\"\n");
	CHECK_ERRORS(MINIMAL "Control_Listener { Listen \"a\" { } Listen \"b\" { } }\n",
	             "T/t.conf:3: Control_Listener takes one Listen (first at line 3)\n");
	CHECK_ERRORS(MINIMAL "Metrics_Listener {\n Listen \"localhost\" { }\n}\n"
	             "Metrics_Listener { }\n",
	             "T/t.conf:4: Metrics_Listener Listen \"localhost\": expected \"ADDRESS:PORT\" "
	             "(\"[::1]:PORT\" for IPv6)\n"
	             "T/t.conf:6: duplicate scope 'Metrics_Listener' (first at line 3)\n");
	CHECK_ERRORS(MINIMAL "Metrics_Listener { Listen \"127.0.0.1:9425\" { x = 1 } Listen \"b\" { } "
	             "Listen { } }\n",
	             "T/t.conf:3: unknown option 'x' in Metrics_Listener Listen\n"
	             "T/t.conf:3: Metrics_Listener takes one Listen (first at line 3)\n"
	             "T/t.conf:3: scope 'Listen' needs an address, as Listen \"127.0.0.1:9425\"\n");
	CHECK_ERRORS(MINIMAL "Metrics_Listener { Listen \"\" { } }\n",
	             "T/t.conf:3: Metrics_Listener Listen: empty address\n");
	/* what the start would refuse, -t refuses first, at the line */
	CHECK_ERRORS(MINIMAL "Metrics_Listener { Listen \"999.1.1.1:9000\" { } }\n",
	             "T/t.conf:3: Metrics_Listener Listen \"999.1.1.1:9000\": \"999.1.1.1\" is not an "
	             "IP address\n");
	CHECK_ERRORS(MINIMAL "Metrics_Listener { Listen \"localhost:9425\" { } }\n",
	             "T/t.conf:3: Metrics_Listener Listen \"localhost:9425\": \"localhost\" is not an "
	             "IP address\n");
	CHECK_ERRORS(MINIMAL "Metrics_Listener { Listen \"[::1:9425\" { } }\n",
	             "T/t.conf:3: Metrics_Listener Listen \"[::1:9425\": expected \"ADDRESS:PORT\" "
	             "(\"[::1]:PORT\" for IPv6)\n");
	char plain[128];
	snprintf(plain, sizeof plain, "%s/plain-file", tmpdir);
	FILE *pf = fopen(plain, "w");
	CHECK(pf != NULL);
	if (pf)
		fclose(pf);
	CHECK_ERRORS(MINIMAL "Control_Listener { Listen \"plain-file\" { } }\n",
	             "T/t.conf:3: Control_Listener Listen \"plain-file\": T/plain-file exists and is "
	             "not a socket\n");
	CHECK_ERRORS(MINIMAL "Control_Listener { Listen \"run/\" { } }\n",
	             "T/t.conf:3: Control_Listener Listen \"run/\": a socket path, not a folder\n");
	CHECK_ERRORS(MINIMAL "inbound_audit { monitors = ( \"300,6\" \"300\" \"0,1\" \"5,x\" ) }\n",
	             "T/t.conf:3: bad monitor \"300\": expected \"SECONDS,WINDOWS\" (1-604800, 1-1000)\n"
	             "T/t.conf:3: bad monitor \"0,1\": expected \"SECONDS,WINDOWS\" (1-604800, 1-1000)\n"
	             "T/t.conf:3: bad monitor \"5,x\": expected \"SECONDS,WINDOWS\" (1-604800, 1-1000)\n");
	CHECK_ERRORS(MINIMAL "inbound_audit { monitors = ( \"1,1\" \"2,1\" \"3,1\" \"4,1\" \"5,1\" "
	             "\"6,1\" \"7,1\" \"8,1\" \"9,1\" \"10,1\" \"11,1\" \"12,1\" \"13,1\" \"14,1\" "
	             "\"15,1\" \"16,1\"\n \"17,1\" ) }\n",
	             "T/t.conf:4: too many monitors: at most 16\n");
	CHECK_ERRORS(MINIMAL "inbound_audit {\n max_memory = 512K\n}\n",
	             "T/t.conf:4: bad value \"512K\" for 'max_memory': expected 1M to 1048576M\n");
	CHECK_ERRORS(MINIMAL "sieve \"a\" {\n script connect_phase3 { source = \"x\" }\n"
	             " script ehlo_phase1 { }\n script data_phase1 { source = \"/nonexistent/x\" }\n"
	             " runtime_error = explode\n}\nsieve \"b\" { }\n",
	             "T/t.conf:4: unknown script phase \"connect_phase3\": expected PHASE_phase1 or PHASE_phase2, PHASE one of connect, ehlo, mailfrom, rcptto, data\n"
	             "T/t.conf:5: script ehlo_phase1 needs source = \"PATH\"\n"
	             "T/t.conf:6: script data_phase1: cannot read \"/nonexistent/x\": No such file or directory\n"
	             "T/t.conf:7: bad value \"explode\" for 'runtime_error': expected one of fail, continue\n"
	             "T/t.conf:9: only one sieve stanza is supported (first at line 3)\n");
	CHECK_ERRORS(MINIMAL "TLS_Key = \"k.pem\"\n",
	             "T/t.conf:3: TLS_Key is set but TLS_Certificate is not\n");
	CHECK_ERRORS(MINIMAL "TLS_Certificate = \"nope.pem\"\n",
	             "T/t.conf:3: TLS_Certificate \"T/nope.pem\": No such file or directory\n");
}

/* What a reload cannot apply is named, and only when it changed. */
UNIT_TEST(restart_changes_named)
{
	char *errs = NULL, out[256];
	struct mx_config *a = load(MINIMAL "DNS_Server = \"127.0.0.1:53\"\n"
	                           "inbound_audit { monitors = ( \"300,6\" ) }\n", &errs);
	struct mx_config *same = load(MINIMAL "DNS_Server = \"127.0.0.1:5353\"\n"
	                              "Hostname = \"other.test\"\n"
	                              "inbound_audit { monitors = ( \"300,6\" ) }\n", &errs);
	struct mx_config *b = load("Maildir = \"/tmp/md2\"\nFsync = false\nUser = \"nobody\"\n"
	                           "Relay_Connections = 2\n"
	                           "ESMTP_Listener { Listen \"127.0.0.1:2525\" { } }\n"
	                           "inbound_audit { monitors = ( \"300,6\" \"60,2\" ) }\n", &errs);
	CHECK(a && same && b);
	if (!a || !same || !b)
		goto out;
	CHECK_EQ(mx_config_restart_changes(a, same, out, sizeof out), 0);
	CHECK_STR(out, "");
	/* Relay_Connections matters only to a server relaying */
	CHECK_EQ(mx_config_restart_changes(a, b, out, sizeof out), 4);
	CHECK_STR(out, "User, Maildir, Fsync, inbound_audit");
	/* truncated, never overrun */
	CHECK_EQ(mx_config_restart_changes(a, b, out, 10), 4);
	CHECK_STR(out, "User");
	struct mx_config *r1 = load("Delivery = \"relay\"\nRelay_Target = \"127.0.0.1:25\"\n"
	                            "ESMTP_Listener { Listen \"127.0.0.1:2525\" { } }\n", &errs);
	struct mx_config *r2 = load("Delivery = \"relay\"\nRelay_Target = \"127.0.0.1:25\"\n"
	                            "Relay_Connections = 2\n"
	                            "ESMTP_Listener { Listen \"127.0.0.1:2525\" { } }\n", &errs);
	CHECK(r1 && r2);
	if (r1 && r2) {
		CHECK_EQ(mx_config_restart_changes(r1, r2, out, sizeof out), 1);
		CHECK_STR(out, "Relay_Connections");
	}
	mx_config_free(r1);
	mx_config_free(r2);
out:
	mx_config_free(a);
	mx_config_free(same);
	mx_config_free(b);
}

UNIT_TEST(load_file_and_missing_file)
{
	char path[128], *errs = NULL;
	snprintf(path, sizeof path, "%s/file.conf", tmpdir);
	FILE *f = fopen(path, "w");
	fputs(MINIMAL, f);
	fclose(f);
	struct mx_config *cfg = mx_config_load(path, &errs);
	CHECK(cfg != NULL);
	if (cfg)
		CHECK_STR(cfg->path, path);
	mx_config_free(cfg);
	cfg = mx_config_load("/nonexistent/mx.conf", &errs);
	CHECK(cfg == NULL);
	CHECK_STR(errs, "/nonexistent/mx.conf: cannot open: No such file or directory\n");
	free(errs);
}

UNIT_TEST(embedded_default_config)
{
	/* the file the README's run command uses must load */
	char *errs = NULL;
	struct mx_config *cfg = mx_config_load("examples/mxsieve.conf", &errs);
	if (cfg == NULL && errs) {
		fprintf(stderr, "%s", errs);
		free(errs);
		errs = NULL;
	}
	if (access("examples/mxsieve.conf", R_OK) != 0)
		return; /* run from another folder */
	CHECK(cfg != NULL);
	if (!cfg)
		return;
	CHECK_EQ(cfg->nlistens, 3);
	CHECK(cfg->listens[2].proxy_protocol);
	CHECK_STR(cfg->listens[1].host, "::1");
	CHECK(strstr(cfg->maildir, "examples/../var/maildir") != NULL);
	CHECK(cfg->maildir[0] == '/');
	CHECK(cfg->sieve && cfg->sieve->scripts[MX_PHASE_CONNECT][0].source);
	CHECK_EQ(cfg->nrelay_hosts, 0);
	CHECK(mx_config_accepts_domain(cfg, "example.test"));
	mx_config_free(cfg);
}

UNIT_TEST(phase_names)
{
	CHECK_STR(mx_phase_name(MX_PHASE_CONNECT), "connect");
	CHECK_STR(mx_phase_name(MX_PHASE_EHLO), "ehlo");
	CHECK_STR(mx_phase_name(MX_PHASE_MAILFROM), "mailfrom");
	CHECK_STR(mx_phase_name(MX_PHASE_RCPTTO), "rcptto");
	CHECK_STR(mx_phase_name(MX_PHASE_DATA), "data");
}

UNIT_TEST(hostport_split)
{
	char h[64];
	uint16_t port;
	CHECK(mx_hostport_split("a.example:25", h, sizeof h, &port, true));
	CHECK_STR(h, "a.example");
	CHECK_EQ(port, 25);
	CHECK(mx_hostport_split("[::1]:31000", h, sizeof h, &port, true));
	CHECK_STR(h, "::1");
	CHECK(!mx_hostport_split("[::1]", h, sizeof h, &port, true));
	CHECK(mx_hostport_split("[::1]", h, sizeof h, &port, false));
	CHECK(!mx_hostport_split("::1:25", h, sizeof h, &port, true));
	CHECK(!mx_hostport_split("[::1]25", h, sizeof h, &port, true));
	CHECK(!mx_hostport_split("h:0", h, sizeof h, &port, true));
	CHECK(!mx_hostport_split(":25", h, sizeof h, &port, true));
	CHECK(!mx_hostport_split("h:", h, sizeof h, &port, true));
}

static void write_file(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

#define RCPT_CONF                                                              \
	MINIMAL "Relay_Domains = ( \"example.test\" \"Other.Test.\" )\n"        \
	        "Valid_Recipients = \"rcpt\"\n"

UNIT_TEST(valid_recipients_lookup)
{
	write_file("rcpt", "# mailboxes\n\n  Alice@Example.TEST  \nbob@example.test\r\n"
	                   "bob@example.test\n\"john doe\"@example.test\n@other.test.\n");
	struct mx_config *cfg = load_ok(RCPT_CONF);
	if (cfg == NULL)
		return;
	const struct mx_recipients *r = cfg->recipients;
	CHECK(r != NULL);
	CHECK_EQ(mx_recipients_count(r), 4); /* bob once */
	CHECK(mx_recipients_has(r, "alice", "example.test"));
	CHECK(mx_recipients_has(r, "ALICE", "EXAMPLE.test."));
	CHECK(mx_recipients_has(r, "bob", "example.test"));
	CHECK(mx_recipients_has(r, "\"john doe\"", "example.test"));
	CHECK(!mx_recipients_has(r, "carol", "example.test"));
	CHECK(!mx_recipients_has(r, "alic", "example.test"));
	CHECK(!mx_recipients_has(r, "alice", "example.tes"));
	CHECK(mx_recipients_has(r, "anyone", "other.test"));
	CHECK(mx_recipients_has(r, "x", "OTHER.TEST"));
	mx_config_free(cfg);
}

UNIT_TEST(valid_recipients_quoted_entries_are_canonical)
{
	/* an entry is canonicalised as the SMTP side canonicalises RCPT TO
	 * (mx_local_canonical): lookups take the canonical local part */
	write_file("rquoted", "\"bob\"@example.test\n\"john\\ doe\"@example.test\n"
	                      "\"first.last\"@example.test \"Carol\"@example.test\n"
	                      "\"x\\\"y\"@example.test\n");
	struct mx_config *cfg = load_ok(MINIMAL "Relay_Domains = ( \"example.test\" )\n"
	                                        "Valid_Recipients = \"rquoted\"\n");
	if (cfg == NULL)
		return;
	const struct mx_recipients *r = cfg->recipients;
	const char *t = NULL;
	CHECK(mx_recipients_has(r, "bob", "example.test"));
	CHECK(mx_recipients_has(r, "\"john doe\"", "example.test"));
	CHECK(!mx_recipients_has(r, "\"john\\ doe\"", "example.test")); /* not canonical */
	CHECK(mx_recipients_lookup(r, "first.last", "example.test", &t) && t != NULL);
	if (t)
		CHECK_STR(t, "carol@example.test");
	CHECK(mx_recipients_has(r, "\"x\\\"y\"", "example.test"));
	mx_config_free(cfg);
	/* a quoted local part is a Quoted-string, as SMTP takes it */
	write_file("rquoted2", "\"a\"b\"@example.test\n\"ab\\\"@example.test\n");
	CHECK_ERRORS(MINIMAL "Relay_Domains = ( \"example.test\" )\n"
	                     "Valid_Recipients = \"rquoted2\"\n",
	             "T/rquoted2:1: \"\"a\"b\"@example.test\" a '\"' inside a quoted local part "
	             "must be written '\\\"'\n"
	             "T/rquoted2:2: \"\"ab\\\"@example.test\" a '\\' in a quoted local part must "
	             "escape a printable character\n");
}

UNIT_TEST(valid_recipients_errors)
{
	write_file("rcpt2", "ok@example.test\nno-at-sign\nx@elsewhere.test\nx@\n"
	                    "two words@example.test\na<b@example.test\na@b@example.test\n"
	                    ".a@example.test\na..b@example.test\n\"a@b\"@example.test\n"
	                    "j\xc3\xb6rg@example.test\n");
	CHECK_ERRORS(MINIMAL "Relay_Domains = ( \"example.test\" )\n"
	                     "Valid_Recipients = \"rcpt2\"\n",
	             "T/rcpt2:2: \"no-at-sign\" is not \"local@domain\" or \"@domain\"\n"
	             "T/rcpt2:3: \"x@elsewhere.test\" names a domain that is not in Relay_Domains\n"
	             "T/rcpt2:4: \"x@\" has no domain\n"
	             "T/rcpt2:5: \"two words@example.test\" is not \"local@domain\" or \"@domain\"\n"
	             "T/rcpt2:6: \"a<b@example.test\" character not allowed in an unquoted local part\n"
	             "T/rcpt2:7: \"a@b@example.test\" character not allowed in an unquoted local part\n"
	             "T/rcpt2:8: \".a@example.test\" dots must separate words in an unquoted local part\n"
	             "T/rcpt2:9: \"a..b@example.test\" dots must separate words in an unquoted local part\n");
	CHECK_ERRORS(MINIMAL "Relay_Domains = ( \"example.test\" )\n"
	                     "Valid_Recipients = \"missing\"\n",
	             "T/t.conf:4: Valid_Recipients \"T/missing\": No such file or directory\n");
	/* an empty file is valid: only postmaster is taken */
	write_file("rcpt3", "# nobody yet\n");
	struct mx_config *cfg = load_ok(MINIMAL "Relay_Domains = ( \"example.test\" )\n"
	                                        "Valid_Recipients = \"rcpt3\"\n");
	CHECK(cfg != NULL && cfg->recipients != NULL);
	if (cfg && cfg->recipients) {
		CHECK_EQ(mx_recipients_count(cfg->recipients), 0);
		CHECK(!mx_recipients_has(cfg->recipients, "a", "example.test"));
	}
	mx_config_free(cfg);
}

UNIT_TEST(valid_recipients_aliases)
{
	write_file("ralias", "alice@example.test\n"
	                     "postmaster@example.test   alice@example.test, Bob@Example.TEST\n"
	                     "abuse@example.test alice@example.test\n"
	                     "abuse@example.test alice@example.test\n" /* same twice: fine */
	                     "@other.test\talice@example.test\n"
	                     "\"john doe\"@example.test bob@example.test\n");
	struct mx_config *cfg = load_ok(MINIMAL "Relay_Domains = ( \"example.test\" \"other.test\" )\n"
	                                        "Valid_Recipients = \"ralias\"\n");
	if (cfg == NULL)
		return;
	const struct mx_recipients *r = cfg->recipients;
	const char *t = "x";
	CHECK(mx_recipients_lookup(r, "alice", "example.test", &t) && t == NULL);
	CHECK(mx_recipients_lookup(r, "PostMaster", "example.test", &t) && t != NULL);
	if (t)
		CHECK_STR(t, "alice@example.test,bob@example.test");
	CHECK(mx_recipients_lookup(r, "abuse", "example.test", &t) && t != NULL);
	CHECK(mx_recipients_lookup(r, "anyone", "other.test", &t) && t != NULL);
	if (t)
		CHECK_STR(t, "alice@example.test");
	CHECK(mx_recipients_lookup(r, "\"john doe\"", "example.test", &t) && t != NULL);
	/* a target is a mailbox, not an entry: bob is not listed himself */
	CHECK(!mx_recipients_lookup(r, "bob", "example.test", &t));
	mx_config_free(cfg);

	char many[40 * 20 + 64];
	int n = snprintf(many, sizeof many, "m@example.test ");
	for (int i = 0; i < 33; i++)
		n += snprintf(many + n, sizeof many - (size_t)n, "%st%d@example.test", i ? "," : "", i);
	char text[sizeof many + 256];
	snprintf(text, sizeof text, "a@example.test b@elsewhere.test\n"
	                            "c@example.test b@example.test,,d@example.test\n"
	                            "e@example.test x y@example.test\n"
	                            "k@example.test a..b@example.test\n"
	                            "l@example.test nolocal\n%s\n", many);
	write_file("ralias2", text);
	CHECK_ERRORS(MINIMAL "Relay_Domains = ( \"example.test\" )\n"
	                     "Valid_Recipients = \"ralias2\"\n",
	             "T/ralias2:1: \"a@example.test b@elsewhere.test\" has a target whose domain is "
	             "not in Relay_Domains\n"
	             "T/ralias2:2: \"c@example.test b@example.test,,d@example.test\" has a target "
	             "that is not one address (targets: a@d, b@d)\n"
	             "T/ralias2:3: \"e@example.test x y@example.test\" has a target that is not one "
	             "address (targets: a@d, b@d)\n"
	             "T/ralias2:4: \"k@example.test a..b@example.test\" has a target with a bad local "
	             "part\n"
	             "T/ralias2:5: \"l@example.test nolocal\" has a target that is not local@domain\n"
	             "T/ralias2:6: \"m@example.test t0@example.test,t1@example.test,t2@example.test,t3@example.test,\" "
	             "has more than 32 targets\n");
	write_file("ralias3", "f@example.test g@example.test\nf@example.test h@example.test\n");
	CHECK_ERRORS(MINIMAL "Relay_Domains = ( \"example.test\" )\n"
	                     "Valid_Recipients = \"ralias3\"\n",
	             "T/ralias3: \"f@example.test\" is listed twice, differently\n");
	/* with Delivery = relay the next hop has its own aliases */
	CHECK_ERRORS("Delivery = \"relay\"\nRelay_Target = \"127.0.0.1:10025\"\n"
	             "ESMTP_Listener { Listen \"127.0.0.1:2525\" { } }\n"
	             "Relay_Domains = ( \"example.test\" )\nValid_Recipients = \"ralias3\"\n",
	             "T/ralias3:1: \"f@example.test g@example.test\" has alias targets, which need "
	             "Delivery = \"maildir\" (the next hop resolves its own aliases)\n"
	             "T/ralias3:2: \"f@example.test h@example.test\" has alias targets, which need "
	             "Delivery = \"maildir\" (the next hop resolves its own aliases)\n");
}

UNIT_TEST(recipient_delimiter)
{
	struct mx_config *cfg = load_ok(MINIMAL "Recipient_Delimiter = \"+-\"\n");
	if (cfg == NULL)
		return;
	CHECK_EQ(mx_config_mailbox_len(cfg, "bob+lists"), 3);
	CHECK_EQ(mx_config_mailbox_len(cfg, "bob-x+y"), 3);
	CHECK_EQ(mx_config_mailbox_len(cfg, "bob"), 3);
	CHECK_EQ(mx_config_mailbox_len(cfg, "+tag"), 4);        /* nothing left: whole */
	CHECK_EQ(mx_config_mailbox_len(cfg, "\"a+b c\""), 7);  /* quoted: whole */
	mx_config_free(cfg);
	cfg = load_ok(MINIMAL);
	if (cfg)
		CHECK_EQ(mx_config_mailbox_len(cfg, "bob+lists"), 9); /* unset: whole */
	mx_config_free(cfg);
	CHECK_ERRORS(MINIMAL "Recipient_Delimiter = \"\"\n",
	             "T/t.conf:3: bad value \"\" for 'Recipient_Delimiter': must be 1 to 8 characters\n");
	CHECK_ERRORS(MINIMAL "Recipient_Delimiter = \"+.\"\n",
	             "T/t.conf:3: bad value \"+.\" for 'Recipient_Delimiter': may only hold the characters "
	             "! # $ % & ' * + - / = ? ^ _ ` { | } ~\n");
	CHECK_ERRORS(MINIMAL "Recipient_Delimiter = \"++\"\n",
	             "T/t.conf:3: bad value \"++\" for 'Recipient_Delimiter': holds a character twice\n");
}

UNIT_TEST(valid_recipients_odd_files)
{
	char path[160];
	/* a folder, a FIFO (must not hang), a NUL byte, an endless line */
	snprintf(path, sizeof path, "%s/rdir", tmpdir);
	mkdir(path, 0700);
	CHECK_ERRORS(MINIMAL "Relay_Domains = ( \"example.test\" )\n"
	                     "Valid_Recipients = \"rdir\"\n",
	             "T/t.conf:4: Valid_Recipients \"T/rdir\": not a regular file\n");
	snprintf(path, sizeof path, "%s/rfifo", tmpdir);
	CHECK(mkfifo(path, 0600) == 0);
	CHECK_ERRORS(MINIMAL "Relay_Domains = ( \"example.test\" )\n"
	                     "Valid_Recipients = \"rfifo\"\n",
	             "T/t.conf:4: Valid_Recipients \"T/rfifo\": not a regular file\n");
	snprintf(path, sizeof path, "%s/rnul", tmpdir);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("a@example.test\nb", f);
		fputc('\0', f);
		fputs("@example.test\nc@example.test\n", f);
		for (int i = 0; i < 5000; i++)
			fputc('x', f);
		fputs("@example.test\nd@example.test\n", f);
		fclose(f);
	}
	CHECK_ERRORS(MINIMAL "Relay_Domains = ( \"example.test\" )\n"
	                     "Valid_Recipients = \"rnul\"\n",
	             "T/rnul:2: NUL byte in the line\n"
	             "T/rnul:4: line longer than 1024 bytes\n");
}

UNIT_TEST(valid_recipients_many_bad_lines)
{
	char *text = malloc(40 * 8 + 1), *p = text;
	for (int i = 0; i < 40; i++)
		p += sprintf(p, "bad%02d\n", i);
	write_file("rcpt4", text);
	free(text);
	char *e = errors_of(MINIMAL "Relay_Domains = ( \"example.test\" )\n"
	                            "Valid_Recipients = \"rcpt4\"\n");
	CHECK(strstr(e, "T/rcpt4:20: \"bad19\"") != NULL);
	CHECK(strstr(e, "T/rcpt4:21:") == NULL);
	CHECK(strstr(e, "T/rcpt4: 20 more bad lines\n") != NULL);
	free(e);
}

int main(void)
{
	strcpy(tmpdir, "/tmp/mxconfXXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 2;
	int r = unit_run();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		r = 1;
	return r;
}
