/* SPDX-License-Identifier: ISC */
/*
 * derpc.c: a small blocking DERP client (see derpc.h). Frame layout and
 * hex come from libderpd (frame.h, util.h); the crypto is libsodium's
 * crypto_box, exactly as PROTOCOL.md 3.3 describes.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "derpc.h"
#include "frame.h"
#include "util.h"

#define HEAD_MAX	8192
#define READ_CHUNK	16384

struct derpc {
	int		 fd;
	SSL_CTX		*ctx;
	SSL		*ssl;
	int		 timeout_ms;
	uint8_t		 priv[32], pub[32], spub[32];
	bool		 have_spub;
	bool		 have_mesh;
	uint8_t		 mesh[32];
	char		 host[300];
	char		 upgrade[128];
	char		*extra;
	/* received bytes not consumed yet: rbuf[roff..rlen) */
	uint8_t		*rbuf;
	size_t		 roff, rlen, rcap;
	char		 head[HEAD_MAX + 1];
	uint8_t		 greet[HEAD_MAX + FRAME_HDR_LEN + 1024];
	size_t		 greet_len;
	char		 err[512];
};

static pthread_once_t	 init_once = PTHREAD_ONCE_INIT;

static void
derpc_init(void)
{
	/* A test client: a closed peer must give EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		abort();
	OPENSSL_init_ssl(0, NULL);
}

static void
seterr(struct derpc *c, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

static void
ssl_err(struct derpc *c, const char *what)
{
	unsigned long	 e = ERR_get_error();
	char		 buf[256] = "";

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	seterr(c, "%s: %s", what, e != 0 ? buf : strerror(errno));
	ERR_clear_error();
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
deadline_of(const struct derpc *c, int timeout_ms)
{
	return now_ms() + (timeout_ms > 0 ? timeout_ms : timeout_ms == 0 ?
	    0 : c->timeout_ms);
}

/* Wait for events until deadline: 1 ready, 0 timeout, -1 error. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd	 pfd;
	int64_t		 left;
	int		 n;

	for (;;) {
		left = deadline - now_ms();
		if (left < 0)
			left = 0;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

void
derpc_pubkey(const uint8_t priv[32], uint8_t pub[32])
{
	pthread_once(&init_once, derpc_init);
	crypto_scalarmult_base(pub, priv);
}

void
derpc_keygen(uint8_t priv[32], uint8_t pub[32])
{
	pthread_once(&init_once, derpc_init);
	randombytes_buf(priv, 32);
	priv[0] &= 248;
	priv[31] = (priv[31] & 127) | 64;
	crypto_scalarmult_base(pub, priv);
}

void
derpc_default_json(const uint8_t *mesh, char *out, size_t outlen)
{
	char	 hex[65];

	if (mesh == NULL) {
		snprintf(out, outlen, "{\"version\":2,\"CanAckPings\":false}");
		return;
	}
	util_hex_encode(mesh, 32, hex);
	snprintf(out, outlen, "{\"meshKey\":\"%s\",\"version\":2,"
	    "\"CanAckPings\":false}", hex);
}

/* Raw I/O on the socket or SSL. */

static int
io_read(struct derpc *c, uint8_t *buf, size_t len, size_t *got,
    int64_t deadline)
{
	short	 ev;
	int	 n, e;

	if (len > INT_MAX)
		len = INT_MAX;
	for (;;) {
		if (c->ssl != NULL) {
			ERR_clear_error();
			errno = 0;
			n = SSL_read(c->ssl, buf, (int)len);
			if (n > 0) {
				*got = (size_t)n;
				return DERPC_OK;
			}
			e = SSL_get_error(c->ssl, n);
			if (e == SSL_ERROR_WANT_READ)
				ev = POLLIN;
			else if (e == SSL_ERROR_WANT_WRITE)
				ev = POLLOUT;
			else if (e == SSL_ERROR_ZERO_RETURN)
				return DERPC_EOF;
			else if (e == SSL_ERROR_SYSCALL && (errno == 0 ||
			    errno == ECONNRESET || errno == EPIPE)) {
				ERR_clear_error();
				return DERPC_EOF;
			} else {
				ssl_err(c, "SSL_read");
				return DERPC_ERROR;
			}
		} else {
			ssize_t r = recv(c->fd, buf, len, 0);
			if (r > 0) {
				*got = (size_t)r;
				return DERPC_OK;
			}
			if (r == 0)
				return DERPC_EOF;
			if (errno == EINTR)
				continue;
			if (errno == ECONNRESET || errno == EPIPE)
				return DERPC_EOF;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				seterr(c, "recv: %s", strerror(errno));
				return DERPC_ERROR;
			}
			ev = POLLIN;
		}
		switch (wait_fd(c->fd, ev, deadline)) {
		case 0:
			return DERPC_TIMEOUT;
		case -1:
			seterr(c, "poll: %s", strerror(errno));
			return DERPC_ERROR;
		}
	}
}

