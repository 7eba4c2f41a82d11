/* SPDX-License-Identifier: ISC */
/*
 * mesh.c: the mesh peers of --mesh-with. Each lives on one worker, which
 * resolves its name (evdns, on the loop), connects, and hands the socket
 * to conn_mesh.c; when the link closes, the routes it taught us go (with
 * PeerGone to whoever heard from those keys, as derper does) and it dials
 * again after a backoff with jitter.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "conn.h"
#include "derpd.h"
#include "keys.h"
#include "log.h"
#include "mesh_int.h"
#include "peer.h"
#include "util.h"
#include "worker.h"

#define MESH_BACKOFF_MIN_MS	250
#define MESH_BACKOFF_MAX_MS	5000	/* derper retries every 5 s */

static const char *const state_names[] = {
	[MESH_IDLE] = "idle",
	[MESH_CONNECTING] = "connecting",
	[MESH_CONNECTED] = "connected",
	[MESH_BACKOFF] = "backoff",
	[MESH_SELF] = "self",
	[MESH_STOPPED] = "stopped",
};

int
mesh_parse_list(const char *list, struct mesh_target *out, size_t max,
    size_t *n, char *err, size_t errlen)
{
	const char	*p = list, *end, *slash;
	char		 entry[2 * MESH_HOST_MAX + 2];
	size_t		 len;

	*n = 0;
	if (list[0] == '\0')
		return 0;
	for (;;) {
		struct mesh_target *t;

		end = strchr(p, ',');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len == 0) {
			snprintf(err, errlen, "empty entry in the list");
			return -1;
		}
		if (len >= sizeof(entry)) {
			snprintf(err, errlen, "entry too long");
			return -1;
		}
		memcpy(entry, p, len);
		entry[len] = '\0';
		if (*n == max) {
			snprintf(err, errlen, "more than %zu peers", max);
			return -1;
		}
		t = &out[*n];
		memset(t, 0, sizeof(*t));
		if ((slash = strchr(entry, '/')) != NULL) {
			if (strchr(slash + 1, '/') != NULL) {
				snprintf(err, errlen, "too many components in "
				    "host tuple \"%s\"", entry);
				return -1;
			}
			entry[slash - entry] = '\0';
			util_strlcpy(t->mt_dial, slash + 1, sizeof(t->mt_dial));
		}
		if (entry[0] == '\0' || strlen(entry) >= sizeof(t->mt_host) ||
		    (slash != NULL && t->mt_dial[0] == '\0')) {
			snprintf(err, errlen, "bad entry \"%s\"", entry);
			return -1;
		}
		util_strlcpy(t->mt_host, entry, sizeof(t->mt_host));
		/* host, host:port, [v6], [v6]:port, or a bare v6 address */
		if (entry[0] == '[') {
			char *rb = strchr(entry, ']');
			if (rb == NULL || (rb[1] != '\0' && rb[1] != ':')) {
				snprintf(err, errlen, "bad host \"%s\"", entry);
				return -1;
			}
			*rb = '\0';
			util_strlcpy(t->mt_name, entry + 1, sizeof(t->mt_name));
			util_strlcpy(t->mt_port, rb[1] == ':' ? rb + 2 : "443",
			    sizeof(t->mt_port));
		} else if (strchr(entry, ':') != NULL &&
		    strchr(entry, ':') == strrchr(entry, ':')) {
			char *colon = strchr(entry, ':');
			*colon = '\0';
			util_strlcpy(t->mt_name, entry, sizeof(t->mt_name));
			if (strlen(colon + 1) >= sizeof(t->mt_port)) {
				snprintf(err, errlen, "bad port in \"%s\"",
				    t->mt_host);
				return -1;
			}
			util_strlcpy(t->mt_port, colon + 1, sizeof(t->mt_port));
		} else {
			util_strlcpy(t->mt_name, entry, sizeof(t->mt_name));
			util_strlcpy(t->mt_port, "443", sizeof(t->mt_port));
		}
		{
			char *e;
			long port = strtol(t->mt_port, &e, 10);
			if (t->mt_port[0] == '\0' || *e != '\0' || port < 1 ||
			    port > 65535) {
				snprintf(err, errlen, "bad port in \"%s\"",
				    t->mt_host);
				return -1;
			}
		}
		if (t->mt_name[0] == '\0') {
			snprintf(err, errlen, "no host in \"%s\"", t->mt_host);
			return -1;
		}
		if (t->mt_dial[0] == '\0')
			util_strlcpy(t->mt_dial, t->mt_name, sizeof(t->mt_dial));
		else if (t->mt_dial[0] == '[') {
			/* dialhost is a bare host; allow [v6] too */
			size_t dl = strlen(t->mt_dial);
			if (dl < 3 || t->mt_dial[dl - 1] != ']') {
				snprintf(err, errlen, "bad dial host \"%s\"",
				    t->mt_dial);
				return -1;
			}
			memmove(t->mt_dial, t->mt_dial + 1, dl - 2);
			t->mt_dial[dl - 2] = '\0';
		}
		(*n)++;
		if (end == NULL)
			break;
		p = end + 1;
	}
	return 0;
}

