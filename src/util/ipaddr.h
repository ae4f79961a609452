/*
 * ipaddr: one value type for client addresses, shared by every layer.
 *
 * An address is IPv4 or IPv6, stored in network byte order. IPv4-mapped IPv6
 * addresses (::ffff:a.b.c.d) are folded to IPv4 on every way in, so that no
 * other module ever sees one: dual-stack sockets, PROXY headers and policy
 * arguments all agree on what "the same client" is.
 */
#ifndef MX_UTIL_IPADDR_H
#define MX_UTIL_IPADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum ip_family {
	IP_NONE = 0,
	IP_V4 = 4,
	IP_V6 = 6,
};

struct ip_addr {
	uint8_t family;   /* enum ip_family */
	uint8_t bytes[16]; /* IPv4 uses bytes[0..3]; the rest is zero */
};

/* Longest text ip_addr_format() writes, with its NUL. */
#define IP_ADDR_TEXT_MAX 46

/* Bits in an address of this family: 32 or 128 (0 for IP_NONE). */
static inline unsigned ip_addr_bits(const struct ip_addr *a)
{
	return a->family == IP_V4 ? 32 : a->family == IP_V6 ? 128 : 0;
}

/* Parse a bare address (no brackets, no prefix). IPv4-mapped becomes IPv4.
 * Returns false on anything else. */
bool ip_addr_parse(const char *text, struct ip_addr *out);

/* Same, for a text of known length that need not be NUL-terminated. */
bool ip_addr_parse_n(const char *text, size_t len, struct ip_addr *out);

/* From a socket address (AF_INET or AF_INET6); false for other families. */
bool ip_addr_from_sockaddr(const struct sockaddr *sa, struct ip_addr *out,
                           uint16_t *port);

/* RFC 5952 text for IPv6, dotted quad for IPv4. Returns buf. */
char *ip_addr_format(const struct ip_addr *a, char *buf, size_t len);

/* Zero every bit after the first `prefix` bits (prefix <= ip_addr_bits). */
void ip_addr_mask(struct ip_addr *a, unsigned prefix);

/* Bit `i` (0 = most significant of the first byte). */
static inline unsigned ip_addr_bit(const struct ip_addr *a, unsigned i)
{
	return (a->bytes[i >> 3] >> (7 - (i & 7))) & 1u;
}

/* Same family and same bytes. */
bool ip_addr_equal(const struct ip_addr *a, const struct ip_addr *b);

/* True when `a` lies inside block `net`/`prefix` (same family required). */
bool ip_addr_in_block(const struct ip_addr *a, const struct ip_addr *net,
                      unsigned prefix);

/* Parse "addr", "addr/N", "[v6]" or "[v6]/N" into a masked block. Without a
 * prefix the block is the single address. Returns false on bad text or an
 * out-of-range prefix. */
bool ip_block_parse(const char *text, struct ip_addr *net, unsigned *prefix);

#endif
