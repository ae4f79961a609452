/*
 * Unit tests for src/audit: argument forms and errors, the live gauge at
 * every prefix length, windows with a controlled clock (rollover, sliding
 * value, ranges, eviction at the cap, named series, audit_tick's bound) and
 * the console text. The randomized differential test is test_audit_diff.c.
 */
#include "unit.h"
#include "audit/audit.h"

#include <stdint.h>

static const char *fmt(const struct ip_addr *a)
{
	static char buf[4][IP_ADDR_TEXT_MAX];
	static int k;
	k = (k + 1) % 4;
	return ip_addr_format(a, buf[k], sizeof buf[k]);
}

static struct ip_addr addr(const char *text)
{
	struct ip_addr a;
	if (!ip_addr_parse(text, &a)) {
		fprintf(stderr, "bad test address %s\n", text);
		abort();
	}
	return a;
}

/* Parse arg for client `cur` (NULL: none); expect block want/wantp. */
static void parse_ok(const char *arg, const char *cur, const char *want, unsigned wantp)
{
	struct ip_addr c, net;
	unsigned p = 999;
	char err[160] = "";
	if (cur)
		c = addr(cur);
	bool ok = audit_parse_block(arg, cur ? &c : NULL, &net, &p, err, sizeof err);
	if (!ok)
		fprintf(stderr, "parse \"%s\" (client %s): %s\n", arg ? arg : "(null)",
		        cur ? cur : "-", err);
	CHECK(ok);
	CHECK_STR(fmt(&net), want);
	CHECK_EQ(p, wantp);
}

static void parse_bad(const char *arg, const char *cur)
{
	struct ip_addr c, net;
	unsigned p;
	char err[160] = "";
	if (cur)
		c = addr(cur);
	CHECK(!audit_parse_block(arg, cur ? &c : NULL, &net, &p, err, sizeof err));
	if (strstr(err, arg) == NULL)
		fprintf(stderr, "error for \"%s\" does not name it: %s\n", arg, err);
	CHECK(strstr(err, arg) != NULL);
}