static int
io_write(struct derpc *c, const uint8_t *buf, size_t len, int64_t deadline)
{
	size_t	 off = 0;
	short	 ev;
	int	 n, e;

	while (off < len) {
		size_t chunk = len - off > INT_MAX ? INT_MAX : len - off;
		if (c->ssl != NULL) {
			ERR_clear_error();
			errno = 0;
			n = SSL_write(c->ssl, buf + off, (int)chunk);
			if (n > 0) {
				off += (size_t)n;
				continue;
			}
			e = SSL_get_error(c->ssl, n);
			if (e == SSL_ERROR_WANT_WRITE)
				ev = POLLOUT;
			else if (e == SSL_ERROR_WANT_READ)
				ev = POLLIN;
			else if (e == SSL_ERROR_ZERO_RETURN ||
			    (e == SSL_ERROR_SYSCALL && (errno == 0 ||
			    errno == EPIPE || errno == ECONNRESET))) {
				ERR_clear_error();
				seterr(c, "SSL_write: connection closed");
				return DERPC_EOF;
			} else {
				ssl_err(c, "SSL_write");
				return DERPC_ERROR;
			}
		} else {
			ssize_t r = send(c->fd, buf + off, chunk, MSG_NOSIGNAL);
			if (r >= 0) {
				off += (size_t)r;
				continue;
			}
			if (errno == EINTR)
				continue;
			if (errno == EPIPE || errno == ECONNRESET) {
				seterr(c, "send: %s", strerror(errno));
				return DERPC_EOF;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				seterr(c, "send: %s", strerror(errno));
				return DERPC_ERROR;
			}
			ev = POLLOUT;
		}
		switch (wait_fd(c->fd, ev, deadline)) {
		case 0:
			seterr(c, "write timed out after %zu of %zu bytes",
			    off, len);
			return DERPC_TIMEOUT;
		case -1:
			seterr(c, "poll: %s", strerror(errno));
			return DERPC_ERROR;
		}
	}
	return DERPC_OK;
}

/* Make room for at least want more bytes at rbuf+rlen. */
static int
rbuf_room(struct derpc *c, size_t want)
{
	if (c->roff > 0 && c->rcap - c->rlen < want) {
		memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
		c->rlen -= c->roff;
		c->roff = 0;
	}
	if (c->rcap - c->rlen < want) {
		size_t	 ncap = c->rcap ? c->rcap : 65536;
		uint8_t	*n;

		while (ncap - c->rlen < want)
			ncap *= 2;
		if ((n = realloc(c->rbuf, ncap)) == NULL) {
			seterr(c, "out of memory");
			return -1;
		}
		c->rbuf = n;
		c->rcap = ncap;
	}
	return 0;
}

/* Buffer until n unconsumed bytes are available. */
static int
need(struct derpc *c, size_t n, int64_t deadline)
{
	size_t	 got;
	int	 rc;

	while (c->rlen - c->roff < n) {
		size_t want = n - (c->rlen - c->roff);
		if (want < READ_CHUNK)
			want = READ_CHUNK;
		if (rbuf_room(c, want) == -1)
			return DERPC_ERROR;
		rc = io_read(c, c->rbuf + c->rlen, c->rcap - c->rlen, &got,
		    deadline);
		if (rc != DERPC_OK) {
			if (rc == DERPC_TIMEOUT)
				seterr(c, "timed out waiting for %zu bytes "
				    "(have %zu)", n, c->rlen - c->roff);
			else if (rc == DERPC_EOF)
				seterr(c, "connection closed (wanted %zu bytes, "
				    "have %zu)", n, c->rlen - c->roff);
			return rc;
		}
		c->rlen += got;
	}
	return DERPC_OK;
}

