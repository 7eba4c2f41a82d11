/* SPDX-License-Identifier: ISC */
/* stun.c: STUN binding request classification and response building. */
#include <netinet/in.h>
#include <string.h>

#include "stun.h"

#define ATTR_MAPPED_ADDRESS	0x0001
#define ATTR_XOR_MAPPED_ADDRESS	0x0020
#define ATTR_SOFTWARE		0x8022
#define ATTR_FINGERPRINT	0x8028
#define FINGERPRINT_XOR		0x5354554Eu

uint32_t
stun_crc32(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
	}
	return c ^ 0xffffffffu;
}

static uint16_t
get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

enum stun_kind
stun_parse_request(const uint8_t *p, size_t n, uint8_t txid[12])
{
	size_t	 off = STUN_HDR_LEN;
	int	 tailnode = 0, fp_ok = 0, fp_seen = 0;

	if (n < STUN_HDR_LEN || (p[0] & 0xc0) != 0 ||
	    get32(p + 4) != STUN_MAGIC_COOKIE || get16(p) != 0x0001)
		return STUN_NOT;
	/* Walk attributes over the actual datagram, 4-byte aligned. */
	while (off + 4 <= n) {
		uint16_t type = get16(p + off), len = get16(p + off + 2);
		size_t	 vend = off + 4 + len;

		if (vend > n)
			return STUN_NOT;
		if (fp_seen)
			return STUN_NOT;	/* FINGERPRINT must be last */
		if (type == ATTR_SOFTWARE && len == 8 &&
		    memcmp(p + off + 4, "tailnode", 8) == 0)
			tailnode = 1;
		if (type == ATTR_FINGERPRINT) {
			fp_seen = 1;
			if (len != 4)
				return STUN_NOT;
			fp_ok = (stun_crc32(p, off) ^ FINGERPRINT_XOR) ==
			    get32(p + off + 4);
			if (!fp_ok)
				return STUN_NOT;
		}
		off = vend + ((4 - (len & 3)) & 3);
		if (off > n)
			return STUN_NOT;	/* padding runs past the datagram */
	}
	if (off < n)
		return STUN_NOT;	/* trailing bytes that are no attribute */
	memcpy(txid, p + 8, STUN_TXID_LEN);
	if (tailnode && fp_ok)
		return STUN_TAILSCALE;
	return STUN_RFC5389;
}

size_t
stun_build_response(uint8_t *out, const uint8_t txid[12],
    const struct sockaddr *addr)
{
	uint8_t		 ip[16];
	size_t		 iplen;
	uint16_t	 port;
	uint8_t		 xorpad[16];

	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *s4 =
		    (const struct sockaddr_in *)addr;
		memcpy(ip, &s4->sin_addr, 4);
		iplen = 4;
		port = ntohs(s4->sin_port);
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)addr;
		static const uint8_t v4mapped[12] =
		    { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(&s6->sin6_addr, v4mapped, 12) == 0) {
			memcpy(ip, (const uint8_t *)&s6->sin6_addr + 12, 4);
			iplen = 4;
		} else {
			memcpy(ip, &s6->sin6_addr, 16);
			iplen = 16;
		}
		port = ntohs(s6->sin6_port);
	} else
		return 0;
	put16(out, 0x0101);
	put16(out + 2, (uint16_t)(4 + 4 + iplen));
	put32(out + 4, STUN_MAGIC_COOKIE);
	memcpy(out + 8, txid, STUN_TXID_LEN);
	put16(out + 20, ATTR_XOR_MAPPED_ADDRESS);
	put16(out + 22, (uint16_t)(4 + iplen));
	out[24] = 0;
	out[25] = iplen == 4 ? 0x01 : 0x02;
	put16(out + 26, port ^ (uint16_t)(STUN_MAGIC_COOKIE >> 16));
	put32(xorpad, STUN_MAGIC_COOKIE);
	memcpy(xorpad + 4, txid, STUN_TXID_LEN);
	for (size_t i = 0; i < iplen; i++)
		out[28 + i] = ip[i] ^ xorpad[i];
	return 28 + iplen;
}

size_t
stun_build_request(uint8_t *out, const uint8_t txid[12])
{
	put16(out, 0x0001);
	put16(out + 2, 12 + 8);
	put32(out + 4, STUN_MAGIC_COOKIE);
	memcpy(out + 8, txid, STUN_TXID_LEN);
	put16(out + 20, ATTR_SOFTWARE);
	put16(out + 22, 8);
	memcpy(out + 24, "tailnode", 8);
	put16(out + 32, ATTR_FINGERPRINT);
	put16(out + 34, 4);
	put32(out + 36, stun_crc32(out, 32) ^ FINGERPRINT_XOR);
	return 40;
}
