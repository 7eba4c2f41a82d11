/* SPDX-License-Identifier: ISC */
/*
 * conn.c: the per-connection state machine. A connection lives on one
 * worker; other workers only touch its packet queues (under c_qlock) and
 * its reference count.
 */
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <cjson/cJSON.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "auth.h"
#include "conn.h"
#include "control.h"
#include "derpd.h"
#include "frame.h"
#include "http.h"
#include "io.h"
#include "keys.h"
#include "log.h"
#include "peer.h"
#include "pktq.h"
#include "stats.h"
#include "tls.h"
#include "util.h"
#include "varz.h"
#include "worker.h"

enum conn_state {
	CONN_TLS_HANDSHAKE,	/* TLS accept in progress */
	CONN_HTTP_HEAD,		/* reading the request head */
	CONN_HTTP_RESPONSE,	/* writing a response, then close */
	CONN_HANDSHAKE,		/* upgraded; waiting for ClientInfo */
	CONN_AUTH_PENDING,	/* ClientInfo opened; admission check running */
	CONN_ACTIVE,		/* registered; relaying */
	CONN_CLOSING,		/* I/O released; waiting to be reaped */
};

static const char *const state_names[] = {
	"tls_handshake", "http_head", "http_response", "handshake",
	"auth_pending", "active", "closing",
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

struct conn {
	uint64_t		 c_id;
	struct worker		*c_w;
	struct derpd		*c_env;
	enum conn_state		 c_state;
	struct io		*c_io;
	struct event		*c_timer;
	int			 c_tls;
	int			 c_port80;
	struct sockaddr_storage	 c_sa;
	char			 c_addr[64];
	uint64_t		 c_connected_ms;
	size_t			 c_scan;	/* http head scan offset */
	enum close_reason	 c_resp_reason;	/* close after the response */
	uint32_t		 c_discard;	/* bytes of an ignored frame */
	/* identity, set at ClientInfo */
	uint8_t			 c_key[32];
	uint8_t			 c_shared[32];	/* box key, while auth pends */
	struct auth_req		*c_auth;	/* pending admission check */
	char			 c_admitted_by[16];
	int			 c_admit_cached;
	int			 c_registered;
	int			 c_mesh;
	int			 c_prober;
	int			 c_notideal;
	int			 c_preferred;
	int			 c_watcher;
	int			 c_watch_synced; /* snapshot fully sent */
	int			 c_flushing;	/* inside conn_flush */
	int			 c_dup;		/* atomic; set by registry */
	int			 c_kick;	/* atomic; ClosePeer */
	double			 c_nothere_tokens;
	uint64_t		 c_nothere_ms;
	uint32_t		 c_keepalive_ms;
	/* keys this conn delivered packets to (PeerGone on leave) */
	uint8_t			(*c_sent)[32];
	size_t			 c_sent_n, c_sent_cap;
	/* cross-thread part */
	int			 c_refs;	/* atomic */
	pthread_mutex_t		 c_qlock;
	int			 c_closed;	/* guarded by c_qlock */
	int			 c_sched;	/* guarded by c_qlock */
	struct pktq		 c_dataq;	/* guarded by c_qlock */
	struct pktq		 c_discoq;	/* guarded by c_qlock */
	struct ctlmsg		*c_ctl_head, *c_ctl_tail; /* c_qlock */
	unsigned		 c_nctl;	/* guarded by c_qlock */
	unsigned		 c_ctl_cap;	/* guarded by c_qlock */
	int			 c_ctl_overflow; /* guarded by c_qlock */
	struct worker_item	 c_item;	/* posted to c_w (c_sched) */
	/* owner-thread links */
	struct worker_node	 c_node;	/* c_w's live list */
	struct worker_item	 c_reapit;	/* deferred release */
	/* per-connection totals */
	uint64_t		 c_pkts_in, c_bytes_in, c_pkts_out, c_bytes_out;
	uint64_t		 c_drops;	/* atomic: dropped for us */
	int64_t			 c_since;	/* unix seconds at accept */
};

static void	conn_io_read(void *);
static void	conn_io_drain(void *);
static void	conn_io_event(void *, enum io_event, const char *);
static const struct io_cbs conn_io_cbs;
static cJSON	*conn_event_data(struct conn *);
static void	conn_admit(struct conn *, const uint8_t *, const char *, int);
static void	conn_auth_notify(void *);
static void	conn_auth_poll(struct conn *);
static void	conn_reverify_poll(struct conn *);
static void	conn_read_frames(struct conn *);
static void	conn_timer_cb(evutil_socket_t, short, void *);
static void	conn_flush(struct conn *, int);
static void	conn_close(struct conn *, enum close_reason, const char *,
		    ...) LOG_FMT(3, 4);

/*
 * Lines a peer can cause (one per bad connection) are limited per worker,
 * so a flood of bad connections cannot flood the log; what is held back is
 * counted and mentioned on the next line let through.
 */
#define CONN_LOG_RATE	20	/* lines per second per worker */
#define CONN_LOG_BURST	100

static void conn_log(struct conn *, const char *, ...) LOG_FMT(2, 3);

static void
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
		    (unsigned long long)c->c_id, c->c_addr, msg,
		    (unsigned long long)held);
	else
		log_info("conn %llu %s: %s", (unsigned long long)c->c_id,
		    c->c_addr, msg);
}

static void
conn_ref(struct conn *c)
{
	__atomic_add_fetch(&c->c_refs, 1, __ATOMIC_RELAXED);
}

static void
conn_unref(struct conn *c)
{
	struct ctlmsg *m, *n;

	if (__atomic_sub_fetch(&c->c_refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	/* Last reference: conn_close already emptied the queues. */
	pktq_clear(&c->c_dataq, NULL, NULL);
	pktq_clear(&c->c_discoq, NULL, NULL);
	for (m = c->c_ctl_head; m != NULL; m = n) {
		n = m->cm_next;
		free(m);
	}
	pthread_mutex_destroy(&c->c_qlock);
	free(c->c_sent);
	free(c);
}

static void
conn_set_state(struct conn *c, enum conn_state s)
{
	log_debug("conn %llu %s: %s -> %s", (unsigned long long)c->c_id,
	    c->c_addr, state_names[c->c_state], state_names[s]);
	c->c_state = s;
}

/* Arm the connection's single timer. */
static void
conn_timer_set(struct conn *c, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000),
	    (suseconds_t)((ms % 1000) * 1000) };

	evtimer_add(c->c_timer, &tv);
}

/*
 * Put c on its owner's schedule list (any thread; c_sched was just set
 * under c_qlock by the caller). from is the calling thread's worker.
 */
