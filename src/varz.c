/* SPDX-License-Identifier: ISC */
/* varz.c: /debug/varz, metric names as derper's where they exist. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include <event2/buffer.h>

#include "acme.h"
#include "auth.h"
#include "bootdns.h"
#include "derpd.h"
#include "ratelim.h"
#include "mesh.h"
#include "peer.h"
#include "procstat.h"
#include "stats.h"
#include "stun_server.h"
#include "varz.h"
#include "worker.h"

struct metric {
	const char	*m_name;
	const char	*m_type;
	enum stat_id	 m_id;
	/*
	 * derper's key in /debug/vars: in its "derp" object, or at the top
	 * level when it starts with '/'; NULL for derpd's own.
	 */
	const char	*m_expvar;
	const char	*m_help;
};

static const struct metric metrics[] = {
	{ "derp_accepts", "counter", STAT_ACCEPTS, "accepts",
	    "DERP connections accepted: upgrades, raw and WebSocket" },
	{ "derp_current_connections", "gauge",
	    STAT_DERP_CONNECTIONS, "gauge_current_connections",
	    "DERP clients past the handshake" },
	{ "derpd_current_sockets", "gauge", STAT_CONNECTIONS, NULL,
	    "open TCP connections of any kind, in TLS or HTTP too" },
	{ "derp_current_home_connections", "gauge",
	    STAT_HOME_CONNECTIONS, "gauge_current_home_connections",
	    "clients whose NotePreferred says this is their home" },
	{ "derp_current_notideal_connections", "gauge",
	    STAT_NOTIDEAL_CONNECTIONS, "gauge_current_notideal_connections",
	    "clients whose upgrade carried Ideal-Node" },
	{ "derp_watchers", "gauge", STAT_WATCHERS, "gauge_watchers",
	    "mesh peers subscribed with WatchConns" },
	{ "derp_packets_received", "counter",
	    STAT_PACKETS_RECEIVED, "packets_received",
	    "packets received from clients and mesh peers" },
	{ "derp_bytes_received", "counter",
	    STAT_BYTES_RECEIVED, "bytes_received",
	    "payload bytes of derp_packets_received" },
	{ "derp_packets_sent", "counter", STAT_PACKETS_SENT, "packets_sent",
	    "packets written to clients and mesh links" },
	{ "derp_bytes_sent", "counter", STAT_BYTES_SENT, "bytes_sent",
	    "payload bytes of derp_packets_sent" },
	{ "derp_packets_forwarded_in", "counter",
	    STAT_PACKETS_FORWARDED_IN, "packets_forwarded_in",
	    "ForwardPacket frames received from mesh peers" },
	{ "derp_packets_forwarded_out", "counter",
	    STAT_PACKETS_FORWARDED_OUT, "packets_forwarded_out",
	    "packets sent on to a mesh peer" },
	{ "derp_got_ping", "counter", STAT_GOT_PING, "got_ping",
	    "Ping frames received" },
	{ "derp_sent_pong", "counter", STAT_SENT_PONG, "sent_pong",
	    "Pong frames sent" },
	{ "derpd_pings_ignored", "counter", STAT_PINGS_IGNORED, NULL,
	    "pings not answered: the client's output was full" },
	{ "derp_peer_gone_disconnected_frames", "counter",
	    STAT_PEER_GONE_DISCONNECTED, "peer_gone_disconnected_frames",
	    "PeerGone (disconnected) frames sent" },
	{ "derp_peer_gone_not_here_frames", "counter",
	    STAT_PEER_GONE_NOT_HERE, "peer_gone_not_here_frames",
	    "PeerGone (not here) frames sent" },
	{ "derp_home_moves_in", "counter",
	    STAT_HOME_MOVES_IN, "home_moves_in",
	    "clients that made this their home after connecting" },
	{ "derp_home_moves_out", "counter",
	    STAT_HOME_MOVES_OUT, "home_moves_out",
	    "clients that moved their home away after connecting" },
	{ "derp_sclient_write_timeouts", "counter",
	    STAT_WRITE_TIMEOUTS, "sclient_write_timeouts",
	    "connections closed by the write timeout" },
	{ "derp_unknown_frames", "counter",
	    STAT_UNKNOWN_FRAMES, "unknown_frames",
	    "frames of unknown type, ignored" },
	{ "derp_total_dup_client_conns", "counter",
	    STAT_TOTAL_DUP_CLIENT_CONNS, "counter_total_dup_client_conns",
	    "connections that registered a key already connected" },
	{ "derpd_control_frames_dropped", "counter", STAT_CTL_DROPS, NULL,
	    "PeerGone frames not queued: the connection's cap was reached" },
	{ "derpd_log_lines_held_back", "counter", STAT_LOG_HELD, NULL,
	    "peer-caused log lines held back by the rate limit" },
	{ "derpd_http_requests", "counter", STAT_HTTP_REQUESTS, NULL,
	    "HTTP request heads parsed, upgrades included" },
	{ "derpd_accept_errors", "counter", STAT_ACCEPT_ERRORS, NULL,
	    "failed accept(2) calls" },
	{ "derp_websocket_accepts", "counter",
	    STAT_WEBSOCKET_ACCEPTS, "/derp_websocket_accepts",
	    "DERP over WebSocket connections accepted" },
};

