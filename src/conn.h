/* SPDX-License-Identifier: ISC */
/* conn.h: one client connection: HTTP upgrade, DERP handshake, relay. */
#ifndef DERPD_CONN_H
#define DERPD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "peer.h"

#ifdef __cplusplus
extern "C" {
#endif

struct conn;
struct worker;
struct worker_ops;

/* Registry hooks for connections. */
extern const struct peers_ops conn_peers_ops;

/* Worker hooks: accept, posted work, release, shutdown, re-verification. */
extern const struct worker_ops conn_worker_ops;

/*
 * Take ownership of an accepted socket on worker w (its thread). On
 * failure the socket is closed and counted.
 */
void	conn_accept(struct worker *w, int fd, const struct sockaddr *sa,
	    socklen_t salen, int port80);
struct derpd;

/* What the admin socket shows of one connection. */
struct conn_info {
	uint8_t		 ci_key[32];
	char		 ci_addr[64];
	char		 ci_admitted_by[16];
	int		 ci_worker;
	int64_t		 ci_since;	/* unix seconds at accept */
	bool		 ci_home, ci_mesh, ci_prober, ci_dup, ci_cached;
	uint64_t	 ci_pkts_in, ci_bytes_in, ci_pkts_out, ci_bytes_out;
	uint64_t	 ci_drops;
	uint64_t	 ci_rl_waits;	/* -rate-config: frames delayed */
	uint64_t	 ci_rl_wait_ms;	/* -rate-config: time delayed */
};

/*
 * A row per registered connection (of key only, when key is not NULL;
 * whose key text starts with prefix, when prefix is not NULL). *rows is
 * malloc'd (the caller frees it; NULL when there are none); returns how
 * many. Any thread.
 */
size_t	conn_list(struct derpd *, const uint8_t *key, const char *prefix,
	    struct conn_info **rows);
/*
 * PeerGone(key, Disconnected) to each local conn of to[0..n) (zero keys
 * skipped), counted on from (its thread).
 */
void	conn_peer_gone_to(struct worker *from, const uint8_t key[32],
	    const uint8_t (*to)[32], size_t n);
/* Close every connection of key (reason kicked); returns how many. */
size_t	conn_kick_key(struct derpd *, const uint8_t key[32]);

#ifdef __cplusplus
}
#endif
#endif