static void
conn_schedule(struct worker *from, struct conn *c)
{
	conn_ref(c);		/* the posted item's; wo_run drops it */
	worker_post(c->c_w, from, &c->c_item);
}

/*
 * With c_qlock held: claim c's place on a schedule list. True when the
 * caller must list it (conn_schedule after unlocking).
 */
static int
conn_claim_sched(struct conn *c)
{
	if (c->c_closed || c->c_sched)
		return 0;
	c->c_sched = 1;
	return 1;
}

struct drop_ctx {
	struct stats	*st;
	struct conn	*c;	/* the receiver, NULL if none */
};

static void
count_drop(struct pkt *p, int is_head, void *arg)
{
	struct drop_ctx *d = arg;

	stats_drop(d->st, is_head ? DROP_QUEUE_HEAD : DROP_QUEUE_TAIL,
	    p->p_disco, p->p_len);
	if (d->c != NULL)
		__atomic_add_fetch(&d->c->c_drops, 1, __ATOMIC_RELAXED);
}

/* Queue a packet for c (any thread); consumes p. */
static void
conn_enqueue_pkt(struct worker *from, struct conn *c, struct pkt *p)
{
	struct drop_ctx	 d = { worker_stats(from), c };
	int		 sched = 0;

	pthread_mutex_lock(&c->c_qlock);
	if (c->c_closed) {
		pthread_mutex_unlock(&c->c_qlock);
		stats_drop(worker_stats(from), DROP_GONE_DISCONNECTED, p->p_disco,
		    p->p_len);
		pkt_free(p);
		return;
	}
	pktq_push(p->p_disco ? &c->c_discoq : &c->c_dataq, p, count_drop, &d);
	sched = conn_claim_sched(c);
	pthread_mutex_unlock(&c->c_qlock);
	if (sched)
		conn_schedule(from, c);
}

/*
 * Queue a control frame for c. Called by any thread, sometimes with the
 * registry lock held, so it must not take the registry lock. from may be
 * NULL when the caller's worker is unknown; then the inbox path is used.
 * Past c's cap (or out of memory) a frame to a sender is dropped and
 * counted; a watcher is marked to be closed, as its state would be wrong.
 */
static void
conn_enqueue_ctl(struct worker *from, struct conn *c, const uint8_t *buf,
    size_t len)
{
	struct ctlmsg	*m;
	int		 sched = 0;

	if ((m = malloc(sizeof(*m))) != NULL) {
		m->cm_next = NULL;
		m->cm_len = (uint8_t)len;
		memcpy(m->cm_buf, buf, len);
	}
	pthread_mutex_lock(&c->c_qlock);
	if (c->c_closed) {
		pthread_mutex_unlock(&c->c_qlock);
		free(m);
		return;
	}
	if (m == NULL || c->c_nctl >= c->c_ctl_cap) {
		if (c->c_ctl_cap == WATCH_MAX_PENDING && !c->c_ctl_overflow) {
			c->c_ctl_overflow = 1;
			sched = conn_claim_sched(c);
		}
		pthread_mutex_unlock(&c->c_qlock);
		free(m);
		worker_count_remote(c->c_w, STAT_CTL_DROPS);
		if (sched)
			conn_schedule(from, c);
		return;
	}
	if (c->c_ctl_tail != NULL)
		c->c_ctl_tail->cm_next = m;
	else
		c->c_ctl_head = m;
	c->c_ctl_tail = m;
	c->c_nctl++;
	sched = conn_claim_sched(c);
	pthread_mutex_unlock(&c->c_qlock);
	if (sched)
		conn_schedule(from, c);
}

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
ops_gone(void *watcher, const uint8_t key[32])
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

/* Ask c to close from its own thread: why 1 mesh ClosePeer, 2 admin. */
static void
conn_kick(struct conn *c, int why)
{
	int sched = 0;

	__atomic_store_n(&c->c_kick, why, __ATOMIC_RELAXED);
	pthread_mutex_lock(&c->c_qlock);
	sched = conn_claim_sched(c);
	pthread_mutex_unlock(&c->c_qlock);
	if (sched)
		conn_schedule(NULL, c);
}