UNIT_TEST(parse_forms)
{
	parse_ok("", "192.0.2.77", "192.0.2.77", 32);
	parse_ok(NULL, "192.0.2.77", "192.0.2.77", 32);
	parse_ok("", "2001:db8::5", "2001:db8::5", 128);
	parse_ok("/32", "192.0.2.77", "192.0.2.77", 32);
	parse_ok("/24", "192.0.2.77", "192.0.2.0", 24);
	parse_ok("/0", "192.0.2.77", "0.0.0.0", 0);
	parse_ok("/024", "192.0.2.77", "192.0.2.0", 24);
	parse_ok("/24", "2001:db8:ff00::1", "2001:d00::", 24); /* IPv6 /24 */
	parse_ok("/64", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::", 64);
	parse_ok("/128", "2001:db8::1", "2001:db8::1", 128);
	/* A v4-mapped current client is IPv4. */
	parse_ok("/24", "::ffff:198.51.100.9", "198.51.100.0", 24);
	parse_ok("192.0.2.77/24", NULL, "192.0.2.0", 24);
	parse_ok("192.0.2.77", NULL, "192.0.2.77", 32);
	parse_ok("192.0.2.77", "2001:db8::1", "192.0.2.77", 32);
	parse_ok("2001:DB8:0:0:0:0:0:1", NULL, "2001:db8::1", 128);
	parse_ok("2001:0db8:0000::0001/128", NULL, "2001:db8::1", 128);
	parse_ok("2001:db8::1/48", NULL, "2001:db8::", 48);
	parse_ok("::", NULL, "::", 128);
	parse_ok("::/0", NULL, "::", 0);
	parse_ok("::1", NULL, "::1", 128);
	parse_ok("1::", NULL, "1::", 128);
	parse_ok("fe80::1:2:3:4", NULL, "fe80::1:2:3:4", 128);
	parse_ok("64:ff9b::192.0.2.33", NULL, "64:ff9b::c000:221", 128);
	parse_ok("::ffff:192.0.2.1", NULL, "192.0.2.1", 32);
	parse_ok("::FFFF:192.0.2.1/120", NULL, "192.0.2.0", 24);
	parse_ok("0:0:0:0:0:ffff:c000:201", NULL, "192.0.2.1", 32);
	parse_ok("[2001:db8::1]/64", NULL, "2001:db8::", 64);
}

UNIT_TEST(parse_every_prefix)
{
	char arg[64], want[IP_ADDR_TEXT_MAX];
	for (unsigned p = 0; p <= 32; p++) {
		struct ip_addr m = addr("203.0.113.255");
		ip_addr_mask(&m, p);
		snprintf(want, sizeof want, "%s", fmt(&m));
		snprintf(arg, sizeof arg, "/%u", p);
		parse_ok(arg, "203.0.113.255", want, p);
		snprintf(arg, sizeof arg, "203.0.113.255/%u", p);
		parse_ok(arg, NULL, want, p);
		snprintf(arg, sizeof arg, "::ffff:203.0.113.255/%u", p + 96);
		parse_ok(arg, NULL, want, p);
	}
	for (unsigned p = 0; p <= 128; p++) {
		struct ip_addr m = addr("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
		ip_addr_mask(&m, p);
		snprintf(want, sizeof want, "%s", fmt(&m));
		snprintf(arg, sizeof arg, "/%u", p);
		parse_ok(arg, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", want, p);
		snprintf(arg, sizeof arg, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/%u", p);
		parse_ok(arg, NULL, want, p);
	}
}

UNIT_TEST(parse_errors)
{
	parse_bad("300.1.1.1/8", "192.0.2.1");
	parse_bad("/33", "192.0.2.1");
	parse_bad("/33", "::ffff:192.0.2.1");
	parse_bad("/129", "2001:db8::1");
	parse_bad("/129", "192.0.2.1");
	parse_bad("/1000", "2001:db8::1");
	parse_bad("abc", "192.0.2.1");
	parse_bad("1.2.3.4/", "192.0.2.1");
	parse_bad("/", "192.0.2.1");
	parse_bad("/-1", "192.0.2.1");
	parse_bad("/+1", "192.0.2.1");
	parse_bad("/ 24", "192.0.2.1");
	parse_bad("/24 ", "192.0.2.1");
	parse_bad("/24x", "192.0.2.1");
	parse_bad("1.2.3.4/33", NULL);
	parse_bad("1.2.3.4/24x", NULL);
	parse_bad("1.2.3", NULL);
	parse_bad("1.2.3.4.5", NULL);
	parse_bad(" 1.2.3.4", NULL);
	parse_bad("::/129", NULL);
	parse_bad("2001:db8:::1", NULL);
	parse_bad("2001:db8::g", NULL);
	parse_bad("::ffff:1.2.3.4/64", NULL); /* a mapped block shorter than /96 */
	parse_bad("/24", NULL);                /* no current client */
	parse_bad("/32", NULL);
	/* The error text is safe to log and bounded. */
	struct ip_addr net;
	unsigned p;
	char err[300];
	CHECK(!audit_parse_block("bad\nline", NULL, &net, &p, err, sizeof err));
	CHECK(strchr(err, '\n') == NULL);
	CHECK(!audit_parse_block("", NULL, &net, &p, err, sizeof err));
}

UNIT_TEST(live_every_prefix)
{
	struct audit *a = audit_create(NULL);
	struct ip_addr c4 = addr("198.51.100.200"), c6 = addr("2001:db8:85a3::8a2e:370:7334");
	struct ip_addr mapped = {.family = IP_V6};
	memcpy(mapped.bytes + 10, "\xff\xff\xc6\x33\x64\xc8", 6); /* unfolded ::ffff:198.51.100.200 */

	CHECK(audit_live_add(a, &c4, 0));
	CHECK(audit_live_add(a, &mapped, 1)); /* same client, IPv4, listener 1 */
	CHECK(audit_live_add(a, &c6, 2));
	for (unsigned p = 0; p <= 32; p++) {
		struct ip_addr n = c4, other = c4;
		ip_addr_mask(&n, p);
		CHECK_EQ(audit_live_count(a, &n, p, AUDIT_ANY_LISTENER), 2);
		CHECK_EQ(audit_live_count(a, &n, p, 0), 1);
		CHECK_EQ(audit_live_count(a, &n, p, 1), 1);
		CHECK_EQ(audit_live_count(a, &n, p, 2), 0);
		if (p > 0) { /* flip the block's last bit: a neighbouring block */
			other.bytes[(p - 1) / 8] ^= (uint8_t)(0x80 >> ((p - 1) % 8));
			ip_addr_mask(&other, p);
			CHECK_EQ(audit_live_count(a, &other, p, AUDIT_ANY_LISTENER), 0);
		}
	}
	for (unsigned p = 0; p <= 128; p++) {
		struct ip_addr n = c6, other = c6;
		ip_addr_mask(&n, p);
		CHECK_EQ(audit_live_count(a, &n, p, AUDIT_ANY_LISTENER), 1);
		CHECK_EQ(audit_live_count(a, &n, p, 2), 1);
		CHECK_EQ(audit_live_count(a, &n, p, 0), 0);
		if (p > 0) {
			other.bytes[(p - 1) / 8] ^= (uint8_t)(0x80 >> ((p - 1) % 8));
			ip_addr_mask(&other, p);
			CHECK_EQ(audit_live_count(a, &other, p, AUDIT_ANY_LISTENER), 0);
		}
	}
	CHECK_EQ(audit_live_count(a, &mapped, 32, AUDIT_ANY_LISTENER), 2);
	CHECK_EQ(audit_live_count(a, &c4, 33, AUDIT_ANY_LISTENER), 0);
	CHECK_EQ(audit_live_count(a, &c4, 32, 99), 0);
	struct audit_stats st;
	audit_get_stats(a, &st);
	CHECK_EQ(st.live_sessions, 3);
	CHECK_EQ(st.live_addresses, 2);
	audit_live_remove(a, &c4, 1);
	audit_live_remove(a, &c4, 0);
	audit_live_remove(a, &c6, 2);
	audit_get_stats(a, &st);
	CHECK_EQ(st.live_sessions, 0);
	CHECK_EQ(st.live_addresses, 0);
	audit_destroy(a);
}

static const struct audit_monitor_spec two_monitors[] = {{300, 6}, {1800, 4}};
#define T0 (360000ULL * 1000) /* a multiple of both windows, in ms */

static uint64_t slide(struct audit *a, size_t m, enum audit_counter c, const char *block,
                      uint64_t now)
{
	struct ip_addr net;
	unsigned p;
	uint64_t v = 0;
	CHECK(ip_block_parse(block, &net, &p));
	CHECK(audit_sliding(a, m, c, &net, p, now, &v));
	return v;
}

static uint64_t wsum(struct audit *a, size_t m, enum audit_counter c, const char *block,
                     unsigned s, unsigned e, uint64_t now)
{
	struct ip_addr net;
	unsigned p;
	uint64_t v = 0;
	CHECK(ip_block_parse(block, &net, &p));
	CHECK(audit_window_sum(a, m, c, &net, p, s, e, now, &v));
	return v;
}

UNIT_TEST(window_rollover_and_sliding)
{
	struct audit_config cfg = {.monitors = two_monitors, .nmonitors = 2};
	struct audit *a = audit_create(&cfg);
	struct ip_addr c = addr("192.0.2.1");
	uint64_t v;

	for (int i = 0; i < 4; i++)
		audit_record(a, &c, AUDIT_CONNECTIONS, T0 + 10000);
	audit_record(a, &c, AUDIT_REJECTIONS, T0 + 10000);
	CHECK_EQ(slide(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", T0 + 20000), 4);
	CHECK_EQ(slide(a, 0, AUDIT_REJECTIONS, "192.0.2.1", T0 + 20000), 1);
	CHECK_EQ(slide(a, 0, AUDIT_RECEPTIONS, "192.0.2.1", T0 + 20000), 0);
	/* Next window: the 4 are the previous one, weighted by what is left. */
	CHECK_EQ(slide(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", T0 + 300000), 4);
	CHECK_EQ(slide(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", T0 + 450000), 2);
	CHECK_EQ(slide(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", T0 + 525000), 1);
	CHECK_EQ(slide(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", T0 + 599999), 0);
	audit_record(a, &c, AUDIT_CONNECTIONS, T0 + 525000);
	audit_record(a, &c, AUDIT_CONNECTIONS, T0 + 525000);
	CHECK_EQ(slide(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", T0 + 525000), 3);
	/* The 1800 s monitor still has all 6 in its current window. */
	CHECK_EQ(slide(a, 1, AUDIT_CONNECTIONS, "192.0.2.1", T0 + 525000), 6);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", 0, 1, T0 + 525000), 6);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", 1, 1, T0 + 525000), 4);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", 0, 0, T0 + 525000), 2);
	/* Five windows later the 4 sit in window 5 (the oldest), then drop. */
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", 5, 5, T0 + 5 * 300000), 4);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", 0, 5, T0 + 5 * 300000), 6);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", 0, 5, T0 + 6 * 300000), 2);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", 0, 5, T0 + 7 * 300000), 0);
	CHECK_EQ(wsum(a, 1, AUDIT_CONNECTIONS, "192.0.2.1", 0, 3, T0 + 7 * 300000), 6);
	/* Writing after a gap shifts in place. */
	audit_record(a, &c, AUDIT_CONNECTIONS, T0 + 3 * 300000);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", 0, 0, T0 + 3 * 300000), 1);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", 3, 3, T0 + 3 * 300000), 4);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "192.0.2.1", 2, 2, T0 + 3 * 300000), 2);
	/* Bad monitor, counter and ranges are refused. */
	struct ip_addr net = c;
	CHECK(!audit_sliding(a, 2, AUDIT_CONNECTIONS, &net, 32, T0, &v));
	CHECK(!audit_sliding(a, 0, AUDIT_COUNTER_COUNT, &net, 32, T0, &v));
	CHECK(!audit_sliding(a, 0, AUDIT_CONNECTIONS, &net, 33, T0, &v));
	CHECK(!audit_window_sum(a, 0, AUDIT_CONNECTIONS, &net, 32, 0, 6, T0, &v));
	CHECK(!audit_window_sum(a, 0, AUDIT_CONNECTIONS, &net, 32, 2, 1, T0, &v));
	CHECK(!audit_window_sum(a, 1, AUDIT_CONNECTIONS, &net, 32, 0, 4, T0, &v));
	/* A clock that goes backwards counts into the current window. */
	audit_record(a, &c, AUDIT_RECEPTIONS, T0);
	CHECK_EQ(wsum(a, 0, AUDIT_RECEPTIONS, "192.0.2.1", 0, 0, T0 + 3 * 300000), 1);
	audit_destroy(a);
}

UNIT_TEST(window_blocks)
{
	struct audit_config cfg = {.monitors = two_monitors, .nmonitors = 2};
	struct audit *a = audit_create(&cfg);
	const char *ips[] = {"10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.0.1",
	                     "2001:db8::1", "2001:db8:0:1::1", "::ffff:10.0.0.2"};
	for (size_t i = 0; i < sizeof ips / sizeof *ips; i++) {
		struct ip_addr c = addr(ips[i]);
		audit_record(a, &c, AUDIT_CONNECTIONS, T0 + i * 100000);
	}
	uint64_t now = T0 + 700000; /* window 0 = [600,900) s after T0 */
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "10.0.0.1", 0, 5, now), 2);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "10.0.0.2", 0, 5, now), 2);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "10.0.0.0/24", 0, 5, now), 4);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "10.0.0.0/16", 0, 5, now), 5);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "10.0.0.0/16", 2, 2, now), 3);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "0.0.0.0/0", 0, 5, now), 5);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "2001:db8::/48", 0, 5, now), 2);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "2001:db8::/64", 0, 5, now), 1);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "::/0", 0, 5, now), 2);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "11.0.0.0/8", 0, 5, now), 0);
	CHECK_EQ(slide(a, 1, AUDIT_CONNECTIONS, "10.0.0.0/8", now), 5);
	audit_destroy(a);
}

