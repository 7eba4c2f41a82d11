/* SPDX-License-Identifier: ISC */
/*
 * conn.c: a connection's life: accept, its state machine, its timer and
 * I/O callbacks, and the one teardown path. A connection lives on one
 * worker; other workers only touch its queues (under c_qlock) and its
 * reference count. The parts of its life are in conn_*.c (conn_int.h).
 */
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>

#include "auth.h"
#include "conn.h"
#include "conn_int.h"
#include "derpd.h"
#include "events.h"
#include "io.h"
#include "mesh_int.h"
#include "peer.h"
#include "tls.h"
#include "util.h"

static const char *const state_names[] = {
	"tls_handshake", "http_head", "http_response", "handshake",
	"auth_pending", "active", "closing", "mesh_dial", "mesh_hello",
};

static void	conn_io_read(void *);
static void	conn_io_drain(void *);
static void	conn_io_event(void *, enum io_event, const char *);
static const struct io_cbs conn_io_cbs;
static void	conn_timer_cb(struct theap_node *);

/*
 * Lines a peer can cause (one per bad connection) are limited per worker,
 * so a flood of bad connections cannot flood the log; what is held back is
 * counted and mentioned on the next line let through.
 */
#define CONN_LOG_RATE	20	/* lines per second per worker */
#define CONN_LOG_BURST	100

const char *
conn_addr(const struct conn *c, char *buf, size_t len)
{
	util_addr_format(&c->c_sa.sa, buf, len);
	return buf;
}

