/* SPDX-License-Identifier: ISC */
/*
 * conn_derp.c: the DERP side of a connection: handshake (ClientInfo,
 * ServerInfo), frames, relaying, NotHere, PeerGone, the registry hooks
 * and the watcher snapshot.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>

#include "auth.h"
#include "conn.h"
#include "conn_int.h"
#include "derpd.h"
#include "events.h"
#include "frame.h"
#include "http.h"
#include "io.h"
#include "keys.h"
#include "mesh.h"
#include "peer.h"
#include "util.h"

/* Registry hooks. */
static void
ops_ref(void *obj)
{
	conn_ref(obj);
}

static void
ops_unref(void *obj)
{
	conn_unref(obj);
}

/* PeerPresent for c into buf (CTL_FRAME_MAX); returns its length. */
static size_t
conn_build_present(const struct conn *c, uint8_t *buf)
{
	uint8_t flags = 0;

	if (c->c_mesh)
		flags |= PEER_PRESENT_MESH;
	if (c->c_prober)
		flags |= PEER_PRESENT_PROBER;
	if (c->c_notideal)
		flags |= PEER_PRESENT_NOT_IDEAL;
	if (flags == 0)
		flags = PEER_PRESENT_REGULAR;
	return frame_build_peer_present(buf, c->c_key,
	    (const struct sockaddr *)&c->c_sa, flags);
}

static void
ops_present(void *watcher, void *obj)
{
	uint8_t	 buf[CTL_FRAME_MAX];

	conn_enqueue_ctl(NULL, watcher, buf, conn_build_present(obj, buf));
}

static void
ops_gone(void *watcher, const uint8_t key[KEY_LEN])
{
	uint8_t	 buf[CTL_FRAME_MAX];
	size_t	 n;

	n = frame_build_peer_gone(buf, key, PEER_GONE_DISCONNECTED);
	conn_enqueue_ctl(NULL, watcher, buf, n);
}

static void
ops_set_dup(void *obj, bool dup)
{
	struct conn *c = obj;

	__atomic_store_n(&c->c_dup, dup ? 1 : 0, __ATOMIC_RELAXED);
}

static void
ops_kick(void *obj)
{
	conn_kick(obj, CLOSE_CLOSE_PEER);
}

const struct peers_ops conn_peers_ops = {
	.po_ref = ops_ref,
	.po_unref = ops_unref,
	.po_present = ops_present,
	.po_gone = ops_gone,
	.po_set_dup = ops_set_dup,
	.po_kick = ops_kick,
};

/* Remember that c delivered to key; for PeerGone when c leaves. */
void
conn_note_sent(struct conn *c, const uint8_t key[KEY_LEN], uint64_t h)
{
	/*
	 * Out of memory: that peer gets no PeerGone from us (harmless).
	 * The registry's seed: h is the hash its lookup of key made.
	 */
	(void)keyset_add_h(&c->c_sent, peers_seed(c->c_env->d_peers), key, h);
}

void
conn_peer_gone_to(struct worker *from, const uint8_t key[KEY_LEN],
    const uint8_t (*to)[KEY_LEN], size_t n)
{
	struct derpd	*env = worker_env(from);
	uint8_t		 buf[CTL_FRAME_MAX];
	size_t		 len;
	void		*obj;

	len = frame_build_peer_gone(buf, key, PEER_GONE_DISCONNECTED);
	for (size_t i = 0; i < n; i++) {
		if (util_is_zero(to[i], KEY_LEN))
			continue;
		if (peers_lookup(env->d_peers, to[i], &obj) != PEERS_FOUND)
			continue;
		conn_enqueue_ctl(from, obj, buf, len);
		STAT_INC(worker_stats(from), STAT_PEER_GONE_DISCONNECTED);
		conn_unref(obj);
	}
}

/* c's key left: tell everyone it delivered to (PeerGone Disconnected). */
void
conn_send_peer_gone(struct conn *c)
{
	conn_peer_gone_to(c->c_w, c->c_key,
	    (const uint8_t (*)[KEY_LEN])c->c_sent.ks_slot, c->c_sent.ks_cap);
}

/*
 * A mesh peer delivered a packet from src (homed on another node) to dst:
 * dst is owed PeerGone when src leaves the region. Each pair is noted once
 * per mesh conn; past the bound, new pairs are not noted (their receivers
 * then learn of src's departure when they next send to it).
 */
