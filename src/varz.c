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
};

static const struct metric metrics[] = {
	{ "derp_accepts", "counter", STAT_ACCEPTS, "accepts" },
	{ "derp_current_connections", "gauge",
	    STAT_DERP_CONNECTIONS, "gauge_current_connections" },
	{ "derpd_current_sockets", "gauge", STAT_CONNECTIONS, NULL },
	{ "derp_current_home_connections", "gauge",
	    STAT_HOME_CONNECTIONS, "gauge_current_home_connections" },
	{ "derp_current_notideal_connections", "gauge",
	    STAT_NOTIDEAL_CONNECTIONS, "gauge_current_notideal_connections" },
	{ "derp_watchers", "gauge", STAT_WATCHERS, "gauge_watchers" },
	{ "derp_packets_received", "counter",
	    STAT_PACKETS_RECEIVED, "packets_received" },
	{ "derp_bytes_received", "counter",
	    STAT_BYTES_RECEIVED, "bytes_received" },
	{ "derp_packets_sent", "counter", STAT_PACKETS_SENT, "packets_sent" },
	{ "derp_bytes_sent", "counter", STAT_BYTES_SENT, "bytes_sent" },
	{ "derp_packets_forwarded_in", "counter",
	    STAT_PACKETS_FORWARDED_IN, "packets_forwarded_in" },
	{ "derp_packets_forwarded_out", "counter",
	    STAT_PACKETS_FORWARDED_OUT, "packets_forwarded_out" },
	{ "derp_got_ping", "counter", STAT_GOT_PING, "got_ping" },
	{ "derp_sent_pong", "counter", STAT_SENT_PONG, "sent_pong" },
	{ "derpd_pings_ignored", "counter", STAT_PINGS_IGNORED, NULL },
	{ "derp_peer_gone_disconnected_frames", "counter",
	    STAT_PEER_GONE_DISCONNECTED, "peer_gone_disconnected_frames" },
	{ "derp_peer_gone_not_here_frames", "counter",
	    STAT_PEER_GONE_NOT_HERE, "peer_gone_not_here_frames" },
	{ "derp_home_moves_in", "counter",
	    STAT_HOME_MOVES_IN, "home_moves_in" },
	{ "derp_home_moves_out", "counter",
	    STAT_HOME_MOVES_OUT, "home_moves_out" },
	{ "derp_sclient_write_timeouts", "counter",
	    STAT_WRITE_TIMEOUTS, "sclient_write_timeouts" },
	{ "derp_unknown_frames", "counter",
	    STAT_UNKNOWN_FRAMES, "unknown_frames" },
	{ "derp_total_dup_client_conns", "counter",
	    STAT_TOTAL_DUP_CLIENT_CONNS, "counter_total_dup_client_conns" },
	{ "derpd_control_frames_dropped", "counter", STAT_CTL_DROPS, NULL },
	{ "derpd_log_lines_held_back", "counter", STAT_LOG_HELD, NULL },
	{ "derpd_http_requests", "counter", STAT_HTTP_REQUESTS, NULL },
	{ "derpd_accept_errors", "counter", STAT_ACCEPT_ERRORS, NULL },
	{ "derp_websocket_accepts", "counter",
	    STAT_WEBSOCKET_ACCEPTS, "/derp_websocket_accepts" },
};

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

