/* SPDX-License-Identifier: ISC */
/*
 * derpc.h: a small blocking DERP client for tests and derpcat.
 *
 * One connection to 127.0.0.1:port over plain TCP or TLS. Every call that
 * waits takes a timeout in milliseconds (the socket is non-blocking and
 * waits happen in poll(2)), so a misbehaving server cannot hang a test.
 * A negative timeout means the connection's default (opts.timeout_ms);
 * 0 means "only what is already there". Writes use the default timeout.
 * The first use ignores SIGPIPE process-wide (writes to a closed peer
 * return DERPC_EOF instead).
 *
 * The handshake can be run as one call (derpc_connect) or step by step
 * (derpc_dial, derpc_send_upgrade, derpc_read_upgrade,
 * derpc_send_client_info, derpc_read_server_info) so tests can inject bad
 * bytes at any point. derpc_write_raw sends arbitrary bytes.
 *
 * Not thread-safe: one thread per struct derpc.
 */
#ifndef DERPC_H
#define DERPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DERPC_KEY_LEN		32
#define DERPC_MAX_PACKET	65536
/* Largest frame payload accepted from a server (PROTOCOL.md 2.2). */
#define DERPC_MAX_FRAME		(1024 * 1024)
#define DERPC_DEFAULT_TIMEOUT_MS 5000

/* Results of calls that wait. */
enum derpc_rc {
	DERPC_OK = 0,
	DERPC_TIMEOUT = 1,	/* nothing (complete) within the timeout */
	DERPC_EOF = 2,		/* the server closed (FIN, RST or TLS close) */
	DERPC_ERROR = -1,	/* protocol or local error; see derpc_error() */
};

/* How to connect. Zero-initialise, then set what you need. */
struct derpc_opts {
	int		 port;		/* on 127.0.0.1 */
	const char	*host;		/* Host header; NULL: 127.0.0.1:port */
	/* TLS */
	bool		 tls;
	const char	*ca_file;	/* trust this PEM; NULL: no verification */
	const char	*sni;		/* SNI; NULL: none */
	int		 tls_min;	/* e.g. TLS1_3_VERSION; 0: library default */
	int		 tls_max;
	/* DERP */
	const uint8_t	*priv;		/* client private key; NULL: fresh one */
	const uint8_t	*server_pub;	/* known server key (for fast start) */
	/*
	 * Fast start: Derp-Fast-Start: 1, no 101 expected. Only used when
	 * the server key is known: server_pub, or over TLS 1.3 the meta cert.
	 */
	bool		 fast_start;
	const uint8_t	*mesh_key;	/* 32 bytes, put in the default JSON */
	const char	*json;		/* ClientInfo JSON; NULL: default */
	const char	*upgrade;	/* Upgrade header value; NULL: "DERP" */
	const char	*extra_headers;	/* "Name: v\r\n" lines, or NULL */
	/* Bytes sent in the same write as ClientInfo (pipelining). */
	const uint8_t	*pipeline;
	size_t		 pipeline_len;
	int		 timeout_ms;	/* per step; 0: DERPC_DEFAULT_TIMEOUT_MS */
	int		 rcvbuf;	/* SO_RCVBUF before connect; 0: default */
	/* Local IPv4 address to bind before connect (e.g. "127.0.0.2"); NULL: none. */
	const char	*bind_addr;
};

struct derpc;

/* One received frame; payload is valid until the next receive call. */
struct derpc_frame {
	uint8_t		 type;
	uint32_t	 len;
	const uint8_t	*payload;
};

/* Fresh clamped X25519 private key and its public key. */
void	derpc_keygen(uint8_t priv[32], uint8_t pub[32]);
/* Public key of a private key. */
void	derpc_pubkey(const uint8_t priv[32], uint8_t pub[32]);

/*
 * TCP connect (and TLS handshake) only. NULL with a message in err on
 * failure. Keys are set up from opts (a fresh key when opts->priv is NULL).
 */
struct derpc *derpc_dial(const struct derpc_opts *opts, char *err,
	    size_t errlen);
/*
 * The whole client handshake: dial, upgrade request (with fast start
 * when opts->fast_start and opts->server_pub are set: request, ClientInfo
 * and opts->pipeline in one write), 101 + ServerKey, ClientInfo (plus
 * pipeline, one write), ServerInfo. If server_info is not NULL it gets
 * the opened JSON (NUL-terminated, cut to server_info_len - 1).
 */
struct derpc *derpc_connect(const struct derpc_opts *opts, char *server_info,
	    size_t server_info_len, char *err, size_t errlen);
