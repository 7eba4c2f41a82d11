/* SPDX-License-Identifier: ISC */
/* fuzz_stun.c: STUN datagrams through the binding-request classifier. */
#include <netinet/in.h>
#include <string.h>

#include "fuzz.h"
#include "stun.h"

static void
take(const uint8_t *data, size_t size, size_t off, uint8_t *out, size_t n)
{
	memset(out, 0, n);
	if (off < size)
		memcpy(out, data + off, size - off < n ? size - off : n);
}

/* The response carries addr XOR cookie|txid, and is no request itself. */
static void
check_response(const uint8_t txid[12], const struct sockaddr *sa,
    const uint8_t *ip, size_t iplen, uint16_t port)
{
	uint8_t	 out[STUN_RESPONSE_MAX], pad[16], id[12];
	size_t	 n;

	n = stun_build_response(out, txid, sa);
	FUZZ_ASSERT(n == 28 + iplen && n <= STUN_RESPONSE_MAX);
	FUZZ_ASSERT(out[0] == 0x01 && out[1] == 0x01);
	FUZZ_ASSERT((size_t)(out[2] << 8 | out[3]) == n - 20);
	FUZZ_ASSERT(memcmp(out + 8, txid, 12) == 0);
	FUZZ_ASSERT(out[25] == (iplen == 4 ? 0x01 : 0x02));
	FUZZ_ASSERT((uint16_t)((out[26] << 8 | out[27]) ^ 0x2112) == port);
	pad[0] = 0x21;
	pad[1] = 0x12;
	pad[2] = 0xa4;
	pad[3] = 0x42;
	memcpy(pad + 4, txid, 12);
	for (size_t i = 0; i < iplen; i++)
		FUZZ_ASSERT((out[28 + i] ^ pad[i]) == ip[i]);
	FUZZ_ASSERT(stun_parse_request(out, n, id) == STUN_NOT);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t			 txid[12], id[12], req[64], ip[16], pb[2];
	size_t			 n;
	enum stun_kind		 kind;
	struct sockaddr_in	 s4;
	struct sockaddr_in6	 s6;
	uint16_t		 port;

	kind = stun_parse_request(data, size, txid);
	if (kind != STUN_NOT) {
		/* A whole request: header and 4-aligned attributes, no more. */
		FUZZ_ASSERT(size >= STUN_HDR_LEN && size % 4 == 0);
		FUZZ_ASSERT(data[0] == 0x00 && data[1] == 0x01);
		FUZZ_ASSERT(memcmp(txid, data + 8, 12) == 0);
	}
	FUZZ_ASSERT(kind == STUN_NOT || kind == STUN_TAILSCALE ||
	    kind == STUN_RFC5389);

	/* What Tailscale sends, with the input's txid, is Tailscale's. */
	take(data, size, 8, txid, sizeof(txid));
	n = stun_build_request(req, txid);
	FUZZ_ASSERT(stun_parse_request(req, n, id) == STUN_TAILSCALE);
	FUZZ_ASSERT(memcmp(id, txid, 12) == 0);
	/* A flipped bit in what the FINGERPRINT covers must be refused. */
	if (size > 0) {
		size_t at = 20 + data[0] % 12;
		req[at] ^= 1;
		FUZZ_ASSERT(stun_parse_request(req, n, id) != STUN_TAILSCALE);
	}

	take(data, size, 20, ip, sizeof(ip));
	take(data, size, 36, pb, sizeof(pb));
	port = (uint16_t)(pb[0] << 8 | pb[1]);
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	memcpy(&s4.sin_addr, ip, 4);
	s4.sin_port = htons(port);
	check_response(txid, (struct sockaddr *)&s4, ip, 4, port);
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	memcpy(&s6.sin6_addr, ip, 16);
	s6.sin6_port = htons(port);
	if (memcmp(ip, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0)
		check_response(txid, (struct sockaddr *)&s6, ip + 12, 4, port);
	else
		check_response(txid, (struct sockaddr *)&s6, ip, 16, port);
	return 0;
}