static void	mesh_dial_cb(evutil_socket_t, short, void *);

/* Change state and the time of the change (owner thread, mp_lock). */
static void
set_state_locked(struct mesh_peer *mp, enum mesh_state s)
{
	mp->mp_state = s;
	mp->mp_since = (int64_t)time(NULL);
}

static void
set_state(struct mesh_peer *mp, enum mesh_state s)
{
	pthread_mutex_lock(&mp->mp_lock);
	set_state_locked(mp, s);
	pthread_mutex_unlock(&mp->mp_lock);
}

static bool
stopping(const struct mesh_peer *mp)
{
	return __atomic_load_n(&mp->mp_mesh->m_stopping, __ATOMIC_ACQUIRE);
}

/* Wait, then dial again: 250 ms doubling to 5 s, each 50-100%. */
static void
schedule_dial(struct mesh_peer *mp)
{
	uint64_t	 ms = MESH_BACKOFF_MIN_MS;
	struct timeval	 tv;

	if (stopping(mp)) {
		set_state(mp, MESH_STOPPED);
		return;
	}
	for (unsigned i = 0; i < mp->mp_failures && ms < MESH_BACKOFF_MAX_MS;
	    i++)
		ms *= 2;
	if (ms > MESH_BACKOFF_MAX_MS)
		ms = MESH_BACKOFF_MAX_MS;
	ms = ms / 2 + randombytes_uniform((uint32_t)(ms / 2) + 1);
	mp->mp_failures++;
	set_state(mp, MESH_BACKOFF);
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	evtimer_add(mp->mp_timer, &tv);
}

/* A dial attempt failed before there was a link. */
static void
dial_failed(struct mesh_peer *mp, const char *fmt, ...) LOG_FMT(2, 3);

static void
dial_failed(struct mesh_peer *mp, const char *fmt, ...)
{
	char	 why[160];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&mp->mp_lock);
	util_strlcpy(mp->mp_last_error, why, sizeof(mp->mp_last_error));
	pthread_mutex_unlock(&mp->mp_lock);
	/* Once per failed attempt; attempts are at most one per 250 ms. */
	log_info("mesh(%s): %s", mp->mp_t.mt_host, why);
	schedule_dial(mp);
}

static void
drop_addrs(struct mesh_peer *mp)
{
	if (mp->mp_ai != NULL)
		evutil_freeaddrinfo(mp->mp_ai);
	mp->mp_ai = mp->mp_ai_next = NULL;
}

/*
 * Connect to the next resolved address and hand the socket to
 * conn_mesh.c. A name may resolve to several addresses (both families):
 * as Go's dialer, each is tried in turn before the attempt fails.
 */
