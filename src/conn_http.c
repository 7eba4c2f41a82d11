/* SPDX-License-Identifier: ISC */
/* conn_http.c: the HTTP request head of a connection and its answer. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "bootdns.h"
#include "conn.h"
#include "conn_int.h"
#include "derpd.h"
#include "http.h"
#include "io.h"
#include "tls.h"
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

/* A response whose body (b, consumed) is built here, not in a buffer. */
static void
conn_http_body(struct conn *c, const struct http_resp *resp, int code,
    struct evbuffer *b)
{
	struct evbuffer	*out = io_output(c->c_io);
	char		 head[HTTP_EXTRA_MAX + 256];
	size_t		 n;

	n = http_build_response(head, sizeof(head), code, resp->hp_extra,
	    resp->hp_ctype, NULL, evbuffer_get_length(b), true);
	evbuffer_add(out, head, n);
	if (!resp->hp_head_only)
		evbuffer_add_buffer(out, b);
	evbuffer_free(b);
	io_stop_read(c->c_io);
	conn_set_state(c, CONN_HTTP_RESPONSE);
	io_flush(c->c_io);
}

/* /debug/vars: every counter as JSON, as derper's expvar page. */
static int
debug_vars(struct derpd *env, struct evbuffer *b)
{
	cJSON	*root = cJSON_CreateObject();
	char	*text;

	if (root == NULL)
		return -1;
	varz_vars(env, root);
	text = cJSON_Print(root);
	cJSON_Delete(root);
	if (text == NULL)
		return -1;
	evbuffer_add_printf(b, "%s\n", text);
	cJSON_free(text);
	return 0;
}

/* /debug/traffic: a line per registered connection, from its counters. */
static void
debug_traffic(struct derpd *env, struct evbuffer *b)
{
	struct conn_info	*rows;
	size_t			 n = conn_list(env, NULL, NULL, &rows);
	char			 k[KEY_TEXT_SIZE];

	for (size_t i = 0; i < n; i++) {
		util_key_format(rows[i].ci_key, NODEKEY_PREFIX, k);
		evbuffer_add_printf(b, "%s %s pkts_in=%llu bytes_in=%llu "
		    "pkts_out=%llu bytes_out=%llu drops=%llu%s\n", k,
		    rows[i].ci_addr, (unsigned long long)rows[i].ci_pkts_in,
		    (unsigned long long)rows[i].ci_bytes_in,
		    (unsigned long long)rows[i].ci_pkts_out,
		    (unsigned long long)rows[i].ci_bytes_out,
		    (unsigned long long)rows[i].ci_drops,
		    rows[i].ci_mesh ? " mesh" : "");
	}
	free(rows);
}

/* /bootstrap-dns: derper's answer for the "q" parameter, if any. */
static void
bootstrap_dns(struct derpd *env, const char *query, struct evbuffer *b)
{
	char	 q[HTTP_PATH_MAX];

	if (env->d_bootdns == NULL)
		return;
	bootdns_answer(env->d_bootdns, http_query_get(query, "q", q,
	    sizeof(q)) == 1 ? q : NULL, b);
}

/* A page built here (the route said which and set its headers). */
static void
conn_http_debug(struct conn *c, enum http_action act,
    const struct http_resp *resp, const char *query)
{
	struct evbuffer	*b;
	char		 msg[256];
	int		 code = 200;

	if ((b = evbuffer_new()) == NULL) {
		conn_close(c, CLOSE_NO_MEMORY, "debug page");
		return;
	}
	switch (act) {
	case HTTP_VARZ:
		varz_render(c->c_env, b);
		break;
	case HTTP_DEBUG_VARS:
		if (debug_vars(c->c_env, b) == -1) {
			evbuffer_free(b);
			conn_close(c, CLOSE_NO_MEMORY, "/debug/vars");
			return;
		}
		break;
	case HTTP_DEBUG_CHECK:
		/* derper's words, which monitors may look for. */
		if (varz_check(c->c_env, msg, sizeof(msg)) == 0)
			evbuffer_add_printf(b, "derp.Server ConsistencyCheck "
			    "okay");
		else {
			code = 500;
			evbuffer_add_printf(b, "%s\n", msg);
		}
		break;
	case HTTP_DEBUG_TRAFFIC:
		debug_traffic(c->c_env, b);
		break;
	case HTTP_BOOTSTRAP_DNS:
		bootstrap_dns(c->c_env, query, b);
		break;
	default:
		break;
	}
	conn_http_body(c, resp, code, b);
}

