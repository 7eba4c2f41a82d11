/* SPDX-License-Identifier: ISC */
/* http.c: incremental request-head framing and parsing over bytes. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "util.h"

enum http_status
http_head_end(const char *buf, size_t len, size_t *scan, size_t *head_len)
{
	size_t	 i = *scan > 3 ? *scan - 3 : 0;
	size_t	 lim = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;

	for (; i + 3 < lim; i++) {
		if (buf[i] == '\r' && buf[i + 1] == '\n' &&
		    buf[i + 2] == '\r' && buf[i + 3] == '\n') {
			*head_len = i + 4;
			return HTTP_OK;
		}
	}
	*scan = lim;
	if (len >= HTTP_MAX_HEAD)
		return HTTP_TOO_LARGE;
	return HTTP_NEED_MORE;
}

static int
is_tchar(char c)
{
	return c != '\0' && (isalnum((unsigned char)c) ||
	    strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Copy a header value, trimmed; it is silently cut at dstlen-1. */
static void
copy_value(char *dst, size_t dstlen, const char *v, size_t vlen)
{
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	if (vlen >= dstlen)
		vlen = dstlen - 1;
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
}

/* Does the comma-separated list v (vlen bytes) hold token, any case? */
static bool
has_token(const char *v, size_t vlen, const char *token, bool icase)
{
	size_t	 tlen = strlen(token), i = 0, b, e;

	while (i < vlen) {
		b = i;
		while (i < vlen && v[i] != ',')
			i++;
		e = i++;
		while (b < e && (v[b] == ' ' || v[b] == '\t'))
			b++;
		while (e > b && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - b == tlen && (icase ? strncasecmp(v + b, token,
		    tlen) : strncmp(v + b, token, tlen)) == 0)
			return true;
	}
	return false;
}

static enum http_status
parse_request_line(const char *p, size_t n, struct http_req *req)
{
	const char	*sp1, *sp2, *q;
	size_t		 mlen, tlen;

	sp1 = memchr(p, ' ', n);
	if (sp1 == NULL)
		return HTTP_BAD;
	mlen = (size_t)(sp1 - p);
	if (mlen == 0 || mlen >= sizeof(req->hr_method))
		return HTTP_BAD;
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar(p[i]))
			return HTTP_BAD;
	memcpy(req->hr_method, p, mlen);
	req->hr_method[mlen] = '\0';
	sp2 = memchr(sp1 + 1, ' ', n - mlen - 1);
	if (sp2 == NULL)
		return HTTP_BAD;
	tlen = (size_t)(sp2 - sp1 - 1);
	if (tlen == 0 || tlen >= sizeof(req->hr_target))
		return HTTP_BAD;
	memcpy(req->hr_target, sp1 + 1, tlen);
	req->hr_target[tlen] = '\0';
	for (size_t i = 0; i < tlen; i++)
		if ((unsigned char)req->hr_target[i] <= ' ' ||
		    req->hr_target[i] == 0x7f)
			return HTTP_BAD;
	if ((size_t)(p + n - (sp2 + 1)) != 8 ||
	    memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
	    (sp2[8] != '0' && sp2[8] != '1'))
		return HTTP_BAD;
	req->hr_minor = sp2[8] - '0';
	q = strchr(req->hr_target, '?');
	if (q != NULL) {
		util_strlcpy(req->hr_query, q + 1, sizeof(req->hr_query));
		memcpy(req->hr_path, req->hr_target,
		    (size_t)(q - req->hr_target));
		req->hr_path[q - req->hr_target] = '\0';
	} else {
		req->hr_query[0] = '\0';
		util_strlcpy(req->hr_path, req->hr_target,
		    sizeof(req->hr_path));
	}
	return HTTP_OK;
}