#define FWD_PAIRS_MAX	(256 * 1024)
static void
conn_note_forwarded(struct conn *c, const uint8_t src[KEY_LEN],
    const uint8_t dst[KEY_LEN])
{
	uint8_t	 pair[2 * KEY_LEN], id[KEY_LEN];

	memcpy(pair, src, KEY_LEN);
	memcpy(pair + KEY_LEN, dst, KEY_LEN);
	crypto_generichash(id, sizeof(id), pair, sizeof(pair), NULL, 0);
	if (keyset_has(&c->c_fwd_pairs, c->c_env->d_hash_seed, id) ||
	    c->c_fwd_pairs.ks_n >= FWD_PAIRS_MAX)
		return;
	/* Not known yet (PeerPresent still on its way): try the next one. */
	if (peers_note_delivered(c->c_env->d_peers, src, dst))
		(void)keyset_add(&c->c_fwd_pairs, c->c_env->d_hash_seed, id);
}

/* Upgrade accepted: 101 (unless fast start) and ServerKey, one write. */
void
conn_start_derp(struct conn *c, const struct http_req *req)
{
	struct evbuffer	*out = io_output(c->c_io);
	uint8_t		 sk[FRAME_HDR_LEN + FRAME_SERVERKEY_LEN];
	char		 hex[65];
	int		 fast = strcmp(req->hr_fast_start, "1") == 0;

	/* derper's derp_accepts: every upgrade, raw or WebSocket. */
	STAT_INC(worker_stats(c->c_w), STAT_ACCEPTS);
	c->c_notideal = req->hr_ideal_node[0] != '\0';
	if (!fast) {
		util_hex_encode(c->c_env->d_key->sk_pub, 32, hex);
		evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\n"
		    "Upgrade: DERP\r\nConnection: Upgrade\r\n"
		    "Derp-Version: 2\r\nDerp-Public-Key: %s\r\n\r\n", hex);
	}
	frame_build_server_key(sk, c->c_env->d_key->sk_pub);
	evbuffer_add(out, sk, sizeof(sk));
	conn_set_state(c, CONN_HANDSHAKE);
	conn_timer_set(c, (uint64_t)c->c_env->d_conf->dc_handshake_timeout_ms);
}

/* Seal and send ServerInfo {"version":2} with the precomputed key. */
static int
conn_send_server_info(struct conn *c, const uint8_t shared[32])
{
	static const char	 json[] = "{\"version\":2}";
	uint8_t			 buf[FRAME_HDR_LEN + FRAME_NONCE_LEN +
				    FRAME_BOX_MAC_LEN + sizeof(json) - 1];
	uint8_t			*nonce = buf + FRAME_HDR_LEN;

	frame_put_header(buf, FRAME_SERVER_INFO,
	    (uint32_t)(sizeof(buf) - FRAME_HDR_LEN));
	randombytes_buf(nonce, FRAME_NONCE_LEN);
	if (crypto_box_easy_afternm(nonce + FRAME_NONCE_LEN,
	    (const uint8_t *)json, sizeof(json) - 1, nonce, shared) != 0)
		return -1;
	return evbuffer_add(io_output(c->c_io), buf,
	    sizeof(buf));
}