void
conn_log(struct conn *c, const char *fmt, ...)
{
	char		 msg[512];
	uint64_t	 held;
	va_list		 ap;

	if (!log_rate_allow(worker_lograte(c->c_w), util_now_ms(), CONN_LOG_RATE,
	    CONN_LOG_BURST, &held)) {
		STAT_INC(worker_stats(c->c_w), STAT_LOG_HELD);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (held > 0)
		log_info("conn %llu %s: %s (%llu similar lines held back)",
		    (unsigned long long)c->c_id, CONN_ADDR(c), msg,
		    (unsigned long long)held);
	else
		log_info("conn %llu %s: %s", (unsigned long long)c->c_id,
		    CONN_ADDR(c), msg);
}

int
conn_next_header(struct conn *c, struct evbuffer *in, uint8_t *type,
    uint32_t *len)
{
	uint8_t	 hdr[FRAME_HDR_LEN];
	size_t	 avail = evbuffer_get_length(in), n;

	if (c->c_discard > 0) {
		n = avail < c->c_discard ? avail : c->c_discard;
		evbuffer_drain(in, n);
		c->c_discard -= (uint32_t)n;
		if (c->c_discard > 0)
			return 0;
		avail -= n;
	}
	if (avail < FRAME_HDR_LEN)
		return 0;
	evbuffer_copyout(in, hdr, sizeof(hdr));
	frame_get_header(hdr, sizeof(hdr), type, len);
	return 1;
}

void
conn_ref(struct conn *c)
{
	__atomic_add_fetch(&c->c_refs, 1, __ATOMIC_RELAXED);
}

void
conn_unref(struct conn *c)
{
	if (__atomic_sub_fetch(&c->c_refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	conn_queue_free(c);
	conn_dcache_clear(c);
	keyset_clear(&c->c_sent);
	keyset_clear(&c->c_fwd_pairs);
	free(c->c_rl);
	free(c);
}

void
conn_set_state(struct conn *c, enum conn_state s)
{
	log_debug("conn %llu %s: %s -> %s", (unsigned long long)c->c_id,
	    CONN_ADDR(c), state_names[c->c_state], state_names[s]);
	c->c_state = s;
}

/* Arm the connection's single timer. */
void
conn_timer_set(struct conn *c, uint64_t ms)
{
	worker_timer_set(c->c_w, &c->c_timer, ms);
}

/*
 * The one teardown path (owner thread). Releases I/O at once, leaves the
 * registry, and drops the owner reference from a deferred event.
 */
void
conn_close(struct conn *c, enum close_reason r, const char *fmt, ...)
{
	struct worker	*w = c->c_w;
	char		 why[256];
	va_list		 ap;

	if (c->c_state == CONN_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* Refusals have their own rate-limited line (auth_note_reject). */
	if (r == CLOSE_EOF || r == CLOSE_HTTP_DONE || r == CLOSE_SHUTDOWN ||
	    r == CLOSE_ADMISSION_DENIED)
		log_debug("conn %llu %s: closed: %s (%s)",
		    (unsigned long long)c->c_id, CONN_ADDR(c),
		    stats_close_name(r), why);
	else if (r == CLOSE_KICKED || r == CLOSE_REVOKED ||
	    r == CLOSE_CLOSE_PEER || r == CLOSE_WATCHER_OVERFLOW)
		/* Asked for by an operator or a mesh peer: never held back. */
		log_info("conn %llu %s: closed: %s (%s)",
		    (unsigned long long)c->c_id, CONN_ADDR(c),
		    stats_close_name(r), why);
	else
		conn_log(c, "closed: %s (%s)", stats_close_name(r), why);
	stats_close(worker_stats(w), r);
	if (c->c_tls_active != -1) {
		STAT_DEC(worker_stats(w), (enum stat_id)c->c_tls_active);
		c->c_tls_active = -1;
	}
	if (c->c_state == CONN_ACTIVE && c->c_link == NULL)
		STAT_DEC(worker_stats(w), STAT_DERP_CONNECTIONS);
	conn_set_state(c, CONN_CLOSING);
	if (c->c_auth != NULL) {
		auth_cancel(c->c_auth);		/* no notify after this */
		c->c_auth = NULL;
	}
	sodium_memzero(c->c_shared, sizeof(c->c_shared));
	/*
	 * Best effort: what is already queued (the 101 and ServerKey before
	 * a bad first frame, say) still goes out. Callbacks see CLOSING.
	 */
	if (r != CLOSE_WRITE_TIMEOUT && r != CLOSE_WRITE_ERROR &&
	    r != CLOSE_TLS_ERROR) {
		/* WebSocket: a close frame (1000) ends the stream. */
		io_ws_close(c->c_io, 1000, "");
		io_flush(c->c_io);
	}
	worker_timer_remove(w, &c->c_timer);
	/* Its references to the conns it sent to (they may hold ours). */
	conn_dcache_clear(c);
	if (c->c_rl_timer != NULL)
		event_free(c->c_rl_timer);
	c->c_rl_timer = NULL;
	/*
	 * The socket is closed at reap, a slice at a time (worker.c): when
	 * thousands of clients leave at once, closing each in its own read
	 * callback would make everyone else on the worker wait for all.
	 */
	c->c_fd = io_take_fd(c->c_io);
	io_free(c->c_io);	/* frees the SSL and the buffers */
	c->c_io = NULL;
	if (c->c_preferred)
		STAT_DEC(worker_stats(w), STAT_HOME_CONNECTIONS);
	if (c->c_notideal && c->c_registered)
		STAT_DEC(worker_stats(w), STAT_NOTIDEAL_CONNECTIONS);
	if (c->c_watcher)
		STAT_DEC(worker_stats(w), STAT_WATCHERS);
	if (c->c_registered)
		events_client(&c->c_env->d_events, CLIENT_DISCONNECT, c->c_key,
		    (const struct sockaddr *)&c->c_sa, worker_id(w),
		    stats_close_name(r));
	if (c->c_registered) {
		uint8_t	(*kept)[KEY_LEN];
		size_t	 nkept;

		c->c_registered = 0;
		if (peers_remove_sent(worker_env(w)->d_peers, c->c_key, c,
		    (const uint8_t (*)[KEY_LEN])c->c_sent.ks_slot, c->c_sent.ks_cap, &kept,
		    &nkept)) {
			/* Earlier duplicates' receivers are owed one too. */
			for (size_t i = 0; i < nkept; i++)
				conn_note_sent(c, kept[i], peers_hash(
				    worker_env(w)->d_peers, kept[i]));
			free(kept);
			conn_send_peer_gone(c);
		}
	}
	conn_queue_shut(c);
	if (c->c_link != NULL) {
		/* The mesh peer drops its routes and dials again. */
		char		 both[300];
		struct conn	*pub;

		snprintf(both, sizeof(both), "%s: %s", stats_close_name(r), why);
		if ((pub = mesh_link_closed(c->c_link, c, both)) != NULL)
			conn_unref(pub);
	}
	/* Unlink from the worker and defer the owner reference drop. */
	worker_untrack(w, &c->c_node);
	STAT_DEC(worker_stats(w), STAT_CONNECTIONS);
	worker_defer(w, &c->c_reapit);
}

static void
set_sockopts(struct derpd_conf *conf, int fd)
{
	int	 one = 1, v;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (conf->dc_tcp_keepalive_ms > 0) {
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		v = (int)(conf->dc_tcp_keepalive_ms / 1000);
		if (v < 1)
			v = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof(v));
		v = 15;
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &v, sizeof(v));
		v = 9;
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &v, sizeof(v));
	}
	if (conf->dc_tcp_user_timeout_ms > 0) {
		unsigned int ut = (unsigned int)conf->dc_tcp_user_timeout_ms;
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut));
	}
}