enum http_status
http_parse_head(const char *buf, size_t head_len, struct http_req *req)
{
	const char	*p = buf, *end = buf + head_len, *eol, *colon;
	size_t		 nlen, vlen;
	int		 first = 1;
	/* Only the first occurrence counts, even when its value is empty. */
	int		 seen_host = 0, seen_up = 0, seen_fs = 0, seen_in = 0;
	int		 seen_ch = 0, seen_ws = 0, seen_wv = 0;

	memset(req, 0, sizeof(*req));
	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL || eol == p || eol[-1] != '\r')
			return HTTP_BAD;
		if (eol - 1 == p)	/* the empty line */
			break;
		if (first) {
			if (parse_request_line(p, (size_t)(eol - 1 - p), req) !=
			    HTTP_OK)
				return HTTP_BAD;
			first = 0;
			p = eol + 1;
			continue;
		}
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon == NULL || colon == p)
			return HTTP_BAD;
		nlen = (size_t)(colon - p);
		for (size_t i = 0; i < nlen; i++)
			if (!is_tchar(p[i]))
				return HTTP_BAD;
		vlen = (size_t)(eol - 1 - colon - 1);
		for (size_t i = 0; i < vlen; i++) {
			unsigned char c = (unsigned char)colon[1 + i];
			if ((c < ' ' && c != '\t') || c == 0x7f)
				return HTTP_BAD;
		}
#define HDR(name) (nlen == sizeof(name) - 1 && \
	    strncasecmp(p, name, nlen) == 0)
		/* Only the first value of a repeated header counts. */
		if (HDR("Host") && !seen_host++)
			copy_value(req->hr_host, sizeof(req->hr_host),
			    colon + 1, vlen);
		else if (HDR("Upgrade") && !seen_up++)
			copy_value(req->hr_upgrade, sizeof(req->hr_upgrade),
			    colon + 1, vlen);
		else if (HDR("Derp-Fast-Start") && !seen_fs++)
			copy_value(req->hr_fast_start,
			    sizeof(req->hr_fast_start), colon + 1, vlen);
		else if (HDR("Ideal-Node") && !seen_in++)
			copy_value(req->hr_ideal_node,
			    sizeof(req->hr_ideal_node), colon + 1, vlen);
		else if (HDR("X-Tailscale-Challenge") && !seen_ch++) {
			copy_value(req->hr_challenge,
			    sizeof(req->hr_challenge), colon + 1, vlen);
			if (strlen(req->hr_challenge) >= HTTP_VALUE_MAX)
				req->hr_challenge_long = true;
		} else if (HDR("Sec-WebSocket-Protocol") && !seen_ws++)
			copy_value(req->hr_ws_protocol,
			    sizeof(req->hr_ws_protocol), colon + 1, vlen);
		else if (HDR("Sec-WebSocket-Key") && !req->hr_ws_nkeys++)
			copy_value(req->hr_ws_key, sizeof(req->hr_ws_key),
			    colon + 1, vlen);
		else if (HDR("Sec-WebSocket-Version") && !seen_wv++)
			copy_value(req->hr_ws_version,
			    sizeof(req->hr_ws_version), colon + 1, vlen);
		else if (HDR("Connection")) {
			if (has_token(colon + 1, vlen, "upgrade", true))
				req->hr_conn_upgrade = true;
		} else if (HDR("X-Forwarded-For"))
			req->hr_forwarded = true;
#undef HDR
		p = eol + 1;
	}
	if (first)
		return HTTP_BAD;
	return HTTP_OK;
}

int
http_parse_status(const char *buf, size_t len)
{
	int code = 0;

	if (len < 12 || (memcmp(buf, "HTTP/1.1 ", 9) != 0 &&
	    memcmp(buf, "HTTP/1.0 ", 9) != 0))
		return -1;
	for (size_t i = 9; i < 12; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
		code = code * 10 + (buf[i] - '0');
	}
	if (len > 12 && buf[12] != ' ' && buf[12] != '\r')
		return -1;
	return code < 100 ? -1 : code;
}