void	derpc_close(struct derpc *);

/* Steps of the handshake, for tests that break it on purpose. */
int	derpc_send_upgrade(struct derpc *, bool fast_start);
/*
 * Read the HTTP response head (not in fast start) and the ServerKey
 * frame. Returns DERPC_OK with the status in *status (0 in fast start);
 * a status other than 101 is DERPC_ERROR (the head is kept).
 */
int	derpc_read_upgrade(struct derpc *, bool fast_start, int *status,
	    int timeout_ms);
/*
 * Build a ClientInfo frame sealing json to the server key into out;
 * returns its length, or 0 if out is too small or no server key is known.
 */
size_t	derpc_build_client_info(struct derpc *, const char *json, uint8_t *out,
	    size_t outlen);
/* Send ClientInfo (json NULL: the default JSON) plus optional pipeline. */
int	derpc_send_client_info(struct derpc *, const char *json,
	    const uint8_t *pipeline, size_t pipeline_len);
/* Read and open ServerInfo into json (NUL-terminated). */
int	derpc_read_server_info(struct derpc *, char *json, size_t jsonlen,
	    int timeout_ms);

/* Raw I/O. write_raw sends everything (one write call when possible). */
int	derpc_write_raw(struct derpc *, const void *buf, size_t len);
/*
 * Read up to len bytes (buffered bytes first). DERPC_OK with *got > 0,
 * DERPC_TIMEOUT, DERPC_EOF or DERPC_ERROR.
 */
int	derpc_read_raw(struct derpc *, void *buf, size_t len, size_t *got,
	    int timeout_ms);
/* Read until EOF, discarding: DERPC_EOF when closed in time. */
int	derpc_wait_eof(struct derpc *, int timeout_ms);
/* Half-close the write side (TCP shutdown). */
void	derpc_shutdown_write(struct derpc *);

/* Frames. */
int	derpc_send_frame(struct derpc *, uint8_t type, const void *payload,
	    uint32_t len);
int	derpc_recv_frame(struct derpc *, struct derpc_frame *, int timeout_ms);
/* Receive, skipping KeepAlive frames, until one of type arrives. */
int	derpc_recv_type(struct derpc *, uint8_t type, struct derpc_frame *,
	    int timeout_ms);
int	derpc_send_packet(struct derpc *, const uint8_t dst[32],
	    const void *data, size_t len);
int	derpc_forward_packet(struct derpc *, const uint8_t src[32],
	    const uint8_t dst[32], const void *data, size_t len);
int	derpc_ping(struct derpc *, const uint8_t data[8]);
int	derpc_note_preferred(struct derpc *, bool preferred);
int	derpc_watch_conns(struct derpc *);
int	derpc_close_peer(struct derpc *, const uint8_t key[32]);
/*
 * Wait for a RecvPacket: src gets the source key, *len the packet length
 * and the data is copied to buf (cut at cap). Other frames but KeepAlive
 * are an error (DERPC_ERROR, the frame type in the error text).
 */
int	derpc_recv_packet(struct derpc *, uint8_t src[32], void *buf,
	    size_t cap, size_t *len, int timeout_ms);

/* Frame builders for pipelined or raw writes; return bytes written. */
size_t	derpc_put_frame(uint8_t *out, uint8_t type, const void *payload,
	    uint32_t len);

/* Accessors. */
int	derpc_fd(const struct derpc *);
void	*derpc_ssl(const struct derpc *);	/* SSL *, NULL for plain */
const uint8_t *derpc_pub(const struct derpc *);
const uint8_t *derpc_priv(const struct derpc *);
/* The server key (from ServerKey, or opts->server_pub); NULL if unknown. */
const uint8_t *derpc_server_pub(const struct derpc *);
/* The HTTP response head as received, NUL-terminated ("" in fast start). */
const char *derpc_http_head(const struct derpc *);
/* The raw bytes the server sent first, up to and including ServerKey. */
const uint8_t *derpc_greeting(const struct derpc *, size_t *len);
const char *derpc_error(const struct derpc *);

/*
 * TLS only: the server key from the meta cert (CN "derpkey<64 hex>") in the
 * peer's chain, as the Go client reads it. 0, or -1 when absent.
 */
int	derpc_tls_meta_key(const struct derpc *, uint8_t pub[32]);

/* The default ClientInfo JSON (with meshKey when mesh is not NULL). */
void	derpc_default_json(const uint8_t *mesh, char *out, size_t outlen);

#ifdef __cplusplus
}
#endif
#endif