UNIT_TEST(window_eviction_at_cap)
{
	struct audit_config cfg = {.monitors = two_monitors, .nmonitors = 2, .max_tracked = 3};
	struct audit *a = audit_create(&cfg);
	struct ip_addr A = addr("10.0.0.1"), B = addr("10.0.0.2"), C = addr("10.0.1.1"),
	               D = addr("10.0.1.2");
	struct audit_stats st;
	audit_record(a, &A, AUDIT_CONNECTIONS, T0);
	audit_record(a, &B, AUDIT_CONNECTIONS, T0 + 1);
	audit_record(a, &B, AUDIT_CONNECTIONS, T0 + 1);
	audit_record(a, &C, AUDIT_CONNECTIONS, T0 + 2);
	audit_record(a, &A, AUDIT_CONNECTIONS, T0 + 300000); /* A is now the most recent */
	audit_record(a, &D, AUDIT_CONNECTIONS, T0 + 300001); /* B goes */
	audit_get_stats(a, &st);
	CHECK_EQ(st.tracked_addresses, 3);
	CHECK_EQ(st.evictions, 1);
	uint64_t now = T0 + 300002;
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "10.0.0.2", 0, 5, now), 0);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "10.0.0.1", 0, 5, now), 2);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "10.0.0.0/24", 0, 5, now), 2);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "10.0.0.0/16", 0, 5, now), 4);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "10.0.0.0/16", 1, 1, now), 2);
	CHECK_EQ(wsum(a, 1, AUDIT_CONNECTIONS, "0.0.0.0/0", 0, 3, now), 4);
	audit_record(a, &B, AUDIT_CONNECTIONS, now); /* C (least recent) goes */
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "10.0.1.0/24", 0, 5, now), 1);
	CHECK_EQ(wsum(a, 0, AUDIT_CONNECTIONS, "0.0.0.0/0", 0, 5, now), 4);
	audit_get_stats(a, &st);
	CHECK_EQ(st.evictions, 2);
	audit_destroy(a);
}