bool
http_challenge_ok(const struct http_req *req)
{
	size_t	 n = strlen(req->hr_challenge);

	if (n == 0 || n > 64 || req->hr_challenge_long)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = req->hr_challenge[i];
		if (!isalnum((unsigned char)c) && c != '.' && c != '_' &&
		    c != ':' && c != '-')
			return false;
	}
	return true;
}

const char *
http_reason(int code)
{
	switch (code) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 204: return "No Content";
	case 307: return "Temporary Redirect";
	case 302: return "Found";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	default: return "Unknown";
	}
}

size_t
http_build_response(char *out, size_t outlen, int code, const char *extra,
    const char *ctype, const char *body, size_t bodylen, bool head_only)
{
	int	 n;

	n = snprintf(out, outlen,
	    "HTTP/1.1 %d %s\r\n%s%s%s%sContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n",
	    code, http_reason(code), extra ? extra : "",
	    ctype ? "Content-Type: " : "", ctype ? ctype : "",
	    ctype ? "\r\n" : "", bodylen);
	if (n < 0 || (size_t)n >= outlen)
		return 0;
	if (head_only || bodylen == 0)
		return (size_t)n;
	if ((size_t)n + bodylen > outlen)
		return 0;
	memcpy(out + n, body, bodylen);
	return (size_t)n + bodylen;
}

/* Routing. Each handler fills resp and says what to do. */

#define TEXT_PLAIN	"text/plain; charset=utf-8"

static enum http_action
respond(struct http_resp *resp, int code, const char *ctype,
    const char *body)
{
	resp->hp_code = code;
	resp->hp_ctype = ctype;
	snprintf(resp->hp_body, sizeof(resp->hp_body), "%s",
	    body != NULL ? body : "");
	return HTTP_RESPOND;
}

static bool
is_get_or_head(const struct http_req *req)
{
	return strcmp(req->hr_method, "GET") == 0 ||
	    strcmp(req->hr_method, "HEAD") == 0;
}

static enum http_action
route_generate_204(const struct http_req *req,
    const struct http_route_ctx *ctx, struct http_resp *resp)
{
	int n;

	(void)ctx;
	n = snprintf(resp->hp_extra, sizeof(resp->hp_extra), "Cache-Control: "
	    "no-cache, no-store, must-revalidate, no-transform, max-age=0\r\n");
	if (http_challenge_ok(req))
		snprintf(resp->hp_extra + n, sizeof(resp->hp_extra) - (size_t)n,
		    "X-Tailscale-Response: response %s\r\n",
		    req->hr_challenge);
	resp->hp_head_only = true;	/* 204 has no body */
	return respond(resp, 204, NULL, NULL);
}

/* derper's browser headers (tsweb), on its home page and robots.txt. */
#define HDR_HSTS	"Strict-Transport-Security: max-age=63072000; " \
	"includeSubDomains\r\n"
#define HDR_CSP		"Content-Security-Policy: default-src 'self'; " \
	"frame-ancestors 'none'; form-action 'self'; base-uri 'self'; " \
	"block-all-mixed-content; object-src 'none'"
#define HDR_REST	"X-Frame-Options: DENY\r\nX-Content-Type-Options: " \
	"nosniff\r\n"
#define BROWSER_HEADERS	HDR_HSTS HDR_CSP "\r\n" HDR_REST
/* The debug pages' variant: inline styles allowed. */
#define DEBUG_HEADERS	HDR_HSTS HDR_CSP "; style-src 'self' " \
	"'unsafe-inline'\r\n" HDR_REST
/* What Go's http.Error adds to a plain-text error. */
#define ERROR_HEADERS	"X-Content-Type-Options: nosniff\r\n"

bool
http_debug_allowed(const struct http_req *req,
    const struct http_route_ctx *ctx)
{
	return ctx->rc_debug_addr && !req->hr_forwarded;
}

