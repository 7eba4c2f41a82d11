/* SPDX-License-Identifier: ISC */
/* stats.c: counter helpers and stable names for drop and close reasons. */
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
	[CLOSE_WS_TOO_LARGE] = "ws_message_too_large",
	[CLOSE_WS_TEXT] = "ws_text_message",
	[CLOSE_WS_PROTOCOL] = "ws_protocol_error",
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

void
stats_sum(const struct stats *const *in, size_t n, struct stats *out)
{
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