/* HELP and TYPE of a family. */
static void
varz_head(struct evbuffer *out, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* A family of one sample. */
static void
varz_one(struct evbuffer *out, const char *name, const char *type,
    const char *help, long long v)
{
	varz_head(out, name, type, help);
	evbuffer_add_printf(out, "%s %lld\n", name, v);
}

/* One drop family: a line per reason and kind. */
/* The mesh peers of --mesh-with: link states and what went through. */
static void
varz_mesh(struct evbuffer *out, struct derpd *env)
{
	static const char *const states[] = { "connecting", "connected",
	    "backoff", "self" };
	struct mesh_info	*rows;
	size_t			 n = mesh_list(env->d_meshnet, &rows);
	uint64_t		 connects = 0, reconnects = 0, refused = 0;

	evbuffer_add_printf(out, "# HELP derpd_mesh_peers mesh peers of "
	    "--mesh-with by link state\n# TYPE derpd_mesh_peers gauge\n");
	for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
		size_t k = 0;
		for (size_t i = 0; i < n; i++)
			k += strcmp(rows[i].mi_state, states[s]) == 0;
		evbuffer_add_printf(out, "derpd_mesh_peers{state=\"%s\"} %zu\n",
		    states[s], k);
	}
	for (size_t i = 0; i < n; i++) {
		connects += rows[i].mi_connects;
		reconnects += rows[i].mi_reconnects;
		refused += rows[i].mi_refused;
	}
	evbuffer_add_printf(out, "# HELP derpd_mesh_connects mesh links "
	    "established\n# TYPE derpd_mesh_connects counter\n"
	    "derpd_mesh_connects %llu\n"
	    "# HELP derpd_mesh_reconnects mesh links established again\n"
	    "# TYPE derpd_mesh_reconnects counter\n"
	    "derpd_mesh_reconnects %llu\n"
	    "# HELP derpd_mesh_routes_refused PeerPresent past "
	    "-mesh-max-routes, not routed\n"
	    "# TYPE derpd_mesh_routes_refused counter\n"
	    "derpd_mesh_routes_refused %llu\n",
	    (unsigned long long)connects, (unsigned long long)reconnects,
	    (unsigned long long)refused);
	free(rows);
}

static void
varz_drops(struct evbuffer *out, const char *name, const char *what,
    const uint64_t v[DROP__COUNT][KIND__COUNT])
{
	evbuffer_add_printf(out, "# HELP %s %s dropped by reason and by "
	    "kind\n# TYPE %s counter\n", name, what, name);
	for (int r = 0; r < DROP__COUNT; r++)
		for (int k = 0; k < KIND__COUNT; k++)
			evbuffer_add_printf(out, "%s{reason=\"%s\",kind=\"%s\"} "
			    "%llu\n", name, stats_drop_name(r),
			    k == KIND_DISCO ? "disco" : "other",
			    (unsigned long long)v[r][k]);
}

/*
 * The counters of every worker and of STUN summed, and the registry's
 * gauges: what every view here renders. NULL when out of memory.
 */
static struct stats *
varz_snapshot(struct derpd *env, struct peers_gauges *g)
{
	const struct stats	*blocks[DERPD_MAX_WORKERS + 1];
	struct stats		*sum;
	size_t			 n = 0;

	if ((sum = malloc(sizeof(*sum))) == NULL)
		return NULL;
	for (int i = 0; i < env->d_nworkers; i++)
		blocks[n++] = worker_stats_ro(env->d_workers[i]);
	if (env->d_stun != NULL)
		blocks[n++] = stun_server_stats(env->d_stun);
	stats_sum(blocks, n, sum);
	peers_gauges(env->d_peers, g);
	return sum;
}

