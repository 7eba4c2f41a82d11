/* SPDX-License-Identifier: ISC */
/* conn_http.c: the HTTP request head of a connection and its answer. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "conn_int.h"
#include "derpd.h"
#include "http.h"
#include "io.h"
#include "util.h"
#include "varz.h"
#include "ws.h"

/* Queue a complete HTTP response and close once it is written. */
void
conn_http_respond(struct conn *c, int code, const char *extra,
    const char *ctype, const char *body, int head_only)
{
	char	 buf[8192];
	size_t	 blen = body ? strlen(body) : 0, n;

	n = http_build_response(buf, sizeof(buf), code, extra, ctype, body,
	    blen, head_only);
	if (n == 0) {
		conn_close(c, CLOSE_NO_MEMORY, "response too large");
		return;
	}
	io_stop_read(c->c_io);
	conn_set_state(c, CONN_HTTP_RESPONSE);
	evbuffer_add(io_output(c->c_io), buf, n);
	io_flush(c->c_io);
}

/* 200 with the metrics; the body is built here, not in a fixed buffer. */
static void
conn_http_varz(struct conn *c, int head_only)
{
	struct evbuffer	*out = io_output(c->c_io), *b;
	char		 head[512];
	size_t		 n;

	if ((b = evbuffer_new()) == NULL) {
		conn_close(c, CLOSE_NO_MEMORY, "varz");
		return;
	}
	varz_render(c->c_env, b);
	n = http_build_response(head, sizeof(head), 200, NULL,
	    "text/plain; version=0.0.4", NULL, evbuffer_get_length(b), true);
	evbuffer_add(out, head, n);
	if (!head_only)
		evbuffer_add_buffer(out, b);
	evbuffer_free(b);
	io_stop_read(c->c_io);
	conn_set_state(c, CONN_HTTP_RESPONSE);
	io_flush(c->c_io);
}

static int
conn_is_loopback(const struct conn *c)
{
	return util_addr_is_loopback((const struct sockaddr *)&c->c_sa);
}

/*
 * DERP over WebSocket: the 101, the WebSocket layer under the connection
 * (io_start_ws), then DERP exactly as after a raw upgrade, ServerKey
 * first, inside binary messages. Without the derp subprotocol the
 * handshake completes and a close (1008) follows, as derper does.
 */
static void
conn_start_ws(struct conn *c, struct http_req *req, bool derp)
{
	char	 accept[32];

	if (ws_accept_key(req->hr_ws_key, accept, sizeof(accept)) == -1) {
		conn_close(c, CLOSE_NO_MEMORY, "websocket accept key");
		return;
	}
	evbuffer_add_printf(io_output(c->c_io), "HTTP/1.1 101 Switching "
	    "Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n%s\r\n", accept,
	    derp ? "Sec-WebSocket-Protocol: derp\r\n" : "");
	if (io_start_ws(c->c_io) == -1) {
		conn_close(c, CLOSE_NO_MEMORY, "websocket");
		return;
	}
	if (!derp) {
		io_ws_close(c->c_io, 1008, "client must speak the derp "
		    "subprotocol");
		conn_close(c, CLOSE_WS_PROTOCOL, "websocket without the derp "
		    "subprotocol: %s", req->hr_ws_protocol);
		return;
	}
	STAT_INC(worker_stats(c->c_w), STAT_WEBSOCKET_ACCEPTS);
	/*
	 * The 101 is written, so conn_start_derp must not write its own: the
	 * fast-start form sends only ServerKey. Fast start and Ideal-Node do
	 * not apply on this path (PROTOCOL.md 1.5).
	 */
	util_strlcpy(req->hr_fast_start, "1", sizeof(req->hr_fast_start));
	req->hr_ideal_node[0] = '\0';
	conn_start_derp(c, req);
}

/*
 * Answer a parsed request as the route table says (http_route). req is
 * the caller's scratch copy: the WebSocket path rewrites it.
 */
static void
conn_route(struct conn *c, struct http_req *req)
{
	struct derpd_conf	*conf = c->c_env->d_conf;
	struct http_route_ctx	 ctx = {
		.rc_loopback = conn_is_loopback(c),
		.rc_tls = c->c_tls,
		.rc_port80 = c->c_port80,
		.rc_derp = conf->dc_derp,
		.rc_home = conf->dc_home,
	};
	struct http_resp	*resp;

	STAT_INC(worker_stats(c->c_w), STAT_HTTP_REQUESTS);
	log_debug("conn %llu %s: %s %s", (unsigned long long)c->c_id,
	    c->c_addr, req->hr_method, req->hr_path);
	if ((resp = malloc(sizeof(*resp))) == NULL) {
		conn_close(c, CLOSE_NO_MEMORY, "http response");
		return;
	}
	switch (http_route(req, &ctx, resp)) {
	case HTTP_UPGRADE_DERP:
		conn_start_derp(c, req);
		break;
	case HTTP_UPGRADE_WS:
		conn_start_ws(c, req, resp->hp_ws_derp);
		break;
	case HTTP_VARZ:
		conn_http_varz(c, resp->hp_head_only);
		break;
	case HTTP_RESPOND:
		if (resp->hp_note != NULL)
			conn_log(c, "%s: %s", resp->hp_note, req->hr_upgrade);
		conn_http_respond(c, resp->hp_code, resp->hp_extra,
		    resp->hp_ctype, resp->hp_body, resp->hp_head_only);
		break;
	}
	free(resp);
}

void
conn_read_http(struct conn *c)
{
	struct evbuffer		*in = io_input(c->c_io);
	size_t			 len = evbuffer_get_length(in), head_len;
	struct http_req		*req;
	const char		*p;
	enum http_status	 st;

	if (len > HTTP_MAX_HEAD)
		len = HTTP_MAX_HEAD;
	p = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
	st = http_head_end(p, len, &c->c_scan, &head_len);
	if (st == HTTP_NEED_MORE)
		return;
	if (st == HTTP_TOO_LARGE) {
		conn_log(c, "request head larger than %d bytes",
		    HTTP_MAX_HEAD);
		c->c_resp_reason = CLOSE_HEAD_TOO_LARGE;
		conn_http_respond(c, 431, NULL, "text/plain; charset=utf-8",
		    "request header fields too large\n", 0);
		return;
	}
	if ((req = malloc(sizeof(*req))) == NULL) {
		conn_close(c, CLOSE_NO_MEMORY, "http request");
		return;
	}
	if (http_parse_head(p, head_len, req) != HTTP_OK) {
		free(req);
		conn_log(c, "malformed request head");
		c->c_resp_reason = CLOSE_BAD_REQUEST;
		conn_http_respond(c, 400, NULL, "text/plain; charset=utf-8",
		    "bad request\n", 0);
		return;
	}
	evbuffer_drain(in, head_len);
	conn_route(c, req);
	free(req);
}
