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
#include "varz.h"

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

static const char home_html[] =
    "<html><head><title>DERP relay</title></head><body>\n"
    "<h1>DERP</h1>\n"
    "<p>This is a <a href=\"https://tailscale.com/\">Tailscale</a> DERP "
    "server, run by derpd.</p>\n"
    "<p>It provides STUN, interactive connectivity establishment, and "
    "relaying of end-to-end encrypted traffic for Tailscale clients.</p>\n"
    "<p>Documentation: <a href=\"https://tailscale.com/kb/1232/derp-servers"
    "\">DERP servers</a>, <a href=\"https://tailscale.com/kb/1118/"
    "custom-derp-servers\">running your own</a>.</p>\n"
    "%s</body></html>\n";

static int
conn_is_loopback(const struct conn *c)
{
	if (c->c_sa.ss_family == AF_INET) {
		const struct sockaddr_in *s4 =
		    (const struct sockaddr_in *)&c->c_sa;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (c->c_sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)&c->c_sa;
		/* Dual-stack listeners see IPv4 peers as ::ffff:a.b.c.d. */
		return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    s6->sin6_addr.s6_addr[12] == 127);
	}
	return 0;
}

static void
conn_route(struct conn *c, const struct http_req *req)
{
	struct derpd_conf	*conf = c->c_env->d_conf;
	int			 get_or_head = strcmp(req->hr_method, "GET") == 0 ||
				    strcmp(req->hr_method, "HEAD") == 0;
	int			 head = strcmp(req->hr_method, "HEAD") == 0;
	char			 extra[HTTP_PATH_MAX + 2 * HTTP_VALUE_MAX + 64];

	STAT_INC(worker_stats(c->c_w), STAT_HTTP_REQUESTS);
	log_debug("conn %llu %s: %s %s", (unsigned long long)c->c_id,
	    c->c_addr, req->hr_method, req->hr_path);
	if (strcmp(req->hr_path, "/generate_204") == 0) {
		int n = snprintf(extra, sizeof(extra), "Cache-Control: no-cache, "
		    "no-store, must-revalidate, no-transform, max-age=0\r\n");
		if (http_challenge_ok(req))
			snprintf(extra + n, sizeof(extra) - (size_t)n,
			    "X-Tailscale-Response: response %s\r\n",
			    req->hr_challenge);
		conn_http_respond(c, 204, extra, NULL, NULL, 1);
		return;
	}
	if (strncmp(req->hr_path, "/debug", 6) == 0 &&
	    (req->hr_path[6] == '\0' || req->hr_path[6] == '/')) {
		if (!conn_is_loopback(c) || req->hr_forwarded) {
			conn_http_respond(c, 403, NULL, "text/plain; "
			    "charset=utf-8", "debug access denied\n", head);
			return;
		}
		if (strcmp(req->hr_path, "/debug/varz") == 0) {
			struct evbuffer *out = io_output(c->c_io);
			struct evbuffer *b = evbuffer_new();
			if (b == NULL) {
				conn_close(c, CLOSE_NO_MEMORY, "varz");
				return;
			}
			varz_render(c->c_env, b);
			evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
			    "Content-Type: text/plain; version=0.0.4\r\n"
			    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			    evbuffer_get_length(b));
			if (!head)
				evbuffer_add_buffer(out, b);
			evbuffer_free(b);
			io_stop_read(c->c_io);
			conn_set_state(c, CONN_HTTP_RESPONSE);
			io_flush(c->c_io);
			return;
		}
		conn_http_respond(c, 404, NULL, "text/plain; charset=utf-8",
		    "404 page not found\n", head);
		return;
	}
	if (c->c_port80) {
		/* Plain port in TLS mode: never DERP, send to HTTPS. */
		if (!get_or_head) {
			conn_http_respond(c, 400, NULL, "text/plain; "
			    "charset=utf-8", "Use HTTPS\n", 0);
			return;
		}
		snprintf(extra, sizeof(extra), "Location: https://%s%s\r\n",
		    req->hr_host, req->hr_target);
		conn_http_respond(c, 302, extra, NULL, NULL, head);
		return;
	}
	if (c->c_tls && strcmp(req->hr_method, "CONNECT") == 0) {
		conn_http_respond(c, 403, NULL, "text/plain; charset=utf-8",
		    "CONNECT not enabled\n", 0);
		return;
	}
	if (strcmp(req->hr_path, "/derp") == 0) {
		char up[HTTP_VALUE_MAX];

		if (!conf->dc_derp) {
			conn_http_respond(c, 404, NULL, "text/plain; "
			    "charset=utf-8", "derp server disabled\n", head);
			return;
		}
		for (size_t i = 0; i < sizeof(up); i++) {
			up[i] = (char)tolower((unsigned char)req->hr_upgrade[i]);
			if (up[i] == '\0')
				break;
		}
		if (strcmp(up, "websocket") == 0 &&
		    strstr(req->hr_ws_protocol, "derp") != NULL) {
			conn_http_respond(c, 501, NULL, "text/plain; "
			    "charset=utf-8", "DERP over WebSocket is not "
			    "supported by this server\n", head);
			return;
		}
		if (strcmp(up, "derp") != 0 && strcmp(up, "websocket") != 0) {
			if (up[0] != '\0')
				conn_log(c, "weird upgrade: %s",
				    req->hr_upgrade);
			conn_http_respond(c, 426, NULL, "text/plain; "
			    "charset=utf-8", "DERP requires connection "
			    "upgrade\n", head);
			return;
		}
		conn_start_derp(c, req);
		return;
	}
	if (strcmp(req->hr_path, "/derp/probe") == 0 ||
	    strcmp(req->hr_path, "/derp/latency-check") == 0) {
		if (!get_or_head) {
			conn_http_respond(c, 405, NULL, "text/plain; "
			    "charset=utf-8", "bogus probe method\n", 0);
			return;
		}
		conn_http_respond(c, 200, "Access-Control-Allow-Origin: *\r\n",
		    NULL, NULL, head);
		return;
	}
	if (strcmp(req->hr_path, "/robots.txt") == 0) {
		conn_http_respond(c, 200, "Strict-Transport-Security: "
		    "max-age=63072000; includeSubDomains\r\n"
		    "Content-Security-Policy: default-src 'self'; "
		    "frame-ancestors 'none'; form-action 'self'; base-uri "
		    "'self'; block-all-mixed-content; object-src 'none'\r\n"
		    "X-Frame-Options: DENY\r\nX-Content-Type-Options: "
		    "nosniff\r\n", "text/plain; charset=utf-8",
		    "User-agent: *\nDisallow: /\n", head);
		return;
	}
	if (strcmp(req->hr_path, "/bootstrap-dns") == 0) {
		/* No names configured: an empty body, as derper sends. */
		conn_http_respond(c, 200, NULL, "application/json", NULL, head);
		return;
	}
	/* Everything else is the home page. */
	if (strncmp(conf->dc_home, "http", 4) == 0) {
		snprintf(extra, sizeof(extra), "Location: %.1000s\r\n",
		    conf->dc_home);
		conn_http_respond(c, 302, extra, NULL, NULL, head);
	} else if (strcmp(conf->dc_home, "blank") == 0) {
		conn_http_respond(c, 200, NULL, "text/html; charset=utf-8",
		    NULL, head);
	} else {
		char body[2048];
		snprintf(body, sizeof(body), home_html, conf->dc_derp ? "" :
		    "<p>Status: disabled</p>\n");
		conn_http_respond(c, 200, NULL, "text/html; charset=utf-8",
		    body, head);
	}
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