/* The registry's gauges and counters. */
static void
varz_registry(struct evbuffer *out, const struct peers_gauges *g)
{
	varz_one(out, "derp_clients_local", "gauge", "distinct keys "
	    "connected here", (long long)g->pg_keys);
	varz_one(out, "derp_clients_total", "gauge", "keys of the region: "
	    "here and through mesh peers",
	    (long long)(g->pg_keys + g->pg_remote_keys));
	varz_one(out, "derp_clients_remote", "gauge", "keys known only "
	    "through mesh peers", (long long)g->pg_remote_keys);
	varz_one(out, "derp_current_dup_client_keys", "gauge", "keys "
	    "connected more than once", (long long)g->pg_dup_keys);
	varz_one(out, "derp_current_dup_client_conns", "gauge", "connections "
	    "of keys connected more than once", (long long)g->pg_dup_conns);
	varz_one(out, "derp_multiforwarder_created", "counter", "keys that "
	    "became reachable through a second mesh peer",
	    (long long)g->pg_multi_created);
	varz_one(out, "derp_multiforwarder_deleted", "counter", "keys that "
	    "went back to one mesh peer", (long long)g->pg_multi_deleted);
	varz_one(out, "derp_packet_forwarder_delete_other_value", "counter",
	    "PeerGone from a mesh peer for a key it had no route for",
	    (long long)g->pg_route_del_other);
	varz_one(out, "derpd_mesh_routes", "gauge", "(key, mesh peer) routes "
	    "learned", (long long)g->pg_routes);
}

/* The histograms, cumulative as Prometheus wants. */
static void
varz_hists(struct evbuffer *out, const struct stats *sum)
{
	static const char *const help[HIST__COUNT] = {
		[HIST_MESH_UPDATE_BATCH] = "PeerPresent and PeerGone updates "
		    "written to a mesh watcher in one batch",
		[HIST_MESH_UPDATE_LOOPS] = "batches per wake-up of a mesh "
		    "watcher",
		[HIST_BUFFERED_WRITE_FRAMES] = "frames written to a client "
		    "per flush",
	};

	for (int h = 0; h < HIST__COUNT; h++) {
		const char	*n = stats_hist_name(h);
		size_t		 nb;
		const uint64_t	*b = stats_hist_bounds(h, &nb);
		uint64_t	 cum = 0;

		evbuffer_add_printf(out, "# HELP derp_%s %s\n"
		    "# TYPE derp_%s histogram\n", n, help[h], n);
		for (size_t i = 0; i < nb; i++) {
			cum += sum->st_hist[h][i];
			evbuffer_add_printf(out, "derp_%s_bucket{le=\"%llu\"} "
			    "%llu\n", n, (unsigned long long)b[i],
			    (unsigned long long)cum);
		}
		evbuffer_add_printf(out, "derp_%s_bucket{le=\"+Inf\"} %llu\n"
		    "derp_%s_sum %llu\nderp_%s_count %llu\n", n,
		    (unsigned long long)sum->st_hist_count[h], n,
		    (unsigned long long)sum->st_hist_sum[h], n,
		    (unsigned long long)sum->st_hist_count[h]);
	}
}

/*
 * derper's TLS families: the listener's (only with TLS, as derper) and
 * requests by TLS version.
 */
static void
varz_tls(struct evbuffer *out, struct derpd *env, const struct stats *sum)
{
	/* tls_listener_*: ratelim_varz (the accept limit counts them). */
	(void)env;
	varz_head(out, "derper_tls_request_version", "counter",
	    "HTTP requests over TLS by TLS version");
	evbuffer_add_printf(out,
	    "derper_tls_request_version{version=\"1.2\"} %llu\n"
	    "derper_tls_request_version{version=\"1.3\"} %llu\n",
	    (unsigned long long)sum->st_c[STAT_TLS12_REQUESTS],
	    (unsigned long long)sum->st_c[STAT_TLS13_REQUESTS]);
	varz_head(out, "derper_tls_active_version", "gauge",
	    "open TLS connections that made a request, by TLS version");
	evbuffer_add_printf(out,
	    "derper_tls_active_version{version=\"1.2\"} %lld\n"
	    "derper_tls_active_version{version=\"1.3\"} %lld\n",
	    (long long)sum->st_c[STAT_TLS12_ACTIVE],
	    (long long)sum->st_c[STAT_TLS13_ACTIVE]);
}