/* Returns 0 when handled (state may be CLOSING), 1 when more is needed. */
int
conn_read_client_info(struct conn *c)
{
	struct evbuffer		*in = io_input(c->c_io);
	struct derpd		*env = c->c_env;
	uint8_t			 hdr[FRAME_HDR_LEN], type, shared[32];
	uint8_t			*p, *plain;
	uint32_t		 len;
	size_t			 mlen;
	struct clientinfo	 ci;
	const char		*why = NULL;

	if (evbuffer_copyout(in, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr))
		return 1;
	frame_get_header(hdr, sizeof(hdr), &type, &len);
	if (type != FRAME_CLIENT_INFO) {
		conn_close(c, CLOSE_BAD_FIRST_FRAME, "first frame type 0x%02x "
		    "is not ClientInfo", type);
		return 0;
	}
	if (len < FRAME_CLIENTINFO_MIN + FRAME_BOX_MAC_LEN ||
	    len > FRAME_CLIENTINFO_MAX) {
		conn_close(c, CLOSE_BAD_CLIENT_INFO, "ClientInfo length %u "
		    "out of range", len);
		return 0;
	}
	if (evbuffer_get_length(in) < FRAME_HDR_LEN + (size_t)len)
		return 1;
	p = evbuffer_pullup(in, FRAME_HDR_LEN + (ev_ssize_t)len);
	if (p == NULL) {
		conn_close(c, CLOSE_NO_MEMORY, "ClientInfo");
		return 0;
	}
	p += FRAME_HDR_LEN;
	if (util_is_zero(p, KEY_LEN)) {
		conn_close(c, CLOSE_BAD_CLIENT_INFO, "all-zero client key");
		return 0;
	}
	/* One X25519 per client: the shared key serves open and seal. */
	if (crypto_box_beforenm(shared, p, env->d_key->sk_priv) != 0) {
		conn_close(c, CLOSE_BAD_CLIENT_INFO, "weak client key");
		return 0;
	}
	mlen = len - FRAME_CLIENTINFO_MIN - FRAME_BOX_MAC_LEN;
	if ((plain = malloc(mlen + 1)) == NULL) {
		sodium_memzero(shared, sizeof(shared));
		conn_close(c, CLOSE_NO_MEMORY, "ClientInfo");
		return 0;
	}
	if (crypto_box_open_easy_afternm(plain, p + FRAME_CLIENTINFO_MIN,
	    len - FRAME_CLIENTINFO_MIN, p + FRAME_KEY_LEN, shared) != 0) {
		free(plain);
		sodium_memzero(shared, sizeof(shared));
		conn_close(c, CLOSE_BAD_CLIENT_INFO, "ClientInfo box does not "
		    "open");
		return 0;
	}
	if (frame_clientinfo_parse((const char *)plain, mlen, &ci, &why) != 0) {
		sodium_memzero(plain, mlen);
		free(plain);
		sodium_memzero(shared, sizeof(shared));
		conn_close(c, CLOSE_BAD_CLIENT_INFO, "%s", why);
		return 0;
	}
	sodium_memzero(plain, mlen);
	free(plain);
	memcpy(c->c_key, p, KEY_LEN);
	evbuffer_drain(in, FRAME_HDR_LEN + (size_t)len);
	c->c_mesh = env->d_has_mesh && ci.ci_has_mesh_key &&
	    util_ct_equal(ci.ci_mesh_key, env->d_mesh, 32);
	sodium_memzero(&ci.ci_mesh_key, sizeof(ci.ci_mesh_key));
	c->c_prober = ci.ci_is_prober;
	if (env->d_auth != NULL && !c->c_mesh) {
		/* Mesh peers skip admission; everyone else waits for it. */
		memcpy(c->c_shared, shared, sizeof(shared));
		sodium_memzero(shared, sizeof(shared));
		c->c_auth = auth_check(env->d_auth, c->c_key,
		    (const struct sockaddr *)&c->c_sa, conn_auth_notify, c);
		if (c->c_auth == NULL) {
			conn_close(c, CLOSE_NO_MEMORY, "admission");
			return 0;
		}
		conn_set_state(c, CONN_AUTH_PENDING);
		io_pause_read(c->c_io);
		conn_timer_set(c, (uint64_t)(env->d_conf->dc_handshake_timeout_ms +
		    auth_check_time_ms(env->d_auth)));
		return 1;
	}
	conn_admit(c, shared, "none", 0);
	sodium_memzero(shared, sizeof(shared));
	return 0;
}