static void
ops_kick(void *obj)
{
	conn_kick(obj, 1);
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
static void
conn_note_sent(struct conn *c, const uint8_t key[32])
{
	size_t	 i, mask;
	uint64_t h;

	if (c->c_sent_n * 2 >= c->c_sent_cap) {
		size_t	 ncap = c->c_sent_cap ? c->c_sent_cap * 2 : 8;
		uint8_t	(*nt)[32] = calloc(ncap, 32);

		if (nt == NULL)
			return;
		for (i = 0; i < c->c_sent_cap; i++) {
			if (util_is_zero(c->c_sent[i], 32))
				continue;
			memcpy(&h, c->c_sent[i], 8);
			size_t j = (size_t)h & (ncap - 1);
			while (!util_is_zero(nt[j], 32))
				j = (j + 1) & (ncap - 1);
			memcpy(nt[j], c->c_sent[i], 32);
		}
		free(c->c_sent);
		c->c_sent = nt;
		c->c_sent_cap = ncap;
	}
	mask = c->c_sent_cap - 1;
	memcpy(&h, key, 8);
	for (i = (size_t)h & mask;; i = (i + 1) & mask) {
		if (memcmp(c->c_sent[i], key, 32) == 0)
			return;
		if (util_is_zero(c->c_sent[i], 32)) {
			memcpy(c->c_sent[i], key, 32);
			c->c_sent_n++;
			return;
		}
	}
}

/* c's key left: tell everyone it delivered to (PeerGone Disconnected). */
static void
conn_send_peer_gone(struct conn *c)
{
	uint8_t	 buf[CTL_FRAME_MAX];
	size_t	 n;
	void	*obj;

	n = frame_build_peer_gone(buf, c->c_key, PEER_GONE_DISCONNECTED);
	for (size_t i = 0; i < c->c_sent_cap; i++) {
		if (util_is_zero(c->c_sent[i], 32))
			continue;
		if (peers_lookup(c->c_env->d_peers, c->c_sent[i], &obj) !=
		    PEERS_FOUND)
			continue;
		conn_enqueue_ctl(c->c_w, obj, buf, n);
		STAT_INC(worker_stats(c->c_w), STAT_PEER_GONE_DISCONNECTED);
		conn_unref(obj);
	}
}

static void
count_gone(struct pkt *p, int is_head, void *arg)
{
	struct drop_ctx *d = arg;

	(void)is_head;
	stats_drop(d->st, DROP_GONE_DISCONNECTED, p->p_disco, p->p_len);
}

/*
 * The one teardown path (owner thread). Releases I/O at once, leaves the
 * registry, and drops the owner reference from a deferred event.
 */
static void
conn_close(struct conn *c, enum close_reason r, const char *fmt, ...)
{
	struct worker	*w = c->c_w;
	struct drop_ctx	 d = { worker_stats(w), NULL };
	char		 why[256];
	va_list		 ap;
	struct ctlmsg	*m, *n;

	if (c->c_state == CONN_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* Refusals have their own rate-limited line (auth_note_reject). */
	if (r == CLOSE_EOF || r == CLOSE_HTTP_DONE || r == CLOSE_SHUTDOWN ||
	    r == CLOSE_ADMISSION_DENIED)
		log_debug("conn %llu %s: closed: %s (%s)",
		    (unsigned long long)c->c_id, c->c_addr,
		    stats_close_name(r), why);
	else
		conn_log(c, "closed: %s (%s)", stats_close_name(r), why);
	stats_close(worker_stats(w), r);
	if (c->c_state == CONN_ACTIVE)
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
	    r != CLOSE_TLS_ERROR)
		io_flush(c->c_io);
	event_free(c->c_timer);
	c->c_timer = NULL;
	io_free(c->c_io);	/* closes the socket and SSL */
	c->c_io = NULL;
	if (c->c_preferred)
		STAT_DEC(worker_stats(w), STAT_HOME_CONNECTIONS);
	if (c->c_notideal && c->c_registered)
		STAT_DEC(worker_stats(w), STAT_NOTIDEAL_CONNECTIONS);
	if (c->c_watcher)
		STAT_DEC(worker_stats(w), STAT_WATCHERS);
	if (c->c_registered && control_monitoring(c->c_env->d_control)) {
		cJSON *ev = conn_event_data(c);
		cJSON_AddStringToObject(ev, "reason", stats_close_name(r));
		control_event(c->c_env->d_control, "client.disconnect", ev);
	}
	if (c->c_registered) {
		uint8_t	(*kept)[32];
		size_t	 nkept;

		c->c_registered = 0;
		if (peers_remove_sent(worker_env(w)->d_peers, c->c_key, c,
		    (const uint8_t (*)[32])c->c_sent, c->c_sent_cap, &kept,
		    &nkept)) {
			/* Earlier duplicates' receivers are owed one too. */
			for (size_t i = 0; i < nkept; i++)
				conn_note_sent(c, kept[i]);
			free(kept);
			conn_send_peer_gone(c);
		}
	}
	pthread_mutex_lock(&c->c_qlock);
	c->c_closed = 1;
	pktq_clear(&c->c_dataq, count_gone, &d);
	pktq_clear(&c->c_discoq, count_gone, &d);
	for (m = c->c_ctl_head; m != NULL; m = n) {
		n = m->cm_next;
		free(m);
	}
	c->c_ctl_head = c->c_ctl_tail = NULL;
	c->c_nctl = 0;
	pthread_mutex_unlock(&c->c_qlock);
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

void
conn_accept(struct worker *w, int fd, const struct sockaddr *sa,
    socklen_t salen, int port80)
{
	struct derpd	*env = worker_env(w);
	struct conn	*c;
	SSL		*ssl = NULL;
	int		 tls = env->d_conf->dc_tls && !port80;
	uint64_t	 held;

	STAT_INC(worker_stats(w), STAT_ACCEPTS);
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warnx("accept: out of memory");
		stats_close(worker_stats(w), CLOSE_NO_MEMORY);
		close(fd);
		return;
	}
	c->c_id = __atomic_add_fetch(&env->d_next_conn_id, 1,
	    __ATOMIC_RELAXED);
	c->c_w = w;
	c->c_env = env;
	c->c_refs = 1;		/* the owner's */
	c->c_tls = tls;
	c->c_port80 = port80;
	if (salen > sizeof(c->c_sa))
		salen = sizeof(c->c_sa);
	memcpy(&c->c_sa, sa, salen);
	util_addr_format(sa, c->c_addr, sizeof(c->c_addr));
	c->c_connected_ms = util_now_ms();
	c->c_since = (int64_t)time(NULL);
	c->c_nothere_tokens = 3;
	c->c_nothere_ms = c->c_connected_ms;
	c->c_resp_reason = CLOSE_HTTP_DONE;
	c->c_keepalive_ms = DERPD_KEEPALIVE_MS +
	    randombytes_uniform(DERPD_KEEPALIVE_JITTER_MS);
	pthread_mutex_init(&c->c_qlock, NULL);
	pktq_init(&c->c_dataq, PKTQ_MAX_DEPTH);
	pktq_init(&c->c_discoq, PKTQ_MAX_DEPTH);
	c->c_ctl_cap = CTL_MAX_PENDING;
	set_sockopts(env->d_conf, fd);
	evutil_make_socket_nonblocking(fd);

	if (tls && (ssl = tls_ssl_new(env->d_tls)) == NULL) {
		log_ssl_errors("SSL_new");
		goto fail;
	}
	c->c_state = tls ? CONN_TLS_HANDSHAKE : CONN_HTTP_HEAD;
	if ((c->c_io = io_new(worker_base(w), fd, ssl, &conn_io_cbs, c)) == NULL) {
		SSL_free(ssl);
		goto fail;
	}
	if ((c->c_timer = evtimer_new(worker_base(w), conn_timer_cb, c)) == NULL) {
		io_free(c->c_io);
		goto fail_nofd;
	}
	conn_timer_set(c, (uint64_t)env->d_conf->dc_handshake_timeout_ms);
	worker_track(w, &c->c_node);
	STAT_INC(worker_stats(w), STAT_CONNECTIONS);
	log_debug("conn %llu %s: accepted%s", (unsigned long long)c->c_id,
	    c->c_addr, tls ? " (tls)" : "");
	return;
fail:
	close(fd);
fail_nofd:
	if (log_rate_allow(worker_lograte(w), util_now_ms(), CONN_LOG_RATE,
	    CONN_LOG_BURST, &held))
		log_warnx("accept %s: cannot set up connection", c->c_addr);
	else
		STAT_INC(worker_stats(w), STAT_LOG_HELD);
	stats_close(worker_stats(w), CLOSE_NO_MEMORY);
	pthread_mutex_destroy(&c->c_qlock);
	free(c);
}

/* Queue a complete HTTP response and close once it is written. */
static void
conn_http_respond(struct conn *c, int code, const char *extra,
    const char *ctype, const char *body, int head_only)
{
	char	 buf[8192];
	size_t	 blen = body ? strlen(body) : 0, n;

	n = http_build_response(buf, sizeof(buf), code, extra, ctype, body,
	    blen, head_only);
	if (n == 0) {
		conn_close(c, CLOSE_NO_MEMORY, "response too large");
		return;
	}
	io_stop_read(c->c_io);
	conn_set_state(c, CONN_HTTP_RESPONSE);
	evbuffer_add(io_output(c->c_io), buf, n);
	io_flush(c->c_io);
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
    "%s</body></html>\n";

static int
conn_is_loopback(const struct conn *c)
{
	if (c->c_sa.ss_family == AF_INET) {
		const struct sockaddr_in *s4 =
		    (const struct sockaddr_in *)&c->c_sa;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (c->c_sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)&c->c_sa;
		/* Dual-stack listeners see IPv4 peers as ::ffff:a.b.c.d. */
		return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    s6->sin6_addr.s6_addr[12] == 127);
	}
	return 0;
}

static void	conn_start_derp(struct conn *, const struct http_req *);

static void
conn_route(struct conn *c, const struct http_req *req)
{
	struct derpd_conf	*conf = c->c_env->d_conf;
	int			 get_or_head = strcmp(req->hr_method, "GET") == 0 ||
				    strcmp(req->hr_method, "HEAD") == 0;
	int			 head = strcmp(req->hr_method, "HEAD") == 0;
	char			 extra[HTTP_PATH_MAX + 2 * HTTP_VALUE_MAX + 64];

	STAT_INC(worker_stats(c->c_w), STAT_HTTP_REQUESTS);
	log_debug("conn %llu %s: %s %s", (unsigned long long)c->c_id,
	    c->c_addr, req->hr_method, req->hr_path);
	if (strcmp(req->hr_path, "/generate_204") == 0) {
		int n = snprintf(extra, sizeof(extra), "Cache-Control: no-cache, "
		    "no-store, must-revalidate, no-transform, max-age=0\r\n");
		if (http_challenge_ok(req))
			snprintf(extra + n, sizeof(extra) - (size_t)n,
			    "X-Tailscale-Response: response %s\r\n",
			    req->hr_challenge);
		conn_http_respond(c, 204, extra, NULL, NULL, 1);
		return;
	}
	if (strncmp(req->hr_path, "/debug", 6) == 0 &&
	    (req->hr_path[6] == '\0' || req->hr_path[6] == '/')) {
		if (!conn_is_loopback(c) || req->hr_forwarded) {
			conn_http_respond(c, 403, NULL, "text/plain; "
			    "charset=utf-8", "debug access denied\n", head);
			return;
		}
		if (strcmp(req->hr_path, "/debug/varz") == 0) {
			struct evbuffer *out = io_output(c->c_io);
			struct evbuffer *b = evbuffer_new();
			if (b == NULL) {
				conn_close(c, CLOSE_NO_MEMORY, "varz");
				return;
			}
			varz_render(c->c_env, b);
			evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
			    "Content-Type: text/plain; version=0.0.4\r\n"
			    "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			    evbuffer_get_length(b));
			if (!head)
				evbuffer_add_buffer(out, b);
			evbuffer_free(b);
			io_stop_read(c->c_io);
			conn_set_state(c, CONN_HTTP_RESPONSE);
			io_flush(c->c_io);
			return;
		}
		conn_http_respond(c, 404, NULL, "text/plain; charset=utf-8",
		    "404 page not found\n", head);
		return;
	}
	if (c->c_port80) {
		/* Plain port in TLS mode: never DERP, send to HTTPS. */
		if (!get_or_head) {
			conn_http_respond(c, 400, NULL, "text/plain; "
			    "charset=utf-8", "Use HTTPS\n", 0);
			return;
		}
		snprintf(extra, sizeof(extra), "Location: https://%s%s\r\n",
		    req->hr_host, req->hr_target);
		conn_http_respond(c, 302, extra, NULL, NULL, head);
		return;
	}
	if (c->c_tls && strcmp(req->hr_method, "CONNECT") == 0) {
		conn_http_respond(c, 403, NULL, "text/plain; charset=utf-8",
		    "CONNECT not enabled\n", 0);
		return;
	}
	if (strcmp(req->hr_path, "/derp") == 0) {
		char up[HTTP_VALUE_MAX];

		if (!conf->dc_derp) {
			conn_http_respond(c, 404, NULL, "text/plain; "
			    "charset=utf-8", "derp server disabled\n", head);
			return;
		}
		for (size_t i = 0; i < sizeof(up); i++) {
			up[i] = (char)tolower((unsigned char)req->hr_upgrade[i]);
			if (up[i] == '\0')
				break;
		}
		if (strcmp(up, "websocket") == 0 &&
		    strstr(req->hr_ws_protocol, "derp") != NULL) {
			conn_http_respond(c, 501, NULL, "text/plain; "
			    "charset=utf-8", "DERP over WebSocket is not "
			    "supported by this server\n", head);
			return;
		}
		if (strcmp(up, "derp") != 0 && strcmp(up, "websocket") != 0) {
			if (up[0] != '\0')
				conn_log(c, "weird upgrade: %s",
				    req->hr_upgrade);
			conn_http_respond(c, 426, NULL, "text/plain; "
			    "charset=utf-8", "DERP requires connection "
			    "upgrade\n", head);
			return;
		}
		conn_start_derp(c, req);
		return;
	}
	if (strcmp(req->hr_path, "/derp/probe") == 0 ||
	    strcmp(req->hr_path, "/derp/latency-check") == 0) {
		if (!get_or_head) {
			conn_http_respond(c, 405, NULL, "text/plain; "
			    "charset=utf-8", "bogus probe method\n", 0);
			return;
		}
		conn_http_respond(c, 200, "Access-Control-Allow-Origin: *\r\n",
		    NULL, NULL, head);
		return;
	}
	if (strcmp(req->hr_path, "/robots.txt") == 0) {
		conn_http_respond(c, 200, "Strict-Transport-Security: "
		    "max-age=63072000; includeSubDomains\r\n"
		    "Content-Security-Policy: default-src 'self'; "
		    "frame-ancestors 'none'; form-action 'self'; base-uri "
		    "'self'; block-all-mixed-content; object-src 'none'\r\n"
		    "X-Frame-Options: DENY\r\nX-Content-Type-Options: "
		    "nosniff\r\n", "text/plain; charset=utf-8",
		    "User-agent: *\nDisallow: /\n", head);
		return;
	}
	if (strcmp(req->hr_path, "/bootstrap-dns") == 0) {
		/* No names configured: an empty body, as derper sends. */
		conn_http_respond(c, 200, NULL, "application/json", NULL, head);
		return;
	}
	/* Everything else is the home page. */
	if (strncmp(conf->dc_home, "http", 4) == 0) {
		snprintf(extra, sizeof(extra), "Location: %.1000s\r\n",
		    conf->dc_home);
		conn_http_respond(c, 302, extra, NULL, NULL, head);
	} else if (strcmp(conf->dc_home, "blank") == 0) {
		conn_http_respond(c, 200, NULL, "text/html; charset=utf-8",
		    NULL, head);
	} else {
		char body[2048];
		snprintf(body, sizeof(body), home_html, conf->dc_derp ? "" :
		    "<p>Status: disabled</p>\n");
		conn_http_respond(c, 200, NULL, "text/html; charset=utf-8",
		    body, head);
	}
}

static void	conn_handle_input(struct conn *);

/* Upgrade accepted: 101 (unless fast start) and ServerKey, one write. */
static void
conn_start_derp(struct conn *c, const struct http_req *req)
{
	struct evbuffer	*out = io_output(c->c_io);
	uint8_t		 sk[FRAME_HDR_LEN + FRAME_SERVERKEY_LEN];
	char		 hex[65];
	int		 fast = strcmp(req->hr_fast_start, "1") == 0;

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
	evtimer_del(c->c_timer);
	conn_timer_set(c, (uint64_t)c->c_env->d_conf->dc_handshake_timeout_ms);
}

static void
conn_read_http(struct conn *c)
{
	struct evbuffer		*in = io_input(c->c_io);
	size_t			 len = evbuffer_get_length(in), head_len;
	struct http_req		*req;
	const char		*p;
	enum http_status	 st;

	if (len > HTTP_MAX_HEAD)
		len = HTTP_MAX_HEAD;
	p = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
	st = http_head_end(p, len, &c->c_scan, &head_len);
	if (st == HTTP_NEED_MORE)
		return;
	if (st == HTTP_TOO_LARGE) {
		conn_log(c, "request head larger than %d bytes",
		    HTTP_MAX_HEAD);
		c->c_resp_reason = CLOSE_HEAD_TOO_LARGE;
		conn_http_respond(c, 431, NULL, "text/plain; charset=utf-8",
		    "request header fields too large\n", 0);
		return;
	}
	if ((req = malloc(sizeof(*req))) == NULL) {
		conn_close(c, CLOSE_NO_MEMORY, "http request");
		return;
	}
	if (http_parse_head(p, head_len, req) != HTTP_OK) {
		free(req);
		conn_log(c, "malformed request head");
		c->c_resp_reason = CLOSE_BAD_REQUEST;
		conn_http_respond(c, 400, NULL, "text/plain; charset=utf-8",
		    "bad request\n", 0);
		return;
	}
	evbuffer_drain(in, head_len);
	conn_route(c, req);
	free(req);
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
static int
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
	if (util_is_zero(p, 32)) {
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
	memcpy(c->c_key, p, 32);
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
		evtimer_del(c->c_timer);
		/* Room for both HTTP backends in a row, plus some queueing. */
		conn_timer_set(c, (uint64_t)(env->d_conf->dc_handshake_timeout_ms +
		    2 * env->d_auth_conf->ac_timeout_ms + 1000));
		return 1;
	}
	conn_admit(c, shared, "none", 0);
	sodium_memzero(shared, sizeof(shared));
	return 0;
}

/* Admitted: register, send ServerInfo, go ACTIVE (owner thread). */
static void
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
	    (unsigned long long)c->c_id, c->c_addr, ks,
	    c->c_mesh ? " (mesh peer)" : "", c->c_prober ? " (prober)" : "",
	    how, cached ? ", cached" : "");
	conn_set_state(c, CONN_ACTIVE);
	STAT_INC(worker_stats(c->c_w), STAT_DERP_CONNECTIONS);
	if (control_monitoring(env->d_control))
		control_event(env->d_control, "client.connect",
		    conn_event_data(c));
	/* Mesh peers get derper's fixed 30 s; others --tcp-write-timeout. */
	io_set_write_timeout(c->c_io, c->c_mesh ? DERPD_MESH_WRITE_TIMEOUT_MS :
	    env->d_conf->dc_tcp_write_timeout_ms);
	io_set_low_mark(c->c_io, DERPD_OUT_HIGH_WATER / 4);
	evtimer_del(c->c_timer);
	conn_timer_set(c, c->c_keepalive_ms);
}