struct conn *
conn_alloc(struct worker *w, const struct sockaddr *sa, socklen_t salen)
{
	struct derpd	*env = worker_env(w);
	struct conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->c_id = __atomic_add_fetch(&env->d_next_conn_id, 1,
	    __ATOMIC_RELAXED);
	c->c_w = w;
	c->c_env = env;
	c->c_fd = -1;
	c->c_refs = 1;		/* the owner's */
	if (salen > sizeof(c->c_sa))
		salen = sizeof(c->c_sa);
	memcpy(&c->c_sa, sa, salen);
	c->c_connected_ms = util_now_ms();
	c->c_since = (int64_t)time(NULL);
	c->c_nothere_tokens = 3;
	c->c_nothere_ms = c->c_connected_ms;
	c->c_resp_reason = CLOSE_HTTP_DONE;
	c->c_tls_active = -1;
	c->c_keepalive_ms = DERPD_KEEPALIVE_MS +
	    randombytes_uniform(DERPD_KEEPALIVE_JITTER_MS);
	conn_queue_init(c);
	return c;
}

int
conn_attach(struct conn *c, int fd, SSL *ssl)
{
	struct worker	*w = c->c_w;
	uint64_t	 held;

	set_sockopts(c->c_env->d_conf, fd);
	evutil_make_socket_nonblocking(fd);
	if ((c->c_io = io_new(worker_base(w), fd, ssl, &conn_io_cbs, c)) == NULL) {
		SSL_free(ssl);
		goto fail;
	}
	if (worker_timer_add(w, &c->c_timer) == -1) {
		io_free(c->c_io);
		goto fail_nofd;
	}
	conn_timer_set(c, (uint64_t)c->c_env->d_conf->dc_handshake_timeout_ms);
	worker_track(w, &c->c_node);
	STAT_INC(worker_stats(w), STAT_CONNECTIONS);
	return 0;
fail:
	close(fd);
fail_nofd:
	if (log_rate_allow(worker_lograte(w), util_now_ms(), CONN_LOG_RATE,
	    CONN_LOG_BURST, &held))
		log_warnx("conn %s: cannot set up connection", CONN_ADDR(c));
	else
		STAT_INC(worker_stats(w), STAT_LOG_HELD);
	stats_close(worker_stats(w), CLOSE_NO_MEMORY);
	conn_queue_free(c);
	free(c);
	return -1;
}

void
conn_accept(struct worker *w, int fd, const struct sockaddr *sa,
    socklen_t salen, int port80)
{
	struct derpd	*env = worker_env(w);
	struct conn	*c;
	SSL		*ssl = NULL;
	int		 tls = env->d_conf->dc_tls && !port80;

	/* derp_accepts counts upgrades (conn_start_derp), as derper. */
	STAT_INC(worker_stats(w), port80 ? STAT_TCP_ACCEPTS_80 :
	    STAT_TCP_ACCEPTS);
	if ((c = conn_alloc(w, sa, salen)) == NULL) {
		log_warnx("accept: out of memory");
		stats_close(worker_stats(w), CLOSE_NO_MEMORY);
		close(fd);
		return;
	}
	c->c_tls = tls;
	c->c_port80 = port80;
	if (tls && (ssl = tls_ssl_new(env->d_tls)) == NULL) {
		log_ssl_errors("SSL_new");
		close(fd);
		stats_close(worker_stats(w), CLOSE_NO_MEMORY);
		conn_queue_free(c);
		free(c);
		return;
	}
	c->c_state = tls ? CONN_TLS_HANDSHAKE : CONN_HTTP_HEAD;
	if (conn_attach(c, fd, ssl) == -1)
		return;
	log_debug("conn %llu %s: accepted%s", (unsigned long long)c->c_id,
	    CONN_ADDR(c), tls ? " (tls)" : "");
}