/* Connection setup. */

static int
tcp_connect(struct derpc *c, int port, int rcvbuf, const char *bind_addr,
    int64_t deadline)
{
	struct sockaddr_in	 sin;
	int			 one = 1, e = 0;
	socklen_t		 el = sizeof(e);

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd == -1) {
		seterr(c, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Before connect, so the window scale and first window honour it. */
	if (rcvbuf > 0)
		setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		    sizeof(rcvbuf));
	if (bind_addr != NULL) {
		/* A chosen source address (any of 127.0.0.0/8 on Linux). */
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		if (inet_pton(AF_INET, bind_addr, &sin.sin_addr) != 1) {
			seterr(c, "bind: \"%s\" is not an IPv4 address",
			    bind_addr);
			return -1;
		}
		if (bind(c->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
			seterr(c, "bind %s: %s", bind_addr, strerror(errno));
			return -1;
		}
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
		return 0;
	if (errno != EINPROGRESS) {
		seterr(c, "connect 127.0.0.1:%d: %s", port, strerror(errno));
		return -1;
	}
	if (wait_fd(c->fd, POLLOUT, deadline) != 1) {
		seterr(c, "connect 127.0.0.1:%d: timed out", port);
		return -1;
	}
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el) == -1 || e != 0) {
		seterr(c, "connect 127.0.0.1:%d: %s", port, strerror(e));
		return -1;
	}
	return 0;
}

static int
tls_connect(struct derpc *c, const struct derpc_opts *o, int64_t deadline)
{
	short	 ev;
	int	 n, e;

	if ((c->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		ssl_err(c, "SSL_CTX_new");
		return -1;
	}
	SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (o->tls_min != 0)
		SSL_CTX_set_min_proto_version(c->ctx, o->tls_min);
	if (o->tls_max != 0)
		SSL_CTX_set_max_proto_version(c->ctx, o->tls_max);
	if (o->ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(c->ctx, o->ca_file, NULL) !=
		    1) {
			ssl_err(c, o->ca_file);
			return -1;
		}
		/* The trusted cert is a self-signed leaf. */
		X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(c->ctx),
		    X509_V_FLAG_PARTIAL_CHAIN);
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	} else
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
	if ((c->ssl = SSL_new(c->ctx)) == NULL) {
		ssl_err(c, "SSL_new");
		return -1;
	}
	if (o->sni != NULL && SSL_set_tlsext_host_name(c->ssl, o->sni) != 1) {
		ssl_err(c, "SNI");
		return -1;
	}
	if (o->ca_file != NULL) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
		if (o->sni != NULL)
			X509_VERIFY_PARAM_set1_host(vp, o->sni, 0);
		else
			X509_VERIFY_PARAM_set1_ip_asc(vp, "127.0.0.1");
	}
	SSL_set_fd(c->ssl, c->fd);
	for (;;) {
		ERR_clear_error();
		errno = 0;
		if ((n = SSL_connect(c->ssl)) == 1)
			return 0;
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ)
			ev = POLLIN;
		else if (e == SSL_ERROR_WANT_WRITE)
			ev = POLLOUT;
		else {
			long vr = SSL_get_verify_result(c->ssl);
			ssl_err(c, "TLS handshake");
			if (vr != X509_V_OK) {
				size_t l = strlen(c->err);
				snprintf(c->err + l, sizeof(c->err) - l,
				    " (verify: %s)",
				    X509_verify_cert_error_string(vr));
			}
			return -1;
		}
		if (wait_fd(c->fd, ev, deadline) != 1) {
			seterr(c, "TLS handshake timed out");
			return -1;
		}
	}
}