/* Engine thread: the admission result is ready; wake the owner. */
static void
conn_auth_notify(void *arg)
{
	struct conn	*c = arg;
	int		 sched = 0;

	pthread_mutex_lock(&c->c_qlock);
	sched = conn_claim_sched(c);
	pthread_mutex_unlock(&c->c_qlock);
	if (sched)
		conn_schedule(NULL, c);
}

/* Owner thread: act on a finished admission check. */
static void
conn_auth_poll(struct conn *c)
{
	enum auth_reason	 reason;
	const char		*backend;
	int			 cached;

	if (c->c_auth == NULL || !auth_req_result(c->c_auth, &reason,
	    &backend, &cached))
		return;
	auth_cancel(c->c_auth);		/* releases the handle */
	c->c_auth = NULL;
	if (reason != AUTH_OK) {
		sodium_memzero(c->c_shared, sizeof(c->c_shared));
		auth_note_reject(c->c_env->d_auth, reason,
		    (const struct sockaddr *)&c->c_sa, c->c_key);
		if (control_monitoring(c->c_env->d_control)) {
			cJSON *d = cJSON_CreateObject();
			char k[KEY_TEXT_SIZE], ip[64], *colon;
			util_key_format(c->c_key, NODEKEY_PREFIX, k);
			util_strlcpy(ip, c->c_addr, sizeof(ip));
			if ((colon = strrchr(ip, ':')) != NULL)
				*colon = '\0';
			cJSON_AddStringToObject(d, "key", k);
			cJSON_AddStringToObject(d, "source", ip);
			cJSON_AddStringToObject(d, "reason",
			    auth_reason_name(reason));
			control_event(c->c_env->d_control, "client.reject", d);
		}
		conn_close(c, CLOSE_ADMISSION_DENIED, "%s (%s%s)",
		    auth_reason_name(reason), backend, cached ? ", cached" : "");
		return;
	}
	conn_admit(c, c->c_shared, backend, cached);
	sodium_memzero(c->c_shared, sizeof(c->c_shared));
	if (c->c_state != CONN_ACTIVE)
		return;
	/* Frames pipelined behind ClientInfo waited for the verdict. */
	io_resume_read(c->c_io);
	conn_read_frames(c);
	if (c->c_state == CONN_ACTIVE)
		io_flush(c->c_io);
}