/* Admitted: register, send ServerInfo, go ACTIVE (owner thread). */
void
conn_admit(struct conn *c, const uint8_t *shared, const char *how,
    int cached)
{
	struct derpd	*env = c->c_env;
	char		 ks[8];

	util_strlcpy(c->c_admitted_by, how, sizeof(c->c_admitted_by));
	c->c_admit_cached = cached;
	if (peers_add(env->d_peers, c->c_key, c) == -1) {
		conn_close(c, CLOSE_NO_MEMORY, "registry");
		return;
	}
	c->c_registered = 1;
	if (__atomic_load_n(&c->c_dup, __ATOMIC_RELAXED))
		STAT_INC(worker_stats(c->c_w), STAT_TOTAL_DUP_CLIENT_CONNS);
	if (c->c_notideal)
		STAT_INC(worker_stats(c->c_w), STAT_NOTIDEAL_CONNECTIONS);
	if (conn_send_server_info(c, shared) != 0) {
		conn_close(c, CLOSE_NO_MEMORY, "ServerInfo");
		return;
	}
	util_key_short(c->c_key, ks);
	log_debug("conn %llu %s: client %s connected%s%s (admitted: %s%s)",
	    (unsigned long long)c->c_id, CONN_ADDR(c), ks,
	    c->c_mesh ? " (mesh peer)" : "", c->c_prober ? " (prober)" : "",
	    how, cached ? ", cached" : "");
	conn_set_state(c, CONN_ACTIVE);
	STAT_INC(worker_stats(c->c_w), STAT_DERP_CONNECTIONS);
	events_client(&env->d_events, CLIENT_CONNECT, c->c_key,
	    (const struct sockaddr *)&c->c_sa, worker_id(c->c_w), NULL);
	/* Mesh peers get derper's fixed 30 s; others --tcp-write-timeout. */
	io_set_write_timeout(c->c_io, c->c_mesh ? DERPD_MESH_WRITE_TIMEOUT_MS :
	    env->d_conf->dc_tcp_write_timeout_ms);
	io_set_low_mark(c->c_io, DERPD_OUT_HIGH_WATER / 4);
	conn_rtt_start(c);
}

/* Room for more frames in the output buffer? */
int
conn_out_has_room(const struct conn *c)
{
	return io_output_len(c->c_io) < DERPD_OUT_HIGH_WATER;
}

/* NotHere limiter: 1 per second, burst 3, per sending connection. */
static int
conn_nothere_allow(struct conn *c)
{
	uint64_t now = util_now_ms();

	c->c_nothere_tokens += (double)(now - c->c_nothere_ms) / 1000.0;
	c->c_nothere_ms = now;
	if (c->c_nothere_tokens > 3)
		c->c_nothere_tokens = 3;
	if (c->c_nothere_tokens < 1)
		return 0;
	c->c_nothere_tokens -= 1;
	return 1;
}

static void
conn_send_not_here(struct conn *c, const uint8_t key[KEY_LEN])
{
	uint8_t	 buf[CTL_FRAME_MAX];
	size_t	 n;

	if (!conn_nothere_allow(c) || !conn_out_has_room(c))
		return;
	n = frame_build_peer_gone(buf, key, PEER_GONE_NOT_HERE);
	evbuffer_add(io_output(c->c_io), buf, n);
	STAT_INC(worker_stats(c->c_w), STAT_PEER_GONE_NOT_HERE);
}

/*
 * The conn c last found for dst, if the registry has not changed since
 * (no reference taken: the slot holds one); else NULL, with *slot the
 * slot to keep the new answer in (NULL without memory for the slots).
 */
static struct conn *
dcache_get(struct conn *c, const uint8_t dst[KEY_LEN], uint64_t h,
    struct conn_dcache **slot)
{
	struct conn_dcache *d;

	/* Closing: conn_close has let go of the slots; take none again. */
	if (c->c_state == CONN_CLOSING ||
	    (c->c_dcache == NULL && (c->c_dcache = calloc(CONN_DCACHE_SLOTS,
	    sizeof(*c->c_dcache))) == NULL)) {
		*slot = NULL;
		return NULL;
	}
	d = &c->c_dcache[h & (CONN_DCACHE_SLOTS - 1)];
	*slot = d;
	if (d->dc_obj != NULL && d->dc_gen == peers_gen(c->c_env->d_peers) &&
	    memcmp(d->dc_key, dst, KEY_LEN) == 0)
		return d->dc_obj;
	return NULL;
}

/* Keep obj (and the caller's reference to it) as dst's answer in gen. */
static void
dcache_put(struct conn_dcache *d, const uint8_t dst[KEY_LEN],
    struct conn *obj, uint64_t gen)
{
	if (d->dc_obj != NULL)
		conn_unref(d->dc_obj);
	memcpy(d->dc_key, dst, KEY_LEN);
	d->dc_obj = obj;
	d->dc_gen = gen;
}

void
conn_dcache_clear(struct conn *c)
{
	if (c->c_dcache == NULL)
		return;
	for (int i = 0; i < CONN_DCACHE_SLOTS; i++)
		if (c->c_dcache[i].dc_obj != NULL)
			conn_unref(c->c_dcache[i].dc_obj);
	free(c->c_dcache);
	c->c_dcache = NULL;
}

