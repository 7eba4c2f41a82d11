/* SPDX-License-Identifier: ISC */
/*
 * ratelim.h: derper's two limits. The accept limit (-accept-connection-
 * limit/-burst): a token bucket shared by every worker's listener; a
 * connection over it is closed at once and counted. The per-client
 * receive rate (-rate-config, reloaded): a token bucket per non-mesh
 * client charged per DERP frame; a client over it is not read until its
 * debt is paid (the caller pauses reading with a timer).
 */
#ifndef DERPD_RATELIM_H
#define DERPD_RATELIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tbucket.h"

#ifdef __cplusplus
extern "C" {
#endif

struct derpd_conf;
struct evbuffer;
struct reload_report;
struct ratelim;
struct cJSON;

/* derper's smallest per-client bucket: one full SendPacket frame. */
#define RATE_MIN_BURST	(65536 + 32)

/* The -rate-config file: bytes per second (0: no limit) and burst. */
struct rate_conf {
	uint64_t	 rc_bytes_per_sec;
	uint64_t	 rc_burst;
};

/*
 * Parse a -rate-config file's bytes as derper reads it (Go's
 * encoding/json into its RateConfig): an object whose keys are matched
 * without regard to case, PerClientRateLimitBytesPerSec and
 * PerClientRateBurstBytes, each a non-negative integer or null; other
 * keys are ignored; "null" is the empty config. 0, or -1 with a message.
 * Pure.
 */
int	rateconf_parse(const char *buf, size_t len, struct rate_conf *,
	    char *err, size_t errlen);
/*
 * What derper applies: no rate means no limit (both 0); otherwise the
 * burst is at least RATE_MIN_BURST.
 */
void	rateconf_normalize(struct rate_conf *);

/* A client's receive limiter, inside its conn; owner thread only. */
struct rate_client {
	uint64_t	 rl_gen;	/* the limits generation it follows */
	bool		 rl_on;
	struct tbucket	 rl_tb;
	uint64_t	 rl_waits;	/* single writer: frames delayed */
	uint64_t	 rl_wait_ms;	/* single writer: time delayed */
};

/*
 * From the configuration, reading -rate-config when set. NULL with a
 * message naming the flag in err.
 */
struct ratelim *ratelim_new(const struct derpd_conf *, char *err,
	    size_t errlen);
void	ratelim_free(struct ratelim *);
/*
 * One accepted connection on the main listener (any worker): true to
 * keep it, false when over the accept limit (counted; the caller closes
 * it at once, as derper does).
 */
bool	ratelim_accept(struct ratelim *);
/* Re-read -rate-config (main thread); its outcome goes into rep. */
void	ratelim_reload(struct ratelim *, struct reload_report *rep);
/*
 * Charge a frame of len bytes to client rc (owner thread), mesh peers
 * exempt. Returns the nanoseconds to wait before reading on (counted in
 * rc and globally), or 0. A client follows a reload at its next frame,
 * with a full bucket, as derper's clients do.
 */
/*
 * Whether a receive rate is configured now (one relaxed load): a client
 * needs its struct rate_client only from then on.
 */
bool	ratelim_on(struct ratelim *);
uint64_t ratelim_charge(struct ratelim *, struct rate_client *rc, bool mesh,
	    uint32_t len);
/* The limits' metrics for /debug/varz. */
void	ratelim_varz(struct ratelim *, struct evbuffer *out);
/* The counters for "show stats" (its "stats" object). */
void	ratelim_ctl_stats(struct ratelim *, struct cJSON *st);
/* The same for /debug/vars: derper's keys in root and its "derp" object. */
void	ratelim_vars(struct ratelim *, struct cJSON *root, struct cJSON *derp);

#ifdef __cplusplus
}
#endif
#endif