/* Room for more frames in the output buffer? */
static int
conn_out_has_room(const struct conn *c)
{
	return evbuffer_get_length(io_output(c->c_io)) <
	    DERPD_OUT_HIGH_WATER;
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
conn_send_not_here(struct conn *c, const uint8_t key[32])
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
 * Relay a packet of plen bytes at the head of in to dst, from src.
 * fwd marks a ForwardPacket (local delivery only, other drop reason).
 */
static void
conn_relay(struct conn *c, struct evbuffer *in, const uint8_t dst[32],
    const uint8_t src[32], uint32_t plen, int fwd)
{
	struct worker	*w = c->c_w;
	struct pkt	*p;
	void		*obj;
	uint8_t		 peek[FRAME_DISCO_MIN];
	int		 disco;

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
	switch (peers_lookup(c->c_env->d_peers, dst, &obj)) {
	case PEERS_FOUND:
		break;
	case PEERS_DUP_INACTIVE:
		evbuffer_drain(in, plen);
		stats_drop(worker_stats(w), DROP_DUP_CLIENT, disco, plen);
		return;
	case PEERS_NONE:
		evbuffer_drain(in, plen);
		stats_drop(worker_stats(w), fwd ? DROP_UNKNOWN_DEST_ON_FWD :
		    DROP_UNKNOWN_DEST, disco, plen);
		if (disco)
			conn_send_not_here(c, dst);
		return;
	}
	if ((p = pkt_new(plen)) == NULL) {
		evbuffer_drain(in, plen);
		stats_drop(worker_stats(w), DROP_NO_MEMORY, disco, plen);
		conn_unref(obj);
		return;
	}
	frame_put_header(p->p_frame, FRAME_RECV_PACKET, plen + FRAME_KEY_LEN);
	memcpy(p->p_frame + FRAME_HDR_LEN, src, FRAME_KEY_LEN);
	evbuffer_remove(in, p->p_frame + FRAME_HDR_LEN + FRAME_KEY_LEN, plen);
	p->p_disco = (uint8_t)disco;
	if (!fwd)
		conn_note_sent(c, dst);
	conn_enqueue_pkt(w, obj, p);
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
static void
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
	uint8_t		 k1[32], k2[32], b[CTL_FRAME_MAX];

	switch (type) {
	case FRAME_SEND_PACKET:
		evbuffer_remove(in, k1, 32);
		conn_relay(c, in, k1, c->c_key, len - 32, 0);
		break;
	case FRAME_FORWARD_PACKET:
		if (!c->c_mesh) {
			conn_close(c, CLOSE_NOT_MESH, "ForwardPacket from a "
			    "non-mesh client");
			return;
		}
		evbuffer_remove(in, k1, 32);	/* source */
		evbuffer_remove(in, k2, 32);	/* destination */
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
		if (memcmp(c->c_key, c->c_env->d_key->sk_pub, 32) == 0 ||
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
		}
		break;
	case FRAME_CLOSE_PEER: {
		char ks[8];
		if (!c->c_mesh) {
			conn_close(c, CLOSE_NOT_MESH, "ClosePeer from a "
			    "non-mesh client");
			return;
		}
		evbuffer_remove(in, k1, 32);
		util_key_short(k1, ks);
		if (peers_kick_key(c->c_env->d_peers, k1) == 0)
			log_info("conn %llu %s: close peer %s: not connected",
			    (unsigned long long)c->c_id, c->c_addr, ks);
		else
			log_info("conn %llu %s: close peer %s",
			    (unsigned long long)c->c_id, c->c_addr, ks);
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

/* Parse and handle every complete frame in the input buffer. */
static void
conn_read_frames(struct conn *c)
{
	struct evbuffer	*in = io_input(c->c_io);
	uint8_t		 hdr[FRAME_HDR_LEN], type;
	uint32_t	 len;
	size_t		 avail;
	const char	*why;
	int		 dup_noted = 0;

	while (c->c_state == CONN_ACTIVE) {
		avail = evbuffer_get_length(in);
		if (c->c_discard > 0) {
			size_t n = avail < c->c_discard ? avail : c->c_discard;
			evbuffer_drain(in, n);
			c->c_discard -= (uint32_t)n;
			if (c->c_discard > 0)
				return;
			continue;
		}
		if (avail < FRAME_HDR_LEN)
			return;
		evbuffer_copyout(in, hdr, sizeof(hdr));
		frame_get_header(hdr, sizeof(hdr), &type, &len);
		if (frame_check_client_len(type, len, &why) != FRAME_OK) {
			conn_close(c, CLOSE_BAD_FRAME, "frame 0x%02x length %u: "
			    "%s", type, len, why);
			return;
		}
		if (!dup_noted &&
		    __atomic_load_n(&c->c_dup, __ATOMIC_RELAXED)) {
			/* Any frame makes a duplicate the active one. */
			peers_note_activity(c->c_env->d_peers, c->c_key, c);
			dup_noted = 1;
		}
		if (!frame_is_handled(type)) {
			/* Unknown types are read and thrown away, any size. */
			evbuffer_drain(in, FRAME_HDR_LEN);
			c->c_discard = len;
			STAT_INC(worker_stats(c->c_w), STAT_UNKNOWN_FRAMES);
			continue;
		}
		if (avail < FRAME_HDR_LEN + (size_t)len)
			return;
		evbuffer_drain(in, FRAME_HDR_LEN);
		conn_frame(c, in, type, len);
	}
}

static void
conn_handle_input(struct conn *c)
{
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
		if (evbuffer_get_length(io_output(c->c_io)) == 0)
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
		if (c->c_state == CONN_TLS_HANDSHAKE)
			conn_set_state(c, CONN_HTTP_HEAD);
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
	}
}

static const struct io_cbs conn_io_cbs = {
	.ic_read = conn_io_read,
	.ic_drain = conn_io_drain,
	.ic_event = conn_io_event,
};

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;
	uint8_t		 ka[FRAME_HDR_LEN];

	(void)fd;
	(void)what;
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
		if (conn_out_has_room(c)) {
			evbuffer_add(io_output(c->c_io), ka,
			    frame_build_keepalive(ka));
			io_flush(c->c_io);
			/* A failed write closed c and freed the timer. */
			if (c->c_state != CONN_ACTIVE)
				break;
		}
		conn_timer_set(c, c->c_keepalive_ms);
		break;
	case CONN_CLOSING:
		break;
	}
}

/*
 * Move queued frames into the output buffer up to the high-water mark and
 * write them (owner thread). Disco before data; control frames only once
 * both packet queues are empty, so a PeerGone never overtakes a packet
 * from that peer queued before it.
 */
static void
conn_flush(struct conn *c, int from_list)
{
	struct evbuffer	*out;
	struct pkt	*batch[2 * PKTQ_MAX_DEPTH];
	struct ctlmsg	*ctl;
	size_t		 room, nb, used, total;
	struct worker	*w = c->c_w;
	int		 more;

	/*
	 * Only the run list that held c may clear c_sched: a drain refill
	 * while c is still listed must not let it be listed twice.
	 */
	if (from_list) {
		pthread_mutex_lock(&c->c_qlock);
		c->c_sched = 0;
		pthread_mutex_unlock(&c->c_qlock);
	}
	if (c->c_state == CONN_CLOSING)
		return;
	if (c->c_state == CONN_AUTH_PENDING) {
		conn_auth_poll(c);
		return;
	}
	if (c->c_auth != NULL && c->c_state == CONN_ACTIVE) {
		conn_reverify_poll(c);
		if (c->c_state != CONN_ACTIVE)
			return;
	}
	pthread_mutex_lock(&c->c_qlock);
	more = c->c_ctl_overflow;
	pthread_mutex_unlock(&c->c_qlock);
	if (more) {
		conn_close(c, CLOSE_WATCHER_OVERFLOW, "watcher more than %d "
		    "updates behind", WATCH_MAX_PENDING);
		return;
	}
	switch (__atomic_load_n(&c->c_kick, __ATOMIC_RELAXED)) {
	case 1:
		conn_close(c, CLOSE_CLOSE_PEER, "closed by a mesh peer");
		return;
	case 2:
		conn_close(c, CLOSE_KICKED, "kicked by an operator");
		return;
	}
	if (c->c_state != CONN_ACTIVE)
		return;
	out = io_output(c->c_io);
	c->c_flushing = 1;
	for (;;) {
		used = evbuffer_get_length(out);
		room = used < DERPD_OUT_HIGH_WATER ?
		    DERPD_OUT_HIGH_WATER - used : 0;
		nb = 0;
		ctl = NULL;
		pthread_mutex_lock(&c->c_qlock);
		while (room > 0 && nb < 2 * PKTQ_MAX_DEPTH) {
			struct pkt *p = pktq_pop(&c->c_discoq);
			if (p == NULL && (p = pktq_pop(&c->c_dataq)) == NULL)
				break;
			batch[nb++] = p;
			room = PKT_FRAME_LEN(p) < room ?
			    room - PKT_FRAME_LEN(p) : 0;
		}
		more = pktq_len(&c->c_discoq) + pktq_len(&c->c_dataq) > 0;
		if (!more) {
			ctl = c->c_ctl_head;
			c->c_ctl_head = c->c_ctl_tail = NULL;
			c->c_nctl = 0;
		}
		pthread_mutex_unlock(&c->c_qlock);
		if (nb == 0 && ctl == NULL)
			break;
		/*
		 * One contiguous run for the batch: TLS then makes big
		 * records instead of one record and one write per packet.
		 */
		total = 0;
		for (struct ctlmsg *m = ctl; m != NULL; m = m->cm_next)
			total += m->cm_len;
		for (size_t i = 0; i < nb; i++)
			total += PKT_FRAME_LEN(batch[i]);
		evbuffer_expand(out, total);
		for (size_t i = 0; i < nb; i++) {
			struct pkt *p = batch[i];
			STAT_INC(worker_stats(w), STAT_PACKETS_SENT);
			STAT_ADD(worker_stats(w), STAT_BYTES_SENT, p->p_len);
			stats_add(&c->c_pkts_out, 1);
			stats_add(&c->c_bytes_out, p->p_len);
			if (evbuffer_add(out, p->p_frame, PKT_FRAME_LEN(p)) != 0)
				stats_drop(worker_stats(w), DROP_NO_MEMORY,
				    p->p_disco, p->p_len);
			pkt_free(p);
		}
		while (ctl != NULL) {
			struct ctlmsg *n = ctl->cm_next;
			evbuffer_add(out, ctl->cm_buf, ctl->cm_len);
			free(ctl);
			ctl = n;
		}
		io_flush(c->c_io);
		if (c->c_state == CONN_CLOSING)
			return;
		/* Left over and the socket is full: the drain callback refills. */
		if (!more || evbuffer_get_length(out) >= DERPD_OUT_HIGH_WATER)
			break;
	}
	/* A full output buffer ends this; its drain callback resumes it. */
	while (c->c_watcher && !c->c_watch_synced && conn_out_has_room(c)) {
		conn_watch_pump(c);
		io_flush(c->c_io);
		if (c->c_state == CONN_CLOSING)
			return;
	}
	c->c_flushing = 0;
}

#define CONN_OF(p, field) \
	((struct conn *)(void *)((char *)(p) - offsetof(struct conn, field)))

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
	conn_unref(CONN_OF(it, c_reapit));
}

