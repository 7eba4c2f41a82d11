/* SPDX-License-Identifier: ISC */
/*
 * ws.h: DERP over WebSocket (RFC 6455, server side), a framing layer that
 * io.c puts between the socket (or TLS) and a connection's input and
 * output evbuffers. libwslay does the framing; this file only moves bytes:
 * the payload of binary messages is appended to the input as one byte
 * stream, and output bytes leave as binary messages. Connections that
 * never upgrade to WebSocket never reach this file.
 */
#ifndef DERPD_WS_H
#define DERPD_WS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct evbuffer;
struct ws;

/*
 * The largest message accepted (RFC 6455 "message", all fragments): one
 * maximal DERP frame a client may send (ForwardPacket: 5-byte header, two
 * keys, 64 KiB of packet = 65605 bytes) with room to spare. derper's
 * library default is 32 KiB, so whatever derper accepts fits; a client
 * that puts one whole DERP frame in one message fits too.
 */
#define WS_MAX_MSG		(64 * 1024 + 1024)
/*
 * Output messages carry at most this many bytes: the Go client (like
 * derper) reads messages of at most 32 KiB.
 */
#define WS_OUT_MSG		(16 * 1024)
/*
 * Framed bytes held for the socket. Past this mark no more output is
 * framed (the connection's own output buffer and its high-water mark
 * hold the rest), so the layer adds a bounded amount: this, one
 * message and WS_MAX_PONGS small control frames.
 */
#define WS_WIRE_HIGH		(64 * 1024)
/* Pongs owed to a client that does not read: past this, a flood. */
#define WS_MAX_PONGS		64

/* What a close code in the log or a receive result means. */
enum ws_status {
	WS_OK,
	WS_PEER_CLOSED,		/* the client sent a close frame */
	WS_TOO_LARGE,		/* a message over WS_MAX_MSG (1009) */
	WS_TEXT,		/* a text message (1003) */
	WS_PROTOCOL,		/* a framing error or a ping flood (1002) */
	WS_NO_MEMORY,
};

/*
 * The server side of a WebSocket whose 101 has been written. NULL when out
 * of memory. ws_free(NULL) is a no-op.
 */
struct ws *ws_new(void);
void	ws_free(struct ws *);
/*
 * Decode len bytes from the wire; binary payload is appended to in and
 * *added says how much. WS_OK, or why the WebSocket is over: the close
 * frame to send is then queued (ws_encode with closing set writes it)
 * and ws_detail describes it.
 */
enum ws_status ws_recv(struct ws *, const uint8_t *buf, size_t len,
	    struct evbuffer *in, size_t *added);
/*
 * Frame what out holds into the wire buffer (ws_wire) until it holds
 * WS_WIRE_HIGH bytes; closing lifts the mark so a queued close frame goes
 * out. 0, or -1 when out of memory.
 */
int	ws_encode(struct ws *, struct evbuffer *out, int closing);
/* The framed bytes for the socket (owned by ws). */
struct evbuffer *ws_wire(struct ws *);
/* Bytes held by the layer: framed and not yet framed. */
size_t	ws_pending(struct ws *);
/* Queue a close frame (code, reason) unless one was queued already. */
void	ws_close(struct ws *, uint16_t code, const char *reason);
/* A line for the log about the last non-OK ws_recv result. */
const char *ws_detail(const struct ws *);
/*
 * Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key GUID))
 * into out (at least 29 bytes). 0, or -1 on a library failure.
 */
int	ws_accept_key(const char *key, char *out, size_t outlen);

#ifdef __cplusplus
}
#endif
#endif