/* The process_* families (Prometheus's client names) and derper's. */
static void
varz_process(struct evbuffer *out, struct derpd *env)
{
	struct procstat	 ps;

	procstat_read(&ps);
	if (ps.pr_cpu_seconds >= 0) {
		varz_head(out, "process_cpu_seconds_total", "counter",
		    "Total user and system CPU time spent in seconds.");
		evbuffer_add_printf(out, "process_cpu_seconds_total %.2f\n",
		    ps.pr_cpu_seconds);
		varz_one(out, "process_resident_memory_bytes", "gauge",
		    "Resident memory size in bytes.", ps.pr_resident_bytes);
		varz_one(out, "process_virtual_memory_bytes", "gauge",
		    "Virtual memory size in bytes.", ps.pr_virtual_bytes);
	}
	if (ps.pr_max_virtual_bytes >= 0) {
		varz_head(out, "process_virtual_memory_max_bytes", "gauge",
		    "Maximum amount of virtual memory available in bytes.");
		evbuffer_add_printf(out, "process_virtual_memory_max_bytes "
		    "%.17g\n", ps.pr_max_virtual_bytes);
	}
	if (ps.pr_open_fds >= 0) {
		varz_one(out, "process_open_fds", "gauge",
		    "Number of open file descriptors.", ps.pr_open_fds);
		varz_one(out, "derp_current_file_descriptors", "gauge",
		    "open file descriptors", ps.pr_open_fds);
	}
	if (ps.pr_max_fds >= 0)
		varz_one(out, "process_max_fds", "gauge",
		    "Maximum number of open file descriptors.", ps.pr_max_fds);
	varz_head(out, "process_start_time_seconds", "gauge",
	    "Start time of the process since unix epoch in seconds.");
	evbuffer_add_printf(out, "process_start_time_seconds %.2f\n",
	    ps.pr_start_time >= 0 ? ps.pr_start_time :
	    (double)env->d_start_time);
	if (ps.pr_net_rx_bytes >= 0) {
		varz_one(out, "process_network_receive_bytes_total", "counter",
		    "Number of bytes received by the process over the "
		    "network.", ps.pr_net_rx_bytes);
		varz_one(out, "process_network_transmit_bytes_total",
		    "counter", "Number of bytes sent by the process over the "
		    "network.", ps.pr_net_tx_bytes);
	}
	if (ps.pr_boot_time >= 0)
		varz_one(out, "node_boot_time_seconds", "gauge",
		    "the host's boot time, unix seconds", ps.pr_boot_time);
	varz_one(out, "process_start_unix_time", "untyped",
	    "start time, unix seconds", (long long)env->d_start_time);
	varz_one(out, "uptime_sec", "counter", "seconds since start",
	    (long long)(time(NULL) - env->d_start_time));
	varz_head(out, "version", "gauge", "the version of the binary");
	evbuffer_add_printf(out, "version{version=\"%s\",binary=\"derpd\"} "
	    "1\n", DERPD_VERSION);
}

