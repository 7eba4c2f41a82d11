/* SPDX-License-Identifier: ISC */
/* http.h: pure HTTP/1.x request-head parser and response builders. */
#ifndef DERPD_HTTP_H
#define DERPD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HTTP_MAX_HEAD		16384
#define HTTP_METHOD_MAX		16
#define HTTP_PATH_MAX		1024
#define HTTP_VALUE_MAX		256

enum http_status {
	HTTP_OK,		/* a complete head was parsed */
	HTTP_NEED_MORE,		/* no terminator yet, keep reading */
	HTTP_TOO_LARGE,		/* no terminator within HTTP_MAX_HEAD */
	HTTP_BAD,		/* malformed request line or header */
};

/* The request head, with only the headers derpd acts on. */
struct http_req {
	char	 hr_method[HTTP_METHOD_MAX];
	char	 hr_path[HTTP_PATH_MAX];	/* without the query */
	char	 hr_query[HTTP_PATH_MAX];	/* after '?', may be "" */
	char	 hr_target[HTTP_PATH_MAX];	/* full request-target */
	int	 hr_minor;			/* HTTP/1.x */
	char	 hr_host[HTTP_VALUE_MAX];
	char	 hr_upgrade[HTTP_VALUE_MAX];	/* first value */
	char	 hr_fast_start[HTTP_VALUE_MAX];	/* first value */
	char	 hr_ideal_node[HTTP_VALUE_MAX];
	char	 hr_challenge[HTTP_VALUE_MAX + 1];
	char	 hr_ws_protocol[HTTP_VALUE_MAX];
	char	 hr_ws_key[HTTP_VALUE_MAX];	/* Sec-WebSocket-Key, first */
	char	 hr_ws_version[HTTP_VALUE_MAX];	/* Sec-WebSocket-Version */
	int	 hr_ws_nkeys;			/* Sec-WebSocket-Key headers */
	bool	 hr_conn_upgrade;		/* Connection has "upgrade" */
	bool	 hr_challenge_long;		/* longer than kept */
	bool	 hr_forwarded;			/* X-Forwarded-For seen */
};

/*
 * Find the end of a request head in buf[0..len). *scan keeps the offset
 * already searched so a slowly arriving head costs O(n) in total; start
 * it at 0. Returns HTTP_OK with *head_len (terminator included),
 * HTTP_NEED_MORE, or HTTP_TOO_LARGE.
 */
enum http_status http_head_end(const char *buf, size_t len, size_t *scan,
	    size_t *head_len);
/* Parse a complete head (as found by http_head_end) into req. */
enum http_status http_parse_head(const char *buf, size_t head_len,
	    struct http_req *req);
/* True when the challenge may be echoed (PROTOCOL.md 8). */
bool	http_challenge_ok(const struct http_req *req);
/*
 * The status code of a response head (buf, len bytes, not terminated)
 * that starts "HTTP/1.0 " or "HTTP/1.1 " and three digits followed by a
 * space or the end of the line; -1 otherwise. For the answers a mesh
 * link reads.
 */
int	http_parse_status(const char *buf, size_t len);

/*
 * Build a complete response with Content-Length and Connection: close.
 * extra is zero or more "Name: value\r\n" lines. Returns the length, or
 * 0 if out is too small.
 */
size_t	http_build_response(char *out, size_t outlen, int code,
	    const char *extra, const char *ctype, const char *body,
	    size_t bodylen, bool head_only);
/* Reason phrase for a status code. */
const char *http_reason(int code);

/* What routing needs to know besides the request. */
struct http_route_ctx {
	bool		 rc_debug_addr;	/* util_addr_debug_allowed(client) */
	bool		 rc_tls;	/* on the TLS listener */
	bool		 rc_port80;	/* the HTTP port in TLS mode */
	bool		 rc_derp;	/* the DERP server is enabled */
	const char	*rc_home;	/* -home: "", "blank" or a URL */
	const char	*rc_hostname;	/* -hostname, for /debug/ (or NULL) */
	const char	*rc_version;	/* for /debug/ (or NULL) */
	const char	*rc_uptime;	/* for /debug/, e.g. "1h2m3s" (or NULL) */
	const char	*rc_machine;	/* for /debug/: the host name (or NULL) */
	bool		 rc_mesh_key;	/* a mesh key is configured */
	/* -dev: the client's address, which a refusal names; else NULL. */
	const char	*rc_dev_client_ip;
};

enum http_action {
	HTTP_RESPOND,		/* send the response described */
	HTTP_UPGRADE_DERP,	/* accept the DERP upgrade */
	HTTP_VARZ,		/* 200 with the metrics (the caller's body) */
	HTTP_UPGRADE_WS,	/* accept the WebSocket handshake (hp_ws_derp) */
	/* A debug page the caller renders: 200, hp_extra and hp_ctype set. */
	HTTP_DEBUG_VARS,	/* every counter as JSON */
	HTTP_DEBUG_CHECK,	/* the consistency check (200 or 500) */
	HTTP_DEBUG_TRAFFIC,	/* a line per client */
	/* /bootstrap-dns: 200, hp_extra and hp_ctype set; the caller's body. */
	HTTP_BOOTSTRAP_DNS,
	/* An ACME HTTP-01 request: the caller answers the token after
	 * HTTP_ACME_PREFIX "/" (200 with the key authorization, or 404). */
	HTTP_ACME_CHALLENGE,
};
#define HTTP_ACME_PREFIX	"/.well-known/acme-challenge"

#define HTTP_EXTRA_MAX	(HTTP_PATH_MAX + 2 * HTTP_VALUE_MAX + 512)
#define HTTP_BODY_MAX	2048

/* The response a route chose (HTTP_RESPOND; for VARZ and DEBUG_*, the
 * headers and hp_head_only). */
struct http_resp {
	int		 hp_code;
	char		 hp_extra[HTTP_EXTRA_MAX];	/* header lines */
	const char	*hp_ctype;			/* NULL: none */
	char		 hp_body[HTTP_BODY_MAX];
	bool		 hp_head_only;			/* HEAD request */
	bool		 hp_bad;	/* a malformed request (counted) */
	const char	*hp_note;	/* a line worth logging, or NULL */
	bool		 hp_ws_derp;	/* UPGRADE_WS: "derp" subprotocol */
};

/*
 * derper's debug access rule for a request whose client address passed
 * util_addr_debug_allowed (ctx->rc_debug_addr): refused when it carries
 * X-Forwarded-For. The one check of every /debug page and of the home
 * page's debug link.
 */
bool	http_debug_allowed(const struct http_req *req,
	    const struct http_route_ctx *ctx);

/*
 * The first value of parameter name in a query string (what follows '?'),
 * decoded as Go's url.ParseQuery does: pairs split at '&', a pair with
 * ';' or a bad %-escape skipped, '+' a space. 1 with out set, 0 when
 * absent, -1 when it does not fit in outlen. Pure.
 */
int	http_query_get(const char *query, const char *name, char *out,
	    size_t outlen);

/*
 * Route a parsed request: the table of paths derpd serves, as derper
 * serves them. Fills *resp for HTTP_RESPOND (and hp_head_only for
 * HTTP_VARZ). Pure: no I/O, no state.
 */
enum http_action http_route(const struct http_req *req,
	    const struct http_route_ctx *ctx, struct http_resp *resp);

#ifdef __cplusplus
}
#endif
#endif