void
varz_render(struct derpd *env, struct evbuffer *out)
{
	struct stats		*sum;
	struct peers_gauges	 g;

	if ((sum = varz_snapshot(env, &g)) == NULL)
		return;
	for (size_t i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++)
		evbuffer_add_printf(out, "# TYPE %s %s\n%s %lld\n",
		    metrics[i].m_name, metrics[i].m_type, metrics[i].m_name,
		    (long long)sum->st_c[metrics[i].m_id]);
	evbuffer_add_printf(out, "# TYPE derp_packets_received_kind counter\n"
	    "derp_packets_received_kind{kind=\"disco\"} %llu\n"
	    "derp_packets_received_kind{kind=\"other\"} %llu\n",
	    (unsigned long long)sum->st_c[STAT_PACKETS_RECEIVED_DISCO],
	    (unsigned long long)sum->st_c[STAT_PACKETS_RECEIVED_OTHER]);
	evbuffer_add_printf(out, "# TYPE derp_clients_local gauge\n"
	    "derp_clients_local %llu\n# TYPE derp_clients_total gauge\n"
	    "derp_clients_total %llu\n# TYPE derp_clients_remote gauge\n"
	    "derp_clients_remote %llu\n"
	    "# TYPE derp_current_dup_client_keys gauge\n"
	    "derp_current_dup_client_keys %llu\n"
	    "# TYPE derp_current_dup_client_conns gauge\n"
	    "derp_current_dup_client_conns %llu\n"
	    "# TYPE derp_multiforwarder_created counter\n"
	    "derp_multiforwarder_created %llu\n"
	    "# TYPE derp_multiforwarder_deleted counter\n"
	    "derp_multiforwarder_deleted %llu\n"
	    "# TYPE derp_packet_forwarder_delete_other_value counter\n"
	    "derp_packet_forwarder_delete_other_value %llu\n"
	    "# HELP derpd_mesh_routes (key, mesh peer) routes learned\n"
	    "# TYPE derpd_mesh_routes gauge\n"
	    "derpd_mesh_routes %llu\n",
	    (unsigned long long)g.pg_keys,
	    (unsigned long long)(g.pg_keys + g.pg_remote_keys),
	    (unsigned long long)g.pg_remote_keys,
	    (unsigned long long)g.pg_dup_keys,
	    (unsigned long long)g.pg_dup_conns,
	    (unsigned long long)g.pg_multi_created,
	    (unsigned long long)g.pg_multi_deleted,
	    (unsigned long long)g.pg_route_del_other,
	    (unsigned long long)g.pg_routes);
	varz_mesh(out, env);
	acme_varz(env->d_acme, env->d_acme_ip, out);
	for (int h = 0; h < HIST__COUNT; h++) {
		size_t nb;
		const uint64_t *b = stats_hist_bounds(h, &nb);

		evbuffer_add_printf(out, "# TYPE derp_%s histogram\n",
		    stats_hist_name(h));
		for (size_t i = 0; i < nb; i++)
			evbuffer_add_printf(out, "derp_%s_bucket{le=\"%llu\"} "
			    "%llu\n", stats_hist_name(h), (unsigned long long)b[i],
			    (unsigned long long)sum->st_hist[h][i]);
		evbuffer_add_printf(out, "derp_%s_bucket{le=\"+Inf\"} %llu\n"
		    "derp_%s_sum %llu\nderp_%s_count %llu\n", stats_hist_name(h),
		    (unsigned long long)sum->st_hist_count[h], stats_hist_name(h),
		    (unsigned long long)sum->st_hist_sum[h], stats_hist_name(h),
		    (unsigned long long)sum->st_hist_count[h]);
	}
	varz_drops(out, "derp_packets_dropped", "DERP packets", sum->st_drop_pkts);
	varz_drops(out, "derp_bytes_dropped", "DERP bytes", sum->st_drop_bytes);
	evbuffer_add_printf(out, "# HELP derpd_connections_closed "
	    "connections closed by reason\n"
	    "# TYPE derpd_connections_closed counter\n");
	for (int r = 0; r < CLOSE__COUNT; r++)
		evbuffer_add_printf(out, "derpd_connections_closed{reason=\"%s\"}"
		    " %llu\n", stats_close_name(r),
		    (unsigned long long)sum->st_close[r]);
	evbuffer_add_printf(out, "# TYPE stun_requests counter\n"
	    "stun_requests{disposition=\"success\"} %llu\n"
	    "stun_requests{disposition=\"not_stun\"} %llu\n"
	    "stun_requests{disposition=\"read_error\"} %llu\n"
	    "stun_requests{disposition=\"write_error\"} %llu\n"
	    "# TYPE stun_addrfamily counter\n"
	    "stun_addrfamily{family=\"ipv4\"} %llu\n"
	    "stun_addrfamily{family=\"ipv6\"} %llu\n"
	    "# TYPE derpd_stun_rfc5389_requests counter\n"
	    "derpd_stun_rfc5389_requests %llu\n",
	    (unsigned long long)sum->st_c[STAT_STUN_SUCCESS],
	    (unsigned long long)sum->st_c[STAT_STUN_NOT_STUN],
	    (unsigned long long)sum->st_c[STAT_STUN_READ_ERROR],
	    (unsigned long long)sum->st_c[STAT_STUN_WRITE_ERROR],
	    (unsigned long long)sum->st_c[STAT_STUN_IPV4],
	    (unsigned long long)sum->st_c[STAT_STUN_IPV6],
	    (unsigned long long)sum->st_c[STAT_STUN_RFC5389]);
	if (env->d_auth != NULL)
		auth_varz(env->d_auth, out);
	if (env->d_ratelim != NULL)
		ratelim_varz(env->d_ratelim, out);
	if (env->d_bootdns != NULL)
		bootdns_varz(env->d_bootdns, out);
	if (env->d_varz_hook.vh_render != NULL)
		env->d_varz_hook.vh_render(env->d_varz_hook.vh_arg, out);
	evbuffer_add_printf(out, "# TYPE process_start_unix_time untyped\n"
	    "process_start_unix_time %lld\n# TYPE uptime_sec counter\n"
	    "uptime_sec %lld\n# TYPE derpd_workers gauge\nderpd_workers %d\n",
	    (long long)env->d_start_time,
	    (long long)(time(NULL) - env->d_start_time), env->d_nworkers);
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