/* Append s to out (at *n), HTML-escaped, cut to fit. */
static void
html_append(char *out, size_t outlen, size_t *n, const char *s)
{
	for (; *s != '\0'; s++) {
		const char *e = *s == '<' ? "&lt;" : *s == '>' ? "&gt;" :
		    *s == '&' ? "&amp;" : *s == '"' ? "&#34;" :
		    *s == '\'' ? "&#39;" : NULL;
		char one[2] = { *s, '\0' };
		int k = snprintf(out + *n, outlen - *n, "%s", e ? e : one);

		if (k < 0 || (size_t)k >= outlen - *n)
			return;
		*n += (size_t)k;
	}
}

/* The debug pages and what /debug/ says of them. */
static const struct {
	const char		*dp_path;
	const char		*dp_desc;
	enum http_action	 dp_act;
	const char		*dp_ctype;
} debug_pages[] = {
	{ "/debug/vars", "Metrics (JSON)", HTTP_DEBUG_VARS,
	    "application/json; charset=utf-8" },
	{ "/debug/varz", "Metrics (Prometheus)", HTTP_VARZ,
	    "text/plain; version=0.0.4" },
	{ "/debug/check", "Consistency check", HTTP_DEBUG_CHECK,
	    "text/plain; charset=utf-8" },
	{ "/debug/traffic", "Traffic per client", HTTP_DEBUG_TRAFFIC,
	    "text/plain; charset=utf-8" },
};

static enum http_action
debug_index(const struct http_route_ctx *ctx, struct http_resp *resp)
{
	char	*b = resp->hp_body;
	size_t	 cap = sizeof(resp->hp_body), n = 0;

	snprintf(resp->hp_extra, sizeof(resp->hp_extra), BROWSER_HEADERS);
	resp->hp_code = 200;
	resp->hp_ctype = "text/html; charset=utf-8";
	n += (size_t)snprintf(b, cap, "<html><body><h1>derpd debug</h1><ul>"
	    "<li><b>Uptime:</b> ");
	html_append(b, cap, &n, ctx->rc_uptime ? ctx->rc_uptime : "");
	n += (size_t)snprintf(b + n, cap - n, "</li><li><b>Version:</b> ");
	html_append(b, cap, &n, ctx->rc_version ? ctx->rc_version : "");
	n += (size_t)snprintf(b + n, cap - n, "</li><li><b>Machine:</b> ");
	html_append(b, cap, &n, ctx->rc_machine ? ctx->rc_machine : "");
	n += (size_t)snprintf(b + n, cap - n, "</li><li><b>TLS hostname:</b> ");
	html_append(b, cap, &n, ctx->rc_hostname ? ctx->rc_hostname : "");
	n += (size_t)snprintf(b + n, cap - n, "</li><li><b>Mesh key:</b> %s"
	    "</li>\n", ctx->rc_mesh_key ? "true" : "false");
	for (size_t i = 0; i < sizeof(debug_pages) / sizeof(debug_pages[0]) &&
	    n < cap; i++)
		n += (size_t)snprintf(b + n, cap - n, "<li><a href=\"%s\">%s"
		    "</a> %s</li>\n", debug_pages[i].dp_path,
		    debug_pages[i].dp_path + 7, debug_pages[i].dp_desc);
	if (n < cap)
		snprintf(b + n, cap - n, "</ul></body></html>\n");
	return HTTP_RESPOND;
}

