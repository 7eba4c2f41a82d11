/* SPDX-License-Identifier: ISC */
/*
 * mesh_int.h: what mesh.c (the peers: dialling, backoff, routes, what the
 * admin socket shows) and conn_mesh.c (the link: a connection we opened,
 * its handshake and frames, ForwardPacket) share. Only those two include
 * it.
 */
#ifndef DERPD_MESH_INT_H
#define DERPD_MESH_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "keyset.h"
#include "mesh.h"

#ifdef __cplusplus
extern "C" {
#endif

struct conn;
struct event;
struct evdns_base;
struct evdns_getaddrinfo_request;
struct evutil_addrinfo;

enum mesh_state {
	MESH_IDLE,		/* not started */
	MESH_CONNECTING,	/* resolving, connecting, handshaking */
	MESH_CONNECTED,		/* ServerInfo seen; routes are live */
	MESH_BACKOFF,		/* waiting to dial again */
	MESH_SELF,		/* the entry is this server: ignored */
	MESH_STOPPED,		/* shutting down */
};

struct mesh_peer {
	struct mesh		*mp_mesh;
	struct derpd		*mp_env;
	struct worker		*mp_w;		/* the worker it lives on */
	struct mesh_target	 mp_t;
	/* owner thread (mp_w) */
	struct event		*mp_timer;	/* dial again */
	struct evdns_getaddrinfo_request *mp_dns;
	struct evutil_addrinfo	*mp_ai;		/* this attempt's addresses */
	struct evutil_addrinfo	*mp_ai_next;	/* the next one to try */
	struct keyset		 mp_present;	/* keys it announced: routes */
	unsigned		 mp_failures;	/* since the last good link */
	struct conn		*mp_conn;	/* the link being set up or up */
	/* mp_lock: read by senders (any worker) and the admin socket */
	pthread_mutex_t		 mp_lock;
	struct conn		*mp_link;	/* connected link (a reference) */
	enum mesh_state		 mp_state;
	int64_t			 mp_since;
	bool			 mp_has_key;
	uint8_t			 mp_key[32];
	char			 mp_last_error[160];
	/* relaxed atomics */
	uint64_t		 mp_pkts_out, mp_bytes_out, mp_drops;
	uint64_t		 mp_connects, mp_reconnects, mp_routes;
	uint64_t		 mp_refused;	/* PeerPresent past the cap */
	bool			 mp_cap_logged;	/* owner: once per link */
};

struct mesh {
	struct derpd		*m_env;
	struct mesh_peer	*m_peers;
	size_t			 m_n;
	struct evdns_base	**m_dns;	/* per worker, NULL if unused */
	SSL_CTX			*m_ctx;		/* client side, verifying */
	int			 m_stopping;	/* atomic */
	int			 m_plain;	/* TS_DEBUG_USE_DERP_HTTP=1 */
};

/* mesh.c, called by conn_mesh.c on the peer's worker thread. */
/* The link read the peer's server key: 1 when it is our own (self). */
int	mesh_link_server_key(struct mesh_peer *, const uint8_t key[32]);
/* ServerInfo opened: the link (a reference, kept) carries packets now. */
void	mesh_link_up(struct mesh_peer *, struct conn *);
void	mesh_link_present(struct mesh_peer *, const uint8_t key[32]);
void	mesh_link_gone(struct mesh_peer *, const uint8_t key[32]);
/*
 * The link closed (why: the reason). Routes are cleared, a redial is
 * scheduled. Returns the link's published reference, for the caller to
 * drop, or NULL.
 */
struct conn *mesh_link_closed(struct mesh_peer *, struct conn *,
	    const char *why);

/* conn_mesh.c */
/* Set up a link on fd (connect in progress) on mp's worker; NULL: failed. */
struct conn *conn_mesh_dial(struct mesh_peer *, int fd,
	    const struct sockaddr *, socklen_t, SSL *ssl);

#ifdef __cplusplus
}
#endif
#endif
