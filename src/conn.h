/* SPDX-License-Identifier: ISC */
/* conn.h: one client connection: HTTP upgrade, DERP handshake, relay. */
#ifndef DERPD_CONN_H
#define DERPD_CONN_H

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
struct cJSON;
/*
 * Admin handlers: append a JSON object per registered connection (of key
 * only, or whose key text starts with prefix) to arr; returns how many.
 */
size_t	conn_ctl_list(struct derpd *, const uint8_t *key, const char *prefix,
	    struct cJSON *arr);
/* Close every connection of key (counted as "kicked"); returns how many. */
size_t	conn_ctl_kick(struct derpd *, const uint8_t key[32]);

#ifdef __cplusplus
}
#endif
#endif
