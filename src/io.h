/* SPDX-License-Identifier: ISC */
/*
 * io.h: non-blocking socket I/O for one connection, plain or TLS, on
 * edge-triggered events. Replaces bufferevent, whose reads stop at 4 KiB
 * and whose write events are re-armed with epoll_ctl on every burst.
 */
#ifndef DERPD_IO_H
#define DERPD_IO_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct evbuffer;
struct io;

enum io_event {
	IO_CONNECTED,		/* TLS handshake complete */
	IO_EOF,			/* peer closed */
	IO_READ_ERROR,
	IO_WRITE_ERROR,
	IO_TLS_ERROR,
	IO_WRITE_TIMEOUT,	/* output pending, no progress for the timeout */
	IO_WS_TOO_LARGE,	/* WebSocket message over WS_MAX_MSG */
	IO_WS_TEXT,		/* WebSocket text message */
	IO_WS_PROTOCOL,		/* WebSocket framing error or ping flood */
};

struct io_cbs {
	void	(*ic_read)(void *arg);		/* input has new bytes */
	void	(*ic_drain)(void *arg);		/* output at or below low mark */
	void	(*ic_event)(void *arg, enum io_event, const char *detail);
};

/*
 * Wrap fd (and ssl, NULL for plain TCP) on base. An ssl from a server
 * context accepts, one from a client context connects (fd may still be
 * connecting: the handshake starts when it is writable). The io owns
 * both: io_free closes them. NULL on failure (fd and ssl untouched).
 * cbs is kept, not copied: it must outlive the io (a static const).
 */
struct io *io_new(struct event_base *base, int fd, SSL *ssl,
	    const struct io_cbs *cbs, void *arg);
/*
 * Release everything. Safe from inside any io callback: the memory goes
 * once the callback returns. NULL is a no-op.
 */
void	io_free(struct io *);
/*
 * Take the socket from io (before io_free): it leaves the event loop and
 * io_free will not close it; the caller does. Returns the descriptor.
 */
int	io_take_fd(struct io *);
struct evbuffer *io_input(struct io *);
struct evbuffer *io_output(struct io *);
size_t	io_output_len(const struct io *);
void	io_trim(struct io *);
void	io_thread_done(void);
/* Write what is in the output buffer now (as much as the socket takes). */
void	io_flush(struct io *);
/* Stop reading for now; io_resume_read re-reads what has arrived. */
void	io_pause_read(struct io *);
void	io_resume_read(struct io *);
/* Stop reading for good (response written, then close). */
void	io_stop_read(struct io *);
/* 0 disables the write timeout. */
void	io_set_write_timeout(struct io *, int64_t ms);
/* Drain callback fires when output falls to this many bytes or fewer. */
void	io_set_low_mark(struct io *, size_t bytes);
/*
 * From now on the connection speaks WebSocket (ws.h): what the output
 * holds (the 101) leaves unframed, later output as binary messages, and
 * the input gets the payload of binary messages, starting with frames
 * already read after the request head. A peer's close frame is IO_EOF.
 * 0, or -1 when out of memory. Costs nothing to connections that never
 * call it.
 */
int	io_start_ws(struct io *);
/* The TLS handshake was an ACME TLS-ALPN-01 validation (tls.c). */
bool	io_is_acme_challenge(struct io *);
/* WebSocket only: queue a close frame after the output framed so far. */
void	io_ws_close(struct io *, uint16_t code, const char *reason);
bool	io_is_ws(const struct io *);
/* The socket (stays the io's), for getsockopt. */
int	io_fd(const struct io *);
/* The negotiated TLS version (TLS1_2_VERSION...), 0 for plain TCP. */
int	io_tls_version(const struct io *);

#ifdef __cplusplus
}
#endif
#endif