static void
dial_next(struct mesh_peer *mp)
{
	struct mesh		*m = mp->mp_mesh;
	struct evutil_addrinfo	*ai;
	SSL			*ssl = NULL;
	int			 fd;

	for (;;) {
		if ((ai = mp->mp_ai_next) == NULL) {
			drop_addrs(mp);
			dial_failed(mp, "connect %s port %s: no address left",
			    mp->mp_t.mt_dial, mp->mp_t.mt_port);
			return;
		}
		mp->mp_ai_next = ai->ai_next;
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fd != -1 && (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    errno == EINPROGRESS))
			break;
		if (mp->mp_ai_next == NULL) {
			int e = errno;
			if (fd != -1)
				close(fd);
			drop_addrs(mp);
			dial_failed(mp, "connect %s port %s: %s",
			    mp->mp_t.mt_dial, mp->mp_t.mt_port, strerror(e));
			return;
		}
		if (fd != -1)
			close(fd);
	}
	if (!m->m_plain) {
		const char *name = mp->mp_t.mt_name;
		if ((ssl = SSL_new(m->m_ctx)) == NULL) {
			close(fd);
			dial_failed(mp, "SSL_new failed");
			return;
		}
		/* As Go: SNI and name check for names; IP SAN for IPs. */
		if (util_is_ip_literal(name)) {
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
		} else {
			SSL_set_tlsext_host_name(ssl, name);
			SSL_set1_host(ssl, name);
		}
	}
	if ((mp->mp_conn = conn_mesh_dial(mp, fd, ai->ai_addr,
	    (socklen_t)ai->ai_addrlen, ssl)) == NULL) {
		drop_addrs(mp);
		dial_failed(mp, "cannot set up the connection");
		return;
	}
}

static void
dns_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct mesh_peer *mp = arg;

	mp->mp_dns = NULL;
	if (result == EVUTIL_EAI_CANCEL)
		return;
	if (result != 0 || res == NULL) {
		dial_failed(mp, "resolve %s: %s", mp->mp_t.mt_dial,
		    evutil_gai_strerror(result));
		if (res != NULL)
			evutil_freeaddrinfo(res);
		return;
	}
	drop_addrs(mp);
	mp->mp_ai = mp->mp_ai_next = res;
	dial_next(mp);
}

static void
mesh_dial_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mesh_peer	*mp = arg;
	struct mesh		*m = mp->mp_mesh;
	struct evutil_addrinfo	 hints, *res = NULL;
	int			 wid = worker_id(mp->mp_w);

	(void)fd;
	(void)what;
	if (stopping(mp)) {
		set_state(mp, MESH_STOPPED);
		return;
	}
	set_state(mp, MESH_CONNECTING);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	if (util_is_ip_literal(mp->mp_t.mt_dial)) {
		hints.ai_flags = EVUTIL_AI_NUMERICHOST | EVUTIL_AI_NUMERICSERV;
		if (evutil_getaddrinfo(mp->mp_t.mt_dial, mp->mp_t.mt_port,
		    &hints, &res) != 0 || res == NULL) {
			dial_failed(mp, "bad address %s", mp->mp_t.mt_dial);
			return;
		}
		drop_addrs(mp);
		mp->mp_ai = mp->mp_ai_next = res;
		dial_next(mp);
		return;
	}
	/* Names: libevent's resolver on this loop (and /etc/hosts). */
	if (m->m_dns[wid] == NULL && (m->m_dns[wid] = evdns_base_new(
	    worker_base(mp->mp_w), EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE)) == NULL) {
		dial_failed(mp, "cannot start the resolver");
		return;
	}
	hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
	mp->mp_dns = evdns_getaddrinfo(m->m_dns[wid], mp->mp_t.mt_dial,
	    mp->mp_t.mt_port, &hints, dns_cb, mp);
	/* NULL: answered at once (dns_cb has run) or failed (likewise). */
}

int
mesh_link_server_key(struct mesh_peer *mp, const uint8_t key[32])
{
	const uint8_t	*self = mp->mp_env->d_key->sk_pub;
	int		 is_self = memcmp(key, self, 32) == 0;
	char		 ks[8];

	pthread_mutex_lock(&mp->mp_lock);
	memcpy(mp->mp_key, key, 32);
	mp->mp_has_key = true;
	if (is_self)
		set_state_locked(mp, MESH_SELF);
	pthread_mutex_unlock(&mp->mp_lock);
	util_key_short(key, ks);
	if (is_self)
		log_info("mesh(%s): detected self-connect; ignoring host",
		    mp->mp_t.mt_host);
	else
		log_debug("mesh(%s): server key %s", mp->mp_t.mt_host, ks);
	return is_self;
}

