/* SPDX-License-Identifier: ISC */
/* io.c: edge-triggered socket and TLS I/O into evbuffers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "io.h"
#include "tls.h"
#include "util.h"
#include "ws.h"

#define IO_READ_CHUNK	(16 * 1024)
/*
 * Fairness rule, part 1: one read callback takes at most IO_READ_BUDGET
 * bytes from its socket, hands them to the connection, and yields. It asks
 * to go on by activating its read event (edge-triggered: no new edge would
 * come for bytes already queued); the worker's loop runs that activation
 * only after it has polled the kernel and run due timers again (part 2,
 * worker.c), so every ready connection is served once per turn whatever
 * one connection sends.
 *
 * The budget is about half a receiver's queue (PKTQ_MAX_DEPTH packets) of
 * WireGuard-sized packets: what one turn reads from a sender fits the
 * queue of the peer it sends to, which is written before the sender's
 * next turn. At capacity a sender is then read no faster than its
 * packets leave, and what it sends beyond that waits in its own socket
 * (TCP pushes back on it) instead of being read, decrypted, parsed and
 * dropped at the queue's head. With 64 KiB turns, TLS relaying at twice
 * its capacity dropped 4 packets in 9 at the queues and delivered 31%
 * fewer than with 16 KiB ones (tests/bench/README, overload).
 */
#define IO_READ_BUDGET	(16 * 1024)
#define IO_WRITE_IOV	64
#define IO_TLS_RECORD	16384	/* a full TLS record's payload */

struct io {
	int		 i_fd;
	int		 i_busy;	/* inside a callback (nesting depth) */
	SSL		*i_ssl;
	/*
	 * NULL after io_trim (an idle connection's empty buffers go back:
	 * 2 x 136 bytes), made again by the next read or io_output.
	 */
	struct evbuffer	*i_in, *i_out;
	struct event	*i_wtimer;	/* NULL until a write first waits */
	const struct io_cbs *i_cbs;	/* the caller's; outlives the io */
	void		*i_arg;
	uint8_t		 i_handshaking;	/* TLS accept not done */
	uint8_t		 i_read_stopped;
	uint8_t		 i_dead;	/* io_free called while busy */
	uint8_t		 i_failed;	/* an event was reported; stop */
	uint8_t		 i_write_blocked; /* waiting for the write edge */
	uint8_t		 i_read_wants_write; /* TLS: SSL_read said WANT_WRITE */
	uint8_t		 i_oom;		/* io_output could not make i_out */
	uint8_t		 i_ev_set;	/* IO_EV assigned */
	uint32_t	 i_low;		/* io_set_low_mark, clamped */
	int32_t		 i_wtimeout_ms;	/* io_set_write_timeout, clamped */
	uint64_t	 i_last_progress;
	/* WebSocket framing (io_start_ws), NULL for everyone else. */
	struct ws	*i_ws;
	struct evbuffer	*i_wsraw;	/* wire bytes read before the 101 */
};

static void	io_cb(evutil_socket_t, short, void *);

/*
 * The socket's event lives in the io's own allocation, after the struct
 * (event_assign into event_get_struct_event_size() bytes, as libevent
 * allows): one allocation per connection instead of two.
 */
#define IO_EV_OFF	((sizeof(struct io) + 7) & ~(size_t)7)
#define IO_EV(io)	((struct event *)(void *)((char *)(io) + IO_EV_OFF))

/*
 * This thread's stand-in buffer: io_input of a trimmed io (no input is
 * empty input), and what io_output hands out when it cannot make a new
 * buffer (the io then fails with "out of memory" from its own callback).
 * Emptied at every hand-out; made by the thread's first io_new, freed by
 * io_thread_done.
 */
static _Thread_local struct evbuffer *io_standin;

static struct evbuffer *
io_get_standin(void)
{
	size_t n = evbuffer_get_length(io_standin);

	if (n > 0)
		evbuffer_drain(io_standin, n);
	return io_standin;
}

void
io_thread_done(void)
{
	if (io_standin != NULL)
		evbuffer_free(io_standin);
	io_standin = NULL;
}

static size_t
io_len(const struct evbuffer *b)
{
	return b != NULL ? evbuffer_get_length(b) : 0;
}
static void	io_wtimer_cb(evutil_socket_t, short, void *);
static void	io_wtimer_del(struct io *);
static bool	io_wtimer_pending(const struct io *);