static enum http_action
route_debug(const struct http_req *req, const struct http_route_ctx *ctx,
    struct http_resp *resp)
{
	/* As Go's ServeMux does for a subtree: to the slash, unchecked. */
	if (strcmp(req->hr_path, "/debug") == 0) {
		snprintf(resp->hp_extra, sizeof(resp->hp_extra),
		    "Location: /debug/%s%s\r\n", req->hr_query[0] ? "?" : "",
		    req->hr_query);
		return respond(resp, 307, "text/html; charset=utf-8",
		    "<a href=\"/debug/\">Temporary Redirect</a>.\n\n");
	}
	if (!http_debug_allowed(req, ctx)) {
		snprintf(resp->hp_extra, sizeof(resp->hp_extra), ERROR_HEADERS);
		respond(resp, 403, TEXT_PLAIN, "debug access denied\n");
		/* derper's -dev hint, on the pages (not the index). */
		for (size_t i = 0; ctx->rc_dev_client_ip != NULL &&
		    i < sizeof(debug_pages) / sizeof(debug_pages[0]); i++)
			if (strcmp(req->hr_path, debug_pages[i].dp_path) == 0)
				snprintf(resp->hp_body, sizeof(resp->hp_body),
				    "debug access denied; to permit access, set "
				    "TS_ALLOW_DEBUG_IP=%.64s\n",
				    ctx->rc_dev_client_ip);
		return HTTP_RESPOND;
	}
	if (strcmp(req->hr_path, "/debug/") == 0)
		return debug_index(ctx, resp);
	for (size_t i = 0; i < sizeof(debug_pages) / sizeof(debug_pages[0]);
	    i++) {
		if (strcmp(req->hr_path, debug_pages[i].dp_path) != 0)
			continue;
		snprintf(resp->hp_extra, sizeof(resp->hp_extra), DEBUG_HEADERS);
		resp->hp_code = 200;
		resp->hp_ctype = debug_pages[i].dp_ctype;
		return debug_pages[i].dp_act;
	}
	snprintf(resp->hp_extra, sizeof(resp->hp_extra), ERROR_HEADERS);
	return respond(resp, 404, TEXT_PLAIN, "404 page not found\n");
}

/* A Sec-WebSocket-Key must be 16 bytes in base64: 22 chars and "==". */
static bool
ws_key_ok(const char *k)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789+/";

	if (strlen(k) != 24 || strcmp(k + 22, "==") != 0)
		return false;
	for (size_t i = 0; i < 22; i++)
		if (strchr(b64, k[i]) == NULL)
			return false;
	return true;
}

/*
 * DERP over WebSocket: the RFC 6455 handshake checks, in the order
 * derper's library makes them, each with its status. hp_ws_derp when a
 * token of the subprotocol list is "derp"; without it the handshake still
 * succeeds and the caller closes with 1008, as derper does. Any Origin.
 */
static enum http_action
route_websocket(const struct http_req *req, struct http_resp *resp)
{
	if (req->hr_minor < 1)
		return respond(resp, 426, TEXT_PLAIN, "WebSocket protocol "
		    "violation: handshake request must be at least HTTP/1.1\n");
	if (!req->hr_conn_upgrade)
		return respond(resp, 426, TEXT_PLAIN, "WebSocket protocol "
		    "violation: Connection header does not contain Upgrade\n");
	if (strcmp(req->hr_method, "GET") != 0) {
		resp->hp_head_only = false;
		return respond(resp, 405, TEXT_PLAIN, "WebSocket protocol "
		    "violation: handshake request method is not GET\n");
	}
	if (strcmp(req->hr_ws_version, "13") != 0) {
		snprintf(resp->hp_extra, sizeof(resp->hp_extra),
		    "Sec-WebSocket-Version: 13\r\n");
		return respond(resp, 400, TEXT_PLAIN, "unsupported WebSocket "
		    "protocol version (only 13 is supported)\n");
	}
	if (req->hr_ws_nkeys != 1 || !ws_key_ok(req->hr_ws_key))
		return respond(resp, 400, TEXT_PLAIN, "WebSocket protocol "
		    "violation: invalid or missing Sec-WebSocket-Key\n");
	/* derper insists on "derp" exactly ("DERP" is echoed, then closed). */
	resp->hp_ws_derp = has_token(req->hr_ws_protocol,
	    strlen(req->hr_ws_protocol), "derp", false);
	return HTTP_UPGRADE_WS;
}

