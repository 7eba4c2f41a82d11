/* SPDX-License-Identifier: ISC */
/* ws.c: the WebSocket framing layer (libwslay) under a DERP connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "ws.h"

#define WS_GUID	"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct ws {
	wslay_event_context_ptr	 w_ctx;
	struct evbuffer		*w_wire;	/* framed, for the socket */
	struct evbuffer		*w_in;		/* payload goes here (recv) */
	const uint8_t		*w_src;		/* wire bytes being decoded */
	size_t			 w_srclen;
	size_t			 w_added;	/* payload bytes this recv */
	uint64_t		 w_msglen;	/* data message so far */
	uint8_t			 w_msgop;	/* its opcode */
	uint8_t			 w_frameop;	/* the current frame's */
	int			 w_closing;	/* no mark on the wire */
	enum ws_status		 w_status;
	char			 w_detail[96];
};

/* End the WebSocket for reason s: a close frame, no more reading. */
static void
ws_fail(struct ws *ws, enum ws_status s, uint16_t code, const char *why)
{
	if (ws->w_status != WS_OK)
		return;
	ws->w_status = s;
	snprintf(ws->w_detail, sizeof(ws->w_detail), "websocket: %s", why);
	ws_close(ws, code, why);
	wslay_event_shutdown_read(ws->w_ctx);
}