static void
io_destroy(struct io *io)
{
	if (io->i_ev_set)
		event_del(IO_EV(io));
	if (io->i_wtimer != NULL)
		event_free(io->i_wtimer);
	if (io->i_in != NULL)
		evbuffer_free(io->i_in);
	if (io->i_out != NULL)
		evbuffer_free(io->i_out);
	if (io->i_wsraw != NULL)
		evbuffer_free(io->i_wsraw);
	ws_free(io->i_ws);
	if (io->i_ssl != NULL)
		SSL_free(io->i_ssl);
	if (io->i_fd != -1)
		close(io->i_fd);
	free(io);
}

struct io *
io_new(struct event_base *base, int fd, SSL *ssl, const struct io_cbs *cbs,
    void *arg)
{
	struct io *io;

	if (io_standin == NULL && (io_standin = evbuffer_new()) == NULL)
		return NULL;
	if ((io = calloc(1, IO_EV_OFF + event_get_struct_event_size())) ==
	    NULL)
		return NULL;
	io->i_fd = -1;
	io->i_cbs = cbs;
	io->i_arg = arg;
	io->i_in = evbuffer_new();
	io->i_out = evbuffer_new();
	/*
	 * One event for both edges: an idle client carries one struct
	 * event (128 bytes) instead of two. Pausing reads takes EV_READ
	 * out of it (io_set_read), so a paused sender raises no wakeups.
	 */
	if (io->i_in == NULL || io->i_out == NULL ||
	    event_assign(IO_EV(io), base, fd,
	    EV_READ | EV_WRITE | EV_PERSIST | EV_ET, io_cb, io) == -1) {
		io_destroy(io);
		return NULL;
	}
	io->i_ev_set = 1;
	if (event_add(IO_EV(io), NULL) == -1) {
		io_destroy(io);
		return NULL;
	}
	io->i_fd = fd;
	io->i_ssl = ssl;
	if (ssl != NULL) {
		SSL_set_fd(ssl, fd);
		/* Accepted sockets serve; mesh links (client ctx) dial. */
		if (SSL_is_server(ssl))
			SSL_set_accept_state(ssl);
		else
			SSL_set_connect_state(ssl);
		SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		io->i_handshaking = 1;
	}
	return io;
}

void
io_free(struct io *io)
{
	if (io == NULL)
		return;
	if (io->i_busy) {
		io->i_dead = 1;
		event_del(IO_EV(io));
		io_wtimer_del(io);
		return;
	}
	io_destroy(io);
}

int
io_take_fd(struct io *io)
{
	int fd = io->i_fd;

	/* Out of epoll now: a closed socket leaves epoll by itself, one
	 * that is still open but not ours any more must not stay in it. */
	event_del(IO_EV(io));
	io->i_fd = -1;
	return fd;
}

struct evbuffer *
io_input(struct io *io)
{
	return io->i_in != NULL ? io->i_in : io_get_standin();
}

struct evbuffer *
io_output(struct io *io)
{
	if (io->i_out == NULL && (io->i_out = evbuffer_new()) == NULL) {
		if (!io->i_oom && io->i_ev_set && !io->i_failed) {
			io->i_oom = 1;
			event_active(IO_EV(io), EV_WRITE, 0);
		}
		return io_get_standin();
	}
	return io->i_out;
}

size_t
io_output_len(const struct io *io)
{
	return io_len(io->i_out);
}

/*
 * Give an idle connection's empty buffers back. Not while a callback
 * runs, a handshake or WebSocket framing is under way, or output waits.
 */
void
io_trim(struct io *io)
{
	if (io->i_busy || io->i_failed || io->i_handshaking ||
	    io->i_ws != NULL || io->i_wsraw != NULL || io->i_write_blocked)
		return;
	if (io->i_in != NULL && evbuffer_get_length(io->i_in) == 0) {
		evbuffer_free(io->i_in);
		io->i_in = NULL;
	}
	if (io->i_out != NULL && evbuffer_get_length(io->i_out) == 0) {
		evbuffer_free(io->i_out);
		io->i_out = NULL;
	}
}

void
io_set_write_timeout(struct io *io, int64_t ms)
{
	io->i_wtimeout_ms = ms > INT32_MAX ? INT32_MAX : (int32_t)ms;
	if (ms <= 0)
		io_wtimer_del(io);
}