/* max_memory bounds the windowed data whatever the monitors' shape: 16
 * monitors of 1,000 windows (384 KiB a node) used to take 1.5 GB for one
 * address (chunks of 4,096 nodes) and max_tracked of them at the cap. */
UNIT_TEST(window_memory_is_bounded)
{
	static const struct audit_monitor_spec big[16] = {
		{604800, 1000}, {604800, 1000}, {604800, 1000}, {604800, 1000},
		{604800, 1000}, {604800, 1000}, {604800, 1000}, {604800, 1000},
		{604800, 1000}, {604800, 1000}, {604800, 1000}, {604800, 1000},
		{604800, 1000}, {604800, 1000}, {604800, 1000}, {604800, 1000},
	};
	struct audit_config cfg = {.monitors = big, .nmonitors = 16, .max_tracked = 1000000,
	                           .max_memory = 64u << 20};
	struct audit *a = audit_create(&cfg);
	CHECK(a != NULL);
	size_t node = 40 + 16 * (8 + 8 * 1000 * 3);
	struct audit_stats st;
	audit_get_stats(a, &st);
	CHECK_EQ(st.monitor_cap, (32u << 20) / (2 * node)); /* half of max_memory */
	struct ip_addr c = addr("10.0.0.1");
	audit_record(a, &c, AUDIT_CONNECTIONS, T0);
	audit_get_stats(a, &st);
	CHECK(st.bytes < 8 * node); /* a few nodes, not 4,096 */
	for (unsigned i = 0; i < 100; i++) {
		char text[32];
		snprintf(text, sizeof text, "10.1.%u.%u", i / 250, i % 250 + 1);
		struct ip_addr x = addr(text);
		audit_record(a, &x, AUDIT_CONNECTIONS, T0 + i);
	}
	audit_get_stats(a, &st);
	CHECK_EQ(st.tracked_addresses, st.monitor_cap);
	CHECK(st.bytes <= (32u << 20) + (1u << 20));
	audit_destroy(a);

	/* a named series gets 1/64 of max_memory: 1,024 windows (8,240 B a
	 * node) -> 62 addresses of 2 MiB */
	struct audit_config small = {.max_tracked = 1000000, .max_memory = 128u << 20};
	a = audit_create(&small);
	char err[256];
	for (unsigned i = 0; i < 200; i++) {
		char text[32];
		snprintf(text, sizeof text, "10.2.%u.%u", i / 250, i % 250 + 1);
		struct ip_addr x = addr(text);
		CHECK(audit_series_add(a, "wide", 1, 1024, &x, 1, T0 + i, err, sizeof err));
	}
	audit_get_stats(a, &st);
	CHECK_EQ(st.tracked_addresses, (2u << 20) / (2 * (48 + 8 * 1024)));
	CHECK(st.bytes <= (2u << 20) + (1u << 20));
	audit_destroy(a);
}

