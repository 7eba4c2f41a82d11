/* SPDX-License-Identifier: ISC */
/*
 * conn_mesh.c: a mesh link, the connection this server opens to a mesh
 * peer (mesh.c decides when). It speaks the client side of DERP: the HTTP
 * upgrade, ServerKey, ClientInfo with the mesh key, WatchConns, ServerInfo;
 * then it turns PeerPresent and PeerGone into routes (mesh.c) and carries
 * ForwardPacket frames queued by any worker (mesh_forward). It is a
 * struct conn: the queues, the flush, the timer and the one teardown path
 * are the ones every connection uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>

#include "conn_int.h"
#include "derpd.h"
#include "frame.h"
#include "http.h"
#include "io.h"
#include "keys.h"
#include "mesh_int.h"
#include "util.h"

#define LINK_HEAD_MAX		8192	/* the peer's HTTP response head */
#define LINK_SMALL_FRAME_MAX	1024	/* PeerPresent, PeerGone, Ping */
#define LINK_SERVERINFO_MAX	4096	/* {"version":2} and a few fields */
/* The server sends KeepAlive every 60 s; two missed ones end the link. */
#define LINK_IDLE_MS		(2 * DERPD_KEEPALIVE_MS + 5000)
#define LINK_TICK_MS		15000
#define LINK_QUEUE_DEPTH	1024	/* packets, per link */

