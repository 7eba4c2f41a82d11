/* SPDX-License-Identifier: ISC */
/* stun_server.h: the UDP STUN responder on an event base. */
#ifndef DERPD_STUN_SERVER_H
#define DERPD_STUN_SERVER_H

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct stun_server;
struct stats;

/*
 * Bind host:port (host "" = all, dual stack) and serve on base. The
 * bound address is logged. NULL with err on failure.
 */
struct stun_server *stun_server_new(struct event_base *base,
	    const char *host, int port, char *err, size_t errlen);
/* Stop and free; NULL is a no-op. */
void	stun_server_free(struct stun_server *);
/* The server's counters (read with relaxed loads by others). */
const struct stats *stun_server_stats(const struct stun_server *);

#ifdef __cplusplus
}
#endif
#endif