void
varz_render(struct derpd *env, struct evbuffer *out)
{
	struct stats		*sum;
	struct peers_gauges	 g;

	if ((sum = varz_snapshot(env, &g)) == NULL)
		return;
	for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++)
		varz_one(out, metrics[i].m_name, metrics[i].m_type,
		    metrics[i].m_help, (long long)sum->st_c[metrics[i].m_id]);
	varz_head(out, "derpd_tcp_accepts", "counter", "TCP connections "
	    "accepted, by listener (main: -a, http: -http-port)");
	evbuffer_add_printf(out, "derpd_tcp_accepts{listener=\"main\"} %llu\n"
	    "derpd_tcp_accepts{listener=\"http\"} %llu\n",
	    (unsigned long long)sum->st_c[STAT_TCP_ACCEPTS],
	    (unsigned long long)sum->st_c[STAT_TCP_ACCEPTS_80]);
	varz_head(out, "derp_packets_received_kind", "counter",
	    "derp_packets_received by kind");
	evbuffer_add_printf(out,
	    "derp_packets_received_kind{kind=\"disco\"} %llu\n"
	    "derp_packets_received_kind{kind=\"other\"} %llu\n",
	    (unsigned long long)sum->st_c[STAT_PACKETS_RECEIVED_DISCO],
	    (unsigned long long)sum->st_c[STAT_PACKETS_RECEIVED_OTHER]);
	varz_registry(out, &g);
	varz_mesh(out, env);
	acme_varz(env->d_acme, env->d_acme_ip, out);
	varz_hists(out, sum);
	varz_head(out, "derp_average_queue_duration_ms", "gauge", "moving "
	    "average (alpha 0.1) of the milliseconds a packet waits in a "
	    "client's queue");
	evbuffer_add_printf(out, "derp_average_queue_duration_ms %.6g\n",
	    stats_queue_avg(sum));
	varz_head(out, "derp_tcp_rtt", "counter", "TCP round-trip time "
	    "samples of DERP connections, every 10 s, by bucket");
	for (int b = 0; b < RTT__COUNT; b++)
		evbuffer_add_printf(out, "derp_tcp_rtt{le=\"%s\"} %llu\n",
		    stats_rtt_name(b), (unsigned long long)sum->st_tcp_rtt[b]);
	varz_drops(out, "derp_packets_dropped", "DERP packets", sum->st_drop_pkts);
	varz_drops(out, "derp_bytes_dropped", "DERP bytes", sum->st_drop_bytes);
	varz_head(out, "derpd_connections_closed", "counter",
	    "connections closed by reason");
	for (int r = 0; r < CLOSE__COUNT; r++)
		evbuffer_add_printf(out, "derpd_connections_closed{reason=\"%s\"}"
		    " %llu\n", stats_close_name(r),
		    (unsigned long long)sum->st_close[r]);
	varz_tls(out, env, sum);
	varz_head(out, "stun_requests", "counter", "STUN datagrams by "
	    "disposition");
	evbuffer_add_printf(out,
	    "stun_requests{disposition=\"success\"} %llu\n"
	    "stun_requests{disposition=\"not_stun\"} %llu\n"
	    "stun_requests{disposition=\"read_error\"} %llu\n"
	    "stun_requests{disposition=\"write_error\"} %llu\n",
	    (unsigned long long)sum->st_c[STAT_STUN_SUCCESS],
	    (unsigned long long)sum->st_c[STAT_STUN_NOT_STUN],
	    (unsigned long long)sum->st_c[STAT_STUN_READ_ERROR],
	    (unsigned long long)sum->st_c[STAT_STUN_WRITE_ERROR]);
	varz_head(out, "stun_addrfamily", "counter", "STUN answers by "
	    "address family");
	evbuffer_add_printf(out,
	    "stun_addrfamily{family=\"ipv4\"} %llu\n"
	    "stun_addrfamily{family=\"ipv6\"} %llu\n",
	    (unsigned long long)sum->st_c[STAT_STUN_IPV4],
	    (unsigned long long)sum->st_c[STAT_STUN_IPV6]);
	varz_one(out, "derpd_stun_rfc5389_requests", "counter", "STUN "
	    "binding requests answered that were not Tailscale's",
	    (long long)sum->st_c[STAT_STUN_RFC5389]);
	if (env->d_auth != NULL)
		auth_varz(env->d_auth, out);
	if (env->d_ratelim != NULL)
		ratelim_varz(env->d_ratelim, out);
	if (env->d_bootdns != NULL)
		bootdns_varz(env->d_bootdns, out);
	if (env->d_varz_hook.vh_render != NULL)
		env->d_varz_hook.vh_render(env->d_varz_hook.vh_arg, out);
	varz_process(out, env);
	varz_one(out, "derpd_workers", "gauge", "worker threads",
	    env->d_nworkers);
	free(sum);
}

