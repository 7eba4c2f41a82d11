/* SPDX-License-Identifier: ISC */
/* stats.h: per-worker counters, summed on read; every drop has a reason. */
#ifndef DERPD_STATS_H
#define DERPD_STATS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum stat_id {
	STAT_ACCEPTS,			/* DERP upgrades (raw and WebSocket) */
	STAT_TCP_ACCEPTS,		/* TCP accepts on -a's listener */
	STAT_TCP_ACCEPTS_80,		/* TCP accepts on -http-port */
	STAT_ACCEPTS_LIMITED,		/* refused by an accept limit */
	STAT_TLS12_REQUESTS,		/* HTTP requests over TLS 1.2 */
	STAT_TLS13_REQUESTS,
	STAT_TLS12_ACTIVE,		/* gauge: those still open */
	STAT_TLS13_ACTIVE,		/* gauge */
	STAT_CONNECTIONS,		/* gauge */
	STAT_DERP_CONNECTIONS,		/* gauge: past ServerInfo */
	STAT_HOME_CONNECTIONS,		/* gauge */
	STAT_NOTIDEAL_CONNECTIONS,	/* gauge */
	STAT_WATCHERS,			/* gauge */
	STAT_PACKETS_RECEIVED,
	STAT_BYTES_RECEIVED,
	STAT_PACKETS_RECEIVED_DISCO,
	STAT_PACKETS_RECEIVED_OTHER,
	STAT_PACKETS_SENT,
	STAT_BYTES_SENT,
	STAT_PACKETS_FORWARDED_IN,
	STAT_PACKETS_FORWARDED_OUT,
	STAT_GOT_PING,
	STAT_SENT_PONG,
	STAT_PINGS_IGNORED,
	STAT_PEER_GONE_DISCONNECTED,
	STAT_PEER_GONE_NOT_HERE,
	STAT_HOME_MOVES_IN,
	STAT_HOME_MOVES_OUT,
	STAT_WRITE_TIMEOUTS,
	STAT_UNKNOWN_FRAMES,
	STAT_TOTAL_DUP_CLIENT_CONNS,
	STAT_CTL_DROPS,
	STAT_HTTP_REQUESTS,
	STAT_STUN_SUCCESS,
	STAT_STUN_NOT_STUN,
	STAT_STUN_READ_ERROR,
	STAT_STUN_WRITE_ERROR,
	STAT_STUN_IPV4,
	STAT_STUN_IPV6,
	STAT_STUN_RFC5389,
	STAT_ACCEPT_ERRORS,
	STAT_LOG_HELD,			/* peer log lines rate-limited */
	STAT_WEBSOCKET_ACCEPTS,		/* DERP over WebSocket upgrades */
	STAT__COUNT
};

enum drop_reason {
	DROP_UNKNOWN_DEST,
	DROP_UNKNOWN_DEST_ON_FWD,
	DROP_GONE_DISCONNECTED,
	DROP_QUEUE_HEAD,
	DROP_QUEUE_TAIL,
	DROP_WRITE_ERROR,
	DROP_DUP_CLIENT,
	DROP_NO_MEMORY,
	DROP_MESH_DOWN,		/* the route's mesh link is not up */
	DROP__COUNT
};

enum drop_kind {
	KIND_DISCO,
	KIND_OTHER,
	KIND__COUNT
};

/* Why a connection was closed; each is counted and logged once. */
enum close_reason {
	CLOSE_EOF,
	CLOSE_READ_ERROR,
	CLOSE_WRITE_TIMEOUT,
	CLOSE_WRITE_ERROR,
	CLOSE_TLS_ERROR,
	CLOSE_HEAD_TIMEOUT,
	CLOSE_HEAD_TOO_LARGE,
	CLOSE_BAD_REQUEST,
	CLOSE_HTTP_DONE,
	CLOSE_HANDSHAKE_TIMEOUT,
	CLOSE_BAD_FIRST_FRAME,
	CLOSE_BAD_CLIENT_INFO,
	CLOSE_BAD_FRAME,
	CLOSE_NOT_MESH,
	CLOSE_CLOSE_PEER,
	CLOSE_NO_MEMORY,
	CLOSE_SHUTDOWN,
	CLOSE_ADMISSION_DENIED,
	CLOSE_KICKED,
	CLOSE_REVOKED,
	CLOSE_WATCHER_OVERFLOW,
	CLOSE_MESH_HANDSHAKE,	/* our mesh link: upgrade or hello failed */
	CLOSE_MESH_SELF,	/* our mesh link reached this server */
	CLOSE_MESH_IDLE,	/* our mesh link heard nothing */
	CLOSE_WS_TOO_LARGE,		/* WebSocket message over the cap */
	CLOSE_WS_TEXT,			/* WebSocket text message */
	CLOSE_WS_PROTOCOL,		/* WebSocket framing error, ping flood */
	CLOSE_ACME_CHALLENGE,	/* a TLS-ALPN-01 validation, done */
	CLOSE__COUNT
};