/* Counts saturate instead of wrapping round to a small number. */
UNIT_TEST(series_counts_saturate)
{
	struct audit *a = audit_create(NULL);
	struct ip_addr c = addr("192.0.2.1"), net = addr("192.0.2.0");
	char err[256];
	uint64_t v = 0;
	CHECK(audit_series_add(a, "big", 60, 2, &c, UINT64_MAX, T0, err, sizeof err));
	CHECK(audit_series_add(a, "big", 60, 2, &c, 2, T0, err, sizeof err));
	CHECK(audit_series_sum(a, "big", 60, 2, &c, 32, 0, 0, T0, &v, err, sizeof err));
	CHECK(v == UINT64_MAX);
	CHECK(audit_series_add(a, "big", 60, 2, &c, 5, T0 + 60000, err, sizeof err));
	CHECK(audit_series_sum(a, "big", 60, 2, &net, 24, 0, 1, T0 + 60000, &v, err, sizeof err));
	CHECK(v == UINT64_MAX); /* the sum over both windows too */
	audit_destroy(a);
	/* evicting a saturated address leaves its block saturated (an upper
	 * bound), not 0 below the other addresses' counts */
	struct audit_config three = {.max_tracked = 3};
	a = audit_create(&three);
	struct ip_addr b = addr("192.0.2.2"), y = addr("192.0.2.200"), far = addr("198.51.100.1");
	CHECK(audit_series_add(a, "big", 60, 2, &c, UINT64_MAX, T0, err, sizeof err));
	CHECK(audit_series_add(a, "big", 60, 2, &b, 12, T0 + 1, err, sizeof err));
	CHECK(audit_series_add(a, "big", 60, 2, &y, 5, T0 + 2, err, sizeof err));
	CHECK(audit_series_add(a, "big", 60, 2, &far, 1, T0 + 3, err, sizeof err)); /* c goes */
	CHECK(audit_series_sum(a, "big", 60, 2, &b, 32, 0, 0, T0 + 3, &v, err, sizeof err));
	CHECK(v == 12);
	CHECK(audit_series_sum(a, "big", 60, 2, &net, 24, 0, 0, T0 + 3, &v, err, sizeof err));
	CHECK(v >= 17); /* was 0: the /24's saturated sum minus c's */
	audit_destroy(a);
}