void
varz_ctl_stats(struct derpd *env, cJSON *res)
{
	struct stats		*sum;
	struct peers_gauges	 g;
	cJSON			*st = cJSON_AddObjectToObject(res, "stats");
	cJSON			*dr = cJSON_AddObjectToObject(res, "drops");
	cJSON			*cl = cJSON_AddObjectToObject(res, "closes");

	if ((sum = varz_snapshot(env, &g)) == NULL)
		return;
	/* The same names as /debug/varz, one table for both. */
	for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++)
		cJSON_AddNumberToObject(st, metrics[i].m_name,
		    (double)(int64_t)sum->st_c[metrics[i].m_id]);
	cJSON_AddNumberToObject(st, "derp_clients_local", (double)g.pg_keys);
	cJSON_AddNumberToObject(st, "derp_clients_remote",
	    (double)g.pg_remote_keys);
	cJSON_AddNumberToObject(st, "derpd_mesh_routes", (double)g.pg_routes);
	cJSON_AddNumberToObject(st, "derp_current_dup_client_keys",
	    (double)g.pg_dup_keys);
	cJSON_AddNumberToObject(st, "derp_current_dup_client_conns",
	    (double)g.pg_dup_conns);
	cJSON_AddNumberToObject(st, "uptime_sec",
	    (double)(time(NULL) - env->d_start_time));
	if (env->d_ratelim != NULL)
		ratelim_ctl_stats(env->d_ratelim, st);
	for (int r = 0; r < DROP__COUNT; r++) {
		cJSON *o = cJSON_AddObjectToObject(dr, stats_drop_name(r));
		cJSON_AddNumberToObject(o, "disco",
		    (double)sum->st_drop_pkts[r][KIND_DISCO]);
		cJSON_AddNumberToObject(o, "other",
		    (double)sum->st_drop_pkts[r][KIND_OTHER]);
	}
	for (int r = 0; r < CLOSE__COUNT; r++)
		cJSON_AddNumberToObject(cl, stats_close_name(r),
		    (double)sum->st_close[r]);
	free(sum);
}

/*
 * derper's expvar forms of the families added for parity: histograms as
 * {"bound": cumulative count, ..., "+Inf": count}, label maps as objects.
 */
static void
varz_vars_more(struct derpd *env __attribute__((unused)), cJSON *root, cJSON *d,
    const struct stats *sum)
{
	struct procstat	 ps;
	cJSON		*o;
	char		 k[24];

	procstat_read(&ps);
	if (ps.pr_open_fds >= 0)
		cJSON_AddNumberToObject(d, "gauge_current_file_descriptors",
		    (double)ps.pr_open_fds);
	cJSON_AddNumberToObject(d, "average_queue_duration_ms",
	    stats_queue_avg(sum));
	o = cJSON_AddObjectToObject(d, "counter_tcp_rtt");
	for (int b = 0; b < RTT__COUNT; b++)
		if (sum->st_tcp_rtt[b] > 0)
			cJSON_AddNumberToObject(o, stats_rtt_name(b),
			    (double)sum->st_tcp_rtt[b]);
	for (int h = 0; h < HIST__COUNT; h++) {
		size_t		 nb;
		const uint64_t	*bd = stats_hist_bounds(h, &nb);
		uint64_t	 cum = 0;
		char		 name[64];

		snprintf(name, sizeof(name), "counter_%s", stats_hist_name(h));
		o = cJSON_AddObjectToObject(d, name);
		for (size_t i = 0; i < nb; i++) {
			cum += sum->st_hist[h][i];
			snprintf(k, sizeof(k), "%llu", (unsigned long long)bd[i]);
			cJSON_AddNumberToObject(o, k, (double)cum);
		}
		cJSON_AddNumberToObject(o, "+Inf", (double)sum->st_hist_count[h]);
	}
	/* tls_listener: ratelim_vars. */
	o = cJSON_AddObjectToObject(root, "derper_tls_request_version");
	cJSON_AddNumberToObject(o, "1.2",
	    (double)sum->st_c[STAT_TLS12_REQUESTS]);
	cJSON_AddNumberToObject(o, "1.3",
	    (double)sum->st_c[STAT_TLS13_REQUESTS]);
	o = cJSON_AddObjectToObject(root, "gauge_derper_tls_active_version");
	cJSON_AddNumberToObject(o, "1.2",
	    (double)(int64_t)sum->st_c[STAT_TLS12_ACTIVE]);
	cJSON_AddNumberToObject(o, "1.3",
	    (double)(int64_t)sum->st_c[STAT_TLS13_ACTIVE]);
}