struct conn *
conn_mesh_dial(struct mesh_peer *mp, int fd, const struct sockaddr *sa,
    socklen_t salen, SSL *ssl)
{
	struct conn	*c;

	if ((c = conn_alloc(mp->mp_w, sa, salen)) == NULL) {
		stats_close(worker_stats(mp->mp_w), CLOSE_NO_MEMORY);
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	c->c_link = mp;
	c->c_mesh = 1;		/* never re-verified, never rate limited */
	/* Many clients' packets share a link: a deeper queue than a client's. */
	if (pktq_init_big(&c->c_dataq, LINK_QUEUE_DEPTH) == -1 ||
	    pktq_init_big(&c->c_discoq, LINK_QUEUE_DEPTH / 4) == -1) {
		stats_close(worker_stats(mp->mp_w), CLOSE_NO_MEMORY);
		conn_queue_free(c);
		free(c);
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	c->c_tls = ssl != NULL;
	c->c_state = CONN_MESH_DIAL;
	/* Queued now; written once the connect (and TLS) completes. */
	if (conn_attach(c, fd, ssl) == -1)
		return NULL;
	evbuffer_add_printf(io_output(c->c_io), "GET /derp HTTP/1.1\r\n"
	    "Host: %s\r\nUser-Agent: derpd/%s\r\nUpgrade: DERP\r\n"
	    "Connection: Upgrade\r\n\r\n", mp->mp_t.mt_host, DERPD_VERSION);
	c->c_last_rx_ms = util_now_ms();
	conn_timer_set(c, (uint64_t)c->c_env->d_conf->dc_handshake_timeout_ms);
	return c;
}

/* The peer's answer to the upgrade: 0 done, 1 more needed (or closed). */
static int
link_read_head(struct conn *c)
{
	struct evbuffer		*in = io_input(c->c_io);
	struct evbuffer_ptr	 end;
	char			 line[64], safe[64];
	ev_ssize_t		 got;

	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos == -1) {
		if (evbuffer_get_length(in) > LINK_HEAD_MAX)
			conn_close(c, CLOSE_MESH_HANDSHAKE, "response head "
			    "longer than %d bytes", LINK_HEAD_MAX);
		return 1;
	}
	got = evbuffer_copyout(in, line, sizeof(line) - 1);
	line[got < 0 ? 0 : got] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (http_parse_status(line, strlen(line)) != 101) {
		conn_close(c, CLOSE_MESH_HANDSHAKE, "upgrade refused: \"%s\"",
		    util_log_safe(line, safe, sizeof(safe)));
		return 1;
	}
	evbuffer_drain(in, (size_t)end.pos + 4);
	conn_set_state(c, CONN_MESH_HELLO);
	return 0;
}

/* ServerKey in: ClientInfo (mesh key) and WatchConns out. */
static void
link_server_key(struct conn *c, const uint8_t *p, uint32_t len)
{
	struct derpd	*env = c->c_env;
	char		 json[128], hex[65];
	uint8_t		 buf[FRAME_HDR_LEN + FRAME_CLIENTINFO_MIN +
			    FRAME_BOX_MAC_LEN + sizeof(json)];
	uint8_t		*q = buf + FRAME_HDR_LEN;
	size_t		 jl;

	if (len < FRAME_SERVERKEY_LEN ||
	    memcmp(p, FRAME_MAGIC, FRAME_MAGIC_LEN) != 0) {
		conn_close(c, CLOSE_MESH_HANDSHAKE, "bad ServerKey frame");
		return;
	}
	memcpy(c->c_key, p + FRAME_MAGIC_LEN, KEY_LEN);
	if (mesh_link_server_key(c->c_link, c->c_key)) {
		conn_close(c, CLOSE_MESH_SELF, "the peer is this server");
		return;
	}
	if (crypto_box_beforenm(c->c_shared, c->c_key, env->d_key->sk_priv) !=
	    0) {
		conn_close(c, CLOSE_MESH_HANDSHAKE, "weak server key");
		return;
	}
	util_hex_encode(env->d_mesh, 32, hex);
	jl = (size_t)snprintf(json, sizeof(json),
	    "{\"version\":%d,\"meshKey\":\"%s\"}", FRAME_PROTOCOL_VERSION, hex);
	sodium_memzero(hex, sizeof(hex));
	memcpy(q, env->d_key->sk_pub, KEY_LEN);
	randombytes_buf(q + KEY_LEN, FRAME_NONCE_LEN);
	crypto_box_easy_afternm(q + FRAME_CLIENTINFO_MIN, (uint8_t *)json, jl,
	    q + KEY_LEN, c->c_shared);
	sodium_memzero(json, sizeof(json));
	frame_put_header(buf, FRAME_CLIENT_INFO,
	    (uint32_t)(FRAME_CLIENTINFO_MIN + FRAME_BOX_MAC_LEN + jl));
	evbuffer_add(io_output(c->c_io), buf, FRAME_HDR_LEN +
	    FRAME_CLIENTINFO_MIN + FRAME_BOX_MAC_LEN + jl);
	/* Pipelined, as Go's mesh client does. */
	frame_put_header(buf, FRAME_WATCH_CONNS, 0);
	evbuffer_add(io_output(c->c_io), buf, FRAME_HDR_LEN);
	io_flush(c->c_io);
}

/* ServerInfo in: the link is up. */
static void
link_server_info(struct conn *c, const uint8_t *p, uint32_t len)
{
	uint8_t	 plain[LINK_SERVERINFO_MAX];

	if (len < FRAME_NONCE_LEN + FRAME_BOX_MAC_LEN ||
	    crypto_box_open_easy_afternm(plain, p + FRAME_NONCE_LEN,
	    len - FRAME_NONCE_LEN, p, c->c_shared) != 0) {
		conn_close(c, CLOSE_MESH_HANDSHAKE, "ServerInfo does not open "
		    "(is the mesh key the same on both sides?)");
		return;
	}
	sodium_memzero(c->c_shared, sizeof(c->c_shared));
	conn_set_state(c, CONN_ACTIVE);
	io_set_write_timeout(c->c_io, DERPD_MESH_WRITE_TIMEOUT_MS);
	io_set_low_mark(c->c_io, DERPD_OUT_HIGH_WATER / 4);
	conn_timer_set(c, LINK_TICK_MS);
	conn_ref(c);		/* the peer's published reference */
	mesh_link_up(c->c_link, c);
}

/* One complete small frame on a link. */
static void
link_frame(struct conn *c, uint8_t type, const uint8_t *p, uint32_t len)
{
	uint8_t	 b[FRAME_HDR_LEN + 8];

	switch (type) {
	case FRAME_PEER_PRESENT:
		if (len < KEY_LEN)
			break;
		mesh_link_present(c->c_link, p);
		break;
	case FRAME_PEER_GONE:
		if (len < KEY_LEN)
			break;
		/* NotHere answers a disco packet: not a route change. */
		if (len > KEY_LEN && p[KEY_LEN] == PEER_GONE_NOT_HERE)
			break;
		mesh_link_gone(c->c_link, p);
		break;
	case FRAME_PING:
		if (len < FRAME_PING_MIN || !conn_out_has_room(c))
			break;
		evbuffer_add(io_output(c->c_io), b, frame_build_pong(b, p));
		io_flush(c->c_io);
		break;
	default:
		break;
	}
}

static int
link_frame_is_small(uint8_t type)
{
	return type == FRAME_PEER_PRESENT || type == FRAME_PEER_GONE ||
	    type == FRAME_PING || type == FRAME_SERVER_KEY ||
	    type == FRAME_SERVER_INFO;
}

void
conn_mesh_read(struct conn *c)
{
	struct evbuffer	*in = io_input(c->c_io);
	uint8_t		 type, *p;
	uint32_t	 len, max;
	size_t		 avail;

	c->c_last_rx_ms = util_now_ms();
	if (c->c_state == CONN_MESH_DIAL && link_read_head(c) != 0)
		return;
	while (c->c_state == CONN_MESH_HELLO || c->c_state == CONN_ACTIVE) {
		if (!conn_next_header(c, in, &type, &len))
			return;
		avail = evbuffer_get_length(in);
		if (c->c_state == CONN_MESH_HELLO) {
			uint8_t want = util_is_zero(c->c_key, KEY_LEN) ?
			    FRAME_SERVER_KEY : FRAME_SERVER_INFO;
			if (type != want) {
				conn_close(c, CLOSE_MESH_HANDSHAKE, "frame 0x%02x "
				    "where %s was due", type, want ==
				    FRAME_SERVER_KEY ? "ServerKey" : "ServerInfo");
				return;
			}
		}
		if (!link_frame_is_small(type)) {
			/* Packets for our own key, keepalives, the rest. */
			evbuffer_drain(in, FRAME_HDR_LEN);
			c->c_discard = len;
			if (type != FRAME_KEEP_ALIVE && type != FRAME_PONG &&
			    type != FRAME_HEALTH && type != FRAME_RESTARTING &&
			    type != FRAME_RECV_PACKET)
				STAT_INC(worker_stats(c->c_w),
				    STAT_UNKNOWN_FRAMES);
			continue;
		}
		max = type == FRAME_SERVER_INFO ? LINK_SERVERINFO_MAX :
		    LINK_SMALL_FRAME_MAX;
		if (len > max) {
			conn_close(c, CLOSE_BAD_FRAME, "frame 0x%02x length %u "
			    "from a mesh peer", type, len);
			return;
		}
		if (avail < FRAME_HDR_LEN + (size_t)len)
			return;
		if ((p = evbuffer_pullup(in, FRAME_HDR_LEN + (ev_ssize_t)len)) ==
		    NULL) {
			conn_close(c, CLOSE_NO_MEMORY, "mesh frame");
			return;
		}
		p += FRAME_HDR_LEN;
		if (type == FRAME_SERVER_KEY) {
			if (c->c_state != CONN_MESH_HELLO) {
				evbuffer_drain(in, FRAME_HDR_LEN + (size_t)len);
				continue;
			}
			link_server_key(c, p, len);
		} else if (type == FRAME_SERVER_INFO) {
			if (c->c_state == CONN_MESH_HELLO)
				link_server_info(c, p, len);
		} else
			link_frame(c, type, p, len);
		if (c->c_state == CONN_CLOSING)
			return;
		evbuffer_drain(in, FRAME_HDR_LEN + (size_t)len);
	}
}

/* The link's timer: handshake limit, then the idle check. */
void
conn_mesh_timer(struct conn *c)
{
	uint64_t idle;

	if (c->c_state != CONN_ACTIVE) {
		conn_close(c, CLOSE_HANDSHAKE_TIMEOUT, "mesh handshake not "
		    "done within the handshake timeout");
		return;
	}
	idle = util_now_ms() - c->c_last_rx_ms;
	if (idle > LINK_IDLE_MS) {
		conn_close(c, CLOSE_MESH_IDLE, "nothing from the peer for %llu "
		    "ms", (unsigned long long)idle);
		return;
	}
	conn_timer_set(c, LINK_TICK_MS);
}

void
mesh_forward(struct worker *from, void *fwd, const uint8_t *src,
    const uint8_t *dst, struct evbuffer *in, uint32_t plen, int disco)
{
	struct mesh_peer	*mp = fwd;
	struct conn		*l;
	struct pkt		*p;

	pthread_mutex_lock(&mp->mp_lock);
	if ((l = mp->mp_link) != NULL)
		conn_ref(l);
	pthread_mutex_unlock(&mp->mp_lock);
	if (l == NULL) {
		evbuffer_drain(in, plen);
		stats_drop(worker_stats(from), DROP_MESH_DOWN, disco, plen);
		__atomic_add_fetch(&mp->mp_drops, 1, __ATOMIC_RELAXED);
		return;
	}
	if ((p = pkt_new_fwd(plen)) == NULL) {
		evbuffer_drain(in, plen);
		stats_drop(worker_stats(from), DROP_NO_MEMORY, disco, plen);
		conn_unref(l);
		return;
	}
	frame_put_header(p->p_frame, FRAME_FORWARD_PACKET, plen + 2 * KEY_LEN);
	memcpy(p->p_frame + FRAME_HDR_LEN, src, KEY_LEN);
	memcpy(p->p_frame + FRAME_HDR_LEN + KEY_LEN, dst, KEY_LEN);
	evbuffer_remove(in, p->p_frame + FRAME_HDR_LEN + 2 * KEY_LEN, plen);
	p->p_disco = (uint8_t)disco;
	STAT_INC(worker_stats(from), STAT_PACKETS_FORWARDED_OUT);
	__atomic_add_fetch(&mp->mp_pkts_out, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&mp->mp_bytes_out, plen, __ATOMIC_RELAXED);
	conn_enqueue_pkt(from, l, p);
	conn_unref(l);
}