/*
 * Relay a packet of plen bytes at the head of in to dst, from src.
 * fwd marks a ForwardPacket (local delivery only, other drop reason).
 */
static void
conn_relay(struct conn *c, struct evbuffer *in, const uint8_t dst[KEY_LEN],
    const uint8_t src[KEY_LEN], uint32_t plen, int fwd)
{
	struct worker	*w = c->c_w;
	struct pkt		*p;
	void			*obj;
	struct conn_dcache	*slot;
	uint8_t			 peek[FRAME_DISCO_MIN];
	uint64_t		 h, gen;
	int			 disco, owned = 0;

	disco = plen >= FRAME_DISCO_MIN &&
	    evbuffer_copyout(in, peek, sizeof(peek)) == sizeof(peek) &&
	    frame_is_disco(peek, sizeof(peek));
	STAT_INC(worker_stats(w), STAT_PACKETS_RECEIVED);
	STAT_ADD(worker_stats(w), STAT_BYTES_RECEIVED, plen);
	STAT_INC(worker_stats(w), disco ? STAT_PACKETS_RECEIVED_DISCO :
	    STAT_PACKETS_RECEIVED_OTHER);
	if (fwd)
		STAT_INC(worker_stats(w), STAT_PACKETS_FORWARDED_IN);
	stats_add(&c->c_pkts_in, 1);
	stats_add(&c->c_bytes_in, plen);
	h = peers_hash(c->c_env->d_peers, dst);
	if ((obj = dcache_get(c, dst, h, &slot)) == NULL) {
		switch (peers_lookup_gen(c->c_env->d_peers, dst, h, &obj,
		    &gen)) {
		case PEERS_FOUND:
			/* The slot keeps the lookup's reference. */
			if (slot != NULL)
				dcache_put(slot, dst, obj, gen);
			else
				owned = 1;
			break;
		case PEERS_FORWARD:
			if (!fwd) {
				mesh_forward(w, obj, src, dst, in, plen,
				    disco);
				return;
			}
			/* One hop: a forwarded packet is never forwarded
			 * again. */
			evbuffer_drain(in, plen);
			stats_drop(worker_stats(w), DROP_UNKNOWN_DEST_ON_FWD,
			    disco, plen);
			return;
		case PEERS_DUP_INACTIVE:
			evbuffer_drain(in, plen);
			stats_drop(worker_stats(w), DROP_DUP_CLIENT, disco,
			    plen);
			return;
		case PEERS_NONE:
			evbuffer_drain(in, plen);
			stats_drop(worker_stats(w), fwd ?
			    DROP_UNKNOWN_DEST_ON_FWD : DROP_UNKNOWN_DEST, disco,
			    plen);
			if (disco)
				conn_send_not_here(c, dst);
			return;
		}
	}
	if ((p = pkt_new(plen)) == NULL) {
		evbuffer_drain(in, plen);
		stats_drop(worker_stats(w), DROP_NO_MEMORY, disco, plen);
		if (owned)
			conn_unref(obj);
		return;
	}
	frame_put_header(p->p_frame, FRAME_RECV_PACKET, plen + FRAME_KEY_LEN);
	memcpy(p->p_frame + FRAME_HDR_LEN, src, FRAME_KEY_LEN);
	evbuffer_remove(in, p->p_frame + FRAME_HDR_LEN + FRAME_KEY_LEN, plen);
	p->p_disco = (uint8_t)disco;
	if (!fwd)
		conn_note_sent(c, dst, h);
	else
		conn_note_forwarded(c, src, dst);
	conn_enqueue_pkt(w, obj, p);
	if (owned)
		conn_unref(obj);
}

/* Snapshot callback, registry read lock held: PeerPresent of obj. */
static void
watch_emit(void *watcher, void *obj, void *arg)
{
	struct conn	*w = watcher;
	uint8_t		 buf[CTL_FRAME_MAX];

	(void)arg;
	evbuffer_add(io_output(w->c_io), buf, conn_build_present(obj, buf));
}

/*
 * Stream the registry snapshot to watcher c while its output has room;
 * the drain callback brings us back for the rest (owner thread).
 */