void
io_set_low_mark(struct io *io, size_t bytes)
{
	io->i_low = bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)bytes;
}

int
io_start_ws(struct io *io)
{
	struct ws *ws;

	if (io->i_ws != NULL || (ws = ws_new()) == NULL)
		return -1;
	/* The 101 already in the output leaves as it is, before any frame. */
	if (io->i_out != NULL &&
	    evbuffer_add_buffer(ws_wire(ws), io->i_out) == -1) {
		ws_free(ws);
		return -1;
	}
	/* Bytes after the request head are frames: the next read decodes. */
	if (io_len(io->i_in) > 0) {
		if ((io->i_wsraw = evbuffer_new()) == NULL ||
		    evbuffer_add_buffer(io->i_wsraw, io->i_in) == -1) {
			ws_free(ws);
			return -1;
		}
		if (!io->i_read_stopped)
			event_active(IO_EV(io), EV_READ, 0);
	}
	io->i_ws = ws;
	return 0;
}

void
io_ws_close(struct io *io, uint16_t code, const char *reason)
{
	if (io->i_ws == NULL || io->i_failed || io->i_dead)
		return;
	/* What is already framed goes first; the close ends the stream. */
	if (ws_encode(io->i_ws, io->i_out, 0) == -1)
		return;
	ws_close(io->i_ws, code, reason);
	(void)ws_encode(io->i_ws, io->i_out, 1);
}

bool
io_is_ws(const struct io *io)
{
	return io->i_ws != NULL;
}

int
io_fd(const struct io *io)
{
	return io->i_fd;
}

int
io_tls_version(const struct io *io)
{
	return io->i_ssl != NULL ? SSL_version(io->i_ssl) : 0;
}

/*
 * Watch read edges (on) or only write edges. The event is re-made with
 * the new interest: libevent allows event_assign on an event that is
 * not pending, which event_del makes it, also from its own callback.
 */
static void
io_set_read(struct io *io, int on)
{
	struct event_base *base = event_get_base(IO_EV(io));

	if (io->i_fd == -1)
		return;
	event_del(IO_EV(io));
	event_assign(IO_EV(io), base, io->i_fd,
	    (on ? EV_READ : 0) | EV_WRITE | EV_PERSIST | EV_ET, io_cb, io);
	event_add(IO_EV(io), NULL);
}

void
io_pause_read(struct io *io)
{
	if (io->i_read_stopped)
		return;
	io->i_read_stopped = 1;
	io_set_read(io, 0);
}

void
io_resume_read(struct io *io)
{
	if (io->i_read_stopped) {
		io->i_read_stopped = 0;
		io_set_read(io, 1);
	}
	/* Edge-triggered: bytes that came while paused raise no new edge. */
	event_active(IO_EV(io), EV_READ, 0);
}

void
io_stop_read(struct io *io)
{
	io_pause_read(io);
}

/* Report an event once; later I/O on this io is ignored. */
static void
io_report(struct io *io, enum io_event ev, const char *detail)
{
	if (io->i_failed)
		return;
	if (ev != IO_CONNECTED)
		io->i_failed = 1;
	io->i_cbs->ic_event(io->i_arg, ev, detail);
}