void
varz_vars(struct derpd *env, cJSON *root)
{
	struct stats		*sum;
	struct peers_gauges	 g;
	cJSON			*d = cJSON_AddObjectToObject(root, "derp");
	cJSON			*kind, *stun;

	if ((sum = varz_snapshot(env, &g)) == NULL)
		return;
	for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++) {
		const char *k = metrics[i].m_expvar;

		if (k != NULL)
			cJSON_AddNumberToObject(k[0] == '/' ? root : d,
			    k[0] == '/' ? k + 1 : k,
			    (double)(int64_t)sum->st_c[metrics[i].m_id]);
	}
	kind = cJSON_AddObjectToObject(d, "counter_packets_received_kind");
	cJSON_AddNumberToObject(kind, "disco",
	    (double)sum->st_c[STAT_PACKETS_RECEIVED_DISCO]);
	cJSON_AddNumberToObject(kind, "other",
	    (double)sum->st_c[STAT_PACKETS_RECEIVED_OTHER]);
	cJSON_AddNumberToObject(d, "gauge_clients_local", (double)g.pg_keys);
	cJSON_AddNumberToObject(d, "gauge_clients_remote",
	    (double)g.pg_remote_keys);
	cJSON_AddNumberToObject(d, "gauge_clients_total",
	    (double)(g.pg_keys + g.pg_remote_keys));
	cJSON_AddNumberToObject(d, "gauge_current_dup_client_keys",
	    (double)g.pg_dup_keys);
	cJSON_AddNumberToObject(d, "gauge_current_dup_client_conns",
	    (double)g.pg_dup_conns);
	cJSON_AddNumberToObject(d, "multiforwarder_created",
	    (double)g.pg_multi_created);
	cJSON_AddNumberToObject(d, "multiforwarder_deleted",
	    (double)g.pg_multi_deleted);
	cJSON_AddNumberToObject(d, "packet_forwarder_delete_other_value",
	    (double)g.pg_route_del_other);
	cJSON_AddStringToObject(d, "version", DERPD_VERSION);
	varz_vars_more(env, root, d, sum);
	/* derper's top-level keys that have a meaning here. */
	stun = cJSON_AddObjectToObject(root, "stun");
	kind = cJSON_AddObjectToObject(stun, "counter_addrfamily");
	cJSON_AddNumberToObject(kind, "ipv4",
	    (double)sum->st_c[STAT_STUN_IPV4]);
	cJSON_AddNumberToObject(kind, "ipv6",
	    (double)sum->st_c[STAT_STUN_IPV6]);
	kind = cJSON_AddObjectToObject(stun, "counter_requests");
	cJSON_AddNumberToObject(kind, "not_stun",
	    (double)sum->st_c[STAT_STUN_NOT_STUN]);
	cJSON_AddNumberToObject(kind, "read_error",
	    (double)sum->st_c[STAT_STUN_READ_ERROR]);
	cJSON_AddNumberToObject(kind, "success",
	    (double)sum->st_c[STAT_STUN_SUCCESS]);
	cJSON_AddNumberToObject(kind, "write_error",
	    (double)sum->st_c[STAT_STUN_WRITE_ERROR]);
	cJSON_AddNumberToObject(root, "counter_uptime_sec",
	    (double)(time(NULL) - env->d_start_time));
	cJSON_AddNumberToObject(root, "process_start_unix_time",
	    (double)env->d_start_time);
	cJSON_AddStringToObject(root, "version", DERPD_VERSION);
	if (env->d_ratelim != NULL)
		ratelim_vars(env->d_ratelim, root, d);
	if (env->d_bootdns != NULL)
		bootdns_vars(env->d_bootdns, root);
	free(sum);
	/* derpd's own: what derpctl show stats says. */
	varz_ctl_stats(env, cJSON_AddObjectToObject(root, "derpd"));
}

int
varz_check(struct derpd *env, char *msg, size_t msglen)
{
	struct stats		*sum;
	struct peers_gauges	 g;
	int64_t			 gauge = 0;

	/*
	 * The gauge and the registry are read apart, so a client in the
	 * middle of its handshake can make them differ for a moment: only a
	 * difference seen three times in a row is reported.
	 */
	for (int tries = 0; tries < 3; tries++) {
		if ((sum = varz_snapshot(env, &g)) == NULL) {
			snprintf(msg, msglen, "out of memory");
			return -1;
		}
		gauge = (int64_t)sum->st_c[STAT_DERP_CONNECTIONS];
		free(sum);
		if (g.pg_keys > g.pg_conns) {
			snprintf(msg, msglen, "registry: %llu keys but %llu "
			    "connections", (unsigned long long)g.pg_keys,
			    (unsigned long long)g.pg_conns);
			return -1;
		}
		if (gauge == (int64_t)g.pg_conns)
			return 0;
	}
	snprintf(msg, msglen, "gauge connections = %lld != registry says of "
	    "%llu", (long long)gauge, (unsigned long long)g.pg_conns);
	return -1;
}
