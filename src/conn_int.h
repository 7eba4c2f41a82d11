/* SPDX-License-Identifier: ISC */
/*
 * conn_int.h: what the conn_*.c files share: struct conn, its states and
 * the functions one part of a connection's life calls in another. Only
 * conn_*.c include it; everyone else goes through conn.h.
 *
 *   conn.c        lifecycle: accept, state, timer, I/O callbacks, close
 *   conn_queue.c  cross-thread queues, scheduling and the output flush
 *   conn_http.c   the HTTP request head and its answer
 *   conn_derp.c   the DERP handshake, frames, relaying, watchers
 *   conn_auth.c   admission glue: checks, verdicts, re-verification
 *   conn_ctl.c    admin requests about connections (no JSON: control.c)
 */
#ifndef DERPD_CONN_INT_H
#define DERPD_CONN_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <openssl/ssl.h>

#include "frame.h"
#include "keyset.h"
#include "ratelim.h"
#include "log.h"
#include "pktq.h"
#include "stats.h"
#include "worker.h"

#include "util.h"

#ifdef __cplusplus
extern "C" {
#endif

struct auth_req;
struct derpd;
struct mesh_peer;
struct event;
struct evbuffer;
struct http_req;
struct io;

enum conn_state {
	CONN_TLS_HANDSHAKE,	/* TLS accept in progress */
	CONN_HTTP_HEAD,		/* reading the request head */
	CONN_HTTP_RESPONSE,	/* writing a response, then close */
	CONN_HANDSHAKE,		/* upgraded; waiting for ClientInfo */
	CONN_AUTH_PENDING,	/* ClientInfo opened; admission check running */
	CONN_ACTIVE,		/* registered; relaying (a link: up) */
	CONN_CLOSING,		/* I/O released; waiting to be reaped */
	CONN_MESH_DIAL,		/* our mesh link: connect, TLS, upgrade */
	CONN_MESH_HELLO,	/* our mesh link: ServerKey .. ServerInfo */
};

#define CTL_MAX_PENDING	4096	/* PeerGone to a sender: drop and count */
/*
 * A watcher's live updates are protocol state: never dropped. A watcher
 * that falls this far behind is closed (counted); it reconnects and gets
 * a fresh snapshot. Its snapshot is streamed and costs no queue.
 */
#define WATCH_MAX_PENDING	(256 * 1024)
#define WATCH_SNAPSHOT_STEP	256	/* keys per registry visit */
#define CTL_FRAME_MAX	(FRAME_HDR_LEN + FRAME_PEERPRESENT_LEN)

/* A small control frame queued by another thread. */
struct ctlmsg {
	struct ctlmsg	*cm_next;
	uint8_t		 cm_len;
	uint8_t		 cm_buf[CTL_FRAME_MAX];
};

/* A TCP peer's address: smaller than a sockaddr_storage (128 bytes). */
union conn_addr {
	struct sockaddr		 sa;
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
};

/*
 * A sender's recent destinations (conn_relay): the registry's answer for
 * a key, the generation it was given in (peers_gen) and a reference to
 * the conn, so that a packet to a destination seen before, with no change
 * to the registry since, takes no lock and no reference count. Slots are
 * picked by the key's hash; owner thread only.
 */
#define CONN_DCACHE_SLOTS	4
struct conn_dcache {
	uint8_t			 dc_key[KEY_LEN];
	struct conn		*dc_obj;	/* a reference; NULL: empty */
	uint64_t		 dc_gen;
};

struct conn {
	uint64_t		 c_id;
	struct worker		*c_w;
	struct derpd		*c_env;
	enum conn_state		 c_state;
	int			 c_fd;		/* closed at reap; -1 */
	struct io		*c_io;
	struct theap_node	 c_timer;	/* on c_w's heap (worker.c) */
	union conn_addr		 c_sa;	/* the peer (CONN_ADDR formats it) */
	enum close_reason	 c_resp_reason;	/* close after the response */
	uint64_t		 c_connected_ms;
	size_t			 c_scan;	/* http head scan offset */
	uint32_t		 c_discard;	/* bytes of an ignored frame */
	uint32_t		 c_keepalive_ms;
	/* flags: one byte each (owner thread unless noted) */
	uint8_t			 c_tls;
	uint8_t			 c_port80;
	uint8_t			 c_admit_cached;
	uint8_t			 c_registered;
	uint8_t			 c_mesh;
	uint8_t			 c_prober;
	uint8_t			 c_notideal;
	uint8_t			 c_watcher;
	uint8_t			 c_watch_synced; /* snapshot fully sent */
	uint8_t			 c_flushing;	/* inside conn_flush */
	uint8_t			 c_rl_charged;	/* the head frame is paid for */
	int			 c_preferred;	/* atomic */
	int			 c_dup;		/* atomic; set by registry */
	int			 c_kick;	/* atomic; close reason + 1 */
	int			 c_tls_active;	/* STAT_TLS1x_ACTIVE held, or -1 */
	int			 c_refs;	/* atomic */
	/* identity, set at ClientInfo */
	uint8_t			 c_key[KEY_LEN];
	uint8_t			 c_shared[32];	/* box key, while auth pends */
	struct auth_req		*c_auth;	/* pending admission check */
	char			 c_admitted_by[16];
	double			 c_nothere_tokens;
	uint64_t		 c_nothere_ms;
	/* -rate-config: the receive limiter; reading paused while it waits */
	struct rate_client	*c_rl;	/* atomic; NULL until limits apply */
	struct event		*c_rl_timer;	/* NULL until first needed */
	uint64_t		 c_ka_due_ms;	/* ACTIVE: next keepalive */
	uint64_t		 c_rtt_due_ms;	/* next RTT sample; 0: none */
	/* keys this conn delivered packets to (PeerGone on leave) */
	struct keyset		 c_sent;
	/* CONN_DCACHE_SLOTS slots, NULL until the first packet it sends */
	struct conn_dcache	*c_dcache;
	/* a mesh peer's conn: (source, destination) pairs it delivered */
	struct keyset		 c_fwd_pairs;
	/* a link we opened to a mesh peer (conn_mesh.c), else NULL */
	struct mesh_peer	*c_link;
	uint64_t		 c_last_rx_ms;	/* links: last bytes in */
	/* cross-thread part */
	pthread_mutex_t		 c_qlock;
	struct pktq		 c_dataq;	/* guarded by c_qlock */
	struct pktq		 c_discoq;	/* guarded by c_qlock */
	struct ctlmsg		*c_ctl_head, *c_ctl_tail; /* c_qlock */
	unsigned		 c_nctl;	/* guarded by c_qlock */
	unsigned		 c_ctl_cap;	/* guarded by c_qlock */
	/* bytes, kept here: other threads write them (false sharing) */
	uint8_t			 c_closed;	/* guarded by c_qlock */
	uint8_t			 c_sched;	/* guarded by c_qlock */
	uint8_t			 c_ctl_overflow; /* guarded by c_qlock */
	struct worker_item	 c_item;	/* posted to c_w (c_sched) */
	/* owner-thread links */
	struct worker_node	 c_node;	/* c_w's live list */
	struct worker_item	 c_reapit;	/* deferred release */
	/* per-connection totals */
	uint64_t		 c_pkts_in, c_bytes_in, c_pkts_out, c_bytes_out;
	uint64_t		 c_drops;	/* atomic: dropped for us */
	int64_t			 c_since;	/* unix seconds at accept */
};

/*
 * The peer's "ip:port", formatted when asked (a log line, a listing)
 * into a buffer that lives until the end of the caller's block.
 */
#define CONN_ADDR_LEN	64
#define CONN_ADDR(c)	conn_addr((c), (char[CONN_ADDR_LEN]){ 0 }, \
			    CONN_ADDR_LEN)