UNIT_TEST(named_series)
{
	struct audit *a = audit_create(NULL); /* no monitors: series still work */
	struct ip_addr c = addr("2001:db8::7"), d = addr("2001:db8::8"), net;
	char err[160];
	uint64_t v = 99;
	unsigned p;

	CHECK(audit_series_add(a, "spam", 60, 3, &c, 5, T0, err, sizeof err));
	CHECK(audit_series_add(a, "spam", 60, 3, &d, 2, T0 + 60000, err, sizeof err));
	CHECK(ip_block_parse("2001:db8::/64", &net, &p));
	CHECK(audit_series_sum(a, "spam", 60, 3, &net, p, 0, 2, T0 + 60000, &v, err, sizeof err));
	CHECK_EQ(v, 7);
	CHECK(audit_series_sum(a, "spam", 60, 3, &net, p, 1, 1, T0 + 60000, &v, err, sizeof err));
	CHECK_EQ(v, 5);
	CHECK(audit_series_sum(a, "spam", 60, 3, &net, p, 0, 2, T0 + 180000, &v, err, sizeof err));
	CHECK_EQ(v, 2);
	CHECK(audit_series_sum(a, "nope", 60, 3, &net, p, 0, 2, T0, &v, err, sizeof err));
	CHECK_EQ(v, 0);
	CHECK(!audit_series_add(a, "spam", 60, 4, &c, 1, T0, err, sizeof err));
	CHECK(strstr(err, "spam") != NULL);
	CHECK(!audit_series_sum(a, "spam", 30, 3, &net, p, 0, 0, T0, &v, err, sizeof err));
	CHECK(!audit_series_sum(a, "spam", 60, 3, &net, p, 0, 3, T0, &v, err, sizeof err));
	CHECK(!audit_series_sum(a, "spam", 60, 3, &net, p, 2, 1, T0, &v, err, sizeof err));
	CHECK(!audit_series_add(a, "x", 0, 3, &c, 1, T0, err, sizeof err));
	CHECK(!audit_series_add(a, "x", 60, 0, &c, 1, T0, err, sizeof err));
	CHECK(!audit_series_add(a, "", 60, 3, &c, 1, T0, err, sizeof err));
	char longname[100];
	memset(longname, 'n', 99);
	longname[99] = '\0';
	CHECK(!audit_series_add(a, longname, 60, 3, &c, 1, T0, err, sizeof err));
	int made = 1;
	for (int i = 0; i < 40; i++) {
		char name[16];
		snprintf(name, sizeof name, "s%d", i);
		made += audit_series_add(a, name, 60, 3, &c, 1, T0, err, sizeof err);
	}
	CHECK_EQ(made, 32); /* the limit on named series */
	CHECK(strstr(err, "at most") != NULL);
	audit_destroy(a);
}