void
conn_watch_pump(struct conn *c)
{
	while (c->c_watcher && !c->c_watch_synced && conn_out_has_room(c))
		if (peers_watch_snapshot(c->c_env->d_peers, c,
		    WATCH_SNAPSHOT_STEP, watch_emit, NULL))
			c->c_watch_synced = 1;
}

/* Handle one complete frame of type/len at the head of in (header gone). */
static void
conn_frame(struct conn *c, struct evbuffer *in, uint8_t type, uint32_t len)
{
	struct worker	*w = c->c_w;
	uint8_t		 k1[KEY_LEN], k2[KEY_LEN], b[CTL_FRAME_MAX];

	switch (type) {
	case FRAME_SEND_PACKET:
		evbuffer_remove(in, k1, KEY_LEN);
		conn_relay(c, in, k1, c->c_key, len - KEY_LEN, 0);
		break;
	case FRAME_FORWARD_PACKET:
		if (!c->c_mesh) {
			conn_close(c, CLOSE_NOT_MESH, "ForwardPacket from a "
			    "non-mesh client");
			return;
		}
		evbuffer_remove(in, k1, KEY_LEN);	/* source */
		evbuffer_remove(in, k2, KEY_LEN);	/* destination */
		conn_relay(c, in, k2, k1, len - 64, 1);
		break;
	case FRAME_PING:
		evbuffer_remove(in, k1, 8);
		evbuffer_drain(in, len - 8);
		STAT_INC(worker_stats(w), STAT_GOT_PING);
		if (!conn_out_has_room(c)) {
			STAT_INC(worker_stats(w), STAT_PINGS_IGNORED);
			break;
		}
		evbuffer_add(io_output(c->c_io), b,
		    frame_build_pong(b, k1));
		STAT_INC(worker_stats(w), STAT_SENT_PONG);
		break;
	case FRAME_NOTE_PREFERRED: {
		uint8_t v;
		evbuffer_remove(in, &v, 1);
		if ((v != 0) != (c->c_preferred != 0)) {
			/* Read by admin threads. */
			__atomic_store_n(&c->c_preferred, v != 0,
			    __ATOMIC_RELAXED);
			if (v != 0)
				STAT_INC(worker_stats(w), STAT_HOME_CONNECTIONS);
			else
				STAT_DEC(worker_stats(w), STAT_HOME_CONNECTIONS);
			if (util_now_ms() - c->c_connected_ms > 5000)
				STAT_INC(worker_stats(w), v ? STAT_HOME_MOVES_IN :
				    STAT_HOME_MOVES_OUT);
		}
		break;
	}
	case FRAME_WATCH_CONNS:
		if (!c->c_mesh) {
			conn_close(c, CLOSE_NOT_MESH, "WatchConns from a "
			    "non-mesh client");
			return;
		}
		/* Our own key watching us is a mesh self-connect. */
		if (memcmp(c->c_key, c->c_env->d_key->sk_pub, KEY_LEN) == 0 ||
		    c->c_watcher)
			break;
		/* Live updates are protocol state from here on. */
		pthread_mutex_lock(&c->c_qlock);
		c->c_ctl_cap = WATCH_MAX_PENDING;
		pthread_mutex_unlock(&c->c_qlock);
		if (peers_add_watcher(c->c_env->d_peers, c) == 0) {
			c->c_watcher = 1;
			STAT_INC(worker_stats(w), STAT_WATCHERS);
			conn_watch_pump(c);
		} else {
			pthread_mutex_lock(&c->c_qlock);
			c->c_ctl_cap = CTL_MAX_PENDING;
			pthread_mutex_unlock(&c->c_qlock);
		}
		break;
	case FRAME_CLOSE_PEER: {
		char ks[8];
		if (!c->c_mesh) {
			conn_close(c, CLOSE_NOT_MESH, "ClosePeer from a "
			    "non-mesh client");
			return;
		}
		evbuffer_remove(in, k1, KEY_LEN);
		util_key_short(k1, ks);
		if (peers_kick_key(c->c_env->d_peers, k1) == 0)
			log_info("conn %llu %s: close peer %s: not connected",
			    (unsigned long long)c->c_id, CONN_ADDR(c), ks);
		else
			log_info("conn %llu %s: close peer %s",
			    (unsigned long long)c->c_id, CONN_ADDR(c), ks);
		break;
	}
	default:
		/* Not reached: unknown frames are discarded by the caller. */
		evbuffer_drain(in, len);
		break;
	}
}