static void
wo_shutdown(struct worker *w)
{
	struct worker_node *n;

	while ((n = worker_first(w)) != NULL)
		conn_close(CONN_OF(n, c_node), CLOSE_SHUTDOWN, "shutting down");
}

static void	conn_reverify_all(struct worker *);

const struct worker_ops conn_worker_ops = {
	.wo_accept = conn_accept,
	.wo_run = wo_run,
	.wo_drop = wo_drop,
	.wo_reap = wo_reap,
	.wo_shutdown = wo_shutdown,
	.wo_tick = conn_reverify_all,
};

/* key, addr, worker: the identity part of admin output and events. */
static cJSON *
conn_event_data(struct conn *c)
{
	cJSON	*o = cJSON_CreateObject();
	char	 k[KEY_TEXT_SIZE];

	util_key_format(c->c_key, NODEKEY_PREFIX, k);
	cJSON_AddStringToObject(o, "key", k);
	cJSON_AddStringToObject(o, "addr", c->c_addr);
	cJSON_AddNumberToObject(o, "worker", worker_id(c->c_w));
	return o;
}

/* What "show clients" reports of one connection, copied under the lock. */
struct ctl_row {
	uint8_t		 r_key[KEY_LEN];
	char		 r_addr[64];
	char		 r_admitted_by[16];
	int		 r_worker;
	int64_t		 r_since;
	bool		 r_home, r_mesh, r_prober, r_dup, r_cached;
	uint64_t	 r_pkts_in, r_bytes_in, r_pkts_out, r_bytes_out, r_drops;
};