/* The client address against derper's debug access rule. */
static bool
conn_debug_addr(const struct conn *c)
{
	return util_addr_debug_allowed((const struct sockaddr *)&c->c_sa,
	    c->c_env->d_allow_debug_ip, c->c_env->d_debug_cidrs);
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
 * derper's derper_tls_request_version and derper_tls_active_version: a
 * request over TLS by version, and the connection it came on while it is
 * open (until conn_close). tls.c accepts TLS 1.2 and 1.3 only.
 */
static void
conn_count_tls(struct conn *c)
{
	int		 v;
	enum stat_id	 req, act;

	if (!c->c_tls)
		return;
	v = io_tls_version(c->c_io);
	if (v != TLS1_2_VERSION && v != TLS1_3_VERSION)
		return;
	req = v == TLS1_3_VERSION ? STAT_TLS13_REQUESTS : STAT_TLS12_REQUESTS;
	act = v == TLS1_3_VERSION ? STAT_TLS13_ACTIVE : STAT_TLS12_ACTIVE;
	STAT_INC(worker_stats(c->c_w), req);
	if (c->c_tls_active == -1) {
		STAT_INC(worker_stats(c->c_w), act);
		c->c_tls_active = (int)act;
	}
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
		.rc_debug_addr = conn_debug_addr(c),
		.rc_tls = c->c_tls,
		.rc_port80 = c->c_port80,
		.rc_derp = conf->dc_derp,
		.rc_home = conf->dc_home,
		.rc_hostname = conf->dc_hostname,
		.rc_version = DERPD_VERSION,
		.rc_mesh_key = c->c_env->d_has_mesh,
	};
	struct http_resp	*resp;
	enum http_action	 act;
	char			 ip[INET6_ADDRSTRLEN], up[64], host[256];

	if (strncmp(req->hr_path, "/debug/", 7) == 0) {
		util_duration_format((int64_t)time(NULL) -
		    c->c_env->d_start_time, up, sizeof(up));
		ctx.rc_uptime = up;
		if (gethostname(host, sizeof(host)) == 0) {
			host[sizeof(host) - 1] = '\0';
			ctx.rc_machine = host;
		}
	}
	if (conf->dc_dev) {
		util_addr_ip((const struct sockaddr *)&c->c_sa, ip, sizeof(ip));
		ctx.rc_dev_client_ip = ip;
	}
	STAT_INC(worker_stats(c->c_w), STAT_HTTP_REQUESTS);
	conn_count_tls(c);
	log_debug("conn %llu %s: %s %s", (unsigned long long)c->c_id,
	    CONN_ADDR(c), req->hr_method, req->hr_path);
	if ((resp = malloc(sizeof(*resp))) == NULL) {
		conn_close(c, CLOSE_NO_MEMORY, "http response");
		return;
	}
	switch ((act = http_route(req, &ctx, resp))) {
	case HTTP_UPGRADE_DERP:
		conn_start_derp(c, req);
		break;
	case HTTP_UPGRADE_WS:
		conn_start_ws(c, req, resp->hp_ws_derp);
		break;
	case HTTP_VARZ:
	case HTTP_DEBUG_VARS:
	case HTTP_DEBUG_CHECK:
	case HTTP_DEBUG_TRAFFIC:
	case HTTP_BOOTSTRAP_DNS:
		conn_http_debug(c, act, resp, req->hr_query);
		break;
	case HTTP_ACME_CHALLENGE: {
		char ans[TLS_ANSWER_MAX];
		const char *tok = req->hr_path + sizeof(HTTP_ACME_PREFIX);
		if (c->c_env->d_tls != NULL &&
		    tls_http_challenge(c->c_env->d_tls, tok, ans, sizeof(ans))) {
			conn_log(c, "acme: answered the HTTP-01 challenge");
			conn_http_respond(c, 200, NULL, "text/plain", ans,
			    resp->hp_head_only);
		} else
			conn_http_respond(c, 404, NULL,
			    "text/plain; charset=utf-8", "Not Found\n",
			    resp->hp_head_only);
		break;
	}
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