static const char *
ssl_detail(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		return errno ? strerror(errno) : "tls error";
	ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

static void
io_wtimer_del(struct io *io)
{
	if (io->i_wtimer != NULL)
		event_del(io->i_wtimer);
}

static bool
io_wtimer_pending(const struct io *io)
{
	return io->i_wtimer != NULL && evtimer_pending(io->i_wtimer, NULL);
}

/*
 * The write timeout's timer is made the first time a write waits: most
 * clients never fill their socket, and an idle one should not carry it.
 * Without memory for it the connection fails (IO_WRITE_ERROR).
 */
static void
io_arm_wtimer(struct io *io)
{
	struct timeval tv;

	if (io->i_wtimeout_ms <= 0)
		return;
	if (io->i_wtimer == NULL && (io->i_wtimer = evtimer_new(
	    event_get_base(IO_EV(io)), io_wtimer_cb, io)) == NULL) {
		io_report(io, IO_WRITE_ERROR, "out of memory");
		return;
	}
	tv.tv_sec = (time_t)(io->i_wtimeout_ms / 1000);
	tv.tv_usec = (suseconds_t)((io->i_wtimeout_ms % 1000) * 1000);
	evtimer_add(io->i_wtimer, &tv);
}

bool
io_is_acme_challenge(struct io *io)
{
	return io->i_ssl != NULL && tls_ssl_is_challenge(io->i_ssl);
}

/* Drive the TLS handshake. Returns 1 when done, 0 to wait, -1 failed. */
static int
io_handshake(struct io *io)
{
	char	 buf[256];
	int	 r, e;

	ERR_clear_error();
	r = SSL_do_handshake(io->i_ssl);
	if (r == 1) {
		io->i_handshaking = 0;
		io_report(io, IO_CONNECTED, NULL);
		return 1;
	}
	e = SSL_get_error(io->i_ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0)
		io_report(io, IO_EOF, "closed during tls handshake");
	else
		io_report(io, IO_TLS_ERROR, ssl_detail(buf, sizeof(buf)));
	return -1;
}

/* Where bytes for the socket wait: the framed ones with WebSocket. */
static struct evbuffer *
io_wire(struct io *io)
{
	return io->i_ws != NULL ? ws_wire(io->i_ws) : io->i_out;
}

/* Everything not yet written: the output and what framing holds. */
static size_t
io_pending(struct io *io)
{
	size_t n = io_len(io->i_out);

	if (io->i_ws != NULL)
		n += ws_pending(io->i_ws);
	return n;
}

/*
 * Write b to the socket until it is empty (0) or the socket blocks (1).
 * -1 on an error, described in detail; *progressed is set on progress.
 */
static int
io_write_buf(struct io *io, struct evbuffer *b, int *progressed,
    char *detail, size_t dlen)
{
	struct evbuffer_iovec	 v[IO_WRITE_IOV];
	int			 n;

	while (evbuffer_get_length(b) > 0) {
		ssize_t w;

		n = evbuffer_peek(b, -1, NULL, v, IO_WRITE_IOV);
		if (n > IO_WRITE_IOV)
			n = IO_WRITE_IOV;
		if (io->i_ssl == NULL) {
			struct iovec iov[IO_WRITE_IOV];
			for (int i = 0; i < n; i++) {
				iov[i].iov_base = v[i].iov_base;
				iov[i].iov_len = v[i].iov_len;
			}
			w = writev(io->i_fd, iov, n);
			if (w < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return 1;
				snprintf(detail, dlen, "%s", strerror(errno));
				return -1;
			}
		} else {
			/*
			 * One call per record's worth: frames queued in
			 * several chains are joined (up to a full 16 KiB
			 * record) so that they go out as one record and one
			 * write, not one of each per frame; a big chain goes
			 * as it is (OpenSSL cuts it into records).
			 */
			size_t len = v[0].iov_len, all = evbuffer_get_length(b);
			void *base = v[0].iov_base;
			int r;

			if (len < IO_TLS_RECORD && n > 1) {
				len = all < IO_TLS_RECORD ? all : IO_TLS_RECORD;
				if ((base = evbuffer_pullup(b, (ev_ssize_t)len)) ==
				    NULL) {
					snprintf(detail, dlen, "out of memory");
					return -1;
				}
			}
			if (len > 65536)
				len = 65536;
			ERR_clear_error();
			r = SSL_write(io->i_ssl, base, (int)len);
			if (r <= 0) {
				int e = SSL_get_error(io->i_ssl, r);
				if (e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_WANT_READ)
					return 1;
				const char *d = ssl_detail(detail, dlen);
				if (d != detail)
					snprintf(detail, dlen, "%s", d);
				return -1;
			}
			w = r;
		}
		evbuffer_drain(b, (size_t)w);
		*progressed = 1;
	}
	return 0;
}

/* Write output until empty or the socket blocks. */
static void
io_do_write(struct io *io)
{
	char	 buf[256];
	int	 progressed = 0, r;

	while (!io->i_failed && !io->i_handshaking) {
		/* WebSocket: frame more output while the wire has room. */
		if (io->i_ws != NULL && ws_encode(io->i_ws, io->i_out, 0) == -1) {
			io_report(io, IO_WRITE_ERROR, "websocket: out of memory");
			return;
		}
		if (io_len(io_wire(io)) == 0)
			break;
		r = io_write_buf(io, io_wire(io), &progressed, buf,
		    sizeof(buf));
		if (r == -1) {
			io_report(io, IO_WRITE_ERROR, buf);
			return;
		}
		if (r == 1) {
			io->i_write_blocked = 1;
			break;
		}
	}
	if (io->i_failed)
		return;
	if (progressed)
		io->i_last_progress = util_now_ms();
	if (io_pending(io) == 0) {
		io->i_write_blocked = 0;
		io_wtimer_del(io);
	} else if (io->i_wtimeout_ms > 0 && !io_wtimer_pending(io)) {
		if (!progressed && io->i_last_progress == 0)
			io->i_last_progress = util_now_ms();
		io_arm_wtimer(io);
		if (io->i_failed)
			return;
	}
	if (progressed && io_pending(io) <= io->i_low &&
	    io->i_cbs->ic_drain != NULL)
		io->i_cbs->ic_drain(io->i_arg);
}

void
io_flush(struct io *io)
{
	if (io->i_dead || io->i_failed)
		return;
	io->i_busy++;
	if (io->i_write_blocked) {
		/* The write edge will come; make sure a timeout is armed. */
		if (io->i_wtimeout_ms > 0 && !io_wtimer_pending(io))
			io_arm_wtimer(io);
	} else
		io_do_write(io);
	io->i_busy--;
	if (io->i_dead && io->i_busy == 0)
		io_destroy(io);
}

/*
 * The WebSocket is over (st): the close frame goes out with what is
 * framed before it (best effort, one write), then the connection hears.
 */
static void
io_ws_end(struct io *io, enum ws_status st)
{
	static const enum io_event ev[] = {
		[WS_PEER_CLOSED] = IO_EOF,
		[WS_TOO_LARGE] = IO_WS_TOO_LARGE,
		[WS_TEXT] = IO_WS_TEXT,
		[WS_PROTOCOL] = IO_WS_PROTOCOL,
		[WS_NO_MEMORY] = IO_READ_ERROR,
	};
	char	 buf[256];
	int	 progressed = 0;

	if (ws_encode(io->i_ws, io->i_out, 1) == 0 && !io->i_write_blocked)
		(void)io_write_buf(io, ws_wire(io->i_ws), &progressed, buf,
		    sizeof(buf));
	io_report(io, ev[st], ws_detail(io->i_ws));
}

/* WebSocket: wire bytes in, DERP bytes into the input (*got of them). */
static enum ws_status
io_ws_recv(struct io *io, const uint8_t *p, size_t n, size_t *got)
{
	enum ws_status	 st;
	size_t		 added;

	st = ws_recv(io->i_ws, p, n, io->i_in, &added);
	*got += added;
	return st;
}

/*
 * Read until the socket is empty or the budget is spent. Reads land in a
 * buffer on the stack and only what arrived is added to the input: a
 * reserved 64 KiB chain would stay attached to an idle connection's input
 * after the read that found the socket empty (64 KiB per idle client).
 * With WebSocket the budget counts wire bytes and the input gets the
 * payload (got).
 */
static void
io_do_read(struct io *io)
{
	uint8_t		 chunk[IO_READ_CHUNK];
	size_t		 total = 0, got = 0;
	char		 buf[256];
	int		 more = 0;
	enum ws_status	 st = WS_OK;

	if (io->i_wsraw != NULL) {
		/* Frames that came with the upgrade request. */
		struct evbuffer	*raw = io->i_wsraw;
		size_t		 n = evbuffer_get_length(raw);

		io->i_wsraw = NULL;
		st = io_ws_recv(io, evbuffer_pullup(raw, -1), n, &got);
		evbuffer_free(raw);
	}
	while (st == WS_OK && !io->i_failed && !io->i_read_stopped) {
		ssize_t	 r;

		if (total >= IO_READ_BUDGET) {
			more = 1;
			break;
		}
		if (io->i_ssl == NULL) {
			r = read(io->i_fd, chunk, sizeof(chunk));
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (r <= 0) {
				int e = errno;
				/* Frames that came with the FIN count. */
				if (got > 0)
					io->i_cbs->ic_read(io->i_arg);
				if (io->i_dead || io->i_failed)
					return;
				io_report(io, r == 0 ? IO_EOF : IO_READ_ERROR,
				    r == 0 ? "peer closed" : strerror(e));
				return;
			}
		} else {
			int n, e;

			ERR_clear_error();
			n = SSL_read(io->i_ssl, chunk, (int)sizeof(chunk));
			if (n <= 0) {
				e = SSL_get_error(io->i_ssl, n);
				if (e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_WANT_WRITE) {
					io->i_read_wants_write =
					    e == SSL_ERROR_WANT_WRITE;
					break;
				}
				if (e == SSL_ERROR_ZERO_RETURN ||
				    (e == SSL_ERROR_SYSCALL &&
				    ERR_peek_error() == 0)) {
					if (got > 0)
						io->i_cbs->ic_read(io->i_arg);
					if (io->i_dead || io->i_failed)
						return;
					io_report(io, IO_EOF, "peer closed");
					return;
				}
				io_report(io, IO_TLS_ERROR,
				    ssl_detail(buf, sizeof(buf)));
				return;
			}
			r = n;
		}
		total += (size_t)r;
		if (io->i_ws != NULL) {
			st = io_ws_recv(io, chunk, (size_t)r, &got);
			continue;
		}
		if ((io->i_in == NULL && (io->i_in = evbuffer_new()) == NULL) ||
		    evbuffer_add(io->i_in, chunk, (size_t)r) == -1) {
			io_report(io, IO_READ_ERROR, "out of memory");
			return;
		}
		got += (size_t)r;
	}
	/* DERP frames that came before a close frame count, as with FIN. */
	if (got > 0 && !io->i_failed)
		io->i_cbs->ic_read(io->i_arg);
	if (st != WS_OK) {
		if (!io->i_dead && !io->i_failed)
			io_ws_end(io, st);
		return;
	}
	/* Budget spent with data left: go on after the others (see top). */
	if (more && !io->i_dead && !io->i_failed && !io->i_read_stopped)
		event_active(IO_EV(io), EV_READ, 0);
}

/*
 * Both edges of the socket. A write edge first: it ends a wait for room
 * (and finishes a handshake that waited to write); then a read edge, and
 * then the output that reading produced (replies, WebSocket pongs).
 */
static void
io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct io	*io = arg;
	int		 did_read = 0;

	(void)fd;
	io->i_busy++;
	if (io->i_oom)
		io_report(io, IO_WRITE_ERROR, "out of memory");
	if ((what & EV_WRITE) && !io->i_failed) {
		io->i_write_blocked = 0;
		if (io->i_handshaking) {
			if (io_handshake(io) == 1 && !io->i_dead &&
			    !io->i_failed)
				io_do_read(io);
			did_read = 1;
		} else if (io_pending(io) > 0)
			io_do_write(io);
		/*
		 * A TLS read can stall on a write (a key update's answer):
		 * retry it then. Only then: epoll reports a writable socket
		 * with every read edge, and a read here each time cost a
		 * read() per edge (EAGAIN).
		 */
		if (io->i_ssl != NULL && io->i_read_wants_write &&
		    !io->i_handshaking && !io->i_dead && !io->i_failed &&
		    !io->i_read_stopped) {
			io->i_read_wants_write = 0;
			io_do_read(io);
			did_read = 1;
		}
	}
	if ((what & EV_READ) && !did_read && !io->i_dead && !io->i_failed) {
		if (io->i_handshaking) {
			if (io_handshake(io) == 1 && !io->i_dead &&
			    !io->i_failed)
				io_do_read(io);
		} else
			io_do_read(io);
	}
	if (!io->i_dead && !io->i_failed && io->i_write_blocked == 0 &&
	    !io->i_handshaking && io_pending(io) > 0)
		io_do_write(io);
	io->i_busy--;
	if (io->i_dead && io->i_busy == 0)
		io_destroy(io);
}

static void
io_wtimer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct io	*io = arg;
	uint64_t	 now = util_now_ms(), idle;

	(void)fd;
	(void)what;
	if (io_pending(io) == 0 || io->i_wtimeout_ms <= 0)
		return;
	idle = now - io->i_last_progress;
	if (idle < (uint64_t)io->i_wtimeout_ms) {
		/* Progress since arming: wait out the rest. */
		struct timeval tv;
		uint64_t left = (uint64_t)io->i_wtimeout_ms - idle;
		tv.tv_sec = (time_t)(left / 1000);
		tv.tv_usec = (suseconds_t)((left % 1000) * 1000);
		evtimer_add(io->i_wtimer, &tv);
		return;
	}
	io->i_busy++;
	io_report(io, IO_WRITE_TIMEOUT, "no write progress");
	io->i_busy--;
	if (io->i_dead && io->i_busy == 0)
		io_destroy(io);
}
