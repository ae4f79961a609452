/*
 * proxy: a pure parser for the PROXY protocol header, versions 1 and 2
 * (haproxy's proxy-protocol.txt), sent by a load balancer before the SMTP
 * dialogue so that the server learns the real client address.
 *
 * Bytes in, verdict out; no I/O, no allocation, so it is fuzzed alone.
 * The caller feeds everything received so far; NEED_MORE means "read more
 * and call again with the longer buffer". Only the header is consumed:
 * bytes after it (an early talker, or a client pipelining) stay the
 * caller's. Accepted: v1 TCP4, TCP6, UNKNOWN; v2 PROXY over TCP4/TCP6,
 * v2 LOCAL, v2 PROXY with family UNSPEC (treated as LOCAL, as the spec asks).
 * Anything else (UDP, UNIX, bad syntax, a header longer than we allow) is
 * an ERROR, and the connection is closed without a banner.
 */
#ifndef MX_NET_PROXY_H
#define MX_NET_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "util/ipaddr.h"

/* Longest v1 header, CRLF included (the spec's 107 bytes). */
#define PROXY_V1_MAX 107
/* Longest v2 header we take: 16 fixed bytes + addresses + TLVs. */
#define PROXY_V2_MAX 1024

enum proxy_result {
	PROXY_NEED_MORE = 1, /* a valid prefix: read more */
	PROXY_OK,            /* src/dst filled: the proxied client */
	PROXY_LOCAL,         /* valid header, keep the real peer address */
	PROXY_ERROR,         /* not a PROXY header we accept: close */
};

struct proxy_info {
	int version;           /* 1 or 2 */
	struct ip_addr src;    /* the client (IPv4-mapped folded to IPv4) */
	uint16_t src_port;
	struct ip_addr dst;
	uint16_t dst_port;
	size_t consumed;       /* header length, for OK and LOCAL */
};

/* Parse the start of a connection's byte stream. */
enum proxy_result proxy_parse(const uint8_t *buf, size_t len, struct proxy_info *out);

#endif