static int
frame_is_handled(uint8_t type)
{
	switch (type) {
	case FRAME_SEND_PACKET:
	case FRAME_FORWARD_PACKET:
	case FRAME_PING:
	case FRAME_NOTE_PREFERRED:
	case FRAME_WATCH_CONNS:
	case FRAME_CLOSE_PEER:
		return 1;
	default:
		return 0;
	}
}

/* The receive limiter's wait is over: read on (owner thread). */
static void
conn_rl_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;

	(void)fd;
	(void)what;
	if (c->c_state != CONN_ACTIVE)
		return;
	/*
	 * The paid-for frame and what follows it are in the input already;
	 * a resumed read only calls back for new bytes, so handle them here.
	 */
	io_resume_read(c->c_io);
	conn_read_frames(c);
}

/*
 * -rate-config: charge the frame at the head of the input (once) to c's
 * receive limiter. 1 when c may go on; 0 when reading is paused until
 * the timer, which is how the client's sending is slowed: the kernel's
 * buffer fills and TCP tells the client to wait. Frames stay whole.
 */
static int
conn_rl_charge(struct conn *c, uint32_t len)
{
	struct timeval	 tv;
	uint64_t	 wait;

	if (c->c_rl_charged)
		return 1;
	if (c->c_rl == NULL) {
		struct rate_client *rl;

		/* No limit yet: most relays never set one; nothing to keep. */
		if (c->c_mesh || !ratelim_on(c->c_env->d_ratelim))
			return 1;
		if ((rl = calloc(1, sizeof(*rl))) == NULL) {
			conn_close(c, CLOSE_NO_MEMORY, "rate limiter");
			return 0;
		}
		__atomic_store_n(&c->c_rl, rl, __ATOMIC_RELEASE);
	}
	c->c_rl_charged = 1;
	wait = ratelim_charge(c->c_env->d_ratelim, c->c_rl, c->c_mesh != 0,
	    len);
	if (wait == 0)
		return 1;
	if (c->c_rl_timer == NULL && (c->c_rl_timer = evtimer_new(
	    worker_base(c->c_w), conn_rl_cb, c)) == NULL) {
		conn_close(c, CLOSE_NO_MEMORY, "rate limit timer");
		return 0;
	}
	if (wait > 3600ULL * 1000000000ULL)
		wait = 3600ULL * 1000000000ULL;
	tv.tv_sec = (time_t)(wait / 1000000000ULL);
	tv.tv_usec = (suseconds_t)(wait % 1000000000ULL / 1000);
	io_pause_read(c->c_io);
	evtimer_add(c->c_rl_timer, &tv);
	return 0;
}

/* Parse and handle every complete frame in the input buffer. */
void
conn_read_frames(struct conn *c)
{
	struct evbuffer	*in = io_input(c->c_io);
	uint8_t		 type;
	uint32_t	 len;
	size_t		 avail;
	const char	*why;
	int		 dup_noted = 0;

	while (c->c_state == CONN_ACTIVE) {
		if (!conn_next_header(c, in, &type, &len))
			return;
		avail = evbuffer_get_length(in);
		if (frame_check_client_len(type, len, &why) != FRAME_OK) {
			conn_close(c, CLOSE_BAD_FRAME, "frame 0x%02x length %u: "
			    "%s", type, len, why);
			return;
		}
		if (!conn_rl_charge(c, len))
			return;
		if (!dup_noted &&
		    __atomic_load_n(&c->c_dup, __ATOMIC_RELAXED)) {
			/* Any frame makes a duplicate the active one. */
			peers_note_activity(c->c_env->d_peers, c->c_key, c);
			dup_noted = 1;
		}
		if (!frame_is_handled(type)) {
			/* Unknown types are read and thrown away, any size. */
			evbuffer_drain(in, FRAME_HDR_LEN);
			c->c_rl_charged = 0;
			c->c_discard = len;
			STAT_INC(worker_stats(c->c_w), STAT_UNKNOWN_FRAMES);
			continue;
		}
		if (avail < FRAME_HDR_LEN + (size_t)len)
			return;
		evbuffer_drain(in, FRAME_HDR_LEN);
		c->c_rl_charged = 0;
		conn_frame(c, in, type, len);
	}
}