/* wslay wants wire bytes: hand out what the socket gave us. */
static ssize_t
ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *arg)
{
	struct ws *ws = arg;

	(void)flags;
	if (ws->w_srclen == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (len > ws->w_srclen)
		len = ws->w_srclen;
	memcpy(buf, ws->w_src, len);
	ws->w_src += len;
	ws->w_srclen -= len;
	return (ssize_t)len;
}

/* wslay has framed bytes: keep them for the socket, up to the mark. */
static ssize_t
ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *arg)
{
	struct ws *ws = arg;

	(void)flags;
	if (!ws->w_closing && evbuffer_get_length(ws->w_wire) >= WS_WIRE_HIGH) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (evbuffer_add(ws->w_wire, data, len) == -1) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

/*
 * A frame starts. Payload is streamed (no per-message buffer: a header
 * announcing 64 KiB costs nothing until the bytes come), so the message
 * cap is counted here across fragments; wslay checks each frame.
 */
static void
ws_frame_start_cb(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_start_arg *a, void *arg)
{
	struct ws	*ws = arg;
	uint8_t		 op = a->opcode;

	if (op == WSLAY_CONTINUATION_FRAME)
		op = ws->w_msgop;
	else if (!wslay_is_ctrl_frame(op)) {
		ws->w_msgop = op;
		ws->w_msglen = 0;
	}
	ws->w_frameop = op;
	if (op == WSLAY_TEXT_FRAME)
		ws_fail(ws, WS_TEXT, WSLAY_CODE_UNSUPPORTED_DATA,
		    "text message (derp is binary)");
	else if (op == WSLAY_BINARY_FRAME) {
		ws->w_msglen += a->payload_length;
		if (ws->w_msglen > WS_MAX_MSG)
			ws_fail(ws, WS_TOO_LARGE, WSLAY_CODE_MESSAGE_TOO_BIG,
			    "message too large");
	} else if (op == WSLAY_PING &&
	    wslay_event_get_queued_msg_count(ctx) >= WS_MAX_PONGS)
		ws_fail(ws, WS_PROTOCOL, WSLAY_CODE_POLICY_VIOLATION,
		    "pings faster than pongs are read");
}

/* Payload of the current frame: binary data joins the DERP stream. */
static void
ws_frame_chunk_cb(wslay_event_context_ptr ctx,
    const struct wslay_event_on_frame_recv_chunk_arg *a, void *arg)
{
	struct ws *ws = arg;

	(void)ctx;
	if (ws->w_status != WS_OK || ws->w_frameop != WSLAY_BINARY_FRAME ||
	    a->data_length == 0)
		return;
	if (evbuffer_add(ws->w_in, a->data, a->data_length) == -1) {
		ws_fail(ws, WS_NO_MEMORY, WSLAY_CODE_INTERNAL_SERVER_ERROR,
		    "out of memory");
		return;
	}
	ws->w_added += a->data_length;
}

static const struct wslay_event_callbacks ws_cbs = {
	.recv_callback = ws_recv_cb,
	.send_callback = ws_send_cb,
	.on_frame_recv_start_callback = ws_frame_start_cb,
	.on_frame_recv_chunk_callback = ws_frame_chunk_cb,
};

struct ws *
ws_new(void)
{
	struct ws *ws;

	if ((ws = calloc(1, sizeof(*ws))) == NULL)
		return NULL;
	if ((ws->w_wire = evbuffer_new()) == NULL ||
	    wslay_event_context_server_init(&ws->w_ctx, &ws_cbs, ws) != 0) {
		ws_free(ws);
		return NULL;
	}
	wslay_event_config_set_no_buffering(ws->w_ctx, 1);
	/* Per frame with no buffering; ws_frame_start_cb adds them up. */
	wslay_event_config_set_max_recv_msg_length(ws->w_ctx, WS_MAX_MSG);
	return ws;
}

void
ws_free(struct ws *ws)
{
	if (ws == NULL)
		return;
	if (ws->w_ctx != NULL)
		wslay_event_context_free(ws->w_ctx);
	if (ws->w_wire != NULL)
		evbuffer_free(ws->w_wire);
	free(ws);
}

struct evbuffer *
ws_wire(struct ws *ws)
{
	return ws->w_wire;
}

size_t
ws_pending(struct ws *ws)
{
	size_t n = evbuffer_get_length(ws->w_wire);

	/* After a close frame nothing queued will ever be sent. */
	if (wslay_event_get_write_enabled(ws->w_ctx))
		n += wslay_event_get_queued_msg_length(ws->w_ctx);
	return n;
}

void
ws_close(struct ws *ws, uint16_t code, const char *reason)
{
	/* NO_MORE_MSG: a close is queued or sent already; that one goes. */
	(void)wslay_event_queue_close(ws->w_ctx, code, (const uint8_t *)reason,
	    strlen(reason));
}

const char *
ws_detail(const struct ws *ws)
{
	return ws->w_detail;
}

enum ws_status
ws_recv(struct ws *ws, const uint8_t *buf, size_t len, struct evbuffer *in,
    size_t *added)
{
	int		 r;
	uint16_t	 code;

	*added = 0;
	if (ws->w_status != WS_OK)
		return ws->w_status;
	ws->w_src = buf;
	ws->w_srclen = len;
	ws->w_in = in;
	ws->w_added = 0;
	r = wslay_event_recv(ws->w_ctx);
	ws->w_src = NULL;
	ws->w_srclen = 0;
	ws->w_in = NULL;
	*added = ws->w_added;
	if (ws->w_status != WS_OK)
		return ws->w_status;
	if (wslay_event_get_close_received(ws->w_ctx)) {
		ws->w_status = WS_PEER_CLOSED;
		snprintf(ws->w_detail, sizeof(ws->w_detail),
		    "websocket close %u from the client",
		    wslay_event_get_status_code_received(ws->w_ctx));
		return ws->w_status;
	}
	if (r == WSLAY_ERR_NOMEM) {
		ws->w_status = WS_NO_MEMORY;
		snprintf(ws->w_detail, sizeof(ws->w_detail),
		    "websocket: out of memory");
		return ws->w_status;
	}
	if (r == 0 && wslay_event_get_read_enabled(ws->w_ctx))
		return WS_OK;
	/*
	 * wslay found a bad frame and queued the close frame itself: send it
	 * now to learn its code (1009: a frame over the cap).
	 */
	ws->w_closing = 1;
	(void)wslay_event_send(ws->w_ctx);
	code = wslay_event_get_close_sent(ws->w_ctx) ?
	    wslay_event_get_status_code_sent(ws->w_ctx) :
	    WSLAY_CODE_PROTOCOL_ERROR;
	if (code == WSLAY_CODE_MESSAGE_TOO_BIG) {
		ws->w_status = WS_TOO_LARGE;
		snprintf(ws->w_detail, sizeof(ws->w_detail),
		    "websocket: message too large");
	} else {
		ws->w_status = WS_PROTOCOL;
		snprintf(ws->w_detail, sizeof(ws->w_detail),
		    "websocket: protocol error (close %u)", code);
	}
	return ws->w_status;
}

int
ws_encode(struct ws *ws, struct evbuffer *out, int closing)
{
	struct wslay_event_msg	 m;
	size_t			 n;
	int			 r;

	if (closing) {
		ws->w_closing = 1;
		return wslay_event_send(ws->w_ctx) == WSLAY_ERR_NOMEM ? -1 : 0;
	}
	for (;;) {
		/* Control frames (pongs, a close) first, then the rest. */
		if ((r = wslay_event_send(ws->w_ctx)) != 0)
			return r == WSLAY_ERR_NOMEM ? -1 : 0;
		if (evbuffer_get_length(ws->w_wire) >= WS_WIRE_HIGH ||
		    wslay_event_want_write(ws->w_ctx))
			return 0;
		if ((n = evbuffer_get_length(out)) == 0)
			return 0;
		if (!wslay_event_get_write_enabled(ws->w_ctx)) {
			/* Closed: what the connection still says is moot. */
			evbuffer_drain(out, n);
			return 0;
		}
		if (n > WS_OUT_MSG)
			n = WS_OUT_MSG;
		if ((m.msg = evbuffer_pullup(out, (ev_ssize_t)n)) == NULL)
			return -1;
		m.opcode = WSLAY_BINARY_FRAME;
		m.msg_length = n;
		r = wslay_event_queue_msg(ws->w_ctx, &m);
		if (r == WSLAY_ERR_NO_MORE_MSG) {
			/* A close is queued: it goes next; drop the rest. */
			evbuffer_drain(out, evbuffer_get_length(out));
			continue;
		}
		if (r != 0)
			return -1;
		evbuffer_drain(out, n);
	}
}

int
ws_accept_key(const char *key, char *out, size_t outlen)
{
	EVP_MD_CTX	*md;
	unsigned char	 dig[EVP_MAX_MD_SIZE];
	unsigned int	 dlen = 0;
	int		 ok;

	if (outlen < 29 || (md = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(md, EVP_sha1(), NULL) == 1 &&
	    EVP_DigestUpdate(md, key, strlen(key)) == 1 &&
	    EVP_DigestUpdate(md, WS_GUID, sizeof(WS_GUID) - 1) == 1 &&
	    EVP_DigestFinal_ex(md, dig, &dlen) == 1 && dlen == 20;
	EVP_MD_CTX_free(md);
	if (!ok)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, dig, 20);	/* 28 + NUL */
	return 0;
}