static void
conn_handle_input(struct conn *c)
{
	if (c->c_link != NULL) {
		conn_mesh_read(c);
		return;
	}
	if (c->c_state == CONN_HTTP_HEAD) {
		conn_read_http(c);
		if (c->c_state != CONN_HANDSHAKE)
			return;
	}
	if (c->c_state == CONN_HANDSHAKE) {
		if (conn_read_client_info(c) != 0)
			return;
	}
	if (c->c_state == CONN_ACTIVE)
		conn_read_frames(c);
}

static void
conn_io_read(void *arg)
{
	conn_handle_input(arg);
}

static void
conn_io_drain(void *arg)
{
	struct conn *c = arg;

	if (c->c_state == CONN_HTTP_RESPONSE) {
		if (io_output_len(c->c_io) == 0)
			conn_close(c, c->c_resp_reason, "response sent");
		return;
	}
	/* Drained below the low mark: refill, unless this is a refill. */
	if (c->c_state == CONN_ACTIVE && !c->c_flushing)
		conn_flush(c, 0);
}

static void
conn_io_event(void *arg, enum io_event ev, const char *detail)
{
	struct conn *c = arg;

	switch (ev) {
	case IO_CONNECTED:
		if (c->c_state == CONN_TLS_HANDSHAKE && io_is_acme_challenge(
		    c->c_io))
			conn_close(c, CLOSE_ACME_CHALLENGE, "TLS-ALPN-01 "
			    "validation handshake done");
		else if (c->c_state == CONN_TLS_HANDSHAKE)
			conn_set_state(c, CONN_HTTP_HEAD);
		else if (c->c_link != NULL)
			io_flush(c->c_io);	/* our upgrade request */
		break;
	case IO_EOF:
		conn_close(c, CLOSE_EOF, "%s", detail);
		break;
	case IO_READ_ERROR:
		conn_close(c, CLOSE_READ_ERROR, "%s", detail);
		break;
	case IO_WRITE_ERROR:
		conn_close(c, CLOSE_WRITE_ERROR, "%s", detail);
		break;
	case IO_TLS_ERROR:
		conn_close(c, CLOSE_TLS_ERROR, "%s", detail);
		break;
	case IO_WRITE_TIMEOUT:
		STAT_INC(worker_stats(c->c_w), STAT_WRITE_TIMEOUTS);
		conn_close(c, CLOSE_WRITE_TIMEOUT, "no write progress for the "
		    "write timeout");
		break;
	case IO_WS_TOO_LARGE:
		conn_close(c, CLOSE_WS_TOO_LARGE, "%s", detail);
		break;
	case IO_WS_TEXT:
		conn_close(c, CLOSE_WS_TEXT, "%s", detail);
		break;
	case IO_WS_PROTOCOL:
		conn_close(c, CLOSE_WS_PROTOCOL, "%s", detail);
		break;
	}
}

static const struct io_cbs conn_io_cbs = {
	.ic_read = conn_io_read,
	.ic_drain = conn_io_drain,
	.ic_event = conn_io_event,
};

#define RTT_SAMPLE_MS	10000	/* derper's statsInterval */
#define CONN_SETTLE_MS	1000	/* ACTIVE: the first tick (io_trim) */

/* derper's rule: WebSocket is not TCP; TLS is, under the TLS. */
void
conn_rtt_start(struct conn *c)
{
	struct tcp_info	 ti;
	socklen_t	 len = sizeof(ti);

	c->c_ka_due_ms = util_now_ms() + c->c_keepalive_ms;
	c->c_rtt_due_ms = 0;
	if (io_is_ws(c->c_io))
		stats_add(&worker_stats(c->c_w)->st_tcp_rtt[RTT_NON_TCP], 1);
	else if (getsockopt(io_fd(c->c_io), IPPROTO_TCP, TCP_INFO, &ti,
	    &len) == -1)
		stats_add(&worker_stats(c->c_w)->st_tcp_rtt[RTT_ERROR], 1);
	else
		c->c_rtt_due_ms = util_now_ms() + RTT_SAMPLE_MS;
	/*
	 * The first tick comes early: it gives the buffers the handshake
	 * used back (io_trim) from a client that then sits idle, as most
	 * do. conn_active_timer finds nothing due and sleeps till the next.
	 */
	conn_timer_set(c, CONN_SETTLE_MS);
}

