/*
 * test_proxy: PROXY protocol v1/v2 vectors, good and bad, and every split
 * point of the good ones (a prefix must always be NEED_MORE).
 */
#include <string.h>

#include "net/proxy.h"
#include "unit.h"

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static size_t v2(uint8_t *b, uint8_t vercmd, uint8_t fam, const uint8_t *body, size_t n)
{
	memcpy(b, sig, 12);
	b[12] = vercmd;
	b[13] = fam;
	b[14] = (uint8_t)(n >> 8);
	b[15] = (uint8_t)n;
	memcpy(b + 16, body, n);
	return 16 + n;
}

static void check_prefixes(const uint8_t *b, size_t n)
{
	struct proxy_info pi;
	for (size_t k = 0; k < n; k++) {
		enum proxy_result r = proxy_parse(b, k, &pi);
		CHECK_EQ(r, PROXY_NEED_MORE);
		if (r != PROXY_NEED_MORE)
			fprintf(stderr, "  split at %zu of %zu\n", k, n);
	}
}

static void addr_is(const struct ip_addr *a, const char *text)
{
	char buf[IP_ADDR_TEXT_MAX];
	CHECK_STR(ip_addr_format(a, buf, sizeof buf), text);
}

UNIT_TEST(v1_good)
{
	static const struct {
		const char *h;
		enum proxy_result r;
		const char *src;
		unsigned sport;
	} t[] = {
		{"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n", PROXY_OK, "192.0.2.1", 56324},
		{"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", PROXY_OK, "2001:db8::1", 1},
		{"PROXY TCP6 ::ffff:192.0.2.9 ::1 4000 25\r\n", PROXY_OK, "192.0.2.9", 4000},
		{"PROXY UNKNOWN\r\n", PROXY_LOCAL, NULL, 0},
		{"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", PROXY_LOCAL, NULL, 0},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char buf[200];
		struct proxy_info pi;
		size_t n = strlen(t[i].h);
		/* followed by SMTP bytes that must not be consumed */
		snprintf(buf, sizeof buf, "%sEHLO x\r\n", t[i].h);
		CHECK_EQ(proxy_parse((const uint8_t *)buf, strlen(buf), &pi), t[i].r);
		CHECK_EQ(pi.consumed, n);
		CHECK_EQ(pi.version, 1);
		if (t[i].r == PROXY_OK) {
			addr_is(&pi.src, t[i].src);
			CHECK_EQ(pi.src_port, t[i].sport);
		}
		check_prefixes((const uint8_t *)t[i].h, n);
	}
}

UNIT_TEST(v1_bad)
{
	static const char *const t[] = {
		"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\n",
		"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\rX",
		"PROXY TCP4 192.0.2.1  198.51.100.2 56324 25\r\n",
		"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25 \r\n",
		"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",
		"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25 7\r\n",
		"PROXY TCP4 192.0.2.1 198.51.100.2 65536 25\r\n",
		"PROXY TCP4 192.0.2.1 198.51.100.2 -1 25\r\n",
		"PROXY TCP4 192.0.2.1 198.51.100.2 0080 25\r\n",
		"PROXY TCP4 2001:db8::1 198.51.100.2 1 25\r\n",
		"PROXY TCP6 192.0.2.1 2001:db8::2 1 25\r\n",
		"PROXY TCP4 192.0.2 198.51.100.2 1 25\r\n",
		"PROXY UDP4 192.0.2.1 198.51.100.2 1 25\r\n",
		"PROXY tcp4 192.0.2.1 198.51.100.2 1 25\r\n",
		"PROXY\r\n",
		"PROXYTCP4\r\n",
		"proxy TCP4 192.0.2.1 198.51.100.2 1 25\r\n",
		"EHLO foo\r\n",
		"PROXY TCP4 192.0.2.1\0198.51.100.2 1 25\r\n",
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct proxy_info pi;
		size_t n = strlen(t[i]);
		if (i == sizeof t / sizeof t[0] - 1)
			n = 40;
		enum proxy_result r = proxy_parse((const uint8_t *)t[i], n, &pi);
		CHECK_EQ(r, PROXY_ERROR);
		if (r != PROXY_ERROR)
			fprintf(stderr, "  case %zu\n", i);
	}
	/* no CRLF within 107 bytes */
	char longl[300];
	memset(longl, 'x', sizeof longl);
	memcpy(longl, "PROXY TCP4 ", 11);
	struct proxy_info pi;
	CHECK_EQ(proxy_parse((const uint8_t *)longl, 105, &pi), PROXY_NEED_MORE);
	CHECK_EQ(proxy_parse((const uint8_t *)longl, 106, &pi), PROXY_ERROR);
	CHECK_EQ(proxy_parse((const uint8_t *)longl, sizeof longl, &pi), PROXY_ERROR);
	/* 107 bytes with the CRLF is the most the spec allows; 108 is refused */
	char line[120];
	int n = snprintf(line, sizeof line, "PROXY UNKNOWN %091d\r\n", 0);
	CHECK_EQ(n, 107);
	CHECK_EQ(proxy_parse((const uint8_t *)line, (size_t)n, &pi), PROXY_LOCAL);
	n = snprintf(line, sizeof line, "PROXY UNKNOWN %092d\r\n", 0);
	CHECK_EQ(proxy_parse((const uint8_t *)line, (size_t)n, &pi), PROXY_ERROR);
}

