/*
 * proxy: PROXY protocol v1/v2 header parser. See proxy.h.
 *
 * v1 is a text line: "PROXY TCP4 SRC DST SPORT DPORT\r\n", single spaces,
 * at most 107 bytes. v2 is a 12-byte signature, a version/command byte, a
 * family byte, a big-endian length and that many bytes of addresses (+TLVs
 * that we skip). Invariant: out->consumed never exceeds len.
 */
#include "net/proxy.h"

#include <string.h>

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_sig[] = "PROXY ";

/* Port text: 1-5 digits, <= 65535. */
static int parse_port(const char *p, size_t n, uint16_t *port)
{
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return -1;
	if (n > 1 && p[0] == '0')
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* Next space-separated field of [p, end): sets *f and *n, returns the byte
 * after the field's terminating space (or end when it is the last one). */
static const char *field(const char *p, const char *end, const char **f, size_t *n)
{
	const char *s = p;

	while (p < end && *p != ' ')
		p++;
	*f = s;
	*n = (size_t)(p - s);
	return p < end ? p + 1 : p;
}

static enum proxy_result parse_v1(const uint8_t *buf, size_t len, struct proxy_info *out)
{
	const char *line = (const char *)buf;
	const char *cr = NULL;
	/* the whole line is at most PROXY_V1_MAX bytes with its CRLF */
	size_t lim = len < PROXY_V1_MAX - 1 ? len : PROXY_V1_MAX - 1;

	for (size_t i = 0; i < lim; i++) {
		if (line[i] == '\r') {
			cr = line + i;
			break;
		}
		if (line[i] == '\n' || line[i] == '\0')
			return PROXY_ERROR;
	}
	if (!cr)
		return len >= PROXY_V1_MAX - 1 ? PROXY_ERROR : PROXY_NEED_MORE;
	if ((size_t)(cr - line) + 1 >= len)
		return PROXY_NEED_MORE;
	if (cr[1] != '\n')
		return PROXY_ERROR;
	out->version = 1;
	out->consumed = (size_t)(cr - line) + 2;

	const char *p = line + 6, *end = cr, *f;
	size_t n;
	p = field(p, end, &f, &n);
	if (n == 7 && memcmp(f, "UNKNOWN", 7) == 0)
		return PROXY_LOCAL; /* the rest of the line is ignored by the spec */
	int fam;
	if (n == 4 && memcmp(f, "TCP4", 4) == 0)
		fam = IP_V4;
	else if (n == 4 && memcmp(f, "TCP6", 4) == 0)
		fam = IP_V6;
	else
		return PROXY_ERROR;

	const char *fs[4];
	size_t ns[4];
	for (int i = 0; i < 4; i++) {
		if (p >= end)
			return PROXY_ERROR;
		p = field(p, end, &fs[i], &ns[i]);
		if (ns[i] == 0)
			return PROXY_ERROR;
	}
	if (p != end || end[-1] == ' ')
		return PROXY_ERROR;
	if (!ip_addr_parse_n(fs[0], ns[0], &out->src) || !ip_addr_parse_n(fs[1], ns[1], &out->dst))
		return PROXY_ERROR;
	/* TCP4 needs dotted quads; TCP6 needs IPv6 text (mapped ones fold to v4). */
	bool v6text0 = memchr(fs[0], ':', ns[0]) != NULL;
	bool v6text1 = memchr(fs[1], ':', ns[1]) != NULL;
	if ((fam == IP_V4) == v6text0 || (fam == IP_V4) == v6text1)
		return PROXY_ERROR;
	if (parse_port(fs[2], ns[2], &out->src_port) < 0 ||
	    parse_port(fs[3], ns[3], &out->dst_port) < 0)
		return PROXY_ERROR;
	return PROXY_OK;
}

static void v2_addr(struct ip_addr *a, const uint8_t *b, int fam)
{
	memset(a, 0, sizeof *a);
	if (fam == IP_V4) {
		a->family = IP_V4;
		memcpy(a->bytes, b, 4);
		return;
	}
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (memcmp(b, mapped, 12) == 0) {
		a->family = IP_V4;
		memcpy(a->bytes, b + 12, 4);
	} else {
		a->family = IP_V6;
		memcpy(a->bytes, b, 16);
	}
}

static enum proxy_result parse_v2(const uint8_t *buf, size_t len, struct proxy_info *out)
{
	if (len < 16)
		return PROXY_NEED_MORE;
	uint8_t ver = buf[12] >> 4, cmd = buf[12] & 0x0f;
	uint8_t fam = buf[13];
	size_t body = ((size_t)buf[14] << 8) | buf[15];

	if (ver != 2 || cmd > 1)
		return PROXY_ERROR;
	if (16 + body > PROXY_V2_MAX)
		return PROXY_ERROR;
	if (len < 16 + body)
		return PROXY_NEED_MORE;
	out->version = 2;
	out->consumed = 16 + body;
	if (cmd == 0) /* LOCAL: health checks; whatever follows is ignored */
		return PROXY_LOCAL;
	switch (fam) {
	case 0x00: /* UNSPEC: keep the real endpoints */
		return PROXY_LOCAL;
	case 0x11: /* TCP over IPv4 */
		if (body < 12)
			return PROXY_ERROR;
		v2_addr(&out->src, buf + 16, IP_V4);
		v2_addr(&out->dst, buf + 20, IP_V4);
		out->src_port = (uint16_t)((buf[24] << 8) | buf[25]);
		out->dst_port = (uint16_t)((buf[26] << 8) | buf[27]);
		return PROXY_OK;
	case 0x21: /* TCP over IPv6 */
		if (body < 36)
			return PROXY_ERROR;
		v2_addr(&out->src, buf + 16, IP_V6);
		v2_addr(&out->dst, buf + 32, IP_V6);
		out->src_port = (uint16_t)((buf[48] << 8) | buf[49]);
		out->dst_port = (uint16_t)((buf[50] << 8) | buf[51]);
		return PROXY_OK;
	default:
		return PROXY_ERROR;
	}
}

enum proxy_result proxy_parse(const uint8_t *buf, size_t len, struct proxy_info *out)
{
	memset(out, 0, sizeof *out);
	if (len == 0)
		return PROXY_NEED_MORE;
	if (buf[0] == v2_sig[0]) {
		size_t n = len < sizeof v2_sig ? len : sizeof v2_sig;
		if (memcmp(buf, v2_sig, n) != 0)
			return PROXY_ERROR;
		return n < sizeof v2_sig ? PROXY_NEED_MORE : parse_v2(buf, len, out);
	}
	if (buf[0] == 'P') {
		size_t n = len < 6 ? len : 6;
		if (memcmp(buf, v1_sig, n) != 0)
			return PROXY_ERROR;
		return n < 6 ? PROXY_NEED_MORE : parse_v1(buf, len, out);
	}
	return PROXY_ERROR;
}