UNIT_TEST(tick_is_bounded)
{
	struct audit_monitor_spec one[] = {{60, 2}};
	struct audit_config cfg = {.monitors = one, .nmonitors = 1};
	struct audit *a = audit_create(&cfg);
	struct audit_stats st, empty;
	char err[160];
	audit_get_stats(a, &empty);
	for (unsigned i = 0; i < 5000; i++) {
		struct ip_addr c = {.family = IP_V4, .bytes = {10, (uint8_t)(i >> 8), (uint8_t)i, 1}};
		audit_record(a, &c, AUDIT_CONNECTIONS, T0 + i);
		if (i < 300)
			CHECK(audit_series_add(a, "s", 60, 3, &c, 1, T0, err, sizeof err));
	}
	audit_get_stats(a, &st);
	CHECK_EQ(st.tracked_addresses, 5300);
	audit_tick(a, T0 + 60000); /* nothing has expired yet */
	audit_get_stats(a, &st);
	CHECK_EQ(st.tracked_addresses, 5300);
	audit_tick(a, T0 + 180000 + 5000); /* everything has */
	audit_get_stats(a, &st);
	CHECK(st.tracked_addresses >= 5300 - 256);
	CHECK(st.tracked_addresses < 5300);
	int ticks = 1;
	while (st.tracked_addresses > 0 && ticks < 1000) {
		audit_tick(a, T0 + 180000 + 5000);
		audit_get_stats(a, &st);
		ticks++;
	}
	CHECK_EQ(st.tracked_addresses, 0);
	CHECK(ticks >= 5300 / 256);
	CHECK_EQ(st.evictions, 0); /* expiry is not eviction at the cap */
	CHECK(st.bytes < empty.bytes + 4096); /* memory went back */
	audit_destroy(a);
}