UNIT_TEST(v2_good)
{
	uint8_t b[600], body[300];
	struct proxy_info pi;
	size_t n;

	/* TCP4 192.0.2.1:1234 -> 198.51.100.2:25 */
	uint8_t b4[12] = {192, 0, 2, 1, 198, 51, 100, 2, 0x04, 0xd2, 0, 25};
	n = v2(b, 0x21, 0x11, b4, sizeof b4);
	memcpy(b + n, "EHLO", 4);
	CHECK_EQ(proxy_parse(b, n + 4, &pi), PROXY_OK);
	CHECK_EQ(pi.consumed, n);
	CHECK_EQ(pi.version, 2);
	addr_is(&pi.src, "192.0.2.1");
	addr_is(&pi.dst, "198.51.100.2");
	CHECK_EQ(pi.src_port, 1234);
	CHECK_EQ(pi.dst_port, 25);
	check_prefixes(b, n);

	/* TCP6 with TLVs after the addresses */
	memset(body, 0, sizeof body);
	body[0] = 0x20;
	body[1] = 0x01;
	body[2] = 0x0d;
	body[3] = 0xb8;
	body[15] = 7;
	body[31] = 1;
	body[32] = 0xc3;
	body[33] = 0x50;
	body[34] = 0;
	body[35] = 25;
	body[36] = 0x04; /* PP2_TYPE_NOOP TLV, 3 bytes */
	body[37] = 0;
	body[38] = 3;
	n = v2(b, 0x21, 0x21, body, 42);
	CHECK_EQ(proxy_parse(b, n, &pi), PROXY_OK);
	CHECK_EQ(pi.consumed, n);
	addr_is(&pi.src, "2001:db8::7");
	CHECK_EQ(pi.src_port, 50000);
	check_prefixes(b, n);

	/* TCP6 carrying a v4-mapped address folds to IPv4 */
	memset(body, 0, 36);
	body[10] = body[11] = 0xff;
	body[12] = 203;
	body[13] = 0;
	body[14] = 113;
	body[15] = 5;
	n = v2(b, 0x21, 0x21, body, 36);
	CHECK_EQ(proxy_parse(b, n, &pi), PROXY_OK);
	addr_is(&pi.src, "203.0.113.5");
	CHECK_EQ(pi.src.family, IP_V4);

	/* LOCAL, with and without a body; PROXY with UNSPEC */
	n = v2(b, 0x20, 0x00, body, 0);
	CHECK_EQ(proxy_parse(b, n, &pi), PROXY_LOCAL);
	CHECK_EQ(pi.consumed, 16);
	n = v2(b, 0x20, 0x11, b4, sizeof b4);
	CHECK_EQ(proxy_parse(b, n, &pi), PROXY_LOCAL);
	CHECK_EQ(pi.consumed, 28);
	n = v2(b, 0x21, 0x00, body, 0);
	CHECK_EQ(proxy_parse(b, n, &pi), PROXY_LOCAL);
	check_prefixes(b, n);
}

UNIT_TEST(v2_bad)
{
	uint8_t b[2000], body[1500] = {0};
	struct proxy_info pi;
	size_t n;

	CHECK_EQ(proxy_parse(b, v2(b, 0x11, 0x11, body, 12), &pi), PROXY_ERROR); /* version 1 */
	CHECK_EQ(proxy_parse(b, v2(b, 0x22, 0x11, body, 12), &pi), PROXY_ERROR); /* command 2 */
	CHECK_EQ(proxy_parse(b, v2(b, 0x21, 0x12, body, 12), &pi), PROXY_ERROR); /* UDP4 */
	CHECK_EQ(proxy_parse(b, v2(b, 0x21, 0x31, body, 216), &pi), PROXY_ERROR); /* UNIX */
	CHECK_EQ(proxy_parse(b, v2(b, 0x21, 0x11, body, 11), &pi), PROXY_ERROR); /* short TCP4 */
	CHECK_EQ(proxy_parse(b, v2(b, 0x21, 0x21, body, 35), &pi), PROXY_ERROR); /* short TCP6 */
	n = v2(b, 0x21, 0x11, body, 1200);
	CHECK_EQ(proxy_parse(b, 16, &pi), PROXY_ERROR); /* too long: refused early */
	CHECK_EQ(proxy_parse(b, n, &pi), PROXY_ERROR);
	memcpy(b, sig, 12);
	b[5] = 0x0c;
	CHECK_EQ(proxy_parse(b, 6, &pi), PROXY_ERROR); /* bad signature */
	CHECK_EQ(proxy_parse((const uint8_t *)"\r\n\r\n\0\r\nQUIT\n", 12, &pi), PROXY_NEED_MORE);
	CHECK_EQ(proxy_parse((const uint8_t *)"\r\nX", 3, &pi), PROXY_ERROR);
	CHECK_EQ(proxy_parse((const uint8_t *)"", 0, &pi), PROXY_NEED_MORE);
}

int main(void)
{
	return unit_run();
}