/*
 * An active client's one timer: a keepalive every c_keepalive_ms and,
 * between them, derper's TCP RTT sample every 10 seconds.
 */
static void
conn_active_timer(struct conn *c)
{
	uint64_t	 now = util_now_ms(), next;
	uint8_t		 ka[FRAME_HDR_LEN];

	if (c->c_rtt_due_ms != 0 && now >= c->c_rtt_due_ms) {
		struct tcp_info	 ti;
		socklen_t	 len = sizeof(ti);

		if (getsockopt(io_fd(c->c_io), IPPROTO_TCP, TCP_INFO, &ti,
		    &len) == 0)
			stats_tcp_rtt(worker_stats(c->c_w), ti.tcpi_rtt);
		c->c_rtt_due_ms = now + RTT_SAMPLE_MS;
	}
	if (now >= c->c_ka_due_ms) {
		if (conn_out_has_room(c)) {
			evbuffer_add(io_output(c->c_io), ka,
			    frame_build_keepalive(ka));
			stats_observe(worker_stats(c->c_w),
			    HIST_BUFFERED_WRITE_FRAMES, 1);
			io_flush(c->c_io);
			/* A failed write closed c and freed the timer. */
			if (c->c_state != CONN_ACTIVE)
				return;
		}
		c->c_ka_due_ms = now + c->c_keepalive_ms;
	}
	next = c->c_ka_due_ms;
	if (c->c_rtt_due_ms != 0 && c->c_rtt_due_ms < next)
		next = c->c_rtt_due_ms;
	conn_timer_set(c, next > now ? next - now : 1);
	/* Empty buffers go back between ticks; the next bytes make them. */
	io_trim(c->c_io);
}

static void
conn_timer_cb(struct theap_node *t)
{
	struct conn	*c = CONN_OF(t, c_timer);

	if (c->c_link != NULL) {
		if (c->c_state != CONN_CLOSING)
			conn_mesh_timer(c);
		return;
	}
	switch (c->c_state) {
	case CONN_TLS_HANDSHAKE:
	case CONN_HTTP_HEAD:
		conn_close(c, CLOSE_HEAD_TIMEOUT, "no complete request head "
		    "within the handshake timeout");
		break;
	case CONN_HANDSHAKE:
		conn_close(c, CLOSE_HANDSHAKE_TIMEOUT, "no ClientInfo within "
		    "the handshake timeout");
		break;
	case CONN_AUTH_PENDING:
		/* A verdict that arrived but was not acted on yet wins. */
		conn_auth_poll(c);
		if (c->c_state != CONN_AUTH_PENDING)
			break;
		auth_note_reject(c->c_env->d_auth, AUTH_TIMEOUT,
		    (const struct sockaddr *)&c->c_sa, c->c_key);
		conn_close(c, CLOSE_ADMISSION_DENIED, "admission check took "
		    "too long");
		break;
	case CONN_HTTP_RESPONSE:
		conn_close(c, CLOSE_WRITE_TIMEOUT, "response not taken");
		break;
	case CONN_ACTIVE:
		conn_active_timer(c);
		break;
	case CONN_CLOSING:
	case CONN_MESH_DIAL:
	case CONN_MESH_HELLO:
		break;
	}
}

/* Worker hooks (the worker's thread, except drop). */
static void
wo_run(struct worker_item *it)
{
	struct conn *c = CONN_OF(it, c_item);

	conn_flush(c, 1);
	conn_unref(c);
}

static void
wo_drop(struct worker_item *it)
{
	conn_unref(CONN_OF(it, c_item));
}

static void
wo_reap(struct worker_item *it)
{
	struct conn *c = CONN_OF(it, c_reapit);

	if (c->c_fd != -1) {
		close(c->c_fd);
		c->c_fd = -1;
	}
	conn_unref(c);
}

static void
wo_shutdown(struct worker *w)
{
	struct worker_node *n;

	while ((n = worker_first(w)) != NULL)
		conn_close(CONN_OF(n, c_node), CLOSE_SHUTDOWN, "shutting down");
}

const struct worker_ops conn_worker_ops = {
	.wo_accept = conn_accept,
	.wo_run = wo_run,
	.wo_drop = wo_drop,
	.wo_reap = wo_reap,
	.wo_shutdown = wo_shutdown,
	.wo_tick = conn_reverify_all,
	.wo_timer = conn_timer_cb,
};
