/* SPDX-License-Identifier: ISC */
/* fuzz_frame.c: a client's DERP byte stream through the frame codec. */
#include <netinet/in.h>
#include <string.h>

#include "frame.h"
#include "fuzz.h"
#include "util.h"

/* Bytes from the input at off, zero-padded: fuzz-chosen builder inputs. */
static void
take(const uint8_t *data, size_t size, size_t off, uint8_t *out, size_t n)
{
	memset(out, 0, n);
	if (off < size)
		memcpy(out, data + off, size - off < n ? size - off : n);
}

/* Every frame the server builds decodes back to what went in. */
static void
check_builders(const uint8_t *data, size_t size)
{
	uint8_t			 key[32], ping[8], out[128], ip[16], type;
	uint8_t			 hdr[FRAME_HDR_LEN], small[4];
	uint32_t		 len;
	size_t			 n;
	struct sockaddr_in	 s4;
	struct sockaddr_in6	 s6;
	uint16_t		 port;

	take(data, size, 0, key, sizeof(key));
	take(data, size, 32, ping, sizeof(ping));
	take(data, size, 40, ip, sizeof(ip));
	take(data, size, 56, small, sizeof(small));
	port = (uint16_t)(small[0] << 8 | small[1]);

	/* The header alone, for any type and length. */
	len = (uint32_t)ip[0] << 24 | (uint32_t)ip[1] << 16 |
	    (uint32_t)ip[2] << 8 | ip[3];
	frame_put_header(hdr, small[2], len);
	FUZZ_ASSERT(frame_get_header(hdr, sizeof(hdr), &type, &len) ==
	    FRAME_OK);
	FUZZ_ASSERT(type == small[2]);
	FUZZ_ASSERT(len == ((uint32_t)ip[0] << 24 | (uint32_t)ip[1] << 16 |
	    (uint32_t)ip[2] << 8 | ip[3]));
	for (size_t i = 0; i < FRAME_HDR_LEN; i++)
		FUZZ_ASSERT(frame_get_header(hdr, i, &type, &len) ==
		    FRAME_NEED_MORE);

	n = frame_build_server_key(out, key);
	FUZZ_ASSERT(frame_get_header(out, n, &type, &len) == FRAME_OK);
	FUZZ_ASSERT(type == FRAME_SERVER_KEY && len == n - FRAME_HDR_LEN);
	FUZZ_ASSERT(memcmp(out + FRAME_HDR_LEN, FRAME_MAGIC,
	    FRAME_MAGIC_LEN) == 0);
	FUZZ_ASSERT(memcmp(out + FRAME_HDR_LEN + FRAME_MAGIC_LEN, key,
	    32) == 0);

	n = frame_build_peer_gone(out, key, small[3]);
	FUZZ_ASSERT(frame_get_header(out, n, &type, &len) == FRAME_OK);
	FUZZ_ASSERT(type == FRAME_PEER_GONE && len == n - FRAME_HDR_LEN);
	FUZZ_ASSERT(memcmp(out + FRAME_HDR_LEN, key, 32) == 0);
	FUZZ_ASSERT(out[FRAME_HDR_LEN + 32] == small[3]);

	n = frame_build_pong(out, ping);
	FUZZ_ASSERT(frame_get_header(out, n, &type, &len) == FRAME_OK);
	FUZZ_ASSERT(type == FRAME_PONG && len == 8);
	FUZZ_ASSERT(memcmp(out + FRAME_HDR_LEN, ping, 8) == 0);

	n = frame_build_keepalive(out);
	FUZZ_ASSERT(n == FRAME_HDR_LEN);
	FUZZ_ASSERT(frame_get_header(out, n, &type, &len) == FRAME_OK);
	FUZZ_ASSERT(type == FRAME_KEEP_ALIVE && len == 0);

	/* PeerPresent: key, 16-byte address (v4-mapped for v4), port, flags. */
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	memcpy(&s4.sin_addr, ip, 4);
	s4.sin_port = htons(port);
	n = frame_build_peer_present(out, key, (struct sockaddr *)&s4,
	    small[3]);
	FUZZ_ASSERT(n == FRAME_HDR_LEN + FRAME_PEERPRESENT_LEN);
	FUZZ_ASSERT(frame_get_header(out, n, &type, &len) == FRAME_OK);
	FUZZ_ASSERT(type == FRAME_PEER_PRESENT && len == n - FRAME_HDR_LEN);
	FUZZ_ASSERT(memcmp(out + 5, key, 32) == 0);
	FUZZ_ASSERT(util_is_zero(out + 37, 10));
	FUZZ_ASSERT(out[47] == 0xff && out[48] == 0xff);
	FUZZ_ASSERT(memcmp(out + 49, ip, 4) == 0);
	FUZZ_ASSERT((out[53] << 8 | out[54]) == port && out[55] == small[3]);

	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	memcpy(&s6.sin6_addr, ip, 16);
	s6.sin6_port = htons(port);
	n = frame_build_peer_present(out, key, (struct sockaddr *)&s6,
	    small[3]);
	FUZZ_ASSERT(n == FRAME_HDR_LEN + FRAME_PEERPRESENT_LEN);
	FUZZ_ASSERT(memcmp(out + 37, ip, 16) == 0);
	FUZZ_ASSERT((out[53] << 8 | out[54]) == port && out[55] == small[3]);

	n = frame_build_peer_present(out, key, NULL, small[3]);
	FUZZ_ASSERT(util_is_zero(out + 37, 18) && out[55] == small[3]);
}