void
mesh_link_up(struct mesh_peer *mp, struct conn *c)
{
	uint64_t	 n;
	char		 ks[8];

	pthread_mutex_lock(&mp->mp_lock);
	mp->mp_link = c;
	set_state_locked(mp, MESH_CONNECTED);
	mp->mp_last_error[0] = '\0';
	util_key_short(mp->mp_key, ks);
	pthread_mutex_unlock(&mp->mp_lock);
	mp->mp_failures = 0;
	drop_addrs(mp);
	n = __atomic_add_fetch(&mp->mp_connects, 1, __ATOMIC_RELAXED);
	if (n > 1)
		__atomic_add_fetch(&mp->mp_reconnects, 1, __ATOMIC_RELAXED);
	log_info("mesh(%s): connected to %s (%s)%s", mp->mp_t.mt_host, ks,
	    mp->mp_mesh->m_plain ? "http" : "tls", n > 1 ? "; reconnected" :
	    "");
}

void
mesh_link_present(struct mesh_peer *mp, const uint8_t key[32])
{
	const uint8_t *seed = mp->mp_env->d_hash_seed;

	/* derper adds a forwarder for every PeerPresent; one per key here. */
	if (keyset_has(&mp->mp_present, seed, key))
		return;
	/* A peer holds the mesh key, but its announcements still cost us. */
	if (mp->mp_present.ks_n >= (size_t)mp->mp_env->d_conf->dc_mesh_max_routes) {
		__atomic_add_fetch(&mp->mp_refused, 1, __ATOMIC_RELAXED);
		if (!mp->mp_cap_logged)
			log_warnx("mesh(%s): more than %d keys announced "
			    "(-mesh-max-routes); the rest are not routed",
			    mp->mp_t.mt_host,
			    mp->mp_env->d_conf->dc_mesh_max_routes);
		mp->mp_cap_logged = true;
		return;
	}
	if (keyset_add(&mp->mp_present, seed, key) != 0 ||
	    peers_route_add(mp->mp_env->d_peers, key, mp) != 0) {
		keyset_del(&mp->mp_present, seed, key);
		log_warnx("mesh(%s): out of memory for a route",
		    mp->mp_t.mt_host);
		return;
	}
	__atomic_add_fetch(&mp->mp_routes, 1, __ATOMIC_RELAXED);
}

/* Drop mp's route to key; PeerGone to its receivers if it left the region. */
static void
route_drop(struct mesh_peer *mp, const uint8_t key[32])
{
	uint8_t	(*kept)[32];
	size_t	 nkept;

	if (peers_route_del(mp->mp_env->d_peers, key, mp, &kept, &nkept)) {
		conn_peer_gone_to(mp->mp_w, key, (const uint8_t (*)[32])kept,
		    nkept);
		free(kept);
	}
	__atomic_sub_fetch(&mp->mp_routes, 1, __ATOMIC_RELAXED);
}

void
mesh_link_gone(struct mesh_peer *mp, const uint8_t key[32])
{
	if (keyset_del(&mp->mp_present, mp->mp_env->d_hash_seed, key))
		route_drop(mp, key);
}

