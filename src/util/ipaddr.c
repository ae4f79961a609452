/*
 * ipaddr: parsing, formatting and masking of client addresses.
 * inet_pton/inet_ntop do the text work (RFC 4291 input, RFC 5952 output as
 * glibc writes it); this file adds the v4-mapped folding and the masks.
 */
#include "util/ipaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void fold_v4mapped(struct ip_addr *a)
{
	if (a->family == IP_V6 && memcmp(a->bytes, v4mapped_prefix, 12) == 0) {
		uint8_t v4[4];
		memcpy(v4, a->bytes + 12, 4);
		memset(a->bytes, 0, sizeof a->bytes);
		memcpy(a->bytes, v4, 4);
		a->family = IP_V4;
	}
}

bool ip_addr_parse_n(const char *text, size_t len, struct ip_addr *out)
{
	char buf[INET6_ADDRSTRLEN + 8];

	if (len == 0 || len >= sizeof buf)
		return false;
	memcpy(buf, text, len);
	buf[len] = '\0';
	memset(out, 0, sizeof *out);
	if (memchr(buf, ':', len) != NULL) {
		if (inet_pton(AF_INET6, buf, out->bytes) != 1)
			return false;
		out->family = IP_V6;
		fold_v4mapped(out);
		return true;
	}
	if (inet_pton(AF_INET, buf, out->bytes) != 1)
		return false;
	out->family = IP_V4;
	return true;
}

bool ip_addr_parse(const char *text, struct ip_addr *out)
{
	return ip_addr_parse_n(text, strlen(text), out);
}

bool ip_addr_from_sockaddr(const struct sockaddr *sa, struct ip_addr *out,
                           uint16_t *port)
{
	memset(out, 0, sizeof *out);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		memcpy(out->bytes, &sin->sin_addr, 4);
		out->family = IP_V4;
		if (port)
			*port = ntohs(sin->sin_port);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		memcpy(out->bytes, &sin6->sin6_addr, 16);
		out->family = IP_V6;
		fold_v4mapped(out);
		if (port)
			*port = ntohs(sin6->sin6_port);
		return true;
	}
	return false;
}

char *ip_addr_format(const struct ip_addr *a, char *buf, size_t len)
{
	const char *r = NULL;

	if (a->family == IP_V4)
		r = inet_ntop(AF_INET, a->bytes, buf, (socklen_t)len);
	else if (a->family == IP_V6)
		r = inet_ntop(AF_INET6, a->bytes, buf, (socklen_t)len);
	if (r == NULL && len > 0)
		buf[0] = '\0';
	return buf;
}

void ip_addr_mask(struct ip_addr *a, unsigned prefix)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned lo = i * 8;
		if (prefix >= lo + 8)
			continue;
		if (prefix <= lo)
			a->bytes[i] = 0;
		else
			a->bytes[i] &= (uint8_t)(0xffu << (8 - (prefix - lo)));
	}
}

bool ip_addr_equal(const struct ip_addr *a, const struct ip_addr *b)
{
	return a->family == b->family &&
	       memcmp(a->bytes, b->bytes, sizeof a->bytes) == 0;
}

bool ip_addr_in_block(const struct ip_addr *a, const struct ip_addr *net,
                      unsigned prefix)
{
	struct ip_addr m = *a;

	if (a->family != net->family || prefix > ip_addr_bits(a))
		return false;
	ip_addr_mask(&m, prefix);
	return memcmp(m.bytes, net->bytes, sizeof m.bytes) == 0;
}

bool ip_block_parse(const char *text, struct ip_addr *net, unsigned *prefix)
{
	const char *slash = strchr(text, '/');
	const char *start = text;
	size_t len = slash ? (size_t)(slash - text) : strlen(text);

	if (len >= 2 && start[0] == '[' && start[len - 1] == ']') {
		start++;
		len -= 2;
	}
	if (!ip_addr_parse_n(start, len, net))
		return false;
	*prefix = ip_addr_bits(net);
	if (slash) {
		const char *p = slash + 1;
		char *end;
		unsigned long n;
		if (*p < '0' || *p > '9')
			return false;
		n = strtoul(p, &end, 10);
		if (*end != '\0' || end - p > 3)
			return false;
		/* A v4-mapped block: its prefix counts the 96 mapped bits. */
		if (net->family == IP_V4 && memchr(start, ':', len) != NULL) {
			if (n < 96)
				return false;
			n -= 96;
		}
		if (n > ip_addr_bits(net))
			return false;
		*prefix = (unsigned)n;
	}
	ip_addr_mask(net, *prefix);
	return true;
}
