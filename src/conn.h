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

/* Registry hooks for connections. */
extern const struct peers_ops conn_peers_ops;

/*
 * Take ownership of an accepted socket on worker w (its thread). On
 * failure the socket is closed and counted.
 */
void	conn_accept(struct worker *w, int fd, const struct sockaddr *sa,
	    socklen_t salen, int port80);
/* Flush and release every conn on a schedule list (owner thread). */
void	conn_run_list(struct conn *list);
/* Drop the scheduled references of a list without touching I/O. */
void	conn_drop_list(struct conn *list);
/* Drop owner references of closed conns (owner thread). */
void	conn_reap_list(struct conn *list);
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
/* Start a fresh admission check of every active non-mesh conn of w. */
void	conn_reverify_all(struct worker *w);
/* Close every conn of worker w for shutdown (owner thread). */
void	conn_close_all(struct worker *w);

#ifdef __cplusplus
}
#endif
#endif