struct conn *
mesh_link_closed(struct mesh_peer *mp, struct conn *c, const char *why)
{
	struct conn	*pub;
	size_t		 routes = mp->mp_present.ks_n;
	bool		 self, was_up, brief;
	char		 msg[160];

	if (mp->mp_conn == c)
		mp->mp_conn = NULL;
	pthread_mutex_lock(&mp->mp_lock);
	pub = mp->mp_link == c ? c : NULL;
	if (pub != NULL)
		mp->mp_link = NULL;
	self = mp->mp_state == MESH_SELF;
	was_up = mp->mp_state == MESH_CONNECTED;
	/*
	 * A peer with another mesh key accepts us as a plain client and
	 * closes on WatchConns: up, nothing learned, gone at once.
	 */
	brief = was_up && routes == 0 && (int64_t)time(NULL) - mp->mp_since <= 2;
	snprintf(msg, sizeof(msg), "%s%s", why, brief ? " (closed right "
	    "after the handshake with nothing learned: is the mesh key the "
	    "same on both nodes?)" : "");
	if (!self)
		util_strlcpy(mp->mp_last_error, msg,
		    sizeof(mp->mp_last_error));
	pthread_mutex_unlock(&mp->mp_lock);
	/* derper clears what a broken link taught it, then relearns it. */
	for (size_t i = 0; i < mp->mp_present.ks_cap; i++)
		if (!util_is_zero(mp->mp_present.ks_slot[i], 32))
			route_drop(mp, mp->mp_present.ks_slot[i]);
	keyset_clear(&mp->mp_present);
	mp->mp_cap_logged = false;
	if (self)
		return pub;
	if (stopping(mp)) {
		drop_addrs(mp);
		set_state(mp, MESH_STOPPED);
		return pub;
	}
	/* Not through yet, and the name has more addresses: the next one. */
	if (!was_up && mp->mp_ai_next != NULL) {
		log_debug("mesh(%s): %s; trying the next address",
		    mp->mp_t.mt_host, msg);
		dial_next(mp);
		return pub;
	}
	drop_addrs(mp);
	if (was_up)
		log_info("mesh(%s): link down (%s); %zu routes dropped",
		    mp->mp_t.mt_host, msg, routes);
	else
		log_info("mesh(%s): %s", mp->mp_t.mt_host, msg);
	schedule_dial(mp);
	return pub;
}

struct mesh *
mesh_new(struct derpd *env, const struct mesh_target *t, size_t n,
    char *err, size_t errlen)
{
	struct mesh	*m;
	const char	*plain = getenv("TS_DEBUG_USE_DERP_HTTP");

	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->m_peers = calloc(n ? n : 1, sizeof(*m->m_peers))) == NULL ||
	    (m->m_dns = calloc((size_t)env->d_nworkers,
	    sizeof(*m->m_dns))) == NULL) {
		snprintf(err, errlen, "-mesh-with: out of memory");
		goto fail;
	}
	m->m_env = env;
	/* Go's debug switch: plain HTTP to the peers (tests, trusted nets). */
	m->m_plain = plain != NULL && (strcmp(plain, "1") == 0 ||
	    strcmp(plain, "true") == 0);
	if ((m->m_ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errlen, "-mesh-with: SSL_CTX_new failed");
		goto fail;
	}
	SSL_CTX_set_min_proto_version(m->m_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(m->m_ctx, SSL_VERIFY_PEER, NULL);
	/* System roots; SSL_CERT_FILE and SSL_CERT_DIR when set, as Go. */
	if (SSL_CTX_set_default_verify_paths(m->m_ctx) != 1) {
		snprintf(err, errlen, "-mesh-with: cannot load the trusted "
		    "certificates");
		goto fail;
	}
	/* A trusted leaf (a self-signed certificate) is enough, as in Go. */
	X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(m->m_ctx),
	    X509_V_FLAG_PARTIAL_CHAIN);
	SSL_CTX_set_session_cache_mode(m->m_ctx, SSL_SESS_CACHE_OFF);
	for (size_t i = 0; i < n; i++) {
		struct mesh_peer *mp = &m->m_peers[i];

		mp->mp_mesh = m;
		mp->mp_env = env;
		mp->mp_t = t[i];
		mp->mp_w = env->d_workers[i % (size_t)env->d_nworkers];
		pthread_mutex_init(&mp->mp_lock, NULL);
		m->m_n++;
		if ((mp->mp_timer = evtimer_new(worker_base(mp->mp_w),
		    mesh_dial_cb, mp)) == NULL) {
			snprintf(err, errlen, "-mesh-with: out of memory");
			goto fail;
		}
		mp->mp_since = (int64_t)time(NULL);
	}
	return m;
