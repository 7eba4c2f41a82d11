/* SPDX-License-Identifier: ISC */
/* frame.h: pure DERP frame codec (PROTOCOL.md sections 2-3). No I/O. */
#ifndef DERPD_FRAME_H
#define DERPD_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FRAME_HDR_LEN		5
#define FRAME_KEY_LEN		32
#define FRAME_NONCE_LEN		24
#define FRAME_BOX_MAC_LEN	16
#define FRAME_MAX_PACKET	65536
#define FRAME_CLIENTINFO_MIN	56		/* key + nonce */
#define FRAME_CLIENTINFO_MAX	(256 * 1024)
#define FRAME_PING_MIN		8
#define FRAME_PING_MAX		1000
#define FRAME_PEERPRESENT_LEN	51
#define FRAME_SERVERKEY_LEN	40
#define FRAME_PROTOCOL_VERSION	2
#define FRAME_DISCO_MIN		62		/* magic 6 + key 32 + nonce 24 */

#define FRAME_MAGIC		"DERP\xf0\x9f\x94\x91"
#define FRAME_MAGIC_LEN		8
#define FRAME_DISCO_MAGIC	"TS\xf0\x9f\x92\xac"
#define FRAME_DISCO_MAGIC_LEN	6

enum frame_type {
	FRAME_SERVER_KEY	= 0x01,
	FRAME_CLIENT_INFO	= 0x02,
	FRAME_SERVER_INFO	= 0x03,
	FRAME_SEND_PACKET	= 0x04,
	FRAME_RECV_PACKET	= 0x05,
	FRAME_KEEP_ALIVE	= 0x06,
	FRAME_NOTE_PREFERRED	= 0x07,
	FRAME_PEER_GONE		= 0x08,
	FRAME_PEER_PRESENT	= 0x09,
	FRAME_FORWARD_PACKET	= 0x0a,
	FRAME_WATCH_CONNS	= 0x10,
	FRAME_CLOSE_PEER	= 0x11,
	FRAME_PING		= 0x12,
	FRAME_PONG		= 0x13,
	FRAME_HEALTH		= 0x14,
	FRAME_RESTARTING	= 0x15,
};

enum frame_status {
	FRAME_OK,
	FRAME_NEED_MORE,
	FRAME_BAD,
};

#define PEER_GONE_DISCONNECTED	0x00
#define PEER_GONE_NOT_HERE	0x01

#define PEER_PRESENT_REGULAR	0x01
#define PEER_PRESENT_MESH	0x02
#define PEER_PRESENT_PROBER	0x04
#define PEER_PRESENT_NOT_IDEAL	0x08

/* Write a 5-byte header (type, big-endian payload length) at p. */
void	frame_put_header(uint8_t *p, uint8_t type, uint32_t len);
/* Read a header from n bytes: FRAME_NEED_MORE when n < 5, else OK. */
enum frame_status frame_get_header(const uint8_t *p, size_t n, uint8_t *type,
	    uint32_t *len);
/*
 * Validate a client-to-server frame's declared length against
 * PROTOCOL.md 2.2 for a connection in steady state. FRAME_BAD means the
 * connection must be closed; *why names the rule.
 */
enum frame_status frame_check_client_len(uint8_t type, uint32_t len,
	    const char **why);
/* True for disco packets: len >= 62 and the TS<speech> magic prefix. */
bool	frame_is_disco(const uint8_t *pkt, size_t len);
/* ServerKey frame (45 bytes) into out. Returns bytes written. */
size_t	frame_build_server_key(uint8_t *out, const uint8_t pub[32]);
/* PeerGone frame (5 + 33 bytes). Returns bytes written. */
size_t	frame_build_peer_gone(uint8_t *out, const uint8_t key[32],
	    uint8_t reason);
/*
 * PeerPresent frame (5 + 51 bytes): key, 16-byte v4-mapped IP, port,
 * flags. A NULL or unknown address is written as zeros.
 */
size_t	frame_build_peer_present(uint8_t *out, const uint8_t key[32],
	    const struct sockaddr *sa, uint8_t flags);
/* Pong frame (5 + 8 bytes) echoing data. */
size_t	frame_build_pong(uint8_t *out, const uint8_t data[8]);
/* KeepAlive frame (5 bytes). */
size_t	frame_build_keepalive(uint8_t *out);

/* ClientInfo plaintext, decoded. */
struct clientinfo {
	bool	 ci_has_mesh_key;
	uint8_t	 ci_mesh_key[32];
	int	 ci_version;
	bool	 ci_can_ack_pings;
	bool	 ci_is_prober;
	char	 ci_app_name[64];
};

/*
 * Decode ClientInfo JSON (keys case-insensitive, unknown keys ignored).
 * A present meshKey must be a 64-hex string. 0, or -1 with *why set.
 */
int	frame_clientinfo_parse(const char *json, size_t len,
	    struct clientinfo *ci, const char **why);

#ifdef __cplusplus
}
#endif
#endif
