/* SPDX-License-Identifier: ISC */
/* stats.c: counter helpers and stable names for drop and close reasons. */
#include <math.h>
#include <string.h>

#include "stats.h"

static const char *const drop_names[DROP__COUNT] = {
	[DROP_UNKNOWN_DEST] = "unknown_dest",
	[DROP_UNKNOWN_DEST_ON_FWD] = "unknown_dest_on_fwd",
	[DROP_GONE_DISCONNECTED] = "gone_disconnected",
	[DROP_QUEUE_HEAD] = "queue_head",
	[DROP_QUEUE_TAIL] = "queue_tail",
	[DROP_WRITE_ERROR] = "write_error",
	[DROP_DUP_CLIENT] = "dup_client",
	[DROP_NO_MEMORY] = "no_memory",
	[DROP_MESH_DOWN] = "mesh_down",
};

static const char *const close_names[CLOSE__COUNT] = {
	[CLOSE_EOF] = "eof",
	[CLOSE_READ_ERROR] = "read_error",
	[CLOSE_WRITE_TIMEOUT] = "write_timeout",
	[CLOSE_WRITE_ERROR] = "write_error",
	[CLOSE_TLS_ERROR] = "tls_error",
	[CLOSE_HEAD_TIMEOUT] = "http_head_timeout",
	[CLOSE_HEAD_TOO_LARGE] = "http_head_too_large",
	[CLOSE_BAD_REQUEST] = "http_bad_request",
	[CLOSE_HTTP_DONE] = "http_done",
	[CLOSE_HANDSHAKE_TIMEOUT] = "handshake_timeout",
	[CLOSE_BAD_FIRST_FRAME] = "bad_first_frame",
	[CLOSE_BAD_CLIENT_INFO] = "bad_client_info",
	[CLOSE_BAD_FRAME] = "bad_frame",
	[CLOSE_NOT_MESH] = "insufficient_permissions",
	[CLOSE_CLOSE_PEER] = "close_peer",
	[CLOSE_NO_MEMORY] = "no_memory",
	[CLOSE_SHUTDOWN] = "shutdown",
	[CLOSE_ADMISSION_DENIED] = "admission_denied",
	[CLOSE_KICKED] = "kicked",
	[CLOSE_REVOKED] = "revoked",
	[CLOSE_WATCHER_OVERFLOW] = "watcher_overflow",
	[CLOSE_MESH_HANDSHAKE] = "mesh_handshake",
	[CLOSE_MESH_SELF] = "mesh_self",
	[CLOSE_MESH_IDLE] = "mesh_idle",
	[CLOSE_WS_TOO_LARGE] = "ws_message_too_large",
	[CLOSE_WS_TEXT] = "ws_text_message",
	[CLOSE_WS_PROTOCOL] = "ws_protocol_error",
	[CLOSE_ACME_CHALLENGE] = "acme_challenge",
};

void
stats_drop(struct stats *st, enum drop_reason r, int disco, uint64_t bytes)
{
	int k = disco ? KIND_DISCO : KIND_OTHER;

	stats_add(&st->st_drop_pkts[r][k], 1);
	stats_add(&st->st_drop_bytes[r][k], bytes);
}

void
stats_close(struct stats *st, enum close_reason r)
{
	stats_add(&st->st_close[r], 1);
}

/* derper's buckets (derpserver.New), so dashboards compare like with like. */
static const uint64_t batch_bounds[] = { 0, 1, 2, 5, 10, 20, 50, 100, 200,
    500, 1000 };
static const uint64_t loop_bounds[] = { 0, 1, 2, 5, 10, 20, 50, 100 };
static const uint64_t frames_bounds[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    15, 20, 25, 50, 100 };
static const struct {
	const char	*name;
	const uint64_t	*bounds;
	size_t		 n;
} hists[HIST__COUNT] = {
	[HIST_MESH_UPDATE_BATCH] = { "mesh_update_batch_size", batch_bounds,
	    sizeof(batch_bounds) / sizeof(batch_bounds[0]) },
	[HIST_MESH_UPDATE_LOOPS] = { "mesh_update_loop_count", loop_bounds,
	    sizeof(loop_bounds) / sizeof(loop_bounds[0]) },
	[HIST_BUFFERED_WRITE_FRAMES] = { "buffered_write_frames",
	    frames_bounds, sizeof(frames_bounds) / sizeof(frames_bounds[0]) },
};