struct derpc *
derpc_dial(const struct derpc_opts *o, char *err, size_t errlen)
{
	struct derpc	*c;
	int64_t		 deadline;

	pthread_once(&init_once, derpc_init);
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->fd = -1;
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms :
	    DERPC_DEFAULT_TIMEOUT_MS;
	if (o->priv != NULL) {
		memcpy(c->priv, o->priv, 32);
		derpc_pubkey(c->priv, c->pub);
	} else
		derpc_keygen(c->priv, c->pub);
	if (o->server_pub != NULL) {
		memcpy(c->spub, o->server_pub, 32);
		c->have_spub = true;
	}
	if (o->mesh_key != NULL) {
		memcpy(c->mesh, o->mesh_key, 32);
		c->have_mesh = true;
	}
	if (o->host != NULL)
		snprintf(c->host, sizeof(c->host), "%s", o->host);
	else
		snprintf(c->host, sizeof(c->host), "127.0.0.1:%d", o->port);
	snprintf(c->upgrade, sizeof(c->upgrade), "%s",
	    o->upgrade != NULL ? o->upgrade : "DERP");
	if (o->extra_headers != NULL && (c->extra = strdup(o->extra_headers)) ==
	    NULL) {
		snprintf(err, errlen, "out of memory");
		derpc_close(c);
		return NULL;
	}
	deadline = deadline_of(c, -1);
	if (tcp_connect(c, o->port, o->rcvbuf, o->bind_addr, deadline) == -1 ||
	    (o->tls && tls_connect(c, o, deadline) == -1)) {
		snprintf(err, errlen, "%s", c->err);
		derpc_close(c);
		return NULL;
	}
	return c;
}

void
derpc_close(struct derpc *c)
{
	if (c == NULL)
		return;
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (c->ctx != NULL)
		SSL_CTX_free(c->ctx);
	if (c->fd != -1)
		close(c->fd);
	sodium_memzero(c->priv, sizeof(c->priv));
	free(c->extra);
	free(c->rbuf);
	free(c);
}

/* The handshake. */

static size_t
build_request(struct derpc *c, bool fast, char *out, size_t outlen)
{
	int n;

	n = snprintf(out, outlen, "GET /derp HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: Go-http-client/1.1\r\nConnection: Upgrade\r\n"
	    "%sUpgrade: %s\r\n%s\r\n", c->host,
	    fast ? "Derp-Fast-Start: 1\r\n" : "", c->upgrade,
	    c->extra != NULL ? c->extra : "");
	if (n < 0 || (size_t)n >= outlen)
		return 0;
	return (size_t)n;
}

int
derpc_send_upgrade(struct derpc *c, bool fast)
{
	char	 req[4096];
	size_t	 n;

	if ((n = build_request(c, fast, req, sizeof(req))) == 0) {
		seterr(c, "request too long");
		return DERPC_ERROR;
	}
	return io_write(c, (const uint8_t *)req, n, deadline_of(c, -1));
}

static void
greet_add(struct derpc *c, const void *p, size_t n)
{
	if (n > sizeof(c->greet) - c->greet_len)
		n = sizeof(c->greet) - c->greet_len;
	memcpy(c->greet + c->greet_len, p, n);
	c->greet_len += n;
}

/* Find the end of the HTTP head in the buffer; 0 if not yet there. */
static size_t
head_end(const struct derpc *c)
{
	const uint8_t	*p = c->rbuf + c->roff;
	size_t		 n = c->rlen - c->roff;

	for (size_t i = 0; i + 3 < n; i++)
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' &&
		    p[i + 3] == '\n')
			return i + 4;
	return 0;
}

