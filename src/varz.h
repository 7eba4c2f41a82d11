/* SPDX-License-Identifier: ISC */
/* varz.h: Prometheus text rendering of the daemon's counters. */
#ifndef DERPD_VARZ_H
#define DERPD_VARZ_H

#ifdef __cplusplus
extern "C" {
#endif

struct derpd;
struct evbuffer;

struct cJSON;
/* "show stats": counters, drops by reason and kind, closes by reason. */
void	varz_ctl_stats(struct derpd *env, struct cJSON *result);
/* Append /debug/varz text for env to out (any worker thread). */
void	varz_render(struct derpd *env, struct evbuffer *out);

#ifdef __cplusplus
}
#endif
#endif