const char *conn_addr(const struct conn *, char *buf, size_t len);

#define CONN_OF(p, field) \
	((struct conn *)(void *)((char *)(p) - offsetof(struct conn, field)))

/* conn.c */
/* A new conn on w for a socket to or from sa, not attached yet; NULL. */
struct conn *conn_alloc(struct worker *w, const struct sockaddr *sa,
	    socklen_t salen);
/*
 * Give c its socket (and ssl), its timer and its place on the worker's
 * list. -1 on failure: fd closed, ssl and c freed, counted.
 */
int	conn_attach(struct conn *, int fd, SSL *ssl);
/*
 * The next frame's header at the head of in, after throwing away what is
 * left of a frame being discarded (c_discard). 1 with *type and *len (the
 * header still in in), or 0 when more bytes are needed.
 */
int	conn_next_header(struct conn *, struct evbuffer *in, uint8_t *type,
	    uint32_t *len);
/* Log a line a peer caused, within the worker's log rate limit. */
void	conn_log(struct conn *, const char *, ...) LOG_FMT(2, 3);
void	conn_ref(struct conn *);
/* Drop a reference; the last one frees c (any thread). */
void	conn_unref(struct conn *);
/* Move c to state s (logged at debug level). */
void	conn_set_state(struct conn *, enum conn_state);
/* (Re)arm c's single timer to fire in ms. */
void	conn_timer_set(struct conn *, uint64_t ms);
/*
 * The one teardown path (owner thread): logs and counts reason r, releases
 * I/O at once (the socket leaves the loop; it is closed at reap) and
 * leaves the registry; c is freed later. Callers stop
 * using c's I/O after it (c_state is CONN_CLOSING).
 */