int
derpc_read_upgrade(struct derpc *c, bool fast, int *status, int timeout_ms)
{
	int64_t		 deadline = deadline_of(c, timeout_ms);
	uint8_t		 type;
	uint32_t	 len;
	const uint8_t	*p;
	size_t		 hl;
	int		 rc;

	*status = 0;
	c->head[0] = '\0';
	c->greet_len = 0;
	if (!fast) {
		while ((hl = head_end(c)) == 0) {
			if (c->rlen - c->roff > HEAD_MAX) {
				seterr(c, "response head too long");
				return DERPC_ERROR;
			}
			if ((rc = need(c, c->rlen - c->roff + 1, deadline)) !=
			    DERPC_OK) {
				/* Keep what came, for the caller to see. */
				size_t k = c->rlen - c->roff;
				if (k > HEAD_MAX)
					k = HEAD_MAX;
				memcpy(c->head, c->rbuf + c->roff, k);
				c->head[k] = '\0';
				return rc;
			}
		}
		if (hl > HEAD_MAX) {
			seterr(c, "response head too long");
			return DERPC_ERROR;
		}
		memcpy(c->head, c->rbuf + c->roff, hl);
		c->head[hl] = '\0';
		greet_add(c, c->rbuf + c->roff, hl);
		c->roff += hl;
		if (sscanf(c->head, "HTTP/1.%*c %d", status) != 1) {
			seterr(c, "bad status line");
			return DERPC_ERROR;
		}
		if (*status != 101) {
			seterr(c, "status %d, not 101", *status);
			return DERPC_ERROR;
		}
	}
	if ((rc = need(c, FRAME_HDR_LEN, deadline)) != DERPC_OK)
		return rc;
	p = c->rbuf + c->roff;
	frame_get_header(p, FRAME_HDR_LEN, &type, &len);
	if (type != FRAME_SERVER_KEY || len < FRAME_SERVERKEY_LEN ||
	    len > 1024) {
		seterr(c, "expected ServerKey, got frame type 0x%02x length %u",
		    type, len);
		return DERPC_ERROR;
	}
	if ((rc = need(c, FRAME_HDR_LEN + len, deadline)) != DERPC_OK)
		return rc;
	p = c->rbuf + c->roff;
	greet_add(c, p, FRAME_HDR_LEN + len);
	c->roff += FRAME_HDR_LEN + len;
	if (memcmp(p + FRAME_HDR_LEN, FRAME_MAGIC, FRAME_MAGIC_LEN) != 0) {
		seterr(c, "ServerKey without the DERP magic");
		return DERPC_ERROR;
	}
	p += FRAME_HDR_LEN + FRAME_MAGIC_LEN;
	if (c->have_spub && memcmp(c->spub, p, 32) != 0) {
		seterr(c, "ServerKey does not match the expected server key");
		return DERPC_ERROR;
	}
	memcpy(c->spub, p, 32);
	c->have_spub = true;
	return DERPC_OK;
}

size_t
derpc_build_client_info(struct derpc *c, const char *json, uint8_t *out,
    size_t outlen)
{
	char	 def[256];
	size_t	 jl, total;
	uint8_t	*nonce;

	if (json == NULL) {
		derpc_default_json(c->have_mesh ? c->mesh : NULL, def,
		    sizeof(def));
		json = def;
	}
	jl = strlen(json);
	total = FRAME_HDR_LEN + FRAME_KEY_LEN + FRAME_NONCE_LEN +
	    FRAME_BOX_MAC_LEN + jl;
	if (!c->have_spub || total > outlen || total - FRAME_HDR_LEN >
	    UINT32_MAX)
		return 0;
	frame_put_header(out, FRAME_CLIENT_INFO,
	    (uint32_t)(total - FRAME_HDR_LEN));
	memcpy(out + FRAME_HDR_LEN, c->pub, 32);
	nonce = out + FRAME_HDR_LEN + FRAME_KEY_LEN;
	randombytes_buf(nonce, FRAME_NONCE_LEN);
	if (crypto_box_easy(nonce + FRAME_NONCE_LEN, (const uint8_t *)json, jl,
	    nonce, c->spub, c->priv) != 0)
		return 0;
	return total;
}

/* ClientInfo + pipeline in one buffer, optionally after prefix. */
static int
send_ci(struct derpc *c, const char *prefix, size_t plen, const char *json,
    const uint8_t *pipe, size_t pipelen)
{
	size_t	 jl = json != NULL ? strlen(json) : 256;
	size_t	 cap = plen + FRAME_HDR_LEN + 128 + jl + pipelen, n;
	uint8_t	*buf;
	int	 rc;

	if ((buf = malloc(cap)) == NULL) {
		seterr(c, "out of memory");
		return DERPC_ERROR;
	}
	memcpy(buf, prefix, plen);
	if ((n = derpc_build_client_info(c, json, buf + plen, cap - plen)) ==
	    0) {
		free(buf);
		seterr(c, "cannot build ClientInfo (server key unknown?)");
		return DERPC_ERROR;
	}
	if (pipelen > 0)
		memcpy(buf + plen + n, pipe, pipelen);
	rc = io_write(c, buf, plen + n + pipelen, deadline_of(c, -1));
	free(buf);
	return rc;
}