static enum http_action
route_derp(const struct http_req *req, const struct http_route_ctx *ctx,
    struct http_resp *resp)
{
	if (!ctx->rc_derp)
		return respond(resp, 404, TEXT_PLAIN, "derp server disabled\n");
	if (strcasecmp(req->hr_upgrade, "websocket") == 0 &&
	    strstr(req->hr_ws_protocol, "derp") != NULL)
		return route_websocket(req, resp);
	if (strcasecmp(req->hr_upgrade, "derp") == 0 ||
	    strcasecmp(req->hr_upgrade, "websocket") == 0)
		return HTTP_UPGRADE_DERP;
	if (req->hr_upgrade[0] != '\0')
		resp->hp_note = "weird upgrade";
	return respond(resp, 426, TEXT_PLAIN, "DERP requires connection "
	    "upgrade\n");
}

static enum http_action
route_probe(const struct http_req *req, const struct http_route_ctx *ctx,
    struct http_resp *resp)
{
	(void)ctx;
	if (!is_get_or_head(req)) {
		resp->hp_head_only = false;
		return respond(resp, 405, TEXT_PLAIN, "bogus probe method\n");
	}
	snprintf(resp->hp_extra, sizeof(resp->hp_extra),
	    "Access-Control-Allow-Origin: *\r\n");
	return respond(resp, 200, NULL, NULL);
}

static enum http_action
route_robots(const struct http_req *req, const struct http_route_ctx *ctx,
    struct http_resp *resp)
{
	(void)req;
	(void)ctx;
	snprintf(resp->hp_extra, sizeof(resp->hp_extra), BROWSER_HEADERS);
	return respond(resp, 200, TEXT_PLAIN, "User-agent: *\nDisallow: /\n");
}

/* HTTP-01: the caller looks the token (the path's last part) up. */
static enum http_action
route_acme(const struct http_req *req, const struct http_route_ctx *ctx,
    struct http_resp *resp)
{
	(void)req;
	(void)ctx;
	(void)resp;
	return HTTP_ACME_CHALLENGE;
}

/* derper wraps it in its browser headers; the body is the caller's. */
static enum http_action
route_bootstrap_dns(const struct http_req *req,
    const struct http_route_ctx *ctx, struct http_resp *resp)
{
	(void)req;
	(void)ctx;
	snprintf(resp->hp_extra, sizeof(resp->hp_extra), BROWSER_HEADERS);
	resp->hp_code = 200;
	resp->hp_ctype = "application/json";
	return HTTP_BOOTSTRAP_DNS;
}

/* Decode s[0..n) into out (query rules). 0, -1 bad escape, -2 too long. */
static int
query_unescape(const char *s, size_t n, char *out, size_t outlen)
{
	size_t	 o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;
			if (i + 2 >= n || (hi = util_hex_digit(s[i + 1])) < 0 ||
			    (lo = util_hex_digit(s[i + 2])) < 0)
				return -1;
			c = hi << 4 | lo;
			i += 2;
		} else if (c == '+')
			c = ' ';
		if (o + 1 >= outlen)
			return -2;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