UNIT_TEST(console_show)
{
	struct audit_monitor_spec one[] = {{300, 2}};
	struct audit_config cfg = {.monitors = one, .nmonitors = 1};
	struct audit *a = audit_create(&cfg);
	struct ip_addr c = addr("192.0.2.1"), d = addr("192.0.2.200");
	char err[160];

	audit_record(a, &c, AUDIT_CONNECTIONS, T0);
	audit_record(a, &c, AUDIT_CONNECTIONS, T0 + 300000);
	audit_record(a, &d, AUDIT_REJECTIONS, T0 + 300000);
	CHECK(audit_series_add(a, "bad_rcpt", 60, 1, &c, 3, T0 + 300000, err, sizeof err));
	CHECK(audit_live_add(a, &c, 0));
	CHECK(audit_live_add(a, &d, 1));
	char *s = audit_format_show(a, "192.0.2.1", T0 + 300000, err, sizeof err);
	CHECK_STR(s, "Connections 300/0: 1\n"
	             "Connections 300/1: 1\n"
	             "Receptions 300/0: 0\n"
	             "Receptions 300/1: 0\n"
	             "Rejections 300/0: 0\n"
	             "Rejections 300/1: 0\n"
	             "bad_rcpt 60/0: 3\n"
	             "Live connections: 1\n");
	free(s);
	s = audit_format_show(a, "192.0.2.77/24", T0 + 300000, err, sizeof err);
	CHECK_STR(s, "Connections 300/0: 1\n"
	             "Connections 300/1: 1\n"
	             "Receptions 300/0: 0\n"
	             "Receptions 300/1: 0\n"
	             "Rejections 300/0: 1\n"
	             "Rejections 300/1: 0\n"
	             "bad_rcpt 60/0: 3\n"
	             "Live connections: 2\n");
	free(s);
	CHECK(audit_format_show(a, "300.1.1.1", T0, err, sizeof err) == NULL);
	CHECK(strstr(err, "300.1.1.1") != NULL);
	CHECK(audit_format_show(a, "/24", T0, err, sizeof err) == NULL);
	audit_live_remove(a, &c, 0);
	audit_live_remove(a, &d, 1);
	audit_destroy(a);

	a = audit_create(NULL);
	s = audit_format_show(a, "2001:db8::/32", 0, err, sizeof err);
	CHECK_STR(s, "Live connections: 0\n");
	free(s);
	audit_destroy(a);
}

UNIT_TEST(console_top)
{
	struct audit *a = audit_create(NULL);
	struct {
		const char *ip;
		int n;
	} sessions[] = {{"203.0.113.5", 3}, {"203.0.113.9", 2}, {"198.51.100.1", 4},
	                {"2001:db8::1", 6}, {"2001:db8:1::1", 1}, {"192.0.2.1", 1}};
	char err[160];
	for (size_t i = 0; i < sizeof sessions / sizeof *sessions; i++) {
		struct ip_addr c = addr(sessions[i].ip);
		for (int k = 0; k < sessions[i].n; k++)
			CHECK(audit_live_add(a, &c, (unsigned)k % 2));
	}
	char *s = audit_format_top(a, 2, "/24", err, sizeof err);
	CHECK_STR(s, "203.0.113.0/24 5\n198.51.100.0/24 4\n");
	free(s);
	s = audit_format_top(a, 10, "/24", err, sizeof err);
	CHECK_STR(s, "203.0.113.0/24 5\n198.51.100.0/24 4\n192.0.2.0/24 1\n");
	free(s);
	s = audit_format_top(a, 10, "/48", err, sizeof err);
	CHECK_STR(s, "2001:db8::/48 6\n2001:db8:1::/48 1\n");
	free(s);
	s = audit_format_top(a, 10, "v6/32", err, sizeof err);
	CHECK_STR(s, "2001:db8::/32 7\n");
	free(s);
	s = audit_format_top(a, 3, NULL, err, sizeof err);
	CHECK_STR(s, "2001:db8::1/128 6\n198.51.100.1/32 4\n203.0.113.5/32 3\n");
	free(s);
	s = audit_format_top(a, 10, "", err, sizeof err);
	CHECK_STR(s, "2001:db8::1/128 6\n198.51.100.1/32 4\n203.0.113.5/32 3\n"
	             "203.0.113.9/32 2\n192.0.2.1/32 1\n2001:db8:1::1/128 1\n");
	free(s);
	s = audit_format_top(a, 5, "v4/0", err, sizeof err);
	CHECK_STR(s, "0.0.0.0/0 10\n");
	free(s);
	s = audit_format_top(a, 0, "/24", err, sizeof err);
	CHECK_STR(s, "");
	free(s);
	CHECK(audit_format_top(a, 5, "/abc", err, sizeof err) == NULL);
	CHECK(strstr(err, "/abc") != NULL);
	CHECK(audit_format_top(a, 5, "v4/33", err, sizeof err) == NULL);
	CHECK(audit_format_top(a, 5, "/129", err, sizeof err) == NULL);
	audit_destroy(a);
}

int main(void)
{
	return unit_run();
}