struct ctl_list {
	const char	*cl_prefix;
	struct ctl_row	*cl_rows;
	size_t		 cl_n, cl_cap;
	int		 cl_nomem;
};

/*
 * Registry read lock held: copy only immutable fields and relaxed
 * counters, and nothing slow. The reply is built after the lock is gone,
 * so a large "show clients" does not hold up connects and disconnects.
 */
static void
ctl_list_one(void *obj, bool active, void *arg)
{
	struct conn	*c = obj;
	struct ctl_list	*l = arg;
	struct ctl_row	*r;
	char		 k[KEY_TEXT_SIZE];

	(void)active;
	if (l->cl_prefix != NULL) {
		size_t plen = strlen(l->cl_prefix);
		util_key_format(c->c_key, NODEKEY_PREFIX, k);
		if (strncmp(k, l->cl_prefix, plen) != 0 &&
		    strncmp(k + 8, l->cl_prefix, plen) != 0)
			return;
	}
	if (l->cl_n == l->cl_cap) {
		size_t nc = l->cl_cap ? l->cl_cap * 2 : 64;
		struct ctl_row *nr = realloc(l->cl_rows, nc * sizeof(*nr));
		if (nr == NULL) {
			l->cl_nomem = 1;
			return;
		}
		l->cl_rows = nr;
		l->cl_cap = nc;
	}
	r = &l->cl_rows[l->cl_n++];
	memcpy(r->r_key, c->c_key, KEY_LEN);
	util_strlcpy(r->r_addr, c->c_addr, sizeof(r->r_addr));
	util_strlcpy(r->r_admitted_by, c->c_admitted_by,
	    sizeof(r->r_admitted_by));
	r->r_worker = worker_id(c->c_w);
	r->r_since = c->c_since;
	r->r_home = __atomic_load_n(&c->c_preferred, __ATOMIC_RELAXED);
	r->r_mesh = c->c_mesh;
	r->r_prober = c->c_prober;
	r->r_dup = __atomic_load_n(&c->c_dup, __ATOMIC_RELAXED);
	r->r_cached = c->c_admit_cached;
	r->r_pkts_in = stats_get(&c->c_pkts_in);
	r->r_bytes_in = stats_get(&c->c_bytes_in);
	r->r_pkts_out = stats_get(&c->c_pkts_out);
	r->r_bytes_out = stats_get(&c->c_bytes_out);
	r->r_drops = __atomic_load_n(&c->c_drops, __ATOMIC_RELAXED);
}