int
http_query_get(const char *query, const char *name, char *out,
    size_t outlen)
{
	const char	*p = query;
	char		 key[HTTP_PATH_MAX];

	if (outlen == 0)
		return -1;
	while (*p != '\0') {
		const char	*end = strchr(p, '&'), *eq;
		size_t		 n = end ? (size_t)(end - p) : strlen(p);

		eq = memchr(p, '=', n);
		if (memchr(p, ';', n) == NULL && query_unescape(p, eq ?
		    (size_t)(eq - p) : n, key, sizeof(key)) == 0 &&
		    strcmp(key, name) == 0) {
			int rv = eq ? query_unescape(eq + 1, n - (size_t)(eq +
			    1 - p), out, outlen) : (out[0] = '\0', 0);
			if (rv == 0)
				return 1;
			if (rv == -2)
				return -1;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return 0;
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
    "%s%s</body></html>\n";

/* Every answer of the home route carries derper's browser headers. */
static enum http_action
route_home(const struct http_req *req, const struct http_route_ctx *ctx,
    struct http_resp *resp)
{
	int	 n;

	n = snprintf(resp->hp_extra, sizeof(resp->hp_extra), BROWSER_HEADERS);
	if (strncmp(ctx->rc_home, "http", 4) == 0) {
		snprintf(resp->hp_extra + n, sizeof(resp->hp_extra) - (size_t)n,
		    "Location: %.1000s\r\n", ctx->rc_home);
		return respond(resp, 302, NULL, NULL);
	}
	if (strcmp(ctx->rc_home, "blank") == 0)
		return respond(resp, 200, "text/html; charset=utf-8", NULL);
	resp->hp_code = 200;
	resp->hp_ctype = "text/html; charset=utf-8";
	snprintf(resp->hp_body, sizeof(resp->hp_body), home_html,
	    ctx->rc_derp ? "" : "<p>Status: disabled</p>\n",
	    http_debug_allowed(req, ctx) ? "<p>Debug info at <a href='/debug/'>"
	    "/debug/</a>.</p>\n" : "");
	return HTTP_RESPOND;
}

typedef enum http_action (*http_route_fn)(const struct http_req *,
    const struct http_route_ctx *, struct http_resp *);

struct http_route {
	const char	*rt_path;
	bool		 rt_subtree;	/* also rt_path + "/..." */
	bool		 rt_any_port;	/* also on the HTTP port in TLS mode */
	http_route_fn	 rt_fn;
};

/* First match wins; anything else is the home page. */
static const struct http_route routes[] = {
	{ .rt_path = "/generate_204", .rt_any_port = true,
	    .rt_fn = route_generate_204 },
	{ .rt_path = "/debug", .rt_subtree = true, .rt_any_port = true,
	    .rt_fn = route_debug },
	{ .rt_path = HTTP_ACME_PREFIX, .rt_subtree = true,
	    .rt_any_port = true, .rt_fn = route_acme },
	{ .rt_path = "/derp", .rt_fn = route_derp },
	{ .rt_path = "/derp/probe", .rt_fn = route_probe },
	{ .rt_path = "/derp/latency-check", .rt_fn = route_probe },
	{ .rt_path = "/robots.txt", .rt_fn = route_robots },
	{ .rt_path = "/bootstrap-dns", .rt_fn = route_bootstrap_dns },
};

static bool
route_matches(const struct http_route *rt, const char *path)
{
	size_t n = strlen(rt->rt_path);

	if (strncmp(path, rt->rt_path, n) != 0)
		return false;
	return path[n] == '\0' || (rt->rt_subtree && path[n] == '/');
}

enum http_action
http_route(const struct http_req *req, const struct http_route_ctx *ctx,
    struct http_resp *resp)
{
	size_t i;

	memset(resp, 0, sizeof(*resp));
	resp->hp_head_only = strcmp(req->hr_method, "HEAD") == 0;
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (routes[i].rt_any_port && route_matches(&routes[i],
		    req->hr_path))
			return routes[i].rt_fn(req, ctx, resp);
	if (ctx->rc_port80) {
		/* The HTTP port in TLS mode: never DERP, send to HTTPS. */
		if (!is_get_or_head(req)) {
			resp->hp_head_only = false;
			return respond(resp, 400, TEXT_PLAIN, "Use HTTPS\n");
		}
		snprintf(resp->hp_extra, sizeof(resp->hp_extra),
		    "Location: https://%s%s\r\n", req->hr_host, req->hr_target);
		return respond(resp, 302, NULL, NULL);
	}
	if (ctx->rc_tls && strcmp(req->hr_method, "CONNECT") == 0) {
		resp->hp_head_only = false;
		return respond(resp, 403, TEXT_PLAIN, "CONNECT not enabled\n");
	}
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!routes[i].rt_any_port && route_matches(&routes[i],
		    req->hr_path))
			return routes[i].rt_fn(req, ctx, resp);
	return route_home(req, ctx, resp);
}
