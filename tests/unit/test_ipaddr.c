/* Unit tests for src/util/ipaddr. */
#include "unit.h"
#include "util/ipaddr.h"

static const char *fmt(const struct ip_addr *a)
{
	static char buf[IP_ADDR_TEXT_MAX];
	return ip_addr_format(a, buf, sizeof buf);
}

UNIT_TEST(parse_forms)
{
	struct ip_addr a;
	CHECK(ip_addr_parse("192.0.2.1", &a) && a.family == IP_V4);
	CHECK_STR(fmt(&a), "192.0.2.1");
	CHECK(ip_addr_parse("2001:DB8:0:0:0:0:0:1", &a) && a.family == IP_V6);
	CHECK_STR(fmt(&a), "2001:db8::1");
	CHECK(ip_addr_parse("::ffff:198.51.100.7", &a) && a.family == IP_V4);
	CHECK_STR(fmt(&a), "198.51.100.7");
	CHECK(!ip_addr_parse("300.1.1.1", &a));
	CHECK(!ip_addr_parse("abc", &a));
	CHECK(!ip_addr_parse("", &a));
	CHECK(!ip_addr_parse("1.2.3.4/8", &a));
}

UNIT_TEST(blocks)
{
	struct ip_addr n, a;
	unsigned p;
	CHECK(ip_block_parse("192.0.2.77/24", &n, &p) && p == 24);
	CHECK_STR(fmt(&n), "192.0.2.0");
	CHECK(ip_block_parse("[2001:db8::1]/64", &n, &p) && p == 64);
	CHECK_STR(fmt(&n), "2001:db8::");
	CHECK(ip_block_parse("::1", &n, &p) && p == 128);
	CHECK(ip_block_parse("::ffff:10.1.2.3/104", &n, &p) && p == 8);
	CHECK_STR(fmt(&n), "10.0.0.0");
	CHECK(!ip_block_parse("10.0.0.0/33", &n, &p));
	CHECK(!ip_block_parse("::/129", &n, &p));
	CHECK(!ip_block_parse("10.0.0.0/", &n, &p));
	CHECK(!ip_block_parse("10.0.0.0/-1", &n, &p));
	CHECK(ip_block_parse("0.0.0.0/0", &n, &p) && p == 0);
	ip_addr_parse("10.9.8.7", &a);
	CHECK(ip_addr_in_block(&a, &n, 0));
	ip_block_parse("10.9.0.0/17", &n, &p);
	CHECK(ip_addr_in_block(&a, &n, p));
	ip_addr_parse("10.9.128.7", &a);
	CHECK(!ip_addr_in_block(&a, &n, p));
}

UNIT_TEST(mask_every_length)
{
	struct ip_addr a;
	for (unsigned p = 0; p <= 128; p++) {
		ip_addr_parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &a);
		ip_addr_mask(&a, p);
		unsigned ones = 0;
		for (unsigned i = 0; i < 128; i++)
			ones += ip_addr_bit(&a, i);
		CHECK_EQ(ones, p);
	}
}

int main(void)
{
	return unit_run();
}