/*
 * Walk the input as conn.c reads a client: a ClientInfo frame, then
 * frames checked by frame_check_client_len. Whatever it accepts must
 * leave room for the fixed fields conn_frame() removes before the body.
 */
static void
walk_stream(const uint8_t *data, size_t size)
{
	size_t		 off = 0, avail, plen;
	uint8_t		 type;
	uint32_t	 len;
	const char	*why;
	int		 first = 1;

	while (frame_get_header(data + off, size - off, &type, &len) ==
	    FRAME_OK) {
		FUZZ_ASSERT(size - off >= FRAME_HDR_LEN);
		off += FRAME_HDR_LEN;
		if (first) {
			if (type != FRAME_CLIENT_INFO || len <
			    FRAME_CLIENTINFO_MIN + FRAME_BOX_MAC_LEN ||
			    len > FRAME_CLIENTINFO_MAX)
				return;
			first = 0;
		} else {
			why = NULL;
			if (frame_check_client_len(type, len, &why) !=
			    FRAME_OK) {
				FUZZ_ASSERT(why != NULL && why[0] != '\0');
				return;
			}
			avail = size - off < len ? size - off : len;
			switch (type) {
			case FRAME_SEND_PACKET:
				FUZZ_ASSERT(len >= FRAME_KEY_LEN);
				plen = len - FRAME_KEY_LEN;
				FUZZ_ASSERT(plen <= FRAME_MAX_PACKET);
				if (avail >= FRAME_KEY_LEN &&
				    frame_is_disco(data + off + FRAME_KEY_LEN,
				    avail - FRAME_KEY_LEN))
					FUZZ_ASSERT(avail - FRAME_KEY_LEN >=
					    FRAME_DISCO_MIN);
				break;
			case FRAME_FORWARD_PACKET:
				FUZZ_ASSERT(len >= 2 * FRAME_KEY_LEN);
				plen = len - 2 * FRAME_KEY_LEN;
				FUZZ_ASSERT(plen <= FRAME_MAX_PACKET);
				if (avail >= 2 * FRAME_KEY_LEN)
					(void)frame_is_disco(data + off +
					    2 * FRAME_KEY_LEN,
					    avail - 2 * FRAME_KEY_LEN);
				break;
			case FRAME_PING:
				FUZZ_ASSERT(len >= 8 && len <= FRAME_PING_MAX);
				break;
			case FRAME_NOTE_PREFERRED:
				FUZZ_ASSERT(len == 1);
				break;
			case FRAME_WATCH_CONNS:
				FUZZ_ASSERT(len == 0);
				break;
			case FRAME_CLOSE_PEER:
				FUZZ_ASSERT(len == FRAME_KEY_LEN);
				break;
			default:
				break;
			}
		}
		if (len > size - off)
			return;		/* conn.c waits for the rest */
		off += len;
	}
	FUZZ_ASSERT(size - off < FRAME_HDR_LEN);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	walk_stream(data, size);
	check_builders(data, size);
	return 0;
}