int
derpc_send_client_info(struct derpc *c, const char *json,
    const uint8_t *pipe, size_t pipelen)
{
	return send_ci(c, "", 0, json, pipe, pipelen);
}

int
derpc_read_server_info(struct derpc *c, char *json, size_t jsonlen,
    int timeout_ms)
{
	struct derpc_frame	 f;
	uint8_t			*m;
	size_t			 mlen;
	int			 rc;

	if ((rc = derpc_recv_frame(c, &f, timeout_ms)) != DERPC_OK)
		return rc;
	if (f.type != FRAME_SERVER_INFO) {
		seterr(c, "expected ServerInfo, got frame type 0x%02x length %u",
		    f.type, f.len);
		return DERPC_ERROR;
	}
	if (f.len < FRAME_NONCE_LEN + FRAME_BOX_MAC_LEN) {
		seterr(c, "ServerInfo too short (%u)", f.len);
		return DERPC_ERROR;
	}
	mlen = f.len - FRAME_NONCE_LEN - FRAME_BOX_MAC_LEN;
	if ((m = malloc(mlen + 1)) == NULL) {
		seterr(c, "out of memory");
		return DERPC_ERROR;
	}
	if (crypto_box_open_easy(m, f.payload + FRAME_NONCE_LEN,
	    f.len - FRAME_NONCE_LEN, f.payload, c->spub, c->priv) != 0) {
		free(m);
		seterr(c, "ServerInfo box does not open");
		return DERPC_ERROR;
	}
	m[mlen] = '\0';
	if (json != NULL && jsonlen > 0)
		snprintf(json, jsonlen, "%s", (const char *)m);
	free(m);
	return DERPC_OK;
}

int
derpc_tls_meta_key(const struct derpc *c, uint8_t pub[32])
{
	STACK_OF(X509)	*chain;
	char		 cn[256];

	if (c->ssl == NULL ||
	    (chain = SSL_get_peer_cert_chain(c->ssl)) == NULL)
		return -1;
	for (int i = 0; i < sk_X509_num(chain); i++) {
		X509 *x = sk_X509_value(chain, i);
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(x),
		    NID_commonName, cn, sizeof(cn)) != 7 + 64 ||
		    strncmp(cn, "derpkey", 7) != 0)
			continue;
		if (util_hex_decode(cn + 7, 64, pub, 32) == 0)
			return 0;
	}
	return -1;
}

struct derpc *
derpc_connect(const struct derpc_opts *o, char *si, size_t silen, char *err,
    size_t errlen)
{
	struct derpc	*c;
	bool		 fast = false;
	int		 status, rc;

	if ((c = derpc_dial(o, err, errlen)) == NULL)
		return NULL;
	if (o->fast_start) {
		if (!c->have_spub && c->ssl != NULL &&
		    SSL_version(c->ssl) == TLS1_3_VERSION &&
		    derpc_tls_meta_key(c, c->spub) == 0)
			c->have_spub = true;
		fast = c->have_spub;
	}
	if (fast) {
		char	 req[4096];
		size_t	 n = build_request(c, true, req, sizeof(req));

		if (n == 0) {
			seterr(c, "request too long");
			goto fail;
		}
		if (send_ci(c, req, n, o->json, o->pipeline,
		    o->pipeline_len) != DERPC_OK ||
		    derpc_read_upgrade(c, true, &status, -1) != DERPC_OK)
			goto fail;
	} else {
		if (derpc_send_upgrade(c, false) != DERPC_OK ||
		    derpc_read_upgrade(c, false, &status, -1) != DERPC_OK ||
		    derpc_send_client_info(c, o->json, o->pipeline,
		    o->pipeline_len) != DERPC_OK)
			goto fail;
	}
	rc = derpc_read_server_info(c, si, silen, -1);
	if (rc != DERPC_OK)
		goto fail;
	return c;
fail:
	snprintf(err, errlen, "%s", c->err);
	derpc_close(c);
	return NULL;
}

