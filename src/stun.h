/* SPDX-License-Identifier: ISC */
/* stun.h: pure STUN binding codec (PROTOCOL.md 9, RFC 5389). */
#ifndef DERPD_STUN_H
#define DERPD_STUN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STUN_HDR_LEN		20
#define STUN_TXID_LEN		12
#define STUN_MAGIC_COOKIE	0x2112A442u
#define STUN_RESPONSE_MAX	(STUN_HDR_LEN + 4 + 20)

enum stun_kind {
	STUN_NOT,		/* not a binding request we answer */
	STUN_TAILSCALE,		/* SOFTWARE=tailnode + valid FINGERPRINT */
	STUN_RFC5389,		/* any other well-formed binding request */
};

/*
 * Classify a datagram. For STUN_TAILSCALE and STUN_RFC5389 the
 * transaction id is copied to txid. A FINGERPRINT, when present, must
 * be last and correct.
 */
enum stun_kind stun_parse_request(const uint8_t *p, size_t n,
	    uint8_t txid[12]);
/*
 * Binding success response carrying only XOR-MAPPED-ADDRESS for addr
 * (IPv4 mapped addresses are answered as plain IPv4). Returns bytes
 * written to out (at least STUN_RESPONSE_MAX), or 0 on bad family.
 */
size_t	stun_build_response(uint8_t *out, const uint8_t txid[12],
	    const struct sockaddr *addr);
/* Binding request as Tailscale sends it (40 bytes), for tests. */
size_t	stun_build_request(uint8_t *out, const uint8_t txid[12]);
/* CRC-32 (IEEE), as used by FINGERPRINT. */
uint32_t stun_crc32(const uint8_t *p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
