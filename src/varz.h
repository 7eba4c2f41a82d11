/* SPDX-License-Identifier: ISC */
/* varz.h: Prometheus text rendering of the daemon's counters. */
#ifndef DERPD_VARZ_H
#define DERPD_VARZ_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct derpd;
struct evbuffer;

struct cJSON;
/* "show stats": counters, drops by reason and kind, closes by reason. */
void	varz_ctl_stats(struct derpd *env, struct cJSON *result);
/*
 * /debug/vars: derper's "derp" object (its expvar names, where derpd has
 * the counter), its top-level counters, and "derpd" (varz_ctl_stats).
 */
void	varz_vars(struct derpd *env, struct cJSON *root);
/*
 * /debug/check: 0 when the connection gauge and the registry agree;
 * otherwise -1 and what differs in msg.
 */
int	varz_check(struct derpd *env, char *msg, size_t msglen);
/* Append /debug/varz text for env to out (any worker thread). */
void	varz_render(struct derpd *env, struct evbuffer *out);

#ifdef __cplusplus
}
#endif
#endif