void
stats_observe(struct stats *st, enum hist_id h, uint64_t v)
{
	size_t i = 0;

	/* The first bucket whose bound holds v; past the last: +Inf. */
	while (i < hists[h].n && v > hists[h].bounds[i])
		i++;
	stats_add(&st->st_hist[h][i], 1);
	stats_add(&st->st_hist_sum[h], v);
	stats_add(&st->st_hist_count[h], 1);
}

static const struct {
	uint32_t	 us;	/* upper bound */
	const char	*name;
} rtt_buckets[RTT__COUNT] = {
	[RTT_10MS] = { 10000, "10ms" },
	[RTT_20MS] = { 20000, "20ms" },
	[RTT_50MS] = { 50000, "50ms" },
	[RTT_100MS] = { 100000, "100ms" },
	[RTT_150MS] = { 150000, "150ms" },
	[RTT_250MS] = { 250000, "250ms" },
	[RTT_500MS] = { 500000, "500ms" },
	[RTT_INF] = { UINT32_MAX, "inf" },
	[RTT_NON_TCP] = { 0, "non-tcp" },
	[RTT_ERROR] = { 0, "error" },
};

void
stats_tcp_rtt(struct stats *st, uint32_t rtt_us)
{
	int b = RTT_10MS;

	while (b < RTT_INF && rtt_us > rtt_buckets[b].us)
		b++;
	stats_add(&st->st_tcp_rtt[b], 1);
}

const char *
stats_rtt_name(enum rtt_bucket b)
{
	return rtt_buckets[b].name;
}

void
stats_queue_time(struct stats *st, uint64_t ms)
{
	double	 avg;
	uint64_t bits = __atomic_load_n(&st->st_queue_avg_bits,
	    __ATOMIC_RELAXED);

	memcpy(&avg, &bits, sizeof(avg));
	/* derper's: alpha * new + (1 - alpha) * previous, from 0. */
	avg = 0.1 * (double)ms + 0.9 * avg;
	memcpy(&bits, &avg, sizeof(bits));
	__atomic_store_n(&st->st_queue_avg_bits, bits, __ATOMIC_RELAXED);
	stats_add(&st->st_queue_samples, 1);
}

double
stats_queue_avg(const struct stats *st)
{
	double	 avg;
	uint64_t bits = stats_get(&st->st_queue_avg_bits);

	memcpy(&avg, &bits, sizeof(avg));
	return isfinite(avg) ? avg : 0;
}

const char *
stats_hist_name(enum hist_id h)
{
	return hists[h].name;
}

const uint64_t *
stats_hist_bounds(enum hist_id h, size_t *n)
{
	*n = hists[h].n;
	return hists[h].bounds;
}

void
stats_sum(const struct stats *const *in, size_t n, struct stats *out)
{
	double	 qsum = 0;
	size_t	 qn = 0;

	memset(out, 0, sizeof(*out));
	for (size_t w = 0; w < n; w++) {
		for (int i = 0; i < STAT__COUNT; i++)
			out->st_c[i] += stats_get(&in[w]->st_c[i]);
		for (int r = 0; r < DROP__COUNT; r++)
			for (int k = 0; k < KIND__COUNT; k++) {
				out->st_drop_pkts[r][k] +=
				    stats_get(&in[w]->st_drop_pkts[r][k]);
				out->st_drop_bytes[r][k] +=
				    stats_get(&in[w]->st_drop_bytes[r][k]);
			}
		for (int c = 0; c < CLOSE__COUNT; c++)
			out->st_close[c] += stats_get(&in[w]->st_close[c]);
		for (int h = 0; h < HIST__COUNT; h++) {
			for (int b = 0; b <= HIST_MAX_BUCKETS; b++)
				out->st_hist[h][b] +=
				    stats_get(&in[w]->st_hist[h][b]);
			out->st_hist_sum[h] += stats_get(&in[w]->st_hist_sum[h]);
			out->st_hist_count[h] +=
			    stats_get(&in[w]->st_hist_count[h]);
		}
		for (int b = 0; b < RTT__COUNT; b++)
			out->st_tcp_rtt[b] += stats_get(&in[w]->st_tcp_rtt[b]);
		if (stats_get(&in[w]->st_queue_samples) > 0) {
			qsum += stats_queue_avg(in[w]);
			qn++;
		}
		out->st_queue_samples += stats_get(&in[w]->st_queue_samples);
	}
	if (qn > 0) {
		double avg = qsum / (double)qn;
		memcpy(&out->st_queue_avg_bits, &avg, sizeof(avg));
	}
}

const char *
stats_drop_name(enum drop_reason r)
{
	return drop_names[r];
}

const char *
stats_close_name(enum close_reason r)
{
	return close_names[r];
}