size_t
conn_ctl_list(struct derpd *env, const uint8_t *key, const char *prefix,
    cJSON *arr)
{
	struct ctl_list	 l = { prefix, NULL, 0, 0, 0 };
	char		 k[KEY_TEXT_SIZE];
	size_t		 i;

	peers_foreach(env->d_peers, key, ctl_list_one, &l);
	for (i = 0; i < l.cl_n; i++) {
		struct ctl_row	*r = &l.cl_rows[i];
		cJSON		*o = cJSON_CreateObject();

		util_key_format(r->r_key, NODEKEY_PREFIX, k);
		cJSON_AddStringToObject(o, "key", k);
		cJSON_AddStringToObject(o, "addr", r->r_addr);
		cJSON_AddNumberToObject(o, "worker", r->r_worker);
		cJSON_AddNumberToObject(o, "connected_since",
		    (double)r->r_since);
		cJSON_AddBoolToObject(o, "home", r->r_home);
		cJSON_AddBoolToObject(o, "mesh", r->r_mesh);
		cJSON_AddBoolToObject(o, "prober", r->r_prober);
		cJSON_AddBoolToObject(o, "duplicate", r->r_dup);
		cJSON_AddNumberToObject(o, "packets_in", (double)r->r_pkts_in);
		cJSON_AddNumberToObject(o, "bytes_in", (double)r->r_bytes_in);
		cJSON_AddNumberToObject(o, "packets_out",
		    (double)r->r_pkts_out);
		cJSON_AddNumberToObject(o, "bytes_out", (double)r->r_bytes_out);
		cJSON_AddNumberToObject(o, "drops", (double)r->r_drops);
		cJSON_AddStringToObject(o, "admitted_by", r->r_admitted_by);
		cJSON_AddBoolToObject(o, "admit_cached", r->r_cached);
		cJSON_AddItemToArray(arr, o);
	}
	if (l.cl_nomem)
		log_warnx("show clients: out of memory; the list is partial");
	free(l.cl_rows);
	return i;
}

static void
ctl_kick_one(void *obj, bool active, void *arg)
{
	(void)active;
	conn_kick(obj, 2);
	(*(size_t *)arg)++;
}

size_t
conn_ctl_kick(struct derpd *env, const uint8_t key[32])
{
	size_t n = 0;

	peers_foreach(env->d_peers, key, ctl_kick_one, &n);
	return n;
}

/* A re-verification finished: a key that is no longer welcome goes. */
static void
conn_reverify_poll(struct conn *c)
{
	enum auth_reason	 reason;
	const char		*backend;
	int			 cached;

	if (!auth_req_result(c->c_auth, &reason, &backend, &cached))
		return;
	auth_cancel(c->c_auth);
	c->c_auth = NULL;
	if (reason == AUTH_OK)
		return;
	if (!auth_reason_is_denial(reason)) {
		/* An outage is not a verdict: keep the client, ask again. */
		log_debug("conn %llu %s: re-verification inconclusive: %s",
		    (unsigned long long)c->c_id, c->c_addr,
		    auth_reason_name(reason));
		return;
	}
	auth_note_reject(c->c_env->d_auth, AUTH_REVOKED,
	    (const struct sockaddr *)&c->c_sa, c->c_key);
	conn_close(c, CLOSE_REVOKED, "no longer admitted: %s (%s)",
	    auth_reason_name(reason), backend);
}

static void
conn_reverify_all(struct worker *w)
{
	struct derpd	*env = worker_env(w);

	for (struct worker_node *n = worker_first(w); n != NULL;
	    n = worker_next(n)) {
		struct conn *c = CONN_OF(n, c_node);

		if (c->c_state != CONN_ACTIVE || c->c_mesh || c->c_auth != NULL)
			continue;
		c->c_auth = auth_check_fresh(env->d_auth, c->c_key,
		    (const struct sockaddr *)&c->c_sa, conn_auth_notify, c);
	}
}