/* Raw bytes. */

int
derpc_write_raw(struct derpc *c, const void *buf, size_t len)
{
	return io_write(c, buf, len, deadline_of(c, -1));
}

int
derpc_read_raw(struct derpc *c, void *buf, size_t len, size_t *got,
    int timeout_ms)
{
	size_t	 have = c->rlen - c->roff;
	int	 rc;

	*got = 0;
	if (len == 0)
		return DERPC_OK;
	if (have == 0) {
		if ((rc = need(c, 1, deadline_of(c, timeout_ms))) != DERPC_OK)
			return rc;
		have = c->rlen - c->roff;
	}
	if (have > len)
		have = len;
	memcpy(buf, c->rbuf + c->roff, have);
	c->roff += have;
	*got = have;
	return DERPC_OK;
}

int
derpc_wait_eof(struct derpc *c, int timeout_ms)
{
	int64_t	 deadline = deadline_of(c, timeout_ms);
	size_t	 got;
	int	 rc;

	c->roff = c->rlen = 0;
	for (;;) {
		if (rbuf_room(c, READ_CHUNK) == -1)
			return DERPC_ERROR;
		rc = io_read(c, c->rbuf, c->rcap, &got, deadline);
		if (rc != DERPC_OK)
			return rc;
	}
}

void
derpc_shutdown_write(struct derpc *c)
{
	shutdown(c->fd, SHUT_WR);
}

/* Frames. */

size_t
derpc_put_frame(uint8_t *out, uint8_t type, const void *payload,
    uint32_t len)
{
	frame_put_header(out, type, len);
	if (len > 0)
		memcpy(out + FRAME_HDR_LEN, payload, len);
	return FRAME_HDR_LEN + (size_t)len;
}

int
derpc_send_frame(struct derpc *c, uint8_t type, const void *payload,
    uint32_t len)
{
	uint8_t	 small[FRAME_HDR_LEN + 256], *buf = small;
	int	 rc;

	if (len > sizeof(small) - FRAME_HDR_LEN &&
	    (buf = malloc(FRAME_HDR_LEN + (size_t)len)) == NULL) {
		seterr(c, "out of memory");
		return DERPC_ERROR;
	}
	derpc_put_frame(buf, type, payload, len);
	rc = io_write(c, buf, FRAME_HDR_LEN + (size_t)len, deadline_of(c, -1));
	if (buf != small)
		free(buf);
	return rc;
}

int
derpc_recv_frame(struct derpc *c, struct derpc_frame *f, int timeout_ms)
{
	int64_t		 deadline = deadline_of(c, timeout_ms);
	uint8_t		 type;
	uint32_t	 len;
	int		 rc;

	if ((rc = need(c, FRAME_HDR_LEN, deadline)) != DERPC_OK)
		return rc;
	frame_get_header(c->rbuf + c->roff, FRAME_HDR_LEN, &type, &len);
	if (len > DERPC_MAX_FRAME) {
		seterr(c, "frame type 0x%02x too long (%u)", type, len);
		return DERPC_ERROR;
	}
	if ((rc = need(c, FRAME_HDR_LEN + (size_t)len, deadline)) != DERPC_OK)
		return rc;
	f->type = type;
	f->len = len;
	f->payload = c->rbuf + c->roff + FRAME_HDR_LEN;
	c->roff += FRAME_HDR_LEN + (size_t)len;
	return DERPC_OK;
}

int
derpc_recv_type(struct derpc *c, uint8_t type, struct derpc_frame *f,
    int timeout_ms)
{
	int64_t	 deadline = deadline_of(c, timeout_ms);
	int	 rc;

	for (;;) {
		int64_t left = deadline - now_ms();
		if ((rc = derpc_recv_frame(c, f, left > 0 ? (int)left : 0)) !=
		    DERPC_OK)
			return rc;
		if (f->type == type)
			return DERPC_OK;
		if (f->type != FRAME_KEEP_ALIVE) {
			seterr(c, "expected frame type 0x%02x, got 0x%02x "
			    "length %u", type, f->type, f->len);
			return DERPC_ERROR;
		}
	}
}