fail:
	mesh_free(m);
	return NULL;
}

int
mesh_start(struct mesh *m)
{
	struct timeval tv = { 0, 0 };

	for (size_t i = 0; i < m->m_n; i++) {
		log_info("mesh(%s): will dial %s port %s%s", m->m_peers[i].mp_t.mt_host,
		    m->m_peers[i].mp_t.mt_dial, m->m_peers[i].mp_t.mt_port,
		    m->m_plain ? " (plain HTTP: TS_DEBUG_USE_DERP_HTTP)" : "");
		if (evtimer_add(m->m_peers[i].mp_timer, &tv) == -1)
			return -1;
	}
	return 0;
}

void
mesh_stop(struct mesh *m)
{
	if (m != NULL)
		__atomic_store_n(&m->m_stopping, 1, __ATOMIC_RELEASE);
}

void
mesh_free(struct mesh *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->m_n; i++) {
		struct mesh_peer *mp = &m->m_peers[i];
		if (mp->mp_timer != NULL)
			event_free(mp->mp_timer);
		drop_addrs(mp);
		keyset_clear(&mp->mp_present);
		pthread_mutex_destroy(&mp->mp_lock);
	}
	if (m->m_dns != NULL)
		for (int i = 0; i < m->m_env->d_nworkers; i++)
			if (m->m_dns[i] != NULL)
				evdns_base_free(m->m_dns[i], 0);
	SSL_CTX_free(m->m_ctx);
	free(m->m_dns);
	free(m->m_peers);
	free(m);
}

size_t
mesh_list(struct mesh *m, struct mesh_info **rows)
{
	struct mesh_info *r;

	*rows = NULL;
	if (m == NULL || m->m_n == 0)
		return 0;
	if ((r = calloc(m->m_n, sizeof(*r))) == NULL)
		return 0;
	for (size_t i = 0; i < m->m_n; i++) {
		struct mesh_peer *mp = &m->m_peers[i];

		util_strlcpy(r[i].mi_host, mp->mp_t.mt_host,
		    sizeof(r[i].mi_host));
		snprintf(r[i].mi_dial, sizeof(r[i].mi_dial), "%s%s%s:%s",
		    strchr(mp->mp_t.mt_dial, ':') ? "[" : "", mp->mp_t.mt_dial,
		    strchr(mp->mp_t.mt_dial, ':') ? "]" : "", mp->mp_t.mt_port);
		r[i].mi_worker = worker_id(mp->mp_w);
		pthread_mutex_lock(&mp->mp_lock);
		util_strlcpy(r[i].mi_state, state_names[mp->mp_state],
		    sizeof(r[i].mi_state));
		r[i].mi_since = mp->mp_since;
		r[i].mi_has_key = mp->mp_has_key;
		memcpy(r[i].mi_key, mp->mp_key, 32);
		util_strlcpy(r[i].mi_last_error, mp->mp_last_error,
		    sizeof(r[i].mi_last_error));
		pthread_mutex_unlock(&mp->mp_lock);
		r[i].mi_routes = __atomic_load_n(&mp->mp_routes, __ATOMIC_RELAXED);
		r[i].mi_pkts_out = __atomic_load_n(&mp->mp_pkts_out,
		    __ATOMIC_RELAXED);
		r[i].mi_bytes_out = __atomic_load_n(&mp->mp_bytes_out,
		    __ATOMIC_RELAXED);
		r[i].mi_drops = __atomic_load_n(&mp->mp_drops, __ATOMIC_RELAXED);
		r[i].mi_refused = __atomic_load_n(&mp->mp_refused,
		    __ATOMIC_RELAXED);
		r[i].mi_connects = __atomic_load_n(&mp->mp_connects,
		    __ATOMIC_RELAXED);
		r[i].mi_reconnects = __atomic_load_n(&mp->mp_reconnects,
		    __ATOMIC_RELAXED);
	}
	*rows = r;
	return m->m_n;
}