/*
 * Histograms with derper's names and buckets. Each bucket counts the
 * values up to its bound and above the one before (the last slot: above
 * every bound); varz makes them cumulative, as Prometheus wants.
 */
enum hist_id {
	HIST_MESH_UPDATE_BATCH,	/* watcher updates written per batch */
	HIST_MESH_UPDATE_LOOPS,	/* batches per wakeup of a watcher */
	HIST_BUFFERED_WRITE_FRAMES, /* frames written per flush */
	HIST__COUNT
};
#define HIST_MAX_BUCKETS	16

/*
 * derper's derp_tcp_rtt buckets: a DERP connection's TCP round-trip time
 * (TCP_INFO), sampled every 10 seconds; non_tcp and error once per
 * connection that cannot be sampled.
 */
enum rtt_bucket {
	RTT_10MS,
	RTT_20MS,
	RTT_50MS,
	RTT_100MS,
	RTT_150MS,
	RTT_250MS,
	RTT_500MS,
	RTT_INF,
	RTT_NON_TCP,
	RTT_ERROR,
	RTT__COUNT
};

/* One worker's counters; single writer, read by anyone (relaxed). */
struct stats {
	uint64_t	 st_c[STAT__COUNT];
	uint64_t	 st_drop_pkts[DROP__COUNT][KIND__COUNT];
	uint64_t	 st_drop_bytes[DROP__COUNT][KIND__COUNT];
	uint64_t	 st_close[CLOSE__COUNT];
	uint64_t	 st_hist[HIST__COUNT][HIST_MAX_BUCKETS + 1];
	uint64_t	 st_hist_sum[HIST__COUNT];
	uint64_t	 st_hist_count[HIST__COUNT];
	uint64_t	 st_tcp_rtt[RTT__COUNT];
	/*
	 * derper's average queue time: an exponential moving average
	 * (alpha 0.1) of the whole milliseconds a packet waited in a
	 * client's queue, kept per worker (a double's bits) and averaged
	 * over the workers that have a sample (st_queue_samples) on read.
	 */
	uint64_t	 st_queue_avg_bits;
	uint64_t	 st_queue_samples;
};

/* Add v (may wrap for gauges) to a single-writer counter. */
static inline void
stats_add(uint64_t *ctr, uint64_t v)
{
	__atomic_store_n(ctr, __atomic_load_n(ctr, __ATOMIC_RELAXED) + v,
	    __ATOMIC_RELAXED);
}

static inline uint64_t
stats_get(const uint64_t *ctr)
{
	return __atomic_load_n(ctr, __ATOMIC_RELAXED);
}

#define STAT_INC(st, id)	stats_add(&(st)->st_c[(id)], 1)
#define STAT_DEC(st, id)	stats_add(&(st)->st_c[(id)], (uint64_t)-1)
#define STAT_ADD(st, id, v)	stats_add(&(st)->st_c[(id)], (v))

void	stats_drop(struct stats *, enum drop_reason, int disco, uint64_t bytes);
void	stats_close(struct stats *, enum close_reason);
/* Record v in histogram h (owner thread). */
void	stats_observe(struct stats *, enum hist_id h, uint64_t v);
/* h's name (without derp_), its bucket bounds and their number. */
const char *stats_hist_name(enum hist_id h);
const uint64_t *stats_hist_bounds(enum hist_id h, size_t *n);
/* Count one TCP round-trip time sample of rtt_us microseconds. */
void	stats_tcp_rtt(struct stats *, uint32_t rtt_us);
/* rtt_bucket b's label value (derper's: "10ms" .. "inf", "non-tcp"). */
const char *stats_rtt_name(enum rtt_bucket b);
/* A packet waited ms in a queue: update the average (owner thread). */
void	stats_queue_time(struct stats *, uint64_t ms);
/* The average queue time of a block (of a sum: the workers' mean). */
double	stats_queue_avg(const struct stats *);
/* Sum n per-worker blocks into out. */
void	stats_sum(const struct stats *const *in, size_t n, struct stats *out);
const char *stats_drop_name(enum drop_reason);
const char *stats_close_name(enum close_reason);

#ifdef __cplusplus
}
#endif
#endif