int
derpc_recv_packet(struct derpc *c, uint8_t src[32], void *buf, size_t cap,
    size_t *len, int timeout_ms)
{
	struct derpc_frame	 f;
	int			 rc;

	if ((rc = derpc_recv_type(c, FRAME_RECV_PACKET, &f, timeout_ms)) !=
	    DERPC_OK)
		return rc;
	if (f.len < 32) {
		seterr(c, "RecvPacket without a source key (%u bytes)", f.len);
		return DERPC_ERROR;
	}
	memcpy(src, f.payload, 32);
	*len = f.len - 32;
	memcpy(buf, f.payload + 32, *len < cap ? *len : cap);
	return DERPC_OK;
}

int
derpc_send_packet(struct derpc *c, const uint8_t dst[32], const void *data,
    size_t len)
{
	uint8_t	*buf;
	int	 rc;

	if (len > UINT32_MAX - 64 ||
	    (buf = malloc(FRAME_HDR_LEN + 32 + len)) == NULL) {
		seterr(c, "packet too large");
		return DERPC_ERROR;
	}
	frame_put_header(buf, FRAME_SEND_PACKET, (uint32_t)(32 + len));
	memcpy(buf + FRAME_HDR_LEN, dst, 32);
	if (len > 0)
		memcpy(buf + FRAME_HDR_LEN + 32, data, len);
	rc = io_write(c, buf, FRAME_HDR_LEN + 32 + len, deadline_of(c, -1));
	free(buf);
	return rc;
}

int
derpc_forward_packet(struct derpc *c, const uint8_t src[32],
    const uint8_t dst[32], const void *data, size_t len)
{
	uint8_t	*buf;
	int	 rc;

	if (len > UINT32_MAX - 128 ||
	    (buf = malloc(FRAME_HDR_LEN + 64 + len)) == NULL) {
		seterr(c, "packet too large");
		return DERPC_ERROR;
	}
	frame_put_header(buf, FRAME_FORWARD_PACKET, (uint32_t)(64 + len));
	memcpy(buf + FRAME_HDR_LEN, src, 32);
	memcpy(buf + FRAME_HDR_LEN + 32, dst, 32);
	if (len > 0)
		memcpy(buf + FRAME_HDR_LEN + 64, data, len);
	rc = io_write(c, buf, FRAME_HDR_LEN + 64 + len, deadline_of(c, -1));
	free(buf);
	return rc;
}

int
derpc_ping(struct derpc *c, const uint8_t data[8])
{
	return derpc_send_frame(c, FRAME_PING, data, 8);
}

int
derpc_note_preferred(struct derpc *c, bool preferred)
{
	uint8_t v = preferred ? 1 : 0;

	return derpc_send_frame(c, FRAME_NOTE_PREFERRED, &v, 1);
}

int
derpc_watch_conns(struct derpc *c)
{
	return derpc_send_frame(c, FRAME_WATCH_CONNS, NULL, 0);
}

int
derpc_close_peer(struct derpc *c, const uint8_t key[32])
{
	return derpc_send_frame(c, FRAME_CLOSE_PEER, key, 32);
}

/* Accessors. */

int
derpc_fd(const struct derpc *c)
{
	return c->fd;
}

void *
derpc_ssl(const struct derpc *c)
{
	return c->ssl;
}

const uint8_t *
derpc_pub(const struct derpc *c)
{
	return c->pub;
}

const uint8_t *
derpc_priv(const struct derpc *c)
{
	return c->priv;
}

const uint8_t *
derpc_server_pub(const struct derpc *c)
{
	return c->have_spub ? c->spub : NULL;
}

const char *
derpc_http_head(const struct derpc *c)
{
	return c->head;
}

const uint8_t *
derpc_greeting(const struct derpc *c, size_t *len)
{
	*len = c->greet_len;
	return c->greet;
}

const char *
derpc_error(const struct derpc *c)
{
	return c->err;
}