void	conn_close(struct conn *, enum close_reason, const char *, ...)
	    LOG_FMT(3, 4);

/* conn_derp.c */
/* Drop c's remembered destinations and their references (owner). */
void	conn_dcache_clear(struct conn *);

/* conn_queue.c */
/* Set up c's queues and their lock (at accept). */
void	conn_queue_init(struct conn *);
/* Close c's queues: later packets are dropped as gone; queued ones too. */
void	conn_queue_shut(struct conn *);
/* Free what is left in c's queues and their lock (last reference). */
void	conn_queue_free(struct conn *);
/* With c_qlock held: claim c's place on its worker's queue (1 if won). */
int	conn_claim_sched(struct conn *);
/* Post c (whose place the caller claimed) to its worker; from may be NULL. */
void	conn_schedule(struct worker *from, struct conn *);
/* Queue packet p for c (any thread); consumes p, counts any drop. */
void	conn_enqueue_pkt(struct worker *from, struct conn *, struct pkt *p);
/* Queue a small control frame for c (any thread, registry lock allowed). */
void	conn_enqueue_ctl(struct worker *from, struct conn *,
	    const uint8_t *buf, size_t len);
/* Have c's owner look at it soon (any thread): a verdict, a kick. */
void	conn_wake(struct conn *);
/* Ask c to close from its own thread with reason r (any thread). */
void	conn_kick(struct conn *, enum close_reason r);
/*
 * Act on c's pending work (owner thread): verdicts, kicks, queued frames
 * into the output up to the high-water mark, the watcher snapshot.
 * from_list when called for c's posted item. May close c.
 */
void	conn_flush(struct conn *, int from_list);
/* Room for more frames in c's output buffer? */
int	conn_out_has_room(const struct conn *);

/* conn.c, derp_tcp_rtt */
/* c went ACTIVE: count it as derper would and arm its RTT samples. */
void	conn_rtt_start(struct conn *);

/* conn_http.c */
/* Read and answer the request head (state CONN_HTTP_HEAD); may close. */
void	conn_read_http(struct conn *);
/* Queue a whole HTTP response and close once it is written. */
void	conn_http_respond(struct conn *, int code, const char *extra,
	    const char *ctype, const char *body, int head_only);

/* conn_derp.c */
/* The upgrade is accepted: queue the 101 (unless fast start), ServerKey. */
void	conn_start_derp(struct conn *, const struct http_req *);
/* ClientInfo: 0 when handled (state may be CLOSING), 1 when more needed. */
int	conn_read_client_info(struct conn *);
/* Admitted: register, send ServerInfo, go ACTIVE; may close. */
void	conn_admit(struct conn *, const uint8_t *shared, const char *how,
	    int cached);
/* Handle every complete frame in c's input (state CONN_ACTIVE). */
void	conn_read_frames(struct conn *);
/* Stream the registry snapshot to watcher c while its output has room. */
void	conn_watch_pump(struct conn *);
/* Remember that c delivered to key (PeerGone when c leaves). */
/* Remember a destination for PeerGone; h = peers_hash(key). */
void	conn_note_sent(struct conn *, const uint8_t key[KEY_LEN], uint64_t h);
/* c's key left: PeerGone to everyone c delivered to. */
void	conn_send_peer_gone(struct conn *);

/* conn_mesh.c */
/* Input on a link we opened (any link state); may close. */
void	conn_mesh_read(struct conn *);
/* A link's timer fired. */
void	conn_mesh_timer(struct conn *);

/* conn_auth.c */
/* The admission engine has a verdict for c: wake its owner (any thread). */
void	conn_auth_notify(void *c);
/* Act on a finished admission check (owner); may admit or close. */
void	conn_auth_poll(struct conn *);
/* Act on a finished re-verification (owner); may close. */
void	conn_reverify_poll(struct conn *);
/* Start a fresh check of every active non-mesh conn of w (owner). */
void	conn_reverify_all(struct worker *);


#ifdef __cplusplus
}
#endif
#endif
